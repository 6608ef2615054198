"""Gateway API through gantry-controller --source kube --gateway-api against a
real kube-apiserver + etcd, with the standard-channel CRDs of the version
tests/conformance pins: GatewayClass / Gateway / HTTPRoute statuses written
back, traffic reaching the backend with the listener's hostname intersection,
a missing Service and a cross-namespace reference explained in the route's
status (and fixed by a ReferenceGrant) while the other routes serve; a
GRPCRoute's status written to grpcroutes/status, refused where an older
HTTPRoute has its hostname and accepted once that HTTPRoute is gone (its gRPC
traffic is what the GATEWAY-GRPC conformance profile tests).
The controller runs as the Helm chart runs it (--gateway-bind-address=proxy):
Gateways are served on the proxy's own listener. (The official conformance
suite, in tests/conformance/, runs each Gateway on its own address.)
"""
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "kube"))

from conftest import CONVERGE_TIMEOUT, REPO, Proxy, new_manager, tail, wait_until  # noqa: E402
from kubeapi import (ControlPlane, KubeController, TestHosts, endpoint_slice, percentile,  # noqa: E402
                     service)

CONTROLLER = "gantry.dev/gateway-controller"
ADDRESS = "192.0.2.10"  # written into Gateway status only, never dialled


def gateway_api_crds():
    """The standard-channel CRDs of the module tests/conformance pins (the Go
    module cache, filled by `go mod download` there when missing)."""
    go_dir = os.environ.get("GANTRY_GO_DIR") or str(Path.home() / ".cache" / "gantry" / "go")
    env = dict(os.environ, GOPATH=go_dir, GOMODCACHE=f"{go_dir}/mod", GOCACHE=f"{go_dir}/build",
               GOTOOLCHAIN="local", GOFLAGS="-mod=readonly")
    out = subprocess.run(["go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/gateway-api"],
                         cwd=REPO / "tests" / "conformance", env=env, capture_output=True,
                         text=True, timeout=300)
    if out.returncode != 0 or not out.stdout.strip():
        subprocess.run(["go", "mod", "download", "sigs.k8s.io/gateway-api"],
                       cwd=REPO / "tests" / "conformance", env=env, check=True, timeout=300)
        out = subprocess.run(["go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/gateway-api"],
                             cwd=REPO / "tests" / "conformance", env=env, capture_output=True,
                             text=True, timeout=300, check=True)
    return Path(out.stdout.strip()) / "config" / "crd" / "standard"


@pytest.fixture(scope="module")
def env():
    manager = new_manager()
    with tempfile.TemporaryDirectory(prefix="gantry-gw-") as d:
        workdir = Path(d)
        cp = ControlPlane(workdir / "cp")
        hosts = None
        try:
            cp.start()
            cp.install_crd()
            cp.kubectl("apply", "--server-side", "-f", str(gateway_api_crds()))
            wait_until(lambda: cp.kubectl("get", "httproutes", check=False) is not None
                       and cp.kubectl("get", "referencegrants", "-A", check=False) is not None,
                       60, "the Gateway API CRDs")
            hosts = TestHosts(manager, workdir)
            for name in ["a", "b"]:
                hosts.echo(name)
            proxy = Proxy(manager, workdir, workdir / "control.sock")
            proxy.start()
            controller = KubeController(manager, workdir, cp.kubeconfig, workdir / "control.sock",
                                        extra_args=["--gateway-api", f"--gateway-address={ADDRESS}",
                                                    "--gateway-bind-address=proxy"])
            controller.start()
            controller.wait_ready()
            cp.apply({"kind": "GatewayClass", "metadata": {"name": "gantry"},
                      "spec": {"controllerName": CONTROLLER}})
            cp.apply({"kind": "Namespace", "metadata": {"name": "apps", "labels": {"team": "web"}}})
            cp.apply({"kind": "Gateway", "metadata": {"name": "gw", "namespace": "default"},
                      "spec": {"gatewayClassName": "gantry", "listeners": [
                          {"name": "http", "port": 80, "protocol": "HTTP",
                           "allowedRoutes": {"namespaces": {"from": "All"}}},
                          {"name": "foo", "port": 80, "protocol": "HTTP", "hostname": "*.foo.test"}]}})
            yield cp, hosts, proxy, controller
        finally:
            manager.cleanup()
            if hosts:
                hosts.close()
            cp.stop()


