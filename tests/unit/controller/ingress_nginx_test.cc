// ingress-nginx compatibility: every annotation's verdict and mapping (table),
// the host-wide regex rule, canary precedence, and the report.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "controller/core/ingress_nginx.h"
#include "controller/core/translate.h"
#include "proxy/snapshot/validate.h"
#include "tests/unit/controller/test_util.h"

namespace gantry::controller {
namespace {

namespace sn = gantry::snapshot;
using testing::dump;
using testing::load;

struct AnnotationRow {
  std::string name;   // without the prefix
  std::string value;
  NginxSupport support;
  bool blocks;
  std::function<void(const NginxConfig&)> check;  // may be empty
  std::map<std::string, std::string> with = {};   // other annotations set alongside
};

std::vector<AnnotationRow> rows() {
  using S = NginxSupport;
  return {
      {"use-regex", "true", S::kPartial, false, [](const NginxConfig& c) { EXPECT_TRUE(c.use_regex); }},
      {"rewrite-target", "/$2", S::kServed, false,
       [](const NginxConfig& c) { EXPECT_EQ(c.rewrite_target.value_or(""), "/$2"); }},
      {"rewrite-target", "/a?b=1", S::kRefused, true, nullptr},
      {"rewrite-target", "/$host", S::kRefused, true, nullptr},
      {"app-root", "/app", S::kServed, false, [](const NginxConfig& c) { EXPECT_EQ(*c.app_root, "/app"); }},
      {"app-root", "app", S::kRefused, false, nullptr},
      {"x-forwarded-prefix", "/api", S::kServed, false,
       [](const NginxConfig& c) { EXPECT_EQ(c.x_forwarded_prefix.value_or(""), "/api"); },
       {{"rewrite-target", "/$1"}}},
      {"x-forwarded-prefix", "/api", S::kRefused, false, nullptr},  // no rewrite: no effect
      {"ssl-redirect", "false", S::kServed, false,
       [](const NginxConfig& c) { EXPECT_EQ(c.ssl_redirect, std::optional<bool>(false)); }},
      {"ssl-redirect", "maybe", S::kRefused, false, nullptr},
      {"force-ssl-redirect", "true", S::kServed, false, [](const NginxConfig& c) { EXPECT_TRUE(c.force_ssl_redirect); }},
      {"permanent-redirect", "https://example.org/x", S::kServed, false, nullptr},
      {"permanent-redirect-code", "308", S::kServed, false,
       [](const NginxConfig& c) { EXPECT_EQ(c.permanent_redirect_code, 308); }},
      // ingress-nginx falls back to its default outside 300..308; 300 is one gantry cannot send.
      {"permanent-redirect-code", "200", S::kServed, false,
       [](const NginxConfig& c) { EXPECT_EQ(c.permanent_redirect_code, 301); }},
      {"permanent-redirect-code", "300", S::kRefused, false,
       [](const NginxConfig& c) { EXPECT_EQ(c.permanent_redirect_code, 301); }},
      {"temporal-redirect-code", "308", S::kServed, false,
       [](const NginxConfig& c) { EXPECT_EQ(c.temporal_redirect_code, 302); }},
      {"temporal-redirect", "https://example.org/y", S::kServed, false, nullptr},
      {"temporal-redirect-code", "307", S::kServed, false, nullptr},
      {"from-to-www-redirect", "true", S::kServed, false, nullptr},
      {"canary", "true", S::kServed, false, [](const NginxConfig& c) { EXPECT_TRUE(c.canary); }},
      {"canary-by-header", "X-Canary", S::kServed, false,
       [](const NginxConfig& c) { EXPECT_EQ(c.canary_rules.header, "X-Canary"); }, {{"canary", "true"}}},
      {"canary-by-header", "X-Canary", S::kRefused, false, nullptr},  // without canary: true
      {"canary-by-header-value", "v2", S::kServed, false, nullptr, {{"canary", "true"}}},
      {"canary-by-header-pattern", "^v[23]$", S::kPartial, false, nullptr, {{"canary", "true"}}},
      {"canary-by-header-pattern", "(?<=x)", S::kRefused, true, nullptr, {{"canary", "true"}}},
      {"canary-by-cookie", "canary", S::kPartial, false, nullptr, {{"canary", "true"}}},
      {"canary-weight", "30", S::kServed, false,
       [](const NginxConfig& c) { EXPECT_EQ(c.canary_rules.weight, 30); }, {{"canary", "true"}}},
      {"canary-weight-total", "1000", S::kServed, false,
       [](const NginxConfig& c) { EXPECT_EQ(c.canary_rules.weight_total, 1000); }, {{"canary", "true"}}},
      {"affinity", "cookie", S::kPartial, false,
       [](const NginxConfig& c) {
         ASSERT_TRUE(c.load_balancer);
         EXPECT_EQ(c.load_balancer->hash_on, sn::HashOn::kCookie);
         EXPECT_EQ(c.load_balancer->hash_key, "INGRESSCOOKIE");
       }},
      {"session-cookie-name", "route", S::kServed, false,
       [](const NginxConfig& c) { EXPECT_EQ(c.load_balancer->hash_key, "route"); }, {{"affinity", "cookie"}}},
      {"affinity", "cookie", S::kPartial, false,
       [](const NginxConfig& c) {
         EXPECT_EQ(c.load_balancer->cookie_secure, sn::CookieSecure::kOverTls);  // sticky.lua: Secure over TLS
         EXPECT_EQ(c.load_balancer->cookie_path, "");  // translate: the Ingress path
       }},
      {"session-cookie-path", "/app", S::kServed, false,
       [](const NginxConfig& c) { EXPECT_EQ(c.load_balancer->cookie_path, "/app"); }, {{"affinity", "cookie"}}},
      {"session-cookie-path", "/a; Domain=evil", S::kRefused, false,
       [](const NginxConfig& c) { EXPECT_EQ(c.load_balancer->cookie_path, ""); }, {{"affinity", "cookie"}}},
      {"session-cookie-domain", ".Example.com", S::kServed, false,
       [](const NginxConfig& c) { EXPECT_EQ(c.load_balancer->cookie_domain, ".example.com"); },
       {{"affinity", "cookie"}}},
      {"session-cookie-domain", "a;b", S::kRefused, false, nullptr, {{"affinity", "cookie"}}},
      {"session-cookie-secure", "true", S::kServed, false,
       [](const NginxConfig& c) { EXPECT_EQ(c.load_balancer->cookie_secure, sn::CookieSecure::kAlways); },
       {{"affinity", "cookie"}}},
      {"session-cookie-secure", "false", S::kServed, false,
       [](const NginxConfig& c) { EXPECT_EQ(c.load_balancer->cookie_secure, sn::CookieSecure::kOverTls); },
       {{"affinity", "cookie"}}},
      {"session-cookie-samesite", "None", S::kServed, false,
       [](const NginxConfig& c) { EXPECT_EQ(c.load_balancer->cookie_same_site, "None"); }, {{"affinity", "cookie"}}},
      {"session-cookie-samesite", "lax", S::kRefused, false, nullptr, {{"affinity", "cookie"}}},
      {"session-cookie-conditional-samesite-none", "true", S::kServed, false,
       [](const NginxConfig& c) { EXPECT_TRUE(c.load_balancer->cookie_same_site_none_if_compatible); },
       {{"affinity", "cookie"}, {"session-cookie-samesite", "None"}}},
      {"session-cookie-conditional-samesite-none", "true", S::kRefused, false, nullptr},  // no affinity: no effect
      {"session-cookie-max-age", "3600", S::kServed, false,
       [](const NginxConfig& c) { EXPECT_EQ(c.load_balancer->cookie_ttl.count(), 3600000); },
       {{"affinity", "cookie"}}},
      {"session-cookie-expires", "60", S::kPartial, false, nullptr, {{"affinity", "cookie"}}},
      {"session-cookie-samesite", "Strict", S::kServed, false, nullptr, {{"affinity", "cookie"}}},
      {"session-cookie-name", "route", S::kRefused, false, nullptr},  // without affinity
      {"limit-rps", "5", S::kPartial, false,
       [](const NginxConfig& c) {
         ASSERT_TRUE(c.rate_limit);
         EXPECT_EQ(c.rate_limit->requests, 5u);
         EXPECT_EQ(c.rate_limit->interval.count(), 1000);
         EXPECT_EQ(c.rate_limit->burst, 21u);  // nginx: 5 x 5 + 1 at once
         EXPECT_EQ(c.rate_limit->status_code, 503);
       }},
      {"limit-rpm", "60", S::kPartial, false,
       [](const NginxConfig& c) { EXPECT_EQ(c.rate_limit->interval.count(), 60000); }},
      {"limit-rpm", "60", S::kRefused, false, nullptr, {{"limit-rps", "5"}}},
      {"limit-burst-multiplier", "1", S::kServed, false,
       [](const NginxConfig& c) { EXPECT_EQ(c.rate_limit->burst, 1u); }, {{"limit-rps", "5"}}},
      {"limit-whitelist", "10.0.0.0/8, 192.0.2.1", S::kServed, false,
       [](const NginxConfig& c) {
         EXPECT_EQ(c.rate_limit->exempt_sources, (std::vector<std::string>{"10.0.0.0/8", "192.0.2.1"}));
       },
       {{"limit-rps", "5"}}},
      {"limit-allowlist", "10.0.0.0/8", S::kServed, false,
       [](const NginxConfig& c) { EXPECT_EQ(c.rate_limit->exempt_sources, std::vector<std::string>{"10.0.0.0/8"}); },
       {{"limit-rps", "5"}}},
      {"canary-weight-total", "50", S::kServed, false,
       [](const NginxConfig& c) { EXPECT_EQ(c.canary_rules.weight_total, 100); }, {{"canary", "true"}}},
      {"limit-connections", "10", S::kServed, false,
       [](const NginxConfig& c) {
         ASSERT_TRUE(c.connection_limit);
         EXPECT_EQ(c.connection_limit->per_client_ip, 10u);
         EXPECT_EQ(c.connection_limit->status_code, 503);  // limit-conn-status-code
         EXPECT_FALSE(c.rate_limit);
       }},
      {"limit-connections", "0", S::kServed, false, [](const NginxConfig& c) { EXPECT_FALSE(c.connection_limit); }},
      {"limit-connections", "-1", S::kRefused, false, nullptr},
      {"limit-connections", "ten", S::kRefused, false, nullptr},
      {"limit-whitelist", "10.0.0.0/8", S::kServed, false,
       [](const NginxConfig& c) {
         EXPECT_EQ(c.connection_limit->exempt_sources, std::vector<std::string>{"10.0.0.0/8"});
         EXPECT_FALSE(c.rate_limit);
       },
       {{"limit-connections", "2"}}},
      {"limit-whitelist", "10.0.0.0/8", S::kServed, false,
       [](const NginxConfig& c) {
         EXPECT_EQ(c.connection_limit->exempt_sources, std::vector<std::string>{"10.0.0.0/8"});
         EXPECT_EQ(c.rate_limit->exempt_sources, std::vector<std::string>{"10.0.0.0/8"});
       },
       {{"limit-connections", "2"}, {"limit-rps", "5"}}},
      {"limit-whitelist", "10.0.0.0/8", S::kRefused, false, nullptr},  // no limit: no effect
      {"default-backend", "errors", S::kServed, false,
       [](const NginxConfig& c) {
         EXPECT_EQ(c.default_backend, "errors");
         EXPECT_TRUE(c.custom_http_errors.empty());
       }},
      {"default-backend", "other/errors", S::kRefused, false, nullptr},
      {"custom-http-errors", "404, 503,", S::kPartial, false,
       [](const NginxConfig& c) { EXPECT_EQ(c.custom_http_errors, (std::vector<int>{404, 503})); },
       {{"default-backend", "errors"}}},
      {"custom-http-errors", "404,302", S::kRefused, false,
       [](const NginxConfig& c) { EXPECT_TRUE(c.custom_http_errors.empty()); }, {{"default-backend", "errors"}}},
      {"custom-http-errors", "404,abc", S::kRefused, false, nullptr, {{"default-backend", "errors"}}},
      // Without default-backend, ingress-nginx's global default backend: gantry has none.
      {"custom-http-errors", "404", S::kRefused, false,
       [](const NginxConfig& c) { EXPECT_TRUE(c.custom_http_errors.empty()); }},
      {"disable-proxy-intercept-errors", "true", S::kServed, false,
       [](const NginxConfig& c) { EXPECT_TRUE(c.custom_http_errors.empty()); },
       {{"default-backend", "errors"}, {"custom-http-errors", "404"}}},
      {"disable-proxy-intercept-errors", "false", S::kServed, false,
       [](const NginxConfig& c) { EXPECT_EQ(c.custom_http_errors, std::vector<int>{404}); },
       {{"default-backend", "errors"}, {"custom-http-errors", "404"}}},
      {"whitelist-source-range", "10.0.0.0/8,192.0.2.0/24", S::kServed, false,
       [](const NginxConfig& c) { EXPECT_EQ(c.source_range->allow.size(), 2u); }},
      {"allowlist-source-range", "10.0.0.0/8", S::kServed, false, nullptr},
      {"whitelist-source-range", "10.0.0.0/33", S::kRefused, true, nullptr},
      {"denylist-source-range", "203.0.113.0/24", S::kServed, false,
       [](const NginxConfig& c) { EXPECT_EQ(c.source_range->deny.size(), 1u); }},
      {"proxy-body-size", "8m", S::kServed, false,
       [](const NginxConfig& c) { EXPECT_EQ(c.body_size, std::optional<uint64_t>(8u << 20)); }},
      {"proxy-body-size", "0", S::kServed, false,
       [](const NginxConfig& c) { EXPECT_EQ(c.body_size, std::optional<uint64_t>(0)); }},
      {"proxy-body-size", "8mb", S::kRefused, false, nullptr},
      {"proxy-read-timeout", "120", S::kPartial, false,
       [](const NginxConfig& c) { EXPECT_EQ(c.read_timeout->count(), 120000); }},
      {"proxy-connect-timeout", "5", S::kPartial, false, nullptr},
      {"proxy-send-timeout", "60", S::kRefused, false, nullptr},
      {"proxy-next-upstream", "error timeout http_503", S::kPartial, false,
       [](const NginxConfig& c) {
         ASSERT_TRUE(c.retry);
         EXPECT_TRUE(c.retry->on_connect_failure);
         EXPECT_TRUE(c.retry->on_reset);
         EXPECT_EQ(c.retry->on_statuses, std::vector<int>{503});
         EXPECT_EQ(c.retry->attempts, 2u);
       }},
      {"proxy-next-upstream-tries", "1", S::kServed, false,
       [](const NginxConfig& c) { EXPECT_EQ(c.retry->attempts, 0u); }},
      {"backend-protocol", "HTTP", S::kServed, false, nullptr},
      {"backend-protocol", "AUTO_HTTP", S::kPartial, false, nullptr},
      {"backend-protocol", "FCGI", S::kRefused, true, nullptr},
      {"upstream-vhost", "internal.example", S::kServed, false, nullptr},
      {"service-upstream", "true", S::kPartial, false, nullptr},
      {"load-balance", "ewma", S::kPartial, false,
       [](const NginxConfig& c) { EXPECT_EQ(c.load_balancer->type, sn::LoadBalancerType::kLeastRequest); }},
      {"upstream-hash-by", "$remote_addr", S::kPartial, false,
       [](const NginxConfig& c) { EXPECT_EQ(c.load_balancer->hash_on, sn::HashOn::kSourceIP); }},
      {"upstream-hash-by", "$http_x_user", S::kPartial, false,
       [](const NginxConfig& c) { EXPECT_EQ(c.load_balancer->hash_key, "x-user"); }},
      {"upstream-hash-by", "$request_uri", S::kRefused, false, nullptr},
      {"enable-cors", "true", S::kPartial, false,
       [](const NginxConfig& c) {
         ASSERT_TRUE(c.cors);
         EXPECT_EQ(c.cors->allow_origins, std::vector<std::string>{"*"});
         EXPECT_TRUE(c.cors->allow_credentials);
         EXPECT_EQ(c.cors->max_age->count(), 1728000000);
       }},
      {"cors-allow-origin", "https://a.example.com, https://b.example.com", S::kServed, false,
       [](const NginxConfig& c) { EXPECT_EQ(c.cors->allow_origins.size(), 2u); }, {{"enable-cors", "true"}}},
      {"cors-allow-origin", "https://a.example.com", S::kRefused, false, nullptr},  // without enable-cors
      {"server-alias", "Alias.Example.com", S::kServed, false,
       [](const NginxConfig& c) { EXPECT_EQ(c.server_aliases, std::vector<std::string>{"alias.example.com"}); }},
      {"auth-type", "basic", S::kPartial, false,
       [](const NginxConfig& c) {
         ASSERT_TRUE(c.basic_auth);
         EXPECT_EQ(c.basic_auth->secret, "htpasswd");
         EXPECT_FALSE(c.basic_auth->auth_map);
         EXPECT_EQ(c.basic_auth->realm, "");
       },
       {{"auth-secret", "htpasswd"}}},
      {"auth-type", "basic", S::kRefused, true, [](const NginxConfig& c) { EXPECT_FALSE(c.basic_auth); }},
      {"auth-type", "digest", S::kRefused, true, nullptr, {{"auth-secret", "htpasswd"}}},
      {"auth-type", "bearer", S::kRefused, true, nullptr, {{"auth-secret", "htpasswd"}}},
      {"auth-secret", "team/htpasswd", S::kServed, false,
       [](const NginxConfig& c) {
         EXPECT_EQ(c.basic_auth->secret_namespace, "team");
         EXPECT_EQ(c.basic_auth->secret, "htpasswd");
       },
       {{"auth-type", "basic"}}},
      {"auth-secret", "htpasswd", S::kRefused, false, nullptr},  // without auth-type
      {"auth-secret-type", "auth-map", S::kServed, false,
       [](const NginxConfig& c) { EXPECT_TRUE(c.basic_auth->auth_map); },
       {{"auth-type", "basic"}, {"auth-secret", "users"}}},
      {"auth-secret-type", "auth-list", S::kRefused, true, [](const NginxConfig& c) { EXPECT_FALSE(c.basic_auth); },
       {{"auth-type", "basic"}, {"auth-secret", "users"}}},
      {"auth-realm", "Staff only", S::kServed, false,
       [](const NginxConfig& c) { EXPECT_EQ(c.basic_auth->realm, "Staff only"); },
       {{"auth-type", "basic"}, {"auth-secret", "users"}}},
      {"auth-realm", "say \"hi\"", S::kRefused, true, nullptr, {{"auth-type", "basic"}, {"auth-secret", "users"}}},
      {"preserve-trailing-slash", "true", S::kServed, false,
       [](const NginxConfig& c) { EXPECT_TRUE(c.preserve_trailing_slash); }},
      {"backend-protocol", "HTTPS", S::kPartial, false,
       [](const NginxConfig& c) {
         EXPECT_EQ(c.backend_protocol, NginxBackendProtocol::kHttps);
         EXPECT_FALSE(c.proxy_ssl);
       }},
      {"backend-protocol", "GRPC", S::kServed, false,
       [](const NginxConfig& c) { EXPECT_EQ(c.backend_protocol, NginxBackendProtocol::kGrpc); }},
      {"backend-protocol", "grpcs", S::kPartial, false,
       [](const NginxConfig& c) { EXPECT_EQ(c.backend_protocol, NginxBackendProtocol::kGrpcs); }},
      {"proxy-ssl-secret", "default/upstream", S::kServed, false,
       [](const NginxConfig& c) {
         ASSERT_TRUE(c.proxy_ssl);
         EXPECT_EQ(c.proxy_ssl->secret_namespace, "default");
         EXPECT_EQ(c.proxy_ssl->secret, "upstream");
         EXPECT_FALSE(c.proxy_ssl->verify);  // ingress-nginx: off
         EXPECT_FALSE(c.proxy_ssl->server_name);  // off
       },
       {{"backend-protocol", "HTTPS"}}},
      // ingress-nginx denies the location (503) for a name without its namespace.
      {"proxy-ssl-secret", "upstream", S::kRefused, true, [](const NginxConfig& c) { EXPECT_FALSE(c.proxy_ssl); },
       {{"backend-protocol", "HTTPS"}}},
      {"proxy-ssl-secret", "default/upstream", S::kRefused, false, [](const NginxConfig& c) { EXPECT_FALSE(c.proxy_ssl); }},
      {"proxy-ssl-verify", "on", S::kPartial, false,
       [](const NginxConfig& c) { EXPECT_TRUE(c.proxy_ssl->verify); },
       {{"backend-protocol", "HTTPS"}, {"proxy-ssl-secret", "default/upstream"}}},
      {"proxy-ssl-verify", "on", S::kRefused, false, nullptr},  // without proxy-ssl-secret: no effect
      {"proxy-ssl-verify", "true", S::kRefused, false, [](const NginxConfig& c) { EXPECT_FALSE(c.proxy_ssl->verify); },
       {{"backend-protocol", "GRPCS"}, {"proxy-ssl-secret", "default/upstream"}}},
      {"proxy-ssl-name", "Backend.Example.com", S::kServed, false,
       [](const NginxConfig& c) { EXPECT_EQ(c.proxy_ssl->name, "backend.example.com"); },
       {{"backend-protocol", "HTTPS"}, {"proxy-ssl-secret", "default/upstream"}, {"proxy-ssl-server-name", "on"}}},
      {"proxy-ssl-name", "backend.example.com", S::kPartial, false, nullptr,
       {{"backend-protocol", "HTTPS"}, {"proxy-ssl-secret", "default/upstream"}}},
      {"proxy-ssl-name", "$host", S::kRefused, false, nullptr,
       {{"backend-protocol", "HTTPS"}, {"proxy-ssl-secret", "default/upstream"}}},
      {"proxy-ssl-server-name", "on", S::kServed, false,
       [](const NginxConfig& c) { EXPECT_TRUE(c.proxy_ssl->server_name); },
       {{"backend-protocol", "HTTPS"}, {"proxy-ssl-secret", "default/upstream"}, {"proxy-ssl-name", "b.example"}}},
      {"proxy-ssl-server-name", "on", S::kPartial, false, nullptr,  // no name: no SNI (nginx: upstream_balancer)
       {{"backend-protocol", "HTTPS"}, {"proxy-ssl-secret", "default/upstream"}}},
      {"proxy-ssl-verify-depth", "2", S::kRefused, false, nullptr,
       {{"backend-protocol", "HTTPS"}, {"proxy-ssl-secret", "default/upstream"}}},
      {"configuration-snippet", "more_set_headers x: y;", S::kRefused, true, nullptr},
      {"server-snippet", "x", S::kRefused, true, nullptr},
      {"auth-url", "http://oauth2-proxy.auth.svc:4180/oauth2/auth", S::kPartial, false,
       [](const NginxConfig& c) {
         ASSERT_TRUE(c.ext_auth);
         EXPECT_EQ(c.ext_auth->host, "oauth2-proxy.auth.svc");
         EXPECT_EQ(c.ext_auth->port, 4180);
         EXPECT_EQ(c.ext_auth->path, "/oauth2/auth");
         EXPECT_EQ(c.ext_auth->status_on_error, 500);
         EXPECT_EQ(c.ext_auth->request_headers, (std::vector<std::string>{"authorization", "cookie"}));
       }},
      {"auth-url", "https://auth/verify", S::kPartial, false,
       [](const NginxConfig& c) {
         ASSERT_TRUE(c.ext_auth);
         EXPECT_TRUE(c.ext_auth->tls);  // verified against the system store
         EXPECT_EQ(c.ext_auth->port, 443);
       }},
      {"auth-url", "http://$host/verify", S::kRefused, true, nullptr},
      {"auth-signin", "https://auth.example/oauth2/start", S::kServed, false,
       [](const NginxConfig& c) { EXPECT_EQ(c.ext_auth->signin, "https://auth.example/oauth2/start"); },
       {{"auth-url", "http://auth/verify"}}},
      {"auth-signin", "https://$host/oauth2/start?rd=$escaped_request_uri", S::kRefused, false,
       [](const NginxConfig& c) { EXPECT_EQ(c.ext_auth->signin, ""); }, {{"auth-url", "http://auth/verify"}}},
      {"auth-response-headers", "X-Auth-Request-User, X-Auth-Request-Email", S::kServed, false,
       [](const NginxConfig& c) {
         EXPECT_EQ(c.ext_auth->response_headers,
                   (std::vector<std::string>{"x-auth-request-user", "x-auth-request-email"}));
       },
       {{"auth-url", "http://auth/verify"}}},
      {"auth-method", "POST", S::kServed, false,
       [](const NginxConfig& c) { EXPECT_EQ(c.ext_auth->method, "POST"); }, {{"auth-url", "http://auth/verify"}}},
      {"auth-method", "GET", S::kRefused, false, nullptr},  // without auth-url
      {"auth-snippet", "proxy_set_header X 1;", S::kRefused, true, nullptr, {{"auth-url", "http://auth/verify"}}},
      {"ssl-passthrough", "true", S::kServed, false, [](const NginxConfig& c) { EXPECT_TRUE(c.ssl_passthrough); }},
      {"ssl-passthrough", "yes", S::kRefused, false, nullptr},
      {"custom-http-errors", "404,503", S::kRefused, false, nullptr},
      {"no-such-annotation", "x", S::kUnknown, false, nullptr},
      // auth-tls-*: ingress-nginx's authtls parser (defaults on / 1; a value it
      // rejects as invalid refuses the Ingress).
      {"auth-tls-secret", "default/client-ca", S::kPartial, false,
       [](const NginxConfig& c) {
         ASSERT_TRUE(c.auth_tls);
         EXPECT_EQ(c.auth_tls->secret_namespace, "default");
         EXPECT_EQ(c.auth_tls->secret, "client-ca");
         EXPECT_EQ(c.auth_tls->verify, sn::ClientVerify::kOn);
         EXPECT_EQ(c.auth_tls->depth, 1u);
         EXPECT_FALSE(c.auth_tls->pass_certificate);
       }},
      {"auth-tls-secret", "client-ca", S::kPartial, false,
       [](const NginxConfig& c) { EXPECT_TRUE(c.auth_tls && c.auth_tls->secret_namespace.empty()); }},
      {"auth-tls-secret", "a/b/c", S::kRefused, true, [](const NginxConfig& c) { EXPECT_FALSE(c.auth_tls); }},
      {"auth-tls-secret", "ns/$bad", S::kRefused, true, nullptr},
      {"auth-tls-verify-client", "optional_no_ca", S::kServed, false,
       [](const NginxConfig& c) { EXPECT_EQ(c.auth_tls->verify, sn::ClientVerify::kOptionalNoCa); },
       {{"auth-tls-secret", "default/ca"}}},
      {"auth-tls-verify-client", "optional", S::kServed, false,
       [](const NginxConfig& c) { EXPECT_EQ(c.auth_tls->verify, sn::ClientVerify::kOptional); },
       {{"auth-tls-secret", "default/ca"}}},
      {"auth-tls-verify-client", "off", S::kServed, false,
       [](const NginxConfig& c) { EXPECT_EQ(c.auth_tls->verify, sn::ClientVerify::kOff); },
       {{"auth-tls-secret", "default/ca"}}},
      {"auth-tls-verify-client", "maybe", S::kRefused, false,
       [](const NginxConfig& c) { EXPECT_EQ(c.auth_tls->verify, sn::ClientVerify::kOn); },
       {{"auth-tls-secret", "default/ca"}}},
      {"auth-tls-verify-client", "on", S::kRefused, false, [](const NginxConfig& c) { EXPECT_FALSE(c.auth_tls); }},
      {"auth-tls-verify-depth", "3", S::kServed, false,
       [](const NginxConfig& c) { EXPECT_EQ(c.auth_tls->depth, 3u); }, {{"auth-tls-secret", "default/ca"}}},
      {"auth-tls-verify-depth", "0", S::kServed, false,
       [](const NginxConfig& c) { EXPECT_EQ(c.auth_tls->depth, 1u); }, {{"auth-tls-secret", "default/ca"}}},
      {"auth-tls-verify-depth", "deep", S::kRefused, false,
       [](const NginxConfig& c) { EXPECT_EQ(c.auth_tls->depth, 1u); }, {{"auth-tls-secret", "default/ca"}}},
      {"auth-tls-error-page", "https://errors.example.com/mtls", S::kServed, false,
       [](const NginxConfig& c) { EXPECT_EQ(c.auth_tls->error_page, "https://errors.example.com/mtls"); },
       {{"auth-tls-secret", "default/ca"}}},
      {"auth-tls-error-page", "/mtls-error", S::kPartial, false,
       [](const NginxConfig& c) { EXPECT_EQ(c.auth_tls->error_page, "/mtls-error"); },
       {{"auth-tls-secret", "default/ca"}}},
      {"auth-tls-error-page", "@named", S::kRefused, false,
       [](const NginxConfig& c) { EXPECT_EQ(c.auth_tls->error_page, ""); }, {{"auth-tls-secret", "default/ca"}}},
      {"auth-tls-error-page", "https://x.example/a b", S::kRefused, true,
       [](const NginxConfig& c) { EXPECT_FALSE(c.auth_tls); }, {{"auth-tls-secret", "default/ca"}}},
      {"auth-tls-pass-certificate-to-upstream", "true", S::kServed, false,
       [](const NginxConfig& c) { EXPECT_TRUE(c.auth_tls->pass_certificate); }, {{"auth-tls-secret", "default/ca"}}},
      {"auth-tls-pass-certificate-to-upstream", "yes", S::kRefused, true,
       [](const NginxConfig& c) { EXPECT_FALSE(c.auth_tls); }, {{"auth-tls-secret", "default/ca"}}},
      {"auth-tls-match-cn", "CN=(alice|bob)", S::kServed, false,
       [](const NginxConfig& c) { EXPECT_EQ(c.auth_tls->match_cn, "CN=(alice|bob)"); },
       {{"auth-tls-secret", "default/ca"}}},
      {"auth-tls-match-cn", "alice", S::kRefused, true, [](const NginxConfig& c) { EXPECT_FALSE(c.auth_tls); },
       {{"auth-tls-secret", "default/ca"}}},
      {"auth-tls-match-cn", "CN=(?=alice)", S::kRefused, true, nullptr, {{"auth-tls-secret", "default/ca"}}},
  };
}

class AnnotationTable : public ::testing::TestWithParam<AnnotationRow> {};

TEST_P(AnnotationTable, VerdictAndMapping) {
  const AnnotationRow& row = GetParam();
  std::map<std::string, std::string> a;
  for (const auto& [k, v] : row.with) a[kNginxAnnotationPrefix + k] = v;
  a[kNginxAnnotationPrefix + row.name] = row.value;
  a["unrelated.example.com/x"] = "ignored: not ingress-nginx's";
  NginxParse p = parse_nginx_annotations(a);
  ASSERT_EQ(p.verdicts.size(), a.size() - 1) << "every nginx annotation gets a verdict";
  const NginxAnnotationVerdict* v = nullptr;
  for (const auto& x : p.verdicts)
    if (x.name == row.name) v = &x;
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(nginx_support_name(v->support), std::string(nginx_support_name(row.support))) << v->detail;
  EXPECT_EQ(v->blocks, row.blocks);
  EXPECT_EQ(v->value, row.value);
  if (row.support != NginxSupport::kServed) {
    EXPECT_FALSE(v->detail.empty()) << "a difference is named";
  }
  if (row.check) row.check(p.config);
}

INSTANTIATE_TEST_SUITE_P(IngressNginx, AnnotationTable, ::testing::ValuesIn(rows()),
                         [](const ::testing::TestParamInfo<AnnotationRow>& i) {
                           std::string n = i.param.name;
                           n.append("_").append(std::to_string(i.index));
                           for (char& c : n)
                             if (!isalnum(static_cast<unsigned char>(c))) c = '_';
                           return n;
                         });

// Every annotation ingress-nginx v1.15 documents or parses, each with what
// it needs to take effect: none is unknown, none is silent, and at least 50
// are served with ingress-nginx's semantics (the issue's target).
TEST(IngressNginx, EveryIngressNginxAnnotationHasAVerdict) {
  const std::vector<std::string> all = {
      "affinity", "affinity-canary-behavior", "affinity-mode", "allowlist-source-range", "app-root",
      "auth-always-set-cookie", "auth-cache-duration", "auth-cache-key", "auth-keepalive",
      "auth-keepalive-requests", "auth-keepalive-share-vars", "auth-keepalive-timeout", "auth-method",
      "auth-proxy-set-headers", "auth-realm", "auth-request-redirect", "auth-response-headers",
      "auth-secret", "auth-secret-type", "auth-signin", "auth-signin-redirect-param", "auth-snippet",
      "auth-tls-error-page", "auth-tls-match-cn", "auth-tls-pass-certificate-to-upstream",
      "auth-tls-secret", "auth-tls-verify-client", "auth-tls-verify-depth", "auth-type", "auth-url",
      "backend-protocol", "canary", "canary-by-cookie", "canary-by-header", "canary-by-header-pattern",
      "canary-by-header-value", "canary-weight", "canary-weight-total", "client-body-buffer-size",
      "configuration-snippet", "connection-proxy-header", "cors-allow-credentials", "cors-allow-headers",
      "cors-allow-methods", "cors-allow-origin", "cors-expose-headers", "cors-max-age", "custom-headers",
      "custom-http-errors", "default-backend", "denylist-source-range", "disable-proxy-intercept-errors",
      "enable-access-log", "enable-cors", "enable-global-auth", "enable-modsecurity",
      "enable-opentelemetry", "enable-owasp-core-rules", "enable-rewrite-log", "fastcgi-index",
      "fastcgi-params-configmap", "force-ssl-redirect", "from-to-www-redirect", "http2-push-preload",
      "limit-allowlist", "limit-burst-multiplier", "limit-connections", "limit-rate", "limit-rate-after",
      "limit-rpm", "limit-rps", "limit-whitelist", "load-balance", "mirror-host", "mirror-request-body",
      "mirror-target", "modsecurity-snippet", "modsecurity-transaction-id",
      "opentelemetry-operation-name", "opentelemetry-trust-incoming-span", "permanent-redirect",
      "permanent-redirect-code", "preserve-trailing-slash", "proxy-body-size", "proxy-buffer-size",
      "proxy-buffering", "proxy-buffers-number", "proxy-busy-buffers-size", "proxy-connect-timeout",
      "proxy-cookie-domain", "proxy-cookie-path", "proxy-http-version", "proxy-max-temp-file-size",
      "proxy-next-upstream", "proxy-next-upstream-timeout", "proxy-next-upstream-tries",
      "proxy-read-timeout", "proxy-redirect-from", "proxy-redirect-to", "proxy-request-buffering",
      "proxy-send-timeout", "proxy-ssl-ciphers", "proxy-ssl-name", "proxy-ssl-protocols",
      "proxy-ssl-secret", "proxy-ssl-server-name", "proxy-ssl-verify", "proxy-ssl-verify-depth",
      "relative-redirects", "rewrite-target", "satisfy", "server-alias", "server-snippet",
      "service-upstream", "session-cookie-change-on-failure", "session-cookie-conditional-samesite-none",
      "session-cookie-domain", "session-cookie-expires", "session-cookie-max-age", "session-cookie-name",
      "session-cookie-path", "session-cookie-samesite", "session-cookie-secure", "ssl-ciphers",
      "ssl-passthrough", "ssl-prefer-server-ciphers", "ssl-redirect", "stream-snippet",
      "temporal-redirect", "temporal-redirect-code", "upstream-hash-by", "upstream-hash-by-subset",
      "upstream-hash-by-subset-size", "upstream-vhost", "use-port-in-redirects", "use-regex",
      "whitelist-source-range", "x-forwarded-prefix"};
  const std::map<std::string, std::string> value = {
      {"rewrite-target", "/$1"},        {"app-root", "/app"},
      {"permanent-redirect", "https://example.org/"}, {"temporal-redirect", "https://example.org/"},
      {"permanent-redirect-code", "308"}, {"temporal-redirect-code", "307"},
      {"canary-weight", "10"},          {"canary-weight-total", "100"},
      {"affinity", "cookie"},           {"session-cookie-max-age", "60"},
      {"session-cookie-expires", "60"}, {"load-balance", "ewma"}, {"session-cookie-path", "/app"},
      {"session-cookie-samesite", "Lax"}, {"session-cookie-domain", "example.com"},
      {"upstream-hash-by", "$remote_addr"}, {"limit-rps", "5"}, {"limit-rpm", "60"},
      {"limit-burst-multiplier", "3"},  {"limit-whitelist", "10.0.0.0/8"}, {"limit-allowlist", "10.0.0.0/8"},
      {"whitelist-source-range", "10.0.0.0/8"}, {"allowlist-source-range", "10.0.0.0/8"},
      {"denylist-source-range", "10.0.0.0/8"}, {"proxy-body-size", "8m"}, {"proxy-read-timeout", "30"},
      {"proxy-connect-timeout", "5"},   {"proxy-next-upstream", "error timeout"},
      {"proxy-next-upstream-tries", "3"}, {"backend-protocol", "HTTP"}, {"cors-max-age", "60"},
      {"canary-by-header-pattern", "^v2$"}, {"server-alias", "alias.example.com"},
      {"auth-url", "http://auth/verify"}, {"auth-method", "GET"},
      {"auth-signin", "https://auth.example/oauth2/start"}, {"auth-signin-redirect-param", "rd"},
      {"auth-response-headers", "X-Auth-Request-User"}, {"proxy-ssl-secret", "default/upstream"},
      {"proxy-ssl-verify", "on"}, {"proxy-ssl-server-name", "on"}, {"proxy-ssl-name", "backend.example"},
      {"proxy-ssl-verify-depth", "2"}, {"limit-connections", "10"}, {"default-backend", "errors"},
      {"custom-http-errors", "404,503"},
      {"auth-tls-secret", "default/client-ca"},
      {"auth-tls-verify-client", "optional"}, {"auth-tls-verify-depth", "2"},
      {"auth-tls-error-page", "https://example.org/mtls"}, {"auth-tls-match-cn", "CN=client"}};
  const std::map<std::string, std::map<std::string, std::string>> needs = {
      {"canary", {{"canary", "true"}}},
      {"affinity", {{"affinity", "cookie"}}},
      {"session", {{"affinity", "cookie"}}},
      {"cors", {{"enable-cors", "true"}}},
      {"limit-burst-multiplier", {{"limit-rps", "5"}}},
      {"limit-whitelist", {{"limit-rps", "5"}}},
      {"limit-allowlist", {{"limit-rps", "5"}}},
      {"custom-http-errors", {{"default-backend", "errors"}}},
      {"disable-proxy-intercept-errors", {{"default-backend", "errors"}, {"custom-http-errors", "404"}}},
      {"x-forwarded-prefix", {{"rewrite-target", "/$1"}}},
      {"auth-", {{"auth-url", "http://auth/verify"}}},
      {"auth-tls-", {{"auth-tls-secret", "default/client-ca"}}},
      {"proxy-ssl-", {{"backend-protocol", "HTTPS"}, {"proxy-ssl-secret", "default/upstream"}}}};
  int with_semantics = 0;
  std::string served;
  for (const auto& name : all) {
    std::map<std::string, std::string> a;
    for (const auto& [prefix, extra] : needs)
      if (name.starts_with(prefix) && name != "canary" && name != "affinity")
        for (const auto& [k, v] : extra) a[kNginxAnnotationPrefix + k] = v;
    auto it = value.find(name);
    a[kNginxAnnotationPrefix + name] = it != value.end() ? it->second : "true";
    NginxParse p = parse_nginx_annotations(a);
    ASSERT_EQ(p.verdicts.size(), a.size()) << name;
    for (const auto& v : p.verdicts) {
      if (v.name != name) continue;
      EXPECT_NE(v.support, NginxSupport::kUnknown) << name << " is ingress-nginx's: it must be known";
      if (v.support != NginxSupport::kServed) {
        EXPECT_FALSE(v.detail.empty()) << name;
      }
      if (v.support == NginxSupport::kServed || v.support == NginxSupport::kPartial) {
        ++with_semantics;
        served.append(" ").append(name);
      }
    }
  }
  EXPECT_EQ(with_semantics, 78) << served;
}

TEST(IngressNginx, Sizes) {
  EXPECT_EQ(parse_nginx_size("1m"), std::optional<uint64_t>(1048576));
  EXPECT_EQ(parse_nginx_size("512K"), std::optional<uint64_t>(524288));
  EXPECT_EQ(parse_nginx_size("2g"), std::optional<uint64_t>(2ull << 30));
  EXPECT_EQ(parse_nginx_size("100"), std::optional<uint64_t>(100));
  EXPECT_EQ(parse_nginx_size("0"), std::optional<uint64_t>(0));
  EXPECT_EQ(parse_nginx_size("1Mi"), std::nullopt);
  EXPECT_EQ(parse_nginx_size(""), std::nullopt);
}

TEST(IngressNginx, RewriteSubstitution) {
  EXPECT_EQ(nginx_rewrite_substitution("/$2"), std::optional<std::string>("/\\2"));
  EXPECT_EQ(nginx_rewrite_substitution("/x/${1}y"), std::optional<std::string>("/x/\\1y"));
  EXPECT_EQ(nginx_rewrite_substitution("/$request_uri"), std::nullopt);
  EXPECT_EQ(nginx_rewrite_substitution("/$10"), std::nullopt);
  EXPECT_EQ(nginx_location_regex("/api/(.*)"), "(?i)(?:/api/(.*)).*");
}

const char* kServices = R"(
apiVersion: v1
kind: Service
metadata: {name: main}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: canary}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: other}
spec: {ports: [{name: http, port: 80}]}
)";

