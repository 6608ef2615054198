// Gateway API attachment and status; see gateway_api.h.
#include "controller/core/gateway_api.h"
#include "controller/core/gateway_service.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <optional>
#include <tuple>

#include "controller/core/gateway_frontend_tls.h"

namespace gantry::controller {

namespace {

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool labels_match(const std::map<std::string, std::string>& labels, const LabelSelector& sel) {
  for (const auto& [k, v] : sel.match_labels) {
    auto it = labels.find(k);
    if (it == labels.end() || it->second != v) return false;
  }
  for (const auto& e : sel.match_expressions) {
    auto it = labels.find(e.key);
    bool has = it != labels.end();
    bool in = has && std::find(e.values.begin(), e.values.end(), it->second) != e.values.end();
    if (e.op == "In" && !in) return false;
    if (e.op == "NotIn" && in) return false;
    if (e.op == "Exists" && !has) return false;
    if (e.op == "DoesNotExist" && has) return false;
  }
  return true;
}

bool is_http_protocol(const std::string& p) { return p == "HTTP" || p == "HTTPS"; }

Condition cond(const char* type, bool status, std::string reason, std::string message,
               int64_t generation) {
  return Condition{type, status, std::move(reason), std::move(message), generation};
}

nlohmann::json conditions_json(const std::vector<Condition>& conds) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& c : conds)
    out.push_back({{"type", c.type},
                   {"status", c.status ? "True" : "False"},
                   {"reason", c.reason},
                   {"message", c.message},
                   {"observedGeneration", c.observed_generation}});
  return out;
}

// status.listeners of a Gateway or a ListenerSet.
nlohmann::json listeners_json(const std::vector<ListenerState>& states) {
  nlohmann::json listeners = nlohmann::json::array();
  for (const auto& ls : states) {
    nlohmann::json kinds = nlohmann::json::array();
    for (const auto& k : ls.supported_kinds) kinds.push_back({{"group", k.group}, {"kind", k.kind}});
    listeners.push_back({{"name", ls.name},
                         {"supportedKinds", kinds},
                         {"attachedRoutes", ls.attached_routes},
                         {"conditions", conditions_json(ls.conditions)}});
  }
  return listeners;
}

nlohmann::json parent_ref_json(const GwParentRef& r) {
  nlohmann::json j{{"group", r.group}, {"kind", r.kind}, {"name", r.name}};
  if (r.namespace_) j["namespace"] = *r.namespace_;
  if (r.section_name) j["sectionName"] = *r.section_name;
  if (r.port) j["port"] = *r.port;
  return j;
}

// Does listener `l` of a Gateway in `gw_ns` allow routes of kind HTTPRoute from `route_ns`?
bool allows_namespace(const Cache& cache, const GwListener& l, const std::string& gw_ns,
                      const std::string& route_ns) {
  if (l.allowed_from == "All") return true;
  if (l.allowed_from == "Same") return route_ns == gw_ns;
  if (!l.allowed_selector) return false;
  auto it = cache.namespaces.find(route_ns);
  if (it == cache.namespaces.end()) return false;
  return labels_match(it->second.meta.labels, *l.allowed_selector);
}


// The addresses of --gateway-address: each entry as written, an IPv4 CIDR as
// its host addresses (network and broadcast left out below /31), at most
// kMaxPoolRange of each range.
constexpr uint32_t kMaxPoolRange = 4096;
std::vector<std::string> expand_pool(const std::vector<std::string>& entries) {
  std::vector<std::string> out;
  std::set<std::string> seen;
  auto add = [&](std::string a) {
    if (seen.insert(a).second) out.push_back(std::move(a));
  };
  for (const auto& e : entries) {
    size_t slash = e.find('/');
    in_addr base{};
    if (slash == std::string::npos || ::inet_pton(AF_INET, e.substr(0, slash).c_str(), &base) != 1) {
      add(e);
      continue;
    }
    int bits = std::atoi(e.c_str() + slash + 1);
    if (bits < 0 || bits > 32) continue;
    uint32_t mask = bits == 0 ? 0 : ~uint32_t{0} << (32 - bits);
    uint32_t first = ntohl(base.s_addr) & mask, last = first | ~mask;
    if (bits < 31) {
      ++first;
      --last;
    }
    for (uint64_t a = first; a <= last && a - first < kMaxPoolRange; ++a) {
      in_addr x{};
      x.s_addr = htonl(static_cast<uint32_t>(a));
      char buf[INET_ADDRSTRLEN];
      ::inet_ntop(AF_INET, &x, buf, sizeof buf);
      add(buf);
    }
  }
  return out;
}


