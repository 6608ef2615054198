"""TLS passthrough (snapshot `passthrough`, docs/http.md): on the HTTPS
listener, a ClientHello whose SNI has a passthrough entry is relayed as raw
TCP to the entry's cluster, so the client completes its handshake with the
backend and sees the backend's certificate; any other SNI (or none) is
terminated by the proxy with its own certificate and routed as HTTP.

The backend is a real TLS server on loopback (Python's ssl module over
OpenSSL, in a thread of this process) with its own CA and certificate. The
clients are openssl s_client, curl and Python's ssl module; one client sends
its ClientHello split over two TLS records and two TCP segments apart in time.
"""

import re
import socket
import ssl
import subprocess
import threading
import time

import pytest

from conftest import (HTTP_TIMEOUT, CertAuthority, refusing_port, sn_cluster, sn_route, sn_rule,
                      sn_snapshot, temporary_dataplane, wait_until)

ECHO = "default/echo:8080"
DB = "default/db:443"
DOWN = "default/down:443"
GANTRY_HOST = "www.pt.example.com"
DB_HOST = "db.pt.example.com"
WILD_HOST = "x.wild.pt.example.com"
DOWN_HOST = "down.pt.example.com"


class TlsBackend:
    """A TLS server on loopback: each connection reads to EOF (the client's
    half-close) and answers `backend saw <bytes>`, then closes."""

    def __init__(self, ca, common_name, hostnames):
        cert_pem, key_pem = ca.issue(common_name, hostnames)
        d = ca.path.parent
        (d / f"{common_name}.crt").write_text(cert_pem)
        (d / f"{common_name}.key").write_text(key_pem)
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(d / f"{common_name}.crt", d / f"{common_name}.key")
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.sni_seen = []
        self.ctx.sni_callback = lambda s, name, ctx: self.sni_seen.append(name)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                raw, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(raw,), daemon=True).start()

    def _one(self, raw):
        raw.settimeout(HTTP_TIMEOUT * 2)
        try:
            with self.ctx.wrap_socket(raw, server_side=True) as s:
                got = b""
                while True:
                    b = s.recv(65536)
                    if not b:
                        break
                    got += b
                s.sendall(b"backend saw " + got)
        except (OSError, ssl.SSLError):
            pass

    def close(self):
        self.sock.close()


def snapshot(version, echo, backend, ca):
    cert = ca.certificate("default/gantry-tls", "cn-gantry", ["*.pt.example.com"])
    snap = sn_snapshot(version, [sn_route("web", [sn_rule(ECHO)])],
                       [sn_cluster(ECHO, [(echo.addr, echo.port)]),
                        sn_cluster(DB, [("127.0.0.1", backend.port)]),
                        sn_cluster(DOWN, [("127.0.0.1", refusing_port())])],
                       certificates=[cert])
    snap["passthrough"] = [
        {"hostname": DB_HOST, "cluster": DB, "owner": "default/db"},
        {"hostname": "*.wild.pt.example.com", "cluster": DB, "owner": "default/db"},
        {"hostname": DOWN_HOST, "cluster": DOWN, "owner": "default/down"},
    ]
    return snap


@pytest.fixture(scope="module")
def env():
    with temporary_dataplane() as dp:
        ca = CertAuthority(dp.workdir)
        backend = TlsBackend(ca, "cn-backend", [DB_HOST, "*.wild.pt.example.com"])
        echo = dp.echo("echo")
        proxy = dp.proxy(snapshot(1, echo, backend, ca), https=True,
                         extra_args=["--passthrough-idle-timeout", "1s"])
        yield proxy, ca, backend
        backend.close()


class BioClient:
    """A TLS client over a raw socket (Python's ssl.SSLObject on memory BIOs),
    so the test controls the bytes on the wire: the first flight may be
    rewritten (`first_flight`: bytes -> [chunks], sent 0.3 s apart), and the
    sending side half-closes at the TCP level (no close_notify)."""

    def __init__(self, port, ca, host, first_flight=None):
        self.raw = socket.create_connection(("127.0.0.1", port), timeout=HTTP_TIMEOUT)
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        ctx = ssl.create_default_context(cafile=str(ca.path))
        self.obj = ctx.wrap_bio(self.inc, self.out, server_hostname=host)
        first = True
        while True:
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                data = self.out.read()
                if first and first_flight:
                    for i, chunk in enumerate(first_flight(data)):
                        if i:
                            time.sleep(0.3)
                        self.raw.sendall(chunk)
                elif data:
                    self.raw.sendall(data)
                first = False
                got = self.raw.recv(65536)
                if not got:
                    raise ConnectionError("closed during the handshake")
                self.inc.write(got)
        self._flush()

    def _flush(self):
        data = self.out.read()
        if data:
            self.raw.sendall(data)

    def common_name(self):
        return dict(x[0] for x in self.obj.getpeercert()["subject"])["commonName"]

    def send(self, data):
        self.obj.write(data)
        self._flush()

    def half_close(self):
        self.raw.shutdown(socket.SHUT_WR)

    def read_to_eof(self):
        plain = b""
        while True:
            try:
                while True:
                    plain += self.obj.read(65536)
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLZeroReturnError:
                return plain
            got = self.raw.recv(65536)
            if not got:
                return plain
            self.inc.write(got)

    def close(self):
        self.raw.close()


