"""Gateway HTTPS listeners from the snapshot: client certificates and
misdirected requests (docs/snapshot-format.md, docs/http.md).

- A listener's `clientValidation` asks TLS clients for a certificate and
  verifies it against `caPem`: without a valid one the handshake fails, unless
  `insecureFallback` (then every client is served). A later snapshot changes
  it for new connections (Gateway API spec.tls.frontend).
- On a TLS listener with hostnames, a request whose host belongs to another
  Gateway listener of the socket than the connection's SNI does is answered
  421 Misdirected Request, over HTTP/1.1 and HTTP/2 alike (a client reusing a
  connection for another origin); a host no listener claims belongs to the
  hostless one.

Real proxy, real curl (OpenSSL) with client certificates.
"""

import socket
import ssl
import subprocess

from cryptography.hazmat.primitives import serialization

from conftest import (HTTP_TIMEOUT, CertAuthority, next_loopback, sn_cluster, sn_route, sn_rule,
                      sn_snapshot, wait_until)
from test_snapshot_listeners import free_port_on, listener, on

CA, CB, CC = "default/a:80", "default/b:80", "default/c:80"


def curl(addr, port, sni, path="/", host=None, cacert=None, cert=None, http2=False):
    """(curl exit code, HTTP status, body) of one request to https://sni:port
    resolved to addr, with `host` as Host / :authority."""
    argv = ["curl", "-sS", "--max-time", str(HTTP_TIMEOUT), "--resolve", f"{sni}:{port}:{addr}",
            "--cacert", str(cacert), "-o", "-", "-w", "\n%{http_code}",
            "--http2" if http2 else "--http1.1"]
    if host:
        argv += ["-H", f"Host: {host}"]
    if cert:
        argv += ["--cert", str(cert[0]), "--key", str(cert[1])]
    out = subprocess.run(argv + [f"https://{sni}:{port}{path}"], capture_output=True,
                         timeout=HTTP_TIMEOUT + 5)
    body, _, code = out.stdout.rpartition(b"\n")
    return out.returncode, int(code or 0), body


def client_cert(ca, workdir, name):
    cert_pem, key_pem = ca.issue(name, [f"{name}.clients.example.com"])
    cert, key = workdir / f"{name}.crt", workdir / f"{name}.key"
    cert.write_text(cert_pem)
    key.write_text(key_pem)
    return cert, key


def test_client_certificate_modes(dataplane):
    a = dataplane.echo("a")
    dirs = {}
    for d in ("server", "clients", "strangers"):
        dirs[d] = dataplane.workdir / d
        dirs[d].mkdir()
    server_ca = CertAuthority(dirs["server"])
    clients = CertAuthority(dirs["clients"], name="Client CA")
    strangers = CertAuthority(dirs["strangers"], name="Another CA")
    client_pem = clients.cert.public_bytes(serialization.Encoding.PEM).decode()
    good = client_cert(clients, dataplane.workdir, "good")
    stranger = client_cert(strangers, dataplane.workdir, "stranger")
    gw = next_loopback()
    strict, fallback, plain = (free_port_on([gw]) for _ in range(3))
    host = "mtls.example.com"
    server = server_ca.certificate("default/gw-tls", "cn-gw", [host])

    def snapshot(version, strict_validation):
        snap = sn_snapshot(version, [on(sn_route("r", [sn_rule(CA)]), (gw, strict), (gw, fallback),
                                        (gw, plain))],
                           [sn_cluster(CA, [(a.addr, a.port)])], certificates=[server])
        snap["listeners"] = [listener(gw, strict, tls=True), listener(gw, fallback, tls=True),
                             listener(gw, plain, tls=True)]
        if strict_validation:
            snap["listeners"][0]["clientValidation"] = {"caPem": client_pem}
        snap["listeners"][1]["clientValidation"] = {"caPem": client_pem, "insecureFallback": True}
        return snap

    proxy = dataplane.proxy(snapshot(1, True))
    cacert = server_ca.path
    for port, who, ok in [(strict, good, True), (strict, None, False), (strict, stranger, False),
                          (fallback, good, True), (fallback, None, True), (fallback, stranger, True),
                          (plain, None, True), (plain, good, True)]:
        for http2 in (False, True):
            rc, status, body = curl(gw, port, host, cacert=cacert, cert=who, http2=http2)
            what = (port, who and who[0].name, http2, rc, status)
            if ok:
                assert rc == 0 and status == 200 and b'"a"' in body, what
            else:
                assert rc != 0 and status == 0, what  # the handshake (or the first read) fails

    # A TLS session from a listener that does not validate never resumes on
    # one that does (each validating listener has its own session id context).
    ctx = ssl.create_default_context(cafile=str(cacert))
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3

    def get(port, session=None):
        with socket.create_connection((gw, port), timeout=HTTP_TIMEOUT) as raw:
            with ctx.wrap_socket(raw, server_hostname=host, session=session) as s:
                s.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
                return s.session, s.session_reused, data

    session, _, data = get(plain)
    assert data.startswith(b"HTTP/1.1 200")
    _, reused, data = get(plain, session)
    assert reused and data.startswith(b"HTTP/1.1 200")  # resumption works on its listener
    for port in (strict, fallback):
        try:
            _, reused, data = get(port, session)
        except (ssl.SSLError, OSError):
            reused, data = False, b""
        assert not reused, port
        assert data.startswith(b"HTTP/1.1 200") == (port == fallback), (port, data[:100])

    # A later snapshot turns validation off on the strict port: new connections
    # are served without a certificate (the listener stays bound).
    with proxy.control() as control:
        control.full(snapshot(2, False))
    wait_until(lambda: curl(gw, strict, host, cacert=cacert)[1] == 200, HTTP_TIMEOUT,
               "the strict port to serve clients without a certificate")


