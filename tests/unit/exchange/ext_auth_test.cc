// filters.extAuth (filters/ext_auth.h) against a bare Exchange: the call's
// request, the decision table (2xx, denial relayed, signin redirect, failure
// closed / open), the decision cache. The call is answered by a scripted
// transport (the proxy's real one, with sockets, is tested through the proxy
// against oauth2-proxy in tests/integration/test_ext_auth.py).
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "proxy/exchange/chain.h"
#include "proxy/filters/access_decisions.h"
#include "proxy/filters/ext_auth.h"
#include "proxy/filters/ext_authz_proto.h"
#include "tests/unit/exchange/fake_exchange.h"

namespace gantry::filters {
namespace {

using exchange::Verdict;
using exchange::testing::FakeExchange;
using exchange::testing::FakeRequest;

// Answers each call at once with `answer` (ok=false: a failure) and keeps the request it got.
class ScriptedTransport final : public ExtAuthTransport {
 public:
  void start(std::shared_ptr<ExtAuthCall> call, std::function<void()> done) override {
    ++calls;
    last_request = call->request;
    last_grpc = call->grpc;
    last_path = call->path;
    last_authority = call->authority;
    last_host = call->host;
    last_port = call->port;
    call->ok = answer.ok;
    call->error = answer.error;
    call->status = answer.status;
    call->headers = answer.headers;
    call->body = answer.body;
    done();
  }
  ExtAuthCall answer;
  int calls = 0;
  std::string last_request, last_host, last_path, last_authority;
  bool last_grpc = false;
  uint16_t last_port = 0;
};

snapshot::ExtAuth config() {
  snapshot::ExtAuth a;
  a.host = "10.0.0.9";
  a.port = 4180;
  a.path = "/oauth2/auth";
  a.authority = "auth.internal:4180";
  a.request_headers = {"cookie", "authorization"};
  a.response_headers = {"x-auth-request-user"};
  return a;
}

struct Result {
  Verdict verdict;
  exchange::LocalReply reply;
  exchange::OwnedHeaders upstream_set;
  std::vector<std::string> upstream_removed;
};

// Runs the request phase as the driver does (start the op, then on_resume),
// then the upstream-request phase when it continued.
Result run(const ExtAuthFilter& f, FakeExchange& fx, std::chrono::seconds now = std::chrono::seconds(1000)) {
  exchange::Exchange& ex = fx.get(exchange::SteadyTime(now));
  Verdict v = f.on_request(ex);
  if (v == Verdict::kPending) {
    EXPECT_TRUE(ex.pending);
    bool done = false;
    ex.pending->start([&] { done = true; });
    EXPECT_TRUE(done);
    ex.pending.reset();
    v = f.on_resume(ex);
  }
  Result r{v, ex.reply, {}, {}};
  if (v == Verdict::kContinue) {
    exchange::UpstreamRequest up;
    f.on_upstream_request(ex, up);
    for (const auto& h : up.headers.set) r.upstream_set.emplace_back(h.name, h.value);
    for (const auto& n : up.headers.remove) r.upstream_removed.emplace_back(n);
  }
  return r;
}

std::string field(const exchange::OwnedHeaders& h, std::string_view name) {
  for (const auto& [n, v] : h)
    if (n == name) return v;
  return "<none>";
}

TEST(ExtAuth, TheCallCarriesTheAllowListedFieldsAndTheOriginalRequest) {
  auto c = config();
  c.method = "GET";
  ScriptedTransport t;
  ExtAuthFilter f(c, &t);
  FakeExchange fx(FakeRequest{.method = "POST",
                              .host = "shop.example.com",
                              .path = "/cart",
                              .query = "item=7",
                              .headers = {{"Cookie", "_oauth2_proxy=abc"}, {"X-Secret", "no"}, {"Connection", "x"}},
                              .client_ip = "192.0.2.5"});
  t.answer.ok = true;
  t.answer.status = 202;
  run(f, fx);
  EXPECT_EQ(t.last_host, "10.0.0.9");
  EXPECT_EQ(t.last_port, 4180);
  const std::string& r = t.last_request;
  EXPECT_TRUE(r.starts_with("GET /oauth2/auth HTTP/1.1\r\nhost: auth.internal:4180\r\n")) << r;
  EXPECT_NE(r.find("Cookie: _oauth2_proxy=abc\r\n"), std::string::npos) << r;
  EXPECT_EQ(r.find("X-Secret"), std::string::npos) << r;
  EXPECT_EQ(r.find("Connection"), std::string::npos) << r;
  EXPECT_NE(r.find("x-original-url: http://shop.example.com/cart?item=7\r\n"), std::string::npos) << r;
  EXPECT_NE(r.find("x-original-method: POST\r\n"), std::string::npos) << r;
  EXPECT_NE(r.find("x-auth-request-redirect: /cart?item=7\r\n"), std::string::npos) << r;
  EXPECT_NE(r.find("x-forwarded-for: 192.0.2.5\r\n"), std::string::npos) << r;
  EXPECT_TRUE(r.ends_with("\r\n\r\n"));
  EXPECT_EQ(r.find("content-length"), std::string::npos) << r;  // a GET: no body framing
}

TEST(ExtAuth, DecisionTable) {
  struct Case {
    const char* name;
    bool ok;
    int status;
    bool fail_open;
    int status_on_error;
    std::string signin;
    Verdict want;
    int want_status;
  };
  const Case cases[] = {
      {"200 allows", true, 200, false, 403, "", Verdict::kContinue, 0},
      {"202 allows (oauth2-proxy)", true, 202, false, 403, "", Verdict::kContinue, 0},
      {"401 relayed", true, 401, false, 403, "", Verdict::kRespond, 401},
      {"403 relayed", true, 403, false, 403, "", Verdict::kRespond, 403},
      {"500 relayed", true, 500, false, 403, "", Verdict::kRespond, 500},
      {"401 with signin redirects", true, 401, false, 403, "https://auth.example/start", Verdict::kRespond, 302},
      {"403 with signin stays 403", true, 403, false, 403, "https://auth.example/start", Verdict::kRespond, 403},
      {"failure closed: 403", false, 0, false, 403, "", Verdict::kRespond, 403},
      {"failure closed: statusOnError", false, 0, false, 500, "", Verdict::kRespond, 500},
      {"failure open", false, 0, true, 403, "", Verdict::kContinue, 0},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto cfg = config();
    cfg.fail_open = c.fail_open;
    cfg.status_on_error = c.status_on_error;
    cfg.signin = c.signin;
    ScriptedTransport t;
    t.answer.ok = c.ok;
    t.answer.error = "cannot connect";
    t.answer.status = c.status;
    t.answer.headers = {{"x-auth-request-user", "alice"}, {"x-other", "no"}, {"content-type", "text/html"},
                        {"content-length", "9"}, {"set-cookie", "csrf=1"}};
    t.answer.body = "<p>no</p>";
    ExtAuthFilter f(cfg, &t);
    FakeExchange fx(FakeRequest{.path = "/a b", .query = "x=1", .headers = {{"X-Auth-Request-User", "mallory"}}});
    Result r = run(f, fx);
    EXPECT_EQ(r.verdict, c.want);
    if (c.want == Verdict::kContinue) {
      EXPECT_EQ(field(r.upstream_set, "x-auth-request-user"), c.ok ? "alice" : "<none>");
      EXPECT_EQ(field(r.upstream_set, "x-other"), "<none>");
      continue;
    }
    EXPECT_EQ(r.reply.status, c.want_status);
    if (c.want_status == 302) {
      EXPECT_EQ(field(r.reply.headers, "location"),
                "https://auth.example/start?rd=http%3A%2F%2Fshop.example.com%2Fa%20b%3Fx%3D1");
      EXPECT_EQ(field(r.reply.headers, "set-cookie"), "csrf=1");
    } else if (c.ok) {  // the service's answer, relayed
      EXPECT_TRUE(r.reply.verbatim);
      EXPECT_EQ(r.reply.body, "<p>no</p>");
      EXPECT_EQ(field(r.reply.headers, "content-type"), "text/html");
      EXPECT_EQ(field(r.reply.headers, "content-length"), "<none>");  // the codec frames it
    } else {
      EXPECT_FALSE(r.reply.verbatim);
      EXPECT_EQ(r.reply.gateway_reason, "ext-auth-error");
      EXPECT_NE(r.reply.body.find("cannot connect"), std::string::npos);
    }
  }
}

TEST(ExtAuth, SigninAppendsToAQuery) {
  auto cfg = config();
  cfg.signin = "/oauth2/start?x=1";
  cfg.signin_redirect_param = "return";
  ScriptedTransport t;
  t.answer.ok = true;
  t.answer.status = 401;
  ExtAuthFilter f(cfg, &t);
  FakeExchange fx(FakeRequest{.path = "/p", .tls = true});
  Result r = run(f, fx);
  EXPECT_EQ(field(r.reply.headers, "location"), "/oauth2/start?x=1&return=https%3A%2F%2Fshop.example.com%2Fp");
}

TEST(ExtAuth, TheCacheRemembersAllowedDecisionsByTheChosenFields) {
  auto cfg = config();
  cfg.cache_ttl = std::chrono::seconds(30);
  ScriptedTransport t;
  t.answer.ok = true;
  t.answer.status = 202;
  t.answer.headers = {{"x-auth-request-user", "alice"}};
  ExtAuthFilter f(cfg, &t);
  FakeExchange alice(FakeRequest{.path = "/1", .headers = {{"Cookie", "s=alice"}}});
  FakeExchange alice2(FakeRequest{.path = "/2", .headers = {{"cookie", "s=alice"}, {"X-Other", "1"}}});
  FakeExchange bob(FakeRequest{.headers = {{"Cookie", "s=bob"}}});
  EXPECT_EQ(run(f, alice).verdict, Verdict::kContinue);
  EXPECT_EQ(t.calls, 1);
  Result hit = run(f, alice2, std::chrono::seconds(1010));
  EXPECT_EQ(hit.verdict, Verdict::kContinue);
  EXPECT_EQ(t.calls, 1);  // a hit: no call
  EXPECT_EQ(field(hit.upstream_set, "x-auth-request-user"), "alice");
  // another cookie is another key; a denial is not remembered
  t.answer.status = 401;
  EXPECT_EQ(run(f, bob, std::chrono::seconds(1010)).verdict, Verdict::kRespond);
  EXPECT_EQ(run(f, bob, std::chrono::seconds(1011)).verdict, Verdict::kRespond);
  EXPECT_EQ(t.calls, 3);
  // past the ttl the service is asked again
  EXPECT_EQ(run(f, alice, std::chrono::seconds(1031)).verdict, Verdict::kRespond);
  EXPECT_EQ(t.calls, 4);
}

TEST(ExtAuth, TheCacheIsBounded) {
  ExtAuthDecisionCache cache(std::chrono::seconds(60), 32);
  auto now = ExtAuthDecisionCache::Clock::now();
  for (int i = 0; i < 1000; ++i) cache.put(std::string("k").append(std::to_string(i)), {}, now);
  EXPECT_LE(cache.size(), 32u);
  ExtAuthDecisionCache::Headers out;
  cache.put("last", {{"x", "1"}}, now);
  EXPECT_TRUE(cache.find("last", now, out));
  EXPECT_FALSE(cache.find("last", now + std::chrono::seconds(61), out));
}

TEST(ExtAuth, AnOpCancelledBeforeItsAnswerLeavesTheExchangeAlone) {
  // A transport that never answers by itself: the driver gives up (cancel) first.
  class Held final : public ExtAuthTransport {
   public:
    void start(std::shared_ptr<ExtAuthCall> c, std::function<void()> d) override {
      call = std::move(c);
      done = std::move(d);
    }
    void abort(ExtAuthCall&) override { ++aborted; }
    std::shared_ptr<ExtAuthCall> call;
    std::function<void()> done;
    int aborted = 0;
  } t;
  auto cfg = config();
  ExtAuthFilter f(cfg, &t);
  FakeExchange fx(FakeRequest{});
  exchange::Exchange& ex = fx.get();
  ASSERT_EQ(f.on_request(ex), Verdict::kPending);
  bool done = false;
  ex.pending->start([&] { done = true; });
  ex.pending->cancel();
  EXPECT_EQ(t.aborted, 1);
  ex.pending.reset();
  t.call->ok = true;
  t.call->status = 401;
  t.done();  // late: nothing happens
  EXPECT_FALSE(done);
  EXPECT_EQ(ex.reply.status, 0);
}

TEST(ExtAuth, DecisionsAreCounted) {
  auto& d = AccessDecisions::global();
  auto before = [&](AccessDecision k) { return d.value(AccessFilter::kExtAuth, k); };
  uint64_t a = before(AccessDecision::kAllowed), n = before(AccessDecision::kDenied),
           e = before(AccessDecision::kError);
  auto cfg = config();
  ScriptedTransport t;
  ExtAuthFilter f(cfg, &t);
  FakeExchange fx(FakeRequest{});
  t.answer = {};
  t.answer.ok = true;
  t.answer.status = 200;
  run(f, fx);
  t.answer.status = 401;
  run(f, fx);
  t.answer.ok = false;
  run(f, fx);
  EXPECT_EQ(before(AccessDecision::kAllowed), a + 1);
  EXPECT_EQ(before(AccessDecision::kDenied), n + 1);
  EXPECT_EQ(before(AccessDecision::kError), e + 1);
}

}  // namespace
}  // namespace gantry::filters

