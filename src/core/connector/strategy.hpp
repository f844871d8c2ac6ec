// The load strategy of a stream (sink.strategy in the manifest), parsed once by the
// runtime and handed to the sink. SPEC.md "Load strategies" says what each mode means.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace dpone {

enum class StrategyMode { FullRefresh, Append, Merge, Replace, PartitionReplace, SnapshotDiff, Scd2 };
// Auto: the sink picks; a sink that cannot tell which is safe picks TruncateInsert
// (postgres picks Exchange when nothing depends on the target's identity: README there).
enum class OverwriteMethod { TruncateInsert, Exchange, Auto };

struct StrategySpec {
  StrategyMode mode = StrategyMode::Append;
  OverwriteMethod overwrite = OverwriteMethod::Auto;            // full_refresh only
  std::vector<std::string> unique_key;                          // merge; append.only_new_rows
  bool only_new_rows = false;                                   // append
  bool allow_shrink = false;                                    // full_refresh
  // full_refresh refuses a load smaller than this fraction of a non-empty target.
  double shrink_guard_ratio = 0.5;
  nlohmann::json raw;  // the whole manifest value, for mode-specific keys of later strategies

  static StrategySpec from_json(const nlohmann::json& j);  // throws Error(ConfigBadValue)
};

std::string to_string(StrategyMode mode);
std::string to_string(OverwriteMethod method);

}  // namespace dpone
