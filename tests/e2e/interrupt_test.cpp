// Interrupts (issue 24, acceptance 3): SIGINT or SIGTERM while a run stands in its stage,
// after its gates, or inside its promotion transaction. The run stops at the next safe
// point: it says so, writes a run record with status `interrupted` and code INTERRUPTED,
// exits 130 (SIGINT) or 143 (SIGTERM), leaves target and state as they were and no
// staging behind; the re-run is exact. A second signal ends the process at once, and
// the re-run is still exact. On SQLite and on PostgreSQL.
#include <fmt/format.h>

#include <chrono>
#include <csignal>
#include <thread>

#include "pg_support.hpp"

namespace {

using namespace e2e;
using json = nlohmann::json;

struct Case {
  std::string sink;       // sqlite | postgres
  std::string failpoint;  // where the run pauses to be signalled
  int signal;
};

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  return info.param.sink + "_" + info.param.failpoint + "_" + (info.param.signal == SIGINT ? "SIGINT" : "SIGTERM");
}

std::string rows_csv(int from, int to) {
  std::string out = "id,name,amount\n";
  for (int i = from; i <= to; ++i) out += fmt::format("{},item {},{}.25\n", i, i, i);
  return out;
}

class Interrupt : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    if (GetParam().sink == "postgres") {
      REQUIRE_PG();
      schema_ = std::make_unique<PgSchema>("dpone_intr_");
    }
  }
  std::map<std::string, std::string> env(std::map<std::string, std::string> more = {}) const {
    return GetParam().sink == "sqlite" ? more : pg_env(std::move(more));
  }
  std::string sink_yaml() const {
    if (GetParam().sink == "sqlite")
      return "{connector: sqlite, path: target.db, table: items, strategy: {mode: merge, unique_key: [id]}}";
    return "{connector: postgres, connection: pg, schema: " + schema_->name() +
           ", table: items, strategy: {mode: merge, unique_key: [id]}}";
  }
  std::string target_rows(const fs::path& dir) const {
    if (GetParam().sink == "sqlite") return dump_table(dir / "target.db", "items", "id");
    return psql("SELECT * FROM " + schema_->name() + ".items ORDER BY id;");
  }
  bool staging_left(const fs::path& dir) const {
    if (GetParam().sink == "sqlite") {
      for (const auto& t : table_names(dir / "target.db"))
        if (t.find("__dpone_") != std::string::npos && t != "__dpone__loads") return true;
      return false;
    }
    return psql(fmt::format("SELECT count(*) FROM pg_tables WHERE schemaname = '{}' AND tablename LIKE '%dpone_stg%';",
                            schema_->name())) != "0\n";
  }
  std::unique_ptr<PgSchema> schema_;
};

