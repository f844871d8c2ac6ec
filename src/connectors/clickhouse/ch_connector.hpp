// The clickhouse connector: staged sink and source over ClickHouse's HTTP interface
// (README.md). Factories and the helpers source and sink share.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "connectors/clickhouse/ch_client.hpp"
#include "connectors/clickhouse/ch_types.hpp"
#include "core/connector/options.hpp"
#include "core/connector/registry.hpp"
#include "core/connector/sink.hpp"
#include "core/connector/source.hpp"

namespace dpone {

// Registers the "clickhouse" source and sink factories (the module entry point calls it).
void register_clickhouse_connector(ConnectorRegistry& registry);

std::unique_ptr<Source> make_clickhouse_source(const SourceContext& context);
std::unique_ptr<Sink> make_clickhouse_sink(const SinkContext& context);

namespace ch {

// The connection a stream names; throws Error(ConfigMissingKey) when it names none.
const ResolvedConnection& require_connection(const ResolvedConnection* connection,
                                             const std::string& where);

// Run ids in table names: every non-alphanumeric character as '_', lower-cased.
std::string sanitize_run_id(const std::string& run_id);

struct CatalogColumn {
  std::string name;
  std::string type;
  std::string comment;
};
// Columns of db.table in position order (empty when it does not exist).
std::vector<CatalogColumn> table_columns(Client& client, const std::string& db,
                                         const std::string& table);
bool table_exists(Client& client, const std::string& db, const std::string& table);

}  // namespace ch
}  // namespace dpone
