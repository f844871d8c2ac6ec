// Unit tests of the kafka connector. The cluster is librdkafka's mock cluster started
// inside the test process (a real Kafka wire-protocol server on 127.0.0.1), so these
// tests need no service; the end-to-end tests (tests/e2e/kafka_test.cpp) use the
// dpone_kafka_mock service instead.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <set>

#include "connectors/kafka/kafka_common.hpp"
#include "connectors/kafka/kafka_producer.hpp"
#include "core/errors.hpp"

namespace dpone {
namespace {

using json = nlohmann::json;

// Kafka's clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java testMurmur2,
// and librdkafka's rdkafka_msg.c unittest_murmur2 (values computed by the Java client).
TEST(KafkaMurmur2, MatchesJavaClientVectors) {
  const std::vector<std::pair<std::string, int32_t>> java = {
      {"21", -973932308},
      {"foobar", -790332482},
      {"a-little-bit-long-string", -985981536},
      {"a-little-bit-longer-string", -1486304829},
      {"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
      {"abc", 479470107},
  };
  for (const auto& [key, hash] : java) EXPECT_EQ(kafka::murmur2(key), hash) << key;
  const std::vector<std::pair<std::string, uint32_t>> librdkafka = {
      {"kafka", 0xd067cf64}, {"giberish123456789", 0x8f552b0c},
      {"1234", 0x9fc97b14},  {"234", 0xe7c009ca},
      {"34", 0x873930da},    {"4", 0x5a4b5ca1},
      {"", 0x106e08d9}};
  for (const auto& [key, hash] : librdkafka)
    EXPECT_EQ(static_cast<uint32_t>(kafka::murmur2(key)), hash) << "'" << key << "'";
}

TEST(KafkaMurmur2, PartitionIsPositiveHashModuloCount) {
  // toPositive(murmur2("21")) = -973932308 & 0x7fffffff = 1173551340.
  EXPECT_EQ(kafka::java_partition("21", 4), 1173551340 % 4);
  EXPECT_EQ(kafka::java_partition("foobar", 7), (-790332482 & 0x7fffffff) % 7);
  EXPECT_EQ(kafka::java_partition("abc", 3), 479470107 % 3);
}

TEST(KafkaMurmur2, AgreesWithLibrdkafkaPartitioner) {
  char errstr[256];
  kafka::HandlePtr rk(rd_kafka_new(RD_KAFKA_PRODUCER, rd_kafka_conf_new(), errstr, sizeof(errstr)));
  ASSERT_TRUE(rk);
  kafka::TopicPtr t(rd_kafka_topic_new(rk.get(), "t", nullptr));
  for (int i = 0; i < 500; ++i) {
    std::string key = "customer-" + std::to_string(i * 7919);
    for (int32_t n : {1, 3, 12, 64}) {
      EXPECT_EQ(
          rd_kafka_msg_partitioner_murmur2(t.get(), key.data(), key.size(), n, nullptr, nullptr),
          kafka::java_partition(key, n))
          << key << " over " << n;
    }
  }
}

TEST(KafkaOffsets, RoundTripAndRejectForeignPositions) {
  kafka::Offsets o{{"orders", {{0, 12}, {2, 40}}}, {"events", {{0, 0}}}};
  json j = kafka::offsets_to_json(o);
  EXPECT_EQ(j, json::parse(R"({"events":{"0":0},"orders":{"0":12,"2":40}})"));
  EXPECT_EQ(kafka::offsets_from_json(j, "here"), o);
  EXPECT_TRUE(kafka::offsets_from_json(json(), "here").empty());
  try {
    kafka::offsets_from_json(json::parse(R"({"high": "2026-01-01"})"), "stream 's'");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::StateStoreFailed);
    EXPECT_NE(std::string(e.what()).find("stream 's'"), std::string::npos);
  }
}

// --- against an in-process mock cluster -----------------------------------------------------

class MockCluster {
 public:
  explicit MockCluster(int brokers = 1) {
    char errstr[256];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "2", errstr, sizeof(errstr));
    rk_.reset(rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr)));
    cluster_ = rd_kafka_mock_cluster_new(rk_.get(), brokers);
    bootstrap_ = rd_kafka_mock_cluster_bootstraps(cluster_);
  }
  ~MockCluster() { rd_kafka_mock_cluster_destroy(cluster_); }
  void topic(const std::string& name, int partitions) {
    ASSERT_EQ(rd_kafka_mock_topic_create(cluster_, name.c_str(), partitions, 1),
              RD_KAFKA_RESP_ERR_NO_ERROR);
  }
  rd_kafka_mock_cluster_t* get() { return cluster_; }
  const std::string& bootstrap() const { return bootstrap_; }

 private:
  kafka::HandlePtr rk_;
  rd_kafka_mock_cluster_t* cluster_ = nullptr;
  std::string bootstrap_;
};

