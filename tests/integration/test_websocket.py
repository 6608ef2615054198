"""WebSocket through the proxy (ws and wss) to gantry-echo's /ws echo.

A real client (python3-websocket) exchanges text, binary and 1 MiB messages,
pings, and keeps one WebSocket open across 100 snapshot swaps that change the
other rules of its route and the listener's certificates: an upgraded
connection belongs to the snapshot it started under and must never be cut.
"""

import itertools
import os
import ssl
import time

import pytest
import websocket

from conftest import (CertAuthority, ProcessManager, sn_cluster, sn_route, sn_rule, sn_snapshot,
                      temporary_dataplane, wait_until)

HOST = "ws.example.com"
CLUSTER = "default/echo:8080"
OTHER = "default/other:8080"
SWAPS = 100


def ws_snapshot(version, proxy):
    """Snapshot `version`: the /ws rule never changes; the route's other rules
    and the certificates alternate between two sets."""
    i = version % 2
    rules = [sn_rule(CLUSTER, prefix="/ws")]
    rules += [sn_rule(OTHER, prefix=f"/other-{version}-{k}", filters={
        "requestHeaders": {"set": [{"name": "x-swap", "value": str(version)}]}}) for k in range(i + 1)]
    return sn_snapshot(version, [sn_route("ws", rules, hostnames=[HOST])],
                       [sn_cluster(CLUSTER, [(proxy.echo.addr, proxy.echo.port)]),
                        sn_cluster(OTHER, [(proxy.other.addr, proxy.other.port)])],
                       certificates=proxy.cert_sets[i])


@pytest.fixture(scope="module")
def proxy():
    with temporary_dataplane() as dp:
        ca = CertAuthority(dp.workdir)

        class Holder:
            pass
        h = Holder()
        h.echo, h.other = dp.echo("echo"), dp.echo("other")
        h.cert_sets = [
            [ca.certificate("default/ws-tls", "ws-a", [HOST]),
             ca.certificate("default/extra-a", "extra-a", ["extra-a.example.com"])],
            [ca.certificate("default/ws-tls", "ws-b", [HOST]),
             ca.certificate("default/extra-b", "extra-b", ["extra-b.example.com"])],
        ]
        p = dp.proxy(ws_snapshot(1, h), https=True)
        p.echo, p.other, p.cert_sets, p.ca = h.echo, h.other, h.cert_sets, ca
        p.versions = itertools.count(2)
        yield p


def connect(proxy, scheme):
    if scheme == "ws":
        url = f"ws://127.0.0.1:{proxy.http_port}/ws"
        sslopt = None
    else:
        url = f"wss://127.0.0.1:{proxy.https_port}/ws"
        sslopt = {"ca_certs": str(proxy.ca.path), "server_hostname": HOST,
                  "cert_reqs": ssl.CERT_REQUIRED, "check_hostname": True}
    ws = websocket.create_connection(url, timeout=10, host=HOST, sslopt=sslopt)
    assert ws.getstatus() == 101
    headers = {k.lower(): v for k, v in ws.getheaders().items()}
    assert headers.get("upgrade", "").lower() == "websocket", headers
    return ws


def roundtrip(ws, payload):
    if isinstance(payload, str):
        ws.send(payload)
        opcode, data = ws.recv_data()
        assert opcode == websocket.ABNF.OPCODE_TEXT
        assert data.decode() == payload
    else:
        ws.send_binary(payload)
        opcode, data = ws.recv_data()
        assert opcode == websocket.ABNF.OPCODE_BINARY
        assert len(data) == len(payload) and data == payload


SCHEMES = ["ws", "wss"]


@pytest.mark.parametrize("scheme", SCHEMES)
def test_messages_echo(proxy, scheme):
    ws = connect(proxy, scheme)
    try:
        roundtrip(ws, "hello")
        roundtrip(ws, "héllo wörld ✓")
        roundtrip(ws, "")
        roundtrip(ws, bytes(range(256)) * 4)
        roundtrip(ws, "t" * 70000)  # 64-bit length field
        roundtrip(ws, os.urandom(1024 * 1024))
        ws.ping(b"are you there")
        frame = ws.recv_frame()
        assert frame.opcode == websocket.ABNF.OPCODE_PONG
        assert frame.data == b"are you there"
    finally:
        ws.close()


@pytest.mark.parametrize("scheme", SCHEMES)
def test_websocket_survives_snapshot_swaps(proxy, scheme):
    ws = connect(proxy, scheme)
    try:
        roundtrip(ws, "before the swaps")
        last = None
        with proxy.control() as control:
            for i in range(SWAPS):
                last = next(proxy.versions)
                control.full(ws_snapshot(last, proxy))
                if i % 10 == 9:
                    roundtrip(ws, f"after swap {i + 1}")
        assert proxy.config_dump()["version"] == last
        roundtrip(ws, "after all swaps")
        roundtrip(ws, os.urandom(1024 * 1024))
        # The swaps took effect for new requests: the newest rule routes.
        r = proxy.get(f"/other-{last}-0", host=HOST)
        assert r.status == 200 and r.backend == "other", r
        assert r.json()["headers"]["x-swap"] == str(last)
    finally:
        ws.close()
    # And a new WebSocket opens under the newest snapshot.
    ws = connect(proxy, scheme)
    try:
        roundtrip(ws, "new socket")
    finally:
        ws.close()


