// nginx.ingress.kubernetes.io/* annotations with ingress-nginx's semantics;
// see ingress_nginx.h and docs/migrating-from-ingress-nginx.md (the table of every annotation).
#include "controller/core/ingress_nginx.h"

#include <algorithm>
#include <charconv>
#include <functional>

#include <nlohmann/json.hpp>
#include <re2/re2.h>

#include "proxy/net/cidr.h"

namespace gantry::controller {

namespace sn = gantry::snapshot;

namespace {

std::string lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\n\r");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\n\r");
  return s.substr(b, e - b + 1);
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find(',', start);
    if (end == std::string::npos) end = s.size();
    std::string item = trim(s.substr(start, end - start));
    if (!item.empty()) out.push_back(item);
    start = end + 1;
  }
  return out;
}

std::optional<int64_t> parse_int(const std::string& s) {
  std::string t = trim(s);
  int64_t v = 0;
  auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (t.empty() || ec != std::errc() || p != t.data() + t.size()) return std::nullopt;
  return v;
}

std::optional<bool> parse_bool(const std::string& s) {
  std::string t = lower(trim(s));
  if (t == "true") return true;
  if (t == "false") return false;
  return std::nullopt;
}

// The annotations ingress-nginx v1.15 documents that gantry does not
// implement, with why; `blocks` when the annotation protects something.
struct Unimplemented {
  const char* name;
  bool blocks;
  const char* why;
};

const Unimplemented kUnimplemented[] = {
    {"configuration-snippet", true, "nginx configuration snippets are refused (gantry is not nginx)"},
    {"server-snippet", true, "nginx configuration snippets are refused (gantry is not nginx)"},
    {"auth-snippet", true, "nginx configuration snippets are refused (gantry is not nginx)"},
    {"stream-snippet", true, "nginx configuration snippets are refused (gantry is not nginx)"},
    {"modsecurity-snippet", true, "ModSecurity is not available in gantry"},
    {"enable-modsecurity", true, "ModSecurity is not available in gantry"},
    {"enable-owasp-core-rules", true, "ModSecurity is not available in gantry"},
    {"modsecurity-transaction-id", false, "ModSecurity is not available in gantry"},
    {"auth-request-redirect", false, "X-Auth-Request-Redirect carries the request URI (not a value of your own)"},
    {"auth-cache-key", false, "nginx cache-key expressions are not mapped: every decision is asked of the service (a GatewayRoute extAuth.cache keys by header values)"},
    {"auth-cache-duration", false, "not mapped: every decision is asked of the service (see auth-cache-key)"},
    {"auth-always-set-cookie", false, "Set-Cookie of a 2xx answer is not passed to the client"},
    {"auth-keepalive-share-vars", false, "gantry pools connections to the service per worker; there are no nginx variables to share"},
    {"auth-proxy-set-headers", true, "extra fields to the service from a ConfigMap are not implemented"},
    {"enable-global-auth", false, "gantry has no global external authentication"},
    {"satisfy", true, "satisfy any/all needs authentication gantry does not implement yet"},
    {"limit-rate", false, "response bandwidth limits are not implemented"},
    {"limit-rate-after", false, "response bandwidth limits are not implemented"},
    {"custom-headers", false, "response headers from a ConfigMap are not implemented yet"},
    {"proxy-send-timeout", false, "gantry has no timeout between two writes to the upstream"},
    {"proxy-next-upstream-timeout", false, "gantry bounds retries by the request timeout, not by this"},
    {"proxy-buffering", false, "gantry streams responses; nginx buffering settings do not apply"},
    {"proxy-buffer-size", false, "gantry streams responses; nginx buffer settings do not apply"},
    {"proxy-buffers-number", false, "gantry streams responses; nginx buffer settings do not apply"},
    {"proxy-busy-buffers-size", false, "gantry streams responses; nginx buffer settings do not apply"},
    {"proxy-max-temp-file-size", false, "gantry never buffers responses to disk"},
    {"proxy-request-buffering", false, "gantry streams request bodies; buffering settings do not apply"},
    {"client-body-buffer-size", false, "gantry streams request bodies; buffer settings do not apply"},
    {"proxy-http-version", false, "gantry always speaks HTTP/1.1 to upstreams"},
    {"proxy-cookie-domain", false, "rewriting Set-Cookie domains is not implemented"},
    {"proxy-cookie-path", false, "rewriting Set-Cookie paths is not implemented"},
    {"proxy-redirect-from", false, "rewriting upstream Location fields is not implemented"},
    {"proxy-redirect-to", false, "rewriting upstream Location fields is not implemented"},
    {"proxy-ssl-ciphers", false, "upstream TLS cipher lists are not mapped (gantry offers OpenSSL's defaults)"},
    {"proxy-ssl-protocols", false, "not mapped: gantry offers TLS 1.2 and 1.3 to upstreams (ingress-nginx: TLSv1 to TLSv1.2)"},
    {"proxy-ssl-verify-depth", false, "gantry does not limit the depth of an upstream's chain"},
    {"ssl-ciphers", false, "per-Ingress TLS ciphers are not implemented"},
    {"ssl-prefer-server-ciphers", false, "per-Ingress TLS cipher preference is not implemented"},
    {"connection-proxy-header", false, "gantry manages upstream connections itself"},
    {"enable-access-log", false, "gantry's access log is per proxy (--access-log), not per Ingress"},
    {"enable-rewrite-log", false, "nginx rewrite logging does not exist in gantry"},
    {"enable-opentelemetry", false, "tracing is not implemented yet"},
    {"opentelemetry-trust-incoming-span", false, "tracing is not implemented yet"},
    {"mirror-target", false, "ingress-nginx mirror URLs are not mapped yet (GatewayRoute requestMirror is)"},
    {"mirror-request-body", false, "ingress-nginx mirror URLs are not mapped yet"},
    {"mirror-host", false, "ingress-nginx mirror URLs are not mapped yet"},
    {"http2-push-preload", false, "HTTP/2 server push is not implemented (browsers dropped it)"},
    {"upstream-hash-by-subset", false, "hashing to a subset of endpoints is not implemented"},
    {"upstream-hash-by-subset-size", false, "hashing to a subset of endpoints is not implemented"},
    {"session-cookie-change-on-failure", false, "gantry re-picks an endpoint and re-issues the cookie when its endpoint is gone"},
    {"affinity-canary-behavior", false, "affinity is per rule in gantry; it does not stick across main and canary"},
    {"relative-redirects", false, "gantry's redirects carry absolute Locations"},
    {"use-port-in-redirects", false, "gantry's https redirect never adds the listener's port"},
    {"fastcgi-index", true, "FastCGI is not supported"},
    {"fastcgi-params-configmap", true, "FastCGI is not supported"},
    {"opentelemetry-operation-name", false, "tracing is not implemented yet"},
};

}  // namespace

