#!/usr/bin/python3
"""Offline checks of crds/gantry.dev_gatewayroutes.yaml (no cluster needed).

1. identity: group, version, kind, short name, scope, status subresource,
   printer columns;
2. structural schema: every property typed, every list bounded with maxItems,
   every spec string bounded (maxLength or enum), regexes RE2-compatible,
   every CEL rule has a message, defaults valid against their own schema;
3. coverage: every field of GATEWAYROUTE.md and of the controller's decoder
   has a place in the schema, with the documented enums and defaults;
4. the GatewayRoutes of tests/install/testdata/valid/ and manifests/examples/
   validate against the schema (defaults applied, unknown fields rejected);
5. the schema-only cases of testdata/invalid.yaml are rejected offline with
   the API server's message (the CEL cases run in apiserver_test.py).
"""

import glob
import os
import re
import sys

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

t = common.Tally("crd_test")
crd = common.load_crd()
schema = common.crd_schema(crd)

# ------------------------------------------------------------------ 1. identity
spec = crd["spec"]
t.check(crd["apiVersion"] == "apiextensions.k8s.io/v1", "CRD apiVersion is apiextensions.k8s.io/v1")
t.check(crd["metadata"]["name"] == "gatewayroutes.gantry.dev", "CRD name")
t.check(spec["group"] == "gantry.dev", "group gantry.dev")
t.check(spec["scope"] == "Namespaced", "namespaced")
names = spec["names"]
t.check(names["kind"] == "GatewayRoute" and names["plural"] == "gatewayroutes"
        and names["singular"] == "gatewayroute" and names["listKind"] == "GatewayRouteList", "names")
t.check(names.get("shortNames") == ["gr"], "short name gr", str(names.get("shortNames")))
versions = spec["versions"]
t.check([v["name"] for v in versions] == ["v1alpha1"], "one version, v1alpha1")
v = versions[0]
t.check(v["served"] is True and v["storage"] is True, "v1alpha1 served and stored")
t.check(v.get("subresources") == {"status": {}}, "status subresource")
columns = {c["name"]: c for c in v.get("additionalPrinterColumns", [])}
t.check(list(columns) == ["Hostnames", "Accepted", "Programmed", "Age"], "printer columns", str(list(columns)))
t.check(columns.get("Hostnames", {}).get("jsonPath") == ".spec.hostnames", "Hostnames column path")
for cond in ("Accepted", "Programmed"):
    t.check(columns.get(cond, {}).get("jsonPath") == f'.status.conditions[?(@.type=="{cond}")].status',
            f"{cond} column path")
t.check(columns.get("Age", {}).get("type") == "date"
        and columns["Age"].get("jsonPath") == ".metadata.creationTimestamp", "Age column")

# ------------------------------------------------------------------ 2. structural
TYPES = {"object", "array", "string", "integer", "number", "boolean"}
RE2_UNSUPPORTED = re.compile(r"\(\?[=!<]|\\[1-9]")


def walk(node, path, under_spec):
    if not node.get("x-kubernetes-int-or-string"):
        t.check(node.get("type") in TYPES, f"{path}: has a type", str(node.get("type")))
    typ = node.get("type")
    if "x-kubernetes-validations" in node:
        t.check(isinstance(node["x-kubernetes-validations"], list) and node["x-kubernetes-validations"],
                f"{path}: x-kubernetes-validations is a non-empty list")
    for rule in node.get("x-kubernetes-validations") or []:
        t.check(bool(rule.get("rule")) and bool(rule.get("message") or rule.get("messageExpression")),
                f"{path}: CEL rule with a message", str(rule))
    if "pattern" in node:
        try:
            re.compile(node["pattern"])
            ok = not RE2_UNSUPPORTED.search(node["pattern"])
        except re.error:
            ok = False
        t.check(ok, f"{path}: pattern compiles and is RE2-compatible", node["pattern"])
    if "default" in node:
        errs = common.validate(node, node["default"], path)
        t.check(not errs, f"{path}: default is valid", str(errs))
    if typ == "array":
        t.check("items" in node, f"{path}: array has items")
        if under_spec:
            t.check("maxItems" in node, f"{path}: array is bounded (maxItems keeps CEL cost in budget)")
        walk(node.get("items", {}), path + "[]", under_spec)
    if typ == "string" and under_spec:
        t.check("maxLength" in node or "enum" in node or node.get("format") == "date-time",
                f"{path}: string is bounded (maxLength, enum or date-time)")
    if typ == "object":
        props = node.get("properties")
        # A string map (labels) is typed and bounded: additionalProperties with
        # a schema, and maxProperties.
        typed_map = isinstance(node.get("additionalProperties"), dict) and "maxProperties" in node
        if under_spec:
            t.check((props is not None or typed_map) and not node.get("x-kubernetes-preserve-unknown-fields"),
                    f"{path}: object lists its properties or is a bounded typed map (no free-form objects)")
        if typed_map:
            walk(node["additionalProperties"], path + "{}", under_spec)
        for r in node.get("required", []):
            t.check(r in (props or {}), f"{path}: required field {r} is a property")
        for k, sub in (props or {}).items():
            walk(sub, f"{path}.{k}" if path else k, under_spec or k in ("spec", "status"))


