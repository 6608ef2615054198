"""TEST SCAFFOLDING: a tiny stand-in for the kubelet (and the scheduler) of one
Node, for the e2e and conformance tests only. It is not a kubelet and never
will be: it knows two "container images", gantry-echo (the e2e tests) and the
Gateway API conformance suite's echo-basic (see ImageRunner below).

The control plane of the e2e tests (hack/testbin/start-control-plane.sh
--with-kcm) runs the real deployment, replicaset and endpointslice controllers
but no scheduler and no kubelet. NodeAgent fills that gap for one Node:

- creates the Node object with a Ready condition (the endpointslice controller
  skips pods whose Node does not exist);
- binds every unscheduled pod to that Node (POST pods/NAME/binding);
- for each pod bound to it: picks a free pod IP in the PodNetwork (a network
  namespace, see below), starts `gantry-echo --name POD --listen IP:PORT` in
  that namespace (PORT: containers[0].ports[0].containerPort), reports podIP,
  podIPs, phase Running, then Ready / ContainersReady once the HTTP GET
  readinessProbe passes; keeps probing every periodSeconds (failureThreshold /
  successThreshold honoured) so readiness can flap;
- readiness can be failed on purpose: while the pod carries the annotation
  FAIL_READINESS_ANNOTATION="true" every probe fails (the backend itself keeps
  serving, as an app whose /ready check fails would);
- crash(): SIGKILLs a pod's process; the agent reports it not ready with
  restartCount+1 and restarts it after RESTART_DELAY seconds;
- on deletion (deletionTimestamp set) it behaves like the kubelet: runs the
  preStop hook (lifecycle.preStop.sleep.seconds, or an exec `sleep N`) while
  the process keeps serving, then SIGTERMs it (SIGKILL when the grace period
  ends first), reports it not ready, and deletes the pod with
  gracePeriodSeconds=0 and a UID precondition. The address is freed last.

PodNetwork: the API server rejects loopback addresses in EndpointSlices, so
pods get addresses of TEST-NET-3 (203.0.113.0/24) inside a network namespace
joined to the host by a veth pair, like tests/integration/kube/kubeapi.py's
TestHosts (which uses TEST-NET-2 and other names: both can run at once).
Slot k (0 or 1, owner pid in /tmp/gantry-e2e{k}.owner: a slot whose owner
died, e.g. a SIGKILLed run, is reclaimed) is 203.0.113.128k/25: host side .128k+1, pods .128k+2 ...
.128k+125 (.128k+126 stays on the namespace side as the subnet's primary); the slot is claimed by creating the veth `ge2e{k}h`. Traffic never
leaves the machine. Needs root.
"""

import collections
import http.client
import http.server
import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration" / "kube"))

from conftest import ProcessManager, binary  # noqa: E402
from kubeapi import ApiError, _ip  # noqa: E402

FAIL_READINESS_ANNOTATION = "e2e.gantry.dev/fail-readiness"
RESTART_DELAY = 1.0
TICK = 0.05  # the pod loop's poll interval (process exit, deletion, probe due)


def now_rfc3339():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ------------------------------------------------------------------ network

