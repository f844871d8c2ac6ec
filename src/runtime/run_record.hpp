// Run records: .dpone/runs/<run_id>/run.json (and metrics.prom, Prometheus text
// format). Written atomically and through the redactor; read back by run-report,
// runs list and perf advise. Nothing in a report is computed from anything else.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace dpone {

void write_run_record(const std::filesystem::path& runs_dir, const nlohmann::json& record);
// run_id empty = the newest run. Throws Error(RunRecordMissing).
nlohmann::json read_run_record(const std::filesystem::path& runs_dir, const std::string& run_id);
// Newest first.
std::vector<nlohmann::json> list_run_records(const std::filesystem::path& runs_dir);

std::string prometheus_metrics(const nlohmann::json& record);

enum class ReportFormat { Text, Markdown, Json, Html };
std::string render_report(const nlohmann::json& record, ReportFormat format);

}  // namespace dpone
