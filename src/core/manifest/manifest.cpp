#include "core/manifest/manifest.hpp"

#include <fnmatch.h>

#include <algorithm>
#include <optional>
#include <regex>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <yaml-cpp/yaml.h>

#include "core/connector/sql_gates.hpp"
#include "core/connector/strategy.hpp"
#include "core/errors.hpp"
#include "core/manifest/config_node.hpp"
#include "core/manifest/option_spec.hpp"
#include "core/manifest/schema.hpp"
#include "core/util/redactor.hpp"

namespace dpone {

namespace {

// ---------------------------------------------------------------------------------
// Merging

// Origins of a value that is about to be replaced (its history, itself, and the
// template variables that produced it).
std::vector<Origin> history_of(const ConfigNode& n) {
  std::vector<Origin> out = n.overridden;
  if (n.is_map()) return out;  // a replaced map's leaves are not tracked individually
  out.push_back(n.origin());
  out.insert(out.end(), n.via.begin(), n.via.end());
  return out;
}

// Maps deep-merge; scalars, lists and null replace.
void merge_into(ConfigNode& base, const ConfigNode& overlay) {
  if (base.is_map() && overlay.is_map()) {
    for (const auto& e : overlay.entries) {
      if (ConfigNode* existing = base.get(e.key)) {
        merge_into(*existing, e.value);
      } else {
        base.entries.push_back(e);
      }
    }
    // The map now belongs to the latest document that wrote it.
    base.mark = overlay.mark;
    base.path = overlay.path;
    base.from = overlay.from;
    return;
  }
  std::vector<Origin> history = history_of(base);
  base = overlay;
  history.insert(history.end(), overlay.overridden.begin(), overlay.overridden.end());
  base.overridden = std::move(history);
}

// ---------------------------------------------------------------------------------
// Templates

struct VarDef {
  ConfigNode node;
  Origin origin;
};

using VarTable = std::map<std::string, VarDef>;

const std::regex& template_regex() {
  static const std::regex kTemplate("\\{\\{(.*?)\\}\\}");
  return kTemplate;
}

bool valid_var_name(const std::string& name) {
  static const std::regex kName("[A-Za-z_][A-Za-z0-9_.-]*");
  return std::regex_match(name, kName);
}

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

bool is_state_var(const std::string& name) {
  return name.rfind("state.", 0) == 0;
}

struct Templater {
  const VarTable& vars;
  std::vector<Problem>& problems;

  void problem(const ConfigNode& at, std::string message, std::string suggestion = {}) {
    problems.push_back(
        Problem{ErrorCode::ConfigTemplate, at.mark, at.path, std::move(message), suggestion});
  }

  // The variable's value, itself templated; nullopt (after a problem) when unknown.
  std::optional<VarDef> lookup(const ConfigNode& at, const std::string& name, int depth) {
    auto it = vars.find(name);
    if (it == vars.end()) {
      std::vector<std::string> names;
      for (const auto& [k, v] : vars) names.push_back(k);
      problem(at,
              fmt::format("unknown variable '{}' (define it under `vars:` or pass --var {}=...)",
                          name, name),
              suggest(name, names));
      return std::nullopt;
    }
    VarDef def = it->second;
    if (depth >= 8) {
      problem(at, fmt::format("variable '{}' refers to itself through other variables", name));
      return std::nullopt;
    }
    apply(def.node, depth + 1);
    return def;
  }