std::string parse_ext_auth_url(std::string_view url, sn::ExtAuth& a) {
  const bool tls = url.starts_with("https://");
  if (!tls && !url.starts_with("http://")) return "must start with http:// or https://";
  for (char ch : url)
    if (static_cast<unsigned char>(ch) <= ' ' || ch == 0x7f) return "has spaces or control characters";
  std::string_view rest = url.substr(tls ? 8 : 7);
  size_t slash = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, slash);
  std::string path(slash == std::string_view::npos ? std::string_view("/") : rest.substr(slash));
  if (path.find('#') != std::string::npos) return "must not have a fragment";
  if (path.front() == '?') path.insert(0, "/");
  std::string_view host = authority, port;
  if (host.starts_with("[")) {
    size_t close = host.find(']');
    if (close == std::string_view::npos) return "unclosed [ in the host";
    port = host.substr(close + 1);
    host = host.substr(1, close - 1);
    if (!port.empty() && !port.starts_with(":")) return "bad port";
    if (!port.empty()) port.remove_prefix(1);
  } else if (size_t colon = host.rfind(':'); colon != std::string_view::npos) {
    port = host.substr(colon + 1);
    host = host.substr(0, colon);
  }
  if (host.empty() || host.find('@') != std::string_view::npos || host.find('$') != std::string_view::npos)
    return "has no host (or has user info or a variable)";
  uint16_t p = tls ? 443 : 80;
  if (!port.empty()) {
    int v = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), v);
    if (ec != std::errc() || end != port.data() + port.size() || v < 1 || v > 65535)
      return "port must be from 1 to 65535";
    p = static_cast<uint16_t>(v);
  }
  a.host = lower(std::string(host));
  a.port = p;
  a.authority = std::string(authority);
  a.path = std::move(path);
  a.tls = tls;
  return "";
}

namespace {

class Parser {
 public:
  explicit Parser(const std::map<std::string, std::string>& all) {
    std::string prefix = kNginxAnnotationPrefix;
    for (const auto& [k, v] : all)
      if (k.starts_with(prefix)) a_[k.substr(prefix.size())] = v;
  }

  NginxParse run() {
    paths_and_redirects();
    canary();
    affinity_and_balancing();
    limits();
    body_timeouts_retries();
    cors();
    basic_auth();
    auth_tls();
    backend_protocol();
    others();
    external_auth();
    ssl_passthrough();
    default_backend();
    for (const auto& [name, value] : a_) {
      if (done_.count(name)) continue;
      const Unimplemented* u = nullptr;
      for (const auto& x : kUnimplemented)
        if (name == x.name) u = &x;
      if (u != nullptr)
        refuse(name, u->why, u->blocks);
      else
        verdict(name, NginxSupport::kUnknown, "not an annotation of ingress-nginx v1.15; ignored");
    }
    std::sort(out_.verdicts.begin(), out_.verdicts.end(),
              [](const auto& a, const auto& b) { return a.name < b.name; });
    return std::move(out_);
  }

 private:
  const std::string* get(const std::string& name) {
    auto it = a_.find(name);
    return it == a_.end() ? nullptr : &it->second;
  }
  void verdict(const std::string& name, NginxSupport s, std::string detail = "", bool blocks = false) {
    done_.insert(name);
    out_.verdicts.push_back({name, a_[name], s, std::move(detail), blocks});
  }
  void served(const std::string& name) { verdict(name, NginxSupport::kServed); }
  void partial(const std::string& name, std::string what) { verdict(name, NginxSupport::kPartial, std::move(what)); }
  void refuse(const std::string& name, std::string why, bool blocks) {
    verdict(name, NginxSupport::kRefused, std::move(why), blocks);
  }
  // A value ingress-nginx would reject too: refused, blocking when it guards access.
  void invalid(const std::string& name, const std::string& want, bool blocks = false) {
    refuse(name, "invalid value (want " + want + ")", blocks);
  }
  std::optional<bool> boolean(const std::string& name) {
    const std::string* v = get(name);
    if (!v) return std::nullopt;
    auto b = parse_bool(*v);
    if (!b) invalid(name, "true or false");
    return b;
  }

  void paths_and_redirects() {
    NginxConfig& c = out_.config;
    if (auto b = boolean("use-regex")) {
      c.use_regex = *b;
      partial("use-regex",
              "RE2 syntax: PCRE-only constructs (lookaround, backreferences) make the Ingress Invalid");
    }
    if (const std::string* v = get("rewrite-target")) {
      if (v->find('?') != std::string::npos) {
        refuse("rewrite-target", "a target with a query (\"?\") is not supported yet", true);
      } else if (!v->starts_with("http://") && !v->starts_with("https://") && !v->starts_with("/") &&
                 !v->starts_with("$")) {
        invalid("rewrite-target", "a path, $n captures, or an absolute http(s) URL", true);
      } else if (!nginx_rewrite_substitution(*v)) {
        refuse("rewrite-target", "only $1..$9 captures are supported (no nginx variables)", true);
      } else {
        c.rewrite_target = *v;
        served("rewrite-target");
      }
    }
    if (const std::string* v = get("app-root")) {
      if (v->empty() || v->front() != '/' || v->find_first_of("?# ") != std::string::npos) {
        invalid("app-root", "an absolute path such as /app");
      } else {
        c.app_root = *v;
        served("app-root");
      }
    }
    if (const std::string* v = get("x-forwarded-prefix")) {
      // ingress-nginx sets the field only where it rewrites (buildProxyPass).
      if (c.rewrite_target) {
        c.x_forwarded_prefix = *v;
        served("x-forwarded-prefix");
      } else {
        refuse("x-forwarded-prefix", "has no effect without rewrite-target (as in ingress-nginx)", false);
      }
    }
    if (auto b = boolean("ssl-redirect")) {
      c.ssl_redirect = *b;
      served("ssl-redirect");
    }
    if (auto b = boolean("force-ssl-redirect")) {
      c.force_ssl_redirect = *b;
      served("force-ssl-redirect");
    }
    if (auto b = boolean("preserve-trailing-slash")) {
      c.preserve_trailing_slash = *b;
      served("preserve-trailing-slash");
    }
    // ingress-nginx takes a code in [300, max] and falls back to the default
    // outside it; gantry can send 301, 302, 303, 307 and 308.
    auto redirect = [&](const char* name, const char* code_name, int max, std::optional<std::string>& url,
                        int& code) {
      if (const std::string* v = get(name)) {
        if (!v->starts_with("http://") && !v->starts_with("https://")) {
          invalid(name, "an absolute http:// or https:// URL");
        } else {
          url = *v;
          served(name);
        }
      }
      if (const std::string* v = get(code_name)) {
        auto n = parse_int(*v);
        if (!n) {
          invalid(code_name, "an HTTP status code");
        } else if (*n < 300 || *n > max) {
          std::string why("outside 300..");  // appended: GCC PR 105329 (false -Wrestrict at -O3)
          why.append(std::to_string(max)).append(": the default ").append(std::to_string(code));
          verdict(code_name, NginxSupport::kServed, why.append(" is used, as in ingress-nginx"));
        } else if (*n != 301 && *n != 302 && *n != 303 && *n != 307 && *n != 308) {
          std::string why("gantry redirects with 301, 302, 303, 307 or 308; the default ");
          refuse(code_name, why.append(std::to_string(code)).append(" is used"), false);
        } else {
          code = static_cast<int>(*n);
          served(code_name);
        }
      }
    };
    redirect("permanent-redirect", "permanent-redirect-code", 308, c.permanent_redirect, c.permanent_redirect_code);
    redirect("temporal-redirect", "temporal-redirect-code", 307, c.temporal_redirect, c.temporal_redirect_code);
    if (auto b = boolean("from-to-www-redirect")) {
      c.from_to_www_redirect = *b;
      served("from-to-www-redirect");
    }
  }

