"""The kube source recovering from API-server trouble.

The control plane runs with --watch-cache=false, so a watch resumed from a
resourceVersion etcd has compacted gets etcd's own 410 Gone (with the watch
cache on, a restarted API server answers 410 "too old resource version" for
any old resourceVersion, which would hide the difference between resuming
and relisting).

- API server restarted mid-watch: the watches end, the controller backs off,
  reconnects and resumes from its resourceVersion; a change made right after
  the restart takes effect; the endpoint removed is gone from the proxy.
- the controller frozen (SIGSTOP), the API server restarted under it, objects
  changed (one deleted) and etcd compacted: the resumed watch gets 410 Gone,
  the controller relists, converges and prunes the deleted route.
"""

import signal
import sys
import tempfile
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "kube"))

from conftest import CONVERGE_TIMEOUT, Proxy, count_backends, new_manager, tail, wait_until  # noqa: E402
from kubeapi import (ControlPlane, KubeController, TestHosts, cluster_endpoints,  # noqa: E402
                     endpoint_slice, service, simple_route)

RECOVER_TIMEOUT = 45.0  # API server back (~5 s) + the controller's backoff (<= 30 s jittered)


@pytest.fixture(scope="module")
def env():
    manager = new_manager()
    with tempfile.TemporaryDirectory(prefix="gantry-kt-") as d:
        workdir = Path(d)
        cp = ControlPlane(workdir / "cp", apiserver_args=["--watch-cache=false"])
        hosts = None
        try:
            cp.start()
            cp.install_crd()
            hosts = TestHosts(manager, workdir)
            for name in ["a", "b", "c"]:
                hosts.echo(name)
            socket = workdir / "control.sock"
            proxy = Proxy(manager, workdir, socket).start()
            controller = KubeController(manager, workdir, cp.kubeconfig, socket).start()
            controller.wait_ready()
            yield cp, hosts.echos, proxy, controller
        finally:
            manager.cleanup()
            if hosts:
                hosts.close()
            cp.stop()


def wait_endpoints(proxy, controller, cluster, want, timeout=RECOVER_TIMEOUT):
    wait_until(lambda: cluster_endpoints(proxy, cluster) == sorted(want), timeout,
               f"{cluster} endpoints to be {want}",
               on_timeout=lambda: f"have {cluster_endpoints(proxy, cluster)}\n{tail(controller.log)}")


def test_apiserver_restart_resumes_and_converges(env):
    cp, h, proxy, controller = env
    cp.apply(service("rs"))
    cp.apply(endpoint_slice("rs", [h["a"], h["b"]]))
    cp.apply(simple_route("rs", "rs.kube.test", "rs"))
    wait_endpoints(proxy, controller, "default/rs:8080", [h["a"], h["b"]], CONVERGE_TIMEOUT)
    restarts = controller.metrics()["gantry_controller_kube_watch_restarts_total"]

    cp.restart_apiserver()
    # Right after the restart (the controller is still backing off): drop a.
    cp.apply(endpoint_slice("rs", [h["b"]]))
    wait_endpoints(proxy, controller, "default/rs:8080", [h["b"]])
    assert count_backends(proxy.http_port, 20, host="rs.kube.test") == {"b": 20}
    m = controller.metrics()
    assert m["gantry_controller_kube_watch_restarts_total"] > restarts
    assert controller.ready()

    # Watches work again: a later change goes through too.
    cp.apply(endpoint_slice("rs", [h["c"]]))
    wait_endpoints(proxy, controller, "default/rs:8080", [h["c"]], CONVERGE_TIMEOUT)


def test_etcd_compaction_gone_relists(env):
    cp, h, proxy, controller = env
    cp.apply(service("cm"))
    cp.apply(endpoint_slice("cm", [h["a"]]))
    cp.apply(simple_route("cm", "cm.kube.test", "cm"))
    wait_endpoints(proxy, controller, "default/cm:8080", [h["a"]], CONVERGE_TIMEOUT)
    relists = controller.metrics()["gantry_controller_kube_relists_total"]

    controller.proc.send_signal(signal.SIGSTOP)
    try:
        # While the controller is frozen: the API server restarts (its watches
        # are cut before any event is sent into them), objects change, and etcd
        # compacts past the controller's resourceVersion.
        cp.restart_apiserver()
        cp.apply(endpoint_slice("cm", [h["b"]]))
        cp.apply(simple_route("cm2", "cm2.kube.test", "cm"))
        cp.delete("GatewayRoute", "cm")
        rev = cp.etcd_compact()
        assert rev > 0
    finally:
        controller.proc.send_signal(signal.SIGCONT)

    wait_endpoints(proxy, controller, "default/cm:8080", [h["b"]])
    wait_until(lambda: proxy.get("/", host="cm2.kube.test").backend == "b", RECOVER_TIMEOUT,
               "cm2 to serve")
    # The route deleted during the outage is gone (a relist prunes it).
    wait_until(lambda: proxy.get("/", host="cm.kube.test").status == 404, RECOVER_TIMEOUT,
               "the deleted route to disappear")
    assert controller.metrics()["gantry_controller_kube_relists_total"] > relists, \
        tail(controller.log)
    assert "is gone (410" in controller.log_text()
    time.sleep(0.2)
    assert controller.ready()
