// The routing snapshot: the complete, self-contained state one proxy serves.
//
// This is the contract between the controller and the proxy; the controller
// links this library, so both sides share exactly one definition. A snapshot
// is built once, validated (validate.h), encoded (codec.h), and never mutated
// after the proxy has compiled it. This header is a leaf: no sockets, no
// threads, no Kubernetes types.
//
// Routes are kept in the user's shape (one entry per GatewayRoute / Ingress)
// rather than pre-grouped by virtual host: precedence tie-breaks need the
// route's identity and age, and the proxy's compiler groups by host itself.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace gantry::snapshot {

using Millis = std::chrono::milliseconds;

// ---------------------------------------------------------------- matching

enum class PathMatchType { kExact, kPathPrefix, kRegularExpression };
enum class ValueMatchType { kExact, kRegularExpression };

struct PathMatch {
  PathMatchType type = PathMatchType::kPathPrefix;
  std::string value = "/";
  // Ranks matches of the same path kind (and, for prefixes, the same length):
  // a higher priority comes first. 0 for everything but the ingress-nginx
  // compatibility mode, which gives each regex its path's length (nginx tries
  // ingress-nginx's regex locations longest first).
  int32_t priority = 0;
  bool operator==(const PathMatch&) const = default;
};

// A header or query parameter match. Header names compare case-insensitively
// (the proxy lower-cases them at compile time); query names are case-sensitive.
struct ValueMatch {
  ValueMatchType type = ValueMatchType::kExact;
  std::string name;
  std::string value;
  bool operator==(const ValueMatch&) const = default;
};

struct RouteMatch {
  PathMatch path;
  std::optional<std::string> method;  // upper-case token, e.g. "GET"
  std::vector<ValueMatch> headers;
  std::vector<ValueMatch> query_params;
  bool operator==(const RouteMatch&) const = default;
};

// ---------------------------------------------------------------- filters

struct HeaderValue {
  std::string name;
  std::string value;
  bool operator==(const HeaderValue&) const = default;
};

struct HeaderModifier {
  std::vector<HeaderValue> set;
  std::vector<HeaderValue> add;
  std::vector<std::string> remove;
  bool operator==(const HeaderModifier&) const = default;
};

enum class PathRewriteType { kNone, kReplaceFullPath, kReplacePrefixMatch, kRegexReplace };

struct PathRewrite {
  PathRewriteType type = PathRewriteType::kNone;
  // The full path, or the replacement for the matched prefix; for
  // kRegexReplace the new path, an RE2 rewrite string (\0..\9 are the
  // captures of `pattern`): when `pattern` is found anywhere in the request
  // path, the whole path becomes this (nginx's `rewrite`); else it is kept.
  std::string value;
  std::string pattern;  // kRegexReplace only
  bool operator==(const PathRewrite&) const = default;
};

struct UrlRewrite {
  std::optional<std::string> hostname;
  PathRewrite path;
  bool operator==(const UrlRewrite&) const = default;
};

struct RequestRedirect {
  std::optional<std::string> scheme;    // "http" | "https"
  std::optional<std::string> hostname;
  std::optional<uint16_t> port;
  PathRewrite path;
  int status_code = 302;                // 301 | 302 | 303 | 307 | 308
  // When set, Location is this absolute URL and scheme/hostname/port/path are
  // unused. With `location_pattern`, it is an RE2 rewrite string applied to
  // the request path (a request whose path does not contain the pattern is
  // not redirected). The query is appended only with `keep_query`.
  std::optional<std::string> location;
  std::string location_pattern;
  bool keep_query = false;
  bool operator==(const RequestRedirect&) const = default;
};

struct Cors {
  std::vector<std::string> allow_origins;  // exact, "*", or "*.example.com"
  std::vector<std::string> allow_methods;
  std::vector<std::string> allow_headers;
  std::vector<std::string> expose_headers;
  bool allow_credentials = false;
  std::optional<Millis> max_age;
  bool operator==(const Cors&) const = default;
};

enum class RateLimitAlgorithm { kTokenBucket, kSlidingWindow };
// local: each proxy replica counts on its own. global: one count shared by
// every replica, kept in the snapshot's rate limit store (Redis).
enum class RateLimitScope { kLocal, kGlobal };
// When the store cannot decide in time (global scope): open falls back to the
// local limiter with the limit divided by the expected replica count; closed
// refuses with 503 and x-gateway-reason: ratelimit-store-unavailable.
enum class RateLimitFailureMode { kOpen, kClosed };

