// Quality gates pushed down as SQL on a staging table, shared by the SQL sinks
// (docs/quality-gates.md). This file owns:
//   - the gate types and the keys each takes (check_gate_spec, used by the manifest);
//   - the SQL every gate runs on staging and how its result is judged (run_sql_gates);
//   - the typed content hash of rows (TypedHasher), computed on the source side from
//     the record batches the runtime streams and on the staged side in SQL.
// A sink supplies its dialect (SqlGateDialect) and a way to run queries (SqlGateRunner);
// it never decides a gate's outcome itself, so every sink judges gates the same way.
//
// Source-side figures (rows read, typed hashes) reach the sink inside each gate's params
// under kSourceKey (written by GateTap, core/connector/gate_tap.hpp). A gate that needs
// them and finds none fails closed: it is never passed on an assumption.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/connector/sink.hpp"
#include "core/record_batch.hpp"
#include "core/types.hpp"

struct sqlite3;

namespace dpone {

// Every gate type dpone runs. A manifest naming any other type is rejected.
inline const std::set<std::string> kSqlGateTypes = {"row_count", "min_rows",        "not_null",
                                                    "unique",    "accepted_values", "range",
                                                    "freshness", "custom_sql",      "typed_hash"};

// Key of GateSpec::params holding what the runtime saw at the source (GateTap).
inline constexpr const char* kSourceKey = "__source";

// Problems of one manifest gate map (after schema validation: `type` is a known type):
// (key, message) pairs, empty when the gate is well formed. Checks the keys each type
// needs and allows, tolerance / max_age syntax and custom_sql's shape.
std::vector<std::pair<std::string, std::string>> check_gate_spec(const nlohmann::json& gate);

// "24h", "30m", "7d", "90s", "1w" -> seconds; nullopt for anything else.
std::optional<int64_t> parse_duration_seconds(std::string_view text);

// ---- typed hash ---------------------------------------------------------------------
//
// What is hashed (both sides agree on it byte for byte):
//   per column, the "hash form" of the cell: NULL -> "N"; otherwise
//   "<octet length of F>:<F>" where F is
//     bool            "true" / "false"
//     int16/32/64     plain decimal
//     decimal(p,s)    plain decimal with exactly s fractional digits
//     float32/64      "NaN" for any NaN, else the IEEE-754 bits as 8 / 16 lowercase hex
//                     digits, big-endian (exact: no decimal formatting involved)
//     string, uuid, date, timestamp, timestamptz
//                     the canonical text (see common cell forms)
//     time            canonical text with trailing fractional zeros (and a bare '.') removed
//     bytes           lowercase hex of the bytes
//     json            not hashed (the PostgreSQL sink stores jsonb, which rewrites the
//                     text); naming a json column in a typed_hash gate is an error
//   row text = the column forms concatenated in gate column order;
//   row hash = the first 8 bytes of MD5(row text), big-endian, as an unsigned 64-bit int;
//   table digest = (row count, sum of row hashes modulo 2^64).
// The sum makes the digest independent of row order (staging keeps none) and lets SQL
// compute it as one aggregate.
class TypedHasher {
 public:
  // `columns`: indexes into `schema` of the hashed columns, in hash order.
  TypedHasher(const Schema& schema, std::vector<size_t> columns);
  void add(const RecordBatch& batch);
  int64_t rows() const { return rows_; }
  uint64_t sum() const { return sum_; }

 private:
  std::vector<LogicalType> types_;
  std::vector<size_t> columns_;
  std::string row_;
  int64_t rows_ = 0;
  uint64_t sum_ = 0;
};

// The hash form F of one non-null canonical cell (see above).
std::string hash_form(const LogicalType& type, std::string_view canonical);
// First 8 bytes of MD5(text), big-endian.
uint64_t md5_prefix64(std::string_view text);
// A decimal integer of any size (optionally negative), reduced modulo 2^64; nullopt
// when `text` is not an integer. Reads the staged-side sum whatever width SQL used.
std::optional<uint64_t> parse_sum_mod64(std::string_view text);
// The columns a typed_hash gate hashes: its `columns`, or every non-json column of the
// schema. Throws Error(ConfigBadValue) for unknown or json columns.
std::vector<size_t> typed_hash_columns(const GateSpec& gate, const Schema& schema,
                                       const std::string& where);

// ---- running gates -------------------------------------------------------------------

struct SqlGateDialect {
  std::function<std::string(const std::string&)> quote_ident;
  std::function<std::string(const std::string&)> quote_literal;
  // A row-number column to name and order not_null/range samples by ("rowid"), or "".
  std::string row_id;
  // Samples show every value quoted ('1'); else numbers and booleans are shown bare.
  bool quote_all_samples = false;
  // A value compared by range / accepted_values / freshness: the column expression as
  // the comparison should see it (SQLite compares decimal text as NUMERIC) ...
  std::function<std::string(const std::string& quoted_column, const LogicalType&)> comparable;
  // ... and a literal of that type from its canonical text (numbers bare, others quoted
  // and cast as the dialect needs).
  std::function<std::string(const LogicalType&, const std::string& canonical)> literal;
  // typed_hash: the text expression F of a column (NULL stays NULL), the byte length of
  // a text expression, and a query over the staging table returning one row: count(*)
  // and the sum modulo 2^64 (or exactly) of md5_prefix64(row_text), as an integer or text.
  std::function<std::string(const std::string& quoted_column, const LogicalType&)> hash_form;
  std::function<std::string(const std::string& text_expr)> byte_length;
  std::function<std::string(const std::string& row_text_expr, const std::string& staging)>
      hash_query;
};

// One result row: (column name, value as text or nullopt for NULL).
using SqlRow = std::vector<std::pair<std::string, std::optional<std::string>>>;

// The sink's client, as the gates need it. Failures throw dpone::Error.
class SqlGateRunner {
 public:
  virtual ~SqlGateRunner() = default;
  virtual std::vector<SqlRow> query(const std::string& sql) = 0;
};

struct SqlGateTarget {
  std::string staging;    // the staging table, quoted and qualified as SQL needs it
  Schema schema;          // the staged columns and their logical types
  std::string where;      // "stream 'x': sqlite sink", for messages
  std::string sink_name;  // "sqlite"
};

// The staged schema the gates see: `catalog` (the staging table's columns as the sink's
// catalog types them), with the logical types the runtime annotated
// (params[kSourceKey].columns: the exact schema the sink staged with) where present.
Schema staged_gate_schema(const std::vector<GateSpec>& gates, Schema catalog);

// Throws Error(ConfigBadValue) for a gate type dpone does not know, a gate without the
// columns it needs, or a column the staging table lacks: nothing is skipped silently.
void validate_sql_gates(const std::vector<GateSpec>& gates, const SqlGateTarget& target);

// Runs every gate (validate_sql_gates first) and judges it; returns one result per gate
// in order. `samples`: at most this many failing rows / values shown per gate.
std::vector<GateResult> run_sql_gates(const std::vector<GateSpec>& gates,
                                      const SqlGateTarget& target, const SqlGateDialect& dialect,
                                      SqlGateRunner& runner, int samples);

// SQLite: registers dpone_float_bits(x, width) and the aggregate dpone_md5_sum(text) that
// the SQLite dialect's typed_hash SQL uses. Throws Error(StageFailed) on failure.
void register_sqlite_gate_functions(sqlite3* db);

}  // namespace dpone
