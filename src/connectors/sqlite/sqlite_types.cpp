#include "connectors/sqlite/sqlite_types.hpp"

#include <fmt/format.h>

#include <cctype>
#include <charconv>
#include <chrono>
#include <cmath>
#include <limits>
#include <optional>
#include <vector>

#include "core/errors.hpp"

namespace dpone::sqlite {

namespace {

// A value quoted for an error message: bounded, control characters escaped.
std::string preview(std::string_view v) {
  constexpr size_t kMax = 60;
  std::string out = "'";
  for (char c : v.substr(0, kMax)) {
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
    } else {
      out.push_back(c);
    }
  }
  out += v.size() > kMax ? "'..." : "'";
  return out;
}

[[noreturn]] void mismatch(std::string_view value, const LogicalType& type,
                           std::string_view why = {}) {
  std::string msg = fmt::format("value {} is not a valid {}", preview(value), type.to_string());
  if (!why.empty()) msg += fmt::format(" ({})", why);
  throw Error(ErrorCode::TypeMismatch, std::move(msg));
}

const char* storage_name(int storage) {
  switch (storage) {
    case SQLITE_INTEGER:
      return "INTEGER";
    case SQLITE_FLOAT:
      return "REAL";
    case SQLITE_TEXT:
      return "TEXT";
    case SQLITE_BLOB:
      return "BLOB";
    default:
      return "NULL";
  }
}

[[noreturn]] void storage_mismatch(int storage, std::string_view shown, const LogicalType& type) {
  throw Error(ErrorCode::TypeMismatch,
              fmt::format("the {} value {} cannot be read as {}", storage_name(storage),
                          preview(shown), type.to_string()),
              "store the values as ISO 8601 / canonical text, or declare the column with a type "
              "that matches what it holds");
}

template <typename T>
std::optional<T> parse_number(std::string_view text) {
  T v{};
  if (text.empty()) return std::nullopt;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size()) return std::nullopt;
  return v;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  }
  return true;
}

std::optional<double> parse_special(std::string_view t) {
  if (t == "NaN" || iequals(t, "nan")) return std::numeric_limits<double>::quiet_NaN();
  if (t == "Infinity" || iequals(t, "inf") || iequals(t, "+infinity"))
    return std::numeric_limits<double>::infinity();
  if (t == "-Infinity" || iequals(t, "-inf")) return -std::numeric_limits<double>::infinity();
  return std::nullopt;
}

void check_int_range(int64_t v, const LogicalType& type, std::string_view shown) {
  int64_t lo = std::numeric_limits<int64_t>::min();
  int64_t hi = std::numeric_limits<int64_t>::max();
  if (type.id == TypeId::Int16) {
    lo = std::numeric_limits<int16_t>::min();
    hi = std::numeric_limits<int16_t>::max();
  } else if (type.id == TypeId::Int32) {
    lo = std::numeric_limits<int32_t>::min();
    hi = std::numeric_limits<int32_t>::max();
  }
  if (v < lo || v > hi) {
    throw Error(ErrorCode::TypeOverflow,
                fmt::format("value {} does not fit {}", shown, type.to_string()),
                "declare the column with a wider integer type (BIGINT)");
  }
}

// Uppercases, trims and collapses blanks: "decimal ( 10, 2 )" -> "DECIMAL(10,2)".
std::string normalize_decl(std::string_view declared) {
  std::string out;
  bool pending_space = false;
  for (char c : declared) {
    if (std::isspace(static_cast<unsigned char>(c))) {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space && c != '(' && c != ')' && c != ',' && out.back() != '(' &&
        out.back() != ',') {
      out.push_back(' ');
    }
    pending_space = false;
    out.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  }
  return out;
}

