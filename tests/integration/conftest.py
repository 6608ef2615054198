"""Fixtures that run the real binaries on loopback for the integration tests.

Every process is started in its own process group and registered with a
ProcessManager, which kills the groups at fixture teardown, at interpreter exit
(atexit) and on SIGTERM/SIGHUP; each child also gets PR_SET_PDEATHSIG so that
even a SIGKILLed test runner leaves nothing behind. Every wait is a bounded poll; every port is on 127.0.0.0/8.

The binaries come from $GANTRY_BIN (ctest passes ${CMAKE_BINARY_DIR}/bin),
else <repo>/build/bin. Logs of each process are kept in the test's temporary
directory and printed when a readiness wait times out.
"""

import atexit
import contextlib
import ctypes
import http.client
import itertools
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "hack" / "testbin"))
import ports as _ports  # noqa: E402
BIN = Path(os.environ.get("GANTRY_BIN") or REPO / "build" / "bin")

# Bounded waits (seconds).
START_TIMEOUT = 15.0      # a process to listen / become ready
CONVERGE_TIMEOUT = 15.0   # a manifest change to show in traffic or status
HTTP_TIMEOUT = 5.0        # one request
PROXY_DRAIN_SECONDS = 1   # --drain-seconds: SIGTERM to exit


def binary(name):
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{path} does not exist: build it first (GANTRY_BIN={BIN})")
    return str(path)


def clean_env(extra=None):
    """The environment for child processes: no stray GANTRY_* settings (every
    flag also reads one) so only the command line configures them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GANTRY_")}
    env.update(extra or {})
    return env


# ------------------------------------------------------------------ processes

_LIBC = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def _die_with_parent():
    """In the child before exec: SIGKILL it when the test runner dies, even by
    SIGKILL (a ctest timeout), where atexit and finalizers cannot run."""
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class ProcessManager:
    """Owns every child process; kills their process groups on cleanup."""

    def __init__(self):
        self._procs = []

    def spawn(self, argv, log_path, env=None):
        log = open(log_path, "ab")
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, env=clean_env(env),
                                start_new_session=True, preexec_fn=_die_with_parent)
        log.close()
        self._procs.append(proc)
        return proc

    @staticmethod
    def kill(proc, sig=signal.SIGKILL, grace=3.0):
        """Sends `sig` to the process group, waits at most `grace` seconds, then SIGKILLs."""
        if proc.poll() is not None:
            return proc.returncode
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            return proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            return proc.wait(timeout=5)

    def cleanup(self):
        procs, self._procs = self._procs, []
        for proc in procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for proc in procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass


_MANAGERS = []


def new_manager():
    m = ProcessManager()
    _MANAGERS.append(m)
    return m


def _cleanup_all():
    for m in _MANAGERS:
        m.cleanup()


atexit.register(_cleanup_all)


def _on_signal(signum, _frame):
    # Kill the children now, then unwind like Ctrl-C so pytest still runs the
    # fixtures' teardown (temporary directories).
    _cleanup_all()
    signal.signal(signum, signal.SIG_DFL)
    raise KeyboardInterrupt(f"signal {signum}")


for _sig in (signal.SIGTERM, signal.SIGHUP):
    signal.signal(_sig, _on_signal)


def wait_until(predicate, timeout, what, interval=0.05, on_timeout=None):
    """Polls `predicate` until it returns a truthy value (returned) or `timeout` passes."""
    deadline = time.monotonic() + timeout
    last_error = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except (OSError, http.client.HTTPException, ValueError) as e:
            last_error = e
        if time.monotonic() >= deadline:
            details = on_timeout() if on_timeout else ""
            pytest.fail(f"timed out after {timeout}s waiting for {what}"
                        f"{f' (last error: {last_error})' if last_error else ''}\n{details}")
        time.sleep(interval)


def free_port(host="127.0.0.1"):
    """A port free on `host`, outside the ephemeral range and never handed to
    two test processes at once (hack/testbin/ports.py)."""
    return _ports.free_port(host)


_REFUSING = []  # sockets held by refusing_port() for the life of the test process


def refusing_port(host="127.0.0.1"):
    """A port on `host` where connections are refused, and stay refused: a
    socket is bound there and never listens, so no other process (another test
    run on the machine) can start listening on it, as it could on a port
    free_port() merely found free."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((host, 0))
    _REFUSING.append(s)
    return s.getsockname()[1]


