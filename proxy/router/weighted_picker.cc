// Smooth weighted round robin, precomputed; see weighted_picker.h.
#include "proxy/router/weighted_picker.h"

#include <algorithm>
#include <numeric>

namespace gantry::router {
namespace {

// SplitMix64's finaliser: a bijective mix, good enough to turn a counter
// into a uniformly distributed number.
uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace

WeightedPicker::WeightedPicker(std::span<const uint32_t> weights) {
  uint64_t g = 0;
  for (uint32_t w : weights) g = std::gcd(g, uint64_t{w});
  if (g == 0) return;  // no weights, or all 0
  uint64_t total = 0;
  for (uint32_t w : weights) total += w / g;

  if (total > kMaxSequence) {
    uint64_t sum = 0;
    for (size_t i = 0; i < weights.size(); ++i) {
      if (weights[i] == 0) continue;
      sum += weights[i] / g;
      cumulative_.push_back(sum);
      cumulative_index_.push_back(static_cast<uint32_t>(i));
    }
    return;
  }

  // nginx's smooth weighted round robin over one period: after `total` steps
  // every current weight is back to 0, so the sequence repeats exactly.
  std::vector<int64_t> current(weights.size(), 0);
  sequence_.reserve(total);
  for (uint64_t step = 0; step < total; ++step) {
    size_t best = weights.size();
    for (size_t i = 0; i < weights.size(); ++i) {
      if (weights[i] == 0) continue;
      current[i] += weights[i] / g;
      if (best == weights.size() || current[i] > current[best]) best = i;
    }
    current[best] -= static_cast<int64_t>(total);
    sequence_.push_back(static_cast<uint32_t>(best));
  }
}

int WeightedPicker::pick() const {
  if (!sequence_.empty()) {
    if (sequence_.size() == 1) return static_cast<int>(sequence_[0]);
    uint64_t n = counter_.fetch_add(1, std::memory_order_relaxed);
    return static_cast<int>(sequence_[n % sequence_.size()]);
  }
  if (cumulative_.empty()) return -1;
  uint64_t n = counter_.fetch_add(1, std::memory_order_relaxed);
  uint64_t r = mix64(n) % cumulative_.back();
  auto it = std::upper_bound(cumulative_.begin(), cumulative_.end(), r);
  return static_cast<int>(cumulative_index_[it - cumulative_.begin()]);
}

}  // namespace gantry::router
