// The lifecycle engine (ARCHITECTURE.md "One picture"). Per stream, in a fixed order,
// every phase timed and recorded:
//   resolve -> window (state, receipt recovery) -> discover -> evolve -> cleanup ->
//   extract+stage -> gates -> promote (DDL + data + receipt) -> state commit -> record
// On any failure the staging is dropped; target and state stay as they were.
// plan() walks the same steps up to the promotion without writing anything anywhere.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/manifest/connections.hpp"
#include "core/manifest/manifest.hpp"
#include "runtime/module_loader.hpp"

namespace dpone {

struct EngineOptions {
  size_t batch_rows = 8192;
  // How long a run waits for a stream another run holds (`dpone run --wait`); 0: fail
  // at once with STREAM_BUSY.
  int64_t lease_wait_s = 0;
};

class Engine {
 public:
  Engine(const Manifest& manifest, const ConnectionResolver& connections, ModuleLoader& loader,
         EngineOptions options = {});
  // Runs the streams one after another, writes .dpone/runs/<run_id>/run.json and
  // metrics.prom, and returns the record. Never throws for a stream's failure: it is
  // recorded with its error code; record["status"] says whether all succeeded.
  nlohmann::json run(const std::vector<const StreamSpec*>& streams);
  // The dry run: for each stream window, schema diff and DDL, strategy steps, artifact
  // path, gates. Writes nothing (no state store, no staging, no run record).
  nlohmann::json plan(const std::vector<const StreamSpec*>& streams);
  const std::string& run_id() const { return run_id_; }

 private:
  nlohmann::json run_stream(const StreamSpec& stream);
  nlohmann::json plan_stream(const StreamSpec& stream);

  const Manifest& manifest_;
  const ConnectionResolver& connections_;
  ModuleLoader& loader_;
  EngineOptions options_;
  std::string run_id_;
};

}  // namespace dpone
