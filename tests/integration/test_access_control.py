"""Access-control filters of GatewayRoute (issue 14) end to end: manifests in
the controller's directory, the real proxy, an echo backend, and curl as the
client.

- ipAllow / ipDeny: the client address is the one after --trusted-proxies
  (127.0.0.0/8 here, so a test chooses its client address with
  X-Forwarded-For); a bad CIDR names its field in the Accepted condition and
  only that route goes away.
- apiKey: consumer Secrets in the manifest directory, key in a header or the
  query (dropped before forwarding), consumer header upstream, 401/403, a
  rate limit per consumer, a rotated key, nothing of a key in /config_dump.
- basicAuth: an htpasswd Secret written by htpasswd(1) (bcrypt, SHA-256 and
  SHA-512 crypt, MD5 and plain lines refused and named in ResolvedRefs).
"""

import hashlib
import json
import subprocess

import pytest

from conftest import (CONVERGE_TIMEOUT, HTTP_TIMEOUT, route_yaml, service_yaml, tail, temporary_stack,
                      wait_until)


class Answer:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # lower-cased name -> [values]
        self.body = body

    def header(self, name):
        v = self.headers.get(name.lower())
        return v[0] if v else None

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"Answer({self.status}, {self.headers}, {self.body[:200]!r})"


def curl(port, path, host, headers=(), extra=()):
    """One request with curl; the status, the response's header fields and body."""
    argv = ["curl", "-sS", "--max-time", str(HTTP_TIMEOUT), "-D", "-", "-o", "-", "-H", f"Host: {host}"]
    for h in headers:
        argv += ["-H", h]
    argv += list(extra) + [f"http://127.0.0.1:{port}{path}"]
    out = subprocess.run(argv, capture_output=True, timeout=HTTP_TIMEOUT + 5)
    if out.returncode != 0:
        raise OSError(f"curl failed ({out.returncode}): {out.stderr.decode(errors='replace').strip()}")
    head, _, body = out.stdout.partition(b"\r\n\r\n")
    lines = head.decode(errors="replace").split("\r\n")
    status = int(lines[0].split()[1])
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        fields.setdefault(name.strip().lower(), []).append(value.strip())
    return Answer(status, fields, body)


LABEL = "gantry.dev/api-consumer"


def consumer_secret(name, key, consumer, label="shop"):
    data = {"key": key}
    if consumer is not None:
        data["consumer"] = consumer
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "namespace": "default", "labels": {LABEL: label}},
            "stringData": data}


def htpasswd_line(flag, user, password):
    """One line written by Apache's htpasswd(1): -B bcrypt, -2 SHA-256, -5 SHA-512 crypt, -m MD5."""
    out = subprocess.run(["htpasswd", "-nb" + flag, user, password], capture_output=True, text=True, check=True)
    return out.stdout.strip()


