// Translate: the object cache in, the routing snapshot and route statuses out.
//
// A pure function: no I/O, no clock, no randomness. The same cache always
// yields a byte-identical snapshot (everything is sorted), which is what lets
// the pusher detect no-op updates. One bad route is one status condition,
// never a broken snapshot: a route that fails a semantic check is left out
// with Accepted=False; a reference that does not resolve becomes an
// `unresolved` backend (the proxy answers 500 for its share) with
// ResolvedRefs=False; every other route is kept. Each route (and each
// certificate) is also checked with the proxy's own validator, so whatever
// translate emits is what the proxy accepts.
//
// The snapshot's version is left 0: the caller (the pusher) sets it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "controller/core/hostname_ownership.h"
#include "controller/core/gateway_api.h"
#include "controller/core/gateway_service.h"
#include "controller/core/ingress_nginx.h"
#include "controller/core/objects.h"
#include "controller/core/status.h"
#include "proxy/base/result.h"
#include "proxy/snapshot/model.h"

namespace gantry::controller {

struct TranslateOptions {
  // Ingresses whose spec.ingressClassName (or legacy kubernetes.io/ingress.class
  // annotation) equals this are served; others are ignored.
  std::string ingress_class = "gantry";
  // Also serve Ingresses that name no class (what an IngressClass marked
  // ingressclass.kubernetes.io/is-default-class does; the kube source sets it).
  bool claim_classless_ingresses = false;
  // Hostname ownership (hostname_ownership.h, --hostname-ownership): a route
  // naming a hostname another namespace owns is refused that hostname.
  bool hostname_ownership = true;
  HostnameOwners hostname_owners;  // the operator's assignments (kube: a ConfigMap)
  // Gateway API: gantry's controllerName and the Gateways' addresses.
  GatewayApiOptions gateway_api;
  // ingress-nginx compatibility mode (--ingress-nginx-compat, docs/migrating-from-ingress-nginx.md).
  IngressNginxOptions ingress_nginx;
  // The Redis store of rateLimit.scope global (--ratelimit-store-*); unset:
  // routes asking for a global limit are refused.
  std::optional<snapshot::RateLimitStore> rate_limit_store;
};

struct TranslateResult {
  snapshot::Snapshot snapshot;
  std::vector<RouteStatus> statuses;
  std::vector<std::string> warnings;  // problems not tied to a route (bad endpoint addresses)
  // GatewayClass, Gateway and HTTPRoute statuses (HTTPRoutes are not in `statuses`).
  std::vector<ObjectStatus> object_statuses;
  // The migration report: one entry per Ingress served in ingress-nginx mode.
  std::vector<NginxIngressReport> ingress_nginx;
  // --gateway-bind-address service: the Services and EndpointSlices gantry
  // writes for Gateways (server-side apply bodies), and the generated ones
  // to delete (gateway_service.h).
  std::vector<nlohmann::json> infrastructure;
  std::vector<ObjectKey> infrastructure_stale;
};

TranslateResult translate(const Cache& cache, const TranslateOptions& options);

// The hook deciding whether an Ingress belongs to gantry (its own class, or an
// ingress-nginx class in compatibility mode).
bool ingress_is_ours(const Ingress& ingress, const TranslateOptions& options);
// True when the Ingress is served with ingress-nginx's semantics.
bool ingress_is_nginx(const Ingress& ingress, const TranslateOptions& options);

// "15s", "250ms", "1.5m" (a bare number is seconds) -> milliseconds.
Result<snapshot::Millis> parse_k8s_duration(std::string_view s);
// Kubernetes quantities as byte counts: "1048576", "512Ki", "1Mi", "1Gi", "10M", "1k".
Result<uint64_t> parse_size(std::string_view s);

}  // namespace gantry::controller