walk(schema, "", False)
t.check(schema.get("required") == ["spec"], "spec is required")


# ------------------------------------------------------------------ 3. coverage
def node_at(dotted):
    n = schema
    for part in dotted.split("."):
        while n.get("type") == "array":
            n = n["items"]
        n = n.get("properties", {}).get(part)
        if n is None:
            return None
    return n


FIELDS = """
spec.hostnames spec.tls.secretName
spec.rules.matches.path.type spec.rules.matches.path.value spec.rules.matches.method
spec.rules.matches.headers.type spec.rules.matches.headers.name spec.rules.matches.headers.value
spec.rules.matches.queryParams.type spec.rules.matches.queryParams.name spec.rules.matches.queryParams.value
spec.rules.filters.cors.allowOrigins spec.rules.filters.cors.allowMethods spec.rules.filters.cors.allowHeaders
spec.rules.filters.cors.exposeHeaders spec.rules.filters.cors.allowCredentials spec.rules.filters.cors.maxAge
spec.rules.filters.rateLimit.requests spec.rules.filters.rateLimit.interval spec.rules.filters.rateLimit.burst
spec.rules.filters.rateLimit.algorithm spec.rules.filters.rateLimit.key
spec.rules.filters.maxRequestBodySize
spec.rules.filters.jwt.algorithms spec.rules.filters.jwt.hmacSecretRef.name spec.rules.filters.jwt.hmacSecretRef.key
spec.rules.filters.jwt.jwksSecretRef.name spec.rules.filters.jwt.jwksSecretRef.key spec.rules.filters.jwt.issuer
spec.rules.filters.jwt.audiences spec.rules.filters.jwt.clockSkew
spec.rules.filters.jwt.claimToHeaders.claim spec.rules.filters.jwt.claimToHeaders.header
spec.rules.filters.requestHeaders.set.name spec.rules.filters.requestHeaders.set.value
spec.rules.filters.requestHeaders.add.name spec.rules.filters.requestHeaders.remove
spec.rules.filters.responseHeaders.set.name spec.rules.filters.responseHeaders.add.value
spec.rules.filters.responseHeaders.remove
spec.rules.filters.requestRedirect.scheme spec.rules.filters.requestRedirect.hostname
spec.rules.filters.requestRedirect.port spec.rules.filters.requestRedirect.path.type
spec.rules.filters.requestRedirect.path.replaceFullPath spec.rules.filters.requestRedirect.path.replacePrefixMatch
spec.rules.filters.requestRedirect.statusCode
spec.rules.filters.urlRewrite.hostname spec.rules.filters.urlRewrite.path.type
spec.rules.filters.urlRewrite.path.replaceFullPath spec.rules.filters.urlRewrite.path.replacePrefixMatch
spec.rules.filters.requestMirror.backendRef.name spec.rules.filters.requestMirror.backendRef.port
spec.rules.filters.cache.ttl spec.rules.filters.cache.maxBytes spec.rules.filters.cache.maxObjectBytes
spec.rules.filters.ipAllow spec.rules.filters.ipDeny
spec.rules.filters.apiKey.secretSelector.matchLabels spec.rules.filters.apiKey.header spec.rules.filters.apiKey.queryParam
spec.rules.filters.apiKey.consumerHeader spec.rules.filters.apiKey.unknownKeyStatus
spec.rules.filters.basicAuth.secretRef.name spec.rules.filters.basicAuth.secretRef.key spec.rules.filters.basicAuth.realm
spec.rules.filters.basicAuth.consumerHeader
spec.rules.filters.extAuth.url spec.rules.filters.extAuth.method spec.rules.filters.extAuth.requestHeaders
spec.rules.filters.extAuth.responseHeaders spec.rules.filters.extAuth.signinURL
spec.rules.filters.extAuth.signinRedirectParam spec.rules.filters.extAuth.timeout spec.rules.filters.extAuth.failOpen
spec.rules.filters.extAuth.statusOnError spec.rules.filters.extAuth.cache.ttl spec.rules.filters.extAuth.cache.maxEntries
spec.rules.filters.extAuth.grpc.address spec.rules.filters.extAuth.grpc.backendRef.name
spec.rules.filters.extAuth.grpc.backendRef.namespace spec.rules.filters.extAuth.grpc.backendRef.port
spec.rules.filters.extAuth.grpc.timeout spec.rules.filters.extAuth.grpc.tls
spec.rules.filters.extAuth.caSecretRef.name spec.rules.filters.extAuth.caSecretRef.key
spec.rules.filters.extAuth.withRequestBody.maxBytes spec.rules.filters.extAuth.withRequestBody.allowPartialMessage
spec.rules.backendRefs.group spec.rules.backendRefs.kind spec.rules.backendRefs.name
spec.rules.backendRefs.namespace spec.rules.backendRefs.port spec.rules.backendRefs.weight
spec.rules.policy.loadBalancer.type spec.rules.policy.loadBalancer.consistentHash.type
spec.rules.policy.loadBalancer.consistentHash.header.name spec.rules.policy.loadBalancer.consistentHash.cookie.name
spec.rules.policy.loadBalancer.consistentHash.cookie.ttl spec.rules.policy.loadBalancer.consistentHash.cookie.path
spec.rules.policy.loadBalancer.consistentHash.cookie.domain spec.rules.policy.loadBalancer.consistentHash.cookie.secure
spec.rules.policy.loadBalancer.consistentHash.cookie.sameSite
spec.rules.policy.loadBalancer.consistentHash.cookie.sameSiteNoneIfCompatible
spec.rules.policy.healthCheck.path spec.rules.policy.healthCheck.interval spec.rules.policy.healthCheck.timeout
spec.rules.policy.healthCheck.healthyThreshold spec.rules.policy.healthCheck.unhealthyThreshold
spec.rules.policy.healthCheck.expectedStatuses
spec.rules.policy.outlierDetection.consecutive5xx spec.rules.policy.outlierDetection.consecutiveConnectFailures
spec.rules.policy.outlierDetection.baseEjectionTime spec.rules.policy.outlierDetection.maxEjectionPercent
spec.rules.policy.circuitBreaker.consecutiveFailures spec.rules.policy.circuitBreaker.failureRatio
spec.rules.policy.circuitBreaker.window spec.rules.policy.circuitBreaker.minRequests
spec.rules.policy.circuitBreaker.openDuration spec.rules.policy.circuitBreaker.halfOpenRequests
spec.rules.policy.circuitBreaker.maxConnections spec.rules.policy.circuitBreaker.maxPendingRequests
spec.rules.policy.timeouts.request spec.rules.policy.timeouts.backendRequest spec.rules.policy.timeouts.idle
spec.rules.policy.retry.attempts spec.rules.policy.retry.on spec.rules.policy.retry.perTryTimeout
spec.rules.policy.retry.backoff.base spec.rules.policy.retry.backoff.max
status.observedGeneration status.conditions.type status.conditions.status status.conditions.reason
status.conditions.message status.conditions.lastTransitionTime status.conditions.observedGeneration
""".split()
for f in FIELDS:
    t.check(node_at(f) is not None, f"field {f} is in the schema")

