"""Helpers for the tests of `gantry-controller --source kube` against a real
kube-apiserver + etcd (hack/testbin/start-control-plane.sh).

- ControlPlane: starts (and always stops) a control plane in a temporary
  directory; talks to the API with urllib and the admin client certificate
  (fast enough to time 100 updates; kubectl is used where a user would).
- TestHosts: the backends' addresses. The API server rejects loopback
  addresses in EndpointSlices ("may not be in the loopback range"), so the echo
  backends run in a network namespace this test creates (a veth pair with a
  /28 of TEST-NET-2, 198.51.100.0/24): traffic never leaves the machine.
  Needs root (CI and the dev machines run as root); skipped otherwise.
- KubeController: gantry-controller --source kube with its health listener.
"""

import base64
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import (REPO, START_TIMEOUT, ProcessManager, binary, free_port, get_json,
                      http_request, tail, wait_until)

START_SCRIPT = REPO / "hack" / "testbin" / "start-control-plane.sh"
CRD = REPO / "crds" / "gantry.dev_gatewayroutes.yaml"

RESOURCES = {  # kind -> (api prefix, plural, namespaced)
    "Service": ("/api/v1", "services", True),
    "EndpointSlice": ("/apis/discovery.k8s.io/v1", "endpointslices", True),
    "Secret": ("/api/v1", "secrets", True),
    "GatewayRoute": ("/apis/gantry.dev/v1alpha1", "gatewayroutes", True),
    "Ingress": ("/apis/networking.k8s.io/v1", "ingresses", True),
    "IngressClass": ("/apis/networking.k8s.io/v1", "ingressclasses", False),
    "Lease": ("/apis/coordination.k8s.io/v1", "leases", True),
    "Namespace": ("/api/v1", "namespaces", False),
    "GatewayClass": ("/apis/gateway.networking.k8s.io/v1", "gatewayclasses", False),
    "Gateway": ("/apis/gateway.networking.k8s.io/v1", "gateways", True),
    "HTTPRoute": ("/apis/gateway.networking.k8s.io/v1", "httproutes", True),
    "GRPCRoute": ("/apis/gateway.networking.k8s.io/v1", "grpcroutes", True),
    "ReferenceGrant": ("/apis/gateway.networking.k8s.io/v1", "referencegrants", True),
}
API_VERSIONS = {
    "Service": "v1", "Secret": "v1", "EndpointSlice": "discovery.k8s.io/v1",
    "GatewayRoute": "gantry.dev/v1alpha1", "Ingress": "networking.k8s.io/v1",
    "IngressClass": "networking.k8s.io/v1", "Lease": "coordination.k8s.io/v1",
    "Namespace": "v1", "GatewayClass": "gateway.networking.k8s.io/v1",
    "Gateway": "gateway.networking.k8s.io/v1", "HTTPRoute": "gateway.networking.k8s.io/v1",
    "GRPCRoute": "gateway.networking.k8s.io/v1",
    "ReferenceGrant": "gateway.networking.k8s.io/v1",
}


def object_path(kind, name=None, namespace="default"):
    prefix, plural, namespaced = RESOURCES[kind]
    path = prefix + (f"/namespaces/{namespace}" if namespaced else "") + f"/{plural}"
    return path + (f"/{name}" if name else "")


class ApiError(Exception):
    def __init__(self, status, body):
        super().__init__(f"HTTP {status}: {body[:300]}")
        self.status = status


