"""Idle keep-alive connections cost almost nothing, and still work.

A plain-HTTP keep-alive connection that has waited more than a second for its
next request gives its 16 KiB read buffer back, its pages to the kernel, and
parks: no coroutine, one readiness wait (docs/ARCHITECTURE.md). Checked as a
user would: the proxy's RSS falls while many connections sit idle, and every
one of them is served again afterwards, pipelined requests included. The
first request of each connection carries a 12 KiB header, so that its read
buffer's pages are all touched (a buffer's untouched pages cost nothing).
"""

import socket
import time

from conftest import (HTTP_TIMEOUT, read_responses, sn_cluster, sn_route, sn_rule, sn_snapshot,
                      wait_until)

CONNECTIONS = 400


def request(path, host="idle.example.com", pad=0):
    extra = f"X-Pad: {'a' * pad}\r\n" if pad else ""
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode()


def test_idle_connections_give_their_buffers_back_and_are_served_again(dataplane):
    echo = dataplane.echo("idle")
    cluster = "default/idle:80"
    proxy = dataplane.proxy(
        sn_snapshot(1, [sn_route("idle", [sn_rule(cluster)], hostnames=["idle.example.com"])],
                    [sn_cluster(cluster, [(echo.addr, echo.port)])]),
        workers=1)
    socks = []
    try:
        for i in range(CONNECTIONS):
            s = socket.create_connection(("127.0.0.1", proxy.http_port), timeout=HTTP_TIMEOUT)
            s.sendall(request(f"/first/{i}", pad=12 * 1024))
            responses, closed = read_responses(s, 1)
            assert [r.status for r in responses] == [200] and not closed, responses
            socks.append(s)
        busy = proxy.rss_kib()
        # Each idle connection gives back ~16 KiB after a second: the RSS must
        # fall by well over a third of that across the connections.
        want = busy - CONNECTIONS * 6
        last = {}

        def fell():
            last["rss"] = proxy.rss_kib()
            return last["rss"] <= want

        wait_until(fell, 15, f"the proxy's RSS to fall from {busy} KiB to {want} KiB or less",
                   on_timeout=lambda: f"RSS now {last.get('rss')} KiB")
        # Every idle connection is served again; half of them pipeline two requests.
        for i, s in enumerate(socks):
            if i % 2:
                s.sendall(request(f"/again/{i}") + request(f"/again/{i}/b"))
                responses, closed = read_responses(s, 2)
                assert [r.status for r in responses] == [200, 200], (i, responses)
                assert b'"/again/%d/b"' % i in responses[1].body
            else:
                s.sendall(request(f"/again/{i}"))
                responses, closed = read_responses(s, 1)
                assert [r.status for r in responses] == [200], (i, responses)
            assert not closed
            assert b'"/again/%d"' % i in responses[0].body
    finally:
        for s in socks:
            s.close()


def test_a_request_sent_in_pieces_across_the_release_is_served(dataplane):
    """The first byte of the next request wakes the released connection; the
    rest, sent later, is read into a fresh buffer."""
    echo = dataplane.echo("idle2")
    cluster = "default/idle2:80"
    proxy = dataplane.proxy(
        sn_snapshot(1, [sn_route("idle2", [sn_rule(cluster)], hostnames=["idle.example.com"])],
                    [sn_cluster(cluster, [(echo.addr, echo.port)])]),
        workers=1)
    with socket.create_connection(("127.0.0.1", proxy.http_port), timeout=HTTP_TIMEOUT) as s:
        s.sendall(request("/one"))
        responses, _ = read_responses(s, 1)
        assert [r.status for r in responses] == [200]
        time.sleep(1.5)  # past the release delay (nothing depends on it happening exactly)
        data = request("/two")
        s.sendall(data[:1])
        time.sleep(0.3)
        s.sendall(data[1:])
        responses, closed = read_responses(s, 1)
        assert [r.status for r in responses] == [200] and not closed, responses
        assert b'"/two"' in responses[0].body


# ---- HTTP/2 (h2c): an idle connection parks too (http2::serve_parking)

H2_CONNECTIONS = 200


def h2_proxy(dataplane, **kw):
    echo = dataplane.echo("idle-h2")
    cluster = "default/idle-h2:80"
    return dataplane.proxy(
        sn_snapshot(1, [sn_route("idle", [sn_rule(cluster)])], [sn_cluster(cluster, [(echo.addr, echo.port)])]),
        workers=1, extra_args=["--http2", "on"], **kw)


def h2_answer(c, stream):
    """The :status block and whether the stream ended, reading frames until it did."""
    head, ended = None, False
    while not ended:
        f = c.frame()
        assert f is not None, f"the connection closed before stream {stream} ended"
        if f[0] == 1 and f[2] == stream:
            head = f[3]
            ended = bool(f[1] & 1)
        elif f[0] == 0 and f[2] == stream:
            ended = bool(f[1] & 1)
    return head


def test_idle_h2c_connections_park_and_are_served_again(dataplane):
    """Each connection makes a request, then sits idle past the 1 s after
    which it parks (its coroutines end; one readiness wait stays); every one
    is served again on the same connection, and one whose next request's
    HEADERS frame arrives in two pieces across the park too."""
    from test_http2_codec import RawH2, h2_frame

    proxy = h2_proxy(dataplane)
    conns = []
    try:
        for i in range(H2_CONNECTIONS):
            c = RawH2(proxy.http_port)
            c.get(1, f"/first/{i}")
            assert h2_answer(c, 1) is not None
            conns.append(c)
        # Half a frame, then the park, then the rest.
        lit = lambda n, v: b"\x00" + bytes([len(n)]) + n + bytes([len(v)]) + v
        block = b"".join(lit(n, v) for n, v in [(b":method", b"GET"), (b":scheme", b"http"),
                                                (b":authority", b"x"), (b":path", b"/split")])
        split = h2_frame(1, 5, 3, block)
        conns[0].send(split[:7])
        time.sleep(1.6)
        conns[0].send(split[7:])
        assert h2_answer(conns[0], 3) is not None
        for i, c in enumerate(conns[1:], 1):
            c.get(3, f"/again/{i}")
            assert h2_answer(c, 3) is not None, i
        # And again after a second park.
        time.sleep(1.6)
        for i, c in enumerate(conns):
            c.get(5, f"/third/{i}")
            assert h2_answer(c, 5) is not None, i
    finally:
        for c in conns:
            c.s.close()


def test_a_parked_h2c_connection_gets_the_drains_goaways(dataplane):
    from test_http2_codec import RawH2

    import signal
    proxy = h2_proxy(dataplane, drain_seconds=2)
    c = RawH2(proxy.http_port)
    c.get(1, "/before")
    assert h2_answer(c, 1) is not None
    time.sleep(1.6)  # parked
    proxy.proc.send_signal(signal.SIGTERM)
    goaways = []
    while True:
        f = c.frame()  # acknowledges the drain's PING
        if f is None:
            break
        if f[0] == 7:
            goaways.append(int.from_bytes(f[3][:4], "big") & 0x7fffffff)
    assert goaways[:2] == [(1 << 31) - 1, 1], goaways
    assert proxy.proc.wait(timeout=15) == 0
