// The Kubernetes objects the controller consumes, as plain structs.
//
// Both sources — the API-server watch (JSON) and the standalone YAML directory —
// produce exactly this model (decode.h turns a YAML::Node, hence also JSON, into
// it), so translate cannot tell which one fed it. The structs keep the user's
// shape: enum-like fields hold the spelling the user wrote (already checked
// against the allowed values by the decoder, as a CRD schema would), while
// values only the controller can judge — durations, sizes, regular expressions,
// hostnames, unknown filter names — are kept raw and checked by translate, so a
// bad one becomes a route status instead of a dropped object.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace gantry::controller {

struct ObjectMeta {
  std::string namespace_ = "default";
  std::string name;
  std::string uid;
  int64_t generation = 0;
  std::string resource_version;
  int64_t creation_timestamp = 0;  // unix seconds (RFC 3339 in the source)
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;

  std::string key() const { return namespace_ + "/" + name; }
  bool operator==(const ObjectMeta&) const = default;
};

// ------------------------------------------------------------ GatewayRoute

struct GrPathMatch {
  std::string type = "PathPrefix";  // Exact | PathPrefix | RegularExpression
  std::string value = "/";
  // GRPCRoute method matches only (decode.cc): ranks its regular expressions
  // as the spec ranks method matches, by the characters of the service, then
  // of the method (routing.md, precedence 2b).
  int32_t priority = 0;
  bool operator==(const GrPathMatch&) const = default;
};

struct GrValueMatch {
  std::string type = "Exact";  // Exact | RegularExpression
  std::string name;
  std::string value;
  bool operator==(const GrValueMatch&) const = default;
};

struct GrMatch {
  std::optional<GrPathMatch> path;
  std::optional<std::string> method;
  std::vector<GrValueMatch> headers;
  std::vector<GrValueMatch> query_params;
  bool operator==(const GrMatch&) const = default;
};

struct GrHeader {
  std::string name;
  std::string value;
  bool operator==(const GrHeader&) const = default;
};

struct GrHeaderModifier {
  std::vector<GrHeader> set;
  std::vector<GrHeader> add;
  std::vector<std::string> remove;
  bool operator==(const GrHeaderModifier&) const = default;
};

struct GrPathModifier {
  std::string type;  // ReplaceFullPath | ReplacePrefixMatch
  std::string replace_full_path;
  std::string replace_prefix_match;
  bool operator==(const GrPathModifier&) const = default;
};

struct GrUrlRewrite {
  std::optional<std::string> hostname;
  std::optional<GrPathModifier> path;
  bool operator==(const GrUrlRewrite&) const = default;
};

struct GrRequestRedirect {
  std::optional<std::string> scheme;
  std::optional<std::string> hostname;
  std::optional<int64_t> port;
  std::optional<GrPathModifier> path;
  std::optional<int64_t> status_code;
  bool operator==(const GrRequestRedirect&) const = default;
};

struct GrCors {
  std::vector<std::string> allow_origins;
  std::vector<std::string> allow_methods;
  std::vector<std::string> allow_headers;
  std::vector<std::string> expose_headers;
  bool allow_credentials = false;
  std::optional<std::string> max_age;  // duration
  bool operator==(const GrCors&) const = default;
};

struct GrRateLimit {
  int64_t requests = 0;
  std::optional<std::string> interval;  // duration, default 1s
  int64_t burst = 0;
  std::string algorithm = "TokenBucket";  // TokenBucket | SlidingWindow
  std::string key = "ClientIP";           // ClientIP | Header:<name>
  std::string scope = "local";            // local | global
  std::string failure_mode = "open";      // open | closed (global scope)
  bool operator==(const GrRateLimit&) const = default;
};

// A key of a Secret in the route's namespace.
struct GrSecretKeyRef {
  std::string name;
  std::string key;
  bool operator==(const GrSecretKeyRef&) const = default;
};

struct GrClaimToHeader {
  std::string claim;
  std::string header;
  bool operator==(const GrClaimToHeader&) const = default;
};

