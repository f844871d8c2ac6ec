// Tests of the PostgreSQL COPY -> TabSeparated transcoders (ch_pg_copy.hpp):
// - hand-built binary streams of every wire type, fed in every split (every offset of a
//   small stream, byte by byte, three pieces), against the text path's bytes for the
//   same rows;
// - the renderer of each type against PostgreSQL's text output (known strings);
// - differential against a real PostgreSQL (DPONE_TEST_PG_DSN, through psql): the same
//   query's COPY text and COPY binary, with edge and random values of every type the
//   source can send in binary, must transcode to identical bytes.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "connectors/clickhouse/ch_pg_copy.hpp"
#include "core/errors.hpp"

using dpone::Error;
using dpone::ErrorCode;
using dpone::ch::CopyTextTranscoder;
using dpone::ch::Encode;
using dpone::ch::PgBinaryTranscoder;
using dpone::ch::PgWire;

namespace {

// --- building binary COPY streams -------------------------------------------------------

void put(std::string& s, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
std::string be(uint64_t v, int bytes) {
  std::string s;
  put(s, v, bytes);
  return s;
}

using Field = std::optional<std::string>;  // binary value, nullopt = NULL

std::string binary_stream(const std::vector<std::vector<Field>>& rows, std::string ext = "") {
  std::string s("PGCOPY\n\377\r\n\0", 11);
  put(s, 0, 4);
  put(s, ext.size(), 4);
  s += ext;
  for (const auto& row : rows) {
    put(s, row.size(), 2);
    for (const auto& f : row) {
      if (!f) {
        put(s, 0xffffffffu, 4);
      } else {
        put(s, f->size(), 4);
        s += *f;
      }
    }
  }
  put(s, 0xffff, 2);
  return s;
}

std::string text_path(const std::string& copy_text, const std::vector<Encode>& encodes) {
  CopyTextTranscoder t(encodes);
  std::string out;
  t.feed(copy_text, out);
  t.finish(out);
  return out;
}

std::string binary_path(const std::string& stream, const std::vector<std::string>& types,
                        const std::vector<Encode>& encodes, const std::vector<size_t>& cuts,
                        int64_t* rows = nullptr) {
  PgBinaryTranscoder t(types, encodes, {});
  std::string out;
  size_t at = 0;
  for (size_t cut : cuts) {
    t.feed(std::string_view(stream).substr(at, cut - at), out);
    at = cut;
  }
  t.feed(std::string_view(stream).substr(at), out);
  t.finish(out);
  if (rows) *rows = t.rows();
  return out;
}

std::string render(PgWire w, const std::string& bytes) {
  std::string out;
  dpone::ch::append_pg_text(out, w, bytes);
  return out;
}

std::string f8(double d) {
  uint64_t b;
  std::memcpy(&b, &d, 8);
  return be(b, 8);
}
std::string f4(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return be(b, 4);
}
// numeric_send bytes.
std::string numeric(int weight, uint16_t sign, int dscale, std::vector<int> digits) {
  std::string s = be(digits.size(), 2) + be(static_cast<uint16_t>(weight), 2) + be(sign, 2) +
                  be(static_cast<uint16_t>(dscale), 2);
  for (int d : digits) s += be(static_cast<uint16_t>(d), 2);
  return s;
}
constexpr int64_t kDay = 86400LL * 1000000;

TEST(PgBinaryRender, EveryTypeAsPostgresPrintsIt) {
  EXPECT_EQ(render(PgWire::Bool, std::string(1, '\1')), "t");
  EXPECT_EQ(render(PgWire::Bool, std::string(1, '\0')), "f");
  EXPECT_EQ(render(PgWire::Int2, be(0x8000, 2)), "-32768");
  EXPECT_EQ(render(PgWire::Int4, be(0xffffffffu, 4)), "-1");
  EXPECT_EQ(render(PgWire::Int8, be(0x8000000000000000ull, 8)), "-9223372036854775808");
  EXPECT_EQ(render(PgWire::Int8, be(0x7fffffffffffffffull, 8)), "9223372036854775807");
  // float8out with extra_float_digits=1: shortest digits, fixed for exponents -4..14.
  EXPECT_EQ(render(PgWire::Float8, f8(1.5)), "1.5");
  EXPECT_EQ(render(PgWire::Float8, f8(0.1)), "0.1");
  EXPECT_EQ(render(PgWire::Float8, f8(1e15)), "1e+15");
  EXPECT_EQ(render(PgWire::Float8, f8(1e14)), "100000000000000");
  EXPECT_EQ(render(PgWire::Float8, f8(123456789012.5)), "123456789012.5");
  EXPECT_EQ(render(PgWire::Float8, f8(0.0001)), "0.0001");
  EXPECT_EQ(render(PgWire::Float8, f8(0.00001)), "1e-05");
  EXPECT_EQ(render(PgWire::Float8, f8(-1.25e-300)), "-1.25e-300");
  EXPECT_EQ(render(PgWire::Float8, f8(-0.0)), "-0");
  EXPECT_EQ(render(PgWire::Float8, f8(std::numeric_limits<double>::infinity())), "Infinity");
  EXPECT_EQ(render(PgWire::Float8, f8(-std::numeric_limits<double>::infinity())), "-Infinity");
  EXPECT_EQ(render(PgWire::Float8, f8(std::nan(""))), "NaN");
  EXPECT_EQ(render(PgWire::Float4, f4(1.1f)), "1.1");
  EXPECT_EQ(render(PgWire::Float4, f4(1e6f)), "1e+06");
  EXPECT_EQ(render(PgWire::Float4, f4(123456.f)), "123456");
  EXPECT_EQ(render(PgWire::Float4, f4(3.4028235e38f)), "3.4028235e+38");
  // Halfway between two floats: PostgreSQL does not take it, it prints one digit more.
  EXPECT_EQ(render(PgWire::Float4, f4(-121788224.f)), "-1.21788224e+08");
  // numeric: base-10000 digits, weight, dscale.
  EXPECT_EQ(render(PgWire::Numeric, numeric(0, 0, 2, {12, 5000})), "12.50");
  EXPECT_EQ(render(PgWire::Numeric, numeric(-1, 0x4000, 2, {100})), "-0.01");
  EXPECT_EQ(render(PgWire::Numeric, numeric(0, 0, 0, {})), "0");
  EXPECT_EQ(render(PgWire::Numeric, numeric(0, 0, 3, {})), "0.000");
  EXPECT_EQ(render(PgWire::Numeric, numeric(2, 0, 0, {1})), "100000000");
  EXPECT_EQ(render(PgWire::Numeric, numeric(1, 0, 6, {1, 2, 3400})), "10002.340000");
  EXPECT_EQ(render(PgWire::Numeric, numeric(-2, 0, 9, {12, 3400})), "0.000000123");
  EXPECT_EQ(render(PgWire::Numeric, numeric(0, 0xC000, 0, {})), "NaN");
  EXPECT_EQ(render(PgWire::Numeric, numeric(0, 0xD000, 0, {})), "Infinity");
  EXPECT_EQ(render(PgWire::Numeric, numeric(0, 0xF000, 0, {})), "-Infinity");
  // dates and times (2000-01-01 epoch, TimeZone UTC, DateStyle ISO).
  EXPECT_EQ(render(PgWire::Date, be(0, 4)), "2000-01-01");
  EXPECT_EQ(render(PgWire::Date, be(static_cast<uint32_t>(-10957), 4)), "1970-01-01");
  EXPECT_EQ(render(PgWire::Date, be(static_cast<uint32_t>(-730119), 4)), "0001-01-01");
  EXPECT_EQ(render(PgWire::Date, be(static_cast<uint32_t>(-730120), 4)), "0001-12-31 BC");
  EXPECT_EQ(render(PgWire::Date, be(0x7fffffff, 4)), "infinity");
  EXPECT_EQ(render(PgWire::Date, be(0x80000000u, 4)), "-infinity");
  EXPECT_EQ(render(PgWire::Date, be(2958100, 4)), "10099-01-01");
  EXPECT_EQ(render(PgWire::Time, be(0, 8)), "00:00:00");
  EXPECT_EQ(render(PgWire::Time, be(kDay, 8)), "24:00:00");
  EXPECT_EQ(render(PgWire::Time, be(3723500000LL, 8)), "01:02:03.5");
  EXPECT_EQ(render(PgWire::TimeTz, be(3723000001LL, 8) + be(static_cast<uint32_t>(-19800), 4)),
            "01:02:03.000001+05:30");
  EXPECT_EQ(render(PgWire::TimeTz, be(0, 8) + be(3600, 4)), "00:00:00-01");
  EXPECT_EQ(render(PgWire::TimeTz, be(0, 8) + be(static_cast<uint32_t>(-3661), 4)),
            "00:00:00+01:01:01");
  EXPECT_EQ(render(PgWire::Timestamp, be(0, 8)), "2000-01-01 00:00:00");
  EXPECT_EQ(render(PgWire::TimestampTz, be(static_cast<uint64_t>(-1), 8)),
            "1999-12-31 23:59:59.999999+00");
  EXPECT_EQ(render(PgWire::TimestampTz, be(0x7fffffffffffffffull, 8)), "infinity");
  EXPECT_EQ(render(PgWire::Timestamp, be(0x8000000000000000ull, 8)), "-infinity");
  EXPECT_EQ(render(PgWire::TimestampTz, be(static_cast<uint64_t>(-730120 * kDay + 250000), 8)),
            "0001-12-31 00:00:00.25+00 BC");
  // interval, IntervalStyle postgres.
  auto interval = [](int64_t us, int32_t days, int32_t months) {
    return be(static_cast<uint64_t>(us), 8) + be(static_cast<uint32_t>(days), 4) +
           be(static_cast<uint32_t>(months), 4);
  };
  EXPECT_EQ(render(PgWire::Interval, interval(0, 0, 0)), "00:00:00");
  EXPECT_EQ(render(PgWire::Interval, interval(14706000000LL, 3, 14)),
            "1 year 2 mons 3 days 04:05:06");
  EXPECT_EQ(render(PgWire::Interval, interval(-1500000, 0, 0)), "-00:00:01.5");
  EXPECT_EQ(render(PgWire::Interval, interval(3600000000LL, 1, -12)), "-1 years +1 day 01:00:00");
  EXPECT_EQ(render(PgWire::Interval, interval(-60000000, -1, 1)), "1 mon -1 days -00:01:00");
  EXPECT_EQ(render(PgWire::Uuid, std::string("\x12\x34\x56\x78\x9a\xbc\xde\xf0\x01\x23\x45\x67"
                                             "\x89\xab\xcd\xef",
                                             16)),
            "12345678-9abc-def0-0123-456789abcdef");
  EXPECT_EQ(render(PgWire::Jsonb, std::string("\1{\"a\": 1}")), "{\"a\": 1}");
  EXPECT_EQ(render(PgWire::Bytea, std::string("\x00\xff", 2)), "\\x00ff");
  EXPECT_EQ(render(PgWire::Money, be(123456, 8)), "$1,234.56");
  EXPECT_EQ(render(PgWire::Money, be(static_cast<uint64_t>(-1), 8)), "-$0.01");
  EXPECT_EQ(render(PgWire::Money, be(0x8000000000000000ull, 8)), "-$92,233,720,368,547,758.08");
  auto inet = [](int family, int bits, bool cidr, std::string addr) {
    return std::string{static_cast<char>(family), static_cast<char>(bits), static_cast<char>(cidr),
                       static_cast<char>(addr.size())} +
           addr;
  };
  EXPECT_EQ(render(PgWire::Inet, inet(2, 32, false, "\xc0\xa8\x01\x02")), "192.168.1.2");
  EXPECT_EQ(render(PgWire::Inet, inet(2, 24, false, "\xc0\xa8\x01\x02")), "192.168.1.2/24");
  EXPECT_EQ(render(PgWire::Cidr, inet(2, 32, true, std::string("\x0a\x00\x00\x01", 4))),
            "10.0.0.1/32");
  std::string v6(16, '\0');
  v6[0] = 0x20;
  v6[1] = 0x01;
  v6[2] = 0x0d;
  v6[3] = static_cast<char>(0xb8);
  v6[15] = 1;
  EXPECT_EQ(render(PgWire::Inet, inet(3, 128, false, v6)), "2001:db8::1");
  EXPECT_EQ(render(PgWire::Cidr, inet(3, 64, true, std::string(16, '\0'))), "::/64");
  std::string mapped(16, '\0');
  mapped[10] = mapped[11] = static_cast<char>(0xff);
  mapped[12] = 1, mapped[13] = 2, mapped[14] = 3, mapped[15] = 4;
  EXPECT_EQ(render(PgWire::Inet, inet(3, 128, false, mapped)), "::ffff:1.2.3.4");
  EXPECT_EQ(render(PgWire::Macaddr, std::string("\x08\x00\x2b\x01\x02\x03", 6)),
            "08:00:2b:01:02:03");
  EXPECT_THROW(render(PgWire::Int4, be(1, 2)), Error);
  EXPECT_THROW(render(PgWire::Jsonb, std::string("\2{}")), Error);
}

TEST(PgBinaryRender, WireTypesAsTheSourceNamesThem) {
  PgWire w;
  ASSERT_TRUE(dpone::ch::pg_wire_of("numeric(12,2)", w));
  EXPECT_EQ(w, PgWire::Numeric);
  ASSERT_TRUE(dpone::ch::pg_wire_of("timestamp(0) with time zone", w));
  EXPECT_EQ(w, PgWire::TimestampTz);
  ASSERT_TRUE(dpone::ch::pg_wire_of("timestamp without time zone", w));
  EXPECT_EQ(w, PgWire::Timestamp);
  ASSERT_TRUE(dpone::ch::pg_wire_of("time(3) with time zone", w));
  EXPECT_EQ(w, PgWire::TimeTz);
  ASSERT_TRUE(dpone::ch::pg_wire_of("time without time zone", w));
  EXPECT_EQ(w, PgWire::Time);
  ASSERT_TRUE(dpone::ch::pg_wire_of("interval day to second(3)", w));
  EXPECT_EQ(w, PgWire::Interval);
  ASSERT_TRUE(dpone::ch::pg_wire_of("character varying(20)", w));
  EXPECT_EQ(w, PgWire::Text);
  EXPECT_FALSE(dpone::ch::pg_wire_of("point", w));
  EXPECT_THROW(PgBinaryTranscoder({"point"}, {Encode::Plain}, {"p"}), Error);
}

// One row of every wire type (and one of NULLs), fed split at every offset.
TEST(PgBinaryTranscoder, SameBytesAsTheTextPathAtEveryChunkBoundary) {
  const std::vector<std::string> types = {"bigint",
                                          "boolean",
                                          "bytea",
                                          "timestamp(0) with time zone",
                                          "timestamp(6) with time zone",
                                          "numeric(12,2)",
                                          "text",
                                          "jsonb",
                                          "date",
                                          "double precision",
                                          "uuid",
                                          "interval"};
  const std::vector<Encode> encodes = {Encode::Plain,     Encode::Bool,   Encode::Bytes,
                                       Encode::DateRange, Encode::Micros, Encode::Plain,
                                       Encode::Plain,     Encode::Plain,  Encode::DateRange,
                                       Encode::Plain,     Encode::Plain,  Encode::Plain};
  const int64_t at = (24 * 365 + 6) * kDay + 36000LL * 1000000;  // 2024-01-01 10:00:00
  std::vector<std::vector<Field>> rows = {
      {be(1, 8), std::string(1, '\1'), std::string("\x00\xff\n\\\t", 5), be(at, 8),
       be(at + 250000, 8), numeric(0, 0, 2, {12, 5000}),
       std::string("a\tb\nc\\d\re\bf\fg\vh Zo\xc3\xab \x01"), std::string("\1{\"k\": \"\\t\"}"),
       be(8766, 4), f8(-1.5e-7), std::string(16, '\xab'), be(1, 8) + be(2, 4) + be(3, 4)},
      {be(2, 8), std::string(1, '\0'), std::string(), be(at, 8), be(at, 8),
       numeric(-1, 0x4000, 2, {100}), std::string(), std::string("\1null"), be(8766, 4), f8(0),
       std::string(16, '\0'), be(0, 8) + be(0, 4) + be(0, 4)},
      std::vector<Field>(12, std::nullopt)};
  // The interval above is written in PostgreSQL's order: "3 mons 2 days 00:00:00.000001".
  const std::string text =
      "1\tt\t\\\\x00ff0a5c09\t2024-01-01 10:00:00+00\t2024-01-01 10:00:00.25+00\t12.50\t"
      "a\\tb\\nc\\\\d\\re\\bf\\fg\\vh Zo\xc3\xab \x01\t{\"k\": \"\\\\t\"}\t2024-01-01\t-1.5e-07\t"
      "abababab-abab-abab-abab-abababababab\t3 mons 2 days 00:00:00.000001\n"
      "2\tf\t\\\\x\t2024-01-01 10:00:00+00\t2024-01-01 10:00:00+00\t-0.01\t\tnull\t2024-01-01\t"
      "0\t00000000-0000-0000-0000-000000000000\t00:00:00\n"
      "\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\n";
  const std::string want = text_path(text, encodes);
  ASSERT_NE(want.find("true\t\\0\xff\\n\\\\\\t"), std::string::npos) << want;  // bytea decoded
  const std::string stream = binary_stream(rows, "ext!");
  int64_t n = 0;
  EXPECT_EQ(binary_path(stream, types, encodes, {}, &n), want);
  EXPECT_EQ(n, 3);
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    ASSERT_EQ(binary_path(stream, types, encodes, {cut}), want) << "split at " << cut;
  }
  for (size_t a = 1; a < stream.size(); a += 7) {
    for (size_t b = a; b < stream.size(); b += 5) {
      ASSERT_EQ(binary_path(stream, types, encodes, {a, b}), want) << "splits " << a << ", " << b;
    }
  }
  std::vector<size_t> bytewise;
  for (size_t i = 1; i < stream.size(); ++i) bytewise.push_back(i);
  EXPECT_EQ(binary_path(stream, types, encodes, bytewise), want);
}

TEST(PgBinaryTranscoder, EmptyStreamAndMalformedStreams) {
  const std::vector<std::string> types = {"integer"};
  const std::vector<Encode> plain = {Encode::Plain};
  int64_t n = -1;
  EXPECT_EQ(binary_path(binary_stream({}), types, plain, {5}, &n), "");
  EXPECT_EQ(n, 0);
  std::string ok = binary_stream({{be(7, 4)}});
  EXPECT_EQ(binary_path(ok, types, plain, {}), "7\n");
  auto code_of = [&](const std::string& stream, const std::vector<std::string>& t) {
    try {
      binary_path(stream, t, std::vector<Encode>(t.size(), Encode::Plain), {});
    } catch (const Error& e) {
      return e.code();
    }
    return ErrorCode::Internal;
  };
  EXPECT_EQ(code_of(ok.substr(0, ok.size() - 2), types), ErrorCode::StageFailed);   // no trailer
  EXPECT_EQ(code_of(ok.substr(0, 25), types), ErrorCode::StageFailed);              // mid-row
  EXPECT_EQ(code_of(ok + "x", types), ErrorCode::StageFailed);                      // after trailer
  EXPECT_EQ(code_of("PGCOPY\nxx" + ok.substr(9), types), ErrorCode::StageFailed);   // signature
  EXPECT_EQ(code_of(ok, {"integer", "integer"}), ErrorCode::StageFailed);           // field count
  EXPECT_EQ(code_of(binary_stream({{be(7, 2)}}), types), ErrorCode::TypeMismatch);  // length
}

TEST(PgBinaryTranscoder, DateRangeAndTimestampLimitsFailLikeTheTextPath) {
  const std::vector<Encode> range = {Encode::DateRange};
  auto code_of = [&](const std::string& type, Encode e, const std::string& value) {
    try {
      binary_path(binary_stream({{value}}), {type}, {e}, {});
    } catch (const Error& err) {
      return err.code();
    }
    return ErrorCode::Internal;
  };
  // 1969-12-31 and 2106-01-01 are outside Date; infinity and BC too.
  EXPECT_EQ(code_of("date", Encode::DateRange, be(static_cast<uint32_t>(-10958), 4)),
            ErrorCode::TypeOverflow);
  EXPECT_EQ(code_of("date", Encode::DateRange, be(38716, 4)), ErrorCode::TypeOverflow);
  EXPECT_EQ(code_of("date", Encode::DateRange, be(0x7fffffff, 4)), ErrorCode::TypeOverflow);
  EXPECT_EQ(code_of("date", Encode::DateRange, be(static_cast<uint32_t>(-1459874), 4)),
            ErrorCode::TypeOverflow);  // 1998 BC: the year digits alone look in range
  EXPECT_EQ(binary_path(binary_stream({{be(38715, 4)}}), {"date"}, range, {}), "2105-12-31\n");
  EXPECT_EQ(code_of("timestamp(6) with time zone", Encode::Micros, be(0x7fffffffffffffffull, 8)),
            ErrorCode::TypeMismatch);
  EXPECT_EQ(code_of("timestamp(6) with time zone", Encode::TsText,
                    be(static_cast<uint64_t>(-800000 * kDay), 8)),
            ErrorCode::TypeMismatch);  // BC
  EXPECT_EQ(binary_path(binary_stream({{be(static_cast<uint64_t>(-946684800000000LL + 1), 8)}}),
                        {"timestamp(6) without time zone"}, {Encode::Micros}, {}),
            "1\n");
  EXPECT_EQ(binary_path(binary_stream({{be(500000, 8)}}), {"timestamp(6) with time zone"},
                        {Encode::TsText}, {}),
            "2000-01-01T00:00:00.5Z\n");
}

// The sink's form: timestamptz into DateTime/DateTime64 without "+00" (UTC), for the
// server's cheaper basic parser; everything else as the text path.
TEST(PgBinaryTranscoder, BareUtcTimestampsDropOnlyTheOffset) {
  const std::vector<std::string> types = {
      "timestamp(0) with time zone", "timestamp(3) with time zone", "timestamp(6) with time zone",
      "timestamp(0) without time zone"};
  const std::vector<Encode> encodes = {Encode::DateRange, Encode::Plain, Encode::TsText,
                                       Encode::DateRange};
  const int64_t at = 8766 * kDay + 36000LL * 1000000 + 125000;
  std::string stream =
      binary_stream({{be(at - 125000, 8), be(at, 8), be(at, 8), be(at - 125000, 8)},
                     {std::nullopt, be(0x7fffffffffffffffull, 8), std::nullopt, std::nullopt}});
  PgBinaryTranscoder t(types, encodes, {}, true);
  std::string out;
  t.feed(stream, out);
  t.finish(out);
  EXPECT_EQ(out,
            "2024-01-01 10:00:00\t2024-01-01 10:00:00.125\t2024-01-01T10:00:00.125Z\t"
            "2024-01-01 10:00:00\n\\N\tinfinity\t\\N\t\\N\n");
}

// --- differential against a real PostgreSQL ---------------------------------------------

std::string pg_dsn() {
  const char* d = std::getenv("DPONE_TEST_PG_DSN");
  return d ? d : "";
}

#define REQUIRE_PG()                                                                      \
  do {                                                                                    \
    if (pg_dsn().empty()) {                                                               \
      if (std::getenv("CI") || std::getenv("DPONE_REQUIRE_SERVICES"))                     \
        FAIL() << "DPONE_TEST_PG_DSN is not set: start the services";                     \
      GTEST_SKIP() << "no PostgreSQL: set DPONE_TEST_PG_DSN (scripts/services.sh start)"; \
    }                                                                                     \
  } while (0)

// COPY (query) TO STDOUT through psql in dpone's session settings (pg_connection.cpp).
std::string pg_copy(const std::string& query, bool binary) {
  std::string file = "/tmp/dpone_pgcopy_" + std::to_string(getpid()) + (binary ? ".bin" : ".txt");
  std::string sql_file = file + ".sql";
  {
    std::ofstream f(sql_file);
    // The same seed: both formats get the same "random" rows.
    f << "\\o /dev/null\nSELECT setseed(0.42);\n\\o\n";
    f << "\\copy (" << query << ") TO '" << file << "'" << (binary ? " (FORMAT binary)" : "")
      << "\n";
  }
  std::string cmd =
      "PGOPTIONS='-c TimeZone=UTC -c DateStyle=ISO,YMD -c IntervalStyle=postgres "
      "-c bytea_output=hex -c extra_float_digits=1 -c client_min_messages=warning' "
      "PGCLIENTENCODING=UTF8 psql '" +
      pg_dsn() + "' -X -q -v ON_ERROR_STOP=1 -f " + sql_file + " 2>&1";
  std::string out;
  if (FILE* p = popen(cmd.c_str(), "r")) {
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    if (pclose(p) != 0) ADD_FAILURE() << "psql failed: " << out;
  }
  std::ifstream in(file, std::ios::binary);
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::remove(file.c_str());
  std::remove(sql_file.c_str());
  return data;
}

struct Case {
  std::string type;    // wire type as the source names it (and the cast)
  std::string values;  // SQL expression list of edge values (may be empty)
  std::string random;  // SQL expression of a random value of i (may be empty)
  Encode encode = Encode::Plain;
};

TEST(PgBinaryDifferential, EveryTypeTranscodesLikeTheServersText) {
  REQUIRE_PG();
  const std::vector<Case> cases = {
      {"boolean", "true, false", "", Encode::Bool},
      {"smallint", "-32768, 32767, 0, -1", "(random()*65535-32768)::int"},
      {"integer", "-2147483648, 2147483647, 0", "(random()*4e9-2e9)::bigint"},
      {"bigint", "-9223372036854775808, 9223372036854775807, 0",
       "(random()*1.8e19-9e18)::numeric::bigint"},
      {"real",
       "'NaN', 'Infinity', '-Infinity', '-0', '1e-45', '3.4028235e38', '1e6', '999999', "
       "'0.0001', '0.00001', '1.1', '123456.7'",
       "(random()*10^(random()*70-35) * sign(random()-0.5))::real"},
      {"double precision",
       "'NaN', 'Infinity', '-Infinity', '-0', '5e-324', '1.7976931348623157e308', '1e15', "
       "'1e14', '999999999999999', '0.0001', '0.00001', '0.1', '1e22', '123456789012345678'",
       "random()*10^(random()*600-300) * sign(random()-0.5)"},
      // Large integers in floats: many shortest decimals there lie exactly halfway.
      {"real", "'16777217', '121788224'", "((random()*4e9-2e9)::bigint)::real"},
      {"double precision", "'9007199254740993'",
       "((random()*1.8e19-9e18)::numeric::bigint)::float8"},
      {"numeric",
       "'NaN', 'Infinity', '-Infinity', '0', '0.000', '-0.0001', '1e-20', "
       "'123456789012345678901234567890.123456789', '10000', '9999.9999', '-1e100'",
       "round(((random()-0.5) * 10^(random()*40-20))::numeric, (random()*30)::int)"},
      {"numeric(12,2)", "0, -0.01, 9999999999.99, -9999999999.99, 100",
       "round(((random()-0.5)*2e10)::numeric, 2)"},
      {"numeric(38,10)", "0, 1, -1.5", "((random()-0.5)*1e20)::numeric(38,10)"},
      {"text", "'', E'tab\\there', E'nl\\nx\\r\\\\ \\b\\f\\v', 'Zoë 日本 🎉', E'\\x01\\x1f'",
       "md5(i::text) || chr(1 + (random()*1000)::int)"},
      {"character varying(20)", "'', 'abc'", ""},
      {"name", "'pg_class'", ""},
      {"bytea", "'', '\\x00ff5c090a0d'::bytea", "decode(md5(i::text), 'hex')", Encode::Bytes},
      {"date",
       "'infinity', '-infinity', '0001-01-01', '0001-12-31 BC', '4713-01-01 BC', "
       "'5874897-12-31', '1970-01-01', '2000-02-29', '10000-01-01'",
       "date '2000-01-01' + (random()*800000-400000)::int"},
      {"time without time zone", "'00:00', '24:00', '23:59:59.999999', '12:00:00.5'",
       "time '00:00' + random() * interval '24 hours'"},
      {"time(3) without time zone", "'01:02:03.456'", ""},
      {"time with time zone", "'00:00+00', '12:34:56.789-05:30', '23:59:59+14', '01:00-15:59:59'",
       "(time '00:00' + random() * interval '24 hours')::timetz"},
      {"timestamp without time zone",
       "'infinity', '-infinity', '4713-01-01 00:00 BC', '0001-01-01', '294276-12-31 23:59:59', "
       "'1999-12-31 23:59:59.999999', '2000-01-01', '1969-12-31 23:59:59.5'",
       "timestamp '2000-01-01' + random() * interval '500000 days' - interval '250000 days'"},
      {"timestamp(0) with time zone", "'2026-11-01 10:00:00+02', '1970-01-01 00:00:00+00'",
       "timestamptz '1970-01-01' + random() * interval '40000 days'"},
      {"timestamp with time zone",
       "'infinity', '-infinity', '0044-03-15 12:00 BC', "
       "'2026-11-01 10:00:00.123456+00', '1900-01-01 00:00:00.1+01'",
       "timestamptz '2000-01-01' + random() * interval '500000 days' - interval '250000 days'"},
      {"interval",
       "'0', '1 year 2 months 3 days 04:05:06.789', '-1 year +1 day', '-1.5 seconds', "
       "'1 mon -1 day -00:01', '178000000 years', '-178000000 years', '1 day -1 microsecond', "
       "'-2147483648 days', '2147483647 days 2562047788:00:54.775807', '-2562047788:00:54.775807', "
       "'12 mon', '1 mon', '1 day'",
       "make_interval(0, (random()*100-50)::int, 0, (random()*100-50)::int, 0, 0, "
       "(random()-0.5)*1e6)"},
      {"interval day to second(3)", "'1 day 00:00:01.123'", ""},
      {"uuid", "'00000000-0000-0000-0000-000000000000', 'ffffffff-ffff-ffff-ffff-ffffffffffff'",
       "md5(i::text)::uuid"},
      {"json", "'{\"a\": [1, 2.5e3, \"x\\ty\"]}', '\"\\u00e9\"', 'null'", ""},
      {"jsonb", "'{\"b\": {\"a\": [1, 2.50, \"x\\ty\\\\\"]}}', '\"\\u00e9\"', 'null', '[]'",
       "jsonb_build_object('k', i, 'v', md5(i::text), 'f', random())"},
      {"money", "'0', '-0.01', '1234567.89', '-92233720368547758.08', '92233720368547758.07'",
       "(random()*1e9-5e8)::numeric(12,2)::money"},
      {"inet",
       "'0.0.0.0', '192.168.1.2/24', '10.0.0.0/8', '::', '::1', '2001:db8::1/64', "
       "'::ffff:1.2.3.4', '::1.2.3.4', '1:0:0:1:0:0:0:1', 'fe80::1:2:3:4:5', "
       "'0:0:1::', '1::', '::0.0.0.1', '::2:3:4:5:6:7'",
       "((random()*255)::int || '.' || (random()*255)::int || '.1.' || (random()*255)::int)::inet"},
      {"cidr",
       "'0.0.0.0/0', '192.168.0.0/16', '10.1.2.3/32', '::/0', '2001:db8::/32', "
       "'::ffff:0.0.0.0/96', 'ffff::/16'",
       ""},
      {"macaddr", "'08:00:2b:01:02:03', 'ff:ff:ff:ff:ff:ff', '00:00:00:00:00:00'", ""},
  };
  // DPONE_PGCOPY_RANDOM_ROWS: more random values per type for a longer soak.
  const char* env_rows = std::getenv("DPONE_PGCOPY_RANDOM_ROWS");
  const long random_rows = env_rows ? std::atol(env_rows) : 3000;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.type);
    std::vector<std::string> parts;
    if (!c.values.empty())
      parts.push_back("SELECT v::" + c.type + " FROM unnest(ARRAY[" + c.values + "]::" + c.type +
                      "[]) AS v");
    parts.push_back("SELECT NULL::" + c.type);
    if (!c.random.empty())
      parts.push_back("SELECT (" + c.random + ")::" + c.type + " FROM generate_series(1, " +
                      std::to_string(random_rows) + ") i");
    std::string query;
    for (const auto& p : parts) query += (query.empty() ? "" : " UNION ALL ") + p;
    std::string text = pg_copy(query, false);
    std::string binary = pg_copy(query, true);
    ASSERT_FALSE(binary.empty());
    std::string want = text_path(text, {c.encode});
    std::string got;
    try {
      got = binary_path(binary, {c.type}, {c.encode}, {std::min<size_t>(4096, binary.size())});
    } catch (const Error& e) {
      ADD_FAILURE() << e.what();
      continue;
    }
    if (got == want) continue;
    // Show the first differing line.
    size_t at = 0;
    while (at < got.size() && at < want.size() && got[at] == want[at]) ++at;
    size_t line = want.rfind('\n', at);
    line = line == std::string::npos ? 0 : line + 1;
    ADD_FAILURE() << "first difference at byte " << at
                  << ":\n text: " << want.substr(line, want.find('\n', at) - line)
                  << "\n binary: " << got.substr(line, got.find('\n', at) - line);
  }
}

}  // namespace