struct RateLimit {
  uint64_t requests = 0;  // per interval
  Millis interval{1000};
  uint64_t burst = 0;     // token bucket only: extra capacity above `requests`
  RateLimitAlgorithm algorithm = RateLimitAlgorithm::kTokenBucket;
  // "ClientIP" | "Header:<name>" | "Consumer" (the apiKey / basicAuth
  // consumer; the client IP when none authenticated)
  std::string key = "ClientIP";
  int status_code = 429;         // the answer to a limited request (ingress-nginx: 503)
  std::vector<std::string> exempt_sources;  // CIDRs whose clients are never limited
  RateLimitScope scope = RateLimitScope::kLocal;
  RateLimitFailureMode failure_mode = RateLimitFailureMode::kOpen;  // global scope only
  bool operator==(const RateLimit&) const = default;
};

// The shared store of global rate limits (a Redis server, or a Redis
// Cluster / Sentinel-managed primary reached through one address).
struct RateLimitStore {
  std::string address;  // host:port (a name is resolved by the proxy)
  bool tls = false;
  std::string tls_server_name;  // SNI and the name verified; empty: the address's host
  std::string ca_pem;           // trusted CAs; empty: the system's
  std::string username;         // AUTH username (Redis 6 ACL); empty: AUTH with the password only
  std::string password;         // empty: no AUTH; [redacted] in /config_dump
  uint32_t database = 0;        // SELECT
  Millis budget{5};             // per decision; then the route's failureMode
  uint32_t expected_replicas = 1;  // the fallback divides each limit by this
  // Leases (global_lease.h): all holders together may reserve at most this
  // percentage of a limit ahead of their requests; 0: one decision per request.
  uint32_t lease_percent = 1;
  std::string key_prefix = "gantry:rl:";
  bool operator==(const RateLimitStore&) const = default;
};

struct JwtClaimToHeader {
  std::string claim;
  std::string header;
  bool operator==(const JwtClaimToHeader&) const = default;
};

struct Jwt {
  std::vector<std::string> algorithms;  // "HS256" | "RS256" | "ES256"
  std::string hmac_secret;              // raw bytes for HS256
  std::string jwks;                     // JWKS JSON or PEM public keys for RS256/ES256
  std::string issuer;
  std::vector<std::string> audiences;
  Millis clock_skew{60000};
  std::vector<JwtClaimToHeader> claims_to_headers;
  bool operator==(const Jwt&) const = default;
};

// A copy of each request to `cluster`, fire-and-forget; a share of the
// requests only when numerator < denominator (Gateway API percent/fraction:
// each request is mirrored with probability numerator / denominator).
struct RequestMirror {
  std::string cluster;
  uint32_t numerator = 1;    // "numerator"; omitted with denominator when the share is 1/1
  uint32_t denominator = 1;  // "denominator": >= 1, >= numerator
  bool operator==(const RequestMirror&) const = default;
};

struct Cache {
  Millis ttl{60000};
  uint64_t max_bytes = 64ull << 20;
  uint64_t max_object_bytes = 1ull << 20;
  bool operator==(const Cache&) const = default;
};

// Plain-HTTP requests are redirected to https:// (same host, path and query),
// except /.well-known/acme-challenge/ (ACME HTTP-01 must reach its solver).
struct HttpsRedirect {
  int status_code = 308;
  std::optional<uint16_t> port;  // in Location; unset: none (443)
  // ingress-nginx: a request target (path and query) ending in '/' loses that
  // '/' in Location unless preserve-trailing-slash.
  bool strip_trailing_slash = false;
  bool operator==(const HttpsRedirect&) const = default;
};

// Client addresses (after trusted proxies): one inside `deny`, or outside a
// non-empty `allow`, is answered 403.
struct SourceRange {
  std::vector<std::string> allow;  // CIDRs ("10.0.0.0/8", "192.0.2.7", "fd00::/8")
  std::vector<std::string> deny;
  bool operator==(const SourceRange&) const = default;
};

