#include "core/util/interrupt.hpp"

#include <atomic>
#include <csignal>
#include <cstring>
#include <string>

#include <unistd.h>

#include "core/errors.hpp"

namespace dpone {

namespace {

std::atomic<int> g_signal{0};
std::atomic<bool> g_installed{false};

extern "C" void on_interrupt(int sig) {
  int expected = 0;
  if (!g_signal.compare_exchange_strong(expected, sig)) {
    // Second signal: leave now. Only async-signal-safe calls here.
    const char msg[] = "\ndpone: second interrupt, exiting now (the next run recovers)\n";
    ssize_t ignored = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)ignored;
    _exit(128 + sig);
  }
  const char msg[] = "\ndpone: interrupt received, stopping at the next safe point (again to exit now)\n";
  ssize_t ignored = write(STDERR_FILENO, msg, sizeof msg - 1);
  (void)ignored;
}

}  // namespace

void install_interrupt_handlers() {
  if (g_installed.exchange(true)) return;
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_interrupt;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

int interrupt_signal() noexcept { return g_signal.load(std::memory_order_relaxed); }

void check_interrupt(std::string_view where) {
  int sig = interrupt_signal();
  if (sig == 0) return;
  throw Error(ErrorCode::Interrupted,
              std::string("interrupted by ") + (sig == SIGTERM ? "SIGTERM" : sig == SIGINT ? "SIGINT" : "a signal") +
                  " " + std::string(where) + "; stopped at a safe point: staging dropped, target and state unchanged",
              "run the stream again when you are ready: it starts from the same position");
}

int interrupt_exit_code() noexcept {
  int sig = interrupt_signal();
  return sig ? 128 + sig : 0;
}

void set_interrupt_for_testing(int sig) noexcept { g_signal.store(sig); }

}  // namespace dpone
