#include "connectors/files/files_source.hpp"

#include <simdjson.h>

#include <algorithm>
#include <cstring>
#include <unordered_map>
#include <unordered_set>

#include "core/codecs/csv.hpp"
#include "core/codecs/inference.hpp"
#include "core/codecs/jsonl.hpp"
#include "core/codecs/values.hpp"
#include "core/errors.hpp"

namespace dpone {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using files::FileEntry;
using files::Format;
using Settings = FilesSource::Settings;

constexpr const char* kValueHint =
    "declare the column's type under source.columns, or fix the input";
constexpr int64_t kDefaultInferRows = 10000;

Settings make_settings(const SourceContext& context) {
  const std::string where = "stream '" + context.stream + "': source";
  files::Options o(context.options, where);
  Settings s{where, fs::absolute(context.base_dir).lexically_normal(),
             "",    o.format(),
             o,     {},
             {},    kDefaultInferRows,
             false};
  auto path = o.string("path");
  if (!path || path->empty())
    throw Error(ErrorCode::ConfigMissingKey, where + ".path is required",
                "name a file or a glob, relative to the manifest: path: data/orders_*.csv");
  s.path = *path;
  o.csv(s.path);  // validates the csv: map early
  const json columns = o.map("columns");
  for (const auto& [name, spelling] : columns.items()) {
    if (!spelling.is_string())
      throw Error(ErrorCode::ConfigWrongType, where + ".columns." + name + " must be a type name");
    auto type = LogicalType::parse(spelling.get<std::string>());
    if (!type)
      throw Error(
          ErrorCode::ConfigBadValue,
          where + ".columns." + name + ": unknown type '" + spelling.get<std::string>() + "'",
          "use a dpone type: bool, int16, int32, int64, float32, float64, decimal(p,s), "
          "string, varchar(n), bytes, date, time, timestamp, timestamptz, json, uuid");
    s.declared.emplace_back(name, *type);
  }
  s.primary_key = o.string_list("primary_key");
  if (auto n = o.integer("infer_rows")) {
    if (*n < 1)
      throw Error(ErrorCode::ConfigBadValue,
                  where + ".infer_rows must be at least 1, got " + std::to_string(*n));
    s.infer_rows = *n;
  }
  if (auto mode = o.string("incremental")) {
    if (*mode == "new_files")
      s.new_files = true;
    else if (*mode != "full")
      throw Error(ErrorCode::ConfigBadValue,
                  where + ".incremental '" + *mode + "' is not supported",
                  "the files source reads `full` (every file, every run) or `new_files`");
  }
  return s;
}

Format format_of(const Settings& s, const FileEntry& file) {
  if (s.format) return *s.format;
  if (auto f = files::format_from_extension(file.path)) return *f;
  throw Error(ErrorCode::ConfigBadValue,
              s.where + ": cannot tell the format of '" + file.key + "' from its extension",
              "set source.format: csv or jsonl");
}

// ------------------------------------------------------------------- jsonl line reader

// The JSON lines of the window's files as bytes (WireFormat::Jsonl), for a sink that
// takes JSON objects as they are (a Kafka topic: one event per line). Contract of the
// bytes: one JSON object per line, each line ended by '\n', no blank lines (skipped), no
// BOM, no '\r' before the '\n'; the files follow one another in window order. Every line
// is validated (simdjson, full parse, UTF-8 checked) before it is handed out: a line that
// is not exactly one JSON object fails with INPUT_MALFORMED naming file:line, like the
// batch reader. Values are not converted (offered only without declared columns, see
// FilesSource::produces). Memory: the file buffer plus one block of output.
class JsonlLineReader : public ByteReader {
 public:
  JsonlLineReader(Settings settings, std::vector<FileEntry> files)
      : settings_(std::move(settings)), files_(std::move(files)) {}

