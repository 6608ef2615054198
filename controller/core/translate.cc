// Translate: Cache -> Snapshot + statuses; see translate.h.
//
// Shape: one Translator per call. Each route is translated into a RouteCtx
// that collects its problems, the clusters and the certificate it needs; only
// an accepted route commits those to the snapshot. Clusters are built once per
// (namespace, service, port) and emitted only when an accepted route uses them.
#include "controller/core/translate.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <functional>
#include <map>
#include <set>
#include <utility>

#include <openssl/sha.h>
#include <re2/re2.h>

#include "controller/core/backend_tls.h"
#include "controller/core/gateway_api.h"
#include "proxy/base/flags.h"
#include "proxy/filters/htpasswd.h"
#include "proxy/net/cidr.h"
#include "proxy/snapshot/validate.h"

namespace gantry::controller {

namespace sn = gantry::snapshot;

namespace {

constexpr size_t kMaxMessagesPerCondition = 5;

// ------------------------------------------------------------ lexical checks

std::string quote(std::string_view s) { return "\"" + std::string(s) + "\""; }

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

bool is_tchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool is_token(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), is_tchar);
}

bool has_control(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    unsigned char u = static_cast<unsigned char>(c);
    return (u < 0x20 && u != '\t') || u == 0x7f;
  });
}

// The canonical text of an IP literal of the slice's family; empty if invalid.
std::string canonical_ip(const std::string& s, const std::string& family) {
  char buf[INET6_ADDRSTRLEN];
  if (family == "IPv4") {
    in_addr a;
    if (inet_pton(AF_INET, s.c_str(), &a) != 1) return "";
    return inet_ntop(AF_INET, &a, buf, sizeof(buf)) ? std::string(buf) : "";
  }
  in6_addr a6;
  if (inet_pton(AF_INET6, s.c_str(), &a6) != 1) return "";
  return inet_ntop(AF_INET6, &a6, buf, sizeof(buf)) ? std::string(buf) : "";
}

bool is_dns_label(std::string_view l) {
  if (l.empty() || l.size() > 63 || l.front() == '-' || l.back() == '-') return false;
  return std::all_of(l.begin(), l.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  });
}

// Why `h` (already lower-cased) is not a valid route hostname; empty if it is.
std::string hostname_problem(const std::string& h, bool allow_wildcard) {
  if (h.empty()) return "must not be empty";
  if (h == "*") return "bare \"*\" is not allowed; leave hostnames empty to match any host";
  if (is_ip(h)) return quote(h) + ": IP addresses are not allowed, use a DNS name";
  if (h.find(':') != std::string::npos) return quote(h) + " must not contain a port";
  std::string_view rest = h;
  if (rest.starts_with("*.")) {
    if (!allow_wildcard) return quote(h) + ": a wildcard is not allowed here";
    rest.remove_prefix(2);
  }
  if (rest.find('*') != std::string_view::npos)
    return quote(h) + ": \"*\" is only allowed as the whole leftmost label (\"*.example.com\")";
  if (rest.size() > 253) return quote(h) + " is longer than 253 characters";
  size_t start = 0;
  while (true) {
    size_t dot = rest.find('.', start);
    std::string_view label =
        rest.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (!is_dns_label(label)) return quote(h) + " is not a valid DNS name (RFC 1123)";
    if (dot == std::string_view::npos) return "";
    start = dot + 1;
  }
}

// Exact / PathPrefix values and rewrite targets.
std::string path_problem(const std::string& p) {
  if (p.empty() || p.front() != '/') return "path " + quote(p) + " must start with \"/\"";
  if (p.find_first_of("?#") != std::string::npos)
    return "path " + quote(p) + " must not contain \"?\" or \"#\"";
  if (has_control(p) || p.find(' ') != std::string::npos)
    return "path " + quote(p) + " must not contain spaces or control characters";
  return "";
}

std::string regex_problem(const std::string& pattern) {
  RE2::Options opts;
  opts.set_log_errors(false);
  RE2 re(pattern, opts);
  if (re.ok()) return "";
  std::string why;
  switch (re.error_code()) {
    case RE2::ErrorMissingParen:
      why = "missing )";
      break;
    case RE2::ErrorMissingBracket:
      why = "missing ]";
      break;
    case RE2::ErrorBadEscape:
      why = "invalid escape sequence " + re.error_arg();
      break;
    case RE2::ErrorBadCharClass:
      why = "invalid character class " + re.error_arg();
      break;
    case RE2::ErrorBadCharRange:
      why = "invalid character class range " + re.error_arg();
      break;
    case RE2::ErrorTrailingBackslash:
      why = "trailing \\";
      break;
    case RE2::ErrorRepeatArgument:
      why = "missing argument to repetition operator";
      break;
    case RE2::ErrorRepeatSize:
      why = "bad repetition count " + re.error_arg();
      break;
    case RE2::ErrorRepeatOp:
      why = "bad repetition operator " + re.error_arg();
      break;
    case RE2::ErrorBadPerlOp:
      why = "unsupported Perl syntax " + re.error_arg();
      break;
    case RE2::ErrorBadUTF8:
      why = "invalid UTF-8";
      break;
    case RE2::ErrorBadNamedCapture:
      why = "invalid named capture group " + re.error_arg();
      break;
    case RE2::ErrorPatternTooLarge:
      why = "pattern too large";
      break;
    default:
      why = re.error();
      break;
  }
  return "regex " + quote(pattern) + " does not compile: " + why;
}

std::string join_messages(const std::vector<std::string>& msgs) {
  std::string out;
  for (size_t i = 0; i < msgs.size() && i < kMaxMessagesPerCondition; ++i) {
    if (i > 0) out += "; ";
    out += msgs[i];
  }
  if (msgs.size() > kMaxMessagesPerCondition)
    out += "; and " + std::to_string(msgs.size() - kMaxMessagesPerCondition) + " more";
  return out;
}

std::string sub(const std::string& path, const char* key) { return path + "." + key; }
std::string idx(const std::string& path, size_t i) { return path + "[" + std::to_string(i) + "]"; }

// ------------------------------------------------------------ per-route state

struct Problem {
  std::string reason;
  std::string message;
};

// A certificate a route asks for: the Secret's key and the hostnames to serve it for.
struct CertUse {
  std::string secret_key;  // "ns/name"
  std::vector<std::string> hostnames;
};

// ingress-nginx backend-protocol HTTPS / GRPCS: the TLS every cluster of the
// Ingress speaks. Such clusters are the Ingress's own ("...:PORT" + suffix).
struct UpstreamTlsOverride {
  std::string suffix;  // "/https=<ingress>" or "/grpcs=<ingress>"
  bool h2 = false;     // GRPCS: protocol H2
  sn::UpstreamTls tls;
  bool usable = true;  // false: the Secret is unusable; the clusters get no endpoints (503)
};

struct RouteCtx {
  std::string ns;
  // Set for HTTPRoutes: may the route refer to Service `ns/name` of another
  // namespace (a ReferenceGrant)? Unset: never.
  std::function<bool(const std::string& ns, const std::string& name)> may_refer;
  std::vector<Problem> invalid;     // Accepted=False
  std::vector<Problem> unresolved;  // ResolvedRefs=False
  std::vector<CertUse> certs;
  // GRPCRoutes: every backend speaks HTTP/2 with prior knowledge (h2c),
  // whatever its Service port's appProtocol.
  bool h2c = false;
  // HTTPRoutes and GRPCRoutes: a rule's timeouts and retry are fields of the
  // rule itself (spec.rules[i].retry), not of a policy block.
  bool gateway_api = false;
  // HTTPRoutes and GRPCRoutes: the Secret ("ns/name") their Gateway presents
  // to backends over TLS (backend_tls.h); empty: none.
  std::string client_certificate;
  // ingress-nginx mode, backend-protocol HTTPS / GRPCS (GRPC sets h2c).
  std::optional<UpstreamTlsOverride> upstream_tls;
  // ingress-nginx mode: the IngressNginxAnnotations condition (False with
  // these findings: annotations served with a difference or refused).
  bool nginx = false;
  std::vector<Problem> nginx_findings;
  // ingress-nginx ssl-passthrough: the snapshot passthrough entries it asks for.
  std::vector<sn::Passthrough> passthrough;
  // ingress-nginx auth-tls-*: client certificates of its hosts.
  std::vector<sn::HostClientValidation> host_client_validation;

  void bad(const std::string& field, const std::string& msg, const char* reason = "Invalid") {
    invalid.push_back({reason, field + ": " + msg});
  }
  void unres(const char* reason, const std::string& message) {
    unresolved.push_back({reason, message});
  }
};

template <typename T>
bool in_range(RouteCtx& ctx, const std::optional<int64_t>& v, int64_t lo, int64_t hi,
              const std::string& field, T& out) {
  if (!v) return false;
  if (*v < lo || *v > hi) {
    ctx.bad(field, "must be from " + std::to_string(lo) + " to " + std::to_string(hi) + ", got " +
                       std::to_string(*v));
    return false;
  }
  out = static_cast<T>(*v);
  return true;
}

std::optional<sn::Millis> duration(RouteCtx& ctx, const std::optional<std::string>& v,
                                   const std::string& field, bool positive) {
  if (!v) return std::nullopt;
  auto d = parse_k8s_duration(*v);
  if (!d.ok()) {
    ctx.bad(field, d.error().message);
    return std::nullopt;
  }
  if (positive && d->count() <= 0) {
    ctx.bad(field, "must be greater than 0, got " + quote(*v));
    return std::nullopt;
  }
  return *d;
}

std::optional<uint64_t> size(RouteCtx& ctx, const std::optional<std::string>& v,
                             const std::string& field) {
  if (!v) return std::nullopt;
  auto s = parse_size(*v);
  if (!s.ok()) {
    ctx.bad(field, s.error().message);
    return std::nullopt;
  }
  return *s;
}

// ------------------------------------------------------------ translator

class Translator {
 public:
  Translator(const Cache& cache, const TranslateOptions& options)
      : cache_(cache), options_(options) {
    for (const auto& [key, slice] : cache.endpoint_slices) {
      std::string svc = slice.service_name();
      if (!svc.empty()) slices_[slice.meta.namespace_ + "/" + svc].push_back(&slice);
    }
  }

  TranslateResult run() {
    CertificateCheck check = [this](const std::string& k) {
      if (!cache_.secrets.count(k)) return "Secret " + k + " not found";
      return certificate_problem(k);
    };
    GatewayApiModel gw = build_gateway_api(cache_, options_.gateway_api, check);
    // Before any cluster is built: a BackendTLSPolicy makes a Service port
    // TLS for every route kind.
    btls_ = build_backend_tls(cache_, gw, check);
    for (const auto& [key, route] : cache_.routes) translate_route(route);
    std::vector<const Ingress*> nginx;
    for (const auto& [key, ing] : cache_.ingresses) {
      if (ingress_is_nginx(ing, options_))
        nginx.push_back(&ing);
      else if (ingress_is_ours(ing, options_))
        translate_ingress(ing);
    }
    translate_nginx_ingresses(nginx);
    gw_model_ = &gw;
    for (const auto& b : gw.routes) translate_http_route(b);
    gw_model_ = nullptr;
    // Hostname ownership is decided over GatewayRoutes and Ingresses; HTTPRoutes
    // claim none (listener allowedRoutes decide theirs, docs/gateway-api.md).
    settle();
    for (const auto& c : gw.certificates)
      certs_[c.secret_key].hostnames.insert(c.hostnames.begin(), c.hostnames.end());
    std::vector<RouteStatus> http_verdicts;
    for (auto it = statuses_.begin(); it != statuses_.end();) {
      if (it->kind == "HTTPRoute" || it->kind == "GRPCRoute") {
        http_verdicts.push_back(std::move(*it));
        it = statuses_.erase(it);
      } else {
        ++it;
      }
    }

    TranslateResult out;
    std::sort(routes_.begin(), routes_.end(), [](const sn::Route& a, const sn::Route& b) {
      return std::tie(a.namespace_, a.name, a.kind) < std::tie(b.namespace_, b.name, b.kind);
    });
    out.snapshot.routes = std::move(routes_);
    for (const auto& name : used_clusters_) out.snapshot.clusters.push_back(clusters_.at(name));
    out.snapshot.listeners = gw.listeners;
    out.snapshot.rate_limit_store = options_.rate_limit_store;
    std::sort(passthrough_.begin(), passthrough_.end(),
              [](const sn::Passthrough& a, const sn::Passthrough& b) { return a.hostname < b.hostname; });
    out.snapshot.passthrough = std::move(passthrough_);
    for (auto& [host, v] : host_client_validation_) out.snapshot.host_client_validation.push_back(std::move(v));
    host_client_validation_.clear();
    for (auto& [name, acc] : certs_) {
      if (acc.hostnames.empty()) continue;
      const Secret& s = cache_.secrets.at(name);
      out.snapshot.certificates.push_back(
          {name, std::vector<std::string>(acc.hostnames.begin(), acc.hostnames.end()),
           s.data.at("tls.crt"), s.data.at("tls.key")});
    }
    std::sort(statuses_.begin(), statuses_.end(), [](const RouteStatus& a, const RouteStatus& b) {
      return std::tie(a.kind, a.namespace_, a.name) < std::tie(b.kind, b.namespace_, b.name);
    });
    out.statuses = std::move(statuses_);
    out.warnings = std::move(warnings_);
    out.object_statuses = gateway_api_statuses(cache_, gw, options_.gateway_api, http_verdicts);
    out.infrastructure_stale = stale_gateway_objects(gw, cache_, gw.infrastructure);
    out.infrastructure = std::move(gw.infrastructure);
    add_backend_tls_statuses(cache_, btls_, options_.gateway_api.controller_name, out.object_statuses);
    for (auto& rep : nginx_reports_) {
      for (const auto& st : out.statuses) {
        if (st.kind != "Ingress" || st.namespace_ != rep.namespace_ || st.name != rep.name) continue;
        const Condition* a = st.find("Accepted");
        if (a && !a->status) {
          rep.served = false;
          if (rep.note.empty() || !rep.canary) rep.note = a->message;
        }
      }
    }
    out.ingress_nginx = std::move(nginx_reports_);
    return out;
  }

 private:
  struct CertAcc {
    std::set<std::string> hostnames;
  };

  // ---------------------------------------------------------- backends

