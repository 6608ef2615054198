// The snapshot codec: model <-> JSON (schema in docs/snapshot-format.md).
//
// Encoding follows the GatewayRoute / Gateway API spelling (camelCase,
// durations as integer milliseconds in fields suffixed "Ms") and omits what is
// unset: empty lists, unset optionals, false flags, endpoints' "ready": true.
// Decoding is strict about types, ranges and enum spellings and fails with the
// JSON path of the first bad value; unknown fields and null values are
// ignored, missing fields keep the model's defaults. Nothing here throws out
// of the public functions: nlohmann's exceptions and our own DecodeFailure are
// caught at the API edge and become an Error.
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "proxy/snapshot/codec.h"
#include "proxy/snapshot/codec_json.h"

namespace gantry::snapshot {
namespace {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

// ---------------------------------------------------------------- enum names

template <typename E>
using EnumTable = std::initializer_list<std::pair<std::string_view, E>>;

const EnumTable<PathMatchType> kPathMatchTypes = {
    {"Exact", PathMatchType::kExact},
    {"PathPrefix", PathMatchType::kPathPrefix},
    {"RegularExpression", PathMatchType::kRegularExpression}};
const EnumTable<ValueMatchType> kValueMatchTypes = {
    {"Exact", ValueMatchType::kExact}, {"RegularExpression", ValueMatchType::kRegularExpression}};
const EnumTable<PathRewriteType> kPathRewriteTypes = {
    {"ReplaceFullPath", PathRewriteType::kReplaceFullPath},
    {"ReplacePrefixMatch", PathRewriteType::kReplacePrefixMatch},
    {"RegexReplace", PathRewriteType::kRegexReplace}};
const EnumTable<RateLimitAlgorithm> kRateLimitAlgorithms = {
    {"TokenBucket", RateLimitAlgorithm::kTokenBucket},
    {"SlidingWindow", RateLimitAlgorithm::kSlidingWindow}};
const EnumTable<RateLimitScope> kRateLimitScopes = {{"local", RateLimitScope::kLocal},
                                                    {"global", RateLimitScope::kGlobal}};
const EnumTable<RateLimitFailureMode> kRateLimitFailureModes = {{"open", RateLimitFailureMode::kOpen},
                                                                {"closed", RateLimitFailureMode::kClosed}};
const EnumTable<LoadBalancerType> kLoadBalancerTypes = {
    {"RoundRobin", LoadBalancerType::kRoundRobin},
    {"LeastRequest", LoadBalancerType::kLeastRequest},
    {"Random", LoadBalancerType::kRandom},
    {"ConsistentHash", LoadBalancerType::kConsistentHash}};
const EnumTable<ClusterProtocol> kClusterProtocols = {
    {"HTTP1", ClusterProtocol::kHttp1}, {"H2C", ClusterProtocol::kH2c}, {"H2", ClusterProtocol::kH2}};
const EnumTable<TransformFormat> kTransformFormats = {
    {"XML", TransformFormat::kXml}, {"JSON", TransformFormat::kJson}};
const EnumTable<HashOn> kHashOns = {
    {"Header", HashOn::kHeader}, {"Cookie", HashOn::kCookie}, {"SourceIP", HashOn::kSourceIP}};
const EnumTable<CookieSecure> kCookieSecures = {
    {"Never", CookieSecure::kNever}, {"Always", CookieSecure::kAlways}, {"OverTLS", CookieSecure::kOverTls}};
const EnumTable<ClientVerify> kClientVerifies = {{"On", ClientVerify::kOn},
                                                 {"Off", ClientVerify::kOff},
                                                 {"Optional", ClientVerify::kOptional},
                                                 {"OptionalNoCA", ClientVerify::kOptionalNoCa}};

template <typename E>
std::string_view name_of(E v, const EnumTable<E>& table) {
  for (const auto& [name, value] : table) {
    if (value == v) return name;
  }
  return "";  // only kNone values have no name; callers omit those
}

// ---------------------------------------------------------------- base64

constexpr std::string_view kB64 =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string base64_encode(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t n = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    out += kB64[(n >> 18) & 63];
    out += kB64[(n >> 12) & 63];
    out += kB64[(n >> 6) & 63];
    out += kB64[n & 63];
  }
  if (i + 1 == in.size()) {
    uint32_t n = uint8_t(in[i]) << 16;
    out += kB64[(n >> 18) & 63];
    out += kB64[(n >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    uint32_t n = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out += kB64[(n >> 18) & 63];
    out += kB64[(n >> 12) & 63];
    out += kB64[(n >> 6) & 63];
    out += '=';
  }
  return out;
}

// Strict: canonical padding, no whitespace, unused bits zero.
bool base64_decode(std::string_view in, std::string& out) {
  if (in.size() % 4 != 0) return false;
  out.clear();
  out.reserve(in.size() / 4 * 3);
  for (size_t i = 0; i < in.size(); i += 4) {
    uint32_t n = 0;
    int pad = 0;
    for (size_t k = 0; k < 4; ++k) {
      char c = in[i + k];
      if (c == '=') {
        if (i + 4 != in.size() || k < 2) return false;
        ++pad;
        n <<= 6;
        continue;
      }
      if (pad > 0) return false;
      size_t v = kB64.find(c);
      if (v == std::string_view::npos) return false;
      n = (n << 6) | uint32_t(v);
    }
    out += char((n >> 16) & 0xff);
    if (pad < 2) out += char((n >> 8) & 0xff);
    if (pad < 1) out += char(n & 0xff);
    if ((pad == 1 && (n & 0xff) != 0) || (pad == 2 && (n & 0xffff) != 0)) return false;
  }
  return true;
}

// ---------------------------------------------------------------- encoding

int64_t ms(Millis m) { return static_cast<int64_t>(m.count()); }

// Every encoder, declared up front so the list helpers below can find them.
ojson enc(const PathMatch& p);
ojson enc(const ValueMatch& m);
ojson enc(const RouteMatch& m);
ojson enc(const HeaderValue& h);
ojson enc(const HeaderModifier& h);
ojson enc(const UrlRewrite& u);
ojson enc(const RequestRedirect& r);
ojson enc(const Cors& c);
ojson enc(const RateLimit& r);
ojson enc(const HttpsRedirect& r);
ojson enc(const SourceRange& r);
ojson enc(const Hsts& h);
ojson enc(const GrpcWeb&);
ojson enc(const JwtClaimToHeader& c);
ojson enc(const Jwt& j);
ojson enc(const ApiKeyEntry& e);
ojson enc(const ApiKey& a);
ojson enc(const BasicAuthUser& u);
ojson enc(const BasicAuth& b);
ojson enc(const RequestMirror& m);
ojson enc(const Cache& c);
ojson enc(const Filters& f);
ojson enc(const LoadBalancer& lb);
ojson enc(const GrpcHealthCheck& g);
ojson enc(const HealthCheck& h);
ojson enc(const OutlierDetection& d);
ojson enc(const CircuitBreaker& c);
ojson enc(const Tracing& t);
ojson enc(const Timeouts& t);
ojson enc(const Retry& r);
ojson enc(const Policy& p);
ojson enc(const BackendRef& b);
ojson enc(const Rule& r);
ojson enc(const Route& r);
ojson enc(const Endpoint& e);
ojson enc(const Cluster& c);
ojson enc(const TlsCertificate& c);
ojson enc(const Listener& l);
ojson enc(const Passthrough& p);
ojson enc(const HostClientValidation& v);

template <typename T>
void put_list(ojson& o, const char* key, const std::vector<T>& v) {
  if (!v.empty()) o[key] = v;
}

ojson enc(const PathMatch& p) {
  ojson o{{"type", name_of(p.type, kPathMatchTypes)}, {"value", p.value}};
  if (p.priority != 0) o["priority"] = p.priority;
  return o;
}

ojson enc(const ValueMatch& m) {
  ojson o = ojson::object();
  if (m.type != ValueMatchType::kExact) o["type"] = name_of(m.type, kValueMatchTypes);
  o["name"] = m.name;
  o["value"] = m.value;
  return o;
}

template <typename T>
ojson enc_list(const std::vector<T>& v) {
  ojson a = ojson::array();
  for (const auto& x : v) a.push_back(enc(x));
  return a;
}

template <typename T>
void put_objs(ojson& o, const char* key, const std::vector<T>& v) {
  if (!v.empty()) o[key] = enc_list(v);
}

ojson enc(const RouteMatch& m) {
  ojson o = ojson::object();
  o["path"] = enc(m.path);
  if (m.method) o["method"] = *m.method;
  put_objs(o, "headers", m.headers);
  put_objs(o, "queryParams", m.query_params);
  return o;
}

ojson enc(const HeaderValue& h) { return ojson{{"name", h.name}, {"value", h.value}}; }

ojson enc(const HeaderModifier& h) {
  ojson o = ojson::object();
  put_objs(o, "set", h.set);
  put_objs(o, "add", h.add);
  put_list(o, "remove", h.remove);
  return o;
}

const char* path_rewrite_field(PathRewriteType t) {
  switch (t) {
    case PathRewriteType::kReplaceFullPath: return "replaceFullPath";
    case PathRewriteType::kRegexReplace: return "substitution";
    default: return "replacePrefixMatch";
  }
}

// Gateway API HTTPPathModifier: {type, replaceFullPath | replacePrefixMatch},
// and gantry's {type: RegexReplace, pattern, substitution}.
void put_path_rewrite(ojson& o, const PathRewrite& p) {
  if (p.type == PathRewriteType::kNone) return;
  ojson r = ojson::object();
  r["type"] = name_of(p.type, kPathRewriteTypes);
  if (p.type == PathRewriteType::kRegexReplace) r["pattern"] = p.pattern;
  r[path_rewrite_field(p.type)] = p.value;
  o["path"] = std::move(r);
}

ojson enc(const UrlRewrite& u) {
  ojson o = ojson::object();
  if (u.hostname) o["hostname"] = *u.hostname;
  put_path_rewrite(o, u.path);
  return o;
}

ojson enc(const RequestRedirect& r) {
  ojson o = ojson::object();
  if (r.scheme) o["scheme"] = *r.scheme;
  if (r.hostname) o["hostname"] = *r.hostname;
  if (r.port) o["port"] = *r.port;
  put_path_rewrite(o, r.path);
  o["statusCode"] = r.status_code;
  if (r.location) o["location"] = *r.location;
  if (!r.location_pattern.empty()) o["locationPattern"] = r.location_pattern;
  if (r.keep_query) o["keepQuery"] = true;
  return o;
}

ojson enc(const Cors& c) {
  ojson o = ojson::object();
  put_list(o, "allowOrigins", c.allow_origins);
  put_list(o, "allowMethods", c.allow_methods);
  put_list(o, "allowHeaders", c.allow_headers);
  put_list(o, "exposeHeaders", c.expose_headers);
  if (c.allow_credentials) o["allowCredentials"] = true;
  if (c.max_age) o["maxAgeMs"] = ms(*c.max_age);
  return o;
}

ojson enc(const RateLimit& r) {
  ojson o{{"requests", r.requests},
          {"intervalMs", ms(r.interval)},
          {"burst", r.burst},
          {"algorithm", name_of(r.algorithm, kRateLimitAlgorithms)},
          {"key", r.key}};
  if (r.status_code != 429) o["statusCode"] = r.status_code;
  put_list(o, "exemptSources", r.exempt_sources);
  if (r.scope != RateLimitScope::kLocal) o["scope"] = name_of(r.scope, kRateLimitScopes);
  if (r.failure_mode != RateLimitFailureMode::kOpen)
    o["failureMode"] = name_of(r.failure_mode, kRateLimitFailureModes);
  return o;
}

ojson enc(const ConnectionLimit& c) {
  ojson o{{"perClientIp", c.per_client_ip}};
  if (c.status_code != 503) o["statusCode"] = c.status_code;
  put_list(o, "exemptSources", c.exempt_sources);
  if (!c.zone.empty()) o["zone"] = c.zone;
  return o;
}

ojson enc(const DefaultBackend& d) {
  ojson o{{"cluster", d.cluster}};
  put_list(o, "interceptStatuses", d.intercept_statuses);
  for (const auto& [k, v] : {std::pair<const char*, const std::string*>{"namespace", &d.namespace_},
                             {"ingressName", &d.ingress_name},
                             {"serviceName", &d.service_name},
                             {"servicePort", &d.service_port}})
    if (!v->empty()) o[k] = *v;
  return o;
}

ojson enc(const RateLimitStore& s) {
  ojson o{{"address", s.address}};
  if (s.tls) o["tls"] = true;
  if (!s.tls_server_name.empty()) o["tlsServerName"] = s.tls_server_name;
  if (!s.ca_pem.empty()) o["caPem"] = s.ca_pem;
  if (!s.username.empty()) o["username"] = s.username;
  if (!s.password.empty()) o["password"] = s.password;
  if (s.database != 0) o["database"] = s.database;
  o["budgetMs"] = ms(s.budget);
  o["expectedReplicas"] = s.expected_replicas;
  o["leasePercent"] = s.lease_percent;
  o["keyPrefix"] = s.key_prefix;
  return o;
}

ojson enc(const HttpsRedirect& r) {
  ojson o{{"statusCode", r.status_code}};
  if (r.port) o["port"] = *r.port;
  if (r.strip_trailing_slash) o["stripTrailingSlash"] = true;
  return o;
}

ojson enc(const Hsts& h) { return ojson{{"value", h.value}}; }
ojson enc(const GrpcWeb&) { return ojson::object(); }

ojson enc(const SourceRange& r) {
  ojson o = ojson::object();
  put_list(o, "allow", r.allow);
  put_list(o, "deny", r.deny);
  return o;
}

ojson enc(const JwtClaimToHeader& c) { return ojson{{"claim", c.claim}, {"header", c.header}}; }

ojson enc(const Jwt& j) {
  ojson o = ojson::object();
  put_list(o, "algorithms", j.algorithms);
  // Raw bytes: base64 keeps the document valid UTF-8 whatever the secret holds.
  if (!j.hmac_secret.empty()) o["hmacSecretBase64"] = base64_encode(j.hmac_secret);
  if (!j.jwks.empty()) o["jwks"] = j.jwks;
  if (!j.issuer.empty()) o["issuer"] = j.issuer;
  put_list(o, "audiences", j.audiences);
  o["clockSkewMs"] = ms(j.clock_skew);
  put_objs(o, "claimsToHeaders", j.claims_to_headers);
  return o;
}

ojson enc(const ApiKeyEntry& e) { return ojson{{"consumer", e.consumer}, {"sha256", e.sha256}}; }

ojson enc(const ApiKey& a) {
  ojson o = ojson::object();
  if (!a.header.empty()) o["header"] = a.header;
  if (!a.query_param.empty()) o["queryParam"] = a.query_param;
  if (!a.consumer_header.empty()) o["consumerHeader"] = a.consumer_header;
  o["unknownKeyStatus"] = a.unknown_key_status;
  put_objs(o, "keys", a.keys);
  return o;
}

ojson enc(const BasicAuthUser& u) { return ojson{{"name", u.name}, {"hash", u.hash}}; }

ojson enc(const BasicAuth& b) {
  ojson o = ojson::object();
  o["realm"] = b.realm;
  if (!b.consumer_header.empty()) o["consumerHeader"] = b.consumer_header;
  put_objs(o, "users", b.users);
  return o;
}

ojson enc(const ExtAuth& a) {
  ojson o = ojson::object();
  o["host"] = a.host;
  o["port"] = a.port;
  o["path"] = a.path;
  o["authority"] = a.authority;
  if (!a.method.empty()) o["method"] = a.method;
  put_list(o, "requestHeaders", a.request_headers);
  put_list(o, "responseHeaders", a.response_headers);
  if (!a.signin.empty()) o["signin"] = a.signin;
  o["signinRedirectParam"] = a.signin_redirect_param;
  o["timeoutMs"] = ms(a.timeout);
  o["failOpen"] = a.fail_open;
  o["statusOnError"] = a.status_on_error;
  o["cacheTtlMs"] = ms(a.cache_ttl);
  o["cacheMaxEntries"] = a.cache_max_entries;
  // Each field on its own: a decoded snapshot may carry bodyAllowPartial
  // without bodyMaxBytes, and must encode back to itself.
  if (a.body_max_bytes > 0) o["bodyMaxBytes"] = a.body_max_bytes;
  if (a.body_allow_partial) o["bodyAllowPartial"] = true;
  if (a.grpc) o["grpc"] = true;
  if (a.tls) o["tls"] = true;
  if (!a.ca_pem.empty()) o["caPem"] = a.ca_pem;
  return o;
}

ojson enc(const RequestMirror& m) {
  ojson o{{"cluster", m.cluster}};
  if (m.numerator != 1 || m.denominator != 1) {
    o["numerator"] = m.numerator;
    o["denominator"] = m.denominator;
  }
  return o;
}

ojson enc(const Transform& t) {
  return ojson{{"backend", name_of(t.backend, kTransformFormats)},
               {"request", t.request},
               {"response", t.response},
               {"maxBodyBytes", t.max_body_bytes},
               {"rootElement", t.root_element},
               {"itemElement", t.item_element}};
}

ojson enc(const Cache& c) {
  return ojson{
      {"ttlMs", ms(c.ttl)}, {"maxBytes", c.max_bytes}, {"maxObjectBytes", c.max_object_bytes}};
}

template <typename T>
void put_opt(ojson& o, const char* key, const std::optional<T>& v) {
  if (v) o[key] = enc(*v);
}

ojson enc(const Filters& f) {
  ojson o = ojson::object();
  put_opt(o, "httpsRedirect", f.https_redirect);
  put_opt(o, "cors", f.cors);
  put_opt(o, "rateLimit", f.rate_limit);
  put_opt(o, "sourceRange", f.source_range);
  if (f.max_request_body_size) o["maxRequestBodySize"] = *f.max_request_body_size;
  put_opt(o, "jwt", f.jwt);
  put_opt(o, "apiKey", f.api_key);
  put_opt(o, "basicAuth", f.basic_auth);
  put_opt(o, "extAuth", f.ext_auth);
  put_opt(o, "requestHeaders", f.request_headers);
  put_opt(o, "responseHeaders", f.response_headers);
  put_opt(o, "requestRedirect", f.request_redirect);
  put_opt(o, "urlRewrite", f.url_rewrite);
  put_objs(o, "requestMirrors", f.request_mirrors);
  put_opt(o, "cache", f.cache);
  put_opt(o, "hsts", f.hsts);
  put_opt(o, "transform", f.transform);
  put_opt(o, "grpcWeb", f.grpc_web);
  put_opt(o, "connectionLimit", f.connection_limit);
  put_opt(o, "defaultBackend", f.default_backend);
  return o;
}

ojson enc(const LoadBalancer& lb) {
  ojson o = ojson::object();
  o["type"] = name_of(lb.type, kLoadBalancerTypes);
  if (lb.hash_on != HashOn::kNone) o["hashOn"] = name_of(lb.hash_on, kHashOns);
  if (!lb.hash_key.empty()) o["hashKey"] = lb.hash_key;
  if (lb.cookie_ttl.count() != 0) o["cookieTtlMs"] = ms(lb.cookie_ttl);
  if (!lb.cookie_path.empty()) o["cookiePath"] = lb.cookie_path;
  if (!lb.cookie_domain.empty()) o["cookieDomain"] = lb.cookie_domain;
  if (lb.cookie_secure != CookieSecure::kNever) o["cookieSecure"] = name_of(lb.cookie_secure, kCookieSecures);
  if (!lb.cookie_same_site.empty()) o["cookieSameSite"] = lb.cookie_same_site;
  if (lb.cookie_same_site_none_if_compatible) o["cookieSameSiteNoneIfCompatible"] = true;
  return o;
}

ojson enc(const HealthCheck& h) {
  ojson o{{"path", h.path},
          {"intervalMs", ms(h.interval)},
          {"timeoutMs", ms(h.timeout)},
          {"healthyThreshold", h.healthy_threshold},
          {"unhealthyThreshold", h.unhealthy_threshold}};
  put_list(o, "expectedStatuses", h.expected_statuses);
  put_opt(o, "grpc", h.grpc);
  return o;
}

ojson enc(const GrpcHealthCheck& g) { return ojson{{"service", g.service}}; }

ojson enc(const OutlierDetection& d) {
  return ojson{{"consecutive5xx", d.consecutive_5xx},
               {"consecutiveConnectFailures", d.consecutive_connect_failures},
               {"baseEjectionTimeMs", ms(d.base_ejection_time)},
               {"maxEjectionPercent", d.max_ejection_percent}};
}

ojson enc(const CircuitBreaker& c) {
  return ojson{{"consecutiveFailures", c.consecutive_failures},
               {"failureRatio", c.failure_ratio},
               {"windowMs", ms(c.window)},
               {"minRequests", c.min_requests},
               {"openDurationMs", ms(c.open_duration)},
               {"halfOpenRequests", c.half_open_requests},
               {"maxConnections", c.max_connections},
               {"maxPendingRequests", c.max_pending_requests}};
}

ojson enc(const Tracing& t) { return ojson{{"sampling", t.sampling}}; }

ojson enc(const Timeouts& t) {
  ojson o = ojson::object();
  if (t.request) o["requestMs"] = ms(*t.request);
  if (t.backend_request) o["backendRequestMs"] = ms(*t.backend_request);
  if (t.idle) o["idleMs"] = ms(*t.idle);
  return o;
}

ojson enc(const Retry& r) {
  ojson o{{"attempts", r.attempts}};
  if (r.on_connect_failure) o["onConnectFailure"] = true;
  if (r.on_reset) o["onReset"] = true;
  put_list(o, "onStatuses", r.on_statuses);
  if (r.per_try_timeout) o["perTryTimeoutMs"] = ms(*r.per_try_timeout);
  o["backoffBaseMs"] = ms(r.backoff_base);
  o["backoffMaxMs"] = ms(r.backoff_max);
  return o;
}

ojson enc(const Policy& p) {
  ojson o = ojson::object();
  if (p.load_balancer != LoadBalancer{}) o["loadBalancer"] = enc(p.load_balancer);
  put_opt(o, "healthCheck", p.health_check);
  put_opt(o, "outlierDetection", p.outlier_detection);
  put_opt(o, "circuitBreaker", p.circuit_breaker);
  if (p.timeouts != Timeouts{}) o["timeouts"] = enc(p.timeouts);
  put_opt(o, "retry", p.retry);
  put_opt(o, "tracing", p.tracing);
  return o;
}

ojson enc(const BackendRef& b) {
  ojson o = ojson::object();
  if (!b.cluster.empty()) o["cluster"] = b.cluster;
  o["weight"] = b.weight;
  if (!b.unresolved.empty()) o["unresolved"] = b.unresolved;
  put_opt(o, "requestHeaders", b.request_headers);
  put_opt(o, "responseHeaders", b.response_headers);
  return o;
}

ojson enc(const Rule& r) {
  ojson o = ojson::object();
  put_objs(o, "matches", r.matches);
  if (r.filters != Filters{}) o["filters"] = enc(r.filters);
  put_objs(o, "backends", r.backends);
  if (r.policy != Policy{}) o["policy"] = enc(r.policy);
  return o;
}

ojson enc(const Route& r) {
  ojson o{{"namespace", r.namespace_},
          {"name", r.name},
          {"kind", r.kind},
          {"creationTimestamp", r.creation_timestamp}};
  put_list(o, "hostnames", r.hostnames);
  put_list(o, "listeners", r.listeners);
  put_objs(o, "rules", r.rules);
  return o;
}

ojson enc(const Endpoint& e) {
  ojson o{{"address", e.address}, {"port", e.port}};
  if (!e.ready) o["ready"] = false;
  return o;
}

ojson enc(const UpstreamTls& t) {
  ojson o = ojson::object();
  if (!t.server_name.empty()) o["serverName"] = t.server_name;
  if (!t.ca_pem.empty()) o["caPem"] = t.ca_pem;
  if (t.system_ca) o["systemCa"] = true;
  if (!t.verify) o["verify"] = false;
  put_list(o, "subjectAltNames", t.subject_alt_names);
  if (!t.client_cert_pem.empty()) o["clientCertPem"] = t.client_cert_pem;
  if (!t.client_key_pem.empty()) o["clientKeyPem"] = t.client_key_pem;
  put_list(o, "alpn", t.alpn);
  if (!t.min_version.empty()) o["minVersion"] = t.min_version;
  return o;
}

ojson enc(const Cluster& c) {
  ojson o{{"name", c.name}, {"endpoints", enc_list(c.endpoints)}};
  if (c.protocol != ClusterProtocol::kHttp1) o["protocol"] = name_of(c.protocol, kClusterProtocols);
  if (c.tls) o["tls"] = enc(*c.tls);
  return o;
}

ojson enc(const Listener& l) {
  ojson o{{"name", l.name}, {"address", l.address}, {"port", l.port}};
  if (l.public_port != 0) o["publicPort"] = l.public_port;
  if (l.tls) o["tls"] = true;
  put_list(o, "hostnames", l.hostnames);
  if (l.client_validation) {
    ojson v{{"caPem", l.client_validation->ca_pem}};
    if (l.client_validation->insecure_fallback) v["insecureFallback"] = true;
    o["clientValidation"] = std::move(v);
  }
  return o;
}

ojson enc(const Passthrough& p) {
  ojson o{{"hostname", p.hostname}, {"cluster", p.cluster}};
  if (!p.listener.empty()) o["listener"] = p.listener;
  if (!p.owner.empty()) o["owner"] = p.owner;
  return o;
}

// hostClientValidation: defaults (verify On, depth 1) left out.
ojson enc(const HostClientValidation& v) {
  ojson o{{"hostname", v.hostname}, {"caPem", v.ca_pem}};
  if (!v.crl_pem.empty()) o["crlPem"] = v.crl_pem;
  if (v.verify != ClientVerify::kOn) o["verify"] = name_of(v.verify, kClientVerifies);
  if (v.depth != 1) o["depth"] = v.depth;
  if (!v.error_page.empty()) o["errorPage"] = v.error_page;
  if (v.pass_certificate) o["passCertificate"] = true;
  if (!v.subject_match.empty()) o["subjectMatch"] = v.subject_match;
  if (!v.owner.empty()) o["owner"] = v.owner;
  return o;
}

ojson enc(const TlsCertificate& c) {
  ojson o{{"name", c.name}};
  put_list(o, "hostnames", c.hostnames);
  o["certPem"] = c.cert_pem;
  o["keyPem"] = c.key_pem;
  return o;
}

// Strings in the model are bytes; a non-UTF-8 byte is replaced rather than
// thrown on (decoded snapshots are always valid UTF-8, so they round-trip).
std::string dump(const ojson& j, int indent) {
  return j.dump(indent, ' ', false, ojson::error_handler_t::replace);
}

// ---------------------------------------------------------------- decoding

struct DecodeFailure {
  std::string message;
};

// Walks a parsed document into the model, tracking the JSON path so that the
// first bad value is reported where it is ("routes[2].rules[0].path.type").
class Reader {
 public:
  explicit Reader(std::string_view root) : root_(root) {}

  [[noreturn]] void fail(std::string_view what) const {
    std::string msg = path_.empty() ? std::string(root_) : path_;
    msg += ": ";
    msg += what;
    throw DecodeFailure{std::move(msg)};
  }

  // Reads obj[key] into out when present and not null.
  template <typename T>
  void get(const json& obj, const char* key, T& out) {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return;
    size_t n = path_.size();
    if (!path_.empty()) path_ += '.';
    path_ += key;
    read(*it, out);
    path_.resize(n);
  }

  void expect_object(const json& j) const {
    if (!j.is_object()) fail(std::string("expected object, got ") + j.type_name());
  }

  // ---- scalars
  void read(const json& j, std::string& out) const {
    if (!j.is_string()) fail(std::string("expected string, got ") + j.type_name());
    out = j.get_ref<const std::string&>();
  }

  void read(const json& j, bool& out) const {
    if (!j.is_boolean()) fail(std::string("expected boolean, got ") + j.type_name());
    out = j.get<bool>();
  }

  template <typename T>
  requires(std::is_integral_v<T> && !std::is_same_v<T, bool>) void read(const json& j,
                                                                        T& out) const {
    out = integer<T>(j, std::numeric_limits<T>::min(), std::numeric_limits<T>::max());
  }

  void read(const json& j, double& out) const {
    if (!j.is_number()) fail(std::string("expected number, got ") + j.type_name());
    double d = j.get<double>();
    if (!std::isfinite(d)) fail("number out of range");
    out = d;
  }

  void read(const json& j, Millis& out) const {
    out = Millis(integer<int64_t>(j, 0, std::numeric_limits<int64_t>::max()));
  }

  template <typename T>
  void read(const json& j, std::optional<T>& out) {
    out.emplace();
    read(j, *out);
  }

  template <typename T>
  void read(const json& j, std::vector<T>& out) {
    if (!j.is_array()) fail(std::string("expected array, got ") + j.type_name());
    out.clear();
    out.resize(j.size());
    size_t n = path_.size();
    for (size_t i = 0; i < j.size(); ++i) {
      path_ += '[';
      path_ += std::to_string(i);
      path_ += ']';
      read(j[i], out[i]);
      path_.resize(n);
    }
  }

  template <typename E>
  void read_enum(const json& j, E& out, const EnumTable<E>& table) const {
    if (!j.is_string()) fail(std::string("expected string, got ") + j.type_name());
    const auto& s = j.get_ref<const std::string&>();
    for (const auto& [name, value] : table) {
      if (name == s) {
        out = value;
        return;
      }
    }
    std::string msg = "unknown value " +
                      json(s).dump(-1, ' ', false, json::error_handler_t::replace) + " (one of";
    for (const auto& [name, value] : table) {
      msg += ' ';
      msg += name;
    }
    msg += ')';
    fail(msg);
  }

  void read(const json& j, PathMatchType& out) const { read_enum(j, out, kPathMatchTypes); }
  void read(const json& j, ValueMatchType& out) const { read_enum(j, out, kValueMatchTypes); }
  void read(const json& j, PathRewriteType& out) const { read_enum(j, out, kPathRewriteTypes); }
  void read(const json& j, RateLimitAlgorithm& out) const {
    read_enum(j, out, kRateLimitAlgorithms);
  }
  void read(const json& j, RateLimitScope& out) const { read_enum(j, out, kRateLimitScopes); }
  void read(const json& j, RateLimitFailureMode& out) const { read_enum(j, out, kRateLimitFailureModes); }
  void read(const json& j, LoadBalancerType& out) const { read_enum(j, out, kLoadBalancerTypes); }
  void read(const json& j, HashOn& out) const { read_enum(j, out, kHashOns); }
  void read(const json& j, CookieSecure& out) const { read_enum(j, out, kCookieSecures); }
  void read(const json& j, ClientVerify& out) const { read_enum(j, out, kClientVerifies); }
  void read(const json& j, ClusterProtocol& out) const { read_enum(j, out, kClusterProtocols); }
  void read(const json& j, TransformFormat& out) const { read_enum(j, out, kTransformFormats); }

  // ---- model structs
  void read(const json& j, PathMatch& m) {
    expect_object(j);
    get(j, "type", m.type);
    get(j, "value", m.value);
    get(j, "priority", m.priority);
  }

  void read(const json& j, ValueMatch& m) {
    expect_object(j);
    get(j, "type", m.type);
    get(j, "name", m.name);
    get(j, "value", m.value);
  }

  void read(const json& j, RouteMatch& m) {
    expect_object(j);
    get(j, "path", m.path);
    get(j, "method", m.method);
    get(j, "headers", m.headers);
    get(j, "queryParams", m.query_params);
  }

  void read(const json& j, HeaderValue& h) {
    expect_object(j);
    get(j, "name", h.name);
    get(j, "value", h.value);
  }

  void read(const json& j, HeaderModifier& h) {
    expect_object(j);
    get(j, "set", h.set);
    get(j, "add", h.add);
    get(j, "remove", h.remove);
  }

  void read(const json& j, PathRewrite& p) {
    expect_object(j);
    auto t = j.find("type");
    if (t == j.end() || t->is_null())
      fail("missing \"type\" (ReplaceFullPath, ReplacePrefixMatch or RegexReplace)");
    get(j, "type", p.type);
    if (p.type == PathRewriteType::kRegexReplace) get(j, "pattern", p.pattern);
    get(j, path_rewrite_field(p.type), p.value);
  }

  void read(const json& j, UrlRewrite& u) {
    expect_object(j);
    get(j, "hostname", u.hostname);
    get(j, "path", u.path);
  }

  void read(const json& j, RequestRedirect& r) {
    expect_object(j);
    get(j, "scheme", r.scheme);
    get(j, "hostname", r.hostname);
    get(j, "port", r.port);
    get(j, "path", r.path);
    get(j, "statusCode", r.status_code);
    get(j, "location", r.location);
    get(j, "locationPattern", r.location_pattern);
    get(j, "keepQuery", r.keep_query);
  }

  void read(const json& j, Cors& c) {
    expect_object(j);
    get(j, "allowOrigins", c.allow_origins);
    get(j, "allowMethods", c.allow_methods);
    get(j, "allowHeaders", c.allow_headers);
    get(j, "exposeHeaders", c.expose_headers);
    get(j, "allowCredentials", c.allow_credentials);
    get(j, "maxAgeMs", c.max_age);
  }

  void read(const json& j, RateLimit& r) {
    expect_object(j);
    get(j, "requests", r.requests);
    get(j, "intervalMs", r.interval);
    get(j, "burst", r.burst);
    get(j, "algorithm", r.algorithm);
    get(j, "key", r.key);
    get(j, "statusCode", r.status_code);
    get(j, "exemptSources", r.exempt_sources);
    get(j, "scope", r.scope);
    get(j, "failureMode", r.failure_mode);
  }

  void read(const json& j, ConnectionLimit& c) {
    expect_object(j);
    get(j, "perClientIp", c.per_client_ip);
    get(j, "statusCode", c.status_code);
    get(j, "exemptSources", c.exempt_sources);
    get(j, "zone", c.zone);
  }

  void read(const json& j, DefaultBackend& d) {
    expect_object(j);
    get(j, "cluster", d.cluster);
    get(j, "interceptStatuses", d.intercept_statuses);
    get(j, "namespace", d.namespace_);
    get(j, "ingressName", d.ingress_name);
    get(j, "serviceName", d.service_name);
    get(j, "servicePort", d.service_port);
  }

  void read(const json& j, RateLimitStore& s) {
    expect_object(j);
    get(j, "address", s.address);
    get(j, "tls", s.tls);
    get(j, "tlsServerName", s.tls_server_name);
    get(j, "caPem", s.ca_pem);
    get(j, "username", s.username);
    get(j, "password", s.password);
    get(j, "database", s.database);
    get(j, "budgetMs", s.budget);
    get(j, "expectedReplicas", s.expected_replicas);
    get(j, "leasePercent", s.lease_percent);
    get(j, "keyPrefix", s.key_prefix);
  }

  void read(const json& j, HttpsRedirect& r) {
    expect_object(j);
    get(j, "statusCode", r.status_code);
    get(j, "port", r.port);
    get(j, "stripTrailingSlash", r.strip_trailing_slash);
  }

  void read(const json& j, Hsts& h) {
    expect_object(j);
    get(j, "value", h.value);
  }

  void read(const json& j, GrpcWeb&) { expect_object(j); }

  void read(const json& j, SourceRange& r) {
    expect_object(j);
    get(j, "allow", r.allow);
    get(j, "deny", r.deny);
  }

  void read(const json& j, JwtClaimToHeader& c) {
    expect_object(j);
    get(j, "claim", c.claim);
    get(j, "header", c.header);
  }

  void read(const json& j, Jwt& w) {
    expect_object(j);
    get(j, "algorithms", w.algorithms);
    std::string secret_b64;
    get(j, "hmacSecretBase64", secret_b64);
    if (!base64_decode(secret_b64, w.hmac_secret)) {
      path_ += path_.empty() ? "hmacSecretBase64" : ".hmacSecretBase64";
      fail("invalid base64");
    }
    get(j, "jwks", w.jwks);
    get(j, "issuer", w.issuer);
    get(j, "audiences", w.audiences);
    get(j, "clockSkewMs", w.clock_skew);
    get(j, "claimsToHeaders", w.claims_to_headers);
  }

  void read(const json& j, ApiKeyEntry& e) {
    expect_object(j);
    get(j, "consumer", e.consumer);
    get(j, "sha256", e.sha256);
  }

  void read(const json& j, ApiKey& a) {
    expect_object(j);
    get(j, "header", a.header);
    get(j, "queryParam", a.query_param);
    get(j, "consumerHeader", a.consumer_header);
    get(j, "unknownKeyStatus", a.unknown_key_status);
    get(j, "keys", a.keys);
  }

  void read(const json& j, BasicAuthUser& u) {
    expect_object(j);
    get(j, "name", u.name);
    get(j, "hash", u.hash);
  }

  void read(const json& j, BasicAuth& b) {
    expect_object(j);
    get(j, "realm", b.realm);
    get(j, "consumerHeader", b.consumer_header);
    get(j, "users", b.users);
  }

  void read(const json& j, ExtAuth& a) {
    expect_object(j);
    get(j, "host", a.host);
    get(j, "port", a.port);
    get(j, "path", a.path);
    get(j, "authority", a.authority);
    get(j, "method", a.method);
    get(j, "requestHeaders", a.request_headers);
    get(j, "responseHeaders", a.response_headers);
    get(j, "signin", a.signin);
    get(j, "signinRedirectParam", a.signin_redirect_param);
    get(j, "timeoutMs", a.timeout);
    get(j, "failOpen", a.fail_open);
    get(j, "statusOnError", a.status_on_error);
    get(j, "cacheTtlMs", a.cache_ttl);
    get(j, "cacheMaxEntries", a.cache_max_entries);
    get(j, "bodyMaxBytes", a.body_max_bytes);
    get(j, "bodyAllowPartial", a.body_allow_partial);
    get(j, "grpc", a.grpc);
    get(j, "tls", a.tls);
    get(j, "caPem", a.ca_pem);
  }

  void read(const json& j, RequestMirror& m) {
    expect_object(j);
    get(j, "cluster", m.cluster);
    get(j, "numerator", m.numerator);
    get(j, "denominator", m.denominator);
  }

  void read(const json& j, Transform& t) {
    expect_object(j);
    get(j, "backend", t.backend);
    get(j, "request", t.request);
    get(j, "response", t.response);
    get(j, "maxBodyBytes", t.max_body_bytes);
    get(j, "rootElement", t.root_element);
    get(j, "itemElement", t.item_element);
  }

  void read(const json& j, Cache& c) {
    expect_object(j);
    get(j, "ttlMs", c.ttl);
    get(j, "maxBytes", c.max_bytes);
    get(j, "maxObjectBytes", c.max_object_bytes);
  }

  void read(const json& j, Filters& f) {
    expect_object(j);
    get(j, "httpsRedirect", f.https_redirect);
    get(j, "cors", f.cors);
    get(j, "rateLimit", f.rate_limit);
    get(j, "sourceRange", f.source_range);
    get(j, "maxRequestBodySize", f.max_request_body_size);
    get(j, "jwt", f.jwt);
    get(j, "apiKey", f.api_key);
    get(j, "basicAuth", f.basic_auth);
    get(j, "extAuth", f.ext_auth);
    get(j, "requestHeaders", f.request_headers);
    get(j, "responseHeaders", f.response_headers);
    get(j, "requestRedirect", f.request_redirect);
    get(j, "urlRewrite", f.url_rewrite);
    get(j, "requestMirrors", f.request_mirrors);
    get(j, "cache", f.cache);
    get(j, "hsts", f.hsts);
    get(j, "transform", f.transform);
    get(j, "grpcWeb", f.grpc_web);
    get(j, "connectionLimit", f.connection_limit);
    get(j, "defaultBackend", f.default_backend);
  }

  void read(const json& j, LoadBalancer& lb) {
    expect_object(j);
    get(j, "type", lb.type);
    get(j, "hashOn", lb.hash_on);
    get(j, "hashKey", lb.hash_key);
    get(j, "cookieTtlMs", lb.cookie_ttl);
    get(j, "cookiePath", lb.cookie_path);
    get(j, "cookieDomain", lb.cookie_domain);
    get(j, "cookieSecure", lb.cookie_secure);
    get(j, "cookieSameSite", lb.cookie_same_site);
    get(j, "cookieSameSiteNoneIfCompatible", lb.cookie_same_site_none_if_compatible);
  }

  void read(const json& j, HealthCheck& h) {
    expect_object(j);
    get(j, "path", h.path);
    get(j, "intervalMs", h.interval);
    get(j, "timeoutMs", h.timeout);
    get(j, "healthyThreshold", h.healthy_threshold);
    get(j, "unhealthyThreshold", h.unhealthy_threshold);
    get(j, "expectedStatuses", h.expected_statuses);
    get(j, "grpc", h.grpc);
  }

  void read(const json& j, GrpcHealthCheck& g) {
    expect_object(j);
    get(j, "service", g.service);
  }

  void read(const json& j, OutlierDetection& d) {
    expect_object(j);
    get(j, "consecutive5xx", d.consecutive_5xx);
    get(j, "consecutiveConnectFailures", d.consecutive_connect_failures);
    get(j, "baseEjectionTimeMs", d.base_ejection_time);
    get(j, "maxEjectionPercent", d.max_ejection_percent);
  }

  void read(const json& j, CircuitBreaker& c) {
    expect_object(j);
    get(j, "consecutiveFailures", c.consecutive_failures);
    get(j, "failureRatio", c.failure_ratio);
    get(j, "windowMs", c.window);
    get(j, "minRequests", c.min_requests);
    get(j, "openDurationMs", c.open_duration);
    get(j, "halfOpenRequests", c.half_open_requests);
    get(j, "maxConnections", c.max_connections);
    get(j, "maxPendingRequests", c.max_pending_requests);
  }

  void read(const json& j, Tracing& t) {
    expect_object(j);
    get(j, "sampling", t.sampling);
  }

  void read(const json& j, Timeouts& t) {
    expect_object(j);
    get(j, "requestMs", t.request);
    get(j, "backendRequestMs", t.backend_request);
    get(j, "idleMs", t.idle);
  }

  void read(const json& j, Retry& r) {
    expect_object(j);
    get(j, "attempts", r.attempts);
    get(j, "onConnectFailure", r.on_connect_failure);
    get(j, "onReset", r.on_reset);
    get(j, "onStatuses", r.on_statuses);
    get(j, "perTryTimeoutMs", r.per_try_timeout);
    get(j, "backoffBaseMs", r.backoff_base);
    get(j, "backoffMaxMs", r.backoff_max);
  }

  void read(const json& j, Policy& p) {
    expect_object(j);
    get(j, "loadBalancer", p.load_balancer);
    get(j, "healthCheck", p.health_check);
    get(j, "outlierDetection", p.outlier_detection);
    get(j, "circuitBreaker", p.circuit_breaker);
    get(j, "timeouts", p.timeouts);
    get(j, "retry", p.retry);
    get(j, "tracing", p.tracing);
  }

  void read(const json& j, BackendRef& b) {
    expect_object(j);
    get(j, "cluster", b.cluster);
    get(j, "weight", b.weight);
    get(j, "unresolved", b.unresolved);
    get(j, "requestHeaders", b.request_headers);
    get(j, "responseHeaders", b.response_headers);
  }

  void read(const json& j, Rule& r) {
    expect_object(j);
    get(j, "matches", r.matches);
    get(j, "filters", r.filters);
    get(j, "backends", r.backends);
    get(j, "policy", r.policy);
  }

  void read(const json& j, Route& r) {
    expect_object(j);
    get(j, "namespace", r.namespace_);
    get(j, "name", r.name);
    get(j, "kind", r.kind);
    get(j, "creationTimestamp", r.creation_timestamp);
    get(j, "hostnames", r.hostnames);
    get(j, "listeners", r.listeners);
    get(j, "rules", r.rules);
  }

  void read(const json& j, Endpoint& e) {
    expect_object(j);
    get(j, "address", e.address);
    get(j, "port", e.port);
    get(j, "ready", e.ready);
  }

  void read(const json& j, Cluster& c) {
    expect_object(j);
    get(j, "name", c.name);
    get(j, "endpoints", c.endpoints);
    get(j, "protocol", c.protocol);
    get(j, "tls", c.tls);
  }

  void read(const json& j, UpstreamTls& t) {
    expect_object(j);
    get(j, "serverName", t.server_name);
    get(j, "caPem", t.ca_pem);
    get(j, "systemCa", t.system_ca);
    get(j, "verify", t.verify);
    get(j, "subjectAltNames", t.subject_alt_names);
    get(j, "clientCertPem", t.client_cert_pem);
    get(j, "clientKeyPem", t.client_key_pem);
    get(j, "alpn", t.alpn);
    get(j, "minVersion", t.min_version);
  }

  void read(const json& j, Listener& l) {
    expect_object(j);
    get(j, "name", l.name);
    get(j, "address", l.address);
    get(j, "port", l.port);
    get(j, "publicPort", l.public_port);
    get(j, "tls", l.tls);
    get(j, "hostnames", l.hostnames);
    get(j, "clientValidation", l.client_validation);
  }

  void read(const json& j, Passthrough& p) {
    expect_object(j);
    get(j, "hostname", p.hostname);
    get(j, "cluster", p.cluster);
    get(j, "listener", p.listener);
    get(j, "owner", p.owner);
  }

  void read(const json& j, HostClientValidation& v) {
    expect_object(j);
    get(j, "hostname", v.hostname);
    get(j, "caPem", v.ca_pem);
    get(j, "crlPem", v.crl_pem);
    get(j, "verify", v.verify);
    get(j, "depth", v.depth);
    get(j, "errorPage", v.error_page);
    get(j, "passCertificate", v.pass_certificate);
    get(j, "subjectMatch", v.subject_match);
    get(j, "owner", v.owner);
  }

  void read(const json& j, ClientValidation& v) {
    expect_object(j);
    get(j, "caPem", v.ca_pem);
    get(j, "insecureFallback", v.insecure_fallback);
  }

  void read(const json& j, TlsCertificate& c) {
    expect_object(j);
    get(j, "name", c.name);
    get(j, "hostnames", c.hostnames);
    get(j, "certPem", c.cert_pem);
    get(j, "keyPem", c.key_pem);
  }

  void read(const json& j, Snapshot& s) {
    expect_object(j);
    get(j, "version", s.version);
    get(j, "routes", s.routes);
    get(j, "clusters", s.clusters);
    get(j, "certificates", s.certificates);
    get(j, "listeners", s.listeners);
    get(j, "rateLimitStore", s.rate_limit_store);
    get(j, "passthrough", s.passthrough);
    get(j, "hostClientValidation", s.host_client_validation);
  }

  void read(const json& j, EndpointDelta& d) {
    expect_object(j);
    get(j, "baseVersion", d.base_version);
    get(j, "version", d.version);
    get(j, "clusters", d.clusters);
  }

 private:
  // Integers only (no fractions), within [lo, hi]; lo is <= 0 for every caller.
  template <typename T>
  T integer(const json& j, T lo, T hi) const {
    if (j.is_number_unsigned()) {
      uint64_t v = j.get<uint64_t>();
      if (v > static_cast<uint64_t>(hi)) out_of_range(std::to_string(v), lo, hi);
      return static_cast<T>(v);
    }
    if (j.is_number_integer()) {
      int64_t v = j.get<int64_t>();
      bool bad;
      if constexpr (std::is_signed_v<T>) {
        bad = v < static_cast<int64_t>(lo) || v > static_cast<int64_t>(hi);
      } else {
        bad = v < 0 || static_cast<uint64_t>(v) > static_cast<uint64_t>(hi);
      }
      if (bad) out_of_range(std::to_string(v), lo, hi);
      return static_cast<T>(v);
    }
    if (j.is_number_float()) fail("expected integer, got a fraction or a number too large");
    fail(std::string("expected integer, got ") + j.type_name());
  }

  template <typename T>
  [[noreturn]] void out_of_range(const std::string& v, T lo, T hi) const {
    fail(v + " out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  }

  std::string_view root_;  // names the document in errors about the top level
  std::string path_;
};

template <typename T>
Result<T> from_document(const json& j) {
  try {
    T out;
    Reader r(std::is_same_v<T, Snapshot> ? "snapshot" : "delta");
    r.read(j, out);
    return out;
  } catch (const DecodeFailure& e) {
    return Error{e.message};
  } catch (const std::exception& e) {  // nlohmann or allocation: never escapes the API
    return Error{std::string("decode: ") + e.what()};
  }
}

template <typename T>
Result<T> decode_text(std::string_view text) {
  json j;
  try {
    j = json::parse(text.begin(), text.end());
  } catch (const json::parse_error& e) {
    // what() is "[json.exception.parse_error.101] parse error at line 1, ..."
    std::string_view what = e.what();
    if (auto p = what.find("] "); p != std::string_view::npos) what.remove_prefix(p + 2);
    return Error{"invalid JSON: " + std::string(what)};
  } catch (const std::exception& e) {
    return Error{std::string("invalid JSON: ") + e.what()};
  }
  return from_document<T>(j);
}

}  // namespace

ojson to_json(const Snapshot& s) {
  ojson o{{"version", s.version}};
  o["routes"] = enc_list(s.routes);
  o["clusters"] = enc_list(s.clusters);
  put_objs(o, "certificates", s.certificates);
  put_objs(o, "listeners", s.listeners);
  if (s.rate_limit_store) o["rateLimitStore"] = enc(*s.rate_limit_store);
  put_objs(o, "passthrough", s.passthrough);
  put_objs(o, "hostClientValidation", s.host_client_validation);
  return o;
}

ojson to_json(const EndpointDelta& d) {
  return ojson{
      {"baseVersion", d.base_version}, {"version", d.version}, {"clusters", enc_list(d.clusters)}};
}

Result<Snapshot> snapshot_from_json(const json& j) { return from_document<Snapshot>(j); }
Result<EndpointDelta> delta_from_json(const json& j) { return from_document<EndpointDelta>(j); }

std::string encode(const Snapshot& s) { return dump(to_json(s), -1); }
std::string encode(const EndpointDelta& d) { return dump(to_json(d), -1); }
std::string to_pretty_json(const Snapshot& s) { return dump(to_json(s), 2); }

Result<Snapshot> decode_snapshot(std::string_view json_text) {
  return decode_text<Snapshot>(json_text);
}
Result<EndpointDelta> decode_delta(std::string_view json_text) {
  return decode_text<EndpointDelta>(json_text);
}

}  // namespace gantry::snapshot
