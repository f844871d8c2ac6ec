// Integration tests of the postgres connector against a real PostgreSQL server named by
// DPONE_TEST_PG_DSN ("host=... port=... user=... dbname=..."). Without it the tests
// fail when CI=true or DPONE_REQUIRE_SERVICES=1, and are skipped otherwise.
// Each test works in its own schema (random name), dropped at the end.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "connectors/postgres/pg_connector.hpp"
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
using dpone::pg::PgConnection;
using nlohmann::json;

namespace {

// The request as a run planning now sends it (the receipt compare-and-set).
dpone::PromoteRequest& planned(dpone::Sink& sink, dpone::PromoteRequest& req) {
  req.expected_latest_receipt = dpone::newest_receipt_run_id(sink);
  return req;
}

const dpone::ArtifactSpec kBatches{dpone::ArtifactKind::StreamingRows,
                                   dpone::WireFormat::RecordBatch};
const dpone::ArtifactSpec kCopyBinary{dpone::ArtifactKind::StreamingRows,
                                      dpone::WireFormat::PgCopyBinary};
const dpone::ArtifactSpec kCopyText{dpone::ArtifactKind::StreamingRows,
                                    dpone::WireFormat::PgCopyText};
const dpone::ArtifactSpec kInternal{dpone::ArtifactKind::InternalQuery};

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

Artifact rows_artifact(const Schema& schema, std::vector<Row> rows, size_t batch = 2) {
  dpone::StreamingRows s;
  s.batches = std::make_unique<RowsReader>(schema, std::move(rows), batch);
  return s;
}

std::vector<Row> drain(Artifact artifact, size_t* batches = nullptr) {
  auto& rows = std::get<dpone::StreamingRows>(artifact);
  std::vector<Row> out;
  while (auto batch = rows.batches->next()) {
    if (batches) ++*batches;
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

std::optional<ResolvedConnection> dsn_connection() {
  const char* dsn = std::getenv("DPONE_TEST_PG_DSN");
  if (!dsn || !*dsn) return std::nullopt;
  ResolvedConnection c;
  c.id = "test_pg";
  c.type = "postgres";
  std::istringstream in(dsn);
  std::string part;
  while (in >> part) {
    auto eq = part.find('=');
    if (eq == std::string::npos) continue;
    std::string k = part.substr(0, eq), v = part.substr(eq + 1);
    if (k == "password") {
      c.secrets[k] = dpone::Secret(v);
    } else {
      c.fields[k] = v;
    }
  }
  return c;
}

bool services_required() {
  const char* ci = std::getenv("CI");
  const char* req = std::getenv("DPONE_REQUIRE_SERVICES");
  return (ci && std::string(ci) == "true") || (req && std::string(req) == "1");
}

class PostgresTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = dsn_connection();
    if (!c) {
      if (services_required()) {
        FAIL() << "DPONE_TEST_PG_DSN is not set but services are required (CI=true or "
                  "DPONE_REQUIRE_SERVICES=1): run scripts/services.sh start and source "
                  "/tmp/dpone-services/env.sh";
      }
      GTEST_SKIP() << "DPONE_TEST_PG_DSN is not set: PostgreSQL tests skipped";
    }
    conn_ = *c;
    std::random_device rd;
    schema_ = "dpone_t_" + std::to_string(::getpid()) + "_" + std::to_string(rd() % 1000000);
    db_ = PgConnection::connect(conn_, ErrorCode::Internal, "test");
    db_->exec("CREATE SCHEMA " + schema_);
  }
  void TearDown() override {
    if (db_) db_->exec("DROP SCHEMA " + schema_ + " CASCADE");
  }

  // `strategy`: the manifest's sink.strategy map, when the test wants the sink to know it
  // at stage time (direct exchange).
  std::unique_ptr<dpone::Sink> sink(const std::string& table, const std::string& run_id,
                                    json strategy = nullptr) {
    dpone::SinkContext ctx;
    ctx.stream = "s_" + table;
    ctx.run_id = run_id;
    ctx.options = json{{"table", table}, {"schema", schema_}};
    if (!strategy.is_null()) ctx.options["strategy"] = std::move(strategy);
    ctx.connection = &conn_;
    ctx.diagnostics = &diag_;
    ctx.on_progress = [this](int64_t rows, int64_t) {
      progress_.push_back(rows);
      if (throw_on_progress_)
        throw Error(ErrorCode::FailpointTriggered, "test: failpoint during_stage");
    };
    return dpone::make_postgres_sink(ctx);
  }

  std::unique_ptr<dpone::Source> source(json options) {
    dpone::SourceContext ctx;
    ctx.stream = "src";
    ctx.options = std::move(options);
    if (!ctx.options.contains("schema")) ctx.options["schema"] = schema_;
    ctx.connection = &conn_;
    ctx.diagnostics = &diag_;
    return dpone::make_postgres_source(ctx);
  }

  // plan_window + discover + extract + next_position, as the runtime does.
  std::vector<Row> read(json options, json& position, size_t batch_rows = 3,
                        Schema* schema_out = nullptr, dpone::Window* window_out = nullptr) {
    auto src = source(std::move(options));
    auto w = src->plan_window(position);
    auto schema = src->discover();
    if (schema_out) *schema_out = schema;
    dpone::ExtractOptions eo;
    eo.batch_rows = batch_rows;
    auto rows = drain(src->extract(w, kBatches, eo));
    position = src->next_position(w);
    if (window_out) *window_out = w;
    return rows;
  }

  dpone::PromoteResult load(const std::string& table, const std::string& run_id,
                            const Schema& schema, std::vector<Row> rows, StrategySpec strat) {
    auto s = sink(table, run_id);
    auto target = s->inspect();
    SchemaChange create;
    create.kind = ChangeKind::CreateTable;
    create.safe = true;
    std::vector<const SchemaChange*> changes;
    if (!target.exists) changes.push_back(&create);
    auto staged = s->stage(rows_artifact(schema, std::move(rows)), schema);
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
    return s->promote(staged, planned(*s, req));
  }

  std::vector<Row> table_rows(const std::string& table, const std::string& order = "1") {
    auto r = db_->exec("SELECT * FROM " + schema_ + "." + table + " ORDER BY " + order);
    std::vector<Row> out;
    for (int i = 0; i < r.rows(); ++i) {
      Row row;
      for (int c = 0; c < r.columns(); ++c) row.push_back(r.optional_value(i, c));
      out.push_back(std::move(row));
    }
    return out;
  }

  int64_t count(const std::string& sql) { return db_->query_int64(sql); }

  // Source table -> new target table `to` through `spec`, as the runtime does it
  // (plan_window, discover, produces, extract, stage, promote as append).
  dpone::StagedLoad copy_table(const std::string& from, const std::string& to,
                               const dpone::ArtifactSpec& spec, const std::string& run_id) {
    auto src = source(json{{"table", from}});
    auto w = src->plan_window(nullptr);
    Schema schema = src->discover();
    auto offered = src->produces();
    EXPECT_NE(std::find(offered.begin(), offered.end(), spec), offered.end()) << spec.to_string();
    dpone::ExtractOptions eo;
    eo.batch_rows = 2;
    auto artifact = src->extract(w, spec, eo);
    EXPECT_EQ(dpone::spec_of(artifact), spec);
    auto s = sink(to, run_id);
    SchemaChange create;
    create.kind = ChangeKind::CreateTable;
    create.safe = true;
    auto staged = s->stage(std::move(artifact), schema);
    dpone::PromoteRequest req;
    req.strategy = strategy(StrategyMode::Append);
    req.changes = {&create};
    req.source_schema = schema;
    req.receipt.stream = "s_" + to;
    req.receipt.run_id = run_id;
    req.receipt.rows = staged.rows;
    auto r = s->promote(staged, planned(*s, req));
    EXPECT_EQ(r.inserted, staged.rows);
    return staged;
  }

  // Rows of schema_.a missing from schema_.b (EXCEPT ALL, so duplicates count).
  int64_t missing(const std::string& a, const std::string& b) {
    return count("SELECT count(*) FROM (SELECT * FROM " + schema_ + "." + a +
                 " EXCEPT ALL SELECT * FROM " + schema_ + "." + b + ") AS d");
  }

  ResolvedConnection conn_;
  std::string schema_;
  std::unique_ptr<PgConnection> db_;
  dpone::Diagnostics diag_;
  std::vector<int64_t> progress_;
  bool throw_on_progress_ = false;
};

// --- pure codec tests (no server) ------------------------------------------------------

TEST(PgCopyCodec, EscapesAndDecodesExactly) {
  std::string out;
  dpone::pg::copy_escape_append(out, std::string("a\tb\nc\rd\\e\x01", 10));
  EXPECT_EQ(out, std::string("a\\tb\\nc\\rd\\\\e\x01", 14));
  std::string scratch;
  std::vector<Cell> fields;
  dpone::pg::split_copy_line("x\\ty\t\\N\t\t\\b\\f\\v\\101\\x41\\q\n", scratch,
                             [&](std::string_view v, bool null) {
                               fields.push_back(null ? kNull : Cell(std::string(v)));
                             });
  ASSERT_EQ(fields.size(), 4u);
  EXPECT_EQ(fields[0], Cell("x\ty"));
  EXPECT_EQ(fields[1], kNull);
  EXPECT_EQ(fields[2], Cell(""));
  EXPECT_EQ(fields[3], Cell("\b\f\vAAq"));
}

TEST(PgTypes, MapsCatalogSpellings) {
  using dpone::pg::map_pg_type;
  EXPECT_EQ(map_pg_type("numeric(38,10)", 'N').type, LogicalType::decimal(38, 10));
  EXPECT_EQ(map_pg_type("timestamp(3) with time zone", 'D').type, LogicalType::timestamp(3, true));
  EXPECT_EQ(map_pg_type("timestamp without time zone", 'D').type, LogicalType::timestamp(6, false));
  EXPECT_EQ(map_pg_type("character varying(20)", 'S').type, LogicalType::varchar(20));
  EXPECT_EQ(map_pg_type("time without time zone", 'D').type.id, TypeId::Time);
  EXPECT_TRUE(map_pg_type("integer[]", 'A').as_json);
  EXPECT_FALSE(map_pg_type("interval", 'T').known);
  for (auto t : {LogicalType::of(TypeId::Int16), LogicalType::decimal(12, 2),
                 LogicalType::varchar(5), LogicalType::timestamp(6, true),
                 LogicalType::timestamp(0, false), LogicalType::of(TypeId::Bytes),
                 LogicalType::of(TypeId::Uuid), LogicalType::of(TypeId::Json),
                 LogicalType::of(TypeId::Float32), LogicalType::of(TypeId::Time)}) {
    EXPECT_EQ(map_pg_type(dpone::pg::declared_type(t), 'X').type, t) << t.to_string();
  }
}

// --- server tests ----------------------------------------------------------------------

TEST_F(PostgresTest, TypeRoundTripWithEdgeValues) {
  db_->exec("SET search_path = " + schema_);
  db_->exec(
      "CREATE TABLE types (id int PRIMARY KEY, b boolean, i2 smallint, i4 integer, i8 bigint, "
      "n numeric(38,10), f4 real, f8 double precision, t text, vc varchar(10), ch char(3), "
      "d date, tm time, ts timestamp, ts3 timestamp(3), tz timestamptz, u uuid, j json, jb "
      "jsonb, by bytea, iv interval, arr int[])");
  db_->exec(
      "INSERT INTO types VALUES "
      "(1, true, -32768, -2147483648, -9223372036854775808, "
      "'-1234567890123456789012345678.0123456789', 'NaN', 'Infinity', '', 'tab\there', 'ab', "
      "'0001-01-01', '00:00:00', '0001-01-01 00:00:00', '9999-12-31 23:59:59.999', "
      "'0001-01-01 00:00:00+00', 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', '{\"a\": [1, 2]}', "
      "'{\"b\": 1}', '\\x00ff0001'::bytea, '1 day 02:00:00', '{1,NULL,3}'), "
      "(2, false, 32767, 2147483647, 9223372036854775807, '0.5', '-Infinity', '1.5e-07', "
      "E'line\\nbreak \\\\ back\\\\slash \\r cr ünïcødé ✓', '\\N', NULL, '9999-12-31', "
      "'23:59:59.999999', '9999-12-31 23:59:59.5', '2026-11-01 10:00:00', "
      "'2026-11-01 12:00:00+02', NULL, 'null', '[]', '\\x'::bytea, '-3 mons', '{}'), "
      "(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, "
      "NULL, NULL, NULL, NULL, NULL, NULL, NULL)");
  json pos = nullptr;
  Schema schema;
  auto rows = read(json{{"table", "types"}}, pos, 2, &schema);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(schema.primary_key, std::vector<std::string>{"id"});
  EXPECT_EQ(schema.columns[5].type, LogicalType::decimal(38, 10));
  EXPECT_EQ(schema.columns[14].type, LogicalType::timestamp(3, false));
  EXPECT_EQ(schema.columns[20].type.id, TypeId::String);  // interval
  EXPECT_EQ(schema.columns[21].type.id, TypeId::Json);    // int[]
  EXPECT_GE(diag_.warnings().size(), 2u);
  const Row& r1 = rows[0];
  EXPECT_EQ(r1[1], Cell("true"));
  EXPECT_EQ(r1[4], Cell("-9223372036854775808"));
  EXPECT_EQ(r1[5], Cell("-1234567890123456789012345678.0123456789"));
  EXPECT_EQ(r1[6], Cell("NaN"));
  EXPECT_EQ(r1[7], Cell("Infinity"));
  EXPECT_EQ(r1[8], Cell(""));
  EXPECT_EQ(r1[9], Cell("tab\there"));
  EXPECT_EQ(r1[10], Cell("ab "));
  EXPECT_EQ(r1[11], Cell("0001-01-01"));
  EXPECT_EQ(r1[13], Cell("0001-01-01T00:00:00"));
  EXPECT_EQ(r1[14], Cell("9999-12-31T23:59:59.999"));
  EXPECT_EQ(r1[15], Cell("0001-01-01T00:00:00Z"));
  EXPECT_EQ(r1[16], Cell("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"));
  EXPECT_EQ(r1[17], Cell("{\"a\": [1, 2]}"));
  EXPECT_EQ(r1[19], Cell(std::string("\x00\xff\x00\x01", 4)));
  EXPECT_EQ(r1[20], Cell("1 day 02:00:00"));
  EXPECT_EQ(r1[21], Cell("[1,null,3]"));
  const Row& r2 = rows[1];
  EXPECT_EQ(r2[1], Cell("false"));
  EXPECT_EQ(r2[5], Cell("0.5000000000"));
  EXPECT_EQ(r2[7], Cell("1.5e-07"));
  EXPECT_EQ(r2[8], Cell("line\nbreak \\ back\\slash \r cr ünïcødé ✓"));
  EXPECT_EQ(r2[9], Cell("\\N"));  // the text \N, not NULL
  EXPECT_EQ(r2[10], kNull);
  EXPECT_EQ(r2[12], Cell("23:59:59.999999"));
  EXPECT_EQ(r2[13], Cell("9999-12-31T23:59:59.5"));
  EXPECT_EQ(r2[15], Cell("2026-11-01T10:00:00Z"));
  EXPECT_EQ(r2[19], Cell(""));
  for (size_t c = 1; c < rows[2].size(); ++c) EXPECT_EQ(rows[2][c], kNull) << c;

  // Write everything back through the sink (table created from the discovered schema)
  // and read it again: the same canonical cells.
  auto copy_rows = rows;
  load("types_copy", "run1", schema, std::move(copy_rows), strategy(StrategyMode::Append));
  json pos2 = nullptr;
  auto again = read(json{{"table", "types_copy"}}, pos2, 100);
  ASSERT_EQ(again.size(), 3u);
  std::sort(again.begin(), again.end());
  for (size_t i = 0; i < 3; ++i) {
    for (size_t c = 0; c < rows[i].size(); ++c) {
      if (c == 17 || c == 18 || c == 21) continue;  // json lands as jsonb (normalized)
      EXPECT_EQ(again[i][c], rows[i][c]) << "row " << i << " col " << c;
    }
  }
  EXPECT_EQ(again[0][18], Cell("{\"b\": 1}"));
}

// --- pass-through (pg_copy_text) --------------------------------------------------------

TEST(PgTypes, EveryMappedTypePassesThrough) {
  using dpone::pg::map_pg_type;
  const std::vector<std::pair<const char*, char>> types = {
      {"boolean", 'B'},
      {"smallint", 'N'},
      {"integer", 'N'},
      {"bigint", 'N'},
      {"numeric(38,10)", 'N'},
      {"numeric", 'N'},
      {"real", 'N'},
      {"double precision", 'N'},
      {"text", 'S'},
      {"character varying(10)", 'S'},
      {"character(3)", 'S'},
      {"date", 'D'},
      {"time without time zone", 'D'},
      {"timestamp(3) without time zone", 'D'},
      {"timestamp with time zone", 'D'},
      {"uuid", 'U'},
      {"json", 'U'},
      {"jsonb", 'U'},
      {"bytea", 'U'},
      {"interval", 'T'},
      {"integer[]", 'A'},
      {"mood", 'E'},
      {"inet", 'I'},
  };
  for (auto [f, cat] : types) {
    EXPECT_TRUE(dpone::pg::copy_text_passes_through(map_pg_type(f, cat))) << f;
  }
  // A rewriting read paired with a type whose input would not give the same value.
  auto odd = map_pg_type("bytea", 'U');
  odd.type = LogicalType::of(TypeId::String);
  EXPECT_FALSE(dpone::pg::copy_text_passes_through(odd));
  auto tz = map_pg_type("timestamp with time zone", 'D');
  tz.type.tz = false;
  EXPECT_FALSE(dpone::pg::copy_text_passes_through(tz));
}

TEST_F(PostgresTest, PassThroughLoadsExactlyWhatRecordBatchesLoad) {
  db_->exec("SET search_path = " + schema_);
  db_->exec("CREATE TYPE mood AS ENUM ('sad', 'happy')");
  db_->exec(
      "CREATE TABLE src (id int PRIMARY KEY, b boolean, i2 smallint, i4 integer, i8 bigint, "
      "n numeric(38,10), nu numeric, f4 real, f8 double precision, t text, vc varchar(10), "
      "ch char(3), d date, tm time, ts timestamp, ts3 timestamp(3), tz timestamptz, "
      "tz0 timestamptz(0), u uuid, j json, jb jsonb, by bytea, iv interval, arr int[], "
      "tarr text[], m mood)");
  db_->exec(
      "INSERT INTO src VALUES "
      "(1, true, -32768, -2147483648, -9223372036854775808, "
      "'-1234567890123456789012345678.0123456789', '1e-30', 'NaN', 'Infinity', '', "
      "E'tab\\there', 'ab', '0001-01-01', '00:00:00', '0001-01-01 00:00:00', "
      "'9999-12-31 23:59:59.999', '0001-01-01 00:00:00+00', '2026-11-01 10:00:00.4+05:30', "
      "'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', '{\"a\":  [1, 2]}', '{\"b\": 1, \"a\": \"x\"}', "
      "'\\x00ff0001'::bytea, '1 day 02:00:00', '{1,NULL,3}', ARRAY[E'a\\tb', NULL, '\\\\N'], "
      "'sad'), "
      "(2, false, 32767, 2147483647, 9223372036854775807, '0.5', '-0.000', '-Infinity', "
      "'1.5e-07', E'line\\nbreak \\\\ back\\\\slash \\r cr \\b\\f\\v ünïcødé ✓ 🙂', '\\N', "
      "NULL, '9999-12-31', '23:59:59.999999', '294276-12-31 23:59:59.999999', "
      "'2026-11-01 10:00:00', '2026-11-01 12:00:00.123456+02', '1970-01-01 00:00:00+00', "
      "NULL, 'null', '[]', '\\x'::bytea, '-3 mons', '{}', '{}', 'happy'), "
      "(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, "
      "NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL), "
      "(4, false, 0, 0, 0, '99999999999999999999999999.9999999999', 'NaN', '-0', "
      "'-1.7976931348623157e308', E'\\\\', '\\.', '   ', '2000-02-29', '12:00:00.5', "
      "'2000-02-29 12:00:00.000001', '2000-01-01 00:00:00.001', '1999-12-31 23:59:59.999999-12', "
      "'2038-01-19 03:14:08+00', '00000000-0000-0000-0000-000000000000', '\"\\u00e9\"', "
      "'\"\\u00e9\\n\"', '\\x0a090d5c00'::bytea, '00:00:00', '{{1,2},{3,4}}', "
      "ARRAY[E'line\\nnext', '\"q\"'], NULL)");

  // Both paths on offer, pass-through first; the sink prefers it too.
  auto src = source(json{{"table", "src"}});
  src->plan_window(nullptr);
  src->discover();
  EXPECT_EQ(src->produces(), (std::vector<dpone::ArtifactSpec>{kInternal, kCopyText, kBatches}));
  EXPECT_EQ(sink("x", "r0")->accepts(),
            (std::vector<dpone::ArtifactSpec>{kInternal, kCopyBinary, kCopyText, kBatches}));
  // Before discover() the source cannot know: record batches only.
  EXPECT_EQ(source(json{{"table", "src"}})->produces(), std::vector<dpone::ArtifactSpec>{kBatches});

  auto via_batches = copy_table("src", "via_batches", kBatches, "rb");
  progress_.clear();
  auto via_bytes = copy_table("src", "via_bytes", kCopyText, "pt");
  EXPECT_EQ(via_batches.rows, 4);
  EXPECT_EQ(via_bytes.rows, 4);  // newlines inside values are escaped: 4 rows, not more
  EXPECT_GT(via_bytes.bytes, 100);
  ASSERT_FALSE(progress_.empty());
  EXPECT_EQ(progress_.back(), 4);
  EXPECT_EQ(count("SELECT count(*) FROM via_bytes"), 4);
  EXPECT_EQ(missing("via_batches", "via_bytes"), 0);
  EXPECT_EQ(missing("via_bytes", "via_batches"), 0);
  // Column by column as the server prints them, too.
  EXPECT_EQ(table_rows("via_bytes"), table_rows("via_batches"));
  // The internal query (INSERT INTO staging SELECT on the server) loads the same values.
  auto via_internal = copy_table("src", "via_internal", kInternal, "iq");
  EXPECT_EQ(via_internal.rows, 4);
  EXPECT_EQ(via_internal.details.value("rows_through_client", -1), 0);
  EXPECT_EQ(table_rows("via_internal"), table_rows("via_batches"));
  // And the values are the source's.
  EXPECT_EQ(count("SELECT count(*) FROM src s JOIN via_bytes v USING (id) WHERE "
                  "s.t IS NOT DISTINCT FROM v.t AND s.by IS NOT DISTINCT FROM v.by AND "
                  "s.n IS NOT DISTINCT FROM v.n AND s.f8 IS NOT DISTINCT FROM v.f8 AND "
                  "s.f4 IS NOT DISTINCT FROM v.f4 AND s.ts IS NOT DISTINCT FROM v.ts AND "
                  "s.tz IS NOT DISTINCT FROM v.tz AND s.vc IS NOT DISTINCT FROM v.vc AND "
                  "s.nu::text IS NOT DISTINCT FROM v.nu"),
            4);
  EXPECT_EQ(count("SELECT count(*) FROM via_bytes WHERE t = '' AND id = 1"), 1);
  EXPECT_EQ(count("SELECT count(*) FROM via_bytes WHERE t IS NULL AND id = 3"), 1);
  EXPECT_EQ(count("SELECT count(*) FROM via_bytes WHERE vc = '\\N' AND id = 2"), 1);
  EXPECT_EQ(count("SELECT count(*) FROM via_bytes WHERE by = '\\x0a090d5c00'::bytea"), 1);
  EXPECT_EQ(count("SELECT count(*) FROM pg_tables WHERE schemaname = '" + schema_ +
                  "' AND tablename LIKE '%dpone_stg%'"),
            0);
}

// A ByteReader over fixed text in reads of at most `chunk` bytes; throws on read number
// `fail_after` + 1 when fail_after >= 0.
class TextReader : public dpone::ByteReader {
 public:
  TextReader(std::string text, size_t chunk, int fail_after = -1)
      : text_(std::move(text)), chunk_(chunk), fail_after_(fail_after) {}
  size_t read(char* buffer, size_t size) override {
    if (fail_after_ >= 0 && reads_++ >= fail_after_) {
      throw Error(ErrorCode::SourceReadFailed, "test: the source connection broke");
    }
    size_t n = std::min({size, chunk_, text_.size() - pos_});
    std::memcpy(buffer, text_.data() + pos_, n);
    pos_ += n;
    return n;
  }

