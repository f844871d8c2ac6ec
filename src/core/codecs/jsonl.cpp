#include "core/codecs/jsonl.hpp"

#include <charconv>
#include <cstring>

#include "core/errors.hpp"

namespace dpone {

namespace {

bool is_blank(std::string_view s) {
  for (char c : s)
    if (c != ' ' && c != '\t' && c != '\r') return false;
  return true;
}

// nlohmann's messages start with "[json.exception.parse_error.101] parse error at line 1, ";
// the line is always 1 here (one document per line), so keep what follows.
std::string parse_error_text(const nlohmann::json::parse_error& e) {
  std::string what = e.what();
  auto bracket = what.find("] ");
  if (bracket != std::string::npos) what = what.substr(bracket + 2);
  static constexpr std::string_view kPrefix = "parse error at line 1, ";
  if (what.compare(0, kPrefix.size(), kPrefix) == 0) what = what.substr(kPrefix.size());
  return what;
}

const char* kind_name(const nlohmann::json& v) {
  switch (v.type()) {
    case nlohmann::json::value_t::array:
      return "an array";
    case nlohmann::json::value_t::string:
      return "a string";
    case nlohmann::json::value_t::boolean:
      return "a boolean";
    case nlohmann::json::value_t::null:
      return "null";
    case nlohmann::json::value_t::object:
      return "an object";
    default:
      return "a number";
  }
}

}  // namespace

// ------------------------------------------------------------------------------ reader

JsonlReader::JsonlReader(const std::filesystem::path& path, size_t buffer_size)
    : input_(path, buffer_size) {}

bool JsonlReader::next(nlohmann::json& object) {
  if (!started_) {
    started_ = true;
    input_.fill(1);
    if (input_.tail() >= 3 && std::memcmp(input_.data(), "\xEF\xBB\xBF", 3) == 0)
      input_.consume_to(3);
  }
  size_t scanned = 0;  // bytes of the current line known to hold no '\n', relative to head
  for (;;) {
    const size_t avail = input_.tail() - input_.head();
    const char* d = input_.data() + input_.head();
    const void* nl = scanned < avail ? std::memchr(d + scanned, '\n', avail - scanned) : nullptr;
    size_t len = 0;
    if (nl == nullptr) {
      scanned = avail;
      if (input_.fill(line_ + 1)) continue;
      if (avail == 0) return false;
      len = avail;  // last line without a line break
    } else {
      len = static_cast<size_t>(static_cast<const char*>(nl) - d);
    }
    ++line_;
    std::string_view text(d, len);
    input_.consume_to(input_.head() + (nl == nullptr ? len : len + 1));
    scanned = 0;
    if (is_blank(text)) continue;
    try {
      if (track_keys_) {
        keys_.clear();
        object = nlohmann::json::parse(
            text.begin(), text.end(),
            [this](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
              if (event == nlohmann::json::parse_event_t::key && depth == 1)
                keys_.push_back(parsed.get<std::string>());
              return true;
            });
      } else {
        object = nlohmann::json::parse(text.begin(), text.end());
      }
    } catch (const nlohmann::json::parse_error& e) {
      throw Error(ErrorCode::InputMalformed,
                  input_position(input_.path(), line_) + "invalid JSON: " + parse_error_text(e),
                  "each line must hold one complete JSON object");
    }
    if (!object.is_object())
      throw Error(ErrorCode::InputMalformed,
                  input_position(input_.path(), line_) + "the line holds " + kind_name(object) +
                      ", expected a JSON object",
                  "each line must hold one complete JSON object");
    return true;
  }
}

// -------------------------------------------------------------------------- json_to_cell

std::optional<ValueError> json_to_cell(const LogicalType& type, const nlohmann::json& value,
                                       std::string& out, bool& is_null) {
  using value_t = nlohmann::json::value_t;
  is_null = false;
  if (value.is_null()) {
    is_null = true;
    out.clear();
    return std::nullopt;
  }
  if (type.id == TypeId::Json) {
    out = value.dump();
    return std::nullopt;
  }
  char buf[64];
  switch (value.type()) {
    case value_t::object:
    case value_t::array: {
      if (type.id != TypeId::String)
        return ValueError{ErrorCode::TypeMismatch, std::string("a JSON ") +
                                                       (value.is_object() ? "object" : "array") +
                                                       " is not a valid " + type.to_string()};
      // dump() output is valid UTF-8 (the parser checked), so only varchar's length applies.
      return canonicalize(type, value.dump(), out);
    }
    case value_t::string:
      return canonicalize(type, value.get_ref<const std::string&>(), out);
    case value_t::boolean:
      return canonicalize(type, value.get<bool>() ? "true" : "false", out);
    case value_t::number_integer: {
      auto r = std::to_chars(buf, buf + sizeof buf, value.get<int64_t>());
      return canonicalize(type, std::string_view(buf, static_cast<size_t>(r.ptr - buf)), out);
    }
    case value_t::number_unsigned: {
      auto r = std::to_chars(buf, buf + sizeof buf, value.get<uint64_t>());
      return canonicalize(type, std::string_view(buf, static_cast<size_t>(r.ptr - buf)), out);
    }
    case value_t::number_float: {
      auto r = std::to_chars(buf, buf + sizeof buf, value.get<double>());
      return canonicalize(type, std::string_view(buf, static_cast<size_t>(r.ptr - buf)), out);
    }
    default:
      break;
  }
  return ValueError{ErrorCode::TypeMismatch,
                    std::string(kind_name(value)) + " is not a valid " + type.to_string()};
}

// ------------------------------------------------------------------------------ writer

namespace {

constexpr size_t kWriterFlushBytes = 1 << 16;

// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
bool is_json_number(std::string_view s) {
  size_t i = 0;
  const size_t n = s.size();
  auto digit = [&](size_t k) { return k < n && s[k] >= '0' && s[k] <= '9'; };
  if (i < n && s[i] == '-') ++i;
  if (!digit(i)) return false;
  if (s[i] == '0')
    ++i;
  else
    while (digit(i)) ++i;
  if (i < n && s[i] == '.') {
    ++i;
    if (!digit(i)) return false;
    while (digit(i)) ++i;
  }
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < n && (s[i] == '+' || s[i] == '-')) ++i;
    if (!digit(i)) return false;
    while (digit(i)) ++i;
  }
  return i == n;
}