struct GrJwt {
  std::vector<std::string> algorithms;            // HS256 | RS256 | ES256
  std::optional<GrSecretKeyRef> hmac_secret_ref;  // HS256 key (raw bytes)
  std::optional<GrSecretKeyRef> jwks_secret_ref;  // JWKS JSON or PEM keys (RS256/ES256)
  std::string issuer;
  std::vector<std::string> audiences;
  std::optional<std::string> clock_skew;  // duration
  std::vector<GrClaimToHeader> claims_to_headers;
  bool operator==(const GrJwt&) const = default;
};

// filters.apiKey: one Secret per consumer, selected by labels in the route's
// namespace; data `key` (the API key) and `consumer` (default: the Secret's name).
struct GrApiKey {
  std::map<std::string, std::string> match_labels;  // secretSelector.matchLabels
  std::string header;       // empty: x-api-key
  std::string query_param;
  std::string consumer_header = "x-consumer";
  std::optional<int64_t> unknown_key_status;  // 401 | 403
  bool operator==(const GrApiKey&) const = default;
};

// filters.basicAuth: an htpasswd file in a Secret (key `auth` by default, as
// ingress-nginx's auth-secret).
struct GrBasicAuth {
  GrSecretKeyRef secret_ref;
  std::string realm = "gantry";
  std::string consumer_header = "x-consumer";
  bool operator==(const GrBasicAuth&) const = default;
};

// filters.extAuth: an HTTP call to an authorisation service (ingress-nginx
// auth-url, Envoy HTTP ext_authz) before the request goes upstream.
struct GrExtAuth {
  std::string url;  // http://host[:port]/path[?query]
  std::string method;  // empty: the client's
  std::optional<std::vector<std::string>> request_headers;  // unset: authorization, cookie
  std::vector<std::string> response_headers;
  std::string signin_url;
  std::string signin_redirect_param = "rd";
  std::optional<std::string> timeout;  // duration
  bool fail_open = false;
  std::optional<int64_t> status_on_error;
  std::optional<std::string> cache_ttl;  // duration; unset: no cache
  std::optional<int64_t> cache_max_entries;
  // withRequestBody: {maxBytes, allowPartialMessage}
  bool with_body = false;
  std::optional<std::string> body_max_bytes;  // quantity ("8Ki"); unset: 8Ki
  bool body_allow_partial = false;
  // grpc: Envoy's ext_authz protocol instead of `url`: address host:port, or
  // a Service (name, namespace, port); its own timeout overrides `timeout`.
  bool grpc = false;
  std::string grpc_address;
  std::string grpc_service, grpc_service_namespace;
  std::optional<int64_t> grpc_service_port;
  std::optional<std::string> grpc_timeout;
  bool grpc_tls = false;
  // caSecretRef: trust anchors (PEM) for https:// / grpc.tls; unset: the system's.
  std::optional<GrSecretKeyRef> ca_secret_ref;
  bool operator==(const GrExtAuth&) const = default;
};

struct GrBackendRef {
  std::string group;  // "" = core
  std::string kind = "Service";
  std::string name;
  std::optional<std::string> namespace_;  // only the route's own namespace is permitted
  std::optional<int64_t> port;
  std::optional<int64_t> weight;
  // HTTPRoute / GRPCRoute filters on a backendRef (RequestHeaderModifier,
  // ResponseHeaderModifier): applied only to the requests sent to it.
  std::optional<GrHeaderModifier> request_headers;
  std::optional<GrHeaderModifier> response_headers;
  // GatewayRoute rules[].backendRefs[].protocol: "h2c" | "grpc" (HTTP/2 with
  // prior knowledge) | "h2" (HTTP/2 over TLS, ALPN h2); empty: the Service
  // port's appProtocol decides. Checked by translate (Accepted=False).
  std::string protocol;
  // ...backendRefs[].tls, with protocol h2: the name verified (and sent as
  // SNI; default "<service>.<namespace>.svc") and the trust anchors (PEM in a
  // Secret of the route's namespace; unset: the system's store).
  std::optional<std::string> tls_hostname;
  std::optional<GrSecretKeyRef> tls_ca_secret_ref;
  bool tls = false;  // a tls block was given
  bool operator==(const GrBackendRef&) const = default;
};

