#include "core/codecs/inference.hpp"

#include <cstdint>

#include "core/codecs/values.hpp"

namespace dpone {

namespace {

// Timestamps are probed at the widest precision; the column's precision is decided later
// from the fractional digits the values actually use.
const LogicalType kProbeTimestamp = LogicalType::timestamp(9, false);
const LogicalType kProbeTimestampTz = LogicalType::timestamp(9, true);
const LogicalType kInt64 = LogicalType::of(TypeId::Int64);
const LogicalType kFloat64 = LogicalType::of(TypeId::Float64);
const LogicalType kDate = LogicalType::of(TypeId::Date);

constexpr int kDefaultTimestampPrecision = 6;

std::string_view trim_blanks(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool is_true_or_false(std::string_view s) {
  s = trim_blanks(s);
  auto eq = [&](std::string_view lower) {
    if (s.size() != lower.size()) return false;
    for (size_t i = 0; i < s.size(); ++i) {
      char c = s[i];
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
      if (c != lower[i]) return false;
    }
    return true;
  };
  return eq("true") || eq("false");
}

// [+-]digits: an integer literal, whatever its size.
bool is_integer_literal(std::string_view s) {
  s = trim_blanks(s);
  if (!s.empty() && (s.front() == '+' || s.front() == '-')) s.remove_prefix(1);
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

// True when a number read from `s` would print back as `s` (blanks aside): no '+' sign,
// no leading zero before another digit ("00501", "007.5"), no "-0", no exponent ("1e5").
// Anything else is kept as text: a zip code or an account number must not change.
bool number_text_round_trips(std::string_view s) {
  s = trim_blanks(s);
  if (s.empty()) return true;
  if (s.front() == '+') return false;
  const bool negative = s.front() == '-';
  if (negative) s.remove_prefix(1);
  if (s.size() >= 2 && s[0] == '0' && s[1] >= '0' && s[1] <= '9') return false;
  if (negative && s.find_first_not_of("0.") == std::string_view::npos) return false;  // -0
  return s.find_first_of("eE") == std::string_view::npos;
}

// Fractional second digits of a canonical timestamp ("...:SS.123Z" -> 3).
int fraction_digits_of(std::string_view canonical) {
  auto dot = canonical.rfind('.');
  if (dot == std::string_view::npos) return 0;
  int n = 0;
  for (size_t i = dot + 1; i < canonical.size() && canonical[i] >= '0' && canonical[i] <= '9'; ++i)
    ++n;
  return n;
}

}  // namespace

TypeInferrer::TypeInferrer(std::vector<std::string> column_names) {
  columns_.reserve(column_names.size());
  for (auto& name : column_names) columns_.push_back({std::move(name)});
}

void TypeInferrer::add_column(std::string name) {
  columns_.push_back({std::move(name)});
}

int TypeInferrer::find(std::string_view name) const {
  for (size_t i = 0; i < columns_.size(); ++i)
    if (columns_[i].name == name) return static_cast<int>(i);
  return -1;
}

TypeInferrer::Kind TypeInferrer::join(Kind a, Kind b) {
  if (a == b || b == Kind::Unknown) return a;
  if (a == Kind::Unknown) return b;
  auto is = [&](Kind x, Kind y) { return (a == x && b == y) || (a == y && b == x); };
  if (is(Kind::Int, Kind::Float)) return Kind::Float;
  if (is(Kind::Date, Kind::Timestamp)) return Kind::Timestamp;
  if (is(Kind::Date, Kind::TimestampTz)) return Kind::TimestampTz;
  return Kind::String;
}

TypeInferrer::Kind TypeInferrer::classify_temporal(std::string_view text, int& fraction_digits) {
  fraction_digits = 0;
  // Cheap reject: every temporal form starts with four digits and a dash.
  std::string_view t = trim_blanks(text);
  if (t.size() < 10 || t[4] != '-') return Kind::String;
  if (is_valid_value(kDate, t, scratch_)) return Kind::Date;
  if (is_valid_value(kProbeTimestamp, t, scratch_)) {
    fraction_digits = fraction_digits_of(scratch_);
    return Kind::Timestamp;
  }
  // Valid as timestamptz but not as a plain timestamp: it carries an offset.
  if (is_valid_value(kProbeTimestampTz, t, scratch_)) {
    fraction_digits = fraction_digits_of(scratch_);
    return Kind::TimestampTz;
  }
  return Kind::String;
}

void TypeInferrer::merge(size_t col, Kind kind, int fraction_digits) {
  ColumnState& c = columns_.at(col);
  c.kind = join(c.kind, kind);
  if (fraction_digits > c.fraction_digits) c.fraction_digits = fraction_digits;
}

void TypeInferrer::observe(size_t col, std::string_view text, bool is_null) {
  if (is_null || columns_.at(col).kind == Kind::String) return;  // string absorbs everything
  int fraction_digits = 0;
  Kind kind;
  if (is_true_or_false(text))
    kind = Kind::Bool;
  else if (is_integer_literal(text) && !number_text_round_trips(text))
    kind = Kind::String;  // "00501", "+7": a number would not give the text back
  else if (is_valid_value(kInt64, text, scratch_))
    kind = Kind::Int;
  // An integer beyond int64 (a long id) would lose digits as float64: keep its text.
  else if (is_integer_literal(text))
    kind = Kind::String;
  else if (is_valid_value(kFloat64, text, scratch_))
    kind = number_text_round_trips(text) ? Kind::Float : Kind::String;
  else
    kind = classify_temporal(text, fraction_digits);
  merge(col, kind, fraction_digits);
}

void TypeInferrer::observe_json(size_t col, const nlohmann::json& value) {
  using value_t = nlohmann::json::value_t;
  if (columns_.at(col).kind == Kind::String) return;
  int fraction_digits = 0;
  Kind kind = Kind::String;
  switch (value.type()) {
    case value_t::null:
    case value_t::discarded:
      return;
    case value_t::boolean:
      kind = Kind::Bool;
      break;
    case value_t::number_integer:
      kind = Kind::Int;
      break;
    case value_t::number_unsigned:
      // Above int64's range the digits are kept exactly as a string rather than rounded.
      kind = value.get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX) ? Kind::Int : Kind::String;
      break;
    case value_t::number_float:
      kind = Kind::Float;
      break;
    case value_t::object:
    case value_t::array:
      kind = Kind::Json;
      break;
    case value_t::string:
      kind = classify_temporal(value.get_ref<const std::string&>(), fraction_digits);
      break;
    case value_t::binary:
      kind = Kind::String;
      break;
  }
  merge(col, kind, fraction_digits);
}

Schema TypeInferrer::result() const {
  Schema schema;
  schema.columns.reserve(columns_.size());
  for (const ColumnState& c : columns_) {
    LogicalType type;
    int precision = c.fraction_digits > kDefaultTimestampPrecision ? 9 : kDefaultTimestampPrecision;
    switch (c.kind) {
      case Kind::Bool:
        type = LogicalType::of(TypeId::Bool);
        break;
      case Kind::Int:
        type = LogicalType::of(TypeId::Int64);
        break;
      case Kind::Float:
        type = LogicalType::of(TypeId::Float64);
        break;
      case Kind::Date:
        type = LogicalType::of(TypeId::Date);
        break;
      case Kind::Timestamp:
        type = LogicalType::timestamp(precision, false);
        break;
      case Kind::TimestampTz:
        type = LogicalType::timestamp(precision, true);
        break;
      case Kind::Json:
        type = LogicalType::of(TypeId::Json);
        break;
      case Kind::Unknown:
      case Kind::String:
        type = LogicalType::of(TypeId::String);
        break;
    }
    schema.columns.push_back(Column{c.name, type, true});
  }
  return schema;
}

}  // namespace dpone
