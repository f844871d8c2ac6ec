#include "core/manifest/connections.hpp"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <sstream>

#include <fmt/format.h>

#include "core/errors.hpp"
#include "core/manifest/option_spec.hpp"
#include "core/util/redactor.hpp"

extern char** environ;

namespace dpone {

namespace {

constexpr std::string_view kEnvPrefix = "DPONE_CONN_";

std::string normalize_id(const std::string& id) {
  std::string out;
  for (char c : id) {
    auto u = static_cast<unsigned char>(c);
    out += std::isalnum(u) ? static_cast<char>(std::toupper(u)) : '_';
  }
  return out;
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool starts_with(const std::string& s, std::string_view prefix) {
  return s.size() >= prefix.size() && s.compare(0, prefix.size(), prefix) == 0;
}

std::string read_text_file(const std::filesystem::path& path, bool& ok) {
  std::ifstream in(path, std::ios::binary);
  ok = static_cast<bool>(in);
  if (!ok) return {};
  std::stringstream buf;
  buf << in.rdbuf();
  std::string text = buf.str();
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text;
}

// Interpolates ${env:NAME} and ${file:PATH} in one string. `derived` receives every
// substituted value.
std::string interpolate(const std::string& value, const std::string& id, const std::string& field,
                        const std::filesystem::path& base_dir, std::vector<std::string>& derived) {
  std::string out;
  size_t pos = 0;
  while (pos < value.size()) {
    size_t start = value.find("${", pos);
    if (start == std::string::npos) break;
    bool is_env = value.compare(start + 2, 4, "env:") == 0;
    bool is_file = value.compare(start + 2, 5, "file:") == 0;
    size_t end = value.find('}', start);
    if ((!is_env && !is_file) || end == std::string::npos) {
      out.append(value, pos, start + 2 - pos);
      pos = start + 2;
      continue;
    }
    out.append(value, pos, start - pos);
    size_t name_start = start + 2 + (is_env ? 4 : 5);
    std::string name = value.substr(name_start, end - name_start);
    std::string resolved;
    if (is_env) {
      const char* v = std::getenv(name.c_str());
      if (v == nullptr) {
        throw Error(ErrorCode::SecretUnresolved,
                    fmt::format("connection '{}' field '{}': environment variable {} is not set",
                                id, field, name),
                    fmt::format("export {} before running dpone", name));
      }
      resolved = v;
    } else {
      std::filesystem::path p(name);
      if (p.is_relative()) p = base_dir / p;
      bool ok = false;
      resolved = read_text_file(p, ok);
      if (!ok) {
        throw Error(
            ErrorCode::SecretUnresolved,
            fmt::format("connection '{}' field '{}': cannot read file {}", id, field, p.string()),
            "check the path (relative paths start at the connections file's directory) "
            "and its permissions");
      }
    }
    derived.push_back(resolved);
    out += resolved;
    pos = end + 1;
  }
  out.append(value, pos, std::string::npos);
  return out;
}

// The password of scheme://user:password@host, if the value looks like such a URL.
std::optional<std::string> url_password(const std::string& value) {
  size_t scheme = value.find("://");
  if (scheme == std::string::npos) return std::nullopt;
  size_t at = value.find('@', scheme + 3);
  if (at == std::string::npos) return std::nullopt;
  std::string userinfo = value.substr(scheme + 3, at - scheme - 3);
  if (userinfo.find('/') != std::string::npos) return std::nullopt;
  size_t colon = userinfo.find(':');
  if (colon == std::string::npos || colon + 1 == userinfo.size()) return std::nullopt;
  return userinfo.substr(colon + 1);
}

}  // namespace

std::string connection_env_prefix(const std::string& id) {
  return std::string(kEnvPrefix) + normalize_id(id) + "_";
}

ConnectionResolver ConnectionResolver::open(const std::filesystem::path& connections_file) {
  std::map<std::string, std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string entry(*e);
    if (!starts_with(entry, kEnvPrefix)) continue;
    size_t eq = entry.find('=');
    if (eq == std::string::npos) continue;
    env[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  return open(connections_file, env);
}

ConnectionResolver ConnectionResolver::open(const std::filesystem::path& connections_file,
                                            const std::map<std::string, std::string>& environment) {
  ConnectionResolver r;
  r.file_ = connections_file;
  for (const auto& [k, v] : environment) {
    if (starts_with(k, kEnvPrefix) && k.size() > kEnvPrefix.size()) r.env_[k] = v;
  }
  std::error_code ec;
  r.file_exists_ = !connections_file.empty() && std::filesystem::exists(connections_file, ec);
  if (!r.file_exists_) return r;

  std::vector<Problem> syntax;
  ConfigNode root = parse_yaml_file(connections_file, syntax);
  for (const auto& p : syntax) {
    if (p.code == ErrorCode::ConfigYamlSyntax) throw ManifestError(syntax);
  }
  r.file_problems_ = std::move(syntax);
  const std::string file = connections_file.string();
  if (root.is_null()) return r;  // an empty file defines nothing
  if (!root.is_map()) {
    r.file_problems_.push_back(Problem{ErrorCode::ConfigWrongType, root.mark, "",
                                       "expected a map with a `connections:` key", ""});
    return r;
  }
  for (const auto& e : root.entries) {
    if (e.key != "connections") {
      r.file_problems_.push_back(Problem{ErrorCode::ConfigUnknownKey, e.key_mark, e.key,
                                         fmt::format("unknown key '{}'", e.key),
                                         suggest(e.key, {"connections"})});
    }
  }
  const ConfigNode* conns = root.get("connections");
  if (conns == nullptr || conns->is_null()) return r;
  if (!conns->is_map()) {
    r.file_problems_.push_back(
        Problem{ErrorCode::ConfigWrongType, conns->mark, "connections",
                "expected a map of connection id to fields, got " + conns->type_name(), ""});
    return r;
  }
  for (const auto& e : conns->entries) {
    if (!e.value.is_map()) {
      r.file_problems_.push_back(Problem{ErrorCode::ConfigWrongType, e.value.mark, e.value.path,
                                         "expected a map of fields, got " + e.value.type_name(),
                                         ""});
      continue;
    }
    r.entries_.push_back(FileEntry{e.key, e.key_mark, e.value});
  }
  return r;
}

const ConnectionResolver::FileEntry* ConnectionResolver::file_entry(const std::string& id) const {
  for (const auto& e : entries_) {
    if (e.id == id) return &e;
  }
  return nullptr;
}

std::vector<std::pair<std::string, std::string>> ConnectionResolver::env_fields(
    const std::string& id) const {
  const std::string prefix = connection_env_prefix(id);
  // Variables of a longer known id sharing this prefix (ids "db" and "db_replica":
  // DPONE_CONN_DB_REPLICA_HOST belongs to "db_replica") are not this id's.
  std::vector<std::string> longer;
  for (const auto& e : entries_) {
    std::string p = connection_env_prefix(e.id);
    if (p.size() > prefix.size() && starts_with(p, prefix)) longer.push_back(p);
  }
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [name, value] : env_) {
    if (!starts_with(name, prefix) || name.size() == prefix.size()) continue;
    bool other = std::any_of(longer.begin(), longer.end(),
                             [&](const std::string& p) { return starts_with(name, p); });
    if (!other) out.emplace_back(name, value);
  }
  return out;
}

bool ConnectionResolver::has(const std::string& id) const {
  return file_entry(id) != nullptr || !env_fields(id).empty();
}

std::vector<std::string> ConnectionResolver::ids() const {
  std::vector<std::string> out;
  for (const auto& e : entries_) out.push_back(e.id);
  for (const auto& [name, value] : env_) {
    constexpr std::string_view kType = "_TYPE";
    if (name.size() <= kEnvPrefix.size() + kType.size() ||
        name.compare(name.size() - kType.size(), kType.size(), kType) != 0) {
      continue;
    }
    std::string id =
        lower(name.substr(kEnvPrefix.size(), name.size() - kEnvPrefix.size() - kType.size()));
    bool known = std::any_of(out.begin(), out.end(), [&](const std::string& o) {
      return normalize_id(o) == normalize_id(id);
    });
    if (!known) out.push_back(id);
  }
  return out;
}

ConfigNode ConnectionResolver::fields_of(const std::string& id, Mark* mark) const {
  const FileEntry* entry = file_entry(id);
  ConfigNode fields;
  if (entry != nullptr) {
    fields = entry->fields;
    if (mark != nullptr) *mark = entry->mark;
  } else {
    fields = ConfigNode::map(Mark{}, "connections." + id);
  }
  const std::string prefix = connection_env_prefix(id);
  for (const auto& [name, value] : env_fields(id)) {
    std::string field = lower(name.substr(prefix.size()));
    Mark m{"$" + name, 0, 0};
    if (mark != nullptr && mark->file.empty()) *mark = m;
    // Environment values are plain scalars: DPONE_CONN_X_PORT=5432 is an integer.
    fields.set(field, ConfigNode::scalar(value, m, join_path("connections." + id, field)), m);
  }
  return fields;
}

std::optional<std::string> ConnectionResolver::type_of(const std::string& id) const {
  if (!has(id)) return std::nullopt;
  ConfigNode fields = fields_of(id, nullptr);
  const ConfigNode* type = fields.get("type");
  if (type == nullptr || !type->is_scalar() || type->text.find("${") != std::string::npos) {
    return std::nullopt;
  }
  return type->text;
}

std::vector<Problem> ConnectionResolver::validate(const ConnectorCatalog& catalog) const {
  std::vector<Problem> out = file_problems_;
  for (const auto& id : ids()) {
    auto more = validate(catalog, id);
    out.insert(out.end(), more.begin(), more.end());
  }
  return out;
}

std::vector<Problem> ConnectionResolver::validate(const ConnectorCatalog& catalog,
                                                  const std::string& id) const {
  std::vector<Problem> out;
  if (!has(id)) return out;
  Mark mark;
  ConfigNode fields = fields_of(id, &mark);
  const std::string path = "connections." + id;
  const ConfigNode* type = fields.get("type");
  const ConnectorDescriptor* connector = nullptr;
  if (type == nullptr || type->is_null()) {
    out.push_back(Problem{ErrorCode::ConfigMissingKey, mark, path + ".type",
                          fmt::format("connection '{}' has no type (set `type:` in the file or "
                                      "{}TYPE)",
                                      id, connection_env_prefix(id)),
                          ""});
  } else if (!type->is_scalar()) {
    out.push_back(Problem{ErrorCode::ConfigWrongType, type->mark, type->path,
                          "expected a connector name, got " + type->type_name(), ""});
  } else {
    connector = catalog.find(type->text);
    if (connector == nullptr) {
      out.push_back(Problem{ErrorCode::ConfigBadValue, type->mark, type->path,
                            fmt::format("unknown connector '{}'", type->text),
                            suggest(type->text, catalog.names())});
    }
  }
  if (connector == nullptr) return out;
  ConfigNode rest = fields;
  rest.entries.erase(std::remove_if(rest.entries.begin(), rest.entries.end(),
                                    [](const ConfigEntry& e) { return e.key == "type"; }),
                     rest.entries.end());
  nlohmann::json spec = {{"type", "map"}, {"keys", connector->connection_fields()}};
  SpecContext ctx;
  ctx.problems = &out;
  ctx.lenient_references = true;
  ctx.missing_mark = mark;
  ctx.missing_prefix = path;
  ctx.extension = nullptr;
  // Messages say whose fields these are.
  size_t before = out.size();
  validate_node(rest, spec, ctx);
  for (size_t i = before; i < out.size(); ++i) {
    if (out[i].code == ErrorCode::ConfigUnknownKey) {
      out[i].message += fmt::format(" (not a {} connection field)", connector->name);
    }
  }
  return out;
}

std::string ConnectionResolver::describe_missing(const std::string& id) const {
  std::string where = file_exists_ ? fmt::format("not in {}", file_.string())
                                   : fmt::format("no connections file at {}", file_.string());
  return fmt::format("connection '{}' is not defined: {} and no {}* environment variable is set",
                     id, where, connection_env_prefix(id));
}

ResolvedConnection ConnectionResolver::resolve(const std::string& id) const {
  if (!has(id)) {
    std::string hint = suggest(id, ids());
    throw Error(ErrorCode::ConnectionMissing, describe_missing(id),
                hint.empty() ? fmt::format("define it under `connections:` in {} or set {}TYPE "
                                           "and its fields",
                                           file_.string(), connection_env_prefix(id))
                             : fmt::format("did you mean '{}'?", hint));
  }
  ConfigNode fields = fields_of(id, nullptr);
  ResolvedConnection out;
  out.id = id;
  const ConfigNode* type = fields.get("type");
  if (type == nullptr || !type->is_scalar()) {
    throw Error(
        ErrorCode::ConfigMissingKey, fmt::format("connection '{}' has no type", id),
        fmt::format("set `type: <connector>` for it, or {}TYPE", connection_env_prefix(id)));
  }
  const std::filesystem::path base_dir =
      file_.has_parent_path() ? file_.parent_path() : std::filesystem::path(".");
  std::vector<std::string> unused;
  out.type = interpolate(type->text, id, "type", base_dir, unused);

  for (const auto& e : fields.entries) {
    if (e.key == "type" || e.value.is_null()) continue;
    std::vector<std::string> derived;
    std::string value;
    if (e.value.is_scalar()) {
      value = interpolate(e.value.text, id, e.key, base_dir, derived);
    } else {
      // Structured fields travel as JSON text; references inside strings resolve too.
      std::function<nlohmann::json(const nlohmann::json&)> walk = [&](const nlohmann::json& j) {
        if (j.is_string())
          return nlohmann::json(interpolate(j.get<std::string>(), id, e.key, base_dir, derived));
        if (!j.is_structured()) return j;
        nlohmann::json copy = j;
        for (auto& [k, v] : copy.items()) v = walk(v);
        return copy;
      };
      value = walk(e.value.to_json()).dump();
    }
    auto& redactor = Redactor::global();
    if (auto pw = url_password(value)) redactor.add(*pw);
    if (is_secret_field(e.key)) {
      redactor.add(value);
      for (const auto& d : derived) redactor.add(d);
      out.secrets.emplace(e.key, Secret(value));
    } else {
      out.fields.emplace(e.key, value);
    }
  }
  return out;
}

std::filesystem::path connections_file_for(const std::filesystem::path& manifest_file) {
  if (const char* env = std::getenv("DPONE_CONNECTIONS"); env != nullptr && *env != '\0') {
    return std::filesystem::path(env);
  }
  const std::filesystem::path dir =
      manifest_file.has_parent_path() ? manifest_file.parent_path() : std::filesystem::path(".");
  std::vector<Problem> ignored;
  try {
    ConfigNode root = parse_yaml_file(manifest_file, ignored);
    if (const ConfigNode* f = root.is_map() ? root.get("connections_file") : nullptr;
        f != nullptr && f->is_scalar() && !f->text.empty()) {
      std::filesystem::path p(f->text);
      return p.is_absolute() ? p : dir / p;
    }
  } catch (const Error&) {
    // Unreadable manifest: load_manifest reports it.
  }
  return dir / "connections.yaml";
}

}  // namespace dpone
