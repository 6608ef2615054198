// Retry pacing for the API client: jittered exponential backoff and a token
// bucket for writes. Pure: the caller passes the clock and the random seed.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <random>

namespace gantry::controller::kube {

// Delays 0.8 s, 1.6 s, 3.2 s ... capped at 30 s, each scaled by a random
// factor in [0.8, 1.2) (still capped), so replicas that lost the API server
// together do not come back in lockstep. reset() after a success.
class Backoff {
 public:
  using ms = std::chrono::milliseconds;
  explicit Backoff(uint64_t seed, ms initial = ms(800), ms max = ms(30000))
      : initial_(initial), max_(max), next_(initial), rng_(seed) {}

  ms next() {
    std::uniform_real_distribution<double> jitter(0.8, 1.2);
    auto d = ms(static_cast<int64_t>(static_cast<double>(next_.count()) * jitter(rng_)));
    next_ = std::min(max_, next_ * 2);
    return std::min(d, max_);
  }
  void reset() { next_ = initial_; }

 private:
  ms initial_, max_, next_;
  std::mt19937_64 rng_;
};

// A token bucket: `qps` tokens per second, at most `burst` stored. take()
// consumes one token and returns how long the caller must wait before using it
// (zero when a token was available): waits queue up behind each other.
class TokenBucket {
 public:
  using Clock = std::chrono::steady_clock;
  TokenBucket(double qps, double burst, Clock::time_point now)
      : qps_(qps), burst_(burst), tokens_(burst), last_(now) {}

  Clock::duration take(Clock::time_point now) {
    if (now > last_) {
      tokens_ = std::min(burst_, tokens_ + std::chrono::duration<double>(now - last_).count() * qps_);
      last_ = now;
    }
    tokens_ -= 1.0;
    if (tokens_ >= 0) return Clock::duration::zero();
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(-tokens_ / qps_));
  }

 private:
  double qps_, burst_, tokens_;
  Clock::time_point last_;
};

}  // namespace gantry::controller::kube
