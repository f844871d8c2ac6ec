#include "core/types.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>

namespace dpone {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  out.erase(std::remove_if(out.begin(), out.end(), [](char c) { return c == ' '; }), out.end());
  return out;
}

// Parses "name(a)" or "name(a,b)"; returns false when the text has no argument list.
bool split_args(const std::string& t, std::string& name, std::vector<int>& args) {
  auto open = t.find('(');
  if (open == std::string::npos) {
    name = t;
    return false;
  }
  if (t.back() != ')') return false;
  name = t.substr(0, open);
  std::string inner = t.substr(open + 1, t.size() - open - 2);
  size_t start = 0;
  while (start <= inner.size()) {
    auto comma = inner.find(',', start);
    std::string part = inner.substr(start, comma == std::string::npos ? std::string::npos
                                                                      : comma - start);
    int v = 0;
    auto [p, ec] = std::from_chars(part.data(), part.data() + part.size(), v);
    if (ec != std::errc() || p != part.data() + part.size()) {
      args.clear();
      return true;
    }
    args.push_back(v);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return true;
}

}  // namespace

std::string LogicalType::to_string() const {
  switch (id) {
    case TypeId::Bool: return "bool";
    case TypeId::Int16: return "int16";
    case TypeId::Int32: return "int32";
    case TypeId::Int64: return "int64";
    case TypeId::Float32: return "float32";
    case TypeId::Float64: return "float64";
    case TypeId::Decimal:
      return "decimal(" + std::to_string(precision) + "," + std::to_string(scale) + ")";
    case TypeId::String:
      return length > 0 ? "varchar(" + std::to_string(length) + ")" : "string";
    case TypeId::Bytes: return "bytes";
    case TypeId::Date: return "date";
    case TypeId::Time: return "time";
    case TypeId::Timestamp: {
      std::string base = tz ? "timestamptz" : "timestamp";
      return precision == 6 ? base : base + "(" + std::to_string(precision) + ")";
    }
    case TypeId::Json: return "json";
    case TypeId::Uuid: return "uuid";
  }
  return "string";
}

std::optional<LogicalType> LogicalType::parse(std::string_view text) {
  std::string t = lower(text);
  std::string name;
  std::vector<int> args;
  bool has_args = split_args(t, name, args);
  if (has_args && args.empty()) return std::nullopt;
  auto plain = [&](TypeId id) -> std::optional<LogicalType> {
    if (has_args) return std::nullopt;
    return LogicalType::of(id);
  };
  if (name == "bool" || name == "boolean") return plain(TypeId::Bool);
  if (name == "int16" || name == "smallint") return plain(TypeId::Int16);
  if (name == "int32" || name == "int" || name == "integer") return plain(TypeId::Int32);
  if (name == "int64" || name == "bigint") return plain(TypeId::Int64);
  if (name == "float32" || name == "real") return plain(TypeId::Float32);
  if (name == "float64" || name == "double" || name == "float") return plain(TypeId::Float64);
  if (name == "string" || name == "text") return plain(TypeId::String);
  if (name == "bytes" || name == "blob") return plain(TypeId::Bytes);
  if (name == "date") return plain(TypeId::Date);
  if (name == "time") return plain(TypeId::Time);
  if (name == "json") return plain(TypeId::Json);
  if (name == "uuid") return plain(TypeId::Uuid);
  if (name == "varchar") {
    if (args.size() != 1 || args[0] <= 0) return std::nullopt;
    return LogicalType::varchar(args[0]);
  }
  if (name == "decimal" || name == "numeric") {
    if (!has_args) return LogicalType::decimal(38, 9);
    int p = args[0];
    int s = args.size() > 1 ? args[1] : 0;
    if (args.size() > 2 || p < 1 || p > 76 || s < 0 || s > p) return std::nullopt;
    return LogicalType::decimal(p, s);
  }
  if (name == "timestamp" || name == "timestamptz") {
    int p = 6;
    if (has_args) {
      if (args.size() != 1 || args[0] < 0 || args[0] > 9) return std::nullopt;
      p = args[0];
    }
    return LogicalType::timestamp(p, name == "timestamptz");
  }
  return std::nullopt;
}

int Schema::find(std::string_view name) const {
  for (size_t i = 0; i < columns.size(); ++i)
    if (columns[i].name == name) return static_cast<int>(i);
  return -1;
}

std::vector<std::string> Schema::names() const {
  std::vector<std::string> out;
  out.reserve(columns.size());
  for (const auto& c : columns) out.push_back(c.name);
  return out;
}

}  // namespace dpone
