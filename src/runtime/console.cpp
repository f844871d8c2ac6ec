#include "runtime/console.hpp"

#include <unistd.h>

#include <cstdio>
#include <iostream>

#include <fmt/format.h>

#include "core/util/redactor.hpp"
#include "core/util/time.hpp"

namespace dpone {

Console& Console::get() {
  static Console c;
  return c;
}

Console::Console() : tty_(isatty(STDERR_FILENO) == 1) {}

void Console::out(const std::string& line) {
  clear_progress();
  std::cout << redact(line) << "\n" << std::flush;
}

void Console::info(const std::string& line) {
  if (quiet_) return;
  clear_progress();
  std::cerr << redact(line) << "\n";
}

void Console::warn(const std::string& line) {
  clear_progress();
  std::cerr << "warning: " << redact(line) << "\n";
}

void Console::error(const std::string& line) {
  clear_progress();
  std::cerr << "error: " << redact(line) << "\n";
}

void Console::progress(const std::string& stream, const std::string& phase, int64_t rows,
                       double elapsed_s) {
  if (!progress_enabled()) return;
  double now = monotonic_seconds();
  if (drawn_ && now - last_draw_ < 0.2) return;
  last_draw_ = now;
  double rate = elapsed_s > 0 ? rows / elapsed_s : 0;
  std::cerr << "\r\033[K" << redact(fmt::format("  {}  {}  {:L} rows  {:.0f} rows/s  {:.1f}s", stream,
                                                 phase, rows, rate, elapsed_s))
            << std::flush;
  drawn_ = true;
}

void Console::clear_progress() {
  if (!drawn_) return;
  std::cerr << "\r\033[K" << std::flush;
  drawn_ = false;
}

}  // namespace dpone
