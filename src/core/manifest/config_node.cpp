#include "core/manifest/config_node.hpp"

#include <charconv>
#include <cmath>
#include <fstream>
#include <limits>
#include <optional>
#include <regex>
#include <sstream>

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "core/errors.hpp"

namespace dpone {

const ConfigNode* ConfigNode::get(const std::string& key) const {
  for (const auto& e : entries) {
    if (e.key == key) return &e.value;
  }
  return nullptr;
}

ConfigNode* ConfigNode::get(const std::string& key) {
  for (auto& e : entries) {
    if (e.key == key) return &e.value;
  }
  return nullptr;
}

ConfigNode& ConfigNode::set(const std::string& key, ConfigNode value, Mark key_mark) {
  for (auto& e : entries) {
    if (e.key == key) {
      e.value = std::move(value);
      return e.value;
    }
  }
  entries.push_back(ConfigEntry{key, key_mark.line > 0 ? key_mark : value.mark, std::move(value)});
  return entries.back().value;
}

std::vector<std::string> ConfigNode::keys() const {
  std::vector<std::string> out;
  for (const auto& e : entries) out.push_back(e.key);
  return out;
}

nlohmann::json plain_scalar_value(const std::string& t) {
  if (t.empty() || t == "~" || t == "null" || t == "Null" || t == "NULL") return nullptr;
  if (t == "true" || t == "True" || t == "TRUE") return true;
  if (t == "false" || t == "False" || t == "FALSE") return false;
  static const std::regex kInt("[-+]?[0-9]+");
  static const std::regex kOct("0o[0-7]+");
  static const std::regex kHex("0x[0-9a-fA-F]+");
  static const std::regex kFloat("[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)?");
  static const std::regex kInf("[-+]?\\.(inf|Inf|INF)");
  static const std::regex kNan("\\.(nan|NaN|NAN)");
  auto parse_int = [&](std::string_view digits, int base) -> nlohmann::json {
    bool negative = false;
    if (!digits.empty() && (digits[0] == '-' || digits[0] == '+')) {
      negative = digits[0] == '-';
      digits.remove_prefix(1);
    }
    uint64_t v = 0;
    auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v, base);
    if (ec != std::errc() || p != digits.data() + digits.size()) return t;  // too large: text
    if (negative) {
      if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) + 1) return t;
      return v == static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) + 1
                 ? std::numeric_limits<int64_t>::min()
                 : -static_cast<int64_t>(v);
    }
    if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return t;
    return static_cast<int64_t>(v);
  };
  if (std::regex_match(t, kInt)) return parse_int(t, 10);
  if (std::regex_match(t, kOct)) return parse_int(std::string_view(t).substr(2), 8);
  if (std::regex_match(t, kHex)) return parse_int(std::string_view(t).substr(2), 16);
  if (std::regex_match(t, kFloat)) return std::strtod(t.c_str(), nullptr);
  if (std::regex_match(t, kInf)) {
    return t[0] == '-' ? -std::numeric_limits<double>::infinity()
                       : std::numeric_limits<double>::infinity();
  }
  if (std::regex_match(t, kNan)) return std::numeric_limits<double>::quiet_NaN();
  return t;
}

nlohmann::json ConfigNode::scalar_value() const {
  switch (kind) {
    case Kind::Null:
      return nullptr;
    case Kind::Scalar:
      return quoted ? nlohmann::json(text) : plain_scalar_value(text);
    default:
      return to_json();
  }
}

nlohmann::json ConfigNode::to_json() const {
  switch (kind) {
    case Kind::Null:
      return nullptr;
    case Kind::Scalar:
      return scalar_value();
    case Kind::List: {
      auto out = nlohmann::json::array();
      for (const auto& i : items) out.push_back(i.to_json());
      return out;
    }
    case Kind::Map: {
      auto out = nlohmann::json::object();
      for (const auto& e : entries) out[e.key] = e.value.to_json();
      return out;
    }
  }
  return nullptr;
}

std::string ConfigNode::type_name() const {
  switch (kind) {
    case Kind::Null:
      return "null";
    case Kind::List:
      return "list";
    case Kind::Map:
      return "map";
    case Kind::Scalar:
      break;
  }
  auto v = scalar_value();
  if (v.is_null()) return "null";
  if (v.is_boolean()) return "boolean";
  if (v.is_number_integer()) return "integer";
  if (v.is_number()) return "number";
  return "string";
}

void ConfigNode::set_from(const std::string& label) {
  from = label;
  for (auto& i : items) i.set_from(label);
  for (auto& e : entries) e.value.set_from(label);
}

ConfigNode ConfigNode::scalar(std::string text, Mark mark, std::string path, bool quoted) {
  ConfigNode n;
  n.kind = Kind::Scalar;
  n.text = std::move(text);
  n.mark = std::move(mark);
  n.path = std::move(path);
  n.quoted = quoted;
  return n;
}

