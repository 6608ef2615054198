// Semantic validation of snapshots and endpoint deltas.
//
// Every message starts with the object it is about ("route default/shop
// rules[1].matches[0].path: ...", "cluster default/web:80 endpoints[3]: ...",
// "certificate default/shop-tls: ...") and says what is wrong in terms a user
// can act on. All problems are collected, up to kMaxErrors messages. Messages
// are only built on the error path, so validating a large good snapshot costs
// a walk plus one RE2 compile per regular expression.
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <re2/re2.h>

#include <algorithm>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "proxy/base/openssl_error.h"
#include "proxy/snapshot/validate.h"
#include "proxy/net/cidr.h"

namespace gantry::snapshot {
namespace {

std::string ca_pem_problem(const std::string& pem);
std::string crl_pem_problem(const std::string& pem);

constexpr size_t kMaxErrors = 100;
constexpr uint32_t kMaxWeight = 1000000;

// Collects messages; past the cap it only counts them.
class Errors {
 public:
  void add(std::string_view where, std::string_view what) {
    if (out_.size() >= kMaxErrors) {
      ++dropped_;
      return;
    }
    std::string m(where);
    m += ": ";
    m += what;
    out_.push_back(std::move(m));
  }

  void add_line(std::string line) {
    if (out_.size() >= kMaxErrors) {
      ++dropped_;
      return;
    }
    out_.push_back(std::move(line));
  }

  std::vector<std::string> take() && {
    if (dropped_ > 0) {
      out_.resize(kMaxErrors - 1);
      out_.push_back("... and " + std::to_string(dropped_ + 1) + " more errors not shown");
    }
    return std::move(out_);
  }

 private:
  std::vector<std::string> out_;
  size_t dropped_ = 0;
};

std::string quote(std::string_view s) {
  std::string q = "\"";
  for (char c : s) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      static constexpr char kHex[] = "0123456789abcdef";
      q += "\\x";
      q += kHex[u >> 4];
      q += kHex[u & 15];
    } else {
      q += c;
    }
  }
  q += '"';
  return q;
}

std::string idx(std::string_view field, size_t i) {
  return std::string(field) + "[" + std::to_string(i) + "]";
}

std::string join(std::string_view a, std::string_view b) {
  std::string s(a);
  s += ' ';
  s += b;
  return s;
}

// ---------------------------------------------------------------- lexical checks

// RFC 9110 tchar.
bool is_tchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool is_token(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), is_tchar);
}

bool has_control(std::string_view s, bool allow_tab) {
  return std::any_of(s.begin(), s.end(), [&](char c) {
    unsigned char u = static_cast<unsigned char>(c);
    return (u < 0x20 && !(allow_tab && u == '\t')) || u == 0x7f;
  });
}

// inet_pton reads a C string: an embedded NUL would hide a suffix, so refuse it.
bool is_ip(const std::string& s) {
  if (s.find('\0') != std::string::npos) return false;
  in_addr a4;
  in6_addr a6;
  return inet_pton(AF_INET, s.c_str(), &a4) == 1 || inet_pton(AF_INET6, s.c_str(), &a6) == 1;
}

