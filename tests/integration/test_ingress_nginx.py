"""ingress-nginx compatibility mode against a real kube-apiserver + etcd and a
real proxy (docs/migrating-from-ingress-nginx.md). Ingresses of class "nginx" carrying
nginx.ingress.kubernetes.io annotations are applied through the API; requests
go through gantry-proxy with curl: rewrite-target with captures (and the
host-wide regex it implies), ssl-redirect and force-ssl-redirect (308, ACME
exempt, trailing slash dropped, on by default only with a certificate),
canary by header, cookie and weight, cookie affinity (and the cookie's Path,
Domain, Secure, SameSite attributes), limit-rps (503), source
ranges (403), backend-protocol HTTPS (with proxy-ssl-*: verification, SNI,
client certificate), GRPC and GRPCS to real TLS and HTTP/2 backends; the report (/ingress-nginx and `gantry-controller migrate
--source kube`), the Warning Event, the status left alone without
--ingress-nginx-write-status, and a bad --ingress-nginx-compat (exit 2).
"""

import base64
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "kube"))

from conftest import (CONVERGE_TIMEOUT, CertAuthority, Proxy, binary, free_port, http_request,  # noqa: E402
                      new_manager, tail, wait_until)
from kubeapi import ControlPlane, KubeController, TestHosts, endpoint_slice, service  # noqa: E402

P = "nginx.ingress.kubernetes.io/"
STATUS_ADDRESS = "192.0.2.201"


def ingress(name, host, path, svc, annotations=None, path_type="Prefix", tls=None):
    spec = {"ingressClassName": "nginx",
            "rules": [{"host": host, "http": {"paths": [{
                "path": path, "pathType": path_type,
                "backend": {"service": {"name": svc, "port": {"number": 8080}}}}]}}]}
    if tls:
        spec["tls"] = [{"hosts": [host], "secretName": tls}]
    return {"kind": "Ingress",
            "metadata": {"name": name, "namespace": "default",
                         "annotations": {P + k: v for k, v in (annotations or {}).items()}},
            "spec": spec}


class Curl:
    def __init__(self, port):
        self.port = port

    def __call__(self, path, host, headers=(), cookie=None):
        """(status, headers dict (lower-case names), body) of one request through the proxy."""
        argv = ["curl", "-sS", "-i", "--max-time", "5", "-H", f"Host: {host}"]
        for h in headers:
            argv += ["-H", h]
        if cookie:
            argv += ["-b", cookie]
        argv.append(f"http://127.0.0.1:{self.port}{path}")
        out = subprocess.run(argv, capture_output=True, check=True).stdout.decode(errors="replace")
        head, _, body = out.partition("\r\n\r\n")
        lines = head.split("\r\n")
        status = int(lines[0].split()[1])
        fields = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            fields.setdefault(k.strip().lower(), v.strip())
        return status, fields, body

    def backend(self, path, host, **kw):
        status, _, body = self(path, host, **kw)
        return json.loads(body)["name"] if status == 200 else status