def conditions(obj, *path):
    for p in path:
        obj = obj[p]
    return {c["type"]: c for c in obj.get("conditions", [])}


def route(name, spec, namespace="default"):
    return {"kind": "HTTPRoute", "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def parent_conditions(cp, name, namespace="default", kind="HTTPRoute"):
    st = cp.get(kind, name, namespace).get("status") or {}
    parents = [p for p in st.get("parents", []) if p.get("controllerName") == CONTROLLER]
    return {c["type"]: (c["status"], c["reason"]) for c in parents[0]["conditions"]} if parents else {}


def test_statuses_and_traffic(env):
    cp, hosts, proxy, controller = env
    cp.apply(service("web"))
    cp.apply(endpoint_slice("web", [hosts.echos["a"]]))
    cp.apply(route("web", {"parentRefs": [{"name": "gw", "sectionName": "foo"}],
                           "hostnames": ["a.foo.test", "a.bar.test"],
                           "rules": [{"backendRefs": [{"name": "web", "port": 8080}]}]}))

    def accepted():
        gc = cp.get("GatewayClass", "gantry")
        gw = cp.get("Gateway", "gw")
        return (conditions(gc, "status").get("Accepted", {}).get("status") == "True"
                and conditions(gw, "status").get("Programmed", {}).get("status") == "True"
                and parent_conditions(cp, "web").get("Accepted") == ("True", "Accepted") and gw)
    gw = wait_until(accepted, CONVERGE_TIMEOUT, "GatewayClass, Gateway and HTTPRoute accepted",
                    on_timeout=lambda: tail(controller.log))
    assert gw["status"]["addresses"] == [{"type": "IPAddress", "value": ADDRESS}]
    listeners = {l["name"]: l for l in gw["status"]["listeners"]}
    assert listeners["foo"]["attachedRoutes"] == 1
    assert listeners["http"]["attachedRoutes"] == 0  # the route names the section foo
    for c in gw["status"]["conditions"]:
        assert c["observedGeneration"] == gw["metadata"]["generation"]

    # Served for the intersection with the listener's *.foo.test only.
    wait_until(lambda: proxy.get("/", host="a.foo.test").backend == "a", CONVERGE_TIMEOUT,
               "a.foo.test to reach a", on_timeout=lambda: tail(controller.log))
    assert proxy.get("/", host="a.bar.test").status == 404


def test_bad_references_are_explained_and_others_keep_serving(env):
    cp, hosts, proxy, controller = env
    cp.apply(service("ok"))
    cp.apply(endpoint_slice("ok", [hosts.echos["b"]]))
    cp.apply(route("ok", {"parentRefs": [{"name": "gw", "sectionName": "http"}],
                          "hostnames": ["ok.test"],
                          "rules": [{"backendRefs": [{"name": "ok", "port": 8080}]}]}))
    cp.apply(route("missing", {"parentRefs": [{"name": "gw", "sectionName": "http"}],
                               "hostnames": ["missing.test"],
                               "rules": [{"backendRefs": [{"name": "nope", "port": 8080}]}]}))
    # From namespace apps to Service default/ok: refused until a ReferenceGrant exists.
    cp.apply(route("cross", {"parentRefs": [{"name": "gw", "namespace": "default"}],
                             "hostnames": ["cross.test"],
                             "rules": [{"backendRefs": [{"name": "ok", "namespace": "default",
                                                         "port": 8080}]}]}, namespace="apps"))
    wait_until(lambda: parent_conditions(cp, "missing").get("ResolvedRefs") == ("False", "BackendNotFound"),
               CONVERGE_TIMEOUT, "missing: BackendNotFound", on_timeout=lambda: tail(controller.log))
    wait_until(lambda: parent_conditions(cp, "cross", "apps").get("ResolvedRefs") == ("False", "RefNotPermitted"),
               CONVERGE_TIMEOUT, "cross: RefNotPermitted", on_timeout=lambda: tail(controller.log))
    wait_until(lambda: proxy.get("/", host="ok.test").backend == "b", CONVERGE_TIMEOUT, "ok.test to reach b")
    assert proxy.get("/", host="missing.test").status == 500
    assert proxy.get("/", host="cross.test").status == 500

    cp.apply({"kind": "ReferenceGrant", "metadata": {"name": "apps-to-ok", "namespace": "default"},
              "spec": {"from": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute",
                                 "namespace": "apps"}],
                       "to": [{"group": "", "kind": "Service", "name": "ok"}]}})
    wait_until(lambda: parent_conditions(cp, "cross", "apps").get("ResolvedRefs") == ("True", "ResolvedRefs"),
               CONVERGE_TIMEOUT, "cross: resolved by the grant", on_timeout=lambda: tail(controller.log))
    wait_until(lambda: proxy.get("/", host="cross.test").backend == "b", CONVERGE_TIMEOUT,
               "cross.test to reach b")


