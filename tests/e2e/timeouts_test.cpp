// Timeouts (issue 24): a server that accepts TCP and never answers must end a run with
// TIMED_OUT (exit 3) naming host:port, the phase and the field that bounds it, well under
// a minute, for every server connector; and a promotion behind another session's lock on
// a PostgreSQL target waits at most lock_timeout, changes nothing, and a re-run after the
// lock is released succeeds. The "silent server" is a real TCP listener in this process;
// the lock test uses the real PostgreSQL test service.
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "ch_support.hpp"
#include "pg_support.hpp"

namespace {

using namespace e2e;

// Listens on 127.0.0.1 (a free port), accepts every connection and never writes a byte;
// accepted sockets stay open until the server is destroyed, so clients see a live peer
// whose kernel acknowledges everything and whose application says nothing.
class SilentServer {
 public:
  SilentServer() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    if (fd_ < 0 || bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        listen(fd_, 64) != 0) {
      ADD_FAILURE() << "silent server: cannot listen on 127.0.0.1";
      return;
    }
    socklen_t len = sizeof addr;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] {
      while (!stop_) {
        pollfd p{fd_, POLLIN, 0};
        if (poll(&p, 1, 100) > 0) {
          int c = accept(fd_, nullptr, nullptr);
          if (c >= 0) accepted_.push_back(c);
        }
      }
    });
  }
  ~SilentServer() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    for (int c : accepted_) close(c);
    if (fd_ >= 0) close(fd_);
  }
  int port() const { return port_; }
  std::string host_port() const { return fmt::format("127.0.0.1:{}", port_); }

 private:
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::vector<int> accepted_;  // only the server thread touches it until join
};

struct Timed {
  Result result;
  double seconds = 0;
};

Timed timed_run(const fs::path& dir, const std::map<std::string, std::string>& env) {
  auto start = std::chrono::steady_clock::now();
  Timed t;
  t.result = run_dpone(dir, {"run", "m.yaml"}, env);
  t.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // Printed so the measured time to fail is visible in the test log.
  std::printf("[ timing ] %s: run ended after %.2f s\n",
              ::testing::UnitTest::GetInstance()->current_test_info()->name(), t.seconds);
  std::fflush(stdout);  // a later fork must not inherit (and print again) this line
  return t;
}

// The run failed with TIMED_OUT (exit 3) naming the silent server, the phase and the
// setting, within `bound` seconds.
void expect_timed_out(const Timed& t, const SilentServer& server, const std::string& phase,
                      const std::string& setting, double bound) {
  const std::string all = t.result.all();
  EXPECT_EQ(t.result.exit_code, 3) << all;
  EXPECT_NE(all.find("TIMED_OUT"), std::string::npos) << all;
  EXPECT_NE(all.find(server.host_port()), std::string::npos) << all;
  EXPECT_NE(all.find(phase), std::string::npos) << "phase '" << phase << "' not named: " << all;
  EXPECT_NE(all.find(setting), std::string::npos)
      << "setting '" << setting << "' not named: " << all;
  EXPECT_LT(t.seconds, bound) << all;
}

// A CSV of three rows, for streams whose sink is the silent server.
void write_items(const Scratch& s) {
  write_file(s / "landing" / "items.csv", "id,name\n1,a\n2,b\n3,c\n");
}

std::string files_source() {
  return "      connector: files\n      path: landing/*.csv\n      incremental: full\n"
         "      primary_key: [id]\n";
}

std::string sqlite_sink() {
  return "    sink: {connector: sqlite, path: out.db, table: items, strategy: {mode: "
         "full_refresh}}\n";
}

std::string manifest(const std::string& source, const std::string& sink) {
  return "kind: dpone.batch.v1\nstreams:\n  - name: items\n    source:\n" + source + sink;
}

std::map<std::string, std::string> silent_pg_env(const SilentServer& server,
                                                 std::map<std::string, std::string> more = {}) {
  std::map<std::string, std::string> env{{"DPONE_CONN_SILENT_TYPE", "postgres"},
                                         {"DPONE_CONN_SILENT_HOST", "127.0.0.1"},
                                         {"DPONE_CONN_SILENT_PORT", std::to_string(server.port())},
                                         {"DPONE_CONN_SILENT_USER", "dpone"},
                                         {"DPONE_CONN_SILENT_DBNAME", "dpone"},
                                         {"DPONE_CONN_SILENT_SSLMODE", "disable"}};
  for (const auto& [k, v] : more) env[k] = v;
  return env;
}

std::map<std::string, std::string> silent_ch_env(const SilentServer& server,
                                                 std::map<std::string, std::string> more = {}) {
  std::map<std::string, std::string> env{{"DPONE_CONN_SILENT_TYPE", "clickhouse"},
                                         {"DPONE_CONN_SILENT_URL", "http://" + server.host_port()}};
  for (const auto& [k, v] : more) env[k] = v;
  return env;
}

