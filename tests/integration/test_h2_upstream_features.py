"""HTTP/2 clusters (h2c, and h2 over TLS) get what HTTP/1.1 clusters get
(issue 13, docs/http2.md): the request body limit, request mirrors (to a
mirror cluster of any protocol), request trailers relayed (an h2 client's and
an HTTP/1.1 client's chunked ones), idle connections ended with
GOAWAY(NO_ERROR), and keepalive PINGs that drop a connection to a backend
that stopped answering.

The backends are gantry-h2-echo processes (tests/backends/h2_echo_backend.cc,
HTTP/2 only: an answer from one is a request that reached it over HTTP/2)
run with --log-requests: each request they serve ("request METHOD AUTHORITY
PATH BYTES") and each connection's end with the GOAWAY its client sent
("connection ended: goaway-received=0" is NO_ERROR) go to their log. They
answer the request's trailers in the field x-echo-request-trailers.
Everything runs on loopback.
"""

import json
import os
import re
import signal
import socket
import subprocess
import time

import pytest

from conftest import (START_TIMEOUT, CertAuthority, binary, free_port, get_json, refusing_port, sn_cluster,
                      sn_route, sn_rule, sn_snapshot, tail, temporary_dataplane, wait_until)
from test_http2_codec import listening
from test_upstream_tls import BACKEND_NAME, TlsBackend

LIMIT = 1000


class H2Echo:
    def __init__(self, dp, name, ca=None, extra=()):
        self.name = name
        self.port = free_port()
        self.log = dp.workdir / f"h2-echo-{name}.log"
        argv = [binary("gantry-h2-echo"), f"--listen=127.0.0.1:{self.port}", "--log-requests", *extra]
        self.tls_port = None
        if ca is not None:
            self.tls_port = free_port()
            cert, key = ca.issue(name, ["backend.test"])
            (dp.workdir / f"{name}.pem").write_text(cert)
            (dp.workdir / f"{name}.key").write_text(key)
            argv += [f"--tls-listen=127.0.0.1:{self.tls_port}", f"--cert={dp.workdir / f'{name}.pem'}",
                     f"--key={dp.workdir / f'{name}.key'}"]
        self.proc = dp.manager.spawn(argv, self.log)
        wait_until(lambda: listening(self.port) and (self.tls_port is None or listening(self.tls_port)),
                   START_TIMEOUT, f"gantry-h2-echo {name} to listen")

    def lines(self, prefix):
        return [ln for ln in self.log.read_text(errors="replace").splitlines() if ln.startswith(prefix)]


def h2c_cluster(name, echo):
    c = sn_cluster(name, [("127.0.0.1", echo.port)])
    c["protocol"] = "H2C"
    return c


def h2_cluster(name, echo, ca):
    c = sn_cluster(name, [("127.0.0.1", echo.tls_port)])
    c["protocol"] = "H2"
    c["tls"] = {"serverName": "backend.test", "caPem": ca.path.read_text()}
    return c


