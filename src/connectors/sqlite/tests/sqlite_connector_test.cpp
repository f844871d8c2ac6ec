// Unit tests of the sqlite connector against real database files in temp directories.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>

#include "connectors/sqlite/sqlite_connector.hpp"
#include "connectors/sqlite/sqlite_types.hpp"
#include "core/errors.hpp"
#include "core/state/sqlite_handle.hpp"

namespace fs = std::filesystem;
using dpone::Artifact;
using dpone::ChangeKind;
using dpone::Column;
using dpone::Error;
using dpone::ErrorCode;
using dpone::LogicalType;
using dpone::Schema;
using dpone::SchemaChange;
using dpone::StrategyMode;
using dpone::StrategySpec;
using dpone::TypeId;
using nlohmann::json;

namespace {

// The request as a run planning now sends it (the receipt compare-and-set).
dpone::PromoteRequest& planned(dpone::Sink& sink, dpone::PromoteRequest& req) {
  req.expected_latest_receipt = dpone::newest_receipt_run_id(sink);
  return req;
}

using Cell = std::optional<std::string>;
using Row = std::vector<Cell>;
const Cell kNull = std::nullopt;

// Hands out fixed rows in batches of `batch` rows.
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
  s.format = dpone::WireFormat::RecordBatch;
  s.batches = std::make_unique<RowsReader>(schema, std::move(rows), batch);
  return s;
}

std::vector<Row> drain(dpone::Artifact artifact) {
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

SchemaChange create_table() {
  SchemaChange c;
  c.kind = ChangeKind::CreateTable;
  c.safe = true;
  return c;
}

SchemaChange add_column(const Column& col) {
  SchemaChange c;
  c.kind = ChangeKind::AddColumn;
  c.column = col.name;
  c.to = col;
  c.safe = true;
  return c;
}

StrategySpec strategy(StrategyMode mode, std::vector<std::string> key = {}) {
  StrategySpec s;
  s.mode = mode;
  s.unique_key = std::move(key);
  return s;
}

dpone::GateSpec gate(std::string name, std::string type, std::vector<std::string> columns,
                     std::string severity = "error") {
  dpone::GateSpec g;
  g.name = std::move(name);
  g.type = std::move(type);
  g.columns = std::move(columns);
  g.severity = std::move(severity);
  return g;
}

Schema people_schema() {
  Schema s;
  s.columns = {{"id", LogicalType::of(TypeId::Int64), false},
               {"name", LogicalType::of(TypeId::String), true},
               {"score", LogicalType::of(TypeId::Int32), true}};
  s.primary_key = {"id"};
  return s;
}

class SqliteConnectorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("dpone_sqlite_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    db_path_ = (dir_ / "data" / "db.sqlite").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::unique_ptr<dpone::Sink> sink(const std::string& table, const std::string& run_id,
                                    json extra = json::object()) {
    dpone::SinkContext ctx;
    ctx.stream = "s_" + table;
    ctx.run_id = run_id;
    ctx.options = json{{"table", table}, {"path", "data/db.sqlite"}};
    ctx.options.update(extra);
    ctx.connection = nullptr;
    ctx.base_dir = dir_;
    ctx.diagnostics = &diag_;
    ctx.on_progress = [this](int64_t rows, int64_t bytes) { progress_.emplace_back(rows, bytes); };
    return dpone::make_sqlite_sink(ctx);
  }

  std::unique_ptr<dpone::Source> source(json options) {
    dpone::SourceContext ctx;
    ctx.stream = "src";
    ctx.options = std::move(options);
    if (!ctx.options.contains("path")) ctx.options["path"] = "data/db.sqlite";
    ctx.connection = nullptr;
    ctx.base_dir = dir_;
    ctx.diagnostics = &diag_;
    return dpone::make_sqlite_source(ctx);
  }

  // Stage + promote one load; returns the promote result.
  dpone::PromoteResult load(const std::string& table, const std::string& run_id,
                            const Schema& schema, std::vector<Row> rows, StrategySpec strat,
                            bool create = false) {
    auto s = sink(table, run_id);
    auto target = s->inspect();
    std::vector<SchemaChange> changes;
    if (!target.exists || create) changes.push_back(create_table());
    std::vector<const SchemaChange*> ptrs;
    for (const auto& c : changes) ptrs.push_back(&c);
    auto staged = s->stage(rows_artifact(schema, std::move(rows)), schema);
    dpone::PromoteRequest req;
    req.strategy = std::move(strat);
    req.changes = ptrs;
    req.source_schema = schema;
    req.receipt.stream = "s_" + table;
    req.receipt.run_id = run_id;
    req.receipt.rows = staged.rows;
    req.receipt.window = json{{"high", 1}};
    req.receipt.new_position = json{{"cursor", run_id}};
    return s->promote(staged, planned(*s, req));
  }

  dpone::SqliteDb open_db() {
    fs::create_directories(fs::path(db_path_).parent_path());
    return dpone::SqliteDb(db_path_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                           ErrorCode::Internal);
  }

  // Rows of a query as text ("NULL" for NULL), for compact assertions.
  std::vector<std::vector<std::string>> query(const std::string& sql) {
    auto db = open_db();
    auto stmt = db.prepare(sql);
    std::vector<std::vector<std::string>> out;
    while (stmt.step()) {
      std::vector<std::string> row;
      for (int c = 0; c < stmt.column_count(); ++c) {
        row.push_back(stmt.column_is_null(c) ? "NULL" : std::string(stmt.column_text(c)));
      }
      out.push_back(std::move(row));
    }
    return out;
  }

  bool table_exists(const std::string& name) {
    return !query("SELECT name FROM sqlite_master WHERE type='table' AND name='" + name + "'")
                .empty();
  }

  fs::path dir_;
  std::string db_path_;
  dpone::Diagnostics diag_;
  std::vector<std::pair<int64_t, int64_t>> progress_;
};

using Rows = std::vector<std::vector<std::string>>;

// --- type map ---------------------------------------------------------------------

