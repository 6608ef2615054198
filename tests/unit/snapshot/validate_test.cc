// Validation tests: a table of single mutations of a valid snapshot, each with
// the message it must produce (naming the object), plus error collection, the
// error cap, and endpoint deltas (validate and apply).
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <ostream>
#include <string>

#include "proxy/snapshot/validate.h"
#include "tests/unit/snapshot/snapshot_fixtures.h"

namespace gantry::snapshot {
namespace {

const testing::CertAndKey& shop_cert() {
  static const testing::CertAndKey c = testing::make_self_signed("shop.example.com");
  return c;
}

const testing::CertAndKey& other_cert() {
  static const testing::CertAndKey c = testing::make_self_signed("other.example.com");
  return c;
}

Snapshot good() { return testing::valid_snapshot(shop_cert()); }

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& m : v) s += "  " + m + "\n";
  return s;
}

TEST(ValidateTest, BaseSnapshotIsValid) {
  auto errors = validate(good());
  EXPECT_TRUE(errors.empty()) << joined(errors);
}

struct Mutation {
  const char* name;
  std::function<void(Snapshot&)> mutate;
  const char* want;  // substring of one of the messages
};

void PrintTo(const Mutation& c, std::ostream* os) { *os << c.name; }

class ValidateMutationTest : public ::testing::TestWithParam<Mutation> {};

TEST_P(ValidateMutationTest, ReportsTheObject) {
  Snapshot s = good();
  GetParam().mutate(s);
  auto errors = validate(s);
  ASSERT_FALSE(errors.empty()) << "no error for " << GetParam().name;
  bool found = false;
  for (const auto& e : errors) found = found || e.find(GetParam().want) != std::string::npos;
  EXPECT_TRUE(found) << "want substring: " << GetParam().want << "\ngot:\n" << joined(errors);
}

Rule& api(Snapshot& s) { return s.routes[0].rules[0]; }
RouteMatch& api_match(Snapshot& s) { return s.routes[0].rules[0].matches[0]; }

