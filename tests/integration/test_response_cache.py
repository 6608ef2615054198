"""The response cache (filters.cache) through the real proxy, in front of real
gantry-echo backends.

Backend hits are counted by the backend itself (gantry-echo's /stats, asked
directly, not through the proxy), and each echo answer carries "seq", the
backend's request number, so a replayed (cached) answer is told from a fresh
one. Response headers such as Cache-Control, Vary and Set-Cookie come from the
echo's `header=Name:Value` query parameter. Every assertion is on counts and
headers; none on elapsed time (TTL expiry is awaited by polling).
"""

import re
import threading
import urllib.parse

import pytest

from conftest import (ControlClient, get_json, http_request, sn_cluster, sn_route, sn_rule, sn_snapshot,
                      temporary_dataplane, wait_until)

CLUSTER = "default/cached:8080"
HOSTS = {"main": "cache.example.com", "short": "short.example.com", "tiny": "tiny.example.com",
         "plain": "plain.example.com"}


def hdr(name, value):
    """The echo query parameter that makes the backend send `name: value`."""
    return "header=" + urllib.parse.quote(f"{name}:{value}", safe="")


def routes(main_ttl_ms=60000):
    def cached(key, cache):
        return sn_route(key, [sn_rule(CLUSTER, filters={"cache": cache})], hostnames=[HOSTS[key]])
    return [
        cached("main", {"ttlMs": main_ttl_ms, "maxBytes": 4 << 20, "maxObjectBytes": 64 << 10}),
        cached("short", {"ttlMs": 2000, "maxBytes": 1 << 20, "maxObjectBytes": 64 << 10}),
        # 16 shards of 2 KiB: a few echo answers per shard, then evictions.
        cached("tiny", {"ttlMs": 60000, "maxBytes": 32 << 10, "maxObjectBytes": 2 << 10}),
        sn_route("plain", [sn_rule(CLUSTER)], hostnames=[HOSTS["plain"]]),
    ]


@pytest.fixture(scope="module")
def env():
    with temporary_dataplane() as dp:
        echo = dp.echo("cached")
        clusters = [sn_cluster(CLUSTER, [(echo.addr, echo.port)])]
        proxy = dp.proxy(sn_snapshot(1, routes(), clusters), workers=2, extra_args=["--debug-headers"])
        proxy.echo = echo
        proxy.clusters = clusters
        yield proxy


def backend_hits(env):
    return get_json(env.echo.port, "/stats", addr=env.echo.addr)["requests"]


def get(env, key, path, **kw):
    return http_request(env.http_port, path, host=HOSTS[key], **kw)


def test_a_second_get_is_served_from_the_cache_with_age_and_hit(env):
    before = backend_hits(env)
    first = get(env, "main", "/hit/1")
    second = get(env, "main", "/hit/1")
    assert first.status == 200 and second.status == 200
    assert first.headers["x-cache"] == "MISS" and second.headers["x-cache"] == "HIT"
    assert second.json()["seq"] == first.json()["seq"]  # the stored answer, replayed
    assert second.body == first.body
    assert re.fullmatch(r"\d+", second.headers["age"]), second.headers
    assert "age" not in first.headers
    assert second.headers["x-request-id"] != first.headers["x-request-id"]
    assert second.headers["x-gateway-upstream"] == "cache"
    assert backend_hits(env) - before == 1
    # Another query string is another entry.
    third = get(env, "main", "/hit/1?page=2")
    assert third.headers["x-cache"] == "MISS" and backend_hits(env) - before == 2


def test_head_is_answered_from_a_get_entry_without_a_body(env):
    get(env, "main", "/head/1")
    before = backend_hits(env)
    r = get(env, "main", "/head/1", method="HEAD")
    assert r.status == 200 and r.headers["x-cache"] == "HIT" and r.body == b""
    assert int(r.headers["content-length"]) > 0
    assert backend_hits(env) == before


def test_a_rule_without_the_filter_is_not_cached(env):
    before = backend_hits(env)
    a = get(env, "plain", "/nocache")
    b = get(env, "plain", "/nocache")
    assert "x-cache" not in a.headers and "x-cache" not in b.headers
    assert a.json()["seq"] != b.json()["seq"]
    assert backend_hits(env) - before == 2


