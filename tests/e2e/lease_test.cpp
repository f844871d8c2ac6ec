// Two runs of one stream at once (issue 24, acceptance 1), on SQLite, PostgreSQL and
// ClickHouse (whose promotion is no transaction: an intent and a compare-and-set):
//   - started at the same instant, 50 times: exactly one loads the new file, the other
//     fails with STREAM_BUSY (or, started a moment after the first finished, finds no new
//     data); never a duplicate, never a dropped staging table of the live run;
//   - with the lease bypassed (DPONE_TEST_BYPASS_LEASE=1): the receipt compare-and-set
//     in the promotion still lets only one of them promote a window;
//   - `--wait`: the second run waits for the first and then finds nothing new;
//   - a killed holder's lease blocks until its ttl ran out, then the next run takes the
//     stream over, removes the dead run's staging and loads exactly;
//   - cleanup never drops the staging of another stream's live run into the same table.
#include <fmt/format.h>

#include <chrono>
#include <csignal>
#include <set>
#include <thread>

#include "ch_support.hpp"
#include "pg_support.hpp"

namespace {

using namespace e2e;
using json = nlohmann::json;

// Which sink the stream writes: "sqlite" (target.db in the project), "postgres" (a
// scratch schema of the test service) or "clickhouse" (a scratch database).
struct Target {
  std::string kind;
  std::unique_ptr<PgSchema> schema;
  std::unique_ptr<clickhouse::ChDatabase> chdb;

  std::string sink_yaml(const std::string& table) const {
    if (kind == "sqlite") return "{connector: sqlite, path: target.db, table: " + table + ", strategy: {mode: append}}";
    if (kind == "clickhouse")
      return "{connector: clickhouse, connection: ch, table: " + table + ", strategy: {mode: append}}";
    return "{connector: postgres, connection: pg, schema: " + schema->name() + ", table: " + table +
           ", strategy: {mode: append}}";
  }
  std::map<std::string, std::string> env(std::map<std::string, std::string> more = {}) const {
    if (kind == "clickhouse") {
      for (auto& [k, v] : clickhouse::ch_env(chdb->name())) more[k] = v;
      return more;
    }
    return kind == "sqlite" ? more : pg_env(std::move(more));
  }
  // "rows,distinct ids" of the target table.
  std::string counts(const fs::path& dir, const std::string& table) const {
    if (kind == "sqlite") {
      std::string dump = dump_table(dir / "target.db", table, "id");
      std::set<std::string> ids;
      int rows = 0;
      std::istringstream in(dump);
      std::string line;
      std::getline(in, line);  // header
      while (std::getline(in, line)) {
        ++rows;
        ids.insert(line.substr(0, line.find(',')));
      }
      return fmt::format("{},{}", rows, ids.size());
    }
    std::string out =
        kind == "clickhouse"
            ? clickhouse::chq(fmt::format("SELECT concat(toString(count()), ',', toString(uniqExact(id))) FROM {}.{}",
                                          chdb->name(), table))
            : psql(fmt::format("SELECT count(*) || ',' || count(DISTINCT id) FROM {}.{};", schema->name(), table));
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
    return out;
  }
  std::vector<std::string> staging_tables(const fs::path& dir) const {
    std::vector<std::string> out;
    if (kind == "sqlite") {
      for (const auto& t : table_names(dir / "target.db"))
        if (t.find("__dpone_stg_") != std::string::npos) out.push_back(t);
      return out;
    }
    std::istringstream in(
        kind == "clickhouse"
            ? clickhouse::chq(fmt::format(
                  "SELECT name FROM system.tables WHERE database = '{}' AND name LIKE '%dpone_stg%'", chdb->name()))
            : psql(fmt::format("SELECT tablename FROM pg_tables WHERE schemaname = '{}' AND tablename LIKE '%dpone_stg%';",
                               schema->name())));
    std::string line;
    while (std::getline(in, line))
      if (!line.empty()) out.push_back(line);
    return out;
  }
};

std::string file_rows(int day, int n) {
  std::string out = "id,name,day\n";
  for (int i = 0; i < n; ++i) out += fmt::format("{},event {} of day {},{}\n", day * 1000 + i, i, day, day);
  return out;
}

class Lease : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    target_.kind = GetParam();
    if (target_.kind == "postgres") {
      REQUIRE_PG();
      target_.schema = std::make_unique<PgSchema>("dpone_lease_");
    }
    if (target_.kind == "clickhouse") {
      REQUIRE_CH();
      target_.chdb = std::make_unique<clickhouse::ChDatabase>();
    }
  }
  void write_manifest(const fs::path& dir) {
    write_file(dir / "manifest.yaml",
               "kind: dpone.batch.v1\n"
               "streams:\n"
               "  - name: events\n"
               "    source: {connector: files, path: \"landing/*.csv\", incremental: new_files}\n"
               "    sink: " + target_.sink_yaml("events") + "\n");
  }
  Target target_;
};

