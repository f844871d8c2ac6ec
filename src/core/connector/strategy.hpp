// The load strategy of a stream (sink.strategy in the manifest), parsed once by the
// runtime and handed to the sink. SPEC.md "Load strategies" says what each mode means.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace dpone {

enum class StrategyMode { FullRefresh, Append, Merge, Replace, PartitionReplace, SnapshotDiff, Scd2 };
// Auto: the sink picks; a sink that cannot tell which is safe picks TruncateInsert
// (postgres picks Exchange when nothing depends on the target's identity: README there).
enum class OverwriteMethod { TruncateInsert, Exchange, Auto };

// What happens to target rows whose key is missing from a full source snapshot.
enum class DeletePolicy { Ignore, SoftDelete, HardDelete };

// Post-load verification of a reconciliation (reconciliation.verify): after the strategy's
// writes, inside the promotion transaction, the target's live rows are compared with the
// staged snapshot (count and content checksum). Warn records a mismatch and commits; Error
// fails the run and rolls the promotion back; Off skips the comparison (two more scans).
enum class VerifyMode { Off, Warn, Error };

// Key-snapshot reconciliation (stream key `reconciliation`, docs/reconciliation.md).
// snapshot_diff and scd2 always reconcile (they imply mode key_snapshot); merge does when
// `reconciliation: {mode: key_snapshot}` is set. The staged rows of a full read are the
// key snapshot, so reconciliation refuses incremental sources (StrategySpec::for_stream).
struct ReconcileSpec {
  bool enabled = false;                                   // key_snapshot in force
  DeletePolicy delete_policy = DeletePolicy::SoftDelete;  // scd2: always expires instead
  bool is_deleted_column = false;  // soft_delete also keeps __dpone__is_deleted
  double max_delete_ratio = 0.5;   // of the target's live rows; a breach fails the run
  std::optional<int64_t> max_delete_rows;
  bool allow_empty_snapshot = false;  // an empty snapshot may delete every row
  VerifyMode verify = VerifyMode::Warn;
};

// Lineage columns the sink fills with SQL during promotion (stream key `lineage`).
struct LineageSpec {
  bool run_id = false;     // __dpone__run_id
  bool loaded_at = false;  // __dpone__loaded_at
  bool row_hash = false;   // __dpone__row_hash
  bool any() const { return run_id || loaded_at || row_hash; }
};

struct StrategySpec {
  StrategyMode mode = StrategyMode::Append;
  OverwriteMethod overwrite = OverwriteMethod::Auto;  // full_refresh only
  std::vector<std::string> unique_key;                // merge; append.only_new_rows
  bool only_new_rows = false;                         // append
  bool allow_shrink = false;                          // full_refresh
  // full_refresh refuses a load smaller than this fraction of a non-empty target.
  double shrink_guard_ratio = 0.5;
  nlohmann::json raw;       // the whole manifest value, for mode-specific keys of later strategies
  ReconcileSpec reconcile;  // filled by for_stream()
  LineageSpec lineage;      // filled by for_stream()

  // snapshot_diff, scd2 or a key_snapshot reconciliation: the sink compares staging with
  // the target by unique_key (which must then be unique and not null in staging).
  bool reconciles() const { return reconcile.enabled; }

  static StrategySpec from_json(const nlohmann::json& j);  // throws Error(ConfigBadValue)
  // The whole stream config: sink.strategy plus the stream keys `reconciliation` and
  // `lineage`, checked against the source's read mode (throws Error(ConfigBadValue)).
  static StrategySpec for_stream(const nlohmann::json& stream_config);
};

std::string to_string(DeletePolicy policy);
std::string to_string(VerifyMode mode);

std::string to_string(StrategyMode mode);
std::string to_string(OverwriteMethod method);

}  // namespace dpone