  void apply(ConfigNode& n, int depth = 0) {
    if (n.is_list()) {
      for (auto& i : n.items) apply(i, depth);
      return;
    }
    if (n.is_map()) {
      for (auto& e : n.entries) apply(e.value, depth);
      return;
    }
    if (!n.is_scalar() || n.text.find("{{") == std::string::npos) return;

    const std::string& text = n.text;
    std::smatch whole;
    static const std::regex kWhole("\\s*\\{\\{([^{}]*)\\}\\}\\s*");
    if (std::regex_match(text, whole, kWhole)) {
      std::string name = trim(whole[1].str());
      if (is_state_var(name)) return;  // filled at run time
      if (!valid_var_name(name)) {
        problem(n, fmt::format("malformed template '{{{{{}}}}}'", whole[1].str()));
        return;
      }
      auto def = lookup(n, name, depth);
      if (!def) return;
      // The whole value is one variable: it takes the variable's value and type.
      ConfigNode replaced = def->node;
      replaced.mark = n.mark;
      replaced.path = n.path;
      replaced.from = n.from;
      replaced.overridden = n.overridden;
      std::vector<Origin> via = n.via;
      via.push_back(def->origin);
      via.insert(via.end(), def->node.via.begin(), def->node.via.end());
      replaced.via = std::move(via);
      if (replaced.is_null()) {
        // An empty variable is an empty string, not "unset".
        replaced.kind = ConfigNode::Kind::Scalar;
        replaced.quoted = true;
        replaced.text.clear();
      }
      n = std::move(replaced);
      return;
    }

    std::string out;
    auto begin = std::sregex_iterator(text.begin(), text.end(), template_regex());
    size_t last = 0;
    bool ok = true;
    std::vector<Origin> via;
    for (auto it = begin; it != std::sregex_iterator(); ++it) {
      const auto& m = *it;
      out.append(text, last, static_cast<size_t>(m.position(0)) - last);
      last = static_cast<size_t>(m.position(0) + m.length(0));
      std::string name = trim(m[1].str());
      if (is_state_var(name)) {
        out += m.str(0);
        continue;
      }
      if (!valid_var_name(name)) {
        problem(n, fmt::format("malformed template '{}'", m.str(0)));
        ok = false;
        continue;
      }
      auto def = lookup(n, name, depth);
      if (!def) {
        ok = false;
        continue;
      }
      if (def->node.is_map() || def->node.is_list()) {
        problem(n, fmt::format("variable '{}' is a {}; it can only be used as a whole value "
                               "(\"{{{{ {} }}}}\")",
                               name, def->node.is_map() ? "map" : "list", name));
        ok = false;
        continue;
      }
      out += def->node.text;
      via.push_back(def->origin);
      via.insert(via.end(), def->node.via.begin(), def->node.via.end());
    }
    if (!ok) return;
    out.append(text, last, std::string::npos);
    n.text = std::move(out);
    n.quoted = true;  // text built from a template is a string
    n.via.insert(n.via.end(), via.begin(), via.end());
  }
};

// ---------------------------------------------------------------------------------
// Compilation

const char* const kStreamSections[] = {"source",           "sink",           "state",  "quality",
                                       "schema_evolution", "reconciliation", "lineage"};

// A string member of a validated object, or "" (a value that failed validation is null).
std::string string_at(const nlohmann::json& obj, const char* key) {
  if (!obj.is_object()) return {};
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : std::string();
}

struct StreamInput {
  ConfigNode doc;     // the stream's own keys (for a schemas table: the table's map)
  std::string label;  // "streams[0]" / "schemas.public.tables[1]"
  Mark mark;
  bool expanded = false;
  std::string schema, table;  // schemas expansion
};

void dedupe_and_sort(std::vector<Problem>& problems, const std::string& manifest_file) {
  std::vector<Problem> unique;
  for (auto& p : problems) {
    bool seen = std::any_of(unique.begin(), unique.end(), [&](const Problem& u) {
      // A value written once (in defaults, or a connection) and checked for every
      // stream using it is reported once, with the first stream's wording.
      return u.code == p.code && u.mark == p.mark && u.path == p.path;
    });
    if (!seen) unique.push_back(std::move(p));
  }
  std::stable_sort(unique.begin(), unique.end(), [&](const Problem& a, const Problem& b) {
    bool a_here = a.mark.file == manifest_file, b_here = b.mark.file == manifest_file;
    if (a_here != b_here) return a_here;
    if (a.mark.file != b.mark.file) return a.mark.file < b.mark.file;
    if (a.mark.line != b.mark.line) return a.mark.line < b.mark.line;
    return a.mark.column < b.mark.column;
  });
  problems = std::move(unique);
}

// The leaves of a JSON value, as key paths under `prefix`.
void json_leaves(const nlohmann::json& v, const std::string& prefix,
                 std::vector<std::string>& out) {
  if (v.is_object() && !v.empty()) {
    for (const auto& [k, c] : v.items()) json_leaves(c, join_path(prefix, k), out);
    return;
  }
  out.push_back(prefix);
}

void collect_via(const ConfigNode& n, std::vector<Origin>& out) {
  out.insert(out.end(), n.via.begin(), n.via.end());
  for (const auto& i : n.items) collect_via(i, out);
  for (const auto& e : n.entries) collect_via(e.value, out);
}

void collect_origins(const ConfigNode& n, const nlohmann::json& value, const std::string& rel,
                     std::map<std::string, std::vector<Origin>>& origins) {
  if (n.is_map() && value.is_object()) {
    for (const auto& e : n.entries) {
      if (value.contains(e.key)) {
        collect_origins(e.value, value[e.key], join_path(rel, e.key), origins);
      }
    }
    return;
  }
  std::vector<Origin> o = n.overridden;
  o.push_back(n.origin());
  if (n.is_list()) {
    collect_via(n, o);
  } else {
    o.insert(o.end(), n.via.begin(), n.via.end());
  }
  origins[rel] = std::move(o);
}

// Splits "sink.strategy.mode" / "quality[0].columns" into object keys and indexes.
struct PathPart {
  std::string key;
  bool is_index = false;
  size_t index = 0;
};

std::optional<std::vector<PathPart>> parse_key_path(const std::string& path) {
  std::vector<PathPart> parts;
  size_t i = 0;
  while (i < path.size()) {
    if (path[i] == '.') {
      ++i;
      continue;
    }
    if (path[i] == '[') {
      size_t close = path.find(']', i);
      if (close == std::string::npos) return std::nullopt;
      std::string digits = path.substr(i + 1, close - i - 1);
      if (digits.empty() || !std::all_of(digits.begin(), digits.end(), ::isdigit)) {
        return std::nullopt;
      }
      parts.push_back(PathPart{"", true, std::stoul(digits)});
      i = close + 1;
      continue;
    }
    size_t end = path.find_first_of(".[", i);
    if (end == std::string::npos) end = path.size();
    parts.push_back(PathPart{path.substr(i, end - i)});
    i = end;
  }
  if (parts.empty()) return std::nullopt;
  return parts;
}

class Compiler {
 public:
  Compiler(const std::filesystem::path& file, const LoadOptions& options,
           const ConnectorCatalog& catalog, const ConnectionResolver& connections)
      : file_(file),
        display_(file.string()),
        options_(options),
        catalog_(catalog),
        connections_(connections) {}