// A copy of the requests to another backendRef; Gateway API `percent`
// (0..100) or `fraction` (numerator / denominator, default 100) mirror a
// share of them.
struct GrRequestMirror {
  GrBackendRef backend_ref;
  std::optional<int64_t> percent;
  std::optional<int64_t> fraction_numerator;
  std::optional<int64_t> fraction_denominator;  // unset with a numerator: 100
  bool operator==(const GrRequestMirror&) const = default;
};

struct GrCache {
  std::optional<std::string> ttl;               // duration
  std::optional<std::string> max_bytes;         // size ("64Mi")
  std::optional<std::string> max_object_bytes;  // size
  bool operator==(const GrCache&) const = default;
};

// filters.transform: JSON ↔ XML bodies (docs/policies.md, "transform").
struct GrTransform {
  std::string backend;  // XML | JSON: the format the backend speaks
  std::optional<bool> request, response;  // default true
  std::optional<std::string> max_body_size;  // size, default 1Mi
  std::optional<std::string> root_element, item_element;
  bool operator==(const GrTransform&) const = default;
};

// connectionLimit: requests in progress per client IP.
struct GrConnectionLimit {
  std::optional<int64_t> per_client_ip;  // required, >= 1
  std::optional<int64_t> status_code;    // default 503
  std::vector<std::string> exempt_sources;
  bool operator==(const GrConnectionLimit&) const = default;
};

// defaultBackend: answers while the rule's backends have no endpoint, and in
// place of upstream answers with interceptStatuses.
struct GrDefaultBackend {
  GrBackendRef backend_ref;
  std::vector<int64_t> intercept_statuses;
  bool operator==(const GrDefaultBackend&) const = default;
};

struct GrFilters {
  std::optional<GrCors> cors;
  std::optional<GrRateLimit> rate_limit;
  std::optional<std::string> max_request_body_size;  // size
  std::optional<GrJwt> jwt;
  std::optional<GrApiKey> api_key;
  std::optional<GrBasicAuth> basic_auth;
  std::optional<GrExtAuth> ext_auth;
  std::optional<GrHeaderModifier> request_headers;
  std::optional<GrHeaderModifier> response_headers;
  std::optional<GrRequestRedirect> request_redirect;
  std::optional<GrUrlRewrite> url_rewrite;
  std::vector<GrRequestMirror> request_mirrors;  // GatewayRoute: at most one
  std::optional<GrCache> cache;
  std::optional<GrTransform> transform;
  bool grpc_web = false;  // grpcWeb: {} (enabled: false turns it off): gRPC-Web translated to gRPC
  std::optional<GrConnectionLimit> connection_limit;
  std::optional<GrDefaultBackend> default_backend;
  // Client address lists (CIDRs, IPv4 and IPv6): outside ipAllow or inside ipDeny → 403.
  std::optional<std::vector<std::string>> ip_allow;
  std::optional<std::vector<std::string>> ip_deny;
  std::vector<std::string> unknown;  // keys gantry does not know: the route is not Accepted
  bool operator==(const GrFilters&) const = default;
};

struct GrConsistentHash {
  std::string type;  // Header | Cookie | SourceIP
  std::string header_name;
  std::string cookie_name;
  std::optional<std::string> cookie_ttl;  // duration
  // The cookie's attributes (snapshot LoadBalancer cookie*).
  std::optional<std::string> cookie_path, cookie_domain;
  std::string cookie_secure = "Never";  // Never | Always | OverTLS
  std::optional<std::string> cookie_same_site;  // Strict | Lax | None
  bool cookie_same_site_none_if_compatible = false;
  bool operator==(const GrConsistentHash&) const = default;
};

struct GrLoadBalancer {
  std::string type = "RoundRobin";  // RoundRobin | LeastRequest | Random | ConsistentHash
  std::optional<GrConsistentHash> consistent_hash;
  bool operator==(const GrLoadBalancer&) const = default;
};

struct GrHealthCheck {
  std::optional<std::string> path;
  std::optional<std::string> interval;
  std::optional<std::string> timeout;
  std::optional<int64_t> healthy_threshold;
  std::optional<int64_t> unhealthy_threshold;
  std::vector<int64_t> expected_statuses;
  std::optional<std::string> grpc_service;  // grpc: {service}; "" is the server as a whole
  bool operator==(const GrHealthCheck&) const = default;
};

