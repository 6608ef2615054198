"""HTTP/2 to backends (issue 13): a cluster with "protocol": "H2C" is reached
over h2c with prior knowledge, streams multiplexed on shared connections
(proxy/net/h2_upstream.h). The backend is gantry-h2-echo (tests/backends/
h2_echo_backend.cc): it answers "METHOD PATH BYTES\\n" and, when the request
said `te: trailers`, the trailer `x-echo-bytes: BYTES`; /local/NNN answers a
gRPC request with a trailers-only status. Clients are curl (HTTP/2 prior
knowledge and HTTP/1.1) and h2load. Every process runs on loopback.
"""

import subprocess
import time

import pytest

from conftest import (START_TIMEOUT, binary, free_port, get_json, refusing_port, sn_cluster, sn_route, sn_rule,
                      sn_snapshot, temporary_dataplane, wait_until)
from test_http2_codec import listening


@pytest.fixture(scope="module")
def proxy():
    with temporary_dataplane() as dp:
        port = free_port()
        dp.manager.spawn([binary("gantry-h2-echo"), f"--listen=127.0.0.1:{port}"], dp.workdir / "h2-echo.log")
        wait_until(lambda: listening(port), START_TIMEOUT, "gantry-h2-echo to listen")
        h2 = sn_cluster("default/h2:80", [("127.0.0.1", port)])
        h2["protocol"] = "H2C"
        dead = sn_cluster("default/dead:80", [("127.0.0.1", refusing_port())])
        dead["protocol"] = "H2C"
        routes = [sn_route("r", [sn_rule("default/dead:80", prefix="/dead"), sn_rule("default/h2:80")])]
        p = dp.proxy(sn_snapshot(1, routes, [h2, dead]), extra_args=["--http2", "on"])
        p.workdir = dp.workdir
        yield p


def curl(proxy, path, version="--http2-prior-knowledge", extra=()):
    hdrs = proxy.workdir / "curl-h2c-headers.txt"
    out = subprocess.run(["curl", "-sS", "--max-time", "20", version, "-D", str(hdrs), "-o", "-",
                          "-w", "\n%{http_code} %{http_version}", *extra,
                          f"http://127.0.0.1:{proxy.http_port}{path}"], capture_output=True, timeout=30)
    assert out.returncode == 0, (path, out.stderr.decode(errors="replace"))
    body, _, tail = out.stdout.rpartition(b"\n")
    code, ver = tail.decode().split()
    return int(code), ver, hdrs.read_text(errors="replace").lower(), body


def test_get_and_post_reach_the_h2c_backend(proxy):
    status, ver, _, body = curl(proxy, "/hello")
    assert (status, ver, body) == (200, "2", b"GET /hello 0\n")
    # larger than the upstream stream window: flow control both ways
    payload = proxy.workdir / "h2c-upload.bin"
    payload.write_bytes(b"x" * 300000)
    status, _, _, body = curl(proxy, "/upload", extra=["--data-binary", f"@{payload}"])
    assert (status, body) == (200, b"POST /upload 300000\n")
    status, _, _, body = curl(proxy, "/bytes/1000000")
    assert status == 200 and len(body) == 1000000


def test_trailers_are_relayed(proxy):
    # nghttp (curl does not send "te: trailers" on, nor print, trailers)
    body = proxy.workdir / "abc.txt"
    body.write_bytes(b"abc")
    out = subprocess.run(["nghttp", "-v", "-H", "te: trailers", "-d", str(body),
                          f"http://127.0.0.1:{proxy.http_port}/t"], capture_output=True, timeout=30)
    frames = (out.stdout + out.stderr).decode(errors="replace")
    assert "POST /t 3" in frames, frames
    # the backend's trailer HEADERS frame, relayed after the body
    assert "x-echo-bytes" in frames[frames.index("POST /t 3"):], frames


def test_grpc_trailers_only_status_is_relayed(proxy):
    status, _, hdrs, _ = curl(proxy, "/local/503", extra=["-H", "content-type: application/grpc",
                                                          "-H", "te: trailers", "--data-binary", ""])
    assert status == 200
    assert "grpc-status: 14" in hdrs


def test_http11_client_to_h2c_backend(proxy):
    status, ver, _, body = curl(proxy, "/one", version="--http1.1")
    assert (status, ver, body) == (200, "1.1", b"GET /one 0\n")