  Manifest run() {
    ConfigNode root = parse_yaml_file(file_, problems_, display_);
    fail_if(std::any_of(problems_.begin(), problems_.end(),
                        [](const Problem& p) { return p.code == ErrorCode::ConfigYamlSyntax; }));
    if (!root.is_map()) {
      problems_.push_back(Problem{
          ErrorCode::ConfigWrongType, root.mark, "",
          "a manifest is a map (kind, vars, defaults, streams, ...), got " + root.type_name(), ""});
      fail_if(true);
    }
    Manifest m;
    m.file = file_;
    m.base_dir = std::filesystem::absolute(file_).parent_path();
    m.connections_file = connections_.file();

    check_top_level(root);
    build_vars(root, m);
    if (const ConfigNode* d = root.get("defaults"); d != nullptr && d->is_map()) {
      defaults_ = *d;
      for (auto& e : defaults_.entries) e.value.set_from("defaults." + e.key);
    }
    std::vector<StreamInput> inputs = stream_inputs(root);
    std::map<std::string, std::string> names;  // name -> label of its first use
    for (auto& in : inputs) {
      StreamSpec s = compile(in);
      if (s.name.empty()) continue;
      if (auto it = names.find(s.name); it != names.end()) {
        const ConfigNode* name_node = in.doc.get("name");
        problems_.push_back(
            Problem{ErrorCode::ConfigBadValue, name_node != nullptr ? name_node->mark : in.mark,
                    in.label + ".name",
                    fmt::format("stream name '{}' is already used by {}", s.name, it->second), ""});
        continue;
      }
      names[s.name] = in.label;
      m.streams.push_back(std::move(s));
    }
    fail_if(!problems_.empty());
    return m;
  }

 private:
  void fail_if(bool condition) {
    if (!condition) return;
    dedupe_and_sort(problems_, display_);
    throw ManifestError(problems_);
  }

  void add(ErrorCode code, const Mark& mark, std::string path, std::string message,
           std::string suggestion = {}) {
    problems_.push_back(
        Problem{code, mark, std::move(path), std::move(message), std::move(suggestion)});
  }

  // Connector lookups for `extends: source|sink` maps.
  std::optional<SpecExtension> extension(const std::string& role, const ConfigNode& map) {
    const ConfigNode* c = map.get("connector");
    if (c == nullptr || !c->is_scalar() || c->text.find("{{") != std::string::npos) {
      return std::nullopt;
    }
    const ConnectorDescriptor* d = catalog_.find(c->text);
    if (d == nullptr) {
      add(ErrorCode::ConfigBadValue, c->mark, c->path,
          fmt::format("unknown connector '{}' (known: {})", c->text,
                      fmt::join(catalog_.names(), ", ")),
          suggest(c->text, catalog_.names()));
      return std::nullopt;
    }
    bool ok = role == "source" ? d->has_source() : d->has_sink();
    if (!ok) {
      add(ErrorCode::ConfigBadValue, c->mark, c->path,
          fmt::format("connector '{}' cannot be used as a {}: it has no {} section", d->name, role,
                      role));
      return std::nullopt;
    }
    return SpecExtension{role == "source" ? d->source_options() : d->sink_options(),
                         fmt::format("the {} {}", d->name, role)};
  }

  void check_top_level(const ConfigNode& root) {
    const nlohmann::json& schema = manifest_schema();
    const nlohmann::json& keys = schema["keys"];
    std::vector<std::string> names;
    for (const auto& [k, v] : keys.items()) names.push_back(k);
    for (const auto& e : root.entries) {
      if (!keys.contains(e.key)) {
        add(ErrorCode::ConfigUnknownKey, e.key_mark, e.value.path,
            fmt::format("unknown key '{}'", e.key), suggest(e.key, names));
      }
    }
    SpecContext ctx;
    ctx.problems = &problems_;
    ctx.missing_mark = root.mark;
    ctx.check_required = true;
    // kind, vars, connections_file: complete documents.
    for (const char* key : {"kind", "vars", "connections_file"}) {
      const ConfigNode* n = root.get(key);
      if (n == nullptr || n->is_null()) {
        if (keys[key].value("required", false)) {
          add(ErrorCode::ConfigMissingKey, Mark{display_, 1, 1}, key,
              fmt::format("missing required key '{}' (this version reads `kind: "
                          "dpone.batch.v1`)",
                          key));
        }
        continue;
      }
      validate_node(*n, keys[key], ctx, key);
    }
    // defaults: a partial document, validated where it is written; required keys and
    // connector options that depend on the stream are checked per stream.
    if (const ConfigNode* d = root.get("defaults"); d != nullptr && !d->is_null()) {
      SpecContext dctx;
      dctx.problems = &problems_;
      dctx.check_required = false;
      dctx.lenient_templates = true;
      dctx.extension = [this](const std::string& role, const ConfigNode& map, const std::string&) {
        return extension(role, map);
      };
      validate_node(*d, keys["defaults"], dctx, "defaults");
    }
    const ConfigNode* streams = root.get("streams");
    const ConfigNode* schemas = root.get("schemas");
    if (streams != nullptr && !streams->is_null()) {
      if (!streams->is_list()) {
        add(ErrorCode::ConfigWrongType, streams->mark, streams->path,
            "expected a list of streams, got " + streams->type_name());
      } else {
        for (const auto& s : streams->items) {
          if (!s.is_map()) {
            add(ErrorCode::ConfigWrongType, s.mark, s.path,
                "expected a stream (a map with name, source, sink), got " + s.type_name());
          }
        }
      }
    }
    if (schemas != nullptr && !schemas->is_null()) check_schemas(*schemas);
    bool any =
        (streams != nullptr && !streams->is_null()) || (schemas != nullptr && !schemas->is_null());
    if (!any) {
      add(ErrorCode::ConfigMissingKey, Mark{display_, 1, 1}, "streams",
          "a manifest needs `streams:` or `schemas:` (nothing to load)");
    }
  }

