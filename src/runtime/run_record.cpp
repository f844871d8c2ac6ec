#include "runtime/run_record.hpp"

#include <algorithm>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "core/errors.hpp"
#include "core/util/redactor.hpp"

namespace dpone {

namespace {

using json = nlohmann::json;

void write_atomic(const std::filesystem::path& path, const std::string& text) {
  auto tmp = path;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out) throw Error(ErrorCode::Internal, "cannot write " + tmp.string());
  }
  std::filesystem::rename(tmp, path);
}

std::string metric_label(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') { out += "\\n"; continue; }
    out += c;
  }
  return out;
}

}  // namespace

void write_run_record(const std::filesystem::path& runs_dir, const json& record) {
  auto dir = runs_dir / record.at("run_id").get<std::string>();
  std::filesystem::create_directories(dir);
  // Messages can quote input bytes that are not UTF-8 (a parser's "last read"): written
  // as U+FFFD, so the record of a failed run is always written.
  write_atomic(dir / "run.json",
               redact(record.dump(2, ' ', false, json::error_handler_t::replace)) + "\n");
  write_atomic(dir / "metrics.prom", redact(prometheus_metrics(record)));
}

std::vector<json> list_run_records(const std::filesystem::path& runs_dir) {
  std::vector<std::filesystem::path> dirs;
  std::error_code ec;
  if (std::filesystem::is_directory(runs_dir, ec))
    for (const auto& e : std::filesystem::directory_iterator(runs_dir))
      if (e.is_directory() && std::filesystem::exists(e.path() / "run.json")) dirs.push_back(e.path());
  std::sort(dirs.begin(), dirs.end(), std::greater<>());
  std::vector<json> out;
  for (const auto& d : dirs) {
    std::ifstream in(d / "run.json");
    try {
      out.push_back(json::parse(in));
    } catch (const json::exception&) {
      // A record being written by a live run, or a damaged one: listed by name only.
      out.push_back(json{{"run_id", d.filename().string()}, {"status", "unreadable"}});
    }
  }
  return out;
}

json read_run_record(const std::filesystem::path& runs_dir, const std::string& run_id) {
  if (run_id.empty()) {
    auto all = list_run_records(runs_dir);
    if (all.empty())
      throw Error(ErrorCode::RunRecordMissing, "no run records in " + runs_dir.string(),
                  "run `dpone run` first, or pass -m with the manifest whose runs you want");
    return all.front();
  }
  auto path = runs_dir / run_id / "run.json";
  std::ifstream in(path);
  if (!in)
    throw Error(ErrorCode::RunRecordMissing, "no run record " + path.string(),
                "`dpone runs list` shows the recorded runs");
  return json::parse(in);
}

std::string prometheus_metrics(const json& r) {
  std::string out;
  auto metric = [&](const std::string& name, const std::string& help, const std::string& type) {
    out += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
  };
  std::string run = metric_label(r.value("run_id", ""));
  metric("dpone_run_duration_seconds", "Wall time of the whole run", "gauge");
  out += fmt::format("dpone_run_duration_seconds{{run_id=\"{}\"}} {}\n", run, r.value("duration_s", 0.0));
  metric("dpone_run_success", "1 if every stream succeeded", "gauge");
  out += fmt::format("dpone_run_success{{run_id=\"{}\"}} {}\n", run, r.value("status", "") == "succeeded" ? 1 : 0);
  metric("dpone_stream_rows", "Rows per stream and stage (extracted, staged, inserted, updated, deleted)", "gauge");
  for (const auto& s : r.value("streams", json::array())) {
    const json rows = s.value("rows", json::object());  // items() must not outlive its object
    for (const auto& [k, v] : rows.items())
      out += fmt::format("dpone_stream_rows{{run_id=\"{}\",stream=\"{}\",stage=\"{}\"}} {}\n", run,
                         metric_label(s.value("stream", "")), k, v.get<int64_t>());
  }
  metric("dpone_reconcile_rows",
         "Key-snapshot reconciliation counters per stream (inserted, updated, unchanged, deleted, reactivated)",
         "gauge");
  for (const auto& s : r.value("streams", json::array())) {
    if (!s.contains("reconciliation") || !s["reconciliation"].is_object()) continue;
    for (const char* k : {"inserted", "updated", "unchanged", "deleted", "reactivated"})
      out += fmt::format("dpone_reconcile_rows{{run_id=\"{}\",stream=\"{}\",kind=\"{}\"}} {}\n", run,
                         metric_label(s.value("stream", "")), k, s["reconciliation"].value(k, int64_t{0}));
  }
  metric("dpone_stream_bytes", "Bytes staged per stream", "gauge");
  for (const auto& s : r.value("streams", json::array()))
    out += fmt::format("dpone_stream_bytes{{run_id=\"{}\",stream=\"{}\"}} {}\n", run,
                       metric_label(s.value("stream", "")), s.value("bytes", int64_t{0}));
  metric("dpone_phase_duration_seconds", "Duration of each lifecycle phase", "gauge");
  for (const auto& s : r.value("streams", json::array()))
    for (const auto& p : s.value("phases", json::array()))
      out += fmt::format("dpone_phase_duration_seconds{{run_id=\"{}\",stream=\"{}\",phase=\"{}\"}} {}\n", run,
                         metric_label(s.value("stream", "")), p.value("name", ""), p.value("duration_s", 0.0));
  metric("dpone_stream_rows_per_second", "Staged rows per second of wall time of the stream", "gauge");
  for (const auto& s : r.value("streams", json::array())) {
    const double wall = s.value("duration_s", 0.0);
    const auto staged = s.value("rows", json::object()).value("staged", int64_t{0});
    out += fmt::format("dpone_stream_rows_per_second{{run_id=\"{}\",stream=\"{}\"}} {:.1f}\n", run,
                       metric_label(s.value("stream", "")), wall > 0 ? staged / wall : 0.0);
  }
  metric("dpone_stream_success", "1 if the stream succeeded or had no new data", "gauge");
  for (const auto& s : r.value("streams", json::array()))
    out += fmt::format("dpone_stream_success{{run_id=\"{}\",stream=\"{}\"}} {}\n", run,
                       metric_label(s.value("stream", "")), s.value("status", "") == "failed" ? 0 : 1);
  metric("dpone_gate_passed", "1 if the quality gate passed (per stream, gate, type and severity)", "gauge");
  for (const auto& s : r.value("streams", json::array()))
    for (const auto& g : s.value("gates", json::array()))
      out += fmt::format("dpone_gate_passed{{run_id=\"{}\",stream=\"{}\",gate=\"{}\",type=\"{}\",severity=\"{}\"}} {}\n",
                         run, metric_label(s.value("stream", "")), metric_label(g.value("name", "")),
                         metric_label(g.value("type", "")), metric_label(g.value("severity", "")),
                         g.value("passed", false) ? 1 : 0);
  metric("dpone_gate_failing_rows", "Rows a quality gate found failing", "gauge");
  for (const auto& s : r.value("streams", json::array()))
    for (const auto& g : s.value("gates", json::array()))
      out += fmt::format("dpone_gate_failing_rows{{run_id=\"{}\",stream=\"{}\",gate=\"{}\"}} {}\n", run,
                         metric_label(s.value("stream", "")), metric_label(g.value("name", "")),
                         g.value("failing_rows", int64_t{0}));
  return out;
}

}  // namespace dpone
