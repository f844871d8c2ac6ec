// Artifacts: what a source hands to a sink (ADR-0005). A closed sum type; every
// alternative is move-only and owns its resources (readers, files it created).
//
// Negotiation (src/runtime/negotiation.hpp): a source lists the ArtifactSpecs it can
// produce, a sink lists those it accepts, best first; the runtime picks the first
// sink-preferred spec the source offers, or inserts a converter, and records why.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "core/record_batch.hpp"
#include "core/types.hpp"

namespace dpone {

enum class ArtifactKind { InMemoryRows, StreamingRows, FileExport, PartitionedFileExport, InternalQuery };

// Wire format of a byte stream or file. RecordBatch = decoded rows, no wire format.
enum class WireFormat { RecordBatch, PgCopyText, PgCopyBinary, Tsv, Csv, Jsonl };

struct ArtifactSpec {
  ArtifactKind kind;
  WireFormat format = WireFormat::RecordBatch;
  bool operator==(const ArtifactSpec&) const = default;
  std::string to_string() const;  // e.g. "streaming_rows/record_batch"
};

std::string to_string(ArtifactKind kind);
std::string to_string(WireFormat format);

// Pull-based reader of decoded rows. next() returns nullopt at the end of the data.
// Readers may block on I/O; they are used from one thread at a time. A reader that
// fails throws dpone::Error naming the input position (file:line, offset, page).
class BatchReader {
 public:
  virtual ~BatchReader() = default;
  virtual const Schema& schema() const = 0;
  virtual std::optional<RecordBatch> next() = 0;
};

// Pull-based reader of bytes in a wire format. read() returns 0 at the end.
class ByteReader {
 public:
  virtual ~ByteReader() = default;
  virtual size_t read(char* buffer, size_t size) = 0;
};

struct InMemoryRows {
  Schema schema;
  std::vector<RecordBatch> batches;
};

struct StreamingRows {
  WireFormat format = WireFormat::RecordBatch;
  std::unique_ptr<BatchReader> batches;  // set when format == RecordBatch
  std::unique_ptr<ByteReader> bytes;     // set otherwise
  // Typed wire formats (pg_copy_binary): the exact server type of each column, in order
  // (e.g. "numeric(12,2)"); the reader of the bytes must decode with exactly these.
  std::vector<std::string> wire_types;
  // A byte stream read in parallel (a source's `parallel: N`, only for a sink that
  // loads parts): `bytes` is null and the rows are the union of the parts, each a
  // complete stream in `format`, all from one consistent snapshot. Any order.
  std::vector<std::unique_ptr<ByteReader>> parts;
};

struct FileExport {
  std::filesystem::path path;
  WireFormat format = WireFormat::Csv;
  int64_t rows = -1;  // -1 when unknown
  int64_t bytes = 0;
  std::string checksum;
};

struct PartitionedFileExport {
  std::vector<FileExport> parts;
};

// SQL the sink runs on its own server (same connection identity as the source): the
// source's extraction query (columns, window predicate), which the sink wraps as
// INSERT INTO <staging> SELECT ... so no row passes through dpone. Offered by a source
// and accepted by a sink as ArtifactSpec{InternalQuery}; the runtime picks it only when
// both connections have the same connection_identity() (runtime/negotiation.hpp).
struct InternalQuery {
  std::string connection_identity;
  std::string sql;
  // The server type of each result column of `sql`, in the order of the source schema
  // (e.g. "numeric(12,2)"), so the sink can tell where a value needs converting.
  std::vector<std::string> column_types;
  // A snapshot the query must read (the source's window was planned in it, e.g. xmin):
  // the sink imports it (SET TRANSACTION SNAPSHOT) before running `sql`. Empty: none.
  std::string snapshot;
  // Keeps the transaction that exported `snapshot` open while the artifact lives.
  std::shared_ptr<void> snapshot_holder;
};

using Artifact =
    std::variant<InMemoryRows, StreamingRows, FileExport, PartitionedFileExport, InternalQuery>;

ArtifactSpec spec_of(const Artifact& artifact);

}  // namespace dpone