  void check_schemas(const ConfigNode& schemas) {
    if (!schemas.is_map()) {
      add(ErrorCode::ConfigWrongType, schemas.mark, schemas.path,
          "expected a map of schema name to {tables: [...]}, got " + schemas.type_name());
      return;
    }
    for (const auto& s : schemas.entries) {
      if (!s.value.is_map()) {
        add(ErrorCode::ConfigWrongType, s.value.mark, s.value.path,
            "expected a map with `tables:`, got " + s.value.type_name());
        continue;
      }
      for (const auto& e : s.value.entries) {
        if (e.key != "tables") {
          add(ErrorCode::ConfigUnknownKey, e.key_mark, e.value.path,
              fmt::format("unknown key '{}'", e.key), suggest(e.key, {"tables"}));
        }
      }
      const ConfigNode* tables = s.value.get("tables");
      if (tables == nullptr || tables->is_null()) {
        add(ErrorCode::ConfigMissingKey, s.key_mark, s.value.path + ".tables",
            "missing required key 'tables'");
        continue;
      }
      if (!tables->is_list()) {
        add(ErrorCode::ConfigWrongType, tables->mark, tables->path,
            "expected a list of tables, got " + tables->type_name());
        continue;
      }
      for (const auto& t : tables->items) {
        if (t.is_scalar() && !t.scalar_value().is_null()) continue;
        if (!t.is_map()) {
          add(ErrorCode::ConfigWrongType, t.mark, t.path,
              "expected a table name or a map with `name`, got " + t.type_name());
          continue;
        }
        const ConfigNode* name = t.get("name");
        if (name == nullptr || name->is_null()) {
          add(ErrorCode::ConfigMissingKey, t.mark, t.path + ".name",
              "missing required key 'name' (the table name)");
        } else if (!name->is_scalar()) {
          add(ErrorCode::ConfigWrongType, name->mark, name->path,
              "expected a table name, got " + name->type_name());
        }
      }
    }
  }

  void build_vars(const ConfigNode& root, Manifest& m) {
    m.vars = nlohmann::json::object();
    if (const ConfigNode* v = root.get("vars"); v != nullptr && v->is_map()) {
      for (const auto& e : v->entries) {
        vars_[e.key] = VarDef{e.value, Origin{e.value.mark, "vars." + e.key + " (via template)"}};
      }
    }
    for (const auto& [k, text] : options_.vars) {
      Mark mark{"command line", 0, 0};
      vars_[k] = VarDef{ConfigNode::scalar(text, mark, "--var " + k), Origin{mark, "--var " + k}};
    }
    for (const auto& [k, def] : vars_) m.vars[k] = def.node.to_json();
  }

  std::vector<StreamInput> stream_inputs(const ConfigNode& root) {
    std::vector<StreamInput> out;
    if (const ConfigNode* streams = root.get("streams"); streams != nullptr && streams->is_list()) {
      for (size_t i = 0; i < streams->items.size(); ++i) {
        const ConfigNode& s = streams->items[i];
        if (!s.is_map()) continue;
        StreamInput in;
        in.doc = s;
        in.label = fmt::format("streams[{}]", i);
        in.doc.set_from(in.label);
        in.mark = s.mark;
        out.push_back(std::move(in));
      }
    }
    const ConfigNode* schemas = root.get("schemas");
    if (schemas == nullptr || !schemas->is_map()) return out;
    for (const auto& s : schemas->entries) {
      const ConfigNode* tables = s.value.is_map() ? s.value.get("tables") : nullptr;
      if (tables == nullptr || !tables->is_list()) continue;
      for (size_t i = 0; i < tables->items.size(); ++i) {
        const ConfigNode& t = tables->items[i];
        StreamInput in;
        in.label = fmt::format("schemas.{}.tables[{}]", s.key, i);
        in.mark = t.mark;
        in.expanded = true;
        in.schema = s.key;
        if (t.is_scalar()) {
          in.table = t.text;
          in.doc = ConfigNode::map(t.mark, t.path);
        } else if (t.is_map()) {
          const ConfigNode* name = t.get("name");
          if (name == nullptr || !name->is_scalar()) continue;  // reported above
          in.table = name->text;
          in.doc = t;
          in.doc.entries.erase(std::remove_if(in.doc.entries.begin(), in.doc.entries.end(),
                                              [](const ConfigEntry& e) { return e.key == "name"; }),
                               in.doc.entries.end());
        } else {
          continue;
        }
        in.doc.set_from(in.label);
        out.push_back(std::move(in));
      }
    }
    return out;
  }

