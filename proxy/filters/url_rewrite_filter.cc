// filters.urlRewrite as a chain filter (header_filters.h).
#include <re2/re2.h>

#include "proxy/filters/header_filters.h"
#include "proxy/filters/request_filters.h"

namespace gantry::filters {

namespace {

// The pattern of a RegexReplace rewrite (the validator compiled it already).
std::unique_ptr<const re2::RE2> compile(const snapshot::PathRewrite& p) {
  if (p.type != snapshot::PathRewriteType::kRegexReplace) return nullptr;
  re2::RE2::Options opts;
  opts.set_log_errors(false);
  auto re = std::make_unique<const re2::RE2>(p.pattern, opts);
  return re->ok() ? std::move(re) : nullptr;
}

}  // namespace

UrlRewriteFilter::UrlRewriteFilter(const snapshot::UrlRewrite& config)
    : config_(config), re_(compile(config.path)) {}

UrlRewriteFilter::~UrlRewriteFilter() = default;

void UrlRewriteFilter::on_upstream_request(exchange::Exchange& ex, exchange::UpstreamRequest& up) const {
  const auto& pr = config_.path;
  if (pr.type == snapshot::PathRewriteType::kReplaceFullPath) up.path.assign(pr.value);
  else if (pr.type == snapshot::PathRewriteType::kReplacePrefixMatch)
    rewrite_prefix(ex.req.path, ex.matched_prefix, pr.value, up.path);
  else if (pr.type == snapshot::PathRewriteType::kRegexReplace && re_) {
    // nginx `rewrite`: when the pattern is found in the path, the whole path
    // becomes the substitution (captures filled in); the query is kept.
    std::string out;
    if (re2::RE2::Extract(ex.req.path, *re_, pr.value, &out)) {
      if (out.empty() || out.front() != '/') out.insert(out.begin(), '/');
      up.path = std::move(out);
    }
  }
  if (config_.hostname) up.host = *config_.hostname;
}

}  // namespace gantry::filters