@pytest.mark.parametrize("value", ["Bad_Class", "", "nginx,,UPPER"])
def test_bad_compat_flag_exits_2_with_one_line(value):
    r = subprocess.run([binary("gantry-controller"), "--ingress-nginx-compat", value],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "--ingress-nginx-compat" in lines[0], r.stderr


class Env(tuple):
    """(cp, proxy, ctl, curl), with the test hosts and the upstream TLS material as attributes."""


BACKEND_NAME = "backend.nx.test"


@pytest.fixture(scope="module")
def env():
    manager = new_manager()
    with tempfile.TemporaryDirectory(prefix="gantry-nx-") as d:
        workdir = Path(d)
        cp = ControlPlane(workdir / "cp")
        hosts = None
        try:
            cp.start()
            cp.install_crd()
            hosts = TestHosts(manager, workdir)
            for name in ["main", "canary", "other"]:
                hosts.echo(name)
            for svc, names in [("main", ["main"]), ("canary", ["canary"]), ("other", ["other"]),
                               ("pair", ["main", "other"])]:
                cp.apply(service(svc))
                cp.apply(endpoint_slice(svc, [hosts.echos[n] for n in names]))
            # Upstream TLS: an HTTPS/1.1 backend that asks for a client certificate, and
            # gantry-h2-echo (h2c on 9001, h2 over TLS on 9443), certificates from a test CA.
            pki = workdir / "pki"
            (pki / "clients").mkdir(parents=True)
            ca, client_ca = CertAuthority(pki), CertAuthority(pki / "clients", name="Client CA")
            cert, key = ca.issue("backend", [BACKEND_NAME])
            (pki / "backend.pem").write_text(cert)
            (pki / "backend.key").write_text(key)
            tls_addr = hosts.tls_echo("tls", pki / "backend.pem", pki / "backend.key", client_ca=client_ca.path)
            h2_addr = hosts.h2_echo("h2", pki / "backend.pem", pki / "backend.key")
            for svc, addr, port in [("tls", tls_addr, 9443), ("h2c", h2_addr, 9001), ("h2tls", h2_addr, 9443)]:
                cp.apply(service(svc, target_port=port))
                cp.apply(endpoint_slice(svc, [addr], port=port))
            cp.apply({"kind": "IngressClass", "metadata": {"name": "nginx"},
                      "spec": {"controller": "k8s.io/ingress-nginx"}})
            socket = workdir / "control.sock"
            https_port = free_port()
            proxy = Proxy(manager, workdir, socket, extra_args=["--https-listen", f"127.0.0.1:{https_port}"]).start()
            ctl = KubeController(manager, workdir, cp.kubeconfig, socket,
                                 extra_args=["--ingress-nginx-compat", "on",
                                             "--ingress-status-address", STATUS_ADDRESS]).start()
            ctl.wait_ready()
            e = Env((cp, proxy, ctl, Curl(proxy.http_port)))
            e.ca, e.client_ca, e.https_port = ca, client_ca, https_port
            yield e
        finally:
            manager.cleanup()
            if hosts:
                hosts.close()
            cp.stop()


def converge(check, what, ctl):
    return wait_until(check, CONVERGE_TIMEOUT, what, on_timeout=lambda: tail(ctl.log))


def test_rewrite_target_captures_and_host_wide_regex(env):
    cp, proxy, ctl, curl = env
    cp.apply(ingress("rw", "rw.nx.test", "/api(/|$)(.*)", "main", {"rewrite-target": "/$2"},
                     path_type="ImplementationSpecific"))
    cp.apply(ingress("plain", "rw.nx.test", "/app", "other"))
    converge(lambda: curl("/api/x", "rw.nx.test")[0] == 200, "the rewrite Ingress to serve", ctl)
    status, _, body = curl("/API/users/7?page=2", "rw.nx.test")
    assert status == 200
    echo = json.loads(body)
    assert echo["name"] == "main" and echo["path"] == "/users/7?page=2"
    assert json.loads(curl("/api", "rw.nx.test")[2])["path"] == "/"
    # The other Ingress's Prefix /app became `~* ^/app` on this host: case-insensitive,
    # and a string prefix (/apple matches), as ingress-nginx serves it.
    converge(lambda: curl("/APPLE", "rw.nx.test")[0] == 200, "host-wide regex", ctl)
    assert curl.backend("/apple/pie", "rw.nx.test") == "other"


def tls_secret(cp, workdir, name, host):
    cert, key = workdir / f"{name}.crt", workdir / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1",
                    "-subj", f"/CN={host}", "-addext", f"subjectAltName=DNS:{host}"],
                   check=True, capture_output=True, timeout=60)
    cp.apply({"kind": "Secret", "type": "kubernetes.io/tls", "metadata": {"name": name, "namespace": "default"},
              "data": {"tls.crt": base64.b64encode(cert.read_bytes()).decode(),
                       "tls.key": base64.b64encode(key.read_bytes()).decode()}})


