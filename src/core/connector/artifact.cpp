#include "core/connector/artifact.hpp"

namespace dpone {

std::string to_string(ArtifactKind kind) {
  switch (kind) {
    case ArtifactKind::InMemoryRows: return "in_memory_rows";
    case ArtifactKind::StreamingRows: return "streaming_rows";
    case ArtifactKind::FileExport: return "file_export";
    case ArtifactKind::PartitionedFileExport: return "partitioned_file_export";
    case ArtifactKind::InternalQuery: return "internal_query";
  }
  return "unknown";
}

std::string to_string(WireFormat format) {
  switch (format) {
    case WireFormat::RecordBatch: return "record_batch";
    case WireFormat::PgCopyText: return "pg_copy_text";
    case WireFormat::PgCopyBinary: return "pg_copy_binary";
    case WireFormat::Tsv: return "tsv";
    case WireFormat::Csv: return "csv";
    case WireFormat::Jsonl: return "jsonl";
  }
  return "unknown";
}

std::string ArtifactSpec::to_string() const {
  // An internal query carries no bytes and no rows, so it has no wire format.
  if (kind == ArtifactKind::InternalQuery) return dpone::to_string(kind);
  return dpone::to_string(kind) + "/" + dpone::to_string(format);
}

ArtifactSpec spec_of(const Artifact& artifact) {
  struct Visitor {
    ArtifactSpec operator()(const InMemoryRows&) const { return {ArtifactKind::InMemoryRows}; }
    ArtifactSpec operator()(const StreamingRows& s) const {
      return {ArtifactKind::StreamingRows, s.format};
    }
    ArtifactSpec operator()(const FileExport& f) const { return {ArtifactKind::FileExport, f.format}; }
    ArtifactSpec operator()(const PartitionedFileExport& p) const {
      return {ArtifactKind::PartitionedFileExport,
              p.parts.empty() ? WireFormat::Csv : p.parts.front().format};
    }
    ArtifactSpec operator()(const InternalQuery&) const { return {ArtifactKind::InternalQuery}; }
  };
  return std::visit(Visitor{}, artifact);
}

}  // namespace dpone
