// Decisions of the access-control filters (apiKey, basicAuth, ipAllow/ipDeny,
// extAuth), counted per filter for gantry_access_decisions_total. One
// process-wide table of relaxed atomic counters, each on its own cache line:
// a count costs one uncontended-in-the-common-case increment, no lookup.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string_view>

namespace gantry::filters {

enum class AccessFilter : uint8_t { kApiKey, kBasicAuth, kSourceRange, kExtAuth, kCount };
enum class AccessDecision : uint8_t { kAllowed, kDenied, kError, kCount };

// The `filter` label: the chain's filter names (source_range serves ipAllow
// and ipDeny, and ingress-nginx's whitelist/denylist-source-range).
constexpr std::array<std::string_view, 4> kAccessFilterNames = {"api_key", "basic_auth", "source_range",
                                                                "ext_auth"};
constexpr std::array<std::string_view, 3> kAccessDecisionNames = {"allowed", "denied", "error"};

class AccessDecisions {
 public:
  static AccessDecisions& global() {
    static AccessDecisions d;
    return d;
  }
  void count(AccessFilter f, AccessDecision d) {
    cells_[index(f, d)].n.fetch_add(1, std::memory_order_relaxed);
  }
  uint64_t value(AccessFilter f, AccessDecision d) const {
    return cells_[index(f, d)].n.load(std::memory_order_relaxed);
  }

 private:
  static size_t index(AccessFilter f, AccessDecision d) {
    return static_cast<size_t>(f) * static_cast<size_t>(AccessDecision::kCount) + static_cast<size_t>(d);
  }
  struct alignas(64) Cell {
    std::atomic<uint64_t> n{0};
  };
  std::array<Cell, static_cast<size_t>(AccessFilter::kCount) * static_cast<size_t>(AccessDecision::kCount)> cells_{};
};

inline void count_access(AccessFilter f, AccessDecision d) { AccessDecisions::global().count(f, d); }

}  // namespace gantry::filters
