"""gantry-controller --source kube against a real kube-apiserver + etcd.

One control plane (and one proxy + controller) per module, always stopped.
Objects are created through the API (kubectl or urllib with the admin cert);
backends are gantry-echo processes on test-host addresses (kube/kubeapi.py
says why not 127.0.0.x). Covers: a GatewayRoute reaching its backend with the
status written back; EndpointSlice updates moving traffic (propagation
latency over 100 updates, printed); bad routes explained in their status while
the others serve; Ingress with IngressClass, default class and status
address; the controller killed (the proxy keeps serving) and back (resync); 401,
403 and TLS failures named in the log.
"""

import sys
import tempfile
import time
import urllib.parse
from datetime import datetime
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "kube"))

from conftest import CONVERGE_TIMEOUT, Proxy, count_backends, new_manager, tail, wait_until  # noqa: E402
from kubeapi import (ControlPlane, KubeController, TestHosts, cluster_endpoints,  # noqa: E402
                     endpoint_slice, gateway_route, percentile, service, simple_route)

STATUS_ADDRESS = "192.0.2.200"  # only written into Ingress status, never dialled


def event_time(event):
    """An Event's eventTime (the API serves it with microseconds) as a datetime."""
    return datetime.fromisoformat(event["eventTime"].replace("Z", "+00:00"))


class Env:
    def __init__(self, manager, workdir, cp, hosts):
        self.manager, self.workdir, self.cp, self.hosts = manager, workdir, cp, hosts
        self.socket = workdir / "control.sock"
        self.proxy = Proxy(manager, workdir, self.socket)
        self.controller = None

    def start_controller(self):
        self.controller = KubeController(
            self.manager, self.workdir, self.cp.kubeconfig, self.socket,
            extra_args=["--ingress-status-address", STATUS_ADDRESS]).start()
        return self.controller

    def wait_backend(self, host, expected, timeout=CONVERGE_TIMEOUT):
        last = {}

        def check():
            r = self.proxy.get("/", host=host)
            last["r"] = r
            return r.status == 200 and r.backend == expected
        wait_until(check, timeout, f"{host} to reach {expected}",
                   on_timeout=lambda: f"last: {last.get('r')}\n{tail(self.controller.log)}")


@pytest.fixture(scope="module")
def env():
    manager = new_manager()
    with tempfile.TemporaryDirectory(prefix="gantry-kt-") as d:
        workdir = Path(d)
        cp = ControlPlane(workdir / "cp")
        hosts = None
        try:
            cp.start()
            cp.install_crd()
            hosts = TestHosts(manager, workdir)
            for name in ["a", "b", "c"]:
                hosts.echo(name)
            e = Env(manager, workdir, cp, hosts)
            e.proxy.start()
            e.start_controller()
            e.controller.wait_ready()
            yield e
        finally:
            manager.cleanup()
            if hosts:
                hosts.close()
            cp.stop()


def test_route_reaches_backend_and_status_is_written(env):
    cp, h = env.cp, env.hosts.echos
    cp.apply(service("web"))
    cp.apply(endpoint_slice("web", [h["a"]]))
    cp.apply(simple_route("web", "web.kube.test", "web"))
    env.wait_backend("web.kube.test", "a")

    def programmed():
        conds = cp.route_conditions("web")
        return all(conds.get(t, {}).get("status") == "True"
                   for t in ("Accepted", "ResolvedRefs", "Programmed")) and conds
    conds = wait_until(programmed, CONVERGE_TIMEOUT, "web's conditions to be True")
    obj = cp.get("GatewayRoute", "web")
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
    for c in conds.values():
        assert c["observedGeneration"] == obj["metadata"]["generation"]
        assert c["lastTransitionTime"]
    # No write storm: with nothing changing, the status is written once, not again
    # (the controller sees its own write come back and finds nothing to do).
    def writes():
        return env.controller.metrics()["gantry_controller_status_writes_total"]
    wait_until(lambda: writes() >= 1, CONVERGE_TIMEOUT, "the status write to be counted")
    before = writes()
    time.sleep(1.5)
    assert writes() == before