// RFC 1123 name, lower-case: labels of [a-z0-9-], 1..63, no leading/trailing '-'.
bool is_dns_name(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  size_t start = 0;
  while (true) {
    size_t dot = s.find('.', start);
    std::string_view label = s.substr(start, dot == std::string_view::npos ? dot : dot - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
      return false;
    }
    for (char c : label) {
      if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
    }
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

// Empty string when `h` is a valid hostname for matching; else why not.
std::string hostname_problem(const std::string& h, bool allow_wildcard) {
  if (h.empty()) return "hostname must not be empty";
  if (h == "*") return "bare \"*\" is not allowed; leave hostnames empty to match any host";
  if (h.find(':') != std::string::npos && !is_ip(h)) {
    return quote(h) + " must not contain a port";
  }
  if (std::any_of(h.begin(), h.end(), [](char c) { return c >= 'A' && c <= 'Z'; })) {
    return quote(h) + " must be lower-case";
  }
  std::string_view rest = h;
  if (rest.starts_with("*.")) {
    if (!allow_wildcard) return quote(h) + ": a wildcard is not allowed here";
    rest.remove_prefix(2);
  }
  if (rest.find('*') != std::string_view::npos) {
    return quote(h) + ": \"*\" is only allowed as the whole leftmost label (\"*.example.com\")";
  }
  if (is_ip(h)) return quote(h) + ": IP addresses are not allowed, use a DNS name";
  if (!is_dns_name(rest)) return quote(h) + " is not a valid DNS name (RFC 1123)";
  return "";
}

std::string regex_problem(const std::string& pattern) {
  RE2::Options opts;
  opts.set_log_errors(false);
  RE2 re(pattern, opts);
  if (re.ok()) return "";
  return "regular expression " + quote(pattern) + " does not compile: " + re.error();
}

// Exact / PathPrefix values and rewrite targets.
std::string path_problem(const std::string& p) {
  if (p.empty() || p.front() != '/') return "value " + quote(p) + " must start with \"/\"";
  if (p.find_first_of("?#") != std::string::npos) {
    return "value " + quote(p) + " must not contain \"?\" or \"#\"";
  }
  if (has_control(p, false)) return "value " + quote(p) + " must not contain control characters";
  return "";
}

bool is_status(int s) { return s >= 100 && s <= 599; }

// ---------------------------------------------------------------- snapshot

class Validator {
 public:
  Validator(const Snapshot& s, Errors& errors) : s_(s), e_(errors) {
    for (const auto& c : s.clusters) clusters_.insert(c.name);
  }

  void run() {
    if (s_.version == 0) e_.add("snapshot", "version must be > 0");
    std::unordered_map<std::string_view, size_t> seen_clusters;
    for (size_t i = 0; i < s_.clusters.size(); ++i) {
      const Cluster& c = s_.clusters[i];
      if (c.name.empty()) {
        e_.add(idx("clusters", i), "name must not be empty");
      } else if (auto [it, fresh] = seen_clusters.emplace(c.name, i); !fresh) {
        e_.add("cluster " + c.name,
               "duplicate cluster name (also clusters[" + std::to_string(it->second) + "])");
      }
      check_endpoints(c, e_);
      check_upstream_tls(c);
    }
    std::unordered_map<std::string, size_t> seen_routes;
    for (size_t i = 0; i < s_.routes.size(); ++i) check_route(s_.routes[i], i, seen_routes);
    std::unordered_map<std::string_view, size_t> seen_certs;
    for (size_t i = 0; i < s_.certificates.size(); ++i) {
      check_certificate(s_.certificates[i], i, seen_certs);
    }
    check_listeners();
    check_rate_limit_store();
    check_passthrough();
    check_host_client_validation();
  }

  static void check_endpoints(const Cluster& c, Errors& e) {
    std::unordered_set<std::string> seen;
    for (size_t i = 0; i < c.endpoints.size(); ++i) {
      const Endpoint& ep = c.endpoints[i];
      auto where = [&] { return "cluster " + c.name + " " + idx("endpoints", i); };
      if (!is_ip(ep.address)) {
        e.add(where(), "address " + quote(ep.address) + " is not an IPv4 or IPv6 literal");
      }
      if (ep.port == 0) e.add(where(), "port must be in 1..65535");
      if (!seen.insert(ep.address + "|" + std::to_string(ep.port)).second) {
        e.add(where(), "duplicate endpoint " + ep.address + " port " + std::to_string(ep.port));
      }
    }
  }

 private:
  // The store of global rate limits: a host:port address, sane limits; a
  // route with rateLimit.scope Global needs it.
  void check_rate_limit_store() {
    if (const auto& st = s_.rate_limit_store) {
      const std::string at = "rateLimitStore";
      auto colon = st->address.rfind(':');
      uint32_t port = 0;
      bool port_ok = colon != std::string::npos && colon > 0 && colon + 1 < st->address.size() &&
                     st->address.size() - colon <= 6;
      for (size_t i = colon + 1; port_ok && i < st->address.size(); ++i) {
        if (st->address[i] < '0' || st->address[i] > '9') port_ok = false;
        else port = port * 10 + static_cast<uint32_t>(st->address[i] - '0');
      }
      if (!port_ok || port == 0 || port > 65535)
        e_.add(at, "address " + quote(st->address) + " must be host:port ([v6]:port)");
      if (st->budget.count() <= 0 || st->budget.count() > 10000) e_.add(at, "budgetMs must be from 1 to 10000");
      if (st->expected_replicas == 0) e_.add(at, "expectedReplicas must be > 0");
      if (st->lease_percent > 100) e_.add(at, "leasePercent must be from 0 to 100");
      if (st->key_prefix.size() > 64 || st->key_prefix.find_first_of("{}") != std::string::npos)
        e_.add(at, "keyPrefix must be at most 64 bytes without '{' or '}' (the proxy adds the hash tag)");
      if (st->database > 15) e_.add(at, "database must be from 0 to 15");
    }
    for (const Route& r : s_.routes)
      for (size_t k = 0; k < r.rules.size(); ++k)
        if (const auto& rl = r.rules[k].filters.rate_limit;
            rl && rl->scope == RateLimitScope::kGlobal && !s_.rate_limit_store)
          e_.add(std::string("route ").append(r.id()).append(" ").append(idx("rules", k)).append(".filters.rateLimit"),
                 "scope global needs the snapshot's rateLimitStore");
  }

  // TLS passthrough: a valid hostname, a cluster of the snapshot, a tls
  // listener of the snapshot (or none: the proxy's own), each (listener,
  // hostname) once.
  void check_passthrough() {
    std::unordered_set<std::string_view> tls_listeners;
    for (const Listener& l : s_.listeners)
      if (l.tls) tls_listeners.insert(l.name);
    std::unordered_map<std::string, size_t> seen;
    for (size_t i = 0; i < s_.passthrough.size(); ++i) {
      const Passthrough& p = s_.passthrough[i];
      std::string where = p.hostname.empty() ? idx("passthrough", i) : std::string("passthrough ").append(p.hostname);
      if (!p.listener.empty()) where.append(" on ").append(p.listener);
      if (!p.owner.empty()) where.append(" (").append(p.owner).append(")");
      if (auto problem = hostname_problem(p.hostname, true); !problem.empty()) e_.add(where + " hostname", problem);
      if (p.cluster.empty()) {
        e_.add(where, "cluster must not be empty");
      } else if (clusters_.count(p.cluster) == 0) {
        e_.add(where, "cluster " + quote(p.cluster) + " is not a cluster of the snapshot");
      }
      if (!p.listener.empty() && tls_listeners.count(p.listener) == 0)
        e_.add(where, "listener " + quote(p.listener) + " is not a tls listener of the snapshot");
      std::string key = p.listener + "|" + p.hostname;
      if (auto [it, fresh] = seen.emplace(key, i); !fresh)
        e_.add(where, "duplicate hostname on its listener (also passthrough[" + std::to_string(it->second) + "])");
    }
  }

  // Client certificates per hostname: a valid hostname once, readable
  // anchors (and CRLs), a sane depth, an absolute error page, a compiling
  // subjectMatch.
  void check_host_client_validation() {
    std::unordered_map<std::string_view, size_t> seen;
    for (size_t i = 0; i < s_.host_client_validation.size(); ++i) {
      const HostClientValidation& v = s_.host_client_validation[i];
      std::string where = idx("hostClientValidation", i);
      if (!v.owner.empty()) where.append(" (").append(v.owner).append(")");
      if (auto p = hostname_problem(v.hostname, true); !p.empty()) e_.add(where + ".hostname", p);
      else if (auto [it, fresh] = seen.emplace(v.hostname, i); !fresh)
        e_.add(where + ".hostname", "duplicate (also hostClientValidation[" + std::to_string(it->second) + "])");
      if (v.ca_pem.empty() || v.ca_pem.size() > (1u << 26)) e_.add(where + ".caPem", "must hold 1 byte to 64 MiB of PEM");
      else if (auto p = ca_pem_problem(v.ca_pem); !p.empty()) e_.add(where + ".caPem", p);
      if (!v.crl_pem.empty())
        if (auto p = crl_pem_problem(v.crl_pem); !p.empty()) e_.add(where + ".crlPem", p);
      if (v.depth < 1 || v.depth > 100) e_.add(where + ".depth", "must be from 1 to 100");
      if (!v.error_page.empty() &&
          (v.error_page.size() > 2048 || !(v.error_page.starts_with("http://") || v.error_page.starts_with("https://") ||
                                           v.error_page.starts_with("/")) ||
           v.error_page.find_first_of(" \t\r\n") != std::string::npos))
        e_.add(where + ".errorPage", "must be an http(s) URL or an absolute path without spaces");
      if (!v.subject_match.empty())
        if (auto p = regex_problem(v.subject_match); !p.empty()) e_.add(where + ".subjectMatch", p);
    }
  }

  // Listeners: unique "address:port" names with an IP literal and a port;
  // every name a route lists is one of them.
  void check_listeners() {
    std::unordered_map<std::string_view, size_t> seen;
    std::unordered_set<std::string> served;  // names routes may list
    for (size_t i = 0; i < s_.listeners.size(); ++i) {
      const Listener& l = s_.listeners[i];
      std::string where = l.name.empty() ? idx("listeners", i) : "listener " + l.name;
      if (!is_ip(l.address)) {
        e_.add(where, "address " + quote(l.address) + " is not an IPv4 or IPv6 literal");
      }
      if (l.port == 0) e_.add(where, "port must be in 1..65535");
      if (l.name != listener_name(l.address, l.port)) {
        e_.add(where, "name must be " + quote(listener_name(l.address, l.port)));
      } else if (auto [it, fresh] = seen.emplace(l.name, i); !fresh) {
        e_.add(where, "duplicate listener (also listeners[" + std::to_string(it->second) + "])");
      }
      served.insert(l.name);
      for (size_t h = 0; h < l.hostnames.size(); ++h) {
        if (auto p = hostname_problem(l.hostnames[h], true); !p.empty()) {
          e_.add(join(where, idx("hostnames", h)), p);
        }
        served.insert(l.name + "/" + l.hostnames[h]);
      }
      if (l.client_validation) {
        const std::string& ca = l.client_validation->ca_pem;
        if (!l.tls) e_.add(where + ".clientValidation", "needs tls");
        if (ca.empty() || ca.size() > (1u << 26)) {
          e_.add(where + ".clientValidation.caPem", "must hold 1 byte to 64 MiB of PEM");
        } else if (auto p = ca_pem_problem(ca); !p.empty()) {
          e_.add(where + ".clientValidation.caPem", p);
        }
      }
    }
    for (const Route& r : s_.routes) {
      for (size_t k = 0; k < r.listeners.size(); ++k) {
        if (served.count(r.listeners[k]) == 0) {
          e_.add(join("route " + r.id(), idx("listeners", k)),
                 quote(r.listeners[k]) + " is not a listener of the snapshot");
        }
      }
    }
  }

  void check_route(const Route& r, size_t i, std::unordered_map<std::string, size_t>& seen) {
    std::string where;
    if (r.namespace_.empty() || r.name.empty()) {
      where = idx("routes", i);
      if (r.namespace_.empty()) e_.add(where, "namespace must not be empty");
      if (r.name.empty()) e_.add(where, "name must not be empty");
    } else {
      where = "route " + r.id();
      if (auto [it, fresh] = seen.emplace(r.id(), i); !fresh) {
        e_.add(where, "duplicate route id (also routes[" + std::to_string(it->second) + "])");
      }
    }
    if (r.kind != "GatewayRoute" && r.kind != "Ingress" && r.kind != "HTTPRoute" &&
        r.kind != "GRPCRoute") {
      e_.add(where, "kind " + quote(r.kind) +
                        " must be \"GatewayRoute\", \"Ingress\", \"HTTPRoute\" or \"GRPCRoute\"");
    }
    for (size_t h = 0; h < r.hostnames.size(); ++h) {
      if (auto p = hostname_problem(r.hostnames[h], true); !p.empty()) {
        e_.add(join(where, idx("hostnames", h)), p);
      }
    }
    for (size_t k = 0; k < r.rules.size(); ++k) {
      check_rule(r.rules[k], join(where, idx("rules", k)));
    }
  }

  void check_value_match(const ValueMatch& m, const std::string& where, bool header) {
    if (header ? !is_token(m.name) : (m.name.empty() || has_control(m.name, false))) {
      e_.add(where,
             "name " + quote(m.name) +
                 (header ? " is not a valid header name" : " is not a valid parameter name"));
    }
    if (m.type == ValueMatchType::kRegularExpression) {
      if (auto p = regex_problem(m.value); !p.empty()) e_.add(where, p);
    } else if (has_control(m.value, header)) {
      e_.add(where, "value " + quote(m.value) + " must not contain control characters");
    }
  }

  void check_match(const RouteMatch& m, const std::string& where) {
    std::string at = where + ".path";
    if (m.path.type == PathMatchType::kRegularExpression) {
      if (auto p = regex_problem(m.path.value); !p.empty()) e_.add(at, p);
    } else if (auto p = path_problem(m.path.value); !p.empty()) {
      e_.add(at, p);
    }
    if (m.method && !is_token(*m.method)) {
      e_.add(where + ".method", quote(*m.method) + " is not a valid HTTP method token");
    }
    for (size_t i = 0; i < m.headers.size(); ++i) {
      check_value_match(m.headers[i], where + "." + idx("headers", i), true);
    }
    for (size_t i = 0; i < m.query_params.size(); ++i) {
      check_value_match(m.query_params[i], where + "." + idx("queryParams", i), false);
    }
  }

  void check_header_modifier(const HeaderModifier& h, const std::string& where) {
    auto values = [&](const std::vector<HeaderValue>& list, std::string_view field) {
      for (size_t i = 0; i < list.size(); ++i) {
        std::string at = where + "." + idx(field, i);
        if (!is_token(list[i].name)) {
          e_.add(at, "name " + quote(list[i].name) + " is not a valid header name");
        }
        if (has_control(list[i].value, true)) {
          e_.add(at, "value " + quote(list[i].value) + " must not contain control characters");
        }
      }
    };
    values(h.set, "set");
    values(h.add, "add");
    for (size_t i = 0; i < h.remove.size(); ++i) {
      if (!is_token(h.remove[i])) {
        e_.add(where + "." + idx("remove", i),
               "name " + quote(h.remove[i]) + " is not a valid header name");
      }
    }
  }

  // An RE2 pattern and the rewrite string applied with it.
  void check_regex_rewrite(const std::string& pattern, const std::string& rewrite,
                           const std::string& where) {
    RE2::Options opts;
    opts.set_log_errors(false);
    RE2 re(pattern, opts);
    if (!re.ok()) {
      e_.add(where, regex_problem(pattern));
      return;
    }
    std::string why;
    if (!re.CheckRewriteString(rewrite, &why))
      e_.add(where, "substitution " + quote(rewrite) + ": " + why);
    if (has_control(rewrite, false))
      e_.add(where, "substitution " + quote(rewrite) + " must not contain control characters");
  }

  void check_path_rewrite(const PathRewrite& p, const Rule& rule, const std::string& where) {
    if (p.type == PathRewriteType::kNone) return;
    if (p.type == PathRewriteType::kRegexReplace) {
      check_regex_rewrite(p.pattern, p.value, where);
      if (p.value.find_first_of("?#") != std::string::npos)
        e_.add(where, "substitution " + quote(p.value) + " must not contain \"?\" or \"#\"");
      return;
    }
    if (auto problem = path_problem(p.value); !problem.empty()) e_.add(where, problem);
    if (p.type == PathRewriteType::kReplacePrefixMatch) {
      for (const auto& m : rule.matches) {
        if (m.path.type != PathMatchType::kPathPrefix) {
          e_.add(where, "ReplacePrefixMatch needs every match of the rule to be a PathPrefix");
          break;
        }
      }
    }
  }

  void check_cluster_ref(const std::string& cluster, const std::string& where) {
    if (!clusters_.contains(cluster)) {
      e_.add(where, "cluster " + quote(cluster) + " is not in the snapshot's clusters");
    }
  }

  void check_cidrs(const std::vector<std::string>& list, const std::string& where) {
    for (size_t i = 0; i < list.size(); ++i) {
      if (auto c = net::parse_cidr(list[i]); !c.ok())
        e_.add(where + "[" + std::to_string(i) + "]", c.error().message);
    }
  }

  void check_filters(const Rule& rule, const std::string& where) {
    const Filters& f = rule.filters;
    if (f.https_redirect) {
      std::string at = where + ".httpsRedirect";
      int code = f.https_redirect->status_code;
      if (code != 301 && code != 302 && code != 303 && code != 307 && code != 308)
        e_.add(at, "statusCode " + std::to_string(code) + " must be one of 301, 302, 303, 307, 308");
      if (f.https_redirect->port && *f.https_redirect->port == 0) e_.add(at, "port must be in 1..65535");
    }
    if (f.hsts && (f.hsts->value.empty() || has_control(f.hsts->value, false)))
      e_.add(where + ".hsts", "value must be a non-empty field value without control characters");
    if (f.source_range) {
      std::string at = where + ".sourceRange";
      check_cidrs(f.source_range->allow, at + ".allow");
      check_cidrs(f.source_range->deny, at + ".deny");
      if (f.source_range->allow.empty() && f.source_range->deny.empty())
        e_.add(at, "allow and deny must not both be empty");
    }
    if (f.cors) {
      std::string at = where + ".cors";
      for (size_t i = 0; i < f.cors->allow_origins.size(); ++i) {
        const auto& o = f.cors->allow_origins[i];
        if (o.empty() || has_control(o, false) || o.find(' ') != std::string::npos) {
          e_.add(at + "." + idx("allowOrigins", i), "invalid origin " + quote(o));
        }
      }
      for (size_t i = 0; i < f.cors->allow_methods.size(); ++i) {
        if (!is_token(f.cors->allow_methods[i])) {
          e_.add(at + "." + idx("allowMethods", i),
                 quote(f.cors->allow_methods[i]) + " is not a valid HTTP method token");
        }
      }
      auto names = [&](const std::vector<std::string>& list, std::string_view field) {
        for (size_t i = 0; i < list.size(); ++i) {
          if (!is_token(list[i])) {
            e_.add(at + "." + idx(field, i), quote(list[i]) + " is not a valid header name");
          }
        }
      };
      names(f.cors->allow_headers, "allowHeaders");
      names(f.cors->expose_headers, "exposeHeaders");
    }
    if (f.rate_limit) {
      std::string at = where + ".rateLimit";
      if (f.rate_limit->requests == 0) e_.add(at, "requests must be > 0");
      if (f.rate_limit->interval.count() <= 0) e_.add(at, "interval must be > 0");
      const std::string& key = f.rate_limit->key;
      if (key != "ClientIP" && key != "Consumer" &&
          !(key.starts_with("Header:") && is_token(std::string_view(key).substr(7)))) {
        e_.add(at, "key " + quote(key) + " must be \"ClientIP\", \"Consumer\" or \"Header:<name>\"");
      }
      if (f.rate_limit->status_code < 400 || f.rate_limit->status_code > 599)
        e_.add(at, "statusCode " + std::to_string(f.rate_limit->status_code) + " must be from 400 to 599");
      check_cidrs(f.rate_limit->exempt_sources, at + ".exemptSources");
    }
    if (f.connection_limit) {
      std::string at = where + ".connectionLimit";
      if (f.connection_limit->per_client_ip == 0) e_.add(at, "perClientIp must be > 0");
      if (f.connection_limit->status_code < 400 || f.connection_limit->status_code > 599)
        e_.add(at, "statusCode " + std::to_string(f.connection_limit->status_code) + " must be from 400 to 599");
      check_cidrs(f.connection_limit->exempt_sources, at + ".exemptSources");
    }
    if (f.default_backend) {
      std::string at = where + ".defaultBackend";
      check_cluster_ref(f.default_backend->cluster, at + ".cluster");
      for (size_t i = 0; i < f.default_backend->intercept_statuses.size(); ++i)
        if (int st = f.default_backend->intercept_statuses[i]; st < 400 || st > 599)
          e_.add(at + "." + idx("interceptStatuses", i), std::to_string(st) + " must be from 400 to 599");
      for (const std::string* v : {&f.default_backend->namespace_, &f.default_backend->ingress_name,
                                   &f.default_backend->service_name, &f.default_backend->service_port})
        if (has_control(*v, false)) e_.add(at, quote(*v) + " has control characters");
    }
    if (f.api_key) {
      std::string at = where + ".apiKey";
      const ApiKey& a = *f.api_key;
      if (a.header.empty() && a.query_param.empty()) e_.add(at, "header and queryParam must not both be empty");
      if (!a.header.empty() && !is_token(a.header)) e_.add(at + ".header", quote(a.header) + " is not a valid header name");
      if (!a.query_param.empty() && (has_control(a.query_param, false) ||
                                     a.query_param.find_first_of("&=# ") != std::string::npos))
        e_.add(at + ".queryParam", quote(a.query_param) + " is not a valid query parameter name");
      if (!a.consumer_header.empty() && !is_token(a.consumer_header))
        e_.add(at + ".consumerHeader", quote(a.consumer_header) + " is not a valid header name");
      if (a.unknown_key_status != 401 && a.unknown_key_status != 403)
        e_.add(at + ".unknownKeyStatus", std::to_string(a.unknown_key_status) + " must be 401 or 403");
      for (size_t i = 0; i < a.keys.size(); ++i) {
        const ApiKeyEntry& k = a.keys[i];
        std::string ki = at + "." + idx("keys", i);
        if (k.consumer.empty() || has_control(k.consumer, false))
          e_.add(ki + ".consumer", "must be non-empty text without control characters");
        bool hex = k.sha256.size() == 64 &&
                   k.sha256.find_first_not_of("0123456789abcdef") == std::string::npos;
        if (!hex) e_.add(ki + ".sha256", "must be 64 lower-case hex digits");
      }
    }
    if (f.basic_auth) {
      std::string at = where + ".basicAuth";
      const BasicAuth& b = *f.basic_auth;
      if (b.realm.empty() || has_control(b.realm, false) || b.realm.find_first_of("\"\\") != std::string::npos)
        e_.add(at + ".realm", "must be non-empty text without control characters, quotes or backslashes");
      if (!b.consumer_header.empty() && !is_token(b.consumer_header))
        e_.add(at + ".consumerHeader", quote(b.consumer_header) + " is not a valid header name");
      for (size_t i = 0; i < b.users.size(); ++i) {
        const BasicAuthUser& u = b.users[i];
        std::string ui = at + "." + idx("users", i);
        if (u.name.empty() || has_control(u.name, false) || u.name.find(':') != std::string::npos)
          e_.add(ui + ".name", "must be non-empty text without control characters or \":\"");
        std::string_view h = u.hash;
        if (!(h.starts_with("$2a$") || h.starts_with("$2b$") || h.starts_with("$2y$") ||
              h.starts_with("$5$") || h.starts_with("$6$")))
          e_.add(ui + ".hash", "must be a bcrypt ($2a$, $2b$, $2y$), SHA-256 ($5$) or SHA-512 ($6$) crypt hash");
      }
    }
    if (f.ext_auth) {
      std::string at = where + ".extAuth";
      const ExtAuth& a = *f.ext_auth;
      if (a.host.empty() || has_control(a.host, false) || a.host.find_first_of(" /?#@") != std::string::npos)
        e_.add(at + ".host", "must be a host name or an IP address");
      if (a.port == 0) e_.add(at + ".port", "must be from 1 to 65535");
      if (!a.path.starts_with("/") || has_control(a.path, false) || a.path.find(' ') != std::string::npos)
        e_.add(at + ".path", "must start with / and have no spaces or control characters");
      if (a.authority.empty() || has_control(a.authority, false) || a.authority.find(' ') != std::string::npos)
        e_.add(at + ".authority", "must be non-empty without spaces or control characters");
      if (!a.method.empty() && !is_token(a.method)) e_.add(at + ".method", quote(a.method) + " is not a method");
      for (const auto* list : {&a.request_headers, &a.response_headers})
        for (size_t i = 0; i < list->size(); ++i)
          if (!is_token((*list)[i]))
            e_.add(at + "." + idx(list == &a.request_headers ? "requestHeaders" : "responseHeaders", i),
                   quote((*list)[i]) + " is not a valid header name");
      if (!a.signin.empty() && (has_control(a.signin, false) || a.signin.find(' ') != std::string::npos))
        e_.add(at + ".signin", "must be a URL without spaces or control characters");
      if (a.signin_redirect_param.empty() || a.signin_redirect_param.find_first_of("&=#? ") != std::string::npos ||
          has_control(a.signin_redirect_param, false))
        e_.add(at + ".signinRedirectParam", "must be a query parameter name");
      if (a.timeout.count() <= 0) e_.add(at + ".timeoutMs", "must be above 0");
      if (a.status_on_error < 400 || a.status_on_error > 599)
        e_.add(at + ".statusOnError", std::to_string(a.status_on_error) + " must be from 400 to 599");
      if (a.cache_ttl.count() < 0) e_.add(at + ".cacheTtlMs", "must not be negative");
      if (a.cache_ttl.count() > 0 && a.cache_max_entries == 0)
        e_.add(at + ".cacheMaxEntries", "must be above 0 when the cache is on");
      if (a.body_max_bytes > (uint64_t{64} << 20)) e_.add(at + ".bodyMaxBytes", "must be at most 64Mi");
      if (!a.ca_pem.empty() && !a.tls) e_.add(at + ".caPem", "needs tls");
    }
    if (f.jwt) {
      std::string at = where + ".jwt";
      const Jwt& j = *f.jwt;
      if (j.algorithms.empty()) e_.add(at, "algorithms must not be empty");
      for (const auto& a : j.algorithms) {
        if (a == "HS256") {
          if (j.hmac_secret.empty()) e_.add(at, "HS256 needs an hmac secret");
        } else if (a == "RS256" || a == "ES256") {
          if (j.jwks.empty()) e_.add(at, a + " needs jwks (JWKS JSON or PEM public keys)");
        } else {
          e_.add(at, "algorithm " + quote(a) + " is not one of HS256, RS256, ES256");
        }
      }
      for (size_t i = 0; i < j.claims_to_headers.size(); ++i) {
        const auto& c = j.claims_to_headers[i];
        std::string at_i = at + "." + idx("claimsToHeaders", i);
        if (c.claim.empty()) e_.add(at_i, "claim must not be empty");
        if (!is_token(c.header)) e_.add(at_i, quote(c.header) + " is not a valid header name");
      }
    }
    if (f.request_headers) check_header_modifier(*f.request_headers, where + ".requestHeaders");
    if (f.response_headers) check_header_modifier(*f.response_headers, where + ".responseHeaders");
    if (f.request_redirect) {
      const RequestRedirect& r = *f.request_redirect;
      std::string at = where + ".requestRedirect";
      if (r.status_code != 301 && r.status_code != 302 && r.status_code != 303 &&
          r.status_code != 307 && r.status_code != 308) {
        e_.add(at, "statusCode " + std::to_string(r.status_code) +
                       " must be one of 301, 302, 303, 307, 308");
      }
      if (r.scheme && *r.scheme != "http" && *r.scheme != "https") {
        e_.add(at, "scheme " + quote(*r.scheme) + " must be \"http\" or \"https\"");
      }
      if (r.hostname) {
        if (auto p = hostname_problem(*r.hostname, false); !p.empty()) e_.add(at, p);
      }
      if (r.port && *r.port == 0) e_.add(at, "port must be in 1..65535");
      check_path_rewrite(r.path, rule, at + ".path");
      if (r.location) {
        if (!r.location_pattern.empty()) {
          check_regex_rewrite(r.location_pattern, *r.location, at + ".location");
        } else if (has_control(*r.location, false) || r.location->find(' ') != std::string::npos) {
          e_.add(at, "location " + quote(*r.location) + " must not contain spaces or control characters");
        }
        // An absolute URL, or a reference the client resolves against the
        // request's URL ("/path", "//host/path": its scheme, host and port).
        if (!r.location->starts_with("http://") && !r.location->starts_with("https://") &&
            !r.location->starts_with("/"))
          e_.add(at, "location " + quote(*r.location) + " must be an http:// or https:// URL or start with \"/\"");
      } else if (!r.location_pattern.empty()) {
        e_.add(at, "locationPattern needs a location");
      }
    }
    if (f.url_rewrite) {
      std::string at = where + ".urlRewrite";
      if (f.url_rewrite->hostname) {
        if (auto p = hostname_problem(*f.url_rewrite->hostname, false); !p.empty()) e_.add(at, p);
      }
      check_path_rewrite(f.url_rewrite->path, rule, at + ".path");
      if (f.request_redirect) {
        e_.add(where, "requestRedirect and urlRewrite cannot be used in the same rule");
      }
    }
    if (f.request_mirrors.size() > 16)
      e_.add(where + ".requestMirrors", "at most 16 mirrors per rule, got " + std::to_string(f.request_mirrors.size()));
    for (size_t i = 0; i < f.request_mirrors.size(); ++i) {
      const RequestMirror& m = f.request_mirrors[i];
      std::string at = where + "." + idx("requestMirrors", i);
      check_cluster_ref(m.cluster, at);
      if (m.denominator == 0 || m.numerator > m.denominator)
        e_.add(at, "numerator " + std::to_string(m.numerator) + " / denominator " +
                       std::to_string(m.denominator) + " is not a share (want 0 <= numerator <= denominator, denominator >= 1)");
    }
    if (f.cache && f.cache->max_object_bytes > f.cache->max_bytes) {
      e_.add(where + ".cache", "maxObjectBytes must not exceed maxBytes");
    }
  }

  void check_policy(const Policy& p, const std::string& where) {
    const LoadBalancer& lb = p.load_balancer;
    std::string at = where + ".loadBalancer";
    if (lb.type == LoadBalancerType::kConsistentHash) {
      if (lb.hash_on == HashOn::kNone) {
        e_.add(at, "ConsistentHash needs hashOn (Header, Cookie or SourceIP)");
      } else if (lb.hash_on != HashOn::kSourceIP && !is_token(lb.hash_key)) {
        e_.add(at, "hashKey " + quote(lb.hash_key) + " must name a header or cookie");
      }
    } else if (lb.hash_on != HashOn::kNone) {
      e_.add(at, "hashOn is only used with type ConsistentHash");
    }
    // The cookie's attributes go verbatim into Set-Cookie (RFC 6265 4.1.1).
    bool cookie = lb.type == LoadBalancerType::kConsistentHash && lb.hash_on == HashOn::kCookie;
    auto attribute = [&](const std::string& v, const char* name) {
      if (v.empty()) return;
      if (!cookie) e_.add(at, std::string(name).append(" needs hashOn Cookie"));
      if (v.size() > 1024 || v.find(';') != std::string::npos ||
          std::any_of(v.begin(), v.end(), [](char ch) { return static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f; }))
        e_.add(at, std::string(name).append(" must be at most 1024 bytes without ';' or control characters"));
    };
    attribute(lb.cookie_path, "cookiePath");
    attribute(lb.cookie_domain, "cookieDomain");
    if (!lb.cookie_path.empty() && lb.cookie_path.front() != '/') e_.add(at, "cookiePath must start with /");
    if (!lb.cookie_domain.empty()) {
      std::string d = lb.cookie_domain.front() == '.' ? lb.cookie_domain.substr(1) : lb.cookie_domain;
      if (auto problem = hostname_problem(d, false); !problem.empty()) e_.add(at + ".cookieDomain", problem);
    }
    if (!lb.cookie_same_site.empty() && lb.cookie_same_site != "Strict" && lb.cookie_same_site != "Lax" &&
        lb.cookie_same_site != "None")
      e_.add(at, "cookieSameSite must be Strict, Lax or None, not " + quote(lb.cookie_same_site));
    if ((lb.cookie_secure != CookieSecure::kNever || lb.cookie_same_site_none_if_compatible) && !cookie)
      e_.add(at, "cookieSecure and cookieSameSiteNoneIfCompatible need hashOn Cookie");
    if (p.health_check) {
      const HealthCheck& h = *p.health_check;
      at = where + ".healthCheck";
      if (auto problem = path_problem(h.path); !problem.empty()) e_.add(at + ".path", problem);
      if (h.interval.count() <= 0) e_.add(at, "interval must be > 0");
      if (h.timeout.count() <= 0) e_.add(at, "timeout must be > 0");
      if (h.healthy_threshold == 0) e_.add(at, "healthyThreshold must be >= 1");
      if (h.unhealthy_threshold == 0) e_.add(at, "unhealthyThreshold must be >= 1");
      if (h.grpc) {
        if (h.grpc->service.size() > 256) e_.add(at + ".grpc.service", "longer than 256 bytes");
        for (char ch : h.grpc->service)
          if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) {
            e_.add(at + ".grpc.service", "holds a control character");
            break;
          }
        if (!h.expected_statuses.empty()) e_.add(at, "expectedStatuses apply to HTTP checks, not to grpc");
      }
      for (int s : h.expected_statuses) {
        if (!is_status(s)) e_.add(at, "expected status " + std::to_string(s) + " not in 100..599");
      }
    }
    if (p.outlier_detection && p.outlier_detection->max_ejection_percent > 100) {
      e_.add(where + ".outlierDetection", "maxEjectionPercent must be <= 100");
    }
    if (p.circuit_breaker) {
      const CircuitBreaker& c = *p.circuit_breaker;
      at = where + ".circuitBreaker";
      if (!(c.failure_ratio >= 0 && c.failure_ratio <= 1)) {
        e_.add(at, "failureRatio must be in [0, 1]");
      }
      if (c.failure_ratio > 0 && c.window.count() <= 0) {
        e_.add(at, "window must be > 0 when failureRatio is set");
      }
      if (c.open_duration.count() <= 0) e_.add(at, "openDuration must be > 0");
      if (c.half_open_requests == 0) e_.add(at, "halfOpenRequests must be >= 1");
    }
    if (p.tracing && !(p.tracing->sampling >= 0 && p.tracing->sampling <= 1)) {
      e_.add(where + ".tracing", "sampling must be in [0, 1]");
    }
    if (p.retry) {
      const Retry& r = *p.retry;
      at = where + ".retry";
      for (int s : r.on_statuses) {
        if (!is_status(s)) e_.add(at, "status " + std::to_string(s) + " not in 100..599");
      }
      if (r.backoff_base > r.backoff_max) e_.add(at, "backoffBase must not exceed backoffMax");
      if (r.per_try_timeout && r.per_try_timeout->count() <= 0) {
        e_.add(at, "perTryTimeout must be > 0");
      }
    }
  }

  void check_rule(const Rule& r, const std::string& where) {
    for (size_t i = 0; i < r.matches.size(); ++i) {
      check_match(r.matches[i], where + "." + idx("matches", i));
    }
    check_filters(r, where + ".filters");
    if (r.backends.empty() && !r.filters.request_redirect) {
      e_.add(where, "rule has neither backends nor a requestRedirect");
    }
    for (size_t i = 0; i < r.backends.size(); ++i) {
      const BackendRef& b = r.backends[i];
      std::string at = where + "." + idx("backends", i);
      if (b.weight > kMaxWeight) {
        e_.add(at, "weight " + std::to_string(b.weight) + " must be <= 1000000");
      }
      if (b.request_headers) check_header_modifier(*b.request_headers, at + ".requestHeaders");
      if (b.response_headers) check_header_modifier(*b.response_headers, at + ".responseHeaders");
      if (!b.unresolved.empty()) continue;
      if (b.cluster.empty()) {
        e_.add(at, "needs a cluster or an unresolved reason");
      } else {
        check_cluster_ref(b.cluster, at);
      }
    }
    check_policy(r.policy, where + ".policy");
  }

  void check_certificate(const TlsCertificate& c, size_t i,
                         std::unordered_map<std::string_view, size_t>& seen);
  void check_upstream_tls(const Cluster& c);

  const Snapshot& s_;
  Errors& e_;
  std::unordered_set<std::string_view> clusters_;
};

// ---------------------------------------------------------------- TLS

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};

