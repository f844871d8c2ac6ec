// Integration tests of the clickhouse connector against a real ClickHouse server named by
// DPONE_TEST_CH_URL (http://127.0.0.1:<port>). Without it the server tests fail when
// CI=true or DPONE_REQUIRE_SERVICES=1, and are skipped otherwise. Each test works in its
// own database (random name), dropped at the end.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <random>
#include <set>
#include <thread>

#include "connectors/clickhouse/ch_connector.hpp"
#include "core/errors.hpp"

using dpone::Artifact;
using dpone::ChangeKind;
using dpone::Column;
using dpone::Error;
using dpone::ErrorCode;
using dpone::LogicalType;
using dpone::ResolvedConnection;
using dpone::Schema;
using dpone::SchemaChange;
using dpone::StrategyMode;
using dpone::StrategySpec;
using dpone::TypeId;
using nlohmann::json;
namespace ch = dpone::ch;

namespace {

const dpone::ArtifactSpec kBatches{dpone::ArtifactKind::StreamingRows,
                                   dpone::WireFormat::RecordBatch};

using Cell = std::optional<std::string>;
using Row = std::vector<Cell>;
const Cell kNull = std::nullopt;

class RowsReader : public dpone::BatchReader {
 public:
  RowsReader(Schema schema, std::vector<Row> rows, size_t batch)
      : schema_(std::move(schema)), rows_(std::move(rows)), batch_(batch) {}
  const Schema& schema() const override { return schema_; }
  std::optional<dpone::RecordBatch> next() override {
    if (pos_ >= rows_.size()) return std::nullopt;
    dpone::RecordBatch b(schema_.columns.size());
    for (size_t n = 0; n < batch_ && pos_ < rows_.size(); ++n, ++pos_) {
      for (const auto& cell : rows_[pos_]) {
        if (cell) {
          b.append(*cell);
        } else {
          b.append_null();
        }
      }
    }
    return b;
  }

 private:
  Schema schema_;
  std::vector<Row> rows_;
  size_t batch_;
  size_t pos_ = 0;
};

class StringBytes : public dpone::ByteReader {
 public:
  explicit StringBytes(std::string data, size_t chunk) : data_(std::move(data)), chunk_(chunk) {}
  size_t read(char* buffer, size_t size) override {
    size_t n = std::min({size, chunk_, data_.size() - pos_});
    std::memcpy(buffer, data_.data() + pos_, n);
    pos_ += n;
    return n;
  }

