#include "core/codecs/csv.hpp"

#include <sstream>

#include <gtest/gtest.h>

#include "core/errors.hpp"
#include "test_util.hpp"

namespace dpone {
namespace {

using testing::TempDir;

// A record as strings; NULL cells as "<NULL>".
using Row = std::vector<std::string>;

std::vector<Row> read_all(const std::filesystem::path& path, CsvOptions options = {},
                          size_t buffer_size = InputFile::kDefaultBufferSize,
                          std::vector<int64_t>* lines = nullptr) {
  CsvReader reader(path, options, buffer_size);
  std::vector<Row> rows;
  std::vector<std::string_view> fields;
  std::vector<bool> nulls;
  while (reader.next(fields, nulls)) {
    Row row;
    for (size_t i = 0; i < fields.size(); ++i)
      row.push_back(nulls[i] ? "<NULL>" : std::string(fields[i]));
    rows.push_back(row);
    if (lines) lines->push_back(reader.record_line());
  }
  return rows;
}

// Expects Error(code) whose message contains `needle`.
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

TEST(CsvReader, HeaderAndRecords) {
  TempDir dir;
  auto p = dir.write("a.csv", "id,name\n1,alice\n2,bob\n");
  CsvReader reader(p, {});
  EXPECT_EQ(reader.header(), (std::vector<std::string>{"id", "name"}));
  EXPECT_EQ(read_all(p), (std::vector<Row>{{"1", "alice"}, {"2", "bob"}}));
}

TEST(CsvReader, NoHeader) {
  TempDir dir;
  auto p = dir.write("a.csv", "1,alice\n2,bob");
  CsvOptions o;
  o.header = false;
  CsvReader reader(p, o);
  EXPECT_TRUE(reader.header().empty());
  EXPECT_EQ(read_all(p, o), (std::vector<Row>{{"1", "alice"}, {"2", "bob"}}));
}

TEST(CsvReader, BomCrlfAndMissingFinalNewline) {
  TempDir dir;
  auto p = dir.write("a.csv", "\xEF\xBB\xBFid,name\r\n1,alice\r\n2,bob");
  CsvReader reader(p, {});
  EXPECT_EQ(reader.header(), (std::vector<std::string>{"id", "name"}));
  EXPECT_EQ(read_all(p), (std::vector<Row>{{"1", "alice"}, {"2", "bob"}}));
}

TEST(CsvReader, QuotedFieldsWithDelimitersQuotesAndNewlines) {
  TempDir dir;
  auto p = dir.write("a.csv",
                     "id,text\n"
                     "1,\"a,b\"\n"
                     "2,\"say \"\"hi\"\"\"\n"
                     "3,\"line1\nline2\r\nline3\"\n"
                     "4,\"\"\"\"\n"
                     "5,plain\n");
  std::vector<int64_t> lines;
  auto rows = read_all(p, {}, InputFile::kDefaultBufferSize, &lines);
  ASSERT_EQ(rows.size(), 5u);
  EXPECT_EQ(rows[0], (Row{"1", "a,b"}));
  EXPECT_EQ(rows[1], (Row{"2", "say \"hi\""}));
  EXPECT_EQ(rows[2], (Row{"3", "line1\nline2\r\nline3"}));
  EXPECT_EQ(rows[3], (Row{"4", "\""}));
  EXPECT_EQ(rows[4], (Row{"5", "plain"}));
  // Physical lines where records begin: the embedded newlines count.
  EXPECT_EQ(lines, (std::vector<int64_t>{2, 3, 4, 7, 8}));
}

TEST(CsvReader, NullVersusEmptyString) {
  TempDir dir;
  auto p = dir.write("a.csv", "a,b,c\n,\"\",x\n\"\",,\n");
  EXPECT_EQ(read_all(p), (std::vector<Row>{{"<NULL>", "", "x"}, {"", "<NULL>", "<NULL>"}}));
}

TEST(CsvReader, CustomNullValue) {
  TempDir dir;
  auto p = dir.write("a.csv", "a,b,c\nNULL,\"NULL\",\n");
  CsvOptions o;
  o.null_value = "NULL";
  // Unquoted NULL is NULL; quoted "NULL" is the text; an empty field is the empty string.
  EXPECT_EQ(read_all(p, o), (std::vector<Row>{{"<NULL>", "NULL", ""}}));
}

TEST(CsvReader, DelimiterAndQuoteOptions) {
  TempDir dir;
  auto p = dir.write("a.tsv", "a\tb\n'x\ty'\t'it''s'\n");
  CsvOptions o;
  o.delimiter = '\t';
  o.quote = '\'';
  EXPECT_EQ(read_all(p, o), (std::vector<Row>{{"x\ty", "it's"}}));
}

TEST(CsvReader, BlankLinesSkippedInWideFiles) {
  TempDir dir;
  auto p = dir.write("a.csv", "a,b\n\n1,2\n\r\n\n3,4\n\n");
  std::vector<int64_t> lines;
  EXPECT_EQ(read_all(p, {}, InputFile::kDefaultBufferSize, &lines),
            (std::vector<Row>{{"1", "2"}, {"3", "4"}}));
  EXPECT_EQ(lines, (std::vector<int64_t>{3, 6}));
}

TEST(CsvReader, OneColumnFileKeepsNullRows) {
  TempDir dir;
  auto p = dir.write("a.csv", "a\n1\n\n\"\"\n2\n");
  EXPECT_EQ(read_all(p), (std::vector<Row>{{"1"}, {"<NULL>"}, {""}, {"2"}}));
}

TEST(CsvReader, TrailingDelimiterMakesEmptyLastField) {
  TempDir dir;
  auto p = dir.write("a.csv", "a,b,c\n1,2,\n1,2,");
  EXPECT_EQ(read_all(p), (std::vector<Row>{{"1", "2", "<NULL>"}, {"1", "2", "<NULL>"}}));
}

TEST(CsvReader, LoneCarriageReturnEndsRecord) {
  TempDir dir;
  auto p = dir.write("a.csv", "a,b\r1,2\r3,4");
  EXPECT_EQ(read_all(p), (std::vector<Row>{{"1", "2"}, {"3", "4"}}));
}

TEST(CsvReader, TinyBufferGivesSameResult) {
  TempDir dir;
  std::string content = "id,text,n\n";
  for (int i = 0; i < 300; ++i) {
    content += std::to_string(i) + ",\"quoted, \"\"value\"\"\r\nwith newline " + std::to_string(i) +
               "\"," + std::string(static_cast<size_t>(i % 37), 'x') + "\r\n";
  }
  content += "last,\"" + std::string(5000, 'q') + "\",end";  // one record bigger than the buffer
  auto p = dir.write("a.csv", content);
  auto big = read_all(p);
  for (size_t buffer : {16, 17, 31, 64, 100}) {
    auto small = read_all(p, {}, buffer);
    ASSERT_EQ(small, big) << "buffer " << buffer;
  }
  ASSERT_EQ(big.size(), 301u);
  EXPECT_EQ(big[7], (Row{"7", "quoted, \"value\"\r\nwith newline 7", "xxxxxxx"}));
  EXPECT_EQ(big[300][1].size(), 5000u);
}

TEST(CsvReader, UnterminatedQuoteNamesTheLineWhereItOpened) {
  TempDir dir;
  auto p = dir.write("bad.csv", "a,b\n1,2\n3,\"open\nmore\nstill\n");
  expect_error([&] { read_all(p); }, ErrorCode::InputMalformed,
               "bad.csv:3: unterminated quoted field");
}

TEST(CsvReader, QuoteInsideUnquotedField) {
  TempDir dir;
  auto p = dir.write("bad.csv", "a,b\n1,2\n3,ab\"c\n");
  expect_error([&] { read_all(p); }, ErrorCode::InputMalformed,
               "bad.csv:3: quote character inside");
}

TEST(CsvReader, CharactersAfterClosingQuote) {
  TempDir dir;
  auto p = dir.write("bad.csv", "a,b\n\"x\nstill x\"y,2\n");
  expect_error([&] { read_all(p); }, ErrorCode::InputMalformed, "bad.csv:3: unexpected 'y' after");
}

TEST(CsvReader, UnreadableFile) {
  TempDir dir;
  expect_error([&] { CsvReader r(dir.path() / "missing.csv", {}); }, ErrorCode::SourceReadFailed,
               "missing.csv: cannot open");
  expect_error([&] { CsvReader r(dir.path(), {}); }, ErrorCode::SourceReadFailed, "is a directory");
}

TEST(CsvReader, BadOptions) {
  TempDir dir;
  auto p = dir.write("a.csv", "a\n");
  CsvOptions o;
  o.delimiter = '"';
  expect_error([&] { CsvReader r(p, o); }, ErrorCode::ConfigBadValue, "csv.delimiter");
  o.delimiter = '\n';
  expect_error([&] { CsvReader r(p, o); }, ErrorCode::ConfigBadValue, "csv.delimiter");
}

TEST(CsvReader, EmptyFile) {
  TempDir dir;
  auto p = dir.write("a.csv", "");
  CsvReader reader(p, {});
  EXPECT_TRUE(reader.header().empty());
  EXPECT_TRUE(read_all(p).empty());
}

RecordBatch batch_of(const std::vector<Row>& rows, size_t cols) {
  RecordBatch b(cols);
  for (const auto& r : rows)
    for (const auto& c : r) {
      if (c == "<NULL>")
        b.append_null();
      else
        b.append(c);
    }
  return b;
}

Schema schema_of(std::vector<std::string> names) {
  Schema s;
  for (auto& n : names) s.columns.push_back({n, LogicalType::of(TypeId::String), true});
  return s;
}

TEST(CsvWriter, QuotesOnlyWhenNeededAndRoundTrips) {
  std::vector<Row> rows = {{"1", "plain", "<NULL>"},
                           {"2", "", "a,b"},
                           {"3", "say \"hi\"", "multi\nline\r\n"},
                           {"4", " spaced ", "<NULL>"}};
  std::ostringstream out;
  CsvWriter w(out, {});
  w.write_header(schema_of({"id", "text", "other,col"}));
  w.write(batch_of(rows, 3));
  EXPECT_EQ(out.str(),
            "id,text,\"other,col\"\n"
            "1,plain,\n"
            "2,\"\",\"a,b\"\n"
            "3,\"say \"\"hi\"\"\",\"multi\nline\r\n\"\n"
            "4, spaced ,\n");
  TempDir dir;
  auto p = dir.write("rt.csv", out.str());
  EXPECT_EQ(read_all(p), rows);
}

TEST(CsvWriter, CustomNullValueIsQuotedWhenItIsData) {
  std::ostringstream out;
  CsvOptions o;
  o.null_value = "\\N";
  o.delimiter = ';';
  CsvWriter w(out, o);
  std::vector<Row> rows = {{"<NULL>", "\\N", "a;b"}};
  w.write(batch_of(rows, 3));
  EXPECT_EQ(out.str(), "\\N;\"\\N\";\"a;b\"\n");
  TempDir dir;
  o.header = false;
  auto p = dir.write("rt.csv", out.str());
  EXPECT_EQ(read_all(p, o), rows);
}

TEST(CsvWriter, OneColumnNullRoundTrips) {
  std::ostringstream out;
  CsvWriter w(out, {});
  w.write_header(schema_of({"a"}));
  std::vector<Row> rows = {{"x"}, {"<NULL>"}, {""}, {"<NULL>"}};
  w.write(batch_of(rows, 1));
  TempDir dir;
  auto p = dir.write("rt.csv", out.str());
  EXPECT_EQ(read_all(p), rows);
}

}  // namespace
}  // namespace dpone
