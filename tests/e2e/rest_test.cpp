// End-to-end tests of the rest source through the real binary, against the fixture
// server process (dpone_rest_fixture_server, built next to dpone): every pagination style
// into SQLite, retries with Retry-After shown by the server's request log, permanent
// failures and malformed pages leaving the target unchanged, incremental cursors,
// child tables, and 100k records over 1,000 pages within 64 MB of peak RSS.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <chrono>
#include <regex>
#include <thread>

#include <fmt/format.h>

#include "pg_support.hpp"

namespace {

using namespace e2e;
using json = nlohmann::json;

// The fixture server as a child process, stopped (SIGTERM to its pid) on destruction.
class FixtureProcess {
 public:
  explicit FixtureProcess(const fs::path& dir) : log_(dir / "server.log") {
    fs::path bin = fs::path(DPONE_BIN).parent_path() / "dpone_rest_fixture_server";
    fs::path port_file = dir / "server.port";
    if (!fs::exists(bin)) {
      ADD_FAILURE()
          << bin << " is missing: it is built with the rest connector (needs libcpp-httplib-dev)";
      return;
    }
    pid_ = fork();
    if (pid_ == 0) {
      std::string b = bin.string(), pf = port_file.string(), lf = log_.string();
      std::vector<char*> argv{b.data(),  const_cast<char*>("--port-file"),
                              pf.data(), const_cast<char*>("--log-file"),
                              lf.data(), nullptr};
      execv(b.c_str(), argv.data());
      _exit(127);
    }
    for (int i = 0; i < 200 && !fs::exists(port_file); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    port_ = std::atoi(read_file(port_file).c_str());
    if (port_ <= 0) ADD_FAILURE() << "the fixture server did not start";
  }
  ~FixtureProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      int status = 0;
      waitpid(pid_, &status, 0);
    }
  }
  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::string log() const { return read_file(log_); }
  // A control request (e.g. "/_control/grow?n=5") over a plain socket.
  void control(const std::string& target) const {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port_));
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    std::string req = "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    ASSERT_EQ(write(fd, req.data(), req.size()), static_cast<ssize_t>(req.size()));
    char buf[512];
    std::string resp;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) resp.append(buf, static_cast<size_t>(n));
    close(fd);
    ASSERT_NE(resp.find(" 200 "), std::string::npos) << resp;
  }

 private:
  fs::path log_;
  pid_t pid_ = -1;
  int port_ = 0;
};

std::string header(const FixtureProcess& server) {
  return fmt::format(
      "kind: dpone.batch.v1\n"
      "defaults:\n"
      "  source: {{connector: rest, base_url: \"{}\", backoff_initial_s: 0.05}}\n"
      "  sink: {{connector: sqlite, path: out.db, strategy: {{mode: full_refresh}}}}\n"
      "streams:\n",
      server.url());
}

int64_t count_rows(const fs::path& db, const std::string& table) {
  std::string dump = dump_table(db, table, "1");
  return static_cast<int64_t>(std::count(dump.begin(), dump.end(), '\n')) - 1;
}

// The fixture's records first..last as dump_table() shows them from SQLite.
std::string expected_records(int first, int last) {
  std::string out = "id,name,score,active,updated_at\n";
  for (int i = first; i <= last; ++i) {
    double score = i * 1.5;
    std::string s = score == static_cast<int>(score) ? fmt::format("{}.0", static_cast<int>(score))
                                                     : fmt::format("{}", score);
    out +=
        fmt::format("{},item-{},{},{},2026-01-01T00:{:02}:00Z\n", i, i, s, i % 2 == 0 ? 1 : 0, i);
  }
  return out;
}