TEST(SqliteTypes, DeclaredTypesAndBack) {
  using dpone::sqlite::declared_type;
  using dpone::sqlite::logical_type_of;
  using dpone::sqlite::TypeSide;
  std::vector<std::pair<LogicalType, std::string>> cases = {
      {LogicalType::of(TypeId::Bool), "BOOLEAN"},
      {LogicalType::of(TypeId::Int16), "SMALLINT"},
      {LogicalType::of(TypeId::Int32), "INTEGER"},
      {LogicalType::of(TypeId::Int64), "BIGINT"},
      {LogicalType::of(TypeId::Float32), "FLOAT"},
      {LogicalType::of(TypeId::Float64), "DOUBLE"},
      {LogicalType::decimal(38, 10), "DECIMAL_TEXT(38,10)"},
      {LogicalType::of(TypeId::String), "TEXT"},
      {LogicalType::varchar(20), "VARCHAR(20)"},
      {LogicalType::of(TypeId::Bytes), "BLOB"},
      {LogicalType::of(TypeId::Date), "DATE"},
      {LogicalType::of(TypeId::Time), "TIME"},
      {LogicalType::timestamp(6, false), "TIMESTAMP"},
      {LogicalType::timestamp(3, false), "TIMESTAMP(3)"},
      {LogicalType::timestamp(6, true), "TIMESTAMPTZ"},
      {LogicalType::timestamp(0, true), "TIMESTAMPTZ(0)"},
      {LogicalType::of(TypeId::Json), "JSON_TEXT"},
      {LogicalType::of(TypeId::Uuid), "UUID"},
  };
  for (const auto& [type, decl] : cases) {
    EXPECT_EQ(declared_type(type), decl) << type.to_string();
    auto back = logical_type_of(decl, TypeSide::Target);
    EXPECT_TRUE(back.known) << decl;
    EXPECT_EQ(back.type, type) << decl << " -> " << back.type.to_string();
  }
  // A source reads anyone's INTEGER / FLOAT at SQLite's real width.
  EXPECT_EQ(logical_type_of("INTEGER", TypeSide::Source).type, LogicalType::of(TypeId::Int64));
  EXPECT_EQ(logical_type_of("FLOAT", TypeSide::Source).type, LogicalType::of(TypeId::Float64));
  // Aliases and affinity fallbacks.
  EXPECT_EQ(logical_type_of("int", TypeSide::Target).type, LogicalType::of(TypeId::Int64));
  EXPECT_EQ(logical_type_of("unsigned big int", TypeSide::Source).type,
            LogicalType::of(TypeId::Int64));
  EXPECT_EQ(logical_type_of("nvarchar(30)", TypeSide::Source).type,
            LogicalType::of(TypeId::String));
  EXPECT_EQ(logical_type_of("varchar ( 30 )", TypeSide::Source).type, LogicalType::varchar(30));
  EXPECT_EQ(logical_type_of("REAL", TypeSide::Target).type, LogicalType::of(TypeId::Float64));
  EXPECT_EQ(logical_type_of("decimal(10, 2)", TypeSide::Source).type, LogicalType::decimal(10, 2));
  EXPECT_EQ(logical_type_of("DATETIME", TypeSide::Source).type, LogicalType::timestamp(6, false));
  EXPECT_EQ(logical_type_of("json", TypeSide::Source).type, LogicalType::of(TypeId::Json));
  EXPECT_EQ(logical_type_of("bool", TypeSide::Source).type, LogicalType::of(TypeId::Bool));
  EXPECT_EQ(logical_type_of("mediumblob", TypeSide::Source).type, LogicalType::of(TypeId::Bytes));
  auto none = logical_type_of("", TypeSide::Source);
  EXPECT_FALSE(none.known);
  EXPECT_EQ(none.type, LogicalType::of(TypeId::String));
  auto odd = logical_type_of("GEOMETRY", TypeSide::Source);
  EXPECT_FALSE(odd.known);
  EXPECT_EQ(odd.type, LogicalType::of(TypeId::String));
  EXPECT_FALSE(logical_type_of("NUMERIC", TypeSide::Source).known);
}

TEST(SqliteTypes, CanonicalHelpers) {
  using dpone::sqlite::normalize_decimal;
  using dpone::sqlite::normalize_timestamp;
  EXPECT_EQ(normalize_decimal("12.5", 10, 2), "12.50");
  EXPECT_EQ(normalize_decimal("-0.1", 10, 2), "-0.10");
  EXPECT_EQ(normalize_decimal("-0.000", 10, 2), "0.00");
  EXPECT_EQ(normalize_decimal("007", 10, 0), "7");
  EXPECT_EQ(normalize_decimal(".5", 10, 1), "0.5");
  EXPECT_EQ(normalize_decimal("1.2300", 10, 2), "1.23");
  EXPECT_THROW(normalize_decimal("1.234", 10, 2), Error);
  EXPECT_THROW(normalize_decimal("123456789", 10, 2), Error);
  EXPECT_THROW(normalize_decimal("1e5", 10, 2), Error);
  EXPECT_THROW(normalize_decimal("", 10, 2), Error);
  EXPECT_EQ(normalize_timestamp("2024-01-05 10:00:00.500", false), "2024-01-05T10:00:00.5");
  EXPECT_EQ(normalize_timestamp("2024-01-05", false), "2024-01-05T00:00:00");
  EXPECT_EQ(normalize_timestamp("2024-01-05T10:00:00Z", false), "2024-01-05T10:00:00");
  EXPECT_EQ(normalize_timestamp("2024-01-05T10:00", true), "2024-01-05T10:00:00Z");
  EXPECT_EQ(normalize_timestamp("2024-01-01T01:30:00.25+02:00", true), "2023-12-31T23:30:00.25Z");
  EXPECT_EQ(normalize_timestamp("2024-02-28T23:00:00-0130", true), "2024-02-29T00:30:00Z");
  EXPECT_THROW(normalize_timestamp("2024-01-05T10:00:00+02:00", false), Error);
  EXPECT_THROW(normalize_timestamp("2024-02-30T10:00:00", false), Error);
  EXPECT_THROW(normalize_timestamp("yesterday", true), Error);
  EXPECT_EQ(dpone::sqlite::format_double(0.1), "0.1");
  EXPECT_EQ(dpone::sqlite::format_float(0.1f), "0.1");
  EXPECT_EQ(dpone::sqlite::format_double(-INFINITY), "-Infinity");
}