std::string ingress(const std::string& name, int64_t created, const std::string& annotations,
                    const std::string& host, const std::string& path, const std::string& type,
                    const std::string& svc, const std::string& extra_spec = "") {
  std::string t("---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: ");
  t += name;
  // Appended piece by piece: GCC 12 at -O3 reports a false -Wrestrict for
  // "literal" + std::string&& (GCC PR 105329).
  t.append("\n  creationTimestamp: \"2024-01-01T00:00:").append(created < 10 ? "0" : "");
  t.append(std::to_string(created)).append("Z\"\n  annotations: {").append(annotations);
  t.append("}\nspec:\n  ingressClassName: nginx\n").append(extra_spec).append("  rules:\n  - host: ");
  t.append(host).append("\n    http:\n      paths:\n      - path: \"").append(path);
  t.append("\"\n        pathType: ").append(type).append("\n        backend: {service: {name: ").append(svc);
  t.append(", port: {number: 80}}}\n");
  return t;
}

// A self-signed certificate for shop.example.com (the one translate_test.cc uses).
constexpr std::string_view kTlsSecret = R"(
---
apiVersion: v1
kind: Secret
metadata: {name: shop-tls}
type: kubernetes.io/tls
stringData:
  tls.crt: |
    -----BEGIN CERTIFICATE-----
    MIIBjDCCATOgAwIBAgIUWY1V8aRAWiIxw5uHInwOanEbA50wCgYIKoZIzj0EAwIw
    GzEZMBcGA1UEAwwQc2hvcC5leGFtcGxlLmNvbTAgFw0yNjExMjUxMjI4NDRaGA8y
    MTI2MTEwMTEyMjg0NFowGzEZMBcGA1UEAwwQc2hvcC5leGFtcGxlLmNvbTBZMBMG
    ByqGSM49AgEGCCqGSM49AwEHA0IABEhehFJ3f+Ba1ZeWpMGefvcpC5v+rpp9166h
    /H2ayh9pSVBlb6hvTXLP7jqQFmE42tHTLYoXw1uJvbIUr7uti72jUzBRMB0GA1Ud
    DgQWBBTMpLktQLZQkLCHMmMjVYE0N/ibbTAfBgNVHSMEGDAWgBTMpLktQLZQkLCH
    MmMjVYE0N/ibbTAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0cAMEQCIDIf
    48nCc6e1ZxSxoG4ALheqC5Vl5+jk6D3uAP5uDKjHAiAN2YeBHenngM+FnoLQgLZA
    EJAo9AYYVY5rVF+Q5Txgzw==
    -----END CERTIFICATE-----
  tls.key: |
    -----BEGIN PRIVATE KEY-----
    MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgph6APFCPvvCCj8Zw
    1ajVZ7H6fzb9Wqucwtb63LhdZlShRANCAARIXoRSd3/gWtWXlqTBnn73KQub/q6a
    fdeuofx9msofaUlQZW+ob01yz+46kBZhONrR0y2KF8Nbib2yFK+7rYu9
    -----END PRIVATE KEY-----
)";