 private:
  std::string text_;
  size_t chunk_;
  int fail_after_;
  int reads_ = 0;
  size_t pos_ = 0;
};

Artifact copy_text_artifact(std::string text, size_t chunk, int fail_after = -1) {
  dpone::StreamingRows s;
  s.format = dpone::WireFormat::PgCopyText;
  s.bytes = std::make_unique<TextReader>(std::move(text), chunk, fail_after);
  return s;
}

TEST_F(PostgresTest, PassThroughCountsRowsAndReportsProgress) {
  // 200,000 rows from the server through the source's reader, each value with a newline.
  db_->exec("CREATE TABLE " + schema_ +
            ".big AS SELECT g AS id, E'v\\n' || g AS v, CASE WHEN g % 7 = 0 THEN NULL ELSE "
            "g * 1.5 END::numeric(12,2) AS x FROM generate_series(1, 200000) g");
  auto staged = copy_table("big", "big_copy", kCopyText, "r1");
  EXPECT_EQ(staged.rows, 200000);
  ASSERT_GE(progress_.size(), 3u);  // first read, every 65536 rows, the end
  EXPECT_EQ(progress_.back(), 200000);
  EXPECT_TRUE(std::is_sorted(progress_.begin(), progress_.end()));
  EXPECT_EQ(count("SELECT count(*) FROM " + schema_ + ".big_copy"), 200000);
  EXPECT_EQ(missing("big", "big_copy"), 0);
  EXPECT_EQ(missing("big_copy", "big"), 0);

  // Bytes split anywhere (3-byte reads cut rows and escapes); a last row without '\n'.
  Schema s = people_schema();
  progress_.clear();
  const std::string text = "1\tann\\tx\t10\n2\t\\N\t\\N\n3\tc\\\\d\\ne\t7";
  auto sk = sink("people", "r2");
  auto st = sk->stage(copy_text_artifact(text, 3), s);
  EXPECT_EQ(st.rows, 3);
  EXPECT_EQ(st.bytes, static_cast<int64_t>(text.size()));
  ASSERT_FALSE(progress_.empty());
  EXPECT_EQ(progress_.back(), 3);
  EXPECT_EQ(count("SELECT count(*) FROM " + schema_ + ".\"" + st.staging_name +
                  "\" WHERE (id = 1 AND name = E'ann\\tx' AND score = 10) OR (id = 2 AND name "
                  "IS NULL AND score IS NULL) OR (id = 3 AND name = E'c\\\\d\\ne' AND score = 7)"),
            3);
  sk->abort(st);
}

TEST_F(PostgresTest, PassThroughStageFailureDropsStaging) {
  Schema s = people_schema();
  std::string good;
  for (int i = 1; i <= 50000; ++i)
    good += std::to_string(i) + "\tname " + std::to_string(i) + "\t1\n";
  const std::string staging_tables = "SELECT count(*) FROM pg_tables WHERE schemaname = '" +
                                     schema_ + "' AND tablename LIKE '%dpone_stg%'";
  // The reader breaks after 10 reads of 64 KiB went to the server.
  try {
    sink("p", "r1")->stage(copy_text_artifact(good + good + good, 1 << 16, 10), s);
    FAIL() << "expected the reader's error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::SourceReadFailed) << e.what();
  }
  EXPECT_EQ(count(staging_tables), 0);
  // The server rejects a value in the middle of the stream.
  try {
    sink("p", "r2")->stage(copy_text_artifact(good + "x\tbad\t1\n" + good, 1 << 20), s);
    FAIL() << "expected StageFailed";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::StageFailed) << e.what();
    EXPECT_NE(std::string(e.what()).find("22P02"), std::string::npos) << e.what();
  }
  EXPECT_EQ(count(staging_tables), 0);
  // A progress callback that throws (the runtime's during_stage failpoint) as well.
  auto sk = sink("p", "r3");
  throw_on_progress_ = true;
  EXPECT_THROW(sink("p", "r4")->stage(copy_text_artifact(good, 1 << 20), s), Error);
  throw_on_progress_ = false;
  EXPECT_EQ(count(staging_tables), 0);
  // A later stage works.
  auto st = sk->stage(copy_text_artifact(good, 1 << 20), s);
  EXPECT_EQ(st.rows, 50000);
  sk->abort(st);
  EXPECT_EQ(count(staging_tables), 0);
}

