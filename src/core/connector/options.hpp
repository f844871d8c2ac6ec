// Typed reads of a connector's options (the stream's merged `source:` / `sink:` map),
// with messages that name the stream and side (`where`). The manifest compiler has
// already validated types against the connector's descriptor; these checks guard
// programmatic callers and give the same clear errors.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace dpone {

class ConnectorOptions {
 public:
  // `where` prefixes messages, e.g. "stream 'orders': source".
  ConnectorOptions(const nlohmann::json& options, std::string where);
  // A non-empty string; nullopt when absent.
  std::optional<std::string> string(const char* key) const;
  // Like string(), but an integer is accepted as its text (e.g. `lookback: 100`).
  std::optional<std::string> string_or_integer(const char* key) const;
  // A list of names; a single name is accepted. Empty when absent.
  std::vector<std::string> string_list(const char* key) const;
  const std::string& where() const { return where_; }

 private:
  nlohmann::json options_;
  std::string where_;
  std::optional<std::string> read(const char* key, bool integer_as_text) const;
};

}  // namespace dpone
