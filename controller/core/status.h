// Route status: the conditions translate computes for every GatewayRoute (and
// every Ingress gantry serves), in the shape of metav1.Condition.
//
//   Accepted      True | False (Invalid, UnsupportedValue)
//   ResolvedRefs  True | False (BackendNotFound, RefNotPermitted, InvalidKind,
//                               UnsupportedProtocol, SecretNotFound, InvalidCertificateRef)
//   Programmed    True (Programmed) | False (Pending, Rejected, NotAccepted);
//                 set by the pusher from the proxy's ACK / NACK, see set_programmed().
//
// Statuses are sorted by (kind, namespace, name); conditions in the order above.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/snapshot/model.h"

namespace gantry::controller {

struct Condition {
  std::string type;
  bool status = false;
  std::string reason;
  std::string message;
  int64_t observed_generation = 0;
  bool operator==(const Condition&) const = default;
};

struct RouteStatus {
  std::string kind = "GatewayRoute";  // or "Ingress"
  std::string namespace_;
  std::string name;
  int64_t observed_generation = 0;
  std::vector<Condition> conditions;

  std::string id() const { return namespace_ + "/" + name; }
  const Condition* find(std::string_view type) const;
  bool operator==(const RouteStatus&) const = default;
};

// Sets the Programmed condition of every status: True when the routes the
// status stands for are in `applied` exactly as in `desired`; else False with
// reason Rejected (the proxy NACKed: `rejection` holds its errors), Pending,
// or NotAccepted (the route is not in the snapshot at all). `applied` may be
// null (nothing acked yet).
void set_programmed(std::vector<RouteStatus>& statuses, const snapshot::Snapshot& desired,
                    const snapshot::Snapshot* applied, const std::string& rejection);

// One log line per route whose Accepted or ResolvedRefs condition changed:
//   route default/shop: Accepted=False (Invalid): spec.rules[0]...: regex "(" does not compile
// and "route default/old: removed" for routes that disappeared.
std::vector<std::string> status_changes(const std::vector<RouteStatus>& before,
                                        const std::vector<RouteStatus>& after);

// {"routes":[{"kind","namespace","name","observedGeneration","conditions":[
//   {"type","status":"True"|"False","reason","message","observedGeneration"}]}]}
std::string statuses_to_json(const std::vector<RouteStatus>& statuses);

}  // namespace gantry::controller