TranslateOptions nginx_options() {
  TranslateOptions o;
  o.ingress_nginx.enabled = true;
  o.ingress_nginx.classes = {"nginx"};
  return o;
}

TEST(IngressNginx, OffByDefault) {
  Cache c = load(std::string(kServices) + ingress("web", 1, "", "a.example.com", "/", "Prefix", "main"));
  TranslateResult r = translate(c, TranslateOptions{});
  EXPECT_TRUE(r.snapshot.routes.empty());
  EXPECT_TRUE(r.ingress_nginx.empty());
}

// --ingress-nginx-watch-without-class: an Ingress without any class is
// served with ingress-nginx's semantics, even where gantry's own IngressClass
// is the default; one of another class stays out.
TEST(IngressNginx, ClasslessIngressesWithWatchWithoutClass) {
  auto classless = [](std::string yaml) {
    yaml.replace(yaml.find("  ingressClassName: nginx\n"), std::string_view("  ingressClassName: nginx\n").size(), "");
    return yaml;
  };
  std::string other = ingress("other", 3, "", "c.example.com", "/", "Prefix", "main");
  other.replace(other.find("ingressClassName: nginx"), std::string_view("ingressClassName: nginx").size(),
                "ingressClassName: traefik");
  Cache c = load(std::string(kServices) +
                 classless(ingress("bare", 1, "nginx.ingress.kubernetes.io/use-regex: \"true\"", "a.example.com",
                                   "/App", "Prefix", "main")) +
                 ingress("named", 2, "", "b.example.com", "/", "Prefix", "main") + other);
  TranslateOptions o = nginx_options();
  TranslateResult r = translate(c, o);
  EXPECT_EQ(r.ingress_nginx.size(), 1u);  // the classless one is not served by default
  o.claim_classless_ingresses = true;     // gantry's own IngressClass is the default:
  r = translate(c, o);                    // gantry's semantics (no regex)
  EXPECT_EQ(r.ingress_nginx.size(), 1u);
  EXPECT_NE(dump(r.snapshot).find("route default/bare (Ingress) hosts=a.example.com\n rule0 PathPrefix:/App"),
            std::string::npos) << dump(r.snapshot);
  o.ingress_nginx.watch_without_class = true;
  r = translate(c, o);
  EXPECT_EQ(r.ingress_nginx.size(), 2u);
  std::string d = dump(r.snapshot);
  EXPECT_NE(d.find("route default/bare (Ingress) hosts=a.example.com\n rule0 RegularExpression:(?i)"),
            std::string::npos) << d;
  EXPECT_EQ(d.find("default/other"), std::string::npos) << d;
}