// Never prompt for a passphrase: an encrypted key is an error.
int no_passphrase(char*, int, int, void*) { return -1; }

std::unique_ptr<BIO, BioFree> mem_bio(const std::string& s) {
  return std::unique_ptr<BIO, BioFree>(BIO_new_mem_buf(s.data(), static_cast<int>(s.size())));
}

void Validator::check_certificate(const TlsCertificate& c, size_t i,
                                  std::unordered_map<std::string_view, size_t>& seen) {
  std::string where = c.name.empty() ? idx("certificates", i) : "certificate " + c.name;
  if (c.name.empty()) {
    e_.add(where, "name must not be empty");
  } else if (auto [it, fresh] = seen.emplace(c.name, i); !fresh) {
    e_.add(where,
           "duplicate certificate name (also certificates[" + std::to_string(it->second) + "])");
  }
  if (c.hostnames.empty()) e_.add(where, "hostnames must not be empty");
  for (size_t h = 0; h < c.hostnames.size(); ++h) {
    if (auto p = hostname_problem(c.hostnames[h], true); !p.empty()) {
      e_.add(join(where, idx("hostnames", h)), p);
    }
  }
  if (c.cert_pem.size() > (1u << 30) || c.key_pem.size() > (1u << 30)) {
    e_.add(where, "PEM data too large");
    return;
  }
  ERR_clear_error();
  auto cert_bio = mem_bio(c.cert_pem);
  std::unique_ptr<X509, X509Free> cert(
      PEM_read_bio_X509(cert_bio.get(), nullptr, no_passphrase, nullptr));
  if (!cert) e_.add(where, "certPem does not hold a PEM certificate: " + openssl_error("no PEM data found"));
  auto key_bio = mem_bio(c.key_pem);
  std::unique_ptr<EVP_PKEY, PkeyFree> key(
      PEM_read_bio_PrivateKey(key_bio.get(), nullptr, no_passphrase, nullptr));
  if (!key) {
    e_.add(where, "keyPem does not hold an unencrypted PEM private key: " + openssl_error("no PEM data found"));
  }
  if (cert && key && X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    e_.add(where, "keyPem does not match the certificate in certPem");
  }
}

