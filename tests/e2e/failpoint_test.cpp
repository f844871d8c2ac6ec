// Crash tests (issue 2, acceptance 5): for each strategy and each lifecycle failpoint,
// a run is killed with SIGKILL at that point, then run again. The target must end up
// exactly as after one clean run (no row lost, none duplicated), the state must never
// be ahead of the data, and no staging table may be left behind.
#include <csignal>
#include <regex>
#include <set>

#include "core/util/failpoint.hpp"
#include "harness.hpp"

namespace {

using namespace e2e;
using json = nlohmann::json;

struct Scenario {
  std::string strategy;  // full_refresh | full_refresh_exchange | append | merge | snapshot_diff | scd2
  std::string failpoint;
};

void PrintTo(const Scenario& s, std::ostream* os) { *os << s.strategy << " killed at " << s.failpoint; }

std::string csv_rows(int from, int to, const std::string& tag) {
  std::string out;
  for (int i = from; i <= to; ++i)
    out += std::to_string(i) + ",item " + std::to_string(i) + " " + tag + "," + std::to_string(i) + ".50," +
           "2026-11-0" + (tag == "v1" ? "1" : "2") + " 10:00:00\n";
  return out;
}

const char* kHeader = "id,name,amount,updated_at\n";

// Lays out a project for the strategy with the day-1 input.
void setup(const fs::path& dir, const std::string& strategy) {
  std::string mode = strategy == "full_refresh_exchange" ? "full_refresh" : strategy;
  std::string extra = strategy == "full_refresh_exchange" ? "\n        overwrite: exchange" : "";
  if (mode == "merge" || mode == "snapshot_diff" || mode == "scd2") extra = "\n        unique_key: [id]";
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
             "      connector: sqlite\n"
             "      path: target.db\n"
             "      table: items\n"
             "      strategy:\n"
             "        mode: " + mode + extra + "\n");
  write_file(dir / "landing" / (full ? "items.csv" : "day1.csv"), kHeader + csv_rows(1, 50, "v1"));
}

// Day 2: full_refresh sees a changed, larger file; append gets new rows; merge gets
// updates of 40-50 and new rows 51-80.
void add_day2(const fs::path& dir, const std::string& strategy) {
  if (strategy.rfind("full_refresh", 0) == 0)
    write_file(dir / "landing" / "items.csv", kHeader + csv_rows(1, 30, "v1") + csv_rows(31, 80, "v2"));
  else if (strategy == "snapshot_diff" || strategy == "scd2")  // 1-10 deleted, 31-50 changed, 51-80 new
    write_file(dir / "landing" / "items.csv", kHeader + csv_rows(11, 30, "v1") + csv_rows(31, 80, "v2"));
  else if (strategy == "append")
    write_file(dir / "landing" / "day2.csv", kHeader + csv_rows(51, 80, "v2"));
  else
    write_file(dir / "landing" / "day2.csv", kHeader + csv_rows(40, 80, "v2"));
}

std::set<std::string> files_in_state(const fs::path& dir) {
  json st = state_of(dir, "manifest.yaml", "items");
  std::set<std::string> out;
  if (st.contains("position") && st["position"].is_object() && st["position"].contains("files"))
    for (const auto& [k, v] : st["position"]["files"].items()) out.insert(k);
  return out;
}

// The target for comparison: the timestamps a run writes (soft deletes, scd2 validity) are
// its own time, so they are masked; scd2 rows are ordered by key and version.
std::string dump(const fs::path& dir, const std::string& strategy) {
  std::string rows = dump_table(dir / "target.db", "items", strategy == "scd2" ? "id, __dpone__valid_from" : "id");
  static const std::regex kRunTime(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)");
  return std::regex_replace(rows, kRunTime, "<run time>");
}

void run_ok(const fs::path& dir, const std::map<std::string, std::string>& env = {}) {
  Result r = run_dpone(dir, {"run", "manifest.yaml", "--batch-rows", "10"}, env);
  ASSERT_EQ(r.exit_code, 0) << r.all();
}

class FailpointKill : public ::testing::TestWithParam<Scenario> {};

