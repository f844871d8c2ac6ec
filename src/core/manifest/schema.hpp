// The core manifest schema: one definition, written as an option spec
// (core/manifest/option_spec.hpp), that validates manifests and renders the manifest
// reference (docs/manifest-reference.md).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace dpone {

// The whole manifest document (top level). Its parts:
//   ["keys"]["streams"]["items"]  the stream spec (also the keys a schemas table map takes)
//   ["keys"]["defaults"]          what defaults may set
const nlohmann::json& manifest_schema();
const nlohmann::json& stream_schema();

// docs/manifest-reference.md, generated from manifest_schema().
std::string manifest_reference_markdown();

}  // namespace dpone
