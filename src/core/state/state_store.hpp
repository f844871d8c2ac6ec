// StateStore contract (ARCHITECTURE.md): per-stream positions with compare-and-set
// revisions and a full history. Only the runtime commits, after promotion succeeded.
#pragma once

#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace dpone {

struct StreamState {
  std::string stream;
  int64_t revision = 0;  // 0 = never committed
  nlohmann::json position;
  std::string run_id;
  std::string updated_at;  // ISO 8601 UTC
  nlohmann::json to_json() const;
};

struct StateHistoryEntry {
  int64_t revision = 0;
  nlohmann::json position;
  std::string run_id;
  std::string action;  // commit | recover | set | reset
  std::string committed_at;
  nlohmann::json to_json() const;
};

// Where a store keeps its rows, for a sink that can write them in its own promotion
// transaction ("state commits with the data"): the connector that owns the store, the
// identity of the database it lives in (connection_identity() of its connection) and
// connector-specific details (postgres: {"schema": "dpone"}).
struct StateCommitTarget {
  std::string connector;
  std::string connection_identity;
  nlohmann::json location;
};

// One compare-and-set commit, with StateStore::commit's meaning, handed to a sink
// (PromoteRequest::state_commit) to run inside its promotion transaction.
struct StateCommitRequest {
  StateCommitTarget target;
  std::string stream;
  int64_t expected_revision = 0;
  nlohmann::json position;
  std::string run_id;
  std::string action = "commit";
};

// Who holds a stream's lease (StateStore::acquire_lease): one run at a time works on a
// stream. A lease expires `ttl_s` seconds after its last renewal, so a holder that died
// (SIGKILL, a lost machine) is taken over by the next run (docs/reliability.md).
struct StreamLease {
  std::string stream;
  std::string run_id;
  std::string host;
  int64_t pid = 0;
  std::string acquired_at;  // ISO 8601 UTC
  std::string renewed_at;   // ISO 8601 UTC
  int64_t ttl_s = 0;
  nlohmann::json to_json() const;
  // "run R (host H, pid P) since T, renewed T2"
  std::string describe() const;
};

class StateStore {
 public:
  virtual ~StateStore() = default;
  virtual std::string describe() const = 0;  // e.g. "sqlite:.dpone/state.db"
  virtual std::optional<StreamState> get(const std::string& stream) = 0;
  // Compare-and-set: succeeds only if the stored revision equals expected_revision
  // (0 for a stream never committed); throws Error(StateConflict) otherwise.
  virtual StreamState commit(const std::string& stream, int64_t expected_revision,
                             const nlohmann::json& position, const std::string& run_id,
                             const std::string& action) = 0;
  virtual std::vector<StreamState> list() = 0;
  virtual std::vector<StateHistoryEntry> history(const std::string& stream) = 0;
  // Set when a sink on the same database may commit this store's state inside its own
  // promotion transaction (PromoteRequest::state_commit); nullopt (the default) when the
  // store lives elsewhere (a file) and the runtime always commits after promotion.
  virtual std::optional<StateCommitTarget> transactional_target() const { return std::nullopt; }

  // Leases. acquire_lease() takes the stream for `lease.run_id` when nobody holds it or
  // the holder's lease expired (then the previous holder is returned in `taken_over`);
  // otherwise it changes nothing and returns the live holder in `held_by`. Atomic
  // against other processes and hosts sharing the store. The store's own clock decides
  // expiry (PostgreSQL: the server's), never the pinned DPONE_NOW clock.
  struct LeaseAttempt {
    bool acquired = false;
    std::optional<StreamLease> held_by;     // set when not acquired
    std::optional<StreamLease> taken_over;  // an expired lease that was replaced
  };
  // `dead_run_id`: a holder the caller proved dead (same host, its pid gone): its lease
  // is taken over as if expired.
  virtual LeaseAttempt acquire_lease(const StreamLease& lease, const std::string& dead_run_id) = 0;
  // Extends the lease by its ttl; false when `run_id` no longer holds it (it expired and
  // another run took it over).
  virtual bool renew_lease(const std::string& stream, const std::string& run_id) = 0;
  // Releases the lease if `run_id` holds it; never throws.
  virtual void release_lease(const std::string& stream, const std::string& run_id) noexcept = 0;
  // Every unexpired lease of the store (all streams): their staging is not abandoned.
  virtual std::vector<StreamLease> live_leases() = 0;
};

// What every store throws when a commit fails for a reason other than a conflict: the
// stream named, the store's own error kept. Rethrows any other error unchanged.
// A stored position read back; text that is not JSON throws Error(StateStoreFailed)
// naming the store (`where`) and the stream, with how to repair it.
nlohmann::json parse_position(const std::string& where, const std::string& stream,
                              std::string_view text);

[[noreturn]] void rethrow_commit_failure(const std::string& stream, const std::exception& e);

// Opens (creating if needed) the embedded SQLite store at `path`.
std::unique_ptr<StateStore> open_sqlite_state_store(const std::string& path);

}  // namespace dpone
