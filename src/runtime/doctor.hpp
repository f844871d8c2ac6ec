// `dpone doctor`: what this machine and a manifest's connections can do, each answer
// read from the system (module index and files on disk, PATH, live connections), never
// assumed. Connections are probed through the connectors' own read-only calls
// (Source::plan_window, Sink::inspect), so a probe is exactly what a run would do first.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/manifest/connections.hpp"
#include "core/manifest/manifest.hpp"
#include "runtime/module_loader.hpp"

namespace dpone {

struct DoctorCheck {
  std::string group;   // modules | tools | streams
  std::string name;    // e.g. "postgres", "psql", "orders source (postgres, connection src)"
  std::string status;  // ok | fail | missing (optional and absent)
  std::string detail;
  std::string hint;    // what to do, for anything not ok
  bool required = false;
};

struct DoctorReport {
  std::vector<DoctorCheck> checks;
  bool ok() const;  // no required check failed
  nlohmann::json to_json() const;
  std::string to_text() const;
};

// manifest and connections may be null (machine checks only).
DoctorReport run_doctor(ModuleLoader& loader, const Manifest* manifest, const ConnectionResolver* connections);

}  // namespace dpone
