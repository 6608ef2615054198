// The filter chain of a rule: built once per snapshot (control/rule_policies),
// walked by every request of the rule as spans of filter pointers, one span
// per phase, in the chain's fixed order.
//
// The order is the documentation (kOrder below). It follows what a request
// must pass before it costs anything: CORS preflights are answered before a
// rate limit counts them; the rate limit counts before a body or a token is
// looked at; a redirect is answered only to a client that passed the checks.
#pragma once

#include <array>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/base/result.h"
#include "proxy/exchange/filter.h"

namespace gantry::snapshot {
struct Rule;
}
namespace gantry::filters {
class CorsPolicy;
class RateLimiter;
class RateLimitStore;
class JwtVerifier;
class ExtAuthTransport;
class ConnectionCounts;
}  // namespace gantry::filters

namespace gantry::exchange {

class FilterChain {
 public:
  // Every filter name, in chain order. A filter is placed by its name; adding
  // a filter means adding its file under proxy/filters/, a line in
  // build_chain() and its name here.
  static constexpr std::array<std::string_view, 18> kOrder = {
      "grpc_web",       "https_redirect", "cors",        "rate_limit",      "connection_limit", "source_range",
      "api_key",
      "basic_auth",     "ext_auth",    "consumer_rate_limit",                 "body_limit",
      "jwt",            "redirect",    "transform",       "url_rewrite",      "request_headers",
      "response_headers",
      "hsts"};

  FilterChain() = default;
  FilterChain(FilterChain&&) = default;
  FilterChain& operator=(FilterChain&&) = default;

  // Adds a filter at its place in kOrder (a name not in kOrder is a bug: it goes last).
  void add(std::unique_ptr<Filter> f);

  std::span<const Filter* const> on_request() const { return request_; }
  std::span<const Filter* const> on_upstream_request() const { return upstream_; }
  std::span<const Filter* const> on_response() const { return response_; }
  size_t size() const { return owned_.size(); }
  bool empty() const { return owned_.empty(); }
  // Filter names in chain order (tests, /config_dump).
  std::vector<std::string_view> names() const;

  // Runs the request phase; stops at the first filter that does not continue.
  Verdict run_request(Exchange& ex) const {
    size_t at = 0;
    return run_request(ex, at);
  }
  // The same from filter `at` of the phase; `at` is left on the filter that
  // stopped (for resume_request() after a kPending).
  Verdict run_request(Exchange& ex, size_t& at) const {
    for (; at < request_.size(); ++at) {
      Verdict v = request_[at]->on_request(ex);
      if (v != Verdict::kContinue) return v;
    }
    return Verdict::kContinue;
  }
  // After the wait of the filter at `at` (it returned kPending): its
  // on_resume(), then the filters after it.
  Verdict resume_request(Exchange& ex, size_t& at) const {
    Verdict v = request_[at]->on_resume(ex);
    if (v != Verdict::kContinue) return v;
    ++at;
    return run_request(ex, at);
  }
  std::string_view request_filter_name(size_t at) const { return request_[at]->name(); }
  void run_upstream_request(Exchange& ex, UpstreamRequest& up) const {
    for (const Filter* f : upstream_) f->on_upstream_request(ex, up);
  }
  void run_response(Exchange& ex, const ResponseInfo& resp, HeaderEdits& edits) const {
    for (const Filter* f : response_) f->on_response(ex, resp, edits);
  }

 private:
  void rebuild_spans();
  std::vector<std::unique_ptr<Filter>> owned_;  // in chain order
  std::vector<const Filter*> request_, upstream_, response_;
};

// The stateful and compiled pieces a rule's filters use, built (or carried
// over from the previous snapshot) by control::PolicySet.
struct ChainParts {
  const filters::CorsPolicy* cors = nullptr;
  // scope local: the limiter; scope global: the fallback limiter (failureMode
  // open), the store and the rule's label (the store key names it).
  std::shared_ptr<filters::RateLimiter> rate_limiter;
  std::shared_ptr<filters::RateLimitStore> rate_limit_store;
  std::string rule_label;
  std::shared_ptr<const filters::JwtVerifier> jwt;
  // How extAuth calls its service (the proxy's pooled client); null: every
  // extAuth call fails (fail open / closed as configured).
  filters::ExtAuthTransport* ext_auth_transport = nullptr;
  // connectionLimit's count; null: the proxy's (ConnectionCounts::process()).
  std::shared_ptr<filters::ConnectionCounts> connection_counts;
};

// The chain of `rule` (its filters section), in kOrder. `rule` and the parts
// must outlive the chain (they live in the same Config).
FilterChain build_chain(const snapshot::Rule& rule, const ChainParts& parts);

}  // namespace gantry::exchange
