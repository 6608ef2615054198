"""Leader election between two gantry-controllers (--leader-elect).

Each controller has its own proxy and both serve traffic; only the holder of
the coordination.k8s.io Lease `gantry-controller` writes status. When the
holder is SIGKILLed (no release), the other takes over once the lease has not
been renewed for its 15 s duration (retry period 2 s): within 20 s. The
takeover time is printed.
"""

import socket
import sys
import tempfile
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "kube"))

from conftest import CONVERGE_TIMEOUT, Proxy, count_backends, new_manager, wait_until  # noqa: E402
from kubeapi import (ControlPlane, KubeController, TestHosts, endpoint_slice,  # noqa: E402
                     gateway_route, service, simple_route)

TAKEOVER_LIMIT = 20.0


@pytest.fixture(scope="module")
def env():
    manager = new_manager()
    with tempfile.TemporaryDirectory(prefix="gantry-kt-") as d:
        workdir = Path(d)
        cp = ControlPlane(workdir / "cp")
        hosts = None
        try:
            cp.start()
            cp.install_crd()
            hosts = TestHosts(manager, workdir)
            hosts.echo("a")
            pairs = []
            for name in ["one", "two"]:
                sock = workdir / f"{name}.sock"
                proxy = Proxy(manager, workdir, sock)
                proxy.log = workdir / f"proxy-{name}.log"
                proxy.start()
                ctl = KubeController(manager, workdir, cp.kubeconfig, sock, name=f"ctl-{name}",
                                     extra_args=["--leader-elect",
                                                 "--leader-election-namespace", "default"])
                pairs.append((proxy, ctl.start()))
            for _, ctl in pairs:
                ctl.wait_ready()
            yield cp, hosts.echos, pairs
        finally:
            manager.cleanup()
            if hosts:
                hosts.close()
            cp.stop()


def leaders(pairs):
    return [ctl for _, ctl in pairs
            if ctl.alive() and ctl.metrics().get("gantry_controller_leader") == 1]


def holder(cp):
    return cp.get("Lease", "gantry-controller")["spec"].get("holderIdentity", "")


def test_one_writer_and_takeover_after_kill(env):
    cp, h, pairs = env
    cp.apply(service("le"))
    cp.apply(endpoint_slice("le", [h["a"]]))
    cp.apply(simple_route("le", "le.kube.test", "le"))
    # Both replicas translate and push to their own proxy.
    for proxy, _ in pairs:
        wait_until(lambda: proxy.get("/", host="le.kube.test").backend == "a", CONVERGE_TIMEOUT,
                   "each proxy to serve le")

    leader = wait_until(lambda: (lambda l: l[0] if len(l) == 1 else None)(leaders(pairs)),
                        30, "exactly one leader")
    follower = next(ctl for _, ctl in pairs if ctl is not leader)
    assert holder(cp) == f"{socket.gethostname()}_{leader.proc.pid}"
    assert "acquired lease default/gantry-controller" in leader.log_text()

    # Only the leader writes status.
    cp.apply(gateway_route("le-bad", ["bad.kube.test"], [{
        "matches": [{"path": {"type": "RegularExpression", "value": "("}}],
        "backendRefs": [{"name": "le", "port": 8080}]}]))
    wait_until(lambda: cp.route_conditions("le-bad").get("Accepted", {}).get("status") == "False",
               CONVERGE_TIMEOUT, "le-bad's status from the leader")
    wait_until(lambda: leader.metrics()["gantry_controller_status_writes_total"] >= 2,
               CONVERGE_TIMEOUT, "the leader's writes to be counted")
    assert follower.metrics()["gantry_controller_status_writes_total"] == 0
    assert follower.metrics()["gantry_controller_leader"] == 0

    # Kill the leader without a chance to release: the follower takes over.
    leader.kill()
    t0 = time.monotonic()
    wait_until(lambda: follower.metrics()["gantry_controller_leader"] == 1, TAKEOVER_LIMIT + 5,
               "the follower to take over")
    takeover = time.monotonic() - t0
    print(f"\nleader SIGKILLed -> follower leading after {takeover:.1f} s "
          f"(lease 15 s, retry 2 s)")
    assert takeover < TAKEOVER_LIMIT
    assert holder(cp) == f"{socket.gethostname()}_{follower.proc.pid}"
    assert "acquired lease" in follower.log_text()

    # The new leader writes status: fix the route, watch Accepted turn True.
    cp.apply(gateway_route("le-bad", ["bad.kube.test"], [{
        "matches": [{"path": {"type": "RegularExpression", "value": "/(ok)?"}}],
        "backendRefs": [{"name": "le", "port": 8080}]}]))
    wait_until(lambda: cp.route_conditions("le-bad").get("Accepted", {}).get("status") == "True",
               CONVERGE_TIMEOUT, "le-bad's status from the new leader")
    wait_until(lambda: follower.metrics()["gantry_controller_status_writes_total"] >= 1,
               CONVERGE_TIMEOUT, "the new leader's writes to be counted")
    # The dead leader's proxy keeps serving its last snapshot.
    dead_proxy = next(p for p, c in pairs if c is leader)
    assert count_backends(dead_proxy.http_port, 5, host="le.kube.test") == {"a": 5}


def test_sigterm_releases_the_lease(env):
    cp, _, pairs = env
    live = [ctl for _, ctl in pairs if ctl.alive()]
    assert len(live) == 1 and leaders(pairs) == live
    assert live[0].kill(sig=15) == 0  # SIGTERM: a clean exit that gives the lease up
    wait_until(lambda: holder(cp) == "", 10, "the lease to be released")