// gRPC-Web translated to gRPC for the rule's backends (docs/policies.md,
// "gRPC-Web"); no settings.
struct GrpcWeb {
  bool operator==(const GrpcWeb&) const = default;
};

// Strict-Transport-Security added to answers over TLS (ingress-nginx's hsts).
struct Hsts {
  std::string value = "max-age=31536000; includeSubDomains";
  bool operator==(const Hsts&) const = default;
};

// One consumer's API key: the SHA-256 of the key (64 lower-case hex digits),
// never the key itself.
struct ApiKeyEntry {
  std::string consumer;
  std::string sha256;
  bool operator==(const ApiKeyEntry&) const = default;
};

// The request must carry a known API key in `header` or in the query
// parameter `query_param` (the header wins when both are set and present).
// Missing: 401; unknown: `unknown_key_status` (401 or 403). The consumer's
// name goes upstream in `consumer_header` (when set), replacing any field of
// that name; the key's header field and query parameter are removed.
struct ApiKey {
  std::string header;       // lower-case; empty: keys are not read from a header
  std::string query_param;  // empty: keys are not read from the query
  std::string consumer_header;
  int unknown_key_status = 401;
  std::vector<ApiKeyEntry> keys;  // may be empty: every request is refused
  bool operator==(const ApiKey&) const = default;
};

// One htpasswd line: the user and its crypt(3) hash ($2a$/$2b$/$2y$ bcrypt,
// $5$ SHA-256 crypt, $6$ SHA-512 crypt).
struct BasicAuthUser {
  std::string name;
  std::string hash;
  bool operator==(const BasicAuthUser&) const = default;
};

// Authorization: Basic must name a user whose hash the password verifies
// against; else 401 with WWW-Authenticate: Basic realm="<realm>". The user's
// name goes upstream in `consumer_header` (when set); Authorization is not
// forwarded.
struct BasicAuth {
  std::string realm = "gantry";
  std::string consumer_header;
  std::vector<BasicAuthUser> users;
  bool operator==(const BasicAuth&) const = default;
};

// An HTTP/1.1 call to an authorisation service before the request goes
// upstream (ingress-nginx auth-url, Envoy's HTTP ext_authz). The call is
// `method` (empty: the client's) to http://host:port + path, with Host
// `authority`, the client's fields named in `request_headers`, and
// X-Original-URL / X-Original-Method / X-Forwarded-* describing the request.
// A 2xx allows: the answer's fields named in `response_headers` are set on the
// upstream request. Any other status is the client's answer, with its body
// and fields; a 401 with `signin` set becomes a 302 to signin with
// <signin_redirect_param>=<the original URL>. No answer within `timeout`
// (connection refused, reset, garbage): fail_open lets the request through,
// else `status_on_error` answers. With cache_ttl > 0, allowed decisions are
// remembered for that long, keyed by the values of request_headers (at most
// cache_max_entries).
struct ExtAuth {
  std::string host;  // IP literal or DNS name (resolved when a connection opens)
  uint16_t port = 80;
  std::string path = "/";  // path and query of the call
  std::string authority;   // Host of the call
  std::string method;      // empty: the client's
  std::vector<std::string> request_headers;   // lower-case
  std::vector<std::string> response_headers;  // lower-case
  std::string signin;                         // absolute URL; empty: none
  std::string signin_redirect_param = "rd";
  Millis timeout{2000};
  bool fail_open = false;
  int status_on_error = 403;
  Millis cache_ttl{0};  // 0: no decision cache
  uint32_t cache_max_entries = 10000;
  // withRequestBody: up to body_max_bytes of the client's body go to the
  // service (0: no body); a longer body gets 413 unless body_allow_partial
  // (then its first body_max_bytes go, the whole body upstream).
  uint64_t body_max_bytes = 0;
  bool body_allow_partial = false;
  // The protocol: false, an HTTP/1.1 call to `path`; true, Envoy's ext_authz
  // gRPC (envoy.service.auth.v3.Authorization/Check) over HTTP/2.
  bool grpc = false;
  // TLS to the service (https:// URLs, grpc with tls): its certificate is
  // verified for the host of `authority` against ca_pem (PEM), else the
  // system's trust store.
  bool tls = false;
  std::string ca_pem;
  bool operator==(const ExtAuth&) const = default;
};

