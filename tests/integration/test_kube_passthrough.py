"""ingress-nginx ssl-passthrough through the real kube-apiserver, controller
and proxy (docs/migrating-from-ingress-nginx.md, docs/http.md "TLS
passthrough"). An Ingress of class nginx with ssl-passthrough: "true" for
pt.nx.test points at a Service whose endpoint is a real TLS server (openssl
s_server in the test hosts' network namespace, its own self-signed
certificate); with --ingress-nginx-enable-ssl-passthrough, a TLS client
naming pt.nx.test on the proxy's HTTPS port completes its handshake with that
server (its certificate, its answer), while another Ingress's host on the
same port gets gantry's certificate and HTTP routing. Deleting the
annotation's Ingress ends the passthrough.
"""

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "kube"))

from conftest import (CONVERGE_TIMEOUT, START_TIMEOUT, Proxy, free_port, new_manager, tail,  # noqa: E402
                      wait_until)
from kubeapi import ControlPlane, KubeController, TestHosts, endpoint_slice, service  # noqa: E402
from test_ingress_nginx import ingress, tls_secret  # noqa: E402

PT_HOST = "pt.nx.test"
WEB_HOST = "web.nx.test"


def self_signed(workdir, name, cn):
    cert, key = workdir / f"{name}.crt", workdir / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1",
                    "-subj", f"/CN={cn}", "-addext", f"subjectAltName=DNS:{PT_HOST}"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


@pytest.fixture(scope="module")
def env():
    manager = new_manager()
    with tempfile.TemporaryDirectory(prefix="gantry-pt-") as d:
        workdir = Path(d)
        cp = ControlPlane(workdir / "cp")
        hosts = None
        try:
            cp.start()
            cp.install_crd()
            hosts = TestHosts(manager, workdir)
            hosts.echo("web")
            # The TLS backend: openssl s_server answering any request with its status page.
            cert, key = self_signed(workdir, "backend", "pt-backend")
            addr = hosts.address()
            log = workdir / "s_server.log"
            proc = manager.spawn(["ip", "netns", "exec", hosts.ns, "openssl", "s_server", "-accept",
                                  f"{addr}:{TestHosts.PORT}", "-cert", str(cert), "-key", str(key), "-www"],
                                 log)
            wait_until(lambda: proc.poll() is None and "ACCEPT" in log.read_text(errors="replace"),
                       START_TIMEOUT, "openssl s_server to listen", on_timeout=lambda: tail(log))
            for svc, a in [("web", hosts.echos["web"]), ("db", addr)]:
                cp.apply(service(svc))
                cp.apply(endpoint_slice(svc, [a]))
            cp.apply({"kind": "IngressClass", "metadata": {"name": "nginx"},
                      "spec": {"controller": "k8s.io/ingress-nginx"}})
            tls_secret(cp, workdir, "web-tls", WEB_HOST)
            socket = workdir / "control.sock"
            https_port = free_port()
            proxy = Proxy(manager, workdir, socket, extra_args=["--https-listen", f"127.0.0.1:{https_port}"]).start()
            proxy.https_port = https_port
            ctl = KubeController(manager, workdir, cp.kubeconfig, socket,
                                 extra_args=["--ingress-nginx-compat", "on",
                                             "--ingress-nginx-enable-ssl-passthrough"]).start()
            ctl.wait_ready()
            yield cp, proxy, ctl, workdir
        finally:
            manager.cleanup()
            if hosts:
                hosts.close()
            cp.stop()


def s_client_subject(port, host):
    out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", host],
                         input=b"", capture_output=True, timeout=15)
    text = (out.stdout + out.stderr).decode(errors="replace")
    m = re.search(r"^subject=.*?CN\s*=\s*([^,\n/]+)", text, re.M)
    return m.group(1).strip() if m else None


def curl_https(port, host, ca):
    out = subprocess.run(["curl", "-sS", "--max-time", "5", "--resolve", f"{host}:{port}:127.0.0.1",
                          "--cacert", str(ca), f"https://{host}:{port}/"], capture_output=True, timeout=15)
    return out.returncode, out.stdout.decode(errors="replace") + out.stderr.decode(errors="replace")


def test_passthrough_host_reaches_the_tls_backend(env):
    cp, proxy, ctl, workdir = env
    cp.apply(ingress("db", PT_HOST, "/", "db", {"ssl-passthrough": "true"}))
    cp.apply(ingress("web", WEB_HOST, "/", "web", tls="web-tls"))
    wait_until(lambda: s_client_subject(proxy.https_port, PT_HOST) == "pt-backend", CONVERGE_TIMEOUT,
               "the passthrough entry to reach the proxy", on_timeout=lambda: tail(ctl.log))
    # The client verifies the backend's own certificate and gets s_server's page.
    rc, text = curl_https(proxy.https_port, PT_HOST, workdir / "backend.crt")
    assert rc == 0 and "s_server" in text, text
    # Another host on the same port: gantry's certificate, routed to the echo backend.
    wait_until(lambda: s_client_subject(proxy.https_port, WEB_HOST) == WEB_HOST, CONVERGE_TIMEOUT,
               "the web Ingress's certificate", on_timeout=lambda: tail(ctl.log))
    rc, text = curl_https(proxy.https_port, WEB_HOST, workdir / "web-tls.crt")
    assert rc == 0, text
    assert json.loads(text)["name"] == "web"
    dump = json.loads(subprocess.run(["curl", "-sS", f"http://127.0.0.1:{proxy.admin_port}/config_dump"],
                                     capture_output=True, timeout=15).stdout)
    assert dump["passthrough"] == [{"hostname": PT_HOST, "cluster": "default/db:8080", "owner": "default/db"}]


def test_deleting_the_ingress_ends_passthrough(env):
    cp, proxy, ctl, _ = env
    cp.apply(ingress("db", PT_HOST, "/", "db", {"ssl-passthrough": "true"}))
    wait_until(lambda: s_client_subject(proxy.https_port, PT_HOST) == "pt-backend", CONVERGE_TIMEOUT,
               "passthrough", on_timeout=lambda: tail(ctl.log))
    cp.delete("Ingress", "db")
    # The host is now terminated by gantry (no certificate for it: the default one, or none).
    wait_until(lambda: s_client_subject(proxy.https_port, PT_HOST) != "pt-backend", CONVERGE_TIMEOUT,
               "passthrough to end", on_timeout=lambda: tail(ctl.log))