TEST_F(PostgresTest, InfinityTimestampFailsClearly) {
  db_->exec("CREATE TABLE " + schema_ + ".inf (ts timestamp)");
  db_->exec("INSERT INTO " + schema_ + ".inf VALUES ('infinity')");
  json pos = nullptr;
  try {
    read(json{{"table", "inf"}}, pos);
    FAIL() << "expected TypeMismatch";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::TypeMismatch);
    EXPECT_NE(std::string(e.what()).find("infinity"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("'ts'"), std::string::npos) << e.what();
  }
}

TEST_F(PostgresTest, CursorIncrementsOverThreeRuns) {
  const std::string t = schema_ + ".ev";
  db_->exec("CREATE TABLE " + t + " (id bigint PRIMARY KEY, v text)");
  db_->exec("INSERT INTO " + t + " SELECT g, 'v' || g FROM generate_series(1, 7) g");
  json pos = nullptr;
  size_t batches = 0;
  auto src = source(json{{"table", "ev"}, {"cursor", "id"}});
  auto w = src->plan_window(pos);
  src->discover();
  dpone::ExtractOptions eo;
  eo.batch_rows = 3;
  auto rows = drain(src->extract(w, kBatches, eo), &batches);
  pos = src->next_position(w);
  EXPECT_EQ(rows.size(), 7u);
  EXPECT_EQ(batches, 3u);  // 3 + 3 + 1: streamed in batch_rows batches
  EXPECT_EQ(pos["cursor"], json(7));
  EXPECT_TRUE(pos["snapshot"].is_string()) << pos.dump();  // the late-commit net (a table)
  db_->exec("INSERT INTO " + t + " VALUES (8, 'a'), (9, 'b')");
  rows = read(json{{"table", "ev"}, {"cursor", "id"}}, pos);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0][0], Cell("8"));
  EXPECT_EQ(pos["cursor"], json(9));
  dpone::Window w3;
  rows = read(json{{"table", "ev"}, {"cursor", "id"}}, pos, 3, nullptr, &w3);
  EXPECT_TRUE(rows.empty());
  EXPECT_TRUE(w3.empty);
  EXPECT_EQ(pos["cursor"], json(9));
  // lookback re-reads the last 2 ids
  db_->exec("INSERT INTO " + t + " VALUES (10, 'c')");
  rows = read(json{{"table", "ev"}, {"cursor", "id"}, {"lookback", 2}}, pos);
  EXPECT_EQ(rows.size(), 3u);  // 8, 9, 10
}

