"""ingress-nginx's client-certificate annotations (auth-tls-*) in standalone
mode (--source dir: with --ingress-nginx-compat), against a real proxy, a real
echo backend (it answers with the header fields it received) and real TLS
clients (Python's ssl and curl) holding certificates made here.

- a verified certificate: 200, ssl-client-verify SUCCESS and the subject and
  issuer DNs (RFC 2253) upstream; a spoofed ssl-client-* field never reaches it;
- `on` without a certificate, or with one of another CA: 400 (nginx's 496 / 495);
- `optional` without one: 200 with NONE; with one of another CA: 400;
- `optional_no_ca` with one of another CA: 200 with FAILED:<reason>;
- auth-tls-match-cn mismatch: 403; auth-tls-error-page: a 302 to it;
- auth-tls-pass-certificate-to-upstream: the URL-escaped PEM in ssl-client-cert;
- ca.crl: a revoked certificate is 400;
- a host without auth-tls on the same listener is not asked for a
  certificate; a Host asking for one on a connection made for another name
  is 421 (HTTP/1.1 and HTTP/2); plain HTTP sends no ssl-client-* fields;
- TLS session resumption: resumed on its own host (the verified certificate
  still there), never across hosts (so the other host's check runs).
"""

import datetime
import json
import socket
import ssl
import subprocess
import urllib.parse

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from conftest import (CONVERGE_TIMEOUT, HTTP_TIMEOUT, CertAuthority, free_port, service_yaml, tail,
                      temporary_stack, wait_until)

P = "nginx.ingress.kubernetes.io/"


def ingress(name, host, annotations, tls_secret="server-tls"):
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": "default",
                         "annotations": {P + k: v for k, v in annotations.items()}},
            "spec": {"ingressClassName": "nginx",
                     "tls": [{"hosts": [host], "secretName": tls_secret}],
                     "rules": [{"host": host, "http": {"paths": [{
                         "path": "/", "pathType": "Prefix",
                         "backend": {"service": {"name": "echo", "port": {"number": 8080}}}}]}}]}}


def secret(name, data, type_="Opaque"):
    return {"apiVersion": "v1", "kind": "Secret", "type": type_,
            "metadata": {"name": name, "namespace": "default"}, "stringData": data}


def pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def crl_of(ca, revoked_pem):
    """ca's CRL (PEM) revoking the certificate `revoked_pem`."""
    now = datetime.datetime.now(datetime.timezone.utc)
    serial = x509.load_pem_x509_certificate(revoked_pem.encode()).serial_number
    entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build()
    crl = (x509.CertificateRevocationListBuilder().issuer_name(ca.cert.subject)
           .last_update(now - datetime.timedelta(minutes=5)).next_update(now + datetime.timedelta(days=1))
           .add_revoked_certificate(entry).sign(ca.key, hashes.SHA256()))
    return crl.public_bytes(serialization.Encoding.PEM).decode()


class Env:
    pass


@pytest.fixture(scope="module")
def env():
    with temporary_stack() as s:
        e = Env()
        e.s = s
        echo = s.echo("echo")
        w = s.workdir
        for d in ("server", "clients", "strangers"):
            (w / d).mkdir()
        server_ca = CertAuthority(w / "server")
        clients = CertAuthority(w / "clients", name="Client CA")
        strangers = CertAuthority(w / "strangers", name="Another CA")
        e.certs = {}
        for name, ca in [("alice", clients), ("bob", clients), ("mallory", strangers), ("revoked", clients)]:
            cert_pem, key_pem = ca.issue(name, [f"{name}.clients.example"])
            (w / f"{name}.crt").write_text(cert_pem)
            (w / f"{name}.key").write_text(key_pem)
            e.certs[name] = (w / f"{name}.crt", w / f"{name}.key", cert_pem)
        hosts = ["on", "optional", "noca", "cn", "errpage", "pass", "crl", "open", "other-ca"]
        cert_pem, key_pem = server_ca.issue("server", [f"{h}.mtls.test" for h in hosts])
        client_ca = pem(clients.cert)
        docs = [secret("server-tls", {"tls.crt": cert_pem, "tls.key": key_pem}, "kubernetes.io/tls"),
                secret("client-ca", {"ca.crt": client_ca}),
                secret("stranger-ca", {"ca.crt": pem(strangers.cert)}),
                secret("client-ca-crl", {"ca.crt": client_ca, "ca.crl": crl_of(clients, e.certs["revoked"][2])}),
                ingress("on", "on.mtls.test", {"auth-tls-secret": "default/client-ca"}),
                ingress("optional", "optional.mtls.test", {"auth-tls-secret": "default/client-ca", "ssl-redirect": "false",
                                                           "auth-tls-verify-client": "optional"}),
                ingress("noca", "noca.mtls.test", {"auth-tls-secret": "default/client-ca",
                                                   "auth-tls-verify-client": "optional_no_ca"}),
                ingress("cn", "cn.mtls.test", {"auth-tls-secret": "client-ca", "auth-tls-match-cn": "CN=(alice|carol)"}),
                ingress("errpage", "errpage.mtls.test", {"auth-tls-secret": "default/client-ca",
                                                         "auth-tls-error-page": "https://errors.example.com/mtls"}),
                ingress("pass", "pass.mtls.test", {"auth-tls-secret": "default/client-ca",
                                                   "auth-tls-pass-certificate-to-upstream": "true"}),
                ingress("crl", "crl.mtls.test", {"auth-tls-secret": "default/client-ca-crl"}),
                ingress("other-ca", "other-ca.mtls.test", {"auth-tls-secret": "default/stranger-ca"}),
                ingress("open", "open.mtls.test", {"ssl-redirect": "false"})]
        s.write("svc.yaml", service_yaml("echo", [(echo.addr, echo.port)]))
        s.write("ingresses.yaml", "".join("---\n" + json.dumps(d) + "\n" for d in docs))
        e.https_port = free_port()
        s.proxy.extra_args += ["--https-listen", f"127.0.0.1:{e.https_port}"]
        argv = s.controller.argv
        s.controller.argv = lambda: argv() + ["--ingress-nginx-compat", "on"]
        s.start()
        e.server_ca = server_ca.path
        wait_until(lambda: https(e, "on", cert="alice")[0] == 200, CONVERGE_TIMEOUT, "on.mtls.test served",
                   on_timeout=lambda: f"{https(e, 'on', cert='alice')}\n{s.logs()}")
        wait_until(lambda: https(e, "open")[0] == 200, CONVERGE_TIMEOUT, "open.mtls.test served",
                   on_timeout=s.logs)
        yield e


