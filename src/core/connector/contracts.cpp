// Out-of-line helpers of the connector contracts: JSON forms for records and plans,
// and parsing of the manifest's sink.strategy map.
#include "core/connector/sink.hpp"
#include "core/connector/source.hpp"
#include "core/connector/strategy.hpp"
#include "core/errors.hpp"

namespace dpone {

nlohmann::json Window::to_json() const {
  nlohmann::json j{{"low", low}, {"high", high}, {"description", description}, {"empty", empty}};
  if (estimated_rows) j["estimated_rows"] = *estimated_rows;
  return j;
}

nlohmann::json GateResult::to_json() const {
  return {{"name", name},       {"type", type},         {"severity", severity},
          {"passed", passed},   {"failing_rows", failing_rows}, {"samples", samples},
          {"sql", sql},         {"detail", detail}};
}

std::string to_string(StrategyMode mode) {
  switch (mode) {
    case StrategyMode::FullRefresh: return "full_refresh";
    case StrategyMode::Append: return "append";
    case StrategyMode::Merge: return "merge";
    case StrategyMode::Replace: return "replace";
    case StrategyMode::PartitionReplace: return "partition_replace";
    case StrategyMode::SnapshotDiff: return "snapshot_diff";
    case StrategyMode::Scd2: return "scd2";
  }
  return "unknown";
}

std::string to_string(OverwriteMethod method) {
  switch (method) {
    case OverwriteMethod::TruncateInsert: return "truncate_insert";
    case OverwriteMethod::Exchange: return "exchange";
    case OverwriteMethod::Auto: return "auto";
  }
  return "auto";
}

StrategySpec StrategySpec::from_json(const nlohmann::json& j) {
  StrategySpec s;
  s.raw = j;
  if (!j.is_object()) throw Error(ErrorCode::ConfigBadValue, "sink.strategy must be a map with a `mode`");
  std::string mode = j.value("mode", "");
  bool found = false;
  for (auto m : {StrategyMode::FullRefresh, StrategyMode::Append, StrategyMode::Merge,
                 StrategyMode::Replace, StrategyMode::PartitionReplace, StrategyMode::SnapshotDiff,
                 StrategyMode::Scd2}) {
    if (to_string(m) == mode) {
      s.mode = m;
      found = true;
    }
  }
  if (!found) throw Error(ErrorCode::ConfigBadValue, "unknown strategy mode '" + mode + "'");
  std::string ow = j.value("overwrite", "auto");
  if (ow == "exchange") s.overwrite = OverwriteMethod::Exchange;
  else if (ow == "truncate_insert") s.overwrite = OverwriteMethod::TruncateInsert;
  else if (ow != "auto")
    throw Error(ErrorCode::ConfigBadValue, "unknown overwrite method '" + ow + "'");
  if (j.contains("unique_key")) {
    const auto& k = j["unique_key"];
    if (k.is_string()) s.unique_key.push_back(k.get<std::string>());
    else for (const auto& c : k) s.unique_key.push_back(c.get<std::string>());
  }
  s.only_new_rows = j.value("only_new_rows", false);
  s.allow_shrink = j.value("allow_shrink", false);
  s.shrink_guard_ratio = j.value("shrink_guard_ratio", 0.5);
  if (s.mode == StrategyMode::Merge && s.unique_key.empty())
    throw Error(ErrorCode::ConfigMissingKey, "strategy merge needs `unique_key`");
  if (s.only_new_rows && s.unique_key.empty())
    throw Error(ErrorCode::ConfigMissingKey, "append with only_new_rows needs `unique_key`");
  return s;
}

}  // namespace dpone
