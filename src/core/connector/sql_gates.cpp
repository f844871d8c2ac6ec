#include "core/connector/sql_gates.hpp"

#include <openssl/evp.h>
#include <sqlite3.h>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstring>
#include <ctime>
#include <map>

#include "core/errors.hpp"
#include "core/util/time.hpp"

namespace dpone {

namespace {

using json = nlohmann::json;

// Keys every gate takes, and the extra keys of each type.
const std::set<std::string> kCommonKeys = {"name", "type", "severity", "columns"};
const std::map<std::string, std::set<std::string>> kTypeKeys = {{"row_count", {"tolerance"}},
                                                                {"min_rows", {"min"}},
                                                                {"not_null", {}},
                                                                {"unique", {}},
                                                                {"accepted_values", {"values"}},
                                                                {"range", {"min", "max"}},
                                                                {"freshness", {"max_age"}},
                                                                {"custom_sql", {"sql"}},
                                                                {"typed_hash", {}}};

// How many columns a type takes: -1 none, 0 optional (any number), 1 exactly one, 2 one or more.
int column_rule(const std::string& type) {
  if (type == "row_count" || type == "min_rows" || type == "custom_sql") return -1;
  if (type == "typed_hash") return 0;
  if (type == "accepted_values" || type == "range" || type == "freshness") return 1;
  return 2;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return std::string(s.substr(b, e - b));
}

std::vector<std::string> columns_of(const json& gate) {
  std::vector<std::string> out;
  if (!gate.contains("columns")) return out;
  const json& c = gate["columns"];
  if (c.is_string()) out.push_back(c.get<std::string>());
  if (c.is_array())
    for (const auto& v : c)
      if (v.is_string()) out.push_back(v.get<std::string>());
  return out;
}

template <typename T>
std::optional<T> parse_number(std::string_view text) {
  T v{};
  if (text.empty()) return std::nullopt;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size()) return std::nullopt;
  return v;
}

// The text of a scalar gate parameter (numbers as written in canonical decimal).
std::optional<std::string> scalar_text(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  if (v.is_number_integer()) return v.dump();
  if (v.is_number_float()) {
    std::array<char, 64> buf{};
    auto [p, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), v.get<double>());
    return std::string(buf.data(), p);
  }
  return std::nullopt;
}

// tolerance: 3 (rows) or "2.5%" (of the source rows).
struct Tolerance {
  double value = 0;
  bool percent = false;
};

std::optional<Tolerance> parse_tolerance(const json& v) {
  if (v.is_null()) return Tolerance{};
  if (v.is_number_integer() && v.get<int64_t>() >= 0)
    return Tolerance{static_cast<double>(v.get<int64_t>()), false};
  if (!v.is_string()) return std::nullopt;
  std::string t = trim(v.get<std::string>());
  bool pct = !t.empty() && t.back() == '%';
  if (pct) t = trim(t.substr(0, t.size() - 1));
  auto d = parse_number<double>(t);
  if (!d || *d < 0 || !std::isfinite(*d)) return std::nullopt;
  if (!pct && std::floor(*d) != *d) return std::nullopt;
  return Tolerance{*d, pct};
}

bool is_numeric(TypeId id) {
  return id == TypeId::Int16 || id == TypeId::Int32 || id == TypeId::Int64 ||
         id == TypeId::Float32 || id == TypeId::Float64 || id == TypeId::Decimal;
}

bool looks_numeric(std::string_view v) {
  return parse_number<double>(v).has_value();
}

std::string shorten(std::string_view v) {
  constexpr size_t kMax = 60;
  if (v.size() <= kMax) return std::string(v);
  return std::string(v.substr(0, kMax)) + "...";
}

// "a=1, b='x', c=NULL": numbers and booleans bare (by the column's type when the staged
// schema has it, else by the look of the value), other values quoted; `quote_all` quotes
// every non-NULL value (the PostgreSQL sink shows values as quote_literal does).
std::string show_row(const SqlRow& row, const Schema& schema, bool quote_all) {
  std::vector<std::string> parts;
  for (const auto& [name, value] : row) {
    if (!value) {
      parts.push_back(name + "=NULL");
      continue;
    }
    bool bare = false;
    if (!quote_all) {
      int idx = schema.find(name);
      bare = idx >= 0 ? (is_numeric(schema.columns[static_cast<size_t>(idx)].type.id) ||
                         schema.columns[static_cast<size_t>(idx)].type.id == TypeId::Bool)
                      : looks_numeric(*value);
    }
    parts.push_back(bare ? name + "=" + *value : name + "='" + shorten(*value) + "'");
  }
  return fmt::format("{}", fmt::join(parts, ", "));
}

