"""A GatewayRoute backendRef's `protocol` chooses HTTP/2 to the backend
(issue 13, docs/http2.md): gantry-controller in standalone mode (--source dir:)
translates it, gantry-proxy speaks it, and gantry-h2-echo (tests/backends/
h2_echo_backend.cc) is the backend. gantry-h2-echo speaks HTTP/2 only (h2c
with prior knowledge on one port, TLS with ALPN h2 on another), so an answer
"METHOD PATH BYTES\\n" from it is a request that reached it over HTTP/2; the
same port without the field gets HTTP/1.1, which it refuses (502).

- protocol h2c and grpc: HTTP/2 with prior knowledge;
- protocol h2: HTTP/2 over TLS, the certificate verified for
  <service>.<namespace>.svc (or tls.hostname) against tls.caSecretRef, else the
  system trust store (which does not know the test CA: 502 upstream-tls);
- a bad value: the route is Accepted=False naming the field, the others serve.
"""

import http.client
import json

import pytest

from conftest import (CONVERGE_TIMEOUT, START_TIMEOUT, CertAuthority, binary, free_port, route_yaml, service_yaml,
                      tail, temporary_stack, wait_until)
from test_http2_codec import listening


def secret_yaml(name, data):
    return json.dumps({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": "default"},
                       "stringData": data}) + "\n"


ROUTES = {
    # host: backendRef fields besides name and port
    "plain.bp.test": ("h2c", {}),
    "h2c.bp.test": ("h2c", {"protocol": "h2c"}),
    "grpc.bp.test": ("h2c", {"protocol": "grpc"}),
    "h2.bp.test": ("h2tls", {"protocol": "h2", "tls": {"caSecretRef": {"name": "backend-ca"}}}),
    "named.bp.test": ("h2tls", {"protocol": "h2", "tls": {"hostname": "h2.internal",
                                                          "caSecretRef": {"name": "backend-ca"}}}),
    "system.bp.test": ("h2tls", {"protocol": "h2"}),
    "wrongname.bp.test": ("h2tls", {"protocol": "h2", "tls": {"hostname": "other.internal",
                                                              "caSecretRef": {"name": "backend-ca"}}}),
    "wrongca.bp.test": ("h2tls", {"protocol": "h2", "tls": {"caSecretRef": {"name": "other-ca"}}}),
    "bad.bp.test": ("h2c", {"protocol": "http2"}),
}


@pytest.fixture(scope="module")
def env():
    with temporary_stack() as s:
        ca = CertAuthority(s.workdir)
        (s.workdir / "other").mkdir()
        other = CertAuthority(s.workdir / "other", name="Another CA")
        cert, key = ca.issue("h2tls", ["h2tls.default.svc", "h2.internal"])
        (s.workdir / "h2.pem").write_text(cert)
        (s.workdir / "h2.key").write_text(key)
        h2c_port, h2_port = free_port(), free_port()
        s.manager.spawn([binary("gantry-h2-echo"), f"--listen=127.0.0.1:{h2c_port}",
                         f"--tls-listen=127.0.0.1:{h2_port}", f"--cert={s.workdir / 'h2.pem'}",
                         f"--key={s.workdir / 'h2.key'}"], s.workdir / "h2-echo.log")
        wait_until(lambda: listening(h2c_port) and listening(h2_port), START_TIMEOUT, "gantry-h2-echo to listen")
        s.write("services.yaml", "\n---\n".join([
            service_yaml("h2c", [("127.0.0.1", h2c_port)]),
            service_yaml("h2tls", [("127.0.0.1", h2_port)], port=8443),
            secret_yaml("backend-ca", {"ca.crt": ca.path.read_text()}),
            secret_yaml("other-ca", {"ca.crt": other.path.read_text()})]))
        for host, (svc, fields) in ROUTES.items():
            ref = {"name": svc, "port": 8443 if svc == "h2tls" else 8080, **fields}
            s.write(host.split(".")[0] + ".yaml", route_yaml(host.split(".")[0], [{"backendRefs": [ref]}],
                                                            hostnames=[host]))
        s.start()
        yield s


def wait_answer(env, host, status, path="/"):
    last = {}

    def check():
        last["r"] = env.proxy.get(path, host=host)
        return last["r"].status == status and last["r"]
    return wait_until(check, CONVERGE_TIMEOUT, f"{host} to answer {status}",
                      on_timeout=lambda: f"last: {last.get('r')}\n{tail(env.controller.log)}\n{tail(env.proxy.log)}")


@pytest.mark.parametrize("host", ["h2c.bp.test", "grpc.bp.test", "h2.bp.test", "named.bp.test"])
def test_protocol_reaches_the_backend_over_http2(env, host):
    r = wait_answer(env, host, 200, "/hello")
    assert r.body == b"GET /hello 0\n", r  # gantry-h2-echo's answer: it came over HTTP/2
    # a request body, relayed as DATA frames
    conn = http.client.HTTPConnection("127.0.0.1", env.proxy.http_port, timeout=10)
    try:
        conn.request("POST", "/up", body=b"x" * 70000, headers={"Host": host})
        resp = conn.getresponse()
        assert (resp.status, resp.read()) == (200, b"POST /up 70000\n")
    finally:
        conn.close()


def test_without_protocol_the_h2c_only_backend_gets_http11(env):
    wait_answer(env, "h2c.bp.test", 200)  # the snapshot is in
    r = env.proxy.get("/", host="plain.bp.test")
    assert r.status == 502, r


@pytest.mark.parametrize("host,why", [
    ("system.bp.test", "certificate verify failed"),  # the system store does not know the test CA
    ("wrongname.bp.test", "certificate verify failed"),
    ("wrongca.bp.test", "certificate verify failed"),
])
def test_h2_verifies_the_backend_certificate(env, host, why):
    wait_answer(env, "h2.bp.test", 200)
    r = env.proxy.get("/", host=host)
    assert r.status == 502, r
    assert r.headers.get("x-gateway-reason") == "upstream-tls", r.headers
    assert why in r.body.decode(errors="replace"), r.body


def test_bad_protocol_is_reported_and_other_routes_serve(env):
    def refused():
        c = env.controller.route_conditions("default", "bad")
        return c and c.get("Accepted", {}).get("status") == "False" and c["Accepted"]
    accepted = wait_until(refused, CONVERGE_TIMEOUT, "route bad Accepted=False",
                          on_timeout=lambda: json.dumps(env.controller.status(), indent=1))
    assert "spec.rules[0].backendRefs[0].protocol" in accepted["message"], accepted
    assert '"http2" is not one of h2c, h2, grpc' in accepted["message"], accepted
    assert env.proxy.get("/", host="bad.bp.test").status == 404
    assert wait_answer(env, "h2c.bp.test", 200, "/still").body == b"GET /still 0\n"