namespace gantry::filters {
namespace {

// ---- withRequestBody

TEST(ExtAuthBody, TheFilterAsksForTheBodyAndTheCallCarriesIt) {
  auto c = config();
  c.body_max_bytes = 16;
  ScriptedTransport t;
  t.answer.ok = true;
  t.answer.status = 200;
  ExtAuthFilter f(c, &t);
  FakeExchange fx(FakeRequest{.method = "POST",
                              .headers = {{"Content-Type", "application/json"}},
                              .body = http::BodyKind::kContentLength,
                              .content_length = 11});
  exchange::Exchange& ex = fx.get();
  ASSERT_EQ(f.on_request(ex), Verdict::kPending);
  EXPECT_TRUE(ex.request_body.want);
  EXPECT_EQ(ex.request_body.max_bytes, 16u);
  EXPECT_FALSE(ex.request_body.allow_partial);
  // What the driver does before it starts the wait.
  const std::string body = "{\"a\":true}\n";
  ex.request_body.read = true;
  ex.request_body.data = body;
  bool done = false;
  ex.pending->start([&] { done = true; });
  ASSERT_TRUE(done);
  const std::string& r = t.last_request;
  EXPECT_TRUE(r.starts_with("POST /oauth2/auth HTTP/1.1\r\n")) << r;
  EXPECT_NE(r.find("x-envoy-auth-partial-body: false\r\n"), std::string::npos) << r;
  EXPECT_NE(r.find("content-type: application/json\r\n"), std::string::npos) << r;
  EXPECT_TRUE(r.ends_with("content-length: 11\r\n\r\n" + body)) << r;
}

TEST(ExtAuthBody, NoBodyNoWantAndAPartialOneSaysSo) {
  auto c = config();
  c.body_max_bytes = 4;
  c.body_allow_partial = true;
  ScriptedTransport t;
  ExtAuthFilter f(c, &t);
  FakeExchange none(FakeRequest{.method = "GET"});
  exchange::Exchange& ex = none.get();
  ASSERT_EQ(f.on_request(ex), Verdict::kPending);
  EXPECT_FALSE(ex.request_body.want);  // nothing to read: the call goes at once

  FakeExchange big(FakeRequest{.method = "PUT", .body = http::BodyKind::kChunked});
  exchange::Exchange& ex2 = big.get();
  ASSERT_EQ(f.on_request(ex2), Verdict::kPending);
  EXPECT_TRUE(ex2.request_body.want);
  EXPECT_TRUE(ex2.request_body.allow_partial);
  ex2.request_body.read = true;
  ex2.request_body.partial = true;
  ex2.request_body.data = "abcd";
  ex2.pending->start([] {});
  EXPECT_NE(t.last_request.find("x-envoy-auth-partial-body: true\r\n"), std::string::npos);
  EXPECT_TRUE(t.last_request.ends_with("content-length: 4\r\n\r\nabcd"));
}

// ---- gRPC ext_authz

std::string ok_response(std::initializer_list<std::tuple<const char*, const char*, int>> headers,
                        std::initializer_list<const char*> removes) {
  ext_authz::ProtoWriter w;
  size_t st = w.begin(1);
  w.varint(1, 0);
  w.end(st);
  size_t ok = w.begin(3);
  for (const auto& [k, v, action] : headers) {
    size_t o = w.begin(2);
    size_t hv = w.begin(1);
    w.bytes(1, k);
    w.bytes(2, v);
    w.end(hv);
    w.varint(3, static_cast<uint64_t>(action));
    w.end(o);
  }
  for (const char* r : removes) w.bytes(5, r);
  w.end(ok);
  return ext_authz::grpc_frame(w.data());
}

std::string denied_response(int code, int http_status, const char* body) {
  ext_authz::ProtoWriter w;
  size_t st = w.begin(1);
  w.varint(1, static_cast<uint64_t>(code));
  w.end(st);
  size_t d = w.begin(2);
  if (http_status != 0) {
    size_t hs = w.begin(1);
    w.varint(1, static_cast<uint64_t>(http_status));
    w.end(hs);
  }
  size_t o = w.begin(2);
  size_t hv = w.begin(1);
  w.bytes(1, "x-denied-by");
  w.bytes(2, "policy");
  w.end(hv);
  w.end(o);
  w.bytes(3, body);
  w.end(d);
  return ext_authz::grpc_frame(w.data());
}

snapshot::ExtAuth grpc_config() {
  auto a = config();
  a.grpc = true;
  a.path = "/envoy.service.auth.v3.Authorization/Check";
  a.authority = "authz:9191";
  return a;
}

TEST(ExtAuthGrpc, TheCallIsACheckRequest) {
  auto c = grpc_config();
  ScriptedTransport t;
  t.answer.ok = true;
  t.answer.status = 200;
  t.answer.headers = {{"content-type", "application/grpc"}, {"grpc-status", "0"}};
  t.answer.body = ok_response({}, {});
  ExtAuthFilter f(c, &t);
  FakeExchange fx(FakeRequest{.method = "GET",
                              .path = "/cart",
                              .query = "x=1",
                              .headers = {{"Authorization", "Bearer t"}, {"Accept", "a"}, {"accept", "b"}},
                              .client_ip = "192.0.2.5",
                              .listener_port = 8080});
  EXPECT_EQ(run(f, fx).verdict, Verdict::kContinue);
  EXPECT_TRUE(t.last_grpc);
  EXPECT_EQ(t.last_path, "/envoy.service.auth.v3.Authorization/Check");
  EXPECT_EQ(t.last_authority, "authz:9191");
  std::string_view msg;
  std::string why;
  ASSERT_TRUE(ext_authz::grpc_unframe(t.last_request, msg, why)) << why;
  // The fields, found by their encodings (field numbers checked in ext_authz_proto_test).
  for (const char* want : {"192.0.2.5", "GET", "/cart?x=1", "shop.example.com", "x=1", "HTTP/1.1", "authorization",
                           "Bearer t", "a,b", ":authority", ":path"})
    EXPECT_NE(msg.find(want), std::string_view::npos) << want;
  EXPECT_EQ(msg.find("Accept"), std::string_view::npos);  // names lower-cased
}

TEST(ExtAuthGrpc, DecisionTable) {
  using Action = ext_authz::HeaderOp::Action;
  struct Case {
    const char* name;
    bool ok;
    int status;
    exchange::OwnedHeaders headers;
    std::string body;
    Verdict want;
    int reply_status;
    exchange::OwnedHeaders upstream;
    std::vector<std::string> removed;
    bool fail_open = false;
  };
  const auto grpc_ok = exchange::OwnedHeaders{{"content-type", "application/grpc"}, {"grpc-status", "0"}};
  std::vector<Case> cases = {
      {"OK: set, append to the client's, add-if-absent skipped, remove", true, 200, grpc_ok,
       ok_response({{"x-user", "alice", static_cast<int>(Action::kOverwrite)},
                    {"x-tenant", "t1", static_cast<int>(Action::kAppend)},
                    {"x-client", "no", static_cast<int>(Action::kAddIfAbsent)},
                    {"x-absent", "no", static_cast<int>(Action::kOverwriteIfExists)},
                    {"Connection", "no", static_cast<int>(Action::kOverwrite)}},
                   {"x-remove-me"}),
       Verdict::kContinue, 0, {{"x-user", "alice"}, {"x-tenant", "t0,t1"}}, {"x-remove-me"}},
      {"denied with its status, fields and body", true, 200, grpc_ok, denied_response(7, 401, "sign in"),
       Verdict::kRespond, 401, {}, {}},
      {"denied without a status: 403", true, 200, grpc_ok, denied_response(16, 0, "no"), Verdict::kRespond, 403,
       {}, {}},
      {"the RPC failed (grpc-status 14): error, closed", true, 200,
       {{"grpc-status", "14"}, {"grpc-message", "down"}}, "", Verdict::kRespond, 403, {}, {}},
      {"no grpc-status: error", true, 200, {{"content-type", "application/grpc"}}, ok_response({}, {}),
       Verdict::kRespond, 403, {}, {}},
      {"HTTP 503: error", true, 503, {}, "", Verdict::kRespond, 403, {}, {}},
      {"a malformed message: error", true, 200, grpc_ok, ext_authz::grpc_frame("\x0a\x09"), Verdict::kRespond,
       403, {}, {}},
      {"a transport failure, fail open", false, 0, {}, "", Verdict::kContinue, 0, {}, {}, true},
  };
  for (const auto& c : cases) {
    auto cfg = grpc_config();
    cfg.fail_open = c.fail_open;
    ScriptedTransport t;
    t.answer.ok = c.ok;
    t.answer.error = "refused";
    t.answer.status = c.status;
    t.answer.headers = c.headers;
    t.answer.body = c.body;
    ExtAuthFilter f(cfg, &t);
    FakeExchange fx(FakeRequest{.headers = {{"X-Tenant", "t0"}, {"X-Client", "c"}}});
    Result r = run(f, fx);
    EXPECT_EQ(r.verdict, c.want) << c.name;
    if (c.want == Verdict::kRespond) {
      EXPECT_EQ(r.reply.status, c.reply_status) << c.name;
    } else {
      EXPECT_EQ(r.upstream_set, c.upstream) << c.name;
      EXPECT_EQ(r.upstream_removed, c.removed) << c.name;
    }
  }
}

TEST(ExtAuthGrpc, ADenialRelaysTheServicesAnswer) {
  auto c = grpc_config();
  ScriptedTransport t;
  t.answer.ok = true;
  t.answer.status = 200;
  t.answer.headers = {{"grpc-status", "0"}};
  t.answer.body = denied_response(7, 451, "not here");
  ExtAuthFilter f(c, &t);
  FakeExchange fx(FakeRequest{});
  Result r = run(f, fx);
  ASSERT_EQ(r.verdict, Verdict::kRespond);
  EXPECT_EQ(r.reply.status, 451);
  EXPECT_EQ(r.reply.body, "not here");
  EXPECT_EQ(field(r.reply.headers, "x-denied-by"), "policy");
  EXPECT_TRUE(r.reply.verbatim);
}

TEST(ExtAuthGrpc, TheCacheKeepsRemovesToo) {
  auto c = grpc_config();
  c.cache_ttl = std::chrono::seconds(30);
  ScriptedTransport t;
  t.answer.ok = true;
  t.answer.status = 200;
  t.answer.headers = {{"grpc-status", "0"}};
  t.answer.body = ok_response({{"x-user", "bob", 2}}, {"x-internal"});
  ExtAuthFilter f(c, &t);
  FakeExchange fx(FakeRequest{.headers = {{"Authorization", "Bearer k"}}});
  run(f, fx);
  Result again = run(f, fx);
  EXPECT_EQ(t.calls, 1);
  EXPECT_EQ(again.upstream_set, (exchange::OwnedHeaders{{"x-user", "bob"}}));
  EXPECT_EQ(again.upstream_removed, (std::vector<std::string>{"x-internal"}));
}

}  // namespace
}  // namespace gantry::filters
