#include "core/connector/sql_gates.hpp"

#include <fmt/format.h>

#include "core/errors.hpp"

namespace dpone {

void validate_sql_gates(const std::vector<GateSpec>& gates, const std::set<std::string>& staged_columns,
                        const std::string& where, const std::string& sink_name) {
  for (const auto& gate : gates) {
    if (!kSqlGateTypes.count(gate.type))
      throw Error(ErrorCode::ConfigBadValue,
                  fmt::format("{}: gate '{}' has the type '{}', which the {} sink cannot run", where, gate.name,
                              gate.type, sink_name),
                  "the " + sink_name + " sink runs not_null and unique gates");
    if (gate.columns.empty())
      throw Error(ErrorCode::ConfigBadValue,
                  fmt::format("{}: gate '{}' ({}) names no columns", where, gate.name, gate.type));
    for (const auto& c : gate.columns)
      if (!staged_columns.count(c))
        throw Error(ErrorCode::ConfigBadValue,
                    fmt::format("{}: gate '{}' names the column '{}', which the stream does not have", where,
                                gate.name, c));
  }
}

GateSql render_sql_gate(const GateSpec& gate, const std::string& staging, const SqlGateDialect& d, int samples) {
  std::vector<std::string> shown, quoted;
  for (const auto& c : gate.columns) {
    shown.push_back(d.show_value(c));
    quoted.push_back(d.quote_ident(c));
  }
  const std::string shown_expr = d.join_text(shown);
  GateSql q;
  if (gate.type == "not_null") {
    std::vector<std::string> tests;
    for (const auto& c : quoted) tests.push_back(c + " IS NULL");
    const std::string cond = fmt::format("{}", fmt::join(tests, " OR "));
    q.count_sql = fmt::format("SELECT count(*) FROM {} WHERE {}", staging, cond);
    q.sample_sql = d.row_id.empty()
                       ? fmt::format("SELECT {} FROM {} WHERE {} LIMIT {}", shown_expr, staging, cond, samples)
                       : fmt::format("SELECT {0}, {1} FROM {2} WHERE {3} ORDER BY {0} LIMIT {4}", d.row_id,
                                     shown_expr, staging, cond, samples);
    return q;
  }
  // unique: NULL keys are not duplicates of each other (SQL UNIQUE semantics); a
  // not_null gate catches them.
  std::vector<std::string> present;
  for (const auto& c : quoted) present.push_back(c + " IS NOT NULL");
  const std::string keys = fmt::format("{}", fmt::join(quoted, ", "));
  const std::string groups = fmt::format("FROM {} WHERE {} GROUP BY {} HAVING count(*) > 1", staging,
                                         fmt::join(present, " AND "), keys);
  q.count_sql = fmt::format("SELECT coalesce(sum(n), 0) FROM (SELECT count(*) AS n {}) AS d", groups);
  q.sample_sql =
      fmt::format("SELECT count(*), {} {} ORDER BY count(*) DESC, {} LIMIT {}", shown_expr, groups, keys, samples);
  return q;
}

}  // namespace dpone
