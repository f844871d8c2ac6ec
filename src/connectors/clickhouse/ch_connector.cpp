#include "connectors/clickhouse/ch_connector.hpp"

#include <fmt/format.h>

#include <cctype>

#include "core/errors.hpp"

namespace dpone {

void register_clickhouse_connector(ConnectorRegistry& registry) {
  ConnectorFactory factory;
  factory.name = "clickhouse";
  factory.make_source = [](const SourceContext& c) { return make_clickhouse_source(c); };
  factory.make_sink = [](const SinkContext& c) { return make_clickhouse_sink(c); };
  registry.add(std::move(factory));
}

namespace ch {

const ResolvedConnection& require_connection(const ResolvedConnection* connection,
                                             const std::string& where) {
  if (!connection) {
    throw Error(ErrorCode::ConfigMissingKey,
                fmt::format("{} needs a connection (url, user, password, database)", where),
                "define a connection of type clickhouse in connections.yaml and name it with "
                "`connection:`");
  }
  return *connection;
}

std::string sanitize_run_id(const std::string& run_id) {
  std::string out = run_id;
  for (auto& c : out) {
    c = std::isalnum(static_cast<unsigned char>(c))
            ? static_cast<char>(std::tolower(static_cast<unsigned char>(c)))
            : '_';
  }
  return out;
}

std::vector<CatalogColumn> table_columns(Client& client, const std::string& db,
                                         const std::string& table) {
  Rows rows = client.rows(fmt::format(
      "SELECT name, type, comment FROM system.columns WHERE database = {} AND table = {}",
      quote_literal(db), quote_literal(table)));
  std::vector<CatalogColumn> out;
  for (auto& r : rows) {
    if (r.size() < 3) continue;
    out.push_back(CatalogColumn{r[0], r[1], r[2]});
  }
  return out;
}

bool table_exists(Client& client, const std::string& db, const std::string& table) {
  return client.int64(
             fmt::format("SELECT count() FROM system.tables WHERE database = {} AND name = {}",
                         quote_literal(db), quote_literal(table))) > 0;
}

}  // namespace ch
}  // namespace dpone
