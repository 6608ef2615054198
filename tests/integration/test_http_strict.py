"""The proxy's HTTP/1.1 front end is strict, and what it forwards is clean.

Raw bytes on Python sockets through a proxy booted from a snapshot file (one
route for strict.example.com to gantry-echo, which echoes the request head it
received): malformed or smuggling-prone requests get the right status and the
connection is closed; limits answer 431 / 408; hop-by-hop headers never reach
the backend; X-Forwarded-* and X-Request-Id are set; HEAD / 204 / 304 have no
body; Expect: 100-continue works; pipelined requests are answered in order.
"""

import json
import re
import subprocess

import pytest

from conftest import (HTTP_TIMEOUT, parse_responses, raw_exchange, read_to_eof, sn_cluster,
                      sn_route, sn_rule, sn_snapshot, temporary_dataplane)

import socket

HOST = "strict.example.com"
CLUSTER = "default/echo:8080"
REQUEST_ID = re.compile(r"^[0-9A-Za-z._-]{8,128}$")


@pytest.fixture(scope="module")
def proxy():
    with temporary_dataplane() as dp:
        e = dp.echo("echo")
        snap = sn_snapshot(1, [sn_route("strict", [sn_rule(CLUSTER)], hostnames=[HOST])],
                           [sn_cluster(CLUSTER, [(e.addr, e.port)])])
        yield dp.proxy(snap, extra_args=["--request-header-timeout", "1s"])


def head(lines, body=b""):
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


H = f"Host: {HOST}"

# (id, raw request bytes, expected status). Every one must be followed by close.
BAD_REQUESTS = [
    ("cl-and-te", head(["POST / HTTP/1.1", H, "Content-Length: 5",
                        "Transfer-Encoding: chunked"], b"0\r\n\r\n"), 400),
    ("two-content-lengths", head(["POST / HTTP/1.1", H, "Content-Length: 5",
                                  "Content-Length: 6"], b"hello!"), 400),
    ("content-length-list", head(["POST / HTTP/1.1", H, "Content-Length: 5, 6"], b"hello!"), 400),
    ("content-length-not-a-number", head(["POST / HTTP/1.1", H, "Content-Length: 5x"]), 400),
    ("bad-chunk-size", head(["POST / HTTP/1.1", H, "Transfer-Encoding: chunked"],
                            b"zz\r\nhello\r\n0\r\n\r\n"), 400),
    ("obs-fold", head(["GET / HTTP/1.1", H, "X-Folded: a", " b"]), 400),
    ("bare-lf", f"GET / HTTP/1.1\n{H}\n\n".encode(), 400),
    ("nul-in-header-value", head(["GET / HTTP/1.1", H, "X-Nul: a\x00b"]), 400),
    ("space-in-header-name", head(["GET / HTTP/1.1", H, "Bad Name: x"]), 400),
    ("space-before-colon", head(["GET / HTTP/1.1", H, "X-Space : x"]), 400),
    ("missing-host-http11", head(["GET / HTTP/1.1"]), 400),
    ("two-hosts", head(["GET / HTTP/1.1", H, "Host: other.example.com"]), 400),
    ("te-gzip-not-chunked-last", head(["POST / HTTP/1.1", H, "Transfer-Encoding: gzip"]), 400),
    ("te-chunked-twice", head(["POST / HTTP/1.1", H, "Transfer-Encoding: chunked, chunked"],
                              b"0\r\n\r\n"), 400),
    ("te-unknown-coding", head(["POST / HTTP/1.1", H, "Transfer-Encoding: gzip, chunked"],
                               b"0\r\n\r\n"), 501),
    ("te-in-http10", head(["POST / HTTP/1.0", H, "Transfer-Encoding: chunked"],
                          b"0\r\n\r\n"), 400),
    ("request-line-garbage", b"GARBAGE\r\n\r\n", 400),
    ("request-line-no-version", head(["GET /", H]), 400),
    ("request-line-two-spaces", head(["GET  / HTTP/1.1", H]), 400),
    ("lowercase-version", head(["GET / http/1.1", H]), 400),
    ("http-2.0", head(["GET / HTTP/2.0", H]), 505),
    ("http-3.1", head(["GET / HTTP/3.1", H]), 505),
    ("path-above-root", head(["GET /../x HTTP/1.1", H]), 400),
    ("path-above-root-deeper", head(["GET /a/../../x HTTP/1.1", H]), 400),
    ("path-above-root-encoded", head(["GET /%2e%2e/x HTTP/1.1", H]), 400),
    ("header-block-over-60k", head(["GET / HTTP/1.1", H, "X-Big: " + "a" * (61 * 1024)]), 431),
    ("over-100-headers", head(["GET / HTTP/1.1", H] + [f"X-H{i}: v" for i in range(101)]), 431),
]