INSTANTIATE_TEST_SUITE_P(Sinks, Lease, ::testing::Values("sqlite", "postgres", "clickhouse"),
                         [](const auto& info) { return info.param; });

bool loaded(const Result& r, int rows) {
  return r.exit_code == 0 && r.out.find(fmt::format("events: loaded {} rows", rows)) != std::string::npos;
}
bool found_nothing_new(const Result& r) {
  return r.exit_code == 0 && r.out.find("events: loaded 0 rows (no new data)") != std::string::npos;
}
bool busy(const Result& r) { return r.exit_code == 1 && r.all().find("[STREAM_BUSY]") != std::string::npos; }

TEST_P(Lease, TwoRunsStartedTogetherFiftyTimesLoadEachFileOnce) {
  Scratch dir;
  write_manifest(dir.dir());
  write_file(dir / "landing" / "day0.csv", file_rows(0, 30));
  ASSERT_TRUE(loaded(run_dpone(dir.dir(), {"run", "manifest.yaml"}, target_.env()), 30));
  int busy_count = 0, later_count = 0;
  for (int day = 1; day <= 50; ++day) {
    write_file(dir / "landing" / fmt::format("day{}.csv", day), file_rows(day, 20));
    auto results = run_dpone_together(2, dir.dir(), {"run", "manifest.yaml"}, target_.env());
    ASSERT_EQ(results.size(), 2u);
    const Result& a = results[0];
    const Result& b = results[1];
    ASSERT_TRUE((loaded(a, 20) && (busy(b) || found_nothing_new(b))) ||
                (loaded(b, 20) && (busy(a) || found_nothing_new(a))))
        << "day " << day << "\n--- run A ---\n" << a.all() << "\n--- run B ---\n" << b.all();
    busy_count += busy(a) || busy(b);
    later_count += found_nothing_new(a) || found_nothing_new(b);
    // No run ever lost its staging to the other's cleanup.
    EXPECT_EQ(a.all().find("no such table"), std::string::npos) << a.all();
    EXPECT_EQ(b.all().find("does not exist"), std::string::npos) << b.all();
    ASSERT_EQ(target_.counts(dir.dir(), "events"), fmt::format("{},{}", 30 + 20 * day, 30 + 20 * day)) << "day " << day;
  }
  EXPECT_TRUE(target_.staging_tables(dir.dir()).empty());
  // Most pairs overlap; the count shows the lease, not luck, kept them apart.
  EXPECT_GT(busy_count, 25) << "busy " << busy_count << ", started after the other finished " << later_count;
  std::cout << "[ lease ] " << GetParam() << ": 50 pairs, " << busy_count << " STREAM_BUSY, " << later_count
            << " found no new data, 0 duplicates\n";
}

TEST_P(Lease, WithTheLeaseBypassedTheReceiptCompareAndSetLetsOnlyOnePromote) {
  Scratch dir;
  write_manifest(dir.dir());
  write_file(dir / "landing" / "day0.csv", file_rows(0, 30));
  ASSERT_TRUE(loaded(run_dpone(dir.dir(), {"run", "manifest.yaml"}, target_.env()), 30));
  const auto env = target_.env({{"DPONE_TEST_BYPASS_LEASE", "1"}});
  int conflicts = 0;
  for (int day = 1; day <= 20; ++day) {
    write_file(dir / "landing" / fmt::format("day{}.csv", day), file_rows(day, 20));
    auto results = run_dpone_together(2, dir.dir(), {"run", "manifest.yaml"}, env);
    int loads = loaded(results[0], 20) + loaded(results[1], 20);
    EXPECT_LE(loads, 1) << results[0].all() << "\n---\n" << results[1].all();
    for (const auto& r : results) {
      EXPECT_EQ(r.all().find("[STREAM_BUSY]"), std::string::npos) << "the lease was bypassed: " << r.all();
      conflicts += r.all().find("[STATE_CONFLICT]") != std::string::npos;
    }
    // Whatever the pair did, a clean run afterwards completes the window exactly once.
    Result settle = run_dpone(dir.dir(), {"run", "manifest.yaml"}, target_.env());
    ASSERT_EQ(settle.exit_code, 0) << settle.all();
    ASSERT_EQ(target_.counts(dir.dir(), "events"), fmt::format("{},{}", 30 + 20 * day, 30 + 20 * day))
        << "day " << day << "\n" << results[0].all() << "\n---\n" << results[1].all();
  }
  EXPECT_GT(conflicts, 0) << "no pair ever reached the promotion together: the test proved nothing";
  std::cout << "[ lease ] " << GetParam() << ": lease bypassed, 20 pairs, " << conflicts
            << " promotions refused by the receipt compare-and-set, 0 duplicates\n";
}

