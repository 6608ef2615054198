// Candidate selection shared by the load balancers: the health (panic mode)
// and weight rules of load_balancer.h in one place, plus the PRNG they draw
// from. Internal to proxy/upstream.
#pragma once

#include <cstdint>
#include <span>

#include "proxy/upstream/load_balancer.h"

namespace gantry::upstream::internal {

// SplitMix64: small, fast, statistically sound for load balancing; seeded, so
// tests are deterministic.
class Prng {
 public:
  explicit Prng(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // In [0, n), n > 0; the modulo bias is below n / 2^64.
  uint64_t below(uint64_t n) { return next() % n; }

 private:
  uint64_t state_;
};

// Which hosts are candidates, and with what weight.
class Candidates {
 public:
  explicit Candidates(std::span<const HostView> hosts) {
    bool any_healthy = false;
    for (const HostView& h : hosts) any_healthy |= h.healthy;
    panic_ = !any_healthy;
    bool any_weight = false;
    for (const HostView& h : hosts) any_weight |= (panic_ || h.healthy) && h.weight > 0;
    unit_weights_ = !any_weight;
  }
  // Weight of a host as a candidate; 0: not a candidate.
  uint64_t weight(const HostView& h) const {
    if (!panic_ && !h.healthy) return 0;
    return unit_weights_ ? 1 : h.weight;
  }
  bool panic() const { return panic_; }

 private:
  bool panic_ = false;
  bool unit_weights_ = false;
};

}  // namespace gantry::upstream::internal
