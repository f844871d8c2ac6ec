// Unit tests of the files connector: windows, discovery, extraction, staging, promotion,
// gates and cleanup, on real files in a temporary directory.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "connectors/files/files_common.hpp"
#include "connectors/files/files_sink.hpp"
#include "connectors/files/files_source.hpp"
#include "core/codecs/jsonl.hpp"
#include "core/connector/registry.hpp"
#include "core/errors.hpp"

namespace dpone {
void register_files_connector(ConnectorRegistry& registry);

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    std::random_device rd;
    path_ = fs::temp_directory_path() / ("dpone_files_" + std::to_string(::getpid()) + "_" +
                                         std::to_string(counter++) + "_" + std::to_string(rd()));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }
  fs::path write(const std::string& name, const std::string& content) const {
    fs::path p = path_ / name;
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << content;
    return p;
  }
  std::string read(const std::string& name) const {
    std::ifstream in(path_ / name, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

 private:
  fs::path path_;
};

template <typename F>
Error expect_error(F&& f, ErrorCode code, const std::string& needle) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    return e;
  }
  ADD_FAILURE() << "expected an error containing: " << needle;
  return Error(ErrorCode::Internal, "none");
}

struct SourceFixture {
  Diagnostics diagnostics;
  std::unique_ptr<FilesSource> make(const fs::path& base, json options) {
    options["connector"] = "files";
    return std::make_unique<FilesSource>(
        SourceContext{"orders", options, nullptr, base, &diagnostics});
  }
};

// Rows of an artifact as strings, NULL as "<NULL>".
using Row = std::vector<std::string>;
std::vector<Row> drain(Artifact artifact, std::vector<size_t>* batch_sizes = nullptr) {
  auto& rows = std::get<StreamingRows>(artifact);
  std::vector<Row> out;
  while (auto batch = rows.batches->next()) {
    if (batch_sizes) batch_sizes->push_back(batch->num_rows());
    for (size_t r = 0; r < batch->num_rows(); ++r) {
      Row row;
      for (size_t c = 0; c < batch->num_columns(); ++c)
        row.push_back(batch->is_null(r, c) ? "<NULL>" : std::string(batch->cell(r, c)));
      out.push_back(row);
    }
  }
  return out;
}

const ArtifactSpec kRows{ArtifactKind::StreamingRows, WireFormat::RecordBatch};

std::string types_of(const Schema& s) {
  std::string out;
  for (const auto& c : s.columns)
    out += (out.empty() ? "" : " ") + c.name + ":" + c.type.to_string();
  return out;
}

// ------------------------------------------------------------------------------ source

TEST(FilesSource, FullModeReadsAllFilesWithSchemaUnion) {
  TempDir dir;
  dir.write("data/orders_1.csv", "id,amount,placed\n1,12.5,2024-01-01\n2,3,2024-01-02\n");
  dir.write("data/orders_2.csv", "id,note,amount\n3,\"hello, world\",7.25\n4,,8\n");
  dir.write("data/readme.txt.bak", "not matched");
  SourceFixture fx;
  auto src = fx.make(dir.path(), {{"path", "data/*.csv"}});
  Window w = src->plan_window(nullptr);
  EXPECT_EQ(w.description, "all 2 files");
  EXPECT_FALSE(w.empty);
  Schema s = src->discover();
  EXPECT_EQ(types_of(s), "id:int64 amount:float64 placed:date note:string");
  for (const auto& c : s.columns) EXPECT_TRUE(c.nullable);
  auto rows = drain(src->extract(w, kRows, {}));
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[0], (Row{"1", "12.5", "2024-01-01", "<NULL>"}));
  EXPECT_EQ(rows[2], (Row{"3", "7.25", "<NULL>", "hello, world"}));
  EXPECT_EQ(rows[3], (Row{"4", "8", "<NULL>", "<NULL>"}));
  // The position names every file with its size and mtime.
  json pos = src->next_position(w);
  ASSERT_TRUE(pos["files"].contains("data/orders_1.csv"));
  EXPECT_EQ(pos["files"]["data/orders_1.csv"]["size"],
            fs::file_size(dir.path() / "data/orders_1.csv"));
  EXPECT_TRUE(pos["files"]["data/orders_2.csv"]["mtime_ns"].is_number_integer());
}