  // Declared options of the connector a merged source/sink names (nullptr if unknown).
  const ConnectorDescriptor* connector_of(const ConfigNode& merged, const char* role) const {
    const ConfigNode* section = merged.get(role);
    const ConfigNode* c =
        section != nullptr && section->is_map() ? section->get("connector") : nullptr;
    return c != nullptr && c->is_scalar() ? catalog_.find(c->text) : nullptr;
  }

  StreamSpec compile(StreamInput& in) {
    StreamSpec spec;
    spec.mark = in.mark;

    // Built-in variables of this stream; they win over vars and --var.
    VarTable vars = vars_;
    auto builtin = [&](const std::string& name, const std::string& value) {
      vars[name] = VarDef{ConfigNode::scalar(value, in.mark, in.label, true),
                          Origin{in.mark, "built-in " + name}};
    };
    if (in.expanded) {
      builtin("schema", in.schema);
      builtin("table", in.table);
    }

    // The name first: `stream` is the templated name.
    ConfigNode name_node;
    if (in.expanded) {
      name_node = ConfigNode::scalar(in.schema + "." + in.table, in.mark, in.label, true);
      name_node.from = in.label;
    } else if (const ConfigNode* n = in.doc.get("name"); n != nullptr) {
      name_node = *n;
      Templater{vars, problems_}.apply(name_node);
    }
    std::string name = name_node.is_scalar() ? name_node.text : "";
    builtin("stream", name);

    // defaults, then (schemas) the generated source keys, then the stream's own keys.
    ConfigNode merged = ConfigNode::map(in.mark, in.label);
    merged.from = in.label;
    for (const char* section : kStreamSections) {
      if (const ConfigNode* d = defaults_.get(section)) merged.set(section, *d);
    }
    if (in.expanded) {
      ConfigNode probe = merged;
      merge_into(probe, in.doc);
      const ConnectorDescriptor* src = connector_of(probe, "source");
      ConfigNode gen = ConfigNode::map(in.mark, in.label);
      ConfigNode source = ConfigNode::map(in.mark, in.label + ".source");
      if (src == nullptr || src->source_options().contains("schema")) {
        source.set("schema",
                   ConfigNode::scalar(in.schema, in.mark, in.label + ".source.schema", true),
                   in.mark);
      }
      source.set("table", ConfigNode::scalar(in.table, in.mark, in.label + ".source.table", true),
                 in.mark);
      gen.set("source", source, in.mark);
      gen.set_from(in.label);
      merge_into(merged, gen);
    }
    merge_into(merged, in.doc);
    merged.mark = in.mark;
    if (!name_node.is_null()) merged.set("name", name_node);
    if (in.expanded) {
      const ConnectorDescriptor* snk = connector_of(merged, "sink");
      ConfigNode* sink = merged.get("sink");
      if (sink != nullptr && sink->is_map() && sink->get("table") == nullptr &&
          (snk == nullptr || snk->sink_options().contains("table"))) {
        ConfigNode t = ConfigNode::scalar(in.table, in.mark, in.label + ".sink.table", true);
        t.from = in.label;
        sink->set("table", t, in.mark);
      }
    }

    Templater{vars, problems_}.apply(merged);
    scope_default_reconciliation(merged, in);
    const size_t problems_before = problems_.size();

    SpecContext ctx;
    ctx.problems = &problems_;
    ctx.check_required = true;
    ctx.missing_mark = in.mark;
    ctx.missing_prefix = in.label;
    ctx.extension = [this](const std::string& role, const ConfigNode& map, const std::string&) {
      return extension(role, map);
    };
    nlohmann::json config = validate_node(merged, stream_schema(), ctx);
    if (!config.is_object()) config = nlohmann::json::object();

    check_strategy(merged, config, in);
    const size_t before_connections = problems_.size();
    check_connection(merged, config, "source");
    check_connection(merged, config, "sink");
    const size_t connection_problems = problems_.size() - before_connections;
    name_gates(config);
    check_gates(merged, config, in);
    // The semantic rules `run` and `plan` apply (StrategySpec::for_stream), once the
    // stream's values are otherwise valid (a missing connection does not matter here):
    // reported with the very same messages.
    if (problems_.size() - connection_problems == problems_before)
      check_reconciliation(merged, config, in);

    spec.name = config.contains("name") && config["name"].is_string()
                    ? config["name"].get<std::string>()
                    : name;
    spec.config = std::move(config);
    spec.secret_paths = ctx.secret_paths;
    collect_origins(merged, spec.config, "", spec.origins);
    for (const auto& path : ctx.defaulted) {
      nlohmann::json value = spec.config.at(nlohmann::json::json_pointer(pointer_of(path)));
      std::vector<std::string> leaves;
      json_leaves(value, path, leaves);
      for (const auto& leaf : leaves)
        spec.origins[leaf].push_back(Origin{Mark{"manifest schema", 0, 0}, "default"});
    }
    // Secrets written into the manifest itself are masked in every output from now on.
    for (const auto& path : spec.secret_paths) {
      auto ptr = nlohmann::json::json_pointer(pointer_of(path));
      if (spec.config.contains(ptr) && spec.config[ptr].is_string()) {
        const auto& v = spec.config[ptr].get_ref<const std::string&>();
        if (v.find("{{") == std::string::npos) Redactor::global().add(v);
      }
    }
    return spec;
  }

