#include "core/connector/copy_rows.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "core/errors.hpp"

namespace dpone {

namespace {

constexpr std::string_view kSignature("PGCOPY\n\377\r\n\0", 11);
constexpr size_t kHeader = 11 + 4 + 4;  // signature, flags, extension length

// A big-endian signed integer of 2 or 4 bytes.
int64_t big_endian(const char* p, size_t width) {
  uint32_t v = 0;
  for (size_t i = 0; i < width; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return width == 2 ? static_cast<int16_t>(v) : static_cast<int32_t>(v);
}

}  // namespace

// Reads a `width`-byte integer at p: in place when it is whole in the chunk, else
// gathered in need_ across chunks. False when the chunk ended first (p is then at end).
bool CopyRowCounter::read_int(const char*& p, const char* end, size_t width, int64_t& value) {
  if (need_.empty() && static_cast<size_t>(end - p) >= width) {
    value = big_endian(p, width);
    p += width;
    return true;
  }
  size_t k = std::min(width - need_.size(), static_cast<size_t>(end - p));
  need_.append(p, k);
  p += k;
  if (need_.size() < width) return false;
  value = big_endian(need_.data(), width);
  need_.clear();
  return true;
}

void CopyRowCounter::feed(std::string_view chunk) {
  if (chunk.empty()) return;
  const char* p = chunk.data();
  const char* const end = p + chunk.size();
  if (!binary_) {
    while ((p = static_cast<const char*>(std::memchr(p, '\n', static_cast<size_t>(end - p))))) {
      ++rows_;
      ++p;
    }
    last_ = chunk.back();
    return;
  }
  while (p < end) {
    switch (state_) {
      case State::Header: {
        size_t k = std::min(kHeader - need_.size(), static_cast<size_t>(end - p));
        need_.append(p, k);
        p += k;
        if (need_.size() < kHeader) return;
        if (std::string_view(need_).substr(0, kSignature.size()) != kSignature) {
          throw Error(ErrorCode::StageFailed, "the binary COPY stream has no PGCOPY signature");
        }
        skip_ = std::max<int64_t>(big_endian(need_.data() + 15, 4), 0);
        need_.clear();
        state_ = State::Extension;
        break;
      }
      case State::Extension:
      case State::FieldBytes: {
        int64_t k = std::min<int64_t>(skip_, end - p);
        p += k;
        skip_ -= k;
        if (skip_ > 0) return;
        state_ =
            state_ == State::Extension || fields_left_ == 0 ? State::RowStart : State::FieldLength;
        break;
      }
      case State::RowStart: {
        int64_t fields = 0;
        if (!read_int(p, end, 2, fields)) return;
        if (fields < 0) {
          state_ = State::Done;
          break;
        }
        ++rows_;
        fields_left_ = fields;
        state_ = fields > 0 ? State::FieldLength : State::RowStart;
        break;
      }
      case State::FieldLength: {
        int64_t len = 0;
        if (!read_int(p, end, 4, len)) return;
        --fields_left_;
        if (len > 0 && end - p >= len) {  // the value is whole in the chunk: step over it
          p += len;
          len = 0;
        }
        if (len > 0) {
          skip_ = len;
          state_ = State::FieldBytes;
        } else if (fields_left_ == 0) {
          state_ = State::RowStart;
        }
        break;
      }
      case State::Done:
        trailing_ += end - p;
        return;
    }
  }
  // A value or extension that ended exactly at the chunk's end: move on now, so
  // finish() sees where the stream stands.
  if ((state_ == State::FieldBytes || state_ == State::Extension) && skip_ == 0)
    state_ = state_ == State::Extension || fields_left_ == 0 ? State::RowStart : State::FieldLength;
}

void CopyRowCounter::finish(const std::string& where) {
  if (!binary_) {
    if (last_ != '\n') ++rows_;
    last_ = '\n';
    return;
  }
  if (state_ == State::Header && need_.empty()) return;  // an empty stream: no rows
  if (state_ != State::Done || trailing_ > 0) {
    throw Error(ErrorCode::StageFailed,
                fmt::format("{}: the binary COPY stream {} after {} rows", where,
                            trailing_ > 0 ? "goes on after its end marker"
                                          : "ended in the middle of a row or without its end "
                                            "marker",
                            rows_),
                "the source connection was probably cut: re-run");
  }
}

}  // namespace dpone
