// A small RAII layer over libpq: one connection, results, COPY in and out, and
// transactions. Every failure is a dpone::Error carrying the server's SQLSTATE and
// message, passed through dpone::redact so no secret can leak through a message.
//
// Sessions are set up for dpone's canonical text forms right after connecting:
//   TimeZone=UTC, DateStyle=ISO,YMD, IntervalStyle=postgres, bytea_output=hex,
//   extra_float_digits=1 (shortest exact floats), client_encoding=UTF8.
// Thread safety: none; one connection is used from one thread at a time.
#pragma once

#include <libpq-fe.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/connector/connection.hpp"
#include "core/errors.hpp"

namespace dpone::pg {

// Owns a PGresult.
class PgResult {
 public:
  PgResult() = default;
  explicit PgResult(PGresult* r) : r_(r, &PQclear) {}
  PGresult* get() const { return r_.get(); }
  int rows() const { return r_ ? PQntuples(r_.get()) : 0; }
  int columns() const { return r_ ? PQnfields(r_.get()) : 0; }
  bool is_null(int row, int col) const { return PQgetisnull(r_.get(), row, col) != 0; }
  std::string_view value(int row, int col) const {
    return std::string_view(PQgetvalue(r_.get(), row, col),
                            static_cast<size_t>(PQgetlength(r_.get(), row, col)));
  }
  std::optional<std::string> optional_value(int row, int col) const {
    if (is_null(row, col)) return std::nullopt;
    return std::string(value(row, col));
  }
  int64_t affected() const;  // PQcmdTuples as a number (0 when none)

 private:
  std::unique_ptr<PGresult, void (*)(PGresult*)> r_{nullptr, &PQclear};
};

using Param = std::optional<std::string>;  // nullopt = SQL NULL

// Defaults of the connection fields connect_timeout and lock_timeout (seconds);
// statement_timeout defaults to 0 (no limit) so long loads are never cut.
inline constexpr double kDefaultConnectTimeout = 10;
inline constexpr double kDefaultLockTimeout = 30;

// The timeouts of one connection, in seconds (0 = no limit).
struct Timeouts {
  double connect = kDefaultConnectTimeout;
  double statement = 0;
  double lock = kDefaultLockTimeout;
};

class PgConnection {
 public:
  // Connects with PQconnectdbParams from the connection's fields (host, port, user,
  // dbname, sslmode, options) and its `password` secret. `unavailable` is the code of
  // a failed connection (SourceUnavailable or SinkUnavailable); `where` prefixes every
  // message ("stream 'orders': postgres source").
  static std::unique_ptr<PgConnection> connect(const ResolvedConnection& connection,
                                               ErrorCode unavailable, std::string where);
  ~PgConnection();
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  PGconn* get() const { return conn_; }
  // The code errors of later statements carry (SourceReadFailed, StageFailed, ...).
  void set_failure_code(ErrorCode code) { failure_code_ = code; }
  ErrorCode failure_code() const { return failure_code_; }
  const std::string& where() const { return where_; }
  // "host:port/dbname" for messages.
  const std::string& target() const { return target_; }

  // Runs one or more statements; throws on failure.
  PgResult exec(const std::string& sql);
  // One statement with text parameters $1..$n.
  PgResult exec_params(const std::string& sql, const std::vector<Param>& params);
  // First column of the first row (nullopt when no row or NULL).
  std::optional<std::string> query_value(const std::string& sql,
                                         const std::vector<Param>& params = {});
  int64_t query_int64(const std::string& sql, const std::vector<Param>& params = {});

  // COPY ... TO STDOUT: start, then read rows with copy_out_row until it returns false.
  void copy_out_start(const std::string& sql);
  // One COPY data row (text format: one line with its '\n'). The view stays valid until
  // the next call. Returns false at the end (and checks the final result).
  bool copy_out_row(std::string_view& row);
  // COPY ... FROM STDIN: start, put buffers, end (throws with the server's message when
  // the server rejects the data, e.g. a value of the wrong type).
  void copy_in_start(const std::string& sql);
  void copy_in_put(std::string_view data);
  int64_t copy_in_end();  // the rows the server loaded
  // Abandons a COPY IN in progress (best effort, never throws).
  void copy_in_abort() noexcept;

  // Escaped string literal ('...' with quotes), via PQescapeLiteral.
  std::string literal(std::string_view text) const;

  // Error for the last failed operation: "<where>: <what> failed on host:port/db:
  // [SQLSTATE] message".
  [[noreturn]] void fail(const std::string& what, const PGresult* result = nullptr) const;

 private:
  PgConnection(PGconn* conn, ErrorCode code, std::string where, std::string target);
  void check(const PgResult& result, const std::string& sql, ExecStatusType expected);

  PGconn* conn_ = nullptr;
  ErrorCode failure_code_;
  std::string where_;
  std::string target_;
  Timeouts timeouts_;
  char* copy_buffer_ = nullptr;  // owned by libpq until PQfreemem
  bool copy_out_done_ = true;
};

// Runs BEGIN on construction and ROLLBACK in the destructor unless commit() ran.
class PgTransaction {
 public:
  PgTransaction(PgConnection& conn, const std::string& begin = "BEGIN");
  ~PgTransaction();
  PgTransaction(const PgTransaction&) = delete;
  PgTransaction& operator=(const PgTransaction&) = delete;
  void commit();
  void rollback() noexcept;

 private:
  PgConnection& conn_;
  bool open_ = true;
};

// "name" with embedded quotes doubled.
std::string quote_ident(std::string_view name);
// 'text' with embedded quotes doubled (standard_conforming_strings is on in our sessions).
std::string quote_literal(std::string_view text);

}  // namespace dpone::pg
