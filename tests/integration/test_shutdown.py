"""SIGTERM drains the proxy gracefully.

/readyz fails at once; traffic is still served for --drain-seconds, with
`Connection: close` on keep-alive answers; a slow request in flight when the
listeners close still completes with 200; then the process exits 0 and the
port is closed. The whole exit, after HTTP/1.1 and h2c traffic to an HTTP/1.1
and an h2c cluster, touches no freed memory (valgrind's memcheck).
"""

import http.client
import shutil
import signal
import socket
import subprocess
import threading
import time

from conftest import (HTTP_TIMEOUT, START_TIMEOUT, SnapshotProxy, binary, free_port, http_request, sn_cluster,
                      sn_route, sn_rule, sn_snapshot, tail, wait_until)
from test_http2_codec import listening

HOST = "drain.example.com"
CLUSTER = "default/drain:80"
DRAIN = 2  # seconds


def test_sigterm_drains_then_exits(dataplane):
    echo = dataplane.echo("drain")
    proxy = dataplane.proxy(sn_snapshot(1, [sn_route("drain", [sn_rule(CLUSTER)], hostnames=[HOST])],
                                        [sn_cluster(CLUSTER, [(echo.addr, echo.port)])]),
                            drain_seconds=DRAIN)
    keep = http.client.HTTPConnection("127.0.0.1", proxy.http_port, timeout=HTTP_TIMEOUT)
    keep.request("GET", "/before", headers={"Host": HOST})
    r = keep.getresponse()
    r.read()
    assert r.status == 200 and r.getheader("connection") is None

    slow = {}

    def slow_request():
        try:
            slow["r"] = http_request(proxy.http_port, "/delay/1500", host=HOST, timeout=10)
        except Exception as e:  # reported by the assertion below
            slow["error"] = e

    sigterm_at = time.monotonic()
    proxy.proc.send_signal(signal.SIGTERM)
    # /readyz fails at once (bounded poll; the stats listener stays up while draining).
    wait_until(lambda: proxy.stats_status("/readyz") == 503, 1.0, "/readyz 503 after SIGTERM")

    # Traffic is still served: new connections and the keep-alive one, which
    # is told to close.
    assert proxy.get("/during", host=HOST).status == 200
    keep.request("GET", "/during-keepalive", headers={"Host": HOST})
    r = keep.getresponse()
    r.read()
    assert r.status == 200
    assert (r.getheader("connection") or "").lower() == "close"
    keep.close()

    # A slow request started before the drain ends, still running when it ends.
    time.sleep(max(0.0, sigterm_at + DRAIN - 0.8 - time.monotonic()))
    t = threading.Thread(target=slow_request)
    t.start()
    t.join(timeout=15)
    assert "error" not in slow, f"in-flight request failed: {slow.get('error')!r}"
    assert slow["r"].status == 200, slow["r"]

    rc = proxy.proc.wait(timeout=30)
    assert rc == 0, rc
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", proxy.http_port)) != 0, "port still open after exit"


class MemcheckProxy(SnapshotProxy):
    """gantry-proxy under valgrind's memcheck: any invalid read or write, or a
    use of uninitialised memory, makes it exit 99."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.valgrind_log = self.workdir / "memcheck.log"

    def argv(self):
        return ["valgrind", "--error-exitcode=99", "--leak-check=no", f"--log-file={self.valgrind_log}"] + super().argv()


def test_exit_after_h2c_upstream_traffic_touches_no_freed_memory(dataplane):
    # A worker's pooled h2c upstream connections were destroyed after its
    # io_context, their sockets and timers deregistering from a reactor already
    # freed: the heap was corrupted at exit, now and then with a crash.
    assert shutil.which("valgrind"), "valgrind is needed (hack/install-deps.sh)"
    echo = dataplane.echo("plain")
    h2port = free_port()
    dataplane.manager.spawn([binary("gantry-h2-echo"), f"--listen=127.0.0.1:{h2port}"],
                            dataplane.workdir / "h2-echo.log")
    wait_until(lambda: listening(h2port), START_TIMEOUT, "gantry-h2-echo to listen")
    h2 = sn_cluster("default/h2:80", [("127.0.0.1", h2port)])
    h2["protocol"] = "H2C"
    routes = [sn_route("r", [sn_rule("default/h2:80", prefix="/h2"), sn_rule(CLUSTER)])]
    proxy = MemcheckProxy(dataplane.manager, dataplane.workdir,
                          sn_snapshot(1, routes, [h2, sn_cluster(CLUSTER, [(echo.addr, echo.port)])]),
                          extra_args=["--http2", "on"], drain_seconds=0)
    proxy.start()
    for path, h1 in (("/h2/x", False), ("/plain", False), ("/plain", True), ("/h2/x", True)):
        out = subprocess.run(["h2load", *(["--h1"] if h1 else []), "-c2", "-m4", "-n200",
                              f"http://127.0.0.1:{proxy.http_port}{path}"],
                             capture_output=True, text=True, timeout=120)
        assert "200 succeeded, 0 failed" in out.stdout and "200 2xx" in out.stdout, out.stdout + out.stderr
    proxy.proc.send_signal(signal.SIGTERM)
    rc = proxy.proc.wait(timeout=60)
    assert rc == 0, f"exit {rc}\n{tail(proxy.valgrind_log, 60)}\n{tail(proxy.log)}"