@pytest.fixture(scope="module")
def env():
    with temporary_dataplane() as dp:
        ca = CertAuthority(dp.workdir)
        main, shadow = H2Echo(dp, "main", ca), H2Echo(dp, "shadow", ca)
        h1, h1_shadow = dp.echo("h1"), dp.echo("h1-shadow")
        errors = dp.echo("errors")  # filters.defaultBackend of the h2 clusters' rules
        https = TlsBackend(ca)  # HTTP/1.1 over TLS (as behind a BackendTLSPolicy)
        https_cluster = sn_cluster("default/https:443", [("127.0.0.1", https.port)])
        https_cluster["tls"] = {"serverName": BACKEND_NAME, "caPem": ca.path.read_text()}
        clusters = [h2c_cluster("default/main:80", main), h2_cluster("default/main-tls:443", main, ca),
                    h2c_cluster("default/shadow:80", shadow), h2_cluster("default/shadow-tls:443", shadow, ca),
                    sn_cluster("default/h1:80", [(h1.addr, h1.port)]),
                    sn_cluster("default/h1-shadow:80", [(h1_shadow.addr, h1_shadow.port)]), https_cluster,
                    sn_cluster("default/errors:80", [(errors.addr, errors.port)]),
                    h2c_cluster("default/dead:80", type("Dead", (), {"port": refusing_port()}))]
        limit = {"maxRequestBodySize": LIMIT}

        def mirror(cluster):
            return {"requestMirrors": [{"cluster": cluster}]}

        def intercept(*codes):
            return {"defaultBackend": {"cluster": "default/errors:80", "interceptStatuses": list(codes)}}

        rules = [
            sn_rule("default/main:80", prefix="/limit-h2c", filters=limit),
            sn_rule("default/main-tls:443", prefix="/limit-h2", filters=limit),
            sn_rule("default/h1:80", prefix="/limit-h1", filters=limit),
            sn_rule("default/main:80", prefix="/mirror-h2c", filters=mirror("default/shadow:80")),
            sn_rule("default/main-tls:443", prefix="/mirror-h2", filters=mirror("default/shadow-tls:443")),
            sn_rule("default/main:80", prefix="/mirror-to-h1", filters=mirror("default/h1-shadow:80")),
            sn_rule("default/main:80", prefix="/mirror-to-https", filters=mirror("default/https:443")),
            sn_rule("default/h1:80", prefix="/mirror-from-h1", filters=mirror("default/shadow:80")),
            sn_rule("default/h1:80", prefix="/status", filters={
                "defaultBackend": {"cluster": "default/main-tls:443", "interceptStatuses": [503]}}),
            sn_rule("default/main-tls:443", prefix="/tls"),
            sn_rule("default/main:80", prefix="/local", filters=intercept(404, 503)),
            sn_rule("default/dead:80", prefix="/dead", filters=intercept(502)),
            sn_rule("default/main:80", prefix="/delay", filters=intercept(504),
                    policy={"timeouts": {"backendRequestMs": 300}}),
            sn_rule("default/main:80"),
        ]
        # The same intercepted statuses on the h2 (TLS) cluster, under its own host.
        tls_rules = [sn_rule("default/main-tls:443", prefix="/local", filters=intercept(404, 503))]
        p = dp.proxy(sn_snapshot(1, [sn_route("r", rules), sn_route("t", tls_rules, hostnames=["tls.test"])],
                                 clusters), workers=1,
                     extra_args=["--http2", "on", "--upstream-idle-timeout", "2s"])
        p.workdir, p.main, p.shadow, p.h1, p.h1_shadow, p.https = dp.workdir, main, shadow, h1, h1_shadow, https
        yield p
        https.close()


def curl(env, path, *extra, version="--http2-prior-knowledge", stdin=None):
    hdrs = env.workdir / "curl-headers.txt"
    out = subprocess.run(["curl", "-sS", "--max-time", "20", version, "-D", str(hdrs), "-o", "-",
                          "-w", "\n%{http_code}", *extra, f"http://127.0.0.1:{env.http_port}{path}"],
                         input=stdin, capture_output=True, timeout=30)
    assert out.returncode == 0, (path, out.stderr.decode(errors="replace"), tail(env.workdir / "proxy.log"))
    body, _, code = out.stdout.rpartition(b"\n")
    return int(code), hdrs.read_text(errors="replace").lower(), body


def metric(env, name, **labels):
    """The value of `name` with exactly `labels` (any order), 0 when absent."""
    want = {k: str(v) for k, v in labels.items()}
    for m in re.finditer(r"^" + name + r"\{([^}]*)\} (\S+)$", env.metrics_text(), re.M):
        if dict(re.findall(r'(\w+)="([^"]*)"', m.group(1))) == want:
            return float(m.group(2))
    return 0.0


def requests_4xx(env, rule):
    return metric(env, "gantry_requests_total", route=f"default/r#{rule}", code_class="4xx")


# ---- filters.maxRequestBodySize: the same answers on every kind of cluster

def nghttp_status(env, path, data, *extra):
    """POSTs `data` with nghttp (h2c; curl 7.88 may report an answer that comes
    before its upload ended as an empty reply); returns the :status and body."""
    f = env.workdir / "nghttp-body.bin"
    f.write_bytes(data)
    out = subprocess.run(["nghttp", "-d", str(f), "-v", *extra, f"http://127.0.0.1:{env.http_port}{path}"],
                         capture_output=True, timeout=30)
    text = (out.stdout + out.stderr).decode(errors="replace")
    m = re.search(r"recv \(stream_id=\d+\) :status: (\d+)", text)
    assert m, text
    return int(m.group(1)), text