def test_http11_chunked_request_body_to_h2c_backend(proxy):
    # The chunk data goes up as DATA frames (no chunked framing on HTTP/2);
    # beyond the stream window, so flow control paces the pump.
    payload = proxy.workdir / "h2c-chunked.bin"
    payload.write_bytes(b"y" * 200000)
    status, ver, _, body = curl(proxy, "/chunked", version="--http1.1",
                                extra=["-H", "Transfer-Encoding: chunked", "--data-binary", f"@{payload}"])
    assert (status, ver, body) == (200, "1.1", b"POST /chunked 200000\n")
    status, _, _, body = curl(proxy, "/chunked-empty", version="--http1.1",
                              extra=["-H", "Transfer-Encoding: chunked", "--data-binary", ""])
    assert (status, body) == (200, b"POST /chunked-empty 0\n")


def test_many_streams_share_connections(proxy):
    out = subprocess.run(["h2load", "-n", "400", "-c", "2", "-m", "20",
                          f"http://127.0.0.1:{proxy.http_port}/load"], capture_output=True, text=True, timeout=60)
    assert "400 succeeded" in out.stdout, out.stdout + out.stderr
    assert "status codes: 400 2xx" in out.stdout, out.stdout


def test_unreachable_h2c_backend_is_502(proxy):
    status, _, _, _ = curl(proxy, "/dead")
    assert status == 502


# ---- resilience on HTTP/2 clusters: the same endpoint choice and try loop as
# HTTP/1.1 (health checks: test_grpc_health_check.py)

@pytest.fixture(scope="module")
def resilient():
    with temporary_dataplane() as dp:
        good, bad = free_port(), free_port()
        dp.manager.spawn([binary("gantry-h2-echo"), f"--listen=127.0.0.1:{good}"], dp.workdir / "h2-good.log")
        dp.manager.spawn([binary("gantry-h2-echo"), f"--listen=127.0.0.1:{bad}", "--fail-status=503"],
                         dp.workdir / "h2-bad.log")
        for port in (good, bad):
            wait_until(lambda: listening(port), START_TIMEOUT, "gantry-h2-echo to listen")
        clusters = []
        for name, eps in (("failover", [refusing_port(), good]), ("retry", [bad, good]), ("outlier", [bad, good]),
                          ("breaker", [bad]), ("breakerok", [good])):
            c = sn_cluster(f"default/{name}:80", [("127.0.0.1", p) for p in eps])
            c["protocol"] = "H2C"
            clusters.append(c)
        rules = [
            sn_rule("default/failover:80", prefix="/failover"),
            sn_rule("default/retry:80", prefix="/retry",
                    policy={"retry": {"attempts": 2, "onStatuses": [503], "backoffBaseMs": 1, "backoffMaxMs": 2}}),
            sn_rule("default/outlier:80", prefix="/outlier",
                    policy={"outlierDetection": {"consecutive5xx": 2, "consecutiveConnectFailures": 5,
                                                 "baseEjectionTimeMs": 60000, "maxEjectionPercent": 50}}),
            sn_rule("default/breaker:80", prefix="/breaker",
                    policy={"circuitBreaker": {"consecutiveFailures": 3, "openDurationMs": 60000}}),
            sn_rule("default/breakerok:80", prefix="/okbreaker",
                    policy={"circuitBreaker": {"consecutiveFailures": 3, "openDurationMs": 60000}}),
        ]
        p = dp.proxy(sn_snapshot(1, [sn_route("r", rules)], clusters), extra_args=["--http2", "on"])
        p.workdir, p.bad = dp.workdir, f"127.0.0.1:{bad}"
        yield p


def test_connect_failure_goes_to_another_endpoint(resilient):
    # One endpoint refuses connections: nothing was sent, so every request
    # goes on to the other one (no retry policy needed).
    for i in range(10):
        assert curl(resilient, f"/failover/{i}")[::3] == (200, f"GET /failover/{i} 0\n".encode())


def test_listed_status_is_retried_on_another_endpoint(resilient):
    for i in range(10):
        assert curl(resilient, f"/retry/{i}")[::3] == (200, f"GET /retry/{i} 0\n".encode())
    # A gRPC call's trailers-only UNAVAILABLE counts as 503 (the official
    # gRPC-to-HTTP mapping), so the listed 503 retries it too.
    for i in range(6):
        status, _, hdrs, body = curl(resilient, f"/retry/g{i}", extra=["-H", "content-type: application/grpc",
                                                                       "-H", "te: trailers", "--data-binary", "x"])
        assert (status, body) == (200, f"POST /retry/g{i} 1\n".encode()) and "grpc-status" not in hdrs


