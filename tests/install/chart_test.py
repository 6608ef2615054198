#!/usr/bin/python3
"""Offline checks of the Helm chart charts/gantry with the pinned helm (no cluster).

- `helm lint` (and --strict) with default and non-default values;
- `helm template` with default values: the objects, the two containers' exact
  command lines (SNAPSHOT.md flags), the shared control-socket emptyDir, probes
  on the documented paths and ports, preStop + terminationGracePeriodSeconds
  consistent with --drain-seconds, the security context, least-privilege RBAC,
  Services, IngressClass, PDB, dashboard ConfigMap;
- `helm template` with non-default values: HTTPS, NodePort + externalTrafficPolicy,
  one watched namespace (Role instead of ClusterRole), HPA, ServiceMonitor,
  default IngressClass, minAvailable PDB, image digest;
- values that must make the render fail (values.schema.json and the chart's
  own cross-field checks): typos, bad enums, a grace period shorter than the drain;
- NOTES.txt tells the user what to do next.
"""

import json
import os
import sys
import tempfile

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

helm = common.require_tool("helm")
t = common.Tally("chart_test")
CHART = common.CHART_DIR
SOCKET = "/var/run/gantry/control.sock"
# helm's default capabilities depend on how it was linked; pin them (the chart needs >= 1.27).
KUBE = ["--kube-version", "1.33.0"]


def template(*args, ns="gantry-system", release="gantry"):
    return common.run([helm, "template", release, CHART, "--namespace", ns, *KUBE, *args])


def render(*args, **kw):
    p = template(*args, **kw)
    if p.returncode != 0:
        t.check(False, f"helm template {' '.join(args)} succeeds", p.stderr.strip())
        return {}
    objs = {}
    for d in yaml.safe_load_all(p.stdout):
        if d:
            objs.setdefault(d["kind"], []).append(d)
    return objs


def one(objs, kind, name=None):
    items = [o for o in objs.get(kind, []) if name is None or o["metadata"]["name"] == name]
    t.check(len(items) == 1, f"exactly one {kind}" + (f" {name}" if name else ""), str(len(items)))
    return items[0] if items else {}


def container(dep, name):
    for c in dep.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
        if c["name"] == name:
            return c
    t.check(False, f"container {name} exists")
    return {}


def port_number(c, port):
    if isinstance(port, int):
        return port
    for p in c.get("ports", []):
        if p["name"] == port:
            return p["containerPort"]
    return None


def probe(c, kind):
    pr = c.get(kind, {}).get("httpGet", {})
    return pr.get("path"), port_number(c, pr.get("port"))


def rule_triples(rules):
    out = set()
    for r in rules:
        for g in r.get("apiGroups", []):
            for res in r.get("resources", []):
                for v in r.get("verbs", []):
                    out.add((g, res, v))
    return out


def triples(groups, resources, verbs):
    return {(g, r, v) for g in groups for r in resources for v in verbs}


READ = ["list", "watch"]  # the controller never GETs what it reads
NAMESPACED_RULES = (
    triples([""], ["services", "secrets"], READ)
    | triples(["discovery.k8s.io"], ["endpointslices"], READ)
    | triples(["gantry.dev"], ["gatewayroutes"], READ)
    | triples(["networking.k8s.io"], ["ingresses"], READ)
    | triples(["gantry.dev"], ["gatewayroutes/status"], ["patch"])
    | triples(["networking.k8s.io"], ["ingresses/status"], ["patch"])
    | triples(["", "events.k8s.io"], ["events"], ["create"])
)
CLUSTER_RULES = triples(["networking.k8s.io"], ["ingressclasses"], READ)
LEASE_RULES = (triples(["coordination.k8s.io"], ["leases"], ["get", "create", "update"])
               | triples([""], ["configmaps"], READ))

