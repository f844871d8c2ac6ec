// Finds, checks and loads connector modules (ARCHITECTURE.md "Lazy optional
// dependencies"). Listing and availability checks read only the generated index and
// the file system: no module is opened until a stream needs its connector.
//
// Module directory: $DPONE_MODULE_PATH, else <dir of the dpone executable>/../lib/dpone/modules.
// Loaded modules stay loaded until the loader is destroyed (objects they created must be
// destroyed first: the loader outlives every Source and Sink of a run).
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/connector/catalog.hpp"
#include "core/connector/registry.hpp"

namespace dpone {

struct Availability {
  std::string name;
  bool available = false;
  std::string reason;   // why not: module not built, module file missing, library missing
  std::string package;  // Debian package that provides what is missing, if known
  std::filesystem::path module_path;
};

class ModuleLoader {
 public:
  explicit ModuleLoader(std::filesystem::path module_dir);
  ~ModuleLoader();
  ModuleLoader(const ModuleLoader&) = delete;
  ModuleLoader& operator=(const ModuleLoader&) = delete;

  static std::filesystem::path default_module_dir();

  const ConnectorCatalog& catalog() const { return catalog_; }
  const std::filesystem::path& module_dir() const { return module_dir_; }
  // Checks module file and client libraries on disk, without loading anything.
  Availability check(const ConnectorDescriptor& descriptor) const;
  // Loads the connector's module on first use (ABI-checked) and returns its factory.
  // Throws Error(ConnectorUnknown | ModuleMissing | ModuleLoadFailed).
  const ConnectorFactory& factory(const std::string& connector);
  // The state store factory of `state: {type: <type>}`: loads the module of that name
  // (as factory() does) and returns what it registered with add_state_store, or nullptr
  // when the module provides no state store.
  const StateStoreFactory* state_store_factory(const std::string& type);
  // Names of modules loaded so far (for tests and doctor).
  std::vector<std::string> loaded() const;

 private:
  struct Handle;
  std::filesystem::path module_dir_;
  ConnectorCatalog catalog_;
  // Declared before registry_ so the registry (whose std::functions point into the
  // modules) is destroyed before the modules are unloaded.
  std::vector<std::unique_ptr<Handle>> handles_;
  ConnectorRegistry registry_;
  std::vector<std::string> loaded_;
};

// Locates a shared library by soname in the dynamic linker's usual directories
// and LD_LIBRARY_PATH. Returns an empty path when not found.
std::filesystem::path find_shared_library(const std::string& soname);

}  // namespace dpone
