"""Pod churn under load, end to end (issue #8).

A real control plane (etcd + kube-apiserver + kube-controller-manager with
the deployment, replicaset and endpointslice controllers), the node agent of
node_agent.py playing the kubelet, and Gantry (controller + proxy) started
with the container arguments the Helm chart renders (`helm template
charts/gantry`; only the kubeconfig, the socket path and the listen addresses
are substituted). Backends: Deployment `blue` (and `green`), Service `web`,
GatewayRoute `web` (host churn.e2e.test, a request-header filter x-e2e-rev).

Each scenario runs under a fixed request rate (loadgen.py) and reports the
requests sent, the failures by kind, and the propagation latency: from the
moment our own EndpointSlice watch observes a change of a Service's endpoint
set (the set the controller would program: ready endpoints, else serving
terminating ones, see controller/core/translate.cc) to the first poll of the
proxy's admin /upstreams showing exactly that set (polled every POLL_INTERVAL).
A change the proxy never showed because the next one replaced it first is
counted as superseded, not timed.

    /usr/bin/python3 tests/e2e/churn.py [--short] [--rate N] [--write-docs]

runs the long version (hack/bench.sh churn) and prints the report;
test_churn.py runs the short version under ctest (label e2e).
"""

import argparse
import contextlib
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "integration"))
sys.path.insert(0, str(HERE.parent / "integration" / "kube"))

from conftest import REPO, BIN, binary, free_port, new_manager, tail  # noqa: E402
from kubeapi import ApiError, ControlPlane, percentile  # noqa: E402
from loadgen import LoadProcess  # noqa: E402
from node_agent import FAIL_READINESS_ANNOTATION, Api, NodeAgent, PodNetwork  # noqa: E402

HOST = "churn.e2e.test"
SERVICE = "web"
CLUSTER = f"default/{SERVICE}:8080"
POD_PORT = 9001
POLL_INTERVAL = 0.002
HEADER = "x-e2e-rev"


class Timeout(AssertionError):
    pass


def wait_for(pred, timeout, what, interval=0.1):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise Timeout(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def testbin_dir():
    d = os.environ.get("GANTRY_TESTBIN")
    if d:
        return Path(d)
    out = subprocess.run([str(REPO / "hack" / "testbin.sh")], capture_output=True, text=True,
                         timeout=3600, check=True)
    return Path(out.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ Gantry, as the chart installs it

def chart_args():
    """{container name: args} of the Deployment `helm template charts/gantry` renders."""
    out = subprocess.run([str(testbin_dir() / "helm"), "template", "gantry", str(REPO / "charts" / "gantry"),
                          "--namespace", "gantry-system"], capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"helm template failed: {out.stderr}")
    for doc in yaml.safe_load_all(out.stdout):
        if doc and doc.get("kind") == "Deployment":
            return {c["name"]: list(c.get("args") or [])
                    for c in doc["spec"]["template"]["spec"]["containers"]}
    raise RuntimeError("no Deployment in the rendered chart")


def substitute(args, values):
    """Replaces the value of each --flag=value named in `values`; returns the new list."""
    out = []
    for a in args:
        flag, eq, _ = a.partition("=")
        out.append(f"{flag}={values[flag]}" if eq and flag in values else a)
    return out


class Gantry:
    def __init__(self, manager, workdir, kubeconfig):
        self.manager, self.workdir = manager, Path(workdir)
        self.socket = self.workdir / "control.sock"
        self.http_port, self.admin_port, self.health_port = free_port(), free_port(), free_port()
        self.stats_port, self.ctl_admin_port = free_port(), free_port()
        args = chart_args()
        self.controller_argv = [binary("gantry-controller")] + substitute(args["controller"], {
            "--proxy-socket": str(self.socket),
            "--health-listen": f"127.0.0.1:{self.health_port}",
            "--admin-listen": f"127.0.0.1:{self.ctl_admin_port}"}) + [f"--kubeconfig={kubeconfig}"]
        self.proxy_argv = [binary("gantry-proxy")] + substitute(args["proxy"], {
            "--http-listen": f"127.0.0.1:{self.http_port}",
            "--stats-listen": f"127.0.0.1:{self.stats_port}",
            "--admin-listen": f"127.0.0.1:{self.admin_port}",
            "--control-socket": str(self.socket)})
        self.proxy_log = self.workdir / "proxy.log"
        self.controller_log = self.workdir / "controller.log"

    def start(self):
        self.proxy = self.manager.spawn(self.proxy_argv, self.proxy_log)
        self.controller = self.manager.spawn(
            self.controller_argv, self.controller_log,
            env={"POD_NAME": "gantry-e2e-0", "POD_NAMESPACE": "gantry-system"})

        def ready():
            for p, log in ((self.proxy, self.proxy_log), (self.controller, self.controller_log)):
                if p.poll() is not None:
                    raise RuntimeError(f"{p.args[0]} exited {p.returncode}\n{tail(log)}")
            return (self.status(self.stats_port, "/readyz") == 200
                    and self.status(self.health_port, "/readyz") == 200)
        wait_for(ready, 30, "gantry proxy and controller /readyz")
        return self

    @staticmethod
    def status(port, path):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            c.request("GET", path)
            r = c.getresponse()
            r.read()
            return r.status
        except OSError:
            return None
        finally:
            c.close()

    def upstream_errors(self):
        """{kind: count} of the proxy's gantry_upstream_errors_total for the web cluster."""
        c = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=5)
        try:
            c.request("GET", "/metrics")
            text = c.getresponse().read().decode()
        finally:
            c.close()
        out = {}
        for line in text.splitlines():
            if line.startswith("gantry_upstream_errors_total{") and f'cluster="{CLUSTER}"' in line:
                kind = line.split('kind="', 1)[1].split('"', 1)[0]
                out[kind] = out.get(kind, 0) + int(float(line.rsplit(" ", 1)[1]))
        return out

    def get(self, path="/"):
        c = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=5)
        try:
            c.request("GET", path, headers={"Host": HOST})
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()


