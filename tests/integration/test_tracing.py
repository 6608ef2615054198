"""Distributed tracing (docs/tracing.md) against a real OpenTelemetry Collector.

gantry-otelcol (hack/otelcol.sh: the collector's own otelcol package with the
OTLP receiver and the contrib file exporter, pinned by hack/otelcol/go.mod)
receives the proxy's spans over OTLP/HTTP and writes them to a file; the tests
read that file and check trace ids, parent ids and attributes, and read the
trace context gantry-echo received (it echoes the request's headers):

- a new trace, a continued W3C trace (the backend sees the gateway's span as
  its parent, tracestate forwarded), a continued B3 trace;
- a 502 exported although its route samples nothing (5xx decided at the end);
- a retried request (retry count and events);
- a WebSocket upgrade;
- a caller's "not sampled" followed (nothing exported, the backend still gets
  the context);
- the collector killed: zero failed requests, dropped spans and export errors
  counted, export resumes when it is back.
"""

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
import websocket

from conftest import (CONVERGE_TIMEOUT, START_TIMEOUT, ProcessManager, free_port, http_request, refusing_port,
                      route_yaml, service_yaml, sn_cluster, sn_route, sn_rule, sn_snapshot, tail,
                      temporary_dataplane, wait_until)

import http.server
import socketserver
import threading