TEST(FilesSource, NewFilesAcrossTwoDays) {
  TempDir dir;
  dir.write("in/orders_day1.csv", "id,amount\n1,10\n2,20\n");
  dir.write("in/customers_day1.csv", "id,amount\n100,1\n");
  SourceFixture fx;
  json options = {{"path", "in/*.csv"}, {"incremental", "new_files"}};

  // Day 1: both files are new.
  auto day1 = fx.make(dir.path(), options);
  Window w1 = day1->plan_window(nullptr);
  EXPECT_EQ(w1.description, "2 new files: in/customers_day1.csv, in/orders_day1.csv");
  day1->discover();
  EXPECT_EQ(drain(day1->extract(w1, kRows, {})).size(), 3u);
  json pos1 = day1->next_position(w1);
  EXPECT_EQ(pos1["files"].size(), 2u);

  // Day 2: two more files; only they are read.
  dir.write("in/orders_day2.csv", "id,amount\n3,30\n");
  dir.write("in/customers_day2.csv", "id,amount\n101,2\n102,3\n");
  auto day2 = fx.make(dir.path(), options);
  Window w2 = day2->plan_window(pos1);
  EXPECT_EQ(w2.description, "2 new files: in/customers_day2.csv, in/orders_day2.csv");
  day2->discover();
  auto rows = drain(day2->extract(w2, kRows, {}));
  EXPECT_EQ(rows, (std::vector<Row>{{"101", "2"}, {"102", "3"}, {"3", "30"}}));
  json pos2 = day2->next_position(w2);
  EXPECT_EQ(pos2["files"].size(), 4u);

  // Nothing new: an empty window whose position stays put; discover still works.
  auto day3 = fx.make(dir.path(), options);
  Window w3 = day3->plan_window(pos2);
  EXPECT_TRUE(w3.empty);
  EXPECT_EQ(w3.description, "no new files (4 files loaded before)");
  EXPECT_EQ(types_of(day3->discover()), "id:int64 amount:int64");
  EXPECT_EQ(day3->next_position(w3), pos2);

  // A file that changed is read again, and the plan says so.
  dir.write("in/orders_day2.csv", "id,amount\n3,30\n4,40\n");
  auto day4 = fx.make(dir.path(), options);
  Window w4 = day4->plan_window(pos2);
  EXPECT_FALSE(w4.empty);
  EXPECT_EQ(w4.description, "1 changed file read again: in/orders_day2.csv");
  day4->discover();
  EXPECT_EQ(drain(day4->extract(w4, kRows, {})), (std::vector<Row>{{"3", "30"}, {"4", "40"}}));
  ASSERT_FALSE(fx.diagnostics.warnings().empty());
  EXPECT_NE(fx.diagnostics.warnings().back().find("in/orders_day2.csv changed since it was loaded"),
            std::string::npos);
}

TEST(FilesSource, WindowIsReplayableFromItsJson) {
  TempDir dir;
  dir.write("a.csv", "x\n1\n");
  SourceFixture fx;
  json options = {{"path", "*.csv"}, {"incremental", "new_files"}};
  auto first = fx.make(dir.path(), options);
  json pos = first->next_position(first->plan_window(nullptr));
  dir.write("b.csv", "x\n2\n");
  Window w = fx.make(dir.path(), options)->plan_window(pos);
  // A fresh source extracts exactly the window's files from low/high alone.
  auto other = fx.make(dir.path(), options);
  EXPECT_EQ(drain(other->extract(w, kRows, {})), (std::vector<Row>{{"2"}}));
}

TEST(FilesSource, NoMatch) {
  TempDir dir;
  SourceFixture fx;
  expect_error(
      [&] {
        fx.make(dir.path(), {{"path", "nothing/*.csv"}})->plan_window(nullptr);
      },
      ErrorCode::SourceReadFailed, "no file matches 'nothing/*.csv'");
  // new_files: an error if nothing ever matched, an empty window if files were loaded before.
  json options = {{"path", "*.csv"}, {"incremental", "new_files"}};
  expect_error([&] { fx.make(dir.path(), options)->plan_window(nullptr); },
               ErrorCode::SourceReadFailed, "no file matches");
  json pos = {{"files", {{"old.csv", {{"size", 3}, {"mtime_ns", 5}}}}}};
  Window w = fx.make(dir.path(), options)->plan_window(pos);
  EXPECT_TRUE(w.empty);
  EXPECT_EQ(w.high, pos);
  expect_error(
      [&] {
        fx.make(dir.path(), options)->plan_window(json{{"cursor", 5}});
      },
      ErrorCode::ConfigBadValue, "not a files position");
}

