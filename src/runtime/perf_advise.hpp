// `dpone perf advise`: recommendations read from recorded runs, each with the figures
// from the record that support it. Nothing is measured here and nothing is guessed:
// a rule that lacks its figures in the record says nothing.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/connector/catalog.hpp"

namespace dpone {

struct Advice {
  std::string stream;
  std::string rule;            // stable name, e.g. "merge_touches_most_rows"
  std::string recommendation;  // what to do
  std::string evidence;        // the record's own figures
  nlohmann::json to_json() const;
};

// `record` is the run to advise on; `history` holds earlier records of the same project
// (newest first, may include `record` itself), for throughput comparisons.
// `catalog` answers what connectors declare (parallel reads, formats they produce).
std::vector<Advice> advise(const nlohmann::json& record, const std::vector<nlohmann::json>& history,
                           const ConnectorCatalog& catalog);

}  // namespace dpone
