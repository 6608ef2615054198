"""Weighted splits between Services and round robin between the endpoints of one.

The proxy runs two workers; its default load balancer is a smooth weighted
round robin, which each worker may run on its own. The tolerances below follow
from that: per worker a smooth round robin is off its exact share by at most
one request per backend, so the totals are off by at most the number of
workers (the split's bound is wider, but far from what ignoring weights or a
uniform split would give).
"""

import http.client
import json

import pytest

from conftest import count_backends, route_yaml, service_yaml, simple_route, temporary_stack

WORKERS = 2
SPLIT_REQUESTS = 200
RR_REQUESTS = 30


@pytest.fixture(scope="module")
def balancing():
    with temporary_stack() as s:
        for name in ["stable", "canary"]:
            e = s.echo(name)
            s.write(f"00-{name}.yaml", service_yaml(name, [(e.addr, e.port)]))
        pool = s.echo_group(["pool-1", "pool-2", "pool-3"])
        s.write("00-pool.yaml", service_yaml("pool", [(e.addr, e.port) for e in pool]))
        s.write("10-split.yaml", route_yaml("split", [{"backendRefs": [
            {"name": "stable", "port": 8080, "weight": 90},
            {"name": "canary", "port": 8080, "weight": 10}]}], hostnames=["split.example.com"]))
        s.write("10-zero.yaml", route_yaml("zero", [{"backendRefs": [
            {"name": "stable", "port": 8080, "weight": 1},
            {"name": "canary", "port": 8080, "weight": 0}]}], hostnames=["zero.example.com"]))
        s.write("10-pool.yaml", simple_route("pool", "pool", "pool.example.com"))
        s.start()
        yield s


def test_weighted_split_90_10(balancing):
    counts = count_backends(balancing.proxy.http_port, SPLIT_REQUESTS, host="split.example.com")
    assert set(counts) == {"stable", "canary"}, counts
    expected_canary = SPLIT_REQUESTS * 10 // 100
    tolerance = 8  # 4% of 200: a uniform split (100) or a swapped one (180) is far outside
    assert abs(counts["canary"] - expected_canary) <= tolerance, counts
    assert counts["stable"] + counts["canary"] == SPLIT_REQUESTS


def test_weight_zero_receives_nothing(balancing):
    counts = count_backends(balancing.proxy.http_port, 40, host="zero.example.com")
    assert counts == {"stable": 40}


def test_endpoints_of_one_service_are_round_robined(balancing):
    counts = count_backends(balancing.proxy.http_port, RR_REQUESTS, host="pool.example.com")
    assert set(counts) == {"pool-1", "pool-2", "pool-3"}, counts
    share = RR_REQUESTS // 3
    for name, n in counts.items():
        assert abs(n - share) <= WORKERS, f"{name} got {n} of {RR_REQUESTS}: {counts}"


def test_round_robin_on_one_keep_alive_connection(balancing):
    """Requests on one client connection are balanced too (no stickiness per
    downstream connection): one worker, so the split is exact."""
    conn = http.client.HTTPConnection("127.0.0.1", balancing.proxy.http_port, timeout=5)
    counts = {}
    try:
        for _ in range(RR_REQUESTS):
            conn.request("GET", "/", headers={"Host": "pool.example.com"})
            r = conn.getresponse()
            body = r.read()
            assert r.status == 200, body
            name = json.loads(body)["name"]
            counts[name] = counts.get(name, 0) + 1
    finally:
        conn.close()
    assert counts == {"pool-1": 10, "pool-2": 10, "pool-3": 10}
