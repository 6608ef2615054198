// Per-rule request policies compiled from a snapshot: CORS, rate limiting and
// JWT verification, ready for the request path.
//
// Built on the control thread with each FULL snapshot, next to the route
// table. Stateful pieces (a rate limiter's buckets) carry over to the new
// Config when the rule keeps its identity (ns/name#index) and its settings,
// so a snapshot swap never hands a client a fresh allowance.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

#include "proxy/base/result.h"
#include "proxy/filters/cors.h"
#include "proxy/filters/jwt.h"
#include "proxy/filters/rate_limiter.h"
#include "proxy/router/route_table.h"

namespace gantry::control {

struct RulePolicies {
  std::optional<filters::CorsPolicy> cors;
  std::shared_ptr<filters::RateLimiter> rate_limiter;
  snapshot::RateLimit rate_limit_config;  // what rate_limiter was built from
  std::shared_ptr<const filters::JwtVerifier> jwt;
};

class PolicySet {
 public:
  // `previous` (may be null) donates rate limiters whose rule and settings are unchanged.
  static Result<std::shared_ptr<const PolicySet>> create(const router::RouteTable& table,
                                                         const PolicySet* previous);
  const RulePolicies* find(const router::CompiledRule* rule) const {
    auto it = by_rule_.find(rule);
    return it == by_rule_.end() ? nullptr : &it->second;
  }

 private:
  std::unordered_map<const router::CompiledRule*, RulePolicies> by_rule_;
  std::unordered_map<std::string, const RulePolicies*> by_label_;
};

}  // namespace gantry::control
