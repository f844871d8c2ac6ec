#include "runtime/stream_parts.hpp"

#include "core/errors.hpp"

namespace dpone {

void make_stream_parts(StreamParts& parts, const StreamSpec& stream, const Manifest& manifest,
                       const ConnectionResolver& connections, ModuleLoader& loader,
                       const std::string& run_id, std::function<void(int64_t, int64_t)> on_progress) {
  const auto& src = stream.config.at("source");
  const auto& snk = stream.config.at("sink");
  if (src.contains("connection")) parts.source_conn = connections.resolve(src["connection"].get<std::string>());
  if (snk.contains("connection")) parts.sink_conn = connections.resolve(snk["connection"].get<std::string>());
  const std::string src_name = src.at("connector").get<std::string>();
  const std::string snk_name = snk.at("connector").get<std::string>();
  const auto& sf = loader.factory(src_name);
  if (!sf.make_source) throw Error(ErrorCode::ConfigBadValue, "connector '" + src_name + "' has no source");
  const auto& kf = loader.factory(snk_name);
  if (!kf.make_sink) throw Error(ErrorCode::ConfigBadValue, "connector '" + snk_name + "' has no sink");
  parts.source = sf.make_source(SourceContext{stream.name, src, parts.source_conn ? &*parts.source_conn : nullptr,
                                              manifest.base_dir, &parts.diagnostics});
  parts.sink = kf.make_sink(SinkContext{stream.name, run_id, snk, parts.sink_conn ? &*parts.sink_conn : nullptr,
                                        manifest.base_dir, &parts.diagnostics, std::move(on_progress)});
}

}  // namespace dpone
