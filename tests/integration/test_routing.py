"""Requests reach the backend their host and path select; no route is 404.

One stack (five echo backends, controller over a manifest directory, proxy)
serves a table of requests; each row names the backend that must answer and,
where a rewrite applies, the path that backend must see.
"""

import pytest

from conftest import curl, route_yaml, service_yaml, simple_route, temporary_stack

BACKENDS = ["echo-a", "echo-b", "echo-c", "echo-d", "echo-e"]


def ref(name):
    return [{"name": name, "port": 8080}]


def prefix(value):
    return {"path": {"type": "PathPrefix", "value": value}}


ROUTES = {
    "10-hosts.yaml": simple_route("host-a", "echo-a", "a.example.com")
    + "---\n" + simple_route("host-b", "echo-b", "b.example.com")
    + "---\n" + simple_route("wild", "echo-c", "*.wild.example.com"),
    "20-paths.yaml": route_yaml("paths", [
        {"matches": [{"path": {"type": "Exact", "value": "/exact"}}], "backendRefs": ref("echo-a")},
        {"matches": [prefix("/foo")], "backendRefs": ref("echo-b")},
        {"matches": [{"path": {"type": "RegularExpression", "value": "/items/[0-9]+"}}],
         "backendRefs": ref("echo-c")},
        {"matches": [prefix("/items")], "backendRefs": ref("echo-d")},
        {"matches": [{"path": {"type": "Exact", "value": "/items/7"}}],
         "backendRefs": ref("echo-e")},
        {"matches": [prefix("/strip")],
         "filters": {"urlRewrite": {"path": {"type": "ReplacePrefixMatch",
                                             "replacePrefixMatch": "/"}}},
         "backendRefs": ref("echo-e")},
    ], hostnames=["paths.example.com"]),
}

# (host, path, backend that must answer or None for 404, path the backend must see or None)
CASES = [
    # host routing, case-insensitive, port ignored
    ("a.example.com", "/", "echo-a", "/"),
    ("b.example.com", "/some/where?q=1", "echo-b", "/some/where?q=1"),
    ("A.Example.COM:8080", "/x", "echo-a", "/x"),
    # wildcard hostnames: any depth of subdomain, never the bare domain
    ("x.wild.example.com", "/", "echo-c", "/"),
    ("a.b.wild.example.com", "/", "echo-c", "/"),
    ("wild.example.com", "/", None, None),
    # Exact
    ("paths.example.com", "/exact", "echo-a", "/exact"),
    ("paths.example.com", "/exact/more", None, None),
    ("paths.example.com", "/exactly", None, None),
    # PathPrefix: whole segments only
    ("paths.example.com", "/foo", "echo-b", "/foo"),
    ("paths.example.com", "/foo/", "echo-b", "/foo/"),
    ("paths.example.com", "/foo/bar", "echo-b", "/foo/bar"),
    ("paths.example.com", "/foobar", None, None),
    # RegularExpression is a full match; Exact beats regex beats prefix
    ("paths.example.com", "/items/42", "echo-c", "/items/42"),
    ("paths.example.com", "/items/42/x", "echo-d", "/items/42/x"),
    ("paths.example.com", "/items/abc", "echo-d", "/items/abc"),
    ("paths.example.com", "/items/7", "echo-e", "/items/7"),
    # ReplacePrefixMatch strips the prefix
    ("paths.example.com", "/strip/x/y", "echo-e", "/x/y"),
    ("paths.example.com", "/strip", "echo-e", "/"),
    # no route
    ("paths.example.com", "/", None, None),
    ("unknown.example.com", "/", None, None),
]


@pytest.fixture(scope="module")
def routing():
    with temporary_stack() as s:
        for name in BACKENDS:
            e = s.echo(name)
            s.write(f"00-{name}.yaml", service_yaml(name, [(e.addr, e.port)]))
        for filename, text in ROUTES.items():
            s.write(filename, text)
        s.start()
        yield s


@pytest.mark.parametrize("host,path,backend,seen_path", CASES)
def test_route(routing, host, path, backend, seen_path):
    r = routing.proxy.get(path, host=host)
    if backend is None:
        assert r.status == 404, f"{host}{path}: expected 404, got {r}"
        return
    assert r.status == 200, f"{host}{path}: {r}"
    assert r.backend == backend, f"{host}{path}: {r}"
    assert r.json()["path"] == seen_path


@pytest.mark.parametrize("host,backend", [("a.example.com", "echo-a"), ("b.example.com", "echo-b")])
def test_host_routing_with_curl(routing, host, backend):
    r = curl(routing.proxy.http_port, "/hello", host=host)
    assert r.status == 200, r
    assert r.backend == backend
    # The proxy forwards the Host it routed on and says who the client was.
    headers = r.json()["headers"]
    assert headers["host"] == host
    assert headers.get("x-forwarded-for", "").endswith("127.0.0.1")


@pytest.mark.parametrize("host,path",
                         [("unknown.example.com", "/"), ("paths.example.com", "/foobar")])
def test_no_route_is_404_with_curl(routing, host, path):
    r = curl(routing.proxy.http_port, path, host=host)
    assert r.status == 404, r
    assert r.backend is None  # the gateway answered, not a backend


def test_request_body_is_forwarded(routing):
    body = b"x" * 100000
    r = routing.proxy.get("/upload", host="a.example.com", method="POST", body=body,
                          headers={"Content-Type": "application/octet-stream"})
    assert r.status == 200, r
    assert r.backend == "echo-a"
    assert r.json()["bodyBytes"] == len(body)
