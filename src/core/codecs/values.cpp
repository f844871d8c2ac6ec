#include "core/codecs/values.hpp"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>

#include <nlohmann/json.hpp>

#include "core/util/civil_date.hpp"
#include "core/util/number_text.hpp"

namespace dpone {

namespace {

// What went wrong, decided on the hot path; the message is built from it only on failure.
enum class Fault {
  None,
  Invalid,         // not a value of the type at all
  Overflow,        // outside the type's range
  IntegerDigits,   // decimal: more integer digits than precision - scale
  FractionDigits,  // more non-zero fractional digits than the type keeps
  UtcOffset,       // a plain timestamp carrying a UTC offset
  BadDate,         // well-formed but not a calendar day (2023-02-29, month 13)
  BadTime,         // well-formed but hour/minute/second out of range
  BadUtf8,         // string/varchar bytes that are not UTF-8
  TooLong,         // varchar(n) with more than n code points
};

inline bool is_digit(char c) {
  return static_cast<unsigned char>(c - '0') < 10;
}
inline char to_lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
}
inline int hex_value(char c) {
  if (is_digit(c)) return c - '0';
  char l = to_lower(c);
  return (l >= 'a' && l <= 'f') ? l - 'a' + 10 : -1;
}

// `lower_b` must be lower case.
bool iequals(std::string_view a, std::string_view lower_b) {
  if (a.size() != lower_b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (to_lower(a[i]) != lower_b[i]) return false;
  return true;
}

std::string_view trim_blanks(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Types whose text is kept byte for byte (no blank trimming).
bool keeps_text(TypeId id) {
  return id == TypeId::String || id == TypeId::Bytes || id == TypeId::Json;
}

// ---------------------------------------------------------------------------------- bool

Fault parse_bool(std::string_view t, std::string& out) {
  bool v = false;
  switch (t.size()) {
    case 1: {
      char c = to_lower(t[0]);
      if (c == 't' || c == 'y' || c == '1')
        v = true;
      else if (c == 'f' || c == 'n' || c == '0')
        v = false;
      else
        return Fault::Invalid;
      break;
    }
    case 2:
      if (!iequals(t, "no")) return Fault::Invalid;
      break;
    case 3:
      if (!iequals(t, "yes")) return Fault::Invalid;
      v = true;
      break;
    case 4:
      if (!iequals(t, "true")) return Fault::Invalid;
      v = true;
      break;
    case 5:
      if (!iequals(t, "false")) return Fault::Invalid;
      break;
    default:
      return Fault::Invalid;
  }
  out.assign(v ? "true" : "false");
  return Fault::None;
}

// ---------------------------------------------------------------------------------- ints

// std::from_chars accepts neither '+' nor blanks; a '+' is allowed once, before digits.
const char* skip_plus(const char* b, const char* e) {
  if (b != e && *b == '+') {
    ++b;
    if (b == e || *b == '-' || *b == '+') return nullptr;
  }
  return b;
}

Fault parse_int(std::string_view t, int64_t lo, int64_t hi, std::string& out) {
  const char* e = t.data() + t.size();
  const char* b = skip_plus(t.data(), e);
  if (b == nullptr || b == e) return Fault::Invalid;
  int64_t v = 0;
  auto [p, ec] = std::from_chars(b, e, v);
  // On overflow from_chars still consumes every digit, so trailing junk is told apart.
  if (p != e) return Fault::Invalid;
  if (ec == std::errc::result_out_of_range) return Fault::Overflow;
  if (ec != std::errc()) return Fault::Invalid;
  if (v < lo || v > hi) return Fault::Overflow;
  out.clear();
  append_number(out, v);
  return Fault::None;
}

// -------------------------------------------------------------------------------- floats

// Accepts what std::from_chars does (decimal and exponent forms, inf, infinity, nan,
// case-insensitive) plus a leading '+'. Underflow to zero is reported as overflow:
// the value does not fit the type either way.
template <typename F>
Fault parse_float(std::string_view t, std::string& out) {
  const char* e = t.data() + t.size();
  const char* b = skip_plus(t.data(), e);
  if (b == nullptr || b == e) return Fault::Invalid;
  F v = 0;
  auto [p, ec] = std::from_chars(b, e, v);
  if (p != e) return Fault::Invalid;
  if (ec == std::errc::result_out_of_range) return Fault::Overflow;
  if (ec != std::errc()) return Fault::Invalid;
  out.clear();
  if (std::isnan(v))
    out.assign("NaN");
  else if (std::isinf(v))
    out.assign(v < 0 ? "-Infinity" : "Infinity");
  else
    append_number(out, v);
  return Fault::None;
}

// ------------------------------------------------------------------------------- decimal

// [+-]digits[.digits][e[+-]digits]: exactly `scale` fractional digits out, never rounded.
Fault parse_decimal(std::string_view t, int precision, int scale, std::string& out) {
  const char* p = t.data();
  const char* e = p + t.size();
  bool neg = false;
  if (p != e && (*p == '+' || *p == '-')) {
    neg = *p == '-';
    ++p;
  }
  const char* ib = p;
  while (p != e && is_digit(*p)) ++p;
  const char* ie = p;
  const char* fb = p;
  const char* fe = p;
  if (p != e && *p == '.') {
    fb = ++p;
    while (p != e && is_digit(*p)) ++p;
    fe = p;
  }
  if (ib == ie && fb == fe) return Fault::Invalid;
  int64_t exp = 0;
  if (p != e && (*p == 'e' || *p == 'E')) {
    ++p;
    bool exp_neg = false;
    if (p != e && (*p == '+' || *p == '-')) {
      exp_neg = *p == '-';
      ++p;
    }
    if (p == e || !is_digit(*p)) return Fault::Invalid;
    // Saturates: an exponent this large fails the digit checks below anyway.
    for (; p != e && is_digit(*p); ++p)
      if (exp < 1'000'000'000) exp = exp * 10 + (*p - '0');
    if (exp_neg) exp = -exp;
  }
  if (p != e) return Fault::Invalid;

  const int64_t n_int = ie - ib;
  const int64_t total = n_int + (fe - fb);
  // Digit i of the significand (integer digits then fraction digits); zeros outside.
  auto digit = [&](int64_t i) -> char {
    if (i < 0 || i >= total) return '0';
    return i < n_int ? ib[i] : fb[i - n_int];
  };
  int64_t first_nz = -1;
  int64_t last_nz = -1;
  for (int64_t i = 0; i < total; ++i) {
    if (digit(i) != '0') {
      if (first_nz < 0) first_nz = i;
      last_nz = i;
    }
  }
  out.clear();
  if (first_nz < 0) {  // zero, whatever its sign or spelling
    out.push_back('0');
    if (scale > 0) {
      out.push_back('.');
      out.append(static_cast<size_t>(scale), '0');
    }
    return Fault::None;
  }
  const int64_t point = n_int + exp;  // the decimal point sits before digit `point`
  const int64_t int_digits = point > first_nz ? point - first_nz : 0;
  if (int_digits > precision - scale) return Fault::IntegerDigits;
  const int64_t frac_digits = last_nz >= point ? last_nz - point + 1 : 0;
  if (frac_digits > scale) return Fault::FractionDigits;
  if (neg) out.push_back('-');
  if (int_digits == 0) out.push_back('0');
  for (int64_t i = first_nz; i < point; ++i) out.push_back(digit(i));
  if (scale > 0) {
    out.push_back('.');
    for (int64_t k = 0; k < scale; ++k) out.push_back(digit(point + k));
  }
  return Fault::None;
}

// ---------------------------------------------------------------------------------- utf8

// Offset of the first byte that breaks UTF-8 (overlongs and surrogates included), or npos.
// Counts code points into `code_points`.
size_t utf8_check(std::string_view s, size_t& code_points) {
  const auto* begin = reinterpret_cast<const unsigned char*>(s.data());
  const auto* p = begin;
  const auto* e = begin + s.size();
  size_t count = 0;
  while (p < e) {
    if (e - p >= 8) {  // ASCII fast path, 8 bytes at a time
      uint64_t w;
      std::memcpy(&w, p, 8);
      if ((w & 0x8080808080808080ULL) == 0) {
        p += 8;
        count += 8;
        continue;
      }
    }
    unsigned char c = *p;
    if (c < 0x80) {
      ++p;
      ++count;
      continue;
    }
    int need = 0;
    unsigned char lo = 0x80;
    unsigned char hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      need = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      need = 2;
      if (c == 0xE0) lo = 0xA0;  // overlong
      if (c == 0xED) hi = 0x9F;  // surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      need = 3;
      if (c == 0xF0) lo = 0x90;  // overlong
      if (c == 0xF4) hi = 0x8F;  // above U+10FFFF
    } else {
      return static_cast<size_t>(p - begin);
    }
    if (e - p <= need || p[1] < lo || p[1] > hi) return static_cast<size_t>(p - begin);
    for (int k = 2; k <= need; ++k)
      if ((p[k] & 0xC0) != 0x80) return static_cast<size_t>(p - begin);
    p += need + 1;
    ++count;
  }
  code_points = count;
  return std::string_view::npos;
}

// ------------------------------------------------------------------------- date and time

struct Civil {
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  const char* frac_begin = nullptr;  // fractional second digits, when present
  const char* frac_end = nullptr;
  bool has_offset = false;
  int offset_seconds = 0;  // east of UTC
};

bool is_leap(int y) {
  return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int days_in_month(int y, int m) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : kDays[m - 1];
}

bool digits(const char* p, int n, int& v) {
  v = 0;
  for (int i = 0; i < n; ++i) {
    if (!is_digit(p[i])) return false;
    v = v * 10 + (p[i] - '0');
  }
  return true;
}

// YYYY-MM-DD
Fault parse_date_part(const char*& p, const char* e, Civil& c) {
  if (e - p < 10 || p[4] != '-' || p[7] != '-') return Fault::Invalid;
  if (!digits(p, 4, c.year) || !digits(p + 5, 2, c.month) || !digits(p + 8, 2, c.day))
    return Fault::Invalid;
  if (c.year < 1 || c.month < 1 || c.month > 12 || c.day < 1 ||
      c.day > days_in_month(c.year, c.month))
    return Fault::BadDate;
  p += 10;
  return Fault::None;
}

// HH:MM[:SS[.fraction]]
Fault parse_time_part(const char*& p, const char* e, Civil& c) {
  if (e - p < 5 || p[2] != ':' || !digits(p, 2, c.hour) || !digits(p + 3, 2, c.minute))
    return Fault::Invalid;
  p += 5;
  c.second = 0;
  if (p != e && *p == ':') {
    if (e - p < 3 || !digits(p + 1, 2, c.second)) return Fault::Invalid;
    p += 3;
    if (p != e && (*p == '.' || *p == ',')) {
      const char* fb = ++p;
      while (p != e && is_digit(*p)) ++p;
      if (p == fb) return Fault::Invalid;
      c.frac_begin = fb;
      c.frac_end = p;
    }
  }
  if (c.hour > 23 || c.minute > 59 || c.second > 59) return Fault::BadTime;
  return Fault::None;
}

// [ ](Z | [+-]hh | [+-]hhmm | [+-]hh:mm)
Fault parse_offset(const char*& p, const char* e, Civil& c) {
  if (p != e && *p == ' ') ++p;
  if (p == e) return Fault::Invalid;
  if (*p == 'Z' || *p == 'z') {
    ++p;
    c.has_offset = true;
    c.offset_seconds = 0;
    return Fault::None;
  }
  if (*p != '+' && *p != '-') return Fault::Invalid;
  int sign = *p == '-' ? -1 : 1;
  ++p;
  int hh = 0;
  int mm = 0;
  if (e - p < 2 || !digits(p, 2, hh)) return Fault::Invalid;
  p += 2;
  if (p != e && *p == ':') {
    if (e - p < 3 || !digits(p + 1, 2, mm)) return Fault::Invalid;
    p += 3;
  } else if (e - p >= 2 && is_digit(p[0])) {
    if (!digits(p, 2, mm)) return Fault::Invalid;
    p += 2;
  }
  if (hh > 23 || mm > 59) return Fault::BadTime;
  c.has_offset = true;
  c.offset_seconds = sign * (hh * 3600 + mm * 60);
  return Fault::None;
}

// YYYY-MM-DD[(T|t| )HH:MM[:SS[.fraction]]][offset]. A date alone is midnight.
Fault parse_timestamp_text(std::string_view t, Civil& c) {
  const char* p = t.data();
  const char* e = p + t.size();
  if (Fault f = parse_date_part(p, e, c); f != Fault::None) return f;
  if (p == e) return Fault::None;
  if (*p != 'T' && *p != 't' && *p != ' ') return Fault::Invalid;
  ++p;
  if (Fault f = parse_time_part(p, e, c); f != Fault::None) return f;
  if (p != e) {
    if (Fault f = parse_offset(p, e, c); f != Fault::None) return f;
  }
  return p == e ? Fault::None : Fault::Invalid;
}

// Moves c's local time to UTC by its offset; fails when the result leaves years 1-9999.
Fault to_utc(Civil& c) {
  if (c.offset_seconds == 0) return Fault::None;
  int64_t secs = days_from_civil(c.year, static_cast<unsigned>(c.month),
                                 static_cast<unsigned>(c.day)) * 86400 + c.hour * 3600 + c.minute * 60 +
                 c.second - c.offset_seconds;
  int64_t days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400;
  int64_t rem = secs - days * 86400;
  const CivilDate date = civil_from_days(days);
  c.year = static_cast<int>(date.year);
  c.month = static_cast<int>(date.month);
  c.day = static_cast<int>(date.day);
  c.hour = static_cast<int>(rem / 3600);
  c.minute = static_cast<int>(rem % 3600 / 60);
  c.second = static_cast<int>(rem % 60);
  c.offset_seconds = 0;
  return (c.year < 1 || c.year > 9999) ? Fault::Overflow : Fault::None;
}

// ".fff" with the fraction's trailing zeros dropped; digits past `precision` must be zeros.
Fault append_fraction(std::string& out, const Civil& c, int precision) {
  if (c.frac_begin == nullptr) return Fault::None;
  const int64_t n = c.frac_end - c.frac_begin;
  for (int64_t i = precision; i < n; ++i)
    if (c.frac_begin[i] != '0') return Fault::FractionDigits;
  int64_t keep = n < precision ? n : precision;
  while (keep > 0 && c.frac_begin[keep - 1] == '0') --keep;
  if (keep > 0) {
    out.push_back('.');
    out.append(c.frac_begin, static_cast<size_t>(keep));
  }
  return Fault::None;
}

void append_date(std::string& out, const Civil& c) {
  append_padded(out, c.year, 4);
  out.push_back('-');
  append_padded(out, c.month, 2);
  out.push_back('-');
  append_padded(out, c.day, 2);
}

void append_hms(std::string& out, const Civil& c) {
  append_padded(out, c.hour, 2);
  out.push_back(':');
  append_padded(out, c.minute, 2);
  out.push_back(':');
  append_padded(out, c.second, 2);
}

Fault parse_date(std::string_view t, std::string& out) {
  Civil c;
  const char* p = t.data();
  const char* e = p + t.size();
  if (Fault f = parse_date_part(p, e, c); f != Fault::None) return f;
  if (p != e) return Fault::Invalid;
  out.clear();
  append_date(out, c);
  return Fault::None;
}

// Times keep microseconds, like the timestamps of most systems dpone talks to.
constexpr int kTimePrecision = 6;

Fault parse_time(std::string_view t, std::string& out) {
  Civil c;
  const char* p = t.data();
  const char* e = p + t.size();
  if (Fault f = parse_time_part(p, e, c); f != Fault::None) return f;
  if (p != e) return Fault::Invalid;
  out.clear();
  append_hms(out, c);
  return append_fraction(out, c, kTimePrecision);
}

Fault parse_timestamp(std::string_view t, const LogicalType& type, std::string& out) {
  Civil c;
  if (Fault f = parse_timestamp_text(t, c); f != Fault::None) return f;
  if (c.has_offset && !type.tz) return Fault::UtcOffset;
  if (type.tz) {
    if (Fault f = to_utc(c); f != Fault::None) return f;
  }
  out.clear();
  append_date(out, c);
  out.push_back('T');
  append_hms(out, c);
  if (Fault f = append_fraction(out, c, type.precision); f != Fault::None) return f;
  if (type.tz) out.push_back('Z');
  return Fault::None;
}

// ---------------------------------------------------------------------------- json, uuid

Fault parse_json(std::string_view t, std::string& out) {
  if (!nlohmann::json::accept(t.begin(), t.end())) return Fault::Invalid;
  out.assign(t);
  return Fault::None;
}

// 8-4-4-4-12 hex digits, or 32 hex digits, optionally in braces; out lower case, dashed.
Fault parse_uuid(std::string_view t, std::string& out) {
  if (t.size() == 38 && t.front() == '{' && t.back() == '}') t = t.substr(1, 36);
  char hex[32];
  size_t n = 0;
  if (t.size() == 36) {
    for (size_t i = 0; i < 36; ++i) {
      if (i == 8 || i == 13 || i == 18 || i == 23) {
        if (t[i] != '-') return Fault::Invalid;
      } else {
        if (hex_value(t[i]) < 0) return Fault::Invalid;
        hex[n++] = to_lower(t[i]);
      }
    }
  } else if (t.size() == 32) {
    for (char ch : t) {
      if (hex_value(ch) < 0) return Fault::Invalid;
      hex[n++] = to_lower(ch);
    }
  } else {
    return Fault::Invalid;
  }
  out.clear();
  out.append(hex, 8).push_back('-');
  out.append(hex + 8, 4).push_back('-');
  out.append(hex + 12, 4).push_back('-');
  out.append(hex + 16, 4).push_back('-');
  out.append(hex + 20, 12);
  return Fault::None;
}

// ------------------------------------------------------------------------------ dispatch

Fault canonical(const LogicalType& type, std::string_view text, std::string& out) {
  switch (type.id) {
    case TypeId::String: {
      size_t code_points = 0;
      if (utf8_check(text, code_points) != std::string_view::npos) return Fault::BadUtf8;
      if (type.length > 0 && code_points > static_cast<size_t>(type.length)) return Fault::TooLong;
      out.assign(text);
      return Fault::None;
    }
    case TypeId::Bytes:
      out.assign(text);
      return Fault::None;
    case TypeId::Json:
      return parse_json(text, out);
    default:
      break;
  }
  std::string_view t = trim_blanks(text);
  switch (type.id) {
    case TypeId::Bool:
      return parse_bool(t, out);
    case TypeId::Int16:
      return parse_int(t, INT16_MIN, INT16_MAX, out);
    case TypeId::Int32:
      return parse_int(t, INT32_MIN, INT32_MAX, out);
    case TypeId::Int64:
      return parse_int(t, INT64_MIN, INT64_MAX, out);
    case TypeId::Float32:
      return parse_float<float>(t, out);
    case TypeId::Float64:
      return parse_float<double>(t, out);
    case TypeId::Decimal:
      return parse_decimal(t, type.precision, type.scale, out);
    case TypeId::Date:
      return parse_date(t, out);
    case TypeId::Time:
      return parse_time(t, out);
    case TypeId::Timestamp:
      return parse_timestamp(t, type, out);
    case TypeId::Uuid:
      return parse_uuid(t, out);
    case TypeId::String:
    case TypeId::Bytes:
    case TypeId::Json:
      break;
  }
  return Fault::Invalid;
}

std::string shorten(std::string_view text) {
  constexpr size_t kMax = 60;
  bool cut = text.size() > kMax;
  if (cut) {
    size_t n = kMax;
    while (n > 0 && (static_cast<unsigned char>(text[n]) & 0xC0) == 0x80) --n;
    text = text.substr(0, n);
  }
  std::string out;
  out.reserve(text.size() + 8);
  for (char ch : text) {
    auto u = static_cast<unsigned char>(ch);
    if (ch == '\n')
      out += "\\n";
    else if (ch == '\r')
      out += "\\r";
    else if (ch == '\t')
      out += "\\t";
    else if (u < 0x20 || u == 0x7f) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 15]);
    } else {
      out.push_back(ch);
    }
  }
  if (cut) out += "...";
  return out;
}

