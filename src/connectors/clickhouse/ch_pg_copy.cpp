#include "connectors/clickhouse/ch_pg_copy.hpp"

#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <type_traits>

#include "connectors/clickhouse/ch_client.hpp"
#include "core/errors.hpp"
#include "core/util/civil_date.hpp"
#include "core/util/number_text.hpp"

namespace dpone::ch {

// --- pg_copy_text ----------------------------------------------------------------------

// COPY text escapes tabs and newlines inside values, so raw '\t' and '\n' delimit.
void CopyTextTranscoder::feed(std::string_view in, std::string& out) {
  const char* data = in.data();
  const char* end = data + in.size();
  const char* p = data;
  while (p < end) {
    const char* nl = static_cast<const char*>(std::memchr(p, '\n', static_cast<size_t>(end - p)));
    const char* row_end = nl ? nl : end;
    const char* f = p;
    while (true) {
      const char* tab =
          static_cast<const char*>(std::memchr(f, '\t', static_cast<size_t>(row_end - f)));
      const char* fe = tab ? tab : row_end;
      if (fe > f || tab) mid_row_ = true;
      if (current() == Encode::Plain) {
        out.append(f, static_cast<size_t>(fe - f));
      } else {
        pending_.append(f, static_cast<size_t>(fe - f));
      }
      if (!tab) break;
      flush_field(out);
      out.push_back('\t');
      ++column_;
      f = tab + 1;
    }
    if (!nl) break;
    flush_field(out);
    out.push_back('\n');
    column_ = 0;
    ++rows_;
    mid_row_ = false;
    p = nl + 1;
  }
}

void CopyTextTranscoder::finish(std::string& out) {
  if (mid_row_) {
    flush_field(out);
    out.push_back('\n');
    ++rows_;
    column_ = 0;
    mid_row_ = false;
  }
}

void CopyTextTranscoder::flush_field(std::string& out) {
  Encode e = current();
  if (e == Encode::Plain) return;
  std::string_view v = pending_;
  if (v == "\\N") {
    out.append(v);
  } else {
    switch (e) {
      case Encode::Bool:
        out.append(v == "t" ? "true" : v == "f" ? "false" : v);
        break;
      case Encode::Bytes: {
        // COPY text shows bytea as \\x<hex> (the backslash itself escaped).
        std::string_view hex = v;
        if (hex.substr(0, 3) == "\\\\x")
          hex.remove_prefix(3);
        else
          bad("bytea", v);
        std::string raw;
        raw.reserve(hex.size() / 2);
        for (size_t i = 0; i + 1 < hex.size(); i += 2) {
          auto nib = [&](char h) -> int {
            if (h >= '0' && h <= '9') return h - '0';
            if (h >= 'a' && h <= 'f') return h - 'a' + 10;
            if (h >= 'A' && h <= 'F') return h - 'A' + 10;
            bad("bytea", v);
          };
          raw.push_back(static_cast<char>(nib(hex[i]) * 16 + nib(hex[i + 1])));
        }
        tsv_escape_append(out, raw);
        break;
      }
      case Encode::Micros: {
        int64_t m = 0;
        if (!timestamp_to_micros(v, m)) bad("timestamp", v);
        out.append(std::to_string(m));
        break;
      }
      case Encode::TsText: {
        int64_t m = 0;
        if (!timestamp_to_micros(v, m)) bad("timestamp", v);
        bool tz = v.size() > 19 && (v.back() == 'Z' || v.find('+', 19) != std::string_view::npos);
        out.append(micros_to_timestamp(m, tz));
        break;
      }
      case Encode::DateRange:
        if (!in_clickhouse_date_range(v)) out_of_range(v);
        out.append(v);
        break;
      case Encode::Plain:
        break;
    }
  }
  pending_.clear();
}

void CopyTextTranscoder::out_of_range(std::string_view v) const {
  throw Error(ErrorCode::TypeOverflow,
              fmt::format("pg_copy_text row {}, column {}: '{}' is outside the range of ClickHouse "
                          "Date/DateTime (1970-01-01 to 2105-12-31); the server would wrap it",
                          rows_ + 1, column_ + 1, std::string(v.substr(0, 60))),
              "filter or fix the value at the source, or load the column as text");
}

void CopyTextTranscoder::bad(const char* what, std::string_view v) const {
  throw Error(ErrorCode::TypeMismatch,
              fmt::format("pg_copy_text row {}, column {}: '{}' is not a {} value dpone can "
                          "load into ClickHouse",
                          rows_ + 1, column_ + 1, std::string(v.substr(0, 60)), what),
              "check the source column type");
}

// --- rendering binary values as PostgreSQL prints them ------------------------------------

namespace {

constexpr int64_t kUsecsPerDay = 86400LL * 1000000;
constexpr int64_t kDays1970To2000 = 10957;
constexpr int64_t kMicros1970To2000 = kDays1970To2000 * kUsecsPerDay;
constexpr std::string_view kSignature("PGCOPY\n\377\r\n\0", 11);
constexpr size_t kHeaderSize = 11 + 4 + 4;  // signature, flags, extension length

bool starts_with(std::string_view s, std::string_view p) {
  return s.substr(0, p.size()) == p;
}

const char* wire_name(PgWire type) {
  static const char* const kNames[] = {
      "boolean",   "smallint",    "integer",  "bigint", "real", "double precision",
      "numeric",   "text",        "bytea",    "date",   "time", "time with time zone",
      "timestamp", "timestamptz", "interval", "uuid",   "json", "jsonb",
      "money",     "inet",        "cidr",     "macaddr"};
  return kNames[static_cast<int>(type)];
}

[[noreturn]] void invalid(PgWire type, std::string_view value) {
  throw Error(ErrorCode::TypeMismatch,
              fmt::format("a binary COPY value of {} bytes is not a valid {}", value.size(),
                          wire_name(type)),
              "the source's wire types do not match its data; re-run, and report it if it "
              "persists");
}

uint64_t be(const char* p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}
int16_t be16(const char* p) {
  return static_cast<int16_t>(be(p, 2));
}
int32_t be32(const char* p) {
  return static_cast<int32_t>(be(p, 4));
}
int64_t be64(const char* p) {
  return static_cast<int64_t>(be(p, 8));
}

void append2(std::string& out, int64_t v) {
  out.push_back(static_cast<char>('0' + v / 10));
  out.push_back(static_cast<char>('0' + v % 10));
}

// Fractional seconds as PostgreSQL prints them: ".ffffff" without trailing zeros, nothing
// when zero.
void append_fraction(std::string& out, int64_t usec) {
  if (usec == 0) return;
  char buf[7];
  for (int i = 5; i >= 0; --i) {
    buf[i] = static_cast<char>('0' + usec % 10);
    usec /= 10;
  }
  int n = 6;
  while (buf[n - 1] == '0') --n;
  out.push_back('.');
  out.append(buf, static_cast<size_t>(n));
}

// "YYYY-MM-DD" of a day counted from 1970-01-01; returns the proleptic year (<= 0: BC,
// printed as 1 - year, the caller appends " BC"). Consecutive rows mostly share their
// day: the last one is remembered.
int64_t append_date_1970(std::string& out, int64_t days) {
  thread_local int64_t cached_days = std::numeric_limits<int64_t>::min();
  thread_local int64_t cached_year = 0;
  thread_local char cached[10];
  if (days == cached_days) {
    out.append(cached, 10);
    return cached_year;
  }
  const auto [y, m, d] = civil_from_days(days);
  const int64_t shown = y > 0 ? y : 1 - y;
  if (shown > 9999) {
    append_padded(out, shown, 4);
    out.push_back('-');
    append2(out, m);
    out.push_back('-');
    append2(out, d);
    return y;
  }
  char* b = cached;
  b[0] = static_cast<char>('0' + shown / 1000);
  b[1] = static_cast<char>('0' + shown / 100 % 10);
  b[2] = static_cast<char>('0' + shown / 10 % 10);
  b[3] = static_cast<char>('0' + shown % 10);
  b[4] = '-';
  b[5] = static_cast<char>('0' + m / 10);
  b[6] = static_cast<char>('0' + m % 10);
  b[7] = '-';
  b[8] = static_cast<char>('0' + d / 10);
  b[9] = static_cast<char>('0' + d % 10);
  cached_days = days;
  cached_year = y;
  out.append(cached, 10);
  return y;
}

void append_time_of_day(std::string& out, int64_t usec) {
  const int64_t secs = usec / 1000000;
  const int64_t h = secs / 3600, mi = secs / 60 % 60, se = secs % 60;
  const char b[8] = {static_cast<char>('0' + h / 10),  static_cast<char>('0' + h % 10),  ':',
                     static_cast<char>('0' + mi / 10), static_cast<char>('0' + mi % 10), ':',
                     static_cast<char>('0' + se / 10), static_cast<char>('0' + se % 10)};
  out.append(b, 8);
  append_fraction(out, usec % 1000000);
}

// EncodeTimezone: seconds WEST of UTC; "+HH", "+HH:MM" or "+HH:MM:SS".
void append_zone(std::string& out, int32_t tz) {
  int sec = std::abs(tz);
  int min = sec / 60;
  sec -= min * 60;
  int hour = min / 60;
  min -= hour * 60;
  out.push_back(tz <= 0 ? '+' : '-');
  append_padded(out, hour, 2);
  if (sec != 0) {
    out.push_back(':');
    append2(out, min);
    out.push_back(':');
    append2(out, sec);
  } else if (min != 0) {
    out.push_back(':');
    append2(out, min);
  }
}

// Returns the proleptic year (0 for infinity).
int64_t append_timestamp(std::string& out, int64_t v, bool tz) {
  if (v == std::numeric_limits<int64_t>::max()) {
    out.append("infinity");
    return 0;
  }
  if (v == std::numeric_limits<int64_t>::min()) {
    out.append("-infinity");
    return 0;
  }
  int64_t days = v / kUsecsPerDay, rem = v % kUsecsPerDay;
  if (rem < 0) {
    rem += kUsecsPerDay;
    --days;
  }
  int64_t year = append_date_1970(out, days + kDays1970To2000);
  out.push_back(' ');
  append_time_of_day(out, rem);
  if (tz) out.append("+00");  // TimeZone = UTC (pg_connection.cpp)
  if (year <= 0) out.append(" BC");
  return year;
}

// Date: returns the proleptic year (0 for infinity).
int64_t append_date(std::string& out, int32_t d) {
  if (d == std::numeric_limits<int32_t>::max()) {
    out.append("infinity");
    return 0;
  }
  if (d == std::numeric_limits<int32_t>::min()) {
    out.append("-infinity");
    return 0;
  }
  int64_t year = append_date_1970(out, int64_t{d} + kDays1970To2000);
  if (year <= 0) out.append(" BC");
  return year;
}

// True when digits * 10^k equals odd * 2^j exactly (odd < 2^56).
bool decimal_equals(uint64_t digits, int k, uint64_t odd, int j) {
  if (digits == 0) return false;
  int a = 0;
  while ((digits & 1) == 0) {
    digits >>= 1;
    ++a;
  }
  if (a + k != j) return false;
  unsigned __int128 lhs = digits, rhs = odd;
  for (int i = 0; i < k; ++i) {
    lhs *= 5;
    if (lhs > rhs) return false;
  }
  for (int i = 0; i < -k; ++i) {
    rhs *= 5;
    if (rhs > lhs) return false;
  }
  return lhs == rhs;
}

// The decimal digits and exponent of to_chars' scientific output "[-]d[.ddd]e[+-]XX".
struct Sci {
  char digits[24];
  size_t nd = 0;
  int exp = 0;
  uint64_t value = 0;  // the digits as an integer
};
Sci parse_sci(const char* begin, const char* end) {
  Sci s;
  const char* p = begin;
  if (*p == '-') ++p;
  for (; p < end && *p != 'e'; ++p) {
    if (*p == '.') continue;
    s.digits[s.nd++] = *p;
  }
  while (s.nd > 1 && s.digits[s.nd - 1] == '0') --s.nd;
  for (size_t i = 0; i < s.nd; ++i)
    s.value = s.value * 10 + static_cast<uint64_t>(s.digits[i] - '0');
  ++p;  // 'e'
  const bool neg = *p == '-';
  std::from_chars(p + 1, end, s.exp);
  if (neg) s.exp = -s.exp;
  return s;
}

// float4out/float8out with extra_float_digits > 0 (PostgreSQL's Ryu): the shortest digits
// that read back as the value, fixed notation when the decimal exponent is in
// [-4, upper), else d.ddde+XX.
template <typename T>
void append_pg_float(std::string& out, T v, int upper) {
  if (std::isnan(v)) {
    out.append("NaN");
    return;
  }
  if (std::isinf(v)) {
    out.append(v > 0 ? "Infinity" : "-Infinity");
    return;
  }
  if (v == 0) {
    out.append(std::signbit(v) ? "-0" : "0");
    return;
  }
  constexpr bool kFloat = std::is_same_v<T, float>;
  constexpr int kFraction = kFloat ? 23 : 52;
  constexpr int kBias = kFloat ? 150 : 1075;  // exponent bias + fraction bits
  uint64_t bits = 0;
  if constexpr (kFloat) {
    uint32_t b32;
    std::memcpy(&b32, &v, 4);
    bits = b32;
  } else {
    std::memcpy(&bits, &v, 8);
  }
  const uint64_t fraction = bits & ((uint64_t{1} << kFraction) - 1);
  const int biased = static_cast<int>((bits >> kFraction) & (kFloat ? 0xff : 0x7ff));
  const uint64_t m = biased == 0 ? fraction : fraction | (uint64_t{1} << kFraction);
  const int q = biased == 0 ? 1 - kBias : biased - kBias;
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
  Sci s = parse_sci(buf, r.ptr);
  // PostgreSQL's Ryu excludes the interval bounds (STRICTLY_SHORTEST is off): a shortest
  // decimal lying exactly halfway to a neighbour is not taken; more digits are printed.
  auto is_bound = [&](const Sci& d) {
    const int k = d.exp - static_cast<int>(d.nd) + 1;
    const bool narrow_below = fraction == 0 && biased > 1;
    return decimal_equals(d.value, k, 2 * m + 1, q - 1) ||
           (narrow_below ? decimal_equals(d.value, k, 4 * m - 1, q - 2)
                         : decimal_equals(d.value, k, 2 * m - 1, q - 1));
  };
  if (is_bound(s)) {
    for (int precision = static_cast<int>(s.nd); precision < 20; ++precision) {
      r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific, precision);
      Sci longer = parse_sci(buf, r.ptr);
      if (is_bound(longer)) continue;
      T back = 0;
      std::from_chars(buf, r.ptr, back);
      if (back == v) {
        s = longer;
        break;
      }
    }
  }
  if (v < 0) out.push_back('-');
  const char* digits = s.digits;
  const size_t nd = s.nd;
  const int exp = s.exp;
  if (exp >= -4 && exp < upper) {
    if (exp < 0) {
      out.append("0.");
      out.append(static_cast<size_t>(-exp - 1), '0');
      out.append(digits, nd);
    } else if (nd <= static_cast<size_t>(exp) + 1) {
      out.append(digits, nd);
      out.append(static_cast<size_t>(exp) + 1 - nd, '0');
    } else {
      out.append(digits, static_cast<size_t>(exp) + 1);
      out.push_back('.');
      out.append(digits + exp + 1, nd - static_cast<size_t>(exp) - 1);
    }
    return;
  }
  out.push_back(digits[0]);
  if (nd > 1) {
    out.push_back('.');
    out.append(digits + 1, nd - 1);
  }
  out.push_back('e');
  out.push_back(exp < 0 ? '-' : '+');
  append_padded(out, std::abs(exp), 2);
}

// numeric_send: ndigits, weight, sign, dscale, then base-10000 digits (get_str_from_var).
void append_numeric(std::string& out, std::string_view v) {
  if (v.size() < 8) invalid(PgWire::Numeric, v);
  const char* p = v.data();
  const int ndigits = be16(p);
  const int weight = be16(p + 2);
  const uint16_t sign = static_cast<uint16_t>(be(p + 4, 2));
  const int dscale = be16(p + 6);
  if (ndigits < 0 || v.size() != 8 + 2 * static_cast<size_t>(ndigits) || dscale < 0)
    invalid(PgWire::Numeric, v);
  if (sign == 0xC000) {
    out.append("NaN");
    return;
  }
  if (sign == 0xD000) {
    out.append("Infinity");
    return;
  }
  if (sign == 0xF000) {
    out.append("-Infinity");
    return;
  }
  if (sign != 0 && sign != 0x4000) invalid(PgWire::Numeric, v);
  auto digit = [&](int d) -> int { return d >= 0 && d < ndigits ? be16(p + 8 + 2 * d) : 0; };
  if (sign == 0x4000) out.push_back('-');
  int d;
  if (weight < 0) {
    d = weight + 1;
    out.push_back('0');
  } else {
    for (d = 0; d <= weight; ++d) {
      int dig = digit(d);
      if (dig < 0 || dig > 9999) invalid(PgWire::Numeric, v);
      if (d == 0) {
        append_number(out, dig);
      } else {
        append_padded(out, dig, 4);
      }
    }
  }
  if (dscale > 0) {
    out.push_back('.');
    int left = dscale;
    for (; left > 0; ++d) {
      int dig = digit(d);
      if (dig < 0 || dig > 9999) invalid(PgWire::Numeric, v);
      char four[4] = {static_cast<char>('0' + dig / 1000), static_cast<char>('0' + dig / 100 % 10),
                      static_cast<char>('0' + dig / 10 % 10), static_cast<char>('0' + dig % 10)};
      out.append(four, static_cast<size_t>(std::min(left, 4)));
      left -= 4;
    }
  }
}

// AddPostgresIntPart (IntervalStyle postgres).
void interval_part(std::string& out, int64_t value, const char* units, bool& is_zero,
                   bool& is_before) {
  if (value == 0) return;
  if (!is_zero) out.push_back(' ');
  if (is_before && value > 0) out.push_back('+');
  append_number(out, value);
  out.push_back(' ');
  out.append(units);
  if (value != 1) out.push_back('s');
  is_before = value < 0;
  is_zero = false;
}

void append_interval(std::string& out, std::string_view v) {
  if (v.size() != 16) invalid(PgWire::Interval, v);
  int64_t time = be64(v.data());
  int32_t days = be32(v.data() + 8);
  int32_t months = be32(v.data() + 12);
  // PostgreSQL 17 infinite intervals.
  if (months == std::numeric_limits<int32_t>::max() && days == months &&
      time == std::numeric_limits<int64_t>::max()) {
    out.append("infinity");
    return;
  }
  if (months == std::numeric_limits<int32_t>::min() && days == months &&
      time == std::numeric_limits<int64_t>::min()) {
    out.append("-infinity");
    return;
  }
  const int64_t year = months / 12, mon = months % 12;
  const int64_t hour = time / 3600000000LL;
  time -= hour * 3600000000LL;
  const int64_t min = time / 60000000;
  time -= min * 60000000;
  const int64_t sec = time / 1000000;
  const int64_t fsec = time - sec * 1000000;
  bool is_zero = true, is_before = false;
  interval_part(out, year, "year", is_zero, is_before);
  interval_part(out, mon, "mon", is_zero, is_before);
  interval_part(out, days, "day", is_zero, is_before);
  if (is_zero || hour != 0 || min != 0 || sec != 0 || fsec != 0) {
    bool minus = hour < 0 || min < 0 || sec < 0 || fsec < 0;
    if (!is_zero) out.push_back(' ');
    if (minus) {
      out.push_back('-');
    } else if (is_before) {
      out.push_back('+');
    }
    append_padded(out, hour < 0 ? -hour : hour, 2);
    out.push_back(':');
    append2(out, min < 0 ? -min : min);
    out.push_back(':');
    append2(out, sec < 0 ? -sec : sec);
    append_fraction(out, fsec < 0 ? -fsec : fsec);
  }
}

// cash_out in the C / en_US monetary locale: "$1,234.56", "-$0.01".
void append_money(std::string& out, std::string_view v) {
  if (v.size() != 8) invalid(PgWire::Money, v);
  int64_t value = be64(v.data());
  uint64_t u =
      value < 0 ? uint64_t{0} - static_cast<uint64_t>(value) : static_cast<uint64_t>(value);
  char buf[64];
  char* b = buf + sizeof buf;
  int digit_pos = 2;
  do {
    if (digit_pos == 0) {
      *--b = '.';
    } else if (digit_pos < 0 && digit_pos % 3 == 0) {
      *--b = ',';
    }
    *--b = static_cast<char>('0' + u % 10);
    u /= 10;
    --digit_pos;
  } while (u || digit_pos >= 0);
  if (value < 0) out.push_back('-');
  out.push_back('$');
  out.append(b, static_cast<size_t>(buf + sizeof buf - b));
}

void append_hex_word(std::string& out, unsigned w) {
  char buf[8];
  auto r = std::to_chars(buf, buf + sizeof buf, w, 16);
  out.append(buf, r.ptr);
}

void append_dotted(std::string& out, const unsigned char* a) {
  for (int i = 0; i < 4; ++i) {
    if (i) out.push_back('.');
    append_number(out, static_cast<unsigned>(a[i]));
  }
}

// network_out: pg_inet_net_ntop (src/port/inet_net_ntop.c), "/bits" always for cidr.
void append_inet(std::string& out, std::string_view v, bool cidr) {
  if (v.size() < 4) invalid(cidr ? PgWire::Cidr : PgWire::Inet, v);
  const auto* u = reinterpret_cast<const unsigned char*>(v.data());
  const int family = u[0], bits = u[1], nb = u[3];
  bool has_bits = false;
  if (family == 2 && nb == 4 && v.size() == 8 && bits <= 32) {
    append_dotted(out, u + 4);
    has_bits = bits != 32;
  } else if (family == 3 && nb == 16 && v.size() == 20 && bits <= 128) {
    const unsigned char* src = u + 4;
    unsigned words[8];
    for (int i = 0; i < 8; ++i) words[i] = src[2 * i] * 256u + src[2 * i + 1];
    int best_base = -1, best_len = 0, cur_base = -1, cur_len = 0;
    for (int i = 0; i < 8; ++i) {
      if (words[i] == 0) {
        if (cur_base == -1) {
          cur_base = i;
          cur_len = 1;
        } else {
          ++cur_len;
        }
      } else if (cur_base != -1) {
        if (best_base == -1 || cur_len > best_len) {
          best_base = cur_base;
          best_len = cur_len;
        }
        cur_base = -1;
      }
    }
    if (cur_base != -1 && (best_base == -1 || cur_len > best_len)) {
      best_base = cur_base;
      best_len = cur_len;
    }
    if (best_base != -1 && best_len < 2) best_base = -1;
    for (int i = 0; i < 8; ++i) {
      if (best_base != -1 && i >= best_base && i < best_base + best_len) {
        if (i == best_base) out.push_back(':');
        continue;
      }
      if (i != 0) out.push_back(':');
      if (i == 6 && best_base == 0 &&
          (best_len == 6 || (best_len == 7 && words[7] != 0x0001) ||
           (best_len == 5 && words[5] == 0xffff))) {
        append_dotted(out, src + 12);
        break;
      }
      append_hex_word(out, words[i]);
    }
    if (best_base != -1 && best_base + best_len == 8) out.push_back(':');
    has_bits = bits != 128;
  } else {
    invalid(cidr ? PgWire::Cidr : PgWire::Inet, v);
  }
  if (has_bits || cidr) {
    out.push_back('/');
    append_number(out, bits);
  }
}

constexpr char kHex[] = "0123456789abcdef";

void append_hex_byte(std::string& out, unsigned char c) {
  out.push_back(kHex[c >> 4]);
  out.push_back(kHex[c & 15]);
}

// COPY text escaping (CopyAttributeOutText): backslash and the control characters with
// a letter escape; other bytes as they are.
// True when one of the 8 bytes of `w` is below 0x20 or a backslash (SWAR).
inline bool needs_escape8(uint64_t w) {
  constexpr uint64_t kOnes = 0x0101010101010101ULL, kHigh = 0x8080808080808080ULL;
  const uint64_t x = w ^ (kOnes * '\\');
  return (((w - kOnes * 0x20) & ~w) | ((x - kOnes) & ~x)) & kHigh;
}

void copy_escape_append(std::string& out, std::string_view value) {
  const char* p = value.data();
  const char* end = p + value.size();
  // Most values have nothing to escape: skip clean 8-byte words, append in one piece.
  while (end - p >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    if (needs_escape8(w)) break;
    p += 8;
  }
  const char* start = value.data();
  for (; p < end; ++p) {
    const unsigned char c = static_cast<unsigned char>(*p);
    if (c >= 0x20 && c != '\\') continue;
    char esc;
    switch (c) {
      case '\\':
        esc = '\\';
        break;
      case '\b':
        esc = 'b';
        break;
      case '\f':
        esc = 'f';
        break;
      case '\n':
        esc = 'n';
        break;
      case '\r':
        esc = 'r';
        break;
      case '\t':
        esc = 't';
        break;
      case '\v':
        esc = 'v';
        break;
      default:
        continue;
    }
    out.append(start, static_cast<size_t>(p - start));
    out.push_back('\\');
    out.push_back(esc);
    start = p + 1;
  }
  out.append(start, static_cast<size_t>(end - start));
}

}  // namespace

