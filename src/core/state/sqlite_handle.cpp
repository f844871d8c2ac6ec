#include "core/state/sqlite_handle.hpp"

#include <filesystem>

#include <fmt/format.h>

#include <algorithm>
#include <utility>

namespace dpone {

namespace {

// Long statements (an INSERT with 200 columns) would drown the message.
std::string shorten_sql(std::string_view sql) {
  constexpr size_t kMax = 400;
  std::string out;
  out.reserve(std::min(sql.size(), kMax) + 3);
  for (char c : sql.substr(0, kMax)) out.push_back(c == '\n' ? ' ' : c);
  if (sql.size() > kMax) out += "...";
  return out;
}

std::string hint_for(int rc, const std::string& path) {
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return fmt::format(
          "another connection held a lock on {} for more than {} s; retry once it finished "
          "(a long-running writer or an open `sqlite3` shell are the usual causes)",
          path, SqliteDb::kBusyTimeoutMs / 1000);
    case SQLITE_READONLY:
    case SQLITE_PERM:
      return fmt::format("check that {} and its directory are writable by this user", path);
    case SQLITE_CANTOPEN:
      return fmt::format(
          "check that the path {} is right and its directory exists and is "
          "accessible",
          path);
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
      return fmt::format(
          "{} is not a readable SQLite database; restore it or point to another "
          "file",
          path);
    case SQLITE_FULL:
      return fmt::format(
          "the filesystem holding {} is full (or the database reached its max_page_count): free "
          "space there (`df -h {}`) and re-run; a load needs room for about twice its window while it "
          "runs (staging, then the target), a failed load's staging is dropped, and the re-run needs "
          "no repair",
          path, std::filesystem::path(path).parent_path().empty() ? std::string(".")
                                                                  : std::filesystem::path(path).parent_path().string());
    case SQLITE_IOERR:
      return fmt::format("the disk holding {} is full or failing; free space and retry", path);
    default:
      return {};
  }
}

}  // namespace

SqliteDb::SqliteDb(const std::string& path, int flags, ErrorCode failure_code)
    : path_(path), failure_code_(failure_code) {
  sqlite3* handle = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &handle, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = handle ? sqlite3_errmsg(handle) : sqlite3_errstr(rc);
    sqlite3_close_v2(handle);
    throw Error(failure_code_, fmt::format("cannot open SQLite database {}: {}", path, msg),
                hint_for(rc, path));
  }
  db_ = handle;
  sqlite3_extended_result_codes(db_, 1);
  sqlite3_busy_timeout(db_, kBusyTimeoutMs);
}

SqliteDb::~SqliteDb() {
  close();
}

SqliteDb::SqliteDb(SqliteDb&& other) noexcept
    : db_(std::exchange(other.db_, nullptr)),
      path_(std::move(other.path_)),
      failure_code_(other.failure_code_) {}

SqliteDb& SqliteDb::operator=(SqliteDb&& other) noexcept {
  if (this != &other) {
    close();
    db_ = std::exchange(other.db_, nullptr);
    path_ = std::move(other.path_);
    failure_code_ = other.failure_code_;
  }
  return *this;
}

void SqliteDb::close() noexcept {
  // close_v2 defers the close until outstanding statements are finalized, so a
  // statement outliving its database by mistake cannot crash.
  if (db_) sqlite3_close_v2(db_);
  db_ = nullptr;
}

void SqliteDb::fail(int rc, std::string_view sql, std::string_view what) const {
  std::string msg = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
  std::string text = fmt::format("SQLite {}: {}", path_, msg);
  if (!what.empty()) text += fmt::format(" ({})", what);
  if (!sql.empty()) text += fmt::format(" while running: {}", shorten_sql(sql));
  // A full disk (or max_page_count reached) has its own code whatever the phase: the
  // operator's action is the same everywhere.
  const ErrorCode code = (rc & 0xff) == SQLITE_FULL ? ErrorCode::DiskFull : failure_code_;
  throw Error(code, std::move(text), hint_for(rc, path_));
}

void SqliteDb::exec(const std::string& sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
  // The message lives in err; errmsg(db) says the same, and fail() reads that.
  sqlite3_free(err);
  if (rc != SQLITE_OK) fail(rc, sql);
}

SqliteStmt SqliteDb::prepare(const std::string& sql) {
  sqlite3_stmt* stmt = nullptr;
  const char* tail = nullptr;
  int rc = sqlite3_prepare_v2(db_, sql.c_str(), static_cast<int>(sql.size()), &stmt, &tail);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(stmt);
    fail(rc, sql);
  }
  SqliteStmt out(*this, stmt, sql);
  if (stmt == nullptr) {
    throw Error(failure_code_,
                fmt::format("SQLite {}: empty statement: {}", path_, shorten_sql(sql)));
  }
  // Whatever follows the first statement may only be blanks, semicolons and comments:
  // preparing it then yields no statement.
  while (tail && *tail) {
    sqlite3_stmt* extra = nullptr;
    const char* next = nullptr;
    int rc2 = sqlite3_prepare_v2(db_, tail, -1, &extra, &next);
    sqlite3_finalize(extra);
    if (rc2 != SQLITE_OK || extra != nullptr) {
      throw Error(failure_code_,
                  fmt::format("SQLite {}: more than one statement given where one is expected: {}",
                              path_, shorten_sql(sql)),
                  "a query option holds exactly one SELECT statement");
    }
    if (next == tail) break;
    tail = next;
  }
  return out;
}

std::optional<int64_t> SqliteDb::query_int64(const std::string& sql) {
  SqliteStmt stmt = prepare(sql);
  if (!stmt.step() || stmt.column_is_null(0)) return std::nullopt;
  return stmt.column_int64(0);
}

