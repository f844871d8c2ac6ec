// The files sink: writes a CSV or JSONL file atomically (README.md).
//
// Staging: stage() writes `<target>.dpone_stg_<run id>` beside the target and fsyncs it;
// the target is untouched until promote().
// Promotion is one rename(2), atomic on POSIX file systems:
//   full_refresh: staging -> the target file;
//   append: the target is a directory; staging -> <dir>/part-<16 hex>.<ext>, where the hex
//   is a hash of the stream name and the window's start (LoadReceipt::window["low"]).
//   A re-run that starts from the same position (the same window, or a run after a crash
//   between promotion and state commit) replaces the same part instead of adding a
//   duplicate. That is why this sink keeps no load receipts.
// Gates (not_null, unique) re-read the staging file. Memory: one batch while staging; the
// unique gate holds the distinct keys it has seen.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "connectors/files/files_common.hpp"
#include "core/connector/sink.hpp"

namespace dpone {

class FilesSink : public Sink {
 public:
  // Reads and checks the options; touches no file. Throws Error(Config*) for bad options.
  explicit FilesSink(const SinkContext& context);

  TargetInfo inspect() override;
  std::vector<ArtifactSpec> accepts() const override;
  std::vector<std::string> render_ddl(const Schema& source_schema,
                                      const std::vector<const SchemaChange*>& changes) override;
  std::vector<std::string> describe_promotion(const StrategySpec& strategy,
                                              const Schema& source_schema) override;
  std::vector<std::string> cleanup_abandoned(const std::vector<std::string>& live_run_ids) override;
  StagedLoad stage(Artifact artifact, const Schema& source_schema) override;
  std::vector<GateResult> check(const StagedLoad& staged,
                                const std::vector<GateSpec>& gates) override;
  PromoteResult promote(const StagedLoad& staged, const PromoteRequest& request) override;
  void abort(const StagedLoad& staged) noexcept override;
  std::optional<LoadReceipt> latest_receipt() override { return std::nullopt; }

  // The part file an append of `receipt` promotes to (public for tests and plans).
  std::filesystem::path part_path(const LoadReceipt& receipt) const;

 private:
  std::filesystem::path staging_path(const StagedLoad& staged) const;
  int64_t count_target_rows() const;
  std::string display(const std::filesystem::path& p) const;

  std::string stream_;
  std::string run_id_;
  std::string where_;
  std::filesystem::path base_dir_;
  std::string path_option_;
  std::filesystem::path target_;   // absolute, normalized, no trailing separator
  std::filesystem::path staging_;  // <target>.dpone_stg_<run id>
  files::Format format_;
  CsvOptions csv_;
  bool count_rows_ = false;  // inspect() counts the target's rows for the shrink guard
  Diagnostics* diagnostics_;
  std::function<void(int64_t, int64_t)> on_progress_;
  Schema staged_schema_;
};

}  // namespace dpone