@pytest.mark.parametrize("kind,rule", [("h1", 2), ("h2c", 0), ("h2", 1)])
def test_body_limit_answers_as_on_http11(env, kind, rule):
    path = f"/limit-{kind}"
    before = requests_4xx(env, rule)
    small, large = b"s" * (LIMIT - 10), b"l" * (LIMIT * 3)
    too_large = f"request body larger than {LIMIT} bytes\n".encode()
    for version in ("--http2-prior-knowledge", "--http1.1"):
        # under the limit: the backend gets it whole
        status, _, body = curl(env, path, "--data-binary", "@-", version=version, stdin=small)
        assert status == 200, (kind, version, body)
        if kind != "h1":
            assert body == f"POST {path} {len(small)}\n".encode()
        # a declared length over the limit: refused before the body is read
        status, _, body = curl(env, path, "--data-binary", "@-", version=version, stdin=large)
        assert (status, body) == (413, too_large), (kind, version)
    # streamed (HTTP/1.1 chunked; h2 DATA without a length): refused once past the limit
    status, _, body = curl(env, path, "-X", "POST", "-T", "-", version="--http1.1", stdin=large)
    assert (status, body) == (413, too_large), kind
    status, _, body = curl(env, path, "-X", "POST", "-T", "-", version="--http1.1", stdin=small)
    assert status == 200, (kind, body)
    status, text = nghttp_status(env, path, large, "--no-content-length")
    assert status == 413 and too_large.decode() in text, (kind, text)
    status, text = nghttp_status(env, path, small, "--no-content-length")
    assert status == 200, (kind, text)
    wait_until(lambda: requests_4xx(env, rule) - before == 4, 5, f"the 413s counted on rule {rule}")


# ---- filters.requestMirrors: copies to a mirror cluster of any protocol

def mirrored(echo, path):
    return [ln for ln in echo.lines("request ") if f" {path} " in ln]


@pytest.mark.parametrize("prefix,cluster", [("/mirror-h2c", "default/shadow:80"),
                                            ("/mirror-h2", "default/shadow-tls:443"),
                                            ("/mirror-from-h1", "default/shadow:80")])
def test_mirror_copies_go_to_an_h2_mirror_cluster(env, prefix, cluster):
    sent0 = metric(env, "gantry_mirror_requests_total", cluster=cluster, result="sent")
    path = f"{prefix}/{time.monotonic_ns()}"
    for version in ("--http2-prior-knowledge", "--http1.1"):
        status, _, _ = curl(env, path, "--data-binary", "@-", "-H", "host: shop.example", version=version,
                            stdin=b"m" * 100)
        assert status == 200
    wait_until(lambda: len(mirrored(env.shadow, path)) == 2, 5, "two copies at the h2 mirror")
    # the copy carries the shadow Host (:authority over HTTP/2) and the body
    assert all(ln == f"request POST shop.example-shadow {path} 100" for ln in mirrored(env.shadow, path)), \
        mirrored(env.shadow, path)
    wait_until(lambda: metric(env, "gantry_mirror_requests_total", cluster=cluster, result="sent") - sent0 == 2, 5,
               "the copies counted as sent")
    if prefix != "/mirror-from-h1":  # the real request went to the h2 backend too
        assert len(mirrored(env.main, path)) == 2


def test_mirror_from_an_h2_cluster_to_an_http11_one(env):
    sent0 = metric(env, "gantry_mirror_requests_total", cluster="default/h1-shadow:80", result="sent")
    seen0 = get_json(env.h1_shadow.port, "/stats", addr=env.h1_shadow.addr)["requests"]
    for version in ("--http2-prior-knowledge", "--http1.1"):
        status, _, body = curl(env, "/mirror-to-h1/x", "--data-binary", "@-", version=version, stdin=b"q" * 10)
        assert (status, body) == (200, b"POST /mirror-to-h1/x 10\n")
    wait_until(lambda: metric(env, "gantry_mirror_requests_total", cluster="default/h1-shadow:80",
                              result="sent") - sent0 == 2, 5, "two copies sent to the HTTP/1.1 mirror")
    wait_until(lambda: get_json(env.h1_shadow.port, "/stats", addr=env.h1_shadow.addr)["requests"] - seen0 == 2, 5,
               "the HTTP/1.1 mirror backend to answer two copies")


