#include "core/codecs/jsonl.hpp"

#include <sstream>

#include <gtest/gtest.h>

#include "core/errors.hpp"
#include "test_util.hpp"

namespace dpone {
namespace {

using json = nlohmann::json;
using testing::TempDir;

template <typename F>
void expect_error(F&& f, ErrorCode code, const std::string& needle) {
  try {
    f();
    FAIL() << "expected an error containing: " << needle;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

std::vector<std::pair<int64_t, json>> read_all(const std::filesystem::path& p,
                                               size_t buffer = 1 << 20) {
  JsonlReader r(p, buffer);
  std::vector<std::pair<int64_t, json>> out;
  json obj;
  while (r.next(obj)) out.emplace_back(r.line(), obj);
  return out;
}

TEST(JsonlReader, ObjectsBlankLinesCrlfAndBom) {
  TempDir dir;
  auto p =
      dir.write("a.jsonl", "\xEF\xBB\xBF{\"a\":1}\r\n\n  \n{\"a\":2,\"b\":\"x\"}\r\n{\"a\":3}");
  auto rows = read_all(p);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].first, 1);
  EXPECT_EQ(rows[0].second, json({{"a", 1}}));
  EXPECT_EQ(rows[1].first, 4);
  EXPECT_EQ(rows[1].second["b"], "x");
  EXPECT_EQ(rows[2].first, 5);
}

TEST(JsonlReader, SmallBufferSameResult) {
  TempDir dir;
  std::string content;
  for (int i = 0; i < 200; ++i)
    content += json({{"i", i}, {"s", std::string(static_cast<size_t>(i), 'x')}}).dump() + "\n";
  auto p = dir.write("a.jsonl", content);
  auto big = read_all(p);
  auto small = read_all(p, 16);
  ASSERT_EQ(big.size(), 200u);
  EXPECT_EQ(big, small);
  EXPECT_EQ(small[150].second["s"].get<std::string>().size(), 150u);
}

TEST(JsonlReader, KeyOrderOfTheFile) {
  TempDir dir;
  auto p = dir.write("a.jsonl", "{\"z\": 1, \"a\": {\"q\": 2}, \"m\": [{\"x\": 1}]}\n{\"b\": 1}\n");
  JsonlReader r(p);
  json obj;
  ASSERT_TRUE(r.next(obj));
  EXPECT_TRUE(r.key_order().empty());  // off by default
  JsonlReader tracked(p);
  tracked.track_key_order(true);
  ASSERT_TRUE(tracked.next(obj));
  EXPECT_EQ(tracked.key_order(), (std::vector<std::string>{"z", "a", "m"}));
  ASSERT_TRUE(tracked.next(obj));
  EXPECT_EQ(tracked.key_order(), (std::vector<std::string>{"b"}));
}

TEST(JsonlReader, BadJsonNamesFileAndLine) {
  TempDir dir;
  auto p = dir.write("bad.jsonl", "{\"a\":1}\n\n{\"a\":\n");
  expect_error([&] { read_all(p); }, ErrorCode::InputMalformed, "bad.jsonl:3: invalid JSON");
}

TEST(JsonlReader, NonObjectLine) {
  TempDir dir;
  auto p = dir.write("bad.jsonl", "{\"a\":1}\n[1,2]\n");
  expect_error([&] { read_all(p); }, ErrorCode::InputMalformed,
               "bad.jsonl:2: the line holds an array");
}

// An ill-formed UTF-8 byte is bad input (INPUT_MALFORMED at file:line), with or without
// key-order tracking (the two parse paths).
TEST(JsonlReader, InvalidUtf8NamesFileAndLine) {
  TempDir dir;
  auto p = dir.write("bad.jsonl", "{\"a\":1}\n{\"a\":\"\xff\"}\n");
  for (bool track : {false, true}) {
    expect_error(
        [&] {
          JsonlReader r(p);
          r.track_key_order(track);
          json obj;
          while (r.next(obj)) {
          }
        },
        ErrorCode::InputMalformed, "bad.jsonl:2: invalid JSON");
  }
}

TEST(JsonlReader, MissingFile) {
  TempDir dir;
  expect_error([&] { JsonlReader r(dir.path() / "nope.jsonl"); }, ErrorCode::SourceReadFailed,
               "nope.jsonl");
}

std::string cell(std::string_view type, const json& v) {
  std::string out;
  bool is_null = false;
  auto err = json_to_cell(*LogicalType::parse(type), v, out, is_null);
  if (err) return "ERR:" + std::string(error_code_name(err->code)) + ":" + err->reason;
  return is_null ? "<NULL>" : out;
}

TEST(JsonToCell, Conversions) {
  EXPECT_EQ(cell("int64", nullptr), "<NULL>");
  EXPECT_EQ(cell("string", nullptr), "<NULL>");
  EXPECT_EQ(cell("int64", 42), "42");
  EXPECT_EQ(cell("int64", -42), "-42");
  EXPECT_EQ(cell("int64", 12.0), "12");
  EXPECT_EQ(cell("int64", "42"), "42");
  EXPECT_EQ(cell("float64", 0.1), "0.1");
  EXPECT_EQ(cell("float64", 3), "3");
  EXPECT_EQ(cell("decimal(10,2)", 12.5), "12.50");
  EXPECT_EQ(cell("decimal(10,2)", "12.5"), "12.50");
  EXPECT_EQ(cell("decimal(30,2)", 1e20), "100000000000000000000.00");
  EXPECT_EQ(cell("bool", true), "true");
  EXPECT_EQ(cell("bool", "no"), "false");
  EXPECT_EQ(cell("string", 5), "5");
  EXPECT_EQ(cell("string", true), "true");
  EXPECT_EQ(cell("string", "héllo"), "héllo");
  EXPECT_EQ(cell("string", json::parse(R"({"b":[1,2],"a":null})")), R"({"a":null,"b":[1,2]})");
  EXPECT_EQ(cell("json", json::parse(R"({"a": [1, 2]})")), R"({"a":[1,2]})");
  EXPECT_EQ(cell("json", "text"), R"("text")");
  EXPECT_EQ(cell("json", 5), "5");
  EXPECT_EQ(cell("timestamptz", "2024-01-01T01:00:00+01:00"), "2024-01-01T00:00:00Z");
  EXPECT_EQ(cell("string", 18446744073709551615ULL), "18446744073709551615");
  EXPECT_EQ(cell("int64", 18446744073709551615ULL).rfind("ERR:TYPE_OVERFLOW", 0), 0u);
}

TEST(JsonToCell, Errors) {
  EXPECT_EQ(cell("int64", json::array({1})), "ERR:TYPE_MISMATCH:a JSON array is not a valid int64");
  EXPECT_EQ(cell("date", json::object()), "ERR:TYPE_MISMATCH:a JSON object is not a valid date");
  EXPECT_EQ(cell("int16", 70000), "ERR:TYPE_OVERFLOW:value 70000 does not fit int16");
  EXPECT_EQ(cell("int64", 1.5), "ERR:TYPE_MISMATCH:'1.5' is not a valid int64");
  EXPECT_EQ(cell("int64", true), "ERR:TYPE_MISMATCH:'true' is not a valid int64");
  EXPECT_EQ(cell("decimal(10,2)", 0.125).rfind("ERR:TYPE_OVERFLOW", 0), 0u);
  EXPECT_EQ(cell("varchar(3)", json::array({1, 2})).rfind("ERR:TYPE_OVERFLOW", 0), 0u);
}

Schema schema(std::vector<std::pair<std::string, std::string>> cols) {
  Schema s;
  for (auto& [n, t] : cols) s.columns.push_back({n, *LogicalType::parse(t), true});
  return s;
}

TEST(JsonlWriter, TypedOutput) {
  Schema s = schema({{"i", "int64"},
                     {"f", "float64"},
                     {"d", "decimal(10,2)"},
                     {"b", "bool"},
                     {"j", "json"},
                     {"s", "string"},
                     {"t", "timestamptz"},
                     {"y", "bytes"}});
  RecordBatch batch(8);
  for (auto v : {"1", "1.5", "12.50", "true", R"({"k":[1]})", "he said \"hi\"\n\ttab\x01",
                 "2024-01-01T00:00:00Z", "\x01\x02\xff"})
    batch.append(v);
  for (auto v : {"-7", "NaN", "-0.10", "false", "null", "", "2024-01-01T00:00:00Z", "ab"})
    batch.append(v);
  for (int i = 0; i < 8; ++i) batch.append_null();
  batch.append("3");
  batch.append("-Infinity");
  for (int i = 0; i < 6; ++i) batch.append_null();
  std::ostringstream out;
  JsonlWriter w(out, s);
  w.write(batch);
  std::istringstream in(out.str());
  std::string line;
  std::vector<json> rows;
  while (std::getline(in, line)) rows.push_back(json::parse(line));
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[0]["i"], 1);
  EXPECT_EQ(rows[0]["f"], 1.5);
  EXPECT_TRUE(rows[0]["d"].is_number());
  EXPECT_EQ(rows[0]["b"], true);
  EXPECT_EQ(rows[0]["j"], json::parse(R"({"k":[1]})"));
  EXPECT_EQ(rows[0]["s"], "he said \"hi\"\n\ttab\x01");
  EXPECT_EQ(rows[0]["t"], "2024-01-01T00:00:00Z");
  EXPECT_EQ(rows[0]["y"], "AQL/");  // base64 of 01 02 ff
  EXPECT_EQ(rows[1]["f"], "NaN");
  EXPECT_EQ(rows[1]["b"], false);
  EXPECT_TRUE(rows[1]["j"].is_null());  // the JSON value null, not a NULL cell
  EXPECT_EQ(rows[1]["s"], "");
  EXPECT_EQ(rows[1]["y"], "YWI=");
  for (auto& [k, v] : rows[2].items()) EXPECT_TRUE(v.is_null()) << k;
  EXPECT_EQ(rows[3]["f"], "-Infinity");
  // Key order follows the schema.
  EXPECT_EQ(out.str().substr(0, 14), R"({"i":1,"f":1.5)");
  // Decimal text is written verbatim, keeping its scale.
  EXPECT_NE(out.str().find(R"("d":12.50)"), std::string::npos);
  EXPECT_NE(out.str().find(R"("d":-0.10)"), std::string::npos);
}

}  // namespace
}  // namespace dpone
