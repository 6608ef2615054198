"""Global rate limits (rateLimit.scope global) through real gantry-proxy
processes sharing a real redis-server, started by each test on a free
loopback port: one limit enforced across two replicas, Redis killed
(fail-open and fail-closed) and brought back, Redis stalled with SIGSTOP
(no request waits longer than the budget), AUTH + SELECT, SCRIPT FLUSH
(NOSCRIPT → EVAL), the password redacted in /config_dump, and the controller
passing its --ratelimit-store settings in the snapshot.

Loads are bounded: a few client threads, each pacing its requests.
"""

import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import ssl
import threading
import time
from pathlib import Path

import pytest

from conftest import (CertAuthority, Controller, Proxy, free_port, http_request, route_yaml, service_yaml, sn_cluster, sn_route, sn_rule,
                      sn_snapshot, tail, wait_until, write_file)

REDIS = shutil.which("redis-server")
pytestmark = pytest.mark.skipif(REDIS is None, reason="redis-server is not installed (hack/install-deps.sh)")
CLUSTER = "default/echo:8080"


# ------------------------------------------------------------------ redis

def resp_command(*args):
    out = [f"*{len(args)}\r\n".encode()]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def resp_read(f):
    line = f.readline()
    if not line:
        raise ConnectionError("closed")
    kind, rest = line[:1], line[1:-2]
    if kind in (b"+", b"-"):
        return (kind == b"-", rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)[:-2]
        return data.decode(errors="replace")
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [resp_read(f) for _ in range(n)]
    raise ValueError(f"bad RESP line {line!r}")


class Redis:
    """A redis-server of the test's own, without persistence."""

    def __init__(self, procs, workdir, password=None, port=None, tls_args=(), tls_client=None):
        self.tls_client = tls_client  # an ssl.SSLContext for the test's own commands
        self.procs = procs
        self.workdir = Path(workdir)
        self.port = port or free_port()
        self.password = password
        self.tls_args = list(tls_args)
        self.proc = None
        self.log = self.workdir / f"redis-{self.port}.log"

    def start(self):
        argv = [REDIS, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--daemonize", "no", "--dir", str(self.workdir), "--logfile", ""] + self.tls_args
        if self.password:
            argv += ["--requirepass", self.password]
        self.proc = self.procs.spawn(argv, self.log)
        wait_until(self.pings, 10, "redis-server to answer PING", on_timeout=lambda: tail(self.log))
        return self

    def command(self, *args, db=None, timeout=5):
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as raw:
            s = self.tls_client.wrap_socket(raw, server_hostname="redis.test") if self.tls_client else raw
            f = s.makefile("rb")
            pre = []
            if self.password:
                pre.append(("AUTH", self.password))
            if db is not None:
                pre.append(("SELECT", db))
            for p in pre:
                s.sendall(resp_command(*p))
                resp_read(f)
            s.sendall(resp_command(*args))
            return resp_read(f)

    def pings(self):
        if self.proc.poll() is not None:
            pytest.fail(f"redis-server exited with {self.proc.returncode}\n{tail(self.log)}")
        try:
            return self.command("PING", timeout=1) == (False, "PONG")
        except OSError:
            return False

    def kill(self):
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self):
        os.killpg(self.proc.pid, signal.SIGSTOP)

    def cont(self):
        os.killpg(self.proc.pid, signal.SIGCONT)


# ------------------------------------------------------------------ proxies

def store(port, **kw):
    s = {"address": f"127.0.0.1:{port}", "budgetMs": 5, "expectedReplicas": 2}
    s.update(kw)
    return s


def global_snapshot(echo, store_settings, requests=100, interval_ms=1000, failure_mode="open",
                    algorithm="TokenBucket"):
    limited = {"rateLimit": {"requests": requests, "intervalMs": interval_ms, "burst": 0,
                             "algorithm": algorithm, "key": "Header:x-tenant", "scope": "global",
                             "failureMode": failure_mode}}
    # /probe: a limit whose refill is negligible during a test, to compare
    # RateLimit-Remaining across replicas exactly.
    probe = {"rateLimit": {"requests": 1000, "intervalMs": 3600000, "key": "Header:x-tenant", "scope": "global"}}
    rules = [sn_rule(CLUSTER, prefix="/limited", filters=limited), sn_rule(CLUSTER, prefix="/probe", filters=probe),
             sn_rule(CLUSTER)]
    snap = sn_snapshot(1, [sn_route("rl", rules)], [sn_cluster(CLUSTER, [(echo.addr, echo.port)])])
    snap["rateLimitStore"] = store_settings
    return snap


