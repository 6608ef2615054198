#include "proxy/exchange/chain.h"

#include <algorithm>

#include "proxy/filters/connection_limit.h"
#include "proxy/filters/ext_auth.h"
#include "proxy/filters/header_filters.h"
#include "proxy/filters/request_filters.h"
#include "proxy/snapshot/model.h"

namespace gantry::exchange {

namespace {

size_t rank(std::string_view name) {
  auto it = std::find(FilterChain::kOrder.begin(), FilterChain::kOrder.end(), name);
  return static_cast<size_t>(it - FilterChain::kOrder.begin());
}

}  // namespace

void FilterChain::add(std::unique_ptr<Filter> f) {
  size_t r = rank(f->name());
  auto at = std::find_if(owned_.begin(), owned_.end(),
                         [&](const std::unique_ptr<Filter>& g) { return rank(g->name()) > r; });
  owned_.insert(at, std::move(f));
  rebuild_spans();
}

void FilterChain::rebuild_spans() {
  request_.clear();
  upstream_.clear();
  response_.clear();
  for (const auto& f : owned_) {
    uint8_t p = f->phases();
    if (p & kOnRequest) request_.push_back(f.get());
    if (p & kOnUpstreamRequest) upstream_.push_back(f.get());
    if (p & kOnResponse) response_.push_back(f.get());
  }
}

std::vector<std::string_view> FilterChain::names() const {
  std::vector<std::string_view> out;
  for (const auto& f : owned_) out.push_back(f->name());
  return out;
}

FilterChain build_chain(const snapshot::Rule& rule, const ChainParts& parts) {
  const snapshot::Filters& f = rule.filters;
  FilterChain chain;
  if (f.grpc_web) chain.add(std::make_unique<filters::GrpcWebFilter>());
  if (f.https_redirect) chain.add(std::make_unique<filters::HttpsRedirectFilter>(*f.https_redirect));
  if (parts.cors != nullptr) chain.add(std::make_unique<filters::CorsFilter>(*parts.cors));
  if (parts.rate_limiter && f.rate_limit)
    chain.add(std::make_unique<filters::RateLimitFilter>(parts.rate_limiter, *f.rate_limit,
                                                         parts.rate_limit_store, parts.rule_label));
  if (f.connection_limit) {
    std::string_view route(parts.rule_label);  // "namespace/name#rule": the zone is the route's
    chain.add(std::make_unique<filters::ConnectionLimitFilter>(
        *f.connection_limit, parts.connection_counts ? parts.connection_counts : filters::ConnectionCounts::process(),
        route.substr(0, route.find('#'))));
  }
  if (f.source_range) chain.add(std::make_unique<filters::SourceRangeFilter>(*f.source_range));
  if (f.api_key) chain.add(std::make_unique<filters::ApiKeyFilter>(*f.api_key));
  if (f.basic_auth) chain.add(std::make_unique<filters::BasicAuthFilter>(*f.basic_auth));
  if (f.ext_auth) chain.add(std::make_unique<filters::ExtAuthFilter>(*f.ext_auth, parts.ext_auth_transport));
  if (f.hsts) chain.add(std::make_unique<filters::HstsFilter>(*f.hsts));
  if (f.max_request_body_size)
    chain.add(std::make_unique<filters::BodyLimitFilter>(*f.max_request_body_size));
  if (parts.jwt) chain.add(std::make_unique<filters::JwtFilter>(parts.jwt));
  if (f.request_redirect) chain.add(std::make_unique<filters::RedirectFilter>(*f.request_redirect));
  if (f.transform) chain.add(std::make_unique<filters::TransformFilter>(*f.transform));
  if (f.url_rewrite) chain.add(std::make_unique<filters::UrlRewriteFilter>(*f.url_rewrite));
  if (f.request_headers) chain.add(std::make_unique<filters::RequestHeadersFilter>(*f.request_headers));
  if (f.response_headers)
    chain.add(std::make_unique<filters::ResponseHeadersFilter>(*f.response_headers));
  return chain;
}

}  // namespace gantry::exchange