std::string expected_form(const LogicalType& type) {
  switch (type.id) {
    case TypeId::Bool:
      return " (expected true/false, t/f, yes/no, y/n or 1/0)";
    case TypeId::Date:
      return " (expected YYYY-MM-DD)";
    case TypeId::Time:
      return " (expected HH:MM[:SS[.fraction]])";
    case TypeId::Timestamp:
      return type.tz ? " (expected YYYY-MM-DD[T| ]HH:MM[:SS[.fraction]][Z|+hh|+hhmm|+hh:mm])"
                     : " (expected YYYY-MM-DD[T| ]HH:MM[:SS[.fraction]])";
    case TypeId::Uuid:
      return " (expected 32 hexadecimal digits, as 8-4-4-4-12)";
    default:
      return "";
  }
}

ValueError describe(Fault fault, const LogicalType& type, std::string_view text) {
  const std::string name = type.to_string();
  if (!keeps_text(type.id)) text = trim_blanks(text);
  switch (fault) {
    case Fault::Invalid:
      if (type.id == TypeId::Json)
        return {ErrorCode::TypeMismatch, quote_value(text) + " is not valid JSON"};
      return {ErrorCode::TypeMismatch,
              quote_value(text) + " is not a valid " + name + expected_form(type)};
    case Fault::Overflow:
      if (type.id == TypeId::Timestamp)
        return {
            ErrorCode::TypeOverflow,
            "value " + quote_value(text) + " falls outside years 0001-9999 once converted to UTC"};
      return {ErrorCode::TypeOverflow, "value " + shorten(text) + " does not fit " + name};
    case Fault::IntegerDigits:
      return {ErrorCode::TypeOverflow,
              "value " + shorten(text) + " does not fit " + name + " (at most " +
                  std::to_string(type.precision - type.scale) + " integer digits)"};
    case Fault::FractionDigits: {
      int kept = type.id == TypeId::Decimal ? type.scale
                 : type.id == TypeId::Time  ? kTimePrecision
                                            : type.precision;
      std::string what =
          type.id == TypeId::Decimal ? "fractional digits" : "fractional second digits";
      return {ErrorCode::TypeOverflow, "value " + quote_value(text) + " does not fit " + name +
                                           ": it has more than " + std::to_string(kept) + " " +
                                           what + " that are not zero (dpone never rounds)"};
    }
    case Fault::UtcOffset:
      return {ErrorCode::TypeMismatch,
              quote_value(text) + " has a UTC offset but the column is " + name +
                  " (without time zone); declare it as timestamptz to keep the instant"};
    case Fault::BadDate:
      return {ErrorCode::TypeMismatch,
              quote_value(text) + " is not a valid " + name + " (no such day in the calendar)"};
    case Fault::BadTime:
      return {ErrorCode::TypeMismatch, quote_value(text) + " is not a valid " + name +
                                           " (hour, minute, second or offset out of range)"};
    case Fault::BadUtf8: {
      size_t unused = 0;
      size_t at = utf8_check(text, unused);
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02x", static_cast<unsigned char>(text[at]));
      return {ErrorCode::TypeMismatch, "value " + quote_value(text) + " is not valid UTF-8 (byte " +
                                           hex + " at offset " + std::to_string(at) +
                                           "); declare the column as bytes or fix the encoding"};
    }
    case Fault::TooLong: {
      size_t code_points = 0;
      utf8_check(text, code_points);
      return {ErrorCode::TypeOverflow, "value " + quote_value(text) + " has " +
                                           std::to_string(code_points) +
                                           " characters and does not fit " + name};
    }
    case Fault::None:
      break;
  }
  return {ErrorCode::Internal, "no fault"};
}

}  // namespace

std::optional<ValueError> canonicalize(const LogicalType& type, std::string_view text,
                                       std::string& out) {
  Fault fault = canonical(type, text, out);
  if (fault == Fault::None) return std::nullopt;
  return describe(fault, type, text);
}

bool is_valid_value(const LogicalType& type, std::string_view text, std::string& out) {
  return canonical(type, text, out) == Fault::None;
}

std::string quote_value(std::string_view text) {
  return "'" + shorten(text) + "'";
}

}  // namespace dpone