bool pg_wire_of(std::string_view t, PgWire& out) {
  auto is = [&](PgWire w) {
    out = w;
    return true;
  };
  if (t == "boolean") return is(PgWire::Bool);
  if (t == "smallint") return is(PgWire::Int2);
  if (t == "integer") return is(PgWire::Int4);
  if (t == "bigint") return is(PgWire::Int8);
  if (t == "real") return is(PgWire::Float4);
  if (t == "double precision") return is(PgWire::Float8);
  if (t == "numeric" || starts_with(t, "numeric(")) return is(PgWire::Numeric);
  // citext sends its text; char(n) arrives as text (pg_source.cpp binary_wire_type).
  if (t == "text" || t == "name" || t == "citext" || t == "character varying" ||
      starts_with(t, "character varying("))
    return is(PgWire::Text);
  if (t == "bytea") return is(PgWire::Bytea);
  if (t == "date") return is(PgWire::Date);
  if (starts_with(t, "timestamp")) {
    bool tz = t.find("with time zone") != std::string_view::npos &&
              t.find("without") == std::string_view::npos;
    return is(tz ? PgWire::TimestampTz : PgWire::Timestamp);
  }
  if (t == "time" || starts_with(t, "time ") || starts_with(t, "time(")) {
    bool tz = t.find("with time zone") != std::string_view::npos &&
              t.find("without") == std::string_view::npos;
    return is(tz ? PgWire::TimeTz : PgWire::Time);
  }
  if (starts_with(t, "interval")) return is(PgWire::Interval);
  if (t == "uuid") return is(PgWire::Uuid);
  if (t == "json") return is(PgWire::Json);
  if (t == "jsonb") return is(PgWire::Jsonb);
  if (t == "money") return is(PgWire::Money);
  if (t == "inet") return is(PgWire::Inet);
  if (t == "cidr") return is(PgWire::Cidr);
  if (t == "macaddr") return is(PgWire::Macaddr);
  return false;
}

