"""HTTP/2 to backends (issue 13): a cluster with "protocol": "H2C" is reached
over h2c with prior knowledge, streams multiplexed on shared connections
(proxy/net/h2_upstream.h). The backend is gantry-h2-echo (tests/backends/
h2_echo_backend.cc): it answers "METHOD PATH BYTES\\n" and, when the request
said `te: trailers`, the trailer `x-echo-bytes: BYTES`; /local/NNN answers a
gRPC request with a trailers-only status. Clients are curl (HTTP/2 prior
knowledge and HTTP/1.1) and h2load. Every process runs on loopback.
"""

import subprocess

import pytest

from conftest import (START_TIMEOUT, binary, free_port, refusing_port, sn_cluster, sn_route, sn_rule,
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
    assert out.returncode == 0, out.stderr.decode(errors="replace")
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


def test_many_streams_share_connections(proxy):
    out = subprocess.run(["h2load", "-n", "400", "-c", "2", "-m", "20",
                          f"http://127.0.0.1:{proxy.http_port}/load"], capture_output=True, text=True, timeout=60)
    assert "400 succeeded" in out.stdout, out.stdout + out.stderr
    assert "status codes: 400 2xx" in out.stdout, out.stdout


def test_unreachable_h2c_backend_is_502(proxy):
    status, _, _, _ = curl(proxy, "/dead")
    assert status == 502
