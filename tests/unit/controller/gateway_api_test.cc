// Table-driven tests of the Gateway API part of translate (gateway_api.h):
// GatewayClass / Gateway / HTTPRoute / GRPCRoute / ReferenceGrant manifests in, snapshot
// routes and object statuses out.
#include "controller/core/gateway_api.h"

#include <gtest/gtest.h>

#include <set>

#include "controller/core/gateway_service.h"
#include "controller/core/translate.h"
#include "proxy/snapshot/validate.h"
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
    allowedRoutes: {kinds: [{kind: HTTPRoute}, {kind: TCPRoute}]}
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
  for (const auto& c : list) {
    // Appends, not `"x" + std::string&&`: GCC 12 -O3 warns -Wrestrict on that (GCC PR 105329).
    if (!out.empty()) out += ' ';
    out.append(c["type"].get<std::string>()).append("=").append(c["status"].get<std::string>());
    out.append("/").append(c["reason"].get<std::string>());
  }
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
  // An HTTP listener takes HTTPRoutes and GRPCRoutes by default.
  ASSERT_EQ(ls[0]["supportedKinds"].size(), 2u);
  EXPECT_EQ(ls[0]["supportedKinds"][0]["kind"], "HTTPRoute");
  EXPECT_EQ(ls[0]["supportedKinds"][1]["kind"], "GRPCRoute");
  EXPECT_EQ(conds(ls[3]["conditions"]).find("ResolvedRefs=False/InvalidRouteKinds") != std::string::npos, true);
  EXPECT_EQ(ls[3]["supportedKinds"].size(), 1u);
}

// The listeners of kBase's Gateway infra/gw that the proxy binds: HTTP on 80
// (two listeners share it: the hostless one and *.foo.com) and on 8080.
constexpr const char* kListeners =
    "listener 192.0.2.1:80 http *.foo.com\nlistener 192.0.2.1:8080 http\n";

