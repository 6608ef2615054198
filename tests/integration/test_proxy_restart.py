"""A restarted proxy gets the snapshot again: the controller reconnects.

The new proxy binds the same ports and the same control socket path (a stale
socket file from the killed one is still there) and starts empty: /readyz is
503 until the controller's FULL snapshot arrives.
"""

import signal

import pytest

from conftest import Proxy, count_backends, service_yaml, simple_route

HOST = "proxy-restart.example.com"


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_restarted_proxy_gets_snapshot_again(stack, sig):
    e = stack.echo("backend")
    stack.write("00-backend.yaml", service_yaml("backend", [(e.addr, e.port)]))
    stack.write("10-route.yaml", simple_route("r", "backend", HOST))
    stack.start()
    stack.wait_for_backend("backend", host=HOST)

    old = stack.proxy
    code = old.kill(sig)
    if sig == signal.SIGTERM:
        assert code == 0, f"proxy exit status after SIGTERM: {code}"

    new = Proxy(stack.manager, stack.workdir, stack.socket_path)
    new.http_port, new.stats_port, new.admin_port = old.http_port, old.stats_port, old.admin_port
    new.log = stack.workdir / "proxy-2.log"
    stack.proxy = new
    new.start()
    new.wait_ready()
    assert count_backends(new.http_port, 10, host=HOST) == {"backend": 10}
    dump = new.config_dump()
    assert dump["version"] > 0
    assert any(r.get("name") == "r" for r in dump.get("routes", [])), dump
    assert stack.controller.ready()
