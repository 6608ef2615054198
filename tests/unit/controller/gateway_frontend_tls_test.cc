// Table-driven tests of Gateway client-certificate validation
// (spec.tls.frontend, gateway_frontend_tls.h): a Gateway's frontend TLS and
// the objects it refers to in, its HTTPS listener's conditions and the
// snapshot listener's client validation out.
#include "controller/core/gateway_frontend_tls.h"

#include <gtest/gtest.h>

#include "controller/core/gateway_api.h"
#include "controller/core/translate.h"
#include "proxy/snapshot/validate.h"
#include "tests/unit/controller/test_util.h"
#include "tests/unit/snapshot/snapshot_fixtures.h"

namespace gantry::controller {
namespace {

using testing::dump;
using testing::load;

// `text` as a YAML block scalar indented by `indent` spaces.
std::string block(const std::string& text, int indent) {
  std::string pad(static_cast<size_t>(indent), ' ');
  std::string out = "|\n";
  size_t at = 0;
  while (at < text.size()) {
    size_t nl = text.find('\n', at);
    if (nl == std::string::npos) nl = text.size();
    out.append(pad).append(text, at, nl - at).append("\n");
    at = nl + 1;
  }
  return out;
}

// The objects every case shares: the server certificate's Secret, CA bundles
// in ConfigMaps (one in another namespace), and a ConfigMap without ca.crt
// and one whose ca.crt is not PEM.
std::string fixtures() {
  static const std::string out = [] {
    auto server = snapshot::testing::make_self_signed("gw.example.com");
    auto ca = snapshot::testing::make_self_signed("client-ca");
    std::string y = R"(
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: gantry}
spec: {controllerName: gantry.dev/gateway-controller}
---
apiVersion: v1
kind: Secret
metadata: {name: server, namespace: infra}
type: kubernetes.io/tls
stringData:
  tls.crt: )" + block(server.cert_pem, 4) + "  tls.key: " + block(server.key_pem, 4) + R"(---
apiVersion: v1
kind: ConfigMap
metadata: {name: ca, namespace: infra}
data:
  ca.crt: )" + block(ca.cert_pem, 4) + R"(---
apiVersion: v1
kind: ConfigMap
metadata: {name: ca, namespace: certs}
data:
  ca.crt: )" + block(ca.cert_pem, 4) + R"(---
apiVersion: v1
kind: ConfigMap
metadata: {name: no-key, namespace: infra}
data: {other: x}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: garbage, namespace: infra}
data: {ca.crt: "not a certificate"}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: infra}
spec: {ports: [{name: http, port: 8080}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: infra}
spec:
  parentRefs: [{name: gw}]
  hostnames: [gw.example.com]
  rules: [{backendRefs: [{name: web, port: 8080}]}]
)";
    return y;
  }();
  return out;
}

// A Gateway `gw` with an HTTPS listener on 443, an HTTP one on 80, and `tls`
// as its spec.tls (YAML flow map, or empty).
std::string gateway(const std::string& tls) {
  std::string y = R"(---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: infra}
spec:
  gatewayClassName: gantry
)";
  if (!tls.empty()) y += "  tls: " + tls + "\n";
  y += R"(  listeners:
  - {name: https, port: 443, protocol: HTTPS, tls: {certificateRefs: [{name: server}]}}
  - {name: http, port: 80, protocol: HTTP}
)";
  return y;
}