const Mutation kMutations[] = {
    {"VersionZero", [](Snapshot& s) { s.version = 0; }, "snapshot: version must be > 0"},
    {"EmptyNamespace", [](Snapshot& s) { s.routes[0].namespace_ = ""; },
     "routes[0]: namespace must not be empty"},
    {"EmptyName", [](Snapshot& s) { s.routes[1].name = ""; }, "routes[1]: name must not be empty"},
    {"DuplicateRoute", [](Snapshot& s) { s.routes[1].name = "shop"; },
     "route default/shop: duplicate route id (also routes[0])"},
    {"BadKind", [](Snapshot& s) { s.routes[0].kind = "Service"; },
     "route default/shop: kind \"Service\" must be \"GatewayRoute\", \"Ingress\", \"HTTPRoute\" or \"GRPCRoute\""},
    {"UpperCaseHost", [](Snapshot& s) { s.routes[0].hostnames[0] = "Shop.example.com"; },
     "route default/shop hostnames[0]: \"Shop.example.com\" must be lower-case"},
    {"BareWildcardHost", [](Snapshot& s) { s.routes[0].hostnames[1] = "*"; },
     "route default/shop hostnames[1]: bare \"*\" is not allowed"},
    {"InnerWildcardHost", [](Snapshot& s) { s.routes[0].hostnames[1] = "a.*.example.com"; },
     "hostnames[1]: \"a.*.example.com\": \"*\" is only allowed as the whole leftmost label"},
    {"HostWithPort", [](Snapshot& s) { s.routes[0].hostnames[0] = "shop.example.com:8080"; },
     "hostnames[0]: \"shop.example.com:8080\" must not contain a port"},
    {"HostNotDns", [](Snapshot& s) { s.routes[0].hostnames[0] = "shop_.example.com"; },
     "hostnames[0]: \"shop_.example.com\" is not a valid DNS name"},
    {"HostIsIp", [](Snapshot& s) { s.routes[0].hostnames[0] = "10.0.0.1"; },
     "IP addresses are not allowed"},
    {"PathWithoutSlash", [](Snapshot& s) { api_match(s).path.value = "api"; },
     "route default/shop rules[0].matches[0].path: value \"api\" must start with \"/\""},
    {"PathWithQuery", [](Snapshot& s) { api_match(s).path.value = "/api?x=1"; },
     "rules[0].matches[0].path: value \"/api?x=1\" must not contain \"?\" or \"#\""},
    {"PathWithControl", [](Snapshot& s) { api_match(s).path.value = "/a\nb"; },
     "rules[0].matches[0].path: value \"/a\\x0ab\" must not contain control characters"},
    {"RegexDoesNotCompile",
     [](Snapshot& s) { s.routes[0].rules[2].matches[0].path.value = "/item/("; },
     "route default/shop rules[2].matches[0].path: regular expression \"/item/(\" does not "
     "compile: missing )"},
    {"HeaderRegexDoesNotCompile",
     [](Snapshot& s) {
       api_match(s).headers[0] = {ValueMatchType::kRegularExpression, "x-canary", "[a-"};
     },
     "rules[0].matches[0].headers[0]: regular expression \"[a-\" does not compile: missing ]"},
    {"HeaderNameNotToken", [](Snapshot& s) { api_match(s).headers[0].name = "x canary"; },
     "rules[0].matches[0].headers[0]: name \"x canary\" is not a valid header name"},
    {"QueryRegexDoesNotCompile", [](Snapshot& s) { api_match(s).query_params[0].value = "*"; },
     "rules[0].matches[0].queryParams[0]: regular expression \"*\" does not compile"},
    {"MethodNotToken", [](Snapshot& s) { api_match(s).method = "GE T"; },
     "rules[0].matches[0].method: \"GE T\" is not a valid HTTP method token"},
    {"WeightTooLarge", [](Snapshot& s) { api(s).backends[0].weight = 1000001; },
     "route default/shop rules[0].backends[0]: weight 1000001 must be <= 1000000"},
    {"BackendClusterMissing", [](Snapshot& s) { api(s).backends[1].cluster = "default/nope:80"; },
     "rules[0].backends[1]: cluster \"default/nope:80\" is not in the snapshot's clusters"},
    {"BackendNeitherClusterNorReason",
     [](Snapshot& s) { s.routes[0].rules[2].backends[0].unresolved = ""; },
     "rules[2].backends[0]: needs a cluster or an unresolved reason"},
    {"RuleWithoutBackendsOrRedirect", [](Snapshot& s) { s.routes[1].rules[0].backends.clear(); },
     "route default/other rules[0]: rule has neither backends nor a requestRedirect"},
    {"DuplicateCluster", [](Snapshot& s) { s.clusters[1].name = "default/web:80"; },
     "cluster default/web:80: duplicate cluster name (also clusters[0])"},
    {"EmptyClusterName", [](Snapshot& s) { s.clusters.push_back(Cluster{}); },
     "clusters[2]: name must not be empty"},
    {"EndpointBadIpv4", [](Snapshot& s) { s.clusters[0].endpoints[1].address = "10.0.0.300"; },
     "cluster default/web:80 endpoints[1]: address \"10.0.0.300\" is not an IPv4 or IPv6 literal"},
    {"EndpointHostname", [](Snapshot& s) { s.clusters[1].endpoints[0].address = "web.local"; },
     "cluster default/web-v2:80 endpoints[0]: address \"web.local\" is not an IPv4 or IPv6"},
    {"EndpointWithNul",
     [](Snapshot& s) { s.clusters[0].endpoints[0].address = std::string("10.0.0.1\0x", 10); },
     "endpoints[0]: address \"10.0.0.1\\x00x\" is not an IPv4 or IPv6 literal"},
    {"EndpointPortZero", [](Snapshot& s) { s.clusters[0].endpoints[0].port = 0; },
     "cluster default/web:80 endpoints[0]: port must be in 1..65535"},
    {"EndpointDuplicate",
     [](Snapshot& s) { s.clusters[0].endpoints.push_back(s.clusters[0].endpoints[0]); },
     "cluster default/web:80 endpoints[2]: duplicate endpoint 10.0.0.1 port 8080"},
    {"RedirectStatus",
     [](Snapshot& s) { s.routes[0].rules[1].filters.request_redirect->status_code = 304; },
     "rules[1].filters.requestRedirect: statusCode 304 must be one of 301, 302, 303, 307, 308"},
    {"RedirectScheme",
     [](Snapshot& s) { s.routes[0].rules[1].filters.request_redirect->scheme = "ftp"; },
     "rules[1].filters.requestRedirect: scheme \"ftp\" must be \"http\" or \"https\""},
    {"RedirectAndRewrite", [](Snapshot& s) { api(s).filters.request_redirect = RequestRedirect{}; },
     "rules[0].filters: requestRedirect and urlRewrite cannot be used in the same rule"},
    {"RateLimitZeroRequests", [](Snapshot& s) { api(s).filters.rate_limit->requests = 0; },
     "rules[0].filters.rateLimit: requests must be > 0"},
    {"RateLimitZeroInterval", [](Snapshot& s) { api(s).filters.rate_limit->interval = Millis(0); },
     "rules[0].filters.rateLimit: interval must be > 0"},
    {"RateLimitBadKey", [](Snapshot& s) { api(s).filters.rate_limit->key = "Cookie:x"; },
     "rateLimit: key \"Cookie:x\" must be \"ClientIP\", \"Consumer\" or \"Header:<name>\""},
    {"ApiKeyNoSource", [](Snapshot& s) { api(s).filters.api_key = ApiKey{}; },
     "rules[0].filters.apiKey: header and queryParam must not both be empty"},
    {"ApiKeyBadDigest",
     [](Snapshot& s) { api(s).filters.api_key = ApiKey{"x-k", "", "", 401, {{"alice", "ABCD"}}}; },
     "rules[0].filters.apiKey.keys[0].sha256: must be 64 lower-case hex digits"},
    {"ApiKeyConsumerControl",
     [](Snapshot& s) { api(s).filters.api_key = ApiKey{"x-k", "", "", 401, {{"a\r\nb", std::string(64, 'a')}}}; },
     "rules[0].filters.apiKey.keys[0].consumer:"},
    {"ApiKeyStatus", [](Snapshot& s) { api(s).filters.api_key = ApiKey{"x-k", "", "", 404, {}}; },
     "rules[0].filters.apiKey.unknownKeyStatus: 404 must be 401 or 403"},
    {"ApiKeyBadQueryParam", [](Snapshot& s) { api(s).filters.api_key = ApiKey{"", "a&b", "", 401, {}}; },
     "rules[0].filters.apiKey.queryParam:"},
    {"BasicAuthMd5", [](Snapshot& s) { api(s).filters.basic_auth = BasicAuth{"r", "", {{"bob", "$apr1$x$y"}}}; },
     "rules[0].filters.basicAuth.users[0].hash: must be a bcrypt"},
    {"BasicAuthRealmQuote", [](Snapshot& s) { api(s).filters.basic_auth = BasicAuth{"a\"b", "", {}}; },
     "rules[0].filters.basicAuth.realm:"},
    {"BasicAuthUserColon",
     [](Snapshot& s) { api(s).filters.basic_auth = BasicAuth{"r", "", {{"a:b", "$5$salt$x"}}}; },
     "rules[0].filters.basicAuth.users[0].name:"},
    {"ExtAuthNoHost", [](Snapshot& s) { api(s).filters.ext_auth = ExtAuth{}; },
     "rules[0].filters.extAuth.host: must be a host name or an IP address"},
    {"ExtAuthBadHeader",
     [](Snapshot& s) {
       ExtAuth a;
       a.host = "auth";
       a.authority = "auth";
       a.response_headers = {"bad header"};
       a.status_on_error = 200;
       api(s).filters.ext_auth = a;
     },
     "rules[0].filters.extAuth.responseHeaders[0]: \"bad header\" is not a valid header name"},
    {"ConnectionLimitZero", [](Snapshot& s) { api(s).filters.connection_limit = ConnectionLimit{}; },
     "rules[0].filters.connectionLimit: perClientIp must be > 0"},
    {"ConnectionLimitExemptNotCidr",
     [](Snapshot& s) { api(s).filters.connection_limit = ConnectionLimit{1, 503, {"10.0.0.0/40"}, ""}; },
     "rules[0].filters.connectionLimit.exemptSources[0]:"},
    {"DefaultBackendUnknownCluster",
     [](Snapshot& s) { api(s).filters.default_backend = DefaultBackend{"default/nope:80", {}, "", "", "", ""}; },
     "rules[0].filters.defaultBackend.cluster: cluster \"default/nope:80\" is not in the snapshot's clusters"},
    {"DefaultBackendStatus",
     [](Snapshot& s) { api(s).filters.default_backend = DefaultBackend{"default/web:80", {200}, "", "", "", ""}; },
     "rules[0].filters.defaultBackend.interceptStatuses[0]: 200 must be from 400 to 599"},
    {"RateLimitStatusCode", [](Snapshot& s) { api(s).filters.rate_limit->status_code = 200; },
     "rules[0].filters.rateLimit: statusCode 200 must be from 400 to 599"},
    {"RateLimitExemptNotCidr", [](Snapshot& s) { api(s).filters.rate_limit->exempt_sources = {"10.0.0.0/40"}; },
     "rules[0].filters.rateLimit.exemptSources[0]:"},
    {"SourceRangeNotCidr", [](Snapshot& s) { api(s).filters.source_range = SourceRange{{"nope"}, {}}; },
     "rules[0].filters.sourceRange.allow[0]:"},
    {"SourceRangeEmpty", [](Snapshot& s) { api(s).filters.source_range = SourceRange{}; },
     "rules[0].filters.sourceRange: allow and deny must not both be empty"},
    {"HttpsRedirectStatus", [](Snapshot& s) { api(s).filters.https_redirect = HttpsRedirect{200, std::nullopt}; },
     "rules[0].filters.httpsRedirect: statusCode 200 must be one of 301, 302, 303, 307, 308"},
    {"RegexRewriteBadPattern",
     [](Snapshot& s) {
       api(s).filters.url_rewrite->path = {PathRewriteType::kRegexReplace, "/\\1", "(unclosed"};
     },
     "rules[0].filters.urlRewrite.path: regular expression \"(unclosed\" does not compile"},
    {"RegexRewriteMissingGroup",
     [](Snapshot& s) {
       api(s).filters.url_rewrite->path = {PathRewriteType::kRegexReplace, "/\\2", "/api/(.*)"};
     },
     "rules[0].filters.urlRewrite.path: substitution \"/\\2\":"},
    {"RedirectLocationNotAbsolute",
     [](Snapshot& s) { s.routes[0].rules[1].filters.request_redirect->location = "relative"; },
     "rules[1].filters.requestRedirect: location \"relative\" must be an http:// or https:// URL or start with \"/\""},
    {"ReplacePrefixMatchWithExact",
     [](Snapshot& s) { api_match(s).path.type = PathMatchType::kExact; },
     "rules[0].filters.urlRewrite.path: ReplacePrefixMatch needs every match of the rule to be "
     "a PathPrefix"},
    {"RewriteWithoutSlash", [](Snapshot& s) { api(s).filters.url_rewrite->path.value = "v2"; },
     "rules[0].filters.urlRewrite.path: value \"v2\" must start with \"/\""},
    {"MirrorClusterMissing",
     [](Snapshot& s) { api(s).filters.request_mirrors[0].cluster = "default/shadow:80"; },
     "rules[0].filters.requestMirrors[0]: cluster \"default/shadow:80\" is not in the snapshot's"},
    {"MirrorShareAboveOne",
     [](Snapshot& s) { api(s).filters.request_mirrors[0] = {"default/web-v2:80", 3, 2}; },
     "rules[0].filters.requestMirrors[0]: numerator 3 / denominator 2 is not a share"},
    {"MirrorShareZeroDenominator",
     [](Snapshot& s) { api(s).filters.request_mirrors[0] = {"default/web-v2:80", 0, 0}; },
     "rules[0].filters.requestMirrors[0]: numerator 0 / denominator 0 is not a share"},
    {"TooManyMirrors",
     [](Snapshot& s) { api(s).filters.request_mirrors.resize(17, {"default/web-v2:80"}); },
     "rules[0].filters.requestMirrors: at most 16 mirrors per rule, got 17"},
    {"BackendSetHeaderWithCrlf",
     [](Snapshot& s) { api(s).backends[0].request_headers = HeaderModifier{{{"x-a", "a\r\nb"}}, {}, {}}; },
     "rules[0].backends[0].requestHeaders.set[0]: value \"a\\x0d\\x0ab\" must not contain control"},
    {"BackendResponseRemoveNotToken",
     [](Snapshot& s) { api(s).backends[1].response_headers = HeaderModifier{{}, {}, {"bad name"}}; },
     "rules[0].backends[1].responseHeaders.remove[0]: "},
    {"SetHeaderWithCrlf",
     [](Snapshot& s) { api(s).filters.request_headers->set[0].value = "a\r\nb"; },
     "rules[0].filters.requestHeaders.set[0]: value \"a\\x0d\\x0ab\" must not contain control"},
    {"RemoveHeaderNotToken",
     [](Snapshot& s) { api(s).filters.request_headers->remove[0] = "x:debug"; },
     "rules[0].filters.requestHeaders.remove[0]: name \"x:debug\" is not a valid header name"},
    {"JwtUnknownAlgorithm",
     [](Snapshot& s) { api(s).filters.jwt = Jwt{{"none"}, "", "", "", {}, Millis(0), {}}; },
     "rules[0].filters.jwt: algorithm \"none\" is not one of HS256, RS256, ES256"},
    {"ConsistentHashWithoutHashOn",
     [](Snapshot& s) { api(s).policy.load_balancer.hash_on = HashOn::kNone; },
     "rules[0].policy.loadBalancer: ConsistentHash needs hashOn"},
    {"HashOnWithoutConsistentHash",
     [](Snapshot& s) { api(s).policy.load_balancer.type = LoadBalancerType::kRandom; },
     "rules[0].policy.loadBalancer: hashOn is only used with type ConsistentHash"},
    {"CookieAttributesWithoutCookie",
     [](Snapshot& s) { api(s).policy.load_balancer.cookie_path = "/api"; },
     "rules[0].policy.loadBalancer: cookiePath needs hashOn Cookie"},
    {"CookiePathWithASemicolon",
     [](Snapshot& s) {
       auto& lb = api(s).policy.load_balancer;
       lb.hash_on = HashOn::kCookie;
       lb.cookie_path = "/a; Domain=evil.example";
     },
     "rules[0].policy.loadBalancer: cookiePath must be at most 1024 bytes without ';' or control characters"},
    {"CookieSameSiteUnknown",
     [](Snapshot& s) {
       auto& lb = api(s).policy.load_balancer;
       lb.hash_on = HashOn::kCookie;
       lb.cookie_same_site = "lax";
     },
     "rules[0].policy.loadBalancer: cookieSameSite must be Strict, Lax or None, not \"lax\""},
    {"CookieDomainNotAName",
     [](Snapshot& s) {
       auto& lb = api(s).policy.load_balancer;
       lb.hash_on = HashOn::kCookie;
       lb.cookie_domain = "exa mple.com";
     },
     "rules[0].policy.loadBalancer.cookieDomain"},
    {"HealthCheckZeroInterval",
     [](Snapshot& s) { api(s).policy.health_check->interval = Millis(0); },
     "rules[0].policy.healthCheck: interval must be > 0"},
    {"GrpcHealthCheckControlCharacter",
     [](Snapshot& s) {
       api(s).policy.health_check->expected_statuses.clear();
       api(s).policy.health_check->grpc = GrpcHealthCheck{"shop\nCart"};
     },
     "rules[0].policy.healthCheck.grpc.service: holds a control character"},
    {"GrpcHealthCheckWithExpectedStatuses",
     [](Snapshot& s) {
       api(s).policy.health_check->expected_statuses = {200};
       api(s).policy.health_check->grpc = GrpcHealthCheck{"shop.Cart"};
     },
     "rules[0].policy.healthCheck: expectedStatuses apply to HTTP checks, not to grpc"},
    {"CircuitBreakerRatio",
     [](Snapshot& s) {
       api(s).policy.circuit_breaker = CircuitBreaker{};
       api(s).policy.circuit_breaker->failure_ratio = 1.5;
     },
     "rules[0].policy.circuitBreaker: failureRatio must be in [0, 1]"},
    {"TracingSamplingAboveOne", [](Snapshot& s) { api(s).policy.tracing = Tracing{1.5}; },
     "rules[0].policy.tracing: sampling must be in [0, 1]"},
    {"RetryStatus", [](Snapshot& s) { api(s).policy.retry->on_statuses = {999}; },
     "rules[0].policy.retry: status 999 not in 100..599"},
    {"CertificateNotPem", [](Snapshot& s) { s.certificates[0].cert_pem = "not a certificate"; },
     "certificate default/shop-tls: certPem does not hold a PEM certificate"},
    {"KeyNotPem", [](Snapshot& s) { s.certificates[0].key_pem = ""; },
     "certificate default/shop-tls: keyPem does not hold an unencrypted PEM private key"},
    {"KeyDoesNotMatch", [](Snapshot& s) { s.certificates[0].key_pem = other_cert().key_pem; },
     "certificate default/shop-tls: keyPem does not match the certificate in certPem"},
    {"CertificateWildcardOnly", [](Snapshot& s) { s.certificates[0].hostnames = {"*"}; },
     "certificate default/shop-tls hostnames[0]: bare \"*\" is not allowed"},
    {"ListenerAddress", [](Snapshot& s) { s.listeners = {{"web:80", "web", 80, false}}; },
     "listener web:80: address \"web\" is not an IPv4 or IPv6 literal"},
    {"ListenerPort", [](Snapshot& s) { s.listeners = {{"10.0.0.1:0", "10.0.0.1", 0, false}}; },
     "listener 10.0.0.1:0: port must be in 1..65535"},
    {"ListenerName", [](Snapshot& s) { s.listeners = {{"fd00::1:80", "fd00::1", 80, false}}; },
     "listener fd00::1:80: name must be \"[fd00::1]:80\""},
    {"ListenerDuplicate",
     [](Snapshot& s) {
       s.listeners = {{"10.0.0.1:80", "10.0.0.1", 80, false}, {"10.0.0.1:80", "10.0.0.1", 80, true}};
     },
     "listener 10.0.0.1:80: duplicate listener (also listeners[0])"},
    {"ListenerClientValidationWithoutTls",
     [](Snapshot& s) {
       s.listeners = {{"10.0.0.1:80", "10.0.0.1", 80, false, {}, ClientValidation{s.certificates[0].cert_pem}}};
     },
     "listener 10.0.0.1:80.clientValidation: needs tls"},
    {"ListenerClientValidationEmpty",
     [](Snapshot& s) { s.listeners = {{"10.0.0.1:443", "10.0.0.1", 443, true, {}, ClientValidation{}}}; },
     "listener 10.0.0.1:443.clientValidation.caPem: must hold 1 byte to 64 MiB of PEM"},
    {"ListenerClientValidationNotPem",
     [](Snapshot& s) {
       s.listeners = {{"10.0.0.1:443", "10.0.0.1", 443, true, {}, ClientValidation{"not a certificate"}}};
     },
     "listener 10.0.0.1:443.clientValidation.caPem: does not hold a PEM certificate"},
    // Client certificates per hostname: each problem names the entry and the field.
    {"HostClientValidationBadHostname",
     [](Snapshot& s) { s.host_client_validation = {{"bad name", s.certificates[0].cert_pem}}; },
     "hostClientValidation[0].hostname"},
    {"HostClientValidationDuplicate",
     [](Snapshot& s) {
       s.host_client_validation = {{"a.example.com", s.certificates[0].cert_pem},
                                   {"a.example.com", s.certificates[0].cert_pem}};
     },
     "hostClientValidation[1].hostname: duplicate (also hostClientValidation[0])"},
    {"HostClientValidationNoCa", [](Snapshot& s) { s.host_client_validation = {{"a.example.com"}}; },
     "hostClientValidation[0].caPem: must hold 1 byte to 64 MiB of PEM"},
    {"HostClientValidationCaNotPem",
     [](Snapshot& s) {
       s.host_client_validation = {{"a.example.com", "not a certificate", "", ClientVerify::kOn, 1, "", false, "",
                                    "default/mtls"}};
     },
     "hostClientValidation[0] (default/mtls).caPem: does not hold a PEM certificate"},
    {"HostClientValidationCrlNotPem",
     [](Snapshot& s) { s.host_client_validation = {{"a.example.com", s.certificates[0].cert_pem, "no crl"}}; },
     "hostClientValidation[0].crlPem: does not hold a PEM certificate revocation list"},
    {"HostClientValidationDepth",
     [](Snapshot& s) {
       s.host_client_validation = {{"a.example.com", s.certificates[0].cert_pem, "", ClientVerify::kOn, 0}};
     },
     "hostClientValidation[0].depth: must be from 1 to 100"},
    {"HostClientValidationErrorPage",
     [](Snapshot& s) {
       s.host_client_validation = {{"a.example.com", s.certificates[0].cert_pem, "", ClientVerify::kOn, 1, "errors"}};
     },
     "hostClientValidation[0].errorPage: must be an http(s) URL or an absolute path"},
    {"HostClientValidationSubjectMatch",
     [](Snapshot& s) {
       s.host_client_validation = {
           {"a.example.com", s.certificates[0].cert_pem, "", ClientVerify::kOn, 1, "", false, "CN=(?=x)"}};
     },
     "hostClientValidation[0].subjectMatch: regular expression"},
    // TLS to a cluster (UpstreamTls): each problem names the cluster and the field.
    {"UpstreamH2WithoutTls", [](Snapshot& s) { s.clusters[0].protocol = ClusterProtocol::kH2; },
     "cluster default/web:80: protocol H2 (HTTP/2 over TLS) needs tls"},
    {"UpstreamTlsNothingToTrust", [](Snapshot& s) { s.clusters[0].tls = UpstreamTls{"web.internal"}; },
     "cluster default/web:80 tls: verify needs caPem or systemCa (or verify false)"},
    {"UpstreamTlsNoName",
     [](Snapshot& s) {
       s.clusters[0].tls = UpstreamTls{};
       s.clusters[0].tls->system_ca = true;
     },
     "cluster default/web:80 tls: verify needs serverName or subjectAltNames"},
    {"UpstreamTlsBadCaPem",
     [](Snapshot& s) { s.clusters[0].tls = UpstreamTls{"web.internal", "not a certificate"}; },
     "cluster default/web:80 tls.caPem: does not hold a PEM certificate"},
    {"UpstreamTlsDamagedSecondCa",
     [](Snapshot& s) {
       s.clusters[0].tls = UpstreamTls{
           "web.internal", shop_cert().cert_pem + "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"};
     },
     "cluster default/web:80 tls.caPem: certificate 2 is not readable PEM"},
    {"UpstreamTlsBadServerName",
     [](Snapshot& s) { s.clusters[0].tls = UpstreamTls{"bad name", shop_cert().cert_pem}; },
     "cluster default/web:80 tls.serverName"},
    {"UpstreamTlsMinVersion",
     [](Snapshot& s) {
       s.clusters[0].tls = UpstreamTls{"web.internal", shop_cert().cert_pem};
       s.clusters[0].tls->min_version = "TLS1.1";
     },
     "cluster default/web:80 tls.minVersion: must be TLS1.2 or TLS1.3, not \"TLS1.1\""},
    {"UpstreamTlsEmptyAlpn",
     [](Snapshot& s) {
       s.clusters[0].tls = UpstreamTls{"web.internal", shop_cert().cert_pem};
       s.clusters[0].tls->alpn = {""};
     },
     "cluster default/web:80 tls.alpn[0]: must be 1..255 bytes"},
    {"UpstreamTlsCertWithoutKey",
     [](Snapshot& s) {
       s.clusters[0].tls = UpstreamTls{"web.internal", shop_cert().cert_pem};
       s.clusters[0].tls->client_cert_pem = shop_cert().cert_pem;
     },
     "cluster default/web:80 tls: clientCertPem and clientKeyPem go together"},
    {"UpstreamTlsClientKeyMismatch",
     [](Snapshot& s) {
       s.clusters[0].tls = UpstreamTls{"web.internal", shop_cert().cert_pem};
       s.clusters[0].tls->client_cert_pem = shop_cert().cert_pem;
       s.clusters[0].tls->client_key_pem = other_cert().key_pem;
     },
     "cluster default/web:80 tls: clientKeyPem does not match the certificate in clientCertPem"},
    // TLS passthrough entries: hostname, cluster, listener, uniqueness.
    {"PassthroughHostname",
     [](Snapshot& s) { s.passthrough = {Passthrough{"Db.example.com", "default/web:80", "", "default/db"}}; },
     "passthrough Db.example.com (default/db) hostname: \"Db.example.com\" must be lower-case"},
    {"PassthroughBareWildcard", [](Snapshot& s) { s.passthrough = {Passthrough{"*", "default/web:80"}}; },
     "passthrough * hostname: bare \"*\" is not allowed"},
    {"PassthroughUnknownCluster",
     [](Snapshot& s) { s.passthrough = {Passthrough{"db.example.com", "default/db:443", "", "default/db"}}; },
     "passthrough db.example.com (default/db): cluster \"default/db:443\" is not a cluster of the snapshot"},
    {"PassthroughNoCluster", [](Snapshot& s) { s.passthrough = {Passthrough{"db.example.com", ""}}; },
     "passthrough db.example.com: cluster must not be empty"},
    {"PassthroughPlainListener",
     [](Snapshot& s) {
       s.listeners = {{"10.0.0.1:80", "10.0.0.1", 80, false}};
       s.passthrough = {Passthrough{"db.example.com", "default/web:80", "10.0.0.1:80"}};
     },
     "passthrough db.example.com on 10.0.0.1:80: listener \"10.0.0.1:80\" is not a tls listener of the snapshot"},
    {"PassthroughDuplicate",
     [](Snapshot& s) {
       s.passthrough = {Passthrough{"db.example.com", "default/web:80"}, Passthrough{"db.example.com", "default/web:80"}};
     },
     "passthrough db.example.com: duplicate hostname on its listener (also passthrough[0])"},
    {"RouteUnknownListener", [](Snapshot& s) { s.routes[0].listeners = {"10.0.0.9:80"}; },
     "listeners[0]: \"10.0.0.9:80\" is not a listener of the snapshot"},
};