 private:
  std::string data_;
  size_t chunk_;
  size_t pos_ = 0;
};

Artifact rows_artifact(const Schema& schema, std::vector<Row> rows, size_t batch = 2) {
  dpone::StreamingRows s;
  s.batches = std::make_unique<RowsReader>(schema, std::move(rows), batch);
  return s;
}

Artifact copy_artifact(std::string text, size_t chunk = 7) {
  dpone::StreamingRows s;
  s.format = dpone::WireFormat::PgCopyText;
  s.bytes = std::make_unique<StringBytes>(std::move(text), chunk);
  return s;
}

std::vector<Row> drain(Artifact artifact) {
  auto& rows = std::get<dpone::StreamingRows>(artifact);
  std::vector<Row> out;
  while (auto batch = rows.batches->next()) {
    for (size_t r = 0; r < batch->num_rows(); ++r) {
      Row row;
      for (size_t c = 0; c < batch->num_columns(); ++c) {
        if (batch->is_null(r, c)) {
          row.push_back(kNull);
        } else {
          row.emplace_back(std::string(batch->cell(r, c)));
        }
      }
      out.push_back(std::move(row));
    }
  }
  return out;
}

StrategySpec strategy(StrategyMode mode, std::vector<std::string> key = {}) {
  StrategySpec s;
  s.mode = mode;
  s.unique_key = std::move(key);
  s.raw = json{{"mode", dpone::to_string(mode)}};
  return s;
}

Schema people_schema() {
  Schema s;
  s.columns = {{"id", LogicalType::of(TypeId::Int64), false},
               {"name", LogicalType::of(TypeId::String), true},
               {"score", LogicalType::of(TypeId::Int32), true}};
  s.primary_key = {"id"};
  return s;
}

bool services_required() {
  const char* ci = std::getenv("CI");
  const char* req = std::getenv("DPONE_REQUIRE_SERVICES");
  return (ci && std::string(ci) == "true") || (req && std::string(req) == "1");
}

class ClickHouseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* url = std::getenv("DPONE_TEST_CH_URL");
    if (!url || !*url) {
      if (services_required()) {
        FAIL() << "DPONE_TEST_CH_URL is not set but services are required (CI=true or "
                  "DPONE_REQUIRE_SERVICES=1): run scripts/services.sh start and source "
                  "/tmp/dpone-services/env.sh";
      }
      GTEST_SKIP() << "DPONE_TEST_CH_URL is not set: ClickHouse tests skipped";
    }
    std::random_device rd;
    db_name_ = "dpone_t_" + std::to_string(::getpid()) + "_" + std::to_string(rd() % 1000000);
    conn_.id = "test_ch";
    conn_.type = "clickhouse";
    conn_.fields["url"] = url;
    conn_.fields["database"] = db_name_;
    ch::Endpoint ep = ch::endpoint_from(conn_, "test");
    ep.database.clear();
    db_ = std::make_unique<ch::Client>(ep, ErrorCode::Internal);
    db_->exec("CREATE DATABASE " + db_name_);
    ep.database = db_name_;
    db_ = std::make_unique<ch::Client>(ep, ErrorCode::Internal);
  }
  void TearDown() override {
    if (db_) db_->exec("DROP DATABASE IF EXISTS " + db_name_);
  }

  std::unique_ptr<dpone::Sink> sink(const std::string& table, const std::string& run_id,
                                    json extra = json::object()) {
    dpone::SinkContext ctx;
    ctx.stream = "s_" + table;
    ctx.run_id = run_id;
    ctx.options = json{{"table", table}};
    for (auto& [k, v] : extra.items()) ctx.options[k] = v;
    ctx.connection = &conn_;
    ctx.diagnostics = &diag_;
    ctx.on_progress = [this](int64_t rows, int64_t) { progress_.push_back(rows); };
    return dpone::make_clickhouse_sink(ctx);
  }

  std::unique_ptr<dpone::Source> source(json options) {
    dpone::SourceContext ctx;
    ctx.stream = "src";
    ctx.options = std::move(options);
    ctx.connection = &conn_;
    ctx.diagnostics = &diag_;
    return dpone::make_clickhouse_source(ctx);
  }

  std::vector<Row> read(json options, json& position, Schema* schema_out = nullptr,
                        dpone::Window* window_out = nullptr) {
    auto src = source(std::move(options));
    auto w = src->plan_window(position);
    auto schema = src->discover();
    if (schema_out) *schema_out = schema;
    dpone::ExtractOptions eo;
    eo.batch_rows = 3;
    auto rows = drain(src->extract(w, kBatches, eo));
    position = src->next_position(w);
    if (window_out) *window_out = w;
    return rows;
  }

  dpone::PromoteResult load_artifact(const std::string& table, const std::string& run_id,
                                     const Schema& schema, Artifact artifact, StrategySpec strat,
                                     json extra = json::object()) {
    auto s = sink(table, run_id, extra);
    auto target = s->inspect();
    SchemaChange create;
    create.kind = ChangeKind::CreateTable;
    create.safe = true;
    std::vector<const SchemaChange*> changes;
    if (!target.exists) changes.push_back(&create);
    auto staged = s->stage(std::move(artifact), schema);
    auto gates =
        s->check(staged, {{"k_nn", "not_null", schema.primary_key, "error", json::object()},
                          {"k_u", "unique", schema.primary_key, "error", json::object()}});
    for (const auto& g : gates) EXPECT_TRUE(g.passed) << g.name;
    dpone::PromoteRequest req;
    req.strategy = std::move(strat);
    req.changes = changes;
    req.source_schema = schema;
    req.receipt.stream = "s_" + table;
    req.receipt.run_id = run_id;
    req.receipt.rows = staged.rows;
    req.receipt.base_revision = 7;
    req.receipt.window = json{{"high", 1}};
    req.receipt.new_position = json{{"cursor", run_id}};
    req.expected_latest_receipt = dpone::newest_receipt_run_id(*s);
    auto r = s->promote(staged, req);
    s->abort(staged);
    return r;
  }

  dpone::PromoteResult load(const std::string& table, const std::string& run_id,
                            const Schema& schema, std::vector<Row> rows, StrategySpec strat,
                            json extra = json::object()) {
    return load_artifact(table, run_id, schema, rows_artifact(schema, std::move(rows)),
                         std::move(strat), extra);
  }

  std::vector<std::vector<std::string>> table_rows(const std::string& table,
                                                   const std::string& order = "id") {
    return db_->rows("SELECT * FROM " + db_name_ + "." + table + " ORDER BY " + order);
  }
  int64_t count(const std::string& table) {
    return db_->int64("SELECT count() FROM " + db_name_ + "." + table);
  }
  std::set<std::string> tables() {
    std::set<std::string> out;
    for (auto& r : db_->rows("SELECT name FROM system.tables WHERE database = '" + db_name_ + "'"))
      out.insert(r[0]);
    return out;
  }

  ResolvedConnection conn_;
  std::string db_name_;
  std::unique_ptr<ch::Client> db_;
  dpone::Diagnostics diag_;
  std::vector<int64_t> progress_;
};

// --- pure tests (no server) -----------------------------------------------------------

TEST(ChTypes, MapsBothWaysAndCommentsWhatTheTypeLoses) {
  ch::ServerFeatures old = ch::features_of(18, 16, "18.16.1");
  EXPECT_FALSE(old.datetime64);
  EXPECT_FALSE(old.exchange);
  EXPECT_TRUE(ch::features_of(21, 8, "21.8").exchange);
  struct Case {
    LogicalType t;
    bool nullable;
    std::string ch;
    bool comment;
  };
  std::vector<Case> cases = {
      {LogicalType::of(TypeId::Bool), false, "Enum8('false' = 0, 'true' = 1)", false},
      {LogicalType::of(TypeId::Int16), true, "Nullable(Int16)", false},
      {LogicalType::of(TypeId::Int64), false, "Int64", false},
      {LogicalType::of(TypeId::Float64), false, "Float64", false},
      {LogicalType::decimal(12, 2), true, "Nullable(Decimal(12, 2))", false},
      {LogicalType::of(TypeId::String), false, "String", false},
      {LogicalType::varchar(10), false, "String", true},
      {LogicalType::of(TypeId::Bytes), false, "String", true},
      {LogicalType::of(TypeId::Json), false, "String", true},
      {LogicalType::of(TypeId::Time), false, "String", true},
      {LogicalType::of(TypeId::Date), false, "Date", false},
      {LogicalType::of(TypeId::Uuid), false, "UUID", false},
      {LogicalType::timestamp(0, false), false, "DateTime", false},
      {LogicalType::timestamp(0, true), true, "Nullable(DateTime('UTC'))", false},
  };
  for (const auto& c : cases) {
    Column col{"c", c.t, c.nullable};
    auto m = ch::map_logical(col, ch::SubsecondPolicy::Fail, old, "test");
    EXPECT_EQ(m.type, c.ch) << c.t.to_string();
    EXPECT_EQ(!m.comment.empty(), c.comment) << c.t.to_string();
    auto back = ch::map_clickhouse(m.type, m.comment);
    EXPECT_EQ(back.type, c.t) << c.t.to_string();
    EXPECT_EQ(back.nullable, c.nullable) << c.t.to_string();
  }
  EXPECT_EQ(ch::map_clickhouse("LowCardinality(Nullable(String))", "").type,
            LogicalType::of(TypeId::String));
  EXPECT_EQ(ch::map_clickhouse("UInt64", "").type, LogicalType::decimal(20, 0));
  EXPECT_FALSE(ch::map_clickhouse("Array(String)", "").known);
}

