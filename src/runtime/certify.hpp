// `dpone connectors certify NAME --connection ID`: a fixed scenario suite run against a
// live system through the real runtime. Each scenario runs this dpone binary on
// generated manifests (so failpoints and credentials can be set per run, exactly as an
// operator would) and checks run records and data read back. A scenario the connector's
// declared capabilities do not cover is SKIP with the reason; a skip is never a pass.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/connector/catalog.hpp"

namespace dpone {

struct ScenarioResult {
  std::string name;
  std::string status;  // PASS | FAIL | SKIP
  std::string detail;  // what was checked, or why it failed / was skipped
  double seconds = 0;
};

struct CertifyOptions {
  std::string connector;
  std::string connection;
  std::filesystem::path connections_file;  // absolute; may not exist (env-only connections)
  std::filesystem::path work_dir;          // scratch; created
  std::filesystem::path dpone_binary;      // the binary to drive (this one)
};

std::vector<ScenarioResult> certify(const ConnectorDescriptor& descriptor, const CertifyOptions& options);
nlohmann::json certification_json(const CertifyOptions& options, const std::vector<ScenarioResult>& results);
std::string certification_markdown(const CertifyOptions& options, const std::vector<ScenarioResult>& results);

}  // namespace dpone
