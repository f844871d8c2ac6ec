// Named failpoints at lifecycle boundaries, for crash tests.
//   DPONE_FAILPOINTS="after_stage=kill,before_state_commit=error"
// kill: the process sends itself SIGKILL (no cleanup, no destructors: a real crash);
// error: throws Error(FailpointTriggered); pause:MS: sleeps MS milliseconds and goes on
// (after creating the file DPONE_FAILPOINT_MARKER names, if set), so a test can signal
// a run or start a second one while it stands at that point. Unset names cost one hash lookup.
// The list of names is in docs/reliability.md; kFailpoints below is the source of truth.
#pragma once

#include <array>
#include <string_view>

namespace dpone {

inline constexpr std::array<std::string_view, 11> kFailpoints = {
    "after_discover",       // schema discovered, window planned; nothing written
    "after_cleanup",        // abandoned staging of earlier runs removed
    "during_stage",         // after the first batch reached staging
    "after_stage",          // staging complete, gates not yet run
    "after_gates",          // gates passed
    "before_promote",       // about to open the promotion transaction
    "inside_promote",       // DDL, data and receipt written, COMMIT not yet issued (a sink
                            // without transactions: the target changed, no receipt yet)
    "after_promote",        // promotion committed, state not yet committed
    "before_state_commit",  // right before the compare-and-set of the new position
    "after_state_commit",   // state committed, run record not yet written
    "before_run_record",    // staging dropped, run record about to be written
};

// Triggers the failpoint `name` if DPONE_FAILPOINTS arms it. Throws Error(Internal)
// for a name not in kFailpoints (a typo in code must not silently never fire).
void failpoint(std::string_view name);

}  // namespace dpone