TEST(ChTypes, SubsecondTimestampNeedsAnExplicitPolicy) {
  ch::ServerFeatures old = ch::features_of(18, 16, "18.16.1");
  Column ts{"created_at", LogicalType::timestamp(6, true), true};
  try {
    ch::map_logical(ts, ch::SubsecondPolicy::Fail, old, "stream 's': clickhouse sink");
    FAIL() << "expected TYPE_MISMATCH";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::TypeMismatch);
    EXPECT_NE(std::string(e.what()).find("created_at"), std::string::npos);
    EXPECT_NE(std::string(e.hint()).find("int64_micros"), std::string::npos);
  }
  auto m = ch::map_logical(ts, ch::SubsecondPolicy::Int64Micros, old, "w");
  EXPECT_EQ(m.type, "Nullable(Int64)");
  EXPECT_EQ(m.comment, "dpone:" + LogicalType::timestamp(6, true).to_string());
  EXPECT_EQ(ch::map_logical(ts, ch::SubsecondPolicy::String, old, "w").type, "Nullable(String)");
  ch::ServerFeatures modern = ch::features_of(23, 3, "23.3");
  EXPECT_EQ(ch::map_logical(ts, ch::SubsecondPolicy::Fail, modern, "w").type,
            "Nullable(DateTime64(6, 'UTC'))");
}

TEST(ChTypes, MicrosConvertBothWays) {
  int64_t m = 0;
  ASSERT_TRUE(ch::timestamp_to_micros("1970-01-01T00:00:01.5Z", m));
  EXPECT_EQ(m, 1500000);
  ASSERT_TRUE(ch::timestamp_to_micros("2024-02-29 23:59:59.000001+00", m));
  EXPECT_EQ(ch::micros_to_timestamp(m, true), "2024-02-29T23:59:59.000001Z");
  ASSERT_TRUE(ch::timestamp_to_micros("1969-12-31T23:59:59.9", m));
  EXPECT_EQ(m, -100000);
  EXPECT_EQ(ch::micros_to_timestamp(m, false), "1969-12-31T23:59:59.9");
  EXPECT_FALSE(ch::timestamp_to_micros("2024-01-01 10:00:00+02", m));
  EXPECT_FALSE(ch::timestamp_to_micros("2024-01-01T10:00:00.1234567", m));
  EXPECT_FALSE(ch::timestamp_to_micros("yesterday", m));
}

// system.tables.sorting_key as 18.16 ("id, ts") and 21+ ("(id)", "(id, ts)") print it.
TEST(ChTypes, SortingKeyColumnsOnEveryVersion) {
  using V = std::vector<std::string>;
  EXPECT_EQ(ch::sorting_key_columns("id"), V{"id"});
  EXPECT_EQ(ch::sorting_key_columns("(id)"), V{"id"});
  EXPECT_EQ(ch::sorting_key_columns("id, ts"), (V{"id", "ts"}));
  EXPECT_EQ(ch::sorting_key_columns("(id, ts)"), (V{"id", "ts"}));
  EXPECT_EQ(ch::sorting_key_columns("(`my col`, id)"), V{});  // not a plain name
  EXPECT_EQ(ch::sorting_key_columns("`order_id`, n"), (V{"order_id", "n"}));
  EXPECT_EQ(ch::sorting_key_columns("toDate(ts), id"), V{});
  EXPECT_EQ(ch::sorting_key_columns(""), V{});
  EXPECT_EQ(ch::sorting_key_columns("tuple()"), V{});
  EXPECT_TRUE(ch::features_of(21, 9, "21.9").decimal_trailing_zeros_setting);
  EXPECT_FALSE(ch::features_of(18, 16, "18.16.1").decimal_trailing_zeros_setting);
}

TEST(ChTypes, TsvEscapesRoundTrip) {
  std::string nasty = std::string("a\tb\nc\\d\re") + '\0' + "é";
  std::string esc;
  ch::tsv_escape_append(esc, nasty);
  EXPECT_EQ(esc.find('\t'), std::string::npos);
  EXPECT_EQ(esc.find('\n'), std::string::npos);
  EXPECT_EQ(ch::tsv_unescape(esc), nasty);
  EXPECT_EQ(ch::to_canonical("inf", ch::map_clickhouse("Float64", "")), "Infinity");
  EXPECT_EQ(ch::to_canonical("2024-01-01 10:00:00", ch::map_clickhouse("DateTime('UTC')", "")),
            "2024-01-01T10:00:00Z");
}

// --- server tests ---------------------------------------------------------------------