def test_ssl_redirect_308_acme_exempt_and_certificate_needed(env, tmp_path):
    cp, proxy, ctl, curl = env
    tls_secret(cp, tmp_path, "tls-cert", "tls.nx.test")
    cp.apply(ingress("ssl", "ssl.nx.test", "/", "main", {"force-ssl-redirect": "true"}))
    cp.apply(ingress("tlsdefault", "tls.nx.test", "/", "main", tls="tls-cert"))
    cp.apply(ingress("nocert", "nocert.nx.test", "/", "main", tls="no-such-secret"))
    cp.apply(ingress("tlsoff", "tlsoff.nx.test", "/", "main", {"ssl-redirect": "false"}, tls="tls-cert"))
    converge(lambda: curl("/a?b=1", "ssl.nx.test")[0] == 308, "the 308", ctl)
    assert curl("/a?b=1", "ssl.nx.test")[1]["location"] == "https://ssl.nx.test/a?b=1"
    # ingress-nginx drops a trailing slash of the request target (preserve-trailing-slash: false).
    assert curl("/dir/", "ssl.nx.test")[1]["location"] == "https://ssl.nx.test/dir"
    assert curl.backend("/.well-known/acme-challenge/tok", "ssl.nx.test") == "main"
    converge(lambda: curl("/x", "tls.nx.test")[0] == 308, "ssl-redirect on by default with a certificate", ctl)
    # No certificate for the host (its Secret is missing): no redirect, as in ingress-nginx.
    converge(lambda: curl("/x", "nocert.nx.test")[0] == 200, "no redirect without a certificate", ctl)
    converge(lambda: curl("/x", "tlsoff.nx.test")[0] == 200, "ssl-redirect: false", ctl)


def test_canary_by_header_cookie_and_weight(env):
    cp, proxy, ctl, curl = env
    cp.apply(ingress("site", "canary.nx.test", "/", "main"))
    cp.apply(ingress("site-canary", "canary.nx.test", "/", "canary",
                     {"canary": "true", "canary-by-header": "X-Canary", "canary-by-cookie": "beta",
                      "canary-weight": "0"}))
    converge(lambda: curl.backend("/", "canary.nx.test", headers=["X-Canary: always"]) == "canary",
             "the canary by header", ctl)
    assert curl.backend("/", "canary.nx.test") == "main"
    assert curl.backend("/", "canary.nx.test", headers=["X-Canary: never"], cookie="beta=always") == "main"
    assert curl.backend("/", "canary.nx.test", headers=["X-Canary: other"], cookie="beta=always") == "canary"
    assert curl.backend("/", "canary.nx.test", cookie="a=1; beta=always") == "canary"
    # Weight 50 of 100: both backends answer.
    cp.apply(ingress("site-canary", "canary.nx.test", "/", "canary", {"canary": "true", "canary-weight": "50"}))
    seen = set()
    converge(lambda: seen.add(curl.backend("/", "canary.nx.test")) or seen == {"main", "canary"},
             "a 50/50 split", ctl)


def test_cookie_affinity(env):
    cp, proxy, ctl, curl = env
    cp.apply(ingress("sticky", "sticky.nx.test", "/", "pair",
                     {"affinity": "cookie", "session-cookie-name": "route", "session-cookie-max-age": "600"}))
    converge(lambda: curl("/", "sticky.nx.test")[0] == 200, "the sticky Ingress", ctl)
    status, fields, body = curl("/", "sticky.nx.test")
    cookie = fields.get("set-cookie", "")
    assert cookie.startswith("route=") and "Max-Age=600" in cookie, fields
    first = json.loads(body)["name"]
    pair = cookie.split(";")[0]
    assert all(curl.backend("/", "sticky.nx.test", cookie=pair) == first for _ in range(8))


