// Decoding of Kubernetes objects from YAML nodes; see decode.h.
//
// Inside this file a schema error is thrown as FieldError and caught at the
// document boundary (decode_document), where it becomes a DecodeError value:
// the decoder reads like the schema it checks, and nothing escapes.
#include "controller/core/decode.h"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <algorithm>
#include <initializer_list>
#include <utility>

#include <nlohmann/json.hpp>

namespace gantry::controller {

namespace {

struct FieldError {
  int line;
  std::string field;
  std::string message;
};

// Bounds the work of one document: YAML aliases let a small file describe a
// huge tree, and the decoder must not walk it.
constexpr long kNodeBudget = 200000;
thread_local long g_budget = kNodeBudget;
thread_local int g_line_offset = 0;

int line_of(const YAML::Node& n) {
  if (!n.IsDefined()) return 0;
  YAML::Mark m = n.Mark();
  return m.line < 0 ? 0 : m.line + 1 + g_line_offset;
}

[[noreturn]] void fail(const YAML::Node& at, const std::string& field, std::string message) {
  throw FieldError{line_of(at), field, std::move(message)};
}

void spend(const YAML::Node& at, const std::string& field) {
  if (--g_budget < 0) fail(at, field, "document too large (aliases expand beyond the limit)");
}

std::string join(std::initializer_list<const char*> values) {
  std::string out;
  for (const char* v : values) {
    if (!out.empty()) out += ", ";
    out += v;
  }
  return out;
}

std::string sub(const std::string& path, const char* key) {
  return path.empty() ? std::string(key) : path + "." + key;
}
std::string idx(const std::string& path, size_t i) { return path + "[" + std::to_string(i) + "]"; }

bool present(const YAML::Node& n) { return n.IsDefined() && !n.IsNull(); }

// A map field; a missing or null value reads as an empty map.
void expect_map(const YAML::Node& n, const std::string& field) {
  spend(n, field);
  if (present(n) && !n.IsMap()) fail(n, field, "expected an object");
}

YAML::Node get(const YAML::Node& map, const char* key) {
  if (!present(map)) return YAML::Node(YAML::NodeType::Undefined);
  return map[key];
}

std::string scalar(const YAML::Node& n, const std::string& field) {
  spend(n, field);
  if (!n.IsScalar()) fail(n, field, "expected a string");
  return n.Scalar();
}

std::optional<std::string> opt_str(const YAML::Node& map, const char* key,
                                   const std::string& path) {
  YAML::Node n = get(map, key);
  if (!present(n)) return std::nullopt;
  return scalar(n, sub(path, key));
}

std::string str(const YAML::Node& map, const char* key, const std::string& path,
                std::string fallback = "") {
  return opt_str(map, key, path).value_or(std::move(fallback));
}

std::string required_str(const YAML::Node& map, const char* key, const std::string& path) {
  auto v = opt_str(map, key, path);
  if (!v || v->empty()) fail(map, sub(path, key), "required");
  return *v;
}

int64_t to_int(const YAML::Node& n, const std::string& field) {
  std::string s = scalar(n, field);
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty())
    fail(n, field, "expected an integer, got \"" + s + "\"");
  return v;
}

std::optional<int64_t> opt_int(const YAML::Node& map, const char* key, const std::string& path) {
  YAML::Node n = get(map, key);
  if (!present(n)) return std::nullopt;
  return to_int(n, sub(path, key));
}

std::optional<double> opt_double(const YAML::Node& map, const char* key, const std::string& path) {
  YAML::Node n = get(map, key);
  if (!present(n)) return std::nullopt;
  std::string s = scalar(n, sub(path, key));
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size() || !std::isfinite(v))
    fail(n, sub(path, key), "expected a number, got \"" + s + "\"");
  return v;
}

std::optional<bool> opt_bool(const YAML::Node& map, const char* key, const std::string& path) {
  YAML::Node n = get(map, key);
  if (!present(n)) return std::nullopt;
  std::string s = scalar(n, sub(path, key));
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  fail(n, sub(path, key), "expected true or false, got \"" + s + "\"");
}

// Checks an enum-like value against its allowed spellings (what a CRD enum does).
std::string one_of(const YAML::Node& map, const char* key, const std::string& path,
                   const char* fallback, std::initializer_list<const char*> allowed) {
  YAML::Node n = get(map, key);
  if (!present(n)) return fallback;
  std::string v = scalar(n, sub(path, key));
  for (const char* a : allowed)
    if (v == a) return v;
  fail(n, sub(path, key), "unknown value \"" + v + "\" (want " + join(allowed) + ")");
}

// Calls fn(item, item_path, index) for each element of a sequence field.
template <typename Fn>
void each(const YAML::Node& map, const char* key, const std::string& path, Fn fn) {
  YAML::Node n = get(map, key);
  if (!present(n)) return;
  std::string field = sub(path, key);
  spend(n, field);
  if (!n.IsSequence()) fail(n, field, "expected a list");
  for (size_t i = 0; i < n.size(); ++i) fn(n[i], idx(field, i));
}

std::vector<std::string> str_list(const YAML::Node& map, const char* key, const std::string& path) {
  std::vector<std::string> out;
  each(map, key, path,
       [&](const YAML::Node& item, const std::string& f) { out.push_back(scalar(item, f)); });
  return out;
}

std::map<std::string, std::string> str_map(const YAML::Node& map, const char* key,
                                           const std::string& path) {
  std::map<std::string, std::string> out;
  YAML::Node n = get(map, key);
  std::string field = sub(path, key);
  expect_map(n, field);
  if (!present(n)) return out;
  for (auto it = n.begin(); it != n.end(); ++it) {
    std::string k = scalar(it->first, field);
    out[k] = present(it->second) ? scalar(it->second, field + "." + k) : std::string();
  }
  return out;
}

// ------------------------------------------------------------ metadata

// What the API server enforces for names: RFC 1123 subdomains (names) and
// labels (namespaces), lower-case.
bool is_dns_name(std::string_view s, bool subdomain) {
  if (s.empty() || s.size() > (subdomain ? 253u : 63u)) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    bool edge = i == 0 || i + 1 == s.size() || (subdomain && (s[i - 1] == '.' || s[i + 1] == '.'));
    if (alnum) continue;
    if (edge || !(c == '-' || (subdomain && c == '.'))) return false;
  }
  return true;
}

ObjectMeta decode_meta(const YAML::Node& doc) {
  YAML::Node m = get(doc, "metadata");
  expect_map(m, "metadata");
  if (!present(m)) fail(doc, "metadata", "required");
  ObjectMeta meta;
  meta.name = required_str(m, "name", "metadata");
  if (!is_dns_name(meta.name, true))
    fail(m["name"], "metadata.name",
         "\"" + meta.name + "\" is not a valid name (lower-case RFC 1123 subdomain)");
  if (auto ns = opt_str(m, "namespace", "metadata"); ns && !ns->empty()) {
    if (!is_dns_name(*ns, false))
      fail(m["namespace"], "metadata.namespace",
           "\"" + *ns + "\" is not a valid namespace (lower-case RFC 1123 label)");
    meta.namespace_ = *ns;
  }
  meta.uid = str(m, "uid", "metadata");
  meta.generation = opt_int(m, "generation", "metadata").value_or(0);
  meta.resource_version = str(m, "resourceVersion", "metadata");
  if (auto ts = opt_str(m, "creationTimestamp", "metadata")) {
    auto t = parse_rfc3339(*ts);
    if (!t.ok()) fail(m["creationTimestamp"], "metadata.creationTimestamp", t.error().message);
    meta.creation_timestamp = *t;
  }
  meta.labels = str_map(m, "labels", "metadata");
  meta.annotations = str_map(m, "annotations", "metadata");
  return meta;
}

// ------------------------------------------------------------ GatewayRoute

constexpr std::initializer_list<const char*> kMatchTypes = {"Exact", "RegularExpression"};

GrValueMatch decode_value_match(const YAML::Node& n, const std::string& path) {
  expect_map(n, path);
  GrValueMatch v;
  v.type = one_of(n, "type", path, "Exact", kMatchTypes);
  v.name = required_str(n, "name", path);
  v.value = str(n, "value", path);
  return v;
}

