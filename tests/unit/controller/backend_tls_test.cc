// Table-driven tests of BackendTLSPolicy and Gateway backend client
// certificates (backend_tls.h): manifests in, cluster TLS and policy / Gateway
// status out, through translate.
#include "controller/core/backend_tls.h"

#include <gtest/gtest.h>

#include "controller/core/translate.h"
#include "proxy/snapshot/validate.h"
#include "tests/unit/controller/test_util.h"

namespace gantry::controller {
namespace {

using testing::load;

constexpr std::string_view kCert = R"(-----BEGIN CERTIFICATE-----
    MIIBjDCCATOgAwIBAgIUWY1V8aRAWiIxw5uHInwOanEbA50wCgYIKoZIzj0EAwIw
    GzEZMBcGA1UEAwwQc2hvcC5leGFtcGxlLmNvbTAgFw0yNjExMjUxMjI4NDRaGA8y
    MTI2MTEwMTEyMjg0NFowGzEZMBcGA1UEAwwQc2hvcC5leGFtcGxlLmNvbTBZMBMG
    ByqGSM49AgEGCCqGSM49AwEHA0IABEhehFJ3f+Ba1ZeWpMGefvcpC5v+rpp9166h
    /H2ayh9pSVBlb6hvTXLP7jqQFmE42tHTLYoXw1uJvbIUr7uti72jUzBRMB0GA1Ud
    DgQWBBTMpLktQLZQkLCHMmMjVYE0N/ibbTAfBgNVHSMEGDAWgBTMpLktQLZQkLCH
    MmMjVYE0N/ibbTAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0cAMEQCIDIf
    48nCc6e1ZxSxoG4ALheqC5Vl5+jk6D3uAP5uDKjHAiAN2YeBHenngM+FnoLQgLZA
    EJAo9AYYVY5rVF+Q5Txgzw==
    -----END CERTIFICATE-----
)";
constexpr std::string_view kKey = R"(-----BEGIN PRIVATE KEY-----
    MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgph6APFCPvvCCj8Zw
    1ajVZ7H6fzb9Wqucwtb63LhdZlShRANCAARIXoRSd3/gWtWXlqTBnn73KQub/q6a
    fdeuofx9msofaUlQZW+ob01yz+46kBZhONrR0y2KF8Nbib2yFK+7rYu9
    -----END PRIVATE KEY-----
)";

// Gateways gw (no client certificate) and mtls (client certificate client),
// HTTPRoute r on gw to Service tls (ports https 443, other 8443) and route m
// on mtls to the same port; ConfigMaps ca (a CA) and empty (no ca.crt).
std::string base() {
  std::string s = R"(
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: gantry}
spec: {controllerName: gantry.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: ns}
spec:
  gatewayClassName: gantry
  listeners: [{name: http, port: 80, protocol: HTTP}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: mtls, namespace: ns, generation: 4}
spec:
  gatewayClassName: gantry
  listeners: [{name: http, port: 81, protocol: HTTP}]
  tls: {backend: {clientCertificateRef: {name: client}}}
---
apiVersion: v1
kind: Service
metadata: {name: tls, namespace: ns}
spec: {ports: [{name: https, port: 443}, {name: other, port: 8443}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: tls-1, namespace: ns, labels: {kubernetes.io/service-name: tls}}
addressType: IPv4
ports: [{name: https, port: 8443}, {name: other, port: 9443}]
endpoints: [{addresses: [10.0.0.1]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: ns}
spec:
  parentRefs: [{name: gw}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /a}}]
    backendRefs: [{name: tls, port: 443}]
  - matches: [{path: {type: PathPrefix, value: /b}}]
    backendRefs: [{name: tls, port: 8443}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: m, namespace: ns}
spec:
  parentRefs: [{name: mtls}]
  rules: [{backendRefs: [{name: tls, port: 443}]}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: empty, namespace: ns}
data: {other: x}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: ca, namespace: ns}
data:
  ca.crt: |
    )";
  s += kCert;
  s += R"(---
apiVersion: v1
kind: Secret
metadata: {name: client, namespace: ns}
type: kubernetes.io/tls
stringData:
  tls.crt: |
    )";
  s += kCert;
  s += "  tls.key: |\n    ";
  s += kKey;
  return s;
}

