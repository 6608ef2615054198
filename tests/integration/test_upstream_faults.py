"""Responses an upstream gets wrong, as a keep-alive client sees them (issue 19).

A raw-socket upstream plays one scripted answer per request path: a body cut
short (Content-Length or chunked, by close, reset or stall), bytes after the
body, no framing at all, 204/304 with a body, 1xx before the final answer.
Each test asserts what the client receives on a keep-alive connection and
that it knows soon: a cut response closes the client connection at once
(bounded well below the client's own timeout), a complete one leaves the
connection usable for the next request. Cuts are counted in
gantry_upstream_errors_total{kind="truncated"} and marked on the access-log
line ("error": "upstream_truncated").
"""

import json
import socket
import struct
import threading
import time

import pytest

from conftest import (next_loopback, parse_responses, read_responses, read_to_eof, sn_cluster,
                      sn_route, sn_rule, sn_snapshot, temporary_dataplane, wait_until)

CLUSTER = "default/faulty:80"
HOST = "faulty.example.com"
CLIENT_TIMEOUT = 10.0  # the client's own patience
PROMPT = 3.0           # "at once": well before the client's timeout, with room for a slow CI
STALL_MS = 600         # --upstream-timeout of the proxy under test


def head(status=200, reason="OK", fields=()):
    lines = [f"HTTP/1.1 {status} {reason}"] + [f"{n}: {v}" for n, v in fields]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# Each script: a list of steps, ("send", bytes) | ("close",) | ("reset",) | ("stall",).
# After the last step the connection is kept for the next request.
SCRIPTS = {
    "/ok": [("send", head(fields=[("Content-Length", "2")]) + b"ok")],
    "/short-cl": [("send", head(fields=[("Content-Length", "100")]) + b"0123456789"), ("close",)],
    "/short-cl-big": [("send", head(fields=[("Content-Length", "100000")]) + b"x" * 40000),
                      ("close",)],
    "/short-chunked": [("send", head(fields=[("Transfer-Encoding", "chunked")]) +
                        b"5\r\nhello\r\n3\r\nwor"), ("close",)],
    "/reset-cl": [("send", head(fields=[("Content-Length", "100000")]) + b"y" * 40000),
                  ("reset",)],
    "/reset-chunked": [("send", head(fields=[("Transfer-Encoding", "chunked")]) +
                        b"5\r\nhello\r\n"), ("reset",)],
    "/stall-cl": [("send", head(fields=[("Content-Length", "100000")]) + b"z" * 40000),
                  ("stall",)],
    "/stall-cl-small": [("send", head(fields=[("Content-Length", "100")]) + b"0123456789"),
                        ("stall",)],
    "/stall-chunked": [("send", head(fields=[("Transfer-Encoding", "chunked")]) +
                        b"5\r\nhello\r\n"), ("stall",)],
    "/extra": [("send", head(fields=[("Content-Length", "5")]) + b"helloEXTRA")],
    "/unframed": [("send", head() + b"until close"), ("close",)],
    "/204-body": [("send", head(204, "No Content", [("Content-Length", "5")]) + b"hello")],
    "/304-body": [("send", head(304, "Not Modified", [("Transfer-Encoding", "chunked"),
                                                      ("ETag", '"v1"')]) +
                   b"5\r\nhello\r\n0\r\n\r\n")],
    "/1xx": [("send", head(103, "Early Hints", [("Link", "</style.css>; rel=preload"),
                                                ("Content-Length", "7")]) +
              head(102, "Processing") +
              head(fields=[("Content-Length", "5")]) + b"final")],
}


