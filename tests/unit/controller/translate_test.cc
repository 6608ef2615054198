// Table-driven tests of translate(): manifests in, snapshot and statuses out.
#include "controller/core/translate.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "proxy/snapshot/codec.h"
#include "proxy/snapshot/validate.h"
#include "tests/unit/controller/test_util.h"

namespace gantry::controller {
namespace {

using testing::all_messages;
using testing::dump;
using testing::load;

// Services and EndpointSlices every case can refer to.
constexpr std::string_view kBackends = R"(
apiVersion: v1
kind: Service
metadata: {name: shop-v1}
spec: {ports: [{name: http, port: 8080, targetPort: 8080}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: shop-v1-a, labels: {kubernetes.io/service-name: shop-v1}}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints:
- addresses: [10.0.0.2]
- addresses: [10.0.0.1]
  conditions: {ready: true}
- addresses: [10.0.0.3]
  conditions: {ready: false}
---
apiVersion: v1
kind: Service
metadata: {name: shop-v2}
spec: {ports: [{name: web, port: 8080, targetPort: web}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: shop-v2-a, labels: {kubernetes.io/service-name: shop-v2}}
addressType: IPv4
ports: [{name: web, port: 9090}, {name: other, port: 7070}]
endpoints:
- addresses: [10.0.1.1]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: shop-v2-b, labels: {kubernetes.io/service-name: shop-v2}}
addressType: IPv4
ports: [{name: web, port: 9090}]
endpoints:
- addresses: [10.0.1.1]
- addresses: [10.0.1.2]
---
apiVersion: v1
kind: Service
metadata: {name: drain}
spec: {ports: [{port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: drain-a, labels: {kubernetes.io/service-name: drain}}
ports: [{port: 8000}]
endpoints:
- addresses: [10.0.2.1]
  conditions: {ready: false, serving: true, terminating: true}
- addresses: [10.0.2.2]
  conditions: {ready: false, serving: false, terminating: true}
---
apiVersion: v1
kind: Service
metadata: {name: ext}
spec: {type: ExternalName, ports: [{port: 80}]}
---
apiVersion: v1
kind: Secret
metadata: {name: jwt-keys}
stringData: {hmac: s3cret}
)";

constexpr std::string_view kTlsSecret = R"(
---
apiVersion: v1
kind: Secret
metadata: {name: shop-tls}
type: kubernetes.io/tls
stringData:
  tls.crt: |
    -----BEGIN CERTIFICATE-----
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
  tls.key: |
    -----BEGIN PRIVATE KEY-----
    MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgph6APFCPvvCCj8Zw
    1ajVZ7H6fzb9Wqucwtb63LhdZlShRANCAARIXoRSd3/gWtWXlqTBnn73KQub/q6a
    fdeuofx9msofaUlQZW+ob01yz+46kBZhONrR0y2KF8Nbib2yFK+7rYu9
    -----END PRIVATE KEY-----
)";

std::string route(std::string_view name, std::string_view spec) {
  return "---\napiVersion: gantry.dev/v1alpha1\nkind: GatewayRoute\nmetadata: {name: " +
         std::string(name) + ", generation: 3}\nspec:\n" + std::string(spec) + "\n";
}

std::string ingress(std::string_view name, std::string_view spec, std::string_view meta = "") {
  return "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: " +
         std::string(name) + std::string(meta) + "}\nspec:\n" + std::string(spec) + "\n";
}

struct Case {
  const char* name;
  std::string objects;        // appended to kBackends
  std::string want_snapshot;  // dump()
  std::string want_statuses;  // dump()
  std::string want_message;   // a substring of some condition message ("" = none checked)
};

std::vector<Case> cases() {
  return {
      {"basic route", route("shop", R"(
  hostnames: [shop.example.com]
  rules:
  - matches: [{path: {type: PathPrefix, value: /api}}]
    backendRefs: [{name: shop-v1, port: 8080}])"),
       "route default/shop (GatewayRoute) hosts=shop.example.com\n"
       " rule0 PathPrefix:/api -> default/shop-v1:8080\n"
       "cluster default/shop-v1:8080 10.0.0.1:8080 10.0.0.2:8080\n",
       "GatewayRoute default/shop Accepted=True ResolvedRefs=True\n", ""},

      {"two hosts are lower-cased, sorted and deduplicated", route("shop", R"(
  hostnames: [Shop.Example.com, "*.shop.example.org", shop.example.com]
  rules: [{backendRefs: [{name: shop-v1, port: 8080}]}])"),
       "route default/shop (GatewayRoute) hosts=*.shop.example.org,shop.example.com\n"
       " rule0 -> default/shop-v1:8080\n"
       "cluster default/shop-v1:8080 10.0.0.1:8080 10.0.0.2:8080\n",
       "GatewayRoute default/shop Accepted=True ResolvedRefs=True\n", ""},

      {"weights and a full match", route("shop", R"(
  rules:
  - matches:
    - path: {type: Exact, value: /cart}
      method: POST
      headers: [{name: x-canary, value: "true"}, {name: X-Canary, value: "ignored"}]
      queryParams: [{name: v, value: "2"}]
    backendRefs: [{name: shop-v1, port: 8080, weight: 90}, {name: shop-v2, port: 8080, weight: 10}])"),
       "route default/shop (GatewayRoute)\n"
       " rule0 Exact:/cart POST h:x-canary=true q:v=2 -> default/shop-v1:8080*90 "
       "default/shop-v2:8080*10\n"
       "cluster default/shop-v1:8080 10.0.0.1:8080 10.0.0.2:8080\n"
       "cluster default/shop-v2:8080 10.0.1.1:9090 10.0.1.2:9090\n",
       "GatewayRoute default/shop Accepted=True ResolvedRefs=True\n", ""},

      {"missing service: the ref answers 500, the other ref keeps working", route("shop", R"(
  rules: [{backendRefs: [{name: shop-v1, port: 8080}, {name: nope, port: 80}]}])"),
       "route default/shop (GatewayRoute)\n"
       " rule0 -> default/shop-v1:8080 !\"Service default/nope not found\"\n"
       "cluster default/shop-v1:8080 10.0.0.1:8080 10.0.0.2:8080\n",
       "GatewayRoute default/shop Accepted=True ResolvedRefs=False(BackendNotFound)\n",
       "spec.rules[0].backendRefs[1]: Service default/nope not found"},

      {"missing port lists the ports the service has", route("shop", R"(
  rules: [{backendRefs: [{name: shop-v1, port: 9999}]}])"),
       "route default/shop (GatewayRoute)\n"
       " rule0 -> !\"Service default/shop-v1 has no port 9999 (ports: 8080 (http))\"\n",
       "GatewayRoute default/shop Accepted=True ResolvedRefs=False(BackendNotFound)\n",
       "has no port 9999"},

      {"named targetPort takes the slice port of the same name, endpoints deduplicated",
       route("shop", R"(
  rules: [{backendRefs: [{name: shop-v2, port: 8080}]}])"),
       "route default/shop (GatewayRoute)\n"
       " rule0 -> default/shop-v2:8080\n"
       "cluster default/shop-v2:8080 10.0.1.1:9090 10.0.1.2:9090\n",
       "GatewayRoute default/shop Accepted=True ResolvedRefs=True\n", ""},

      {"terminating fallback when no endpoint is ready", route("shop", R"(
  rules: [{backendRefs: [{name: drain, port: 80}]}])"),
       "route default/shop (GatewayRoute)\n"
       " rule0 -> default/drain:80\n"
       "cluster default/drain:80 10.0.2.1:8000(not-ready)\n",
       "GatewayRoute default/shop Accepted=True ResolvedRefs=True\n", ""},

      {"a bad regex drops only its own route", route("bad", R"(
  rules:
  - matches: [{path: {type: RegularExpression, value: "("}}]
    backendRefs: [{name: shop-v1, port: 8080}])") + route("good", R"(
  rules:
  - matches: [{path: {type: RegularExpression, value: "/item/[0-9]+"}}]
    backendRefs: [{name: shop-v1, port: 8080}])"),
       "route default/good (GatewayRoute)\n"
       " rule0 RegularExpression:/item/[0-9]+ -> default/shop-v1:8080\n"
       "cluster default/shop-v1:8080 10.0.0.1:8080 10.0.0.2:8080\n",
       "GatewayRoute default/bad Accepted=False(Invalid) ResolvedRefs=True\n"
       "GatewayRoute default/good Accepted=True ResolvedRefs=True\n",
       "spec.rules[0].matches[0].path.value: regex \"(\" does not compile: missing )"},

      {"a path must start with a slash", route("shop", R"(
  rules:
  - matches: [{path: {type: PathPrefix, value: api}}]
    backendRefs: [{name: shop-v1, port: 8080}])"),
       "", "GatewayRoute default/shop Accepted=False(Invalid) ResolvedRefs=True\n",
       "spec.rules[0].matches[0].path.value: path \"api\" must start with \"/\""},

      {"an invalid hostname", route("shop", R"(
  hostnames: ["shop_example.com"]
  rules: [{backendRefs: [{name: shop-v1, port: 8080}]}])"),
       "", "GatewayRoute default/shop Accepted=False(Invalid) ResolvedRefs=True\n",
       "spec.hostnames[0]: \"shop_example.com\" is not a valid DNS name"},

      {"an unknown filter is UnsupportedValue", route("shop", R"(
  rules: [{filters: {rewrite: {}}, backendRefs: [{name: shop-v1, port: 8080}]}])"),
       "", "GatewayRoute default/shop Accepted=False(UnsupportedValue) ResolvedRefs=True\n",
       "spec.rules[0].filters.rewrite: unknown filter"},

      {"a bad CIDR in ipAllow names its field; the route is not served", route("shop", R"(
  rules:
  - filters: {ipAllow: [10.0.0.0/8, 10.0.0.0/33], ipDeny: [nope]}
    backendRefs: [{name: shop-v1, port: 8080}])"),
       "", "GatewayRoute default/shop Accepted=False(Invalid) ResolvedRefs=True\n",
       "spec.rules[0].filters.ipAllow[1]: bad prefix length in \"10.0.0.0/33\"; "
       "spec.rules[0].filters.ipDeny[0]: \"nope\" is not an IP address or CIDR"},

      {"an extAuth url that is not http:// names its field", route("shop", R"(
  rules:
  - filters: {extAuth: {url: "ftp://auth.example/check"}}
    backendRefs: [{name: shop-v1, port: 8080}])"),
       "", "GatewayRoute default/shop Accepted=False(Invalid) ResolvedRefs=True\n",
       "spec.rules[0].filters.extAuth.url: \"ftp://auth.example/check\": must start with http:// or https://"},

      {"bad extAuth grpc, body and CA fields are named", route("shop", R"(
  rules:
  - filters: {extAuth: {grpc: {address: "authz"}, withRequestBody: {maxBytes: 9Mi}}}
    backendRefs: [{name: shop-v1, port: 8080}]
  - filters: {extAuth: {url: "http://a/x", grpc: {backendRef: {name: authz}}}}
    backendRefs: [{name: shop-v1, port: 8080}])"),
       "", "GatewayRoute default/shop Accepted=False(Invalid) ResolvedRefs=True\n",
       "spec.rules[0].filters.extAuth.grpc.address: \"authz\": must be host:port; "
       "spec.rules[0].filters.extAuth.withRequestBody.maxBytes: must be between 1 and 8Mi; "
       "spec.rules[1].filters.extAuth.grpc: url and grpc are exclusive: the service speaks one protocol; "
       "spec.rules[1].filters.extAuth.grpc.backendRef.port: required"},

      {"bad extAuth fields are named", route("shop", R"(
  rules:
  - filters: {extAuth: {url: "http://auth:99999/x", responseHeaders: ["bad header"], statusOnError: 200}}
    backendRefs: [{name: shop-v1, port: 8080}])"),
       "", "GatewayRoute default/shop Accepted=False(Invalid) ResolvedRefs=True\n",
       "spec.rules[0].filters.extAuth.url: \"http://auth:99999/x\": port must be from 1 to 65535; "
       "spec.rules[0].filters.extAuth.responseHeaders[0]: \"bad header\" is not a valid header name; "
       "spec.rules[0].filters.extAuth.statusOnError: must be from 400 to 599, got 200"},

      {"an empty ipDeny is refused", route("shop", R"(
  rules:
  - filters: {ipDeny: []}
    backendRefs: [{name: shop-v1, port: 8080}])"),
       "", "GatewayRoute default/shop Accepted=False(Invalid) ResolvedRefs=True\n",
       "spec.rules[0].filters.ipDeny: must list at least one address or CIDR"},

      {"a bad duration", route("shop", R"(
  rules:
  - backendRefs: [{name: shop-v1, port: 8080}]
    policy: {timeouts: {request: 15 seconds}})"),
       "", "GatewayRoute default/shop Accepted=False(Invalid) ResolvedRefs=True\n",
       "spec.rules[0].policy.timeouts.request:"},

      {"a cross-namespace ref is not permitted", route("shop", R"(
  rules: [{backendRefs: [{name: shop-v1, namespace: other, port: 8080}]}])"),
       "route default/shop (GatewayRoute)\n"
       " rule0 -> !\"Service other/shop-v1 is in another namespace; a route may only reference "
       "Services in its own\"\n",
       "GatewayRoute default/shop Accepted=True ResolvedRefs=False(RefNotPermitted)\n", ""},

      {"a non-Service backend kind", route("shop", R"(
  rules: [{backendRefs: [{name: bucket, kind: S3Bucket, group: aws.dev, port: 1}]}])"),
       "route default/shop (GatewayRoute)\n"
       " rule0 -> !\"backend kind aws.dev/S3Bucket is not supported (want Service)\"\n",
       "GatewayRoute default/shop Accepted=True ResolvedRefs=False(InvalidKind)\n", ""},

      {"an ExternalName service is not supported", route("shop", R"(
  rules: [{backendRefs: [{name: ext, port: 80}]}])"),
       "route default/shop (GatewayRoute)\n"
       " rule0 -> !\"Service default/ext is of type ExternalName, which is not supported\"\n",
       "GatewayRoute default/shop Accepted=True ResolvedRefs=False(UnsupportedProtocol)\n", ""},

      {"a rule without backendRefs answers 500", route("shop", R"(
  rules: [{matches: [{path: {value: /x}}]}])"),
       "route default/shop (GatewayRoute)\n rule0 PathPrefix:/x -> !\"the rule has no "
       "backendRefs\"\n",
       "GatewayRoute default/shop Accepted=True ResolvedRefs=False(BackendNotFound)\n", ""},

      {"a redirect needs no backend", route("shop", R"(
  rules: [{filters: {requestRedirect: {scheme: https, statusCode: 301}}}])"),
       "route default/shop (GatewayRoute)\n rule0 ->\n",
       "GatewayRoute default/shop Accepted=True ResolvedRefs=True\n", ""},

      {"a jwt filter whose Secret is missing fails closed", route("shop", R"(
  rules:
  - filters: {jwt: {algorithms: [HS256], hmacSecretRef: {name: missing, key: k}}}
    backendRefs: [{name: shop-v1, port: 8080}])"),
       "route default/shop (GatewayRoute)\n rule0 -> !\"the jwt filter's Secret is missing\"\n",
       "GatewayRoute default/shop Accepted=True ResolvedRefs=False(SecretNotFound)\n",
       "spec.rules[0].filters.jwt.hmacSecretRef: Secret default/missing not found"},

      {"a TLS secret becomes a certificate for the route's hostnames",
       std::string(kTlsSecret) + route("shop", R"(
  hostnames: [shop.example.com]
  tls: {secretName: shop-tls}
  rules: [{backendRefs: [{name: shop-v1, port: 8080}]}])"),
       "route default/shop (GatewayRoute) hosts=shop.example.com\n"
       " rule0 -> default/shop-v1:8080\n"
       "cluster default/shop-v1:8080 10.0.0.1:8080 10.0.0.2:8080\n"
       "cert default/shop-tls shop.example.com\n",
       "GatewayRoute default/shop Accepted=True ResolvedRefs=True\n", ""},

      {"a missing TLS secret: SecretNotFound, plain HTTP still served", route("shop", R"(
  hostnames: [shop.example.com]
  tls: {secretName: shop-tls}
  rules: [{backendRefs: [{name: shop-v1, port: 8080}]}])"),
       "route default/shop (GatewayRoute) hosts=shop.example.com\n"
       " rule0 -> default/shop-v1:8080\n"
       "cluster default/shop-v1:8080 10.0.0.1:8080 10.0.0.2:8080\n",
       "GatewayRoute default/shop Accepted=True ResolvedRefs=False(SecretNotFound)\n",
       "spec.tls.secretName: Secret default/shop-tls not found"},

      {"a TLS secret of the wrong type",
       "---\napiVersion: v1\nkind: Secret\nmetadata: {name: opaque}\nstringData: {a: b}\n" +
           route("shop", R"(
  hostnames: [shop.example.com]
  tls: {secretName: opaque}
  rules: [{backendRefs: [{name: shop-v1, port: 8080}]}])"),
       "route default/shop (GatewayRoute) hosts=shop.example.com\n"
       " rule0 -> default/shop-v1:8080\n"
       "cluster default/shop-v1:8080 10.0.0.1:8080 10.0.0.2:8080\n",
       "GatewayRoute default/shop Accepted=True ResolvedRefs=False(InvalidCertificateRef)\n",
       "want kubernetes.io/tls"},

      {"an Ingress of our class: Prefix, Exact, ImplementationSpecific", ingress("web", R"(
  ingressClassName: gantry
  rules:
  - host: shop.example.com
    http:
      paths:
      - {path: /api, pathType: Prefix, backend: {service: {name: shop-v1, port: {number: 8080}}}}
      - {path: /exact, pathType: Exact, backend: {service: {name: shop-v2, port: {name: web}}}}
      - {pathType: ImplementationSpecific, backend: {service: {name: shop-v1, port: {number: 8080}}}})"),
       "route default/web (Ingress) hosts=shop.example.com\n"
       " rule0 PathPrefix:/api -> default/shop-v1:8080\n"
       " rule1 Exact:/exact -> default/shop-v2:8080\n"
       " rule2 PathPrefix:/ -> default/shop-v1:8080\n"
       "cluster default/shop-v1:8080 10.0.0.1:8080 10.0.0.2:8080\n"
       "cluster default/shop-v2:8080 10.0.1.1:9090 10.0.1.2:9090\n",
       "Ingress default/web Accepted=True ResolvedRefs=True\n", ""},

      {"an Ingress of another class is ignored",
       ingress("web", R"(
  ingressClassName: nginx
  defaultBackend: {service: {name: shop-v1, port: {number: 8080}}})") +
           ingress("legacy", R"(
  defaultBackend: {service: {name: shop-v1, port: {number: 8080}}})",
                   ", annotations: {kubernetes.io/ingress.class: nginx}") +
           ingress("classless", R"(
  defaultBackend: {service: {name: shop-v1, port: {number: 8080}}})"),
       "", "", ""},

      {"the legacy class annotation is honoured",
       ingress("legacy", R"(
  defaultBackend: {service: {name: shop-v1, port: {number: 8080}}})",
               ", annotations: {kubernetes.io/ingress.class: gantry}"),
       "route default/legacy (Ingress)\n rule0 -> default/shop-v1:8080\n"
       "cluster default/shop-v1:8080 10.0.0.1:8080 10.0.0.2:8080\n",
       "Ingress default/legacy Accepted=True ResolvedRefs=True\n", ""},

      {"an Ingress with two hosts, a default backend and TLS",
       std::string(kTlsSecret) + ingress("web", R"(
  ingressClassName: gantry
  defaultBackend: {service: {name: shop-v2, port: {number: 8080}}}
  tls: [{hosts: [a.example.com], secretName: shop-tls}, {hosts: [b.example.com], secretName: gone}]
  rules:
  - host: b.example.com
    http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: shop-v1, port: {number: 8080}}}}]}
  - host: A.example.com
    http: {paths: [{path: /x, pathType: Prefix, backend: {service: {name: nope, port: {number: 1}}}}]})"),
       "route default/web@* (Ingress)\n rule0 -> default/shop-v2:8080\n"
       "route default/web@a.example.com (Ingress) hosts=a.example.com\n"
       " rule0 PathPrefix:/x -> !\"Service default/nope not found\"\n"
       "route default/web@b.example.com (Ingress) hosts=b.example.com\n"
       " rule0 PathPrefix:/ -> default/shop-v1:8080\n"
       "cluster default/shop-v1:8080 10.0.0.1:8080 10.0.0.2:8080\n"
       "cluster default/shop-v2:8080 10.0.1.1:9090 10.0.1.2:9090\n"
       "cert default/shop-tls a.example.com\n",
       "Ingress default/web Accepted=True ResolvedRefs=False(BackendNotFound)\n",
       "spec.tls[1].secretName: Secret default/gone not found"},

      {"a requestMirror resolves to a cluster of its own", route("shop", R"(
  rules:
  - filters: {requestMirror: {backendRef: {name: shop-v2, port: 8080}}}
    backendRefs: [{name: shop-v1, port: 8080}])"),
       "route default/shop (GatewayRoute)\n rule0 -> default/shop-v1:8080\n"
       "cluster default/shop-v1:8080 10.0.0.1:8080 10.0.0.2:8080\n"
       "cluster default/shop-v2:8080 10.0.1.1:9090 10.0.1.2:9090\n",
       "GatewayRoute default/shop Accepted=True ResolvedRefs=True\n", ""},

      {"ReplacePrefixMatch needs PathPrefix matches", route("shop", R"(
  rules:
  - matches: [{path: {type: Exact, value: /a}}]
    filters: {urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /}}}
    backendRefs: [{name: shop-v1, port: 8080}])"),
       "", "GatewayRoute default/shop Accepted=False(Invalid) ResolvedRefs=True\n",
       "spec.rules[0].filters.urlRewrite.path: ReplacePrefixMatch needs every match"},

      {"retry on an unknown condition", route("shop", R"(
  rules:
  - backendRefs: [{name: shop-v1, port: 8080}]
    policy: {retry: {attempts: 2, on: [connect-failure, teapot]}})"),
       "", "GatewayRoute default/shop Accepted=False(UnsupportedValue) ResolvedRefs=True\n",
       "spec.rules[0].policy.retry.on[1]: unknown value \"teapot\""},

      {"tracing sampling outside 0..1", route("shop", R"(
  rules:
  - backendRefs: [{name: shop-v1, port: 8080}]
    policy: {tracing: {sampling: 1.5}})"),
       "", "GatewayRoute default/shop Accepted=False(Invalid) ResolvedRefs=True\n",
       "spec.rules[0].policy.tracing.sampling: must be from 0 to 1"},

      {"an empty cluster when the service has no slices",
       "---\napiVersion: v1\nkind: Service\nmetadata: {name: lonely}\nspec: {ports: [{port: "
       "80}]}\n" +
           route("shop", R"(
  rules: [{backendRefs: [{name: lonely, port: 80}]}])"),
       "route default/shop (GatewayRoute)\n rule0 -> default/lonely:80\n"
       "cluster default/lonely:80\n",
       "GatewayRoute default/shop Accepted=True ResolvedRefs=True\n", ""},
  };
}

