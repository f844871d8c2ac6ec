// Source contract (ARCHITECTURE.md "Contracts").
//
// Lifecycle, called by the runtime from one thread, in this order:
//   plan_window(position) -> discover() -> extract(window) -> next_position(window)
// discover() follows plan_window() so a file source can infer types from the files
// the window holds (a database source ignores the order).
// Rules:
//   - A source never writes state. next_position() only computes the position the
//     runtime commits after the sink promoted the window.
//   - The window's upper bound is fixed by plan_window(), at run start, so a run is
//     bounded and repeatable.
//   - plan() and discover() never change anything anywhere.
//   - Failures throw dpone::Error with a stable code naming the input position.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/connector/artifact.hpp"
#include "core/connector/connection.hpp"
#include "core/connector/diagnostics.hpp"
#include "core/types.hpp"

namespace dpone {

struct SourceContext {
  std::string stream;                      // stream name
  nlohmann::json options;                  // the stream's merged `source:` map
  const ResolvedConnection* connection;    // null when the source names none
  std::filesystem::path base_dir;          // relative paths resolve against it
  Diagnostics* diagnostics;
};

struct Window {
  nlohmann::json low;          // position at start (state), null on a first run
  nlohmann::json high;         // bound fixed at run start
  std::string description;     // one line for plans and reports, e.g. "(10, 250]"
  bool empty = false;          // known to hold nothing: the run loads 0 rows
  std::optional<int64_t> estimated_rows;
  nlohmann::json to_json() const;
};

struct ExtractOptions {
  size_t batch_rows = 8192;
  // The sink loads StreamingRows::parts concurrently (Sink::loads_parts()); a source
  // asked to read in parallel produces parts only then, else one stream.
  bool sink_loads_parts = false;
};

class Source {
 public:
  virtual ~Source() = default;
  // The bounded window for this run given the stored position (null if none).
  virtual Window plan_window(const nlohmann::json& position) = 0;
  // Columns, types, nullability and key of what this stream reads (of the window
  // planned last, where that matters).
  virtual Schema discover() = 0;
  // Artifact specs this source can produce, best first.
  virtual std::vector<ArtifactSpec> produces() const = 0;
  virtual Artifact extract(const Window& window, const ArtifactSpec& spec,
                           const ExtractOptions& options) = 0;
  // The position to commit once the window is promoted.
  virtual nlohmann::json next_position(const Window& window) = 0;
  // Called once after the state store committed `position` for `window` (in the
  // promotion transaction, after it, or on recovery from a load receipt, where
  // `window` is the receipt's). Best effort and informational only (e.g. mirroring
  // Kafka offsets to a consumer group for lag monitoring): state is already the source
  // of truth, so the engine catches anything thrown here and records it as a warning;
  // the run does not fail. A run that dies before its state commit never calls it.
  virtual void committed(const Window& window, const nlohmann::json& position) {
    (void)window;
    (void)position;
  }
};

}  // namespace dpone