// ------------------------------------------------------------------------- PostgreSQL

TEST(Timeouts, PostgresSourceSilentServerEndsAfterConnectTimeoutField) {
  Scratch s;
  SilentServer server;
  write_file(s / "m.yaml", manifest("      connector: postgres\n      connection: silent\n"
                                    "      table: items\n",
                                    sqlite_sink()));
  Timed t = timed_run(s.dir(), silent_pg_env(server, {{"DPONE_CONN_SILENT_CONNECT_TIMEOUT", "2"}}));
  expect_timed_out(t, server, "PostgreSQL connect", "connection field `connect_timeout`", 15);
  EXPECT_NE(t.result.all().find("2 s"), std::string::npos) << t.result.all();
}

TEST(Timeouts, PostgresSinkSilentServerEndsUnderAMinuteWithDefaults) {
  Scratch s;
  SilentServer server;
  write_items(s);
  write_file(s / "m.yaml", manifest(files_source(),
                                    "    sink: {connector: postgres, connection: silent, table: "
                                    "items, strategy: {mode: full_refresh}}\n"));
  Timed t = timed_run(s.dir(), silent_pg_env(server));
  expect_timed_out(t, server, "PostgreSQL connect", "connection field `connect_timeout`", 45);
  EXPECT_NE(t.result.all().find("10 s"), std::string::npos) << t.result.all();
}

TEST(Timeouts, PostgresBadTimeoutValueIsAConfigError) {
  Scratch s;
  SilentServer server;
  write_file(s / "m.yaml", manifest("      connector: postgres\n      connection: silent\n"
                                    "      table: items\n",
                                    sqlite_sink()));
  Result r = run_dpone(s.dir(), {"run", "m.yaml"},
                       silent_pg_env(server, {{"DPONE_CONN_SILENT_LOCK_TIMEOUT", "soon"}}));
  EXPECT_EQ(r.exit_code, 2) << r.all();
  EXPECT_NE(r.all().find("CONFIG_BAD_VALUE"), std::string::npos) << r.all();
  EXPECT_NE(r.all().find("lock_timeout"), std::string::npos) << r.all();
}