# ------------------------------------------------------------------ measurement

def expected_set(slices, service_port_name="http"):
    """The endpoints (ip:port, ready) the controller programs for a Service from
    its EndpointSlices: the ready ones, else the serving terminating ones."""
    ready, fallback = set(), set()
    for s in slices:
        if s.get("addressType") == "FQDN":
            continue
        port = next((p.get("port") for p in s.get("ports") or []
                     if p.get("name", "") == service_port_name and p.get("port")), None)
        if port is None:
            continue
        for ep in s.get("endpoints") or []:
            if not ep.get("addresses"):
                continue
            c = ep.get("conditions") or {}
            is_ready = c.get("ready", True)
            serving = c.get("serving", is_ready)
            key = f"{ep['addresses'][0]}:{port}"
            if is_ready:
                ready.add(key)
            elif serving and c.get("terminating", False):
                fallback.add(key)
    return frozenset((k, True) for k in ready) if ready else frozenset((k, False) for k in fallback)


class SliceTracker:
    """Our own watch on EndpointSlices: when a Service's programmed endpoint set
    changes, records (time seen, service, resourceVersion, set)."""

    def __init__(self, api):
        self.api = api
        self.slices = {}  # (ns, name) -> slice
        self.current = {}  # service -> set
        self.events = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.listed = threading.Event()

    def start(self):
        self.thread = threading.Thread(
            target=self.api.watch, args=("/apis/discovery.k8s.io/v1/endpointslices", self._on_event,
                                         self.stop), kwargs={"on_list": self._on_list},
            name="slice-watch", daemon=True)
        self.thread.start()
        return self

    def _service_set(self, svc):
        return expected_set([s for s in self.slices.values()
                             if s["metadata"].get("labels", {}).get("kubernetes.io/service-name") == svc])

    def _on_list(self, items):
        with self.lock:
            self.slices = {(s["metadata"]["namespace"], s["metadata"]["name"]): s for s in items}
            for svc in {s["metadata"].get("labels", {}).get("kubernetes.io/service-name") for s in items}:
                self.current[svc] = self._service_set(svc)  # a baseline: not timed
        self.listed.set()

    def _on_event(self, etype, obj, t_seen):
        meta = obj["metadata"]
        svc = meta.get("labels", {}).get("kubernetes.io/service-name")
        with self.lock:
            key = (meta["namespace"], meta["name"])
            if etype == "DELETED":
                self.slices.pop(key, None)
            else:
                self.slices[key] = obj
            new = self._service_set(svc)
            if new != self.current.get(svc):
                self.current[svc] = new
                self.events.append((t_seen, svc, meta.get("resourceVersion"), new))

    def close(self):
        self.stop.set()


