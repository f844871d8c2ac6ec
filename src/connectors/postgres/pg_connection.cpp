#include "connectors/postgres/pg_connection.hpp"

#include <fmt/format.h>

#include <charconv>

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
  PGconn* conn = PQconnectdbParams(k.data(), v.data(), 0);
  if (!conn) {
    throw Error(unavailable, fmt::format("{}: cannot connect to PostgreSQL at {}: out of memory",
                                         where, target));
  }
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string message = redact(tidy(PQerrorMessage(conn)));
    PQfinish(conn);
    throw Error(unavailable,
                fmt::format("{}: cannot connect to PostgreSQL at {} (connection '{}'): {}", where,
                            target, connection.id, message),
                "check the connection's host, port, user, password and dbname, and that the "
                "server is running and accepts connections from this machine");
  }
  std::unique_ptr<PgConnection> out(
      new PgConnection(conn, unavailable, std::move(where), std::move(target)));
  out->exec(
      "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; "
      "SET bytea_output = 'hex'; SET extra_float_digits = 1; "
      "SET standard_conforming_strings = on; SET client_min_messages = warning");
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