TEST_F(PostgresTest, CursorOnTimestampWithIntervalLookback) {
  const std::string t = schema_ + ".tsev";
  db_->exec("CREATE TABLE " + t + " (id int, at timestamptz)");
  db_->exec("INSERT INTO " + t +
            " VALUES (1, '2026-01-01 10:00:00+00'), (2, '2026-01-01 11:00:00+00')");
  json pos = nullptr;
  auto rows = read(json{{"table", "tsev"}, {"cursor", "at"}}, pos);
  EXPECT_EQ(rows.size(), 2u);
  EXPECT_EQ(pos["cursor"], json("2026-01-01 11:00:00+00"));
  db_->exec("INSERT INTO " + t + " VALUES (3, '2026-01-01 11:30:00+00')");
  rows = read(json{{"table", "tsev"}, {"cursor", "at"}, {"lookback", "1 hour"}}, pos);
  EXPECT_EQ(rows.size(), 2u);  // 11:00 again (lookback) and 11:30
}

TEST_F(PostgresTest, QuerySourceWithCursor) {
  db_->exec("CREATE TABLE " + schema_ + ".q (id int, x numeric(5,2))");
  db_->exec("INSERT INTO " + schema_ + ".q VALUES (1, 1.5), (2, 2.25)");
  json pos = json{{"cursor", 1}};
  Schema schema;
  auto rows =
      read(json{{"query", "SELECT id, x * 2 AS y FROM " + schema_ + ".q;"}, {"cursor", "id"}}, pos,
           10, &schema);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0][1], Cell("4.50"));
  EXPECT_EQ(pos, (json{{"cursor", 2}}));  // a query: no snapshot, and a warning says why
  bool warned = false;
  for (const auto& w : diag_.warnings())
    warned = warned || w.find("late commits") != std::string::npos;
  EXPECT_TRUE(warned);
}

// Issue 27: two transactions that commit in the other order than they wrote. A slow one
// inserts (its now() and its id are taken first) and waits; a fast one inserts and commits;
// a run reads up to the fast row; then the slow one commits. The next run must load the
// slow row, exactly once, for a timestamp cursor (default now()) and a bigserial one.
TEST_F(PostgresTest, CursorWindowsCatchTransactionsThatCommitLate) {
  for (std::string cursor : {"at", "id"}) {
    SCOPED_TRACE(cursor);
    const std::string t = schema_ + ".late_" + cursor;
    db_->exec("CREATE TABLE " + t +
              " (id bigserial PRIMARY KEY, v text, at timestamptz NOT NULL DEFAULT now())");
    db_->exec("INSERT INTO " + t + " (v, at) VALUES ('old', now() - interval '1 hour')");
    json opts{{"table", "late_" + cursor}, {"cursor", cursor}};
    json pos = nullptr;
    EXPECT_EQ(read(opts, pos).size(), 1u);
    auto slow = PgConnection::connect(conn_, ErrorCode::Internal, "slow");
    auto fast = PgConnection::connect(conn_, ErrorCode::Internal, "fast");
    slow->exec("BEGIN");
    slow->exec("INSERT INTO " + t + " (v) VALUES ('slow')");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // the fast one's now() is later
    fast->exec("INSERT INTO " + t + " (v) VALUES ('fast')");
    auto rows = read(opts, pos);
    ASSERT_EQ(rows.size(), 1u);
    EXPECT_EQ(rows[0][1], Cell("fast"));
    slow->exec("COMMIT");
    rows = read(opts, pos);
    ASSERT_EQ(rows.size(), 1u) << "the late commit was not read";
    EXPECT_EQ(rows[0][1], Cell("slow"));
    dpone::Window w;
    rows = read(opts, pos, 3, nullptr, &w);  // read once, never again
    EXPECT_TRUE(rows.empty());
    EXPECT_TRUE(w.empty);
    // late_commits: ignore is the plain cursor (the row would have been missed).
    json ignore = opts;
    ignore["late_commits"] = "ignore";
    json p2 = nullptr;
    read(ignore, p2);
    EXPECT_FALSE(p2.contains("snapshot"));
  }
}