  // Builds (once) the cluster of a service port and returns its name.
  // `h2c`: HTTP/2 with prior knowledge even when the port's appProtocol does
  // not say so (a GRPCRoute's backend; a cluster of its own, "...:PORT/h2c").
  //
  // A BackendTLSPolicy on the port (backend_tls.h) makes the cluster TLS;
  // with `client_certificate` (a Secret "ns/name", the Gateway's) too, the
  // cluster presents it and is its own ("...:PORT/client=ns/name").
  //
  // `override` (ingress-nginx backend-protocol HTTPS / GRPCS) replaces both:
  // the cluster speaks its TLS (and HTTP/2 when `h2`), whatever the port's
  // appProtocol or BackendTLSPolicy say.
  std::string ensure_cluster(const Service& svc, const ServicePort& sp, bool h2c = false,
                             const std::string& client_certificate = {},
                             const UpstreamTlsOverride* override = nullptr) {
    bool declared = sp.app_protocol == "kubernetes.io/h2c" || sp.app_protocol == "grpc";
    std::string name = svc.meta.key() + ":" + std::to_string(sp.port);
    if (override) name += override->suffix;
    else if (h2c && !declared) name += "/h2c";
    auto tls_it = btls_.service_tls.find({svc.meta.key(), sp.port});
    const ServiceTls* stls = tls_it == btls_.service_tls.end() || override ? nullptr : &tls_it->second;
    bool with_client = stls && stls->usable && !client_certificate.empty() &&
                       cache_.secrets.count(client_certificate);
    if (with_client) {
      name += "/client=";
      name += client_certificate;
    }
    if (clusters_.count(name)) return name;
    std::map<std::pair<std::string, uint16_t>, bool> ready, fallback;
    auto it = slices_.find(svc.meta.key());
    if (it != slices_.end()) {
      for (const EndpointSlice* slice : it->second) {
        if (slice->address_type == "FQDN") continue;
        std::optional<int64_t> port;
        for (const auto& p : slice->ports)
          if (p.name == sp.name && p.port) port = p.port;
        if (!port) continue;
        if (*port < 1 || *port > 65535) {
          warnings_.push_back("EndpointSlice " + slice->meta.key() + ": port " +
                              std::to_string(*port) + " out of range; slice ignored");
          continue;
        }
        for (const auto& ep : slice->endpoints) {
          if (ep.addresses.empty()) continue;
          std::string addr = canonical_ip(ep.addresses.front(), slice->address_type);
          if (addr.empty()) {
            warnings_.push_back("EndpointSlice " + slice->meta.key() + ": address " +
                                quote(ep.addresses.front()) + " is not an " + slice->address_type +
                                " literal; endpoint ignored");
            continue;
          }
          bool is_ready = ep.conditions.ready.value_or(true);
          bool serving = ep.conditions.serving.value_or(is_ready);
          bool terminating = ep.conditions.terminating.value_or(false);
          auto key = std::make_pair(addr, static_cast<uint16_t>(*port));
          if (is_ready)
            ready[key] = true;
          else if (serving && terminating)
            fallback[key] = true;
        }
      }
    }
    sn::Cluster c;
    c.name = name;
    // HTTP/2 with prior knowledge (Gateway API GEP-1911's kubernetes.io/h2c;
    // "grpc", which gRPC services commonly declare, is h2c too).
    if (declared || h2c) c.protocol = sn::ClusterProtocol::kH2c;
    if (override) {
      c.protocol = override->h2 ? sn::ClusterProtocol::kH2 : sn::ClusterProtocol::kHttp1;
      c.tls = override->tls;
      if (!override->usable) {  // nothing in clear, nothing unverified: a 503
        ready.clear();
        fallback.clear();
      }
    } else if (stls && !stls->usable) {
      // An invalid BackendTLSPolicy: nothing is sent to the port in plain text.
      ready.clear();
      fallback.clear();
    } else if (stls) {
      c.tls = stls->tls;
      if (c.protocol == sn::ClusterProtocol::kH2c) c.protocol = sn::ClusterProtocol::kH2;
      if (with_client) {
        const Secret& s = cache_.secrets.at(client_certificate);
        c.tls->client_cert_pem = s.data.at("tls.crt");
        c.tls->client_key_pem = s.data.at("tls.key");
      }
    }
    bool have_ready = !ready.empty();
    for (const auto& [key, unused] : have_ready ? ready : fallback)
      c.endpoints.push_back({key.first, key.second, have_ready});
    clusters_.emplace(name, std::move(c));
    return name;
  }

  const Service* find_service(const std::string& ns, const std::string& name) {
    auto it = cache_.services.find(ns + "/" + name);
    return it == cache_.services.end() ? nullptr : &it->second;
  }

  static std::string port_list(const Service& svc) {
    std::string out;
    for (const auto& p : svc.ports) {
      if (!out.empty()) out += ", ";
      out += std::to_string(p.port);
      if (!p.name.empty()) out += " (" + p.name + ")";
    }
    return out.empty() ? "none" : out;
  }

  // A GatewayRoute backendRef's `protocol` (and `tls`), checked: how the
  // proxy speaks to the port whatever its appProtocol says.
  struct BackendProtocol {
    bool h2c = false;  // h2c, grpc: HTTP/2 with prior knowledge
    bool h2 = false;   // h2: HTTP/2 over TLS, ALPN h2
    bool tls = false;  // a tls block: its settings replace a BackendTLSPolicy's
    std::optional<std::string> hostname;
    std::string ca_pem, ca_ref;  // ca_ref: "ns/name:key", part of the cluster's name
    bool usable = true;          // false: the CA Secret is unusable (503, never unverified)
  };

  // nullopt: no field given (the port decides); a bad value is reported on
  // the route (Accepted=False names the field).
  std::optional<BackendProtocol> backend_protocol(RouteCtx& ctx, const GrBackendRef& b,
                                                  const std::string& field) {
    if (b.protocol.empty() && !b.tls) return std::nullopt;
    BackendProtocol p;
    if (b.protocol == "h2c" || b.protocol == "grpc") {
      p.h2c = true;
    } else if (b.protocol == "h2") {
      p.h2 = true;
    } else if (!b.protocol.empty()) {
      ctx.bad(sub(field, "protocol"), quote(b.protocol) + " is not one of h2c, h2, grpc");
    }
    if (!b.tls) return p;
    std::string tf = sub(field, "tls");
    if (!p.h2) ctx.bad(tf, "needs protocol h2 (HTTP/2 over TLS)");
    p.tls = true;
    p.hostname = b.tls_hostname;
    if (p.hostname) {
      sn::UpstreamTls probe;
      probe.server_name = *p.hostname;
      probe.system_ca = true;
      if (p.hostname->empty() || !tls_problem(probe).empty())
        ctx.bad(sub(tf, "hostname"), quote(*p.hostname) + " is not a DNS name");
    }
    if (b.tls_ca_secret_ref) {
      const GrSecretKeyRef& r = *b.tls_ca_secret_ref;
      std::string cf = sub(tf, "caSecretRef");
      p.ca_ref = ctx.ns + "/" + r.name + ":" + r.key;
      p.usable = false;
      if (const std::string* pem = secret_value(ctx, r, cf)) {
        if (std::string why = ca_bundle_problem(*pem); !why.empty()) {
          ctx.unres("InvalidSecret", cf + ": Secret " + ctx.ns + "/" + r.name + " key " + quote(r.key) + ": " + why);
        } else {
          p.ca_pem = *pem;
          p.usable = true;
        }
      }
    }
    return p;
  }

  // Resolves a Service port to a cluster, or explains why it cannot.
  sn::BackendRef resolve_service(RouteCtx& ctx, const std::string& svc_name,
                                 const std::optional<int64_t>& port_number,
                                 const std::string& port_name, const std::string& field,
                                 const std::string* in_ns = nullptr,
                                 const BackendProtocol* proto = nullptr) {
    const std::string& ns = in_ns ? *in_ns : ctx.ns;
    sn::BackendRef ref;
    auto fail = [&](const char* reason, std::string msg) {
      ref.unresolved = msg;
      ctx.unres(reason, field + ": " + msg);
      return ref;
    };
    const Service* svc = find_service(ns, svc_name);
    if (!svc) return fail("BackendNotFound", "Service " + ns + "/" + svc_name + " not found");
    if (svc->type == "ExternalName")
      return fail("UnsupportedProtocol", "Service " + svc->meta.key() +
                                             " is of type ExternalName, which is not supported");
    const ServicePort* sp = nullptr;
    for (const auto& p : svc->ports)
      if (port_number ? p.port == *port_number : (!port_name.empty() && p.name == port_name))
        sp = &p;
    if (!sp) {
      std::string want = port_number ? std::to_string(*port_number) : quote(port_name);
      return fail("BackendNotFound", "Service " + svc->meta.key() + " has no port " + want +
                                         " (ports: " + port_list(*svc) + ")");
    }
    if (sp->protocol != "TCP")
      return fail("UnsupportedProtocol", "Service " + svc->meta.key() + " port " +
                                             std::to_string(sp->port) + " is " + sp->protocol +
                                             ", only TCP is supported");
    bool h2c = ctx.h2c || (proto && proto->h2c);
    std::optional<UpstreamTlsOverride> h2;
    if (proto && proto->h2) {
      // protocol h2: a BackendTLSPolicy on the port gives the TLS settings
      // (HTTP/2 on them); the backendRef's own tls, or none of either, a
      // cluster of its own: the certificate verified for the hostname
      // ("<service>.<namespace>.svc") against caSecretRef or the system store.
      if (!proto->tls && btls_.service_tls.count({svc->meta.key(), sp->port})) {
        h2c = true;
      } else {
        UpstreamTlsOverride o;
        o.h2 = true;
        o.suffix = "/h2";
        o.tls.server_name = proto->hostname.value_or(svc->meta.name + "." + svc->meta.namespace_ + ".svc");
        if (proto->hostname) o.suffix.append(";name=").append(*proto->hostname);
        if (!proto->ca_ref.empty()) {
          o.suffix.append(";ca=").append(proto->ca_ref);
          o.tls.ca_pem = proto->ca_pem;
        } else {
          o.tls.system_ca = true;
        }
        o.usable = proto->usable && tls_problem(o.tls).empty();
        if (!o.usable) {  // no endpoints (503), and a tls the snapshot accepts
          o.tls = sn::UpstreamTls{};
          o.tls.server_name = svc->meta.name + "." + svc->meta.namespace_ + ".svc";
          o.tls.system_ca = true;
        }
        h2 = std::move(o);
      }
    }
    const UpstreamTlsOverride* override = h2 ? &*h2 : ctx.upstream_tls ? &*ctx.upstream_tls : nullptr;
    ref.cluster = ensure_cluster(*svc, *sp, h2c, ctx.client_certificate, override);
    return ref;
  }

  sn::BackendRef resolve_backend(RouteCtx& ctx, const GrBackendRef& b, const std::string& field) {
    sn::BackendRef ref;
    if ((b.group != "" && b.group != "core") || b.kind != "Service") {
      ref.unresolved = "backend kind " + (b.group.empty() ? "" : b.group + "/") + b.kind +
                       " is not supported (want Service)";
      ctx.unres("InvalidKind", field + ": " + ref.unresolved);
      return ref;
    }
    if (b.namespace_ && *b.namespace_ != ctx.ns && !(ctx.may_refer && ctx.may_refer(*b.namespace_, b.name))) {
      ref.unresolved = "Service " + *b.namespace_ + "/" + b.name +
                       (ctx.may_refer ? " is in another namespace and no ReferenceGrant allows it"
                                      : " is in another namespace; a route may only reference Services in its own");
      ctx.unres("RefNotPermitted", field + ": " + ref.unresolved);
      return ref;
    }
    if (!b.port) {
      ctx.bad(sub(field, "port"), "required for a Service backend");
      ref.unresolved = "no port";
      return ref;
    }
    std::optional<BackendProtocol> proto = backend_protocol(ctx, b, field);
    return resolve_service(ctx, b.name, b.port, "", field, b.namespace_ ? &*b.namespace_ : nullptr,
                           proto ? &*proto : nullptr);
  }

  // ---------------------------------------------------------- secrets

  // The Secret holding key `key`, or a ResolvedRefs problem.
  const std::string* secret_value(RouteCtx& ctx, const GrSecretKeyRef& ref,
                                  const std::string& field) {
    auto it = cache_.secrets.find(ctx.ns + "/" + ref.name);
    if (it == cache_.secrets.end()) {
      ctx.unres("SecretNotFound", field + ": Secret " + ctx.ns + "/" + ref.name + " not found");
      return nullptr;
    }
    auto v = it->second.data.find(ref.key);
    if (v == it->second.data.end()) {
      ctx.unres("SecretNotFound",
                field + ": Secret " + it->first + " has no key " + quote(ref.key));
      return nullptr;
    }
    return &v->second;
  }

  // Checks a TLS Secret once; returns why it cannot be served (empty: it can).
  std::string certificate_problem(const std::string& key) {
    auto cached = cert_problems_.find(key);
    if (cached != cert_problems_.end()) return cached->second;
    std::string problem;
    const Secret& s = cache_.secrets.at(key);
    if (s.type != "kubernetes.io/tls") {
      problem = "Secret " + key + " is of type " + quote(s.type) + ", want kubernetes.io/tls";
    } else if (!s.data.count("tls.crt") || !s.data.count("tls.key")) {
      problem = "Secret " + key + " needs the keys tls.crt and tls.key";
    } else {
      sn::Snapshot probe;
      probe.version = 1;
      probe.certificates.push_back(
          {key, {"gantry.invalid"}, s.data.at("tls.crt"), s.data.at("tls.key")});
      auto errors = sn::validate(probe);
      if (!errors.empty()) problem = "Secret " + key + ": " + join_messages(errors);
    }
    cert_problems_[key] = problem;
    return problem;
  }

  // Adds the certificate use of a TLS secret, or a ResolvedRefs problem.
  void use_certificate(RouteCtx& ctx, const std::string& secret_name,
                       const std::vector<std::string>& hostnames, const std::string& field) {
    std::string key = ctx.ns + "/" + secret_name;
    if (!cache_.secrets.count(key)) {
      ctx.unres("SecretNotFound",
                field + ": Secret " + key + " not found; the route is served over plain HTTP only");
      return;
    }
    if (std::string p = certificate_problem(key); !p.empty()) {
      ctx.unres("InvalidCertificateRef",
                field + ": " + p + "; the route is served over plain HTTP only");
      return;
    }
    if (hostnames.empty()) {
      ctx.unres("InvalidCertificateRef",
                field + ": a certificate needs hostnames to be selected by SNI; TLS is not served");
      return;
    }
    ctx.certs.push_back({key, hostnames});
  }

  // ---------------------------------------------------------- matches

  void value_matches(RouteCtx& ctx, const std::vector<GrValueMatch>& in, bool header,
                     const std::string& field, std::vector<sn::ValueMatch>& out) {
    std::set<std::string> seen;
    for (size_t i = 0; i < in.size(); ++i) {
      const GrValueMatch& m = in[i];
      std::string f = idx(field, i);
      if (header ? !is_token(m.name) : (m.name.empty() || has_control(m.name))) {
        ctx.bad(sub(f, "name"), quote(m.name) + (header ? " is not a valid header name"
                                                        : " is not a valid parameter name"));
        continue;
      }
      // As in Gateway API: of entries with an equivalent name, only the first counts.
      if (!seen.insert(header ? lower(m.name) : m.name).second) continue;
      sn::ValueMatch v;
      v.name = m.name;
      v.value = m.value;
      if (m.type == "RegularExpression") {
        v.type = sn::ValueMatchType::kRegularExpression;
        if (auto p = regex_problem(m.value); !p.empty()) ctx.bad(sub(f, "value"), p);
      } else if (has_control(m.value)) {
        ctx.bad(sub(f, "value"), "must not contain control characters");
      }
      out.push_back(std::move(v));
    }
  }

