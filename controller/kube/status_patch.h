// What the controller writes back to the API server, as pure functions.
//
// A GatewayRoute's status is {observedGeneration, conditions: [metav1.Condition]}
// with Accepted, ResolvedRefs and Programmed from translate (status.h). The
// update is computed against the status the informer last saw:
//  - nothing is written when type, status, reason, message and
//    observedGeneration of every condition, and the top-level
//    observedGeneration, already match (our own writes come back through the
//    watch, so this is what stops write storms);
//  - a condition keeps its lastTransitionTime while its status (True/False)
//    stays the same; it gets `now` when the status flips or it is new;
//  - conditions of other types (written by someone else) are kept.
// Programmed's message names the snapshot version; the version is dropped from
// what is written, or every endpoint change would rewrite every route's status.
//
// An Ingress gantry serves gets status.loadBalancer.ingress = [{ip}] or
// [{hostname}] from --ingress-status-address.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "controller/core/gateway_api.h"
#include "controller/core/status.h"

namespace gantry::controller::kube {

// "2024-05-01T10:00:00Z" (seconds, UTC), the metav1.Time format.
std::string format_rfc3339(int64_t unix_seconds);
// "2024-05-01T10:00:00.123456Z", the metav1.MicroTime format (Lease times).
std::string format_rfc3339_micro(int64_t unix_micros);

// The status object to write (the whole `status`), or nullopt when `observed`
// (the object's current `status`, null when it has none) already says it.
std::optional<nlohmann::json> route_status_update(const RouteStatus& desired,
                                                  const nlohmann::json& observed,
                                                  const std::string& now_rfc3339);

// The whole status of a GatewayClass, Gateway or HTTPRoute (gateway_api.h) to
// write, or nullopt when `observed` already says it (lastTransitionTimes
// aside). Every condition keeps its observed lastTransitionTime while its
// status stays (matched by type within the same status.conditions,
// listener (by name) or route parent (by parentRef)); new or flipped ones get
// `now`. An HTTPRoute's parents written by other controllers are kept.
std::optional<nlohmann::json> object_status_update(const ObjectStatus& desired,
                                                   const std::string& controller_name,
                                                   const nlohmann::json& observed,
                                                   const std::string& now_rfc3339);
// `j` dumped with every lastTransitionTime removed, at any depth.
std::string fingerprint_deep(const nlohmann::json& j);

// The Ingress status to write for `address` (an IP literal or a hostname), or
// nullopt when `observed` already lists exactly that address.
std::optional<nlohmann::json> ingress_status_update(const std::string& address,
                                                    const nlohmann::json& observed);

// The message as written: the "(snapshot version N)" part removed.
std::string stable_message(const std::string& message);

// Kubernetes Events for GatewayRoutes (`kubectl describe gatewayroute` shows
// them): one per change of the route's verdict. The verdict is Warning with
// the first False condition among Accepted and ResolvedRefs (its reason and
// message), else Normal "Accepted". The controller emits an event when the
// verdict differs from the last one it emitted for that route, except a
// route's first Normal verdict (a healthy route at start-up is not news).
struct RouteEvent {
  std::string type;  // "Warning" | "Normal"
  std::string reason;
  std::string message;
  bool operator==(const RouteEvent&) const = default;
};
RouteEvent route_event(const RouteStatus& s);

// A core/v1 Event about GatewayRoute ns/name (uid may be empty), for POST to
// /api/v1/namespaces/{ns}/events, happening at `unix_micros`. `instance` names
// the controller replica (clipped to the API's 128 characters). The order of a
// route's events is carried by `eventTime` (microseconds; the caller makes it
// strictly increasing): first/lastTimestamp have one-second resolution, so two
// verdicts within a second would tie on them. With eventTime the API also
// requires reportingComponent, reportingInstance and action ("Translate").
// `kind` is GatewayRoute or Ingress (the ingress-nginx mode's verdicts).
nlohmann::json event_object(const RouteEvent& e, const std::string& ns, const std::string& name,
                            const std::string& uid, int64_t unix_micros,
                            const std::string& instance, const std::string& kind = "GatewayRoute");

}  // namespace gantry::controller::kube
