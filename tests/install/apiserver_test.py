#!/usr/bin/python3
"""Install tests against a real kube-apiserver + etcd on loopback.

Starts a throw-away control plane with hack/testbin/start-control-plane.sh, then:
1. `helm install` creates the CRD, which must become Established with no structural or
   CEL-cost complaint; `kubectl apply` of crds/ over it works;
2. every GatewayRoute of tests/install/testdata/valid/ and every object of
   manifests/examples/ is accepted (`kubectl apply --dry-run=server`);
3. a stored GatewayRoute gets the CRD's defaults; status is a subresource; the
   printer columns and the short name `gr` work;
4. every case of tests/install/testdata/invalid.yaml is rejected with its message;
5. `helm template | kubectl apply --dry-run=server` (default and non-default
   values) and manifests/install.yaml are accepted; `helm install` of the chart
   works (it is the first step, and creates the CRD), cluster-wide and restricted
   to one namespace, and `helm upgrade` too;
6. RBAC as the chart's ServiceAccount, authenticated by a TokenRequest token
   (`kubectl create token`): `kubectl auth can-i` for everything the controller
   needs (yes) and what it must not do (no), then real requests.
The control plane is stopped at the end, pass or fail (GANTRY_KEEP_CLUSTER=1 keeps it).
GANTRY_START_CONTROL_PLANE overrides the path of start-control-plane.sh (for debugging it).
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

helm = common.require_tool("helm")
bin_dir = os.path.dirname(helm)
for tool in ("etcd", "kube-apiserver"):
    common.require_tool(tool)
kubectl = shutil.which("kubectl")
if not kubectl:
    common.skip_or_fail("kubectl not found: run hack/install-deps.sh")
start_script = os.environ.get("GANTRY_START_CONTROL_PLANE",
                              os.path.join(common.ROOT, "hack", "testbin", "start-control-plane.sh"))
if not os.path.exists(start_script):
    common.skip_or_fail(f"{os.path.relpath(start_script, common.ROOT)} does not exist")

t = common.Tally("apiserver_test")
CRD_NAME = "gatewayroutes.gantry.dev"
work = tempfile.mkdtemp(prefix="gantry-install-test-")
kc = None


def k(*args, input=None, config=None, timeout=120):
    return common.run([kubectl, "--kubeconfig", config or kc, *args], input=input, timeout=timeout)


def h(*args):
    return common.run([helm, "--kubeconfig", kc, *args], timeout=300)


def gr(name, spec, ns="default"):
    return {"apiVersion": "gantry.dev/v1alpha1", "kind": "GatewayRoute",
            "metadata": {"name": name, "namespace": ns}, "spec": spec}


def out(p):
    return (p.stdout + p.stderr).strip()


def can_i(config, verb, resource, ns=None, sub=None):
    args = ["auth", "can-i", verb, resource]
    args += ["-n", ns] if ns else ["--all-namespaces"]
    if sub:
        args += ["--subresource", sub]
    p = k(*args, config=config)
    return p.stdout.strip()


def sa_kubeconfig(ns, sa):
    """A kubeconfig authenticating as ns/sa with a TokenRequest token."""
    p = k("create", "token", sa, "-n", ns, "--duration", "10m")
    t.check(p.returncode == 0 and p.stdout.strip(), f"kubectl create token {ns}/{sa}", out(p))
    with open(kc) as f:
        admin = yaml.safe_load(f)
    cfg = {"apiVersion": "v1", "kind": "Config",
           "clusters": admin["clusters"],
           "users": [{"name": sa, "user": {"token": p.stdout.strip()}}],
           "contexts": [{"name": sa, "context": {"cluster": admin["clusters"][0]["name"], "user": sa}}],
           "current-context": sa}
    path = os.path.join(work, f"{ns}-{sa}.kubeconfig")
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f)
    os.chmod(path, 0o600)
    return path


def raw_patch(config, path, body, content_type="application/merge-patch+json", method="PATCH"):
    """A merge PATCH (or a server-side apply) as the controller sends it, with the kubeconfig's token and CA."""
    import ssl
    import urllib.error
    import urllib.request
    with open(config) as f:
        cfg = yaml.safe_load(f)
    cluster = cfg["clusters"][0]["cluster"]
    ctx = ssl.create_default_context()
    if cluster.get("certificate-authority"):
        ctx.load_verify_locations(cafile=cluster["certificate-authority"])
    elif cluster.get("certificate-authority-data"):
        import base64
        ctx.load_verify_locations(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
    req = urllib.request.Request(cluster["server"] + path, data=None if body is None else json.dumps(body).encode(),
                                 method=method,
                                 headers={"Content-Type": content_type,
                                          "Authorization": "Bearer " + cfg["users"][0]["user"]["token"]})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=30) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def main():
    global kc
    p = common.run(["bash", start_script, "--bin-dir", bin_dir, work], timeout=300)
    if p.returncode != 0:
        t.check(False, "control plane starts", out(p)[-3000:])
        return
    kc = p.stdout.strip().splitlines()[-1]

    # ---------------------------------------------------------------- namespaces
    namespaces = {"gantry-system", "team-a", "team-b"}
    example_files = sorted(
        os.path.join(dp, f) for dp, _, fs in os.walk(common.EXAMPLES_DIR) for f in fs if f.endswith((".yaml", ".yml")))
    for path in example_files:
        for d in common.load_all(path):
            ns = (d.get("metadata") or {}).get("namespace") if isinstance(d, dict) else None
            if ns:
                namespaces.add(ns)
    for ns in sorted(namespaces - {"default"}):
        k("create", "namespace", ns)
    # ---------------------------------------------------------------- 5a. chart dry runs
    # First, while nothing of the chart exists (an apply over helm's objects would merge with them).
    chart = common.CHART_DIR
    variants = [
        ("default values", []),
        ("non-default values", ["--set", "proxy.https.enabled=true", "--set", "service.type=NodePort",
                                "--set", "service.externalTrafficPolicy=Local", "--set", "autoscaling.enabled=true",
                                "--set", "controller.watchNamespace=team-a", "--set", "ingressClass.default=true",
                                "--set", "podDisruptionBudget.minAvailable=1",
                                "--set", "networkPolicy.enabled=true"]),
    ]
    for what, args in variants:
        r = common.run([helm, "template", "gantry", chart, "-n", "gantry-system", "--kube-version", "1.33.0", *args])
        t.check(r.returncode == 0, f"helm template ({what})", r.stderr)
        p = k("apply", "--dry-run=server", "-f", "-", input=r.stdout)
        t.check(p.returncode == 0, f"rendered chart ({what}) is accepted by the API server", out(p)[-2000:])
    p = k("apply", "--dry-run=server", "-f", os.path.join(common.ROOT, "manifests", "install.yaml"))
    t.check(p.returncode == 0, "manifests/install.yaml is accepted by the API server", out(p)[-2000:])

    # ---------------------------------------------------------------- 1. helm install creates the CRD
    p = h("install", "gantry", common.CHART_DIR, "-n", "gantry-system")
    t.check(p.returncode == 0, "helm install gantry", out(p)[-2000:])
    notes = p.stdout.split("NOTES:", 1)[-1]
    for needle in ("rollout status deployment/gantry", "kind: GatewayRoute", "kubectl get gr",
                   "/metrics on port 9901", "/metrics on port 9902", "service/gantry-metrics 9901",
                   "gantry-system/gantry-dashboard"):
        t.check(needle in notes, f"helm install prints NOTES mentioning {needle!r}", notes[:300])
    for obj in ("deployment/gantry", "service/gantry", "service/gantry-metrics", "serviceaccount/gantry",
                "role/gantry-leader-election", "poddisruptionbudget/gantry", "configmap/gantry-dashboard"):
        t.check(k("get", obj, "-n", "gantry-system").returncode == 0, f"helm installed {obj}")
    for obj in ("clusterrole/gantry", "clusterrolebinding/gantry", "ingressclass/gantry"):
        t.check(k("get", obj).returncode == 0, f"helm installed {obj}")
    p = k("wait", "--for", "condition=Established", "--timeout", "60s", f"crd/{CRD_NAME}")
    t.check(p.returncode == 0, "the CRD helm installed becomes Established", out(p))
    p = k("apply", "--server-side", "-f", common.CRD_PATH)
    t.check(p.returncode == 0, "crds/gantry.dev_gatewayroutes.yaml applies over it (the upgrade path)", out(p))
    crd = json.loads(k("get", "crd", CRD_NAME, "-o", "json").stdout or "{}")
    conds = {c["type"]: c for c in crd.get("status", {}).get("conditions", [])}
    t.check(conds.get("NamesAccepted", {}).get("status") == "True", "CRD names accepted")
    t.check("NonStructuralSchema" not in conds, "schema is structural", str(conds.get("NonStructuralSchema")))

    # ---------------------------------------------------------------- 2. valid objects
    valid_dir = os.path.join(common.TESTDATA, "valid")
    for name in sorted(os.listdir(valid_dir)):
        p = k("apply", "--dry-run=server", "-f", os.path.join(valid_dir, name))
        t.check(p.returncode == 0, f"testdata/valid/{name} is accepted", out(p))
    # Routes only: the examples also hold standalone-mode EndpointSlices whose
    # loopback addresses a real API server refuses by design.
    examples = common.example_gateway_routes()
    if not examples:
        print("note: manifests/examples/ has no GatewayRoute yet")
    for where, doc in examples:
        p = k("apply", "--dry-run=server", "-f", "-", input=json.dumps(doc))
        t.check(p.returncode == 0, f"{where}: GatewayRoute {doc['metadata'].get('name')} is accepted", out(p))

    # ---------------------------------------------------------------- 3. defaults, status, columns
    p = k("apply", "-f", os.path.join(valid_dir, "kitchen-sink.yaml"))
    t.check(p.returncode == 0, "kitchen-sink is created", out(p))
    obj = json.loads(k("get", "gatewayroute", "kitchen-sink", "-n", "default", "-o", "json").stdout or "{}")
    rules = obj.get("spec", {}).get("rules", [{}] * 6)
    DEFAULTS = [
        ("matches[1].path.type", rules[0]["matches"][1]["path"].get("type"), "PathPrefix"),
        ("headers[0].type", rules[0]["matches"][0]["headers"][0].get("type"), "Exact"),
        ("queryParams[0].type", rules[0]["matches"][0]["queryParams"][0].get("type"), "Exact"),
        ("backendRefs[0].kind", rules[0]["backendRefs"][0].get("kind"), "Service"),
        ("backendRefs[0].group", rules[0]["backendRefs"][0].get("group"), ""),
        ("weight of a ref without one", rules[3]["backendRefs"][0].get("weight"), 1),
        ("redirect statusCode", rules[2]["filters"]["requestRedirect"].get("statusCode"), 302),
        ("path of a match without one", rules[5]["matches"][0].get("path"), {"type": "PathPrefix", "value": "/"}),
        ("rateLimit algorithm", rules[4]["filters"]["rateLimit"].get("algorithm"), "TokenBucket"),
        ("rateLimit key", rules[4]["filters"]["rateLimit"].get("key"), "ClientIP"),
    ]
    for what, got, want in DEFAULTS:
        t.check(got == want, f"default applied: {what} = {want!r}", repr(got))
    status = {"status": {"observedGeneration": 1, "conditions": [
        {"type": "Accepted", "status": "True", "reason": "Accepted", "message": "ok",
         "lastTransitionTime": "2024-01-01T00:00:00Z", "observedGeneration": 1},
        {"type": "Programmed", "status": "False", "reason": "Pending", "message": "waiting for proxies",
         "lastTransitionTime": "2024-01-01T00:00:00Z", "observedGeneration": 1}]}}
    p = k("patch", "gr", "kitchen-sink", "-n", "default", "--type=merge", "-p",
          json.dumps({"status": {"observedGeneration": 99}}))
    obj = json.loads(k("get", "gr", "kitchen-sink", "-n", "default", "-o", "json").stdout or "{}")
    t.check("status" not in obj or obj["status"].get("observedGeneration") != 99,
            "status written through the main resource is ignored (status is a subresource)", str(obj.get("status")))
    p = k("patch", "gr", "kitchen-sink", "-n", "default", "--subresource=status", "--type=merge", "-p",
          json.dumps(status))
    t.check(p.returncode == 0, "status written through the status subresource", out(p))
    p = k("get", "gr", "-n", "default")
    lines = p.stdout.splitlines()
    t.check(p.returncode == 0 and lines and lines[0].split() == ["NAME", "HOSTNAMES", "ACCEPTED", "PROGRAMMED", "AGE"],
            "kubectl get gr: printer columns", out(p))
    row = next((l.split() for l in lines[1:] if l.startswith("kitchen-sink")), [])
    t.check(len(row) >= 4 and row[-3:-1] == ["True", "False"] and "api.example.com" in row[1],
            "kubectl get gr shows hostnames, Accepted, Programmed", str(row))
    bad_status = json.loads(json.dumps(status))
    bad_status["status"]["conditions"][0]["status"] = "Maybe"
    p = k("patch", "gr", "kitchen-sink", "-n", "default", "--subresource=status", "--type=merge", "-p",
          json.dumps(bad_status))
    t.check(p.returncode != 0 and 'Unsupported value: "Maybe"' in out(p), "status conditions are validated", out(p))

    # ---------------------------------------------------------------- 4. invalid objects
    with open(os.path.join(common.TESTDATA, "invalid.yaml")) as f:
        cases = yaml.safe_load(f)
    for c in cases:
        p = k("apply", "--dry-run=server", "-f", "-", input=json.dumps(gr(c["name"], c["spec"])))
        t.check(p.returncode != 0 and c["message"] in out(p),
                f"invalid/{c['name']} rejected with {c['message']!r}", out(p)[:600])
    # YAML 1.1 pitfall kept visible: kubectl reads an unquoted `on:` key as `true`.
    unquoted = ("apiVersion: gantry.dev/v1alpha1\nkind: GatewayRoute\nmetadata: {name: unquoted-on, namespace: default}\n"
                "spec:\n  rules:\n  - backendRefs: [{name: a, port: 80}]\n"
                "    policy: {retry: {attempts: 2, on: [reset]}}\n")
    p = k("apply", "--dry-run=server", "-f", "-", input=unquoted)
    t.check(p.returncode != 0 and "unknown field" in out(p),
            "an unquoted `on:` key is rejected as an unknown field (quote it: \"on\")", out(p))
    p = k("apply", "--dry-run=server", "-f", "-", input=unquoted.replace(" on:", ' "on":'))
    t.check(p.returncode == 0, "a quoted \"on\": key is accepted", out(p))

    # ---------------------------------------------------------------- 5b. more releases
    chart = common.CHART_DIR
    p = h("install", "scoped", chart, "-n", "scoped-system", "--create-namespace",
          "--set", "controller.watchNamespace=team-a", "--set", "ingressClass.enabled=false")
    t.check(p.returncode == 0, "helm install scoped (watchNamespace=team-a)", out(p)[-2000:])
    p = h("upgrade", "gantry", chart, "-n", "gantry-system", "--set", "proxy.https.enabled=true")
    t.check(p.returncode == 0, "helm upgrade with HTTPS", out(p)[-2000:])
    svc = json.loads(k("get", "service", "gantry", "-n", "gantry-system", "-o", "json").stdout or "{}")
    t.check(sorted(p_["port"] for p_ in svc.get("spec", {}).get("ports", [])) == [80, 443],
            "after the upgrade the Service serves 80 and 443")

    # ---------------------------------------------------------------- 6. RBAC
    sa = sa_kubeconfig("gantry-system", "gantry")
    YES = [
        ("list", "services", None, None), ("watch", "services", None, None),
        ("list", "secrets", None, None), ("watch", "secrets", None, None),
        ("list", "endpointslices.discovery.k8s.io", None, None),
        ("watch", "endpointslices.discovery.k8s.io", None, None),
        ("list", "gatewayroutes.gantry.dev", None, None), ("watch", "gatewayroutes.gantry.dev", None, None),
        ("list", "ingresses.networking.k8s.io", None, None), ("watch", "ingresses.networking.k8s.io", None, None),
        ("list", "ingressclasses.networking.k8s.io", None, None),
        ("patch", "gatewayroutes.gantry.dev", "default", "status"),
        ("patch", "ingresses.networking.k8s.io", "default", "status"),
        ("list", "configmaps/gantry-hostname-owners", "gantry-system", None),
        ("watch", "configmaps/gantry-hostname-owners", "gantry-system", None),
        ("create", "events", "default", None), ("create", "events.events.k8s.io", "team-a", None),
        ("get", "leases.coordination.k8s.io", "gantry-system", None),
        ("create", "leases.coordination.k8s.io", "gantry-system", None),
        ("update", "leases.coordination.k8s.io", "gantry-system", None),
    ]
    NO = [
        ("create", "pods", "default", None), ("list", "pods", None, None), ("create", "deployments.apps", "default", None),
        # The narrowed verbs: no plain get of what it lists, no update of status.
        ("get", "services", "default", None), ("get", "secrets", "default", None),
        ("get", "gatewayroutes.gantry.dev", "default", None),
        ("get", "endpointslices.discovery.k8s.io", "default", None),
        ("update", "gatewayroutes.gantry.dev", "default", "status"),
        ("update", "ingresses.networking.k8s.io", "default", "status"),
        ("list", "configmaps", "gantry-system", None), ("get", "configmaps/gantry-hostname-owners", "gantry-system", None),
        ("delete", "services", "default", None), ("update", "services", "default", None),
        ("create", "services", "default", None),
        ("create", "secrets", "default", None), ("update", "secrets", "default", None),
        ("delete", "secrets", "default", None),
        ("create", "gatewayroutes.gantry.dev", "default", None),
        ("update", "gatewayroutes.gantry.dev", "default", None),
        ("patch", "gatewayroutes.gantry.dev", "default", None),
        ("delete", "gatewayroutes.gantry.dev", "default", None),
        ("update", "ingresses.networking.k8s.io", "default", None),
        ("delete", "ingresses.networking.k8s.io", "default", None),
        ("update", "endpointslices.discovery.k8s.io", "default", None),
        ("create", "ingressclasses.networking.k8s.io", None, None),
        ("create", "leases.coordination.k8s.io", "default", None),
        ("delete", "leases.coordination.k8s.io", "gantry-system", None),
        ("list", "configmaps", None, None), ("get", "nodes", None, None), ("list", "namespaces", None, None),
        ("get", "customresourcedefinitions.apiextensions.k8s.io", None, None),
        ("create", "clusterrolebindings.rbac.authorization.k8s.io", None, None),
        ("create", "serviceaccounts", "gantry-system", "token"),
        ("impersonate", "users", None, None), ("patch", "events", "default", None),
    ]
    for verb, res, ns, sub in YES:
        got = can_i(sa, verb, res, ns, sub)
        t.check(got == "yes", f"gantry SA can {verb} {res}{'/' + sub if sub else ''} in {ns or 'all namespaces'}", got)
    for verb, res, ns, sub in NO:
        got = can_i(sa, verb, res, ns, sub)
        t.check(got == "no", f"gantry SA cannot {verb} {res}{'/' + sub if sub else ''} in {ns or 'all namespaces'}", got)

    STATUS_URL = "/apis/gantry.dev/v1alpha1/namespaces/default/gatewayroutes/kitchen-sink/status"
    with_status = json.loads(k("get", "gr", "kitchen-sink", "-n", "default", "-o", "json").stdout or "{}")
    with_status["status"] = dict(status["status"], observedGeneration=2)
    REAL = [
        ("lists GatewayRoutes everywhere", True, ["get", "gatewayroutes", "-A"], None),
        ("lists Secrets everywhere", True, ["get", "secrets", "-A"], None),
        ("lists EndpointSlices everywhere", True, ["get", "endpointslices", "-A"], None),
        ("lists IngressClasses", True, ["get", "ingressclasses"], None),
        # A PUT to /status is no longer granted: the controller merge-PATCHes (below).
        ("cannot replace GatewayRoute status", False, ["replace", "--raw", STATUS_URL, "-f", "-"], with_status),
        ("lists only TLS Secrets, by field selector", True,
         ["get", "secrets", "-A", "--field-selector", "type=kubernetes.io/tls"], None),
        ("lists one Secret by name", True, ["get", "secrets", "-n", "default", "--field-selector",
                                            "metadata.name=jwt-key"], None),
        ("cannot get a Secret", False, ["get", "secret", "jwt-key", "-n", "default"], None),
        ("lists its hostname-owners ConfigMap by name", True,
         ["get", "configmaps", "-n", "gantry-system", "--field-selector", "metadata.name=gantry-hostname-owners"],
         None),
        ("cannot list other ConfigMaps", False,
         ["get", "configmaps", "-n", "gantry-system", "--field-selector", "metadata.name=kube-root-ca.crt"], None),
        ("creates its Lease", True, ["create", "-f", "-"], {
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "gantry-leader", "namespace": "gantry-system"},
            "spec": {"holderIdentity": "gantry-0", "leaseDurationSeconds": 15}}),
        ("creates an Event", True, ["create", "-f", "-"], {
            "apiVersion": "v1", "kind": "Event", "metadata": {"name": "kitchen-sink.test", "namespace": "default"},
            "involvedObject": {"apiVersion": "gantry.dev/v1alpha1", "kind": "GatewayRoute",
                               "name": "kitchen-sink", "namespace": "default"},
            "reason": "Programmed", "message": "acked by the proxies", "type": "Normal"}),
        ("cannot change a GatewayRoute's spec", False, ["patch", "gr", "kitchen-sink", "-n", "default",
                                                        "--type=merge", "-p", '{"spec":{"hostnames":["x.example.com"]}}'],
         None),
        ("cannot delete a Service", False, ["delete", "service", "kubernetes", "-n", "default"], None),
        ("cannot create a Pod", False, ["create", "-f", "-"], {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "evil", "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
        ("cannot create a Lease outside its namespace", False, ["create", "-f", "-"], {
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "gantry-leader", "namespace": "default"}, "spec": {}}),
        ("cannot read ConfigMaps", False, ["get", "configmaps", "-n", "gantry-system"], None),
    ]
    for what, ok, args, body in REAL:
        p = k(*args, config=sa, input=json.dumps(body) if body else None)
        if ok:
            t.check(p.returncode == 0, f"as the gantry SA: {what}", out(p))
        else:
            t.check(p.returncode != 0 and "forbidden" in out(p).lower(), f"as the gantry SA: {what} (Forbidden)",
                    out(p))

    # As the controller writes it: a merge PATCH of /status with the SA's token, no GET first.
    code, body = raw_patch(sa, STATUS_URL, {"status": with_status["status"]})
    t.check(code == 200, "as the gantry SA: merge-patches GatewayRoute status", f"{code} {body[:300]}")
    got = json.loads(k("get", "gr", "kitchen-sink", "-n", "default", "-o", "json").stdout or "{}")
    t.check(got.get("status", {}).get("observedGeneration") == 2, "the SA's status patch landed",
            str(got.get("status")))
    p = k("patch", "gr", "kitchen-sink", "-n", "default", "--subresource=status", "--type=merge",
          "-p", json.dumps(status), config=sa)
    t.check(p.returncode != 0 and "forbidden" in out(p).lower(),
            "as the gantry SA: no get on gatewayroutes/status (kubectl patch needs it; the controller does not)",
            out(p))

    scoped = sa_kubeconfig("scoped-system", "scoped-gantry")
    SCOPED = [
        ("list", "gatewayroutes.gantry.dev", "team-a", None, "yes"),
        ("list", "gatewayroutes.gantry.dev", "team-b", None, "no"),
        ("list", "gatewayroutes.gantry.dev", None, None, "no"),
        ("list", "secrets", "team-a", None, "yes"),
        ("list", "secrets", "team-b", None, "no"),
        ("list", "secrets", None, None, "no"),
        ("watch", "endpointslices.discovery.k8s.io", "team-a", None, "yes"),
        ("watch", "endpointslices.discovery.k8s.io", "default", None, "no"),
        ("patch", "gatewayroutes.gantry.dev", "team-a", "status", "yes"),
        ("patch", "gatewayroutes.gantry.dev", "team-b", "status", "no"),
        ("list", "ingressclasses.networking.k8s.io", None, None, "yes"),
        ("create", "leases.coordination.k8s.io", "scoped-system", None, "yes"),
        ("create", "leases.coordination.k8s.io", "gantry-system", None, "no"),
    ]
    for verb, res, ns, sub, want in SCOPED:
        got = can_i(scoped, verb, res, ns, sub)
        t.check(got == want, f"scoped SA {verb} {res}{'/' + sub if sub else ''} in {ns or 'all namespaces'}: {want}",
                got)
    p = k("get", "secrets", "-n", "team-b", config=scoped)
    t.check(p.returncode != 0 and "forbidden" in out(p).lower(), "scoped SA: reading team-b's Secrets is Forbidden",
            out(p))
    p = k("get", "gr", "-n", "team-a", config=scoped)
    t.check(p.returncode == 0, "scoped SA: lists team-a's GatewayRoutes", out(p))

    # ---------------------------------------------------------------- 7. Gateway API release
    # gatewayAPI.enabled with installCRDs: the CRDs (the subchart's crds/) come first,
    # then the GatewayClass in the same install; the RBAC proven with the SA's token.
    p = h("install", "edge", chart, "-n", "edge-system", "--create-namespace", "--set", "ingressClass.enabled=false",
          "--set", "gatewayAPI.enabled=true", "--set", "gatewayAPI.installCRDs=true")
    t.check(p.returncode == 0, "helm install edge (gatewayAPI.enabled, installCRDs)", out(p)[-2000:])
    for crd in ("gatewayclasses", "gateways", "httproutes", "grpcroutes", "referencegrants", "backendtlspolicies",
                "listenersets"):
        p = k("wait", "--for", "condition=Established", "--timeout", "60s",
              f"crd/{crd}.gateway.networking.k8s.io")
        t.check(p.returncode == 0, f"the chart installed the {crd} CRD, Established", out(p))
    gc = json.loads(k("get", "gatewayclass", "gantry", "-o", "json").stdout or "{}")
    t.check(gc.get("spec", {}).get("controllerName") == "gantry.dev/gateway-controller",
            "the chart created the GatewayClass", str(gc)[:300])
    edge = sa_kubeconfig("edge-system", "edge-gantry")
    GW_YES = [(v, r, None, None) for v in ("list", "watch") for r in (
        "gatewayclasses.gateway.networking.k8s.io", "gateways.gateway.networking.k8s.io",
        "listenersets.gateway.networking.k8s.io", "httproutes.gateway.networking.k8s.io",
        "grpcroutes.gateway.networking.k8s.io", "referencegrants.gateway.networking.k8s.io",
        "backendtlspolicies.gateway.networking.k8s.io", "namespaces", "configmaps")]
    GW_YES += [("patch", r, "team-a", "status") for r in (
        "gateways.gateway.networking.k8s.io", "httproutes.gateway.networking.k8s.io",
        "grpcroutes.gateway.networking.k8s.io", "listenersets.gateway.networking.k8s.io",
        "backendtlspolicies.gateway.networking.k8s.io")]
    GW_YES += [("patch", "gatewayclasses.gateway.networking.k8s.io", None, "status")]
    GW_YES += [(v, r, "team-a", None) for v in ("create", "patch", "delete")
               for r in ("services", "endpointslices.discovery.k8s.io")]
    GW_NO = [("update", "services", "team-a", None), ("get", "services", "team-a", None),
             ("update", "gateways.gateway.networking.k8s.io", "team-a", None),
             ("patch", "gateways.gateway.networking.k8s.io", "team-a", None),
             ("delete", "httproutes.gateway.networking.k8s.io", "team-a", None),
             ("create", "gatewayclasses.gateway.networking.k8s.io", None, None),
             ("patch", "services", "team-a", "status"), ("create", "pods", "team-a", None)]
    for verb, res, ns, sub in GW_YES:
        got = can_i(edge, verb, res, ns, sub)
        t.check(got == "yes", f"edge SA can {verb} {res}{'/' + sub if sub else ''} in {ns or 'all namespaces'}", got)
    for verb, res, ns, sub in GW_NO:
        got = can_i(edge, verb, res, ns, sub)
        t.check(got == "no", f"edge SA cannot {verb} {res}{'/' + sub if sub else ''} in {ns or 'all namespaces'}",
                got)
    # As the controller writes a Gateway's Service: a server-side apply creates it, a DELETE removes it.
    svc_path = "/api/v1/namespaces/team-a/services/gantry-gw"
    body = {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "gantry-gw", "namespace": "team-a",
                         "labels": {"gateway.networking.k8s.io/gateway-name": "gw",
                                    "app.kubernetes.io/managed-by": "gantry-gateway"}},
            "spec": {"type": "ClusterIP", "ports": [{"name": "http-80", "protocol": "TCP", "port": 80,
                                                      "targetPort": 20001}]}}
    code, text = raw_patch(edge, svc_path + "?fieldManager=gantry-controller&force=true", body,
                           "application/apply-patch+yaml")
    t.check(code == 201, "as the edge SA: a server-side apply creates a Gateway's Service", f"{code} {text[:300]}")
    slice_body = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                  "metadata": {"name": "gantry-gw", "namespace": "team-a",
                               "labels": {"kubernetes.io/service-name": "gantry-gw",
                                          "endpointslice.kubernetes.io/managed-by": "gantry-controller"}},
                  "addressType": "IPv4", "ports": [{"name": "http-80", "protocol": "TCP", "port": 20001}],
                  "endpoints": [{"addresses": ["10.244.0.5"], "conditions": {"ready": True}}]}
    code, text = raw_patch(edge, "/apis/discovery.k8s.io/v1/namespaces/team-a/endpointslices/gantry-gw"
                           "?fieldManager=gantry-controller&force=true", slice_body, "application/apply-patch+yaml")
    t.check(code == 201, "as the edge SA: a server-side apply creates its EndpointSlice", f"{code} {text[:300]}")
    body["spec"]["ports"][0]["targetPort"] = 20002
    code, text = raw_patch(edge, svc_path + "?fieldManager=gantry-controller&force=true", body,
                           "application/apply-patch+yaml")
    t.check(code == 200, "as the edge SA: a server-side apply updates it", f"{code} {text[:300]}")
    code, text = raw_patch(edge, svc_path, None, method="DELETE")
    t.check(code == 200, "as the edge SA: deletes it", f"{code} {text[:300]}")
    p = h("uninstall", "edge", "-n", "edge-system")
    t.check(p.returncode == 0, "helm uninstall edge", out(p))

    p = h("uninstall", "scoped", "-n", "scoped-system")
    t.check(p.returncode == 0, "helm uninstall scoped", out(p))
    t.check(k("get", "clusterrole", "scoped-gantry").returncode != 0, "uninstall removes the ClusterRole")
    t.check(k("get", "crd", CRD_NAME).returncode == 0, "uninstall keeps the CRD (Helm never deletes crds/)")


try:
    main()
except (subprocess.TimeoutExpired, OSError, RuntimeError, KeyError, IndexError, ValueError) as e:
    t.check(False, "test ran to the end", f"{type(e).__name__}: {e}")
finally:
    if os.environ.get("GANTRY_KEEP_CLUSTER") == "1" and kc:
        print(f"control plane kept: KUBECONFIG={kc}; stop: {start_script} stop {work}")
    else:
        common.run(["bash", start_script, "stop", work], timeout=120)
        shutil.rmtree(work, ignore_errors=True)
t.finish()
