// WeightedPicker: the lock-free weighted choice among a rule's backendRefs.
//
// Built once (when a RouteTable is compiled) from the refs' weights, then read
// by every worker. The smooth weighted round-robin sequence (nginx's
// algorithm: each step adds every weight to its current value, picks the
// largest, first on ties, and subtracts the total from it) is precomputed
// over one period, after dividing the weights by their gcd; a pick is one
// relaxed atomic increment and an array read. A period longer than
// kMaxSequence picks falls back to a weighted random choice whose random
// number is a hash of the same counter (deterministic, still lock-free).
// Invariants: weight 0 is never picked; pick() returns -1 only when every
// weight is 0 (or there are no weights).
#pragma once

#include <atomic>
#include <cstdint>
#include <span>
#include <vector>

namespace gantry::router {

class WeightedPicker {
 public:
  static constexpr uint64_t kMaxSequence = 10'000;

  WeightedPicker() = default;
  explicit WeightedPicker(std::span<const uint32_t> weights);
  WeightedPicker(const WeightedPicker&) = delete;
  WeightedPicker& operator=(const WeightedPicker&) = delete;

  // Index of the chosen weight, or -1 when all weights are 0. Thread-safe.
  int pick() const;

  // The precomputed smooth sequence (empty when the random fallback is used
  // or nothing can be picked). For tests and /config_dump.
  const std::vector<uint32_t>& sequence() const { return sequence_; }
  bool uses_random_fallback() const { return !cumulative_.empty(); }

 private:
  std::vector<uint32_t> sequence_;          // one period of smooth WRR, indices into weights
  std::vector<uint64_t> cumulative_;        // fallback: running sums over non-zero weights
  std::vector<uint32_t> cumulative_index_;  // fallback: weight index of each running sum
  mutable std::atomic<uint64_t> counter_{0};
};

}  // namespace gantry::router
