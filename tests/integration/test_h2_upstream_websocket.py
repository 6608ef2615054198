"""WebSocket to HTTP/2 backends (h2c and h2 over TLS) as an extended CONNECT
(RFC 8441), when the backend's SETTINGS enable it (docs/http2.md, "WebSocket
over HTTP/2"): an HTTP/2 client's extended CONNECT goes on as one of its own,
and an HTTP/1.1 client's Upgrade is converted to one, the gateway answering
the client's handshake (101, Sec-WebSocket-Accept) itself.

The backends are gantry-h2-echo processes (tests/backends/h2_echo_backend.cc):
an extended CONNECT to /ws is a WebSocket echo there (every frame sent back
unmasked, close answered with close then END_STREAM), /ws-reset resets the
stream 100 ms after its 200; with --no-connect-protocol the server does
not advertise SETTINGS_ENABLE_CONNECT_PROTOCOL, as a backend without RFC 8441.
With --log-requests they print "websocket open PATH", "websocket reset by the
client", "websocket end from the client" and the extended CONNECT's
sec-websocket-* fields ("websocket field NAME: VALUE"). The HTTP/2 client is
gantry-h2ws-client (test_http2_websocket.py); the HTTP/1.1 clients are
python3-websocket and raw sockets (tests named test_h11_*). Everything runs on
loopback.
"""

import base64
import hashlib
import os
import socket
import ssl
import subprocess
import threading
import time

import websocket

import pytest

from conftest import (CertAuthority, binary, parse_responses, read_responses, read_to_eof, sn_route, sn_rule,
                      sn_snapshot, temporary_dataplane, wait_until)
from test_h2_upstream_features import H2Echo, h2_cluster, h2c_cluster
from test_http2_websocket import closed, metric, stalled_client

H2C_HOST = "ws.h2c.test"    # -> gantry-h2-echo over h2c
H2_HOST = "ws.h2.test"      # -> gantry-h2-echo over h2 (TLS)
NONE_HOST = "ws.none.test"  # -> gantry-h2-echo without SETTINGS_ENABLE_CONNECT_PROTOCOL
IDLE_HOST = "ws.idle.test"  # -> h2c, the route's idle timeout 800 ms


@pytest.fixture(scope="module")
def env():
    with temporary_dataplane() as dp:
        ca = CertAuthority(dp.workdir)
        ws = H2Echo(dp, "ws", ca)
        none = H2Echo(dp, "none", extra=["--no-connect-protocol"])
        clusters = [h2c_cluster("default/ws:80", ws), h2_cluster("default/ws-tls:443", ws, ca),
                    h2c_cluster("default/none:80", none)]
        routes = [sn_route("h2c", [sn_rule("default/ws:80")], hostnames=[H2C_HOST]),
                  sn_route("h2", [sn_rule("default/ws-tls:443")], hostnames=[H2_HOST]),
                  sn_route("none", [sn_rule("default/none:80")], hostnames=[NONE_HOST]),
                  sn_route("idle", [sn_rule("default/ws:80", policy={"timeouts": {"idleMs": 800}})],
                           hostnames=[IDLE_HOST])]
        log = dp.workdir / "access.log"
        p = dp.proxy(sn_snapshot(1, routes, clusters,
                                 certificates=[ca.certificate("default/ws-tls", "ws", [H2C_HOST, H2_HOST])]),
                     https=True, workers=1, access_log=log)
        p.ws, p.none, p.ca, p.access_log_path = ws, none, ca, log
        yield p


