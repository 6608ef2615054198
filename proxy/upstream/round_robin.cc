// Smooth weighted round robin (nginx's algorithm): each pick adds every
// candidate's weight to its current value, takes the largest (first on ties)
// and subtracts the candidates' total from it. Over one period each host is
// chosen exactly weight times, interleaved rather than in bursts.
#include <vector>

#include "proxy/upstream/candidates.h"

namespace gantry::upstream {
namespace {

class RoundRobin final : public LoadBalancer {
 public:
  std::optional<uint32_t> pick(std::span<const HostView> hosts, const PickContext&) override {
    if (hosts.empty()) return std::nullopt;
    if (current_.size() != hosts.size()) current_.assign(hosts.size(), 0);
    internal::Candidates candidates(hosts);
    int64_t total = 0;
    size_t best = hosts.size();
    for (size_t i = 0; i < hosts.size(); ++i) {
      int64_t w = static_cast<int64_t>(candidates.weight(hosts[i]));
      if (w == 0) continue;
      current_[i] += w;
      total += w;
      if (best == hosts.size() || current_[i] > current_[best]) best = i;
    }
    current_[best] -= total;
    return hosts[best].index;
  }

 private:
  std::vector<int64_t> current_;  // one current weight per position in `hosts`
};

}  // namespace

std::unique_ptr<LoadBalancer> make_round_robin() { return std::make_unique<RoundRobin>(); }

}  // namespace gantry::upstream