GrMatch decode_match(const YAML::Node& n, const std::string& path) {
  expect_map(n, path);
  GrMatch m;
  YAML::Node p = get(n, "path");
  if (present(p)) {
    std::string pp = sub(path, "path");
    expect_map(p, pp);
    GrPathMatch pm;
    pm.type = one_of(p, "type", pp, "PathPrefix", {"Exact", "PathPrefix", "RegularExpression"});
    pm.value = str(p, "value", pp, "/");
    m.path = pm;
  }
  m.method = opt_str(n, "method", path);
  each(n, "headers", path, [&](const YAML::Node& h, const std::string& f) {
    m.headers.push_back(decode_value_match(h, f));
  });
  each(n, "queryParams", path, [&](const YAML::Node& q, const std::string& f) {
    m.query_params.push_back(decode_value_match(q, f));
  });
  return m;
}

std::vector<GrHeader> decode_headers(const YAML::Node& n, const char* key,
                                     const std::string& path) {
  std::vector<GrHeader> out;
  each(n, key, path, [&](const YAML::Node& h, const std::string& f) {
    expect_map(h, f);
    out.push_back({required_str(h, "name", f), str(h, "value", f)});
  });
  return out;
}

std::optional<GrHeaderModifier> decode_header_modifier(const YAML::Node& n,
                                                       const std::string& path) {
  if (!present(n)) return std::nullopt;
  expect_map(n, path);
  GrHeaderModifier h;
  h.set = decode_headers(n, "set", path);
  h.add = decode_headers(n, "add", path);
  h.remove = str_list(n, "remove", path);
  return h;
}

std::optional<GrPathModifier> decode_path_modifier(const YAML::Node& n, const std::string& path) {
  if (!present(n)) return std::nullopt;
  expect_map(n, path);
  GrPathModifier p;
  p.type = one_of(n, "type", path, "", {"ReplaceFullPath", "ReplacePrefixMatch"});
  if (p.type.empty()) fail(n, sub(path, "type"), "required");
  p.replace_full_path = str(n, "replaceFullPath", path);
  p.replace_prefix_match = str(n, "replacePrefixMatch", path);
  return p;
}

GrBackendRef decode_backend_ref(const YAML::Node& n, const std::string& path) {
  expect_map(n, path);
  GrBackendRef b;
  b.group = str(n, "group", path);
  b.kind = str(n, "kind", path, "Service");
  b.name = required_str(n, "name", path);
  b.namespace_ = opt_str(n, "namespace", path);
  b.port = opt_int(n, "port", path);
  b.weight = opt_int(n, "weight", path);
  return b;
}

// A GatewayRoute's backendRef (in backendRefs, requestMirror, defaultBackend):
// a backendRef with `protocol` and `tls` {hostname, caSecretRef}.
GrBackendRef decode_gateway_route_ref(const YAML::Node& b, const std::string& bp) {
  GrBackendRef ref = decode_backend_ref(b, bp);
  ref.protocol = str(b, "protocol", bp);
  YAML::Node tls = get(b, "tls");
  if (present(tls)) {
    std::string tp = sub(bp, "tls");
    expect_map(tls, tp);
    ref.tls = true;
    ref.tls_hostname = opt_str(tls, "hostname", tp);
    YAML::Node ca = get(tls, "caSecretRef");
    if (present(ca)) {
      expect_map(ca, sub(tp, "caSecretRef"));
      ref.tls_ca_secret_ref = GrSecretKeyRef{required_str(ca, "name", sub(tp, "caSecretRef")),
                                             str(ca, "key", sub(tp, "caSecretRef"), "ca.crt")};
    }
  }
  return ref;
}

std::optional<GrSecretKeyRef> decode_secret_key_ref(const YAML::Node& n, const char* key,
                                                    const std::string& path) {
  YAML::Node r = get(n, key);
  if (!present(r)) return std::nullopt;
  std::string f = sub(path, key);
  expect_map(r, f);
  return GrSecretKeyRef{required_str(r, "name", f), required_str(r, "key", f)};
}

