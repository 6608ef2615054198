// filters.urlRewrite as a chain filter (header_filters.h).
#include "proxy/filters/header_filters.h"
#include "proxy/filters/request_filters.h"

namespace gantry::filters {

void UrlRewriteFilter::on_upstream_request(exchange::Exchange& ex, exchange::UpstreamRequest& up) const {
  const auto& pr = config_.path;
  if (pr.type == snapshot::PathRewriteType::kReplaceFullPath) up.path.assign(pr.value);
  else if (pr.type == snapshot::PathRewriteType::kReplacePrefixMatch)
    rewrite_prefix(ex.req.path, ex.matched_prefix, pr.value, up.path);
  if (config_.hostname) up.host = *config_.hostname;
}

}  // namespace gantry::filters