class ProxyPoller(threading.Thread):
    """Polls the proxy's admin /upstreams every POLL_INTERVAL on a keep-alive
    connection; records (time the answer arrived, {cluster: set}) on change."""

    def __init__(self, admin_port, clusters):
        super().__init__(name="proxy-poller", daemon=True)
        self.port, self.clusters = admin_port, clusters
        self.changes = []
        self.latest = {}
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def run(self):
        conn = None
        while not self.stop.is_set():
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/upstreams")
                r = conn.getresponse()
                body = r.read()
                t = time.monotonic()
                if r.will_close:
                    conn.close()
                    conn = None
                state = upstream_sets(body, self.clusters)
                if state != self.latest:
                    with self.lock:
                        self.latest = state
                        self.changes.append((t, state))
            except (OSError, ValueError, http.client.HTTPException):
                if conn is not None:
                    conn.close()
                conn = None
            time.sleep(POLL_INTERVAL)

    def state(self, cluster):
        with self.lock:
            return self.latest.get(cluster)

    def close(self):
        self.stop.set()
        self.join(timeout=5)


def upstream_sets(body, clusters):
    state = {c: frozenset() for c in clusters}
    for c in json.loads(body).get("clusters", []):
        if c["name"] in state:
            state[c["name"]] = frozenset((e["address"], bool(e["ready"])) for e in c.get("endpoints", []))
    return state


class Measurement:
    """SliceTracker + ProxyPoller in a child process (`churn.py --measure`), so
    that neither the node agent (which forks a process per pod start) nor the
    load share their interpreter lock: a stalled poll would be counted as
    propagation time. Times are time.monotonic(), one clock for both processes."""

    def __init__(self, cp, admin_port, clusters):
        from conftest import _die_with_parent
        args = {"server": cp.server, "certs": str(cp.workdir), "admin_port": admin_port,
                "clusters": clusters}
        self.proc = subprocess.Popen([sys.executable, __file__, "--measure", json.dumps(args)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     preexec_fn=_die_with_parent)
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            self.close()
            raise RuntimeError(f"measurement process did not start: {line!r}")
        self.events, self.changes = [], []

    def snapshot(self):
        """Fetches every slice event and proxy change recorded so far."""
        self.proc.stdin.write("dump\n")
        self.proc.stdin.flush()
        d = json.loads(self.proc.stdout.readline())
        self.events = [(t, svc, rv, frozenset(tuple(x) for x in st)) for t, svc, rv, st in d["events"]]
        self.changes = [(t, {c: frozenset(tuple(x) for x in v) for c, v in st.items()})
                        for t, st in d["changes"]]
        return self.events, self.changes

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("stop\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


def measure_main(args):
    """The child of Measurement: prints `ready`, then answers `dump` lines."""
    import ssl
    import types
    certs = Path(args["certs"])
    ctx = ssl.create_default_context(cafile=str(certs / "ca.crt"))
    ctx.load_cert_chain(str(certs / "admin.crt"), str(certs / "admin.key"))
    tracker = SliceTracker(Api(types.SimpleNamespace(server=args["server"], ssl=ctx))).start()
    poller = ProxyPoller(args["admin_port"], args["clusters"])
    poller.start()
    wait_for(lambda: tracker.listed.is_set() and poller.latest, 30, "the first list and poll")
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() != "dump":
            break
        with tracker.lock:
            events = [(t, svc, rv, sorted(st)) for t, svc, rv, st in tracker.events]
        with poller.lock:
            changes = [(t, {c: sorted(v) for c, v in st.items()}) for t, st in poller.changes]
        print(json.dumps({"events": events, "changes": changes}), flush=True)
    tracker.close()
    poller.close()


def propagation(events, changes, svc, cluster, t_from, t_to):
    """Latencies (ms) from each observed change of `svc`'s endpoint set in
    [t_from, t_to] to the proxy showing it; plus counts of the rest."""
    evs = [e for e in events if e[1] == svc]
    lat, superseded, missing, early = [], 0, 0, 0
    for i, (t, _, _, want) in enumerate(evs):
        if not (t_from <= t <= t_to):
            continue
        prev_t = evs[i - 1][0] if i else float("-inf")
        nxt = evs[i + 1][0] if i + 1 < len(evs) else None
        match = next((tc for tc, st in changes if tc > prev_t and st.get(cluster) == want), None)
        if match is None:
            if nxt is not None:
                superseded += 1
            else:
                missing += 1
            continue
        if match < t:
            early += 1  # the proxy had it before our watch saw it
        lat.append(max(0.0, match - t) * 1000)
    out = {"changes": len(lat) + superseded + missing, "timed": len(lat), "samples": lat,
           "superseded": superseded, "never_applied": missing, "before_our_watch": early}
    if lat:
        out.update(p50=round(percentile(lat, 50), 1), p99=round(percentile(lat, 99), 1),
                   max=round(max(lat), 1))
    return out


# ------------------------------------------------------------------ objects

def deployment(name, track, replicas, prestop, grace, rev="0"):
    labels = {"app": "web", "track": track}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": labels, "annotations": {"e2e.gantry.dev/rev": rev}},
                "spec": {
                    "terminationGracePeriodSeconds": grace,
                    "containers": [{
                        "name": "echo", "image": "gantry-echo:e2e",
                        "ports": [{"name": "http", "containerPort": POD_PORT}],
                        "readinessProbe": {"httpGet": {"path": "/healthz", "port": POD_PORT},
                                           "periodSeconds": 1, "timeoutSeconds": 1,
                                           "successThreshold": 1, "failureThreshold": 1},
                        "lifecycle": {"preStop": {"sleep": {"seconds": prestop}}},
                    }],
                },
            },
        },
    }