def passthrough_exchange(port, ca, host, payload=b"hello through the tunnel", **kw):
    c = BioClient(port, ca, host, **kw)
    try:
        cn = c.common_name()
        c.send(payload)
        c.half_close()
        return cn, c.read_to_eof()
    finally:
        c.close()


def gantry_get(port, ca, host, sni=True):
    """An HTTPS GET terminated by the proxy: (certificate CN, status line)."""
    ctx = ssl.create_default_context(cafile=str(ca.path))
    if not sni:
        ctx.check_hostname = False
    raw = socket.create_connection(("127.0.0.1", port), timeout=HTTP_TIMEOUT)
    with ctx.wrap_socket(raw, server_hostname=host if sni else None) as s:
        cn = dict(x[0] for x in s.getpeercert()["subject"])["commonName"]
        s.sendall(f"GET /x HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            answer += b
    return cn, answer.split(b"\r\n", 1)[0].decode()


def metric(proxy, name, **labels):
    total = 0.0
    for line in proxy.metrics_text().splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_matching_sni_gets_the_backends_certificate(env):
    proxy, ca, backend = env
    cn, answer = passthrough_exchange(proxy.https_port, ca, DB_HOST)
    assert cn == "cn-backend"
    # The backend read the client's bytes to their end (the half-close went
    # through), and its answer came back on the half-closed connection.
    assert answer == b"backend saw hello through the tunnel"
    assert DB_HOST in backend.sni_seen


def test_wildcard_entry(env):
    proxy, ca, _ = env
    cn, answer = passthrough_exchange(proxy.https_port, ca, WILD_HOST, payload=b"w")
    assert (cn, answer) == ("cn-backend", b"backend saw w")


def test_other_sni_is_terminated_and_routed(env):
    proxy, ca, _ = env
    assert gantry_get(proxy.https_port, ca, GANTRY_HOST) == ("cn-gantry", "HTTP/1.1 200 OK")
    # A name below the wildcard entry's parent, but not under it.
    assert gantry_get(proxy.https_port, ca, "wild.pt.example.com") == ("cn-gantry", "HTTP/1.1 200 OK")


def test_no_sni_is_terminated(env):
    proxy, ca, _ = env
    assert gantry_get(proxy.https_port, ca, GANTRY_HOST, sni=False) == ("cn-gantry", "HTTP/1.1 200 OK")


def curl_https(port, host, ca):
    out = subprocess.run(["curl", "-sS", "--max-time", str(HTTP_TIMEOUT), "--resolve",
                          f"{host}:{port}:127.0.0.1", "--cacert", str(ca.path), "-o", "/dev/null",
                          "-w", "%{http_code} %{http_version}", f"https://{host}:{port}/"],
                         capture_output=True, timeout=HTTP_TIMEOUT + 5)
    assert out.returncode == 0, out.stderr.decode()
    return out.stdout.decode()


def test_curl_http2_to_gantry_after_hello_read(env):
    # The buffered handshake keeps ALPN: curl negotiates h2 with the proxy.
    proxy, ca, _ = env
    assert curl_https(proxy.https_port, GANTRY_HOST, ca) == "200 2"


def test_openssl_s_client_sees_each_certificate(env):
    proxy, ca, _ = env
    for host, cn in ((DB_HOST, "cn-backend"), (GANTRY_HOST, "cn-gantry")):
        out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{proxy.https_port}",
                              "-servername", host, "-CAfile", str(ca.path), "-verify_return_error"],
                             input=b"", capture_output=True, timeout=HTTP_TIMEOUT + 5)
        text = (out.stdout + out.stderr).decode(errors="replace")
        assert out.returncode == 0, text
        assert re.search(rf"^subject=.*CN\s*=\s*{cn}\b", text, re.M), text


