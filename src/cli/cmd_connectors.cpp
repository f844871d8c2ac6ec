// connectors list | describe. Both read only the module index and the file system:
// no module is loaded.
#include <fstream>
#include <iostream>

#include <fmt/format.h>

#include "cli/commands.hpp"
#include "core/errors.hpp"
#include "core/manifest/schema.hpp"
#include "runtime/certify.hpp"
#include "runtime/console.hpp"

namespace dpone::cli {

namespace {

using json = nlohmann::json;

void describe_options(const json& options, const std::string& indent) {
  for (const auto& [key, spec] : options.items()) {
    std::string type = spec.value("type", "any");
    if (spec.contains("enum")) {
      std::vector<std::string> vals;
      for (const auto& v : spec["enum"]) vals.push_back(v.get<std::string>());
      type = fmt::format("{}", fmt::join(vals, " | "));
    }
    Console::get().out(fmt::format("{}{:<16} {}{}{}  {}", indent, key, type, spec.value("required", false) ? ", required" : "",
                                   spec.value("secret", false) ? ", secret" : "", spec.value("doc", "")));
    if (spec.contains("keys")) describe_options(spec["keys"], indent + "  ");
  }
}

}  // namespace

void register_connector_commands(CLI::App& app, int* exit_code) {
  static std::string format = "text", name;
  // Generated reference pages; docs/manifest-reference.md is this output (a test checks it).
  auto* docs = app.add_subcommand("docs", "Print generated reference documentation");
  docs->require_subcommand(1);
  docs->add_subcommand("manifest", "The manifest key reference (Markdown)")->callback([exit_code] {
    std::cout << manifest_reference_markdown();
    *exit_code = 0;
  });
  auto* connectors = app.add_subcommand("connectors", "Connectors of this build");
  connectors->require_subcommand(1);

  auto* list = connectors->add_subcommand("list", "Each connector, available or missing (with the reason)");
  list->add_option("--format", format, "text or json")->check(CLI::IsMember({"text", "json"}));
  list->callback([exit_code] {
    ModuleLoader loader(ModuleLoader::default_module_dir());
    json out = json::array();
    for (const auto& d : loader.catalog().all()) {
      Availability a = loader.check(d);
      out.push_back({{"name", d.name}, {"summary", d.summary}, {"available", a.available},
                     {"reason", a.reason}, {"package", a.package}, {"source", d.json.contains("source")},
                     {"sink", d.json.contains("sink")}, {"module", a.module_path.string()}});
    }
    if (format == "json") {
      Console::get().out(out.dump(2));
    } else {
      Console::get().out(fmt::format("{:<12} {:<6} {:<6} {:<10} {}", "CONNECTOR", "SOURCE", "SINK", "STATUS", "DETAIL"));
      for (const auto& c : out)
        Console::get().out(fmt::format("{:<12} {:<6} {:<6} {:<10} {}", c.value("name", ""), c["source"].get<bool>() ? "yes" : "-",
                                       c["sink"].get<bool>() ? "yes" : "-", c["available"].get<bool>() ? "available" : "missing",
                                       c["available"].get<bool>() ? c.value("summary", "") : c.value("reason", "")));
    }
    *exit_code = 0;
  });

  static std::string connection, manifest, output;
  auto* certify_cmd = connectors->add_subcommand(
      "certify", "Run the certification scenarios against a live connection; writes certification.json/.md");
  certify_cmd->add_option("name", name, "Connector name")->required();
  certify_cmd->add_option("--connection", connection, "Connection id (connections.yaml or DPONE_CONN_<ID>_*)")->required();
  certify_cmd->add_option("-m,--manifest", manifest, "Manifest whose connections file to use (default ./connections.yaml)");
  certify_cmd->add_option("-o,--output", output, "Folder for certification.json/.md (default certification/<name>)");
  certify_cmd->callback([exit_code] {
    ModuleLoader loader(ModuleLoader::default_module_dir());
    const auto* d = loader.catalog().find(name);
    if (!d) throw Error(ErrorCode::ConnectorUnknown, "unknown connector '" + name + "'", "see `dpone connectors list`");
    CertifyOptions o;
    o.connector = name;
    o.connection = connection;
    o.connections_file = std::filesystem::absolute(
        manifest.empty() ? std::filesystem::path("connections.yaml") : connections_file_for(manifest));
    char tmpl[] = "/tmp/dpone-certify-XXXXXX";
    if (!mkdtemp(tmpl)) throw Error(ErrorCode::Internal, "cannot create a scratch folder under /tmp");
    o.work_dir = tmpl;
    o.dpone_binary = std::filesystem::read_symlink("/proc/self/exe");
    Console::get().info(fmt::format("certifying {} on connection {} (scratch {})", name, connection, o.work_dir.string()));
    auto results = certify(*d, o);
    std::filesystem::path out = output.empty() ? std::filesystem::path("certification") / name : std::filesystem::path(output);
    std::filesystem::create_directories(out);
    std::ofstream(out / "certification.json") << certification_json(o, results).dump(2) << "\n";
    std::ofstream(out / "certification.md") << certification_markdown(o, results);
    bool failed = false;
    for (const auto& r : results) {
      Console::get().out(fmt::format("{:<18} {:<4}  {}", r.name, r.status, r.detail));
      failed = failed || r.status == "FAIL";
    }
    Console::get().out(fmt::format("wrote {}/certification.json and certification.md", out.string()));
    *exit_code = failed ? 1 : 0;
  });

  auto* describe = connectors->add_subcommand("describe", "Options, strategies and capabilities of one connector");
  describe->add_option("name", name, "Connector name")->required();
  describe->add_option("--format", format, "text or json")->check(CLI::IsMember({"text", "json"}));
  describe->callback([exit_code] {
    ModuleLoader loader(ModuleLoader::default_module_dir());
    const auto* d = loader.catalog().find(name);
    if (!d) throw Error(ErrorCode::ConnectorUnknown, "unknown connector '" + name + "'", "see `dpone connectors list`");
    Availability a = loader.check(*d);
    if (format == "json") {
      json j = d->json;
      j["available"] = a.available;
      j["reason"] = a.reason;
      Console::get().out(j.dump(2));
      *exit_code = 0;
      return;
    }
    Console::get().out(fmt::format("{}: {}\nstatus: {}", d->name, d->summary, a.available ? "available" : "missing: " + a.reason));
    if (d->json.contains("connection")) {
      Console::get().out("connection fields:");
      describe_options(d->json["connection"].value("fields", json::object()), "  ");
    }
    if (d->json.contains("source")) {
      const auto& s = d->json["source"];
      Console::get().out(fmt::format("source: incremental {}; produces {}", s.value("incremental", json::array()).dump(),
                                     s.value("produces", json::array()).dump()));
      describe_options(s.value("options", json::object()), "  ");
    }
    if (d->json.contains("sink")) {
      const auto& s = d->json["sink"];
      Console::get().out(fmt::format("sink: strategies {}; accepts {}", s.value("strategies", json::array()).dump(),
                                     s.value("accepts", json::array()).dump()));
      describe_options(s.value("options", json::object()), "  ");
    }
    *exit_code = 0;
  });
}

}  // namespace dpone::cli
