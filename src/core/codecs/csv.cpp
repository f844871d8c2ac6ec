#include "core/codecs/csv.hpp"

#include <cstring>

#include "core/errors.hpp"

namespace dpone {

namespace {

std::string describe_char(char c) {
  if (c == '\t') return "'\\t'";
  if (static_cast<unsigned char>(c) < 0x20) return "code " + std::to_string(static_cast<int>(c));
  return std::string("'") + c + "'";
}

}  // namespace

void validate(const CsvOptions& o) {
  auto line_break = [](char c) { return c == '\n' || c == '\r'; };
  if (line_break(o.delimiter) || o.delimiter == '\0')
    throw Error(ErrorCode::ConfigBadValue,
                "csv.delimiter " + describe_char(o.delimiter) + " cannot separate fields",
                "use a single character such as ',', ';', '|' or a tab");
  if (line_break(o.quote) || o.quote == '\0')
    throw Error(ErrorCode::ConfigBadValue,
                "csv.quote " + describe_char(o.quote) + " cannot quote fields",
                "use a single character such as '\"' or '\\''");
  if (o.delimiter == o.quote)
    throw Error(ErrorCode::ConfigBadValue,
                "csv.delimiter and csv.quote are both " + describe_char(o.quote),
                "choose different characters");
}

// ------------------------------------------------------------------------------ reader

CsvReader::CsvReader(const std::filesystem::path& path, CsvOptions options, size_t buffer_size)
    : options_(std::move(options)), input_(path, buffer_size) {
  validate(options_);
  input_.fill(1);
  static constexpr char kBom[] = "\xEF\xBB\xBF";
  if (input_.tail() >= 3 && std::memcmp(input_.data(), kBom, 3) == 0) input_.consume_to(3);
  if (options_.header) {
    std::vector<std::string_view> fields;
    std::vector<bool> nulls;
    if (next(fields, nulls)) header_.assign(fields.begin(), fields.end());
    blank_lines_are_records_ = header_.size() == 1;
  }
}

void CsvReader::malformed(int64_t line, const std::string& what) const {
  throw Error(ErrorCode::InputMalformed, input_position(input_.path(), line) + what,
              "fix the file, or set source.csv (delimiter, quote) to match its dialect");
}

// Skips empty lines before a record (unless they are records: see blank_lines_are_records_).
// Returns false at the end of the file.
bool CsvReader::skip_blank_lines() {
  for (;;) {
    if (input_.head() == input_.tail()) {
      if (!input_.fill(line_)) return false;
      continue;
    }
    if (blank_lines_are_records_) return true;
    const char c = input_.data()[input_.head()];
    if (c == '\n') {
      input_.consume_to(input_.head() + 1);
      ++line_;
    } else if (c == '\r') {
      if (input_.head() + 1 == input_.tail() && input_.fill(line_)) continue;
      const char* d = input_.data() + input_.head();
      bool crlf = input_.head() + 1 < input_.tail() && d[1] == '\n';
      input_.consume_to(input_.head() + (crlf ? 2 : 1));
      ++line_;
    } else {
      return true;
    }
  }
}

bool CsvReader::next(std::vector<std::string_view>& fields, std::vector<bool>& is_null) {
  fields.clear();
  is_null.clear();
  spans_.clear();
  if (!skip_blank_lines()) return false;
  record_line_ = line_;

  enum class State { FieldStart, Unquoted, Quoted, QuoteSeen };
  State state = State::FieldStart;
  const char delim = options_.delimiter;
  const char quote = options_.quote;
  // Offsets are relative to the record's first byte (input_.head()), so they survive the
  // buffer moving or growing in fill(). Quoted fields are unescaped in place: the write
  // cursor `w` never passes the read cursor `pos`.
  size_t pos = 0;
  size_t start = 0;
  size_t w = 0;
  int64_t quote_line = 0;
  bool at_terminator = false;

  while (!at_terminator) {
    size_t avail = input_.tail() - input_.head();
    if (pos == avail) {
      if (input_.fill(record_line_)) continue;
      switch (state) {           // end of file ends the record
        case State::FieldStart:  // after a delimiter: a last, empty field
          spans_.push_back({pos, pos, false});
          break;
        case State::Unquoted:
          spans_.push_back({start, pos, false});
          break;
        case State::Quoted:
          malformed(quote_line,
                    "unterminated quoted field: the quote opened on this line is "
                    "never closed before the end of the file");
        case State::QuoteSeen:
          spans_.push_back({start, w, true});
          break;
      }
      break;
    }
    char* d = input_.data() + input_.head();
    char c = d[pos];
    switch (state) {
      case State::FieldStart:
        if (c == quote) {
          state = State::Quoted;
          start = w = ++pos;
          quote_line = line_;
        } else if (c == delim) {
          spans_.push_back({pos, pos, false});
          ++pos;
        } else if (c == '\n' || c == '\r') {
          spans_.push_back({pos, pos, false});
          at_terminator = true;
        } else {
          state = State::Unquoted;
          start = pos++;
        }
        break;
      case State::Unquoted:
        while (pos < avail) {
          c = d[pos];
          if (c == delim || c == '\n' || c == '\r' || c == quote) break;
          ++pos;
        }
        if (pos == avail) break;
        if (c == quote)
          malformed(line_, "quote character inside an unquoted field (field " +
                               std::to_string(spans_.size() + 1) +
                               "); quote the whole field and double the quotes inside it");
        spans_.push_back({start, pos, false});
        if (c == delim) {
          ++pos;
          state = State::FieldStart;
        } else {
          at_terminator = true;
        }
        break;
      case State::Quoted:
        while (pos < avail) {
          c = d[pos];
          if (c == quote) break;
          if (c == '\n') ++line_;
          d[w++] = c;
          ++pos;
        }
        if (pos == avail) break;
        ++pos;
        state = State::QuoteSeen;
        break;
      case State::QuoteSeen:
        if (c == quote) {  // "" inside a quoted field
          d[w++] = quote;
          ++pos;
          state = State::Quoted;
        } else if (c == delim) {
          spans_.push_back({start, w, true});
          ++pos;
          state = State::FieldStart;
        } else if (c == '\n' || c == '\r') {
          spans_.push_back({start, w, true});
          at_terminator = true;
        } else {
          malformed(line_, "unexpected " + describe_char(c) + " after the closing quote of field " +
                               std::to_string(spans_.size() + 1) +
                               "; a quoted field must be followed by the delimiter or a line end");
        }
        break;
    }
  }

  if (at_terminator) {  // consume LF, CR or CRLF
    if (input_.data()[input_.head() + pos] == '\r') {
      if (input_.head() + pos + 1 == input_.tail()) input_.fill(record_line_);
      const char* d = input_.data() + input_.head();
      bool crlf = input_.head() + pos + 1 < input_.tail() && d[pos + 1] == '\n';
      pos += crlf ? 2 : 1;
    } else {
      pos += 1;
    }
    ++line_;
  }

  const char* base = input_.data() + input_.head();
  fields.reserve(spans_.size());
  is_null.reserve(spans_.size());
  for (const Span& s : spans_) {
    std::string_view v(base + s.begin, s.end - s.begin);
    fields.push_back(v);
    is_null.push_back(!s.quoted && v == options_.null_value);
  }
  input_.consume_to(input_.head() + pos);
  if (!options_.header && !first_record_seen_) {
    first_record_seen_ = true;
    blank_lines_are_records_ = spans_.size() == 1;
  }
  return true;
}

// ------------------------------------------------------------------------------ writer

namespace {
constexpr size_t kWriterFlushBytes = 1 << 16;
}

CsvWriter::CsvWriter(std::ostream& out, CsvOptions options)
    : out_(out), options_(std::move(options)) {
  validate(options_);
  buffer_.reserve(kWriterFlushBytes + 1024);
}

void append_csv_field(std::string& out, std::string_view v, const CsvOptions& options) {
  const char q = options.quote;
  bool needs_quotes = v.empty() || (!options.null_value.empty() && v == options.null_value);
  if (!needs_quotes) {
    for (char c : v) {
      if (c == options.delimiter || c == q || c == '\n' || c == '\r') {
        needs_quotes = true;
        break;
      }
    }
  }
  if (!needs_quotes) {
    out.append(v);
    return;
  }
  out.push_back(q);
  for (char c : v) {
    if (c == q) out.push_back(q);
    out.push_back(c);
  }
  out.push_back(q);
}

void CsvWriter::append_field(std::string_view v) { append_csv_field(buffer_, v, options_); }

void CsvWriter::flush_line_buffer() {
  out_.write(buffer_.data(), static_cast<std::streamsize>(buffer_.size()));
  buffer_.clear();
}

void CsvWriter::write_header(const Schema& schema) {
  for (size_t i = 0; i < schema.columns.size(); ++i) {
    if (i > 0) buffer_.push_back(options_.delimiter);
    append_field(schema.columns[i].name);
  }
  buffer_.push_back('\n');
  flush_line_buffer();
}

void CsvWriter::write(const RecordBatch& batch) {
  const size_t cols = batch.num_columns();
  for (size_t r = 0; r < batch.num_rows(); ++r) {
    for (size_t c = 0; c < cols; ++c) {
      if (c > 0) buffer_.push_back(options_.delimiter);
      if (batch.is_null(r, c))
        buffer_.append(options_.null_value);
      else
        append_field(batch.cell(r, c));
    }
    buffer_.push_back('\n');
    if (buffer_.size() >= kWriterFlushBytes) flush_line_buffer();
  }
  flush_line_buffer();
}

}  // namespace dpone