class PodNetwork:
    """A network namespace holding the pods' addresses (see the module doc)."""

    def __init__(self):
        if os.geteuid() != 0:
            raise PermissionError("the e2e tests need root to create a network namespace for pods")
        self.slot = None
        for k in range(2):
            if _ip("link", "add", f"ge2e{k}h", "type", "veth", "peer", "name", f"ge2e{k}n",
                   check=False).returncode != 0:
                if not self._reclaim_stale(k):
                    continue
                if _ip("link", "add", f"ge2e{k}h", "type", "veth", "peer", "name", f"ge2e{k}n",
                       check=False).returncode != 0:
                    continue
            self.slot = k
            self._owner_file(k).write_text(str(os.getpid()))
            break
        if self.slot is None:
            raise RuntimeError("no free e2e pod-network slot (ip link show | grep ge2e)")
        k = self.slot
        self.ns = f"gantry-e2e{k}"
        self.dev = f"ge2e{k}n"
        base = 128 * k
        self.host_ip = f"203.0.113.{base + 1}"
        try:
            _ip("netns", "del", self.ns, check=False)  # a stale one from a killed run
            _ip("netns", "add", self.ns)
            _ip("link", "set", self.dev, "netns", self.ns)
            _ip("addr", "add", f"{self.host_ip}/25", "dev", f"ge2e{k}h")
            _ip("link", "set", f"ge2e{k}h", "up")
            _ip("-n", self.ns, "link", "set", "lo", "up")
            _ip("-n", self.ns, "link", "set", self.dev, "up")
            # A permanent first address of the /25 on the pod side: Linux deletes
            # every secondary address of a subnet with its primary one, so were a
            # pod's address the primary, removing it would take the other pods'
            # addresses along.
            _ip("-n", self.ns, "addr", "add", f"203.0.113.{base + 126}/25", "dev", self.dev)
        except Exception:
            self.close()
            raise
        # FIFO: a freed address goes to the back, so it is reused as late as possible.
        self._free = collections.deque(f"203.0.113.{base + i}" for i in range(2, 126))
        self._lock = threading.Lock()

    @staticmethod
    def _owner_file(k):
        return Path(f"/tmp/gantry-e2e{k}.owner")

    def _reclaim_stale(self, k):
        """Slot k's veth exists: when the run that owns it is gone (a SIGKILLed
        test), removes its namespace and veth and returns True."""
        try:
            owner = int(self._owner_file(k).read_text())
        except (OSError, ValueError):
            return False
        if Path(f"/proc/{owner}").exists():
            return False
        _ip("netns", "del", f"gantry-e2e{k}", check=False)
        _ip("link", "del", f"ge2e{k}h", check=False)
        self._owner_file(k).unlink(missing_ok=True)
        return True

    def allocate(self):
        with self._lock:
            if not self._free:
                raise RuntimeError("out of pod addresses")
            addr = self._free.popleft()
        _ip("-n", self.ns, "addr", "add", f"{addr}/25", "dev", self.dev)
        return addr

    def release(self, addr):
        _ip("-n", self.ns, "addr", "del", f"{addr}/25", "dev", self.dev, check=False)
        with self._lock:
            self._free.append(addr)

    def exec_argv(self, argv, addr=None):
        return ["ip", "netns", "exec", self.ns] + list(argv)

    def close(self):
        _ip("netns", "del", self.ns, check=False)
        _ip("link", "del", f"ge2e{self.slot}h", check=False)
        self._owner_file(self.slot).unlink(missing_ok=True)


