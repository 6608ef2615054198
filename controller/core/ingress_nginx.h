// ingress-nginx compatibility (--ingress-nginx-compat, docs/migrating-from-ingress-nginx.md):
// the nginx.ingress.kubernetes.io/* annotations of an Ingress read with
// ingress-nginx v1.15's semantics, and a verdict for every one of them.
//
// parse_nginx_annotations() is pure: annotations in, the settings translate
// applies (NginxConfig) and one verdict per annotation out. Nothing is
// silent: an annotation gantry serves exactly is kServed; one it serves with a
// difference names the difference (kPartial); one it does not implement, or
// refuses (the snippets), says why (kRefused), and `blocks` when serving the
// Ingress without it could expose what it protected (the Ingress is then not
// served unless the operator opts in); a name ingress-nginx does not know
// either is kUnknown.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "proxy/snapshot/model.h"

namespace gantry::controller {

inline constexpr const char* kNginxAnnotationPrefix = "nginx.ingress.kubernetes.io/";
inline constexpr const char* kNginxIngressController = "k8s.io/ingress-nginx";

struct IngressNginxOptions {
  bool enabled = false;
  // Class names served in compatibility mode (spec.ingressClassName or the
  // legacy kubernetes.io/ingress.class annotation).
  std::set<std::string> classes;
  // ConfigMap-level defaults of ingress-nginx.
  uint64_t default_body_size = 1024 * 1024;  // proxy-body-size: 1m
  int ssl_redirect_code = 308;               // http-redirect-code
  // hsts / hsts-max-age / hsts-include-subdomains / hsts-preload, as the
  // Strict-Transport-Security value on TLS answers; empty: off.
  std::string hsts = "max-age=31536000; includeSubDomains";
  // Serve an Ingress whose refused annotations would block it, without them.
  bool serve_refused = false;
  // ssl-passthrough is honoured (ingress-nginx's --enable-ssl-passthrough).
  bool ssl_passthrough = false;
  // Ingresses without any class (no spec.ingressClassName, no
  // kubernetes.io/ingress.class annotation) are served with ingress-nginx's
  // semantics (its --watch-ingress-without-class); this wins over gantry's
  // own default IngressClass.
  bool watch_without_class = false;
  bool operator==(const IngressNginxOptions&) const = default;
};

enum class NginxSupport { kServed, kPartial, kRefused, kUnknown };
const char* nginx_support_name(NginxSupport s);  // "served" | "partial" | "refused" | "unknown"

struct NginxAnnotationVerdict {
  std::string name;  // without the prefix, e.g. "rewrite-target"
  std::string value;
  NginxSupport support = NginxSupport::kServed;
  std::string detail;  // partial: what differs; refused / unknown: why
  bool blocks = false;  // the Ingress is not served because of it
  bool operator==(const NginxAnnotationVerdict&) const = default;
};

struct NginxCanary {
  std::string header;          // canary-by-header
  std::string header_value;    // canary-by-header-value
  std::string header_pattern;  // canary-by-header-pattern (PCRE, unanchored)
  std::string cookie;          // canary-by-cookie
  int64_t weight = 0;          // canary-weight
  int64_t weight_total = 100;  // canary-weight-total
  bool operator==(const NginxCanary&) const = default;
};

// What translate applies to every path of the Ingress.
// auth-type: basic with auth-secret (same namespace), auth-secret-type and
// auth-realm, served by the basicAuth filter.
struct NginxBasicAuth {
  std::string secret;            // name
  std::string secret_namespace;  // from "namespace/name"; gantry reads the Ingress's own only
  bool auth_map = false;  // auth-secret-type: auth-map (one key per user) vs auth-file (key `auth`)
  std::string realm;     // ingress-nginx's default is the empty realm
};

// backend-protocol: how the proxy speaks to the Ingress's Services.
// HTTP (and AUTO_HTTP): HTTP/1.1 in clear; HTTPS: HTTP/1.1 over TLS; GRPC:
// HTTP/2 with prior knowledge (h2c); GRPCS: HTTP/2 over TLS (ALPN h2).
enum class NginxBackendProtocol { kHttp, kHttps, kGrpc, kGrpcs };

// proxy-ssl-* (ingress-nginx's proxyssl annotations), read only together with
// proxy-ssl-secret, as ingress-nginx reads them, and applied to HTTPS and
// GRPCS backends. The Secret's ca.crt is the trust anchor (proxy-ssl-verify
// has no effect without it: nginx then emits no proxy_ssl_verify), its
// tls.crt/tls.key the client certificate; one of the two is needed.
struct NginxProxySsl {
  std::string secret;            // proxy-ssl-secret: "namespace/name"
  std::string secret_namespace;  // translate checks it is the Ingress's own
  bool verify = false;           // proxy-ssl-verify: on
  std::string name;              // proxy-ssl-name; empty: nginx's $proxy_host ("upstream_balancer")
  bool server_name = false;      // proxy-ssl-server-name: on (the name goes as SNI)
  bool operator==(const NginxProxySsl&) const = default;
};

// auth-tls-*: client certificates for the Ingress's hosts
// (snapshot::HostClientValidation); the Secret's ca.crt (and ca.crl).
struct NginxAuthTls {
  std::string secret;            // name
  std::string secret_namespace;  // empty: the Ingress's; translate checks it is the Ingress's own
  snapshot::ClientVerify verify = snapshot::ClientVerify::kOn;
  uint32_t depth = 1;
  std::string error_page;
  bool pass_certificate = false;
  std::string match_cn;  // the annotation as written ("CN=..."), a regex on the subject DN
  bool operator==(const NginxAuthTls&) const = default;
};

struct NginxConfig {
  bool use_regex = false;
  std::optional<std::string> rewrite_target;  // set only when it differs from the path (per path)
  std::optional<std::string> app_root;
  std::optional<std::string> x_forwarded_prefix;
  std::optional<bool> ssl_redirect;  // unset: on when the host has TLS
  bool force_ssl_redirect = false;
  bool preserve_trailing_slash = false;
  std::optional<std::string> permanent_redirect;
  int permanent_redirect_code = 301;
  std::optional<std::string> temporal_redirect;
  int temporal_redirect_code = 302;
  bool from_to_www_redirect = false;
  bool canary = false;
  NginxCanary canary_rules;
  std::optional<snapshot::LoadBalancer> load_balancer;  // affinity, load-balance, upstream-hash-by
  std::optional<snapshot::RateLimit> rate_limit;
  // limit-connections (limit-whitelist exempts); translate names its zone (the Ingress).
  std::optional<snapshot::ConnectionLimit> connection_limit;
  // default-backend: a Service of the Ingress's namespace (its first port);
  // custom-http-errors: the upstream statuses it answers in place of.
  std::string default_backend;
  std::vector<int> custom_http_errors;
  std::optional<snapshot::SourceRange> source_range;
  std::optional<uint64_t> body_size;  // unset: the default; 0: unlimited
  std::optional<snapshot::Millis> read_timeout;
  std::optional<snapshot::Retry> retry;
  std::optional<std::string> upstream_vhost;
  std::optional<snapshot::Cors> cors;
  std::vector<std::string> server_aliases;
  std::optional<NginxBasicAuth> basic_auth;
  std::optional<NginxAuthTls> auth_tls;
  // auth-url and its companions (extAuth; host/port/path of the service set).
  std::optional<snapshot::ExtAuth> ext_auth;
  NginxBackendProtocol backend_protocol = NginxBackendProtocol::kHttp;
  std::optional<NginxProxySsl> proxy_ssl;  // with HTTPS or GRPCS only
  // ssl-passthrough: the hosts' TLS connections go to the backend as raw TCP.
  bool ssl_passthrough = false;
};

// Splits an extAuth service URL (http://host[:port][/path][?query]) into
// `out`'s host, port, authority and path. Empty: fine; else what is wrong.
std::string parse_ext_auth_url(std::string_view url, snapshot::ExtAuth& out);

struct NginxParse {
  NginxConfig config;
  std::vector<NginxAnnotationVerdict> verdicts;  // sorted by name
  bool blocked(bool serve_refused) const;
};

// Reads every nginx.ingress.kubernetes.io/* annotation of `annotations`.
NginxParse parse_nginx_annotations(const std::map<std::string, std::string>& annotations);

// nginx sizes: "1m", "512k", "8192", "1g" (case-insensitive units); 0 = unlimited.
std::optional<uint64_t> parse_nginx_size(const std::string& s);

// ingress-nginx paths as RE2: `path` as nginx's `~* "^path"` location (case-
// insensitive, anchored at the start only), for a full-match router.
std::string nginx_location_regex(const std::string& path);
// The pattern of nginx's `rewrite "(?i)path" target`, and `target` with $n
// turned into RE2's \n (nullopt when the target uses what RE2 cannot).
std::string nginx_rewrite_pattern(const std::string& path);
std::optional<std::string> nginx_rewrite_substitution(const std::string& target);

// One Ingress of the migration report.
struct NginxIngressReport {
  std::string namespace_;
  std::string name;
  bool canary = false;
  bool served = true;
  std::string note;  // why not served, or what the canary was merged into
  std::vector<NginxAnnotationVerdict> annotations;
  bool operator==(const NginxIngressReport&) const = default;
};

// The migration report (gantry-controller migrate, the admin listener's
// /ingress-nginx): JSON {"ingresses":[{namespace,name,canary,served,note,
// annotations:[{name,value,support,detail,blocks}]}],"summary":{served,
// partial,refused,unknown,ingresses,notServed}}, or text for people.
std::string nginx_report_json(const std::vector<NginxIngressReport>& reports);
std::string nginx_report_text(const std::vector<NginxIngressReport>& reports);
// gantry_controller_ingress_nginx_annotations{support="..."} and
// gantry_controller_ingress_nginx_ingresses_not_served, Prometheus text.
std::string nginx_report_metrics(const std::vector<NginxIngressReport>& reports);

}  // namespace gantry::controller