TEST(FilesSource, GlobSegmentsRecursionHiddenAndStaging) {
  TempDir dir;
  dir.write("d/a1.csv", "x\n1\n");
  dir.write("d/a2.csv", "x\n2\n");
  dir.write("d/a10.csv", "x\n10\n");
  dir.write("d/.hidden.csv", "x\n99\n");
  dir.write("d/a3.csv.dpone_stg_run1", "x\n98\n");
  dir.write("d/sub/deep/a4.csv", "x\n4\n");
  dir.write("d/.git/a5.csv", "x\n97\n");
  auto keys = [&](const std::string& pattern) {
    std::string out;
    for (const auto& f : files::glob_files(dir.path(), pattern))
      out += (out.empty() ? "" : " ") + f.key;
    return out;
  };
  EXPECT_EQ(keys("d/a?.csv"), "d/a1.csv d/a2.csv");
  EXPECT_EQ(keys("d/*.csv"), "d/a1.csv d/a10.csv d/a2.csv");
  EXPECT_EQ(keys("d/**/*.csv"), "d/a1.csv d/a10.csv d/a2.csv d/sub/deep/a4.csv");
  EXPECT_EQ(keys("d/**"), "d/a1.csv d/a10.csv d/a2.csv d/sub/deep/a4.csv");
  EXPECT_EQ(keys("*/sub/*/a4.csv"), "d/sub/deep/a4.csv");
  EXPECT_EQ(keys("d/.*.csv"), "d/.hidden.csv");
  EXPECT_EQ(keys("d/a1.csv"), "d/a1.csv");
  EXPECT_EQ(keys((dir.path() / "d/a2.csv").string()), "d/a2.csv");
  EXPECT_EQ(keys("d/missing.csv"), "");
  expect_error([&] { files::glob_files(dir.path(), "d"); }, ErrorCode::ConfigBadValue,
               "is a directory");
  EXPECT_TRUE(files::glob_match("a*b*c", "axxbyyc"));
  EXPECT_FALSE(files::glob_match("a*b*c", "axxbyy"));
  EXPECT_TRUE(files::glob_match("*", ""));
}

TEST(FilesSource, DeclaredColumnsAndPrimaryKey) {
  TempDir dir;
  dir.write("o.csv", "id,amount,ts\n1,12.5,2024-01-01T10:00:00+02:00\n2,3,2024-01-01T00:00:00Z\n");
  SourceFixture fx;
  auto src = fx.make(dir.path(), {{"path", "o.csv"},
                                  {"columns", {{"amount", "decimal(12,2)"}, {"id", "int32"}}},
                                  {"primary_key", {"id"}}});
  Window w = src->plan_window(nullptr);
  EXPECT_EQ(w.description, "1 file: o.csv");
  Schema s = src->discover();
  EXPECT_EQ(types_of(s), "id:int32 amount:decimal(12,2) ts:timestamptz");
  EXPECT_FALSE(s.columns[0].nullable);
  EXPECT_TRUE(s.columns[1].nullable);
  EXPECT_EQ(s.primary_key, (std::vector<std::string>{"id"}));
  EXPECT_EQ(drain(src->extract(w, kRows, {})),
            (std::vector<Row>{{"1", "12.50", "2024-01-01T08:00:00Z"},
                              {"2", "3.00", "2024-01-01T00:00:00Z"}}));

  auto missing =
      fx.make(dir.path(), {{"path", "o.csv"}, {"columns", {{"amount_usd", "decimal(12,2)"}}}});
  missing->plan_window(nullptr);
  expect_error([&] { missing->discover(); }, ErrorCode::ConfigBadValue, "declares 'amount_usd'");
  auto bad_pk = fx.make(dir.path(), {{"path", "o.csv"}, {"primary_key", "key"}});
  bad_pk->plan_window(nullptr);
  expect_error([&] { bad_pk->discover(); }, ErrorCode::ConfigBadValue, "primary_key names 'key'");
  expect_error(
      [&] {
        fx.make(dir.path(), {{"path", "o.csv"}, {"columns", {{"x", "money"}}}});
      },
      ErrorCode::ConfigBadValue, "unknown type 'money'");
}

TEST(FilesSource, BadValueNamesFileLineColumnAndType) {
  TempDir dir;
  auto p = dir.write("o.csv", "id,amount\n1,12.50\n2,abc\n");
  SourceFixture fx;
  auto src = fx.make(dir.path(), {{"path", "o.csv"}, {"columns", {{"amount", "decimal(12,2)"}}}});
  Window w = src->plan_window(nullptr);
  src->discover();
  Error e = expect_error([&] { drain(src->extract(w, kRows, {})); }, ErrorCode::TypeMismatch,
                         p.string() + ":3: column 'amount': 'abc' is not a valid decimal(12,2)");
  EXPECT_EQ(e.hint(), "declare the column's type under source.columns, or fix the input");

  dir.write("o.csv", "id,amount\n1,12.50\n2,1.234\n");
  auto src2 = fx.make(dir.path(), {{"path", "o.csv"}, {"columns", {{"amount", "decimal(12,2)"}}}});
  Window w2 = src2->plan_window(nullptr);
  expect_error([&] { drain(src2->extract(w2, kRows, {})); }, ErrorCode::TypeOverflow,
               ":3: column 'amount': value '1.234' does not fit decimal(12,2)");
}

TEST(FilesSource, RecordWithTooManyFields) {
  TempDir dir;
  auto p = dir.write("o.csv", "id,name\n1,a\n2,b,extra\n");
  SourceFixture fx;
  auto src = fx.make(dir.path(), {{"path", "o.csv"}, {"infer_rows", 1}});
  Window w = src->plan_window(nullptr);
  src->discover();
  expect_error([&] { drain(src->extract(w, kRows, {})); }, ErrorCode::InputMalformed,
               p.string() + ":3: record has 3 fields, the header has 2");
}