// "NAME(a,b)" -> NAME, {a, b}; args_ok false when the list is not integers.
void split_decl(const std::string& decl, std::string& name, std::vector<int>& args, bool& has_args,
                bool& args_ok) {
  auto open = decl.find('(');
  has_args = open != std::string::npos;
  args_ok = true;
  if (!has_args) {
    name = decl;
    return;
  }
  name = decl.substr(0, open);
  auto close = decl.find(')', open);
  if (close == std::string::npos) {
    args_ok = false;
    return;
  }
  std::string inner = decl.substr(open + 1, close - open - 1);
  size_t start = 0;
  while (true) {
    auto comma = inner.find(',', start);
    auto part = std::string_view(inner).substr(
        start, comma == std::string::npos ? std::string::npos : comma - start);
    auto v = parse_number<int>(part);
    if (!v) {
      args_ok = false;
      return;
    }
    args.push_back(*v);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
}

// SQLite's own affinity rules (datatype3.html, 3.1), on the uppercased declared type.
DeclaredType by_affinity(const std::string& decl) {
  auto has = [&](const char* s) { return decl.find(s) != std::string::npos; };
  if (has("INT")) return {LogicalType::of(TypeId::Int64), true};
  if (has("CHAR") || has("CLOB") || has("TEXT")) return {LogicalType::of(TypeId::String), true};
  if (has("BLOB")) return {LogicalType::of(TypeId::Bytes), true};
  if (has("REAL") || has("FLOA") || has("DOUB")) return {LogicalType::of(TypeId::Float64), true};
  // NUMERIC affinity with a name we do not know, or no declared type at all: the column
  // may hold anything; text is the one type every value converts to without loss.
  return {LogicalType::of(TypeId::String), false};
}

bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  return true;
}

int parse_fixed(std::string_view s) {
  int v = 0;
  for (char c : s) v = v * 10 + (c - '0');
  return v;
}

bool valid_date(int y, int m, int d) {
  using namespace std::chrono;
  return year_month_day{year{y}, month{static_cast<unsigned>(m)}, day{static_cast<unsigned>(d)}}
      .ok();
}

std::string normalize_date(std::string_view text, const LogicalType& type) {
  if (text.size() != 10 || text[4] != '-' || text[7] != '-' || !all_digits(text.substr(0, 4)) ||
      !all_digits(text.substr(5, 2)) || !all_digits(text.substr(8, 2)) ||
      !valid_date(parse_fixed(text.substr(0, 4)), parse_fixed(text.substr(5, 2)),
                  parse_fixed(text.substr(8, 2)))) {
    mismatch(text, type, "expected YYYY-MM-DD");
  }
  return std::string(text);
}

// Parses "HH:MM[:SS[.f]]" at the start of `t`; returns the canonical "HH:MM:SS[.f]" and
// the number of characters consumed, or nullopt.
std::optional<std::pair<std::string, size_t>> parse_time_prefix(std::string_view t) {
  if (t.size() < 5 || t[2] != ':' || !all_digits(t.substr(0, 2)) || !all_digits(t.substr(3, 2)))
    return std::nullopt;
  int h = parse_fixed(t.substr(0, 2));
  int m = parse_fixed(t.substr(3, 2));
  int s = 0;
  size_t i = 5;
  std::string frac;
  if (i < t.size() && t[i] == ':') {
    if (t.size() < i + 3 || !all_digits(t.substr(i + 1, 2))) return std::nullopt;
    s = parse_fixed(t.substr(i + 1, 2));
    i += 3;
    if (i < t.size() && t[i] == '.') {
      size_t j = i + 1;
      while (j < t.size() && std::isdigit(static_cast<unsigned char>(t[j]))) ++j;
      if (j == i + 1) return std::nullopt;
      frac = std::string(t.substr(i + 1, j - i - 1));
      i = j;
    }
  }
  if (h > 23 || m > 59 || s > 60) return std::nullopt;
  while (!frac.empty() && frac.back() == '0') frac.pop_back();
  std::string out = fmt::format("{:02}:{:02}:{:02}", h, m, s);
  if (!frac.empty()) out += "." + frac;
  return std::make_pair(out, i);
}

