#include "connectors/postgres/pg_internal_query.hpp"

#include <fmt/format.h>

#include <map>

#include "connectors/postgres/pg_connector.hpp"
#include "core/errors.hpp"

namespace dpone::pg {

namespace {

bool is_string_type(const std::string& formatted) {
  return formatted == "text" || formatted.rfind("character varying", 0) == 0 ||
         formatted.rfind("character(", 0) == 0 || formatted == "character";
}

}  // namespace

bool internal_query_option(const nlohmann::json& options, const std::string& where) {
  if (!options.is_object() || !options.contains("internal_query")) return true;
  const auto& v = options["internal_query"];
  if (!v.is_boolean()) {
    throw Error(ErrorCode::ConfigBadValue,
                fmt::format("{}: `internal_query` must be true or false, not {}", where, v.dump()));
  }
  return v.get<bool>();
}

InternalQueryResult stage_internal_query(PgConnection& db, const InternalQuery& query,
                                         const std::string& schema, const std::string& staging,
                                         const Schema& source_schema) {
  if (query.column_types.size() != source_schema.columns.size()) {
    throw Error(ErrorCode::Internal,
                fmt::format("{}: internal query has {} column types for {} columns", db.where(),
                            query.column_types.size(), source_schema.columns.size()));
  }
  std::map<std::string, std::string> staging_types;
  for (const auto& c : table_columns(db, schema, staging)) staging_types[c.name] = c.formatted;
  std::vector<std::string> names, exprs;
  for (size_t i = 0; i < source_schema.columns.size(); ++i) {
    const std::string& name = source_schema.columns[i].name;
    auto it = staging_types.find(name);
    if (it == staging_types.end()) {
      throw Error(ErrorCode::StageFailed, fmt::format("{}: staging table {}.{} has no column '{}'",
                                                      db.where(), schema, staging, name));
    }
    const std::string col = "src." + quote_ident(name);
    names.push_back(quote_ident(name));
    if (it->second == query.column_types[i]) {
      exprs.push_back(col);
      continue;
    }
    const std::string text =
        fmt::format("CASE WHEN {0} IS NULL THEN NULL ELSE format('%s', {0}) END", col);
    exprs.push_back(is_string_type(it->second) ? text : fmt::format("({})::{}", text, it->second));
  }
  InternalQueryResult out;
  out.sql =
      fmt::format("INSERT INTO {}.{} ({}) SELECT {} FROM ({}) AS src", quote_ident(schema),
                  quote_ident(staging), fmt::join(names, ", "), fmt::join(exprs, ", "), query.sql);
  if (query.snapshot.empty()) {
    out.rows = db.exec(out.sql).affected();
    return out;
  }
  // Read the source's snapshot: the rows its window was planned on.
  PgTransaction txn(db, "BEGIN ISOLATION LEVEL REPEATABLE READ");
  db.exec("SET TRANSACTION SNAPSHOT " + db.literal(query.snapshot));
  out.rows = db.exec(out.sql).affected();
  txn.commit();
  return out;
}

}  // namespace dpone::pg