class PerPodNetwork:
    """One network namespace per pod (the conformance suite's echo-basic listens
    on ":3000", so pods cannot share a namespace): a bridge `gcf{k}br` in the
    host namespace holds 198.18.k.1/24 (RFC 2544 benchmarking range, never
    routed off the machine); each pod gets a namespace `gcf{k}-{i}` joined to
    the bridge by a veth pair, with 198.18.k.i/24 on its side and lo up. Slot k
    (0 or 1) is claimed by creating the bridge; a slot whose owner died is
    reclaimed, as in PodNetwork. Needs root."""

    def __init__(self):
        if os.geteuid() != 0:
            raise PermissionError("the node agent needs root to create network namespaces for pods")
        self.slot = None
        for k in range(2):
            if _ip("link", "add", f"gcf{k}br", "type", "bridge", check=False).returncode != 0:
                if not self._reclaim_stale(k):
                    continue
                if _ip("link", "add", f"gcf{k}br", "type", "bridge", check=False).returncode != 0:
                    continue
            self.slot = k
            self._owner_file(k).write_text(str(os.getpid()))
            break
        if self.slot is None:
            raise RuntimeError("no free pod-network slot (ip link show | grep gcf)")
        k = self.slot
        self.bridge = f"gcf{k}br"
        self.host_ip = f"198.18.{k}.1"
        try:
            _ip("addr", "add", f"{self.host_ip}/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
        except Exception:
            self.close()
            raise
        self._free = collections.deque(range(2, 255))
        self._lock = threading.Lock()

    @staticmethod
    def _owner_file(k):
        return Path(f"/tmp/gantry-gcf{k}.owner")

    @staticmethod
    def _namespaces(k):
        out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=30)
        return [line.split()[0] for line in out.stdout.splitlines()
                if line.startswith(f"gcf{k}-")]

    def _reclaim_stale(self, k):
        try:
            owner = int(self._owner_file(k).read_text())
        except (OSError, ValueError):
            return False
        if Path(f"/proc/{owner}").exists():
            return False
        for ns in self._namespaces(k):
            _ip("netns", "del", ns, check=False)
        _ip("link", "del", f"gcf{k}br", check=False)
        self._owner_file(k).unlink(missing_ok=True)
        return True

    def _ns(self, addr):
        return f"gcf{self.slot}-{addr.rsplit('.', 1)[1]}"

    def allocate(self):
        with self._lock:
            if not self._free:
                raise RuntimeError("out of pod addresses")
            i = self._free.popleft()
        k = self.slot
        addr, ns, host, peer = f"198.18.{k}.{i}", f"gcf{k}-{i}", f"gcf{k}h{i}", f"gcf{k}p{i}"
        _ip("netns", "del", ns, check=False)
        _ip("link", "del", host, check=False)
        _ip("netns", "add", ns)
        _ip("link", "add", host, "type", "veth", "peer", "name", peer)
        _ip("link", "set", peer, "netns", ns)
        _ip("link", "set", host, "master", self.bridge)
        _ip("link", "set", host, "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", ns, "link", "set", peer, "name", "eth0")
        _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", "eth0")
        _ip("-n", ns, "link", "set", "eth0", "up")
        _ip("-n", ns, "route", "add", "default", "via", self.host_ip)
        return addr

    def release(self, addr):
        _ip("netns", "del", self._ns(addr), check=False)  # takes the veth pair along
        with self._lock:
            self._free.append(int(addr.rsplit(".", 1)[1]))

    def exec_argv(self, argv, addr=None):
        return ["ip", "netns", "exec", self._ns(addr)] + list(argv)

    def close(self):
        for ns in self._namespaces(self.slot):
            _ip("netns", "del", ns, check=False)
        _ip("link", "del", self.bridge, check=False)
        self._owner_file(self.slot).unlink(missing_ok=True)


# ------------------------------------------------------------------ API

class Api:
    """Just enough of the API for the agent (and the e2e harness): JSON requests
    with the control plane's admin certificate, and a list+watch loop."""

    def __init__(self, cp):
        self.server = cp.server
        self.ssl = cp.ssl

    def request(self, method, path, body=None, content_type="application/json", timeout=10):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.server + path, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, context=self.ssl, timeout=timeout) as r:
                return json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            raise ApiError(e.code, e.read().decode(errors="replace")) from None

    def watch(self, path, on_event, stop, on_list=None, selector=None):
        """List then watch `path` (a collection) until `stop` is set. Calls
        on_list(items) after every (re)list and on_event(type, obj, t_seen)
        for each event (t_seen: time.monotonic() when the line was read).
        Reconnects from the last resourceVersion; relists on 410 Gone."""
        sel = f"&labelSelector={selector}" if selector else ""
        rv = None
        while not stop.is_set():
            try:
                if rv is None:
                    lst = self.request("GET", f"{path}?limit=0{sel}")
                    rv = lst["metadata"]["resourceVersion"]
                    if on_list:
                        on_list(lst.get("items") or [])
                url = (f"{self.server}{path}?watch=1&allowWatchBookmarks=true&resourceVersion={rv}"
                       f"&timeoutSeconds=30{sel}")
                req = urllib.request.Request(url, headers={"Accept": "application/json"})
                with urllib.request.urlopen(req, context=self.ssl, timeout=1.0) as r:
                    while not stop.is_set():
                        try:
                            line = r.readline()
                        except (TimeoutError, OSError):
                            break  # quiet for 1 s: reconnect from rv (checks `stop`)
                        if not line:
                            break
                        t_seen = time.monotonic()
                        ev = json.loads(line)
                        obj = ev.get("object") or {}
                        if ev.get("type") == "ERROR":
                            if obj.get("code") == 410:
                                rv = None
                            break
                        rv = obj.get("metadata", {}).get("resourceVersion", rv)
                        if ev.get("type") != "BOOKMARK":
                            on_event(ev["type"], obj, t_seen)
            except (ApiError, OSError, ValueError, http.client.HTTPException) as e:
                if isinstance(e, ApiError) and e.status == 410:
                    rv = None
                if not stop.is_set():
                    time.sleep(0.2)


