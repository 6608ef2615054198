"""Upstream failures become the documented gateway answers.

Refused connection, a backend that closes without answering, a malformed
status line -> 502 (and that upstream connection is never reused); a backend
slower than the route's backendRequest timeout -> 504; a cluster without
endpoints -> 503; an unresolved backend ref -> 500. Each answer is the
gateway's: a short body and an X-Request-Id. The misbehaving backends are
small Python socket servers on 127.0.0.x.
"""

import socket
import threading
import time

import pytest

from conftest import (HTTP_TIMEOUT, http_request, next_loopback, read_responses, refusing_port,
                      sn_cluster, sn_route, sn_rule, sn_snapshot, temporary_dataplane, wait_until)


class ScriptedBackend:
    """A tiny HTTP backend on its own thread. For each request it reads a head
    (requests here carry no body) and calls behaviour(path) -> bytes to send,
    or None to close the connection without answering. Records (connection
    number, path) for every request."""

    def __init__(self, behaviour, addr=None):
        self.behaviour = behaviour
        self.addr = addr or next_loopback()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((self.addr, 0))
        self.listener.listen(16)
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.requests = []
        self.connections = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
                number = self.connections
            t = threading.Thread(target=self._serve, args=(conn, number), daemon=True)
            t.start()

    def _serve(self, conn, number):
        conn.settimeout(10)
        buf = b""
        with conn:
            while not self._stop.is_set():
                try:
                    while b"\r\n\r\n" not in buf:
                        chunk = conn.recv(65536)
                        if not chunk:
                            return
                        buf += chunk
                except OSError:
                    return
                head, _, buf = buf.partition(b"\r\n\r\n")
                path = head.split(b"\r\n")[0].split(b" ")[1].decode()
                with self._lock:
                    self.requests.append((number, path))
                answer = self.behaviour(path)
                if answer is None:
                    return
                close_after = isinstance(answer, tuple)
                try:
                    if isinstance(answer, list):  # parts sent apart (each its own read upstream)
                        for part in answer:
                            conn.sendall(part)
                            time.sleep(0.05)
                    else:
                        conn.sendall(answer[0] if close_after else answer)
                except OSError:
                    return
                if close_after:
                    return

    def close(self):
        self._stop.set()
        self.listener.close()


def ok(body=b"fine"):
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


def scripted(path):
    if path.startswith("/malformed"):
        return b"HTTP/1.1 abc Broken\r\nContent-Length: 0\r\n\r\n"
    if path.startswith("/split"):  # the head, then (50 ms later) its body
        return [b"HTTP/1.1 200 OK\r\nX-Marker: head-intact\r\nContent-Length: 300\r\n\r\n", b"0123456789" * 30]
    if path.startswith("/then-close"):
        return (ok(),)  # a keep-alive answer, then the backend closes while idle
    return ok()


ROUTES = {
    # host: the cluster its route sends to
    "refused.example.com": "default/refused:80",
    "closer.example.com": "default/closer:80",
    "scripted.example.com": "default/scripted:80",
    "slow.example.com": "default/slow:80",
    "empty.example.com": "default/empty:80",
}


@pytest.fixture(scope="module")
def gateway():
    with temporary_dataplane() as dp:
        closer = ScriptedBackend(lambda path: None)
        script = ScriptedBackend(scripted)
        echo = dp.echo("slow")
        refused_addr = next_loopback()
        refused = (refused_addr, refusing_port(refused_addr))  # nothing listens there
        clusters = [
            sn_cluster("default/refused:80", [refused]),
            sn_cluster("default/closer:80", [(closer.addr, closer.port)]),
            sn_cluster("default/scripted:80", [(script.addr, script.port)]),
            sn_cluster("default/slow:80", [(echo.addr, echo.port)]),
            sn_cluster("default/empty:80", []),
        ]
        routes = [sn_route(h.split(".")[0], [sn_rule(c)], hostnames=[h])
                  for h, c in ROUTES.items() if h != "slow.example.com"]
        routes.append(sn_route("slow", [sn_rule("default/slow:80", policy={
            "timeouts": {"backendRequestMs": 300}})], hostnames=["slow.example.com"]))
        routes.append(sn_route("unresolved", [sn_rule(backends=[
            {"weight": 1, "unresolved": "service default/missing not found"}])],
            hostnames=["unresolved.example.com"]))
        # One worker: the upstream connection pool is per worker, so a reuse
        # (or its absence) is observable from one client.
        proxy = dp.proxy(sn_snapshot(1, routes, clusters), workers=1)
        proxy.scripted = script
        try:
            yield proxy
        finally:
            closer.close()
            script.close()