  // "quality[0].severity" -> "/quality/0/severity" (keys are escaped for JSON pointers).
  static std::string pointer_of(const std::string& dotted) {
    std::string out;
    auto parts = parse_key_path(dotted);
    if (!parts) return out;
    for (const auto& p : *parts) {
      if (p.is_index) {
        out += "/" + std::to_string(p.index);
        continue;
      }
      std::string key;
      for (char c : p.key) key += c == '~' ? "~0" : c == '/' ? "~1" : std::string(1, c);
      out += "/" + key;
    }
    return out;
  }

  void check_strategy(const ConfigNode& merged, const nlohmann::json& config,
                      const StreamInput& in) {
    if (!config.contains("sink") || !config["sink"].contains("strategy")) return;
    const nlohmann::json& strategy = config["sink"]["strategy"];
    const ConfigNode* sink = merged.get("sink");
    const ConfigNode* snode = sink != nullptr ? sink->get("strategy") : nullptr;
    if (snode == nullptr || !strategy.is_object()) return;
    const std::string mode = string_at(strategy, "mode");
    const ConnectorDescriptor* d = connector_of(merged, "sink");
    if (d != nullptr && d->has_sink() && !mode.empty()) {
      auto supported = d->sink_strategies();
      if (std::find(supported.begin(), supported.end(), mode) == supported.end()) {
        const ConfigNode* m = snode->get("mode");
        add(ErrorCode::ConfigBadValue, m->mark, m->path,
            fmt::format("sink connector '{}' does not support mode '{}' (it supports: {})", d->name,
                        mode, fmt::join(supported, ", ")),
            suggest(mode, supported));
      }
    }
    bool has_key = strategy.contains("unique_key") && !strategy["unique_key"].empty();
    if (mode == "merge" && !has_key) {
      add(ErrorCode::ConfigMissingKey, in.mark, in.label + ".sink.strategy.unique_key",
          "mode 'merge' needs unique_key (the column(s) rows are matched on)");
    }
    if (strategy.contains("only_new_rows") && strategy["only_new_rows"] == true && !has_key) {
      const ConfigNode* o = snode->get("only_new_rows");
      add(ErrorCode::ConfigMissingKey, o != nullptr ? o->mark : in.mark,
          in.label + ".sink.strategy.unique_key",
          "only_new_rows needs unique_key (the column(s) that identify a row)");
    }
  }

  // `reconciliation` under `defaults:` tunes the streams whose strategy always reconciles
  // (snapshot_diff, scd2). Deleting rows is never switched on by a default: a merge stream
  // reconciles only with its own `reconciliation` key (which deep-merges with the
  // defaults'), and other strategies (append, full_refresh, ...) do not get the block.
  void scope_default_reconciliation(ConfigNode& merged, const StreamInput& in) const {
    if (!merged.is_map() || merged.get("reconciliation") == nullptr) return;
    if (in.doc.is_map() && in.doc.get("reconciliation") != nullptr) return;
    const ConfigNode* sink = merged.get("sink");
    const ConfigNode* strategy =
        sink != nullptr && sink->is_map() ? sink->get("strategy") : nullptr;
    const ConfigNode* mode =
        strategy != nullptr && strategy->is_map() ? strategy->get("mode") : nullptr;
    const std::string m = mode != nullptr && mode->is_scalar() ? mode->text : "";
    if (m == "snapshot_diff" || m == "scd2") return;
    auto& entries = merged.entries;
    entries.erase(std::remove_if(entries.begin(), entries.end(),
                                 [](const ConfigEntry& e) { return e.key == "reconciliation"; }),
                  entries.end());
  }

  // Reconciliation and lineage rules that need the whole stream (source read mode,
  // strategy, delete policy): StrategySpec::for_stream is what the runtime calls.
  void check_reconciliation(const ConfigNode& merged, const nlohmann::json& config,
                            const StreamInput& in) {
    try {
      StrategySpec::for_stream(config);
    } catch (const Error& e) {
      const std::string message = e.what();
      const char* key = message.rfind("lineage", 0) == 0          ? "lineage"
                        : merged.get("reconciliation") != nullptr ? "reconciliation"
                                                                  : nullptr;
      const ConfigNode* at = key != nullptr ? merged.get(key) : nullptr;
      std::string path = key != nullptr ? in.label + "." + key : in.label + ".sink.strategy";
      if (at == nullptr) {
        const ConfigNode* sink = merged.get("sink");
        at = sink != nullptr && sink->is_map() ? sink->get("strategy") : nullptr;
      }
      add(e.code(), at != nullptr ? at->mark : in.mark, path, message);
    }
  }

