// PostgreSQL helpers shared by the e2e tests that use the test service of
// scripts/services.sh (DPONE_TEST_PG_DSN): the DSN or a skip (a failure when services
// are required, as in CI), psql, the DSN as DPONE_CONN_PG_* variables, a scratch schema.
#pragma once

#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <map>
#include <random>
#include <sstream>
#include <string>

#include "harness.hpp"

namespace e2e {

inline std::string pg_dsn() {
  const char* dsn = std::getenv("DPONE_TEST_PG_DSN");
  return dsn ? dsn : "";
}

#define REQUIRE_PG()                                                                              \
  do {                                                                                            \
    if (e2e::pg_dsn().empty()) {                                                                  \
      if (std::getenv("CI") || std::getenv("DPONE_REQUIRE_SERVICES"))                             \
        FAIL() << "DPONE_TEST_PG_DSN is not set: start the services (scripts/services.sh start)"; \
      GTEST_SKIP() << "no PostgreSQL: set DPONE_TEST_PG_DSN (scripts/services.sh start)";         \
    }                                                                                             \
  } while (0)

// Runs SQL through psql; returns unaligned, comma-separated output, NULL as \N.
inline std::string psql(const std::string& sql) {
  static int counter = 0;
  fs::path file = fs::temp_directory_path() /
                  ("dpone_psql_" + std::to_string(getpid()) + "_" + std::to_string(counter++) + ".sql");
  write_file(file, sql);
  std::string cmd = "psql '" + pg_dsn() + "' -X -q -v ON_ERROR_STOP=1 -A -F, -P null='\\N' -t -f " +
                    file.string() + " 2>&1";
  std::string out = shell(cmd);
  fs::remove(file);
  return out;
}

// The DSN "host=.. port=.. user=.. dbname=.." as DPONE_CONN_PG_* variables (connection
// id `pg`), plus `more`.
inline std::map<std::string, std::string> pg_env(std::map<std::string, std::string> more = {}) {
  std::map<std::string, std::string> env{{"DPONE_CONN_PG_TYPE", "postgres"}};
  std::istringstream in(pg_dsn());
  std::string kv;
  while (in >> kv) {
    auto eq = kv.find('=');
    if (eq == std::string::npos) continue;
    std::string k = kv.substr(0, eq);
    for (auto& c : k) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    env["DPONE_CONN_PG_" + k] = kv.substr(eq + 1);
  }
  for (const auto& [k, v] : more) env[k] = v;
  return env;
}

// A fresh schema per test, dropped afterwards.
class PgSchema {
 public:
  explicit PgSchema(const std::string& prefix = "dpone_e2e_") {
    std::random_device rd;
    name_ = prefix + std::to_string(rd() % 1000000000);
    psql("CREATE SCHEMA " + name_ + ";");
  }
  ~PgSchema() { psql("DROP SCHEMA IF EXISTS " + name_ + " CASCADE;"); }
  PgSchema(const PgSchema&) = delete;
  PgSchema& operator=(const PgSchema&) = delete;
  const std::string& name() const { return name_; }

 private:
  std::string name_;
};

}  // namespace e2e
