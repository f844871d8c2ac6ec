#include "connectors/postgres/pg_connection.hpp"

#include <fmt/format.h>

#include <charconv>
#include <cmath>

#include "core/connector/timeouts.hpp"
#include "core/util/redactor.hpp"

namespace dpone::pg {

namespace {

// libpq messages end with a newline and may span lines; one line reads better.
std::string tidy(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  for (auto& c : text)
    if (c == '\n') c = ' ';
  return text;
}

std::string field(const PGresult* r, int code) {
  const char* v = r ? PQresultErrorField(r, code) : nullptr;
  return v ? std::string(v) : std::string();
}

}  // namespace

int64_t PgResult::affected() const {
  if (!r_) return 0;
  const char* t = PQcmdTuples(r_.get());
  int64_t n = 0;
  if (t && *t) std::from_chars(t, t + std::char_traits<char>::length(t), n);
  return n;
}

std::unique_ptr<PgConnection> PgConnection::connect(const ResolvedConnection& connection,
                                                    ErrorCode unavailable, std::string where) {
  std::vector<std::string> keys;
  std::vector<std::string> values;
  for (const char* k : {"host", "port", "user", "dbname", "sslmode", "options"}) {
    if (auto v = connection.get(k)) {
      keys.emplace_back(k);
      values.push_back(*v);
    }
  }
  if (const Secret* password = connection.secret("password")) {
    Redactor::global().add(password->reveal());
    keys.emplace_back("password");
    values.push_back(password->reveal());
  }
  // Bounds against a server that accepts TCP and never answers, or dies mid-stream.
  // connect_timeout covers the TCP connect and the startup handshake (libpq rounds a
  // value under 2 s up to 2 s). Keepalives (idle 10 s, then 3 probes 5 s apart) find a
  // peer that vanished while we wait for rows or a result; tcp_user_timeout ends a
  // write the peer stopped acknowledging. Neither fires while the server is merely busy
  // (its kernel still acknowledges), so a 10-minute COPY is not cut short.
  Timeouts timeouts;
  timeouts.connect =
      connection_timeout(connection, "connect_timeout", kDefaultConnectTimeout, where);
  timeouts.statement = connection_timeout(connection, "statement_timeout", 0, where);
  timeouts.lock = connection_timeout(connection, "lock_timeout", kDefaultLockTimeout, where);
  std::string connect_seconds = std::to_string(static_cast<long>(std::ceil(timeouts.connect)));
  for (auto [key, value] : {std::pair<const char*, std::string>{"connect_timeout", connect_seconds},
                            {"keepalives", "1"},
                            {"keepalives_idle", "10"},
                            {"keepalives_interval", "5"},
                            {"keepalives_count", "3"},
                            {"tcp_user_timeout", "30000"}}) {
    if (key == std::string("connect_timeout") && timeouts.connect == 0) continue;
    keys.emplace_back(key);
    values.push_back(value);
  }
  keys.emplace_back("application_name");
  values.emplace_back("dpone");
  keys.emplace_back("client_encoding");
  values.emplace_back("UTF8");
  std::vector<const char*> k;
  std::vector<const char*> v;
  for (size_t i = 0; i < keys.size(); ++i) {
    k.push_back(keys[i].c_str());
    v.push_back(values[i].c_str());
  }
  k.push_back(nullptr);
  v.push_back(nullptr);
  std::string target =
      fmt::format("{}:{}/{}", connection.get("host").value_or("localhost"),
                  connection.get("port").value_or("5432"),
                  connection.get("dbname").value_or(connection.get("user").value_or("postgres")));
  std::string host_port = fmt::format("{}:{}", connection.get("host").value_or("localhost"),
                                      connection.get("port").value_or("5432"));
  PGconn* conn = PQconnectdbParams(k.data(), v.data(), 0);
  if (!conn) {
    throw Error(unavailable, fmt::format("{}: cannot connect to PostgreSQL at {}: out of memory",
                                         where, target));
  }
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string message = redact(tidy(PQerrorMessage(conn)));
    PQfinish(conn);
    // libpq says "timeout expired" when connect_timeout ended the connect or handshake.
    if (message.find("timeout expired") != std::string::npos) {
      throw timed_out(fmt::format("{} (connection '{}')", where, connection.id), host_port,
                      "PostgreSQL connect (TCP and startup handshake)", timeouts.connect,
                      connection_field("connect_timeout"), message);
    }
    throw Error(unavailable,
                fmt::format("{}: cannot connect to PostgreSQL at {} (connection '{}'): {}", where,
                            target, connection.id, message),
                "check the connection's host, port, user, password and dbname, and that the "
                "server is running and accepts connections from this machine");
  }
  std::unique_ptr<PgConnection> out(
      new PgConnection(conn, unavailable, std::move(where), std::move(target)));
  out->timeouts_ = timeouts;
  // Server-side limits in milliseconds (0 = none). statement_timeout is off by default
  // so long loads run; lock_timeout bounds waiting behind another session's lock.
  out->exec(fmt::format(
      "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; "
      "SET bytea_output = 'hex'; SET extra_float_digits = 1; "
      "SET standard_conforming_strings = on; SET client_min_messages = warning; "
      "SET statement_timeout = {}; SET lock_timeout = {}",
      std::llround(timeouts.statement * 1000), std::llround(timeouts.lock * 1000)));
  return out;
}