def metric(proxy, name, labels=""):
    text = proxy.metrics_text()
    m = re.search(r"^" + re.escape(name + labels) + r" ([0-9.e+]+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def decided(proxy):
    return metric(proxy, "gantry_ratelimit_store_requests_total", '{result="decided"}')


class Load:
    """Client threads on keep-alive connections, each pacing itself to `rate`
    requests per second; every answer is recorded as (monotonic time, status,
    headers, seconds waited)."""

    def __init__(self, port, threads=2, rate=50, path="/limited/x", tenant="t1"):
        self.port, self.threads, self.rate, self.path, self.tenant = port, threads, rate, path, tenant
        self.results = []
        self.errors = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._workers = []

    def _run(self):
        conn = None
        period = 1.0 / self.rate
        next_at = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            if now < next_at:
                time.sleep(next_at - now)
            next_at += period
            if next_at < time.monotonic() - 1:  # fell behind: no catch-up burst
                next_at = time.monotonic()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                t0 = time.monotonic()
                conn.request("GET", self.path, headers={"x-tenant": self.tenant})
                r = conn.getresponse()
                r.read()
                t1 = time.monotonic()
                with self._lock:
                    self.results.append((t1, r.status, {k.lower(): v for k, v in r.getheaders()}, t1 - t0))
                if r.getheader("connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as e:
                with self._lock:
                    self.errors.append(repr(e))
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()

    def start(self):
        for _ in range(self.threads):
            t = threading.Thread(target=self._run, daemon=True)
            t.start()
            self._workers.append(t)
        return self

    def stop(self):
        self._stop.set()
        for t in self._workers:
            t.join(timeout=15)
        return self

    def snapshot(self):
        with self._lock:
            return list(self.results)


@pytest.fixture
def redis(procs, workdir):
    return Redis(procs, workdir).start()


@pytest.fixture
def echo(dataplane):
    return dataplane.echo("echo")


# ------------------------------------------------------------------ tests

def test_two_replicas_enforce_one_limit(dataplane, echo, redis):
    """100 requests/s on one tenant, asked of two replicas at ~3x that rate
    together: accepted per one-second window is 100 +-5%, over ten windows."""
    # This test measures global counting, so a decision never falls back to the
    # local limiter here (a generous budget, and the fallback counter checked):
    # on a machine busy with other work a 5 ms budget is sometimes exceeded,
    # and a fail-open fallback admits on its own (tested below, Redis killed
    # or stalled).
    snap = global_snapshot(echo, store(redis.port, budgetMs=500), requests=100, interval_ms=1000)
    a = dataplane.proxy(snap, name="a")
    b = dataplane.proxy(snap, name="b")
    # The limit's fields are the store's: exact, whoever asks; each replica
    # sees the other's requests counted.
    conns = [http.client.HTTPConnection("127.0.0.1", p.http_port, timeout=10) for p in (a, b)]
    remaining = []
    for i in range(6):
        c = conns[i % 2]
        c.request("GET", "/probe/x", headers={"x-tenant": "probe"})
        r = c.getresponse()
        r.read()
        assert r.status == 200 and r.getheader("ratelimit-limit") == "1000", r.getheaders()
        remaining.append(int(r.getheader("ratelimit-remaining")))
    assert remaining == [999, 998, 997, 996, 995, 994], remaining

    loads = [Load(p.http_port, threads=3, rate=55).start() for p in (a, b)]
    try:
        time.sleep(1.5)  # the full bucket (100) is spent; the steady state begins
        t0 = time.monotonic()
        time.sleep(10.2)
    finally:
        for l in loads:
            l.stop()
    windows = [0] * 10
    refused = 0
    per_replica = [0, 0]
    sent = [0, 0]
    for i, l in enumerate(loads):
        assert not l.errors, l.errors[:5]
        for t, status, hdr, _ in l.snapshot():
            k = int((t - t0) // 1.0)
            if not 0 <= k < 10:
                continue
            sent[i] += 1
            if status == 200:
                windows[k] += 1
                per_replica[i] += 1
            else:
                assert status == 429, status
                assert int(hdr["retry-after"]) >= 1 and hdr["ratelimit-limit"] == "100", hdr
                refused += 1
    print(f"accepted per window: {windows}; refused {refused}; accepted per replica {per_replica} of {sent}")
    fallbacks = [metric(p, "gantry_ratelimit_fallback_total") for p in (a, b)]
    assert fallbacks == [0, 0], f"decisions fell back to the local limiter: {fallbacks}"
    assert refused > 500, "the load must exceed the limit for the windows to measure it"
    # Both replicas under load (each asked for far more than the limit). Which
    # replica's requests take the tokens is timing: one global limit does not
    # split itself evenly (one run admitted [98, 902]), so only the load is held
    # to a floor here, and each replica must have asked the store.
    assert all(n > 500 for n in sent), sent
    # Over the ten windows: within 5% of the limit. Each window is measured on
    # the client's clock (when the answer arrived), so a client thread that
    # the machine holds back moves a few answers into the next window: each
    # window is held to 10%.
    assert 950 <= sum(windows) <= 1050, windows
    for k, n in enumerate(windows):
        assert 90 <= n <= 110, f"window {k}: {n} accepted, limit 100 (all: {windows})"
    assert decided(a) > 0 and decided(b) > 0


def test_concurrent_decisions_share_script_calls(dataplane, echo, redis):
    """Decisions a worker has pending together go to Redis as one script call
    (a batch): 24 concurrent HTTP/2 streams on one connection (h2load) cost
    far fewer round trips than decisions, and every request is still counted
    exactly once (the probe after them sees the count of all of them)."""
    # /probe: 1,000 an hour, so no refill during the test: exact counts. No
    # leases (test_leases_...): this counts the store's decisions one by one.
    snap = global_snapshot(echo, store(redis.port, budgetMs=2000, leasePercent=0))
    p = dataplane.proxy(snap, workers=1)

    def probe():
        r = http_request(p.http_port, "/probe/x", headers={"x-tenant": "h2"})
        assert r.status == 200, r.status
        return int(r.headers["ratelimit-remaining"])

    assert probe() == 999
    trips0, decided0 = metric(p, "gantry_ratelimit_store_round_trips_total"), decided(p)
    out = subprocess.run(["h2load", "-n", "480", "-c", "1", "-m", "24", "-H", "x-tenant: h2",
                          f"http://127.0.0.1:{p.http_port}/probe/x"],
                         capture_output=True, text=True, timeout=60)
    assert "480 succeeded" in out.stdout and "status codes: 480 2xx" in out.stdout, out.stdout + out.stderr
    trips = metric(p, "gantry_ratelimit_store_round_trips_total") - trips0
    decisions = decided(p) - decided0
    print(f"{decisions} decisions in {trips} round trips")
    assert decisions == 480, decisions
    assert probe() == 999 - 481, "every request counted once"
    assert trips <= decisions / 3, f"{trips} round trips for {decisions} decisions: no batching"
    assert metric(p, "gantry_ratelimit_fallback_total") == 0


def h2load_statuses(out):
    """(2xx, 4xx) counts from h2load's report."""
    m = re.search(r"status codes: (\d+) 2xx, \d+ 3xx, (\d+) 4xx, (\d+) 5xx", out)
    assert m and m.group(3) == "0", out
    return int(m.group(1)), int(m.group(2))


def test_leases_hold_a_busy_key_to_its_limit(dataplane, echo, redis):
    """A busy key's calls also lease decisions ahead (global_lease.h): two
    replicas hammering one key of a limit of 3,000 an hour (refill: under one
    request per second) answer most requests from leases, with far fewer
    round trips than decisions, and admit exactly what the store counted less
    what leases left unused: never more than the limit, and not less than 95%
    of it."""
    # The default share (1%) over 2 expected replicas of 1 worker each: leases
    # of at most 15 decisions.
    snap = global_snapshot(echo, store(redis.port, budgetMs=2000), requests=3000, interval_ms=3600000)
    reps = [dataplane.proxy(snap, name=n, workers=1) for n in ("a", "b")]
    for p in reps:
        wait_until(lambda: metric(p, "gantry_ratelimit_store_round_trips_total") >= 1, 10, "the store handshake")
    trips0 = sum(metric(p, "gantry_ratelimit_store_round_trips_total") for p in reps)
    t0 = time.monotonic()
    loads = [subprocess.Popen(["h2load", "-n", "2200", "-c", "4", "-m", "8", "-H", "x-tenant: busy",
                               f"http://127.0.0.1:{p.http_port}/limited/x"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for p in reps]
    outs = [l.communicate(timeout=120)[0] for l in loads]
    elapsed = time.monotonic() - t0
    counts = [h2load_statuses(o) for o in outs]
    admitted = sum(c[0] for c in counts)
    refused = sum(c[1] for c in counts)
    leased = sum(metric(p, "gantry_ratelimit_store_requests_total", '{result="lease"}') for p in reps)
    decided_ = sum(decided(p) for p in reps)
    places = sum(metric(p, "gantry_ratelimit_lease_places_total") for p in reps)
    unused = sum(metric(p, "gantry_ratelimit_lease_unused_total") for p in reps)
    trips = sum(metric(p, "gantry_ratelimit_store_round_trips_total") for p in reps) - trips0
    print(f"admitted {admitted} ({[c[0] for c in counts]}), refused {refused} in {elapsed:.1f} s; "
          f"{leased:.0f} answered from leases of {places:.0f} places ({unused:.0f} unused), "
          f"{decided_:.0f} by the store in {trips:.0f} round trips")
    assert admitted + refused == 4400
    assert sum(metric(p, "gantry_ratelimit_fallback_total") for p in reps) == 0
    # The refill over the run: 3,000 an hour.
    refill = int(elapsed * 3000 / 3600) + 1
    assert admitted <= 3000 + refill, "more than the limit"
    assert admitted >= 0.95 * 3000, "leases left too much unused"
    assert leased > 1000, "a busy key is answered from leases"
    assert leased <= places and unused <= places - leased
    assert trips <= (leased + decided_) / 4, "leases spare round trips"
    # What the store counted, the leases' unused places included, is the
    # limit (and its refill): nothing admitted escapes the count.
    assert 3000 <= admitted + unused <= 3000 + refill


def test_leases_keep_windows_within_5_percent(dataplane, echo, redis, workdir):
    """The issue's accuracy check with leases at work: 2,000 requests/s on
    one key (a token bucket, no burst; leases of at most 10 places), two
    replicas each loaded far beyond it: accepted per one-second window is
    2,000 +-5% over ten windows (each window +-10%, as the test without
    leases allows: windows are cut on the client's clock)."""
    snap = global_snapshot(echo, store(redis.port, budgetMs=500), requests=2000, interval_ms=1000)
    reps = [dataplane.proxy(snap, name=n, workers=1) for n in ("a", "b")]
    logs = [workdir / f"h2load-{i}.log" for i in range(2)]
    loads = [subprocess.Popen(["h2load", "-D", "13", "-c", "4", "-m", "4", "--log-file", str(log), "-H",
                               "x-tenant: windows", f"http://127.0.0.1:{p.http_port}/limited/x"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for p, log in zip(reps, logs)]
    outs = [l.communicate(timeout=120)[0] for l in loads]
    done = []  # (completion time in s, status)
    for out, log in zip(outs, logs):
        assert "status codes:" in out, out
        for line in log.read_text().splitlines():
            start_us, status, took_us = line.split("\t")[:3]
            done.append(((int(start_us) + int(took_us)) / 1e6, int(status)))
    assert {s for _, s in done} <= {200, 429}, {s for _, s in done}
    t0 = min(t for t, _ in done) + 2.0  # the full bucket (2,000) is spent; the steady state begins
    windows = [0] * 10
    refused = 0
    for t, status in done:
        k = int((t - t0) // 1.0)
        if 0 <= k < 10:
            if status == 200:
                windows[k] += 1
            else:
                refused += 1
    leased = sum(metric(p, "gantry_ratelimit_store_requests_total", '{result="lease"}') for p in reps)
    unused = sum(metric(p, "gantry_ratelimit_lease_unused_total") for p in reps)
    print(f"accepted per window: {windows}; refused {refused}; {leased:.0f} answered from leases, "
          f"{unused:.0f} leased places unused")
    assert sum(metric(p, "gantry_ratelimit_fallback_total") for p in reps) == 0
    assert refused > 10 * 2000, "the load must exceed the limit for the windows to measure it"
    assert leased > 0, "leases were at work"
    assert 19000 <= sum(windows) <= 21000, windows
    for k, n in enumerate(windows):
        assert 1800 <= n <= 2200, f"window {k}: {n} accepted, limit 2,000 (all: {windows})"


def test_lease_percent_zero_decides_each_request(dataplane, echo, redis):
    """leasePercent 0: every decision is the store's, none from a lease."""
    snap = global_snapshot(echo, store(redis.port, budgetMs=2000, leasePercent=0), requests=3000,
                           interval_ms=3600000)
    p = dataplane.proxy(snap, workers=1)
    out = subprocess.run(["h2load", "-n", "400", "-c", "2", "-m", "8", "-H", "x-tenant: busy",
                          f"http://127.0.0.1:{p.http_port}/limited/x"], capture_output=True, text=True, timeout=60)
    assert h2load_statuses(out.stdout) == (400, 0)
    assert metric(p, "gantry_ratelimit_store_requests_total", '{result="lease"}') == 0
    assert metric(p, "gantry_ratelimit_lease_places_total") == 0
    assert decided(p) == 400


def redis_calls(redis, command):
    info = redis.command("INFO", "commandstats")
    m = re.search(r"^cmdstat_" + command + r":calls=(\d+)", info, re.M)
    return int(m.group(1)) if m else 0


def h2_burst(url, n, headers):
    """n GET streams of `url` on one HTTP/2 connection, their HEADERS frames
    written together (nghttp submits them all before it first writes, so the
    proxy reads them in one go, as a busy client's requests arrive): a list
    of each stream's response headers (pseudo-headers included)."""
    args = ["nghttp", "-nv", "-m", str(n)]
    for h in headers:
        args += ["-H", h]
    out = subprocess.run(args + [url], capture_output=True, text=True, timeout=60)
    streams = {}
    for m in re.finditer(r"recv \(stream_id=(\d+)\) ([^:\s][^:]*|:[a-z]+): (.*)$", out.stdout, re.M):
        streams.setdefault(int(m.group(1)), {})[m.group(2)] = m.group(3)
    assert len(streams) == n, out.stdout[-3000:] + out.stderr
    return list(streams.values())


@pytest.mark.parametrize("algorithm", ["TokenBucket", "SlidingWindow"])
def test_coalesced_decisions_keep_exact_headers(dataplane, echo, redis, algorithm):
    """100 concurrent requests on one key of a limit of 50 a day (no refill
    during the test), as HTTP/2 streams on one connection that arrive
    together: the worker sends the decisions pending on the key as one
    (key, n) entry of a script call, Redis reads and writes the key once per
    call, and every answer is still the one-by-one decision: exactly 50
    admitted, with RateLimit-Remaining 49 down to 0 each once, the other 50
    refused with Retry-After."""
    snap = global_snapshot(echo, store(redis.port, budgetMs=2000), requests=50, interval_ms=86400000,
                           algorithm=algorithm)
    p = dataplane.proxy(snap, workers=1)
    # The worker's connection handshake (SCRIPT LOAD) is a round trip too:
    # answered before the counts start.
    wait_until(lambda: metric(p, "gantry_ratelimit_store_round_trips_total") >= 1, 10, "the store handshake")
    trips0, decided0, set0 = metric(p, "gantry_ratelimit_store_round_trips_total"), decided(p), redis_calls(redis, "set")
    answers = h2_burst(f"http://127.0.0.1:{p.http_port}/limited/x", 100, ["x-tenant: coalesce"])
    admitted = sorted(int(h["ratelimit-remaining"]) for h in answers if h[":status"] == "200")
    refused = [h for h in answers if h[":status"] != "200"]
    assert admitted == list(range(50)), admitted
    assert len(refused) == 50 and all(h[":status"] == "429" and int(h["retry-after"]) >= 1
                                      and h["ratelimit-remaining"] == "0" for h in refused), refused[:3]
    assert all(h["ratelimit-limit"] == "50" for h in answers)
    assert metric(p, "gantry_ratelimit_fallback_total") == 0
    decisions = decided(p) - decided0
    trips = metric(p, "gantry_ratelimit_store_round_trips_total") - trips0
    sets = redis_calls(redis, "set") - set0
    print(f"{algorithm}: {decisions} decisions in {trips} script calls, {sets} SET in Redis")
    assert decisions == 100
    # One SET per key per call: the key was written once per call, not once
    # per decision.
    assert sets == trips, (sets, trips)
    # The streams arrived together, so their decisions were pending together:
    # a handful of calls (a call's reply, and the answers it releases, let
    # the rest of the burst be read meanwhile), not one per decision.
    assert trips <= decisions / 4, f"{trips} calls for {decisions} decisions: nothing coalesced"


@pytest.mark.parametrize("algorithm", ["TokenBucket", "SlidingWindow"])
def test_a_key_of_another_state_format_counts_as_fresh(dataplane, echo, redis, algorithm):
    """A limit's key holds one string of packed numbers. Whatever else a key
    may hold (a hash, as proxies before the packed strings kept, or a value of
    another length) is not an error: the decision counts the key as fresh and
    the key becomes the script's string again. (New keys carry the state's
    version in their digest, so an older proxy's hashes are never read: this
    is the second line of defence.)"""
    snap = global_snapshot(echo, store(redis.port, budgetMs=2000), requests=5, interval_ms=60000,
                           algorithm=algorithm)
    p = dataplane.proxy(snap, workers=1)

    def remaining():
        r = http_request(p.http_port, "/limited/x", headers={"x-tenant": "format"})
        assert r.status == 200, r.status
        return r.headers["ratelimit-remaining"]

    assert [remaining() for _ in range(3)] == ["4", "3", "2"]
    keys = redis.command("KEYS", "gantry:rl:*")
    assert len(keys) == 1, keys
    assert redis.command("TYPE", keys[0]) == (False, "string")
    assert redis.command("DEL", keys[0]) == 1
    assert redis.command("HSET", keys[0], "a", "1", "t", "2", "p", "0", "c", "5") == 4
    assert remaining() == "4"
    assert redis.command("TYPE", keys[0]) == (False, "string")
    assert remaining() == "3"
    assert redis.command("SET", keys[0], "not a state") == (False, "OK")
    assert remaining() == "4"
    assert metric(p, "gantry_ratelimit_fallback_total") == 0, tail(p.log)
    assert metric(p, "gantry_ratelimit_store_requests_total", '{result="unavailable"}') == 0


def run_kill_and_restart(dataplane, echo, redis, failure_mode):
    snap = global_snapshot(echo, store(redis.port), requests=100000, interval_ms=1000,
                           failure_mode=failure_mode)
    p = dataplane.proxy(snap)
    load = Load(p.http_port, threads=2, rate=100).start()
    try:
        wait_until(lambda: decided(p) > 50, 10, "global decisions")
        redis.kill()
        killed_at = time.monotonic()
        time.sleep(1.5)
        redis.start()  # the same port
        back_at = time.monotonic()
        before = decided(p)
        wait_until(lambda: decided(p) > before, 10, "global counting to resume")
        resumed = time.monotonic() - back_at
        time.sleep(0.3)
    finally:
        load.stop()
    results = load.snapshot()
    return p, load, results, killed_at, back_at, resumed


def test_redis_killed_fail_open(dataplane, echo, redis):
    p, load, results, killed_at, back_at, resumed = run_kill_and_restart(dataplane, echo, redis, "open")
    assert not load.errors, load.errors[:5]
    statuses = {s for _, s, _, _ in results}
    assert statuses == {200}, statuses  # zero failed requests
    during = [r for r in results if killed_at + 0.1 < r[0] < back_at]
    assert len(during) > 50, len(during)
    assert metric(p, "gantry_ratelimit_fallback_total") >= len(during) * 0.9
    assert metric(p, "gantry_ratelimit_store_failures_total") >= 1
    # Counting resumes within one backoff period (kBackoffMax, 1 s) of Redis
    # being back, plus a scrape's slack.
    print(f"global counting resumed {resumed * 1000:.0f} ms after redis-server answered again")
    assert resumed < 2.5, resumed
    assert "ratelimit store 127.0.0.1" in p.log.read_text(errors="replace")


def test_redis_killed_fail_closed(dataplane, echo, redis):
    p, load, results, killed_at, back_at, resumed = run_kill_and_restart(dataplane, echo, redis, "closed")
    assert not load.errors, load.errors[:5]
    refused = [r for r in results if r[1] == 503]
    assert len(refused) > 50, len(refused)
    for _, status, hdr, _ in results:
        assert status in (200, 503), status
        if status == 503:
            assert hdr.get("x-gateway-reason") == "ratelimit-store-unavailable", hdr
    assert metric(p, "gantry_ratelimit_store_refused_total") == len(refused)
    assert metric(p, "gantry_ratelimit_fallback_total") == 0
    # After the restart: answers of the store again.
    assert any(s == 200 for t, s, _, _ in results if t > back_at + resumed)
    print(f"global counting resumed {resumed * 1000:.0f} ms after redis-server answered again")
    assert resumed < 2.5, resumed


def test_redis_stalled_no_request_waits_longer_than_the_budget(dataplane, echo, redis):
    budget_ms = 5
    snap = global_snapshot(echo, store(redis.port, budgetMs=budget_ms), requests=100000)
    p = dataplane.proxy(snap)
    load = Load(p.http_port, threads=2, rate=100).start()
    try:
        wait_until(lambda: decided(p) > 50, 10, "global decisions")
        redis.stop()
        stopped_at = time.monotonic()
        time.sleep(2.5)  # past the stall limit (1 s): the connection is dropped and retried
        resumed_at = time.monotonic()
        redis.cont()
        before = decided(p)
        wait_until(lambda: decided(p) > before, 10, "global counting to resume")
    finally:
        redis.cont()
        load.stop()
    assert not load.errors, load.errors[:5]
    stalled = [r for r in load.snapshot() if stopped_at + 0.05 < r[0] - r[3] and r[0] < resumed_at]
    assert len(stalled) > 100, len(stalled)
    assert {s for _, s, _, _ in stalled} == {200}
    worst = max(w for _, _, _, w in stalled)
    print(f"{len(stalled)} requests while redis-server was stopped; the slowest took {worst * 1000:.1f} ms "
          f"(budget {budget_ms} ms)")
    assert worst < (budget_ms + 200) / 1000.0, worst
    assert metric(p, "gantry_ratelimit_store_timeouts_total") > 0


def test_auth_database_redaction_and_noscript(dataplane, echo, procs, workdir):
    redis = Redis(procs, workdir, password="s3cret-pass").start()
    # A budget no loaded machine exceeds: this test is about AUTH, SELECT and
    # NOSCRIPT, not about the budget (test_redis_stalled_... is).
    snap = global_snapshot(echo, store(redis.port, password="s3cret-pass", database=3, budgetMs=2000), requests=5,
                           interval_ms=60000, algorithm="SlidingWindow")
    p = dataplane.proxy(snap)
    statuses = []
    for _ in range(7):
        c = http.client.HTTPConnection("127.0.0.1", p.http_port, timeout=10)
        c.request("GET", "/limited/x", headers={"x-tenant": "db3"})
        r = c.getresponse()
        r.read()
        statuses.append(r.status)
        last = {k.lower(): v for k, v in r.getheaders()}
    assert statuses == [200] * 5 + [429] * 2, statuses
    assert last["ratelimit-limit"] == "5" and last["ratelimit-remaining"] == "0", last
    assert 1 <= int(last["retry-after"]) <= 120 and 1 <= int(last["ratelimit-reset"]) <= 60, last
    keys = redis.command("KEYS", "gantry:rl:*", db=3)
    assert len(keys) == 1 and keys[0].startswith("gantry:rl:{default/rl#0|") and keys[0].endswith("|db3}"), keys
    assert redis.command("KEYS", "*", db=0) == []
    dump = p.config_dump()
    assert dump["rateLimitStore"]["password"] == "[redacted]", dump["rateLimitStore"]
    assert "s3cret-pass" not in str(dump)
    # The server forgets the script: EVALSHA → NOSCRIPT → EVAL, decisions go on.
    assert redis.command("SCRIPT", "FLUSH") == (False, "OK")
    c = http.client.HTTPConnection("127.0.0.1", p.http_port, timeout=10)
    c.request("GET", "/limited/x", headers={"x-tenant": "other"})
    r = c.getresponse()
    assert r.status == 200 and r.getheader("ratelimit-remaining") == "4"
    assert metric(p, "gantry_ratelimit_store_noscript_total") >= 1
    assert metric(p, "gantry_ratelimit_fallback_total") == 0, tail(p.log)


def test_controller_passes_the_store(dataplane, echo, redis, workdir):
    """The controller's --ratelimit-store* flags reach the proxy in the
    snapshot; the global route is accepted and served (without a store the
    controller refuses it: tests/unit/controller, translate_test)."""
    manifests = Path(workdir) / "manifests"
    manifests.mkdir()
    write_file(manifests / "route.yaml", service_yaml("echo", [(echo.addr, echo.port)]) + "---\n" + route_yaml(
        "g", [{"backendRefs": [{"name": "echo", "port": 8080}],
               "filters": {"rateLimit": {"requests": 3, "interval": "1m", "scope": "global",
                                         "failureMode": "closed"}}}]))
    sock = Path(workdir) / "ctl.sock"
    proxy = Proxy(dataplane.manager, workdir, sock).start()
    ctl = Controller(dataplane.manager, workdir, manifests, sock)
    base_argv = ctl.argv
    ctl.argv = lambda: base_argv() + ["--ratelimit-store", f"127.0.0.1:{redis.port}", "--ratelimit-budget", "2s",
                                      "--ratelimit-expected-replicas", "3", "--ratelimit-lease-percent", "5"]
    ctl.start()
    wait_until(lambda: (proxy.config_dump() or {}).get("rateLimitStore") is not None, 20,
               "the snapshot with the store", on_timeout=lambda: tail(ctl.log))
    st = proxy.config_dump()["rateLimitStore"]
    assert st["address"] == f"127.0.0.1:{redis.port}" and st["budgetMs"] == 2000 and st["expectedReplicas"] == 3, st
    assert st["leasePercent"] == 5, st
    conds = ctl.route_conditions("default", "g")
    assert conds and conds["Accepted"]["status"] == "True", conds
    statuses = [proxy.get("/").status for _ in range(5)]
    assert statuses == [200] * 3 + [429] * 2, statuses
    assert len(redis.command("KEYS", "gantry:rl:*")) == 1


def test_tls_verified(dataplane, echo, procs, workdir):
    """TLS to Redis (its tls-port only), the server's certificate verified
    against the snapshot's CA and name: decisions are the store's; with a
    name the certificate does not carry, none are (the fallback counts)."""
    ca = CertAuthority(workdir)
    cert_pem, key_pem = ca.issue("redis.test", ["redis.test"])
    (Path(workdir) / "redis.crt").write_text(cert_pem)
    (Path(workdir) / "redis.key").write_text(key_pem)
    port = free_port()
    client = ssl.create_default_context(cafile=str(ca.path))
    redis = Redis(procs, workdir, port=port, tls_client=client, tls_args=[
        "--port", "0", "--tls-port", str(port), "--tls-cert-file", str(Path(workdir) / "redis.crt"),
        "--tls-key-file", str(Path(workdir) / "redis.key"), "--tls-ca-cert-file", str(ca.path),
        "--tls-auth-clients", "no"]).start()
    ca_pem = ca.path.read_text()
    good = dataplane.proxy(global_snapshot(echo, store(port, tls=True, tlsServerName="redis.test", caPem=ca_pem,
                                                                  budgetMs=2000),
                                           requests=10, interval_ms=60000), name="good")
    bad = dataplane.proxy(global_snapshot(echo, store(port, tls=True, tlsServerName="other.test", caPem=ca_pem),
                                          requests=10, interval_ms=60000), name="bad")
    wait_until(lambda: metric(good, "gantry_ratelimit_store_connected") >= 2, 10, "TLS connections",
               on_timeout=lambda: tail(good.log))
    for p, want_limit in ((good, "10"), (bad, "5")):  # bad: the fallback, 10 / 2 replicas
        c = http.client.HTTPConnection("127.0.0.1", p.http_port, timeout=10)
        c.request("GET", "/limited/x", headers={"x-tenant": "tls"})
        r = c.getresponse()
        r.read()
        assert r.status == 200 and r.getheader("ratelimit-limit") == want_limit, r.getheaders()
    assert decided(good) >= 1 and decided(bad) == 0
    assert metric(bad, "gantry_ratelimit_store_failures_total") >= 1
    assert "TLS handshake" in bad.log.read_text(errors="replace")
    keys = redis.command("KEYS", "gantry:rl:*")
    assert len(keys) == 1 and keys[0].endswith("|tls}"), keys
