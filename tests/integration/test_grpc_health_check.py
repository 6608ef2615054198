"""Active gRPC health checks (issue 13): `healthCheck: {grpc: {service}}`.

The backends are grpc-go v1.85.0's own grpc.health.v1 service
(`google.golang.org/grpc/health`, run by hack/grpc-interop/healthserver with
the interop TestService beside it; hack/grpc-interop.sh builds it and
hack/test.sh exports its directory as GANTRY_GRPC_INTEROP). SIGUSR1 makes a
server answer NOT_SERVING, SIGUSR2 SERVING again. What is checked is what the
proxy does with the answers: the endpoint's health in /upstreams, and where
real gRPC calls from grpc-go's interop client go.
"""

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from conftest import (START_TIMEOUT, CertAuthority, free_port, get_json, sn_cluster, sn_route, sn_rule,
                      sn_snapshot, temporary_dataplane, wait_until)
from test_http2_codec import listening

SERVICE = "gantry.test.Cart"


def interop_dir():
    d = os.environ.get("GANTRY_GRPC_INTEROP")
    if not d:
        pytest.skip("GANTRY_GRPC_INTEROP is unset (hack/test.sh sets it from hack/grpc-interop.sh)")
    d = Path(d)
    assert (d / "health_server").exists() and (d / "interop_client").exists(), d
    return d


def check(service):
    return {"intervalMs": 150, "timeoutMs": 1000, "healthyThreshold": 1, "unhealthyThreshold": 2,
            "grpc": {"service": service}}


@pytest.fixture(scope="module")
def env():
    bins = interop_dir()
    with temporary_dataplane() as dp:
        ca = CertAuthority(dp.workdir)
        cert_pem, key_pem = ca.issue("grpc-backend", ["backend.test"])
        (dp.workdir / "backend.pem").write_text(cert_pem)
        (dp.workdir / "backend.key").write_text(key_pem)
        servers = {}
        for name, tls in (("a", False), ("b", False), ("t", True)):
            port = free_port()
            argv = [str(bins / "health_server"), f"--port={port}", f"--services={SERVICE}"]
            if tls:
                argv += [f"--tls_cert_file={dp.workdir / 'backend.pem'}", f"--tls_key_file={dp.workdir / 'backend.key'}"]
            proc = dp.manager.spawn(argv, dp.workdir / f"health-{name}.log")
            wait_until(lambda: listening(port), START_TIMEOUT, f"health server {name} to listen")
            servers[name] = (port, proc)
        plain = sn_cluster("default/cart:8080", [("127.0.0.1", servers["a"][0]), ("127.0.0.1", servers["b"][0])])
        plain["protocol"] = "H2C"
        unknown = sn_cluster("default/unknown:8080", [("127.0.0.1", servers["a"][0])])
        unknown["protocol"] = "H2C"
        secure = sn_cluster("default/secure:8443", [("127.0.0.1", servers["t"][0])])
        secure["protocol"] = "H2"
        secure["tls"] = {"serverName": "backend.test", "caPem": ca.path.read_text()}
        routes = [
            sn_route("cart", [sn_rule("default/cart:8080", policy={"healthCheck": check(SERVICE)})]),  # any host
            sn_route("unknown", [sn_rule("default/unknown:8080", policy={"healthCheck": check("no.such.Service")})],
                     ["unknown.test"]),
            sn_route("secure", [sn_rule("default/secure:8443", policy={"healthCheck": check(SERVICE)})],
                     ["secure.test"]),
        ]
        log = dp.workdir / "access.log"
        p = dp.proxy(sn_snapshot(1, routes, [plain, unknown, secure]), access_log=log, extra_args=["--http2", "on"])
        p.servers, p.bins, p.access_log_path = servers, bins, log
        yield p


def health(proxy, cluster):
    doc = get_json(proxy.admin_port, "/upstreams")
    (c,) = [c for c in doc["clusters"] if c["name"] == cluster]
    assert c["healthChecked"]
    return {e["address"]: e["health"] for e in c["endpoints"]}


def addr(proxy, name):
    return f"127.0.0.1:{proxy.servers[name][0]}"


def calls_to(proxy, n):
    """Makes `n` empty_unary calls (the catch-all cart route) through the proxy; the endpoints they reached."""
    start = len(proxy.access_log_path.read_text().splitlines()) if proxy.access_log_path.exists() else 0
    for _ in range(n):
        out = subprocess.run([str(proxy.bins / "interop_client"), "--server_host=127.0.0.1",
                              f"--server_port={proxy.http_port}",
                              "--test_case=empty_unary"], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]

    def logged():
        lines = [json.loads(l) for l in proxy.access_log_path.read_text().splitlines()[start:] if l.strip()]
        calls = [l for l in lines if l.get("path") == "/grpc.testing.TestService/EmptyCall"]
        return calls if len(calls) >= n else None

    return {c.get("upstream") for c in wait_until(logged, START_TIMEOUT, "the calls in the access log")}


def test_serving_endpoints_are_healthy(env):
    wait_until(lambda: set(health(env, "default/cart:8080").values()) == {"healthy"}, START_TIMEOUT,
               "both gRPC endpoints healthy")
    wait_until(lambda: set(health(env, "default/secure:8443").values()) == {"healthy"}, START_TIMEOUT,
               "the TLS gRPC endpoint healthy")


def test_not_serving_leaves_rotation_and_comes_back(env):
    a, b = addr(env, "a"), addr(env, "b")
    wait_until(lambda: set(health(env, "default/cart:8080").values()) == {"healthy"}, START_TIMEOUT,
               "both gRPC endpoints healthy")
    assert calls_to(env, 8) == {a, b}, "round robin over both endpoints"
    env.servers["a"][1].send_signal(signal.SIGUSR1)  # a: NOT_SERVING
    try:
        wait_until(lambda: health(env, "default/cart:8080") == {a: "unhealthy", b: "healthy"}, START_TIMEOUT,
                   "the NOT_SERVING endpoint marked unhealthy")
        assert calls_to(env, 6) == {b}, "calls avoid the unhealthy endpoint"
    finally:
        env.servers["a"][1].send_signal(signal.SIGUSR2)  # a: SERVING again
    wait_until(lambda: health(env, "default/cart:8080") == {a: "healthy", b: "healthy"}, START_TIMEOUT,
               "the endpoint back once it serves")


def test_an_unknown_service_is_unhealthy(env):
    # grpc-go's health server answers NOT_FOUND (grpc-status 5) for a name it
    # does not know; the proxy does not count that as serving.
    wait_until(lambda: health(env, "default/unknown:8080") == {addr(env, "a"): "unhealthy"}, START_TIMEOUT,
               "an endpoint asked about an unknown service marked unhealthy")


def test_tls_endpoint_follows_its_status(env):
    t = addr(env, "t")
    wait_until(lambda: health(env, "default/secure:8443") == {t: "healthy"}, START_TIMEOUT, "TLS endpoint healthy")
    env.servers["t"][1].send_signal(signal.SIGUSR1)
    try:
        wait_until(lambda: health(env, "default/secure:8443") == {t: "unhealthy"}, START_TIMEOUT,
                   "the NOT_SERVING TLS endpoint marked unhealthy")
    finally:
        env.servers["t"][1].send_signal(signal.SIGUSR2)
    wait_until(lambda: health(env, "default/secure:8443") == {t: "healthy"}, START_TIMEOUT, "TLS endpoint back")
