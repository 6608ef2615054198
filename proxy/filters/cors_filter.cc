// filters.cors as a chain filter (request_filters.h).
#include "proxy/filters/cors.h"
#include "proxy/filters/request_filters.h"

namespace gantry::filters {

exchange::Verdict CorsFilter::on_request(exchange::Exchange& ex) const {
  CorsRequest creq{ex.req.method, ex.header("origin"), ex.header("access-control-request-method"),
                   ex.header("access-control-request-headers")};
  CorsDecision d = policy_.evaluate(creq);
  if (d.action == CorsAction::kPreflight || d.action == CorsAction::kRejectPreflight) {
    for (const auto& h : d.headers()) ex.reply.headers.emplace_back(h.name, h.value);
    if (d.action == CorsAction::kPreflight) {
      ex.reply.status = 204;
      ex.reply.kind = "cors_preflight";
    } else {
      ex.reply.status = 403;
      ex.reply.body = "CORS preflight refused: origin or method not allowed";
      ex.reply.kind = "cors_rejected";
    }
    return exchange::Verdict::kRespond;
  }
  for (const auto& h : d.headers()) ex.response_headers.emplace_back(h.name, h.value);
  return exchange::Verdict::kContinue;
}

}  // namespace gantry::filters
