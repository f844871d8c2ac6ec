// The source side of the quality gates that compare source and staging (row_count,
// typed_hash): the runtime wraps the artifact it hands to the sink, and the wrapper
// counts (and, when a typed_hash gate is declared, hashes) the rows as the sink pulls
// them. Nothing is read twice and nothing is buffered.
//
//   record batches (streaming or in memory): rows counted and hashed exactly;
//   pg_copy_text / pg_copy_binary byte streams (pass-through), one stream or parallel
//     parts: rows counted (text: one line per row, COPY escapes newlines inside values;
//     binary: the tuple headers), but not hashed: dpone does not decode them, so a
//     typed_hash gate fails closed;
//   any other artifact: neither; row_count and typed_hash fail closed.
//
// annotate() writes what was seen into each gate's params[kSourceKey] for the sink's
// gate runner (core/connector/sql_gates.hpp). Thread safety: parallel parts may be read
// from several threads (the row count is atomic); wrap() and annotate() from one thread.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "core/connector/artifact.hpp"
#include "core/connector/sink.hpp"
#include "core/connector/sql_gates.hpp"

namespace dpone {

class GateTap {
 public:
  // Throws Error(ConfigBadValue) when a typed_hash gate names a column the schema lacks.
  GateTap(const std::vector<GateSpec>& gates, const Schema& schema, const std::string& where);
  // Returns the artifact, wrapped so that reading it feeds this tap.
  Artifact wrap(Artifact artifact);
  // Adds the source figures to every gate's params (call after stage()).
  void annotate(std::vector<GateSpec>& gates) const;

  struct State {
    bool counted = false;                                      // rows below is meaningful
    std::atomic<int64_t> rows{0};                              // parallel parts count concurrently
    std::string rows_unknown;                                  // why rows is unknown
    std::string hash_unavailable;                              // why the hashes are missing
    std::vector<std::pair<std::string, TypedHasher>> hashers;  // gate name -> hasher
    nlohmann::json columns = nlohmann::json::array();          // the staged schema
    void add(const RecordBatch& batch);
  };

 private:
  std::shared_ptr<State> state_;
};

}  // namespace dpone