def service(track):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": SERVICE, "namespace": "default"},
            "spec": {"selector": {"app": "web", "track": track},
                     "ports": [{"name": "http", "port": 8080, "targetPort": POD_PORT}]}}


def route(rev, policy=None):
    rule = {"filters": {"requestHeaders": {"set": [{"name": HEADER, "value": rev}]}},
            "backendRefs": [{"name": SERVICE, "port": 8080}]}
    if policy:
        rule["policy"] = policy
    return {"apiVersion": "gantry.dev/v1alpha1", "kind": "GatewayRoute",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"hostnames": [HOST], "rules": [rule]}}


RETRY_ON_RESET = {"retry": {"attempts": 1, "on": ["connect-failure", "reset"]}}


PATHS = {
    "Deployment": "/apis/apps/v1/namespaces/default/deployments",
    "Service": "/api/v1/namespaces/default/services",
    "GatewayRoute": "/apis/gantry.dev/v1alpha1/namespaces/default/gatewayroutes",
}


# ------------------------------------------------------------------ environment

class ChurnEnv:
    def __init__(self, workdir, prestop=3, grace=15, rate=100, connections=8):
        self.workdir = Path(workdir)
        self.prestop, self.grace = prestop, grace
        self.rate, self.connections = rate, connections
        self.manager = new_manager()
        self.cp = self.network = self.agent = self.measure = self.gantry = None
        self.results = []
        self.route_rev = 0

    def start(self):
        self.network = PodNetwork()  # first: needs root, fails fast
        self.cp = ControlPlane(self.workdir / "cp", with_kcm=True)
        self.cp.start()
        self.cp.install_crd()
        self.api = Api(self.cp)
        # The ServiceAccount admission plugin rejects pods until `default` exists.
        wait_for(lambda: self._exists("/api/v1/namespaces/default/serviceaccounts/default"), 60,
                 "the default ServiceAccount")
        self.agent = NodeAgent(self.cp, self.manager, self.workdir, self.network).start()
        self.gantry = Gantry(self.manager, self.workdir, self.cp.kubeconfig).start()
        self.measure = Measurement(self.cp, self.gantry.admin_port, [CLUSTER])
        return self

    def close(self):
        if self.measure:
            self.measure.close()
        if self.agent:
            self.agent.stop()
        self.manager.cleanup()
        if self.network:
            self.network.close()
        if self.cp:
            self.cp.stop()

    # --- API helpers

    def _exists(self, path):
        try:
            self.api.request("GET", path)
            return True
        except ApiError:
            return False

    def apply(self, obj):
        path = f"{PATHS[obj['kind']]}/{obj['metadata']['name']}?fieldManager=e2e&force=true"
        return self.api.request("PATCH", path, obj, "application/apply-patch+yaml")

    def patch(self, kind, name, body):
        return self.api.request("PATCH", f"{PATHS[kind]}/{name}", body,
                                "application/strategic-merge-patch+json")

    def pods(self, track):
        sel = f"app%3Dweb%2Ctrack%3D{track}"
        return self.api.request("GET", f"/api/v1/namespaces/default/pods?labelSelector={sel}")["items"]

    @staticmethod
    def pod_ready(p):
        return any(c["type"] == "Ready" and c["status"] == "True"
                   for c in (p.get("status") or {}).get("conditions", []))

    def ready_pods(self, track):
        return [p for p in self.pods(track)
                if self.pod_ready(p) and not p["metadata"].get("deletionTimestamp")]

    # --- convergence (bounded waits)

    def wait_rollout(self, name, track, replicas, timeout=120):
        def done():
            d = self.api.request("GET", f"{PATHS['Deployment']}/{name}")
            st = d.get("status") or {}
            return (st.get("observedGeneration", 0) >= d["metadata"]["generation"]
                    and st.get("updatedReplicas") == replicas and st.get("readyReplicas") == replicas
                    and st.get("availableReplicas") == replicas
                    and len(self.pods(track)) == replicas)  # old pods terminated and gone
        wait_for(done, timeout, f"deployment {name} to roll out {replicas} replicas")

    def config_dump(self):
        c = http.client.HTTPConnection("127.0.0.1", self.gantry.admin_port, timeout=5)
        try:
            c.request("GET", "/config_dump")
            return json.loads(c.getresponse().read())
        finally:
            c.close()

    def proxy_set(self):
        c = http.client.HTTPConnection("127.0.0.1", self.gantry.admin_port, timeout=5)
        try:
            c.request("GET", "/upstreams")
            return upstream_sets(c.getresponse().read(), [CLUSTER])[CLUSTER]
        finally:
            c.close()

    def wait_proxy_matches(self, track, timeout=30):
        """Until the proxy's endpoints are exactly the ready pods of `track`."""
        def same():
            want = frozenset((f"{p['status']['podIP']}:{POD_PORT}", True) for p in self.ready_pods(track))
            return want and self.proxy_set() == want
        wait_for(same, timeout, f"the proxy to route to exactly the ready {track} pods", interval=0.05)

    # --- scenarios

    def scenario(self, name, action, settle=1.0, path="/"):
        """Runs `action` under load (requests for `path`); records and returns its result."""
        errors_before = self.gantry.upstream_errors()
        load = LoadProcess(self.gantry.http_port, HOST, rate=self.rate, connections=self.connections,
                           watch_header=HEADER, path=path).start()
        t0 = load.t_start
        notes, error = {}, None
        try:
            time.sleep(settle)
            notes = action() or {}
            time.sleep(settle)
        except Exception as e:  # noqa: BLE001 - reported with the counts
            error = f"{type(e).__name__}: {e}"
        finally:
            load.stop()
        t1 = load.t_end
        events, changes = self.measure.snapshot()
        prop = propagation(events, changes, SERVICE, CLUSTER, t0, t1)
        errors = {k: v - errors_before.get(k, 0) for k, v in self.gantry.upstream_errors().items()
                  if v > errors_before.get(k, 0)}
        if errors:
            notes["proxy upstream errors (absorbed or not)"] = errors
        if len(load.header_values) > 1:
            notes[f"{HEADER} values seen by the backends"] = len(load.header_values)
        res = {"scenario": name, **load.summary(), "propagation": prop, "notes": notes,
               "error": error, "failures_sample": [
                   (round(t - t0, 3), m, k, d[:160]) for t, m, k, d in load.failures[:10]],
               "failures": [(round(t - t0, 3), m, k, d[:160]) for t, m, k, d in load.failures[:1000]],
               "agent_errors": list(self.agent.errors)}
        self.agent.errors.clear()
        self.results.append(res)
        print(format_result(res), flush=True)
        return res

    def setup_blue(self, replicas):
        self.apply(service("blue"))
        self.route_rev = 0
        self.revs = {}
        self.apply(route(f"rev-{self.route_rev}"))
        self.apply(deployment("blue", "blue", replicas, self.prestop, self.grace))
        self.wait_rollout("blue", "blue", replicas)
        self.wait_proxy_matches("blue")
        wait_for(lambda: self.gantry.get()[0] == 200, 30, "the route to answer 200")

    def rolling_update(self, replicas, name="blue", title=None):
        self.revs[name] = self.revs.get(name, 0) + 1

        def act():
            self.patch("Deployment", name, {"spec": {"template": {"metadata": {
                "annotations": {"e2e.gantry.dev/rev": str(self.revs[name])}}}}})
            self.wait_rollout(name, name, replicas, timeout=180)
            self.wait_proxy_matches(name)
            return {"replicas": replicas}
        return self.scenario(title or f"rolling update ({replicas} replicas, maxSurge 25%, "
                             f"maxUnavailable 0, preStop {self.prestop}s)", act)

    def rolling_update_without_prestop(self, replicas, name="green"):
        """For comparison (no target): the same rollout when pods have no preStop
        delay, so the kubelet SIGTERMs them while the proxy may still route there."""
        self.patch("Deployment", name, {"spec": {"template": {"spec": {"containers": [
            {"name": "echo", "lifecycle": None}]}}}})
        self.wait_rollout(name, name, replicas, timeout=180)  # that change is a rollout too
        self.wait_proxy_matches(name)
        return self.rolling_update(replicas, name, f"rolling update without preStop ({replicas} "
                                   "replicas; comparison, no target)")

    def scale(self, steps):
        def act():
            for n in steps:
                self.patch("Deployment", "blue", {"spec": {"replicas": n}})
                self.wait_rollout("blue", "blue", n, timeout=180)
                self.wait_proxy_matches("blue")
            return {"steps": steps}
        return self.scenario("scale " + " -> ".join(str(s) for s in steps), act)

    def sigkill(self, kills=1, policy=None):
        """`policy`: the route's rule policy during the scenario (e.g. RETRY_ON_RESET)."""
        if policy:
            self.apply(route(f"rev-{self.route_rev}", policy))
            wait_for(lambda: any(r.get("policy", {}).get("retry") for rt in self.config_dump()["routes"]
                                 for r in rt.get("rules", [])), 15, "the retry policy to be applied")

        def act():
            killed = []
            for i in range(kills):
                pods = sorted(p["metadata"]["name"] for p in self.ready_pods("blue"))
                name = pods[i % len(pods)]
                runner = self.agent.pods()[f"default/{name}"]
                before = runner.restarts
                self.agent.crash(name)
                wait_for(lambda: runner.restarts > before, 10, f"{name} to be restarted", interval=0.02)
                wait_for(lambda: runner.ready, 20, f"{name} to be ready again", interval=0.02)
                self.wait_proxy_matches("blue")
                killed.append(name)
                time.sleep(1)
            return {"killed": killed}
        # Requests take 50 ms at the backend, so some are always in flight on the
        # pod when it dies: those are the ones a retry must save.
        what = "one pod" if kills == 1 else f"{kills} pods, one after the other,"
        with_policy = f", route policy {json.dumps(policy)}" if policy else ""
        try:
            return self.scenario(f"{what} SIGKILLed (restarted by the agent), requests of 50 ms"
                                 f"{with_policy}", act, path="/delay/50")
        finally:
            if policy:
                self.apply(route(f"rev-{self.route_rev}"))

    def readiness_flap(self, cycles, down_seconds=2.0):
        def act():
            name = sorted(p["metadata"]["name"] for p in self.ready_pods("blue"))[-1]
            runner = self.agent.pods()[f"default/{name}"]
            for _ in range(cycles):
                self.api.request("PATCH", f"/api/v1/namespaces/default/pods/{name}",
                                 {"metadata": {"annotations": {FAIL_READINESS_ANNOTATION: "true"}}},
                                 "application/strategic-merge-patch+json")
                wait_for(lambda: not runner.ready, 10, f"{name} to go not ready", interval=0.02)
                self.wait_proxy_matches("blue")
                time.sleep(down_seconds)
                self.api.request("PATCH", f"/api/v1/namespaces/default/pods/{name}",
                                 {"metadata": {"annotations": {FAIL_READINESS_ANNOTATION: "false"}}},
                                 "application/strategic-merge-patch+json")
                wait_for(lambda: runner.ready, 10, f"{name} to be ready again", interval=0.02)
                self.wait_proxy_matches("blue")
            return {"pod": name, "cycles": cycles}
        return self.scenario(f"readiness flapping on one pod ({cycles} cycles)", act)

    def blue_green(self, replicas):
        # green is rolled out before the load starts: the scenario is the switch.
        self.apply(deployment("green", "green", replicas, self.prestop, self.grace))
        self.wait_rollout("green", "green", replicas)

        def act():
            self.patch("Service", SERVICE, {"spec": {"selector": {"track": "green"}}})
            self.wait_proxy_matches("green")
            return {"replicas": replicas}
        return self.scenario(f"blue/green: Service selector switched to a new Deployment "
                             f"({replicas} replicas)", act)

    def route_edits(self, seconds):
        def act():
            start = time.monotonic()
            for i in range(seconds):
                self.route_rev += 1
                self.apply(route(f"rev-{self.route_rev}"))
                left = start + i + 1 - time.monotonic()
                if left > 0:
                    time.sleep(left)
            want = f"rev-{self.route_rev}"

            def latest():
                status, body = self.gantry.get()
                return status == 200 and json.loads(body)["headers"].get(HEADER) == want
            wait_for(latest, 15, f"the last edit ({want}) to reach the backend")
            return {"edits": seconds}
        res = self.scenario(f"GatewayRoute edited every second for {seconds} s", act)
        return res