std::string normalize_time(std::string_view text, const LogicalType& type) {
  auto parsed = parse_time_prefix(text);
  if (!parsed || parsed->second != text.size()) mismatch(text, type, "expected HH:MM:SS[.ffffff]");
  return parsed->first;
}

std::string format_uuid_blob(std::string_view bytes) {
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < bytes.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
    auto b = static_cast<unsigned char>(bytes[i]);
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 0xf]);
  }
  return out;
}

std::string normalize_uuid(std::string_view text, const LogicalType& type) {
  std::string out;
  if (text.size() != 36) mismatch(text, type, "expected 8-4-4-4-12 hexadecimal digits");
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? c != '-' : !std::isxdigit(static_cast<unsigned char>(c)))
      mismatch(text, type, "expected 8-4-4-4-12 hexadecimal digits");
    out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  return out;
}

std::string integer_text(int64_t v) {
  return std::to_string(v);
}

}  // namespace

std::string declared_type(const LogicalType& type) {
  switch (type.id) {
    case TypeId::Bool:
      return "BOOLEAN";
    case TypeId::Int16:
      return "SMALLINT";
    case TypeId::Int32:
      return "INTEGER";
    case TypeId::Int64:
      return "BIGINT";
    case TypeId::Float32:
      return "FLOAT";
    case TypeId::Float64:
      return "DOUBLE";
    case TypeId::Decimal:
      return fmt::format("DECIMAL_TEXT({},{})", type.precision, type.scale);
    case TypeId::String:
      return type.length > 0 ? fmt::format("VARCHAR({})", type.length) : "TEXT";
    case TypeId::Bytes:
      return "BLOB";
    case TypeId::Date:
      return "DATE";
    case TypeId::Time:
      return "TIME";
    case TypeId::Timestamp: {
      std::string base = type.tz ? "TIMESTAMPTZ" : "TIMESTAMP";
      return type.precision == 6 ? base : fmt::format("{}({})", base, type.precision);
    }
    case TypeId::Json:
      return "JSON_TEXT";
    case TypeId::Uuid:
      return "UUID";
  }
  return "TEXT";
}

DeclaredType logical_type_of(std::string_view declared, TypeSide side) {
  std::string decl = normalize_decl(declared);
  if (decl.empty()) return {LogicalType::of(TypeId::String), false};
  std::string name;
  std::vector<int> args;
  bool has_args = false;
  bool args_ok = true;
  split_decl(decl, name, args, has_args, args_ok);
  auto plain = [&](TypeId id) -> std::optional<DeclaredType> {
    if (has_args) return std::nullopt;
    return DeclaredType{LogicalType::of(id), true};
  };
  std::optional<DeclaredType> out;
  if (name == "BOOLEAN" || name == "BOOL") {
    out = plain(TypeId::Bool);
  } else if (name == "SMALLINT") {
    out = plain(TypeId::Int16);
  } else if (name == "INTEGER") {
    // Ours means int32; anyone else's INTEGER is a 64-bit SQLite integer (see header).
    out = plain(side == TypeSide::Target ? TypeId::Int32 : TypeId::Int64);
  } else if (name == "BIGINT") {
    out = plain(TypeId::Int64);
  } else if (name == "FLOAT") {
    // Ours means float32; elsewhere FLOAT is SQLite's 8-byte REAL, and reading it as
    // float32 would round values silently.
    out = plain(side == TypeSide::Target ? TypeId::Float32 : TypeId::Float64);
  } else if (name == "DOUBLE" || name == "DOUBLE PRECISION" || name == "REAL" || name == "FLOAT8") {
    out = plain(TypeId::Float64);
  } else if (name == "TEXT") {
    out = plain(TypeId::String);
  } else if (name == "VARCHAR" && has_args && args_ok && args.size() == 1 && args[0] > 0) {
    out = DeclaredType{LogicalType::varchar(args[0]), true};
  } else if (name == "BLOB") {
    out = plain(TypeId::Bytes);
  } else if (name == "DATE") {
    out = plain(TypeId::Date);
  } else if (name == "TIME") {
    out = plain(TypeId::Time);
  } else if (name == "DATETIME") {
    out = plain(TypeId::Timestamp);
    if (out) out->type = LogicalType::timestamp(6, false);
  } else if (name == "TIMESTAMP" || name == "TIMESTAMPTZ") {
    bool tz = name == "TIMESTAMPTZ";
    if (!has_args) {
      out = DeclaredType{LogicalType::timestamp(6, tz), true};
    } else if (args_ok && args.size() == 1 && args[0] >= 0 && args[0] <= 9) {
      out = DeclaredType{LogicalType::timestamp(args[0], tz), true};
    }
  } else if (name == "JSON" || name == "JSON_TEXT") {
    out = plain(TypeId::Json);
  } else if (name == "UUID") {
    out = plain(TypeId::Uuid);
  } else if ((name == "DECIMAL_TEXT" || name == "DECIMAL" || name == "NUMERIC") && has_args &&
             args_ok && (args.size() == 1 || args.size() == 2)) {
    int p = args[0];
    int s = args.size() == 2 ? args[1] : 0;
    if (p >= 1 && p <= 76 && s >= 0 && s <= p) {
      out = DeclaredType{LogicalType::decimal(p, s), true};
    }
  }
  if (out) return *out;
  return by_affinity(decl);
}