TEST(Rest, EveryPaginationStyleLoadsTheFixtureIntoSqlite) {
  Scratch s;
  FixtureProcess server(s.dir());
  ASSERT_GT(server.port(), 0);
  write_file(s / "m.yaml", header(server) +
                               "  - name: page_number\n"
                               "    source: {path: /page, records_path: data, pagination: {type: "
                               "page_number, size_param: per_page, page_size: 10}}\n"
                               "    sink: {table: page_number}\n"
                               "  - name: offset\n"
                               "    source: {path: /offset, records_path: results, pagination: "
                               "{type: offset, page_size: 10}}\n"
                               "    sink: {table: offset}\n"
                               "  - name: cursor\n"
                               "    source: {path: /cursor, records_path: items, pagination: "
                               "{type: cursor, cursor_path: meta.next_cursor}}\n"
                               "    sink: {table: cursor}\n"
                               "  - name: next_url\n"
                               "    source: {path: /next, records_path: records, pagination: "
                               "{type: next_url, next_url_path: links.next}}\n"
                               "    sink: {table: next_url}\n"
                               "  - name: link_header\n"
                               "    source: {path: /link, pagination: {type: link_header}}\n"
                               "    sink: {table: link_header}\n");
  Result plan = run_dpone(s.dir(), {"plan", "m.yaml"});
  ASSERT_EQ(plan.exit_code, 0) << plan.all();
  // The plan shows the inferred columns and where they came from.
  EXPECT_NE(
      plan.out.find(
          "columns:  id int64, name string, score float64, active bool, updated_at timestamptz"),
      std::string::npos)
      << plan.out;
  EXPECT_NE(plan.out.find("columns inferred from 10 records of the first 1 page"),
            std::string::npos)
      << plan.out;

  Result run = run_dpone(s.dir(), {"run", "m.yaml"});
  ASSERT_EQ(run.exit_code, 0) << run.all();
  const std::string expected = expected_records(1, 25);
  for (const char* t : {"page_number", "offset", "cursor", "next_url", "link_header"}) {
    EXPECT_EQ(dump_table(s / "out.db", t, "id"), expected) << t;
  }
}

TEST(Rest, RetriesHonourRetryAfterAndFailuresLeaveTheTargetUnchanged) {
  Scratch s;
  FixtureProcess server(s.dir());
  ASSERT_GT(server.port(), 0);
  const std::string pages = "pagination: {type: page_number, page_size: 10}";
  write_file(s / "flaky.yaml", header(server) +
                                   "  - name: t\n    source: {path: /flaky, records_path: data, " +
                                   pages + "}\n    sink: {table: t}\n");
  write_file(
      s / "broken.yaml",
      header(server) + "  - name: t\n    source: {path: /broken, records_path: data, retries: 2, " +
          pages + "}\n    sink: {table: t, strategy: {mode: full_refresh, allow_shrink: true}}\n");
  write_file(s / "malformed.yaml",
             header(server) + "  - name: t\n    source: {path: /malformed, records_path: data, " +
                 pages +
                 "}\n    sink: {table: t, strategy: {mode: full_refresh, allow_shrink: true}}\n");
  Result ok = run_dpone(s.dir(), {"run", "flaky.yaml"});
  ASSERT_EQ(ok.exit_code, 0) << ok.all() << server.log();
  EXPECT_EQ(dump_table(s / "out.db", "t", "id"), expected_records(1, 25));  // every record once

  // The server's log: 429 with Retry-After: 1, and the retry at least a second later.
  std::regex line(R"(t=([0-9.]+) \S+ GET (\S+) -> (\d+))");
  std::vector<std::tuple<double, std::string, int>> log;
  std::string text = server.log();
  for (auto it = std::sregex_iterator(text.begin(), text.end(), line); it != std::sregex_iterator();
       ++it)
    log.emplace_back(std::stod((*it)[1]), (*it)[2], std::stoi((*it)[3]));
  std::vector<std::tuple<double, std::string, int>> page2;
  for (const auto& e : log)
    if (std::get<1>(e) == "/flaky?page=2") page2.push_back(e);
  ASSERT_EQ(page2.size(), 2u) << text;
  EXPECT_EQ(std::get<2>(page2[0]), 429);
  EXPECT_EQ(std::get<2>(page2[1]), 200);
  EXPECT_GE(std::get<0>(page2[1]) - std::get<0>(page2[0]), 0.95) << text;
  std::cout << "server log (flaky run):\n" << text;

  const std::string before = dump_table(s / "out.db", "t", "id");
  Result broken = run_dpone(s.dir(), {"run", "broken.yaml"});
  EXPECT_EQ(broken.exit_code, 1) << broken.all();
  EXPECT_NE(broken.all().find("SOURCE_READ_FAILED"), std::string::npos) << broken.all();
  EXPECT_NE(
      broken.all().find("GET " + server.url() +
                        "/broken?page=2 (page 2) failed with HTTP status 503 after 3 attempts"),
      std::string::npos)
      << broken.all();
  EXPECT_EQ(dump_table(s / "out.db", "t", "id"), before);
  std::cout << "broken run:\n" << broken.all();

  Result malformed = run_dpone(s.dir(), {"run", "malformed.yaml"});
  EXPECT_EQ(malformed.exit_code, 1) << malformed.all();
  EXPECT_NE(malformed.all().find("INPUT_MALFORMED"), std::string::npos) << malformed.all();
  EXPECT_NE(malformed.all().find("page 2 (GET " + server.url() + "/malformed?page=2"),
            std::string::npos)
      << malformed.all();
  EXPECT_EQ(dump_table(s / "out.db", "t", "id"), before);
  // No staging table is left behind.
  for (const auto& t : table_names(s / "out.db"))
    EXPECT_EQ(t.find("dpone_stg"), std::string::npos) << t;
}

