"""Security in a shared cluster, against a real kube-apiserver + etcd (docs/security.md).

The controller runs with the chart's own RBAC (rendered by helm, applied, and
a ServiceAccount token from the TokenRequest API): every check here also proves
the narrowed verbs are enough. The API server writes an audit log of every
Secret and ConfigMap request, which the Secret tests read.

- Hostname ownership: team b's more specific route on team a's hostname is
  refused (Accepted=False, HostnameConflict, naming team a) while traffic
  keeps reaching a and b's other hostname works; an Ingress of class gantry is
  refused the same way; deleting a's route hands the hostname over; the
  operator's ConfigMap gantry-hostname-owners assigns a hostname against age.
- Secrets: only TLS Secrets (fieldSelector type=kubernetes.io/tls) and the
  referenced ones (fieldSelector metadata.name=...) are ever listed or
  watched, never with a get; an existing TLS Secret that becomes referenced is
  fetched; a JWT key (Opaque) is watched by name and its change applied.
"""

import base64
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent / "kube"))

from conftest import (CONVERGE_TIMEOUT, REPO, Proxy, new_manager, tail,  # noqa: E402
                      wait_until)
from kubeapi import (ControlPlane, KubeController, TestHosts, endpoint_slice,  # noqa: E402
                     gateway_route, service)

RELEASE_NS = "gantry-system"
AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  resources: [{group: "", resources: [secrets, configmaps]}]
- level: None
"""
SA_USER = f"system:serviceaccount:{RELEASE_NS}:gantry"


def find_testbin():
    import os
    d = os.environ.get("GANTRY_TESTBIN")
    if d:
        return Path(d)
    out = subprocess.run([str(REPO / "hack" / "testbin.sh")], capture_output=True, text=True,
                         timeout=3600, check=True)
    return Path(out.stdout.strip().splitlines()[-1])


def chart_rbac():
    """The ServiceAccount, (Cluster)Roles and bindings `helm template` renders with default values."""
    out = subprocess.run([str(find_testbin() / "helm"), "template", "gantry", str(REPO / "charts" / "gantry"),
                          "--namespace", RELEASE_NS, "--kube-version", "1.33.0"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    keep = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
    return [d for d in yaml.safe_load_all(out.stdout) if d and d.get("kind") in keep]


def sa_kubeconfig(cp, workdir):
    """A kubeconfig authenticating with a token of the chart's ServiceAccount."""
    tok = cp.request("POST", f"/api/v1/namespaces/{RELEASE_NS}/serviceaccounts/gantry/token",
                     {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                      "spec": {"expirationSeconds": 3600}})
    cfg = {"apiVersion": "v1", "kind": "Config",
           "clusters": [{"name": "t", "cluster": {"server": cp.server,
                                                   "certificate-authority": str(cp.workdir / "ca.crt")}}],
           "users": [{"name": "gantry", "user": {"token": tok["status"]["token"]}}],
           "contexts": [{"name": "gantry", "context": {"cluster": "t", "user": "gantry"}}],
           "current-context": "gantry"}
    path = Path(workdir) / "gantry-sa.kubeconfig"
    path.write_text(yaml.safe_dump(cfg))
    path.chmod(0o600)
    return str(path)


