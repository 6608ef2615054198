"""The HTTPS listener: SNI certificate selection, protocol versions, ALPN,
X-Forwarded-Proto, and certificate rotation by snapshot without breaking
established connections.

Certificates are issued at test time by a throwaway CA (conftest.CertAuthority):
two exact hostnames and one wildcard. Real clients check what is served: curl
(--resolve, --cacert), openssl s_client, and Python's ssl module for a
keep-alive connection held across a snapshot swap.
"""

import json
import re
import socket
import ssl
import subprocess

import pytest

from conftest import (HTTP_TIMEOUT, CertAuthority, parse_responses, sn_cluster, sn_route, sn_rule,
                      sn_snapshot, temporary_dataplane)

CLUSTER = "default/echo:8080"
A, B, WILD = "a.tls.example.com", "b.tls.example.com", "*.wild.tls.example.com"


def certificates(ca):
    # Names sort as a-tls < b-tls < wild-tls: a-tls is the default certificate.
    return [ca.certificate("default/b-tls", "cn-b", [B]),
            ca.certificate("default/wild-tls", "cn-wild", [WILD]),
            ca.certificate("default/a-tls", "cn-a", [A])]


def tls_snapshot(version, echo, certs):
    return sn_snapshot(version, [sn_route("tls", [sn_rule(CLUSTER)])],
                       [sn_cluster(CLUSTER, [(echo.addr, echo.port)])], certificates=certs)


@pytest.fixture(scope="module")
def tls_proxy():
    with temporary_dataplane() as dp:
        ca = CertAuthority(dp.workdir)
        echo = dp.echo("echo")
        proxy = dp.proxy(tls_snapshot(1, echo, certificates(ca)), https=True)
        proxy.ca = ca
        yield proxy


def s_client(port, *args):
    """Runs openssl s_client against the proxy; returns (returncode, output)."""
    out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", *args],
                         input=b"", capture_output=True, timeout=HTTP_TIMEOUT + 5)
    return out.returncode, (out.stdout + out.stderr).decode(errors="replace")


def served_subject(port, servername=None, extra=()):
    """The CN of the leaf certificate the proxy serves for `servername` (None: no SNI)."""
    sni = ["-servername", servername] if servername else ["-noservername"]
    rc, text = s_client(port, *sni, "-showcerts", *extra)
    assert rc == 0, text
    m = re.search(r"^subject=.*?CN\s*=\s*([^,\n/]+)", text, re.M)
    assert m, text
    return m.group(1).strip()


def curl_https(port, host, path="/", ca=None, extra=()):
    argv = ["curl", "-sS", "--max-time", str(HTTP_TIMEOUT), "--resolve", f"{host}:{port}:127.0.0.1",
            "--cacert", str(ca), "-o", "-", "-w", "\n%{http_code}", *extra,
            f"https://{host}:{port}{path}"]
    out = subprocess.run(argv, capture_output=True, timeout=HTTP_TIMEOUT + 5)
    assert out.returncode == 0, out.stderr.decode()
    body, _, code = out.stdout.rpartition(b"\n")
    return int(code), body


@pytest.mark.parametrize("servername,subject", [
    (A, "cn-a"), (B, "cn-b"), ("x.wild.tls.example.com", "cn-wild"),
    ("deep.x.wild.tls.example.com", "cn-wild"), ("B.TLS.Example.COM", "cn-b"),
    (None, "cn-a"), ("unknown.example.org", "cn-a")])
def test_certificate_per_sni(tls_proxy, servername, subject):
    assert served_subject(tls_proxy.https_port, servername) == subject


@pytest.mark.parametrize("host", [A, B, "x.wild.tls.example.com"])
def test_curl_verifies_and_reaches_backend(tls_proxy, host):
    code, body = curl_https(tls_proxy.https_port, host, "/secure", ca=tls_proxy.ca.path)
    assert code == 200, body
    seen = json.loads(body)
    assert seen["name"] == "echo"
    assert seen["path"] == "/secure"
    assert seen["headers"]["x-forwarded-proto"] == "https"
    assert seen["headers"]["host"] == f"{host}:{tls_proxy.https_port}"


