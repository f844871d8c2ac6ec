// Artifact negotiation: the sink's accepted specs, best first, against what the
// source offers. The decision and its reason go into plans and run records, and
// `perf advise` reads them.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/connector/artifact.hpp"

namespace dpone {

struct ArtifactDecision {
  ArtifactSpec source_spec;  // what the source is asked to produce
  ArtifactSpec sink_spec;    // what the sink receives
  std::string converter;     // empty when none; else e.g. "csv bytes -> record batches"
  std::string reason;
  std::vector<ArtifactSpec> offered;
  std::vector<ArtifactSpec> accepted;
  nlohmann::json to_json() const;
};

// Throws Error(ConfigBadValue) when no path exists between the two.
ArtifactDecision negotiate(const std::vector<ArtifactSpec>& offered,
                           const std::vector<ArtifactSpec>& accepted);

}  // namespace dpone