GrFilters decode_filters(const YAML::Node& n, const std::string& path) {
  expect_map(n, path);
  GrFilters out;
  if (!present(n)) return out;
  for (auto it = n.begin(); it != n.end(); ++it) {
    std::string key = scalar(it->first, path);
    const YAML::Node v = it->second;
    std::string f = sub(path, key.c_str());
    if (key == "cors") {
      expect_map(v, f);
      GrCors c;
      c.allow_origins = str_list(v, "allowOrigins", f);
      c.allow_methods = str_list(v, "allowMethods", f);
      c.allow_headers = str_list(v, "allowHeaders", f);
      c.expose_headers = str_list(v, "exposeHeaders", f);
      c.allow_credentials = opt_bool(v, "allowCredentials", f).value_or(false);
      c.max_age = opt_str(v, "maxAge", f);
      out.cors = c;
    } else if (key == "rateLimit") {
      expect_map(v, f);
      GrRateLimit r;
      r.requests = opt_int(v, "requests", f).value_or(0);
      r.interval = opt_str(v, "interval", f);
      r.burst = opt_int(v, "burst", f).value_or(0);
      r.algorithm = one_of(v, "algorithm", f, "TokenBucket", {"TokenBucket", "SlidingWindow"});
      r.key = str(v, "key", f, "ClientIP");
      r.scope = one_of(v, "scope", f, "local", {"local", "global"});
      r.failure_mode = one_of(v, "failureMode", f, "open", {"open", "closed"});
      out.rate_limit = r;
    } else if (key == "maxRequestBodySize") {
      if (present(v)) out.max_request_body_size = scalar(v, f);
    } else if (key == "jwt") {
      expect_map(v, f);
      GrJwt j;
      each(v, "algorithms", f, [&](const YAML::Node& a, const std::string& af) {
        std::string alg = scalar(a, af);
        if (alg != "HS256" && alg != "RS256" && alg != "ES256")
          fail(a, af, "unknown value \"" + alg + "\" (want HS256, RS256, ES256)");
        j.algorithms.push_back(alg);
      });
      j.hmac_secret_ref = decode_secret_key_ref(v, "hmacSecretRef", f);
      j.jwks_secret_ref = decode_secret_key_ref(v, "jwksSecretRef", f);
      j.issuer = str(v, "issuer", f);
      j.audiences = str_list(v, "audiences", f);
      j.clock_skew = opt_str(v, "clockSkew", f);
      each(v, "claimToHeaders", f, [&](const YAML::Node& c, const std::string& cf) {
        expect_map(c, cf);
        j.claims_to_headers.push_back(
            {required_str(c, "claim", cf), required_str(c, "header", cf)});
      });
      out.jwt = j;
    } else if (key == "requestHeaders") {
      out.request_headers = decode_header_modifier(v, f);
    } else if (key == "responseHeaders") {
      out.response_headers = decode_header_modifier(v, f);
    } else if (key == "requestRedirect") {
      expect_map(v, f);
      GrRequestRedirect r;
      YAML::Node scheme = get(v, "scheme");
      if (present(scheme)) r.scheme = one_of(v, "scheme", f, "", {"http", "https"});
      r.hostname = opt_str(v, "hostname", f);
      r.port = opt_int(v, "port", f);
      r.path = decode_path_modifier(get(v, "path"), sub(f, "path"));
      r.status_code = opt_int(v, "statusCode", f);
      out.request_redirect = r;
    } else if (key == "urlRewrite") {
      expect_map(v, f);
      GrUrlRewrite u;
      u.hostname = opt_str(v, "hostname", f);
      u.path = decode_path_modifier(get(v, "path"), sub(f, "path"));
      out.url_rewrite = u;
    } else if (key == "requestMirror") {
      expect_map(v, f);
      YAML::Node ref = get(v, "backendRef");
      if (!present(ref)) fail(v, sub(f, "backendRef"), "required");
      out.request_mirrors.push_back(GrRequestMirror{decode_gateway_route_ref(ref, sub(f, "backendRef"))});
    } else if (key == "cache") {
      expect_map(v, f);
      GrCache c;
      c.ttl = opt_str(v, "ttl", f);
      c.max_bytes = opt_str(v, "maxBytes", f);
      c.max_object_bytes = opt_str(v, "maxObjectBytes", f);
      out.cache = c;
    } else if (key == "apiKey") {
      expect_map(v, f);
      GrApiKey a;
      YAML::Node sel = get(v, "secretSelector");
      if (!present(sel)) fail(v, sub(f, "secretSelector"), "required");
      expect_map(sel, sub(f, "secretSelector"));
      a.match_labels = str_map(sel, "matchLabels", sub(f, "secretSelector"));
      if (a.match_labels.empty()) fail(sel, sub(sub(f, "secretSelector"), "matchLabels"), "required");
      a.header = str(v, "header", f);
      a.query_param = str(v, "queryParam", f);
      a.consumer_header = str(v, "consumerHeader", f, "x-consumer");
      a.unknown_key_status = opt_int(v, "unknownKeyStatus", f);
      out.api_key = a;
    } else if (key == "basicAuth") {
      expect_map(v, f);
      GrBasicAuth b;
      YAML::Node ref = get(v, "secretRef");
      if (!present(ref)) fail(v, sub(f, "secretRef"), "required");
      expect_map(ref, sub(f, "secretRef"));
      b.secret_ref = GrSecretKeyRef{required_str(ref, "name", sub(f, "secretRef")),
                                    str(ref, "key", sub(f, "secretRef"), "auth")};
      b.realm = str(v, "realm", f, "gantry");
      b.consumer_header = str(v, "consumerHeader", f, "x-consumer");
      out.basic_auth = b;
    } else if (key == "extAuth") {
      expect_map(v, f);
      GrExtAuth a;
      a.url = str(v, "url", f);
      YAML::Node grpc = get(v, "grpc");
      if (present(grpc)) {
        std::string g = sub(f, "grpc");
        expect_map(grpc, g);
        a.grpc = true;
        a.grpc_address = str(grpc, "address", g);
        YAML::Node svc = get(grpc, "backendRef");
        if (present(svc)) {
          expect_map(svc, sub(g, "backendRef"));
          a.grpc_service = required_str(svc, "name", sub(g, "backendRef"));
          a.grpc_service_namespace = str(svc, "namespace", sub(g, "backendRef"));
          a.grpc_service_port = opt_int(svc, "port", sub(g, "backendRef"));
        }
        a.grpc_timeout = opt_str(grpc, "timeout", g);
        a.grpc_tls = opt_bool(grpc, "tls", g).value_or(false);
      }
      if (a.url.empty() && !a.grpc) fail(v, sub(f, "url"), "required (or grpc)");
      YAML::Node body = get(v, "withRequestBody");
      if (present(body)) {
        std::string b = sub(f, "withRequestBody");
        expect_map(body, b);
        a.with_body = true;
        a.body_max_bytes = opt_str(body, "maxBytes", b);
        a.body_allow_partial = opt_bool(body, "allowPartialMessage", b).value_or(false);
      }
      YAML::Node ca = get(v, "caSecretRef");
      if (present(ca)) {
        expect_map(ca, sub(f, "caSecretRef"));
        a.ca_secret_ref = GrSecretKeyRef{required_str(ca, "name", sub(f, "caSecretRef")),
                                         str(ca, "key", sub(f, "caSecretRef"), "ca.crt")};
      }
      a.method = str(v, "method", f);
      if (present(get(v, "requestHeaders"))) a.request_headers = str_list(v, "requestHeaders", f);
      a.response_headers = str_list(v, "responseHeaders", f);
      a.signin_url = str(v, "signinURL", f);
      a.signin_redirect_param = str(v, "signinRedirectParam", f, "rd");
      a.timeout = opt_str(v, "timeout", f);
      a.fail_open = opt_bool(v, "failOpen", f).value_or(false);
      a.status_on_error = opt_int(v, "statusOnError", f);
      YAML::Node cache = get(v, "cache");
      if (present(cache)) {
        expect_map(cache, sub(f, "cache"));
        a.cache_ttl = opt_str(cache, "ttl", sub(f, "cache"));
        if (!a.cache_ttl) fail(cache, sub(sub(f, "cache"), "ttl"), "required");
        a.cache_max_entries = opt_int(cache, "maxEntries", sub(f, "cache"));
      }
      out.ext_auth = a;
    } else if (key == "transform") {
      expect_map(v, f);
      GrTransform t;
      t.backend = str(v, "backend", f);
      t.request = opt_bool(v, "request", f);
      t.response = opt_bool(v, "response", f);
      t.max_body_size = opt_str(v, "maxBodySize", f);
      t.root_element = opt_str(v, "rootElement", f);
      t.item_element = opt_str(v, "itemElement", f);
      out.transform = t;
    } else if (key == "grpcWeb") {
      expect_map(v, f);
      out.grpc_web = opt_bool(v, "enabled", f).value_or(true);
    } else if (key == "connectionLimit") {
      expect_map(v, f);
      GrConnectionLimit c;
      c.per_client_ip = opt_int(v, "perClientIP", f);
      if (!c.per_client_ip) fail(v, sub(f, "perClientIP"), "required");
      c.status_code = opt_int(v, "statusCode", f);
      c.exempt_sources = str_list(v, "exemptSources", f);
      out.connection_limit = c;
    } else if (key == "defaultBackend") {
      expect_map(v, f);
      GrDefaultBackend d;
      YAML::Node ref = get(v, "backendRef");
      if (!present(ref)) fail(v, sub(f, "backendRef"), "required");
      d.backend_ref = decode_gateway_route_ref(ref, sub(f, "backendRef"));
      each(v, "interceptStatuses", f, [&](const YAML::Node& s, const std::string& sf) {
        d.intercept_statuses.push_back(to_int(s, sf));
      });
      out.default_backend = d;
    } else if (key == "ipAllow") {
      out.ip_allow = str_list(n, "ipAllow", path);
    } else if (key == "ipDeny") {
      out.ip_deny = str_list(n, "ipDeny", path);
    } else {
      out.unknown.push_back(key);
    }
  }
  return out;
}

GrPolicy decode_policy(const YAML::Node& n, const std::string& path) {
  expect_map(n, path);
  GrPolicy out;
  if (!present(n)) return out;
  for (auto it = n.begin(); it != n.end(); ++it) {
    std::string key = scalar(it->first, path);
    const YAML::Node v = it->second;
    std::string f = sub(path, key.c_str());
    expect_map(v, f);
    if (key == "loadBalancer") {
      GrLoadBalancer lb;
      lb.type = one_of(v, "type", f, "RoundRobin",
                       {"RoundRobin", "LeastRequest", "Random", "ConsistentHash"});
      YAML::Node ch = get(v, "consistentHash");
      if (present(ch)) {
        std::string cf = sub(f, "consistentHash");
        expect_map(ch, cf);
        GrConsistentHash h;
        h.type = one_of(ch, "type", cf, "", {"Header", "Cookie", "SourceIP"});
        if (h.type.empty()) fail(ch, sub(cf, "type"), "required");
        YAML::Node hdr = get(ch, "header");
        expect_map(hdr, sub(cf, "header"));
        h.header_name = str(hdr, "name", sub(cf, "header"));
        YAML::Node cookie = get(ch, "cookie");
        expect_map(cookie, sub(cf, "cookie"));
        h.cookie_name = str(cookie, "name", sub(cf, "cookie"));
        h.cookie_ttl = opt_str(cookie, "ttl", sub(cf, "cookie"));
        h.cookie_path = opt_str(cookie, "path", sub(cf, "cookie"));
        h.cookie_domain = opt_str(cookie, "domain", sub(cf, "cookie"));
        h.cookie_secure = one_of(cookie, "secure", sub(cf, "cookie"), "Never", {"Never", "Always", "OverTLS"});
        h.cookie_same_site = opt_str(cookie, "sameSite", sub(cf, "cookie"));
        h.cookie_same_site_none_if_compatible =
            opt_bool(cookie, "sameSiteNoneIfCompatible", sub(cf, "cookie")).value_or(false);
        lb.consistent_hash = h;
      }
      out.load_balancer = lb;
    } else if (key == "healthCheck") {
      GrHealthCheck h;
      h.path = opt_str(v, "path", f);
      h.interval = opt_str(v, "interval", f);
      h.timeout = opt_str(v, "timeout", f);
      h.healthy_threshold = opt_int(v, "healthyThreshold", f);
      h.unhealthy_threshold = opt_int(v, "unhealthyThreshold", f);
      each(v, "expectedStatuses", f, [&](const YAML::Node& s, const std::string& sf) {
        h.expected_statuses.push_back(to_int(s, sf));
      });
      if (YAML::Node g = get(v, "grpc")) h.grpc_service = opt_str(g, "service", sub(f, "grpc")).value_or("");
      out.health_check = h;
    } else if (key == "outlierDetection") {
      GrOutlierDetection o;
      o.consecutive_5xx = opt_int(v, "consecutive5xx", f);
      o.consecutive_connect_failures = opt_int(v, "consecutiveConnectFailures", f);
      o.base_ejection_time = opt_str(v, "baseEjectionTime", f);
      o.max_ejection_percent = opt_int(v, "maxEjectionPercent", f);
      out.outlier_detection = o;
    } else if (key == "circuitBreaker") {
      GrCircuitBreaker c;
      c.consecutive_failures = opt_int(v, "consecutiveFailures", f);
      c.failure_ratio = opt_double(v, "failureRatio", f);
      c.window = opt_str(v, "window", f);
      c.min_requests = opt_int(v, "minRequests", f);
      c.open_duration = opt_str(v, "openDuration", f);
      c.half_open_requests = opt_int(v, "halfOpenRequests", f);
      c.max_connections = opt_int(v, "maxConnections", f);
      c.max_pending_requests = opt_int(v, "maxPendingRequests", f);
      out.circuit_breaker = c;
    } else if (key == "timeouts") {
      GrTimeouts t;
      t.request = opt_str(v, "request", f);
      t.backend_request = opt_str(v, "backendRequest", f);
      t.idle = opt_str(v, "idle", f);
      out.timeouts = t;
    } else if (key == "retry") {
      GrRetry r;
      r.attempts = opt_int(v, "attempts", f);
      r.on = str_list(v, "on", f);
      r.per_try_timeout = opt_str(v, "perTryTimeout", f);
      YAML::Node b = get(v, "backoff");
      expect_map(b, sub(f, "backoff"));
      r.backoff_base = opt_str(b, "base", sub(f, "backoff"));
      r.backoff_max = opt_str(b, "max", sub(f, "backoff"));
      out.retry = r;
    } else if (key == "tracing") {
      GrTracing t;
      t.sampling = opt_double(v, "sampling", f);
      out.tracing = t;
    } else {
      out.unknown.push_back(key);
    }
  }
  return out;
}