std::string format_double(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  char buf[64];
  auto [p, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, p);
}

std::string format_float(float v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  char buf[64];
  auto [p, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, p);
}

std::string normalize_decimal(std::string_view text, int precision, int scale) {
  LogicalType type = LogicalType::decimal(precision, scale);
  std::string_view t = text;
  bool negative = false;
  if (!t.empty() && (t[0] == '-' || t[0] == '+')) {
    negative = t[0] == '-';
    t.remove_prefix(1);
  }
  auto dot = t.find('.');
  std::string_view int_part = t.substr(0, dot);
  std::string_view frac_part =
      dot == std::string_view::npos ? std::string_view() : t.substr(dot + 1);
  bool int_ok = int_part.empty() || all_digits(int_part);
  bool frac_ok = frac_part.empty() || all_digits(frac_part);
  if (!int_ok || !frac_ok || (int_part.empty() && frac_part.empty())) {
    mismatch(text, type, "expected plain decimal digits");
  }
  while (!int_part.empty() && int_part.front() == '0') int_part.remove_prefix(1);
  std::string frac(frac_part);
  while (static_cast<int>(frac.size()) > scale) {
    if (frac.back() != '0') {
      throw Error(ErrorCode::TypeOverflow,
                  fmt::format("value {} has more than {} fractional digits ({})", preview(text),
                              scale, type.to_string()),
                  "widen the scale of the column, or round the values at the source");
    }
    frac.pop_back();
  }
  if (static_cast<int>(int_part.size()) > precision - scale) {
    throw Error(ErrorCode::TypeOverflow,
                fmt::format("value {} has more than {} integer digits ({})", preview(text),
                            precision - scale, type.to_string()),
                "widen the precision of the column");
  }
  frac.append(static_cast<size_t>(scale) - frac.size(), '0');
  bool zero = int_part.empty() && frac.find_first_not_of('0') == std::string::npos;
  std::string out;
  if (negative && !zero) out.push_back('-');
  out += int_part.empty() ? std::string("0") : std::string(int_part);
  if (scale > 0) out += "." + frac;
  return out;
}

