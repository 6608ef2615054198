"""extAuth's request body, Envoy's gRPC ext_authz protocol and HTTPS to the
service, through the real proxy with real requests over HTTP/1.1 (Python
http.client, curl) and HTTP/2 (curl --http2-prior-knowledge); docs/policies.md,
"External authorization".

- gRPC: hack/ext-authz-server ($GANTRY_EXT_AUTHZ_SERVER; hack/test.sh sets it,
  else this module builds it): Envoy's envoy.service.auth.v3.Authorization
  served by grpc-go with go-control-plane's generated types, so what Gantry
  encodes is decoded by the reference protobuf code; it logs every
  CheckRequest as JSON, which the tests read back. No Envoy ext_authz product
  is served by the Go module proxy (opa-envoy-plugin is not), hence a service
  of our own with Envoy's contract. Plain h2c and h2 over TLS (ALPN).
- HTTP with a body, and HTTPS: a small in-test auth service (Python
  http.server, plain and TLS with a CA made here by openssl(1)) that decides on
  the body it got and says what it saw; oauth2-proxy (test_ext_auth.py) never
  reads bodies.
- The backend is an in-test echo: the body and fields it got, as JSON.
"""

import http.server
import json
import os
import socketserver
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import (CONVERGE_TIMEOUT, REPO, START_TIMEOUT, free_port, http_request, refusing_port, sn_cluster,
                      sn_route, sn_rule, sn_snapshot, tail, temporary_dataplane, wait_until)
from test_ext_auth import listening

CHECK = "/envoy.service.auth.v3.Authorization/Check"


def ext_authz_server_binary():
    path = os.environ.get("GANTRY_EXT_AUTHZ_SERVER")
    if not path:
        out = subprocess.run(["bash", str(REPO / "hack" / "ext-authz-server.sh")], capture_output=True, text=True,
                             timeout=1800)
        assert out.returncode == 0, out.stderr
        path = out.stdout.strip().splitlines()[-1]
    assert Path(path).exists(), path
    return path


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


class _Echo(http.server.BaseHTTPRequestHandler):
    """The backend: answers what it got (body, fields) as JSON."""
    protocol_version = "HTTP/1.1"

    def _any(self):
        body = b""
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                body += self.rfile.read(size)
                self.rfile.readline()
        else:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
        out = json.dumps({"path": self.path, "body": body.decode(errors="replace"),
                          "headers": {k.lower(): v for k, v in self.headers.items()}}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_PUT = _any

    def log_message(self, *args):
        pass


class _Auth(http.server.BaseHTTPRequestHandler):
    """The HTTP auth service: allows when the body it got holds b"allow-me";
    says how many bytes it saw (x-auth-body-bytes) and whether they were
    partial; denies with 403 and its own text otherwise."""
    protocol_version = "HTTP/1.1"
    seen = []

    def _any(self):
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        type(self).seen.append((self.command, self.headers.get("x-envoy-auth-partial-body"), body))
        ok = b"allow-me" in body
        out = b"" if ok else b"body says no"
        self.send_response(200 if ok else 403)
        self.send_header("x-auth-body-bytes", str(len(body)))
        self.send_header("x-auth-partial", self.headers.get("x-envoy-auth-partial-body", "absent"))
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_PUT = _any

    def log_message(self, *args):
        pass


def make_ca(workdir):
    """A CA and a certificate for localhost it signed (openssl(1))."""
    d = Path(workdir)

    def run(*a):
        subprocess.run(list(a), check=True, capture_output=True, cwd=d)
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
        "-days", "2", "-subj", "/CN=extauthz-test-ca")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "svc.key", "-out", "svc.csr",
        "-subj", "/CN=localhost")
    (d / "ext.cnf").write_text("subjectAltName=DNS:localhost\n")
    run("openssl", "x509", "-req", "-in", "svc.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "svc.crt", "-days", "2", "-extfile", "ext.cnf")
    return d / "ca.crt", d / "svc.crt", d / "svc.key"


class GrpcAuth:
    def __init__(self, dp, name, tls=None):
        self.port = free_port()
        self.log = dp.workdir / f"{name}.log"
        self.checks = dp.workdir / f"{name}-checks.jsonl"
        argv = [ext_authz_server_binary(), "--listen", f"127.0.0.1:{self.port}", "--log", str(self.checks)]
        if tls:
            argv += ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])]
        dp.manager.spawn(argv, self.log)
        wait_until(lambda: listening(self.port), START_TIMEOUT, f"{name} to listen", on_timeout=lambda: tail(self.log))

    def requests(self):
        if not self.checks.exists():
            return []
        return [json.loads(line) for line in self.checks.read_text().splitlines() if line.strip()]