def test_concurrent_misses_are_coalesced_into_one_backend_request(env):
    before = backend_hits(env)
    start = threading.Barrier(20)
    answers = [None] * 20

    def one(i):
        start.wait()
        answers[i] = get(env, "main", "/delay/300?coalesce=1", timeout=10)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(a is not None and a.status == 200 for a in answers), answers
    assert backend_hits(env) - before == 1
    assert len({a.json()["seq"] for a in answers}) == 1
    states = sorted(a.headers["x-cache"] for a in answers)
    assert states.count("MISS") == 1 and states.count("HIT") == 19, states


def test_an_uncacheable_answer_does_not_serialise_concurrent_requests(env):
    before = backend_hits(env)
    path = "/delay/200?" + hdr("Cache-Control", "no-store")
    answers = []
    threads = [threading.Thread(target=lambda: answers.append(get(env, "main", path, timeout=10)))
               for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(answers) == 6 and all(a.status == 200 and a.headers["x-cache"] == "MISS" for a in answers)
    assert backend_hits(env) - before == 6


def test_vary_keeps_one_entry_per_variant(env):
    path = "/vary?" + hdr("Vary", "Accept-Language")
    before = backend_hits(env)
    seen = []
    for lang in ["en", "en", "fr", "fr", "en"]:
        r = get(env, "main", path, headers={"Accept-Language": lang})
        assert r.status == 200 and r.json()["headers"]["accept-language"] == lang
        seen.append(r.headers["x-cache"])
    assert seen == ["MISS", "HIT", "MISS", "HIT", "HIT"]
    assert backend_hits(env) - before == 2


@pytest.mark.parametrize("name, path, headers", [
    ("response no-store", "/never/1?" + hdr("Cache-Control", "no-store"), {}),
    ("response private", "/never/2?" + hdr("Cache-Control", "private, max-age=60"), {}),
    ("response no-cache", "/never/3?" + hdr("Cache-Control", "no-cache"), {}),
    ("response Set-Cookie", "/never/4?" + hdr("Set-Cookie", "session=1"), {}),
    ("response Vary *", "/never/5?" + hdr("Vary", "*"), {}),
    ("request no-store", "/never/6", {"Cache-Control": "no-store"}),
    ("request Authorization", "/never/7", {"Authorization": "Bearer abc"}),
    ("status 500", "/status/500?never=8", {}),
])
def test_responses_that_must_not_be_stored_always_reach_the_backend(env, name, path, headers):
    before = backend_hits(env)
    for _ in range(3):
        r = get(env, "main", path, headers=headers)
        assert r.headers.get("x-cache") == "MISS", (name, r.headers)
    assert backend_hits(env) - before == 3, name


def test_authorization_is_cached_when_the_response_says_public(env):
    path = "/auth/public?" + hdr("Cache-Control", "public, max-age=60")
    before = backend_hits(env)
    a = get(env, "main", path, headers={"Authorization": "Bearer abc"})
    b = get(env, "main", path, headers={"Authorization": "Bearer abc"})
    assert (a.headers["x-cache"], b.headers["x-cache"]) == ("MISS", "HIT")
    assert backend_hits(env) - before == 1


def test_request_no_cache_skips_the_lookup_but_refreshes_the_entry(env):
    get(env, "main", "/refresh")
    before = backend_hits(env)
    r = get(env, "main", "/refresh", headers={"Cache-Control": "no-cache"})
    assert r.headers["x-cache"] == "MISS" and backend_hits(env) - before == 1
    again = get(env, "main", "/refresh")
    assert again.headers["x-cache"] == "HIT" and again.json()["seq"] == r.json()["seq"]


def poll_until_miss(env, key, path):
    """Requests `path` until the cache misses; returns how many answers were hits."""
    hits = []

    def missed():
        r = get(env, key, path)
        assert r.status == 200
        if r.headers["x-cache"] == "HIT":
            hits.append(r)
            return False
        return True
    wait_until(missed, 10, f"{path} to expire from the cache", interval=0.1)
    return len(hits)


def test_the_route_ttl_expires_entries(env):
    before = backend_hits(env)
    assert get(env, "short", "/ttl").headers["x-cache"] == "MISS"
    assert get(env, "short", "/ttl").headers["x-cache"] == "HIT"
    poll_until_miss(env, "short", "/ttl")
    assert backend_hits(env) - before == 2  # the first fill and the one after expiry


def test_max_age_overrides_a_longer_route_ttl(env):
    path = "/maxage?" + hdr("Cache-Control", "max-age=2")
    before = backend_hits(env)
    assert get(env, "main", path).headers["x-cache"] == "MISS"
    assert get(env, "main", path).headers["x-cache"] == "HIT"
    poll_until_miss(env, "main", path)  # the route's ttl is 60 s: only max-age can expire it
    assert backend_hits(env) - before == 2


def test_s_maxage_of_zero_is_not_stored(env):
    path = "/smaxage?" + hdr("Cache-Control", "s-maxage=0, max-age=60")
    before = backend_hits(env)
    for _ in range(2):
        assert get(env, "main", path).headers["x-cache"] == "MISS"
    assert backend_hits(env) - before == 2


def test_a_chunked_answer_is_stored_decoded(env):
    first = get(env, "main", "/chunked/3000")
    second = get(env, "main", "/chunked/3000")
    assert first.body == b"x" * 3000 and second.body == b"x" * 3000
    assert second.headers["x-cache"] == "HIT"
    assert second.headers["content-length"] == "3000" and "transfer-encoding" not in second.headers


def test_an_answer_over_max_object_bytes_is_streamed_but_not_stored(env):
    before = backend_hits(env)
    for _ in range(2):
        r = get(env, "main", "/bytes/200000")
        assert r.status == 200 and len(r.body) == 200000 and r.headers["x-cache"] == "MISS"
    for _ in range(2):  # the same, chunked: it stops being captured mid-body
        r = get(env, "main", "/chunked/200000")
        assert r.status == 200 and len(r.body) == 200000 and r.headers["x-cache"] == "MISS"
    assert backend_hits(env) - before == 4


def metric(text, name, route):
    pattern = re.compile(r'^' + re.escape(name) + r'\{route="' + re.escape(route) + r'"\} (\S+)$', re.M)
    found = pattern.findall(text)
    return float(found[0]) if found else None


def test_metrics_count_hits_misses_evictions_and_bytes(env):
    route = get(env, "tiny", "/m/0").headers["x-gateway-route"]
    for i in range(60):
        get(env, "tiny", f"/m/{i}")
    for _ in range(3):
        assert get(env, "tiny", "/m/59").headers["x-cache"] == "HIT"
    text = env.metrics_text()
    assert metric(text, "gantry_cache_hits_total", route) >= 4  # /m/0 once, /m/59 three times
    assert metric(text, "gantry_cache_misses_total", route) >= 60
    assert metric(text, "gantry_cache_evictions_total", route) > 0
    stored = metric(text, "gantry_cache_stored_bytes", route)
    assert 0 < stored <= 32 << 10
    assert metric(text, "gantry_cache_entries", route) > 0


def test_the_store_survives_a_snapshot_swap_and_goes_with_its_rule():
    with temporary_dataplane() as dp:
        echo = dp.echo("swap")
        clusters = [sn_cluster(CLUSTER, [(echo.addr, echo.port)])]
        proxy = dp.proxy(sn_snapshot(1, routes(), clusters), extra_args=["--debug-headers"])
        first = http_request(proxy.http_port, "/swap", host=HOSTS["main"])
        route = first.headers["x-gateway-route"]
        seq = first.json()["seq"]
        with ControlClient(proxy.socket_path) as control:
            # Another route added, this rule unchanged: still a hit.
            extra = sn_route("other", [sn_rule(CLUSTER)], hostnames=["other.example.com"])
            control.full(sn_snapshot(2, routes() + [extra], clusters))
            r = http_request(proxy.http_port, "/swap", host=HOSTS["main"])
            assert r.headers["x-cache"] == "HIT" and r.json()["seq"] == seq
            # The rule's cache settings changed: a new, empty store.
            control.full(sn_snapshot(3, routes(main_ttl_ms=30000), clusters))
            r = http_request(proxy.http_port, "/swap", host=HOSTS["main"])
            assert r.headers["x-cache"] == "MISS" and r.json()["seq"] != seq
            assert metric(proxy.metrics_text(), "gantry_cache_entries", route) == 1
            # The rule went away: its cache (and its series) too.
            control.full(sn_snapshot(4, [r for r in routes() if r["name"] != "main"], clusters))
            assert metric(proxy.metrics_text(), "gantry_cache_entries", route) is None
