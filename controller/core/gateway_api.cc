// Gateway API attachment and status; see gateway_api.h.
#include "controller/core/gateway_api.h"

#include <algorithm>
#include <cctype>

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

bool supports_http_route(const ListenerState& s) {
  for (const auto& k : s.supported_kinds)
    if (k.kind == "HTTPRoute" && k.group == kGatewayGroup) return true;
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

  // ---- Gateways and their listeners
  for (const auto& [key, gw] : cache.gateways) {
    if (!our_classes.count(gw.gateway_class_name)) continue;
    GatewayState gs;
    gs.gateway = &gw;
    const int64_t gen = gw.meta.generation;
    // Conflicts: listeners sharing a port must share a protocol family, and
    // their hostnames must differ.
    std::map<int64_t, std::set<std::string>> protocols_on_port;
    std::map<std::string, int> hostname_uses;  // "port/protocol/hostname"
    for (const auto& l : gw.listeners) {
      protocols_on_port[l.port].insert(l.protocol);
      ++hostname_uses[std::to_string(l.port) + "/" + l.protocol + "/" + lower(l.hostname.value_or(""))];
    }
    for (const auto& l : gw.listeners) {
      ListenerState ls;
      ls.name = l.name;
      bool accepted = true, resolved = true;
      std::string acc_reason = "Accepted", acc_msg = "the listener is valid";
      std::string res_reason = "ResolvedRefs", res_msg = "all references are resolved";
      std::string conflict_reason = "NoConflicts", conflict_msg = "no conflict";
      bool conflicted = false;
      if (!is_http_protocol(l.protocol)) {
        accepted = false;
        acc_reason = "UnsupportedProtocol";
        acc_msg = "protocol " + l.protocol + " is not supported (want HTTP or HTTPS)";
      }
      // Supported kinds.
      if (l.allowed_kinds) {
        std::vector<std::string> bad;
        for (const auto& k : *l.allowed_kinds) {
          if (k.group == kGatewayGroup && k.kind == "HTTPRoute" && accepted)
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
          std::string ns = ref.namespace_.value_or(gw.meta.namespace_);
          std::string field = "tls.certificateRefs[" + std::to_string(i) + "]";
          if (!(ref.group.empty() || ref.group == "core") || ref.kind != "Secret") {
            resolved = false;
            res_reason = "InvalidCertificateRef";
            res_msg = field + ": kind " + ref.kind + " is not supported (want Secret)";
          } else if (ns != gw.meta.namespace_ &&
                     !reference_granted(cache, kGatewayGroup, "Gateway", gw.meta.namespace_, "",
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
        if (resolved && !secret.empty() && accepted) {
          ListenerCertificate lc{secret, {}, key + "/" + l.name};
          if (l.hostname) lc.hostnames.push_back(lower(*l.hostname));
          m.certificates.push_back(std::move(lc));  // hostless: filled from routes below
        }
      }
      if (protocols_on_port[l.port].size() > 1) {
        conflicted = true;
        conflict_reason = "ProtocolConflict";
        conflict_msg = "another listener on port " + std::to_string(l.port) +
                       " uses another protocol";
      } else if (hostname_uses[std::to_string(l.port) + "/" + l.protocol + "/" +
                               lower(l.hostname.value_or(""))] > 1) {
        conflicted = true;
        conflict_reason = "HostnameConflict";
        conflict_msg = "another listener on port " + std::to_string(l.port) +
                       " has the same hostname";
      }
      // Routes attach to (and are counted on) a listener whose references do
      // not resolve; it serves nothing until they do. Invalid route kinds next
      // to a valid one still let that kind attach and be served.
      ls.accepted = accepted;
      ls.attachable = accepted && !conflicted;
      ls.valid = ls.attachable && (resolved || res_reason == "InvalidRouteKinds");
      ls.conditions.push_back(cond("Accepted", accepted, acc_reason, acc_msg, gen));
      ls.conditions.push_back(cond("Programmed", ls.valid, ls.valid ? "Programmed" : "Invalid",
                                   ls.valid ? "the listener is served" : "the listener is not served",
                                   gen));
      ls.conditions.push_back(cond("ResolvedRefs", resolved, res_reason, res_msg, gen));
      ls.conditions.push_back(cond("Conflicted", conflicted, conflict_reason, conflict_msg, gen));
      gs.listeners.push_back(std::move(ls));
    }
    m.gateways.emplace(key, std::move(gs));
  }

  // ---- HTTPRoutes
  std::map<std::string, std::set<std::string>> hostless_cert_hosts;  // gw/listener -> route hosts
  for (const auto& [key, route] : cache.http_routes) {
    HttpRouteBinding b;
    b.route = &route;
    std::set<std::string> hosts;
    bool served = false;  // attached to at least one listener that serves
    std::vector<ParentVerdict> verdicts;
    for (const auto& ref : route.parent_refs) {
      if (ref.group != kGatewayGroup || ref.kind != "Gateway") continue;
      std::string gw_key = ref.namespace_.value_or(route.meta.namespace_) + "/" + ref.name;
      auto git = m.gateways.find(gw_key);
      if (git == m.gateways.end()) continue;  // not one of gantry's Gateways
      GatewayState& gs = git->second;
      const Gateway& gw = *gs.gateway;
      ParentVerdict v;
      v.ref = ref;
      bool any_candidate = false, any_allowed = false, any_host_match = false;
      for (size_t i = 0; i < gw.listeners.size(); ++i) {
        const GwListener& l = gw.listeners[i];
        ListenerState& ls = gs.listeners[i];
        if (ref.section_name && *ref.section_name != l.name) continue;
        if (ref.port && *ref.port != l.port) continue;
        any_candidate = true;
        if (!ls.attachable || !supports_http_route(ls) ||
            !allows_namespace(cache, l, gw.meta.namespace_, route.meta.namespace_))
          continue;
        any_allowed = true;
        std::string lh = l.hostname.value_or("");
        std::vector<std::string> here;
        bool any_here = false;
        if (route.hostnames.empty()) {
          if (lh.empty()) any_here = true;
          else here.push_back(lower(lh));
        } else {
          for (const auto& h : route.hostnames)
            if (std::string x = intersect_hostname(h, lh); !x.empty()) here.push_back(x);
          if (here.empty()) continue;
        }
        any_host_match = true;
        ++ls.attached_routes;
        if (!ls.valid) continue;  // counted, not served
        served = true;
        if (any_here) b.any_host = true;
        hosts.insert(here.begin(), here.end());
        if (l.protocol == "HTTPS" && lh.empty())
          hostless_cert_hosts[gw_key + "/" + l.name].insert(here.begin(), here.end());
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
      } else {
        v.accepted = true;
        v.reason = "Accepted";
        v.message = "the route is attached";
      }
      verdicts.push_back(std::move(v));
    }
    bool attached = std::any_of(verdicts.begin(), verdicts.end(),
                                [](const ParentVerdict& v) { return v.accepted; });
    if (!verdicts.empty()) m.parents[key] = std::move(verdicts);
    if (!attached) continue;
    b.serve = served;
    if (!b.any_host) b.hostnames.assign(hosts.begin(), hosts.end());
    m.routes.push_back(std::move(b));
  }

  // Hostless HTTPS listeners serve their certificate for the hosts of their routes.
  for (auto& lc : m.certificates) {
    if (!lc.hostnames.empty()) continue;
    auto hit = hostless_cert_hosts.find(lc.listener);
    if (hit != hostless_cert_hosts.end()) lc.hostnames.assign(hit->second.begin(), hit->second.end());
  }
  std::erase_if(m.certificates, [](const ListenerCertificate& c) { return c.hostnames.empty(); });
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
    out.push_back(std::move(s));
  }
  for (const auto& [key, gs] : model.gateways) {
    const Gateway& gw = *gs.gateway;
    const int64_t gen = gw.meta.generation;
    ObjectStatus s{"Gateway", gw.meta.namespace_, gw.meta.name, nlohmann::json::object()};
    nlohmann::json addrs = nlohmann::json::array();
    const auto& values = gw.addresses.empty() ? options.addresses : gw.addresses;
    for (const auto& a : values) {
      bool ip = !a.empty() && (std::isdigit(static_cast<unsigned char>(a[0])) ||
                               a.find(':') != std::string::npos);
      addrs.push_back({{"type", ip ? "IPAddress" : "Hostname"}, {"value", a}});
    }
    s.status["addresses"] = addrs;
    size_t accepted = 0;
    for (const auto& ls : gs.listeners) accepted += ls.accepted ? 1 : 0;
    bool all = accepted == gs.listeners.size();
    Condition acc = cond("Accepted", accepted > 0, all ? "Accepted" : "ListenersNotValid",
                         all ? "the Gateway is handled by gantry"
                             : std::to_string(gs.listeners.size() - accepted) + " of " +
                                   std::to_string(gs.listeners.size()) + " listeners are not valid",
                         gen);
    Condition prog = cond("Programmed", true, "Programmed", "the Gateway is served", gen);
    if (values.empty())
      prog = cond("Programmed", false, "AddressNotAssigned",
                  "no address is configured (--gateway-address)", gen);
    else if (accepted == 0)
      prog = cond("Programmed", false, "Invalid", "no listener is valid", gen);
    s.status["conditions"] = conditions_json({acc, prog});
    nlohmann::json listeners = nlohmann::json::array();
    for (const auto& ls : gs.listeners) {
      nlohmann::json kinds = nlohmann::json::array();
      for (const auto& k : ls.supported_kinds) kinds.push_back({{"group", k.group}, {"kind", k.kind}});
      listeners.push_back({{"name", ls.name},
                           {"supportedKinds", kinds},
                           {"attachedRoutes", ls.attached_routes},
                           {"conditions", conditions_json(ls.conditions)}});
    }
    s.status["listeners"] = listeners;
    out.push_back(std::move(s));
  }
  std::map<std::string, const RouteStatus*> verdicts;
  for (const auto& v : route_verdicts)
    if (v.kind == "HTTPRoute") verdicts[v.id()] = &v;
  for (const auto& [key, parents] : model.parents) {
    const HTTPRoute& r = cache.http_routes.at(key);
    const int64_t gen = r.meta.generation;
    const RouteStatus* v = verdicts.count(key) ? verdicts.at(key) : nullptr;
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
    out.push_back({"HTTPRoute", r.meta.namespace_, r.meta.name, {{"parents", list}}});
  }
  return out;
}

}  // namespace gantry::controller
