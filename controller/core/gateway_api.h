// Gateway API (gateway.networking.k8s.io, standard channel): which
// GatewayClasses and Gateways are gantry's, which listeners are valid, which
// HTTPRoutes attach to which listeners with which hostnames, and the status
// of every one of those objects. See docs/gateway-api.md.
//
// Pure functions, like translate: the HTTPRoutes this attaches are then
// translated by translate.cc with the GatewayRoute rule model (one route model
// for every source kind); translate calls build_gateway_api() first and
// gateway_api_statuses() last, with the route verdicts it computed.
#pragma once

#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "controller/core/objects.h"
#include "controller/core/status.h"

namespace gantry::controller {

inline constexpr const char* kDefaultGatewayController = "gantry.dev/gateway-controller";

struct GatewayApiOptions {
  // GatewayClasses whose spec.controllerName is this are gantry's.
  std::string controller_name = kDefaultGatewayController;
  // status.addresses of every Gateway that gives no spec.addresses: where the
  // proxy serving it is reached (--gateway-address). Empty: no address.
  std::vector<std::string> addresses;
};

// One HTTPRoute attached to at least one listener of gantry's Gateways.
struct HttpRouteBinding {
  const HTTPRoute* route = nullptr;
  // False when every listener it attaches to has unresolved references: the
  // route is judged (its status) but not served.
  bool serve = true;
  bool any_host = false;               // some attached listener and the route allow every host
  std::vector<std::string> hostnames;  // else: the union of the intersections, sorted
};

// A Secret a valid HTTPS listener serves, with the hostnames SNI selects it for
// (the listener's hostname; without one, those of the routes attached to it).
struct ListenerCertificate {
  std::string secret_key;  // "ns/name"
  std::vector<std::string> hostnames;
  std::string listener;    // "gateway ns/name/listener name"
};

// The verdict of one parentRef of one HTTPRoute.
struct ParentVerdict {
  GwParentRef ref;  // as written
  bool accepted = false;
  std::string reason;  // Accepted | NotAllowedByListeners | NoMatchingListenerHostname | NoMatchingParent
  std::string message;
};

struct ListenerState {
  std::string name;
  bool accepted = false;  // Accepted: the listener is understood
  bool attachable = false;  // Accepted and not Conflicted: routes attach (and count)
  bool valid = false;  // attachable and its references resolve: served
  std::vector<GwGroupKind> supported_kinds;
  int64_t attached_routes = 0;
  std::vector<Condition> conditions;  // Accepted, Programmed, ResolvedRefs, Conflicted
};

struct GatewayState {
  const Gateway* gateway = nullptr;
  std::vector<ListenerState> listeners;
};

struct GatewayApiModel {
  std::vector<const GatewayClass*> classes;  // gantry's
  std::map<std::string, GatewayState> gateways;  // gantry's, by ns/name
  std::vector<HttpRouteBinding> routes;
  std::map<std::string, std::vector<ParentVerdict>> parents;  // HTTPRoute ns/name -> its parentRefs of gantry's Gateways
  std::vector<ListenerCertificate> certificates;
};

// Empty when the Secret `ns/name` (in the cache) is a usable certificate; else why not.
using CertificateCheck = std::function<std::string(const std::string& secret_key)>;

GatewayApiModel build_gateway_api(const Cache& cache, const GatewayApiOptions& options,
                                  const CertificateCheck& check_certificate);

// True when a ReferenceGrant in `to_ns` lets objects of (from_group, from_kind)
// in `from_ns` refer to the object (to_group, to_kind, to_name).
bool reference_granted(const Cache& cache, const std::string& from_group,
                       const std::string& from_kind, const std::string& from_ns,
                       const std::string& to_group, const std::string& to_kind,
                       const std::string& to_ns, const std::string& to_name);

// Gateway API hostname intersection: the hostnames a route's `route_host`
// serves through a listener with `listener_host` ("" = any), or "" if none.
std::string intersect_hostname(const std::string& route_host, const std::string& listener_host);

// The status a Gateway API object should have, conditions without
// lastTransitionTime (the writer keeps or sets those).
struct ObjectStatus {
  std::string kind;  // GatewayClass | Gateway | HTTPRoute
  std::string namespace_;  // empty for GatewayClass
  std::string name;
  nlohmann::json status;
  std::string key() const { return namespace_.empty() ? name : namespace_ + "/" + name; }
};

// `route_verdicts`: translate's Accepted / ResolvedRefs of each HTTPRoute it translated.
std::vector<ObjectStatus> gateway_api_statuses(const Cache& cache, const GatewayApiModel& model,
                                               const GatewayApiOptions& options,
                                               const std::vector<RouteStatus>& route_verdicts);

}  // namespace gantry::controller
