// Renders a run record as text, Markdown, JSON or one standalone HTML file.
// Only what the record holds is shown; nothing is recomputed or invented.
#include <sstream>

#include <fmt/format.h>

#include "core/util/redactor.hpp"
#include "runtime/run_record.hpp"

namespace dpone {

namespace {

using json = nlohmann::json;

std::string str(const json& j, const char* key, const std::string& dflt = "") {
  if (!j.is_object() || !j.contains(key) || j[key].is_null()) return dflt;
  return j[key].is_string() ? j[key].get<std::string>() : j[key].dump();
}

int64_t num(const json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_number()) return 0;
  return j[key].get<int64_t>();
}

std::string state_text(const json& s) {
  if (!s.is_object()) return "none";
  return fmt::format("revision {} {}", num(s, "revision"), s.contains("position") ? s["position"].dump() : "null");
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string rows_line(const json& rows) {
  return fmt::format("extracted {}, staged {}, inserted {}, updated {}, deleted {}", num(rows, "extracted"),
                     num(rows, "staged"), num(rows, "inserted"), num(rows, "updated"), num(rows, "deleted"));
}

// Key-snapshot reconciliation (snapshot_diff, scd2, merge + reconciliation): its counters.
std::string reconciliation_line(const json& rc) {
  std::string out = fmt::format("{} {} (delete policy {}): inserted {}, updated {}, unchanged {}, deleted {}, "
                                "reactivated {}",
                                str(rc, "mode"), str(rc, "strategy"), str(rc, "delete_policy"), num(rc, "inserted"),
                                num(rc, "updated"), num(rc, "unchanged"), num(rc, "deleted"), num(rc, "reactivated"));
  if (rc.contains("guards")) {
    const auto& g = rc["guards"];
    const bool passed = g.value("passed", true);
    out += fmt::format("; delete guard {} ({} of {} live rows, max ratio {}{})",
                       passed ? "passed" : "BREACHED: " + str(g, "breached"), num(g, "would_delete"),
                       num(g, "target_rows"), g.value("max_delete_ratio", 0.0),
                       g.contains("max_delete_rows") && !g["max_delete_rows"].is_null()
                           ? fmt::format(", max rows {}", num(g, "max_delete_rows"))
                           : "");
  }
  if (rc.contains("post_load") && rc["post_load"].is_object()) {
    const auto& p = rc["post_load"];
    out += fmt::format("; post-load check {} (verify {}): staged {}, target live {}, checksum {}",
                       p.value("passed", true) ? "passed" : "FAILED", str(p, "verify"), num(p, "staged_rows"),
                       num(p, "target_live_rows"), p.value("checksum_match", true) ? "match" : "MISMATCH");
    if (p.contains("staged_rows_not_in_target"))
      out += fmt::format(" ({} staged rows not in target, {} target rows not in staging)",
                         num(p, "staged_rows_not_in_target"), num(p, "target_rows_not_in_staging"));
  }
  if (rc.contains("applied") && !rc.value("applied", true))
    out += "; NOT applied (rolled back: target and state unchanged)";
  if (!str(rc, "as_of").empty()) out += "; as of " + str(rc, "as_of");
  return out;
}

std::string render_text(const json& r, bool markdown) {
  std::ostringstream o;
  const char* h1 = markdown ? "# " : "";
  const char* h2 = markdown ? "\n## " : "\n";
  o << h1 << fmt::format("Run {} {} in {:.2f}s", str(r, "run_id"), str(r, "status"), r.value("duration_s", 0.0))
    << "\n";
  o << (markdown ? "\n" : "") << fmt::format("manifest: {}  started: {}  finished: {}", str(r, "manifest"),
                                            str(r, "started_at"), str(r, "finished_at"))
    << "\n";
  for (const auto& s : r.value("streams", json::array())) {
    o << h2 << fmt::format("Stream {}: {} ({:.2f}s)", str(s, "stream"), str(s, "status"), s.value("duration_s", 0.0))
      << "\n";
    auto line = [&](const std::string& k, const std::string& v) {
      o << (markdown ? "- **" + k + "**: " : "  " + k + ": ") << v << "\n";
    };
    if (markdown) o << "\n";
    line("source", str(s["source"], "connector") + " " + str(s["source"], "connection"));
    line("sink", str(s["sink"], "connector") + " " + str(s["sink"], "connection") + " → " +
                     str(s.value("target", json::object()), "name"));
    if (s.contains("strategy")) line("strategy", s["strategy"].dump());
    if (s.contains("window")) line("window", str(s["window"], "description"));
    if (s.contains("artifact"))
      line("artifact path", str(s["artifact"], "sink_receives") + " — " + str(s["artifact"], "reason"));
    line("rows", rows_line(s.value("rows", json::object())));
    if (s.contains("bytes")) line("bytes staged", std::to_string(num(s, "bytes")));
    if (s.contains("recovery")) line("recovery", str(s["recovery"], "note"));
    if (s.contains("schema")) {
      const auto& sc = s["schema"];
      std::string changes;
      for (const auto& c : sc.value("changes", json::array()))
        changes += (changes.empty() ? "" : "; ") + str(c, "text") + (c.value("safe", false) ? "" : " [UNSAFE]");
      std::string decision = str(sc, "decision").empty() ? "" : " (decision: " + str(sc, "decision") + ")";
      line("schema", "policy " + str(sc, "policy") + decision + ": " + (changes.empty() ? "no change" : changes));
      for (const auto& d : sc.value("ddl", json::array()))
        o << (markdown ? "  - `" + d.get<std::string>() + "`" : "    DDL: " + d.get<std::string>()) << "\n";
      // Unsafe changes: the DDL (or manifest change) that would resolve each.
      for (const auto& r : sc.value("resolutions", json::array())) {
        for (const auto& d : r.value("ddl", json::array()))
          o << (markdown ? "  - resolve " + str(r, "change") + ": `" + d.get<std::string>() + "`"
                         : "    resolve " + str(r, "change") + ": " + d.get<std::string>())
            << "\n";
        if (!str(r, "alternative").empty())
          o << (markdown ? "  - " : "    ") << "note: " << str(r, "alternative") << "\n";
      }
    }
    for (const auto& g : s.value("gates", json::array())) {
      std::string result = fmt::format("{} ({} {}, {} failing rows)", g.value("passed", false) ? "passed" : "FAILED",
                                       str(g, "type"), str(g, "severity"), num(g, "failing_rows"));
      if (!str(g, "detail").empty()) result += " — " + str(g, "detail");
      line("gate " + str(g, "name"), result);
      for (const auto& sample : g.value("samples", json::array()))
        o << (markdown ? "  - e.g. `" + sample.get<std::string>() + "`" : "    e.g. " + sample.get<std::string>()) << "\n";
    }
    if (s.contains("reconciliation")) line("reconciliation", reconciliation_line(s["reconciliation"]));
    line("state before", state_text(s.value("state_before", json())));
    line("state after", state_text(s.value("state_after", json())));
    if (s.contains("error")) {
      const auto& e = s["error"];
      line("error", fmt::format("[{}] in phase {}: {}", str(e, "code"), str(e, "phase"), str(e, "message")));
      if (!str(e, "hint").empty()) line("hint", str(e, "hint"));
    }
    for (const auto& w : s.value("warnings", json::array())) line("warning", w.get<std::string>());
    if (markdown) {
      o << "\n| phase | seconds | rows |\n|---|---:|---:|\n";
      for (const auto& p : s.value("phases", json::array()))
        o << fmt::format("| {} | {:.3f} | {} |\n", str(p, "name"), p.value("duration_s", 0.0),
                         p.contains("rows") ? std::to_string(num(p, "rows")) : "");
    } else {
      o << "  phases:\n";
      for (const auto& p : s.value("phases", json::array()))
        o << fmt::format("    {:<10} {:>8.3f}s{}\n", str(p, "name"), p.value("duration_s", 0.0),
                         p.contains("rows") ? fmt::format("  {} rows", num(p, "rows")) : "");
    }
  }
  return o.str();
}

std::string render_html(const json& r) {
  std::ostringstream o;
  auto e = [](const std::string& s) { return html_escape(s); };
  o << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>dpone run "
    << e(str(r, "run_id")) << "</title>\n<style>\n"
    << "body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#1d2330;padding:0 1em}\n"
    << "h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}\n"
    << "table{border-collapse:collapse;margin:.6em 0;width:100%}td,th{border:1px solid #d8dce3;padding:4px 8px;"
       "text-align:left;vertical-align:top}th{background:#f3f5f8}\n"
    << ".ok{color:#137333;font-weight:600}.bad{color:#b3261e;font-weight:600}code,pre{font:12px ui-monospace,monospace;"
       "background:#f6f8fa;padding:1px 4px}\n"
    << ".tl{position:relative;height:28px;background:#f3f5f8;border:1px solid #d8dce3;margin:.4em 0 1.2em}"
       ".seg{position:absolute;top:0;height:28px;overflow:hidden;white-space:nowrap;font-size:11px;color:#fff;"
       "line-height:28px;padding-left:3px;box-sizing:border-box;border-right:1px solid #fff}\n"
    << "</style></head><body>\n";
  std::string status = str(r, "status");
  o << "<h1>dpone run <code>" << e(str(r, "run_id")) << "</code> — <span class=\""
    << (status == "succeeded" ? "ok" : "bad") << "\">" << e(status) << "</span></h1>\n";
  o << "<table><tr><th>manifest</th><td>" << e(str(r, "manifest")) << "</td><th>started</th><td>"
    << e(str(r, "started_at")) << "</td><th>duration</th><td>" << fmt::format("{:.3f}s", r.value("duration_s", 0.0))
    << "</td></tr></table>\n";
  static const char* colors[] = {"#5b6b8c", "#3f7fbf", "#7a5cc2", "#c28a2b", "#2e9a6b",
                                 "#c2572b", "#8c3f9a", "#2b8cc2", "#6b8c2e", "#9a2e4f"};
  for (const auto& s : r.value("streams", json::array())) {
    std::string st = str(s, "status");
    o << "<h2>Stream " << e(str(s, "stream")) << " — <span class=\"" << (st == "failed" ? "bad" : "ok") << "\">"
      << e(st) << "</span></h2>\n";
    // Timeline: one bar, a segment per phase, width proportional to its duration.
    double total = 0;
    for (const auto& p : s.value("phases", json::array())) total += p.value("duration_s", 0.0);
    o << "<h3>Timeline</h3><div class=\"tl\">";
    double left = 0;
    int i = 0;
    for (const auto& p : s.value("phases", json::array())) {
      double d = p.value("duration_s", 0.0);
      double w = total > 0 ? d / total * 100 : 0;
      o << fmt::format("<div class=\"seg\" style=\"left:{:.3f}%;width:{:.3f}%;background:{}\" title=\"{} {:.3f}s\">{}</div>",
                       left, std::max(w, 0.4), colors[i++ % 10], e(str(p, "name")), d, e(str(p, "name")));
      left += w;
    }
    o << "</div>\n<table><tr><th>phase</th><th>started</th><th>seconds</th><th>rows</th><th>rows/s</th></tr>\n";
    for (const auto& p : s.value("phases", json::array())) {
      double d = p.value("duration_s", 0.0);
      std::string rows = p.contains("rows") ? std::to_string(num(p, "rows")) : "";
      std::string rate = p.contains("rows") && d > 0 ? fmt::format("{:.0f}", num(p, "rows") / d) : "";
      o << "<tr><td>" << e(str(p, "name")) << "</td><td>" << e(str(p, "started_at")) << "</td><td>"
        << fmt::format("{:.4f}", d) << "</td><td>" << rows << "</td><td>" << rate << "</td></tr>\n";
    }
    o << "</table>\n<h3>Movement</h3><table>\n";
    auto row = [&](const std::string& k, const std::string& v) {
      o << "<tr><th>" << e(k) << "</th><td>" << e(v) << "</td></tr>\n";
    };
    row("source", str(s["source"], "connector") + " " + str(s["source"], "connection"));
    row("sink", str(s["sink"], "connector") + " " + str(s["sink"], "connection"));
    row("target", str(s.value("target", json::object()), "name"));
    if (s.contains("strategy")) row("strategy", s["strategy"].dump());
    if (s.contains("window")) row("window", str(s["window"], "description"));
    if (s.contains("artifact"))
      row("artifact path", str(s["artifact"], "sink_receives") + " — " + str(s["artifact"], "reason"));
    row("rows", rows_line(s.value("rows", json::object())));
    if (s.contains("recovery")) row("recovery", str(s["recovery"], "note"));
    if (s.contains("reconciliation")) row("reconciliation", reconciliation_line(s["reconciliation"]));
    o << "</table>\n<h3>Schema changes</h3>\n";
    const auto sc = s.value("schema", json::object());
    o << "<p>policy <code>" << e(str(sc, "policy")) << "</code>"
      << (str(sc, "decision").empty() ? "" : ", decision <code>" + e(str(sc, "decision")) + "</code>") << "</p><table><tr><th>change</th><th>safe</th></tr>\n";
    auto changes = sc.value("changes", json::array());
    if (changes.empty()) o << "<tr><td colspan=\"2\">no change</td></tr>\n";
    for (const auto& c : changes)
      o << "<tr><td>" << e(str(c, "text")) << "</td><td>" << (c.value("safe", false) ? "yes" : "<b class=\"bad\">no</b>")
        << "</td></tr>\n";
    o << "</table>\n";
    for (const auto& d : sc.value("ddl", json::array())) o << "<pre>" << e(d.get<std::string>()) << "</pre>\n";
    o << "<h3>Gates</h3><table><tr><th>gate</th><th>type</th><th>severity</th><th>result</th><th>failing rows</th>"
         "<th>detail</th><th>samples</th></tr>\n";
    auto gates = s.value("gates", json::array());
    if (gates.empty()) o << "<tr><td colspan=\"7\">none declared for this strategy</td></tr>\n";
    for (const auto& g : gates) {
      std::string samples;
      for (const auto& sample : g.value("samples", json::array()))
        samples += "<code>" + e(sample.get<std::string>()) + "</code><br>";
      o << "<tr><td>" << e(str(g, "name")) << "</td><td>" << e(str(g, "type")) << "</td><td>" << e(str(g, "severity"))
        << "</td><td class=\"" << (g.value("passed", false) ? "ok\">passed" : "bad\">FAILED") << "</td><td>"
        << num(g, "failing_rows") << "</td><td>" << e(str(g, "detail")) << "</td><td>" << samples << "</td></tr>\n";
    }
    o << "</table>\n<h3>State</h3><table><tr><th>before</th><td><code>"
      << e(state_text(s.value("state_before", json()))) << "</code></td></tr><tr><th>after</th><td><code>"
      << e(state_text(s.value("state_after", json()))) << "</code></td></tr></table>\n";
    if (s.contains("error")) {
      const auto& er = s["error"];
      o << "<h3>Error</h3><table><tr><th>code</th><td class=\"bad\">" << e(str(er, "code")) << "</td></tr><tr><th>phase</th><td>"
        << e(str(er, "phase")) << "</td></tr><tr><th>message</th><td><pre>" << e(str(er, "message"))
        << "</pre></td></tr><tr><th>hint</th><td>" << e(str(er, "hint")) << "</td></tr></table>\n";
    }
    auto warnings = s.value("warnings", json::array());
    if (!warnings.empty()) {
      o << "<h3>Warnings</h3><ul>";
      for (const auto& w : warnings) o << "<li>" << e(w.get<std::string>()) << "</li>";
      o << "</ul>\n";
    }
  }
  o << "</body></html>\n";
  return o.str();
}

}  // namespace

std::string render_report(const json& record, ReportFormat format) {
  switch (format) {
    case ReportFormat::Json: return redact(record.dump(2)) + "\n";
    case ReportFormat::Markdown: return redact(render_text(record, true));
    case ReportFormat::Html: return redact(render_html(record));
    case ReportFormat::Text: break;
  }
  return redact(render_text(record, false));
}

}  // namespace dpone
