// Connection timeouts shared by the server connectors (postgres, clickhouse, kafka,
// rest): reading a seconds field of a connection, and the one message shape of a
// TIMED_OUT error, so an operator always learns the host:port, the phase that waited,
// and which field (with its value) bounds it.
#pragma once

#include <fmt/format.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <string>

#include "core/connector/connection.hpp"
#include "core/errors.hpp"

namespace dpone {

// A connection timeout in seconds: the field's value (a number >= 0; 0 = no limit), or
// `fallback` when the field is absent. A value that is not a number is a configuration
// error naming the connection and field.
inline double connection_timeout(const ResolvedConnection& connection, const std::string& field,
                                 double fallback, const std::string& where) {
  auto text = connection.get(field);
  if (!text || text->empty()) return fallback;
  errno = 0;
  char* end = nullptr;
  double v = std::strtod(text->c_str(), &end);
  if (errno != 0 || end == text->c_str() || *end != '\0' || !std::isfinite(v) || v < 0) {
    throw Error(ErrorCode::ConfigBadValue,
                fmt::format("{}: connection '{}' field '{}': '{}' is not a number of seconds",
                            where, connection.id, field, *text),
                fmt::format("give seconds, e.g. {}: 30 (0 = no limit)", field));
  }
  return v;
}

// "10 s" / "2.5 s" for messages.
inline std::string seconds_text(double seconds) {
  return fmt::format("{:g} s", seconds);
}

// "connection field `name`": the usual `setting` of timed_out.
inline std::string connection_field(const std::string& name) {
  return fmt::format("connection field `{}`", name);
}

// TIMED_OUT: "<where>: <phase> on <host:port> timed out after <value> (set by <setting>)".
inline Error timed_out(const std::string& where, const std::string& host_port,
                       const std::string& phase, double seconds, const std::string& setting,
                       const std::string& detail = {}) {
  return Error(ErrorCode::TimedOut,
               fmt::format("{}: {} on {} timed out after {} (set by {}){}", where, phase, host_port,
                           seconds_text(seconds), setting, detail.empty() ? "" : ": " + detail),
               fmt::format("check that the server at {} is up and answering, or raise {} if "
                           "it is only slow; nothing was promoted and the state is unchanged",
                           host_port, setting));
}

}  // namespace dpone
