// Declarative pipeline cases: tests/pipelines/<case>/case.yaml lists steps run in a
// scratch copy of the case folder. Expected target contents are files written by hand
// (header line, then one line per row, values comma-joined as stored, NULL as \N).
//
//   steps:
//     - copy: day2            # copy the case's day2/ folder into the work folder
//     - sql: {db: src.db, exec: "UPDATE ..."}
//     - run: [run, manifest.yaml]
//       exit: 0               # expected exit code (default 0)
//       output: [text, ...]   # substrings expected in stdout+stderr
//       env: {NAME: value}    # added to dpone's environment
//     - expect: {db: target.db, table: t, order_by: id, rows: expected/day1.txt}
//     - checksum: {db: target.db, tables: [t, __dpone__loads], save: before}
//     - checksum: {db: target.db, tables: [t, __dpone__loads], same_as: before}
//                             # byte-for-byte: every row (rowid order), every value's
//                             # storage class and bytes; a missing table counts as such
#include <yaml-cpp/yaml.h>

#include "harness.hpp"

namespace {

using namespace e2e;

const fs::path kCases = fs::path(DPONE_SOURCE_DIR) / "tests" / "pipelines";

void exec_sql(const fs::path& db, const std::string& sql) {
  sqlite3* h = nullptr;
  ASSERT_EQ(sqlite3_open(db.c_str(), &h), SQLITE_OK);
  char* err = nullptr;
  int rc = sqlite3_exec(h, sql.c_str(), nullptr, nullptr, &err);
  std::string msg = err ? err : "";
  sqlite3_free(err);
  sqlite3_close(h);
  ASSERT_EQ(rc, SQLITE_OK) << msg << " in " << sql;
}

void copy_into(const fs::path& from, const fs::path& to) {
  fs::copy(from, to, fs::copy_options::recursive | fs::copy_options::overwrite_existing);
}

// Serializes tables exactly (storage class + bytes of every value, rowid order).
std::string table_bytes(const fs::path& db, const std::vector<std::string>& tables) {
  std::string out;
  sqlite3* h = nullptr;
  if (sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    sqlite3_close(h);
    return "<no database " + db.string() + ">";
  }
  for (const auto& t : tables) {
    out += "table " + t + "\n";
    sqlite3_stmt* st = nullptr;
    std::string sql = "SELECT * FROM \"" + t + "\" ORDER BY rowid";
    if (sqlite3_prepare_v2(h, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) {
      out += "<missing>\n";
      sqlite3_finalize(st);
      continue;
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
      for (int i = 0; i < sqlite3_column_count(st); ++i) {
        int type = sqlite3_column_type(st, i);
        const void* p = sqlite3_column_blob(st, i);
        int n = sqlite3_column_bytes(st, i);
        out += std::to_string(type) + ":" + std::to_string(n) + ":";
        if (p) out.append(static_cast<const char*>(p), static_cast<size_t>(n));
        out += "|";
      }
      out += "\n";
    }
    sqlite3_finalize(st);
  }
  sqlite3_close(h);
  return out;
}

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ULL;
  return h;
}

class PipelineCase : public ::testing::TestWithParam<std::string> {};

TEST_P(PipelineCase, Steps) {
  fs::path case_dir = kCases / GetParam();
  YAML::Node spec = YAML::LoadFile((case_dir / "case.yaml").string());
  Scratch s;
  // Start from the case's files, minus the later-day folders that steps copy in.
  for (const auto& e : fs::directory_iterator(case_dir)) {
    std::string name = e.path().filename().string();
    if (name.rfind("day", 0) == 0 && e.is_directory()) continue;
    fs::copy(e.path(), s / name, fs::copy_options::recursive);
  }
  int i = 0;
  std::map<std::string, std::string> saved;  // checksum name -> table bytes
  for (const auto& step : spec["steps"]) {
    SCOPED_TRACE("step " + std::to_string(++i) + " of case " + GetParam());
    if (step["copy"]) {
      copy_into(case_dir / step["copy"].as<std::string>(), s.dir());
    } else if (step["sql"]) {
      exec_sql(s / step["sql"]["db"].as<std::string>(), step["sql"]["exec"].as<std::string>());
    } else if (step["run"]) {
      std::map<std::string, std::string> env;
      if (step["env"]) env = step["env"].as<std::map<std::string, std::string>>();
      Result r = run_dpone(s.dir(), step["run"].as<std::vector<std::string>>(), env);
      int expected_exit = step["exit"] ? step["exit"].as<int>() : 0;
      EXPECT_EQ(r.exit_code, expected_exit) << r.all();
      if (step["output"]) {
        for (const auto& needle : step["output"].as<std::vector<std::string>>()) {
          EXPECT_NE(r.all().find(needle), std::string::npos) << "missing '" << needle << "' in:\n" << r.all();
        }
      }
    } else if (step["expect"]) {
      const auto& e = step["expect"];
      std::string actual = dump_table(s / e["db"].as<std::string>(), e["table"].as<std::string>(),
                                      e["order_by"].as<std::string>());
      EXPECT_EQ(actual, read_file(case_dir / e["rows"].as<std::string>()));
    } else if (step["checksum"]) {
      const auto& c = step["checksum"];
      std::string bytes = table_bytes(s / c["db"].as<std::string>(), c["tables"].as<std::vector<std::string>>());
      if (c["save"]) {
        EXPECT_EQ(bytes.find("<missing>"), std::string::npos) << "a checksummed table does not exist:\n" << bytes;
        saved[c["save"].as<std::string>()] = bytes;
      }
      if (c["same_as"]) {
        const auto name = c["same_as"].as<std::string>();
        ASSERT_TRUE(saved.count(name)) << "no checksum saved as " << name;
        EXPECT_EQ(fnv1a(bytes), fnv1a(saved[name]))
            << "tables changed since checksum '" << name << "':\nbefore:\n" << saved[name] << "after:\n" << bytes;
      }
    } else {
      FAIL() << "unknown step kind";
    }
  }
  EXPECT_GT(i, 0) << "case has no steps";
}

std::vector<std::string> cases() {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(kCases))
    if (fs::exists(e.path() / "case.yaml")) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

INSTANTIATE_TEST_SUITE_P(Cases, PipelineCase, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return info.param; });

}  // namespace
