// Circuit breaker and resource limits of one upstream cluster.
//
// CircuitBreaker: closed -> open after `consecutive_failures` failures in a
// row, or when the failure ratio over the sliding `window` reaches
// `failure_ratio` with at least `min_requests` results in the window; open
// rejects every request until `open_duration` has passed, then half-open
// admits at most `half_open_requests` probes; `half_open_requests` probe
// successes close it, one probe failure re-opens it (for a new open_duration).
// Results of requests admitted before the last state change are ignored, so a
// slow request admitted while closed cannot close a half-open breaker.
// consecutive_failures 0 and failure_ratio 0 give a breaker that never opens.
// One instance per cluster, shared by every worker: a small mutex per breaker.
//
// ResourceLimit: a lock-free counter with a ceiling (max connections, max
// pending requests); 0 means unlimited.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>

#include "proxy/base/result.h"
#include "proxy/snapshot/model.h"

namespace gantry::resilience {

using SteadyTime = std::chrono::steady_clock::time_point;

enum class BreakerState : uint8_t { kClosed, kOpen, kHalfOpen };
const char* to_string(BreakerState s);

// What try_admit() gives: whether the request may go, and a token to hand
// back to record() with its result.
struct Admission {
  bool allowed = false;
  bool probe = false;       // admitted as a half-open probe
  uint64_t generation = 0;  // the breaker's state generation at admission
};

enum class CallResult : uint8_t { kSuccess, kFailure, kCancelled };

struct BreakerStats {
  BreakerState state = BreakerState::kClosed;
  uint32_t consecutive_failures = 0;
  uint64_t window_requests = 0;  // results in the sliding window
  uint64_t window_failures = 0;
  uint64_t opened_total = 0;    // closed/half-open -> open transitions
  uint64_t rejected_total = 0;  // requests refused by try_admit()
};

class CircuitBreaker {
 public:
  static constexpr int kBuckets = 10;  // the window is kept as 10 buckets

  // Checks the config (the same rules as snapshot validation).
  static Result<std::unique_ptr<CircuitBreaker>> create(const snapshot::CircuitBreaker& config);

  // Before sending a request to the cluster. A refused request should be
  // answered 503 at once. Every allowed admission must be followed by one
  // record() (kCancelled when the request ended without a verdict).
  Admission try_admit(SteadyTime now);
  // The result of an admitted request: failures are connect failures, resets,
  // timeouts and the 5xx the runtime chooses to count (502, 503, 504).
  void record(const Admission& admission, CallResult result, SteadyTime now);

  BreakerState state(SteadyTime now);
  BreakerStats stats(SteadyTime now);

 private:
  explicit CircuitBreaker(const snapshot::CircuitBreaker& config);
  void advance(SteadyTime now);  // open -> half-open when due; caller holds mu_
  void trip(SteadyTime now);     // -> open; caller holds mu_
  void close();                  // -> closed; caller holds mu_
  void add_to_window(bool failure, SteadyTime now);
  void window_totals(SteadyTime now, uint64_t& requests, uint64_t& failures) const;

  struct Bucket {
    int64_t index = INT64_MIN;  // bucket number since the clock's epoch; INT64_MIN: unused
    uint64_t requests = 0;
    uint64_t failures = 0;
  };

  const snapshot::CircuitBreaker config_;
  const int64_t bucket_ns_;
  std::mutex mu_;
  BreakerState state_ = BreakerState::kClosed;
  uint64_t generation_ = 0;
  uint32_t consecutive_failures_ = 0;
  SteadyTime open_until_{};
  uint32_t probes_admitted_ = 0;
  uint32_t probes_succeeded_ = 0;
  std::array<Bucket, kBuckets> buckets_{};
  uint64_t opened_total_ = 0;
  uint64_t rejected_total_ = 0;
};

// A counter with a ceiling; thread-safe and lock-free.
class ResourceLimit {
 public:
  explicit ResourceLimit(uint32_t max) : max_(max) {}  // 0: unlimited
  bool try_acquire();  // false (and counts a rejection) when at the ceiling
  void release();
  uint32_t in_use() const { return in_use_.load(std::memory_order_relaxed); }
  uint32_t max() const { return max_; }
  uint64_t rejected() const { return rejected_.load(std::memory_order_relaxed); }

 private:
  const uint32_t max_;
  std::atomic<uint32_t> in_use_{0};
  std::atomic<uint64_t> rejected_{0};
};

// The per-cluster limits of a CircuitBreaker config.
struct ClusterLimits {
  explicit ClusterLimits(const snapshot::CircuitBreaker& c)
      : connections(c.max_connections), pending_requests(c.max_pending_requests) {}
  ResourceLimit connections;
  ResourceLimit pending_requests;
};

}  // namespace gantry::resilience
