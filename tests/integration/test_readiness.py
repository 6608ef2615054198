"""Readiness: the proxy's /readyz is 503 until its first snapshot is applied;
the controller's /readyz is 200 once the proxy has ACKed its first snapshot.
Either side may start first."""

import time

from conftest import service_yaml, simple_route, wait_until

HOST = "ready.example.com"


def write_config(stack):
    e = stack.echo("backend")
    stack.write("00-backend.yaml", service_yaml("backend", [(e.addr, e.port)]))
    stack.write("10-route.yaml", simple_route("r", "backend", HOST))


def test_proxy_readyz_503_until_first_snapshot(stack):
    write_config(stack)
    stack.proxy.start()  # waits for /healthz only
    # Alive but not ready, and it stays so without a controller (sampled for ~1 s).
    for _ in range(10):
        assert stack.proxy.stats_status("/healthz") == 200
        assert stack.proxy.stats_status("/readyz") == 503
        time.sleep(0.1)
    stack.controller.start()
    stack.proxy.wait_ready()
    stack.controller.wait_ready()
    stack.wait_for_backend("backend", host=HOST)


def test_controller_first_waits_for_proxy(stack):
    write_config(stack)
    stack.controller.start()
    wait_until(lambda: stack.controller.proc.poll() is None and
               stack.controller.ready() is False, 10, "the controller to serve /readyz (not ready)")
    for _ in range(5):
        assert not stack.controller.ready()  # no proxy has ACKed anything
        time.sleep(0.1)
    stack.proxy.start()  # the controller must keep retrying the socket
    stack.proxy.wait_ready()
    stack.controller.wait_ready()
    stack.wait_for_backend("backend", host=HOST)