# ------------------------------------------------------------------ report

def merge(dicts):
    out = {}
    for d in dicts:
        for k, v in d.items():
            out[k] = out.get(k, 0) + v
    return out


def fmt_failed(d):
    return ", ".join(f"{k} {v}" for k, v in sorted(d.items())) or "0"


def format_result(r):
    p = r["propagation"]
    prop = (f"p50 {p['p50']} ms, p99 {p['p99']} ms, max {p['max']} ms over {p['timed']} changes"
            if p.get("timed") else "no endpoint change")
    extra = []
    if p.get("superseded"):
        extra.append(f"{p['superseded']} superseded")
    if p.get("before_our_watch"):
        extra.append(f"{p['before_our_watch']} applied before our watch saw them (0 ms)")
    if p.get("never_applied"):
        extra.append(f"{p['never_applied']} NEVER APPLIED")
    lines = [f"== {r['scenario']}",
             f"   sent {r['sent']} ({r['sent_by_method']}) in {r['seconds']} s, late {r['late']}",
             f"   failed: {fmt_failed(r['failed'])}; idempotent failed: {fmt_failed(r['failed_idempotent'])}",
             f"   propagation (EndpointSlice watch -> proxy /upstreams): {prop}"
             + (f" ({', '.join(extra)})" if extra else "")]
    if r["notes"]:
        lines.append(f"   notes: {r['notes']}")
    if r["error"]:
        lines.append(f"   ERROR: {r['error']}")
    for f in r["failures_sample"]:
        lines.append(f"   failure at +{f[0]} s: {f[1]} {f[2]} {f[3]}")
    for e in r["agent_errors"][:5]:
        lines.append(f"   node agent: {e}")
    return "\n".join(lines)


