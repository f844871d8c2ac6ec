#include "core/codecs/values.hpp"

#include <gtest/gtest.h>

namespace dpone {
namespace {

LogicalType T(std::string_view spelling) {
  auto t = LogicalType::parse(spelling);
  if (!t) throw std::invalid_argument(std::string(spelling));
  return *t;
}

// Canonical form of `text`, or "ERR:<code>:<reason>".
std::string canon(std::string_view type, std::string_view text) {
  std::string out = "garbage that must be overwritten";
  auto err = canonicalize(T(type), text, out);
  if (err) return "ERR:" + std::string(error_code_name(err->code)) + ":" + err->reason;
  return out;
}

bool mismatch(std::string_view type, std::string_view text) {
  return canon(type, text).rfind("ERR:TYPE_MISMATCH:", 0) == 0;
}
bool overflow(std::string_view type, std::string_view text) {
  return canon(type, text).rfind("ERR:TYPE_OVERFLOW:", 0) == 0;
}

TEST(Values, Bool) {
  for (auto t : {"true", "TRUE", "t", "T", "yes", "Yes", "y", "1", " true "})
    EXPECT_EQ(canon("bool", t), "true") << t;
  for (auto f : {"false", "False", "f", "no", "NO", "n", "N", "0"})
    EXPECT_EQ(canon("bool", f), "false") << f;
  for (auto bad : {"", "2", "tru", "yess", "on", "off", "-1"})
    EXPECT_TRUE(mismatch("bool", bad)) << bad;
}

TEST(Values, Integers) {
  EXPECT_EQ(canon("int64", "42"), "42");
  EXPECT_EQ(canon("int64", "+42"), "42");
  EXPECT_EQ(canon("int64", "-0"), "0");
  EXPECT_EQ(canon("int64", "007"), "7");
  EXPECT_EQ(canon("int64", " 12 "), "12");
  EXPECT_EQ(canon("int16", "-32768"), "-32768");
  EXPECT_EQ(canon("int16", "32767"), "32767");
  EXPECT_EQ(canon("int32", "2147483647"), "2147483647");
  EXPECT_EQ(canon("int64", "-9223372036854775808"), "-9223372036854775808");
  for (auto bad : {"", "+", "-", "1.0", "1e3", "12a", "a12", "+-1", "--1", "1 2", "0x10"})
    EXPECT_TRUE(mismatch("int64", bad)) << bad;
}

TEST(Values, IntegerOverflowNamesValueAndType) {
  EXPECT_EQ(canon("int16", "70000"), "ERR:TYPE_OVERFLOW:value 70000 does not fit int16");
  EXPECT_TRUE(overflow("int16", "-32769"));
  EXPECT_TRUE(overflow("int32", "2147483648"));
  EXPECT_TRUE(overflow("int64", "9223372036854775808"));
  EXPECT_TRUE(overflow("int64", "-99999999999999999999999"));
  // Junk after an overlong number is a mismatch, not an overflow.
  EXPECT_TRUE(mismatch("int64", "99999999999999999999999x"));
}

TEST(Values, Floats) {
  EXPECT_EQ(canon("float64", "1.5"), "1.5");
  EXPECT_EQ(canon("float64", "+1.50"), "1.5");
  EXPECT_EQ(canon("float64", "1e3"), "1000");
  EXPECT_EQ(canon("float64", "-2.5E-3"), "-0.0025");
  EXPECT_EQ(canon("float64", "0.1"), "0.1");
  EXPECT_EQ(canon("float64", ".5"), "0.5");
  EXPECT_EQ(canon("float64", "1e300"), "1e+300");
  EXPECT_EQ(canon("float32", "0.1"), "0.1");
  EXPECT_EQ(canon("float32", "16777217"), "16777216");  // nearest float, the type's precision
  for (auto nan : {"NaN", "nan", "NAN"}) EXPECT_EQ(canon("float64", nan), "NaN");
  for (auto inf : {"Infinity", "inf", "INF", "+inf", "infinity"})
    EXPECT_EQ(canon("float64", inf), "Infinity");
  for (auto inf : {"-Infinity", "-inf"}) EXPECT_EQ(canon("float32", inf), "-Infinity");
  EXPECT_TRUE(overflow("float64", "1e400"));
  EXPECT_TRUE(overflow("float32", "1e39"));
  for (auto bad : {"", "abc", "1.2.3", "1e", "+-1", "0x1p3", "1,5", "12 34"})
    EXPECT_TRUE(mismatch("float64", bad)) << bad;
}

TEST(Values, DecimalKeepsScaleExactly) {
  EXPECT_EQ(canon("decimal(12,2)", "12.5"), "12.50");
  EXPECT_EQ(canon("decimal(12,2)", "12"), "12.00");
  EXPECT_EQ(canon("decimal(12,2)", "-0.1"), "-0.10");
  EXPECT_EQ(canon("decimal(12,2)", "+.5"), "0.50");
  EXPECT_EQ(canon("decimal(12,2)", "5."), "5.00");
  EXPECT_EQ(canon("decimal(12,2)", "000123.4500"), "123.45");
  EXPECT_EQ(canon("decimal(12,2)", "-0.00"), "0.00");
  EXPECT_EQ(canon("decimal(12,2)", "1.5e2"), "150.00");
  EXPECT_EQ(canon("decimal(12,2)", "1234E-2"), "12.34");
  EXPECT_EQ(canon("decimal(10,0)", "7"), "7");
  EXPECT_EQ(canon("decimal(10,0)", "7.000"), "7");
  EXPECT_EQ(canon("decimal(2,2)", "0.99"), "0.99");
  EXPECT_EQ(canon("decimal(38,9)", "0"), "0.000000000");
}

TEST(Values, DecimalNeverRounds) {
  EXPECT_TRUE(overflow("decimal(12,2)", "12.345"));
  EXPECT_EQ(canon("decimal(12,2)", "12.340"), "12.34");  // trailing zeros are not digits lost
  EXPECT_TRUE(overflow("decimal(10,0)", "1.5"));
  EXPECT_TRUE(overflow("decimal(12,2)", "1e-3"));
  std::string r = canon("decimal(12,2)", "12.345");
  EXPECT_NE(r.find("decimal(12,2)"), std::string::npos) << r;
  EXPECT_NE(r.find("more than 2"), std::string::npos) << r;
}

TEST(Values, DecimalIntegerDigits) {
  EXPECT_EQ(canon("decimal(5,2)", "999.99"), "999.99");
  EXPECT_TRUE(overflow("decimal(5,2)", "1000"));
  EXPECT_TRUE(overflow("decimal(5,2)", "-1000.00"));
  EXPECT_TRUE(overflow("decimal(2,2)", "1.5"));
  EXPECT_TRUE(overflow("decimal(5,2)", "1e3"));
  EXPECT_TRUE(overflow("decimal(5,2)", "1e999999999999"));
  EXPECT_EQ(canon("decimal(5,2)", "0e999999999999"), "0.00");
  std::string r = canon("decimal(5,2)", "1000");
  EXPECT_NE(r.find("at most 3 integer digits"), std::string::npos) << r;
  for (auto bad : {"", ".", "-", "1.2.3", "abc", "1e", "NaN", "inf", "1,000.00", "1 000"})
    EXPECT_TRUE(mismatch("decimal(12,2)", bad)) << bad;
}

TEST(Values, StringAndVarchar) {
  EXPECT_EQ(canon("string", "  keep blanks  "), "  keep blanks  ");
  EXPECT_EQ(canon("string", ""), "");
  EXPECT_EQ(canon("varchar(3)", "abc"), "abc");
  EXPECT_EQ(canon("varchar(3)", "été"), "été");  // 3 code points, 5 bytes
  EXPECT_EQ(canon("varchar(2)", "日本"), "日本");
  EXPECT_TRUE(overflow("varchar(2)", "日本語"));
  EXPECT_TRUE(overflow("varchar(3)", "abcd"));
  std::string r = canon("varchar(3)", "abcd");
  EXPECT_NE(r.find("4 characters"), std::string::npos) << r;
  EXPECT_NE(r.find("varchar(3)"), std::string::npos) << r;
}

TEST(Values, StringMustBeUtf8) {
  EXPECT_TRUE(mismatch("string", "caf\xE9"));                   // Latin-1 é
  EXPECT_TRUE(mismatch("string", "\xC0\xAF"));                  // overlong '/'
  EXPECT_TRUE(mismatch("string", "\xED\xA0\x80"));              // surrogate
  EXPECT_TRUE(mismatch("string", "\xF4\x90\x80\x80"));          // above U+10FFFF
  EXPECT_TRUE(mismatch("string", "abcdefghijklmnop\xE2\x82"));  // truncated after the fast path
  EXPECT_EQ(canon("string", "\xF0\x9F\x98\x80"), "\xF0\x9F\x98\x80");
  std::string r = canon("string", "caf\xE9");
  EXPECT_NE(r.find("0xe9 at offset 3"), std::string::npos) << r;
  // bytes keep anything.
  EXPECT_EQ(canon("bytes", std::string_view("\x00\xff", 2)), std::string("\x00\xff", 2));
}

TEST(Values, Dates) {
  EXPECT_EQ(canon("date", "2024-02-29"), "2024-02-29");  // leap year
  EXPECT_EQ(canon("date", "2000-02-29"), "2000-02-29");  // divisible by 400
  EXPECT_EQ(canon("date", " 1999-12-31 "), "1999-12-31");
  EXPECT_TRUE(mismatch("date", "2023-02-29"));  // not a leap year
  EXPECT_TRUE(mismatch("date", "1900-02-29"));  // divisible by 100
  EXPECT_TRUE(mismatch("date", "2024-04-31"));
  EXPECT_TRUE(mismatch("date", "2024-13-01"));
  EXPECT_TRUE(mismatch("date", "2024-00-10"));
  EXPECT_TRUE(mismatch("date", "0000-01-01"));
  for (auto bad : {"", "2024-1-5", "2024/01/05", "20240105", "2024-01-05T00:00", "05-01-2024"})
    EXPECT_TRUE(mismatch("date", bad)) << bad;
  EXPECT_NE(canon("date", "2023-02-29").find("no such day"), std::string::npos);
}

TEST(Values, Times) {
  EXPECT_EQ(canon("time", "08:30"), "08:30:00");
  EXPECT_EQ(canon("time", "08:30:15"), "08:30:15");
  EXPECT_EQ(canon("time", "08:30:15.500"), "08:30:15.5");
  EXPECT_EQ(canon("time", "23:59:59.000000"), "23:59:59");
  EXPECT_EQ(canon("time", "00:00:00.123456"), "00:00:00.123456");
  EXPECT_TRUE(overflow("time", "00:00:00.1234567"));
  EXPECT_EQ(canon("time", "00:00:00.1234560"), "00:00:00.123456");
  for (auto bad : {"24:00:00", "12:60", "12:00:60", "8:30", "12", "12:00:00+02", "noon"})
    EXPECT_TRUE(mismatch("time", bad)) << bad;
}

TEST(Values, Timestamps) {
  EXPECT_EQ(canon("timestamp", "2024-03-01T10:20:30"), "2024-03-01T10:20:30");
  EXPECT_EQ(canon("timestamp", "2024-03-01 10:20:30"), "2024-03-01T10:20:30");
  EXPECT_EQ(canon("timestamp", "2024-03-01 10:20"), "2024-03-01T10:20:00");
  EXPECT_EQ(canon("timestamp", "2024-03-01"), "2024-03-01T00:00:00");
  EXPECT_EQ(canon("timestamp", "2024-03-01T10:20:30.5"), "2024-03-01T10:20:30.5");
  EXPECT_EQ(canon("timestamp", "2024-03-01T10:20:30.120000"), "2024-03-01T10:20:30.12");
  EXPECT_EQ(canon("timestamp", "2024-03-01T10:20:30.000"), "2024-03-01T10:20:30");
  EXPECT_EQ(canon("timestamp(9)", "2024-03-01T10:20:30.123456789"),
            "2024-03-01T10:20:30.123456789");
  EXPECT_EQ(canon("timestamp(3)", "2024-03-01T10:20:30.123000"), "2024-03-01T10:20:30.123");
  EXPECT_TRUE(overflow("timestamp(3)", "2024-03-01T10:20:30.1234"));
  EXPECT_TRUE(overflow("timestamp", "2024-03-01T10:20:30.1234567"));
  EXPECT_TRUE(overflow("timestamp(0)", "2024-03-01T10:20:30.5"));
  EXPECT_TRUE(mismatch("timestamp", "2024-02-30T00:00:00"));
  EXPECT_TRUE(mismatch("timestamp", "2024-03-01T25:00:00"));
  EXPECT_TRUE(mismatch("timestamp", "2024-03-01X10:00:00"));
  EXPECT_TRUE(mismatch("timestamp", "2024-03-01T10:00:00 UTC"));
}

TEST(Values, PlainTimestampRefusesOffsetAndSuggestsTimestamptz) {
  std::string r = canon("timestamp", "2024-03-01T10:20:30+02:00");
  EXPECT_EQ(r.rfind("ERR:TYPE_MISMATCH:", 0), 0u) << r;
  EXPECT_NE(r.find("timestamptz"), std::string::npos) << r;
  EXPECT_TRUE(mismatch("timestamp", "2024-03-01T10:20:30Z"));
}

TEST(Values, TimestamptzConvertsToUtc) {
  EXPECT_EQ(canon("timestamptz", "2024-03-01T10:20:30Z"), "2024-03-01T10:20:30Z");
  EXPECT_EQ(canon("timestamptz", "2024-03-01T10:20:30"), "2024-03-01T10:20:30Z");  // no offset: UTC
  EXPECT_EQ(canon("timestamptz", "2024-03-01T10:20:30+02:00"), "2024-03-01T08:20:30Z");
  EXPECT_EQ(canon("timestamptz", "2024-03-01T10:20:30+0200"), "2024-03-01T08:20:30Z");
  EXPECT_EQ(canon("timestamptz", "2024-03-01T10:20:30+02"), "2024-03-01T08:20:30Z");
  EXPECT_EQ(canon("timestamptz", "2024-03-01 10:20:30 -05:30"), "2024-03-01T15:50:30Z");
  EXPECT_EQ(canon("timestamptz", "2024-03-01T10:20+01"), "2024-03-01T09:20:00Z");
  // Crossing a day, a month (leap February) and a year.
  EXPECT_EQ(canon("timestamptz", "2024-03-01T01:00:00+02:00"), "2024-02-29T23:00:00Z");
  EXPECT_EQ(canon("timestamptz", "2023-03-01T01:00:00+02:00"), "2023-02-28T23:00:00Z");
  EXPECT_EQ(canon("timestamptz", "2023-12-31T22:30:00.25-03:00"), "2024-01-01T01:30:00.25Z");
  EXPECT_EQ(canon("timestamptz", "1970-01-01T00:00:00+00:30"), "1969-12-31T23:30:00Z");
  EXPECT_TRUE(overflow("timestamptz", "9999-12-31T23:00:00-02:00"));
  EXPECT_TRUE(overflow("timestamptz", "0001-01-01T00:30:00+01:00"));
  for (auto bad : {"2024-03-01T10:20:30+2", "2024-03-01T10:20:30+02:0", "2024-03-01T10:20:30+25:00",
                   "2024-03-01T10:20:30 +", "2024-03-01T10:20:30 PST"})
    EXPECT_TRUE(mismatch("timestamptz", bad)) << bad;
}

TEST(Values, Json) {
  EXPECT_EQ(canon("json", R"({"a": [1, 2]})"), R"({"a": [1, 2]})");
  EXPECT_EQ(canon("json", "42"), "42");
  EXPECT_EQ(canon("json", "\"s\""), "\"s\"");
  EXPECT_TRUE(mismatch("json", "{a: 1}"));
  EXPECT_TRUE(mismatch("json", ""));
  EXPECT_TRUE(mismatch("json", "[1,"));
  EXPECT_NE(canon("json", "{a: 1}").find("not valid JSON"), std::string::npos);
}

TEST(Values, Uuid) {
  EXPECT_EQ(canon("uuid", "123E4567-E89B-12D3-A456-426614174000"),
            "123e4567-e89b-12d3-a456-426614174000");
  EXPECT_EQ(canon("uuid", "123e4567e89b12d3a456426614174000"),
            "123e4567-e89b-12d3-a456-426614174000");
  EXPECT_EQ(canon("uuid", "{123e4567-e89b-12d3-a456-426614174000}"),
            "123e4567-e89b-12d3-a456-426614174000");
  for (auto bad :
       {"", "123e4567-e89b-12d3-a456-42661417400", "123e4567-e89b-12d3-a456-42661417400g",
        "123e4567+e89b-12d3-a456-426614174000", "123e4567e89b12d3a45642661417400"})
    EXPECT_TRUE(mismatch("uuid", bad)) << bad;
}

TEST(Values, MismatchMessageQuotesValueAndType) {
  EXPECT_EQ(canon("decimal(12,2)", "abc"), "ERR:TYPE_MISMATCH:'abc' is not a valid decimal(12,2)");
  EXPECT_EQ(canon("int64", "x"), "ERR:TYPE_MISMATCH:'x' is not a valid int64");
  // Long or binary values are shortened and escaped in messages.
  std::string longv(500, 'z');
  std::string r = canon("int64", longv);
  EXPECT_LT(r.size(), 200u);
  EXPECT_NE(r.find("..."), std::string::npos);
  EXPECT_EQ(quote_value("a\nb\x01"), "'a\\nb\\x01'");
}

TEST(Values, IsValidValueMatchesCanonicalize) {
  std::string out;
  EXPECT_TRUE(is_valid_value(T("int64"), "12", out));
  EXPECT_EQ(out, "12");
  EXPECT_FALSE(is_valid_value(T("int64"), "1.2", out));
  EXPECT_FALSE(is_valid_value(T("int16"), "99999", out));
}

}  // namespace
}  // namespace dpone
