// CSV per RFC 4180, streaming in both directions.
//
// Reading:
//   - One fixed-size buffer per reader: memory does not grow with the file; a single record
//     larger than the buffer grows it (up to InputFile::kMaxRecordBytes).
//   - A UTF-8 byte order mark at the start is skipped; records end with CRLF, LF or a lone
//     CR; empty lines are skipped (except in one-column files, where an empty line is a
//     NULL); fields may be quoted, and quoted fields may hold the
//     delimiter, newlines and doubled quotes ("" -> ").
//   - NULL vs empty: an unquoted field equal to null_value (default "") is NULL; a quoted
//     field is never NULL, so "" is the empty string.
//   - Malformed input (unterminated quote at end of file, a quote inside an unquoted field,
//     characters after a closing quote) throws Error(InputMalformed, "<file>:<line>: ...").
// Writing: NULL -> null_value unquoted (empty by default); the empty string -> ""; a field
//   is quoted when it holds the delimiter, the quote, CR or LF, or equals null_value.
//   Records end with LF. The writer does not check the stream; its owner does.
// Thread safety: none; one reader or writer per thread.
#pragma once

#include <cstdint>
#include <filesystem>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "core/codecs/input_file.hpp"
#include "core/record_batch.hpp"
#include "core/types.hpp"

namespace dpone {

struct CsvOptions {
  char delimiter = ',';
  char quote = '"';
  bool header = true;
  std::string null_value;
};

// Throws Error(ConfigBadValue) for options that cannot describe a CSV dialect (a delimiter
// that is a line break or equals the quote).
void validate(const CsvOptions& options);

class CsvReader {
 public:
  // Opens the file and, when options.header is set, reads the header record (see header()).
  // Throws Error(SourceReadFailed) if the file cannot be read.
  CsvReader(const std::filesystem::path& path, CsvOptions options,
            size_t buffer_size = InputFile::kDefaultBufferSize);

  // The header record's fields; empty when options.header is false or the file is empty.
  const std::vector<std::string>& header() const { return header_; }

  // Reads the next data record. The string_views point into the reader's buffer and stay
  // valid until the next call. Returns false at the end of the file.
  bool next(std::vector<std::string_view>& fields, std::vector<bool>& is_null);

  // 1-based physical line where the last record (or the header) began.
  int64_t record_line() const { return record_line_; }
  const std::filesystem::path& path() const { return input_.path(); }
  int64_t bytes_read() const { return input_.bytes_read(); }

 private:
  struct Span {
    size_t begin;  // relative to the record's first byte
    size_t end;
    bool quoted;
  };
  [[noreturn]] void malformed(int64_t line, const std::string& what) const;
  bool skip_blank_lines();

  CsvOptions options_;
  InputFile input_;
  std::vector<std::string> header_;
  std::vector<Span> spans_;
  int64_t line_ = 1;  // physical line of the next unread byte
  int64_t record_line_ = 0;
  // In a one-column file an empty line is a record holding one NULL (that is how a NULL
  // is written there); in wider files it is noise and skipped.
  bool blank_lines_are_records_ = false;
  bool first_record_seen_ = false;
};

// Appends one field as CsvWriter writes it: quoted when it is empty, equals null_value,
// or holds the delimiter, the quote, CR or LF; quotes doubled. (NULL is the caller's:
// null_value unquoted.)
void append_csv_field(std::string& out, std::string_view value, const CsvOptions& options);

class CsvWriter {
 public:
  CsvWriter(std::ostream& out, CsvOptions options);
  void write_header(const Schema& schema);
  void write(const RecordBatch& batch);

 private:
  void append_field(std::string_view value);
  void flush_line_buffer();

  std::ostream& out_;
  CsvOptions options_;
  std::string buffer_;
};

}  // namespace dpone