class TranslateTable : public ::testing::TestWithParam<Case> {};

TEST_P(TranslateTable, SnapshotAndStatuses) {
  const Case& c = GetParam();
  Cache cache = load(std::string(kBackends) + c.objects);
  TranslateResult r = translate(cache, TranslateOptions{});
  EXPECT_EQ(dump(r.snapshot), c.want_snapshot);
  EXPECT_EQ(dump(r.statuses), c.want_statuses);
  if (!c.want_message.empty()) {
    EXPECT_NE(all_messages(r.statuses).find(c.want_message), std::string::npos)
        << all_messages(r.statuses);
  }
  EXPECT_EQ(r.snapshot.version, 0u);
  // Whatever translate emits, the proxy's validator accepts.
  snapshot::Snapshot versioned = r.snapshot;
  versioned.version = 1;
  EXPECT_EQ(snapshot::validate(versioned), std::vector<std::string>{});
}

INSTANTIATE_TEST_SUITE_P(Cases, TranslateTable, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           std::string n;
                           for (const char* p = info.param.name; *p; ++p)
                             n += std::isalnum(static_cast<unsigned char>(*p)) ? *p : '_';
                           return n;
                         });

TEST(Translate, StatusCarriesGenerationAndConditionOrder) {
  Cache cache = load(std::string(kBackends) +
                     route("shop", "  rules: [{backendRefs: [{name: shop-v1, port: 8080}]}]"));
  TranslateResult r = translate(cache, {});
  ASSERT_EQ(r.statuses.size(), 1u);
  EXPECT_EQ(r.statuses[0].observed_generation, 3);
  ASSERT_EQ(r.statuses[0].conditions.size(), 2u);
  EXPECT_EQ(r.statuses[0].conditions[0].type, "Accepted");
  EXPECT_EQ(r.statuses[0].conditions[0].observed_generation, 3);
  EXPECT_EQ(r.statuses[0].conditions[1].type, "ResolvedRefs");
}

