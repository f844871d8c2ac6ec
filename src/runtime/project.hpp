// Where a project's files live: `.dpone/` beside the manifest holds the default state
// store (state.db) and run records (runs/<run_id>/run.json, metrics.prom).
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/state/state_store.hpp"

namespace dpone {

struct StateLocation {
  std::string type = "sqlite";
  std::filesystem::path path;  // absolute
  bool operator==(const StateLocation&) const = default;
};

// The state store a stream's `state:` config names, resolved against base_dir.
StateLocation state_location(const nlohmann::json& stream_config, const std::filesystem::path& base_dir);
// Opens (creating) the store. For read-only commands use open_state_if_exists.
std::unique_ptr<StateStore> open_state(const StateLocation& where);
// nullptr when the store does not exist yet (plan and read commands never create it).
std::unique_ptr<StateStore> open_state_if_exists(const StateLocation& where);

std::filesystem::path runs_dir(const std::filesystem::path& base_dir);

}  // namespace dpone
