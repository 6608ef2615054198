"""Snapshot swaps under load lose nothing.

Several client threads, each on one keep-alive connection (http.client),
send requests back to back while the test pushes a new FULL snapshot every
100 ms (alternating route sets that both keep the tested route), then an
ENDPOINTS delta every 50 ms moving the tested cluster between two backends.
Every request must succeed and no client may ever have to reconnect.
Load is bounded in time (a few seconds) and count (MAX_PER_THREAD).
"""

import http.client
import threading
import time

import pytest

from conftest import HTTP_TIMEOUT, sn_cluster, sn_route, sn_rule, sn_snapshot

HOST = "hot.example.com"
CLUSTER = "default/hot:80"
THREADS = 4
MAX_PER_THREAD = 20000
FULL_SWAPS, FULL_INTERVAL = 50, 0.100       # ~5 s per round
FULL_ROUNDS = 3
DELTAS, DELTA_INTERVAL = 60, 0.050          # ~3 s


class CountingConnection(http.client.HTTPConnection):
    """An HTTPConnection that counts how often it had to (re)connect."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.connects = 0

    def connect(self):
        self.connects += 1
        super().connect()


class Load:
    """THREADS clients, each on its own keep-alive connection, until stop()."""

    def __init__(self, port):
        self.port = port
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.ok = 0
        self.failures = []
        self.backends = {}
        self.connects = []
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                        for i in range(THREADS)]

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop_event.set()
        for t in self.threads:
            t.join(timeout=HTTP_TIMEOUT + 5)

    def _run(self, n):
        conn = CountingConnection("127.0.0.1", self.port, timeout=HTTP_TIMEOUT)
        sent = 0
        try:
            while not self.stop_event.is_set() and sent < MAX_PER_THREAD:
                sent += 1
                try:
                    conn.request("GET", f"/load/{n}/{sent}", headers={"Host": HOST})
                    r = conn.getresponse()
                    body = r.read()
                    closes = (r.getheader("connection") or "").lower() == "close"
                except (OSError, http.client.HTTPException) as e:
                    with self.lock:
                        self.failures.append(f"thread {n} request {sent}: {e!r}")
                    conn.close()
                    continue
                with self.lock:
                    if r.status != 200:
                        self.failures.append(f"thread {n} request {sent}: {r.status} {body[:100]!r}")
                    else:
                        self.ok += 1
                        name = r.getheader("x-echo-name")
                        self.backends[name] = self.backends.get(name, 0) + 1
                    if closes:
                        self.failures.append(f"thread {n} request {sent}: Connection: close")
        finally:
            with self.lock:
                self.connects.append(conn.connects)
            conn.close()


def full_snapshot(version, proxy):
    """Alternating route sets around the unchanged tested route."""
    routes = [sn_route("hot", [sn_rule(CLUSTER)], hostnames=[HOST])]
    if version % 2:
        routes += [sn_route(f"odd-{k}", [sn_rule(CLUSTER, prefix=f"/odd/{k}")],
                            hostnames=[f"odd{k}.example.com"]) for k in range(20)]
    else:
        routes += [sn_route(f"even-{k}", [sn_rule(CLUSTER, prefix="/even", filters={
            "requestHeaders": {"set": [{"name": "x-even", "value": str(k)}]}})],
            hostnames=[f"even{k}.example.com", f"*.even{k}.example.org"]) for k in range(30)]
    a = proxy.backends[0]
    return sn_snapshot(version, routes, [sn_cluster(CLUSTER, [(a.addr, a.port)])])


@pytest.fixture
def proxy(dataplane):
    # One proxy per test: a crash in one must not fail the other.
    backends = [dataplane.echo("hot-a"), dataplane.echo("hot-b")]

    class H:
        pass
    h = H()
    h.backends = backends
    p = dataplane.proxy(full_snapshot(1, h))
    p.backends = backends
    p.version = 1
    return p



def assert_clean(load):
    assert load.failures == [], f"{len(load.failures)} failed: {load.failures[:10]}"
    assert load.ok > 0
    assert load.connects == [1] * THREADS, f"clients had to reconnect: {load.connects}"


def test_full_snapshots_every_100ms_under_load(proxy):
    # FULL_ROUNDS rounds of ~5 s, each with fresh client connections.
    for _ in range(FULL_ROUNDS):
        with proxy.control() as control, Load(proxy.http_port) as load:
            time.sleep(0.2)
            for _ in range(FULL_SWAPS):
                proxy.version += 1
                control.full(full_snapshot(proxy.version, proxy))
                time.sleep(FULL_INTERVAL)
        assert proxy.config_dump()["version"] == proxy.version
        assert_clean(load)
        assert set(load.backends) == {"hot-a"}


def test_endpoint_deltas_every_50ms_under_load(proxy):
    a, b = proxy.backends
    with proxy.control() as control, Load(proxy.http_port) as load:
        time.sleep(0.2)
        for i in range(DELTAS):
            target = b if i % 2 == 0 else a
            delta = {"baseVersion": proxy.version, "version": proxy.version + 1,
                     "clusters": [sn_cluster(CLUSTER, [(target.addr, target.port)])]}
            control.endpoints(delta)
            proxy.version += 1
            time.sleep(DELTA_INTERVAL)
    assert proxy.config_dump()["version"] == proxy.version
    assert_clean(load)
    assert set(load.backends) == {"hot-a", "hot-b"}, load.backends