// Produces (key, value) messages to explicit partitions with a plain producer.
void produce(const std::string& bootstrap, const std::string& topic,
             const std::vector<std::tuple<int32_t, std::string, std::string>>& messages) {
  char errstr[256];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), errstr, sizeof(errstr));
  kafka::HandlePtr rk(rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr)));
  ASSERT_TRUE(rk);
  for (const auto& [p, key, value] : messages) {
    ASSERT_EQ(rd_kafka_producev(rk.get(), RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(p),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_KEY(key.data(), key.size()),
                                RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
                                RD_KAFKA_V_HEADER("h", "v", 1), RD_KAFKA_V_END),
              RD_KAFKA_RESP_ERR_NO_ERROR);
  }
  ASSERT_EQ(rd_kafka_flush(rk.get(), 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
}

struct Consumed {
  int32_t partition;
  int64_t offset;
  std::string key, value;
  std::map<std::string, std::string> headers;
  bool null_value = false;  // a tombstone
};

// Reads every message of every partition of `topic` with an independent consumer, up to
// the high watermarks read first (EOF events alone can come before a partition's data).
std::vector<Consumed> consume_all(const std::string& bootstrap, const std::string& topic,
                                  int partitions) {
  char errstr[256];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), errstr, sizeof(errstr));
  rd_kafka_conf_set(conf, "group.id", "unit-test-reader", errstr, sizeof(errstr));
  kafka::HandlePtr rk(rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr)));
  kafka::PartitionListPtr list(rd_kafka_topic_partition_list_new(partitions));
  std::map<int32_t, int64_t> remaining;
  for (int p = 0; p < partitions; ++p) {
    int64_t lo = 0, hi = 0;
    EXPECT_EQ(rd_kafka_query_watermark_offsets(rk.get(), topic.c_str(), p, &lo, &hi, 10000), 0);
    if (hi > lo) remaining[p] = hi;
    rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), p)->offset =
        RD_KAFKA_OFFSET_BEGINNING;
  }
  rd_kafka_assign(rk.get(), list.get());
  std::vector<Consumed> out;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!remaining.empty() && std::chrono::steady_clock::now() < deadline) {
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk.get(), 100);
    if (!m) continue;
    if (!m->err) {
      Consumed c{m->partition,
                 m->offset,
                 m->key ? std::string(static_cast<const char*>(m->key), m->key_len) : "",
                 m->payload ? std::string(static_cast<const char*>(m->payload), m->len) : "",
                 {},
                 m->payload == nullptr};
      rd_kafka_headers_t* h = nullptr;
      if (!rd_kafka_message_headers(m, &h)) {
        const char* name;
        const void* v;
        size_t sz;
        for (size_t i = 0; !rd_kafka_header_get_all(h, i, &name, &v, &sz); ++i)
          c.headers[name] = std::string(static_cast<const char*>(v), sz);
      }
      auto it = remaining.find(m->partition);
      if (it != remaining.end() && m->offset + 1 >= it->second) remaining.erase(it);
      out.push_back(std::move(c));
    }
    rd_kafka_message_destroy(m);
  }
  rd_kafka_assign(rk.get(), nullptr);
  return out;
}

std::vector<std::vector<std::optional<std::string>>> read_all(Source& source, const Window& w) {
  Artifact a =
      source.extract(w, ArtifactSpec{ArtifactKind::StreamingRows, WireFormat::RecordBatch}, {});
  auto& rows = std::get<StreamingRows>(a);
  std::vector<std::vector<std::optional<std::string>>> out;
  while (auto b = rows.batches->next()) {
    for (size_t r = 0; r < b->num_rows(); ++r) {
      std::vector<std::optional<std::string>> row;
      for (size_t c = 0; c < b->num_columns(); ++c)
        row.push_back(b->is_null(r, c) ? std::nullopt
                                       : std::optional<std::string>(std::string(b->cell(r, c))));
      out.push_back(std::move(row));
    }
  }
  return out;
}

TEST(KafkaSource, ReadsExactlyTheWindowOnceAcrossRuns) {
  MockCluster cluster;
  cluster.topic("orders", 3);
  Diagnostics diag;
  SourceContext ctx{"orders",
                    json{{"topic", "orders"}, {"bootstrap_servers", cluster.bootstrap()}},
                    nullptr,
                    {},
                    &diag};
  std::vector<std::tuple<int32_t, std::string, std::string>> first;
  for (int i = 0; i < 9; ++i)
    first.emplace_back(
        i % 3, "k" + std::to_string(i),
        json{{"id", i}, {"amount", i + 0.5}, {"tags", {"a", i}}, {"name", "n" + std::to_string(i)}}
            .dump());
  produce(cluster.bootstrap(), "orders", first);

  auto source = make_kafka_source(ctx);
  Window w1 = source->plan_window(json());
  EXPECT_FALSE(w1.empty);
  EXPECT_EQ(w1.estimated_rows, 9);
  EXPECT_EQ(w1.high, json::parse(R"({"orders":{"0":3,"1":3,"2":3}})"));
  Schema s = source->discover();
  std::vector<std::string> names = s.names();
  EXPECT_EQ(names, (std::vector<std::string>{"_topic", "_partition", "_offset", "_timestamp",
                                             "_key", "_headers", "amount", "id", "name", "tags"}));
  EXPECT_EQ(s.columns[s.find("id")].type.to_string(), "int64");
  EXPECT_EQ(s.columns[s.find("amount")].type.to_string(), "float64");
  EXPECT_EQ(s.columns[s.find("tags")].type.to_string(), "json");
  EXPECT_EQ(s.primary_key, (std::vector<std::string>{"_topic", "_partition", "_offset"}));
  auto rows = read_all(*source, w1);
  ASSERT_EQ(rows.size(), 9u);
  std::set<std::string> ids;
  for (const auto& r : rows) {
    ids.insert(*r[7]);
    EXPECT_EQ(*r[0], "orders");
    EXPECT_EQ(*r[4], "k" + *r[7]);                       // key
    EXPECT_EQ(std::stoi(*r[1]), std::stoi(*r[7]) % 3);   // partition
    EXPECT_EQ(*r[5], R"([["h","v"]])");                  // headers
    EXPECT_EQ(r[3]->back(), 'Z');                        // timestamptz
    EXPECT_EQ(*r[9], fmt::format("[\"a\",{}]", *r[7]));  // nested value as JSON
  }
  EXPECT_EQ(ids.size(), 9u);
  json pos1 = source->next_position(w1);
  EXPECT_EQ(pos1, w1.high);

  // Second run: only what was produced since.
  produce(cluster.bootstrap(), "orders",
          {{1, "k100", R"({"id":100,"amount":1,"name":"x","tags":[]})"},
           {1, "k101", R"({"id":101,"amount":2,"name":"y","tags":null})"}});
  auto source2 = make_kafka_source(ctx);
  Window w2 = source2->plan_window(pos1);
  EXPECT_EQ(w2.estimated_rows, 2);
  source2->discover();
  auto rows2 = read_all(*source2, w2);
  ASSERT_EQ(rows2.size(), 2u);
  EXPECT_EQ(*rows2[0][7], "100");
  EXPECT_EQ(*rows2[0][2], "3");
  EXPECT_FALSE(rows2[1][9].has_value());  // JSON null -> NULL
  json pos2 = source2->next_position(w2);
  EXPECT_EQ(pos2, json::parse(R"({"orders":{"0":3,"1":5,"2":3}})"));

  // Third run: nothing new.
  auto source3 = make_kafka_source(ctx);
  Window w3 = source3->plan_window(pos2);
  EXPECT_TRUE(w3.empty);
  EXPECT_EQ(source3->next_position(w3), pos2);
}