std::string normalize_timestamp(std::string_view text, bool tz) {
  LogicalType type = LogicalType::timestamp(6, tz);
  if (text.size() < 10) mismatch(text, type, "expected YYYY-MM-DDTHH:MM:SS");
  std::string date = normalize_date(text.substr(0, 10), type);
  std::string time = "00:00:00";
  std::string_view rest = text.substr(10);
  if (!rest.empty()) {
    if (rest[0] != 'T' && rest[0] != 't' && rest[0] != ' ') {
      mismatch(text, type, "expected YYYY-MM-DDTHH:MM:SS");
    }
    auto parsed = parse_time_prefix(rest.substr(1));
    if (!parsed) mismatch(text, type, "expected YYYY-MM-DDTHH:MM:SS");
    time = parsed->first;
    rest = rest.substr(1 + parsed->second);
  }
  // Offset suffix: Z, +hh:mm, +hhmm, +hh (one blank before it is tolerated).
  int offset_minutes = 0;
  bool has_offset = false;
  if (!rest.empty() && rest[0] == ' ') rest.remove_prefix(1);
  if (rest == "Z" || rest == "z") {
    has_offset = true;
  } else if (!rest.empty() && (rest[0] == '+' || rest[0] == '-')) {
    std::string digits;
    for (char c : rest.substr(1))
      if (c != ':') digits.push_back(c);
    if (!all_digits(digits) || (digits.size() != 2 && digits.size() != 4)) {
      mismatch(text, type, "bad UTC offset");
    }
    int hh = parse_fixed(std::string_view(digits).substr(0, 2));
    int mm = digits.size() == 4 ? parse_fixed(std::string_view(digits).substr(2, 2)) : 0;
    offset_minutes = (rest[0] == '-' ? -1 : 1) * (hh * 60 + mm);
    has_offset = true;
  } else if (!rest.empty()) {
    mismatch(text, type, "unexpected text after the time");
  }
  if (has_offset && offset_minutes != 0) {
    if (!tz) {
      mismatch(text, type,
               "a timestamp without time zone cannot carry a UTC offset; declare the column "
               "TIMESTAMPTZ");
    }
    using namespace std::chrono;
    year_month_day ymd{year{parse_fixed(date.substr(0, 4))},
                       month{static_cast<unsigned>(parse_fixed(date.substr(5, 2)))},
                       day{static_cast<unsigned>(parse_fixed(date.substr(8, 2)))}};
    sys_seconds when = sys_days(ymd) + hours(parse_fixed(time.substr(0, 2))) +
                       minutes(parse_fixed(time.substr(3, 2))) +
                       seconds(parse_fixed(time.substr(6, 2))) - minutes(offset_minutes);
    auto day_start = floor<days>(when);
    year_month_day utc{day_start};
    hh_mm_ss hms{when - day_start};
    date = fmt::format("{:04}-{:02}-{:02}", static_cast<int>(utc.year()),
                       static_cast<unsigned>(utc.month()), static_cast<unsigned>(utc.day()));
    std::string frac = time.size() > 8 ? time.substr(8) : std::string();
    time = fmt::format("{:02}:{:02}:{:02}{}", hms.hours().count(), hms.minutes().count(),
                       hms.seconds().count(), frac);
  }
  return date + "T" + time + (tz ? "Z" : "");
}

void bind_cell(SqliteStmt& stmt, int index, const LogicalType& type, std::string_view cell) {
  switch (type.id) {
    case TypeId::Bool:
      if (cell == "true") {
        stmt.bind_int64(index, 1);
      } else if (cell == "false") {
        stmt.bind_int64(index, 0);
      } else {
        mismatch(cell, type, "expected true or false");
      }
      return;
    case TypeId::Int16:
    case TypeId::Int32:
    case TypeId::Int64: {
      auto v = parse_number<int64_t>(cell);
      if (!v) mismatch(cell, type);
      check_int_range(*v, type, cell);
      stmt.bind_int64(index, *v);
      return;
    }
    case TypeId::Float32:
    case TypeId::Float64: {
      if (auto special = parse_special(cell)) {
        // SQLite stores a bound NaN as NULL; the text survives a REAL column (it is not a
        // number, so the affinity leaves it alone) and reads back as NaN.
        if (std::isnan(*special)) {
          stmt.bind_text(index, "NaN");
        } else {
          stmt.bind_double(index, *special);
        }
        return;
      }
      auto v = parse_number<double>(cell);
      if (!v) mismatch(cell, type);
      stmt.bind_double(index, *v);
      return;
    }
    case TypeId::Bytes:
      stmt.bind_blob(index, cell);
      return;
    default:
      stmt.bind_text(index, cell);
      return;
  }
}