GatewayRoute decode_gateway_route(const YAML::Node& doc) {
  GatewayRoute r;
  r.meta = decode_meta(doc);
  YAML::Node spec = get(doc, "spec");
  expect_map(spec, "spec");
  r.hostnames = str_list(spec, "hostnames", "spec");
  YAML::Node tls = get(spec, "tls");
  expect_map(tls, "spec.tls");
  r.tls_secret_name = opt_str(tls, "secretName", "spec.tls");
  each(spec, "rules", "spec", [&](const YAML::Node& rn, const std::string& rp) {
    expect_map(rn, rp);
    GrRule rule;
    each(rn, "matches", rp, [&](const YAML::Node& m, const std::string& mp) {
      rule.matches.push_back(decode_match(m, mp));
    });
    rule.filters = decode_filters(get(rn, "filters"), sub(rp, "filters"));
    each(rn, "backendRefs", rp, [&](const YAML::Node& b, const std::string& bp) {
      rule.backend_refs.push_back(decode_gateway_route_ref(b, bp));
    });
    rule.policy = decode_policy(get(rn, "policy"), sub(rp, "policy"));
    r.rules.push_back(std::move(rule));
  });
  return r;
}

// ------------------------------------------------------------ core kinds

Service decode_service(const YAML::Node& doc) {
  Service s;
  s.meta = decode_meta(doc);
  YAML::Node spec = get(doc, "spec");
  expect_map(spec, "spec");
  s.type = one_of(spec, "type", "spec", "ClusterIP",
                  {"ClusterIP", "NodePort", "LoadBalancer", "ExternalName"});
  each(spec, "ports", "spec", [&](const YAML::Node& p, const std::string& pp) {
    expect_map(p, pp);
    ServicePort port;
    port.name = str(p, "name", pp);
    auto number = opt_int(p, "port", pp);
    if (!number) fail(p, sub(pp, "port"), "required");
    port.port = *number;
    YAML::Node tp = get(p, "targetPort");
    if (present(tp)) {
      std::string t = scalar(tp, sub(pp, "targetPort"));
      int64_t v = 0;
      auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
      if (ec == std::errc() && end == t.data() + t.size())
        port.target_port.number = v;
      else
        port.target_port.name = t;
    }
    port.protocol = one_of(p, "protocol", pp, "TCP", {"TCP", "UDP", "SCTP"});
    port.app_protocol = str(p, "appProtocol", pp);
    s.ports.push_back(port);
  });
  s.selector = str_map(spec, "selector", "spec");
  s.cluster_ip = str(spec, "clusterIP", "spec");
  s.external_ips = str_list(spec, "externalIPs", "spec");
  YAML::Node status = get(doc, "status");
  if (present(status) && status.IsMap()) {
    YAML::Node lb = get(status, "loadBalancer");
    if (present(lb) && lb.IsMap()) {
      YAML::Node ing = get(lb, "ingress");
      if (present(ing) && ing.IsSequence())
        for (const auto& i : ing) {
          if (!i.IsMap()) continue;
          for (const char* f : {"ip", "hostname"})
            if (YAML::Node v = get(i, f); present(v) && v.IsScalar()) {
              s.load_balancer_ingress.push_back(v.as<std::string>());
              break;
            }
        }
    }
  }
  return s;
}

EndpointSlice decode_endpoint_slice(const YAML::Node& doc) {
  EndpointSlice e;
  e.meta = decode_meta(doc);
  e.address_type = one_of(doc, "addressType", "", "IPv4", {"IPv4", "IPv6", "FQDN"});
  each(doc, "ports", "", [&](const YAML::Node& p, const std::string& pp) {
    expect_map(p, pp);
    EndpointSlicePort port;
    port.name = str(p, "name", pp);
    port.port = opt_int(p, "port", pp);
    port.protocol = one_of(p, "protocol", pp, "TCP", {"TCP", "UDP", "SCTP"});
    e.ports.push_back(port);
  });
  each(doc, "endpoints", "", [&](const YAML::Node& ep, const std::string& epp) {
    expect_map(ep, epp);
    SliceEndpoint out;
    out.addresses = str_list(ep, "addresses", epp);
    YAML::Node c = get(ep, "conditions");
    std::string cp = sub(epp, "conditions");
    expect_map(c, cp);
    out.conditions.ready = opt_bool(c, "ready", cp);
    out.conditions.serving = opt_bool(c, "serving", cp);
    out.conditions.terminating = opt_bool(c, "terminating", cp);
    e.endpoints.push_back(out);
  });
  return e;
}

Secret decode_secret(const YAML::Node& doc) {
  Secret s;
  s.meta = decode_meta(doc);
  s.type = str(doc, "type", "", "Opaque");
  for (auto& [k, v] : str_map(doc, "data", "")) {
    auto bytes = decode_base64(v);
    if (!bytes.ok()) fail(doc["data"][k], "data." + k, bytes.error().message);
    s.data[k] = *bytes;
  }
  for (auto& [k, v] : str_map(doc, "stringData", "")) s.data[k] = v;
  return s;
}

IngressBackend decode_ingress_backend(const YAML::Node& n, const std::string& path) {
  expect_map(n, path);
  IngressBackend b;
  YAML::Node svc = get(n, "service");
  if (!present(svc)) {
    if (!present(get(n, "resource"))) fail(n, sub(path, "service"), "required");
    return b;  // a resource backend: translate reports it as unsupported
  }
  std::string sp = sub(path, "service");
  expect_map(svc, sp);
  b.service_name = required_str(svc, "name", sp);
  YAML::Node port = get(svc, "port");
  std::string pp = sub(sp, "port");
  expect_map(port, pp);
  b.port_number = opt_int(port, "number", pp);
  b.port_name = str(port, "name", pp);
  if (!b.port_number && b.port_name.empty()) fail(svc, pp, "required (number or name)");
  return b;
}

