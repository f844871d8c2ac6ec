#include "runtime/lease.hpp"

#include <chrono>
#include <cstdlib>

#include <fmt/format.h>
#include <cerrno>
#include <csignal>
#include <unistd.h>

#include "core/errors.hpp"
#include "core/util/interrupt.hpp"
#include "core/util/time.hpp"

namespace dpone {

namespace {

std::string host_name() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  return buf;
}

}  // namespace

LeaseOptions LeaseOptions::from_env(int64_t wait_s) {
  LeaseOptions o;
  o.wait_s = wait_s;
  if (const char* ttl = std::getenv("DPONE_LEASE_TTL_S")) {
    char* end = nullptr;
    long v = std::strtol(ttl, &end, 10);
    if (end && *end == '\0' && v >= 3) o.ttl_s = v;
  }
  if (const char* b = std::getenv("DPONE_TEST_BYPASS_LEASE")) o.bypass = std::string(b) == "1";
  return o;
}

StreamLeaseHold::StreamLeaseHold(StateStore& store, const std::string& stream, const std::string& run_id,
                                 const LeaseOptions& options)
    : store_(store), stream_(stream), run_id_(run_id), ttl_s_(options.ttl_s) {
  if (options.bypass) {
    bypassed_ = true;
    return;
  }
  StreamLease mine;
  mine.stream = stream;
  mine.run_id = run_id;
  mine.host = host_name();
  mine.pid = static_cast<int64_t>(getpid());
  mine.ttl_s = options.ttl_s;
  const double t0 = monotonic_seconds();
  std::string dead;  // a holder on this host whose process is gone: a crash, not a run
  for (;;) {
    StateStore::LeaseAttempt a = store_.acquire_lease(mine, dead);
    if (!a.acquired && a.held_by && a.held_by->run_id != dead && a.held_by->host == mine.host && a.held_by->pid > 0 &&
        kill(static_cast<pid_t>(a.held_by->pid), 0) != 0 && errno == ESRCH) {
      dead = a.held_by->run_id;
      continue;
    }
    if (a.acquired) {
      taken_over_ = a.taken_over;
      break;
    }
    waited_s_ = monotonic_seconds() - t0;
    if (waited_s_ >= static_cast<double>(options.wait_s)) {
      const StreamLease& h = *a.held_by;
      throw Error(ErrorCode::StreamBusy,
                  fmt::format("stream {} is busy: its lease is held by {}{}", stream, h.describe(),
                              options.wait_s > 0 ? fmt::format(" (waited {} s)", options.wait_s) : ""),
                  fmt::format("another dpone run is loading this stream; wait for it (`dpone run --wait` waits up to "
                              "--wait=SECONDS, default 3600), or, if that process is gone, the lease expires {} s "
                              "after its last renewal and the next run takes over",
                              h.ttl_s));
    }
    // Poll about once a second, awake to interrupts.
    for (int i = 0; i < 10; ++i) {
      check_interrupt("while waiting for the lease of stream " + stream);
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  renewer_ = std::thread([this] { renew_loop(); });
}

StreamLeaseHold::~StreamLeaseHold() {
  if (bypassed_) return;
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  stop_cv_.notify_all();
  if (renewer_.joinable()) renewer_.join();
  store_.release_lease(stream_, run_id_);
}

void StreamLeaseHold::renew_loop() {
  const auto period = std::chrono::milliseconds(ttl_s_ * 1000 / 3);
  std::unique_lock lock(mutex_);
  while (!stop_cv_.wait_for(lock, period, [this] { return stop_; })) {
    lock.unlock();
    try {
      if (!store_.renew_lease(stream_, run_id_)) lost_ = true;
    } catch (...) {
      // A store that cannot be reached for a moment: the next renewal tries again; the
      // promotion's compare-and-set still protects the target if the lease lapses.
    }
    lock.lock();
    if (lost_) return;
  }
}

void StreamLeaseHold::check_held() const {
  if (!lost_) return;
  throw Error(ErrorCode::StateConflict,
              fmt::format("stream {}: this run's lease expired and another run took the stream over (the run was "
                          "paused longer than the lease's {} s ttl); not promoting",
                          stream_, ttl_s_),
              "nothing was promoted by this run; the other run loads the window");
}

}  // namespace dpone