def test_endpointslice_updates_move_traffic_latency(env):
    cp, h, proxy = env.cp, env.hosts.echos, env.proxy
    cp.apply(service("lat"))
    cp.apply(endpoint_slice("lat", [h["a"]]))
    cp.apply(simple_route("lat", "lat.kube.test", "lat"))
    env.wait_backend("lat.kube.test", "a")
    assert count_backends(proxy.http_port, 10, host="lat.kube.test") == {"a": 10}

    samples, with_write = [], []
    addrs = [h["b"], h["a"]]
    for i in range(100):
        want = addrs[i % 2]
        t_sent = time.monotonic()
        cp.patch_json("EndpointSlice", "lat-1",
                      [{"op": "replace", "path": "/endpoints/0/addresses/0", "value": want}])
        t0 = time.monotonic()  # the API write has returned
        wait_until(lambda: cluster_endpoints(proxy, "default/lat:8080") == [want], 10,
                   f"update {i}: the proxy to apply {want}", interval=0.001)
        t1 = time.monotonic()
        samples.append((t1 - t0) * 1000)
        with_write.append((t1 - t_sent) * 1000)
    print(f"\nEndpointSlice PATCH returned -> proxy applied, 100 updates: "
          f"p50 {percentile(samples, 50):.1f} ms, p99 {percentile(samples, 99):.1f} ms, "
          f"max {max(samples):.1f} ms; from PATCH sent: p50 {percentile(with_write, 50):.1f} ms, "
          f"p99 {percentile(with_write, 99):.1f} ms")
    # The last update pointed at a: traffic follows.
    assert count_backends(proxy.http_port, 10, host="lat.kube.test") == {"a": 10}
    cp.patch_json("EndpointSlice", "lat-1",
                  [{"op": "replace", "path": "/endpoints/0/addresses/0", "value": h["c"]}])
    env.wait_backend("lat.kube.test", "c")
    assert count_backends(proxy.http_port, 10, host="lat.kube.test") == {"c": 10}


def test_bad_routes_report_why_and_others_keep_serving(env):
    cp, h = env.cp, env.hosts.echos
    cp.apply(service("good"))
    cp.apply(endpoint_slice("good", [h["b"]]))
    cp.apply(simple_route("good", "good.kube.test", "good"))
    cp.apply(gateway_route("bad-regex", ["regex.kube.test"], [{
        "matches": [{"path": {"type": "RegularExpression", "value": "/(unclosed"}}],
        "backendRefs": [{"name": "good", "port": 8080}]}]))
    cp.apply(simple_route("no-service", "nosvc.kube.test", "missing"))
    cp.apply(gateway_route("no-secret", ["tls.kube.test"],
                           [{"backendRefs": [{"name": "good", "port": 8080}]}],
                           tls_secret="missing-cert"))
    env.wait_backend("good.kube.test", "b")

    expected = {  # route -> (condition, reason, words in the message)
        "bad-regex": ("Accepted", "Invalid", "regex"),
        "no-service": ("ResolvedRefs", "BackendNotFound", "missing"),
        "no-secret": ("ResolvedRefs", "SecretNotFound", "missing-cert"),
    }
    for route, (ctype, reason, word) in expected.items():
        def explained():
            c = cp.route_conditions(route).get(ctype)
            return c if c and c["status"] == "False" and c["reason"] == reason else None
        c = wait_until(explained, CONVERGE_TIMEOUT, f"{route}: {ctype}=False ({reason})",
                       on_timeout=lambda: str(cp.route_conditions(route)))
        assert word in c["message"], c
    assert cp.route_conditions("bad-regex")["Programmed"]["status"] == "False"
    # Every other route keeps serving.
    assert count_backends(env.proxy.http_port, 10, host="good.kube.test") == {"b": 10}
    assert count_backends(env.proxy.http_port, 5, host="web.kube.test") == {"a": 5}
    assert env.proxy.get("/", host="nosvc.kube.test").status == 500
    # Fixing the regex makes the route Accepted and served.
    cp.apply(gateway_route("bad-regex", ["regex.kube.test"], [{
        "matches": [{"path": {"type": "RegularExpression", "value": "/(closed)?"}}],
        "backendRefs": [{"name": "good", "port": 8080}]}]))
    env.wait_backend("regex.kube.test", "b")
    wait_until(lambda: cp.route_conditions("bad-regex")["Accepted"]["status"] == "True",
               CONVERGE_TIMEOUT, "bad-regex to be Accepted after the fix")

    # Kubernetes Events tell the same story (`kubectl describe gatewayroute`):
    # a Warning naming the field, then a Normal Accepted after the fix; none
    # for the route that was healthy all along. The order is the contract, and
    # eventTime (microseconds, strictly increasing per controller) carries it:
    # the API server lists Events by name, and first/lastTimestamp are whole
    # seconds, which both verdicts often share.
    def events(name):
        path = "/api/v1/namespaces/default/events?fieldSelector=" + urllib.parse.quote(
            f"involvedObject.kind=GatewayRoute,involvedObject.name={name}")
        return sorted(cp.request("GET", path)["items"], key=event_time)
    got = wait_until(lambda: (lambda ev: ev if len(ev) >= 2 else None)(events("bad-regex")),
                     CONVERGE_TIMEOUT, "two events for bad-regex",
                     on_timeout=lambda: str(events("bad-regex")))
    assert [(e["type"], e["reason"]) for e in got] == [("Warning", "Invalid"), ("Normal", "Accepted")], got
    assert event_time(got[0]) < event_time(got[1]), got
    for e in got:  # the one-second fields agree with eventTime
        assert e["firstTimestamp"] == e["lastTimestamp"] == e["eventTime"][:19] + "Z", e
    assert "regex" in got[0]["message"], got[0]
    uid = cp.get("GatewayRoute", "bad-regex")["metadata"]["uid"]
    assert {e["involvedObject"]["uid"] for e in got} == {uid}
    assert [(e["type"], e["reason"]) for e in events("no-service")] == [("Warning", "BackendNotFound")]
    assert events("good") == []