def test_mirror_to_an_http11_cluster_over_tls(env):
    # The copy is encrypted with the mirror cluster's settings (SNI, CA), and
    # its connection kept for the next copy.
    sent0 = metric(env, "gantry_mirror_requests_total", cluster="default/https:443", result="sent")
    handshakes0 = env.https.count()
    for i in range(3):
        status, _, body = curl(env, f"/mirror-to-https/{i}")
        assert (status, body) == (200, f"GET /mirror-to-https/{i} 0\n".encode())
        # one copy at a time: each finds the connection the one before left
        wait_until(lambda: metric(env, "gantry_mirror_requests_total", cluster="default/https:443",
                                  result="sent") - sent0 == i + 1, 5, f"copy {i} sent over TLS")
    assert env.https.count() - handshakes0 == 1, env.https.handshakes  # one pooled connection
    assert env.https.handshakes[-1][0] == BACKEND_NAME  # the SNI


def test_a_large_or_streamed_body_is_not_mirrored_as_on_http11(env):
    skipped0 = metric(env, "gantry_mirror_requests_total", cluster="default/shadow:80", result="skipped")
    status, _, _ = curl(env, "/mirror-h2c/big", "--data-binary", "@-", stdin=b"b" * (70 * 1024))
    assert status == 200
    status, _, _ = curl(env, "/mirror-h2c/streamed", "-X", "POST", "-T", "-", stdin=b"b" * 100)
    assert status == 200
    wait_until(lambda: metric(env, "gantry_mirror_requests_total", cluster="default/shadow:80",
                              result="skipped") - skipped0 == 2, 5, "two copies skipped")


# ---- request trailers to HTTP/2 backends

def nghttp(env, path, *extra):
    body = env.workdir / "trailer-body.txt"
    body.write_bytes(b"abc")
    out = subprocess.run(["nghttp", "-v", "-d", str(body), *extra, f"http://127.0.0.1:{env.http_port}{path}"],
                         capture_output=True, timeout=30)
    return (out.stdout + out.stderr).decode(errors="replace")


@pytest.mark.parametrize("path", ["/t", "/tls/t", "/mirror-h2c/t"])
def test_h2_client_request_trailers_reach_the_backend(env, path):
    # /mirror-h2c: the body is read whole first (kept for the copy), the trailers with it
    frames = nghttp(env, path, "--trailer", "x-checksum: abc123", "--trailer", "x-count: 3")
    assert f"POST {path} 3" in frames, frames
    assert re.search(r"x-echo-request-trailers: x-checksum=abc123, x-count=3$", frames, re.M), frames


def h1_raw(env, request):
    """`request` on a connection of its own (it says Connection: close): the answer, read to EOF."""
    with socket.create_connection(("127.0.0.1", env.http_port), timeout=20) as s:
        s.sendall(request)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        return data.decode(errors="replace")


def test_http11_chunked_request_trailers_reach_the_backend(env):
    answer = h1_raw(env, b"POST /chunk-trailers HTTP/1.1\r\nHost: t.test\r\nTransfer-Encoding: chunked\r\n"
                         b"Trailer: X-Checksum\r\nConnection: close\r\n\r\n"
                         b"3\r\nabc\r\n2\r\nde\r\n0\r\nX-Checksum: abc123\r\nContent-Length: 5\r\n"
                         b"X-Empty:\r\n\r\n")
    assert answer.startswith("HTTP/1.1 200"), answer
    assert "POST /chunk-trailers 5\n" in answer, answer
    # framing fields never go as trailers; names are lower-cased for HTTP/2
    assert re.search(r"^x-echo-request-trailers: x-checksum=abc123, x-empty=\r$", answer, re.M | re.I), answer


def test_h2_client_trailers_to_an_http11_backend_end_its_chunked_body(env):
    # A streamed h2 body goes to an HTTP/1.1 backend chunked; its trailers
    # close the chunked body (gantry-echo reports the trailers it read).
    frames = nghttp(env, "/limit-h1/t", "--no-content-length", "--trailer", "x-checksum: abc123")
    assert ":status: 200" in frames, frames
    assert '"bodyBytes":3,"trailers":{"x-checksum":"abc123"}' in frames, frames


