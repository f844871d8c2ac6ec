// Helpers for end-to-end tests: run the real `dpone` binary in a scratch folder,
// read SQLite targets back, copy fixtures. Everything a test asserts comes from the
// binary's exit status, output and the files it wrote.
#pragma once

#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace e2e {

namespace fs = std::filesystem;

struct Result {
  int exit_code = -1;  // -1 when killed by a signal
  int signal = 0;
  std::string out, err;
  std::string all() const { return out + err; }
};

inline std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void write_file(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << text;
}

// Runs a shell command; returns its standard output.
inline std::string shell(const std::string& cmd) {
  std::string out;
  if (FILE* p = popen(cmd.c_str(), "r")) {
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    pclose(p);
  }
  return out;
}

// Runs dpone with `args` in `cwd`; `env` entries are added to the environment.
// `env` with the entries of `more` added (or replaced).
inline std::map<std::string, std::string> with(std::map<std::string, std::string> env,
                                               const std::map<std::string, std::string>& more) {
  for (const auto& [k, v] : more) env[k] = v;
  return env;
}

// A dpone started in the background (spawn_dpone); finish_dpone waits for it and reads
// its output. Split from run_dpone so a test can signal the process while it runs.
struct Child {
  pid_t pid = -1;
  fs::path out_path, err_path;
};

inline Child spawn_dpone(const fs::path& cwd, const std::vector<std::string>& args,
                         const std::map<std::string, std::string>& env = {}) {
  static int counter = 0;
  Child c;
  c.out_path = fs::temp_directory_path() / ("dpone_e2e_out_" + std::to_string(getpid()) + "_" + std::to_string(counter));
  c.err_path = fs::temp_directory_path() / ("dpone_e2e_err_" + std::to_string(getpid()) + "_" + std::to_string(counter++));
  c.pid = fork();
  if (c.pid == 0) {
    if (chdir(cwd.c_str()) != 0) _exit(127);
    for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
    if (!freopen(c.out_path.c_str(), "w", stdout) || !freopen(c.err_path.c_str(), "w", stderr)) _exit(127);
    std::vector<char*> argv;
    std::string bin = DPONE_BIN;
    argv.push_back(bin.data());
    std::vector<std::string> copy = args;
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(bin.c_str(), argv.data());
    _exit(127);
  }
  return c;
}

inline Result finish_dpone(const Child& c) {
  int status = 0;
  waitpid(c.pid, &status, 0);
  Result r;
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
  r.out = read_file(c.out_path);
  r.err = read_file(c.err_path);
  fs::remove(c.out_path);
  fs::remove(c.err_path);
  return r;
}

inline Result run_dpone(const fs::path& cwd, const std::vector<std::string>& args,
                    const std::map<std::string, std::string>& env = {}) {
  return finish_dpone(spawn_dpone(cwd, args, env));
}

// A fresh scratch folder per test, removed afterwards unless DPONE_KEEP_TEST_DIRS is set.
class Scratch {
 public:
  Scratch() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = std::string(info->test_suite_name()) + "_" + info->name();
    for (auto& c : name)
      if (!isalnum(static_cast<unsigned char>(c))) c = '_';
    dir_ = fs::temp_directory_path() / ("dpone_e2e_" + std::to_string(getpid())) / name;
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  ~Scratch() {
    if (!std::getenv("DPONE_KEEP_TEST_DIRS")) fs::remove_all(dir_);
  }
  const fs::path& dir() const { return dir_; }
  fs::path operator/(const std::string& rel) const { return dir_ / rel; }

 private:
  fs::path dir_;
};

// The table's rows as CSV-like lines (header first), NULL as \N, ordered by `order_by`.
inline std::string dump_table(const fs::path& db, const std::string& table, const std::string& order_by) {
  sqlite3* h = nullptr;
  if (sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    sqlite3_close(h);
    return "<cannot open " + db.string() + ">";
  }
  std::string sql = "SELECT * FROM \"" + table + "\" ORDER BY " + order_by;
  sqlite3_stmt* st = nullptr;
  std::string out;
  if (sqlite3_prepare_v2(h, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) {
    out = std::string("<") + sqlite3_errmsg(h) + ">";
    sqlite3_close(h);
    return out;
  }
  int n = sqlite3_column_count(st);
  for (int i = 0; i < n; ++i) out += (i ? "," : "") + std::string(sqlite3_column_name(st, i));
  out += "\n";
  while (sqlite3_step(st) == SQLITE_ROW) {
    for (int i = 0; i < n; ++i) {
      if (i) out += ",";
      if (sqlite3_column_type(st, i) == SQLITE_NULL) out += "\\N";
      else out += reinterpret_cast<const char*>(sqlite3_column_text(st, i));
    }
    out += "\n";
  }
  sqlite3_finalize(st);
  sqlite3_close(h);
  return out;
}

inline std::vector<std::string> table_names(const fs::path& db) {
  std::vector<std::string> out;
  sqlite3* h = nullptr;
  if (sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    sqlite3_close(h);
    return out;
  }
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(h, "SELECT name FROM sqlite_master WHERE type='table' ORDER BY name", -1, &st, nullptr);
  while (st && sqlite3_step(st) == SQLITE_ROW) out.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)));
  sqlite3_finalize(st);
  sqlite3_close(h);
  return out;
}

inline nlohmann::json state_of(const fs::path& cwd, const std::string& manifest, const std::string& stream) {
  Result r = run_dpone(cwd, {"state", "show", stream, "-m", manifest, "--format", "json"});
  if (r.exit_code != 0) return nlohmann::json{{"error", r.all()}};
  return nlohmann::json::parse(r.out);
}

}  // namespace e2e