TEST(IngressNginx, RegexIsHostWideCaseInsensitiveStartAnchoredLongestFirst) {
  // One Ingress sets rewrite-target: the plain Prefix path of the other
  // Ingress on the same host becomes a regex too; another host is untouched.
  Cache c = load(std::string(kServices) +
                 ingress("plain", 1, "", "a.example.com", "/app", "Prefix", "main") +
                 ingress("rw", 2, "nginx.ingress.kubernetes.io/rewrite-target: /$2", "a.example.com",
                         "/api(/|$)(.*)", "ImplementationSpecific", "other") +
                 ingress("b", 3, "", "b.example.com", "/app", "Prefix", "main"));
  TranslateResult r = translate(c, nginx_options());
  std::string d = dump(r.snapshot);
  EXPECT_NE(d.find("route default/plain (Ingress) hosts=a.example.com\n rule0 RegularExpression:(?i)(?:/app).* ->"),
            std::string::npos) << d;
  EXPECT_NE(d.find("route default/b (Ingress) hosts=b.example.com\n rule0 PathPrefix:/app ->"), std::string::npos) << d;
  for (const auto& route : r.snapshot.routes) {
    if (route.name != "rw") continue;
    const auto& m = route.rules[0].matches[0].path;
    EXPECT_EQ(m.priority, 13);  // the path's length: longest first
    ASSERT_TRUE(route.rules[0].filters.url_rewrite);
    EXPECT_EQ(route.rules[0].filters.url_rewrite->path.pattern, "(?i)/api(/|$)(.*)");
    EXPECT_EQ(route.rules[0].filters.url_rewrite->path.value, "/\\2");
  }
  EXPECT_EQ(r.ingress_nginx.size(), 3u);
}