void append_cell(const SqliteStmt& stmt, int col, const LogicalType& type, RecordBatch& batch) {
  int storage = stmt.column_type(col);
  if (storage == SQLITE_NULL) {
    batch.append_null();
    return;
  }
  // Text shown in messages for a non-text value.
  auto shown = [&]() -> std::string {
    switch (storage) {
      case SQLITE_INTEGER:
        return integer_text(stmt.column_int64(col));
      case SQLITE_FLOAT:
        return format_double(stmt.column_double(col));
      case SQLITE_BLOB:
        return fmt::format("<{} bytes>", stmt.column_blob(col).size());
      default:
        return std::string(stmt.column_text(col));
    }
  };
  switch (type.id) {
    case TypeId::Bool: {
      if (storage == SQLITE_INTEGER || storage == SQLITE_FLOAT) {
        double v = stmt.column_double(col);
        if (v == 0) return batch.append("false");
        if (v == 1) return batch.append("true");
      } else if (storage == SQLITE_TEXT) {
        auto t = stmt.column_text(col);
        if (iequals(t, "true") || iequals(t, "t") || t == "1") return batch.append("true");
        if (iequals(t, "false") || iequals(t, "f") || t == "0") return batch.append("false");
      }
      storage_mismatch(storage, shown(), type);
    }
    case TypeId::Int16:
    case TypeId::Int32:
    case TypeId::Int64: {
      int64_t v = 0;
      if (storage == SQLITE_INTEGER) {
        v = stmt.column_int64(col);
      } else if (storage == SQLITE_FLOAT) {
        double d = stmt.column_double(col);
        if (!(std::trunc(d) == d && std::fabs(d) < 9.2e18))
          storage_mismatch(storage, shown(), type);
        v = static_cast<int64_t>(d);
      } else if (storage == SQLITE_TEXT) {
        auto parsed = parse_number<int64_t>(stmt.column_text(col));
        if (!parsed) storage_mismatch(storage, shown(), type);
        v = *parsed;
      } else {
        storage_mismatch(storage, shown(), type);
      }
      check_int_range(v, type, integer_text(v));
      return batch.append(integer_text(v));
    }
    case TypeId::Float32:
    case TypeId::Float64: {
      double d = 0;
      if (storage == SQLITE_FLOAT || storage == SQLITE_INTEGER) {
        d = stmt.column_double(col);
      } else if (storage == SQLITE_TEXT) {
        auto t = stmt.column_text(col);
        if (auto special = parse_special(t)) {
          d = *special;
        } else if (auto parsed = parse_number<double>(t)) {
          d = *parsed;
        } else {
          storage_mismatch(storage, shown(), type);
        }
      } else {
        storage_mismatch(storage, shown(), type);
      }
      return batch.append(type.id == TypeId::Float32 ? format_float(static_cast<float>(d))
                                                     : format_double(d));
    }
    case TypeId::Decimal: {
      std::string text;
      if (storage == SQLITE_TEXT) {
        text = std::string(stmt.column_text(col));
      } else if (storage == SQLITE_INTEGER) {
        text = integer_text(stmt.column_int64(col));
      } else if (storage == SQLITE_FLOAT) {
        double d = stmt.column_double(col);
        if (!std::isfinite(d)) storage_mismatch(storage, shown(), type);
        text = fmt::format("{:.{}f}", d, type.scale);
      } else {
        storage_mismatch(storage, shown(), type);
      }
      return batch.append(normalize_decimal(text, type.precision, type.scale));
    }
    case TypeId::String:
    case TypeId::Bytes:
    case TypeId::Json: {
      if (storage == SQLITE_TEXT) return batch.append(stmt.column_text(col));
      if (storage == SQLITE_INTEGER) return batch.append(integer_text(stmt.column_int64(col)));
      if (storage == SQLITE_FLOAT) {
        double d = stmt.column_double(col);
        if (type.id == TypeId::Json && !std::isfinite(d)) storage_mismatch(storage, shown(), type);
        return batch.append(format_double(d));
      }
      if (type.id == TypeId::Json) storage_mismatch(storage, shown(), type);
      return batch.append(stmt.column_blob(col));
    }
    case TypeId::Date:
      if (storage != SQLITE_TEXT) storage_mismatch(storage, shown(), type);
      return batch.append(normalize_date(stmt.column_text(col), type));
    case TypeId::Time:
      if (storage != SQLITE_TEXT) storage_mismatch(storage, shown(), type);
      return batch.append(normalize_time(stmt.column_text(col), type));
    case TypeId::Timestamp:
      if (storage != SQLITE_TEXT) storage_mismatch(storage, shown(), type);
      return batch.append(normalize_timestamp(stmt.column_text(col), type.tz));
    case TypeId::Uuid:
      if (storage == SQLITE_BLOB && stmt.column_blob(col).size() == 16) {
        return batch.append(format_uuid_blob(stmt.column_blob(col)));
      }
      if (storage != SQLITE_TEXT) storage_mismatch(storage, shown(), type);
      return batch.append(normalize_uuid(stmt.column_text(col), type));
  }
  storage_mismatch(storage, shown(), type);
}