def port_free(host, port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def tail(path, lines=40):
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return ""
    return f"--- last lines of {path} ---\n" + "\n".join(text.splitlines()[-lines:])


# ------------------------------------------------------------------ HTTP

class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # lower-cased names
        self.body = body

    def json(self):
        return json.loads(self.body)

    @property
    def backend(self):
        """The echo backend's name, or None when the body is not an echo answer."""
        try:
            return self.json().get("name")
        except ValueError:
            return None

    def __repr__(self):
        return f"Response({self.status}, {self.body[:200]!r})"


def http_request(port, path="/", host=None, method="GET", headers=None, body=None, addr="127.0.0.1",
                 timeout=HTTP_TIMEOUT):
    """One request on a fresh connection (Python http.client)."""
    conn = http.client.HTTPConnection(addr, port, timeout=timeout)
    try:
        h = dict(headers or {})
        if host is not None:
            h["Host"] = host
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        data = r.read()
        return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
    finally:
        conn.close()


def curl(port, path="/", host=None, addr="127.0.0.1", extra=()):
    """One request with curl; returns Response (status and body)."""
    argv = ["curl", "-sS", "--max-time", str(HTTP_TIMEOUT), "-o", "-", "-w", "\n%{http_code}"]
    if host is not None:
        argv += ["-H", f"Host: {host}"]
    argv += list(extra) + [f"http://{addr}:{port}{path}"]
    out = subprocess.run(argv, capture_output=True, timeout=HTTP_TIMEOUT + 5)
    if out.returncode != 0:
        reason = out.stderr.decode(errors="replace").strip()
        raise OSError(f"curl failed ({out.returncode}): {reason}")
    body, _, code = out.stdout.rpartition(b"\n")
    return Response(int(code), {}, body)


def get_json(port, path, addr="127.0.0.1"):
    r = http_request(port, path, addr=addr)
    if r.status != 200:
        raise ValueError(f"GET {path} answered {r.status}: {r.body[:200]!r}")
    return r.json()


def count_backends(port, n, host=None, path="/"):
    """Sends `n` requests; returns {backend name or 'status NNN': count}."""
    counts = {}
    for _ in range(n):
        r = http_request(port, path, host=host)
        key = r.backend if r.status == 200 and r.backend else f"status {r.status}"
        counts[key] = counts.get(key, 0) + 1
    return counts


# ------------------------------------------------------------------ components

_addr_counter = itertools.count(0)


def next_loopback():
    """A fresh loopback address per echo backend: 127.0.0.20 ... 127.0.0.219."""
    return f"127.0.0.{20 + next(_addr_counter) % 200}"


class Echo:
    def __init__(self, manager, workdir, name, addr=None, port=0):
        self.name = name
        self.addr = addr or next_loopback()
        self.log = Path(workdir) / f"echo-{name}.log"
        argv = [binary("gantry-echo"), "--name", name, "--listen", f"{self.addr}:{port}"]
        self.proc = manager.spawn(argv, self.log)
        self.port = wait_until(self._bound_port, START_TIMEOUT, f"echo {name} to listen",
                               on_timeout=lambda: tail(self.log))

    def _bound_port(self):
        if self.proc.poll() is not None:
            pytest.fail(f"echo {self.name} exited with {self.proc.returncode}\n{tail(self.log)}")
        for line in self.log.read_text(errors="replace").splitlines():
            if " listening on " in line:
                return int(line.rsplit(":", 1)[1])
        return None


class Proxy:
    def __init__(self, manager, workdir, socket_path, extra_args=()):
        self.manager = manager
        self.workdir = Path(workdir)
        self.socket_path = str(socket_path)
        self.extra_args = list(extra_args)
        self.http_port = free_port()
        self.stats_port = free_port()   # /healthz /readyz /metrics
        self.admin_port = free_port()   # /config_dump /upstreams
        self.proc = None
        self.log = self.workdir / "proxy.log"

    def argv(self):
        return [binary("gantry-proxy"),
                "--http-listen", f"127.0.0.1:{self.http_port}",
                "--stats-listen", f"127.0.0.1:{self.stats_port}",
                "--admin-listen", f"127.0.0.1:{self.admin_port}",
                "--control-socket", self.socket_path,
                "--workers", "2",
                "--access-log", "off",
                "--drain-seconds", str(PROXY_DRAIN_SECONDS)] + self.extra_args

    def start(self):
        for attempt in range(3):
            self.proc = self.manager.spawn(self.argv(), self.log)
            try:
                wait_until(self.healthy, START_TIMEOUT, "proxy /healthz", on_timeout=lambda: tail(self.log))
                return self
            except BaseException:  # pytest.fail's exception is not an Exception
                # free_port() hands out a port that nothing holds: a test running
                # beside this one can take it first. Only then, new ports and again.
                if attempt == 2 or self.proc.poll() is None or "Address already in use" not in tail(self.log):
                    raise
                self.http_port, self.stats_port, self.admin_port = free_port(), free_port(), free_port()
        return self

    def healthy(self):
        self._check_alive()
        return self.stats_status("/healthz") == 200

    def stats_status(self, path):
        return http_request(self.stats_port, path).status

    def ready(self):
        self._check_alive()
        return self.stats_status("/readyz") == 200

    def wait_ready(self, timeout=START_TIMEOUT):
        wait_until(self.ready, timeout, "proxy /readyz 200", on_timeout=lambda: tail(self.log))

    def config_dump(self):
        return get_json(self.admin_port, "/config_dump")

    def get(self, path="/", host=None, **kw):
        return http_request(self.http_port, path, host=host, **kw)

    def kill(self, sig=signal.SIGKILL):
        return ProcessManager.kill(self.proc, sig, grace=PROXY_DRAIN_SECONDS + 5)

    def _check_alive(self):
        if self.proc.poll() is not None:
            pytest.fail(f"gantry-proxy exited with {self.proc.returncode}\n{tail(self.log)}")


class Controller:
    def __init__(self, manager, workdir, manifest_dir, socket_path):
        self.manager = manager
        self.workdir = Path(workdir)
        self.manifest_dir = str(manifest_dir)
        self.socket_path = str(socket_path)
        self.health_port = free_port()  # /healthz /readyz /metrics
        self.admin_port = free_port()   # /status
        self.proc = None
        self.log = self.workdir / "controller.log"

    def argv(self):
        return [binary("gantry-controller"),
                "--source", f"dir:{self.manifest_dir}",
                "--proxy-socket", self.socket_path,
                "--health-listen", f"127.0.0.1:{self.health_port}",
                "--admin-listen", f"127.0.0.1:{self.admin_port}"]

    def start(self):
        self.proc = self.manager.spawn(self.argv(), self.log)
        return self

    def ready(self):
        if self.proc.poll() is not None:
            pytest.fail(f"gantry-controller exited with {self.proc.returncode}\n{tail(self.log)}")
        return http_request(self.health_port, "/readyz").status == 200

    def wait_ready(self, timeout=START_TIMEOUT):
        wait_until(self.ready, timeout, "controller /readyz 200", on_timeout=lambda: tail(self.log))

    def status(self):
        return get_json(self.admin_port, "/status")

    def route_conditions(self, namespace, name):
        """{type: condition dict} of one route in /status, or None when it is absent."""
        for route in self.status().get("routes", []):
            if route.get("namespace") == namespace and route.get("name") == name:
                return {c.get("type"): c for c in route.get("conditions", [])}
        return None

    def kill(self, sig=signal.SIGKILL):
        return ProcessManager.kill(self.proc, sig)

    def log_text(self):
        return self.log.read_text(errors="replace")


# ------------------------------------------------------------------ manifests

def service_yaml(name, endpoints, namespace="default", port=8080, target_port=None):
    """A Service plus the EndpointSlice standalone mode needs (no
    kube-controller-manager writes it). `endpoints`: [(addr, port), ...],
    all on the same target port."""
    target = target_port or (endpoints[0][1] if endpoints else 9001)
    if endpoints:
        listed = "endpoints:\n" + "".join(
            f'- addresses: ["{a}"]\n  conditions: {{ready: true}}\n' for a, _ in endpoints)
    else:
        listed = "endpoints: []\n"
    return textwrap.dedent(f"""\
        apiVersion: v1
        kind: Service
        metadata: {{name: {name}, namespace: {namespace}}}
        spec:
          ports:
          - {{name: http, port: {port}, targetPort: {target}, protocol: TCP}}
        ---
        apiVersion: discovery.k8s.io/v1
        kind: EndpointSlice
        metadata:
          name: {name}-1
          namespace: {namespace}
          labels: {{kubernetes.io/service-name: {name}}}
        addressType: IPv4
        ports:
        - {{name: http, port: {target}, protocol: TCP}}
        """) + listed


def route_yaml(name, rules, hostnames=None, namespace="default"):
    """A GatewayRoute; `rules` is a list of dicts in the GatewayRoute shape."""
    doc = {"apiVersion": "gantry.dev/v1alpha1", "kind": "GatewayRoute",
           "metadata": {"name": name, "namespace": namespace},
           "spec": {"rules": rules}}
    if hostnames:
        doc["spec"]["hostnames"] = hostnames
    return json.dumps(doc, indent=1) + "\n"  # JSON is YAML


def simple_route(name, service, hostname, port=8080):
    """A GatewayRoute sending every request for `hostname` to one Service port."""
    return route_yaml(name, [{"backendRefs": [{"name": service, "port": port}]}],
                      hostnames=[hostname])


def write_file(path, text, atomic=False):
    """Writes a manifest. In place (one write) by default, as `cat > f` does;
    atomic=True writes a hidden temporary file and renames it, as many editors do."""
    path = Path(path)
    if atomic:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    else:
        with open(path, "w") as f:
            f.write(text)


# ------------------------------------------------------------------ frames

FRAME_FULL, FRAME_ENDPOINTS, FRAME_ACK, FRAME_NACK, FRAME_HELLO = 1, 2, 3, 4, 5


def encode_frame(frame_type, payload):
    data = payload.encode() if isinstance(payload, str) else payload
    return struct.pack(">IB", len(data), frame_type) + data


def read_frame(sock):
    """Reads one frame; returns (type, payload bytes). Raises on EOF or timeout."""
    def read_exact(n):
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("control socket closed")
            buf += chunk
        return buf
    length, frame_type = struct.unpack(">IB", read_exact(5))
    return frame_type, read_exact(length)


# ------------------------------------------------------------------ fixtures

@pytest.fixture
def procs():
    m = new_manager()
    yield m
    m.cleanup()


@pytest.fixture
def workdir():
    # Short path: a unix socket path must fit in 108 bytes.
    with tempfile.TemporaryDirectory(prefix="gantry-it-") as d:
        yield Path(d)


class Stack:
    """Echo backends + controller over a manifest directory + proxy, wired together."""

    def __init__(self, manager, workdir):
        self.manager = manager
        self.workdir = workdir
        self.manifests = workdir / "manifests"
        self.manifests.mkdir()
        self.socket_path = workdir / "control.sock"
        self.echos = {}
        self.proxy = Proxy(manager, workdir, self.socket_path)
        self.controller = Controller(manager, workdir, self.manifests, self.socket_path)

    def echo(self, name, **kw):
        e = Echo(self.manager, self.workdir, name, **kw)
        self.echos[name] = e
        return e

    def echo_group(self, names, attempts=5):
        """Echo backends on distinct loopback addresses sharing one port, as the
        pods behind one EndpointSlice port do. Returns [Echo]."""
        for _ in range(attempts):
            first = Echo(self.manager, self.workdir, names[0])
            group = [first]
            try:
                for name in names[1:]:
                    addr = next_loopback()
                    if not port_free(addr, first.port):
                        raise OSError(f"{addr}:{first.port} in use")
                    group.append(Echo(self.manager, self.workdir, name, addr=addr, port=first.port))
            except OSError:
                for e in group:
                    ProcessManager.kill(e.proc)
                continue
            for e in group:
                self.echos[e.name] = e
            return group
        pytest.fail(f"could not start echo backends {names} on one shared port")

    def write(self, filename, text, atomic=False):
        write_file(self.manifests / filename, text, atomic=atomic)

    def remove(self, filename):
        (self.manifests / filename).unlink()

    def start(self):
        """Starts the proxy, then the controller; waits until both are ready."""
        self.proxy.start()
        self.controller.start()
        self.controller.wait_ready()
        self.proxy.wait_ready()
        return self

    def restart_controller(self):
        self.controller.kill()
        self.controller = Controller(self.manager, self.workdir, self.manifests, self.socket_path)
        self.controller.start()
        self.controller.wait_ready()

    def wait_for_backend(self, expected, host=None, path="/", timeout=CONVERGE_TIMEOUT):
        """Polls until a request for (host, path) reaches the echo backend `expected`."""
        last = {}

        def check():
            r = self.proxy.get(path, host=host)
            last["r"] = r
            return r.status == 200 and r.backend == expected
        wait_until(check, timeout, f"{host or '*'}{path} to reach {expected}",
                   on_timeout=lambda: f"last answer: {last.get('r')}\n{tail(self.controller.log)}\n"
                                      f"{tail(self.proxy.log)}")

    def wait_for_status(self, expected, host=None, path="/", timeout=CONVERGE_TIMEOUT):
        last = {}

        def check():
            r = self.proxy.get(path, host=host)
            last["r"] = r
            return r.status == expected
        wait_until(check, timeout, f"{host or '*'}{path} to answer {expected}",
                   on_timeout=lambda: f"last answer: {last.get('r')}\n{tail(self.controller.log)}\n"
                                      f"{tail(self.proxy.log)}")

    def logs(self):
        return "\n".join([tail(self.controller.log), tail(self.proxy.log)])


@pytest.fixture
def stack(procs, workdir):
    s = Stack(procs, workdir)
    yield s
    procs.cleanup()


@contextlib.contextmanager
def temporary_stack():
    """A Stack in its own temporary directory with its own process manager, for
    module-scoped fixtures; everything is killed when the block ends."""
    manager = new_manager()
    with tempfile.TemporaryDirectory(prefix="gantry-it-") as d:
        try:
            yield Stack(manager, Path(d))
        finally:
            manager.cleanup()


def pytest_report_header(config):
    return f"gantry binaries: {BIN}"


if sys.version_info < (3, 9):
    raise RuntimeError("the integration tests need Python 3.9+ (/usr/bin/python3)")


# ------------------------------------------------------------------ data plane
#
# The data-plane tests (test_tls, test_websocket, test_hot_swap, test_shutdown,
# test_http_strict, test_streaming, test_upstream_errors, test_metrics) boot the
# proxy from a --snapshot-file and play the controller on the control socket
# themselves, so each test states the exact snapshot it runs under.

def sn_cluster(name, endpoints):
    """A snapshot cluster; `endpoints`: [(addr, port), ...]."""
    return {"name": name, "endpoints": [{"address": a, "port": p} for a, p in endpoints]}


def sn_rule(cluster=None, prefix=None, policy=None, filters=None, backends=None):
    """A snapshot rule sending the requests under `prefix` (all when None) to `cluster`."""
    rule = {"backends": backends if backends is not None else [{"cluster": cluster, "weight": 1}]}
    if prefix is not None:
        rule["matches"] = [{"path": {"type": "PathPrefix", "value": prefix}}]
    if policy:
        rule["policy"] = policy
    if filters:
        rule["filters"] = filters
    return rule


def sn_route(name, rules, hostnames=None, namespace="default"):
    route = {"namespace": namespace, "name": name, "kind": "GatewayRoute",
             "creationTimestamp": 1700000000, "rules": rules}
    if hostnames:
        route["hostnames"] = hostnames
    return route


def sn_snapshot(version, routes, clusters, certificates=None):
    snap = {"version": version, "routes": routes, "clusters": clusters}
    if certificates:
        snap["certificates"] = certificates
    return snap


class ControlClient:
    """Plays the controller on a proxy's control socket: one connection, the
    proxy's HELLO read on connect, then FULL / ENDPOINTS frames each answered
    by ACK or NACK (docs/snapshot-format.md)."""

    def __init__(self, socket_path, timeout=HTTP_TIMEOUT):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        wait_until(lambda: self.sock.connect_ex(str(socket_path)) == 0, START_TIMEOUT,
                   "the control socket to accept")
        frame_type, payload = read_frame(self.sock)
        if frame_type != FRAME_HELLO:
            raise AssertionError(f"expected HELLO, got frame type {frame_type}: {payload!r}")
        self.hello = json.loads(payload)

    def send(self, frame_type, payload):
        """Sends one frame; returns (answer frame type, decoded answer)."""
        if not isinstance(payload, (str, bytes)):
            payload = json.dumps(payload)
        self.sock.sendall(encode_frame(frame_type, payload))
        answer_type, answer = read_frame(self.sock)
        return answer_type, json.loads(answer)

    def full(self, snapshot):
        """Pushes a FULL snapshot that must be ACKed; returns the ACK."""
        answer_type, answer = self.send(FRAME_FULL, snapshot)
        assert answer_type == FRAME_ACK, f"snapshot {snapshot.get('version')} not ACKed: {answer}"
        return answer

    def endpoints(self, delta):
        """Pushes an ENDPOINTS delta that must be ACKed; returns the ACK."""
        answer_type, answer = self.send(FRAME_ENDPOINTS, delta)
        assert answer_type == FRAME_ACK, f"delta {delta.get('version')} not ACKed: {answer}"
        return answer

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class SnapshotProxy(Proxy):
    """gantry-proxy booted from a --snapshot-file, without a controller;
    optionally with an HTTPS listener, an access log and extra flags."""

    def __init__(self, manager, workdir, snapshot, https=False, access_log="off", extra_args=(),
                 name="proxy", workers=2, drain_seconds=PROXY_DRAIN_SECONDS):
        workdir = Path(workdir)
        super().__init__(manager, workdir, workdir / f"{name}.sock", extra_args)
        self.log = workdir / f"{name}.log"
        self.snapshot_file = workdir / f"{name}-snapshot.json"
        self.snapshot_file.write_text(json.dumps(snapshot))
        self.https_port = free_port() if https else None
        self.access_log = access_log
        self.workers = workers
        self.drain_seconds = drain_seconds

    def argv(self):
        argv = super().argv()
        argv[argv.index("--access-log") + 1] = str(self.access_log)
        argv[argv.index("--workers") + 1] = str(self.workers)
        argv[argv.index("--drain-seconds") + 1] = str(self.drain_seconds)
        argv += ["--snapshot-file", str(self.snapshot_file)]
        if self.https_port:
            argv += ["--https-listen", f"127.0.0.1:{self.https_port}"]
        return argv

    def start(self):
        super().start()
        self.wait_ready()
        return self

    def control(self):
        return ControlClient(self.socket_path)

    def rss_kib(self):
        """The proxy's resident set size in KiB (/proc/<pid>/status VmRSS)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise ValueError("no VmRSS line")

    def metrics_text(self):
        r = http_request(self.stats_port, "/metrics")
        assert r.status == 200, r
        return r.body.decode()


class DataPlane:
    """Echo backends and snapshot-booted proxies in one work directory."""

    def __init__(self, manager, workdir):
        self.manager = manager
        self.workdir = Path(workdir)
        self.echos = {}

    def echo(self, name, **kw):
        e = Echo(self.manager, self.workdir, name, **kw)
        self.echos[name] = e
        return e

    def proxy(self, snapshot, **kw):
        return SnapshotProxy(self.manager, self.workdir, snapshot, **kw).start()


@pytest.fixture
def dataplane(procs, workdir):
    yield DataPlane(procs, workdir)
    procs.cleanup()


@contextlib.contextmanager
def temporary_dataplane():
    """A DataPlane for module-scoped fixtures; everything is killed when the block ends."""
    manager = new_manager()
    with tempfile.TemporaryDirectory(prefix="gantry-dp-") as d:
        try:
            yield DataPlane(manager, Path(d))
        finally:
            manager.cleanup()


# ------------------------------------------------------------------ certificates

class CertAuthority:
    """A throwaway CA that issues server certificates at test time (keys never
    leave the test's temporary directory). EC P-256 keys: fast to generate."""

    def __init__(self, workdir, name="Gantry Test CA"):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
        import datetime
        self._x509, self._hashes, self._ser, self._ec, self._oid = x509, hashes, serialization, ec, NameOID
        self._dt = datetime
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (x509.CertificateBuilder()
                     .subject_name(subject).issuer_name(subject)
                     .public_key(self.key.public_key())
                     .serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(hours=1))
                     .not_valid_after(now + datetime.timedelta(days=1))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                     .sign(self.key, hashes.SHA256()))
        self.path = Path(workdir) / "ca.pem"
        self.path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, common_name, hostnames, uris=()):
        """Returns (certPem, keyPem) for a leaf certificate with `hostnames`
        (DNS) and `uris` (URI, e.g. SPIFFE IDs) as SANs."""
        x509, NameOID, dt = self._x509, self._oid, self._dt
        key = self._ec.generate_private_key(self._ec.SECP256R1())
        now = dt.datetime.now(dt.timezone.utc)
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
                .issuer_name(self.cert.subject)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(hours=1))
                .not_valid_after(now + dt.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName(
                    [x509.DNSName(h) for h in hostnames]
                    + [x509.UniformResourceIdentifier(u) for u in uris]), critical=False)
                .sign(self.key, self._hashes.SHA256()))
        enc = self._ser.Encoding.PEM
        cert_pem = cert.public_bytes(enc).decode()
        key_pem = key.private_bytes(enc, self._ser.PrivateFormat.PKCS8,
                                    self._ser.NoEncryption()).decode()
        return cert_pem, key_pem

    def certificate(self, name, common_name, hostnames):
        """A snapshot `certificates` entry."""
        cert_pem, key_pem = self.issue(common_name, hostnames)
        return {"name": name, "hostnames": list(hostnames), "certPem": cert_pem, "keyPem": key_pem}


