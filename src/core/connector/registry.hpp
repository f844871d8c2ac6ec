// Connector registration. Each connector module exports exactly two C symbols
// (see DPONE_MODULE below): its ABI version, checked before anything else is called,
// and one registration function that adds its factories here. Capabilities and
// options are declared in the connector's connector.json (copied into the module
// index at build time), so listing and validating never open a module.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "core/connector/sink.hpp"
#include "core/connector/source.hpp"

namespace dpone {

// Bumped whenever a contract header changes in a way that breaks modules.
inline constexpr int kModuleAbiVersion = 2;  // 2: TargetInfo.server, capabilities

struct ConnectorFactory {
  std::string name;
  std::function<std::unique_ptr<Source>(const SourceContext&)> make_source;  // empty: no source
  std::function<std::unique_ptr<Sink>(const SinkContext&)> make_sink;        // empty: no sink
};

class ConnectorRegistry {
 public:
  void add(ConnectorFactory factory) { factories_[factory.name] = std::move(factory); }
  const ConnectorFactory* find(const std::string& name) const {
    auto it = factories_.find(name);
    return it == factories_.end() ? nullptr : &it->second;
  }

 private:
  std::map<std::string, ConnectorFactory> factories_;
};

}  // namespace dpone

// One visible entry point per module.
#define DPONE_MODULE(register_fn)                                                     \
  extern "C" int dpone_module_abi_version() { return ::dpone::kModuleAbiVersion; }    \
  extern "C" void dpone_module_register(::dpone::ConnectorRegistry& registry) {       \
    register_fn(registry);                                                            \
  }
