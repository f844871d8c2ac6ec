// HTTP client of one ClickHouse server (libcurl). One easy handle per client, reused for
// every statement (keep-alive). Statements go in the POST body; INSERT data streams as a
// chunked request body pulled from a callback (bounded memory); SELECT results stream
// back through a pull-based ByteReader. The password goes in HTTP basic auth, never in
// a URL, so neither logs nor curl errors can carry it.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/connector/artifact.hpp"
#include "core/connector/connection.hpp"
#include "core/errors.hpp"

namespace dpone::ch {

struct Endpoint {
  std::string url;   // http://host:port (no query string)
  std::string user;  // empty: the server's default user
  Secret password;
  std::string database;  // empty: the user's default database
  std::string where;     // message prefix, e.g. "stream 'orders': clickhouse sink"
  // Connection fields, seconds (0 = no limit): the TCP connect; how long the server may
  // answer nothing at all, neither the statement nor a /ping (a long statement on a
  // server that answers /ping never times out); the server's max_execution_time.
  double connect_timeout = 10;
  double receive_timeout = 30;
  double statement_timeout = 0;
  std::string host_port() const;  // "host:port" of url, for messages
};

// Reads the connection fields url (or host + port), user, password, database.
Endpoint endpoint_from(const ResolvedConnection& connection, const std::string& where);

using Settings = std::map<std::string, std::string>;
using Rows = std::vector<std::vector<std::string>>;

class Client {
 public:
  // `failure_code`: the code of errors raised by statements (the connection being down is
  // always `unavailable_code`).
  Client(Endpoint endpoint, ErrorCode unavailable_code);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  void set_failure_code(ErrorCode code) { failure_code_ = code; }
  const Endpoint& endpoint() const { return endpoint_; }

  // Runs one statement; returns the response body.
  std::string exec(const std::string& sql, const Settings& settings = {});
  // Runs a SELECT and returns its rows, cells unescaped (NULL reads as "\N"); with_names:
  // the first row holds the column names.
  Rows rows(const std::string& sql, const Settings& settings = {}, bool with_names = false);
  std::optional<std::string> value(const std::string& sql);
  int64_t int64(const std::string& sql);

  // Streams an INSERT body: `insert_sql` is "INSERT INTO t (cols) FORMAT TabSeparated";
  // `read` fills a buffer and returns the bytes written, 0 at the end. An exception
  // thrown by `read` aborts the request and is rethrown here.
  void insert(const std::string& insert_sql, const std::function<size_t(char*, size_t)>& read,
              const Settings& settings = {});

  // A reader of the response body of `sql` (a SELECT ... FORMAT ...), streamed.
  std::unique_ptr<ByteReader> select_stream(const std::string& sql, const Settings& settings = {});

  // "18.16.1" (cached).
  const std::string& version();
  // {major, minor} of version().
  std::pair<int, int> version_number();

 private:
  friend class SelectReader;
  std::string url_for(const std::string& query_param, const Settings& settings) const;
  [[noreturn]] void fail_http(long status, const std::string& body, const std::string& sql) const;
  [[noreturn]] void fail_transport(const std::string& curl_error, const std::string& sql) const;
  // After a failed transfer: TIMED_OUT when a timeout ended it, else fail_transport.
  [[noreturn]] void fail_transfer(void* easy, int curl_code, bool stalled, const std::string& phase,
                                  const std::string& curl_error, const std::string& sql) const;

  Endpoint endpoint_;
  ErrorCode unavailable_code_;
  ErrorCode failure_code_;
  void* curl_ = nullptr;  // CURL*
  std::string version_;
};

// First line(s) of a statement for messages, at most ~200 characters.
std::string shorten_sql(const std::string& sql);
// 'text' with \ and ' escaped.
std::string quote_literal(const std::string& text);
// `name` with ` and \ escaped.
std::string quote_ident(const std::string& name);
// Unescapes one TSV field (\t \n \\ \0 \r \b \f \' and friends).
std::string tsv_unescape(std::string_view field);
// Appends `value` TSV-escaped to `out`.
void tsv_escape_append(std::string& out, std::string_view value);

}  // namespace dpone::ch