// Runs `sql` in its own psql session (application_name dpone_lock_holder) and keeps it
// open until release(): the lock it takes is held by another session than dpone's.
class LockHolder {
 public:
  explicit LockHolder(const std::string& sql) {
    pid_ = fork();
    if (pid_ == 0) {
      setenv("PGAPPNAME", "dpone_lock_holder", 1);
      std::string dsn = pg_dsn();
      std::string cmd = sql + "; SELECT pg_sleep(120);";
      // Quiet: its session is ended by release(), which psql would report on stderr.
      if (!freopen("/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr)) _exit(127);
      execlp("psql", "psql", dsn.c_str(), "-X", "-q", "-c", cmd.c_str(), nullptr);
      _exit(127);
    }
  }
  ~LockHolder() { release(); }
  void release() {
    if (pid_ <= 0) return;
    psql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name = 'dpone_lock_holder';");
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
};

// Another session's ACCESS EXCLUSIVE lock on the target, taken `delay_s` after the start
// (0: held before the run starts). The run fails in `phase` with `code` (exit
// `exit_code`) and the TIMED_OUT message naming lock_timeout, target and state
// unchanged; a re-run after the lock is released loads.
void lock_scenario(int delay_s, const std::map<std::string, std::string>& extra_env,
                   const std::string& phase, const std::string& code, int exit_code) {
  Scratch s;
  PgSchema schema;
  const std::string table = schema.name() + ".items";
  psql("CREATE TABLE " + table + " (id bigint NOT NULL, name text); INSERT INTO " + table +
       " VALUES (7, 'old');");
  write_items(s);
  write_file(s / "m.yaml",
             manifest(files_source(),
                      "    sink: {connector: postgres, connection: pg, schema: " + schema.name() +
                          ", table: items, strategy: {mode: full_refresh}}\n"));
  auto env = pg_env({{"DPONE_CONN_PG_LOCK_TIMEOUT", "2"}});

  LockHolder holder(fmt::format(
      "SELECT pg_sleep({}); BEGIN; LOCK TABLE {} IN ACCESS EXCLUSIVE MODE", delay_s, table));
  // With no delay, wait until the other session holds the lock, so the run meets it.
  bool held = delay_s > 0;
  for (int i = 0; i < 100 && !held; ++i) {
    held = psql(
               "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE "
               "a.application_name = 'dpone_lock_holder' AND l.mode = 'AccessExclusiveLock' "
               "AND l.granted AND l.relation = '" +
               table + "'::regclass;") == "1\n";
    if (!held) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(held) << "the lock holder did not take the lock";

  Timed t = timed_run(s.dir(), with(env, extra_env));
  const std::string all = t.result.all();
  EXPECT_EQ(t.result.exit_code, exit_code) << all;
  EXPECT_NE(all.find("FAILED [" + code + "] in phase " + phase), std::string::npos) << all;
  EXPECT_NE(all.find("[TIMED_OUT]"), std::string::npos) << all;
  EXPECT_NE(all.find("connection field `lock_timeout`"), std::string::npos) << all;
  EXPECT_NE(all.find("55P03"), std::string::npos) << all;
  EXPECT_NE(all.find("127.0.0.1:"), std::string::npos) << all;
  // The statement waits at most lock_timeout (2 s) after the lock is met.
  EXPECT_LT(t.seconds, delay_s + 12) << all;
  Result history = run_dpone(s.dir(), {"state", "history", "items", "-m", "m.yaml"}, env);
  EXPECT_EQ(history.exit_code, 0) << history.all();
  EXPECT_EQ(history.out.find("commit"), std::string::npos) << history.all();
  holder.release();

  EXPECT_EQ(psql("SELECT id, name FROM " + table + " ORDER BY id;"), "7,old\n");
  Result rerun = run_dpone(s.dir(), {"run", "m.yaml"}, env);
  EXPECT_EQ(rerun.exit_code, 0) << rerun.all();
  EXPECT_EQ(psql("SELECT id, name FROM " + table + " ORDER BY id;"), "1,a\n2,b\n3,c\n");
  // The failed run committed no state; the re-run did.
  Result after = run_dpone(s.dir(), {"state", "history", "items", "-m", "m.yaml"}, env);
  EXPECT_NE(after.out.find("commit"), std::string::npos) << after.all();
}

// The lock is taken while the run pauses right before promotion (failpoint), so it is
// the promotion that meets it. The sink's promote() reports its rollback as
// PROMOTE_FAILED, with the TIMED_OUT message inside.
TEST(Timeouts, PostgresPromotionBehindALockWaitsAtMostLockTimeout) {
  REQUIRE_PG();
  lock_scenario(1, {{"DPONE_FAILPOINTS", "before_promote=pause:4000"}}, "promote", "PROMOTE_FAILED",
                1);
}

// Held from the start: even reading the target's row count waits, bounded the same way.
TEST(Timeouts, PostgresLockHeldBeforeTheRunEndsItInDiscover) {
  REQUIRE_PG();
  lock_scenario(0, {}, "discover", "TIMED_OUT", 3);
}

TEST(Timeouts, PostgresStatementTimeoutFieldEndsALongStatement) {
  REQUIRE_PG();
  Scratch s;
  write_file(s / "m.yaml", manifest("      connector: postgres\n      connection: pg\n"
                                    "      query: \"SELECT g AS id, pg_sleep(5)::text AS name "
                                    "FROM generate_series(1, 3) g\"\n      primary_key: [id]\n",
                                    sqlite_sink()));
  auto start = std::chrono::steady_clock::now();
  Result r =
      run_dpone(s.dir(), {"run", "m.yaml"}, pg_env({{"DPONE_CONN_PG_STATEMENT_TIMEOUT", "1"}}));
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(r.exit_code, 3) << r.all();
  EXPECT_NE(r.all().find("TIMED_OUT"), std::string::npos) << r.all();
  EXPECT_NE(r.all().find("connection field `statement_timeout`"), std::string::npos) << r.all();
  EXPECT_LT(seconds, 12) << r.all();
}

// ------------------------------------------------------------------------- ClickHouse

TEST(Timeouts, ClickHouseSourceSilentServerEndsAfterReceiveTimeoutField) {
  Scratch s;
  SilentServer server;
  write_file(s / "m.yaml", manifest("      connector: clickhouse\n      connection: silent\n"
                                    "      table: items\n",
                                    sqlite_sink()));
  Timed t = timed_run(s.dir(), silent_ch_env(server, {{"DPONE_CONN_SILENT_RECEIVE_TIMEOUT", "2"}}));
  expect_timed_out(t, server, "HTTP request", "connection field `receive_timeout`", 15);
}

TEST(Timeouts, ClickHouseSinkSilentServerEndsUnderAMinuteWithDefaults) {
  Scratch s;
  SilentServer server;
  write_items(s);
  write_file(s / "m.yaml", manifest(files_source(),
                                    "    sink: {connector: clickhouse, connection: silent, "
                                    "table: items, strategy: {mode: full_refresh}}\n"));
  Timed t = timed_run(s.dir(), silent_ch_env(server));
  expect_timed_out(t, server, "HTTP request", "connection field `receive_timeout`", 55);
  EXPECT_NE(t.result.all().find("30 s"), std::string::npos) << t.result.all();
}

// A working server is not a silent one: a statement that sends nothing for longer than
// receive_timeout (3 s of sleep in one block) succeeds, because the server answers /ping.
TEST(Timeouts, ClickHouseLongStatementOutlivesReceiveTimeout) {
  REQUIRE_CH();
  Scratch s;
  clickhouse::ChDatabase db;
  write_file(s / "m.yaml",
             manifest("      connector: clickhouse\n      connection: ch\n"
                      "      query: \"SELECT number AS id, toString(sleepEachRow(1)) AS name FROM "
                      "system.numbers LIMIT 3\"\n      primary_key: [id]\n",
                      sqlite_sink()));
  auto env = clickhouse::ch_env(db.name());
  env["DPONE_CONN_CH_RECEIVE_TIMEOUT"] = "2";
  Result r = run_dpone(s.dir(), {"run", "m.yaml"}, env);
  EXPECT_EQ(r.exit_code, 0) << r.all();
  EXPECT_NE(r.all().find("loaded 3 rows"), std::string::npos) << r.all();
}

TEST(Timeouts, ClickHouseStatementTimeoutFieldEndsALongStatement) {
  REQUIRE_CH();
  Scratch s;
  clickhouse::ChDatabase db;
  write_file(s / "m.yaml",
             manifest("      connector: clickhouse\n      connection: ch\n"
                      "      query: \"SELECT count() AS id, 'x' AS name FROM numbers(4000000000) "
                      "WHERE sipHash64(number) % 7 = 1\"\n      primary_key: [id]\n",
                      sqlite_sink()));
  auto env = clickhouse::ch_env(db.name());
  env["DPONE_CONN_CH_STATEMENT_TIMEOUT"] = "2";
  Result r = run_dpone(s.dir(), {"run", "m.yaml"}, env);
  EXPECT_EQ(r.exit_code, 3) << r.all();
  EXPECT_NE(r.all().find("TIMED_OUT"), std::string::npos) << r.all();
  EXPECT_NE(r.all().find("connection field `statement_timeout`"), std::string::npos) << r.all();
}

// ------------------------------------------------------------------------------- REST

std::string rest_source(const std::string& extra = "") {
  return "      connector: rest\n      connection: api\n      path: /orders\n" + extra;
}

TEST(Timeouts, RestSilentServerEndsAfterRequestTimeoutField) {
  Scratch s;
  SilentServer server;
  write_file(s / "m.yaml", manifest(rest_source("      retries: 0\n"), sqlite_sink()));
  Timed t = timed_run(s.dir(), {{"DPONE_CONN_API_TYPE", "rest"},
                                {"DPONE_CONN_API_BASE_URL", "http://" + server.host_port()},
                                {"DPONE_CONN_API_REQUEST_TIMEOUT", "2"}});
  expect_timed_out(t, server, "HTTP request", "connection field `request_timeout`", 15);
}

TEST(Timeouts, RestSilentServerEndsUnderAMinuteWithDefaults) {
  Scratch s;
  SilentServer server;
  write_file(s / "m.yaml", manifest(rest_source(), sqlite_sink()));
  Timed t = timed_run(s.dir(), {{"DPONE_CONN_API_TYPE", "rest"},
                                {"DPONE_CONN_API_BASE_URL", "http://" + server.host_port()}});
  expect_timed_out(t, server, "HTTP request", "`request_timeout`", 55);
}

// ------------------------------------------------------------------------------ Kafka

TEST(Timeouts, KafkaSilentBootstrapEndsUnderAMinuteWithDefaults) {
  Scratch s;
  SilentServer server;
  write_file(s / "m.yaml",
             manifest("      connector: kafka\n      bootstrap_servers: \"" + server.host_port() +
                          "\"\n      topic: orders\n      columns: {id: int64, name: string}\n",
                      sqlite_sink()));
  Timed t = timed_run(s.dir(), {});
  expect_timed_out(t, server, "metadata request", "timeout_ms", 55);
}

TEST(Timeouts, KafkaSinkSilentBootstrapEndsWithinTimeoutMs) {
  Scratch s;
  SilentServer server;
  write_items(s);
  write_file(s / "m.yaml",
             manifest(files_source(), "    sink: {connector: kafka, bootstrap_servers: \"" +
                                          server.host_port() +
                                          "\", topic: orders, timeout_ms: 3000, strategy: {mode: "
                                          "append, unique_key: [id]}}\n"));
  Timed t = timed_run(s.dir(), {});
  expect_timed_out(t, server, "metadata request", "timeout_ms", 20);
}

}  // namespace
