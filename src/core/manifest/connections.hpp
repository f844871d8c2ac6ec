// Connections and their secrets (SPEC "Manifest", Connections).
//
// A connection is found in the connections file
//   connections:
//     warehouse: {type: sqlite, path: data/wh.db, password: ${env:WH_PW}}
// and/or in environment variables DPONE_CONN_<ID>_<FIELD>, where <ID> is the id
// uppercased with every non-alphanumeric character replaced by '_' (so ids match the
// environment case-insensitively). An environment variable defines a field or
// overrides the file's; DPONE_CONN_<ID>_TYPE sets the connector, and a connection made
// only of environment variables is listed by ids() once its _TYPE is set.
//
// Values may hold `${env:NAME}` and `${file:PATH}` (a file's contents, trailing newline
// trimmed, PATH relative to the connections file's directory), also inside longer
// strings. They are resolved only by resolve(); validation never reads them.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/connector/catalog.hpp"
#include "core/connector/connection.hpp"
#include "core/manifest/config_node.hpp"
#include "core/manifest/problem.hpp"

namespace dpone {

class ConnectionResolver {
 public:
  // Reads the file (a missing file is fine: the environment may define connections)
  // and snapshots the DPONE_CONN_* environment. Throws ManifestError when the file is
  // not valid YAML and Error(ConfigInvalid) when it exists but cannot be read; other
  // problems are reported by validate().
  static ConnectionResolver open(const std::filesystem::path& connections_file);
  // Same, with an explicit environment instead of the process's (name -> value).
  static ConnectionResolver open(const std::filesystem::path& connections_file,
                                 const std::map<std::string, std::string>& environment);

  bool has(const std::string& id) const;
  // File ids as written, then environment-only ids (lowercased) that have a _TYPE.
  std::vector<std::string> ids() const;
  // The connector type of a connection, without resolving anything (nullopt when
  // unknown or itself a ${...} reference).
  std::optional<std::string> type_of(const std::string& id) const;
  // Checks every connection (or one) against the catalog: `type` names a connector,
  // fields are that connector's connection.fields. Never resolves ${env:}/${file:}.
  std::vector<Problem> validate(const ConnectorCatalog& catalog) const;
  std::vector<Problem> validate(const ConnectorCatalog& catalog, const std::string& id) const;
  // Resolves a connection for use. Every secret-field value, every value a ${env:} or
  // ${file:} reference put into a secret field, and the password of any URL
  // (scheme://user:password@host) is registered with Redactor::global() before this
  // returns. Throws Error(ConnectionMissing) for an unknown id, Error(ConfigMissingKey)
  // when the connection has no type, Error(SecretUnresolved) naming the variable or
  // file a reference could not be read from (never a value).
  ResolvedConnection resolve(const std::string& id) const;
  std::filesystem::path file() const { return file_; }

 private:
  struct FileEntry {
    std::string id;
    Mark mark;
    ConfigNode fields;  // a map; `type` included
  };

  // The id's fields: the file's, overridden by its DPONE_CONN_* variables. `mark`
  // receives where the connection was defined.
  ConfigNode fields_of(const std::string& id, Mark* mark) const;
  std::vector<std::pair<std::string, std::string>> env_fields(const std::string& id) const;
  const FileEntry* file_entry(const std::string& id) const;
  std::string describe_missing(const std::string& id) const;

  std::filesystem::path file_;
  bool file_exists_ = false;
  std::vector<FileEntry> entries_;
  std::vector<Problem> file_problems_;      // structure problems found while reading
  std::map<std::string, std::string> env_;  // DPONE_CONN_* variables only
};

// "DPONE_CONN_" + the id uppercased with non-alphanumerics as '_' + "_".
std::string connection_env_prefix(const std::string& id);

// Where the connections file of a manifest is: $DPONE_CONNECTIONS if set, else the
// manifest's `connections_file` (relative to the manifest), else connections.yaml
// beside the manifest. Reads the manifest only for that key; a manifest that cannot be
// parsed gives the default (load_manifest reports its problems).
std::filesystem::path connections_file_for(const std::filesystem::path& manifest_file);

}  // namespace dpone
