// The dpone command: one function per command group, registered on the CLI11 app.
// Every command returns an exit code: 0 ok, 1 run failed, 2 invalid configuration,
// 3 dependency unavailable (see core/errors.hpp).
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "core/manifest/connections.hpp"
#include "core/manifest/manifest.hpp"
#include "runtime/module_loader.hpp"

namespace dpone::cli {

// What most commands load: modules index, connections, and the compiled manifest.
struct Project {
  std::unique_ptr<ModuleLoader> loader;
  std::optional<ConnectionResolver> connections;
  std::optional<Manifest> manifest;
};

struct CommonOptions {
  std::string manifest = "dpone.yaml";
  std::vector<std::string> vars;    // k=v
  std::vector<std::string> select;  // names or globs
  std::string format = "text";
};

Project load_project(const CommonOptions& options);
std::vector<const StreamSpec*> selected(const Project& project, const CommonOptions& options);
// Adds the `--var`/`--select`/`--format` options shared by several commands.
void add_common(CLI::App* cmd, CommonOptions& options, bool with_select, bool manifest_positional);

// "jemalloc 5.3.0-..." or "system malloc": the allocator this executable was linked with.
std::string allocator_name();

// Each registers its subcommands; the callback sets *exit_code.
void register_manifest_commands(CLI::App& app, int* exit_code);   // validate render explain plan run
void register_state_commands(CLI::App& app, int* exit_code);      // state ...
void register_record_commands(CLI::App& app, int* exit_code);     // runs list, run-report
void register_connector_commands(CLI::App& app, int* exit_code);  // connectors ..., docs
void register_doctor_command(CLI::App& app, int* exit_code);      // doctor
void register_perf_commands(CLI::App& app, int* exit_code);       // perf advise

}  // namespace dpone::cli