void append_base64(std::string& out, std::string_view bytes) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  out.push_back('"');
  size_t i = 0;
  auto byte = [&](size_t k) { return static_cast<uint32_t>(static_cast<unsigned char>(bytes[k])); };
  for (; i + 3 <= bytes.size(); i += 3) {
    uint32_t v = byte(i) << 16 | byte(i + 1) << 8 | byte(i + 2);
    out.push_back(kAlphabet[v >> 18 & 63]);
    out.push_back(kAlphabet[v >> 12 & 63]);
    out.push_back(kAlphabet[v >> 6 & 63]);
    out.push_back(kAlphabet[v & 63]);
  }
  if (size_t rest = bytes.size() - i; rest > 0) {
    uint32_t v = byte(i) << 16 | (rest == 2 ? byte(i + 1) << 8 : 0);
    out.push_back(kAlphabet[v >> 18 & 63]);
    out.push_back(kAlphabet[v >> 12 & 63]);
    out.push_back(rest == 2 ? kAlphabet[v >> 6 & 63] : '=');
    out.push_back('=');
  }
  out.push_back('"');
}

}  // namespace

void append_json_string(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  size_t run = 0;  // start of the pending run of bytes that need no escaping
  for (size_t i = 0; i < text.size(); ++i) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(text.data() + run, i - run);
    run = i + 1;
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        out += "\\u00";
        out.push_back(kHex[c >> 4]);
        out.push_back(kHex[c & 15]);
    }
  }
  out.append(text.data() + run, text.size() - run);
  out.push_back('"');
}

JsonlWriter::JsonlWriter(std::ostream& out, const Schema& schema) : out_(out) {
  for (const Column& c : schema.columns) {
    std::string key;
    append_json_string(key, c.name);
    key.push_back(':');
    keys_.push_back(std::move(key));
    switch (c.type.id) {
      case TypeId::Int16:
      case TypeId::Int32:
      case TypeId::Int64:
      case TypeId::Float32:
      case TypeId::Float64:
      case TypeId::Decimal:
        kinds_.push_back(Kind::Number);
        break;
      case TypeId::Bool:
        kinds_.push_back(Kind::Bool);
        break;
      case TypeId::Json:
        kinds_.push_back(Kind::Json);
        break;
      case TypeId::Bytes:
        kinds_.push_back(Kind::Bytes);
        break;
      default:
        kinds_.push_back(Kind::Text);
        break;
    }
  }
  buffer_.reserve(kWriterFlushBytes + 1024);
}

void JsonlWriter::append_value(Kind kind, std::string_view cell) {
  switch (kind) {
    case Kind::Number:
      // Canonical numbers are JSON numbers; NaN/Infinity (and anything unexpected) are not.
      if (is_json_number(cell))
        buffer_.append(cell);
      else
        append_json_string(buffer_, cell);
      return;
    case Kind::Bool:
      if (cell == "true" || cell == "false")
        buffer_.append(cell);
      else
        append_json_string(buffer_, cell);
      return;
    case Kind::Json:
      buffer_.append(cell);
      return;
    case Kind::Bytes:
      append_base64(buffer_, cell);
      return;
    case Kind::Text:
      append_json_string(buffer_, cell);
      return;
  }
}

void JsonlWriter::flush() {
  out_.write(buffer_.data(), static_cast<std::streamsize>(buffer_.size()));
  buffer_.clear();
}

void JsonlWriter::write(const RecordBatch& batch) {
  const size_t cols = keys_.size();
  if (batch.num_columns() != cols)
    throw Error(ErrorCode::Internal, "JSONL writer: batch has " +
                                         std::to_string(batch.num_columns()) +
                                         " columns, the schema " + std::to_string(cols));
  for (size_t r = 0; r < batch.num_rows(); ++r) {
    buffer_.push_back('{');
    for (size_t c = 0; c < cols; ++c) {
      if (c > 0) buffer_.push_back(',');
      buffer_.append(keys_[c]);
      if (batch.is_null(r, c))
        buffer_.append("null");
      else
        append_value(kinds_[c], batch.cell(r, c));
    }
    buffer_.append("}\n");
    if (buffer_.size() >= kWriterFlushBytes) flush();
  }
  flush();
}

}  // namespace dpone