PgConnection::PgConnection(PGconn* conn, ErrorCode code, std::string where, std::string target)
    : conn_(conn), failure_code_(code), where_(std::move(where)), target_(std::move(target)) {}

PgConnection::~PgConnection() {
  if (copy_buffer_) PQfreemem(copy_buffer_);
  if (conn_) PQfinish(conn_);
}

void PgConnection::fail(const std::string& what, const PGresult* result) const {
  std::string state = field(result, PG_DIAG_SQLSTATE);
  std::string message = result ? field(result, PG_DIAG_MESSAGE_PRIMARY) : std::string();
  if (message.empty()) message = tidy(PQerrorMessage(conn_));
  std::string detail = field(result, PG_DIAG_MESSAGE_DETAIL);
  std::string context = field(result, PG_DIAG_CONTEXT);
  std::string text = message;
  if (!detail.empty()) text += " (" + tidy(detail) + ")";
  if (!context.empty()) text += " [" + tidy(context) + "]";
  std::string hint = field(result, PG_DIAG_MESSAGE_HINT);
  // 57014 is also a cancel by an operator; only the timeout's own message means ours.
  bool statement_timed_out =
      state == "57014" && message.find("statement timeout") != std::string::npos;
  bool lock_timed_out = state == "55P03" && message.find("lock timeout") != std::string::npos;
  if (statement_timed_out || lock_timed_out) {
    const char* key = statement_timed_out ? "statement_timeout" : "lock_timeout";
    double seconds = statement_timed_out ? timeouts_.statement : timeouts_.lock;
    std::string host_port = target_.substr(0, target_.find('/'));
    throw timed_out(where_, host_port, redact(what), seconds, connection_field(key),
                    redact("[SQLSTATE " + state + "] " + text));
  }
  // A unique violation: the message keeps the server's detail, which names the key.
  if (state == "23505") {
    throw Error(ErrorCode::KeyDuplicate,
                redact(fmt::format("{}: {} failed on {}: [SQLSTATE 23505] {}", where_, what,
                                   target_, text)),
                hint.empty() ? "a unique key or PRIMARY KEY of the table refuses a second row with "
                               "that key: load with `strategy: {mode: merge, unique_key: [...]}` "
                               "(the staged row replaces it) or `append` with `only_new_rows: "
                               "true` (rows whose key is loaded are skipped); a `primary_key` "
                               "declared on the source becomes the PRIMARY KEY of a table dpone "
                               "creates"
                             : redact(hint));
  }
  throw Error(failure_code_,
              redact(fmt::format("{}: {} failed on {}: {}{}", where_, what, target_,
                                 state.empty() ? "" : "[SQLSTATE " + state + "] ", text)),
              redact(hint));
}

void PgConnection::check(const PgResult& result, const std::string& sql, ExecStatusType expected) {
  ExecStatusType status = result.get() ? PQresultStatus(result.get()) : PGRES_FATAL_ERROR;
  if (status == expected || (expected == PGRES_COMMAND_OK && status == PGRES_TUPLES_OK)) return;
  std::string shown = sql.size() > 300 ? sql.substr(0, 300) + "..." : sql;
  fail(fmt::format("SQL `{}`", shown), result.get());
}

PgResult PgConnection::exec(const std::string& sql) {
  PgResult r(PQexec(conn_, sql.c_str()));
  check(r, sql, PGRES_COMMAND_OK);
  return r;
}

