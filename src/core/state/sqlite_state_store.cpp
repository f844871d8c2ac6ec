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
)sql";

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

 private:
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