// A window read while a slow transaction is still open: the run after it commits reads
// its row, the run after that nothing; many writers of random length commit out of order
// between runs and the rows read over the runs are the table, each once.
TEST_F(PostgresTest, CursorWindowsUnderConcurrentWritersReadEveryRowOnce) {
  const std::string t = schema_ + ".busy";
  db_->exec("CREATE TABLE " + t +
            " (id bigserial PRIMARY KEY, w int, at timestamptz NOT NULL DEFAULT now())");
  json opts{{"table", "busy"}, {"cursor", "at"}};
  json pos = nullptr;
  std::multiset<std::string> seen;
  std::mt19937 rng(20261206);
  std::vector<std::shared_ptr<PgConnection>> writers;
  for (int i = 0; i < 20; ++i)
    writers.push_back(PgConnection::connect(conn_, ErrorCode::Internal, "w"));
  std::vector<bool> open(writers.size(), false);
  for (int run = 0; run < 10; ++run) {
    // Each writer: commit what it holds (in a shuffled order), or begin and insert.
    std::vector<size_t> order(writers.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::shuffle(order.begin(), order.end(), rng);
    for (size_t i : order) {
      if (open[i] && rng() % 2) {
        writers[i]->exec("COMMIT");
        open[i] = false;
      } else if (!open[i]) {
        writers[i]->exec("BEGIN");
        writers[i]->exec("INSERT INTO " + t + " (w) SELECT " + std::to_string(i) +
                         " FROM generate_series(1, 3)");
        open[i] = true;
      }
    }
    for (auto& r : read(opts, pos)) seen.insert(*r[0]);
  }
  for (size_t i = 0; i < writers.size(); ++i)
    if (open[i]) writers[i]->exec("COMMIT");
  for (auto& r : read(opts, pos)) seen.insert(*r[0]);
  std::multiset<std::string> table;
  dpone::pg::PgResult all = db_->exec("SELECT id::text FROM " + t);
  for (int i = 0; i < all.rows(); ++i) table.insert(std::string(all.value(i, 0)));
  EXPECT_EQ(seen.size(), table.size()) << "rows read over the runs vs rows in the table";
  EXPECT_EQ(seen, table);
}

// Issue 15, defect 7: an append of a key the target's PRIMARY KEY already holds fails as
// KEY_DUPLICATE naming the key, with a hint that says which option avoids it.
TEST_F(PostgresTest, AppendOfALoadedKeyNamesTheKeyAndTheWayOut) {
  Schema s = people_schema();  // primary_key id: the created table's PRIMARY KEY
  load("dup", "r1", s, {{"1", "ann", "10"}, {"2", "bob", "20"}}, strategy(StrategyMode::Append));
  try {
    load("dup", "r2", s, {{"3", "cy", "30"}, {"2", "bob", "21"}}, strategy(StrategyMode::Append));
    FAIL() << "a duplicate key was appended";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::KeyDuplicate) << e.what();
    EXPECT_NE(std::string(e.what()).find("Key (id)=(2) already exists"), std::string::npos)
        << e.what();
    EXPECT_NE(e.hint().find("only_new_rows"), std::string::npos) << e.hint();
    EXPECT_NE(e.hint().find("merge"), std::string::npos) << e.hint();
  }
  EXPECT_EQ(db_->query_int64("SELECT count(*) FROM " + schema_ + ".dup"), 2);  // unchanged
}

TEST_F(PostgresTest, XminIncrements) {
  const std::string t = schema_ + ".xm";
  db_->exec("CREATE TABLE " + t + " (id int PRIMARY KEY, v text)");
  db_->exec("INSERT INTO " + t + " VALUES (1, 'a'), (2, 'b')");
  json opts = {{"table", "xm"}, {"incremental", "xmin"}};
  json pos = nullptr;
  auto rows = read(opts, pos);
  EXPECT_EQ(rows.size(), 2u);
  ASSERT_TRUE(pos.contains("xmin"));
  int64_t first = pos["xmin"].get<int64_t>();
  // insert one and update one: both read, the untouched row not
  db_->exec("INSERT INTO " + t + " VALUES (3, 'c')");
  db_->exec("UPDATE " + t + " SET v = 'B' WHERE id = 2");
  rows = read(opts, pos);
  std::sort(rows.begin(), rows.end());
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0], (Row{Cell("2"), Cell("B")}));
  EXPECT_EQ(rows[1], (Row{Cell("3"), Cell("c")}));
  EXPECT_GT(pos["xmin"].get<int64_t>(), first);
  // nothing changed: nothing read
  dpone::Window w;
  rows = read(opts, pos, 3, nullptr, &w);
  EXPECT_TRUE(rows.empty());
  EXPECT_TRUE(w.empty);
}

TEST_F(PostgresTest, StrategiesAndCounters) {
  Schema s = people_schema();
  auto r = load("people", "r1", s, {{"1", "ann", "10"}, {"2", "bob", kNull}},
                strategy(StrategyMode::Append));
  EXPECT_EQ(r.inserted, 2);
  EXPECT_TRUE(r.atomic);
  EXPECT_EQ(progress_.back(), 2);
  // merge with the PK: ON CONFLICT
  r = load("people", "r2", s, {{"2", "bobby", "5"}, {"3", "cid", "7"}},
           strategy(StrategyMode::Merge, {"id"}));
  EXPECT_EQ(r.inserted, 1);
  EXPECT_EQ(r.updated, 1);
  bool on_conflict = false;
  for (const auto& sql : r.sql) on_conflict |= sql.find("ON CONFLICT") != std::string::npos;
  EXPECT_TRUE(on_conflict);
  EXPECT_EQ(table_rows("people"),
            (std::vector<Row>{{"1", "ann", "10"}, {"2", "bobby", "5"}, {"3", "cid", "7"}}));
  // merge on a non-unique key: delete + insert
  r = load("people", "r3", s, {{"9", "ann", "11"}}, strategy(StrategyMode::Merge, {"name"}));
  EXPECT_EQ(r.updated, 1);
  EXPECT_EQ(r.inserted, 0);
  EXPECT_EQ(count("SELECT count(*) FROM " + schema_ + ".people WHERE name = 'ann' AND id = 9"), 1);
  // append only_new_rows
  auto only_new = strategy(StrategyMode::Append, {"id"});
  only_new.only_new_rows = true;
  r = load("people", "r4", s, {{"3", "dup", "0"}, {"4", "dan", "1"}}, only_new);
  EXPECT_EQ(r.inserted, 1);
  EXPECT_EQ(count("SELECT count(*) FROM " + schema_ + ".people"), 4);
  // full_refresh truncate_insert
  auto truncate = strategy(StrategyMode::FullRefresh);
  truncate.overwrite = dpone::OverwriteMethod::TruncateInsert;
  r = load("people", "r5", s, {{"5", "eve", "1"}}, truncate);
  EXPECT_EQ(r.deleted, 4);
  EXPECT_EQ(r.inserted, 1);
  EXPECT_EQ(table_rows("people"), (std::vector<Row>{{"5", "eve", "1"}}));
  // receipts: one per run, newest readable, staging dropped
  EXPECT_EQ(count("SELECT count(*) FROM " + schema_ + ".__dpone__loads"), 5);
  auto receipt = sink("people", "r6")->latest_receipt();
  ASSERT_TRUE(receipt);
  EXPECT_EQ(receipt->run_id, "r5");
  EXPECT_EQ(receipt->base_revision, 7);
  EXPECT_EQ(receipt->new_position, (json{{"cursor", "r5"}}));
  EXPECT_EQ(count("SELECT count(*) FROM pg_tables WHERE schemaname = '" + schema_ +
                  "' AND tablename LIKE '%dpone_stg%'"),
            0);
  auto info = sink("people", "r7")->inspect();
  EXPECT_TRUE(info.exists);
  EXPECT_EQ(info.schema.columns, s.columns);
  EXPECT_EQ(info.schema.primary_key, s.primary_key);
  EXPECT_EQ(info.rows, 1);
}

