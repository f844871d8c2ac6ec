// The embedded state store: one SQLite file (default .dpone/state.db).
//
// Tables:
//   dpone_state(stream PK, revision, position JSON text, run_id, updated_at)
//   dpone_state_history(stream, revision, position, run_id, action, committed_at)
// commit() is a compare-and-set done inside BEGIN IMMEDIATE, which takes the file's
// write lock before reading the revision, so two processes (or two handles in one
// process) committing the same stream serialise and the loser sees the winner's
// revision: it gets StateConflict, never a lost update. WAL journaling lets readers
// (`dpone state list`) run while a commit is in progress.
//
// history() returns entries oldest first (ascending revision).
// One store object may be shared by threads: a mutex serialises its use of the handle.
#include <chrono>
#include <filesystem>
#include <mutex>
#include <system_error>

#include <fmt/format.h>

#include "core/errors.hpp"
#include "core/state/sqlite_handle.hpp"
#include "core/state/state_store.hpp"
#include "core/util/time.hpp"

namespace dpone {

namespace {

constexpr const char* kSchemaSql = R"sql(
CREATE TABLE IF NOT EXISTS dpone_state (
  stream TEXT PRIMARY KEY,
  revision INTEGER NOT NULL,
  position TEXT NOT NULL,
  run_id TEXT,
  updated_at TEXT
);
CREATE TABLE IF NOT EXISTS dpone_state_history (
  stream TEXT NOT NULL,
  revision INTEGER NOT NULL,
  position TEXT NOT NULL,
  run_id TEXT,
  action TEXT NOT NULL,
  committed_at TEXT NOT NULL,
  PRIMARY KEY (stream, revision)
);
CREATE TABLE IF NOT EXISTS dpone_lease (
  stream TEXT PRIMARY KEY,
  run_id TEXT NOT NULL,
  host TEXT NOT NULL,
  pid INTEGER NOT NULL,
  acquired_at TEXT NOT NULL,
  renewed_at TEXT NOT NULL,
  ttl_s INTEGER NOT NULL,
  expires_at REAL NOT NULL
);
)sql";

// Leases expire by this machine's real clock (never the pinned DPONE_NOW clock).
double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

bool known_action(const std::string& action) {
  return action == "commit" || action == "recover" || action == "set" || action == "reset";
}

SqliteDb open_store(const std::string& path) {
  std::filesystem::path p(path);
  if (path != ":memory:" && p.has_parent_path()) {
    std::error_code ec;
    std::filesystem::create_directories(p.parent_path(), ec);
    if (ec) {
      throw Error(ErrorCode::StateStoreFailed,
                  fmt::format("cannot create the directory {} for the state store: {}",
                              p.parent_path().string(), ec.message()),
                  "check permissions, or point `state.path` to a writable location");
    }
  }
  SqliteDb db(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, ErrorCode::StateStoreFailed);
  db.enable_wal();
  db.exec(kSchemaSql);
  return db;
}

std::string column_string(const SqliteStmt& stmt, int col) {
  return stmt.column_is_null(col) ? std::string() : std::string(stmt.column_text(col));
}

class SqliteStateStore : public StateStore {
 public:
  explicit SqliteStateStore(const std::string& path) : path_(path), db_(open_store(path)) {}

  std::string describe() const override { return "sqlite:" + path_; }

  std::optional<StreamState> get(const std::string& stream) override {
    std::lock_guard lock(mutex_);
    SqliteStmt stmt = db_.prepare(
        "SELECT stream, revision, position, run_id, updated_at FROM dpone_state WHERE stream = ?");
    stmt.bind_text(1, stream);
    if (!stmt.step()) return std::nullopt;
    return read_state(stmt);
  }

