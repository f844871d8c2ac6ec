#include "connectors/clickhouse/ch_types.hpp"

#include <fmt/format.h>

#include <cctype>
#include <charconv>
#include <cstdlib>

#include "core/errors.hpp"
#include "core/util/civil_date.hpp"

namespace dpone::ch {

namespace {

bool starts_with(std::string_view s, std::string_view p) {
  return s.substr(0, p.size()) == p;
}

// Strips "Wrapper(" ... ")" when `s` is Wrapper(...).
bool unwrap(std::string_view& s, std::string_view wrapper) {
  if (starts_with(s, wrapper) && s.size() > wrapper.size() + 1 && s[wrapper.size()] == '(' &&
      s.back() == ')') {
    s = s.substr(wrapper.size() + 1, s.size() - wrapper.size() - 2);
    return true;
  }
  return false;
}

}  // namespace

std::optional<SubsecondPolicy> parse_subsecond_policy(std::string_view text) {
  if (text == "fail") return SubsecondPolicy::Fail;
  if (text == "int64_micros") return SubsecondPolicy::Int64Micros;
  if (text == "string") return SubsecondPolicy::String;
  return std::nullopt;
}

ServerFeatures features_of(int major, int minor, std::string version) {
  ServerFeatures f;
  f.version = std::move(version);
  auto at_least = [&](int M, int m) { return major > M || (major == M && minor >= m); };
  f.datetime64 = at_least(20, 1);
  f.exchange = at_least(21, 8);
  f.lightweight_delete = at_least(22, 8);
  f.decimal_trailing_zeros_setting = at_least(21, 9);
  return f;
}

std::vector<std::string> sorting_key_columns(const std::string& sorting_key) {
  std::string key = sorting_key;
  if (key.size() >= 2 && key.front() == '(' && key.back() == ')')
    key = key.substr(1, key.size() - 2);
  std::vector<std::string> out;
  size_t start = 0;
  while (start < key.size()) {
    size_t comma = key.find(',', start);
    std::string n =
        key.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    n.erase(0, n.find_first_not_of(' '));
    n.erase(n.find_last_not_of(' ') + 1);
    if (n.size() >= 2 && n.front() == '`' && n.back() == '`') n = n.substr(1, n.size() - 2);
    bool plain = !n.empty();
    for (char c : n) plain = plain && (std::isalnum(static_cast<unsigned char>(c)) || c == '_');
    if (!plain) return {};
    out.push_back(n);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

ColumnMapping map_logical(const Column& column, const TypePolicy& type_policy,
                          const ServerFeatures& features, const std::string& where) {
  const SubsecondPolicy policy = type_policy.subsecond;
  ColumnMapping m;
  const LogicalType& t = column.type;
  std::string base;
  switch (t.id) {
    case TypeId::Bool:
      base = "Enum8('false' = 0, 'true' = 1)";
      m.encode = Encode::Bool;
      break;
    case TypeId::Int16:
      base = "Int16";
      break;
    case TypeId::Int32:
      base = "Int32";
      break;
    case TypeId::Int64:
      base = "Int64";
      break;
    case TypeId::Float32:
      base = "Float32";
      break;
    case TypeId::Float64:
      base = "Float64";
      break;
    case TypeId::Decimal:
      if (t.precision >= 1 && t.precision <= 38) {
        base = fmt::format("Decimal({}, {})", t.precision, t.scale);
      } else {
        base = "String";  // unbounded numeric: exact text
      }
      break;
    case TypeId::String:
      base = "String";
      break;
    case TypeId::Bytes:
      base = "String";
      m.encode = Encode::Bytes;
      break;
    case TypeId::Date:
      if (type_policy.dates_as_string) {
        base = "String";
      } else {
        base = "Date";
        m.encode = Encode::DateRange;
      }
      break;
    case TypeId::Time:
      base = "String";
      break;
    case TypeId::Json:
      base = "String";
      break;
    case TypeId::Uuid:
      base = "UUID";
      break;
    case TypeId::Timestamp:
      if (type_policy.dates_as_string && (t.precision == 0 || !features.datetime64)) {
        base = "String";
        m.encode = Encode::TsText;
      } else if (t.precision == 0) {
        base = t.tz ? "DateTime('UTC')" : "DateTime";
        m.encode = Encode::DateRange;
      } else if (features.datetime64) {
        base = fmt::format("DateTime64({}{})", t.precision, t.tz ? ", 'UTC'" : "");
      } else if (policy == SubsecondPolicy::Int64Micros) {
        base = "Int64";
        m.encode = Encode::Micros;
      } else if (policy == SubsecondPolicy::String) {
        base = "String";
        m.encode = Encode::TsText;
      } else {
        throw Error(ErrorCode::TypeMismatch,
                    fmt::format("{}: column '{}' is {} (fractional seconds) but ClickHouse {} has "
                                "no DateTime64: its DateTime keeps whole seconds and dpone never "
                                "narrows silently",
                                where, column.name, t.to_string(), features.version),
                    "set the sink option `subsecond_timestamps: int64_micros` (Int64 "
                    "microseconds since 1970 UTC) or `subsecond_timestamps: string` (the "
                    "canonical text), or cast the source column to whole seconds "
                    "(e.g. ::timestamptz(0))");
      }
      break;
  }
  m.type = column.nullable ? "Nullable(" + base + ")" : base;
  ReadType back = map_clickhouse(m.type, "");
  if (!(back.type == t)) m.comment = "dpone:" + t.to_string();
  return m;
}

ReadType map_clickhouse(const std::string& ch_type, const std::string& comment) {
  ReadType r;
  std::string_view s = ch_type;
  unwrap(s, "LowCardinality");
  r.nullable = unwrap(s, "Nullable");
  unwrap(s, "LowCardinality");
  r.base = std::string(s);
  auto parse_two = [](std::string_view args, int& a, int& b) {
    return std::sscanf(std::string(args).c_str(), "%d, %d", &a, &b) == 2 ||
           std::sscanf(std::string(args).c_str(), "%d,%d", &a, &b) == 2;
  };
  if (s == "Int8" || s == "Int16" || s == "UInt8") {
    r.type = LogicalType::of(TypeId::Int16);
  } else if (s == "Int32" || s == "UInt16") {
    r.type = LogicalType::of(TypeId::Int32);
  } else if (s == "Int64" || s == "UInt32") {
    r.type = LogicalType::of(TypeId::Int64);
  } else if (s == "UInt64") {
    r.type = LogicalType::decimal(20, 0);
  } else if (s == "Float32") {
    r.type = LogicalType::of(TypeId::Float32);
  } else if (s == "Float64") {
    r.type = LogicalType::of(TypeId::Float64);
  } else if (starts_with(s, "Decimal(")) {
    int p = 0, sc = 0;
    if (!parse_two(s.substr(8), p, sc)) r.known = false;
    r.type = LogicalType::decimal(p, sc);
  } else if (starts_with(s, "Decimal32(") || starts_with(s, "Decimal64(") ||
             starts_with(s, "Decimal128(")) {
    int sc = std::atoi(std::string(s.substr(s.find('(') + 1)).c_str());
    int p = s[7] == '3' ? 9 : s[7] == '6' ? 18 : 38;
    r.type = LogicalType::decimal(p, sc);
  } else if (s == "String") {
    r.type = LogicalType::of(TypeId::String);
  } else if (starts_with(s, "FixedString(")) {
    r.type = LogicalType::varchar(std::atoi(std::string(s.substr(12)).c_str()));
  } else if (s == "Date") {
    r.type = LogicalType::of(TypeId::Date);
  } else if (s == "DateTime") {
    r.type = LogicalType::timestamp(0, false);
  } else if (starts_with(s, "DateTime(")) {
    r.type = LogicalType::timestamp(0, true);
  } else if (starts_with(s, "DateTime64(")) {
    int p = std::atoi(std::string(s.substr(11)).c_str());
    r.type = LogicalType::timestamp(p, s.find(',') != std::string_view::npos);
  } else if (s == "UUID") {
    r.type = LogicalType::of(TypeId::Uuid);
  } else if (s == "Enum8('false' = 0, 'true' = 1)") {
    r.type = LogicalType::of(TypeId::Bool);
  } else {
    // Enum, Array, Tuple, Map, IPv4, ...: their ClickHouse text, as a string.
    r.type = LogicalType::of(TypeId::String);
    r.known = false;
  }
  if (starts_with(comment, "dpone:")) {
    if (auto t = LogicalType::parse(comment.substr(6))) {
      r.type = *t;
      r.known = true;
    }
  }
  return r;
}

bool timestamp_to_micros(std::string_view t, int64_t& micros) {
  // YYYY-MM-DD?HH:MM:SS
  if (t.size() < 19 || t[4] != '-' || t[7] != '-' || (t[10] != ' ' && t[10] != 'T') ||
      t[13] != ':' || t[16] != ':')
    return false;
  auto num = [&](size_t pos, size_t len, int64_t& out) {
    auto r = std::from_chars(t.data() + pos, t.data() + pos + len, out);
    return r.ec == std::errc() && r.ptr == t.data() + pos + len;
  };
  int64_t y, mo, d, h, mi, s;
  if (!num(0, 4, y) || !num(5, 2, mo) || !num(8, 2, d) || !num(11, 2, h) || !num(14, 2, mi) ||
      !num(17, 2, s))
    return false;
  int64_t frac = 0;
  size_t pos = 19;
  if (pos < t.size() && t[pos] == '.') {
    ++pos;
    int digits = 0;
    while (pos < t.size() && t[pos] >= '0' && t[pos] <= '9') {
      if (digits < 6) {
        frac = frac * 10 + (t[pos] - '0');
        ++digits;
      } else if (t[pos] != '0') {
        return false;  // below a microsecond: would be lost
      }
      ++pos;
    }
    while (digits < 6) {
      frac *= 10;
      ++digits;
    }
  }
  std::string_view rest = t.substr(pos);
  if (!(rest.empty() || rest == "Z" || rest == "+00" || rest == "+00:00")) return false;
  int64_t days = days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
  micros = ((days * 24 + h) * 60 + mi) * 60 * 1000000 + s * 1000000 + frac;
  return true;
}

std::string micros_to_timestamp(int64_t micros, bool tz) {
  int64_t secs = micros / 1000000, frac = micros % 1000000;
  if (frac < 0) {
    frac += 1000000;
    --secs;
  }
  int64_t days = secs / 86400, rem = secs % 86400;
  if (rem < 0) {
    rem += 86400;
    --days;
  }
  const auto [y, m, d] = civil_from_days(days);
  std::string out = fmt::format("{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}", y, m, d, rem / 3600,
                                (rem / 60) % 60, rem % 60);
  if (frac) {
    std::string f = fmt::format("{:06d}", frac);
    while (!f.empty() && f.back() == '0') f.pop_back();
    out += "." + f;
  }
  if (tz) out += "Z";
  return out;
}

bool in_clickhouse_date_range(std::string_view text) {
  if (text.size() < 4) return false;
  int year = 0;
  auto r = std::from_chars(text.data(), text.data() + 4, year);
  return r.ec == std::errc() && r.ptr == text.data() + 4 && year >= 1970 && year <= 2105;
}

namespace {

template <typename F>
std::string shortest(std::string_view v) {
  F x{};
  auto r = std::from_chars(v.data(), v.data() + v.size(), x);
  if (r.ec != std::errc() || r.ptr != v.data() + v.size()) return std::string(v);
  char buf[64];
  auto w = std::to_chars(buf, buf + sizeof buf, x);
  return std::string(buf, w.ptr);
}

}  // namespace

std::string to_canonical(std::string_view v, const ReadType& read) {
  const LogicalType& t = read.type;
  // Day 0 / second 0 print as zeros on old servers.
  if (v == "0000-00-00" && read.base == "Date") return "1970-01-01";
  if (v.substr(0, 19) == "0000-00-00 00:00:00" && read.base.rfind("DateTime", 0) == 0) {
    std::string fixed = "1970-01-01 00:00:00" + std::string(v.substr(19));
    return to_canonical(fixed, read);
  }
  switch (t.id) {
    case TypeId::Float32:
    case TypeId::Float64:
      if (v == "inf" || v == "+inf") return "Infinity";
      if (v == "-inf") return "-Infinity";
      if (v == "nan" || v == "-nan") return "NaN";
      return t.id == TypeId::Float32 ? shortest<float>(v) : shortest<double>(v);
    case TypeId::Timestamp:
      if (read.base == "Int64") {
        int64_t m = 0;
        auto r = std::from_chars(v.data(), v.data() + v.size(), m);
        if (r.ec != std::errc()) return std::string(v);
        return micros_to_timestamp(m, t.tz);
      }
      if (starts_with(read.base, "DateTime") && v.size() >= 19 && v[10] == ' ') {
        std::string out(v);
        out[10] = 'T';
        // DateTime64 prints every fractional digit: drop trailing zeros (and the dot).
        if (out.size() > 19 && out[19] == '.') {
          while (out.back() == '0') out.pop_back();
          if (out.back() == '.') out.pop_back();
        }
        if (t.tz) out += "Z";
        return out;
      }
      return std::string(v);
    default:
      return std::string(v);
  }
}

}  // namespace dpone::ch
