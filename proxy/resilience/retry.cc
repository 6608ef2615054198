#include "proxy/resilience/retry.h"

#include <algorithm>
#include <cmath>

namespace gantry::resilience {

namespace {

int64_t ns_since_epoch(SteadyTime t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

}  // namespace

Result<RetryPolicy> RetryPolicy::create(const snapshot::Retry& c) {
  for (int s : c.on_statuses) {
    if (s < 100 || s > 599) return Error{"retry: status " + std::to_string(s) + " not in 100..599"};
  }
  if (c.backoff_base.count() < 0 || c.backoff_max.count() < 0) {
    return Error{"retry: backoff must not be negative"};
  }
  if (c.backoff_base > c.backoff_max) return Error{"retry: backoffBase must not exceed backoffMax"};
  if (c.per_try_timeout && c.per_try_timeout->count() <= 0) {
    return Error{"retry: perTryTimeout must be > 0"};
  }
  return RetryPolicy(c);
}

bool RetryPolicy::should_retry(uint32_t retries_done, const TryOutcome& o, bool replayable) const {
  if (!replayable || retries_done >= config_.attempts) return false;
  if (o.connect_failure) return config_.on_connect_failure;
  if (o.reset) return config_.on_reset;
  if (o.status == 0) return false;
  return std::find(config_.on_statuses.begin(), config_.on_statuses.end(), o.status) !=
         config_.on_statuses.end();
}

std::chrono::milliseconds RetryPolicy::backoff(uint32_t retry, uint64_t random) const {
  const int64_t base = config_.backoff_base.count();
  const int64_t max = config_.backoff_max.count();
  int64_t cap = base;
  for (uint32_t i = 1; i < retry && cap < max; ++i) cap = cap > max / 2 ? max : cap * 2;
  cap = std::min(cap, max);
  const int64_t lo = cap / 2;
  const uint64_t span = static_cast<uint64_t>(cap - lo) + 1;
  return std::chrono::milliseconds(lo + static_cast<int64_t>(random % span));
}

uint64_t SplitMix64::next() {
  uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

RetryBudget::RetryBudget(RetryBudgetOptions options)
    : options_(options),
      bucket_ns_(std::max<int64_t>(
          1, std::chrono::duration_cast<std::chrono::nanoseconds>(options.window).count() /
                 kBuckets)) {}

RetryBudget::Bucket& RetryBudget::bucket(SteadyTime now) {
  const int64_t index = ns_since_epoch(now) / bucket_ns_;
  Bucket& b = buckets_[static_cast<size_t>(((index % kBuckets) + kBuckets) % kBuckets)];
  if (b.index != index) b = Bucket{index, 0, 0};
  return b;
}

void RetryBudget::totals(SteadyTime now, uint64_t& requests, uint64_t& retries) const {
  const int64_t current = ns_since_epoch(now) / bucket_ns_;
  requests = retries = 0;
  for (const Bucket& b : buckets_) {
    if (b.index != INT64_MIN && b.index <= current && b.index > current - kBuckets) {
      requests += b.requests;
      retries += b.retries;
    }
  }
}

void RetryBudget::record_request(SteadyTime now) {
  std::lock_guard lock(mu_);
  ++bucket(now).requests;
}

bool RetryBudget::try_acquire_retry(SteadyTime now) {
  std::lock_guard lock(mu_);
  uint64_t requests = 0, retries = 0;
  totals(now, requests, retries);
  const auto allowed = std::max<uint64_t>(
      options_.min_retries,
      static_cast<uint64_t>(std::floor(options_.ratio * static_cast<double>(requests) + 1e-9)));
  if (retries + 1 > allowed) {
    ++denied_total_;
    return false;
  }
  ++bucket(now).retries;
  return true;
}

RetryBudgetStats RetryBudget::stats(SteadyTime now) {
  std::lock_guard lock(mu_);
  RetryBudgetStats s;
  totals(now, s.window_requests, s.window_retries);
  s.denied_total = denied_total_;
  return s;
}

}  // namespace gantry::resilience