// Trust anchors: one or more readable PEM certificates; else why not.
std::string ca_pem_problem(const std::string& pem) {
  ERR_clear_error();
  auto bio = mem_bio(pem);
  size_t n = 0;
  while (true) {
    std::unique_ptr<X509, X509Free> ca(PEM_read_bio_X509(bio.get(), nullptr, no_passphrase, nullptr));
    if (!ca) break;
    ++n;
  }
  // The loop ends on "no start line" after the last block; anything else is damage.
  unsigned long last = ERR_peek_last_error();
  ERR_clear_error();
  if (n == 0) return "does not hold a PEM certificate";
  if (last != 0 && ERR_GET_REASON(last) != PEM_R_NO_START_LINE)
    return std::string("certificate ").append(std::to_string(n + 1)).append(" is not readable PEM");
  return {};
}

// Revocation lists: one or more readable PEM CRLs; else why not.
std::string crl_pem_problem(const std::string& pem) {
  ERR_clear_error();
  auto bio = mem_bio(pem);
  size_t n = 0;
  while (X509_CRL* crl = PEM_read_bio_X509_CRL(bio.get(), nullptr, no_passphrase, nullptr)) {
    X509_CRL_free(crl);
    ++n;
  }
  unsigned long last = ERR_peek_last_error();
  ERR_clear_error();
  if (n == 0) return "does not hold a PEM certificate revocation list";
  if (last != 0 && ERR_GET_REASON(last) != PEM_R_NO_START_LINE)
    return std::string("revocation list ").append(std::to_string(n + 1)).append(" is not readable PEM");
  return {};
}

}  // namespace