def test_grpcroute_status_and_conflict_with_an_httproute(env):
    cp, hosts, proxy, controller = env
    cp.apply(service("grpc-svc"))
    cp.apply(endpoint_slice("grpc-svc", [hosts.echos["a"]]))
    # The HTTPRoute is created first (and sorts first by name on a same-second tie).
    cp.apply(route("a-http", {"parentRefs": [{"name": "gw", "sectionName": "http"}],
                              "hostnames": ["grpc.test"],
                              "rules": [{"backendRefs": [{"name": "grpc-svc", "port": 8080}]}]}))
    wait_until(lambda: parent_conditions(cp, "a-http").get("Accepted") == ("True", "Accepted"),
               CONVERGE_TIMEOUT, "a-http accepted", on_timeout=lambda: tail(controller.log))
    cp.apply({"kind": "GRPCRoute", "metadata": {"name": "b-grpc", "namespace": "default"},
              "spec": {"parentRefs": [{"name": "gw", "sectionName": "http"}],
                       "hostnames": ["grpc.test"],
                       "rules": [{"matches": [{"method": {"service": "pkg.Echo", "method": "Get"}}],
                                  "backendRefs": [{"name": "grpc-svc", "port": 8080}]}]}})
    wait_until(lambda: parent_conditions(cp, "b-grpc", kind="GRPCRoute").get("Accepted")
               == ("False", "HostnameConflict"), CONVERGE_TIMEOUT, "b-grpc: HostnameConflict",
               on_timeout=lambda: tail(controller.log))
    assert parent_conditions(cp, "a-http").get("Accepted") == ("True", "Accepted")
    # The HTTPRoute keeps serving its hostname.
    wait_until(lambda: proxy.get("/", host="grpc.test").backend == "a", CONVERGE_TIMEOUT,
               "grpc.test to reach a through the HTTPRoute")

    cp.delete("HTTPRoute", "a-http")
    wait_until(lambda: parent_conditions(cp, "b-grpc", kind="GRPCRoute") ==
               {"Accepted": ("True", "Accepted"), "ResolvedRefs": ("True", "ResolvedRefs")},
               CONVERGE_TIMEOUT, "b-grpc accepted once the HTTPRoute is gone",
               on_timeout=lambda: tail(controller.log))
    gw = cp.get("Gateway", "gw")
    kinds = {k["kind"] for l in gw["status"]["listeners"] for k in l["supportedKinds"]}
    assert kinds == {"HTTPRoute", "GRPCRoute"}
    # Now only gRPC calls match on grpc.test: a GET of / is no route's.
    wait_until(lambda: proxy.get("/", host="grpc.test").status == 404, CONVERGE_TIMEOUT,
               "grpc.test / to be unrouted")


