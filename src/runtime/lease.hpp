// A run's hold on one stream (docs/reliability.md "Leases"). Taken before anything
// touches staging, renewed by a background thread every ttl/3 while the run works,
// released at the end. A lease whose holder died expires after its ttl and the next
// run takes it over (and cleans up the holder's staging).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "core/state/state_store.hpp"

namespace dpone {

struct LeaseOptions {
  int64_t ttl_s = 60;        // DPONE_LEASE_TTL_S overrides
  int64_t wait_s = 0;        // how long to wait for a held stream (`dpone run --wait`)
  bool bypass = false;       // DPONE_TEST_BYPASS_LEASE=1: tests of the compare-and-set alone
  static LeaseOptions from_env(int64_t wait_s);
};

class StreamLeaseHold {
 public:
  // Takes the lease of `stream` for `run_id`, waiting up to options.wait_s while another
  // run holds it. Throws Error(StreamBusy) naming the holder when it stays held,
  // Error(Interrupted) when a signal arrives while waiting.
  StreamLeaseHold(StateStore& store, const std::string& stream, const std::string& run_id,
                  const LeaseOptions& options);
  ~StreamLeaseHold();  // stops renewing and releases; never throws
  StreamLeaseHold(const StreamLeaseHold&) = delete;
  StreamLeaseHold& operator=(const StreamLeaseHold&) = delete;

  // An expired lease of a dead run that this one replaced, for the run record.
  const std::optional<StreamLease>& taken_over() const { return taken_over_; }
  bool bypassed() const { return bypassed_; }
  double waited_s() const { return waited_s_; }
  // Throws Error(StateConflict) when a renewal found the lease taken by another run
  // (this run was paused past its ttl): such a run must not promote.
  void check_held() const;

 private:
  void renew_loop();

  StateStore& store_;
  std::string stream_, run_id_;
  int64_t ttl_s_;
  bool bypassed_ = false;
  double waited_s_ = 0;
  std::optional<StreamLease> taken_over_;
  std::atomic<bool> lost_{false};
  std::mutex mutex_;
  std::condition_variable stop_cv_;
  bool stop_ = false;
  std::thread renewer_;
};

}  // namespace dpone