def markdown(results, env, command):
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    rows = []
    for r in results:
        p = r["propagation"]
        lat = f"{p['p50']} / {p['p99']} / {p['max']} ({p['timed']})" if p.get("timed") else "–"
        rows.append(f"| {r['scenario']} | {r['sent']} | {fmt_failed(r['failed'])} | "
                    f"{fmt_failed(r['failed_idempotent'])} | {lat} |")
    pooled = [x for r in results for x in r["propagation"].get("samples", [])]
    if pooled:
        rows.append(f"| all scenarios | {sum(r['sent'] for r in results)} | "
                    f"{fmt_failed(merge(r['failed'] for r in results))} | "
                    f"{fmt_failed(merge(r['failed_idempotent'] for r in results))} | "
                    f"{percentile(pooled, 50):.1f} / {percentile(pooled, 99):.1f} / "
                    f"{max(pooled):.1f} ({len(pooled)}) |")

    def shown(argv):
        text = " ".join(argv[1:]).replace(str(env.workdir), "$WORKDIR")
        return re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", text)
    return "\n".join([
        "## Pod churn (`hack/bench.sh churn`)",
        "",
        f"Measured {date} with `{command}` (tests/e2e/churn.py): a real kube-apiserver +",
        "kube-controller-manager (deployment, replicaset, endpointslice controllers), the",
        "test node agent (tests/e2e/node_agent.py) running gantry-echo pods in a network",
        "namespace, and gantry-controller + gantry-proxy with the arguments `helm template",
        "charts/gantry` renders (kubeconfig, socket path and listen addresses substituted).",
        f"Load: {env.rate} requests/s on {env.connections} keep-alive connections, every 10th a",
        f"POST; pods: readinessProbe every 1 s, preStop sleep {env.prestop} s,",
        f"terminationGracePeriodSeconds {env.grace}. Propagation: our own EndpointSlice watch",
        "seeing a Service's endpoint set change → the proxy's /upstreams (polled every 2 ms)",
        "showing that set, in ms (p50 / p99 / max, and the number of changes timed).",
        "",
        f"Controller: `gantry-controller {shown(env.gantry.controller_argv)}`;",
        f"proxy: `gantry-proxy {shown(env.gantry.proxy_argv)}`.",
        "",
        "| scenario | requests | failed (by kind) | idempotent failed | propagation ms p50 / p99 / max (n) |",
        "| --- | ---: | --- | --- | --- |",
        *rows,
        "",
        *failure_lines(results),
    ])


