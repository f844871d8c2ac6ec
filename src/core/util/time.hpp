// Wall-clock helpers: ISO 8601 UTC timestamps and sortable run ids.
#pragma once

#include <chrono>
#include <string>

namespace dpone {

// "Now" as the data sees it: what freshness gates compare with and what receipts, run
// records, state and system columns are stamped with. DPONE_NOW pins it (ISO 8601 UTC,
// "2026-11-10T00:00:00Z" or a date "2026-11-10"; docs/manifest-reference.md): backfills
// that must judge freshness as of a past day, and tests that must not depend on the
// calendar. A malformed DPONE_NOW fails with CONFIG_BAD_VALUE. Run ids, leases, timeouts
// and durations always use the real clock.
std::chrono::system_clock::time_point data_now();
// A DPONE_NOW value: "YYYY-MM-DD" or "YYYY-MM-DDTHH:MM:SS[Z]" (T or a space), UTC.
std::chrono::system_clock::time_point parse_pinned_now(const std::string& text);
// data_now() as "2026-11-26T08:30:00.123Z"
std::string now_iso8601();
// "20261126T083000.123456Z-3f9a": sorts by start time (to the microsecond).
std::string new_run_id();
// Monotonic seconds since an arbitrary point, for durations.
double monotonic_seconds();
// User + system CPU seconds this process used so far (all threads).
double process_cpu_seconds();

}  // namespace dpone
