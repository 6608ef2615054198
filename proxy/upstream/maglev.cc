// Maglev consistent hashing (Eisenbud et al., "Maglev: A Fast and Reliable
// Software Network Load Balancer", NSDI 2016, section 3.4).
//
// Each host gets a permutation of the table's slots from two hashes of its
// key (offset, skip; the table size is prime so every skip generates all
// slots); hosts take turns claiming their next preferred free slot until the
// table is full. Lookups are one array read. Every host owns table_size / N
// slots, give or take one.
#include <vector>

#include "proxy/upstream/candidates.h"

namespace gantry::upstream {
namespace {

uint64_t fnv1a(std::string_view s, uint64_t basis) {
  uint64_t h = basis;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

uint64_t finalise(uint64_t x) {
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

class Maglev final : public LoadBalancer {
 public:
  Maglev(std::span<const std::string> keys, uint64_t seed, uint32_t size) : rng_(seed) {
    if (keys.empty() || size < 2) return;
    const uint64_t m = size;
    std::vector<uint64_t> offset(keys.size()), skip(keys.size()), next(keys.size(), 0);
    for (size_t i = 0; i < keys.size(); ++i) {
      offset[i] = finalise(fnv1a(keys[i], 0xcbf29ce484222325ull)) % m;
      skip[i] = finalise(fnv1a(keys[i], 0x84222325cbf29ce4ull)) % (m - 1) + 1;
    }
    table_.assign(size, kEmpty);
    uint64_t filled = 0;
    while (true) {
      for (size_t i = 0; i < keys.size(); ++i) {
        uint64_t slot = (offset[i] + next[i] * skip[i]) % m;
        while (table_[slot] != kEmpty) {
          ++next[i];
          slot = (offset[i] + next[i] * skip[i]) % m;
        }
        table_[slot] = static_cast<uint32_t>(i);
        ++next[i];
        if (++filled == m) return;
      }
    }
  }

  std::optional<uint32_t> pick(std::span<const HostView> hosts, const PickContext& ctx) override {
    if (hosts.empty()) return std::nullopt;
    internal::Candidates candidates(hosts);
    if (ctx.has_hash && !table_.empty()) {
      const size_t m = table_.size();
      size_t slot = ctx.hash % m;
      for (size_t probe = 0; probe < m; ++probe, slot = slot + 1 == m ? 0 : slot + 1) {
        uint32_t pos = table_[slot];
        // Weights are ignored here: only health (and the span's size) matter.
        if (pos < hosts.size() && (candidates.panic() || hosts[pos].healthy)) {
          return hosts[pos].index;
        }
      }
    }
    // No key (or no host in the table is a candidate): uniform random.
    uint64_t n = 0;
    for (const HostView& h : hosts) n += candidates.panic() || h.healthy;
    uint64_t k = rng_.below(n);
    for (const HostView& h : hosts) {
      if (!(candidates.panic() || h.healthy)) continue;
      if (k-- == 0) return h.index;
    }
    return hosts.back().index;  // unreachable
  }

  static constexpr uint32_t kEmpty = UINT32_MAX;

 private:
  std::vector<uint32_t> table_;  // slot -> position in host_keys
  internal::Prng rng_;
};

}  // namespace

std::unique_ptr<LoadBalancer> make_maglev(std::span<const std::string> host_keys, uint64_t seed,
                                          uint32_t table_size) {
  return std::make_unique<Maglev>(host_keys, seed, table_size);
}

uint64_t hash_key(std::string_view key) { return finalise(fnv1a(key, 0xcbf29ce484222325ull)); }

}  // namespace gantry::upstream
