// Warnings a connector raises while it works (unknown vendor types landing as text,
// unused connection fields, ...). The runtime copies them into the run record and
// prints them; they pass through the redactor like everything else.
#pragma once

#include <string>
#include <vector>

namespace dpone {

class Diagnostics {
 public:
  void warn(std::string message) { warnings_.push_back(std::move(message)); }
  const std::vector<std::string>& warnings() const { return warnings_; }

 private:
  std::vector<std::string> warnings_;
};

}  // namespace dpone