TEST(FilesSource, BatchesAreBoundedAndSpanFiles) {
  TempDir dir;
  dir.write("a.csv", "n\n1\n2\n3\n");
  dir.write("b.csv", "n\n4\n5\n");
  SourceFixture fx;
  auto src = fx.make(dir.path(), {{"path", "*.csv"}});
  Window w = src->plan_window(nullptr);
  std::vector<size_t> sizes;
  ExtractOptions eo;
  eo.batch_rows = 2;
  auto rows = drain(src->extract(w, kRows, eo), &sizes);
  EXPECT_EQ(sizes, (std::vector<size_t>{2, 2, 1}));
  EXPECT_EQ(rows, (std::vector<Row>{{"1"}, {"2"}, {"3"}, {"4"}, {"5"}}));
}

TEST(FilesSource, FileChangedAfterPlanning) {
  TempDir dir;
  dir.write("a.csv", "n\n1\n");
  SourceFixture fx;
  auto src = fx.make(dir.path(), {{"path", "a.csv"}});
  Window w = src->plan_window(nullptr);
  src->discover();
  dir.write("a.csv", "n\n1\n2\n");
  expect_error([&] { drain(src->extract(w, kRows, {})); }, ErrorCode::SourceReadFailed,
               "changed since the run was planned");
}

TEST(FilesSource, JsonlWithNestedValuesAndLateKeys) {
  TempDir dir;
  dir.write("e.jsonl",
            "{\"id\": 1, \"tags\": [\"a\"], \"at\": \"2024-01-01T00:00:00Z\", \"ok\": true}\n"
            "\n"
            "{\"id\": 2, \"tags\": {\"k\": 1}, \"at\": null, \"ok\": false, \"code\": \"007\"}\n");
  SourceFixture fx;
  auto src = fx.make(dir.path(), {{"path", "e.jsonl"}});
  Window w = src->plan_window(nullptr);
  EXPECT_EQ(types_of(src->discover()), "id:int64 tags:json at:timestamptz ok:bool code:string");
  EXPECT_EQ(drain(src->extract(w, kRows, {})),
            (std::vector<Row>{{"1", "[\"a\"]", "2024-01-01T00:00:00Z", "true", "<NULL>"},
                              {"2", "{\"k\":1}", "<NULL>", "false", "007"}}));
  // A key first seen after the inference budget is an error, not silently dropped.
  auto limited = fx.make(dir.path(), {{"path", "e.jsonl"}, {"infer_rows", 1}});
  Window w2 = limited->plan_window(nullptr);
  limited->discover();
  expect_error([&] { drain(limited->extract(w2, kRows, {})); }, ErrorCode::InputMalformed,
               "e.jsonl:3: key 'code' is not a column");
}

// JSON lines as bytes (WireFormat::Jsonl, for a sink that takes JSON objects as they
// are): offered only for JSONL files without declared columns or primary key; every line
// validated, blank lines, BOM and CR removed, files concatenated in window order.
std::string drain_bytes(Artifact artifact, size_t chunk = 7) {
  auto& rows = std::get<StreamingRows>(artifact);
  EXPECT_EQ(rows.format, WireFormat::Jsonl);
  std::string out, buf(chunk, '\0');
  while (size_t n = rows.bytes->read(buf.data(), buf.size())) out.append(buf.data(), n);
  return out;
}

TEST(FilesSource, JsonLinesAsBytes) {
  const ArtifactSpec lines{ArtifactKind::StreamingRows, WireFormat::Jsonl};
  TempDir dir;
  dir.write("in/a.jsonl", "\xEF\xBB\xBF{\"id\": 1}\r\n\n  \n\t{\"id\":2,\"s\":\"\\u00e9\"} \n");
  dir.write("in/b.jsonl", "{\"id\":3,\"n\":{\"x\":[1,null]}}");  // no final line break
  SourceFixture fx;
  auto src = fx.make(dir.path(), {{"path", "in/*.jsonl"}});
  Window w = src->plan_window(nullptr);
  src->discover();
  EXPECT_EQ(src->produces(), (std::vector<ArtifactSpec>{kRows, lines}));
  for (size_t chunk : {size_t{1}, size_t{7}, size_t{1} << 16})
    EXPECT_EQ(drain_bytes(src->extract(w, lines, {}), chunk),
              "{\"id\": 1}\n{\"id\":2,\"s\":\"\\u00e9\"}\n{\"id\":3,\"n\":{\"x\":[1,null]}}\n");
  // Conversions needed (declared columns, a primary key) or CSV files: batches only.
  for (json extra : {json{{"columns", {{"id", "int64"}}}}, json{{"primary_key", "id"}}}) {
    json o = {{"path", "in/*.jsonl"}};
    o.update(extra);
    auto typed = fx.make(dir.path(), o);
    typed->plan_window(nullptr);
    EXPECT_EQ(typed->produces(), std::vector<ArtifactSpec>{kRows}) << extra.dump();
    expect_error([&] { typed->extract(w, lines, {}); }, ErrorCode::Internal, "cannot produce");
  }
  dir.write("c.csv", "id\n1\n");
  auto csv = fx.make(dir.path(), {{"path", "c.csv"}});
  csv->plan_window(nullptr);
  EXPECT_EQ(csv->produces(), std::vector<ArtifactSpec>{kRows});
  // A line that is not exactly one JSON object fails at file:line before it is handed out.
  for (const std::string bad : {"{\"id\": 3,}", "[1]", "{\"a\":1} {\"b\":2}", "{\"a\":\"\xff\"}", "7"}) {
    dir.write("in/b.jsonl", "{\"id\":3}\n\n" + bad + "\n");
    // infer_rows 1: discovery (nlohmann) does not reach the line; the byte reader must.
    auto again = fx.make(dir.path(), {{"path", "in/*.jsonl"}, {"infer_rows", 1}});
    Window w3 = again->plan_window(nullptr);
    again->discover();
    expect_error([&] { drain_bytes(again->extract(w3, lines, {})); }, ErrorCode::InputMalformed,
                 "b.jsonl:3: ");
  }
}