TEST(ValidateTest, PassthroughEntriesAreValid) {
  Snapshot s = good();
  s.listeners = {{"10.0.0.1:443", "10.0.0.1", 443, true}};
  // The same hostname on two listeners, a wildcard, the proxy's own listener.
  s.passthrough = {Passthrough{"db.example.com", "default/web:80", "", "default/db"},
                   Passthrough{"db.example.com", "default/web:80", "10.0.0.1:443", "default/db"},
                   Passthrough{"*.db.example.com", "default/web:80"}};
  auto errors = validate(s);
  EXPECT_TRUE(errors.empty()) << joined(errors);
}

TEST(ValidateTest, HostClientValidationEntriesAreValid) {
  Snapshot s = good();
  s.host_client_validation = {
      {"a.example.com", s.certificates[0].cert_pem},
      {"*.example.com", s.certificates[0].cert_pem + other_cert().cert_pem, "", ClientVerify::kOptionalNoCa, 100,
       "/mtls-error", true, "CN=(alice|bob)", "default/mtls"},
      {"b.example.com", s.certificates[0].cert_pem, "", ClientVerify::kOff, 1, "https://errors.example.com/x"}};
  auto errors = validate(s);
  EXPECT_TRUE(errors.empty()) << joined(errors);
}

TEST(ValidateTest, RoutesOnListenersAreValid) {
  Snapshot s = good();
  s.listeners = {{"10.0.0.1:80", "10.0.0.1", 80, false}, {"[fd00::1]:443", "fd00::1", 443, true}};
  s.routes[0].listeners = {"10.0.0.1:80", "[fd00::1]:443"};
  auto errors = validate(s);
  EXPECT_TRUE(errors.empty()) << joined(errors);
  // Client certificates verified against a bundle of two.
  s.listeners[1].client_validation = ClientValidation{shop_cert().cert_pem + other_cert().cert_pem, true};
  errors = validate(s);
  EXPECT_TRUE(errors.empty()) << joined(errors);
}