def client(env, *steps, host=H2C_HOST, path="/ws", tls=False, extra=(), timeout=90):
    argv = [str(binary("gantry-h2ws-client")), "--authority", host, "--path", path, *extra]
    if tls:
        argv += ["--port", str(env.https_port), "--tls", "--ca", str(env.ca.path), "--sni", host]
    else:
        argv += ["--port", str(env.http_port)]
    r = subprocess.run(argv + list(steps), capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout.splitlines(), r.stderr


def tunnels_closed(env):
    wait_until(lambda: metric(env, "gantry_websocket_connections_active") == 0, 5, "the tunnels to end")


@pytest.mark.parametrize("host", [H2C_HOST, H2_HOST], ids=["to-h2c", "to-h2-tls"])
@pytest.mark.parametrize("tls", [False, True], ids=["from-h2c", "from-h2-tls"])
def test_messages_echo_both_ways_through_an_h2_backend(env, host, tls):
    upgrades = metric(env, "gantry_websocket_upgrades_total")
    by_upstream = closed(env, "upstream")
    opened = len(env.ws.lines("websocket open /ws"))
    rc, out, err = client(env, "text:hello", "text:héllo wörld ✓", "binary:256", "text:" + "t" * 70000,
                          "binary:1048576", "binary:3000000", "close", host=host, tls=tls)
    assert rc == 0, err
    assert out[0] == "settings enable_connect_protocol=1"
    assert out[1] == "status 200"
    headers = [l for l in out if l.startswith("header ")]
    assert "header x-echo-websocket: h2" in headers, out  # the backend's own 200 to its extended CONNECT
    assert out[2 + len(headers):] == ["echo text 5", f"echo text {len('héllo wörld ✓'.encode())}", "echo binary 256",
                                      "echo text 70000", "echo binary 1048576", "echo binary 3000000",
                                      "end_stream", "closed"]
    # The backend got an extended CONNECT (not an HTTP/1.1-style GET).
    assert len(env.ws.lines("websocket open /ws")) == opened + 1
    tunnels_closed(env)
    assert metric(env, "gantry_websocket_upgrades_total") == upgrades + 1
    assert closed(env, "upstream") == by_upstream + 1


def test_a_large_message_crosses_a_small_client_window(env):
    """A 4 MB message against a 16 KiB client stream window: it moves only as
    the client reads, every byte intact."""
    rc, out, err = client(env, "binary:4000000", "text:after", "close", extra=["--window", "16384"])
    assert rc == 0, err
    assert out[-4:] == ["echo binary 4000000", "echo text 5", "end_stream", "closed"]


def test_a_slow_reader_stops_the_backend_instead_of_growing_the_proxy(env):
    """The client sends 32 MiB and reads none of the echoes: the backend's
    stream window (reopened only as the client takes the bytes) and the
    client's stop everything; the proxy's memory stays flat."""
    total = 32 << 20
    sent, grown, rest = stalled_client(env, H2C_HOST, total)
    assert sent < total // 2, sent
    assert grown < 16 * 1024, f"proxy RSS grew by {grown} KiB while the client did not read"
    assert rest == [f"echo binary {total}", "end_stream", "closed"]


def test_the_clients_reset_cancels_the_backends_stream(env):
    by_client = closed(env, "client")
    resets = len(env.ws.lines("websocket reset by the client"))
    rc, out, err = client(env, "text:one", "binary:200000", "reset")
    assert rc == 0, err
    assert out[-3:] == ["echo text 3", "echo binary 200000", "reset"]
    wait_until(lambda: len(env.ws.lines("websocket reset by the client")) == resets + 1, 5,
               "the backend to see its stream reset")
    tunnels_closed(env)
    assert closed(env, "client") == by_client + 1


def test_the_backends_reset_is_connect_error_to_the_client(env):
    by_upstream = closed(env, "upstream")
    rc, out, err = client(env, "wait-end", path="/ws-reset")
    assert rc == 0, err
    assert out[-1] == "rst 10", out  # CONNECT_ERROR (RFC 9113 8.5)
    tunnels_closed(env)
    assert closed(env, "upstream") == by_upstream + 1


def test_the_clients_end_stream_reaches_the_backend(env):
    """The client half-closes first; the backend's end that answers it closes
    the tunnel, counted as the client's close."""
    by_client = closed(env, "client")
    ends = len(env.ws.lines("websocket end from the client"))
    rc, out, err = client(env, "text:last words", "end")
    assert rc == 0, err
    assert out[-2:] == ["echo text 10", "end_stream"]
    wait_until(lambda: len(env.ws.lines("websocket end from the client")) == ends + 1, 5,
               "the backend to see END_STREAM")
    tunnels_closed(env)
    assert closed(env, "client") == by_client + 1


def test_the_routes_idle_timeout_cancels_both_streams(env):
    by_idle = closed(env, "idle_timeout")
    started = time.monotonic()
    rc, out, err = client(env, "text:tick", "sleep:400", "text:tock", "wait-end", host=IDLE_HOST)
    assert rc == 0, err
    assert out[-3:] == ["echo text 4", "echo text 4", "rst 8"]  # CANCEL
    assert time.monotonic() - started < 4
    wait_until(lambda: closed(env, "idle_timeout") == by_idle + 1, 5, "the idle close to count")


def test_the_backends_refusal_goes_to_the_client(env):
    # Any answer other than 2xx is an answer: relayed as it is, no tunnel.
    rc, out, err = client(env, path="/local/403")
    assert rc == 0, err
    assert out[1] == "status 403", out


def test_a_backend_without_the_setting_is_a_clear_502(env):
    rc, out, err = client(env, host=NONE_HOST)
    assert rc == 0, err
    assert out[1] == "status 502" and "header x-gateway-reason: websocket-handshake" in out, out
    assert not env.none.lines("websocket open"), "nothing may reach a backend that did not enable it"
    # Plain requests on the same route are still served.
    r = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "-H", f"Host: {NONE_HOST}",
                        f"http://127.0.0.1:{env.http_port}/plain"], capture_output=True, text=True, timeout=15)
    assert r.stdout == "GET /plain 0\n", r