TEST_F(ClickHouseTest, TypeRoundTripWithEdgeValues) {
  Schema s;
  s.columns = {{"id", LogicalType::of(TypeId::Int64), false},
               {"b", LogicalType::of(TypeId::Bool), true},
               {"i16", LogicalType::of(TypeId::Int16), true},
               {"i32", LogicalType::of(TypeId::Int32), true},
               {"f32", LogicalType::of(TypeId::Float32), true},
               {"f64", LogicalType::of(TypeId::Float64), true},
               {"dec", LogicalType::decimal(12, 2), true},
               {"txt", LogicalType::of(TypeId::String), true},
               {"vc", LogicalType::varchar(20), true},
               {"raw", LogicalType::of(TypeId::Bytes), true},
               {"d", LogicalType::of(TypeId::Date), true},
               {"t", LogicalType::of(TypeId::Time), true},
               {"ts", LogicalType::timestamp(0, false), true},
               {"tstz", LogicalType::timestamp(0, true), true},
               {"ts6", LogicalType::timestamp(6, true), true},
               {"js", LogicalType::of(TypeId::Json), true},
               {"u", LogicalType::of(TypeId::Uuid), true}};
  s.primary_key = {"id"};
  std::vector<Row> rows = {
      {"1", "true", "-32768", "2147483647", "1.5", "0.1", "-0.10", "tab\there", "ünï😀",
       std::string("\x01\\\x00\n", 4), "2024-02-29", "23:59:59.5", "2024-01-01T10:00:00",
       "1970-01-01T00:00:00Z", "2024-01-01T10:00:00.123456Z", "{\"a\":[1,\"x\\ty\"]}",
       "0e37df36-f698-11e6-8dd4-cb9ced3df976"},
      {"2", "false", "0", "0", "NaN", "-Infinity", "12.50", "", "", "", "1970-01-01", "00:00:00",
       "2105-12-31T23:59:59", "2038-01-19T03:14:08Z", "1969-12-31T23:59:59.999999Z", "null",
       "00000000-0000-0000-0000-000000000000"},
      {"3", kNull, kNull, kNull, kNull, kNull, kNull, kNull, kNull, kNull, kNull, kNull, kNull,
       kNull, kNull, kNull, kNull},
      {"4", "true", "1", "1", "Infinity", "1e+300", "7.00", "line1\nline2\\n\\", "back\\slash",
       "\\N", "2000-01-01", "12:00:00", "2000-01-01T00:00:00", "2000-01-01T00:00:00Z",
       "2000-01-01T00:00:00Z", "\"\\\\N\"", kNull},
  };
  auto r = load("rt", "run1", s, rows, strategy(StrategyMode::Append),
                json{{"subsecond_timestamps", "int64_micros"}});
  EXPECT_EQ(r.inserted, 4);
  // The target's schema reads back exactly (comments carry what the type loses).
  auto target = sink("rt", "run2", json{{"subsecond_timestamps", "int64_micros"}})->inspect();
  ASSERT_TRUE(target.exists);
  EXPECT_EQ(target.schema.columns, s.columns);
  EXPECT_EQ(target.server.rfind("ClickHouse ", 0), 0u);
  json pos;
  Schema discovered;
  auto back = read(json{{"table", "rt"}}, pos, &discovered);
  EXPECT_EQ(discovered.columns, s.columns);
  EXPECT_EQ(discovered.primary_key, std::vector<std::string>{"id"});
  std::sort(back.begin(), back.end());
  ASSERT_EQ(back.size(), rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    for (size_t c = 0; c < s.columns.size(); ++c) {
      std::string want = rows[i][c] ? *rows[i][c] : "<NULL>";
      std::string got = back[i][c] ? *back[i][c] : "<NULL>";
      if (s.columns[c].type.id == TypeId::Float32 && want == "1.5") want = "1.5";
      EXPECT_EQ(got, want) << "row " << i << " column " << s.columns[c].name;
    }
  }
}

TEST_F(ClickHouseTest, PgCopyTextIsTranscodedOnTheFly) {
  Schema s;
  s.columns = {{"id", LogicalType::of(TypeId::Int64), false},
               {"flag", LogicalType::of(TypeId::Bool), true},
               {"raw", LogicalType::of(TypeId::Bytes), true},
               {"at", LogicalType::timestamp(0, true), true},
               {"at6", LogicalType::timestamp(6, true), true},
               {"txt", LogicalType::of(TypeId::String), true}};
  s.primary_key = {"id"};
  // As PostgreSQL's COPY TO STDOUT (text, TimeZone=UTC) writes it; no final newline.
  std::string copy =
      "1\tt\t\\\\x00ff0a\t2024-01-01 10:00:00+00\t2024-01-01 10:00:00.25+00\ta\\tb\\nc\\\\d\n"
      "2\tf\t\\\\x\t1999-12-31 23:59:59+00\t1999-12-31 23:59:59+00\t\n"
      "3\t\\N\t\\N\t\\N\t\\N\t\\N";
  auto r = load_artifact("cp", "run1", s, copy_artifact(copy), strategy(StrategyMode::Append),
                         json{{"subsecond_timestamps", "int64_micros"}});
  EXPECT_EQ(r.inserted, 3);
  json pos;
  auto back = read(json{{"table", "cp"}}, pos);
  std::sort(back.begin(), back.end());
  ASSERT_EQ(back.size(), 3u);
  EXPECT_EQ(back[0], (Row{"1", "true", std::string("\x00\xff\n", 3), "2024-01-01T10:00:00Z",
                          "2024-01-01T10:00:00.25Z", "a\tb\nc\\d"}));
  EXPECT_EQ(back[1], (Row{"2", "false", "", "1999-12-31T23:59:59Z", "1999-12-31T23:59:59Z", ""}));
  EXPECT_EQ(back[2], (Row{"3", kNull, kNull, kNull, kNull, kNull}));
  // Pass-through without rewriting (no bool/bytea/sub-second column): bytes as they are.
  Schema p = people_schema();
  std::string plain = "1\tx\\ty\t5\n2\t\\N\t\\N\n";
  auto r2 =
      load_artifact("cp2", "run1", p, copy_artifact(plain, 3), strategy(StrategyMode::Append));
  EXPECT_EQ(r2.inserted, 2);
  auto rows2 = table_rows("cp2");
  EXPECT_EQ(rows2[0], (std::vector<std::string>{"1", "x\ty", "5"}));
  EXPECT_EQ(rows2[1], (std::vector<std::string>{"2", "\\N", "\\N"}));
}

