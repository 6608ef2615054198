"""WebSocket over HTTP/2 (RFC 8441 extended CONNECT) through gantry-proxy to
gantry-echo's /ws, an HTTP/1.1 WebSocket echo (the same backend as
test_websocket.py's).

The client is gantry-h2ws-client (tests/backends/h2_websocket_client.cc), a
WebSocket client on libnghttp2's client session: no Debian tool speaks
RFC 8441. h2c with prior knowledge and TLS with ALPN h2. It checks that the
proxy advertises SETTINGS_ENABLE_CONNECT_PROTOCOL, opens the tunnel
(`:status 200`), and every echo byte for byte.
"""

import json
import subprocess
import time

import pytest

from conftest import (CertAuthority, binary, refusing_port, sn_cluster, sn_route, sn_rule, sn_snapshot,
                      temporary_dataplane, wait_until)
from test_metrics import samples, value

HOST = "ws.example.com"
IDLE_HOST = "idle.ws.example.com"
ECHO = "default/echo:8080"
H2 = "default/grpc:8080"


@pytest.fixture(scope="module")
def proxy():
    with temporary_dataplane() as dp:
        echo = dp.echo("echo")
        ca = CertAuthority(dp.workdir)
        h2 = sn_cluster(H2, [("127.0.0.1", refusing_port())])
        h2["protocol"] = "H2C"
        rules = [sn_rule(ECHO, prefix="/ws"),
                 sn_rule(H2, prefix="/grpc"),
                 sn_rule(ECHO, prefix="/denied", filters={"sourceRange": {"deny": ["127.0.0.0/8"]}}),
                 sn_rule(ECHO)]
        log = dp.workdir / "access.log"
        idle = sn_rule(ECHO, prefix="/ws", policy={"timeouts": {"idleMs": 800}})
        p = dp.proxy(sn_snapshot(1, [sn_route("ws", rules, hostnames=[HOST]),
                                     sn_route("idle", [idle], hostnames=[IDLE_HOST])],
                                 [sn_cluster(ECHO, [(echo.addr, echo.port)]), h2],
                                 certificates=[ca.certificate("default/ws-tls", "ws", [HOST])]),
                     https=True, access_log=log)
        p.echo, p.ca, p.access_log_path = echo, ca, log
        yield p


