#include "runtime/negotiation.hpp"

#include <algorithm>

#include "core/errors.hpp"

namespace dpone {

nlohmann::json ArtifactDecision::to_json() const {
  auto list = [](const std::vector<ArtifactSpec>& v) {
    nlohmann::json a = nlohmann::json::array();
    for (const auto& s : v) a.push_back(s.to_string());
    return a;
  };
  return {{"source_produces", source_spec.to_string()},
          {"sink_receives", sink_spec.to_string()},
          {"converter", converter},
          {"reason", reason},
          {"source_offers", list(offered)},
          {"sink_accepts", list(accepted)}};
}

ArtifactDecision negotiate(const std::vector<ArtifactSpec>& offered,
                           const std::vector<ArtifactSpec>& accepted) {
  ArtifactDecision d;
  d.offered = offered;
  d.accepted = accepted;
  for (size_t i = 0; i < accepted.size(); ++i) {
    if (std::find(offered.begin(), offered.end(), accepted[i]) != offered.end()) {
      d.source_spec = d.sink_spec = accepted[i];
      d.reason = i == 0 ? "the sink's preferred input, offered by the source"
                        : "the sink's choice #" + std::to_string(i + 1) +
                              " (its better inputs are not offered by the source)";
      return d;
    }
  }
  // Decoded record batches are the common currency: a sink that takes batches can
  // take any source through a decoder, which the runtime inserts here once decoders
  // for wire formats exist (PostgreSQL COPY text/binary come with that connector).
  auto batches = ArtifactSpec{ArtifactKind::StreamingRows, WireFormat::RecordBatch};
  bool sink_takes_batches = std::find(accepted.begin(), accepted.end(), batches) != accepted.end();
  std::string offers, accepts;
  for (const auto& s : offered) offers += (offers.empty() ? "" : ", ") + s.to_string();
  for (const auto& s : accepted) accepts += (accepts.empty() ? "" : ", ") + s.to_string();
  throw Error(ErrorCode::ConfigBadValue,
              "no artifact path between source (offers " + offers + ") and sink (accepts " +
                  accepts + ")" + (sink_takes_batches ? "; no decoder exists for the source's formats" : ""));
}

}  // namespace dpone