  sn::RouteMatch match(RouteCtx& ctx, const GrMatch& m, const std::string& field) {
    sn::RouteMatch out;
    if (m.path) {
      // A GRPCRoute's path match is its method match (decode.cc).
      std::string f = ctx.h2c ? sub(field, "method") : sub(sub(field, "path"), "value");
      out.path.value = m.path->value;
      out.path.priority = m.path->priority;
      if (m.path->type == "RegularExpression") {
        out.path.type = sn::PathMatchType::kRegularExpression;
        if (auto p = regex_problem(m.path->value); !p.empty()) ctx.bad(f, p);
      } else {
        out.path.type =
            m.path->type == "Exact" ? sn::PathMatchType::kExact : sn::PathMatchType::kPathPrefix;
        if (auto p = path_problem(m.path->value); !p.empty()) ctx.bad(f, p);
      }
    }
    if (m.method) {
      bool upper = !m.method->empty() && std::all_of(m.method->begin(), m.method->end(),
                                                     [](char c) { return c >= 'A' && c <= 'Z'; });
      if (!upper)
        ctx.bad(sub(field, "method"),
                quote(*m.method) + " is not an upper-case HTTP method (e.g. GET)");
      out.method = *m.method;
    }
    value_matches(ctx, m.headers, true, sub(field, "headers"), out.headers);
    value_matches(ctx, m.query_params, false, sub(field, "queryParams"), out.query_params);
    return out;
  }

  // ---------------------------------------------------------- filters

  void header_list(RouteCtx& ctx, const std::vector<GrHeader>& in, const std::string& field,
                   std::vector<sn::HeaderValue>& out) {
    for (size_t i = 0; i < in.size(); ++i) {
      if (!is_token(in[i].name))
        ctx.bad(sub(idx(field, i), "name"), quote(in[i].name) + " is not a valid header name");
      if (has_control(in[i].value))
        ctx.bad(sub(idx(field, i), "value"), "must not contain control characters");
      out.push_back({in[i].name, in[i].value});
    }
  }

  sn::HeaderModifier header_modifier(RouteCtx& ctx, const GrHeaderModifier& h,
                                     const std::string& field) {
    sn::HeaderModifier out;
    header_list(ctx, h.set, sub(field, "set"), out.set);
    header_list(ctx, h.add, sub(field, "add"), out.add);
    for (size_t i = 0; i < h.remove.size(); ++i) {
      if (!is_token(h.remove[i]))
        ctx.bad(idx(sub(field, "remove"), i), quote(h.remove[i]) + " is not a valid header name");
      out.remove.push_back(h.remove[i]);
    }
    return out;
  }

  sn::PathRewrite path_rewrite(RouteCtx& ctx, const std::optional<GrPathModifier>& p,
                               const GrRule& rule, const std::string& field) {
    sn::PathRewrite out;
    if (!p) return out;
    if (p->type == "ReplaceFullPath") {
      out.type = sn::PathRewriteType::kReplaceFullPath;
      out.value = p->replace_full_path;
      if (auto e = path_problem(out.value); !e.empty()) ctx.bad(sub(field, "replaceFullPath"), e);
    } else {
      out.type = sn::PathRewriteType::kReplacePrefixMatch;
      out.value = p->replace_prefix_match.empty() ? "/" : p->replace_prefix_match;
      if (auto e = path_problem(out.value); !e.empty())
        ctx.bad(sub(field, "replacePrefixMatch"), e);
      for (const auto& m : rule.matches) {
        if (m.path && m.path->type != "PathPrefix") {
          ctx.bad(field, "ReplacePrefixMatch needs every match of the rule to be a PathPrefix");
          break;
        }
      }
    }
    return out;
  }

  // apiKey: the consumers' Secrets (selected by labels in the route's
  // namespace) become SHA-256 digests; the keys never reach the snapshot. A
  // Secret without a key, or with a key another Secret already has, is left
  // out and named in ResolvedRefs; no Secret at all refuses every request.
  sn::ApiKey api_key(RouteCtx& ctx, const GrApiKey& in, const std::string& at) {
    sn::ApiKey a;
    a.header = lower(in.header);
    a.query_param = in.query_param;
    if (a.header.empty()) a.header = "x-api-key";  // also read when queryParam is set
    if (!a.header.empty() && !is_token(a.header)) ctx.bad(sub(at, "header"), quote(in.header) + " is not a valid header name");
    if (!in.query_param.empty() && (has_control(in.query_param) || in.query_param.find_first_of("&=# ") != std::string::npos))
      ctx.bad(sub(at, "queryParam"), quote(in.query_param) + " is not a valid query parameter name");
    a.consumer_header = lower(in.consumer_header);
    if (!a.consumer_header.empty() && !is_token(a.consumer_header))
      ctx.bad(sub(at, "consumerHeader"), quote(in.consumer_header) + " is not a valid header name");
    if (in.unknown_key_status) {
      if (*in.unknown_key_status != 401 && *in.unknown_key_status != 403)
        ctx.bad(sub(at, "unknownKeyStatus"),  // appended: GCC PR 105329 (false -Wrestrict at -O3)
                std::string("must be 401 or 403, got ").append(std::to_string(*in.unknown_key_status)));
      else
        a.unknown_key_status = static_cast<int>(*in.unknown_key_status);
    }
    std::string selector;
    for (const auto& [k, v] : in.match_labels) selector.append(selector.empty() ? "" : ",").append(k + "=" + v);
    std::string sel_field = sub(sub(at, "secretSelector"), "matchLabels");
    std::map<std::string, std::string> owner;  // digest → Secret that has it
    size_t matched = 0;
    for (const auto& [key, secret] : cache_.secrets) {
      if (secret.meta.namespace_ != ctx.ns) continue;
      bool match = true;
      for (const auto& [k, v] : in.match_labels) {
        auto l = secret.meta.labels.find(k);
        match = match && l != secret.meta.labels.end() && l->second == v;
      }
      if (!match) continue;
      ++matched;
      auto kv = secret.data.find("key");
      if (kv == secret.data.end() || kv->second.empty()) {
        ctx.unres("InvalidSecret", sel_field + ": Secret " + key + " has no key \"key\"; its consumer is refused");
        continue;
      }
      auto cv = secret.data.find("consumer");
      std::string consumer = cv != secret.data.end() ? cv->second : secret.meta.name;
      if (consumer.empty() || has_control(consumer)) {
        ctx.unres("InvalidSecret", sel_field + ": Secret " + key + ": the consumer name is empty or has control characters; its consumer is refused");
        continue;
      }
      unsigned char d[SHA256_DIGEST_LENGTH];
      SHA256(reinterpret_cast<const unsigned char*>(kv->second.data()), kv->second.size(), d);
      static const char* hex = "0123456789abcdef";
      std::string digest;
      for (unsigned char c : d) {
        digest += hex[c >> 4];
        digest += hex[c & 15];
      }
      auto [it, fresh] = owner.emplace(digest, key);
      if (!fresh) {
        ctx.unres("InvalidSecret", sel_field + ": Secret " + key + " has the same key as Secret " + it->second + "; it is not used");
        continue;
      }
      a.keys.push_back({consumer, digest});
    }
    if (matched == 0)
      ctx.unres("SecretNotFound", sel_field + ": no Secret in namespace " + ctx.ns + " has the labels " + selector +
                                      "; every request is refused");
    return a;
  }

  // basicAuth: the htpasswd Secret's accepted users (bcrypt, SHA-256/512
  // crypt); refused lines (MD5, plain text, ...) are named in ResolvedRefs
  // and their users refused. A missing Secret refuses every request.
  sn::BasicAuth basic_auth(RouteCtx& ctx, const GrBasicAuth& in, const std::string& at) {
    sn::BasicAuth b;
    b.realm = in.realm;
    if (b.realm.empty() || has_control(b.realm) || b.realm.find_first_of("\"\\") != std::string::npos)
      ctx.bad(sub(at, "realm"), "must be non-empty text without control characters, quotes or backslashes");
    b.consumer_header = lower(in.consumer_header);
    if (!b.consumer_header.empty() && !is_token(b.consumer_header))
      ctx.bad(sub(at, "consumerHeader"), quote(in.consumer_header) + " is not a valid header name");
    std::string ref_field = sub(at, "secretRef");
    if (const std::string* text = secret_value(ctx, in.secret_ref, ref_field))
      htpasswd_users(ctx, *text, ref_field + ": Secret " + ctx.ns + "/" + in.secret_ref.name + " key " +
                                     quote(in.secret_ref.key), b);
    return b;
  }

  // The accepted users of htpasswd `text` into `b`; refused lines are named in
  // ResolvedRefs after `where`.
  void htpasswd_users(RouteCtx& ctx, const std::string& text, const std::string& where, sn::BasicAuth& b) {
    filters::HtpasswdResult parsed = filters::parse_htpasswd(text);
    for (const auto& p : parsed.problems) ctx.unres("InvalidSecret", where + ": " + p);
    if (parsed.users.empty() && parsed.problems.empty())
      ctx.unres("InvalidSecret", where + " lists no user; every request is refused");
    for (auto& u : parsed.users) b.users.push_back({std::move(u.name), std::move(u.hash)});
  }

  // ingress-nginx's auth-type: basic. auth-file reads the Secret's key `auth`;
  // auth-map reads each key as a user and its value as the hash. A Secret in
  // another namespace is not read: the Ingress is Invalid (a guard that cannot
  // be applied must not leave the route open).
  sn::BasicAuth nginx_basic_auth(RouteCtx& ctx, const NginxBasicAuth& in) {
    std::string field = std::string("metadata.annotations[").append(kNginxAnnotationPrefix).append("auth-secret]");
    sn::BasicAuth b;
    b.realm = in.realm;
    b.consumer_header = "x-remote-user";
    if (!in.secret_namespace.empty() && in.secret_namespace != ctx.ns) {
      ctx.bad(field, "Secret " + in.secret_namespace + "/" + in.secret +
                         " is in another namespace; gantry reads auth Secrets from the Ingress's namespace only",
              "RefNotPermitted");
      return b;
    }
    if (!in.auth_map) {
      if (const std::string* text = secret_value(ctx, GrSecretKeyRef{in.secret, "auth"}, field))
        htpasswd_users(ctx, *text, field + ": Secret " + ctx.ns + "/" + in.secret + " key \"auth\"", b);
      return b;
    }
    auto it = cache_.secrets.find(ctx.ns + "/" + in.secret);
    if (it == cache_.secrets.end()) {
      ctx.unres("SecretNotFound", field + ": Secret " + ctx.ns + "/" + in.secret + " not found");
      return b;
    }
    std::string text;
    for (const auto& [user, hash] : it->second.data) text.append(user).append(":").append(hash).append("\n");
    htpasswd_users(ctx, text, field + ": Secret " + it->first + " (auth-map)", b);
    return b;
  }

  // extAuth: the service's URL split into what the proxy dials (host, port)
  // and sends (path, Host); header lists lower-cased and checked.
  sn::ExtAuth ext_auth(RouteCtx& ctx, const GrExtAuth& in, const std::string& at) {
    sn::ExtAuth a;
    if (in.grpc) {
      if (!in.url.empty()) ctx.bad(sub(at, "grpc"), "url and grpc are exclusive: the service speaks one protocol");
      ext_auth_grpc(ctx, in, sub(at, "grpc"), a);
    } else if (std::string why = parse_ext_auth_url(in.url, a); !why.empty()) {
      ctx.bad(sub(at, "url"), quote(in.url) + ": " + why);
    }
    if (in.ca_secret_ref) {
      if (!a.tls) ctx.bad(sub(at, "caSecretRef"), "needs an https:// url or grpc.tls");
      std::string field = sub(at, "caSecretRef");
      if (const std::string* pem = secret_value(ctx, *in.ca_secret_ref, field)) {
        if (pem->find("-----BEGIN CERTIFICATE-----") == std::string::npos)
          ctx.unres("InvalidSecret", field + ": Secret " + ctx.ns + "/" + in.ca_secret_ref->name + " key " +
                                         quote(in.ca_secret_ref->key) + " holds no PEM certificate");
        else
          a.ca_pem = *pem;
      }
    }
    if (in.with_body) {
      a.body_max_bytes = 8192;
      if (auto s = size(ctx, in.body_max_bytes, sub(sub(at, "withRequestBody"), "maxBytes"))) {
        if (*s == 0 || *s > (uint64_t{8} << 20))
          ctx.bad(sub(sub(at, "withRequestBody"), "maxBytes"), "must be between 1 and 8Mi");
        else
          a.body_max_bytes = *s;
      }
      a.body_allow_partial = in.body_allow_partial;
    }
    if (!in.method.empty() && !is_token(in.method)) ctx.bad(sub(at, "method"), quote(in.method) + " is not a method");
    a.method = in.method;
    a.request_headers = in.request_headers.value_or(std::vector<std::string>{"authorization", "cookie"});
    for (size_t i = 0; i < a.request_headers.size(); ++i) {
      if (!is_token(a.request_headers[i]))
        ctx.bad(idx(sub(at, "requestHeaders"), i), quote(a.request_headers[i]) + " is not a valid header name");
      a.request_headers[i] = lower(a.request_headers[i]);
    }
    a.response_headers = in.response_headers;
    for (size_t i = 0; i < a.response_headers.size(); ++i) {
      if (!is_token(a.response_headers[i]))
        ctx.bad(idx(sub(at, "responseHeaders"), i), quote(a.response_headers[i]) + " is not a valid header name");
      a.response_headers[i] = lower(a.response_headers[i]);
    }
    a.signin = in.signin_url;
    if (!a.signin.empty() && (has_control(a.signin) || a.signin.find(' ') != std::string::npos ||
                              !(a.signin.starts_with("http://") || a.signin.starts_with("https://") ||
                                a.signin.starts_with("/"))))
      ctx.bad(sub(at, "signinURL"), quote(a.signin) + " must be an http(s) URL or a path, without spaces");
    a.signin_redirect_param = in.signin_redirect_param;
    if (a.signin_redirect_param.empty() || has_control(a.signin_redirect_param) ||
        a.signin_redirect_param.find_first_of("&=#? ") != std::string::npos)
      ctx.bad(sub(at, "signinRedirectParam"), quote(a.signin_redirect_param) + " is not a query parameter name");
    if (auto d = duration(ctx, in.timeout, sub(at, "timeout"), true)) a.timeout = *d;
    a.fail_open = in.fail_open;
    in_range(ctx, in.status_on_error, 400, 599, sub(at, "statusOnError"), a.status_on_error);
    if (auto d = duration(ctx, in.cache_ttl, sub(sub(at, "cache"), "ttl"), true)) a.cache_ttl = *d;
    in_range(ctx, in.cache_max_entries, 1, 1000000, sub(sub(at, "cache"), "maxEntries"), a.cache_max_entries);
    if (in.grpc)
      if (auto d = duration(ctx, in.grpc_timeout, sub(sub(at, "grpc"), "timeout"), true)) a.timeout = *d;
    return a;
  }