std::string policy(std::string_view name, std::string_view spec, int64_t created = 100) {
  return "---\napiVersion: gateway.networking.k8s.io/v1\nkind: BackendTLSPolicy\nmetadata: {name: " +
         std::string(name) + ", namespace: ns, generation: 2, creationTimestamp: \"" +
         (created == 100 ? "2026-01-01T00:01:40Z" : "2026-01-01T00:00:00Z") + "\"}\nspec:\n" +
         std::string(spec) + "\n";
}

TranslateResult run(const std::string& extra) {
  Cache c = load(base() + extra);
  TranslateOptions o;
  o.gateway_api.addresses = {"192.0.2.0/30"};
  return translate(c, o);
}

const nlohmann::json* find(const TranslateResult& r, const std::string& kind, const std::string& key) {
  for (const auto& s : r.object_statuses)
    if (s.kind == kind && s.key() == key) return &s.status;
  return nullptr;
}

std::string conds(const nlohmann::json& list) {
  std::string out;
  for (const auto& c : list) {
    if (!out.empty()) out += ' ';
    out.append(c["type"].get<std::string>()).append("=").append(c["status"].get<std::string>());
    out.append("/").append(c["reason"].get<std::string>());
  }
  return out;
}

// "gw1,gw2: Accepted=True/Accepted ResolvedRefs=..." of a policy (its ancestors share conditions).
std::string policy_status(const TranslateResult& r, const std::string& name) {
  const nlohmann::json* st = find(r, "BackendTLSPolicy", "ns/" + name);
  if (st == nullptr) return "none";
  std::string out, c;
  for (const auto& a : (*st)["ancestors"]) {
    if (!out.empty()) out += ',';
    out += a["ancestorRef"]["name"].get<std::string>();
    EXPECT_EQ(a["ancestorRef"]["kind"], "Gateway");
    EXPECT_EQ(a["controllerName"], "gantry.dev/gateway-controller");
    c = conds(a["conditions"]);
    EXPECT_EQ(a["conditions"][0]["observedGeneration"], 2);
  }
  return out + ": " + c;
}

// "name tls=sni ca|system sans=a,b client" per cluster, "name plain" without TLS.
std::string clusters(const TranslateResult& r) {
  std::string out;
  for (const auto& c : r.snapshot.clusters) {
    out += c.name;
    out += c.endpoints.empty() ? " no-endpoints" : "";
    if (!c.tls) {
      out += " plain\n";
      continue;
    }
    out.append(" tls=").append(c.tls->server_name);
    if (!c.tls->ca_pem.empty()) out += " ca";
    if (c.tls->system_ca) out += " system";
    if (!c.tls->subject_alt_names.empty()) {
      out += " sans=";
      for (size_t i = 0; i < c.tls->subject_alt_names.size(); ++i)
        out.append(i ? "," : "").append(c.tls->subject_alt_names[i]);
    }
    if (!c.tls->client_cert_pem.empty() && !c.tls->client_key_pem.empty()) out += " client";
    out += '\n';
  }
  return out;
}

constexpr const char* kCaRef = "  validation: {caCertificateRefs: [{group: \"\", kind: ConfigMap, name: ca}], hostname: a.example.com}";

