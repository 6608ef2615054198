// The filters that edit what is forwarded, without answering
// (exchange/filter.h): URL rewrite and request header modifiers (upstream-
// request phase), response header modifiers (response phase). One class per
// filter, each implemented in its own file (<name>_filter.cc).
#pragma once

#include <memory>
#include <string_view>

#include "proxy/exchange/filter.h"
#include "proxy/snapshot/model.h"

namespace re2 {
class RE2;
}

namespace gantry::filters {

// filters.urlRewrite: the upstream path (full replacement, the matched prefix
// replaced, or nginx's regex `rewrite`) and the upstream Host.
class UrlRewriteFilter final : public exchange::Filter {
 public:
  explicit UrlRewriteFilter(const snapshot::UrlRewrite& config);
  ~UrlRewriteFilter() override;
  std::string_view name() const override { return "url_rewrite"; }
  uint8_t phases() const override { return exchange::kOnUpstreamRequest; }
  void on_upstream_request(exchange::Exchange& ex, exchange::UpstreamRequest& up) const override;

 private:
  const snapshot::UrlRewrite& config_;
  std::unique_ptr<const re2::RE2> re_;  // RegexReplace: the pattern, compiled once per snapshot
};

// filters.requestHeaders: remove, set (replacing the client's) and add fields
// of the upstream request.
class RequestHeadersFilter final : public exchange::Filter {
 public:
  explicit RequestHeadersFilter(const snapshot::HeaderModifier& config) : config_(config) {}
  std::string_view name() const override { return "request_headers"; }
  uint8_t phases() const override { return exchange::kOnUpstreamRequest; }
  void on_upstream_request(exchange::Exchange& ex, exchange::UpstreamRequest& up) const override;

 private:
  const snapshot::HeaderModifier& config_;
};

// filters.responseHeaders: remove, set and add fields of the answer, whether
// it comes from the upstream or from the response cache.
class ResponseHeadersFilter final : public exchange::Filter {
 public:
  explicit ResponseHeadersFilter(const snapshot::HeaderModifier& config) : config_(config) {}
  std::string_view name() const override { return "response_headers"; }
  uint8_t phases() const override { return exchange::kOnResponse; }
  void on_response(exchange::Exchange& ex, const exchange::ResponseInfo& resp,
                   exchange::HeaderEdits& edits) const override;

 private:
  const snapshot::HeaderModifier& config_;
};

// Appends the edits of `m` (snapshot strings) to `edits`.
void add_modifier(const snapshot::HeaderModifier& m, exchange::HeaderEdits& edits);

// A modifier applied after those already in `edits` (a backendRef's, after
// the rule's): a field it removes or sets loses the earlier set and add
// edits of that name (case-insensitively), so the later modifier wins.
void add_modifier_over(const snapshot::HeaderModifier& m, exchange::HeaderEdits& edits);

}  // namespace gantry::filters
