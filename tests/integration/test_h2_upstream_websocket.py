"""WebSocket over HTTP/2 (RFC 8441 extended CONNECT) forwarded to HTTP/2
backends (h2c and h2 over TLS) as an extended CONNECT of their own, when the
backend's SETTINGS enable it (docs/http2.md, "WebSocket over HTTP/2").

The backends are gantry-h2-echo processes (tests/backends/h2_echo_backend.cc):
an extended CONNECT to /ws is a WebSocket echo there (every frame sent back
unmasked, close answered with close then END_STREAM), /ws-reset resets the
stream 100 ms after its 200; with --no-connect-protocol the server does
not advertise SETTINGS_ENABLE_CONNECT_PROTOCOL, as a backend without RFC 8441.
With --log-requests they print "websocket open PATH", "websocket reset by the
client" and "websocket end from the client". The client is gantry-h2ws-client
(test_http2_websocket.py). Everything runs on loopback.
"""

import socket
import subprocess
import time

import pytest

from conftest import (CertAuthority, binary, read_responses, sn_cluster, sn_route, sn_rule, sn_snapshot, temporary_dataplane,
                      wait_until)
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
        p = dp.proxy(sn_snapshot(1, routes, clusters,
                                 certificates=[ca.certificate("default/ws-tls", "ws", [H2C_HOST, H2_HOST])]),
                     https=True, workers=1)
        p.ws, p.none, p.ca = ws, none, ca
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
    ends = len(env.ws.lines("websocket end from the client"))
    rc, out, err = client(env, "text:last words", "end")
    assert rc == 0, err
    assert out[-2:] == ["echo text 10", "end_stream"]
    wait_until(lambda: len(env.ws.lines("websocket end from the client")) == ends + 1, 5,
               "the backend to see END_STREAM")
    tunnels_closed(env)


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


def test_an_http11_upgrade_to_an_h2_backend_is_501(env):
    """An HTTP/1.1 client's Upgrade is tunnelled to HTTP/1.1 backends only:
    the HTTP/2 backend is not asked (no silent GET in place of the upgrade)."""
    with socket.create_connection(("127.0.0.1", env.http_port), timeout=10) as s:
        s.sendall((f"GET /ws HTTP/1.1\r\nHost: {H2C_HOST}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                   "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").encode())
        responses, _ = read_responses(s, 1)
    assert [r.status for r in responses] == [501], responses
