// JSON forms of state records, as `dpone state show|list|history --format json` and run
// records print them. Keys are stable: tools read them.
#include "core/state/state_store.hpp"

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

}  // namespace dpone