// status.addresses and the bind address of every Gateway: spec.addresses
// when given (each must be of a supported type and in the pool), else one
// address of the pool: the one its name hashes to, or the next free one;
// older Gateways choose first. When the pool has fewer addresses than
// Gateways, the last ones share.
void assign_addresses(std::vector<GatewayState*>& order, const GatewayApiOptions& options) {
  std::vector<std::string> pool = expand_pool(options.addresses);
  std::set<std::string> in_pool(pool.begin(), pool.end()), used;
  for (auto& a : expand_pool(options.static_addresses)) in_pool.insert(std::move(a));
  // spec.addresses entries with a value name the address; one without a
  // value (GatewayAddressEmpty) asks for any address of its type from the
  // pool, like a Gateway without spec.addresses.
  auto named = [](const Gateway& gw) {
    return std::any_of(gw.addresses.begin(), gw.addresses.end(),
                       [](const GwAddress& a) { return !a.value.empty(); });
  };
  auto wanted_type = [](const Gateway& gw) -> std::string {
    for (const auto& a : gw.addresses)
      if (a.value.empty() && (a.type == "IPAddress" || a.type == "Hostname")) return a.type;
    return "";
  };
  auto of_type = [](const std::string& addr, const std::string& type) {
    return type.empty() || (type == "IPAddress") == is_ip(addr);
  };
  for (GatewayState* gs : order) {
    const Gateway& gw = *gs->gateway;
    for (const auto& a : gw.addresses) {
      if (a.type != "IPAddress" && a.type != "Hostname") {
        gs->unsupported_address = "address type " + a.type + " is not supported (want IPAddress or Hostname)";
      } else if (a.value.empty()) {
        continue;  // assigned from the pool below
      } else if (!in_pool.count(a.value) && !(options.any_spec_address && is_ip(a.value))) {
        if (gs->unusable_address.empty())
          gs->unusable_address = "address " + a.value + " is not one gantry serves (--gateway-address)";
      } else {
        gs->addresses.push_back(a);
        used.insert(a.value);
      }
    }
  }
  // A Gateway keeps the address it has (its status) while that stays in the
  // pool and no older Gateway has it: clients that read it keep reaching it.
  std::set<const GatewayState*> kept;
  for (GatewayState* gs : order) {
    const Gateway& gw = *gs->gateway;
    if (options.bind_address == kBindService || named(gw) || pool.empty() || gw.status_addresses.empty())
      continue;
    const std::string& had = gw.status_addresses.front();
    if (in_pool.count(had) == 0 || used.count(had) != 0 || !of_type(had, wanted_type(gw)) ||
        std::find(pool.begin(), pool.end(), had) == pool.end() || pool.size() < order.size())
      continue;
    used.insert(had);
    gs->addresses.push_back({is_ip(had) ? "IPAddress" : "Hostname", had});
    kept.insert(gs);
  }
  const bool service = options.bind_address == kBindService;
  for (GatewayState* gs : order) {
    const Gateway& gw = *gs->gateway;
    if (service || named(gw) || pool.empty() || kept.count(gs) != 0) continue;
    const std::string type = wanted_type(gw);
    size_t start = fnv1a(gw.meta.key()) % pool.size();
    std::optional<size_t> pick, shared;
    for (size_t i = 0; i < pool.size(); ++i) {
      size_t k = (start + i) % pool.size();
      if (!of_type(pool[k], type)) continue;
      if (!shared) shared = k;
      if (!used.count(pool[k])) {
        pick = k;
        break;
      }
    }
    if (!pick) pick = shared;
    if (!pick) {
      if (gs->unusable_address.empty())
        gs->unusable_address = "no " + type + " address to give (--gateway-address)";
      continue;
    }
    used.insert(pool[*pick]);
    gs->addresses.push_back({is_ip(pool[*pick]) ? "IPAddress" : "Hostname", pool[*pick]});
  }
  if (service) return;  // assign_gateway_services (gateway_service.cc)
  for (GatewayState* gs : order) {
    if (!gs->unsupported_address.empty() || !gs->unusable_address.empty() ||
        !gs->invalid_parameters.empty())
      continue;
    if (!options.bind_address.empty()) {
      gs->bind = options.bind_address;
      continue;
    }
    for (const auto& a : gs->addresses)
      if (a.type == "IPAddress" && is_ip(a.value)) {
        gs->bind = a.value;
        break;
      }
  }
}

// The route kinds an HTTP or HTTPS listener takes.
bool is_route_kind(const GwGroupKind& k) {
  return k.group == kGatewayGroup && (k.kind == "HTTPRoute" || k.kind == "GRPCRoute");
}

bool supports_kind(const ListenerState& s, const std::string& kind) {
  for (const auto& k : s.supported_kinds)
    if (k.kind == kind && k.group == kGatewayGroup) return true;
  return false;
}

// Gateway API route precedence between routes: the oldest, then by ns/name.
bool route_before(const HTTPRoute& a, const HTTPRoute& b) {
  return std::tie(a.meta.creation_timestamp, a.meta.namespace_, a.meta.name) <
         std::tie(b.meta.creation_timestamp, b.meta.namespace_, b.meta.name);
}

// One route's attachment to one listener, before conflicts between route kinds.
struct Attachment {
  size_t route = 0;   // index into the routes being attached
  size_t parent = 0;  // index of its verdict (parentRef)
  ListenerState* state = nullptr;   // the listener (a Gateway's or a ListenerSet's)
  const GwListener* listener = nullptr;
  bool any_host = false;           // the route and the listener allow every host
  std::vector<std::string> hosts;  // else: the intersected hostnames
  bool dropped = false;            // lost a conflict with a route of the other kind
};

bool hosts_overlap(const Attachment& a, const Attachment& b) {
  if (a.any_host || b.any_host) return true;
  for (const auto& x : a.hosts)
    for (const auto& y : b.hosts)
      if (!intersect_hostname(x, y).empty()) return true;
  return false;
}

}  // namespace

