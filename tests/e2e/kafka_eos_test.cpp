// Exactly-once delivery of the kafka sink (delivery: exactly_once, the default) against the
// Kafka test service: a SQLite -> Kafka append killed with SIGKILL at every named
// failpoint and at seeded random moments, or interrupted with SIGINT while producing,
// then re-run.
//
// What the mock cluster can and cannot show: librdkafka 2.0.2's mock accepts the
// transactional protocol (InitProducerId fencing, AddPartitionsToTxn, EndTxn) but writes
// no transaction markers and answers every Fetch with LastStableOffset = the high
// watermark and no aborted transactions (rdkafka_mock_handlers.c). A read_committed
// consumer of the mock therefore also sees the events of aborted transactions. These tests
// read the topic read_committed and read_uncommitted with kcat (to show the mock returns
// the same), and check what holds on any broker: the events of the runs that committed
// (the re-run's offsets from its run record, or all of them when the re-run recovered
// from a committed receipt) hold every source row exactly once, and a run killed after its
// commit is recovered from its receipt in __dpone_receipts instead of producing again.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <optional>
#include <random>
#include <thread>

#include <fmt/format.h>

#include "harness.hpp"
#include "kafka_support.hpp"

namespace {

using namespace e2e;
using namespace e2e::kafka;
using json = nlohmann::json;

constexpr int kRows = 400;

void source_db(const fs::path& dir) {
  shell(fmt::format(
      "sqlite3 '{}' \"CREATE TABLE ev (id INTEGER PRIMARY KEY, v TEXT); WITH RECURSIVE c(i) AS "
      "(SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < {}) INSERT INTO ev SELECT i, 'v' || i "
      "FROM c;\"",
      (dir / "src.db").string(), kRows));
}

void eos_manifest(const fs::path& dir, const std::string& topic) {
  write_file(dir / "manifest.yaml", fmt::format(R"(kind: dpone.batch.v1
streams:
  - name: eos_{}
    source: {{connector: sqlite, path: src.db, table: ev, cursor: id}}
    sink:
      connector: kafka
      bootstrap_servers: "{}"
      topic: {}
      strategy: {{mode: append, unique_key: [id]}}
)",
                                                topic, bootstrap(), topic));
}

// The newest run record of the directory that has one for the stream.
json last_record(const fs::path& dir) {
  Result r = run_dpone(dir, {"run-report", "--last", "-m", "manifest.yaml", "--format", "json"});
  EXPECT_EQ(r.exit_code, 0) << r.all();
  return json::parse(r.out, nullptr, false);
}

// The keys of the committed events: the re-run's own offsets (by partition, from its run
// record) when it produced, else every event (the killed run committed the window).
std::map<std::string, int> committed_ids(const std::vector<Event>& events, const json& stream) {
  std::map<std::string, int> ids;
  json offsets = stream.value("stage_details", json::object()).value("offsets", json::object());
  const bool produced = stream["rows"]["staged"].get<int64_t>() > 0;
  for (const auto& e : events) {
    bool committed = !produced;
    if (produced && offsets.contains(std::to_string(e.partition))) {
      const json& r = offsets[std::to_string(e.partition)];
      committed = e.offset >= r[0].get<long>() && e.offset <= r[1].get<long>();
    }
    if (committed) ++ids[e.key];
  }
  return ids;
}

// Re-runs after a crash (the dead run's lease is bypassed instead of waited out: its TTL is
// the runtime's business, not the sink's) and checks the outcome. `recovers`: the killed
// run had committed its transaction, so the re-run must recover from its receipt and
// produce nothing. Returns the re-run's stream record.
json rerun_and_check(const Scratch& s, const std::string& topic, const std::string& what,
                     std::optional<bool> recovers) {
  Result rerun = run_dpone(s.dir(), {"run", "manifest.yaml"}, {{"DPONE_TEST_BYPASS_LEASE", "1"}});
  EXPECT_EQ(rerun.exit_code, 0) << what << ":\n" << rerun.all();
  json rec = last_record(s.dir());
  if (!rec.is_object()) return json();
  json stream = rec["streams"][0];
  if (recovers) {
    EXPECT_EQ(stream.contains("recovery"), *recovers) << what << ": " << stream.dump();
    EXPECT_EQ(stream["rows"]["staged"].get<int64_t>(), *recovers ? 0 : kRows) << what;
  }
  auto committed = committed_ids(kcat_consume(topic, "read_committed"), stream);
  EXPECT_EQ(committed.size(), static_cast<size_t>(kRows)) << what;
  for (const auto& [k, n] : committed) EXPECT_EQ(n, 1) << what << ": key " << k;
  // Exactly one committed receipt for the window: the killed run's or the re-run's.
  int receipts = 0;
  for (const auto& e : kcat_consume("__dpone_receipts", "read_committed"))
    if (json::parse(e.value, nullptr, false).value("topic", "") == topic) ++receipts;
  EXPECT_EQ(receipts, 1) << what;
  // A further run has nothing new and sends nothing.
  Result again = run_dpone(s.dir(), {"run", "manifest.yaml"}, {{"DPONE_TEST_BYPASS_LEASE", "1"}});
  EXPECT_EQ(again.exit_code, 0) << what << ":\n" << again.all();
  EXPECT_EQ(last_record(s.dir())["streams"][0]["rows"]["staged"], 0) << what;
  return stream;
}

// Points after which the killed run's transaction is committed (its receipt readable).
bool committed_at(const std::string& point) {
  return point == "after_promote" || point == "before_state_commit" ||
         point == "after_state_commit" || point == "before_run_record";
}

class KafkaExactlyOnceKill : public ::testing::TestWithParam<std::string> {};

