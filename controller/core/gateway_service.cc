// A Service per Gateway: ports, addresses and the generated objects
// (gateway_service.h).
#include "controller/core/gateway_service.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstdio>
#include <set>

namespace gantry::controller {
namespace {

bool is_ipv6(const std::string& s) {
  unsigned char buf[16];
  return ::inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

// The Gateway's Service as the cache has it, if it is the one gantry generated.
const Service* generated_service(const Cache& cache, const GatewayState& gs) {
  auto it = cache.services.find(gs.service);
  if (it == cache.services.end() || !is_generated(it->second.meta)) return nullptr;
  auto name = it->second.meta.labels.find(kGatewayNameLabel);
  if (name == it->second.meta.labels.end() || name->second != gs.gateway->meta.name) return nullptr;
  return &it->second;
}

std::string port_name(const std::string& protocol, int64_t port) {
  std::string p = protocol;
  std::transform(p.begin(), p.end(), p.begin(), [](unsigned char c) { return std::tolower(c); });
  return p + "-" + std::to_string(port);
}

nlohmann::json string_map(const std::map<std::string, std::string>& m) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [k, v] : m) j[k] = v;
  return j;
}

}  // namespace

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

bool is_ip(const std::string& s) {
  unsigned char buf[16];
  return ::inet_pton(AF_INET, s.c_str(), buf) == 1 || ::inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

std::string gateway_service_name(const std::string& gateway_name) {
  std::string n = "gantry-" + gateway_name;
  std::replace(n.begin(), n.end(), '.', '-');
  if (n.size() <= 63) return n;
  char hash[17];
  std::snprintf(hash, sizeof hash, "%016llx", static_cast<unsigned long long>(fnv1a(gateway_name)));
  std::string cut = n.substr(0, 63 - 1 - 10);
  while (!cut.empty() && cut.back() == '-') cut.pop_back();
  return cut + "-" + std::string(hash, 10);
}

bool is_generated(const ObjectMeta& meta) {
  auto it = meta.labels.find(kGeneratedLabel);
  return it != meta.labels.end() && it->second == kGeneratedValue &&
         meta.labels.count(kGatewayNameLabel) != 0;
}

void assign_gateway_services(std::vector<GatewayState*>& order, const Cache& cache,
                             const GatewayApiOptions& options,
                             const std::map<std::string, std::vector<int64_t>>& listener_ports) {
  const uint32_t lo = options.service_port_min, hi = options.service_port_max;
  const uint32_t span = hi >= lo ? hi - lo + 1 : 0;
  std::set<uint16_t> used;
  auto in_range = [&](int64_t p) { return p >= lo && p <= hi; };
  auto ports_of = [&](const GatewayState* gs) {
    std::set<int64_t> out;
    if (auto it = listener_ports.find(gs->gateway->meta.key()); it != listener_ports.end())
      for (int64_t p : it->second)
        if (p >= 1 && p <= 65535) out.insert(p);
    return out;
  };
  for (GatewayState* gs : order)
    gs->service = gs->gateway->meta.namespace_ + "/" + gateway_service_name(gs->gateway->meta.name);
  // The ports the Services already have stay (clients and kube-proxy use them).
  for (GatewayState* gs : order) {
    const Service* svc = generated_service(cache, *gs);
    if (!svc) continue;
    std::set<int64_t> want = ports_of(gs);
    for (const auto& sp : svc->ports) {
      if (!want.count(sp.port) || !sp.target_port.number) continue;
      int64_t t = *sp.target_port.number;
      if (!in_range(t) || used.count(static_cast<uint16_t>(t))) continue;
      used.insert(static_cast<uint16_t>(t));
      gs->proxy_ports[sp.port] = static_cast<uint16_t>(t);
    }
  }
  for (GatewayState* gs : order) {
    for (int64_t p : ports_of(gs)) {
      if (gs->proxy_ports.count(p)) continue;
      if (span == 0 || used.size() >= span) {
        gs->unusable_address = "no free proxy port for listener port " + std::to_string(p) +
                               " (--gateway-port-range " + std::to_string(lo) + "-" + std::to_string(hi) + ")";
        break;
      }
      uint32_t start = static_cast<uint32_t>(fnv1a(gs->gateway->meta.key() + ":" + std::to_string(p)) % span);
      for (uint32_t i = 0; i < span; ++i) {
        auto candidate = static_cast<uint16_t>(lo + (start + i) % span);
        if (used.insert(candidate).second) {
          gs->proxy_ports[p] = candidate;
          break;
        }
      }
    }
  }
  for (GatewayState* gs : order) {
    if (!gs->unsupported_address.empty() || !gs->unusable_address.empty() ||
        !gs->invalid_parameters.empty())
      continue;
    gs->bind = options.service_bind;
    // spec.addresses (already checked against the pools) are the Service's
    // externalIPs and the Gateway's only addresses; without them, what the
    // Service has.
    if (!gs->addresses.empty()) continue;
    const Service* svc = generated_service(cache, *gs);
    if (!svc) {
      if (gs->addresses.empty()) gs->service_pending = "its Service " + gs->service + " is being created";
      continue;
    }
    auto add = [&](const std::string& v) {
      for (const auto& a : gs->addresses)
        if (a.value == v) return;
      gs->addresses.push_back({is_ip(v) ? "IPAddress" : "Hostname", v});
    };
    for (const auto& v : svc->load_balancer_ingress) add(v);
    if (svc->load_balancer_ingress.empty() && svc->type != "LoadBalancer" && !svc->cluster_ip.empty() &&
        svc->cluster_ip != "None")
      add(svc->cluster_ip);
    if (gs->addresses.empty())
      gs->service_pending = "waiting for a load balancer to give Service " + gs->service + " an address";
  }
}

std::vector<nlohmann::json> gateway_service_objects(const GatewayApiModel& model, const Cache& cache,
                                                    const GatewayApiOptions& options) {
  std::vector<nlohmann::json> out;
  // The proxy pods' endpoints, by address type.
  std::map<std::string, nlohmann::json> proxy_endpoints;
  std::set<std::pair<std::string, std::string>> seen;  // (type, address)
  for (const auto& [key, slice] : cache.endpoint_slices) {
    if (options.proxy_service.empty() ||
        slice.meta.namespace_ + "/" + slice.service_name() != options.proxy_service)
      continue;
    if (slice.address_type != "IPv4" && slice.address_type != "IPv6") continue;
    nlohmann::json& list = proxy_endpoints[slice.address_type];
    if (list.is_null()) list = nlohmann::json::array();
    for (const auto& e : slice.endpoints) {
      nlohmann::json addrs = nlohmann::json::array();
      for (const auto& a : e.addresses)
        if (seen.insert({slice.address_type, a}).second && is_ipv6(a) == (slice.address_type == "IPv6"))
          addrs.push_back(a);
      if (addrs.empty()) continue;
      nlohmann::json cond = nlohmann::json::object();
      if (e.conditions.ready) cond["ready"] = *e.conditions.ready;
      if (e.conditions.serving) cond["serving"] = *e.conditions.serving;
      if (e.conditions.terminating) cond["terminating"] = *e.conditions.terminating;
      list.push_back({{"addresses", addrs}, {"conditions", cond}});
    }
  }
  if (proxy_endpoints.empty()) proxy_endpoints["IPv4"] = nlohmann::json::array();

  for (const auto& [key, gs] : model.gateways) {
    if (gs.bind.empty() || gs.service.empty() || gs.proxy_ports.empty()) continue;
    const Gateway& gw = *gs.gateway;
    // A Service port per listener port with a served listener (the
    // Gateway's or a ListenerSet's), named after its protocol.
    std::map<int64_t, std::string> served;  // listener port -> protocol
    auto collect = [&](const std::vector<ListenerState>& states, const std::vector<GwListener>& specs) {
      for (const auto& ls : states) {
        if (!ls.valid) continue;
        for (const auto& l : specs)
          if (l.name == ls.name) served.emplace(l.port, l.protocol);
      }
    };
    collect(gs.listeners, gw.listeners);
    for (const auto& [set_key, lss] : model.listener_sets)
      if (lss.gateway == key && lss.set) collect(lss.listeners, lss.set->listeners);
    nlohmann::json ports = nlohmann::json::array(), slice_ports = nlohmann::json::array();
    for (const auto& [port, protocol] : served) {
      auto pp = gs.proxy_ports.find(port);
      if (pp == gs.proxy_ports.end()) continue;
      std::string name = port_name(protocol, port);
      ports.push_back({{"name", name}, {"protocol", "TCP"}, {"port", port}, {"targetPort", pp->second}});
      slice_ports.push_back({{"name", name}, {"protocol", "TCP"}, {"port", pp->second}});
    }
    if (ports.empty()) continue;  // no listener served: a Service needs a port (its old one goes)
    const std::string svc_name = gs.service.substr(gs.service.find('/') + 1);
    std::map<std::string, std::string> labels = gw.infrastructure_labels;
    labels[kGatewayNameLabel] = gw.meta.name;
    labels[kGeneratedLabel] = kGeneratedValue;
    nlohmann::json owner = nlohmann::json::array(
        {{{"apiVersion", std::string(kGatewayGroup) + "/v1"},
          {"kind", "Gateway"},
          {"name", gw.meta.name},
          {"uid", gw.meta.uid},
          {"controller", true}}});
    nlohmann::json meta{{"name", svc_name},
                        {"namespace", gw.meta.namespace_},
                        {"labels", string_map(labels)},
                        {"annotations", string_map(gw.infrastructure_annotations)}};
    if (!gw.meta.uid.empty()) meta["ownerReferences"] = owner;
    nlohmann::json spec{{"type", options.service_type}, {"ports", ports}};
    nlohmann::json external = nlohmann::json::array();
    for (const auto& a : gw.addresses)
      if (a.type == "IPAddress" && !a.value.empty())
        for (const auto& have : gs.addresses)
          if (have.value == a.value) external.push_back(a.value);
    if (!external.empty()) spec["externalIPs"] = external;
    out.push_back({{"apiVersion", "v1"}, {"kind", "Service"}, {"metadata", meta}, {"spec", spec}});

    for (const auto& [type, endpoints] : proxy_endpoints) {
      std::map<std::string, std::string> sl = labels;
      sl[kServiceNameLabel] = svc_name;
      sl[kEndpointSliceManagedBy] = kEndpointSliceManager;
      nlohmann::json smeta = meta;
      smeta["name"] = type == "IPv4" ? svc_name : svc_name + "-ipv6";
      smeta["labels"] = string_map(sl);
      out.push_back({{"apiVersion", "discovery.k8s.io/v1"},
                     {"kind", "EndpointSlice"},
                     {"metadata", smeta},
                     {"addressType", type},
                     {"ports", slice_ports},
                     {"endpoints", endpoints}});
    }
  }
  return out;
}

std::vector<ObjectKey> stale_gateway_objects(const GatewayApiModel& model, const Cache& cache,
                                             const std::vector<nlohmann::json>& desired) {
  std::set<ObjectKey> want;
  for (const auto& o : desired)
    want.insert({o["kind"].get<std::string>(), o["metadata"]["namespace"].get<std::string>(),
                 o["metadata"]["name"].get<std::string>()});
  std::vector<ObjectKey> out;
  auto judge = [&](const char* kind, const ObjectMeta& meta) {
    if (!is_generated(meta)) return;
    ObjectKey k{kind, meta.namespace_, meta.name};
    if (want.count(k)) return;
    const std::string gw = meta.namespace_ + "/" + meta.labels.at(kGatewayNameLabel);
    // Ours and not wanted, or its Gateway is gone; another controller's stays.
    if (model.gateways.count(gw) || !cache.gateways.count(gw)) out.push_back(std::move(k));
  };
  for (const auto& [key, s] : cache.services) judge("Service", s.meta);
  for (const auto& [key, s] : cache.endpoint_slices) judge("EndpointSlice", s.meta);
  return out;
}

}  // namespace gantry::controller