Ingress decode_ingress(const YAML::Node& doc) {
  Ingress ing;
  ing.meta = decode_meta(doc);
  YAML::Node spec = get(doc, "spec");
  expect_map(spec, "spec");
  ing.ingress_class_name = opt_str(spec, "ingressClassName", "spec");
  YAML::Node def = get(spec, "defaultBackend");
  if (present(def)) ing.default_backend = decode_ingress_backend(def, "spec.defaultBackend");
  each(spec, "rules", "spec", [&](const YAML::Node& rn, const std::string& rp) {
    expect_map(rn, rp);
    IngressRule rule;
    rule.host = str(rn, "host", rp);
    YAML::Node http = get(rn, "http");
    std::string hp = sub(rp, "http");
    expect_map(http, hp);
    each(http, "paths", hp, [&](const YAML::Node& pn, const std::string& pp) {
      expect_map(pn, pp);
      IngressPath path;
      path.path = str(pn, "path", pp);
      path.path_type = one_of(pn, "pathType", pp, "ImplementationSpecific",
                              {"Exact", "Prefix", "ImplementationSpecific"});
      YAML::Node b = get(pn, "backend");
      if (!present(b)) fail(pn, sub(pp, "backend"), "required");
      path.backend = decode_ingress_backend(b, sub(pp, "backend"));
      rule.paths.push_back(path);
    });
    ing.rules.push_back(rule);
  });
  each(spec, "tls", "spec", [&](const YAML::Node& tn, const std::string& tp) {
    expect_map(tn, tp);
    ing.tls.push_back({str_list(tn, "hosts", tp), str(tn, "secretName", tp)});
  });
  return ing;
}

// ------------------------------------------------------------ Gateway API

GatewayClass decode_gateway_class(const YAML::Node& doc) {
  GatewayClass c;
  c.meta = decode_meta(doc);
  YAML::Node spec = get(doc, "spec");
  expect_map(spec, "spec");
  c.controller_name = required_str(spec, "controllerName", "spec");
  return c;
}

ConfigMap decode_config_map(const YAML::Node& doc) {
  ConfigMap c;
  c.meta = decode_meta(doc);
  auto data = str_map(doc, "data", "");
  if (auto it = data.find("ca.crt"); it != data.end()) c.data.emplace(it->first, std::move(it->second));
  return c;
}

Namespace decode_namespace(const YAML::Node& doc) {
  Namespace n;
  n.meta = decode_meta(doc);
  return n;
}

LabelSelector decode_label_selector(const YAML::Node& n, const std::string& path) {
  expect_map(n, path);
  LabelSelector sel;
  sel.match_labels = str_map(n, "matchLabels", path);
  each(n, "matchExpressions", path, [&](const YAML::Node& e, const std::string& ep) {
    expect_map(e, ep);
    LabelSelectorRequirement r;
    r.key = required_str(e, "key", ep);
    r.op = one_of(e, "operator", ep, "", {"In", "NotIn", "Exists", "DoesNotExist"});
    if (r.op.empty()) fail(e, sub(ep, "operator"), "required");
    r.values = str_list(e, "values", ep);
    sel.match_expressions.push_back(std::move(r));
  });
  return sel;
}

// A Gateway API SecretObjectReference-like reference (group, kind, name,
// namespace); `default_kind` null: the kind is required.
GwObjectRef decode_object_ref(const YAML::Node& c, const std::string& cp, const char* default_kind) {
  expect_map(c, cp);
  GwObjectRef r;
  r.group = str(c, "group", cp);
  r.kind = default_kind ? str(c, "kind", cp, default_kind) : required_str(c, "kind", cp);
  r.name = required_str(c, "name", cp);
  r.namespace_ = opt_str(c, "namespace", cp);
  return r;
}

// One listener of a Gateway's spec.listeners or a ListenerSet's (the same shape).
GwListener decode_listener(const YAML::Node& ln, const std::string& lp) {
  expect_map(ln, lp);
  GwListener l;
  l.name = required_str(ln, "name", lp);
  l.hostname = opt_str(ln, "hostname", lp);
  l.port = opt_int(ln, "port", lp).value_or(0);
  l.protocol = required_str(ln, "protocol", lp);
  YAML::Node tls = get(ln, "tls");
  if (present(tls)) {
    std::string tp = sub(lp, "tls");
    expect_map(tls, tp);
    l.tls_mode = one_of(tls, "mode", tp, "Terminate", {"Terminate", "Passthrough"});
    each(tls, "certificateRefs", tp, [&](const YAML::Node& c, const std::string& cp) {
      l.certificate_refs.push_back(decode_object_ref(c, cp, "Secret"));
    });
  }
  YAML::Node ar = get(ln, "allowedRoutes");
  if (present(ar)) {
    std::string ap = sub(lp, "allowedRoutes");
    expect_map(ar, ap);
    YAML::Node ns = get(ar, "namespaces");
    if (present(ns)) {
      std::string np = sub(ap, "namespaces");
      expect_map(ns, np);
      l.allowed_from = one_of(ns, "from", np, "Same", {"All", "Same", "Selector"});
      YAML::Node sel = get(ns, "selector");
      if (present(sel)) l.allowed_selector = decode_label_selector(sel, sub(np, "selector"));
    }
    YAML::Node kinds = get(ar, "kinds");
    if (present(kinds)) {
      std::vector<GwGroupKind> ks;
      each(ar, "kinds", ap, [&](const YAML::Node& k, const std::string& kp) {
        expect_map(k, kp);
        ks.push_back({str(k, "group", kp, kGatewayGroup), required_str(k, "kind", kp)});
      });
      l.allowed_kinds = std::move(ks);
    }
  }
  return l;
}

Gateway decode_gateway(const YAML::Node& doc) {
  Gateway g;
  g.meta = decode_meta(doc);
  YAML::Node spec = get(doc, "spec");
  expect_map(spec, "spec");
  g.gateway_class_name = required_str(spec, "gatewayClassName", "spec");
  each(spec, "listeners", "spec", [&](const YAML::Node& ln, const std::string& lp) {
    g.listeners.push_back(decode_listener(ln, lp));
  });
  YAML::Node al = get(spec, "allowedListeners");
  if (present(al)) {
    expect_map(al, "spec.allowedListeners");
    YAML::Node ns = get(al, "namespaces");
    if (present(ns)) {
      const std::string np = "spec.allowedListeners.namespaces";
      expect_map(ns, np);
      g.allowed_listeners_from = one_of(ns, "from", np, "None", {"All", "Same", "Selector", "None"});
      YAML::Node sel = get(ns, "selector");
      if (present(sel)) g.allowed_listeners_selector = decode_label_selector(sel, sub(np, "selector"));
    }
  }
  each(spec, "addresses", "spec", [&](const YAML::Node& a, const std::string& ap) {
    expect_map(a, ap);
    g.addresses.push_back({str(a, "type", ap, "IPAddress"), str(a, "value", ap)});
  });
  YAML::Node infra = get(spec, "infrastructure");
  if (present(infra)) {
    expect_map(infra, "spec.infrastructure");
    g.infrastructure_labels = str_map(infra, "labels", "spec.infrastructure");
    g.infrastructure_annotations = str_map(infra, "annotations", "spec.infrastructure");
    YAML::Node pr = get(infra, "parametersRef");
    if (present(pr)) g.infrastructure_parameters_ref = decode_object_ref(pr, "spec.infrastructure.parametersRef", nullptr);
  }
  YAML::Node gtls = get(spec, "tls");
  if (present(gtls)) {
    expect_map(gtls, "spec.tls");
    YAML::Node backend = get(gtls, "backend");
    if (present(backend)) {
      expect_map(backend, "spec.tls.backend");
      YAML::Node c = get(backend, "clientCertificateRef");
      if (present(c))
        g.backend_client_certificate =
            decode_object_ref(c, "spec.tls.backend.clientCertificateRef", "Secret");
    }
    YAML::Node fe = get(gtls, "frontend");
    if (present(fe)) {
      expect_map(fe, "spec.tls.frontend");
      // A TLSConfig: its validation, if any.
      auto validation = [&](const YAML::Node& tc, const std::string& tp) {
        std::optional<GwFrontendValidation> out;
        expect_map(tc, tp);
        YAML::Node v = get(tc, "validation");
        if (!present(v)) return out;
        std::string vp = sub(tp, "validation");
        expect_map(v, vp);
        GwFrontendValidation fv;
        each(v, "caCertificateRefs", vp, [&](const YAML::Node& c, const std::string& cp) {
          fv.ca_certificate_refs.push_back(decode_object_ref(c, cp, nullptr));
        });
        fv.mode = one_of(v, "mode", vp, "AllowValidOnly", {"AllowValidOnly", "AllowInsecureFallback"});
        out = std::move(fv);
        return out;
      };
      GwFrontendTls f;
      YAML::Node def = get(fe, "default");
      if (present(def)) f.default_validation = validation(def, "spec.tls.frontend.default");
      each(fe, "perPort", "spec.tls.frontend", [&](const YAML::Node& pp, const std::string& ppp) {
        expect_map(pp, ppp);
        int64_t port = opt_int(pp, "port", ppp).value_or(0);
        YAML::Node tc = get(pp, "tls");
        f.per_port[port] = present(tc) ? validation(tc, sub(ppp, "tls")) : std::nullopt;
      });
      g.frontend_tls = std::move(f);
    }
  }
  // The address gantry gave it (kept while it stays free: addresses do not move).
  YAML::Node status = get(doc, "status");
  if (present(status) && status.IsMap()) {
    YAML::Node addrs = get(status, "addresses");
    if (present(addrs) && addrs.IsSequence())
      for (const auto& a : addrs)
        if (a.IsMap() && present(get(a, "value")) && get(a, "value").IsScalar())
          g.status_addresses.push_back(get(a, "value").as<std::string>());
  }
  return g;
}

