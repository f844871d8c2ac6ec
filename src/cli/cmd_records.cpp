// runs list, run-report.
#include <fstream>
#include <iostream>

#include <fmt/format.h>

#include "cli/commands.hpp"
#include "core/errors.hpp"
#include "runtime/console.hpp"
#include "runtime/project.hpp"
#include "runtime/run_record.hpp"

namespace dpone::cli {

namespace {

using json = nlohmann::json;

// Run records live beside the manifest; reading them needs no module or connection.
std::filesystem::path runs_of(const std::string& manifest) {
  std::filesystem::path file(manifest);
  if (!std::filesystem::exists(file))
    throw Error(ErrorCode::ConfigInvalid, "manifest " + file.string() + " does not exist",
                "pass -m with the manifest whose runs you want");
  return runs_dir(std::filesystem::absolute(file).parent_path());
}

}  // namespace

void register_record_commands(CLI::App& app, int* exit_code) {
  static std::string manifest = "dpone.yaml", format = "text", run_id, output;
  static bool last = false;

  auto* runs = app.add_subcommand("runs", "Recorded runs");
  runs->require_subcommand(1);
  auto* list = runs->add_subcommand("list", "Recorded runs, newest first");
  list->add_option("-m,--manifest", manifest, "Manifest file (default: dpone.yaml)");
  list->add_option("--format", format, "text or json")->check(CLI::IsMember({"text", "json"}));
  list->callback([exit_code] {
    auto records = list_run_records(runs_of(manifest));
    if (format == "json") {
      json out = json::array();
      for (const auto& r : records)
        out.push_back({{"run_id", r.value("run_id", "")}, {"status", r.value("status", "")},
                       {"started_at", r.value("started_at", "")}, {"duration_s", r.value("duration_s", 0.0)},
                       {"streams", r.value("streams", json::array()).size()}});
      Console::get().out(out.dump(2));
    } else {
      Console::get().out(fmt::format("{:<26} {:<10} {:<24} {:>9}  {}", "RUN", "STATUS", "STARTED", "SECONDS", "STREAMS"));
      for (const auto& r : records) {
        std::string streams;
        for (const auto& s : r.value("streams", json::array()))
          streams += (streams.empty() ? "" : ", ") + s.value("stream", "") + "=" + s.value("status", "");
        Console::get().out(fmt::format("{:<26} {:<10} {:<24} {:>9.2f}  {}", r.value("run_id", ""), r.value("status", ""),
                                       r.value("started_at", ""), r.value("duration_s", 0.0), streams));
      }
    }
    *exit_code = 0;
  });

  auto* report = app.add_subcommand("run-report", "Render a run record (text, md, json or standalone html)");
  report->add_option("run_id", run_id, "Run id (see `dpone runs list`)");
  report->add_flag("--last", last, "The newest run");
  report->add_option("-m,--manifest", manifest, "Manifest file (default: dpone.yaml)");
  report->add_option("--format", format, "text, md, json or html")->check(CLI::IsMember({"text", "md", "json", "html"}));
  report->add_option("-o,--output", output, "Write to this file instead of stdout (html default: run-report-<run>.html)");
  report->callback([exit_code] {
    if (run_id.empty() && !last)
      throw Error(ErrorCode::ConfigBadValue, "run-report needs a RUN_ID or --last");
    json record = read_run_record(runs_of(manifest), last ? "" : run_id);
    ReportFormat f = format == "md"     ? ReportFormat::Markdown
                     : format == "json" ? ReportFormat::Json
                     : format == "html" ? ReportFormat::Html
                                        : ReportFormat::Text;
    std::string text = render_report(record, f);
    std::string out = output;
    if (out.empty() && f == ReportFormat::Html) out = "run-report-" + record.value("run_id", "") + ".html";
    if (out.empty()) {
      std::cout << text;
    } else {
      std::ofstream file(out, std::ios::binary | std::ios::trunc);
      file << text;
      if (!file) throw Error(ErrorCode::Internal, "cannot write " + out);
      Console::get().out("wrote " + out);
    }
    *exit_code = 0;
  });
}

}  // namespace dpone::cli