  size_t read(char* buffer, size_t size) override {
    while (out_head_ == out_.size()) {
      out_.clear();
      out_head_ = 0;
      if (!fill_block()) return 0;
    }
    size_t n = std::min(size, out_.size() - out_head_);
    std::memcpy(buffer, out_.data() + out_head_, n);
    out_head_ += n;
    return n;
  }

 private:
  static constexpr size_t kBlockBytes = size_t{1} << 20;

  // Appends lines to out_ until it holds about one block, then validates the block;
  // false at the end.
  bool fill_block() {
    lines_.clear();
    while (out_.size() < kBlockBytes) {
      if (!input_) {
        if (next_file_ == files_.size()) break;
        open(files_[next_file_++]);
      }
      std::string_view line;
      if (!next_line(line)) {
        input_.reset();
        continue;
      }
      lines_.push_back(Line{out_.size(), line.size(), line_, next_file_ - 1});
      out_.append(line);
      out_ += '\n';
    }
    if (out_.empty()) return false;
    validate_block();
    return true;
  }

  // Every line of the block must be one JSON object. One pass over the whole block
  // (simdjson's parse_many: the structural scan runs once per block, not once per line,
  // which halves the cost for ~100-byte lines), checked document by document against the
  // line starts. On any mismatch the lines are parsed one by one, so the error names the
  // first bad line exactly as before.
  void validate_block() {
    out_.reserve(out_.size() + simdjson::SIMDJSON_PADDING);  // parse_many reads past the end
    simdjson::dom::document_stream docs;
    bool ok = !block_parser_.parse_many(out_.data(), out_.size(), std::max(out_.size(), kBlockBytes))
                   .get(docs);
    size_t k = 0;
    for (auto it = docs.begin(); ok && it != docs.end(); ++it, ++k) {
      simdjson::dom::element doc;
      ok = k < lines_.size() && it.current_index() == lines_[k].at && !(*it).get(doc) &&
           doc.is_object();
    }
    if (ok && k == lines_.size() && docs.truncated_bytes() == 0) return;
    for (const Line& l : lines_)
      validate(std::string_view(out_.data() + l.at, l.size), files_[l.file].path, l.line);
  }

  void open(const FileEntry& planned) {
    FileEntry now = files::stat_file(settings_.base_dir, planned.path);
    if (!now.same_version(planned.size, planned.mtime_ns))
      throw Error(ErrorCode::SourceReadFailed,
                  planned.path.string() + " changed since the run was planned (size " +
                      std::to_string(planned.size) + " -> " + std::to_string(now.size) + ")",
                  "re-run once the file is complete; nothing was loaded from it");
    input_ = std::make_unique<InputFile>(planned.path, InputFile::kDefaultBufferSize);
    line_ = 0;
    input_->fill(1);
    if (input_->tail() >= 3 && std::memcmp(input_->data(), "\xEF\xBB\xBF", 3) == 0)
      input_->consume_to(3);
  }

  // The next non-blank line without its line break and trailing '\r'; false at the end
  // of the file. The view is valid until the next call.
  bool next_line(std::string_view& line) {
    size_t scanned = 0;
    for (;;) {
      const size_t avail = input_->tail() - input_->head();
      const char* d = input_->data() + input_->head();
      const void* nl = scanned < avail ? std::memchr(d + scanned, '\n', avail - scanned) : nullptr;
      size_t len = 0;
      if (nl == nullptr) {
        scanned = avail;
        if (input_->fill(line_ + 1)) continue;
        if (avail == 0) return false;
        len = avail;  // last line without a line break
      } else {
        len = static_cast<size_t>(static_cast<const char*>(nl) - d);
      }
      ++line_;
      input_->consume_to(input_->head() + (nl == nullptr ? len : len + 1));
      scanned = 0;
      size_t b = 0, e = len;
      while (b < e && (d[b] == ' ' || d[b] == '\t' || d[b] == '\r')) ++b;
      while (e > b && (d[e - 1] == ' ' || d[e - 1] == '\t' || d[e - 1] == '\r')) --e;
      if (b == e) continue;
      line = std::string_view(d + b, e - b);
      return true;
    }
  }