void append_pg_text(std::string& out, PgWire type, std::string_view v) {
  const char* p = v.data();
  auto want = [&](size_t n) {
    if (v.size() != n) invalid(type, v);
  };
  switch (type) {
    case PgWire::Bool:
      want(1);
      out.push_back(p[0] ? 't' : 'f');
      return;
    case PgWire::Int2:
      want(2);
      append_number(out, be16(p));
      return;
    case PgWire::Int4:
      want(4);
      append_number(out, be32(p));
      return;
    case PgWire::Int8:
      want(8);
      append_number(out, be64(p));
      return;
    case PgWire::Float4: {
      want(4);
      uint32_t bits = static_cast<uint32_t>(be(p, 4));
      float f;
      std::memcpy(&f, &bits, 4);
      append_pg_float(out, f, 6);
      return;
    }
    case PgWire::Float8: {
      want(8);
      uint64_t bits = be(p, 8);
      double d;
      std::memcpy(&d, &bits, 8);
      append_pg_float(out, d, 15);
      return;
    }
    case PgWire::Numeric:
      append_numeric(out, v);
      return;
    case PgWire::Text:
    case PgWire::Json:
      out.append(v);
      return;
    case PgWire::Jsonb:
      if (v.empty() || v[0] != 1) invalid(type, v);
      out.append(v.substr(1));
      return;
    case PgWire::Bytea:
      out.append("\\x");
      for (unsigned char c : v) append_hex_byte(out, c);
      return;
    case PgWire::Date:
      want(4);
      append_date(out, be32(p));
      return;
    case PgWire::Time: {
      want(8);
      int64_t t = be64(p);
      if (t < 0 || t > kUsecsPerDay) invalid(type, v);
      append_time_of_day(out, t);
      return;
    }
    case PgWire::TimeTz: {
      want(12);
      int64_t t = be64(p);
      if (t < 0 || t > kUsecsPerDay) invalid(type, v);
      append_time_of_day(out, t);
      append_zone(out, be32(p + 8));
      return;
    }
    case PgWire::Timestamp:
    case PgWire::TimestampTz:
      want(8);
      append_timestamp(out, be64(p), type == PgWire::TimestampTz);
      return;
    case PgWire::Interval:
      append_interval(out, v);
      return;
    case PgWire::Uuid:
      want(16);
      for (size_t i = 0; i < 16; ++i) {
        if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
        append_hex_byte(out, static_cast<unsigned char>(p[i]));
      }
      return;
    case PgWire::Money:
      append_money(out, v);
      return;
    case PgWire::Inet:
    case PgWire::Cidr:
      append_inet(out, v, type == PgWire::Cidr);
      return;
    case PgWire::Macaddr:
      want(6);
      for (size_t i = 0; i < 6; ++i) {
        if (i) out.push_back(':');
        append_hex_byte(out, static_cast<unsigned char>(p[i]));
      }
      return;
  }
}