def client(proxy, *steps, tls=False, path="/ws", extra=(), timeout=90):
    argv = [str(binary("gantry-h2ws-client")), "--authority", HOST, "--path", path, *extra]
    if tls:
        argv += ["--port", str(proxy.https_port), "--tls", "--ca", str(proxy.ca.path)]
    else:
        argv += ["--port", str(proxy.http_port)]
    r = subprocess.run(argv + list(steps), capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout.splitlines(), r.stderr


def metric(proxy, name, **labels):
    return value(proxy.metrics_text(), name, **labels)


def closed(proxy, reason):
    """gantry_websocket_closed_total{reason}; 0 before the first such close (no sample yet)."""
    found = [v for n, l, v in samples(proxy.metrics_text())
             if n == "gantry_websocket_closed_total" and l.get("reason") == reason]
    return found[0] if found else 0


def stalled_client(proxy, host, total):
    """Runs gantry-h2ws-client's `stall:TOTAL` then `close` on /ws of `host`:
    returns the bytes the proxy took before it stopped, the proxy's RSS
    growth (KiB) measured while the client still read nothing, and the
    client's lines after the stall."""
    argv = [str(binary("gantry-h2ws-client")), "--port", str(proxy.http_port), "--authority", host,
            "--path", "/ws", f"stall:{total}", "close"]
    before = proxy.rss_kib()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stalled = None
        for line in p.stdout:
            if line.startswith("stalled"):
                stalled = line.split()
                break
        assert stalled is not None, p.stderr.read()
        grown = proxy.rss_kib() - before
        sent = int(stalled[1].split("=")[1])
        rest = p.stdout.read().splitlines()
        assert p.wait(timeout=60) == 0, p.stderr.read()
    finally:
        p.kill()
    print(f"stall: proxy took {sent} of {total} bytes, RSS grew {grown} KiB")
    return sent, grown, rest


def access_log(proxy):
    return [json.loads(l) for l in proxy.access_log_path.read_text().splitlines() if l.strip()]


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2-tls"])
def test_messages_echo_both_ways_and_the_backend_closes(proxy, tls):
    upgrades = metric(proxy, "gantry_websocket_upgrades_total")
    by_upstream = closed(proxy, "upstream")
    to_upstream = metric(proxy, "gantry_websocket_bytes_total", direction="to_upstream")
    rc, out, err = client(proxy, "text:hello", "text:héllo wörld ✓", "binary:256", "text:" + "t" * 70000,
                          "binary:1048576", "binary:3000000", "close", tls=tls)
    assert rc == 0, err
    assert out[0] == "settings enable_connect_protocol=1"
    assert out[1] == "status 200"
    headers = [l for l in out if l.startswith("header ")]
    # The HTTP/1.1 handshake's fields stay between the proxy and the backend.
    assert not any(h.split()[1].rstrip(":") in ("upgrade", "connection", "sec-websocket-accept") for h in headers), headers
    assert "header x-echo-name: echo" in out
    assert out[2 + len(headers):] == ["echo text 5", f"echo text {len('héllo wörld ✓'.encode())}", "echo binary 256",
                                      "echo text 70000", "echo binary 1048576", "echo binary 3000000",
                                      "end_stream", "closed"]
    # The backend answered the close and closed its connection: the proxy's
    # END_STREAM; counted as a tunnel the upstream ended.
    wait_until(lambda: metric(proxy, "gantry_websocket_connections_active") == 0, 5, "the tunnel to end")
    assert metric(proxy, "gantry_websocket_upgrades_total") == upgrades + 1
    assert closed(proxy, "upstream") == by_upstream + 1
    sent = 5 + len("héllo wörld ✓".encode()) + 256 + 70000 + 1048576 + 3000000
    moved = metric(proxy, "gantry_websocket_bytes_total", direction="to_upstream") - to_upstream
    assert sent < moved < sent + 1000  # plus the frames' headers and masks
    wait_until(lambda: any(e["path"] == "/ws" for e in access_log(proxy)), 5, "the access log line")
    entry = [e for e in access_log(proxy) if e["path"] == "/ws"][-1]
    assert entry["proto"] == "HTTP/2" and entry["status"] == 200 and entry["method"] == "GET", entry


def test_a_slow_reader_stops_the_tunnel_instead_of_growing_the_proxy(proxy):
    """The client sends 64 MiB of messages and reads none of the echoes, nor
    grants any window: the proxy stops taking its bytes (flow control all the
    way to the backend and back) and its memory stays flat; then every echo
    arrives intact."""
    total = 64 << 20
    sent, grown, rest = stalled_client(proxy, HOST, total)
    assert sent < total * 3 // 4, sent  # the proxy stopped taking bytes (windows + socket buffers)
    assert grown < 16 * 1024, f"proxy RSS grew by {grown} KiB while the client did not read"
    assert rest == [f"echo binary {total}", "end_stream", "closed"]


def test_the_client_resetting_the_stream_closes_the_upstream(proxy):
    by_client = closed(proxy, "client")
    rc, out, err = client(proxy, "text:one", "binary:200000", "reset")
    assert rc == 0, err
    assert out[-3:] == ["echo text 3", "echo binary 200000", "reset"]
    wait_until(lambda: metric(proxy, "gantry_websocket_connections_active") == 0, 5, "the tunnel to end")
    assert closed(proxy, "client") == by_client + 1


def test_the_clients_end_stream_half_closes_the_upstream(proxy):
    """END_STREAM from the client is a half-close of the backend connection:
    gantry-echo then ends too, and the client gets the proxy's END_STREAM; the
    close is counted as the client's, whose half-close came first."""
    by_client = closed(proxy, "client")
    rc, out, err = client(proxy, "text:last words", "end")
    assert rc == 0, err
    assert out[-2:] == ["echo text 10", "end_stream"]
    wait_until(lambda: metric(proxy, "gantry_websocket_connections_active") == 0, 5, "the tunnel to end")
    assert closed(proxy, "client") == by_client + 1


def test_the_routes_idle_timeout_resets_a_quiet_tunnel(proxy):
    by_idle = closed(proxy, "idle_timeout")
    started = time.monotonic()
    rc, out, err = client(proxy, "text:tick", "sleep:400", "text:tock", "wait-end", extra=["--authority", IDLE_HOST])
    assert rc == 0, err
    assert out[-3:] == ["echo text 4", "echo text 4", "rst 8"]  # CANCEL
    assert time.monotonic() - started < 4
    wait_until(lambda: closed(proxy, "idle_timeout") == by_idle + 1, 5, "the idle close to count")


def test_plain_connect_and_other_protocols_are_refused(proxy):
    rc, out, err = client(proxy, extra=["--plain-connect"])
    assert rc == 0, err
    assert out[1] == "status 400"  # RFC 9113 8.5: the gateway is no forward proxy (as HTTP/1.1's CONNECT)
    rc, out, err = client(proxy, extra=["--protocol", "connect-udp"])
    assert rc == 0, err
    assert out[1] == "status 400"


def test_routes_that_cannot_take_a_websocket(proxy):
    # A backend that answers without switching protocols: the client must not
    # take its 200 for an open tunnel.
    rc, out, err = client(proxy, path="/plain")
    assert rc == 0, err
    assert out[1] == "status 502" and "header x-gateway-reason: websocket-handshake" in out, out
    # An HTTP/2 backend is asked with an extended CONNECT of its own
    # (test_h2_upstream_websocket.py); this one refuses connections: 502.
    rc, out, err = client(proxy, path="/grpc")
    assert rc == 0, err
    assert out[1] == "status 502", out
    # The route's policies apply as to any request: ipDeny.
    rc, out, err = client(proxy, path="/denied")
    assert rc == 0, err
    assert out[1] == "status 403", out
    # And a host no route serves.
    rc, out, err = client(proxy, extra=["--authority", "nobody.example.com"])
    assert rc == 0, err
    assert out[1] == "status 404", out


def test_the_proxy_makes_the_handshake_and_checks_the_accept(dataplane):
    """The backend gets an HTTP/1.1 upgrade with the proxy's own
    Sec-WebSocket-Key; a 101 whose Sec-WebSocket-Accept does not match it
    opens no tunnel (502)."""
    import base64
    import hashlib
    import socket
    import threading

    heads = []
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    good = {"accept": True}

    def serve():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                head = data.decode(errors="replace")
                heads.append(head)
                key = next((l.split(":", 1)[1].strip() for l in head.split("\r\n")
                            if l.lower().startswith("sec-websocket-key:")), "")
                accept = base64.b64encode(hashlib.sha1(
                    (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
                conn.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                              f"Sec-WebSocket-Accept: {accept if good['accept'] else 'd3Jvbmc='}\r\n"
                              "Sec-WebSocket-Protocol: chat\r\n\r\n").encode())
                time.sleep(0.2)

    threading.Thread(target=serve, daemon=True).start()
    try:
        port = srv.getsockname()[1]
        p = dataplane.proxy(sn_snapshot(1, [sn_route("ws", [sn_rule("default/raw:80")], hostnames=[HOST])],
                                        [sn_cluster("default/raw:80", [("127.0.0.1", port)])]))
        argv = [str(binary("gantry-h2ws-client")), "--port", str(p.http_port), "--authority", HOST,
                "--path", "/chat?room=1"]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert lines[1] == "status 200" and "header sec-websocket-protocol: chat" in lines, lines
        head = heads[-1].split("\r\n")
        assert head[0] == "GET /chat?room=1 HTTP/1.1", head
        fields = {l.split(":", 1)[0].lower(): l.split(":", 1)[1].strip() for l in head[1:] if ":" in l}
        assert fields["upgrade"] == "websocket" and fields["connection"] == "upgrade", fields
        assert fields["sec-websocket-version"] == "13"
        assert len(base64.b64decode(fields["sec-websocket-key"])) == 16, fields
        good["accept"] = False
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert lines[1] == "status 502" and "header x-gateway-reason: websocket-handshake" in lines, lines
    finally:
        srv.close()