// Every logical type through stage -> promote -> source extract, with the awkward
// values: NULL next to the empty string, tabs/newlines/unicode, 38-digit decimals,
// NaN and infinities, bytes with NUL and high bytes.
TEST_F(SqliteConnectorTest, EveryTypeRoundTripsThroughSinkAndSource) {
  Schema schema;
  schema.columns = {
      {"id", LogicalType::of(TypeId::Int64), false},
      {"b", LogicalType::of(TypeId::Bool), true},
      {"i16", LogicalType::of(TypeId::Int16), true},
      {"i32", LogicalType::of(TypeId::Int32), true},
      {"f32", LogicalType::of(TypeId::Float32), true},
      {"f64", LogicalType::of(TypeId::Float64), true},
      {"dec", LogicalType::decimal(38, 10), true},
      {"dec0", LogicalType::decimal(38, 0), true},
      {"s", LogicalType::of(TypeId::String), true},
      {"vc", LogicalType::varchar(10), true},
      {"raw", LogicalType::of(TypeId::Bytes), true},
      {"d", LogicalType::of(TypeId::Date), true},
      {"t", LogicalType::of(TypeId::Time), true},
      {"ts", LogicalType::timestamp(6, false), true},
      {"tstz", LogicalType::timestamp(3, true), true},
      {"j", LogicalType::of(TypeId::Json), true},
      {"u", LogicalType::of(TypeId::Uuid), true},
  };
  schema.primary_key = {"id"};
  std::string binary("a\0b\xff\x01", 5);
  std::vector<Row> rows = {
      {"1", "true", "-32768", "2147483647", "0.1", "0.30000000000000004",
       "1234567890123456789012345678.1234567890", "99999999999999999999999999999999999999",
       "tab\there\nnewline \xc3\xa9\xe2\x82\xac \xf0\x9f\x98\x80", "short", binary, "2024-02-29",
       "23:59:59.999999", "2024-01-05T10:20:30.123456", "2024-01-05T10:20:30.5Z",
       R"({"a":[1,2.50,"x"]})", "123e4567-e89b-12d3-a456-426614174000"},
      {"2", "false", "32767", "-2147483648", "NaN", "Infinity", "-0.0000000001", "-7", "", "",
       std::string(), "1970-01-01", "00:00:00", "1970-01-01T00:00:00", "1970-01-01T00:00:00Z",
       "12345678901234567890123", "00000000-0000-0000-0000-000000000000"},
      {"3", kNull, kNull, kNull, "-Infinity", "-0.5", "0.0000000000", "0", kNull, kNull, kNull,
       kNull, kNull, kNull, kNull, "1.50", kNull},
      {"4", "true", "0", "0", "3.4028235e+38", "1e+300", kNull, kNull, "NULL", "'quoted'",
       std::string("\0", 1), kNull, kNull, kNull, kNull, kNull, kNull},
  };
  auto result = load("all_types", "run1", schema, rows, strategy(StrategyMode::Append));
  EXPECT_EQ(result.inserted, 4);

  // Stored without loss: decimals and JSON as TEXT, NaN as text, infinity as REAL.
  EXPECT_EQ(query("SELECT typeof(dec), typeof(j), typeof(f32), typeof(f64), typeof(s), "
                  "typeof(raw) FROM all_types ORDER BY id"),
            (Rows{{"text", "text", "real", "real", "text", "blob"},
                  {"text", "text", "text", "real", "text", "blob"},
                  {"text", "text", "real", "real", "null", "null"},
                  {"null", "null", "real", "real", "text", "blob"}}));

  // The target compares equal to the schema it was created from.
  auto info = sink("all_types", "run2")->inspect();
  ASSERT_TRUE(info.exists);
  EXPECT_EQ(info.schema, schema);
  EXPECT_EQ(info.rows, 4);

  auto src = source({{"table", "all_types"}});
  auto w = src->plan_window(nullptr);
  EXPECT_EQ(w.description, "full table main.all_types");
  EXPECT_EQ(w.estimated_rows, 4);
  auto discovered = src->discover();
  EXPECT_EQ(discovered.primary_key, std::vector<std::string>{"id"});
  EXPECT_FALSE(discovered.columns[0].nullable);
  EXPECT_TRUE(discovered.columns[1].nullable);
  // Source side widens INTEGER/FLOAT (SQLite's real widths), everything else is exact.
  for (size_t i = 0; i < schema.columns.size(); ++i) {
    LogicalType expected = schema.columns[i].type;
    if (expected.id == TypeId::Int32) expected = LogicalType::of(TypeId::Int64);
    if (expected.id == TypeId::Float32) expected = LogicalType::of(TypeId::Float64);
    EXPECT_EQ(discovered.columns[i].type, expected) << schema.columns[i].name;
  }
  auto got = drain(src->extract(w, src->produces().front(), dpone::ExtractOptions{3}));
  // Rows come back in rowid order; float32 values read as float64 keep their text
  // only where the float32 text is also the shortest double text.
  std::vector<Row> expected = rows;
  expected[0][4] = dpone::sqlite::format_double(static_cast<double>(0.1));
  expected[3][4] = "3.4028235e+38";
  ASSERT_EQ(got.size(), expected.size());
  for (size_t r = 0; r < got.size(); ++r) {
    for (size_t c = 0; c < schema.columns.size(); ++c) {
      EXPECT_EQ(got[r][c], expected[r][c]) << "row " << r << " column " << schema.columns[c].name;
    }
  }
  EXPECT_TRUE(diag_.warnings().empty());
}

TEST_F(SqliteConnectorTest, ForeignTablesMapByAffinityAndConvertValues) {
  {
    auto db = open_db();
    db.exec(
        "CREATE TABLE legacy (id INTEGER PRIMARY KEY, flag BOOL, amount DECIMAL(10,2), "
        "price NUMERIC, seen DATETIME, data, uid UUID);"
        "INSERT INTO legacy VALUES (5000000000, 1, 12.5, 3, '2024-01-05 10:00:00', x'00ff', "
        "x'123e4567e89b12d3a456426614174000');"
        "INSERT INTO legacy VALUES (2, 'false', '7', 2.25, '2024-01-06', 'text', "
        "'123E4567-E89B-12D3-A456-426614174000');");
  }
  auto src = source({{"table", "legacy"}});
  auto schema = src->discover();
  EXPECT_EQ(schema.columns[0].type, LogicalType::of(TypeId::Int64));
  EXPECT_EQ(schema.columns[1].type, LogicalType::of(TypeId::Bool));
  EXPECT_EQ(schema.columns[2].type, LogicalType::decimal(10, 2));
  EXPECT_EQ(schema.columns[3].type, LogicalType::of(TypeId::String));
  EXPECT_EQ(schema.columns[4].type, LogicalType::timestamp(6, false));
  EXPECT_EQ(schema.columns[5].type, LogicalType::of(TypeId::String));
  ASSERT_EQ(diag_.warnings().size(), 2u);  // price (NUMERIC) and data (no type)
  EXPECT_NE(diag_.warnings()[0].find("'price'"), std::string::npos);
  EXPECT_NE(diag_.warnings()[1].find("'data'"), std::string::npos);
  auto w = src->plan_window(nullptr);
  auto got = drain(src->extract(w, src->produces().front(), {}));
  ASSERT_EQ(got.size(), 2u);  // rowid order: id is the rowid
  std::string blob("\x00\xff", 2);
  EXPECT_EQ(got[1], (Row{"5000000000", "true", "12.50", "3", "2024-01-05T10:00:00", blob,
                         "123e4567-e89b-12d3-a456-426614174000"}));
  EXPECT_EQ(got[0], (Row{"2", "false", "7.00", "2.25", "2024-01-06T00:00:00", "text",
                         "123e4567-e89b-12d3-a456-426614174000"}));
}

TEST_F(SqliteConnectorTest, BadValuesNameRowAndColumn) {
  {
    auto db = open_db();
    db.exec(
        "CREATE TABLE t (id INTEGER, d DATE); INSERT INTO t VALUES (1, '2024-01-01'), "
        "(2, 20240101)");
  }
  auto src = source({{"table", "t"}});
  auto w = src->plan_window(nullptr);
  try {
    drain(src->extract(w, src->produces().front(), {}));
    FAIL() << "expected TypeMismatch";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::TypeMismatch);
    std::string msg = e.what();
    EXPECT_NE(msg.find("row 2 column 'd'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("20240101"), std::string::npos) << msg;
  }
  // Staging refuses a non-canonical cell with the row and column.
  Schema s;
  s.columns = {{"n", LogicalType::of(TypeId::Int32), true}};
  auto sk = sink("bad", "r1");
  try {
    sk->stage(rows_artifact(s, {{"1"}, {"x"}}), s);
    FAIL() << "expected TypeMismatch";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::TypeMismatch);
    EXPECT_NE(std::string(e.what()).find("staging row 2 column 'n'"), std::string::npos)
        << e.what();
  }
  try {
    sk->stage(rows_artifact(s, {{"3000000000"}}), s);
    FAIL() << "expected TypeOverflow";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::TypeOverflow);
  }
}

// --- source windows ---------------------------------------------------------------

