"""gRPC semantics of the gateway itself (issue 13, docs/http.md "gRPC"):
`grpc-timeout` as the request's deadline (capped by the route's timeout,
propagated with the time left, replacing --upstream-timeout), and the
gateway's own answers to gRPC requests as trailers-only gRPC statuses.

The backend is gantry-h2-echo on an "H2C" cluster (tests/backends/
h2_echo_backend.cc): /delay/MS answers late, /stall/MS sends its head and the
rest late, and a request's grpc-timeout comes back as x-echo-grpc-timeout.
The client is nghttp (requests without a body; it shows every frame, so
trailers too). The
grpc-go interop suite through the proxy is test_grpc_interop.py.
"""

import re
import subprocess
import time

import pytest

from conftest import (START_TIMEOUT, binary, free_port, refusing_port, sn_cluster, sn_route, sn_rule,
                      sn_snapshot, temporary_dataplane, wait_until)
from test_http2_codec import listening

GRPC = ["-H", "content-type: application/grpc", "-H", "te: trailers"]


@pytest.fixture(scope="module")
def proxy():
    with temporary_dataplane() as dp:
        port = free_port()
        dp.manager.spawn([binary("gantry-h2-echo"), f"--listen=127.0.0.1:{port}"], dp.workdir / "h2-echo.log")
        wait_until(lambda: listening(port), START_TIMEOUT, "gantry-h2-echo to listen")
        clusters = []
        for name, endpoints in (("echo", [("127.0.0.1", port)]), ("dead", [("127.0.0.1", refusing_port())]),
                                ("empty", [])):
            c = sn_cluster(f"default/{name}:80", endpoints)
            c["protocol"] = "H2C"
            clusters.append(c)
        routes = [sn_route("grpc", [
            sn_rule("default/dead:80", prefix="/dead"),
            sn_rule("default/empty:80", prefix="/empty"),
            sn_rule("default/echo:80", prefix="/limited", filters={"rateLimit": {
                "requests": 1, "intervalMs": 60000, "burst": 0, "algorithm": "TokenBucket", "key": "ClientIP"}}),
            sn_rule("default/echo:80", prefix="/jwt", filters={"jwt": {
                "algorithms": ["HS256"], "hmacSecretBase64": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA==",
                "issuer": "https://issuer.example", "audiences": ["gantry"]}}),
            sn_rule("default/echo:80"),
        ], hostnames=["grpc.example"]),
            sn_route("capped", [sn_rule("default/echo:80", policy={"timeouts": {"requestMs": 400}})],
                     hostnames=["capped.example"])]
        # --upstream-timeout 1s: a gRPC call with a longer grpc-timeout outlives it.
        log = dp.workdir / "access.log"
        p = dp.proxy(sn_snapshot(1, routes, clusters), access_log=log,
                     extra_args=["--http2", "on", "--upstream-timeout", "1s"])
        p.workdir, p.access_log_path = dp.workdir, log
        yield p


def call(proxy, path, extra=(), host="grpc.example"):
    """One request with nghttp (no body); returns (status, {header: value}, seconds).
    The headers are those of the response's HEADERS frames (trailers-only
    answers carry grpc-status there)."""
    argv = ["nghttp", "-v", "-t", "20", "-H", f":authority: {host}"]
    for i in range(0, len(extra), 2):
        argv += [extra[i], extra[i + 1]]
    t0 = time.monotonic()
    out = subprocess.run([*argv, f"http://127.0.0.1:{proxy.http_port}{path}"], capture_output=True, text=True, errors="replace",
                         timeout=30)
    took = time.monotonic() - t0
    text = out.stdout + out.stderr
    headers = {}
    for line in text.splitlines():
        # nghttp marks fields sent as never indexed (x-request-id, proxy/http2/indexing.h)
        # "(stream_id=N, sensitive)".
        m = re.match(r"\[\s*[\d.]+\] recv \(stream_id=\d+(?:, sensitive)?\) ([^:]+|:status): (.*)$", line)
        if m:
            headers[m.group(1).lower()] = m.group(2)
    assert ":status" in headers, text[-3000:]
    assert "\ufffd" not in text, "bytes that are not UTF-8 in the answer:\n" + "\n".join(l for l in text.splitlines() if "\ufffd" in l)
    return int(headers.pop(":status")), headers, took