struct GrOutlierDetection {
  std::optional<int64_t> consecutive_5xx;
  std::optional<int64_t> consecutive_connect_failures;
  std::optional<std::string> base_ejection_time;
  std::optional<int64_t> max_ejection_percent;
  bool operator==(const GrOutlierDetection&) const = default;
};

struct GrCircuitBreaker {
  std::optional<int64_t> consecutive_failures;
  std::optional<double> failure_ratio;
  std::optional<std::string> window;
  std::optional<int64_t> min_requests;
  std::optional<std::string> open_duration;
  std::optional<int64_t> half_open_requests;
  std::optional<int64_t> max_connections;
  std::optional<int64_t> max_pending_requests;
  bool operator==(const GrCircuitBreaker&) const = default;
};

struct GrTimeouts {
  std::optional<std::string> request;
  std::optional<std::string> backend_request;
  std::optional<std::string> idle;
  bool operator==(const GrTimeouts&) const = default;
};

struct GrRetry {
  std::optional<int64_t> attempts;
  std::vector<std::string> on;  // connect-failure | reset | "503"
  std::optional<std::string> per_try_timeout;
  std::optional<std::string> backoff_base;
  std::optional<std::string> backoff_max;
  // HTTPRoute retry.backoff: the least wait between tries (translate derives
  // base and max from it: a retry waits uniformly in [cap/2, cap]).
  std::optional<std::string> backoff_min;
  bool operator==(const GrRetry&) const = default;
};

struct GrTracing {
  std::optional<double> sampling;
  bool operator==(const GrTracing&) const = default;
};

struct GrPolicy {
  std::optional<GrLoadBalancer> load_balancer;
  std::optional<GrHealthCheck> health_check;
  std::optional<GrOutlierDetection> outlier_detection;
  std::optional<GrCircuitBreaker> circuit_breaker;
  std::optional<GrTimeouts> timeouts;
  std::optional<GrRetry> retry;
  std::optional<GrTracing> tracing;
  std::vector<std::string> unknown;  // unknown keys: the route is not Accepted
  bool operator==(const GrPolicy&) const = default;
};

struct GrRule {
  std::vector<GrMatch> matches;
  GrFilters filters;
  std::vector<GrBackendRef> backend_refs;
  GrPolicy policy;
  bool operator==(const GrRule&) const = default;
};

struct GatewayRoute {
  ObjectMeta meta;
  std::vector<std::string> hostnames;
  std::optional<std::string> tls_secret_name;
  std::vector<GrRule> rules;
  bool operator==(const GatewayRoute&) const = default;
};

// ------------------------------------------------------------ core kinds

// A port's target: a number, or the name of a container port.
struct IntOrString {
  std::optional<int64_t> number;
  std::string name;
  bool operator==(const IntOrString&) const = default;
};

struct ServicePort {
  std::string name;
  int64_t port = 0;
  IntOrString target_port;  // unset: same as port
  std::string protocol = "TCP";
  // spec.ports[].appProtocol: "kubernetes.io/h2c" or "grpc" makes the
  // port's cluster HTTP/2 with prior knowledge (translate.cc, ensure_cluster).
  std::string app_protocol;
  bool operator==(const ServicePort&) const = default;
};

struct Service {
  ObjectMeta meta;
  std::string type = "ClusterIP";
  std::vector<ServicePort> ports;
  std::map<std::string, std::string> selector;
  std::string cluster_ip;                 // spec.clusterIP ("None": headless)
  std::vector<std::string> external_ips;  // spec.externalIPs
  // status.loadBalancer.ingress[]: each entry's ip, else its hostname.
  std::vector<std::string> load_balancer_ingress;
  bool operator==(const Service&) const = default;
};

struct EndpointSlicePort {
  std::string name;
  std::optional<int64_t> port;
  std::string protocol = "TCP";
  bool operator==(const EndpointSlicePort&) const = default;
};

