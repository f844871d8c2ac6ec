#include "core/connector/gate_tap.hpp"

#include <fmt/format.h>

#include <cstdlib>
#include <string_view>

#include "core/connector/copy_rows.hpp"

namespace dpone {

namespace {

class TapBatchReader : public BatchReader {
 public:
  TapBatchReader(std::unique_ptr<BatchReader> inner, std::shared_ptr<GateTap::State> state)
      : inner_(std::move(inner)), state_(std::move(state)) {}
  const Schema& schema() const override { return inner_->schema(); }
  std::optional<RecordBatch> next() override {
    auto batch = inner_->next();
    if (batch) state_->add(*batch);
    return batch;
  }

 private:
  std::unique_ptr<BatchReader> inner_;
  std::shared_ptr<GateTap::State> state_;
};

// COPY data (text or binary), counted as it passes (CopyRowCounter); the parts of a
// parallel artifact count into one shared total.
class TapCopyReader : public ByteReader {
 public:
  TapCopyReader(std::unique_ptr<ByteReader> inner, std::shared_ptr<GateTap::State> state,
                bool binary)
      : inner_(std::move(inner)), state_(std::move(state)), counter_(binary) {}
  size_t read(char* buffer, size_t size) override {
    size_t n = inner_->read(buffer, size);
    const int64_t before = counter_.rows();
    counter_.feed(std::string_view(buffer, n));
    state_->rows += counter_.rows() - before;
    return n;
  }

 private:
  std::unique_ptr<ByteReader> inner_;
  std::shared_ptr<GateTap::State> state_;
  CopyRowCounter counter_;
};

}  // namespace

void GateTap::State::add(const RecordBatch& batch) {
  rows += static_cast<int64_t>(batch.num_rows());
  for (auto& [name, hasher] : hashers) hasher.add(batch);
}

GateTap::GateTap(const std::vector<GateSpec>& gates, const Schema& schema, const std::string& where)
    : state_(std::make_shared<State>()) {
  for (const auto& c : schema.columns)
    state_->columns.push_back({{"name", c.name}, {"type", c.type.to_string()}});
  for (const auto& g : gates)
    if (g.type == "typed_hash")
      state_->hashers.emplace_back(g.name,
                                   TypedHasher(schema, typed_hash_columns(g, schema, where)));
}

Artifact GateTap::wrap(Artifact artifact) {
  const std::string spec = spec_of(artifact).to_string();
  const std::string not_counted =
      fmt::format("the sink receives {}, whose rows the runtime does not count", spec);
  if (auto* rows = std::get_if<StreamingRows>(&artifact)) {
    if (rows->format == WireFormat::RecordBatch && rows->batches) {
      state_->counted = true;
      rows->batches = std::make_unique<TapBatchReader>(std::move(rows->batches), state_);
      return artifact;
    }
    state_->hash_unavailable = fmt::format(
        "the sink receives {}: a pass-through byte stream dpone does not decode, so the source "
        "rows "
        "cannot be hashed",
        spec);
    auto tap_bytes = [&](std::unique_ptr<ByteReader>& reader) {
      if (!reader) return;
      reader = std::make_unique<TapCopyReader>(std::move(reader), state_,
                                               rows->format == WireFormat::PgCopyBinary);
    };
    if (rows->format == WireFormat::PgCopyText || rows->format == WireFormat::PgCopyBinary) {
      state_->counted = true;
      tap_bytes(rows->bytes);
      for (auto& part : rows->parts) tap_bytes(part);  // each part is a complete stream
    } else {
      state_->rows_unknown = not_counted;
    }
    return artifact;
  }
  if (auto* mem = std::get_if<InMemoryRows>(&artifact)) {
    state_->counted = true;
    for (const auto& b : mem->batches) state_->add(b);
    return artifact;
  }
  if (auto* file = std::get_if<FileExport>(&artifact); file && file->rows >= 0) {
    state_->counted = true;
    state_->rows = file->rows;
  } else {
    state_->rows_unknown = not_counted;
  }
  state_->hash_unavailable = fmt::format("the sink receives {}, which dpone does not decode", spec);
  return artifact;
}

// Test-only fault injection (docs/quality-gates.md "Testing the gates"): the SQL sinks
// never lose rows, so a row_count failure can only be shown end to end by skewing the
// count the runtime read. DPONE_TEST_FAULTS="gate_source_rows_offset=<n>"; recorded in
// the run record (gate params are not, so the detail says so).
static std::optional<int64_t> source_rows_offset() {
  const char* env = std::getenv("DPONE_TEST_FAULTS");
  if (env == nullptr) return std::nullopt;
  std::string_view v(env);
  constexpr std::string_view kKey = "gate_source_rows_offset=";
  auto pos = v.find(kKey);
  if (pos == std::string_view::npos) return std::nullopt;
  return std::strtoll(std::string(v.substr(pos + kKey.size())).c_str(), nullptr, 10);
}

void GateTap::annotate(std::vector<GateSpec>& gates) const {
  nlohmann::json src = {{"columns", state_->columns}};
  if (state_->counted) {
    const int64_t rows = state_->rows.load();
    src["rows"] = rows;
    if (auto offset = source_rows_offset()) {
      src["rows"] = rows + *offset;
      src["fault"] = fmt::format("DPONE_TEST_FAULTS added {} to the source rows read", *offset);
    }
  } else {
    src["rows_unknown"] =
        state_->rows_unknown.empty() ? "the source was not read" : state_->rows_unknown;
  }
  if (state_->hash_unavailable.empty()) {
    nlohmann::json hashes = nlohmann::json::object();
    for (const auto& [name, h] : state_->hashers)
      hashes[name] = {{"rows", h.rows()}, {"sum", fmt::format("{:016x}", h.sum())}};
    src["hashes"] = hashes;
  } else {
    src["hash_unavailable"] = state_->hash_unavailable;
  }
  for (auto& g : gates) {
    if (!g.params.is_object()) g.params = nlohmann::json::object();
    g.params[kSourceKey] = src;
  }
}

}  // namespace dpone
