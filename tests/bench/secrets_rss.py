"""Resident memory of gantry-controller in a cluster holding many Secrets no
route references (docs/security.md, "Secrets").

    /usr/bin/python3 tests/bench/secrets_rss.py [--secrets N] [--size BYTES] CONTROLLER [CONTROLLER...]

Starts a real etcd + kube-apiserver (hack/testbin/start-control-plane.sh),
creates N Opaque Secrets of BYTES bytes each (default 10,000 of 1 KiB) and 2%
as many kubernetes.io/tls ones, none referenced by a route, then for each
controller binary given: starts it (--source kube, admin kubeconfig, a proxy
socket nobody serves), waits until it logs that every informer has synced,
lets it settle, and prints its VmRSS; each binary is also measured in the
empty cluster first. Pass the binary of an older build to compare. Only
loopback addresses are used.
"""
import argparse
import base64
import concurrent.futures
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "integration"))
sys.path.insert(0, str(REPO / "tests" / "integration" / "kube"))

from kubeapi import ControlPlane  # noqa: E402


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return -1


def measure(binary, kubeconfig, workdir, tag):
    log = Path(workdir) / f"controller-{tag}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([binary, "--source", "kube", "--kubeconfig", kubeconfig,
                                 "--proxy-socket", str(Path(workdir) / f"none-{tag}.sock"),
                                 "--health-listen", "127.0.0.1:0"],
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while "every informer has synced" not in log.read_text(errors="replace"):
            if proc.poll() is not None:
                raise SystemExit(f"{binary} exited {proc.returncode}:\n{log.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise SystemExit(f"{binary} did not sync in 300 s:\n{log.read_text()[-2000:]}")
            time.sleep(0.2)
        time.sleep(3)  # let the allocator settle; take the larger of three samples
        samples = []
        for _ in range(3):
            samples.append(rss_kib(proc.pid))
            time.sleep(0.5)
        return max(samples)
    finally:
        proc.kill()
        proc.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--secrets", type=int, default=10000)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("controllers", nargs="+")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="gantry-secrets-rss-") as d:
        cp = ControlPlane(Path(d) / "cp")
        cp.start()
        try:
            cp.install_crd()
            empty = [measure(b, cp.kubeconfig, d, f"empty-{i}") for i, b in enumerate(args.controllers)]
            payload = base64.b64encode(os.urandom(args.size * 3 // 4)).decode()
            namespaces = [f"tenant-{i}" for i in range(10)]
            for ns in namespaces:
                cp.kubectl("create", "namespace", ns)

            def create(i):
                ns = namespaces[i % len(namespaces)]
                tls = i % 50 == 0
                body = {"apiVersion": "v1", "kind": "Secret",
                        "metadata": {"name": f"unrelated-{i}", "namespace": ns},
                        "type": "kubernetes.io/tls" if tls else "Opaque",
                        "data": {"tls.crt": payload, "tls.key": payload} if tls else {"blob": payload}}
                cp.request("POST", f"/api/v1/namespaces/{ns}/secrets", body, timeout=60)
            t0 = time.monotonic()
            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                list(pool.map(create, range(args.secrets)))
            print(f"created {args.secrets} Secrets of {args.size} bytes "
                  f"({args.secrets // 50} of type kubernetes.io/tls) in {time.monotonic() - t0:.0f} s")
            print(f"{'controller':60} {'VmRSS KiB':>10}")
            for b, kib in zip(args.controllers, empty):
                print(f"{b + ' (empty cluster)':60} {kib:>10}")
            for i, b in enumerate(args.controllers):
                print(f"{b + f' ({args.secrets} Secrets)':60} {measure(b, cp.kubeconfig, d, str(i)):>10}",
                      flush=True)
        finally:
            cp.stop()


if __name__ == "__main__":
    main()