TEST_P(Lease, WaitLetsTheSecondRunFollowTheFirst) {
  Scratch dir;
  write_manifest(dir.dir());
  write_file(dir / "landing" / "day1.csv", file_rows(1, 20));
  // The first run stands 1.5 s after its stage, holding the lease.
  Child first = start_dpone(dir.dir(), {"run", "manifest.yaml"},
                            target_.env({{"DPONE_FAILPOINTS", "after_stage=pause:1500"},
                                         {"DPONE_FAILPOINT_MARKER", (dir / "arrived").string()}}));
  for (int i = 0; i < 200 && !fs::exists(dir / "arrived"); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(25));
  ASSERT_TRUE(fs::exists(dir / "arrived"));
  Result second = run_dpone(dir.dir(), {"run", "manifest.yaml", "--wait=30"}, target_.env());
  Result one = first.wait();
  EXPECT_TRUE(loaded(one, 20)) << one.all();
  EXPECT_TRUE(found_nothing_new(second)) << second.all();
  EXPECT_EQ(target_.counts(dir.dir(), "events"), "20,20");
  // Run ids sort by start time: the second run's record is the newest.
  std::string newest;
  for (const auto& e : fs::directory_iterator(dir / ".dpone" / "runs"))
    newest = std::max(newest, e.path().filename().string());
  json rec = json::parse(read_file(dir / ".dpone" / "runs" / newest / "run.json"));
  EXPECT_GT(rec["streams"][0]["lease"]["waited_s"].get<double>(), 0.3);
}

TEST_P(Lease, AKilledHoldersLeaseIsTakenOverAndItsStagingRemoved) {
  Scratch dir;
  write_manifest(dir.dir());
  write_file(dir / "landing" / "day0.csv", file_rows(0, 10));
  ASSERT_TRUE(loaded(run_dpone(dir.dir(), {"run", "manifest.yaml"}, target_.env()), 10));
  write_file(dir / "landing" / "day1.csv", file_rows(1, 20));
  Result killed = run_dpone(dir.dir(), {"run", "manifest.yaml"}, target_.env({{"DPONE_FAILPOINTS", "after_stage=kill"}}));
  ASSERT_EQ(killed.signal, SIGKILL) << killed.all();
  ASSERT_EQ(target_.staging_tables(dir.dir()).size(), 1u);
  // The holder ran on this host and its pid is gone: the next run takes over at once
  // (a holder on another host is taken over when its ttl ran out).
  Result next = run_dpone(dir.dir(), {"run", "manifest.yaml"}, target_.env());
  EXPECT_TRUE(loaded(next, 20)) << next.all();
  EXPECT_NE(next.all().find("took over the lease of"), std::string::npos) << next.all();
  EXPECT_TRUE(target_.staging_tables(dir.dir()).empty());
  EXPECT_EQ(target_.counts(dir.dir(), "events"), "30,30");
}

TEST_P(Lease, CleanupKeepsTheStagingOfAnotherStreamsLiveRun) {
  Scratch dir;
  // Two streams append into one table: b's cleanup must not drop a's live staging.
  write_file(dir / "manifest.yaml",
             "kind: dpone.batch.v1\n"
             "streams:\n"
             "  - name: a\n"
             "    source: {connector: files, path: \"in_a/*.csv\", incremental: new_files}\n"
             "    sink: " + target_.sink_yaml("events") + "\n"
             "  - name: b\n"
             "    source: {connector: files, path: \"in_b/*.csv\", incremental: new_files}\n"
             "    sink: " + target_.sink_yaml("events") + "\n");
  // The target exists before (two streams creating one table at once is another story:
  // the second CREATE fails and rolls back, and its re-run appends).
  write_file(dir / "in_a" / "0.csv", file_rows(0, 3));
  Result first = run_dpone(dir.dir(), {"run", "manifest.yaml", "--select", "a"}, target_.env());
  ASSERT_EQ(first.exit_code, 0) << first.all();
  write_file(dir / "in_a" / "1.csv", file_rows(1, 20));
  write_file(dir / "in_b" / "2.csv", file_rows(2, 5));
  Child a = start_dpone(dir.dir(), {"run", "manifest.yaml", "--select", "a"},
                        target_.env({{"DPONE_FAILPOINTS", "after_stage=pause:1500"},
                                     {"DPONE_FAILPOINT_MARKER", (dir / "arrived").string()}}));
  for (int i = 0; i < 200 && !fs::exists(dir / "arrived"); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(25));
  ASSERT_TRUE(fs::exists(dir / "arrived"));
  Result b = run_dpone(dir.dir(), {"run", "manifest.yaml", "--select", "b"}, target_.env());
  Result ra = a.wait();
  EXPECT_EQ(b.exit_code, 0) << b.all();
  EXPECT_EQ(ra.exit_code, 0) << ra.all();
  EXPECT_EQ(target_.counts(dir.dir(), "events"), "28,28");
}

}  // namespace