TEST_F(SqliteConnectorTest, CursorWindowsAcrossRuns) {
  {
    auto db = open_db();
    db.exec(
        "CREATE TABLE ev (id INTEGER PRIMARY KEY, v TEXT, ver BIGINT);"
        "INSERT INTO ev VALUES (1, 'a', 10), (2, 'b', 20), (3, 'c', 20), (4, 'null', NULL)");
  }
  json opts = {{"table", "ev"}, {"incremental", "cursor"}, {"cursor", "ver"}};

  // Run 1: first run, no position.
  auto s1 = source(opts);
  auto w1 = s1->plan_window(nullptr);
  EXPECT_TRUE(w1.low.is_null());
  EXPECT_EQ(w1.high, json(20));
  EXPECT_FALSE(w1.empty);
  EXPECT_EQ(w1.estimated_rows, 3);
  EXPECT_EQ(w1.description, "(-inf, 20]");
  auto rows1 = drain(s1->extract(w1, s1->produces().front(), dpone::ExtractOptions{2}));
  ASSERT_EQ(rows1.size(), 3u);
  EXPECT_EQ(rows1[0], (Row{"1", "a", "10"}));
  json p1 = s1->next_position(w1);
  EXPECT_EQ(p1, (json{{"cursor", 20}}));
  EXPECT_TRUE(p1["cursor"].is_number_integer());

  // Between runs: one row is updated (its cursor moves), one inserted; one row arrives
  // after the high bound is fixed and must wait for the next run.
  {
    auto db = open_db();
    db.exec("UPDATE ev SET v = 'a2', ver = 30 WHERE id = 1; INSERT INTO ev VALUES (5, 'e', 25)");
  }
  auto s2 = source(opts);
  auto w2 = s2->plan_window(p1);
  EXPECT_EQ(w2.low, json(20));
  EXPECT_EQ(w2.high, json(30));
  EXPECT_EQ(w2.description, "(20, 30]");
  EXPECT_EQ(w2.estimated_rows, 2);
  {
    auto db = open_db();
    db.exec("INSERT INTO ev VALUES (6, 'late', 31)");
  }
  auto rows2 = drain(s2->extract(w2, s2->produces().front(), {}));
  EXPECT_EQ(rows2, (std::vector<Row>{{"5", "e", "25"}, {"1", "a2", "30"}}));
  json p2 = s2->next_position(w2);
  EXPECT_EQ(p2, (json{{"cursor", 30}}));

  // Run 3 picks up the late row; run 4 finds nothing new: an empty window, same position.
  auto s3 = source(opts);
  auto w3 = s3->plan_window(p2);
  EXPECT_EQ(drain(s3->extract(w3, s3->produces().front(), {})).size(), 1u);
  json p3 = s3->next_position(w3);
  EXPECT_EQ(p3, (json{{"cursor", 31}}));
  auto s4 = source(opts);
  auto w4 = s4->plan_window(p3);
  EXPECT_TRUE(w4.empty);
  EXPECT_EQ(w4.estimated_rows, 0);
  EXPECT_TRUE(drain(s4->extract(w4, s4->produces().front(), {})).empty());
  EXPECT_EQ(s4->next_position(w4), p3);
}

TEST_F(SqliteConnectorTest, TextCursorAndEmptyTable) {
  {
    auto db = open_db();
    db.exec("CREATE TABLE e (k TEXT, at TEXT)");
  }
  json opts = {{"table", "e"}, {"cursor", "at"}};  // incremental defaults to cursor
  auto s = source(opts);
  auto w = s->plan_window(nullptr);
  EXPECT_TRUE(w.empty);
  EXPECT_TRUE(w.high.is_null());
  EXPECT_TRUE(s->next_position(w).is_null());
  {
    auto db = open_db();
    db.exec("INSERT INTO e VALUES ('a', '2024-01-05T10:00:00'), ('b', '2024-01-06T00:00:00')");
  }
  auto s2 = source(opts);
  auto w2 = s2->plan_window(json{{"cursor", "2024-01-05T10:00:00"}});
  EXPECT_EQ(w2.description, "(2024-01-05T10:00:00, 2024-01-06T00:00:00]");
  EXPECT_EQ(drain(s2->extract(w2, s2->produces().front(), {})),
            (std::vector<Row>{{"b", "2024-01-06T00:00:00"}}));
  EXPECT_EQ(s2->next_position(w2), (json{{"cursor", "2024-01-06T00:00:00"}}));
}

TEST_F(SqliteConnectorTest, QuerySourceWithKeyOverrideAndCursor) {
  {
    auto db = open_db();
    db.exec(
        "CREATE TABLE o (id INTEGER, amount DOUBLE, seq BIGINT);"
        "INSERT INTO o VALUES (1, 2.5, 1), (2, 3.5, 2), (3, 4.5, 3)");
  }
  auto s =
      source({{"query", "SELECT id, amount * 2 AS doubled, seq FROM o WHERE id <> 2 -- not 2; "},
              {"cursor", "seq"},
              {"primary_key", json::array({"id"})}});
  auto w = s->plan_window(json{{"cursor", 1}});
  auto schema = s->discover();
  EXPECT_EQ(schema.primary_key, std::vector<std::string>{"id"});
  EXPECT_EQ(schema.columns[1].type, LogicalType::of(TypeId::Float64));  // from the first value
  ASSERT_EQ(diag_.warnings().size(), 1u);
  EXPECT_NE(diag_.warnings()[0].find("'doubled'"), std::string::npos);
  EXPECT_EQ(w.estimated_rows, 1);
  EXPECT_EQ(drain(s->extract(w, s->produces().front(), {})), (std::vector<Row>{{"3", "9", "3"}}));
}

TEST_F(SqliteConnectorTest, SourceConfigurationErrors) {
  {
    auto db = open_db();
    db.exec("CREATE TABLE a (x INTEGER); CREATE TABLE b (y INTEGER)");
  }
  auto code_of = [&](json opts, bool plan) -> std::optional<ErrorCode> {
    try {
      auto s = source(std::move(opts));
      if (plan) {
        s->plan_window(nullptr);
        s->discover();
      }
      return std::nullopt;
    } catch (const Error& e) {
      return e.code();
    }
  };
  EXPECT_EQ(code_of({{"table", "a"}, {"query", "SELECT 1"}}, false), ErrorCode::ConfigInvalid);
  EXPECT_EQ(code_of(json::object(), false), ErrorCode::ConfigInvalid);
  EXPECT_EQ(code_of({{"table", "a"}, {"incremental", "cursor"}}, false),
            ErrorCode::ConfigMissingKey);
  EXPECT_EQ(code_of({{"table", "a"}, {"incremental", "xmin"}}, false), ErrorCode::ConfigBadValue);
  EXPECT_EQ(code_of({{"table", 5}}, false), ErrorCode::ConfigWrongType);
  EXPECT_EQ(code_of({{"table", "a"}, {"cursor", "nope"}}, true), ErrorCode::ConfigBadValue);
  EXPECT_EQ(code_of({{"table", "a"}, {"primary_key", json::array({"nope"})}}, true),
            ErrorCode::ConfigBadValue);
  EXPECT_EQ(code_of({{"table", "a"}, {"path", "missing.db"}}, true), ErrorCode::SourceUnavailable);
  EXPECT_EQ(code_of({{"query", "DELETE FROM a"}}, true), ErrorCode::ConfigBadValue);
  try {
    auto s = source({{"table", "zzz"}});
    s->discover();
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::ConfigBadValue);
    EXPECT_NE(e.hint().find("a, b"), std::string::npos) << e.hint();
  }
}

