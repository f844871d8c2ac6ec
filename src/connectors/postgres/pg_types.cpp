#include "connectors/postgres/pg_types.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstring>

#include "core/errors.hpp"

namespace dpone::pg {

namespace {

bool starts_with(std::string_view s, std::string_view p) {
  return s.substr(0, p.size()) == p;
}

// "(a)" or "(a,b)" after `prefix`; returns false when absent.
bool parse_mods(std::string_view rest, int& a, int& b, bool& has_b) {
  has_b = false;
  if (rest.empty() || rest.front() != '(') return false;
  auto close = rest.find(')');
  if (close == std::string_view::npos) return false;
  std::string_view inner = rest.substr(1, close - 1);
  auto comma = inner.find(',');
  std::string_view first = inner.substr(0, comma);
  if (std::from_chars(first.data(), first.data() + first.size(), a).ec != std::errc()) return false;
  if (comma != std::string_view::npos) {
    std::string_view second = inner.substr(comma + 1);
    while (!second.empty() && second.front() == ' ') second.remove_prefix(1);
    if (std::from_chars(second.data(), second.data() + second.size(), b).ec != std::errc())
      return false;
    has_b = true;
  }
  return true;
}

[[noreturn]] void mismatch(std::string_view what, std::string_view value) {
  std::string shown(value.substr(0, 60));
  throw Error(ErrorCode::TypeMismatch,
              fmt::format("the value '{}' cannot be represented as {}", shown, what),
              "read the column as text (e.g. a `query` with col::text) or filter such values");
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// A date/timestamp the canonical forms can hold: not infinity, not BC.
void check_finite(std::string_view pg, std::string_view what) {
  if (pg.empty() || pg == "infinity" || pg == "-infinity" ||
      pg.find(" BC") != std::string_view::npos || !std::isdigit(static_cast<unsigned char>(pg[0])))
    mismatch(what, pg);
}

}  // namespace

PgColumnType map_pg_type(std::string_view f, char category) {
  PgColumnType t;
  t.pg_name = std::string(f);
  int a = 0, b = 0;
  bool has_b = false;
  if (category == 'A') {
    t.type = LogicalType::of(TypeId::Json);
    t.as_json = true;
    t.known = false;
    return t;
  }
  if (category == 'E') {
    t.type = LogicalType::of(TypeId::String);
    t.known = false;
    return t;
  }
  if (f == "boolean") {
    t.type = LogicalType::of(TypeId::Bool);
    t.read = ReadKind::Bool;
  } else if (f == "smallint") {
    t.type = LogicalType::of(TypeId::Int16);
  } else if (f == "integer") {
    t.type = LogicalType::of(TypeId::Int32);
  } else if (f == "bigint") {
    t.type = LogicalType::of(TypeId::Int64);
  } else if (f == "real") {
    t.type = LogicalType::of(TypeId::Float32);
    t.read = ReadKind::Float32;
  } else if (f == "double precision") {
    t.type = LogicalType::of(TypeId::Float64);
    t.read = ReadKind::Float64;
  } else if (starts_with(f, "numeric")) {
    if (parse_mods(f.substr(7), a, b, has_b)) {
      t.type = LogicalType::decimal(a, has_b ? b : 0);
      t.read = ReadKind::Decimal;
    } else {
      // Unconstrained numeric has no fixed scale: its exact text is kept as a string.
      t.type = LogicalType::of(TypeId::String);
      t.known = false;
    }
  } else if (f == "text" || f == "character varying" || f == "name" || f == "citext") {
    t.type = LogicalType::of(TypeId::String);
  } else if (starts_with(f, "character varying(")) {
    parse_mods(f.substr(17), a, b, has_b);
    t.type = LogicalType::varchar(a);
  } else if (starts_with(f, "character(")) {
    // char(n) values come blank-padded to n; they are kept as the server prints them.
    parse_mods(f.substr(9), a, b, has_b);
    t.type = LogicalType::varchar(a);
  } else if (f == "character" || f == "bpchar") {
    t.type = LogicalType::varchar(1);
  } else if (f == "date") {
    t.type = LogicalType::of(TypeId::Date);
    t.read = ReadKind::Date;
  } else if (starts_with(f, "time") && !starts_with(f, "timestamp") &&
             f.find("without time zone") != std::string_view::npos) {
    t.type = LogicalType::of(TypeId::Time);
  } else if (starts_with(f, "timestamp")) {
    bool tz = f.find("with time zone") != std::string_view::npos &&
              f.find("without") == std::string_view::npos;
    int p = 6;
    if (parse_mods(f.substr(9), a, b, has_b)) p = a;
    t.type = LogicalType::timestamp(p, tz);
    t.read = tz ? ReadKind::TimestampTz : ReadKind::Timestamp;
  } else if (f == "uuid") {
    t.type = LogicalType::of(TypeId::Uuid);
  } else if (f == "json" || f == "jsonb") {
    t.type = LogicalType::of(TypeId::Json);
  } else if (f == "bytea") {
    t.type = LogicalType::of(TypeId::Bytes);
    t.read = ReadKind::Bytea;
  } else {
    // interval, time with time zone, money, inet, geometric, range types, ...: kept as
    // the server prints them.
    t.type = LogicalType::of(TypeId::String);
    t.known = false;
  }
  return t;
}

std::string declared_type(const LogicalType& type) {
  switch (type.id) {
    case TypeId::Bool:
      return "boolean";
    case TypeId::Int16:
      return "smallint";
    case TypeId::Int32:
      return "integer";
    case TypeId::Int64:
      return "bigint";
    case TypeId::Float32:
      return "real";
    case TypeId::Float64:
      return "double precision";
    case TypeId::Decimal:
      return fmt::format("numeric({},{})", type.precision, type.scale);
    case TypeId::String:
      return type.length > 0 ? fmt::format("character varying({})", type.length) : "text";
    case TypeId::Bytes:
      return "bytea";
    case TypeId::Date:
      return "date";
    case TypeId::Time:
      return "time without time zone";
    case TypeId::Timestamp: {
      int p = std::clamp(type.precision, 0, 6);
      return fmt::format("timestamp({}) {} time zone", p, type.tz ? "with" : "without");
    }
    case TypeId::Json:
      return "jsonb";
    case TypeId::Uuid:
      return "uuid";
  }
  return "text";
}

bool copy_text_passes_through(const PgColumnType& t) {
  const TypeId id = t.type.id;
  switch (t.read) {
    case ReadKind::Text:
      return true;  // canonical text == the server's text
    case ReadKind::Bool:
      return id == TypeId::Bool;
    case ReadKind::Float32:
      return id == TypeId::Float32;
    case ReadKind::Float64:
      return id == TypeId::Float64;
    case ReadKind::Decimal:
      return id == TypeId::Decimal;
    case ReadKind::Date:
      return id == TypeId::Date;
    case ReadKind::Timestamp:
      return id == TypeId::Timestamp && !t.type.tz;
    case ReadKind::TimestampTz:
      return id == TypeId::Timestamp && t.type.tz;
    case ReadKind::Bytea:
      return id == TypeId::Bytes;
  }
  return false;
}

std::string format_double(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

std::string format_float(float v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "Infinity" : "-Infinity";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

void append_canonical(std::string& out, ReadKind kind, std::string_view pg) {
  switch (kind) {
    case ReadKind::Text:
      out.append(pg);
      return;
    case ReadKind::Bool:
      if (pg == "t") {
        out.append("true");
      } else if (pg == "f") {
        out.append("false");
      } else {
        mismatch("bool", pg);
      }
      return;
    case ReadKind::Float32:
    case ReadKind::Float64: {
      if (pg == "NaN" || pg == "Infinity" || pg == "-Infinity") {
        out.append(pg);
        return;
      }
      if (kind == ReadKind::Float64) {
        double v = 0;
        auto r = std::from_chars(pg.data(), pg.data() + pg.size(), v);
        if (r.ec != std::errc() || r.ptr != pg.data() + pg.size()) mismatch("float64", pg);
        out.append(format_double(v));
      } else {
        float v = 0;
        auto r = std::from_chars(pg.data(), pg.data() + pg.size(), v);
        if (r.ec != std::errc() || r.ptr != pg.data() + pg.size()) mismatch("float32", pg);
        out.append(format_float(v));
      }
      return;
    }
    case ReadKind::Decimal:
      // numeric(p,s) prints exactly s fractional digits already; NaN/Infinity have no
      // decimal form.
      if (pg.empty() || !(std::isdigit(static_cast<unsigned char>(pg[0])) || pg[0] == '-'))
        mismatch("decimal", pg);
      out.append(pg);
      return;
    case ReadKind::Date:
      check_finite(pg, "date");
      out.append(pg);
      return;
    case ReadKind::Timestamp:
    case ReadKind::TimestampTz: {
      check_finite(pg, kind == ReadKind::Timestamp ? "timestamp" : "timestamptz");
      size_t space = pg.find(' ');
      if (space == std::string_view::npos) mismatch("timestamp", pg);
      std::string_view date = pg.substr(0, space);
      std::string_view rest = pg.substr(space + 1);
      if (kind == ReadKind::TimestampTz) {
        // TimeZone=UTC: the offset is always +00.
        if (rest.size() < 3 || rest.substr(rest.size() - 3) != "+00") mismatch("timestamptz", pg);
        rest.remove_suffix(3);
      }
      out.append(date);
      out.push_back('T');
      out.append(rest);
      if (kind == ReadKind::TimestampTz) out.push_back('Z');
      return;
    }
    case ReadKind::Bytea: {
      if (pg.size() < 2 || pg[0] != '\\' || pg[1] != 'x' || pg.size() % 2 != 0)
        mismatch("bytes (hex bytea output)", pg);
      size_t n = (pg.size() - 2) / 2;
      size_t base = out.size();
      out.resize(base + n);
      for (size_t i = 0; i < n; ++i) {
        int hi = hex_value(pg[2 + 2 * i]);
        int lo = hex_value(pg[3 + 2 * i]);
        if (hi < 0 || lo < 0) mismatch("bytes (hex bytea output)", pg);
        out[base + i] = static_cast<char>(hi * 16 + lo);
      }
      return;
    }
  }
}

void copy_escape_append(std::string& out, std::string_view value) {
  size_t start = 0;
  for (size_t i = 0; i < value.size(); ++i) {
    char c = value[i];
    char esc = 0;
    switch (c) {
      case '\\':
        esc = '\\';
        break;
      case '\t':
        esc = 't';
        break;
      case '\n':
        esc = 'n';
        break;
      case '\r':
        esc = 'r';
        break;
      default:
        continue;
    }
    out.append(value.data() + start, i - start);
    out.push_back('\\');
    out.push_back(esc);
    start = i + 1;
  }
  out.append(value.data() + start, value.size() - start);
}

void append_copy_cell(std::string& out, const LogicalType& type, std::string_view cell) {
  if (type.id == TypeId::Bytes) {
    static constexpr char kHex[] = "0123456789abcdef";
    out.append("\\\\x");  // "\x" escaped for COPY
    for (unsigned char c : cell) {
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
    return;
  }
  copy_escape_append(out, cell);
}

bool decode_copy_field(std::string_view field, std::string& out) {
  if (field == "\\N") return false;
  for (size_t i = 0; i < field.size(); ++i) {
    char c = field[i];
    if (c != '\\' || i + 1 >= field.size()) {
      out.push_back(c);
      continue;
    }
    char n = field[++i];
    switch (n) {
      case 'b':
        out.push_back('\b');
        break;
      case 'f':
        out.push_back('\f');
        break;
      case 'n':
        out.push_back('\n');
        break;
      case 'r':
        out.push_back('\r');
        break;
      case 't':
        out.push_back('\t');
        break;
      case 'v':
        out.push_back('\v');
        break;
      case 'x': {
        int v = 0, digits = 0;
        while (digits < 2 && i + 1 < field.size() && hex_value(field[i + 1]) >= 0) {
          v = v * 16 + hex_value(field[++i]);
          ++digits;
        }
        if (digits == 0) {
          out.push_back('x');
        } else {
          out.push_back(static_cast<char>(v));
        }
        break;
      }
      default:
        if (n >= '0' && n <= '7') {
          int v = n - '0', digits = 1;
          while (digits < 3 && i + 1 < field.size() && field[i + 1] >= '0' && field[i + 1] <= '7') {
            v = v * 8 + (field[++i] - '0');
            ++digits;
          }
          out.push_back(static_cast<char>(v & 0xff));
        } else {
          out.push_back(n);
        }
    }
  }
  return true;
}

bool copy_binary_passes_through(const PgColumnType& t) {
  if (t.as_json) return false;
  if (t.known) return true;
  static const char* const kBuiltin[] = {"numeric", "time with time zone", "money", "inet",
                                         "cidr", "macaddr"};
  for (const char* b : kBuiltin) {
    if (t.pg_name == b) return true;
  }
  return t.pg_name.rfind("interval", 0) == 0 || t.pg_name.rfind("time(", 0) == 0;
}

}  // namespace dpone::pg
