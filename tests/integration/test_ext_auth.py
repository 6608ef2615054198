"""extAuth (issue 14) end to end against a real oauth2-proxy, paired with
Gantry the way ingress-nginx users pair it with auth-url: its /oauth2/auth
endpoint answers 202 for a valid session cookie and 401 otherwise.

oauth2-proxy is built from its Go module by hack/oauth2-proxy.sh
($GANTRY_OAUTH2_PROXY; hack/test.sh sets it, else this module builds it). It
runs with a provider configured but never contacted and an htpasswd file: a
session comes from its sign-in form (POST /oauth2/sign_in), no network.

- allowed with the cookie, X-Auth-Request-User / -Email copied upstream;
  401 (oauth2-proxy's own answer) without;
- a signin URL turns the 401 into a 302 with rd=<the original URL>;
- the service down: fail closed (403 by default, statusOnError) or open;
- a service that never answers: the answer comes within the timeout;
- a decision-cache hit does not call the service (its request log counts);
- gantry_access_decisions_total counts each decision;
- extAuth.grpc and withRequestBody through the controller, against
  hack/ext-authz-server (Envoy's gRPC ext_authz), and a bad grpc.address
  named in Accepted.
"""

import json
import os
import socket
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest

from conftest import (CONVERGE_TIMEOUT, HTTP_TIMEOUT, REPO, START_TIMEOUT, free_port, refusing_port,
                      route_yaml, service_yaml, tail, temporary_stack, wait_until)
from test_access_control import curl

USER, PASSWORD = "alice", "wonderland"


def oauth2_proxy_binary():
    path = os.environ.get("GANTRY_OAUTH2_PROXY")
    if not path:
        out = subprocess.run(["bash", str(REPO / "hack" / "oauth2-proxy.sh")], capture_output=True, text=True,
                             timeout=1800)
        assert out.returncode == 0, out.stderr
        path = out.stdout.strip().splitlines()[-1]
    assert Path(path).exists(), path
    return path


def listening(port):
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


class OAuth2Proxy:
    def __init__(self, stack):
        self.port = free_port()
        self.log = stack.workdir / "oauth2-proxy.log"
        htpasswd = stack.workdir / "users.htpasswd"
        line = subprocess.run(["htpasswd", "-nbB", USER, PASSWORD], capture_output=True, text=True,
                              check=True).stdout.strip()
        htpasswd.write_text(line + "\n")
        argv = [oauth2_proxy_binary(),
                f"--http-address=127.0.0.1:{self.port}",
                "--provider=google",  # configured, never contacted: sessions come from the htpasswd form
                "--client-id=gantry-test", "--client-secret=never-used",
                "--cookie-secret=0123456789abcdef0123456789abcdef",
                "--cookie-secure=false",
                "--email-domain=*",
                f"--htpasswd-file={htpasswd}",
                "--upstream=static://202",
                "--set-xauthrequest=true",
                "--skip-provider-button=false",
                "--redirect-url=http://app.test/oauth2/callback"]
        self.proc = stack.manager.spawn(argv, self.log)
        wait_until(lambda: listening(self.port), START_TIMEOUT, "oauth2-proxy to listen",
                   on_timeout=lambda: tail(self.log))

    def auth_calls(self):
        """Requests oauth2-proxy logged for /oauth2/auth (its request log, one line each)."""
        return self.log.read_text(errors="replace").count('"/oauth2/auth"')

    def sign_in(self):
        """The session cookie from the htpasswd sign-in form (name=value)."""
        body = urllib.parse.urlencode({"username": USER, "password": PASSWORD, "rd": "/"})
        out = subprocess.run(["curl", "-sS", "--max-time", str(HTTP_TIMEOUT), "-D", "-", "-o", "/dev/null",
                              "--data", body, f"http://127.0.0.1:{self.port}/oauth2/sign_in"],
                             capture_output=True, text=True, check=True)
        for line in out.stdout.splitlines():
            if line.lower().startswith("set-cookie:") and "_oauth2_proxy=" in line:
                return line.split(":", 1)[1].strip().split(";")[0]
        raise AssertionError(f"no session cookie from the sign-in form: {out.stdout!r}\n{tail(self.log)}")


