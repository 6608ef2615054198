"""HTTP/2 served by gantry-proxy itself (issue 13): h2c with prior knowledge on
the plain listener (HTTP/1.1 still served on the same port), ALPN h2 on the
TLS listener, every stream run through the exchange to a real HTTP/1.1
backend (gantry-echo).

Clients are real: curl (--http2-prior-knowledge, --http2 over TLS), h2load
and nghttp (Debian nghttp2-client) for many streams on one connection, and
h2spec v2.2.1 (hack/h2spec.sh) against the proxy's listeners with a route to
gantry-echo. Every process runs on loopback.
"""

import json
import re
import signal
import socket
import struct
import subprocess
import time

import pytest

from conftest import (HTTP_TIMEOUT, CertAuthority, free_port, raw_exchange, refusing_port, sn_cluster, sn_route, sn_rule,
                      sn_snapshot, temporary_dataplane, wait_until)
from test_http2_codec import ALL_CASES, RawH2, h2_frame, run_h2spec

A, B = "a.h2.example", "b.h2.example"

# h2spec's "3.5/2 Sends invalid connection preface" sends
# "INVALID CONNECTION PREFACE\r\n\r\n" and wants the TCP connection closed
# without a byte. On a cleartext port that serves HTTP/1.1 and h2c side by
# side those bytes are an HTTP/1.1 request line (method INVALID), which the
# HTTP/1.1 codec answers 400 as docs/http.md says; on the TLS listener (ALPN
# h2 decided the protocol) and on the HTTP/2-only cleartext listener
# (--h2c-listen) the case passes. Documented in docs/http2.md.
H2C_SHARED_PORT_CASES = {"3.5. HTTP/2 Connection Preface / 2: Sends invalid connection preface"}


def curl_available_with_http2():
    out = subprocess.run(["curl", "-V"], capture_output=True, text=True)
    return "HTTP2" in out.stdout


pytestmark = pytest.mark.skipif(not curl_available_with_http2(), reason="curl without HTTP2")


def rules(echo_cluster, dead_cluster, empty_cluster):
    return [
        sn_rule(echo_cluster, prefix="/cors", filters={"cors": {
            "allowOrigins": ["https://app.example.com"], "allowMethods": ["GET", "POST"],
            "allowHeaders": ["x-token"], "maxAgeMs": 600000}}),
        sn_rule(echo_cluster, prefix="/limited", filters={"rateLimit": {
            "requests": 3, "intervalMs": 60000, "burst": 0, "algorithm": "TokenBucket", "key": "ClientIP"}}),
        sn_rule(echo_cluster, prefix="/small", filters={"maxRequestBodySize": 1024}),
        sn_rule(echo_cluster, prefix="/old", filters={"requestRedirect": {
            "scheme": "https", "statusCode": 301, "path": {"type": "ReplaceFullPath", "replaceFullPath": "/new"}}}),
        sn_rule(echo_cluster, prefix="/api", filters={
            "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}},
            "requestHeaders": {"set": [{"name": "x-env", "value": "h2"}], "remove": ["x-debug"]},
            "responseHeaders": {"add": [{"name": "x-served-by", "value": "gantry"}], "remove": ["server"]}}),
        sn_rule(echo_cluster, prefix="/cached", filters={"cache": {
            "ttlMs": 60000, "maxBytes": 1 << 20, "maxObjectBytes": 64 << 10}}),
        sn_rule(echo_cluster, prefix="/jwt", filters={"jwt": {
            "algorithms": ["HS256"], "hmacSecretBase64": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA==",
            "issuer": "https://issuer.example", "audiences": ["gantry"]}}),
        sn_rule(dead_cluster, prefix="/dead"),
        sn_rule(empty_cluster, prefix="/empty"),
        sn_rule(echo_cluster),
    ]