  void canary() {
    NginxConfig& c = out_.config;
    NginxCanary& k = c.canary_rules;
    auto on = boolean("canary");
    c.canary = on.value_or(false);
    if (on) served("canary");
    const char* names[] = {"canary-by-header", "canary-by-header-value", "canary-by-header-pattern",
                           "canary-by-cookie", "canary-weight", "canary-weight-total"};
    for (const char* n : names) {
      const std::string* v = get(n);
      if (!v) continue;
      if (!c.canary) {
        refuse(n, "has no effect without canary: \"true\" (as in ingress-nginx)", false);
        continue;
      }
      std::string name = n;
      if (name == "canary-by-header") {
        k.header = trim(*v);
        served(name);
      } else if (name == "canary-by-header-value") {
        k.header_value = *v;
        served(name);
      } else if (name == "canary-by-header-pattern") {
        RE2::Options o;
        o.set_log_errors(false);
        if (!RE2(*v, o).ok()) {
          refuse(name, "the pattern is not valid RE2 (PCRE-only constructs are not supported)", true);
        } else {
          k.header_pattern = *v;
          partial(name, "RE2 syntax instead of PCRE");
        }
      } else if (name == "canary-by-cookie") {
        k.cookie = trim(*v);
        partial(name, "the cookie is read from the first Cookie header field only");
      } else if (name == "canary-weight") {
        auto w = parse_int(*v);
        if (!w || *w < 0) {
          invalid(name, "an integer >= 0", true);
        } else {
          k.weight = *w;
          served(name);
        }
      } else {
        auto w = parse_int(*v);
        if (!w) {
          invalid(name, "an integer", true);
        } else {
          // balancer.lua: a total of 100 or less means 100.
          k.weight_total = std::max<int64_t>(*w, 100);
          served(name);
        }
      }
    }
  }

  void affinity_and_balancing() {
    NginxConfig& c = out_.config;
    const std::string* aff = get("affinity");
    bool cookie = false;
    if (aff) {
      if (*aff == "cookie") {
        cookie = true;
        partial("affinity",
                "the cookie's value is gantry's endpoint key (ingress-nginx: a random key and its backend's "
                "hash), so a cookie issued by ingress-nginx is replaced once; its attributes are "
                "ingress-nginx's: HttpOnly, Path the Ingress's path, Secure over TLS");
      } else {
        invalid("affinity", "cookie");
      }
    }
    const char* cookie_names[] = {"session-cookie-name",    "session-cookie-path",    "session-cookie-max-age",
                                  "session-cookie-expires", "session-cookie-secure",  "session-cookie-samesite",
                                  "session-cookie-domain",  "session-cookie-conditional-samesite-none",
                                  "affinity-mode"};
    sn::LoadBalancer lb;
    lb.type = sn::LoadBalancerType::kConsistentHash;
    lb.hash_on = sn::HashOn::kCookie;
    lb.hash_key = "INGRESSCOOKIE";
    // sticky.lua: Secure when the request came over TLS, always with
    // session-cookie-secure; the Path defaults to the location's (translate).
    lb.cookie_secure = sn::CookieSecure::kOverTls;
    auto attribute_ok = [](const std::string& v) {
      return !v.empty() && v.size() <= 1024 && v.find(';') == std::string::npos &&
             std::none_of(v.begin(), v.end(), [](char ch) { return static_cast<unsigned char>(ch) <= 0x20 || ch == 0x7f; });
    };
    for (const char* n : cookie_names) {
      const std::string* v = get(n);
      if (!v) continue;
      std::string name = n;
      if (!cookie) {
        refuse(name, "has no effect without affinity: cookie (as in ingress-nginx)", false);
        continue;
      }
      if (name == "session-cookie-name") {
        lb.hash_key = trim(*v);
        served(name);
      } else if (name == "session-cookie-max-age" || name == "session-cookie-expires") {
        auto s = parse_int(*v);
        if (!s || *s < 0) {
          invalid(name, "seconds");
        } else {
          if (name == "session-cookie-max-age" || lb.cookie_ttl.count() == 0)
            lb.cookie_ttl = sn::Millis(*s * 1000);
          if (name == "session-cookie-expires")
            partial(name, "sent as Max-Age (the same lifetime), not as an Expires date");
          else
            served(name);
        }
      } else if (name == "session-cookie-path") {
        std::string path = trim(*v);
        if (!attribute_ok(path) || path.front() != '/') {
          invalid(name, "a path starting with / without ';', spaces or control characters");
        } else {
          lb.cookie_path = path;
          served(name);
        }
      } else if (name == "session-cookie-domain") {
        std::string d = lower(trim(*v));
        std::string host = d.starts_with(".") ? d.substr(1) : d;
        bool ok = attribute_ok(host) && host.find("..") == std::string::npos && host.back() != '.' &&
                  host.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-.") == std::string::npos;
        if (!ok) {
          invalid(name, "a domain name");
        } else {
          lb.cookie_domain = d;
          served(name);
        }
      } else if (name == "session-cookie-secure") {
        if (auto b = parse_bool(*v)) {
          lb.cookie_secure = *b ? sn::CookieSecure::kAlways : sn::CookieSecure::kOverTls;
          served(name);
        } else {
          invalid(name, "true or false");
        }
      } else if (name == "session-cookie-samesite") {
        std::string ss = trim(*v);
        if (ss != "None" && ss != "Lax" && ss != "Strict") {
          invalid(name, "None, Lax or Strict");
        } else {
          lb.cookie_same_site = ss;
          served(name);
        }
      } else if (name == "session-cookie-conditional-samesite-none") {
        if (auto b = parse_bool(*v)) {
          lb.cookie_same_site_none_if_compatible = *b;
          served(name);
        } else {
          invalid(name, "true or false");
        }
      } else {
        partial(name, "gantry's affinity behaves as \"persistent\" while the endpoint exists");
      }
    }
    if (cookie) c.load_balancer = lb;
    if (const std::string* v = get("load-balance")) {
      if (cookie) {
        refuse("load-balance", "affinity: cookie decides the endpoint", false);
      } else if (*v == "round_robin") {
        c.load_balancer = sn::LoadBalancer{};
        served("load-balance");
      } else if (*v == "ewma") {
        sn::LoadBalancer l;
        l.type = sn::LoadBalancerType::kLeastRequest;
        c.load_balancer = l;
        partial("load-balance", "ewma is served as LeastRequest (two random choices, fewest in flight)");
      } else {
        invalid("load-balance", "round_robin or ewma");
      }
    }
    if (const std::string* v = get("upstream-hash-by")) {
      std::string h = trim(*v);
      sn::LoadBalancer l;
      l.type = sn::LoadBalancerType::kConsistentHash;
      if (cookie) {
        refuse("upstream-hash-by", "affinity: cookie decides the endpoint", false);
      } else if (h == "$remote_addr" || h == "$binary_remote_addr") {
        l.hash_on = sn::HashOn::kSourceIP;
        c.load_balancer = l;
        partial("upstream-hash-by", "Maglev consistent hashing instead of nginx's ketama ring");
      } else if (h.starts_with("$http_") && h.size() > 6) {
        l.hash_on = sn::HashOn::kHeader;
        l.hash_key = h.substr(6);
        std::replace(l.hash_key.begin(), l.hash_key.end(), '_', '-');
        c.load_balancer = l;
        partial("upstream-hash-by", "Maglev consistent hashing instead of nginx's ketama ring");
      } else {
        refuse("upstream-hash-by",
               "only $remote_addr, $binary_remote_addr and $http_<name> are supported", false);
      }
    }
  }

