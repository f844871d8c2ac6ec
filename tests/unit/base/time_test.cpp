// The pinned data clock (DPONE_NOW): the forms it accepts and the ones it refuses.
#include "core/util/time.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "core/errors.hpp"

namespace {

int64_t unix_seconds(const std::string& text) {
  return std::chrono::duration_cast<std::chrono::seconds>(
             dpone::parse_pinned_now(text).time_since_epoch())
      .count();
}

TEST(PinnedNow, DatesAndUtcTimes) {
  EXPECT_EQ(unix_seconds("1970-01-01"), 0);
  EXPECT_EQ(unix_seconds("2026-11-10"), 1794268800);
  EXPECT_EQ(unix_seconds("2026-11-10T00:00:00Z"), 1794268800);
  EXPECT_EQ(unix_seconds("2026-11-10 01:02:03"), 1794268800 + 3723);
  EXPECT_EQ(unix_seconds("2028-02-29T23:59:59z"), 1835481599);
}

TEST(PinnedNow, AnythingElseIsConfigBadValue) {
  for (const char* bad : {"", "tomorrow", "2026-11-10T00:00", "2026-11-10T00:00:00+01:00",
                          "2026-13-01", "2026-11-10T24:00:00Z", "2026-11-10Z", "26-11-10",
                          "2026-11-10T00:00:00.5Z", "1794268800"}) {
    try {
      dpone::parse_pinned_now(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const dpone::Error& e) {
      EXPECT_EQ(e.code(), dpone::ErrorCode::ConfigBadValue) << bad;
      EXPECT_NE(std::string(e.what()).find("DPONE_NOW"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