# ---- an HTTP/1.1 client's Upgrade, converted to an extended CONNECT

RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455 1.3's example: its accept is s3pPLMBiTxaQ9kYGzzhZRbK+xOo=


def accept_of(key):
    """Sec-WebSocket-Accept as RFC 6455 4.2.2 defines it."""
    return base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()


def ws_frame(opcode, payload):
    """A client's frame, FIN set, masked with a zero key (a valid key: the
    payload goes as it is, so large frames cost no Python loop)."""
    n = len(payload)
    if n < 126:
        length = bytes([0x80 | n])
    elif n < 1 << 16:
        length = bytes([0x80 | 126]) + n.to_bytes(2, "big")
    else:
        length = bytes([0x80 | 127]) + n.to_bytes(8, "big")
    return bytes([0x80 | opcode]) + length + b"\0\0\0\0" + payload


class Frames:
    """The server's (unmasked) frames from a socket, after the handshake's leftover bytes."""

    def __init__(self, sock, data=b""):
        self.sock, self.data = sock, data

    def _fill(self, n):
        while len(self.data) < n:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                return False
            self.data += chunk
        return True

    def next(self):
        """(opcode, payload), or None at EOF."""
        if not self._fill(2):
            return None
        n, at = self.data[1] & 0x7F, 2
        if n >= 126:
            size = 2 if n == 126 else 8
            if not self._fill(2 + size):
                return None
            n, at = int.from_bytes(self.data[2:2 + size], "big"), 2 + size
        if not self._fill(at + n):
            return None
        frame = (self.data[0] & 0x0F, self.data[at:at + n])
        self.data = self.data[at + n:]
        return frame


def roundtrip(s, frames, opcode, payload):
    """Sends a frame on an open tunnel and reads its echo."""
    s.sendall(ws_frame(opcode, payload))
    assert frames.next() == (opcode, payload)


def h11_open(env, host=H2C_HOST, path="/ws", tls=False, key=RFC_KEY, fields=(), body=b""):
    """An HTTP/1.1 WebSocket handshake on a new connection: (socket, response, Frames)."""
    port = env.https_port if tls else env.http_port
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    if tls:
        s = ssl.create_default_context(cafile=str(env.ca.path)).wrap_socket(s, server_hostname=host)
    head = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
    head += "Sec-WebSocket-Version: 13\r\n"
    if key is not None:
        head += f"Sec-WebSocket-Key: {key}\r\n"
    for name, value in fields:
        head += f"{name}: {value}\r\n"
    s.sendall(head.encode() + b"\r\n" + body)
    data = b""
    while True:
        end = data.find(b"\r\n\r\n")
        if end >= 0 and data.startswith(b"HTTP/1.1 101 "):  # what follows the head is the tunnel's
            return s, parse_responses(data[:end + 4])[0][0], Frames(s, data[end + 4:])
        responses, _ = parse_responses(data)
        if responses:  # an ordinary answer, with its body
            return s, responses[0], None
        chunk = s.recv(65536)
        assert chunk, f"the connection closed before an answer: {data!r}"
        data += chunk


