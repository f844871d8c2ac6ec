#include "core/codecs/input_file.hpp"

#include <cerrno>
#include <cstring>

#include "core/errors.hpp"

namespace dpone {

InputFile::InputFile(const std::filesystem::path& path, size_t buffer_size)
    : path_(path), buffer_(buffer_size < 16 ? 16 : buffer_size) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw Error(ErrorCode::SourceReadFailed, path.string() + ": is a directory, not a file",
                "point the path at a file, or use a glob such as dir/*.csv");
  file_.reset(std::fopen(path.c_str(), "rb"));
  if (!file_)
    throw Error(ErrorCode::SourceReadFailed,
                path.string() + ": cannot open for reading: " + std::strerror(errno),
                "check that the file exists and is readable");
}

bool InputFile::fill(int64_t line) {
  if (eof_) return false;
  if (head_ > 0) {
    std::memmove(buffer_.data(), buffer_.data() + head_, tail_ - head_);
    tail_ -= head_;
    head_ = 0;
  }
  if (tail_ == buffer_.size()) {
    if (buffer_.size() >= kMaxRecordBytes)
      throw Error(ErrorCode::InputMalformed,
                  input_position(path_, line) + "a single record is larger than " +
                      std::to_string(kMaxRecordBytes >> 20) + " MiB",
                  "look for an unterminated quote or a missing line break near that line");
    buffer_.resize(buffer_.size() * 2);
  }
  size_t n = std::fread(buffer_.data() + tail_, 1, buffer_.size() - tail_, file_.get());
  if (n == 0) {
    if (std::ferror(file_.get()))
      throw Error(ErrorCode::SourceReadFailed,
                  path_.string() + ": read failed: " + std::strerror(errno));
    eof_ = true;
    return false;
  }
  tail_ += n;
  bytes_read_ += static_cast<int64_t>(n);
  return true;
}

std::string input_position(const std::filesystem::path& path, int64_t line) {
  return path.string() + ":" + std::to_string(line) + ": ";
}

}  // namespace dpone