// Lines are validated a block (~1 MiB) at a time: a bad line in a later block fails
// there, naming its file:line, after the earlier blocks were handed out; an object split
// over two lines is two bad lines, not one good object.
TEST(FilesSource, JsonLinesValidatedByBlockNameTheBadLine) {
  const ArtifactSpec lines{ArtifactKind::StreamingRows, WireFormat::Jsonl};
  TempDir dir;
  std::string good;
  for (int i = 1; i <= 40000; ++i) good += "{\"id\":" + std::to_string(i) + ",\"pad\":\"xxxxxxxx\"}\n";
  SourceFixture fx;
  for (const std::string bad : {"{\"a\":\n1}", "{\"a\":1}{\"b\":2}", "\"s\"", "{\"a\":tru}"}) {
    dir.write("big.jsonl", good + bad + "\n{\"id\":0}\n");
    auto src = fx.make(dir.path(), {{"path", "big.jsonl"}, {"infer_rows", 1}});
    Window w = src->plan_window(nullptr);
    src->discover();
    Artifact a = src->extract(w, lines, {});
    auto& rows = std::get<StreamingRows>(a);
    std::string out, buf(1 << 16, '\0');
    try {
      while (size_t n = rows.bytes->read(buf.data(), buf.size())) out.append(buf.data(), n);
      ADD_FAILURE() << "no error for " << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::InputMalformed) << bad;
      EXPECT_NE(std::string(e.what()).find("big.jsonl:40001: "), std::string::npos) << e.what();
    }
    EXPECT_GT(out.size(), size_t{1} << 20) << "the first block was handed out before the error";
    EXPECT_EQ(good.compare(0, out.size(), out), 0);
  }
}

TEST(FilesSource, CsvOptionsAndNoHeader) {
  TempDir dir;
  dir.write("a.txt", "1;x;NULL\n2;\"y;z\";5\n");
  SourceFixture fx;
  auto src = fx.make(dir.path(),
                     {{"path", "a.txt"},
                      {"csv", {{"delimiter", ";"}, {"header", false}, {"null_value", "NULL"}}}});
  Window w = src->plan_window(nullptr);
  EXPECT_EQ(types_of(src->discover()), "column_1:int64 column_2:string column_3:int64");
  EXPECT_EQ(drain(src->extract(w, kRows, {})),
            (std::vector<Row>{{"1", "x", "<NULL>"}, {"2", "y;z", "5"}}));
  expect_error(
      [&] {
        fx.make(dir.path(), {{"path", "a.txt"}, {"csv", {{"delimiter", ";;"}}}});
      },
      ErrorCode::ConfigBadValue, "exactly one character");
  expect_error(
      [&] {
        fx.make(dir.path(), {{"path", "a.txt"}, {"csv", {{"delimeter", ";"}}}});
      },
      ErrorCode::ConfigUnknownKey, "delimeter");
  expect_error([&] { fx.make(dir.path(), json::object()); }, ErrorCode::ConfigMissingKey,
               "path is required");
}

TEST(FilesSource, UnknownExtensionNeedsFormat) {
  TempDir dir;
  dir.write("a.dat", "x\n1\n");
  SourceFixture fx;
  auto src = fx.make(dir.path(), {{"path", "a.dat"}});
  src->plan_window(nullptr);
  expect_error([&] { src->discover(); }, ErrorCode::ConfigBadValue,
               "cannot tell the format of 'a.dat'");
  auto with_format = fx.make(dir.path(), {{"path", "a.dat"}, {"format", "csv"}});
  with_format->plan_window(nullptr);
  EXPECT_EQ(types_of(with_format->discover()), "x:int64");
}

// -------------------------------------------------------------------------------- sink

