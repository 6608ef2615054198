#include "proxy/resilience/circuit_breaker.h"

#include <algorithm>

namespace gantry::resilience {

const char* to_string(BreakerState s) {
  switch (s) {
    case BreakerState::kClosed:
      return "closed";
    case BreakerState::kOpen:
      return "open";
    case BreakerState::kHalfOpen:
      return "half-open";
  }
  return "unknown";
}

namespace {

int64_t ns_since_epoch(SteadyTime t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

}  // namespace

Result<std::unique_ptr<CircuitBreaker>> CircuitBreaker::create(const snapshot::CircuitBreaker& c) {
  if (!(c.failure_ratio >= 0 && c.failure_ratio <= 1)) {
    return Error{"circuitBreaker: failureRatio must be in [0, 1]"};
  }
  if (c.failure_ratio > 0 && c.window.count() <= 0) {
    return Error{"circuitBreaker: window must be > 0 when failureRatio is set"};
  }
  if (c.open_duration.count() <= 0) return Error{"circuitBreaker: openDuration must be > 0"};
  if (c.half_open_requests == 0) return Error{"circuitBreaker: halfOpenRequests must be >= 1"};
  return std::unique_ptr<CircuitBreaker>(new CircuitBreaker(c));
}

CircuitBreaker::CircuitBreaker(const snapshot::CircuitBreaker& c)
    : config_(c),
      bucket_ns_(std::max<int64_t>(
          1, std::chrono::duration_cast<std::chrono::nanoseconds>(c.window).count() / kBuckets)) {}

void CircuitBreaker::advance(SteadyTime now) {
  if (state_ == BreakerState::kOpen && now >= open_until_) {
    state_ = BreakerState::kHalfOpen;
    ++generation_;
    probes_admitted_ = 0;
    probes_succeeded_ = 0;
  }
}

void CircuitBreaker::trip(SteadyTime now) {
  state_ = BreakerState::kOpen;
  ++generation_;
  ++opened_total_;
  open_until_ = now + config_.open_duration;
  consecutive_failures_ = 0;
  probes_admitted_ = 0;
  probes_succeeded_ = 0;
}

void CircuitBreaker::close() {
  state_ = BreakerState::kClosed;
  ++generation_;
  consecutive_failures_ = 0;
  buckets_.fill(Bucket{});
}

void CircuitBreaker::add_to_window(bool failure, SteadyTime now) {
  const int64_t index = ns_since_epoch(now) / bucket_ns_;
  Bucket& b = buckets_[static_cast<size_t>(((index % kBuckets) + kBuckets) % kBuckets)];
  if (b.index != index) b = Bucket{index, 0, 0};
  ++b.requests;
  if (failure) ++b.failures;
}

void CircuitBreaker::window_totals(SteadyTime now, uint64_t& requests, uint64_t& failures) const {
  const int64_t current = ns_since_epoch(now) / bucket_ns_;
  requests = failures = 0;
  for (const Bucket& b : buckets_) {
    if (b.index != INT64_MIN && b.index <= current && b.index > current - kBuckets) {
      requests += b.requests;
      failures += b.failures;
    }
  }
}

Admission CircuitBreaker::try_admit(SteadyTime now) {
  std::lock_guard lock(mu_);
  advance(now);
  switch (state_) {
    case BreakerState::kClosed:
      return {true, false, generation_};
    case BreakerState::kHalfOpen:
      if (probes_admitted_ < config_.half_open_requests) {
        ++probes_admitted_;
        return {true, true, generation_};
      }
      break;
    case BreakerState::kOpen:
      break;
  }
  ++rejected_total_;
  return {false, false, generation_};
}

void CircuitBreaker::record(const Admission& a, CallResult result, SteadyTime now) {
  if (!a.allowed) return;
  std::lock_guard lock(mu_);
  advance(now);
  if (a.generation != generation_) return;  // admitted before the last transition
  if (state_ == BreakerState::kHalfOpen) {
    switch (result) {
      case CallResult::kCancelled:
        if (probes_admitted_ > 0) --probes_admitted_;  // frees the probe slot
        break;
      case CallResult::kFailure:
        trip(now);
        break;
      case CallResult::kSuccess:
        if (++probes_succeeded_ >= config_.half_open_requests) close();
        break;
    }
    return;
  }
  if (state_ != BreakerState::kClosed || result == CallResult::kCancelled) return;
  const bool failure = result == CallResult::kFailure;
  consecutive_failures_ = failure ? consecutive_failures_ + 1 : 0;
  add_to_window(failure, now);
  if (config_.consecutive_failures > 0 && consecutive_failures_ >= config_.consecutive_failures) {
    trip(now);
    return;
  }
  if (failure && config_.failure_ratio > 0) {
    uint64_t requests = 0, failures = 0;
    window_totals(now, requests, failures);
    if (requests >= config_.min_requests && requests > 0 &&
        static_cast<double>(failures) >= config_.failure_ratio * static_cast<double>(requests)) {
      trip(now);
    }
  }
}

BreakerState CircuitBreaker::state(SteadyTime now) {
  std::lock_guard lock(mu_);
  advance(now);
  return state_;
}

BreakerStats CircuitBreaker::stats(SteadyTime now) {
  std::lock_guard lock(mu_);
  advance(now);
  BreakerStats s;
  s.state = state_;
  s.consecutive_failures = consecutive_failures_;
  window_totals(now, s.window_requests, s.window_failures);
  s.opened_total = opened_total_;
  s.rejected_total = rejected_total_;
  return s;
}

bool ResourceLimit::try_acquire() {
  if (max_ == 0) {
    in_use_.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  uint32_t cur = in_use_.load(std::memory_order_relaxed);
  while (cur < max_) {
    if (in_use_.compare_exchange_weak(cur, cur + 1, std::memory_order_acq_rel,
                                      std::memory_order_relaxed)) {
      return true;
    }
  }
  rejected_.fetch_add(1, std::memory_order_relaxed);
  return false;
}

void ResourceLimit::release() {
  uint32_t cur = in_use_.load(std::memory_order_relaxed);
  while (cur > 0 && !in_use_.compare_exchange_weak(cur, cur - 1, std::memory_order_acq_rel,
                                                   std::memory_order_relaxed)) {
  }
}

}  // namespace gantry::resilience