TEST_F(PostgresTest, ExchangeKeepsIndexAndGrant) {
  Schema s = people_schema();
  load("ex", "r1", s, {{"1", "a", "1"}}, strategy(StrategyMode::Append));
  db_->exec("CREATE INDEX ex_name_idx ON " + schema_ + ".ex (name)");
  db_->exec(
      "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = "
      "'dpone_test_reader') THEN CREATE ROLE dpone_test_reader; END IF; END $$");
  db_->exec("GRANT SELECT ON " + schema_ + ".ex TO dpone_test_reader");
  auto ex = strategy(StrategyMode::FullRefresh);
  ex.overwrite = dpone::OverwriteMethod::Exchange;
  auto r = load("ex", "r2", s, {{"2", "b", "2"}, {"3", "c", "3"}}, ex);
  EXPECT_EQ(r.deleted, 1);
  EXPECT_EQ(r.inserted, 2);
  EXPECT_EQ(table_rows("ex"), (std::vector<Row>{{"2", "b", "2"}, {"3", "c", "3"}}));
  EXPECT_EQ(count("SELECT count(*) FROM pg_indexes WHERE schemaname = '" + schema_ +
                  "' AND tablename = 'ex' AND indexdef LIKE '%(name)%'"),
            1);
  EXPECT_EQ(count("SELECT count(*) FROM pg_indexes WHERE schemaname = '" + schema_ +
                  "' AND tablename = 'ex' AND indexdef LIKE '%UNIQUE%(id)%'"),
            1);
  EXPECT_EQ(db_->query_value("SELECT has_table_privilege('dpone_test_reader', '" + schema_ +
                             ".ex', 'SELECT')"),
            "t");
  EXPECT_EQ(count("SELECT count(*) FROM pg_tables WHERE schemaname = '" + schema_ +
                  "' AND tablename LIKE 'ex\\_\\_%'"),
            0);
  // The new table's indexes carry the old names.
  EXPECT_EQ(count("SELECT count(*) FROM pg_indexes WHERE schemaname = '" + schema_ +
                  "' AND tablename = 'ex' AND indexname IN ('ex_name_idx', 'ex_pkey')"),
            2);
}

// full_refresh with the default overwrite (auto) into an existing target of the same
// shape stages straight into the new table and swaps names; the result keeps index
// and constraint names, CHECK constraints, defaults, comments and grants.
TEST_F(PostgresTest, AutoExchangeStagesDirectlyAndKeepsTheTablesShape) {
  Schema s = people_schema();
  load("dx", "r1", s, {{"1", "a", "1"}, {"2", "b", "2"}}, strategy(StrategyMode::Append));
  const std::string t = schema_ + ".dx";
  db_->exec("CREATE INDEX dx_name_idx ON " + t + " (name)");
  db_->exec("ALTER TABLE " + t + " ADD CONSTRAINT dx_score_pos CHECK (score >= 0)");
  db_->exec("ALTER TABLE " + t + " ADD CONSTRAINT dx_score_name_uq UNIQUE (score, name)");
  db_->exec("CREATE UNIQUE INDEX dx_lower_name ON " + t + " (lower(name)) WHERE score > 0");
  db_->exec("COMMENT ON TABLE " + t + " IS 'the people'");
  db_->exec(
      "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = "
      "'dpone_test_reader') THEN CREATE ROLE dpone_test_reader; END IF; END $$");
  db_->exec("GRANT SELECT ON " + t + " TO dpone_test_reader");
  const std::string names_sql =
      "SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes WHERE schemaname = '" +
      schema_ + "' AND tablename = 'dx'";
  const auto names_before = db_->query_value(names_sql);
  const std::string defs_sql =
      "SELECT string_agg(indexdef, ';' ORDER BY indexname) FROM pg_indexes WHERE schemaname = '" +
      schema_ + "' AND tablename = 'dx'";
  const auto defs_before = db_->query_value(defs_sql);
  const std::string constraints_sql =
      "SELECT string_agg(conname || ' ' || pg_get_constraintdef(oid), ';' ORDER BY conname) FROM "
      "pg_constraint WHERE conrelid = '" + t + "'::regclass";
  const auto constraints_before = db_->query_value(constraints_sql);

  const json full = {{"mode", "full_refresh"}};
  auto plan = sink("dx", "p0", full)->describe_promotion(StrategySpec::from_json(full), s);
  ASSERT_FALSE(plan.empty());
  EXPECT_EQ(plan[0], "-- full_refresh overwrite auto: exchange (nothing depends on the table's identity)");
  EXPECT_NE(plan[1].find("direct exchange"), std::string::npos) << plan[1];

  auto sk = sink("dx", "r2", full);
  auto staged = sk->stage(rows_artifact(s, {{"3", "c", "3"}, {"4", "d", "4"}, {"5", "e", "5"}}), s);
  EXPECT_TRUE(staged.details.value("direct", false)) << staged.details.dump();
  // The four indexes were built after the COPY (pg_restore's order), not row by row.
  EXPECT_EQ(staged.details.value("indexes_built_after_load", 0), 4) << staged.details.dump();
  EXPECT_EQ(staged.rows, 3);
  dpone::PromoteRequest req;
  req.strategy = StrategySpec::from_json(full);
  req.source_schema = s;
  req.receipt.stream = "s_dx";
  req.receipt.run_id = "r2";
  req.receipt.rows = 3;
  auto r = sk->promote(staged, planned(*sk, req));
  EXPECT_EQ(r.deleted, 2);
  EXPECT_EQ(r.inserted, 3);
  EXPECT_EQ(table_rows("dx"), (std::vector<Row>{{"3", "c", "3"}, {"4", "d", "4"}, {"5", "e", "5"}}));
  EXPECT_EQ(db_->query_value(names_sql), names_before);
  EXPECT_EQ(names_before, "dx_lower_name,dx_name_idx,dx_pkey,dx_score_name_uq");
  EXPECT_EQ(db_->query_value(defs_sql), defs_before);  // same names, same definitions
  EXPECT_EQ(db_->query_value(constraints_sql), constraints_before);
  EXPECT_EQ(count("SELECT count(*) FROM pg_constraint WHERE conname = 'dx_score_pos' AND "
                  "conrelid = '" + t + "'::regclass"),
            1);
  EXPECT_EQ(db_->query_value("SELECT obj_description('" + t + "'::regclass, 'pg_class')"),
            "the people");
  EXPECT_EQ(db_->query_value("SELECT has_table_privilege('dpone_test_reader', '" + t +
                             "', 'SELECT')"),
            "t");
  EXPECT_EQ(count("SELECT count(*) FROM pg_tables WHERE schemaname = '" + schema_ +
                  "' AND tablename LIKE 'dx\\_\\_%'"),
            0);
  EXPECT_EQ(count("SELECT count(*) FROM " + schema_ + ".__dpone__loads WHERE run_id = 'r2'"), 1);

  // An index with a comment: rebuilding it after the load would lose the comment, so
  // the staging table is created with the target's indexes (LIKE ... INCLUDING ALL).
  db_->exec("COMMENT ON INDEX " + schema_ + ".dx_name_idx IS 'by name'");
  sk = sink("dx", "r2b", full);
  staged = sk->stage(rows_artifact(s, {{"3", "c", "3"}, {"4", "d", "4"}, {"5", "e", "5"}}), s);
  EXPECT_TRUE(staged.details.value("direct", false));
  EXPECT_FALSE(staged.details.contains("indexes_built_after_load")) << staged.details.dump();
  req.receipt.run_id = "r2b";
  r = sk->promote(staged, planned(*sk, req));
  EXPECT_EQ(r.inserted, 3);
  EXPECT_EQ(db_->query_value(names_sql), names_before);
  EXPECT_EQ(db_->query_value("SELECT obj_description('" + schema_ + ".dx_name_idx'::regclass, "
                             "'pg_class')"),
            "by name");

  // A view on the target: auto falls back to truncate_insert, and says why.
  db_->exec("CREATE VIEW " + schema_ + ".dx_view AS SELECT id FROM " + t);
  plan = sink("dx", "p1", full)->describe_promotion(StrategySpec::from_json(full), s);
  EXPECT_EQ(plan[0],
            "-- full_refresh overwrite auto: truncate_insert (views or rules would not survive an "
            "exchange)");
  sk = sink("dx", "r3", full);
  staged = sk->stage(rows_artifact(s, {{"6", "f", "6"}}), s);
  EXPECT_FALSE(staged.details.value("direct", true));
  req.receipt.run_id = "r3";
  r = sk->promote(staged, planned(*sk, req));
  EXPECT_EQ(r.deleted, 3);
  EXPECT_EQ(r.inserted, 1);
  EXPECT_EQ(count("SELECT count(*) FROM " + schema_ + ".dx_view"), 1);
}