  // extAuth.grpc: where the ext_authz service is (address host:port, or a
  // Service of the cluster by its DNS name), dialled over HTTP/2.
  void ext_auth_grpc(RouteCtx& ctx, const GrExtAuth& in, const std::string& at, sn::ExtAuth& a) {
    a.grpc = true;
    a.tls = in.grpc_tls;
    a.path = "/envoy.service.auth.v3.Authorization/Check";
    const bool by_ref = !in.grpc_service.empty();
    if (by_ref == !in.grpc_address.empty()) {
      ctx.bad(at, "needs exactly one of address and backendRef");
      return;
    }
    if (by_ref) {
      if (!in.grpc_service_port) {
        ctx.bad(sub(sub(at, "backendRef"), "port"), "required");
        return;
      }
      const std::string& ns = in.grpc_service_namespace.empty() ? ctx.ns : in.grpc_service_namespace;
      a.host = lower(in.grpc_service + "." + ns + ".svc.cluster.local");
      int64_t port = 0;
      in_range(ctx, in.grpc_service_port, 1, 65535, sub(sub(at, "backendRef"), "port"), port);
      a.port = static_cast<uint16_t>(port);
      a.authority = a.host + ":" + std::to_string(a.port);
      return;
    }
    sn::ExtAuth parsed;
    std::string url = "http://";
    url.append(in.grpc_address);
    if (std::string why = parse_ext_auth_url(url, parsed);
        !why.empty() || parsed.path != "/" || in.grpc_address.find_first_of("/?#") != std::string::npos ||
        in.grpc_address.find(':') == std::string::npos) {
      ctx.bad(sub(at, "address"), quote(in.grpc_address) + ": must be host:port");
      return;
    }
    a.host = parsed.host;
    a.port = parsed.port;
    a.authority = parsed.authority;
  }

  // Returns false when the rule must fail closed (a jwt key is missing).
  bool filters(RouteCtx& ctx, const GrRule& rule, const std::string& field, sn::Filters& out) {
    const GrFilters& f = rule.filters;
    bool closed = false;
    for (const auto& name : f.unknown)
      ctx.bad(field + "." + name,
              "unknown filter (want cors, rateLimit, maxRequestBodySize, jwt, requestHeaders, "
              "responseHeaders, requestRedirect, urlRewrite, requestMirror, cache, ipAllow, ipDeny, apiKey, "
              "basicAuth, extAuth, transform, grpcWeb)",
              "UnsupportedValue");
    if (f.cors) {
      std::string at = sub(field, "cors");
      sn::Cors c;
      c.allow_origins = f.cors->allow_origins;
      for (size_t i = 0; i < c.allow_origins.size(); ++i) {
        const auto& o = c.allow_origins[i];
        if (o.empty() || has_control(o) || o.find(' ') != std::string::npos)
          ctx.bad(idx(sub(at, "allowOrigins"), i), "invalid origin " + quote(o));
      }
      c.allow_methods = f.cors->allow_methods;
      for (size_t i = 0; i < c.allow_methods.size(); ++i)
        if (!is_token(c.allow_methods[i]))
          ctx.bad(idx(sub(at, "allowMethods"), i), quote(c.allow_methods[i]) + " is not a method");
      c.allow_headers = f.cors->allow_headers;
      c.expose_headers = f.cors->expose_headers;
      for (const auto* list : {&c.allow_headers, &c.expose_headers})
        for (size_t i = 0; i < list->size(); ++i)
          if (!is_token((*list)[i]))
            ctx.bad(idx(sub(at, list == &c.allow_headers ? "allowHeaders" : "exposeHeaders"), i),
                    quote((*list)[i]) + " is not a valid header name");
      c.allow_credentials = f.cors->allow_credentials;
      c.max_age = duration(ctx, f.cors->max_age, sub(at, "maxAge"), false);
      out.cors = c;
    }
    if (f.rate_limit) {
      std::string at = sub(field, "rateLimit");
      sn::RateLimit r;
      in_range(ctx, std::optional<int64_t>(f.rate_limit->requests), 1, int64_t{1} << 40,
               sub(at, "requests"), r.requests);
      in_range(ctx, std::optional<int64_t>(f.rate_limit->burst), 0, int64_t{1} << 40,
               sub(at, "burst"), r.burst);
      if (auto d = duration(ctx, f.rate_limit->interval, sub(at, "interval"), true))
        r.interval = *d;
      r.algorithm = f.rate_limit->algorithm == "SlidingWindow"
                        ? sn::RateLimitAlgorithm::kSlidingWindow
                        : sn::RateLimitAlgorithm::kTokenBucket;
      r.key = f.rate_limit->key;
      if (r.key != "ClientIP" && r.key != "Consumer" &&
          !(r.key.starts_with("Header:") && is_token(std::string_view(r.key).substr(7))))
        ctx.bad(sub(at, "key"),
                "unknown value " + quote(r.key) + " (want ClientIP, Consumer or Header:<name>)",
                "UnsupportedValue");
      if (r.key == "Consumer" && !f.api_key && !f.basic_auth)
        ctx.bad(sub(at, "key"), "Consumer needs an apiKey or basicAuth filter in the rule");
      r.scope = f.rate_limit->scope == "global" ? sn::RateLimitScope::kGlobal : sn::RateLimitScope::kLocal;
      r.failure_mode = f.rate_limit->failure_mode == "closed" ? sn::RateLimitFailureMode::kClosed
                                                              : sn::RateLimitFailureMode::kOpen;
      if (r.scope == sn::RateLimitScope::kGlobal && !options_.rate_limit_store)
        ctx.bad(sub(at, "scope"),
                "global needs the controller's Redis store (chart value rateLimit.redis.address, "
                "--ratelimit-store)");
      out.rate_limit = r;
    }
    if (f.max_request_body_size)
      out.max_request_body_size =
          size(ctx, f.max_request_body_size, sub(field, "maxRequestBodySize"));
    if (f.jwt) {
      std::string at = sub(field, "jwt");
      sn::Jwt j;
      j.algorithms = f.jwt->algorithms;
      if (j.algorithms.empty()) ctx.bad(sub(at, "algorithms"), "required");
      bool hmac = std::count(j.algorithms.begin(), j.algorithms.end(), "HS256") > 0;
      bool pub = j.algorithms.size() > static_cast<size_t>(hmac ? 1 : 0);
      if (hmac) {
        if (!f.jwt->hmac_secret_ref) {
          ctx.bad(sub(at, "hmacSecretRef"), "required for HS256");
        } else if (auto v = secret_value(ctx, *f.jwt->hmac_secret_ref, sub(at, "hmacSecretRef"))) {
          j.hmac_secret = *v;
        } else {
          closed = true;
        }
      }
      if (pub) {
        if (!f.jwt->jwks_secret_ref) {
          ctx.bad(sub(at, "jwksSecretRef"), "required for RS256 and ES256");
        } else if (auto v = secret_value(ctx, *f.jwt->jwks_secret_ref, sub(at, "jwksSecretRef"))) {
          j.jwks = *v;
        } else {
          closed = true;
        }
      }
      j.issuer = f.jwt->issuer;
      j.audiences = f.jwt->audiences;
      if (auto d = duration(ctx, f.jwt->clock_skew, sub(at, "clockSkew"), false)) j.clock_skew = *d;
      for (size_t i = 0; i < f.jwt->claims_to_headers.size(); ++i) {
        const auto& c = f.jwt->claims_to_headers[i];
        if (!is_token(c.header))
          ctx.bad(sub(idx(sub(at, "claimToHeaders"), i), "header"),
                  quote(c.header) + " is not a valid header name");
        j.claims_to_headers.push_back({c.claim, c.header});
      }
      out.jwt = j;
    }
    if (f.request_headers)
      out.request_headers = header_modifier(ctx, *f.request_headers, sub(field, "requestHeaders"));
    if (f.response_headers)
      out.response_headers =
          header_modifier(ctx, *f.response_headers, sub(field, "responseHeaders"));
    if (f.request_redirect) {
      std::string at = sub(field, "requestRedirect");
      const GrRequestRedirect& in = *f.request_redirect;
      sn::RequestRedirect r;
      r.scheme = in.scheme;
      if (in.hostname) {
        r.hostname = lower(*in.hostname);
        if (auto p = hostname_problem(*r.hostname, false); !p.empty())
          ctx.bad(sub(at, "hostname"), p);
      }
      uint16_t port = 0;
      if (in_range(ctx, in.port, 1, 65535, sub(at, "port"), port)) r.port = port;
      in_range(ctx, in.status_code, 301, 308, sub(at, "statusCode"), r.status_code);
      if (r.status_code == 304 || r.status_code == 305 || r.status_code == 306)
        ctx.bad(sub(at, "statusCode"), "must be one of 301, 302, 303, 307, 308");
      r.path = path_rewrite(ctx, in.path, rule, sub(at, "path"));
      out.request_redirect = r;
    }
    if (f.url_rewrite) {
      std::string at = sub(field, "urlRewrite");
      sn::UrlRewrite u;
      if (f.url_rewrite->hostname) {
        u.hostname = lower(*f.url_rewrite->hostname);
        if (auto p = hostname_problem(*u.hostname, false); !p.empty())
          ctx.bad(sub(at, "hostname"), p);
      }
      u.path = path_rewrite(ctx, f.url_rewrite->path, rule, sub(at, "path"));
      if (f.request_redirect)
        ctx.bad(field, "requestRedirect and urlRewrite cannot be used in the same rule");
      out.url_rewrite = u;
    }
    for (size_t i = 0; i < f.request_mirrors.size(); ++i) {
      const GrRequestMirror& in = f.request_mirrors[i];
      // GatewayRoute has one requestMirror; an HTTPRoute's are its filters of that type.
      std::string at = f.request_mirrors.size() == 1 ? sub(field, "requestMirror")
                                                     : idx(sub(field, "requestMirror"), i);
      sn::BackendRef ref = resolve_backend(ctx, in.backend_ref, sub(at, "backendRef"));
      sn::RequestMirror m{ref.cluster};
      if (in.percent && in.fraction_numerator) ctx.bad(at, "percent and fraction cannot both be set");
      if (in.percent) {
        in_range(ctx, in.percent, 0, 100, sub(at, "percent"), m.numerator);
        m.denominator = 100;
      } else if (in.fraction_numerator) {
        m.denominator = 100;
        in_range(ctx, in.fraction_denominator, 1, 1000000, sub(sub(at, "fraction"), "denominator"),
                 m.denominator);
        if (in_range(ctx, in.fraction_numerator, 0, 1000000, sub(sub(at, "fraction"), "numerator"),
                     m.numerator) &&
            m.numerator > m.denominator)
          ctx.bad(sub(at, "fraction"), "numerator must not exceed denominator");
      }
      if (m.numerator > m.denominator) m.numerator = m.denominator;
      if (m.numerator == m.denominator) m.numerator = m.denominator = 1;  // every request
      if (ref.unresolved.empty() && m.numerator > 0) out.request_mirrors.push_back(std::move(m));
    }
    if (f.connection_limit) {
      std::string at = sub(field, "connectionLimit");
      sn::ConnectionLimit c;
      in_range(ctx, f.connection_limit->per_client_ip, 1, int64_t{UINT32_MAX}, sub(at, "perClientIP"), c.per_client_ip);
      in_range(ctx, f.connection_limit->status_code, 400, 599, sub(at, "statusCode"), c.status_code);
      for (size_t i = 0; i < f.connection_limit->exempt_sources.size(); ++i) {
        if (auto cidr = net::parse_cidr(f.connection_limit->exempt_sources[i]); !cidr.ok())
          ctx.bad(idx(sub(at, "exemptSources"), i), quote(f.connection_limit->exempt_sources[i]) + " is not a CIDR");
        else
          c.exempt_sources.push_back(f.connection_limit->exempt_sources[i]);
      }
      out.connection_limit = c;
    }
    if (f.default_backend) {
      std::string at = sub(field, "defaultBackend");
      sn::BackendRef ref = resolve_backend(ctx, f.default_backend->backend_ref, sub(at, "backendRef"));
      sn::DefaultBackend d;
      d.cluster = ref.cluster;
      for (size_t i = 0; i < f.default_backend->intercept_statuses.size(); ++i) {
        int st = 0;
        in_range(ctx, std::optional<int64_t>(f.default_backend->intercept_statuses[i]), 400, 599,
                 idx(sub(at, "interceptStatuses"), i), st);
        if (st != 0) d.intercept_statuses.push_back(st);
      }
      d.namespace_ = ctx.ns;
      // The rule's first backend names the Service (X-Service-Name / X-Service-Port).
      if (!rule.backend_refs.empty()) {
        d.service_name = rule.backend_refs.front().name;
        if (rule.backend_refs.front().port) d.service_port = std::to_string(*rule.backend_refs.front().port);
      }
      if (ref.unresolved.empty()) out.default_backend = std::move(d);  // unresolved: reported, not used
    }
    if (f.cache) {
      std::string at = sub(field, "cache");
      sn::Cache c;
      if (auto d = duration(ctx, f.cache->ttl, sub(at, "ttl"), true)) c.ttl = *d;
      if (auto s = size(ctx, f.cache->max_bytes, sub(at, "maxBytes"))) c.max_bytes = *s;
      if (auto s = size(ctx, f.cache->max_object_bytes, sub(at, "maxObjectBytes")))
        c.max_object_bytes = *s;
      if (c.max_object_bytes > c.max_bytes) ctx.bad(at, "maxObjectBytes must not exceed maxBytes");
      out.cache = c;
    }
    if (f.transform) {
      std::string at = sub(field, "transform");
      sn::Transform t;
      if (f.transform->backend == "XML") {
        t.backend = sn::TransformFormat::kXml;
      } else if (f.transform->backend == "JSON") {
        t.backend = sn::TransformFormat::kJson;
      } else {
        ctx.bad(sub(at, "backend"),
                f.transform->backend.empty() ? std::string("required (XML or JSON)")
                                             : std::string("unknown value ").append(quote(f.transform->backend)).append(" (want XML or JSON)"),
                "UnsupportedValue");
      }
      t.request = f.transform->request.value_or(true);
      t.response = f.transform->response.value_or(true);
      if (!t.request && !t.response) ctx.bad(at, "request and response are both false: nothing to transform");
      if (auto s = size(ctx, f.transform->max_body_size, sub(at, "maxBodySize"))) {
        if (*s == 0 || *s > (uint64_t{64} << 20))
          ctx.bad(sub(at, "maxBodySize"), "must be between 1 and 64Mi");
        else
          t.max_body_bytes = *s;
      }
      // An XML name (ASCII letters, digits, '_', '-', '.'; not starting with a digit, '-' or '.').
      auto xml_name = [&](const std::optional<std::string>& v, const char* key, std::string& dst) {
        if (!v) return;
        bool ok = !v->empty() && !std::isdigit(static_cast<unsigned char>((*v)[0])) && (*v)[0] != '-' &&
                  (*v)[0] != '.';
        for (char c : *v)
          ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.');
        if (!ok) ctx.bad(sub(at, key), quote(*v) + " is not an XML element name");
        else dst = *v;
      };
      xml_name(f.transform->root_element, "rootElement", t.root_element);
      xml_name(f.transform->item_element, "itemElement", t.item_element);
      if (f.cache) ctx.bad(at, "cannot be combined with cache on the same rule (a converted answer depends on Accept)");
      out.transform = t;
    }
    if (f.grpc_web) out.grpc_web = sn::GrpcWeb{};
    if (f.api_key) out.api_key = api_key(ctx, *f.api_key, sub(field, "apiKey"));
    if (f.basic_auth) out.basic_auth = basic_auth(ctx, *f.basic_auth, sub(field, "basicAuth"));
    if (f.ext_auth) out.ext_auth = ext_auth(ctx, *f.ext_auth, sub(field, "extAuth"));
    // ipAllow / ipDeny: the same proxy filter as ingress-nginx's source ranges.
    auto cidrs = [&](const std::optional<std::vector<std::string>>& in, const char* key,
                     std::vector<std::string>& list) {
      if (!in) return;
      std::string at = sub(field, key);
      if (in->empty()) ctx.bad(at, "must list at least one address or CIDR");
      for (size_t i = 0; i < in->size(); ++i) {
        if (auto c = net::parse_cidr((*in)[i]); !c.ok())
          ctx.bad(idx(at, i), c.error().message);
        else
          list.push_back((*in)[i]);
      }
    };
    if (f.ip_allow || f.ip_deny) {
      sn::SourceRange r;
      cidrs(f.ip_allow, "ipAllow", r.allow);
      cidrs(f.ip_deny, "ipDeny", r.deny);
      if (!r.allow.empty() || !r.deny.empty()) out.source_range = r;
    }
    return !closed;
  }

