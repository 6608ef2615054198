// filters.httpsRedirect as a chain filter (request_filters.h).
#include "proxy/filters/request_filters.h"

namespace gantry::filters {

exchange::Verdict HttpsRedirectFilter::on_request(exchange::Exchange& ex) const {
  if (ex.req.tls) return exchange::Verdict::kContinue;
  // ACME HTTP-01 challenges are answered over plain HTTP by design.
  if (ex.req.path.starts_with("/.well-known/acme-challenge/")) return exchange::Verdict::kContinue;
  std::string location("https://");
  location += ex.req.host;
  if (config_.port && *config_.port != 443) location.append(":").append(std::to_string(*config_.port));
  location += ex.req.path;
  if (!ex.req.query.empty()) location.append("?").append(ex.req.query);
  else if (config_.strip_trailing_slash && location.back() == '/') location.pop_back();
  ex.reply.status = config_.status_code;
  ex.reply.body.assign("redirecting to ").append(location);
  ex.reply.headers.emplace_back("location", std::move(location));
  ex.reply.kind = "redirect";
  return exchange::Verdict::kRespond;
}

}  // namespace gantry::filters