# ------------------------------------------------------------------ pods

def _container(pod):
    return (pod.get("spec", {}).get("containers") or [{}])[0]


def _prestop_seconds(pod):
    pre = (_container(pod).get("lifecycle") or {}).get("preStop") or {}
    if "sleep" in pre:
        return float(pre["sleep"].get("seconds", 0))
    cmd = (pre.get("exec") or {}).get("command") or []
    if len(cmd) == 2 and os.path.basename(cmd[0]) == "sleep":
        return float(cmd[1])
    return 0.0


def gantry_echo(runner):
    """The e2e tests' image: every pod runs gantry-echo on its first containerPort."""
    port = ((_container(runner.pod).get("ports") or [{}])[0]).get("containerPort", 9001)
    argv = [binary("gantry-echo"), "--name", runner.name, "--listen", f"{runner.ip}:{port}"]
    return argv, None, lambda _r, out: b" listening on " in out


def _field(pod, ip, path):
    return {"metadata.name": pod["metadata"]["name"],
            "metadata.namespace": pod["metadata"].get("namespace", "default"),
            "metadata.uid": pod["metadata"].get("uid", ""),
            "spec.nodeName": pod["spec"].get("nodeName", ""),
            "spec.serviceAccountName": pod["spec"].get("serviceAccountName", "default"),
            "status.podIP": ip}.get(path, "")


class ConformanceImages:
    """The image table of the Gateway API conformance run (tests/conformance):

    - `.../gateway-api/echo-basic:*` runs the echo-basic program built from the
      suite's own module, with the container's env: `value`s, and `fieldRef`s
      (POD_NAME, NAMESPACE, ...) resolved as the kubelet does. Secret and
      ConfigMap volumes are written under the agent's workdir, and an env value
      that names a file under a volumeMount's mountPath is rewritten to the
      written file (there is no mount namespace: this is the one liberty taken).
      Until every Secret / ConfigMap a volume names exists, the pod waits, as
      in ContainerCreating.
    - any other image (the base manifests' coredns, for UDPRoute tests Gantry
      does not claim) cannot run here; its pod runs `sleep infinity` in its
      network namespace, serving nothing, and is reported as such in its log.
      Such a pod has no readinessProbe, so the kubelet too would call it Ready
      once its process runs.
    """

    def __init__(self, echo_basic):
        self.echo_basic = str(echo_basic)

    def __call__(self, runner):
        c = _container(runner.pod)
        image = c.get("image", "")
        if "/gateway-api/echo-basic:" not in image:
            with open(runner.log, "a") as f:
                f.write(f"node agent: image {image} cannot run here: pause process (serves nothing)\n")
            return ["sleep", "infinity"], None, lambda r, _out: r.proc.poll() is None
        files = self._volumes(runner)
        if files is None:
            return None
        env = {}
        for e in c.get("env") or []:
            if "value" in e:
                v = str(e["value"])
            else:
                ref = (e.get("valueFrom") or {}).get("fieldRef") or {}
                v = _field(runner.pod, runner.ip, ref.get("fieldPath", ""))
            for mount in c.get("volumeMounts") or []:
                root = mount["mountPath"].rstrip("/") + "/"
                if v.startswith(root) and mount["name"] in files:
                    v = str(files[mount["name"]] / v[len(root):])
            env[e["name"]] = v
        port = int(env.get("HTTP_PORT") or 3000)

        def started(r, _out):
            import socket
            with socket.socket() as s:
                s.settimeout(0.2)
                return s.connect_ex((r.ip, port)) == 0
        return [self.echo_basic], env, started

    @staticmethod
    def _volumes(runner):
        """{volume name: directory} with the Secret / ConfigMap files written,
        or None while one is missing."""
        import base64
        out = {}
        ns = runner.ns
        for vol in runner.pod["spec"].get("volumes") or []:
            if "secret" in vol:
                kind, ref = "secrets", vol["secret"].get("secretName")
                items = vol["secret"].get("items")
            elif "configMap" in vol:
                kind, ref = "configmaps", vol["configMap"].get("name")
                items = vol["configMap"].get("items")
            else:
                continue
            try:
                obj = runner.agent.api.request("GET", f"/api/v1/namespaces/{ns}/{kind}/{ref}")
            except ApiError:
                return None
            data = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()} \
                if kind == "secrets" else {k: v.encode() for k, v in (obj.get("data") or {}).items()}
            d = runner.agent.workdir / "volumes" / ns / runner.name / vol["name"]
            d.mkdir(parents=True, exist_ok=True)
            for it in items or [{"key": k, "path": k} for k in data]:
                if it["key"] in data:
                    (d / it["path"]).write_bytes(data[it["key"]])
            out[vol["name"]] = d
        return out