std::string intersect_hostname(const std::string& route_host, const std::string& listener_host) {
  std::string r = lower(route_host), l = lower(listener_host);
  if (l.empty()) return r;
  if (r.empty()) return l;
  if (r == l) return r;
  auto covers = [](const std::string& wildcard, const std::string& host) {
    // "*.example.com" covers "a.example.com", "a.b.example.com" and "*.a.example.com".
    std::string suffix = wildcard.substr(1);  // ".example.com"
    return host.size() > suffix.size() &&
           host.compare(host.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  bool rw = r.starts_with("*."), lw = l.starts_with("*.");
  if (lw && covers(l, r)) return r;
  if (rw && covers(r, l)) return l;
  return "";
}

bool reference_granted(const Cache& cache, const std::string& from_group,
                       const std::string& from_kind, const std::string& from_ns,
                       const std::string& to_group, const std::string& to_kind,
                       const std::string& to_ns, const std::string& to_name) {
  for (const auto& [key, g] : cache.reference_grants) {
    if (g.meta.namespace_ != to_ns) continue;
    bool from = std::any_of(g.from.begin(), g.from.end(), [&](const RgFrom& f) {
      return f.group == from_group && f.kind == from_kind && f.namespace_ == from_ns;
    });
    if (!from) continue;
    bool to = std::any_of(g.to.begin(), g.to.end(), [&](const RgTo& t) {
      return t.group == to_group && t.kind == to_kind && (!t.name || *t.name == to_name);
    });
    if (to) return true;
  }
  return false;
}

GatewayApiModel build_gateway_api(const Cache& cache, const GatewayApiOptions& options,
                                  const CertificateCheck& check_certificate) {
  GatewayApiModel m;
  std::set<std::string> our_classes;
  for (const auto& [name, c] : cache.gateway_classes) {
    if (c.controller_name != options.controller_name) continue;
    m.classes.push_back(&c);
    our_classes.insert(c.meta.name);
  }

  // ---- Gateways: addresses, then listeners
  for (const auto& [key, gw] : cache.gateways) {
    if (!our_classes.count(gw.gateway_class_name)) continue;
    m.gateways[key].gateway = &gw;
  }
  std::vector<GatewayState*> order;  // oldest first
  for (auto& [key, gs] : m.gateways) order.push_back(&gs);
  std::sort(order.begin(), order.end(), [](const GatewayState* a, const GatewayState* b) {
    return std::tie(a->gateway->meta.creation_timestamp, a->gateway->meta.namespace_,
                    a->gateway->meta.name) < std::tie(b->gateway->meta.creation_timestamp,
                                                      b->gateway->meta.namespace_, b->gateway->meta.name);
  });
  for (GatewayState* gs : order)
    if (const auto& ref = gs->gateway->infrastructure_parameters_ref)
      gs->invalid_parameters = "spec.infrastructure.parametersRef: gantry takes no parameters (" +
                               (ref->group.empty() ? std::string() : ref->group + "/") + ref->kind + " " +
                               ref->name + ")";
  assign_addresses(order, options);
  if (options.bind_address == kBindService) {
    std::map<std::string, std::vector<int64_t>> listener_ports;
    for (const GatewayState* gs : order)
      for (const auto& l : gs->gateway->listeners) listener_ports[gs->gateway->meta.key()].push_back(l.port);
    for (const auto& [key, set] : cache.listener_sets) {
      if (set.parent_group != kGatewayGroup || set.parent_kind != "Gateway") continue;
      std::string gw_key = set.parent_namespace.value_or(set.meta.namespace_) + "/" + set.parent_name;
      if (!m.gateways.count(gw_key)) continue;
      for (const auto& l : set.listeners) listener_ports[gw_key].push_back(l.port);
    }
    assign_gateway_services(order, cache, options, listener_ports);
  }
  // The port the proxy binds for a Gateway's listener port (its own in
  // service mode), 0 when none.
  auto bound_port = [](const GatewayState& gs, int64_t port) -> uint16_t {
    if (port < 1 || port > 65535) return 0;
    if (gs.proxy_ports.empty()) return static_cast<uint16_t>(port);
    auto it = gs.proxy_ports.find(port);
    return it == gs.proxy_ports.end() ? 0 : it->second;
  };
  // Gateways sharing a bound address share its ports: the oldest Gateway's
  // protocol on a port wins, another Gateway's listener on it is Conflicted.
  std::map<std::string, std::pair<std::string, const Gateway*>> port_owner;  // "ip:port" -> protocol
  for (const GatewayState* gs : order) {
    if (gs->bind.empty()) continue;
    for (const auto& l : gs->gateway->listeners)
      if (is_http_protocol(l.protocol) && bound_port(*gs, l.port) != 0)
        port_owner.emplace(snapshot::listener_name(gs->bind, bound_port(*gs, l.port)),
                           std::make_pair(l.protocol, gs->gateway));
  }
  std::map<std::string, std::pair<bool, std::set<std::string>>> bound;  // name -> tls, hostnames
  std::map<std::string, uint16_t> bound_public;  // service mode: name -> the Service (listener) port
  // name -> the client validation of its listeners (all alike)
  std::map<std::string, std::optional<snapshot::ClientValidation>> bound_validation;
  // The ListenerSets of gantry's Gateways, per Gateway in precedence order
  // (oldest first, then by ns/name): their listeners come after the
  // Gateway's own, each set's in its order.
  std::map<std::string, std::vector<const ListenerSet*>> sets_of;
  for (const auto& [key, set] : cache.listener_sets) {
    if (set.parent_group != kGatewayGroup || set.parent_kind != "Gateway") continue;
    std::string gw_key = set.parent_namespace.value_or(set.meta.namespace_) + "/" + set.parent_name;
    if (m.gateways.count(gw_key)) sets_of[gw_key].push_back(&set);
  }
  for (auto& [key, sets] : sets_of)
    std::sort(sets.begin(), sets.end(), [](const ListenerSet* a, const ListenerSet* b) {
      return std::tie(a->meta.creation_timestamp, a->meta.namespace_, a->meta.name) <
             std::tie(b->meta.creation_timestamp, b->meta.namespace_, b->meta.name);
    });
  for (auto& entry : m.gateways) {
    // Named references, not structured bindings: the lambdas below use them
    // (clang before C++20's P1091 cannot capture a binding).
    const std::string& key = entry.first;
    GatewayState& gs = entry.second;
    const Gateway& gw = *gs.gateway;
    const bool own = options.bind_address == kBindProxy;
    auto bound_name = [&](const GwListener& l) {
      uint16_t port = bound_port(gs, l.port);
      return gs.bind.empty() || own || port == 0 ? std::string() : snapshot::listener_name(gs.bind, port);
    };
    struct Conflict {
      bool conflicted = false;
      std::string reason = "NoConflicts", message = "no conflict";
    };
    // Judges one listener: of the Gateway itself (`set` null) or of one of
    // its ListenerSets. References resolve from the owner's namespace (a
    // ReferenceGrant to a Gateway does not cover its ListenerSets).
    auto judge = [&](const GwListener& l, const ListenerSet* set, Conflict conflict) {
      const ObjectMeta& owner = set ? set->meta : gw.meta;
      const char* owner_kind = set ? "ListenerSet" : "Gateway";
      const int64_t gen = owner.generation;
      ListenerState ls;
      ls.name = l.name;
      ls.cert_key = key + "/" + (set ? set->meta.key() + "/" : std::string()) + l.name;
      bool accepted = true, resolved = true;
      std::string acc_reason = "Accepted", acc_msg = "the listener is valid";
      std::string res_reason = "ResolvedRefs", res_msg = "all references are resolved";
      FrontendValidation fv;  // spec.tls.frontend (HTTPS)
      if (!is_http_protocol(l.protocol)) {
        accepted = false;
        acc_reason = "UnsupportedProtocol";
        acc_msg = "protocol " + l.protocol + " is not supported (want HTTP or HTTPS)";
      }
      // Supported kinds.
      if (l.allowed_kinds) {
        std::vector<std::string> bad;
        for (const auto& k : *l.allowed_kinds) {
          if (is_route_kind(k) && accepted)
            ls.supported_kinds.push_back(k);
          else
            bad.push_back((k.group.empty() ? "" : k.group + "/") + k.kind);
        }
        if (!bad.empty()) {
          resolved = false;
          res_reason = "InvalidRouteKinds";
          std::string list;
          for (const auto& b : bad) list += (list.empty() ? "" : ", ") + b;
          res_msg = "route kinds not supported on a " + l.protocol + " listener: " + list;
        }
      } else if (accepted) {
        ls.supported_kinds.push_back({kGatewayGroup, "HTTPRoute"});
        ls.supported_kinds.push_back({kGatewayGroup, "GRPCRoute"});
      }
      // TLS.
      if (accepted && l.protocol == "HTTPS") {
        if (l.tls_mode && *l.tls_mode == "Passthrough") {
          accepted = false;
          acc_reason = "UnsupportedValue";
          acc_msg = "tls.mode Passthrough is not supported on an HTTPS listener";
        } else if (l.certificate_refs.empty()) {
          resolved = false;
          res_reason = "InvalidCertificateRef";
          res_msg = "an HTTPS listener needs tls.certificateRefs";
        }
        std::string secret;
        for (size_t i = 0; i < l.certificate_refs.size() && resolved; ++i) {
          const auto& ref = l.certificate_refs[i];
          std::string ns = ref.namespace_.value_or(owner.namespace_);
          std::string field = "tls.certificateRefs[" + std::to_string(i) + "]";
          if (!(ref.group.empty() || ref.group == "core") || ref.kind != "Secret") {
            resolved = false;
            res_reason = "InvalidCertificateRef";
            res_msg = field + ": kind " + ref.kind + " is not supported (want Secret)";
          } else if (ns != owner.namespace_ &&
                     !reference_granted(cache, kGatewayGroup, owner_kind, owner.namespace_, "",
                                        "Secret", ns, ref.name)) {
            resolved = false;
            res_reason = "RefNotPermitted";
            res_msg = field + ": Secret " + ns + "/" + ref.name +
                      " is in another namespace and no ReferenceGrant allows it";
          } else if (std::string p = check_certificate(ns + "/" + ref.name); !p.empty()) {
            resolved = false;
            res_reason = "InvalidCertificateRef";
            res_msg = field + ": " + p;
          } else if (secret.empty()) {
            secret = ns + "/" + ref.name;
          }
        }
        fv = frontend_validation(cache, gw, l);
        if (fv.configured && fv.insecure_fallback) gs.insecure_frontend = true;
        if (fv.configured && !fv.validation && accepted) {
          accepted = false;
          acc_reason = "NoValidCACertificate";
          acc_msg = "no caCertificateRefs of the Gateway's client certificate validation for port " +
                    std::to_string(l.port) + " resolves";
        }
        if (resolved && !secret.empty() && accepted && !(set && conflict.conflicted)) {
          ListenerCertificate lc{secret, {}, ls.cert_key};
          if (l.hostname) lc.hostnames.push_back(lower(*l.hostname));
          m.certificates.push_back(std::move(lc));  // hostless: filled from routes below
        }
      }
      // Some CA references do not resolve: the listener says so and verifies
      // clients with the others.
      bool ca_partial = false;
      if (fv.configured && !fv.ref_reason.empty() && resolved) {
        resolved = false;
        res_reason = fv.ref_reason;
        res_msg = fv.ref_message;
        ca_partial = fv.validation.has_value();
      }
      // A ListenerSet's listener that conflicts with one before it (the
      // Gateway's, or an older set's) is not accepted: the first one wins.
      if (set && conflict.conflicted) {
        accepted = false;
        acc_reason = conflict.reason;
        acc_msg = conflict.message;
      }
      const std::string name = bound_name(l);
      // Routes attach to (and are counted on) a listener whose references do
      // not resolve; it serves nothing until they do. Invalid route kinds next
      // to a valid one still let that kind attach and be served.
      ls.accepted = accepted;
      ls.attachable = accepted && !conflict.conflicted;
      ls.resolved = resolved;
      ls.valid = ls.attachable && (resolved || res_reason == "InvalidRouteKinds" || ca_partial);
      std::string prog_reason = "Invalid", prog_msg = "the listener is not served";
      if (set && conflict.conflicted) {
        prog_reason = conflict.reason;
        prog_msg = conflict.message;
      }
      if (ls.valid && own && fv.validation) {
        ls.valid = false;  // the proxy's own listener serves every Gateway alike
        prog_msg = "client certificate validation needs the Gateway served on its own address "
                   "(not --gateway-bind-address proxy)";
      } else if (ls.valid && own && !gs.bind.empty()) {
        // Served by the proxy's own listeners (routes list no listener).
        uint16_t want = l.protocol == "HTTPS" ? options.proxy_https_port : options.proxy_http_port;
        if (l.port != want) {
          ls.valid = false;
          prog_msg = "the proxy serves " + l.protocol + " on port " + std::to_string(want) +
                     " only (--gateway-proxy-ports)";
        } else {
          prog_msg = "served on the proxy's own " + l.protocol + " listener";
        }
      } else if (ls.valid && name.empty()) {
        ls.valid = false;  // nowhere to bind it
        prog_msg = gs.unsupported_address.empty() && gs.unusable_address.empty()
                       ? "the Gateway has no IP address to serve it on (--gateway-address)"
                       : "the Gateway's address is not usable";
      }
      if (ls.valid && !name.empty()) {
        // Gateways sharing a bound address and port must validate clients alike.
        auto [it, fresh] = bound_validation.emplace(name, fv.validation);
        if (!fresh && it->second != fv.validation) {
          ls.valid = false;
          prog_msg = "another Gateway's listener on " + name +
                     " validates client certificates differently (spec.tls.frontend)";
        }
      }
      if (ls.valid && !name.empty()) {
        // Gateways sharing a bound address and port must validate clients alike.
        auto [it, fresh] = bound_validation.emplace(name, fv.validation);
        if (!fresh && it->second != fv.validation) {
          ls.valid = false;
          prog_msg = "another Gateway's listener on " + name +
                     " validates client certificates differently (spec.tls.frontend)";
        }
      }
      if (ls.valid && !name.empty()) {
        // A listener with a hostname is its own part of the socket (the proxy
        // picks the most specific one for a request's host).
        ls.served_on = name;
        auto& b = bound[name];
        b.first = l.protocol == "HTTPS";
        if (!gs.proxy_ports.empty()) bound_public[name] = static_cast<uint16_t>(l.port);
        if (l.hostname && !l.hostname->empty()) {
          ls.served_on += '/';
          ls.served_on += lower(*l.hostname);
          b.second.insert(lower(*l.hostname));
        }
        prog_msg = "served on " + ls.served_on;
      }
      ls.conditions.push_back(cond("Accepted", accepted, acc_reason, acc_msg, gen));
      ls.conditions.push_back(cond("Programmed", ls.valid, ls.valid ? "Programmed" : prog_reason,
                                   prog_msg, gen));
      ls.conditions.push_back(cond("ResolvedRefs", resolved, res_reason, res_msg, gen));
      ls.conditions.push_back(
          cond("Conflicted", conflict.conflicted, conflict.reason, conflict.message, gen));
      return ls;
    };
    // Another Gateway sharing the bound address serves another protocol on the port.
    auto other_gateway_conflict = [&](const GwListener& l, Conflict& c) {
      std::string name = bound_name(l);
      auto owner = name.empty() ? port_owner.end() : port_owner.find(name);
      if (owner != port_owner.end() && owner->second.second != &gw &&
          owner->second.first != l.protocol) {
        c.conflicted = true;
        c.reason = "ProtocolConflict";
        c.message = "Gateway " + owner->second.second->meta.key() + " serves " +
                    owner->second.first + " on " + name;
      }
    };

    // The Gateway's own listeners: those sharing a port must share a protocol
    // family, and their hostnames must differ (both sides are Conflicted).
    struct Taken {
      int64_t port;
      std::string protocol, hostname, owner;
    };
    std::vector<Taken> taken;
    std::map<int64_t, std::set<std::string>> protocols_on_port;
    std::map<std::string, int> hostname_uses;  // "port/protocol/hostname"
    for (const auto& l : gw.listeners) {
      protocols_on_port[l.port].insert(l.protocol);
      ++hostname_uses[std::to_string(l.port) + "/" + l.protocol + "/" + lower(l.hostname.value_or(""))];
      taken.push_back({l.port, l.protocol, lower(l.hostname.value_or("")), "the Gateway"});
    }
    for (const auto& l : gw.listeners) {
      Conflict c;
      if (protocols_on_port[l.port].size() > 1) {
        c.conflicted = true;
        c.reason = "ProtocolConflict";
        c.message = "another listener on port " + std::to_string(l.port) + " uses another protocol";
      } else {
        other_gateway_conflict(l, c);
        if (!c.conflicted && hostname_uses[std::to_string(l.port) + "/" + l.protocol + "/" +
                                           lower(l.hostname.value_or(""))] > 1) {
          c.conflicted = true;
          c.reason = "HostnameConflict";
          c.message = "another listener on port " + std::to_string(l.port) +
                      " has the same hostname";
        }
      }
      gs.listeners.push_back(judge(l, nullptr, std::move(c)));
    }

    // Its ListenerSets, when its allowedListeners selects their namespace: a
    // listener that conflicts with one before it in precedence order (the
    // Gateway's, an older set's, an earlier one of its set) is rejected.
    for (const ListenerSet* set : sets_of[key]) {
      ListenerSetState lss;
      lss.set = set;
      lss.gateway = key;
      const std::string& set_ns = set->meta.namespace_;
      if (gw.allowed_listeners_from == "All") {
        lss.allowed = true;
      } else if (gw.allowed_listeners_from == "Same") {
        lss.allowed = set_ns == gw.meta.namespace_;
      } else if (gw.allowed_listeners_from == "Selector" && gw.allowed_listeners_selector) {
        auto it = cache.namespaces.find(set_ns);
        lss.allowed = it != cache.namespaces.end() &&
                      labels_match(it->second.meta.labels, *gw.allowed_listeners_selector);
      }
      if (lss.allowed) {
        for (const auto& l : set->listeners) {
          Conflict c;
          std::string host = lower(l.hostname.value_or(""));
          for (const Taken& t : taken) {
            if (t.port != l.port) continue;
            if (t.protocol != l.protocol) {
              c = {true, "ProtocolConflict",
                   "listener on port " + std::to_string(l.port) + " of " + t.owner + " uses " +
                       t.protocol};
              break;
            }
            if (t.hostname == host) {
              c = {true, "HostnameConflict",
                   "listener on port " + std::to_string(l.port) + " of " + t.owner +
                       " has the same hostname"};
              break;
            }
          }
          if (!c.conflicted) other_gateway_conflict(l, c);
          if (!c.conflicted) taken.push_back({l.port, l.protocol, host, "ListenerSet " + set->meta.key()});
          lss.listeners.push_back(judge(l, set, std::move(c)));
        }
        lss.accepted = std::any_of(lss.listeners.begin(), lss.listeners.end(),
                                   [](const ListenerState& s) { return s.attachable && s.resolved; });
        if (lss.accepted) ++gs.attached_listener_sets;
      }
      m.listener_sets[set->meta.key()] = std::move(lss);
    }
  }
  for (const auto& [name, b] : bound) {
    auto colon = name.rfind(':');
    std::string addr = name.substr(0, colon);
    if (addr.starts_with("[")) addr = addr.substr(1, addr.size() - 2);
    snapshot::Listener sl;
    sl.name = name;
    sl.address = addr;
    sl.port = static_cast<uint16_t>(std::stoi(name.substr(colon + 1)));
    if (auto pub = bound_public.find(name); pub != bound_public.end() && pub->second != sl.port)
      sl.public_port = pub->second;
    sl.tls = b.first;
    sl.hostnames.assign(b.second.begin(), b.second.end());
    sl.client_validation = bound_validation[name];
    m.listeners.push_back(std::move(sl));
  }

  // ---- HTTPRoutes and GRPCRoutes
  // First every candidate attachment (route, parentRef, listener, hosts); then
  // the conflicts between the kinds (GRPCRoute spec: a listener takes exactly
  // one of an HTTPRoute and a GRPCRoute whose hostnames intersect, the older,
  // then the first by ns/name); then verdicts, counts and bindings.
  struct Candidate {
    std::string kind;
    const HTTPRoute* route;
    std::vector<ParentVerdict> verdicts;
    std::vector<bool> host_matched;  // per verdict: some listener matched its hostnames
  };
  std::vector<Candidate> candidates;
  for (const auto& [key, route] : cache.http_routes) candidates.push_back({"HTTPRoute", &route, {}, {}});
  for (const auto& [key, route] : cache.grpc_routes) candidates.push_back({"GRPCRoute", &route, {}, {}});
  std::vector<Attachment> attachments;
  for (size_t ci = 0; ci < candidates.size(); ++ci) {
    Candidate& c = candidates[ci];
    const HTTPRoute& route = *c.route;
    for (const auto& ref : route.parent_refs) {
      if (ref.group != kGatewayGroup || (ref.kind != "Gateway" && ref.kind != "ListenerSet"))
        continue;
      std::string parent_key = ref.namespace_.value_or(route.meta.namespace_) + "/" + ref.name;
      // The listeners the parentRef can select: a Gateway's own, or those of
      // one ListenerSet (never the other's: a route attaches where it says).
      GatewayState* gsp = nullptr;
      ListenerSetState* lss = nullptr;
      if (ref.kind == "Gateway") {
        auto git = m.gateways.find(parent_key);
        if (git == m.gateways.end()) continue;  // not one of gantry's Gateways
        gsp = &git->second;
      } else {
        auto sit = m.listener_sets.find(parent_key);
        if (sit == m.listener_sets.end()) continue;  // not attached to one of gantry's Gateways
        lss = &sit->second;
        gsp = &m.gateways.at(lss->gateway);
      }
      const std::vector<GwListener>& specs = lss ? lss->set->listeners : gsp->gateway->listeners;
      std::vector<ListenerState>& states = lss ? lss->listeners : gsp->listeners;
      const std::string& owner_ns =
          lss ? lss->set->meta.namespace_ : gsp->gateway->meta.namespace_;
      ParentVerdict v;
      v.ref = ref;
      bool any_candidate = false, any_allowed = false, any_host_match = false;
      for (size_t i = 0; i < states.size(); ++i) {
        const GwListener& l = specs[i];
        ListenerState& ls = states[i];
        if (ref.section_name && *ref.section_name != l.name) continue;
        if (ref.port && *ref.port != l.port) continue;
        any_candidate = true;
        if (!ls.attachable || !supports_kind(ls, c.kind) ||
            !allows_namespace(cache, l, owner_ns, route.meta.namespace_))
          continue;
        any_allowed = true;
        std::string lh = l.hostname.value_or("");
        Attachment a{ci, c.verdicts.size(), &ls, &l, false, {}, false};
        if (route.hostnames.empty()) {
          if (lh.empty()) a.any_host = true;
          else a.hosts.push_back(lower(lh));
        } else {
          for (const auto& h : route.hostnames)
            if (std::string x = intersect_hostname(h, lh); !x.empty()) a.hosts.push_back(x);
          if (a.hosts.empty()) continue;
        }
        any_host_match = true;
        attachments.push_back(std::move(a));
      }
      if (lss && !lss->allowed) {
        v.reason = "NotAllowedByListeners";
        v.message = "the ListenerSet is not allowed by its Gateway (spec.allowedListeners)";
        c.verdicts.push_back(std::move(v));
        c.host_matched.push_back(false);
        continue;
      }
      if (!any_candidate) {
        v.reason = "NoMatchingParent";
        v.message = "the Gateway has no listener" +
                    (ref.section_name ? " named " + *ref.section_name : std::string()) +
                    (ref.port ? " on port " + std::to_string(*ref.port) : std::string());
      } else if (!any_allowed) {
        v.reason = "NotAllowedByListeners";
        v.message = "no listener of the Gateway allows this route (allowedRoutes)";
      } else if (!any_host_match) {
        v.reason = "NoMatchingListenerHostname";
        v.message = "no hostname of the route matches a listener's hostname";
      }
      c.verdicts.push_back(std::move(v));
      c.host_matched.push_back(any_host_match);
    }
  }
  // Conflicts between kinds, per listener: routes in precedence order, each
  // kept unless a kept route of the other kind shares a hostname with it.
  {
    std::vector<size_t> order_a(attachments.size());
    for (size_t i = 0; i < order_a.size(); ++i) order_a[i] = i;
    std::stable_sort(order_a.begin(), order_a.end(), [&](size_t x, size_t y) {
      return route_before(*candidates[attachments[x].route].route,
                          *candidates[attachments[y].route].route);
    });
    std::map<const ListenerState*, std::vector<size_t>> kept;  // listener -> attachments
    for (size_t ai : order_a) {
      Attachment& a = attachments[ai];
      auto& here = kept[a.state];
      for (size_t bi : here) {
        const Attachment& b = attachments[bi];
        if (candidates[b.route].kind != candidates[a.route].kind && hosts_overlap(a, b)) {
          a.dropped = true;
          ParentVerdict& v = candidates[a.route].verdicts[a.parent];
          if (v.message.empty()) {
            const HTTPRoute& other = *candidates[b.route].route;
            v.message = "the " + candidates[b.route].kind + " " + other.meta.key() +
                        ", older, serves the same hostnames on listener " + a.state->name;
          }
          break;
        }
      }
      if (!a.dropped) here.push_back(ai);
    }
  }
  std::vector<std::set<std::string>> hosts(candidates.size()), listeners(candidates.size());
  std::vector<bool> served(candidates.size(), false), any_host(candidates.size(), false);
  std::vector<std::vector<bool>> kept_parent(candidates.size());
  for (size_t ci = 0; ci < candidates.size(); ++ci)
    kept_parent[ci].assign(candidates[ci].verdicts.size(), false);
  std::map<std::string, std::set<std::string>> hostless_cert_hosts;  // gw/listener -> route hosts
  for (const Attachment& a : attachments) {
    if (a.dropped) continue;
    kept_parent[a.route][a.parent] = true;
    ListenerState& ls = *a.state;
    const GwListener& l = *a.listener;
    ++ls.attached_routes;
    if (!ls.valid) continue;  // counted, not served
    served[a.route] = true;
    if (!ls.served_on.empty()) listeners[a.route].insert(ls.served_on);
    if (a.any_host) any_host[a.route] = true;
    hosts[a.route].insert(a.hosts.begin(), a.hosts.end());
    if (l.protocol == "HTTPS" && l.hostname.value_or("").empty())
      hostless_cert_hosts[ls.cert_key].insert(a.hosts.begin(), a.hosts.end());
  }
  for (size_t ci = 0; ci < candidates.size(); ++ci) {
    Candidate& c = candidates[ci];
    bool attached = false;
    for (size_t pi = 0; pi < c.verdicts.size(); ++pi) {
      ParentVerdict& v = c.verdicts[pi];
      if (kept_parent[ci][pi]) {
        v.accepted = true;
        v.reason = "Accepted";
        v.message = "the route is attached";
        attached = true;
      } else if (c.host_matched[pi]) {  // every listener it matched took a route of the other kind
        v.reason = "HostnameConflict";
      }
    }
    std::string key = c.route->meta.key();
    if (!c.verdicts.empty()) m.parents[{c.kind, key}] = std::move(c.verdicts);
    if (!attached) continue;
    HttpRouteBinding b;
    b.kind = c.kind;
    b.route = c.route;
    b.serve = served[ci];
    b.any_host = any_host[ci];
    b.listeners.assign(listeners[ci].begin(), listeners[ci].end());
    if (!b.any_host) b.hostnames.assign(hosts[ci].begin(), hosts[ci].end());
    m.routes.push_back(std::move(b));
  }

  // Hostless HTTPS listeners serve their certificate for the hosts of their routes.
  for (auto& lc : m.certificates) {
    if (!lc.hostnames.empty()) continue;
    auto hit = hostless_cert_hosts.find(lc.listener);
    if (hit != hostless_cert_hosts.end()) lc.hostnames.assign(hit->second.begin(), hit->second.end());
  }
  std::erase_if(m.certificates, [](const ListenerCertificate& c) { return c.hostnames.empty(); });
  if (options.bind_address == kBindService) m.infrastructure = gateway_service_objects(m, cache, options);
  return m;
}

std::vector<ObjectStatus> gateway_api_statuses(const Cache& cache, const GatewayApiModel& model,
                                               const GatewayApiOptions& options,
                                               const std::vector<RouteStatus>& route_verdicts) {
  std::vector<ObjectStatus> out;
  for (const GatewayClass* c : model.classes) {
    ObjectStatus s{"GatewayClass", "", c->meta.name, nlohmann::json::object()};
    s.status["conditions"] = conditions_json(
        {cond("Accepted", true, "Accepted", "handled by " + options.controller_name,
              c->meta.generation)});
    nlohmann::json features = nlohmann::json::array();
    for (const char* f : kSupportedFeatures) {
      // spec.infrastructure's labels and annotations go on the Services of
      // service mode: there is nothing to put them on otherwise.
      if (std::string_view(f) == "GatewayInfrastructure" && options.bind_address != kBindService) continue;
      features.push_back({{"name", f}});
    }
    s.status["supportedFeatures"] = features;
    out.push_back(std::move(s));
  }
  for (const auto& [key, gs] : model.gateways) {
    const Gateway& gw = *gs.gateway;
    const int64_t gen = gw.meta.generation;
    ObjectStatus s{"Gateway", gw.meta.namespace_, gw.meta.name, nlohmann::json::object()};
    nlohmann::json addrs = nlohmann::json::array();
    for (const auto& a : gs.addresses) addrs.push_back({{"type", a.type}, {"value", a.value}});
    s.status["addresses"] = addrs;
    size_t accepted = 0;
    for (const auto& ls : gs.listeners) accepted += ls.accepted ? 1 : 0;
    bool all = accepted == gs.listeners.size();
    Condition acc = cond("Accepted", accepted > 0, all ? "Accepted" : "ListenersNotValid",
                         all ? "the Gateway is handled by gantry"
                             : std::to_string(gs.listeners.size() - accepted) + " of " +
                                   std::to_string(gs.listeners.size()) + " listeners are not valid",
                         gen);
    if (!gs.unsupported_address.empty())
      acc = cond("Accepted", false, "UnsupportedAddress", gs.unsupported_address, gen);
    else if (!gs.invalid_parameters.empty())
      acc = cond("Accepted", false, "InvalidParameters", gs.invalid_parameters, gen);
    Condition prog = cond("Programmed", true, "Programmed", "the Gateway is served", gen);
    if (!gs.unsupported_address.empty())
      prog = cond("Programmed", false, "Invalid", gs.unsupported_address, gen);
    else if (!gs.invalid_parameters.empty())
      prog = cond("Programmed", false, "Invalid", gs.invalid_parameters, gen);
    else if (!gs.unusable_address.empty())
      prog = cond("Programmed", false, "AddressNotUsable", gs.unusable_address, gen);
    else if (gs.addresses.empty())
      prog = cond("Programmed", false, "AddressNotAssigned",
                  gs.service_pending.empty() ? "no address is configured (--gateway-address)"
                                             : gs.service_pending,
                  gen);
    else if (accepted == 0)
      prog = cond("Programmed", false, "Invalid", "no listener is valid", gen);
    std::vector<Condition> conds{acc, prog};
    if (gs.insecure_frontend)  // removed once no port allows insecure fallback
      conds.push_back(cond("InsecureFrontendValidationMode", true, "ConfigurationChanged",
                           "spec.tls.frontend lets clients without a valid certificate in "
                           "(AllowInsecureFallback)",
                           gen));
    s.status["conditions"] = conditions_json(conds);
    s.status["listeners"] = listeners_json(gs.listeners);
    s.status["attachedListenerSets"] = gs.attached_listener_sets;
    out.push_back(std::move(s));
  }
  for (const auto& [key, lss] : model.listener_sets) {
    const ListenerSet& set = *lss.set;
    const int64_t gen = set.meta.generation;
    ObjectStatus s{"ListenerSet", set.meta.namespace_, set.meta.name, nlohmann::json::object()};
    size_t programmed = 0;
    for (const auto& ls : lss.listeners) programmed += ls.valid ? 1 : 0;
    Condition acc = cond("Accepted", true, "Accepted", "attached to Gateway " + lss.gateway, gen);
    Condition prog = cond("Programmed", true, "Programmed", "served by Gateway " + lss.gateway, gen);
    if (!lss.allowed) {
      std::string why = "Gateway " + lss.gateway + " does not allow ListenerSets from namespace " +
                        set.meta.namespace_ + " (spec.allowedListeners)";
      acc = cond("Accepted", false, "NotAllowed", why, gen);
      prog = cond("Programmed", false, "NotAllowed", why, gen);
    } else if (!lss.accepted) {
      std::string why = "no listener is valid";
      acc = cond("Accepted", false, "ListenersNotValid", why, gen);
      prog = cond("Programmed", false, "ListenersNotValid", why, gen);
    } else if (programmed == 0) {
      prog = cond("Programmed", false, "Invalid", "no listener is served", gen);
    }
    s.status["conditions"] = conditions_json({acc, prog});
    s.status["listeners"] = listeners_json(lss.listeners);
    out.push_back(std::move(s));
  }
  std::map<std::pair<std::string, std::string>, const RouteStatus*> verdicts;
  for (const auto& v : route_verdicts)
    if (v.kind == "HTTPRoute" || v.kind == "GRPCRoute") verdicts[{v.kind, v.id()}] = &v;
  for (const auto& [id, parents] : model.parents) {
    const auto& [kind, key] = id;
    const HTTPRoute& r = kind == "GRPCRoute" ? cache.grpc_routes.at(key) : cache.http_routes.at(key);
    const int64_t gen = r.meta.generation;
    const RouteStatus* v = verdicts.count(id) ? verdicts.at(id) : nullptr;
    const Condition* valid = v ? v->find("Accepted") : nullptr;
    const Condition* refs = v ? v->find("ResolvedRefs") : nullptr;
    nlohmann::json list = nlohmann::json::array();
    for (const auto& p : parents) {
      Condition acc = cond("Accepted", p.accepted, p.reason, p.message, gen);
      if (p.accepted && valid && !valid->status) {
        acc.status = false;
        acc.reason = valid->reason == "Invalid" ? "UnsupportedValue" : valid->reason;
        acc.message = valid->message;
      }
      Condition res = refs ? cond("ResolvedRefs", refs->status, refs->reason, refs->message, gen)
                           : cond("ResolvedRefs", true, "ResolvedRefs", "all references are resolved", gen);
      list.push_back({{"parentRef", parent_ref_json(p.ref)},
                      {"controllerName", options.controller_name},
                      {"conditions", conditions_json({acc, res})}});
    }
    out.push_back({kind, r.meta.namespace_, r.meta.name, {{"parents", list}}});
  }
  return out;
}

}  // namespace gantry::controller
