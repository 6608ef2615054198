#include "proxy/filters/rate_limiter.h"

#include <algorithm>
#include <functional>

namespace gantry::filters {

namespace {

constexpr int64_t kMicrosPerSecond = 1000000;

int64_t to_us(SteadyTime t) {
  return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}

// ceil(us / 1 s), at least 1.
uint64_t ceil_seconds(uint64_t us) {
  return std::max<uint64_t>(1, (us + kMicrosPerSecond - 1) / kMicrosPerSecond);
}

int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

}  // namespace

Result<std::unique_ptr<RateLimiter>> RateLimiter::create(const snapshot::RateLimit& c,
                                                         RateLimiterOptions options) {
  if (c.requests == 0) return Error{"rateLimit: requests must be > 0"};
  if (c.interval.count() <= 0) return Error{"rateLimit: interval must be > 0"};
  if (c.key != "ClientIP" && c.key != "Consumer" && !(c.key.starts_with("Header:") && c.key.size() > 7)) {
    return Error{"rateLimit: key \"" + c.key + "\" must be \"ClientIP\", \"Consumer\" or \"Header:<name>\""};
  }
  // Scaled tokens (tokens x interval in microseconds) must fit in 62 bits.
  const uint64_t interval_us = static_cast<uint64_t>(c.interval.count()) * 1000;
  const uint64_t capacity = c.requests + c.burst;
  if (capacity < c.requests || interval_us > (uint64_t{1} << 50) ||
      capacity > (uint64_t{1} << 62) / interval_us) {
    return Error{"rateLimit: requests + burst is too large for the interval"};
  }
  if (options.shards == 0) options.shards = 1;
  return std::unique_ptr<RateLimiter>(new RateLimiter(c, options));
}

RateLimiter::RateLimiter(const snapshot::RateLimit& c, RateLimiterOptions options)
    : config_(c),
      interval_us_(c.interval.count() * 1000),
      capacity_(c.algorithm == snapshot::RateLimitAlgorithm::kTokenBucket ? c.requests + c.burst
                                                                          : c.requests),
      per_shard_(std::max<size_t>(1, options.max_keys / options.shards)) {
  if (c.key.starts_with("Header:")) key_header_ = c.key.substr(7);
  shards_.reserve(options.shards);
  for (size_t i = 0; i < options.shards; ++i) shards_.push_back(std::make_unique<Shard>());
}

RateLimiter::~RateLimiter() = default;

RateLimiter::Entry& RateLimiter::find_or_add(Shard& s, std::string_view key, int64_t now_us,
                                             bool& fresh) {
  auto it = s.index.find(key);
  if (it != s.index.end()) {
    s.lru.splice(s.lru.begin(), s.lru, it->second);  // most recently used first
    fresh = false;
    return *it->second;
  }
  if (s.index.size() >= per_shard_) {
    s.index.erase(s.lru.back().key);
    s.lru.pop_back();
    ++s.evictions;
  }
  s.lru.emplace_front();
  Entry& e = s.lru.front();
  e.key.assign(key);
  e.at = now_us;
  e.tokens = capacity_ * static_cast<uint64_t>(interval_us_);
  s.index.emplace(e.key, s.lru.begin());
  fresh = true;
  return e;
}

RateLimitDecision RateLimiter::token_bucket(Entry& e, int64_t now_us) const {
  const uint64_t interval = static_cast<uint64_t>(interval_us_);
  const uint64_t full = capacity_ * interval;
  const uint64_t rate = config_.requests;  // scaled tokens per microsecond
  if (now_us > e.at) {
    const uint64_t elapsed = static_cast<uint64_t>(now_us - e.at);
    const uint64_t missing = full - e.tokens;
    e.tokens = elapsed >= (missing + rate - 1) / rate ? full : e.tokens + elapsed * rate;
    e.at = now_us;
  }
  RateLimitDecision d;
  d.limit = capacity_;
  if (e.tokens >= interval) {
    e.tokens -= interval;
    d.allowed = true;
  } else {
    d.retry_after_seconds = ceil_seconds((interval - e.tokens + rate - 1) / rate);
  }
  d.remaining = e.tokens / interval;
  d.reset_seconds = e.tokens == full ? 0 : ceil_seconds((full - e.tokens + rate - 1) / rate);
  return d;
}

RateLimitDecision RateLimiter::sliding_window(Entry& e, int64_t now_us) const {
  const int64_t window = floor_div(now_us, interval_us_);
  if (window == e.at + 1) {
    e.prev = e.curr;
    e.curr = 0;
  } else if (window > e.at + 1) {
    e.prev = e.curr = 0;
  }
  if (window > e.at) e.at = window;
  const uint64_t interval = static_cast<uint64_t>(interval_us_);
  const uint64_t elapsed =
      static_cast<uint64_t>(std::max<int64_t>(0, now_us - e.at * interval_us_));
  const uint64_t left = interval > elapsed ? interval - elapsed : 0;  // of the current window
  const uint64_t quota = config_.requests * interval;
  // Everything in units of (request x microsecond).
  const uint64_t weighted_prev = e.prev * left;
  RateLimitDecision d;
  d.limit = config_.requests;
  d.reset_seconds = ceil_seconds(left);
  if (weighted_prev + (e.curr + 1) * interval <= quota) {
    ++e.curr;
    d.allowed = true;
    d.remaining = (quota - weighted_prev - e.curr * interval) / interval;
    return d;
  }
  uint64_t wait = 0;
  if (e.curr + 1 <= config_.requests) {
    // Later in this window, once the previous window's share has shrunk:
    // prev x (interval - t) <= (requests - curr - 1) x interval.
    const uint64_t room = (config_.requests - e.curr - 1) * interval;
    const uint64_t t = interval - room / e.prev;  // prev > 0 here
    wait = t > elapsed ? t - elapsed : 1;
  } else {
    // In the next window, where this window's count becomes the previous one.
    const uint64_t room = (config_.requests - 1) * interval;
    const uint64_t t = e.curr == 0 ? 0 : interval - std::min(interval, room / e.curr);
    wait = left + t;
  }
  d.retry_after_seconds = ceil_seconds(wait);
  return d;
}

RateLimitDecision RateLimiter::check(std::string_view key, SteadyTime now) {
  const size_t h = std::hash<std::string_view>{}(key);
  Shard& s = *shards_[(h ^ (h >> 17)) % shards_.size()];
  const int64_t now_us = to_us(now);
  std::lock_guard lock(s.mu);
  bool fresh = false;
  Entry& e = find_or_add(s, key, now_us, fresh);
  RateLimitDecision d;
  if (config_.algorithm == snapshot::RateLimitAlgorithm::kTokenBucket) {
    d = token_bucket(e, now_us);
  } else {
    if (fresh) e.at = floor_div(now_us, interval_us_);
    d = sliding_window(e, now_us);
  }
  ++(d.allowed ? s.allowed : s.limited);
  return d;
}

RateLimiterStats RateLimiter::stats() const {
  RateLimiterStats st;
  for (const auto& s : shards_) {
    std::lock_guard lock(s->mu);
    st.keys += s->index.size();
    st.allowed += s->allowed;
    st.limited += s->limited;
    st.evictions += s->evictions;
  }
  return st;
}

}  // namespace gantry::filters