// --- pg_copy_binary -----------------------------------------------------------------------

PgBinaryTranscoder::PgBinaryTranscoder(const std::vector<std::string>& wire_types,
                                       std::vector<Encode> encodes,
                                       const std::vector<std::string>& names,
                                       bool bare_utc_timestamps)
    : encodes_(std::move(encodes)), names_(names), bare_utc_(bare_utc_timestamps) {
  if (wire_types.size() != encodes_.size()) {
    throw Error(ErrorCode::Internal, fmt::format("pg_copy_binary: {} wire types for {} columns",
                                                 wire_types.size(), encodes_.size()));
  }
  names_.resize(encodes_.size());
  for (size_t i = 0; i < wire_types.size(); ++i) {
    PgWire w;
    if (!pg_wire_of(wire_types[i], w)) {
      throw Error(ErrorCode::TypeMismatch,
                  fmt::format("pg_copy_binary column '{}' has the server type '{}', whose binary "
                              "form the clickhouse sink cannot render",
                              names_[i], wire_types[i]),
                  "set the sink option `pg_copy_format: text`, or cast the column in a source "
                  "`query`");
    }
    wires_.push_back(w);
  }
}

void PgBinaryTranscoder::feed(std::string_view in, std::string& out) {
  out.reserve(out.size() + in.size() + in.size() / 2 + 256);
  const char* p = in.data();
  const char* end = p + in.size();
  while (!carry_.empty() && p < end) {
    size_t take = std::min(need_ - carry_.size(), static_cast<size_t>(end - p));
    carry_.append(p, take);
    p += take;
    if (carry_.size() < need_) return;
    const char* c = carry_.data();
    const char* stop = parse(c, c + carry_.size(), out);
    carry_.erase(0, static_cast<size_t>(stop - c));
  }
  if (p < end) {
    const char* stop = parse(p, end, out);
    carry_.assign(stop, static_cast<size_t>(end - stop));
  }
}