// Before 20.1 (no DateTime64) a sub-second timestamp fails the plan unless a policy is
// chosen; from 20.1 it maps to DateTime64(p). Asserted for the server the test runs on.
TEST_F(ClickHouseTest, SubsecondTimestampFailsThePlanByDefault) {
  Schema s;
  s.columns = {{"id", LogicalType::of(TypeId::Int64), false},
               {"at", LogicalType::timestamp(3, false), true}};
  auto k = sink("ss", "run1");
  SchemaChange create;
  create.kind = ChangeKind::CreateTable;
  auto [major, minor] = db_->version_number();
  if (ch::features_of(major, minor, db_->version()).datetime64) {
    auto ddl = k->render_ddl(s, {&create});
    ASSERT_EQ(ddl.size(), 1u);
    EXPECT_NE(ddl[0].find("`at` Nullable(DateTime64(3))"), std::string::npos) << ddl[0];
    return;
  }
  try {
    k->render_ddl(s, {&create});
    FAIL() << "expected TYPE_MISMATCH";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::TypeMismatch);
    EXPECT_NE(std::string(e.what()).find("'at'"), std::string::npos);
  }
}

TEST_F(ClickHouseTest, StrategiesAndCounters) {
  Schema s = people_schema();
  auto r = load("p", "r1", s, {{"1", "a", "10"}, {"2", "b", "20"}}, strategy(StrategyMode::Append));
  EXPECT_EQ(r.inserted, 2);
  r = load("p", "r2", s, {{"3", "c", kNull}}, strategy(StrategyMode::Append));
  EXPECT_EQ(r.inserted, 1);
  EXPECT_EQ(count("p"), 3);
  // merge: 2 updated, 1 inserted
  r = load("p", "r3", s, {{"2", "B", "21"}, {"3", "C", "31"}, {"4", "d", "40"}},
           strategy(StrategyMode::Merge, {"id"}));
  EXPECT_EQ(r.updated, 2);
  EXPECT_EQ(r.inserted, 1);
  auto rows = table_rows("p");
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[1], (std::vector<std::string>{"2", "B", "21"}));
  EXPECT_EQ(rows[3], (std::vector<std::string>{"4", "d", "40"}));
  // append only_new_rows
  auto onr = strategy(StrategyMode::Append, {"id"});
  onr.only_new_rows = true;
  r = load("p", "r4", s, {{"4", "dup", "0"}, {"5", "e", "50"}}, onr);
  EXPECT_EQ(r.inserted, 1);
  EXPECT_EQ(count("p"), 5);
  // replace a slice by predicate
  auto rep = strategy(StrategyMode::Replace);
  rep.raw["where"] = "id >= 4";
  r = load("p", "r5", s, {{"4", "D", "44"}}, rep);
  EXPECT_EQ(r.deleted, 2);
  EXPECT_EQ(count("p"), 4);
  // full_refresh
  r = load("p", "r6", s, {{"9", "z", "90"}, {"8", "y", "80"}}, strategy(StrategyMode::FullRefresh));
  EXPECT_EQ(r.deleted, 4);
  EXPECT_EQ(r.inserted, 2);
  rows = table_rows("p");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0][0], "8");
  // receipts: one per run, the newest readable; nothing of dpone's left but the receipts.
  auto receipt = sink("p", "r7")->latest_receipt();
  ASSERT_TRUE(receipt);
  EXPECT_EQ(receipt->run_id, "r6");
  EXPECT_EQ(receipt->new_position, (json{{"cursor", "r6"}}));
  EXPECT_EQ(receipt->base_revision, 7);
  EXPECT_EQ(db_->int64("SELECT count() FROM " + db_name_ + ".p__dpone__loads"), 6);
  EXPECT_EQ(tables(), (std::set<std::string>{"p", "p__dpone__loads"}));
  // unsupported / misconfigured strategies fail before anything changes
  auto bad = strategy(StrategyMode::Merge);
  EXPECT_THROW(load("p", "r8", s, {{"1", "x", "1"}}, bad), Error);
  EXPECT_EQ(count("p"), 2);
}

TEST_F(ClickHouseTest, PartitionReplaceSwapsOnlyStagedPartitions) {
  Schema s;
  s.columns = {{"day", LogicalType::of(TypeId::Date), false},
               {"id", LogicalType::of(TypeId::Int64), false},
               {"v", LogicalType::of(TypeId::String), true}};
  s.primary_key = {"day", "id"};
  json opts{{"partition_by", "toYYYYMM(day)"}};
  auto pr = strategy(StrategyMode::PartitionReplace);
  load("pr", "r1", s,
       {{"2024-01-01", "1", "a"}, {"2024-01-02", "2", "b"}, {"2024-02-01", "3", "c"}},
       strategy(StrategyMode::Append), opts);
  auto r = load("pr", "r2", s, {{"2024-01-15", "4", "new"}}, pr, opts);
  EXPECT_EQ(r.deleted, 2);
  EXPECT_EQ(r.inserted, 1);
  auto rows = table_rows("pr", "id");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0][1], "3");
  EXPECT_EQ(rows[1][2], "new");
}

TEST_F(ClickHouseTest, EvolutionAddsAndWidensColumns) {
  Schema s = people_schema();
  load("ev", "r1", s, {{"1", "a", "10"}}, strategy(StrategyMode::Append));
  Schema s2 = s;
  s2.columns[2].type = LogicalType::of(TypeId::Int64);
  s2.columns.push_back({"note", LogicalType::of(TypeId::Json), true});
  auto k = sink("ev", "r2");
  auto target = k->inspect();
  auto diff = dpone::compare_schemas(s2, target.schema, dpone::EvolutionPolicy::Widening);
  ASSERT_FALSE(diff.has_unsafe());
  auto changes = diff.to_apply();
  ASSERT_EQ(changes.size(), 2u);
  auto staged = k->stage(rows_artifact(s2, {{"2", "b", "9000000000", "{\"x\":1}"}}), s2);
  dpone::PromoteRequest req;
  req.strategy = strategy(StrategyMode::Append);
  req.changes = changes;
  req.source_schema = s2;
  req.receipt.run_id = "r2";
  req.expected_latest_receipt = "r1";
  auto r = k->promote(staged, req);
  EXPECT_EQ(r.inserted, 1);
  auto after = sink("ev", "r3")->inspect();
  EXPECT_EQ(after.schema.columns[2].type, LogicalType::of(TypeId::Int64));
  EXPECT_EQ(after.schema.columns[3].type, LogicalType::of(TypeId::Json));
  auto rows = table_rows("ev");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0], (std::vector<std::string>{"1", "a", "10", "\\N"}));
  EXPECT_EQ(rows[1], (std::vector<std::string>{"2", "b", "9000000000", "{\"x\":1}"}));
}

