// End-to-end tests of the kafka connector against the Kafka test service started by
// scripts/services.sh (dpone_kafka_mock: librdkafka's mock cluster, DPONE_TEST_KAFKA_BOOTSTRAP
// and its control FIFO DPONE_TEST_KAFKA_CONTROL). kcat is the independent client that
// produces the source messages and counts what the sink delivered.
#include <csignal>
#include <cstdio>
#include <random>
#include <set>
#include <thread>

#include <fmt/format.h>

#include "core/util/failpoint.hpp"
#include "harness.hpp"
#include "kafka_support.hpp"

namespace {

using namespace e2e;
using namespace e2e::kafka;
using json = nlohmann::json;

// Produces "key|value" lines with kcat to explicit partitions (round robin over `partitions`).
void kcat_produce(const std::string& topic, int partitions, int from, int to) {
  for (int p = 0; p < partitions; ++p) {
    std::string lines;
    for (int i = from; i <= to; ++i)
      if (i % partitions == p)
        lines +=
            fmt::format("k{}|{{\"id\":{},\"name\":\"item {}\",\"amount\":{}.5}}\n", i, i, i, i);
    if (!lines.empty()) kcat_produce_lines(topic, p, lines);
  }
}

// Next offset per partition (= the high watermark, no transactions here), from kcat.
json high_watermarks(const std::string& topic, int partitions) {
  json hw = json::object();
  for (int p = 0; p < partitions; ++p) hw[std::to_string(p)] = 0;
  for (const auto& e : kcat_consume(topic)) {
    long next = e.offset + 1;
    if (next > hw[std::to_string(e.partition)].get<long>()) hw[std::to_string(e.partition)] = next;
  }
  return json{{topic, hw}};
}

// One integer from the SQLite target (through libsqlite3, not a CLI).
long query(const fs::path& db, const std::string& sql) {
  sqlite3* h = nullptr;
  long out = -1;
  if (sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(h, sql.c_str(), -1, &st, nullptr) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
      out = static_cast<long>(sqlite3_column_int64(st, 0));
    else
      ADD_FAILURE() << sql << ": " << sqlite3_errmsg(h);
    sqlite3_finalize(st);
  } else {
    ADD_FAILURE() << "cannot open " << db;
  }
  sqlite3_close(h);
  return out;
}

void source_manifest(const fs::path& dir, const std::string& topic) {
  write_file(dir / "manifest.yaml",
             "kind: dpone.batch.v1\n"
             "streams:\n"
             "  - name: events\n"
             "    source:\n"
             "      connector: kafka\n"
             "      bootstrap_servers: \"" +
                 bootstrap() +
                 "\"\n"
                 "      topic: " +
                 topic +
                 "\n"
                 "      columns: {id: int64, name: string, amount: \"decimal(10,2)\"}\n"
                 "    sink:\n"
                 "      connector: sqlite\n"
                 "      path: out.db\n"
                 "      table: events\n"
                 "      strategy: {mode: merge, unique_key: [id]}\n");
}

json stored_position(const fs::path& dir) {
  json st = state_of(dir, "manifest.yaml", "events");
  return st.value("position", json());
}

// Acceptance 1: three runs with produce in between read exactly the new messages once;
// the stored offsets are the consumed high watermarks.
TEST(KafkaSource, ThreeRunsReadExactlyTheNewMessagesOnce) {
  REQUIRE_KAFKA();
  Scratch s;
  std::string topic = new_topic(3);
  source_manifest(s.dir(), topic);
  kcat_produce(topic, 3, 1, 30);
  Result r1 = run_dpone(s.dir(), {"run", "manifest.yaml"});
  ASSERT_EQ(r1.exit_code, 0) << r1.all();
  EXPECT_EQ(query(s / "out.db", "SELECT count(*) FROM events"), 30);
  EXPECT_EQ(stored_position(s.dir()), high_watermarks(topic, 3));

  kcat_produce(topic, 3, 31, 50);
  Result r2 = run_dpone(s.dir(), {"run", "manifest.yaml"});
  ASSERT_EQ(r2.exit_code, 0) << r2.all();
  Result report =
      run_dpone(s.dir(), {"run-report", "--last", "-m", "manifest.yaml", "--format", "json"});
  json rec2 = json::parse(report.out, nullptr, false);
  ASSERT_FALSE(rec2.is_discarded()) << report.all();
  EXPECT_EQ(rec2["streams"][0]["rows"]["extracted"], 20);
  EXPECT_EQ(query(s / "out.db", "SELECT count(*) FROM events"), 50);
  EXPECT_EQ(query(s / "out.db", "SELECT count(DISTINCT _offset || _partition) FROM events"), 50);
  EXPECT_EQ(query(s / "out.db", "SELECT sum(id) FROM events"), 50 * 51 / 2);
  EXPECT_EQ(stored_position(s.dir()), high_watermarks(topic, 3));

  Result r3 = run_dpone(s.dir(), {"run", "manifest.yaml"});
  ASSERT_EQ(r3.exit_code, 0) << r3.all();
  EXPECT_NE(r3.all().find("no new data"), std::string::npos) << r3.all();
  EXPECT_EQ(query(s / "out.db", "SELECT count(*) FROM events"), 50);
  EXPECT_EQ(stored_position(s.dir()), high_watermarks(topic, 3));
}

// Acceptance 1: a run killed at each failpoint and re-run loses no message and leaves no
// duplicate (keyed merge sink), and the offsets end at the high watermarks.
class KafkaSourceKill : public ::testing::TestWithParam<std::string> {};

TEST_P(KafkaSourceKill, RerunLosesNothingAndDuplicatesNothing) {
  REQUIRE_KAFKA();
  const std::string point = GetParam();
  Scratch s;
  std::string topic = new_topic(3);
  source_manifest(s.dir(), topic);
  kcat_produce(topic, 3, 1, 40);
  ASSERT_EQ(run_dpone(s.dir(), {"run", "manifest.yaml"}).exit_code, 0);
  kcat_produce(topic, 3, 41, 70);
  Result crash = run_dpone(s.dir(), {"run", "manifest.yaml", "--batch-rows", "10"},
                           {{"DPONE_FAILPOINTS", point + "=kill"}});
  ASSERT_EQ(crash.signal, SIGKILL) << "not killed at " << point << ":\n" << crash.all();
  kcat_produce(topic, 3, 71, 75);  // produced while the run was down
  Result rerun = run_dpone(s.dir(), {"run", "manifest.yaml"});
  ASSERT_EQ(rerun.exit_code, 0) << rerun.all();
  Result again = run_dpone(s.dir(), {"run", "manifest.yaml"});
  ASSERT_EQ(again.exit_code, 0) << again.all();
  EXPECT_EQ(query(s / "out.db", "SELECT count(*) FROM events"), 75);
  EXPECT_EQ(query(s / "out.db", "SELECT count(DISTINCT id) FROM events"), 75);
  EXPECT_EQ(query(s / "out.db", "SELECT sum(id) FROM events"), 75 * 76 / 2);
  EXPECT_EQ(stored_position(s.dir()), high_watermarks(topic, 3));
}

INSTANTIATE_TEST_SUITE_P(AllFailpoints, KafkaSourceKill, ::testing::ValuesIn(failpoint_names()),
                         [](const auto& info) { return info.param; });

TEST(KafkaMurmur2, TestCopyMatchesJavaVectors) {
  EXPECT_EQ(java_murmur2("21"), -973932308);
  EXPECT_EQ(java_murmur2("foobar"), -790332482);
  EXPECT_EQ(java_murmur2("a-little-bit-long-string"), -985981536);
  EXPECT_EQ(java_murmur2("abc"), 479470107);
}

void sink_manifest(const fs::path& dir, const std::string& topic) {
  write_file(dir / "manifest.yaml",
             "kind: dpone.batch.v1\n"
             "streams:\n"
             "  - name: to_kafka\n"
             "    source:\n"
             "      connector: files\n"
             "      path: landing/*.csv\n"
             "      incremental: new_files\n"
             "      columns: {id: int64, name: string, amount: \"decimal(10,2)\"}\n"
             "    sink:\n"
             "      connector: kafka\n"
             "      bootstrap_servers: \"" +
                 bootstrap() +
                 "\"\n"
                 "      topic: " +
                 topic +
                 "\n"
                 "      strategy: {mode: append, unique_key: [id]}\n"
                 "      headers: [run_id]\n");
}

void landing(const fs::path& dir, const std::string& file, int from, int to) {
  std::string csv = "id,name,amount\n";
  for (int i = from; i <= to; ++i) csv += fmt::format("{},\"item, {}\",{}.25\n", i, i, i);
  write_file(dir / "landing" / file, csv);
}

// Acceptance 2 and 3: every row arrives exactly once per successful run (counted with
// kcat), in the partition Java's murmur2 partitioner picks for its key.
TEST(KafkaSink, EveryRowArrivesOncePerRunInTheJavaPartition) {
  REQUIRE_KAFKA();
  Scratch s;
  const int partitions = 5;
  std::string topic = new_topic(partitions);
  sink_manifest(s.dir(), topic);
  landing(s.dir(), "day1.csv", 1, 500);
  Result r1 = run_dpone(s.dir(), {"run", "manifest.yaml"});
  ASSERT_EQ(r1.exit_code, 0) << r1.all();
  landing(s.dir(), "day2.csv", 501, 800);
  Result r2 = run_dpone(s.dir(), {"run", "manifest.yaml"});
  ASSERT_EQ(r2.exit_code, 0) << r2.all();
  Result r3 = run_dpone(s.dir(), {"run", "manifest.yaml"});  // nothing new: nothing sent
  ASSERT_EQ(r3.exit_code, 0) << r3.all();

  auto events = kcat_consume(topic);
  ASSERT_EQ(events.size(), 800u);
  std::map<std::string, int> per_key;
  std::set<std::string> run_ids;
  // run id -> partition -> the first and last offset of the events carrying that run id
  std::map<std::string, std::map<int, std::pair<long, long>>> ranges;
  for (const auto& e : events) {
    ++per_key[e.key];
    int expected = java_partition(e.key, partitions);
    EXPECT_EQ(e.partition, expected) << "key " << e.key;
    json v = json::parse(e.value);
    EXPECT_EQ(std::to_string(v["id"].get<int64_t>()), e.key);
    EXPECT_EQ(v["name"], "item, " + e.key);
    EXPECT_EQ(v["amount"].dump(), e.key + ".25");
    auto at = e.headers.find("dpone-run-id=");
    ASSERT_NE(at, std::string::npos) << e.headers;
    at += std::string("dpone-run-id=").size();
    std::string run_id = e.headers.substr(at, e.headers.find(',', at) - at);
    run_ids.insert(run_id);
    auto [it, fresh] = ranges[run_id].try_emplace(e.partition, e.offset, e.offset);
    if (!fresh) {
      it->second.first = std::min(it->second.first, e.offset);
      it->second.second = std::max(it->second.second, e.offset);
    }
  }
  EXPECT_EQ(per_key.size(), 800u);
  for (const auto& [k, n] : per_key) EXPECT_EQ(n, 1) << "key " << k;
  EXPECT_EQ(run_ids.size(), 2u);  // two runs delivered, the third sent nothing
  // Each run's record lists the offsets it delivered, by partition: exactly the first and
  // last offset of the events carrying its run id (none for the third run).
  int records = 0;
  for (const auto& dir : fs::directory_iterator(s / ".dpone" / "runs")) {
    json rec = json::parse(read_file(dir.path() / "run.json"));
    json offsets =
        rec["streams"][0].value("stage_details", json::object()).value("offsets", json::object());
    json expected = json::object();
    for (const auto& [p, r] : ranges[dir.path().filename().string()])
      expected[std::to_string(p)] = {r.first, r.second};
    EXPECT_EQ(offsets, expected) << dir.path();
    ++records;
  }
  EXPECT_EQ(records, 3);
}

// Acceptance 2: produce errors injected by the mock cluster fail the run with the count of
// undelivered events; state does not advance; the re-run delivers everything.
TEST(KafkaSink, InjectedProduceErrorsFailTheRunAndTheRerunDelivers) {
  REQUIRE_KAFKA();
  Scratch s;
  std::string topic = new_topic(2);
  sink_manifest(s.dir(), topic);
  landing(s.dir(), "day1.csv", 1, 300);
  // TOPIC_AUTHORIZATION_FAILED (29) is not retriable: each failed Produce request fails
  // its events for good.
  std::string errors = "errors 0";
  for (int i = 0; i < 40; ++i) errors += " 29";
  control(errors);
  Result failed = run_dpone(s.dir(), {"run", "manifest.yaml"});
  control("clear 0");
  EXPECT_NE(failed.exit_code, 0) << failed.all();
  EXPECT_NE(failed.all().find("events were not delivered"), std::string::npos) << failed.all();
  json st = state_of(s.dir(), "manifest.yaml", "to_kafka");
  EXPECT_TRUE(st.value("position", json()).is_null()) << st.dump();
  size_t delivered_before = kcat_consume(topic).size();
  EXPECT_LT(delivered_before, 300u);

  Result rerun = run_dpone(s.dir(), {"run", "manifest.yaml"});
  ASSERT_EQ(rerun.exit_code, 0) << rerun.all();
  auto events = kcat_consume(topic);
  std::set<std::string> keys;
  for (const auto& e : events) keys.insert(e.key);
  EXPECT_EQ(keys.size(), 300u);  // everything arrived
  // At-least-once: only what the failed run had delivered arrives twice.
  EXPECT_EQ(events.size(), 300u + delivered_before);
  EXPECT_FALSE(state_of(s.dir(), "manifest.yaml", "to_kafka").value("position", json()).is_null());
}

// delivery: at_least_once: a sink run killed after its promotion (receipt written) and
// before its state commit is recovered from the receipt: nothing is sent twice. Killed
// while delivering, the re-run sends the window again: everything arrives, duplicates only
// of what was delivered. (exactly_once, the default: kafka_eos_test.cpp.) The re-run
// bypasses the dead run's lease instead of waiting out its TTL.
TEST(KafkaSink, KilledRunsRecoverFromTheReceiptOrResendAtLeastOnce) {
  REQUIRE_KAFKA();
  for (const std::string point : {"after_promote", "before_state_commit", "during_stage"}) {
    SCOPED_TRACE(point);
    Scratch s;
    std::string topic = new_topic(3);
    sink_manifest(s.dir(), topic);
    write_file(s / "manifest.yaml",
               read_file(s / "manifest.yaml") + "      delivery: at_least_once\n");
    landing(s.dir(), "day1.csv", 1, 200);
    Result crash = run_dpone(s.dir(), {"run", "manifest.yaml", "--batch-rows", "50"},
                             {{"DPONE_FAILPOINTS", point + "=kill"}});
    ASSERT_EQ(crash.signal, SIGKILL) << crash.all();
    size_t before = kcat_consume(topic).size();
    Result rerun = run_dpone(s.dir(), {"run", "manifest.yaml"}, {{"DPONE_TEST_BYPASS_LEASE", "1"}});
    ASSERT_EQ(rerun.exit_code, 0) << rerun.all();
    auto events = kcat_consume(topic);
    std::set<std::string> keys;
    for (const auto& e : events) keys.insert(e.key);
    EXPECT_EQ(keys.size(), 200u);
    if (point == "during_stage") {
      EXPECT_EQ(events.size(), 200u + before);
    } else {
      EXPECT_EQ(before, 200u);
      EXPECT_EQ(events.size(), 200u);  // recovered, not re-sent
      EXPECT_NE(rerun.all().find("recovered"), std::string::npos) << rerun.all();
    }
  }
}

// The run record's artifact decision of the last run of `manifest`.
json last_artifact(const fs::path& dir, const std::string& manifest) {
  Result r = run_dpone(dir, {"run-report", "--last", "-m", manifest, "--format", "json"});
  if (r.exit_code != 0) return json();
  json rec = json::parse(r.out, nullptr, false);
  if (rec.is_discarded() || !rec.contains("streams")) return json();
  return rec["streams"][0].value("artifact", json());
}

void jsonl_manifest(const fs::path& dir, const std::string& topic, const std::string& extra) {
  write_file(dir / "manifest.yaml",
             "kind: dpone.batch.v1\n"
             "streams:\n"
             "  - name: lines\n"
             "    source: {connector: files, path: \"in/*.jsonl\", incremental: new_files" +
                 extra +
                 "}\n"
                 "    sink:\n"
                 "      connector: kafka\n"
                 "      bootstrap_servers: \"" +
                 bootstrap() + "\"\n      topic: " + topic +
                 "\n      strategy: {mode: append, unique_key: [id]}\n");
}

// Issue 6, acceptance 4's design: JSON lines without declared columns pass through as
// bytes: each line is its event's value byte for byte (blank lines skipped, CRLF and
// surrounding blanks trimmed), the key is read from the line, partitioned like Java.
TEST(KafkaSink, JsonLinesPassThroughByteForByte) {
  REQUIRE_KAFKA();
  Scratch s;
  const int partitions = 3;
  std::string topic = new_topic(partitions);
  jsonl_manifest(s.dir(), topic, "");
  std::vector<std::string> lines;
  std::string a = "\xEF\xBB\xBF", b;
  for (int i = 1; i <= 400; ++i) {
    std::string line = fmt::format(
        "{{\"id\":{},\"name\":\"caf\u00e9 \\\"{}\\\"\",\"amount\":{}.50, "
        "\"tags\":[1,{{\"x\":null}}]}}",
        i, i, i);
    lines.push_back(line);
    std::string& f = i <= 200 ? a : b;
    f += line + (i % 7 == 0 ? "\r\n" : "\n");
    if (i % 50 == 0) f += "  \n\n";
  }
  write_file(s / "in" / "a.jsonl", a);
  write_file(s / "in" / "b.jsonl", b.substr(0, b.size() - 1));  // no final line break
  Result r = run_dpone(s.dir(), {"run", "manifest.yaml"});
  ASSERT_EQ(r.exit_code, 0) << r.all();
  EXPECT_EQ(last_artifact(s.dir(), "manifest.yaml").value("sink_receives", ""),
            "streaming_rows/jsonl");
  auto events = kcat_consume(topic);
  ASSERT_EQ(events.size(), 400u);
  std::set<std::string> values;
  for (const auto& e : events) {
    values.insert(e.value);
    json v = json::parse(e.value);
    EXPECT_EQ(e.key, std::to_string(v["id"].get<int>()));
    EXPECT_EQ(e.partition, java_partition(e.key, partitions));
    EXPECT_EQ(e.headers, "") << "no headers by default";
  }
  EXPECT_EQ(values, std::set<std::string>(lines.begin(), lines.end()));

  // Declared columns convert every value: the rows go as record batches, re-encoded.
  Scratch typed;
  std::string topic2 = new_topic(1);
  jsonl_manifest(typed.dir(), topic2,
                 ", columns: {id: int64, name: string, amount: \"decimal(10,2)\", tags: json}");
  write_file(typed / "in" / "a.jsonl", lines[0] + "\n");
  Result r2 = run_dpone(typed.dir(), {"run", "manifest.yaml"});
  ASSERT_EQ(r2.exit_code, 0) << r2.all();
  EXPECT_EQ(last_artifact(typed.dir(), "manifest.yaml").value("sink_receives", ""),
            "streaming_rows/record_batch");
  auto typed_events = kcat_consume(topic2);
  ASSERT_EQ(typed_events.size(), 1u);
  EXPECT_EQ(json::parse(typed_events[0].value)["amount"].dump(), "1.5");  // a JSON number
}

// A line that is not one JSON object fails the run with INPUT_MALFORMED at file:line,
// says how many events were delivered before, and state does not advance; a line
// without its key fails with KEY_NULL.
TEST(KafkaSink, MalformedJsonLineFailsTheRunAtFileAndLine) {
  REQUIRE_KAFKA();
  Scratch s;
  std::string topic = new_topic(2);
  std::string good;
  for (int i = 1; i <= 30; ++i) good += fmt::format("{{\"id\":{}}}\n", i);
  write_file(s / "in" / "a.jsonl", good + "{\"id\": 31,}\n");
  // Within the inference sample (infer_rows), discovery finds the line before anything is
  // produced.
  jsonl_manifest(s.dir(), topic, "");
  Result early = run_dpone(s.dir(), {"run", "manifest.yaml"});
  EXPECT_NE(early.all().find("INPUT_MALFORMED"), std::string::npos) << early.all();
  EXPECT_NE(early.all().find("a.jsonl:31"), std::string::npos) << early.all();
  EXPECT_TRUE(kcat_consume(topic).empty());
  // Past it, the pass-through finds it while producing.
  jsonl_manifest(s.dir(), topic, ", infer_rows: 10");
  Result r = run_dpone(s.dir(), {"run", "manifest.yaml"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.all().find("INPUT_MALFORMED"), std::string::npos) << r.all();
  EXPECT_NE(r.all().find("a.jsonl:31"), std::string::npos) << r.all();
  EXPECT_NE(r.all().find("were delivered to topic"), std::string::npos) << r.all();
  EXPECT_TRUE(state_of(s.dir(), "manifest.yaml", "lines").value("position", json()).is_null());
  for (const std::string bad : {"[1,2]", "{\"id\":1} {\"id\":2}", "\"text\""}) {
    write_file(s / "in" / "a.jsonl", good + bad + "\n");
    Result again = run_dpone(s.dir(), {"run", "manifest.yaml"});
    EXPECT_NE(again.all().find("INPUT_MALFORMED"), std::string::npos) << bad << ": " << again.all();
    EXPECT_NE(again.all().find("a.jsonl:31"), std::string::npos) << bad << ": " << again.all();
  }
  write_file(s / "in" / "a.jsonl", good + "{\"name\":\"no id\"}\n");
  Result nokey = run_dpone(s.dir(), {"run", "manifest.yaml"});
  EXPECT_NE(nokey.all().find("KEY_NULL"), std::string::npos) << nokey.all();
  EXPECT_TRUE(state_of(s.dir(), "manifest.yaml", "lines").value("position", json()).is_null());
  write_file(s / "in" / "a.jsonl", good);
  Result ok = run_dpone(s.dir(), {"run", "manifest.yaml"});
  ASSERT_EQ(ok.exit_code, 0) << ok.all();
  EXPECT_FALSE(state_of(s.dir(), "manifest.yaml", "lines").value("position", json()).is_null());
}

// `dpone connectors certify kafka` passes with the append-only (log) profile.
TEST(KafkaSink, CertifyPassesWithTheLogProfile) {
  REQUIRE_KAFKA();
  Scratch s;
  write_file(s / "connections.yaml",
             "connections:\n  cert_kafka:\n    type: kafka\n    bootstrap_servers: \"" +
                 bootstrap() + "\"\n");
  Result r = run_dpone(s.dir(), {"connectors", "certify", "kafka", "--connection", "cert_kafka"});
  json cert =
      json::parse(read_file(s / "certification" / "kafka" / "certification.json"), nullptr, false);
  ASSERT_EQ(r.exit_code, 0) << r.all() << (cert.is_discarded() ? "" : cert.dump(2));
  EXPECT_EQ(cert["counts"]["fail"], 0) << cert.dump(2);
  EXPECT_GE(cert["counts"]["pass"], 7) << cert.dump(2);
  for (const auto& sc : cert["scenarios"]) {
    if (sc["scenario"] == "failure_and_rerun" || sc["scenario"] == "round_trip" ||
        sc["scenario"] == "incremental") {
      EXPECT_EQ(sc["status"], "PASS") << sc.dump();
    }
  }
}

}  // namespace