TEST(KafkaSource, DeclaredColumnsStringValuesAndPartitionSubset) {
  MockCluster cluster;
  cluster.topic("t", 2);
  produce(cluster.bootstrap(), "t",
          {{0, "a", R"({"amount":"12.5","at":"2026-01-02T03:04:05Z","x":1})"},
           {1, "b", R"({"amount":7,"at":null})"}});
  Diagnostics diag;
  SourceContext ctx{"s",
                    json{{"topic", "t"},
                         {"bootstrap_servers", cluster.bootstrap()},
                         {"partitions", {0}},
                         {"columns", {{"amount", "decimal(10,2)"}, {"at", "timestamptz"}}}},
                    nullptr,
                    {},
                    &diag};
  auto source = make_kafka_source(ctx);
  Window w = source->plan_window(json());
  EXPECT_EQ(w.high, json::parse(R"({"t":{"0":1}})"));
  Schema s = source->discover();
  EXPECT_EQ(s.columns.size(), 8u);
  auto rows = read_all(*source, w);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(*rows[0][6], "12.50");
  EXPECT_EQ(*rows[0][7], "2026-01-02T03:04:05Z");
  ASSERT_EQ(diag.warnings().size(), 1u);  // field x is not a declared column
  EXPECT_NE(diag.warnings()[0].find("'x'"), std::string::npos);

  SourceContext raw{
      "s2",
      json{{"topic", "t"}, {"bootstrap_servers", cluster.bootstrap()}, {"value_format", "string"}},
      nullptr,
      {},
      &diag};
  auto strings = make_kafka_source(raw);
  Window w2 = strings->plan_window(json());
  EXPECT_EQ(strings->discover().names().back(), "value");
  auto rows2 = read_all(*strings, w2);
  ASSERT_EQ(rows2.size(), 2u);
  EXPECT_EQ(*rows2[0][6], R"({"amount":"12.5","at":"2026-01-02T03:04:05Z","x":1})");
}