int64_t int_of(const std::optional<std::string>& v, const std::string& sql) {
  if (!v) return 0;
  auto n = parse_number<int64_t>(trim(*v));
  if (!n) {
    // Some drivers return count(*) sums as decimals ("3.0"): accept an integral double.
    auto d = parse_number<double>(trim(*v));
    if (d && std::floor(*d) == *d) return static_cast<int64_t>(*d);
    throw Error(ErrorCode::Internal,
                fmt::format("gate query returned '{}' where a number was expected: {}", *v, sql));
  }
  return *n;
}

std::string strip_sql(std::string sql) {
  sql = trim(sql);
  while (!sql.empty() &&
         (sql.back() == ';' || std::isspace(static_cast<unsigned char>(sql.back()))))
    sql.pop_back();
  return sql;
}

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (size_t pos = text.find(from); pos != std::string::npos;
       pos = text.find(from, pos + to.size()))
    text.replace(pos, from.size(), to);
  return text;
}

// UTC "YYYY-MM-DDTHH:MM:SS" of now minus `seconds`.
std::string utc_threshold(int64_t seconds) {
  auto t = std::chrono::system_clock::to_time_t(data_now()) -
           static_cast<std::time_t>(seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

std::string hex_bytes(std::string_view bytes) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

std::string float_bits(double v, bool is32) {
  if (std::isnan(v)) return "NaN";
  if (is32) return fmt::format("{:08x}", std::bit_cast<uint32_t>(static_cast<float>(v)));
  return fmt::format("{:016x}", std::bit_cast<uint64_t>(v));
}

std::optional<double> parse_float_text(std::string_view t) {
  if (t == "NaN") return std::nan("");
  if (t == "Infinity") return HUGE_VAL;
  if (t == "-Infinity") return -HUGE_VAL;
  return parse_number<double>(t);
}

}  // namespace

// ---- manifest checks -------------------------------------------------------------------

std::optional<int64_t> parse_duration_seconds(std::string_view text) {
  std::string t = trim(text);
  if (t.size() < 2) return std::nullopt;
  char unit = static_cast<char>(std::tolower(static_cast<unsigned char>(t.back())));
  auto n = parse_number<int64_t>(std::string_view(t).substr(0, t.size() - 1));
  if (!n || *n <= 0) return std::nullopt;
  int64_t mult = 0;
  switch (unit) {
    case 's':
      mult = 1;
      break;
    case 'm':
      mult = 60;
      break;
    case 'h':
      mult = 3600;
      break;
    case 'd':
      mult = 86400;
      break;
    case 'w':
      mult = 7 * 86400;
      break;
    default:
      return std::nullopt;
  }
  return *n * mult;
}

std::vector<std::pair<std::string, std::string>> check_gate_spec(const json& gate) {
  std::vector<std::pair<std::string, std::string>> out;
  if (!gate.is_object()) return out;
  // An invalid value is null after schema validation (already reported there).
  const std::string type =
      gate.contains("type") && gate["type"].is_string() ? gate["type"].get<std::string>() : "";
  auto allowed = kTypeKeys.find(type);
  if (allowed == kTypeKeys.end()) return out;  // the schema's enum reports it
  for (const auto& [key, value] : gate.items()) {
    if (value.is_null() || kCommonKeys.count(key) || allowed->second.count(key)) continue;
    if (key.rfind("__", 0) == 0) continue;  // runtime annotations (kSourceKey)
    out.emplace_back(key, fmt::format("'{}' does not apply to a {} gate", key, type));
  }
  const auto cols = columns_of(gate);
  const int rule = column_rule(type);
  if (rule == -1 && !cols.empty())
    out.emplace_back(
        "columns", fmt::format("a {} gate checks the whole staged table: remove 'columns'", type));
  if (rule == 1 && cols.size() != 1)
    out.emplace_back("columns", fmt::format("a {} gate checks exactly one column (it names {})",
                                            type, cols.size()));
  if (rule == 2 && cols.empty())
    out.emplace_back("columns",
                     fmt::format("a {} gate needs 'columns' (the column(s) it checks)", type));
  auto has = [&](const char* k) { return gate.contains(k) && !gate[k].is_null(); };
  if (type == "row_count" && has("tolerance") && !parse_tolerance(gate["tolerance"]))
    out.emplace_back(
        "tolerance",
        "tolerance is a number of rows (3) or a percentage of the source rows (\"2.5%\")");
  if (type == "min_rows") {
    if (!has("min"))
      out.emplace_back("min", "a min_rows gate needs 'min' (the fewest rows the load may stage)");
    else if (!gate["min"].is_number_integer() || gate["min"].get<int64_t>() < 0)
      out.emplace_back("min", "min is a whole number of rows, 0 or more");
  }
  if (type == "accepted_values") {
    if (!has("values") || !gate["values"].is_array() || gate["values"].empty()) {
      out.emplace_back("values", "an accepted_values gate needs 'values' (a non-empty list)");
    } else {
      for (const auto& v : gate["values"])
        if (!v.is_primitive() || v.is_null()) {
          out.emplace_back(
              "values",
              "values are scalars (text, numbers, true/false); NULLs are checked by not_null");
          break;
        }
    }
  }
  if (type == "range") {
    if (!has("min") && !has("max"))
      out.emplace_back("min", "a range gate needs 'min', 'max' or both (inclusive bounds)");
    for (const char* k : {"min", "max"})
      if (has(k) && !scalar_text(gate[k]))
        out.emplace_back(k, fmt::format("{} is a number, a date or a timestamp", k));
  }
  if (type == "freshness") {
    if (!has("max_age"))
      out.emplace_back("max_age",
                       "a freshness gate needs 'max_age' (e.g. \"24h\", \"30m\", \"7d\")");
    else if (!gate["max_age"].is_string() ||
             !parse_duration_seconds(gate["max_age"].get<std::string>()))
      out.emplace_back("max_age",
                       "max_age is a positive whole number with a unit s, m, h, d or w (\"24h\")");
  }
  if (type == "custom_sql") {
    if (!has("sql") || !gate["sql"].is_string()) {
      out.emplace_back(
          "sql", "a custom_sql gate needs 'sql': a SELECT returning the failing rows of {staging}");
    } else {
      std::string sql = lower(strip_sql(gate["sql"].get<std::string>()));
      if (sql.rfind("select", 0) != 0 && sql.rfind("with", 0) != 0)
        out.emplace_back(
            "sql", "custom_sql is one SELECT (or WITH ... SELECT) returning the failing rows");
      else if (sql.find("{staging}") == std::string::npos)
        out.emplace_back("sql",
                         "custom_sql must read the staged rows through the {staging} placeholder");
      else if (sql.find(';') != std::string::npos)
        out.emplace_back("sql", "custom_sql is a single statement (no ';' inside)");
    }
  }
  return out;
}

// ---- typed hash ----------------------------------------------------------------------

namespace {

// One fetched MD5 implementation and one context per thread: EVP_Digest would look the
// algorithm up again for every row.
struct Md5 {
  EVP_MD* md = EVP_MD_fetch(nullptr, "MD5", nullptr);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  ~Md5() {
    EVP_MD_CTX_free(ctx);
    EVP_MD_free(md);
  }
};

}  // namespace

uint64_t md5_prefix64(std::string_view text) {
  thread_local Md5 h;
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int len = 0;
  if (!h.md || !h.ctx || EVP_DigestInit_ex2(h.ctx, h.md, nullptr) != 1 ||
      EVP_DigestUpdate(h.ctx, text.data(), text.size()) != 1 ||
      EVP_DigestFinal_ex(h.ctx, md.data(), &len) != 1 || len < 8)
    throw Error(ErrorCode::Internal,
                "MD5 digest failed (OpenSSL EVP; is the default provider available?)");
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | md[static_cast<size_t>(i)];
  return v;
}

std::optional<uint64_t> parse_sum_mod64(std::string_view text) {
  std::string t = trim(text);
  bool neg = !t.empty() && t[0] == '-';
  size_t i = neg ? 1 : 0;
  // PostgreSQL's numeric sum may print as "123" or "123.0"-free; allow no fraction.
  if (i >= t.size()) return std::nullopt;
  uint64_t v = 0;
  for (; i < t.size(); ++i) {
    if (!std::isdigit(static_cast<unsigned char>(t[i]))) return std::nullopt;
    v = v * 10 + static_cast<uint64_t>(t[i] - '0');  // wraps modulo 2^64 by definition
  }
  return neg ? (~v + 1) : v;
}

std::string hash_form(const LogicalType& type, std::string_view canonical) {
  switch (type.id) {
    case TypeId::Float32:
    case TypeId::Float64: {
      auto v = parse_float_text(canonical);
      if (!v) return std::string(canonical);  // cannot be staged either; the sides will differ
      return float_bits(*v, type.id == TypeId::Float32);
    }
    case TypeId::Bytes:
      return hex_bytes(canonical);
    case TypeId::Time: {
      std::string t(canonical);
      if (t.find('.') != std::string::npos) {
        while (!t.empty() && t.back() == '0') t.pop_back();
        if (!t.empty() && t.back() == '.') t.pop_back();
      }
      return t;
    }
    default:
      return std::string(canonical);
  }
}

TypedHasher::TypedHasher(const Schema& schema, std::vector<size_t> columns)
    : columns_(std::move(columns)) {
  for (size_t c : columns_) types_.push_back(schema.columns.at(c).type);
}

void TypedHasher::add(const RecordBatch& batch) {
  for (size_t r = 0; r < batch.num_rows(); ++r) {
    row_.clear();
    for (size_t i = 0; i < columns_.size(); ++i) {
      size_t c = columns_[i];
      if (batch.is_null(r, c)) {
        row_ += 'N';
        continue;
      }
      std::string f = hash_form(types_[i], batch.cell(r, c));
      row_ += std::to_string(f.size());
      row_ += ':';
      row_ += f;
    }
    sum_ += md5_prefix64(row_);
    ++rows_;
  }
}

std::vector<size_t> typed_hash_columns(const GateSpec& gate, const Schema& schema,
                                       const std::string& where) {
  std::vector<size_t> out;
  if (gate.columns.empty()) {
    for (size_t i = 0; i < schema.columns.size(); ++i)
      if (schema.columns[i].type.id != TypeId::Json) out.push_back(i);
    return out;
  }
  for (const auto& name : gate.columns) {
    int idx = schema.find(name);
    if (idx < 0)
      throw Error(ErrorCode::ConfigBadValue,
                  fmt::format("{}: gate '{}' names the column '{}', which the stream does not have",
                              where, gate.name, name));
    if (schema.columns[static_cast<size_t>(idx)].type.id == TypeId::Json)
      throw Error(ErrorCode::ConfigBadValue,
                  fmt::format("{}: gate '{}' (typed_hash) names the json column '{}', which cannot "
                              "be hashed exactly",
                              where, gate.name, name),
                  "a sink may rewrite JSON text (PostgreSQL jsonb reorders keys and spaces); leave "
                  "json columns out "
                  "of typed_hash (they are left out by default)");
    out.push_back(static_cast<size_t>(idx));
  }
  return out;
}

// ---- running gates ---------------------------------------------------------------------

Schema staged_gate_schema(const std::vector<GateSpec>& gates, Schema catalog) {
  for (const auto& g : gates) {
    auto it = g.params.find(kSourceKey);
    if (it == g.params.end() || !it->is_object() || !it->contains("columns")) continue;
    for (const auto& c : (*it)["columns"]) {
      int idx = catalog.find(c.value("name", ""));
      auto t = LogicalType::parse(c.value("type", ""));
      if (idx >= 0 && t) catalog.columns[static_cast<size_t>(idx)].type = *t;
    }
    break;
  }
  return catalog;
}

void validate_sql_gates(const std::vector<GateSpec>& gates, const SqlGateTarget& t) {
  for (const auto& gate : gates) {
    if (!kSqlGateTypes.count(gate.type))
      throw Error(ErrorCode::ConfigBadValue,
                  fmt::format("{}: gate '{}' has the type '{}', which dpone does not know", t.where,
                              gate.name, gate.type),
                  fmt::format("gate types: {}", fmt::join(kSqlGateTypes, ", ")));
    int rule = column_rule(gate.type);
    if (rule >= 1 && gate.columns.empty())
      throw Error(ErrorCode::ConfigBadValue, fmt::format("{}: gate '{}' ({}) names no columns",
                                                         t.where, gate.name, gate.type));
    if (rule == 1 && gate.columns.size() != 1)
      throw Error(ErrorCode::ConfigBadValue,
                  fmt::format("{}: gate '{}' ({}) checks exactly one column", t.where, gate.name,
                              gate.type));
    for (const auto& c : gate.columns)
      if (t.schema.find(c) < 0)
        throw Error(
            ErrorCode::ConfigBadValue,
            fmt::format("{}: gate '{}' names the column '{}', which the stream does not have",
                        t.where, gate.name, c),
            fmt::format("the staged columns are: {}", fmt::join(t.schema.names(), ", ")));
    if (gate.type == "freshness") {
      const auto& type = t.schema.columns[static_cast<size_t>(t.schema.find(gate.columns[0]))].type;
      if (type.id != TypeId::Date && type.id != TypeId::Timestamp)
        throw Error(
            ErrorCode::ConfigBadValue,
            fmt::format("{}: gate '{}' (freshness) needs a date or timestamp column; '{}' is {}",
                        t.where, gate.name, gate.columns[0], type.to_string()));
    }
    if (gate.type == "typed_hash") typed_hash_columns(gate, t.schema, t.where);
    json spec = gate.params.is_object() ? gate.params : json::object();
    spec["type"] = gate.type;
    spec["columns"] = gate.columns;
    for (const auto& [key, message] : check_gate_spec(spec))
      throw Error(ErrorCode::ConfigBadValue,
                  fmt::format("{}: gate '{}' key '{}': {}", t.where, gate.name, key, message));
  }
}

namespace {

class GateRun {
 public:
  GateRun(const GateSpec& gate, const SqlGateTarget& t, const SqlGateDialect& d,
          SqlGateRunner& runner, int samples)
      : g_(gate), t_(t), d_(d), runner_(runner), samples_(samples) {
    r_.name = gate.name;
    r_.type = gate.type;
    r_.severity = gate.severity;
  }

  GateResult run() {
    const std::string& type = g_.type;
    if (type == "not_null")
      not_null();
    else if (type == "unique")
      unique();
    else if (type == "accepted_values")
      accepted_values();
    else if (type == "range")
      range();
    else if (type == "min_rows")
      min_rows();
    else if (type == "row_count")
      row_count();
    else if (type == "freshness")
      freshness();
    else if (type == "custom_sql")
      custom_sql();
    else if (type == "typed_hash")
      typed_hash();
    r_.sql = fmt::format("{}", fmt::join(sql_, ";\n"));
    return std::move(r_);
  }

 private:
  std::vector<SqlRow> query(const std::string& sql) {
    sql_.push_back(sql);
    return runner_.query(sql);
  }
  int64_t count(const std::string& sql) {
    auto rows = query(sql);
    if (rows.empty() || rows[0].empty()) return 0;
    return int_of(rows[0][0].second, sql);
  }
  // leading: the first column is a count ("x=1 (3 rows)") or a row number ("row 2: x=1").
  enum class Lead { None, Count, RowNumber };
  void samples(const std::string& sql, Lead lead = Lead::None) {
    for (const auto& row : query(sql)) {
      if (lead == Lead::None || row.empty()) {
        r_.samples.push_back(show_row(row, t_.schema, d_.quote_all_samples));
        continue;
      }
      SqlRow rest(row.begin() + 1, row.end());
      const std::string first = row[0].second.value_or("?");
      const std::string shown = show_row(rest, t_.schema, d_.quote_all_samples);
      r_.samples.push_back(lead == Lead::Count ? fmt::format("{} ({} rows)", shown, first)
                                               : fmt::format("row {}: {}", first, shown));
    }
  }
  Lead row_lead() const { return d_.row_id.empty() ? Lead::None : Lead::RowNumber; }
  const LogicalType& type_of(const std::string& column) const {
    return t_.schema.columns[static_cast<size_t>(t_.schema.find(column))].type;
  }
  std::string q(const std::string& c) const { return d_.quote_ident(c); }
  std::string quoted_list() const {
    std::vector<std::string> out;
    for (const auto& c : g_.columns) out.push_back(q(c));
    return fmt::format("{}", fmt::join(out, ", "));
  }
  // "SELECT [rowid AS row, ]cols FROM stg WHERE cond [ORDER BY rowid] LIMIT n"
  std::string row_samples_sql(const std::string& cond) const {
    if (d_.row_id.empty())
      return fmt::format("SELECT {} FROM {} WHERE {} LIMIT {}", quoted_list(), t_.staging, cond,
                         samples_);
    return fmt::format("SELECT {0} AS {1}, {2} FROM {3} WHERE {4} ORDER BY {0} LIMIT {5}",
                       d_.row_id, q("row"), quoted_list(), t_.staging, cond, samples_);
  }
  // A gate parameter, null when absent (params may be null for built-in gates).
  const json& param(const char* key) const {
    static const json kNull;
    if (!g_.params.is_object()) return kNull;
    auto it = g_.params.find(key);
    return it == g_.params.end() ? kNull : *it;
  }
  json values() const { return param("values").is_array() ? param("values") : json::array(); }
  const json& source() const {
    static const json kEmpty = json::object();
    auto it = g_.params.find(kSourceKey);
    return it != g_.params.end() && it->is_object() ? *it : kEmpty;
  }
  void judge(int64_t failing) {
    r_.failing_rows = failing;
    r_.passed = failing == 0;
  }

  void not_null() {
    std::vector<std::string> tests;
    for (const auto& c : g_.columns) tests.push_back(q(c) + " IS NULL");
    const std::string cond = fmt::format("{}", fmt::join(tests, " OR "));
    judge(count(fmt::format("SELECT count(*) FROM {} WHERE {}", t_.staging, cond)));
    if (!r_.passed) samples(row_samples_sql(cond), row_lead());
  }

  void unique() {
    // NULL keys are not duplicates of each other (SQL UNIQUE semantics); not_null catches them.
    std::vector<std::string> present;
    for (const auto& c : g_.columns) present.push_back(q(c) + " IS NOT NULL");
    const std::string groups = fmt::format("FROM {} WHERE {} GROUP BY {} HAVING count(*) > 1",
                                           t_.staging, fmt::join(present, " AND "), quoted_list());
    judge(count(
        fmt::format("SELECT coalesce(sum(n), 0) FROM (SELECT count(*) AS n {}) AS d", groups)));
    if (!r_.passed)
      samples(fmt::format("SELECT count(*) AS n, {} {} ORDER BY count(*) DESC, {} LIMIT {}",
                          quoted_list(), groups, quoted_list(), samples_),
              Lead::Count);
    if (!r_.passed)
      r_.detail = fmt::format("{} rows share a key value with another row", r_.failing_rows);
  }

  std::string literal_of(const LogicalType& type, const json& v) const {
    std::string text = scalar_text(v).value_or("");
    if (is_numeric(type.id) && !looks_numeric(text))
      throw Error(ErrorCode::ConfigBadValue,
                  fmt::format("{}: gate '{}': '{}' is not a number, but column '{}' is {}",
                              t_.where, g_.name, text, g_.columns[0], type.to_string()));
    if (type.id == TypeId::Bool && text != "true" && text != "false")
      throw Error(ErrorCode::ConfigBadValue,
                  fmt::format("{}: gate '{}': '{}' is not true or false (column '{}' is bool)",
                              t_.where, g_.name, text, g_.columns[0]));
    return d_.literal(type, text);
  }

  void accepted_values() {
    const auto& col = g_.columns[0];
    const auto& type = type_of(col);
    std::vector<std::string> lits;
    for (const auto& v : values()) lits.push_back(literal_of(type, v));
    const std::string expr = d_.comparable(q(col), type);
    const std::string cond =
        fmt::format("{} IS NOT NULL AND {} NOT IN ({})", q(col), expr, fmt::join(lits, ", "));
    judge(count(fmt::format("SELECT count(*) FROM {} WHERE {}", t_.staging, cond)));
    if (!r_.passed) {
      samples(fmt::format("SELECT count(*) AS n, {0} FROM {1} WHERE {2} GROUP BY {0} ORDER BY "
                          "count(*) DESC, {0} LIMIT {3}",
                          q(col), t_.staging, cond, samples_),
              Lead::Count);
      std::vector<std::string> shown;
      for (const auto& v : values()) shown.push_back(scalar_text(v).value_or(""));
      r_.detail =
          fmt::format("{} rows hold a value outside [{}]", r_.failing_rows, fmt::join(shown, ", "));
    }
  }

  void range() {
    const auto& col = g_.columns[0];
    const auto& type = type_of(col);
    const std::string expr = d_.comparable(q(col), type);
    std::vector<std::string> outside;
    std::vector<std::string> bounds;
    if (!param("min").is_null()) {
      outside.push_back(fmt::format("{} < {}", expr, literal_of(type, param("min"))));
      bounds.push_back(">= " + scalar_text(param("min")).value_or(""));
    }
    if (!param("max").is_null()) {
      outside.push_back(fmt::format("{} > {}", expr, literal_of(type, param("max"))));
      bounds.push_back("<= " + scalar_text(param("max")).value_or(""));
    }
    const std::string cond =
        fmt::format("{} IS NOT NULL AND ({})", q(col), fmt::join(outside, " OR "));
    judge(count(fmt::format("SELECT count(*) FROM {} WHERE {}", t_.staging, cond)));
    if (!r_.passed) {
      samples(row_samples_sql(cond), row_lead());
      r_.detail =
          fmt::format("{} rows outside {} {}", r_.failing_rows, col, fmt::join(bounds, " and "));
    }
  }

  void min_rows() {
    const int64_t min = param("min").is_number_integer() ? param("min").get<int64_t>() : 0;
    const int64_t staged = count(fmt::format("SELECT count(*) FROM {}", t_.staging));
    judge(staged >= min ? 0 : min - staged);
    r_.detail = fmt::format("staged {} rows, at least {} required", staged, min);
  }

  void row_count() {
    const int64_t staged = count(fmt::format("SELECT count(*) FROM {}", t_.staging));
    const json& src = source();
    if (!src.contains("rows") || !src["rows"].is_number_integer()) {
      // Fail closed: without the source's count there is nothing to compare with.
      r_.passed = false;
      r_.failing_rows = 0;
      r_.detail = fmt::format(
          "staged {} rows, but the number of source rows is unknown ({}): the gate fails closed",
          staged, src.value("rows_unknown", std::string("the runtime did not count them")));
      return;
    }
    const int64_t read = src["rows"].get<int64_t>();
    Tolerance tol = parse_tolerance(param("tolerance")).value_or(Tolerance{});
    const double allowed = tol.percent ? tol.value / 100.0 * static_cast<double>(read) : tol.value;
    const int64_t diff = std::llabs(read - staged);
    r_.failing_rows = diff;
    r_.passed = static_cast<double>(diff) <= allowed;
    r_.detail = fmt::format("source {} rows, staged {} rows, difference {}, tolerance {}{}", read,
                            staged, diff,
                            tol.percent ? fmt::format("{}% = {:.2f} rows", tol.value, allowed)
                                        : fmt::format("{} rows", static_cast<int64_t>(tol.value)),
                            r_.passed ? "" : " exceeded");
    if (src.contains("fault")) r_.detail += " [test fault: " + src.value("fault", "") + "]";
  }

  void freshness() {
    const auto& col = g_.columns[0];
    const auto& type = type_of(col);
    const std::string max_age =
        param("max_age").is_string() ? param("max_age").get<std::string>() : "";
    const int64_t seconds = parse_duration_seconds(max_age).value_or(0);
    std::string threshold = utc_threshold(seconds);
    if (type.id == TypeId::Date) threshold = threshold.substr(0, 10);
    if (type.id == TypeId::Timestamp && type.tz) threshold += "Z";
    const std::string expr = d_.comparable(q(col), type);
    auto rows = query(fmt::format(
        "SELECT count({0}), max({0}), CASE WHEN max({1}) >= {2} THEN 1 ELSE 0 END FROM {3}", q(col),
        expr, d_.literal(type, threshold), t_.staging));
    int64_t values = 0, fresh = 0;
    std::string newest = "none";
    if (!rows.empty() && rows[0].size() >= 3) {
      values = int_of(rows[0][0].second, sql_.back());
      newest = rows[0][1].second.value_or("none");
      fresh = int_of(rows[0][2].second, sql_.back());
    }
    r_.passed = values > 0 && fresh == 1;
    r_.failing_rows = r_.passed ? 0 : values;
    r_.detail = values == 0
                    ? fmt::format("no non-NULL {} value was staged: freshness cannot be shown", col)
                    : fmt::format("newest {} is {}; the threshold (now - {}) is {}{}", col, newest,
                                  max_age, threshold, threshold.back() == 'Z' ? "" : " (UTC)");
  }

  void custom_sql() {
    std::string sql =
        replace_all(strip_sql(param("sql").is_string() ? param("sql").get<std::string>() : ""),
                    "{staging}", t_.staging);
    judge(count(fmt::format("SELECT count(*) FROM ({}) AS dpone_gate", sql)));
    if (!r_.passed) {
      samples(fmt::format("SELECT * FROM ({}) AS dpone_gate LIMIT {}", sql, samples_));
      r_.detail = fmt::format("the query returned {} failing rows", r_.failing_rows);
    }
  }

  void typed_hash() {
    std::vector<size_t> cols = typed_hash_columns(g_, t_.schema, t_.where);
    std::vector<std::string> parts;
    std::vector<std::string> names;
    for (size_t c : cols) {
      const Column& col = t_.schema.columns[c];
      std::string f = d_.hash_form(q(col.name), col.type);
      parts.push_back(fmt::format("coalesce({} || ':' || {}, 'N')", d_.byte_length(f), f));
      names.push_back(col.name);
    }
    const std::string row_text = parts.empty() ? "''" : fmt::format("{}", fmt::join(parts, " || "));
    auto rows = query(d_.hash_query(row_text, t_.staging));
    int64_t staged_rows = 0;
    uint64_t staged_sum = 0;
    if (!rows.empty() && rows[0].size() >= 2) {
      staged_rows = int_of(rows[0][0].second, sql_.back());
      auto s = parse_sum_mod64(rows[0][1].second.value_or("0"));
      if (!s)
        throw Error(ErrorCode::Internal,
                    fmt::format("{}: typed_hash query returned '{}' as its sum", t_.where,
                                rows[0][1].second.value_or("NULL")));
      staged_sum = *s;
    }
    const std::string staged_digest = fmt::format("{} rows, sum {:016x}", staged_rows, staged_sum);
    const json& src = source();
    const json hashes = src.value("hashes", json::object());
    if (!hashes.contains(g_.name) || !hashes[g_.name].is_object()) {
      r_.passed = false;
      r_.failing_rows = 0;
      r_.detail = fmt::format(
          "staged {}, but the source side could not be hashed ({}): the gate fails closed",
          staged_digest,
          src.value("hash_unavailable", std::string("the runtime did not hash the source rows")));
      return;
    }
    const json& h = hashes[g_.name];
    const int64_t src_rows = h.value("rows", int64_t{-1});
    const std::string src_sum = h.value("sum", "");
    const std::string source_digest = fmt::format("{} rows, sum {}", src_rows, src_sum);
    r_.passed = src_rows == staged_rows && src_sum == fmt::format("{:016x}", staged_sum);
    r_.failing_rows = r_.passed ? 0 : std::max<int64_t>(std::llabs(src_rows - staged_rows), 1);
    r_.detail = fmt::format("columns {}; source {}; staged {}{}", fmt::join(names, ", "),
                            source_digest, staged_digest,
                            r_.passed ? "" : ": the staged content differs from what was read");
  }

  const GateSpec& g_;
  const SqlGateTarget& t_;
  const SqlGateDialect& d_;
  SqlGateRunner& runner_;
  int samples_;
  GateResult r_;
  std::vector<std::string> sql_;
};

}  // namespace

std::vector<GateResult> run_sql_gates(const std::vector<GateSpec>& gates,
                                      const SqlGateTarget& target, const SqlGateDialect& dialect,
                                      SqlGateRunner& runner, int samples) {
  validate_sql_gates(gates, target);
  std::vector<GateResult> out;
  out.reserve(gates.size());
  for (const auto& gate : gates) {
    try {
      out.push_back(GateRun(gate, target, dialect, runner, samples).run());
    } catch (const Error& e) {
      // A gate that cannot run fails the run (never skipped); say which one it was.
      throw Error(
          e.code(), fmt::format("gate '{}' ({}) could not run: {}", gate.name, gate.type, e.what()),
          gate.type == "custom_sql" ? "check the gate's sql against the staged columns" : e.hint());
    }
  }
  return out;
}

// ---- SQLite functions ------------------------------------------------------------------

namespace {

void sqlite_float_bits(sqlite3_context* ctx, int argc, sqlite3_value** argv) {
  if (argc != 2 || sqlite3_value_type(argv[0]) == SQLITE_NULL) {
    sqlite3_result_null(ctx);
    return;
  }
  const bool is32 = sqlite3_value_int(argv[1]) == 32;
  std::optional<double> v;
  switch (sqlite3_value_type(argv[0])) {
    case SQLITE_INTEGER:
    case SQLITE_FLOAT:
      v = sqlite3_value_double(argv[0]);
      break;
    default: {
      const auto* text = reinterpret_cast<const char*>(sqlite3_value_text(argv[0]));
      v = parse_float_text(text ? std::string_view(text) : std::string_view());
    }
  }
  // A value that is not a float hashes as its text, which cannot match the source's form.
  std::string out = v ? float_bits(*v, is32)
                      : std::string(reinterpret_cast<const char*>(sqlite3_value_text(argv[0])));
  sqlite3_result_text(ctx, out.c_str(), static_cast<int>(out.size()), SQLITE_TRANSIENT);
}

void sqlite_md5_sum_step(sqlite3_context* ctx, int argc, sqlite3_value** argv) {
  auto* sum = static_cast<uint64_t*>(sqlite3_aggregate_context(ctx, sizeof(uint64_t)));
  if (!sum) {
    sqlite3_result_error_nomem(ctx);
    return;
  }
  if (argc != 1 || sqlite3_value_type(argv[0]) == SQLITE_NULL) return;
  const auto* p = static_cast<const char*>(sqlite3_value_blob(argv[0]));
  const int n = sqlite3_value_bytes(argv[0]);
  try {
    *sum += md5_prefix64(std::string_view(p ? p : "", static_cast<size_t>(n)));
  } catch (const std::exception& e) {
    sqlite3_result_error(ctx, e.what(), -1);  // no exception may cross SQLite's C frames
  }
}

void sqlite_md5_sum_final(sqlite3_context* ctx) {
  auto* sum = static_cast<uint64_t*>(sqlite3_aggregate_context(ctx, 0));
  std::string out = std::to_string(sum ? *sum : 0);
  sqlite3_result_text(ctx, out.c_str(), static_cast<int>(out.size()), SQLITE_TRANSIENT);
}

}  // namespace

void register_sqlite_gate_functions(sqlite3* db) {
  int rc = sqlite3_create_function_v2(db, "dpone_float_bits", 2, SQLITE_UTF8 | SQLITE_DETERMINISTIC,
                                      nullptr, sqlite_float_bits, nullptr, nullptr, nullptr);
  if (rc == SQLITE_OK)
    rc = sqlite3_create_function_v2(db, "dpone_md5_sum", 1, SQLITE_UTF8, nullptr, nullptr,
                                    sqlite_md5_sum_step, sqlite_md5_sum_final, nullptr);
  if (rc != SQLITE_OK)
    throw Error(ErrorCode::StageFailed,
                fmt::format("cannot register the typed_hash SQL functions in SQLite: {}",
                            sqlite3_errstr(rc)));
}

}  // namespace dpone
