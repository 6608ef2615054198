#include "proxy/control/rule_policies.h"

#include "proxy/net/ext_auth_client.h"

namespace gantry::control {

Result<std::shared_ptr<const PolicySet>> PolicySet::create(
    const router::RouteTable& table, const PolicySet* previous,
    const std::optional<snapshot::RateLimitStore>& store) {
  auto out = std::make_shared<PolicySet>();
  if (store) {
    // The store (and so the workers' connections) carries over while its settings stay.
    if (previous != nullptr && previous->store_ && previous->store_->settings() == *store) {
      out->store_ = previous->store_;
    } else {
      auto s = ratelimit::RedisStore::create(*store);
      if (!s.ok()) return s.error();
      out->store_ = std::move(s).value();
    }
  }
  for (const auto& cr : table.rules()) {
    const auto& f = cr.rule->filters;
    if (!f.cors && !f.rate_limit && !f.jwt && !f.cache && !f.max_request_body_size && !f.request_redirect &&
        !f.url_rewrite && !f.request_headers && !f.response_headers && !f.https_redirect &&
        !f.source_range && !f.hsts && !f.api_key && !f.basic_auth &&
        !f.ext_auth && !f.transform && !f.grpc_web && !f.connection_limit)
      continue;
    RulePolicies p;
    if (f.cors) {
      auto c = filters::CorsPolicy::create(*f.cors);
      if (!c.ok()) return Error{"route " + cr.route_label + " filters.cors: " + c.error().message};
      p.cors = std::move(c).value();
    }
    if (f.rate_limit) {
      // scope global: the limiter is the fallback (the limit / the expected replicas).
      const bool global = f.rate_limit->scope == snapshot::RateLimitScope::kGlobal;
      if (global) {
        if (!out->store_)
          return Error{"route " + cr.route_label + " filters.rateLimit: scope global needs a rateLimitStore"};
        if (auto fits = filters::global_limit_fits(*f.rate_limit); !fits.ok())
          return Error{"route " + cr.route_label + " filters.rateLimit: " + fits.error().message};
        p.rate_limit_store = out->store_;
      }
      p.rate_limit_config =
          global ? filters::fallback_limit(*f.rate_limit, store->expected_replicas) : *f.rate_limit;
      if (previous != nullptr) {
        if (auto it = previous->by_label_.find(cr.route_label);
            it != previous->by_label_.end() && it->second->rate_limiter &&
            it->second->rate_limit_config == p.rate_limit_config)
          p.rate_limiter = it->second->rate_limiter;
      }
      if (!p.rate_limiter) {
        auto rl = filters::RateLimiter::create(p.rate_limit_config);
        if (!rl.ok()) return Error{"route " + cr.route_label + " filters.rateLimit: " + rl.error().message};
        p.rate_limiter = std::move(rl).value();
      }
    }
    if (f.jwt) {
      auto v = filters::JwtVerifier::create(*f.jwt);
      if (!v.ok()) return Error{"route " + cr.route_label + " filters.jwt: " + v.error().message};
      p.jwt = std::move(v).value();
    }
    if (f.cache) {
      p.cache_config = *f.cache;
      if (previous != nullptr) {
        if (auto it = previous->by_label_.find(cr.route_label);
            it != previous->by_label_.end() && it->second->cache &&
            it->second->cache_config == *f.cache)
          p.cache = it->second->cache;
      }
      if (!p.cache) {
        auto c = filters::ResponseCache::create(*f.cache);
        if (!c.ok())
          return Error{"route " + cr.route_label + " filters.cache: " + c.error().message};
        p.cache = std::shared_ptr<filters::ResponseCache>(std::move(c).value());
      }
    }
    // The chain refers to the pieces where they stay: in the map's node.
    RulePolicies& placed = out->by_rule_.emplace(&cr, std::move(p)).first->second;
    exchange::ChainParts parts;
    parts.cors = placed.cors ? &*placed.cors : nullptr;
    parts.rate_limiter = placed.rate_limiter;
    parts.rate_limit_store = placed.rate_limit_store;
    parts.rule_label = cr.route_label;
    parts.jwt = placed.jwt;
    parts.ext_auth_transport = &net::ExtAuthClient::global();
    placed.chain = exchange::build_chain(*cr.rule, parts);
  }
  for (const auto& [rule, p] : out->by_rule_) out->by_label_.emplace(rule->route_label, &p);
  return std::shared_ptr<const PolicySet>(std::move(out));
}

}  // namespace gantry::control