TEST(IngressNginx, CanaryPrecedenceHeaderThenCookieThenWeight) {
  Cache c = load(std::string(kServices) + ingress("main", 1, "", "a.example.com", "/", "Prefix", "main") +
                 ingress("can", 2,
                         "nginx.ingress.kubernetes.io/canary: 'true', "
                         "nginx.ingress.kubernetes.io/canary-by-header: X-Canary, "
                         "nginx.ingress.kubernetes.io/canary-by-cookie: canary, "
                         "nginx.ingress.kubernetes.io/canary-weight: '20'",
                         "a.example.com", "/", "Prefix", "canary"));
  TranslateResult r = translate(c, nginx_options());
  EXPECT_EQ(dump(r.snapshot),
            "route default/main (Ingress) hosts=a.example.com\n"
            " rule0 PathPrefix:/ h:x-canary=always -> default/canary:80\n"
            " rule1 PathPrefix:/ h:x-canary=never -> default/main:80\n"
            " rule2 PathPrefix:/ h:cookie=(?:.*;\\s*)?canary=always(?:;.*)? -> default/canary:80\n"
            " rule3 PathPrefix:/ h:cookie=(?:.*;\\s*)?canary=never(?:;.*)? -> default/main:80\n"
            " rule4 PathPrefix:/ -> default/main:80*80 default/canary:80*20\n"
            "cluster default/canary:80\ncluster default/main:80\n");
  std::string st = dump(r.statuses);
  EXPECT_NE(st.find("Ingress default/can Accepted=True"), std::string::npos) << st;
}