@pytest.mark.parametrize("raw,status", [b[1:] for b in BAD_REQUESTS],
                         ids=[b[0] for b in BAD_REQUESTS])
def test_bad_request_is_answered_and_closed(proxy, raw, status):
    data, closed = raw_exchange(proxy.http_port, raw)
    responses, rest = parse_responses(data)
    assert responses, f"no response at all (closed={closed}): {data[:300]!r}"
    assert [r.status for r in responses] == [status], responses
    assert closed, f"connection still open after {status}: {data[:300]!r}"
    assert rest == b""
    r = responses[0]
    assert r.header("x-request-id"), r
    assert r.header("server") != "gantry-echo", "the backend answered, not the gateway"


def test_header_block_just_under_limits_is_served(proxy):
    # The limits are limits, not the normal case: 90 headers and a 50 KiB
    # header block pass.
    raw = head(["GET /ok HTTP/1.1", H, "Connection: close", "X-Big: " + "a" * (50 * 1024)]
               + [f"X-H{i}: v" for i in range(90)])
    data, closed = raw_exchange(proxy.http_port, raw)
    responses, _ = parse_responses(data)
    assert [r.status for r in responses] == [200], data[:300]
    seen = json.loads(responses[0].body)["headers"]
    assert len(seen["x-big"]) == 50 * 1024
    assert seen["x-h89"] == "v"


def test_incomplete_head_times_out_with_408(proxy):
    # --request-header-timeout 1s: a head that never ends gets 408 and close.
    data, closed = raw_exchange(proxy.http_port, f"GET / HTTP/1.1\r\n{H}\r\nX-Slow: 1".encode(),
                                timeout=HTTP_TIMEOUT + 2)
    responses, _ = parse_responses(data)
    assert [r.status for r in responses] == [408], data[:300]
    assert closed
    assert responses[0].header("x-request-id")


def test_idle_connection_without_bytes_is_closed_silently(proxy):
    # No byte sent at all within the header timeout: closed without an answer.
    data, closed = raw_exchange(proxy.http_port, b"", timeout=HTTP_TIMEOUT + 2)
    assert closed and data == b""


def echo_headers(proxy, extra_lines):
    raw = head(["GET /h HTTP/1.1", H] + extra_lines + ["Connection: close"])
    data, closed = raw_exchange(proxy.http_port, raw)
    responses, _ = parse_responses(data)
    assert [r.status for r in responses] == [200], data[:300]
    return responses[0], json.loads(responses[0].body)["headers"]


def test_hop_by_hop_headers_do_not_reach_backend(proxy):
    _, seen = echo_headers(proxy, [
        "Connection: x-foo, keep-alive", "X-Foo: secret", "Keep-Alive: timeout=5",
        "TE: trailers", "Upgrade: h2c", "Proxy-Connection: keep-alive", "X-Kept: yes"])
    for name in ("x-foo", "keep-alive", "te", "upgrade", "proxy-connection"):
        assert name not in seen, f"{name} reached the backend: {seen}"
    assert "x-foo" not in seen.get("connection", "").lower()
    assert seen["x-kept"] == "yes"


def test_forwarded_headers_and_generated_request_id(proxy):
    resp, seen = echo_headers(proxy, [])
    assert seen["x-forwarded-for"] == "127.0.0.1"
    assert seen["x-forwarded-proto"] == "http"
    assert seen["x-forwarded-host"] == HOST
    assert seen["host"] == HOST
    rid = seen.get("x-request-id", "")
    assert REQUEST_ID.match(rid), seen
    assert resp.header("x-request-id") == rid


def test_request_ids_are_unique(proxy):
    ids = {echo_headers(proxy, [])[1]["x-request-id"] for _ in range(5)}
    assert len(ids) == 5


def test_client_request_id_is_kept(proxy):
    resp, seen = echo_headers(proxy, ["X-Request-Id: client-chosen-id-42"])
    assert seen["x-request-id"] == "client-chosen-id-42"
    assert resp.header("x-request-id") == "client-chosen-id-42"


def test_spoofed_forwarded_headers_are_replaced(proxy):
    # The peer is not a trusted proxy: what it claims is not passed on as truth.
    _, seen = echo_headers(proxy, ["X-Forwarded-For: 10.9.9.9", "X-Forwarded-Proto: https",
                                   "X-Forwarded-Host: evil.example.com"])
    assert seen["x-forwarded-for"] == "127.0.0.1"
    assert seen["x-forwarded-proto"] == "http"
    assert seen["x-forwarded-host"] == HOST


