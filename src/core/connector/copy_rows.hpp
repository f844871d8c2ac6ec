// Counting the rows of a PostgreSQL COPY data stream without decoding it: the runtime's
// count of a streaming artifact (gate_tap) and the PostgreSQL sink's count of what it
// staged both walk the same bytes with this one counter.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace dpone {

// Counts the rows of a COPY data stream fed in arbitrary chunks. Text: one row per raw
// '\n' (values escape theirs), plus, at finish(), a last row without one. Binary: walks
// the framing (a 19-byte header and its extension area, then per row an int16 field
// count and per field an int32 length and that many bytes, then the int16 -1 trailer)
// without looking at values. Integers whole in a chunk are read in place; only one split
// across two chunks is gathered, so the cost is a few instructions per field.
class CopyRowCounter {
 public:
  explicit CopyRowCounter(bool binary) : binary_(binary) {}
  void feed(std::string_view chunk);
  // The end of the stream. Throws Error(STAGE_FAILED), naming `where`, when a binary
  // stream stopped in the middle of a row, lacks its trailer or goes on after it.
  void finish(const std::string& where);
  int64_t rows() const { return rows_; }

 private:
  enum class State { Header, Extension, RowStart, FieldLength, FieldBytes, Done };
  bool read_int(const char*& p, const char* end, size_t width, int64_t& value);

  bool binary_;
  int64_t rows_ = 0;
  char last_ = '\n';
  State state_ = State::Header;
  std::string need_;  // a header or an integer split across chunks
  int64_t skip_ = 0;  // bytes left of the extension area or of a value
  int64_t fields_left_ = 0;
  int64_t trailing_ = 0;  // bytes after the trailer (an error)
};

}  // namespace dpone