struct SinkFixture {
  Diagnostics diagnostics;
  std::vector<std::pair<int64_t, int64_t>> progress;
  std::unique_ptr<FilesSink> make(const fs::path& base, json options,
                                  const std::string& run_id = "run1") {
    options["connector"] = "files";
    return std::make_unique<FilesSink>(
        SinkContext{"orders", run_id, options, nullptr, base, &diagnostics,
                    [this](int64_t rows, int64_t bytes) { progress.emplace_back(rows, bytes); }});
  }
};

Schema test_schema() {
  Schema s;
  s.columns = {{"id", LogicalType::of(TypeId::Int64), false},
               {"name", LogicalType::of(TypeId::String), true},
               {"amount", LogicalType::decimal(12, 2), true}};
  return s;
}

// An artifact of in-memory batches ({"<NULL>"} cells become NULL).
Artifact artifact_of(const std::vector<Row>& rows, size_t batch_rows = 2) {
  InMemoryRows mem;
  mem.schema = test_schema();
  for (size_t i = 0; i < rows.size(); i += batch_rows) {
    RecordBatch b(3);
    for (size_t r = i; r < rows.size() && r < i + batch_rows; ++r)
      for (const auto& c : rows[r]) {
        if (c == "<NULL>")
          b.append_null();
        else
          b.append(c);
      }
    mem.batches.push_back(std::move(b));
  }
  return mem;
}

PromoteRequest request(StrategyMode mode, json window = {{"low", nullptr}, {"high", 1}}) {
  PromoteRequest r;
  r.strategy.mode = mode;
  r.source_schema = test_schema();
  r.receipt = LoadReceipt{"orders", "run1", 0, window, json(), 0, ""};
  return r;
}

TEST(FilesSink, FullRefreshStagesThenRenames) {
  TempDir dir;
  SinkFixture fx;
  auto sink =
      fx.make(dir.path(), {{"path", "out/orders.csv"}, {"strategy", {{"mode", "full_refresh"}}}});
  TargetInfo t = sink->inspect();
  EXPECT_EQ(t.name, "out/orders.csv");
  EXPECT_FALSE(t.exists);
  EXPECT_TRUE(t.schemaless);
  StagedLoad staged = sink->stage(
      artifact_of({{"1", "a", "1.50"}, {"2", "", "<NULL>"}, {"3", "c,d", "2.00"}}), test_schema());
  EXPECT_EQ(staged.rows, 3);
  EXPECT_EQ(staged.staging_name, "out/orders.csv.dpone_stg_run1");
  EXPECT_TRUE(fs::exists(dir.path() / "out/orders.csv.dpone_stg_run1"));
  EXPECT_FALSE(fs::exists(dir.path() / "out/orders.csv"));  // untouched until promote
  ASSERT_EQ(fx.progress.size(), 2u);
  EXPECT_EQ(fx.progress.back().first, 3);
  EXPECT_EQ(staged.bytes,
            static_cast<int64_t>(fs::file_size(dir.path() / "out/orders.csv.dpone_stg_run1")));

  PromoteResult r = sink->promote(staged, request(StrategyMode::FullRefresh));
  EXPECT_TRUE(r.atomic);
  EXPECT_EQ(r.inserted, 3);
  EXPECT_EQ(r.sql,
            (std::vector<std::string>{"rename out/orders.csv.dpone_stg_run1 -> out/orders.csv"}));
  EXPECT_EQ(dir.read("out/orders.csv"), "id,name,amount\n1,a,1.50\n2,\"\",\n3,\"c,d\",2.00\n");
  EXPECT_FALSE(fs::exists(dir.path() / "out/orders.csv.dpone_stg_run1"));
  sink->abort(staged);  // the runtime drops staging after success: a no-op here

  // The next run replaces the file; inspect() counts its rows for the shrink guard.
  auto sink2 = fx.make(
      dir.path(), {{"path", "out/orders.csv"}, {"strategy", {{"mode", "full_refresh"}}}}, "run2");
  TargetInfo t2 = sink2->inspect();
  EXPECT_TRUE(t2.exists);
  ASSERT_TRUE(t2.rows.has_value());
  EXPECT_EQ(*t2.rows, 3);
  StagedLoad s2 = sink2->stage(artifact_of({{"9", "z", "0.00"}}), test_schema());
  sink2->promote(s2, request(StrategyMode::FullRefresh));
  EXPECT_EQ(dir.read("out/orders.csv"), "id,name,amount\n9,z,0.00\n");
  // Without the guard in play nothing is counted.
  auto sink3 =
      fx.make(dir.path(), {{"path", "out/orders.csv"},
                           {"strategy", {{"mode", "full_refresh"}, {"allow_shrink", true}}}});
  EXPECT_FALSE(sink3->inspect().rows.has_value());
}

