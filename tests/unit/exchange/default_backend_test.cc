// filters.defaultBackend: the request to the default backend in place of an
// intercepted answer (ingress-nginx's @custom_ location), built from the head
// sent upstream; and which statuses are intercepted.
#include <gtest/gtest.h>

#include <string>

#include "proxy/exchange/default_backend.h"

namespace gantry::exchange {
namespace {

snapshot::DefaultBackend backend() {
  snapshot::DefaultBackend d;
  d.cluster = "default/errors:80";
  d.intercept_statuses = {404, 503};
  d.namespace_ = "default";
  d.ingress_name = "shop";
  d.service_name = "web";
  d.service_port = "8080";
  return d;
}

constexpr std::string_view kSent =
    "POST /api/items?x=1 HTTP/1.1\r\n"
    "host: upstream-vhost.internal\r\n"
    "Accept: text/html\r\n"
    "cookie: a=b\r\n"
    "x-code: spoofed\r\n"
    "X-Original-URI: /spoofed\r\n"
    "x-forwarded-for: 10.9.9.9\r\n"
    "x-forwarded-proto: https\r\n"
    "x-request-id: abc\r\n"
    "content-length: 5\r\n"
    "\r\n";

TEST(DefaultBackend, Intercepts) {
  auto d = backend();
  EXPECT_TRUE(intercepts(d, 404));
  EXPECT_TRUE(intercepts(d, 503));
  EXPECT_FALSE(intercepts(d, 500));
  EXPECT_FALSE(intercepts(d, 200));
  d.intercept_statuses.clear();
  EXPECT_FALSE(intercepts(d, 404));
}

struct Case {
  const char* name;
  ErrorPageRequest req;
  std::string want;
};

TEST(DefaultBackend, ErrorPageHead) {
  const Case cases[] = {
      {"every field, the client's fields kept, the sent X-* and framing replaced",
       {kSent, 404, "shop.example.com", "/api/items?x=1", "x=1", "192.0.2.7", "abc", true, 5},
       "POST /?x=1 HTTP/1.1\r\n"
       "host: shop.example.com\r\n"
       "x-code: 404\r\n"
       "x-format: text/html\r\n"
       "x-original-uri: /api/items?x=1\r\n"
       "x-namespace: default\r\n"
       "x-ingress-name: shop\r\n"
       "x-service-name: web\r\n"
       "x-service-port: 8080\r\n"
       "x-request-id: abc\r\n"
       "x-forwarded-for: 192.0.2.7\r\n"
       "Accept: text/html\r\n"
       "cookie: a=b\r\n"
       "x-forwarded-proto: https\r\n"
       "content-length: 5\r\n"
       "\r\n"},
      {"no Accept, no query, no body: no X-Format, path /, no framing",
       {"GET /missing HTTP/1.1\r\nhost: a\r\nx-request-id: r1\r\n\r\n", 503, "a", "/missing", "", "10.0.0.1",
        "r1", false, 0},
       "GET / HTTP/1.1\r\n"
       "host: a\r\n"
       "x-code: 503\r\n"
       "x-original-uri: /missing\r\n"
       "x-namespace: default\r\n"
       "x-ingress-name: shop\r\n"
       "x-service-name: web\r\n"
       "x-service-port: 8080\r\n"
       "x-request-id: r1\r\n"
       "x-forwarded-for: 10.0.0.1\r\n"
       "\r\n"},
      {"a streamed body not kept: Content-Length 0; HEAD stays HEAD",
       {"HEAD /x HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n", 404, "a", "/x", "", "10.0.0.1", "r2",
        true, 0},
       "HEAD / HTTP/1.1\r\n"
       "host: a\r\n"
       "x-code: 404\r\n"
       "x-original-uri: /x\r\n"
       "x-namespace: default\r\n"
       "x-ingress-name: shop\r\n"
       "x-service-name: web\r\n"
       "x-service-port: 8080\r\n"
       "x-request-id: r2\r\n"
       "x-forwarded-for: 10.0.0.1\r\n"
       "content-length: 0\r\n"
       "\r\n"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(error_page_head(backend(), c.req), c.want);
  }
}

}  // namespace
}  // namespace gantry::exchange
