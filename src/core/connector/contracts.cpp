// Out-of-line helpers of the connector contracts: JSON forms for records and plans,
// and parsing of the manifest's sink.strategy map.
#include "core/connector/sink.hpp"
#include "core/connector/source.hpp"
#include "core/connector/strategy.hpp"
#include "core/errors.hpp"

#include <fmt/format.h>

namespace dpone {

nlohmann::json Window::to_json() const {
  nlohmann::json j{{"low", low}, {"high", high}, {"description", description}, {"empty", empty}};
  if (estimated_rows) j["estimated_rows"] = *estimated_rows;
  return j;
}

void throw_receipt_conflict(const std::string& where, const std::string& stream, const std::string& latest,
                            const std::string& expected) {
  throw Error(ErrorCode::StateConflict,
              fmt::format("{}: run {} promoted stream {} after this run planned its window (the newest load "
                          "receipt was {} then); this run's promotion was rolled back",
                          where, latest.empty() ? "(none)" : latest, stream,
                          expected.empty() ? "none" : "run " + expected),
              "nothing was loaded twice; re-run the stream to load what came after the other run's window, and "
              "make sure one stream is not scheduled twice at once (leases: docs/reliability.md)");
}

void warn_staging_left(Diagnostics* diagnostics, const std::string& where, const std::string& name,
                       const std::exception& e) noexcept {
  try {
    if (diagnostics)
      diagnostics->warn(fmt::format("{}: could not drop the staging {}: {}; the next run removes it", where, name,
                                    e.what()));
  } catch (...) {
  }
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
  // snapshot_diff and scd2 compare by key: reconciliation with its defaults is implied.
  s.reconcile.enabled = s.mode == StrategyMode::SnapshotDiff || s.mode == StrategyMode::Scd2;
  if (s.mode == StrategyMode::Merge && s.unique_key.empty())
    throw Error(ErrorCode::ConfigMissingKey, "strategy merge needs `unique_key`");
  if (s.only_new_rows && s.unique_key.empty())
    throw Error(ErrorCode::ConfigMissingKey, "append with only_new_rows needs `unique_key`");
  return s;
}

std::string to_string(DeletePolicy policy) {
  switch (policy) {
    case DeletePolicy::Ignore:
      return "ignore";
    case DeletePolicy::SoftDelete:
      return "soft_delete";
    case DeletePolicy::HardDelete:
      return "hard_delete";
  }
  return "ignore";
}

std::string to_string(VerifyMode mode) {
  switch (mode) {
    case VerifyMode::Off:
      return "off";
    case VerifyMode::Warn:
      return "warn";
    case VerifyMode::Error:
      return "error";
  }
  return "warn";
}

namespace {

// A number key of the reconciliation map; `where` names it in errors.
double ratio_of(const nlohmann::json& j, const char* key, double fallback) {
  if (!j.contains(key)) return fallback;
  if (!j[key].is_number())
    throw Error(ErrorCode::ConfigBadValue,
                fmt::format("reconciliation.{} must be a number between 0 and 1", key));
  double v = j[key].get<double>();
  if (!(v >= 0.0 && v <= 1.0))
    throw Error(
        ErrorCode::ConfigBadValue,
        fmt::format(
            "reconciliation.{} is {}; it must be between 0 and 1 (a fraction of the target's rows)",
            key, v));
  return v;
}

ReconcileSpec parse_reconciliation(const nlohmann::json& j, StrategyMode mode) {
  ReconcileSpec r;
  r.enabled = true;
  if (j.is_null()) return r;
  if (!j.is_object())
    throw Error(ErrorCode::ConfigBadValue,
                "reconciliation must be a map with `mode: key_snapshot`");
  std::string m = j.value("mode", "key_snapshot");
  if (m != "key_snapshot")
    throw Error(ErrorCode::ConfigBadValue,
                fmt::format("reconciliation.mode is '{}'; the only mode is key_snapshot", m));
  if (j.contains("delete_policy")) {
    std::string p = j["delete_policy"].is_string() ? j["delete_policy"].get<std::string>() : "";
    if (mode == StrategyMode::Scd2)
      throw Error(
          ErrorCode::ConfigBadValue,
          "reconciliation.delete_policy does not apply to scd2: a key missing from the snapshot "
          "always expires its current version (valid_to set, is_current false)",
          "remove delete_policy; max_delete_ratio and max_delete_rows still guard the expiries");
    if (p == "soft_delete")
      r.delete_policy = DeletePolicy::SoftDelete;
    else if (p == "hard_delete")
      r.delete_policy = DeletePolicy::HardDelete;
    else if (p == "ignore")
      r.delete_policy = DeletePolicy::Ignore;
    else
      throw Error(
          ErrorCode::ConfigBadValue,
          fmt::format(
              "reconciliation.delete_policy is '{}'; use soft_delete, hard_delete or ignore",
              j["delete_policy"].dump()));
  }
  r.is_deleted_column = j.value("is_deleted_column", false);
  r.max_delete_ratio = ratio_of(j, "max_delete_ratio", 0.5);
  if (j.contains("max_delete_rows")) {
    if (!j["max_delete_rows"].is_number_integer() || j["max_delete_rows"].get<int64_t>() < 0)
      throw Error(ErrorCode::ConfigBadValue,
                  "reconciliation.max_delete_rows must be an integer >= 0");
    r.max_delete_rows = j["max_delete_rows"].get<int64_t>();
  }
  r.allow_empty_snapshot = j.value("allow_empty_snapshot", false);
  if (j.contains("verify")) {
    const std::string v = j["verify"].is_string() ? j["verify"].get<std::string>() : "";
    if (v == "off")
      r.verify = VerifyMode::Off;
    else if (v == "warn")
      r.verify = VerifyMode::Warn;
    else if (v == "error")
      r.verify = VerifyMode::Error;
    else
      throw Error(ErrorCode::ConfigBadValue,
                  fmt::format("reconciliation.verify is {}; use warn (default), error or off",
                              j["verify"].dump()));
  }
  if (r.is_deleted_column && r.delete_policy != DeletePolicy::SoftDelete)
    throw Error(ErrorCode::ConfigBadValue,
                "reconciliation.is_deleted_column needs delete_policy: soft_delete");
  return r;
}

LineageSpec parse_lineage(const nlohmann::json& j) {
  LineageSpec l;
  if (j.is_null() || (j.is_boolean() && !j.get<bool>())) return l;
  if (j.is_boolean()) return LineageSpec{true, true, true};
  if (!j.is_array())
    throw Error(ErrorCode::ConfigBadValue,
                "lineage must be true or a list of run_id, loaded_at, row_hash");
  for (const auto& item : j) {
    std::string name = item.is_string() ? item.get<std::string>() : item.dump();
    if (name == "run_id")
      l.run_id = true;
    else if (name == "loaded_at")
      l.loaded_at = true;
    else if (name == "row_hash")
      l.row_hash = true;
    else
      throw Error(
          ErrorCode::ConfigBadValue,
          fmt::format("lineage names '{}'; the lineage columns are run_id, loaded_at and row_hash",
                      name));
  }
  return l;
}

}  // namespace

StrategySpec StrategySpec::for_stream(const nlohmann::json& cfg) {
  static const nlohmann::json kNone;
  const nlohmann::json& sink = cfg.is_object() && cfg.contains("sink") ? cfg["sink"] : kNone;
  StrategySpec s = from_json(sink.is_object() ? sink.value("strategy", nlohmann::json::object())
                                              : nlohmann::json::object());
  nlohmann::json rec =
      cfg.is_object() ? cfg.value("reconciliation", nlohmann::json()) : nlohmann::json();
  // SPEC names snapshot_diff's delete policy in the strategy: accepted there too, as long as
  // it does not contradict reconciliation.delete_policy.
  if (s.raw.contains("delete_policy")) {
    if (s.mode != StrategyMode::SnapshotDiff)
      throw Error(ErrorCode::ConfigBadValue,
                  "sink.strategy.delete_policy applies to snapshot_diff only",
                  "for merge use reconciliation: {mode: key_snapshot, delete_policy: ...}");
    if (rec.is_null()) rec = nlohmann::json::object();
    if (rec.is_object() && rec.contains("delete_policy") && rec["delete_policy"] != s.raw["delete_policy"])
      throw Error(ErrorCode::ConfigBadValue,
                  fmt::format("sink.strategy.delete_policy ({}) contradicts reconciliation.delete_policy ({})",
                              s.raw["delete_policy"].dump(), rec["delete_policy"].dump()),
                  "set it in one place");
    if (rec.is_object()) rec["delete_policy"] = s.raw["delete_policy"];
  }
  const bool implied = s.mode == StrategyMode::SnapshotDiff || s.mode == StrategyMode::Scd2;
  if (implied || !rec.is_null()) {
    if (!implied && s.mode != StrategyMode::Merge)
      throw Error(
          ErrorCode::ConfigBadValue,
          fmt::format(
              "reconciliation (key_snapshot) works with the strategies merge, snapshot_diff and "
              "scd2, not {}",
              to_string(s.mode)),
          s.mode == StrategyMode::FullRefresh
              ? "full_refresh already makes the target equal the source"
              : "use merge with a unique_key, or snapshot_diff");
    s.reconcile = parse_reconciliation(rec, s.mode);
    if (s.unique_key.empty())
      throw Error(
          ErrorCode::ConfigMissingKey,
          fmt::format(
              "strategy {} needs `unique_key` (the columns that identify a row in the snapshot)",
              to_string(s.mode)));
    // The staged rows of a full read are the key snapshot of the very snapshot the data
    // came from. An incremental read stages only its window: keys outside it would all
    // look deleted, so reconciling it would be wrong. Staging the key set separately from
    // the same source snapshot is not supported yet, so refuse rather than guess.
    const nlohmann::json& src = cfg.is_object() && cfg.contains("source") ? cfg["source"] : kNone;
    // Kafka sources always read a window of offsets, whatever the manifest says.
    const bool kafka = src.is_object() && src.value("connector", "") == "kafka";
    std::string inc =
        src.is_object() && src.contains("incremental") && src["incremental"].is_string()
            ? src["incremental"].get<std::string>()
            : (kafka ? "offsets" : "full");
    if (inc != "full" || (src.is_object() && src.contains("cursor"))) {
      throw Error(
          ErrorCode::ConfigBadValue,
          fmt::format("strategy {}{} needs a full snapshot of the source, but the source reads "
                      "incrementally (incremental: {}): the staged rows would hold only the "
                      "window's changes, so every key outside the window would look deleted",
                      to_string(s.mode), implied ? "" : " with reconciliation key_snapshot",
                      src.is_object() && src.contains("cursor") && inc == "full" ? "cursor" : inc),
          "read the whole object (remove `incremental`/`cursor` from the source), or use merge "
          "without reconciliation for incremental loads");
    }
  }
  s.lineage =
      parse_lineage(cfg.is_object() ? cfg.value("lineage", nlohmann::json()) : nlohmann::json());
  return s;
}

}  // namespace dpone
