// Gate results in the run record's renderings: text, markdown, html and Prometheus metrics
// show every gate with its result, detail and samples.
#include <gtest/gtest.h>

#include "runtime/run_record.hpp"

namespace dpone {
namespace {

using json = nlohmann::json;

json record() {
  json passed = {{"name", "rows_match"}, {"type", "row_count"}, {"severity", "error"}, {"passed", true},
                 {"failing_rows", 0}, {"samples", json::array()}, {"sql", "SELECT count(*) FROM s"},
                 {"detail", "source 3 rows, staged 3 rows, difference 0, tolerance 0 rows"}};
  json failed = {{"name", "amount_range"}, {"type", "range"}, {"severity", "warn"}, {"passed", false},
                 {"failing_rows", 1}, {"samples", {"row 1: amount=-5.00"}}, {"sql", "SELECT ..."},
                 {"detail", "1 rows outside amount >= 0 and <= 1000"}};
  json stream = {{"stream", "orders"}, {"status", "succeeded"}, {"duration_s", 0.5},
                 {"source", {{"connector", "files"}}}, {"sink", {{"connector", "sqlite"}}},
                 {"rows", {{"staged", 3}}}, {"gates", {passed, failed}}};
  return {{"run_id", "r1"}, {"kind", "run"}, {"status", "succeeded"}, {"streams", {stream}}};
}

TEST(GateReport, TextShowsEveryGateWithDetailAndSamples) {
  std::string text = render_report(record(), ReportFormat::Text);
  EXPECT_NE(text.find("gate rows_match: passed (row_count error, 0 failing rows) — source 3 rows, staged 3 rows"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("gate amount_range: FAILED (range warn, 1 failing rows) — 1 rows outside amount >= 0"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("    e.g. row 1: amount=-5.00"), std::string::npos) << text;
  std::string md = render_report(record(), ReportFormat::Markdown);
  EXPECT_NE(md.find("- **gate amount_range**: FAILED"), std::string::npos) << md;
  EXPECT_NE(md.find("  - e.g. `row 1: amount=-5.00`"), std::string::npos) << md;
}

TEST(GateReport, HtmlHasDetailAndSamplesColumns) {
  std::string html = render_report(record(), ReportFormat::Html);
  EXPECT_NE(html.find("<th>detail</th><th>samples</th>"), std::string::npos);
  EXPECT_NE(html.find("<td>amount_range</td><td>range</td><td>warn</td><td class=\"bad\">FAILED</td><td>1</td>"
                      "<td>1 rows outside amount &gt;= 0 and &lt;= 1000</td><td><code>row 1: amount=-5.00</code><br></td>"),
            std::string::npos)
      << html;
}

TEST(GateReport, PrometheusHasOneSeriesPerGate) {
  std::string m = prometheus_metrics(record());
  EXPECT_NE(m.find("dpone_gate_passed{run_id=\"r1\",stream=\"orders\",gate=\"rows_match\",type=\"row_count\","
                   "severity=\"error\"} 1"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("dpone_gate_passed{run_id=\"r1\",stream=\"orders\",gate=\"amount_range\",type=\"range\","
                   "severity=\"warn\"} 0"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("dpone_gate_failing_rows{run_id=\"r1\",stream=\"orders\",gate=\"amount_range\"} 1"),
            std::string::npos)
      << m;
}

}  // namespace
}  // namespace dpone
