// Shared by the ClickHouse end-to-end tests: the ClickHouse test service of
// scripts/services.sh (DPONE_TEST_CH_URL), statements over HTTP with curl (an independent
// client), a throwaway database per test, and the connection `ch` as DPONE_CONN_CH_*.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <random>
#include <string>

#include "harness.hpp"

namespace e2e::clickhouse {

inline std::string ch_url() {
  const char* url = std::getenv("DPONE_TEST_CH_URL");
  return url ? url : "";
}

#define REQUIRE_CH()                                                                              \
  do {                                                                                            \
    if (::e2e::clickhouse::ch_url().empty()) {                                                    \
      if (std::getenv("CI") || std::getenv("DPONE_REQUIRE_SERVICES"))                             \
        FAIL() << "DPONE_TEST_CH_URL is not set: start the services (scripts/services.sh start)"; \
      GTEST_SKIP() << "no ClickHouse: set DPONE_TEST_CH_URL (scripts/services.sh start)";         \
    }                                                                                             \
  } while (0)

// Runs one statement over HTTP; returns the body (errors come back as text).
inline std::string chq(const std::string& sql) {
  fs::path file = fs::temp_directory_path() / ("dpone_chq_" + std::to_string(getpid()) + ".sql");
  write_file(file, sql);
  std::string out = shell("curl -sS '" + ch_url() + "/' --data-binary @" + file.string() + " 2>&1");
  fs::remove(file);
  return out;
}

// A fresh database, dropped afterwards.
class ChDatabase {
 public:
  ChDatabase() {
    std::random_device rd;
    name_ = "dpone_e2e_" + std::to_string(rd() % 1000000000);
    chq("CREATE DATABASE " + name_);
  }
  ~ChDatabase() { chq("DROP DATABASE IF EXISTS " + name_); }
  ChDatabase(const ChDatabase&) = delete;
  ChDatabase& operator=(const ChDatabase&) = delete;
  const std::string& name() const { return name_; }

 private:
  std::string name_;
};

// The connection `ch` to database `db` of the test service.
inline std::map<std::string, std::string> ch_env(const std::string& db) {
  return {{"DPONE_CONN_CH_TYPE", "clickhouse"},
          {"DPONE_CONN_CH_URL", ch_url()},
          {"DPONE_CONN_CH_DATABASE", db}};
}

}  // namespace e2e::clickhouse
