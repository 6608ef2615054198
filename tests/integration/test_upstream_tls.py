"""TLS from the proxy to backends (a cluster with "tls" in the snapshot;
proxy/tls/upstream_tls.h): chain and name verification, mTLS, pooled
keep-alive TLS connections, session resumption, HTTP/2 over TLS (protocol
"H2"), the 502 a failed handshake gets, and the NACK a bad PEM gets.

The backends are real TLS servers on loopback: an HTTP/1.1 server on
Python's ssl module (in this process, so the test can count its handshakes
and read the SNI and client certificate it saw) and gantry-h2-echo's TLS
listener (ALPN h2). Certificates come from throwaway CAs made by the test
(conftest.CertAuthority).
"""

import http.server
import json
import ssl
import subprocess
import threading

import pytest

from conftest import (FRAME_NACK, FRAME_FULL, START_TIMEOUT, CertAuthority, binary, free_port, get_json,
                      http_request, sn_cluster, sn_route, sn_rule, sn_snapshot, temporary_dataplane,
                      wait_until)
from test_http2_codec import listening

BACKEND_NAME = "backend.tls.test"
SPIFFE = "spiffe://cluster.local/ns/default/sa/backend"


class TlsBackend:
    """An HTTPS/1.1 keep-alive server on 127.0.0.1 that records each handshake:
    the SNI, whether the session was resumed, the client certificate's CN.
    A path with /close is answered with Connection: close (each request a new handshake)."""

    def __init__(self, ca, require_client_cert_from=None, common_name="backend",
                 hostnames=(BACKEND_NAME,)):
        cert_pem, key_pem = ca.issue(common_name, list(hostnames), uris=[SPIFFE])
        d = ca.path.parent
        tag = f"backend{id(self)}"
        (d / f"{tag}.pem").write_text(cert_pem)
        (d / f"{tag}.key").write_text(key_pem)
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(d / f"{tag}.pem", d / f"{tag}.key")
        if require_client_cert_from is not None:
            self.ctx.verify_mode = ssl.CERT_REQUIRED
            self.ctx.load_verify_locations(cafile=str(require_client_cert_from.path))
        self.lock = threading.Lock()
        self.handshakes = []  # (sni, resumed, client CN)
        self.snis = []
        self.ctx.sni_callback = lambda sock, name, ctx: self._sni(name)
        backend = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                self.request.do_handshake()
                peer = self.request.getpeercert()
                cn = None
                if peer:
                    for rdn in peer.get("subject", ()):
                        for k, v in rdn:
                            if k == "commonName":
                                cn = v
                with backend.lock:
                    sni = backend.snis[-1] if backend.snis else None
                    backend.snis.clear()
                    backend.handshakes.append((sni, self.request.session_reused, cn))
                super().setup()

            def do_GET(self):
                with backend.lock:
                    last = backend.handshakes[-1]
                body = json.dumps({"path": self.path, "sni": last[0], "client": last[2]}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                if "/close" in self.path:
                    self.send_header("connection", "close")
                    self.close_connection = True
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def get_request(self):
                sock, addr = self.socket.accept()
                # The handshake runs on the handler's thread (setup), not on the accept loop.
                return backend.ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

            def handle_error(self, request, client_address):
                pass  # a rejected handshake (no client certificate) is expected in some tests

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _sni(self, name):
        with self.lock:
            self.snis.append(name)

    def count(self):
        with self.lock:
            return len(self.handshakes)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def tls_cluster(name, port, **tls):
    c = sn_cluster(name, [("127.0.0.1", port)])
    c["tls"] = tls
    return c


@pytest.fixture(scope="module")
def setup():
    with temporary_dataplane() as dp:
        ca = CertAuthority(dp.workdir)
        (dp.workdir / "other").mkdir()
        other = CertAuthority(dp.workdir / "other", name="Another CA")
        client_ca_dir = dp.workdir / "clients"
        client_ca_dir.mkdir()
        client_ca = CertAuthority(client_ca_dir, name="Client CA")
        plain = TlsBackend(ca)
        mtls = TlsBackend(ca, require_client_cert_from=client_ca)
        # Its name only in the subject's CN (SANs: the SPIFFE URI alone).
        cn_only = TlsBackend(ca, common_name=BACKEND_NAME, hostnames=())
        client_cert, client_key = client_ca.issue("gantry-proxy", ["gantry-proxy.test"])
        ca_pem = ca.path.read_text()

        # gantry-h2-echo over TLS (ALPN h2), certificate from the same CA.
        h2_cert, h2_key = ca.issue("h2", [BACKEND_NAME])
        (dp.workdir / "h2.pem").write_text(h2_cert)
        (dp.workdir / "h2.key").write_text(h2_key)
        h2_port, h2c_port = free_port(), free_port()
        dp.manager.spawn([binary("gantry-h2-echo"), f"--listen=127.0.0.1:{h2c_port}",
                          f"--tls-listen=127.0.0.1:{h2_port}", f"--cert={dp.workdir / 'h2.pem'}",
                          f"--key={dp.workdir / 'h2.key'}"], dp.workdir / "h2-echo.log")
        wait_until(lambda: listening(h2_port), START_TIMEOUT, "gantry-h2-echo to listen on TLS")

        clusters = [
            tls_cluster("default/ok:443", plain.port, serverName=BACKEND_NAME, caPem=ca_pem),
            tls_cluster("default/wrongca:443", plain.port, serverName=BACKEND_NAME,
                        caPem=other.path.read_text()),
            tls_cluster("default/wrongname:443", plain.port, serverName="other.tls.test", caPem=ca_pem),
            tls_cluster("default/san:443", plain.port, serverName="not-in-cert.test", caPem=ca_pem,
                        subjectAltNames=["spiffe://elsewhere/x", SPIFFE]),
            tls_cluster("default/badsan:443", plain.port, serverName=BACKEND_NAME, caPem=ca_pem,
                        subjectAltNames=["spiffe://elsewhere/x"]),
            # DNS subjectAltNames (Gateway API BackendTLSPolicy type Hostname): any one
            # must be a DNS SAN of the certificate; the server name is then only the SNI.
            tls_cluster("default/dnssan:443", plain.port, serverName="not-in-cert.test", caPem=ca_pem,
                        subjectAltNames=["elsewhere.test", BACKEND_NAME]),
            tls_cluster("default/baddnssan:443", plain.port, serverName=BACKEND_NAME, caPem=ca_pem,
                        subjectAltNames=["elsewhere.test"]),
            tls_cluster("default/mixedsan:443", plain.port, serverName="not-in-cert.test", caPem=ca_pem,
                        subjectAltNames=["spiffe://elsewhere/x", BACKEND_NAME]),
            tls_cluster("default/mixedbadsan:443", plain.port, serverName=BACKEND_NAME, caPem=ca_pem,
                        subjectAltNames=["spiffe://elsewhere/x", "elsewhere.test"]),
            tls_cluster("default/cnname:443", cn_only.port, serverName=BACKEND_NAME, caPem=ca_pem),
            tls_cluster("default/cnsan:443", cn_only.port, serverName=BACKEND_NAME, caPem=ca_pem,
                        subjectAltNames=[BACKEND_NAME]),
            tls_cluster("default/noverify:443", plain.port, verify=False),
            tls_cluster("default/mtls:443", mtls.port, serverName=BACKEND_NAME, caPem=ca_pem,
                        clientCertPem=client_cert, clientKeyPem=client_key),
            tls_cluster("default/mtls-nocert:443", mtls.port, serverName=BACKEND_NAME, caPem=ca_pem),
            tls_cluster("default/reuse:443", plain.port, serverName=BACKEND_NAME, caPem=ca_pem),
            tls_cluster("default/resume:443", plain.port, serverName=BACKEND_NAME, caPem=ca_pem),
            tls_cluster("default/h2:443", h2_port, serverName=BACKEND_NAME, caPem=ca_pem),
            tls_cluster("default/h2-wrongca:443", h2_port, serverName=BACKEND_NAME,
                        caPem=other.path.read_text()),
        ]
        clusters[-2]["protocol"] = "H2"
        clusters[-1]["protocol"] = "H2"
        rules = [sn_rule(c["name"], prefix="/" + c["name"].split("/")[1].split(":")[0] + "/")
                 for c in clusters]
        # Active health checks over TLS, against a backend of their own (the
        # handshake counts of the others stay the tests').
        checked = TlsBackend(ca)
        check = {"path": "/healthz", "intervalMs": 150, "timeoutMs": 1000, "unhealthyThreshold": 1}
        clusters += [tls_cluster("default/hc:443", checked.port, serverName=BACKEND_NAME, caPem=ca_pem),
                     tls_cluster("default/hc-wrongca:443", checked.port, serverName=BACKEND_NAME,
                                 caPem=other.path.read_text())]
        rules += [sn_rule("default/hc:443", prefix="/hc/", policy={"healthCheck": check}),
                  sn_rule("default/hc-wrongca:443", prefix="/hc-wrongca/", policy={"healthCheck": check})]
        snap = sn_snapshot(1, [sn_route("tls", rules)], clusters)
        proxy = dp.proxy(snap, workers=1, extra_args=["--http2", "on"])
        proxy.workdir = dp.workdir
        proxy.snap = snap
        proxy.checked = checked
        yield proxy, plain, mtls
        checked.close()
        plain.close()
        mtls.close()
        cn_only.close()


def metric(proxy, series):
    """The value of one series on /metrics (0 when absent)."""
    for line in proxy.metrics_text().splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0


def get(proxy, path, **kw):
    return http_request(proxy.http_port, path, **kw)


def test_health_checks_speak_tls_to_tls_backends(setup):
    proxy, _, _ = setup

    def health():
        doc = get_json(proxy.admin_port, "/upstreams")
        return {c["name"]: [e["health"] for e in c["endpoints"]] for c in doc["clusters"]
                if c["name"].startswith("default/hc")}

    def probed():
        with proxy.checked.lock:
            return len(proxy.checked.handshakes) >= 3  # completed handshakes: the verified cluster's probes

    # Verified, with the cluster's SNI: healthy (endpoints start healthy, so
    # it is read after several probes went through). The wrong trust anchor:
    # the handshake fails, so the same endpoint is unhealthy in that cluster.
    wait_until(probed, START_TIMEOUT, "health checks over TLS to reach the backend")
    wait_until(lambda: health() == {"default/hc:443": ["healthy"], "default/hc-wrongca:443": ["unhealthy"]},
               START_TIMEOUT, "the TLS health checks to settle")
    with proxy.checked.lock:
        assert {h[0] for h in proxy.checked.handshakes} == {BACKEND_NAME}


def test_verified_backend_gets_sni(setup):
    proxy, plain, _ = setup
    r = get(proxy, "/ok/x")
    assert r.status == 200, r
    body = json.loads(r.body)
    assert body["path"] == "/ok/x"
    assert body["sni"] == BACKEND_NAME


@pytest.mark.parametrize("path,why", [
    ("/wrongca/", "certificate verify failed: unable to get local issuer certificate"),
    ("/wrongname/", "certificate verify failed: hostname mismatch"),
    ("/badsan/", "names none of the subjectAltNames"),
    ("/baddnssan/", "certificate verify failed: hostname mismatch"),
    ("/mixedbadsan/", "names none of the subjectAltNames"),
    ("/cnsan/", "certificate verify failed: hostname mismatch"),
])
def test_verification_failure_is_a_502_with_the_reason(setup, path, why):
    proxy, _, _ = setup
    r = get(proxy, path)
    assert r.status == 502, r
    assert r.headers.get("x-gateway-reason") == "upstream-tls", r.headers
    assert why in r.body.decode(), r.body
    cluster = "default/" + path.strip("/") + ":443"
    series = f'gantry_upstream_errors_total{{cluster="{cluster}",kind="tls"}}'
    assert metric(proxy, series) >= 1


def test_subject_alt_names_replace_the_server_name(setup):
    proxy, _, _ = setup
    r = get(proxy, "/san/")
    assert r.status == 200, r
    assert json.loads(r.body)["sni"] == "not-in-cert.test"  # SNI still sent; the URI SAN matched


@pytest.mark.parametrize("path", ["/dnssan/", "/mixedsan/"])
def test_dns_subject_alt_names_replace_the_server_name(setup, path):
    proxy, _, _ = setup
    r = get(proxy, path)
    assert r.status == 200, r
    assert json.loads(r.body)["sni"] == "not-in-cert.test"  # SNI still sent; a DNS SAN matched


def test_server_name_alone_may_match_the_subject_cn(setup):
    # Without subjectAltNames the server name is verified as OpenSSL does (the CN
    # when the certificate has no DNS SAN); with them, SANs only (/cnsan/ above).
    proxy, _, _ = setup
    assert get(proxy, "/cnname/").status == 200


def test_verify_false_accepts_any_certificate(setup):
    proxy, _, _ = setup
    r = get(proxy, "/noverify/")
    assert r.status == 200, r
    assert json.loads(r.body)["sni"] is None  # no serverName: no SNI


def test_mtls_presents_the_client_certificate(setup):
    proxy, _, mtls = setup
    r = get(proxy, "/mtls/")
    assert r.status == 200, r
    assert json.loads(r.body)["client"] == "gantry-proxy"
    # Without a client certificate the backend refuses (TLS 1.3: after the
    # handshake, so the proxy sees the connection end): a 502 either way.
    r = get(proxy, "/mtls-nocert/")
    assert r.status == 502, r


def test_keep_alive_tls_connections_are_reused(setup):
    proxy, plain, _ = setup
    before = plain.count()
    for i in range(20):
        r = get(proxy, f"/reuse/{i}")  # a fresh client connection each time
        assert r.status == 200, r
    # One worker: one pooled TLS connection carries all twenty.
    assert plain.count() - before == 1, plain.handshakes[before:]


def test_sessions_are_resumed(setup):
    proxy, plain, _ = setup
    before = plain.count()
    for i in range(4):
        r = get(proxy, f"/resume/close{i}")  # the backend closes: a new handshake each time
        assert r.status == 200, r
    new = plain.handshakes[before:]
    assert len(new) == 4, new
    # Tickets are kept per cluster: the first handshake of this one is a full one.
    assert [h[1] for h in new] == [False, True, True, True], new
    assert metric(proxy, 'gantry_upstream_tls_handshakes_total{cluster="default/resume:443",resumed="true"}') == 3
    assert metric(proxy, 'gantry_upstream_tls_handshakes_total{cluster="default/resume:443",resumed="false"}') == 1


def test_h2_over_tls(setup):
    proxy, _, _ = setup
    for version in ("--http1.1", "--http2-prior-knowledge"):
        out = subprocess.run(["curl", "-sS", "--max-time", "20", version, "-o", "-", "-w", "\n%{http_code}",
                              f"http://127.0.0.1:{proxy.http_port}/h2/hello"],
                             capture_output=True, timeout=30)
        assert out.returncode == 0, out.stderr
        body, _, code = out.stdout.decode().rpartition("\n")
        assert code == "200", out.stdout
        assert body == "GET /h2/hello 0\n", body
    r = get(proxy, "/h2-wrongca/")
    assert r.status == 502, r
    assert r.headers.get("x-gateway-reason") == "upstream-tls", r.headers
    assert "certificate verify failed" in r.body.decode(), r.body


def test_config_dump_redacts_the_client_key(setup):
    proxy, _, _ = setup
    r = http_request(proxy.admin_port, "/config_dump")
    assert r.status == 200, r
    clusters = {c["name"]: c for c in json.loads(r.body)["clusters"]}
    assert clusters["default/mtls:443"]["tls"]["clientKeyPem"] == "[redacted]"
    assert clusters["default/h2:443"]["protocol"] == "H2"
    assert clusters["default/ok:443"]["tls"]["serverName"] == BACKEND_NAME


@pytest.mark.parametrize("mutate,expect", [
    (lambda c: c["tls"].update(caPem="-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
     "cluster default/ok:443 tls.caPem: does not hold a PEM certificate"),
    (lambda c: c["tls"].update(clientCertPem="junk", clientKeyPem="junk"),
     "cluster default/ok:443 tls.clientCertPem: does not hold a PEM certificate"),
    (lambda c: c["tls"].update(caPem=None, systemCa=False),
     "cluster default/ok:443 tls: verify needs caPem or systemCa"),
])
def test_bad_tls_is_nacked_and_the_last_good_snapshot_serves(setup, mutate, expect):
    proxy, _, _ = setup
    snap = json.loads(json.dumps(proxy.snap))
    snap["version"] = 2
    mutate(snap["clusters"][0])
    with proxy.control() as ctl:
        frame_type, answer = ctl.send(FRAME_FULL, snap)
    assert frame_type == FRAME_NACK, answer
    assert any(expect in e for e in answer.get("errors", [])), answer
    assert get(proxy, "/ok/still").status == 200
