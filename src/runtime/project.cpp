#include "runtime/project.hpp"

#include "core/errors.hpp"

namespace dpone {

std::string StateLocation::describe() const {
  if (type == "sqlite") return "sqlite:" + path.string();
  return type + ":" + connection + "/" + options.value("schema", "dpone") + ".state";
}

StateLocation state_location(const nlohmann::json& stream_config, const std::filesystem::path& base_dir) {
  StateLocation loc;
  const auto state = stream_config.value("state", nlohmann::json::object());
  loc.type = state.value("type", "sqlite");
  loc.options = state;
  if (loc.type == "sqlite") {
    std::filesystem::path p = state.value("path", ".dpone/state.db");
    loc.path = (p.is_absolute() ? p : base_dir / p).lexically_normal();
  } else {
    loc.connection = state.value("connection", "");
    loc.path = base_dir;
  }
  return loc;
}

namespace {

std::unique_ptr<StateStore> open_module_store(const StateLocation& where, const StateServices& services,
                                              bool create) {
  if (where.connection.empty())
    throw Error(ErrorCode::ConfigMissingKey,
                "state store type '" + where.type + "' needs `state.connection` (the connection it lives in)",
                "name a connection of type " + where.type + " from connections.yaml, e.g. "
                "state: {type: " + where.type + ", connection: warehouse}");
  if (!services.loader || !services.connections)
    throw Error(ErrorCode::Internal, "state store '" + where.describe() + "' opened without connections or modules");
  const StateStoreFactory* factory = services.loader->state_store_factory(where.type);
  if (!factory)
    throw Error(ErrorCode::ConfigBadValue,
                "state store type '" + where.type + "': the " + where.type + " connector provides no state store",
                "use state: {type: sqlite} or a connector that keeps state (postgres)");
  ResolvedConnection conn = services.connections->resolve(where.connection);
  if (conn.type != where.type)
    throw Error(ErrorCode::ConfigBadValue,
                "state store type '" + where.type + "' names connection '" + where.connection + "' of type '" +
                    conn.type + "'",
                "name a connection of type " + where.type);
  StateStoreContext ctx;
  ctx.options = where.options;
  ctx.connection = &conn;
  ctx.base_dir = where.path;
  ctx.create = create;
  return (*factory)(ctx);
}

}  // namespace

std::unique_ptr<StateStore> open_state(const StateLocation& where, const StateServices& services) {
  if (where.type == "sqlite") return open_sqlite_state_store(where.path.string());
  return open_module_store(where, services, true);
}

std::unique_ptr<StateStore> open_state_if_exists(const StateLocation& where, const StateServices& services) {
  if (where.type != "sqlite") return open_module_store(where, services, false);
  std::error_code ec;
  if (!std::filesystem::exists(where.path, ec)) return nullptr;
  return open_state(where);
}

std::filesystem::path runs_dir(const std::filesystem::path& base_dir) { return base_dir / ".dpone" / "runs"; }

}  // namespace dpone
