"""A Service port's appProtocol chooses HTTP/2 to the backend (issue 13):
gantry-controller --source kube against a real kube-apiserver + etcd, with
gantry-proxy, and gantry-h2-echo as the backend (it speaks h2c with prior
knowledge only, so a request that reaches it went over HTTP/2).

`appProtocol: kubernetes.io/h2c` (a GatewayRoute backend) and `grpc` (an
Ingress backend) reach it; the same backend behind a port without
appProtocol is spoken to in HTTP/1.1, which it refuses (502). Gateway API
HTTPRoute backends go through the same translation; the official conformance
test HTTPRouteBackendProtocolH2C covers them (tests/conformance/).
"""

import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "kube"))

from conftest import (CONVERGE_TIMEOUT, START_TIMEOUT, CertAuthority, Proxy, binary, new_manager, tail,  # noqa: E402
                      wait_until)
from kubeapi import (ControlPlane, KubeController, TestHosts, _ip, endpoint_slice, gateway_route,  # noqa: E402
                     simple_route)
from test_http2_codec import listening  # noqa: E402


TLS_PORT = 9443


def service(name, app_protocol=None):
    port = {"name": "http", "port": 8080, "targetPort": TestHosts.PORT}
    if app_protocol:
        port["appProtocol"] = app_protocol
    return {"kind": "Service", "metadata": {"name": name, "namespace": "default"},
            "spec": {"ports": [port]}}


@pytest.fixture(scope="module")
def env():
    manager = new_manager()
    with tempfile.TemporaryDirectory(prefix="gantry-kh-") as d:
        workdir = Path(d)
        cp = ControlPlane(workdir / "cp")
        hosts = None
        try:
            cp.start()
            cp.install_crd()
            hosts = TestHosts(manager, workdir)
            # gantry-h2-echo on a test-host address (as TestHosts.echo does for gantry-echo)
            addr = f"198.51.100.{hosts.base + hosts.next_host}"
            hosts.next_host += 1
            _ip("-n", hosts.ns, "addr", "add", f"{addr}/28", "dev", f"gk{hosts.slot}n")
            # ...and over TLS (ALPN h2) on TLS_PORT, its certificate for the
            # Service name the controller verifies by default (h2tls.default.svc).
            ca = CertAuthority(workdir)
            cert, key = ca.issue("h2tls", ["h2tls.default.svc"])
            (workdir / "h2.pem").write_text(cert)
            (workdir / "h2.key").write_text(key)
            manager.spawn(["ip", "netns", "exec", hosts.ns, binary("gantry-h2-echo"),
                           f"--listen={addr}:{TestHosts.PORT}", f"--tls-listen={addr}:{TLS_PORT}",
                           f"--cert={workdir / 'h2.pem'}", f"--key={workdir / 'h2.key'}", "--log-requests"],
                          workdir / "h2-echo.log")
            wait_until(lambda: listening_at(addr, TestHosts.PORT) and listening_at(addr, TLS_PORT), START_TIMEOUT,
                       "gantry-h2-echo to listen")
            cp.ca_pem = ca.path.read_text()
            proxy = Proxy(manager, workdir, workdir / "control.sock")
            proxy.start()
            controller = KubeController(manager, workdir, cp.kubeconfig, workdir / "control.sock").start()
            controller.wait_ready()
            cp.echo_log = workdir / "h2-echo.log"
            yield cp, proxy, controller, addr
        finally:
            manager.cleanup()
            if hosts:
                hosts.close()
            cp.stop()


def listening_at(addr, port):
    import socket
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((addr, port)) == 0


def wait_status(proxy, controller, host, want, path="/"):
    last = {}

    def check():
        r = proxy.get(path, host=host)
        last["r"] = r
        return r.status == want and r
    return wait_until(check, CONVERGE_TIMEOUT, f"{host} to answer {want}",
                      on_timeout=lambda: f"last: {last.get('r')}\n{tail(controller.log)}")


def test_gatewayroute_backend_with_app_protocol_h2c(env):
    cp, proxy, controller, addr = env
    cp.apply(service("h2", "kubernetes.io/h2c"))
    cp.apply(endpoint_slice("h2", [addr]))
    cp.apply(simple_route("h2", "h2.kube.test", "h2"))
    r = wait_status(proxy, controller, "h2.kube.test", 200, "/hello")
    assert r.body == b"GET /hello 0\n", r  # gantry-h2-echo's answer: it came over h2c


def test_ingress_backend_with_app_protocol_grpc(env):
    cp, proxy, controller, addr = env
    cp.apply(service("g", "grpc"))
    cp.apply(endpoint_slice("g", [addr]))
    cp.apply({"kind": "Ingress", "metadata": {"name": "g", "namespace": "default"},
              "spec": {"ingressClassName": "gantry", "rules": [{"host": "g.kube.test", "http": {"paths": [{
                  "path": "/", "pathType": "Prefix",
                  "backend": {"service": {"name": "g", "port": {"number": 8080}}}}]}}]}})
    r = wait_status(proxy, controller, "g.kube.test", 200, "/x")
    assert r.body == b"GET /x 0\n", r


