// Local rate limiting of one rule: a token bucket or a sliding window per key.
//
// The runtime derives the key (the client IP, or a request header's value)
// and calls check() once per request; the decision carries what the 429 and
// the IETF draft headers need (RateLimit-Limit, RateLimit-Remaining,
// RateLimit-Reset, Retry-After).
//  - Token bucket: capacity requests + burst, refilled at `requests` per
//    `interval` (exact integer arithmetic in microsecond-tokens). Limit is the
//    capacity; Reset is the seconds until the bucket is full again.
//  - Sliding window: the sliding-window-counter approximation (windows
//    aligned to the clock's epoch; estimate = previous window's count x the
//    share of it still inside the sliding window + current count), allowed
//    when the estimate after this request is <= requests. Memory: two counters
//    per key. Limit is `requests`; Reset is the seconds until the current
//    window ends.
// Memory is bounded: at most max_keys keys (max(1, max_keys / shards) per
// shard), least recently used evicted first; an evicted key starts afresh.
// Thread-safe without a global lock: keys are sharded by hash, each shard with
// its own mutex. check() allocates only when it meets a new key.
#pragma once

#include <chrono>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "proxy/base/result.h"
#include "proxy/snapshot/model.h"

namespace gantry::filters {

using SteadyTime = std::chrono::steady_clock::time_point;

struct RateLimitDecision {
  bool allowed = false;
  uint64_t limit = 0;                // RateLimit-Limit
  uint64_t remaining = 0;            // RateLimit-Remaining (after this request)
  uint64_t reset_seconds = 0;        // RateLimit-Reset
  uint64_t retry_after_seconds = 0;  // Retry-After when !allowed (>= 1); 0 when allowed
};

struct RateLimiterOptions {
  size_t max_keys = 100000;
  size_t shards = 32;
};

struct RateLimiterStats {
  uint64_t keys = 0;
  uint64_t allowed = 0;
  uint64_t limited = 0;
  uint64_t evictions = 0;
};

class RateLimiter {
 public:
  static Result<std::unique_ptr<RateLimiter>> create(const snapshot::RateLimit& config,
                                                     RateLimiterOptions options = {});
  ~RateLimiter();

  // Counts one request for `key` (consuming quota only when allowed).
  RateLimitDecision check(std::string_view key, SteadyTime now);
  RateLimiterStats stats() const;

  // The key a request is limited by: "ClientIP" -> client_ip; "Header:<name>"
  // -> that header's value (the caller looks it up), or client_ip when absent.
  const std::string& key_header() const { return key_header_; }  // empty for ClientIP

 private:
  struct Entry {
    std::string key;
    int64_t at = 0;       // token bucket: last refill (us); window: current window index
    uint64_t tokens = 0;  // token bucket: tokens x interval_us
    uint64_t prev = 0;    // window: requests counted in the previous window
    uint64_t curr = 0;    // window: requests counted in the current window
  };
  struct Shard {
    std::mutex mu;
    std::list<Entry> lru;  // front: most recently used
    std::unordered_map<std::string_view, std::list<Entry>::iterator> index;
    uint64_t allowed = 0;
    uint64_t limited = 0;
    uint64_t evictions = 0;
  };

  RateLimiter(const snapshot::RateLimit& config, RateLimiterOptions options);
  Entry& find_or_add(Shard& s, std::string_view key, int64_t now_us, bool& fresh);
  RateLimitDecision token_bucket(Entry& e, int64_t now_us) const;
  RateLimitDecision sliding_window(Entry& e, int64_t now_us) const;

  const snapshot::RateLimit config_;
  const int64_t interval_us_;
  const uint64_t capacity_;
  const size_t per_shard_;
  std::string key_header_;
  std::vector<std::unique_ptr<Shard>> shards_;
};

}  // namespace gantry::filters
