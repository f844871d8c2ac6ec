// Type mapping between dpone logical types and ClickHouse column types, both ways, and
// the cell encodings on each edge (README.md "Type mapping").
//
// Where the ClickHouse type alone does not say which logical type a column holds (bytes,
// time and json land in String; a sub-second timestamp in Int64 or String under the
// `subsecond_timestamps` policy), the column carries the comment "dpone:<logical type>",
// so inspect() and the source read the logical type back unchanged and evolution sees no
// spurious change.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/types.hpp"

namespace dpone::ch {

// What a timestamp with a fractional part becomes on a server without DateTime64.
enum class SubsecondPolicy { Fail, Int64Micros, String };
std::optional<SubsecondPolicy> parse_subsecond_policy(std::string_view text);

// How a cell is rewritten on the way in.
enum class Encode {
  Plain,      // TSV-escaped text (COPY text: as is)
  Bool,       // COPY text t/f -> true/false (Enum8)
  Bytes,      // COPY text \\x<hex> -> raw bytes (String)
  Micros,     // a timestamp -> Int64 microseconds since 1970-01-01 UTC
  TsText,     // COPY text timestamp -> canonical text (String policy)
  DateRange,  // Date/DateTime: as is, but the year must be 1970..2105 (the server wraps others)
};

struct ColumnMapping {
  std::string type;     // full ClickHouse type, Nullable(...) included
  std::string comment;  // "dpone:<logical>" or empty
  Encode encode = Encode::Plain;
};

struct ServerFeatures {
  bool datetime64 = false;  // 20.1+
  bool exchange = false;    // EXCHANGE TABLES, 21.8+ on Atomic databases
  bool lightweight_delete = false;
  // The setting output_format_decimal_trailing_zeros exists (21.9+), and is 0 by default:
  // Decimal(12,2) 12.50 reads back as 12.5 unless a reader sets it.
  bool decimal_trailing_zeros_setting = false;
  std::string version;
};
ServerFeatures features_of(int major, int minor, std::string version);

// The column names of a `system.tables.sorting_key` that is a plain column list ("id, ts"
// on 18.16, "(id)" or "(id, ts)" on newer servers, backquoted where needed); empty when
// it is empty or holds an expression (no row identity).
std::vector<std::string> sorting_key_columns(const std::string& sorting_key);

// How the sink stores types ClickHouse cannot hold natively everywhere.
struct TypePolicy {
  SubsecondPolicy subsecond = SubsecondPolicy::Fail;
  // date and whole-second timestamps as canonical text (String) instead of Date/DateTime,
  // whose range is 1970..2105 (sink option `date_storage: string`).
  bool dates_as_string = false;
};

// Throws Error(TypeMismatch) for a sub-second timestamp under SubsecondPolicy::Fail on
// a server without DateTime64, naming the column and the choices.
ColumnMapping map_logical(const Column& column, const TypePolicy& policy,
                          const ServerFeatures& features, const std::string& where);
inline ColumnMapping map_logical(const Column& column, SubsecondPolicy policy,
                                 const ServerFeatures& features, const std::string& where) {
  return map_logical(column, TypePolicy{policy, false}, features, where);
}

struct ReadType {
  LogicalType type;
  bool nullable = false;
  bool known = true;
  std::string base;  // ClickHouse type without Nullable/LowCardinality
};
// Logical type of a ClickHouse column (its comment wins when it names one).
ReadType map_clickhouse(const std::string& ch_type, const std::string& comment);

// Timestamp text ("YYYY-MM-DD[ T]HH:MM:SS[.f][Z|+00]") to microseconds; false if malformed.
bool timestamp_to_micros(std::string_view text, int64_t& micros);
// Microseconds to canonical timestamp text ("...T...[.f]" + "Z" when tz).
std::string micros_to_timestamp(int64_t micros, bool tz);

// True when a date/timestamp text's year is within 1970..2105 (Date and DateTime range).
bool in_clickhouse_date_range(std::string_view text);

// One ClickHouse TSV cell (unescaped) to its canonical text for `read`.
std::string to_canonical(std::string_view value, const ReadType& read);

}  // namespace dpone::ch