TEST(KafkaSource, UnreachableBrokersAndBadValuesAreClearErrors) {
  MockCluster cluster;
  cluster.topic("t", 1);
  Diagnostics diag;
  // (The mock cluster creates any topic a client asks metadata for, so a missing topic
  // cannot be observed here; unreachable brokers can.)
  SourceContext down{
      "s",
      json{{"topic", "t"}, {"bootstrap_servers", "127.0.0.1:1"}, {"timeout_ms", 1500}},
      nullptr,
      {},
      &diag};
  try {
    make_kafka_source(down)->plan_window(json());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    // No answer within timeout_ms: TIMED_OUT naming the brokers and the setting.
    EXPECT_EQ(e.code(), ErrorCode::TimedOut) << e.what();
    EXPECT_NE(std::string(e.what()).find("topic 't'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("127.0.0.1:1"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("timeout_ms"), std::string::npos) << e.what();
  }
  produce(cluster.bootstrap(), "t", {{0, "k", R"({"id":1})"}, {0, "k", "not json"}});
  SourceContext ctx{
      "s", json{{"topic", "t"}, {"bootstrap_servers", cluster.bootstrap()}}, nullptr, {}, &diag};
  auto source = make_kafka_source(ctx);
  Window w = source->plan_window(json());
  source->discover();
  try {
    read_all(*source, w);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::InputMalformed);
    EXPECT_NE(std::string(e.what()).find("t[0]@1"), std::string::npos) << e.what();
  }
}

class RowsReader : public BatchReader {
 public:
  RowsReader(Schema s, std::vector<std::vector<std::optional<std::string>>> rows)
      : schema_(std::move(s)), rows_(std::move(rows)) {}
  const Schema& schema() const override { return schema_; }
  std::optional<RecordBatch> next() override {
    if (done_) return std::nullopt;
    done_ = true;
    RecordBatch b(schema_.columns.size());
    for (const auto& row : rows_)
      for (const auto& cell : row) cell ? b.append(*cell) : b.append_null();
    return b;
  }

 private:
  Schema schema_;
  std::vector<std::vector<std::optional<std::string>>> rows_;
  bool done_ = false;
};

Schema sink_schema() {
  Schema s;
  s.columns = {
      Column{"id", LogicalType::of(TypeId::Int64)}, Column{"name", LogicalType::of(TypeId::String)},
      Column{"price", LogicalType::of(TypeId::Float64)},
      Column{"doc", LogicalType::of(TypeId::Json)}, Column{"ok", LogicalType::of(TypeId::Bool)}};
  return s;
}

Artifact rows_artifact(int n) {
  std::vector<std::vector<std::optional<std::string>>> rows;
  for (int i = 0; i < n; ++i)
    rows.push_back({std::to_string(i), "name \"" + std::to_string(i) + "\"", i % 2 ? "NaN" : "1.5",
                    i % 3 ? std::optional<std::string>(R"({"a":[1,2]})") : std::nullopt, "true"});
  StreamingRows s;
  s.batches = std::make_unique<RowsReader>(sink_schema(), std::move(rows));
  return s;
}

TEST(KafkaSink, DeliversEveryRowOnceKeyedLikeJava) {
  MockCluster cluster;
  cluster.topic("out", 6);
  Diagnostics diag;
  auto dir =
      std::filesystem::temp_directory_path() / ("dpone-kafka-sink-" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  SinkContext ctx{"s",
                  "run-1",
                  json{{"topic", "out"},
                       {"bootstrap_servers", cluster.bootstrap()},
                       {"strategy", {{"mode", "append"}, {"unique_key", "id"}}},
                       {"headers", {"run_id"}}},
                  nullptr,
                  dir,
                  &diag,
                  nullptr};
  auto sink = make_kafka_sink(ctx);
  TargetInfo t = sink->inspect();
  EXPECT_TRUE(t.exists);
  EXPECT_TRUE(t.schemaless);
  StagedLoad staged = sink->stage(rows_artifact(300), sink_schema());
  EXPECT_EQ(staged.rows, 300);
  auto got = consume_all(cluster.bootstrap(), "out", 6);
  ASSERT_EQ(got.size(), 300u);
  std::set<std::string> keys;
  for (const auto& m : got) {
    keys.insert(m.key);
    EXPECT_EQ(m.partition, kafka::java_partition(m.key, 6)) << m.key;
    EXPECT_EQ(m.headers.at("dpone-run-id"), "run-1");
    json v = json::parse(m.value);
    EXPECT_EQ(std::to_string(v["id"].get<int64_t>()), m.key);
    int i = v["id"].get<int>();
    EXPECT_EQ(v["name"], "name \"" + std::to_string(i) + "\"");
    if (i % 2)
      EXPECT_EQ(v["price"], "NaN");
    else
      EXPECT_EQ(v["price"], 1.5);
    if (i % 3)
      EXPECT_EQ(v["doc"], json::parse(R"({"a":[1,2]})"));
    else
      EXPECT_TRUE(v["doc"].is_null());
    EXPECT_EQ(v["ok"], true);
  }
  EXPECT_EQ(keys.size(), 300u);
  // The stage details list the delivered offsets by partition: first and last.
  std::map<int, std::pair<int64_t, int64_t>> ranges;
  for (const auto& m : got) {
    auto [it, fresh] = ranges.try_emplace(m.partition, m.offset, m.offset);
    it->second.first = std::min(it->second.first, m.offset);
    it->second.second = std::max(it->second.second, m.offset);
  }
  json expected = json::object();
  for (const auto& [p, r] : ranges) expected[std::to_string(p)] = {r.first, r.second};
  EXPECT_EQ(staged.details["offsets"], expected);

  // The receipt is written by promote() and read back.
  PromoteRequest req;
  req.receipt = LoadReceipt{"s", "run-1", 4, json(), json{{"x", 1}}, 300, "now"};
  PromoteResult pr = sink->promote(staged, req);
  EXPECT_EQ(pr.inserted, 300);
  auto receipt = sink->latest_receipt();
  ASSERT_TRUE(receipt);
  EXPECT_EQ(receipt->run_id, "run-1");
  EXPECT_EQ(receipt->base_revision, 4);
  EXPECT_EQ(receipt->new_position, json({{"x", 1}}));
  std::filesystem::remove_all(dir);
}

// Without headers the sink hands events over in batches (kafka::Outbox) and picks their
// partitions itself: the same Java partitions, each row once, the offsets in the details.
TEST(KafkaSink, BatchedEventsWithoutHeadersLandInTheJavaPartition) {
  MockCluster cluster;
  cluster.topic("batched", 6);
  Diagnostics diag;
  SinkContext ctx{"s",
                  "run-1",
                  json{{"topic", "batched"},
                       {"bootstrap_servers", cluster.bootstrap()},
                       {"strategy", {{"mode", "append"}, {"unique_key", "id"}}}},
                  nullptr,
                  {},
                  &diag,
                  nullptr};
  auto sink = make_kafka_sink(ctx);
  sink->inspect();
  StagedLoad staged = sink->stage(rows_artifact(3000), sink_schema());
  EXPECT_EQ(staged.rows, 3000);
  auto got = consume_all(cluster.bootstrap(), "batched", 6);
  ASSERT_EQ(got.size(), 3000u);
  std::sort(got.begin(), got.end(), [](const Consumed& x, const Consumed& y) {
    return std::tie(x.partition, x.offset) < std::tie(y.partition, y.offset);
  });
  std::set<std::string> keys;
  std::map<int32_t, int64_t> last_id;  // per partition: ids in the order the rows came
  for (const auto& m : got) {
    keys.insert(m.key);
    EXPECT_EQ(m.partition, kafka::java_partition(m.key, 6)) << m.key;
    EXPECT_TRUE(m.headers.empty());
    const int64_t id = json::parse(m.value)["id"].get<int64_t>();
    EXPECT_EQ(std::to_string(id), m.key);
    auto [it, fresh] = last_id.try_emplace(m.partition, id);
    if (!fresh) {
      EXPECT_GT(id, it->second) << "partition " << m.partition;
    }
    it->second = id;
  }
  EXPECT_EQ(keys.size(), 3000u);
  int64_t listed = 0;
  for (const auto& [p, range] : staged.details["offsets"].items())
    listed += range[1].get<int64_t>() - range[0].get<int64_t>() + 1;
  EXPECT_EQ(listed, 3000);
}

// `headers`: none by default, the run id or both dpone headers on request;
// an unknown header name is a config error.
TEST(KafkaSink, HeadersOption) {
  MockCluster cluster;
  Diagnostics diag;
  auto run = [&](const std::string& topic, const json& headers) {
    cluster.topic(topic, 1);
    json options{{"topic", topic}, {"bootstrap_servers", cluster.bootstrap()}};
    if (!headers.is_null()) options["headers"] = headers;
    SinkContext ctx{"orders", "run-7", options, nullptr, {}, &diag, nullptr};
    auto sink = make_kafka_sink(ctx);
    sink->inspect();
    EXPECT_EQ(sink->stage(rows_artifact(3), sink_schema()).rows, 3);
    auto got = consume_all(cluster.bootstrap(), topic, 1);
    EXPECT_EQ(got.size(), 3u);
    return got;
  };
  for (const auto& m : run("default", json())) EXPECT_TRUE(m.headers.empty());
  for (const auto& m : run("run_id", json{"run_id"}))
    EXPECT_EQ(m.headers, (std::map<std::string, std::string>{{"dpone-run-id", "run-7"}}));
  for (const auto& m : run("both", json{"run_id", "stream"}))
    EXPECT_EQ(m.headers, (std::map<std::string, std::string>{{"dpone-run-id", "run-7"},
                                                             {"dpone-stream", "orders"}}));
  for (const auto& m : run("none", json::array())) EXPECT_TRUE(m.headers.empty());
  SinkContext bad{"s", "r", json{{"topic", "t"}, {"bootstrap_servers", cluster.bootstrap()},
                                 {"headers", {"run_id", "host"}}},
                  nullptr, {}, &diag, nullptr};
  try {
    make_kafka_sink(bad);
    FAIL() << "expected a config error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::ConfigBadValue);
    EXPECT_NE(std::string(e.what()).find("unknown header 'host'"), std::string::npos) << e.what();
  }
}

TEST(KafkaSink, DeliveryFailureFailsWithTheCount) {
  MockCluster cluster;
  cluster.topic("out", 1);
  Diagnostics diag;
  SinkContext ctx{"s",
                  "run-2",
                  json{{"topic", "out"},
                       {"bootstrap_servers", cluster.bootstrap()},
                       {"linger_ms", 0},
                       {"properties", {{"batch.num.messages", 10}}}},
                  nullptr,
                  {},
                  &diag,
                  nullptr};
  auto sink = make_kafka_sink(ctx);
  sink->inspect();
  // Every Produce request fails with a permanent error (TOPIC_AUTHORIZATION_FAILED).
  std::vector<rd_kafka_resp_err_t> errors(100, RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
  rd_kafka_mock_push_request_errors_array(cluster.get(), 0, errors.size(), errors.data());
  try {
    sink->stage(rows_artifact(50), sink_schema());
    FAIL() << "expected the stage to fail";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::StageFailed);
    EXPECT_NE(std::string(e.what()).find("50 of 50 events were not delivered"), std::string::npos)
        << e.what();
  }
}

// A producer on the mock cluster for the outbox tests: `settings` on top of the bootstrap
// servers; with `tally`, delivery reports are counted into it.
struct TestProducer {
  kafka::HandlePtr rk;
  kafka::TopicPtr topic;
};
TestProducer test_producer(MockCluster& cluster, const std::string& topic,
                           const std::vector<std::pair<std::string, std::string>>& settings,
                           kafka::DeliveryTally* tally = nullptr) {
  char errstr[256];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  EXPECT_EQ(rd_kafka_conf_set(conf, "bootstrap.servers", cluster.bootstrap().c_str(), errstr,
                              sizeof(errstr)),
            RD_KAFKA_CONF_OK);
  for (const auto& [k, v] : settings)
    EXPECT_EQ(rd_kafka_conf_set(conf, k.c_str(), v.c_str(), errstr, sizeof(errstr)),
              RD_KAFKA_CONF_OK)
        << errstr;
  if (tally) {
    rd_kafka_conf_set_dr_msg_cb(conf, kafka::on_delivery);
    rd_kafka_conf_set_opaque(conf, tally);
  }
  TestProducer p;
  p.rk.reset(rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr)));
  EXPECT_TRUE(p.rk) << errstr;
  if (p.rk) p.topic.reset(rd_kafka_topic_new(p.rk.get(), topic.c_str(), nullptr));
  return p;
}

