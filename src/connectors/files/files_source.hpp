// The files source: CSV and JSONL files named by a path or glob (README.md).
//
// Windows: `incremental: full` reads every matching file each run; `new_files` reads the
// files that are not in the stored position or whose size or mtime changed. The position
// is {"files": {"<key>": {"size": N, "mtime_ns": M}}}; a window's files are exactly the
// entries of window.high that differ from window.low, so a window can be re-extracted from
// its JSON alone. A file that changes between plan_window() and extract() fails the run
// (SourceReadFailed, retryable) instead of loading a half-written file.
// Memory: extract() holds one batch plus one read buffer, whatever the input size.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "connectors/files/files_common.hpp"
#include "core/connector/source.hpp"

namespace dpone {

class FilesSource : public Source {
 public:
  // Reads and checks the options; touches no file. Throws Error(Config*) for bad options.
  explicit FilesSource(const SourceContext& context);

  Window plan_window(const nlohmann::json& position) override;
  Schema discover() override;
  std::vector<ArtifactSpec> produces() const override;
  Artifact extract(const Window& window, const ArtifactSpec& spec,
                   const ExtractOptions& options) override;
  nlohmann::json next_position(const Window& window) override;

  // Settings shared with the batch reader.
  struct Settings {
    std::string where;                    // "stream 'x': source", for messages
    std::filesystem::path base_dir;       // absolute
    std::string path;                     // the path option as written
    std::optional<files::Format> format;  // nullopt: from each file's extension
    files::Options options;               // for per-file csv options (.tsv default)
    std::vector<std::pair<std::string, LogicalType>> declared;  // columns:
    std::vector<std::string> primary_key;
    int64_t infer_rows = 10000;
    bool new_files = false;
  };

 private:
  std::vector<files::FileEntry> files_of(const Window& window) const;
  std::vector<files::FileEntry> match_or_fail() const;

  SourceContext context_;
  Settings settings_;
  std::optional<std::vector<files::FileEntry>> planned_;  // files of the last planned window
  std::optional<Schema> schema_;
};

}  // namespace dpone
