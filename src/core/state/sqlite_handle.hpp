// Small RAII wrappers over the sqlite3 C API, shared by the embedded state store and
// the sqlite connector.
//
// Contract:
//   - Every failure throws dpone::Error carrying the handle's failure code (chosen by
//     the owner: StateStoreFailed for the state store, SourceReadFailed / StageFailed /
//     ... for the connector), the database path, SQLite's own message and the SQL
//     (shortened) that failed.
//   - A handle waits up to 10 s for a lock held by another connection (busy_timeout)
//     before it reports "database is locked".
//   - SqliteStmt borrows its SqliteDb: the database must outlive its statements.
//   - Thread safety: none. A handle and its statements are used by one thread at a time
//     (the owner serialises if it shares one).
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/errors.hpp"

namespace dpone {

class SqliteStmt;

class SqliteDb {
 public:
  static constexpr int kBusyTimeoutMs = 10'000;

  // Opens `path` with sqlite3_open_v2 flags (SQLITE_OPEN_READONLY, SQLITE_OPEN_READWRITE,
  // SQLITE_OPEN_CREATE, ...). Extended result codes are enabled. Throws `failure_code`.
  SqliteDb(const std::string& path, int flags, ErrorCode failure_code);
  ~SqliteDb();
  SqliteDb(SqliteDb&& other) noexcept;
  SqliteDb& operator=(SqliteDb&& other) noexcept;
  SqliteDb(const SqliteDb&) = delete;
  SqliteDb& operator=(const SqliteDb&) = delete;

  // Runs one or more statements, discarding any rows they return.
  void exec(const std::string& sql);
  // Prepares one statement (trailing text after the first statement is an error).
  SqliteStmt prepare(const std::string& sql);

  // Runs a query and returns column 0 of its first row as an integer (nullopt when there
  // is no row or the value is NULL).
  std::optional<int64_t> query_int64(const std::string& sql);
  // As query_int64, as text.
  std::optional<std::string> query_text(const std::string& sql);

  // Switches the file to WAL journaling unless it already is (a persistent property of
  // the file, so readers in other processes never block the writer).
  void enable_wal();

  // Rows changed by the last INSERT/UPDATE/DELETE.
  int64_t changes() const;
  // True when no transaction is open.
  bool autocommit() const;

  sqlite3* get() const { return db_; }
  const std::string& path() const { return path_; }
  ErrorCode failure_code() const { return failure_code_; }
  // The code later failures carry (an owner switches it per phase, e.g. stage vs inspect).
  void set_failure_code(ErrorCode code) { failure_code_ = code; }

  // Throws Error(failure_code) for result code `rc`, naming the path and the SQL.
  [[noreturn]] void fail(int rc, std::string_view sql, std::string_view what = {}) const;

 private:
  void close() noexcept;

  sqlite3* db_ = nullptr;
  std::string path_;
  ErrorCode failure_code_;
};

class SqliteStmt {
 public:
  SqliteStmt(SqliteDb& db, sqlite3_stmt* stmt, std::string sql)
      : db_(&db), stmt_(stmt), sql_(std::move(sql)) {}
  ~SqliteStmt();
  SqliteStmt(SqliteStmt&& other) noexcept;
  SqliteStmt& operator=(SqliteStmt&& other) noexcept;
  SqliteStmt(const SqliteStmt&) = delete;
  SqliteStmt& operator=(const SqliteStmt&) = delete;

  // Parameters are 1-based, as in SQLite. Values are copied (SQLITE_TRANSIENT).
  SqliteStmt& bind_text(int index, std::string_view value);
  SqliteStmt& bind_int64(int index, int64_t value);
  SqliteStmt& bind_double(int index, double value);
  SqliteStmt& bind_blob(int index, std::string_view value);
  SqliteStmt& bind_null(int index);
  int parameter_count() const { return sqlite3_bind_parameter_count(stmt_); }

  // Advances: true when a row is available, false when the statement is done.
  bool step();
  // Steps to completion, ignoring rows. Returns sqlite3_changes() of the statement.
  int64_t run();
  // Resets for another execution and clears the bindings.
  void reset();

  // Columns are 0-based.
  int column_count() const { return sqlite3_column_count(stmt_); }
  std::string column_name(int col) const;
  // The declared type of a result column that comes straight from a table column;
  // nullopt for expressions.
  std::optional<std::string> column_decltype(int col) const;
  // SQLITE_INTEGER, SQLITE_FLOAT, SQLITE_TEXT, SQLITE_BLOB or SQLITE_NULL.
  int column_type(int col) const { return sqlite3_column_type(stmt_, col); }
  bool column_is_null(int col) const { return column_type(col) == SQLITE_NULL; }
  int64_t column_int64(int col) const { return sqlite3_column_int64(stmt_, col); }
  double column_double(int col) const { return sqlite3_column_double(stmt_, col); }
  // Valid until the next step/reset or another accessor on the same column.
  std::string_view column_text(int col) const;
  std::string_view column_blob(int col) const;

  const std::string& sql() const { return sql_; }
  sqlite3_stmt* get() const { return stmt_; }

 private:
  void check_bind(int rc, int index);

  SqliteDb* db_;
  sqlite3_stmt* stmt_;
  std::string sql_;
};

// A transaction that rolls back unless commit() was called. Construct with the BEGIN
// form wanted ("BEGIN", "BEGIN IMMEDIATE").
class SqliteTransaction {
 public:
  explicit SqliteTransaction(SqliteDb& db, const char* begin_sql = "BEGIN IMMEDIATE");
  ~SqliteTransaction();  // rolls back if still open; never throws
  SqliteTransaction(const SqliteTransaction&) = delete;
  SqliteTransaction& operator=(const SqliteTransaction&) = delete;

  void commit();
  // Rolls back now; never throws (a failed transaction may already be rolled back).
  void rollback() noexcept;
  bool active() const { return active_; }

 private:
  SqliteDb& db_;
  bool active_ = false;
};

// SQL identifier quoting: "name" with embedded quotes doubled.
std::string quote_ident(std::string_view name);
// SQL string literal: 'text' with embedded quotes doubled.
std::string quote_literal(std::string_view text);

}  // namespace dpone
