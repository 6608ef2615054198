"""Runs the official Gateway API conformance suite against Gantry.

Environment (all real, nothing of the suite re-implemented):
- etcd + kube-apiserver + kube-controller-manager (hack/testbin), with the
  deployment, replicaset, endpointslice, serviceaccount, namespace and
  garbage-collector controllers (the suite deletes namespaces and Deployments);
- the Gateway API CRDs of the pinned module version, experimental channel by
  default (a superset of the standard one: HTTPRoute retry is there; the report
  says which channel), --channel standard for the standard ones alone;
- the test node agent (tests/e2e/node_agent.py) playing the kubelet: every pod
  of the suite's echo-basic image runs the echo-basic program built from the
  same module, in a network namespace of its own with a real pod IP
  (PerPodNetwork, ConformanceImages);
- gantry-controller and gantry-proxy, in one of two deployment models
  (docs/gateway-api.md), --mode:
  - service (the default, what the Helm chart runs): --gateway-bind-address
    service. Every Gateway gets a Service (ClusterIP) whose EndpointSlice is
    gantry's copy of the proxy "pod"'s Service (gantry-system/gantry, whose
    endpoint is this host's pod-network address); its listener ports go to
    proxy ports of its own. The real kube-proxy (iptables mode, from
    hack/testbin) routes the ClusterIPs, as in a cluster. status.addresses is
    the ClusterIP;
  - address: --gateway-address 127.0.1.0/24, every Gateway gets its own
    loopback address of that range, and the proxy binds its listeners there
    (no Service, no kube-proxy; GatewayInfrastructure is not run);
  the proxy's own --http-listen is on a free port, unused here;
- the GatewayClass `gantry` (controllerName gantry.dev/gateway-controller);
- the suite itself: conformance.test (tests/conformance/conformance_test.go,
  which calls sigs.k8s.io/gateway-api/conformance.RunConformance) with its own
  flags, default timeouts, writing its report. The features it runs are those
  the GatewayClass claims in status.supportedFeatures (inferred by the suite;
  with --run-test, read from the status and passed explicitly), unless
  --features names others (to try features before claiming them).

    sudo python3 tests/conformance/run.py [--report PATH] [--run-test NAME]
        [--workdir DIR] [--features LIST] [--profiles LIST] [-- extra suite flags]

The profiles (default GATEWAY-HTTP,GATEWAY-GRPC) run in one suite run and
one report. The GRPCRoute tests' backends are the base manifests'
grpc-infra-backend-* pods: echo-basic with GRPC_ECHO_SERVER=1, which the node
agent runs like every echo-basic pod (its gRPC server listens on port 3000,
the port the agent waits for).

Exits with the suite's exit code. Needs root (network namespaces, ports 80, 443, 8080).
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))
sys.path.insert(0, str(REPO / "tests" / "integration"))
sys.path.insert(0, str(REPO / "tests" / "integration" / "kube"))

from conftest import binary, free_port, new_manager, tail  # noqa: E402
from kubeapi import ControlPlane  # noqa: E402
from node_agent import ConformanceImages, NodeAgent, PerPodNetwork  # noqa: E402
from churn import testbin_dir, wait_for  # noqa: E402

CONTROLLER_NAME = "gantry.dev/gateway-controller"
GATEWAY_CLASS = "gantry"
# Every Gateway gets one address of 127.0.(1+2k).0/24; USABLE (127.0.(2+2k).1)
# is the address a Gateway may claim in spec.addresses (GatewayStaticAddresses),
# UNUSABLE one it may not. k is the pod network's slot, so two runs at once
# (two worktrees) never bind the same Gateway addresses.
def gateway_addresses(slot):
    return f"127.0.{1 + 2 * slot}.0/24", f"127.0.{2 + 2 * slot}.1"


UNUSABLE = "192.0.2.1"
# Service mode: the apiserver's --service-cluster-ip-range (start-control-plane.sh),
# and the address a Gateway may claim in spec.addresses (a Service externalIP).
SERVICE_CIDR = "10.0.0.0/24"


def static_service_address(slot):
    return f"198.19.{slot}.1"


def ip(*args, check=True):
    out = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and out.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {out.stderr.strip()}")
    return out


class KubeProxy:
    """The real kube-proxy, iptables mode: ClusterIPs and externalIPs of this
    control plane's Services are DNATed to their endpoints for traffic this
    host sends. Its rules are removed at the end (kube-proxy --cleanup).
    The Service addresses are routed to the pod network's bridge (the DNAT
    happens after the first route lookup): nothing sent to them leaves the
    machine, and a connection made before kube-proxy has the Service's rules
    fails fast (no neighbour answers for it) instead of reaching whatever the
    default route leads to. Rules are synced on every change
    (--iptables-min-sync-period=0): the Gateway's status already carries the
    ClusterIP when the Service is written."""

    def __init__(self, manager, workdir, kubeconfig, network, cidrs):
        self.binary = testbin_dir() / "kube-proxy"
        if not self.binary.exists():
            raise RuntimeError(f"{self.binary} not found: run hack/testbin.sh")
        self.routes = []
        for cidr in cidrs:
            ip("route", "replace", cidr, "dev", network.bridge)
            self.routes.append(cidr)
        self.log = workdir / "kube-proxy.log"
        self.proc = manager.spawn([
            str(self.binary), f"--kubeconfig={kubeconfig}", "--proxy-mode=iptables",
            "--hostname-override=conformance-node", f"--cluster-cidr=198.18.{network.slot}.0/24",
            "--iptables-localhost-nodeports=false", "--iptables-min-sync-period=0",
            "--conntrack-max-per-core=0",
            "--conntrack-tcp-timeout-established=0", "--conntrack-tcp-timeout-close-wait=0",
            f"--healthz-bind-address=127.0.0.1:{free_port()}",
            f"--metrics-bind-address=127.0.0.1:{free_port()}"], self.log)

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        subprocess.run([str(self.binary), "--cleanup"], capture_output=True, timeout=60)
        for cidr in self.routes:
            ip("route", "del", cidr, check=False)
KCM_CONTROLLERS = ("deployment,replicaset,endpointslice,serviceaccount,serviceaccount-token,"
                   "namespace,garbagecollector")


def build():
    out = subprocess.run([str(HERE / "build.sh")], capture_output=True, text=True, timeout=3600)
    if out.returncode != 0:
        raise RuntimeError(f"tests/conformance/build.sh failed:\n{out.stderr[-3000:]}")
    module_dir = Path(out.stderr.strip().splitlines()[-1])
    return Path(out.stdout.strip().splitlines()[-1]), module_dir


def kubectl(kubeconfig, *args, check=True):
    out = subprocess.run(["kubectl", f"--kubeconfig={kubeconfig}", *args], capture_output=True,
                         text=True, timeout=120)
    if check and out.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)} exited {out.returncode}: {out.stderr.strip()}")
    return out


def claimed_features(kubeconfig):
    """The names in the GatewayClass's status.supportedFeatures, or None before gantry wrote
    it (the CRD's default status already has a condition: Accepted Unknown)."""
    out = kubectl(kubeconfig, "get", "gatewayclass", GATEWAY_CLASS, "-o", "json", check=False)
    if out.returncode != 0:
        return None
    status = json.loads(out.stdout).get("status") or {}
    if not any(c.get("type") == "Accepted" and c.get("status") == "True"
               for c in status.get("conditions") or []):
        return None
    return [f["name"] for f in status.get("supportedFeatures") or []]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--report", default=None, help="where the suite writes its report")
    ap.add_argument("--run-test", default="", help="one test (the suite's --run-test)")
    ap.add_argument("--workdir", default=None, help="keep logs here (default: a temp dir, removed)")
    ap.add_argument("--features", default="",
                    help="run these features instead of those the GatewayClass claims")
    ap.add_argument("--profiles", default="GATEWAY-HTTP,GATEWAY-GRPC",
                    help="the suite's --conformance-profiles")
    ap.add_argument("--timeout", default="40m", help="go test -test.timeout")
    ap.add_argument("--channel", default="experimental", choices=("standard", "experimental"),
                    help="which CRDs of the module to install")
    ap.add_argument("--mode", default="service", choices=("service", "address"),
                    help="deployment model: a Service per Gateway (the chart's) or an address each")
    ap.add_argument("extra", nargs="*", help="more suite flags")
    args = ap.parse_args()

    t0 = time.monotonic()
    suite_dir, module_dir = build()
    print(f"conformance: suite binaries in {suite_dir} ({time.monotonic() - t0:.0f}s)", flush=True)
    os.environ.setdefault("GANTRY_TESTBIN", str(testbin_dir()))
    os.environ["GANTRY_KCM_CONTROLLERS"] = KCM_CONTROLLERS

    keep = args.workdir is not None
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="gantry-conformance-"))
    if keep and workdir.exists():
        # A control plane's etcd left there would bring back the last run's
        # objects (pods with addresses this run's network gave to others).
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    manager = new_manager()
    network = cp = agent = kube_proxy = None
    rc = 1

    def on_term(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_term)
    try:
        network = PerPodNetwork()
        gateway_range, usable = gateway_addresses(network.slot)
        cp = ControlPlane(workdir / "cp", with_kcm=True).start()
        kc = cp.kubeconfig
        cp.install_crd()  # gantry's GatewayRoute: the controller watches it too
        crds = sorted(p for p in (module_dir / "config" / "crd" / args.channel).glob("*.yaml")
                      if p.name != "kustomization.yaml")
        kubectl(kc, "apply", "--server-side", *[a for p in crds for a in ("-f", str(p))])
        wait_for(lambda: kubectl(kc, "get", "gatewayclasses", check=False).returncode == 0, 60,
                 "the Gateway API CRDs")
        wait_for(lambda: kubectl(kc, "get", "serviceaccount", "default", check=False).returncode == 0,
                 60, "the default ServiceAccount")
        agent = NodeAgent(cp, manager, workdir, network, node_name="conformance-node",
                          launcher=ConformanceImages(suite_dir / "echo-basic")).start()

        if args.mode == "service":
            usable = static_service_address(network.slot)
            port_min = 20000 + 1000 * network.slot
            # The proxy "pod": its Service, whose endpoint is this host on the pod network.
            proxy_svc = workdir / "proxy-service.yaml"
            proxy_svc.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": [
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "gantry-system"}},
                {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "gantry", "namespace": "gantry-system"},
                 "spec": {"ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}},
                {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                 "metadata": {"name": "gantry-1", "namespace": "gantry-system",
                              "labels": {"kubernetes.io/service-name": "gantry"}},
                 "addressType": "IPv4", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
                 "endpoints": [{"addresses": [network.host_ip], "conditions": {"ready": True}}]}]}))
            kubectl(kc, "apply", "-f", str(proxy_svc))
            kube_proxy = KubeProxy(manager, workdir, kc, network, [SERVICE_CIDR, f"{usable}/32"])
            mode_args = ["--gateway-bind-address=service", "--gateway-proxy-service=gantry-system/gantry",
                         "--gateway-service-type=ClusterIP", f"--gateway-port-range={port_min}-{port_min + 999}",
                         f"--gateway-static-address={usable}"]
        else:
            mode_args = [f"--gateway-address={gateway_range}", f"--gateway-static-address={usable}"]

        socket = workdir / "control.sock"
        admin, health = free_port(), free_port()
        proxy = manager.spawn([binary("gantry-proxy"), f"--http-listen=127.0.0.1:{free_port()}",
                               f"--https-listen=127.0.0.1:{free_port()}",
                               f"--admin-listen=127.0.0.1:{admin}",
                               f"--control-socket={socket}"], workdir / "proxy.log")
        controller = manager.spawn([binary("gantry-controller"), "--source=kube", f"--kubeconfig={kc}",
                                    "--gateway-api", f"--gateway-controller={CONTROLLER_NAME}",
                                    *mode_args, f"--proxy-socket={socket}",
                                    f"--health-listen=127.0.0.1:{health}"],
                                   workdir / "controller.log")
        time.sleep(1)
        procs = [(proxy, workdir / "proxy.log"), (controller, workdir / "controller.log")]
        if kube_proxy:
            procs.append((kube_proxy.proc, kube_proxy.log))
        for p, log in procs:
            if p.poll() is not None:
                raise RuntimeError(f"{p.args[0]} exited {p.returncode}\n{tail(log)}")
        gwc = workdir / "gatewayclass.yaml"
        gwc.write_text(f"apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\n"
                       f"metadata:\n  name: {GATEWAY_CLASS}\nspec:\n  controllerName: {CONTROLLER_NAME}\n")
        kubectl(kc, "apply", "-f", str(gwc))
        features = args.features
        if not features:
            wait_for(lambda: claimed_features(kc) is not None, 60, "the GatewayClass status")
            print("conformance: the GatewayClass claims " + ",".join(claimed_features(kc)), flush=True)
            if args.run_test:  # the suite infers features only for a whole run
                features = ",".join(claimed_features(kc))

        report = Path(args.report).resolve() if args.report else workdir / "report.yaml"
        argv = [str(suite_dir / "conformance.test"), "-test.v", f"-test.timeout={args.timeout}",
                f"--gateway-class={GATEWAY_CLASS}", f"--conformance-profiles={args.profiles}",
                f"--report-output={report}", f"--usable-address={usable}",
                f"--unusable-address={UNUSABLE}",
                "--organization=gantry", "--project=gantry", "--url=https://gantry.dev",
                "--version=dev", "--contact=gantry maintainers", "--mode=default",
                "--cleanup-base-resources=false"]
        if features:
            argv.append(f"--supported-features={features}")
        if args.run_test:
            argv.append(f"--run-test={args.run_test}")
        argv += args.extra
        print("conformance: " + " ".join(argv), flush=True)
        env = dict(os.environ, KUBECONFIG=kc)
        t1 = time.monotonic()
        with open(workdir / "suite.log", "wb") as log:
            p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                                 cwd=str(workdir))
            for line in p.stdout:
                log.write(line)
                sys.stdout.buffer.write(line)
                sys.stdout.flush()
            rc = p.wait()
        print(f"conformance: suite exited {rc} after {time.monotonic() - t1:.0f}s; report {report}; "
              f"logs in {workdir}", flush=True)
        if agent.errors:
            print("node agent errors:\n  " + "\n  ".join(agent.errors[:20]), flush=True)
    finally:
        if agent:
            agent.stop()
        if kube_proxy:
            kube_proxy.close()
        manager.cleanup()
        if network:
            network.close()
        if cp:
            cp.stop()
        if not keep:
            subprocess.run(["rm", "-rf", str(workdir)], check=False)
    return rc


if __name__ == "__main__":
    sys.exit(main())