TEST(IngressNginx, CanaryWithoutMainIsNotAccepted) {
  Cache c = load(std::string(kServices) +
                 ingress("can", 2, "nginx.ingress.kubernetes.io/canary: 'true'", "a.example.com", "/", "Prefix",
                         "canary"));
  TranslateResult r = translate(c, nginx_options());
  EXPECT_NE(dump(r.statuses).find("Ingress default/can Accepted=False(NoMainIngress)"), std::string::npos)
      << dump(r.statuses);
  ASSERT_EQ(r.ingress_nginx.size(), 1u);
  EXPECT_FALSE(r.ingress_nginx[0].served);
}

TEST(IngressNginx, BlockingRefusalKeepsTheIngressOutUnlessOptedIn) {
  Cache c = load(std::string(kServices) +
                 ingress("snip", 1, "nginx.ingress.kubernetes.io/configuration-snippet: 'deny all;'",
                         "a.example.com", "/", "Prefix", "main"));
  TranslateResult r = translate(c, nginx_options());
  EXPECT_TRUE(r.snapshot.routes.empty());
  EXPECT_NE(dump(r.statuses).find("Accepted=False(UnsupportedValue)"), std::string::npos) << dump(r.statuses);
  EXPECT_NE(dump(r.statuses).find("IngressNginxAnnotations=False(NotServed)"), std::string::npos);
  TranslateOptions o = nginx_options();
  o.ingress_nginx.serve_refused = true;
  r = translate(c, o);
  EXPECT_EQ(r.snapshot.routes.size(), 1u);
  EXPECT_NE(nginx_report_text(r.ingress_nginx).find("refused  configuration-snippet"), std::string::npos)
      << nginx_report_text(r.ingress_nginx);
}

TEST(IngressNginx, SslPassthroughBecomesPassthroughEntriesWithTheFlag) {
  const std::string pt = "nginx.ingress.kubernetes.io/ssl-passthrough: 'true'";
  Cache c = load(std::string(kServices) + ingress("db", 1, pt, "DB.example.com", "/", "Prefix", "main") +
                 ingress("late", 2, pt, "db.example.com", "/x", "Prefix", "other") +
                 ingress("wild", 3, pt, "'*.db.example.org'", "/ignored", "Prefix", "other") +
                 ingress("plain", 4, "", "www.example.com", "/", "Prefix", "main"));
  // Without the flag: ignored (as ingress-nginx without --enable-ssl-passthrough), said so.
  TranslateResult r = translate(c, nginx_options());
  EXPECT_TRUE(r.snapshot.passthrough.empty());
  EXPECT_EQ(r.snapshot.routes.size(), 4u);
  EXPECT_NE(nginx_report_text(r.ingress_nginx).find("refused  ssl-passthrough"), std::string::npos)
      << nginx_report_text(r.ingress_nginx);
  TranslateOptions o = nginx_options();
  o.ingress_nginx.ssl_passthrough = true;
  r = translate(c, o);
  // One entry per host, to the first path's Service; the oldest Ingress keeps a host.
  ASSERT_EQ(r.snapshot.passthrough.size(), 2u);
  EXPECT_EQ(r.snapshot.passthrough[0], (snapshot::Passthrough{"*.db.example.org", "default/other:80", "", "default/wild"}));
  EXPECT_EQ(r.snapshot.passthrough[1], (snapshot::Passthrough{"db.example.com", "default/main:80", "", "default/db"}));
  EXPECT_EQ(r.snapshot.routes.size(), 4u);  // plain HTTP is still routed by path
  EXPECT_NE(nginx_report_text(r.ingress_nginx).find("served   ssl-passthrough"), std::string::npos)
      << nginx_report_text(r.ingress_nginx);
  r.snapshot.version = 1;
  auto errors = snapshot::validate(r.snapshot);
  EXPECT_TRUE(errors.empty()) << errors.front();
}

TEST(IngressNginx, DefaultsAndRedirects) {
  Cache c = load(std::string(kServices) + std::string(kTlsSecret) +
                 ingress("web", 1,
                         "nginx.ingress.kubernetes.io/app-root: /app, "
                         "nginx.ingress.kubernetes.io/from-to-www-redirect: 'true'",
                         "www.example.com", "/", "Prefix", "main",
                         "  tls:\n  - hosts: [www.example.com]\n    secretName: shop-tls\n"));
  TranslateResult r = translate(c, nginx_options());
  ASSERT_EQ(r.snapshot.routes.size(), 2u);
  const sn::Route& redirect = r.snapshot.routes[0];  // sorted by name: web@example.com first
  EXPECT_EQ(redirect.hostnames, std::vector<std::string>{"example.com"});
  ASSERT_TRUE(redirect.rules[0].filters.request_redirect);
  EXPECT_EQ(redirect.rules[0].filters.request_redirect->status_code, 308);
  EXPECT_EQ(redirect.rules[0].filters.request_redirect->location, std::optional<std::string>("//www.example.com\\0"));
  EXPECT_TRUE(redirect.rules[0].filters.request_redirect->keep_query);
  const sn::Route& web = r.snapshot.routes[1];
  ASSERT_EQ(web.rules.size(), 2u);
  EXPECT_EQ(web.rules[0].matches[0].path.type, sn::PathMatchType::kExact);  // app-root
  EXPECT_EQ(web.rules[0].filters.request_redirect->location, std::optional<std::string>("/app"));
  const sn::Filters& f = web.rules[1].filters;
  ASSERT_TRUE(f.https_redirect);  // the host has a certificate: ssl-redirect defaults on, 308
  EXPECT_EQ(f.https_redirect->status_code, 308);
  EXPECT_TRUE(f.https_redirect->strip_trailing_slash);
  EXPECT_EQ(f.max_request_body_size, std::optional<uint64_t>(1 << 20));  // ingress-nginx's 1m
  ASSERT_TRUE(f.hsts);
  EXPECT_EQ(f.hsts->value, "max-age=31536000; includeSubDomains");
}