TEST_F(SqliteConnectorTest, ConnectionPathAndPasswordWarning) {
  dpone::ResolvedConnection conn;
  conn.id = "local";
  conn.type = "sqlite";
  conn.fields["path"] = "data/db.sqlite";
  conn.secrets["password"] = dpone::Secret("hunter2-very-secret");
  {
    auto db = open_db();
    db.exec("CREATE TABLE a (x INTEGER); INSERT INTO a VALUES (1)");
  }
  dpone::SourceContext ctx;
  ctx.stream = "a";
  ctx.options = json{{"table", "a"}};
  ctx.connection = &conn;
  ctx.base_dir = dir_;
  ctx.diagnostics = &diag_;
  auto s = dpone::make_sqlite_source(ctx);
  EXPECT_EQ(s->plan_window(nullptr).estimated_rows, 1);
  ASSERT_EQ(diag_.warnings().size(), 1u);
  EXPECT_EQ(diag_.warnings()[0], "connection 'local': field 'password' is not used by SQLite");
  ctx.options["path"] = "other.db";
  try {
    dpone::make_sqlite_source(ctx);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::ConfigInvalid);
    EXPECT_EQ(std::string(e.what()).find("hunter2"), std::string::npos);
  }
  conn.fields.clear();
  ctx.options.erase("path");
  EXPECT_THROW(dpone::make_sqlite_source(ctx), Error);
}

TEST(SqliteRegistry, RegistersSourceAndSink) {
  dpone::ConnectorRegistry registry;
  dpone::register_sqlite_connector(registry);
  const auto* f = registry.find("sqlite");
  ASSERT_NE(f, nullptr);
  EXPECT_TRUE(static_cast<bool>(f->make_source));
  EXPECT_TRUE(static_cast<bool>(f->make_sink));
}

// --- sink ---------------------------------------------------------------------------

TEST_F(SqliteConnectorTest, PlanTimeCallsCreateNothing) {
  auto s = sink("t", "r1");
  auto info = s->inspect();
  EXPECT_FALSE(info.exists);
  EXPECT_EQ(info.name, "main.t");
  EXPECT_FALSE(s->latest_receipt().has_value());
  EXPECT_TRUE(s->cleanup_abandoned({}).empty());
  auto steps = s->describe_promotion(strategy(StrategyMode::Merge, {"id"}), people_schema());
  ASSERT_FALSE(steps.empty());
  EXPECT_EQ(steps.front(), "BEGIN IMMEDIATE");
  EXPECT_EQ(steps.back(), "COMMIT");
  // The table will be created with PRIMARY KEY (id): the merge is an upsert.
  bool upsert = false;
  for (const auto& sql : steps)
    upsert = upsert || sql.find("ON CONFLICT (\"id\")") != std::string::npos;
  EXPECT_TRUE(upsert);
  EXPECT_FALSE(fs::exists(db_path_));
  EXPECT_FALSE(fs::exists(dir_ / "data"));
}

TEST_F(SqliteConnectorTest, RenderDdl) {
  Schema schema;
  schema.columns = {{"id", LogicalType::of(TypeId::Int64), false},
                    {"we\"ird name", LogicalType::decimal(12, 2), true}};
  schema.primary_key = {"id"};
  auto s = sink("my \"table\"", "r1");
  auto create = create_table();
  Column extra{"added", LogicalType::timestamp(6, true), false};
  auto add = add_column(extra);
  auto ddl = s->render_ddl(schema, {&create, &add});
  ASSERT_EQ(ddl.size(), 2u);
  EXPECT_EQ(ddl[0],
            "CREATE TABLE \"main\".\"my \"\"table\"\"\" (\"id\" BIGINT NOT NULL, "
            "\"we\"\"ird name\" DECIMAL_TEXT(12,2), PRIMARY KEY (\"id\"))");
  EXPECT_EQ(ddl[1], "ALTER TABLE \"main\".\"my \"\"table\"\"\" ADD COLUMN \"added\" TIMESTAMPTZ");

  SchemaChange widen;
  widen.kind = ChangeKind::WidenType;
  widen.column = "id";
  widen.detail = "int32 -> int64";
  try {
    s->render_ddl(schema, {&widen});
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::SchemaUnsafeChange);
    EXPECT_NE(std::string(e.what()).find("int32 -> int64"), std::string::npos);
  }
  // The DDL really runs (quoting included).
  auto db = open_db();
  for (const auto& sql : ddl) db.exec(sql);
  auto info = s->inspect();
  ASSERT_TRUE(info.exists);
  ASSERT_EQ(info.schema.columns.size(), 3u);
  EXPECT_EQ(info.schema.columns[1].name, "we\"ird name");
  EXPECT_TRUE(info.schema.columns[2].nullable);
}

TEST_F(SqliteConnectorTest, StageReportsProgressAndAbortDropsStaging) {
  Schema schema = people_schema();
  auto s = sink("people", "2026-01-01T00:00:00Z-ab/c");
  auto staged =
      s->stage(rows_artifact(schema, {{"1", "a", "1"}, {"2", "b", kNull}, {"3", "", "3"}}), schema);
  EXPECT_EQ(staged.staging_name, "people__dpone_stg_2026_01_01T00_00_00Z_ab_c");
  EXPECT_EQ(staged.rows, 3);
  EXPECT_EQ(staged.bytes, 7);       // "1a1" "2b" "3" "3": NULL and "" hold no bytes
  ASSERT_EQ(progress_.size(), 2u);  // batches of 2 rows
  EXPECT_EQ(progress_.back().first, 3);
  EXPECT_TRUE(table_exists(staged.staging_name));
  EXPECT_FALSE(table_exists("people"));  // the target is untouched by stage
  EXPECT_EQ(query("SELECT quote(name) FROM " + staged.staging_name + " ORDER BY id"),
            (Rows{{"'a'"}, {"'b'"}, {"''"}}));
  s->abort(staged);
  EXPECT_FALSE(table_exists(staged.staging_name));
  s->abort(staged);  // twice is fine
  dpone::StagedLoad foreign;
  foreign.staging_name = "people";
  s->abort(foreign);  // never drops something that is not a staging table
}