# ---- filters.defaultBackend on an HTTP/2 cluster (a GatewayRoute ref's protocol h2)

def test_an_intercepted_answer_goes_to_an_h2_default_backend(env):
    for version in ("--http2-prior-knowledge", "--http1.1"):
        status, hdrs, body = curl(env, "/status/503", version=version)
        # gantry-h2-echo's answer to the error-page request (path "/"), over h2 with TLS
        assert (status, body) == (200, b"GET / 0\n"), (version, hdrs, body)
    status, _, body = curl(env, "/status/404")
    assert status == 404, body  # not listed: the backend's own answer


# ---- filters.defaultBackend interceptStatuses on HTTP/2 clusters' answers

CLIENTS = [("--http2-prior-knowledge", "HTTP/2"), ("--http1.1", "HTTP/1.1")]


@pytest.mark.parametrize("version", [v for v, _ in CLIENTS], ids=[n for _, n in CLIENTS])
@pytest.mark.parametrize("host", [None, "tls.test"], ids=["h2c-cluster", "h2-cluster"])
def test_an_h2_clusters_listed_status_is_answered_by_the_default_backend(env, version, host):
    extra = ("-H", f"Host: {host}") if host else ()
    before = len(env.main.lines("request GET"))
    status, hdrs, body = curl(env, "/local/404?lang=en", "-H", "Accept: text/html", "-H", "X-Request-ID: req-h2-1",
                              *extra, version=version)
    assert status == 200, (hdrs, body)  # the default backend's answer, its status
    got = json.loads(body)
    assert got["name"] == "errors", got  # the h2 backend's own body never reaches the client
    assert got["method"] == "GET" and got["path"] == "/?lang=en"
    h = got["headers"]
    assert (h["x-code"], h["x-format"], h["x-original-uri"]) == ("404", "text/html", "/local/404?lang=en"), h
    assert h["x-request-id"] == "req-h2-1" and "x-request-id: req-h2-1" in hdrs
    assert h["host"] == (host or f"127.0.0.1:{env.http_port}"), h
    assert len(env.main.lines("request GET")) == before + 1  # the h2 backend was asked once
    status, _, body = curl(env, "/local/503", *extra, version=version)
    assert status == 200 and json.loads(body)["headers"]["x-code"] == "503"
    # Not listed: the backend's own answer.
    status, hdrs, body = curl(env, "/local/500", *extra, version=version)
    assert (status, body) == (500, b"local reply 500\n"), (hdrs, body)


def test_an_intercepted_request_keeps_its_body(env):
    # A Content-Length body is kept (read first) and sent again to the default backend.
    status, _, body = curl(env, "/local/404", "--data-binary", "@-", "-H", "Content-Type: text/plain",
                           stdin=b"x" * 1000)
    got = json.loads(body)
    assert status == 200 and got["method"] == "POST" and got["bodyBytes"] == 1000, got
    assert got["headers"]["x-code"] == "404"
    # A streamed body (HTTP/1.1 chunked) went to the h2 backend in full; the
    # default backend gets none, as on HTTP/1.1 clusters.
    status, _, body = curl(env, "/local/404", "--data-binary", "@-", "-H", "Transfer-Encoding: chunked",
                           stdin=b"y" * 5000, version="--http1.1")
    got = json.loads(body)
    assert status == 200 and got["method"] == "POST" and got["bodyBytes"] == 0, got
    assert env.main.lines("request POST")[-1].endswith(" /local/404 5000")


def test_the_gateways_own_502_and_504_on_an_h2_cluster_are_intercepted(env):
    for version, _ in CLIENTS:
        status, _, body = curl(env, "/dead?y=2", version=version)  # the h2c backend refuses connections
        got = json.loads(body)
        assert status == 200 and got["name"] == "errors" and got["path"] == "/?y=2", got
        assert got["headers"]["x-code"] == "502"
    started = time.monotonic()
    status, _, body = curl(env, "/delay/3000")  # no head within the backend timeout (300 ms)
    assert status == 200 and json.loads(body)["headers"]["x-code"] == "504", body
    assert time.monotonic() - started < 2.5


