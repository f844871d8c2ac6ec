// dpone perf advise [RUN_ID|--last] -m MANIFEST: recommendations from recorded runs.
#include <fmt/format.h>

#include "cli/commands.hpp"
#include "core/errors.hpp"
#include "runtime/console.hpp"
#include "runtime/perf_advise.hpp"
#include "runtime/project.hpp"
#include "runtime/run_record.hpp"

namespace dpone::cli {

void register_perf_commands(CLI::App& app, int* exit_code) {
  static std::string manifest = "dpone.yaml", run_id, format = "text";
  static bool last = false;
  auto* perf = app.add_subcommand("perf", "Performance help from recorded runs");
  perf->require_subcommand(1);
  auto* advise_cmd = perf->add_subcommand("advise", "Recommendations for a run, each with the record's figures");
  advise_cmd->add_option("run_id", run_id, "Run id (see `dpone runs list`)");
  advise_cmd->add_flag("--last", last, "The newest run (the default)");
  advise_cmd->add_option("-m,--manifest", manifest, "Manifest file (default: dpone.yaml)");
  advise_cmd->add_option("--format", format, "text or json")->check(CLI::IsMember({"text", "json"}));
  advise_cmd->callback([exit_code] {
    std::filesystem::path file(manifest);
    if (!std::filesystem::exists(file))
      throw Error(ErrorCode::ConfigInvalid, "manifest " + file.string() + " does not exist",
                  "pass -m with the manifest whose runs you want");
    auto runs = runs_dir(std::filesystem::absolute(file).parent_path());
    nlohmann::json record = read_run_record(runs, last ? "" : run_id);
    ModuleLoader loader(ModuleLoader::default_module_dir());
    auto advice = advise(record, list_run_records(runs), loader.catalog());
    if (format == "json") {
      nlohmann::json arr = nlohmann::json::array();
      for (const auto& a : advice) arr.push_back(a.to_json());
      Console::get().out(nlohmann::json{{"run_id", record.value("run_id", "")}, {"advice", arr}}.dump(2));
    } else {
      Console::get().out(fmt::format("run {}: {} recommendation(s)", record.value("run_id", ""), advice.size()));
      for (const auto& a : advice) {
        Console::get().out(fmt::format("\n[{}] stream {}\n  do:       {}\n  evidence: {}", a.rule, a.stream,
                                       a.recommendation, a.evidence));
      }
    }
    *exit_code = 0;
  });
}

}  // namespace dpone::cli
