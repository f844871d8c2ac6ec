#include "connectors/sqlite/sqlite_connector.hpp"

#include <fmt/format.h>

#include <cctype>

#include "core/errors.hpp"

namespace dpone {

void register_sqlite_connector(ConnectorRegistry& registry) {
  ConnectorFactory factory;
  factory.name = "sqlite";
  factory.make_source = [](const SourceContext& context) { return make_sqlite_source(context); };
  factory.make_sink = [](const SinkContext& context) { return make_sqlite_sink(context); };
  registry.add(std::move(factory));
}

namespace sqlite {


std::string resolve_database_path(const Options& options, const ResolvedConnection* connection,
                                  const std::filesystem::path& base_dir, Diagnostics* diagnostics) {
  std::optional<std::string> from_connection;
  if (connection) {
    from_connection = connection->get("path");
    if (connection->secret("password") && diagnostics) {
      diagnostics->warn(
          fmt::format("connection '{}': field 'password' is not used by SQLite", connection->id));
    }
  }
  auto from_option = options.string("path");
  if (from_connection && from_option) {
    throw Error(ErrorCode::ConfigInvalid,
                fmt::format("{} names the database file twice: connection '{}' has `path` and "
                            "the stream sets the `path` option",
                            options.where(), connection->id),
                "keep one of them: the connection's `path`, or the option without a connection");
  }
  if (!from_connection && !from_option) {
    if (connection) {
      throw Error(
          ErrorCode::ConfigMissingKey,
          fmt::format("{}: connection '{}' has no `path` field", options.where(), connection->id),
          "set `path: <database file>` on the connection (relative to the manifest)");
    }
    throw Error(ErrorCode::ConfigMissingKey,
                fmt::format("{} needs a database file: set the `path` option or name a "
                            "connection with a `path` field",
                            options.where()));
  }
  std::filesystem::path path(from_connection ? *from_connection : *from_option);
  if (path.is_relative() && !base_dir.empty()) path = base_dir / path;
  return path.lexically_normal().string();
}

std::string sanitize_run_id(const std::string& run_id) {
  std::string out = run_id;
  for (auto& c : out)
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  return out;
}

}  // namespace sqlite
}  // namespace dpone