@pytest.mark.parametrize("path,extra,grpc_status,reason", [
    ("/dead/x", [], "14", "connect failure (502): UNAVAILABLE"),
    ("/empty/x", [], "14", "no healthy endpoint (503): UNAVAILABLE"),
    ("/jwt/x", [], "16", "no token (401): UNAUTHENTICATED"),
    ("/delay/3000", ["-H", "grpc-timeout: 300m"], "4", "deadline (504): DEADLINE_EXCEEDED"),
])
def test_gateway_answers_grpc_requests_with_trailers_only_status(proxy, path, extra, grpc_status, reason):
    status, h, _ = call(proxy, path, GRPC + extra)
    assert status == 200, (reason, h)
    assert h.get("content-type") == "application/grpc", (reason, h)
    assert h.get("grpc-status") == grpc_status, (reason, h)
    assert h.get("grpc-message") and h.get("x-request-id"), (reason, h)
    # the same request without gRPC's content type gets the HTTP status
    status, h, _ = call(proxy, path, extra)
    assert status != 200 and "grpc-status" not in h, (reason, status, h)


def test_no_route_is_unimplemented(proxy):
    status, h, _ = call(proxy, "/x", GRPC, host="nowhere.example")
    assert (status, h.get("grpc-status")) == (200, "12"), h


def test_rate_limited_grpc_call_is_unavailable(proxy):
    first, h1, _ = call(proxy, "/limited/x", GRPC)
    second, h2, _ = call(proxy, "/limited/x", GRPC)
    assert (first, h1.get("grpc-status")) == (200, None), h1
    assert (second, h2.get("grpc-status")) == (200, "14"), h2


def test_grpc_timeout_is_the_deadline_and_ends_the_wait_early(proxy):
    status, h, took = call(proxy, "/delay/5000", GRPC + ["-H", "grpc-timeout: 400m"])
    assert h.get("grpc-status") == "4", h
    assert took < 3.0, took  # the backend would have answered after 5 s


def test_grpc_timeout_replaces_the_default_upstream_timeout(proxy):
    # --upstream-timeout is 1s: a gRPC call allowed 10 s waits for a 1.5 s answer
    status, h, took = call(proxy, "/delay/1500", GRPC + ["-H", "grpc-timeout: 10S"])
    assert status == 200 and "grpc-status" not in h, h
    assert took >= 1.4, took
    # without grpc-timeout the default applies: 504, as DEADLINE_EXCEEDED
    status, h, _ = call(proxy, "/delay/1500", GRPC)
    assert (status, h.get("grpc-status")) == (200, "4"), h


def test_backend_gets_the_time_left(proxy):
    status, h, _ = call(proxy, "/echo", GRPC + ["-H", "grpc-timeout: 5S"])
    assert status == 200, h
    left = h["x-echo-grpc-timeout"]
    assert left.endswith("m") and 4000 <= int(left[:-1]) <= 5000, left


def test_route_timeout_caps_grpc_timeout(proxy):
    # the route allows 400 ms; the client asked for 1 hour
    status, h, _ = call(proxy, "/echo", GRPC + ["-H", "grpc-timeout: 1H"], host="capped.example")
    assert status == 200, h
    left = h["x-echo-grpc-timeout"]
    assert left.endswith("m") and 0 <= int(left[:-1]) <= 400, left
    status, h, took = call(proxy, "/delay/3000", GRPC + ["-H", "grpc-timeout: 1H"], host="capped.example")
    assert h.get("grpc-status") == "4" and took < 2.5, (h, took)


def test_malformed_grpc_timeout_is_no_deadline(proxy):
    status, h, _ = call(proxy, "/echo", GRPC + ["-H", "grpc-timeout: 10 seconds"])
    assert status == 200 and h["x-echo-grpc-timeout"] == "10 seconds", h


def test_deadline_after_the_head_ends_the_stream_with_grpc_status_trailers(proxy):
    body = proxy.workdir / "one.bin"
    body.write_bytes(b"x")
    out = subprocess.run(["nghttp", "-v", "-H", "content-type: application/grpc", "-H", "te: trailers",
                          "-H", "grpc-timeout: 500m", "-H", ":authority: grpc.example", "-d", str(body),
                          f"http://127.0.0.1:{proxy.http_port}/stall/4000"],
                         capture_output=True, timeout=30)
    frames = (out.stdout + out.stderr).decode(errors="replace")
    assert ":status: 200" in frames, frames
    tail = frames[frames.index(":status: 200"):]
    # a second HEADERS frame (the trailers) with END_STREAM carries the status
    assert "grpc-status: 4" in tail and "grpc-message: deadline exceeded" in tail, frames