// filters.transform: JSON ↔ XML conversion of bodies (docs/policies.md,
// "transform"). `backend` is the format the backend speaks; a client that
// sends or asks for the other one is converted for.
enum class TransformFormat { kXml, kJson };
struct Transform {
  TransformFormat backend = TransformFormat::kXml;
  bool request = true;   // convert request bodies sent in the other format
  bool response = true;  // convert response bodies for a client that prefers the other format
  uint64_t max_body_bytes = 1 << 20;  // a body buffered for conversion; a larger request → 413
  std::string root_element = "root";  // JSON → XML: the root of a value that names none
  std::string item_element = "item";  // JSON → XML: the element of an array entry without a key
  bool operator==(const Transform&) const = default;
};

// Filters of one rule, applied in the order of the fields.
// ---- filters.connectionLimit and filters.defaultBackend (ingress-nginx
// limit-connections, default-backend and custom-http-errors)

// Requests in progress per client IP (nginx limit_conn on a zone keyed by the
// client address): one more than perClientIp is refused with statusCode. The
// count is the proxy's (all its workers), taken when the request's head is in
// and given back when its exchange ends, however it ends; every HTTP/2 stream
// counts. Rules with the same `zone` count together (ingress-nginx: one zone
// per Ingress); empty: the route's own.
struct ConnectionLimit {
  uint32_t per_client_ip = 0;
  int status_code = 503;                    // ingress-nginx limit-conn-status-code
  std::vector<std::string> exempt_sources;  // CIDRs never counted (limit-whitelist)
  std::string zone;
  bool operator==(const ConnectionLimit&) const = default;
};

// The backend that answers for the rule's own: every request while the
// rule's backend has no endpoint, and, in place of an upstream answer whose
// status is in interceptStatuses, its answer to the same request (method and
// kept body, path "/" + the query) with X-Code, X-Format, X-Original-URI,
// X-Namespace, X-Ingress-Name, X-Service-Name, X-Service-Port and
// X-Request-ID (ingress-nginx's custom error pages).
struct DefaultBackend {
  std::string cluster;
  std::vector<int> intercept_statuses;  // 400..599
  // The X-* values: the route's namespace and name, the rule's Service.
  std::string namespace_;
  std::string ingress_name;
  std::string service_name;
  std::string service_port;
  bool operator==(const DefaultBackend&) const = default;
};

struct Filters {
  std::optional<HttpsRedirect> https_redirect;
  std::optional<Cors> cors;
  std::optional<RateLimit> rate_limit;
  std::optional<SourceRange> source_range;
  std::optional<uint64_t> max_request_body_size;
  std::optional<Jwt> jwt;
  std::optional<ApiKey> api_key;
  std::optional<BasicAuth> basic_auth;
  std::optional<ExtAuth> ext_auth;
  std::optional<HeaderModifier> request_headers;
  std::optional<HeaderModifier> response_headers;
  std::optional<RequestRedirect> request_redirect;
  std::optional<UrlRewrite> url_rewrite;
  std::vector<RequestMirror> request_mirrors;  // each one decides and copies on its own
  std::optional<Cache> cache;
  std::optional<Hsts> hsts;
  std::optional<Transform> transform;
  std::optional<GrpcWeb> grpc_web;
  std::optional<ConnectionLimit> connection_limit;
  std::optional<DefaultBackend> default_backend;
  bool operator==(const Filters&) const = default;
};

// ---------------------------------------------------------------- policy

enum class LoadBalancerType { kRoundRobin, kLeastRequest, kRandom, kConsistentHash };
enum class HashOn { kNone, kHeader, kCookie, kSourceIP };
// When the affinity cookie carries Secure: never, always, or on answers over TLS.
enum class CookieSecure { kNever, kAlways, kOverTls };

struct LoadBalancer {
  LoadBalancerType type = LoadBalancerType::kRoundRobin;
  HashOn hash_on = HashOn::kNone;
  std::string hash_key;  // header or cookie name
  Millis cookie_ttl{0};  // 0: session cookie
  // The affinity cookie's attributes (hashOn Cookie); it is always HttpOnly.
  std::string cookie_path;     // "cookiePath": empty = "/"
  std::string cookie_domain;   // "cookieDomain": empty = none (the host alone)
  CookieSecure cookie_secure = CookieSecure::kNever;  // "cookieSecure": "Always" | "OverTLS"; omitted = never
  std::string cookie_same_site;  // "cookieSameSite": "Strict" | "Lax" | "None"; empty = none
  // "cookieSameSiteNoneIfCompatible": SameSite=None is left out for the user
  // agents known to reject such cookies (ingress-nginx's list).
  bool cookie_same_site_none_if_compatible = false;
  bool operator==(const LoadBalancer&) const = default;
};

