// JSON Lines: one JSON object per line, streaming in both directions.
//
// Reading: blank lines are skipped, a UTF-8 BOM at the start is skipped, CRLF is accepted.
//   Memory is one buffer (InputFile) plus the current object. JSON numbers are parsed by
//   nlohmann::json: integers are exact up to 64 bits, numbers with a fraction or exponent
//   are IEEE doubles (about 17 significant digits); quote longer decimals as strings.
// Writing (typed): int/float/decimal columns as JSON numbers (NaN and +-Infinity, which
//   JSON cannot express, as the strings "NaN", "Infinity", "-Infinity"), bool as
//   true/false, json columns embedded as JSON, bytes as base64 strings, everything else as
//   strings, NULL as null. The writer does not check the stream; its owner does.
// Thread safety: none; one reader or writer per thread.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/codecs/input_file.hpp"
#include "core/codecs/values.hpp"
#include "core/record_batch.hpp"
#include "core/types.hpp"

namespace dpone {

class JsonlReader {
 public:
  // Throws Error(SourceReadFailed) if the file cannot be read.
  explicit JsonlReader(const std::filesystem::path& path,
                       size_t buffer_size = InputFile::kDefaultBufferSize);
  // Reads the next object; false at the end of the file. Throws
  // Error(InputMalformed, "<file>:<line>: ...") on invalid JSON or a line that is not an object.
  bool next(nlohmann::json& object);
  // 1-based line of the last object read.
  int64_t line() const { return line_; }
  // nlohmann::json objects iterate their keys sorted; schema discovery wants the order of
  // the file. When tracking is on (it costs a callback per JSON element), key_order()
  // lists the last object's top-level keys as they appear on its line.
  void track_key_order(bool on) { track_keys_ = on; }
  const std::vector<std::string>& key_order() const { return keys_; }
  const std::filesystem::path& path() const { return input_.path(); }
  int64_t bytes_read() const { return input_.bytes_read(); }

 private:
  InputFile input_;
  int64_t line_ = 0;
  bool started_ = false;
  bool track_keys_ = false;
  std::vector<std::string> keys_;
};

// Converts one JSON value to a cell of `type`: null -> is_null; an object or array -> its
// compact JSON text (accepted by json and string columns only); a json column takes any
// value as JSON text; numbers, bools and strings go through canonicalize().
std::optional<ValueError> json_to_cell(const LogicalType& type, const nlohmann::json& value,
                                       std::string& out, bool& is_null);

class JsonlWriter {
 public:
  JsonlWriter(std::ostream& out, const Schema& schema);
  void write(const RecordBatch& batch);

 private:
  enum class Kind { Number, Bool, Json, Bytes, Text };
  void append_value(Kind kind, std::string_view cell);
  void flush();

  std::ostream& out_;
  std::vector<std::string> keys_;  // `"name":` ready to copy
  std::vector<Kind> kinds_;
  std::string buffer_;
};

// Appends `text` as a JSON string literal (quotes included); bytes >= 0x80 pass through.
void append_json_string(std::string& out, std::string_view text);

}  // namespace dpone
