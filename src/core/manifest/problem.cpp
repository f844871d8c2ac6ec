#include "core/manifest/problem.hpp"

#include <algorithm>
#include <cctype>

#include <fmt/format.h>

#include "core/util/redactor.hpp"

namespace dpone {

std::string Mark::to_string() const {
  if (line <= 0) return file;
  return fmt::format("{}:{}:{}", file, line, column);
}

std::string Problem::to_string() const {
  std::string out = fmt::format("{}: error[{}] ", mark.to_string(), error_code_name(code));
  if (!path.empty()) out += path + ": ";
  out += message;
  if (!suggestion.empty()) out += fmt::format(" (did you mean '{}'?)", suggestion);
  return out;
}

namespace {

ErrorCode common_code(const std::vector<Problem>& problems) {
  if (problems.empty()) return ErrorCode::ConfigInvalid;
  ErrorCode code = problems.front().code;
  for (const auto& p : problems) {
    if (p.code != code) return ErrorCode::ConfigInvalid;
  }
  return code;
}

std::string join_problems(const std::vector<Problem>& problems) {
  std::string out;
  for (const auto& p : problems) {
    if (!out.empty()) out += '\n';
    out += p.to_string();
  }
  return redact(out);
}

}  // namespace

ManifestError::ManifestError(std::vector<Problem> problems)
    : Error(common_code(problems), join_problems(problems),
            "fix the listed problems; `dpone validate` checks a manifest without running it"),
      problems_(std::move(problems)) {
  for (auto& p : problems_) p.message = redact(p.message);
}

int edit_distance(const std::string& a_in, const std::string& b_in) {
  auto lower = [](std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  };
  const std::string a = lower(a_in), b = lower(b_in);
  const size_t n = a.size(), m = b.size();
  std::vector<std::vector<int>> d(n + 1, std::vector<int>(m + 1, 0));
  for (size_t i = 0; i <= n; ++i) d[i][0] = static_cast<int>(i);
  for (size_t j = 0; j <= m; ++j) d[0][j] = static_cast<int>(j);
  for (size_t i = 1; i <= n; ++i) {
    for (size_t j = 1; j <= m; ++j) {
      int cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[n][m];
}

std::string suggest(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  int best_d = 0;
  for (const auto& c : candidates) {
    if (c == word) continue;
    int d = edit_distance(word, c);
    int longest = static_cast<int>(std::max(word.size(), c.size()));
    bool near = d <= 2 || d * 3 <= static_cast<int>(word.size());
    // A distance equal to the longer length means nothing in common: not a near miss.
    if (!near || d >= longest) continue;
    if (best.empty() || d < best_d) {
      best = c;
      best_d = d;
    }
  }
  return best;
}

std::string join_path(const std::string& prefix, const std::string& rest) {
  if (prefix.empty()) return rest;
  if (rest.empty()) return prefix;
  if (rest.front() == '[') return prefix + rest;
  return prefix + "." + rest;
}

}  // namespace dpone
