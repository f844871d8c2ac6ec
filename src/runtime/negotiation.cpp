#include "runtime/negotiation.hpp"

#include <algorithm>
#include <iterator>

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

ArtifactDecision negotiate(const std::vector<ArtifactSpec>& offered,
                           const std::vector<ArtifactSpec>& accepted, const ArtifactContext& context) {
  const ArtifactSpec internal{ArtifactKind::InternalQuery};
  auto has = [&](const std::vector<ArtifactSpec>& v) { return std::find(v.begin(), v.end(), internal) != v.end(); };
  const bool both = has(offered) && has(accepted);
  // "postgres:user@host:port/db" is shown as "user@host:port/db".
  auto shown = [](const std::string& identity) {
    auto colon = identity.find(':');
    return colon == std::string::npos ? identity : identity.substr(colon + 1);
  };
  std::string why_not;
  if (both) {
    if (context.source_identity.empty() || context.source_identity != context.sink_identity) {
      why_not = "source and sink are different databases";
    } else if (!context.refuse_internal.empty()) {
      why_not = context.refuse_internal;
    } else {
      ArtifactDecision d;
      d.offered = offered;
      d.accepted = accepted;
      d.source_spec = d.sink_spec = internal;
      std::string kind = context.sink_identity.substr(0, context.sink_identity.find(':'));
      if (kind == "postgres") kind = "PostgreSQL";
      d.reason = "source and sink are the same " + kind + " database " +
                 shown(context.sink_identity) +
                 ": the load runs on the server as INSERT INTO <staging> SELECT ..., no rows pass through dpone";
      return d;
    }
  }
  std::vector<ArtifactSpec> o, a;
  std::copy_if(offered.begin(), offered.end(), std::back_inserter(o), [&](const auto& s) { return !(s == internal); });
  std::copy_if(accepted.begin(), accepted.end(), std::back_inserter(a), [&](const auto& s) { return !(s == internal); });
  // The recorded lists are the eligible ones (without internal_query): `perf advise`
  // reads sink_accepts[0] as the sink's native input for this pair.
  ArtifactDecision d = negotiate(o, a);
  if (both) d.reason += "; internal_query not used: " + why_not;
  return d;
}

}  // namespace dpone