TEST_P(KafkaExactlyOnceKill, RerunCommitsEveryRowOnce) {
  REQUIRE_KAFKA();
  const std::string point = GetParam();
  Scratch s;
  const std::string topic = new_topic(3);
  source_db(s.dir());
  eos_manifest(s.dir(), topic);
  Result crash = run_dpone(s.dir(), {"run", "manifest.yaml", "--batch-rows", "50"},
                           {{"DPONE_FAILPOINTS", point + "=kill"}});
  ASSERT_EQ(crash.signal, SIGKILL) << "not killed at " << point << ":\n" << crash.all();
  // after_state_commit / before_run_record: the state moved too, so nothing is left to do.
  const bool state_done = point == "after_state_commit" || point == "before_run_record";
  // inside_promote: the receipt is produced but not committed; a broker hides it (the
  // re-run produces the window), the mock shows it (the re-run recovers): either way the
  // committed events hold each row once.
  const bool either = state_done || point == "inside_promote";
  json stream = rerun_and_check(s, topic, "killed at " + point,
                                either ? std::optional<bool>() : committed_at(point));
  if (state_done) {
    EXPECT_EQ(stream["rows"]["staged"], 0);
  }
  // The killed run's events stay in the log when it had delivered them (every report is
  // back from after_stage on) and not committed: marked aborted on a broker, which
  // read_committed consumers skip.
  if (point == "after_stage" || point == "after_gates" || point == "before_promote") {
    EXPECT_GT(kcat_consume(topic, "read_uncommitted").size(), static_cast<size_t>(kRows));
  }
}

INSTANTIATE_TEST_SUITE_P(AllFailpoints, KafkaExactlyOnceKill,
                         ::testing::ValuesIn(failpoint_names()),
                         [](const auto& info) { return info.param; });

// Starts dpone without waiting for it (its output discarded).
pid_t spawn_dpone(const fs::path& cwd, const std::vector<std::string>& args,
                  const std::map<std::string, std::string>& env = {}) {
  pid_t pid = fork();
  if (pid == 0) {
    for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
    if (chdir(cwd.c_str()) != 0) _exit(127);
    if (!freopen("/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr)) _exit(127);
    std::vector<std::string> copy = args;
    std::string bin = DPONE_BIN;
    std::vector<char*> argv{bin.data()};
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(bin.c_str(), argv.data());
    _exit(127);
  }
  return pid;
}

// 30 SIGKILLs at seeded random moments of a run, each followed by a re-run.
TEST(KafkaExactlyOnce, RandomKillsThenRerunCommitEveryRowOnce) {
  REQUIRE_KAFKA();
  for (unsigned seed = 1; seed <= 30; ++seed) {
    Scratch s;
    const std::string topic = new_topic(3);
    source_db(s.dir());
    eos_manifest(s.dir(), topic);
    std::mt19937 random(seed);
    const int delay_ms = std::uniform_int_distribution<int>(0, 250)(random);
    pid_t pid = spawn_dpone(s.dir(), {"run", "manifest.yaml", "--batch-rows", "20"});
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    rerun_and_check(s, topic, fmt::format("seed {} killed after {} ms", seed, delay_ms),
                    std::nullopt);
  }
}

// SIGINT while producing: the run stops, its transaction is aborted, state does not move;
// the re-run commits every row once.
TEST(KafkaExactlyOnce, InterruptDuringProduceThenRerun) {
  REQUIRE_KAFKA();
  Scratch s;
  const std::string topic = new_topic(3);
  source_db(s.dir());
  eos_manifest(s.dir(), topic);
  const fs::path marker = s / "at_stage";
  pid_t pid = spawn_dpone(s.dir(), {"run", "manifest.yaml", "--batch-rows", "20"},
                          {{"DPONE_FAILPOINTS", "during_stage=pause:3000"},
                           {"DPONE_FAILPOINT_MARKER", marker.string()}});
  for (int i = 0; i < 200 && !fs::exists(marker); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  ASSERT_TRUE(fs::exists(marker)) << "the run never reached during_stage";
  kill(pid, SIGINT);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_NE(WEXITSTATUS(status), 0);
  json interrupted = last_record(s.dir());
  ASSERT_TRUE(interrupted.is_object());
  EXPECT_EQ(interrupted["streams"][0]["status"], "interrupted") << interrupted.dump();
  EXPECT_FALSE(interrupted["streams"][0].contains("state_after"));
  // Nothing of the interrupted run was committed: no receipt for this topic.
  for (const auto& e : kcat_consume("__dpone_receipts", "read_committed"))
    EXPECT_NE(json::parse(e.value, nullptr, false).value("topic", ""), topic) << e.value;
  rerun_and_check(s, topic, "interrupted during stage", false);
}

// delivery: at_least_once keeps the idempotent producer without transactions and its
// receipt in a local file.
TEST(KafkaExactlyOnce, AtLeastOnceOptionUsesNoTransaction) {
  REQUIRE_KAFKA();
  Scratch s;
  const std::string topic = new_topic(2);
  source_db(s.dir());
  eos_manifest(s.dir(), topic);
  write_file(s / "manifest.yaml",
             read_file(s / "manifest.yaml") + "      delivery: at_least_once\n");
  Result r = run_dpone(s.dir(), {"run", "manifest.yaml"});
  ASSERT_EQ(r.exit_code, 0) << r.all();
  EXPECT_EQ(kcat_consume(topic).size(), static_cast<size_t>(kRows));
  EXPECT_TRUE(fs::exists(s / ".dpone" / "kafka-receipts" / ("eos_" + topic + ".json")));
  for (const auto& e : kcat_consume("__dpone_receipts", "read_committed"))
    EXPECT_NE(json::parse(e.value, nullptr, false).value("topic", ""), topic);
}

}  // namespace
