// Registration of the files connector (the module entry point calls it).
#include <memory>

#include "connectors/files/files_sink.hpp"
#include "connectors/files/files_source.hpp"
#include "core/connector/registry.hpp"

namespace dpone {

void register_files_connector(ConnectorRegistry& registry) {
  registry.add(ConnectorFactory{"files",
                                [](const SourceContext& context) -> std::unique_ptr<Source> {
                                  return std::make_unique<FilesSource>(context);
                                },
                                [](const SinkContext& context) -> std::unique_ptr<Sink> {
                                  return std::make_unique<FilesSink>(context);
                                }});
}

}  // namespace dpone