// A gRPC health check (grpc.health.v1.Health/Check over HTTP/2): healthy
// when the answer is grpc-status 0 with status SERVING for `service` ("" is
// the server as a whole).
struct GrpcHealthCheck {
  std::string service;
  bool operator==(const GrpcHealthCheck&) const = default;
};

struct HealthCheck {
  std::string path = "/healthz";  // HTTP checks; unused with `grpc`
  Millis interval{5000};
  Millis timeout{1000};
  uint32_t healthy_threshold = 1;
  uint32_t unhealthy_threshold = 3;
  std::vector<int> expected_statuses;  // empty: 200-399
  std::optional<GrpcHealthCheck> grpc;  // a gRPC check instead of GET `path`
  bool operator==(const HealthCheck&) const = default;
};

struct OutlierDetection {
  uint32_t consecutive_5xx = 5;
  uint32_t consecutive_connect_failures = 5;
  Millis base_ejection_time{30000};
  uint32_t max_ejection_percent = 50;
  bool operator==(const OutlierDetection&) const = default;
};

struct CircuitBreaker {
  uint32_t consecutive_failures = 5;
  double failure_ratio = 0;      // 0: ratio disabled
  Millis window{10000};
  uint32_t min_requests = 10;    // for the ratio
  Millis open_duration{5000};
  uint32_t half_open_requests = 1;
  uint32_t max_connections = 0;       // 0: unlimited
  uint32_t max_pending_requests = 0;  // 0: unlimited
  bool operator==(const CircuitBreaker&) const = default;
};

struct Timeouts {
  std::optional<Millis> request;          // whole exchange
  std::optional<Millis> backend_request;  // each try
  std::optional<Millis> idle;
  bool operator==(const Timeouts&) const = default;
};

struct Retry {
  uint32_t attempts = 0;                  // retries after the first try
  bool on_connect_failure = false;
  bool on_reset = false;
  std::vector<int> on_statuses;
  std::optional<Millis> per_try_timeout;
  Millis backoff_base{25};
  Millis backoff_max{250};
  bool operator==(const Retry&) const = default;
};

// policy.tracing: the route's sampling ratio for new traces, in place of
// --tracing-sampling (a caller's sampled flag is still followed; docs/tracing.md).
struct Tracing {
  double sampling = 1.0;  // 0..1
  bool operator==(const Tracing&) const = default;
};

struct Policy {
  LoadBalancer load_balancer;
  std::optional<HealthCheck> health_check;
  std::optional<OutlierDetection> outlier_detection;
  std::optional<CircuitBreaker> circuit_breaker;
  Timeouts timeouts;
  std::optional<Retry> retry;
  std::optional<Tracing> tracing;
  bool operator==(const Policy&) const = default;
};

// ---------------------------------------------------------------- routes

// One weighted target of a rule. `cluster` names an entry of Snapshot::clusters.
// A ref the controller could not resolve carries the reason instead of a
// cluster; the proxy answers 500 for the share of traffic it would have had.
// The header modifiers of a ref (Gateway API filters on a backendRef) apply
// only to the requests sent to it and their answers, after the rule's.
struct BackendRef {
  std::string cluster;
  uint32_t weight = 1;
  std::string unresolved;  // non-empty: why this ref answers 500
  std::optional<HeaderModifier> request_headers;   // "requestHeaders"
  std::optional<HeaderModifier> response_headers;  // "responseHeaders"
  bool operator==(const BackendRef&) const = default;
};

struct Rule {
  std::vector<RouteMatch> matches;  // empty: matches every request
  Filters filters;
  std::vector<BackendRef> backends;
  Policy policy;
  bool operator==(const Rule&) const = default;
};