def test_without_app_protocol_the_backend_gets_http11_and_changing_it_switches(env):
    cp, proxy, controller, addr = env
    cp.apply(service("plain"))
    cp.apply(endpoint_slice("plain", [addr]))
    cp.apply(simple_route("plain", "plain.kube.test", "plain"))
    # the h2c-only backend refuses HTTP/1.1: the gateway answers 502
    wait_status(proxy, controller, "plain.kube.test", 502)
    cp.apply(service("plain", "kubernetes.io/h2c"))
    r = wait_status(proxy, controller, "plain.kube.test", 200, "/now")
    assert r.body == b"GET /now 0\n", r


def test_gatewayroute_backend_protocol_h2c_and_h2_with_a_ca_secret(env):
    # The backendRef's protocol, whatever the port says; h2's CA comes from an
    # Opaque Secret the controller watches because the route refers to it.
    cp, proxy, controller, addr = env
    cp.apply(service("byfield"))
    cp.apply(endpoint_slice("byfield", [addr]))
    cp.apply(gateway_route("byfield", ["byfield.kube.test"], [
        {"backendRefs": [{"name": "byfield", "port": 8080, "protocol": "h2c"}]}]))
    r = wait_status(proxy, controller, "byfield.kube.test", 200, "/f")
    assert r.body == b"GET /f 0\n", r
    cp.apply(service("h2tls"))
    cp.apply(endpoint_slice("h2tls", [addr], port=TLS_PORT))
    cp.apply(gateway_route("h2tls", ["h2tls.kube.test"], [
        {"backendRefs": [{"name": "h2tls", "port": 8080, "protocol": "h2",
                          "tls": {"caSecretRef": {"name": "h2-ca"}}}]}]))
    # Without the Secret the ref fails closed (503), never unverified.
    wait_status(proxy, controller, "h2tls.kube.test", 503)
    cp.apply({"kind": "Secret", "metadata": {"name": "h2-ca", "namespace": "default"}, "type": "Opaque",
              "stringData": {"ca.crt": cp.ca_pem}})
    r = wait_status(proxy, controller, "h2tls.kube.test", 200, "/tls")
    assert r.body == b"GET /tls 0\n", r


def test_gatewayroute_mirror_and_default_backend_refs_take_protocol(env):
    # requestMirror.backendRef and defaultBackend.backendRef take protocol and
    # tls as backendRefs do: the copy goes over h2c, the default backend is
    # reached over h2 with the CA of a Secret only that ref names (watched).
    cp, proxy, controller, addr = env
    for name in ("mirrored", "shadow"):
        cp.apply(service(name))
        cp.apply(endpoint_slice(name, [addr]))
    cp.apply(gateway_route("mirrored", ["mirrored.kube.test"], [{
        "backendRefs": [{"name": "mirrored", "port": 8080, "protocol": "h2c"}],
        "filters": {"requestMirror": {"backendRef": {"name": "shadow", "port": 8080, "protocol": "h2c"}}}}]))
    r = wait_status(proxy, controller, "mirrored.kube.test", 200, "/copied")
    assert r.body == b"GET /copied 0\n", r
    wait_until(lambda: "request GET mirrored.kube.test-shadow /copied 0" in cp.echo_log.read_text(errors="replace"),
               CONVERGE_TIMEOUT, "the copy at the mirror, over h2c")

    cp.apply(service("noendpoints"))
    cp.apply(service("fallback"))
    cp.apply(endpoint_slice("fallback", [addr], port=TLS_PORT))
    cp.apply(gateway_route("fallback", ["fallback.kube.test"], [{
        "backendRefs": [{"name": "noendpoints", "port": 8080}],
        "filters": {"defaultBackend": {"backendRef": {
            "name": "fallback", "port": 8080, "protocol": "h2",
            "tls": {"hostname": "h2tls.default.svc", "caSecretRef": {"name": "fallback-ca"}}}}}}]))
    # Without the Secret the default backend is unusable (fails closed): 503.
    wait_status(proxy, controller, "fallback.kube.test", 503)
    cp.apply({"kind": "Secret", "metadata": {"name": "fallback-ca", "namespace": "default"}, "type": "Opaque",
              "stringData": {"ca.crt": cp.ca_pem}})
    r = wait_status(proxy, controller, "fallback.kube.test", 200, "/dflt")
    assert r.body == b"GET /dflt 0\n", r  # gantry-h2-echo over TLS: the default backend spoke h2