# ------------------------------------------------------------------ lint
NON_DEFAULT = {
    "replicaCount": 3,
    "image": {"repository": "registry.example.com/gantry", "digest": "sha256:" + "ab" * 32},
    "controller": {"watchNamespace": "team-a", "leaderElect": False, "extraArgs": ["--kubeconfig=/k/c"]},
    "proxy": {"https": {"enabled": True, "port": 8443}, "h2c": {"enabled": True, "port": 8082}, "workers": 4,
              "upstreamConnectTimeout": "2s", "upstreamH2KeepaliveInterval": "off",
              "upstreamMaxIdlePerEndpoint": 256,
              "debugHeaders": True,
              "trustedProxies": ["10.0.0.0/8", "192.168.0.0/16"], "drainSeconds": 20,
              "preStopSleepSeconds": 10, "accessLog": "off",
              "tracing": {"endpoint": "http://otel.observability:4318/v1/traces", "sampling": 0.25,
                          "serviceName": "edge"}},
    "terminationGracePeriodSeconds": 45,
    "service": {"type": "NodePort", "nodePorts": {"http": 30080, "https": 30443, "h2c": 30082},
                "externalTrafficPolicy": "Local"},
    "ingressClass": {"name": "edge", "default": True},
    "podDisruptionBudget": {"minAvailable": 1},
    "autoscaling": {"enabled": True, "minReplicas": 3, "maxReplicas": 7,
                    "targetMemoryUtilizationPercentage": 80},
    "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}},
                "dashboard": {"namespace": "monitoring"}},
    "topologySpread": {"enabled": False},
}
with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
    yaml.safe_dump(NON_DEFAULT, f)
    nd_values = f.name

for args in ([], ["--strict"], ["-f", nd_values], ["--strict", "-f", nd_values]):
    p = common.run([helm, "lint", CHART, *KUBE, *args])
    t.check(p.returncode == 0 and "1 chart(s) linted, 0 chart(s) failed" in p.stdout,
            f"helm lint {' '.join(args)}", p.stdout + p.stderr)

# ------------------------------------------------------------------ default values
objs = render()
kinds = {k: len(v) for k, v in objs.items()}
want_kinds = {"ServiceAccount": 1, "ClusterRole": 1, "ClusterRoleBinding": 1, "Role": 1, "RoleBinding": 1,
              "Service": 2, "Deployment": 1, "PodDisruptionBudget": 1, "IngressClass": 1, "ConfigMap": 1}
t.check(kinds == want_kinds, "default render has exactly the expected objects", str(kinds))
for kind, items in objs.items():
    for o in items:
        ns = o["metadata"].get("namespace")
        cluster_scoped = kind in ("ClusterRole", "ClusterRoleBinding", "IngressClass")
        t.check((ns is None) == cluster_scoped and (cluster_scoped or ns == "gantry-system"),
                f"{kind}/{o['metadata']['name']} namespace", str(ns))
        t.check(o["metadata"].get("labels", {}).get("app.kubernetes.io/instance") == "gantry",
                f"{kind}/{o['metadata']['name']} carries the release labels")

dep = one(objs, "Deployment", "gantry")
pod = dep.get("spec", {}).get("template", {})
pspec = pod.get("spec", {})
t.check(dep.get("spec", {}).get("replicas") == 2, "replicas 2 by default")
sel = dep.get("spec", {}).get("selector", {}).get("matchLabels", {})
t.check(sel and all(pod["metadata"]["labels"].get(k) == v for k, v in sel.items()),
        "Deployment selector matches its pod labels")
t.check([c["name"] for c in pspec.get("containers", [])] == ["controller", "proxy"],
        "two containers: controller and proxy")
ctl, prx = container(dep, "controller"), container(dep, "proxy")
t.check(ctl.get("image") == prx.get("image") == "gantry:0.1.0", "one image, tag = appVersion", ctl.get("image"))
t.check(ctl.get("command") == ["/usr/local/bin/gantry-controller"], "controller command")
t.check(prx.get("command") == ["/usr/local/bin/gantry-proxy"], "proxy command")
t.check(ctl.get("args") == ["--source=kube", f"--proxy-socket={SOCKET}", "--health-listen=0.0.0.0:9902",
                            "--admin-listen=127.0.0.1:9903", "--ingress-class=gantry", "--leader-elect"], "controller args", str(ctl.get("args")))
t.check(prx.get("args") == ["--http-listen=0.0.0.0:8080", "--stats-listen=0.0.0.0:9901",
                            "--admin-listen=127.0.0.1:9900", f"--control-socket={SOCKET}", "--drain-seconds=10", "--access-log=stdout",
                            "--request-header-timeout=10s", "--upstream-idle-timeout=30s",
                            "--upstream-max-idle-per-endpoint=1024", "--upstream-connect-timeout=5s", "--upstream-h2-keepalive-interval=30s",
                            "--upstream-h2-keepalive-timeout=10s"], "proxy args", str(prx.get("args")))