def split_hello(data):
    """The ClientHello record re-framed as two handshake records, sent as two
    TCP segments 0.3 s apart (the first ends inside the second record)."""
    assert data[0] == 22
    msg = data[5:5 + int.from_bytes(data[3:5], "big")]
    rest = data[5 + len(msg):]
    k = len(msg) // 3
    recs = b"".join(b"\x16\x03\x01" + len(p).to_bytes(2, "big") + p for p in (msg[:k], msg[k:]))
    cut = 5 + k + 20
    return [recs[:cut], recs[cut:] + rest]


def test_client_hello_split_over_records_and_segments(env):
    proxy, ca, _ = env
    cn, answer = passthrough_exchange(proxy.https_port, ca, DB_HOST, payload=b"split", first_flight=split_hello)
    assert (cn, answer) == ("cn-backend", b"backend saw split")
    # The same split hello for a name without an entry: the proxy's handshake
    # starts from the bytes it read.
    c = BioClient(proxy.https_port, ca, GANTRY_HOST, first_flight=split_hello)
    try:
        assert c.common_name() == "cn-gantry"
        c.send(f"GET / HTTP/1.1\r\nHost: {GANTRY_HOST}\r\nConnection: close\r\n\r\n".encode())
        assert c.read_to_eof().startswith(b"HTTP/1.1 200 OK")
    finally:
        c.close()


def test_large_transfer_both_ways(env):
    proxy, ca, _ = env
    payload = bytes(range(256)) * 4096  # 1 MiB: many 16 KiB relay chunks, backpressure both ways
    cn, answer = passthrough_exchange(proxy.https_port, ca, DB_HOST, payload=payload)
    assert cn == "cn-backend"
    assert answer == b"backend saw " + payload


def test_metrics_count_connections_and_bytes(env):
    proxy, ca, _ = env
    before = metric(proxy, "gantry_passthrough_connections_total", cluster=DB, result="relayed")
    up_before = metric(proxy, "gantry_passthrough_bytes_total", direction="to_upstream")
    passthrough_exchange(proxy.https_port, ca, DB_HOST, payload=b"m" * 1000)
    wait_until(lambda: metric(proxy, "gantry_passthrough_connections_total", cluster=DB,
                              result="relayed") == before + 1, HTTP_TIMEOUT, "the relayed count")
    # The ClientHello, the handshake's client records and the 1000 bytes (plus TLS framing).
    wait_until(lambda: metric(proxy, "gantry_passthrough_bytes_total", direction="to_upstream") >= up_before + 1300,
               HTTP_TIMEOUT, "the bytes to the upstream")
    wait_until(lambda: metric(proxy, "gantry_passthrough_closed_total", reason="closed") >= 1, HTTP_TIMEOUT,
               "a closed relay")


def test_backend_down_closes_the_connection(env):
    proxy, ca, _ = env
    before = metric(proxy, "gantry_passthrough_connections_total", cluster=DOWN, result="connect_failed")
    with pytest.raises((ConnectionError, OSError, ssl.SSLError)):
        BioClient(proxy.https_port, ca, DOWN_HOST)
    assert metric(proxy, "gantry_passthrough_connections_total", cluster=DOWN,
                  result="connect_failed") == before + 1


def test_idle_relay_is_closed(env):
    proxy, ca, _ = env
    before = metric(proxy, "gantry_passthrough_closed_total", reason="idle_timeout")
    c = BioClient(proxy.https_port, ca, DB_HOST)
    try:
        start = time.monotonic()
        c.raw.settimeout(10)
        while c.raw.recv(4096):  # the backend's session tickets (TLS 1.3), then nothing
            pass
        # The proxy closed it: --passthrough-idle-timeout 1s (the backend waits 10 s for EOF).
        assert 0.9 < time.monotonic() - start < 5
    finally:
        c.close()
    wait_until(lambda: metric(proxy, "gantry_passthrough_closed_total", reason="idle_timeout") == before + 1,
               HTTP_TIMEOUT, "the idle_timeout count")


def test_not_tls_on_the_https_port_is_closed(env):
    proxy, _, _ = env
    s = socket.create_connection(("127.0.0.1", proxy.https_port), timeout=HTTP_TIMEOUT)
    try:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        data = s.recv(4096)  # OpenSSL's answer (an alert) or nothing, then EOF
        while data:
            data = s.recv(4096)
    finally:
        s.close()