// limit-connections: one zone per Ingress, on every rule of every host of
// it; default-backend: the Service's first port in plain HTTP, on every rule,
// with custom-http-errors' codes and the X-* values of the rule's Service.
TEST(IngressNginx, ConnectionLimitAndDefaultBackend) {
  const std::string errors_svc = R"(
---
apiVersion: v1
kind: Service
metadata: {name: errors}
spec: {ports: [{name: http, port: 8080}, {name: other, port: 9090}]}
)";
  Cache c = load(std::string(kServices) + errors_svc +
                 ingress("web", 1,
                         "nginx.ingress.kubernetes.io/limit-connections: '2', "
                         "nginx.ingress.kubernetes.io/limit-whitelist: '10.1.0.0/16', "
                         "nginx.ingress.kubernetes.io/default-backend: errors, "
                         "nginx.ingress.kubernetes.io/custom-http-errors: '404,503', "
                         "nginx.ingress.kubernetes.io/server-alias: b.example.com",
                         "a.example.com", "/", "Prefix", "main"));
  TranslateResult r = translate(c, nginx_options());
  ASSERT_EQ(r.snapshot.routes.size(), 1u);
  r.snapshot.version = 1;
  for (const auto& e : sn::validate(r.snapshot)) ADD_FAILURE() << e;
  const sn::Filters& f = r.snapshot.routes[0].rules[0].filters;
  ASSERT_TRUE(f.connection_limit);
  EXPECT_EQ(f.connection_limit->per_client_ip, 2u);
  EXPECT_EQ(f.connection_limit->status_code, 503);
  EXPECT_EQ(f.connection_limit->zone, "Ingress/default/web");
  EXPECT_EQ(f.connection_limit->exempt_sources, std::vector<std::string>{"10.1.0.0/16"});
  ASSERT_TRUE(f.default_backend);
  EXPECT_EQ(f.default_backend->cluster, "default/errors:8080");
  EXPECT_EQ(f.default_backend->intercept_statuses, (std::vector<int>{404, 503}));
  EXPECT_EQ(f.default_backend->namespace_, "default");
  EXPECT_EQ(f.default_backend->ingress_name, "web");
  EXPECT_EQ(f.default_backend->service_name, "main");
  EXPECT_EQ(f.default_backend->service_port, "80");
  bool has_cluster = false;
  for (const auto& cl : r.snapshot.clusters) has_cluster = has_cluster || cl.name == "default/errors:8080";
  EXPECT_TRUE(has_cluster);

  // A missing default backend Service: a finding, and nothing intercepted.
  Cache missing = load(std::string(kServices) +
                       ingress("web", 1, "nginx.ingress.kubernetes.io/default-backend: nope", "a.example.com", "/",
                               "Prefix", "main"));
  TranslateResult m = translate(missing, nginx_options());
  ASSERT_EQ(m.snapshot.routes.size(), 1u);
  EXPECT_FALSE(m.snapshot.routes[0].rules[0].filters.default_backend);
  bool found = false;
  for (const auto& st : m.statuses)
    for (const auto& cond : st.conditions) found = found || cond.message.find("nope not found") != std::string::npos;
  EXPECT_TRUE(found);
}

// auth-type: basic reads the htpasswd file (key `auth`) or the auth-map of the
// Ingress's namespace; MD5 lines are refused and named; another namespace's
// Secret makes the Ingress Invalid rather than leaving the route open.
TEST(IngressNginx, BasicAuthOnTheBasicAuthFilter) {
  const std::string bcrypt = "$2y$05$abcdefghijklmnopqrstuuQ3aFZ1kD1N3yS5mBvV5H8aZjH2m1K7u";  // shape only
  std::string secrets = "---\napiVersion: v1\nkind: Secret\nmetadata: {name: file}\nstringData:\n  auth: |\n";
  secrets.append("    alice:").append(bcrypt).append("\n    mallory:$apr1$xyz$0123456789abcdefghijkl\n");
  secrets.append("---\napiVersion: v1\nkind: Secret\nmetadata: {name: map}\nstringData:\n  bob: \"");
  secrets.append(bcrypt).append("\"\n");
  const std::string basic = "nginx.ingress.kubernetes.io/auth-type: basic, nginx.ingress.kubernetes.io/auth-realm: Staff, ";
  Cache c = load(std::string(kServices) + secrets +
                 ingress("file", 1, basic + "nginx.ingress.kubernetes.io/auth-secret: file", "a.example.com", "/",
                         "Prefix", "main") +
                 ingress("map", 2,
                         basic + "nginx.ingress.kubernetes.io/auth-secret: default/map, "
                                 "nginx.ingress.kubernetes.io/auth-secret-type: auth-map",
                         "b.example.com", "/", "Prefix", "main") +
                 ingress("elsewhere", 3, basic + "nginx.ingress.kubernetes.io/auth-secret: kube-system/file",
                         "c.example.com", "/", "Prefix", "main"));
  TranslateResult r = translate(c, nginx_options());
  ASSERT_EQ(r.snapshot.routes.size(), 2u) << dump(r.statuses);
  const sn::Filters& file = r.snapshot.routes[0].rules[0].filters;
  ASSERT_TRUE(file.basic_auth);
  EXPECT_EQ(file.basic_auth->realm, "Staff");
  EXPECT_EQ(file.basic_auth->consumer_header, "x-remote-user");
  ASSERT_EQ(file.basic_auth->users.size(), 1u);
  EXPECT_EQ(file.basic_auth->users[0].name, "alice");
  const sn::Filters& map = r.snapshot.routes[1].rules[0].filters;
  ASSERT_TRUE(map.basic_auth);
  ASSERT_EQ(map.basic_auth->users.size(), 1u);
  EXPECT_EQ(map.basic_auth->users[0].name, "bob");
  std::string st = dump(r.statuses) + testing::all_messages(r.statuses);
  EXPECT_NE(st.find("user \"mallory\": MD5"), std::string::npos) << st;
  EXPECT_NE(st.find("Ingress default/elsewhere Accepted=False(RefNotPermitted)"), std::string::npos) << st;
  EXPECT_NE(st.find("kube-system/file is in another namespace"), std::string::npos) << st;
}

TEST(IngressNginx, SslRedirectNeedsACertificateForTheHost) {
  // lua_ingress.lua: ssl-redirect only where a certificate is configured.
  Cache c = load(std::string(kServices) +
                 ingress("web", 1, "", "a.example.com", "/", "Prefix", "main",
                         "  tls:\n  - hosts: [a.example.com]\n    secretName: missing\n"));
  TranslateOptions o = nginx_options();
  o.ingress_nginx.hsts.clear();
  TranslateResult r = translate(c, o);
  ASSERT_EQ(r.snapshot.routes.size(), 1u);
  EXPECT_FALSE(r.snapshot.routes[0].rules[0].filters.https_redirect);
  EXPECT_FALSE(r.snapshot.routes[0].rules[0].filters.hsts);
}

// kTlsSecret as an upstream Secret `name`: its certificate as ca.crt (when
// `ca`), and as tls.crt/tls.key, the client certificate (when `pair`).
std::string upstream_secret(const std::string& name, bool ca, bool pair) {
  const std::string t(kTlsSecret);
  size_t crt = t.find("  tls.crt: |\n"), key = t.find("  tls.key: |\n");
  std::string cert_block = t.substr(crt + 13, key - crt - 13), key_block = t.substr(key + 13);
  std::string out("---\napiVersion: v1\nkind: Secret\nmetadata: {name: ");
  out.append(name).append("}\nstringData:\n");
  if (ca) out.append("  ca.crt: |\n").append(cert_block);
  if (pair) out.append("  tls.crt: |\n").append(cert_block).append("  tls.key: |\n").append(key_block);
  return out;
}

// backend-protocol HTTPS / GRPCS: clusters of the Ingress's own with its TLS
// (nginx's defaults: unverified, no SNI; proxy-ssl-* from the Secret); GRPC:
// the h2c cluster; a Secret that cannot be read leaves the cluster without
// endpoints (ingress-nginx denies the location: 503), never unverified.
TEST(IngressNginx, BackendProtocolClusters) {
  const std::string n = "nginx.ingress.kubernetes.io/";
  const std::string https = n + "backend-protocol: HTTPS, ";
  const std::string slice = R"(
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: main-a, labels: {kubernetes.io/service-name: main}}
addressType: IPv4
ports: [{name: http, port: 8443}]
endpoints:
- addresses: [10.0.0.1]
)";
  Cache c = load(std::string(kServices) + slice + upstream_secret("upstream", true, true) +
                 upstream_secret("ca-only", true, false) +
                 ingress("verified", 1,
                         https + n + "proxy-ssl-secret: default/upstream, " + n + "proxy-ssl-verify: 'on', " + n +
                             "proxy-ssl-name: shop.example.com, " + n + "proxy-ssl-server-name: 'on'",
                         "a.example.com", "/", "Prefix", "main") +
                 ingress("plain", 2, n + "backend-protocol: HTTPS", "b.example.com", "/", "Prefix", "main") +
                 ingress("nosni", 3,
                         https + n + "proxy-ssl-secret: default/ca-only, " + n + "proxy-ssl-verify: 'on', " + n +
                             "proxy-ssl-name: shop.example.com",
                         "c.example.com", "/", "Prefix", "main") +
                 ingress("grpc", 4, n + "backend-protocol: GRPC", "d.example.com", "/", "Prefix", "main") +
                 ingress("grpcs", 5, n + "backend-protocol: GRPCS", "e.example.com", "/", "Prefix", "main") +
                 ingress("elsewhere", 6, https + n + "proxy-ssl-secret: kube-system/upstream", "f.example.com", "/",
                         "Prefix", "main") +
                 ingress("missing", 7, https + n + "proxy-ssl-secret: default/nope", "g.example.com", "/", "Prefix",
                         "main") +
                 ingress("canary", 8, n + "canary: 'true', " + n + "canary-weight: '50'", "e.example.com", "/",
                         "Prefix", "canary"));
  TranslateResult r = translate(c, nginx_options());
  std::map<std::string, const sn::Cluster*> by;
  for (const auto& cl : r.snapshot.clusters) by[cl.name] = &cl;
  std::string names;
  for (const auto& [k, v] : by) names.append(k).append(" ");
  ASSERT_EQ(by.size(), 8u) << names;

  const sn::Cluster* v = by["default/main:80/https=verified"];
  ASSERT_TRUE(v && v->tls) << names;
  EXPECT_EQ(v->protocol, sn::ClusterProtocol::kHttp1);
  EXPECT_TRUE(v->tls->verify);
  EXPECT_EQ(v->tls->server_name, "shop.example.com");
  EXPECT_TRUE(v->tls->subject_alt_names.empty());
  EXPECT_NE(v->tls->ca_pem.find("BEGIN CERTIFICATE"), std::string::npos);
  EXPECT_NE(v->tls->client_cert_pem.find("BEGIN CERTIFICATE"), std::string::npos);
  EXPECT_NE(v->tls->client_key_pem.find("PRIVATE KEY"), std::string::npos);
  EXPECT_EQ(v->endpoints.size(), 1u);

  const sn::Cluster* p = by["default/main:80/https=plain"];
  ASSERT_TRUE(p && p->tls);
  EXPECT_FALSE(p->tls->verify);  // proxy_ssl_verify off
  EXPECT_EQ(p->tls->server_name, "");  // proxy_ssl_server_name off
  EXPECT_TRUE(p->tls->client_cert_pem.empty());

  const sn::Cluster* ns = by["default/main:80/https=nosni"];
  ASSERT_TRUE(ns && ns->tls);
  EXPECT_TRUE(ns->tls->verify);
  EXPECT_EQ(ns->tls->server_name, "");
  EXPECT_EQ(ns->tls->subject_alt_names, std::vector<std::string>{"shop.example.com"});
  EXPECT_TRUE(ns->tls->client_cert_pem.empty());

  ASSERT_TRUE(by["default/main:80/h2c"]);
  EXPECT_EQ(by["default/main:80/h2c"]->protocol, sn::ClusterProtocol::kH2c);
  EXPECT_FALSE(by["default/main:80/h2c"]->tls);

  // GRPCS: HTTP/2 over TLS, unverified; its canary speaks the main Ingress's protocol.
  for (const char* name : {"default/main:80/grpcs=grpcs", "default/canary:80/grpcs=grpcs"}) {
    ASSERT_TRUE(by[name] && by[name]->tls) << name << ": " << names;
    EXPECT_EQ(by[name]->protocol, sn::ClusterProtocol::kH2);
    EXPECT_FALSE(by[name]->tls->verify);
  }

  for (const char* name : {"default/main:80/https=elsewhere", "default/main:80/https=missing"}) {
    ASSERT_TRUE(by[name] && by[name]->tls) << name;
    EXPECT_TRUE(by[name]->endpoints.empty()) << name << ": nothing goes to the backend";
  }
  std::string st = dump(r.statuses) + testing::all_messages(r.statuses);
  EXPECT_NE(st.find("kube-system/upstream is in another namespace"), std::string::npos) << st;
  EXPECT_NE(st.find("Secret default/nope not found"), std::string::npos) << st;
  r.snapshot.version = 1;  // the proxy would apply it
  EXPECT_EQ(snapshot::validate(r.snapshot), std::vector<std::string>{});
}