@pytest.fixture(scope="module")
def env():
    with temporary_stack() as s:
        echo = s.echo("echo")
        s.proxy.extra_args += ["--trusted-proxies", "127.0.0.0/8"]
        s.write("svc.yaml", service_yaml("echo", [(echo.addr, echo.port)]))
        s.write("ip.yaml", route_yaml("ip", [
            {"matches": [{"path": {"type": "PathPrefix", "value": "/allow"}}],
             "filters": {"ipAllow": ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"]},
             "backendRefs": [{"name": "echo", "port": 8080}]},
            {"matches": [{"path": {"type": "PathPrefix", "value": "/deny"}}],
             "filters": {"ipDeny": ["10.1.0.0/16", "2001:db8:bad::/48"]},
             "backendRefs": [{"name": "echo", "port": 8080}]},
            {"matches": [{"path": {"type": "PathPrefix", "value": "/both"}}],
             "filters": {"ipAllow": ["10.0.0.0/8"], "ipDeny": ["10.9.0.0/16"]},
             "backendRefs": [{"name": "echo", "port": 8080}]},
        ], hostnames=["ip.test"]))
        s.write("keys.yaml", "---\n".join(json.dumps(d) + "\n" for d in [
            consumer_secret("alice-key", "alice-0123456789", "alice"),
            consumer_secret("bob-key", "bob-9876543210", None),
            consumer_secret("other", "other-key-0000", "eve", label="other"),
        ]) + "---\n" + route_yaml("keys", [
            {"matches": [{"path": {"type": "PathPrefix", "value": "/strict"}}],
             "filters": {"apiKey": {"secretSelector": {"matchLabels": {LABEL: "shop"}}, "header": "X-Key",
                                    "unknownKeyStatus": 403}},
             "backendRefs": [{"name": "echo", "port": 8080}]},
            {"matches": [{"path": {"type": "PathPrefix", "value": "/limited"}}],
             "filters": {"apiKey": {"secretSelector": {"matchLabels": {LABEL: "shop"}}},
                         "rateLimit": {"requests": 2, "interval": "1h", "key": "Consumer"}},
             "backendRefs": [{"name": "echo", "port": 8080}]},
            {"filters": {"apiKey": {"secretSelector": {"matchLabels": {LABEL: "shop"}}, "header": "X-API-Key",
                                    "queryParam": "apikey"}},
             "backendRefs": [{"name": "echo", "port": 8080}]},
        ], hostnames=["keys.test"]))
        lines = [htpasswd_line("B", "alice", "open sesame"), htpasswd_line("2", "carol", "s3cret:with:colons"),
                 htpasswd_line("5", "dave", "pässword"), htpasswd_line("m", "mallory", "md5-password"),
                 "plain:plain-password"]
        s.write("basic.yaml", json.dumps({"apiVersion": "v1", "kind": "Secret",
                                          "metadata": {"name": "staff", "namespace": "default"},
                                          "stringData": {"auth": "\n".join(lines) + "\n"}}) + "\n---\n" +
                route_yaml("basic", [{"filters": {"basicAuth": {"secretRef": {"name": "staff"}, "realm": "Staff"}},
                                      "backendRefs": [{"name": "echo", "port": 8080}]}], hostnames=["basic.test"]))
        s.start()
        s.wait_for_backend("echo", host="ip.test", path="/deny")
        yield s


def from_ip(env, path, ip, host="ip.test"):
    return curl(env.proxy.http_port, path, host, headers=[f"X-Forwarded-For: {ip}"]).status


@pytest.mark.parametrize("path,ip,want", [
    ("/allow", "10.2.3.4", 200),
    ("/allow", "192.0.2.7", 200),
    ("/allow", "192.0.2.8", 403),
    ("/allow", "2001:db8::1", 200),
    ("/allow", "2001:db9::1", 403),
    ("/allow", "172.16.0.1", 403),
    ("/deny", "10.1.200.1", 403),
    ("/deny", "10.2.0.1", 200),
    ("/deny", "2001:db8:bad::9", 403),
    ("/deny", "2001:db8:900d::9", 200),
    ("/both", "10.9.1.1", 403),   # inside the allow list, but denied
    ("/both", "10.8.1.1", 200),
    ("/both", "11.0.0.1", 403),
])
def test_ip_lists_judge_the_client_after_trusted_proxies(env, path, ip, want):
    assert from_ip(env, path, ip) == want


def test_ip_lists_judge_the_peer_without_forwarded_for(env):
    # The peer is 127.0.0.1: outside /allow's list, not in /deny's.
    assert curl(env.proxy.http_port, "/allow", "ip.test").status == 403
    assert curl(env.proxy.http_port, "/deny", "ip.test").status == 200


def test_refusal_is_403_with_a_body(env):
    a = curl(env.proxy.http_port, "/allow/x", "ip.test", headers=["X-Forwarded-For: 172.16.0.1"])
    assert a.status == 403
    assert b"client address not allowed" in a.body


def test_a_bad_cidr_names_its_field_and_only_that_route_goes(env):
    env.write("bad.yaml", route_yaml("badip", [
        {"filters": {"ipAllow": ["10.0.0.0/8", "10.0.0.0/40"]},
         "backendRefs": [{"name": "echo", "port": 8080}]}], hostnames=["badip.test"]))

    def refused():
        c = env.controller.route_conditions("default", "badip")
        return c and c["Accepted"]["status"] in ("False", False) and c["Accepted"]

    cond = wait_until(refused, CONVERGE_TIMEOUT, "badip not Accepted", on_timeout=lambda: tail(env.controller.log))
    assert "spec.rules[0].filters.ipAllow[1]" in cond["message"], cond
    assert curl(env.proxy.http_port, "/", "badip.test").status == 404
    assert from_ip(env, "/allow", "10.2.3.4") == 200


# ------------------------------------------------------------------ apiKey

def keyed(env, path="/", headers=()):
    return curl(env.proxy.http_port, path, "keys.test", headers=list(headers))


def test_api_key_in_a_header_names_the_consumer_upstream(env):
    a = keyed(env, "/", ["X-API-Key: alice-0123456789", "X-Consumer: mallory"])
    assert a.status == 200, a
    echo = a.json()
    assert echo["headers"]["x-consumer"] == "alice"
    assert "x-api-key" not in echo["headers"]
    # bob's Secret has no consumer: its name is the Secret's
    assert keyed(env, "/", ["X-API-Key: bob-9876543210"]).json()["headers"]["x-consumer"] == "bob-key"


def test_api_key_in_the_query_is_dropped_before_forwarding(env):
    a = keyed(env, "/list?page=2&apikey=alice-0123456789&sort=asc")
    assert a.status == 200, a
    assert a.json()["path"] == "/list?page=2&sort=asc"
    assert a.json()["headers"]["x-consumer"] == "alice"
    assert keyed(env, "/x?apikey=alice%2D0123456789").json()["path"] == "/x"  # percent-encoded key


def test_missing_and_unknown_keys(env):
    a = keyed(env, "/")
    assert a.status == 401 and a.header("www-authenticate") == "ApiKey"
    assert keyed(env, "/", ["X-API-Key: alice-012345678"]).status == 401
    assert keyed(env, "/", ["X-API-Key: other-key-0000"]).status == 401  # a Secret without the label
    assert keyed(env, "/strict", ["X-Key: wrong"]).status == 403
    assert keyed(env, "/strict").status == 401
    assert keyed(env, "/strict", ["X-Key: alice-0123456789"]).status == 200


def test_rate_limit_per_consumer(env):
    alice = [keyed(env, "/limited", ["X-API-Key: alice-0123456789"]).status for _ in range(3)]
    assert alice == [200, 200, 429]
    assert keyed(env, "/limited", ["X-API-Key: bob-9876543210"]).status == 200
    # unauthenticated requests are refused before they count
    assert keyed(env, "/limited").status == 401


def test_config_dump_has_no_key_nor_digest(env):
    dump = json.dumps(env.proxy.config_dump())
    assert "[redacted]" in dump
    for key in (b"alice-0123456789", b"bob-9876543210"):
        assert key.decode() not in dump
        assert hashlib.sha256(key).hexdigest() not in dump


def test_a_rotated_key_replaces_the_old_one(env):
    env.write("rotated.yaml", json.dumps(consumer_secret("carl-key", "carl-old-key-1", "carl")) + "\n")
    wait_until(lambda: keyed(env, "/", ["X-API-Key: carl-old-key-1"]).status == 200, CONVERGE_TIMEOUT, "carl's key")
    env.write("rotated.yaml", json.dumps(consumer_secret("carl-key", "carl-new-key-2", "carl")) + "\n")
    wait_until(lambda: keyed(env, "/", ["X-API-Key: carl-new-key-2"]).status == 200, CONVERGE_TIMEOUT, "the new key")
    assert keyed(env, "/", ["X-API-Key: carl-old-key-1"]).status == 401


# ------------------------------------------------------------------ basicAuth

def basic(env, user=None, path="/"):
    extra = ["-u", user] if user else []
    return curl(env.proxy.http_port, path, "basic.test", extra=extra)


@pytest.mark.parametrize("user,password", [("alice", "open sesame"),          # bcrypt
                                           ("carol", "s3cret:with:colons"),   # SHA-256 crypt
                                           ("dave", "pässword")])             # SHA-512 crypt
def test_basic_auth_each_accepted_scheme(env, user, password):
    a = basic(env, f"{user}:{password}")
    assert a.status == 200, a
    assert a.json()["headers"]["x-consumer"] == user
    assert "authorization" not in a.json()["headers"]
    assert basic(env, f"{user}:{password}x").status == 401


def test_basic_auth_challenge_and_refused_schemes(env):
    a = basic(env)
    assert a.status == 401
    assert a.header("www-authenticate") == 'Basic realm="Staff", charset="UTF-8"'
    assert basic(env, "mallory:md5-password").status == 401
    assert basic(env, "plain:plain-password").status == 401
    assert basic(env, "nobody:open sesame").status == 401
    cond = env.controller.route_conditions("default", "basic")["ResolvedRefs"]
    assert cond["status"] in ("False", False) and cond["reason"] == "InvalidSecret", cond
    assert 'line 4: user "mallory": MD5 ($apr1$) hashes are refused' in cond["message"]
    assert 'line 5: user "plain": plain-text' in cond["message"]
    assert "plain-password" not in cond["message"]
    # the hashes are not in /config_dump either
    assert "$2y$" not in json.dumps(env.proxy.config_dump())