  void limits() {
    NginxConfig& c = out_.config;
    auto positive = [&](const char* name) -> std::optional<int64_t> {
      const std::string* v = get(name);
      if (!v) return std::nullopt;
      auto n = parse_int(*v);
      if (!n || *n < 0) {
        invalid(name, "an integer >= 0");
        return std::nullopt;
      }
      return n;
    };
    auto rps = positive("limit-rps");
    auto rpm = positive("limit-rpm");
    int64_t mult = 5;
    if (auto m = positive("limit-burst-multiplier")) mult = *m;
    bool any = (rps && *rps > 0) || (rpm && *rpm > 0);
    // limit-connections: nginx limit_conn in the Ingress's zone (translate names it), 503.
    if (auto conn = positive("limit-connections")) {
      if (*conn > 0) {
        sn::ConnectionLimit l;
        l.per_client_ip = static_cast<uint32_t>(std::min<int64_t>(*conn, UINT32_MAX));
        l.status_code = 503;  // ConfigMap limit-conn-status-code
        c.connection_limit = l;
      }
      served("limit-connections");
    }
    if (rps || rpm) {
      sn::RateLimit r;
      r.status_code = 503;  // ConfigMap limit-req-status-code
      int64_t n = rps && *rps > 0 ? *rps : rpm.value_or(0);
      r.interval = sn::Millis(rps && *rps > 0 ? 1000 : 60000);
      if (n > 0) {
        r.requests = static_cast<uint64_t>(n);
        // nginx limit_req burst=n*mult nodelay lets n*mult + 1 through at once.
        int64_t capacity = n * mult + 1;
        r.burst = static_cast<uint64_t>(std::max<int64_t>(0, capacity - n));
        c.rate_limit = r;
      }
      const char* diff =
          "a token bucket per proxy replica with nginx's capacity (rate x burst-multiplier + 1); "
          "refusals are 503 with Retry-After and RateLimit-* fields";
      if (rps) {
        if (*rps > 0) partial("limit-rps", diff);
        else served("limit-rps");
      }
      if (rpm) {
        if (rps && *rps > 0 && *rpm > 0)
          refuse("limit-rpm", "gantry applies one limit per rule: limit-rps is enforced, not limit-rpm", false);
        else if (*rpm > 0)
          partial("limit-rpm", diff);
        else
          served("limit-rpm");
      }
    }
    if (get("limit-burst-multiplier") && !done_.count("limit-burst-multiplier")) {
      if (any) served("limit-burst-multiplier");
      else refuse("limit-burst-multiplier", "has no effect without limit-rps or limit-rpm", false);
    }
    for (const char* name : {"limit-whitelist", "limit-allowlist"}) {
      const std::string* v = get(name);
      if (!v) continue;
      auto list = split_list(*v);
      bool ok = true;
      for (const auto& s : list) ok = ok && net::parse_cidr(s).ok();
      if (!ok) {
        invalid(name, "comma-separated CIDRs");
      } else if (!any && !c.connection_limit) {
        refuse(name, "has no effect without limit-rps, limit-rpm or limit-connections", false);
      } else {
        if (c.rate_limit) c.rate_limit->exempt_sources.insert(c.rate_limit->exempt_sources.end(), list.begin(), list.end());
        if (c.connection_limit) {
          auto& ex = c.connection_limit->exempt_sources;
          ex.insert(ex.end(), list.begin(), list.end());
        }
        served(name);
      }
    }
    // Access lists: a bad value must not open what it closed.
    auto ranges = [&](const char* name, std::vector<std::string>& into) {
      const std::string* v = get(name);
      if (!v) return;
      auto list = split_list(*v);
      bool ok = !list.empty();
      for (const auto& s : list) ok = ok && net::parse_cidr(s).ok();
      if (!ok) {
        invalid(name, "comma-separated CIDRs", true);
        return;
      }
      into.insert(into.end(), list.begin(), list.end());
      served(name);
    };
    sn::SourceRange sr;
    ranges("whitelist-source-range", sr.allow);
    ranges("allowlist-source-range", sr.allow);
    ranges("denylist-source-range", sr.deny);
    if (!sr.allow.empty() || !sr.deny.empty()) c.source_range = sr;
  }

  void body_timeouts_retries() {
    NginxConfig& c = out_.config;
    if (const std::string* v = get("proxy-body-size")) {
      if (auto n = parse_nginx_size(*v)) {
        c.body_size = *n;
        served("proxy-body-size");
      } else {
        invalid("proxy-body-size", "an nginx size such as 8m, 512k or 0");
      }
    }
    auto seconds = [&](const char* name) -> std::optional<int64_t> {
      const std::string* v = get(name);
      if (!v) return std::nullopt;
      auto n = parse_int(*v);
      if (!n || *n <= 0) {
        invalid(name, "seconds > 0");
        return std::nullopt;
      }
      return n;
    };
    if (auto s = seconds("proxy-read-timeout")) {
      c.read_timeout = sn::Millis(*s * 1000);
      partial("proxy-read-timeout",
              "bounds the wait for the response head (each try), not each read between two chunks");
    }
    if (get("proxy-connect-timeout") && seconds("proxy-connect-timeout"))
      partial("proxy-connect-timeout", "the connect timeout is per proxy (--upstream-connect-timeout), not per Ingress");
    sn::Retry r;
    r.attempts = 2;  // proxy-next-upstream-tries 3 = the first try + 2
    r.on_connect_failure = true;
    r.on_reset = true;
    bool retry_set = false;
    if (const std::string* v = get("proxy-next-upstream")) {
      r = sn::Retry{};
      r.attempts = 2;
      bool ok = true, off = false;
      std::vector<std::string> dropped;
      size_t start = 0;
      std::string s = *v;
      while (start < s.size()) {
        size_t end = s.find(' ', start);
        if (end == std::string::npos) end = s.size();
        std::string tok = s.substr(start, end - start);
        start = end + 1;
        if (tok.empty()) continue;
        if (tok == "error") r.on_connect_failure = true;
        else if (tok == "timeout") r.on_reset = true;
        else if (tok == "off") off = true;
        else if (tok.starts_with("http_") && parse_int(tok.substr(5))) r.on_statuses.push_back(static_cast<int>(*parse_int(tok.substr(5))));
        else if (tok == "invalid_header" || tok == "non_idempotent") dropped.push_back(tok);
        else ok = false;
      }
      if (!ok) {
        invalid("proxy-next-upstream", "error, timeout, invalid_header, http_NNN, non_idempotent or off");
      } else {
        retry_set = true;
        if (off) r.attempts = 0;
        std::string what = "retries only when the request body is replayable (none, or at most 64 KiB)";
        if (!dropped.empty()) {
          what += "; not applied:";
          for (const auto& d : dropped) what += " " + d;
        }
        partial("proxy-next-upstream", what);
      }
    }
    if (const std::string* v = get("proxy-next-upstream-tries")) {
      auto n = parse_int(*v);
      if (!n || *n < 0) {
        invalid("proxy-next-upstream-tries", "an integer >= 0");
      } else {
        retry_set = true;
        r.attempts = *n <= 1 ? 0 : static_cast<uint32_t>(*n - 1);
        served("proxy-next-upstream-tries");
      }
    }
    if (retry_set) c.retry = r;
  }

