// Shared by the Kafka end-to-end tests: the Kafka test service of scripts/services.sh
// (dpone_kafka_mock: DPONE_TEST_KAFKA_BOOTSTRAP and its control FIFO
// DPONE_TEST_KAFKA_CONTROL), a shell runner for kcat, and Kafka's Java murmur2 written
// again here so the tests do not trust the connector's copy.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include <fmt/format.h>

#include "core/util/failpoint.hpp"
#include "harness.hpp"

namespace e2e::kafka {

inline std::string env_or_empty(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}
inline std::string bootstrap() {
  return env_or_empty("DPONE_TEST_KAFKA_BOOTSTRAP");
}

#define REQUIRE_KAFKA()                                                                       \
  do {                                                                                        \
    if (::e2e::kafka::bootstrap().empty() ||                                                  \
        ::e2e::kafka::env_or_empty("DPONE_TEST_KAFKA_CONTROL").empty()) {                     \
      if (std::getenv("CI") || std::getenv("DPONE_REQUIRE_SERVICES"))                         \
        FAIL() << "DPONE_TEST_KAFKA_BOOTSTRAP is not set: start the services "                \
                  "(scripts/services.sh start)";                                              \
      GTEST_SKIP() << "no Kafka: set DPONE_TEST_KAFKA_BOOTSTRAP (scripts/services.sh start)"; \
    }                                                                                         \
  } while (0)

// Sends one command to the mock cluster, waits for its acknowledgement and returns the
// ack file's "result <command> => ..." text (empty for commands without a result).
inline std::string control(const std::string& command) {
  const std::string fifo = env_or_empty("DPONE_TEST_KAFKA_CONTROL");
  const std::string ack = fifo + ".ack";
  // Only answers after this point count: the same command may have been sent before.
  const size_t seen = read_file(ack).size();
  {
    std::ofstream out(fifo, std::ios::app);
    out << command << "\n";
  }
  for (int i = 0; i < 300; ++i) {
    std::string acks = read_file(ack);
    acks = acks.size() > seen ? acks.substr(seen) : std::string();
    size_t ok = acks.find("ok " + command + "\n");
    if (ok != std::string::npos) {
      const std::string tag = "result " + command + " => ";
      size_t r = acks.rfind(tag, ok);
      if (r == std::string::npos) return "";
      size_t from = r + tag.size();
      return acks.substr(from, acks.find('\n', from) - from);
    }
    if (acks.find("error " + command) != std::string::npos) {
      ADD_FAILURE() << acks;
      return "";
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ADD_FAILURE() << "the mock cluster did not acknowledge: " << command;
  return "";
}

// A new topic with a random name.
inline std::string new_topic(int partitions) {
  std::random_device rd;
  std::string name = fmt::format("e2e_{:08x}", rd());
  control(fmt::format("topic {} {}", name, partitions));
  return name;
}

// Produces "key|value" lines with kcat to one partition (-Z: an empty value is sent as
// NULL, a tombstone).
inline void kcat_produce_lines(const std::string& topic, int partition, const std::string& lines) {
  fs::path file =
      fs::temp_directory_path() / fmt::format("dpone_kcat_{}_{}.txt", getpid(), partition);
  write_file(file, lines);
  std::string out = shell(fmt::format("kcat -P -Z -b '{}' -t {} -p {} -K'|' -l '{}' 2>&1",
                                      bootstrap(), topic, partition, file.string()));
  fs::remove(file);
  ASSERT_TRUE(out.empty()) << out;
}

struct Event {
  int partition;
  long offset;
  std::string key, value, headers;
};

// Every message of the topic, read by kcat (an independent consumer) to the end, with
// `isolation` read_committed (librdkafka's default) or read_uncommitted.
inline std::vector<Event> kcat_consume(const std::string& topic,
                                       const std::string& isolation = "read_committed") {
  std::string out =
      shell(fmt::format("kcat -C -b '{}' -t {} -X isolation.level={} -o beginning -e -q "
                        "-f '%p\\t%o\\t%k\\t%h\\t%s\\n' 2>&1",
                        bootstrap(), topic, isolation));
  std::vector<Event> events;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> f;
    size_t start = 0;
    for (int i = 0; i < 4; ++i) {
      size_t tab = line.find('\t', start);
      if (tab == std::string::npos) break;
      f.push_back(line.substr(start, tab - start));
      start = tab + 1;
    }
    if (f.size() != 4) {
      ADD_FAILURE() << "unexpected kcat output line: " << line;
      continue;
    }
    events.push_back(Event{std::stoi(f[0]), std::stol(f[1]), f[2], line.substr(start), f[3]});
  }
  return events;
}

// Every named failpoint (core/util/failpoint.hpp), for kill tests.
inline std::vector<std::string> failpoint_names() {
  std::vector<std::string> out;
  for (auto fp : dpone::kFailpoints) out.emplace_back(fp);
  return out;
}

// Kafka's Java Utils.murmur2.
inline int32_t java_murmur2(const std::string& key) {
  const uint32_t m = 0x5bd1e995;
  uint32_t h = 0x9747b28c ^ static_cast<uint32_t>(key.size());
  const auto* d = reinterpret_cast<const unsigned char*>(key.data());
  size_t n4 = key.size() / 4;
  for (size_t i = 0; i < n4; ++i) {
    uint32_t k = d[4 * i] | (d[4 * i + 1] << 8) | (d[4 * i + 2] << 16) |
                 (static_cast<uint32_t>(d[4 * i + 3]) << 24);
    k *= m;
    k ^= k >> 24;
    k *= m;
    h *= m;
    h ^= k;
  }
  size_t t = n4 * 4;
  switch (key.size() % 4) {
    case 3:
      h ^= d[t + 2] << 16;
      [[fallthrough]];
    case 2:
      h ^= d[t + 1] << 8;
      [[fallthrough]];
    case 1:
      h ^= d[t];
      h *= m;
  }
  h ^= h >> 13;
  h *= m;
  h ^= h >> 15;
  return static_cast<int32_t>(h);
}

// The partition the Java client's default partitioner picks for a keyed record.
inline int java_partition(const std::string& key, int partitions) {
  return static_cast<int>((static_cast<uint32_t>(java_murmur2(key)) & 0x7fffffffu) %
                          static_cast<uint32_t>(partitions));
}

}  // namespace e2e::kafka
