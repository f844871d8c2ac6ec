#include "runtime/module_loader.hpp"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <sstream>

#include "core/errors.hpp"

namespace dpone {

struct ModuleLoader::Handle {
  void* dl = nullptr;
  ~Handle() {
    if (dl) dlclose(dl);
  }
};

namespace {

std::filesystem::path executable_dir() {
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return std::filesystem::current_path();
  return exe.parent_path();
}

}  // namespace

std::filesystem::path find_shared_library(const std::string& soname) {
  std::vector<std::filesystem::path> dirs;
  if (const char* ld = std::getenv("LD_LIBRARY_PATH")) {
    std::stringstream ss(ld);
    std::string d;
    while (std::getline(ss, d, ':'))
      if (!d.empty()) dirs.emplace_back(d);
  }
  for (const char* d : {"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu",
                        "/usr/lib/aarch64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib",
                        "/usr/local/lib"})
    dirs.emplace_back(d);
  for (const auto& d : dirs) {
    std::error_code ec;
    if (std::filesystem::exists(d / soname, ec)) return d / soname;
  }
  return {};
}

std::filesystem::path ModuleLoader::default_module_dir() {
  if (const char* env = std::getenv("DPONE_MODULE_PATH"); env && *env) return env;
  return (executable_dir() / ".." / "lib" / "dpone" / "modules").lexically_normal();
}

ModuleLoader::ModuleLoader(std::filesystem::path module_dir)
    : module_dir_(std::move(module_dir)), catalog_(ConnectorCatalog::load(module_dir_ / "index.json")) {}

ModuleLoader::~ModuleLoader() = default;

Availability ModuleLoader::check(const ConnectorDescriptor& d) const {
  Availability a;
  a.name = d.name;
  a.module_path = module_dir_ / d.module;
  if (!d.built) {
    a.reason = "module not built: " + d.reason;
    return a;
  }
  std::error_code ec;
  if (!std::filesystem::exists(a.module_path, ec)) {
    a.reason = "module file missing: " + a.module_path.string();
    return a;
  }
  for (const auto& req : d.json.value("requires", nlohmann::json::array())) {
    std::string lib = req.value("library", "");
    if (!lib.empty() && find_shared_library(lib).empty()) {
      a.package = req.value("package", "");
      a.reason = "client library " + lib + " not found" +
                 (a.package.empty() ? "" : " (install the Debian package " + a.package + ")");
      return a;
    }
  }
  a.available = true;
  return a;
}

const ConnectorFactory& ModuleLoader::factory(const std::string& connector) {
  if (const auto* f = registry_.find(connector)) return *f;
  const ConnectorDescriptor* d = catalog_.find(connector);
  if (!d) throw Error(ErrorCode::ConnectorUnknown, "unknown connector '" + connector + "'",
                      "run `dpone connectors list` to see the connectors of this build");
  Availability a = check(*d);
  if (!a.available)
    throw Error(ErrorCode::ModuleMissing, "connector '" + connector + "' is unavailable: " + a.reason,
                a.package.empty() ? "rebuild dpone with the connector's client library installed"
                                  : "apt-get install " + a.package);
  auto handle = std::make_unique<Handle>();
  handle->dl = dlopen(a.module_path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle->dl) {
    const char* err = dlerror();
    throw Error(ErrorCode::ModuleLoadFailed,
                "cannot load module " + a.module_path.string() + ": " + (err ? err : "unknown error"));
  }
  using AbiFn = int (*)();
  using RegisterFn = void (*)(ConnectorRegistry&);
  auto abi = reinterpret_cast<AbiFn>(dlsym(handle->dl, "dpone_module_abi_version"));
  auto reg = reinterpret_cast<RegisterFn>(dlsym(handle->dl, "dpone_module_register"));
  if (!abi || !reg)
    throw Error(ErrorCode::ModuleLoadFailed,
                "module " + a.module_path.string() + " is not a dpone connector module (entry points missing)");
  if (abi() != kModuleAbiVersion)
    throw Error(ErrorCode::ModuleLoadFailed,
                "module " + a.module_path.string() + " has ABI version " + std::to_string(abi()) +
                    ", this dpone needs " + std::to_string(kModuleAbiVersion),
                "rebuild the module with this version of dpone");
  reg(registry_);
  handles_.push_back(std::move(handle));
  loaded_.push_back(connector);
  const auto* f = registry_.find(connector);
  if (!f)
    throw Error(ErrorCode::ModuleLoadFailed,
                "module " + a.module_path.string() + " did not register connector '" + connector + "'");
  return *f;
}

const StateStoreFactory* ModuleLoader::state_store_factory(const std::string& type) {
  factory(type);
  return registry_.find_state_store(type);
}

std::vector<std::string> ModuleLoader::loaded() const { return loaded_; }

}  // namespace dpone