TEST(Rest, IncrementalSecondRunRequestsAndLoadsOnlyNewRecords) {
  Scratch s;
  FixtureProcess server(s.dir());
  ASSERT_GT(server.port(), 0);
  write_file(s / "m.yaml",
             header(server) +
                 "  - name: items\n"
                 "    source:\n"
                 "      path: /incremental\n"
                 "      records_path: data\n"
                 "      query: {updated_since: \"{{ state.cursor }}\"}\n"
                 "      incremental: cursor\n"
                 "      cursor_field: updated_at\n"
                 "      primary_key: id\n"
                 "      pagination: {type: page_number, page_size: 10}\n"
                 "    sink: {table: items, strategy: {mode: merge, unique_key: [id]}}\n");
  Result first = run_dpone(s.dir(), {"run", "m.yaml"});
  ASSERT_EQ(first.exit_code, 0) << first.all();
  EXPECT_NE(first.out.find("items: loaded 25 rows"), std::string::npos) << first.out;
  json st = state_of(s.dir(), "m.yaml", "items");
  EXPECT_EQ(st.dump().find("2026-01-01T00:25:00Z") != std::string::npos, true) << st.dump();

  server.control("/_control/grow?n=5");
  Result plan = run_dpone(s.dir(), {"plan", "m.yaml"});
  EXPECT_NE(plan.out.find("updated_at > 2026-01-01T00:25:00Z"), std::string::npos) << plan.out;
  Result second = run_dpone(s.dir(), {"run", "m.yaml"});
  ASSERT_EQ(second.exit_code, 0) << second.all();
  EXPECT_NE(second.out.find("items: loaded 5 rows (merge: 5 inserted"), std::string::npos)
      << second.out;
  EXPECT_EQ(dump_table(s / "out.db", "items", "id"), expected_records(1, 30));
  std::string log = server.log();
  EXPECT_NE(log.find("GET /incremental?updated_since=2026-01-01T00%3A25%3A00Z&page=1 -> 200"),
            std::string::npos)
      << log;
  EXPECT_NE(state_of(s.dir(), "m.yaml", "items").dump().find("2026-01-01T00:30:00Z"),
            std::string::npos);
}

TEST(Rest, ChildTablesProduceParentAndChildTables) {
  Scratch s;
  FixtureProcess server(s.dir());
  ASSERT_GT(server.port(), 0);
  std::string src = "path: /nested, records_path: orders, normalize: child_tables, primary_key: id";
  write_file(s / "m.yaml", header(server) + "  - name: orders\n    source: {" + src +
                               "}\n    sink: {table: orders}\n"
                               "  - name: order_lines\n    source: {" +
                               src +
                               ", child_table: lines}\n    sink: {table: order_lines}\n"
                               "  - name: order_tags\n    source: {" +
                               src + ", child_table: tags}\n    sink: {table: order_tags}\n");
  Result run = run_dpone(s.dir(), {"run", "m.yaml"});
  ASSERT_EQ(run.exit_code, 0) << run.all();
  EXPECT_EQ(dump_table(s / "out.db", "orders", "id"),
            "id,customer__name,customer__address__city,customer__address__zip,lines__count,tags__"
            "count,meta__source\n"
            "1,Ann,Oslo,0150,2,2,web\n"
            "2,Bo,Bergen,5003,0,1,app\n"
            "3,Cy,\\N,\\N,\\N,0,web\n"
            "4,Di,Tromsø,9008,1,\\N,phone\n");
  EXPECT_EQ(dump_table(s / "out.db", "order_lines", "_parent_id, _index"),
            "_parent_id,_index,sku,qty,price\n"
            "1,0,A-1,2,9.5\n"
            "1,1,B-2,1,20.0\n"
            "4,0,C-3,5,1.25\n");
  EXPECT_EQ(dump_table(s / "out.db", "order_tags", "_parent_id, _index"),
            "_parent_id,_index,value\n1,0,new\n1,1,gift\n2,0,vip\n");
}