def ext(host, port, **kw):
    a = {"host": host, "port": port, "path": "/check", "authority": f"{host}:{port}", "timeoutMs": 2000,
         "requestHeaders": ["authorization"], "responseHeaders": ["x-auth-body-bytes", "x-auth-partial"]}
    a.update(kw)
    return a


def grpc_ext(port, **kw):
    a = {"host": "127.0.0.1", "port": port, "path": CHECK, "authority": f"127.0.0.1:{port}", "timeoutMs": 2000,
         "grpc": True, "requestHeaders": ["authorization"]}
    a.update(kw)
    return a


@pytest.fixture(scope="module")
def env():
    echo = _Server(("127.0.0.1", 0), _Echo)
    auth = _Server(("127.0.0.1", 0), _Auth)
    with temporary_dataplane() as dp:
        ca, crt, key = make_ca(dp.workdir)
        auth_tls = _Server(("127.0.0.1", 0), _Auth)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(crt, key)
        auth_tls.socket = ctx.wrap_socket(auth_tls.socket, server_side=True)
        for s in (echo, auth, auth_tls):
            threading.Thread(target=s.serve_forever, daemon=True).start()
        g = GrpcAuth(dp, "ext-authz")
        g_tls = GrpcAuth(dp, "ext-authz-tls", tls=(crt, key))
        ap, tp = auth.server_address[1], auth_tls.server_address[1]
        ca_pem = ca.read_text()

        def route(name, e):
            return sn_route(name, [sn_rule("default/echo:80", filters={"extAuth": e})], hostnames=[f"{name}.test"])

        routes = [
            route("body", ext("127.0.0.1", ap, bodyMaxBytes=64)),
            route("partial", ext("127.0.0.1", ap, bodyMaxBytes=16, bodyAllowPartial=True)),
            route("nobody", ext("127.0.0.1", ap)),
            route("bigbody", ext("127.0.0.1", ap, bodyMaxBytes=1 << 20)),
            route("grpc", grpc_ext(g.port, bodyMaxBytes=1024)),
            route("grpcquick", grpc_ext(g.port, timeoutMs=500)),
            route("grpcdown", grpc_ext(refusing_port())),
            route("grpctls", grpc_ext(g_tls.port, host="localhost", authority=f"localhost:{g_tls.port}", tls=True,
                                      caPem=ca_pem)),
            route("https", ext("localhost", tp, tls=True, caPem=ca_pem, bodyMaxBytes=64)),
            route("httpsuntrusted", ext("localhost", tp, tls=True, bodyMaxBytes=64)),  # the system store
        ]
        p = dp.proxy(sn_snapshot(1, routes, [sn_cluster("default/echo:80", [("127.0.0.1", echo.server_address[1])])]),
                     workers=1)
        p.workdir = dp.workdir
        p.grpc, p.grpc_tls = g, g_tls
        yield p
        auth_tls.shutdown()
    echo.shutdown()
    auth.shutdown()


def h1(env, host, path="/", method="GET", body=None, headers=None):
    return http_request(env.http_port, path, host=f"{host}.test", method=method, body=body, headers=headers)


def curl(env, host, path="/", method="GET", body=None, headers=(), h2=False, chunked=False):
    """One request with curl: (status, http version, fields, body)."""
    hdrs = env.workdir / "extauthz-curl-headers.txt"
    argv = ["curl", "-sS", "--max-time", "20", "-D", str(hdrs), "-o", "-", "-w", "\n%{http_code} %{http_version}",
            "-H", f"Host: {host}.test", "-X", method]
    if h2:
        argv.append("--http2-prior-knowledge")
    if chunked:
        argv += ["-H", "Transfer-Encoding: chunked"]
    for h in headers:
        argv += ["-H", h]
    if body is not None:
        argv += ["--data-binary", "@-"]
    out = subprocess.run(argv + [f"http://127.0.0.1:{env.http_port}{path}"], input=body, capture_output=True,
                         timeout=30)
    assert out.returncode == 0, out.stderr.decode(errors="replace")
    data, _, last = out.stdout.rpartition(b"\n")
    code, ver = last.decode().split()
    fields = {}
    for line in hdrs.read_text(errors="replace").splitlines()[1:]:
        name, sep, value = line.partition(":")
        if sep:
            fields[name.strip().lower()] = value.strip()
    return int(code), ver, fields, data


# ---- withRequestBody over HTTP

def test_the_body_goes_to_the_service_and_whole_upstream_http1(env):
    body = b'{"note": "allow-me", "n": 1}'
    r = h1(env, "body", "/orders", "POST", body, {"Content-Type": "application/json"})
    assert r.status == 200, r
    up = json.loads(r.body)
    assert up["body"] == body.decode()
    assert up["headers"]["x-auth-body-bytes"] == str(len(body))
    assert up["headers"]["x-auth-partial"] == "false"
    assert up["headers"]["content-length"] == str(len(body))