ENUMS = {
    "spec.rules.matches.path.type": ["Exact", "PathPrefix", "RegularExpression"],
    "spec.rules.matches.method": ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"],
    "spec.rules.matches.headers.type": ["Exact", "RegularExpression"],
    "spec.rules.matches.queryParams.type": ["Exact", "RegularExpression"],
    "spec.rules.filters.requestRedirect.statusCode": [301, 302, 303, 307, 308],
    "spec.rules.filters.requestRedirect.scheme": ["http", "https"],
    "spec.rules.filters.rateLimit.algorithm": ["TokenBucket", "SlidingWindow"],
    "spec.rules.filters.jwt.algorithms": ["HS256", "RS256", "ES256"],
    "spec.rules.policy.loadBalancer.type": ["RoundRobin", "LeastRequest", "Random", "ConsistentHash"],
    "spec.rules.filters.urlRewrite.path.type": ["ReplaceFullPath", "ReplacePrefixMatch"],
    "status.conditions.status": ["True", "False", "Unknown"],
}
for f, want in ENUMS.items():
    n = node_at(f) or {}
    if n.get("type") == "array":
        n = n["items"]
    t.check(n.get("enum") == want, f"{f} enum", str(n.get("enum")))

DEFAULTS = {
    "spec.rules.matches.path": {"type": "PathPrefix", "value": "/"},
    "spec.rules.matches.path.type": "PathPrefix",
    "spec.rules.matches.path.value": "/",
    "spec.rules.matches.headers.type": "Exact",
    "spec.rules.matches.queryParams.type": "Exact",
    "spec.rules.backendRefs.weight": 1,
    "spec.rules.backendRefs.kind": "Service",
    "spec.rules.filters.requestRedirect.statusCode": 302,
    "spec.rules.filters.rateLimit.algorithm": "TokenBucket",
    "spec.rules.filters.rateLimit.key": "ClientIP",
    "spec.rules.policy.loadBalancer.type": "RoundRobin",
}
for f, want in DEFAULTS.items():
    t.check((node_at(f) or {}).get("default") == want, f"{f} default {want!r}")