const char* PgBinaryTranscoder::parse(const char* p, const char* end, std::string& out) {
  while (p < end) {
    const size_t avail = static_cast<size_t>(end - p);
    switch (state_) {
      case State::Header:
        if (avail < kHeaderSize) {
          need_ = kHeaderSize;
          return p;
        }
        if (std::string_view(p, 11) != kSignature) fail("it has no PGCOPY signature");
        skip_ = be32(p + 15);
        if (skip_ < 0) fail("its header extension length is negative");
        p += kHeaderSize;
        state_ = State::Extension;
        break;
      case State::Extension: {
        int64_t k = std::min<int64_t>(skip_, static_cast<int64_t>(avail));
        p += k;
        skip_ -= k;
        if (skip_ == 0) state_ = State::Rows;
        break;
      }
      case State::Rows: {
        // Is the whole row here? Walk the lengths first, render after.
        if (avail < 2) {
          need_ = 2;
          return p;
        }
        const int count = be16(p);
        if (count == -1) {
          state_ = State::Done;
          p += 2;
          break;
        }
        if (count != static_cast<int>(wires_.size())) {
          fail(fmt::format("row {} has {} fields, the stream was announced with {} columns",
                           rows_ + 1, count, wires_.size()));
        }
        size_t off = 2;
        for (int f = 0; f < count; ++f) {
          if (avail < off + 4) {
            need_ = off + 4;
            return p;
          }
          int32_t len = be32(p + off);
          off += 4;
          if (len > 0) {
            if (avail < off + static_cast<size_t>(len)) {
              need_ = off + static_cast<size_t>(len);
              return p;
            }
            off += static_cast<size_t>(len);
          } else if (len < -1) {
            fail(fmt::format("row {} has a field length of {}", rows_ + 1, len));
          }
        }
        const char* q = p + 2;
        for (size_t c = 0; c < wires_.size(); ++c) {
          int32_t len = be32(q);
          q += 4;
          emit(c, q, len, out);
          if (len > 0) q += len;
        }
        out.push_back('\n');
        ++rows_;
        p = q;
        break;
      }
      case State::Done:
        trailing_ += static_cast<int64_t>(avail);
        return end;
    }
  }
  return p;
}

