// Sink contract (ARCHITECTURE.md "Contracts"): staged loads only.
//
// Lifecycle, called by the runtime from one thread:
//   inspect() -> render_ddl(changes) -> stage(artifact) -> check(gates) ->
//   promote(staged, request) | abort(staged)
// Rules:
//   - stage() writes only to a staging object named after the run id; the target is
//     untouched until promote().
//   - promote() applies the evolution DDL, the strategy and the load receipt together,
//     in one transaction where the system allows it, and says in its result whether it
//     did (PromoteResult::atomic).
//   - abort() removes the staging object; it must not throw.
//   - stage() that throws has removed whatever staging it created (the runtime has no
//     StagedLoad to abort in that case).
//   - A sink never writes dpone state on its own: it writes load receipts, which the
//     runtime reads back with latest_receipt() to recover from a crash between promote
//     and state commit. The one exception is PromoteRequest::state_commit: when the
//     state store lives in the sink's own database, the runtime asks the sink to run
//     that compare-and-set commit inside the promotion transaction, and the sink says
//     in PromoteResult::state_committed that it did (docs/reliability.md).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/connector/artifact.hpp"
#include "core/connector/connection.hpp"
#include "core/connector/diagnostics.hpp"
#include "core/connector/strategy.hpp"
#include "core/evolution/schema_diff.hpp"
#include "core/state/state_store.hpp"
#include "core/types.hpp"

