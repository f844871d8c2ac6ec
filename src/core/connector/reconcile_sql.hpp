// SQL of the strategies that compare a staged full snapshot with the target by key,
// shared by the SQL sinks (docs/reconciliation.md):
//   - snapshot_diff: insert new keys, update rows whose row hash changed, apply the delete
//     policy to target-only keys;
//   - scd2: history table; a changed row closes the current version and opens a new one,
//     a missing key expires its current version, a re-inserted key opens a new one;
//   - merge with `reconciliation: {mode: key_snapshot}`: the sink's own merge, then the
//     delete policy (and reactivation of soft-deleted keys that reappear).
// Everything runs inside the sink's promotion transaction, in this order:
//   prepare (system columns the target lacks) -> counts -> guards -> apply -> verify
// (post-load: the target's live rows compared with the staged snapshot, reconciliation.verify).
// The guards (max_delete_ratio, max_delete_rows, empty snapshot) are judged here, before
// any row changes, so a breach rolls back a transaction that changed nothing but DDL.
// A sink supplies its dialect (ReconcileDialect) and a way to run statements
// (ReconcileRunner); it never judges a guard itself.
#pragma once

#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/connector/sink.hpp"
#include "core/connector/strategy.hpp"
#include "core/errors.hpp"
#include "core/types.hpp"

struct sqlite3;

namespace dpone {

// System columns dpone maintains in targets. The sinks hide them from inspect() so schema
// evolution never reports them as dropped source columns.
inline constexpr const char* kDeletedAtColumn = "__dpone__deleted_at";
inline constexpr const char* kIsDeletedColumn = "__dpone__is_deleted";
inline constexpr const char* kValidFromColumn = "__dpone__valid_from";
inline constexpr const char* kValidToColumn = "__dpone__valid_to";
inline constexpr const char* kIsCurrentColumn = "__dpone__is_current";
inline constexpr const char* kRowHashColumn = "__dpone__row_hash";
inline constexpr const char* kRunIdColumn = "__dpone__run_id";
inline constexpr const char* kLoadedAtColumn = "__dpone__loaded_at";

// True for the columns above (any `__dpone__` name except the `__dpone__nc__<col>` columns
// of on_type_change: new_column, which hold source values).
bool is_system_column(std::string_view name);

struct ReconcileDialect {
  std::function<std::string(const std::string&)> quote_ident;
  // Text of one non-NULL value for the row hash (`column` is qualified and quoted). Must
  // tell values of the column's type apart exactly (floats to the last bit).
  std::function<std::string(const std::string& column, const LogicalType&)> value_text;
  // 16 lowercase hex digits of a hash of a text expression (the sink's row hash).
  std::function<std::string(const std::string& text)> hash_text;
  std::function<std::string(const std::string& iso_utc)> timestamp_literal;
  std::string timestamp_type;  // declared type of the timestamp system columns
  std::string bool_type;
  std::string text_type;
  std::string true_literal;
  std::string false_literal;
  // Aggregate expression over the rows of a query: an order-independent checksum of the
  // row hashes `hash` (hash_text values), as an integer that fits int64; 0 for no rows.
  // Both sinks: sum of the first 15 hex digits (60 bits) of each hash, modulo 2^60. Empty:
  // the post-load verification compares row by row instead (a join, slower).
  std::function<std::string(const std::string& hash)> hash_sum;
};

struct ReconcileTables {
  std::string target;                    // quoted, qualified
  std::string staging;                   // quoted, qualified
  std::vector<Column> columns;           // the staged columns (all present in the target)
  std::set<std::string> target_columns;  // column names the target has now
  std::vector<Column> copied;            // copied with each row but not hashed (lineage columns)
};

struct ReconcilePlan {
  std::vector<std::string> prepare;  // ALTER TABLE ADD COLUMN of missing system columns, ...
  std::vector<std::pair<std::string, std::string>> counts;  // counter -> SELECT count(*)
  // snapshot_diff / scd2: the whole strategy; merge: what runs after the sink's merge.
  std::vector<std::string> apply;
  // Post-load verification after apply (counter -> SELECT of one integer): target_live_rows,
  // staged_checksum, target_checksum. Empty when reconciliation.verify is off.
  std::vector<std::pair<std::string, std::string>> verify;
  // Run only when the verification finds a difference, to say how many rows differ:
  // staged_rows_not_in_target, target_rows_not_in_staging (by key and row hash).
  std::vector<std::pair<std::string, std::string>> verify_detail;
};

// A reconciliation that failed during promotion (a delete guard breached, or the post-load
// verification with verify: error): the promotion was rolled back. Carries the run record's
// `reconciliation` value (counters, guards, post_load, "applied": false) so the runtime can
// record the numbers, not only the message. Sinks rethrow it as is (code GateFailed).
class ReconcileError : public Error {
 public:
  ReconcileError(ErrorCode code, std::string message, std::string hint,
                 nlohmann::json reconciliation);
  ~ReconcileError() override;
  const nlohmann::json& reconciliation() const { return reconciliation_; }

