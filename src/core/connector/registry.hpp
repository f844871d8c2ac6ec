// Connector registration. Each connector module exports exactly two C symbols
// (see DPONE_MODULE below): its ABI version, checked before anything else is called,
// and one registration function that adds its factories here. Capabilities and
// options are declared in the connector's connector.json (copied into the module
// index at build time), so listing and validating never open a module.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "core/connector/sink.hpp"
#include "core/connector/source.hpp"
#include "core/state/state_store.hpp"

namespace dpone {

// Bumped whenever a contract header changes in a way that breaks modules.
// 2: TargetInfo.server, capabilities; 3: state stores in modules, state commits in
// the promotion transaction, InternalQuery details; 4: Source::committed().
inline constexpr int kModuleAbiVersion = 4;

// What a module's state store factory gets: the stream's `state:` map and the
// connection it names (`state.connection`, resolved; null when it names none).
struct StateStoreContext {
  nlohmann::json options;
  const ResolvedConnection* connection = nullptr;
  std::filesystem::path base_dir;
  // false: read-only commands (plan, state list/show/history, doctor): return nullptr
  // when the store does not exist yet instead of creating it.
  bool create = true;
};

struct ConnectorFactory {
  std::string name;
  std::function<std::unique_ptr<Source>(const SourceContext&)> make_source;  // empty: no source
  std::function<std::unique_ptr<Sink>(const SinkContext&)> make_sink;        // empty: no sink
};

// A state store of `state: {type: <name>, ...}`, registered by the module named <name>
// next to its connector (ConnectorRegistry::add_state_store). The store may outlive the
// context (it copies what it keeps) but not the module.
using StateStoreFactory = std::function<std::unique_ptr<StateStore>(const StateStoreContext&)>;

class ConnectorRegistry {
 public:
  void add(ConnectorFactory factory) { factories_[factory.name] = std::move(factory); }
  const ConnectorFactory* find(const std::string& name) const {
    auto it = factories_.find(name);
    return it == factories_.end() ? nullptr : &it->second;
  }
  void add_state_store(const std::string& name, StateStoreFactory factory) {
    state_stores_[name] = std::move(factory);
  }
  // nullptr when no loaded module provides a state store of that type.
  const StateStoreFactory* find_state_store(const std::string& name) const {
    auto it = state_stores_.find(name);
    return it == state_stores_.end() ? nullptr : &it->second;
  }

 private:
  std::map<std::string, ConnectorFactory> factories_;
  std::map<std::string, StateStoreFactory> state_stores_;
};

}  // namespace dpone

// One visible entry point per module.
#define DPONE_MODULE(register_fn)                                                     \
  extern "C" int dpone_module_abi_version() { return ::dpone::kModuleAbiVersion; }    \
  extern "C" void dpone_module_register(::dpone::ConnectorRegistry& registry) {       \
    register_fn(registry);                                                            \
  }