  void validate(std::string_view line, const fs::path& path, int64_t line_no) {
    simdjson::dom::element doc;
    auto error = parser_.parse(line.data(), line.size()).get(doc);
    if (error)
      throw Error(ErrorCode::InputMalformed,
                  input_position(path, line_no) + "invalid JSON: " +
                      simdjson::error_message(error),
                  "each line must hold one complete JSON object");
    if (!doc.is_object())
      throw Error(ErrorCode::InputMalformed,
                  input_position(path, line_no) + "the line holds " + kind_name(doc) +
                      ", expected a JSON object",
                  "each line must hold one complete JSON object");
  }

  static const char* kind_name(const simdjson::dom::element& v) {
    switch (v.type()) {
      case simdjson::dom::element_type::ARRAY:
        return "an array";
      case simdjson::dom::element_type::STRING:
        return "a string";
      case simdjson::dom::element_type::BOOL:
        return "a boolean";
      case simdjson::dom::element_type::NULL_VALUE:
        return "null";
      default:
        return "a number";
    }
  }

  Settings settings_;
  std::vector<FileEntry> files_;
  size_t next_file_ = 0;
  std::unique_ptr<InputFile> input_;
  int64_t line_ = 0;
  simdjson::dom::parser parser_, block_parser_;
  struct Line {
    size_t at, size;  // in out_
    int64_t line;     // in its file
    size_t file;      // in files_
  };
  std::vector<Line> lines_;  // of the block in out_
  std::string out_;
  size_t out_head_ = 0;
};

json entry_json(const FileEntry& e) {
  return {{"size", e.size}, {"mtime_ns", e.mtime_ns}};
}

// The {"<key>": {"size", "mtime_ns"}} map of a stored position (null: nothing loaded yet).
json stored_files(const json& position, const std::string& where) {
  if (position.is_null()) return json::object();
  const json* files = nullptr;
  if (position.is_object() && position.contains("files")) files = &position["files"];
  bool ok = files != nullptr && files->is_object();
  if (ok) {
    for (const auto& [key, v] : files->items()) {
      ok = ok && v.is_object() && v.contains("size") && v["size"].is_number_integer() &&
           v.contains("mtime_ns") && v["mtime_ns"].is_number_integer();
    }
  }
  if (!ok)
    throw Error(ErrorCode::ConfigBadValue,
                where + ": the stored position is not a files position: " + position.dump(),
                "expected {\"files\": {\"<path>\": {\"size\": N, \"mtime_ns\": M}}}; reset the "
                "stream's state (dpone state reset) to read every file again");
  return *files;
}

std::string list_names(const std::vector<const FileEntry*>& files) {
  constexpr size_t kShown = 5;
  std::string out;
  for (size_t i = 0; i < files.size() && i < kShown; ++i) {
    if (i > 0) out += ", ";
    out += files[i]->key;
  }
  if (files.size() > kShown) out += " and " + std::to_string(files.size() - kShown) + " more";
  return out;
}

std::string plural(size_t n, const char* word) {
  return std::to_string(n) + " " + word + (n == 1 ? "" : "s");
}

// The column names of a CSV file's header; rejects empty and repeated names.
std::vector<std::string> header_columns(const CsvReader& reader) {
  std::unordered_set<std::string> seen;
  for (size_t i = 0; i < reader.header().size(); ++i) {
    const std::string& name = reader.header()[i];
    if (name.empty())
      throw Error(ErrorCode::InputMalformed,
                  input_position(reader.path(), reader.record_line()) + "header field " +
                      std::to_string(i + 1) + " is empty: every column needs a name",
                  "name the column in the file, or set source.csv.header: false");
    if (!seen.insert(name).second)
      throw Error(ErrorCode::InputMalformed,
                  input_position(reader.path(), reader.record_line()) +
                      "the header names column '" + name + "' twice",
                  "rename one of the columns in the file");
  }
  return reader.header();
}

std::string positional_name(size_t i) {
  return "column_" + std::to_string(i + 1);
}

[[noreturn]] void field_count_error(const CsvReader& r, size_t got, size_t expected, bool header) {
  throw Error(ErrorCode::InputMalformed,
              input_position(r.path(), r.record_line()) + "record has " + plural(got, "field") +
                  (header ? ", the header has " + std::to_string(expected)
                          : ", more than the " + std::to_string(expected) +
                                " columns found while inferring the schema"),
              header ? "every record must have as many fields as the header; look for an unquoted "
                       "delimiter in that record"
                     : "declare the columns under source.columns or raise source.infer_rows");
}

// ------------------------------------------------------------------------ batch reader

class FilesBatchReader : public BatchReader {
 public:
  FilesBatchReader(Settings settings, Schema schema, std::vector<FileEntry> files,
                   size_t batch_rows)
      : settings_(std::move(settings)),
        schema_(std::move(schema)),
        files_(std::move(files)),
        batch_rows_(batch_rows == 0 ? 8192 : batch_rows),
        slots_(schema_.columns.size()) {
    for (size_t i = 0; i < schema_.columns.size(); ++i) column_index_[schema_.columns[i].name] = i;
  }

