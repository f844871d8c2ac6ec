// dpone doctor [MANIFEST]: modules and client libraries, native tools, and for a
// manifest every stream's source and sink probed live. Exit 1 when a required check
// fails (a module a stream needs, a connection that does not answer).
#include <fmt/format.h>

#include "cli/commands.hpp"
#include "runtime/console.hpp"
#include "runtime/doctor.hpp"

namespace dpone::cli {

void register_doctor_command(CLI::App& app, int* exit_code) {
  static CommonOptions o;
  static bool machine_only = true;
  auto* doctor = app.add_subcommand("doctor", "Check modules, client libraries, native tools and a manifest's connections");
  doctor->add_option("manifest", o.manifest, "Manifest whose connections to probe (optional)");
  doctor->add_option("--var", o.vars, "Set a manifest variable: NAME=VALUE (repeatable)");
  doctor->add_option("--format", o.format, "text or json")->check(CLI::IsMember({"text", "json"}));
  doctor->callback([exit_code, doctor] {
    machine_only = doctor->count("manifest") == 0;
    DoctorReport report;
    if (machine_only) {
      ModuleLoader loader(ModuleLoader::default_module_dir());
      report = run_doctor(loader, nullptr, nullptr);
    } else {
      Project p = load_project(o);
      report = run_doctor(*p.loader, &*p.manifest, &*p.connections);
    }
    if (o.format == "json") Console::get().out(report.to_json().dump(2));
    else Console::get().out(report.to_text());
    *exit_code = report.ok() ? 0 : 1;
  });
}

}  // namespace dpone::cli
