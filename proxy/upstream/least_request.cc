// Least request by the power of two choices: two distinct candidates drawn
// uniformly, the one with fewer active requests per unit of weight wins.
// Drawing two distinct hosts (not with replacement) means an idle host among
// two is always preferred.
#include "proxy/upstream/candidates.h"

namespace gantry::upstream {
namespace {

class LeastRequest final : public LoadBalancer {
 public:
  explicit LeastRequest(uint64_t seed) : rng_(seed) {}

  std::optional<uint32_t> pick(std::span<const HostView> hosts, const PickContext&) override {
    if (hosts.empty()) return std::nullopt;
    internal::Candidates candidates(hosts);
    uint64_t n = 0;
    for (const HostView& h : hosts) n += candidates.weight(h) > 0;
    if (n == 1) return nth(hosts, candidates, 0).index;
    uint64_t a = rng_.below(n);
    uint64_t b = rng_.below(n - 1);
    if (b >= a) ++b;
    const HostView& first = nth(hosts, candidates, a);
    const HostView& second = nth(hosts, candidates, b);
    // (active + 1) / weight, compared without division.
    unsigned long long lhs = (first.active_requests + 1ull) * candidates.weight(second);
    unsigned long long rhs = (second.active_requests + 1ull) * candidates.weight(first);
    return rhs < lhs ? second.index : first.index;
  }

 private:
  static const HostView& nth(std::span<const HostView> hosts,
                             const internal::Candidates& candidates, uint64_t k) {
    for (const HostView& h : hosts) {
      if (candidates.weight(h) == 0) continue;
      if (k-- == 0) return h;
    }
    return hosts.back();  // unreachable: k < number of candidates
  }

  internal::Prng rng_;
};

}  // namespace

std::unique_ptr<LoadBalancer> make_least_request(uint64_t seed) {
  return std::make_unique<LeastRequest>(seed);
}

}  // namespace gantry::upstream
