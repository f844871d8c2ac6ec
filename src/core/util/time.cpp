#include "core/util/time.hpp"

#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <optional>
#include <random>

#include <fmt/format.h>

#include "core/errors.hpp"
#include "core/util/civil_date.hpp"

namespace dpone {

std::chrono::system_clock::time_point parse_pinned_now(const std::string& text) {
  unsigned y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0;
  int used = 0;
  bool ok = std::sscanf(text.c_str(), "%4u-%2u-%2u%n", &y, &mo, &d, &used) == 3 &&
            static_cast<size_t>(used) == 10;
  if (ok && text.size() > 10) {
    used = 0;
    const char sep = text[10];
    ok = (sep == 'T' || sep == ' ') &&
         std::sscanf(text.c_str() + 11, "%2u:%2u:%2u%n", &h, &mi, &s, &used) == 3 && used == 8 &&
         (text.size() == 19 || (text.size() == 20 && (text[19] == 'Z' || text[19] == 'z')));
  }
  ok = ok && mo >= 1 && mo <= 12 && d >= 1 && d <= 31 && h < 24 && mi < 60 && s < 60;
  if (!ok)
    throw Error(
        ErrorCode::ConfigBadValue,
        fmt::format("DPONE_NOW '{}' is not a UTC time like 2026-11-10T00:00:00Z or a date like "
                    "2026-11-10",
                    text),
        "set DPONE_NOW to the instant dpone should take as now, or unset it to use the clock");
  const int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
  return std::chrono::system_clock::time_point(std::chrono::seconds(secs));
}

std::chrono::system_clock::time_point data_now() {
  static const std::optional<std::chrono::system_clock::time_point> pinned =
      []() -> std::optional<std::chrono::system_clock::time_point> {
    const char* v = std::getenv("DPONE_NOW");
    if (v == nullptr || *v == '\0') return std::nullopt;
    return parse_pinned_now(v);
  }();
  return pinned ? *pinned : std::chrono::system_clock::now();
}

std::string now_iso8601() {
  auto now = data_now();
  auto secs = std::chrono::system_clock::to_time_t(now);
  auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  return fmt::format("{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}.{:03d}Z", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     static_cast<int>(ms));
}

std::string new_run_id() {
  auto now = std::chrono::system_clock::now();
  auto secs = std::chrono::system_clock::to_time_t(now);
  auto micros =
      std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count() %
      1000000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  std::random_device rd;
  unsigned suffix = rd() & 0xffffu;
  // Microseconds keep ids of runs started within one second in start order.
  return fmt::format("{:04d}{:02d}{:02d}T{:02d}{:02d}{:02d}.{:06d}Z-{:04x}", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     static_cast<int>(micros), suffix);
}

double monotonic_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double process_cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto secs = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return secs(ru.ru_utime) + secs(ru.ru_stime);
}

}  // namespace dpone
