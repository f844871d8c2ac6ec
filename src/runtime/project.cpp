#include "runtime/project.hpp"

#include "core/errors.hpp"

namespace dpone {

StateLocation state_location(const nlohmann::json& stream_config, const std::filesystem::path& base_dir) {
  StateLocation loc;
  const auto state = stream_config.value("state", nlohmann::json::object());
  loc.type = state.value("type", "sqlite");
  std::filesystem::path p = state.value("path", ".dpone/state.db");
  loc.path = (p.is_absolute() ? p : base_dir / p).lexically_normal();
  return loc;
}

std::unique_ptr<StateStore> open_state(const StateLocation& where) {
  if (where.type != "sqlite")
    throw Error(ErrorCode::ConfigBadValue, "state store type '" + where.type + "' is not available in this build");
  return open_sqlite_state_store(where.path.string());
}

std::unique_ptr<StateStore> open_state_if_exists(const StateLocation& where) {
  std::error_code ec;
  if (!std::filesystem::exists(where.path, ec)) return nullptr;
  return open_state(where);
}

std::filesystem::path runs_dir(const std::filesystem::path& base_dir) { return base_dir / ".dpone" / "runs"; }

}  // namespace dpone
