// The postgres state store (`state: {type: postgres, connection: <id>, schema: dpone}`):
// the StateStore contract of the SQLite store, kept in two tables of a PostgreSQL
// database (README.md "State store"):
//
//   <schema>.state(stream text PRIMARY KEY, revision bigint, position jsonb, run_id text,
//                  updated_at text)
//   <schema>.state_history(stream, revision, position, run_id, action, committed_at,
//                          PRIMARY KEY (stream, revision))
//
// commit() is a compare-and-set in one transaction: an UPDATE ... WHERE revision =
// expected (or, for a stream never committed, an INSERT ... ON CONFLICT DO NOTHING)
// that must touch exactly one row, plus the history row. Two runs committing the same
// stream serialise on the row lock; the loser touches no row and gets StateConflict.
//
// The same commit can run inside the postgres sink's promotion transaction when the
// store is in the sink's own database (commit_state_with_data below): then data, load
// receipt and state commit or roll back together.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "connectors/postgres/pg_connection.hpp"
#include "core/connector/registry.hpp"
#include "core/state/state_store.hpp"

namespace dpone {

// The state store factory the module registers (ConnectorRegistry::add_state_store). Throws
// Error(ConfigMissingKey) without a connection, Error(StateStoreFailed) when the server cannot be
// reached or the tables cannot be created. With context.create == false returns nullptr when the
// state tables do not exist yet.
std::unique_ptr<StateStore> make_postgres_state_store(const StateStoreContext& context);

namespace pg {

inline constexpr const char* kDefaultStateSchema = "dpone";

// Whether <schema>.state and <schema>.state_history exist.
bool state_tables_exist(PgConnection& db, const std::string& schema);
// Creates the schema and tables if missing (serialised by an advisory lock).
void ensure_state_tables(PgConnection& db, const std::string& schema);

// The compare-and-set commit, inside the caller's open transaction (the caller commits
// or rolls back). Appends the statements it ran to *log when given. Throws
// Error(StateConflict) when the stored revision is not expected_revision.
StreamState commit_state_in_transaction(PgConnection& db, const std::string& schema,
                                        const StateCommitRequest& request,
                                        std::vector<std::string>* log = nullptr);

// For the postgres sink's promotion: runs request inside the open promotion transaction
// of `db` when the request's store lives in this very database (connector "postgres" and
// connection_identity(sink_connection) equal to the store's), and returns the committed
// state; nullopt (nothing done) otherwise.
std::optional<StreamState> commit_state_with_data(PgConnection& db,
                                                  const ResolvedConnection& sink_connection,
                                                  const StateCommitRequest& request,
                                                  std::vector<std::string>& log);

}  // namespace pg
}  // namespace dpone