namespace dpone {

struct SinkContext {
  std::string stream;
  std::string run_id;
  nlohmann::json options;                // the stream's merged `sink:` map
  const ResolvedConnection* connection;  // null when the sink names none
  std::filesystem::path base_dir;
  Diagnostics* diagnostics;
  // Called by stage() after each batch it wrote: rows and bytes so far. The runtime
  // uses it for progress and for the `during_stage` failpoint.
  std::function<void(int64_t rows, int64_t bytes)> on_progress;
};

struct TargetInfo {
  std::string name;  // e.g. "main.customers" or a file path
  bool exists = false;
  bool schemaless = false;      // no enforced schema (files): evolution does not apply
  Schema schema;                // valid when exists and not schemaless
  std::optional<int64_t> rows;  // row count, when cheap to know
  // What the sink talks to and which of its features dpone uses there, for doctor and
  // plans: e.g. "PostgreSQL 15.18" and {"COPY FROM STDIN", "transactional DDL", ...}.
  std::string server;
  std::vector<std::string> capabilities;
};

struct StagedLoad {
  std::string staging_name;
  int64_t rows = 0;
  int64_t bytes = 0;
  nlohmann::json details;
};

struct GateSpec {
  std::string name;  // e.g. "merge_key_not_null"
  std::string type;  // a type of kSqlGateTypes (core/connector/sql_gates.hpp)
  std::vector<std::string> columns;
  std::string severity = "error";  // error | warn
  nlohmann::json params;
};

struct GateResult {
  std::string name;
  std::string type;
  std::string severity;
  bool passed = false;
  int64_t failing_rows = 0;
  std::vector<std::string> samples;  // a few failing values
  std::string sql;                   // what ran, where it ran as SQL
  std::string detail;                // what was compared ("source 10 rows, staged 9 ..."), or ""
  nlohmann::json to_json() const;
};

// Written by promote() in the same transaction as the data (where the sink has one).
struct LoadReceipt {
  std::string stream;
  std::string run_id;
  int64_t base_revision = 0;  // state revision the run started from
  nlohmann::json window;
  nlohmann::json new_position;
  int64_t rows = 0;
  std::string loaded_at;
};

struct PromoteRequest {
  StrategySpec strategy;
  std::vector<const SchemaChange*> changes;  // evolution to apply before the strategy
  Schema source_schema;
  LoadReceipt receipt;
  // Compare-and-set on receipts: the run id of the stream's newest receipt when the run
  // planned its window ("" when there was none). A sink with transactions re-reads the
  // newest receipt inside the promotion transaction, after locking the stream's
  // receipts, and rolls back with StateConflict if it is another one: two runs that
  // both planned one window (a lease bypassed, a paused holder) never both promote it.
  std::string expected_latest_receipt;
  // Set by the runtime when the state store can be written by a sink
  // (StateStore::transactional_target()). A sink whose database has that identity runs
  // the commit inside the promotion transaction (a revision conflict rolls the whole
  // promotion back with StateConflict) and sets PromoteResult::state_committed; any
  // other sink ignores it, and the runtime commits after promotion as usual.
  std::optional<StateCommitRequest> state_commit;
};

struct PromoteResult {
  int64_t inserted = 0;
  int64_t updated = 0;
  int64_t deleted = 0;
  // Strategies that reconcile (StrategySpec::reconciles()): counters inserted, updated,
  // unchanged, deleted, reactivated; the delete policy, guards and the as-of time written
  // into system columns (docs/reconciliation.md). Null for the other strategies.
  nlohmann::json reconciliation;
  bool atomic = false;           // DDL + data + receipt committed together
  std::vector<std::string> sql;  // statements executed, in order
  // The state as committed with the data (request.state_commit done in the promotion
  // transaction); nullopt when the sink did not commit state.
  std::optional<StreamState> state_committed;
};

// True when the staging object `name` carries the id of a run in `live_run_ids`, as a
// sink names its staging (`sanitize`: the sink's run-id sanitizer). cleanup_abandoned()
// keeps such objects: they belong to a run that still holds its lease.
template <class Sanitize>
bool names_live_run(std::string_view name, const std::vector<std::string>& live_run_ids,
                    Sanitize&& sanitize) {
  for (const auto& id : live_run_ids) {
    const std::string s = sanitize(id);
    if (!s.empty() && name.find(s) != std::string_view::npos) return true;
  }
  return false;
}

// The StateConflict a promotion throws when the stream's newest receipt is `latest`, not
// the `expected` one the run planned with (PromoteRequest::expected_latest_receipt).
// The warning of an abort() that could not drop staging `name` (abort never throws; the
// runtime reports the staging as left behind, and the next run's cleanup removes it).
void warn_staging_left(Diagnostics* diagnostics, const std::string& where, const std::string& name,
                       const std::exception& e) noexcept;

[[noreturn]] void throw_receipt_conflict(const std::string& where, const std::string& stream,
                                         const std::string& latest, const std::string& expected);

class Sink {
 public:
  virtual ~Sink() = default;
  virtual TargetInfo inspect() = 0;
  virtual std::vector<ArtifactSpec> accepts() const = 0;
  // Dialect DDL for the changes (create table, add column, widen), for plans and promote.
  virtual std::vector<std::string> render_ddl(const Schema& source_schema,
                                              const std::vector<const SchemaChange*>& changes) = 0;
  // The strategy's SQL steps (or file operations) as they would run, for plans.
  virtual std::vector<std::string> describe_promotion(const StrategySpec& strategy,
                                                      const Schema& source_schema) = 0;
  // Removes staging objects left by earlier runs that died. Returns what was removed.
  // Staging named after a run of `live_run_ids` (runs that hold a live lease in the
  // state store, this run included) belongs to a run still working and is kept.
  virtual std::vector<std::string> cleanup_abandoned(
      const std::vector<std::string>& live_run_ids) = 0;
  // Decides the promotions that dead runs of this stream began and did not finish, for a
  // sink whose promotion is not one transaction (the ClickHouse sink): a change that
  // landed gets its receipt, one that did not is undone or left to load again. Called
  // under the stream's lease before receipts are read; runs of `live_run_ids` are not
  // dead. Returns what it decided.
  virtual std::vector<std::string> recover_promotions(
      const std::vector<std::string>& live_run_ids) {
    (void)live_run_ids;
    return {};
  }
  virtual StagedLoad stage(Artifact artifact, const Schema& source_schema) = 0;
  virtual std::vector<GateResult> check(const StagedLoad& staged,
                                        const std::vector<GateSpec>& gates) = 0;
  virtual PromoteResult promote(const StagedLoad& staged, const PromoteRequest& request) = 0;
  virtual void abort(const StagedLoad& staged) noexcept = 0;
  // The newest receipt for this stream, if the sink keeps receipts.
  virtual std::optional<LoadReceipt> latest_receipt() = 0;
  // True when stage() loads StreamingRows::parts concurrently (one connection each).
  virtual bool loads_parts() const { return false; }
};

// The run id of the sink's newest receipt, "" when it has none: what a run that plans its
// window now passes as PromoteRequest::expected_latest_receipt.
inline std::string newest_receipt_run_id(Sink& sink) {
  const auto newest = sink.latest_receipt();
  return newest ? newest->run_id : std::string();
}

}  // namespace dpone