// Acceptance 5: 100,000 records over 1,000 pages, peak RSS of the dpone process <= 64 MB.
TEST(Rest, HundredThousandRecordsOverThousandPagesWithin64MB) {
  Scratch s;
  FixtureProcess server(s.dir());
  ASSERT_GT(server.port(), 0);
  write_file(s / "m.yaml", header(server) +
                               "  - name: big\n"
                               "    source: {path: /big, records_path: data, pagination: {type: "
                               "page_number, size_param: per_page, page_size: 100}}\n"
                               "    sink: {table: big}\n");
  auto t0 = std::chrono::steady_clock::now();
  pid_t pid = fork();
  if (pid == 0) {
    if (chdir(s.dir().c_str()) != 0) _exit(127);
    if (!freopen("run.out", "w", stdout) || !freopen("run.err", "w", stderr)) _exit(127);
    std::string bin = DPONE_BIN;
    std::vector<char*> argv{bin.data(), const_cast<char*>("run"), const_cast<char*>("m.yaml"),
                            nullptr};
    execv(bin.c_str(), argv.data());
    _exit(127);
  }
  int status = 0;
  rusage usage{};
  ASSERT_EQ(wait4(pid, &status, 0, &usage), pid);
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << read_file(s / "run.out") << read_file(s / "run.err");
  EXPECT_EQ(count_rows(s / "out.db", "big"), 100000);
  std::string log = server.log();
  // One request per page, plus the empty page 1001 that ends a data set of full pages.
  EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 1001)
      << log.substr(log.size() > 400 ? log.size() - 400 : 0);
  double peak_mb = static_cast<double>(usage.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB
  double cpu = static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
               static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
  std::cout << fmt::format(
      "bench rest_to_sqlite rows=100000 pages=1000 wall_s={:.2f} cpu_s={:.2f} peak_rss_mb={:.1f}\n",
      wall, cpu, peak_mb);
  EXPECT_LE(peak_mb, 64.0);
}

TEST(Rest, SecretsNeverReachOutputOrRunRecords) {
  Scratch s;
  FixtureProcess server(s.dir());
  ASSERT_GT(server.port(), 0);
  write_file(s / "connections.yaml",
             "connections:\n  api:\n    type: rest\n    base_url: \"" + server.url() +
                 "\"\n    api_key_in: query\n    api_key: ${env:TEST_API_KEY}\n");
  write_file(
      s / "m.yaml",
      "kind: dpone.batch.v1\nstreams:\n"
      "  - name: ok\n    source: {connector: rest, connection: api, path: /auth/key}\n"
      "    sink: {connector: sqlite, path: out.db, table: ok, strategy: {mode: full_refresh}}\n"
      "  - name: bad\n    source: {connector: rest, connection: api, path: /broken, query: {page: "
      "\"2\"}, retries: 0}\n"
      "    sink: {connector: sqlite, path: out.db, table: bad, strategy: {mode: full_refresh}}\n");
  std::map<std::string, std::string> env{{"TEST_API_KEY", "k3y/with+chars"}};
  Result run = run_dpone(s.dir(), {"run", "m.yaml"}, env);
  EXPECT_EQ(run.exit_code, 1) << run.all();
  EXPECT_EQ(count_rows(s / "out.db", "ok"), 5);
  EXPECT_NE(run.all().find("/broken?page=2&api_key=***"), std::string::npos) << run.all();
  std::string everything = run.all();
  for (const auto& e : fs::recursive_directory_iterator(s / ".dpone"))
    if (e.is_regular_file() && e.path().extension() == ".json") everything += read_file(e.path());
  EXPECT_EQ(everything.find("k3y/with+chars"), std::string::npos);
  EXPECT_EQ(everything.find("k3y%2Fwith%2Bchars"), std::string::npos);
}

}  // namespace

namespace {

// `dpone connectors certify rest`: the generic scenarios create their data through the
// connector's sink, which a source-only connector lacks, so they report SKIP (never FAIL)
// and the command succeeds; the source itself is certified by the tests above.
TEST(Rest, CertifyPassesWithoutFailures) {
  e2e::Scratch s;
  FixtureProcess server(s.dir());
  ASSERT_GT(server.port(), 0);
  e2e::write_file(s / "connections.yaml",
                  "connections:\n  api:\n    type: rest\n    base_url: \"" + server.url() + "\"\n");
  e2e::Result r = e2e::run_dpone(
      s.dir(), {"connectors", "certify", "rest", "--connection", "api", "-o", "cert"});
  EXPECT_EQ(r.exit_code, 0) << r.all();
  EXPECT_EQ(r.out.find("FAIL"), std::string::npos) << r.out;
  EXPECT_TRUE(e2e::fs::exists(s / "cert" / "certification.json")) << r.all();
}

}  // namespace

