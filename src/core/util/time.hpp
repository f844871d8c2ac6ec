// Wall-clock helpers: ISO 8601 UTC timestamps and sortable run ids.
#pragma once

#include <string>

namespace dpone {

// "2026-11-26T08:30:00.123Z"
std::string now_iso8601();
// "20261126T083000.123456Z-3f9a": sorts by start time (to the microsecond).
std::string new_run_id();
// Monotonic seconds since an arbitrary point, for durations.
double monotonic_seconds();
// User + system CPU seconds this process used so far (all threads).
double process_cpu_seconds();

}  // namespace dpone