  void cors() {
    NginxConfig& c = out_.config;
    auto on = boolean("enable-cors");
    const char* names[] = {"cors-allow-origin", "cors-allow-methods", "cors-allow-headers",
                           "cors-expose-headers", "cors-allow-credentials", "cors-max-age"};
    if (on && *on) {
      sn::Cors k;
      k.allow_origins = {"*"};
      k.allow_methods = {"GET", "PUT", "POST", "DELETE", "PATCH", "OPTIONS"};
      k.allow_headers = {"DNT",           "Keep-Alive",   "User-Agent", "X-Requested-With", "If-Modified-Since",
                         "Cache-Control", "Content-Type", "Range",      "Authorization"};
      k.allow_credentials = true;
      k.max_age = sn::Millis(1728000ll * 1000);
      for (const char* n : names) {
        const std::string* v = get(n);
        if (!v) continue;
        std::string name = n;
        if (name == "cors-allow-origin") {
          k.allow_origins = split_list(*v);
          served(name);
        } else if (name == "cors-allow-methods") {
          k.allow_methods = split_list(*v);
          served(name);
        } else if (name == "cors-allow-headers") {
          k.allow_headers = split_list(*v);
          served(name);
        } else if (name == "cors-expose-headers") {
          k.expose_headers = split_list(*v);
          served(name);
        } else if (name == "cors-allow-credentials") {
          if (auto b = parse_bool(*v)) {
            k.allow_credentials = *b;
            served(name);
          } else {
            invalid(name, "true or false");
          }
        } else {
          auto s = parse_int(*v);
          if (!s || *s < 0) {
            invalid(name, "seconds");
          } else {
            k.max_age = sn::Millis(*s * 1000);
            served(name);
          }
        }
      }
      c.cors = k;
      partial("enable-cors",
              "a preflight from an origin, method or header not allowed is answered 403 (ingress-nginx "
              "answers 204 without Access-Control-* fields); with credentials, the origin is echoed, "
              "never \"*\"");
    } else {
      if (on) served("enable-cors");
      for (const char* n : names)
        if (get(n)) refuse(n, "has no effect without enable-cors: \"true\" (as in ingress-nginx)", false);
    }
  }

  // auth-type: basic on the basicAuth filter. A guard that cannot be served
  // exactly as written blocks the Ingress (it protects something).
  void basic_auth() {
    const std::string* type = get("auth-type");
    const char* deps[] = {"auth-secret", "auth-secret-type", "auth-realm"};
    if (!type) {
      for (const char* n : deps)
        if (get(n)) refuse(n, "has no effect without auth-type (as in ingress-nginx)", false);
      return;
    }
    std::string t = lower(trim(*type));
    if (t == "digest") {
      refuse("auth-type", "digest authentication is not implemented (basic is)", true);
      for (const char* n : deps)
        if (get(n)) refuse(n, "belongs to the refused auth-type: digest", false);
      return;
    }
    if (t != "basic") {
      invalid("auth-type", "basic or digest", true);
      return;
    }
    NginxBasicAuth b;
    const std::string* secret = get("auth-secret");
    std::string name = secret ? trim(*secret) : "";
    if (name.empty()) {
      refuse("auth-type", "auth-type: basic needs auth-secret (ingress-nginx refuses the location too)", true);
      return;
    }
    if (auto slash = name.find('/'); slash != std::string::npos) {
      b.secret_namespace = name.substr(0, slash);  // translate checks it is the Ingress's own
      b.secret = name.substr(slash + 1);
    } else {
      b.secret = name;
    }
    if (const std::string* v = get("auth-secret-type")) {
      std::string st = lower(trim(*v));
      if (st == "auth-map") {
        b.auth_map = true;
        served("auth-secret-type");
      } else if (st == "auth-file") {
        served("auth-secret-type");
      } else {
        invalid("auth-secret-type", "auth-file or auth-map", true);
        return;
      }
    }
    if (const std::string* v = get("auth-realm")) {
      if (v->find_first_of("\"\\") != std::string::npos || std::any_of(v->begin(), v->end(), [](char ch) {
            return static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f;
          })) {
        invalid("auth-realm", "text without quotes, backslashes or control characters", true);
        return;
      }
      b.realm = *v;
      served("auth-realm");
    }
    partial("auth-type",
            "bcrypt and SHA-256/512-crypt htpasswd lines are served; MD5 ($apr1$, htpasswd's old default) and "
            "plain-text lines are refused and named in the Ingress's condition (rehash them with htpasswd -B); "
            "the user name goes upstream in X-Remote-User and the Authorization field is not forwarded");
    served("auth-secret");
    out_.config.basic_auth = std::move(b);
  }

