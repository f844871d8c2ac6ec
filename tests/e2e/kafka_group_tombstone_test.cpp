// End-to-end tests of the kafka connector's consumer-group offsets (source option
// `consumer_group`), tombstones (sink option `tombstone_column`, and NULL values with
// value_format string) and the sink's csv / string value formats, against the Kafka test
// service (scripts/services.sh: dpone_kafka_mock). Independent readers: kcat (-Z prints a
// null value as NULL) and the mock's `committed GROUP TOPIC N` control command (a client
// of the mock program reads the group's offsets with rd_kafka_committed).
#include <csignal>
#include <cstdio>
#include <random>
#include <set>
#include <thread>

#include <fmt/format.h>

#include "kafka_support.hpp"
#include "pg_support.hpp"

namespace {

using namespace e2e;
using namespace e2e::kafka;
using json = nlohmann::json;

// The offsets `group` committed for `topic`, in dpone's position form
// {"topic": {"0": next offset, ...}}; partitions without a commit are left out.
json group_position(const std::string& group, const std::string& topic, int partitions) {
  json got = json::parse(control(fmt::format("committed {} {} {}", group, topic, partitions)),
                         nullptr, false);
  json parts = json::object();
  if (!got.is_object()) {
    ADD_FAILURE() << "no committed offsets for " << group;
    return json();
  }
  for (const auto& [p, off] : got.items())
    if (off.get<int64_t>() >= 0) parts[p] = off;
  return parts.empty() ? json::object() : json{{topic, parts}};
}

struct Event {
  int partition;
  std::string key;
  std::optional<std::string> value;  // nullopt: a null value (tombstone)
};

// Every message of `topic` read by kcat; the value is the payload's raw bytes, framed by
// its length (%S) so values with newlines survive, NULL for a null value (-Z).
std::vector<Event> kcat_events(const std::string& topic) {
  std::string out = shell(
      fmt::format("kcat -C -Z -b '{}' -t {} -o beginning -e -q -f '%p\\t%k\\t%S\\t%s\\n' 2>&1",
                  bootstrap(), topic));
  std::vector<Event> events;
  size_t at = 0;
  while (at < out.size()) {
    size_t t1 = out.find('\t', at), t2 = out.find('\t', t1 + 1), t3 = out.find('\t', t2 + 1);
    if (t1 == std::string::npos || t2 == std::string::npos || t3 == std::string::npos) {
      ADD_FAILURE() << "unexpected kcat output: " << out.substr(at);
      break;
    }
    Event e{std::stoi(out.substr(at, t1 - at)), out.substr(t1 + 1, t2 - t1 - 1), std::nullopt};
    std::string size = out.substr(t2 + 1, t3 - t2 - 1);
    size_t len = size == "-1" ? 4 : std::stoul(size);  // kcat -Z prints NULL for null
    std::string value = out.substr(t3 + 1, len);
    if (size != "-1") e.value = value;
    at = t3 + 1 + len + 1;
    events.push_back(std::move(e));
  }
  return events;
}

json last_stream_record(const fs::path& dir) {
  Result r = run_dpone(dir, {"run-report", "--last", "-m", "manifest.yaml", "--format", "json"});
  json rec = json::parse(r.out, nullptr, false);
  if (rec.is_discarded() || !rec.contains("streams")) return json();
  return rec["streams"][0];
}

void group_manifest(const fs::path& dir, const std::string& topic, const std::string& group) {
  write_file(
      dir / "manifest.yaml",
      fmt::format("kind: dpone.batch.v1\n"
                  "streams:\n"
                  "  - name: events\n"
                  "    source:\n"
                  "      connector: kafka\n"
                  "      bootstrap_servers: \"{}\"\n"
                  "      topic: {}\n"
                  "      value_format: string\n"
                  "      consumer_group: {}\n"
                  "    sink:\n"
                  "      connector: sqlite\n"
                  "      path: out.db\n"
                  "      table: events\n"
                  "      strategy: {{mode: merge, unique_key: [_topic, _partition, _offset]}}\n",
                  bootstrap(), topic, group));
}

json stored_position(const fs::path& dir) {
  return state_of(dir, "manifest.yaml", "events").value("position", json());
}

void produce_round_robin(const std::string& topic, int partitions, int from, int to) {
  for (int p = 0; p < partitions; ++p) {
    std::string lines;
    for (int i = from; i <= to; ++i)
      if (i % partitions == p) lines += fmt::format("k{}|v{}\n", i, i);
    if (!lines.empty()) kcat_produce_lines(topic, p, lines);
  }
}

// consumer_group: after each of three runs (produce in between) the group's committed
// offsets equal `dpone state show`'s position; a run killed before its state commit leaves
// the group where it was; the re-run (recovering from the receipt) moves it on.
TEST(KafkaConsumerGroup, OffsetsFollowDponeStateAfterEachRun) {
  REQUIRE_KAFKA();
  Scratch s;
  std::string topic = new_topic(3);
  std::string group = "lag_" + topic;
  group_manifest(s.dir(), topic, group);
  for (int run = 0; run < 3; ++run) {
    SCOPED_TRACE(run);
    produce_round_robin(topic, 3, run * 20 + 1, run * 20 + 20 - run * 5);
    Result r = run_dpone(s.dir(), {"run", "manifest.yaml"});
    ASSERT_EQ(r.exit_code, 0) << r.all();
    json position = stored_position(s.dir());
    ASSERT_TRUE(position.is_object()) << position;
    EXPECT_EQ(group_position(group, topic, 3), position);
    EXPECT_TRUE(last_stream_record(s.dir())["warnings"].empty()) << r.all();
  }
  json before = stored_position(s.dir());
  produce_round_robin(topic, 3, 100, 111);
  Result crash = run_dpone(s.dir(), {"run", "manifest.yaml"},
                           {{"DPONE_FAILPOINTS", "before_state_commit=kill"}});
  ASSERT_EQ(crash.signal, SIGKILL) << crash.all();
  EXPECT_EQ(stored_position(s.dir()), before);
  EXPECT_EQ(group_position(group, topic, 3), before);  // not moved by the killed run
  Result rerun = run_dpone(s.dir(), {"run", "manifest.yaml"});
  ASSERT_EQ(rerun.exit_code, 0) << rerun.all();
  json after = stored_position(s.dir());
  EXPECT_NE(after, before);
  EXPECT_EQ(group_position(group, topic, 3), after);
}

// The same with the state committed inside the sink's promotion transaction (PostgreSQL
// target and state store): the group follows each commit, and a run killed before its
// state commit (which then never happened) leaves the group where it was.
TEST(KafkaConsumerGroup, FollowsStateCommittedInThePromotionTransaction) {
  REQUIRE_KAFKA();
  REQUIRE_PG();
  Scratch s;
  PgSchema dst{"dpone_kgrp_dst_"}, st{"dpone_kgrp_st_"};
  std::string topic = new_topic(2);
  std::string group = "lag_" + topic;
  write_file(
      s / "manifest.yaml",
      fmt::format("kind: dpone.batch.v1\n"
                  "streams:\n"
                  "  - name: events\n"
                  "    source: {{connector: kafka, bootstrap_servers: \"{}\", topic: {}, "
                  "value_format: string, consumer_group: {}}}\n"
                  "    sink: {{connector: postgres, connection: pg, schema: {}, table: events,\n"
                  "           strategy: {{mode: merge, unique_key: [_topic, _partition, "
                  "_offset]}}}}\n"
                  "    state: {{type: postgres, connection: pg, schema: {}}}\n",
                  bootstrap(), topic, group, dst.name(), st.name()));
  auto env = pg_env();
  for (int run = 0; run < 2; ++run) {
    produce_round_robin(topic, 2, run * 10 + 1, run * 10 + 10);
    Result r = run_dpone(s.dir(), {"run", "manifest.yaml"}, env);
    ASSERT_EQ(r.exit_code, 0) << r.all();
    json rec = last_stream_record(s.dir());
    EXPECT_NE(rec.value("state_commit", "").find("in the promotion transaction"), std::string::npos)
        << rec.value("state_commit", "");
    json position = rec["state_after"]["position"];
    EXPECT_EQ(position, json({{topic, {{"0", 5 * (run + 1)}, {"1", 5 * (run + 1)}}}}));
    EXPECT_EQ(group_position(group, topic, 2), position);
  }
  produce_round_robin(topic, 2, 21, 24);
  auto kill_env = env;
  kill_env["DPONE_FAILPOINTS"] = "before_state_commit=kill";
  Result crash = run_dpone(s.dir(), {"run", "manifest.yaml"}, kill_env);
  ASSERT_EQ(crash.signal, SIGKILL) << crash.all();
  // The state committed with the data; the group is only mirrored after that point, which
  // the killed run never reached: one run behind until the next run.
  EXPECT_EQ(group_position(group, topic, 2), json({{topic, {{"0", 10}, {"1", 10}}}}));
  // A re-run without new data commits no state, so the group stays behind (documented);
  // the next run that commits state brings it level again.
  Result again = run_dpone(s.dir(), {"run", "manifest.yaml"}, env);
  ASSERT_EQ(again.exit_code, 0) << again.all();
  EXPECT_EQ(group_position(group, topic, 2), json({{topic, {{"0", 10}, {"1", 10}}}}));
  produce_round_robin(topic, 2, 25, 26);
  Result next = run_dpone(s.dir(), {"run", "manifest.yaml"}, env);
  ASSERT_EQ(next.exit_code, 0) << next.all();
  EXPECT_EQ(group_position(group, topic, 2), json({{topic, {{"0", 13}, {"1", 13}}}}));
  EXPECT_EQ(psql(fmt::format("SELECT count(*) FROM {}.events", dst.name())).substr(0, 2), "26");
}

// A group commit that fails is a warning in the run record; the run and state succeed.
TEST(KafkaConsumerGroup, FailedGroupCommitIsAWarningNotAFailure) {
  REQUIRE_KAFKA();
  Scratch s;
  std::string topic = new_topic(1);
  std::string group = "lag_" + topic;
  group_manifest(s.dir(), topic, group);
  produce_round_robin(topic, 1, 1, 5);
  control("errors 8 30 30 30 30 30 30");  // OffsetCommit: GROUP_AUTHORIZATION_FAILED
  Result r = run_dpone(s.dir(), {"run", "manifest.yaml"});
  control("clear 8");
  ASSERT_EQ(r.exit_code, 0) << r.all();
  EXPECT_EQ(stored_position(s.dir()), json({{topic, {{"0", 5}}}}));
  json rec = last_stream_record(s.dir());
  EXPECT_EQ(rec["status"], "succeeded");
  ASSERT_EQ(rec["warnings"].size(), 1u) << rec["warnings"];
  EXPECT_NE(rec["warnings"][0].get<std::string>().find("consumer group '" + group + "' failed"),
            std::string::npos)
      << rec["warnings"];
  EXPECT_EQ(group_position(group, topic, 1), json::object());
}

void landing_csv(const fs::path& dir, const std::string& file, const std::string& csv) {
  write_file(dir / "landing" / file, csv);
}

std::string files_to_kafka(const std::string& topic, const std::string& columns,
                           const std::string& sink_extra) {
  return fmt::format(
      "kind: dpone.batch.v1\n"
      "streams:\n"
      "  - name: to_kafka\n"
      "    source:\n"
      "      connector: files\n"
      "      path: landing/*.csv\n"
      "      incremental: new_files\n"
      "      columns: {}\n"
      "    sink:\n"
      "      connector: kafka\n"
      "      bootstrap_servers: \"{}\"\n"
      "      topic: {}\n"
      "      headers: []\n"
      "      strategy: {{mode: append, unique_key: [id]}}\n{}",
      columns, bootstrap(), topic, sink_extra);
}

// tombstone_column: rows flagged true arrive as (key, NULL) in their key's partition, the
// flag is not in the other values, and the run record counts them as deleted.
TEST(KafkaTombstones, FlaggedRowsArriveAsNullValuesInTheKeysPartition) {
  REQUIRE_KAFKA();
  Scratch s;
  const int partitions = 4;
  std::string topic = new_topic(partitions);
  write_file(s / "manifest.yaml", files_to_kafka(topic, "{id: int64, name: string, deleted: bool}",
                                                 "      tombstone_column: deleted\n"));
  std::string day1 = "id,name,deleted\n", day2 = "id,name,deleted\n";
  for (int i = 1; i <= 60; ++i) day1 += fmt::format("{},n{},{}\n", i, i, i == 7 ? "" : "false");
  for (int i = 1; i <= 60; i += 3) day2 += fmt::format("{},,true\n", i);
  landing_csv(s.dir(), "day1.csv", day1);
  Result r1 = run_dpone(s.dir(), {"run", "manifest.yaml"});
  ASSERT_EQ(r1.exit_code, 0) << r1.all();
  landing_csv(s.dir(), "day2.csv", day2);
  Result r2 = run_dpone(s.dir(), {"run", "manifest.yaml"});
  ASSERT_EQ(r2.exit_code, 0) << r2.all();
  json rec = last_stream_record(s.dir());
  EXPECT_EQ(rec["rows"]["deleted"], 20) << rec["rows"];
  EXPECT_EQ(rec["rows"]["inserted"], 0) << rec["rows"];

  auto events = kcat_events(topic);
  ASSERT_EQ(events.size(), 80u);
  std::map<std::string, std::set<int>> partitions_of;
  int tombstones = 0;
  for (const auto& e : events) {
    partitions_of[e.key].insert(e.partition);
    EXPECT_EQ(e.partition, java_partition(e.key, partitions)) << e.key;
    if (!e.value) {
      ++tombstones;
      EXPECT_EQ((std::stoi(e.key) - 1) % 3, 0) << e.key;
    } else {
      json v = json::parse(*e.value);
      EXPECT_EQ(v, json({{"id", std::stoi(e.key)}, {"name", "n" + e.key}})) << *e.value;
    }
  }
  EXPECT_EQ(tombstones, 20);
  for (const auto& [k, ps] : partitions_of) EXPECT_EQ(ps.size(), 1u) << k;
}

// tombstone_column without a key, and strategies that read the target: clear errors at
// validation / before anything is sent.
TEST(KafkaTombstones, RefusedWithoutKeyAndForTargetReadingStrategies) {
  REQUIRE_KAFKA();
  Scratch s;
  std::string topic = new_topic(1);
  std::string m =
      files_to_kafka(topic, "{id: int64, deleted: bool}", "      tombstone_column: deleted\n");
  m.replace(m.find("{mode: append, unique_key: [id]}"), 32, "{mode: append}");
  write_file(s / "manifest.yaml", m);
  landing_csv(s.dir(), "a.csv", "id,deleted\n1,true\n");
  Result r = run_dpone(s.dir(), {"run", "manifest.yaml"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.all().find("CONFIG_INVALID"), std::string::npos) << r.all();
  EXPECT_NE(r.all().find("needs a key"), std::string::npos) << r.all();
  for (const std::string mode : {"merge", "scd2"}) {
    std::string mm = files_to_kafka(topic, "{id: int64, deleted: bool}", "");
    mm.replace(mm.find("mode: append"), 12, "mode: " + mode);
    write_file(s / "manifest.yaml", mm);
    Result rm = run_dpone(s.dir(), {"run", "manifest.yaml"});
    EXPECT_NE(rm.exit_code, 0) << mode;
    EXPECT_NE(rm.all().find("append"), std::string::npos) << rm.all();
  }
  EXPECT_TRUE(kcat_events(topic).empty());
}

// value_format csv: header-less RFC 4180 lines; quotes, commas, newlines, unicode, NULL.
TEST(KafkaValueFormat, CsvLinesReadBackWithKcat) {
  REQUIRE_KAFKA();
  Scratch s;
  std::string topic = new_topic(1);
  write_file(s / "manifest.yaml",
             files_to_kafka(topic, "{id: int64, name: string, amount: \"decimal(10,2)\"}",
                            "      value_format: csv\n"));
  landing_csv(s.dir(), "a.csv",
              "id,name,amount\n"
              "1,plain,1.5\n"
              "2,\"a, b\",2\n"
              "3,\"say \"\"hi\"\"\",\n"
              "4,\"two\nlines\",-0.1\n"
              "5,\"\",0\n"
              "6,,7\n"
              "7,żółw ✓ 日本,1e2\n");
  Result r = run_dpone(s.dir(), {"run", "manifest.yaml"});
  ASSERT_EQ(r.exit_code, 0) << r.all();
  std::map<std::string, std::string> by_key;
  for (const auto& e : kcat_events(topic)) {
    ASSERT_TRUE(e.value) << e.key;
    by_key[e.key] = *e.value;
  }
  ASSERT_EQ(by_key.size(), 7u);
  EXPECT_EQ(by_key["1"], "1,plain,1.50");
  EXPECT_EQ(by_key["2"], "2,\"a, b\",2.00");
  EXPECT_EQ(by_key["3"], "3,\"say \"\"hi\"\"\",");
  EXPECT_EQ(by_key["4"], "4,\"two\nlines\",-0.10");
  EXPECT_EQ(by_key["5"], "5,\"\",0.00");
  EXPECT_EQ(by_key["6"], "6,,7.00");
  EXPECT_EQ(by_key["7"], "7,żółw ✓ 日本,100.00");
}

// Kafka -> Kafka with value_format string on both sides: values byte for byte, keys kept,
// tombstones stay tombstones (a NULL value is sent as one).
TEST(KafkaValueFormat, StringRoundTripKeepsValuesAndTombstones) {
  REQUIRE_KAFKA();
  Scratch s;
  std::string in = new_topic(2), out = new_topic(3);
  write_file(s / "manifest.yaml",
             fmt::format("kind: dpone.batch.v1\n"
                         "streams:\n"
                         "  - name: copy\n"
                         "    source:\n"
                         "      connector: kafka\n"
                         "      bootstrap_servers: \"{0}\"\n"
                         "      topic: {1}\n"
                         "      value_format: string\n"
                         "    sink:\n"
                         "      connector: kafka\n"
                         "      bootstrap_servers: \"{0}\"\n"
                         "      topic: {2}\n"
                         "      value_format: string\n"
                         "      value_column: value\n"
                         "      headers: []\n"
                         "      strategy: {{mode: append, unique_key: [_key]}}\n",
                         bootstrap(), in, out));
  kcat_produce_lines(in, 0, "a|{\"x\": 1, \"s\": \"é,\\\"q\\\"\"}\nb|plain text\nc|ünï ✓\n");
  kcat_produce_lines(in, 1, "a|\nd|x,y\n");  // a's tombstone (-Z: empty value is NULL)
  Result r = run_dpone(s.dir(), {"run", "manifest.yaml"});
  ASSERT_EQ(r.exit_code, 0) << r.all();
  auto events = kcat_events(out);
  ASSERT_EQ(events.size(), 5u);
  std::map<std::string, std::vector<std::optional<std::string>>> by_key;
  for (const auto& e : events) {
    EXPECT_EQ(e.partition, java_partition(e.key, 3)) << e.key;
    by_key[e.key].push_back(e.value);
  }
  ASSERT_EQ(by_key["a"].size(), 2u);
  // a's two events come from different source partitions: order across them is not kept.
  std::set<std::string> a;
  for (const auto& v : by_key["a"]) a.insert(v ? *v : "<null>");
  EXPECT_EQ(a, (std::set<std::string>{"{\"x\": 1, \"s\": \"é,\\\"q\\\"\"}", "<null>"}));
  EXPECT_EQ(by_key["b"], (std::vector<std::optional<std::string>>{"plain text"}));
  EXPECT_EQ(by_key["c"], (std::vector<std::optional<std::string>>{"ünï ✓"}));
  EXPECT_EQ(by_key["d"], (std::vector<std::optional<std::string>>{"x,y"}));
  EXPECT_EQ(last_stream_record(s.dir())["rows"]["deleted"], 1);
}

}  // namespace