 private:
  nlohmann::json reconciliation_;
};

// The row hash expression of `columns` read through `alias` ("s", "t").
std::string row_hash_sql(const std::vector<Column>& columns, const std::string& alias,
                         const ReconcileDialect& dialect);

// Throws Error(ConfigBadValue) for a strategy that does not reconcile or keys that are not
// staged columns. `as_of` is the SQL literal of the run's timestamp (valid_from/valid_to,
// deleted_at); plans pass a placeholder.
ReconcilePlan plan_reconcile(const StrategySpec& strategy, const ReconcileTables& tables,
                             const ReconcileDialect& dialect, const std::string& as_of);

// The lines a plan prints before the strategy's steps: what lineage does, and for a
// reconciling strategy (`plan` non-null) its prepare statements, counts and the guards.
std::vector<std::string> describe_reconcile(const StrategySpec& strategy, const ReconcilePlan* plan);

// Lineage columns (stream key `lineage`): filled on the staging table with SQL during
// promotion, then copied to the target by the strategy like any staged column, so every
// strategy writes them exactly for the rows it inserts or updates:
//   __dpone__run_id    (text)       the run id
//   __dpone__loaded_at (timestamp)  the run's as-of time
//   __dpone__row_hash  (text)       row_hash_sql over the stream's columns (scd2 keeps its own)
// `sql`: ADD COLUMN + UPDATE on staging (columns it lacks), ADD COLUMN on the target (columns
// it lacks); `columns`: what the strategy must copy in addition to the stream's columns.
struct LineagePlan {
  std::vector<std::string> sql;
  std::vector<Column> columns;
};
LineagePlan plan_lineage(const StrategySpec& strategy, const ReconcileTables& tables,
                         const std::set<std::string>& staging_columns,
                         const ReconcileDialect& dialect, const std::string& run_id,
                         const std::string& as_of);

// Counters of one reconciliation, measured before anything changes.
struct ReconcileCounts {
  int64_t staged = 0;
  int64_t target_rows = 0;  // live rows before (soft-deleted and expired rows not counted)
  int64_t inserted = 0;     // new keys
  int64_t updated = 0;      // matched keys whose row hash changed
  int64_t unchanged = 0;    // matched keys with the same row hash
  int64_t deleted = 0;      // target keys missing at the source that the policy deletes
  int64_t reactivated = 0;  // keys soft-deleted (scd2: expired) before that reappeared
  int64_t missing = 0;      // target keys missing at the source (deleted unless `ignore`)
};

// The guards of SPEC "Reconciliation and deletes": throws Error(GateFailed) when the
// deletes would exceed max_delete_rows / max_delete_ratio of the live target rows, or when
// an empty snapshot would delete rows (unless allow_empty_snapshot). Returns what was judged.
nlohmann::json check_delete_guards(const StrategySpec& strategy, const ReconcileCounts& counts,
                                   const std::string& where, const std::string& target_name);

class ReconcileRunner {
 public:
  virtual ~ReconcileRunner() = default;
  virtual void exec(const std::string& sql) = 0;
  virtual int64_t count(const std::string& sql) = 0;
};

// Runs `plan` inside the caller's open transaction: prepare, counts, guards, then
// `sink_strategy` (the sink's merge for merge + reconciliation; may be empty), then apply,
// then the post-load verification. Every statement is appended to result.sql; result
// counters and result.reconciliation (the run record's `reconciliation`, with `post_load`)
// are filled. Throws ReconcileError (GateFailed) when a guard is breached or, with verify:
// error, the target does not match the snapshot: the caller rolls its transaction back.
void run_reconcile(const ReconcilePlan& plan, const StrategySpec& strategy, ReconcileRunner& runner,
                   const std::function<void()>& sink_strategy, const std::string& where,
                   const std::string& target_name, const std::string& as_of_iso,
                   PromoteResult& result);

// Registers on a connection: dpone_row_hash(text) -> 16 hex digits (first 8 bytes of MD5),
// and the aggregate dpone_hash_sum(hash) -> sum of the hashes' first 60 bits modulo 2^60
// (the same number PostgreSQL computes for ReconcileDialect::hash_sum).
void register_sqlite_reconcile_functions(sqlite3* db);

}  // namespace dpone