TEST(FilesSink, AppendIsIdempotentPerWindow) {
  TempDir dir;
  SinkFixture fx;
  json options = {{"path", "out/orders"}, {"format", "jsonl"}};
  auto count_parts = [&] {
    size_t n = 0;
    for (const auto& e : fs::directory_iterator(dir.path() / "out/orders")) {
      EXPECT_EQ(e.path().extension(), ".jsonl");
      EXPECT_EQ(e.path().filename().string().rfind("part-", 0), 0u);
      ++n;
    }
    return n;
  };
  json window1 = {{"low", nullptr}, {"high", {{"files", {{"a.csv", 1}}}}}};
  json window2 = {{"low", {{"files", {{"a.csv", 1}}}}},
                  {"high", {{"files", {{"a.csv", 1}, {"b.csv", 2}}}}}};

  auto run1 = fx.make(dir.path(), options, "run1");
  PromoteResult r1 = run1->promote(run1->stage(artifact_of({{"1", "a", "1.00"}}), test_schema()),
                                   request(StrategyMode::Append, window1));
  EXPECT_EQ(count_parts(), 1u);
  ASSERT_EQ(r1.sql.size(), 1u);
  EXPECT_EQ(r1.sql[0].find("replaces"), std::string::npos);

  // The same window again (a re-run after a crash before the state commit, even with a
  // grown upper bound): the same part is replaced, nothing is duplicated.
  json window1_grown = {{"low", nullptr}, {"high", {{"files", {{"a.csv", 1}, {"c.csv", 3}}}}}};
  auto rerun = fx.make(dir.path(), options, "run2");
  PromoteResult r2 = rerun->promote(
      rerun->stage(artifact_of({{"1", "a", "1.00"}, {"3", "c", "3.00"}}), test_schema()),
      request(StrategyMode::Append, window1_grown));
  EXPECT_EQ(count_parts(), 1u);
  EXPECT_NE(r2.sql[0].find("replaces the part an earlier run wrote"), std::string::npos);
  EXPECT_EQ(rerun->part_path(request(StrategyMode::Append, window1).receipt),
            run1->part_path(request(StrategyMode::Append, window1_grown).receipt));

  // The next window adds a part.
  auto run3 = fx.make(dir.path(), options, "run3");
  run3->promote(run3->stage(artifact_of({{"2", "b", "2.00"}}), test_schema()),
                request(StrategyMode::Append, window2));
  EXPECT_EQ(count_parts(), 2u);

  size_t rows = 0;
  for (const auto& e : fs::directory_iterator(dir.path() / "out/orders")) {
    JsonlReader reader(e.path());
    json obj;
    while (reader.next(obj)) {
      ++rows;
      EXPECT_TRUE(obj["id"].is_number_integer());
      EXPECT_TRUE(obj["amount"].is_number());
    }
  }
  EXPECT_EQ(rows, 3u);  // 2 from the replaced part + 1
}

TEST(FilesSink, UnsupportedStrategies) {
  TempDir dir;
  SinkFixture fx;
  auto sink = fx.make(dir.path(), {{"path", "o.csv"}});
  StrategySpec merge;
  merge.mode = StrategyMode::Merge;
  merge.unique_key = {"id"};
  expect_error([&] { sink->describe_promotion(merge, test_schema()); }, ErrorCode::ConfigBadValue,
               "strategy 'merge' is not supported");
  StagedLoad staged = sink->stage(artifact_of({{"1", "a", "1.00"}}), test_schema());
  expect_error([&] { sink->promote(staged, request(StrategyMode::Merge)); },
               ErrorCode::ConfigBadValue, "not supported by the files sink");
  PromoteRequest only_new = request(StrategyMode::Append);
  only_new.strategy.only_new_rows = true;
  expect_error([&] { sink->promote(staged, only_new); }, ErrorCode::ConfigBadValue,
               "only_new_rows");
  EXPECT_FALSE(fs::exists(dir.path() / "o.csv"));
  sink->abort(staged);
  EXPECT_FALSE(fs::exists(dir.path() / "o.csv.dpone_stg_run1"));

  StrategySpec full;
  full.mode = StrategyMode::FullRefresh;
  auto steps = sink->describe_promotion(full, test_schema());
  ASSERT_EQ(steps.size(), 2u);
  EXPECT_EQ(steps[0], "write csv staging file o.csv.dpone_stg_run1 and fsync it");
  EXPECT_EQ(steps[1], "rename o.csv.dpone_stg_run1 -> o.csv (atomic replace)");
}