class FaultyUpstream:
    """Reads request heads (no bodies) and plays SCRIPTS[path]. Records
    (connection number, path) per request."""

    def __init__(self):
        self.addr = next_loopback()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((self.addr, 0))
        self.listener.listen(64)
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.requests = []
        self.connections = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

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
            threading.Thread(target=self._serve, args=(conn, number), daemon=True).start()

    def _serve(self, conn, number):
        conn.settimeout(30)
        buf = b""
        try:
            while not self._stop.is_set():
                while b"\r\n\r\n" not in buf:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                req, _, buf = buf.partition(b"\r\n\r\n")
                path = req.split(b"\r\n")[0].split(b" ")[1].decode()
                with self._lock:
                    self.requests.append((number, path))
                for step in SCRIPTS[path.split("?")[0]]:
                    if step[0] == "send":
                        conn.sendall(step[1])
                    elif step[0] == "close":
                        return
                    elif step[0] == "reset":
                        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        return
                    elif step[0] == "stall":
                        self._stop.wait(30)  # holds the connection open, sends nothing
                        return
        except OSError:
            return
        finally:
            conn.close()

    def close(self):
        self._stop.set()
        self.listener.close()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    log = tmp_path_factory.mktemp("faults") / "access.log"
    with temporary_dataplane() as dp:
        upstream = FaultyUpstream()
        snap = sn_snapshot(1, [sn_route("faulty", [sn_rule(CLUSTER)], hostnames=[HOST])],
                           [sn_cluster(CLUSTER, [(upstream.addr, upstream.port)])])
        # One worker: upstream connection reuse is observable from one client.
        proxy = dp.proxy(snap, workers=1, access_log=log,
                         extra_args=["--upstream-timeout", f"{STALL_MS}ms"])
        proxy.upstream = upstream
        proxy.access_log_path = log
        try:
            yield proxy
        finally:
            upstream.close()


def truncated_count(proxy):
    for line in proxy.metrics_text().splitlines():
        if (line.startswith("gantry_upstream_errors_total{") and f'cluster="{CLUSTER}"' in line
                and 'kind="truncated"' in line):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def access_line(proxy, request_id):
    found = {}

    def seen():
        if not proxy.access_log_path.exists():
            return False
        for line in proxy.access_log_path.read_text().splitlines():
            entry = json.loads(line)
            if entry.get("requestId") == request_id:
                found["entry"] = entry
                return True
        return False

    wait_until(seen, 10, f"the access-log line of request {request_id}")
    return found["entry"]