def test_upgrade_without_websocket_is_plain_request(proxy):
    # Upgrade: h2c is hop-by-hop and not honoured: an ordinary answer, no 101.
    r = proxy.get("/ws/plain", host=HOST, headers={"Connection": "Upgrade", "Upgrade": "h2c"})
    assert r.status == 200, r
    assert "upgrade" not in r.json()["headers"]


def test_idle_websocket_is_closed_after_the_route_idle_timeout():
    """policy.timeouts.idle bounds a tunnel with no traffic in either direction;
    traffic pushes the deadline forward."""
    with temporary_dataplane() as dp:
        echo = dp.echo("echo")
        rule = sn_rule(CLUSTER, prefix="/ws", policy={"timeouts": {"idleMs": 800}})
        p = dp.proxy(sn_snapshot(1, [sn_route("ws", [rule], hostnames=[HOST])],
                                 [sn_cluster(CLUSTER, [(echo.addr, echo.port)])]))
        ws = websocket.create_connection(f"ws://127.0.0.1:{p.http_port}/ws", timeout=5, host=HOST)
        # Active for ~1.5 s (longer than the timeout): messages keep it open.
        for i in range(6):
            ws.send(f"tick {i}")
            assert ws.recv() == f"tick {i}"
            time.sleep(0.25)
        # Then idle: the proxy closes it within the timeout plus the 100 ms sweep.
        started = time.monotonic()
        with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError, OSError)):
            while time.monotonic() - started < 4:
                frame = ws.recv()
                if frame in ("", None):
                    raise websocket.WebSocketConnectionClosedException("closed")
        assert time.monotonic() - started < 3


def test_websocket_metrics_count_tunnels_bytes_and_close_reasons():
    """gantry_websocket_*: upgrades, open tunnels, bytes each way, and why each
    tunnel closed (client, upstream, idle_timeout)."""
    from test_metrics import value

    with temporary_dataplane() as dp:
        echo = dp.echo("echo")
        idle_host = "idle." + HOST
        idle_rule = sn_rule(CLUSTER, prefix="/ws", policy={"timeouts": {"idleMs": 500}})
        p = dp.proxy(sn_snapshot(1, [sn_route("ws", [sn_rule(CLUSTER, prefix="/ws")], hostnames=[HOST]),
                                     sn_route("idle", [idle_rule], hostnames=[idle_host])],
                                 [sn_cluster(CLUSTER, [(echo.addr, echo.port)])]))

        def metric(name, **labels):
            return value(p.metrics_text(), name, **labels)

        assert metric("gantry_websocket_upgrades_total") == 0
        ws = websocket.create_connection(f"ws://127.0.0.1:{p.http_port}/ws", timeout=5, host=HOST)
        payload = os.urandom(100_000)
        for _ in range(3):
            roundtrip(ws, payload)
        assert metric("gantry_websocket_connections_active") == 1
        assert metric("gantry_websocket_upgrades_total") == 1
        # Each message crosses both ways once, plus a few bytes of framing.
        sent = 3 * len(payload)
        assert sent <= metric("gantry_websocket_bytes_total", direction="to_upstream") < sent + 1000
        assert sent <= metric("gantry_websocket_bytes_total", direction="to_client") < sent + 1000
        ws.shutdown()  # the client's TCP connection goes away (no close handshake)
        wait_until(lambda: metric("gantry_websocket_connections_active") == 0, 5, "the tunnel to close")
        assert metric("gantry_websocket_closed_total", reason="client") == 1

        # An idle tunnel closed by the route's idle timeout.
        ws = websocket.create_connection(f"ws://127.0.0.1:{p.http_port}/ws", timeout=5, host=idle_host)
        wait_until(lambda: metric("gantry_websocket_upgrades_total") == 2, 5, "the second upgrade")
        wait_until(lambda: metric("gantry_websocket_connections_active") == 0, 5, "the idle timeout")
        assert metric("gantry_websocket_closed_total", reason="idle_timeout") == 1
        ws.close()

        # The backend going away ends the tunnel from the upstream side.
        ws = websocket.create_connection(f"ws://127.0.0.1:{p.http_port}/ws", timeout=5, host=HOST)
        roundtrip(ws, "before")
        ProcessManager.kill(echo.proc)
        wait_until(lambda: metric("gantry_websocket_connections_active") == 0, 5, "the upstream close")
        assert metric("gantry_websocket_closed_total", reason="upstream") == 1
        assert metric("gantry_websocket_upgrades_total") == 3