nlohmann::json column_json(const SqliteStmt& stmt, int col) {
  switch (stmt.column_type(col)) {
    case SQLITE_NULL:
      return nullptr;
    case SQLITE_INTEGER:
      return stmt.column_int64(col);
    case SQLITE_FLOAT: {
      double d = stmt.column_double(col);
      // JSON has no NaN/Infinity; keep them as the text SQLite would compare them by.
      if (!std::isfinite(d)) return format_double(d);
      return d;
    }
    case SQLITE_TEXT:
      return std::string(stmt.column_text(col));
    default:
      throw Error(ErrorCode::ConfigBadValue,
                  "the cursor column holds BLOB values, which cannot be kept as a position",
                  "choose a cursor column holding integers, numbers or ISO 8601 text");
  }
}

void bind_json(SqliteStmt& stmt, int index, const nlohmann::json& value) {
  if (value.is_null()) {
    stmt.bind_null(index);
  } else if (value.is_number_unsigned()) {
    auto u = value.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      stmt.bind_double(index, static_cast<double>(u));
    } else {
      stmt.bind_int64(index, static_cast<int64_t>(u));
    }
  } else if (value.is_number_integer()) {
    stmt.bind_int64(index, value.get<int64_t>());
  } else if (value.is_number_float()) {
    stmt.bind_double(index, value.get<double>());
  } else if (value.is_string()) {
    stmt.bind_text(index, value.get_ref<const std::string&>());
  } else if (value.is_boolean()) {
    stmt.bind_int64(index, value.get<bool>() ? 1 : 0);
  } else {
    throw Error(ErrorCode::ConfigBadValue,
                fmt::format("the stored cursor position {} is not a single value", value.dump()),
                "fix it with `dpone state set` or start over with `dpone state reset`");
  }
}

std::string json_display(const nlohmann::json& value) {
  if (value.is_string()) return value.get<std::string>();
  return value.dump();
}

}  // namespace dpone::sqlite