  const Schema& schema() const override { return schema_; }

  std::optional<RecordBatch> next() override {
    RecordBatch batch(schema_.columns.size());
    batch.reserve(batch_rows_, last_batch_bytes_);  // batches of a stream are alike in size
    size_t rows = 0;
    while (rows < batch_rows_) {
      if (!csv_ && !jsonl_) {
        if (next_file_ == files_.size()) break;
        open(files_[next_file_++]);
        continue;
      }
      bool got = csv_ ? read_csv_row(batch) : read_jsonl_row(batch);
      if (!got) {
        csv_.reset();
        jsonl_.reset();
        continue;
      }
      ++rows;
    }
    if (rows == 0) return std::nullopt;
    last_batch_bytes_ = batch.byte_size();
    return batch;
  }

 private:
  void open(const FileEntry& planned) {
    // The window fixed each file's size and mtime: a file written to since is not read
    // half-way; the run fails and a re-run plans it afresh.
    FileEntry now = files::stat_file(settings_.base_dir, planned.path);
    if (!now.same_version(planned.size, planned.mtime_ns))
      throw Error(ErrorCode::SourceReadFailed,
                  planned.path.string() + " changed since the run was planned (size " +
                      std::to_string(planned.size) + " -> " + std::to_string(now.size) + ")",
                  "re-run once the file is complete; nothing was loaded");
    if (format_of(settings_, planned) == Format::Csv) {
      CsvOptions o = settings_.options.csv(planned.path);
      csv_ = std::make_unique<CsvReader>(planned.path, o);
      csv_header_ = o.header;
      field_of_.assign(schema_.columns.size(), -1);
      if (o.header) {
        std::vector<std::string> names = header_columns(*csv_);
        csv_width_ = names.size();
        for (size_t f = 0; f < names.size(); ++f) {
          auto it = column_index_.find(names[f]);
          if (it == column_index_.end())
            throw Error(
                ErrorCode::InputMalformed,
                input_position(planned.path, csv_->record_line()) + "column '" + names[f] +
                    "' is not in the stream's schema",
                "the schema was discovered from other files; re-run so it is discovered again");
          field_of_[it->second] = static_cast<int>(f);
        }
      } else {
        csv_width_ = schema_.columns.size();
        for (size_t c = 0; c < schema_.columns.size(); ++c) {
          const std::string& name = schema_.columns[c].name;
          if (name.rfind("column_", 0) == 0) field_of_[c] = std::stoi(name.substr(7)) - 1;
        }
      }
    } else {
      jsonl_ = std::make_unique<JsonlReader>(planned.path);
    }
  }