def audit_events(cp):
    out = []
    for line in (cp.workdir / "audit.log").read_text(errors="replace").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def secret(name, namespace, data, type_="Opaque"):
    return {"kind": "Secret", "type": type_, "metadata": {"name": name, "namespace": namespace},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


class Env:
    def __init__(self, manager, workdir, cp, hosts):
        self.manager, self.workdir, self.cp, self.hosts = manager, workdir, cp, hosts
        self.socket = workdir / "control.sock"
        self.proxy = Proxy(manager, workdir, self.socket)
        self.controller = None

    def backend_of(self, host, path="/"):
        r = self.proxy.get(path, host=host)
        return r.backend if r.status == 200 else f"status {r.status}"

    def wait_backend(self, host, expected, path="/", timeout=CONVERGE_TIMEOUT):
        last = {}

        def check():
            last["b"] = self.backend_of(host, path)
            return last["b"] == expected
        wait_until(check, timeout, f"{host}{path} to reach {expected}",
                   on_timeout=lambda: f"last: {last.get('b')}\n{tail(self.controller.log)}")

    def wait_condition(self, name, namespace, status, reason=None, timeout=CONVERGE_TIMEOUT):
        last = {}

        def check():
            c = self.cp.route_conditions(name, namespace).get("Accepted", {})
            last["c"] = c
            return c.get("status") == status and (reason is None or c.get("reason") == reason) and c
        return wait_until(check, timeout, f"{namespace}/{name} Accepted={status} {reason or ''}",
                          on_timeout=lambda: f"last: {last.get('c')}\n{tail(self.controller.log)}")

    def status_of(self, kind, namespace, name):
        for r in self.controller.status().get("routes", []):
            if r.get("kind") == kind and r.get("namespace") == namespace and r.get("name") == name:
                return {c["type"]: c for c in r.get("conditions", [])}
        return None


@pytest.fixture(scope="module")
def env():
    manager = new_manager()
    with tempfile.TemporaryDirectory(prefix="gantry-ks-") as d:
        workdir = Path(d)
        (workdir / "audit-policy.yaml").write_text(AUDIT_POLICY)
        cp = ControlPlane(workdir / "cp", apiserver_args=[
            f"--audit-policy-file={workdir / 'audit-policy.yaml'}",
            f"--audit-log-path={workdir / 'cp' / 'audit.log'}", "--audit-log-format=json"])
        hosts = None
        try:
            cp.start()
            cp.install_crd()
            for ns in (RELEASE_NS, "team-a", "team-b"):
                cp.kubectl("create", "namespace", ns)
            for obj in chart_rbac():
                p = subprocess.run(["kubectl", "--kubeconfig", cp.kubeconfig, "apply", "-f", "-"],
                                   input=json.dumps(obj), capture_output=True, text=True, timeout=60)
                assert p.returncode == 0, p.stderr
            # Unrelated Secrets of every kind the controller must never list.
            for i in range(20):
                cp.apply(secret(f"unrelated-{i}", "team-a", {"password": f"p{i}"}))
            cp.apply(secret("registry", "team-b", {".dockerconfigjson": "{}"}, "kubernetes.io/dockerconfigjson"))
            for i in range(3):  # TLS, never referenced: listed by the TLS watch, data dropped
                cp.apply(secret(f"unrelated-tls-{i}", "team-b", {"tls.crt": "x", "tls.key": "y"},
                                "kubernetes.io/tls"))
            cp.apply(secret("basic", "team-b", {"username": "u", "password": "p"}, "kubernetes.io/basic-auth"))
            hosts = TestHosts(manager, workdir)
            for name in ["a", "b"]:
                hosts.echo(name)
            for ns, name in (("team-a", "a"), ("team-b", "b")):
                cp.apply(service("web", namespace=ns))
                cp.apply(endpoint_slice("web", [hosts.echos[name]], namespace=ns))
            e = Env(manager, workdir, cp, hosts)
            e.proxy.start()
            e.controller = KubeController(manager, workdir, sa_kubeconfig(cp, workdir), e.socket,
                                          extra_args=["--leader-election-namespace", RELEASE_NS]).start()
            e.controller.wait_ready()
            yield e
        finally:
            manager.cleanup()
            if hosts:
                hosts.close()
            cp.stop()


def web_route(name, namespace, hostnames, path=None, path_type="PathPrefix"):
    rule = {"backendRefs": [{"name": "web", "port": 8080}]}
    if path:
        rule["matches"] = [{"path": {"type": path_type, "value": path}}]
    return gateway_route(name, hostnames, [rule], namespace=namespace)


def test_foreign_route_on_owned_hostname_is_refused_then_handed_over(env):
    cp = env.cp
    cp.apply(web_route("shop", "team-a", ["shop.sec.test"]))
    env.wait_backend("shop.sec.test", "a", "/login")
    env.wait_condition("shop", "team-a", "True")
    time.sleep(1.1)  # creationTimestamp has a resolution of one second
    # Team b: a more specific rule (Exact /login) on team a's hostname, plus its own hostname.
    cp.apply(web_route("steal", "team-b", ["shop.sec.test", "b.sec.test"], "/login", "Exact"))
    cond = env.wait_condition("steal", "team-b", "False", "HostnameConflict")
    assert "shop.sec.test" in cond["message"] and "team-a" in cond["message"], cond
    assert "GatewayRoute team-a/shop" in cond["message"], cond
    env.wait_backend("b.sec.test", "b", "/login")  # its other hostname keeps working
    for _ in range(20):  # and team a keeps its users' logins
        assert env.backend_of("shop.sec.test", "/login") == "a"
    assert env.cp.route_conditions("shop", "team-a")["Accepted"]["status"] == "True"

    # An Ingress of class gantry is held to the same rule.
    cp.apply({"kind": "Ingress", "metadata": {"name": "steal-ing", "namespace": "team-b"},
              "spec": {"ingressClassName": "gantry", "rules": [{"host": "shop.sec.test", "http": {"paths": [
                  {"path": "/admin", "pathType": "Prefix",
                   "backend": {"service": {"name": "web", "port": {"number": 8080}}}}]}}]}})
    conds = wait_until(lambda: (env.status_of("Ingress", "team-b", "steal-ing") or {}).get("Accepted"),
                       CONVERGE_TIMEOUT, "the Ingress's verdict in /status")
    assert conds["status"] == "False", conds
    assert conds["reason"] == "HostnameConflict" and "team-a" in conds["message"], conds
    assert env.backend_of("shop.sec.test", "/admin") == "a"

    # Team a's route goes: the hostname is handed to team b.
    cp.delete("GatewayRoute", "shop", "team-a")
    env.wait_backend("shop.sec.test", "b", "/login")
    env.wait_condition("steal", "team-b", "True")
    env.wait_backend("shop.sec.test", "b", "/admin")
    cp.delete("Ingress", "steal-ing", "team-b")
    cp.delete("GatewayRoute", "steal", "team-b")


def test_operator_assignment_wins_over_age(env):
    cp = env.cp
    cp.apply(web_route("vip", "team-a", ["vip.sec.test"]))
    env.wait_backend("vip.sec.test", "a")
    cp.request("POST", f"/api/v1/namespaces/{RELEASE_NS}/configmaps", {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "gantry-hostname-owners", "namespace": RELEASE_NS},
        "data": {"owners": "vip.sec.test team-b  # the VIP service moved\n"}})
    cond = env.wait_condition("vip", "team-a", "False", "HostnameConflict")
    assert "team-b" in cond["message"] and "gantry-hostname-owners" in cond["message"], cond
    env.wait_backend("vip.sec.test", "status 404")
    cp.apply(web_route("vip", "team-b", ["vip.sec.test"]))
    env.wait_backend("vip.sec.test", "b")
    cp.request("DELETE", f"/api/v1/namespaces/{RELEASE_NS}/configmaps/gantry-hostname-owners")
    cp.delete("GatewayRoute", "vip", "team-a")
    cp.delete("GatewayRoute", "vip", "team-b")


