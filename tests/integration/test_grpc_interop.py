"""grpc-go's interoperability suite through gantry-proxy (issue 13).

The interop server and client are grpc-go v1.85.0's own (`interop/server`,
`interop/client`), pinned by hack/grpc-interop/go.mod and built by
hack/grpc-interop.sh into the test-binary cache; hack/test.sh exports their
directory as GANTRY_GRPC_INTEROP. Nothing of the suite is written here: the
server runs plaintext (h2c) as the backend of an "H2C" cluster, and the client
runs every standard case that applies to a proxy against gantry-proxy, over
h2c with prior knowledge and over TLS (ALPN h2). A case passes when the
client exits 0 (it checks every payload, status, message and metadata
itself).

Cases left out: the credential cases (compute_engine_creds, oauth2...,
need Google's servers), pick_first_unary (needs several backends behind
one name), orca_* (needs the server's ORCA setup), and the soak cases
(they are load, not behaviour). grpc-go's client has no
client_compressed_* / server_compressed_* cases (grpc-java's and
grpc-c++'s clients do).
"""

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import (START_TIMEOUT, CertAuthority, free_port, sn_cluster, sn_route, sn_rule, sn_snapshot,
                      temporary_dataplane, wait_until)
from test_http2_codec import listening

CASES = [
    "empty_unary",
    "large_unary",
    "client_streaming",
    "server_streaming",
    "ping_pong",
    "empty_stream",
    "timeout_on_sleeping_server",
    "cancel_after_begin",
    "cancel_after_first_response",
    "status_code_and_message",
    "special_status_message",
    "custom_metadata",
    "unimplemented_method",
    "unimplemented_service",
]
HOST = "grpc.example"


def interop_dir():
    d = os.environ.get("GANTRY_GRPC_INTEROP")
    if not d:
        pytest.skip("GANTRY_GRPC_INTEROP is unset (hack/test.sh sets it from hack/grpc-interop.sh)")
    d = Path(d)
    assert (d / "interop_client").exists() and (d / "interop_server").exists(), d
    return d


@pytest.fixture(scope="module")
def proxy():
    bins = interop_dir()
    with temporary_dataplane() as dp:
        port = free_port()
        dp.manager.spawn([str(bins / "interop_server"), f"--port={port}"], dp.workdir / "interop-server.log")
        wait_until(lambda: listening(port), START_TIMEOUT, "the grpc-go interop server to listen")
        cluster = sn_cluster("default/interop:8080", [("127.0.0.1", port)])
        cluster["protocol"] = "H2C"
        ca = CertAuthority(dp.workdir)
        log = dp.workdir / "access.log"
        p = dp.proxy(sn_snapshot(1, [sn_route("grpc", [sn_rule("default/interop:8080")])], [cluster],
                                 [ca.certificate("default/grpc-tls", "grpc", [HOST])]),
                     https=True, access_log=log, extra_args=["--http2", "on"])
        p.ca, p.access_log_path, p.bins, p.workdir = ca, log, bins, dp.workdir
        yield p


def run_client(proxy, case, mode):
    argv = [str(proxy.bins / "interop_client"), "--server_host=127.0.0.1", f"--test_case={case}"]
    if mode == "tls":
        argv += [f"--server_port={proxy.https_port}", "--use_tls", "--use_test_ca", f"--ca_file={proxy.ca.path}",
                 f"--server_host_override={HOST}"]
    else:
        argv += [f"--server_port={proxy.http_port}"]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("mode", ["h2c", "tls"])
@pytest.mark.parametrize("case", CASES)
def test_interop_case_through_the_proxy(proxy, case, mode):
    out = run_client(proxy, case, mode)
    assert out.returncode == 0, f"{case} over {mode}:\n{out.stdout[-3000:]}{out.stderr[-3000:]}"


def test_the_calls_went_through_the_proxy(proxy):
    # The client ran against the proxy's ports only; its calls are in the
    # proxy's access log as HTTP/2 requests to the interop service.
    run_client(proxy, "empty_unary", "h2c")
    run_client(proxy, "empty_unary", "tls")

    def seen():
        lines = [json.loads(l) for l in proxy.access_log_path.read_text().splitlines() if l.strip()]
        calls = [l for l in lines if l.get("path") == "/grpc.testing.TestService/EmptyCall"]
        return calls if {c.get("proto") for c in calls} == {"HTTP/2"} and len(calls) >= 2 else None

    calls = wait_until(seen, START_TIMEOUT, "the interop calls in the access log")
    assert all(c.get("status") == 200 for c in calls), calls
