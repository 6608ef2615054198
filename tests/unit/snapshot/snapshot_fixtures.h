// Shared fixtures for the snapshot tests: a snapshot that sets every field of
// every model struct, a small valid snapshot, and a self-signed certificate
// generated at test time (no private keys live in the repository).
#pragma once

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <utility>

#include "proxy/snapshot/model.h"

namespace gantry::snapshot::testing {

using namespace std::chrono_literals;

struct CertAndKey {
  std::string cert_pem;
  std::string key_pem;
};

inline std::string bio_to_string(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(n));
}

// A fresh P-256 key and a self-signed certificate for `cn`, valid for a day.
inline CertAndKey make_self_signed(const std::string& cn) {
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
      EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"), EVP_PKEY_free);
  if (!key) throw std::runtime_error("EVP_PKEY_Q_keygen failed");
  std::unique_ptr<X509, decltype(&X509_free)> x(X509_new(), X509_free);
  X509_set_version(x.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x.get()), 1);
  X509_gmtime_adj(X509_getm_notBefore(x.get()), 0);
  X509_gmtime_adj(X509_getm_notAfter(x.get()), 86400);
  X509_set_pubkey(x.get(), key.get());
  X509_NAME* name = X509_get_subject_name(x.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(x.get(), name);
  if (X509_sign(x.get(), key.get(), EVP_sha256()) == 0) throw std::runtime_error("X509_sign");

  std::unique_ptr<BIO, decltype(&BIO_free)> cert_bio(BIO_new(BIO_s_mem()), BIO_free);
  std::unique_ptr<BIO, decltype(&BIO_free)> key_bio(BIO_new(BIO_s_mem()), BIO_free);
  PEM_write_bio_X509(cert_bio.get(), x.get());
  PEM_write_bio_PrivateKey(key_bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  return {bio_to_string(cert_bio.get()), bio_to_string(key_bio.get())};
}

// Sets every field of every struct to a non-default value; round-trip tests
// compare against it, so a field the codec forgets shows up as a mismatch.
inline Snapshot rich_snapshot() {
  Snapshot s;
  s.version = 42;

  Route r;
  r.namespace_ = "default";
  r.name = "shop";
  r.kind = "Ingress";
  r.creation_timestamp = 1700000000;
  r.hostnames = {"shop.example.com", "*.shop.example.org"};
  r.listeners = {"10.1.0.1:80", "[fd00::2]:443"};

  Rule rule;
  RouteMatch m;
  m.path = {PathMatchType::kRegularExpression, "/api/v[0-9]+/.*", 12};
  m.method = "POST";
  m.headers = {{ValueMatchType::kExact, "x-canary", "true"},
               {ValueMatchType::kRegularExpression, "x-user", "u[0-9]+"}};
  m.query_params = {{ValueMatchType::kRegularExpression, "v", "[12]"},
                    {ValueMatchType::kExact, "debug", "1"}};
  rule.matches = {m, RouteMatch{{PathMatchType::kExact, "/exact"}, std::nullopt, {}, {}}};

  Filters& f = rule.filters;
  f.cors = Cors{{"https://a.example.com", "*.example.org"},
                {"GET", "PUT"},
                {"x-a"},
                {"x-b"},
                true,
                Millis(600000)};
  f.rate_limit = RateLimit{100,           Millis(2000),       20, RateLimitAlgorithm::kSlidingWindow,
                           "Header:x-api-key", 503, {"10.0.0.0/8"}};
  f.https_redirect = HttpsRedirect{301, 8443};
  f.source_range = SourceRange{{"192.0.2.0/24"}, {"192.0.2.7"}};
  f.api_key = ApiKey{"x-api-key", "apikey", "x-consumer", 403,
                     {{"alice", "f82ed249117cbb38d189bb742ad45f93b3993287304f8951c8949286283d9af3"}}};
  f.basic_auth = BasicAuth{"Staff", "x-user", {{"alice", "$2y$04$dD/xXdPDwE3/ZsXH8exTJOZz1xzNwPV7jUzkf1bVDqFZqZTG.ddze"}}};
  {
    ExtAuth a;
    a.host = "oauth2-proxy.auth.svc";
    a.port = 4180;
    a.path = "/oauth2/auth?x=1";
    a.authority = "oauth2-proxy.auth.svc:4180";
    a.method = "GET";
    a.request_headers = {"cookie", "authorization"};
    a.response_headers = {"x-auth-request-user"};
    a.signin = "https://auth.example/oauth2/start";
    a.signin_redirect_param = "return";
    a.timeout = Millis(750);
    a.fail_open = true;
    a.status_on_error = 500;
    a.cache_ttl = Millis(30000);
    a.cache_max_entries = 123;
    a.body_max_bytes = 4096;
    a.body_allow_partial = true;
    a.grpc = true;
    a.tls = true;
    a.ca_pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    f.ext_auth = a;
  }
  f.max_request_body_size = 1 << 20;
  f.transform = Transform{TransformFormat::kJson, true, false, 4096, "Req", "Entry"};
  f.connection_limit = ConnectionLimit{10, 429, {"10.0.0.0/8"}, "Ingress/default/shop"};
  f.default_backend = DefaultBackend{"default/mirror:80", {404, 503}, "default", "shop", "web", "8080"};
  f.jwt = Jwt{{"HS256", "RS256"},
              std::string("s\0e\xffkret", 8),
              "{\"keys\":[]}",
              "https://issuer",
              {"aud1", "aud2"},
              Millis(30000),
              {{"sub", "x-user"}, {"email", "x-email"}}};
  f.request_headers = HeaderModifier{{{"x-env", "prod"}}, {{"x-add", "1"}}, {"x-debug"}};
  f.response_headers = HeaderModifier{{{"x-served-by", "gantry"}}, {{"x-r", "2"}}, {"server"}};
  f.request_redirect = RequestRedirect{"https",
                                       "secure.example.com",
                                       8443,
                                       {PathRewriteType::kReplaceFullPath, "/new"},
                                       301,
                                       "https://x.example.com/\\1",
                                       "(?i)/old/(.*)",
                                       true};
  f.url_rewrite = UrlRewrite{"internal.example.com", {PathRewriteType::kReplacePrefixMatch, "/v2"}};
  f.request_mirrors = {RequestMirror{"default/mirror:80"}, RequestMirror{"default/web:80", 1, 8}};
  f.cache = Cache{Millis(5000), 1000000, 1000};

  rule.backends = {{"default/web:80", 90, ""}, {"default/gone:80", 0, "service not found"}};
  rule.backends[0].request_headers = HeaderModifier{{{"x-backend", "web"}}, {{"x-b", "1"}}, {"x-c"}};
  rule.backends[0].response_headers = HeaderModifier{{}, {{"x-from", "web"}}, {}};

  Policy& p = rule.policy;
  p.load_balancer = {LoadBalancerType::kConsistentHash, HashOn::kCookie, "session",
                     Millis(3600000), "/api", "example.com", CookieSecure::kOverTls, "None", true};
  p.health_check = HealthCheck{"/ready", Millis(2000), Millis(500), 2, 4, {200, 204}};
  p.outlier_detection = OutlierDetection{7, 3, Millis(10000), 30};
  p.circuit_breaker = CircuitBreaker{9, 0.25, Millis(20000), 50, Millis(7000), 3, 100, 200};
  p.timeouts = Timeouts{Millis(15000), Millis(5000), Millis(60000)};
  p.retry = Retry{2, true, true, {502, 503}, Millis(2000), Millis(10), Millis(100)};
  p.tracing = Tracing{0.25};
  Rule regex_rewrite;
  regex_rewrite.matches = {RouteMatch{{PathMatchType::kRegularExpression, "(?i)(?:/api(/|$)(.*)).*", 13}}};
  regex_rewrite.filters.url_rewrite =
      UrlRewrite{std::nullopt, {PathRewriteType::kRegexReplace, "/\\2", "(?i)/api(/|$)(.*)"}};
  regex_rewrite.backends = {{"default/web:80", 1, ""}};
  r.rules = {rule, regex_rewrite};
  s.routes = {r};

  s.clusters = {Cluster{"default/web:80", {{"10.0.0.1", 8080, true}, {"fd00::1", 8081, false}}},
                Cluster{"default/mirror:80", {}},
                Cluster{"default/secure:443", {{"10.0.0.3", 8443, true}}, ClusterProtocol::kH2,
                        UpstreamTls{"secure.internal", "-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n",
                                    true, false, {"secure.internal", "spiffe://cluster.local/ns/default/sa/secure"},
                                    "-----BEGIN CERTIFICATE-----\nc\n-----END CERTIFICATE-----\n",
                                    "-----BEGIN PRIVATE KEY-----\nk\n-----END PRIVATE KEY-----\n",
                                    {"h2", "http/1.1"}, "TLS1.3"}}};
  s.certificates = {TlsCertificate{"default/shop-tls",
                                   {"shop.example.com"},
                                   "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n",
                                   "-----BEGIN PRIVATE KEY-----\ny\n-----END PRIVATE KEY-----\n"}};
  s.listeners = {Listener{"10.1.0.1:80", "10.1.0.1", 80, false, {}, std::nullopt, 8080},
                 Listener{"[fd00::2]:443", "fd00::2", 443, true, {"shop.example.com"},
                          ClientValidation{"-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n", true}}};
  s.passthrough = {Passthrough{"db.example.com", "default/web:80", "", "default/db"},
                   Passthrough{"*.example.org", "default/web:80", "[fd00::2]:443", ""}};
  s.host_client_validation = {
      HostClientValidation{"mtls.example.com", "-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n",
                           "-----BEGIN X509 CRL-----\ncrl\n-----END X509 CRL-----\n", ClientVerify::kOptionalNoCa,
                           3, "https://errors.example.com/", true, "CN=(a|b)", "default/mtls"},
      HostClientValidation{"*.example.net", "-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n"}};
  return s;
}

// A small snapshot that validates cleanly (certificate included): the base of
// the validation table, each case mutating one thing.
inline Snapshot valid_snapshot(const CertAndKey& tls) {
  Snapshot s;
  s.version = 5;
  Route r;
  r.namespace_ = "default";
  r.name = "shop";
  r.creation_timestamp = 1700000000;
  r.hostnames = {"shop.example.com", "*.shop.example.org"};

  Rule api;
  RouteMatch m;
  m.path = {PathMatchType::kPathPrefix, "/api"};
  m.method = "GET";
  m.headers = {{ValueMatchType::kExact, "x-canary", "true"}};
  m.query_params = {{ValueMatchType::kRegularExpression, "v", "[0-9]+"}};
  api.matches = {m};
  api.filters.request_headers = HeaderModifier{{{"x-env", "prod"}}, {}, {"x-debug"}};
  api.filters.url_rewrite = UrlRewrite{std::nullopt, {PathRewriteType::kReplacePrefixMatch, "/"}};
  api.filters.rate_limit =
      RateLimit{10, Millis(1000), 5, RateLimitAlgorithm::kTokenBucket, "ClientIP"};
  api.filters.request_mirrors = {RequestMirror{"default/web-v2:80"}};
  api.backends = {{"default/web:80", 90, ""}, {"default/web-v2:80", 10, ""}};
  api.policy.load_balancer = {LoadBalancerType::kConsistentHash, HashOn::kHeader, "x-user",
                              Millis(0)};
  api.policy.health_check = HealthCheck{};
  api.policy.retry = Retry{2, true, false, {503}, Millis(1000), Millis(25), Millis(250)};

  Rule login;
  login.matches = {RouteMatch{{PathMatchType::kExact, "/login"}, std::nullopt, {}, {}}};
  login.filters.request_redirect = RequestRedirect{"https", std::nullopt, std::nullopt, {}, 301};

  Rule regex;
  regex.matches = {
      RouteMatch{{PathMatchType::kRegularExpression, "/item/[0-9]+"}, std::nullopt, {}, {}}};
  regex.backends = {{"", 1, "service default/missing not found"}};

  r.rules = {api, login, regex};
  s.routes = {r};
  Route other = r;
  other.name = "other";
  other.hostnames = {};
  other.rules = {Rule{{}, {}, {{"default/web:80", 1, ""}}, {}}};
  s.routes.push_back(other);

  s.clusters = {Cluster{"default/web:80", {{"10.0.0.1", 8080, true}, {"10.0.0.2", 8080, false}}},
                Cluster{"default/web-v2:80", {{"::1", 9090, true}}}};
  s.certificates = {TlsCertificate{
      "default/shop-tls", {"shop.example.com", "*.shop.example.org"}, tls.cert_pem, tls.key_pem}};
  return s;
}

}  // namespace gantry::snapshot::testing