// The outbox under queue limits far smaller than one batch (7 events; 1 KiB of values):
// every event arrives once, a key's events in the order added (copied or viewed), a null
// value as a tombstone; flush() never re-sends what it already handed over. Values are
// big and small: a queue that refused a big one must not take a later small one first.
TEST(KafkaOutbox, KeepsOrderAndDeliversEverythingUnderTinyQueueLimits) {
  MockCluster cluster;
  std::vector<std::string> values;
  for (int i = 0; i < 500; ++i)
    values.push_back(fmt::format(R"({{"i":{},"pad":"{}"}})", i, std::string(i % 2 ? 0 : 300, 'x')));
  const std::vector<std::string> keys = {"a", "b", "c"};
  for (auto [max_messages, max_kbytes] : {std::pair{"7", "100000"}, {"100000", "1"}}) {
    SCOPED_TRACE(fmt::format("max messages {}, max kbytes {}", max_messages, max_kbytes));
    const std::string name = fmt::format("ordered_{}_{}", max_messages, max_kbytes);
    cluster.topic(name, 3);
    kafka::DeliveryTally tally;
    auto [rk, topic] = test_producer(cluster, name,
                                     {{"enable.idempotence", "true"},
                                      {"linger.ms", "1"},
                                      {"queue.buffering.max.messages", max_messages},
                                      {"queue.buffering.max.kbytes", max_kbytes}},
                                     &tally);
    ASSERT_TRUE(rk);
    kafka::Outbox outbox(rk.get(), topic.get(), 3, "test");
    for (int i = 0; i < 500; ++i) {
      if (i % 4 < 2)
        outbox.add(values[i], &keys[i % 3]);
      else
        outbox.add_view(values[i], &keys[i % 3]);
    }
    outbox.add(std::string_view{}, &keys[0]);  // a tombstone
    outbox.flush();
    outbox.flush();  // nothing left: sends nothing twice
    EXPECT_EQ(outbox.handed_over(), 501);
    ASSERT_EQ(rd_kafka_flush(rk.get(), 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
    EXPECT_EQ(tally.delivered, 501);
    EXPECT_EQ(tally.failed, 0);
    auto got = consume_all(cluster.bootstrap(), name, 3);
    ASSERT_EQ(got.size(), 501u);
    std::sort(got.begin(), got.end(), [](const Consumed& x, const Consumed& y) {
      return std::tie(x.partition, x.offset) < std::tie(y.partition, y.offset);
    });
    std::map<std::string, int> last;  // key -> last i seen
    int tombstones = 0;
    for (const auto& m : got) {
      EXPECT_EQ(m.partition, kafka::java_partition(m.key, 3)) << m.key;
      if (m.null_value) {
        ++tombstones;
        EXPECT_EQ(m.key, "a");
        EXPECT_EQ(last["a"], 498) << "the tombstone comes after the key's events";
        continue;
      }
      int i = json::parse(m.value)["i"].get<int>();
      EXPECT_EQ(m.value, values[i]);
      EXPECT_EQ(m.key, keys[i % 3]);
      auto [it, fresh] = last.try_emplace(m.key, i);
      if (!fresh) {
        EXPECT_GT(i, it->second) << "key " << m.key << " out of order";
      }
      it->second = i;
    }
    EXPECT_EQ(tombstones, 1);
  }
}

// Events without key: one random partition per batch (sticky), so a batch stays together
// and the batches spread over the partitions.
TEST(KafkaOutbox, UnkeyedEventsStickToOnePartitionPerBatch) {
  MockCluster cluster;
  cluster.topic("sticky", 4);
  auto [rk, topic] = test_producer(cluster, "sticky", {});
  ASSERT_TRUE(rk);
  kafka::Outbox outbox(rk.get(), topic.get(), 4, "test");
  for (int batch = 0; batch < 20; ++batch) {
    for (int i = 0; i < 10; ++i) outbox.add(fmt::format(R"({{"b":{},"i":{}}})", batch, i), nullptr);
    outbox.flush();
  }
  ASSERT_EQ(rd_kafka_flush(rk.get(), 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
  auto got = consume_all(cluster.bootstrap(), "sticky", 4);
  ASSERT_EQ(got.size(), 200u);
  std::map<int, std::set<int32_t>> partitions_of_batch;
  std::set<int32_t> used;
  for (const auto& m : got) {
    partitions_of_batch[json::parse(m.value)["b"].get<int>()].insert(m.partition);
    used.insert(m.partition);
  }
  for (const auto& [batch, parts] : partitions_of_batch)
    EXPECT_EQ(parts.size(), 1u) << "batch " << batch;
  EXPECT_GT(used.size(), 1u) << "20 batches all in one partition of 4";
}

// An event librdkafka refuses for a reason other than a full queue (here: larger than
// message.max.bytes) fails the flush with STAGE_FAILED naming the reason; nothing is
// handed over twice.
TEST(KafkaOutbox, RefusedEventFailsTheFlush) {
  MockCluster cluster;
  cluster.topic("refused", 1);
  auto [rk, topic] = test_producer(cluster, "refused", {{"message.max.bytes", "1000"}});
  ASSERT_TRUE(rk);
  kafka::Outbox outbox(rk.get(), topic.get(), 1, "stream 's': kafka sink");
  outbox.add("{\"a\":1}", nullptr);
  outbox.add(std::string(2000, 'x'), nullptr);
  outbox.add("{\"a\":3}", nullptr);
  try {
    outbox.flush();
    FAIL() << "the 2000-byte event must be refused";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::StageFailed);
    EXPECT_NE(std::string(e.what()).find("cannot produce an event (2000 bytes) to topic refused"),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(outbox.handed_over(), 2);
  outbox.flush();  // the refused batch is gone
  EXPECT_EQ(outbox.handed_over(), 2);
  EXPECT_EQ(rd_kafka_flush(rk.get(), 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
}

TEST(KafkaSink, RefusesNonAppendStrategiesAndUnknownKeys) {
  Diagnostics diag;
  SinkContext merge{"s",
                    "r",
                    json{{"topic", "t"},
                         {"bootstrap_servers", "127.0.0.1:1"},
                         {"strategy", {{"mode", "merge"}, {"unique_key", "id"}}}},
                    nullptr,
                    {},
                    &diag,
                    nullptr};
  try {
    make_kafka_sink(merge);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::ConfigBadValue);
    EXPECT_NE(std::string(e.what()).find("append-only"), std::string::npos);
  }
  SinkContext only_new{
      "s",
      "r",
      json{{"topic", "t"},
           {"bootstrap_servers", "127.0.0.1:1"},
           {"strategy", {{"mode", "append"}, {"only_new_rows", true}, {"unique_key", "id"}}}},
      nullptr,
      {},
      &diag,
      nullptr};
  EXPECT_THROW(make_kafka_sink(only_new), Error);
  SinkContext no_brokers{"s", "r", json{{"topic", "t"}}, nullptr, {}, &diag, nullptr};
  EXPECT_THROW(make_kafka_sink(no_brokers), Error);
}

// The offsets a consumer group committed, read back with rd_kafka_committed (-1001: none).
std::map<int32_t, int64_t> group_offsets(const std::string& bootstrap, const std::string& group,
                                         const std::string& topic, int partitions) {
  char errstr[256];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), errstr, sizeof(errstr));
  rd_kafka_conf_set(conf, "group.id", group.c_str(), errstr, sizeof(errstr));
  kafka::HandlePtr rk(rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr)));
  kafka::PartitionListPtr list(rd_kafka_topic_partition_list_new(partitions));
  for (int p = 0; p < partitions; ++p)
    rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), p);
  EXPECT_EQ(rd_kafka_committed(rk.get(), list.get(), 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
  std::map<int32_t, int64_t> out;
  for (int i = 0; i < list->cnt; ++i) out[list->elems[i].partition] = list->elems[i].offset;
  return out;
}

// consumer_group: after each state commit (committed()), the group holds the same next
// offsets as dpone's position; without the option nothing is committed; a refused commit
// is a warning, never an exception.
TEST(KafkaSource, CommittedMirrorsOffsetsToTheConsumerGroup) {
  MockCluster cluster;
  cluster.topic("lag", 2);
  Diagnostics diag;
  SourceContext ctx{"lag",
                    json{{"topic", "lag"},
                         {"bootstrap_servers", cluster.bootstrap()},
                         {"value_format", "string"},
                         {"consumer_group", "dpone-lag-monitor"}},
                    nullptr,
                    {},
                    &diag};
  json position;
  for (int run = 0; run < 3; ++run) {
    std::vector<std::tuple<int32_t, std::string, std::string>> batch;
    for (int i = 0; i < 3 + run; ++i) batch.emplace_back(i % 2, "k", "v");
    produce(cluster.bootstrap(), "lag", batch);
    auto source = make_kafka_source(ctx);
    Window w = source->plan_window(position);
    source->discover();
    EXPECT_EQ(read_all(*source, w).size(), static_cast<size_t>(3 + run));
    position = source->next_position(w);
    source->committed(w, position);
    auto got = group_offsets(cluster.bootstrap(), "dpone-lag-monitor", "lag", 2);
    EXPECT_EQ(got[0], position["lag"]["0"].get<int64_t>()) << "run " << run;
    EXPECT_EQ(got[1], position["lag"]["1"].get<int64_t>()) << "run " << run;
  }
  EXPECT_EQ(position, json::parse(R"({"lag":{"0":7,"1":5}})"));
  EXPECT_TRUE(diag.warnings().empty());

  // Without consumer_group: no group gets offsets (the reading consumer's own group.id
  // "dpone-<stream>" is never committed either).
  SourceContext plain{"lag", json{{"topic", "lag"}, {"bootstrap_servers", cluster.bootstrap()}},
                      nullptr, {}, &diag};
  auto quiet = make_kafka_source(plain);
  Window w = quiet->plan_window(json());
  quiet->committed(w, quiet->next_position(w));
  EXPECT_EQ(group_offsets(cluster.bootstrap(), "dpone-lag", "lag", 2)[0], RD_KAFKA_OFFSET_INVALID);

  // The coordinator refuses the commit: a warning naming the group; nothing thrown.
  std::vector<rd_kafka_resp_err_t> errors(5, RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED);
  rd_kafka_mock_push_request_errors_array(cluster.get(), 8 /* OffsetCommit */, errors.size(),
                                          errors.data());
  auto refused = make_kafka_source(ctx);
  Window w2 = refused->plan_window(position);
  EXPECT_NO_THROW(refused->committed(w2, json::parse(R"({"lag":{"0":9,"1":9}})")));
  ASSERT_EQ(diag.warnings().size(), 1u);
  EXPECT_NE(diag.warnings()[0].find("consumer group 'dpone-lag-monitor' failed"),
            std::string::npos)
      << diag.warnings()[0];
  rd_kafka_mock_clear_request_errors(cluster.get(), 8);
  auto kept = group_offsets(cluster.bootstrap(), "dpone-lag-monitor", "lag", 2);
  EXPECT_EQ(kept[0], 7);  // unchanged by the refused commit
}

Schema tomb_schema() {
  Schema s;
  s.columns = {Column{"id", LogicalType::of(TypeId::Int64)},
               Column{"text", LogicalType::of(TypeId::String)},
               Column{"gone", LogicalType::of(TypeId::Bool)}};
  return s;
}

Artifact tomb_artifact(std::vector<std::vector<std::optional<std::string>>> rows) {
  StreamingRows s;
  s.batches = std::make_unique<RowsReader>(tomb_schema(), std::move(rows));
  return s;
}

SinkContext sink_ctx(const std::string& bootstrap, const std::string& topic, json extra,
                     Diagnostics& diag) {
  json options{{"topic", topic},
               {"bootstrap_servers", bootstrap},
               {"headers", json::array()},
               {"strategy", {{"mode", "append"}, {"unique_key", "id"}}}};
  for (const auto& [k, v] : extra.items()) options[k] = v;
  return SinkContext{"s", "run-t", options, nullptr, {}, &diag, nullptr};
}

// tombstone_column: rows where it is true become (key, null value) in their key's
// partition; the column is not in the other values; counted as deletes.
TEST(KafkaSink, TombstoneColumnSendsNullValuesInTheKeysPartition) {
  MockCluster cluster;
  cluster.topic("tomb", 4);
  Diagnostics diag;
  auto sink = make_kafka_sink(
      sink_ctx(cluster.bootstrap(), "tomb", json{{"tombstone_column", "gone"}}, diag));
  EXPECT_EQ(sink->accepts().size(), 1u);  // no JSON lines pass-through with tombstones
  sink->inspect();
  std::vector<std::vector<std::optional<std::string>>> rows;
  for (int i = 0; i < 40; ++i)
    rows.push_back({std::to_string(i % 20), "t" + std::to_string(i),
                    i >= 20 && i % 2 ? std::optional<std::string>("true")
                    : i % 5 == 0     ? std::nullopt
                                     : std::optional<std::string>("false")});
  StagedLoad staged = sink->stage(tomb_artifact(rows), tomb_schema());
  EXPECT_EQ(staged.rows, 40);
  EXPECT_EQ(staged.details["tombstones"], 10);
  PromoteRequest req;
  req.receipt = LoadReceipt{"s", "run-t", 0, json(), json(), 40, "now"};
  PromoteResult pr = sink->promote(staged, req);
  EXPECT_EQ(pr.inserted, 30);
  EXPECT_EQ(pr.deleted, 10);
  auto got = consume_all(cluster.bootstrap(), "tomb", 4);
  ASSERT_EQ(got.size(), 40u);
  std::map<std::string, std::set<int32_t>> partitions_of_key;
  int tombstones = 0;
  for (const auto& m : got) {
    partitions_of_key[m.key].insert(m.partition);
    EXPECT_EQ(m.partition, kafka::java_partition(m.key, 4));
    if (m.null_value) {
      ++tombstones;
      EXPECT_EQ(std::stoi(m.key) % 2, 1) << m.key;
      continue;
    }
    json v = json::parse(m.value);
    EXPECT_FALSE(v.contains("gone")) << m.value;
    EXPECT_EQ(std::to_string(v["id"].get<int>()), m.key);
  }
  EXPECT_EQ(tombstones, 10);
  for (const auto& [k, ps] : partitions_of_key) EXPECT_EQ(ps.size(), 1u) << k;

  // Without a key, or naming a column that is not bool: config errors.
  json unkeyed{{"topic", "tomb"},
               {"bootstrap_servers", cluster.bootstrap()},
               {"tombstone_column", "gone"}};
  try {
    make_kafka_sink(SinkContext{"s", "r", unkeyed, nullptr, {}, &diag, nullptr});
    FAIL() << "expected CONFIG_INVALID";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::ConfigInvalid);
    EXPECT_NE(std::string(e.what()).find("needs a key"), std::string::npos) << e.what();
  }
  auto not_bool = make_kafka_sink(
      sink_ctx(cluster.bootstrap(), "tomb", json{{"tombstone_column", "text"}}, diag));
  try {
    not_bool->stage(tomb_artifact({}), tomb_schema());
    FAIL() << "expected CONFIG_BAD_VALUE";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::ConfigBadValue);
    EXPECT_NE(std::string(e.what()).find("not bool"), std::string::npos) << e.what();
  }
}