  StreamState commit(const std::string& stream, int64_t expected_revision,
                     const nlohmann::json& position, const std::string& run_id,
                     const std::string& action) override {
    if (!known_action(action)) {
      throw Error(ErrorCode::Internal,
                  fmt::format("state commit of stream '{}' with unknown action '{}' (expected "
                              "commit, recover, set or reset)",
                              stream, action));
    }
    std::lock_guard lock(mutex_);
    try {
      SqliteTransaction txn(db_, "BEGIN IMMEDIATE");
      SqliteStmt read = db_.prepare("SELECT revision FROM dpone_state WHERE stream = ?");
      read.bind_text(1, stream);
      int64_t current = read.step() ? read.column_int64(0) : 0;
      read.reset();
      if (current != expected_revision) {
        txn.rollback();
        throw Error(ErrorCode::StateConflict,
                    fmt::format("state of stream {} is at revision {}, expected {}: another run "
                                "committed first",
                                stream, current, expected_revision),
                    "re-run the stream: it will start from the position the other run "
                    "committed; make sure one stream is not scheduled twice at once");
      }
      StreamState out;
      out.stream = stream;
      out.revision = current + 1;
      out.position = position;
      out.run_id = run_id;
      out.updated_at = now_iso8601();
      std::string position_text = position.dump();

      SqliteStmt upsert = db_.prepare(
          "INSERT INTO dpone_state (stream, revision, position, run_id, updated_at) "
          "VALUES (?1, ?2, ?3, ?4, ?5) "
          "ON CONFLICT (stream) DO UPDATE SET revision = excluded.revision, "
          "position = excluded.position, run_id = excluded.run_id, "
          "updated_at = excluded.updated_at");
      upsert.bind_text(1, stream)
          .bind_int64(2, out.revision)
          .bind_text(3, position_text)
          .bind_text(4, run_id)
          .bind_text(5, out.updated_at);
      upsert.run();

      SqliteStmt hist = db_.prepare(
          "INSERT INTO dpone_state_history (stream, revision, position, run_id, action, "
          "committed_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
      hist.bind_text(1, stream)
          .bind_int64(2, out.revision)
          .bind_text(3, position_text)
          .bind_text(4, run_id)
          .bind_text(5, action)
          .bind_text(6, out.updated_at);
      hist.run();
      txn.commit();
      return out;
    } catch (const Error& e) {
      rethrow_commit_failure(stream, e);
    }
  }

  std::vector<StreamState> list() override {
    std::lock_guard lock(mutex_);
    SqliteStmt stmt = db_.prepare(
        "SELECT stream, revision, position, run_id, updated_at FROM dpone_state "
        "ORDER BY stream");
    std::vector<StreamState> out;
    while (stmt.step()) out.push_back(read_state(stmt));
    return out;
  }

  std::vector<StateHistoryEntry> history(const std::string& stream) override {
    std::lock_guard lock(mutex_);
    SqliteStmt stmt = db_.prepare(
        "SELECT revision, position, run_id, action, committed_at FROM dpone_state_history "
        "WHERE stream = ? ORDER BY revision");
    stmt.bind_text(1, stream);
    std::vector<StateHistoryEntry> out;
    while (stmt.step()) {
      StateHistoryEntry e;
      e.revision = stmt.column_int64(0);
      e.position = parse_position(path_, stream, stmt.column_text(1));
      e.run_id = column_string(stmt, 2);
      e.action = column_string(stmt, 3);
      e.committed_at = column_string(stmt, 4);
      out.push_back(std::move(e));
    }
    return out;
  }

  LeaseAttempt acquire_lease(const StreamLease& lease, const std::string& dead_run_id) override {
    std::lock_guard lock(mutex_);
    try {
      SqliteTransaction txn(db_, "BEGIN IMMEDIATE");
      LeaseAttempt out;
      SqliteStmt read = db_.prepare(
          "SELECT stream, run_id, host, pid, acquired_at, renewed_at, ttl_s, expires_at "
          "FROM dpone_lease WHERE stream = ?");
      read.bind_text(1, lease.stream);
      const double now = unix_now();
      if (read.step()) {
        StreamLease held = read_lease(read);
        const double expires_at = read.column_double(7);
        if (held.run_id != lease.run_id && expires_at > now && held.run_id != dead_run_id) {
          out.held_by = held;
          return out;  // the transaction rolls back: nothing changed
        }
        if (held.run_id != lease.run_id) out.taken_over = held;
      }
      read.reset();
      const std::string at = now_iso8601();
      SqliteStmt put = db_.prepare(
          "INSERT INTO dpone_lease (stream, run_id, host, pid, acquired_at, renewed_at, ttl_s, "
          "expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?7) ON CONFLICT (stream) DO UPDATE SET "
          "run_id = excluded.run_id, host = excluded.host, pid = excluded.pid, acquired_at = "
          "excluded.acquired_at, renewed_at = excluded.renewed_at, ttl_s = excluded.ttl_s, "
          "expires_at = excluded.expires_at");
      put.bind_text(1, lease.stream)
          .bind_text(2, lease.run_id)
          .bind_text(3, lease.host)
          .bind_int64(4, lease.pid)
          .bind_text(5, at)
          .bind_int64(6, lease.ttl_s)
          .bind_double(7, now + static_cast<double>(lease.ttl_s));
      put.run();
      txn.commit();
      out.acquired = true;
      return out;
    } catch (const Error& e) {
      throw Error(ErrorCode::StateStoreFailed,
                  fmt::format("taking the lease of stream '{}' in {} failed: {}", lease.stream,
                              describe(), e.what()),
                  e.hint());
    }
  }

  bool renew_lease(const std::string& stream, const std::string& run_id) override {
    std::lock_guard lock(mutex_);
    SqliteStmt up = db_.prepare(
        "UPDATE dpone_lease SET renewed_at = ?3, expires_at = ?4 + ttl_s "
        "WHERE stream = ?1 AND run_id = ?2");
    up.bind_text(1, stream).bind_text(2, run_id).bind_text(3, now_iso8601()).bind_double(4, unix_now());
    up.run();
    return db_.changes() == 1;
  }

  void release_lease(const std::string& stream, const std::string& run_id) noexcept override {
    try {
      std::lock_guard lock(mutex_);
      SqliteStmt del = db_.prepare("DELETE FROM dpone_lease WHERE stream = ?1 AND run_id = ?2");
      del.bind_text(1, stream).bind_text(2, run_id);
      del.run();
    } catch (...) {
      // An unreleased lease expires after its ttl.
    }
  }

  std::vector<StreamLease> live_leases() override {
    std::lock_guard lock(mutex_);
    SqliteStmt stmt = db_.prepare(
        "SELECT stream, run_id, host, pid, acquired_at, renewed_at, ttl_s, expires_at "
        "FROM dpone_lease WHERE expires_at > ? ORDER BY stream");
    stmt.bind_double(1, unix_now());
    std::vector<StreamLease> out;
    while (stmt.step()) out.push_back(read_lease(stmt));
    return out;
  }

 private:
  static StreamLease read_lease(const SqliteStmt& stmt) {
    StreamLease l;
    l.stream = column_string(stmt, 0);
    l.run_id = column_string(stmt, 1);
    l.host = column_string(stmt, 2);
    l.pid = stmt.column_int64(3);
    l.acquired_at = column_string(stmt, 4);
    l.renewed_at = column_string(stmt, 5);
    l.ttl_s = stmt.column_int64(6);
    return l;
  }

  StreamState read_state(const SqliteStmt& stmt) const {
    StreamState s;
    s.stream = column_string(stmt, 0);
    s.revision = stmt.column_int64(1);
    s.position = parse_position(path_, s.stream, stmt.column_text(2));
    s.run_id = column_string(stmt, 3);
    s.updated_at = column_string(stmt, 4);
    return s;
  }

  std::mutex mutex_;
  std::string path_;
  SqliteDb db_;
};

}  // namespace

std::unique_ptr<StateStore> open_sqlite_state_store(const std::string& path) {
  return std::make_unique<SqliteStateStore>(path);
}

}  // namespace dpone