TEST_P(FailpointKill, RerunLeavesTargetExactlyRight) {
  const auto& [strategy, point] = GetParam();
  // The reference: two clean runs.
  Scratch ref;
  setup(ref.dir(), strategy);
  run_ok(ref.dir());
  std::string after_day1 = dump(ref.dir(), strategy);
  add_day2(ref.dir(), strategy);
  run_ok(ref.dir());
  std::string expected = dump(ref.dir(), strategy);
  std::set<std::string> expected_files = files_in_state(ref.dir());
  ASSERT_NE(after_day1, expected);

  // The crash: day 1 clean, day 2 killed at the failpoint, then re-run.
  Scratch s;
  setup(s.dir(), strategy);
  run_ok(s.dir());
  add_day2(s.dir(), strategy);
  Result crash = run_dpone(s.dir(), {"run", "manifest.yaml", "--batch-rows", "10"},
                       {{"DPONE_FAILPOINTS", point + "=kill"}});
  ASSERT_EQ(crash.signal, SIGKILL) << "run was not killed at " << point << ":\n" << crash.all();

  // State never ahead of the data: if the state says day 2 is loaded, it is.
  std::string after_crash = dump(s.dir(), strategy);
  if (files_in_state(s.dir()) == expected_files && strategy != "full_refresh" &&
      strategy != "full_refresh_exchange" && strategy != "snapshot_diff" && strategy != "scd2") {
    EXPECT_EQ(after_crash, expected) << "state committed but data missing after kill at " << point;
  }
  EXPECT_TRUE(after_crash == after_day1 || after_crash == expected)
      << "target is neither the old nor the new version after kill at " << point << ":\n" << after_crash;

  Result rerun = run_dpone(s.dir(), {"run", "manifest.yaml", "--batch-rows", "10"});
  ASSERT_EQ(rerun.exit_code, 0) << rerun.all();
  EXPECT_EQ(dump(s.dir(), strategy), expected);
  EXPECT_EQ(files_in_state(s.dir()), expected_files);
  for (const auto& t : table_names(s / "target.db")) {
    EXPECT_EQ(t.find("__dpone_stg_"), std::string::npos) << "staging left behind: " << t;
    EXPECT_EQ(t.find("__dpone_new_"), std::string::npos) << "shadow left behind: " << t;
  }
  // A third run has nothing new (or, for full_refresh, reloads the same) and changes nothing.
  run_ok(s.dir());
  EXPECT_EQ(dump(s.dir(), strategy), expected);
}

std::vector<Scenario> scenarios() {
  std::vector<Scenario> out;
  for (std::string strategy : {"full_refresh", "full_refresh_exchange", "append", "merge", "snapshot_diff", "scd2"})
    for (auto fp : dpone::kFailpoints) out.push_back({strategy, std::string(fp)});
  return out;
}

INSTANTIATE_TEST_SUITE_P(AllStrategiesAllFailpoints, FailpointKill, ::testing::ValuesIn(scenarios()),
                         [](const auto& info) { return info.param.strategy + "_" + info.param.failpoint; });

// An injected error (not a kill) at any point before the state commit leaves target
// and state exactly as they were, and drops the staging.
class FailpointError : public ::testing::TestWithParam<std::string> {};

TEST_P(FailpointError, TargetAndStateUnchanged) {
  Scratch s;
  setup(s.dir(), "merge");
  run_ok(s.dir());
  std::string before = dump_table(s / "target.db", "items", "id");
  auto files_before = files_in_state(s.dir());
  add_day2(s.dir(), "merge");
  Result r = run_dpone(s.dir(), {"run", "manifest.yaml", "--batch-rows", "10"}, {{"DPONE_FAILPOINTS", GetParam() + "=error"}});
  EXPECT_EQ(r.exit_code, 1) << r.all();
  EXPECT_NE(r.all().find("failpoint '" + GetParam() + "' triggered"), std::string::npos) << r.all();
  EXPECT_EQ(dump_table(s / "target.db", "items", "id"), before);
  EXPECT_EQ(files_in_state(s.dir()), files_before);
  for (const auto& t : table_names(s / "target.db")) EXPECT_EQ(t.find("__dpone_stg_"), std::string::npos) << t;
}

INSTANTIATE_TEST_SUITE_P(BeforeStateCommit, FailpointError,
                         ::testing::Values("after_discover", "after_cleanup", "during_stage", "after_stage",
                                           "after_gates", "before_promote", "inside_promote"));

}  // namespace
