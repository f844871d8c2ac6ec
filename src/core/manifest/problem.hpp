// Positions in configuration files and the problems found there. Validation collects
// every problem (not just the first) so one `dpone validate` run lists all of them,
// each as `<file>:<line>:<col>: error[<CODE>] <key path>: <message> (did you mean 'x'?)`.
#pragma once

#include <string>
#include <vector>

#include "core/errors.hpp"

namespace dpone {

// A place in a file, 1-based. line == 0 means "not in a file" and `file` then names
// where the value came from instead (for example `--var env` or
// `$DPONE_CONN_WAREHOUSE_PATH`).
struct Mark {
  std::string file;
  int line = 0;
  int column = 0;
  std::string to_string() const;  // "file:line:col", or just `file` when line == 0
  bool operator==(const Mark&) const = default;
};

// Where a configuration value came from: the text it was written in and the
// document that wrote it ("defaults.sink", "streams[0]", "schemas.public.tables[1]",
// "vars.x (via template)", "--var x", "default").
struct Origin {
  Mark mark;
  std::string from;
  bool operator==(const Origin&) const = default;
};

struct Problem {
  ErrorCode code = ErrorCode::ConfigInvalid;
  Mark mark;
  std::string path;        // key path, e.g. "streams[0].sink.strategy.mode"
  std::string message;     // never contains a secret value
  std::string suggestion;  // a near-miss alternative, or empty
  std::string to_string() const;
  bool operator==(const Problem&) const = default;
};

// All the problems of one manifest (or connections file). what() lists them, one per
// line, already redacted. code() is the problems' common code, or ConfigInvalid when
// they differ.
class ManifestError : public Error {
 public:
  explicit ManifestError(std::vector<Problem> problems);
  const std::vector<Problem>& problems() const { return problems_; }

 private:
  std::vector<Problem> problems_;
};

// Optimal-string-alignment (Damerau-Levenshtein) distance, case-insensitive.
int edit_distance(const std::string& a, const std::string& b);
// The candidate closest to `word` when it is a near miss (distance <= 2 or <= a third
// of the word's length, and not a complete rewrite), else "".
std::string suggest(const std::string& word, const std::vector<std::string>& candidates);

// Joins key paths: join_path("streams[0]", "sink") = "streams[0].sink",
// join_path("streams", "[0]") = "streams[0]", join_path("", "kind") = "kind".
std::string join_path(const std::string& prefix, const std::string& rest);

}  // namespace dpone