// value_format csv: one header-less RFC 4180 line per row (quotes only where needed, NULL
// empty, "" the empty string); string: one column's text, NULL a tombstone.
TEST(KafkaSink, CsvAndStringValueFormats) {
  MockCluster cluster;
  cluster.topic("csv", 1);
  cluster.topic("str", 1);
  Diagnostics diag;
  std::vector<std::vector<std::optional<std::string>>> rows = {
      {"1", "plain", "false"},
      {"2", "a,b", "false"},
      {"3", "say \"hi\"", std::nullopt},
      {"4", "two\nlines", "false"},
      {"5", "", "false"},
      {"6", std::nullopt, "false"},
      {"7", "żółw ✓", "true"}};
  auto csv = make_kafka_sink(sink_ctx(cluster.bootstrap(), "csv", json{{"value_format", "csv"}}, diag));
  EXPECT_EQ(csv->accepts().size(), 1u);
  csv->inspect();
  EXPECT_EQ(csv->stage(tomb_artifact(rows), tomb_schema()).rows, 7);
  std::map<std::string, std::string> by_key;
  for (const auto& m : consume_all(cluster.bootstrap(), "csv", 1)) by_key[m.key] = m.value;
  EXPECT_EQ(by_key["1"], "1,plain,false");
  EXPECT_EQ(by_key["2"], "2,\"a,b\",false");
  EXPECT_EQ(by_key["3"], "3,\"say \"\"hi\"\"\",");
  EXPECT_EQ(by_key["4"], "4,\"two\nlines\",false");
  EXPECT_EQ(by_key["5"], "5,\"\",false");
  EXPECT_EQ(by_key["6"], "6,,false");
  EXPECT_EQ(by_key["7"], "7,żółw ✓,true");

  // string: the value column is named (three columns besides the key otherwise).
  auto ambiguous = make_kafka_sink(
      sink_ctx(cluster.bootstrap(), "str", json{{"value_format", "string"}}, diag));
  try {
    ambiguous->stage(tomb_artifact({}), tomb_schema());
    FAIL() << "expected CONFIG_INVALID";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::ConfigInvalid);
    EXPECT_NE(std::string(e.what()).find("text, gone"), std::string::npos) << e.what();
  }
  auto str = make_kafka_sink(sink_ctx(cluster.bootstrap(), "str",
                                      json{{"value_format", "string"}, {"value_column", "text"}},
                                      diag));
  str->inspect();
  StagedLoad staged = str->stage(tomb_artifact(rows), tomb_schema());
  EXPECT_EQ(staged.details["tombstones"], 1);
  std::map<std::string, Consumed> got;
  for (const auto& m : consume_all(cluster.bootstrap(), "str", 1)) got[m.key] = m;
  ASSERT_EQ(got.size(), 7u);
  EXPECT_EQ(got["2"].value, "a,b");
  EXPECT_EQ(got["3"].value, "say \"hi\"");
  EXPECT_EQ(got["4"].value, "two\nlines");
  EXPECT_EQ(got["5"].value, "");
  EXPECT_FALSE(got["5"].null_value);  // the empty string is not a tombstone
  EXPECT_TRUE(got["6"].null_value);   // NULL is
  EXPECT_EQ(got["7"].value, "żółw ✓");

  // A NULL value without a key cannot be a tombstone: the run fails naming the column.
  json unkeyed{{"topic", "str"},
               {"bootstrap_servers", cluster.bootstrap()},
               {"value_format", "string"},
               {"value_column", "text"}};
  auto no_key = make_kafka_sink(SinkContext{"s", "r", unkeyed, nullptr, {}, &diag, nullptr});
  no_key->inspect();
  try {
    no_key->stage(tomb_artifact({{"1", std::nullopt, "false"}}), tomb_schema());
    FAIL() << "expected TYPE_MISMATCH";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::TypeMismatch);
    EXPECT_NE(std::string(e.what()).find("'text'"), std::string::npos) << e.what();
  }
  EXPECT_THROW(make_kafka_sink(sink_ctx(cluster.bootstrap(), "str",
                                        json{{"value_format", "xml"}}, diag)),
               Error);
}

}  // namespace
}  // namespace dpone