def test_a_route_created_again_under_its_name_gets_its_status(env):
    # Deleted and created again at once (the conformance suite does this when
    # two tests share a route name): the new object has no status, and the
    # controller must write it even though it equals what it wrote to the old one.
    cp, hosts, proxy, controller = env
    cp.apply(service("again"))
    cp.apply(endpoint_slice("again", [hosts.echos["a"]]))
    spec = {"parentRefs": [{"name": "gw", "sectionName": "http"}], "hostnames": ["again.test"],
            "rules": [{"backendRefs": [{"name": "again", "port": 8080}]}]}
    cp.apply(route("again", spec))
    wait_until(lambda: parent_conditions(cp, "again").get("Accepted") == ("True", "Accepted"),
               CONVERGE_TIMEOUT, "again accepted", on_timeout=lambda: tail(controller.log))
    for _ in range(3):
        uid = cp.get("HTTPRoute", "again")["metadata"]["uid"]
        cp.delete("HTTPRoute", "again")
        cp.apply(route("again", spec))
        assert cp.get("HTTPRoute", "again")["metadata"]["uid"] != uid
        wait_until(lambda: parent_conditions(cp, "again") ==
                   {"Accepted": ("True", "Accepted"), "ResolvedRefs": ("True", "ResolvedRefs")},
                   CONVERGE_TIMEOUT, "the new again accepted", on_timeout=lambda: tail(controller.log))


def test_httproute_edit_reaches_traffic_latency(env):
    """An HTTPRoute edit (a header modifier's value) timed from the PATCH until
    the proxy's applied snapshot has it, 100 times: docs/BENCHMARKS.md's
    propagation figure for Gateway API (target p99 < 100 ms)."""
    cp, hosts, proxy, _ = env
    cp.apply(service("lat-gw"))
    cp.apply(endpoint_slice("lat-gw", [hosts.echos["a"]]))
    cp.apply(route("lat-gw", {
        "parentRefs": [{"name": "gw", "sectionName": "http"}], "hostnames": ["lat.gw.test"],
        "rules": [{"filters": [{"type": "RequestHeaderModifier",
                                "requestHeaderModifier": {"set": [{"name": "x-v", "value": "v0"}]}}],
                   "backendRefs": [{"name": "lat-gw", "port": 8080}]}]}))

    def applied_value():
        for r in proxy.config_dump().get("routes", []):
            if r.get("name") == "lat-gw":
                return r["rules"][0]["filters"]["requestHeaders"]["set"][0]["value"]
        return None

    wait_until(lambda: applied_value() == "v0", CONVERGE_TIMEOUT, "the route to be served")
    samples, with_write = [], []
    for i in range(1, 101):
        want = f"v{i}"
        t_sent = time.monotonic()
        cp.patch_json("HTTPRoute", "lat-gw", [{
            "op": "replace", "path": "/spec/rules/0/filters/0/requestHeaderModifier/set/0/value",
            "value": want}])
        t0 = time.monotonic()  # the API write has returned
        wait_until(lambda: applied_value() == want, 10, f"edit {i}: the proxy to apply {want}",
                   interval=0.001)
        t1 = time.monotonic()
        samples.append((t1 - t0) * 1000)
        with_write.append((t1 - t_sent) * 1000)
    print(f"\nHTTPRoute PATCH returned -> proxy applied, 100 edits: "
          f"p50 {percentile(samples, 50):.1f} ms, p99 {percentile(samples, 99):.1f} ms, "
          f"max {max(samples):.1f} ms; from PATCH sent: p50 {percentile(with_write, 50):.1f} ms, "
          f"p99 {percentile(with_write, 99):.1f} ms")
    # Traffic follows the last edit.
    r = proxy.get("/", host="lat.gw.test")
    assert r.status == 200 and b'"x-v":"v100"' in r.body
