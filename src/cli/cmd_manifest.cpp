// validate, render, explain, plan, run.
#include <cstdlib>
#include <iostream>

#include <fmt/format.h>

#include "cli/commands.hpp"
#include "core/errors.hpp"
#include "core/util/redactor.hpp"
#include "core/util/interrupt.hpp"
#include "runtime/console.hpp"
#include "runtime/engine.hpp"
#include "runtime/project.hpp"

namespace dpone::cli {

namespace {

using json = nlohmann::json;

std::map<std::string, std::string> parse_vars(const std::vector<std::string>& vars) {
  std::map<std::string, std::string> out;
  for (const auto& v : vars) {
    auto eq = v.find('=');
    if (eq == std::string::npos || eq == 0)
      throw Error(ErrorCode::ConfigBadValue, "--var expects NAME=VALUE, got '" + v + "'");
    out[v.substr(0, eq)] = v.substr(eq + 1);
  }
  return out;
}

void print_plan_text(const json& plan) {
  Console& c = Console::get();
  c.out(fmt::format("Plan for {} (dry run: nothing was changed)", plan.value("manifest", "")));
  for (const auto& s : plan["streams"]) {
    c.out("");
    c.out("stream " + s.value("stream", ""));
    if (s.value("status", "") == "error") {
      const auto& e = s["error"];
      c.out(fmt::format("  error:    [{}] {}", e.value("code", ""), e.value("message", "")));
      if (!e.value("hint", "").empty()) c.out("  hint:     " + e.value("hint", ""));
      continue;
    }
    const auto& t = s["target"];
    c.out(fmt::format("  source:   {} {}", s["source"].value("connector", ""), s["source"].value("connection", "")));
    c.out(fmt::format("  sink:     {} {} -> {} ({}{}){}", s["sink"].value("connector", ""),
                      s["sink"].value("connection", ""), t.value("name", ""),
                      t.value("exists", false) ? "exists" : "will be created",
                      t.contains("rows") ? fmt::format(", {} rows", t["rows"].get<int64_t>()) : "",
                      t.value("server", "").empty() ? "" : " on " + t.value("server", "")));
    c.out(fmt::format("  strategy: {}", s["strategy"].dump()));
    c.out(fmt::format("  state:    {}  revision {}  position {}", s.value("state_store", ""),
                      s["state"].value("revision", 0), s["state"].contains("position") ? s["state"]["position"].dump() : "null"));
    const auto& w = s["window"];
    c.out(fmt::format("  window:   {}{}", w.value("description", ""),
                      w.contains("estimated_rows") ? fmt::format("  (estimated {} rows)", w["estimated_rows"].get<int64_t>()) : ""));
    std::string cols;
    for (const auto& col : s["source_schema"]["columns"])
      cols += (cols.empty() ? "" : ", ") + col.value("name", "") + " " + col.value("type", "");
    c.out("  columns:  " + cols);
    const auto& sc = s["schema"];
    c.out(fmt::format("  schema:   policy {} -> {}", sc.value("policy", ""), sc.value("decision", "")));
    for (const auto& ch : sc["changes"])
      c.out(fmt::format("            {}{}", ch.value("text", ""), ch.value("safe", false) ? "" : "  [UNSAFE]"));
    for (const auto& d : sc["ddl"]) c.out("  DDL:      " + d.get<std::string>());
    const auto& a = s["artifact"];
    c.out(fmt::format("  artifact: {} ({})", a.value("sink_receives", ""), a.value("reason", "")));
    for (const auto& g : s["gates"])
      c.out(fmt::format("  gate:     {} ({} on {}, {})", g.value("name", ""), g.value("type", ""),
                        fmt::join(g["columns"].get<std::vector<std::string>>(), ", "), g.value("severity", "")));
    c.out("  steps:");
    int i = 0;
    for (const auto& step : s["steps"]) c.out(fmt::format("    {:>2}. {}", ++i, step.get<std::string>()));
    for (const auto& warn : s["warnings"]) c.out("  warning:  " + warn.get<std::string>());
  }
}

void print_run_summary(const json& record, const std::filesystem::path& runs) {
  Console& c = Console::get();
  for (const auto& s : record["streams"]) {
    std::string status = s.value("status", "");
    const auto& rows = s["rows"];
    std::string mode = s.contains("strategy") ? s["strategy"].value("mode", "") : "";
    if (status == "succeeded") {
      c.out(fmt::format("{}: loaded {} rows ({}: {} inserted, {} updated, {} deleted) in {:.2f}s",
                        s.value("stream", ""), rows.value("staged", 0), mode, rows.value("inserted", 0),
                        rows.value("updated", 0), rows.value("deleted", 0), s.value("duration_s", 0.0)));
    } else if (status == "not_started") {
      c.out(fmt::format("{}: not started (the run was interrupted)", s.value("stream", "")));
    } else if (status == "no_new_data") {
      c.out(fmt::format("{}: loaded 0 rows (no new data) in {:.2f}s", s.value("stream", ""), s.value("duration_s", 0.0)));
    } else {
      const auto& e = s["error"];
      c.out(fmt::format("{}: {} [{}] in phase {}", s.value("stream", ""),
                        status == "interrupted" ? "INTERRUPTED" : "FAILED", e.value("code", ""), e.value("phase", "")));
      c.error(fmt::format("[{}] {}", e.value("code", ""), e.value("message", "")));
      if (!e.value("hint", "").empty()) std::cerr << "hint: " << redact(e.value("hint", "")) << "\n";
    }
  }
  auto path = (runs / record.value("run_id", "") / "run.json").lexically_proximate(std::filesystem::current_path());
  c.info(fmt::format("run {} {}: record {}", record.value("run_id", ""), record.value("status", ""), path.string()));
}

}  // namespace

void add_common(CLI::App* cmd, CommonOptions& o, bool with_select, bool manifest_positional) {
  if (manifest_positional)
    cmd->add_option("manifest", o.manifest, "Manifest file (default: dpone.yaml)");
  else
    cmd->add_option("-m,--manifest", o.manifest, "Manifest file (default: dpone.yaml)");
  cmd->add_option("--var", o.vars, "Set a manifest variable: NAME=VALUE (repeatable)");
  if (with_select) cmd->add_option("-s,--select", o.select, "Stream names or globs (repeatable)");
}

Project load_project(const CommonOptions& o) {
  Project p;
  p.loader = std::make_unique<ModuleLoader>(ModuleLoader::default_module_dir());
  LoadOptions lo;
  lo.vars = parse_vars(o.vars);
  std::filesystem::path file(o.manifest);
  if (!std::filesystem::exists(file))
    throw Error(ErrorCode::ConfigInvalid, "manifest " + file.string() + " does not exist",
                "pass the manifest path, e.g. `dpone run examples/quickstart/manifest.yaml`");
  p.connections.emplace(ConnectionResolver::open(connections_file_for(file)));
  p.manifest.emplace(load_manifest(file, lo, p.loader->catalog(), *p.connections));
  return p;
}

std::vector<const StreamSpec*> selected(const Project& p, const CommonOptions& o) {
  return p.manifest->select(o.select);
}

void register_manifest_commands(CLI::App& app, int* exit_code) {
  static CommonOptions validate_o, render_o, explain_o, plan_o, run_o;
  static std::string why;
  static size_t batch_rows = 8192;

  auto* validate = app.add_subcommand("validate", "Check a manifest without credentials or network");
  add_common(validate, validate_o, false, true);
  validate->callback([exit_code] {
    Project p = load_project(validate_o);
    Console::get().out(fmt::format("{}: OK ({} streams: {})", validate_o.manifest, p.manifest->streams.size(),
                                   fmt::join([&] {
                                     std::vector<std::string> n;
                                     for (const auto& s : p.manifest->streams) n.push_back(s.name);
                                     return n;
                                   }(), ", ")));
    *exit_code = 0;
  });

  auto* render = app.add_subcommand("render", "Print the fully resolved streams (secrets masked)");
  add_common(render, render_o, true, true);
  render->callback([exit_code] {
    Project p = load_project(render_o);
    for (const auto* s : selected(p, render_o)) {
      Console::get().out("# stream " + s->name);
      Console::get().out(render_stream_yaml(*s));
    }
    *exit_code = 0;
  });

  auto* explain = app.add_subcommand("explain", "Say where a stream's setting came from");
  add_common(explain, explain_o, true, true);
  explain->add_option("--why", why, "Dotted key path, e.g. sink.strategy.mode")->required();
  explain->callback([exit_code] {
    Project p = load_project(explain_o);
    auto streams = selected(p, explain_o);
    for (const auto* s : streams) {
      Explanation e = dpone::explain(*s, why);
      Console::get().out(fmt::format("{}: {} = {}", s->name, why, e.value.dump()));
      for (size_t i = 0; i < e.origins.size(); ++i) {
        const auto& o = e.origins[i];
        bool last = i + 1 == e.origins.size();
        Console::get().out(fmt::format("  {} {} ({})", last ? "set by " : "overridden:", o.from, o.mark.to_string()));
      }
    }
    *exit_code = 0;
  });

  auto* plan = app.add_subcommand("plan", "Dry run: window, schema diff and DDL, steps, artifact path");
  add_common(plan, plan_o, true, true);
  plan->add_option("--format", plan_o.format, "text or json")->check(CLI::IsMember({"text", "json"}));
  plan->callback([exit_code] {
    Project p = load_project(plan_o);
    Engine engine(*p.manifest, *p.connections, *p.loader);
    json result = engine.plan(selected(p, plan_o));
    if (plan_o.format == "json") Console::get().out(result.dump(2));
    else print_plan_text(result);
    *exit_code = 0;
    for (const auto& s : result["streams"])
      if (s.value("status", "") == "error") *exit_code = 1;
  });

  auto* run = app.add_subcommand("run", "Run the streams: stage, check, promote, then commit state");
  add_common(run, run_o, true, true);
  run->add_option("--batch-rows", batch_rows, "Rows per batch between source and sink (default 8192)");
  static int64_t wait_s = 0;
  run->add_flag("--wait{3600}", wait_s,
                "When another run holds a stream's lease, wait for it (--wait: up to 3600 s, --wait=SECONDS) "
                "instead of failing with STREAM_BUSY");
  run->callback([exit_code] {
    install_interrupt_handlers();
    Project p = load_project(run_o);
    EngineOptions eo;
    eo.batch_rows = batch_rows;
    eo.lease_wait_s = wait_s;
    Engine engine(*p.manifest, *p.connections, *p.loader, eo);
    json record = engine.run(selected(p, run_o));
    print_run_summary(record, runs_dir(p.manifest->base_dir));
    *exit_code = 0;
    for (const auto& s : record["streams"])
      if ((s.value("status", "") == "failed" || s.value("status", "") == "interrupted") && *exit_code == 0)
        *exit_code = s["error"].value("exit_code", 1);
    if (record.value("status", "") == "interrupted") *exit_code = interrupt_exit_code();
  });
}

}  // namespace dpone::cli