w = node_at("spec.rules.backendRefs.weight") or {}
t.check(w.get("minimum") == 0 and w.get("maximum") == 1000000, "weight range 0..1000000")
conds = node_at("status.conditions") or {}
t.check(conds.get("x-kubernetes-list-type") == "map" and conds.get("x-kubernetes-list-map-keys") == ["type"],
        "conditions are a list-map keyed by type (metav1.Condition)")
t.check(set(conds.get("items", {}).get("required", [])) ==
        {"type", "status", "lastTransitionTime", "reason", "message"}, "condition required fields")

# Regex behaviour of the shared patterns, table-driven.
PATTERNS = [
    ("spec.rules.policy.timeouts.request", ["15s", "250ms", "1.5s", "2m", "1h", "0s"],
     ["15", "1m30s", "15 s", "-1s", "1d", "s"]),
    ("spec.rules.filters.maxRequestBodySize", ["1Mi", "512Ki", "1048576", "2Gi", "10M"],
     ["1MB", "1.5Mi", "Mi", "-1", "1 Mi"]),
    ("spec.rules.filters.rateLimit.key", ["ClientIP", "Header:x-api-key", "Header:X-Real-IP"],
     ["clientip", "Header:", "Header:a b", "Cookie:x", "IP"]),
    ("spec.hostnames", ["a.example.com", "*.example.com", "localhost", "x-1.y"],
     ["*", "*.", "a.*.com", "-a.com", "a_b.com", "a.com:80", "a..com"]),
    ("spec.rules.policy.retry.on", ["connect-failure", "reset", "gateway-error", "503", "429"],
     ["timeout", "5xx", "600", "99", ""]),
]
for f, good, bad in PATTERNS:
    n = node_at(f) or {}
    if n.get("type") == "array":
        n = n["items"]
    for g in good:
        t.check(not common.validate(n, g, f), f"{f} accepts {g!r}")
    for b in bad:
        t.check(bool(common.validate(n, b, f)), f"{f} rejects {b!r}")

# ------------------------------------------------------------------ 4. valid objects
valid = []
for path in sorted(glob.glob(os.path.join(common.TESTDATA, "valid", "*.yaml"))):
    for doc in common.load_all(path):
        valid.append((os.path.relpath(path, common.ROOT), doc))
examples = common.example_gateway_routes()
if not examples:
    print(f"note: no GatewayRoute under {os.path.relpath(common.EXAMPLES_DIR, common.ROOT)}/ yet")
for where, doc in valid + examples:
    name = (doc.get("metadata") or {}).get("name")
    errs = common.validate_object(doc, schema)
    t.check(not errs, f"{where} ({name}) validates against the CRD schema", "; ".join(errs))

# ------------------------------------------------------------------ 5. invalid objects
with open(os.path.join(common.TESTDATA, "invalid.yaml")) as f:
    cases = yaml.safe_load(f)
t.check(len(cases) >= 20, "at least 20 invalid cases", str(len(cases)))
t.check(len({c["name"] for c in cases}) == len(cases), "invalid case names are unique")
for c in cases:
    doc = {"apiVersion": "gantry.dev/v1alpha1", "kind": "GatewayRoute",
           "metadata": {"name": c["name"], "namespace": "default"}, "spec": c["spec"]}
    errs = common.validate_object(doc, schema)
    if c["local"]:
        t.check(any(c["message"] in e for e in errs), f"invalid/{c['name']} rejected offline with "
                f"{c['message']!r}", "; ".join(errs) or "accepted")
    else:
        # A CEL-only case must pass the OpenAPI part, so that the API server's
        # rejection in apiserver_test.py is the CEL rule's doing.
        t.check(not errs, f"invalid/{c['name']} passes the OpenAPI schema (its rule is CEL)", "; ".join(errs))

t.finish()
