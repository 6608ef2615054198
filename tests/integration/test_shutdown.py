"""SIGTERM drains the proxy gracefully.

/readyz fails at once; traffic is still served for --drain-seconds, with
`Connection: close` on keep-alive answers; a slow request in flight when the
listeners close still completes with 200; then the process exits 0 and the
port is closed.
"""

import http.client
import signal
import socket
import threading
import time

from conftest import (HTTP_TIMEOUT, http_request, sn_cluster, sn_route, sn_rule, sn_snapshot,
                      wait_until)

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