def silent_listener():
    """A socket that takes connections (the kernel's backlog) and never answers."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    return s


@pytest.fixture(scope="module")
def env():
    with temporary_stack() as s:
        o2p = OAuth2Proxy(s)
        silent = silent_listener()
        echo = s.echo("echo")
        auth_url = f"http://127.0.0.1:{o2p.port}/oauth2/auth"
        copied = ["X-Auth-Request-User", "X-Auth-Request-Email"]

        def route(name, ext):
            return route_yaml(name, [{"filters": {"extAuth": ext}, "backendRefs": [{"name": "echo", "port": 8080}]}],
                              hostnames=[f"{name}.test"])

        # Envoy's gRPC ext_authz (hack/ext-authz-server; test_ext_authz.py has the rest)
        from test_ext_authz import ext_authz_server_binary
        grpc_port = free_port()
        s.manager.spawn([ext_authz_server_binary(), "--listen", f"127.0.0.1:{grpc_port}",
                         "--log", str(s.workdir / "checks.jsonl")], s.workdir / "ext-authz-server.log")
        wait_until(lambda: listening(grpc_port), START_TIMEOUT, "ext-authz-server to listen",
                   on_timeout=lambda: tail(s.workdir / "ext-authz-server.log"))
        s.write("svc.yaml", service_yaml("echo", [(echo.addr, echo.port)]))
        s.write("routes.yaml", "---\n".join([
            route("app", {"url": auth_url, "responseHeaders": copied}),
            route("browser", {"url": auth_url, "responseHeaders": copied,
                              "signinURL": f"http://127.0.0.1:{o2p.port}/oauth2/start"}),
            route("cached", {"url": auth_url, "responseHeaders": copied, "requestHeaders": ["Cookie"],
                             "cache": {"ttl": "1h"}}),
            route("down", {"url": f"http://127.0.0.1:{refusing_port()}/auth"}),
            route("down500", {"url": f"http://127.0.0.1:{refusing_port()}/auth", "statusOnError": 500}),
            route("open", {"url": f"http://127.0.0.1:{refusing_port()}/auth", "failOpen": True}),
            route("slow", {"url": f"http://127.0.0.1:{silent.getsockname()[1]}/auth", "timeout": "300ms"}),
            route("grpc", {"grpc": {"address": f"127.0.0.1:{grpc_port}", "timeout": "1s"},
                           "withRequestBody": {"maxBytes": "1Ki"}}),
        ]))
        # ingress-nginx users' pairing, unchanged: auth-url, auth-signin, auth-response-headers
        P = "nginx.ingress.kubernetes.io/"
        s.write("ingress.yaml", json.dumps({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "nginx-app", "namespace": "default", "annotations": {
                P + "auth-url": auth_url,
                P + "auth-signin": f"http://127.0.0.1:{o2p.port}/oauth2/start",
                P + "auth-response-headers": "X-Auth-Request-User, X-Auth-Request-Email"}},
            "spec": {"ingressClassName": "nginx", "rules": [{"host": "nginx.test", "http": {"paths": [{
                "path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": "echo", "port": {"number": 8080}}}}]}}]}}) + "\n")
        argv = s.controller.argv
        s.controller.argv = lambda: argv() + ["--ingress-nginx-compat", "on"]
        s.start()
        s.wait_for_backend("echo", host="open.test")
        s.o2p = o2p
        s.cookie = o2p.sign_in()
        yield s
        silent.close()


def get(env, host, path="/", headers=()):
    return curl(env.proxy.http_port, path, f"{host}.test", headers=list(headers))


def test_a_session_cookie_is_allowed_and_the_user_goes_upstream(env):
    a = get(env, "app", "/orders?x=1", [f"Cookie: {env.cookie}", "X-Auth-Request-User: mallory"])
    assert a.status == 200, a
    up = a.json()["headers"]
    assert up["x-auth-request-user"] == USER  # the service's value replaced the client's
    assert a.json()["path"] == "/orders?x=1"


def test_without_a_session_the_services_401_is_the_answer(env):
    a = get(env, "app", "/orders")
    assert a.status == 401, a
    assert b"alice" not in a.body
    # a forged or stale cookie is no better
    assert get(env, "app", "/", ["Cookie: _oauth2_proxy=forged"]).status == 401


def test_a_browser_is_sent_to_sign_in_with_the_original_url(env):
    a = get(env, "browser", "/cart?item=7")
    assert a.status == 302, a
    loc = urllib.parse.urlsplit(a.header("location"))
    assert loc.path == "/oauth2/start"
    assert urllib.parse.parse_qs(loc.query)["rd"] == ["http://browser.test/cart?item=7"]
    assert get(env, "browser", "/cart", [f"Cookie: {env.cookie}"]).status == 200


def test_ingress_nginx_auth_annotations(env):
    a = get(env, "nginx", "/shop", [f"Cookie: {env.cookie}"])
    assert a.status == 200, a
    assert a.json()["headers"]["x-auth-request-user"] == USER
    b = get(env, "nginx", "/shop?q=1")
    assert b.status == 302, b
    assert urllib.parse.parse_qs(urllib.parse.urlsplit(b.header("location")).query)["rd"] == \
        ["http://nginx.test/shop?q=1"]


def test_the_service_down_fails_closed_by_default(env):
    a = get(env, "down")
    assert a.status == 403, a
    assert a.header("x-gateway-reason") == "ext-auth-error"
    assert get(env, "down500").status == 500


def test_fail_open_lets_the_request_through(env):
    a = get(env, "open")
    assert a.status == 200, a
    assert "x-auth-request-user" not in a.json()["headers"]


def test_a_service_that_never_answers_is_bounded_by_the_timeout(env):
    t0 = time.monotonic()
    a = get(env, "slow")
    took = time.monotonic() - t0
    assert a.status == 403, a
    assert b"no answer within 300 ms" in a.body
    assert took < 5, took  # 300 ms timeout; generous bound for a loaded machine


def test_a_cache_hit_does_not_call_the_service(env):
    first = get(env, "cached", "/a", [f"Cookie: {env.cookie}"])
    assert first.status == 200, first
    wait_until(lambda: env.o2p.auth_calls() > 0, CONVERGE_TIMEOUT, "oauth2-proxy's request log")
    calls = env.o2p.auth_calls()
    for i in range(5):
        a = get(env, "cached", f"/b{i}", [f"Cookie: {env.cookie}"])
        assert a.status == 200, a
        assert a.json()["headers"]["x-auth-request-user"] == USER  # the remembered fields
    time.sleep(0.3)  # a call would have been logged by now
    assert env.o2p.auth_calls() == calls
    # a different cookie is a different key: refused by a real call
    assert get(env, "cached", "/c", ["Cookie: _oauth2_proxy=other"]).status == 401
    wait_until(lambda: env.o2p.auth_calls() == calls + 1, CONVERGE_TIMEOUT, "the uncached call")


def test_decisions_are_counted(env):
    def value(decision):
        body = subprocess.run(["curl", "-sS", f"http://127.0.0.1:{env.proxy.stats_port}/metrics"],
                              capture_output=True, text=True, check=True).stdout
        for line in body.splitlines():
            if line.startswith("gantry_access_decisions_total{") and 'filter="ext_auth"' in line \
                    and f'decision="{decision}"' in line:
                return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"no ext_auth {decision} sample")
    before = {d: value(d) for d in ("allowed", "denied", "error")}
    get(env, "app", "/", [f"Cookie: {env.cookie}"])
    get(env, "app", "/")
    get(env, "down")
    assert value("allowed") == before["allowed"] + 1
    assert value("denied") == before["denied"] + 1
    assert value("error") == before["error"] + 1


def test_a_bad_url_names_its_field_and_only_that_route_goes(env):
    env.write("bad.yaml", route_yaml("badauth", [
        {"filters": {"extAuth": {"url": "ftp://auth.example/check"}},
         "backendRefs": [{"name": "echo", "port": 8080}]}], hostnames=["badauth.test"]))

    def refused():
        c = env.controller.route_conditions("default", "badauth")
        return c and c["Accepted"]["status"] in ("False", False) and c["Accepted"]

    cond = wait_until(refused, CONVERGE_TIMEOUT, "badauth not Accepted", on_timeout=lambda: tail(env.controller.log))
    assert "spec.rules[0].filters.extAuth.url" in cond["message"], cond
    assert get(env, "badauth").status == 404
    assert get(env, "app", "/", [f"Cookie: {env.cookie}"]).status == 200


def test_grpc_ext_authz_through_the_controller(env):
    a = get(env, "grpc", "/g", ["Authorization: Bearer good"])
    assert a.status == 200, a
    assert a.json()["headers"]["x-auth-user"] == "alice"
    d = get(env, "grpc", "/g", ["Authorization: Bearer nope"])
    assert d.status == 403, d
    assert d.header("x-denied-by") == "ext-authz-server"
    b = curl(env.proxy.http_port, "/g", "grpc.test", headers=["Authorization: Bearer body-ok"],
             extra=["--data-binary", "allow-me please"])
    assert b.status == 200, b


def test_a_bad_grpc_address_names_its_field(env):
    env.write("badgrpc.yaml", route_yaml("badgrpc", [
        {"filters": {"extAuth": {"grpc": {"address": "authz-without-port"}}},
         "backendRefs": [{"name": "echo", "port": 8080}]}], hostnames=["badgrpc.test"]))

    def refused():
        c = env.controller.route_conditions("default", "badgrpc")
        return c and c["Accepted"]["status"] in ("False", False) and c["Accepted"]

    cond = wait_until(refused, CONVERGE_TIMEOUT, "badgrpc not Accepted", on_timeout=lambda: tail(env.controller.log))
    assert "spec.rules[0].filters.extAuth.grpc.address" in cond["message"], cond
    assert get(env, "badgrpc").status == 404