CASES = [
    ("refused.example.com", "/", 502),
    ("closer.example.com", "/", 502),
    ("scripted.example.com", "/malformed", 502),
    ("slow.example.com", "/delay/3000", 504),
    ("empty.example.com", "/", 503),
    ("unresolved.example.com", "/", 500),
]


@pytest.mark.parametrize("host,path,status", CASES, ids=[c[0].split(".")[0] for c in CASES])
def test_gateway_answer(gateway, host, path, status):
    # Connection: close keeps this table independent of keep-alive handling,
    # which test_keep_alive_after_gateway_answer checks.
    r = gateway.get(path, host=host, timeout=10, headers={"Connection": "close"})
    assert r.status == status, r
    assert r.headers.get("x-request-id"), r.headers
    assert 0 < len(r.body) < 512, r.body
    assert r.headers.get("server") != "gantry-echo"
    assert b"{" not in r.body  # the gateway's text, not a backend's JSON


def test_head_and_body_in_separate_reads(gateway):
    # The body is gathered after the head was parsed: the head's fields must
    # survive it (they once pointed into buffer bytes the body overwrote).
    for _ in range(3):
        r = http_request(gateway.http_port, "/split", host="scripted.example.com")
        assert r.status == 200, r
        assert r.headers.get("x-marker") == "head-intact", r.headers
        assert r.body == b"0123456789" * 30


def test_client_request_id_kept_on_gateway_answer(gateway):
    r = gateway.get("/", host="unresolved.example.com",
                    headers={"X-Request-Id": "err-id-7", "Connection": "close"})
    assert r.status == 500
    assert r.headers.get("x-request-id") == "err-id-7"
    r = gateway.get("/", host="refused.example.com", headers={"X-Request-Id": "err-id-7"})
    assert r.status == 502
    assert r.headers.get("x-request-id") == "err-id-7"


def test_slow_backend_within_timeout_is_served(gateway):
    # The 300 ms route timeout is what produced the 504, not a broken backend.
    r = gateway.get("/delay/10", host="slow.example.com")
    assert r.status == 200, r


def test_malformed_response_connection_is_not_reused(gateway):
    backend = gateway.scripted
    before = len(backend.requests)
    # Two good requests on separate client connections: the second reuses the
    # pooled upstream connection of the first (one worker).
    assert gateway.get("/good/1", host="scripted.example.com").status == 200
    assert gateway.get("/good/2", host="scripted.example.com").status == 200
    assert gateway.get("/malformed", host="scripted.example.com").status == 502
    assert gateway.get("/good/3", host="scripted.example.com").status == 200
    seen = dict((path, conn) for conn, path in backend.requests[before:])
    assert set(seen) == {"/good/1", "/good/2", "/malformed", "/good/3"}, backend.requests
    assert seen["/good/2"] == seen["/good/1"], "keep-alive pooling is not in effect"
    assert seen["/good/3"] != seen["/malformed"], \
        f"the connection that sent a malformed response was reused: {backend.requests[before:]}"


def test_pooled_connection_closed_by_backend_is_not_a_failure(gateway):
    # The backend answers keep-alive, then closes the idle connection: the next
    # request must not fail on the dead pooled connection.
    backend = gateway.scripted
    for i in range(3):
        before = len(backend.requests)
        r = gateway.get(f"/then-close/{i}", host="scripted.example.com")
        assert r.status == 200, r
        r = gateway.get(f"/good/after-{i}", host="scripted.example.com")
        assert r.status == 200, r
        (c1, _), (c2, _) = backend.requests[before:before + 2]
        assert c1 != c2



@pytest.mark.parametrize("host,status", [("empty.example.com", 503),
                                         ("unresolved.example.com", 500),
                                         ("unknown.example.com", 404)])
def test_keep_alive_after_gateway_answer(dataplane, host, status):
    # Its own proxy: the bug spins a worker, which must not hang other tests.
    echo = dataplane.echo("good")
    snap = sn_snapshot(1, [
        sn_route("empty", [sn_rule("default/empty:80")], hostnames=["empty.example.com"]),
        sn_route("unresolved", [sn_rule(backends=[{"weight": 1, "unresolved": "not found"}])],
                 hostnames=["unresolved.example.com"]),
        sn_route("good", [sn_rule("default/good:80")], hostnames=["good.example.com"])],
        [sn_cluster("default/empty:80", []), sn_cluster("default/good:80", [(echo.addr, echo.port)])])
    proxy = dataplane.proxy(snap, workers=1)
    with socket.create_connection(("127.0.0.1", proxy.http_port), timeout=HTTP_TIMEOUT) as s:
        s.sendall(f"GET /first HTTP/1.1\r\nHost: {host}\r\n\r\n"
                  "GET /second HTTP/1.1\r\nHost: good.example.com\r\nConnection: close\r\n\r\n"
                  .encode())
        responses, _ = read_responses(s, 2)
    assert [r.status for r in responses] == [status, 200], responses
    assert b'"/second"' in responses[1].body


