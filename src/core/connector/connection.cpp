#include "core/connector/connection.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <string_view>

namespace dpone {

bool is_secret_field(const std::string& field) {
  std::string f(field);
  std::transform(f.begin(), f.end(), f.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  static constexpr std::array<std::string_view, 11> kExact = {
      "password",   "passwd",     "secret",      "token",         "api_key",    "apikey",
      "access_key", "secret_key", "private_key", "client_secret", "credentials"};
  if (std::find(kExact.begin(), kExact.end(), f) != kExact.end()) return true;
  // Names of data keys (columns identifying rows), not credentials: the `_key` suffix
  // rule below would otherwise mask sink.strategy.unique_key in `dpone render` and
  // treat a partition key as a secret.
  static constexpr std::array<std::string_view, 10> kDataKeys = {
      "unique_key", "primary_key", "partition_key", "sort_key",    "sorting_key",
      "order_key",  "merge_key",   "cursor_key",    "cluster_key", "distribution_key"};
  if (std::find(kDataKeys.begin(), kDataKeys.end(), f) != kDataKeys.end()) return false;
  for (std::string_view suffix : {"_password", "_secret", "_token", "_key"}) {
    if (f.size() > suffix.size() &&
        f.compare(f.size() - suffix.size(), suffix.size(), suffix) == 0) {
      return true;
    }
  }
  return false;
}

}  // namespace dpone
