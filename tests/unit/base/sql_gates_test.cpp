// Quality gates (core/connector/sql_gates, gate_tap): the spec checks, the typed hash
// definition, and every gate type judged over a real SQLite table with a minimal dialect.
#include "core/connector/sql_gates.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "core/connector/gate_tap.hpp"
#include "core/errors.hpp"

namespace dpone {
namespace {

using json = nlohmann::json;

std::vector<std::string> keys_of(const std::vector<std::pair<std::string, std::string>>& problems) {
  std::vector<std::string> out;
  for (const auto& p : problems) out.push_back(p.first);
  return out;
}

TEST(GateSpec, AcceptsWellFormedGatesOfEveryType) {
  for (const char* text :
       {R"({"type": "row_count"})", R"({"type": "row_count", "tolerance": 3})",
        R"({"type": "row_count", "tolerance": "0.5%"})", R"({"type": "min_rows", "min": 0})",
        R"({"type": "not_null", "columns": ["a", "b"]})", R"({"type": "unique", "columns": ["a"]})",
        R"({"type": "accepted_values", "columns": ["s"], "values": ["x", 1, true]})",
        R"({"type": "range", "columns": ["n"], "max": 10})",
        R"({"type": "freshness", "columns": ["ts"], "max_age": "24h"})",
        R"({"type": "custom_sql", "sql": "with x as (select * from {staging}) select * from x;"})",
        R"({"type": "typed_hash"})",
        R"({"type": "typed_hash", "columns": ["a"], "severity": "warn"})"}) {
    EXPECT_TRUE(check_gate_spec(json::parse(text)).empty()) << text;
  }
}

TEST(GateSpec, NamesTheKeyThatIsWrong) {
  EXPECT_EQ(keys_of(check_gate_spec(json::parse(R"({"type": "min_rows"})"))),
            std::vector<std::string>{"min"});
  EXPECT_EQ(keys_of(check_gate_spec(json::parse(R"({"type": "min_rows", "min": -1})"))),
            std::vector<std::string>{"min"});
  EXPECT_EQ(keys_of(check_gate_spec(json::parse(R"({"type": "not_null"})"))),
            std::vector<std::string>{"columns"});
  EXPECT_EQ(keys_of(check_gate_spec(
                json::parse(R"({"type": "range", "columns": ["a", "b"], "min": 1})"))),
            std::vector<std::string>{"columns"});
  EXPECT_EQ(keys_of(check_gate_spec(json::parse(R"({"type": "range", "columns": ["a"]})"))),
            std::vector<std::string>{"min"});
  EXPECT_EQ(keys_of(check_gate_spec(json::parse(R"({"type": "row_count", "tolerance": "x%"})"))),
            std::vector<std::string>{"tolerance"});
  EXPECT_EQ(keys_of(check_gate_spec(json::parse(R"({"type": "row_count", "tolerance": 1.5})"))),
            std::vector<std::string>{"tolerance"});
  EXPECT_EQ(keys_of(check_gate_spec(json::parse(R"({"type": "row_count", "columns": ["a"]})"))),
            std::vector<std::string>{"columns"});
  EXPECT_EQ(keys_of(check_gate_spec(
                json::parse(R"({"type": "freshness", "columns": ["t"], "max_age": "1y"})"))),
            std::vector<std::string>{"max_age"});
  EXPECT_EQ(keys_of(check_gate_spec(
                json::parse(R"({"type": "accepted_values", "columns": ["t"], "values": []})"))),
            std::vector<std::string>{"values"});
  EXPECT_EQ(
      keys_of(check_gate_spec(json::parse(R"({"type": "custom_sql", "sql": "DELETE FROM t"})"))),
      std::vector<std::string>{"sql"});
  EXPECT_EQ(
      keys_of(check_gate_spec(json::parse(R"({"type": "custom_sql", "sql": "select * from t"})"))),
      std::vector<std::string>{"sql"});
  EXPECT_EQ(
      keys_of(check_gate_spec(json::parse(R"({"type": "not_null", "columns": "a", "max": 3})"))),
      std::vector<std::string>{"max"});
}

TEST(GateSpec, Durations) {
  EXPECT_EQ(parse_duration_seconds("90s"), 90);
  EXPECT_EQ(parse_duration_seconds("30m"), 1800);
  EXPECT_EQ(parse_duration_seconds("24h"), 86400);
  EXPECT_EQ(parse_duration_seconds("7d"), 604800);
  EXPECT_EQ(parse_duration_seconds("2w"), 1209600);
  EXPECT_FALSE(parse_duration_seconds("0h"));
  EXPECT_FALSE(parse_duration_seconds("h"));
  EXPECT_FALSE(parse_duration_seconds("1.5h"));
  EXPECT_FALSE(parse_duration_seconds("1y"));
}

TEST(TypedHash, DefinitionPieces) {
  EXPECT_EQ(md5_prefix64(""), 0xd41d8cd98f00b204ULL);  // MD5("") = d41d8cd98f00b204...
  EXPECT_EQ(md5_prefix64("abc"), 0x900150983cd24fb0ULL);
  EXPECT_EQ(parse_sum_mod64("-1"), 0xffffffffffffffffULL);
  EXPECT_EQ(parse_sum_mod64("18446744073709551617"), 1u);
  EXPECT_EQ(parse_sum_mod64("0"), 0u);
  EXPECT_FALSE(parse_sum_mod64("1.5"));
  EXPECT_FALSE(parse_sum_mod64(""));
  const auto f64 = LogicalType::of(TypeId::Float64);
  const auto f32 = LogicalType::of(TypeId::Float32);
  EXPECT_EQ(hash_form(f64, "1.5"), "3ff8000000000000");
  EXPECT_EQ(hash_form(f64, "-0"), "8000000000000000");
  EXPECT_EQ(hash_form(f64, "0"), "0000000000000000");
  EXPECT_EQ(hash_form(f64, "Infinity"), "7ff0000000000000");
  EXPECT_EQ(hash_form(f64, "NaN"), "NaN");
  EXPECT_EQ(hash_form(f32, "0.1"), "3dcccccd");
  EXPECT_EQ(hash_form(LogicalType::of(TypeId::Time), "10:00:00.500000"), "10:00:00.5");
  EXPECT_EQ(hash_form(LogicalType::of(TypeId::Time), "10:00:00.000"), "10:00:00");
  EXPECT_EQ(hash_form(LogicalType::of(TypeId::Time), "10:00:00"), "10:00:00");
  EXPECT_EQ(hash_form(LogicalType::of(TypeId::Bytes), std::string("\x01\xff", 2)), "01ff");
  EXPECT_EQ(hash_form(LogicalType::decimal(10, 2), "-0.10"), "-0.10");
}

Schema two_columns() {
  Schema s;
  s.columns = {Column{"id", LogicalType::of(TypeId::Int64), false},
               Column{"s", LogicalType::of(TypeId::String), true}};
  return s;
}

RecordBatch batch_of(const std::vector<std::pair<std::string, std::optional<std::string>>>& rows) {
  RecordBatch b(2);
  for (const auto& [id, s] : rows) {
    b.append(id);
    if (s)
      b.append(*s);
    else
      b.append_null();
  }
  return b;
}

TEST(TypedHash, RowTextAndOrderIndependence) {
  Schema s = two_columns();
  TypedHasher a(s, {0, 1});
  a.add(batch_of({{"1", "x"}, {"2", std::nullopt}}));
  // row texts: id "1" -> "1:1", s "x" -> "1:x"; row 2 -> "1:2" + "N"
  EXPECT_EQ(a.rows(), 2);
  EXPECT_EQ(a.sum(), md5_prefix64("1:11:x") + md5_prefix64("1:2N"));
  TypedHasher b(s, {0, 1});
  b.add(batch_of({{"2", std::nullopt}}));
  b.add(batch_of({{"1", "x"}}));
  EXPECT_EQ(b.sum(), a.sum());
  TypedHasher c(s, {0, 1});
  c.add(batch_of({{"1", "x"}, {"2", ""}}));  // empty string is not NULL
  EXPECT_NE(c.sum(), a.sum());
}

// ---- gates over a real SQLite table ----------------------------------------------------

class SqliteRunner : public SqlGateRunner {
 public:
  SqliteRunner() {
    EXPECT_EQ(sqlite3_open(":memory:", &db_), SQLITE_OK);
    register_sqlite_gate_functions(db_);
  }
  ~SqliteRunner() override { sqlite3_close(db_); }
  void exec(const std::string& sql) {
    char* err = nullptr;
    int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
    std::string msg = err ? err : "";
    sqlite3_free(err);
    ASSERT_EQ(rc, SQLITE_OK) << msg;
  }
  std::vector<SqlRow> query(const std::string& sql) override {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) {
      std::string msg = sqlite3_errmsg(db_);
      throw Error(ErrorCode::StageFailed, msg + " in " + sql);
    }
    std::vector<SqlRow> out;
    while (sqlite3_step(st) == SQLITE_ROW) {
      SqlRow row;
      for (int i = 0; i < sqlite3_column_count(st); ++i) {
        const auto* t = reinterpret_cast<const char*>(sqlite3_column_text(st, i));
        row.emplace_back(sqlite3_column_name(st, i),
                         t ? std::optional<std::string>(t) : std::nullopt);
      }
      out.push_back(std::move(row));
    }
    sqlite3_finalize(st);
    return out;
  }