ListenerSet decode_listener_set(const YAML::Node& doc) {
  ListenerSet ls;
  ls.meta = decode_meta(doc);
  YAML::Node spec = get(doc, "spec");
  expect_map(spec, "spec");
  YAML::Node p = get(spec, "parentRef");
  if (!present(p)) fail(spec, "spec.parentRef", "required");
  expect_map(p, "spec.parentRef");
  ls.parent_group = str(p, "group", "spec.parentRef", kGatewayGroup);
  ls.parent_kind = str(p, "kind", "spec.parentRef", "Gateway");
  ls.parent_namespace = opt_str(p, "namespace", "spec.parentRef");
  ls.parent_name = required_str(p, "name", "spec.parentRef");
  each(spec, "listeners", "spec", [&](const YAML::Node& ln, const std::string& lp) {
    ls.listeners.push_back(decode_listener(ln, lp));
  });
  return ls;
}

// One entry of an HTTPRoute rule's `filters` list, into the GatewayRoute
// filter model; a type gantry does not implement goes to `unknown`.
void decode_http_filter(const YAML::Node& n, const std::string& f, GrFilters& out) {
  expect_map(n, f);
  std::string type = required_str(n, "type", f);
  if (type == "RequestHeaderModifier") {
    out.request_headers = decode_header_modifier(get(n, "requestHeaderModifier"),
                                                 sub(f, "requestHeaderModifier"));
    if (!out.request_headers) out.request_headers = GrHeaderModifier{};
  } else if (type == "ResponseHeaderModifier") {
    out.response_headers = decode_header_modifier(get(n, "responseHeaderModifier"),
                                                  sub(f, "responseHeaderModifier"));
    if (!out.response_headers) out.response_headers = GrHeaderModifier{};
  } else if (type == "RequestRedirect") {
    YAML::Node v = get(n, "requestRedirect");
    std::string vf = sub(f, "requestRedirect");
    expect_map(v, vf);
    GrRequestRedirect r;
    if (present(get(v, "scheme"))) r.scheme = one_of(v, "scheme", vf, "", {"http", "https"});
    r.hostname = opt_str(v, "hostname", vf);
    r.port = opt_int(v, "port", vf);
    r.path = decode_path_modifier(get(v, "path"), sub(vf, "path"));
    r.status_code = opt_int(v, "statusCode", vf);
    if (!r.status_code) r.status_code = 302;  // the API's default
    out.request_redirect = r;
  } else if (type == "URLRewrite") {
    YAML::Node v = get(n, "urlRewrite");
    std::string vf = sub(f, "urlRewrite");
    expect_map(v, vf);
    GrUrlRewrite u;
    u.hostname = opt_str(v, "hostname", vf);
    u.path = decode_path_modifier(get(v, "path"), sub(vf, "path"));
    out.url_rewrite = u;
  } else if (type == "RequestMirror") {
    YAML::Node v = get(n, "requestMirror");
    std::string vf = sub(f, "requestMirror");
    expect_map(v, vf);
    YAML::Node ref = get(v, "backendRef");
    if (!present(ref)) fail(v, sub(vf, "backendRef"), "required");
    GrRequestMirror m{decode_backend_ref(ref, sub(vf, "backendRef"))};
    m.percent = opt_int(v, "percent", vf);
    YAML::Node fr = get(v, "fraction");
    if (present(fr)) {
      std::string fp = sub(vf, "fraction");
      expect_map(fr, fp);
      m.fraction_numerator = opt_int(fr, "numerator", fp);
      if (!m.fraction_numerator) fail(fr, sub(fp, "numerator"), "required");
      m.fraction_denominator = opt_int(fr, "denominator", fp);
    }
    out.request_mirrors.push_back(std::move(m));
  } else if (type == "CORS") {
    YAML::Node v = get(n, "cors");
    std::string vf = sub(f, "cors");
    expect_map(v, vf);
    GrCors c;
    c.allow_origins = str_list(v, "allowOrigins", vf);
    c.allow_methods = str_list(v, "allowMethods", vf);
    c.allow_headers = str_list(v, "allowHeaders", vf);
    c.expose_headers = str_list(v, "exposeHeaders", vf);
    c.allow_credentials = opt_bool(v, "allowCredentials", vf).value_or(false);
    // Whole seconds here (a duration string in GatewayRoute); the API's default is 5.
    std::string age = std::to_string(opt_int(v, "maxAge", vf).value_or(5));
    age += 's';
    c.max_age = age;
    out.cors = c;
  } else {
    out.unknown.push_back(type);  // CORS, ExtensionRef, ...: reported on the route
  }
}

// A backendRef's `filters` (HTTPRoute and GRPCRoute alike): the header
// modifiers go to the ref; any other type (RequestMirror, ExtensionRef, ...)
// is reported on the route, never ignored.
void decode_backend_filters(const YAML::Node& b, const std::string& bp, GrBackendRef& ref,
                            GrFilters& rule_filters) {
  each(b, "filters", bp, [&](const YAML::Node& fn, const std::string& fp) {
    expect_map(fn, fp);
    std::string type = required_str(fn, "type", fp);
    if (type == "RequestHeaderModifier") {
      ref.request_headers = decode_header_modifier(get(fn, "requestHeaderModifier"),
                                                   sub(fp, "requestHeaderModifier"));
      if (!ref.request_headers) ref.request_headers = GrHeaderModifier{};
    } else if (type == "ResponseHeaderModifier") {
      ref.response_headers = decode_header_modifier(get(fn, "responseHeaderModifier"),
                                                    sub(fp, "responseHeaderModifier"));
      if (!ref.response_headers) ref.response_headers = GrHeaderModifier{};
    } else {
      rule_filters.unknown.push_back(type + " on a backendRef");
    }
  });
}

// spec.parentRefs and spec.hostnames, the same in HTTPRoute and GRPCRoute.
void decode_route_parents(const YAML::Node& spec, HTTPRoute& r) {
  each(spec, "parentRefs", "spec", [&](const YAML::Node& pn, const std::string& pp) {
    expect_map(pn, pp);
    GwParentRef ref;
    ref.group = str(pn, "group", pp, kGatewayGroup);
    ref.kind = str(pn, "kind", pp, "Gateway");
    ref.namespace_ = opt_str(pn, "namespace", pp);
    ref.name = required_str(pn, "name", pp);
    ref.section_name = opt_str(pn, "sectionName", pp);
    ref.port = opt_int(pn, "port", pp);
    r.parent_refs.push_back(std::move(ref));
  });
  r.hostnames = str_list(spec, "hostnames", "spec");
}