class PodRunner(threading.Thread):
    """One pod's life on the node: start, probe, crash/restart, terminate."""

    def __init__(self, agent, pod):
        super().__init__(name=f"pod-{pod['metadata']['name']}", daemon=True)
        self.agent = agent
        self.pod = pod  # the latest object seen by the agent's watch
        self.name = pod["metadata"]["name"]
        self.ns = pod["metadata"].get("namespace", "default")
        self.uid = pod["metadata"]["uid"]
        self.proc = None
        self.ip = None
        self.ready = False
        self.restarts = 0
        self.kill_requested = threading.Event()
        self.log = agent.workdir / f"pod-{self.name}.log"

    # --- status

    def _patch_status(self, ready):
        c = _container(self.pod)
        t = now_rfc3339()
        state = {"running": {"startedAt": t}} if self._alive() else {
            "waiting": {"reason": "CrashLoopBackOff"}}
        status = {
            "phase": "Running", "hostIP": self.agent.network.host_ip,
            "podIP": self.ip, "podIPs": [{"ip": self.ip}], "startTime": self.started_at,
            "conditions": [
                {"type": "Initialized", "status": "True", "lastTransitionTime": self.started_at},
                {"type": "ContainersReady", "status": str(ready), "lastTransitionTime": t},
                {"type": "Ready", "status": str(ready), "lastTransitionTime": t},
            ],
            "containerStatuses": [{
                "name": c.get("name", "app"), "image": c.get("image", "gantry-echo"),
                "imageID": "", "ready": ready, "started": self._alive(),
                "restartCount": self.restarts, "state": state}],
        }
        try:
            self.agent.api.request(
                "PATCH", f"/api/v1/namespaces/{self.ns}/pods/{self.name}/status",
                {"metadata": {"uid": self.uid}, "status": status},
                "application/strategic-merge-patch+json")
        except ApiError as e:
            if e.status not in (404, 409):
                self.agent.error(f"{self.name}: status patch: {e}")
        self.ready = ready
        self.agent.record(self.name, "ready" if ready else "not-ready")

    # --- process

    def _alive(self):
        return self.proc is not None and self.proc.poll() is None

    def _start_process(self):
        """Starts the pod's process as the agent's image table says; False when
        it cannot start yet (a Secret volume not there) or did not come up."""
        launch = self.agent.launcher(self)
        if launch is None:
            return False
        argv, env, started = launch
        before = self.log.stat().st_size if self.log.exists() else 0
        self.proc = self.agent.manager.spawn(self.agent.network.exec_argv(argv, self.ip), self.log,
                                             env=env)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            with open(self.log, "rb") as f:
                f.seek(before)
                if started(self, f.read()):
                    self.agent.record(self.name, "started")
                    return True
            time.sleep(0.01)
        self.agent.error(f"{self.name}: {argv[0]} did not start (see {self.log})")
        return False

    def _probe(self):
        if (self.pod["metadata"].get("annotations") or {}).get(FAIL_READINESS_ANNOTATION) == "true":
            return False
        probe = (_container(self.pod).get("readinessProbe") or {}).get("httpGet")
        if not probe:
            return self._alive()
        conn = http.client.HTTPConnection(
            self.ip, int(probe.get("port", 9001)),
            timeout=float((_container(self.pod).get("readinessProbe") or {}).get("timeoutSeconds", 1)))
        try:
            conn.request("GET", probe.get("path", "/"), headers={"User-Agent": "e2e-node-agent"})
            r = conn.getresponse()
            r.read()
            return 200 <= r.status < 400
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()

    # --- life

    def run(self):
        try:
            self._run()
        except Exception as e:  # noqa: BLE001 - report, never kill the agent
            self.agent.error(f"{self.name}: {type(e).__name__}: {e}")
        finally:
            if self.proc is not None:
                ProcessManager.kill(self.proc, signal.SIGKILL, grace=2)
            if self.ip:
                self.agent.network.release(self.ip)
            self.agent.forget(f"{self.ns}/{self.name}")

    def _run(self):
        self.started_at = now_rfc3339()
        self.ip = self.agent.network.allocate()
        # Like ContainerCreating: an image whose Secret volumes are not there yet waits.
        while (not self._start_process() and self.proc is None and not self.agent.stopping.is_set()
               and not self.pod["metadata"].get("deletionTimestamp")):
            time.sleep(0.5)
        self._patch_status(False)
        rp = _container(self.pod).get("readinessProbe") or {}
        period = float(rp.get("periodSeconds", 10))
        fail_threshold = int(rp.get("failureThreshold", 3))
        ok_threshold = int(rp.get("successThreshold", 1))
        successes = failures = 0
        next_probe = time.monotonic() + float(rp.get("initialDelaySeconds", 0))
        restart_at = None
        while not self.agent.stopping.is_set():
            if self.pod["metadata"].get("deletionTimestamp"):
                self._terminate()
                return
            if self.kill_requested.is_set():
                self.kill_requested.clear()
                if self._alive():
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait(timeout=5)
            if self.proc is not None and self.proc.poll() is not None and restart_at is None:
                self.agent.record(self.name, f"exited {self.proc.returncode}")
                self.restarts += 1
                successes = failures = 0
                self._patch_status(False)
                restart_at = time.monotonic() + RESTART_DELAY
            if restart_at is not None and time.monotonic() >= restart_at:
                restart_at = None
                self._start_process()
                self._patch_status(False)
                next_probe = time.monotonic()
            if restart_at is None and time.monotonic() >= next_probe:
                next_probe += period
                if self._probe():
                    successes, failures = successes + 1, 0
                    if not self.ready and successes >= ok_threshold:
                        self._patch_status(True)
                else:
                    successes, failures = 0, failures + 1
                    # A pod that never was ready stays not ready; one that was
                    # goes not ready after failureThreshold failures.
                    if self.ready and failures >= fail_threshold:
                        self._patch_status(False)
            time.sleep(TICK)

    def _terminate(self):
        meta = self.pod["metadata"]
        grace = float(meta.get("deletionGracePeriodSeconds")
                      or self.pod["spec"].get("terminationGracePeriodSeconds", 30))
        start = time.monotonic()
        self.agent.record(self.name, "terminating")
        prestop = min(_prestop_seconds(self.pod), grace)
        # The process keeps serving during the preStop hook.
        while time.monotonic() - start < prestop and not self.agent.stopping.is_set():
            time.sleep(TICK)
        if self._alive():
            self.agent.record(self.name, "SIGTERM")
            os.killpg(self.proc.pid, signal.SIGTERM)
            left = max(0.0, grace - (time.monotonic() - start))
            try:
                self.proc.wait(timeout=left)
            except subprocess.TimeoutExpired:
                self.agent.record(self.name, "SIGKILL (grace period over)")
                ProcessManager.kill(self.proc, signal.SIGKILL, grace=2)
        if self.ready:
            self._patch_status(False)
        try:
            self.agent.api.request(
                "DELETE", f"/api/v1/namespaces/{self.ns}/pods/{self.name}",
                {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0,
                 "preconditions": {"uid": self.uid}})
        except ApiError as e:
            if e.status not in (404, 409):
                self.agent.error(f"{self.name}: delete: {e}")
        self.agent.record(self.name, "deleted")


