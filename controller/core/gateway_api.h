// Gateway API (gateway.networking.k8s.io, standard channel): which
// GatewayClasses and Gateways are gantry's, which listeners are valid, which
// HTTPRoutes and GRPCRoutes attach to which listeners with which hostnames,
// and the status of every one of those objects. See docs/gateway-api.md.
//
// Pure functions, like translate: the routes this attaches are then
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
#include "proxy/snapshot/model.h"

namespace gantry::controller {

inline constexpr const char* kDefaultGatewayController = "gantry.dev/gateway-controller";

// The conformance features gantry claims in its GatewayClasses'
// status.supportedFeatures, sorted: exactly those whose tests of the official
// suite pass (docs/gateway-api.md; the conformance stage runs these).
inline constexpr const char* kSupportedFeatures[] = {
    "BackendTLSPolicy",
    "BackendTLSPolicySANValidation",
    "GRPCRoute",
    "GRPCRouteNamedRouteRule",
    "Gateway",
    "GatewayAddressEmpty",
    "GatewayBackendClientCertificate",
    "GatewayFrontendClientCertificateValidation",
    "GatewayFrontendClientCertificateValidationInsecureFallback",
    "GatewayHTTPListenerIsolation",
    "GatewayHTTPSListenerDetectMisdirectedRequests",
    "GatewayInfrastructure",  // with --gateway-bind-address service only (generated Services)
    "GatewayPort8080",
    "GatewayStaticAddresses",
    "HTTPRoute",
    "HTTPRoute303RedirectStatusCode",
    "HTTPRoute307RedirectStatusCode",
    "HTTPRoute308RedirectStatusCode",
    "HTTPRouteBackendProtocolH2C",
    "HTTPRouteBackendProtocolWebSocket",
    "HTTPRouteBackendRequestHeaderModification",
    "HTTPRouteBackendTimeout",
    "HTTPRouteCORS",
    "HTTPRouteDestinationPortMatching",
    "HTTPRouteHostRewrite",
    "HTTPRouteMethodMatching",
    "HTTPRouteNamedRouteRule",
    "HTTPRouteParentRefPort",
    "HTTPRoutePathRedirect",
    "HTTPRoutePathRewrite",
    "HTTPRoutePortRedirect",
    "HTTPRouteQueryParamMatching",
    "HTTPRouteRequestMirror",
    "HTTPRouteRequestMultipleMirrors",
    "HTTPRouteRequestPercentageMirror",
    "HTTPRouteRequestTimeout",
    "HTTPRouteResponseHeaderModification",
    "HTTPRouteRetry",
    "HTTPRouteRetryBackendTimeout",
    "HTTPRouteRetryConnectionError",
    "HTTPRouteSchemeRedirect",
    "ListenerSet",
    "ReferenceGrant",
};

struct GatewayApiOptions {
  // GatewayClasses whose spec.controllerName is this are gantry's.
  std::string controller_name = kDefaultGatewayController;
  // The addresses gantry gives Gateways (--gateway-address): IPs, hostnames
  // and IPv4 CIDR ranges (at most 4096 addresses of each). A Gateway without
  // spec.addresses gets one of them, its own while there are enough (chosen
  // by a hash of its name, older Gateways first); a spec.addresses value must
  // be one of them. Empty: no address (Programmed=False AddressNotAssigned).
  std::vector<std::string> addresses;
  // More addresses a Gateway may claim in spec.addresses, never given out
  // unasked (--gateway-static-address; same forms).
  std::vector<std::string> static_addresses;
  // Where the proxy binds a Gateway's listeners (--gateway-bind-address):
  // empty = the Gateway's own address (an IP of the proxy's host, so each
  // Gateway is served on its own address); an IP such as 0.0.0.0 = that IP
  // for every Gateway, which then share a listener per port.
  std::string bind_address;
  // bind_address "proxy": Gateways are served on the proxy's own listeners,
  // reached on these ports (the proxy Service's); an HTTP listener on the
  // first and an HTTPS listener on the second are served, no other.
  uint16_t proxy_http_port = 80;
  uint16_t proxy_https_port = 443;
  // bind_address "service" (--gateway-bind-address service, what the Helm
  // chart uses): a Service per Gateway, in its namespace, exposes its listener
  // ports; their targetPorts are ports of the proxy (allocated from
  // service_ports) bound on service_bind, one per Gateway listener port, so
  // Gateways are isolated by port. The Service has no selector: gantry writes
  // its EndpointSlice, with the ready endpoints of `proxy_service` (the proxy
  // pods' own Service, "ns/name"). status.addresses come from the Service
  // (docs/gateway-api.md, deployment model).
  std::string service_type = "LoadBalancer";  // ClusterIP | NodePort | LoadBalancer
  std::string proxy_service;
  uint16_t service_port_min = 20000, service_port_max = 29999;
  std::string service_bind = "0.0.0.0";
  // Standalone mode: a spec.addresses IP is used as given (the user names an
  // address of the host), not checked against the pools.
  bool any_spec_address = false;
};

// --gateway-bind-address value for the proxy's own listeners.
inline constexpr const char* kBindProxy = "proxy";
// --gateway-bind-address value for a Service per Gateway.
inline constexpr const char* kBindService = "service";

// One HTTPRoute or GRPCRoute (the HTTPRoute model, objects.h) attached to at
// least one listener of gantry's Gateways.
struct HttpRouteBinding {
  std::string kind = "HTTPRoute";  // or "GRPCRoute"
  const HTTPRoute* route = nullptr;
  // False when every listener it attaches to has unresolved references: the
  // route is judged (its status) but not served.
  bool serve = true;
  bool any_host = false;               // some attached listener and the route allow every host
  std::vector<std::string> hostnames;  // else: the union of the intersections, sorted
  std::vector<std::string> listeners;  // the snapshot listeners that serve it, sorted
};

// A Secret a valid HTTPS listener serves, with the hostnames SNI selects it for
// (the listener's hostname; without one, those of the routes attached to it).
struct ListenerCertificate {
  std::string secret_key;  // "ns/name"
  std::vector<std::string> hostnames;
  std::string listener;    // ListenerState::cert_key of its listener
};

// The verdict of one parentRef of one HTTPRoute or GRPCRoute.
struct ParentVerdict {
  GwParentRef ref;  // as written
  bool accepted = false;
  // Accepted | NotAllowedByListeners | NoMatchingListenerHostname | NoMatchingParent |
  // HostnameConflict (a route of the other kind, older, has its hostnames on the listeners)
  std::string reason;
  std::string message;
};

struct ListenerState {
  std::string name;
  // "gateway ns/name/listener", or "gateway ns/name/set ns/name/listener" for
  // a ListenerSet's (names are unique only within their owner).
  std::string cert_key;
  bool accepted = false;  // Accepted: the listener is understood
  bool attachable = false;  // Accepted and not Conflicted: routes attach (and count)
  bool resolved = false;  // ResolvedRefs
  bool valid = false;  // attachable and its references resolve: served
  std::vector<GwGroupKind> supported_kinds;
  int64_t attached_routes = 0;
  std::string served_on;  // valid and bound: the snapshot listener's name ("address:port")
  std::vector<Condition> conditions;  // Accepted, Programmed, ResolvedRefs, Conflicted
};

struct GatewayState {
  const Gateway* gateway = nullptr;
  std::vector<ListenerState> listeners;
  std::vector<GwAddress> addresses;  // status.addresses
  std::string bind;                  // the IP its listeners are bound on; empty: not served
  std::string unsupported_address;   // why Accepted=False UnsupportedAddress
  std::string unusable_address;      // why Programmed=False AddressNotUsable
  int64_t attached_listener_sets = 0;  // status.attachedListenerSets: the accepted ones
  bool insecure_frontend = false;    // some HTTPS listener validates with AllowInsecureFallback
  std::string invalid_parameters;    // why Accepted=False InvalidParameters
  // bind_address "service": the Gateway's Service ("ns/name") and the proxy
  // port each of its listener ports is bound on.
  std::string service;
  std::map<int64_t, uint16_t> proxy_ports;
  std::string service_pending;       // why it has no address yet (the load balancer's)
};

// A ListenerSet whose parentRef is one of gantry's Gateways.
struct ListenerSetState {
  const ListenerSet* set = nullptr;
  std::string gateway;    // its Gateway's ns/name
  bool allowed = false;   // the Gateway's spec.allowedListeners selects its namespace
  bool accepted = false;  // allowed, and one of its listeners is accepted and resolves
  std::vector<ListenerState> listeners;  // one per spec.listeners entry when allowed, else none
};

struct GatewayApiModel {
  std::vector<const GatewayClass*> classes;  // gantry's
  std::map<std::string, GatewayState> gateways;  // gantry's, by ns/name
  std::map<std::string, ListenerSetState> listener_sets;  // those of gantry's Gateways, by ns/name
  std::vector<HttpRouteBinding> routes;
  // (kind, ns/name) of an HTTPRoute or GRPCRoute -> its parentRefs of gantry's Gateways
  std::map<std::pair<std::string, std::string>, std::vector<ParentVerdict>> parents;
  std::vector<ListenerCertificate> certificates;
  std::vector<snapshot::Listener> listeners;  // what the proxy binds, sorted by name
  // bind_address "service": the objects gantry writes (server-side apply),
  // a Service and an EndpointSlice per Gateway (gateway_service.h).
  std::vector<nlohmann::json> infrastructure;
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
  std::string kind;  // GatewayClass | Gateway | ListenerSet | HTTPRoute | GRPCRoute
  std::string namespace_;  // empty for GatewayClass
  std::string name;
  nlohmann::json status;
  std::string key() const { return namespace_.empty() ? name : namespace_ + "/" + name; }
};

// `route_verdicts`: translate's Accepted / ResolvedRefs of each HTTPRoute and
// GRPCRoute it translated.
std::vector<ObjectStatus> gateway_api_statuses(const Cache& cache, const GatewayApiModel& model,
                                               const GatewayApiOptions& options,
                                               const std::vector<RouteStatus>& route_verdicts);

}  // namespace gantry::controller