struct Route {
  std::string namespace_;
  std::string name;
  std::string kind = "GatewayRoute";  // or "Ingress", "HTTPRoute", "GRPCRoute"
  int64_t creation_timestamp = 0;     // unix seconds; older wins ties
  std::vector<std::string> hostnames; // lower-case; "*.x.com" wildcards; empty: any
  // The listeners that serve this route: Listener::name, or "name/hostname"
  // for one of a listener's hostnames. Empty: the proxy's own listeners
  // (--http-listen / --https-listen) only.
  std::vector<std::string> listeners;
  std::vector<Rule> rules;

  std::string id() const { return namespace_ + "/" + name; }
  bool operator==(const Route&) const = default;
};

// ---------------------------------------------------------------- clusters

struct Endpoint {
  std::string address;  // IPv4 or IPv6 literal
  uint16_t port = 0;
  bool ready = true;    // false: serving + terminating fallback
  bool operator==(const Endpoint&) const = default;
};

// How the proxy speaks to a cluster's endpoints. kH2c: HTTP/2 with prior
// knowledge over cleartext (Service port appProtocol kubernetes.io/h2c, grpc
// or h2c); streams multiplexed on few connections per endpoint per worker.
// kH2: HTTP/2 over TLS (the cluster has `tls`; ALPN offers h2).
enum class ClusterProtocol : uint8_t { kHttp1, kH2c, kH2 };

// TLS from the proxy to a cluster's endpoints (Gateway API BackendTLSPolicy,
// Service appProtocol https, ingress-nginx backend-protocol HTTPS / GRPCS).
// The chain is verified against `ca_pem` and/or the system store, and the
// certificate must name `subject_alt_names` (any one of them; DNS names, or
// URIs when they contain "://"), else `server_name`. `verify` false skips
// both checks (ingress-nginx's proxy-ssl-verify off, its default).
struct UpstreamTls {
  std::string server_name;  // "serverName": SNI; the name verified when subjectAltNames is empty
  std::string ca_pem;       // "caPem": trust anchors, PEM (one or more certificates)
  bool system_ca = false;   // "systemCa": trust the system store too
  bool verify = true;       // "verify"
  std::vector<std::string> subject_alt_names;  // "subjectAltNames"
  std::string client_cert_pem;  // "clientCertPem": presented to backends that ask (mTLS)
  std::string client_key_pem;   // "clientKeyPem"
  std::vector<std::string> alpn;  // "alpn": offered protocols; default ["h2"] for H2, none for HTTP1
  std::string min_version;        // "minVersion": "TLS1.2" (default, omitted) | "TLS1.3"
  bool operator==(const UpstreamTls&) const = default;
};

// One cluster per (namespace, service, port). Name: "ns/service:port".
struct Cluster {
  std::string name;
  std::vector<Endpoint> endpoints;
  ClusterProtocol protocol = ClusterProtocol::kHttp1;  // JSON "protocol": "HTTP1" (default, omitted) | "H2C" | "H2"
  std::optional<UpstreamTls> tls;                      // JSON "tls": absent = plain TCP
  bool operator==(const Cluster&) const = default;
};

// ---------------------------------------------------------------- TLS

// A certificate served by SNI for the listed hostnames (exact or "*.x.com").
struct TlsCertificate {
  std::string name;  // "ns/secret"
  std::vector<std::string> hostnames;
  std::string cert_pem;  // chain, leaf first
  std::string key_pem;
  bool operator==(const TlsCertificate&) const = default;
};

// ---------------------------------------------------------------- passthrough

// TLS passthrough: a TLS connection whose ClientHello names `hostname` (SNI)
// on `listener` is relayed as raw TCP to an endpoint of `cluster`; the backend
// terminates TLS (ingress-nginx ssl-passthrough). Other connections are
// terminated as usual.
struct Passthrough {
  std::string hostname;  // lower-case; "*.example.com": one or more leading labels
  std::string cluster;
  // A tls Listener::name; empty: the proxy's own --https-listen.
  std::string listener;
  std::string owner;  // "namespace/name" of the object it came from (messages, config_dump)
  bool operator==(const Passthrough&) const = default;
};

// ---------------------------------------------------------------- listeners

