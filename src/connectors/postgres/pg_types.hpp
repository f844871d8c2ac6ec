// The PostgreSQL type map (README.md "Types"), both directions, and the conversion of
// cell values between dpone's canonical text (core/record_batch.hpp) and PostgreSQL's
// COPY text format.
//
// Reading, sessions run with TimeZone=UTC, DateStyle=ISO, bytea_output=hex and
// extra_float_digits=1 (pg_connection.hpp), so the server's text output is close to
// canonical and the conversion is a cheap rewrite:
//   bool t/f -> true/false; float re-printed shortest (NaN, Infinity, -Infinity kept);
//   timestamp "2026-11-01 10:00:00.5" -> "2026-11-01T10:00:00.5";
//   timestamptz "2026-11-01 10:00:00+00" -> "2026-11-01T10:00:00Z";
//   bytea "\x00ff" -> raw bytes; everything else as the server prints it.
// Values canonical text cannot hold (infinity or BC dates/timestamps, NaN numerics)
// throw Error(TypeMismatch) unless the column is read as string.
//
// Writing, canonical text is valid PostgreSQL input for every mapped type; only bytes
// are turned into the hex form. Everything is then escaped for COPY text format.
#pragma once

#include <string>
#include <string_view>

#include "core/record_batch.hpp"
#include "core/types.hpp"

namespace dpone::pg {

// How a column's server text becomes canonical text.
enum class ReadKind { Text, Bool, Float32, Float64, Decimal, Date, Timestamp, TimestampTz, Bytea };

struct PgColumnType {
  LogicalType type;
  ReadKind read = ReadKind::Text;
  bool known = true;     // false: mapped to string/json as a fallback (warn)
  bool as_json = false;  // read through to_json(col) (arrays)
  std::string pg_name;   // format_type() text, e.g. "numeric(12,2)"
};

// Maps format_type(atttypid, atttypmod) text (domains resolved to their base type)
// and pg_type.typcategory ('A' array, 'E' enum, ...).
PgColumnType map_pg_type(std::string_view formatted, char category);

// Column type dpone declares for `type` (CREATE TABLE, ADD COLUMN, ALTER ... TYPE).
std::string declared_type(const LogicalType& type);

// Appends the canonical text of the server's text value `pg` (already COPY-decoded).
// Throws Error(TypeMismatch) naming the value when canonical text cannot hold it.
void append_canonical(std::string& out, ReadKind kind, std::string_view pg);

// Pass-through rule: may the source hand this column's COPY text (as the server prints
// it in dpone's session settings, through to_json() for arrays) straight to a postgres
// sink? True when the staging column the sink declares for `type.type`
// (declared_type) reads that text as the same value the canonical text of the
// record-batch path gives: identity reads (ReadKind::Text) always; the rewriting reads
// only paired with the logical type map_pg_type gives them (t/f into boolean, float
// text into real/double, padded numeric into numeric(p,s), ISO dates and timestamps
// into date/timestamp(p), "+00" offsets into timestamptz, hex bytea into bytea).
// Any other pairing (a future mapping that changes the value's form) is false, and the
// source then offers record batches only.
bool copy_text_passes_through(const PgColumnType& type);

// --- COPY text format ---------------------------------------------------------------

// Appends `value` escaped for COPY text format (\\ \t \n \r).
void copy_escape_append(std::string& out, std::string_view value);

// Appends one cell of `type` in COPY text form (canonical -> server input, escaped).
// NULL is written by the caller as \N.
void append_copy_cell(std::string& out, const LogicalType& type, std::string_view cell);

// Splits one COPY text data line (with or without its trailing '\n') into fields,
// decoding escapes (\b \f \n \r \t \v \\ \NNN octal \xHH hex, other \c -> c). For each
// field calls on_field(std::string_view decoded, bool is_null). `scratch` is reused
// between calls. Returns the number of fields.
template <typename OnField>
size_t split_copy_line(std::string_view line, std::string& scratch, OnField&& on_field);

// Decodes one COPY text field (no tabs inside) into `out`; returns false for \N.
bool decode_copy_field(std::string_view field, std::string& out);

// --- helpers exposed for tests --------------------------------------------------------
std::string format_double(double v);
std::string format_float(float v);

template <typename OnField>
size_t split_copy_line(std::string_view line, std::string& scratch, OnField&& on_field) {
  if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
  size_t count = 0;
  size_t start = 0;
  while (true) {
    size_t tab = line.find('\t', start);
    std::string_view field =
        line.substr(start, tab == std::string_view::npos ? std::string_view::npos : tab - start);
    ++count;
    if (field.find('\\') == std::string_view::npos) {
      on_field(field, false);
    } else {
      scratch.clear();
      bool present = decode_copy_field(field, scratch);
      on_field(std::string_view(scratch), !present);
    }
    if (tab == std::string_view::npos) break;
    start = tab + 1;
  }
  return count;
}

// True when binary COPY data of this column can be staged on another PostgreSQL server:
// the column is read as itself (not through to_json) and its type is one dpone maps or a
// built-in type every server has (unconstrained numeric, interval, time with time zone,
// money, inet, cidr, macaddr); enums and other user-defined types are not.
bool copy_binary_passes_through(const PgColumnType& t);

}  // namespace dpone::pg
