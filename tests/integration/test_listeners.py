"""The management listeners as the chart runs them (docs/security.md).

The proxy's stats listener and the controller's health listener are bound to
every address (the chart's 0.0.0.0, reached here through a second loopback
address standing for the pod IP) and serve /healthz, /readyz and /metrics only.
/config_dump, /upstreams and /status live on the admin listeners, bound to
127.0.0.1: nothing on the "pod address" reaches them, and the stats listeners
answer 404 for them.
"""

import socket

from conftest import Controller, http_request, service_yaml, simple_route

HOST = "listeners.example.com"
POD_ADDR = "127.0.0.2"  # not 127.0.0.1: stands for the pod's address


def refused(addr, port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(2)
        return s.connect_ex((addr, port)) != 0


class ChartLikeController(Controller):
    def argv(self):
        return super().argv() + ["--health-listen", f"0.0.0.0:{self.health_port}"]


def test_admin_endpoints_only_on_loopback(stack):
    e = stack.echo("backend")
    stack.write("00-backend.yaml", service_yaml("backend", [(e.addr, e.port)]))
    stack.write("10-route.yaml", simple_route("r", "backend", HOST))
    stack.proxy.extra_args += ["--stats-listen", f"0.0.0.0:{stack.proxy.stats_port}"]
    stack.controller = ChartLikeController(stack.manager, stack.workdir, stack.manifests, stack.socket_path)
    stack.start()
    stack.wait_for_backend("backend", host=HOST)

    # Proxy: probes and metrics on the pod address ...
    assert http_request(stack.proxy.stats_port, "/healthz", addr=POD_ADDR).status == 200
    assert http_request(stack.proxy.stats_port, "/readyz", addr=POD_ADDR).status == 200
    metrics = http_request(stack.proxy.stats_port, "/metrics", addr=POD_ADDR)
    assert metrics.status == 200 and b"gantry_requests_total" in metrics.body
    # ... but never the routing configuration or the pod addresses.
    for path in ("/config_dump", "/upstreams"):
        r = http_request(stack.proxy.stats_port, path, addr=POD_ADDR)
        assert r.status == 404, (path, r)
        assert b"admin listener" in r.body, r
        assert HOST.encode() not in r.body and e.addr.encode() not in r.body
    assert refused(POD_ADDR, stack.proxy.admin_port), "the proxy admin port answers on the pod address"
    # On loopback the admin listener has them.
    dump = http_request(stack.proxy.admin_port, "/config_dump")
    assert dump.status == 200 and HOST in dump.body.decode()
    up = http_request(stack.proxy.admin_port, "/upstreams")
    assert up.status == 200 and e.addr in up.body.decode()

    # Controller: the same split for /status.
    ctl = stack.controller
    assert http_request(ctl.health_port, "/readyz", addr=POD_ADDR).status == 200
    assert http_request(ctl.health_port, "/metrics", addr=POD_ADDR).status == 200
    r = http_request(ctl.health_port, "/status", addr=POD_ADDR)
    assert r.status == 404 and b"admin listener" in r.body, r
    assert refused(POD_ADDR, ctl.admin_port), "the controller admin port answers on the pod address"
    assert any(rt.get("name") == "r" for rt in ctl.status()["routes"])


def test_listeners_can_be_turned_off(dataplane):
    from conftest import sn_snapshot
    proxy = dataplane.proxy(sn_snapshot(1, [], []), extra_args=["--admin-listen", "off"])
    assert proxy.stats_status("/readyz") == 200
    assert refused("127.0.0.1", proxy.admin_port)