def test_secrets_listed_only_by_type_or_name(env):
    cp = env.cp
    # A TLS Secret that exists before any route references it: only its key is kept...
    cert = env.workdir / "c.pem"
    key = env.workdir / "k.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1",
                    "-subj", "/CN=tls.sec.test", "-addext", "subjectAltName=DNS:tls.sec.test"],
                   check=True, capture_output=True, timeout=60)
    cp.apply(secret("early-cert", "team-a", {"tls.crt": cert.read_text(), "tls.key": key.read_text()},
                    "kubernetes.io/tls"))
    cp.apply(secret("jwt-key", "team-a", {"hmac": "first-secret-of-at-least-32-bytes!!"}))
    time.sleep(1)
    # ... until a route references it: then it is fetched and served.
    cp.apply(gateway_route("tls", ["tls.sec.test"], [{"backendRefs": [{"name": "web", "port": 8080}]}],
                           namespace="team-a", tls_secret="early-cert"))
    wait_until(lambda: any(c.get("name") == "team-a/early-cert" for c in env.proxy.config_dump().get(
        "certificates", [])), CONVERGE_TIMEOUT, "the proxy to get certificate team-a/early-cert",
        on_timeout=lambda: tail(env.controller.log))
    # A JWT key (Opaque) is watched by name: the route fails closed without a token.
    cp.apply(gateway_route("jwt", ["jwt.sec.test"], [{
        "filters": {"jwt": {"algorithms": ["HS256"], "hmacSecretRef": {"name": "jwt-key", "key": "hmac"}}},
        "backendRefs": [{"name": "web", "port": 8080}]}], namespace="team-a"))
    env.wait_backend("jwt.sec.test", "status 401")
    env.wait_condition("jwt", "team-a", "True")

    # Held: the two referenced Secrets; of the three unreferenced TLS ones only the names.
    m = env.controller.metrics()
    assert m["gantry_controller_secrets_held"] == 2, m
    assert m["gantry_controller_secrets_known_by_name"] == 3, m

    events = [e for e in audit_events(cp) if e.get("user", {}).get("username") == SA_USER
              and e.get("objectRef", {}).get("resource") == "secrets"]
    assert events, "no Secret request by the controller in the audit log"
    allowed = {"fieldSelector=type%3Dkubernetes.io%2Ftls", "fieldSelector=metadata.name%3Djwt-key",
               "fieldSelector=metadata.name%3Dearly-cert"}
    for e in events:
        uri = e["requestURI"]
        assert e["verb"] in ("list", "watch"), f"the controller did {e['verb']} {uri}"
        assert any(sel in uri for sel in allowed), f"a Secret request without a narrowing selector: {uri}"
        if "metadata.name" in uri:
            assert "/namespaces/team-a/" in uri, uri
    verbs = {(e["verb"], "type" if "type%3D" in e["requestURI"] else "name") for e in events}
    assert ("list", "type") in verbs and ("list", "name") in verbs, verbs
    # Never a get, never an unrelated Secret by name.
    assert not [e for e in events if "unrelated" in e["requestURI"] or "registry" in e["requestURI"]]
    # The ConfigMap is read by name only.
    cms = [e for e in audit_events(cp) if e.get("user", {}).get("username") == SA_USER
           and e.get("objectRef", {}).get("resource") == "configmaps"]
    assert cms and all("fieldSelector=metadata.name%3Dgantry-hostname-owners" in e["requestURI"] for e in cms)
    assert all(e.get("responseStatus", {}).get("code", 200) < 400 for e in events + cms), \
        [e["requestURI"] for e in events + cms if e.get("responseStatus", {}).get("code", 200) >= 400]
