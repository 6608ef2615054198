// Retry policy and retry budget of an upstream cluster.
//
// RetryPolicy (immutable, per rule): whether a failed try is retried, and the
// backoff before the next try. A try is retried only when the request's body
// is replayable (no body, or fully buffered), the attempts are not used up,
// and the outcome is one the rule lists: a connect failure, a reset before the
// response head arrived, or a listed status (only while nothing has been sent
// downstream). Backoff: exponential with jitter, retry n (1-based) waits a
// uniform time in [cap/2, cap], cap = min(backoff_max, backoff_base x 2^(n-1));
// the randomness is passed in, so tests and workers seed their own PRNG.
//
// RetryBudget (per cluster, shared by workers): over a sliding window of 10
// buckets, retries may be at most `ratio` of the original requests, with a
// floor of `min_retries` per window so a quiet cluster can still retry.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <vector>

#include "proxy/base/result.h"
#include "proxy/snapshot/model.h"

namespace gantry::resilience {

using SteadyTime = std::chrono::steady_clock::time_point;

struct TryOutcome {
  bool connect_failure = false;  // no connection was made
  bool reset = false;            // connection lost before a response head
  int status = 0;                // the response status, 0 when none
};

class RetryPolicy {
 public:
  static Result<RetryPolicy> create(const snapshot::Retry& config);

  // `retries_done`: retries already made (0 after the first try failed).
  bool should_retry(uint32_t retries_done, const TryOutcome& outcome, bool replayable) const;
  // The wait before retry number `retry` (1-based); `random` is 64 random bits.
  std::chrono::milliseconds backoff(uint32_t retry, uint64_t random) const;
  const snapshot::Retry& config() const { return config_; }

 private:
  explicit RetryPolicy(const snapshot::Retry& c) : config_(c) {}
  snapshot::Retry config_;
};

// SplitMix64: a tiny seeded PRNG for backoff jitter (one per worker).
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t next();

 private:
  uint64_t state_;
};

struct RetryBudgetOptions {
  double ratio = 0.2;
  std::chrono::milliseconds window{10000};
  uint32_t min_retries = 3;
};

struct RetryBudgetStats {
  uint64_t window_requests = 0;
  uint64_t window_retries = 0;
  uint64_t denied_total = 0;
};

class RetryBudget {
 public:
  static constexpr int kBuckets = 10;
  explicit RetryBudget(RetryBudgetOptions options = {});

  // Counts one original request (not a retry).
  void record_request(SteadyTime now);
  // True, and counts the retry, when the budget allows one more.
  bool try_acquire_retry(SteadyTime now);
  RetryBudgetStats stats(SteadyTime now);

 private:
  struct Bucket {
    int64_t index = INT64_MIN;
    uint64_t requests = 0;
    uint64_t retries = 0;
  };
  Bucket& bucket(SteadyTime now);  // caller holds mu_
  void totals(SteadyTime now, uint64_t& requests, uint64_t& retries) const;

  const RetryBudgetOptions options_;
  const int64_t bucket_ns_;
  std::mutex mu_;
  std::array<Bucket, kBuckets> buckets_{};
  uint64_t denied_total_ = 0;
};

}  // namespace gantry::resilience