def test_misdirected_requests(dataplane):
    a, b, c = dataplane.echo("a"), dataplane.echo("b"), dataplane.echo("c")
    ca = CertAuthority(dataplane.workdir)
    gw = next_loopback()
    port = free_port_on([gw])
    clusters = [sn_cluster(CA, [(a.addr, a.port)]), sn_cluster(CB, [(b.addr, b.port)]),
                sn_cluster(CC, [(c.addr, c.port)])]
    # Gateway listeners on one socket: hostless (routes for example.org),
    # second.example.org, *.wild.example.org and fourth.wild.example.org.
    routes = [on(sn_route("hostless", [sn_rule(CA)], hostnames=["example.org"]), (gw, port)),
              on(sn_route("second", [sn_rule(CB)]), (gw, f"{port}/second.example.org")),
              on(sn_route("wild", [sn_rule(CC)]), (gw, f"{port}/*.wild.example.org")),
              on(sn_route("fourth", [sn_rule(CA)]), (gw, f"{port}/fourth.wild.example.org"))]
    names = ["example.org", "second.example.org", "*.wild.example.org", "unknown.example.org"]
    snap = sn_snapshot(1, routes, clusters, certificates=[ca.certificate("default/gw", "gw", names)])
    snap["listeners"] = [dict(listener(gw, port, tls=True),
                              hostnames=["*.wild.example.org", "fourth.wild.example.org",
                                         "second.example.org"])]
    dataplane.proxy(snap)
    cases = [("example.org", "example.org", 200, "a"),
             ("example.org", "second.example.org", 421, None),
             ("example.org", "unknown.example.org", 404, None),
             ("second.example.org", "second.example.org", 200, "b"),
             ("second.example.org", "example.org", 421, None),
             ("second.example.org", "unknown.example.org", 421, None),
             ("third.wild.example.org", "third.wild.example.org", 200, "c"),
             ("third.wild.example.org", "fifth.wild.example.org", 200, "c"),
             ("third.wild.example.org", "fourth.wild.example.org", 421, None),
             ("third.wild.example.org", "Second.Example.org:443", 421, None),
             ("fourth.wild.example.org", "fourth.wild.example.org", 200, "a"),
             ("fourth.wild.example.org", "fifth.wild.example.org", 421, None),
             ("unknown.example.org", "example.org", 200, "a"),
             ("unknown.example.org", "unknown.example.org", 404, None)]
    for sni, host, want, backend in cases:
        for http2 in (False, True):
            rc, status, body = curl(gw, port, sni, host=host, cacert=ca.path, http2=http2)
            what = (sni, host, http2, rc, status, body[:200])
            assert rc == 0 and status == want, what
            if backend:
                assert f'"{backend}"'.encode() in body, what
            if want == 421:
                assert b"misdirected request" in body, what