@pytest.fixture(scope="module")
def proxy():
    with temporary_dataplane() as dp:
        a, b = dp.echo("echo-a"), dp.echo("echo-b")
        ca = CertAuthority(dp.workdir)
        clusters = [sn_cluster("default/a:80", [(a.addr, a.port)]),
                    sn_cluster("default/b:80", [(b.addr, b.port)]),
                    sn_cluster("default/dead:80", [("127.0.0.1", refusing_port())]),
                    sn_cluster("default/empty:80", [])]
        routes = [sn_route("a", rules("default/a:80", "default/dead:80", "default/empty:80"),
                           hostnames=[A]),
                  sn_route("b", [sn_rule("default/b:80")], hostnames=[B]),
                  sn_route("any", [sn_rule("default/a:80")])]
        certs = [ca.certificate("default/h2-tls", "h2", [A, B])]
        log = dp.workdir / "access.log"
        h2c_only = free_port()
        p = dp.proxy(sn_snapshot(1, routes, clusters, certs), https=True, access_log=log,
                     extra_args=["--http2", "on", "--h2c-listen", f"127.0.0.1:{h2c_only}"])
        p.ca, p.access_log_path, p.workdir, p.h2c_only_port = ca, log, dp.workdir, h2c_only
        yield p


def curl(proxy, path, host=A, tls=False, version="--http2-prior-knowledge", extra=()):
    """One request with curl; returns (status, http version, headers dict, body bytes)."""
    if tls:
        url = f"https://{host}:{proxy.https_port}{path}"
        argv = ["--resolve", f"{host}:{proxy.https_port}:127.0.0.1", "--cacert", str(proxy.ca.path)]
    else:
        url = f"http://127.0.0.1:{proxy.http_port}{path}"
        argv = ["-H", f"Host: {host}"]
    hdrs = proxy.workdir / "curl-headers.txt"
    out = subprocess.run(["curl", "-sS", "--max-time", "20", version, "-D", str(hdrs), "-o", "-",
                          "-w", "\n%{http_code} %{http_version}", *argv, *extra, url],
                         capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr.decode(errors="replace")
    body, _, tail = out.stdout.rpartition(b"\n")
    code, ver = tail.decode().split()
    headers = {}
    for line in hdrs.read_text(errors="replace").splitlines()[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return int(code), ver, headers, body


# ---------------------------------------------------------------- how clients reach it

def test_h2c_prior_knowledge_is_routed_by_authority(proxy):
    for host, name in [(A, "echo-a"), (B, "echo-b")]:
        status, ver, h, body = curl(proxy, "/hello?x=1", host=host)
        assert (status, ver) == (200, "2"), body
        seen = json.loads(body)
        assert seen["name"] == name
        assert seen["path"] == "/hello?x=1"
        assert seen["headers"]["host"] == host  # :authority became Host upstream
        assert seen["headers"]["x-forwarded-proto"] == "http"
        assert h.get("x-request-id")


def test_tls_alpn_h2_is_routed_by_authority(proxy):
    for host, name in [(A, "echo-a"), (B, "echo-b")]:
        status, ver, _, body = curl(proxy, "/tls", host=host, tls=True, version="--http2")
        assert (status, ver) == (200, "2"), body
        seen = json.loads(body)
        assert seen["name"] == name
        assert seen["headers"]["x-forwarded-proto"] == "https"


def test_http11_is_still_served_on_both_listeners(proxy):
    status, ver, _, body = curl(proxy, "/one", version="--http1.1")
    assert (status, ver, json.loads(body)["name"]) == (200, "1.1", "echo-a")
    status, ver, _, body = curl(proxy, "/one", tls=True, version="--http1.1")
    assert (status, ver, json.loads(body)["name"]) == (200, "1.1", "echo-a")


def test_h2c_only_listener_serves_http2_and_refuses_http11(proxy):
    # --h2c-listen: the same routes over HTTP/2 with prior knowledge...
    out = subprocess.run(["curl", "-sS", "--max-time", "10", "--http2-prior-knowledge", "-H", f"Host: {B}",
                          "-w", "\n%{http_code} %{http_version}", f"http://127.0.0.1:{proxy.h2c_only_port}/only"],
                         capture_output=True, timeout=20)
    body, _, tail = out.stdout.rpartition(b"\n")
    assert tail.decode() == "200 2", out.stdout + out.stderr
    assert json.loads(body)["name"] == "echo-b" and json.loads(body)["headers"]["x-forwarded-proto"] == "http"
    # ...and no HTTP/1.1 at all: an HTTP/1.1 request is a bad client preface,
    # a connection error (RFC 9113 3.4): never an HTTP/1.1 answer.
    got, closed = raw_exchange(proxy.h2c_only_port, f"GET /only HTTP/1.1\r\nHost: {B}\r\n\r\n".encode(), timeout=5)
    assert closed, got[:200]
    assert not got.startswith(b"HTTP/"), got[:200]
    frames = []
    while len(got) >= 9:
        n = int.from_bytes(got[:3], "big")
        frames.append((got[3], got[9:9 + n]))
        got = got[9 + n:]
    assert got == b"", got
    goaways = [payload for ftype, payload in frames if ftype == 7]
    assert goaways and int.from_bytes(goaways[-1][4:8], "big") == 1, frames  # PROTOCOL_ERROR, then closed


def test_upgrade_h2c_is_served_as_http11(proxy):
    # curl --http2 on http:// sends Upgrade: h2c; the proxy does not switch
    # (RFC 9113 deprecated it) and answers in HTTP/1.1, Upgrade not forwarded.
    status, ver, _, body = curl(proxy, "/upgrade", version="--http2")
    assert (status, ver) == (200, "1.1"), body
    seen = json.loads(body)["headers"]
    assert "upgrade" not in seen and "http2-settings" not in seen, seen


# ---------------------------------------------------------------- the exchange on h2

def test_cors_preflight_is_answered_by_the_gateway(proxy):
    status, ver, h, body = curl(proxy, "/cors/x", extra=[
        "-X", "OPTIONS", "-H", "Origin: https://app.example.com",
        "-H", "Access-Control-Request-Method: POST", "-H", "Access-Control-Request-Headers: x-token"])
    assert (status, ver) == (204, "2"), (h, body)
    assert h["access-control-allow-origin"] == "https://app.example.com"
    assert body == b""
    status, _, h, _ = curl(proxy, "/cors/x", extra=["-X", "OPTIONS", "-H", "Origin: https://evil.example",
                                                    "-H", "Access-Control-Request-Method: GET"])
    assert status == 403 and "access-control-allow-origin" not in h


def test_rate_limit_answers_429_on_h2(proxy):
    statuses = [curl(proxy, "/limited/x")[0] for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429], statuses
    _, _, h, _ = curl(proxy, "/limited/x")
    assert h["ratelimit-limit"] == "3" and int(h["retry-after"]) >= 1, h


@pytest.mark.parametrize("path,status", [("/dead/x", 502), ("/empty/x", 503), ("/nowhere", 200)])
def test_upstream_errors_are_local_replies(proxy, path, status):
    got, ver, h, body = curl(proxy, path)
    assert (got, ver) == (status, "2"), body
    if status != 200:
        assert h.get("x-request-id"), h
        assert h.get("content-type", "").startswith("text/plain"), h


def test_no_route_is_404_on_h2(proxy):
    status, ver, _, body = curl(proxy, "/x", host="nobody.example")
    # the catch-all route "any" takes every host: 200; a path it cannot
    # normalise is refused before routing
    assert (status, ver) == (200, "2"), body
    status, _, _, body = curl(proxy, "/a/%2e%2e/%2e%2e/x", extra=["--path-as-is"])
    assert status == 400, body


def test_filters_behave_as_on_http11(proxy):
    # Redirect, rewrite + header modifiers both ways, body limit, JWT: the
    # same chain as for an HTTP/1.1 request, answered over HTTP/2.
    status, _, h, _ = curl(proxy, "/old/x?q=1")
    assert status == 301 and h["location"].startswith("https://") and "/new" in h["location"], h
    status, _, h, body = curl(proxy, "/api/users?limit=5", extra=["-H", "x-debug: 1"])
    seen = json.loads(body)
    assert status == 200 and seen["path"] == "/users?limit=5", seen
    assert seen["headers"]["x-env"] == "h2" and "x-debug" not in seen["headers"], seen
    assert h["x-served-by"] == "gantry" and "server" not in h, h
    # Body limit: 413 before the body is read. The rest of a body that fits
    # in the stream's window is read and dropped, so curl (still uploading
    # when the answer comes) ends without an error.
    data = proxy.workdir / "big.bin"
    data.write_bytes(b"b" * 4096)
    for _ in range(5):
        status, ver, _, _ = curl(proxy, "/small/x", extra=["--data-binary", f"@{data}"])
        assert (status, ver) == (413, "2")
    status, _, h, _ = curl(proxy, "/jwt/x")
    assert status == 401 and h.get("www-authenticate", "").startswith("Bearer"), h


def test_response_cache_serves_h2_clients(proxy):
    first = curl(proxy, "/cached/one")
    second = curl(proxy, "/cached/one", version="--http1.1")  # an entry filled over h2 serves HTTP/1.1 too
    third = curl(proxy, "/cached/one")
    assert [r[0] for r in (first, second, third)] == [200, 200, 200]
    assert (first[2]["x-cache"], second[2]["x-cache"], third[2]["x-cache"]) == ("MISS", "HIT", "HIT")
    assert json.loads(third[3])["seq"] == json.loads(first[3])["seq"]  # the stored answer, replayed
    assert third[1] == "2" and "age" in third[2]


def test_post_upload_is_relayed(proxy):
    data = proxy.workdir / "upload.bin"
    data.write_bytes(b"u" * (3 * 1024 * 1024 + 17))  # beyond the stream and connection windows
    for tls in (False, True):
        status, ver, _, body = curl(proxy, "/upload", tls=tls,
                                    version="--http2" if tls else "--http2-prior-knowledge",
                                    extra=["--data-binary", f"@{data}"])
        assert (status, ver) == (200, "2"), body
        seen = json.loads(body)
        assert seen["method"] == "POST"
        assert seen["bodyBytes"] == 3 * 1024 * 1024 + 17, seen


@pytest.mark.parametrize("path,size", [("/bytes/8388608", 8388608), ("/chunked/5000000", 5000000)])
def test_streamed_response_bodies(proxy, path, size):
    status, ver, h, body = curl(proxy, path)
    assert (status, ver) == (200, "2")
    assert len(body) == size
    assert "transfer-encoding" not in h and "connection" not in h, h


def test_trailers_of_a_chunked_http11_answer_reach_h2_clients(proxy):
    """gantry-echo's chunked answer ends with a trailer section: an h2 client
    gets its fields as a trailing HEADERS frame (END_STREAM), minus the
    framing and hop-by-hop ones; an HTTP/1.1 client still gets the chunked
    framing, trailers included, as the backend sent it."""
    path = ("/chunked/100000?trailer=x-checksum:abc123&trailer=Grpc-Status:0"
            "&trailer=content-length:5&trailer=connection:close")
    out = subprocess.run(["nghttp", "-v", "-H", f":authority: {A}", f"http://127.0.0.1:{proxy.http_port}{path}"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    data = sum(int(m) for m in re.findall(r"recv DATA frame <length=(\d+)", out.stdout))
    assert data == 100000
    last = max(i for i, l in enumerate(lines) if "recv HEADERS frame" in l)
    assert "END_STREAM" in lines[last + 1], lines[last:last + 2]
    # The trailer fields are printed just before their HEADERS frame.
    first = max(i for i, l in enumerate(lines) if "recv DATA frame" in l) + 1
    trailers = [re.sub(r"^\[.*?\] recv \(stream_id=\d+\) ", "", l) for l in lines[first:last]]
    assert trailers == ["x-checksum: abc123", "grpc-status: 0"], lines[first:last + 1]
    # curl shows them too (as header lines after the body).
    out = subprocess.run(["curl", "-sS", "-v", "--http2-prior-knowledge", "-o", "/dev/null", "-H", f"Host: {A}",
                          f"http://127.0.0.1:{proxy.http_port}{path}"], capture_output=True, text=True, timeout=30)
    assert "< x-checksum: abc123" in out.stderr and "< grpc-status: 0" in out.stderr, out.stderr
    raw = subprocess.run(["curl", "-sS", "--raw", "-H", f"Host: {A}", f"http://127.0.0.1:{proxy.http_port}{path}"],
                         capture_output=True, timeout=30).stdout
    assert raw.endswith(b"\r\n0\r\nx-checksum: abc123\r\nGrpc-Status: 0\r\ncontent-length: 5\r\n"
                        b"connection: close\r\n\r\n"), raw[-200:]


def test_many_concurrent_streams_on_one_connection(proxy):
    # h2load: one connection, up to 100 streams at once, 2000 requests.
    before = int(metric(proxy, "gantry_downstream_http2_connections_total"))
    out = subprocess.run(["h2load", "-n", "2000", "-c", "1", "-m", "100", "-H", f":authority: {A}",
                          f"http://127.0.0.1:{proxy.http_port}/many"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert re.search(r"requests: 2000 total, 2000 started, 2000 done, 2000 succeeded, 0 failed",
                     out.stdout), out.stdout
    assert re.search(r"status codes: 2000 2xx", out.stdout), out.stdout
    assert int(metric(proxy, "gantry_downstream_http2_connections_total")) == before + 1
    # nghttp: 50 requests multiplexed on one TLS connection (ALPN h2), each answered in full.
    urls = [f"https://127.0.0.1:{proxy.https_port}/m{i}" for i in range(50)]
    out = subprocess.run(["nghttp", "-n", "-s", *urls], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    done = re.findall(r"\s200\s+\S+\s+/m(\d+)", out.stdout)
    assert sorted(map(int, done)) == list(range(50)), out.stdout


def metric(proxy, name):
    for line in proxy.metrics_text().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{}"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


def test_metrics_and_access_log_say_http2(proxy):
    curl(proxy, "/logged-h2")
    curl(proxy, "/logged-h1", version="--http1.1")
    assert metric(proxy, "gantry_downstream_http2_connections_total") >= 1
    assert metric(proxy, "gantry_downstream_http2_streams_total") >= 1
    # curl has closed its connections: none is left open (nor counted).
    wait_until(lambda: metric(proxy, "gantry_downstream_http2_connections_active") == 0, 5,
               "the HTTP/2 connections gauge to fall back to 0")

    def lines():
        return [json.loads(l) for l in proxy.access_log_path.read_text().splitlines() if l.strip()]

    wait_until(lambda: any(l["path"] == "/logged-h1" for l in lines()), 5, "the access log lines")
    h2 = [l for l in lines() if l["path"] == "/logged-h2"]
    h1 = [l for l in lines() if l["path"] == "/logged-h1"]
    assert h2 and h2[0]["proto"] == "HTTP/2" and h2[0]["status"] == 200, h2
    assert h1 and h1[0]["proto"] == "HTTP/1.1", h1


# ---------------------------------------------------------------- h2spec, for real

@pytest.mark.parametrize("mode", ["h2c", "h2c-only", "tls"])
def test_h2spec_against_the_proxy(proxy, mode):
    port = {"h2c": proxy.http_port, "h2c-only": proxy.h2c_only_port, "tls": proxy.https_port}[mode]
    total, passed, skipped, failed, text = run_h2spec(port, mode == "tls")
    failures = failed_cases(text)
    expected = H2C_SHARED_PORT_CASES if mode == "h2c" else set()
    assert failures == expected, text[text.find("Failures:"):][:4000]
    assert (total, passed + len(expected), skipped) == (ALL_CASES, ALL_CASES, 0), text[-2000:]


def failed_cases(text):
    """h2spec's failure list as {"<section title> / <n>: <case>"}."""
    if "Failures:" not in text:
        return set()
    out, section = set(), None
    for line in text[text.find("Failures:"):].splitlines():
        m = re.match(r"\s+(\d+(?:\.\d+)*\. .+)$", line)
        if m and "×" not in line:
            section = m.group(1).strip()
        m = re.match(r"\s+× (\d+): (.+)$", line)
        if m:
            out.add(f"{section} / {m.group(1)}: {m.group(2).strip()}")
    return out


# ---------------------------------------------------------------- drain

def test_sigterm_drains_h2_connections_with_two_goaways(dataplane):
    # A request in flight (the backend answers after 1.5 s) when the proxy is
    # told to stop: GOAWAY(2^31-1) + PING, then GOAWAY(last stream 1) after
    # the ack; the stream is answered in full, then the connection closes.
    echo = dataplane.echo("slow")
    snap = sn_snapshot(1, [sn_route("r", [sn_rule("default/slow:80")])],
                       [sn_cluster("default/slow:80", [(echo.addr, echo.port)])])
    proxy = dataplane.proxy(snap, extra_args=["--http2", "on"], drain_seconds=3)
    c = RawH2(proxy.http_port)
    c.get(1, "/delay/1500")
    time.sleep(0.2)  # the request reached the exchange (not a correctness wait: the stream is open either way)
    proxy.proc.send_signal(signal.SIGTERM)
    # A connection opened now (the listener stays open for --drain-seconds)
    # is drained too, whether it was accepted just before the signal was
    # handled or after: its first stream is served, then the two GOAWAYs end it.
    late = RawH2(proxy.http_port)
    late.get(1, "/late")
    goaways, status, ended = [], None, False
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        f = c.frame()
        if f is None:
            break
        if f[0] == 7:
            goaways.append((int.from_bytes(f[3][:4], "big") & 0x7fffffff, int.from_bytes(f[3][4:8], "big")))
        if f[0] == 1 and f[2] == 1:
            status = f[3]
        if f[0] == 0 and f[2] == 1 and f[1] & 1:
            ended = True
    assert goaways[:2] == [((1 << 31) - 1, 0), (1, 0)], goaways
    assert status is not None and ended, (status, ended)
    goaways, served = [], False
    while True:
        f = late.frame()
        if f is None:
            break
        if f[0] == 7:
            goaways.append(int.from_bytes(f[3][:4], "big") & 0x7fffffff)
        if f[0] == 1 and f[2] == 1:
            served = True
    assert served and goaways[:2] == [(1 << 31) - 1, 1], (served, goaways)
    assert proxy.proc.wait(timeout=15) == 0


# ---------------------------------------------------------------- off

def test_http2_off_speaks_http11_only(dataplane):
    echo = dataplane.echo("plain")
    ca = CertAuthority(dataplane.workdir)
    snap = sn_snapshot(1, [sn_route("r", [sn_rule("default/p:80")], hostnames=[A])],
                       [sn_cluster("default/p:80", [(echo.addr, echo.port)])],
                       [ca.certificate("default/t", "t", [A])])
    proxy = dataplane.proxy(snap, https=True, extra_args=["--http2", "off"])
    proxy.ca, proxy.workdir = ca, dataplane.workdir
    status, ver, _, _ = curl(proxy, "/x", tls=True, version="--http2")
    assert (status, ver) == (200, "1.1")  # ALPN offered h2; the proxy chose http/1.1
    out = subprocess.run(["curl", "-sS", "--max-time", "5", "--http2-prior-knowledge", "-H", f"Host: {A}",
                          f"http://127.0.0.1:{proxy.http_port}/x"], capture_output=True, timeout=10)
    assert out.returncode != 0  # the preface is an HTTP/1.1 request with version HTTP/2.0: 505, not h2
