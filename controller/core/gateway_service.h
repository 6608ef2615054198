// A Service per Gateway (--gateway-bind-address service, the Helm chart's
// deployment model; docs/gateway-api.md): which proxy ports serve each
// Gateway, which addresses it has, and the Service and EndpointSlice gantry
// writes for it. Pure functions of the Cache, like gateway_api.cc: every
// replica computes the same ports, and the leader writes the objects.
//
// The Service lives in the Gateway's namespace, named gateway_service_name(),
// owned by the Gateway (garbage-collected with it). It carries the Gateway's
// spec.infrastructure labels and annotations, plus kGatewayNameLabel and
// kGeneratedLabel. Its ports are the Gateway's listener ports (those of its
// ListenerSets too); each targetPort is a proxy port of its own, bound on
// every proxy replica. It has no selector (the proxy pods live in gantry's
// namespace): gantry writes its EndpointSlice, a copy of the endpoints of the
// proxy pods' own Service.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "controller/core/gateway_api.h"
#include "controller/core/objects.h"

namespace gantry::controller {

inline constexpr const char* kGatewayNameLabel = "gateway.networking.k8s.io/gateway-name";
// On every object gantry generates for a Gateway (value kGeneratedValue).
inline constexpr const char* kGeneratedLabel = "app.kubernetes.io/managed-by";
inline constexpr const char* kGeneratedValue = "gantry-gateway";
inline constexpr const char* kEndpointSliceManagedBy = "endpointslice.kubernetes.io/managed-by";
inline constexpr const char* kEndpointSliceManager = "gantry-controller";  // a label value: no '/' 

// FNV-1a of `s`: the stable hash that picks Gateway addresses and ports.
uint64_t fnv1a(const std::string& s);
// An IPv4 or IPv6 literal.
bool is_ip(const std::string& s);

// "gantry-<gateway>" as a DNS-1035 label: dots become dashes; a name over 63
// characters is cut and ends with a hash of the whole.
std::string gateway_service_name(const std::string& gateway_name);

bool is_generated(const ObjectMeta& meta);

// Service mode: the proxy ports (kept from the Gateway's Service when it has
// them, else the port a hash of Gateway and listener port picks in the range,
// or the next free one; older Gateways first) and the addresses of every
// Gateway of `order` (oldest first) that has no address problem yet.
// `listener_ports` lists each Gateway's listener ports (its ListenerSets'
// included), by ns/name.
void assign_gateway_services(std::vector<GatewayState*>& order, const Cache& cache,
                             const GatewayApiOptions& options,
                             const std::map<std::string, std::vector<int64_t>>& listener_ports);

// The Service and EndpointSlice(s) of every served Gateway, as server-side
// apply bodies.
std::vector<nlohmann::json> gateway_service_objects(const GatewayApiModel& model, const Cache& cache,
                                                    const GatewayApiOptions& options);

// Generated objects in the cache that should go: those of a Gateway that is
// gantry's but no longer wants them, or of a Gateway that is gone. Another
// controller's Gateways are left alone. (kind, ns, name).
struct ObjectKey {
  std::string kind, namespace_, name;
  bool operator<(const ObjectKey& o) const {
    return std::tie(kind, namespace_, name) < std::tie(o.kind, o.namespace_, o.name);
  }
};
std::vector<ObjectKey> stale_gateway_objects(const GatewayApiModel& model, const Cache& cache,
                                             const std::vector<nlohmann::json>& desired);

}  // namespace gantry::controller
