// The connector catalog: what `dpone connectors list` and `dpone validate` read.
// At build time src/connectors/CMakeLists.txt writes an index of every connector's
// descriptor (its connector.json) next to the modules:
//   {"abi": 1, "connectors": [{"built": true, "module": "libdpone_x.so",
//                              "descriptor": {...}}, ...]}
// Reading the catalog never opens a module, so listing, validating and documenting
// work even when a connector's client library is not installed.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace dpone {

struct ConnectorDescriptor {
  std::string name;
  std::string summary;
  std::string module;   // file name of the module, e.g. "libdpone_sqlite.so"
  bool built = true;    // false: listed, but its module was not built (see reason)
  std::string reason;   // why it was not built
  nlohmann::json json;  // the whole descriptor (connection, source, sink sections)

  bool has_source() const { return json.contains("source") && json["source"].is_object(); }
  bool has_sink() const { return json.contains("sink") && json["sink"].is_object(); }
  // The option-spec maps of the descriptor ({} when the section or map is absent).
  nlohmann::json source_options() const;
  nlohmann::json sink_options() const;
  nlohmann::json connection_fields() const;
  // sink.strategies (empty when the connector has no sink).
  std::vector<std::string> sink_strategies() const;
};

class ConnectorCatalog {
 public:
  ConnectorCatalog() = default;
  // Reads the generated index. Throws Error(ModuleMissing) naming the file when it
  // cannot be read or is not a valid index.
  static ConnectorCatalog load(const std::filesystem::path& index_json);
  // Builds a catalog from an index document (tests, embedded indexes). Throws
  // Error(ModuleMissing) when the document is not a valid index.
  static ConnectorCatalog from_json(const nlohmann::json& index);

  const ConnectorDescriptor* find(const std::string& name) const;
  const std::vector<ConnectorDescriptor>& all() const { return connectors_; }
  std::vector<std::string> names() const;

 private:
  std::vector<ConnectorDescriptor> connectors_;  // in index order
};

}  // namespace dpone