void PgBinaryTranscoder::emit(size_t c, const char* value, int32_t length, std::string& out) {
  if (c) out.push_back('\t');
  if (length < 0) {
    out.append("\\N");
    return;
  }
  const std::string_view v(value, static_cast<size_t>(length));
  const PgWire w = wires_[c];
  switch (encodes_[c]) {
    case Encode::Plain:
      switch (w) {
        case PgWire::Text:
        case PgWire::Json:
          copy_escape_append(out, v);
          return;
        case PgWire::TimestampTz:
          if (length != 8) invalid(w, v);
          append_timestamp(out, be64(value), !bare_utc_);
          return;
        case PgWire::Jsonb:
        case PgWire::Bytea:
          scratch_.clear();
          append_pg_text(scratch_, w, v);
          copy_escape_append(out, scratch_);
          return;
        default:
          append_pg_text(out, w, v);  // never contains a character COPY escapes
          return;
      }
    case Encode::Bool:
      if (w == PgWire::Bool && length == 1) {
        out.append(v[0] ? "true" : "false");
        return;
      }
      break;
    case Encode::Bytes:
      if (w == PgWire::Bytea) {
        tsv_escape_append(out, v);
        return;
      }
      break;
    case Encode::Micros:
    case Encode::TsText: {
      if ((w != PgWire::Timestamp && w != PgWire::TimestampTz) || length != 8) break;
      scratch_.clear();
      append_pg_text(scratch_, w, v);
      int64_t m = 0;
      // Only what the text path reads (timestamp_to_micros): years 1..9999, finite.
      if (!timestamp_to_micros(scratch_, m)) {
        throw Error(ErrorCode::TypeMismatch,
                    fmt::format("pg_copy_binary row {}, column '{}': '{}' is not a timestamp "
                                "value dpone can load into ClickHouse",
                                rows_ + 1, names_[c], scratch_),
                    "check the source column type");
      }
      if (encodes_[c] == Encode::Micros) {
        append_number(out, m);
      } else {
        out.append(micros_to_timestamp(m, w == PgWire::TimestampTz));
      }
      return;
    }
    case Encode::DateRange: {
      // Year 1970..2105, as the text path's in_clickhouse_date_range() (which would let
      // a BC or 5-digit year whose first digits look in range through).
      const size_t at = out.size();
      int64_t year;
      if (w == PgWire::Date && length == 4) {
        year = append_date(out, be32(value));
      } else if ((w == PgWire::Timestamp || w == PgWire::TimestampTz) && length == 8) {
        year = append_timestamp(out, be64(value), w == PgWire::TimestampTz && !bare_utc_);
      } else {
        break;
      }
      if (year < 1970 || year > 2105) out_of_range(c, std::string_view(out).substr(at));
      return;
    }
  }
  scratch_.clear();
  append_pg_text(scratch_, w, v);
  throw Error(ErrorCode::TypeMismatch,
              fmt::format("pg_copy_binary row {}, column '{}': the {} value '{}' cannot be "
                          "loaded into this ClickHouse column",
                          rows_ + 1, names_[c], wire_name(w), scratch_.substr(0, 60)),
              "check the source column type");
}

void PgBinaryTranscoder::finish(std::string&) {
  if (state_ != State::Done) fail("it ended before its trailer (the source stopped mid-stream)");
  if (trailing_ > 0) fail(fmt::format("{} bytes follow its trailer", trailing_));
}

void PgBinaryTranscoder::fail(const std::string& what) const {
  throw Error(ErrorCode::StageFailed,
              fmt::format("the pg_copy_binary stream is malformed after {} rows: {}", rows_, what),
              "re-run; if it persists, set the sink option `pg_copy_format: text` and report it");
}

void PgBinaryTranscoder::out_of_range(size_t c, std::string_view text) const {
  throw Error(ErrorCode::TypeOverflow,
              fmt::format("pg_copy_binary row {}, column '{}': '{}' is outside the range of "
                          "ClickHouse Date/DateTime (1970-01-01 to 2105-12-31); the server would "
                          "wrap it",
                          rows_ + 1, names_[c], std::string(text.substr(0, 60))),
              "filter or fix the value at the source, or load the column as text");
}

}  // namespace dpone::ch
