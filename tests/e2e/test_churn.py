"""Pod churn under load, the short version (ctest label `e2e`, issue #8).

The real control plane with kube-controller-manager, the test node agent and
Gantry as the Helm chart runs it (churn.py says how); a 3-replica Deployment
behind Service `web` and GatewayRoute `web`, 100 requests/s (every 10th a
POST) during each scenario. Assertions are counts, never durations:

- rolling update (maxSurge 25%, maxUnavailable 0, preStop 2 s): 0 failed requests;
- one pod SIGKILLed and restarted (requests of 50 ms, so some are in flight):
  0 failed idempotent (GET) requests;
- blue/green (Service selector switched to another Deployment): 0 failed requests;
- the GatewayRoute edited every second for 5 s: 0 failed requests.

Every observed endpoint-set change must reach the proxy (never_applied == 0);
propagation latencies are printed, not asserted. Needs root (network
namespace); skipped otherwise. The long version: hack/bench.sh churn.
Set GANTRY_E2E_WORKDIR=DIR to keep the logs and a timeline (DIR/timeline.txt).
"""

import contextlib
import os
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from churn import ChurnEnv, dump_timeline, format_result, markdown  # noqa: E402
from loadgen import IDEMPOTENT  # noqa: E402


@pytest.fixture(scope="module")
def env():
    if os.geteuid() != 0:
        pytest.skip("the e2e tests need root to create a network namespace for the pods")
    keep = os.environ.get("GANTRY_E2E_WORKDIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
    with (contextlib.nullcontext(keep) if keep else tempfile.TemporaryDirectory(prefix="gantry-e2e-")) as d:
        e = ChurnEnv(Path(d), prestop=2, grace=15, rate=100, connections=8)
        try:
            e.start()
            e.setup_blue(3)
            yield e
        finally:
            if keep and e.measure:
                dump_timeline(e, Path(d) / "timeline.txt")
            e.close()
            if e.results:
                print("\n" + markdown(e.results, e, "ctest -L e2e"))


def check(r, methods=None):
    text = format_result(r)
    assert r["error"] is None, text
    assert r["sent"] > 0, text
    assert r["propagation"]["never_applied"] == 0, text
    failed = r["failed"] if methods is None else r["failed_idempotent"]
    assert failed == {}, text


def test_rolling_update_no_failed_requests(env):
    r = env.rolling_update(3)
    check(r)
    assert r["propagation"]["timed"] > 0, format_result(r)  # the measurement saw the rollout


def test_sigkill_no_failed_idempotent_requests(env):
    """A GET in flight on a killed pod goes once more to another endpoint (the
    proxy retries an idempotent request whose fresh connection closed before
    any byte of the answer); only POSTs in flight may fail, and are reported."""
    check(env.sigkill(), methods=IDEMPOTENT)


def test_blue_green_no_failed_requests(env):
    check(env.blue_green(3))


def test_route_edits_no_failed_requests(env):
    check(env.route_edits(5))
