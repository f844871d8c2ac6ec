// The redactor every output passes through: log lines, plans, run records, reports,
// error messages. Secrets are registered as they are resolved; apply() replaces each
// occurrence with "***". Thread-safe.
#pragma once

#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace dpone {

class Redactor {
 public:
  static Redactor& global();
  // Registers a secret value. Values shorter than 3 characters are registered too
  // (a secret is a secret) but empty values are ignored.
  void add(const std::string& secret);
  std::string apply(std::string_view text) const;
  void clear();  // tests only

 private:
  mutable std::mutex mutex_;
  std::vector<std::string> secrets_;  // longest first, so overlapping secrets mask fully
};

// Shorthand for Redactor::global().apply(text).
std::string redact(std::string_view text);

}  // namespace dpone
