#include "core/connector/gate_tap.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <string_view>

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

// COPY text format: one row per '\n' (newlines inside values are written as "\n").
class TapCopyTextReader : public ByteReader {
 public:
  TapCopyTextReader(std::unique_ptr<ByteReader> inner, std::shared_ptr<GateTap::State> state)
      : inner_(std::move(inner)), state_(std::move(state)) {}
  size_t read(char* buffer, size_t size) override {
    size_t n = inner_->read(buffer, size);
    state_->rows += std::count(buffer, buffer + n, '\n');
    return n;
  }

 private:
  std::unique_ptr<ByteReader> inner_;
  std::shared_ptr<GateTap::State> state_;
};

// COPY binary format: a 19-byte header (signature, flags, extension length) and the
// extension, then per row an int16 field count and per field an int32 length (-1: NULL)
// and that many bytes; an int16 -1 ends the data. Parsed incrementally across reads.
class TapCopyBinaryReader : public ByteReader {
 public:
  TapCopyBinaryReader(std::unique_ptr<ByteReader> inner, std::shared_ptr<GateTap::State> state)
      : inner_(std::move(inner)), state_(std::move(state)) {}
  size_t read(char* buffer, size_t size) override {
    size_t n = inner_->read(buffer, size);
    for (size_t i = 0; i < n;) {
      if (skip_ > 0) {
        size_t k = std::min<size_t>(skip_, n - i);
        skip_ -= k;
        i += k;
        continue;
      }
      if (phase_ == Phase::Done) break;
      pending_.push_back(buffer[i++]);
      if (pending_.size() < want()) continue;
      consume();
      pending_.clear();
    }
    return n;
  }

 private:
  enum class Phase { Header, Tuple, FieldLength, Done };
  size_t want() const { return phase_ == Phase::Header ? 19 : phase_ == Phase::Tuple ? 2 : 4; }
  int64_t be(size_t from, size_t len) const {
    uint64_t v = 0;
    for (size_t i = from; i < from + len; ++i)
      v = (v << 8) | static_cast<unsigned char>(pending_[i]);
    // Sign-extend the 16- or 32-bit value.
    const int bits = static_cast<int>(len * 8);
    return static_cast<int64_t>(v << (64 - bits)) >> (64 - bits);
  }
  void consume() {
    switch (phase_) {
      case Phase::Header:
        skip_ = static_cast<uint64_t>(std::max<int64_t>(be(15, 4), 0));  // header extension
        phase_ = Phase::Tuple;
        break;
      case Phase::Tuple: {
        int64_t fields = be(0, 2);
        if (fields < 0) {
          phase_ = Phase::Done;
          break;
        }
        ++state_->rows;
        fields_left_ = fields;
        phase_ = fields_left_ > 0 ? Phase::FieldLength : Phase::Tuple;
        break;
      }
      case Phase::FieldLength: {
        int64_t len = be(0, 4);
        if (len > 0) skip_ = static_cast<uint64_t>(len);
        if (--fields_left_ == 0) phase_ = Phase::Tuple;
        break;
      }
      case Phase::Done:
        break;
    }
  }

  std::unique_ptr<ByteReader> inner_;
  std::shared_ptr<GateTap::State> state_;
  Phase phase_ = Phase::Header;
  std::string pending_;
  uint64_t skip_ = 0;
  int64_t fields_left_ = 0;
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
      if (rows->format == WireFormat::PgCopyText)
        reader = std::make_unique<TapCopyTextReader>(std::move(reader), state_);
      else
        reader = std::make_unique<TapCopyBinaryReader>(std::move(reader), state_);
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
