// The internal query path (README.md "Internal query"): when a postgres source and a
// postgres sink reach the same database as the same role (connection_identity), the
// source hands over its extraction query (columns, window predicate; the xmin snapshot
// when there is one) as an InternalQuery artifact, and the sink stages it with
//
//   INSERT INTO <staging> (<columns>) SELECT <conversions> FROM (<source query>) AS src
//
// on the server: no row passes through dpone. The rows staged are the server's own
// count (the command tag). Values are those of the pg_copy_text path: a column whose
// staging type differs from its source type goes through its output text exactly as
// COPY would carry it (format('%s', col), NULL kept), then through the staging type's
// input (an explicit cast, or assignment for string types so an over-long value fails
// as COPY fails instead of being cut).
//
// Opt out per side with `internal_query: false` (source or sink options).
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "connectors/postgres/pg_connection.hpp"
#include "core/connector/artifact.hpp"
#include "core/types.hpp"

namespace dpone::pg {

// The `internal_query` option of a source or sink map (default true). Throws
// Error(ConfigBadValue) when it is not a boolean.
bool internal_query_option(const nlohmann::json& options, const std::string& where);

struct InternalQueryResult {
  int64_t rows = 0;
  std::string sql;  // the INSERT ... SELECT that ran
};

// Runs `query` into the existing table schema.staging (columns named as source_schema).
// Throws Error(StageFailed) naming the query when the server rejects it.
InternalQueryResult stage_internal_query(PgConnection& db, const InternalQuery& query,
                                         const std::string& schema, const std::string& staging,
                                         const Schema& source_schema);

}  // namespace dpone::pg
