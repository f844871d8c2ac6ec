#include "core/util/failpoint.hpp"

#include <chrono>
#include <csignal>
#include <cstdio>
#include <thread>
#include <cstdlib>
#include <map>
#include <string>

#include "core/errors.hpp"

namespace dpone {

namespace {

std::map<std::string, std::string, std::less<>> parse_env() {
  std::map<std::string, std::string, std::less<>> out;
  const char* env = std::getenv("DPONE_FAILPOINTS");
  if (!env) return out;
  std::string spec(env);
  size_t start = 0;
  while (start < spec.size()) {
    size_t comma = spec.find(',', start);
    std::string item = spec.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    size_t eq = item.find('=');
    if (!item.empty()) {
      if (eq == std::string::npos) out[item] = "error";
      else out[item.substr(0, eq)] = item.substr(eq + 1);
    }
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

}  // namespace

void failpoint(std::string_view name) {
  bool known = false;
  for (auto n : kFailpoints) known = known || n == name;
  if (!known) throw Error(ErrorCode::Internal, "unknown failpoint '" + std::string(name) + "'");
  static const auto armed = parse_env();
  auto it = armed.find(name);
  if (it == armed.end()) return;
  if (it->second == "kill") {
    std::raise(SIGKILL);
  }
  // pause:MS sleeps and goes on: a test sends a signal or starts a second run while a
  // run stands at this point. A file named by DPONE_FAILPOINT_MARKER is created first,
  // so the test knows the run has arrived.
  if (it->second.rfind("pause:", 0) == 0) {
    if (const char* marker = std::getenv("DPONE_FAILPOINT_MARKER")) {
      if (FILE* f = std::fopen(marker, "w")) {
        std::fputs(std::string(name).c_str(), f);
        std::fclose(f);
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(std::atol(it->second.c_str() + 6)));
    return;
  }
  throw Error(ErrorCode::FailpointTriggered, "failpoint '" + std::string(name) + "' triggered");
}

}  // namespace dpone
