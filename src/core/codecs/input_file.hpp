// A file read through one reusable buffer, shared by the CSV and JSONL readers.
//
// Ownership: owns the FILE handle (closed by the destructor) and the buffer.
// Memory: the buffer starts at `buffer_size` and only grows when a single record (the
// bytes between head() and the end of the buffer) fills all of it; it never grows with
// the file. A record larger than kMaxRecordBytes is refused rather than buffered.
// Thread safety: none; one reader per thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace dpone {

class InputFile {
 public:
  static constexpr size_t kDefaultBufferSize = size_t{1} << 20;
  static constexpr size_t kMaxRecordBytes = size_t{1} << 30;

  // Throws Error(SourceReadFailed) when the file cannot be opened.
  InputFile(const std::filesystem::path& path, size_t buffer_size);

  // Unconsumed bytes are [data() + head(), data() + tail()).
  char* data() { return buffer_.data(); }
  size_t head() const { return head_; }
  size_t tail() const { return tail_; }
  void consume_to(size_t head) { head_ = head; }
  bool eof() const { return eof_; }

  // Moves the unconsumed bytes to the front (head() becomes 0), grows the buffer when they
  // fill it, and reads more. Offsets relative to head() stay valid; pointers into the
  // buffer do not. Returns false when nothing more could be read (end of file). Throws
  // Error(SourceReadFailed) on a read error and Error(InputMalformed) when one record
  // exceeds kMaxRecordBytes (`line` names where it began).
  bool fill(int64_t line);

  // Total bytes read from the file so far.
  int64_t bytes_read() const { return bytes_read_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  struct Closer {
    void operator()(std::FILE* f) const { std::fclose(f); }
  };
  std::filesystem::path path_;
  std::unique_ptr<std::FILE, Closer> file_;
  std::vector<char> buffer_;
  size_t head_ = 0;
  size_t tail_ = 0;
  bool eof_ = false;
  int64_t bytes_read_ = 0;
};

// "<path>:<line>: " + what, the prefix every input error message starts with.
std::string input_position(const std::filesystem::path& path, int64_t line);

}  // namespace dpone
