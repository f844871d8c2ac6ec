#include "core/manifest/option_spec.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/connector/connection.hpp"
#include "core/types.hpp"

namespace dpone {

namespace {

std::string spec_type(const nlohmann::json& spec) {
  auto it = spec.find("type");
  return it != spec.end() && it->is_string() ? it->get<std::string>() : "any";
}

// Descriptor specs come from connector authors: read them defensively, a malformed
// attribute counts as absent rather than aborting validation with a JSON exception.
bool spec_flag(const nlohmann::json& spec, const char* key) {
  auto it = spec.find(key);
  return it != spec.end() && it->is_boolean() && it->get<bool>();
}

nlohmann::json spec_object(const nlohmann::json& spec, const char* key) {
  auto it = spec.find(key);
  return it != spec.end() && it->is_object() ? *it : nlohmann::json::object();
}

std::string spec_string(const nlohmann::json& spec, const char* key) {
  auto it = spec.find(key);
  return it != spec.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::vector<std::string> string_values(const nlohmann::json& list) {
  std::vector<std::string> out;
  if (!list.is_array()) return out;
  for (const auto& v : list) out.push_back(v.is_string() ? v.get<std::string>() : v.dump());
  return out;
}

bool has_template(const std::string& text) {
  return text.find("{{") != std::string::npos;
}

bool is_state_template(const std::string& text) {
  auto open = text.find("{{");
  if (open == std::string::npos) return false;
  auto name = text.find_first_not_of(" \t", open + 2);
  return name != std::string::npos && text.compare(name, 6, "state.") == 0;
}

bool spec_is_secret(const std::string& key, const nlohmann::json& spec) {
  auto it = spec.find("secret");
  if (it != spec.end() && it->is_boolean()) return it->get<bool>();
  return is_secret_field(key);
}

const std::vector<std::string>& canonical_types() {
  static const std::vector<std::string> kTypes = {
      "bool",       "int16", "int32", "int64", "float32",   "float64",     "decimal(p,s)", "string",
      "varchar(n)", "bytes", "date",  "time",  "timestamp", "timestamptz", "json",         "uuid"};
  return kTypes;
}

struct Validator {
  SpecContext& ctx;

  void problem(ErrorCode code, const Mark& mark, const std::string& path, std::string message,
               std::string suggestion = {}) {
    if (ctx.problems == nullptr) return;
    ctx.problems->push_back(Problem{code, mark, path, std::move(message), std::move(suggestion)});
  }

  nlohmann::json wrong_type(const ConfigNode& node, const std::string& expected) {
    problem(ErrorCode::ConfigWrongType, node.mark, node.path,
            fmt::format("expected {}, got {}", expected, node.type_name()));
    return nullptr;
  }

  nlohmann::json check(const ConfigNode& node, const nlohmann::json& spec, const std::string& rel,
                       bool secret) {
    const std::string type = spec_type(spec);
    if (type == "any") return node.to_json();
    if (node.is_scalar() &&
        (is_state_template(node.text) || (ctx.lenient_templates && has_template(node.text)))) {
      return node.text;  // resolved later (vars: after merging; state.*: at run time)
    }
    if (node.is_scalar() && ctx.lenient_references &&
        (node.text.find("${env:") != std::string::npos ||
         node.text.find("${file:") != std::string::npos)) {
      return node.text;  // resolved when the connection is opened
    }
    nlohmann::json value = node.scalar_value();
    if (type == "string") {
      if (!node.is_scalar() || value.is_null()) return wrong_type(node, "a string");
      return node.text;
    }
    if (type == "integer") {
      if (!value.is_number_integer()) return wrong_type(node, "an integer");
      return value;
    }
    if (type == "number") {
      if (!value.is_number()) return wrong_type(node, "a number");
      return value;
    }
    if (type == "boolean") {
      if (!value.is_boolean()) return wrong_type(node, "true or false");
      return value;
    }
    if (type == "enum") {
      auto allowed = string_values(spec.contains("enum") ? spec["enum"] : nlohmann::json::array());
      if (!node.is_scalar() || value.is_null()) {
        return wrong_type(node, fmt::format("one of: {}", fmt::join(allowed, ", ")));
      }
      if (std::find(allowed.begin(), allowed.end(), node.text) == allowed.end()) {
        problem(ErrorCode::ConfigBadValue, node.mark, node.path,
                secret ? fmt::format("the value is not one of: {}", fmt::join(allowed, ", "))
                       : fmt::format("'{}' is not one of: {}", node.text, fmt::join(allowed, ", ")),
                secret ? "" : suggest(node.text, allowed));
        return nullptr;
      }
      return node.text;
    }
    if (type == "logical_type") {
      if (!node.is_scalar() || value.is_null()) return wrong_type(node, "a type name");
      auto parsed = LogicalType::parse(node.text);
      if (!parsed) {
        // `{amount: decimal(10,2)}` is YAML for {amount: "decimal(10", "2)": null}.
        bool split =
            node.text.find('(') != std::string::npos && node.text.find(')') == std::string::npos;
        problem(ErrorCode::ConfigBadValue, node.mark, node.path,
                split ? fmt::format("'{}' is not a type: inside {{ }} a comma ends the value, so "
                                    "quote the type, e.g. \"decimal(10,2)\"",
                                    node.text)
                      : fmt::format("'{}' is not a type; expected one of: {}", node.text,
                                    fmt::join(canonical_types(), ", ")),
                split ? "" : suggest(node.text, canonical_types()));
        return nullptr;
      }
      return parsed->to_string();
    }
    if (type == "string_list") {
      if (node.is_scalar() && !value.is_null()) return nlohmann::json::array({node.text});
      if (!node.is_list()) return wrong_type(node, "a string or a list of strings");
      auto out = nlohmann::json::array();
      for (const auto& item : node.items) {
        if (!item.is_scalar() || item.scalar_value().is_null()) {
          wrong_type(item, "a string");
          continue;
        }
        out.push_back(item.text);
      }
      return out;
    }
    if (type == "list") {
      if (!node.is_list()) return wrong_type(node, "a list");
      auto out = nlohmann::json::array();
      const nlohmann::json item_spec = spec_object(spec, "items");
      for (size_t i = 0; i < node.items.size(); ++i) {
        out.push_back(check(node.items[i], item_spec, fmt::format("{}[{}]", rel, i), secret));
      }
      return out;
    }
    if (type == "map") return check_map(node, spec, rel);
    // An unknown spec type is a bug in a descriptor: accept the value rather than
    // reject every manifest using the connector.
    return node.to_json();
  }

  nlohmann::json check_map(const ConfigNode& node, const nlohmann::json& spec,
                           const std::string& rel) {
    if (!node.is_map()) return wrong_type(node, "a map");
    nlohmann::json keys = spec_object(spec, "keys");
    const bool has_additional = spec.contains("additional");
    bool open = !spec.contains("keys") && !has_additional && !spec.contains("extends");
    std::string label;
    if (spec.contains("extends") && ctx.extension) {
      auto ext = ctx.extension(spec_string(spec, "extends"), node, rel);
      if (ext) {
        for (const auto& [k, v] : ext->options.items()) {
          if (!keys.contains(k)) keys[k] = v;
        }
        label = ext->label;
      } else {
        open = true;
      }
    } else if (spec.contains("extends")) {
      open = true;
    }
    std::vector<std::string> names;
    for (const auto& [k, v] : keys.items()) names.push_back(k);

    auto out = nlohmann::json::object();
    for (const auto& entry : node.entries) {
      const std::string child_rel = join_path(rel, entry.key);
      const nlohmann::json* child_spec = nullptr;
      if (keys.contains(entry.key)) {
        child_spec = &keys[entry.key];
      } else if (has_additional) {
        child_spec = &spec["additional"];
      }
      if (child_spec == nullptr && !open) {
        std::string hint = suggest(entry.key, names);
        std::string message = fmt::format("unknown key '{}'", entry.key);
        if (!label.empty()) message += " for " + label;
        if (hint.empty() && !names.empty() && names.size() <= 16) {
          message += fmt::format("; expected one of: {}", fmt::join(names, ", "));
        }
        problem(ErrorCode::ConfigUnknownKey, entry.key_mark, entry.value.path, message, hint);
        continue;
      }
      static const nlohmann::json kAny = {{"type", "any"}};
      const nlohmann::json& s = child_spec != nullptr ? *child_spec : kAny;
      if (entry.value.is_null() && spec_type(s) != "any") continue;  // null = not set
      const bool secret = spec_is_secret(entry.key, s);
      if (secret) ctx.secret_paths.push_back(child_rel);
      out[entry.key] = check(entry.value, s, child_rel, secret);
    }
    if (!ctx.check_required) return out;
    for (const auto& [k, s] : keys.items()) {
      if (out.contains(k)) continue;
      if (spec_flag(s, "required")) {
        bool written = node.get(k) != nullptr;  // written as null
        problem(ErrorCode::ConfigMissingKey, ctx.missing_mark,
                join_path(ctx.missing_prefix, join_path(rel, k)),
                written ? fmt::format("required key '{}' is null", k)
                        : fmt::format("missing required key '{}'{}", k,
                                      label.empty() ? "" : " for " + label));
      } else if (s.contains("default")) {
        out[k] = s["default"];
        ctx.defaulted.push_back(join_path(rel, k));
      }
    }
    return out;
  }
};

std::string escape_cell(std::string text) {
  std::string out;
  for (char c : text) {
    if (c == '|') {
      out += "\\|";
    } else if (c == '\n') {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

// The map spec reached through a key (a map, or the map items of a list), if any.
const nlohmann::json* nested_map(const nlohmann::json& spec, std::string& suffix) {
  const std::string type = spec_type(spec);
  if (type == "map" && (spec.contains("keys") || spec.contains("extends"))) {
    suffix = "";
    return &spec;
  }
  if (type == "list" && spec.contains("items") && spec_type(spec["items"]) == "map" &&
      spec["items"].contains("keys")) {
    suffix = "[]";
    return &spec["items"];
  }
  return nullptr;
}

}  // namespace

nlohmann::json validate_node(const ConfigNode& node, const nlohmann::json& spec, SpecContext& ctx,
                             const std::string& rel_path) {
  Validator v{ctx};
  return v.check(node, spec, rel_path, false);
}

std::string describe_spec_type(const nlohmann::json& spec) {
  const std::string type = spec_type(spec);
  if (type == "enum") {
    return fmt::format(
        "one of: {}",
        fmt::join(string_values(spec.contains("enum") ? spec["enum"] : nlohmann::json::array()),
                  ", "));
  }
  if (type == "string_list") return "string or list of strings";
  if (type == "logical_type") return "type name";
  if (type == "list") {
    if (spec.contains("items")) return "list of " + describe_spec_type(spec["items"]);
    return "list";
  }
  if (type == "map" && spec.contains("additional")) {
    return "map of name to " + describe_spec_type(spec["additional"]);
  }
  return type;
}

std::string render_spec_table(const nlohmann::json& map_spec) {
  std::string out;
  const nlohmann::json keys = spec_object(map_spec, "keys");
  if (!keys.empty()) {
    out += "| key | type | required | default | description |\n";
    out += "|---|---|---|---|---|\n";
    for (const auto& [k, s] : keys.items()) {
      std::string def = s.contains("default") ? "`" + s["default"].dump() + "`" : "";
      std::string doc = spec_string(s, "doc");
      if (spec_flag(s, "secret")) doc += " (secret)";
      out += fmt::format("| `{}` | {} | {} | {} | {} |\n", k, escape_cell(describe_spec_type(s)),
                         spec_flag(s, "required") ? "yes" : "", escape_cell(def), escape_cell(doc));
    }
  }
  if (map_spec.contains("extends")) {
    out += fmt::format(
        "\nPlus the {} options of the connector named by `connector` (see `dpone connectors "
        "describe NAME`).\n",
        spec_string(map_spec, "extends"));
  }
  return out;
}

std::string render_spec_markdown(const nlohmann::json& map_spec, const std::string& prefix,
                                 int level) {
  std::string out = render_spec_table(map_spec);
  const nlohmann::json keys = spec_object(map_spec, "keys");
  for (const auto& [k, s] : keys.items()) {
    std::string suffix;
    const nlohmann::json* nested = nested_map(s, suffix);
    if (nested == nullptr) continue;
    std::string path = join_path(prefix, k) + suffix;
    out += fmt::format("\n{} `{}`\n\n", std::string(static_cast<size_t>(level), '#'), path);
    if (!spec_string(s, "doc").empty()) out += spec_string(s, "doc") + "\n\n";
    out += render_spec_markdown(*nested, path, level + 1);
  }
  return out;
}

}  // namespace dpone