def failure_lines(results):
    """One line per scenario with failures: count by (method, kind, answer)."""
    out = []
    for r in results:
        seen = {}
        for _, m, k, d in r["failures"]:
            key = (m, k, d.strip()[:80])
            seen[key] = seen.get(key, 0) + 1
        if seen:
            out.append(f"- {r['scenario']}: " + "; ".join(
                f"{n} × {m} {k}" + (f" \"{d}\"" if d and not d.startswith(("TimeoutError", "Connection"))
                                    else f" ({d})" if d else "")
                for (m, k, d), n in sorted(seen.items())))
        if r["error"]:
            out.append(f"- {r['scenario']}: did not complete: {r['error']}")
    if out:
        out = ["Failed requests (method, kind, the proxy's answer):", ""] + out + [""]
    return out


END_MARK = "<!-- end of the generated pod churn report; notes written by hand follow -->"


def write_docs(text):
    """Writes `text` as the "Pod churn" section of docs/BENCHMARKS.md, keeping
    whatever follows END_MARK in that section (notes written by hand)."""
    path = REPO / "docs" / "BENCHMARKS.md"
    doc = path.read_text()
    text = text.rstrip("\n") + "\n\n" + END_MARK + "\n"
    start = doc.find("## Pod churn")
    if start < 0:
        path.write_text(doc.rstrip("\n") + "\n\n" + text)
        return
    end = doc.find("\n## ", start + 1)
    end = len(doc) if end < 0 else end + 1
    mark = doc.find(END_MARK, start, end)
    rest = doc[mark + len(END_MARK) + 1:end] if mark >= 0 else "\n"
    path.write_text(doc[:start] + text + rest + doc[end:])


