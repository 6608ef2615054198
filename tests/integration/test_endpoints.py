"""Editing an EndpointSlice file moves traffic; the route itself never changes.

In standalone mode EndpointSlices are files; an edit must reach the proxy
(as an endpoint delta or a full snapshot) without a restart. The old backend
keeps running throughout, so traffic moving proves the configuration changed,
not that a backend failed.
"""

import pytest

from conftest import CONVERGE_TIMEOUT, count_backends, service_yaml, simple_route, wait_until

HOST = "ep.example.com"


@pytest.fixture
def moving(stack):
    old, new = stack.echo_group(["old", "new"])
    stack.write("00-svc.yaml", service_yaml("moving", [(old.addr, old.port)]))
    stack.write("10-route.yaml", simple_route("ep", "moving", HOST))
    stack.start()
    stack.wait_for_backend("old", host=HOST)
    return stack, old, new


@pytest.mark.parametrize("atomic", [False, True], ids=["in-place-write", "rename"])
def test_edit_moves_traffic_to_new_endpoint(moving, atomic):
    stack, old, new = moving
    version_before = stack.proxy.config_dump()["version"]
    stack.write("00-svc.yaml", service_yaml("moving", [(new.addr, new.port)]), atomic=atomic)
    stack.wait_for_backend("new", host=HOST)
    # Converged: every request now goes to the new endpoint, none to the old one.
    assert count_backends(stack.proxy.http_port, 20, host=HOST) == {"new": 20}
    assert stack.proxy.config_dump()["version"] > version_before
    assert old.proc.poll() is None  # the old backend is still up: the config moved traffic


def test_added_endpoint_joins_rotation(moving):
    stack, old, new = moving
    stack.write("00-svc.yaml", service_yaml("moving", [(old.addr, old.port), (new.addr, new.port)]))
    stack.wait_for_backend("new", host=HOST)
    counts = count_backends(stack.proxy.http_port, 20, host=HOST)
    assert set(counts) == {"old", "new"}, counts


def test_no_endpoints_answers_503_then_recovers(moving):
    stack, old, _ = moving
    stack.write("00-svc.yaml", service_yaml("moving", []))
    stack.wait_for_status(503, host=HOST)
    stack.write("00-svc.yaml", service_yaml("moving", [(old.addr, old.port)]))
    stack.wait_for_backend("old", host=HOST)


def test_config_dump_shows_the_new_endpoint(moving):
    stack, _, new = moving
    stack.write("00-svc.yaml", service_yaml("moving", [(new.addr, new.port)]))

    def dumped():
        dump = stack.proxy.config_dump()
        endpoints = [(ep.get("address"), ep.get("port"))
                     for c in dump.get("clusters", []) for ep in c.get("endpoints", [])]
        return (new.addr, new.port) in endpoints
    wait_until(dumped, CONVERGE_TIMEOUT, "config_dump to list the new endpoint",
               on_timeout=stack.logs)