def test_a_denial_decided_on_the_body_never_reaches_upstream(env):
    r = h1(env, "body", "/orders", "POST", b"nothing to see")
    assert r.status == 403, r
    assert r.body == b"body says no"


def test_a_chunked_body_is_read_sent_and_replayed_with_a_length(env):
    code, ver, fields, data = curl(env, "body", "/c", "POST", b"chunked allow-me body", chunked=True)
    assert (code, ver) == (200, "1.1"), data
    up = json.loads(data)
    assert up["body"] == "chunked allow-me body"
    assert up["headers"]["x-auth-body-bytes"] == "21"
    assert up["headers"].get("content-length") == "21"  # the body read whole goes with its length


def test_the_body_over_http2(env):
    code, ver, fields, data = curl(env, "body", "/h2", "PUT", b"h2 allow-me", h2=True)
    assert (code, ver) == (200, "2"), data
    up = json.loads(data)
    assert up["body"] == "h2 allow-me"
    assert up["headers"]["x-auth-body-bytes"] == "11"
    code, ver, _, data = curl(env, "body", "/h2", "PUT", b"h2 no", h2=True)
    assert (code, ver, data) == (403, "2", b"body says no")


def test_over_the_bound_is_413(env):
    r = h1(env, "body", "/big", "POST", b"allow-me" + b"x" * 100)
    assert r.status == 413, r
    assert b"extAuth.withRequestBody.maxBytes (64 bytes)" in r.body
    code, _, _, _ = curl(env, "body", "/big", "POST", b"allow-me" + b"y" * 100, chunked=True)
    assert code == 413
    code, ver, _, _ = curl(env, "body", "/big", "POST", b"allow-me" + b"z" * 100, h2=True)
    assert (code, ver) == (413, "2")


def test_allow_partial_sends_the_first_bytes_and_the_whole_body_goes_upstream(env):
    body = b"allow-me........" + b"rest " * 200  # the first 16 bytes decide
    r = h1(env, "partial", "/p", "POST", body)
    assert r.status == 200, r
    up = json.loads(r.body)
    assert up["body"] == body.decode()
    assert up["headers"]["x-auth-body-bytes"] == "16"
    assert up["headers"]["x-auth-partial"] == "true"
    code, ver, _, data = curl(env, "partial", "/p", "POST", body, chunked=True)
    assert code == 200, data
    assert json.loads(data)["body"] == body.decode()
    code, ver, _, data = curl(env, "partial", "/p", "POST", body, h2=True)
    assert (code, ver) == (200, "2"), data
    assert json.loads(data)["body"] == body.decode()
    # the deciding bytes past the first 16 are not seen
    assert h1(env, "partial", "/p", "POST", b"x" * 16 + b"allow-me").status == 403


def test_the_request_head_survives_a_body_read_over_it(env):
    # 300 KB: the HTTP/1.1 read buffer moves and grows while the body is read,
    # after which the upstream head is still built from the request's fields.
    body = b"allow-me" + bytes(range(256)) * 1200
    fields = {"X-Marker": "keep-me-intact-" + "m" * 200, "Content-Type": "application/octet-stream"}
    r = h1(env, "bigbody", "/big/path?q=intact", "POST", body, fields)
    assert r.status == 200, r
    up = json.loads(r.body)
    assert up["path"] == "/big/path?q=intact"
    assert up["headers"]["x-marker"] == fields["X-Marker"]
    assert up["headers"]["host"] == "bigbody.test"
    assert up["headers"]["x-auth-body-bytes"] == str(len(body))
    assert len(up["body"].encode(errors="replace")) > 0 and up["headers"]["content-length"] == str(len(body))
    code, _, _, data = curl(env, "bigbody", "/big/chunked", "POST", body, chunked=True,
                            headers=["X-Marker: chunked-intact"])
    assert code == 200, data
    assert json.loads(data)["headers"]["x-marker"] == "chunked-intact"


def test_without_with_request_body_the_service_gets_no_body(env):
    r = h1(env, "nobody", "/n", "POST", b"allow-me")
    assert r.status == 403, r  # the service saw no body
    assert _Auth.seen[-1][2] == b""


# ---- gRPC ext_authz

def test_grpc_ok_sets_appends_and_removes_upstream_fields(env):
    r = h1(env, "grpc", "/orders?x=1", "GET", None,
           {"Authorization": "Bearer good", "X-Tenant": "t0", "X-Remove-Me": "secret", "X-Request-Id": "rid-7"})
    assert r.status == 200, r
    up = json.loads(r.body)["headers"]
    assert up["x-auth-user"] == "alice"
    assert up["x-tenant"] == "t0,t1"
    assert "x-remove-me" not in up
    check = env.grpc.requests()[-1]["attributes"]
    http = check["request"]["http"]
    assert http["method"] == "GET"
    assert http["path"] == "/orders?x=1"
    assert http["query"] == "x=1"
    assert http["host"] == "grpc.test"
    assert http["scheme"] == "http"
    assert http["protocol"] == "HTTP/1.1"
    assert http["id"] == "rid-7"
    assert http["headers"]["authorization"] == "Bearer good"
    assert http["headers"][":method"] == "GET"
    assert check["source"]["address"]["socket_address"]["address"] == "127.0.0.1"
    assert int(check["destination"]["address"]["socket_address"]["port_value"]) == env.http_port