// A cluster's `tls`: readable PEM (every block of caPem a certificate, an
// unencrypted client key matching its certificate), something to verify
// against, names a TLS client can send, and H2 only over TLS.
void Validator::check_upstream_tls(const Cluster& c) {
  std::string where = "cluster " + c.name;
  if (!c.tls) {
    if (c.protocol == ClusterProtocol::kH2) e_.add(where, "protocol H2 (HTTP/2 over TLS) needs tls");
    return;
  }
  const UpstreamTls& t = *c.tls;
  where += " tls";
  if (!t.server_name.empty()) {
    if (auto p = hostname_problem(t.server_name, false); !p.empty()) e_.add(where + ".serverName", p);
  }
  if (t.verify && t.ca_pem.empty() && !t.system_ca) {
    e_.add(where, "verify needs caPem or systemCa (or verify false)");
  }
  if (t.verify && t.server_name.empty() && t.subject_alt_names.empty()) {
    e_.add(where, "verify needs serverName or subjectAltNames (the name the certificate must carry)");
  }
  for (size_t i = 0; i < t.subject_alt_names.size(); ++i) {
    const std::string& n = t.subject_alt_names[i];
    if (n.empty() || n.size() > 2048) e_.add(where + "." + idx("subjectAltNames", i), "must be 1..2048 bytes");
  }
  for (size_t i = 0; i < t.alpn.size(); ++i) {
    if (t.alpn[i].empty() || t.alpn[i].size() > 255) e_.add(where + "." + idx("alpn", i), "must be 1..255 bytes");
  }
  if (!t.min_version.empty() && t.min_version != "TLS1.2" && t.min_version != "TLS1.3") {
    e_.add(where + ".minVersion", std::string("must be TLS1.2 or TLS1.3, not ").append(quote(t.min_version)));  // GCC PR 105329
  }
  if (t.ca_pem.size() > (1u << 26) || t.client_cert_pem.size() > (1u << 26) || t.client_key_pem.size() > (1u << 26)) {
    e_.add(where, "PEM data too large");
    return;
  }
  if (!t.ca_pem.empty()) {
    if (auto p = ca_pem_problem(t.ca_pem); !p.empty()) e_.add(where + ".caPem", p);
  }
  if (t.client_cert_pem.empty() != t.client_key_pem.empty()) {
    e_.add(where, "clientCertPem and clientKeyPem go together");
  } else if (!t.client_cert_pem.empty()) {
    ERR_clear_error();
    auto cert_bio = mem_bio(t.client_cert_pem);
    std::unique_ptr<X509, X509Free> cert(PEM_read_bio_X509(cert_bio.get(), nullptr, no_passphrase, nullptr));
    // std::string(...).append(): GCC PR 105329 (-Wrestrict on "literal" + std::string&&).
    if (!cert) e_.add(where + ".clientCertPem", std::string("does not hold a PEM certificate: ").append(openssl_error("no PEM data found")));
    auto key_bio = mem_bio(t.client_key_pem);
    std::unique_ptr<EVP_PKEY, PkeyFree> key(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, no_passphrase, nullptr));
    if (!key)
      e_.add(where + ".clientKeyPem",
             std::string("does not hold an unencrypted PEM private key: ").append(openssl_error("no PEM data found")));
    if (cert && key && X509_check_private_key(cert.get(), key.get()) != 1) {
      ERR_clear_error();
      e_.add(where, "clientKeyPem does not match the certificate in clientCertPem");
    }
  }
}