 private:
  sqlite3* db_ = nullptr;
};

SqlGateDialect test_dialect() {
  SqlGateDialect d;
  d.quote_ident = [](const std::string& c) { return "\"" + c + "\""; };
  d.quote_literal = [](const std::string& v) { return "'" + v + "'"; };
  d.row_id = "rowid";
  d.comparable = [](const std::string& c, const LogicalType& t) {
    return t.id == TypeId::Decimal ? "CAST(" + c + " AS NUMERIC)" : c;
  };
  d.literal = [](const LogicalType& t, const std::string& v) {
    return t.id == TypeId::Decimal || t.id == TypeId::Int64 ? v : "'" + v + "'";
  };
  d.hash_form = [](const std::string& c, const LogicalType&) { return "CAST(" + c + " AS TEXT)"; };
  d.byte_length = [](const std::string& e) { return "length(CAST(" + e + " AS BLOB))"; };
  d.hash_query = [](const std::string& row, const std::string& stg) {
    return "SELECT count(*), dpone_md5_sum(" + row + ") FROM " + stg;
  };
  return d;
}

class Gates : public ::testing::Test {
 protected:
  void SetUp() override {
    runner.exec(
        "CREATE TABLE stg (id INTEGER, status TEXT, amount DECIMAL_TEXT(10,2), ts TIMESTAMP);"
        "INSERT INTO stg VALUES (1, 'new', '9.50', '2001-01-01T00:00:00'), (2, 'paid', '120.00', "
        "'2001-01-02T00:00:00'), (3, NULL, '0.99', NULL), (4, 'paid', NULL, "
        "'2001-01-03T00:00:00.5');");
    target.staging = "stg";
    target.where = "test";
    target.sink_name = "sqlite";
    target.schema.columns = {Column{"id", LogicalType::of(TypeId::Int64), true},
                             Column{"status", LogicalType::of(TypeId::String), true},
                             Column{"amount", LogicalType::decimal(10, 2), true},
                             Column{"ts", LogicalType::timestamp(6, false), true}};
  }
  GateResult run(json spec, json source = nullptr) {
    GateSpec g;
    g.type = spec.value("type", "");
    g.name = spec.value("name", g.type);
    if (spec.contains("columns"))
      for (const auto& c : spec["columns"]) g.columns.push_back(c.get<std::string>());
    g.severity = spec.value("severity", "error");
    g.params = spec;
    if (!source.is_null()) g.params[kSourceKey] = source;
    auto results = run_sql_gates({g}, target, test_dialect(), runner, 5);
    EXPECT_EQ(results.size(), 1u);
    return results.at(0);
  }
  SqliteRunner runner;
  SqlGateTarget target;
};

TEST_F(Gates, NotNullCountsAndShowsRows) {
  auto r = run({{"type", "not_null"}, {"columns", {"status", "amount"}}});
  EXPECT_FALSE(r.passed);
  EXPECT_EQ(r.failing_rows, 2);
  ASSERT_EQ(r.samples.size(), 2u);
  EXPECT_EQ(r.samples[0], "row 3: status=NULL, amount=0.99");
  EXPECT_TRUE(run({{"type", "not_null"}, {"columns", {"id"}}}).passed);
}

TEST_F(Gates, UniqueIgnoresNullsAndCountsDuplicatedRows) {
  auto r = run({{"type", "unique"}, {"columns", {"status"}}});
  EXPECT_FALSE(r.passed);
  EXPECT_EQ(r.failing_rows, 2);
  ASSERT_EQ(r.samples.size(), 1u);
  EXPECT_EQ(r.samples[0], "status='paid' (2 rows)");
  EXPECT_TRUE(run({{"type", "unique"}, {"columns", {"id"}}}).passed);
}

TEST_F(Gates, AcceptedValuesLeavesNullToNotNull) {
  EXPECT_TRUE(
      run({{"type", "accepted_values"}, {"columns", {"status"}}, {"values", {"new", "paid"}}})
          .passed);
  auto r = run({{"type", "accepted_values"}, {"columns", {"status"}}, {"values", {"new"}}});
  EXPECT_FALSE(r.passed);
  EXPECT_EQ(r.failing_rows, 2);
  EXPECT_EQ(r.samples.at(0), "status='paid' (2 rows)");
  // Decimals compare as numbers: 9.5 is the staged '9.50'.
  EXPECT_TRUE(
      run({{"type", "accepted_values"}, {"columns", {"amount"}}, {"values", {9.5, "120", 0.99}}})
          .passed);
}

TEST_F(Gates, RangeComparesDecimalsAsNumbers) {
  // As text, '120.00' > '1000' and '9.50' > '10': a text comparison would fail this.
  EXPECT_TRUE(run({{"type", "range"}, {"columns", {"amount"}}, {"min", 0}, {"max", 1000}}).passed);
  auto r = run({{"type", "range"}, {"columns", {"amount"}}, {"min", 1}, {"max", 100}});
  EXPECT_FALSE(r.passed);
  EXPECT_EQ(r.failing_rows, 2);
  EXPECT_EQ(r.detail, "2 rows outside amount >= 1 and <= 100");
  EXPECT_THROW(run({{"type", "range"}, {"columns", {"amount"}}, {"min", "abc"}}), Error);
  EXPECT_TRUE(run({{"type", "range"}, {"columns", {"ts"}}, {"min", "2001-01-01"}}).passed);
}

TEST_F(Gates, MinRows) {
  EXPECT_TRUE(run({{"type", "min_rows"}, {"min", 4}}).passed);
  auto r = run({{"type", "min_rows"}, {"min", 10}});
  EXPECT_FALSE(r.passed);
  EXPECT_EQ(r.failing_rows, 6);
  EXPECT_EQ(r.detail, "staged 4 rows, at least 10 required");
}

TEST_F(Gates, RowCountToleranceAndFailClosed) {
  EXPECT_TRUE(run({{"type", "row_count"}}, {{"rows", 4}}).passed);
  EXPECT_FALSE(run({{"type", "row_count"}}, {{"rows", 5}}).passed);
  EXPECT_TRUE(run({{"type", "row_count"}, {"tolerance", 1}}, {{"rows", 5}}).passed);
  EXPECT_TRUE(
      run({{"type", "row_count"}, {"tolerance", "20%"}}, {{"rows", 5}}).passed);  // 1 <= 1.0
  EXPECT_FALSE(
      run({{"type", "row_count"}, {"tolerance", "10%"}}, {{"rows", 5}}).passed);  // 1 > 0.5
  auto closed =
      run({{"type", "row_count"}, {"tolerance", "100%"}}, {{"rows_unknown", "byte stream"}});
  EXPECT_FALSE(closed.passed);
  EXPECT_NE(closed.detail.find("fails closed"), std::string::npos) << closed.detail;
  EXPECT_NE(closed.detail.find("byte stream"), std::string::npos) << closed.detail;
  EXPECT_FALSE(run({{"type", "row_count"}}).passed);  // no source figures at all
}

TEST_F(Gates, FreshnessNeedsARecentValue) {
  auto stale = run({{"type", "freshness"}, {"columns", {"ts"}}, {"max_age", "1d"}});
  EXPECT_FALSE(stale.passed);
  EXPECT_EQ(stale.failing_rows, 3);
  EXPECT_NE(stale.detail.find("newest ts is 2001-01-03T00:00:00.5"), std::string::npos)
      << stale.detail;
  EXPECT_TRUE(run({{"type", "freshness"}, {"columns", {"ts"}}, {"max_age", "100000d"}}).passed);
  runner.exec("UPDATE stg SET ts = NULL");
  auto empty = run({{"type", "freshness"}, {"columns", {"ts"}}, {"max_age", "100000d"}});
  EXPECT_FALSE(empty.passed);  // nothing shows the data is fresh
  EXPECT_THROW(run({{"type", "freshness"}, {"columns", {"status"}}, {"max_age", "1d"}}), Error);
}

TEST_F(Gates, CustomSqlShowsItsRows) {
  EXPECT_TRUE(
      run({{"type", "custom_sql"}, {"sql", "SELECT * FROM {staging} WHERE id > 10;"}}).passed);
  auto r = run({{"type", "custom_sql"}, {"sql", "SELECT id, status FROM {staging} WHERE id >= 3"}});
  EXPECT_FALSE(r.passed);
  EXPECT_EQ(r.failing_rows, 2);
  EXPECT_EQ(r.samples, (std::vector<std::string>{"id=3, status=NULL", "id=4, status='paid'"}));
}

TEST_F(Gates, TypedHashComparesSourceAndStaged) {
  // The source side of the staged rows, as the runtime would hash them.
  Schema s = target.schema;
  TypedHasher h(s, {0, 1, 2, 3});
  RecordBatch b(4);
  for (auto row : std::vector<std::vector<std::optional<std::string>>>{
           {"1", "new", "9.50", "2001-01-01T00:00:00"},
           {"2", "paid", "120.00", "2001-01-02T00:00:00"},
           {"3", std::nullopt, "0.99", std::nullopt},
           {"4", "paid", std::nullopt, "2001-01-03T00:00:00.5"}})
    for (auto& c : row) c ? b.append(*c) : b.append_null();
  h.add(b);
  json good = {
      {"hashes", {{"typed_hash", {{"rows", h.rows()}, {"sum", fmt::format("{:016x}", h.sum())}}}}}};
  auto r = run({{"type", "typed_hash"}}, good);
  EXPECT_TRUE(r.passed) << r.detail;
  runner.exec("UPDATE stg SET amount = '9.5' WHERE id = 1");  // same number, other text
  r = run({{"type", "typed_hash"}}, good);
  EXPECT_FALSE(r.passed);
  EXPECT_NE(r.detail.find("differs"), std::string::npos) << r.detail;
  auto closed = run({{"type", "typed_hash"}}, {{"hash_unavailable", "pass-through bytes"}});
  EXPECT_FALSE(closed.passed);
  EXPECT_NE(closed.detail.find("pass-through bytes"), std::string::npos);
}

TEST_F(Gates, EveryGateRunsAndUnknownTypesAreRefused) {
  GateSpec bad{"x", "no_such_gate", {}, "error", json::object()};
  EXPECT_THROW(run_sql_gates({bad}, target, test_dialect(), runner, 5), Error);
  GateSpec missing{"y", "not_null", {"nope"}, "error", json::object()};
  EXPECT_THROW(run_sql_gates({missing}, target, test_dialect(), runner, 5), Error);
  GateSpec a{"a", "not_null", {"status"}, "warn", json::object()};
  GateSpec b{"b", "min_rows", {}, "error", json{{"min", 1}}};
  auto results = run_sql_gates({a, b}, target, test_dialect(), runner, 5);
  ASSERT_EQ(results.size(), 2u);
  EXPECT_FALSE(results[0].passed);
  EXPECT_TRUE(results[1].passed);
}

TEST(GateTapTest, CountsAndHashesWhatTheSinkPulls) {
  Schema s = two_columns();
  GateSpec g{"h", "typed_hash", {}, "error", json::object()};
  GateSpec rc{"rc", "row_count", {}, "error", json::object()};
  std::vector<GateSpec> gates{g, rc};
  GateTap tap(gates, s, "test");
  InMemoryRows mem{s, {}};
  mem.batches.push_back(batch_of({{"1", "x"}, {"2", std::nullopt}}));
  Artifact art = tap.wrap(Artifact(std::move(mem)));
  tap.annotate(gates);
  const json& src = gates[1].params[kSourceKey];
  EXPECT_EQ(src["rows"], 2);
  EXPECT_EQ(src["hashes"]["h"]["rows"], 2);
  EXPECT_EQ(src["hashes"]["h"]["sum"],
            fmt::format("{:016x}", md5_prefix64("1:11:x") + md5_prefix64("1:2N")));
  EXPECT_EQ(src["columns"][1]["type"], "string");
}

// Hands out its bytes `chunk` at a time, as a network stream would.
class ChunkedBytes : public ByteReader {
 public:
  ChunkedBytes(std::string data, size_t chunk) : data_(std::move(data)), chunk_(chunk) {}
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

int64_t counted_rows(WireFormat format, const std::string& bytes, size_t chunk) {
  Schema s = two_columns();
  std::vector<GateSpec> gates{GateSpec{"rc", "row_count", {}, "error", json::object()},
                              GateSpec{"h", "typed_hash", {}, "error", json::object()}};
  GateTap tap(gates, s, "test");
  StreamingRows rows;
  rows.format = format;
  rows.bytes = std::make_unique<ChunkedBytes>(bytes, chunk);
  Artifact art = tap.wrap(Artifact(std::move(rows)));
  auto& reader = *std::get<StreamingRows>(art).bytes;
  std::array<char, 64> buf{};
  while (reader.read(buf.data(), buf.size()) > 0) {
  }
  tap.annotate(gates);
  const json& src = gates[0].params[kSourceKey];
  EXPECT_TRUE(src.contains("hash_unavailable"));  // pass-through bytes are never hashed
  EXPECT_FALSE(src.contains("hashes"));
  return src.value("rows", int64_t{-1});
}

std::string be16(int v) {
  return {static_cast<char>((v >> 8) & 0xff), static_cast<char>(v & 0xff)};
}
std::string be32(int64_t v) {
  std::string out;
  for (int shift = 24; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((v >> shift) & 0xff));
  return out;
}

TEST(GateTapTest, CountsCopyPassThroughRows) {
  EXPECT_EQ(counted_rows(WireFormat::PgCopyText, "1\ta\n2\ttwo\\nlines\n3\t\\N\n", 3), 3);
  // Binary: header with a 2-byte extension, then 3 tuples (one with a NULL and one with a
  // length that contains 0xff bytes), then the trailer.
  std::string bin = std::string("PGCOPY\n\xff\r\n\0", 11) + be32(0) + be32(2) + "xx";
  bin += be16(2) + be32(1) + "1" + be32(3) + "abc";
  bin += be16(2) + be32(1) + "2" + be32(-1);
  bin += be16(2) + be32(1) + "3" + be32(300) + std::string(300, '\xff');
  bin += be16(-1);
  for (size_t chunk : {1u, 5u, 64u})
    EXPECT_EQ(counted_rows(WireFormat::PgCopyBinary, bin, chunk), 3) << chunk;
  EXPECT_EQ(counted_rows(WireFormat::Csv, "a,b\n1,2\n", 64),
            -1);  // not counted: row_count fails closed
}

TEST(GateTapTest, CountsParallelPartsReadConcurrently) {
  std::vector<GateSpec> gates{GateSpec{"rc", "row_count", {}, "error", json::object()}};
  GateTap tap(gates, two_columns(), "test");
  StreamingRows rows;
  rows.format = WireFormat::PgCopyText;
  std::string part;
  for (int i = 0; i < 5000; ++i) part += std::to_string(i) + "\tx\n";
  for (int p = 0; p < 4; ++p) rows.parts.push_back(std::make_unique<ChunkedBytes>(part, 7));
  Artifact art = tap.wrap(Artifact(std::move(rows)));
  std::vector<std::thread> readers;
  for (auto& reader : std::get<StreamingRows>(art).parts)
    readers.emplace_back([&reader] {
      std::array<char, 100> buf{};
      while (reader->read(buf.data(), buf.size()) > 0) {
      }
    });
  for (auto& t : readers) t.join();
  tap.annotate(gates);
  EXPECT_EQ(gates[0].params[kSourceKey]["rows"], 20000);
}

}  // namespace
}  // namespace dpone
