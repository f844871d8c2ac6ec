// Interrupts (SIGINT, SIGTERM): the CLI installs handlers that only set a flag; the
// runtime polls it at safe points (between phases, between staged batches) and stops
// there with Error(Interrupted): staging is dropped, target and state stay as they
// were. A promotion already begun runs to its end (commit or rollback) before the flag
// is looked at again. A second signal ends the process at once (exit 130 / 143): still
// safe, by the crash guarantees of docs/reliability.md.
#pragma once

#include <string_view>

namespace dpone {

// Installs the SIGINT and SIGTERM handlers (once; later calls do nothing).
void install_interrupt_handlers();
// 0 when no signal arrived, else the signal number of the first one.
int interrupt_signal() noexcept;
// Throws Error(Interrupted) naming `where` if a signal arrived.
void check_interrupt(std::string_view where);
// Exit code for an interrupted run: 128 + signal (130 for SIGINT, 143 for SIGTERM).
int interrupt_exit_code() noexcept;
// For tests: as if `sig` had arrived (0 clears).
void set_interrupt_for_testing(int sig) noexcept;

}  // namespace dpone