std::vector<std::string> validate(const Snapshot& s) {
  Errors errors;
  Validator(s, errors).run();
  return std::move(errors).take();
}

std::vector<std::string> validate(const EndpointDelta& d, const Snapshot& current) {
  Errors errors;
  if (d.base_version != current.version) {
    errors.add_line("delta base version " + std::to_string(d.base_version) +
                    " does not match current version " + std::to_string(current.version));
  }
  if (d.version <= d.base_version) {
    errors.add_line("delta version " + std::to_string(d.version) +
                    " must be greater than base version " + std::to_string(d.base_version));
  }
  std::unordered_set<std::string_view> known;
  for (const auto& c : current.clusters) known.insert(c.name);
  std::unordered_set<std::string_view> seen;
  for (size_t i = 0; i < d.clusters.size(); ++i) {
    const Cluster& c = d.clusters[i];
    if (!known.contains(c.name)) {
      errors.add("delta " + idx("clusters", i),
                 "cluster " + quote(c.name) + " is not in the current snapshot");
    } else if (!seen.insert(c.name).second) {
      errors.add("delta cluster " + c.name, "listed twice");
    }
    Validator::check_endpoints(c, errors);
  }
  return std::move(errors).take();
}

Snapshot apply(const EndpointDelta& d, const Snapshot& current) {
  Snapshot next = current;
  std::unordered_map<std::string_view, const Cluster*> updates;
  for (const auto& c : d.clusters) updates[c.name] = &c;
  for (auto& c : next.clusters) {
    if (auto it = updates.find(c.name); it != updates.end()) c.endpoints = it->second->endpoints;
  }
  next.version = d.version;
  return next;
}

}  // namespace gantry::snapshot
