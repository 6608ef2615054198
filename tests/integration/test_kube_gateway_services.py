"""A Service per Gateway (gantry-controller --gateway-bind-address service, the
Helm chart's deployment model, docs/gateway-api.md) against a real
kube-apiserver + etcd and a real proxy:

- each Gateway gets a Service in its namespace with its spec.infrastructure
  labels and annotations, owned by the Gateway, without a selector, its ports
  the listener ports with targetPorts of the proxy's own; and an EndpointSlice
  copying the endpoints of the proxy pods' Service (the proxy "pod" here is
  this host, on the test network's host address);
- status.addresses is the Service's ClusterIP, Programmed=True;
- Gateways are isolated: each Gateway's proxy port serves only its routes;
- the generated objects follow the proxy's endpoints, come back when deleted
  by hand, and go when their Gateway goes;
- spec.infrastructure.parametersRef makes the Gateway Accepted=False
  InvalidParameters.
"""
import os
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "kube"))

from conftest import CONVERGE_TIMEOUT, Proxy, http_request, new_manager, tail, wait_until  # noqa: E402
from kubeapi import ApiError, ControlPlane, KubeController, TestHosts, endpoint_slice, service  # noqa: E402
from test_kube_gateway_api import CONTROLLER, conditions, gateway_api_crds, route  # noqa: E402

PROXY_NS = "gantry-system"
# Proxy ports for Gateway listeners: a range of this run's own.
# Below the kernel's ephemeral range (32768-60999), so that no outgoing
# connection or free_port() of a test running alongside can hold one.
PORT_MIN = 30000 + (os.getpid() % 270) * 10
PORT_MAX = PORT_MIN + 9