def test_cookie_affinity_attributes(env, tmp_path):
    cp, proxy, ctl, curl = env
    sticky = {"affinity": "cookie", "session-cookie-name": "route"}
    cp.apply(ingress("sticky-default", "sdefault.nx.test", "/shop", "pair", sticky))
    cp.apply(ingress("sticky-attrs", "sattrs.nx.test", "/", "pair",
                     {**sticky, "session-cookie-path": "/app", "session-cookie-domain": "nx.test",
                      "session-cookie-secure": "true", "session-cookie-samesite": "None",
                      "session-cookie-conditional-samesite-none": "true"}))
    tls_secret(cp, tmp_path, "stls-cert", "stls.nx.test")
    cp.apply(ingress("sticky-tls", "stls.nx.test", "/", "pair", {**sticky, "ssl-redirect": "false"}, tls="stls-cert"))

    def cookie(host, path="/", headers=()):
        status, fields, _ = curl(path, host, headers)
        return status == 200 and fields.get("set-cookie", "")
    # sticky.lua: Path is the Ingress path, HttpOnly, no Secure over plain HTTP.
    got = converge(lambda: cookie("sdefault.nx.test", "/shop/cart"), "the sticky Ingress", ctl)
    assert got.startswith("route=") and got.endswith("; Path=/shop; HttpOnly"), got
    got = converge(lambda: cookie("sattrs.nx.test"), "the cookie attributes", ctl)
    assert got.endswith("; Path=/app; Domain=nx.test; HttpOnly; Secure; SameSite=None"), got
    # A client known to reject SameSite=None gets the cookie without it.
    old_chrome = "User-Agent: Mozilla/5.0 (Windows NT 10.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/62.0 Safari/537.36"
    got = cookie("sattrs.nx.test", headers=[old_chrome])
    assert got.endswith("; Path=/app; Domain=nx.test; HttpOnly; Secure"), got
    # Secure over TLS by default.
    argv = ["curl", "-sS", "-k", "-i", "--http1.1", "--max-time", "5", "--resolve", f"stls.nx.test:{env.https_port}:127.0.0.1",
            f"https://stls.nx.test:{env.https_port}/"]

    seen = []

    def over_tls():
        r = subprocess.run(argv, capture_output=True, text=True)
        seen[:] = [r.stdout[:300], r.stderr[-300:]]
        line = next((x.strip() for x in r.stdout.splitlines() if x.lower().startswith("set-cookie:")), "")
        return r.stdout.startswith("HTTP/1.1 200") and line
    got = wait_until(over_tls, CONVERGE_TIMEOUT, "the cookie over TLS", on_timeout=lambda: str(seen))
    assert got.endswith("; Path=/; HttpOnly; Secure"), got
    assert cookie("stls.nx.test").endswith("; Path=/; HttpOnly")  # the same Ingress over plain HTTP


def test_limit_rps_answers_503(env):
    cp, proxy, ctl, curl = env
    cp.apply(ingress("limited", "limit.nx.test", "/", "main", {"limit-rps": "1", "limit-burst-multiplier": "1"}))
    converge(lambda: curl("/", "limit.nx.test")[0] in (200, 503), "the limited Ingress", ctl)
    # Capacity 2 (nginx: burst 1 + 1), refilled at 1 per second: 8 requests in a row meet a 503.
    statuses = [curl("/", "limit.nx.test")[0] for _ in range(8)]
    assert 503 in statuses and 429 not in statuses, statuses


def test_source_ranges_403(env):
    cp, proxy, ctl, curl = env
    cp.apply(ingress("allowed", "allow.nx.test", "/", "main", {"whitelist-source-range": "127.0.0.1/32"}))
    cp.apply(ingress("denied", "deny.nx.test", "/", "main", {"whitelist-source-range": "10.0.0.0/8"}))
    cp.apply(ingress("blocked", "block.nx.test", "/", "main", {"denylist-source-range": "127.0.0.0/8"}))
    converge(lambda: curl("/", "allow.nx.test")[0] == 200, "the allowed client", ctl)
    converge(lambda: curl("/", "deny.nx.test")[0] == 403, "a client outside the allowlist", ctl)
    converge(lambda: curl("/", "block.nx.test")[0] == 403, "a denied client", ctl)


