// filters.sourceRange as a chain filter (request_filters.h).
#include "proxy/filters/access_decisions.h"
#include "proxy/filters/request_filters.h"

namespace gantry::filters {

namespace {

std::vector<net::Cidr> parse_all(const std::vector<std::string>& list) {
  std::vector<net::Cidr> out;
  for (const auto& s : list)
    if (auto c = net::parse_cidr(s); c.ok()) out.push_back(*c);  // validated by the snapshot
  return out;
}

}  // namespace

SourceRangeFilter::SourceRangeFilter(const snapshot::SourceRange& config)
    : allow_(parse_all(config.allow)), deny_(parse_all(config.deny)) {}

exchange::Verdict SourceRangeFilter::on_request(exchange::Exchange& ex) const {
  bool denied = (!deny_.empty() && net::contains(deny_, ex.req.client_ip)) ||
                (!allow_.empty() && !net::contains(allow_, ex.req.client_ip));
  count_access(AccessFilter::kSourceRange, denied ? AccessDecision::kDenied : AccessDecision::kAllowed);
  if (!denied) return exchange::Verdict::kContinue;
  ex.reply.status = 403;
  ex.reply.body = "client address not allowed";
  ex.reply.kind = "source_denied";
  return exchange::Verdict::kRespond;
}

}  // namespace gantry::filters
