#include "connectors/postgres/pg_connector.hpp"

#include <fmt/format.h>

#include <cctype>

#include "connectors/postgres/pg_state_store.hpp"
#include "core/errors.hpp"

namespace dpone {

void register_postgres_connector(ConnectorRegistry& registry) {
  ConnectorFactory factory;
  factory.name = "postgres";
  factory.make_source = [](const SourceContext& context) { return make_postgres_source(context); };
  factory.make_sink = [](const SinkContext& context) { return make_postgres_sink(context); };
  registry.add(std::move(factory));
  registry.add_state_store("postgres", [](const StateStoreContext& context) {
    return make_postgres_state_store(context);
  });
}

namespace pg {


const ResolvedConnection& require_connection(const ResolvedConnection* connection,
                                             const std::string& where) {
  if (!connection) {
    throw Error(ErrorCode::ConfigMissingKey,
                fmt::format("{} needs a connection (host, port, user, password, dbname)", where),
                "define a connection of type postgres in connections.yaml and name it with "
                "`connection:`");
  }
  return *connection;
}

std::string sanitize_run_id(const std::string& run_id) {
  std::string out = run_id;
  for (auto& c : out) {
    if (!std::isalnum(static_cast<unsigned char>(c))) {
      c = '_';
    } else {
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
  }
  return out;
}

std::vector<CatalogColumn> table_columns(PgConnection& conn, const std::string& schema,
                                         const std::string& table) {
  PgResult r = conn.exec_params(
      "SELECT a.attname, "
      "CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) "
      "ELSE format_type(a.atttypid, a.atttypmod) END, "
      "CASE WHEN t.typtype = 'd' THEN bt.typcategory ELSE t.typcategory END, "
      "a.attnotnull "
      "FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
      "JOIN pg_namespace n ON n.oid = c.relnamespace "
      "JOIN pg_type t ON t.oid = a.atttypid "
      "LEFT JOIN pg_type bt ON bt.oid = t.typbasetype "
      "WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped "
      "ORDER BY a.attnum",
      {schema, table});
  std::vector<CatalogColumn> out;
  for (int i = 0; i < r.rows(); ++i) {
    CatalogColumn c;
    c.name = std::string(r.value(i, 0));
    c.formatted = std::string(r.value(i, 1));
    auto cat = r.value(i, 2);
    c.category = cat.empty() ? 'U' : cat[0];
    c.notnull = r.value(i, 3) == "t";
    out.push_back(std::move(c));
  }
  return out;
}

std::vector<std::string> primary_key(PgConnection& conn, const std::string& schema,
                                     const std::string& table) {
  PgResult r = conn.exec_params(
      "SELECT a.attname FROM pg_index i "
      "JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
      "CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) "
      "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum "
      "WHERE n.nspname = $1 AND c.relname = $2 AND i.indisprimary ORDER BY k.ord",
      {schema, table});
  std::vector<std::string> out;
  for (int i = 0; i < r.rows(); ++i) out.emplace_back(r.value(i, 0));
  return out;
}

std::optional<char> relation_kind(PgConnection& conn, const std::string& schema,
                                  const std::string& table) {
  auto v = conn.query_value(
      "SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
      "WHERE n.nspname = $1 AND c.relname = $2",
      {schema, table});
  if (!v || v->empty()) return std::nullopt;
  return (*v)[0];
}

}  // namespace pg
}  // namespace dpone
