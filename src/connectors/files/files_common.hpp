// The files connector (README.md): helpers its source and sink share, namely option
// reading, file formats, globbing and file identity (size + mtime).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/codecs/csv.hpp"

namespace dpone::files {

enum class Format { Csv, Jsonl };
std::string to_string(Format format);

// Reads the `source:` / `sink:` options map with errors naming the stream and the key.
class Options {
 public:
  // `where` prefixes messages, e.g. "stream 'orders': source".
  Options(const nlohmann::json& options, std::string where);
  std::optional<std::string> string(const char* key) const;
  std::optional<int64_t> integer(const char* key) const;
  std::vector<std::string> string_list(const char* key) const;  // empty when absent
  // The map under `key` (an empty object when absent).
  nlohmann::json map(const char* key) const;
  // format: csv | jsonl, or nullopt when absent.
  std::optional<Format> format() const;
  // The csv: map as CsvOptions; `path_hint` selects the default delimiter (tab for .tsv).
  CsvOptions csv(const std::filesystem::path& path_hint) const;
  const std::string& where() const { return where_; }

 private:
  nlohmann::json options_;
  std::string where_;
};

// The format a file's extension names (.csv, .tsv, .txt -> csv; .jsonl, .ndjson -> jsonl).
std::optional<Format> format_from_extension(const std::filesystem::path& path);
// The extension written for a format: "csv" or "jsonl".
const char* extension_of(Format format);

// One input file: `key` is its path relative to the base directory ('/'-separated; absolute
// when outside it), which is how positions name files.
struct FileEntry {
  std::string key;
  std::filesystem::path path;
  int64_t size = 0;
  int64_t mtime_ns = 0;
  bool same_version(int64_t s, int64_t m) const { return size == s && mtime_ns == m; }
};

// The files `pattern` matches, sorted by key. Patterns are relative to base_dir unless
// absolute; `*` and `?` match within one path segment, `**` matches any number of
// directories. Hidden entries (".x") match only a segment that starts with '.', and dpone
// staging files (*.dpone_stg_*) never match. A pattern without wildcards names one file.
// Throws Error(ConfigBadValue) when a wildcard-free pattern names a directory and
// Error(SourceReadFailed) when a directory cannot be listed.
std::vector<FileEntry> glob_files(const std::filesystem::path& base_dir,
                                  const std::string& pattern);

// True when `name` matches one glob segment (`*`, `?`, literal characters).
bool glob_match(std::string_view pattern, std::string_view name);

// Size and modification time (ns since the Unix epoch) of a file; Error(SourceReadFailed)
// when it cannot be read.
FileEntry stat_file(const std::filesystem::path& base_dir, const std::filesystem::path& path);

// The key naming `path` in positions: relative to base_dir, or absolute when outside it.
std::string file_key(const std::filesystem::path& base_dir, const std::filesystem::path& path);

// Marker in staging file names: <target>.dpone_stg_<run id>.
inline constexpr const char* kStagingMarker = ".dpone_stg_";

}  // namespace dpone::files