// auth-tls-*: one hostClientValidation entry per host (and server-alias) of
// the Ingress, the oldest Ingress's for a shared host; the Secret's ca.crt
// in caPem; a Secret that cannot be used, of another namespace, or a rule
// without a host makes the Ingress Invalid (not served: fail closed).
TEST(IngressNginx, AuthTlsBecomesHostClientValidation) {
  const std::string n = "nginx.ingress.kubernetes.io/";
  const std::string tls = n + "auth-tls-secret: default/client-ca, ";
  Cache c = load(std::string(kServices) + upstream_secret("client-ca", true, false) +
                 upstream_secret("no-ca", false, true) +
                 ingress("mtls", 1,
                         tls + n + "auth-tls-verify-client: optional, " + n + "auth-tls-verify-depth: '2', " + n +
                             "auth-tls-error-page: 'https://errors.example.com/mtls', " + n +
                             "auth-tls-pass-certificate-to-upstream: 'true', " + n + "auth-tls-match-cn: 'CN=(a|b)', " +
                             n + "server-alias: alias.example.com",
                         "mtls.example.com", "/", "Prefix", "main") +
                 ingress("later", 2, n + "auth-tls-secret: client-ca", "mtls.example.com", "/later", "Prefix", "other") +
                 ingress("second", 3, n + "auth-tls-secret: client-ca", "second.example.com", "/", "Prefix", "other") +
                 ingress("elsewhere", 4, n + "auth-tls-secret: kube-system/client-ca", "e.example.com", "/", "Prefix",
                         "main") +
                 ingress("missing", 5, n + "auth-tls-secret: default/nope", "m.example.com", "/", "Prefix", "main") +
                 ingress("noca", 6, n + "auth-tls-secret: default/no-ca", "n.example.com", "/", "Prefix", "main") +
                 ingress("nohost", 7, n + "auth-tls-secret: default/client-ca", "''", "/", "Prefix", "main"));
  TranslateResult r = translate(c, nginx_options());
  std::string hosts;
  for (const auto& v : r.snapshot.host_client_validation) hosts.append(v.hostname).append(" ");
  ASSERT_EQ(r.snapshot.host_client_validation.size(), 3u) << hosts;
  const sn::HostClientValidation& alias = r.snapshot.host_client_validation[0];
  const sn::HostClientValidation& mtls = r.snapshot.host_client_validation[1];
  const sn::HostClientValidation& second = r.snapshot.host_client_validation[2];
  EXPECT_EQ(alias.hostname, "alias.example.com");
  EXPECT_EQ(mtls.hostname, "mtls.example.com");
  EXPECT_EQ(second.hostname, "second.example.com");
  EXPECT_EQ(mtls.owner, "default/mtls") << "the oldest Ingress configures a shared host";
  EXPECT_EQ(mtls.verify, sn::ClientVerify::kOptional);
  EXPECT_EQ(mtls.depth, 2u);
  EXPECT_EQ(mtls.error_page, "https://errors.example.com/mtls");
  EXPECT_TRUE(mtls.pass_certificate);
  EXPECT_EQ(mtls.subject_match, "CN=(a|b)");
  EXPECT_NE(mtls.ca_pem.find("BEGIN CERTIFICATE"), std::string::npos);
  EXPECT_TRUE(mtls.crl_pem.empty());
  EXPECT_EQ(alias, ([&] {
              sn::HostClientValidation v = mtls;
              v.hostname = "alias.example.com";
              return v;
            })());
  EXPECT_EQ(second.verify, sn::ClientVerify::kOn);
  EXPECT_EQ(second.depth, 1u);
  EXPECT_FALSE(second.pass_certificate);
  // The Ingresses that cannot be served with client certificates are not served at all.
  std::set<std::string> served;
  for (const auto& route : r.snapshot.routes) served.insert(route.name);
  for (const char* name : {"elsewhere", "missing", "noca", "nohost"}) EXPECT_FALSE(served.count(name)) << name;
  for (const char* name : {"mtls", "later", "second"}) EXPECT_TRUE(served.count(name)) << name;
  std::string st = dump(r.statuses) + testing::all_messages(r.statuses);
  EXPECT_NE(st.find("kube-system/client-ca is in another namespace"), std::string::npos) << st;
  EXPECT_NE(st.find("Secret default/nope not found"), std::string::npos) << st;
  EXPECT_NE(st.find("Secret default/no-ca has no ca.crt"), std::string::npos) << st;
  EXPECT_NE(st.find("a rule without a host is not served with them"), std::string::npos) << st;
  r.snapshot.version = 1;  // the proxy would apply it
  EXPECT_EQ(snapshot::validate(r.snapshot), std::vector<std::string>{});
}

// sticky.lua: the affinity cookie's Path is the location's path unless
// session-cookie-path says otherwise; Secure over TLS unless always.
TEST(IngressNginx, AffinityCookieAttributesPerRule) {
  const std::string n = "nginx.ingress.kubernetes.io/";
  Cache c = load(std::string(kServices) +
                 ingress("sticky", 1, n + "affinity: cookie, " + n + "session-cookie-samesite: Lax", "a.example.com",
                         "/shop", "Prefix", "main") +
                 ingress("pinned", 2,
                         n + "affinity: cookie, " + n + "session-cookie-path: /, " + n + "session-cookie-secure: 'true'",
                         "b.example.com", "/shop", "Prefix", "main"));
  TranslateResult r = translate(c, nginx_options());
  ASSERT_EQ(r.snapshot.routes.size(), 2u) << dump(r.statuses);
  const sn::LoadBalancer& a = r.snapshot.routes[1].rules[0].policy.load_balancer;  // sorted: pinned, sticky
  EXPECT_EQ(r.snapshot.routes[1].name, "sticky");
  EXPECT_EQ(a.hash_on, sn::HashOn::kCookie);
  EXPECT_EQ(a.cookie_path, "/shop");
  EXPECT_EQ(a.cookie_secure, sn::CookieSecure::kOverTls);
  EXPECT_EQ(a.cookie_same_site, "Lax");
  const sn::LoadBalancer& b = r.snapshot.routes[0].rules[0].policy.load_balancer;
  EXPECT_EQ(b.cookie_path, "/");
  EXPECT_EQ(b.cookie_secure, sn::CookieSecure::kAlways);
}

TEST(IngressNginx, ReportJson) {
  Cache c = load(std::string(kServices) +
                 ingress("web", 1, "nginx.ingress.kubernetes.io/limit-rps: '5', nginx.ingress.kubernetes.io/bogus: x",
                         "a.example.com", "/", "Prefix", "main"));
  TranslateResult r = translate(c, nginx_options());
  std::string j = nginx_report_json(r.ingress_nginx);
  EXPECT_NE(j.find(R"("summary":{"ingresses":1,"notServed":0,"served":0,"partial":1,"refused":0,"unknown":1})"),
            std::string::npos) << j;
  EXPECT_NE(nginx_report_metrics(r.ingress_nginx).find("gantry_controller_ingress_nginx_annotations{support=\"unknown\"} 1"),
            std::string::npos);
}

}  // namespace
}  // namespace gantry::controller