def test_grpc_denied_answers_with_the_services_response(env):
    r = h1(env, "grpc", "/secret", "GET", None, {"Authorization": "Bearer bad"})
    assert r.status == 403, r
    assert r.headers["x-denied-by"] == "ext-authz-server"
    assert r.body == b"denied by ext-authz-server for /secret"
    assert h1(env, "grpc", "/secret").status == 401


def test_grpc_with_the_body_over_http1_and_http2(env):
    r = h1(env, "grpc", "/b", "POST", b"please allow-me", {"Authorization": "Bearer body-ok"})
    assert r.status == 200, r
    assert json.loads(r.body)["body"] == "please allow-me"
    http = env.grpc.requests()[-1]["attributes"]["request"]["http"]
    assert http["body"] == "please allow-me"
    assert int(http["size"]) == 15
    assert http["headers"]["x-envoy-auth-partial-body"] == "false"
    code, ver, _, data = curl(env, "grpc", "/b", "POST", b"h2 allow-me", h2=True,
                              headers=["Authorization: Bearer body-ok"])
    assert (code, ver) == (200, "2"), data
    assert json.loads(data)["body"] == "h2 allow-me"
    http = env.grpc.requests()[-1]["attributes"]["request"]["http"]
    assert http["protocol"] == "HTTP/2"
    assert http["body"] == "h2 allow-me"
    code, _, _, _ = curl(env, "grpc", "/b", "POST", b"h2 no", h2=True, headers=["Authorization: Bearer body-ok"])
    assert code == 403
    # a body that is not UTF-8 goes as raw_body (a proto3 string must be UTF-8)
    r = h1(env, "grpc", "/b", "POST", b"\xffallow-me\xfe", {"Authorization": "Bearer body-ok"})
    assert r.status == 200, r
    assert "raw_body" in env.grpc.requests()[-1]["attributes"]["request"]["http"]


def test_grpc_service_down_or_slow_fails_closed(env):
    r = h1(env, "grpcdown", "/", "GET", None, {"Authorization": "Bearer good"})
    assert r.status == 403, r
    assert r.headers.get("x-gateway-reason") == "ext-auth-error"
    t0 = time.monotonic()
    r = h1(env, "grpcquick", "/", "GET", None, {"Authorization": "Bearer slow"})
    assert r.status == 403, r
    assert r.headers.get("x-gateway-reason") == "ext-auth-error"
    # The call carries grpc-timeout with the time left, so the service's own
    # deadline and the proxy's timer expire together: either answer ends it
    # (a loaded machine showed both), never a wait past the budget.
    assert b"no answer within 500 ms" in r.body or b"grpc-status 4" in r.body, r.body
    assert time.monotonic() - t0 < 2.5
    # the connection stays usable for the next call
    assert h1(env, "grpcquick", "/", "GET", None, {"Authorization": "Bearer good"}).status == 200


def test_grpc_many_calls_share_the_connection(env):
    results = []

    def one(i):
        results.append(h1(env, "grpc", f"/m{i}", "GET", None, {"Authorization": "Bearer good"}).status)
    threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * 20


def test_grpc_over_tls_verified_against_the_routes_ca(env):
    r = h1(env, "grpctls", "/t", "GET", None, {"Authorization": "Bearer good"})
    assert r.status == 200, r
    assert json.loads(r.body)["headers"]["x-auth-user"] == "alice"
    assert env.grpc_tls.requests()[-1]["attributes"]["request"]["http"]["path"] == "/t"


# ---- HTTPS to the HTTP service

def test_https_service_verified_against_the_routes_ca(env):
    r = h1(env, "https", "/s", "POST", b"tls allow-me")
    assert r.status == 200, r
    assert json.loads(r.body)["headers"]["x-auth-body-bytes"] == "12"
    assert h1(env, "https", "/s", "POST", b"tls nope").status == 403


def test_https_service_not_trusted_by_the_system_store_fails_closed(env):
    r = h1(env, "httpsuntrusted", "/s", "POST", b"tls allow-me")
    assert r.status == 403, r
    assert r.headers.get("x-gateway-reason") == "ext-auth-error"
    assert b"TLS to localhost" in r.body and b"certificate" in r.body, r.body
