// Type inference for schemaless inputs (CSV, JSONL).
//
// Each column keeps the narrowest kind that holds every value seen so far; NULLs say
// nothing. For text cells (CSV) a value is classified as the first that fits of
//   bool (true/false only, any case) -> int64 -> float64 -> date -> timestamp / timestamptz
// (timestamptz when the value carries Z or a UTC offset), else string; an integer too
// large for int64 is string (float64 would drop digits). For JSON values the
// JSON kind decides (bool, integer -> int64, fraction/exponent -> float64, object/array ->
// json); JSON strings are only ever date, timestamp, timestamptz or string, never numbers
// ("123" stays a string: its producer chose to quote it).
// Joining two kinds: int64 + float64 -> float64; date + timestamp -> timestamp (a date is
// midnight); date + timestamptz -> timestamptz; anything else that differs -> string.
// Integers are always int64, never int16/int32, so files of one feed do not drift between
// widths. Timestamps get precision 6, or 9 when a value has non-zero digits past the 6th.
// Every column is nullable; a column that held only NULLs is string.
// Every inferred type accepts all observed values through canonicalize()/json_to_cell().
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/types.hpp"

namespace dpone {

class TypeInferrer {
 public:
  explicit TypeInferrer(std::vector<std::string> column_names);
  // Adds a column first seen in a later file or record; its index is num_columns() - 1.
  void add_column(std::string name);
  // Index of the column named `name`, or -1.
  int find(std::string_view name) const;
  size_t num_columns() const { return columns_.size(); }

  void observe(size_t col, std::string_view text, bool is_null);  // text cells (CSV)
  void observe_json(size_t col, const nlohmann::json& value);     // JSONL values
  Schema result() const;

 private:
  enum class Kind : uint8_t {
    Unknown,
    Bool,
    Int,
    Float,
    Date,
    Timestamp,
    TimestampTz,
    Json,
    String
  };
  struct ColumnState {
    std::string name;
    Kind kind = Kind::Unknown;
    int fraction_digits = 0;  // most fractional second digits a timestamp needed
  };
  static Kind join(Kind a, Kind b);
  // Classifies a text as date / timestamp / timestamptz / string (the temporal part of the
  // lattice, shared by text and JSON strings).
  Kind classify_temporal(std::string_view text, int& fraction_digits);
  void merge(size_t col, Kind kind, int fraction_digits);

  std::vector<ColumnState> columns_;
  std::string scratch_;
};

}  // namespace dpone