// More rows than one staging transaction holds: the load spans several commits.
TEST_F(SqliteConnectorTest, LargeStageCommitsInChunks) {
  Schema schema;
  schema.columns = {{"n", LogicalType::of(TypeId::Int64), false},
                    {"s", LogicalType::of(TypeId::String), true}};
  std::vector<Row> rows;
  const int kRows = 120'001;
  rows.reserve(kRows);
  for (int i = 0; i < kRows; ++i) rows.push_back({std::to_string(i), "v" + std::to_string(i % 7)});
  auto s = sink("big", "r1");
  auto staged = s->stage(rows_artifact(schema, std::move(rows), 10'000), schema);
  EXPECT_EQ(staged.rows, kRows);
  EXPECT_EQ(progress_.size(), 13u);
  EXPECT_EQ(progress_.back().first, kRows);
  EXPECT_EQ(query("SELECT count(*), sum(n) FROM big__dpone_stg_r1"),
            (Rows{{std::to_string(kRows), std::to_string(int64_t{kRows} * (kRows - 1) / 2)}}));
}

// sqlite -> sqlite in one file: the source keeps its read open while the sink commits
// staging chunks beside it. The file starts in rollback-journal mode; the sink turns on
// WAL before the first read begins.
TEST_F(SqliteConnectorTest, SourceAndSinkShareOneFile) {
  {
    auto db = open_db();
    db.exec("PRAGMA journal_mode = DELETE; CREATE TABLE src (id BIGINT, v TEXT)");
    db.exec(
        "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 60000) "
        "INSERT INTO src SELECT i, 'row ' || i FROM c");
  }
  auto src = source({{"table", "src"}});
  auto w = src->plan_window(nullptr);
  auto schema = src->discover();
  auto s = sink("copy", "r1");
  EXPECT_FALSE(s->inspect().exists);
  auto staged =
      s->stage(src->extract(w, src->produces().front(), dpone::ExtractOptions{1000}), schema);
  EXPECT_EQ(staged.rows, 60000);
  auto create = create_table();
  dpone::PromoteRequest req;
  req.strategy = strategy(StrategyMode::FullRefresh);
  req.changes = {&create};
  req.source_schema = schema;
  auto result = s->promote(staged, planned(*s, req));
  EXPECT_EQ(result.inserted, 60000);
  EXPECT_EQ(result.deleted, 0);
  EXPECT_EQ(query("SELECT count(*), max(v) FROM copy"), (Rows{{"60000", "row 9999"}}));
  EXPECT_EQ(query("PRAGMA journal_mode"), (Rows{{"wal"}}));
}

TEST_F(SqliteConnectorTest, GatesOnStaging) {
  Schema schema = people_schema();
  schema.columns[0].nullable = true;
  auto s = sink("people", "r1");
  auto staged = s->stage(rows_artifact(schema, {{"1", "a", "1"},
                                                {"2", kNull, "2"},
                                                {kNull, "c", "3"},
                                                {"1", "d", "4"},
                                                {"1", "e", "5"},
                                                {"4", "f", "6"},
                                                {"4", "g", "7"}}),
                         schema);
  auto nn = gate("key_not_null", "not_null", {"id", "name"});
  auto uq = gate("key_unique", "unique", {"id"});
  auto ok = gate("score_unique", "unique", {"score"}, "warn");
  auto results = s->check(staged, {nn, uq, ok});
  ASSERT_EQ(results.size(), 3u);
  EXPECT_FALSE(results[0].passed);
  EXPECT_EQ(results[0].failing_rows, 2);
  EXPECT_EQ(results[0].samples,
            (std::vector<std::string>{"row 2: id=2, name=NULL", "row 3: id=NULL, name='c'"}));
  EXPECT_NE(results[0].sql.find("\"id\" IS NULL OR \"name\" IS NULL"), std::string::npos);
  EXPECT_FALSE(results[1].passed);
  EXPECT_EQ(results[1].failing_rows, 5);  // three rows with id 1, two with id 4
  EXPECT_EQ(results[1].samples, (std::vector<std::string>{"id=1 (3 rows)", "id=4 (2 rows)"}));
  EXPECT_TRUE(results[2].passed);
  EXPECT_EQ(results[2].severity, "warn");
  EXPECT_EQ(results[2].failing_rows, 0);

  auto unknown = gate("r", "range", {"score"});
  try {
    s->check(staged, {unknown});
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::ConfigBadValue);
  }
  auto missing = gate("m", "not_null", {"nope"});
  EXPECT_THROW(s->check(staged, {missing}), Error);
}

TEST_F(SqliteConnectorTest, FullRefreshTruncateInsert) {
  Schema schema = people_schema();
  load("people", "r1", schema, {{"1", "a", "1"}, {"2", "b", "2"}, {"3", "c", "3"}},
       strategy(StrategyMode::Append));
  auto fr = strategy(StrategyMode::FullRefresh);
  auto result = load("people", "r2", schema, {{"7", "x", "70"}, {"8", "y", kNull}}, fr);
  EXPECT_EQ(result.deleted, 3);
  EXPECT_EQ(result.inserted, 2);
  EXPECT_EQ(result.updated, 0);
  EXPECT_TRUE(result.atomic);
  EXPECT_EQ(query("SELECT id, name, score FROM people ORDER BY id"),
            (Rows{{"7", "x", "70"}, {"8", "y", "NULL"}}));
  ASSERT_GE(result.sql.size(), 4u);
  EXPECT_EQ(result.sql.front(), "BEGIN IMMEDIATE");
  EXPECT_EQ(result.sql[2], "DELETE FROM \"main\".\"people\"");
  EXPECT_EQ(result.sql.back(), "COMMIT");
  // Staging is dropped in the promote transaction.
  EXPECT_FALSE(table_exists("people__dpone_stg_r2"));
}

TEST_F(SqliteConnectorTest, FullRefreshExchangeKeepsIndexesTriggersViewsAndConstraints) {
  Schema schema = people_schema();
  load("people", "r1", schema, {{"1", "a", "1"}, {"2", "b", "2"}}, strategy(StrategyMode::Append));
  {
    auto db = open_db();
    db.exec(
        "CREATE INDEX people_by_name ON people(name);"
        "CREATE TABLE audit (id INTEGER);"
        "CREATE TRIGGER people_audit AFTER INSERT ON people BEGIN "
        "INSERT INTO audit VALUES (new.id); END;"
        "CREATE VIEW people_v AS SELECT id, name FROM people");
  }
  auto fr = strategy(StrategyMode::FullRefresh);
  fr.overwrite = dpone::OverwriteMethod::Exchange;
  // The exchange also applies an added column to the new table.
  Schema evolved = schema;
  evolved.columns.push_back({"email", LogicalType::of(TypeId::String), true});
  auto s = sink("people", "r2");
  auto staged =
      s->stage(rows_artifact(evolved, {{"5", "e", "50", "e@x"}, {"6", "f", "60", kNull}}), evolved);
  auto add = add_column(evolved.columns[3]);
  dpone::PromoteRequest req;
  req.strategy = fr;
  req.changes = {&add};
  req.source_schema = evolved;
  req.receipt.run_id = "r2";
  auto result = s->promote(staged, planned(*s, req));
  EXPECT_EQ(result.deleted, 2);
  EXPECT_EQ(result.inserted, 2);
  EXPECT_EQ(query("SELECT id, name, score, email FROM people ORDER BY id"),
            (Rows{{"5", "e", "50", "e@x"}, {"6", "f", "60", "NULL"}}));
  EXPECT_EQ(query("SELECT name FROM sqlite_master WHERE tbl_name = 'people' AND type IN "
                  "('index','trigger') AND sql IS NOT NULL ORDER BY name"),
            (Rows{{"people_audit"}, {"people_by_name"}}));
  EXPECT_EQ(query("SELECT count(*) FROM people_v"), (Rows{{"2"}}));
  EXPECT_FALSE(table_exists("people__dpone_new_r2"));
  // The primary key survived the swap, and the trigger fires on the new table.
  auto info = sink("people", "r3")->inspect();
  EXPECT_EQ(info.schema.primary_key, std::vector<std::string>{"id"});
  EXPECT_EQ(info.schema.columns.size(), 4u);
  {
    auto db = open_db();
    db.exec("INSERT INTO people (id, name) VALUES (9, 'z')");
    EXPECT_THROW(db.exec("INSERT INTO people (id, name) VALUES (9, 'dup')"), Error);
  }
  EXPECT_EQ(query("SELECT id FROM audit"), (Rows{{"9"}}));
  bool renamed = false;
  for (const auto& sql : result.sql)
    renamed =
        renamed || sql == "ALTER TABLE \"main\".\"people__dpone_new_r2\" RENAME TO \"people\"";
  EXPECT_TRUE(renamed);
}

TEST_F(SqliteConnectorTest, AppendAndOnlyNewRows) {
  Schema schema = people_schema();
  schema.primary_key.clear();  // no constraint: duplicates are possible with plain append
  auto r1 = load("people", "r1", schema, {{"1", "a", "1"}, {"2", "b", "2"}},
                 strategy(StrategyMode::Append));
  EXPECT_EQ(r1.inserted, 2);
  auto r2 = load("people", "r2", schema, {{"2", "b2", "2"}, {"3", "c", "3"}},
                 strategy(StrategyMode::Append));
  EXPECT_EQ(r2.inserted, 2);
  EXPECT_EQ(query("SELECT count(*) FROM people"), (Rows{{"4"}}));

  auto only_new = strategy(StrategyMode::Append, {"id"});
  only_new.only_new_rows = true;
  auto r3 =
      load("people", "r3", schema, {{"3", "c2", "3"}, {"4", "d", "4"}, {"5", "e", "5"}}, only_new);
  EXPECT_EQ(r3.inserted, 2);
  EXPECT_EQ(query("SELECT id, name FROM people WHERE id >= 3 ORDER BY id"),
            (Rows{{"3", "c"}, {"4", "d"}, {"5", "e"}}));
  bool not_exists = false;
  for (const auto& sql : r3.sql)
    not_exists = not_exists || sql.find("NOT EXISTS") != std::string::npos;
  EXPECT_TRUE(not_exists);

  auto missing_key = strategy(StrategyMode::Append);
  missing_key.only_new_rows = true;
  try {
    load("people", "r4", schema, {{"9", "z", "9"}}, missing_key);
    FAIL();
  } catch (const Error& e) {
    // Refused before the transaction starts, with the configuration error's own code.
    EXPECT_EQ(e.code(), ErrorCode::ConfigBadValue);
    EXPECT_NE(std::string(e.what()).find("unique_key"), std::string::npos);
  }
}

TEST_F(SqliteConnectorTest, MergeUpsertWithPrimaryKey) {
  Schema schema = people_schema();
  load("people", "r1", schema, {{"1", "a", "1"}, {"2", "b", "2"}}, strategy(StrategyMode::Append));
  auto result = load("people", "r2", schema, {{"2", "b2", "20"}, {"3", "c", "3"}},
                     strategy(StrategyMode::Merge, {"id"}));
  EXPECT_EQ(result.updated, 1);
  EXPECT_EQ(result.inserted, 1);
  EXPECT_EQ(result.deleted, 0);
  EXPECT_EQ(query("SELECT id, name, score FROM people ORDER BY id"),
            (Rows{{"1", "a", "1"}, {"2", "b2", "20"}, {"3", "c", "3"}}));
  bool upsert = false;
  for (const auto& sql : result.sql) {
    upsert = upsert || sql.find(
                           "ON CONFLICT (\"id\") DO UPDATE SET \"name\" = excluded.\"name\", "
                           "\"score\" = excluded.\"score\"") != std::string::npos;
  }
  EXPECT_TRUE(upsert);
}

TEST_F(SqliteConnectorTest, MergeWithUniqueIndexAndWithoutAny) {
  Schema schema = people_schema();
  schema.primary_key.clear();
  // Composite key with a UNIQUE index (columns listed in another order): upsert.
  load("pairs", "r1", schema, {{"1", "a", "1"}, {"1", "b", "2"}}, strategy(StrategyMode::Append));
  open_db().exec("CREATE UNIQUE INDEX pairs_key ON pairs(name, id)");
  auto r = load("pairs", "r2", schema, {{"1", "b", "99"}, {"2", "a", "5"}},
                strategy(StrategyMode::Merge, {"id", "name"}));
  EXPECT_EQ(r.updated, 1);
  EXPECT_EQ(r.inserted, 1);
  EXPECT_EQ(query("SELECT id, name, score FROM pairs ORDER BY id, name"),
            (Rows{{"1", "a", "1"}, {"1", "b", "99"}, {"2", "a", "5"}}));
  bool upsert = false;
  for (const auto& sql : r.sql) upsert = upsert || sql.find("ON CONFLICT") != std::string::npos;
  EXPECT_TRUE(upsert);

  // No key constraint at all: delete + insert in the same transaction.
  load("plain", "r1", schema, {{"1", "a", "1"}, {"2", "b", "2"}}, strategy(StrategyMode::Append));
  auto d = load("plain", "r2", schema, {{"2", "b2", "20"}, {"3", "c", "3"}},
                strategy(StrategyMode::Merge, {"id"}));
  EXPECT_EQ(d.updated, 1);
  EXPECT_EQ(d.inserted, 1);
  EXPECT_EQ(query("SELECT id, name, score FROM plain ORDER BY id"),
            (Rows{{"1", "a", "1"}, {"2", "b2", "20"}, {"3", "c", "3"}}));
  bool delete_insert = false;
  for (const auto& sql : d.sql) {
    delete_insert =
        delete_insert || sql ==
                             "DELETE FROM \"main\".\"plain\" WHERE \"id\" IN (SELECT \"id\" FROM "
                             "\"main\".\"plain__dpone_stg_r2\")";
  }
  EXPECT_TRUE(delete_insert);

  // Composite key without an index uses a row-value IN.
  auto c = load("plain", "r3", schema, {{"3", "c", "33"}},
                strategy(StrategyMode::Merge, {"id", "name"}));
  EXPECT_EQ(c.updated, 1);
  EXPECT_EQ(query("SELECT score FROM plain WHERE id = 3"), (Rows{{"33"}}));
  // The plan shows the same statements promote ran.
  auto plan = sink("plain", "r3")
                  ->describe_promotion(strategy(StrategyMode::Merge, {"id", "name"}), schema);
  bool row_value = false;
  for (const auto& sql : plan)
    row_value = row_value || sql.find("WHERE (\"id\", \"name\") IN") != std::string::npos;
  EXPECT_TRUE(row_value);
}

TEST_F(SqliteConnectorTest, ReceiptsAreWrittenWithTheDataAndReadBack) {
  Schema schema = people_schema();
  auto s1 = sink("people", "r1");
  EXPECT_FALSE(s1->latest_receipt().has_value());
  load("people", "r1", schema, {{"1", "a", "1"}}, strategy(StrategyMode::Append));
  load("people", "r2", schema, {{"2", "b", "2"}, {"3", "c", "3"}}, strategy(StrategyMode::Append));
  load("other", "r9", schema, {{"2", "b", "2"}}, strategy(StrategyMode::Append));
  auto receipt = sink("people", "r3")->latest_receipt();
  ASSERT_TRUE(receipt.has_value());
  EXPECT_EQ(receipt->stream, "s_people");
  EXPECT_EQ(receipt->run_id, "r2");
  EXPECT_EQ(receipt->rows, 2);
  EXPECT_EQ(receipt->window, (json{{"high", 1}}));
  EXPECT_EQ(receipt->new_position, (json{{"cursor", "r2"}}));
  EXPECT_FALSE(receipt->loaded_at.empty());
  EXPECT_EQ(query("SELECT count(*) FROM __dpone__loads"), (Rows{{"3"}}));
}

TEST_F(SqliteConnectorTest, FailedPromoteRollsBackEverything) {
  Schema schema = people_schema();
  load("people", "r1", schema, {{"1", "a", "1"}}, strategy(StrategyMode::Append));
  auto s = sink("people", "r2");
  auto staged = s->stage(rows_artifact(schema, {{"2", "b", "2"}}), schema);
  // The first DDL succeeds, the second fails: the first must be rolled back too.
  Column fresh{"fresh", LogicalType::of(TypeId::String), true};
  Column dup{"name", LogicalType::of(TypeId::String), true};
  auto add_fresh = add_column(fresh);
  auto add_dup = add_column(dup);
  dpone::PromoteRequest req;
  req.strategy = strategy(StrategyMode::Append);
  req.changes = {&add_fresh, &add_dup};
  req.source_schema = schema;
  req.receipt.run_id = "r2";
  try {
    s->promote(staged, planned(*s, req));
    FAIL() << "expected PromoteFailed";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::PromoteFailed);
    std::string msg = e.what();
    EXPECT_NE(msg.find("rolled back"), std::string::npos) << msg;
    EXPECT_NE(msg.find("duplicate column name: name"), std::string::npos) << msg;
  }
  EXPECT_EQ(query("SELECT count(*) FROM pragma_table_info('people') WHERE name = 'fresh'"),
            (Rows{{"0"}}));
  EXPECT_EQ(query("SELECT id FROM people"), (Rows{{"1"}}));
  EXPECT_EQ(query("SELECT run_id FROM __dpone__loads"), (Rows{{"r1"}}));
  EXPECT_TRUE(table_exists(staged.staging_name));  // left for abort()

  // A failure in the strategy itself (a duplicate primary key) rolls back the same way,
  // and the same sink can promote once the cause is gone.
  req.changes = {};
  auto dup_key = s->stage(rows_artifact(schema, {{"1", "again", "1"}}), schema);
  EXPECT_THROW(s->promote(dup_key, planned(*s, req)), Error);
  EXPECT_EQ(query("SELECT id, name FROM people"), (Rows{{"1", "a"}}));
  auto good = s->stage(rows_artifact(schema, {{"2", "b", "2"}}), schema);
  EXPECT_EQ(s->promote(good, planned(*s, req)).inserted, 1);
  EXPECT_EQ(query("SELECT run_id FROM __dpone__loads ORDER BY rowid"), (Rows{{"r1"}, {"r2"}}));
}