const nlohmann::json* gateway_status(const TranslateResult& r) {
  for (const auto& s : r.object_statuses)
    if (s.kind == "Gateway" && s.key() == "infra/gw") return &s.status;
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

constexpr const char* kServed =
    "Accepted=True/Accepted Programmed=True/Programmed ResolvedRefs=True/ResolvedRefs "
    "Conflicted=False/NoConflicts";

TEST(GatewayFrontendTls, ValidationPerListener) {
  struct Case {
    const char* name;
    std::string tls;    // spec.tls
    std::string extra;  // more objects
    std::string https;  // the HTTPS listener's conditions
    std::string listener;  // its snapshot listener line ("" = not bound)
    bool insecure = false;  // Gateway InsecureFrontendValidationMode=True
  } cases[] = {
      {"no frontend tls", "", "", kServed, "listener 10.9.0.1:443 https"},
      {"default ConfigMap", "{frontend: {default: {validation: {caCertificateRefs: [{kind: ConfigMap, name: ca}]}}}}",
       "", kServed, "listener 10.9.0.1:443 https clientcert"},
      {"insecure fallback",
       "{frontend: {default: {validation: {mode: AllowInsecureFallback, caCertificateRefs: [{kind: ConfigMap, name: ca}]}}}}",
       "", kServed, "listener 10.9.0.1:443 https clientcert-fallback", true},
      {"per port overrides the default",
       "{frontend: {default: {validation: {caCertificateRefs: [{kind: ConfigMap, name: missing}]}},"
       " perPort: [{port: 443, tls: {validation: {mode: AllowInsecureFallback, caCertificateRefs: [{kind: ConfigMap, name: ca}]}}}]}}",
       "", kServed, "listener 10.9.0.1:443 https clientcert-fallback", true},
      {"per port without validation turns it off",
       "{frontend: {default: {validation: {caCertificateRefs: [{kind: ConfigMap, name: ca}]}}, perPort: [{port: 443, tls: {}}]}}",
       "", kServed, "listener 10.9.0.1:443 https"},
      {"per port of another port: the default",
       "{frontend: {default: {validation: {caCertificateRefs: [{kind: ConfigMap, name: ca}]}},"
       " perPort: [{port: 8443, tls: {validation: {mode: AllowInsecureFallback, caCertificateRefs: [{kind: ConfigMap, name: ca}]}}}]}}",
       "", kServed, "listener 10.9.0.1:443 https clientcert"},  // no listener on 8443
      {"missing ConfigMap", "{frontend: {default: {validation: {caCertificateRefs: [{kind: ConfigMap, name: missing}]}}}}",
       "",
       "Accepted=False/NoValidCACertificate Programmed=False/Invalid ResolvedRefs=False/InvalidCACertificateRef "
       "Conflicted=False/NoConflicts",
       ""},
      {"ConfigMap without ca.crt", "{frontend: {default: {validation: {caCertificateRefs: [{kind: ConfigMap, name: no-key}]}}}}",
       "",
       "Accepted=False/NoValidCACertificate Programmed=False/Invalid ResolvedRefs=False/InvalidCACertificateRef "
       "Conflicted=False/NoConflicts",
       ""},
      {"ca.crt not PEM", "{frontend: {default: {validation: {caCertificateRefs: [{kind: ConfigMap, name: garbage}]}}}}",
       "",
       "Accepted=False/NoValidCACertificate Programmed=False/Invalid ResolvedRefs=False/InvalidCACertificateRef "
       "Conflicted=False/NoConflicts",
       ""},
      {"unsupported kind", "{frontend: {default: {validation: {caCertificateRefs: [{kind: Service, group: '', name: ca}]}}}}",
       "",
       "Accepted=False/NoValidCACertificate Programmed=False/Invalid ResolvedRefs=False/InvalidCACertificateKind "
       "Conflicted=False/NoConflicts",
       ""},
      {"another namespace without a grant",
       "{frontend: {default: {validation: {caCertificateRefs: [{kind: ConfigMap, name: ca, namespace: certs}]}}}}", "",
       "Accepted=False/NoValidCACertificate Programmed=False/Invalid ResolvedRefs=False/RefNotPermitted "
       "Conflicted=False/NoConflicts",
       ""},
      {"another namespace with a grant",
       "{frontend: {default: {validation: {caCertificateRefs: [{kind: ConfigMap, name: ca, namespace: certs}]}}}}",
       R"(---
apiVersion: gateway.networking.k8s.io/v1
kind: ReferenceGrant
metadata: {name: g, namespace: certs}
spec:
  from: [{group: gateway.networking.k8s.io, kind: Gateway, namespace: infra}]
  to: [{group: '', kind: ConfigMap}]
)",
       kServed, "listener 10.9.0.1:443 https clientcert"},
      {"one of two references resolves: served with it",
       "{frontend: {default: {validation: {caCertificateRefs: [{kind: ConfigMap, name: missing}, {kind: ConfigMap, name: ca}]}}}}",
       "",
       "Accepted=True/Accepted Programmed=True/Programmed ResolvedRefs=False/InvalidCACertificateRef "
       "Conflicted=False/NoConflicts",
       "listener 10.9.0.1:443 https clientcert"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    TranslateOptions o;
    o.gateway_api.addresses = {"10.9.0.1"};
    TranslateResult r = translate(load(fixtures() + gateway(c.tls) + c.extra), o);
    const nlohmann::json* st = gateway_status(r);
    ASSERT_TRUE(st);
    const auto& listeners = (*st)["listeners"];
    ASSERT_EQ(listeners.size(), 2u);
    EXPECT_EQ(conds(listeners[0]["conditions"]), c.https);
    EXPECT_EQ(conds(listeners[1]["conditions"]), kServed);  // HTTP: never validated
    std::string got;
    for (const auto& l : r.snapshot.listeners) {
      if (l.port != 443) continue;
      got = dump(snapshot::Snapshot{0, {}, {}, {}, {l}, {}});
      got.pop_back();  // the newline
    }
    EXPECT_EQ(got, c.listener);
    bool insecure = false;
    for (const auto& cond : (*st)["conditions"])
      if (cond["type"] == "InsecureFrontendValidationMode") {
        insecure = cond["status"] == "True";
        EXPECT_EQ(cond["reason"], "ConfigurationChanged");
      }
    EXPECT_EQ(insecure, c.insecure);
    r.snapshot.version = 1;  // the publisher numbers it
    auto errors = snapshot::validate(r.snapshot);
    EXPECT_TRUE(errors.empty()) << errors[0];
  }
}

// The CA bundle is the references' ca.crt, concatenated; the proxy accepts it.
TEST(GatewayFrontendTls, BundleOfTheResolvedReferences) {
  TranslateOptions o;
  o.gateway_api.addresses = {"10.9.0.1"};
  TranslateResult r = translate(
      load(fixtures() + gateway("{frontend: {default: {validation: {caCertificateRefs: "
                                "[{kind: ConfigMap, name: ca}, {kind: ConfigMap, name: ca}]}}}}")),
      o);
  const snapshot::Listener* l = nullptr;
  for (const auto& x : r.snapshot.listeners)
    if (x.port == 443) l = &x;
  ASSERT_TRUE(l);
  ASSERT_TRUE(l->client_validation);
  const std::string& pem = l->client_validation->ca_pem;
  size_t n = 0;
  for (size_t at = pem.find("BEGIN CERTIFICATE"); at != std::string::npos;
       at = pem.find("BEGIN CERTIFICATE", at + 1))
    ++n;
  EXPECT_EQ(n, 2u);
  EXPECT_FALSE(l->client_validation->insecure_fallback);
}

// Gateways sharing a bound address and port must validate clients alike:
// the second one's listener is not served.
TEST(GatewayFrontendTls, SharedSocketValidatesAlike) {
  std::string second = R"(---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw2, namespace: infra}
spec:
  gatewayClassName: gantry
  listeners:
  - {name: https, port: 443, protocol: HTTPS, hostname: other.example.com, tls: {certificateRefs: [{name: server}]}}
)";
  TranslateOptions o;
  o.gateway_api.addresses = {"10.9.0.1"};
  o.gateway_api.bind_address = "0.0.0.0";
  TranslateResult r = translate(
      load(fixtures() +
           gateway("{frontend: {default: {validation: {caCertificateRefs: [{kind: ConfigMap, name: ca}]}}}}") +
           second),
      o);
  int bound = 0;
  for (const auto& l : r.snapshot.listeners)
    if (l.port == 443) {
      ++bound;
      EXPECT_TRUE(l.client_validation);  // infra/gw comes first by name
      EXPECT_TRUE(l.hostnames.empty()) << "infra/gw2's listener is not served";
    }
  EXPECT_EQ(bound, 1);
  for (const auto& s : r.object_statuses) {
    if (s.kind == "Gateway" && s.key() == "infra/gw2") {
      EXPECT_EQ(s.status["listeners"][0]["conditions"][1]["status"], "False");
    }
  }
}

TEST(GatewayFrontendTls, DecodeErrors) {
  const char* bad[] = {
      "{frontend: {default: {validation: {mode: Sometimes, caCertificateRefs: [{kind: ConfigMap, name: ca}]}}}}",
      "{frontend: {default: {validation: {caCertificateRefs: [{name: ca}]}}}}",  // kind is required
      "{frontend: []}",
  };
  for (const char* tls : bad) {
    ParsedFile f = parse_manifest("t.yaml", gateway(tls));
    EXPECT_FALSE(f.errors.empty()) << tls;
  }
}

}  // namespace
}  // namespace gantry::controller