@pytest.mark.parametrize("rid_line,expect", [(None, None), ("X-Request-Id: mine-404", "mine-404")])
def test_gateway_404_carries_request_id(proxy, rid_line, expect):
    lines = ["GET /nowhere HTTP/1.1", "Host: unknown.example.com", "Connection: close"]
    if rid_line:
        lines.append(rid_line)
    data, _ = raw_exchange(proxy.http_port, head(lines))
    responses, _ = parse_responses(data)
    assert [r.status for r in responses] == [404], data[:300]
    rid = responses[0].header("x-request-id")
    assert rid and REQUEST_ID.match(rid)
    if expect:
        assert rid == expect
    assert 0 < len(responses[0].body) < 512


def test_head_204_304_have_no_body_and_pipeline_in_order(proxy):
    raw = (head(["HEAD /head HTTP/1.1", H]) + head(["GET /status/204 HTTP/1.1", H])
           + head(["GET /status/304 HTTP/1.1", H]) + head(["GET /last HTTP/1.1", H,
                                                           "Connection: close"]))
    data, closed = raw_exchange(proxy.http_port, raw)
    responses, rest = parse_responses(data, head_methods=[True, False, False, False])
    assert [r.status for r in responses] == [200, 204, 304, 200], data[:1000]
    assert int(responses[0].header("content-length")) > 0  # HEAD: the length of the GET body
    assert [r.body for r in responses[:3]] == [b"", b"", b""]
    assert json.loads(responses[3].body)["path"] == "/last"
    assert rest == b"", f"bytes after the last response (a body on HEAD/204/304?): {rest[:200]!r}"
    assert closed


def test_pipelined_requests_answered_in_order(proxy):
    n = 8
    raw = b"".join(head([f"GET /p/{i} HTTP/1.1", H]) for i in range(n - 1))
    raw += head([f"GET /p/{n - 1} HTTP/1.1", H, "Connection: close"])
    data, closed = raw_exchange(proxy.http_port, raw)
    responses, rest = parse_responses(data)
    assert [json.loads(r.body)["path"] for r in responses] == [f"/p/{i}" for i in range(n)]
    assert rest == b"" and closed


def test_pipelined_requests_with_bodies(proxy):
    raw = b""
    for i in range(4):
        body = bytes([65 + i]) * (1000 * (i + 1))
        raw += head([f"POST /b/{i} HTTP/1.1", H, f"Content-Length: {len(body)}"], body)
    raw += head(["POST /b/chunked HTTP/1.1", H, "Transfer-Encoding: chunked", "Connection: close"],
                b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n")
    data, closed = raw_exchange(proxy.http_port, raw)
    responses, _ = parse_responses(data)
    got = [(json.loads(r.body)["path"], json.loads(r.body)["bodyBytes"]) for r in responses]
    assert got == [("/b/0", 1000), ("/b/1", 2000), ("/b/2", 3000), ("/b/3", 4000),
                   ("/b/chunked", 11)]
    assert closed


def test_expect_100_continue_raw(proxy):
    # The proxy must answer 100 Continue before the client sends the body.
    with socket.create_connection(("127.0.0.1", proxy.http_port), timeout=HTTP_TIMEOUT) as s:
        s.sendall(head(["POST /upload HTTP/1.1", H, "Content-Length: 5", "Expect: 100-continue",
                        "Connection: close"]))
        interim = b""
        while b"\r\n\r\n" not in interim:
            chunk = s.recv(4096)
            assert chunk, f"closed before 100 Continue: {interim!r}"
            interim += chunk
        assert interim.startswith(b"HTTP/1.1 100 "), interim
        s.sendall(b"hello")
        data, closed = read_to_eof(s)
    rest = interim[interim.find(b"\r\n\r\n") + 4:] + data
    responses, _ = parse_responses(rest)
    assert [r.status for r in responses] == [200], rest[:300]
    assert json.loads(responses[0].body)["bodyBytes"] == 5
    assert "expect" not in json.loads(responses[0].body)["headers"]


def test_expect_100_continue_with_curl(proxy, tmp_path):
    payload = tmp_path / "payload.bin"
    payload.write_bytes(b"z" * (2 * 1024 * 1024 + 17))
    out = subprocess.run(
        ["curl", "-sS", "--max-time", str(HTTP_TIMEOUT), "-H", f"Host: {HOST}",
         "-H", "Expect: 100-continue", "--expect100-timeout", "4", "--data-binary", f"@{payload}",
         "-o", "-", "-w", "\n%{http_code}", "-v", f"http://127.0.0.1:{proxy.http_port}/upload"],
        capture_output=True, timeout=HTTP_TIMEOUT + 5)
    assert out.returncode == 0, out.stderr.decode()
    body, _, code = out.stdout.rpartition(b"\n")
    assert code == b"200", out.stdout[-300:]
    assert json.loads(body)["bodyBytes"] == 2 * 1024 * 1024 + 17
    assert b"< HTTP/1.1 100" in out.stderr, "curl did not see 100 Continue"