  [[noreturn]] void bad_value(const fs::path& path, int64_t line, size_t col, const ValueError& e) {
    throw Error(
        e.code,
        input_position(path, line) + "column '" + schema_.columns[col].name + "': " + e.reason,
        kValueHint);
  }

  bool read_csv_row(RecordBatch& batch) {
    if (!csv_->next(fields_, nulls_)) return false;
    if (fields_.size() > csv_width_ || (csv_header_ && fields_.size() < csv_width_))
      field_count_error(*csv_, fields_.size(), csv_width_, csv_header_);
    for (size_t c = 0; c < schema_.columns.size(); ++c) {
      int f = field_of_[c];
      if (f < 0 || static_cast<size_t>(f) >= fields_.size() || nulls_[static_cast<size_t>(f)]) {
        batch.append_null();
        continue;
      }
      if (auto err =
              canonicalize(schema_.columns[c].type, fields_[static_cast<size_t>(f)], scratch_))
        bad_value(csv_->path(), csv_->record_line(), c, *err);
      batch.append(scratch_);
    }
    return true;
  }

  bool read_jsonl_row(RecordBatch& batch) {
    if (!jsonl_->next(object_)) return false;
    std::fill(slots_.begin(), slots_.end(), nullptr);
    for (auto it = object_.begin(); it != object_.end(); ++it) {
      auto col = column_index_.find(it.key());
      if (col == column_index_.end())
        throw Error(ErrorCode::InputMalformed,
                    input_position(jsonl_->path(), jsonl_->line()) + "key '" + it.key() +
                        "' is not a column of the stream's schema (inference reads the first " +
                        std::to_string(settings_.infer_rows) + " rows)",
                    "declare it under source.columns, or raise source.infer_rows");
      slots_[col->second] = &it.value();
    }
    for (size_t c = 0; c < schema_.columns.size(); ++c) {
      bool is_null = true;
      if (slots_[c] != nullptr) {
        if (auto err = json_to_cell(schema_.columns[c].type, *slots_[c], scratch_, is_null))
          bad_value(jsonl_->path(), jsonl_->line(), c, *err);
      }
      if (is_null)
        batch.append_null();
      else
        batch.append(scratch_);
    }
    return true;
  }

  Settings settings_;
  Schema schema_;
  std::vector<FileEntry> files_;
  size_t next_file_ = 0;
  size_t batch_rows_;
  size_t last_batch_bytes_ = 0;
  std::unique_ptr<CsvReader> csv_;
  std::unique_ptr<JsonlReader> jsonl_;
  bool csv_header_ = true;
  size_t csv_width_ = 0;
  std::vector<int> field_of_;  // schema column -> CSV field, or -1 (missing: NULL)
  std::unordered_map<std::string, size_t> column_index_;
  std::vector<const json*> slots_;  // schema column -> value in the current JSON object
  std::vector<std::string_view> fields_;
  std::vector<bool> nulls_;
  std::string scratch_;
  json object_;
};

}  // namespace

// ------------------------------------------------------------------------------ source

FilesSource::FilesSource(const SourceContext& context)
    : context_(context), settings_(make_settings(context)) {}

std::vector<files::FileEntry> FilesSource::match_or_fail() const {
  auto files = files::glob_files(settings_.base_dir, settings_.path);
  if (files.empty())
    throw Error(ErrorCode::SourceReadFailed,
                settings_.where + ": no file matches '" + settings_.path + "'",
                "paths are relative to the manifest's directory (" + settings_.base_dir.string() +
                    "); globs: * and ? within a directory, ** across directories");
  return files;
}