def test_grpc_calls_keep_the_gateways_grpc_status(env):
    """A gRPC call's errors are gRPC statuses: not replaced by an error page."""
    status, hdrs, _ = curl(env, "/dead", "-H", "Content-Type: application/grpc", "-H", "TE: trailers",
                           "--data-binary", "@-", stdin=b"\0\0\0\0\0")
    assert status == 200 and "grpc-status: 14" in hdrs, hdrs  # UNAVAILABLE, trailers-only


# ---- idle HTTP/2 upstream connections end with GOAWAY(NO_ERROR)

def test_idle_upstream_connections_end_with_goaway_no_error(env):
    # (a connection without GOAWAY: the fixture's probe that the port listens)
    ended = {k: len(env.main.lines(f"connection ended: goaway-received={k}")) for k in ("0", "none")}
    for path in ("/idle", "/tls/idle"):
        status, _, _ = curl(env, path)
        assert status == 200
    # --upstream-idle-timeout 2s; the sweep runs every second
    wait_until(lambda: len(env.main.lines("connection ended: goaway-received=0")) - ended["0"] >= 2, 10,
               "the idle h2c and h2 connections to end with GOAWAY(NO_ERROR)")
    assert len(env.main.lines("connection ended: goaway-received=none")) == ended["none"]


# ---- keepalive: a backend that stopped answering is dropped

@pytest.fixture
def pair():
    with temporary_dataplane() as dp:
        a, b = H2Echo(dp, "a"), H2Echo(dp, "b")
        c = sn_cluster("default/pair:80", [("127.0.0.1", a.port), ("127.0.0.1", b.port)])
        c["protocol"] = "H2C"
        p = dp.proxy(sn_snapshot(1, [sn_route("r", [sn_rule("default/pair:80")])], [c]), workers=1,
                     extra_args=["--http2", "on", "--debug-headers", "--upstream-h2-keepalive-interval", "1s",
                                 "--upstream-h2-keepalive-timeout", "1s", "--upstream-connect-timeout", "1s"])
        p.workdir, p.a, p.b = dp.workdir, a, b
        stopped = []
        p.stop = lambda echo: (os.kill(echo.proc.pid, signal.SIGSTOP), stopped.append(echo))
        try:
            yield p
        finally:
            for echo in stopped:
                os.kill(echo.proc.pid, signal.SIGCONT)


def upstream_of(hdrs):
    m = re.search(r"^x-gateway-upstream: (\S+)", hdrs, re.M)
    return m.group(1) if m else None


def test_keepalive_drops_a_connection_to_a_stopped_backend(pair):
    keys = {f"127.0.0.1:{pair.a.port}": pair.a, f"127.0.0.1:{pair.b.port}": pair.b}
    # Round robin on the one worker: both endpoints get a connection, the
    # third request goes where the first went.
    first = [upstream_of(curl(pair, f"/warm/{i}")[1]) for i in range(2)]
    assert sorted(first) == sorted(keys), first
    stopped, healthy = keys[first[0]], keys[first[1]]
    healthy_ended = len(healthy.lines("connection ended"))
    pair.stop(stopped)
    # The request in flight on the stopped backend's connection fails when the
    # PING goes unanswered (about 2 s), not after --upstream-timeout (60 s).
    started = time.monotonic()
    status, hdrs, _ = curl(pair, "/in-flight")
    assert status == 502 and time.monotonic() - started < 8, (status, hdrs)
    assert metric(pair, "gantry_upstream_errors_total", cluster="default/pair:80", kind="keepalive_timeout") == 1
    # The connection is gone: the next requests go to the healthy endpoint (a
    # new connection to the stopped one gets no SETTINGS: a failed connect).
    for i in range(4):
        status, hdrs, body = curl(pair, f"/next/{i}")
        assert status == 200 and upstream_of(hdrs) == f"127.0.0.1:{healthy.port}", (status, hdrs, body)
    # The healthy backend's connection, idle now, is PINGed and answers: it stays.
    time.sleep(3)
    status, hdrs, _ = curl(pair, "/still")
    assert status == 200 and upstream_of(hdrs) == f"127.0.0.1:{healthy.port}"
    assert metric(pair, "gantry_upstream_errors_total", cluster="default/pair:80", kind="keepalive_timeout") == 1
    assert len(healthy.lines("connection ended")) == healthy_ended
