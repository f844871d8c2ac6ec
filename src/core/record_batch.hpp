// A move-only batch of rows. Row-major: every cell is a byte range in one arena
// plus a null flag, so a batch costs three allocations however many rows it holds.
// Cells hold the canonical text form of their column's logical type (bytes: raw).
//
// Ownership: the batch owns its arena; string_views returned by cell() live as long
// as the batch and are invalidated by further appends.
// Thread safety: none; a batch is handed from one thread to the next, never shared.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace dpone {

class RecordBatch {
 public:
  explicit RecordBatch(size_t num_columns) : num_columns_(num_columns) { offsets_.push_back(0); }
  RecordBatch(RecordBatch&&) noexcept = default;
  RecordBatch& operator=(RecordBatch&&) noexcept = default;
  RecordBatch(const RecordBatch&) = delete;
  RecordBatch& operator=(const RecordBatch&) = delete;

  size_t num_columns() const { return num_columns_; }
  size_t num_rows() const { return num_columns_ == 0 ? 0 : nulls_.size() / num_columns_; }
  // Bytes of cell data held (the payload, not the bookkeeping).
  size_t byte_size() const { return data_.size(); }

  std::string_view cell(size_t row, size_t col) const {
    size_t i = row * num_columns_ + col;
    return std::string_view(data_).substr(offsets_[i], offsets_[i + 1] - offsets_[i]);
  }
  bool is_null(size_t row, size_t col) const { return nulls_[row * num_columns_ + col] != 0; }

  // Building: append num_columns() cells per row, in column order.
  void append(std::string_view value) {
    data_.append(value);
    offsets_.push_back(data_.size());
    nulls_.push_back(0);
  }
  void append_null() {
    offsets_.push_back(data_.size());
    nulls_.push_back(1);
  }
  // Drops the cells of an unfinished row (used when a row fails to parse).
  void truncate_to_rows(size_t rows) {
    size_t cells = rows * num_columns_;
    data_.resize(offsets_[cells]);
    offsets_.resize(cells + 1);
    nulls_.resize(cells);
  }
  void reserve(size_t rows, size_t bytes) {
    offsets_.reserve(rows * num_columns_ + 1);
    nulls_.reserve(rows * num_columns_);
    data_.reserve(bytes);
  }

 private:
  size_t num_columns_;
  std::string data_;
  std::vector<uint64_t> offsets_;
  std::vector<uint8_t> nulls_;
};

}  // namespace dpone