TEST_F(ClickHouseTest, GatesFindNullAndDuplicateKeys) {
  Schema s = people_schema();
  s.columns[0].nullable = true;
  auto k = sink("g", "r1");
  auto staged =
      k->stage(rows_artifact(s, {{"1", "a", "1"}, {"1", "b", "2"}, {kNull, "c", "3"}}), s);
  EXPECT_EQ(staged.rows, 3);
  auto res = k->check(staged, {{"nn", "not_null", {"id"}, "error", json::object()},
                               {"u", "unique", {"id"}, "error", json::object()}});
  ASSERT_EQ(res.size(), 2u);
  EXPECT_FALSE(res[0].passed);
  EXPECT_EQ(res[0].failing_rows, 1);
  EXPECT_FALSE(res[1].passed);
  EXPECT_EQ(res[1].failing_rows, 2);
  ASSERT_FALSE(res[1].samples.empty());
  EXPECT_NE(res[1].samples[0].find("id=1"), std::string::npos) << res[1].samples[0];
  k->abort(staged);
  EXPECT_EQ(tables().count(staged.staging_name), 0u);
}

TEST_F(ClickHouseTest, CursorIncrementsAndFullReads) {
  db_->exec(
      "CREATE TABLE ev (id Int64, at DateTime('UTC'), v Nullable(String)) ENGINE = MergeTree ORDER "
      "BY id");
  db_->exec(
      "INSERT INTO ev VALUES (1, '2024-01-01 00:00:00', 'a'), (2, '2024-01-02 00:00:00', NULL)");
  json pos;
  dpone::Window w;
  auto rows = read(json{{"table", "ev"}, {"cursor", "id"}}, pos, nullptr, &w);
  EXPECT_EQ(rows.size(), 2u);
  EXPECT_EQ(pos, json(2));
  rows = read(json{{"table", "ev"}, {"cursor", "id"}}, pos, nullptr, &w);
  EXPECT_TRUE(w.empty);
  EXPECT_TRUE(rows.empty());
  db_->exec("INSERT INTO ev VALUES (3, '2024-01-03 00:00:00', 'c')");
  rows = read(json{{"table", "ev"}, {"cursor", "id"}}, pos);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0], (Row{"3", "2024-01-03T00:00:00Z", "c"}));
  // A DateTime cursor keeps its text position.
  json tpos;
  rows = read(json{{"table", "ev"}, {"cursor", "at"}}, tpos);
  EXPECT_EQ(rows.size(), 3u);
  EXPECT_EQ(tpos, json("2024-01-03 00:00:00"));
  db_->exec("INSERT INTO ev VALUES (4, '2024-01-04 00:00:00', 'd')");
  rows = read(json{{"table", "ev"}, {"cursor", "at"}}, tpos);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ((*rows[0][0]), "4");
  // Full and query sources
  json none;
  EXPECT_EQ(read(json{{"table", "ev"}}, none).size(), 4u);
  json qpos;
  auto q =
      read(json{{"query", "SELECT id, v FROM " + db_name_ + ".ev WHERE id > 1"}, {"cursor", "id"}},
           qpos);
  EXPECT_EQ(q.size(), 3u);
  EXPECT_EQ(qpos, json(4));
}

TEST_F(ClickHouseTest, ReaderSeesOnlyWholeGenerationsDuringFullRefresh) {
  Schema s = people_schema();
  auto make = [](int n) {
    std::vector<Row> rows;
    for (int i = 0; i < n; ++i) rows.push_back({std::to_string(i), "x", "1"});
    return rows;
  };
  load("sw", "r0", s, make(1000), strategy(StrategyMode::FullRefresh));
  std::atomic<bool> stop{false};
  std::vector<int64_t> seen;
  int errors = 0;
  std::thread reader([&] {
    ch::Endpoint ep = db_->endpoint();
    ch::Client c(ep, ErrorCode::Internal);
    while (!stop) {
      try {
        seen.push_back(c.int64("SELECT count() FROM " + db_name_ + ".sw"));
      } catch (const Error&) {
        ++errors;
      }
    }
  });
  auto fr = strategy(StrategyMode::FullRefresh);
  for (int i = 1; i <= 8; ++i)
    load("sw", "r" + std::to_string(i), s, make(i % 2 ? 1500 : 1000), fr);
  stop = true;
  reader.join();
  ASSERT_GT(seen.size(), 20u);
  for (int64_t n : seen) EXPECT_TRUE(n == 1000 || n == 1500) << n;
  EXPECT_EQ(errors, 0);
}

