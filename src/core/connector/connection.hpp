// Resolved connections and secrets. A Secret cannot be printed or formatted: the
// only way to the value is reveal(), which connectors call when they hand it to a
// client library. Every secret resolved for a run is also registered with the
// Redactor (core/util/redactor.hpp) so that no log line, plan, record or error
// message can carry it, even when a library echoes it back.
#pragma once

#include <map>
#include <optional>
#include <ostream>
#include <string>

namespace dpone {

class Secret {
 public:
  Secret() = default;
  explicit Secret(std::string value) : value_(std::move(value)) {}
  const std::string& reveal() const { return value_; }
  bool empty() const { return value_.empty(); }
  friend std::ostream& operator<<(std::ostream& os, const Secret&) { return os << "***"; }

 private:
  std::string value_;
};

struct ResolvedConnection {
  std::string id;    // the name in connections.yaml / DPONE_CONN_<ID>_*
  std::string type;  // connector name, e.g. "sqlite"
  std::map<std::string, std::string> fields;  // non-secret fields
  std::map<std::string, Secret> secrets;      // password, token, ... (see is_secret_field)

  // A non-secret field, or nullopt.
  std::optional<std::string> get(const std::string& field) const {
    auto it = fields.find(field);
    if (it == fields.end()) return std::nullopt;
    return it->second;
  }
  const Secret* secret(const std::string& field) const {
    auto it = secrets.find(field);
    return it == secrets.end() ? nullptr : &it->second;
  }
};

// Field names whose values are secrets wherever they appear.
bool is_secret_field(const std::string& field);

}  // namespace dpone
