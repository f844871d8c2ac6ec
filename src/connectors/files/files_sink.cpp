#include "connectors/files/files_sink.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <ostream>
#include <streambuf>
#include <unordered_set>

#include "core/codecs/csv.hpp"
#include "core/codecs/jsonl.hpp"
#include "core/errors.hpp"
#include "core/util/failpoint.hpp"

namespace dpone {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using files::Format;

std::string errno_text() {
  return std::strerror(errno);
}

// An owned file descriptor.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  // Closes now and reports failure (close can report a deferred write error).
  bool close() {
    int fd = fd_;
    fd_ = -1;
    return ::close(fd) == 0;
  }

 private:
  int fd_;
};

// A write-only streambuf over a file descriptor that counts bytes and keeps errno of the
// first failed write, so the owner can fsync the same descriptor and report precisely.
class FdOutBuf : public std::streambuf {
 public:
  explicit FdOutBuf(int fd) : fd_(fd), buffer_(1 << 16) {
    setp(buffer_.data(), buffer_.data() + buffer_.size());
  }
  int64_t bytes() const { return written_ + (pptr() - pbase()); }
  int error() const { return error_; }

 protected:
  int sync() override { return drain() ? 0 : -1; }
  int_type overflow(int_type ch) override {
    if (!drain()) return traits_type::eof();
    if (!traits_type::eq_int_type(ch, traits_type::eof())) {
      *pptr() = traits_type::to_char_type(ch);
      pbump(1);
    }
    return traits_type::not_eof(ch);
  }
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    if (n <= epptr() - pptr()) {
      std::memcpy(pptr(), s, static_cast<size_t>(n));
      pbump(static_cast<int>(n));
      return n;
    }
    if (!drain() || !write_all(s, static_cast<size_t>(n))) return 0;
    return n;
  }

 private:
  bool drain() {
    size_t n = static_cast<size_t>(pptr() - pbase());
    bool ok = write_all(pbase(), n);
    setp(buffer_.data(), buffer_.data() + buffer_.size());
    return ok;
  }
  bool write_all(const char* p, size_t n) {
    if (error_ != 0) return false;
    while (n > 0) {
      ssize_t w = ::write(fd_, p, n);
      if (w < 0) {
        if (errno == EINTR) continue;
        error_ = errno;
        return false;
      }
      p += w;
      n -= static_cast<size_t>(w);
      written_ += w;
    }
    return true;
  }

  int fd_;
  std::vector<char> buffer_;
  int64_t written_ = 0;
  int error_ = 0;
};

// Removes a file when the scope unwinds before dismiss(): a stage that failed half-way
// leaves nothing behind (a killed process leaves it to cleanup_abandoned()).
class RemoveOnUnwind {
 public:
  explicit RemoveOnUnwind(fs::path p) : path_(std::move(p)) {}
  ~RemoveOnUnwind() {
    if (armed_) {
      std::error_code ec;
      fs::remove(path_, ec);
    }
  }
  RemoveOnUnwind(const RemoveOnUnwind&) = delete;
  RemoveOnUnwind& operator=(const RemoveOnUnwind&) = delete;
  void dismiss() { armed_ = false; }

 private:
  fs::path path_;
  bool armed_ = true;
};

// Makes a rename in `dir` durable.
void fsync_dir(const fs::path& dir) {
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid() || ::fsync(fd.get()) != 0)
    throw Error(ErrorCode::PromoteFailed,
                "cannot fsync directory " + dir.string() + ": " + errno_text(),
                "the file was renamed but may not survive a power loss; check the file system");
}

// FNV-1a, 64 bits: stable across platforms and releases (std::hash is neither).
uint64_t fnv1a64(std::string_view s) {
  uint64_t h = 14695981039346656037ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

std::string hex16(uint64_t v) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i, v >>= 4) out[static_cast<size_t>(i)] = kHex[v & 15];
  return out;
}

std::string sanitize(const std::string& run_id) {
  std::string out = run_id;
  for (char& c : out)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') c = '_';
  return out;
}