TEST(Translate, IngressClassOption) {
  Cache cache = load(std::string(kBackends) + ingress("web", R"(
  ingressClassName: edge
  defaultBackend: {service: {name: shop-v1, port: {number: 8080}}})") +
                     ingress("none", R"(
  defaultBackend: {service: {name: shop-v1, port: {number: 8080}}})"));
  TranslateOptions opts;
  opts.ingress_class = "edge";
  EXPECT_EQ(dump(translate(cache, opts).statuses),
            "Ingress default/web Accepted=True ResolvedRefs=True\n");
  opts.claim_classless_ingresses = true;
  EXPECT_EQ(dump(translate(cache, opts).statuses),
            "Ingress default/none Accepted=True ResolvedRefs=True\n"
            "Ingress default/web Accepted=True ResolvedRefs=True\n");
}

// Every filter and policy field maps 1:1 onto the snapshot model.
TEST(Translate, EveryFilterAndPolicyField) {
  Cache cache = load(std::string(kBackends) + route("shop", R"(
  rules:
  - matches: [{path: {type: PathPrefix, value: /api}}]
    filters:
      cors: {allowOrigins: ["https://a.com", "*.b.com"], allowMethods: [GET, POST], allowHeaders: [x-a],
             exposeHeaders: [x-b], allowCredentials: true, maxAge: 10m}
      rateLimit: {requests: 100, interval: 1m, burst: 20, algorithm: SlidingWindow, key: "Header:x-user"}
      maxRequestBodySize: 1Mi
      jwt: {algorithms: [HS256], hmacSecretRef: {name: jwt-keys, key: hmac}, issuer: https://issuer,
            audiences: [shop], clockSkew: 30s, claimToHeaders: [{claim: sub, header: x-user}]}
      requestHeaders: {set: [{name: x-env, value: prod}], add: [{name: x-a, value: "1"}], remove: [x-debug]}
      responseHeaders: {set: [{name: x-served-by, value: gantry}]}
      urlRewrite: {hostname: Internal.example.com, path: {type: ReplacePrefixMatch, replacePrefixMatch: /v2}}
      requestMirror: {backendRef: {name: shop-v2, port: 8080}}
      cache: {ttl: 30s, maxBytes: 10Mi, maxObjectBytes: 512Ki}
      ipAllow: [10.0.0.0/8, "fd00::/8", 192.0.2.7]
      ipDeny: [10.1.0.0/16]
    backendRefs: [{name: shop-v1, port: 8080}]
    policy:
      loadBalancer: {type: ConsistentHash, consistentHash: {type: Cookie, cookie: {name: sticky, ttl: 1h, path: /api,
                     domain: .Example.com, secure: OverTLS, sameSite: None, sameSiteNoneIfCompatible: true}}}
      healthCheck: {path: /ready, interval: 2s, timeout: 500ms, healthyThreshold: 2, unhealthyThreshold: 4,
                    expectedStatuses: [200, 204]}
      outlierDetection: {consecutive5xx: 3, consecutiveConnectFailures: 2, baseEjectionTime: 10s,
                         maxEjectionPercent: 30}
      circuitBreaker: {consecutiveFailures: 7, failureRatio: 0.5, window: 20s, minRequests: 4,
                       openDuration: 3s, halfOpenRequests: 2, maxConnections: 100, maxPendingRequests: 50}
      timeouts: {request: 15s, backendRequest: 5s, idle: 1m}
      retry: {attempts: 2, on: [connect-failure, reset, "503", 502, gateway-error], perTryTimeout: 2s,
              backoff: {base: 50ms, max: 1s}}
      tracing: {sampling: 0.1}
  - filters: {requestRedirect: {scheme: https, hostname: www.example.com, port: 8443,
                                path: {type: ReplaceFullPath, replaceFullPath: /new}, statusCode: 308}})"));
  TranslateResult r = translate(cache, {});
  ASSERT_EQ(dump(r.statuses), "GatewayRoute default/shop Accepted=True ResolvedRefs=True\n")
      << all_messages(r.statuses);
  ASSERT_EQ(r.snapshot.routes.size(), 1u);
  ASSERT_EQ(r.snapshot.routes[0].rules.size(), 2u);
  using namespace std::chrono_literals;
  namespace sn = snapshot;

  sn::Filters f;
  f.cors =
      sn::Cors{{"https://a.com", "*.b.com"}, {"GET", "POST"}, {"x-a"}, {"x-b"}, true, 600000ms};
  f.rate_limit =
      sn::RateLimit{100, 60000ms, 20, sn::RateLimitAlgorithm::kSlidingWindow, "Header:x-user"};
  f.max_request_body_size = 1048576;
  f.jwt =
      sn::Jwt{{"HS256"}, "s3cret", "", "https://issuer", {"shop"}, 30000ms, {{"sub", "x-user"}}};
  f.request_headers = sn::HeaderModifier{{{"x-env", "prod"}}, {{"x-a", "1"}}, {"x-debug"}};
  f.response_headers = sn::HeaderModifier{{{"x-served-by", "gantry"}}, {}, {}};
  f.url_rewrite =
      sn::UrlRewrite{"internal.example.com", {sn::PathRewriteType::kReplacePrefixMatch, "/v2"}};
  f.request_mirrors = {sn::RequestMirror{"default/shop-v2:8080"}};
  f.cache = sn::Cache{30000ms, 10ull << 20, 512ull << 10};
  f.source_range = sn::SourceRange{{"10.0.0.0/8", "fd00::/8", "192.0.2.7"}, {"10.1.0.0/16"}};
  EXPECT_EQ(r.snapshot.routes[0].rules[0].filters, f);

  sn::Policy p;
  p.load_balancer = sn::LoadBalancer{sn::LoadBalancerType::kConsistentHash,
                                     sn::HashOn::kCookie,
                                     "sticky",
                                     3600000ms,
                                     "/api",
                                     ".example.com",
                                     sn::CookieSecure::kOverTls,
                                     "None",
                                     true};
  p.health_check = sn::HealthCheck{"/ready", 2000ms, 500ms, 2, 4, {200, 204}};
  p.outlier_detection = sn::OutlierDetection{3, 2, 10000ms, 30};
  p.circuit_breaker = sn::CircuitBreaker{7, 0.5, 20000ms, 4, 3000ms, 2, 100, 50};
  p.timeouts = sn::Timeouts{15000ms, 5000ms, 60000ms};
  p.retry = sn::Retry{2, true, true, {502, 503, 504}, 2000ms, 50ms, 1000ms};
  p.tracing = sn::Tracing{0.1};
  EXPECT_EQ(r.snapshot.routes[0].rules[0].policy, p);

  sn::RequestRedirect redirect{
      "https", "www.example.com", 8443, {sn::PathRewriteType::kReplaceFullPath, "/new"}, 308};
  EXPECT_EQ(r.snapshot.routes[0].rules[1].filters.request_redirect, redirect);
  EXPECT_TRUE(r.snapshot.routes[0].rules[1].backends.empty());
}

// apiKey: consumer Secrets selected by labels become digests; basicAuth: the
// htpasswd Secret's accepted users, refused lines named in ResolvedRefs.
constexpr const char* kCaPem = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n";

TEST(Translate, ExtAuth) {
  Cache cache = load(std::string(kBackends) + route("shop", R"(
  rules:
  - filters:
      extAuth:
        url: http://OAuth2-Proxy.auth.svc:4180/oauth2/auth?x=1
        method: GET
        requestHeaders: [Cookie]
        responseHeaders: [X-Auth-Request-User]
        signinURL: https://auth.example/oauth2/start
        timeout: 500ms
        failOpen: true
        cache: {ttl: 30s, maxEntries: 100}
    backendRefs: [{name: shop-v1, port: 8080}]
  - filters:
      extAuth: {url: "http://[fd00::1]/check"}
    backendRefs: [{name: shop-v1, port: 8080}]
  - filters:
      extAuth:
        url: https://auth.example/check
        caSecretRef: {name: auth-ca}
        withRequestBody: {maxBytes: 4Ki, allowPartialMessage: true}
    backendRefs: [{name: shop-v1, port: 8080}]
  - filters:
      extAuth:
        grpc: {address: "10.0.0.9:9191", timeout: 250ms}
        withRequestBody: {}
    backendRefs: [{name: shop-v1, port: 8080}]
  - filters:
      extAuth:
        grpc: {backendRef: {name: authz, namespace: auth, port: 9191}, tls: true}
    backendRefs: [{name: shop-v1, port: 8080}])") + R"(
---
apiVersion: v1
kind: Secret
metadata: {name: auth-ca, namespace: default}
stringData:
  ca.crt: |
    -----BEGIN CERTIFICATE-----
    MIIBfake
    -----END CERTIFICATE-----
)");
  TranslateResult r = translate(cache, {});
  ASSERT_EQ(r.snapshot.routes.size(), 1u) << all_messages(r.statuses);
  const auto& a = *r.snapshot.routes[0].rules[0].filters.ext_auth;
  EXPECT_EQ(a.host, "oauth2-proxy.auth.svc");
  EXPECT_EQ(a.port, 4180);
  EXPECT_EQ(a.authority, "OAuth2-Proxy.auth.svc:4180");
  EXPECT_EQ(a.path, "/oauth2/auth?x=1");
  EXPECT_EQ(a.method, "GET");
  EXPECT_EQ(a.request_headers, std::vector<std::string>{"cookie"});
  EXPECT_EQ(a.response_headers, std::vector<std::string>{"x-auth-request-user"});
  EXPECT_EQ(a.signin, "https://auth.example/oauth2/start");
  EXPECT_EQ(a.signin_redirect_param, "rd");
  EXPECT_EQ(a.timeout.count(), 500);
  EXPECT_TRUE(a.fail_open);
  EXPECT_EQ(a.cache_ttl.count(), 30000);
  EXPECT_EQ(a.cache_max_entries, 100u);
  const auto& b = *r.snapshot.routes[0].rules[1].filters.ext_auth;
  EXPECT_EQ(b.host, "fd00::1");
  EXPECT_EQ(b.port, 80);
  EXPECT_EQ(b.path, "/check");
  EXPECT_EQ(b.request_headers, (std::vector<std::string>{"authorization", "cookie"}));
  EXPECT_EQ(b.status_on_error, 403);
  EXPECT_EQ(b.cache_ttl.count(), 0);
  EXPECT_EQ(b.body_max_bytes, 0u);
  EXPECT_FALSE(b.grpc);
  EXPECT_FALSE(b.tls);
  const auto& c = *r.snapshot.routes[0].rules[2].filters.ext_auth;
  EXPECT_TRUE(c.tls);
  EXPECT_EQ(c.port, 443);
  EXPECT_EQ(c.host, "auth.example");
  EXPECT_EQ(c.ca_pem, kCaPem);
  EXPECT_EQ(c.body_max_bytes, 4096u);
  EXPECT_TRUE(c.body_allow_partial);
  const auto& d = *r.snapshot.routes[0].rules[3].filters.ext_auth;
  EXPECT_TRUE(d.grpc);
  EXPECT_FALSE(d.tls);
  EXPECT_EQ(d.host, "10.0.0.9");
  EXPECT_EQ(d.port, 9191);
  EXPECT_EQ(d.authority, "10.0.0.9:9191");
  EXPECT_EQ(d.path, "/envoy.service.auth.v3.Authorization/Check");
  EXPECT_EQ(d.timeout.count(), 250);
  EXPECT_EQ(d.body_max_bytes, 8192u);  // withRequestBody without maxBytes
  const auto& e = *r.snapshot.routes[0].rules[4].filters.ext_auth;
  EXPECT_TRUE(e.grpc);
  EXPECT_TRUE(e.tls);
  EXPECT_EQ(e.host, "authz.auth.svc.cluster.local");
  EXPECT_EQ(e.port, 9191);
  EXPECT_TRUE(e.ca_pem.empty());  // the system store
  snapshot::Snapshot versioned = r.snapshot;
  versioned.version = 1;
  EXPECT_EQ(snapshot::validate(versioned), std::vector<std::string>{});
}

TEST(Translate, ApiKeyAndBasicAuthSecrets) {
  // bcrypt line written by htpasswd -nbB -C 4 alice 'open sesame'
  Cache cache = load(std::string(kBackends) + R"(
---
apiVersion: v1
kind: Secret
metadata: {name: alice, labels: {gantry.dev/api-consumer: shop}}
stringData: {key: key-alice-0123456789, consumer: alice}
---
apiVersion: v1
kind: Secret
metadata: {name: bob, labels: {gantry.dev/api-consumer: shop, extra: x}}
stringData: {key: key-bob-9876543210}
---
apiVersion: v1
kind: Secret
metadata: {name: copy, labels: {gantry.dev/api-consumer: shop}}
stringData: {key: key-bob-9876543210, consumer: mallory}
---
apiVersion: v1
kind: Secret
metadata: {name: nokey, labels: {gantry.dev/api-consumer: shop}}
stringData: {consumer: carol}
---
apiVersion: v1
kind: Secret
metadata: {name: other, labels: {gantry.dev/api-consumer: other}}
stringData: {key: other-key}
---
apiVersion: v1
kind: Secret
metadata: {name: elsewhere, namespace: team-b, labels: {gantry.dev/api-consumer: shop}}
stringData: {key: elsewhere-key}
---
apiVersion: v1
kind: Secret
metadata: {name: staff}
stringData:
  auth: |
    alice:$2y$04$dD/xXdPDwE3/ZsXH8exTJOZz1xzNwPV7jUzkf1bVDqFZqZTG.ddze
    mallory:$apr1$pEHspv1V$yTYoAx7LRDJLHOrIkKU5I/
)" + route("shop", R"(
  rules:
  - filters:
      apiKey: {secretSelector: {matchLabels: {gantry.dev/api-consumer: shop}}, queryParam: k, unknownKeyStatus: 403}
      rateLimit: {requests: 5, interval: 1m, key: Consumer}
      basicAuth: {secretRef: {name: staff}, realm: Staff}
    backendRefs: [{name: shop-v1, port: 8080}])"));
  TranslateResult r = translate(cache, {});
  ASSERT_EQ(r.snapshot.routes.size(), 1u) << all_messages(r.statuses);
  const auto& f = r.snapshot.routes[0].rules[0].filters;
  ASSERT_TRUE(f.api_key);
  EXPECT_EQ(f.api_key->header, "x-api-key");  // the default, besides the query parameter
  EXPECT_EQ(f.api_key->query_param, "k");
  EXPECT_EQ(f.api_key->consumer_header, "x-consumer");
  EXPECT_EQ(f.api_key->unknown_key_status, 403);
  std::vector<snapshot::ApiKeyEntry> want = {
      {"alice", "f82ed249117cbb38d189bb742ad45f93b3993287304f8951c8949286283d9af3"},
      {"bob", "004b39054903301234e6bf8905dc22cf4f3b15c4e899a0f98063631b84dcf776"}};
  EXPECT_EQ(f.api_key->keys, want);  // in Secret order; the copy and the keyless one left out
  ASSERT_TRUE(f.basic_auth);
  EXPECT_EQ(f.basic_auth->realm, "Staff");
  ASSERT_EQ(f.basic_auth->users.size(), 1u);
  EXPECT_EQ(f.basic_auth->users[0].name, "alice");
  EXPECT_EQ(f.rate_limit->key, "Consumer");
  EXPECT_EQ(dump(r.statuses), "GatewayRoute default/shop Accepted=True ResolvedRefs=False(InvalidSecret)\n");
  std::string msgs = all_messages(r.statuses);
  EXPECT_NE(msgs.find("spec.rules[0].filters.apiKey.secretSelector.matchLabels: Secret default/copy has the same "
                      "key as Secret default/bob"), std::string::npos) << msgs;
  EXPECT_NE(msgs.find("Secret default/nokey has no key \"key\""), std::string::npos) << msgs;
  EXPECT_NE(msgs.find("spec.rules[0].filters.basicAuth.secretRef: Secret default/staff key \"auth\": line 2: user "
                      "\"mallory\": MD5 ($apr1$) hashes are refused"), std::string::npos) << msgs;
  // No key text anywhere in the snapshot.
  std::string bytes = snapshot::encode(r.snapshot);
  EXPECT_EQ(bytes.find("key-alice"), std::string::npos);
}

TEST(Translate, AuthFiltersWithoutSecretsRefuseEveryone) {
  Cache cache = load(std::string(kBackends) + route("shop", R"(
  rules:
  - filters:
      apiKey: {secretSelector: {matchLabels: {team: none}}}
      basicAuth: {secretRef: {name: missing}}
    backendRefs: [{name: shop-v1, port: 8080}])") + route("bad", R"(
  rules:
  - filters:
      rateLimit: {requests: 5, interval: 1m, key: Consumer}
    backendRefs: [{name: shop-v1, port: 8080}]
  - filters:
      apiKey: {secretSelector: {matchLabels: {team: none}}, unknownKeyStatus: 404}
    backendRefs: [{name: shop-v1, port: 8080}])"));
  TranslateResult r = translate(cache, {});
  ASSERT_EQ(r.snapshot.routes.size(), 1u) << all_messages(r.statuses);
  const auto& f = r.snapshot.routes[0].rules[0].filters;
  ASSERT_TRUE(f.api_key && f.basic_auth);
  EXPECT_TRUE(f.api_key->keys.empty());
  EXPECT_EQ(f.api_key->header, "x-api-key");
  EXPECT_TRUE(f.basic_auth->users.empty());
  std::string msgs = all_messages(r.statuses);
  EXPECT_NE(msgs.find("spec.rules[0].filters.apiKey.secretSelector.matchLabels: no Secret in namespace default has "
                      "the labels team=none; every request is refused"), std::string::npos) << msgs;
  EXPECT_NE(msgs.find("spec.rules[0].filters.basicAuth.secretRef: Secret default/missing not found"),
            std::string::npos) << msgs;
  EXPECT_NE(msgs.find("spec.rules[1].filters.apiKey.unknownKeyStatus: must be 401 or 403"), std::string::npos) << msgs;
  EXPECT_NE(msgs.find("spec.rules[0].filters.rateLimit.key: Consumer needs an apiKey or basicAuth filter"),
            std::string::npos) << msgs;
}

TEST(Translate, GlobalRateLimitsNeedTheStore) {
  const std::string routes = std::string(kBackends) + route("shop", R"(
  rules:
  - filters:
      rateLimit: {requests: 5, interval: 1s, scope: global, failureMode: closed}
    backendRefs: [{name: shop-v1, port: 8080}])");
  Cache cache = load(routes);
  // Without the controller's store: refused, the field named.
  TranslateResult none = translate(cache, {});
  EXPECT_TRUE(none.snapshot.routes.empty());
  EXPECT_FALSE(none.snapshot.rate_limit_store);
  std::string msgs = all_messages(none.statuses);
  EXPECT_NE(msgs.find("spec.rules[0].filters.rateLimit.scope: global needs the controller's Redis store"),
            std::string::npos) << msgs;
  // With it: served, and the store travels in the snapshot.
  TranslateOptions o;
  o.rate_limit_store.emplace();
  o.rate_limit_store->address = "redis.gantry:6379";
  o.rate_limit_store->password = "pw";
  o.rate_limit_store->expected_replicas = 4;
  TranslateResult r = translate(cache, o);
  ASSERT_EQ(r.snapshot.routes.size(), 1u) << all_messages(r.statuses);
  const auto& rl = r.snapshot.routes[0].rules[0].filters.rate_limit;
  ASSERT_TRUE(rl);
  EXPECT_EQ(rl->scope, snapshot::RateLimitScope::kGlobal);
  EXPECT_EQ(rl->failure_mode, snapshot::RateLimitFailureMode::kClosed);
  ASSERT_TRUE(r.snapshot.rate_limit_store);
  EXPECT_EQ(*r.snapshot.rate_limit_store, *o.rate_limit_store);
}

TEST(Translate, PolicyDefaultsComeFromTheModel) {
  Cache cache = load(std::string(kBackends) + route("shop", R"(
  rules:
  - backendRefs: [{name: shop-v1, port: 8080}]
    policy: {healthCheck: {}, retry: {attempts: 1}})"));
  TranslateResult r = translate(cache, {});
  ASSERT_EQ(r.snapshot.routes.size(), 1u);
  const auto& p = r.snapshot.routes[0].rules[0].policy;
  EXPECT_EQ(p.health_check, snapshot::HealthCheck{});
  snapshot::Retry want;
  want.attempts = 1;
  EXPECT_EQ(p.retry, want);
  EXPECT_EQ(p.load_balancer, snapshot::LoadBalancer{});
}

TEST(Translate, GrpcHealthCheck) {
  Cache cache = load(std::string(kBackends) + route("shop", R"(
  rules:
  - backendRefs: [{name: shop-v1, port: 8080}]
    policy: {healthCheck: {interval: 2s, grpc: {service: shop.v1.Cart}}}
  - matches: [{path: {type: PathPrefix, value: /all}}]
    backendRefs: [{name: shop-v1, port: 8080}]
    policy: {healthCheck: {grpc: {}}})"));
  TranslateResult r = translate(cache, {});
  ASSERT_EQ(r.snapshot.routes.size(), 1u) << all_messages(r.statuses);
  ASSERT_EQ(r.snapshot.routes[0].rules.size(), 2u);
  snapshot::HealthCheck want;
  want.interval = std::chrono::milliseconds(2000);
  want.grpc = snapshot::GrpcHealthCheck{"shop.v1.Cart"};
  EXPECT_EQ(r.snapshot.routes[0].rules[0].policy.health_check, want);
  want = snapshot::HealthCheck{};
  want.grpc = snapshot::GrpcHealthCheck{""};
  EXPECT_EQ(r.snapshot.routes[0].rules[1].policy.health_check, want) << "an empty service is the whole server";

  // grpc with path or expectedStatuses is refused, naming the field.
  for (const char* policy : {"{healthCheck: {path: /ready, grpc: {service: a}}}",
                             "{healthCheck: {expectedStatuses: [200], grpc: {service: a}}}"}) {
    Cache bad = load(std::string(kBackends) + route("shop", std::string(R"(
  rules:
  - backendRefs: [{name: shop-v1, port: 8080}]
    policy: )") + policy));
    TranslateResult rb = translate(bad, {});
    EXPECT_TRUE(rb.snapshot.routes.empty()) << policy;
    EXPECT_NE(all_messages(rb.statuses).find("spec.rules[0].policy.healthCheck.grpc"), std::string::npos)
        << all_messages(rb.statuses);
  }
}

// The same objects in any order give a byte-identical snapshot.
TEST(Translate, DeterministicAcrossInputOrder) {
  // Cases whose objects have distinct names, so that every order holds the same set.
  std::string text = std::string(kBackends) + std::string(kTlsSecret);
  for (const auto& c : cases()) {
    std::string n = c.name;
    if (n == "weights and a full match" || n == "a bad regex drops only its own route" ||
        n == "an Ingress with two hosts, a default backend and TLS" ||
        n == "the legacy class annotation is honoured")
      text += c.objects;
  }
  ParsedFile parsed = parse_manifest("all.yaml", text);
  ASSERT_TRUE(parsed.errors.empty());
  std::vector<Object> objects = parsed.objects;
  ASSERT_GT(objects.size(), 12u);

  Cache first;
  for (const auto& o : objects) first.upsert(o);
  TranslateResult want = translate(first, {});
  ASSERT_EQ(want.snapshot.routes.size(), 6u);
  std::string want_bytes = snapshot::encode(want.snapshot);

  std::mt19937 rng(42);
  for (int round = 0; round < 20; ++round) {
    std::shuffle(objects.begin(), objects.end(), rng);
    Cache c;
    for (const auto& o : objects) c.upsert(o);
    TranslateResult got = translate(c, {});
    EXPECT_EQ(snapshot::encode(got.snapshot), want_bytes) << "round " << round;
    EXPECT_EQ(got.statuses, want.statuses);
  }
}

TEST(Translate, EndpointAddressesAreCanonicalAndInvalidOnesWarn) {
  Cache cache = load(R"(
apiVersion: v1
kind: Service
metadata: {name: v6}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: v6-a, labels: {kubernetes.io/service-name: v6}}
addressType: IPv6
ports: [{name: http, port: 8080}]
endpoints:
- addresses: ["fd00:0:0::1"]
- addresses: ["fd00::1"]
- addresses: ["not-an-ip"]
)" + route("shop", "  rules: [{backendRefs: [{name: v6, port: 80}]}]"));
  TranslateResult r = translate(cache, {});
  EXPECT_EQ(dump(r.snapshot),
            "route default/shop (GatewayRoute)\n rule0 -> default/v6:80\n"
            "cluster default/v6:80 fd00::1:8080\n");
  ASSERT_EQ(r.warnings.size(), 1u);
  EXPECT_NE(r.warnings[0].find("not-an-ip"), std::string::npos);
}

TEST(Translate, Quantities) {
  struct {
    const char* in;
    uint64_t want;
  } sizes[] = {{"1048576", 1048576}, {"1Mi", 1048576},   {"512Ki", 524288},
               {"1k", 1000},         {"2G", 2000000000}, {"1Gi", 1ull << 30}};
  for (const auto& s : sizes) {
    auto v = parse_size(s.in);
    ASSERT_TRUE(v.ok()) << s.in;
    EXPECT_EQ(*v, s.want) << s.in;
  }
  for (const char* bad : {"", "Mi", "1.5Mi", "1MB", "-1", "99999999999999999999Ti"})
    EXPECT_FALSE(parse_size(bad).ok()) << bad;
  EXPECT_EQ(parse_k8s_duration("250ms")->count(), 250);
  EXPECT_EQ(parse_k8s_duration("15s")->count(), 15000);
  EXPECT_FALSE(parse_k8s_duration("15 seconds").ok());
}

// filters.transform: the snapshot gets the filter's settings; bad settings
// keep the route out with a condition that names the field.
TEST(Translate, TransformFilter) {
  Cache cache = load(std::string(kBackends) + route("shop", R"(
  rules:
  - filters:
      transform: {backend: XML, response: false, maxBodySize: 64Ki, rootElement: Request}
    backendRefs: [{name: shop-v1, port: 8080}])") + route("bad", R"(
  rules:
  - filters:
      transform: {backend: YAML, maxBodySize: 1Gi, itemElement: "1item"}
    backendRefs: [{name: shop-v1, port: 8080}]
  - filters:
      transform: {backend: JSON, request: false, response: false}
      cache: {ttl: 1m}
    backendRefs: [{name: shop-v1, port: 8080}])"));
  TranslateResult r = translate(cache, {});
  ASSERT_EQ(r.snapshot.routes.size(), 1u) << all_messages(r.statuses);
  const auto& t = r.snapshot.routes[0].rules[0].filters.transform;
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(*t, (snapshot::Transform{snapshot::TransformFormat::kXml, true, false, 65536, "Request", "item"}));
  std::string msgs = all_messages(r.statuses);
  for (const char* want : {"spec.rules[0].filters.transform.backend: unknown value \"YAML\" (want XML or JSON)",
                           "spec.rules[0].filters.transform.maxBodySize: must be between 1 and 64Mi",
                           "spec.rules[0].filters.transform.itemElement: \"1item\" is not an XML element name",
                           "spec.rules[1].filters.transform: request and response are both false",
                           "spec.rules[1].filters.transform: cannot be combined with cache"})
    EXPECT_NE(msgs.find(want), std::string::npos) << want << "\n" << msgs;
}

// filters.connectionLimit and filters.defaultBackend of a GatewayRoute: the
// snapshot's, the X-* values from the route and its first backendRef; bad
// values are named in Accepted.
TEST(Translate, ConnectionLimitAndDefaultBackend) {
  Cache cache = load(std::string(kBackends) + route("shop", R"(
  rules:
  - filters:
      connectionLimit: {perClientIP: 3, exemptSources: [10.0.0.0/8]}
      defaultBackend: {backendRef: {name: shop-v2, port: 8080}, interceptStatuses: [404, 503]}
    backendRefs: [{name: shop-v1, port: 8080}])") + route("bad", R"(
  rules:
  - filters:
      connectionLimit: {perClientIP: 0, statusCode: 200, exemptSources: [10.0.0.0/33]}
      defaultBackend: {backendRef: {name: shop-v2, port: 8080}, interceptStatuses: [302]}
    backendRefs: [{name: shop-v1, port: 8080}])"));
  TranslateResult r = translate(cache, {});
  ASSERT_EQ(r.snapshot.routes.size(), 1u) << all_messages(r.statuses);
  const auto& f = r.snapshot.routes[0].rules[0].filters;
  EXPECT_EQ(f.connection_limit, (snapshot::ConnectionLimit{3, 503, {"10.0.0.0/8"}, ""}));
  snapshot::DefaultBackend want;
  want.cluster = "default/shop-v2:8080";
  want.intercept_statuses = {404, 503};
  want.namespace_ = "default";
  want.ingress_name = "shop";
  want.service_name = "shop-v1";
  want.service_port = "8080";
  EXPECT_EQ(f.default_backend, want);
  std::string msgs = all_messages(r.statuses);
  for (const char* want_msg : {"spec.rules[0].filters.connectionLimit.perClientIP: must be from 1 to 4294967295",
                               "spec.rules[0].filters.connectionLimit.statusCode: must be from 400 to 599",
                               "spec.rules[0].filters.connectionLimit.exemptSources[0]: \"10.0.0.0/33\" is not a CIDR",
                               "spec.rules[0].filters.defaultBackend.interceptStatuses[0]: must be from 400 to 599"})
    EXPECT_NE(msgs.find(want_msg), std::string::npos) << want_msg << "\n" << msgs;
}

// filters.grpcWeb: {} on a GatewayRoute rule is the snapshot's grpcWeb;
// enabled: false, or no grpcWeb, is none.
TEST(Translate, GrpcWebFilter) {
  Cache cache = load(std::string(kBackends) + route("shop", R"(
  rules:
  - filters: {grpcWeb: {}}
    backendRefs: [{name: shop-v1, port: 8080}]
  - backendRefs: [{name: shop-v1, port: 8080}]
  - filters: {grpcWeb: {enabled: false}}
    backendRefs: [{name: shop-v1, port: 8080}])"));
  TranslateResult r = translate(cache, {});
  ASSERT_EQ(r.snapshot.routes.size(), 1u) << all_messages(r.statuses);
  EXPECT_TRUE(r.snapshot.routes[0].rules[0].filters.grpc_web.has_value());
  EXPECT_FALSE(r.snapshot.routes[0].rules[1].filters.grpc_web.has_value());
  EXPECT_FALSE(r.snapshot.routes[0].rules[2].filters.grpc_web.has_value());
  // Round trip through the snapshot codec.
  snapshot::Snapshot versioned = r.snapshot;
  versioned.version = 1;
  auto back = snapshot::decode_snapshot(snapshot::encode(versioned));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->routes[0].rules[0].filters, versioned.routes[0].rules[0].filters);
  EXPECT_NE(snapshot::encode(versioned).find("\"grpcWeb\":{}"), std::string::npos);
}

}  // namespace
}  // namespace gantry::controller

namespace gantry::controller {
namespace {

// A Service port's appProtocol chooses how the proxy speaks to its endpoints.
TEST(Translate, AppProtocolH2cOrGrpcMakesAnH2cCluster) {
  const std::pair<const char*, snapshot::ClusterProtocol> table[] = {
      {"", snapshot::ClusterProtocol::kHttp1},
      {"appProtocol: kubernetes.io/h2c", snapshot::ClusterProtocol::kH2c},
      {"appProtocol: grpc", snapshot::ClusterProtocol::kH2c},
      {"appProtocol: http", snapshot::ClusterProtocol::kHttp1},
      {"appProtocol: kubernetes.io/ws", snapshot::ClusterProtocol::kHttp1},
      {"appProtocol: GRPC", snapshot::ClusterProtocol::kHttp1},  // values are case-sensitive
  };
  for (auto [field, want] : table) {
    Cache cache = load(std::string("apiVersion: v1\nkind: Service\nmetadata: {name: svc}\n"
                                   "spec: {ports: [{name: a, port: 80, ") +
                       field + "}, {name: b, port: 81}]}\n" +
                       route("shop", "  rules: [{backendRefs: [{name: svc, port: 80}, {name: svc, port: 81}]}]"));
    TranslateResult r = translate(cache, {});
    ASSERT_EQ(r.snapshot.clusters.size(), 2u) << field;
    EXPECT_EQ(r.snapshot.clusters[0].name, "default/svc:80");
    EXPECT_EQ(r.snapshot.clusters[0].protocol, want) << field;
    // The other port of the same Service keeps HTTP/1.1.
    EXPECT_EQ(r.snapshot.clusters[1].protocol, snapshot::ClusterProtocol::kHttp1) << field;
    snapshot::Snapshot versioned = r.snapshot;
    versioned.version = 1;
    EXPECT_EQ(snapshot::validate(versioned), std::vector<std::string>{}) << field;
  }
}

// A GatewayRoute's requestMirror and defaultBackend refs take `protocol` and
// `tls` as backendRefs do: the mirror's and the default backend's clusters
// speak HTTP/2; a bad value is reported naming the field.
TEST(Translate, GatewayRouteMirrorAndDefaultBackendProtocol) {
  const std::string objects =
      "apiVersion: v1\nkind: Service\nmetadata: {name: svc}\nspec: {ports: [{name: a, port: 80}]}\n"
      "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
      "metadata: {name: svc-1, labels: {kubernetes.io/service-name: svc}}\naddressType: IPv4\n"
      "ports: [{name: a, port: 8080}]\nendpoints: [{addresses: [10.0.0.9]}]\n";
  auto filters = [&](const std::string& mirror, const std::string& fallback) {
    return load(objects + route("r", "  hostnames: [r.example.com]\n  rules: [{backendRefs: [{name: svc, port: 80}], "
                                     "filters: {requestMirror: {backendRef: " + mirror +
                                     "}, defaultBackend: {backendRef: " + fallback + "}}}]"));
  };
  auto describe = [](const TranslateResult& r, const std::string& name) {
    for (const auto& cl : r.snapshot.clusters) {
      if (cl.name != name) continue;
      static const char* kProto[] = {"HTTP1", "H2C", "H2"};
      std::string got = cl.name + " " + kProto[static_cast<int>(cl.protocol)];
      if (cl.tls) got += " tls=" + cl.tls->server_name + (cl.tls->system_ca ? " system" : "");
      return got;
    }
    return std::string("none: ") + name;
  };
  {
    TranslateResult r = translate(filters("{name: svc, port: 80, protocol: grpc}",
                                          "{name: svc, port: 80, protocol: h2, tls: {hostname: api.internal}}"),
                                  {});
    EXPECT_EQ(dump(r.statuses), "GatewayRoute default/r Accepted=True ResolvedRefs=True\n");
    ASSERT_EQ(r.snapshot.routes.size(), 1u);
    const auto& f = r.snapshot.routes[0].rules[0].filters;
    ASSERT_EQ(f.request_mirrors.size(), 1u);
    ASSERT_TRUE(f.default_backend.has_value());
    EXPECT_EQ(describe(r, f.request_mirrors[0].cluster), "default/svc:80/h2c H2C");
    EXPECT_EQ(describe(r, f.default_backend->cluster), "default/svc:80/h2;name=api.internal H2 tls=api.internal system");
    EXPECT_EQ(describe(r, r.snapshot.routes[0].rules[0].backends[0].cluster), "default/svc:80 HTTP1");
    snapshot::Snapshot versioned = r.snapshot;
    versioned.version = 1;
    EXPECT_EQ(snapshot::validate(versioned), std::vector<std::string>{});
  }
  {
    TranslateResult r = translate(filters("{name: svc, port: 80, protocol: http2}",
                                          "{name: svc, port: 80, protocol: h2c, tls: {hostname: a.example}}"),
                                  {});
    EXPECT_EQ(dump(r.statuses), "GatewayRoute default/r Accepted=False(Invalid) ResolvedRefs=True\n");
    const std::string messages = all_messages(r.statuses);
    EXPECT_NE(messages.find("spec.rules[0].filters.requestMirror.backendRef.protocol: \"http2\" is not one of "
                            "h2c, h2, grpc"),
              std::string::npos)
        << messages;
    EXPECT_NE(messages.find("spec.rules[0].filters.defaultBackend.backendRef.tls: needs protocol h2"),
              std::string::npos)
        << messages;
  }
}

// A GatewayRoute backendRef's `protocol` overrides the port's appProtocol
// with a cluster of its own ("...:PORT/h2c", "...:PORT/h2..."); `tls` (with
// h2) chooses the name verified and the CA. A bad value is reported naming the
// field and only its route stops serving.
TEST(Translate, GatewayRouteBackendProtocol) {
  // Service svc: port 80 plain, 81 appProtocol kubernetes.io/h2c.
  const std::string objects = std::string(
      "apiVersion: v1\nkind: Service\nmetadata: {name: svc}\n"
      "spec: {ports: [{name: a, port: 80}, {name: b, port: 81, appProtocol: kubernetes.io/h2c}]}\n"
      "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
      "metadata: {name: svc-1, labels: {kubernetes.io/service-name: svc}}\naddressType: IPv4\n"
      "ports: [{name: a, port: 8080}, {name: b, port: 8081}]\nendpoints: [{addresses: [10.0.0.9]}]\n"
      "---\napiVersion: v1\nkind: Secret\nmetadata: {name: backend-ca}\nstringData:\n  ca.crt: |\n"
      "    -----BEGIN CERTIFICATE-----\n") +
      R"(    MIIBjDCCATOgAwIBAgIUWY1V8aRAWiIxw5uHInwOanEbA50wCgYIKoZIzj0EAwIw
    GzEZMBcGA1UEAwwQc2hvcC5leGFtcGxlLmNvbTAgFw0yNjExMjUxMjI4NDRaGA8y
    MTI2MTEwMTEyMjg0NFowGzEZMBcGA1UEAwwQc2hvcC5leGFtcGxlLmNvbTBZMBMG
    ByqGSM49AgEGCCqGSM49AwEHA0IABEhehFJ3f+Ba1ZeWpMGefvcpC5v+rpp9166h
    /H2ayh9pSVBlb6hvTXLP7jqQFmE42tHTLYoXw1uJvbIUr7uti72jUzBRMB0GA1Ud
    DgQWBBTMpLktQLZQkLCHMmMjVYE0N/ibbTAfBgNVHSMEGDAWgBTMpLktQLZQkLCH
    MmMjVYE0N/ibbTAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0cAMEQCIDIf
    48nCc6e1ZxSxoG4ALheqC5Vl5+jk6D3uAP5uDKjHAiAN2YeBHenngM+FnoLQgLZA
    EJAo9AYYVY5rVF+Q5Txgzw==
    -----END CERTIFICATE-----
---
apiVersion: v1
kind: Secret
metadata: {name: not-a-ca}
stringData: {ca.crt: hello}
)" + route("other", "  hostnames: [other.example.com]\n  rules: [{backendRefs: [{name: svc, port: 80}]}]");
  struct Case {
    const char* backend;  // the route's backendRef, flow style
    std::string cluster;  // the route's cluster: "name PROTOCOL [tls=SERVERNAME ca|system]", "" = none
    std::string status;   // dump() of the route's status
    std::string message;  // a substring of some condition message ("" = none checked)
    bool endpoints = true;
  } cases[] = {
      {"{name: svc, port: 80}", "default/svc:80 HTTP1", "Accepted=True ResolvedRefs=True", ""},
      {"{name: svc, port: 80, protocol: h2c}", "default/svc:80/h2c H2C", "Accepted=True ResolvedRefs=True", ""},
      {"{name: svc, port: 80, protocol: grpc}", "default/svc:80/h2c H2C", "Accepted=True ResolvedRefs=True", ""},
      // The port already says h2c: the same cluster as without the field.
      {"{name: svc, port: 81, protocol: h2c}", "default/svc:81 H2C", "Accepted=True ResolvedRefs=True", ""},
      {"{name: svc, port: 80, protocol: h2}", "default/svc:80/h2 H2 tls=svc.default.svc system",
       "Accepted=True ResolvedRefs=True", ""},
      {"{name: svc, port: 81, protocol: h2}", "default/svc:81/h2 H2 tls=svc.default.svc system",
       "Accepted=True ResolvedRefs=True", ""},
      {"{name: svc, port: 80, protocol: h2, tls: {hostname: api.internal, caSecretRef: {name: backend-ca}}}",
       "default/svc:80/h2;name=api.internal;ca=default/backend-ca:ca.crt H2 tls=api.internal ca",
       "Accepted=True ResolvedRefs=True", ""},
      {"{name: svc, port: 80, protocol: h2, tls: {caSecretRef: {name: backend-ca, key: ca.crt}}}",
       "default/svc:80/h2;ca=default/backend-ca:ca.crt H2 tls=svc.default.svc ca",
       "Accepted=True ResolvedRefs=True", ""},
      // An unusable CA: fail closed, no endpoints (503), never unverified.
      {"{name: svc, port: 80, protocol: h2, tls: {caSecretRef: {name: nope}}}",
       "default/svc:80/h2;ca=default/nope:ca.crt H2 tls=svc.default.svc system",
       "Accepted=True ResolvedRefs=False(SecretNotFound)",
       "spec.rules[0].backendRefs[0].tls.caSecretRef: Secret default/nope not found", false},
      {"{name: svc, port: 80, protocol: h2, tls: {caSecretRef: {name: not-a-ca}}}",
       "default/svc:80/h2;ca=default/not-a-ca:ca.crt H2 tls=svc.default.svc system",
       "Accepted=True ResolvedRefs=False(InvalidSecret)",
       "spec.rules[0].backendRefs[0].tls.caSecretRef: Secret default/not-a-ca key \"ca.crt\"", false},
      {"{name: svc, port: 80, protocol: HTTP2}", "", "Accepted=False(Invalid) ResolvedRefs=True",
       "spec.rules[0].backendRefs[0].protocol: \"HTTP2\" is not one of h2c, h2, grpc"},
      {"{name: svc, port: 80, protocol: H2C}", "", "Accepted=False(Invalid) ResolvedRefs=True",
       "spec.rules[0].backendRefs[0].protocol: \"H2C\" is not one of"},  // case-sensitive
      {"{name: svc, port: 80, protocol: h2c, tls: {hostname: a.example}}", "",
       "Accepted=False(Invalid) ResolvedRefs=True",
       "spec.rules[0].backendRefs[0].tls: needs protocol h2"},
      {"{name: svc, port: 80, tls: {}}", "", "Accepted=False(Invalid) ResolvedRefs=True",
       "spec.rules[0].backendRefs[0].tls: needs protocol h2"},
      {"{name: svc, port: 80, protocol: h2, tls: {hostname: \"not a name\"}}", "",
       "Accepted=False(Invalid) ResolvedRefs=True",
       "spec.rules[0].backendRefs[0].tls.hostname: \"not a name\" is not a DNS name"},
  };
  for (const auto& c : cases) {
    Cache cache = load(objects + route("r", std::string("  hostnames: [r.example.com]\n  rules: [{backendRefs: [") +
                                                c.backend + "]}]"));
    TranslateResult r = translate(cache, {});
    std::string status;
    for (const auto& st : r.statuses)
      if (st.name == "r") status = dump(std::vector<RouteStatus>{st});
    EXPECT_EQ(status, "GatewayRoute default/r " + c.status + "\n") << c.backend;
    if (!c.message.empty()) {
      EXPECT_NE(all_messages(r.statuses).find(c.message), std::string::npos)
          << c.backend << "\n" << all_messages(r.statuses);
    }
    // The other route keeps serving, on the port's own cluster.
    bool other = false, mine = false;
    for (const auto& rt : r.snapshot.routes) {
      if (rt.name == "other") other = true;
      if (rt.name != "r") continue;
      mine = true;
      ASSERT_EQ(rt.rules.size(), 1u);
      ASSERT_EQ(rt.rules[0].backends.size(), 1u);
      std::string got;
      for (const auto& cl : r.snapshot.clusters) {
        if (cl.name != rt.rules[0].backends[0].cluster) continue;
        static const char* kProto[] = {"HTTP1", "H2C", "H2"};
        got = cl.name + " " + kProto[static_cast<int>(cl.protocol)];
        if (cl.tls) {
          got += " tls=" + cl.tls->server_name + (cl.tls->ca_pem.empty() ? "" : " ca") +
                 (cl.tls->system_ca ? " system" : "");
          EXPECT_TRUE(cl.tls->verify) << c.backend;
        }
        EXPECT_EQ(!cl.endpoints.empty(), c.endpoints) << c.backend;
      }
      EXPECT_EQ(got, c.cluster) << c.backend;
    }
    EXPECT_TRUE(other) << c.backend;
    EXPECT_EQ(mine, !c.cluster.empty()) << c.backend;
    snapshot::Snapshot versioned = r.snapshot;
    versioned.version = 1;
    EXPECT_EQ(snapshot::validate(versioned), std::vector<std::string>{}) << c.backend;
  }
}

}  // namespace
}  // namespace gantry::controller