def h11_connect(env, host, tls, **kw):
    """python3-websocket's connection through the proxy (ws:// or wss://)."""
    if tls:
        return websocket.create_connection(f"wss://127.0.0.1:{env.https_port}/ws", timeout=20, host=host,
                                           sslopt={"ca_certs": str(env.ca.path), "server_hostname": host}, **kw)
    return websocket.create_connection(f"ws://127.0.0.1:{env.http_port}/ws", timeout=20, host=host, **kw)


def access_log_entries(env):
    import json
    return [json.loads(ln) for ln in env.access_log_path.read_text().splitlines() if ln.strip()]


@pytest.mark.parametrize("host", [H2C_HOST, H2_HOST], ids=["to-h2c", "to-h2-tls"])
@pytest.mark.parametrize("tls", [False, True], ids=["from-http", "from-https"])
def test_h11_messages_echo_through_an_h2_backend(env, host, tls):
    """A real client's handshake (it checks Sec-WebSocket-Accept against its
    own key), text and binary messages up to 4 MB both ways, a ping, then the
    close: the backend's close and END_STREAM reach the client."""
    upgrades = metric(env, "gantry_websocket_upgrades_total")
    by_upstream = closed(env, "upstream")
    opened = len(env.ws.lines("websocket open /ws"))
    ws = h11_connect(env, host, tls, subprotocols=["chat"])
    try:
        assert ws.getstatus() == 101
        headers = {k.lower(): v for k, v in ws.getheaders().items()}
        assert headers["upgrade"].lower() == "websocket" and headers["connection"].lower() == "upgrade", headers
        assert headers["x-echo-websocket"] == "h2", headers  # the backend's own 200 to its extended CONNECT
        assert ws.getsubprotocol() == "chat"
        for message in ["hello", "héllo wörld ✓", "", "t" * 70000]:
            ws.send(message)
            assert ws.recv() == message
        for size in [256, 1 << 20, 4_000_000]:
            payload = os.urandom(size)
            ws.send_binary(payload)
            opcode, data = ws.recv_data()
            assert opcode == websocket.ABNF.OPCODE_BINARY and data == payload, (size, len(data))
        ws.ping(b"are you there")
        frame = ws.recv_frame()
        assert frame.opcode == websocket.ABNF.OPCODE_PONG and frame.data == b"are you there"
    finally:
        ws.close()
    assert len(env.ws.lines("websocket open /ws")) == opened + 1
    tunnels_closed(env)
    assert metric(env, "gantry_websocket_upgrades_total") == upgrades + 1
    assert closed(env, "upstream") == by_upstream + 1
    def h11_entries():
        return [e for e in access_log_entries(env) if e["path"] == "/ws" and e["proto"] == "HTTP/1.1"]
    wait_until(lambda: h11_entries(), 5, "the access log line")
    entry = h11_entries()[-1]
    assert entry["status"] == 101 and entry["method"] == "GET", entry


