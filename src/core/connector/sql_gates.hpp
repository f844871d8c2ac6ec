// Quality gates pushed down as SQL on a staging table, shared by the SQL sinks: the
// checks a gate spec must pass, and the count/sample queries for each gate type.
// A sink supplies its dialect (identifier quoting, how a value is shown in a sample)
// and runs the two queries with its own client.
#pragma once

#include <functional>
#include <set>
#include <string>
#include <vector>

#include "core/connector/sink.hpp"

namespace dpone {

struct SqlGateDialect {
  std::function<std::string(const std::string&)> quote_ident;
  // An expression rendering `column=<value>` as text, NULL shown as NULL.
  std::function<std::string(const std::string& column)> show_value;
  // Concatenates text expressions with ", " between them.
  std::function<std::string(const std::vector<std::string>&)> join_text;
  std::string row_id;  // a row-number column to order and name samples by ("rowid"), or ""
};

struct GateSql {
  std::string count_sql;   // one row, one integer: the failing rows
  // not_null: [row_id,] shown; unique: count(*), shown — at most `samples` rows
  std::string sample_sql;
};

// The gate types the shared renderer runs.
inline const std::set<std::string> kSqlGateTypes = {"not_null", "unique"};

// Throws Error(ConfigBadValue) for a gate type the renderer does not run (a gate is never
// skipped silently), a gate without columns, or a column the staging table lacks.
void validate_sql_gates(const std::vector<GateSpec>& gates, const std::set<std::string>& staged_columns,
                        const std::string& where, const std::string& sink_name);

GateSql render_sql_gate(const GateSpec& gate, const std::string& staging, const SqlGateDialect& dialect,
                        int samples);

}  // namespace dpone
