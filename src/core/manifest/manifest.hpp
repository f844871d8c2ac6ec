// The manifest compiler (SPEC "Manifest"): reads a YAML manifest, checks it against the
// core schema (core/manifest/schema.hpp) and the connector descriptors, merges
// defaults into each stream, expands `schemas:` tables, applies `{{ var }}` templates
// and returns one resolved StreamSpec per stream, remembering where every value came
// from. Validation needs no credentials and no network: connections are only looked
// up by id (ConnectionResolver::has), never resolved.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/connector/catalog.hpp"
#include "core/manifest/connections.hpp"
#include "core/manifest/problem.hpp"

namespace dpone {

struct StreamSpec {
  std::string name;
  // Merged, templated and normalized, schema defaults applied:
  //   {name, description?, source, sink, state, schema_evolution, quality}
  // string_list values are lists, logical types canonical, quality gates named.
  nlohmann::json config;
  // For every leaf key path of `config` ("sink.strategy.mode"; lists are leaves:
  // "quality"), where its value was written, oldest first: the last one is effective.
  std::map<std::string, std::vector<Origin>> origins;
  Mark mark;  // the stream's entry (streams[i] or schemas.<s>.tables[i])
  // Key paths holding secrets (by spec `secret: true` or by name, is_secret_field).
  std::vector<std::string> secret_paths;
};

struct Manifest {
  std::filesystem::path file;
  std::filesystem::path base_dir;  // the manifest's directory; relative paths start here
  nlohmann::json vars;             // vars after --var overrides
  std::filesystem::path connections_file;
  std::vector<StreamSpec> streams;  // in manifest order (schemas expansions after streams)

  // Streams whose names match any pattern (exact name or glob with * and ?), in
  // manifest order; empty patterns select all. Throws Error(SelectNoMatch) listing the
  // stream names when a pattern matches nothing.
  std::vector<const StreamSpec*> select(const std::vector<std::string>& patterns) const;
  const StreamSpec* find(const std::string& name) const;
};

struct LoadOptions {
  // --var name=value: overrides vars.name. The value is read as a YAML plain scalar
  // (so `--var batch=100` is an integer where a template is the whole value).
  std::map<std::string, std::string> vars;
};

// Compiles a manifest. Throws ManifestError with every problem found (unknown keys,
// wrong types, missing keys, bad values, templates, missing connections, YAML syntax),
// and Error(ConfigInvalid) when the file cannot be read.
Manifest load_manifest(const std::filesystem::path& file, const LoadOptions& options,
                       const ConnectorCatalog& catalog, const ConnectionResolver& connections);

// `dpone explain --why <key_path>`: the effective value at a dotted path of a stream
// ("sink.strategy.mode", "quality[0].columns") and every origin, oldest first (for a
// map: the origins of all its leaves). Secret values show as "***". Throws
// Error(ConfigBadValue), with a suggestion in the hint, when the path does not exist.
struct Explanation {
  nlohmann::json value;
  std::vector<Origin> origins;
};
Explanation explain(const StreamSpec& stream, const std::string& key_path);

// `dpone render`: the resolved stream as YAML. Secrets show as '***': values of secret
// keys, and any value registered with the Redactor.
std::string render_stream_yaml(const StreamSpec& stream);

}  // namespace dpone
