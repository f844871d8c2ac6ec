// A configuration tree that remembers where every value was written. Built from
// YAML (yaml-cpp), it is what the manifest compiler merges, templates and validates,
// so a problem found after merging still points at the user's own text.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/manifest/problem.hpp"

namespace dpone {

struct ConfigEntry;

struct ConfigNode {
  enum class Kind { Null, Scalar, List, Map };

  Kind kind = Kind::Null;
  Mark mark;                         // where the value starts (for a null value: its key)
  std::string path;                  // key path where the user wrote it, e.g. "streams[0].sink"
  std::string from;                  // document label for origins, e.g. "defaults.sink"
  std::string text;                  // scalar text as written (without quotes)
  bool quoted = false;               // quoted or tagged !!str: a string whatever it looks like
  std::vector<ConfigNode> items;     // Kind::List
  std::vector<ConfigEntry> entries;  // Kind::Map, in document order, keys unique
  std::vector<Origin> overridden;    // what this value replaced when documents merged
  std::vector<Origin> via;           // template variables that produced this value

  bool is_null() const { return kind == Kind::Null; }
  bool is_scalar() const { return kind == Kind::Scalar; }
  bool is_list() const { return kind == Kind::List; }
  bool is_map() const { return kind == Kind::Map; }
  Origin origin() const { return Origin{mark, from}; }

  const ConfigNode* get(const std::string& key) const;  // map entry or nullptr
  ConfigNode* get(const std::string& key);
  // Sets (replacing) or appends an entry.
  ConfigNode& set(const std::string& key, ConfigNode value, Mark key_mark = {});
  std::vector<std::string> keys() const;

  // The YAML 1.2 core-schema value of a scalar: null, bool, integer, float or string
  // (a quoted scalar is always a string). Kind::Null gives null.
  nlohmann::json scalar_value() const;
  // The whole tree as JSON, scalars typed as scalar_value().
  nlohmann::json to_json() const;
  // "map", "list", "null", or the scalar's type name ("string", "integer", ...).
  std::string type_name() const;

  // Sets `from` on this node and every descendant.
  void set_from(const std::string& label);

  static ConfigNode scalar(std::string text, Mark mark, std::string path, bool quoted = false);
  static ConfigNode map(Mark mark, std::string path);
};

struct ConfigEntry {
  std::string key;
  Mark key_mark;
  ConfigNode value;
};

// Parses YAML text into a tree whose paths start at `root_path`. A syntax error adds a
// CONFIG_YAML_SYNTAX problem (with yaml-cpp's position) and returns a null node;
// duplicate keys and non-string keys add problems too.
ConfigNode parse_yaml(const std::string& text, const std::string& file,
                      std::vector<Problem>& problems, const std::string& root_path = "");
// Reads and parses a file; `display_name` is what marks show (defaults to the path).
// Throws Error(ConfigInvalid) when the file cannot be read.
ConfigNode parse_yaml_file(const std::filesystem::path& file, std::vector<Problem>& problems,
                           const std::string& display_name = "");

// Typing of a plain (unquoted) YAML scalar under the YAML 1.2 core schema.
nlohmann::json plain_scalar_value(const std::string& text);

}  // namespace dpone
