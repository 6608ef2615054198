// filters.rateLimit as a chain filter (request_filters.h).
#include <algorithm>
#include <charconv>

#include "proxy/filters/global_rate_limit.h"
#include "proxy/filters/rate_limiter.h"
#include "proxy/filters/request_filters.h"

namespace gantry::filters {

namespace {

void add_number(exchange::OwnedHeaders& out, std::string_view name, uint64_t value) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, value);
  out.emplace_back(name, std::string_view(buf, static_cast<size_t>(r.ptr - buf)));
}

// The decision as the client sees it: RateLimit-* on every answer, the
// refusal with Retry-After.
exchange::Verdict apply(exchange::Exchange& ex, const RateLimitDecision& d, int status_code) {
  exchange::OwnedHeaders& out = d.allowed ? ex.response_headers : ex.reply.headers;
  add_number(out, "ratelimit-limit", d.limit);
  add_number(out, "ratelimit-remaining", d.remaining);
  add_number(out, "ratelimit-reset", d.reset_seconds);
  if (d.allowed) return exchange::Verdict::kContinue;
  add_number(ex.reply.headers, "retry-after", std::max<uint64_t>(1, d.retry_after_seconds));
  ex.reply.status = status_code;
  ex.reply.body = "rate limit exceeded";
  ex.reply.kind = "rate_limited";
  return exchange::Verdict::kRespond;
}

// The wait for the store's decision (exchange.h, PendingOp). The result goes
// into the exchange's shared slot, which outlives a wait the driver gave up.
class GlobalDecisionOp final : public exchange::PendingOp {
 public:
  GlobalDecisionOp(std::shared_ptr<RateLimitStore> store, GlobalCheck check,
                   std::shared_ptr<exchange::GlobalRateLimitResult> result)
      : store_(std::move(store)), check_(std::move(check)), result_(std::move(result)) {}

  void start(std::function<void()> done) override {
    store_->decide(std::move(check_), [result = result_, done = std::move(done)](
                                          StoreOutcome outcome, const RateLimitDecision& d) {
      if (outcome == StoreOutcome::kDecided) {
        result->outcome = exchange::GlobalRateLimitResult::kDecided;
        result->allowed = d.allowed;
        result->limit = d.limit;
        result->remaining = d.remaining;
        result->reset_seconds = d.reset_seconds;
        result->retry_after_seconds = d.retry_after_seconds;
      } else {
        result->outcome = exchange::GlobalRateLimitResult::kUnavailable;
      }
      done();
    });
  }

 private:
  std::shared_ptr<RateLimitStore> store_;
  GlobalCheck check_;
  std::shared_ptr<exchange::GlobalRateLimitResult> result_;
};

}  // namespace

RateLimitFilter::RateLimitFilter(std::shared_ptr<RateLimiter> limiter, const snapshot::RateLimit& config,
                                 std::shared_ptr<RateLimitStore> store, std::string rule_label)
    : limiter_(std::move(limiter)),
      status_code_(config.status_code),
      by_consumer_(config.key == "Consumer"),
      store_(config.scope == snapshot::RateLimitScope::kGlobal ? std::move(store) : nullptr),
      config_(config),
      rule_label_(std::move(rule_label)),
      fail_closed_(config.failure_mode == snapshot::RateLimitFailureMode::kClosed) {
  for (const auto& s : config.exempt_sources)
    if (auto c = net::parse_cidr(s); c.ok()) exempt_.push_back(*c);  // validated by the snapshot
}

RateLimitFilter::~RateLimitFilter() = default;

std::string_view RateLimitFilter::key_of(const exchange::Exchange& ex, std::string& scratch) const {
  std::string_view key = ex.req.client_ip;
  if (by_consumer_) {
    if (!ex.consumer.empty()) {
      // Apart from every IP key: "consumer:" never starts an address.
      scratch.append("consumer:").append(ex.consumer);
      key = scratch;
    }
  } else if (!limiter_->key_header().empty()) {
    if (auto v = ex.header(limiter_->key_header()); v && !v->empty()) key = *v;
  }
  return key;
}

exchange::Verdict RateLimitFilter::local(exchange::Exchange& ex, std::string_view key) const {
  return apply(ex, limiter_->check(key, ex.started), status_code_);
}

exchange::Verdict RateLimitFilter::on_request(exchange::Exchange& ex) const {
  if (!exempt_.empty() && net::contains(exempt_, ex.req.client_ip)) return exchange::Verdict::kContinue;
  std::string scratch;
  std::string_view key = key_of(ex, scratch);
  if (!store_) return local(ex, key);
  GlobalCheck check = global_check(config_);
  check.key = global_key(store_->settings().key_prefix, rule_label_, config_, key);
  ex.global_rate_limit = std::make_shared<exchange::GlobalRateLimitResult>();
  ex.pending = std::make_unique<GlobalDecisionOp>(store_, std::move(check), ex.global_rate_limit);
  return exchange::Verdict::kPending;
}

exchange::Verdict RateLimitFilter::on_resume(exchange::Exchange& ex) const {
  std::shared_ptr<exchange::GlobalRateLimitResult> r = std::move(ex.global_rate_limit);
  if (r && r->outcome == exchange::GlobalRateLimitResult::kDecided) {
    RateLimitDecision d;
    d.allowed = r->allowed;
    d.limit = r->limit;
    d.remaining = r->remaining;
    d.reset_seconds = r->reset_seconds;
    d.retry_after_seconds = r->retry_after_seconds;
    return apply(ex, d, status_code_);
  }
  // The store could not decide within its budget.
  if (fail_closed_) {
    store_->note_refused(rule_label_);
    ex.reply.status = 503;
    ex.reply.body = "rate limit store unavailable";
    ex.reply.kind = "rate_limit_store_unavailable";
    ex.reply.gateway_reason = "ratelimit-store-unavailable";
    return exchange::Verdict::kRespond;
  }
  store_->note_fallback(rule_label_);
  std::string scratch;
  return local(ex, key_of(ex, scratch));
}

}  // namespace gantry::filters