  // auth-tls-* (ingress-nginx's authtls parser): nothing without
  // auth-tls-secret; a value ingress-nginx rejects denies the host (here:
  // the Ingress is not served); verify-client and verify-depth fall back to
  // their defaults as there.
  void auth_tls() {
    const char* deps[] = {"auth-tls-verify-client", "auth-tls-verify-depth", "auth-tls-error-page",
                          "auth-tls-pass-certificate-to-upstream", "auth-tls-match-cn"};
    const std::string* secret = get("auth-tls-secret");
    if (secret == nullptr) {
      for (const char* n : deps)
        if (get(n)) refuse(n, "has no effect without auth-tls-secret (as in ingress-nginx)", false);
      return;
    }
    NginxAuthTls a;
    std::string s = trim(*secret);
    size_t slash = s.find('/');
    if (s.empty() || s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._/") !=
                         std::string::npos ||
        (slash != std::string::npos && (slash + 1 == s.size() || s.find('/', slash + 1) != std::string::npos))) {
      invalid("auth-tls-secret", "namespace/name or name", true);
      return;
    }
    if (slash != std::string::npos) {
      a.secret_namespace = s.substr(0, slash);
      a.secret = s.substr(slash + 1);
    } else {
      a.secret = s;
    }
    if (const std::string* v = get("auth-tls-verify-client")) {
      std::string t = trim(*v);
      if (t == "on") a.verify = sn::ClientVerify::kOn;
      else if (t == "off") a.verify = sn::ClientVerify::kOff;
      else if (t == "optional") a.verify = sn::ClientVerify::kOptional;
      else if (t == "optional_no_ca") a.verify = sn::ClientVerify::kOptionalNoCa;
      if (t == "on" || t == "off" || t == "optional" || t == "optional_no_ca")
        served("auth-tls-verify-client");
      else
        invalid("auth-tls-verify-client", "on, off, optional or optional_no_ca; on is used, as ingress-nginx does");
    }
    if (const std::string* v = get("auth-tls-verify-depth")) {
      auto d = parse_int(*v);
      if (d && *d >= 1 && *d <= 100) {
        a.depth = static_cast<uint32_t>(*d);
        served("auth-tls-verify-depth");
      } else if (d && *d == 0) {
        served("auth-tls-verify-depth");  // ingress-nginx: 0 is the default, 1
      } else {
        invalid("auth-tls-verify-depth", "a number from 1 to 100; 1 is used");
      }
    }
    if (const std::string* v = get("auth-tls-error-page")) {
      // ingress-nginx's redirectRegex; anything else makes it refuse the Ingress.
      static const RE2 kRedirect(
          R"(^(@[A-Za-z0-9_-]+|((https?://)?[A-Za-z0-9\-.]+(:\d+)?)?(/[A-Za-z0-9\-_.]+)*/?)$)");
      std::string t = trim(*v);
      if (!RE2::FullMatch(t, kRedirect)) {
        invalid("auth-tls-error-page", "a URL or a path of letters, digits, '-', '_' and '.'", true);
        return;
      }
      if (t.starts_with("http://") || t.starts_with("https://")) {
        a.error_page = t;
        served("auth-tls-error-page");
      } else if (t.starts_with("/")) {
        a.error_page = t;
        partial("auth-tls-error-page",
                "a path is answered with a 302 to it (nginx's error_page serves it in place, an internal redirect)");
      } else if (!t.empty()) {
        refuse("auth-tls-error-page",
               t.starts_with("@") ? "named nginx locations do not exist in gantry; the 400 is answered"
                                  : "a URL without http:// or https:// is not supported; the 400 is answered",
               false);
      }
    }
    if (const std::string* v = get("auth-tls-pass-certificate-to-upstream")) {
      auto b = parse_bool(*v);
      if (!b) {
        invalid("auth-tls-pass-certificate-to-upstream", "true or false", true);
        return;
      }
      a.pass_certificate = *b;
      served("auth-tls-pass-certificate-to-upstream");
    }
    if (const std::string* v = get("auth-tls-match-cn")) {
      if (!v->starts_with("CN=")) {
        invalid("auth-tls-match-cn", "a regex starting with CN=", true);
        return;
      }
      RE2::Options o;
      o.set_log_errors(false);
      if (!RE2(*v, o).ok()) {
        refuse("auth-tls-match-cn", "the pattern is not valid RE2 (PCRE-only constructs are not supported)", true);
        return;
      }
      a.match_cn = *v;
      served("auth-tls-match-cn");
    }
    partial("auth-tls-secret",
            "per host, chosen by the TLS server name: a request whose Host asks for client certificates on a "
            "connection made for another name is answered 421 (as nginx); a Secret that is missing, of another "
            "namespace, or without a usable ca.crt leaves the Ingress's backends unresolved (ingress-nginx "
            "answers 403 for the host); rules without a host are not served");
    out_.config.auth_tls = std::move(a);
  }

  // auth-url and its companions onto extAuth (docs/migrating-from-ingress-nginx.md): the
  // service's 2xx allows, 401/403 are the client's answer, a failure is 500.
  void external_auth() {
    const std::string* url = get("auth-url");
    if (url == nullptr) {
      for (const char* name : {"auth-method", "auth-signin", "auth-signin-redirect-param", "auth-response-headers"})
        if (get(name) != nullptr) refuse(name, "has no effect without auth-url", false);
      return;
    }
    sn::ExtAuth a;
    std::string u = trim(*url);
    if (u.find('$') != std::string::npos) {
      refuse("auth-url", "nginx variables in auth-url are not supported (name the service's URL)", true);
      return;
    }
    if (std::string why = parse_ext_auth_url(u, a); !why.empty()) {
      refuse("auth-url", why, true);
      return;
    }
    a.request_headers = {"authorization", "cookie"};
    a.status_on_error = 500;  // nginx's auth_request answers 500 when the service fails
    partial("auth-url",
            "the client's Authorization and Cookie are sent (nginx sends every field), with X-Original-URL, "
            "X-Original-Method, X-Auth-Request-Redirect and X-Forwarded-*; a status other than 2xx is the "
            "client's answer with the service's body and fields (nginx: 401/403 with its own page, other "
            "statuses 500); an unreachable service or no answer within 5s answers 500");
    a.timeout = std::chrono::milliseconds(5000);
    if (const std::string* v = get("auth-method")) {
      std::string m = trim(*v);
      bool token = !m.empty() && m.find_first_of(" \t\"(),/:;<=>?@[\\]{}") == std::string::npos;
      if (!token) {
        invalid("auth-method", "an HTTP method", true);
        return;
      }
      a.method = m;
      served("auth-method");
    }
    if (const std::string* v = get("auth-signin")) {
      std::string s = trim(*v);
      if (s.find('$') != std::string::npos) {
        refuse("auth-signin", "nginx variables are not supported; gantry appends rd=<the original URL> itself", false);
      } else if (!(s.starts_with("http://") || s.starts_with("https://") || s.starts_with("/")) ||
                 s.find_first_of(" \t\r\n") != std::string::npos) {
        invalid("auth-signin", "an http(s) URL", false);
      } else {
        a.signin = s;
        served("auth-signin");
      }
    }
    if (const std::string* v = get("auth-signin-redirect-param")) {
      std::string p = trim(*v);
      if (p.empty() || p.find_first_of("&=#? ") != std::string::npos) {
        invalid("auth-signin-redirect-param", "a query parameter name", false);
      } else {
        a.signin_redirect_param = p;
        served("auth-signin-redirect-param");
      }
    }
    if (const std::string* v = get("auth-response-headers")) {
      bool ok = true;
      for (auto& h : split_list(*v)) {
        if (h.find_first_of(" \t\"(),/:;<=>?@[\\]{}") != std::string::npos) ok = false;
        a.response_headers.push_back(lower(h));
      }
      if (ok) {
        served("auth-response-headers");
      } else {
        a.response_headers.clear();
        invalid("auth-response-headers", "a comma-separated list of header names", false);
      }
    }
    for (const char* name : {"auth-keepalive", "auth-keepalive-requests", "auth-keepalive-timeout"})
      if (get(name) != nullptr)
        partial(name, "gantry always keeps connections to the service alive, pooled per worker");
    out_.config.ext_auth = std::move(a);
  }

  // ssl-passthrough: TLS connections whose SNI is a host of the Ingress go to
  // its backend as raw TCP (translate: snapshot passthrough entries, with
  // --ingress-nginx-enable-ssl-passthrough; without the flag translate marks
  // it refused, as ingress-nginx ignores it without --enable-ssl-passthrough).
  void ssl_passthrough() {
    if (auto b = boolean("ssl-passthrough")) {
      out_.config.ssl_passthrough = *b;
      served("ssl-passthrough");
    }
  }