# ------------------------------------------------------------------ raw HTTP

def raw_exchange(port, data, addr="127.0.0.1", timeout=HTTP_TIMEOUT, shut_write=False):
    """Sends raw bytes on a fresh connection and reads until the peer closes.
    Returns (bytes received, closed): closed is False when `timeout` passed
    with the connection still open."""
    with socket.create_connection((addr, port), timeout=timeout) as s:
        if data:
            s.sendall(data)
        if shut_write:
            s.shutdown(socket.SHUT_WR)
        return read_to_eof(s, timeout)


def read_to_eof(sock, timeout=HTTP_TIMEOUT):
    """Reads until EOF (or a reset) or `timeout`; returns (bytes, closed)."""
    deadline = time.monotonic() + timeout
    out = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return out, False
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return out, False
        except ConnectionResetError:
            return out, True
        if not chunk:
            return out, True
        out += chunk


class RawResponse:
    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason = reason
        self.headers = headers  # [(lower-cased name, value)]
        self.body = body

    def header(self, name):
        for n, v in self.headers:
            if n == name:
                return v
        return None

    def __repr__(self):
        return f"RawResponse({self.status}, {self.headers}, {self.body[:120]!r})"


def parse_responses(data, head_methods=()):
    """Splits bytes into HTTP/1.1 responses (Content-Length, chunked or
    no body). `head_methods`: per response index, True when it answers HEAD.
    Returns (responses, leftover bytes)."""
    responses = []
    while data:
        end = data.find(b"\r\n\r\n")
        if end < 0:
            break
        lines = data[:end].decode("latin-1").split("\r\n")
        version, status, *reason = lines[0].split(" ", 2)
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.append((name.strip().lower(), value.strip()))
        rest = data[end + 4:]
        status = int(status)
        is_head = len(responses) < len(head_methods) and head_methods[len(responses)]
        hmap = dict(headers)
        if is_head or 100 <= status < 200 or status in (204, 304):
            body = b""
        elif "chunked" in hmap.get("transfer-encoding", "").lower():
            body = b""
            while True:
                eol = rest.find(b"\r\n")
                if eol < 0:
                    return responses, data
                size = int(rest[:eol].split(b";")[0], 16)
                if size == 0:
                    rest = rest[eol + 2:]
                    if rest.startswith(b"\r\n"):
                        rest = rest[2:]
                    else:  # trailer fields, then an empty line
                        rest = rest[rest.find(b"\r\n\r\n") + 4:]
                    break
                body += rest[eol + 2:eol + 2 + size]
                rest = rest[eol + 2 + size + 2:]
        elif "content-length" in hmap:
            n = int(hmap["content-length"])
            if len(rest) < n:
                break
            body, rest = rest[:n], rest[n:]
        else:
            body, rest = rest, b""
        responses.append(RawResponse(status, reason[0] if reason else "", headers, body))
        data = rest
    return responses, data


def read_responses(sock, count, timeout=HTTP_TIMEOUT, head_methods=()):
    """Reads from `sock` until `count` responses are complete (or EOF or
    `timeout`); returns (responses, closed). Never reads an endless stream."""
    deadline = time.monotonic() + timeout
    data = b""
    while True:
        responses, _ = parse_responses(data, head_methods)
        if len(responses) >= count:
            return responses[:count], False
        left = deadline - time.monotonic()
        if left <= 0:
            return responses, False
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return responses, False
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            return parse_responses(data, head_methods)[0], True
        data += chunk
