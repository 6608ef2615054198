"""Per-cluster upstream state as an operator sees it: circuit breaker state
and outlier ejections in /metrics and /upstreams, the state of a cluster
freed when the cluster leaves the snapshot, and the --debug-headers flag.
Real proxy, real gantry-echo backends (their /status/NNN paths make the
failures).
"""

import re

import pytest

from conftest import (ControlClient, get_json, http_request, sn_cluster, sn_route, sn_rule, sn_snapshot,
                      temporary_dataplane)

BREAKER = {"consecutiveFailures": 4, "openDurationMs": 60000, "halfOpenRequests": 1}
OUTLIER = {"consecutive5xx": 2, "consecutiveConnectFailures": 2, "baseEjectionTimeMs": 60000,
           "maxEjectionPercent": 50}


def snapshot(version, echos, with_flaky=True):
    ep = [(e.addr, e.port) for e in echos]
    clusters = [sn_cluster("default/steady:8080", ep[:1])]
    routes = [sn_route("steady", [sn_rule("default/steady:8080")], hostnames=["steady.example.com"])]
    if with_flaky:
        clusters.append(sn_cluster("default/flaky:8080", ep))
        routes.append(sn_route("flaky", [sn_rule("default/flaky:8080", policy={
            "circuitBreaker": BREAKER, "outlierDetection": OUTLIER})], hostnames=["flaky.example.com"]))
    return sn_snapshot(version, routes, clusters)


def samples(text, name):
    """{labels string: value} of one metric."""
    return {m.group(1): float(m.group(2))
            for m in re.finditer(r'^' + re.escape(name) + r'\{([^}]*)\} (\S+)$', text, re.M)}


@pytest.fixture(scope="module")
def env():
    with temporary_dataplane() as dp:
        echos = [dp.echo("s1"), dp.echo("s2")]
        proxy = dp.proxy(snapshot(1, echos), workers=1, extra_args=["--debug-headers"])
        proxy.echos = echos
        # 503s eject one of the two endpoints (at most 50 %) and open the breaker.
        for _ in range(6):
            http_request(proxy.http_port, "/status/503", host="flaky.example.com")
        yield proxy


def test_breaker_state_and_ejections_are_in_metrics(env):
    text = env.metrics_text()
    state = samples(text, "gantry_circuit_breaker_state")
    assert state['cluster="default/flaky:8080",state="open"'] == 1
    assert state['cluster="default/flaky:8080",state="closed"'] == 0
    assert samples(text, "gantry_circuit_breaker_opened_total")['cluster="default/flaky:8080"'] == 1
    assert samples(text, "gantry_circuit_breaker_rejected_total")['cluster="default/flaky:8080"'] >= 1
    assert samples(text, "gantry_outlier_ejected_endpoints")['cluster="default/flaky:8080"'] == 1
    assert samples(text, "gantry_outlier_ejections_total")['cluster="default/flaky:8080"'] == 1


def test_upstreams_shows_breaker_state_and_ejected_endpoints(env):
    up = get_json(env.admin_port, "/upstreams")
    flaky = next(c for c in up["clusters"] if c["name"] == "default/flaky:8080")
    assert flaky["circuitBreaker"] == "open"
    assert sorted(e["ejected"] for e in flaky["endpoints"]) == [False, True]
    steady = next(c for c in up["clusters"] if c["name"] == "default/steady:8080")
    assert "circuitBreaker" not in steady and steady["endpoints"][0]["ejected"] is False


def test_debug_headers_name_route_upstream_and_time(env):
    r = http_request(env.http_port, "/x", host="steady.example.com")
    e = env.echos[0]
    assert r.headers["x-gateway-route"].startswith("default/steady")
    assert r.headers["x-gateway-upstream"] == f"{e.addr}:{e.port}"
    assert re.fullmatch(r"\d+\.\d{3}ms", r.headers["x-gateway-response-time"])


def test_debug_headers_are_off_by_default():
    with temporary_dataplane() as dp:
        echo = dp.echo("quiet")
        proxy = dp.proxy(snapshot(1, [echo], with_flaky=False))
        r = http_request(proxy.http_port, "/x", host="steady.example.com")
        assert r.status == 200
        assert not [h for h in r.headers if h.startswith("x-gateway-")], r.headers


def test_state_of_a_cluster_that_left_the_snapshot_is_freed(env):
    with ControlClient(env.socket_path) as control:
        control.full(snapshot(2, env.echos, with_flaky=False))
        up = get_json(env.admin_port, "/upstreams")
        assert [b for b in up["circuitBreakers"] if b["cluster"] == "default/flaky:8080"] == []
        assert [o for o in up["outlierDetectors"] if o["cluster"] == "default/flaky:8080"] == []
        text = env.metrics_text()
        assert not [k for k in samples(text, "gantry_circuit_breaker_state") if "flaky" in k]
        assert not [k for k in samples(text, "gantry_outlier_ejected_endpoints") if "flaky" in k]
        # Back in the snapshot: fresh state (closed, nothing ejected).
        control.full(snapshot(3, env.echos))
        assert http_request(env.http_port, "/ok", host="flaky.example.com").status == 200
        up = get_json(env.admin_port, "/upstreams")
        flaky = next(c for c in up["clusters"] if c["name"] == "default/flaky:8080")
        assert flaky["circuitBreaker"] == "closed"
        assert [e["ejected"] for e in flaky["endpoints"]] == [False, False]
