// The sqlite connector: source and staged sink over SQLite database files (README.md).
// Factories and the option helpers source and sink share.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/connector/options.hpp"

#include "core/connector/registry.hpp"
#include "core/connector/sink.hpp"
#include "core/connector/source.hpp"

namespace dpone {

// Registers the "sqlite" source and sink factories (the module entry point calls it).
void register_sqlite_connector(ConnectorRegistry& registry);

std::unique_ptr<Source> make_sqlite_source(const SourceContext& context);
std::unique_ptr<Sink> make_sqlite_sink(const SinkContext& context);

namespace sqlite {

// Reads the stream's options map with errors naming the stream and the key.
// One options reader for every connector (core/connector/options.hpp).
using Options = ::dpone::ConnectorOptions;

// The database file: the connection's `path` field or the `path` option (not both),
// relative to base_dir. Warns (never printing the value) when the connection carries a
// password, which stock SQLite cannot use.
std::string resolve_database_path(const Options& options, const ResolvedConnection* connection,
                                  const std::filesystem::path& base_dir, Diagnostics* diagnostics);

// Staging/shadow names carry the run id with every non-alphanumeric character as '_'.
std::string sanitize_run_id(const std::string& run_id);

}  // namespace sqlite
}  // namespace dpone
