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

// Which database a connection reaches, as the same role: "<user>@<host>:<port>/<dbname>"
// from its fields (an absent field is empty; no secret is part of it). Two connections
// with equal, non-empty identities and the same type reach the same database as the same
// user, so one may run SQL that reads the other's tables (InternalQuery) or write the
// other's state in its own transaction. Literal comparison: "localhost" and "127.0.0.1"
// are different identities (conservative: the fast path is then simply not taken).
inline std::string connection_identity(const ResolvedConnection& c) {
  auto f = [&](const char* k) { return c.get(k).value_or(""); };
  if (f("host").empty() && f("dbname").empty() && f("port").empty()) return "";
  return c.type + ":" + f("user") + "@" + f("host") + ":" + f("port") + "/" + f("dbname");
}

// Field names whose values are secrets wherever they appear.
bool is_secret_field(const std::string& field);

}  // namespace dpone