class ControlPlane:
    def __init__(self, workdir, apiserver_args=(), with_kcm=False):
        self.workdir = Path(workdir)
        self.apiserver_args = list(apiserver_args)
        self.with_kcm = with_kcm  # also start kube-controller-manager (tests/e2e)
        self.kubeconfig = None
        self.env = {}

    def start(self):
        argv = [str(START_SCRIPT)] + [f"--apiserver-arg={a}" for a in self.apiserver_args]
        if self.with_kcm:
            argv.append("--with-kcm")
        argv.append(str(self.workdir))
        out = subprocess.run(argv, capture_output=True, text=True, timeout=600)
        if out.returncode != 0:
            pytest.fail(f"start-control-plane.sh failed ({out.returncode}):\n{out.stderr[-3000:]}")
        self.kubeconfig = out.stdout.strip().splitlines()[-1]
        for line in (self.workdir / "env").read_text().splitlines():
            k, _, v = line.partition("=")
            self.env[k] = v
        self.server = self.env["API_SERVER"]
        self.ssl = ssl.create_default_context(cafile=str(self.workdir / "ca.crt"))
        self.ssl.load_cert_chain(str(self.workdir / "admin.crt"), str(self.workdir / "admin.key"))
        return self

    def stop(self):
        subprocess.run([str(START_SCRIPT), "stop", str(self.workdir)], capture_output=True,
                       timeout=120)

    def restart_apiserver(self):
        out = subprocess.run([str(START_SCRIPT), "restart-apiserver", str(self.workdir)],
                             capture_output=True, text=True, timeout=180)
        assert out.returncode == 0, out.stderr[-2000:]

    def stop_apiserver(self):
        pid = int((self.workdir / "kube-apiserver.pid").read_text())
        os.kill(pid, signal.SIGTERM)
        wait_until(lambda: not Path(f"/proc/{pid}").exists(), 30, "kube-apiserver to exit")

    # --------------------------------------------------------------- API

    def request(self, method, path, body=None, content_type="application/json", timeout=10):
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
        req = urllib.request.Request(self.server + path, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, context=self.ssl, timeout=timeout) as r:
                return json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            raise ApiError(e.code, e.read().decode(errors="replace")) from None

    def apply(self, obj):
        """Server-side apply (create or update) of one object dict."""
        kind = obj["kind"]
        obj.setdefault("apiVersion", API_VERSIONS[kind])
        meta = obj["metadata"]
        path = object_path(kind, meta["name"], meta.get("namespace", "default"))
        return self.request("PATCH", path + "?fieldManager=gantry-test&force=true", obj,
                            "application/apply-patch+yaml")

    def get(self, kind, name, namespace="default"):
        return self.request("GET", object_path(kind, name, namespace))

    def delete(self, kind, name, namespace="default"):
        try:
            self.request("DELETE", object_path(kind, name, namespace))
        except ApiError as e:
            if e.status != 404:
                raise

    def patch_json(self, kind, name, ops, namespace="default"):
        return self.request("PATCH", object_path(kind, name, namespace), ops,
                            "application/json-patch+json")

    def kubectl(self, *args, check=True):
        out = subprocess.run(["kubectl", "--kubeconfig", self.kubeconfig, *args],
                             capture_output=True, text=True, timeout=60)
        if check and out.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {out.stderr}")
        return out.stdout

    def install_crd(self):
        self.kubectl("apply", "-f", str(CRD))
        # Poll rather than `kubectl wait`: right after the create the CRD has
        # no status.conditions yet, and kubectl 1.32's wait errors out on that
        # instead of waiting.
        deadline = time.monotonic() + 60
        jsonpath = '{.status.conditions[?(@.type=="Established")].status}'
        while True:
            out = self.kubectl("get", "crd/gatewayroutes.gantry.dev", "-o", f"jsonpath={jsonpath}",
                               check=False)
            if out.strip() == "True":
                return
            if time.monotonic() > deadline:
                raise AssertionError("CRD gatewayroutes.gantry.dev not Established within 60 s")
            time.sleep(0.1)

    def etcd_compact(self):
        """Compacts etcd at its current revision (etcd's JSON gateway); returns it."""
        base = f"http://127.0.0.1:{self.env['ETCD_PORT']}"

        def post(path, body):
            req = urllib.request.Request(base + path, data=json.dumps(body).encode(),
                                         method="POST")
            with urllib.request.urlopen(req, timeout=10) as r:
                return json.loads(r.read())
        key = base64.b64encode(b"/registry").decode()
        rev = int(post("/v3/kv/range", {"key": key, "count_only": True})["header"]["revision"])
        post("/v3/kv/compaction", {"revision": rev, "physical": True})
        return rev

    def route_conditions(self, name, namespace="default"):
        """{type: condition} of a GatewayRoute, read with kubectl as a user would."""
        obj = json.loads(self.kubectl("get", "gatewayroute", name, "-n", namespace, "-o", "json"))
        return {c["type"]: c for c in (obj.get("status") or {}).get("conditions", [])}


# ------------------------------------------------------------------ objects

