// An in-process HTTP server serving the rest connector's test fixtures (cpp-httplib),
// on 127.0.0.1 with an ephemeral port. Every request is logged with its time so tests
// can show Retry-After was honoured. Used by the connector tests directly and, through
// dpone_rest_fixture_server, by the end-to-end tests of the real binary.
//
// Endpoints (records are those of record(i), i = 1..n; JSON bodies):
//   /page?page=N&per_page=M      {"data":[...], "page":N}           25 records, M default 10
//   /offset?offset=O&limit=L     {"results":[...]}                  25 records
//   /cursor?cursor=T&limit=L     {"items":[...], "meta":{"next_cursor":T'|null}}
//   /next?start=S                {"records":[10], "links":{"next":"/next?start=S+10"|null}}
//   /link?page=N                 [10 records], Link: <...page=N+1>; rel="next" (absent at end)
//   /flaky?page=N                page 2 answers 429 (Retry-After: 1) once, page 3 500 twice
//   /broken?page=N               page 2 always answers 503
//   /slow?page=N[&always=1]      page 1 sleeps 2.5 s on its first request (always: every time)
//   /malformed?page=N            page 2 is truncated JSON
//   /incremental?updated_since=X&page=N   records with updated_at > X, 10 a page; grows by
//                                /_control/grow?n=K
//   /drift?page=N                page 2 adds a field, page 3 has a string id (page 1: ints)
//   /nested                      {"orders":[...]} nested objects and lists (nested_orders())
//   /big?page=N&per_page=M       100000 records generated on the fly
//   /auth/bearer, /auth/basic, /auth/key   5 records behind credentials (kToken, ...)
//   /_control/reset              resets fault counters, the incremental data and the log
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

namespace dpone::rest_fixture {

inline constexpr const char* kToken = "s3cr3t-t0ken";
inline constexpr const char* kUser = "ann";
inline constexpr const char* kPassword = "p@ss w0rd";
inline constexpr const char* kApiKey = "k3y/with+chars";
inline constexpr int kBigTotal = 100000;

struct LogEntry {
  double t = 0;      // seconds since the server started (monotonic)
  std::string wall;  // UTC wall time, ISO-8601 with milliseconds
  std::string method;
  std::string target;  // path and query as received
  int status = 0;
};

// Record i of every data set: {"id", "name", "score", "active", "updated_at"}.
nlohmann::ordered_json record(int i);
// The nested fixture served by /nested (orders with a customer object and lists).
nlohmann::ordered_json nested_orders();

class FixtureServer {
 public:
  // Starts serving; `log_file` (optional) receives one line per request as well.
  explicit FixtureServer(std::string log_file = {});
  ~FixtureServer();
  FixtureServer(const FixtureServer&) = delete;
  FixtureServer& operator=(const FixtureServer&) = delete;

  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::vector<LogEntry> log() const;
  // "t=1.234 2026-...Z GET /flaky?page=2 -> 429" lines.
  std::string log_text() const;
  void reset();
  void grow(int n);  // adds n records to the incremental data set

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int port_ = 0;
};

}  // namespace dpone::rest_fixture
