// Everything the CLI and runtime print goes through here, and through the redactor.
// Progress (rows, rows/s, elapsed) is drawn on stderr only when stderr is a TTY.
#pragma once

#include <cstdint>
#include <string>

namespace dpone {

class Console {
 public:
  static Console& get();
  void out(const std::string& line);   // stdout, one line
  void info(const std::string& line);  // stderr
  void warn(const std::string& line);  // stderr, "warning: " prefix
  void error(const std::string& line); // stderr, "error: " prefix
  bool progress_enabled() const { return tty_ && !quiet_; }
  void set_quiet(bool quiet) { quiet_ = quiet; }
  bool quiet() const { return quiet_; }
  // Redraws the progress line if at least 0.2 s passed since the last one.
  void progress(const std::string& stream, const std::string& phase, int64_t rows, double elapsed_s);
  void clear_progress();

 private:
  Console();
  bool tty_ = false;
  bool quiet_ = false;
  bool drawn_ = false;
  double last_draw_ = 0;
};

}  // namespace dpone
