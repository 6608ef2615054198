"""ingress-nginx limit-connections, default-backend and custom-http-errors
(docs/migrating-from-ingress-nginx.md), and the GatewayRoute filters they map
to (connectionLimit, defaultBackend; docs/policies.md), through a real proxy,
a real controller in standalone mode (--source dir: with
--ingress-nginx-compat) and real echo backends:

- limit-connections: requests in progress per client IP; the one over the
  limit gets ingress-nginx's 503, other clients (another loopback source
  address) and limit-whitelist's are not counted, and the places come back
  when requests end, answered or aborted by the client (HTTP/1.1 close,
  HTTP/2 RST_STREAM); HTTP/2 streams count one each;
- custom-http-errors: an upstream answer with a listed code is replaced by
  the default backend's answer (its status, its body; the upstream's body never
  reaches the client), which got path "/" with the query, the client's method
  and body, and X-Code, X-Format, X-Original-URI, X-Namespace, X-Ingress-Name,
  X-Service-Name, X-Service-Port, X-Request-ID (the echo backend shows them);
  codes not listed pass untouched; HEAD and HTTP/2 clients too;
- default-backend alone: it answers while the Service has no endpoint;
- the migration report's verdicts over the same manifests.
"""

import concurrent.futures
import http.client
import json
import socket
import subprocess

import pytest

from conftest import (CONVERGE_TIMEOUT, HTTP_TIMEOUT, Controller, binary, refusing_port, route_yaml, service_yaml,
                      tail, temporary_stack, wait_until)

P = "nginx.ingress.kubernetes.io/"
OTHER_CLIENT = "127.0.0.2"  # another client address (loopback is a /8)
EXEMPT_CLIENT = "127.0.0.3"


def ingress(name, host, svc, annotations):
    return json.dumps({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": name, "namespace": "default",
                     "annotations": {P + k: v for k, v in annotations.items()}},
        "spec": {"ingressClassName": "nginx",
                 "rules": [{"host": host, "http": {"paths": [{
                     "path": "/", "pathType": "Prefix",
                     "backend": {"service": {"name": svc, "port": {"number": 8080}}}}]}}]}}) + "\n"


class NginxController(Controller):
    def argv(self):
        return super().argv() + ["--ingress-nginx-compat", "on"]