PgResult PgConnection::exec_params(const std::string& sql, const std::vector<Param>& params) {
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
  PgResult r(PQexecParams(conn_, sql.c_str(), static_cast<int>(values.size()), nullptr,
                          values.data(), nullptr, nullptr, 0));
  check(r, sql, PGRES_COMMAND_OK);
  return r;
}

std::optional<std::string> PgConnection::query_value(const std::string& sql,
                                                     const std::vector<Param>& params) {
  PgResult r = params.empty() ? exec(sql) : exec_params(sql, params);
  if (r.rows() == 0 || r.columns() == 0) return std::nullopt;
  return r.optional_value(0, 0);
}

int64_t PgConnection::query_int64(const std::string& sql, const std::vector<Param>& params) {
  auto v = query_value(sql, params);
  int64_t n = 0;
  if (v) std::from_chars(v->data(), v->data() + v->size(), n);
  return n;
}

void PgConnection::copy_out_start(const std::string& sql) {
  PgResult r(PQexec(conn_, sql.c_str()));
  check(r, sql, PGRES_COPY_OUT);
  copy_out_done_ = false;
}

bool PgConnection::copy_out_row(std::string_view& row) {
  if (copy_buffer_) {
    PQfreemem(copy_buffer_);
    copy_buffer_ = nullptr;
  }
  if (copy_out_done_) return false;
  int n = PQgetCopyData(conn_, &copy_buffer_, 0);
  if (n > 0) {
    row = std::string_view(copy_buffer_, static_cast<size_t>(n));
    return true;
  }
  copy_out_done_ = true;
  if (n == -2) fail("COPY TO STDOUT");
  // -1: the copy is over; the final result says whether it succeeded.
  PgResult last(PQgetResult(conn_));
  while (PGresult* extra = PQgetResult(conn_)) PQclear(extra);
  check(last, "COPY TO STDOUT", PGRES_COMMAND_OK);
  return false;
}

void PgConnection::copy_in_start(const std::string& sql) {
  PgResult r(PQexec(conn_, sql.c_str()));
  check(r, sql, PGRES_COPY_IN);
}

void PgConnection::copy_in_put(std::string_view data) {
  if (data.empty()) return;
  if (PQputCopyData(conn_, data.data(), static_cast<int>(data.size())) != 1) {
    // The server may have rejected the data already: its message is in the result.
    PgResult last(PQgetResult(conn_));
    while (PGresult* extra = PQgetResult(conn_)) PQclear(extra);
    fail("COPY FROM STDIN", last.get());
  }
}

int64_t PgConnection::copy_in_end() {
  if (PQputCopyEnd(conn_, nullptr) != 1) fail("COPY FROM STDIN (end)");
  PgResult last(PQgetResult(conn_));
  while (PGresult* extra = PQgetResult(conn_)) PQclear(extra);
  check(last, "COPY FROM STDIN", PGRES_COMMAND_OK);
  return last.affected();
}

void PgConnection::copy_in_abort() noexcept {
  if (PQtransactionStatus(conn_) != PQTRANS_ACTIVE) return;
  PQputCopyEnd(conn_, "aborted by dpone");
  while (PGresult* r = PQgetResult(conn_)) PQclear(r);
}

std::string PgConnection::literal(std::string_view text) const {
  char* escaped = PQescapeLiteral(conn_, text.data(), text.size());
  if (!escaped) fail("escaping a literal");
  std::string out(escaped);
  PQfreemem(escaped);
  return out;
}

PgTransaction::PgTransaction(PgConnection& conn, const std::string& begin) : conn_(conn) {
  conn_.exec(begin);
}

PgTransaction::~PgTransaction() {
  rollback();
}

void PgTransaction::commit() {
  conn_.exec("COMMIT");
  open_ = false;
}

void PgTransaction::rollback() noexcept {
  if (!open_) return;
  open_ = false;
  // A COPY left half-way makes ROLLBACK impossible until it is ended.
  conn_.copy_in_abort();
  PQclear(PQexec(conn_.get(), "ROLLBACK"));
}

std::string quote_ident(std::string_view name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

std::string quote_literal(std::string_view text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') out.push_back('\'');
    out.push_back(c);
  }
  out.push_back('\'');
  return out;
}

}  // namespace dpone::pg
