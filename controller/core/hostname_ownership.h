// Hostname ownership: which namespace may route a hostname (docs/security.md).
//
// Without it, a tenant who can create a route in their namespace could name
// another team's hostname with a more specific match (`Exact /login`) and
// receive that team's requests, since precedence ignores namespaces.
//
// The rule, for every kind of route (GatewayRoute, Ingress of our class, and
// any later kind: callers build a HostnameClaim per route):
//  - A hostname (exact, wildcard, or "" for a route with no hostnames, the
//    catch-all) belongs to the namespace of the oldest route claiming it,
//    oldest by creationTimestamp, then namespace/name, then kind. Every route
//    that names it counts, also one refused for another reason: a typo in the
//    owner's route never hands its hostname to another tenant. So ownership
//    moves only when the owner's routes are deleted or stop naming it, never
//    because a newer route is more specific.
//  - A wildcard covers the names below it (`*.example.com` covers
//    `a.example.com`, `a.b.example.com` and `*.b.example.com`): a claim on such
//    a name from another namespace is refused when the most specific covering
//    wildcard already has an owner. The catch-all covers nothing.
//  - The operator's allow-list (HostnameOwners, from the ConfigMap
//    gantry-hostname-owners) wins over age: a hostname listed there (or below a
//    listed wildcard, most specific entry first) belongs to the listed
//    namespaces only.
//  - Routes of the owning namespace share the hostname freely.
// A refused hostname is left out of that route only: its other hostnames keep
// working, and the route reports Accepted=False, reason HostnameConflict,
// naming the owner.
//
// Pure functions: no clock, no I/O; the verdicts follow the claims' order.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/base/result.h"

namespace gantry::controller {

struct HostnameClaim {
  std::string kind;  // "GatewayRoute", "Ingress", ...
  std::string namespace_;
  std::string name;
  int64_t creation_timestamp = 0;      // unix seconds
  std::vector<std::string> hostnames;  // lower-cased and valid; "" is the catch-all
};

// Operator-assigned hostnames: hostname (exact or "*.suffix") -> namespaces.
struct HostnameOwners {
  std::map<std::string, std::vector<std::string>> allowed;
  std::string source;  // "ConfigMap gantry-system/gantry-hostname-owners", for messages
  bool operator==(const HostnameOwners&) const = default;
};

struct HostnameRefusal {
  std::string hostname;  // "" is the catch-all
  std::string message;   // names the owner
};

struct HostnameVerdict {
  std::vector<std::string> kept;  // in the claim's order
  std::vector<HostnameRefusal> refused;
};

// One verdict per claim, in the same order.
std::vector<HostnameVerdict> decide_hostname_ownership(const std::vector<HostnameClaim>& claims,
                                                       const HostnameOwners& owners);

// The ConfigMap's `owners` value: one hostname per line followed by the
// namespaces that own it, separated by blanks or commas; `#` starts a comment.
//   shop.example.com    team-a
//   *.internal.example  platform, platform-canary
// An invalid hostname or namespace, or a hostname listed twice, is an error
// naming the line.
Result<HostnameOwners> parse_hostname_owners(std::string_view text);

}  // namespace gantry::controller