struct EndpointConditions {
  std::optional<bool> ready;        // absent: true
  std::optional<bool> serving;      // absent: true
  std::optional<bool> terminating;  // absent: false
  bool operator==(const EndpointConditions&) const = default;
};

struct SliceEndpoint {
  std::vector<std::string> addresses;
  EndpointConditions conditions;
  bool operator==(const SliceEndpoint&) const = default;
};

inline constexpr const char* kServiceNameLabel = "kubernetes.io/service-name";

struct EndpointSlice {
  ObjectMeta meta;                    // labels[kServiceNameLabel] names the Service
  std::string address_type = "IPv4";  // IPv4 | IPv6 | FQDN
  std::vector<EndpointSlicePort> ports;
  std::vector<SliceEndpoint> endpoints;

  std::string service_name() const {
    auto it = meta.labels.find(kServiceNameLabel);
    return it == meta.labels.end() ? std::string() : it->second;
  }
  bool operator==(const EndpointSlice&) const = default;
};

struct Secret {
  ObjectMeta meta;
  std::string type = "Opaque";
  std::map<std::string, std::string> data;  // base64-decoded; stringData merged over data
  bool operator==(const Secret&) const = default;
};

// ------------------------------------------------------------ Ingress

struct IngressBackend {
  std::string service_name;  // empty: a `resource` backend (unsupported)
  std::optional<int64_t> port_number;
  std::string port_name;
  bool operator==(const IngressBackend&) const = default;
};

struct IngressPath {
  std::string path;                                  // empty: "/"
  std::string path_type = "ImplementationSpecific";  // Exact | Prefix | ImplementationSpecific
  IngressBackend backend;
  bool operator==(const IngressPath&) const = default;
};

struct IngressRule {
  std::string host;  // empty: any host
  std::vector<IngressPath> paths;
  bool operator==(const IngressRule&) const = default;
};

struct IngressTls {
  std::vector<std::string> hosts;
  std::string secret_name;
  bool operator==(const IngressTls&) const = default;
};

struct Ingress {
  ObjectMeta meta;
  std::optional<std::string> ingress_class_name;
  std::optional<IngressBackend> default_backend;
  std::vector<IngressRule> rules;
  std::vector<IngressTls> tls;
  bool operator==(const Ingress&) const = default;
};

// ------------------------------------------------------------ Gateway API
// gateway.networking.k8s.io/v1 (standard channel), docs/gateway-api.md.

inline constexpr const char* kGatewayGroup = "gateway.networking.k8s.io";

struct GatewayClass {  // cluster-scoped: meta.namespace_ is unused
  ObjectMeta meta;
  std::string controller_name;
  bool operator==(const GatewayClass&) const = default;
};

// A Namespace, for its labels (listener allowedRoutes.namespaces.selector).
struct Namespace {  // cluster-scoped
  ObjectMeta meta;
  bool operator==(const Namespace&) const = default;
};

struct LabelSelectorRequirement {
  std::string key;
  std::string op;  // In | NotIn | Exists | DoesNotExist
  std::vector<std::string> values;
  bool operator==(const LabelSelectorRequirement&) const = default;
};

struct LabelSelector {
  std::map<std::string, std::string> match_labels;
  std::vector<LabelSelectorRequirement> match_expressions;
  bool operator==(const LabelSelector&) const = default;
};

struct GwGroupKind {
  std::string group = kGatewayGroup;
  std::string kind;
  bool operator==(const GwGroupKind&) const = default;
};

struct GwObjectRef {  // certificateRefs: a Secret, maybe in another namespace
  std::string group;  // "" = core
  std::string kind = "Secret";
  std::string name;
  std::optional<std::string> namespace_;
  bool operator==(const GwObjectRef&) const = default;
};

struct GwListener {
  std::string name;
  std::optional<std::string> hostname;
  int64_t port = 0;
  std::string protocol;                  // HTTP | HTTPS | TLS | TCP | UDP | ...
  std::optional<std::string> tls_mode;   // Terminate | Passthrough (when tls is set)
  std::vector<GwObjectRef> certificate_refs;
  std::string allowed_from = "Same";     // All | Same | Selector
  std::optional<LabelSelector> allowed_selector;
  std::optional<std::vector<GwGroupKind>> allowed_kinds;  // unset: the protocol's defaults
  bool operator==(const GwListener&) const = default;
};

