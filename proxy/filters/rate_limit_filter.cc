// filters.rateLimit as a chain filter (request_filters.h).
#include <algorithm>
#include <charconv>

#include "proxy/filters/rate_limiter.h"
#include "proxy/filters/request_filters.h"

namespace gantry::filters {

namespace {

void add_number(exchange::OwnedHeaders& out, std::string_view name, uint64_t value) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, value);
  out.emplace_back(name, std::string_view(buf, static_cast<size_t>(r.ptr - buf)));
}

}  // namespace

RateLimitFilter::RateLimitFilter(std::shared_ptr<RateLimiter> limiter, const snapshot::RateLimit& config)
    : limiter_(std::move(limiter)), status_code_(config.status_code), by_consumer_(config.key == "Consumer") {
  for (const auto& s : config.exempt_sources)
    if (auto c = net::parse_cidr(s); c.ok()) exempt_.push_back(*c);  // validated by the snapshot
}

exchange::Verdict RateLimitFilter::on_request(exchange::Exchange& ex) const {
  if (!exempt_.empty() && net::contains(exempt_, ex.req.client_ip)) return exchange::Verdict::kContinue;
  std::string_view key = ex.req.client_ip;
  std::string consumer_key;
  if (by_consumer_) {
    if (!ex.consumer.empty()) {
      // Apart from every IP key: "consumer:" never starts an address.
      consumer_key.append("consumer:").append(ex.consumer);
      key = consumer_key;
    }
  } else if (!limiter_->key_header().empty()) {
    if (auto v = ex.header(limiter_->key_header()); v && !v->empty()) key = *v;
  }
  RateLimitDecision d = limiter_->check(key, ex.started);
  exchange::OwnedHeaders& out = d.allowed ? ex.response_headers : ex.reply.headers;
  add_number(out, "ratelimit-limit", d.limit);
  add_number(out, "ratelimit-remaining", d.remaining);
  add_number(out, "ratelimit-reset", d.reset_seconds);
  if (d.allowed) return exchange::Verdict::kContinue;
  add_number(ex.reply.headers, "retry-after", std::max<uint64_t>(1, d.retry_after_seconds));
  ex.reply.status = status_code_;
  ex.reply.body = "rate limit exceeded";
  ex.reply.kind = "rate_limited";
  return exchange::Verdict::kRespond;
}

}  // namespace gantry::filters
