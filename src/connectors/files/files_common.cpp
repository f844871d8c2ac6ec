#include "connectors/files/files_common.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>

#include "core/errors.hpp"

namespace dpone::files {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::string to_string(Format format) {
  return format == Format::Csv ? "csv" : "jsonl";
}

const char* extension_of(Format format) {
  return format == Format::Csv ? "csv" : "jsonl";
}

std::optional<Format> format_from_extension(const fs::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (ext == ".csv" || ext == ".tsv" || ext == ".txt") return Format::Csv;
  if (ext == ".jsonl" || ext == ".ndjson") return Format::Jsonl;
  return std::nullopt;
}

// ------------------------------------------------------------------------------- options

Options::Options(const json& options, std::string where)
    : options_(options.is_object() ? options : json::object()), where_(std::move(where)) {}

std::optional<std::string> Options::string(const char* key) const {
  auto it = options_.find(key);
  if (it == options_.end() || it->is_null()) return std::nullopt;
  if (!it->is_string())
    throw Error(ErrorCode::ConfigWrongType, where_ + "." + key + " must be a string");
  return it->get<std::string>();
}

std::optional<int64_t> Options::integer(const char* key) const {
  auto it = options_.find(key);
  if (it == options_.end() || it->is_null()) return std::nullopt;
  if (!it->is_number_integer())
    throw Error(ErrorCode::ConfigWrongType, where_ + "." + key + " must be an integer");
  return it->get<int64_t>();
}

std::vector<std::string> Options::string_list(const char* key) const {
  auto it = options_.find(key);
  std::vector<std::string> out;
  if (it == options_.end() || it->is_null()) return out;
  if (it->is_string()) {
    out.push_back(it->get<std::string>());
    return out;
  }
  if (!it->is_array())
    throw Error(ErrorCode::ConfigWrongType, where_ + "." + key + " must be a list of strings");
  for (const auto& v : *it) {
    if (!v.is_string())
      throw Error(ErrorCode::ConfigWrongType, where_ + "." + key + " must be a list of strings");
    out.push_back(v.get<std::string>());
  }
  return out;
}

json Options::map(const char* key) const {
  auto it = options_.find(key);
  if (it == options_.end() || it->is_null()) return json::object();
  if (!it->is_object())
    throw Error(ErrorCode::ConfigWrongType, where_ + "." + key + " must be a map");
  return *it;
}

std::optional<Format> Options::format() const {
  auto f = string("format");
  if (!f) return std::nullopt;
  if (*f == "csv") return Format::Csv;
  if (*f == "jsonl") return Format::Jsonl;
  throw Error(ErrorCode::ConfigBadValue, where_ + ".format '" + *f + "' is not supported",
              "use csv or jsonl");
}

CsvOptions Options::csv(const fs::path& path_hint) const {
  CsvOptions o;
  std::string ext = path_hint.extension().string();
  if (ext == ".tsv" || ext == ".TSV") o.delimiter = '\t';
  const json m = map("csv");
  const std::string at = where_ + ".csv.";
  auto one_char = [&](const std::string& key, const json& v) {
    if (!v.is_string()) throw Error(ErrorCode::ConfigWrongType, at + key + " must be a string");
    std::string s = v.get<std::string>();
    if (s == "\\t" || s == "tab") return '\t';
    if (s.size() != 1)
      throw Error(ErrorCode::ConfigBadValue,
                  at + key + " must be exactly one character, got '" + s + "'",
                  "write a tab as \"\\t\" (double-quoted YAML) or tab");
    return s[0];
  };
  for (auto it = m.begin(); it != m.end(); ++it) {
    const std::string& key = it.key();
    if (key == "delimiter") {
      o.delimiter = one_char(key, *it);
    } else if (key == "quote") {
      o.quote = one_char(key, *it);
    } else if (key == "header") {
      if (!it->is_boolean())
        throw Error(ErrorCode::ConfigWrongType, at + key + " must be true or false");
      o.header = it->get<bool>();
    } else if (key == "null_value") {
      if (!it->is_string()) throw Error(ErrorCode::ConfigWrongType, at + key + " must be a string");
      o.null_value = it->get<std::string>();
    } else {
      throw Error(ErrorCode::ConfigUnknownKey, "unknown key " + at + key,
                  "csv accepts delimiter, quote, header and null_value");
    }
  }
  validate(o);
  return o;
}

// ----------------------------------------------------------------------------------- glob

bool glob_match(std::string_view p, std::string_view s) {
  // Iterative matcher with one backtrack point: linear for one '*', fine for a few.
  size_t pi = 0, si = 0, star = std::string_view::npos, mark = 0;
  while (si < s.size()) {
    if (pi < p.size() && (p[pi] == '?' || p[pi] == s[si])) {
      ++pi;
      ++si;
    } else if (pi < p.size() && p[pi] == '*') {
      star = pi++;
      mark = si;
    } else if (star != std::string_view::npos) {
      pi = star + 1;
      si = ++mark;
    } else {
      return false;
    }
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  return pi == p.size();
}

namespace {

bool has_wildcard(std::string_view s) {
  return s.find_first_of("*?") != std::string_view::npos;
}

bool is_staging(const std::string& name) {
  return name.find(kStagingMarker) != std::string::npos;
}

// A hidden entry only matches a segment that asks for it.
bool visible_to(std::string_view segment, const std::string& name) {
  return name.empty() || name[0] != '.' || (!segment.empty() && segment[0] == '.');
}

class Walker {
 public:
  Walker(const fs::path& base_dir, std::vector<std::string> segments, std::string pattern)
      : base_dir_(base_dir), segments_(std::move(segments)), pattern_(std::move(pattern)) {}

  void walk(const fs::path& dir, size_t i) {
    const std::string& seg = segments_[i];
    const bool last = i + 1 == segments_.size();
    if (seg == "**") {
      if (last) {
        add_all_below(dir);
        return;
      }
      walk(dir, i + 1);  // zero directories
      for (const fs::path& sub : list(dir, true))
        if (visible_to("", sub.filename().string())) walk(sub, i);
      return;
    }
    if (!has_wildcard(seg)) {
      fs::path next = dir / seg;
      std::error_code ec;
      if (last) {
        if (fs::is_regular_file(next, ec) && !is_staging(seg)) add(next);
      } else if (fs::is_directory(next, ec)) {
        walk(next, i + 1);
      }
      return;
    }
    for (const fs::path& entry : list(dir, !last)) {
      std::string name = entry.filename().string();
      if (!visible_to(seg, name) || !glob_match(seg, name)) continue;
      if (last) {
        if (!is_staging(name)) add(entry);
      } else {
        walk(entry, i + 1);
      }
    }
  }

  std::map<std::string, FileEntry> take() { return std::move(found_); }

 private:
  // Entries of `dir`: subdirectories when `dirs`, else regular files. Symlinked directories
  // are not followed under a wildcard, so `**` cannot loop.
  std::vector<fs::path> list(const fs::path& dir, bool dirs) {
    std::vector<fs::path> out;
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) return out;
    fs::directory_iterator it(dir, ec);
    if (ec) fail(dir, ec);
    for (; it != fs::directory_iterator(); it.increment(ec)) {
      if (ec) fail(dir, ec);
      std::error_code tec;
      if (dirs ? (it->is_directory(tec) && !it->is_symlink(tec)) : it->is_regular_file(tec))
        out.push_back(it->path());
    }
    if (ec) fail(dir, ec);
    return out;
  }

  void add_all_below(const fs::path& dir) {
    for (const fs::path& f : list(dir, false)) {
      std::string name = f.filename().string();
      if (visible_to("", name) && !is_staging(name)) add(f);
    }
    for (const fs::path& sub : list(dir, true))
      if (visible_to("", sub.filename().string())) add_all_below(sub);
  }

  void add(const fs::path& p) {
    FileEntry e = stat_file(base_dir_, p);
    found_.emplace(e.key, std::move(e));
  }

  [[noreturn]] void fail(const fs::path& dir, const std::error_code& ec) {
    throw Error(ErrorCode::SourceReadFailed, "cannot list " + dir.string() + " while matching '" +
                                                 pattern_ + "': " + ec.message());
  }

  fs::path base_dir_;
  std::vector<std::string> segments_;
  std::string pattern_;
  std::map<std::string, FileEntry> found_;
};

}  // namespace

std::string file_key(const fs::path& base_dir, const fs::path& path) {
  fs::path rel = path.lexically_normal().lexically_relative(base_dir.lexically_normal());
  if (rel.empty() || *rel.begin() == "..") return path.lexically_normal().generic_string();
  return rel.generic_string();
}

FileEntry stat_file(const fs::path& base_dir, const fs::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    throw Error(ErrorCode::SourceReadFailed,
                path.string() + ": cannot stat: " + std::strerror(errno));
  FileEntry e;
  e.key = file_key(base_dir, path);
  e.path = path;
  e.size = static_cast<int64_t>(st.st_size);
  e.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
  return e;
}

std::vector<FileEntry> glob_files(const fs::path& base_dir, const std::string& pattern) {
  const fs::path pat(pattern);
  std::vector<FileEntry> out;
  if (!has_wildcard(pattern)) {
    fs::path full = (pat.is_absolute() ? pat : base_dir / pat).lexically_normal();
    std::error_code ec;
    if (fs::is_directory(full, ec))
      throw Error(ErrorCode::ConfigBadValue, "path '" + pattern + "' is a directory",
                  "match its files with a glob such as '" + pattern + "/*.csv'");
    if (fs::is_regular_file(full, ec)) out.push_back(stat_file(base_dir, full));
    return out;
  }
  // The walk starts at the pattern's wildcard-free prefix (only the pattern's own segments
  // are globbed: a '*' in base_dir is a literal).
  fs::path root = pat.is_absolute() ? pat.root_path() : base_dir;
  std::vector<std::string> rest;
  for (const auto& part : pat.lexically_normal().relative_path()) {
    std::string s = part.string();
    if (s.empty() || s == ".") continue;
    if (rest.empty() && !has_wildcard(s))
      root /= part;
    else
      rest.push_back(s);
  }
  Walker walker(base_dir, rest, pattern);
  walker.walk(root.lexically_normal(), 0);
  for (auto& [key, entry] : walker.take()) out.push_back(std::move(entry));
  return out;
}

}  // namespace dpone::files