def service(name, port=8080, target_port=9001, namespace="default"):
    return {"kind": "Service", "metadata": {"name": name, "namespace": namespace},
            "spec": {"ports": [{"name": "http", "port": port, "targetPort": target_port}]}}


def endpoint_slice(service_name, addresses, port=9001, namespace="default", suffix="1"):
    return {"kind": "EndpointSlice",
            "metadata": {"name": f"{service_name}-{suffix}", "namespace": namespace,
                         "labels": {"kubernetes.io/service-name": service_name}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
            "endpoints": [{"addresses": [a], "conditions": {"ready": True}} for a in addresses]}


def gateway_route(name, hostnames, rules, namespace="default", tls_secret=None):
    spec = {"hostnames": hostnames, "rules": rules}
    if tls_secret:
        spec["tls"] = {"secretName": tls_secret}
    return {"kind": "GatewayRoute", "metadata": {"name": name, "namespace": namespace},
            "spec": spec}


def simple_route(name, host, service_name, port=8080):
    return gateway_route(name, [host], [{"backendRefs": [{"name": service_name, "port": port}]}])


# ------------------------------------------------------------------ hosts

def _ip(*args, check=True):
    out = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and out.returncode != 0:
        raise OSError(f"ip {' '.join(args)}: {out.stderr.strip()}")
    return out


class TestHosts:
    """A network namespace with a veth pair: the host side is 198.51.100.<16k+1>/28,
    backends get .16k+2 ... .16k+14. Slot k is claimed by creating the veth
    (which fails when another test run holds it)."""

    __test__ = False
    PORT = 9001

    def __init__(self, manager, workdir):
        if os.geteuid() != 0:
            pytest.skip("the kube tests need root to create a network namespace for backends")
        self.manager = manager
        self.workdir = Path(workdir)
        self.slot = None
        for k in range(16):
            try:
                _ip("link", "add", f"gk{k}h", "type", "veth", "peer", "name", f"gk{k}n")
            except OSError:
                continue
            self.slot = k
            break
        if self.slot is None:
            pytest.fail("no free test-host slot (ip link show | grep gk)")
        k = self.slot
        self.ns = f"gantry-kt{k}"
        _ip("netns", "del", self.ns, check=False)  # a stale one from a killed run
        _ip("netns", "add", self.ns)
        _ip("link", "set", f"gk{k}n", "netns", self.ns)
        self.base = 16 * k
        _ip("addr", "add", f"198.51.100.{self.base + 1}/28", "dev", f"gk{k}h")
        _ip("link", "set", f"gk{k}h", "up")
        _ip("-n", self.ns, "link", "set", "lo", "up")
        _ip("-n", self.ns, "link", "set", f"gk{k}n", "up")
        self.next_host = 2
        self.echos = {}

    def address(self):
        """A fresh address of the namespace, for a backend to listen on."""
        if self.next_host > 14:
            pytest.fail("out of test-host addresses")
        addr = f"198.51.100.{self.base + self.next_host}"
        self.next_host += 1
        _ip("-n", self.ns, "addr", "add", f"{addr}/28", "dev", f"gk{self.slot}n")
        return addr

    def _serve(self, name, argv, marker):
        """Runs `argv` in the namespace; waits for `marker` in its output."""
        log = self.workdir / f"echo-{name}.log"
        proc = self.manager.spawn(["ip", "netns", "exec", self.ns] + argv, log)

        def listening():
            if proc.poll() is not None:
                pytest.fail(f"backend {name} exited: {tail(log)}")
            return marker in log.read_text(errors="replace")
        wait_until(listening, START_TIMEOUT, f"backend {name} to listen")

    def echo(self, name):
        """Starts gantry-echo `name` on a fresh address of the namespace; returns the address."""
        addr = self.address()
        self._serve(name, [binary("gantry-echo"), "--name", name, "--listen", f"{addr}:{self.PORT}"],
                    " listening on ")
        self.echos[name] = addr
        return addr

    def tls_echo(self, name, cert, key, client_ca=None, port=9443):
        """Starts tls_echo.py (HTTPS/1.1; answers with the SNI and client certificate
        it saw) with the PEM files `cert`/`key`; returns the address."""
        addr = self.address()
        argv = [sys.executable, str(Path(__file__).resolve().parent / "tls_echo.py"), "--name", name,
                "--listen", f"{addr}:{port}", "--cert", str(cert), "--key", str(key)]
        if client_ca:
            argv += ["--client-ca", str(client_ca)]
        self._serve(name, argv, " listening on ")
        self.echos[name] = addr
        return addr

    def h2_echo(self, name, cert, key, port=9001, tls_port=9443):
        """Starts gantry-h2-echo: h2c (prior knowledge) on `port`, h2 over TLS
        (ALPN h2) on `tls_port`; returns the address."""
        addr = self.address()
        self._serve(name, [binary("gantry-h2-echo"), "--listen", f"{addr}:{port}",
                           "--tls-listen", f"{addr}:{tls_port}", "--cert", str(cert), "--key", str(key)],
                    "gantry-h2-echo: h2c on ")
        self.echos[name] = addr
        return addr

    def close(self):
        _ip("netns", "del", self.ns, check=False)
        _ip("link", "del", f"gk{self.slot}h", check=False)


# ------------------------------------------------------------------ controller

class KubeController:
    def __init__(self, manager, workdir, kubeconfig, socket_path, name="controller",
                 extra_args=()):
        self.manager = manager
        self.workdir = Path(workdir)
        self.kubeconfig = kubeconfig
        self.socket_path = str(socket_path)
        self.extra_args = list(extra_args)
        self.health_port = free_port()  # /healthz /readyz /metrics
        self.admin_port = free_port()   # /status
        self.log = self.workdir / f"{name}.log"
        self.proc = None

    def start(self):
        argv = [binary("gantry-controller"), "--source", "kube", "--kubeconfig", self.kubeconfig,
                "--proxy-socket", self.socket_path,
                "--health-listen", f"127.0.0.1:{self.health_port}",
                "--admin-listen", f"127.0.0.1:{self.admin_port}"] + self.extra_args
        self.proc = self.manager.spawn(argv, self.log)
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def ready(self):
        if not self.alive():
            pytest.fail(f"gantry-controller exited with {self.proc.returncode}\n{tail(self.log)}")
        return http_request(self.health_port, "/readyz").status == 200

    def wait_ready(self, timeout=30):
        wait_until(self.ready, timeout, "controller /readyz 200",
                   on_timeout=lambda: tail(self.log) + self.listeners_report())

    def listeners_report(self):
        """Whether the controller still has a socket listening on its health and
        admin ports, and its open descriptors: a listener that refuses while the
        process lives was closed under it."""
        if not self.alive():
            return ""
        pid = self.proc.pid
        listening = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                rows = Path(table).read_text().splitlines()[1:]
            except OSError:
                continue
            for row in rows:
                cols = row.split()
                if len(cols) > 3 and cols[3] == "0A":  # LISTEN
                    listening.add(int(cols[1].rsplit(":", 1)[1], 16))
        fds = []
        try:
            for fd in sorted(os.listdir(f"/proc/{pid}/fd"), key=int):
                try:
                    fds.append(f"{fd}->{os.readlink(f'/proc/{pid}/fd/{fd}')}")
                except OSError:
                    pass
        except OSError:
            pass
        return (f"\n--- controller pid {pid}: health port {self.health_port} "
                f"{'listening' if self.health_port in listening else 'NOT listening'}, admin port "
                f"{self.admin_port} {'listening' if self.admin_port in listening else 'NOT listening'}; "
                f"descriptors: {' '.join(fds)}")

    def metrics(self):
        r = http_request(self.health_port, "/metrics")
        out = {}
        for line in r.body.decode().splitlines():
            if line and not line.startswith("#"):
                k, _, v = line.partition(" ")
                out[k] = int(float(v))
        return out

    def status(self):
        return get_json(self.admin_port, "/status")

    def kill(self, sig=signal.SIGKILL):
        return ProcessManager.kill(self.proc, sig)

    def log_text(self):
        return self.log.read_text(errors="replace")


def cluster_endpoints(proxy, cluster):
    """The sorted endpoint addresses of `cluster` in the proxy's applied snapshot."""
    for c in proxy.config_dump().get("clusters", []):
        if c["name"] == cluster:
            return sorted(e["address"] for e in c.get("endpoints", []))
    return None


def percentile(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100.0 * (len(s) - 1))))]