// pg_copy_binary: offered when every column has a mapped type read as itself; loads
// exactly what record batches load; an empty window is a valid empty binary stream.
TEST_F(PostgresTest, BinaryPassThroughLoadsExactlyWhatRecordBatchesLoad) {
  db_->exec("SET search_path = " + schema_);
  db_->exec("CREATE DOMAIN short_text AS varchar(20)");
  db_->exec(
      "CREATE TABLE src (id int PRIMARY KEY, b boolean, i2 smallint, i8 bigint, "
      "n numeric(38,10), nu numeric, f4 real, f8 double precision, t text, vc varchar(10), "
      "ch char(3), d date, tm time, ts timestamp, tz timestamptz(3), u uuid, j json, jb jsonb, "
      "by bytea, dom short_text)");
  db_->exec(
      "INSERT INTO src VALUES "
      "(1, true, -32768, -9223372036854775808, '-1234567890123456789012345678.0123456789', "
      "'1e-30', 'NaN', 'Infinity', '', E'tab\\there', 'ab', '0001-01-01', '00:00:00', "
      "'0001-01-01 00:00:00', '2026-11-01 10:00:00.4+05:30', "
      "'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', '{\"a\":  [1, 2]}', '{\"b\": 1, \"a\": \"x\"}', "
      "'\\x00ff0001'::bytea, 'dom'), "
      "(2, false, 32767, 9223372036854775807, '0.5', '-0.000', '-Infinity', '1.5e-07', "
      "E'line\\nbreak \\\\ ünïcødé 🙂', '\\N', NULL, '9999-12-31', '23:59:59.999999', "
      "'294276-12-31 23:59:59.999999', '1970-01-01 00:00:00+00', NULL, 'null', '[]', "
      "'\\x'::bytea, ''), "
      "(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, "
      "NULL, NULL, NULL, NULL, NULL)");
  auto src = source(json{{"table", "src"}});
  src->plan_window(nullptr);
  src->discover();
  EXPECT_EQ(src->produces(),
            (std::vector<dpone::ArtifactSpec>{kInternal, kCopyBinary, kCopyText, kBatches}));

  auto via_batches = copy_table("src", "via_batches", kBatches, "rb");
  progress_.clear();
  auto via_binary = copy_table("src", "via_binary", kCopyBinary, "bin");
  EXPECT_EQ(via_binary.rows, 3);
  EXPECT_EQ(via_binary.details.value("format", ""), "pg_copy_binary");
  ASSERT_FALSE(progress_.empty());
  EXPECT_EQ(progress_.back(), 3);
  EXPECT_EQ(missing("via_batches", "via_binary"), 0);
  EXPECT_EQ(missing("via_binary", "via_batches"), 0);
  auto binary_rows = table_rows("via_binary");
  auto batch_rows = table_rows("via_batches");
  ASSERT_EQ(binary_rows.size(), batch_rows.size());
  for (size_t i = 0; i < binary_rows.size(); ++i) {
    for (size_t c = 0; c < binary_rows[i].size(); ++c)
      EXPECT_EQ(binary_rows[i][c], batch_rows[i][c]) << "row " << i << " column " << c;
  }
  EXPECT_EQ(count("SELECT count(*) FROM src s JOIN via_binary v USING (id) WHERE "
                  "s.t IS NOT DISTINCT FROM v.t AND s.by IS NOT DISTINCT FROM v.by AND "
                  "s.n IS NOT DISTINCT FROM v.n AND s.tz IS NOT DISTINCT FROM v.tz AND "
                  "s.dom::text IS NOT DISTINCT FROM v.dom AND s.jb IS NOT DISTINCT FROM v.jb"),
            3);

  // An empty cursor window through the binary path: 0 rows, no error.
  auto empty_src = source(json{{"table", "src"}, {"incremental", "cursor"}, {"cursor", "id"}});
  auto w = empty_src->plan_window(json{{"cursor", 3}});
  Schema schema = empty_src->discover();
  ASSERT_TRUE(w.empty);
  auto artifact = empty_src->extract(w, kCopyBinary, dpone::ExtractOptions{});
  auto sk = sink("via_binary", "empty");
  auto staged = sk->stage(std::move(artifact), schema);
  EXPECT_EQ(staged.rows, 0);
  sk->abort(staged);
}

TEST_F(PostgresTest, FailedPromoteRollsBack) {
  Schema s = people_schema();
  load("fp", "r1", s, {{"1", "a", "1"}}, strategy(StrategyMode::Append));
  db_->exec("ALTER TABLE " + schema_ + ".fp ADD CONSTRAINT score_small CHECK (score < 100)");
  auto sk = sink("fp", "r2");
  auto staged = sk->stage(rows_artifact(s, {{"2", "b", "1"}, {"3", "c", "500"}}), s);
  dpone::PromoteRequest req;
  req.strategy = strategy(StrategyMode::Append);
  req.source_schema = s;
  req.receipt.stream = "s_fp";
  req.receipt.run_id = "r2";
  try {
    sk->promote(staged, planned(*sk, req));
    FAIL() << "expected PromoteFailed";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::PromoteFailed);
    EXPECT_NE(std::string(e.what()).find("23514"), std::string::npos) << e.what();
  }
  EXPECT_EQ(count("SELECT count(*) FROM " + schema_ + ".fp"), 1);
  EXPECT_EQ(count("SELECT count(*) FROM " + schema_ + ".__dpone__loads WHERE run_id = 'r2'"), 0);
  EXPECT_EQ(count("SELECT count(*) FROM " + schema_ + ".\"" + staged.staging_name + "\""), 2);
  sk->abort(staged);
  EXPECT_EQ(count("SELECT count(*) FROM pg_tables WHERE tablename = '" + staged.staging_name + "'"),
            0);
}

TEST_F(PostgresTest, StageFailureDropsStagingAndGatesRun) {
  Schema s;
  s.columns = {{"id", LogicalType::of(TypeId::Int32), true},
               {"d", LogicalType::of(TypeId::Date), true}};
  auto sk = sink("g", "r1");
  EXPECT_THROW(sk->stage(rows_artifact(s, {{"1", "2026-01-01"}, {"2", "not a date"}}), s), Error);
  EXPECT_EQ(count("SELECT count(*) FROM pg_tables WHERE schemaname = '" + schema_ + "'"), 0);
  auto staged = sink("g", "r2")->stage(
      rows_artifact(s, {{"1", "2026-01-01"}, {"1", kNull}, {kNull, "2026-01-02"}}), s);
  dpone::GateSpec nn{"id_nn", "not_null", {"id"}, "error", nullptr};
  dpone::GateSpec un{"id_un", "unique", {"id"}, "error", nullptr};
  auto results = sink("g", "r2")->check(staged, {nn, un});
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0].failing_rows, 1);
  EXPECT_FALSE(results[0].passed);
  EXPECT_EQ(results[1].failing_rows, 2);
  ASSERT_EQ(results[1].samples.size(), 1u);
  EXPECT_NE(results[1].samples[0].find("id='1'"), std::string::npos) << results[1].samples[0];
  dpone::GateSpec bad{"x", "regex", {"id"}, "error", nullptr};
  try {
    sink("g", "r2")->check(staged, {bad});
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::ConfigBadValue);
  }
  // cleanup_abandoned removes the staging of other runs only
  auto removed = sink("g", "r3")->cleanup_abandoned({});
  ASSERT_EQ(removed.size(), 1u);
  EXPECT_NE(removed[0].find("g__dpone_stg_r2"), std::string::npos);
}

TEST_F(PostgresTest, WrongPasswordGivesClearErrorWithoutPassword) {
  const std::string secret = "s3cr3t-Pa55word-xyz";
  ResolvedConnection c = conn_;
  c.secrets["password"] = dpone::Secret(secret);
  c.fields["port"] = "1";  // nothing listens there
  try {
    PgConnection::connect(c, ErrorCode::SourceUnavailable, "stream 'x': postgres source");
    FAIL() << "expected SourceUnavailable";
  } catch (const Error& e) {
    std::string msg = std::string(e.what()) + e.hint();
    EXPECT_EQ(e.code(), ErrorCode::SourceUnavailable);
    EXPECT_EQ(msg.find(secret), std::string::npos) << msg;
    EXPECT_NE(msg.find(":1/"), std::string::npos) << msg;
  }
  // A role that needs a password: refused unless the server trusts every login.
  db_->exec(
      "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = "
      "'dpone_test_pw') THEN CREATE ROLE dpone_test_pw LOGIN PASSWORD 'right-one'; END "
      "IF; END $$");
  ResolvedConnection w = conn_;
  w.fields["user"] = "dpone_test_pw";
  w.secrets["password"] = dpone::Secret(secret);
  try {
    PgConnection::connect(w, ErrorCode::SinkUnavailable, "sink");
    GTEST_LOG_(INFO) << "the server trusts every login: wrong-password case not observable";
  } catch (const Error& e) {
    std::string msg = std::string(e.what()) + e.hint();
    EXPECT_EQ(e.code(), ErrorCode::SinkUnavailable);
    EXPECT_EQ(msg.find(secret), std::string::npos) << msg;
    EXPECT_NE(msg.find("password"), std::string::npos) << msg;
  }
}

}  // namespace

