// Table-driven tests of the Gateway API part of translate (gateway_api.h):
// GatewayClass / Gateway / HTTPRoute / ReferenceGrant manifests in, snapshot
// routes and object statuses out.
#include "controller/core/gateway_api.h"

#include <gtest/gtest.h>

#include "controller/core/translate.h"
#include "tests/unit/controller/test_util.h"

namespace gantry::controller {
namespace {

using testing::dump;
using testing::load;

TEST(GatewayApi, HostnameIntersection) {
  struct Case {
    const char* route;
    const char* listener;
    const char* want;
  } cases[] = {
      {"a.example.com", "", "a.example.com"},
      {"", "a.example.com", "a.example.com"},
      {"A.Example.com", "a.example.com", "a.example.com"},
      {"a.example.com", "b.example.com", ""},
      {"a.example.com", "*.example.com", "a.example.com"},
      {"a.b.example.com", "*.example.com", "a.b.example.com"},
      {"example.com", "*.example.com", ""},
      {"*.example.com", "a.example.com", "a.example.com"},
      {"*.example.com", "*.example.com", "*.example.com"},
      {"*.a.example.com", "*.example.com", "*.a.example.com"},
      {"*.example.com", "*.a.example.com", "*.a.example.com"},
      {"*.example.org", "*.example.com", ""},
  };
  for (const auto& c : cases)
    EXPECT_EQ(intersect_hostname(c.route, c.listener), c.want) << c.route << " / " << c.listener;
}

constexpr std::string_view kBase = R"(
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: gantry}
spec: {controllerName: gantry.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: other}
spec: {controllerName: example.com/other}
---
apiVersion: v1
kind: Namespace
metadata: {name: apps, labels: {team: web}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: infra, generation: 3}
spec:
  gatewayClassName: gantry
  listeners:
  - {name: http, port: 80, protocol: HTTP, allowedRoutes: {namespaces: {from: All}}}
  - {name: foo, port: 80, protocol: HTTP, hostname: "*.foo.com",
     allowedRoutes: {namespaces: {from: Selector, selector: {matchLabels: {team: web}}}}}
  - {name: tcp, port: 9000, protocol: TCP}
  - name: kinds
    port: 8080
    protocol: HTTP
    allowedRoutes: {kinds: [{kind: HTTPRoute}, {kind: GRPCRoute}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: theirs, namespace: infra}
spec:
  gatewayClassName: other
  listeners: [{name: http, port: 80, protocol: HTTP}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: apps}
spec: {ports: [{name: http, port: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: infra}
spec: {ports: [{name: http, port: 8080}]}
)";

TranslateResult run(std::string_view extra) {
  Cache c = load(std::string(kBase) + "---\n" + std::string(extra));
  TranslateOptions o;
  o.gateway_api.addresses = {"192.0.2.1"};
  return translate(c, o);
}

const nlohmann::json* find(const TranslateResult& r, const std::string& kind, const std::string& key) {
  for (const auto& s : r.object_statuses)
    if (s.kind == kind && s.key() == key) return &s.status;
  return nullptr;
}

// "Accepted=True/Accepted ResolvedRefs=False/RefNotPermitted" of a condition list.
std::string conds(const nlohmann::json& list) {
  std::string out;
  for (const auto& c : list)
    out += (out.empty() ? "" : " ") + c["type"].get<std::string>() + "=" +
           c["status"].get<std::string>() + "/" + c["reason"].get<std::string>();
  return out;
}

TEST(GatewayApi, GatewayAndClassStatus) {
  auto r = run("");
  ASSERT_TRUE(find(r, "GatewayClass", "gantry"));
  EXPECT_FALSE(find(r, "GatewayClass", "other"));
  EXPECT_FALSE(find(r, "Gateway", "infra/theirs"));
  const nlohmann::json* gw = find(r, "Gateway", "infra/gw");
  ASSERT_TRUE(gw);
  EXPECT_EQ((*gw)["addresses"][0]["value"], "192.0.2.1");
  // One listener (TCP) is not accepted: the Gateway is, with reason ListenersNotValid.
  EXPECT_EQ(conds((*gw)["conditions"]), "Accepted=True/ListenersNotValid Programmed=True/Programmed");
  const auto& ls = (*gw)["listeners"];
  ASSERT_EQ(ls.size(), 4u);
  EXPECT_EQ(conds(ls[0]["conditions"]),
            "Accepted=True/Accepted Programmed=True/Programmed ResolvedRefs=True/ResolvedRefs "
            "Conflicted=False/NoConflicts");
  EXPECT_EQ(ls[0]["conditions"][0]["observedGeneration"], 3);
  EXPECT_EQ(conds(ls[2]["conditions"]),
            "Accepted=False/UnsupportedProtocol Programmed=False/Invalid "
            "ResolvedRefs=True/ResolvedRefs Conflicted=False/NoConflicts");
  EXPECT_EQ(ls[2]["supportedKinds"].size(), 0u);
  EXPECT_EQ(conds(ls[3]["conditions"]).find("ResolvedRefs=False/InvalidRouteKinds") != std::string::npos, true);
  EXPECT_EQ(ls[3]["supportedKinds"].size(), 1u);
}

TEST(GatewayApi, RouteAttachment) {
  struct Case {
    const char* name;
    const char* route;   // spec fields of HTTPRoute r in namespace apps
    const char* status;  // its parent's conditions
    const char* snapshot;
  } cases[] = {
      {"all namespaces, no hostname",
       "parentRefs: [{name: gw, namespace: infra, sectionName: http}]\n"
       "  rules: [{backendRefs: [{name: web, port: 8080}]}]",
       "Accepted=True/Accepted ResolvedRefs=True/ResolvedRefs",
       "route apps/r (HTTPRoute)\n rule0 -> apps/web:8080\ncluster apps/web:8080\n"},
      {"selector listener narrows the hostnames",
       "parentRefs: [{name: gw, namespace: infra, sectionName: foo}]\n"
       "  hostnames: [a.foo.com, b.bar.com]\n"
       "  rules: [{backendRefs: [{name: web, port: 8080}]}]",
       "Accepted=True/Accepted ResolvedRefs=True/ResolvedRefs",
       "route apps/r (HTTPRoute) hosts=a.foo.com\n rule0 -> apps/web:8080\ncluster apps/web:8080\n"},
      {"no hostname matches",
       "parentRefs: [{name: gw, namespace: infra, sectionName: foo}]\n"
       "  hostnames: [b.bar.com]\n  rules: [{backendRefs: [{name: web, port: 8080}]}]",
       "Accepted=False/NoMatchingListenerHostname ResolvedRefs=True/ResolvedRefs", ""},
      {"unknown section",
       "parentRefs: [{name: gw, namespace: infra, sectionName: nope}]\n"
       "  rules: [{backendRefs: [{name: web, port: 8080}]}]",
       "Accepted=False/NoMatchingParent ResolvedRefs=True/ResolvedRefs", ""},
      {"TCP listener does not take HTTPRoutes",
       "parentRefs: [{name: gw, namespace: infra, sectionName: tcp}]\n"
       "  rules: [{backendRefs: [{name: web, port: 8080}]}]",
       "Accepted=False/NotAllowedByListeners ResolvedRefs=True/ResolvedRefs", ""},
      {"cross-namespace backend without a grant",
       "parentRefs: [{name: gw, namespace: infra, sectionName: http}]\n"
       "  rules: [{backendRefs: [{name: web, namespace: infra, port: 8080}]}]",
       "Accepted=True/Accepted ResolvedRefs=False/RefNotPermitted",
       "route apps/r (HTTPRoute)\n rule0 -> !\"Service infra/web is in another namespace and no "
       "ReferenceGrant allows it\"\n"},
      {"unsupported filter",
       "parentRefs: [{name: gw, namespace: infra, sectionName: http}]\n"
       "  rules: [{filters: [{type: ExtensionRef, extensionRef: {group: x, kind: y, name: z}}],"
       " backendRefs: [{name: web, port: 8080}]}]",
       "Accepted=False/UnsupportedValue ResolvedRefs=True/ResolvedRefs", ""},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto r = run(std::string("apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n"
                             "metadata: {name: r, namespace: apps}\nspec:\n  ") + c.route + "\n");
    const nlohmann::json* st = find(r, "HTTPRoute", "apps/r");
    ASSERT_TRUE(st);
    ASSERT_EQ((*st)["parents"].size(), 1u);
    EXPECT_EQ((*st)["parents"][0]["controllerName"], "gantry.dev/gateway-controller");
    EXPECT_EQ(conds((*st)["parents"][0]["conditions"]), c.status);
    EXPECT_EQ(dump(r.snapshot), c.snapshot);
  }
}

TEST(GatewayApi, ReferenceGrantAllowsACrossNamespaceBackend) {
  auto r = run(R"(apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: apps}
spec:
  parentRefs: [{name: gw, namespace: infra}]
  rules: [{backendRefs: [{name: web, namespace: infra, port: 8080}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: ReferenceGrant
metadata: {name: g, namespace: infra}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: apps}]
  to: [{group: "", kind: Service, name: web}]
)");
  EXPECT_EQ(dump(r.snapshot), "route apps/r (HTTPRoute)\n rule0 -> infra/web:8080\ncluster infra/web:8080\n");
  const nlohmann::json* gw = find(r, "Gateway", "infra/gw");
  ASSERT_TRUE(gw);
  // Attached to the all-namespaces listener and the selector one (apps has team=web);
  // not to the TCP one, nor to the one on 8080 (allowedRoutes from Same).
  EXPECT_EQ((*gw)["listeners"][0]["attachedRoutes"], 1);
  EXPECT_EQ((*gw)["listeners"][1]["attachedRoutes"], 1);
  EXPECT_EQ((*gw)["listeners"][2]["attachedRoutes"], 0);
  EXPECT_EQ((*gw)["listeners"][3]["attachedRoutes"], 0);
}

}  // namespace
}  // namespace gantry::controller
