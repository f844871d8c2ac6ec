// The postgres connector: source and staged sink over PostgreSQL (README.md).
// Factories and the helpers source and sink share (options, catalog reads).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/connector/options.hpp"

#include "connectors/postgres/pg_connection.hpp"
#include "connectors/postgres/pg_types.hpp"
#include "core/connector/registry.hpp"
#include "core/connector/sink.hpp"
#include "core/connector/source.hpp"

namespace dpone {

// Registers the "postgres" source and sink factories (the module entry point calls it).
void register_postgres_connector(ConnectorRegistry& registry);

std::unique_ptr<Source> make_postgres_source(const SourceContext& context);
std::unique_ptr<Sink> make_postgres_sink(const SinkContext& context);

namespace pg {

// Reads the stream's options map with errors naming the stream and the key.
// One options reader for every connector (core/connector/options.hpp).
using Options = ::dpone::ConnectorOptions;

// The connection a stream names; throws Error(ConfigMissingKey) when it names none.
const ResolvedConnection& require_connection(const ResolvedConnection* connection,
                                             const std::string& where);

// Staging/shadow names carry the run id with every non-alphanumeric character as '_',
// lower-cased (PostgreSQL folds unquoted names; ours are quoted but stay readable).
std::string sanitize_run_id(const std::string& run_id);

struct CatalogColumn {
  std::string name;
  std::string formatted;  // format_type() of the column (domains: of their base type)
  char category = 'U';    // pg_type.typcategory
  bool notnull = false;
};

// Columns of schema.table in attnum order (empty when the relation does not exist).
std::vector<CatalogColumn> table_columns(PgConnection& conn, const std::string& schema,
                                         const std::string& table);
// Primary-key columns of schema.table in key order (empty when none).
std::vector<std::string> primary_key(PgConnection& conn, const std::string& schema,
                                     const std::string& table);
// relkind of schema.table ('r', 'v', 'm', 'p', 'f', ...) or nullopt when it does not exist.
std::optional<char> relation_kind(PgConnection& conn, const std::string& schema,
                                  const std::string& table);

}  // namespace pg
}  // namespace dpone