std::optional<std::string> SqliteDb::query_text(const std::string& sql) {
  SqliteStmt stmt = prepare(sql);
  if (!stmt.step() || stmt.column_is_null(0)) return std::nullopt;
  return std::string(stmt.column_text(0));
}

void SqliteDb::enable_wal() {
  auto mode = query_text("PRAGMA journal_mode");
  if (mode && (*mode == "wal" || *mode == "WAL")) return;
  auto now = query_text("PRAGMA journal_mode=WAL");
  // An in-memory database answers "memory": WAL does not apply and nothing is wrong.
  if (!now || (*now != "wal" && *now != "memory")) {
    throw Error(failure_code_,
                fmt::format("SQLite {}: could not switch to WAL journaling (journal mode is {})",
                            path_, now.value_or("unknown")),
                "the file system may not support the shared memory WAL needs (network file "
                "systems often do not); use a local disk");
  }
}

int64_t SqliteDb::changes() const {
  return sqlite3_changes64(db_);
}

bool SqliteDb::autocommit() const {
  return sqlite3_get_autocommit(db_) != 0;
}

// ---------------------------------------------------------------------------------------

SqliteStmt::~SqliteStmt() {
  if (stmt_) sqlite3_finalize(stmt_);
}

SqliteStmt::SqliteStmt(SqliteStmt&& other) noexcept
    : db_(other.db_), stmt_(std::exchange(other.stmt_, nullptr)), sql_(std::move(other.sql_)) {}

SqliteStmt& SqliteStmt::operator=(SqliteStmt&& other) noexcept {
  if (this != &other) {
    if (stmt_) sqlite3_finalize(stmt_);
    db_ = other.db_;
    stmt_ = std::exchange(other.stmt_, nullptr);
    sql_ = std::move(other.sql_);
  }
  return *this;
}

void SqliteStmt::check_bind(int rc, int index) {
  if (rc != SQLITE_OK) db_->fail(rc, sql_, fmt::format("binding parameter {}", index));
}

SqliteStmt& SqliteStmt::bind_text(int index, std::string_view value) {
  check_bind(
      sqlite3_bind_text64(stmt_, index, value.data(), value.size(), SQLITE_TRANSIENT, SQLITE_UTF8),
      index);
  return *this;
}

SqliteStmt& SqliteStmt::bind_int64(int index, int64_t value) {
  check_bind(sqlite3_bind_int64(stmt_, index, value), index);
  return *this;
}

SqliteStmt& SqliteStmt::bind_double(int index, double value) {
  check_bind(sqlite3_bind_double(stmt_, index, value), index);
  return *this;
}

SqliteStmt& SqliteStmt::bind_blob(int index, std::string_view value) {
  // A zero-length blob must still be a blob, not NULL: bind_blob64 with a null pointer
  // would store NULL, so give it a valid empty buffer.
  static const char kEmpty = 0;
  const void* data = value.empty() ? &kEmpty : value.data();
  check_bind(sqlite3_bind_blob64(stmt_, index, data, value.size(), SQLITE_TRANSIENT), index);
  return *this;
}

SqliteStmt& SqliteStmt::bind_null(int index) {
  check_bind(sqlite3_bind_null(stmt_, index), index);
  return *this;
}

bool SqliteStmt::step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  db_->fail(rc, sql_);
}

int64_t SqliteStmt::run() {
  while (step()) {
  }
  return sqlite3_changes64(sqlite3_db_handle(stmt_));
}

void SqliteStmt::reset() {
  // reset() repeats the last step's error, which step() already reported.
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

std::string SqliteStmt::column_name(int col) const {
  const char* name = sqlite3_column_name(stmt_, col);
  return name ? name : "";
}

std::optional<std::string> SqliteStmt::column_decltype(int col) const {
  const char* decl = sqlite3_column_decltype(stmt_, col);
  if (!decl) return std::nullopt;
  return std::string(decl);
}

std::string_view SqliteStmt::column_text(int col) const {
  const unsigned char* text = sqlite3_column_text(stmt_, col);
  int size = sqlite3_column_bytes(stmt_, col);
  if (!text) return {};
  return std::string_view(reinterpret_cast<const char*>(text), static_cast<size_t>(size));
}

std::string_view SqliteStmt::column_blob(int col) const {
  const void* data = sqlite3_column_blob(stmt_, col);
  int size = sqlite3_column_bytes(stmt_, col);
  if (!data) return {};
  return std::string_view(static_cast<const char*>(data), static_cast<size_t>(size));
}

// ---------------------------------------------------------------------------------------

SqliteTransaction::SqliteTransaction(SqliteDb& db, const char* begin_sql) : db_(db) {
  db_.exec(begin_sql);
  active_ = true;
}

SqliteTransaction::~SqliteTransaction() {
  rollback();
}

void SqliteTransaction::commit() {
  db_.exec("COMMIT");
  active_ = false;
}

void SqliteTransaction::rollback() noexcept {
  if (!active_) return;
  active_ = false;
  // Some errors (SQLITE_FULL, IOERR, ...) roll the transaction back by themselves;
  // ROLLBACK would then fail with "no transaction is active", which is fine.
  if (!db_.autocommit()) sqlite3_exec(db_.get(), "ROLLBACK", nullptr, nullptr, nullptr);
}

std::string quote_ident(std::string_view name) {
  std::string out;
  out.reserve(name.size() + 2);
  out.push_back('"');
  for (char c : name) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

std::string quote_literal(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 2);
  out.push_back('\'');
  for (char c : text) {
    if (c == '\'') out.push_back('\'');
    out.push_back(c);
  }
  out.push_back('\'');
  return out;
}

}  // namespace dpone