def test_outlier_detection_ejects_a_failing_endpoint(resilient):
    statuses = [curl(resilient, f"/outlier/{i}")[0] for i in range(8)]
    # Round robin sends every other request to the failing endpoint until its
    # second 503 in a row ejects it; then only the good one answers.
    assert statuses.count(503) == 2 and set(statuses) == {200, 503}, statuses
    assert [curl(resilient, f"/outlier/after{i}")[0] for i in range(10)] == [200] * 10
    doc = get_json(resilient.admin_port, "/upstreams")
    (c,) = [c for c in doc["clusters"] if c["name"] == "default/outlier:80"]
    assert {e["address"]: e["ejected"] for e in c["endpoints"]}[resilient.bad] is True


def breaker_state(proxy, cluster):
    (b,) = [b for b in get_json(proxy.admin_port, "/upstreams")["circuitBreakers"] if b["cluster"] == cluster]
    return b["state"]


def test_circuit_breaker_counts_a_grpc_call_by_its_grpc_status(resilient):
    grpc = ["-H", "content-type: application/grpc", "-H", "te: trailers", "--data-binary", "x"]
    # Calls answered OK keep the breaker closed.
    for i in range(4):
        status, _, hdrs, body = curl(resilient, f"/okbreaker/{i}", extra=grpc)
        assert (status, body) == (200, f"POST /okbreaker/{i} 1\n".encode()) and "grpc-status" not in hdrs
    assert breaker_state(resilient, "default/breakerok:80") == "closed"
    # The failing endpoint answers every call HTTP 200 with a trailers-only
    # grpc-status 14 (UNAVAILABLE): a failure (503), as for outlier detection
    # and retries; three in a row open the breaker.
    for i in range(3):
        status, _, hdrs, _ = curl(resilient, f"/breaker/{i}", extra=grpc)
        # (the backend's own local reply: its x-gateway-reason is "test")
        assert status == 200 and "grpc-status: 14" in hdrs and "x-gateway-reason: test" in hdrs, hdrs
    assert breaker_state(resilient, "default/breaker:80") == "open"
    # The open breaker answers at once, before the request's body is read.
    # curl 7.88 (Debian 12's) then hangs when the complete answer arrives
    # before its upload has ended, so this call has no body (HEADERS with
    # END_STREAM): the answer is the same trailers-only one.
    status, _, hdrs, _ = curl(resilient, "/breaker/refused", extra=grpc[:4] + ["-X", "POST"])
    assert status == 200 and "grpc-status: 14" in hdrs and "x-gateway-reason: circuit-open" in hdrs, hdrs


def upstream_connections(port):
    """Established TCP connections to 127.0.0.1:port (the proxy's, to the backend)."""
    out = subprocess.run(["ss", "-Htn", "state", "established", "dst", f"127.0.0.1:{port}"],
                         capture_output=True, text=True, timeout=10)
    return len([line for line in out.stdout.splitlines() if line.strip()])


def test_idle_h2_upstream_connections_are_reaped():
    with temporary_dataplane() as dp:
        port = free_port()
        dp.manager.spawn([binary("gantry-h2-echo"), f"--listen=127.0.0.1:{port}"], dp.workdir / "h2-echo.log")
        wait_until(lambda: listening(port), START_TIMEOUT, "gantry-h2-echo to listen")
        c = sn_cluster("default/h2:80", [("127.0.0.1", port)])
        c["protocol"] = "H2C"
        p = dp.proxy(sn_snapshot(1, [sn_route("r", [sn_rule("default/h2:80")])], [c]),
                     extra_args=["--http2", "on", "--upstream-idle-timeout", "2s"])
        p.workdir = dp.workdir
        assert curl(p, "/a")[::3] == (200, b"GET /a 0\n")
        assert upstream_connections(port) >= 1
        # In use again before the timeout: kept (the same connection serves).
        time.sleep(1.0)
        assert curl(p, "/b")[::3] == (200, b"GET /b 0\n")
        assert upstream_connections(port) >= 1
        # Idle for longer than --upstream-idle-timeout: closed.
        wait_until(lambda: upstream_connections(port) == 0, 10, "the idle h2 upstream connection to close")
        # A new request connects again.
        assert curl(p, "/c")[::3] == (200, b"GET /c 0\n")
