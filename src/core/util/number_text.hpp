// Appending numbers as decimal text without allocating: shared by the value codecs and
// the connectors that render values themselves (the ClickHouse PostgreSQL-COPY transcoder).
#pragma once

#include <charconv>
#include <cstdint>
#include <string>

namespace dpone {

// `v` in std::to_chars form: integers exactly, floating point as the shortest text that
// reads back to the same value.
template <typename T>
void append_number(std::string& out, T v) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

// `v` (>= 0) in decimal, zero-padded to at least `width` digits.
inline void append_padded(std::string& out, int64_t v, int width) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  for (int n = static_cast<int>(r.ptr - buf); n < width; ++n) out.push_back('0');
  out.append(buf, r.ptr);
}

}  // namespace dpone
