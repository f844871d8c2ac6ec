// PostgreSQL COPY streams -> ClickHouse TabSeparated, transcoded on the fly with bounded
// memory (README.md "PostgreSQL COPY pass-through").
//
// Two inputs, one output: for the same rows both transcoders append exactly the same
// TabSeparated bytes.
//   CopyTextTranscoder   pg_copy_text: the server's text, only cells whose Encode is not
//                        Plain are rewritten (bool, bytea, timestamps); other bytes pass.
//   PgBinaryTranscoder   pg_copy_binary: every value is rendered as the server's text
//                        output would be in dpone's session (TimeZone UTC, DateStyle ISO,
//                        IntervalStyle postgres, extra_float_digits 1, bytea_output hex),
//                        escaped like COPY text, then the same Encode step is applied.
//                        PostgreSQL spends less CPU producing binary COPY (no int8,
//                        numeric or timestamp text formatting); dpone formats on its own
//                        core instead.
// Chunks may split anywhere (inside the header, a length or a value); only the row being
// split is carried over between chunks.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "connectors/clickhouse/ch_types.hpp"

namespace dpone::ch {

class CopyTextTranscoder {
 public:
  explicit CopyTextTranscoder(std::vector<Encode> encodes) : encodes_(std::move(encodes)) {}
  // Appends the rewritten form of `in` to `out`; keeps a partial last field for later.
  void feed(std::string_view in, std::string& out);
  // End of stream: a last row without its newline.
  void finish(std::string& out);
  int64_t rows() const { return rows_; }

 private:
  Encode current() const { return column_ < encodes_.size() ? encodes_[column_] : Encode::Plain; }
  void flush_field(std::string& out);
  [[noreturn]] void out_of_range(std::string_view v) const;
  [[noreturn]] void bad(const char* what, std::string_view v) const;

  std::vector<Encode> encodes_;
  size_t column_ = 0;
  bool mid_row_ = false;
  int64_t rows_ = 0;
  std::string pending_;
};

// The server types binary COPY can carry to ClickHouse (wire_types of the artifact).
enum class PgWire {
  Bool,
  Int2,
  Int4,
  Int8,
  Float4,
  Float8,
  Numeric,
  Text,
  Bytea,
  Date,
  Time,
  TimeTz,
  Timestamp,
  TimestampTz,
  Interval,
  Uuid,
  Json,
  Jsonb,
  Money,
  Inet,
  Cidr,
  Macaddr,
};

// The PgWire of a wire type as the postgres source names it (format_type() text, e.g.
// "numeric(12,2)", "timestamp(0) with time zone", "character varying(20)"); false when
// dpone cannot render that type's binary data.
bool pg_wire_of(std::string_view wire_type, PgWire& out);

// Appends the server's text output of one binary value of `type` (not COPY-escaped).
// Throws Error(TypeMismatch) when the bytes are not a valid value of the type.
void append_pg_text(std::string& out, PgWire type, std::string_view value);

class PgBinaryTranscoder {
 public:
  // One wire type and one Encode per column (same order). Throws Error(TypeMismatch)
  // naming the column for a wire type dpone cannot render.
  // bare_utc_timestamps: timestamptz values bound for DateTime/DateTime64 (Encode Plain or
  // DateRange) are sent without their "+00" ("2026-11-01 08:00:00", UTC), a form the
  // server parses without date_time_input_format=best_effort, which costs it CPU; the
  // staging column is DateTime('UTC')/DateTime64(p, 'UTC'), so the value is the same.
  // false: exactly the text path's bytes.
  PgBinaryTranscoder(const std::vector<std::string>& wire_types, std::vector<Encode> encodes,
                     const std::vector<std::string>& names, bool bare_utc_timestamps = false);
  void feed(std::string_view in, std::string& out);
  // Throws Error(StageFailed) when the stream stopped before its trailer.
  void finish(std::string& out);
  int64_t rows() const { return rows_; }

 private:
  // Parses what it can of [p, end): a header, rows, the trailer. Returns the first byte
  // not consumed; sets need_ to the bytes missing for the next step when it stops early.
  const char* parse(const char* p, const char* end, std::string& out);
  void emit(size_t column, const char* value, int32_t length, std::string& out);
  [[noreturn]] void fail(const std::string& what) const;
  [[noreturn]] void out_of_range(size_t column, std::string_view text) const;

  enum class State { Header, Extension, Rows, Done };
  std::vector<PgWire> wires_;
  std::vector<Encode> encodes_;
  std::vector<std::string> names_;
  bool bare_utc_ = false;
  State state_ = State::Header;
  int64_t skip_ = 0;   // extension bytes left
  std::string carry_;  // the start of a row (or header) split across chunks
  size_t need_ = 0;    // bytes `carry_` must reach before parsing again
  int64_t rows_ = 0;
  int64_t trailing_ = 0;
  std::string scratch_;
};

}  // namespace dpone::ch