class NodeAgent:
    """Plays the kubelet (and the scheduler) for one Node; see the module doc."""

    def __init__(self, cp, manager, workdir, network, node_name="e2e-node", launcher=None):
        self.api = Api(cp)
        self.launcher = launcher or gantry_echo
        self.manager = manager
        self.workdir = Path(workdir)
        self.network = network
        self.node = node_name
        self.stopping = threading.Event()
        self.runners = {}
        self.lock = threading.Lock()
        self.events = []   # (monotonic time, pod, what): the pods' timeline
        self.errors = []
        self.thread = None
        self.log_server = None

    def record(self, pod, what):
        with self.lock:
            self.events.append((time.monotonic(), pod, what))

    def error(self, text):
        with self.lock:
            self.errors.append(text)

    def forget(self, key):
        with self.lock:
            self.runners.pop(key, None)

    def _serve_logs(self):
        """The kubelet's /containerLogs/{ns}/{pod}/{container} (what the API
        server's pods/log proxies to, e.g. `kubectl logs`): the pod process's
        output file, whole (sinceTime, tailLines and follow are not honoured).
        HTTPS on the node's address, with a throwaway self-signed certificate
        (the test API server does not verify kubelets); returns the port."""
        agent = self
        cert, key = self.workdir / "kubelet.crt", self.workdir / "kubelet.key"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-days", "1", "-subj", f"/CN={self.node}",
                        "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                parts = self.path.split("?", 1)[0].strip("/").split("/")
                runner = None
                if len(parts) == 4 and parts[0] == "containerLogs":
                    runner = agent.pods().get(f"{parts[1]}/{parts[2]}")
                if runner is None:
                    self.send_error(404, "no such pod on this node")
                    return
                try:
                    body = runner.log.read_bytes()
                except OSError:
                    body = b""
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        server = http.server.ThreadingHTTPServer((self.network.host_ip, 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert), str(key))
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
        self.log_server = server
        threading.Thread(target=server.serve_forever, name="node-agent-logs", daemon=True).start()
        return server.server_address[1]

    def start(self):
        logs_port = self._serve_logs()
        node = {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": self.node, "labels": {"kubernetes.io/hostname": self.node}}}
        try:
            self.api.request("POST", "/api/v1/nodes", node)
        except ApiError as e:
            if e.status != 409:
                raise
        t = now_rfc3339()
        self.api.request("PATCH", f"/api/v1/nodes/{self.node}/status", {"status": {
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "message": "e2e node agent", "lastHeartbeatTime": t,
                            "lastTransitionTime": t}],
            "addresses": [{"type": "InternalIP", "address": self.network.host_ip}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": logs_port}}}},
            "application/strategic-merge-patch+json")
        self.thread = threading.Thread(target=self.api.watch, name="node-agent-watch", daemon=True,
                                       args=("/api/v1/pods", self._on_event, self.stopping),
                                       kwargs={"on_list": self._on_list})
        self.thread.start()
        return self

    def _on_list(self, pods):
        for p in pods:
            self._on_event("ADDED", p, time.monotonic())

    def _on_event(self, etype, pod, _t):
        meta, spec = pod["metadata"], pod.get("spec", {})
        name = meta["name"]
        key = f"{meta.get('namespace', 'default')}/{name}"
        if etype == "DELETED":
            return
        if not spec.get("nodeName"):
            if meta.get("deletionTimestamp"):
                return
            try:
                self.api.request("POST", f"/api/v1/namespaces/{meta['namespace']}/pods/{name}/binding",
                                 {"apiVersion": "v1", "kind": "Binding",
                                  "metadata": {"name": name, "uid": meta["uid"]},
                                  "target": {"apiVersion": "v1", "kind": "Node", "name": self.node}})
            except ApiError as e:
                if e.status != 409:
                    self.error(f"{name}: binding: {e}")
            return
        if spec["nodeName"] != self.node:
            return
        with self.lock:
            runner = self.runners.get(key)
            if runner is not None and runner.uid != meta["uid"]:
                runner = None  # an old pod of the same name is still finishing
            if runner is None:
                if meta.get("deletionTimestamp") or key in self.runners:
                    return
                runner = self.runners[key] = PodRunner(self, pod)
                runner.start()
                return
        runner.pod = pod

    def pods(self):
        """{"namespace/name": PodRunner} of the pods running on the node."""
        with self.lock:
            return dict(self.runners)

    def crash(self, name, namespace="default"):
        """SIGKILLs the process of pod `name` (the agent restarts it)."""
        with self.lock:
            runner = self.runners[f"{namespace}/{name}"]
        runner.kill_requested.set()
        return runner

    def stop(self):
        self.stopping.set()
        for r in list(self.pods().values()):
            r.join(timeout=5)
        if self.thread:
            self.thread.join(timeout=5)
        if self.log_server:
            self.log_server.shutdown()
            self.log_server.server_close()
