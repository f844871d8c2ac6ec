// Where a project's files live: `.dpone/` beside the manifest holds the default state
// store (state.db) and run records (runs/<run_id>/run.json, metrics.prom).
//
// State stores: `state: {type: sqlite, path: ...}` is built in; any other type names a
// connector module that provides a state store (ConnectorRegistry::add_state_store),
// e.g. `state: {type: postgres, connection: warehouse, schema: dpone}`. The module is
// loaded through the ModuleLoader, so the core never links a client library for it.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/manifest/connections.hpp"
#include "core/state/state_store.hpp"
#include "runtime/module_loader.hpp"

namespace dpone {

struct StateLocation {
  std::string type = "sqlite";
  std::filesystem::path path;  // sqlite: absolute
  std::string connection;      // module stores: the connection id (`state.connection`)
  nlohmann::json options;      // the stream's `state:` map as given
  bool operator==(const StateLocation& o) const {
    return type == o.type && path == o.path && connection == o.connection &&
           options.value("schema", "") == o.options.value("schema", "");
  }
  // For plans and listings before a store is opened: "sqlite:/abs/.dpone/state.db",
  // "postgres:warehouse/dpone.state" (the same text the opened store's describe() gives).
  std::string describe() const;
};

// What opening a store in a connector module needs. Both may be null for sqlite.
struct StateServices {
  const ConnectionResolver* connections = nullptr;
  ModuleLoader* loader = nullptr;
};

// The state store a stream's `state:` config names, resolved against base_dir.
StateLocation state_location(const nlohmann::json& stream_config, const std::filesystem::path& base_dir);
// Opens (creating) the store. For read-only commands use open_state_if_exists.
// Throws Error(ConfigBadValue) for an unknown type, Error(ConfigMissingKey) when a
// module store names no connection, and the module's errors (StateStoreFailed, ...).
std::unique_ptr<StateStore> open_state(const StateLocation& where, const StateServices& services = {});
// nullptr when the store does not exist yet (plan and read commands never create it).
std::unique_ptr<StateStore> open_state_if_exists(const StateLocation& where,
                                                 const StateServices& services = {});

std::filesystem::path runs_dir(const std::filesystem::path& base_dir);

}  // namespace dpone
