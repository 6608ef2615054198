// filters.jwt as a chain filter (request_filters.h).
#include "proxy/filters/jwt.h"
#include "proxy/filters/request_filters.h"

namespace gantry::filters {

exchange::Verdict JwtFilter::on_request(exchange::Exchange& ex) const {
  auto auth = ex.header("authorization");
  auto token = auth ? bearer_token(*auth) : std::nullopt;
  if (token) {
    auto v = verifier_->verify(*token, ex.wall_now());
    if (v.ok()) {
      ex.jwt_claims = std::move(v->headers);
      return exchange::Verdict::kContinue;
    }
    ex.reply.headers.emplace_back("www-authenticate", www_authenticate(&v.error()));
    ex.reply.body = "invalid bearer token";
    ex.reply.kind = "jwt_invalid";
  } else {
    ex.reply.headers.emplace_back("www-authenticate", www_authenticate(nullptr));
    ex.reply.body = "bearer token required";
    ex.reply.kind = "jwt_missing";
  }
  ex.reply.status = 401;
  return exchange::Verdict::kRespond;
}

void JwtFilter::on_upstream_request(exchange::Exchange& ex, exchange::UpstreamRequest& up) const {
  for (const auto& [name, value] : ex.jwt_claims) up.headers.set.push_back({name, value});
}

}  // namespace gantry::filters
