// Each filter of the chain (proxy/filters/*_filter.cc) against a bare
// Exchange, no sockets: a table of rules (the filter's snapshot settings) and
// requests, each row naming the verdict, the local reply, and the edits of
// the upstream request and the response.
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>

#include "proxy/exchange/chain.h"
#include "proxy/filters/cors.h"
#include "proxy/filters/jwt.h"
#include "proxy/filters/global_rate_limit.h"
#include "proxy/filters/header_filters.h"
#include "proxy/filters/rate_limiter.h"
#include "proxy/snapshot/model.h"
#include "tests/unit/exchange/fake_exchange.h"

namespace gantry::exchange {
namespace {

using testing::FakeExchange;
using testing::FakeRequest;
using testing::Outcome;
using std::chrono::milliseconds;

const std::string kSecret = "a-test-hmac-secret-of-32-bytes!!";

std::string hs256(const std::string& payload_json) {
  std::string input = filters::base64url_encode(R"({"alg":"HS256","typ":"JWT"})") + "." +
                      filters::base64url_encode(payload_json);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), kSecret.data(), static_cast<int>(kSecret.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &len);
  return input + "." + filters::base64url_encode(std::string(reinterpret_cast<char*>(mac), len));
}

// A rule and the compiled parts its chain uses, as control::PolicySet builds them.
struct BuiltRule {
  snapshot::Rule rule;
  std::optional<filters::CorsPolicy> cors;
  ChainParts parts;
  FilterChain chain;
};

std::unique_ptr<BuiltRule> build(const snapshot::Filters& f) {
  auto b = std::make_unique<BuiltRule>();
  b->rule.filters = f;
  const auto& rf = b->rule.filters;
  if (rf.cors) {
    auto c = filters::CorsPolicy::create(*rf.cors);
    EXPECT_TRUE(c.ok());
    b->cors = std::move(c).value();
    b->parts.cors = &*b->cors;
  }
  if (rf.rate_limit) {
    auto rl = filters::RateLimiter::create(*rf.rate_limit);
    EXPECT_TRUE(rl.ok());
    b->parts.rate_limiter = std::move(rl).value();
  }
  if (rf.jwt) {
    auto v = filters::JwtVerifier::create(*rf.jwt);
    EXPECT_TRUE(v.ok()) << v.error().message;
    b->parts.jwt = std::move(v).value();
  }
  b->chain = build_chain(b->rule, b->parts);
  return b;
}

using Fields = std::map<std::string, std::string>;

Fields as_map(const OwnedHeaders& h) {
  Fields m;
  for (const auto& [n, v] : h) m[n] = v;
  return m;
}

struct Row {
  std::string name;
  snapshot::Filters filters;
  FakeRequest request;
  Verdict verdict;
  int status = 0;                   // reply status when kRespond
  std::string body;                 // reply body (exact) when kRespond
  Fields reply_headers;             // exact set of reply fields when kRespond
  bool close = false;               // reply.close
  Fields response_headers;          // exact set added to the answer when kContinue
  std::string upstream_path;        // when kContinue ("" = unchanged request path)
  std::string upstream_host;        // when kContinue ("" = the request's Host)
  Fields upstream_set, upstream_add;
  std::vector<std::string> upstream_removed, response_removed;
  std::optional<uint64_t> body_limit;
  int repeat = 1;  // run this many times on one chain; the last run is checked
  std::optional<std::string> upstream_query;  // when kContinue: the query a filter set (nullopt: unchanged)
  std::string consumer;                       // when kContinue: who authenticated
};

snapshot::Filters cors() {
  snapshot::Filters f;
  snapshot::Cors c;
  c.allow_origins = {"https://shop.example.com"};
  c.allow_methods = {"GET", "POST"};
  c.max_age = milliseconds(600000);
  f.cors = c;
  return f;
}

snapshot::Filters rate(uint64_t n, std::string key = "ClientIP") {
  snapshot::Filters f;
  snapshot::RateLimit r;
  r.requests = n;
  r.interval = milliseconds(60000);
  r.key = std::move(key);
  f.rate_limit = r;
  return f;
}

snapshot::Filters body_limit(uint64_t n) {
  snapshot::Filters f;
  f.max_request_body_size = n;
  return f;
}

snapshot::Filters jwt() {
  snapshot::Filters f;
  snapshot::Jwt j;
  j.algorithms = {"HS256"};
  j.hmac_secret = kSecret;
  j.issuer = "https://issuer.example.com";
  j.claims_to_headers = {{"sub", "x-user"}};
  f.jwt = j;
  return f;
}

snapshot::Filters redirect(snapshot::RequestRedirect r) {
  snapshot::Filters f;
  f.request_redirect = std::move(r);
  return f;
}

snapshot::Filters rewrite(snapshot::UrlRewrite r) {
  snapshot::Filters f;
  f.url_rewrite = std::move(r);
  return f;
}

snapshot::Filters headers(std::optional<snapshot::HeaderModifier> req,
                          std::optional<snapshot::HeaderModifier> resp) {
  snapshot::Filters f;
  f.request_headers = std::move(req);
  f.response_headers = std::move(resp);
  return f;
}

FakeRequest req(std::string method, std::string path,
                std::vector<std::pair<std::string, std::string>> h = {}) {
  FakeRequest r;
  r.method = std::move(method);
  r.path = std::move(path);
  r.headers = std::move(h);
  return r;
}

FakeRequest with_body(FakeRequest r, http::BodyKind kind, uint64_t n) {
  r.body = kind;
  r.content_length = n;
  return r;
}

FakeRequest with_query(FakeRequest r, std::string q, size_t matched_prefix = 0) {
  r.query = std::move(q);
  r.matched_prefix = matched_prefix;
  return r;
}

const std::string kGoodToken =
    hs256(R"({"iss":"https://issuer.example.com","sub":"alice","exp":1800000000})");
const std::string kExpiredToken =
    hs256(R"({"iss":"https://issuer.example.com","sub":"alice","exp":1600000000})");

std::vector<Row> rows() {
  std::vector<Row> t;
  // ---- cors
  t.push_back({"cors_preflight_answered", cors(),
               req("OPTIONS", "/cart", {{"Origin", "https://shop.example.com"},
                                        {"Access-Control-Request-Method", "POST"}}),
               Verdict::kRespond, 204, "",
               {{"Access-Control-Allow-Origin", "https://shop.example.com"},
                {"Access-Control-Allow-Methods", "GET, POST"},
                {"Access-Control-Max-Age", "600"},
                {"Vary", "Origin"}}});
  t.push_back({"cors_preflight_refused", cors(),
               req("OPTIONS", "/cart", {{"Origin", "https://evil.example.com"},
                                        {"Access-Control-Request-Method", "POST"}}),
               Verdict::kRespond, 403, "CORS preflight refused: origin or method not allowed",
               {{"Vary", "Origin"}}});
  t.push_back({"cors_request_forwarded_with_fields", cors(),
               req("GET", "/cart", {{"Origin", "https://shop.example.com"}}), Verdict::kContinue, 0,
               "", {}, false,
               {{"Access-Control-Allow-Origin", "https://shop.example.com"}, {"Vary", "Origin"}}});
  t.push_back({"cors_no_origin_untouched", cors(), req("GET", "/cart"), Verdict::kContinue});
  // ---- rate limit
  t.push_back({"rate_limit_allows_with_fields", rate(2), req("GET", "/"), Verdict::kContinue, 0, "",
               {}, false,
               // token bucket, 2 per minute: one token comes back in 30 s
               {{"ratelimit-limit", "2"}, {"ratelimit-remaining", "1"}, {"ratelimit-reset", "30"}}});
  {
    Row r{"rate_limit_answers_429_when_spent", rate(2), req("GET", "/"), Verdict::kRespond, 429,
          "rate limit exceeded",
          {{"ratelimit-limit", "2"}, {"ratelimit-remaining", "0"}, {"ratelimit-reset", "60"},
           {"retry-after", "30"}}};
    r.repeat = 3;
    t.push_back(r);
  }
  {
    // keyed by a header: another key has its own allowance
    Row r{"rate_limit_by_header", rate(1, "Header:X-Api-Key"),
          req("GET", "/", {{"X-Api-Key", "k1"}}), Verdict::kContinue, 0, "", {}, false,
          {{"ratelimit-limit", "1"}, {"ratelimit-remaining", "0"}, {"ratelimit-reset", "60"}}};
    t.push_back(r);
  }
  {
    // ingress-nginx's limit-req-status-code: the refusal's status is configurable
    snapshot::Filters f = rate(1);
    f.rate_limit->status_code = 503;
    Row r{"rate_limit_answers_its_status_code", f, req("GET", "/"), Verdict::kRespond, 503,
          "rate limit exceeded",
          {{"ratelimit-limit", "1"}, {"ratelimit-remaining", "0"}, {"ratelimit-reset", "60"},
           {"retry-after", "60"}}};
    r.repeat = 2;
    t.push_back(r);
  }
  {
    // a client of an exempt range is never counted (limit-whitelist)
    snapshot::Filters f = rate(1);
    f.rate_limit->exempt_sources = {"10.0.0.0/24"};
    Row r{"rate_limit_exempt_source_not_counted", f, req("GET", "/"), Verdict::kContinue};
    r.repeat = 5;
    t.push_back(r);
  }
  // ---- https redirect (ssl-redirect)
  {
    snapshot::Filters f;
    f.https_redirect = snapshot::HttpsRedirect{};
    t.push_back({"https_redirect_plain_http_308", f, with_query(req("GET", "/a/b"), "x=1&y=2"),
                 Verdict::kRespond, 308, "redirecting to https://shop.example.com/a/b?x=1&y=2",
                 {{"location", "https://shop.example.com/a/b?x=1&y=2"}}});
    t.push_back({"https_redirect_acme_challenge_exempt", f,
                 req("GET", "/.well-known/acme-challenge/token123"), Verdict::kContinue});
    FakeRequest over_tls = req("GET", "/a");
    over_tls.tls = true;
    t.push_back({"https_redirect_tls_request_passes", f, over_tls, Verdict::kContinue});
    snapshot::Filters s;
    s.https_redirect = snapshot::HttpsRedirect{308, std::nullopt, true};  // ingress-nginx's default
    t.push_back({"https_redirect_strips_a_trailing_slash", s, req("GET", "/a/"), Verdict::kRespond, 308,
                 "redirecting to https://shop.example.com/a", {{"location", "https://shop.example.com/a"}}});
    t.push_back({"https_redirect_keeps_slash_before_query", s, with_query(req("GET", "/a/"), "x=/"),
                 Verdict::kRespond, 308, "redirecting to https://shop.example.com/a/?x=/",
                 {{"location", "https://shop.example.com/a/?x=/"}}});
    snapshot::Filters g;
    g.https_redirect = snapshot::HttpsRedirect{301, 8443};
    t.push_back({"https_redirect_code_and_port", g, req("GET", "/"), Verdict::kRespond, 301,
                 "redirecting to https://shop.example.com:8443/",
                 {{"location", "https://shop.example.com:8443/"}}});
  }
  // ---- source range (whitelist-source-range / denylist-source-range)
  {
    snapshot::Filters allow;
    allow.source_range = snapshot::SourceRange{{"192.0.2.0/24", "10.0.0.7"}, {}};
    t.push_back({"source_range_allowed", allow, req("GET", "/"), Verdict::kContinue});
    FakeRequest other = req("GET", "/");
    other.client_ip = "10.0.0.8";
    t.push_back({"source_range_outside_allow_403", allow, other, Verdict::kRespond, 403,
                 "client address not allowed", {}});
    snapshot::Filters deny;
    deny.source_range = snapshot::SourceRange{{}, {"10.0.0.0/8"}};
    t.push_back({"source_range_denied_403", deny, req("GET", "/"), Verdict::kRespond, 403,
                 "client address not allowed", {}});
    other.client_ip = "192.0.2.1";
    t.push_back({"source_range_not_denied", deny, other, Verdict::kContinue});
  }
  // ---- HSTS
  {
    snapshot::Filters h;
    h.hsts = snapshot::Hsts{};
    FakeRequest over_tls = req("GET", "/");
    over_tls.tls = true;
    Row tls_row{"hsts_on_tls_answers", h, over_tls, Verdict::kContinue};
    tls_row.response_headers = {{"Strict-Transport-Security", "max-age=31536000; includeSubDomains"}};
    t.push_back(tls_row);
    t.push_back({"hsts_not_on_plain_http", h, req("GET", "/"), Verdict::kContinue});
  }
  // ---- api key (keys "key-alice-0123456789" and "key-bob-9876543210")
  {
    snapshot::Filters f;
    snapshot::ApiKey a;
    a.header = "x-api-key";
    a.query_param = "api_key";
    a.consumer_header = "x-consumer";
    a.keys = {{"alice", "f82ed249117cbb38d189bb742ad45f93b3993287304f8951c8949286283d9af3"},
              {"bob", "004b39054903301234e6bf8905dc22cf4f3b15c4e899a0f98063631b84dcf776"}};
    f.api_key = a;
    {
      Row r{"api_key_header_known", f,
            req("GET", "/", {{"X-Api-Key", "key-alice-0123456789"}, {"X-Consumer", "mallory"}}),
            Verdict::kContinue};
      r.upstream_set = {{"x-consumer", "alice"}};
      r.upstream_removed = {"x-api-key"};
      r.consumer = "alice";
      t.push_back(r);
    }
    {
      Row r{"api_key_query_known_and_dropped", f, with_query(req("GET", "/"), "a=1&api_key=key-bob-9876543210&b=2"),
            Verdict::kContinue};
      r.upstream_set = {{"x-consumer", "bob"}};
      r.upstream_removed = {"x-api-key"};
      r.upstream_query = "a=1&b=2";
      r.consumer = "bob";
      t.push_back(r);
    }
    {
      Row r{"api_key_query_percent_encoded", f, with_query(req("GET", "/"), "api_key=key-bob-98765432%31%30"),
            Verdict::kContinue};
      r.upstream_set = {{"x-consumer", "bob"}};
      r.upstream_removed = {"x-api-key"};
      r.upstream_query = "";
      r.consumer = "bob";
      t.push_back(r);
    }
    t.push_back({"api_key_missing_401", f, req("GET", "/"), Verdict::kRespond, 401, "API key required",
                 {{"www-authenticate", "ApiKey"}}});
    t.push_back({"api_key_empty_401", f, req("GET", "/", {{"X-Api-Key", ""}}), Verdict::kRespond, 401,
                 "API key required", {{"www-authenticate", "ApiKey"}}});
    t.push_back({"api_key_unknown_401", f, req("GET", "/", {{"X-Api-Key", "key-alice-012345678"}}),
                 Verdict::kRespond, 401, "invalid API key", {{"www-authenticate", "ApiKey"}}});
    // the header wins over the query parameter
    t.push_back({"api_key_header_wins", f,
                 with_query(req("GET", "/", {{"X-Api-Key", "wrong"}}), "api_key=key-bob-9876543210"),
                 Verdict::kRespond, 401, "invalid API key", {{"www-authenticate", "ApiKey"}}});
    snapshot::Filters g = f;
    g.api_key->unknown_key_status = 403;
    t.push_back({"api_key_unknown_403_when_configured", g, req("GET", "/", {{"X-Api-Key", "nope"}}),
                 Verdict::kRespond, 403, "invalid API key", {}});
    t.push_back({"api_key_missing_still_401", g, req("GET", "/"), Verdict::kRespond, 401, "API key required",
                 {{"www-authenticate", "ApiKey"}}});
  }
  // ---- basic auth (alice / "open sesame", bcrypt cost 4 written by htpasswd -B)
  {
    snapshot::Filters f;
    snapshot::BasicAuth b;
    b.realm = "staff";
    b.consumer_header = "x-consumer";
    b.users = {{"alice", "$2y$04$dD/xXdPDwE3/ZsXH8exTJOZz1xzNwPV7jUzkf1bVDqFZqZTG.ddze"}};
    f.basic_auth = b;
    {
      Row r{"basic_auth_valid", f, req("GET", "/", {{"Authorization", "Basic YWxpY2U6b3BlbiBzZXNhbWU="}}),
            Verdict::kContinue};
      r.upstream_set = {{"x-consumer", "alice"}};
      r.upstream_removed = {"authorization"};
      r.consumer = "alice";
      r.repeat = 3;  // the second and third are remembered
      t.push_back(r);
    }
    Fields challenge{{"www-authenticate", "Basic realm=\"staff\", charset=\"UTF-8\""}};
    t.push_back({"basic_auth_missing_401", f, req("GET", "/"), Verdict::kRespond, 401, "authentication required",
                 challenge});
    // "alice:open sesamE"
    t.push_back({"basic_auth_wrong_password_401", f,
                 req("GET", "/", {{"Authorization", "Basic YWxpY2U6b3BlbiBzZXNhbUU="}}), Verdict::kRespond, 401,
                 "invalid user name or password", challenge});
    t.push_back({"basic_auth_bearer_is_not_basic", f, req("GET", "/", {{"Authorization", "Bearer abc"}}),
                 Verdict::kRespond, 401, "authentication required", challenge});
  }
  // ---- rate limit per consumer: after the authentication filters
  {
    snapshot::Filters f = rate(1, "Consumer");
    snapshot::ApiKey a;
    a.header = "x-api-key";
    a.keys = {{"alice", "f82ed249117cbb38d189bb742ad45f93b3993287304f8951c8949286283d9af3"}};
    f.api_key = a;
    Row r{"rate_limit_by_consumer", f, req("GET", "/", {{"X-Api-Key", "key-alice-0123456789"}}),
          Verdict::kRespond, 429, "rate limit exceeded",
          {{"ratelimit-limit", "1"}, {"ratelimit-remaining", "0"}, {"ratelimit-reset", "60"}, {"retry-after", "60"}}};
    r.repeat = 2;
    t.push_back(r);
  }
  // ---- body limit
  t.push_back({"body_limit_content_length_over", body_limit(10),
               with_body(req("POST", "/up"), http::BodyKind::kContentLength, 11), Verdict::kRespond,
               413, "request body larger than 10 bytes", {}, true});
  {
    Row r{"body_limit_content_length_within", body_limit(10),
          with_body(req("POST", "/up"), http::BodyKind::kContentLength, 10), Verdict::kContinue};
    r.body_limit = 10;
    t.push_back(r);
  }
  {
    Row r{"body_limit_chunked_left_to_the_relay", body_limit(10),
          with_body(req("POST", "/up"), http::BodyKind::kChunked, 0), Verdict::kContinue};
    r.body_limit = 10;
    t.push_back(r);
  }
  // ---- jwt
  t.push_back({"jwt_missing_token", jwt(), req("GET", "/me"), Verdict::kRespond, 401,
               "bearer token required", {{"www-authenticate", "Bearer"}}});
  {
    Row r{"jwt_valid_token_sets_claims_replacing_spoofed", jwt(),
          req("GET", "/me", {{"Authorization", "Bearer " + kGoodToken}, {"X-User", "mallory"}}),
          Verdict::kContinue};
    r.upstream_set = {{"x-user", "alice"}};
    t.push_back(r);
  }
  {
    Row r{"jwt_expired_token", jwt(), req("GET", "/me", {{"Authorization", "Bearer " + kExpiredToken}}),
          Verdict::kRespond, 401, "invalid bearer token"};
    t.push_back(r);  // reply headers checked below (the description names the reason)
  }
  // ---- redirect
  {
    snapshot::RequestRedirect r;
    r.scheme = "https";
    r.status_code = 301;
    t.push_back({"redirect_scheme_keeps_host_path_query", redirect(r),
                 with_query(req("GET", "/a/b"), "x=1"), Verdict::kRespond, 301,
                 "redirecting to https://shop.example.com/a/b?x=1",
                 {{"location", "https://shop.example.com/a/b?x=1"}}});
  }
  {
    snapshot::RequestRedirect r;
    r.hostname = "new.example.com";
    r.port = 8443;
    r.path = {snapshot::PathRewriteType::kReplacePrefixMatch, "/v2"};
    t.push_back({"redirect_prefix_host_port", redirect(r), with_query(req("GET", "/v1/users"), "", 3),
                 Verdict::kRespond, 302, "redirecting to http://new.example.com:8443/v2/users",
                 {{"location", "http://new.example.com:8443/v2/users"}}});
  }
  // Gateway API's port rules: no scheme keeps the request's scheme and the
  // listener's port; a scheme alone means its well-known port; well-known
  // ports are left out.
  auto on = [](FakeRequest r, bool tls, uint16_t port) {
    r.tls = tls;
    r.listener_port = port;
    return r;
  };
  {
    snapshot::RequestRedirect r;
    r.path = {snapshot::PathRewriteType::kReplaceFullPath, "/b"};
    t.push_back({"redirect_keeps_listener_port", redirect(r), on(req("GET", "/a"), false, 8080),
                 Verdict::kRespond, 302, "redirecting to http://shop.example.com:8080/b",
                 {{"location", "http://shop.example.com:8080/b"}}});
    t.push_back({"redirect_keeps_https_omits_443", redirect(r), on(req("GET", "/a"), true, 443),
                 Verdict::kRespond, 302, "redirecting to https://shop.example.com/b",
                 {{"location", "https://shop.example.com/b"}}});
    r.scheme = "http";
    t.push_back({"redirect_scheme_means_its_port", redirect(r), on(req("GET", "/a"), true, 8443),
                 Verdict::kRespond, 302, "redirecting to http://shop.example.com/b",
                 {{"location", "http://shop.example.com/b"}}});
    r.port = 80;
    t.push_back({"redirect_port_80_left_out", redirect(r), on(req("GET", "/a"), false, 8080),
                 Verdict::kRespond, 302, "redirecting to http://shop.example.com/b",
                 {{"location", "http://shop.example.com/b"}}});
    r.scheme = "https";
    t.push_back({"redirect_https_on_80", redirect(r), on(req("GET", "/a"), false, 8080),
                 Verdict::kRespond, 302, "redirecting to https://shop.example.com:80/b",
                 {{"location", "https://shop.example.com:80/b"}}});
  }
  // ---- url rewrite
  {
    snapshot::UrlRewrite r;
    r.path = {snapshot::PathRewriteType::kReplacePrefixMatch, "/"};
    Row row{"rewrite_strips_prefix", rewrite(r), with_query(req("GET", "/api/users"), "", 4),
            Verdict::kContinue};
    row.upstream_path = "/users";
    t.push_back(row);
  }
  {
    snapshot::UrlRewrite r;
    r.hostname = "internal.svc";
    r.path = {snapshot::PathRewriteType::kReplaceFullPath, "/health"};
    Row row{"rewrite_full_path_and_host", rewrite(r), req("GET", "/anything"), Verdict::kContinue};
    row.upstream_path = "/health";
    row.upstream_host = "internal.svc";
    t.push_back(row);
  }
  {
    snapshot::UrlRewrite r;
    r.path = {snapshot::PathRewriteType::kReplacePrefixMatch, "/"};
    Row row{"rewrite_whole_path_prefix_gives_root", rewrite(r), with_query(req("GET", "/api"), "", 4),
            Verdict::kContinue};
    row.upstream_path = "/";
    t.push_back(row);
  }
  {
    // nginx rewrite: the whole path becomes the substitution with its captures
    snapshot::UrlRewrite r;
    r.path.type = snapshot::PathRewriteType::kRegexReplace;
    r.path.pattern = "(?i)/something(/|$)(.*)";
    r.path.value = "/\\2";
    Row row{"rewrite_regex_captures", rewrite(r), with_query(req("GET", "/SomeThing/new/x"), "q=1"),
            Verdict::kContinue};
    row.upstream_path = "/new/x";
    t.push_back(row);
    Row none{"rewrite_regex_captures_empty", rewrite(r), req("GET", "/something"), Verdict::kContinue};
    none.upstream_path = "/";
    t.push_back(none);
    Row miss{"rewrite_regex_no_match_keeps_path", rewrite(r), req("GET", "/other/x"), Verdict::kContinue};
    t.push_back(miss);
  }
  {
    snapshot::RequestRedirect r;
    r.status_code = 302;
    r.location = "https://new.example.com/\\1";
    r.location_pattern = "(?i)/old/(.*)";
    r.keep_query = true;
    t.push_back({"redirect_location_pattern", redirect(r), with_query(req("GET", "/old/a/b"), "k=v"),
                 Verdict::kRespond, 302, "redirecting to https://new.example.com/a/b?k=v",
                 {{"location", "https://new.example.com/a/b?k=v"}}});
    t.push_back({"redirect_location_pattern_miss_passes", redirect(r), req("GET", "/new/a"),
                 Verdict::kContinue});
    snapshot::RequestRedirect www;  // from-to-www-redirect: the request's scheme and port-less host
    www.status_code = 308;
    www.location = "//www.example.com\\0";
    www.location_pattern = "^.*$";
    www.keep_query = true;
    t.push_back({"redirect_network_path_reference", redirect(www), with_query(req("GET", "/a/b"), "k=v"),
                 Verdict::kRespond, 308, "redirecting to //www.example.com/a/b?k=v",
                 {{"location", "//www.example.com/a/b?k=v"}}});
    snapshot::RequestRedirect p;
    p.status_code = 301;
    p.location = "https://www.example.org/landing";
    t.push_back({"redirect_location_verbatim", redirect(p), with_query(req("GET", "/x"), "k=v"),
                 Verdict::kRespond, 301, "redirecting to https://www.example.org/landing",
                 {{"location", "https://www.example.org/landing"}}});
  }
  // ---- header modifiers
  {
    snapshot::HeaderModifier in;
    in.set = {{"x-env", "prod"}};
    in.add = {{"x-via", "gantry"}};
    in.remove = {"x-debug"};
    snapshot::HeaderModifier out;
    out.set = {{"cache-control", "no-store"}};
    out.remove = {"server"};
    Row row{"header_modifiers_both_ways", headers(in, out), req("GET", "/"), Verdict::kContinue};
    row.upstream_set = {{"x-env", "prod"}};
    row.upstream_add = {{"x-via", "gantry"}};
    row.upstream_removed = {"x-debug"};
    row.response_headers = {{"cache-control", "no-store"}};
    row.response_removed = {"server"};
    t.push_back(row);
  }
  return t;
}

void PrintTo(const Row& r, std::ostream* os) { *os << r.name; }

class FilterTable : public ::testing::TestWithParam<Row> {};

TEST_P(FilterTable, Runs) {
  const Row& row = GetParam();
  auto b = build(row.filters);
  FakeExchange fx(row.request);
  Outcome o;
  for (int i = 0; i < row.repeat; ++i) o = fx.run(b->chain);
  ASSERT_EQ(static_cast<int>(o.verdict), static_cast<int>(row.verdict));
  if (row.verdict == Verdict::kRespond) {
    EXPECT_EQ(o.reply.status, row.status);
    EXPECT_EQ(o.reply.body, row.body);
    EXPECT_EQ(o.reply.close, row.close);
    EXPECT_FALSE(o.reply.kind.empty());
    if (row.name == "jwt_expired_token") {
      auto h = as_map(o.reply.headers);
      ASSERT_EQ(h.size(), 1u);
      EXPECT_EQ(h["www-authenticate"].rfind("Bearer error=\"invalid_token\"", 0), 0u) << h["www-authenticate"];
    } else {
      EXPECT_EQ(as_map(o.reply.headers), row.reply_headers);
    }
    return;
  }
  EXPECT_EQ(o.reply.status, 0);
  EXPECT_EQ(as_map(o.response_headers), row.response_headers);
  EXPECT_EQ(o.upstream_path, row.upstream_path.empty() ? row.request.path : row.upstream_path);
  EXPECT_EQ(o.upstream_host, row.upstream_host.empty() ? row.request.host : row.upstream_host);
  EXPECT_EQ(as_map(o.upstream_set), row.upstream_set);
  EXPECT_EQ(as_map(o.upstream_add), row.upstream_add);
  EXPECT_EQ(o.upstream_removed, row.upstream_removed);
  EXPECT_EQ(o.response_removed, row.response_removed);
  EXPECT_EQ(o.body_limit, row.body_limit);
  EXPECT_EQ(o.upstream_query, row.upstream_query);
  EXPECT_EQ(o.consumer, row.consumer);
}

INSTANTIATE_TEST_SUITE_P(Filters, FilterTable, ::testing::ValuesIn(rows()),
                         [](const ::testing::TestParamInfo<Row>& i) { return i.param.name; });

TEST(RateLimitFilter, KeysHaveSeparateAllowances) {
  auto b = build(rate(1, "Header:X-Api-Key"));
  FakeExchange k1(req("GET", "/", {{"X-Api-Key", "k1"}}));
  FakeExchange k2(req("GET", "/", {{"X-Api-Key", "k2"}}));
  EXPECT_EQ(k1.run(b->chain).verdict, Verdict::kContinue);
  EXPECT_EQ(k1.run(b->chain).verdict, Verdict::kRespond);
  EXPECT_EQ(k2.run(b->chain).verdict, Verdict::kContinue);
}

// rateLimit scope global against a store that answers at once with what the
// test programmed (the store's interface, global_rate_limit.h; the Redis
// store itself is exercised by tests/integration/test_global_rate_limit.py).
class ScriptedStore final : public filters::RateLimitStore {
 public:
  filters::StoreOutcome outcome = filters::StoreOutcome::kDecided;
  filters::RateLimitDecision decision;
  std::vector<std::string> keys;
  int fallbacks = 0, refused = 0;
  snapshot::RateLimitStore config;

  void decide(filters::GlobalCheck check, Done done) override {
    keys.push_back(check.key);
    done(outcome, decision);
  }
  void note_fallback(std::string_view) override { ++fallbacks; }
  void note_refused(std::string_view) override { ++refused; }
  const snapshot::RateLimitStore& settings() const override { return config; }
};

struct GlobalRule {
  std::unique_ptr<BuiltRule> built;
  std::shared_ptr<ScriptedStore> store;
};

GlobalRule global_rule(uint64_t requests, snapshot::RateLimitFailureMode mode, uint32_t replicas) {
  snapshot::Filters f = rate(requests);
  f.rate_limit->scope = snapshot::RateLimitScope::kGlobal;
  f.rate_limit->failure_mode = mode;
  GlobalRule g;
  g.store = std::make_shared<ScriptedStore>();
  g.built = std::make_unique<BuiltRule>();
  g.built->rule.filters = f;
  auto rl = filters::RateLimiter::create(filters::fallback_limit(*f.rate_limit, replicas));
  EXPECT_TRUE(rl.ok());
  g.built->parts.rate_limiter = std::move(rl).value();
  g.built->parts.rate_limit_store = g.store;
  g.built->parts.rule_label = "default/r#0";
  g.built->chain = build_chain(g.built->rule, g.built->parts);
  return g;
}

// Runs the request phase as the driver does: a kPending waits for the op.
Verdict run_waiting(const FilterChain& chain, Exchange& ex) {
  size_t at = 0;
  Verdict v = chain.run_request(ex, at);
  while (v == Verdict::kPending) {
    EXPECT_TRUE(ex.pending != nullptr);
    bool finished = false;
    ex.pending->start([&finished] { finished = true; });
    EXPECT_TRUE(finished);
    ex.pending.reset();
    v = chain.resume_request(ex, at);
  }
  return v;
}

std::string field(const OwnedHeaders& h, std::string_view name) {
  for (const auto& [n, v] : h)
    if (n == name) return v;
  return "";
}

TEST(GlobalRateLimit, TheStoresDecisionGivesTheFields) {
  auto g = global_rule(10, snapshot::RateLimitFailureMode::kOpen, 2);
  g.store->decision = {true, 10, 7, 3, 0};
  FakeExchange fx(req("GET", "/"));
  Exchange& ex = fx.get();
  EXPECT_EQ(run_waiting(g.built->chain, ex), Verdict::kContinue);
  EXPECT_EQ(field(ex.response_headers, "ratelimit-limit"), "10");
  EXPECT_EQ(field(ex.response_headers, "ratelimit-remaining"), "7");
  EXPECT_EQ(field(ex.response_headers, "ratelimit-reset"), "3");
  ASSERT_EQ(g.store->keys.size(), 1u);
  EXPECT_TRUE(g.store->keys[0].starts_with("gantry:rl:{default/r#0|")) << g.store->keys[0];
  EXPECT_TRUE(g.store->keys[0].ends_with("|10.0.0.7}")) << g.store->keys[0];
  EXPECT_EQ(g.store->fallbacks, 0);
}

TEST(GlobalRateLimit, TheStoresRefusalAnswersWithRetryAfter) {
  auto g = global_rule(10, snapshot::RateLimitFailureMode::kOpen, 2);
  g.store->decision = {false, 10, 0, 4, 2};
  FakeExchange fx(req("GET", "/"));
  Exchange& ex = fx.get();
  EXPECT_EQ(run_waiting(g.built->chain, ex), Verdict::kRespond);
  EXPECT_EQ(ex.reply.status, 429);
  EXPECT_EQ(field(ex.reply.headers, "retry-after"), "2");
  EXPECT_EQ(field(ex.reply.headers, "ratelimit-remaining"), "0");
  EXPECT_EQ(field(ex.reply.headers, "ratelimit-reset"), "4");
}

TEST(GlobalRateLimit, FailOpenCountsOnTheLimitDividedByTheReplicas) {
  auto g = global_rule(10, snapshot::RateLimitFailureMode::kOpen, 4);  // 10 / 4 -> 2
  g.store->outcome = filters::StoreOutcome::kUnavailable;
  FakeExchange fx(req("GET", "/"));
  EXPECT_EQ(run_waiting(g.built->chain, fx.get()), Verdict::kContinue);
  Exchange& ex = fx.get();
  EXPECT_EQ(run_waiting(g.built->chain, ex), Verdict::kContinue);
  EXPECT_EQ(field(ex.response_headers, "ratelimit-limit"), "2");
  Exchange& ex3 = fx.get();
  EXPECT_EQ(run_waiting(g.built->chain, ex3), Verdict::kRespond);
  EXPECT_EQ(ex3.reply.status, 429);
  EXPECT_EQ(g.store->fallbacks, 3);
  EXPECT_EQ(g.store->refused, 0);
}

TEST(GlobalRateLimit, FailClosedAnswers503WithTheReason) {
  auto g = global_rule(10, snapshot::RateLimitFailureMode::kClosed, 1);
  g.store->outcome = filters::StoreOutcome::kUnavailable;
  FakeExchange fx(req("GET", "/"));
  Exchange& ex = fx.get();
  EXPECT_EQ(run_waiting(g.built->chain, ex), Verdict::kRespond);
  EXPECT_EQ(ex.reply.status, 503);
  EXPECT_EQ(ex.reply.gateway_reason, "ratelimit-store-unavailable");
  EXPECT_EQ(g.store->refused, 1);
  EXPECT_EQ(g.store->fallbacks, 0);
}

TEST(GlobalRateLimit, ExemptSourcesNeverAskTheStore) {
  auto g = global_rule(10, snapshot::RateLimitFailureMode::kOpen, 1);
  snapshot::Filters f = g.built->rule.filters;
  f.rate_limit->exempt_sources = {"10.0.0.0/24"};
  g.built->rule.filters = f;
  g.built->chain = build_chain(g.built->rule, g.built->parts);
  FakeExchange fx(req("GET", "/"));
  EXPECT_EQ(run_waiting(g.built->chain, fx.get()), Verdict::kContinue);
  EXPECT_TRUE(g.store->keys.empty());
}

TEST(HeaderEdits, DropsRemovedAndSetNamesCaseInsensitively) {
  HeaderEdits e;
  e.remove = {"x-debug"};
  e.set = {{"X-Env", "prod"}};
  EXPECT_TRUE(e.drops("X-DEBUG"));
  EXPECT_TRUE(e.drops("x-env"));
  EXPECT_FALSE(e.drops("x-other"));
}

// A backendRef's header modifier goes after the rule's and wins on the
// names it removes or sets; its adds join the rule's.
TEST(HeaderEdits, BackendModifierOverTheRules) {
  struct Case {
    const char* name;
    snapshot::HeaderModifier rule, backend;
    std::vector<std::string> remove, set, add;  // "name=value"
  } cases[] = {
      {"disjoint: both apply", {{{"x-a", "1"}}, {{"x-b", "2"}}, {"x-c"}}, {{{"backend", "v1"}}, {{"x-d", "4"}}, {"x-e"}},
       {"x-c", "x-e"}, {"x-a=1", "backend=v1"}, {"x-b=2", "x-d=4"}},
      {"the backend sets what the rule set", {{{"X-Env", "rule"}}, {}, {}}, {{{"x-env", "backend"}}, {}, {}},
       {}, {"x-env=backend"}, {}},
      {"the backend sets what the rule added", {{}, {{"x-env", "rule"}}, {}}, {{{"X-ENV", "backend"}}, {}, {}},
       {}, {"X-ENV=backend"}, {}},
      {"the backend removes what the rule set and added", {{{"x-a", "1"}}, {{"x-a", "2"}}, {}}, {{}, {}, {"X-A"}},
       {"X-A"}, {}, {}},
      {"the backend adds to what the rule set", {{{"x-a", "1"}}, {}, {}}, {{}, {{"x-a", "2"}}, {}},
       {}, {"x-a=1"}, {"x-a=2"}},
  };
  auto flat = [](const std::vector<http::Header>& hs) {
    std::vector<std::string> out;
    for (const auto& h : hs) out.push_back(std::string(h.name) + "=" + std::string(h.value));
    return out;
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    HeaderEdits e;
    filters::add_modifier(c.rule, e);
    filters::add_modifier_over(c.backend, e);
    std::vector<std::string> removed(e.remove.begin(), e.remove.end());
    EXPECT_EQ(removed, c.remove);
    EXPECT_EQ(flat(e.set), c.set);
    EXPECT_EQ(flat(e.add), c.add);
  }
}

}  // namespace
}  // namespace gantry::exchange
