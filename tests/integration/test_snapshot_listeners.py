"""Listeners from the snapshot (Gateway API: each Gateway's address and ports).

The proxy binds the snapshot's listeners besides its own --http-listen /
--https-listen, on every worker, when a snapshot is applied, and closes those a
later snapshot drops; a connection accepted on a listener that stays is not
touched by the swap. A route that lists listeners is served only on them; a
route that lists none only on the proxy's own listeners. Two listeners on the
same port of two addresses serve different routes (two Gateways, isolated).
A listener that cannot be bound is logged and counted; the snapshot still
applies and every other listener serves.
"""

import http.client
import socket
import subprocess

from conftest import (HTTP_TIMEOUT, CertAuthority, free_port, http_request, next_loopback, refusing_port,
                      sn_cluster, sn_route, sn_rule, sn_snapshot, wait_until)

CA, CB = "default/a:80", "default/b:80"


def listener(addr, port, tls=False):
    out = {"name": f"{addr}:{port}", "address": addr, "port": port}
    if tls:
        out["tls"] = True
    return out


def on(route, *listeners):
    route["listeners"] = [f"{a}:{p}" for a, p in listeners]
    return route


def refused(addr, port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(2)
        return s.connect_ex((addr, port)) != 0


def free_port_on(addrs):
    """A port free on every address of `addrs` (conftest.free_port's, checked on the others)."""
    while True:
        port = free_port(addrs[0])
        try:
            for a in addrs[1:]:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                    s.bind((a, port))
            return port
        except OSError:
            continue


def test_listeners_follow_the_snapshot(dataplane):
    a, b = dataplane.echo("a"), dataplane.echo("b")
    gw1, gw2 = next_loopback(), next_loopback()
    port = free_port_on([gw1, gw2])
    clusters = [sn_cluster(CA, [(a.addr, a.port)]), sn_cluster(CB, [(b.addr, b.port)])]
    routes = [on(sn_route("on-gw1", [sn_rule(CA)]), (gw1, port)),
              on(sn_route("on-gw2", [sn_rule(CB)]), (gw2, port)),
              on(sn_route("shared", [sn_rule(CB, prefix="/shared")]), (gw1, port), (gw2, port)),
              sn_route("own", [sn_rule(CA, prefix="/own")])]
    snap = sn_snapshot(1, routes, clusters)
    snap["listeners"] = [listener(gw1, port), listener(gw2, port)]
    proxy = dataplane.proxy(snap)

    # Same port, two addresses: each serves its own routes, and the shared one.
    assert http_request(port, "/", addr=gw1).backend == "a"
    assert http_request(port, "/", addr=gw2).backend == "b"
    assert http_request(port, "/shared/x", addr=gw1).backend == "b"
    assert http_request(port, "/own", addr=gw1).status == 200  # on-gw1 catches it ...
    assert http_request(port, "/own", addr=gw1).backend == "a"
    assert http_request(port, "/own", addr=gw2).backend == "b"  # ... and on-gw2 here
    # The proxy's own listener serves only the route that lists no listener.
    assert http_request(proxy.http_port, "/own").backend == "a"
    assert http_request(proxy.http_port, "/").status == 404
    assert http_request(proxy.http_port, "/shared").status == 404

    # A keep-alive connection on gw1 stays up across swaps that keep gw1.
    kept = http.client.HTTPConnection(gw1, port, timeout=HTTP_TIMEOUT)
    kept.request("GET", "/")
    resp = kept.getresponse()
    assert resp.status == 200 and b'"a"' in resp.read()

    # v2: gw2 leaves, gw1 gains a second port; a port held by someone else
    # cannot be bound: logged and counted, the rest applies.
    port2 = free_port_on([gw1])
    busy = refusing_port(gw1)
    snap = sn_snapshot(2, [on(sn_route("on-gw1", [sn_rule(CA)]), (gw1, port), (gw1, port2)),
                           on(sn_route("busy", [sn_rule(CB)]), (gw1, busy)),
                           sn_route("own", [sn_rule(CA, prefix="/own")])], clusters)
    snap["listeners"] = [listener(gw1, port), listener(gw1, port2), listener(gw1, busy)]
    with proxy.control() as control:
        control.full(snap)
    wait_until(lambda: refused(gw2, port), HTTP_TIMEOUT, f"{gw2}:{port} to close")
    wait_until(lambda: not refused(gw1, port2), HTTP_TIMEOUT, f"{gw1}:{port2} to open")
    assert http_request(port2, "/", addr=gw1).backend == "a"
    kept.request("GET", "/")
    resp = kept.getresponse()
    assert resp.status == 200 and b'"a"' in resp.read()
    kept.close()
    assert "gantry_listener_bind_errors_total 1" in proxy.metrics_text()
    assert f"snapshot listener not served: cannot listen on {gw1}:{busy}" in proxy.log.read_text()
    assert http_request(proxy.http_port, "/own").backend == "a"


def test_tls_listener_from_the_snapshot(dataplane):
    a = dataplane.echo("a")
    ca = CertAuthority(dataplane.workdir)
    gw = next_loopback()
    port = free_port_on([gw])
    host = "gw.tls.example.com"
    snap = sn_snapshot(1, [on(sn_route("r", [sn_rule(CA)], hostnames=[host]), (gw, port))],
                       [sn_cluster(CA, [(a.addr, a.port)])],
                       certificates=[ca.certificate("default/gw-tls", "cn-gw", [host])])
    snap["listeners"] = [listener(gw, port, tls=True)]
    proxy = dataplane.proxy(snap)
    out = subprocess.run(["curl", "-sS", "--max-time", str(HTTP_TIMEOUT), "--resolve",
                          f"{host}:{port}:{gw}", "--cacert", str(ca.path), "-o", "-",
                          "-w", "\n%{http_code}", f"https://{host}:{port}/x"],
                         capture_output=True, timeout=HTTP_TIMEOUT + 5)
    assert out.returncode == 0, out.stderr.decode()
    body, _, code = out.stdout.rpartition(b"\n")
    assert int(code) == 200 and b'"a"' in body
    # The proxy's own listeners do not serve a route that lists listeners.
    assert http_request(proxy.http_port, "/x", host=host).status == 404


def test_listener_hostnames_isolate_routes(dataplane):
    """One socket, Gateway listeners with hostnames: a request belongs to the
    most specific listener its host matches, and only that one's routes serve
    it (GatewayHTTPListenerIsolation)."""
    a, b = dataplane.echo("a"), dataplane.echo("b")
    gw = next_loopback()
    port = free_port_on([gw])
    name = f"{gw}:{port}"
    clusters = [sn_cluster(CA, [(a.addr, a.port)]), sn_cluster(CB, [(b.addr, b.port)])]
    routes = [on(sn_route("hostless", [sn_rule(CA, prefix="/hostless")]), (gw, port)),
              on(sn_route("wild", [sn_rule(CB, prefix="/wild")], hostnames=["*.example.com"]),
                 (gw, f"{port}/*.example.com")),
              on(sn_route("foo", [sn_rule(CA, prefix="/foo")], hostnames=["foo.example.com"]),
                 (gw, f"{port}/foo.example.com"))]
    snap = sn_snapshot(1, routes, clusters)
    snap["listeners"] = [dict(listener(gw, port), hostnames=["*.example.com", "foo.example.com"])]
    dataplane.proxy(snap)
    cases = [("bar.com", "/hostless", "a"), ("bar.com", "/wild", None),
             ("x.example.com", "/wild", "b"), ("x.example.com", "/hostless", None),
             ("a.b.example.com", "/wild", "b"),
             ("foo.example.com", "/foo", "a"), ("foo.example.com", "/wild", None),
             ("foo.example.com", "/hostless", None)]
    for host, path, want in cases:
        r = http_request(port, path, host=host, addr=gw)
        if want is None:
            assert r.status == 404, (name, host, path, r)
        else:
            assert r.status == 200 and r.backend == want, (name, host, path, r)


def test_dropped_listener_closes_its_connections_and_public_port(dataplane):
    """A listener a snapshot drops closes its connections at their next request
    boundary: an idle keep-alive one at once, a busy one after its answer
    (Connection: close). A listener's publicPort (the Service port in service
    mode) is the port a redirect keeps."""
    a = dataplane.echo("a")
    gw = next_loopback()
    port, port2 = free_port_on([gw]), free_port_on([gw])
    clusters = [sn_cluster(CA, [(a.addr, a.port)])]
    routes = [on(sn_route("r", [sn_rule(CA),
                                sn_rule(CA, prefix="/old", filters={"requestRedirect": {
                                    "statusCode": 302, "hostname": "moved.example.com"}})]),
                 (gw, port), (gw, port2))]
    snap = sn_snapshot(1, routes, clusters)
    snap["listeners"] = [dict(listener(gw, port), publicPort=80), listener(gw, port2)]
    proxy = dataplane.proxy(snap)

    # The redirect keeps the public port (80: left out of Location), not the bound one.
    r = http_request(port, "/old", addr=gw, host="x.example.com")
    assert r.status == 302 and r.headers["location"] == "http://moved.example.com/old", r.headers
    r = http_request(port2, "/old", addr=gw, host="x.example.com")
    assert r.headers["location"] == f"http://moved.example.com:{port2}/old", r.headers

    idle = http.client.HTTPConnection(gw, port, timeout=HTTP_TIMEOUT)
    idle.request("GET", "/")
    resp = idle.getresponse()
    assert resp.status == 200 and resp.getheader("connection") != "close"
    resp.read()
    # v2 drops the listener on `port`.
    snap = sn_snapshot(2, [on(sn_route("r", [sn_rule(CA)]), (gw, port2))], clusters)
    snap["listeners"] = [listener(gw, port2)]
    with proxy.control() as control:
        control.full(snap)
    wait_until(lambda: refused(gw, port), HTTP_TIMEOUT, f"{gw}:{port} to close")

    def closed_by_proxy():
        try:
            idle.sock.settimeout(0.2)
            return idle.sock.recv(1) == b""
        except socket.timeout:
            return False
    wait_until(closed_by_proxy, HTTP_TIMEOUT, "the idle connection of the dropped listener to be closed")
    idle.close()
    assert http_request(port2, "/", addr=gw).backend == "a"  # the listener that stays serves on
