// The live parts of one stream: its resolved connections and the source and sink the
// connector modules made for it. Used by the engine (run, plan) and by doctor.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "core/connector/diagnostics.hpp"
#include "core/connector/sink.hpp"
#include "core/connector/source.hpp"
#include "core/manifest/connections.hpp"
#include "core/manifest/manifest.hpp"
#include "runtime/module_loader.hpp"

namespace dpone {

// Members are declared so that source and sink are destroyed before the connections
// they borrow.
struct StreamParts {
  Diagnostics diagnostics;
  std::optional<ResolvedConnection> source_conn, sink_conn;
  std::unique_ptr<Source> source;
  std::unique_ptr<Sink> sink;
};

// Resolves the stream's connections (registering their secrets with the redactor),
// loads the connector modules and makes the source and sink. Throws dpone::Error.
void make_stream_parts(StreamParts& parts, const StreamSpec& stream, const Manifest& manifest,
                       const ConnectionResolver& connections, ModuleLoader& loader,
                       const std::string& run_id, std::function<void(int64_t, int64_t)> on_progress);

}  // namespace dpone