Window FilesSource::plan_window(const json& position) {
  Window w;
  w.low = position;
  if (!settings_.new_files) {
    auto files = match_or_fail();
    json map = json::object();
    for (const auto& f : files) map[f.key] = entry_json(f);
    w.high = {{"files", map}};
    w.description =
        files.size() == 1 ? "1 file: " + files[0].key : "all " + plural(files.size(), "file");
    planned_ = std::move(files);
    return w;
  }
  json stored = stored_files(position, settings_.where);
  auto files = files::glob_files(settings_.base_dir, settings_.path);
  if (files.empty() && stored.empty()) match_or_fail();  // throws: nothing matches, ever
  std::vector<FileEntry> window;
  std::vector<const FileEntry*> added, changed;
  json high = stored;
  for (const auto& f : files) {
    auto it = stored.find(f.key);
    if (it != stored.end() &&
        f.same_version((*it)["size"].get<int64_t>(), (*it)["mtime_ns"].get<int64_t>()))
      continue;
    window.push_back(f);
    high[f.key] = entry_json(f);
  }
  for (const auto& f : window) {
    if (stored.contains(f.key)) {
      changed.push_back(&f);
      if (context_.diagnostics)
        context_.diagnostics->warn(
            settings_.where + ": " + f.key + " changed since it was loaded (size " +
            std::to_string(stored[f.key]["size"].get<int64_t>()) + " -> " + std::to_string(f.size) +
            "); it is read again in full, so rows loaded from it before "
            "are loaded again");
    } else {
      added.push_back(&f);
    }
  }
  w.high = {{"files", high}};
  w.empty = window.empty();
  if (window.empty()) {
    w.description = "no new files (" + plural(stored.size(), "file") + " loaded before)";
  } else {
    std::vector<std::string> parts;
    if (!added.empty())
      parts.push_back(plural(added.size(), "new file") + ": " + list_names(added));
    if (!changed.empty())
      parts.push_back(plural(changed.size(), "changed file") +
                      " read again: " + list_names(changed));
    w.description = parts[0] + (parts.size() > 1 ? "; " + parts[1] : "");
  }
  planned_ = std::move(window);
  return w;
}

std::vector<files::FileEntry> FilesSource::files_of(const Window& window) const {
  json high = stored_files(window.high, settings_.where);
  json low = settings_.new_files ? stored_files(window.low, settings_.where) : json::object();
  std::vector<FileEntry> out;
  for (const auto& [key, v] : high.items()) {
    if (low.contains(key) && low[key] == v) continue;
    FileEntry e;
    e.key = key;
    e.path = fs::path(key).is_absolute() ? fs::path(key) : settings_.base_dir / key;
    e.size = v["size"].get<int64_t>();
    e.mtime_ns = v["mtime_ns"].get<int64_t>();
    out.push_back(std::move(e));
  }
  return out;
}

