// What every state store shares: the JSON forms of state records, as `dpone state
// show|list|history --format json` and run records print them (keys are stable: tools
// read them), and the error a failed commit throws.
#include "core/state/state_store.hpp"

#include <fmt/format.h>

#include "core/errors.hpp"

namespace dpone {

nlohmann::json StreamState::to_json() const {
  return nlohmann::json{{"stream", stream},
                        {"revision", revision},
                        {"position", position},
                        {"run_id", run_id},
                        {"updated_at", updated_at}};
}

nlohmann::json StateHistoryEntry::to_json() const {
  return nlohmann::json{{"revision", revision},
                        {"position", position},
                        {"run_id", run_id},
                        {"action", action},
                        {"committed_at", committed_at}};
}

nlohmann::json StreamLease::to_json() const {
  return nlohmann::json{{"stream", stream},     {"run_id", run_id},
                        {"host", host},         {"pid", pid},
                        {"acquired_at", acquired_at}, {"renewed_at", renewed_at},
                        {"ttl_s", ttl_s}};
}

std::string StreamLease::describe() const {
  return fmt::format("run {} (host {}, pid {}) since {}, renewed {}, ttl {} s", run_id, host, pid,
                     acquired_at, renewed_at, ttl_s);
}

nlohmann::json parse_position(const std::string& where, const std::string& stream,
                              std::string_view text) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorCode::StateStoreFailed,
                fmt::format("state store {}: the stored position of stream '{}' is not valid "
                            "JSON ({})",
                            where, stream, e.what()),
                "inspect it with `dpone state history`, then repair it with `dpone state set`");
  }
}

void rethrow_commit_failure(const std::string& stream, const std::exception& e) {
  const auto* err = dynamic_cast<const Error*>(&e);
  if (!err || err->code() != ErrorCode::StateStoreFailed) throw;
  throw Error(ErrorCode::StateStoreFailed,
              fmt::format("committing the state of stream '{}' failed (nothing was changed): {}",
                          stream, err->what()),
              err->hint());
}

}  // namespace dpone