TEST(BackendTls, Policies) {
  struct Case {
    const char* name;
    std::string policies;
    std::string want_clusters;
    std::map<std::string, std::string> want_status;  // policy -> policy_status()
  } cases[] = {
      {"no policy: plain",
       "",
       "ns/tls:443 plain\nns/tls:8443 plain\n",
       {}},
      {"whole Service, CA from a ConfigMap; the mTLS Gateway's routes get their own cluster",
       policy("p", std::string("  targetRefs: [{group: \"\", kind: Service, name: tls}]\n") + kCaRef),
       "ns/tls:443 tls=a.example.com ca\nns/tls:443/client=ns/client tls=a.example.com ca client\n"
       "ns/tls:8443 tls=a.example.com ca\n",
       {{"p", "gw,mtls: Accepted=True/Accepted ResolvedRefs=True/ResolvedRefs"}}},
      {"sectionName: one port; ancestors only the Gateways reaching it",
       policy("p", std::string("  targetRefs: [{group: \"\", kind: Service, name: tls, sectionName: other}]\n") + kCaRef),
       "ns/tls:443 plain\nns/tls:8443 tls=a.example.com ca\n",
       {{"p", "gw: Accepted=True/Accepted ResolvedRefs=True/ResolvedRefs"}}},
      {"system CA and subjectAltNames (Hostname, URI)",
       policy("p", "  targetRefs: [{group: \"\", kind: Service, name: tls, sectionName: https}]\n"
                   "  validation:\n    wellKnownCACertificates: System\n    hostname: a.example.com\n"
                   "    subjectAltNames: [{type: Hostname, hostname: b.example.com},"
                   " {type: URI, uri: \"spiffe://td/x\"}]"),
       "ns/tls:443 tls=a.example.com system sans=b.example.com,spiffe://td/x\n"
       "ns/tls:443/client=ns/client tls=a.example.com system sans=b.example.com,spiffe://td/x client\n"
       "ns/tls:8443 plain\n",
       {{"p", "gw,mtls: Accepted=True/Accepted ResolvedRefs=True/ResolvedRefs"}}},
      {"missing ConfigMap: not accepted, the port serves nothing",
       policy("p", "  targetRefs: [{group: \"\", kind: Service, name: tls, sectionName: other}]\n"
                   "  validation: {caCertificateRefs: [{group: \"\", kind: ConfigMap, name: nope}], hostname: a.example.com}"),
       "ns/tls:443 plain\nns/tls:8443 no-endpoints plain\n",
       {{"p", "gw: Accepted=False/NoValidCACertificate ResolvedRefs=False/InvalidCACertificateRef"}}},
      {"ConfigMap without ca.crt",
       policy("p", "  targetRefs: [{group: \"\", kind: Service, name: tls, sectionName: other}]\n"
                   "  validation: {caCertificateRefs: [{group: \"\", kind: ConfigMap, name: empty}], hostname: a.example.com}"),
       "ns/tls:443 plain\nns/tls:8443 no-endpoints plain\n",
       {{"p", "gw: Accepted=False/NoValidCACertificate ResolvedRefs=False/InvalidCACertificateRef"}}},
      {"unsupported kind",
       policy("p", "  targetRefs: [{group: \"\", kind: Service, name: tls, sectionName: other}]\n"
                   "  validation: {caCertificateRefs: [{group: x.io, kind: Bundle, name: ca}], hostname: a.example.com}"),
       "ns/tls:443 plain\nns/tls:8443 no-endpoints plain\n",
       {{"p", "gw: Accepted=False/NoValidCACertificate ResolvedRefs=False/InvalidKind"}}},
      {"one valid CA of two: accepted, ResolvedRefs False",
       policy("p", "  targetRefs: [{group: \"\", kind: Service, name: tls, sectionName: other}]\n"
                   "  validation: {caCertificateRefs: [{group: \"\", kind: ConfigMap, name: nope},"
                   " {group: \"\", kind: ConfigMap, name: ca}], hostname: a.example.com}"),
       "ns/tls:443 plain\nns/tls:8443 tls=a.example.com ca\n",
       {{"p", "gw: Accepted=True/Accepted ResolvedRefs=False/InvalidCACertificateRef"}}},
      {"a hostname the proxy cannot send as SNI",
       policy("p", "  targetRefs: [{group: \"\", kind: Service, name: tls, sectionName: other}]\n"
                   "  validation: {wellKnownCACertificates: System, hostname: \"bad name\"}"),
       "ns/tls:443 plain\nns/tls:8443 no-endpoints plain\n",
       {{"p", "gw: Accepted=False/Invalid ResolvedRefs=True/ResolvedRefs"}}},
      {"unknown wellKnownCACertificates",
       policy("p", "  targetRefs: [{group: \"\", kind: Service, name: tls, sectionName: other}]\n"
                   "  validation: {wellKnownCACertificates: Mine, hostname: a.example.com}"),
       "ns/tls:443 plain\nns/tls:8443 no-endpoints plain\n",
       {{"p", "gw: Accepted=False/Invalid ResolvedRefs=True/ResolvedRefs"}}},
      {"conflict: the older wins, whatever the names",
       policy("b-old", "  targetRefs: [{group: \"\", kind: Service, name: tls, sectionName: other}]\n"
                       "  validation: {wellKnownCACertificates: System, hostname: old.example.com}", 0) +
           policy("a-new", std::string("  targetRefs: [{group: \"\", kind: Service, name: tls, sectionName: other}]\n") + kCaRef),
       "ns/tls:443 plain\nns/tls:8443 tls=old.example.com system\n",
       {{"b-old", "gw: Accepted=True/Accepted ResolvedRefs=True/ResolvedRefs"},
        {"a-new", "gw: Accepted=False/Conflicted ResolvedRefs=True/ResolvedRefs"}}},
      {"conflict: same age, the first name wins",
       policy("p2", "  targetRefs: [{group: \"\", kind: Service, name: tls}]\n"
                    "  validation: {wellKnownCACertificates: System, hostname: two.example.com}") +
           policy("p1", std::string("  targetRefs: [{group: \"\", kind: Service, name: tls}]\n") + kCaRef),
       "ns/tls:443 tls=a.example.com ca\nns/tls:443/client=ns/client tls=a.example.com ca client\n"
       "ns/tls:8443 tls=a.example.com ca\n",
       {{"p1", "gw,mtls: Accepted=True/Accepted ResolvedRefs=True/ResolvedRefs"},
        {"p2", "gw,mtls: Accepted=False/Conflicted ResolvedRefs=True/ResolvedRefs"}}},
      {"a port's policy and the whole Service's do not conflict; the port's wins there",
       policy("whole", "  targetRefs: [{group: \"\", kind: Service, name: tls}]\n"
                       "  validation: {wellKnownCACertificates: System, hostname: whole.example.com}", 0) +
           policy("port", std::string("  targetRefs: [{group: \"\", kind: Service, name: tls, sectionName: other}]\n") + kCaRef),
       "ns/tls:443 tls=whole.example.com system\n"
       "ns/tls:443/client=ns/client tls=whole.example.com system client\n"
       "ns/tls:8443 tls=a.example.com ca\n",
       {{"whole", "gw,mtls: Accepted=True/Accepted ResolvedRefs=True/ResolvedRefs"},
        {"port", "gw: Accepted=True/Accepted ResolvedRefs=True/ResolvedRefs"}}},
      {"a policy no attached route reaches has no ancestors",
       policy("p", std::string("  targetRefs: [{group: \"\", kind: Service, name: elsewhere}]\n") + kCaRef),
       "ns/tls:443 plain\nns/tls:8443 plain\n",
       {{"p", ": "}}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto r = run(c.policies);
    EXPECT_EQ(clusters(r), c.want_clusters);
    for (const auto& [name, want] : c.want_status) EXPECT_EQ(policy_status(r, name), want) << name;
  }
}

TEST(BackendTls, GrpcRouteBackendIsHttp2OverTls) {
  auto r = run(policy("p", std::string("  targetRefs: [{group: \"\", kind: Service, name: tls, sectionName: other}]\n") + kCaRef) +
               "---\napiVersion: gateway.networking.k8s.io/v1\nkind: GRPCRoute\n"
               "metadata: {name: g, namespace: ns}\nspec:\n  parentRefs: [{name: gw}]\n"
               "  hostnames: [grpc.example.com]\n  rules: [{backendRefs: [{name: tls, port: 8443}]}]\n");
  bool found = false;
  for (const auto& c : r.snapshot.clusters) {
    if (c.name != "ns/tls:8443/h2c") continue;
    found = true;
    ASSERT_TRUE(c.tls);
    EXPECT_EQ(c.protocol, snapshot::ClusterProtocol::kH2);
  }
  EXPECT_TRUE(found);
  r.snapshot.version = 1;
  EXPECT_EQ(snapshot::validate(r.snapshot), std::vector<std::string>{});
}

// A GatewayRoute backendRef with protocol h2: a BackendTLSPolicy on the port
// gives the TLS (HTTP/2 on it); the backendRef's own tls replaces it.
TEST(BackendTls, GatewayRouteProtocolH2UsesThePolicy) {
  auto r = run(policy("p", std::string("  targetRefs: [{group: \"\", kind: Service, name: tls, sectionName: other}]\n") + kCaRef) +
               "---\napiVersion: gantry.dev/v1alpha1\nkind: GatewayRoute\n"
               "metadata: {name: g, namespace: ns}\nspec:\n  hostnames: [g.example.com]\n  rules:\n"
               "  - matches: [{path: {value: /p}}]\n    backendRefs: [{name: tls, port: 8443, protocol: h2}]\n"
               "  - backendRefs: [{name: tls, port: 8443, protocol: h2, tls: {hostname: own.example.com}}]\n");
  std::map<std::string, std::string> got;
  for (const auto& c : r.snapshot.clusters) {
    if (c.protocol != snapshot::ClusterProtocol::kH2) continue;
    ASSERT_TRUE(c.tls) << c.name;
    got[c.name] = c.tls->server_name + (c.tls->ca_pem.empty() ? "" : " ca") + (c.tls->system_ca ? " system" : "");
  }
  EXPECT_EQ(got, (std::map<std::string, std::string>{{"ns/tls:8443/h2c", "a.example.com ca"},
                                                     {"ns/tls:8443/h2;name=own.example.com", "own.example.com system"}}));
  r.snapshot.version = 1;
  EXPECT_EQ(snapshot::validate(r.snapshot), std::vector<std::string>{});
}

TEST(BackendTls, GatewayClientCertificate) {
  struct Case {
    const char* name;
    std::string ref;  // spec.tls.backend.clientCertificateRef of Gateway mtls
    std::string extra;
    std::string want;  // its ResolvedRefs condition
  } cases[] = {
      {"valid", "{name: client}", "", "ResolvedRefs=True/ResolvedRefs"},
      {"not found", "{name: nope}", "", "ResolvedRefs=False/InvalidClientCertificateRef"},
      {"wrong kind", "{kind: WrongKind, name: client}", "", "ResolvedRefs=False/InvalidClientCertificateRef"},
      {"wrong group", "{group: x.io, name: client}", "", "ResolvedRefs=False/InvalidClientCertificateRef"},
      {"malformed", "{name: opaque}",
       "---\napiVersion: v1\nkind: Secret\nmetadata: {name: opaque, namespace: ns}\ntype: Opaque\n",
       "ResolvedRefs=False/InvalidClientCertificateRef"},
      {"other namespace without a grant", "{name: client, namespace: other}",
       "---\napiVersion: v1\nkind: Secret\nmetadata: {name: client, namespace: other}\ntype: Opaque\n",
       "ResolvedRefs=False/RefNotPermitted"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    std::string b = base();
    std::string from = "tls: {backend: {clientCertificateRef: {name: client}}}";
    b.replace(b.find(from), from.size(), "tls: {backend: {clientCertificateRef: " + c.ref + "}}");
    Cache cache = load(b + c.extra);
    TranslateOptions o;
    o.gateway_api.addresses = {"192.0.2.0/30"};
    auto r = translate(cache, o);
    const nlohmann::json* gw = find(r, "Gateway", "ns/mtls");
    ASSERT_TRUE(gw);
    EXPECT_EQ(conds((*gw)["conditions"]), "Accepted=True/Accepted Programmed=True/Programmed " + c.want);
    EXPECT_EQ((*gw)["conditions"][2]["observedGeneration"], 4);
    // A Gateway without spec.tls.backend has no such condition.
    EXPECT_EQ(conds((*find(r, "Gateway", "ns/gw"))["conditions"]),
              "Accepted=True/Accepted Programmed=True/Programmed");
  }
}

TEST(BackendTls, CaBundleProblem) {
  EXPECT_EQ(ca_bundle_problem("not a certificate"), "does not hold a PEM certificate");
  EXPECT_EQ(ca_bundle_problem(""), "no PEM certificate");
  // kCert is indented (a YAML block): unindent it.
  std::string cert(kCert);
  for (size_t at; (at = cert.find("\n    ")) != std::string::npos;) cert.erase(at + 1, 4);
  EXPECT_EQ(ca_bundle_problem(cert), "");
  EXPECT_EQ(ca_bundle_problem(cert + cert), "");
  // A damaged second block: the proxy would refuse the bundle.
  EXPECT_EQ(ca_bundle_problem(cert + "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"),
            "certificate 2 is not readable PEM");
  // A hostname the proxy cannot send as SNI makes the policy invalid.
  snapshot::UpstreamTls t;
  t.server_name = "bad name";
  t.system_ca = true;
  EXPECT_NE(tls_problem(t), "");
}

}  // namespace
}  // namespace gantry::controller