[[noreturn]] void unsupported_strategy(const std::string& where, StrategyMode mode) {
  throw Error(ErrorCode::ConfigBadValue,
              where + ": strategy '" + to_string(mode) + "' is not supported by the files sink",
              "use full_refresh (replace the file) or append (one part file per window in a "
              "directory)");
}

[[noreturn]] void only_new_rows_unsupported(const std::string& where) {
  throw Error(ErrorCode::ConfigBadValue,
              where + ": append.only_new_rows is not supported by the files sink",
              "the files sink cannot look up existing keys; load into a database sink, or drop "
              "only_new_rows");
}

}  // namespace

// -------------------------------------------------------------------------------- sink

FilesSink::FilesSink(const SinkContext& context)
    : stream_(context.stream),
      run_id_(context.run_id),
      where_("stream '" + context.stream + "': sink"),
      base_dir_(fs::absolute(context.base_dir).lexically_normal()),
      diagnostics_(context.diagnostics),
      on_progress_(context.on_progress) {
  files::Options o(context.options, where_);
  auto path = o.string("path");
  if (!path || path->empty())
    throw Error(
        ErrorCode::ConfigMissingKey, where_ + ".path is required",
        "name the target file (full_refresh) or directory (append), relative to the manifest");
  path_option_ = *path;
  target_ =
      (fs::path(*path).is_absolute() ? fs::path(*path) : base_dir_ / *path).lexically_normal();
  if (target_.filename().empty()) target_ = target_.parent_path();  // "out/dir/"
  staging_ = target_;
  staging_ += std::string(files::kStagingMarker) + sanitize(run_id_);
  if (auto f = o.format())
    format_ = *f;
  else
    format_ = files::format_from_extension(target_).value_or(Format::Csv);
  csv_ = o.csv(target_);
  // The shrink guard needs the current row count; counting reads the whole file, so it is
  // only done when the guard will use it.
  const json strategy =
      context.options.is_object() ? context.options.value("strategy", json()) : json();
  if (strategy.is_object()) {
    count_rows_ =
        strategy.value("mode", "") == "full_refresh" && !strategy.value("allow_shrink", false);
  } else if (strategy.is_string()) {  // the `strategy: full_refresh` shorthand
    count_rows_ = strategy.get<std::string>() == "full_refresh";
  }
}

std::string FilesSink::display(const fs::path& p) const {
  return files::file_key(base_dir_, p);
}

fs::path FilesSink::staging_path(const StagedLoad& staged) const {
  if (staged.details.is_object() && staged.details.contains("path") &&
      staged.details["path"].is_string())
    return fs::path(staged.details["path"].get<std::string>());
  return staging_;
}

int64_t FilesSink::count_target_rows() const {
  try {
    int64_t rows = 0;
    if (format_ == Format::Csv) {
      CsvReader reader(target_, csv_);
      std::vector<std::string_view> fields;
      std::vector<bool> nulls;
      while (reader.next(fields, nulls)) ++rows;
    } else {
      JsonlReader reader(target_);
      json object;
      while (reader.next(object)) ++rows;
    }
    return rows;
  } catch (const Error& e) {
    throw Error(e.code(),
                where_ + ": counting the rows of the current " + display(target_) +
                    " for the shrink guard failed: " + e.what(),
                "set sink.strategy.allow_shrink: true to replace the file without counting");
  }
}

TargetInfo FilesSink::inspect() {
  TargetInfo info;
  info.name = display(target_);
  info.schemaless = true;
  std::error_code ec;
  info.exists = fs::exists(target_, ec);
  if (info.exists && count_rows_ && fs::is_regular_file(target_, ec))
    info.rows = count_target_rows();
  return info;
}

std::vector<ArtifactSpec> FilesSink::accepts() const {
  return {{ArtifactKind::StreamingRows, WireFormat::RecordBatch}};
}

std::vector<std::string> FilesSink::render_ddl(const Schema&,
                                               const std::vector<const SchemaChange*>&) {
  return {};  // files have no schema to evolve: each load writes the source's columns
}

