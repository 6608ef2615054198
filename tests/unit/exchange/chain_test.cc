// The chain order, tested once: a rule with every filter gets them in
// FilterChain::kOrder, each phase's span keeps that order, and an answer in
// the request phase stops the filters after it.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "proxy/exchange/chain.h"
#include "proxy/filters/cors.h"
#include "proxy/filters/jwt.h"
#include "proxy/filters/rate_limiter.h"
#include "proxy/snapshot/model.h"
#include "tests/unit/exchange/fake_exchange.h"

namespace gantry::exchange {
namespace {

using std::chrono::milliseconds;

std::vector<std::string_view> names(std::span<const Filter* const> s) {
  std::vector<std::string_view> out;
  for (const Filter* f : s) out.push_back(f->name());
  return out;
}

struct EveryFilter {
  snapshot::Rule rule;
  std::optional<filters::CorsPolicy> cors;
  ChainParts parts;

  EveryFilter() {
    auto& f = rule.filters;
    snapshot::Cors c;
    c.allow_origins = {"*"};
    f.cors = c;
    snapshot::RateLimit r;
    r.requests = 1;
    r.interval = milliseconds(60000);
    f.rate_limit = r;
    f.max_request_body_size = 100;
    snapshot::Jwt j;
    j.algorithms = {"HS256"};
    j.hmac_secret = "a-test-hmac-secret-of-32-bytes!!";
    f.jwt = j;
    f.request_redirect = snapshot::RequestRedirect{};
    f.url_rewrite = snapshot::UrlRewrite{};
    f.request_headers = snapshot::HeaderModifier{};
    f.response_headers = snapshot::HeaderModifier{};
    f.https_redirect = snapshot::HttpsRedirect{};
    f.source_range = snapshot::SourceRange{{"0.0.0.0/0"}, {}};
    f.hsts = snapshot::Hsts{};
    f.api_key = snapshot::ApiKey{"x-api-key", "", "", 401, {}};
    f.basic_auth = snapshot::BasicAuth{};
    f.ext_auth = snapshot::ExtAuth{};
    f.transform = snapshot::Transform{};
    f.grpc_web = snapshot::GrpcWeb{};
    f.connection_limit = snapshot::ConnectionLimit{1, 503, {}, ""};
    cors = std::move(filters::CorsPolicy::create(*f.cors)).value();
    parts.cors = &*cors;
    parts.rate_limiter = std::move(filters::RateLimiter::create(*f.rate_limit)).value();
    parts.jwt = std::move(filters::JwtVerifier::create(*f.jwt)).value();
  }
};

TEST(FilterChain, EveryFilterInTheDocumentedOrder) {
  EveryFilter e;
  FilterChain chain = build_chain(e.rule, e.parts);
  std::vector<std::string_view> want(FilterChain::kOrder.begin(), FilterChain::kOrder.end());
  // One rate limit per rule: keyed by ClientIP here (consumer_rate_limit is its place with key Consumer).
  std::erase(want, std::string_view("consumer_rate_limit"));
  EXPECT_EQ(chain.names(), want);
  EXPECT_EQ(names(chain.on_request()),
            (std::vector<std::string_view>{"grpc_web", "https_redirect", "cors", "rate_limit", "connection_limit",
                                            "source_range", "api_key", "basic_auth", "ext_auth", "body_limit", "jwt",
                                            "redirect", "transform"}));
  EXPECT_EQ(names(chain.on_upstream_request()),
            (std::vector<std::string_view>{"grpc_web", "api_key", "basic_auth", "ext_auth", "jwt", "transform",
                                            "url_rewrite", "request_headers"}));
  EXPECT_EQ(names(chain.on_response()), (std::vector<std::string_view>{"grpc_web", "response_headers", "hsts"}));
}

TEST(FilterChain, AConsumerRateLimitRunsAfterAuthentication) {
  EveryFilter e;
  e.rule.filters.rate_limit->key = "Consumer";
  e.parts.rate_limiter = std::move(filters::RateLimiter::create(*e.rule.filters.rate_limit)).value();
  FilterChain chain = build_chain(e.rule, e.parts);
  EXPECT_EQ(names(chain.on_request()),
            (std::vector<std::string_view>{"grpc_web", "https_redirect", "cors", "connection_limit", "source_range",
                                            "api_key", "basic_auth", "ext_auth", "consumer_rate_limit", "body_limit",
                                            "jwt", "redirect", "transform"}));
}

TEST(FilterChain, NoFiltersNoChain) {
  snapshot::Rule rule;
  FilterChain chain = build_chain(rule, {});
  EXPECT_TRUE(chain.empty());
  EXPECT_TRUE(chain.on_request().empty());
}

// A filter that records that it ran.
class Probe final : public Filter {
 public:
  Probe(std::string_view name, std::vector<std::string>& log) : name_(name), log_(log) {}
  std::string_view name() const override { return name_; }
  uint8_t phases() const override { return kOnRequest; }
  Verdict on_request(Exchange&) const override {
    log_.emplace_back(name_);
    return Verdict::kContinue;
  }

