// dpone: data movement from declarative manifests. See README.md and docs/.
#include <iostream>

#include "cli/commands.hpp"
#include "core/errors.hpp"
#include "core/manifest/manifest.hpp"
#include "core/util/redactor.hpp"
#include "runtime/console.hpp"

int main(int argc, char** argv) {
  CLI::App app{"dpone: move data between databases, files, Kafka and APIs from YAML manifests,\n"
               "staging-first, with explicit state committed only after the sink succeeded."};
  app.require_subcommand(1);
  app.fallthrough();  // global flags such as -q work after the command too
  app.set_version_flag("--version", std::string(DPONE_VERSION) + " (" + dpone::cli::allocator_name() + ")");
  bool quiet = false;
  app.add_flag("-q,--quiet", quiet, "Print only results and errors");
  int exit_code = 0;
  dpone::cli::register_manifest_commands(app, &exit_code);
  dpone::cli::register_state_commands(app, &exit_code);
  dpone::cli::register_record_commands(app, &exit_code);
  dpone::cli::register_connector_commands(app, &exit_code);
  dpone::cli::register_doctor_command(app, &exit_code);
  dpone::cli::register_perf_commands(app, &exit_code);
  app.parse_complete_callback([&] { dpone::Console::get().set_quiet(quiet); });
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  } catch (const dpone::ManifestError& e) {
    for (const auto& p : e.problems()) std::cerr << dpone::redact(p.to_string()) << "\n";
    std::cerr << e.problems().size() << " problem(s) found\n";
    return 2;
  } catch (const dpone::Error& e) {
    dpone::Console::get().error(std::string("[") + std::string(e.code_name()) + "] " + e.what());
    if (!e.hint().empty()) std::cerr << "hint: " << dpone::redact(e.hint()) << "\n";
    return dpone::exit_code_for(e.code());
  } catch (const std::exception& e) {
    dpone::Console::get().error(std::string("[INTERNAL] ") + e.what());
    return 1;
  }
  return exit_code;
}