@pytest.fixture(scope="module")
def env():
    manager = new_manager()
    with tempfile.TemporaryDirectory(prefix="gantry-gwsvc-") as d:
        workdir = Path(d)
        cp = ControlPlane(workdir / "cp")
        hosts = None
        try:
            cp.start()
            cp.install_crd()
            cp.kubectl("apply", "--server-side", "-f", str(gateway_api_crds()))
            wait_until(lambda: cp.kubectl("get", "httproutes", check=False) is not None
                       and cp.kubectl("get", "referencegrants", "-A", check=False) is not None,
                       60, "the Gateway API CRDs")
            hosts = TestHosts(manager, workdir)
            for name in ["a", "b"]:
                hosts.echo(name)
            proxy = Proxy(manager, workdir, workdir / "control.sock")
            proxy.start()
            controller = KubeController(
                manager, workdir, cp.kubeconfig, workdir / "control.sock",
                extra_args=["--gateway-api", "--gateway-bind-address=service",
                            f"--gateway-proxy-service={PROXY_NS}/gantry",
                            "--gateway-service-type=ClusterIP",
                            f"--gateway-port-range={PORT_MIN}-{PORT_MAX}"])
            controller.start()
            controller.wait_ready()
            cp.apply({"kind": "Namespace", "metadata": {"name": PROXY_NS}})
            cp.apply({"kind": "Namespace", "metadata": {"name": "team-a"}})
            cp.apply({"kind": "Namespace", "metadata": {"name": "team-b"}})
            # The proxy pods' Service: this host, on the test network's host side.
            cp.apply(service("gantry", namespace=PROXY_NS))
            host_ip = f"198.51.100.{hosts.base + 1}"
            cp.apply(endpoint_slice("gantry", [host_ip], namespace=PROXY_NS))
            cp.apply({"kind": "GatewayClass", "metadata": {"name": "gantry"},
                      "spec": {"controllerName": CONTROLLER}})
            for team, backend in [("team-a", "a"), ("team-b", "b")]:
                cp.apply(service("web", namespace=team))
                cp.apply(endpoint_slice("web", [hosts.echos[backend]], namespace=team))
                gw = {"kind": "Gateway", "metadata": {"name": "gw", "namespace": team},
                      "spec": {"gatewayClassName": "gantry",
                               "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}}
                if team == "team-a":
                    gw["spec"]["infrastructure"] = {"labels": {"cost-center": "a1"},
                                                    "annotations": {"lb.example/scheme": "internal"}}
                    gw["spec"]["listeners"].append({"name": "alt", "port": 8080, "protocol": "HTTP"})
                cp.apply(gw)
                cp.apply(route("web", {"parentRefs": [{"name": "gw"}],
                                       "rules": [{"backendRefs": [{"name": "web", "port": 8080}]}]},
                               namespace=team))
            yield cp, hosts, proxy, controller, host_ip
        finally:
            manager.cleanup()
            if hosts:
                hosts.close()
            cp.stop()


def get_or_none(cp, kind, name, namespace):
    try:
        return cp.get(kind, name, namespace)
    except ApiError as e:
        if e.status == 404:
            return None
        raise


def backend_at(port, addr):
    """The echo backend a request on the proxy port reaches; None while nothing listens."""
    try:
        return http_request(port, "/", host="x.test", addr=addr).backend
    except OSError:
        return None


def programmed(cp, namespace):
    gw = cp.get("Gateway", "gw", namespace)
    return gw if conditions(gw, "status").get("Programmed", {}).get("status") == "True" else None


def test_a_service_per_gateway(env):
    cp, hosts, proxy, controller, host_ip = env
    gw = wait_until(lambda: programmed(cp, "team-a"), CONVERGE_TIMEOUT, "Gateway team-a/gw Programmed",
                    on_timeout=lambda: tail(controller.log))
    svc = cp.get("Service", "gantry-gw", "team-a")
    meta = svc["metadata"]
    assert meta["labels"]["cost-center"] == "a1"
    assert meta["labels"]["gateway.networking.k8s.io/gateway-name"] == "gw"
    assert meta["annotations"]["lb.example/scheme"] == "internal"
    assert meta["ownerReferences"] == [{"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
                                        "name": "gw", "uid": gw["metadata"]["uid"], "controller": True}]
    assert "selector" not in svc["spec"]
    assert svc["spec"]["type"] == "ClusterIP"
    ports = {p["port"]: p["targetPort"] for p in svc["spec"]["ports"]}
    assert sorted(ports) == [80, 8080]
    assert all(PORT_MIN <= t <= PORT_MAX for t in ports.values()), ports
    assert gw["status"]["addresses"] == [{"type": "IPAddress", "value": svc["spec"]["clusterIP"]}]

    slice_ = wait_until(lambda: get_or_none(cp, "EndpointSlice", "gantry-gw", "team-a"), CONVERGE_TIMEOUT,
                        "the Gateway's EndpointSlice", on_timeout=lambda: tail(controller.log))
    assert slice_["metadata"]["labels"]["kubernetes.io/service-name"] == "gantry-gw"
    assert slice_["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] == "gantry-controller"
    assert [e["addresses"] for e in slice_["endpoints"]] == [[host_ip]]
    assert sorted(p["port"] for p in slice_["ports"]) == sorted(ports.values())

    # Isolation: each Gateway's proxy ports serve its own routes only.
    gw_b = wait_until(lambda: programmed(cp, "team-b"), CONVERGE_TIMEOUT, "Gateway team-b/gw Programmed")
    port_b = cp.get("Service", "gantry-gw", "team-b")["spec"]["ports"][0]["targetPort"]
    assert port_b not in ports.values()
    assert gw_b["status"]["addresses"][0]["value"] != gw["status"]["addresses"][0]["value"]
    for port, backend in [(ports[80], "a"), (ports[8080], "a"), (port_b, "b")]:
        wait_until(lambda: backend_at(port, host_ip) == backend,
                   CONVERGE_TIMEOUT, f"port {port} to reach {backend}", on_timeout=lambda: tail(controller.log))
        for _ in range(20):
            assert http_request(port, "/", host="x.test", addr=host_ip).backend == backend
    # The proxy's own listener serves no Gateway's route.
    assert proxy.get("/", host="x.test").status == 404


def test_generated_objects_follow_and_come_back(env):
    cp, hosts, proxy, controller, host_ip = env
    wait_until(lambda: programmed(cp, "team-a"), CONVERGE_TIMEOUT, "Gateway team-a/gw Programmed")
    # A second proxy replica: every Gateway's EndpointSlice gets it.
    cp.apply(endpoint_slice("gantry", [host_ip, "10.244.1.7"], namespace=PROXY_NS))
    wait_until(lambda: sorted(e["addresses"][0] for e in
                              cp.get("EndpointSlice", "gantry-gw", "team-b")["endpoints"])
               == sorted([host_ip, "10.244.1.7"]),
               CONVERGE_TIMEOUT, "the generated EndpointSlice to follow the proxy's",
               on_timeout=lambda: tail(controller.log))
    cp.apply(endpoint_slice("gantry", [host_ip], namespace=PROXY_NS))

    # Deleted by hand: written again, with the same ports (the proxy keeps serving).
    before = cp.get("Service", "gantry-gw", "team-b")["spec"]["ports"][0]["targetPort"]
    cp.delete("Service", "gantry-gw", "team-b")
    svc = wait_until(lambda: get_or_none(cp, "Service", "gantry-gw", "team-b"), 30,
                     "the deleted Service to be written again", on_timeout=lambda: tail(controller.log))
    wait_until(lambda: backend_at(svc["spec"]["ports"][0]["targetPort"], host_ip) == "b",
               CONVERGE_TIMEOUT, "team-b served again")
    assert svc["spec"]["ports"][0]["targetPort"] in range(PORT_MIN, PORT_MAX + 1)
    del before  # (the hash may pick another free port once the old one is forgotten)

    # A listener removed: its Service port goes, and its proxy port is closed.
    gw = cp.get("Gateway", "gw", "team-a")
    alt = [p["targetPort"] for p in cp.get("Service", "gantry-gw", "team-a")["spec"]["ports"] if p["port"] == 8080]
    gw["spec"]["listeners"] = [l for l in gw["spec"]["listeners"] if l["name"] != "alt"]
    cp.apply({"kind": "Gateway", "metadata": {"name": "gw", "namespace": "team-a"}, "spec": gw["spec"]})
    wait_until(lambda: [p["port"] for p in cp.get("Service", "gantry-gw", "team-a")["spec"]["ports"]] == [80],
               CONVERGE_TIMEOUT, "the Service to lose port 8080", on_timeout=lambda: tail(controller.log))

    def closed():
        try:
            http_request(alt[0], "/", host="x.test", addr=host_ip)
            return False
        except OSError:
            return True
    wait_until(closed, CONVERGE_TIMEOUT, "the proxy to close the removed listener's port")

    # The Gateway deleted: its generated objects go (gantry deletes them; the
    # ownerReference lets the garbage collector do it as well in a cluster).
    cp.delete("Gateway", "gw", "team-b")
    wait_until(lambda: get_or_none(cp, "Service", "gantry-gw", "team-b") is None
               and get_or_none(cp, "EndpointSlice", "gantry-gw", "team-b") is None,
               CONVERGE_TIMEOUT, "team-b's Service and EndpointSlice deleted",
               on_timeout=lambda: tail(controller.log))


def test_parameters_ref_is_invalid(env):
    cp, hosts, proxy, controller, host_ip = env
    cp.apply({"kind": "Gateway", "metadata": {"name": "params", "namespace": "team-a"},
              "spec": {"gatewayClassName": "gantry",
                       "infrastructure": {"parametersRef": {"group": "invalid.io", "kind": "InvalidParameters",
                                                            "name": "invalid"}},
                       "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}})

    def invalid():
        c = conditions(cp.get("Gateway", "params", "team-a"), "status").get("Accepted", {})
        return c.get("status") == "False" and c.get("reason") == "InvalidParameters"
    wait_until(invalid, CONVERGE_TIMEOUT, "Accepted=False InvalidParameters", on_timeout=lambda: tail(controller.log))
    assert get_or_none(cp, "Service", "gantry-params", "team-a") is None