@pytest.mark.parametrize("flag,version", [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")])
def test_tls_versions_accepted(tls_proxy, flag, version):
    rc, text = s_client(tls_proxy.https_port, "-servername", A, flag, "-verify_return_error",
                        "-CAfile", str(tls_proxy.ca.path))
    assert rc == 0, text
    assert re.search(rf"Protocol\s*:\s*{re.escape(version)}", text) or f"New, {version}" in text, text


@pytest.mark.parametrize("tls_version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_tls_versions_with_python(tls_proxy, tls_version):
    ctx = ssl.create_default_context(cafile=str(tls_proxy.ca.path))
    ctx.minimum_version = ctx.maximum_version = tls_version
    with socket.create_connection(("127.0.0.1", tls_proxy.https_port), timeout=HTTP_TIMEOUT) as raw:
        with ctx.wrap_socket(raw, server_hostname=B) as s:
            assert s.version() == tls_version.name.replace("v1_", "v1.")
            s.sendall(f"GET /v HTTP/1.1\r\nHost: {B}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
    responses, _ = parse_responses(data)
    assert [r.status for r in responses] == [200]


@pytest.mark.parametrize("flag", ["-tls1_1", "-tls1"])
def test_old_tls_refused(tls_proxy, flag):
    # SECLEVEL=0 lets this client offer the old protocol; the server must refuse.
    rc, text = s_client(tls_proxy.https_port, "-servername", A, flag, "-cipher", "DEFAULT@SECLEVEL=0")
    assert rc != 0, text
    assert "no protocols available" not in text, "the client, not the server, refused: " + text
    assert "alert protocol version" in text, text  # the server's protocol_version alert
    assert "Cipher is (NONE)" in text, text


@pytest.mark.parametrize("servername", [A, B, "x.wild.tls.example.com", None])
@pytest.mark.parametrize("offer,chosen", [("http/1.1", "http/1.1"), ("h2,http/1.1", "h2"),
                                          ("http/1.1,h2", "h2"), ("h2", "h2")])
def test_alpn_negotiated(tls_proxy, servername, offer, chosen):
    # --http2 is on by default: the proxy prefers h2, whatever the client's order.
    sni = ["-servername", servername] if servername else ["-noservername"]
    rc, text = s_client(tls_proxy.https_port, *sni, "-alpn", offer)
    assert rc == 0, text
    assert f"ALPN protocol: {chosen}\n" in text, text


def test_alpn_unknown_protocol_gets_no_alpn(tls_proxy):
    rc, text = s_client(tls_proxy.https_port, "-servername", A, "-alpn", "spdy/3")
    assert rc == 0, text
    assert "No ALPN negotiated" in text, text


class KeepAliveTls:
    """One TLS connection (Python ssl) that sends requests one after another."""

    def __init__(self, port, servername, cafile):
        ctx = ssl.create_default_context(cafile=str(cafile))
        raw = socket.create_connection(("127.0.0.1", port), timeout=HTTP_TIMEOUT)
        self.sock = ctx.wrap_socket(raw, server_hostname=servername)
        self.host = servername
        self.buf = b""

    def subject(self):
        cert = self.sock.getpeercert()
        return dict(x[0] for x in cert["subject"])["commonName"]

    def get(self, path):
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode())
        while True:
            responses, rest = parse_responses(self.buf)
            if responses:
                assert len(responses) == 1
                self.buf = rest
                return responses[0]
            chunk = self.sock.recv(65536)
            assert chunk, "the proxy closed the keep-alive TLS connection"
            self.buf += chunk

    def close(self):
        self.sock.close()


def test_certificate_rotation_keeps_established_connections(dataplane):
    ca = CertAuthority(dataplane.workdir)
    echo = dataplane.echo("echo")
    certs = certificates(ca)
    proxy = dataplane.proxy(tls_snapshot(1, echo, certs), https=True)
    port = proxy.https_port

    old = KeepAliveTls(port, A, ca.path)
    assert old.subject() == "cn-a"
    assert old.get("/before").status == 200

    rotated = [c for c in certs if c["name"] != "default/a-tls"]
    rotated.append(ca.certificate("default/a-tls", "cn-a-rotated", [A]))
    with proxy.control() as control:
        assert control.full(tls_snapshot(2, echo, rotated))["version"] == 2

    # New handshakes get the new certificate; the others are unchanged.
    assert served_subject(port, A) == "cn-a-rotated"
    assert served_subject(port, B) == "cn-b"
    code, _ = curl_https(port, A, "/after", ca=ca.path)
    assert code == 200
    # The connection opened before the swap keeps working on its old session.
    for i in range(3):
        r = old.get(f"/after/{i}")
        assert r.status == 200, r
        assert json.loads(r.body)["path"] == f"/after/{i}"
    assert old.subject() == "cn-a"
    old.close()

    # A hostname moved to another secret follows it.
    moved = [c for c in rotated if c["name"] != "default/b-tls"]
    moved.append(ca.certificate("default/c-tls", "cn-c", [B]))
    with proxy.control() as control:
        control.full(tls_snapshot(3, echo, moved))
    assert served_subject(port, B) == "cn-c"