  // backend-protocol, and proxy-ssl-* for the TLS ones (ingress-nginx's
  // proxyssl parser: nothing without proxy-ssl-secret, which must be
  // "namespace/name"; on/off values).
  void backend_protocol() {
    NginxConfig& c = out_.config;
    bool tls = false;
    if (const std::string* v = get("backend-protocol")) {
      std::string p = lower(trim(*v));
      if (p == "http") {
        served("backend-protocol");
      } else if (p == "auto_http") {
        partial("backend-protocol", "AUTO_HTTP is served as HTTP (nginx follows the client's scheme)");
      } else if (p == "https") {
        c.backend_protocol = NginxBackendProtocol::kHttps;
        tls = true;
        partial("backend-protocol",
                "HTTP/1.1 over TLS 1.2 or 1.3 (ingress-nginx offers TLSv1 to TLSv1.2 unless proxy-ssl-protocols "
                "says otherwise); not verified unless proxy-ssl-secret has a ca.crt and proxy-ssl-verify is on");
      } else if (p == "grpc") {
        c.backend_protocol = NginxBackendProtocol::kGrpc;
        served("backend-protocol");
      } else if (p == "grpcs") {
        c.backend_protocol = NginxBackendProtocol::kGrpcs;
        tls = true;
        partial("backend-protocol",
                "HTTP/2 over TLS offering ALPN h2 only: a backend that does not select h2 is a 502 "
                "(nginx sends HTTP/2 anyway); not verified unless proxy-ssl-secret has a ca.crt and "
                "proxy-ssl-verify is on");
      } else if (p == "fcgi") {
        refuse("backend-protocol", "FastCGI is not supported", true);
      } else {
        invalid("backend-protocol", "HTTP, HTTPS, GRPC, GRPCS, AUTO_HTTP or FCGI", true);
      }
    }
    const char* names[] = {"proxy-ssl-verify", "proxy-ssl-name", "proxy-ssl-server-name"};
    const std::string* secret = get("proxy-ssl-secret");
    if (secret == nullptr || !tls) {
      std::string why = secret == nullptr ? "has no effect without proxy-ssl-secret (as in ingress-nginx)"
                                          : "has no effect unless backend-protocol is HTTPS or GRPCS";
      if (secret != nullptr) refuse("proxy-ssl-secret", why, false);
      for (const char* n : names)
        if (get(n)) refuse(n, why, false);
      return;
    }
    NginxProxySsl ps;
    std::string s = trim(*secret);
    size_t slash = s.find('/');
    if (slash == std::string::npos || slash == 0 || slash + 1 == s.size() || s.find('/', slash + 1) != std::string::npos) {
      // ingress-nginx denies the location (a 503): nothing goes to the backend.
      invalid("proxy-ssl-secret", "namespace/name", true);
      return;
    }
    ps.secret_namespace = s.substr(0, slash);
    ps.secret = s.substr(slash + 1);
    auto on_off = [&](const char* name, bool& into) {
      const std::string* v = get(name);
      if (!v) return false;
      std::string t = trim(*v);
      if (t != "on" && t != "off") {
        invalid(name, "on or off; ingress-nginx uses off");
        return false;
      }
      into = t == "on";
      return true;
    };
    bool verify_set = on_off("proxy-ssl-verify", ps.verify);
    bool sni_set = on_off("proxy-ssl-server-name", ps.server_name);
    if (const std::string* v = get("proxy-ssl-name")) {
      std::string n = lower(trim(*v));
      bool ok = !n.empty() && n.size() <= 253 && n.front() != '.' && n.back() != '.' &&
                n.find("..") == std::string::npos &&
                n.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-.") == std::string::npos;
      if (!ok) {
        invalid("proxy-ssl-name", "a host name");
      } else {
        ps.name = n;
        if (ps.server_name)
          served("proxy-ssl-name");
        else
          partial("proxy-ssl-name",
                  "without proxy-ssl-server-name: on, the name is checked against the certificate's DNS SANs "
                  "only (nginx falls back to the subject's CN when there are none)");
      }
    }
    if (verify_set) {
      if (ps.verify)
        partial("proxy-ssl-verify",
                "against the Secret's ca.crt (no verification without one, as in ingress-nginx); the chain's "
                "depth is not limited (proxy-ssl-verify-depth)");
      else
        served("proxy-ssl-verify");
    }
    if (sni_set) {
      if (ps.server_name && ps.name.empty())
        partial("proxy-ssl-server-name",
                "without proxy-ssl-name no SNI is sent (nginx sends its upstream's name, upstream_balancer, "
                "which is no valid host name)");
      else
        served("proxy-ssl-server-name");
    }
    // A Secret of another namespace, missing, or without a usable ca.crt or
    // tls.crt/tls.key: translate leaves the backends without endpoints (503),
    // as ingress-nginx denies the location.
    served("proxy-ssl-secret");
    c.proxy_ssl = ps;
  }

  // default-backend (a Service of the Ingress's namespace, translate resolves
  // it) and custom-http-errors (4xx/5xx, nginx.tmpl's error_page = @custom_...).
  void default_backend() {
    NginxConfig& c = out_.config;
    const std::string* backend = get("default-backend");
    if (backend) {
      std::string name = trim(*backend);
      if (name.empty() || name.find('/') != std::string::npos) {
        invalid("default-backend", "the name of a Service in the Ingress's namespace");
        backend = nullptr;
      } else {
        c.default_backend = name;
        served("default-backend");
      }
    }
    const std::string* errors = get("custom-http-errors");
    std::optional<bool> disable = boolean("disable-proxy-intercept-errors");
    if (errors) {
      std::vector<int> codes;
      bool ok = true;
      for (const auto& item : split_list(*errors)) {
        auto n = parse_int(item);
        ok = ok && n && *n >= 400 && *n <= 599;
        if (ok) codes.push_back(static_cast<int>(*n));
      }
      if (!ok) {
        invalid("custom-http-errors", "comma-separated status codes from 400 to 599");
      } else if (!backend) {
        refuse("custom-http-errors",
               "without default-backend the codes go to ingress-nginx's global default backend, which gantry does "
               "not have: upstream answers pass unchanged", false);
      } else if (disable.value_or(false)) {
        partial("custom-http-errors",
                "with disable-proxy-intercept-errors nothing is replaced (nginx still replaces its own errors, "
                "e.g. a 502 when the upstream fails)");
      } else {
        c.custom_http_errors = std::move(codes);
        partial("custom-http-errors",
                "upstream answers with these codes are replaced, and gantry's 502/504 when the upstream fails, "
                "not its other answers (the 503 of limits); a request body "
                "streamed to the upstream (chunked, or over 64 KiB) goes to the default backend empty; gRPC "
                "(backend-protocol GRPC/GRPCS) answers are not intercepted");
      }
    }
    if (disable && !done_.count("disable-proxy-intercept-errors")) served("disable-proxy-intercept-errors");
  }