@pytest.mark.parametrize("host", [H2C_HOST, H2_HOST], ids=["to-h2c", "to-h2-tls"])
def test_h11_handshake_becomes_an_extended_connect(env, host):
    """The 101 answers the client's key (RFC 6455's own example) and relays
    the backend's protocol and extensions; the backend got the version,
    protocol and extensions but no key (RFC 8441 5)."""
    mark = f"x-test-{os.urandom(4).hex()}"
    fields_before = len(env.ws.lines("websocket field "))
    s, r, frames = h11_open(env, host=host, fields=[("Sec-WebSocket-Protocol", "chat"),
                                                    ("Sec-WebSocket-Extensions", mark)])
    with s:
        assert r.status == 101 and r.reason == "Switching Protocols", r
        assert r.header("sec-websocket-accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" == accept_of(RFC_KEY), r
        assert r.header("upgrade") == "websocket" and r.header("connection").lower() == "upgrade", r
        assert r.header("sec-websocket-protocol") == "chat" and r.header("sec-websocket-extensions") == mark, r
        assert [n for n, _ in r.headers].count("sec-websocket-accept") == 1, r
        assert r.header("content-length") is None and r.header("transfer-encoding") is None, r
        roundtrip(s, frames, 1, b"ping-pong")
    sent = env.ws.lines("websocket field ")[fields_before:]
    assert sorted(sent) == sorted(["websocket field sec-websocket-version: 13",
                                   "websocket field sec-websocket-protocol: chat",
                                   f"websocket field sec-websocket-extensions: {mark}"]), sent
    tunnels_closed(env)


@pytest.mark.parametrize("tls", [False, True], ids=["from-http", "from-https"])
def test_h11_backend_end_stream_half_closes_the_client(env, tls):
    """The client's close frame comes back, then the backend's END_STREAM is
    the connection's EOF to the client, whose side stays open until it ends it."""
    by_upstream = closed(env, "upstream")
    ends = len(env.ws.lines("websocket end from the client"))
    s, r, frames = h11_open(env, tls=tls)
    with s:
        assert r.status == 101, r
        roundtrip(s, frames, 8, b"\x03\xe8bye")
        assert frames.next() is None  # EOF: the backend's END_STREAM
        assert metric(env, "gantry_websocket_connections_active") >= 1  # half-open: the client may still end it
        s.shutdown(socket.SHUT_WR)  # TLS too: a FIN without close_notify, as the proxy's
        tunnels_closed(env)
    assert closed(env, "upstream") == by_upstream + 1
    wait_until(lambda: len(env.ws.lines("websocket end from the client")) == ends + 1, 5,
               "the backend to see END_STREAM")


def test_h11_client_eof_is_end_stream_to_the_backend(env):
    ends = len(env.ws.lines("websocket end from the client"))
    s, r, frames = h11_open(env)
    with s:
        assert r.status == 101, r
        s.sendall(ws_frame(1, b"last words"))
        s.shutdown(socket.SHUT_WR)
        assert frames.next() == (1, b"last words")
        assert frames.next() is None  # the backend ended its side after the client's END_STREAM
    wait_until(lambda: len(env.ws.lines("websocket end from the client")) == ends + 1, 5,
               "the backend to see END_STREAM")
    tunnels_closed(env)


@pytest.mark.parametrize("tls", [False, True], ids=["from-http", "from-https"])
def test_h11_client_disconnect_cancels_the_backends_stream(env, tls):
    """The client's connection reset (RST) is RST_STREAM CANCEL to the backend."""
    by_client = closed(env, "client")
    resets = len(env.ws.lines("websocket reset by the client"))
    s, r, frames = h11_open(env, tls=tls)
    assert r.status == 101, r
    roundtrip(s, frames, 2, bytes(200000))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")  # l_onoff 1, l_linger 0
    s.close()
    wait_until(lambda: len(env.ws.lines("websocket reset by the client")) == resets + 1, 5,
               "the backend to see its stream reset")
    tunnels_closed(env)
    assert closed(env, "client") == by_client + 1


@pytest.mark.parametrize("tls", [False, True], ids=["from-http", "from-https"])
def test_h11_backends_reset_closes_the_client_connection(env, tls):
    by_upstream = closed(env, "upstream")
    s, r, frames = h11_open(env, path="/ws-reset", tls=tls)
    with s:
        assert r.status == 101, r
        _, eof = read_to_eof(s, timeout=5)
        assert eof, "the proxy kept the connection after the backend reset the stream"
    tunnels_closed(env)
    assert closed(env, "upstream") == by_upstream + 1


def test_h11_idle_timeout_ends_both_sides(env):
    by_idle = closed(env, "idle_timeout")
    resets = len(env.ws.lines("websocket reset by the client"))
    s, r, frames = h11_open(env, host=IDLE_HOST)
    with s:
        assert r.status == 101, r
        roundtrip(s, frames, 1, b"tick")
        time.sleep(0.4)
        roundtrip(s, frames, 1, b"tock")  # traffic moves the 800 ms deadline
        started = time.monotonic()
        _, eof = read_to_eof(s, timeout=5)
        assert eof and time.monotonic() - started < 3
    wait_until(lambda: len(env.ws.lines("websocket reset by the client")) == resets + 1, 5,
               "the backend to see CANCEL")
    wait_until(lambda: closed(env, "idle_timeout") == by_idle + 1, 5, "the idle close to count")


def test_h11_slow_reader_stops_the_backend_instead_of_growing_the_proxy(env):
    """The client sends 64 MiB of messages and reads none of the echoes: the
    h2 stream's window (reopened only as the client's socket takes the bytes)
    stops the backend, the backend stops taking the proxy's bytes, and the
    proxy stops reading the client; its memory stays flat. Then every echo
    arrives intact."""
    total, size = 64 << 20, 1 << 20
    s, r, frames = h11_open(env)
    with s:
        assert r.status == 101, r
        frame = ws_frame(2, bytes(size))
        before = env.rss_kib()
        s.settimeout(3)
        sent, stalled_at, grown = 0, None, None
        got = {"bytes": 0, "frames": 0}

        def read_echoes():
            while got["frames"] < total // size:
                f = frames.next()
                if f is None:
                    break
                got["bytes"] += len(f[1])
                got["frames"] += 1

        reader = None
        for _ in range(total // size):
            view = memoryview(frame)
            while view:
                try:
                    n = s.send(view)
                except socket.timeout:
                    assert stalled_at is None, "the proxy stalled twice"
                    stalled_at, grown = sent, env.rss_kib() - before
                    s.settimeout(60)
                    reader = threading.Thread(target=read_echoes)
                    reader.start()
                    continue
                view, sent = view[n:], sent + n
        assert reader is not None, "the proxy took 64 MiB from a client that read nothing"
        reader.join(60)
        print(f"stall: proxy took {stalled_at} of {total} bytes, RSS grew {grown} KiB")
        assert stalled_at < total // 2, stalled_at
        assert grown < 16 * 1024, f"proxy RSS grew by {grown} KiB while the client did not read"
        assert got == {"bytes": total, "frames": total // size}, got


def test_h11_backend_without_the_setting_is_a_clear_502(env):
    s, r, _ = h11_open(env, host=NONE_HOST)
    with s:
        assert r.status == 502 and r.header("x-gateway-reason") == "websocket-handshake", r
    assert not env.none.lines("websocket open"), "nothing may reach a backend that did not enable it"


def test_h11_backends_refusal_is_relayed_without_an_upgrade(env):
    """A non-2xx answer to the extended CONNECT is an ordinary HTTP/1.1
    answer: no upgrade, and the connection serves the next request."""
    s, r, _ = h11_open(env, path="/local/403")
    with s:
        assert r.status == 403 and r.body == b"local reply 403\n", r
        assert r.header("upgrade") is None and r.header("sec-websocket-accept") is None, r
        s.sendall(f"GET /plain HTTP/1.1\r\nHost: {H2C_HOST}\r\n\r\n".encode())
        responses, _ = read_responses(s, 1)
        assert [(x.status, x.body) for x in responses] == [(200, b"GET /plain 0\n")], responses


@pytest.mark.parametrize("key", [None, "c2hvcnQ=", "dGhlIHNhbXBsZSBub25jZQ"], ids=["no-key", "short", "unpadded"])
def test_h11_upgrade_without_a_valid_key_is_400(env, key):
    opened = len(env.ws.lines("websocket open"))
    s, r, _ = h11_open(env, key=key)
    with s:
        assert r.status == 400 and r.header("x-gateway-reason") == "websocket-handshake", r
    assert len(env.ws.lines("websocket open")) == opened


def test_h11_upgrade_with_a_body_is_400(env):
    opened = len(env.ws.lines("websocket open"))
    s, r, _ = h11_open(env, fields=[("Content-Length", "5")], body=b"hello")
    with s:
        assert r.status == 400 and r.header("x-gateway-reason") == "websocket-handshake", r
    assert len(env.ws.lines("websocket open")) == opened
