// Option specs: the one format that both validates configuration and documents it,
// used by connector descriptors (connector.json: connection.fields, source.options,
// sink.options) and by the core manifest schema (core/manifest/schema.hpp).
//
// A spec is a JSON object:
//   type      string | integer | number | boolean | enum | list | map | any |
//             logical_type (a type name LogicalType::parse accepts) |
//             string_list (a string or a list of strings, normalized to a list)
//   enum      allowed values (type enum)
//   keys      map with fixed known keys: {key: spec}; unknown keys are errors
//   additional  spec of the values of an arbitrary-keyed map ({name: type} columns)
//   items     spec of list items
//   required  the key must be present (after merging)
//   default   value used when the key is absent
//   secret    the value is a secret (masked in render); when absent, the key name
//             decides (is_secret_field)
//   doc       one line of documentation
//   extends   (core schema only) "source" | "sink": the map also takes the options
//             of the connector it names (its descriptor's source/sink options)
// A map spec with neither `keys`, `additional` nor `extends` accepts any keys.
// A key set to null counts as not set (so a stream can cancel a default).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/manifest/config_node.hpp"
#include "core/manifest/problem.hpp"

namespace dpone {

// The options an `extends` map takes beyond its own `keys`, with a label for
// messages ("the sqlite source").
struct SpecExtension {
  nlohmann::json options = nlohmann::json::object();
  std::string label;
};

struct SpecContext {
  std::vector<Problem>* problems = nullptr;
  // false for partial documents (defaults): required keys are checked after merging.
  bool check_required = true;
  // Accept a scalar holding an unresolved `{{ ... }}` template for any type (partial
  // documents are validated before templating). `{{ state.* }}` is always accepted.
  bool lenient_templates = false;
  // Accept a scalar holding a `${env:...}` / `${file:...}` reference for any type
  // (connections are validated without resolving them).
  bool lenient_references = false;
  // Missing required keys are reported here, at join_path(missing_prefix, key path).
  Mark missing_mark;
  std::string missing_prefix;
  // Resolves `extends`; nullopt means "connector not known": extra keys go unchecked
  // (the connector key itself carries the problem).
  std::function<std::optional<SpecExtension>(const std::string& extends, const ConfigNode& map,
                                             const std::string& rel_path)>
      extension;

  // Outputs: key paths (relative to the validated root) that took their spec default,
  // and those holding secrets.
  std::vector<std::string> defaulted;
  std::vector<std::string> secret_paths;
};

// Validates `node` against `spec`, appending problems to ctx.problems, and returns the
// normalized value (strings as written, string_list as a list, logical types in
// canonical spelling, defaults applied). `rel_path` is the node's path relative to
// the validated root (used for missing keys, defaults and secrets).
nlohmann::json validate_node(const ConfigNode& node, const nlohmann::json& spec, SpecContext& ctx,
                             const std::string& rel_path = "");

// A one-line description of a spec's type: "string", "one of: a, b", "list of map", ...
std::string describe_spec_type(const nlohmann::json& spec);

// Markdown table of a map spec's keys (type, required, default, description).
std::string render_spec_table(const nlohmann::json& map_spec);

// Markdown reference of a map spec: a table of its keys, then one section per nested
// map (heading `prefix.key`, lists as `prefix.key[]`). `level` is the heading level of
// the nested sections.
std::string render_spec_markdown(const nlohmann::json& map_spec, const std::string& prefix,
                                 int level);

}  // namespace dpone