def request(port, path, host, method="GET", headers=None, body=None, source=None, timeout=HTTP_TIMEOUT):
    """(status, lower-cased headers, body bytes) of one request on a fresh connection from `source`."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout,
                                      source_address=(source, 0) if source else None)
    try:
        h = dict(headers or {})
        h["Host"] = host
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def env():
    with temporary_stack() as s:
        app = s.echo("app")
        errors = s.echo("errors")
        s.controller = NginxController(s.manager, s.workdir, s.manifests, s.socket_path)
        s.write("services.yaml", "\n---\n".join([
            service_yaml("app", [(app.addr, app.port)]),
            service_yaml("errors", [(errors.addr, errors.port)]),
            service_yaml("empty", []),
            service_yaml("dead", [("127.0.0.1", refusing_port())])]))
        s.write("class.yaml", json.dumps({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
                                          "metadata": {"name": "nginx"},
                                          "spec": {"controller": "k8s.io/ingress-nginx"}}) + "\n")
        s.write("limited.yaml", ingress("limited", "limit.nx.test", "app", {
            "limit-connections": "2", "limit-whitelist": f"{EXEMPT_CLIENT}/32"}))
        s.write("pages.yaml", ingress("pages", "pages.nx.test", "app", {
            "default-backend": "errors", "custom-http-errors": "404,503"}))
        s.write("fallback.yaml", ingress("fallback", "fallback.nx.test", "empty", {"default-backend": "errors"}))
        s.write("down.yaml", ingress("down", "down.nx.test", "dead", {
            "default-backend": "errors", "custom-http-errors": "502,504"}))
        s.write("nofallback.yaml", ingress("nofallback", "none.nx.test", "empty", {}))
        s.write("route.yaml", route_yaml("gr", [{
            "filters": {"connectionLimit": {"perClientIP": 1, "statusCode": 429},
                        "defaultBackend": {"backendRef": {"name": "errors", "port": 8080},
                                           "interceptStatuses": [404]}},
            "backendRefs": [{"name": "app", "port": 8080}]}], hostnames=["gr.nx.test"]))
        s.start()
        for host in ["limit.nx.test", "pages.nx.test", "gr.nx.test"]:
            s.wait_for_backend("app", host=host)
        yield s


SLOW_MS = 3000  # long enough for the checks made while they are in progress, on a loaded machine


def slow(env, host, ms=SLOW_MS, source=None):
    return request(env.proxy.http_port, f"/delay/{ms}", host, source=source, timeout=ms / 1000 + 5)[0]


def in_flight(pool, env, host, n, ms=SLOW_MS, source=None):
    """Starts n slow requests; returns their futures (the backend holds them for `ms`)."""
    return [pool.submit(slow, env, host, ms, source) for _ in range(n)]


def refused(port, host, status=503):
    """Polls (the slow requests may still be on their way in) until a request is refused; its answer."""
    last = {}

    def check():
        last["r"] = request(port, "/", host)
        return last["r"][0] == status
    wait_until(check, 2.0, f"a request to {host} refused with {status}", interval=0.05,
               on_timeout=lambda: f"last: {last.get('r')}")
    return last["r"]


def held_and_refused(pool, env, host, n, status=503):
    """Starts n slow requests, then polls until one more request is refused; (the slow
    requests' futures, the refused answer). A probe can reach the proxy before a slow
    request and hold the place while it arrives: that slow request is then the refused
    one, and the probes keep getting through. The round starts again then (at most 5)."""
    port = env.proxy.http_port
    for _ in range(5):
        held = in_flight(pool, env, host, n)
        try:
            return held, refused(port, host, status)
        except pytest.fail.Exception:
            if status not in [f.result() for f in held]:
                raise  # not the race: the limit did not hold
    pytest.fail(f"a probe won the race against the slow requests to {host} five times")


def test_limit_connections_refuses_the_one_over_the_limit_per_client(env):
    port = env.proxy.http_port
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        held, (status, headers, body) = held_and_refused(pool, env, "limit.nx.test", 2)  # limit-conn-status-code
        assert headers.get("x-gateway-reason") == "client-connection-limit"
        # Another client, and a whitelisted one, are not counted against it.
        assert request(port, "/", "limit.nx.test", source=OTHER_CLIENT)[0] == 200
        assert request(port, "/", "limit.nx.test", source=EXEMPT_CLIENT)[0] == 200
        # Another Ingress is another zone.
        assert request(port, "/status/200", "pages.nx.test")[0] == 200
        assert [f.result() for f in held] == [200, 200]
    # Answered: the places are back.
    assert request(port, "/", "limit.nx.test")[0] == 200


def test_limit_connections_places_come_back_after_client_aborts(env):
    port = env.proxy.http_port
    for _ in range(5):  # a probe that reaches the proxy first wins a place (see held_and_refused)
        socks = []
        for _ in range(2):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"GET /delay/3000 HTTP/1.1\r\nHost: limit.nx.test\r\n\r\n")
            socks.append(s)
        try:
            refused(port, "limit.nx.test")
            break
        except pytest.fail.Exception:
            answers = [s.recv(64) for s in socks]  # a refused one at once, the others after the delay
            for s in socks:
                s.close()
            if not any(b" 503 " in a for a in answers):
                raise
    else:
        pytest.fail("a probe won the race against the slow requests five times")
    for s in socks:
        s.close()  # the clients give up before the answer
    # The exchanges end (at the latest when the backend answers and the write fails): the count is released.
    # Both places: two requests at once must both get through (one free place lets a single probe
    # through while the other aborted exchange may still be ending).
    def both_free():
        with concurrent.futures.ThreadPoolExecutor(2) as two:
            futures = [two.submit(request, port, "/delay/300", "limit.nx.test") for _ in range(2)]
            return [f.result()[0] for f in futures] == [200, 200]
    wait_until(both_free, CONVERGE_TIMEOUT, "the aborted requests' places to come back",
               on_timeout=lambda: tail(env.proxy.log))
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        held, _ = held_and_refused(pool, env, "limit.nx.test", 2)  # both places are taken again: nothing leaked
        assert [f.result() for f in held] == [200, 200]


def curl_h2(env, urls, extra=()):
    """curl over h2c with prior knowledge, the URLs as parallel streams of one connection:
    the status of each, in order."""
    argv = ["curl", "-sS", "--http2-prior-knowledge", "--max-time", "10", "-H", "Host: limit.nx.test",
            "-Z", "--parallel-immediate", "--parallel-max", "10", *extra]
    for u in urls:
        argv += ["-o", "/dev/null", "-w", "%{url} %{http_code}\\n", u]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    codes = {}
    for line in out.stdout.splitlines():
        url, _, code = line.rpartition(" ")
        codes[url] = int(code)
    return [codes.get(u) for u in urls]


def test_limit_connections_counts_http2_streams(env):
    base = f"http://127.0.0.1:{env.proxy.http_port}"
    urls = [f"{base}/delay/{SLOW_MS + i}" for i in range(3)]
    codes = curl_h2(env, urls)
    assert sorted(codes) == [200, 200, 503], codes  # three streams of one connection: one over the limit
    assert curl_h2(env, [f"{base}/status/200"]) == [200]


def test_custom_http_errors_are_answered_by_the_default_backend(env):
    port = env.proxy.http_port
    status, headers, body = request(port, "/status/404?lang=en", "pages.nx.test",
                                    headers={"Accept": "text/html", "X-Request-ID": "req-abc-1"})
    assert status == 200  # error_page 404 = @custom_...: the default backend's status
    got = json.loads(body)
    assert got["name"] == "errors", got  # the upstream's own body never reaches the client
    assert got["method"] == "GET" and got["path"] == "/?lang=en"
    h = got["headers"]
    assert h["x-code"] == "404"
    assert h["x-format"] == "text/html"
    assert h["x-original-uri"] == "/status/404?lang=en"
    assert h["x-namespace"] == "default"
    assert h["x-ingress-name"] == "pages"
    assert h["x-service-name"] == "app"
    assert h["x-service-port"] == "8080"
    assert h["x-request-id"] == "req-abc-1" == headers.get("x-request-id")
    assert h["host"] == "pages.nx.test"
    assert h["x-forwarded-for"] == "127.0.0.1"

    status, _, body = request(port, "/status/503", "pages.nx.test")
    got = json.loads(body)
    assert status == 200 and got["name"] == "errors" and got["headers"]["x-code"] == "503"
    assert "x-format" not in got["headers"]  # no Accept: nginx sends no empty field


def test_the_gateways_own_502_is_answered_by_the_default_backend(env):
    # The upstream refuses connections: nginx's error_page catches its own 502 too.
    port = env.proxy.http_port
    wait_until(lambda: request(port, "/x", "down.nx.test")[0] == 200, CONVERGE_TIMEOUT,
               "down.nx.test answered by the default backend", on_timeout=lambda: tail(env.proxy.log))
    status, _, body = request(port, "/x?y=2", "down.nx.test")
    got = json.loads(body)
    assert got["name"] == "errors" and got["path"] == "/?y=2"
    assert got["headers"]["x-code"] == "502" and got["headers"]["x-service-name"] == "dead"


def test_codes_not_listed_pass_untouched(env):
    port = env.proxy.http_port
    for code in [500, 502, 403, 200]:
        status, _, body = request(port, f"/status/{code}", "pages.nx.test")
        assert status == code and json.loads(body)["name"] == "app", (code, body)


def test_custom_http_errors_head_post_and_http2(env):
    port = env.proxy.http_port
    status, headers, body = request(port, "/status/404", "pages.nx.test", method="HEAD")
    assert status == 200 and body == b""
    # A request with a body: the default backend gets the same method and body.
    status, _, body = request(port, "/status/404", "pages.nx.test", method="POST", body=b"x" * 1000,
                              headers={"Content-Type": "text/plain"})
    got = json.loads(body)
    assert status == 200 and got["name"] == "errors"
    assert got["method"] == "POST" and got["bodyBytes"] == 1000 and got["headers"]["x-code"] == "404"
    # An HTTP/2 client.
    out = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "--max-time", "5", "-H", "Host: pages.nx.test",
                          "-w", "\n%{http_code} %{http_version}",
                          f"http://127.0.0.1:{port}/status/404"], capture_output=True, text=True, timeout=15)
    body, _, tailline = out.stdout.rpartition("\n")
    assert tailline == "200 2", out
    got = json.loads(body)
    assert got["name"] == "errors" and got["headers"]["x-code"] == "404"


def test_default_backend_answers_when_the_service_has_no_endpoints(env):
    port = env.proxy.http_port
    wait_until(lambda: request(port, "/some/page?q=1", "fallback.nx.test")[0] == 200, CONVERGE_TIMEOUT,
               "fallback.nx.test answered by the default backend", on_timeout=lambda: tail(env.controller.log))
    status, _, body = request(port, "/some/page?q=1", "fallback.nx.test")
    got = json.loads(body)
    assert got["name"] == "errors" and got["path"] == "/some/page?q=1"  # the request as it came
    assert "x-code" not in got["headers"]
    # Without default-backend: 503, as ingress-nginx answers.
    assert request(port, "/", "none.nx.test")[0] == 503


def test_gateway_route_filters(env):
    port = env.proxy.http_port
    status, _, body = request(port, "/status/404", "gr.nx.test")
    got = json.loads(body)
    assert status == 200 and got["name"] == "errors"
    h = got["headers"]
    assert (h["x-code"], h["x-ingress-name"], h["x-service-name"], h["x-service-port"]) == \
        ("404", "gr", "app", "8080")
    assert request(port, "/status/503", "gr.nx.test")[0] == 503  # not listed
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        held, (status, headers, _) = held_and_refused(pool, env, "gr.nx.test", 1, 429)
        assert headers.get("x-gateway-reason") == "client-connection-limit"
        assert held[0].result() == 200


def test_migrate_report(env):
    argv = [binary("gantry-controller"), "migrate", "--source", f"dir:{env.manifests}", "--json",
            "--fail-on", "never"]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    rep = {i["name"]: {a["name"]: a["support"] for a in i["annotations"]} for i in json.loads(r.stdout)["ingresses"]}
    assert rep["limited"] == {P + "limit-connections": "served", P + "limit-whitelist": "served"}
    assert rep["pages"] == {P + "default-backend": "served", P + "custom-http-errors": "partial"}
    assert rep["fallback"] == {P + "default-backend": "served"}