vols = {v["name"]: v for v in pspec.get("volumes", [])}
t.check("emptyDir" in vols.get("control-socket", {}), "control socket volume is an emptyDir")
for c in (ctl, prx):
    mounts = {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
    t.check(mounts.get("control-socket") == os.path.dirname(SOCKET), f"{c.get('name')} mounts the socket dir")
    t.check(c.get("resources", {}).get("requests") and c.get("resources", {}).get("limits"),
            f"{c.get('name')} has resource requests and limits")
    sc = c.get("securityContext", {})
    t.check(sc.get("allowPrivilegeEscalation") is False and sc.get("readOnlyRootFilesystem") is True
            and sc.get("capabilities", {}).get("drop") == ["ALL"] and sc.get("runAsNonRoot") is True
            and sc.get("seccompProfile", {}).get("type") == "RuntimeDefault",
            f"{c.get('name')} container securityContext", str(sc))
env = {e["name"]: e for e in ctl.get("env", [])}
t.check(env.get("POD_NAMESPACE", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
        == "metadata.namespace", "controller gets POD_NAMESPACE (Lease namespace)")
psc = pspec.get("securityContext", {})
t.check(psc.get("runAsNonRoot") is True and psc.get("runAsUser") == 65532
        and psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", "pod securityContext", str(psc))

PROBES = [(prx, "readinessProbe", "/readyz", 9901), (prx, "livenessProbe", "/healthz", 9901),
          (prx, "startupProbe", "/healthz", 9901), (ctl, "readinessProbe", "/readyz", 9902),
          (ctl, "livenessProbe", "/healthz", 9902), (ctl, "startupProbe", "/healthz", 9902)]
for c, kind, path, port in PROBES:
    t.check(probe(c, kind) == (path, port), f"{c.get('name')} {kind} {path} on {port}", str(probe(c, kind)))


def grace_ok(d):
    spec = d["spec"]["template"]["spec"]
    p = [c for c in spec["containers"] if c["name"] == "proxy"][0]
    drain = int([a for a in p["args"] if a.startswith("--drain-seconds=")][0].split("=")[1])
    cmd = p["lifecycle"]["preStop"]["exec"]["command"]
    pre = int(cmd[-1]) if cmd[0].endswith("sleep") else -1
    return pre > 0 and spec["terminationGracePeriodSeconds"] > drain + pre, (pre, drain,
                                                                               spec["terminationGracePeriodSeconds"])


ok, detail = grace_ok(dep)
t.check(ok, "preStop sleep + drain < terminationGracePeriodSeconds", str(detail))
tsc = pspec.get("topologySpreadConstraints", [])
t.check(len(tsc) == 2 and all(c["labelSelector"]["matchLabels"] == sel for c in tsc),
        "topology spread over zone and node, selecting this release's pods", str(tsc))
t.check(pspec.get("serviceAccountName") == "gantry", "pod runs as the chart's ServiceAccount")

svc = one(objs, "Service", "gantry")
t.check(svc.get("spec", {}).get("type") == "LoadBalancer", "Service is a LoadBalancer by default")
t.check([(p["name"], p["port"], port_number(prx, p["targetPort"])) for p in svc.get("spec", {}).get("ports", [])]
        == [("http", 80, 8080)], "Service http 80 -> 8080, no https by default")
t.check("externalTrafficPolicy" not in svc.get("spec", {}), "externalTrafficPolicy left to the default")
t.check(svc.get("spec", {}).get("selector") == sel, "Service selects the pods")
msvc = one(objs, "Service", "gantry-metrics")
t.check(msvc.get("spec", {}).get("type") == "ClusterIP"
        and [(p["name"], p["port"]) for p in msvc.get("spec", {}).get("ports", [])]
        == [("stats", 9901), ("ctl-health", 9902)], "metrics Service is ClusterIP on 9901/9902")
# The admin endpoints (/config_dump, /upstreams, /status) stay inside the pod:
# no container port, no Service port, bound to loopback.
for c in (ctl, prx):
    t.check(all(p["containerPort"] not in (9900, 9903) for p in c.get("ports", [])),
            f"{c.get('name')} declares no admin containerPort", str(c.get("ports")))
    t.check([a for a in c.get("args", []) if a.startswith("--admin-listen=")]
            == ["--admin-listen=127.0.0.1:" + ("9903" if c is ctl else "9900")],
            f"{c.get('name')} admin listener on loopback", str(c.get("args")))

cr = one(objs, "ClusterRole")
t.check(rule_triples(cr.get("rules", [])) == NAMESPACED_RULES | CLUSTER_RULES,
        "ClusterRole grants exactly the controller's needs",
        str(rule_triples(cr.get("rules", [])) ^ (NAMESPACED_RULES | CLUSTER_RULES)))
for o in objs.get("ClusterRole", []) + objs.get("Role", []):
    flat = rule_triples(o.get("rules", []))
    t.check(not any("*" in x for tr in flat for x in tr), f"{o['metadata']['name']}: no wildcards")
    writes = {tr for tr in flat if tr[2] not in READ and not (tr[1] == "leases" and tr[2] == "get")}
    t.check(all(tr[1].endswith("/status") or tr[1] in ("events", "leases") for tr in writes),
            f"{o['metadata']['name']}: writes only status, events and leases", str(writes))
role = one(objs, "Role")
t.check(role.get("metadata", {}).get("namespace") == "gantry-system"
        and rule_triples(role.get("rules", [])) == LEASE_RULES, "Role: Lease get/create/update in the release ns")
t.check([r.get("resourceNames") for r in role.get("rules", []) if "configmaps" in r.get("resources", [])]
        == [["gantry-hostname-owners"]], "Role: one ConfigMap by name (hostname owners), nothing else",
        str(role.get("rules")))
for b in objs.get("ClusterRoleBinding", []) + objs.get("RoleBinding", []):
    t.check(b["subjects"] == [{"kind": "ServiceAccount", "name": "gantry", "namespace": "gantry-system"}],
            f"{b['metadata']['name']} binds the chart's ServiceAccount")
ic = one(objs, "IngressClass")
t.check(ic.get("metadata", {}).get("name") == "gantry"
        and ic.get("spec", {}).get("controller") == "gantry.dev/ingress-controller", "IngressClass gantry")
t.check("annotations" not in ic.get("metadata", {}), "IngressClass not the default by default")
pdb = one(objs, "PodDisruptionBudget")
t.check(pdb.get("spec", {}).get("maxUnavailable") == 1 and "minAvailable" not in pdb.get("spec", {})
        and pdb.get("spec", {}).get("selector", {}).get("matchLabels") == sel, "PDB maxUnavailable 1")
cm = one(objs, "ConfigMap")
t.check(cm.get("metadata", {}).get("labels", {}).get("grafana_dashboard") == "1", "dashboard label")
try:
    dash = json.loads(cm.get("data", {}).get("gantry.json", ""))
except ValueError as e:
    dash = {}
    t.check(False, "dashboard JSON parses", str(e))
exprs = " ".join(tg.get("expr", "") for p in dash.get("panels", []) for tg in p.get("targets", []))
for needle in ("gantry_requests_total", 'code_class="5xx"', "gantry_request_duration_seconds_bucket",
               "histogram_quantile(0.5,", "histogram_quantile(0.99,", "by (le, route)",
               "gantry_upstream_errors_total", "gantry_snapshot_version",
               "gantry_snapshot_apply_duration_seconds_bucket", "gantry_ratelimit_store_requests_total",
               "gantry_ratelimit_lease_unused_total"):
    t.check(needle in exprs, f"dashboard queries {needle}")
t.check(not objs.get("HorizontalPodAutoscaler") and not objs.get("ServiceMonitor"),
        "no HPA and no ServiceMonitor by default")

# ------------------------------------------------------------------ non-default values
nd = render("-f", nd_values)
dep = one(nd, "Deployment")
ctl, prx = container(dep, "controller"), container(dep, "proxy")
t.check("replicas" not in dep.get("spec", {}), "with the HPA on, the Deployment leaves replicas to it")
t.check(ctl.get("image") == "registry.example.com/gantry@sha256:" + "ab" * 32, "image by digest")
t.check(ctl.get("args") == ["--source=kube", f"--proxy-socket={SOCKET}", "--health-listen=0.0.0.0:9902",
                            "--admin-listen=127.0.0.1:9903", "--ingress-class=edge", "--namespace=team-a", "--kubeconfig=/k/c"],
        "controller args (one namespace, no leader election, extra arg)", str(ctl.get("args")))
t.check(prx.get("args") == ["--http-listen=0.0.0.0:8080", "--https-listen=0.0.0.0:8443",
                            "--h2c-listen=0.0.0.0:8082", "--stats-listen=0.0.0.0:9901", "--admin-listen=127.0.0.1:9900",
                            f"--control-socket={SOCKET}", "--drain-seconds=20",
                            "--access-log=off", "--request-header-timeout=10s", "--upstream-idle-timeout=30s",
                            "--upstream-max-idle-per-endpoint=256", "--upstream-connect-timeout=2s", "--upstream-h2-keepalive-interval=off",
                            "--upstream-h2-keepalive-timeout=10s", "--workers=4", "--debug-headers",
                            "--trusted-proxies=10.0.0.0/8,192.168.0.0/16",
                            "--tracing-endpoint=http://otel.observability:4318/v1/traces",
                            "--tracing-sampling=0.25", "--tracing-service-name=edge"], "proxy args with HTTPS",
        str(prx.get("args")))
ok, detail = grace_ok(dep)
t.check(ok and detail == (10, 20, 45), "preStop/drain/grace follow the values", str(detail))
t.check("topologySpreadConstraints" not in dep["spec"]["template"]["spec"], "topology spread can be turned off")
svc = one(nd, "Service", "gantry")
sp = svc.get("spec", {})
t.check(sp.get("type") == "NodePort" and sp.get("externalTrafficPolicy") == "Local", "NodePort, Local policy")
t.check([(p["name"], p["port"], port_number(prx, p["targetPort"]), p.get("nodePort")) for p in sp.get("ports", [])]
        == [("http", 80, 8080, 30080), ("https", 443, 8443, 30443), ("h2c", 8082, 8082, 30082)],
        "http 80->8080, https 443->8443 and h2c 8082->8082", str(sp.get("ports")))
t.check([p.get("appProtocol") for p in sp.get("ports", [])] == [None, None, "kubernetes.io/h2c"],
        "the h2c Service port says kubernetes.io/h2c", str(sp.get("ports")))
cr = one(nd, "ClusterRole")
t.check(rule_triples(cr.get("rules", [])) == CLUSTER_RULES, "one namespace: ClusterRole holds only ingressclasses")
watch = one(nd, "Role", "gantry-watch")
t.check(watch.get("metadata", {}).get("namespace") == "team-a"
        and rule_triples(watch.get("rules", [])) == NAMESPACED_RULES, "one namespace: Role in team-a")
rb = one(nd, "RoleBinding", "gantry-watch")
t.check(rb.get("metadata", {}).get("namespace") == "team-a" and rb.get("roleRef", {}).get("kind") == "Role",
        "one namespace: RoleBinding in team-a")
hpa = one(nd, "HorizontalPodAutoscaler")
t.check(hpa.get("apiVersion") == "autoscaling/v2" and hpa["spec"]["minReplicas"] == 3
        and hpa["spec"]["maxReplicas"] == 7 and hpa["spec"]["scaleTargetRef"]["name"] == "gantry"
        and [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu", "memory"], "HPA autoscaling/v2")
sm = one(nd, "ServiceMonitor")
t.check(sm.get("apiVersion") == "monitoring.coreos.com/v1"
        and [e["port"] for e in sm["spec"]["endpoints"]] == ["stats", "ctl-health"]
        and all(e["path"] == "/metrics" for e in sm["spec"]["endpoints"])
        and sm["metadata"]["labels"].get("release") == "prom", "ServiceMonitor scrapes proxy and controller")
msvc = one(nd, "Service", "gantry-metrics")
t.check(all(msvc["metadata"]["labels"].get(k) == v for k, v in sm["spec"]["selector"]["matchLabels"].items()),
        "ServiceMonitor selects the metrics Service")
t.check(not all(svc["metadata"]["labels"].get(k) == v for k, v in sm["spec"]["selector"]["matchLabels"].items()),
        "ServiceMonitor does not select the public Service")
ic = one(nd, "IngressClass")
t.check(ic["metadata"]["name"] == "edge" and ic["metadata"].get("annotations", {}).get(
    "ingressclass.kubernetes.io/is-default-class") == "true", "default IngressClass annotation")
pdb = one(nd, "PodDisruptionBudget")
t.check(pdb["spec"].get("minAvailable") == 1 and "maxUnavailable" not in pdb["spec"], "PDB minAvailable wins")
cm = one(nd, "ConfigMap")
t.check(cm["metadata"]["namespace"] == "monitoring", "dashboard ConfigMap namespace override")

off = render("--set", "rbac.create=false", "--set", "serviceAccount.create=false", "--set", "serviceAccount.name=ops",
             "--set", "ingressClass.enabled=false", "--set", "podDisruptionBudget.enabled=false",
             "--set", "metrics.dashboard.enabled=false", "--set", "metrics.service.enabled=false")
t.check(set(off) == {"Deployment", "Service"}, "everything optional can be turned off", str(sorted(off)))
if off.get("Deployment"):
    t.check(off["Deployment"][0]["spec"]["template"]["spec"]["serviceAccountName"] == "ops",
            "an existing ServiceAccount can be used")

# ------------------------------------------------------------------ ingress-nginx compatibility
def controller_args(objs):
    return container(one(objs, "Deployment"), "controller").get("args", [])


t.check(not any(a.startswith("--ingress-nginx") for a in controller_args(objs)),
        "ingress-nginx compatibility off by default")
nx = controller_args(render("--set", "ingressNginx.enabled=true"))
t.check(nx[5:] == ["--ingress-nginx-compat=on", "--ingress-nginx-body-size=1m",
                   "--ingress-nginx-hsts=max-age=31536000; includeSubDomains", "--ingress-nginx-redirect-code=308",
                   "--leader-elect"],
        "ingressNginx.enabled: every ingress-nginx class, status left alone", str(nx))
nx = controller_args(render("--set", "ingressNginx.enabled=true", "--set", "ingressNginx.classes={nginx,internal}",
                            "--set", "ingressNginx.writeStatus=true", "--set", "ingressNginx.serveRefused=true",
                            "--set", "ingressNginx.bodySize=8m", "--set", "ingressNginx.hsts=off",
                            "--set", "ingressNginx.redirectCode=301", "--set", "ingressNginx.sslPassthrough=true"))
t.check(nx[5:] == ["--ingress-nginx-compat=nginx,internal", "--ingress-nginx-body-size=8m",
                   "--ingress-nginx-hsts=off", "--ingress-nginx-redirect-code=301",
                   "--ingress-nginx-write-status", "--ingress-nginx-serve-refused",
                   "--ingress-nginx-enable-ssl-passthrough", "--leader-elect"],
        "ingressNginx: named classes, status, refused annotations, body size, ssl-passthrough", str(nx))

# ------------------------------------------------------------------ Gateway API
t.check(not objs.get("GatewayClass") and not any(a.startswith("--gateway") for a in controller_args(objs)),
        "Gateway API off by default")
gw = render("--set", "gatewayAPI.enabled=true")
ga = [a for a in controller_args(gw) if a.startswith("--gateway")]
t.check(ga == ["--gateway-api", "--gateway-controller=gantry.dev/gateway-controller",
               "--gateway-bind-address=service", "--gateway-proxy-service=gantry-system/gantry",
               "--gateway-service-type=LoadBalancer", "--gateway-port-range=20000-29999"],
        "gatewayAPI.enabled: a Service per Gateway, the proxy Service's endpoints", str(ga))
gc = one(gw, "GatewayClass", "gantry")
t.check(gc.get("spec", {}).get("controllerName") == "gantry.dev/gateway-controller", "the GatewayClass", str(gc))
cr = rule_triples(one(gw, "ClusterRole", "gantry").get("rules", []))
GW_RULES = (triples(["gateway.networking.k8s.io"], ["gatewayclasses", "gateways", "listenersets", "httproutes",
                                                    "grpcroutes", "referencegrants", "backendtlspolicies"], READ)
            | triples(["gateway.networking.k8s.io"], ["gatewayclasses/status", "gateways/status",
                                                      "listenersets/status", "httproutes/status",
                                                      "grpcroutes/status", "backendtlspolicies/status"], ["patch"])
            | triples([""], ["namespaces", "configmaps"], READ))
WRITE_SVC = triples([""], ["services"], ["create", "patch", "delete"]) | triples(
    ["discovery.k8s.io"], ["endpointslices"], ["create", "patch", "delete"])
t.check(cr == CLUSTER_RULES | NAMESPACED_RULES | GW_RULES | WRITE_SVC,
        "gatewayAPI RBAC: read and status-patch the Gateway API kinds, write Services and EndpointSlices",
        str(sorted(cr ^ (CLUSTER_RULES | NAMESPACED_RULES | GW_RULES | WRITE_SVC))))
gw = render("--set", "gatewayAPI.enabled=true", "--set", "gatewayAPI.gatewayServices.enabled=false",
            "--set", "gatewayAPI.address=203.0.113.9", "--set", "networkPolicy.enabled=true")
ga = [a for a in controller_args(gw) if a.startswith("--gateway")]
t.check(ga == ["--gateway-api", "--gateway-controller=gantry.dev/gateway-controller",
               "--gateway-bind-address=proxy", "--gateway-proxy-ports=80,443", "--gateway-address=203.0.113.9"],
        "gatewayServices.enabled=false: Gateways on the proxy's own listeners", str(ga))
cr = rule_triples(one(gw, "ClusterRole", "gantry").get("rules", []))
t.check(not cr & WRITE_SVC, "without Services per Gateway, no write on Services", str(cr & WRITE_SVC))
t.check(len(one(gw, "NetworkPolicy").get("spec", {}).get("ingress", [])[0]["ports"]) == 1,
        "without Services per Gateway, the NetworkPolicy opens no port range")
gw = render("--set", "gatewayAPI.enabled=true", "--set", "gatewayAPI.gatewayServices.type=ClusterIP",
            "--set", "gatewayAPI.gatewayServices.portRange=31000-31999", "--set", "networkPolicy.enabled=true")
t.check("--gateway-service-type=ClusterIP" in controller_args(gw) and
        "--gateway-port-range=31000-31999" in controller_args(gw), "gatewayServices type and portRange")
t.check({"port": 31000, "endPort": 31999, "protocol": "TCP"} in
        one(gw, "NetworkPolicy").get("spec", {}).get("ingress", [])[0]["ports"],
        "the NetworkPolicy opens the Gateway port range")
p = template("--include-crds")
crds = [d["metadata"]["name"] for d in yaml.safe_load_all(p.stdout) if d and d.get("kind") == "CustomResourceDefinition"]
t.check(crds == ["gatewayroutes.gantry.dev"], "by default only gantry's CRD", str(crds))
p = template("--include-crds", "--set", "gatewayAPI.installCRDs=true")
crds = sorted(d["metadata"]["name"] for d in yaml.safe_load_all(p.stdout)
              if d and d.get("kind") == "CustomResourceDefinition")
t.check({"gatewayclasses.gateway.networking.k8s.io", "gateways.gateway.networking.k8s.io",
         "httproutes.gateway.networking.k8s.io", "grpcroutes.gateway.networking.k8s.io",
         "referencegrants.gateway.networking.k8s.io", "backendtlspolicies.gateway.networking.k8s.io",
         "listenersets.gateway.networking.k8s.io"} <= set(crds),
        "gatewayAPI.installCRDs: the Gateway API standard-channel CRDs", str(crds))

nx = controller_args(render("--set", "ingressNginx.enabled=true", "--set", "ingressNginx.watchIngressWithoutClass=true"))
t.check("--ingress-nginx-watch-without-class" in nx, "ingressNginx.watchIngressWithoutClass", str(nx))
t.check("--ingress-nginx-watch-without-class" not in controller_args(render("--set", "ingressNginx.enabled=true")),
        "classless Ingresses are not watched by default")

# ------------------------------------------------------------------ NetworkPolicy (optional)
t.check(not objs.get("NetworkPolicy"), "no NetworkPolicy by default")
npo = render("--set", "networkPolicy.enabled=true")
np_ = one(npo, "NetworkPolicy", "gantry")
nps = np_.get("spec", {})
t.check(nps.get("podSelector", {}).get("matchLabels") == sel and nps.get("policyTypes") == ["Ingress"],
        "NetworkPolicy selects the gantry pods, ingress only", str(nps))
rules = nps.get("ingress", [])
t.check(len(rules) == 2, "NetworkPolicy: two ingress rules (traffic, stats)", str(rules))
if len(rules) == 2:
    t.check("from" not in rules[0] and rules[0]["ports"] == [{"port": 8080, "protocol": "TCP"}],
            "traffic port 8080 open to every client", str(rules[0]))
    t.check(rules[1]["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
            and rules[1]["ports"] == [{"port": 9901, "protocol": "TCP"}, {"port": 9902, "protocol": "TCP"}],
            "stats ports 9901/9902 only from the monitoring namespace", str(rules[1]))
    opened = {p["port"] for r in rules for p in r["ports"]}
    t.check(not opened & {9900, 9903}, "the admin ports are never opened", str(opened))
npo = render("--set", "networkPolicy.enabled=true", "--set", "proxy.https.enabled=true",
             # helm merges maps: a default label is dropped by setting it to null
             "--set-json", 'networkPolicy.statsNamespaceSelector={"matchLabels":{"kubernetes.io/metadata.name":null,"team":"obs"}}',
             "--set-json", 'networkPolicy.statsPodSelector={"matchLabels":{"app":"prometheus"}}')
rules = one(npo, "NetworkPolicy").get("spec", {}).get("ingress", [])
t.check(len(rules) == 2 and rules[0]["ports"] == [{"port": 8080, "protocol": "TCP"}, {"port": 8443, "protocol": "TCP"}]
        and rules[1]["from"] == [{"namespaceSelector": {"matchLabels": {"team": "obs"}},
                                  "podSelector": {"matchLabels": {"app": "prometheus"}}}],
        "NetworkPolicy follows https and the configured selectors", str(rules))
npo = render("--set", "networkPolicy.enabled=true", "--set-json", 'networkPolicy.statsNamespaceSelector={"matchLabels":null}')
rules = one(npo, "NetworkPolicy").get("spec", {}).get("ingress", [])
t.check(len(rules) == 2 and rules[1]["from"] == [{"namespaceSelector": {}}],
        "an empty selector admits every namespace to the stats ports only", str(rules))

# ------------------------------------------------------------------ renders that must fail
FAILS = [
    (["--set", "replicas=3"], "replicas"),
    (["--set", "proxy.drainSecond=3"], "drainSecond"),
    (["--set", "controller.leaderElection=true"], "leaderElection"),
    (["--set", "service.type=Ingress"], "service"),
    (["--set", "service.externalTrafficPolicy=Global"], "externalTrafficPolicy"),
    (["--set", "proxy.httpPort=70000"], "httpPort"),
    (["--set", "image.pullPolicy=Sometimes"], "pullPolicy"),
    (["--set", "proxy.requestHeaderTimeout=10 seconds"], "requestHeaderTimeout"),
    (["--set", "proxy.upstreamIdleTimeout=forever"], "upstreamIdleTimeout"),
    (["--set", "proxy.upstreamH2KeepaliveInterval=never"], "upstreamH2KeepaliveInterval"),
    (["--set", "proxy.upstreamConnectTimeout=off"], "upstreamConnectTimeout"),
    (["--set", "proxy.upstreamMaxIdlePerEndpoint=0"], "upstreamMaxIdlePerEndpoint"),
    (["--set", "terminationGracePeriodSeconds=15"], "must exceed proxy.preStopSleepSeconds + proxy.drainSeconds"),
    (["--set", "proxy.drainSeconds=40"], "must exceed proxy.preStopSleepSeconds + proxy.drainSeconds"),
    (["--set", "proxy.adminPort=9902"], "must all differ"),
    (["--set", "networkPolicy.enable=true"], "enable"),
    (["--set", "ingressNginx.bodySize=1Mi"], "bodySize"),
    (["--set", "ingressNginx.classes={Bad_Class}"], "classes"),
    (["--set", "ingressNginx.writestatus=true"], "writestatus"),
    (["--set", "ingressNginx.redirectCode=303"], "redirectCode"),
    (["--set", "networkPolicy.statsNamespaceSelector.matchLabel.x=y"], "matchLabel"),
    (["--set", "networkPolicy.enabled=yes"], "enabled"),
    (["--set", "proxy.tracing.endpoint=https://otel:4318"], "endpoint"),
    (["--set-json", "proxy.tracing.sampling=1.5"], "sampling"),
    (["--set", "proxy.statsPort=9903"], "must all differ"),
    (["--set", "proxy.h2c.enabled=true", "--set", "proxy.h2c.port=9901"], "must all differ"),
    (["--set", "proxy.h2c.enable=true"], "enable"),
    (["--set", "controller.adminPort=8080"], "must all differ"),
    (["--set", "gatewayAPI.gatewayServices.type=External"], "type"),
    (["--set", "gatewayAPI.gatewayServices.portRange=20000"], "portRange"),
    (["--set", "gatewayAPI.installCrds=true"], "installCrds"),
    (["--set", "autoscaling.enabled=true", "--set", "autoscaling.minReplicas=5",
      "--set", "autoscaling.maxReplicas=2"], "minReplicas must not exceed"),
]
for args, needle in FAILS:
    p = template(*args)
    t.check(p.returncode != 0 and needle in p.stderr, f"helm template {' '.join(args)} fails naming {needle!r}",
            f"rc={p.returncode} {p.stderr.strip()[:300]}")

# ------------------------------------------------------------------ NOTES.txt
# (rendered by `helm install` in apiserver_test.py; here the template's text)
with open(os.path.join(CHART, "templates", "NOTES.txt")) as f:
    notes = f.read()
for needle in ("kind: GatewayRoute", "kubectl get gr", "/metrics on port {{ .Values.proxy.statsPort }}", "port-forward deployment/",
               "/metrics on port {{ .Values.controller.healthPort }}", "rollout status deployment/",
               "grafana_dashboard", "serviceMonitor.enabled=true"):
    t.check(needle in notes, f"NOTES mention {needle!r}")
p = template("--kube-version", "1.26.0")
t.check(p.returncode != 0 and "kubeVersion" in p.stderr, "the chart refuses clusters older than 1.27", p.stderr)

os.unlink(nd_values)
t.finish()