// spec.tls.frontend...validation: client certificates checked against CA
// bundles (ConfigMaps with ca.crt).
struct GwFrontendValidation {
  std::vector<GwObjectRef> ca_certificate_refs;  // kind defaults to ConfigMap
  std::string mode = "AllowValidOnly";           // | AllowInsecureFallback
  bool operator==(const GwFrontendValidation&) const = default;
};

// spec.tls.frontend: the default for every HTTPS listener, and per port
// overrides (an entry without validation turns it off on its port).
struct GwFrontendTls {
  std::optional<GwFrontendValidation> default_validation;
  std::map<int64_t, std::optional<GwFrontendValidation>> per_port;
  bool operator==(const GwFrontendTls&) const = default;
};

struct GwAddress {
  std::string type = "IPAddress";  // IPAddress | Hostname | another (unsupported)
  std::string value;
  bool operator==(const GwAddress&) const = default;
};

struct Gateway {
  ObjectMeta meta;
  std::string gateway_class_name;
  std::vector<GwListener> listeners;
  std::vector<GwAddress> addresses;  // spec.addresses
  std::optional<GwFrontendTls> frontend_tls;  // spec.tls.frontend
  std::vector<std::string> status_addresses;  // status.addresses[].value, as last written
  // spec.allowedListeners.namespaces: the ListenerSets that may attach
  // listeners: None (the default) | Same | All | Selector.
  std::string allowed_listeners_from = "None";
  std::optional<LabelSelector> allowed_listeners_selector;
  // spec.tls.backend.clientCertificateRef: presented to backends over TLS
  // (backend_tls.h).
  std::optional<GwObjectRef> backend_client_certificate;
  // spec.infrastructure: labels and annotations for the resources gantry
  // generates for the Gateway (its Service, gateway_api.h); parametersRef,
  // which gantry does not take (Accepted=False InvalidParameters).
  std::map<std::string, std::string> infrastructure_labels;
  std::map<std::string, std::string> infrastructure_annotations;
  std::optional<GwObjectRef> infrastructure_parameters_ref;
  bool operator==(const Gateway&) const = default;
};

// A ListenerSet: more listeners for a Gateway that allows them
// (spec.allowedListeners), owned by another team or namespace. Its listeners
// are merged into the Gateway's after the Gateway's own (gateway_api.cc);
// routes attach to them with a parentRef of kind ListenerSet.
struct ListenerSet {
  ObjectMeta meta;
  std::string parent_group = kGatewayGroup;  // spec.parentRef
  std::string parent_kind = "Gateway";
  std::optional<std::string> parent_namespace;  // unset: the ListenerSet's
  std::string parent_name;
  std::vector<GwListener> listeners;
  bool operator==(const ListenerSet&) const = default;
};

struct GwParentRef {
  std::string group = kGatewayGroup;
  std::string kind = "Gateway";
  std::optional<std::string> namespace_;
  std::string name;
  std::optional<std::string> section_name;
  std::optional<int64_t> port;
  bool operator==(const GwParentRef&) const = default;
};

// An HTTPRoute's rules use the GatewayRoute model (the GatewayRoute contract
// follows the Gateway API one): filters of a type gantry does not implement
// are listed in filters.unknown, so translate reports them (never ignored).
struct HTTPRoute {
  ObjectMeta meta;
  std::vector<GwParentRef> parent_refs;
  std::vector<std::string> hostnames;
  std::vector<GrRule> rules;
  bool operator==(const HTTPRoute&) const = default;
};

// A GRPCRoute is decoded into the HTTPRoute model (decode.cc): a method match
// becomes a path match on `/<service>/<method>` (gRPC requests are POSTs to
// that path), header matches and the header-modifier / mirror filters are the
// HTTPRoute ones; a filter or field gantry does not implement goes to
// filters.unknown / policy.unknown like an HTTPRoute's. Attachment and status
// are the HTTPRoute ones (gateway_api.cc), with the conflict rule between the
// two kinds; translate makes its backends HTTP/2 (h2c).
struct GRPCRoute : HTTPRoute {
  bool operator==(const GRPCRoute&) const = default;
};

