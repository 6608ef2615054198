// Load balancers: which host of a cluster serves the next request.
//
// Pure and socket-free: a balancer sees a span of HostView (built by the
// caller from its host set, in a stable order) and returns the `index` field
// of the chosen host. Common rules, for every balancer:
//  - only healthy hosts are candidates; when none is healthy, every host is
//    (panic mode: better to try a host the health checker dislikes than to
//    fail every request);
//  - a candidate of weight 0 is never chosen, unless every candidate has
//    weight 0, in which case all count as weight 1;
//  - an empty span gives nullopt.
// One instance per worker per cluster: balancers keep state (round-robin
// position, PRNG) and are deliberately not thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace gantry::upstream {

struct HostView {
  uint32_t index = 0;  // the caller's id of the host; pick() returns it
  uint32_t weight = 1;
  uint32_t active_requests = 0;
  bool healthy = true;
};

// For consistent hashing: hash of the request's key (header, cookie, source IP).
struct PickContext {
  uint64_t hash = 0;
  bool has_hash = false;
};

class LoadBalancer {
 public:
  virtual ~LoadBalancer() = default;
  // The chosen host's HostView::index, or nullopt when `hosts` is empty.
  virtual std::optional<uint32_t> pick(std::span<const HostView> hosts, const PickContext& ctx) = 0;
};

// Smooth weighted round robin (nginx's algorithm) over the candidates: for
// weights {5,1,1} the picks are a a b a c a a. The state is one current
// weight per position in `hosts`; when the span's size changes the state
// restarts from zero.
std::unique_ptr<LoadBalancer> make_round_robin();

// Power of two choices: two distinct candidates drawn uniformly, the one
// with fewer active requests per unit of weight ((active + 1) / weight) wins,
// the first drawn on a tie.
std::unique_ptr<LoadBalancer> make_least_request(uint64_t seed);

// Weighted random choice among the candidates.
std::unique_ptr<LoadBalancer> make_random(uint64_t seed);

// Consistent hashing over a Maglev lookup table (Eisenbud et al., NSDI'16)
// built from the hosts' identities (e.g. "10.0.0.1:8080"); host_keys[i]
// describes hosts[i] of every later pick(), so rebuild the balancer when the
// host list changes (not when health changes). Weights are ignored. A pick
// with ctx.has_hash takes table[hash % table_size]; when that host is not a
// candidate (unhealthy, or beyond the span) the following slots are probed,
// so only the keys of unavailable hosts move. Without a hash: uniform random.
inline constexpr uint32_t kMaglevTableSize = 65537;  // prime
std::unique_ptr<LoadBalancer> make_maglev(std::span<const std::string> host_keys, uint64_t seed = 0,
                                          uint32_t table_size = kMaglevTableSize);

// A stable 64-bit hash of a key (FNV-1a, then a SplitMix64 finaliser), for
// PickContext::hash. Stable across processes and releases.
uint64_t hash_key(std::string_view key);

}  // namespace gantry::upstream