Schema FilesSource::discover() {
  // An empty window (no new files) still needs a schema for plans: infer over every file.
  std::vector<FileEntry> files = planned_ && !planned_->empty() ? *planned_ : match_or_fail();
  TypeInferrer inferrer({});
  auto column = [&](const std::string& name) -> size_t {
    int i = inferrer.find(name);
    if (i >= 0) return static_cast<size_t>(i);
    inferrer.add_column(name);
    return inferrer.num_columns() - 1;
  };
  int64_t budget = settings_.infer_rows;  // rows in total, across files
  std::vector<std::string_view> fields;
  std::vector<bool> nulls;
  json object;
  std::vector<const FileEntry*> read;
  for (const FileEntry& file : files) {
    if (format_of(settings_, file) == Format::Csv) {
      // Headers are read from every file, past the row budget too: the schema is their union.
      CsvOptions o = settings_.options.csv(file.path);
      CsvReader reader(file.path, o);
      read.push_back(&file);
      std::vector<size_t> col_of;
      if (o.header)
        for (const auto& name : header_columns(reader)) col_of.push_back(column(name));
      while (budget > 0 && reader.next(fields, nulls)) {
        --budget;
        if (o.header && fields.size() != col_of.size())
          field_count_error(reader, fields.size(), col_of.size(), true);
        while (col_of.size() < fields.size())
          col_of.push_back(column(positional_name(col_of.size())));
        for (size_t f = 0; f < fields.size(); ++f) inferrer.observe(col_of[f], fields[f], nulls[f]);
      }
    } else {
      if (budget <= 0) continue;  // a JSONL file's keys only come with its records
      JsonlReader reader(file.path);
      reader.track_key_order(true);  // columns in the order the file shows them
      read.push_back(&file);
      while (budget > 0 && reader.next(object)) {
        --budget;
        for (const std::string& key : reader.key_order())
          inferrer.observe_json(column(key), object[key]);
      }
    }
  }
  Schema schema = inferrer.result();
  if (schema.columns.empty())
    throw Error(
        ErrorCode::InputMalformed,
        settings_.where + ": found no columns in " + list_names(read) + ": the files are empty",
        "a CSV file needs a header line (or source.csv.header: false and data); a JSONL file "
        "needs at least one object");
  for (const auto& [name, type] : settings_.declared) {
    int i = schema.find(name);
    if (i < 0)
      throw Error(ErrorCode::ConfigBadValue,
                  settings_.where + ".columns declares '" + name +
                      "', which is not in the files (" + list_names(read) + ")",
                  "check the spelling against the header; for JSONL, only the first " +
                      std::to_string(settings_.infer_rows) + " rows (source.infer_rows) are read");
    schema.columns[static_cast<size_t>(i)].type = type;
  }
  for (const auto& key : settings_.primary_key) {
    int i = schema.find(key);
    if (i < 0)
      throw Error(
          ErrorCode::ConfigBadValue,
          settings_.where + ".primary_key names '" + key + "', which is not a column",
          "the columns are: " + [&] {
            std::string names;
            for (const auto& c : schema.columns) names += (names.empty() ? "" : ", ") + c.name;
            return names;
          }());
    schema.columns[static_cast<size_t>(i)].nullable = false;
  }
  schema.primary_key = settings_.primary_key;
  schema_ = schema;
  return schema;
}

// JSON lines pass through as bytes only when no value needs converting: no declared
// `columns` (whose types convert and check every value) and no `primary_key` (whose
// NOT NULL the batch reader's consumers check), and every file of the planned window is
// JSONL. Record batches come first: a sink that takes both says which it prefers.
std::vector<ArtifactSpec> FilesSource::produces() const {
  std::vector<ArtifactSpec> out{{ArtifactKind::StreamingRows, WireFormat::RecordBatch}};
  if (!settings_.declared.empty() || !settings_.primary_key.empty()) return out;
  bool jsonl = settings_.format == Format::Jsonl;
  if (!settings_.format && planned_ && !planned_->empty()) {
    jsonl = std::all_of(planned_->begin(), planned_->end(), [](const FileEntry& f) {
      return files::format_from_extension(f.path) == Format::Jsonl;
    });
  }
  if (jsonl) out.push_back({ArtifactKind::StreamingRows, WireFormat::Jsonl});
  return out;
}

Artifact FilesSource::extract(const Window& window, const ArtifactSpec& spec,
                              const ExtractOptions& options) {
  const auto offered = produces();
  if (std::find(offered.begin(), offered.end(), spec) == offered.end())
    throw Error(ErrorCode::Internal, settings_.where + ": cannot produce " + spec.to_string());
  if (!schema_) discover();
  if (spec.format == WireFormat::Jsonl) {
    StreamingRows lines;
    lines.format = WireFormat::Jsonl;
    lines.bytes = std::make_unique<JsonlLineReader>(settings_, files_of(window));
    return lines;
  }
  StreamingRows rows;
  rows.format = WireFormat::RecordBatch;
  rows.batches =
      std::make_unique<FilesBatchReader>(settings_, *schema_, files_of(window), options.batch_rows);
  return rows;
}

json FilesSource::next_position(const Window& window) {
  return window.high;
}

}  // namespace dpone