struct RgFrom {
  std::string group;
  std::string kind;
  std::string namespace_;
  bool operator==(const RgFrom&) const = default;
};

struct RgTo {
  std::string group;
  std::string kind;
  std::optional<std::string> name;
  bool operator==(const RgTo&) const = default;
};

struct ReferenceGrant {
  ObjectMeta meta;
  std::vector<RgFrom> from;
  std::vector<RgTo> to;
  bool operator==(const ReferenceGrant&) const = default;
};

// A ConfigMap holding a CA bundle (Gateway API caCertificateRefs: a
// BackendTLSPolicy's, a Gateway's frontend validation). The kube source keeps
// only the key gantry reads, ca.crt (kube_source.cc).
struct ConfigMap {
  ObjectMeta meta;
  std::map<std::string, std::string> data;
  bool operator==(const ConfigMap&) const = default;
};

struct BtlsTargetRef {  // spec.targetRefs[]: LocalPolicyTargetReferenceWithSectionName
  std::string group;  // "" = core
  std::string kind;
  std::string name;
  std::optional<std::string> section_name;
  bool operator==(const BtlsTargetRef&) const = default;
};

struct BtlsCaRef {  // spec.validation.caCertificateRefs[]: LocalObjectReference
  std::string group;
  std::string kind;
  std::string name;
  bool operator==(const BtlsCaRef&) const = default;
};

struct BtlsSubjectAltName {
  std::string type;  // Hostname | URI (as written)
  std::string hostname;
  std::string uri;
  bool operator==(const BtlsSubjectAltName&) const = default;
};

// gateway.networking.k8s.io/v1 BackendTLSPolicy (backend_tls.h judges it).
struct BackendTLSPolicy {
  ObjectMeta meta;
  std::vector<BtlsTargetRef> target_refs;
  std::vector<BtlsCaRef> ca_certificate_refs;
  std::optional<std::string> well_known_ca_certificates;  // "System" or another (unsupported)
  std::string hostname;
  std::vector<BtlsSubjectAltName> subject_alt_names;
  bool operator==(const BackendTLSPolicy&) const = default;
};

// ------------------------------------------------------------ cache

using Object = std::variant<GatewayRoute, Service, EndpointSlice, Secret, Ingress, GatewayClass,
                            Namespace, Gateway, HTTPRoute, ReferenceGrant, GRPCRoute, ListenerSet,
                            ConfigMap, BackendTLSPolicy>;

const char* kind_of(const Object& o);
const ObjectMeta& meta_of(const Object& o);

// Every object the controller knows, keyed by "namespace/name" per kind.
// Ordered maps: iteration order is independent of arrival order.
struct Cache {
  std::map<std::string, GatewayRoute> routes;
  std::map<std::string, Service> services;
  std::map<std::string, EndpointSlice> endpoint_slices;
  std::map<std::string, Secret> secrets;
  std::map<std::string, Ingress> ingresses;
  // Gateway API; cluster-scoped kinds are keyed by name alone.
  std::map<std::string, GatewayClass> gateway_classes;
  std::map<std::string, Namespace> namespaces;
  std::map<std::string, Gateway> gateways;
  std::map<std::string, HTTPRoute> http_routes;
  std::map<std::string, ReferenceGrant> reference_grants;
  std::map<std::string, GRPCRoute> grpc_routes;
  std::map<std::string, ListenerSet> listener_sets;
  std::map<std::string, ConfigMap> config_maps;
  std::map<std::string, BackendTLSPolicy> backend_tls_policies;

  // Inserts or replaces; returns true when the cache changed (Contour's
  // KubernetesCache::Insert: an identical update costs no rebuild).
  bool upsert(Object o);
  // Removes the object of `kind` ("Service", ...) at `key`; true if it existed.
  bool erase(const std::string& kind, const std::string& key);
  // True when an object of the same kind and key is present.
  bool contains(const Object& o) const;
  size_t size() const;

  bool operator==(const Cache&) const = default;
};

}  // namespace gantry::controller