def context(e, cert=None):
    ctx = ssl.create_default_context(cafile=str(e.server_ca))
    ctx.check_hostname = False  # SNI and Host vary on purpose
    ctx.set_alpn_protocols(["http/1.1"])
    if cert:
        ctx.load_cert_chain(str(e.certs[cert][0]), str(e.certs[cert][1]))
    return ctx


def https(e, host, cert=None, sni=None, headers=(), ctx=None, session=None, path="/"):
    """(status, fields, body, session, reused) of one HTTP/1.1 request over TLS;
    `host`/`sni`: the first label under mtls.test (sni defaults to host)."""
    ctx = ctx or context(e, cert)
    host_name = f"{host}.mtls.test"
    sni_name = f"{sni or host}.mtls.test"
    with socket.create_connection(("127.0.0.1", e.https_port), timeout=HTTP_TIMEOUT) as raw:
        with ctx.wrap_socket(raw, server_hostname=sni_name, session=session) as t:
            req = f"GET {path} HTTP/1.1\r\nHost: {host_name}\r\nConnection: close\r\n"
            req += "".join(f"{h}\r\n" for h in headers) + "\r\n"
            t.sendall(req.encode())
            data = b""
            while True:
                try:
                    chunk = t.recv(65536)
                except (ssl.SSLError, ConnectionResetError):
                    break
                if not chunk:
                    break
                data += chunk
            got_session, reused = t.session, t.session_reused
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode(errors="replace").split("\r\n")
    status = int(lines[0].split()[1]) if lines and lines[0].startswith("HTTP/") else 0
    fields = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        fields[k.strip().lower()] = v.strip()
    return status, fields, body, got_session, reused


def upstream(answer):
    """The header fields the echo backend received."""
    status, _, body, _, _ = answer
    assert status == 200, (status, body[:300])
    return json.loads(body)["headers"]


def test_verified_certificate_reaches_the_upstream_with_its_dns(env):
    got = upstream(https(env, "on", cert="alice", headers=["ssl-client-verify: SUCCESS-SPOOFED",
                                                          "ssl-client-subject-dn: CN=root"]))
    assert got["ssl-client-verify"] == "SUCCESS"
    assert got["ssl-client-subject-dn"] == "CN=alice"
    assert got["ssl-client-issuer-dn"] == "CN=Client CA"
    assert "ssl-client-cert" not in got  # only with pass-certificate-to-upstream


def test_on_without_a_certificate_or_with_another_ca_is_400(env):
    status, _, body, _, _ = https(env, "on")
    assert status == 400 and b"No required SSL certificate was sent" in body
    status, _, body, _, _ = https(env, "on", cert="mallory")
    assert status == 400 and b"The SSL certificate error" in body


