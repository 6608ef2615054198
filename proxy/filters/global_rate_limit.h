// Global rate limiting (rateLimit.scope global): one count per limit key
// shared by every proxy replica, kept in a store (Redis) that decides
// atomically with a server-side script (global_rate_limit.cc has its text).
//
// This header is the pure part the filter needs: the store's interface (the
// runtime implements it over Redis, proxy/ratelimit/redis_store.h), the store
// key of a limit, and the script's arguments. The script runs the same two
// algorithms as rate_limiter.h, with the same integer arithmetic, on the
// store's clock (Redis TIME), so the decision and the RateLimit-* values do
// not depend on which replica asked nor on the replicas' clocks.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "proxy/base/result.h"
#include "proxy/filters/rate_limiter.h"
#include "proxy/snapshot/model.h"

namespace gantry::filters {

// One decision asked of the store: the key and the limit's parameters
// (the script's KEYS[1] and ARGV).
struct GlobalCheck {
  std::string key;
  bool sliding_window = false;
  uint64_t requests = 0;
  uint64_t interval_us = 0;
  uint64_t capacity = 0;  // token bucket: requests + burst; window: requests
};

// What the script answers for one key of a call, to which the proxy sent
// the n decisions pending on that key as one entry (key, n): how many of them
// it admitted (the first `admitted`, in the order they were asked) and the
// key's state before them, after the token bucket's refill or the window's
// roll, on the store's clock. global_decision() derives each decision's
// numbers from it.
struct GlobalKeyState {
  uint64_t admitted = 0;
  uint64_t tokens = 0;   // token bucket: tokens x interval_us
  uint64_t prev = 0;     // sliding window: the previous window's count
  uint64_t curr = 0;     //   the current window's count
  uint64_t elapsed = 0;  //   microseconds of the current window gone
};

// Whether `s` can be the script's answer for `n` decisions of `check` (the
// counts and tokens within the limit's bounds): global_decision() needs it.
bool global_state_valid(const GlobalCheck& check, const GlobalKeyState& s, uint64_t n);

// The i-th (0-based) of the decisions a call asked for one key: exactly what
// the script would answer deciding them one by one at one instant (the
// first `admitted` allowed, each taking one request of the quota, so
// RateLimit-Remaining counts down; the rest refused with the state the
// admitted ones left). `s` must be global_state_valid.
RateLimitDecision global_decision(const GlobalCheck& check, const GlobalKeyState& s, uint64_t i);

enum class StoreOutcome : uint8_t {
  kDecided,      // the store answered: the decision stands
  kUnavailable,  // down, reconnecting, an error, or not within the budget
};

class RateLimitStore {
 public:
  using Done = std::function<void(StoreOutcome, const RateLimitDecision&)>;
  virtual ~RateLimitStore() = default;
  // Called on a worker thread: asks for one decision. `done` runs exactly
  // once, on the same thread, at most budget() after the call (kUnavailable
  // when the store did not answer in time); possibly before decide returns.
  virtual void decide(GlobalCheck check, Done done) = 0;
  // The fallback (failureMode open) was used / a request was refused
  // (failureMode closed) because the store was unavailable: counted, and
  // logged at most once per few seconds.
  virtual void note_fallback(std::string_view route) = 0;
  virtual void note_refused(std::string_view route) = 0;
  virtual const snapshot::RateLimitStore& settings() const = 0;
};

// The store key of `client_key` for the rule `rule_label` limited by
// `config`: <prefix>{<rule>|<settings digest>|<client key>}. The braces are a
// Redis Cluster hash tag over the whole identity, so every decision of one
// limit lands on one shard; the settings digest makes a changed limit start
// afresh (as a local limiter does). Client keys longer than 128 bytes are
// replaced by their SHA-256 (hex), which bounds the key's size.
std::string global_key(std::string_view prefix, std::string_view rule_label,
                       const snapshot::RateLimit& config, std::string_view client_key);

// The check for `config` (its parameters; the key left empty).
GlobalCheck global_check(const snapshot::RateLimit& config);

// The Redis Cluster hash slot of a key (CRC16-XMODEM of its hash tag, the
// text between the first '{' and the next '}' when not empty, else of the
// whole key; modulo 16384). One script call may only touch keys of one slot
// in a cluster: the store batches decisions of equal slots only.
uint16_t cluster_slot(std::string_view key);

// A limit the script can count exactly (its numbers are doubles: every
// product must stay below 2^53).
Status global_limit_fits(const snapshot::RateLimit& config);

// The local limit used while the store is unavailable (failureMode open):
// requests and burst divided by the expected replica count (at least 1).
snapshot::RateLimit fallback_limit(const snapshot::RateLimit& config, uint32_t expected_replicas);

// The Lua script (EVALSHA / EVAL) and its SHA-1 (lower-case hex).
std::string_view global_script();
const std::string& global_script_sha1();

}  // namespace gantry::filters