HTTPRoute decode_http_route(const YAML::Node& doc) {
  HTTPRoute r;
  r.meta = decode_meta(doc);
  YAML::Node spec = get(doc, "spec");
  expect_map(spec, "spec");
  decode_route_parents(spec, r);
  each(spec, "rules", "spec", [&](const YAML::Node& rn, const std::string& rp) {
    expect_map(rn, rp);
    GrRule rule;
    each(rn, "matches", rp, [&](const YAML::Node& m, const std::string& mp) {
      rule.matches.push_back(decode_match(m, mp));
    });
    each(rn, "filters", rp, [&](const YAML::Node& fn, const std::string& fp) {
      decode_http_filter(fn, fp, rule.filters);
    });
    each(rn, "backendRefs", rp, [&](const YAML::Node& b, const std::string& bp) {
      GrBackendRef ref = decode_backend_ref(b, bp);
      if (!ref.weight) ref.weight = 1;  // the API's default
      decode_backend_filters(b, bp, ref, rule.filters);
      rule.backend_refs.push_back(std::move(ref));
    });
    YAML::Node t = get(rn, "timeouts");
    if (present(t)) {
      std::string tp = sub(rp, "timeouts");
      expect_map(t, tp);
      GrTimeouts to;
      to.request = opt_str(t, "request", tp);
      to.backend_request = opt_str(t, "backendRequest", tp);
      // Gateway API: a zero duration ("0s") disables the timeout. The rule
      // then has none (a try is still bounded by the proxy's --upstream-timeout).
      auto zero = [](const std::optional<std::string>& d) {
        return d && !d->empty() && d->find_first_not_of("0.") == d->find_first_of("hmsu");
      };
      if (zero(to.request)) to.request.reset();
      if (zero(to.backend_request)) to.backend_request.reset();
      if (to.request || to.backend_request) rule.policy.timeouts = to;
    }
    YAML::Node rt = get(rn, "retry");
    if (present(rt)) {
      // HTTPRoute retry (experimental channel): `attempts` retries (the
      // first try not counted) on the listed `codes`, and on connection
      // errors (connect failure, reset, a backendRequest timeout: what
      // HTTPRouteRetryConnectionError and ...BackendTimeout name); `backoff`
      // is the least wait between tries.
      std::string tp = sub(rp, "retry");
      expect_map(rt, tp);
      GrRetry retry;
      retry.attempts = opt_int(rt, "attempts", tp).value_or(1);
      retry.on = {"connect-failure", "reset"};
      each(rt, "codes", tp, [&](const YAML::Node& c, const std::string& cp) {
        if (!c.IsScalar()) fail(c, cp, "expected a status code");
        retry.on.push_back(c.Scalar());
      });
      retry.backoff_min = opt_str(rt, "backoff", tp);
      rule.policy.retry = std::move(retry);
    }
    if (present(get(rn, "sessionPersistence"))) rule.policy.unknown.push_back("sessionPersistence");
    r.rules.push_back(std::move(rule));
  });
  return r;
}

// Regex text that matches `s` literally (ECMAScript and RE2 alike).
std::string regex_quote(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (std::string_view("\\^$.|?*+()[]{}/").find(c) != std::string_view::npos) out += '\\';
    out += c;
  }
  return out;
}

// A GRPCRoute method match as the path match it is: gRPC calls are requests
// for `/<service>/<method>`. Exact with both: the path exactly; Exact with one
// of them, or RegularExpression: a regular expression over the whole path, an
// omitted part matching any one segment.
GrPathMatch grpc_method_path(const YAML::Node& n, const std::string& path) {
  expect_map(n, path);
  std::string type = one_of(n, "type", path, "Exact", {"Exact", "RegularExpression"});
  std::optional<std::string> service = opt_str(n, "service", path);
  std::optional<std::string> method = opt_str(n, "method", path);
  if (service && service->empty()) service.reset();
  if (method && method->empty()) method.reset();
  if (!service && !method) fail(n, path, "one or both of service and method must be set");
  if (type == "Exact") {
    for (const auto* v : {&service, &method})
      if (*v && (*v)->find('/') != std::string::npos)
        fail(n, path, "an Exact service or method must not contain '/'");
    if (service && method) return {"Exact", "/" + *service + "/" + *method};
  }
  auto part = [&](const std::optional<std::string>& v) {
    if (!v) return std::string("[^/]+");
    return type == "Exact" ? regex_quote(*v) : "(" + *v + ")";
  };
  // Service characters first, then method characters (each at most 1024, the CRD's limit).
  auto chars = [](const std::optional<std::string>& v) {
    return static_cast<int32_t>(std::min<size_t>(v ? v->size() : 0, 1024));
  };
  // Appends, not `"/" + std::string&&` (GCC 12 -O3 false -Wrestrict, PR 105329).
  std::string re = "/";
  re.append(part(service)).append("/").append(part(method));
  return {"RegularExpression", std::move(re), chars(service) * 2048 + chars(method)};
}

GRPCRoute decode_grpc_route(const YAML::Node& doc) {
  GRPCRoute r;
  r.meta = decode_meta(doc);
  YAML::Node spec = get(doc, "spec");
  expect_map(spec, "spec");
  decode_route_parents(spec, r);
  each(spec, "rules", "spec", [&](const YAML::Node& rn, const std::string& rp) {
    expect_map(rn, rp);
    GrRule rule;
    each(rn, "matches", rp, [&](const YAML::Node& m, const std::string& mp) {
      expect_map(m, mp);
      GrMatch match;
      YAML::Node method = get(m, "method");
      if (present(method)) match.path = grpc_method_path(method, sub(mp, "method"));
      each(m, "headers", mp, [&](const YAML::Node& h, const std::string& f) {
        match.headers.push_back(decode_value_match(h, f));
      });
      rule.matches.push_back(std::move(match));
    });
    each(rn, "filters", rp, [&](const YAML::Node& fn, const std::string& fp) {
      expect_map(fn, fp);
      std::string type = required_str(fn, "type", fp);
      if (type == "RequestHeaderModifier" || type == "ResponseHeaderModifier" ||
          type == "RequestMirror")
        decode_http_filter(fn, fp, rule.filters);
      else
        rule.filters.unknown.push_back(type);  // ExtensionRef, ...: reported on the route
    });
    each(rn, "backendRefs", rp, [&](const YAML::Node& b, const std::string& bp) {
      GrBackendRef ref = decode_backend_ref(b, bp);
      if (!ref.weight) ref.weight = 1;  // the API's default
      decode_backend_filters(b, bp, ref, rule.filters);
      rule.backend_refs.push_back(std::move(ref));
    });
    if (present(get(rn, "sessionPersistence"))) rule.policy.unknown.push_back("sessionPersistence");
    r.rules.push_back(std::move(rule));
  });
  return r;
}

ReferenceGrant decode_reference_grant(const YAML::Node& doc) {
  ReferenceGrant g;
  g.meta = decode_meta(doc);
  YAML::Node spec = get(doc, "spec");
  expect_map(spec, "spec");
  each(spec, "from", "spec", [&](const YAML::Node& n, const std::string& p) {
    expect_map(n, p);
    g.from.push_back({str(n, "group", p), required_str(n, "kind", p), required_str(n, "namespace", p)});
  });
  each(spec, "to", "spec", [&](const YAML::Node& n, const std::string& p) {
    expect_map(n, p);
    g.to.push_back({str(n, "group", p), required_str(n, "kind", p), opt_str(n, "name", p)});
  });
  return g;
}

BackendTLSPolicy decode_backend_tls_policy(const YAML::Node& doc) {
  BackendTLSPolicy p;
  p.meta = decode_meta(doc);
  YAML::Node spec = get(doc, "spec");
  expect_map(spec, "spec");
  each(spec, "targetRefs", "spec", [&](const YAML::Node& n, const std::string& np) {
    expect_map(n, np);
    p.target_refs.push_back({str(n, "group", np), required_str(n, "kind", np),
                             required_str(n, "name", np), opt_str(n, "sectionName", np)});
  });
  YAML::Node v = get(spec, "validation");
  if (!present(v)) fail(spec, "spec.validation", "required");
  expect_map(v, "spec.validation");
  each(v, "caCertificateRefs", "spec.validation", [&](const YAML::Node& n, const std::string& np) {
    expect_map(n, np);
    p.ca_certificate_refs.push_back(
        {str(n, "group", np), required_str(n, "kind", np), required_str(n, "name", np)});
  });
  p.well_known_ca_certificates = opt_str(v, "wellKnownCACertificates", "spec.validation");
  if (p.well_known_ca_certificates && p.well_known_ca_certificates->empty())
    p.well_known_ca_certificates.reset();
  p.hostname = required_str(v, "hostname", "spec.validation");
  each(v, "subjectAltNames", "spec.validation", [&](const YAML::Node& n, const std::string& np) {
    expect_map(n, np);
    p.subject_alt_names.push_back(
        {required_str(n, "type", np), str(n, "hostname", np), str(n, "uri", np)});
  });
  return p;
}

// ------------------------------------------------------------ dispatch