def dump_timeline(env, path):
    """Slice events, proxy changes and pod events on one clock, for diagnosis."""
    events, changes = env.measure.snapshot()
    rows = [(t, "slice", f"{svc} rv={rv} {sorted(st)}") for t, svc, rv, st in events]
    rows += [(t, "proxy", str({c: sorted(s) for c, s in st.items()})) for t, st in changes]
    rows += [(t, "pod", f"{p} {w}") for t, p, w in env.agent.events]
    t0 = min(r[0] for r in rows) if rows else 0
    wall = time.time() - time.monotonic()  # to compare with the proxy's and controller's logs

    def stamp(t):
        return datetime.fromtimestamp(t + wall, timezone.utc).strftime("%H:%M:%S.%f")[:-3]
    path.write_text("".join(f"{t - t0:9.3f} {stamp(t)} {k:5} {v}\n" for t, k, v in sorted(rows)))


def run(short, rate, connections, docs, command):
    keep = os.environ.get("GANTRY_E2E_WORKDIR")  # keep the logs there instead of a temp dir
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
    with (contextlib.nullcontext(keep) if keep else tempfile.TemporaryDirectory(prefix="gantry-e2e-")) as d:
        env = ChurnEnv(Path(d), prestop=2 if short else 3, grace=15, rate=rate, connections=connections)
        try:
            env.start()
            if short:
                env.setup_blue(3)
                env.rolling_update(3)
                env.sigkill()
                env.blue_green(3)
                env.route_edits(5)
            else:
                env.setup_blue(10)
                env.rolling_update(10)
                env.scale([50, 3])
                env.scale([10])
                env.sigkill(3)
                env.sigkill(3, policy=RETRY_ON_RESET)
                env.readiness_flap(3)
                env.blue_green(10)
                env.route_edits(30)
                env.rolling_update_without_prestop(10)
        finally:
            if keep and env.measure:
                dump_timeline(env, Path(d) / "timeline.txt")
            print(f"logs: {d}{'' if keep else ' (removed)'}")
            env.close()
        text = markdown(env.results, env, command)
        print("\n" + text)
        if docs:
            write_docs(text)
        json_out = os.environ.get("GANTRY_CHURN_JSON")
        if json_out:
            Path(json_out).write_text(json.dumps(env.results, indent=1, default=str))
        return env.results


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--measure":
        measure_main(json.loads(sys.argv[2]))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--short", action="store_true", help="the short version (ctest's)")
    ap.add_argument("--rate", type=int, default=200, help="requests per second")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--write-docs", action="store_true",
                    help="write the report into docs/BENCHMARKS.md (section Pod churn)")
    ap.add_argument("--command", default="hack/bench.sh churn", help="the command named in the report")
    a = ap.parse_args()
    print(f"gantry binaries: {BIN}", flush=True)
    results = run(a.short, a.rate, a.connections, a.write_docs, a.command)
    bad = [r["scenario"] for r in results if r["error"]]
    return 1 if bad else 0


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.exit(main())
