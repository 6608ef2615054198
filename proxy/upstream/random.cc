// Weighted random choice among the candidates.
#include "proxy/upstream/candidates.h"

namespace gantry::upstream {
namespace {

class Random final : public LoadBalancer {
 public:
  explicit Random(uint64_t seed) : rng_(seed) {}

  std::optional<uint32_t> pick(std::span<const HostView> hosts, const PickContext&) override {
    if (hosts.empty()) return std::nullopt;
    internal::Candidates candidates(hosts);
    uint64_t total = 0;
    for (const HostView& h : hosts) total += candidates.weight(h);
    uint64_t r = rng_.below(total);
    for (const HostView& h : hosts) {
      uint64_t w = candidates.weight(h);
      if (r < w) return h.index;
      r -= w;
    }
    return hosts.back().index;  // unreachable: r < total
  }

 private:
  internal::Prng rng_;
};

}  // namespace

std::unique_ptr<LoadBalancer> make_random(uint64_t seed) { return std::make_unique<Random>(seed); }

}  // namespace gantry::upstream