  // ---------------------------------------------------------- policy

  sn::Policy policy(RouteCtx& ctx, const GrPolicy& p, const std::string& field) {
    sn::Policy out;
    for (const auto& name : p.unknown)
      ctx.bad(field + "." + name,
              "unknown policy (want loadBalancer, healthCheck, outlierDetection, circuitBreaker, "
              "timeouts, retry, tracing)",
              "UnsupportedValue");
    if (p.load_balancer) {
      std::string at = sub(field, "loadBalancer");
      const GrLoadBalancer& lb = *p.load_balancer;
      const std::string& t = lb.type;
      out.load_balancer.type = t == "LeastRequest"     ? sn::LoadBalancerType::kLeastRequest
                               : t == "Random"         ? sn::LoadBalancerType::kRandom
                               : t == "ConsistentHash" ? sn::LoadBalancerType::kConsistentHash
                                                       : sn::LoadBalancerType::kRoundRobin;
      if (t == "ConsistentHash" && !lb.consistent_hash) {
        ctx.bad(sub(at, "consistentHash"), "required when type is ConsistentHash");
      } else if (t != "ConsistentHash" && lb.consistent_hash) {
        ctx.bad(sub(at, "consistentHash"), "only used when type is ConsistentHash");
      } else if (lb.consistent_hash) {
        const GrConsistentHash& h = *lb.consistent_hash;
        std::string hf = sub(at, "consistentHash");
        if (h.type == "Header") {
          out.load_balancer.hash_on = sn::HashOn::kHeader;
          out.load_balancer.hash_key = h.header_name;
          if (!is_token(h.header_name))
            ctx.bad(sub(sub(hf, "header"), "name"), "required: a header name");
        } else if (h.type == "Cookie") {
          out.load_balancer.hash_on = sn::HashOn::kCookie;
          out.load_balancer.hash_key = h.cookie_name;
          if (!is_token(h.cookie_name))
            ctx.bad(sub(sub(hf, "cookie"), "name"), "required: a cookie name");
          if (auto d = duration(ctx, h.cookie_ttl, sub(sub(hf, "cookie"), "ttl"), false))
            out.load_balancer.cookie_ttl = *d;
          sn::LoadBalancer& lb = out.load_balancer;
          lb.cookie_path = h.cookie_path.value_or("");
          lb.cookie_domain = lower(h.cookie_domain.value_or(""));
          lb.cookie_secure = h.cookie_secure == "Always"    ? sn::CookieSecure::kAlways
                             : h.cookie_secure == "OverTLS" ? sn::CookieSecure::kOverTls
                                                            : sn::CookieSecure::kNever;
          lb.cookie_same_site = h.cookie_same_site.value_or("");
          lb.cookie_same_site_none_if_compatible = h.cookie_same_site_none_if_compatible;
          std::string cf = sub(hf, "cookie");
          if (!lb.cookie_path.empty()) {
            if (auto e = path_problem(lb.cookie_path); !e.empty()) ctx.bad(sub(cf, "path"), e);
            if (lb.cookie_path.find(';') != std::string::npos || lb.cookie_path.size() > 1024)
              ctx.bad(sub(cf, "path"), "must be at most 1024 bytes without ';'");
          }
          if (!lb.cookie_domain.empty()) {
            std::string d = lb.cookie_domain.front() == '.' ? lb.cookie_domain.substr(1) : lb.cookie_domain;
            if (auto e = hostname_problem(d, false); !e.empty()) ctx.bad(sub(cf, "domain"), e);
          }
          if (!lb.cookie_same_site.empty() && lb.cookie_same_site != "Strict" && lb.cookie_same_site != "Lax" &&
              lb.cookie_same_site != "None")
            ctx.bad(sub(cf, "sameSite"), "must be Strict, Lax or None");
        } else {
          out.load_balancer.hash_on = sn::HashOn::kSourceIP;
        }
      }
    }
    if (p.health_check) {
      std::string at = sub(field, "healthCheck");
      const GrHealthCheck& in = *p.health_check;
      sn::HealthCheck h;
      if (in.path) {
        h.path = *in.path;
        if (auto e = path_problem(h.path); !e.empty()) ctx.bad(sub(at, "path"), e);
      }
      if (auto d = duration(ctx, in.interval, sub(at, "interval"), true)) h.interval = *d;
      if (auto d = duration(ctx, in.timeout, sub(at, "timeout"), true)) h.timeout = *d;
      in_range(ctx, in.healthy_threshold, 1, 1000, sub(at, "healthyThreshold"),
               h.healthy_threshold);
      in_range(ctx, in.unhealthy_threshold, 1, 1000, sub(at, "unhealthyThreshold"),
               h.unhealthy_threshold);
      for (size_t i = 0; i < in.expected_statuses.size(); ++i) {
        int s = 0;
        if (in_range(ctx, std::optional<int64_t>(in.expected_statuses[i]), 100, 599,
                     idx(sub(at, "expectedStatuses"), i), s))
          h.expected_statuses.push_back(s);
      }
      if (in.grpc_service) {
        if (in.path) ctx.bad(sub(at, "grpc"), "grpc and path are exclusive: a gRPC check calls grpc.health.v1.Health/Check");
        if (!in.expected_statuses.empty())
          ctx.bad(sub(at, "grpc"), "grpc and expectedStatuses are exclusive: a gRPC check wants SERVING");
        if (in.grpc_service->size() > 256) ctx.bad(sub(sub(at, "grpc"), "service"), "longer than 256 bytes");
        for (char ch : *in.grpc_service)
          if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) {
            ctx.bad(sub(sub(at, "grpc"), "service"), "holds a control character");
            break;
          }
        h.grpc = sn::GrpcHealthCheck{*in.grpc_service};
      }
      out.health_check = h;
    }
    if (p.outlier_detection) {
      std::string at = sub(field, "outlierDetection");
      const GrOutlierDetection& in = *p.outlier_detection;
      sn::OutlierDetection o;
      in_range(ctx, in.consecutive_5xx, 0, 1000000, sub(at, "consecutive5xx"), o.consecutive_5xx);
      in_range(ctx, in.consecutive_connect_failures, 0, 1000000,
               sub(at, "consecutiveConnectFailures"), o.consecutive_connect_failures);
      if (auto d = duration(ctx, in.base_ejection_time, sub(at, "baseEjectionTime"), true))
        o.base_ejection_time = *d;
      in_range(ctx, in.max_ejection_percent, 0, 100, sub(at, "maxEjectionPercent"),
               o.max_ejection_percent);
      out.outlier_detection = o;
    }
    if (p.circuit_breaker) {
      std::string at = sub(field, "circuitBreaker");
      const GrCircuitBreaker& in = *p.circuit_breaker;
      sn::CircuitBreaker c;
      in_range(ctx, in.consecutive_failures, 0, 1000000, sub(at, "consecutiveFailures"),
               c.consecutive_failures);
      if (in.failure_ratio) {
        if (*in.failure_ratio < 0 || *in.failure_ratio > 1)
          ctx.bad(sub(at, "failureRatio"), "must be from 0 to 1");
        else
          c.failure_ratio = *in.failure_ratio;
      }
      if (auto d = duration(ctx, in.window, sub(at, "window"), true)) c.window = *d;
      in_range(ctx, in.min_requests, 0, 1000000000, sub(at, "minRequests"), c.min_requests);
      if (auto d = duration(ctx, in.open_duration, sub(at, "openDuration"), true))
        c.open_duration = *d;
      in_range(ctx, in.half_open_requests, 1, 1000000, sub(at, "halfOpenRequests"),
               c.half_open_requests);
      in_range(ctx, in.max_connections, 0, 1000000000, sub(at, "maxConnections"),
               c.max_connections);
      in_range(ctx, in.max_pending_requests, 0, 1000000000, sub(at, "maxPendingRequests"),
               c.max_pending_requests);
      out.circuit_breaker = c;
    }
    if (p.timeouts) {
      std::string at = sub(field, "timeouts");
      out.timeouts.request = duration(ctx, p.timeouts->request, sub(at, "request"), false);
      out.timeouts.backend_request =
          duration(ctx, p.timeouts->backend_request, sub(at, "backendRequest"), false);
      out.timeouts.idle = duration(ctx, p.timeouts->idle, sub(at, "idle"), false);
    }
    if (p.tracing) {
      std::string at = sub(field, "tracing");
      sn::Tracing t;
      if (!p.tracing->sampling) {
        ctx.bad(sub(at, "sampling"), "required: a ratio from 0 to 1");
      } else if (!(*p.tracing->sampling >= 0 && *p.tracing->sampling <= 1)) {
        ctx.bad(sub(at, "sampling"), "must be from 0 to 1");
      } else {
        t.sampling = *p.tracing->sampling;
        out.tracing = t;
      }
    }
    if (p.retry) {
      std::string at = sub(field, "retry");
      const GrRetry& in = *p.retry;
      sn::Retry r;
      in_range(ctx, in.attempts, 0, 100, sub(at, "attempts"), r.attempts);
      std::set<int> statuses;
      for (size_t i = 0; i < in.on.size(); ++i) {
        const std::string& v = in.on[i];
        int code = 0;
        auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), code);
        if (v == "connect-failure") {
          r.on_connect_failure = true;
        } else if (v == "reset") {
          r.on_reset = true;
        } else if (v == "gateway-error") {
          statuses.insert({502, 503, 504});
        } else if (ec == std::errc() && end == v.data() + v.size() && code >= 100 && code <= 599) {
          statuses.insert(code);
        } else {
          ctx.bad(idx(sub(at, "on"), i),
                  "unknown value " + quote(v) +
                      " (want connect-failure, reset, gateway-error or a status code)",
                  "UnsupportedValue");
        }
      }
      r.on_statuses.assign(statuses.begin(), statuses.end());
      r.per_try_timeout = duration(ctx, in.per_try_timeout, sub(at, "perTryTimeout"), true);
      if (auto d = duration(ctx, in.backoff_base, sub(sub(at, "backoff"), "base"), true))
        r.backoff_base = *d;
      if (auto d = duration(ctx, in.backoff_max, sub(sub(at, "backoff"), "max"), true))
        r.backoff_max = *d;
      if (auto d = duration(ctx, in.backoff_min, sub(at, "backoff"), true)) {
        // A retry waits uniformly in [cap/2, cap]: twice the least wait as
        // the base keeps every wait at or above it.
        r.backoff_base = 2 * *d;
        r.backoff_max = std::max(r.backoff_max, r.backoff_base);
      }
      if (r.backoff_base > r.backoff_max) ctx.bad(sub(at, "backoff"), "base must not exceed max");
      out.retry = r;
    }
    return out;
  }

  // ---------------------------------------------------------- routes

  sn::Rule rule(RouteCtx& ctx, const GrRule& in, const std::string& field) {
    sn::Rule out;
    for (size_t j = 0; j < in.matches.size(); ++j)
      out.matches.push_back(match(ctx, in.matches[j], idx(sub(field, "matches"), j)));
    bool open = filters(ctx, in, sub(field, "filters"), out.filters);
    for (size_t k = 0; k < in.backend_refs.size(); ++k) {
      std::string f = idx(sub(field, "backendRefs"), k);
      sn::BackendRef ref = resolve_backend(ctx, in.backend_refs[k], f);
      in_range(ctx, in.backend_refs[k].weight, 0, 1000000, sub(f, "weight"), ref.weight);
      // Filters on a backendRef (HTTPRoute, GRPCRoute): only for the requests it gets.
      if (in.backend_refs[k].request_headers)
        ref.request_headers = header_modifier(ctx, *in.backend_refs[k].request_headers,
                                              sub(sub(f, "filters"), "requestHeaderModifier"));
      if (in.backend_refs[k].response_headers)
        ref.response_headers = header_modifier(ctx, *in.backend_refs[k].response_headers,
                                               sub(sub(f, "filters"), "responseHeaderModifier"));
      out.backends.push_back(std::move(ref));
    }
    if (out.backends.empty() && !out.filters.request_redirect) {
      out.backends.push_back({"", 1, "the rule has no backendRefs"});
      // Gateway API: a rule without backendRefs answers 500, and is no unresolved reference.
      if (!ctx.may_refer)
        ctx.unres("BackendNotFound", field + ": no backendRefs; its requests are answered with 500");
    }
    if (!open) {
      // A jwt key is missing: fail closed. Nothing may reach a backend, be
      // mirrored or redirected unauthenticated.
      out.filters.jwt.reset();
      out.filters.request_redirect.reset();
      out.filters.request_mirrors.clear();
      out.backends = {{"", 1, "the jwt filter's Secret is missing"}};
    }
    out.policy = policy(ctx, in.policy, ctx.gateway_api ? field : sub(field, "policy"));
    return out;
  }

  std::vector<std::string> hostnames(RouteCtx& ctx, const std::vector<std::string>& in,
                                     const std::string& field) {
    std::set<std::string> out;
    for (size_t i = 0; i < in.size(); ++i) {
      std::string h = lower(in[i]);
      if (auto p = hostname_problem(h, true); !p.empty())
        ctx.bad(idx(field, i), p);
      else
        out.insert(h);
    }
    return {out.begin(), out.end()};
  }

  // Checks the route with the proxy's validator; returns its errors.
  static std::vector<std::string> proxy_check(const sn::Route& r,
                                              const std::set<std::string>& clusters) {
    sn::Snapshot probe;
    probe.version = 1;
    probe.routes.push_back(r);
    for (const auto& c : clusters) probe.clusters.push_back({c, {}});
    // A global rateLimit needs the snapshot's store: the controller's, whose
    // presence translate checks itself; any valid one stands in for it here.
    for (const auto& rule : r.rules)
      if (rule.filters.rate_limit && rule.filters.rate_limit->scope == sn::RateLimitScope::kGlobal) {
        probe.rate_limit_store.emplace();
        probe.rate_limit_store->address = "store:6379";
      }
    // The listeners it names are gateway_api.cc's, valid by construction.
    probe.routes.back().listeners.clear();
    return sn::validate(probe);
  }

  // An evaluated route (or routes, for an Ingress with several hosts) waiting
  // for the hostname ownership verdict before it is committed.
  struct Pending {
    RouteCtx ctx;
    std::vector<sn::Route> routes;
    ObjectMeta meta;
    const char* kind;
    std::vector<std::string> claimed;  // hostnames it names; "" = the catch-all
  };

  void finish(RouteCtx& ctx, std::vector<sn::Route> routes, const ObjectMeta& meta,
              const char* kind, std::vector<std::string> claimed) {
    pending_.push_back({std::move(ctx), std::move(routes), meta, kind, std::move(claimed)});
  }

  // Decides hostname ownership over every route, then commits each.
  void settle() {
    std::vector<HostnameVerdict> verdicts(pending_.size());
    if (options_.hostname_ownership) {
      std::vector<HostnameClaim> claims;
      claims.reserve(pending_.size());
      for (const auto& p : pending_)
        claims.push_back({p.kind, p.meta.namespace_, p.meta.name, p.meta.creation_timestamp, p.claimed});
      verdicts = decide_hostname_ownership(claims, options_.hostname_owners);
    }
    for (size_t i = 0; i < pending_.size(); ++i) commit(pending_[i], verdicts[i].refused);
  }

  // Commits a route: its status, and (when accepted) its routes, clusters and
  // certificates, less the hostnames another namespace owns.
  void commit(Pending& p, const std::vector<HostnameRefusal>& refused) {
    RouteCtx& ctx = p.ctx;
    const ObjectMeta& meta = p.meta;
    const char* kind = p.kind;
    std::vector<sn::Route>& routes = p.routes;
    std::set<std::string> refused_hosts;
    std::vector<Problem> conflicts;
    for (const auto& r : refused) {
      refused_hosts.insert(r.hostname);
      conflicts.push_back({"HostnameConflict", r.message});
    }
    // The clusters the final rules reference (a rule that fails closed drops its own).
    std::set<std::string> clusters;
    for (const auto& r : routes) {
      for (const auto& rule : r.rules) {
        for (const auto& b : rule.backends)
          if (b.unresolved.empty()) clusters.insert(b.cluster);
        for (const auto& m : rule.filters.request_mirrors) clusters.insert(m.cluster);
        if (rule.filters.default_backend) clusters.insert(rule.filters.default_backend->cluster);
      }
    }
    if (ctx.invalid.empty()) {
      for (const auto& r : routes) {
        auto errors = proxy_check(r, clusters);
        for (const auto& e : errors) ctx.invalid.push_back({"Invalid", e});
      }
    }
    RouteStatus st;
    st.kind = kind;
    st.namespace_ = meta.namespace_;
    st.name = meta.name;
    st.observed_generation = meta.generation;
    auto condition = [&](const char* type, const std::vector<Problem>& problems,
                         const char* ok_reason, const char* ok_message) {
      Condition c{type, problems.empty(), ok_reason, ok_message, meta.generation};
      if (!problems.empty()) {
        std::vector<std::string> msgs;
        for (const auto& p : problems) msgs.push_back(p.message);
        c.reason = problems.front().reason;
        c.message = join_messages(msgs);
      }
      st.conditions.push_back(std::move(c));
    };
    std::vector<Problem> not_accepted = ctx.invalid;
    not_accepted.insert(not_accepted.end(), conflicts.begin(), conflicts.end());
    condition("Accepted", not_accepted, "Accepted", "the route is valid");
    condition("ResolvedRefs", ctx.unresolved, "ResolvedRefs", "all references are resolved");
    if (ctx.nginx) {
      condition("IngressNginxAnnotations", ctx.nginx_findings, "Served",
                "every nginx.ingress.kubernetes.io annotation is served as ingress-nginx serves it");
    }
    statuses_.push_back(std::move(st));
    if (!ctx.invalid.empty()) return;
    // A refused hostname leaves this route only; a route left with none of
    // its hostnames is not served at all (never as a catch-all).
    std::set<std::string> used;
    for (auto& r : routes) {
      if (r.hostnames.empty()) {
        if (refused_hosts.count("")) continue;
      } else {
        std::erase_if(r.hostnames, [&](const std::string& h) { return refused_hosts.count(h) > 0; });
        if (r.hostnames.empty()) continue;
      }
      for (const auto& rule : r.rules) {
        for (const auto& b : rule.backends)
          if (b.unresolved.empty()) used.insert(b.cluster);
        for (const auto& m : rule.filters.request_mirrors) used.insert(m.cluster);
        if (rule.filters.default_backend) used.insert(rule.filters.default_backend->cluster);
      }
      routes_.push_back(std::move(r));
    }
    used_clusters_.insert(used.begin(), used.end());
    // Passthrough hostnames it owns; one cluster per hostname, the oldest
    // Ingress's (they are translated oldest first).
    // Client certificates per host: the oldest Ingress's (ingress-nginx: the
    // first with auth-tls-secret configures the server).
    for (auto& v : ctx.host_client_validation)
      if (!refused_hosts.count(v.hostname)) host_client_validation_.try_emplace(v.hostname, std::move(v));
    for (auto& pt : ctx.passthrough) {
      if (refused_hosts.count(pt.hostname) || !passthrough_hosts_.insert(pt.hostname).second) continue;
      used_clusters_.insert(pt.cluster);
      passthrough_.push_back(std::move(pt));
    }
    for (const auto& use : ctx.certs)
      for (const auto& h : use.hostnames)
        if (!refused_hosts.count(h)) certs_[use.secret_key].hostnames.insert(h);
  }

  void translate_route(const GatewayRoute& r) {
    RouteCtx ctx{r.meta.namespace_};
    sn::Route out;
    out.namespace_ = r.meta.namespace_;
    out.name = r.meta.name;
    out.kind = "GatewayRoute";
    out.creation_timestamp = r.meta.creation_timestamp;
    out.hostnames = hostnames(ctx, r.hostnames, "spec.hostnames");
    for (size_t i = 0; i < r.rules.size(); ++i) {
      out.rules.push_back(rule(ctx, r.rules[i], idx("spec.rules", i)));
      if (auto& d = out.rules.back().filters.default_backend) d->ingress_name = r.meta.name;  // X-Ingress-Name
    }
    if (r.tls_secret_name)
      use_certificate(ctx, *r.tls_secret_name, out.hostnames, "spec.tls.secretName");
    // The hostnames it claims: the valid ones; none written = the catch-all.
    std::vector<std::string> claimed = out.hostnames;
    if (r.hostnames.empty()) claimed.push_back("");
    std::vector<sn::Route> routes;
    routes.push_back(std::move(out));
    finish(ctx, std::move(routes), r.meta, "GatewayRoute", std::move(claimed));
  }

  // An HTTPRoute or GRPCRoute attached to gantry's Gateways (gateway_api.h
  // decided where and with which hostnames): the same rule model as a
  // GatewayRoute (a GRPCRoute's method matches are path matches, objects.h).
  void translate_http_route(const HttpRouteBinding& b) {
    const HTTPRoute& r = *b.route;
    const std::string& kind = b.kind;
    RouteCtx ctx{r.meta.namespace_};
    ctx.h2c = kind == "GRPCRoute";
    ctx.gateway_api = true;
    ctx.client_certificate = client_certificate_of(b);
    ctx.may_refer = [this, &r, &kind](const std::string& ns, const std::string& name) {
      return reference_granted(cache_, kGatewayGroup, kind, r.meta.namespace_, "", "Service", ns,
                               name);
    };
    sn::Route out;
    out.namespace_ = r.meta.namespace_;
    out.name = r.meta.name;
    // Route ids (ns/name) are unique in a snapshot: a GatewayRoute or Ingress
    // of the same name keeps it, then an HTTPRoute; the others are told apart.
    if (cache_.routes.count(r.meta.key()) || cache_.ingresses.count(r.meta.key()) ||
        (kind == "GRPCRoute" && cache_.http_routes.count(r.meta.key()))) {
      out.name += '@';
      out.name += kind;
    }
    out.kind = kind;
    out.creation_timestamp = r.meta.creation_timestamp;
    if (!b.any_host) out.hostnames = hostnames(ctx, b.hostnames, "spec.hostnames");
    out.listeners = b.listeners;
    for (size_t i = 0; i < r.rules.size(); ++i) {
      out.rules.push_back(rule(ctx, r.rules[i], idx("spec.rules", i)));
      // A GRPCRoute serves gRPC-Web browsers too (Envoy Gateway does the
      // same): the translation touches only application/grpc-web* requests.
      if (ctx.h2c) out.rules.back().filters.grpc_web = sn::GrpcWeb{};
    }
    std::vector<sn::Route> routes;
    if (b.serve) routes.push_back(std::move(out));  // else judged only: its status
    finish(ctx, std::move(routes), r.meta, ctx.h2c ? "GRPCRoute" : "HTTPRoute", {});
  }

  sn::BackendRef ingress_backend(RouteCtx& ctx, const IngressBackend& b, const std::string& f) {
    if (b.service_name.empty()) {
      sn::BackendRef ref;
      ref.unresolved = "resource backends are not supported (want service)";
      ctx.unres("InvalidKind", f + ": " + ref.unresolved);
      return ref;
    }
    return resolve_service(ctx, b.service_name, b.port_number, b.port_name, f);
  }

  void translate_ingress(const Ingress& ing) {
    RouteCtx ctx{ing.meta.namespace_};
    std::map<std::string, std::vector<sn::Rule>> by_host;  // "" = any host
    for (size_t i = 0; i < ing.rules.size(); ++i) {
      const IngressRule& ir = ing.rules[i];
      std::string rf = idx("spec.rules", i);
      std::string host = lower(ir.host);
      if (!host.empty()) {
        if (auto p = hostname_problem(host, true); !p.empty()) {
          ctx.bad(sub(rf, "host"), p);
          continue;
        }
      }
      auto& rules = by_host[host];
      for (size_t j = 0; j < ir.paths.size(); ++j) {
        const IngressPath& ip = ir.paths[j];
        std::string pf = idx(sub(sub(rf, "http"), "paths"), j);
        sn::Rule rule;
        sn::RouteMatch m;
        m.path.value = ip.path.empty() ? "/" : ip.path;
        m.path.type =
            ip.path_type == "Exact" ? sn::PathMatchType::kExact : sn::PathMatchType::kPathPrefix;
        if (auto p = path_problem(m.path.value); !p.empty()) ctx.bad(sub(pf, "path"), p);
        rule.matches.push_back(std::move(m));
        rule.backends.push_back(ingress_backend(ctx, ip.backend, sub(pf, "backend")));
        rules.push_back(std::move(rule));
      }
      if (rules.empty()) by_host.erase(host);
    }
    if (ing.default_backend) {
      sn::Rule rule;
      rule.backends.push_back(ingress_backend(ctx, *ing.default_backend, "spec.defaultBackend"));
      by_host[""].push_back(std::move(rule));
    }
    std::vector<std::string> all_hosts;
    for (const auto& [host, rules] : by_host)
      if (!host.empty()) all_hosts.push_back(host);
    for (size_t t = 0; t < ing.tls.size(); ++t) {
      const IngressTls& tls = ing.tls[t];
      if (tls.secret_name.empty()) continue;
      std::string tf = idx("spec.tls", t);
      std::vector<std::string> hosts =
          tls.hosts.empty() ? all_hosts : hostnames(ctx, tls.hosts, sub(tf, "hosts"));
      use_certificate(ctx, tls.secret_name, hosts, sub(tf, "secretName"));
    }
    std::vector<std::string> claimed;
    for (const auto& [host, rules] : by_host) claimed.push_back(host);
    std::vector<sn::Route> routes;
    for (auto& [host, rules] : by_host) {
      sn::Route r;
      r.namespace_ = ing.meta.namespace_;
      r.name =
          by_host.size() == 1 ? ing.meta.name : ing.meta.name + "@" + (host.empty() ? "*" : host);
      r.kind = "Ingress";
      r.creation_timestamp = ing.meta.creation_timestamp;
      if (!host.empty()) r.hostnames = {host};
      r.rules = std::move(rules);
      routes.push_back(std::move(r));
    }
    finish(ctx, std::move(routes), ing.meta, "Ingress", std::move(claimed));
  }

  // ---------------------------------------------------------- ingress-nginx mode

  struct NginxItem {
    const Ingress* ing;
    NginxParse parse;
  };
  // A canary Ingress's backend for one (host, path) of a main Ingress.
  struct CanaryUse {
    const NginxItem* item;
    const IngressBackend* backend;
    std::string field;
    bool used = false;
  };

  static std::string canary_key(const std::string& host, const std::string& path) {
    std::string k = host;
    k += '\n';
    k += path;
    return k;
  }

  void translate_nginx_ingresses(const std::vector<const Ingress*>& list) {
    std::vector<NginxItem> items;
    items.reserve(list.size());
    for (const Ingress* ing : list) items.push_back({ing, parse_nginx_annotations(ing->meta.annotations)});
    if (!options_.ingress_nginx.ssl_passthrough) {
      // As ingress-nginx without --enable-ssl-passthrough: the annotation is
      // ignored, gantry terminates the hosts' TLS.
      for (auto& it : items)
        for (auto& v : it.parse.verdicts)
          if (v.name == "ssl-passthrough" && it.parse.config.ssl_passthrough) {
            v.support = NginxSupport::kRefused;
            v.detail = "needs --ingress-nginx-enable-ssl-passthrough (ingress-nginx's --enable-ssl-passthrough); "
                       "TLS to these hosts is terminated by gantry";
          }
    }
    // Oldest first: ingress-nginx gives a host's path to the oldest Ingress.
    std::stable_sort(items.begin(), items.end(), [](const NginxItem& a, const NginxItem& b) {
      return std::tie(a.ing->meta.creation_timestamp, a.ing->meta.namespace_, a.ing->meta.name) <
             std::tie(b.ing->meta.creation_timestamp, b.ing->meta.namespace_, b.ing->meta.name);
    });
    // Host-wide regex: once any Ingress of a host sets use-regex or a
    // rewrite-target (other than its path), every path of the host is a
    // case-insensitive regex anchored at its start (ingress-nginx's
    // enforceRegexModifier). "" stands for Ingress rules without a host.
    std::set<std::string> regex_hosts;
    std::map<std::string, CanaryUse> canaries;
    // ssl-redirect is on by default where a certificate is configured for the
    // host (lua_ingress.lua: certificate_configured_for_current_request).
    nginx_cert_hosts_.clear();
    for (const auto& it : items) {
      std::vector<std::string> hosts;
      for (const auto& r : it.ing->rules)
        if (!r.host.empty()) hosts.push_back(lower(r.host));
      for (const auto& t : it.ing->tls) {
        std::string key = it.ing->meta.namespace_ + "/" + t.secret_name;
        if (t.secret_name.empty() || !cache_.secrets.count(key) || !certificate_problem(key).empty()) continue;
        if (t.hosts.empty()) nginx_cert_hosts_.insert(hosts.begin(), hosts.end());
        for (const auto& h : t.hosts) nginx_cert_hosts_.insert(lower(h));
      }
    }
    for (const auto& it : items) {
      const NginxConfig& c = it.parse.config;
      for (size_t i = 0; i < it.ing->rules.size(); ++i) {
        const IngressRule& r = it.ing->rules[i];
        std::string host = lower(r.host);
        for (size_t j = 0; j < r.paths.size(); ++j) {
          std::string path = r.paths[j].path.empty() ? "/" : r.paths[j].path;
          if (c.canary) {
            // A canary kept out by a blocking refusal joins nothing.
            if (it.parse.blocked(options_.ingress_nginx.serve_refused)) continue;
            canaries.try_emplace(canary_key(host, path),
                                 CanaryUse{&it, &r.paths[j].backend,
                                           idx(sub(sub(idx("spec.rules", i), "http"), "paths"), j) + ".backend"});
            continue;
          }
          if (c.use_regex || (c.rewrite_target && *c.rewrite_target != path)) regex_hosts.insert(host);
        }
      }
    }
    for (const auto& it : items)
      if (!it.parse.config.canary) translate_nginx_ingress(it, regex_hosts, canaries);
    for (const auto& it : items)
      if (it.parse.config.canary) translate_nginx_canary(it, canaries);
  }

  void nginx_findings(RouteCtx& ctx, const NginxItem& it) {
    ctx.nginx = true;
    for (const auto& v : it.parse.verdicts) {
      if (v.support == NginxSupport::kServed) continue;
      std::string msg = std::string(kNginxAnnotationPrefix) + v.name + ": " +
                        nginx_support_name(v.support) + ": " + v.detail;
      ctx.nginx_findings.push_back(
          {v.support == NginxSupport::kPartial ? "PartlyServed" : "NotServed", std::move(msg)});
      if (v.blocks && !options_.ingress_nginx.serve_refused)
        ctx.bad(std::string("metadata.annotations[").append(kNginxAnnotationPrefix).append(v.name).append("]"),
                v.detail + " (the Ingress is not served without it; --ingress-nginx-serve-refused "
                           "serves it anyway)",
                "UnsupportedValue");
    }
    // Refusals first: the condition's reason is its first finding's.
    std::stable_partition(ctx.nginx_findings.begin(), ctx.nginx_findings.end(),
                          [](const Problem& p) { return p.reason == "NotServed"; });
    NginxIngressReport rep;
    rep.namespace_ = it.ing->meta.namespace_;
    rep.name = it.ing->meta.name;
    rep.canary = it.parse.config.canary;
    rep.annotations = it.parse.verdicts;
    nginx_reports_.push_back(std::move(rep));
  }

  // The filters and policy every rule of the Ingress gets on `host`.
  void nginx_rule_settings(RouteCtx& ctx, const NginxConfig& c, const std::string& path, bool host_tls,
                           sn::Rule& rule) {
    sn::Filters& f = rule.filters;
    if (c.force_ssl_redirect || (c.ssl_redirect.value_or(true) && host_tls))
      f.https_redirect = sn::HttpsRedirect{options_.ingress_nginx.ssl_redirect_code, std::nullopt,
                                           !c.preserve_trailing_slash};
    if (!options_.ingress_nginx.hsts.empty()) f.hsts = sn::Hsts{options_.ingress_nginx.hsts};
    f.rate_limit = c.rate_limit;
    f.connection_limit = nginx_connection_limit_;
    f.source_range = c.source_range;
    f.cors = c.cors;
    f.basic_auth = nginx_basic_auth_;
    f.ext_auth = c.ext_auth;
    uint64_t body = c.body_size.value_or(options_.ingress_nginx.default_body_size);
    if (body > 0) f.max_request_body_size = body;
    if (c.permanent_redirect || c.temporal_redirect) {
      // ingress-nginx: temporal-redirect wins over permanent-redirect.
      sn::RequestRedirect r;
      r.location = c.temporal_redirect ? *c.temporal_redirect : *c.permanent_redirect;
      r.status_code = c.temporal_redirect ? c.temporal_redirect_code : c.permanent_redirect_code;
      f.request_redirect = r;
    } else if (c.rewrite_target && *c.rewrite_target != path) {
      std::string subst = *nginx_rewrite_substitution(*c.rewrite_target);
      if (c.rewrite_target->starts_with("http://") || c.rewrite_target->starts_with("https://")) {
        sn::RequestRedirect r;  // nginx `rewrite` to an absolute URL: a 302
        r.location = subst;
        r.location_pattern = nginx_rewrite_pattern(path);
        r.keep_query = true;
        r.status_code = 302;
        f.request_redirect = r;
      } else {
        sn::UrlRewrite u;
        u.path.type = sn::PathRewriteType::kRegexReplace;
        u.path.pattern = nginx_rewrite_pattern(path);
        u.path.value = subst;
        f.url_rewrite = u;
        if (c.x_forwarded_prefix) {  // only where it rewrites, as ingress-nginx
          sn::HeaderModifier h;
          h.set.push_back({"X-Forwarded-Prefix", *c.x_forwarded_prefix});
          f.request_headers = h;
        }
      }
    }
    if (c.upstream_vhost && !f.request_redirect) {
      if (!f.url_rewrite) f.url_rewrite = sn::UrlRewrite{};
      f.url_rewrite->hostname = *c.upstream_vhost;
    }
    if (c.load_balancer) {
      sn::LoadBalancer& lb = rule.policy.load_balancer = *c.load_balancer;
      // sticky.lua: the cookie's Path defaults to the location's path, as written.
      bool plain = path.size() <= 1024 && path.find(';') == std::string::npos &&
                   std::none_of(path.begin(), path.end(), [](char ch) { return static_cast<unsigned char>(ch) <= 0x20; });
      if (lb.hash_on == sn::HashOn::kCookie && lb.cookie_path.empty()) lb.cookie_path = plain ? path : "/";
    }
    if (c.read_timeout) rule.policy.timeouts.backend_request = *c.read_timeout;
    if (c.retry) rule.policy.retry = *c.retry;
    (void)ctx;
  }

  // limit-connections: one zone per Ingress (ingress-nginx's <ns>_<name>_<uid>
  // zone), whatever routes its hosts become. default-backend: the Service's
  // first port, in plain HTTP (ingress-nginx keeps only one with endpoints;
  // the proxy checks that on each request); a missing one is a finding.
  void nginx_default_backend(RouteCtx& ctx, const Ingress& ing, const NginxConfig& c) {
    nginx_connection_limit_ = c.connection_limit;
    if (nginx_connection_limit_) nginx_connection_limit_->zone = "Ingress/" + ing.meta.key();
    nginx_default_backend_.reset();
    if (c.default_backend.empty()) return;
    std::string field = std::string("metadata.annotations[").append(kNginxAnnotationPrefix).append("default-backend]");
    const Service* svc = find_service(ing.meta.namespace_, c.default_backend);
    if (svc == nullptr || svc->ports.empty() || svc->type == "ExternalName") {
      std::string why = svc == nullptr ? " not found" : svc->ports.empty() ? " has no ports" : " is of type ExternalName";
      ctx.nginx_findings.push_back({"DefaultBackendNotFound",
                                    field + ": Service " + ing.meta.namespace_ + "/" + c.default_backend + why +
                                        " (its errors and requests pass as without default-backend)"});
      return;
    }
    RouteCtx plain{ctx.ns};  // nginx's @custom_ location: proxy_pass http://
    sn::BackendRef ref = resolve_service(plain, svc->meta.name, svc->ports.front().port, "", field);
    if (!ref.unresolved.empty()) {
      ctx.nginx_findings.push_back({"DefaultBackendNotFound", field + ": " + ref.unresolved});
      return;
    }
    sn::DefaultBackend d;
    d.cluster = ref.cluster;
    d.intercept_statuses = c.custom_http_errors;
    d.namespace_ = ing.meta.namespace_;
    d.ingress_name = ing.meta.name;
    nginx_default_backend_ = std::move(d);
  }
  // The rule's filters.defaultBackend, naming its Service ($service_name, $service_port).
  void nginx_default_backend_of(const IngressBackend& b, sn::Rule& rule) {
    if (!nginx_default_backend_) return;
    sn::DefaultBackend d = *nginx_default_backend_;
    d.service_name = b.service_name;
    d.service_port = b.port_number ? std::to_string(*b.port_number) : b.port_name;
    rule.filters.default_backend = std::move(d);
  }

  // auth-tls-secret: the Secret's ca.crt (and ca.crl), in the Ingress's
  // namespace. A Secret that cannot be used makes the Ingress Invalid (not
  // served: fail closed; ingress-nginx answers 403 for the host).
  std::optional<sn::HostClientValidation> nginx_auth_tls(RouteCtx& ctx, const Ingress& ing, const NginxAuthTls& a) {
    const std::string ns = a.secret_namespace.empty() ? ing.meta.namespace_ : a.secret_namespace;
    const std::string key = ns + "/" + a.secret;
    std::string field("metadata.annotations[");
    field.append(kNginxAnnotationPrefix).append("auth-tls-secret]");
    if (ns != ing.meta.namespace_) {
      ctx.bad(field, "Secret " + key + " is in another namespace; gantry reads it from the Ingress's namespace only "
                     "(as ingress-nginx without allow-cross-namespace-resources)", "RefNotPermitted");
      return std::nullopt;
    }
    auto it = cache_.secrets.find(key);
    if (it == cache_.secrets.end()) {
      ctx.bad(field, "Secret " + key + " not found", "SecretNotFound");
      return std::nullopt;
    }
    const auto& d = it->second.data;
    sn::HostClientValidation v;
    if (auto ca = d.find("ca.crt"); ca != d.end()) v.ca_pem = ca->second;
    if (auto crl = d.find("ca.crl"); crl != d.end()) v.crl_pem = crl->second;
    v.verify = a.verify;
    v.depth = a.depth;
    v.error_page = a.error_page;
    v.pass_certificate = a.pass_certificate;
    v.subject_match = a.match_cn;
    if (v.ca_pem.empty()) {
      ctx.bad(field, "Secret " + key + " has no ca.crt", "InvalidSecret");
      return std::nullopt;
    }
    // The proxy's own validator on an entry of one's own (caPem, crlPem).
    sn::Snapshot probe;
    probe.version = 1;
    probe.host_client_validation.push_back(v);
    probe.host_client_validation.back().hostname = "probe.example.com";
    if (auto errors = sn::validate(probe); !errors.empty()) {
      std::string e = std::move(errors.front());
      if (e.starts_with("hostClientValidation[0].")) e.erase(0, 24);
      if (e.starts_with("caPem")) e.replace(0, 5, "ca.crt");
      else if (e.starts_with("crlPem")) e.replace(0, 6, "ca.crl");
      ctx.bad(field, "Secret " + key + " " + e, "InvalidSecret");
      return std::nullopt;
    }
    v.owner = ing.meta.key();
    return v;
  }

  // backend-protocol: GRPC is h2c (as a GRPCRoute's backends); HTTPS and
  // GRPCS speak TLS with proxy-ssl-*'s settings, on clusters of the Ingress's
  // own. nginx's defaults: no verification, no SNI, no client certificate.
  void nginx_backend_protocol(RouteCtx& ctx, const Ingress& ing, const NginxConfig& c) {
    using P = NginxBackendProtocol;
    if (c.backend_protocol == P::kGrpc) ctx.h2c = true;
    if (c.backend_protocol != P::kHttps && c.backend_protocol != P::kGrpcs) return;
    UpstreamTlsOverride o;
    o.h2 = c.backend_protocol == P::kGrpcs;
    o.suffix = std::string(o.h2 ? "/grpcs=" : "/https=").append(ing.meta.name);
    o.tls.verify = false;
    if (c.proxy_ssl) {
      const NginxProxySsl& ps = *c.proxy_ssl;
      const std::string key = ps.secret_namespace + "/" + ps.secret;
      std::string problem;
      const char* reason = "InvalidSecret";
      auto it = cache_.secrets.find(key);
      if (ps.secret_namespace != ctx.ns) {
        reason = "RefNotPermitted";
        problem = "Secret " + key + " is in another namespace; gantry reads it from the Ingress's namespace only";
      } else if (it == cache_.secrets.end()) {
        reason = "SecretNotFound";
        problem = "Secret " + key + " not found";
      } else {
        const auto& d = it->second.data;
        auto ca = d.find("ca.crt"), crt = d.find("tls.crt"), pk = d.find("tls.key");
        bool pair = crt != d.end() && pk != d.end() && !crt->second.empty() && !pk->second.empty();
        bool has_ca = ca != d.end() && !ca->second.empty();
        if (!pair && !has_ca) problem = "Secret " + key + " has neither ca.crt nor tls.crt and tls.key";
        if (pair) {
          o.tls.client_cert_pem = crt->second;
          o.tls.client_key_pem = pk->second;
        }
        if (has_ca) {
          o.tls.ca_pem = ca->second;
          o.tls.verify = ps.verify;
        }
      }
      // proxy_ssl_name: the name verified, and the SNI with proxy_ssl_server_name
      // on. Without SNI the snapshot checks it as a subject alternative name.
      if (ps.server_name && !ps.name.empty())
        o.tls.server_name = ps.name;
      else if (o.tls.verify)
        o.tls.subject_alt_names = {ps.name.empty() ? std::string("upstream_balancer") : ps.name};
      if (problem.empty()) {
        if (std::string why = tls_problem(o.tls); !why.empty()) problem = "Secret " + key + ": " + why;
      }
      if (!problem.empty()) {
        o.usable = false;
        o.tls = sn::UpstreamTls{};
        o.tls.verify = false;
        std::string field("metadata.annotations[");
        field.append(kNginxAnnotationPrefix).append("proxy-ssl-secret]: ").append(problem);
        ctx.unres(reason, field.append(" (its backends answer 503, as ingress-nginx denies the location)"));
      }
    }
    ctx.upstream_tls = std::move(o);
  }

  void translate_nginx_ingress(const NginxItem& it, const std::set<std::string>& regex_hosts,
                               std::map<std::string, CanaryUse>& canaries) {
    const Ingress& ing = *it.ing;
    const NginxConfig& c = it.parse.config;
    RouteCtx ctx{ing.meta.namespace_};
    nginx_findings(ctx, it);
    nginx_basic_auth_.reset();
    if (c.basic_auth) nginx_basic_auth_ = nginx_basic_auth(ctx, *c.basic_auth);
    nginx_default_backend(ctx, ing, c);
    nginx_backend_protocol(ctx, ing, c);
    std::optional<sn::HostClientValidation> auth_tls;
    if (c.auth_tls) auth_tls = nginx_auth_tls(ctx, ing, *c.auth_tls);
    if (c.load_balancer && !c.load_balancer->cookie_domain.empty()) {  // what the proxy would NACK
      std::string d = c.load_balancer->cookie_domain;
      if (d.front() == '.') d.erase(0, 1);
      if (auto p = hostname_problem(d, false); !p.empty())
        ctx.bad(std::string("metadata.annotations[").append(kNginxAnnotationPrefix).append("session-cookie-domain]"), p);
    }
    std::map<std::string, std::vector<sn::Rule>> by_host;
    for (size_t i = 0; i < ing.rules.size(); ++i) {
      const IngressRule& ir = ing.rules[i];
      std::string rf = idx("spec.rules", i);
      std::string host = lower(ir.host);
      if (!host.empty()) {
        if (auto p = hostname_problem(host, true); !p.empty()) {
          ctx.bad(sub(rf, "host"), p);
          continue;
        }
      }
      bool regex = regex_hosts.count(host) > 0;
      bool host_tls = !host.empty() && nginx_cert_hosts_.count(host) > 0;
      auto& rules = by_host[host];
      if (c.app_root && rules.empty()) {
        sn::Rule root;
        sn::RouteMatch m;
        m.path = {sn::PathMatchType::kExact, "/"};
        root.matches.push_back(m);
        nginx_rule_settings(ctx, c, "/", host_tls, root);
        root.filters.url_rewrite.reset();
        root.filters.basic_auth.reset();  // nginx answers app-root in the server block, before auth
        // nginx: return 302 $scheme://$http_host<app-root> (no query). A
        // relative Location resolves to exactly that, whatever port the
        // client reached the proxy on.
        sn::RequestRedirect r;
        r.location = *c.app_root;
        r.status_code = 302;
        root.filters.request_redirect = r;
        rules.push_back(std::move(root));
      }
      for (size_t j = 0; j < ir.paths.size(); ++j) {
        const IngressPath& ip = ir.paths[j];
        std::string pf = idx(sub(sub(rf, "http"), "paths"), j);
        std::string path = ip.path.empty() ? "/" : ip.path;
        sn::RouteMatch m;
        if (regex) {
          m.path.type = sn::PathMatchType::kRegularExpression;
          m.path.value = nginx_location_regex(path);
          m.path.priority = static_cast<int32_t>(std::min<size_t>(path.size(), INT32_MAX));
          if (auto p = regex_problem(m.path.value); !p.empty()) ctx.bad(sub(pf, "path"), p);
        } else {
          m.path.value = path;
          m.path.type = ip.path_type == "Exact" ? sn::PathMatchType::kExact : sn::PathMatchType::kPathPrefix;
          if (auto p = path_problem(path); !p.empty()) ctx.bad(sub(pf, "path"), p);
        }
        sn::Rule base;
        nginx_rule_settings(ctx, c, path, host_tls, base);
        sn::BackendRef main_ref = ingress_backend(ctx, ip.backend, sub(pf, "backend"));
        nginx_default_backend_of(ip.backend, base);
        auto rule_with = [&](std::vector<sn::ValueMatch> headers, std::vector<sn::BackendRef> refs) {
          sn::Rule r = base;
          sn::RouteMatch mm = m;
          mm.headers = std::move(headers);
          r.matches.push_back(std::move(mm));
          r.backends = std::move(refs);
          if (r.filters.request_redirect) r.backends.clear();
          rules.push_back(std::move(r));
        };
        auto cu = canaries.find(canary_key(host, path));
        if (cu == canaries.end() || base.filters.request_redirect) {
          rule_with({}, {main_ref});
          continue;
        }
        // The canary's precedence (ingress-nginx balancer.lua): header, then
        // cookie, then weight. Rules of one route tie on everything but rule
        // order, so the order below is the precedence.
        CanaryUse& use = cu->second;
        use.used = true;
        const NginxCanary& k = use.item->parse.config.canary_rules;
        RouteCtx cctx{use.item->ing->meta.namespace_};
        // A canary speaks its main Ingress's backend-protocol (ingress-nginx
        // ignores the canary's own, as all but its canary-* annotations).
        cctx.h2c = ctx.h2c;
        cctx.upstream_tls = ctx.upstream_tls;
        sn::BackendRef canary_ref = ingress_backend(cctx, *use.backend, use.field);
        for (const auto& p : cctx.unresolved) {
          std::string msg("canary ");
          msg.append(use.item->ing->meta.key()).append(" ").append(p.message);
          ctx.unres(p.reason.c_str(), msg);
        }
        std::string header = lower(k.header);
        if (!header.empty()) {
          if (!k.header_value.empty()) {
            rule_with({{sn::ValueMatchType::kExact, header, k.header_value}}, {canary_ref});
          } else if (!k.header_pattern.empty()) {
            // ngx.re.match: unanchored; the router's header regex is a full match.
            std::string pat("(?s).*(?:");
            pat += k.header_pattern;
            pat += ").*";
            rule_with({{sn::ValueMatchType::kRegularExpression, header, pat}}, {canary_ref});
          } else {
            rule_with({{sn::ValueMatchType::kExact, header, "always"}}, {canary_ref});
            rule_with({{sn::ValueMatchType::kExact, header, "never"}}, {main_ref});
          }
        }
        if (!k.cookie.empty()) {
          auto cookie_rule = [&](const char* value) {
            std::string pat("(?:.*;\\s*)?");
            pat += RE2::QuoteMeta(k.cookie);
            pat += '=';
            pat += value;
            pat += "(?:;.*)?";
            return sn::ValueMatch{sn::ValueMatchType::kRegularExpression, "cookie", pat};
          };
          rule_with({cookie_rule("always")}, {canary_ref});
          rule_with({cookie_rule("never")}, {main_ref});
        }
        int64_t total = std::max<int64_t>(k.weight_total, 100);
        int64_t w = std::clamp<int64_t>(k.weight, 0, total);
        sn::BackendRef a = main_ref, b = canary_ref;
        a.weight = static_cast<uint32_t>(std::min<int64_t>(total - w, 1000000));
        b.weight = static_cast<uint32_t>(std::min<int64_t>(w, 1000000));
        if (w == 0) rule_with({}, {main_ref});
        else if (w == total) rule_with({}, {canary_ref});
        else rule_with({}, {a, b});
      }
      if (rules.empty()) by_host.erase(host);
    }
    if (ing.default_backend) {
      sn::Rule rule;
      nginx_rule_settings(ctx, c, "/", false, rule);
      rule.backends.push_back(ingress_backend(ctx, *ing.default_backend, "spec.defaultBackend"));
      nginx_default_backend_of(*ing.default_backend, rule);
      if (rule.filters.request_redirect) rule.backends.clear();
      by_host[""].push_back(std::move(rule));
    }
    std::vector<std::string> all_hosts;
    for (const auto& [host, rules] : by_host)
      if (!host.empty()) all_hosts.push_back(host);
    for (size_t t = 0; t < ing.tls.size(); ++t) {
      const IngressTls& tls = ing.tls[t];
      if (tls.secret_name.empty()) continue;
      std::string tf = idx("spec.tls", t);
      std::vector<std::string> hosts =
          tls.hosts.empty() ? all_hosts : hostnames(ctx, tls.hosts, sub(tf, "hosts"));
      use_certificate(ctx, tls.secret_name, hosts, sub(tf, "secretName"));
    }
    std::vector<std::string> claimed;
    std::vector<sn::Route> routes;
    auto add_route = [&](const std::string& suffix, std::vector<std::string> hosts, std::vector<sn::Rule> rules) {
      sn::Route r;
      r.namespace_ = ing.meta.namespace_;
      r.name = ing.meta.name + suffix;
      r.kind = "Ingress";
      r.creation_timestamp = ing.meta.creation_timestamp;
      r.hostnames = std::move(hosts);
      r.rules = std::move(rules);
      routes.push_back(std::move(r));
    };
    bool several = by_host.size() > 1 || c.from_to_www_redirect;
    for (auto& [host, rules] : by_host) {
      std::vector<std::string> hosts;
      if (!host.empty()) {
        hosts.push_back(host);
        for (const auto& a : c.server_aliases) {
          if (auto p = hostname_problem(a, true); !p.empty()) {
            ctx.bad(std::string("metadata.annotations[").append(kNginxAnnotationPrefix).append("server-alias]"), p);
            continue;
          }
          if (std::find(hosts.begin(), hosts.end(), a) == hosts.end()) hosts.push_back(a);
        }
      }
      claimed.insert(claimed.end(), hosts.begin(), hosts.end());
      if (host.empty()) claimed.push_back("");
      if (c.from_to_www_redirect && !host.empty() && !host.starts_with("*.")) {
        // from-to-www-redirect: the other name answers 308 to this one.
        std::string other = host.starts_with("www.") ? host.substr(4) : std::string("www.").append(host);
        if (!by_host.count(other)) {
          sn::Rule redirect;
          // The request's scheme, the other host, no port (port_in_redirect
          // off): a network-path reference "//host/path?query".
          sn::RequestRedirect r;
          r.location = std::string("//").append(host).append("\\0");
          r.location_pattern = "^.*$";
          r.keep_query = true;
          r.status_code = options_.ingress_nginx.ssl_redirect_code;  // http-redirect-code
          redirect.filters.request_redirect = r;
          add_route("@" + other, {other}, {redirect});
          claimed.push_back(other);
        }
      }
      if (auth_tls) {
        for (const auto& h : hosts) {
          sn::HostClientValidation v = *auth_tls;
          v.hostname = h;
          ctx.host_client_validation.push_back(std::move(v));
        }
        if (host.empty())
          ctx.bad(std::string("metadata.annotations[").append(kNginxAnnotationPrefix).append("auth-tls-secret]"),
                  "client certificates are asked for by host name: a rule without a host is not served with them");
      }
      std::string suffix;
      if (several) suffix.append("@").append(host.empty() ? std::string("*") : host);
      add_route(suffix, std::move(hosts), std::move(rules));
    }
    if (c.ssl_passthrough && options_.ingress_nginx.ssl_passthrough) nginx_passthrough(ctx, ing);
    finish(ctx, std::move(routes), ing.meta, "Ingress", std::move(claimed));
  }

  // ssl-passthrough: each rule's host goes, as raw TLS, to the backend of its
  // first path (a TLS stream has no path). The routes stay: plain HTTP is
  // still routed by path, as in ingress-nginx.
  void nginx_passthrough(RouteCtx& ctx, const Ingress& ing) {
    for (size_t i = 0; i < ing.rules.size(); ++i) {
      const IngressRule& ir = ing.rules[i];
      std::string host = lower(ir.host);
      if (host.empty() || ir.paths.empty() || !hostname_problem(host, true).empty()) continue;
      // The rules above reported an unresolved backend already.
      RouteCtx again{ing.meta.namespace_};
      sn::BackendRef ref = ingress_backend(again, ir.paths[0].backend, "");
      if (ref.unresolved.empty()) ctx.passthrough.push_back({host, ref.cluster, "", ing.meta.key()});
    }
  }

  // A canary Ingress has no routes of its own: its backend joined the rules
  // of the main Ingress with the same host and path.
  void translate_nginx_canary(const NginxItem& it, const std::map<std::string, CanaryUse>& canaries) {
    RouteCtx ctx{it.ing->meta.namespace_};
    nginx_findings(ctx, it);
    if (it.parse.blocked(options_.ingress_nginx.serve_refused)) {
      finish(ctx, {}, it.ing->meta, "Ingress", {});
      return;
    }
    bool merged = false, any = false;
    for (const auto& [key, use] : canaries) {
      if (use.item != &it) continue;
      any = true;
      merged = merged || use.used;
      if (!use.used) {
        std::string host = key.substr(0, key.find('\n'));
        std::string path = key.substr(key.find('\n') + 1);
        std::string msg("no main Ingress of an ingress-nginx class serves host ");
        msg.append(quote(host.empty() ? "*" : host)).append(" path ").append(quote(path));
        msg.append(" (a canary joins the Ingress with the same host and path)");
        ctx.bad(use.field, msg, "NoMainIngress");
      }
    }
    if (!any) ctx.bad("spec.rules", "a canary Ingress needs rules with paths", "NoMainIngress");
    if (merged && !nginx_reports_.empty()) nginx_reports_.back().note = "merged into the main Ingress of its host and path";
    finish(ctx, {}, it.ing->meta, "Ingress", {});
  }

  std::vector<NginxIngressReport> nginx_reports_;
  std::set<std::string> nginx_cert_hosts_;
  std::optional<sn::BasicAuth> nginx_basic_auth_;  // of the Ingress being translated
  // limit-connections and default-backend of the Ingress being translated.
  std::optional<sn::ConnectionLimit> nginx_connection_limit_;
  std::optional<sn::DefaultBackend> nginx_default_backend_;

  const Cache& cache_;
  const TranslateOptions& options_;
  std::map<std::string, std::vector<const EndpointSlice*>> slices_;  // by "ns/service"
  // The Gateway backend client certificate of a route's clusters: that of
  // the Gateways it is attached to. A route attached to Gateways with
  // different ones uses the first Gateway's (by namespace/name), with a
  // warning: a route's rules name one cluster per backend.
  std::string client_certificate_of(const HttpRouteBinding& b) {
    if (gw_model_ == nullptr) return {};
    auto pit = gw_model_->parents.find({b.kind, b.route->meta.key()});
    if (pit == gw_model_->parents.end()) return {};
    std::map<std::string, std::string> by_gateway;  // gateway -> certificate ("" none)
    for (const auto& v : pit->second) {
      if (!v.accepted) continue;
      std::string gw = v.ref.namespace_.value_or(b.route->meta.namespace_) + "/" + v.ref.name;
      auto it = btls_.client_certificates.find(gw);
      by_gateway[gw] = it == btls_.client_certificates.end() ? std::string() : it->second;
    }
    if (by_gateway.empty()) return {};
    const std::string& first = by_gateway.begin()->second;
    for (const auto& [gw, cert] : by_gateway)
      if (cert != first) {
        warnings_.push_back(b.kind + " " + b.route->meta.key() +
                            ": its Gateways present different backend client certificates; the "
                            "one of Gateway " + by_gateway.begin()->first + " is used");
        break;
      }
    return first;
  }

  BackendTlsModel btls_;
  const GatewayApiModel* gw_model_ = nullptr;  // during translate_http_route
  std::map<std::string, sn::Cluster> clusters_;                      // built on demand
  std::set<std::string> used_clusters_;
  std::vector<sn::Passthrough> passthrough_;
  std::set<std::string> passthrough_hosts_;
  std::map<std::string, sn::HostClientValidation> host_client_validation_;  // by hostname
  std::map<std::string, CertAcc> certs_;
  std::map<std::string, std::string> cert_problems_;
  std::vector<Pending> pending_;
  std::vector<sn::Route> routes_;
  std::vector<RouteStatus> statuses_;
  std::vector<std::string> warnings_;
};

}  // namespace

