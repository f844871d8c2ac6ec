// CopyRowCounter: the rows of COPY text and binary streams, fed in every chunking.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/connector/copy_rows.hpp"
#include "core/errors.hpp"

namespace dpone {
namespace {

// A binary COPY stream: header (with an extension area of `extension` bytes), rows of
// values ("NULL" is a NULL), no trailer (the caller adds it).
std::string binary_stream(const std::vector<std::vector<std::string>>& rows, int extension = 0) {
  std::string s("PGCOPY\n\377\r\n\0", 11);
  s += std::string("\0\0\0\0", 4);  // flags
  s += std::string{'\0', '\0', '\0', static_cast<char>(extension)};
  s += std::string(static_cast<size_t>(extension), 'e');
  for (const auto& row : rows) {
    s += std::string{'\0', static_cast<char>(row.size())};
    for (const auto& v : row) {
      if (v == "NULL") {
        s += std::string("\377\377\377\377", 4);
        continue;
      }
      s += std::string{'\0', static_cast<char>(v.size() >> 16), static_cast<char>(v.size() >> 8),
                       static_cast<char>(v.size() & 0xff)};
      s += v;
    }
  }
  return s;
}

const std::string kTrailer("\377\377", 2);

int64_t count(const std::string& stream, size_t chunk, bool binary = true) {
  CopyRowCounter c(binary);
  for (size_t i = 0; i < stream.size(); i += chunk)
    c.feed(std::string_view(stream).substr(i, chunk));
  c.finish("test");
  return c.rows();
}

TEST(CopyRowCounter, BinaryFramingInEveryChunking) {
  const std::string body = binary_stream(
      {{"abc", "NULL"}, {"", "\n\n"}, {}, {"x", std::string(300, 'v')}, {"\377\377", "PGCOPY"}}, 3);
  const std::string complete = body + kTrailer;
  for (size_t chunk = 1; chunk <= complete.size(); ++chunk)
    EXPECT_EQ(count(complete, chunk), 5) << "chunk " << chunk;
  // Split in two at every offset: integers and values cut anywhere.
  for (size_t cut = 0; cut <= complete.size(); ++cut) {
    CopyRowCounter c(true);
    c.feed(std::string_view(complete).substr(0, cut));
    c.feed(std::string_view(complete).substr(cut));
    EXPECT_NO_THROW(c.finish("test")) << "cut " << cut;
    EXPECT_EQ(c.rows(), 5) << "cut " << cut;
  }
}

TEST(CopyRowCounter, BinaryStreamsThatDoNotEndRightFailAtFinish) {
  const std::string body = binary_stream({{"a", "b"}, {"c", "NULL"}});
  for (size_t cut = 1; cut < body.size() + 1; ++cut) {  // cut short, or without the trailer
    CopyRowCounter c(true);
    c.feed(std::string_view(body + kTrailer).substr(0, cut));
    EXPECT_THROW(c.finish("test"), Error) << "cut " << cut;
  }
  CopyRowCounter after(true);
  after.feed(body + kTrailer + "x");
  try {
    after.finish("stream s");
    FAIL() << "bytes after the trailer must fail";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::StageFailed);
    EXPECT_NE(std::string(e.what()).find("goes on after its end marker after 2 rows"),
              std::string::npos)
        << e.what();
  }
  CopyRowCounter bad(true);
  EXPECT_THROW(bad.feed(std::string("PGCOPX\n\377\r\n\0", 11) + std::string(8, '\0')), Error);
  CopyRowCounter empty(true);
  EXPECT_NO_THROW(empty.finish("test"));  // no bytes at all: no rows
  EXPECT_EQ(empty.rows(), 0);
}

TEST(CopyRowCounter, TextCountsLineBreaksAndALastLineWithoutOne) {
  EXPECT_EQ(count("a\tb\nc\\nd\n", 1, false), 2);
  EXPECT_EQ(count("a\tb\nc\\nd", 3, false), 2);
  EXPECT_EQ(count("", 3, false), 0);
}

}  // namespace
}  // namespace dpone