// Starts a run paused at `failpoint` and signals it once it stands there.
Result run_and_signal(const fs::path& dir, const std::map<std::string, std::string>& env, const std::string& failpoint,
                      int sig, int count = 1) {
  auto e = env;
  e["DPONE_FAILPOINTS"] = failpoint + "=pause:4000";
  e["DPONE_FAILPOINT_MARKER"] = (dir / "arrived").string();
  fs::remove(dir / "arrived");
  Child c = start_dpone(dir, {"run", "manifest.yaml"}, e);
  for (int i = 0; i < 400 && !fs::exists(dir / "arrived"); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(25));
  EXPECT_TRUE(fs::exists(dir / "arrived")) << "the run never reached " << failpoint;
  for (int i = 0; i < count; ++i) {
    kill(c.pid, sig);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return c.wait();
}

TEST_P(Interrupt, StopsAtASafePointWithARecordAndTheRerunIsExact) {
  const Case& k = GetParam();
  Scratch dir;
  write_file(dir / "manifest.yaml", "kind: dpone.batch.v1\nstreams:\n  - name: items\n"
                                    "    source: {connector: files, path: \"landing/*.csv\", incremental: new_files, "
                                    "primary_key: [id]}\n    sink: " + sink_yaml() + "\n");
  write_file(dir / "landing" / "day1.csv", rows_csv(1, 100));
  ASSERT_EQ(run_dpone(dir.dir(), {"run", "manifest.yaml"}, env()).exit_code, 0);
  const std::string before = target_rows(dir.dir());
  const json state_before = state_of(dir.dir(), "manifest.yaml", "items");
  write_file(dir / "landing" / "day2.csv", rows_csv(50, 250));

  const auto t0 = std::chrono::steady_clock::now();
  Result r = run_and_signal(dir.dir(), env(), k.failpoint, k.signal);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(r.exit_code, 128 + k.signal) << r.all();
  EXPECT_NE(r.all().find("interrupt received"), std::string::npos) << r.all();
  EXPECT_NE(r.all().find("items: INTERRUPTED [INTERRUPTED]"), std::string::npos) << r.all();
  EXPECT_LT(seconds, 8.0) << "the run went on after the pause instead of stopping";
  // The record: written, with the interrupted status and code.
  std::string newest;
  for (const auto& e : fs::directory_iterator(dir / ".dpone" / "runs"))
    newest = std::max(newest, e.path().filename().string());
  json rec = json::parse(read_file(dir / ".dpone" / "runs" / newest / "run.json"));
  EXPECT_EQ(rec["status"], "interrupted");
  EXPECT_EQ(rec["streams"][0]["status"], "interrupted");
  EXPECT_EQ(rec["streams"][0]["error"]["code"], "INTERRUPTED");
  Result listed = run_dpone(dir.dir(), {"runs", "list", "-m", "manifest.yaml"}, env());
  EXPECT_NE(listed.out.find("interrupted"), std::string::npos) << listed.out;
  // Target, state and staging as before.
  EXPECT_EQ(target_rows(dir.dir()), before);
  EXPECT_EQ(state_of(dir.dir(), "manifest.yaml", "items"), state_before);
  EXPECT_FALSE(staging_left(dir.dir()));
  // The re-run loads the window exactly.
  Result again = run_dpone(dir.dir(), {"run", "manifest.yaml"}, env());
  ASSERT_EQ(again.exit_code, 0) << again.all();
  EXPECT_NE(again.out.find("loaded 201 rows (merge: 150 inserted, 51 updated"), std::string::npos) << again.out;
  std::string expected_tail = fmt::format("250,item 250,250.25");
  EXPECT_NE(target_rows(dir.dir()).find(expected_tail), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(
    Phases, Interrupt,
    ::testing::Values(Case{"sqlite", "during_stage", SIGINT}, Case{"sqlite", "after_gates", SIGINT},
                      Case{"sqlite", "inside_promote", SIGINT}, Case{"sqlite", "during_stage", SIGTERM},
                      Case{"postgres", "during_stage", SIGINT}, Case{"postgres", "after_gates", SIGINT},
                      Case{"postgres", "inside_promote", SIGINT}, Case{"postgres", "inside_promote", SIGTERM}),
    case_name);

TEST(InterruptTwice, SecondSignalExitsAtOnceAndTheRerunIsExact) {
  Scratch dir;
  write_file(dir / "manifest.yaml", "kind: dpone.batch.v1\nstreams:\n  - name: items\n"
                                    "    source: {connector: files, path: \"landing/*.csv\", incremental: new_files}\n"
                                    "    sink: {connector: sqlite, path: target.db, table: items, strategy: {mode: append}}\n");
  write_file(dir / "landing" / "day1.csv", rows_csv(1, 100));
  const auto t0 = std::chrono::steady_clock::now();
  // The process leaves at once, without releasing its lease: a short ttl lets the re-run
  // take over soon.
  Result r = run_and_signal(dir.dir(), {{"DPONE_LEASE_TTL_S", "3"}}, "during_stage", SIGINT, 2);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(r.exit_code, 130) << r.all();
  EXPECT_NE(r.all().find("second interrupt"), std::string::npos) << r.all();
  EXPECT_LT(seconds, 3.5) << "the second signal must not wait for the pause to end";
  Result again = run_dpone(dir.dir(), {"run", "manifest.yaml", "--wait=10"});
  ASSERT_EQ(again.exit_code, 0) << again.all();
  EXPECT_NE(again.out.find("loaded 100 rows"), std::string::npos) << again.out;
  Result count = run_dpone(dir.dir(), {"run", "manifest.yaml"});
  EXPECT_NE(count.out.find("no new data"), std::string::npos) << count.out;
  std::string dump = dump_table(dir / "target.db", "items", "id");
  EXPECT_EQ(std::count(dump.begin(), dump.end(), '\n'), 101) << dump;  // header + 100 rows, once each
}

}  // namespace