def established_to(addr, port):
    """ESTABLISHED TCP connections (of any process) whose remote end is addr:port."""
    want = f"{socket.htonl(int.from_bytes(socket.inet_aton(addr), 'big')):08X}:{port:04X}"
    count = 0
    for line in open("/proc/net/tcp").read().splitlines()[1:]:
        fields = line.split()
        if fields[2] == want and fields[3] == "01":
            count += 1
    return count


def test_idle_pooled_connections_are_closed_after_the_idle_timeout(dataplane):
    """--upstream-idle-timeout: pooled connections nobody used for that long
    are closed by the proxy (not left open, or in CLOSE_WAIT, forever)."""
    echo = dataplane.echo("pool")
    cluster = "default/pool:8080"
    proxy = dataplane.proxy(
        sn_snapshot(1, [sn_route("pool", [sn_rule(cluster)], hostnames=["pool.example.com"])],
                    [sn_cluster(cluster, [(echo.addr, echo.port)])]),
        extra_args=["--upstream-idle-timeout", "1500ms"], workers=1)
    for _ in range(3):
        assert proxy.get("/", host="pool.example.com").status == 200
    assert established_to(echo.addr, echo.port) == 1  # kept alive in the pool
    wait_until(lambda: established_to(echo.addr, echo.port) == 0, 10,
               "the idle pooled connection to be closed")
    # The next request opens a fresh one and is served.
    assert proxy.get("/", host="pool.example.com").status == 200
    assert established_to(echo.addr, echo.port) == 1


@pytest.mark.parametrize("flag,kept", [(None, 80), ("3", 3)])
def test_pool_keeps_idle_connections_up_to_the_per_endpoint_limit(dataplane, flag, kept):
    """--upstream-max-idle-per-endpoint (default 1024): after 80 requests in
    flight at once to one endpoint, the worker keeps all 80 connections for
    the next burst (a cap below the load would close the rest and open them
    again, a TCP handshake and teardown per request on both sides); with 3,
    it keeps 3 and closes the others when they are given back."""
    echo = dataplane.echo(f"burst{flag}")
    cluster = "default/burst:8080"
    extra = ["--upstream-max-idle-per-endpoint", flag] if flag else []
    proxy = dataplane.proxy(
        sn_snapshot(1, [sn_route("burst", [sn_rule(cluster)], hostnames=["burst.example.com"])],
                    [sn_cluster(cluster, [(echo.addr, echo.port)])]),
        extra_args=extra, workers=1)
    statuses = []
    start = threading.Barrier(80)

    def one():
        start.wait()  # all 80 at once; the 3 s answer keeps them in flight together even on a slow machine
        statuses.append(proxy.get("/delay/3000", host="burst.example.com").status)

    threads = [threading.Thread(target=one) for _ in range(80)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 80
    wait_until(lambda: established_to(echo.addr, echo.port) == kept, 5,
               f"{kept} pooled connections to the endpoint (now {established_to(echo.addr, echo.port)})")
    time.sleep(0.3)
    assert established_to(echo.addr, echo.port) == kept


def test_endpoint_dying_under_an_idempotent_request_is_retried_elsewhere(dataplane):
    """A fresh upstream connection closed before any byte of the answer (the
    endpoint went away, e.g. its pod was killed mid-request): a GET goes once
    more, to another endpoint, without any retry policy; a POST cannot be
    replayed and gets the 502."""
    dying = ScriptedBackend(lambda path: None)  # reads the request, closes without answering
    try:
        echo = dataplane.echo("survivor")
        cluster = "default/dying:80"
        proxy = dataplane.proxy(
            sn_snapshot(1, [sn_route("dying", [sn_rule(cluster, policy={
                "loadBalancer": {"type": "RoundRobin"}})], hostnames=["dying.example.com"])],
                [sn_cluster(cluster, [(dying.addr, dying.port), (echo.addr, echo.port)])]),
            workers=1)
        for _ in range(6):  # round robin: half of these are sent to the dying endpoint first
            r = proxy.get("/", host="dying.example.com")
            assert r.status == 200 and r.backend == "survivor", r
        assert len(dying.requests) >= 3
        sent = len(dying.requests)
        statuses = [proxy.get("/", host="dying.example.com", method="POST", body=b"x").status
                    for _ in range(4)]
        assert statuses.count(502) >= 1 and set(statuses) <= {200, 502}, statuses
        assert len(dying.requests) == sent + statuses.count(502)  # each POST sent once, never replayed
    finally:
        dying.close()