struct KindInfo {
  const char* kind;
  const char* api_version;
};
constexpr KindInfo kKinds[] = {
    {"GatewayRoute", "gantry.dev/v1alpha1"},  {"Service", "v1"},
    {"EndpointSlice", "discovery.k8s.io/v1"}, {"Secret", "v1"},
    {"Ingress", "networking.k8s.io/v1"},
    {"GatewayClass", "gateway.networking.k8s.io/v1"},
    {"Namespace", "v1"},
    {"Gateway", "gateway.networking.k8s.io/v1"},
    {"HTTPRoute", "gateway.networking.k8s.io/v1"},
    {"ReferenceGrant", "gateway.networking.k8s.io/v1"},
    {"GRPCRoute", "gateway.networking.k8s.io/v1"},
    {"ListenerSet", "gateway.networking.k8s.io/v1"},
    {"ConfigMap", "v1"},
    {"BackendTLSPolicy", "gateway.networking.k8s.io/v1"},
};

// Decodes one object (or the items of a List) into `out`; a kind gantry does
// not use, or an unsupported apiVersion, becomes a warning.
void decode_into(const YAML::Node& doc, const std::string& where, DecodedDocument& out) {
  spend(doc, where);
  if (!doc.IsMap())
    fail(doc, where, "expected a Kubernetes object (a map with apiVersion and kind)");
  std::string kind = required_str(doc, "kind", "");
  std::string api = required_str(doc, "apiVersion", "");
  if (kind == "List" && api == "v1") {
    each(doc, "items", "", [&](const YAML::Node& item, const std::string& ip) {
      YAML::Node k = get(item, "kind");
      if (present(k) && k.IsScalar() && k.Scalar() == "List") fail(item, ip, "nested List");
      decode_into(item, ip, out);
    });
    return;
  }
  for (const KindInfo& k : kKinds) {
    if (kind != k.kind) continue;
    if (api != k.api_version) {
      out.warnings.push_back("line " + std::to_string(line_of(doc)) + ": " + kind +
                             " with apiVersion " + api + " is not supported (want " +
                             k.api_version + "); skipped");
      return;
    }
    if (kind == "GatewayRoute")
      out.objects.emplace_back(decode_gateway_route(doc));
    else if (kind == "Service")
      out.objects.emplace_back(decode_service(doc));
    else if (kind == "EndpointSlice")
      out.objects.emplace_back(decode_endpoint_slice(doc));
    else if (kind == "Secret")
      out.objects.emplace_back(decode_secret(doc));
    else if (kind == "Ingress")
      out.objects.emplace_back(decode_ingress(doc));
    else if (kind == "GatewayClass")
      out.objects.emplace_back(decode_gateway_class(doc));
    else if (kind == "Namespace")
      out.objects.emplace_back(decode_namespace(doc));
    else if (kind == "Gateway")
      out.objects.emplace_back(decode_gateway(doc));
    else if (kind == "HTTPRoute")
      out.objects.emplace_back(decode_http_route(doc));
    else if (kind == "GRPCRoute")
      out.objects.emplace_back(decode_grpc_route(doc));
    else if (kind == "ListenerSet")
      out.objects.emplace_back(decode_listener_set(doc));
    else if (kind == "ConfigMap")
      out.objects.emplace_back(decode_config_map(doc));
    else if (kind == "BackendTLSPolicy")
      out.objects.emplace_back(decode_backend_tls_policy(doc));
    else
      out.objects.emplace_back(decode_reference_grant(doc));
    return;
  }
  out.warnings.push_back("line " + std::to_string(line_of(doc)) + ": kind " + kind + " (" + api +
                         ") is not used by gantry; skipped");
}

}  // namespace

std::string DecodeError::str() const {
  std::string out;
  if (line > 0) out = std::to_string(line) + ": ";
  if (!field.empty()) out += field + ": ";
  return out + message;
}

DecodedDocument decode_document(const YAML::Node& doc, int line_offset) {
  DecodedDocument out;
  if (!present(doc)) return out;  // an empty document ("---" alone)
  g_budget = kNodeBudget;
  g_line_offset = line_offset;
  try {
    decode_into(doc, "", out);
  } catch (const FieldError& e) {
    out.objects.clear();
    out.error = DecodeError{e.line, e.field, e.message};
  } catch (const std::exception& e) {  // yaml-cpp's conversion and iterator errors
    out.objects.clear();
    out.error = DecodeError{line_of(doc), "", e.what()};
  }
  return out;
}

Result<Object> decode_object(const YAML::Node& node) {
  DecodedDocument d = decode_document(node);
  if (d.error) return Error{d.error->str()};
  if (d.objects.size() != 1)
    return Error{d.warnings.empty() ? "expected one object" : d.warnings.front()};
  return std::move(d.objects.front());
}

YAML::Node json_to_node(const nlohmann::json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::object: {
      YAML::Node n(YAML::NodeType::Map);
      for (auto it = j.begin(); it != j.end(); ++it) n[it.key()] = json_to_node(it.value());
      return n;
    }
    case nlohmann::json::value_t::array: {
      YAML::Node n(YAML::NodeType::Sequence);
      for (const auto& v : j) n.push_back(json_to_node(v));
      return n;
    }
    case nlohmann::json::value_t::null:
    case nlohmann::json::value_t::discarded:
      return YAML::Node(YAML::NodeType::Null);
    case nlohmann::json::value_t::string:
      return YAML::Node(j.get<std::string>());
    default:  // numbers and booleans keep their JSON spelling
      return YAML::Node(j.dump());
  }
}

Result<Object> decode_json_object(std::string_view json) {
  nlohmann::json j = nlohmann::json::parse(json.begin(), json.end(), nullptr, false);
  if (j.is_discarded()) return Error{"not valid JSON"};
  return decode_object(json_to_node(j));
}

// ------------------------------------------------------------ scalars

namespace {

bool digits(std::string_view s, size_t pos, size_t n, int& out) {
  if (pos + n > s.size()) return false;
  out = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    out = out * 10 + (s[i] - '0');
  }
  return true;
}

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

}  // namespace

Result<int64_t> parse_rfc3339(std::string_view s) {
  Error bad{"not an RFC 3339 timestamp: \"" + std::string(s) + "\""};
  int y, mo, d, h, mi, sec;
  if (!digits(s, 0, 4, y) || s.size() < 20 || s[4] != '-' || !digits(s, 5, 2, mo) || s[7] != '-' ||
      !digits(s, 8, 2, d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
      !digits(s, 11, 2, h) || s[13] != ':' || !digits(s, 14, 2, mi) || s[16] != ':' ||
      !digits(s, 17, 2, sec))
    return bad;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return bad;
  size_t pos = 19;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    size_t start = pos;
    while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') ++pos;
    if (pos == start) return bad;
  }
  int64_t offset = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    ++pos;
  } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
    int oh, om;
    if (!digits(s, pos + 1, 2, oh) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
        !digits(s, pos + 4, 2, om) || oh > 23 || om > 59)
      return bad;
    offset = (oh * 3600 + om * 60) * (s[pos] == '+' ? 1 : -1);
    pos += 6;
  } else {
    return bad;
  }
  if (pos != s.size()) return bad;
  return days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d)) * 86400 +
         h * 3600 + mi * 60 + sec - offset;
}

Result<std::string> decode_base64(std::string_view s) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string clean;
  clean.reserve(s.size());
  for (char c : s)
    if (c != '\r' && c != '\n') clean += c;
  if (clean.size() % 4 != 0) return Error{"not valid base64 (length is not a multiple of 4)"};
  std::string out;
  out.reserve(clean.size() / 4 * 3);
  for (size_t i = 0; i < clean.size(); i += 4) {
    int v[4];
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      char c = clean[i + k];
      if (c == '=' && i + 4 == clean.size() && k >= 2) {
        v[k] = 0;
        ++pad;
        continue;
      }
      if (pad > 0 || (v[k] = value(c)) < 0) return Error{"not valid base64"};
    }
    uint32_t n = (v[0] << 18) | (v[1] << 12) | (v[2] << 6) | v[3];
    out += static_cast<char>((n >> 16) & 0xff);
    if (pad < 2) out += static_cast<char>((n >> 8) & 0xff);
    if (pad < 1) out += static_cast<char>(n & 0xff);
  }
  return out;
}

}  // namespace gantry::controller