std::vector<std::string> FilesSink::describe_promotion(const StrategySpec& strategy,
                                                       const Schema&) {
  std::vector<std::string> steps = {"write " + files::to_string(format_) + " staging file " +
                                    display(staging_) + " and fsync it"};
  switch (strategy.mode) {
    case StrategyMode::FullRefresh:
      steps.push_back("rename " + display(staging_) + " -> " + display(target_) +
                      " (atomic replace)");
      break;
    case StrategyMode::Append:
      if (strategy.only_new_rows) only_new_rows_unsupported(where_);
      steps.push_back("rename " + display(staging_) + " -> " + display(target_) +
                      "/part-<hash of the stream and the window start>." +
                      files::extension_of(format_) +
                      " (atomic; a re-run of the same window replaces that part)");
      break;
    default:
      unsupported_strategy(where_, strategy.mode);
  }
  return steps;
}

std::vector<std::string> FilesSink::cleanup_abandoned(const std::vector<std::string>& live_run_ids) {
  std::vector<std::string> removed;
  auto sweep = [&](const fs::path& dir, auto&& is_staging) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) return;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      const fs::path p = it->path();
      if (p == staging_ || !is_staging(p.filename().string())) continue;
      if (names_live_run(p.filename().string(), live_run_ids, sanitize)) continue;
      std::error_code rec;
      if (fs::remove(p, rec))
        removed.push_back(display(p));
      else if (rec && diagnostics_)
        diagnostics_->warn(where_ + ": cannot remove abandoned staging file " + display(p) + ": " +
                           rec.message());
    }
    if (ec && diagnostics_)
      diagnostics_->warn(where_ + ": cannot list " + display(dir) +
                         " for abandoned staging files: " + ec.message());
  };
  const std::string prefix = target_.filename().string() + files::kStagingMarker;
  sweep(target_.parent_path(), [&](const std::string& name) { return name.rfind(prefix, 0) == 0; });
  sweep(target_, [](const std::string& name) {
    return name.find(files::kStagingMarker) != std::string::npos;
  });
  return removed;
}