bool ingress_is_nginx(const Ingress& ingress, const TranslateOptions& options) {
  const IngressNginxOptions& n = options.ingress_nginx;
  if (!n.enabled) return false;
  if (ingress.ingress_class_name) return n.classes.count(*ingress.ingress_class_name) > 0;
  auto it = ingress.meta.annotations.find("kubernetes.io/ingress.class");
  if (it == ingress.meta.annotations.end()) return n.watch_without_class;
  return n.classes.count(it->second) > 0;
}

bool ingress_is_ours(const Ingress& ingress, const TranslateOptions& options) {
  if (ingress_is_nginx(ingress, options)) return true;
  if (ingress.ingress_class_name) return *ingress.ingress_class_name == options.ingress_class;
  auto it = ingress.meta.annotations.find("kubernetes.io/ingress.class");
  if (it != ingress.meta.annotations.end()) return it->second == options.ingress_class;
  return options.claim_classless_ingresses;
}

Result<sn::Millis> parse_k8s_duration(std::string_view s) {
  auto d = parse_duration(s);
  if (!d.ok()) return Error{d.error().message};
  return *d;
}

Result<uint64_t> parse_size(std::string_view s) {
  Error bad{"expected a size such as 1Mi, 512Ki or 1048576, got " + quote(s)};
  size_t i = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
  if (i == 0) return bad;
  uint64_t n = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + i, n);
  if (ec != std::errc() || end != s.data() + i) return bad;
  std::string_view unit = s.substr(i);
  static const std::pair<std::string_view, uint64_t> kUnits[] = {
      {"", 1},
      {"k", 1000},
      {"K", 1000},
      {"M", 1000000},
      {"G", 1000000000},
      {"T", 1000000000000},
      {"Ki", 1ull << 10},
      {"Mi", 1ull << 20},
      {"Gi", 1ull << 30},
      {"Ti", 1ull << 40},
  };
  for (const auto& [name, mult] : kUnits) {
    if (unit != name) continue;
    if (n > UINT64_MAX / mult) return Error{"size " + quote(s) + " is too large"};
    return n * mult;
  }
  return bad;
}

TranslateResult translate(const Cache& cache, const TranslateOptions& options) {
  return Translator(cache, options).run();
}

}  // namespace gantry::controller