TEST(FilesSink, GatesReadTheStagingFile) {
  for (const char* path : {"o.csv", "o.jsonl"}) {
    TempDir dir;
    SinkFixture fx;
    auto sink = fx.make(dir.path(), {{"path", path}});
    StagedLoad staged = sink->stage(artifact_of({{"1", "a", "1.00"},
                                                 {"2", "<NULL>", "2.00"},
                                                 {"1", "", "<NULL>"},
                                                 {"3", "x", "<NULL>"},
                                                 {"2", "b", "2.00"}}),
                                    test_schema());
    std::vector<GateSpec> gates = {
        {"id_unique", "unique", {"id"}, "error", json::object()},
        {"name_not_null", "not_null", {"name"}, "warn", json::object()},
        {"pair_unique", "unique", {"id", "amount"}, "error", json::object()},
        {"id_not_null", "not_null", {"id"}, "error", json::object()},
    };
    auto results = sink->check(staged, gates);
    ASSERT_EQ(results.size(), 4u) << path;
    EXPECT_FALSE(results[0].passed);
    EXPECT_EQ(results[0].failing_rows, 2) << path;
    EXPECT_EQ(results[0].samples, (std::vector<std::string>{"id=1", "id=2"})) << path;
    EXPECT_FALSE(results[1].passed);
    EXPECT_EQ(results[1].failing_rows, 1) << path;  // "" is not NULL
    EXPECT_EQ(results[1].severity, "warn");
    EXPECT_EQ(results[1].samples, (std::vector<std::string>{"row 2: name is NULL"})) << path;
    EXPECT_FALSE(results[2].passed);
    EXPECT_EQ(results[2].failing_rows, 1) << path;  // (2, 2.00) twice; NULL amounts never collide
    EXPECT_TRUE(results[3].passed);
    EXPECT_EQ(results[3].failing_rows, 0);

    expect_error(
        [&] {
          sink->check(staged, {{"r", "range", {"id"}, "error", json::object()}});
        },
        ErrorCode::ConfigBadValue, "gate 'r' has type 'range'");
    expect_error(
        [&] {
          sink->check(staged, {{"u", "unique", {"nope"}, "error", json::object()}});
        },
        ErrorCode::ConfigBadValue, "column 'nope'");
  }
}

TEST(FilesSink, CleanupRemovesOnlyOtherRunsStaging) {
  TempDir dir;
  dir.write("out/o.csv.dpone_stg_old1", "x");
  dir.write("out/o.csv.dpone_stg_run1", "mine");
  dir.write("out/other.csv.dpone_stg_old2", "not this target's");
  dir.write("out/o.csv", "target");
  SinkFixture fx;
  auto sink = fx.make(dir.path(), {{"path", "out/o.csv"}});
  auto removed = sink->cleanup_abandoned({});
  EXPECT_EQ(removed, (std::vector<std::string>{"out/o.csv.dpone_stg_old1"}));
  EXPECT_TRUE(fs::exists(dir.path() / "out/o.csv.dpone_stg_run1"));
  EXPECT_TRUE(fs::exists(dir.path() / "out/other.csv.dpone_stg_old2"));
  EXPECT_TRUE(fs::exists(dir.path() / "out/o.csv"));

  dir.write("parts/part-1.csv", "keep");
  dir.write("parts/part-2.csv.dpone_stg_dead", "x");
  auto append_sink = fx.make(dir.path(), {{"path", "parts"}});
  EXPECT_EQ(append_sink->cleanup_abandoned({}),
            (std::vector<std::string>{"parts/part-2.csv.dpone_stg_dead"}));
  EXPECT_TRUE(fs::exists(dir.path() / "parts/part-1.csv"));
}

TEST(FilesSink, FailedStageLeavesNothing) {
  TempDir dir;
  Diagnostics diagnostics;
  json options = {{"path", "o.csv"}};
  FilesSink sink(SinkContext{
      "orders", "run1", options, nullptr, dir.path(), &diagnostics, [](int64_t, int64_t) {
        throw Error(ErrorCode::FailpointTriggered, "failpoint 'during_stage'");
      }});
  expect_error(
      [&] {
        sink.stage(artifact_of({{"1", "a", "1.00"}}), test_schema());
      },
      ErrorCode::FailpointTriggered, "during_stage");
  EXPECT_FALSE(fs::exists(dir.path() / "o.csv.dpone_stg_run1"));
}

TEST(FilesConnector, RoundTripThroughSourceAndSinkKeepsNullsAndEmptyStrings) {
  TempDir dir;
  dir.write("in/a.csv", "id,name,amount\n1,\"\",1.5\n2,,\n3,\"multi\nline\",2\n");
  ConnectorRegistry registry;
  register_files_connector(registry);
  const ConnectorFactory* f = registry.find("files");
  ASSERT_NE(f, nullptr);
  Diagnostics diagnostics;
  auto src = f->make_source(SourceContext{
      "s",
      {{"connector", "files"}, {"path", "in/*.csv"}, {"columns", {{"amount", "decimal(12,2)"}}}},
      nullptr,
      dir.path(),
      &diagnostics});
  Window w = src->plan_window(nullptr);
  Schema schema = src->discover();
  auto sink = f->make_sink(SinkContext{"s",
                                       "r1",
                                       {{"connector", "files"}, {"path", "out/a.csv"}},
                                       nullptr,
                                       dir.path(),
                                       &diagnostics,
                                       nullptr});
  StagedLoad staged = sink->stage(src->extract(w, src->produces().front(), {}), schema);
  sink->promote(staged, request(StrategyMode::FullRefresh));
  EXPECT_EQ(dir.read("out/a.csv"), "id,name,amount\n1,\"\",1.50\n2,,\n3,\"multi\nline\",2.00\n");
}

}  // namespace
}  // namespace dpone