namespace {

// Killed after promotion, before the state commit: the rerun recovers the cursor from the
// load receipt and requests only newer records, so an append target holds each record once.
TEST(Rest, KilledAfterPromoteRerunRecoversTheCursor) {
  e2e::Scratch s;
  FixtureProcess server(s.dir());
  ASSERT_GT(server.port(), 0);
  e2e::write_file(
      s / "m.yaml",
      header(server) +
          "  - name: items\n"
          "    source: {path: /incremental, records_path: data, query: {updated_since: \"{{ "
          "state.cursor }}\"},\n"
          "             cursor_field: updated_at, pagination: {type: page_number, page_size: 10}}\n"
          "    sink: {table: items, strategy: {mode: append}}\n");
  e2e::Result killed =
      e2e::run_dpone(s.dir(), {"run", "m.yaml"}, {{"DPONE_FAILPOINTS", "after_promote=kill"}});
  EXPECT_EQ(killed.signal, SIGKILL) << killed.all();
  EXPECT_EQ(count_rows(s / "out.db", "items"), 25);
  server.control("/_control/grow?n=5");
  e2e::Result rerun = e2e::run_dpone(s.dir(), {"run", "m.yaml"});
  ASSERT_EQ(rerun.exit_code, 0) << rerun.all();
  EXPECT_NE(rerun.all().find("recovered state from the load receipt"), std::string::npos)
      << rerun.all();
  EXPECT_EQ(e2e::dump_table(s / "out.db", "items", "id"), expected_records(1, 30));
  EXPECT_NE(
      server.log().find("GET /incremental?updated_since=2026-01-01T00%3A25%3A00Z&page=1 -> 200"),
      std::string::npos)
      << server.log();
}

}  // namespace

namespace {

// REST -> PostgreSQL through the CLI (the service of scripts/services.sh, DPONE_TEST_PG_DSN):
// nested objects land as json(b) columns, pages and types as in SQLite.
TEST(Rest, LoadsIntoPostgres) {
  REQUIRE_PG();
  e2e::Scratch s;
  FixtureProcess server(s.dir());
  ASSERT_GT(server.port(), 0);
  std::map<std::string, std::string> env = e2e::pg_env();
  const std::string schema = fmt::format("rest_e2e_{}", getpid());
  e2e::psql("CREATE SCHEMA " + schema);
  e2e::write_file(
      s / "m.yaml",
      fmt::format("kind: dpone.batch.v1\n"
                  "defaults:\n"
                  "  source: {{connector: rest, base_url: \"{}\"}}\n"
                  "  sink: {{connector: postgres, connection: pg, schema: {}, strategy: {{mode: full_refresh}}}}\n"
                  "streams:\n"
                  "  - name: orders\n"
                  "    source: {{path: /nested, records_path: orders, primary_key: id}}\n"
                  "    sink: {{table: orders}}\n"
                  "  - name: items\n"
                  "    source: {{path: /page, records_path: data, pagination: {{type: page_number, page_size: 10}}}}\n"
                  "    sink: {{table: items}}\n",
                  server.url(), schema));
  e2e::Result run = e2e::run_dpone(s.dir(), {"run", "m.yaml"}, env);
  EXPECT_EQ(run.exit_code, 0) << run.all();
  EXPECT_EQ(e2e::psql("SELECT id, customer->'address'->>'city', jsonb_array_length(lines::jsonb), tags::text FROM " +
                      schema + ".orders ORDER BY id"),
            "1,Oslo,2,[\"new\", \"gift\"]\n"
            "2,Bergen,0,[\"vip\"]\n"
            "3,\\N,\\N,[]\n"
            "4,Tromsø,1,\\N\n");
  EXPECT_EQ(e2e::psql("SELECT count(*), sum(score), count(*) FILTER (WHERE active), min(updated_at AT TIME ZONE 'UTC') FROM " +
                      schema + ".items"),
            "25,487.5,12,2026-01-01 00:01:00\n");
  e2e::psql("DROP SCHEMA " + schema + " CASCADE");
}

}  // namespace
