// End-to-end tests against the real PostgreSQL started by scripts/services.sh
// (DPONE_TEST_PG_DSN). The failpoint matrix of failpoint_test.cpp, with a PostgreSQL
// sink; and files -> PostgreSQL -> SQLite round trips through the CLI.
#include <csignal>
#include <cctype>
#include <chrono>
#include <thread>
#include <cstdio>
#include <random>
#include <regex>
#include <set>

#include <fmt/format.h>

#include "core/util/failpoint.hpp"
#include "pg_support.hpp"

namespace {

using namespace e2e;
using json = nlohmann::json;

// The failpoint matrix's view of the target: the timestamps a run writes (soft deletes, scd2
// validity) are its own time, so they are masked; scd2 rows ordered by key and version.
std::string dump_items(const std::string& schema, const std::string& strategy) {
  std::string rows = psql("SELECT * FROM " + schema + ".items ORDER BY 1" +
                          (strategy == "scd2" ? ", __dpone__valid_from;" : ";"));
  static const std::regex kRunTime(R"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?\+00)");
  return std::regex_replace(rows, kRunTime, "<run time>");
}

std::string csv_rows(int from, int to, const std::string& tag) {
  std::string out;
  for (int i = from; i <= to; ++i)
    out += std::to_string(i) + ",item " + std::to_string(i) + " " + tag + "," + std::to_string(i) + ".50\n";
  return out;
}

void setup(const fs::path& dir, const std::string& strategy, const std::string& schema) {
  std::string mode = strategy == "full_refresh_exchange" ? "full_refresh" : strategy;
  std::string extra = strategy == "full_refresh_exchange" ? "\n        overwrite: exchange" : "";
  if (mode == "merge" || mode == "snapshot_diff" || mode == "scd2") extra = "\n        unique_key: [id]";
  // replace: the slice is every row (day 2 replaces day 1); partition_replace: each
  // amount names a partition, so day 2 replaces the rows whose amounts it brings.
  if (mode == "replace") extra = "\n        where: \"id > 0\"";
  if (mode == "partition_replace") extra = "\n        partition_by: [amount]";
  // snapshot_diff and scd2 compare a full snapshot (docs/reconciliation.md).
  bool full = mode == "full_refresh" || mode == "snapshot_diff" || mode == "scd2";
  write_file(dir / "manifest.yaml",
             "kind: dpone.batch.v1\n"
             "streams:\n"
             "  - name: items\n"
             "    source:\n"
             "      connector: files\n"
             "      path: landing/*.csv\n"
             "      incremental: " + std::string(full ? "full" : "new_files") + "\n"
             "      primary_key: [id]\n"
             "      columns: {amount: \"decimal(10,2)\"}\n"
             "    sink:\n"
             "      connector: postgres\n"
             "      connection: pg\n"
             "      schema: " + schema + "\n"
             "      table: items\n"
             "      strategy:\n"
             "        mode: " + mode + extra + "\n");
  write_file(dir / "landing" / (full ? "items.csv" : "day1.csv"), "id,name,amount\n" + csv_rows(1, 50, "v1"));
}

void add_day2(const fs::path& dir, const std::string& strategy) {
  const std::string h = "id,name,amount\n";
  if (strategy.rfind("full_refresh", 0) == 0)
    write_file(dir / "landing" / "items.csv", h + csv_rows(1, 30, "v1") + csv_rows(31, 80, "v2"));
  else if (strategy == "snapshot_diff" || strategy == "scd2")  // 1-10 deleted, 31-50 changed, 51-80 new
    write_file(dir / "landing" / "items.csv", h + csv_rows(11, 30, "v1") + csv_rows(31, 80, "v2"));
  else if (strategy == "append")
    write_file(dir / "landing" / "day2.csv", h + csv_rows(51, 80, "v2"));
  else
    write_file(dir / "landing" / "day2.csv", h + csv_rows(40, 80, "v2"));
}

struct Scenario {
  std::string strategy;
  std::string failpoint;
};
void PrintTo(const Scenario& s, std::ostream* os) { *os << s.strategy << " killed at " << s.failpoint; }

class PgFailpointKill : public ::testing::TestWithParam<Scenario> {};

TEST_P(PgFailpointKill, RerunLeavesTargetExactlyRight) {
  REQUIRE_PG();
  const auto& [strategy, point] = GetParam();
  auto env = pg_env();
  PgSchema ref_schema;
  Scratch ref;
  setup(ref.dir(), strategy, ref_schema.name());
  ASSERT_EQ(run_dpone(ref.dir(), {"run", "manifest.yaml"}, env).exit_code, 0);
  add_day2(ref.dir(), strategy);
  Result r2 = run_dpone(ref.dir(), {"run", "manifest.yaml"}, env);
  ASSERT_EQ(r2.exit_code, 0) << r2.all();
  std::string expected = dump_items(ref_schema.name(), strategy);
  ASSERT_NE(expected.find("80,item 80 v2,80.50"), std::string::npos) << expected;

  PgSchema schema;
  Scratch s;
  setup(s.dir(), strategy, schema.name());
  ASSERT_EQ(run_dpone(s.dir(), {"run", "manifest.yaml"}, env).exit_code, 0);
  std::string after_day1 = dump_items(schema.name(), strategy);
  add_day2(s.dir(), strategy);
  Result crash = run_dpone(s.dir(), {"run", "manifest.yaml", "--batch-rows", "10"},
                           with(env, {{"DPONE_FAILPOINTS", point + "=kill"}}));
  ASSERT_EQ(crash.signal, SIGKILL) << "not killed at " << point << ":\n" << crash.all();
  std::string after_crash = dump_items(schema.name(), strategy);
  EXPECT_TRUE(after_crash == after_day1 || after_crash == expected)
      << "neither old nor new after kill at " << point << ":\n" << after_crash;
  Result rerun = run_dpone(s.dir(), {"run", "manifest.yaml"}, env);
  ASSERT_EQ(rerun.exit_code, 0) << rerun.all();
  EXPECT_EQ(dump_items(schema.name(), strategy), expected);
  std::string leftovers = psql("SELECT string_agg(tablename, ' ') FROM pg_tables WHERE schemaname = '" + schema.name() +
                               "' AND (tablename LIKE '%dpone_stg%' OR tablename LIKE '%dpone_new%');");
  EXPECT_EQ(leftovers, "\\N\n") << "staging left behind: " << leftovers;
  ASSERT_EQ(run_dpone(s.dir(), {"run", "manifest.yaml"}, env).exit_code, 0);
  EXPECT_EQ(dump_items(schema.name(), strategy), expected);
}

std::vector<Scenario> scenarios() {
  std::vector<Scenario> out;
  for (std::string strategy :
       {"full_refresh", "full_refresh_exchange", "append", "merge", "replace", "partition_replace", "snapshot_diff",
        "scd2"})
    for (auto fp : dpone::kFailpoints) out.push_back({strategy, std::string(fp)});
  return out;
}

INSTANTIATE_TEST_SUITE_P(PgAllStrategiesAllFailpoints, PgFailpointKill, ::testing::ValuesIn(scenarios()),
                         [](const auto& info) { return info.param.strategy + "_" + info.param.failpoint; });

// files -> PostgreSQL (merge) -> SQLite (cursor on the PostgreSQL table), values intact.
TEST(Postgres, FilesToPostgresToSqliteKeepsValues) {
  REQUIRE_PG();
  auto env = pg_env();
  PgSchema schema;
  Scratch s;
  write_file(s / "in" / "a.csv",
             "id,name,note,amount,at\n"
             "1,\"Smith, John\",\"tab\there\",10.50,2026-11-01 10:00:00+02:00\n"
             "2,,\"\",-0.01,2026-11-01T00:00:00Z\n"
             "3,Zoë ☃,\"line one\nline two\",,2026-11-02T23:59:59.123456Z\n");
  write_file(s / "m.yaml",
             "kind: dpone.batch.v1\n"
             "streams:\n"
             "  - name: to_pg\n"
             "    source: {connector: files, path: in/*.csv, primary_key: id, columns: {amount: \"decimal(12,2)\"}}\n"
             "    sink: {connector: postgres, connection: pg, schema: " + schema.name() + ", table: t, strategy: {mode: merge, unique_key: id}}\n"
             "  - name: to_sqlite\n"
             "    source: {connector: postgres, connection: pg, schema: " + schema.name() + ", table: t, incremental: cursor, cursor: id}\n"
             "    sink: {connector: sqlite, path: out.db, table: t, strategy: {mode: merge, unique_key: id}}\n");
  Result r = run_dpone(s.dir(), {"run", "m.yaml"}, env);
  ASSERT_EQ(r.exit_code, 0) << r.all();
  EXPECT_NE(r.out.find("to_pg: loaded 3 rows"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("to_sqlite: loaded 3 rows"), std::string::npos) << r.out;
  EXPECT_EQ(psql("SELECT id, name, note, amount, at AT TIME ZONE 'UTC' FROM " + schema.name() + ".t ORDER BY id;"),
            // psql unaligned output: fields joined by commas, unquoted; NULL as \N.
            "1,Smith, John,tab\there,10.50,2026-11-01 08:00:00\n"
            "2,\\N,,-0.01,2026-11-01 00:00:00\n"
            "3,Zoë ☃,line one\nline two,\\N,2026-11-02 23:59:59.123456\n");
  EXPECT_EQ(dump_table(s / "out.db", "t", "id"),
            "id,name,note,amount,at\n"
            "1,Smith, John,tab\there,10.50,2026-11-01T08:00:00Z\n"
            "2,\\N,,-0.01,2026-11-01T00:00:00Z\n"
            "3,Zoë ☃,line one\nline two,\\N,2026-11-02T23:59:59.123456Z\n");
  // No new rows: the cursor stream loads nothing.
  Result again = run_dpone(s.dir(), {"run", "m.yaml", "--select", "to_sqlite"}, env);
  EXPECT_NE(again.out.find("to_sqlite: loaded 0 rows (no new data)"), std::string::npos) << again.all();
}

// Issue 27, end to end: PostgreSQL -> SQLite with a timestamp cursor (default now()), as
// `merge` and as `append` with a declared key. A slow transaction writes first and commits
// after a run read a fast one; the next run loads the slow row; source and target equal,
// nothing twice.
TEST(Postgres, LateCommitIsLoadedByTheNextRun) {
  REQUIRE_PG();
  for (std::string strategy : {"{mode: merge, unique_key: id}", "{mode: append}"}) {
    SCOPED_TRACE(strategy);
    auto env = pg_env();
    PgSchema schema;
    Scratch s;
    const std::string t = schema.name() + ".orders";
    psql("CREATE TABLE " + t +
         " (id bigserial PRIMARY KEY, item text, updated_at timestamptz NOT NULL DEFAULT now());"
         "INSERT INTO " +
         t + " (item) SELECT 'item ' || g FROM generate_series(1, 100) g;");
    write_file(s / "m.yaml",
               "kind: dpone.batch.v1\n"
               "streams:\n"
               "  - name: orders\n"
               "    source: {connector: postgres, connection: pg, schema: " +
                   schema.name() +
                   ", table: orders, cursor: updated_at}\n"
                   "    sink: {connector: sqlite, path: out.db, table: orders, strategy: " +
                   strategy + "}\n");
    Result r = run_dpone(s.dir(), {"run", "m.yaml"}, env);
    ASSERT_EQ(r.exit_code, 0) << r.all();
    // The slow transaction: inserts at once, commits after 3 s (a session of its own).
    fs::path slow_sql = s / "slow.sql";
    write_file(slow_sql,
               "BEGIN; INSERT INTO " + t + " (item) VALUES ('slow'); SELECT pg_sleep(3); COMMIT;");
    std::string slow_cmd = "psql '" + pg_dsn() + "' -X -q -v ON_ERROR_STOP=1 -f " +
                           slow_sql.string() + " >/dev/null 2>&1";
    std::thread slow([&] { shell(slow_cmd); });
    // Until the slow session has inserted and sleeps (its row's now() is the earlier one).
    for (int i = 0;
         i < 100 && psql("SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(3)%' "
                         "AND pid <> pg_backend_pid();") != "1\n";
         ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    psql("INSERT INTO " + t + " (item) VALUES ('fast');");
    r = run_dpone(s.dir(), {"run", "m.yaml"}, env);
    EXPECT_NE(r.out.find("orders: loaded 1 rows"), std::string::npos) << r.all();  // fast only
    slow.join();
    r = run_dpone(s.dir(), {"run", "m.yaml"}, env);
    EXPECT_NE(r.out.find("orders: loaded 1 rows"), std::string::npos) << r.all();  // the slow one
    r = run_dpone(s.dir(), {"run", "m.yaml"}, env);
    EXPECT_NE(r.out.find("orders: loaded 0 rows (no new data)"), std::string::npos) << r.all();
    std::string source = psql("SELECT count(*), count(DISTINCT id) FROM " + t + ";");
    EXPECT_EQ(source, "102,102\n");
    EXPECT_EQ(dump_table(s / "out.db", "orders", "id").find("slow") != std::string::npos, true);
    std::string target = dump_table(s / "out.db", "orders", "id");
    EXPECT_EQ(std::count(target.begin(), target.end(), '\n'), 1 + 102) << target;  // header + rows
  }
}

// Acceptance 3 of the PostgreSQL connector: the sink server dies (SIGKILL to the
// postmaster) in the middle of the staging COPY. The run fails with a stable code and
// says why; after the server is started again, a re-run loads every row exactly once.
// Needs the restartable test service (DPONE_TEST_PG_SERVICES_DIR from env.sh).
TEST(Postgres, SinkServerKilledMidCopyThenRerunIsExact) {
  REQUIRE_PG();
  const char* services_dir = std::getenv("DPONE_TEST_PG_SERVICES_DIR");
  const char* port = std::getenv("DPONE_TEST_PG_PORT");
  if (!services_dir || !port) {
    if (std::getenv("CI") || std::getenv("DPONE_REQUIRE_SERVICES"))
      FAIL() << "DPONE_TEST_PG_SERVICES_DIR/DPONE_TEST_PG_PORT not set (source env.sh)";
    GTEST_SKIP() << "the PostgreSQL service is not restartable from here";
  }
  const fs::path pidfile = fs::path(services_dir) / "postgres.pid";
  auto env = pg_env();
  PgSchema schema;
  Scratch s;
  constexpr int kRows = 2000000;
  {
    std::string csv = "id,name,amount\n";
    csv.reserve(kRows * 32);
    for (int i = 1; i <= kRows; ++i) csv += fmt::format("{},name {},{}.{:02d}\n", i, i, i % 1000, i % 100);
    write_file(s / "in" / "big.csv", csv);
  }
  write_file(s / "m.yaml",
             "kind: dpone.batch.v1\n"
             "streams:\n"
             "  - name: big\n"
             "    source: {connector: files, path: in/big.csv, primary_key: id, columns: {amount: \"decimal(12,2)\"}}\n"
             "    sink: {connector: postgres, connection: pg, schema: " + schema.name() + ", table: t, strategy: {mode: merge, unique_key: id}}\n");
  Result failed;
  std::thread run([&] { failed = run_dpone(s.dir(), {"run", "m.yaml"}, env); });
  // Wait for the staging COPY to be under way, then kill the server as a crash would:
  // the postmaster and the backend running the COPY (a backend alone notices its
  // postmaster's death only when it next waits, so a fast COPY could otherwise finish).
  bool killed = false;
  for (int i = 0; i < 3000 && !killed; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    std::string backend = psql("SELECT pid FROM pg_stat_activity WHERE query LIKE 'COPY %FROM STDIN%' "
                               "AND query LIKE '%" + schema.name() + "%' LIMIT 1;");
    if (!backend.empty() && std::isdigit(static_cast<unsigned char>(backend[0]))) {
      pid_t pid = static_cast<pid_t>(std::stol(read_file(pidfile)));
      ASSERT_EQ(::kill(pid, SIGKILL), 0);
      ::kill(static_cast<pid_t>(std::stol(backend)), SIGKILL);  // may be gone already
      killed = true;
    }
  }
  run.join();
  ASSERT_TRUE(killed) << "the COPY was never seen running: " << failed.all();
  EXPECT_EQ(failed.exit_code, 1) << failed.all();
  EXPECT_TRUE(failed.all().find("[STAGE_FAILED]") != std::string::npos ||
              failed.all().find("[SINK_UNAVAILABLE]") != std::string::npos)
      << failed.all();
  EXPECT_NE(failed.all().find("in phase stage"), std::string::npos) << failed.all();
  // Start the service again (it recovers the cluster a killed postmaster left behind).
  std::string start = fmt::format("DPONE_SERVICES_DIR='{}' DPONE_PG_PORT='{}' '{}/scripts/services.sh' start postgres >/dev/null 2>&1",
                                  services_dir, port, DPONE_SOURCE_DIR);
  ASSERT_EQ(std::system(start.c_str()), 0) << start;
  Result rerun = run_dpone(s.dir(), {"run", "m.yaml"}, env);
  ASSERT_EQ(rerun.exit_code, 0) << rerun.all();
  EXPECT_NE(rerun.out.find(fmt::format("big: loaded {} rows", kRows)), std::string::npos) << rerun.out;
  int64_t cents = 0;
  for (int i = 1; i <= kRows; ++i) cents += (i % 1000) * 100 + i % 100;
  EXPECT_EQ(psql("SELECT count(*), count(DISTINCT id), sum(amount * 100)::bigint FROM " + schema.name() + ".t;"),
            fmt::format("{},{},{}\n", kRows, kRows, cents));
  EXPECT_EQ(psql("SELECT count(*) FROM pg_tables WHERE schemaname = '" + schema.name() +
                 "' AND tablename LIKE '%dpone_stg%';"),
            "0\n");
}

TEST(Postgres, UnknownRoleIsAClearErrorWithoutThePassword) {
  REQUIRE_PG();
  Scratch s;
  const std::string pw = "wr0ng-Passw0rd-xyz";
  // A role the server does not know, with a password that must not leak into output.
  write_file(s / "m.yaml",
             "kind: dpone.batch.v1\nstreams:\n  - name: t\n"
             "    source: {connector: postgres, connection: pg, table: nothing_here}\n"
             "    sink: {connector: sqlite, path: out.db, table: t, strategy: {mode: append}}\n");
  Result r = run_dpone(s.dir(), {"run", "m.yaml"},
                       with(pg_env(), {{"DPONE_CONN_PG_USER", "no_such_role_dpone"}, {"DPONE_CONN_PG_PASSWORD", pw}}));
  EXPECT_EQ(r.exit_code, 3) << r.all();
  EXPECT_NE(r.all().find("SOURCE_UNAVAILABLE"), std::string::npos) << r.all();
  EXPECT_NE(r.all().find("no_such_role_dpone"), std::string::npos) << r.all();
  EXPECT_EQ(r.all().find(pw), std::string::npos) << r.all();
}

}  // namespace

namespace {

// The role the test service makes log in by password (scripts/services.sh).
std::map<std::string, std::string> auth_env(const std::string& password) {
  auto env = pg_env();
  const char* user = std::getenv("DPONE_TEST_PG_AUTH_USER");
  env["DPONE_CONN_PG_USER"] = user ? user : "dpone_auth";
  env["DPONE_CONN_PG_PASSWORD"] = password;
  return env;
}

const char* kDoctorManifest =
    "kind: dpone.batch.v1\nstreams:\n  - name: t\n"
    "    source: {connector: postgres, connection: pg, table: pg_class, schema: pg_catalog}\n"
    "    sink: {connector: sqlite, path: out.db, table: t, strategy: {mode: append}}\n";

TEST(Doctor, WrongPasswordSaysAuthenticationFailedWithoutThePassword) {
  REQUIRE_PG();
  const char* good = std::getenv("DPONE_TEST_PG_AUTH_PASSWORD");
  ASSERT_NE(good, nullptr) << "the test service exports DPONE_TEST_PG_AUTH_PASSWORD";
  Scratch s;
  write_file(s / "m.yaml", kDoctorManifest);
  const std::string wrong = "Not-The-Passw0rd-42";
  Result bad = run_dpone(s.dir(), {"doctor", "m.yaml"}, auth_env(wrong));
  EXPECT_EQ(bad.exit_code, 1) << bad.all();
  EXPECT_NE(bad.out.find("FAIL  t source (postgres, connection pg)"), std::string::npos) << bad.out;
  EXPECT_NE(bad.out.find("password authentication failed for user \"dpone_auth\""), std::string::npos) << bad.out;
  EXPECT_EQ(bad.all().find(wrong), std::string::npos) << bad.all();

  Result ok = run_dpone(s.dir(), {"doctor", "m.yaml", "--format", "json"}, auth_env(good));
  EXPECT_EQ(ok.exit_code, 0) << ok.all();
  json j = json::parse(ok.out);
  EXPECT_TRUE(j["ok"].get<bool>());
  EXPECT_EQ(ok.all().find(good), std::string::npos) << "the password was printed";
}

// A run with a wrong password fails with a clear code, naming the role, not the password.
TEST(Postgres, RunWithWrongPasswordFailsClearly) {
  REQUIRE_PG();
  Scratch s;
  write_file(s / "m.yaml", kDoctorManifest);
  const std::string wrong = "Another-Wr0ng-Pw";
  Result r = run_dpone(s.dir(), {"run", "m.yaml"}, auth_env(wrong));
  EXPECT_EQ(r.exit_code, 3) << r.all();
  EXPECT_NE(r.all().find("SOURCE_UNAVAILABLE"), std::string::npos) << r.all();
  EXPECT_NE(r.all().find("password authentication failed"), std::string::npos) << r.all();
  EXPECT_EQ(r.all().find(wrong), std::string::npos) << r.all();
}

}  // namespace

namespace {

// Issue 8: a large table loaded with one stream, the client mostly idle: perf advise
// recommends a parallel read and quotes the run's own figures.
TEST(PerfAdvise, LargeSingleStreamLoadRecommendsParallelismWithItsFigures) {
  REQUIRE_PG();
  auto env = pg_env();
  PgSchema schema;
  psql("CREATE TABLE " + schema.name() + ".big AS SELECT g AS id, md5(g::text) AS payload, (g % 1000)::numeric(12,2) AS amount "
       "FROM generate_series(1, 1000000) g; ALTER TABLE " + schema.name() + ".big ADD PRIMARY KEY (id);");
  Scratch s;
  write_file(s / "m.yaml",
             "kind: dpone.batch.v1\nstreams:\n  - name: big\n"
             "    source: {connector: postgres, connection: pg, schema: " + schema.name() + ", table: big}\n"
             "    sink: {connector: postgres, connection: pg, schema: " + schema.name() + ", table: big_copy, strategy: {mode: full_refresh}}\n");
  Result run = run_dpone(s.dir(), {"run", "m.yaml"}, env);
  ASSERT_EQ(run.exit_code, 0) << run.all();
  Result r = run_dpone(s.dir(), {"perf", "advise", "--last", "-m", "m.yaml", "--format", "json"}, env);
  ASSERT_EQ(r.exit_code, 0) << r.all();
  json advice = json::parse(r.out)["advice"];
  json record = json::parse(run_dpone(s.dir(), {"run-report", "--last", "-m", "m.yaml", "--format", "json"}).out);
  const json& st = record["streams"][0];
  ASSERT_GE(advice.size(), 1u) << r.out << "\ncpu_s=" << st["cpu_s"] << " duration_s=" << st["duration_s"];
  EXPECT_EQ(advice[0]["rule"], "parallel_reads_for_large_table");
  std::string evidence = advice[0]["evidence"];
  EXPECT_NE(evidence.find("1000000 rows in " + fmt::format("{:.2f}", st["duration_s"].get<double>()) + "s wall"),
            std::string::npos) << evidence;
  EXPECT_NE(evidence.find(fmt::format("{:.2f}s of dpone CPU", st["cpu_s"].get<double>())), std::string::npos) << evidence;
}

}  // namespace

namespace {

// Certification of the postgres connector against the test service, as the role that
// authenticates by password (so wrong_credentials is observed, not skipped).
TEST(Certify, PostgresPassesEveryScenario) {
  REQUIRE_PG();
  const char* user = std::getenv("DPONE_TEST_PG_AUTH_USER");
  const char* pw = std::getenv("DPONE_TEST_PG_AUTH_PASSWORD");
  ASSERT_TRUE(user && pw) << "the test service exports DPONE_TEST_PG_AUTH_USER/PASSWORD";
  Scratch s;
  auto env = pg_env();
  write_file(s / "connections.yaml", "connections:\n  pg:\n    type: postgres\n    host: " + env["DPONE_CONN_PG_HOST"] +
                                         "\n    port: " + env["DPONE_CONN_PG_PORT"] + "\n    user: " + user +
                                         "\n    password: ${env:CERT_PG_PASSWORD}\n    dbname: " + env["DPONE_CONN_PG_DBNAME"] + "\n");
  Result r = run_dpone(s.dir(), {"connectors", "certify", "postgres", "--connection", "pg"}, {{"CERT_PG_PASSWORD", pw}});
  ASSERT_EQ(r.exit_code, 0) << r.all();
  json cert = json::parse(read_file(s / "certification" / "postgres" / "certification.json"));
  EXPECT_EQ(cert["counts"]["pass"], 9) << cert.dump(2);
  EXPECT_EQ(cert["counts"]["skip"], 0) << cert.dump(2);
  EXPECT_EQ(r.all().find(pw), std::string::npos) << "the password was printed";
  psql("DO $$ DECLARE t text; BEGIN FOR t IN SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE 'dpone_cert_%' "
       "LOOP EXECUTE 'DROP TABLE public.' || quote_ident(t); END LOOP; END $$;");
}

}  // namespace

namespace {

// Issue 8: `dpone plan` on a PostgreSQL stream changes nothing anywhere (source, target,
// state and the schema's tables are checksummed before and after), and the DDL it lists
// is exactly the DDL the following run executes.
TEST(Plan, PostgresPlanChangesNothingAndListsTheDdlTheRunExecutes) {
  REQUIRE_PG();
  auto env = pg_env();
  PgSchema schema;
  const std::string sc = schema.name();
  psql("CREATE TABLE " + sc + ".src (id bigint PRIMARY KEY, name text); INSERT INTO " + sc +
       ".src VALUES (1, 'a'), (2, 'b'), (3, 'c');");
  Scratch s;
  write_file(s / "m.yaml",
             "kind: dpone.batch.v1\nstreams:\n  - name: p\n"
             "    source: {connector: postgres, connection: pg, schema: " + sc + ", table: src, incremental: xmin}\n"
             "    sink: {connector: postgres, connection: pg, schema: " + sc + ", table: dst, strategy: {mode: merge, unique_key: id}}\n");
  ASSERT_EQ(run_dpone(s.dir(), {"run", "m.yaml"}, env).exit_code, 0);
  psql("ALTER TABLE " + sc + ".src ADD COLUMN extra text; UPDATE " + sc + ".src SET extra = 'x', name = 'B' WHERE id = 2;");
  auto snapshot = [&] {
    return psql("SELECT md5(string_agg(t::text, '|' ORDER BY id)) FROM " + sc + ".src t;") +
           psql("SELECT md5(string_agg(t::text, '|' ORDER BY id)) FROM " + sc + ".dst t;") +
           psql("SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = '" + sc + "';") +
           psql("SELECT count(*) FROM " + sc + ".__dpone__loads;") + read_file(s / ".dpone" / "state.db");
  };
  std::string before = snapshot();
  Result plan = run_dpone(s.dir(), {"plan", "m.yaml", "--format", "json"}, env);
  ASSERT_EQ(plan.exit_code, 0) << plan.all();
  EXPECT_EQ(snapshot(), before) << "plan changed something";
  json p = json::parse(plan.out)["streams"][0];
  ASSERT_EQ(p["schema"]["ddl"].size(), 1u) << p.dump(2);
  EXPECT_NE(p["schema"]["ddl"][0].get<std::string>().find("ADD COLUMN \"extra\""), std::string::npos) << p.dump(2);
  EXPECT_EQ(p["schema"]["decision"], "apply");
  EXPECT_FALSE(p["steps"].empty());
  Result run = run_dpone(s.dir(), {"run", "m.yaml"}, env);
  ASSERT_EQ(run.exit_code, 0) << run.all();
  json rec = json::parse(run_dpone(s.dir(), {"run-report", "--last", "-m", "m.yaml", "--format", "json"}).out);
  EXPECT_EQ(rec["streams"][0]["schema"]["ddl"], p["schema"]["ddl"]);
  EXPECT_EQ(psql("SELECT id, name, extra FROM " + sc + ".dst ORDER BY id;"), "1,a,\\N\n2,B,x\n3,c,\\N\n");
}

}  // namespace