def test_optional_and_optional_no_ca(env):
    assert upstream(https(env, "optional"))["ssl-client-verify"] == "NONE"
    assert upstream(https(env, "optional", cert="bob"))["ssl-client-verify"] == "SUCCESS"
    assert https(env, "optional", cert="mallory")[0] == 400
    got = upstream(https(env, "noca", cert="mallory"))
    assert got["ssl-client-verify"].startswith("FAILED:"), got
    assert got["ssl-client-subject-dn"] == "CN=mallory" and got["ssl-client-issuer-dn"] == "CN=Another CA"
    assert upstream(https(env, "noca"))["ssl-client-verify"] == "NONE"


def test_match_cn_mismatch_is_403(env):
    assert upstream(https(env, "cn", cert="alice"))["ssl-client-subject-dn"] == "CN=alice"
    status, _, body, _, _ = https(env, "cn", cert="bob")
    assert status == 403 and b"client certificate unauthorized" in body


def test_error_page_redirects(env):
    for cert in (None, "mallory"):
        status, fields, _, _, _ = https(env, "errpage", cert=cert)
        assert status == 302 and fields.get("location") == "https://errors.example.com/mtls", (cert, status, fields)
    assert https(env, "errpage", cert="alice")[0] == 200


def test_pass_certificate_sends_the_escaped_pem(env):
    got = upstream(https(env, "pass", cert="alice"))
    sent = got["ssl-client-cert"]
    assert sent.startswith("-----BEGIN%20CERTIFICATE-----%0A") and "\n" not in sent and "+" not in sent
    assert urllib.parse.unquote(sent) == env.certs["alice"][2]


def test_revoked_certificate_is_400(env):
    assert https(env, "crl", cert="alice")[0] == 200
    assert https(env, "crl", cert="revoked")[0] == 400


def curl_verbose(env, host, sni=None, cert=None, http2=False):
    sni_name = f"{sni or host}.mtls.test"
    argv = ["curl", "-sS", "-v", "--max-time", str(HTTP_TIMEOUT), "--cacert", str(env.server_ca),
            "--resolve", f"{sni_name}:{env.https_port}:127.0.0.1", "-o", "-", "-w", "\n%{http_code}",
            "--http2" if http2 else "--http1.1", "-H", f"Host: {host}.mtls.test"]
    if cert:
        argv += ["--cert", str(env.certs[cert][0]), "--key", str(env.certs[cert][1])]
    out = subprocess.run(argv + [f"https://{sni_name}:{env.https_port}/"], capture_output=True,
                         timeout=HTTP_TIMEOUT + 5)
    body, _, code = out.stdout.rpartition(b"\n")
    return int(code or 0), body, out.stderr.decode(errors="replace")


def test_only_hosts_with_auth_tls_ask_for_a_certificate(env):
    code, _, trace = curl_verbose(env, "open")
    assert code == 200 and "Request CERT" not in trace, trace
    code, _, trace = curl_verbose(env, "on", cert="alice")
    assert code == 200 and "Request CERT" in trace, trace
    # Plain HTTP to a host with auth-tls: not verified (nginx checks TLS only), no ssl-client-* upstream.
    r = env.s.proxy.get("/", host="optional.mtls.test", headers={"ssl-client-verify": "SUCCESS"})
    assert r.status == 200, r
    assert "ssl-client-verify" not in r.json()["headers"]


@pytest.mark.parametrize("http2", [False, True])
def test_host_asking_for_a_certificate_on_another_names_connection_is_421(env, http2):
    code, body, trace = curl_verbose(env, "on", sni="open", cert="alice", http2=http2)
    assert code == 421, (code, body, trace[-2000:])
    assert b"open.mtls.test" in body
    # The other way round: a host without auth-tls on a verified connection is served.
    code, _, _ = curl_verbose(env, "open", sni="on", cert="alice", http2=http2)
    assert code == 200
    # HTTP/2 on its own host: verified, the fields upstream.
    code, body, _ = curl_verbose(env, "on", cert="alice", http2=http2)
    assert code == 200 and json.loads(body)["headers"]["ssl-client-verify"] == "SUCCESS"


def test_session_resumption_stays_on_its_host(env):
    ctx = context(env, cert="alice")
    first = https(env, "on", ctx=ctx)
    assert first[0] == 200 and first[3] is not None
    # Resumed on its own host: the verified certificate comes with the session.
    again = https(env, "on", ctx=ctx, session=first[3])
    assert again[4], "the session was not resumed on its own host"
    assert upstream(again)["ssl-client-subject-dn"] == "CN=alice"
    # Offered to a host whose clients another CA signs: not resumed, so its check runs (alice: 400).
    other = https(env, "other-ca", ctx=ctx, session=first[3])
    assert not other[4] and other[0] == 400, other[:3]
    # A session of a host that asks for nothing, offered to one that does: a full handshake with the certificate.
    plain = https(env, "open", ctx=ctx)
    assert plain[0] == 200 and plain[3] is not None
    moved = https(env, "on", ctx=ctx, session=plain[3])
    assert not moved[4]
    assert upstream(moved)["ssl-client-verify"] == "SUCCESS"
