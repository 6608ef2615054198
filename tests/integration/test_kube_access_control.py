"""apiKey and basicAuth Secrets through the real kube-apiserver + etcd, the
controller in kube mode and the real proxy, with curl as the client
(docs/policies.md, "API keys" and "Basic authentication").

- apiKey: one Secret per consumer, selected by labels. The controller
  watches exactly that label selector (no other Opaque Secret is held), and
  follows the Secrets: a new consumer's Secret is served, a rotated key
  replaces the old one, a Secret that loses its label (or is deleted) stops
  working. A Secret without `key` is named in ResolvedRefs. /config_dump holds
  no key, not even its digest.
- basicAuth: an htpasswd Secret (written by htpasswd(1)) referenced by name;
  MD5 and plain-text lines are refused and named in ResolvedRefs while the
  bcrypt and SHA-512 users are served; a changed Secret is applied.
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "kube"))

from conftest import CONVERGE_TIMEOUT, Proxy, get_json, new_manager, tail, wait_until  # noqa: E402
from kubeapi import ControlPlane, KubeController, TestHosts, endpoint_slice, gateway_route, service  # noqa: E402

LABEL = "gantry.dev/api-consumer"


def consumer_secret(name, key, consumer=None, labels=None):
    data = {"key": key}
    if consumer is not None:
        data["consumer"] = consumer
    return {"kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "namespace": "default", "labels": labels if labels is not None else {LABEL: "shop"}},
            "stringData": data}


def htpasswd_line(flag, user, password):
    out = subprocess.run(["htpasswd", "-nb" + flag, user, password], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def curl(port, path, host, headers=(), user=None):
    """(status, header fields, body) through the proxy."""
    argv = ["curl", "-sS", "-i", "--max-time", "5", "-H", f"Host: {host}"]
    for h in headers:
        argv += ["-H", h]
    if user:
        argv += ["-u", user]
    argv.append(f"http://127.0.0.1:{port}{path}")
    out = subprocess.run(argv, capture_output=True, check=True).stdout.decode(errors="replace")
    head, _, body = out.partition("\r\n\r\n")
    lines = head.split("\r\n")
    fields = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        fields.setdefault(k.strip().lower(), v.strip())
    return int(lines[0].split()[1]), fields, body


@pytest.fixture(scope="module")
def env():
    manager = new_manager()
    with tempfile.TemporaryDirectory(prefix="gantry-ac-") as d:
        workdir = Path(d)
        cp = ControlPlane(workdir / "cp")
        hosts = None
        try:
            cp.start()
            cp.install_crd()
            hosts = TestHosts(manager, workdir)
            hosts.echo("main")
            cp.apply(service("main"))
            cp.apply(endpoint_slice("main", [hosts.echos["main"]]))
            socket = workdir / "control.sock"
            proxy = Proxy(manager, workdir, socket).start()
            ctl = KubeController(manager, workdir, cp.kubeconfig, socket).start()
            ctl.wait_ready()
            yield cp, proxy, ctl
        finally:
            manager.cleanup()
            if hosts:
                hosts.close()
            cp.stop()


def converge(check, what, ctl):
    return wait_until(check, CONVERGE_TIMEOUT, what, on_timeout=lambda: tail(ctl.log))


def test_api_key_secrets_follow_the_cluster(env):
    cp, proxy, ctl = env
    port = proxy.http_port
    cp.apply(consumer_secret("alice-key", "alice-0123456789abcdef", "alice"))
    cp.apply(consumer_secret("unrelated", "not-a-consumer", "eve", labels={"team": "other"}))
    cp.apply(gateway_route("keys", ["keys.kube.test"], [{
        "filters": {"apiKey": {"secretSelector": {"matchLabels": {LABEL: "shop"}}, "queryParam": "apikey"}},
        "backendRefs": [{"name": "main", "port": 8080}]}]))
    ok = lambda key: curl(port, "/", "keys.kube.test", [f"X-API-Key: {key}"])[0] == 200  # noqa: E731
    converge(lambda: ok("alice-0123456789abcdef"), "alice's key to be served", ctl)

    status, _, body = curl(port, "/p?apikey=alice-0123456789abcdef&x=1", "keys.kube.test",
                           ["X-Consumer: mallory"])
    echo = json.loads(body)
    assert status == 200 and echo["path"] == "/p?x=1"
    assert echo["headers"].get("x-consumer") == "alice"
    assert curl(port, "/", "keys.kube.test")[0] == 401
    assert curl(port, "/", "keys.kube.test", ["X-API-Key: not-a-consumer"])[0] == 401  # unlabelled Secret

    # A second consumer arrives; then alice's key is rotated.
    cp.apply(consumer_secret("bob-key", "bob-fedcba9876543210"))  # consumer defaults to the Secret's name
    converge(lambda: ok("bob-fedcba9876543210"), "bob's key", ctl)
    _, _, body = curl(port, "/", "keys.kube.test", ["X-API-Key: bob-fedcba9876543210"])
    assert json.loads(body)["headers"]["x-consumer"] == "bob-key"
    cp.apply(consumer_secret("alice-key", "alice-rotated-000000000", "alice"))
    converge(lambda: ok("alice-rotated-000000000"), "alice's new key", ctl)
    assert not ok("alice-0123456789abcdef")

    # Bob's Secret loses its label: his key stops working.
    cp.patch_json("Secret", "bob-key", [{"op": "replace", "path": "/metadata/labels", "value": {"team": "x"}}])
    converge(lambda: curl(port, "/", "keys.kube.test", ["X-API-Key: bob-fedcba9876543210"])[0] == 401,
             "bob's unlabelled key to be refused", ctl)

    # A consumer Secret without `key` is named in ResolvedRefs; the others keep working.
    cp.apply({"kind": "Secret", "type": "Opaque",
              "metadata": {"name": "broken", "namespace": "default", "labels": {LABEL: "shop"}},
              "stringData": {"consumer": "carol"}})

    def named():
        c = cp.route_conditions("keys").get("ResolvedRefs", {})
        return c.get("status") == "False" and "Secret default/broken has no key" in c.get("message", "") and c
    cond = converge(named, "ResolvedRefs to name the broken Secret", ctl)
    assert cond["reason"] == "InvalidSecret"
    assert ok("alice-rotated-000000000")

    # Neither the keys nor their digests leave the proxy through /config_dump.
    dump = json.dumps(get_json(proxy.admin_port, "/config_dump"))
    assert "alice-rotated" not in dump and "[redacted]" in dump
    import hashlib
    assert hashlib.sha256(b"alice-rotated-000000000").hexdigest() not in dump

    # Only the consumer Secrets were held: the unrelated Opaque Secret never reached the controller's cache.
    cp.delete("Secret", "alice-key")
    converge(lambda: curl(port, "/", "keys.kube.test", ["X-API-Key: alice-rotated-000000000"])[0] == 401,
             "a deleted consumer to be refused", ctl)


def test_unknown_key_status_403(env):
    cp, proxy, ctl = env
    cp.apply(consumer_secret("dan-key", "dan-key-value-123456", "dan", labels={LABEL: "admin"}))
    cp.apply(gateway_route("admin-keys", ["admin.kube.test"], [{
        "filters": {"apiKey": {"secretSelector": {"matchLabels": {LABEL: "admin"}}, "header": "X-Admin-Key",
                               "unknownKeyStatus": 403, "consumerHeader": "X-Who"}},
        "backendRefs": [{"name": "main", "port": 8080}]}]))
    port = proxy.http_port
    converge(lambda: curl(port, "/", "admin.kube.test", ["X-Admin-Key: dan-key-value-123456"])[0] == 200,
             "dan's key", ctl)
    _, _, body = curl(port, "/", "admin.kube.test", ["X-Admin-Key: dan-key-value-123456"])
    echo = json.loads(body)
    assert echo["headers"].get("x-who") == "dan" and "x-admin-key" not in echo["headers"]
    assert curl(port, "/", "admin.kube.test", ["X-Admin-Key: wrong"])[0] == 403
    status, fields, _ = curl(port, "/", "admin.kube.test")
    assert status == 401 and fields.get("www-authenticate") == "ApiKey"


def test_basic_auth_htpasswd_secret(env):
    cp, proxy, ctl = env
    lines = [htpasswd_line("B", "alice", "open sesame"),       # bcrypt ($2y$)
             htpasswd_line("5", "dave", "pässword"),           # SHA-512 crypt
             htpasswd_line("m", "mallory", "md5-password"),    # Apache MD5: refused
             "plain:plain-password"]                           # plain text: refused
    cp.apply({"kind": "Secret", "type": "Opaque", "metadata": {"name": "staff", "namespace": "default"},
              "stringData": {"auth": "\n".join(lines) + "\n"}})
    cp.apply(gateway_route("staff", ["staff.kube.test"], [{
        "filters": {"basicAuth": {"secretRef": {"name": "staff"}, "realm": "Staff only"}},
        "backendRefs": [{"name": "main", "port": 8080}]}]))
    port = proxy.http_port
    converge(lambda: curl(port, "/", "staff.kube.test", user="alice:open sesame")[0] == 200, "alice", ctl)
    status, _, body = curl(port, "/", "staff.kube.test", user="dave:pässword")
    echo = json.loads(body)
    assert status == 200 and echo["headers"].get("x-consumer") == "dave"
    assert "authorization" not in echo["headers"]
    status, fields, _ = curl(port, "/", "staff.kube.test", user="alice:wrong")
    assert status == 401 and fields["www-authenticate"] == 'Basic realm="Staff only", charset="UTF-8"'
    assert curl(port, "/", "staff.kube.test")[0] == 401
    assert curl(port, "/", "staff.kube.test", user="mallory:md5-password")[0] == 401
    assert curl(port, "/", "staff.kube.test", user="plain:plain-password")[0] == 401
    # The status is written after the proxy acknowledged the snapshot, so it can trail the data plane.
    cond = converge(lambda: cp.route_conditions("staff").get("ResolvedRefs", {}).get("status") == "False"
                    and cp.route_conditions("staff")["ResolvedRefs"], "ResolvedRefs to name the refused lines", ctl)
    assert cond["reason"] == "InvalidSecret", cond
    assert 'line 3: user "mallory": MD5 ($apr1$) hashes are refused' in cond["message"], cond
    assert 'line 4: user "plain": plain-text' in cond["message"], cond
    assert "plain-password" not in cond["message"]

    # The Secret changes: alice's password is replaced.
    cp.apply({"kind": "Secret", "type": "Opaque", "metadata": {"name": "staff", "namespace": "default"},
              "stringData": {"auth": htpasswd_line("B", "alice", "new secret") + "\n"}})
    converge(lambda: curl(port, "/", "staff.kube.test", user="alice:new secret")[0] == 200, "the new password", ctl)
    assert curl(port, "/", "staff.kube.test", user="alice:open sesame")[0] == 401
    converge(lambda: cp.route_conditions("staff")["ResolvedRefs"]["status"] == "True", "ResolvedRefs True", ctl)