  void check_connection(const ConfigNode& merged, const nlohmann::json& config, const char* role) {
    if (!config.contains(role) || !config[role].contains("connection")) return;
    const nlohmann::json& id_json = config[role]["connection"];
    if (!id_json.is_string()) return;
    const std::string id = id_json.get<std::string>();
    const ConfigNode* node = merged.get(role)->get("connection");
    if (!connections_.has(id)) {
      add(ErrorCode::ConnectionMissing, node->mark, node->path,
          fmt::format("connection '{}' is not defined in {} and no {}* environment variable "
                      "is set",
                      id, connections_.file().string(), connection_env_prefix(id)),
          suggest(id, connections_.ids()));
      return;
    }
    auto conn_problems = connections_.validate(catalog_, id);
    problems_.insert(problems_.end(), conn_problems.begin(), conn_problems.end());
    const std::string connector = string_at(config[role], "connector");
    auto type = connections_.type_of(id);
    if (type && !connector.empty() && *type != connector) {
      add(ErrorCode::ConfigBadValue, node->mark, node->path,
          fmt::format("connection '{}' is a '{}' connection, but the {} connector is '{}'", id,
                      *type, role, connector));
    }
  }

  // Keys each gate type needs and takes (the schema lists the union of all types' keys).
  void check_gates(const ConfigNode& merged, const nlohmann::json& config, const StreamInput& in) {
    if (!config.contains("quality") || !config["quality"].is_array()) return;
    const ConfigNode* list = merged.get("quality");
    for (size_t i = 0; i < config["quality"].size(); ++i) {
      const ConfigNode* item = list != nullptr && list->is_list() && i < list->items.size() ? &list->items[i] : nullptr;
      for (const auto& [key, message] : check_gate_spec(config["quality"][i])) {
        const ConfigNode* at = item != nullptr ? item->get(key) : nullptr;
        if (at == nullptr) at = item;
        add(ErrorCode::ConfigBadValue, at != nullptr ? at->mark : in.mark,
            at != nullptr && at != item ? at->path
                                        : fmt::format("{}.quality[{}].{}", in.label, i, key),
            message);
      }
    }
  }

  static void name_gates(nlohmann::json& config) {
    if (!config.contains("quality") || !config["quality"].is_array()) return;
    for (auto& gate : config["quality"]) {
      if (!gate.is_object() || gate.contains("name")) continue;
      std::string name = string_at(gate, "type");
      if (name.empty()) name = "gate";
      if (gate.contains("columns") && gate["columns"].is_array()) {
        for (const auto& c : gate["columns"]) {
          if (c.is_string()) name += "_" + c.get<std::string>();
        }
      }
      gate["name"] = name;
    }
  }

  std::filesystem::path file_;
  std::string display_;
  const LoadOptions& options_;
  const ConnectorCatalog& catalog_;
  const ConnectionResolver& connections_;
  std::vector<Problem> problems_;
  VarTable vars_;
  ConfigNode defaults_ = ConfigNode::map(Mark{}, "defaults");
};

// ---------------------------------------------------------------------------------
// Explain and render

void all_paths(const nlohmann::json& v, const std::string& prefix, std::vector<std::string>& out) {
  if (!prefix.empty()) out.push_back(prefix);
  if (v.is_object()) {
    for (const auto& [k, c] : v.items()) all_paths(c, join_path(prefix, k), out);
  } else if (v.is_array()) {
    for (size_t i = 0; i < v.size(); ++i) all_paths(v[i], fmt::format("{}[{}]", prefix, i), out);
  }
}

bool path_is_secret(const StreamSpec& s, const std::string& path, const std::string& key) {
  if (std::find(s.secret_paths.begin(), s.secret_paths.end(), path) != s.secret_paths.end()) {
    return true;
  }
  return is_secret_field(key);
}

nlohmann::json masked(const StreamSpec& s, const nlohmann::json& v, const std::string& path) {
  if (v.is_object()) {
    nlohmann::json out = nlohmann::json::object();
    for (const auto& [k, c] : v.items()) {
      std::string p = join_path(path, k);
      out[k] = path_is_secret(s, p, k) && !c.is_null() ? nlohmann::json("***") : masked(s, c, p);
    }
    return out;
  }
  if (v.is_array()) {
    nlohmann::json out = nlohmann::json::array();
    for (size_t i = 0; i < v.size(); ++i)
      out.push_back(masked(s, v[i], fmt::format("{}[{}]", path, i)));
    return out;
  }
  if (v.is_string()) return redact(v.get<std::string>());
  return v;
}

// Keys in render order: the identifying ones first, the rest alphabetically.
std::vector<std::string> ordered_keys(const nlohmann::json& obj, bool top) {
  static const std::vector<std::string> kTop = {"name",  "description",      "source", "sink",
                                                "state", "schema_evolution", "quality"};
  static const std::vector<std::string> kFirst = {"connector", "connection", "name", "type",
                                                  "mode"};
  std::vector<std::string> out;
  for (const auto& k : top ? kTop : kFirst) {
    if (obj.contains(k)) out.push_back(k);
  }
  std::vector<std::string> rest;
  for (const auto& [k, v] : obj.items()) {
    if (std::find(out.begin(), out.end(), k) == out.end()) rest.push_back(k);
  }
  // Nested maps (e.g. strategy, columns) after the scalars of their parent.
  std::stable_sort(rest.begin(), rest.end(), [&](const std::string& a, const std::string& b) {
    return !obj[a].is_structured() && obj[b].is_structured();
  });
  out.insert(out.end(), rest.begin(), rest.end());
  return out;
}

void emit(YAML::Emitter& out, const nlohmann::json& v, bool top = false) {
  if (v.is_object()) {
    if (v.empty()) {
      out << YAML::Flow << YAML::BeginMap << YAML::EndMap;
      return;
    }
    out << YAML::BeginMap;
    for (const auto& k : ordered_keys(v, top)) {
      out << YAML::Key << k << YAML::Value;
      emit(out, v[k]);
    }
    out << YAML::EndMap;
  } else if (v.is_array()) {
    if (v.empty()) {
      out << YAML::Flow << YAML::BeginSeq << YAML::EndSeq;
      return;
    }
    bool scalars =
        std::none_of(v.begin(), v.end(), [](const auto& i) { return i.is_structured(); });
    if (scalars) out << YAML::Flow;
    out << YAML::BeginSeq;
    for (const auto& i : v) emit(out, i);
    out << YAML::EndSeq;
  } else if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    // Quote strings YAML would read back as another type ("123", "true", "").
    if (!plain_scalar_value(s).is_string() || s.find("{{") != std::string::npos) {
      out << YAML::DoubleQuoted << s;
    } else {
      out << s;
    }
  } else if (v.is_boolean()) {
    out << (v.get<bool>() ? "true" : "false");
  } else if (v.is_null()) {
    out << YAML::Null;
  } else {
    out << v.dump();
  }
}

}  // namespace