def request(path, request_id):
    return (f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nX-Request-Id: {request_id}\r\n\r\n").encode()


def keep_alive_client(proxy):
    return socket.create_connection(("127.0.0.1", proxy.http_port), timeout=CLIENT_TIMEOUT)


# path, what the client receives before the close: (status or None, body prefix)
CUT_CASES = [
    # Cut before anything went to the client (a body up to 32 KiB is gathered
    # first): the gateway answers instead; 504 when the upstream stalled.
    ("/short-cl", 502, b""),
    ("/stall-cl-small", 504, b""),
    # Cut after the head went out: the head and the bytes that came, then the close.
    ("/short-cl-big", 200, b"x" * 40000),
    ("/short-chunked", 200, b"hello"),
    ("/reset-cl", 200, b"y" * 40000),
    ("/reset-chunked", 200, b"hello"),
    ("/stall-cl", 200, b"z" * 40000),
    ("/stall-chunked", 200, b"hello"),
]


@pytest.mark.parametrize("path,status,body", CUT_CASES, ids=[c[0][1:] for c in CUT_CASES])
def test_cut_response_closes_the_client_connection_at_once(gateway, path, status, body):
    before = truncated_count(gateway)
    rid = "cut" + path.replace("/", "-")
    with keep_alive_client(gateway) as s:
        started = time.monotonic()
        s.sendall(request(path, rid))
        data, closed = read_to_eof(s, CLIENT_TIMEOUT)
        elapsed = time.monotonic() - started
    assert closed, f"the client connection stayed open after a cut response: {data[:300]!r}"
    bound = PROMPT + (STALL_MS / 1000.0 if path.startswith("/stall") else 0)
    assert elapsed < bound, f"closed only after {elapsed:.2f}s"
    first = data.split(b"\r\n", 1)[0]
    assert first.startswith(f"HTTP/1.1 {status} ".encode()), data[:300]
    hdr, _, rest = data.partition(b"\r\n\r\n")
    if status == 200:
        framing = hdr.lower()
        assert b"content-length: " in framing or b"transfer-encoding: chunked" in framing, hdr
        if b"transfer-encoding: chunked" in framing:
            # the chunks relayed so far, never a last-chunk: the client sees a cut
            assert b"hello" in rest and not rest.endswith(b"0\r\n\r\n"), rest
        else:
            assert rest == body, (len(rest), len(body))
    else:
        assert b"connection: close" in hdr.lower(), hdr
    wait_until(lambda: truncated_count(gateway) >= before + 1, 10,
               "gantry_upstream_errors_total{kind=\"truncated\"} to count the cut")
    entry = access_line(gateway, rid)
    assert entry.get("error") == "upstream_truncated", entry
    assert entry["status"] == status


def test_extra_bytes_after_the_body_are_dropped_and_the_upstream_connection_not_reused(gateway):
    up = gateway.upstream
    before = len(up.requests)
    with keep_alive_client(gateway) as s:
        s.sendall(request("/extra", "extra-1") + request("/ok", "extra-2"))
        responses, closed = read_responses(s, 2, timeout=CLIENT_TIMEOUT)
        assert not closed
        assert [r.status for r in responses] == [200, 200], responses
        assert responses[0].body == b"hello" and responses[1].body == b"ok", responses
        # the client connection is still usable
        s.sendall(request("/ok", "extra-3"))
        more, _ = read_responses(s, 1, timeout=CLIENT_TIMEOUT)
        assert [r.status for r in more] == [200]
    conns = [c for c, _ in up.requests[before:]]
    assert conns[1] != conns[0], f"the connection that sent extra bytes was reused: {up.requests[before:]}"
    assert access_line(gateway, "extra-1").get("error") is None


def test_unframed_response_is_relayed_until_close_then_the_client_is_closed(gateway):
    before = truncated_count(gateway)
    with keep_alive_client(gateway) as s:
        started = time.monotonic()
        s.sendall(request("/unframed", "unframed-1"))
        data, closed = read_to_eof(s, CLIENT_TIMEOUT)
        elapsed = time.monotonic() - started
    assert closed and elapsed < PROMPT, (closed, elapsed)
    hdr, _, body = data.partition(b"\r\n\r\n")
    assert hdr.startswith(b"HTTP/1.1 200 "), hdr
    assert b"connection: close" in hdr.lower(), hdr
    assert b"content-length" not in hdr.lower() and b"transfer-encoding" not in hdr.lower(), hdr
    assert body == b"until close"
    assert access_line(gateway, "unframed-1").get("error") is None  # complete, not cut
    assert truncated_count(gateway) == before


@pytest.mark.parametrize("path,status", [("/204-body", 204), ("/304-body", 304)])
def test_bodiless_status_never_carries_framing_and_keeps_the_client_connection(gateway, path,
                                                                               status):
    up = gateway.upstream
    before = len(up.requests)
    rid = "bodiless" + path.replace("/", "-")
    with keep_alive_client(gateway) as s:
        s.sendall(request(path, rid))
        responses, closed = read_responses(s, 1, timeout=CLIENT_TIMEOUT)
        assert not closed and [r.status for r in responses] == [status], responses
        r = responses[0]
        assert r.header("content-length") is None, r.headers
        assert r.header("transfer-encoding") is None, r.headers
        # the next answer on the same connection is the next request's, not the stray body
        s.sendall(request("/ok", rid + "-next"))
        s.settimeout(CLIENT_TIMEOUT)
        data = b""
        while b"\r\n\r\nok" not in data:
            chunk = s.recv(65536)
            assert chunk, f"closed: {data!r}"
            data += chunk
        assert data.startswith(b"HTTP/1.1 200 "), data
        assert b"hello" not in data
    conns = [c for c, _ in up.requests[before:]]
    assert conns[1] != conns[0], "an upstream connection that announced a body after a " \
                                 f"{status} was reused: {up.requests[before:]}"


def test_interim_responses_are_relayed_before_the_final_answer(gateway):
    with keep_alive_client(gateway) as s:
        s.sendall(request("/1xx", "interim-1"))
        s.settimeout(CLIENT_TIMEOUT)
        data = b""
        while b"\r\n\r\nfinal" not in data:
            chunk = s.recv(65536)
            assert chunk, f"closed: {data!r}"
            data += chunk
        responses, rest = parse_responses(data)
        assert [r.status for r in responses] == [103, 102, 200], responses
        assert responses[0].header("link") == "</style.css>; rel=preload"
        assert responses[0].header("content-length") is None, responses[0].headers
        assert responses[2].body == b"final" and rest == b""
        # the connection goes on
        s.sendall(request("/ok", "interim-2"))
        more, closed = read_responses(s, 1, timeout=CLIENT_TIMEOUT)
        assert not closed and [r.status for r in more] == [200]


def test_interim_responses_are_not_sent_to_an_http10_client(gateway):
    with keep_alive_client(gateway) as s:
        s.sendall(f"GET /1xx HTTP/1.0\r\nHost: {HOST}\r\n\r\n".encode())
        data, closed = read_to_eof(s, CLIENT_TIMEOUT)
    assert closed
    assert data.startswith(b"HTTP/1.1 200 "), data[:200]
    assert b" 103 " not in data and b" 102 " not in data
    assert data.endswith(b"\r\n\r\nfinal")