  void others() {
    NginxConfig& c = out_.config;
    if (const std::string* v = get("upstream-vhost")) {
      c.upstream_vhost = trim(*v);
      served("upstream-vhost");
    }
    if (auto b = boolean("service-upstream")) {
      if (*b)
        partial("service-upstream", "gantry balances over the Service's endpoints itself (no ClusterIP hop)");
      else
        served("service-upstream");
    }
    if (const std::string* v = get("server-alias")) {
      c.server_aliases = split_list(*v);
      for (auto& a : c.server_aliases) a = lower(a);
      served("server-alias");
    }
  }

  std::map<std::string, std::string> a_;
  std::set<std::string> done_;
  NginxParse out_;
};

}  // namespace

const char* nginx_support_name(NginxSupport s) {
  switch (s) {
    case NginxSupport::kServed: return "served";
    case NginxSupport::kPartial: return "partial";
    case NginxSupport::kRefused: return "refused";
    case NginxSupport::kUnknown: return "unknown";
  }
  return "unknown";
}

bool NginxParse::blocked(bool serve_refused) const {
  if (serve_refused) return false;
  return std::any_of(verdicts.begin(), verdicts.end(), [](const auto& v) { return v.blocks; });
}

NginxParse parse_nginx_annotations(const std::map<std::string, std::string>& annotations) {
  return Parser(annotations).run();
}

std::optional<uint64_t> parse_nginx_size(const std::string& s) {
  std::string t = trim(s);
  if (t.empty()) return std::nullopt;
  uint64_t mult = 1;
  char last = t.back();
  if (last == 'k' || last == 'K') mult = 1024;
  else if (last == 'm' || last == 'M') mult = 1024 * 1024;
  else if (last == 'g' || last == 'G') mult = 1024ull * 1024 * 1024;
  if (mult != 1) t.pop_back();
  uint64_t n = 0;
  auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), n);
  if (t.empty() || ec != std::errc() || p != t.data() + t.size()) return std::nullopt;
  if (n > UINT64_MAX / mult) return std::nullopt;
  return n * mult;
}

std::string nginx_location_regex(const std::string& path) {
  // `~* "^path"`: case-insensitive, anchored at the start; the router matches
  // the whole path, so the rest of it is left free.
  std::string out("(?i)(?:");
  out += path;
  out += ").*";
  return out;
}

std::string nginx_rewrite_pattern(const std::string& path) {
  std::string out("(?i)");
  out += path;
  return out;
}

std::optional<std::string> nginx_rewrite_substitution(const std::string& target) {
  std::string out;
  for (size_t i = 0; i < target.size(); ++i) {
    char ch = target[i];
    if (ch == '\\') {
      out += "\\\\";
    } else if (ch == '$') {
      if (i + 1 < target.size() && target[i + 1] >= '0' && target[i + 1] <= '9') {
        if (i + 2 < target.size() && target[i + 2] >= '0' && target[i + 2] <= '9') return std::nullopt;
        out += '\\';
        out += target[i + 1];
        ++i;
      } else if (i + 1 < target.size() && target[i + 1] == '{') {
        size_t close = target.find('}', i);
        if (close == i + 3 && target[i + 2] >= '0' && target[i + 2] <= '9') {
          out += '\\';
          out += target[i + 2];
          i = close;
        } else {
          return std::nullopt;
        }
      } else {
        return std::nullopt;  // an nginx variable ($host, $request_uri, ...)
      }
    } else {
      out += ch;
    }
  }
  return out;
}

namespace {

struct Counts {
  uint64_t by[4] = {0, 0, 0, 0};
  uint64_t not_served = 0;
};

Counts count(const std::vector<NginxIngressReport>& reports) {
  Counts c;
  for (const auto& r : reports) {
    if (!r.served) ++c.not_served;
    for (const auto& a : r.annotations) ++c.by[static_cast<int>(a.support)];
  }
  return c;
}

}  // namespace

std::string nginx_report_json(const std::vector<NginxIngressReport>& reports) {
  nlohmann::ordered_json out;
  out["ingresses"] = nlohmann::ordered_json::array();
  for (const auto& r : reports) {
    nlohmann::ordered_json i;
    i["namespace"] = r.namespace_;
    i["name"] = r.name;
    i["canary"] = r.canary;
    i["served"] = r.served;
    i["note"] = r.note;
    i["annotations"] = nlohmann::ordered_json::array();
    for (const auto& a : r.annotations) {
      i["annotations"].push_back({{"name", std::string(kNginxAnnotationPrefix) + a.name},
                                  {"value", a.value},
                                  {"support", nginx_support_name(a.support)},
                                  {"detail", a.detail},
                                  {"blocks", a.blocks}});
    }
    out["ingresses"].push_back(std::move(i));
  }
  Counts c = count(reports);
  out["summary"] = {{"ingresses", reports.size()}, {"notServed", c.not_served},
                    {"served", c.by[0]},           {"partial", c.by[1]},
                    {"refused", c.by[2]},          {"unknown", c.by[3]}};
  return out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string nginx_report_text(const std::vector<NginxIngressReport>& reports) {
  std::string out;
  for (const auto& r : reports) {
    out += "ingress " + r.namespace_ + "/" + r.name + (r.canary ? " (canary)" : "") + ": " +
           (r.served ? "served" : "NOT SERVED");
    if (!r.note.empty()) out += " (" + r.note + ")";
    out += "\n";
    if (r.annotations.empty()) out += "  no nginx.ingress.kubernetes.io annotations\n";
    for (const auto& a : r.annotations) {
      std::string support = nginx_support_name(a.support);
      out += "  ";
      out += support;
      out.append(9 - support.size(), ' ');
      out += a.name + "=" + a.value;
      if (!a.detail.empty()) out += "\n           " + a.detail;
      if (a.blocks) out += " [blocks the Ingress]";
      out += "\n";
    }
  }
  Counts c = count(reports);
  out += std::to_string(reports.size()) + " Ingresses (" + std::to_string(c.not_served) + " not served); annotations: " +
         std::to_string(c.by[0]) + " served, " + std::to_string(c.by[1]) + " partial, " + std::to_string(c.by[2]) +
         " refused, " + std::to_string(c.by[3]) + " unknown\n";
  return out;
}

std::string nginx_report_metrics(const std::vector<NginxIngressReport>& reports) {
  Counts c = count(reports);
  std::string m =
      "# HELP gantry_controller_ingress_nginx_annotations nginx.ingress.kubernetes.io annotations of the "
      "ingress-nginx mode's Ingresses, by verdict.\n"
      "# TYPE gantry_controller_ingress_nginx_annotations gauge\n";
  for (int i = 0; i < 4; ++i)
    m += std::string("gantry_controller_ingress_nginx_annotations{support=\"") +
         nginx_support_name(static_cast<NginxSupport>(i)) + "\"} " + std::to_string(c.by[i]) + "\n";
  m += "# HELP gantry_controller_ingress_nginx_ingresses_not_served ingress-nginx mode Ingresses not served.\n"
       "# TYPE gantry_controller_ingress_nginx_ingresses_not_served gauge\n"
       "gantry_controller_ingress_nginx_ingresses_not_served ";
  m.append(std::to_string(c.not_served)).append("\n");
  return m;
}

}  // namespace gantry::controller
