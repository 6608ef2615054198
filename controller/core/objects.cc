// Cache bookkeeping for the object model; see objects.h.
#include "controller/core/objects.h"

#include <type_traits>

namespace gantry::controller {

namespace {

// The map of kind T in a (const or mutable) cache.
template <typename T, typename C>
auto& table(C& c) {
  if constexpr (std::is_same_v<T, GatewayRoute>)
    return c.routes;
  else if constexpr (std::is_same_v<T, Service>)
    return c.services;
  else if constexpr (std::is_same_v<T, EndpointSlice>)
    return c.endpoint_slices;
  else if constexpr (std::is_same_v<T, Secret>)
    return c.secrets;
  else if constexpr (std::is_same_v<T, Ingress>)
    return c.ingresses;
  else if constexpr (std::is_same_v<T, GatewayClass>)
    return c.gateway_classes;
  else if constexpr (std::is_same_v<T, Namespace>)
    return c.namespaces;
  else if constexpr (std::is_same_v<T, Gateway>)
    return c.gateways;
  else if constexpr (std::is_same_v<T, HTTPRoute>)
    return c.http_routes;
  else if constexpr (std::is_same_v<T, GRPCRoute>)
    return c.grpc_routes;
  else if constexpr (std::is_same_v<T, ConfigMap>)
    return c.config_maps;
  else
    return c.reference_grants;
}

// Cluster-scoped kinds are keyed by name alone.
template <typename T>
std::string key_of(const T& x) {
  if constexpr (std::is_same_v<T, GatewayClass> || std::is_same_v<T, Namespace>)
    return x.meta.name;
  else
    return x.meta.key();
}

}  // namespace

const char* kind_of(const Object& o) {
  static constexpr const char* kNames[] = {"GatewayRoute", "Service",   "EndpointSlice",
                                           "Secret",       "Ingress",   "GatewayClass",
                                           "Namespace",    "Gateway",   "HTTPRoute",
                                           "ReferenceGrant", "GRPCRoute", "ConfigMap"};
  return kNames[o.index()];
}

const ObjectMeta& meta_of(const Object& o) {
  return std::visit([](const auto& x) -> const ObjectMeta& { return x.meta; }, o);
}

bool Cache::upsert(Object o) {
  return std::visit(
      [this](auto&& x) {
        using T = std::decay_t<decltype(x)>;
        auto& t = table<T>(*this);
        std::string key = key_of(x);
        auto it = t.find(key);
        if (it != t.end() && it->second == x) return false;
        t.insert_or_assign(std::move(key), std::move(x));
        return true;
      },
      std::move(o));
}

bool Cache::erase(const std::string& kind, const std::string& key) {
  if (kind == "GatewayRoute") return routes.erase(key) > 0;
  if (kind == "Service") return services.erase(key) > 0;
  if (kind == "EndpointSlice") return endpoint_slices.erase(key) > 0;
  if (kind == "Secret") return secrets.erase(key) > 0;
  if (kind == "Ingress") return ingresses.erase(key) > 0;
  if (kind == "GatewayClass") return gateway_classes.erase(key) > 0;
  if (kind == "Namespace") return namespaces.erase(key) > 0;
  if (kind == "Gateway") return gateways.erase(key) > 0;
  if (kind == "HTTPRoute") return http_routes.erase(key) > 0;
  if (kind == "ReferenceGrant") return reference_grants.erase(key) > 0;
  if (kind == "GRPCRoute") return grpc_routes.erase(key) > 0;
  if (kind == "ConfigMap") return config_maps.erase(key) > 0;
  return false;
}

bool Cache::contains(const Object& o) const {
  return std::visit(
      [this](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        return table<T>(*this).count(key_of(x)) > 0;
      },
      o);
}

size_t Cache::size() const {
  return routes.size() + services.size() + endpoint_slices.size() + secrets.size() +
         ingresses.size() + gateway_classes.size() + namespaces.size() + gateways.size() +
         http_routes.size() + reference_grants.size() + grpc_routes.size() + config_maps.size();
}

}  // namespace gantry::controller
