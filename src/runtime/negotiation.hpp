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

// What decides whether the internal query artifact may be used: it moves no rows
// through dpone, so it is only possible when both sides reach the same database as the
// same role, and only wanted when nothing needs to see the rows.
struct ArtifactContext {
  std::string source_identity;  // connection_identity() of the source's connection, or ""
  std::string sink_identity;    // same for the sink
  std::string refuse_internal;  // non-empty: why the runtime will not use it (e.g. a gate)
};

// negotiate() with ArtifactKind::InternalQuery handled first: chosen when both sides list
// it and the identities are equal and non-empty and nothing refuses it; otherwise it is
// removed from both lists and the rest is negotiated, the reason saying why it was not
// used (when both sides offered it); the decision's offered/accepted lists are then the
// lists without it.
ArtifactDecision negotiate(const std::vector<ArtifactSpec>& offered,
                           const std::vector<ArtifactSpec>& accepted, const ArtifactContext& context);

}  // namespace dpone