 private:
  std::string_view name_;
  std::vector<std::string>& log_;
};

TEST(FilterChain, AddPlacesByNameWhateverTheCallOrder) {
  std::vector<std::string> ran;
  FilterChain chain;
  chain.add(std::make_unique<Probe>("redirect", ran));
  chain.add(std::make_unique<Probe>("cors", ran));
  chain.add(std::make_unique<Probe>("jwt", ran));
  testing::FakeExchange fx({});
  EXPECT_EQ(chain.run_request(fx.get()), Verdict::kContinue);
  EXPECT_EQ(ran, (std::vector<std::string>{"cors", "jwt", "redirect"}));
}

TEST(FilterChain, AnAnswerStopsTheFiltersAfterIt) {
  // A CORS preflight is answered before the rate limit counts it: a limit of
  // one request still lets the real request through after two preflights.
  EveryFilter e;
  e.rule.filters.request_redirect.reset();
  e.rule.filters.https_redirect.reset();
  e.rule.filters.jwt.reset();
  e.parts.jwt.reset();
  e.rule.filters.api_key.reset();
  e.rule.filters.basic_auth.reset();
  e.rule.filters.ext_auth.reset();
  FilterChain chain = build_chain(e.rule, e.parts);
  testing::FakeRequest pre;
  pre.method = "OPTIONS";
  pre.headers = {{"Origin", "https://a.example.com"}, {"Access-Control-Request-Method", "GET"}};
  testing::FakeExchange preflight(pre);
  EXPECT_EQ(preflight.run(chain).reply.status, 204);
  EXPECT_EQ(preflight.run(chain).reply.status, 204);
  testing::FakeExchange real({});
  EXPECT_EQ(real.run(chain).verdict, Verdict::kContinue);
  EXPECT_EQ(real.run(chain).reply.status, 429);
}

// A filter that waits (kPending) and then answers `resumed` from on_resume().
class Waiter final : public Filter {
 public:
  Waiter(Verdict resumed, std::vector<std::string>& log) : resumed_(resumed), log_(log) {}
  std::string_view name() const override { return "jwt"; }
  uint8_t phases() const override { return kOnRequest; }
  Verdict on_request(Exchange&) const override {
    log_.emplace_back("jwt waits");
    return Verdict::kPending;
  }
  Verdict on_resume(Exchange& ex) const override {
    log_.emplace_back("jwt resumed");
    if (resumed_ == Verdict::kRespond) ex.reply.status = 403;
    return resumed_;
  }

 private:
  Verdict resumed_;
  std::vector<std::string>& log_;
};

TEST(FilterChain, APendingFilterResumesWhereItStopped) {
  struct Case {
    Verdict resumed;
    Verdict want;
    std::vector<std::string> ran;
  };
  const Case cases[] = {
      {Verdict::kContinue, Verdict::kContinue, {"cors", "jwt waits", "jwt resumed", "redirect"}},
      {Verdict::kRespond, Verdict::kRespond, {"cors", "jwt waits", "jwt resumed"}},
      {Verdict::kPending, Verdict::kPending, {"cors", "jwt waits", "jwt resumed"}},
  };
  for (const auto& c : cases) {
    std::vector<std::string> ran;
    FilterChain chain;
    chain.add(std::make_unique<Probe>("redirect", ran));
    chain.add(std::make_unique<Waiter>(c.resumed, ran));
    chain.add(std::make_unique<Probe>("cors", ran));
    testing::FakeExchange fx({});
    Exchange& ex = fx.get();
    size_t at = 0;
    ASSERT_EQ(chain.run_request(ex, at), Verdict::kPending);
    EXPECT_EQ(at, 1u);  // stopped on the waiting filter; redirect did not run
    EXPECT_EQ(chain.request_filter_name(at), "jwt");
    EXPECT_EQ(chain.resume_request(ex, at), c.want);
    EXPECT_EQ(ran, c.ran);
    if (c.want == Verdict::kRespond) {
      EXPECT_EQ(ex.reply.status, 403);
    }
    if (c.want == Verdict::kPending) {
      EXPECT_EQ(at, 1u);  // waits again, same filter
    }
  }
}

}  // namespace
}  // namespace gantry::exchange