// A listener the proxy binds while the snapshot is applied (a Gateway's
// address and port), besides its own --http-listen / --https-listen. Name:
// "address:port" ("[v6]:port"), which routes list in Route::listeners.
//
// Gateway listeners with a hostname share the socket of their address and
// port; a request belongs to the most specific of them that its host matches
// (exact, then the longest wildcard, else the hostless one), and routes name
// it "address:port/hostname" (the hostless one: "address:port"). So a route
// attached to a "*.example.com" listener never serves a host that a
// "foo.example.com" listener of the same port has.
//
// On a TLS listener with hostnames, a request whose host belongs to another
// part than the connection's SNI does is answered 421 Misdirected Request
// (a connection reused across listeners, RFC 9110 15.5.20; docs/http.md).

// Client certificates a TLS listener asks for (Gateway API
// spec.tls.frontend.validation): verified against `ca_pem`; without a valid
// one the handshake fails, unless `insecure_fallback` (then any client).
struct ClientValidation {
  std::string ca_pem;              // "caPem": trust anchors, PEM
  bool insecure_fallback = false;  // "insecureFallback": AllowInsecureFallback
  bool operator==(const ClientValidation&) const = default;
};

struct Listener {
  std::string name;
  std::string address;  // IPv4 or IPv6 literal
  uint16_t port = 0;
  bool tls = false;     // HTTPS: certificates by SNI from `certificates`
  std::vector<std::string> hostnames;  // lower-case, "*.x.com" wildcards
  std::optional<ClientValidation> client_validation;  // JSON "clientValidation"; tls only
  // JSON "publicPort": the port clients connect to when it is not `port` (a
  // Gateway's Service port that kube-proxy maps onto `port`, service mode);
  // a redirect that keeps the port keeps this one. 0: `port`.
  uint16_t public_port = 0;
  bool operator==(const Listener&) const = default;
};

// ---------------------------------------------------------------- host client certificates

// Client certificates asked for by hostname (ingress-nginx's auth-tls-*,
// which nginx applies per server block): chosen by the TLS SNI on every TLS
// listener without a clientValidation of its own, and checked again at the
// HTTP layer against the request's host (docs/http.md, "Client certificates
// per host"). JSON "hostClientValidation".
enum class ClientVerify { kOn, kOff, kOptional, kOptionalNoCa };  // "On", "Off", "Optional", "OptionalNoCA"
struct HostClientValidation {
  std::string hostname;   // exact or "*.x.com", lower case
  std::string ca_pem;     // "caPem": trust anchors, PEM
  std::string crl_pem;    // "crlPem": revocation lists, PEM; empty: none
  ClientVerify verify = ClientVerify::kOn;
  uint32_t depth = 1;       // "depth": nginx's ssl_verify_depth (1..100)
  std::string error_page;   // "errorPage": a failed or missing certificate answers 302 to it
  bool pass_certificate = false;  // "passCertificate": the PEM, URL-escaped, in ssl-client-cert
  std::string subject_match;      // "subjectMatch": RE2, unanchored, on the RFC 2253 subject DN; else 403
  std::string owner;              // "namespace/name" of the object it came from
  bool operator==(const HostClientValidation&) const = default;
};

// "10.0.0.1:80", "[fd00::1]:443": a listener's name.
inline std::string listener_name(const std::string& address, uint16_t port) {
  std::string out;
  if (address.find(':') != std::string::npos) {
    out += '[';
    out += address;
    out += ']';
  } else {
    out += address;
  }
  out += ':';
  out += std::to_string(port);
  return out;
}

// ---------------------------------------------------------------- snapshot

struct Snapshot {
  uint64_t version = 0;
  std::vector<Route> routes;
  std::vector<Cluster> clusters;
  std::vector<TlsCertificate> certificates;
  std::vector<Listener> listeners;
  std::optional<RateLimitStore> rate_limit_store;  // needed by routes with rateLimit.scope global
  std::vector<Passthrough> passthrough;
  std::vector<HostClientValidation> host_client_validation;  // JSON "hostClientValidation"
  bool operator==(const Snapshot&) const = default;
};

// An endpoint-only change: replaces the endpoints of the named clusters.
// Applies only to a proxy whose current version is `base_version`.
struct EndpointDelta {
  uint64_t base_version = 0;
  uint64_t version = 0;
  std::vector<Cluster> clusters;
  bool operator==(const EndpointDelta&) const = default;
};

}  // namespace gantry::snapshot
