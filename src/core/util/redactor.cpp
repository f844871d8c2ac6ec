#include "core/util/redactor.hpp"

#include <algorithm>

namespace dpone {

Redactor& Redactor::global() {
  static Redactor instance;
  return instance;
}

void Redactor::add(const std::string& secret) {
  if (secret.empty()) return;
  std::lock_guard lock(mutex_);
  if (std::find(secrets_.begin(), secrets_.end(), secret) != secrets_.end()) return;
  secrets_.push_back(secret);
  std::stable_sort(secrets_.begin(), secrets_.end(),
                   [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
}

std::string Redactor::apply(std::string_view text) const {
  std::lock_guard lock(mutex_);
  std::string out(text);
  for (const auto& s : secrets_) {
    size_t pos = 0;
    while ((pos = out.find(s, pos)) != std::string::npos) {
      out.replace(pos, s.size(), "***");
      pos += 3;
    }
  }
  return out;
}

void Redactor::clear() {
  std::lock_guard lock(mutex_);
  secrets_.clear();
}

std::string redact(std::string_view text) { return Redactor::global().apply(text); }

}  // namespace dpone