// parallel: N reads one exported snapshot: rows changed, deleted, inserted or moved
// between key ranges after the read started do not leak into any part, and the target
// equals the table as it was, by key ranges and by block ranges alike.
TEST_F(PostgresTest, ParallelReadIsOneSnapshotUnderConcurrentChanges) {
  db_->exec("SET search_path = " + schema_);
  db_->exec("CREATE TABLE src (id bigint PRIMARY KEY, v text, n int)");
  db_->exec("INSERT INTO src SELECT g, 'v' || g, g FROM generate_series(1, 60000) g");
  db_->exec("CREATE TABLE before AS SELECT * FROM src");
  for (const std::string split : {"key", "ctid"}) {
    SCOPED_TRACE(split);
    db_->exec("TRUNCATE src");
    db_->exec("INSERT INTO src SELECT * FROM before");
    auto src = source(json{{"table", "src"}, {"parallel", 3}, {"split_by", split}});
    auto w = src->plan_window(nullptr);
    Schema schema = src->discover();
    dpone::ExtractOptions eo;
    eo.sink_loads_parts = true;
    auto artifact = src->extract(w, kCopyBinary, eo);
    auto* rows = std::get_if<dpone::StreamingRows>(&artifact);
    ASSERT_NE(rows, nullptr);
    EXPECT_EQ(rows->parts.size(), 3u);
    // Committed while the parts are being read (their COPYs have started).
    db_->exec("UPDATE src SET v = v || '-changed', n = -n WHERE id % 3 = 0");
    db_->exec("DELETE FROM src WHERE id % 7 = 0");
    db_->exec("INSERT INTO src SELECT g, 'new', 0 FROM generate_series(60001, 60500) g");
    db_->exec("UPDATE src SET id = id + 1000000 WHERE id % 11 = 0");  // across key ranges
    const std::string target = "par_" + split;
    auto sk = sink(target, "r1");
    SchemaChange create;
    create.kind = ChangeKind::CreateTable;
    create.safe = true;
    auto staged = sk->stage(std::move(artifact), schema);
    EXPECT_EQ(staged.rows, 60000);
    EXPECT_EQ(staged.details.value("parts", 0), 3);
    dpone::PromoteRequest req;
    req.strategy = strategy(StrategyMode::Append);
    req.changes = {&create};
    req.source_schema = schema;
    req.receipt.stream = "s_" + target;
    req.receipt.run_id = "r1";
    req.receipt.rows = staged.rows;
    sk->promote(staged, planned(*sk, req));
    EXPECT_EQ(count("SELECT count(*) FROM " + target), 60000);
    EXPECT_EQ(missing("before", target), 0);
    EXPECT_EQ(missing(target, "before"), 0);
  }
  // One stream of the changed table equals a parallel read of it.
  db_->exec("UPDATE src SET n = n + 1 WHERE id % 5 = 0");
  auto one = copy_table("src", "one_stream", kCopyBinary, "one");
  auto src = source(json{{"table", "src"}, {"parallel", 2}});
  auto w = src->plan_window(nullptr);
  Schema schema = src->discover();
  dpone::ExtractOptions eo;
  eo.sink_loads_parts = true;
  auto sk = sink("two_streams", "two");
  SchemaChange create;
  create.kind = ChangeKind::CreateTable;
  create.safe = true;
  auto staged = sk->stage(src->extract(w, kCopyBinary, eo), schema);
  EXPECT_EQ(staged.rows, one.rows);
  dpone::PromoteRequest req;
  req.strategy = strategy(StrategyMode::Append);
  req.changes = {&create};
  req.source_schema = schema;
  req.receipt.stream = "s_two";
  req.receipt.run_id = "two";
  sk->promote(staged, planned(*sk, req));
  EXPECT_EQ(missing("one_stream", "two_streams"), 0);
  EXPECT_EQ(missing("two_streams", "one_stream"), 0);
  // A sink that loads one stream: parallel is not used, and the source says so.
  auto src1 = source(json{{"table", "src"}, {"parallel", 2}});
  auto w1 = src1->plan_window(nullptr);
  src1->discover();
  auto single = src1->extract(w1, kCopyText, dpone::ExtractOptions{});
  EXPECT_TRUE(std::get<dpone::StreamingRows>(single).parts.empty());
  EXPECT_NE(std::get<dpone::StreamingRows>(single).bytes, nullptr);
  // Bad values are configuration errors.
  EXPECT_THROW(source(json{{"table", "src"}, {"parallel", 0}}), Error);
  EXPECT_THROW(source(json{{"table", "src"}, {"split_by", "hash"}}), Error);
}

// replace swaps one slice (where:) atomically and refuses staged rows outside it;
// partition_replace swaps the partitions present in staging, on a declaratively
// partitioned table by its own key, and refuses more than max_partitions_per_run.
TEST_F(PostgresTest, ReplaceAndPartitionReplace) {
  Schema s;
  s.columns = {{"day", LogicalType::of(TypeId::Date), false},
               {"id", LogicalType::of(TypeId::Int32), false},
               {"v", LogicalType::of(TypeId::String), true}};
  load("sl", "r1", s,
       {{"2026-11-01", "1", "a"}, {"2026-11-01", "2", "b"}, {"2026-11-02", "3", "c"}},
       strategy(StrategyMode::Append));
  auto replace = StrategySpec::from_json(json{{"mode", "replace"}, {"where", "day = '2026-11-01'"}});
  auto r = load("sl", "r2", s, {{"2026-11-01", "9", "z"}}, replace);
  EXPECT_EQ(r.deleted, 2);
  EXPECT_EQ(r.inserted, 1);
  EXPECT_EQ(table_rows("sl", "2"),
            (std::vector<Row>{{"2026-11-02", "3", "c"}, {"2026-11-01", "9", "z"}}));
  try {
    load("sl", "r3", s, {{"2026-11-01", "10", "y"}, {"2026-11-05", "11", "x"}}, replace);
    FAIL() << "expected GATE_FAILED";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::GateFailed);
    EXPECT_NE(std::string(e.what()).find("1 staged rows are outside the replace slice"),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(count("SELECT count(*) FROM " + schema_ + ".sl"), 2);  // unchanged

  // A declaratively partitioned target: the key comes from the table.
  db_->exec("CREATE TABLE " + schema_ + ".pt (day date NOT NULL, id int NOT NULL, v text) "
            "PARTITION BY RANGE (day)");
  for (int d = 1; d <= 4; ++d) {
    db_->exec(fmt::format("CREATE TABLE {0}.pt_{1} PARTITION OF {0}.pt FOR VALUES FROM "
                          "('2026-11-0{1}') TO ('2026-11-0{2}')",
                          schema_, d, d + 1));
  }
  db_->exec("INSERT INTO " + schema_ +
            ".pt VALUES ('2026-11-01', 1, 'a'), ('2026-11-02', 2, 'b'), ('2026-11-02', 3, 'c'), "
            "('2026-11-03', 4, 'd')");
  auto pr = StrategySpec::from_json(json{{"mode", "partition_replace"}});
  r = load("pt", "p1", s, {{"2026-11-02", "20", "new"}, {"2026-11-04", "40", "new"}}, pr);
  EXPECT_EQ(r.deleted, 2);
  EXPECT_EQ(r.inserted, 2);
  EXPECT_EQ(table_rows("pt", "2"), (std::vector<Row>{{"2026-11-01", "1", "a"},
                                                      {"2026-11-03", "4", "d"},
                                                      {"2026-11-02", "20", "new"},
                                                      {"2026-11-04", "40", "new"}}));
  auto capped = StrategySpec::from_json(
      json{{"mode", "partition_replace"}, {"partition_by", "day"}, {"max_partitions_per_run", 1}});
  EXPECT_THROW(load("pt", "p2", s, {{"2026-11-01", "5", "x"}, {"2026-11-03", "6", "y"}}, capped),
               Error);
  EXPECT_EQ(count("SELECT count(*) FROM " + schema_ + ".pt"), 4);  // unchanged
  auto plan = sink("pt", "p3")->describe_promotion(pr, s);
  EXPECT_NE(std::find_if(plan.begin(), plan.end(),
                         [](const std::string& l) { return l.find("DELETE FROM") == 0; }),
            plan.end());
}