Manifest load_manifest(const std::filesystem::path& file, const LoadOptions& options,
                       const ConnectorCatalog& catalog, const ConnectionResolver& connections) {
  Compiler compiler(file, options, catalog, connections);
  return compiler.run();
}

std::vector<const StreamSpec*> Manifest::select(const std::vector<std::string>& patterns) const {
  std::vector<const StreamSpec*> out;
  if (patterns.empty()) {
    for (const auto& s : streams) out.push_back(&s);
    return out;
  }
  std::vector<bool> chosen(streams.size(), false);
  std::vector<std::string> names;
  for (const auto& s : streams) names.push_back(s.name);
  for (const auto& pattern : patterns) {
    bool matched = false;
    for (size_t i = 0; i < streams.size(); ++i) {
      if (streams[i].name == pattern || fnmatch(pattern.c_str(), streams[i].name.c_str(), 0) == 0) {
        chosen[i] = true;
        matched = true;
      }
    }
    if (!matched) {
      std::string near = suggest(pattern, names);
      throw Error(
          ErrorCode::SelectNoMatch,
          fmt::format("--select '{}' matches no stream; streams in {}: {}", pattern, file.string(),
                      names.empty() ? "(none)" : fmt::format("{}", fmt::join(names, ", "))),
          near.empty() ? "use a stream name or a glob (* and ?)"
                       : fmt::format("did you mean '{}'?", near));
    }
  }
  for (size_t i = 0; i < streams.size(); ++i) {
    if (chosen[i]) out.push_back(&streams[i]);
  }
  return out;
}

const StreamSpec* Manifest::find(const std::string& name) const {
  for (const auto& s : streams) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

Explanation explain(const StreamSpec& stream, const std::string& key_path) {
  auto parts = parse_key_path(key_path);
  const nlohmann::json* v = &stream.config;
  std::string canonical;
  std::string last_key;
  bool found = parts.has_value();
  if (parts) {
    for (const auto& p : *parts) {
      if (p.is_index) {
        if (!v->is_array() || p.index >= v->size()) {
          found = false;
          break;
        }
        v = &(*v)[p.index];
        canonical += fmt::format("[{}]", p.index);
      } else {
        if (!v->is_object() || !v->contains(p.key)) {
          found = false;
          break;
        }
        v = &(*v)[p.key];
        canonical = join_path(canonical, p.key);
        last_key = p.key;
      }
    }
  }
  if (!found) {
    std::vector<std::string> paths;
    all_paths(stream.config, "", paths);
    std::string near = suggest(key_path, paths);
    throw Error(ErrorCode::ConfigBadValue,
                fmt::format("stream '{}' has no key '{}'", stream.name, key_path),
                near.empty() ? "see `dpone render --select " + stream.name + "` for its keys"
                             : fmt::format("did you mean '{}'?", near));
  }
  Explanation out;
  out.value = path_is_secret(stream, canonical, last_key) && !v->is_null()
                  ? nlohmann::json("***")
                  : masked(stream, *v, canonical);
  if (auto it = stream.origins.find(canonical); it != stream.origins.end()) {
    out.origins = it->second;
    return out;
  }
  // A map: the origins of its leaves.
  for (const auto& [path, origins] : stream.origins) {
    if (path.rfind(canonical + ".", 0) == 0 || path.rfind(canonical + "[", 0) == 0) {
      for (const auto& o : origins) {
        if (std::find(out.origins.begin(), out.origins.end(), o) == out.origins.end()) {
          out.origins.push_back(o);
        }
      }
    }
  }
  if (!out.origins.empty()) return out;
  // Inside a list (lists are leaves): the nearest ancestor's origins.
  std::string prefix = canonical;
  while (!prefix.empty()) {
    size_t cut = prefix.find_last_of(".[");
    prefix = cut == std::string::npos ? "" : prefix.substr(0, cut);
    if (auto it = stream.origins.find(prefix); it != stream.origins.end()) {
      out.origins = it->second;
      break;
    }
  }
  return out;
}

std::string render_stream_yaml(const StreamSpec& stream) {
  YAML::Emitter out;
  emit(out, masked(stream, stream.config, ""), true);
  return redact(std::string(out.c_str()) + "\n");
}

}  // namespace dpone