def htpasswd_line(flag, user, password):
    """One line written by Apache's htpasswd(1): -B bcrypt, -5 SHA-512 crypt, -m MD5 (its old default)."""
    out = subprocess.run(["htpasswd", "-nb" + flag, user, password], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_basic_auth_from_an_htpasswd_secret(env):
    cp, proxy, ctl, curl = env
    auth = "\n".join([htpasswd_line("B", "alice", "open sesame"), htpasswd_line("m", "mallory", "md5")]) + "\n"
    cp.apply({"kind": "Secret", "type": "Opaque", "metadata": {"name": "basic-auth", "namespace": "default"},
              "stringData": {"auth": auth}})
    cp.apply({"kind": "Secret", "type": "Opaque", "metadata": {"name": "basic-map", "namespace": "default"},
              "stringData": {"bob": htpasswd_line("5", "bob", "hunter2").split(":", 1)[1]}})
    basic = {"auth-type": "basic", "auth-realm": "Authentication Required - foo"}
    cp.apply(ingress("basic", "basic.nx.test", "/", "main", {**basic, "auth-secret": "basic-auth"}))
    cp.apply(ingress("basic-map", "map.nx.test", "/", "main",
                     {**basic, "auth-secret": "default/basic-map", "auth-secret-type": "auth-map"}))
    cp.apply(ingress("basic-elsewhere", "other.nx.test", "/", "main", {**basic, "auth-secret": "kube-system/x"}))

    def creds(user):
        return ["Authorization: Basic " + base64.b64encode(user.encode()).decode()]
    converge(lambda: curl("/", "basic.nx.test", creds("alice:open sesame"))[0] == 200, "alice through basic auth", ctl)
    status, fields, _ = curl("/", "basic.nx.test")
    assert status == 401 and fields["www-authenticate"].startswith('Basic realm="Authentication Required - foo"')
    assert curl("/", "basic.nx.test", creds("alice:wrong"))[0] == 401
    assert curl("/", "basic.nx.test", creds("mallory:md5"))[0] == 401  # MD5 lines are refused
    converge(lambda: curl("/", "map.nx.test", creds("bob:hunter2"))[0] == 200, "bob through the auth-map", ctl)
    assert curl("/", "map.nx.test", creds("alice:open sesame"))[0] == 401
    # Another namespace's Secret is not read: that Ingress is not served at all, never served open.
    assert curl("/", "other.nx.test")[0] == 404

    def refused_md5():
        r = http_request(ctl.admin_port, "/ingress-nginx")
        rep = next((i for i in json.loads(r.body)["ingresses"] if i["name"] == "basic"), None)
        return rep and {a["name"]: a["support"] for a in rep["annotations"]}
    verdicts = converge(refused_md5, "the basic Ingress in the report", ctl)
    assert verdicts[P + "auth-type"] == "partial" and verdicts[P + "auth-secret"] == "served", verdicts


def secret(cp, name, data):
    cp.apply({"kind": "Secret", "type": "Opaque", "metadata": {"name": name, "namespace": "default"},
              "stringData": data})


def test_backend_protocol_https_with_proxy_ssl(env, tmp_path):
    cp, proxy, ctl, curl = env
    client_cert, client_key = env.client_ca.issue("gantry-client", ["client.nx.test"])
    (tmp_path / "other").mkdir()
    other_ca = CertAuthority(tmp_path / "other", name="Another CA")
    ca_pem = env.ca.path.read_text()
    secret(cp, "upstream-ssl", {"ca.crt": ca_pem, "tls.crt": client_cert, "tls.key": client_key})
    secret(cp, "upstream-other-ca", {"ca.crt": other_ca.path.read_text()})
    https = {"backend-protocol": "HTTPS"}
    checked = {**https, "proxy-ssl-secret": "default/upstream-ssl", "proxy-ssl-verify": "on",
               "proxy-ssl-name": BACKEND_NAME, "proxy-ssl-server-name": "on"}
    cp.apply(ingress("https-default", "https.nx.test", "/", "tls", https))
    cp.apply(ingress("https-checked", "checked.nx.test", "/", "tls", checked))
    cp.apply(ingress("https-wrong-name", "wrongname.nx.test", "/", "tls", {**checked, "proxy-ssl-name": "other.nx.test"}))
    cp.apply(ingress("https-wrong-ca", "wrongca.nx.test", "/", "tls",
                     {**checked, "proxy-ssl-secret": "default/upstream-other-ca"}))
    cp.apply(ingress("https-unverified", "unverified.nx.test", "/", "tls",
                     {**checked, "proxy-ssl-secret": "default/upstream-other-ca", "proxy-ssl-verify": "off"}))
    cp.apply(ingress("https-elsewhere", "elsewhere.nx.test", "/", "tls",
                     {**https, "proxy-ssl-secret": "kube-system/upstream-ssl"}))
    cp.apply(ingress("https-plain", "plain.nx.test", "/", "tls"))

    def answer(host):
        status, fields, body = curl("/p?q=1", host)
        return (status, json.loads(body)) if status == 200 else (status, fields.get("x-gateway-reason"))
    # ingress-nginx's defaults: TLS, no verification, no SNI, no client certificate.
    status, got = converge(lambda: (lambda a: a[0] == 200 and a)(answer("https.nx.test")), "HTTPS upstream", ctl)
    assert got["path"] == "/p?q=1" and got["sni"] is None and got["client"] is None, got
    # proxy-ssl-secret's ca.crt verifies, its tls.crt is the client certificate,
    # proxy-ssl-name goes as SNI with proxy-ssl-server-name on.
    status, got = converge(lambda: (lambda a: a[0] == 200 and a)(answer("checked.nx.test")), "verified HTTPS", ctl)
    assert got["sni"] == BACKEND_NAME and got["client"] == "gantry-client", (got, [
        {k: v for k, v in c.items() if k != "endpoints"} for c in proxy.config_dump()["clusters"]])
    converge(lambda: answer("wrongname.nx.test") == (502, "upstream-tls"), "a name the certificate lacks: 502", ctl)
    converge(lambda: answer("wrongca.nx.test") == (502, "upstream-tls"), "a CA that did not sign it: 502", ctl)
    status, got = converge(lambda: (lambda a: a[0] == 200 and a)(answer("unverified.nx.test")),
                           "proxy-ssl-verify off", ctl)
    assert got["sni"] == BACKEND_NAME and got["client"] is None, got
    # Another namespace's Secret: nothing goes to the backend (ingress-nginx denies the location: 503).
    converge(lambda: answer("elsewhere.nx.test")[0] == 503, "a Secret of another namespace: 503", ctl)
    # Without the annotation the proxy speaks HTTP in clear to the TLS port: no 200.
    assert answer("plain.nx.test")[0] != 200

    def verdicts():
        r = http_request(ctl.admin_port, "/ingress-nginx")
        rep = next((i for i in json.loads(r.body)["ingresses"] if i["name"] == "https-checked"), None)
        return rep and {a["name"][len(P):]: a["support"] for a in rep["annotations"]}
    assert converge(verdicts, "the report", ctl) == {
        "backend-protocol": "partial", "proxy-ssl-secret": "served", "proxy-ssl-verify": "partial",
        "proxy-ssl-name": "served", "proxy-ssl-server-name": "served"}


def test_backend_protocol_grpc_and_grpcs(env):
    cp, proxy, ctl, curl = env
    cp.apply(ingress("grpc", "grpc.nx.test", "/", "h2c", {"backend-protocol": "GRPC"}))
    cp.apply(ingress("grpcs", "grpcs.nx.test", "/", "h2tls", {"backend-protocol": "GRPCS"}))
    cp.apply(ingress("h2c-as-http", "h2c-as-http.nx.test", "/", "h2c"))
    grpc = ["content-type: application/grpc", "te: trailers"]
    # gantry-h2-echo speaks HTTP/2 only and answers "METHOD PATH BYTES".
    converge(lambda: curl("/pkg.Svc/Call", "grpc.nx.test", grpc)[2].startswith("GET /pkg.Svc/Call 0"),
             "GRPC: h2c to the backend", ctl)
    converge(lambda: curl("/pkg.Svc/Call", "grpcs.nx.test", grpc)[2].startswith("GET /pkg.Svc/Call 0"),
             "GRPCS: h2 over TLS to the backend", ctl)
    converge(lambda: curl("/x", "h2c-as-http.nx.test")[0] == 502, "HTTP/1.1 to an HTTP/2-only backend fails", ctl)


def test_refused_annotations_are_reported_and_evented(env):
    cp, proxy, ctl, curl = env
    cp.apply(ingress("snippet", "snip.nx.test", "/", "main",
                     {"configuration-snippet": "deny all;", "limit-rate": "100", "made-up": "x"}))
    cp.apply(ingress("ok", "ok.nx.test", "/", "main"))
    converge(lambda: curl("/", "ok.nx.test")[0] == 200, "the plain Ingress", ctl)
    # A blocking refusal keeps the Ingress out: the dropped snippet may have protected it.
    assert curl("/", "snip.nx.test")[0] == 404

    def report():
        r = http_request(ctl.admin_port, "/ingress-nginx")
        rep = json.loads(r.body)
        return next((i for i in rep["ingresses"] if i["name"] == "snippet"), None)
    rep = converge(report, "the report", ctl)
    verdicts = {a["name"]: a["support"] for a in rep["annotations"]}
    assert not rep["served"]
    assert verdicts == {P + "configuration-snippet": "refused", P + "limit-rate": "refused",
                        P + "made-up": "unknown"}

    def warning():
        events = cp.request("GET", "/api/v1/namespaces/default/events")["items"]
        return [e for e in events if e["involvedObject"]["name"] == "snippet"
                and e["involvedObject"]["kind"] == "Ingress" and e["type"] == "Warning"]
    ev = converge(warning, "a Warning Event on the Ingress", ctl)
    assert "configuration-snippet" in ev[-1]["message"]
    m = ctl.metrics()
    assert m['gantry_controller_ingress_nginx_annotations{support="unknown"}'] >= 1
    # Without --ingress-nginx-write-status the Ingress status is ingress-nginx's to write.
    assert not (cp.get("Ingress", "ok").get("status") or {}).get("loadBalancer", {}).get("ingress")


def test_migrate_report_against_the_cluster(env):
    cp, proxy, ctl, curl = env
    cp.apply(ingress("report-me", "report.nx.test", "/", "main",
                     {"rewrite-target": "/", "limit-rps": "5", "satisfy": "any"}))
    argv = [binary("gantry-controller"), "migrate", "--source", "kube", "--kubeconfig", cp.kubeconfig]
    r = subprocess.run(argv + ["--json"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r.stderr  # a refused annotation: a CI gate fails
    rep = json.loads(r.stdout)
    item = next(i for i in rep["ingresses"] if i["name"] == "report-me")
    got = {a["name"]: (a["support"], a["blocks"]) for a in item["annotations"]}
    assert got == {P + "rewrite-target": ("served", False), P + "limit-rps": ("partial", False),
                   P + "satisfy": ("refused", True)}
    assert not item["served"]
    text = subprocess.run(argv, capture_output=True, text=True, timeout=60).stdout
    assert "ingress default/report-me: NOT SERVED" in text and "refused  satisfy=" in text
    never = subprocess.run(argv + ["--fail-on", "never"], capture_output=True, text=True, timeout=60)
    assert never.returncode == 0
    bad = subprocess.run(argv + ["--fail-on", "sometimes"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