INSTANTIATE_TEST_SUITE_P(Table, ValidateMutationTest, ::testing::ValuesIn(kMutations),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(ValidateTest, UpstreamTlsVariantsAreValid) {
  Snapshot s = good();
  // Verified against a CA bundle of two, with mTLS and HTTP/2 over TLS.
  s.clusters[0].protocol = ClusterProtocol::kH2;
  s.clusters[0].tls = UpstreamTls{"web.internal", shop_cert().cert_pem + other_cert().cert_pem};
  s.clusters[0].tls->client_cert_pem = other_cert().cert_pem;
  s.clusters[0].tls->client_key_pem = other_cert().key_pem;
  s.clusters[0].tls->min_version = "TLS1.3";
  // The system store and SANs only; and no verification at all (ingress-nginx's default).
  s.clusters[1].tls = UpstreamTls{};
  s.clusters[1].tls->system_ca = true;
  s.clusters[1].tls->subject_alt_names = {"spiffe://cluster.local/ns/default/sa/web"};
  auto errors = validate(s);
  EXPECT_TRUE(errors.empty()) << joined(errors);
  s.clusters[1].tls = UpstreamTls{};
  s.clusters[1].tls->verify = false;
  errors = validate(s);
  EXPECT_TRUE(errors.empty()) << joined(errors);
}

TEST(ValidateTest, MatchingCertificateFromAnotherRunIsValid) {
  Snapshot s = good();
  s.certificates[0].cert_pem = other_cert().cert_pem;
  s.certificates[0].key_pem = other_cert().key_pem;
  auto errors = validate(s);
  EXPECT_TRUE(errors.empty()) << joined(errors);
}

TEST(ValidateTest, ReportsEveryErrorNotJustTheFirst) {
  Snapshot s = good();
  s.version = 0;
  s.routes[0].hostnames[0] = "UPPER.example.com";
  api_match(s).path.value = "nope";
  s.clusters[0].endpoints[0].address = "bogus";
  s.certificates[0].key_pem = other_cert().key_pem;
  auto errors = validate(s);
  const char* wants[] = {
      "snapshot: version must be > 0",
      "route default/shop hostnames[0]: \"UPPER.example.com\" must be lower-case",
      "route default/shop rules[0].matches[0].path: value \"nope\" must start with \"/\"",
      "cluster default/web:80 endpoints[0]: address \"bogus\" is not an IPv4 or IPv6 literal",
      "certificate default/shop-tls: keyPem does not match the certificate in certPem",
  };
  EXPECT_EQ(errors.size(), std::size(wants)) << joined(errors);
  for (const char* want : wants) {
    EXPECT_NE(std::find(errors.begin(), errors.end(), std::string(want)), errors.end())
        << "missing: " << want << "\ngot:\n"
        << joined(errors);
  }
}

TEST(ValidateTest, CapsTheNumberOfMessages) {
  Snapshot s = good();
  for (int i = 0; i < 250; ++i) {
    s.clusters[0].endpoints.push_back({"bad", static_cast<uint16_t>(i + 1), true});
  }
  auto errors = validate(s);
  ASSERT_EQ(errors.size(), 100u);
  EXPECT_EQ(errors.back(), "... and 151 more errors not shown");
}

// ---------------------------------------------------------------- deltas

EndpointDelta good_delta() {
  return EndpointDelta{
      5, 6, {Cluster{"default/web-v2:80", {{"10.0.0.7", 9090, true}, {"10.0.0.8", 9090, false}}}}};
}

TEST(DeltaTest, GoodDeltaIsValid) {
  auto errors = validate(good_delta(), good());
  EXPECT_TRUE(errors.empty()) << joined(errors);
}

struct DeltaCase {
  const char* name;
  std::function<void(EndpointDelta&, Snapshot&)> mutate;
  const char* want;
};

void PrintTo(const DeltaCase& c, std::ostream* os) { *os << c.name; }

class DeltaValidateTest : public ::testing::TestWithParam<DeltaCase> {};

TEST_P(DeltaValidateTest, Reports) {
  EndpointDelta d = good_delta();
  Snapshot s = good();
  GetParam().mutate(d, s);
  auto errors = validate(d, s);
  bool found = false;
  for (const auto& e : errors) found = found || e.find(GetParam().want) != std::string::npos;
  EXPECT_TRUE(found) << "want: " << GetParam().want << "\ngot:\n" << joined(errors);
}

const DeltaCase kDeltaCases[] = {
    {"BaseMismatch",
     [](EndpointDelta& d, Snapshot& s) {
       d.base_version = 7;
       d.version = 10;
       s.version = 9;
     },
     "delta base version 7 does not match current version 9"},
    {"VersionNotNewer", [](EndpointDelta& d, Snapshot&) { d.version = 5; },
     "delta version 5 must be greater than base version 5"},
    {"UnknownCluster", [](EndpointDelta& d, Snapshot&) { d.clusters[0].name = "default/x:1"; },
     "delta clusters[0]: cluster \"default/x:1\" is not in the current snapshot"},
    {"ClusterTwice", [](EndpointDelta& d, Snapshot&) { d.clusters.push_back(d.clusters[0]); },
     "delta cluster default/web-v2:80: listed twice"},
    {"BadAddress", [](EndpointDelta& d, Snapshot&) { d.clusters[0].endpoints[1].address = "x"; },
     "cluster default/web-v2:80 endpoints[1]: address \"x\" is not an IPv4 or IPv6 literal"},
    {"PortZero", [](EndpointDelta& d, Snapshot&) { d.clusters[0].endpoints[0].port = 0; },
     "cluster default/web-v2:80 endpoints[0]: port must be in 1..65535"},
};

INSTANTIATE_TEST_SUITE_P(Table, DeltaValidateTest, ::testing::ValuesIn(kDeltaCases),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(DeltaTest, ApplyReplacesNamedClustersOnly) {
  Snapshot before = good();
  EndpointDelta d = good_delta();
  Snapshot after = apply(d, before);
  EXPECT_EQ(after.version, 6u);
  EXPECT_EQ(after.clusters[1].endpoints, d.clusters[0].endpoints);
  EXPECT_EQ(after.clusters[0], before.clusters[0]);
  EXPECT_EQ(after.routes, before.routes);
  EXPECT_EQ(after.certificates, before.certificates);
  EXPECT_EQ(before.clusters[1].endpoints.size(), 1u);  // the input is untouched
  EXPECT_TRUE(validate(after).empty()) << joined(validate(after));
}

TEST(DeltaTest, ApplyCanEmptyACluster) {
  EndpointDelta d{5, 9, {Cluster{"default/web:80", {}}}};
  Snapshot after = apply(d, good());
  EXPECT_TRUE(after.clusters[0].endpoints.empty());
  EXPECT_EQ(after.version, 9u);
}

}  // namespace
}  // namespace gantry::snapshot