ConfigNode ConfigNode::map(Mark mark, std::string path) {
  ConfigNode n;
  n.kind = Kind::Map;
  n.mark = std::move(mark);
  n.path = std::move(path);
  return n;
}

namespace {

Mark to_mark(const YAML::Mark& m, const std::string& file) {
  if (m.line < 0) return Mark{file, 0, 0};
  return Mark{file, m.line + 1, m.column + 1};
}

struct Builder {
  const std::string& file;
  std::vector<Problem>& problems;

  // `fallback` is used for nodes without a position (yaml-cpp gives a null value the
  // position of whatever follows it, so a null value is marked at its key).
  ConfigNode build(const YAML::Node& y, const std::string& path, const Mark& fallback) {
    ConfigNode n;
    n.path = path;
    n.mark = to_mark(y.Mark(), file);
    if (n.mark.line == 0) n.mark = fallback;
    switch (y.Type()) {
      case YAML::NodeType::Undefined:
      case YAML::NodeType::Null:
        n.kind = ConfigNode::Kind::Null;
        n.mark = fallback.line > 0 ? fallback : n.mark;
        return n;
      case YAML::NodeType::Scalar:
        n.kind = ConfigNode::Kind::Scalar;
        n.text = y.Scalar();
        n.quoted = y.Tag() == "!" || y.Tag() == "tag:yaml.org,2002:str";
        return n;
      case YAML::NodeType::Sequence: {
        n.kind = ConfigNode::Kind::List;
        size_t i = 0;
        for (const auto& item : y) {
          n.items.push_back(build(item, fmt::format("{}[{}]", path, i), n.mark));
          ++i;
        }
        return n;
      }
      case YAML::NodeType::Map:
        break;
    }
    if (auto tmpl = unquoted_template(y)) {
      // `key: {{ x }}` is a YAML flow map, not a string; read it as the template the
      // user meant so later checks do not pile up, but say how to write it.
      problems.push_back(Problem{ErrorCode::ConfigTemplate, n.mark, path,
                                 fmt::format("YAML reads an unquoted {{{{ {} }}}} as a map; quote "
                                             "the template: \"{{{{ {} }}}}\"",
                                             *tmpl, *tmpl),
                                 ""});
      return ConfigNode::scalar(fmt::format("{{{{ {} }}}}", *tmpl), n.mark, path, true);
    }
    n.kind = ConfigNode::Kind::Map;
    for (auto it = y.begin(); it != y.end(); ++it) {
      Mark key_mark = to_mark(it->first.Mark(), file);
      if (!it->first.IsScalar()) {
        problems.push_back(Problem{
            ErrorCode::ConfigWrongType, key_mark, path,
            "a key must be a string, not a " + std::string(it->first.IsMap() ? "map" : "list"),
            ""});
        continue;
      }
      std::string key = it->first.Scalar();
      std::string child_path = join_path(path, key);
      if (const ConfigNode* first = n.get(key)) {
        (void)first;
        Mark first_mark;
        for (const auto& e : n.entries) {
          if (e.key == key) first_mark = e.key_mark;
        }
        problems.push_back(Problem{
            ErrorCode::ConfigBadValue, key_mark, child_path,
            fmt::format("duplicate key '{}' (first written at line {})", key, first_mark.line),
            ""});
        continue;
      }
      n.entries.push_back(ConfigEntry{key, key_mark, build(it->second, child_path, key_mark)});
    }
    return n;
  }

  // The variable name when `y` is the map YAML makes of an unquoted `{{ name }}`.
  static std::optional<std::string> unquoted_template(const YAML::Node& y) {
    if (!y.IsMap() || y.size() != 1) return std::nullopt;
    auto it = y.begin();
    if (!it->first.IsMap() || it->first.size() != 1 || !it->second.IsNull()) return std::nullopt;
    auto inner = it->first.begin();
    if (!inner->first.IsScalar() || !inner->second.IsNull()) return std::nullopt;
    return inner->first.Scalar();
  }
};

}  // namespace

ConfigNode parse_yaml(const std::string& text, const std::string& file,
                      std::vector<Problem>& problems, const std::string& root_path) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    Mark mark = to_mark(e.mark, file);
    problems.push_back(
        Problem{ErrorCode::ConfigYamlSyntax, mark, "", fmt::format("invalid YAML: {}", e.msg), ""});
    ConfigNode n;
    n.mark = mark;
    return n;
  }
  Builder b{file, problems};
  return b.build(root, root_path, Mark{file, 1, 1});
}

ConfigNode parse_yaml_file(const std::filesystem::path& file, std::vector<Problem>& problems,
                           const std::string& display_name) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    throw Error(ErrorCode::ConfigInvalid, fmt::format("cannot read {}", file.string()),
                "check the path and its permissions");
  }
  std::stringstream buf;
  buf << in.rdbuf();
  return parse_yaml(buf.str(), display_name.empty() ? file.string() : display_name, problems);
}

}  // namespace dpone