// A promotion that stops after it changed the target (here: its receipt INSERT fails)
// leaves its intent; the next run decides from it. Landed: the receipt is written and the
// rows stay once. Not landed (the rows are gone): undone, the window loads again. Part of
// the append landed: the run stops and says what to do; nothing is guessed.
TEST_F(ClickHouseTest, InterruptedPromotionIsDecidedFromItsIntent) {
  Schema s = people_schema();
  load("ip", "r1", s, {{"1", "a", "10"}}, strategy(StrategyMode::Append));
  const std::string loads = db_name_ + ".ip__dpone__loads";
  // Receipts behind a view: readable, but the receipt INSERT fails.
  auto break_receipts = [&] {
    db_->exec("RENAME TABLE " + loads + " TO " + loads + "_real");
    db_->exec("CREATE VIEW " + loads + " AS SELECT * FROM " + loads + "_real");
  };
  auto mend_receipts = [&] {
    db_->exec("DROP TABLE " + loads);
    db_->exec("RENAME TABLE " + loads + "_real TO " + loads);
  };
  auto interrupted_append = [&](const std::string& run, std::vector<Row> rows) {
    break_receipts();
    EXPECT_THROW(load("ip", run, s, std::move(rows), strategy(StrategyMode::Append)), Error);
    mend_receipts();
    EXPECT_EQ(tables().count("ip__dpone_pending_" + run), 1u);
    EXPECT_EQ(tables().count("ip__dpone_stg_" + run), 1u) << "the intent needs its staging";
  };
  auto delete_rows = [&](const std::string& where) {
    db_->exec("ALTER TABLE " + db_name_ + ".ip DELETE WHERE " + where);
    for (int i = 0;
         i < 500 && db_->int64("SELECT count() FROM system.mutations WHERE database = '" +
                               db_name_ + "' AND is_done = 0") > 0;
         ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
  };
  // Landed: 2, 3 and a second 1 (equal to the row that was there: the intent counted it
  // before) are in; the receipt of r2 is written by the next run.
  interrupted_append("r2", {{"2", "b", "20"}, {"3", "c", kNull}, {"1", "a", "10"}});
  EXPECT_EQ(count("ip"), 4);
  auto k = sink("ip", "r3");
  auto decided = k->recover_promotions({});
  ASSERT_EQ(decided.size(), 1u);
  EXPECT_NE(decided[0].find("landed; its receipt is written now"), std::string::npos) << decided[0];
  EXPECT_EQ(k->latest_receipt()->run_id, "r2");
  EXPECT_EQ(count("ip"), 4);
  EXPECT_EQ(tables(), (std::set<std::string>{"ip", "ip__dpone__loads"}));
  // Not landed: the rows never arrived (removed here as if the INSERT had not run).
  interrupted_append("r4", {{"4", "d", "40"}, {"5", "e", "50"}});
  delete_rows("id IN (4, 5)");
  ASSERT_EQ(count("ip"), 4);
  decided = sink("ip", "r5")->recover_promotions({});
  ASSERT_EQ(decided.size(), 1u);
  EXPECT_NE(decided[0].find("did not land"), std::string::npos) << decided[0];
  EXPECT_EQ(sink("ip", "r5")->latest_receipt()->run_id, "r2");
  EXPECT_EQ(tables(), (std::set<std::string>{"ip", "ip__dpone__loads"}));
  // Part of it landed: refused, the intent stays for the operator.
  interrupted_append("r6", {{"6", "f", "60"}, {"7", "g", "70"}});
  delete_rows("id = 7");
  try {
    sink("ip", "r7")->recover_promotions({});
    FAIL() << "an append that landed in part was decided";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::PromoteFailed);
    EXPECT_NE(std::string(e.what()).find("holds 1 rows of the window where it held 0 before and "
                                         "would hold 2"),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(tables().count("ip__dpone_pending_r6"), 1u);
  // A live run's intent is not touched, nor another stream's.
  EXPECT_TRUE(sink("ip", "r8")->recover_promotions({"r6"}).empty());
}

// Two runs of one stream that both reach promotion (a bypassed lease): the second one's
// compare-and-set sees the first one's intent or receipt and changes nothing.
TEST_F(ClickHouseTest, SecondPromotionOfOneWindowIsRefused) {
  Schema s = people_schema();
  load("cs", "r1", s, {{"1", "a", "10"}}, strategy(StrategyMode::Append));
  auto a = sink("cs", "r2");
  auto b = sink("cs", "r3");
  auto sa = a->stage(rows_artifact(s, {{"2", "b", "20"}}), s);
  auto sb = b->stage(rows_artifact(s, {{"2", "b", "20"}}), s);
  dpone::PromoteRequest req;
  req.strategy = strategy(StrategyMode::Append);
  req.source_schema = s;
  req.expected_latest_receipt = "r1";
  req.receipt.run_id = "r2";
  a->promote(sa, req);
  req.receipt.run_id = "r3";
  try {
    b->promote(sb, req);
    FAIL() << "both runs promoted one window";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::StateConflict) << e.what();
  }
  a->abort(sa);
  b->abort(sb);
  EXPECT_EQ(count("cs"), 2);
  EXPECT_EQ(tables(), (std::set<std::string>{"cs", "cs__dpone__loads"}));
}

// Other writers insert into the target while dpone appends, merges and replaces: every row
// they were acknowledged for is there afterwards, dpone's rows are exact, and a
// materialized view on the target counted every row dpone inserted, once.
TEST_F(ClickHouseTest, ConcurrentWritersKeepTheirRowsAndViewsSeeDponesInserts) {
  Schema s = people_schema();
  auto rows_of = [](int from, int to, const std::string& tag) {
    std::vector<Row> rows;
    for (int i = from; i < to; ++i) rows.push_back({std::to_string(i), tag, std::to_string(i % 7)});
    return rows;
  };
  json opts{{"partition_by", "intDiv(id, 1000)"}};
  int run = 0;
  load("w", "r" + std::to_string(++run), s, rows_of(0, 500, "append"),
       strategy(StrategyMode::Append), opts);  // creates the target
  db_->exec("CREATE TABLE w_seen (c UInt64) ENGINE = MergeTree ORDER BY tuple()");
  db_->exec("CREATE MATERIALIZED VIEW w_mv TO w_seen AS SELECT count() AS c FROM w");
  std::atomic<bool> stop{false};
  std::vector<std::vector<int64_t>> acked(3);
  std::vector<std::thread> writers;
  for (int t = 0; t < 3; ++t) {
    writers.emplace_back([&, t] {
      ch::Client c(db_->endpoint(), ErrorCode::Internal);
      for (int64_t id = 1000000 + t * 100000; !stop; ++id) {
        try {
          c.exec(fmt::format("INSERT INTO w VALUES ({}, 'writer {}', {})", id, t, t));
          acked[static_cast<size_t>(t)].push_back(id);
        } catch (const Error&) {
        }
      }
    });
  }
  int64_t dpone_inserted = 0;
  for (int i = 1; i < 8; ++i)
    dpone_inserted +=
        load("w", "r" + std::to_string(++run), s, rows_of(i * 500, (i + 1) * 500, "append"),
             strategy(StrategyMode::Append), opts)
            .inserted;
  for (int i = 0; i < 6; ++i) {  // rewrites 300 rows, adds 100
    auto r = load("w", "r" + std::to_string(++run), s,
                  rows_of(3500 + i * 100, 3900 + i * 100, "merge " + std::to_string(i)),
                  strategy(StrategyMode::Merge, {"id"}), opts);
    dpone_inserted += r.inserted + r.updated;
  }
  auto rep = strategy(StrategyMode::Replace);
  rep.raw["where"] = "id >= 200 AND id < 400";
  for (int i = 0; i < 6; ++i)
    dpone_inserted += load("w", "r" + std::to_string(++run), s,
                           rows_of(200, 400, "replace " + std::to_string(i)), rep, opts)
                          .inserted;
  auto pr = strategy(StrategyMode::PartitionReplace);
  for (int i = 0; i < 6; ++i)
    load("w", "r" + std::to_string(++run), s, rows_of(1000, 2000, "partition " + std::to_string(i)),
         pr, opts);  // REPLACE PARTITION: not an insert, views do not see it
  stop = true;
  for (auto& w : writers) w.join();
  size_t acked_total = 0;
  for (int t = 0; t < 3; ++t) {
    acked_total += acked[static_cast<size_t>(t)].size();
    ASSERT_FALSE(acked[static_cast<size_t>(t)].empty());
    int64_t lo = acked[static_cast<size_t>(t)].front(), hi = acked[static_cast<size_t>(t)].back();
    EXPECT_EQ(db_->int64(fmt::format("SELECT count() FROM w WHERE id BETWEEN {} AND {}", lo, hi)),
              static_cast<int64_t>(acked[static_cast<size_t>(t)].size()))
        << "writer " << t << " lost rows";
  }
  // dpone's rows: 0..4399, each once, with the last strategy's text.
  EXPECT_EQ(db_->int64("SELECT count() FROM w WHERE id < 1000000"), 4400);
  EXPECT_EQ(db_->int64("SELECT uniqExact(id) FROM w WHERE id < 1000000"), 4400);
  EXPECT_EQ(db_->int64("SELECT count() FROM w WHERE name = 'replace 5'"), 200);
  EXPECT_EQ(db_->int64("SELECT count() FROM w WHERE name = 'partition 5'"), 1000);
  EXPECT_EQ(db_->int64("SELECT count() FROM w WHERE name = 'merge 5'"), 400);
  EXPECT_EQ(db_->int64("SELECT count() FROM w WHERE name = 'append'"), 3500 - 200 - 1000);
  // The view counted the writers' inserts and dpone's INSERT ... SELECTs.
  EXPECT_EQ(db_->int64("SELECT sum(c) FROM w_seen"),
            static_cast<int64_t>(acked_total) + dpone_inserted);
  std::cout << "[ writers ] " << acked_total << " acknowledged single-row inserts during " << run
            << " dpone runs; all kept; view counted " << db_->int64("SELECT sum(c) FROM w_seen")
            << "\n";
}

TEST_F(ClickHouseTest, FailedStageLeavesNothingAndWrongCountIsCaught) {
  Schema s = people_schema();
  auto k = sink("fs", "r1");
  // A malformed integer: the server rejects the INSERT; staging is dropped.
  try {
    k->stage(rows_artifact(s, {{"1", "a", "1"}, {"x", "b", "2"}}), s);
    FAIL() << "expected STAGE_FAILED";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::StageFailed) << e.what();
  }
  EXPECT_TRUE(tables().empty());
  // Dates the server would wrap silently are refused on both paths.
  Schema d;
  d.columns = {{"id", LogicalType::of(TypeId::Int64), false},
               {"at", LogicalType::timestamp(0, true), true}};
  for (int path = 0; path < 2; ++path) {
    try {
      auto k2 = sink("fd", "r" + std::to_string(path));
      k2->stage(path == 0 ? rows_artifact(
                                d, {{"1", "2024-01-01T00:00:00Z"}, {"2", "2106-02-08T00:00:00Z"}})
                          : copy_artifact("1\t2024-01-01 00:00:00+00\n2\t1969-12-31 23:59:59+00\n"),
                d);
      FAIL() << "expected TYPE_OVERFLOW on path " << path;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::TypeOverflow) << e.what();
      EXPECT_NE(std::string(e.what()).find(path == 0 ? "2106-02-08" : "1969-12-31"),
                std::string::npos);
    }
  }
  EXPECT_TRUE(tables().empty());
}

TEST_F(ClickHouseTest, UnreachableServerIsSinkUnavailable) {
  ResolvedConnection bad = conn_;
  bad.fields["url"] = "http://127.0.0.1:1";
  dpone::SinkContext ctx;
  ctx.stream = "s";
  ctx.run_id = "r";
  ctx.options = json{{"table", "t"}};
  ctx.connection = &bad;
  ctx.diagnostics = &diag_;
  auto k = dpone::make_clickhouse_sink(ctx);
  try {
    k->inspect();
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::SinkUnavailable);
    EXPECT_NE(std::string(e.what()).find("127.0.0.1:1"), std::string::npos);
  }
}

}  // namespace