StagedLoad FilesSink::stage(Artifact artifact, const Schema& source_schema) {
  staged_schema_ = source_schema;
  std::error_code ec;
  fs::create_directories(staging_.parent_path(), ec);
  if (ec)
    throw Error(ErrorCode::StageFailed, where_ + ": cannot create directory " +
                                            display(staging_.parent_path()) + ": " + ec.message());
  Fd fd(::open(staging_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd.valid())
    throw Error(ErrorCode::StageFailed,
                where_ + ": cannot create staging file " + display(staging_) + ": " + errno_text());
  RemoveOnUnwind guard(staging_);
  FdOutBuf buffer(fd.get());
  std::ostream out(&buffer);
  auto write_failed = [&] {
    throw Error(ErrorCode::StageFailed,
                where_ + ": writing " + display(staging_) +
                    " failed: " + std::strerror(buffer.error() != 0 ? buffer.error() : EIO),
                "check free space and permissions of the target directory");
  };

  std::optional<CsvWriter> csv;
  std::optional<JsonlWriter> jsonl;
  if (format_ == Format::Csv) {
    csv.emplace(out, csv_);
    if (csv_.header) csv->write_header(source_schema);
  } else {
    jsonl.emplace(out, source_schema);
  }
  int64_t rows = 0;
  auto consume = [&](const RecordBatch& batch) {
    if (batch.num_columns() != source_schema.columns.size())
      throw Error(ErrorCode::Internal,
                  where_ + ": a batch has " + std::to_string(batch.num_columns()) +
                      " columns, the schema " + std::to_string(source_schema.columns.size()));
    if (csv)
      csv->write(batch);
    else
      jsonl->write(batch);
    if (!out) write_failed();
    rows += static_cast<int64_t>(batch.num_rows());
    if (on_progress_) on_progress_(rows, buffer.bytes());
  };
  if (auto* streaming = std::get_if<StreamingRows>(&artifact); streaming && streaming->batches) {
    while (auto batch = streaming->batches->next()) consume(*batch);
  } else if (auto* memory = std::get_if<InMemoryRows>(&artifact)) {
    for (const RecordBatch& batch : memory->batches) consume(batch);
  } else {
    throw Error(ErrorCode::Internal, where_ + ": the files sink takes record batches, not " +
                                         spec_of(artifact).to_string());
  }
  out.flush();
  if (!out) write_failed();
  if (::fsync(fd.get()) != 0 || !fd.close())
    throw Error(ErrorCode::StageFailed, where_ + ": cannot flush staging file " +
                                            display(staging_) + " to disk: " + errno_text());
  guard.dismiss();

  StagedLoad staged;
  staged.staging_name = display(staging_);
  staged.rows = rows;
  staged.bytes = buffer.bytes();
  staged.details = {{"path", staging_.string()}, {"format", files::to_string(format_)}};
  return staged;
}

std::vector<GateResult> FilesSink::check(const StagedLoad& staged,
                                         const std::vector<GateSpec>& gates) {
  struct GateState {
    const GateSpec* spec;
    std::vector<size_t> cols;
    GateResult result;
    std::unordered_set<std::string> seen;  // unique: keys seen so far
  };
  constexpr size_t kSamples = 5;
  const Schema& schema = staged_schema_;
  std::vector<GateState> states;
  for (const GateSpec& g : gates) {
    if (g.type != "not_null" && g.type != "unique")
      throw Error(ErrorCode::ConfigBadValue,
                  where_ + ": gate '" + g.name + "' has type '" + g.type +
                      "', which the files sink cannot check",
                  "the files sink checks not_null and unique; remove the gate or load into a "
                  "database sink");
    if (g.columns.empty())
      throw Error(ErrorCode::ConfigBadValue, where_ + ": gate '" + g.name + "' names no columns");
    GateState st{&g, {}, {}, {}};
    for (const auto& c : g.columns) {
      int i = schema.find(c);
      if (i < 0)
        throw Error(ErrorCode::ConfigBadValue, where_ + ": gate '" + g.name + "' names column '" +
                                                   c + "', which is not loaded");
      st.cols.push_back(static_cast<size_t>(i));
    }
    st.result.name = g.name;
    st.result.type = g.type;
    st.result.severity = g.severity;
    states.push_back(std::move(st));
  }
  if (states.empty()) return {};

  // One pass over the staging file evaluates every gate. A row is seen as cells + nulls.
  std::vector<std::string> cells(schema.columns.size());
  std::vector<bool> nulls(schema.columns.size());
  int64_t row = 0;
  std::string key;
  auto evaluate = [&] {
    ++row;
    for (GateState& st : states) {
      bool any_null = false;
      for (size_t c : st.cols) any_null = any_null || nulls[c];
      if (st.spec->type == "not_null") {
        if (!any_null) continue;
        ++st.result.failing_rows;
        if (st.result.samples.size() < kSamples) {
          std::string s = "row " + std::to_string(row) + ":";
          for (size_t c : st.cols)
            if (nulls[c]) s += " " + schema.columns[c].name + " is NULL";
          st.result.samples.push_back(s);
        }
        continue;
      }
      if (any_null) continue;  // as in SQL, NULL keys never collide
      key.clear();
      for (size_t c : st.cols) {
        key += std::to_string(cells[c].size());
        key += ':';
        key += cells[c];
      }
      if (st.seen.insert(key).second) continue;
      ++st.result.failing_rows;
      if (st.result.samples.size() < kSamples) {
        std::string s;
        for (size_t c : st.cols)
          s += (s.empty() ? "" : ", ") + schema.columns[c].name + "=" + cells[c];
        if (std::find(st.result.samples.begin(), st.result.samples.end(), s) ==
            st.result.samples.end())
          st.result.samples.push_back(s);
      }
    }
  };

  const fs::path path = staging_path(staged);
  if (format_ == Format::Csv) {
    CsvReader reader(path, csv_);
    std::vector<std::string_view> fields;
    std::vector<bool> field_nulls;
    while (reader.next(fields, field_nulls)) {
      if (fields.size() != cells.size())
        throw Error(ErrorCode::Internal, input_position(path, reader.record_line()) +
                                             "staged record has " + std::to_string(fields.size()) +
                                             " fields, expected " + std::to_string(cells.size()));
      for (size_t c = 0; c < cells.size(); ++c) {
        cells[c].assign(fields[c]);
        nulls[c] = field_nulls[c];
      }
      evaluate();
    }
  } else {
    JsonlReader reader(path);
    json object;
    while (reader.next(object)) {
      for (size_t c = 0; c < cells.size(); ++c) {
        auto it = object.find(schema.columns[c].name);
        nulls[c] = it == object.end() || it->is_null();
        if (nulls[c])
          cells[c].clear();
        else
          cells[c] = it->is_string() ? it->get<std::string>() : it->dump();
      }
      evaluate();
    }
  }
  std::vector<GateResult> results;
  for (GateState& st : states) {
    st.result.passed = st.result.failing_rows == 0;
    results.push_back(std::move(st.result));
  }
  return results;
}

fs::path FilesSink::part_path(const LoadReceipt& receipt) const {
  // The window's start identifies "the same window" across a crash and its re-run, even
  // when the re-run's upper bound moved on (a cursor grew, more files arrived).
  const json& w = receipt.window;
  std::string identity =
      receipt.stream + "\n" + (w.is_object() && w.contains("low") ? w["low"].dump() : w.dump());
  return target_ / ("part-" + hex16(fnv1a64(identity)) + "." + files::extension_of(format_));
}

PromoteResult FilesSink::promote(const StagedLoad& staged, const PromoteRequest& request) {
  const fs::path stg = staging_path(staged);
  std::error_code ec;
  if (!fs::is_regular_file(stg, ec))
    throw Error(ErrorCode::PromoteFailed, where_ + ": staging file " + display(stg) + " is missing",
                "re-run the stream; nothing was promoted");
  PromoteResult result;
  result.atomic = true;
  result.inserted = staged.rows;
  fs::path destination;
  std::string note;
  switch (request.strategy.mode) {
    case StrategyMode::FullRefresh:
      if (fs::is_directory(target_, ec))
        throw Error(ErrorCode::ConfigBadValue, where_ + ": " + display(target_) + " is a directory",
                    "full_refresh replaces one file: point sink.path at a file");
      destination = target_;
      break;
    case StrategyMode::Append:
      if (request.strategy.only_new_rows) only_new_rows_unsupported(where_);
      if (fs::exists(target_, ec) && !fs::is_directory(target_, ec))
        throw Error(ErrorCode::ConfigBadValue, where_ + ": " + display(target_) + " is a file",
                    "append writes one part file per window into a directory: point sink.path at "
                    "a directory");
      fs::create_directories(target_, ec);
      if (ec)
        throw Error(ErrorCode::PromoteFailed,
                    where_ + ": cannot create directory " + display(target_) + ": " + ec.message());
      destination = part_path(request.receipt);
      if (fs::exists(destination, ec))
        note = " (replaces the part an earlier run wrote for the same window)";
      break;
    default:
      unsupported_strategy(where_, request.strategy.mode);
  }
  failpoint("inside_promote");
  fs::rename(stg, destination, ec);
  if (ec)
    throw Error(ErrorCode::PromoteFailed,
                where_ + ": cannot rename " + display(stg) + " -> " + display(destination) + ": " +
                    ec.message(),
                "the target is unchanged; re-run the stream");
  fsync_dir(destination.parent_path());
  if (request.strategy.mode == StrategyMode::Append) fsync_dir(target_.parent_path());  // a new dir
  result.sql.push_back("rename " + display(stg) + " -> " + display(destination) + note);
  return result;
}

void FilesSink::abort(const StagedLoad& staged) noexcept {
  std::error_code ec;
  const fs::path stg = staging_path(staged);
  fs::remove(stg, ec);
  if (ec && diagnostics_) {
    try {
      diagnostics_->warn(where_ + ": cannot remove staging file " + display(stg) + ": " +
                         ec.message());
    } catch (...) {  // abort() must not throw; the next run's cleanup removes the file
    }
  }
}

}  // namespace dpone