def test_ingress_class_default_class_and_status_address(env):
    cp, h = env.cp, env.hosts.echos
    cp.apply(service("ing"))
    cp.apply(endpoint_slice("ing", [h["c"]]))

    def ingress(name, host, cls):
        spec = {"rules": [{"host": host, "http": {"paths": [{
            "path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "ing", "port": {"number": 8080}}}}]}}]}
        if cls:
            spec["ingressClassName"] = cls
        return {"kind": "Ingress", "metadata": {"name": name, "namespace": "default"},
                "spec": spec}
    cp.apply(ingress("mine", "mine.kube.test", "gantry"))
    cp.apply(ingress("other", "other.kube.test", "nginx"))
    cp.apply(ingress("classless", "classless.kube.test", None))
    env.wait_backend("mine.kube.test", "c")
    assert env.proxy.get("/", host="other.kube.test").status == 404
    assert env.proxy.get("/", host="classless.kube.test").status == 404

    def lb(name):
        return (cp.get("Ingress", name).get("status") or {}).get("loadBalancer", {})
    wait_until(lambda: lb("mine").get("ingress") == [{"ip": STATUS_ADDRESS}], CONVERGE_TIMEOUT,
               "the Ingress status address")
    assert not lb("other").get("ingress")

    # An IngressClass of gantry's controller marked default claims classless Ingresses.
    cp.apply({"kind": "IngressClass",
              "metadata": {"name": "gantry", "annotations": {
                  "ingressclass.kubernetes.io/is-default-class": "true"}},
              "spec": {"controller": "gantry.dev/ingress-controller"}})
    env.wait_backend("classless.kube.test", "c")
    assert env.proxy.get("/", host="other.kube.test").status == 404
    cp.delete("IngressClass", "gantry")
    wait_until(lambda: env.proxy.get("/", host="classless.kube.test").status == 404,
               CONVERGE_TIMEOUT, "classless Ingresses to be dropped with the default class")


def test_controller_killed_proxy_serves_then_resyncs(env):
    cp, h, proxy = env.cp, env.hosts.echos, env.proxy
    cp.apply(service("life"))
    cp.apply(endpoint_slice("life", [h["a"]]))
    cp.apply(simple_route("life", "life.kube.test", "life"))
    env.wait_backend("life.kube.test", "a")
    version = proxy.config_dump()["version"]

    env.controller.kill()
    for _ in range(3):
        assert count_backends(proxy.http_port, 10, host="life.kube.test") == {"a": 10}
        time.sleep(0.2)
    assert proxy.ready()

    # Changes while the controller is away: nothing applies them ...
    cp.patch_json("EndpointSlice", "life-1",
                  [{"op": "replace", "path": "/endpoints/0/addresses/0", "value": h["b"]}])
    cp.apply(simple_route("life2", "life2.kube.test", "life"))
    time.sleep(0.5)
    assert proxy.config_dump()["version"] == version
    assert count_backends(proxy.http_port, 5, host="life.kube.test") == {"a": 5}

    # ... until a new controller lists everything and resyncs the proxy.
    env.start_controller().wait_ready()
    env.wait_backend("life.kube.test", "b")
    env.wait_backend("life2.kube.test", "b")
    assert cluster_endpoints(proxy, "default/life:8080") == [h["b"]]
    assert proxy.config_dump()["version"] > version


def test_auth_and_tls_errors_are_named_in_the_log(env):
    cp, workdir = env.cp, env.workdir
    cp.kubectl("create", "serviceaccount", "nobody", "-n", "default")
    sa_token = cp.kubectl("create", "token", "nobody", "-n", "default").strip()

    def kubeconfig(name, user, ca=str(cp.workdir / "ca.crt")):
        path = workdir / f"{name}.kubeconfig"
        path.write_text(
            "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
            "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
            f"clusters: [{{name: k, cluster: {{server: '{cp.server}', "
            f"certificate-authority: '{ca}'}}}}]\n"
            f"users: [{{name: u, user: {user}}}]\n")
        return str(path)
    cases = [  # name, kubeconfig, words the log must show
        ("forbidden", kubeconfig("forbidden", f"{{token: '{sa_token}'}}"),
         ["cannot list", "forbidden (403)", "\"list\""]),
        ("unauthorized", kubeconfig("unauthorized", "{token: not-a-token}"),
         ["cannot list", "unauthorized (401)"]),
        # The admin's own certificate is no CA for the server's certificate.
        ("bad-ca", kubeconfig("bad-ca", "{token: x}", ca=str(cp.workdir / "admin.crt")),
         ["TLS with", "check the certificate authority"]),
    ]
    for name, path, words in cases:
        ctl = KubeController(env.manager, workdir, path, workdir / f"{name}.sock",
                             name=f"ctl-{name}").start()
        try:
            wait_until(lambda: all(w in ctl.log_text() for w in words), CONVERGE_TIMEOUT,
                       f"{name}: {words} in the log", on_timeout=lambda: tail(ctl.log))
            assert not ctl.ready()  # never synced
        finally:
            ctl.kill()
