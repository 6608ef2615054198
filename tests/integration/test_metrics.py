"""What the proxy reports about itself matches the traffic it served.

After a known mix of requests: /metrics counts gantry_requests_total by route
(the label X-Gateway-Route names) and code class, fills the latency
histogram, shows active connections, gantry_snapshot_version is the applied
version and NACKs are counted; /upstreams lists clusters and endpoints; the
JSON access log (--access-log FILE) has one line per request with every field.
"""

import http.client
import json
import re

import pytest

from conftest import (FRAME_NACK, HTTP_TIMEOUT, get_json, sn_cluster, sn_route, sn_rule,
                      sn_snapshot, temporary_dataplane, wait_until)

HOST = "metrics.example.com"
CLUSTER = "default/metrics:80"
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$')
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')

# (path, host, expected status)
TRAFFIC = ([("/ok", HOST, 200)] * 3 + [("/status/503", HOST, 503)] * 2
           + [("/status/404", HOST, 404)] + [("/nowhere", "unknown.example.com", 404)])


def snapshot(version, echo):
    return sn_snapshot(version, [sn_route("metrics", [sn_rule(CLUSTER)], hostnames=[HOST])],
                       [sn_cluster(CLUSTER, [(echo.addr, echo.port)])])


def samples(text):
    """[(name, {label: value}, float value)] of a Prometheus text exposition."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, f"unparsable metrics line: {line!r}"
        out.append((m.group(1), dict(LABEL.findall(m.group(2) or "")), float(m.group(3))))
    return out


def value(text, name, **labels):
    found = [v for n, l, v in samples(text) if n == name and all(l.get(k) == x for k, x in labels.items())]
    assert len(found) == 1, f"{name}{labels}: {len(found)} samples"
    return found[0]


@pytest.fixture(scope="module")
def served():
    with temporary_dataplane() as dp:
        echo = dp.echo("metrics")
        log = dp.workdir / "access.log"
        proxy = dp.proxy(snapshot(1, echo), access_log=log, extra_args=["--debug-headers"])
        proxy.echo, proxy.access_log_path = echo, log
        proxy.answers = []
        for path, host, status in TRAFFIC:
            conn = http.client.HTTPConnection("127.0.0.1", proxy.http_port, timeout=HTTP_TIMEOUT)
            conn.request("GET", path, headers={"Host": host, "Connection": "close"})
            r = conn.getresponse()
            r.read()
            conn.close()
            assert r.status == status, (path, r.status)
            proxy.answers.append((path, host, status, dict((k.lower(), v) for k, v in r.getheaders())))
        proxy.route_label = proxy.answers[0][3]["x-gateway-route"]
        # A request is counted just after its last byte went out: a client can
        # read its answer a moment before the counter moves. Wait (bounded)
        # until every request of TRAFFIC is counted.
        def counted():
            return sum(v for n, _, v in samples(proxy.metrics_text()) if n == "gantry_requests_total")
        wait_until(lambda: counted() >= len(TRAFFIC), 5, "every request to be counted",
                   on_timeout=lambda: proxy.metrics_text())
        yield proxy


def test_requests_total_by_route_and_code_class(served):
    text = served.metrics_text()
    route = served.route_label
    assert route.startswith("default/metrics"), route
    assert value(text, "gantry_requests_total", route=route, code_class="2xx") == 3
    assert value(text, "gantry_requests_total", route=route, code_class="5xx") == 2
    assert value(text, "gantry_requests_total", route=route, code_class="4xx") == 1
    no_route = [(l, v) for n, l, v in samples(text)
                if n == "gantry_requests_total" and l.get("route") != route]
    assert no_route and sum(v for _, v in no_route) == 1, no_route
    assert all(l.get("code_class") == "4xx" for l, _ in no_route)


def test_latency_histogram(served):
    text = served.metrics_text()
    route = served.route_label
    assert value(text, "gantry_request_duration_seconds_count", route=route) == 6
    assert value(text, "gantry_request_duration_seconds_bucket", route=route, le="+Inf") == 6
    buckets = sorted(((float(l["le"]), v) for n, l, v in samples(text)
                      if n == "gantry_request_duration_seconds_bucket" and l.get("route") == route))
    counts = [v for _, v in buckets]
    assert counts == sorted(counts), "histogram buckets are not cumulative"
    assert value(text, "gantry_request_duration_seconds_sum", route=route) > 0


def test_active_connections(served):
    def active():
        return value(served.metrics_text(), "gantry_downstream_connections_active")
    wait_until(lambda: active() == 0, 5, "no active connection")
    conns = [http.client.HTTPConnection("127.0.0.1", served.http_port, timeout=HTTP_TIMEOUT)
             for _ in range(3)]
    for c in conns:
        c.request("GET", "/ok", headers={"Host": HOST})
        c.getresponse().read()
    assert active() == 3
    for c in conns:
        c.close()
    wait_until(lambda: active() == 0, 5, "active connections back to 0")


def test_upstreams_lists_clusters_and_endpoints(served):
    up = get_json(served.admin_port, "/upstreams")
    clusters = {c["name"]: c for c in up["clusters"]}
    assert set(clusters) == {CLUSTER}
    eps = [e["address"] for e in clusters[CLUSTER]["endpoints"]]
    assert eps == [f"{served.echo.addr}:{served.echo.port}"]


def test_access_log_has_one_line_per_request(served):
    def lines():
        text = served.access_log_path.read_text() if served.access_log_path.exists() else ""
        return [json.loads(l) for l in text.splitlines() if l.strip()]
    # The log is written asynchronously: wait for the lines (bounded).
    wait_until(lambda: len(lines()) >= len(TRAFFIC), 5, "access log lines")
    # Each worker hands its lines over in batches: match lines to requests by id
    # (lines of different workers may interleave out of request order).
    by_id = {rec.get("requestId"): rec for rec in lines()}
    fields = {"time", "client", "method", "host", "path", "status", "bytesIn", "bytesOut",
              "durationMs", "upstream", "route", "requestId"}
    for path, host, status, headers in served.answers:
        assert headers["x-request-id"] in by_id, f"no access log line for {path} on {host}"
        rec = by_id[headers["x-request-id"]]
        assert fields <= set(rec), f"missing {fields - set(rec)} in {rec}"
        assert rec["client"] == "127.0.0.1"
        assert (rec["method"], rec["host"], rec["path"], rec["status"]) == ("GET", host, path, status)
        assert rec["requestId"] == headers["x-request-id"]
        assert rec["bytesIn"] > 0 and rec["bytesOut"] > 0 and rec["durationMs"] >= 0
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", rec["time"]), rec["time"]
        if host == HOST:
            assert rec["route"] == served.route_label
            assert rec["upstream"] == f"{served.echo.addr}:{served.echo.port}"
            assert rec["upstreamMs"] >= 0
        else:
            assert rec["upstream"] == "" and "upstreamMs" not in rec


def test_snapshot_version_and_nacks(served):
    # Runs last: it replaces the snapshot.
    text = served.metrics_text()
    assert value(text, "gantry_snapshot_version") == 1
    nacks = value(text, "gantry_snapshot_nacks_total")
    with served.control() as control:
        control.full(snapshot(7, served.echo))
        assert value(served.metrics_text(), "gantry_snapshot_version") == 7
        bad = snapshot(8, served.echo)
        bad["routes"][0]["rules"][0]["backends"][0]["cluster"] = "default/missing:80"
        answer_type, answer = control.send(1, bad)
        assert answer_type == FRAME_NACK, answer
    text = served.metrics_text()
    assert value(text, "gantry_snapshot_nacks_total") == nacks + 1
    assert value(text, "gantry_snapshot_version") == 7
