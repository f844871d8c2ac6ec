#include "core/codecs/inference.hpp"

#include <gtest/gtest.h>

#include "core/codecs/values.hpp"

namespace dpone {
namespace {

using json = nlohmann::json;

// Type inferred for one column from text cells ("<NULL>" = NULL).
std::string infer(std::vector<std::string> cells) {
  TypeInferrer inf({"c"});
  for (const auto& c : cells) inf.observe(0, c, c == "<NULL>");
  Schema s = inf.result();
  EXPECT_TRUE(s.columns.at(0).nullable);
  // The contract: every observed value is accepted by the inferred type.
  std::string out;
  for (const auto& c : cells)
    if (c != "<NULL>") {
      EXPECT_FALSE(canonicalize(s.columns[0].type, c, out).has_value())
          << c << " as " << s.columns[0].type.to_string();
    }
  return s.columns[0].type.to_string();
}

std::string infer_json(std::vector<json> values) {
  TypeInferrer inf({"c"});
  for (const auto& v : values) inf.observe_json(0, v);
  return inf.result().columns.at(0).type.to_string();
}

TEST(Inference, TextLattice) {
  EXPECT_EQ(infer({"true", "FALSE", "<NULL>"}), "bool");
  EXPECT_EQ(infer({"1", "-2", "30"}), "int64");
  EXPECT_EQ(infer({"1", "0"}), "int64");  // 1/0 are ints, not bools
  EXPECT_EQ(infer({"1", "2.5"}), "float64");
  EXPECT_EQ(infer({"0.5", "NaN", "-inf", "-0.25"}), "float64");
  EXPECT_EQ(infer({"true", "1"}), "string");
  EXPECT_EQ(infer({"2024-01-01", "2024-02-29"}), "date");
  EXPECT_EQ(infer({"2024-01-01 10:00:00", "2024-01-01T11:00"}), "timestamp");
  EXPECT_EQ(infer({"2024-01-01", "2024-01-01T11:00"}), "timestamp");
  EXPECT_EQ(infer({"2024-01-01T10:00:00Z", "2024-01-01 10:00:00+02:00"}), "timestamptz");
  EXPECT_EQ(infer({"2024-01-01", "2024-01-01T10:00:00Z"}), "timestamptz");
  EXPECT_EQ(infer({"2024-01-01T10:00:00", "2024-01-01T10:00:00Z"}), "string");
  EXPECT_EQ(infer({"2023-02-29"}), "string");  // not a date
  EXPECT_EQ(infer({"1", "abc"}), "string");
  EXPECT_EQ(infer({"1", ""}), "string");                 // quoted empty string is a value
  EXPECT_EQ(infer({"99999999999999999999"}), "string");  // float64 would lose digits
  EXPECT_EQ(infer({"<NULL>", "<NULL>"}), "string");
  EXPECT_EQ(infer({}), "string");
}

// Issue 15, defect 1: a value whose text a number would not give back stays text, so no
// value changes silently (00501 is a zip code, not 501).
TEST(Inference, TextThatANumberWouldChangeStaysText) {
  EXPECT_EQ(infer({"35004", "00501"}), "string");  // leading zero
  EXPECT_EQ(infer({"1", "+3"}), "string");         // plus sign
  EXPECT_EQ(infer({"1", "-0"}), "string");         // negative zero
  EXPECT_EQ(infer({"1.5", "007.5"}), "string");    // leading zero before the point
  EXPECT_EQ(infer({"1e3", "2.5"}), "string");      // exponent notation
  EXPECT_EQ(infer({"2.5", "-0.0"}), "string");
  EXPECT_EQ(infer({"0", "10", "0.5"}), "float64");  // a single 0 is a number
  EXPECT_EQ(infer({"0", "-7", "120"}), "int64");
}

TEST(Inference, TimestampPrecision) {
  EXPECT_EQ(infer({"2024-01-01T10:00:00.123456"}), "timestamp");
  EXPECT_EQ(infer({"2024-01-01T10:00:00.1234567"}), "timestamp(9)");
  EXPECT_EQ(infer({"2024-01-01T10:00:00.123456789Z"}), "timestamptz(9)");
  EXPECT_EQ(infer({"2024-01-01T10:00:00.123000000"}), "timestamp");
}

TEST(Inference, JsonKinds) {
  EXPECT_EQ(infer_json({1, 2, nullptr}), "int64");
  EXPECT_EQ(infer_json({1, 2.5}), "float64");
  EXPECT_EQ(infer_json({true, false}), "bool");
  EXPECT_EQ(infer_json({"123", "456"}), "string");  // quoted numbers stay strings
  EXPECT_EQ(infer_json({"true"}), "string");
  EXPECT_EQ(infer_json({"2024-01-01"}), "date");
  EXPECT_EQ(infer_json({"2024-01-01T10:00:00"}), "timestamp");
  EXPECT_EQ(infer_json({"2024-01-01T10:00:00+01:00"}), "timestamptz");
  EXPECT_EQ(infer_json({json::object({{"a", 1}}), json::array({1})}), "json");
  EXPECT_EQ(infer_json({json::object(), 1}), "string");
  EXPECT_EQ(infer_json({1, "x"}), "string");
  EXPECT_EQ(infer_json({true, 1}), "string");
  EXPECT_EQ(infer_json({18446744073709551615ULL}), "string");
  EXPECT_EQ(infer_json({nullptr}), "string");
}

TEST(Inference, ColumnsAddedLaterKeepOrder) {
  TypeInferrer inf({"a", "b"});
  inf.observe(0, "1", false);
  inf.observe(1, "x", false);
  inf.add_column("c");
  EXPECT_EQ(inf.find("c"), 2);
  EXPECT_EQ(inf.find("zz"), -1);
  inf.observe(2, "2024-05-05", false);
  Schema s = inf.result();
  ASSERT_EQ(s.names(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(s.columns[0].type, LogicalType::of(TypeId::Int64));
  EXPECT_EQ(s.columns[1].type, LogicalType::of(TypeId::String));
  EXPECT_EQ(s.columns[2].type, LogicalType::of(TypeId::Date));
  EXPECT_TRUE(s.primary_key.empty());
}

}  // namespace
}  // namespace dpone
