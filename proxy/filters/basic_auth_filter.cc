// filters.basicAuth as a chain filter (request_filters.h).
#include <openssl/crypto.h>

#include "proxy/filters/access_decisions.h"
#include "proxy/filters/basic_auth.h"
#include "proxy/filters/request_filters.h"

namespace gantry::filters {

BasicAuthFilter::BasicAuthFilter(const snapshot::BasicAuth& config)
    : config_(config),
      challenge_("Basic realm=\"" + config.realm + "\", charset=\"UTF-8\""),
      verifier_(std::make_unique<BasicAuthVerifier>(config.users)) {}

BasicAuthFilter::~BasicAuthFilter() = default;

exchange::Verdict BasicAuthFilter::on_request(exchange::Exchange& ex) const {
  auto auth = ex.header("authorization");
  auto creds = auth ? basic_credentials(*auth) : std::nullopt;
  if (creds) {
    auto user = verifier_->verify(creds->first, creds->second);
    OPENSSL_cleanse(creds->second.data(), creds->second.size());
    if (user) {
      ex.consumer = config_.users[*user].name;
      count_access(AccessFilter::kBasicAuth, AccessDecision::kAllowed);
      return exchange::Verdict::kContinue;
    }
    ex.reply.body = "invalid user name or password";
    ex.reply.kind = "basic_auth_invalid";
  } else {
    ex.reply.body = "authentication required";
    ex.reply.kind = "basic_auth_missing";
  }
  count_access(AccessFilter::kBasicAuth, AccessDecision::kDenied);
  ex.reply.status = 401;
  ex.reply.headers.emplace_back("www-authenticate", challenge_);
  return exchange::Verdict::kRespond;
}

void BasicAuthFilter::on_upstream_request(exchange::Exchange& ex, exchange::UpstreamRequest& up) const {
  up.headers.remove.push_back("authorization");
  if (!config_.consumer_header.empty()) up.headers.set.push_back({config_.consumer_header, ex.consumer});
}

}  // namespace gantry::filters
