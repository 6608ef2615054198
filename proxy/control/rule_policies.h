// Per-rule request policies compiled from a snapshot: the rule's filter chain
// (exchange/chain.h) and the pieces it uses (CORS, rate limiting, JWT
// verification), and the response cache, ready for the request path.
//
// Built on the control thread with each FULL snapshot, next to the route
// table. Stateful pieces (a rate limiter's buckets, a response cache's store)
// carry over to the new Config when the rule keeps its identity
// (ns/name#index) and its settings, so a snapshot swap never hands a client a
// fresh allowance nor empties a cache; a rule that goes away (or changes its
// settings) drops its piece with the last Config that referenced it.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

#include "proxy/base/result.h"
#include "proxy/exchange/chain.h"
#include "proxy/filters/cors.h"
#include "proxy/filters/jwt.h"
#include "proxy/filters/global_rate_limit.h"
#include "proxy/filters/rate_limiter.h"
#include "proxy/ratelimit/redis_store.h"
#include "proxy/filters/response_cache.h"
#include "proxy/router/route_table.h"

namespace gantry::control {

struct RulePolicies {
  std::optional<filters::CorsPolicy> cors;
  std::shared_ptr<filters::RateLimiter> rate_limiter;  // scope global: the fallback limiter
  snapshot::RateLimit rate_limit_config;  // what rate_limiter was built from
  std::shared_ptr<ratelimit::RedisStore> rate_limit_store;  // scope global
  std::shared_ptr<const filters::JwtVerifier> jwt;
  std::shared_ptr<filters::ResponseCache> cache;
  snapshot::Cache cache_config;  // what cache was built from
  exchange::FilterChain chain;   // built once per snapshot, over the pieces above
};

class PolicySet {
 public:
  // `previous` (may be null) donates rate limiters and caches whose rule and
  // settings are unchanged, and the rate limit store when its settings are.
  static Result<std::shared_ptr<const PolicySet>> create(
      const router::RouteTable& table, const PolicySet* previous,
      const std::optional<snapshot::RateLimitStore>& store = std::nullopt);
  // The store of global rate limits (null: the snapshot has none).
  const std::shared_ptr<ratelimit::RedisStore>& rate_limit_store() const { return store_; }
  const RulePolicies* find(const router::CompiledRule* rule) const {
    auto it = by_rule_.find(rule);
    return it == by_rule_.end() ? nullptr : &it->second;
  }
  // Calls f(route label, cache) for every rule with a response cache.
  template <class F>
  void each_cache(F&& f) const {
    for (const auto& [label, p] : by_label_)
      if (p->cache) f(label, *p->cache);
  }

 private:
  std::unordered_map<const router::CompiledRule*, RulePolicies> by_rule_;
  std::unordered_map<std::string, const RulePolicies*> by_label_;
  std::shared_ptr<ratelimit::RedisStore> store_;
};

}  // namespace gantry::control