class _Always503(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(503)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


def otelcol_binary():
    path = os.environ.get("GANTRY_OTELCOL")
    if not path:
        pytest.skip("GANTRY_OTELCOL is not set (hack/test.sh sets it from hack/otelcol.sh)")
    assert Path(path).exists(), path
    return path


class Collector:
    """gantry-otelcol with an OTLP/HTTP receiver on `port`, spans to `out`."""

    def __init__(self, manager, workdir, port):
        self.manager, self.workdir, self.port = manager, Path(workdir), port
        self.generation = 0
        self.proc = None
        self.out = None

    def start(self):
        self.generation += 1
        self.out = self.workdir / f"spans-{self.generation}.jsonl"
        config = self.workdir / f"otelcol-{self.generation}.yaml"
        config.write_text(f"""
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{self.port}
exporters:
  file:
    path: {self.out}
    flush_interval: 50ms
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [file]
""")
        log = self.workdir / f"otelcol-{self.generation}.log"
        self.proc = self.manager.spawn([otelcol_binary(), "--config", str(config)], log)

        def listening():
            if self.proc.poll() is not None:
                pytest.fail(f"otelcol exited with {self.proc.returncode}\n{tail(log)}")
            with socket.socket() as s:
                s.settimeout(0.5)
                return s.connect_ex(("127.0.0.1", self.port)) == 0
        wait_until(listening, START_TIMEOUT, "the collector to listen", on_timeout=lambda: tail(log))

    def kill(self):
        ProcessManager.kill(self.proc)

    def spans(self):
        """Every span written so far (all generations), each with its resource's attributes."""
        out = []
        for g in range(1, self.generation + 1):
            f = self.workdir / f"spans-{g}.jsonl"
            if not f.exists():
                continue
            for line in f.read_text().splitlines():
                if not line.strip():
                    continue
                try:
                    doc = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line still being written
                for rs in doc.get("resourceSpans", []):
                    res = attrs(rs.get("resource", {}).get("attributes", []))
                    for ss in rs.get("scopeSpans", []):
                        for s in ss.get("spans", []):
                            s["_resource"] = res
                            s["_attrs"] = attrs(s.get("attributes", []))
                            s["_generation"] = g
                            out.append(s)
        return out


def attrs(lst):
    out = {}
    for a in lst:
        v = a.get("value", {})
        if "stringValue" in v:
            out[a["key"]] = v["stringValue"]
        elif "intValue" in v:
            out[a["key"]] = int(v["intValue"])
        elif "boolValue" in v:
            out[a["key"]] = v["boolValue"]
        else:
            out[a["key"]] = v
    return out


HOSTS = {"ok": "trace.example.com", "dead": "dead.example.com", "retry": "retry.example.com",
         "ws": "ws.example.com", "quiet": "quiet.example.com"}


@pytest.fixture(scope="module")
def env():
    bad = _Server(("127.0.0.1", 0), _Always503)
    threading.Thread(target=bad.serve_forever, daemon=True).start()
    with temporary_dataplane() as dp:
        collector = Collector(dp.manager, dp.workdir, free_port())
        collector.start()
        echo = dp.echo("a")
        clusters = [
            sn_cluster("default/echo:8080", [(echo.addr, echo.port)]),
            sn_cluster("default/dead:8080", [("127.0.0.1", refusing_port())]),
            sn_cluster("default/flaky:8080", [("127.0.0.1", bad.server_address[1]), (echo.addr, echo.port)]),
        ]
        retry = {"attempts": 2, "onStatuses": [503], "backoffBaseMs": 1, "backoffMaxMs": 5}
        routes = [
            sn_route("shop", [sn_rule("default/echo:8080")], hostnames=[HOSTS["ok"]]),
            sn_route("ws", [sn_rule("default/echo:8080")], hostnames=[HOSTS["ws"]]),
            # Samples no new trace: only a 5xx (decided at the end) is exported.
            sn_route("dead", [sn_rule("default/dead:8080", policy={"tracing": {"sampling": 0}})],
                     hostnames=[HOSTS["dead"]]),
            sn_route("quiet", [sn_rule("default/echo:8080", policy={"tracing": {"sampling": 0}})],
                     hostnames=[HOSTS["quiet"]]),
            # The first endpoint always answers 503: a listed status, retried on the echo.
            sn_route("retry", [sn_rule("default/flaky:8080", policy={
                "retry": retry, "loadBalancer": {"type": "RoundRobin"}})], hostnames=[HOSTS["retry"]]),
        ]
        access_log = dp.workdir / "access.log"
        proxy = dp.proxy(sn_snapshot(1, routes, clusters), workers=1, access_log=access_log, extra_args=[
            "--tracing-endpoint", f"http://127.0.0.1:{collector.port}/v1/traces",
            "--tracing-sampling", "1", "--tracing-service-name", "edge-test"])
        proxy.collector = collector
        proxy.access_log_path = access_log
        yield proxy
    bad.shutdown()


def get(env, key, path="/", **kw):
    return env.get(path, host=HOSTS[key], **kw)


def span_of(env, request_id, timeout=15):
    """The span whose gantry.request_id is `request_id`, once the collector wrote it."""
    found = {}

    def seen():
        for s in env.collector.spans():
            if s["_attrs"].get("gantry.request_id") == request_id:
                found["s"] = s
                return True
        return False
    wait_until(seen, timeout, f"the span of request {request_id} in the collector's file")
    return found["s"]


def upstream_context(r):
    """The trace fields gantry-echo received."""
    h = r.json()["headers"]
    return h.get("traceparent"), h.get("tracestate"), h.get("b3")


def metric(env, name):
    text = http_request(env.stats_port, "/metrics").body.decode()
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_new_trace_is_started_and_the_backend_gets_the_gateway_span(env):
    r = get(env, "ok", "/shop/items?x=1", headers={"x-request-id": "new-trace-1"})
    assert r.status == 200
    s = span_of(env, "new-trace-1")
    assert "parentSpanId" not in s or not s["parentSpanId"]
    assert len(s["traceId"]) == 32 and len(s["spanId"]) == 16
    assert s["kind"] == 2  # SERVER
    a = s["_attrs"]
    assert a["http.request.method"] == "GET"
    assert a["url.path"] == "/shop/items"
    assert a["http.route"].startswith("default/shop")
    assert a["http.response.status_code"] == 200
    assert a["server.address"] == HOSTS["ok"]
    assert a["client.address"] == "127.0.0.1"
    assert a["network.protocol.version"] == "1.1"
    assert a["upstream.address"] == f"{env_echo(env)}"
    assert a["gantry.retries"] == 0 and a["gantry.cache_hit"] is False
    assert s["_resource"]["service.name"] == "edge-test"
    assert int(s["endTimeUnixNano"]) >= int(s["startTimeUnixNano"]) > 0
    tp, _, _ = upstream_context(r)
    assert tp == f"00-{s['traceId']}-{s['spanId']}-01"
    # The access log line carries the same ids.
    def logged():
        for line in env.access_log_path.read_text().splitlines():
            rec = json.loads(line)
            if rec.get("requestId") == "new-trace-1":
                return rec
        return None
    wait_until(lambda: logged() is not None, 10, "the access-log line")
    rec = logged()
    assert rec["traceId"] == s["traceId"] and rec["spanId"] == s["spanId"]


def env_echo(env):
    cfg = env.config_dump()
    for c in cfg["clusters"]:
        if c["name"] == "default/echo:8080":
            e = c["endpoints"][0]
            return f"{e['address']}:{e['port']}"
    raise AssertionError(cfg)


def test_continued_trace_keeps_the_trace_id_and_the_backend_sees_the_gateway_as_parent(env):
    r = get(env, "ok", headers={"x-request-id": "continued-1",
                                "traceparent": f"00-{TRACE}-{PARENT}-01",
                                "tracestate": "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"})
    assert r.status == 200
    s = span_of(env, "continued-1")
    assert s["traceId"] == TRACE
    assert s["parentSpanId"] == PARENT
    assert s["spanId"] != PARENT
    assert s.get("traceState") == "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
    tp, ts, _ = upstream_context(r)
    assert tp == f"00-{TRACE}-{s['spanId']}-01"
    assert ts == "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"


def test_b3_single_and_multi_are_continued(env):
    r = get(env, "ok", headers={"x-request-id": "b3-single", "b3": f"{TRACE}-{PARENT}-1"})
    s = span_of(env, "b3-single")
    assert s["traceId"] == TRACE and s["parentSpanId"] == PARENT
    tp, _, b3 = upstream_context(r)
    assert tp == f"00-{TRACE}-{s['spanId']}-01"
    assert b3 == f"{TRACE}-{s['spanId']}-1"
    r = get(env, "ok", headers={"x-request-id": "b3-multi", "x-b3-traceid": "a3ce929d0e0e4736",
                                "x-b3-spanid": PARENT, "x-b3-sampled": "1"})
    s = span_of(env, "b3-multi")
    assert s["traceId"] == "0000000000000000a3ce929d0e0e4736" and s["parentSpanId"] == PARENT
    h = r.json()["headers"]
    assert "x-b3-traceid" not in h  # replaced by the gateway's own context


def test_invalid_traceparent_starts_a_new_trace(env):
    r = get(env, "ok", headers={"x-request-id": "invalid-1",
                                "traceparent": f"00-{TRACE.upper()}-{PARENT}-01", "tracestate": "a=b"})
    s = span_of(env, "invalid-1")
    assert s["traceId"] != TRACE.upper().lower() and not s.get("parentSpanId")
    tp, ts, _ = upstream_context(r)
    assert tp == f"00-{s['traceId']}-{s['spanId']}-01" and ts is None


def test_502_is_exported_although_its_route_samples_nothing(env):
    r = get(env, "dead", headers={"x-request-id": "dead-1"})
    assert r.status == 502
    s = span_of(env, "dead-1")
    assert s["_attrs"]["http.response.status_code"] == 502
    assert s["_attrs"]["error.type"] == "502"
    assert s["status"]["code"] == 2  # ERROR
    assert "upstream.address" in s["_attrs"]


def test_sampling_zero_route_and_unsampled_parent_export_nothing_but_propagate(env):
    r1 = get(env, "quiet", headers={"x-request-id": "quiet-1"})
    r2 = get(env, "ok", headers={"x-request-id": "unsampled-1", "traceparent": f"00-{TRACE}-{PARENT}-00"})
    assert r1.status == 200 and r2.status == 200
    tp, _, _ = upstream_context(r2)
    assert tp.startswith(f"00-{TRACE}-") and tp.endswith("-00") and PARENT not in tp
    tp1, _, _ = upstream_context(r1)
    assert tp1 and tp1.endswith("-00")
    # A later sampled request is exported; the two before it never are.
    get(env, "ok", headers={"x-request-id": "after-quiet"})
    span_of(env, "after-quiet")
    ids = {s["_attrs"].get("gantry.request_id") for s in env.collector.spans()}
    assert "quiet-1" not in ids and "unsampled-1" not in ids


def test_retried_request_counts_retries_with_events(env):
    statuses, rids = [], []
    for i in range(4):  # round robin: at least one request meets the 503 endpoint first
        rid = f"retry-{i}"
        rids.append(rid)
        statuses.append(get(env, "retry", headers={"x-request-id": rid}).status)
    assert statuses == [200] * 4
    spans = [span_of(env, rid) for rid in rids]
    retried = [s for s in spans if s["_attrs"]["gantry.retries"] >= 1]
    assert retried, [s["_attrs"] for s in spans]
    s = retried[0]
    ev = [e for e in s["events"] if e["name"] == "retry"]
    assert ev and attrs(ev[0]["attributes"])["gantry.retry.reason"] == "503"
    assert s["_attrs"]["http.response.status_code"] == 200
    assert s["_attrs"]["upstream.address"] == env_echo(env)


def test_websocket_upgrade_has_a_span(env):
    ws = websocket.create_connection(f"ws://127.0.0.1:{env.http_port}/ws", timeout=10, host=HOSTS["ws"],
                                     header=["x-request-id: ws-1", f"traceparent: 00-{TRACE}-{PARENT}-01"])
    try:
        assert ws.getstatus() == 101
        ws.send("hello")
        assert ws.recv() == "hello"
    finally:
        ws.close()
    s = span_of(env, "ws-1")
    assert s["traceId"] == TRACE and s["parentSpanId"] == PARENT
    assert s["_attrs"]["http.response.status_code"] == 101
    assert s["_attrs"]["url.path"] == "/ws"


def test_collector_killed_requests_still_served_drops_counted_then_export_resumes(env):
    get(env, "ok", headers={"x-request-id": "before-kill"})
    span_of(env, "before-kill")
    exported_before = metric(env, "gantry_tracing_spans_exported_total")
    env.collector.kill()
    failed = 0
    for i in range(60):
        r = get(env, "ok", headers={"x-request-id": f"while-down-{i}"})
        failed += r.status != 200
        time.sleep(0.02)
    assert failed == 0
    wait_until(lambda: (metric(env, "gantry_tracing_spans_dropped_total") or 0) > 0, 20,
               "dropped spans to be counted")
    assert metric(env, "gantry_tracing_export_errors_total") >= 1
    env.collector.start()
    # Backoff is at most 5 s: a request sent now is exported once the exporter reconnects.
    def resumed():
        get(env, "ok", headers={"x-request-id": "after-restart"})
        return any(s["_attrs"].get("gantry.request_id") == "after-restart" and s["_generation"] == env.collector.generation
                   for s in env.collector.spans())
    wait_until(resumed, 30, "export to resume after the collector came back", interval=0.5)
    assert metric(env, "gantry_tracing_spans_exported_total") > exported_before


def test_gateway_route_sampling_override_goes_through_the_controller(stack):
    """policy.tracing.sampling on a GatewayRoute: decoded and translated by the
    controller (standalone mode), carried in the snapshot, applied by the proxy."""
    collector = Collector(stack.manager, stack.workdir, free_port())
    collector.start()
    echo = stack.echo("a")
    stack.proxy.extra_args += ["--tracing-endpoint", f"http://127.0.0.1:{collector.port}",
                               "--tracing-sampling", "1"]
    stack.write("svc.yaml", service_yaml("shop", [(echo.addr, echo.port)]))
    backend = [{"backendRefs": [{"name": "shop", "port": 8080}]}]
    stack.write("routes.yaml", route_yaml("loud", backend, hostnames=["loud.example.com"]) + "---\n" +
                route_yaml("quiet", [dict(backend[0], policy={"tracing": {"sampling": 0}})],
                           hostnames=["quiet.example.com"]))
    stack.start()
    stack.wait_for_backend("a", host="quiet.example.com")
    stack.wait_for_backend("a", host="loud.example.com")
    wait_until(lambda: ((stack.controller.route_conditions("default", "quiet") or {})
                        .get("Accepted", {}).get("status")) == "True",
               CONVERGE_TIMEOUT, "route quiet Accepted")
    rules = [r for rt in stack.proxy.config_dump()["routes"] if rt["name"] == "quiet" for r in rt["rules"]]
    assert rules and rules[0]["policy"]["tracing"] == {"sampling": 0}
    r = stack.proxy.get("/", host="quiet.example.com", headers={"x-request-id": "ctl-quiet"})
    assert r.json()["headers"]["traceparent"].endswith("-00")
    stack.proxy.get("/", host="loud.example.com", headers={"x-request-id": "ctl-loud"})

    def exported():
        return {s["_attrs"].get("gantry.request_id") for s in collector.spans()}
    wait_until(lambda: "ctl-loud" in exported(), 15, "the loud route's span")
    assert "ctl-quiet" not in exported()