TEST_F(SqliteConnectorTest, CleanupAbandonedDropsOnlyOtherRunsOfThisTable) {
  Schema schema = people_schema();
  load("people", "r1", schema, {{"1", "a", "1"}}, strategy(StrategyMode::Append));
  {
    auto db = open_db();
    db.exec(
        "CREATE TABLE people__dpone_stg_old1 (x); CREATE TABLE people__dpone_new_old2 (x);"
        "CREATE TABLE other__dpone_stg_old3 (x); CREATE TABLE peopleXdpone_stg_old4 (x);");
  }
  auto s = sink("people", "now");
  auto staged = s->stage(rows_artifact(schema, {{"2", "b", "2"}}), schema);
  auto removed = s->cleanup_abandoned({});
  EXPECT_EQ(removed, (std::vector<std::string>{"main.people__dpone_new_old2",
                                               "main.people__dpone_stg_old1"}));
  EXPECT_TRUE(table_exists(staged.staging_name));
  EXPECT_TRUE(table_exists("other__dpone_stg_old3"));
  EXPECT_TRUE(table_exists("peopleXdpone_stg_old4"));
  EXPECT_TRUE(table_exists("people"));
}

TEST_F(SqliteConnectorTest, UnsupportedStrategyIsRefused) {
  Schema schema = people_schema();
  try {
    load("people", "r1", schema, {{"1", "a", "1"}}, strategy(StrategyMode::Scd2));
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::ConfigBadValue);
    EXPECT_NE(std::string(e.what()).find("scd2"), std::string::npos);
  }
  EXPECT_FALSE(table_exists("people"));  // promote never started
}

