#include "runtime/doctor.hpp"

#include <cstdlib>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "core/errors.hpp"
#include "core/util/redactor.hpp"
#include "runtime/project.hpp"
#include "runtime/stream_parts.hpp"

namespace dpone {

namespace {

std::string find_on_path(const std::string& tool) {
  const char* path = std::getenv("PATH");
  std::stringstream ss(path ? path : "/usr/local/bin:/usr/bin:/bin");
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    if (dir.empty()) continue;
    std::filesystem::path p = std::filesystem::path(dir) / tool;
    std::error_code ec;
    if (std::filesystem::is_regular_file(p, ec) && access(p.c_str(), X_OK) == 0) return p.string();
  }
  return "";
}

// Native tools dpone's native paths and benchmarks use, with the Debian package.
struct Tool {
  const char* name;
  const char* package;
  const char* use;
};
constexpr Tool kTools[] = {
    {"psql", "postgresql-client-15", "PostgreSQL client (benchmarks, manual checks)"},
    {"clickhouse-client", "clickhouse-client", "ClickHouse native client"},
    {"kcat", "kcat", "Kafka client"},
    {"freebcp", "freetds-bin", "MSSQL bulk copy (FreeTDS)"},
    {"bcp", "mssql-tools (not in Debian)", "MSSQL bulk copy (Microsoft)"},
    {"sqlite3", "sqlite3", "SQLite shell"},
};

DoctorCheck failed(std::string group, std::string name, const Error& e, bool required = true) {
  return DoctorCheck{std::move(group), std::move(name), "fail",
                     redact(fmt::format("[{}] {}", e.code_name(), e.what())), redact(e.hint()), required};
}

}  // namespace

bool DoctorReport::ok() const {
  for (const auto& c : checks)
    if (c.required && c.status == "fail") return false;
  return true;
}

nlohmann::json DoctorReport::to_json() const {
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& c : checks)
    arr.push_back({{"group", c.group}, {"name", c.name}, {"status", c.status}, {"detail", c.detail},
                   {"hint", c.hint}, {"required", c.required}});
  return {{"ok", ok()}, {"checks", arr}};
}

std::string DoctorReport::to_text() const {
  std::string out, group;
  int failures = 0;
  for (const auto& c : checks) {
    if (c.group != group) {
      group = c.group;
      out += group + "\n";
    }
    std::string mark = c.status == "ok" ? "ok  " : c.status == "fail" ? "FAIL" : "--  ";
    out += fmt::format("  {}  {:<44} {}\n", mark, c.name, c.detail);
    if (c.status != "ok" && !c.hint.empty()) out += fmt::format("        fix: {}\n", c.hint);
    if (c.required && c.status == "fail") ++failures;
  }
  out += fmt::format("{} checks, {} required failed\n", checks.size(), failures);
  return out;
}

DoctorReport run_doctor(ModuleLoader& loader, const Manifest* manifest, const ConnectionResolver* connections) {
  DoctorReport report;
  std::set<std::string> used;
  if (manifest)
    for (const auto& s : manifest->streams) {
      used.insert(s.config["source"].value("connector", ""));
      used.insert(s.config["sink"].value("connector", ""));
    }
  for (const auto& d : loader.catalog().all()) {
    Availability a = loader.check(d);
    bool required = used.count(d.name) > 0;
    if (a.available)
      report.checks.push_back({"modules", d.name, "ok", a.module_path.string(), "", required});
    else
      report.checks.push_back({"modules", d.name, required ? "fail" : "missing", a.reason,
                               a.package.empty() ? "rebuild dpone with the connector's client library installed"
                                                 : "apt-get install " + a.package,
                               required});
  }
  for (const auto& t : kTools) {
    std::string where = find_on_path(t.name);
    if (!where.empty())
      report.checks.push_back({"native tools", t.name, "ok", where + "  (" + t.use + ")", "", false});
    else
      report.checks.push_back({"native tools", t.name, "missing", std::string("not found  (") + t.use + ")",
                               std::string("apt-get install ") + t.package, false});
  }
  if (!manifest || !connections) return report;

  const std::string group = "manifest " + manifest->file.string();
  for (const auto& stream : manifest->streams) {
    const auto& src = stream.config["source"];
    const auto& snk = stream.config["sink"];
    auto label = [&](const char* side, const nlohmann::json& cfg) {
      std::string conn = cfg.value("connection", "");
      return fmt::format("{} {} ({}{})", stream.name, side, cfg.value("connector", ""),
                         conn.empty() ? "" : ", connection " + conn);
    };
    StreamParts parts;
    try {
      make_stream_parts(parts, stream, *manifest, *connections, loader, "doctor", nullptr);
    } catch (const Error& e) {
      report.checks.push_back(failed(group, stream.name, e));
      continue;
    }
    // Source: plan the window from the stored position, as a run would (reads only).
    try {
      nlohmann::json position;
      if (auto store = open_state_if_exists(state_location(stream.config, manifest->base_dir),
                                            StateServices{connections, &loader})) {
        report.checks.push_back({group, stream.name + " state", "ok", redact("state store " + store->describe()), "", true});
        if (auto st = store->get(stream.name)) position = st->position;
      }
      Window w = parts.source->plan_window(position);
      report.checks.push_back({group, label("source", src), "ok", "reachable; window " + redact(w.description), "", true});
    } catch (const Error& e) {
      report.checks.push_back(failed(group, label("source", src), e));
    }
    // Sink: inspect the target (connects, reads the catalog and the row count), then
    // prove the staging permission: stage an empty artifact of the source's schema and
    // abort it, which creates and drops a staging object exactly as a run would.
    try {
      TargetInfo t = parts.sink->inspect();
      std::string detail = "reachable; target " + t.name + (t.exists ? " exists" : " does not exist yet (a run creates it)");
      if (t.rows) detail += fmt::format(", {} rows", *t.rows);
      if (!t.server.empty()) detail += "; server " + t.server;
      if (!t.capabilities.empty()) detail += fmt::format("; uses {}", fmt::join(t.capabilities, ", "));
      report.checks.push_back({group, label("sink", snk), "ok", redact(detail), "", true});
      try {
        Schema schema = parts.source->discover();
        StagedLoad staged = parts.sink->stage(InMemoryRows{schema, {}}, schema);
        parts.sink->abort(staged);
        report.checks.push_back({group, label("sink", snk) + " staging", "ok",
                                 redact("created and dropped staging " + staged.staging_name), "", true});
      } catch (const Error& e) {
        report.checks.push_back(failed(group, label("sink", snk) + " staging", e));
      }
    } catch (const Error& e) {
      report.checks.push_back(failed(group, label("sink", snk), e));
    }
    for (const auto& w : parts.diagnostics.warnings())
      report.checks.push_back({group, stream.name + " warning", "missing", redact(w), "", false});
  }
  return report;
}

}  // namespace dpone