TEST(GatewayApi, RouteAttachment) {
  struct Case {
    const char* name;
    const char* route;   // spec fields of HTTPRoute r in namespace apps
    const char* status;  // its parent's conditions
    std::string snapshot;
  } cases[] = {
      {"all namespaces, no hostname",
       "parentRefs: [{name: gw, namespace: infra, sectionName: http}]\n"
       "  rules: [{backendRefs: [{name: web, port: 8080}]}]",
       "Accepted=True/Accepted ResolvedRefs=True/ResolvedRefs",
       std::string("route apps/r (HTTPRoute) on=192.0.2.1:80\n rule0 -> apps/web:8080\n"
                   "cluster apps/web:8080\n") + kListeners},
      {"selector listener narrows the hostnames",
       "parentRefs: [{name: gw, namespace: infra, sectionName: foo}]\n"
       "  hostnames: [a.foo.com, b.bar.com]\n"
       "  rules: [{backendRefs: [{name: web, port: 8080}]}]",
       "Accepted=True/Accepted ResolvedRefs=True/ResolvedRefs",
       std::string("route apps/r (HTTPRoute) hosts=a.foo.com on=192.0.2.1:80/*.foo.com\n"
                   " rule0 -> apps/web:8080\ncluster apps/web:8080\n") + kListeners},
      {"no hostname matches",
       "parentRefs: [{name: gw, namespace: infra, sectionName: foo}]\n"
       "  hostnames: [b.bar.com]\n  rules: [{backendRefs: [{name: web, port: 8080}]}]",
       "Accepted=False/NoMatchingListenerHostname ResolvedRefs=True/ResolvedRefs", kListeners},
      {"unknown section",
       "parentRefs: [{name: gw, namespace: infra, sectionName: nope}]\n"
       "  rules: [{backendRefs: [{name: web, port: 8080}]}]",
       "Accepted=False/NoMatchingParent ResolvedRefs=True/ResolvedRefs", kListeners},
      {"TCP listener does not take HTTPRoutes",
       "parentRefs: [{name: gw, namespace: infra, sectionName: tcp}]\n"
       "  rules: [{backendRefs: [{name: web, port: 8080}]}]",
       "Accepted=False/NotAllowedByListeners ResolvedRefs=True/ResolvedRefs", kListeners},
      {"cross-namespace backend without a grant",
       "parentRefs: [{name: gw, namespace: infra, sectionName: http}]\n"
       "  rules: [{backendRefs: [{name: web, namespace: infra, port: 8080}]}]",
       "Accepted=True/Accepted ResolvedRefs=False/RefNotPermitted",
       std::string("route apps/r (HTTPRoute) on=192.0.2.1:80\n rule0 -> !\"Service infra/web is in "
                   "another namespace and no ReferenceGrant allows it\"\n") + kListeners},
      {"unsupported filter",
       "parentRefs: [{name: gw, namespace: infra, sectionName: http}]\n"
       "  rules: [{filters: [{type: ExtensionRef, extensionRef: {group: x, kind: y, name: z}}],"
       " backendRefs: [{name: web, port: 8080}]}]",
       "Accepted=False/UnsupportedValue ResolvedRefs=True/ResolvedRefs", kListeners},
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

// Filters on a backendRef (HTTPRouteBackendRequestHeaderModification) and
// RequestMirror filters (several; percent / fraction): what reaches the
// snapshot rule, and what the route's conditions say.
TEST(GatewayApi, BackendRefFiltersAndMirrors) {
  namespace sn = snapshot;
  const std::string more =
      "---\napiVersion: v1\nkind: Service\nmetadata: {name: v2, namespace: apps}\n"
      "spec: {ports: [{name: http, port: 8080}]}\n";
  struct Case {
    const char* name;
    const char* rules;   // spec.rules of HTTPRoute r in namespace apps
    const char* status;  // its parent's conditions
    std::vector<sn::BackendRef> backends;        // of rule 0, when accepted
    std::vector<sn::RequestMirror> mirrors;      // of rule 0, when accepted
  } cases[] = {
      {"header modifiers on each backendRef",
       "[{backendRefs: ["
       "{name: web, port: 8080, weight: 10, filters: [{type: RequestHeaderModifier, requestHeaderModifier: "
       "{set: [{name: Backend, value: web}], add: [{name: x-a, value: '1'}], remove: [x-r]}}]}, "
       "{name: v2, port: 8080, weight: 20, filters: [{type: ResponseHeaderModifier, responseHeaderModifier: "
       "{set: [{name: x-from, value: v2}]}}, {type: RequestHeaderModifier, requestHeaderModifier: "
       "{set: [{name: Backend, value: v2}]}}]}]}]",
       "Accepted=True/Accepted ResolvedRefs=True/ResolvedRefs",
       {{"apps/web:8080", 10, "", sn::HeaderModifier{{{"Backend", "web"}}, {{"x-a", "1"}}, {"x-r"}}, {}},
        {"apps/v2:8080", 20, "", sn::HeaderModifier{{{"Backend", "v2"}}, {}, {}},
         sn::HeaderModifier{{{"x-from", "v2"}}, {}, {}}}},
       {}},
      {"a bad header name on a backendRef is refused",
       "[{backendRefs: [{name: web, port: 8080, filters: [{type: RequestHeaderModifier, "
       "requestHeaderModifier: {set: [{name: 'a b', value: x}]}}]}]}]",
       "Accepted=False/UnsupportedValue ResolvedRefs=True/ResolvedRefs", {}, {}},
      {"another filter type on a backendRef is reported",
       "[{backendRefs: [{name: web, port: 8080, filters: [{type: RequestMirror, "
       "requestMirror: {backendRef: {name: v2, port: 8080}}}]}]}]",
       "Accepted=False/UnsupportedValue ResolvedRefs=True/ResolvedRefs", {}, {}},
      {"two mirrors, percent and fraction",
       "[{filters: [{type: RequestMirror, requestMirror: {backendRef: {name: v2, port: 8080}, percent: 20}}, "
       "{type: RequestMirror, requestMirror: {backendRef: {name: web, namespace: apps, port: 8080}, "
       "fraction: {numerator: 25, denominator: 50}}}, "
       "{type: RequestMirror, requestMirror: {backendRef: {name: v2, port: 8080}, fraction: {numerator: 3}}}], "
       "backendRefs: [{name: web, port: 8080}]}]",
       "Accepted=True/Accepted ResolvedRefs=True/ResolvedRefs",
       {{"apps/web:8080", 1, ""}},
       {{"apps/v2:8080", 20, 100}, {"apps/web:8080", 25, 50}, {"apps/v2:8080", 3, 100}}},
      {"percent 100 mirrors every request; percent 0 none",
       "[{filters: [{type: RequestMirror, requestMirror: {backendRef: {name: v2, port: 8080}, percent: 100}}, "
       "{type: RequestMirror, requestMirror: {backendRef: {name: web, port: 8080}, percent: 0}}], "
       "backendRefs: [{name: web, port: 8080}]}]",
       "Accepted=True/Accepted ResolvedRefs=True/ResolvedRefs",
       {{"apps/web:8080", 1, ""}}, {{"apps/v2:8080", 1, 1}}},
      {"a fraction above one is refused",
       "[{filters: [{type: RequestMirror, requestMirror: {backendRef: {name: v2, port: 8080}, "
       "fraction: {numerator: 5, denominator: 4}}}], backendRefs: [{name: web, port: 8080}]}]",
       "Accepted=False/UnsupportedValue ResolvedRefs=True/ResolvedRefs", {}, {}},
      {"a percent above 100 is refused",
       "[{filters: [{type: RequestMirror, requestMirror: {backendRef: {name: v2, port: 8080}, "
       "percent: 101}}], backendRefs: [{name: web, port: 8080}]}]",
       "Accepted=False/UnsupportedValue ResolvedRefs=True/ResolvedRefs", {}, {}},
      {"a mirror to a missing Service is unresolved, the other one stays",
       "[{filters: [{type: RequestMirror, requestMirror: {backendRef: {name: nope, port: 8080}}}, "
       "{type: RequestMirror, requestMirror: {backendRef: {name: v2, port: 8080}}}], "
       "backendRefs: [{name: web, port: 8080}]}]",
       "Accepted=True/Accepted ResolvedRefs=False/BackendNotFound",
       {{"apps/web:8080", 1, ""}}, {{"apps/v2:8080", 1, 1}}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto r = run(more + "---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n"
                 "metadata: {name: r, namespace: apps}\nspec:\n"
                 "  parentRefs: [{name: gw, namespace: infra, sectionName: http}]\n  rules: " +
                 c.rules + "\n");
    const nlohmann::json* st = find(r, "HTTPRoute", "apps/r");
    ASSERT_TRUE(st);
    ASSERT_EQ((*st)["parents"].size(), 1u);
    EXPECT_EQ(conds((*st)["parents"][0]["conditions"]), c.status);
    if (c.backends.empty()) {
      EXPECT_TRUE(r.snapshot.routes.empty());
      continue;
    }
    ASSERT_EQ(r.snapshot.routes.size(), 1u);
    const sn::Rule& rule = r.snapshot.routes[0].rules.at(0);
    EXPECT_EQ(rule.backends, c.backends);
    EXPECT_EQ(rule.filters.request_mirrors, c.mirrors);
    r.snapshot.version = 1;
    for (const auto& e : sn::validate(r.snapshot)) ADD_FAILURE() << e;
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
  // Served on the hostless listener and on *.foo.com (a request's host picks one).
  EXPECT_EQ(dump(r.snapshot),
            std::string("route apps/r (HTTPRoute) on=192.0.2.1:80,192.0.2.1:80/*.foo.com\n"
                        " rule0 -> infra/web:8080\ncluster infra/web:8080\n") + kListeners);
  const nlohmann::json* gw = find(r, "Gateway", "infra/gw");
  ASSERT_TRUE(gw);
  // Attached to the all-namespaces listener and the selector one (apps has team=web);
  // not to the TCP one, nor to the one on 8080 (allowedRoutes from Same).
  EXPECT_EQ((*gw)["listeners"][0]["attachedRoutes"], 1);
  EXPECT_EQ((*gw)["listeners"][1]["attachedRoutes"], 1);
  EXPECT_EQ((*gw)["listeners"][2]["attachedRoutes"], 0);
  EXPECT_EQ((*gw)["listeners"][3]["attachedRoutes"], 0);
}

// Two Gateways of a pool of addresses: each gets its own address, the proxy
// binds each one's listeners there, and a route is served only on the
// listeners of the Gateways it is attached to (HTTPRouteMultipleGateways).
constexpr std::string_view kTwoGateways = R"(
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: gantry}
spec: {controllerName: gantry.dev/gateway-controller}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: infra}
spec: {ports: [{name: http, port: 8080}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: a, namespace: infra, creationTimestamp: "2026-01-01T00:00:00Z"}
spec:
  gatewayClassName: gantry
  listeners: [{name: http, port: 80, protocol: HTTP}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: b, namespace: infra, creationTimestamp: "2026-01-02T00:00:00Z"}
spec:
  gatewayClassName: gantry
  listeners: [{name: http, port: 80, protocol: HTTP}, {name: alt, port: 8080, protocol: HTTP}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: shared, namespace: infra}
spec:
  parentRefs: [{name: a}, {name: b}]
  rules: [{backendRefs: [{name: web, port: 8080}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: only-b, namespace: infra}
spec:
  parentRefs: [{name: b, sectionName: alt}]
  rules: [{backendRefs: [{name: web, port: 8080}]}]
)";

std::string address_of(const TranslateResult& r, const std::string& gw) {
  const nlohmann::json* st = find(r, "Gateway", gw);
  if (!st || (*st)["addresses"].empty()) return "";
  return (*st)["addresses"][0]["value"].get<std::string>();
}

std::string gateway_conds(const TranslateResult& r, const std::string& gw) {
  const nlohmann::json* st = find(r, "Gateway", gw);
  return st ? conds((*st)["conditions"]) : "";
}

TEST(GatewayApi, EachGatewayItsOwnAddress) {
  TranslateOptions o;
  o.gateway_api.addresses = {"10.9.0.0/30"};  // 10.9.0.1 and 10.9.0.2
  auto r = translate(load(kTwoGateways), o);
  std::string a = address_of(r, "infra/a"), b = address_of(r, "infra/b");
  ASSERT_TRUE(a == "10.9.0.1" || a == "10.9.0.2") << a;
  ASSERT_TRUE(b == "10.9.0.1" || b == "10.9.0.2") << b;
  ASSERT_NE(a, b);
  std::string la = a + ":80", lb = b + ":80", lb2 = b + ":8080";
  std::set<std::string> listeners{la, lb, lb2};
  std::string shared;  // attached to a (one listener) and to b (both of its listeners)
  for (const auto& l : listeners) {
    if (!shared.empty()) shared += ',';
    shared += l;
  }
  std::string want_listeners;
  for (const auto& l : listeners) want_listeners += "listener " + l + " http\n";
  EXPECT_EQ(dump(r.snapshot), "route infra/only-b (HTTPRoute) on=" + lb2 +
                                  "\n rule0 -> infra/web:8080\n"
                                  "route infra/shared (HTTPRoute) on=" + shared +
                                  "\n rule0 -> infra/web:8080\ncluster infra/web:8080\n" + want_listeners);
  const nlohmann::json* st = find(r, "Gateway", "infra/b");
  ASSERT_TRUE(st);
  EXPECT_EQ((*st)["listeners"][1]["conditions"][1]["message"], "served on " + lb2);
  EXPECT_EQ(gateway_conds(r, "infra/b"), "Accepted=True/Accepted Programmed=True/Programmed");

  // A pool of one address: both share it (and its port 80 listener).
  o.gateway_api.addresses = {"10.9.0.7"};
  r = translate(load(kTwoGateways), o);
  EXPECT_EQ(address_of(r, "infra/a"), "10.9.0.7");
  EXPECT_EQ(address_of(r, "infra/b"), "10.9.0.7");
  EXPECT_EQ(dump(r.snapshot),
            "route infra/only-b (HTTPRoute) on=10.9.0.7:8080\n rule0 -> infra/web:8080\n"
            "route infra/shared (HTTPRoute) on=10.9.0.7:80,10.9.0.7:8080\n rule0 -> infra/web:8080\n"
            "cluster infra/web:8080\nlistener 10.9.0.7:80 http\nlistener 10.9.0.7:8080 http\n");

  // A bind address: every Gateway's listeners are bound there.
  o.gateway_api.addresses = {"203.0.113.5"};
  o.gateway_api.bind_address = "0.0.0.0";
  r = translate(load(kTwoGateways), o);
  EXPECT_EQ(address_of(r, "infra/b"), "203.0.113.5");
  EXPECT_EQ(dump(r.snapshot),
            "route infra/only-b (HTTPRoute) on=0.0.0.0:8080\n rule0 -> infra/web:8080\n"
            "route infra/shared (HTTPRoute) on=0.0.0.0:80,0.0.0.0:8080\n rule0 -> infra/web:8080\n"
            "cluster infra/web:8080\nlistener 0.0.0.0:80 http\nlistener 0.0.0.0:8080 http\n");

  // The proxy's own listeners (the chart): routes list no listener, only the
  // HTTP listener on the Service's HTTP port is served; 8080 is not.
  o.gateway_api.bind_address = "proxy";
  o.gateway_api.proxy_http_port = 80;
  r = translate(load(kTwoGateways), o);
  EXPECT_EQ(dump(r.snapshot), "route infra/shared (HTTPRoute)\n rule0 -> infra/web:8080\n"
                              "cluster infra/web:8080\n");
  st = find(r, "Gateway", "infra/b");
  ASSERT_TRUE(st);
  EXPECT_EQ(conds((*st)["listeners"][0]["conditions"]),
            "Accepted=True/Accepted Programmed=True/Programmed ResolvedRefs=True/ResolvedRefs "
            "Conflicted=False/NoConflicts");
  EXPECT_EQ((*st)["listeners"][1]["conditions"][1]["status"], "False");
  EXPECT_EQ((*st)["listeners"][1]["conditions"][1]["message"],
            "the proxy serves HTTP on port 80 only (--gateway-proxy-ports)");

  // A hostname to report and nothing to bind: nothing is Programmed.
  o.gateway_api.addresses = {"gw.example.com"};
  o.gateway_api.bind_address = "";
  r = translate(load(kTwoGateways), o);
  EXPECT_EQ(address_of(r, "infra/a"), "gw.example.com");
  st = find(r, "Gateway", "infra/a");
  ASSERT_TRUE(st);
  EXPECT_EQ(conds((*st)["listeners"][0]["conditions"]),
            "Accepted=True/Accepted Programmed=False/Invalid ResolvedRefs=True/ResolvedRefs "
            "Conflicted=False/NoConflicts");
  EXPECT_EQ(dump(r.snapshot), "");  // no route served, no listener bound
}

// --gateway-bind-address service (the chart): a Service per Gateway, each
// listener port on a proxy port of its own, the Service's ports kept.
constexpr std::string_view kProxyEndpoints = R"(
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: gantry-x1, namespace: gantry-system, labels: {kubernetes.io/service-name: gantry}}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints:
- {addresses: [10.244.0.5], conditions: {ready: true}}
- {addresses: [10.244.0.6], conditions: {ready: false, serving: true, terminating: true}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: other, namespace: gantry-system, labels: {kubernetes.io/service-name: other}}
addressType: IPv4
endpoints: [{addresses: [10.244.9.9]}]
)";

const nlohmann::json* object(const TranslateResult& r, const std::string& kind, const std::string& name) {
  for (const auto& o : r.infrastructure)
    if (o["kind"] == kind && o["metadata"]["name"] == name) return &o;
  return nullptr;
}

TEST(GatewayApi, ServicePerGateway) {
  TranslateOptions o;
  o.gateway_api.bind_address = "service";
  o.gateway_api.proxy_service = "gantry-system/gantry";
  o.gateway_api.service_type = "ClusterIP";
  o.gateway_api.service_port_min = 20000;
  o.gateway_api.service_port_max = 20009;
  std::string yaml(kTwoGateways);
  std::string_view a_meta = "metadata: {name: a, namespace: infra, creationTimestamp: \"2026-01-01T00:00:00Z\"}\n";
  yaml.replace(yaml.find(a_meta), a_meta.size(),
               "metadata: {name: a, namespace: infra, uid: u-a, creationTimestamp: \"2026-01-01T00:00:00Z\"}\n");
  yaml.insert(yaml.find("  listeners: [{name: http, port: 80, protocol: HTTP}]\n"),
              "  infrastructure: {labels: {team: web}, annotations: {lb.example/kind: internal}}\n");
  yaml += "---\n" + std::string(kProxyEndpoints);
  auto r = translate(load(yaml), o);

  // GatewayInfrastructure is claimed in service mode only (its Services carry the labels).
  auto claims_infrastructure = [](const TranslateResult& res) {
    const nlohmann::json* c = find(res, "GatewayClass", "gantry");
    if (!c) return false;
    for (const auto& f : (*c)["supportedFeatures"])
      if (f["name"] == "GatewayInfrastructure") return true;
    return false;
  };
  EXPECT_TRUE(claims_infrastructure(r));
  TranslateOptions address_mode;
  address_mode.gateway_api.addresses = {"10.9.0.0/30"};
  EXPECT_FALSE(claims_infrastructure(translate(load(yaml), address_mode)));

  // Before the Services exist: no address yet, but the listeners are bound.
  EXPECT_EQ(address_of(r, "infra/a"), "");
  const nlohmann::json* st = find(r, "Gateway", "infra/a");
  ASSERT_TRUE(st);
  EXPECT_EQ((*st)["conditions"][1]["reason"], "AddressNotAssigned");
  EXPECT_EQ((*st)["conditions"][1]["message"], "its Service infra/gantry-a is being created");
  std::map<std::string, int64_t> ports;  // "a:80" -> proxy port
  const nlohmann::json* svc_a = object(r, "Service", "gantry-a");
  const nlohmann::json* svc_b = object(r, "Service", "gantry-b");
  ASSERT_TRUE(svc_a && svc_b);
  EXPECT_EQ((*svc_a)["metadata"]["namespace"], "infra");
  EXPECT_EQ((*svc_a)["metadata"]["labels"],
            (nlohmann::json{{"team", "web"},
                            {"gateway.networking.k8s.io/gateway-name", "a"},
                            {"app.kubernetes.io/managed-by", "gantry-gateway"}}));
  EXPECT_EQ((*svc_a)["metadata"]["annotations"], (nlohmann::json{{"lb.example/kind", "internal"}}));
  EXPECT_EQ((*svc_a)["metadata"]["ownerReferences"][0]["uid"], "u-a");
  EXPECT_EQ((*svc_a)["metadata"]["ownerReferences"][0]["kind"], "Gateway");
  EXPECT_FALSE((*svc_b)["metadata"].contains("ownerReferences"));  // no uid: not from an API server
  EXPECT_EQ((*svc_a)["spec"]["type"], "ClusterIP");
  EXPECT_FALSE((*svc_a)["spec"].contains("selector"));
  ASSERT_EQ((*svc_a)["spec"]["ports"].size(), 1u);
  ASSERT_EQ((*svc_b)["spec"]["ports"].size(), 2u);
  for (auto [name, svc] : {std::pair{"a", svc_a}, std::pair{"b", svc_b}})
    for (const auto& p : (*svc)["spec"]["ports"]) {
      int64_t t = p["targetPort"].get<int64_t>();
      EXPECT_GE(t, 20000);
      EXPECT_LE(t, 20009);
      ports[std::string(name) + ":" + std::to_string(p["port"].get<int64_t>())] = t;
      EXPECT_EQ(p["name"], "http-" + std::to_string(p["port"].get<int64_t>()));
    }
  ASSERT_EQ(ports.size(), 3u);
  std::set<int64_t> distinct;
  for (const auto& [k, v] : ports) distinct.insert(v);
  EXPECT_EQ(distinct.size(), 3u);  // every Gateway listener port its own proxy port
  auto on = [&](const char* k) { return "0.0.0.0:" + std::to_string(ports[k]); };
  std::set<std::string> shared_on{on("a:80"), on("b:80"), on("b:8080")};  // every listener of both
  std::string shared;
  for (const auto& l : shared_on) shared += (shared.empty() ? "" : ",") + l;
  std::set<std::string> all{on("a:80"), on("b:80"), on("b:8080")};
  std::string want_listeners;
  for (const auto& l : all) want_listeners += "listener " + l + " http\n";
  EXPECT_EQ(dump(r.snapshot), "route infra/only-b (HTTPRoute) on=" + on("b:8080") +
                                  "\n rule0 -> infra/web:8080\nroute infra/shared (HTTPRoute) on=" +
                                  shared + "\n rule0 -> infra/web:8080\ncluster infra/web:8080\n" +
                                  want_listeners);
  // The EndpointSlice: the proxy Service's endpoints, on the proxy ports.
  const nlohmann::json* slice = object(r, "EndpointSlice", "gantry-b");
  ASSERT_TRUE(slice);
  EXPECT_EQ((*slice)["metadata"]["labels"]["kubernetes.io/service-name"], "gantry-b");
  EXPECT_EQ((*slice)["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"], "gantry-controller");
  EXPECT_EQ((*slice)["addressType"], "IPv4");
  EXPECT_EQ((*slice)["endpoints"].dump(),
            R"([{"addresses":["10.244.0.5"],"conditions":{"ready":true}},)"
            R"({"addresses":["10.244.0.6"],"conditions":{"ready":false,"serving":true,"terminating":true}}])");
  EXPECT_EQ((*slice)["ports"].size(), 2u);
  EXPECT_EQ(r.infrastructure.size(), 4u);
  EXPECT_TRUE(r.infrastructure_stale.empty());

  // The Services exist (the informer's view): their ports are kept even
  // where the hash would pick another, and their ClusterIP is the address.
  std::string with = yaml + R"(
---
apiVersion: v1
kind: Service
metadata:
  name: gantry-a
  namespace: infra
  labels: {gateway.networking.k8s.io/gateway-name: a, app.kubernetes.io/managed-by: gantry-gateway}
spec: {type: ClusterIP, clusterIP: 10.96.0.10, ports: [{name: http-80, port: 80, targetPort: 20007}]}
---
apiVersion: v1
kind: Service
metadata:
  name: gantry-old
  namespace: infra
  labels: {gateway.networking.k8s.io/gateway-name: a, app.kubernetes.io/managed-by: gantry-gateway}
spec: {ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata:
  name: gantry-theirs
  namespace: infra
  labels: {gateway.networking.k8s.io/gateway-name: theirs, app.kubernetes.io/managed-by: gantry-gateway}
spec: {ports: [{port: 80}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: theirs, namespace: infra}
spec: {gatewayClassName: other, listeners: [{name: http, port: 80, protocol: HTTP}]}
---
apiVersion: v1
kind: Service
metadata:
  name: gantry-gone
  namespace: infra
  labels: {gateway.networking.k8s.io/gateway-name: gone, app.kubernetes.io/managed-by: gantry-gateway}
spec: {ports: [{port: 80}]}
)";
  r = translate(load(with), o);
  EXPECT_EQ(address_of(r, "infra/a"), "10.96.0.10");
  EXPECT_EQ(gateway_conds(r, "infra/a"), "Accepted=True/Accepted Programmed=True/Programmed");
  svc_a = object(r, "Service", "gantry-a");
  ASSERT_TRUE(svc_a);
  EXPECT_EQ((*svc_a)["spec"]["ports"][0]["targetPort"], 20007);
  // Stale: a's unwanted Service and the gone Gateway's; not another controller's.
  std::vector<std::string> stale;
  for (const auto& k : r.infrastructure_stale) stale.push_back(k.kind + " " + k.namespace_ + "/" + k.name);
  EXPECT_EQ(stale, (std::vector<std::string>{"Service infra/gantry-gone", "Service infra/gantry-old"}));

  // LoadBalancer: the address is the load balancer's, none until it has one.
  o.gateway_api.service_type = "LoadBalancer";
  std::string lb = with;
  lb.replace(lb.find("spec: {type: ClusterIP, clusterIP: 10.96.0.10,"), 46,
             "spec: {type: LoadBalancer, clusterIP: 10.96.0.10,");
  r = translate(load(lb), o);
  EXPECT_EQ(address_of(r, "infra/a"), "");
  st = find(r, "Gateway", "infra/a");
  ASSERT_TRUE(st);
  EXPECT_EQ((*st)["conditions"][1]["message"],
            "waiting for a load balancer to give Service infra/gantry-a an address");
  lb += "status: {loadBalancer: {ingress: [{ip: 198.51.100.7}, {hostname: lb.example.com}]}}\n";
  // (the status belongs to the last document: put it on gantry-a instead)
  lb = with;
  lb.replace(lb.find("spec: {type: ClusterIP, clusterIP: 10.96.0.10, ports: [{name: http-80, port: 80, targetPort: 20007}]}"),
             std::string_view("spec: {type: ClusterIP, clusterIP: 10.96.0.10, ports: [{name: http-80, port: 80, targetPort: 20007}]}").size(),
             "spec: {type: LoadBalancer, clusterIP: 10.96.0.10, ports: [{name: http-80, port: 80, targetPort: 20007}]}\n"
             "status: {loadBalancer: {ingress: [{ip: 198.51.100.7}, {hostname: lb.example.com}]}}");
  r = translate(load(lb), o);
  st = find(r, "Gateway", "infra/a");
  ASSERT_TRUE(st);
  EXPECT_EQ((*st)["addresses"].dump(),
            R"([{"type":"IPAddress","value":"198.51.100.7"},{"type":"Hostname","value":"lb.example.com"}])");

  // Too few proxy ports: the younger Gateway's listener has none.
  o.gateway_api.service_port_max = 20001;
  r = translate(load(yaml), o);
  EXPECT_EQ(gateway_conds(r, "infra/a"), "Accepted=True/Accepted Programmed=False/AddressNotAssigned");
  st = find(r, "Gateway", "infra/b");
  ASSERT_TRUE(st);
  EXPECT_EQ((*st)["conditions"][1]["reason"], "AddressNotUsable");
  EXPECT_EQ((*st)["conditions"][1]["message"],
            "no free proxy port for listener port 8080 (--gateway-port-range 20000-20001)");
  EXPECT_EQ(object(r, "Service", "gantry-b"), nullptr);
}

// spec.infrastructure.parametersRef: gantry takes none.
TEST(GatewayApi, InfrastructureParametersRef) {
  std::string yaml(kTwoGateways);
  yaml.insert(yaml.find("  listeners: [{name: http, port: 80, protocol: HTTP}]\n"),
              "  infrastructure: {parametersRef: {group: invalid.io, kind: InvalidParameters, name: invalid}}\n");
  for (const char* bind : {"", "service"}) {
    SCOPED_TRACE(bind);
    TranslateOptions o;
    o.gateway_api.addresses = {"10.9.0.0/30"};
    o.gateway_api.bind_address = bind;
    o.gateway_api.proxy_service = "gantry-system/gantry";
    auto r = translate(load(yaml), o);
    const nlohmann::json* st = find(r, "Gateway", "infra/a");
    ASSERT_TRUE(st);
    EXPECT_EQ(conds((*st)["conditions"]), "Accepted=False/InvalidParameters Programmed=False/Invalid");
    EXPECT_EQ((*st)["conditions"][0]["message"],
              "spec.infrastructure.parametersRef: gantry takes no parameters (invalid.io/InvalidParameters "
              "invalid)");
    EXPECT_EQ(object(r, "Service", "gantry-a"), nullptr);
    EXPECT_EQ(gateway_conds(r, "infra/b").substr(0, 22), "Accepted=True/Accepted");
  }
}

TEST(GatewayApi, GatewayServiceName) {
  EXPECT_EQ(gateway_service_name("web"), "gantry-web");
  EXPECT_EQ(gateway_service_name("a.b.c"), "gantry-a-b-c");
  std::string long_name(80, 'x');
  std::string n = gateway_service_name(long_name);
  EXPECT_EQ(n.size(), 63u);
  EXPECT_EQ(n.substr(0, 53), "gantry-" + std::string(45, 'x') + "-");
  EXPECT_NE(gateway_service_name(long_name), gateway_service_name(long_name + "y"));
}

// A Gateway keeps the address it was given (its status) while it is free, so
// a client that read it keeps reaching the Gateway when others come and go.
TEST(GatewayApi, AddressesDoNotMove) {
  for (const char* had : {"10.9.0.1", "10.9.0.2"}) {
    SCOPED_TRACE(had);
    std::string yaml(kTwoGateways);
    std::string_view b_meta =
        "metadata: {name: b, namespace: infra, creationTimestamp: \"2026-01-02T00:00:00Z\"}\n";
    yaml.insert(yaml.find(b_meta) + b_meta.size(),
                std::string("status: {addresses: [{type: IPAddress, value: ") + had + "}]}\n");
    TranslateOptions o;
    o.gateway_api.addresses = {"10.9.0.0/30"};
    auto r = translate(load(yaml), o);
    EXPECT_EQ(address_of(r, "infra/b"), had);
    EXPECT_EQ(address_of(r, "infra/a"), std::string(had) == "10.9.0.1" ? "10.9.0.2" : "10.9.0.1");
  }
}

TEST(GatewayApi, StaticAddresses) {
  struct Case {
    const char* name;
    const char* addresses;  // spec.addresses of Gateway a
    const char* conditions;
    const char* status_address;
  } cases[] = {
      {"in the pool", "[{type: IPAddress, value: 10.9.0.2}]",
       "Accepted=True/Accepted Programmed=True/Programmed", "10.9.0.2"},
      {"a static address", "[{value: 10.8.0.1}]", "Accepted=True/Accepted Programmed=True/Programmed",
       "10.8.0.1"},
      {"not one of gantry's", "[{value: 192.0.2.1}, {value: 10.9.0.2}]",
       "Accepted=True/Accepted Programmed=False/AddressNotUsable", "10.9.0.2"},
      {"unsupported type", "[{type: test/fake-invalid-type, value: x}, {value: 10.9.0.2}]",
       "Accepted=False/UnsupportedAddress Programmed=False/Invalid", "10.9.0.2"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    std::string yaml(kTwoGateways);
    yaml.replace(yaml.find("  listeners: [{name: http, port: 80, protocol: HTTP}]\n"), 0,
                 std::string("  addresses: ") + c.addresses + "\n");
    TranslateOptions o;
    o.gateway_api.addresses = {"10.9.0.0/30"};
    o.gateway_api.static_addresses = {"10.8.0.1"};
    auto r = translate(load(yaml), o);
    EXPECT_EQ(gateway_conds(r, "infra/a"), c.conditions);
    EXPECT_EQ(address_of(r, "infra/a"), c.status_address);
    // The other Gateway never gets an address claimed in spec.addresses.
    EXPECT_EQ(address_of(r, "infra/b"), std::string(c.status_address) == "10.9.0.2" ? "10.9.0.1" : address_of(r, "infra/b"));
    bool served = std::string(c.conditions).find("Programmed=True") != std::string::npos;
    EXPECT_EQ(dump(r.snapshot).find(std::string("listener ") + c.status_address + ":80") != std::string::npos,
              served);
  }
}

TEST(GatewayApi, GatewaysSharingAnAddressConflictOnProtocol) {
  std::string yaml(kTwoGateways);
  std::string_view b_listeners =
      "  listeners: [{name: http, port: 80, protocol: HTTP}, {name: alt, port: 8080, protocol: HTTP}]";
  yaml.replace(yaml.find(b_listeners), b_listeners.size(),
               "  listeners: [{name: alt, port: 80, protocol: HTTPS, tls: {certificateRefs: [{name: c}]}}]");
  TranslateOptions o;
  o.gateway_api.addresses = {"10.9.0.7"};
  auto r = translate(load(yaml), o);
  // b's HTTPS listener on 10.9.0.7:80 conflicts with the older a's HTTP one.
  const nlohmann::json* st = find(r, "Gateway", "infra/b");
  ASSERT_TRUE(st);
  EXPECT_EQ((*st)["listeners"][0]["conditions"][3]["reason"], "ProtocolConflict");
  EXPECT_EQ((*st)["listeners"][0]["conditions"][3]["message"],
            "Gateway infra/a serves HTTP on 10.9.0.7:80");
  st = find(r, "Gateway", "infra/a");
  ASSERT_TRUE(st);
  EXPECT_EQ(conds((*st)["listeners"][0]["conditions"]),
            "Accepted=True/Accepted Programmed=True/Programmed ResolvedRefs=True/ResolvedRefs "
            "Conflicted=False/NoConflicts");
}

// HTTPRoute retry (experimental channel): attempts are retries after the
// first try; codes, plus connection errors (connect failure, reset, a per-try
// timeout); backoff is the least wait (base = 2 x backoff: a retry waits in
// [cap/2, cap]). Unset attempts: one retry.
TEST(GatewayApi, HttpRouteRetry) {
  struct Case {
    const char* retry;
    uint32_t attempts;
    std::vector<int> statuses;
    int64_t backoff_base_ms, backoff_max_ms;
    const char* error;
  } cases[] = {
      {"{codes: [500], attempts: 3}", 3, {500}, 25, 250, ""},
      {"{codes: [504, 500, 502], attempts: 2, backoff: 100ms}", 2, {500, 502, 504}, 200, 250, ""},
      {"{backoff: 1s}", 1, {}, 2000, 2000, ""},
      {"{codes: [500], attempts: 101}", 0, {}, 0, 0, "spec.rules[0].retry.attempts"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.retry);
    auto r = run(std::string(R"(
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: retried, namespace: infra}
spec:
  parentRefs: [{name: gw, sectionName: http}]
  rules: [{backendRefs: [{name: web, port: 8080}], retry: )") + c.retry + "}]\n");
    const nlohmann::json* st = find(r, "HTTPRoute", "infra/retried");
    ASSERT_TRUE(st);
    std::string status = (*st).dump();
    if (*c.error) {
      EXPECT_NE(status.find(c.error), std::string::npos) << status;
      continue;
    }
    ASSERT_EQ(r.snapshot.routes.size(), 1u) << status;
    ASSERT_TRUE(r.snapshot.routes[0].rules[0].policy.retry);
    const auto& retry = *r.snapshot.routes[0].rules[0].policy.retry;
    EXPECT_EQ(retry.attempts, c.attempts);
    EXPECT_TRUE(retry.on_connect_failure);
    EXPECT_TRUE(retry.on_reset);
    EXPECT_EQ(retry.on_statuses, c.statuses);
    EXPECT_EQ(retry.backoff_base.count(), c.backoff_base_ms);
    EXPECT_EQ(retry.backoff_max.count(), c.backoff_max_ms);
  }
}

// spec.addresses entries without a value (GatewayAddressEmpty) ask for any
// address of their type from the pool.
TEST(GatewayApi, AddressesWithoutValue) {
  struct Case {
    const char* addresses;  // spec.addresses of Gateway a
    std::vector<std::string> pool;
    const char* conditions;
    std::set<std::string> want;  // the address it may get
  } cases[] = {
      {"[{type: IPAddress}]", {"10.9.0.0/30"}, "Accepted=True/Accepted Programmed=True/Programmed",
       {"10.9.0.1", "10.9.0.2"}},
      {"[{type: Hostname}]", {"10.9.0.1", "gw.example.com"},
       "Accepted=True/Accepted Programmed=True/Programmed", {"gw.example.com"}},
      {"[{type: IPAddress}]", {"gw.example.com"}, "Accepted=True/Accepted Programmed=False/AddressNotUsable",
       {""}},
      {"[{type: example.com/custom}]", {"10.9.0.0/30"},
       "Accepted=False/UnsupportedAddress Programmed=False/Invalid", {"10.9.0.1", "10.9.0.2"}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.addresses);
    std::string yaml(kTwoGateways);
    yaml.replace(yaml.find("  listeners: [{name: http, port: 80, protocol: HTTP}]\n"), 0,
                 std::string("  addresses: ") + c.addresses + "\n");
    TranslateOptions o;
    o.gateway_api.addresses = c.pool;
    auto r = translate(load(yaml), o);
    EXPECT_EQ(gateway_conds(r, "infra/a"), c.conditions);
    EXPECT_TRUE(c.want.count(address_of(r, "infra/a"))) << address_of(r, "infra/a");
  }
}

// Standalone mode: a Gateway's spec.addresses IP is served as given (there is
// no pool to check it against); a hostname still must be in a pool.
TEST(GatewayApi, StandaloneSpecAddresses) {
  std::string yaml(kTwoGateways);
  yaml.replace(yaml.find("  listeners: [{name: http, port: 80, protocol: HTTP}]\n"), 0,
               "  addresses: [{value: 127.0.0.14}]\n");
  TranslateOptions o;
  o.gateway_api.any_spec_address = true;
  auto r = translate(load(yaml), o);
  EXPECT_EQ(gateway_conds(r, "infra/a"), "Accepted=True/Accepted Programmed=True/Programmed");
  EXPECT_EQ(address_of(r, "infra/a"), "127.0.0.14");
  EXPECT_NE(dump(r.snapshot).find("listener 127.0.0.14:80 http"), std::string::npos);
  // b has neither spec.addresses nor a pool: no address.
  EXPECT_EQ(gateway_conds(r, "infra/b"), "Accepted=True/Accepted Programmed=False/AddressNotAssigned");
  o.gateway_api.any_spec_address = false;
  r = translate(load(yaml), o);
  EXPECT_EQ(gateway_conds(r, "infra/a"), "Accepted=True/Accepted Programmed=False/AddressNotUsable");
}

// ListenerSets: more listeners for a Gateway that allows them, after its own
// in precedence order (the Gateway's, then the oldest set first); a set's
// listener that conflicts with an earlier one is rejected, the set stays
// accepted while one of its listeners is valid; routes attach to a set's
// listeners only through a parentRef of kind ListenerSet.
constexpr std::string_view kListenerSets = R"(
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: gantry}
spec: {controllerName: gantry.dev/gateway-controller}
---
apiVersion: v1
kind: Namespace
metadata: {name: apps}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: infra}
spec: {ports: [{name: http, port: 8080}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: g, namespace: infra, generation: 2}
spec:
  gatewayClassName: gantry
  allowedListeners: {namespaces: {from: Same}}
  listeners: [{name: main, port: 80, protocol: HTTP, hostname: a.com}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: ListenerSet
metadata: {name: s1, namespace: infra, generation: 4, creationTimestamp: "2026-01-01T00:00:00Z"}
spec:
  parentRef: {name: g}
  listeners:
  - {name: main, port: 80, protocol: HTTP, hostname: b.com}
  - {name: dup, port: 80, protocol: HTTP, hostname: a.com}
  - {name: tcp, port: 80, protocol: TCP}
---
apiVersion: gateway.networking.k8s.io/v1
kind: ListenerSet
metadata: {name: s2, namespace: infra, creationTimestamp: "2026-01-02T00:00:00Z"}
spec:
  parentRef: {name: g}
  listeners: [{name: late, port: 80, protocol: HTTP, hostname: b.com}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: ListenerSet
metadata: {name: s3, namespace: apps}
spec:
  parentRef: {name: g, namespace: infra}
  listeners: [{name: other, port: 80, protocol: HTTP, hostname: c.com}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: via-set, namespace: infra}
spec:
  parentRefs: [{kind: ListenerSet, name: s1}]
  rules: [{backendRefs: [{name: web, port: 8080}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: via-gateway, namespace: infra}
spec:
  parentRefs: [{name: g}]
  rules: [{backendRefs: [{name: web, port: 8080}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: via-disallowed, namespace: apps}
spec:
  parentRefs: [{kind: ListenerSet, name: s3}]
  rules: [{backendRefs: [{name: web, namespace: infra, port: 8080}]}]
)";

TEST(GatewayApi, ListenerSets) {
  TranslateOptions o;
  o.gateway_api.addresses = {"10.9.0.7"};
  auto r = translate(load(kListenerSets), o);
  EXPECT_EQ(dump(r.snapshot),
            "route infra/via-gateway (HTTPRoute) hosts=a.com on=10.9.0.7:80/a.com\n"
            " rule0 -> infra/web:8080\n"
            "route infra/via-set (HTTPRoute) hosts=b.com on=10.9.0.7:80/b.com\n"
            " rule0 -> infra/web:8080\n"
            "cluster infra/web:8080\nlistener 10.9.0.7:80 http a.com b.com\n");

  const nlohmann::json* gw = find(r, "Gateway", "infra/g");
  ASSERT_TRUE(gw);
  EXPECT_EQ((*gw)["attachedListenerSets"], 1);
  EXPECT_EQ((*gw)["listeners"].size(), 1u);  // a set's listeners are in the set's status
  EXPECT_EQ((*gw)["listeners"][0]["attachedRoutes"], 1);

  struct ListenerCase {
    const char* set;
    size_t index;
    const char* name;
    int attached;
    const char* conditions;
  } listeners[] = {
      {"infra/s1", 0, "main", 1,
       "Accepted=True/Accepted Programmed=True/Programmed ResolvedRefs=True/ResolvedRefs "
       "Conflicted=False/NoConflicts"},
      {"infra/s1", 1, "dup", 0,
       "Accepted=False/HostnameConflict Programmed=False/HostnameConflict "
       "ResolvedRefs=True/ResolvedRefs Conflicted=True/HostnameConflict"},
      {"infra/s1", 2, "tcp", 0,
       "Accepted=False/ProtocolConflict Programmed=False/ProtocolConflict "
       "ResolvedRefs=True/ResolvedRefs Conflicted=True/ProtocolConflict"},
      {"infra/s2", 0, "late", 0,
       "Accepted=False/HostnameConflict Programmed=False/HostnameConflict "
       "ResolvedRefs=True/ResolvedRefs Conflicted=True/HostnameConflict"},
  };
  for (const auto& c : listeners) {
    SCOPED_TRACE(std::string(c.set) + " " + c.name);
    const nlohmann::json* st = find(r, "ListenerSet", c.set);
    ASSERT_TRUE(st);
    const auto& l = (*st)["listeners"][c.index];
    EXPECT_EQ(l["name"], c.name);
    EXPECT_EQ(l["attachedRoutes"], c.attached);
    EXPECT_EQ(conds(l["conditions"]), c.conditions);
  }
  struct SetCase {
    const char* set;
    const char* conditions;
    int64_t generation;
  } sets[] = {
      {"infra/s1", "Accepted=True/Accepted Programmed=True/Programmed", 4},
      {"infra/s2", "Accepted=False/ListenersNotValid Programmed=False/ListenersNotValid", 0},
      {"apps/s3", "Accepted=False/NotAllowed Programmed=False/NotAllowed", 0},
  };
  for (const auto& c : sets) {
    SCOPED_TRACE(c.set);
    const nlohmann::json* st = find(r, "ListenerSet", c.set);
    ASSERT_TRUE(st);
    EXPECT_EQ(conds((*st)["conditions"]), c.conditions);
    EXPECT_EQ((*st)["conditions"][0]["observedGeneration"], c.generation);
  }
  const nlohmann::json* st = find(r, "ListenerSet", "apps/s3");
  ASSERT_TRUE(st);
  EXPECT_TRUE((*st)["listeners"].empty());
  st = find(r, "HTTPRoute", "apps/via-disallowed");
  ASSERT_TRUE(st);
  EXPECT_EQ(conds((*st)["parents"][0]["conditions"]).substr(0, 36), "Accepted=False/NotAllowedByListeners");
  EXPECT_EQ((*st)["parents"][0]["parentRef"]["kind"], "ListenerSet");

  // A set in another namespace is allowed by from: All.
  std::string yaml(kListenerSets);
  yaml.replace(yaml.find("from: Same"), 10, "from: All");
  r = translate(load(yaml), o);
  st = find(r, "ListenerSet", "apps/s3");
  ASSERT_TRUE(st);
  EXPECT_EQ(conds((*st)["conditions"]), "Accepted=True/Accepted Programmed=True/Programmed");
  gw = find(r, "Gateway", "infra/g");
  ASSERT_TRUE(gw);
  EXPECT_EQ((*gw)["attachedListenerSets"], 2);
  // ... and no Gateway allows sets by default.
  yaml = std::string(kListenerSets);
  yaml.replace(yaml.find("  allowedListeners: {namespaces: {from: Same}}\n"), 47, "");
  r = translate(load(yaml), o);
  st = find(r, "ListenerSet", "infra/s1");
  ASSERT_TRUE(st);
  EXPECT_EQ(conds((*st)["conditions"]), "Accepted=False/NotAllowed Programmed=False/NotAllowed");
  EXPECT_EQ(dump(r.snapshot),
            "route infra/via-gateway (HTTPRoute) hosts=a.com on=10.9.0.7:80/a.com\n"
            " rule0 -> infra/web:8080\n"
            "cluster infra/web:8080\nlistener 10.9.0.7:80 http a.com\n");
}

// GRPCRoutes (GATEWAY-GRPC): method matches become path matches on
// /<service>/<method>, headers and filters are the HTTPRoute ones, every
// backend is h2c, statuses are written as for HTTPRoutes.
TEST(GatewayApi, GrpcRouteTranslation) {
  const std::string grpc_service =
      "---\napiVersion: v1\nkind: Service\nmetadata: {name: grpc, namespace: apps}\n"
      "spec: {ports: [{name: grpc, port: 9000, appProtocol: kubernetes.io/h2c}]}\n";
  struct Case {
    const char* name;
    const char* rules;   // spec.rules of GRPCRoute g in namespace apps
    const char* status;  // its parent's conditions
    std::string snapshot;
  } cases[] = {
      {"exact service and method: the exact path",
       "[{matches: [{method: {service: pkg.Echo, method: Get}}], backendRefs: [{name: web, port: 8080}]}]",
       "Accepted=True/Accepted ResolvedRefs=True/ResolvedRefs",
       std::string("route apps/g (GRPCRoute) on=192.0.2.1:80\n rule0 Exact:/pkg.Echo/Get -> "
                   "apps/web:8080/h2c\ncluster apps/web:8080/h2c\n") + kListeners},
      {"exact service only: any method of it",
       "[{matches: [{method: {service: pkg.Echo}}], backendRefs: [{name: web, port: 8080}]}]",
       "Accepted=True/Accepted ResolvedRefs=True/ResolvedRefs",
       std::string("route apps/g (GRPCRoute) on=192.0.2.1:80\n rule0 RegularExpression:/pkg\\.Echo/[^/]+ -> "
                   "apps/web:8080/h2c\ncluster apps/web:8080/h2c\n") + kListeners},
      {"exact method only: that method of any service",
       "[{matches: [{method: {method: Get}}], backendRefs: [{name: web, port: 8080}]}]",
       "Accepted=True/Accepted ResolvedRefs=True/ResolvedRefs",
       std::string("route apps/g (GRPCRoute) on=192.0.2.1:80\n rule0 RegularExpression:/[^/]+/Get -> "
                   "apps/web:8080/h2c\ncluster apps/web:8080/h2c\n") + kListeners},
      {"regular expressions",
       "[{matches: [{method: {type: RegularExpression, service: 'pkg\\..*', method: 'Get|List'}}], "
       "backendRefs: [{name: web, port: 8080}]}]",
       "Accepted=True/Accepted ResolvedRefs=True/ResolvedRefs",
       std::string("route apps/g (GRPCRoute) on=192.0.2.1:80\n rule0 RegularExpression:/(pkg\\..*)/(Get|List) -> "
                   "apps/web:8080/h2c\ncluster apps/web:8080/h2c\n") + kListeners},
      {"a regular expression that does not compile",
       "[{matches: [{method: {type: RegularExpression, service: '('}}], backendRefs: [{name: web, port: 8080}]}]",
       "Accepted=False/UnsupportedValue ResolvedRefs=True/ResolvedRefs", kListeners},
      {"headers, and a second match (OR)",
       "[{matches: [{headers: [{name: version, value: two}, {name: color, value: orange}]}, "
       "{method: {service: pkg.Echo, method: Get}}], backendRefs: [{name: web, port: 8080}]}]",
       "Accepted=True/Accepted ResolvedRefs=True/ResolvedRefs",
       std::string("route apps/g (GRPCRoute) on=192.0.2.1:80\n rule0 PathPrefix:/ h:version=two h:color=orange "
                   "Exact:/pkg.Echo/Get -> apps/web:8080/h2c\ncluster apps/web:8080/h2c\n") + kListeners},
      {"weights; a port declared h2c keeps its cluster",
       "[{backendRefs: [{name: web, port: 8080, weight: 70}, {name: grpc, port: 9000, weight: 30}]}]",
       "Accepted=True/Accepted ResolvedRefs=True/ResolvedRefs",
       std::string("route apps/g (GRPCRoute) on=192.0.2.1:80\n rule0 -> apps/web:8080/h2c*70 apps/grpc:9000*30\n"
                   "cluster apps/grpc:9000\ncluster apps/web:8080/h2c\n") + kListeners},
      {"header modifiers",
       "[{filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-a, value: '1'}]}}, "
       "{type: ResponseHeaderModifier, responseHeaderModifier: {remove: [x-b]}}], "
       "backendRefs: [{name: web, port: 8080}]}]",
       "Accepted=True/Accepted ResolvedRefs=True/ResolvedRefs",
       std::string("route apps/g (GRPCRoute) on=192.0.2.1:80\n rule0 -> apps/web:8080/h2c\n"
                   "cluster apps/web:8080/h2c\n") + kListeners},
      {"an unsupported filter is reported",
       "[{filters: [{type: ExtensionRef, extensionRef: {group: x, kind: y, name: z}}], "
       "backendRefs: [{name: web, port: 8080}]}]",
       "Accepted=False/UnsupportedValue ResolvedRefs=True/ResolvedRefs", kListeners},
      {"a missing Service",
       "[{backendRefs: [{name: nope, port: 8080}]}]",
       "Accepted=True/Accepted ResolvedRefs=False/BackendNotFound",
       std::string("route apps/g (GRPCRoute) on=192.0.2.1:80\n rule0 -> !\"Service apps/nope not found\"\n") +
           kListeners},
      {"cross-namespace backend without a grant",
       "[{backendRefs: [{name: web, namespace: infra, port: 8080}]}]",
       "Accepted=True/Accepted ResolvedRefs=False/RefNotPermitted",
       std::string("route apps/g (GRPCRoute) on=192.0.2.1:80\n rule0 -> !\"Service infra/web is in "
                   "another namespace and no ReferenceGrant allows it\"\n") + kListeners},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto r = run(grpc_service + "---\napiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\n"
                 "metadata: {name: g, namespace: apps}\nspec:\n"
                 "  parentRefs: [{name: gw, namespace: infra, sectionName: http}]\n  rules: " +
                 c.rules + "\n");
    const nlohmann::json* st = find(r, "GRPCRoute", "apps/g");
    ASSERT_TRUE(st);
    ASSERT_EQ((*st)["parents"].size(), 1u);
    EXPECT_EQ((*st)["parents"][0]["controllerName"], "gantry.dev/gateway-controller");
    EXPECT_EQ(conds((*st)["parents"][0]["conditions"]), c.status);
    EXPECT_FALSE(find(r, "HTTPRoute", "apps/g"));
    EXPECT_EQ(dump(r.snapshot), c.snapshot);
    for (const auto& cl : r.snapshot.clusters)
      EXPECT_EQ(cl.protocol, snapshot::ClusterProtocol::kH2c) << cl.name;
    // Every GRPCRoute rule serves gRPC-Web browsers too (as Envoy Gateway does).
    for (const auto& route : r.snapshot.routes)
      for (const auto& rule : route.rules) EXPECT_TRUE(rule.filters.grpc_web.has_value());
  }
}

// The spec ranks method matches by the characters of the service, then of the
// method: an exact pair is an exact path (first of all); the regular
// expressions carry that rank as their priority (routing.md, 2b).
TEST(GatewayApi, GrpcMethodPrecedence) {
  auto r = run(
      "apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {name: g, namespace: infra}\n"
      "spec:\n  parentRefs: [{name: gw, sectionName: http}]\n  rules:\n"
      "  - {matches: [{method: {method: LongMethodName}}], backendRefs: [{name: web, port: 8080}]}\n"
      "  - {matches: [{method: {service: a.B}}], backendRefs: [{name: web, port: 8080}]}\n"
      "  - {matches: [{method: {service: a.B, method: C}}], backendRefs: [{name: web, port: 8080}]}\n");
  ASSERT_EQ(r.snapshot.routes.size(), 1u);
  const auto& rules = r.snapshot.routes[0].rules;
  ASSERT_EQ(rules.size(), 3u);
  EXPECT_EQ(rules[0].matches[0].path.priority, 14);
  EXPECT_EQ(rules[1].matches[0].path.priority, 3 * 2048);
  EXPECT_GT(rules[1].matches[0].path.priority, rules[0].matches[0].path.priority);
  EXPECT_EQ(rules[2].matches[0].path.type, snapshot::PathMatchType::kExact);
}

TEST(GatewayApi, GrpcRouteGrantAndKinds) {
  // A ReferenceGrant from GRPCRoute (not from HTTPRoute) lets it reach infra/web.
  const char* route =
      "apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {name: g, namespace: apps}\n"
      "spec:\n  parentRefs: [{name: gw, namespace: infra, sectionName: http}]\n"
      "  rules: [{backendRefs: [{name: web, namespace: infra, port: 8080}]}]\n";
  for (const char* from : {"HTTPRoute", "GRPCRoute"}) {
    SCOPED_TRACE(from);
    auto r = run(std::string(route) +
                 "---\napiVersion: gateway.networking.k8s.io/v1\nkind: ReferenceGrant\n"
                 "metadata: {name: grant, namespace: infra}\nspec:\n"
                 "  from: [{group: gateway.networking.k8s.io, kind: " + from + ", namespace: apps}]\n"
                 "  to: [{group: '', kind: Service}]\n");
    const nlohmann::json* st = find(r, "GRPCRoute", "apps/g");
    ASSERT_TRUE(st);
    EXPECT_EQ(conds((*st)["parents"][0]["conditions"]),
              std::string(from) == "GRPCRoute" ? "Accepted=True/Accepted ResolvedRefs=True/ResolvedRefs"
                                               : "Accepted=True/Accepted ResolvedRefs=False/RefNotPermitted");
  }
  // A listener whose allowedRoutes.kinds lists HTTPRoute only does not take it.
  auto r = run(
      "apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\nmetadata: {name: g, namespace: infra}\n"
      "spec:\n  parentRefs: [{name: gw, sectionName: kinds}]\n"
      "  rules: [{backendRefs: [{name: web, port: 8080}]}]\n");
  const nlohmann::json* st = find(r, "GRPCRoute", "infra/g");
  ASSERT_TRUE(st);
  EXPECT_EQ(conds((*st)["parents"][0]["conditions"]),
            "Accepted=False/NotAllowedByListeners ResolvedRefs=True/ResolvedRefs");
}

// GRPCRoute spec: a listener takes exactly one of an HTTPRoute and a GRPCRoute
// whose hostnames intersect, the older (then the first by ns/name); the other
// is not accepted there. Routes of one kind never conflict this way.
TEST(GatewayApi, GrpcRouteAndHttpRouteConflict) {
  auto route = [](const char* kind, const char* name, const char* created, const char* hosts) {
    return std::string("---\napiVersion: gateway.networking.k8s.io/v1\nkind: ") + kind +
           "\nmetadata: {name: " + name + ", namespace: apps, creationTimestamp: \"" + created +
           "\"}\nspec:\n  parentRefs: [{name: gw, namespace: infra, sectionName: http}]\n"
           "  hostnames: " + hosts + "\n  rules: [{backendRefs: [{name: web, port: 8080}]}]\n";
  };
  struct Case {
    const char* name;
    std::string objects;
    const char* want;  // "kind/name=reason ..." for every route, and the listener's attachedRoutes
  } cases[] = {
      {"older HTTPRoute wins the shared hostname",
       route("HTTPRoute", "h", "2026-01-01T00:00:00Z", "[a.com]") +
           route("GRPCRoute", "g", "2026-01-02T00:00:00Z", "[a.com]"),
       "GRPCRoute/g=HostnameConflict HTTPRoute/h=Accepted attached=1"},
      {"older GRPCRoute wins",
       route("HTTPRoute", "h", "2026-01-03T00:00:00Z", "['*.a.com']") +
           route("GRPCRoute", "g", "2026-01-02T00:00:00Z", "[x.a.com]"),
       "GRPCRoute/g=Accepted HTTPRoute/h=HostnameConflict attached=1"},
      {"same age: first by namespace/name",
       route("HTTPRoute", "b", "2026-01-01T00:00:00Z", "[a.com]") +
           route("GRPCRoute", "a", "2026-01-01T00:00:00Z", "[a.com]"),
       "GRPCRoute/a=Accepted HTTPRoute/b=HostnameConflict attached=1"},
      {"different hostnames share the listener",
       route("HTTPRoute", "h", "2026-01-01T00:00:00Z", "[a.com]") +
           route("GRPCRoute", "g", "2026-01-02T00:00:00Z", "[b.com]"),
       "GRPCRoute/g=Accepted HTTPRoute/h=Accepted attached=2"},
      {"a hostless route meets every hostname",
       route("GRPCRoute", "g", "2026-01-01T00:00:00Z", "[]") +
           route("HTTPRoute", "h", "2026-01-02T00:00:00Z", "[b.com]"),
       "GRPCRoute/g=Accepted HTTPRoute/h=HostnameConflict attached=1"},
      {"two routes of one kind do not conflict",
       route("GRPCRoute", "g", "2026-01-01T00:00:00Z", "[a.com]") +
           route("GRPCRoute", "g2", "2026-01-02T00:00:00Z", "[a.com]"),
       "GRPCRoute/g=Accepted GRPCRoute/g2=Accepted attached=2"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto r = run(c.objects);
    std::string got;
    for (const auto& s : r.object_statuses) {
      if (s.kind != "HTTPRoute" && s.kind != "GRPCRoute") continue;
      got.append(s.kind).append("/").append(s.name).append("=");
      got.append(s.status["parents"][0]["conditions"][0]["reason"].get<std::string>()).append(" ");
    }
    const nlohmann::json* gw = find(r, "Gateway", "infra/gw");
    ASSERT_TRUE(gw);
    got.append("attached=").append(std::to_string((*gw)["listeners"][0]["attachedRoutes"].get<int>()));
    EXPECT_EQ(got, c.want);
    // The loser is not served through that listener.
    for (const auto& s : r.object_statuses)
      if ((s.kind == "HTTPRoute" || s.kind == "GRPCRoute") &&
          s.status["parents"][0]["conditions"][0]["reason"] == "HostnameConflict") {
        EXPECT_EQ(s.status["parents"][0]["conditions"][0]["status"], "False");
        for (const auto& sr : r.snapshot.routes) EXPECT_NE(sr.name, s.name);
      }
  }
}

TEST(GatewayApi, GrpcRouteDecodeErrors) {
  struct Case {
    const char* method;
    const char* error;
  } cases[] = {
      {"{}", "one or both of service and method must be set"},
      {"{service: '', method: ''}", "one or both of service and method must be set"},
      {"{service: a/b, method: Get}", "an Exact service or method must not contain '/'"},
      {"{type: Prefix, service: a}", "unknown value"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.method);
    ParsedFile f = parse_manifest(
        "g.yaml", std::string("apiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\n"
                              "metadata: {name: g, namespace: apps}\nspec:\n"
                              "  rules: [{matches: [{method: ") + c.method + "}]}]\n");
    ASSERT_EQ(f.errors.size(), 1u);
    EXPECT_NE(f.errors[0].str().find("spec.rules[0].matches[0].method"), std::string::npos)
        << f.errors[0].str();
    EXPECT_NE(f.errors[0].str().find(c.error), std::string::npos) << f.errors[0].str();
    EXPECT_TRUE(f.objects.empty());
  }
}

}  // namespace
}  // namespace gantry::controller