// --- failpoint inside the promote transaction ---------------------------------------
//
// failpoint() reads DPONE_FAILPOINTS once per process, so the armed promote runs in a
// fresh process: this binary re-executed with a filter selecting the child test below.

constexpr const char* kChildDbEnv = "DPONE_SQLITE_TEST_CHILD_DIR";

// DISABLED_: not a test of its own; FailpointInsidePromote re-executes this binary to run it
// with the failpoint armed (failpoints read the environment once per process).
TEST(SqliteFailpointChild, DISABLED_PromoteWithArmedFailpoint) {
  const char* dir = std::getenv(kChildDbEnv);
  if (!dir) GTEST_SKIP() << "runs only as the child of FailpointInsidePromote";
  dpone::Diagnostics diag;
  dpone::SinkContext ctx;
  ctx.stream = "s_people";
  ctx.run_id = "child";
  ctx.options = json{{"table", "people"}, {"path", "data/db.sqlite"}};
  ctx.connection = nullptr;
  ctx.base_dir = dir;
  ctx.diagnostics = &diag;
  auto s = dpone::make_sqlite_sink(ctx);
  Schema schema = people_schema();
  auto staged = s->stage(rows_artifact(schema, {{"2", "b", "2"}, {"3", "c", "3"}}), schema);
  Column extra{"extra", LogicalType::of(TypeId::String), true};
  auto add = add_column(extra);
  dpone::PromoteRequest req;
  req.strategy = strategy(StrategyMode::FullRefresh);
  req.changes = {&add};
  req.source_schema = schema;
  req.receipt.run_id = "child";
  try {
    s->promote(staged, planned(*s, req));
    FAIL() << "the armed failpoint did not fire";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::FailpointTriggered) << e.what();
  }
}

TEST_F(SqliteConnectorTest, FailpointInsidePromoteLeavesTargetUntouched) {
  Schema schema = people_schema();
  load("people", "r1", schema, {{"1", "a", "1"}}, strategy(StrategyMode::Append));
  for (std::string mode : {"error", "kill"}) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      std::string spec = "inside_promote=" + mode;
      ::setenv("DPONE_FAILPOINTS", spec.c_str(), 1);
      ::setenv(kChildDbEnv, dir_.c_str(), 1);
      ::execl("/proc/self/exe", "/proc/self/exe",
              "--gtest_filter=SqliteFailpointChild.DISABLED_PromoteWithArmedFailpoint", "--gtest_also_run_disabled_tests", "--gtest_brief=1",
              static_cast<char*>(nullptr));
      ::_exit(127);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    if (mode == "error") {
      ASSERT_TRUE(WIFEXITED(status)) << mode;
      EXPECT_EQ(WEXITSTATUS(status), 0) << "child test failed";
    } else {
      ASSERT_TRUE(WIFSIGNALED(status)) << mode;
      EXPECT_EQ(WTERMSIG(status), SIGKILL);
    }
    // DDL, full refresh and receipt were all inside the transaction: none survived.
    EXPECT_EQ(query("SELECT id, name, score FROM people"), (Rows{{"1", "a", "1"}})) << mode;
    EXPECT_EQ(query("SELECT count(*) FROM pragma_table_info('people')"), (Rows{{"3"}})) << mode;
    EXPECT_EQ(query("SELECT run_id FROM __dpone__loads"), (Rows{{"r1"}})) << mode;
    EXPECT_EQ(query("PRAGMA integrity_check"), (Rows{{"ok"}})) << mode;
    // The child's staging table remains until a later run cleans it up.
    EXPECT_TRUE(table_exists("people__dpone_stg_child")) << mode;
    auto removed = sink("people", "later")->cleanup_abandoned({});
    EXPECT_EQ(removed, std::vector<std::string>{"main.people__dpone_stg_child"}) << mode;
  }
}

}  // namespace
