"""The proxy keeps serving without its controller and resyncs when it returns.

SNAPSHOT.md: the proxy never depends on the controller being up; on reconnect
the proxy sends HELLO and the controller answers with a FULL snapshot, so a
change made while the controller was down takes effect once it is back.
"""

import signal
import time

from conftest import count_backends, service_yaml, simple_route

HOST = "restart.example.com"


def route(backend):
    return simple_route("restart", backend, HOST)


def setup_stack(stack):
    for name in ["before", "after"]:
        e = stack.echo(name)
        stack.write(f"00-{name}.yaml", service_yaml(name, [(e.addr, e.port)]))
    stack.write("10-route.yaml", route("before"))
    stack.start()
    stack.wait_for_backend("before", host=HOST)


def test_sigkilled_controller_leaves_proxy_serving_and_resyncs(stack):
    setup_stack(stack)
    version = stack.proxy.config_dump()["version"]

    assert stack.controller.kill(signal.SIGKILL) == -signal.SIGKILL
    # Serving goes on: a bounded number of requests spread over about a second.
    for _ in range(5):
        assert count_backends(stack.proxy.http_port, 10, host=HOST) == {"before": 10}
        time.sleep(0.2)
    assert stack.proxy.ready()
    assert stack.proxy.config_dump()["version"] == version

    # A change made while the controller is down (renamed into place) ...
    stack.write("10-route.yaml", route("after"), atomic=True)
    time.sleep(0.5)  # nobody is watching: it must not apply by itself
    assert count_backends(stack.proxy.http_port, 5, host=HOST) == {"before": 5}

    # ... takes effect once a new controller has resynced the proxy.
    stack.restart_controller()
    stack.wait_for_backend("after", host=HOST)
    assert count_backends(stack.proxy.http_port, 10, host=HOST) == {"after": 10}
    assert stack.proxy.config_dump()["version"] > version


def test_sigterm_controller_exits_cleanly_and_proxy_serves(stack):
    setup_stack(stack)
    assert stack.controller.kill(signal.SIGTERM) == 0
    assert count_backends(stack.proxy.http_port, 10, host=HOST) == {"before": 10}
    stack.restart_controller()
    assert count_backends(stack.proxy.http_port, 10, host=HOST) == {"before": 10}
