// Shared fixtures for the manifest tests: a small connector catalog and temp dirs.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/connector/catalog.hpp"
#include "core/manifest/manifest.hpp"

namespace dpone::testing {

inline nlohmann::json test_index() {
  return nlohmann::json::parse(R"json({
  "abi": 1,
  "connectors": [
    {"built": true, "module": "libdpone_sqlite.so", "descriptor": {
      "name": "sqlite", "summary": "SQLite database file",
      "requires": [{"library": "libsqlite3.so.0", "package": "libsqlite3-0"}],
      "connection": {"fields": {
        "path": {"type": "string", "required": true, "doc": "database file"},
        "password": {"type": "string", "secret": true, "doc": "encryption key"},
        "timeout_ms": {"type": "integer", "doc": "busy timeout"}}},
      "source": {"incremental": ["full", "cursor"], "produces": ["streaming_rows/record_batch"],
        "options": {
          "table": {"type": "string", "required": true, "doc": "table to read"},
          "cursor": {"type": "string", "doc": "cursor column"},
          "batch_rows": {"type": "integer", "doc": "rows per batch"},
          "columns": {"type": "map", "additional": {"type": "logical_type"}, "doc": "types"},
          "where": {"type": "string", "doc": "filter"}}},
      "sink": {"strategies": ["full_refresh", "append", "merge"],
        "accepts": ["streaming_rows/record_batch"],
        "options": {
          "table": {"type": "string", "required": true, "doc": "target table"},
          "api_token": {"type": "string", "doc": "a secret by name"}}}}},
    {"built": true, "module": "libdpone_files.so", "descriptor": {
      "name": "files", "summary": "CSV and JSONL files",
      "source": {"incremental": ["full"], "produces": ["streaming_rows/record_batch"],
        "options": {
          "path": {"type": "string", "required": true, "doc": "file or glob"},
          "format": {"type": "enum", "enum": ["csv", "jsonl"], "default": "csv", "doc": "format"},
          "header": {"type": "boolean", "doc": "first line is a header"}}},
      "sink": {"strategies": ["full_refresh", "append"], "accepts": ["streaming_rows/record_batch"],
        "options": {
          "path": {"type": "string", "required": true, "doc": "output file"},
          "format": {"type": "enum", "enum": ["csv", "jsonl"], "doc": "format"}}}}},
    {"built": false, "reason": "libpq not found", "module": "libdpone_pgsource.so",
     "descriptor": {"name": "pgsource", "summary": "source only",
      "source": {"incremental": ["full"], "options": {"schema": {"type": "string"},
                                                        "table": {"type": "string"}}}}}
  ]})json");
}

inline ConnectorCatalog test_catalog() {
  return ConnectorCatalog::from_json(test_index());
}

// A fresh directory under the system temp dir, removed at destruction.
class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() /
            ("dpone_manifest_test_" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path write(const std::string& name, const std::string& text) const {
    auto p = path_ / name;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
    return p;
  }

 private:
  std::filesystem::path path_;
};

// Sets an environment variable for the lifetime of the object.
class ScopedEnv {
 public:
  ScopedEnv(std::string name, const std::string& value) : name_(std::move(name)) {
    if (const char* old = std::getenv(name_.c_str())) old_ = old, had_ = true;
    ::setenv(name_.c_str(), value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (had_) {
      ::setenv(name_.c_str(), old_.c_str(), 1);
    } else {
      ::unsetenv(name_.c_str());
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::string name_;
  std::string old_;
  bool had_ = false;
};

// Writes `yaml` as manifest.yaml in `dir` and compiles it against the test catalog and
// the connections file beside it (the process environment included).
inline Manifest load_text(const TempDir& dir, const std::string& yaml,
                          const std::map<std::string, std::string>& vars = {}) {
  auto file = dir.write("manifest.yaml", yaml);
  auto catalog = test_catalog();
  auto connections = ConnectionResolver::open(connections_file_for(file));
  LoadOptions options;
  options.vars = vars;
  return load_manifest(file, options, catalog, connections);
}

// The problems load_text reports (fails the test when it reports none).
inline std::vector<Problem> problems_of(const TempDir& dir, const std::string& yaml,
                                        std::string* what = nullptr) {
  try {
    load_text(dir, yaml);
  } catch (const ManifestError& e) {
    if (what != nullptr) *what = e.what();
    return e.problems();
  }
  ADD_FAILURE() << "expected the manifest to be rejected";
  return {};
}

// The first problem at `path`, or nullptr.
inline const Problem* find_problem(const std::vector<Problem>& problems, const std::string& path) {
  for (const auto& p : problems) {
    if (p.path == path) return &p;
  }
  return nullptr;
}

inline std::string dump(const std::vector<Problem>& problems) {
  std::string out;
  for (const auto& p : problems) out += p.to_string() + "\n";
  return out;
}

}  // namespace dpone::testing
