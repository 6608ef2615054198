"""gRPC-Web through gantry-proxy to grpc-go's interop server (issue 13).

The backend is grpc-go v1.85.0's own interop server (hack/grpc-interop.sh,
GANTRY_GRPC_INTEROP), plain h2c behind an "H2C" cluster; the rule has
filters.grpcWeb. No gRPC-Web client of the suite's service is packaged for
Python or Go (grpc-web's clients are JavaScript for browsers), so the
requests are gRPC-Web bodies built here from the grpc.testing messages,
sent as a browser would (HTTP/1.1 with Python's http.client; HTTP/2 with
curl), and the answers are parsed as gRPC-Web: message frames, then the
trailer frame, base64 for -text. What they check comes from the server:
payload sizes it was asked for, the status and message it was asked to
fail with, metadata it echoes.
"""

import base64
import http.client
import struct
import subprocess

import pytest

from conftest import START_TIMEOUT, HTTP_TIMEOUT, free_port, sn_cluster, sn_route, sn_rule, sn_snapshot, \
    temporary_dataplane, wait_until
from test_grpc_interop import interop_dir
from test_http2_codec import listening

HOST = "grpc.example"
ORIGIN = "https://app.example"
SVC = "/grpc.testing.TestService/"


# ---- protobuf, the few fields the grpc.testing messages need

def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def field(num, value):
    if isinstance(value, int):
        return varint(num << 3) + varint(value)
    return varint((num << 3) | 2) + varint(len(value)) + value


def simple_request(size, status=None):
    """grpc.testing.SimpleRequest: response_size (2), response_status (7: code 1, message 2)."""
    msg = field(2, size)
    if status is not None:
        msg += field(7, field(1, status[0]) + field(2, status[1].encode()))
    return msg


def streaming_request(sizes):
    """grpc.testing.StreamingOutputCallRequest: response_parameters (2: size 1) per message."""
    return b"".join(field(2, field(1, s)) for s in sizes)


def read_varint(buf, i):
    n = shift = 0
    while True:
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def fields(msg):
    """{number: [values]} of a protobuf message (varints and length-delimited fields only)."""
    out, i = {}, 0
    while i < len(msg):
        key, i = read_varint(msg, i)
        if key & 7 == 0:
            v, i = read_varint(msg, i)
        else:
            assert key & 7 == 2, msg
            n, i = read_varint(msg, i)
            v, i = msg[i:i + n], i + n
        out.setdefault(key >> 3, []).append(v)
    return out


def payload_body_size(response):
    """The payload body's length in a SimpleResponse / StreamingOutputCallResponse (payload 1: body 2)."""
    payload = fields(response).get(1, [b""])[0]
    return len(fields(payload).get(2, [b""])[0])


# ---- gRPC-Web framing

def frame(msg):
    return b"\x00" + struct.pack(">I", len(msg)) + msg


def parse(body):
    """[messages], {trailer: value} of a binary gRPC-Web body (the trailer frame must be last)."""
    msgs, trailers, seen_trailer = [], None, False
    while body:
        assert len(body) >= 5, body
        flag, n = body[0], struct.unpack(">I", body[1:5])[0]
        data, body = body[5:5 + n], body[5 + n:]
        assert len(data) == n, "a frame runs past the body"
        assert not seen_trailer, "a frame after the trailer frame"
        if flag & 0x80:
            seen_trailer = True
            trailers = {}
            for line in data.decode().split("\r\n"):
                if line:
                    k, v = line.split(":", 1)
                    trailers[k.strip()] = v.strip()
        else:
            assert flag == 0
            msgs.append(data)
    return msgs, trailers


@pytest.fixture(scope="module")
def proxy():
    bins = interop_dir()
    with temporary_dataplane() as dp:
        port = free_port()
        dp.manager.spawn([str(bins / "interop_server"), f"--port={port}"], dp.workdir / "interop-server.log")
        wait_until(lambda: listening(port), START_TIMEOUT, "the grpc-go interop server to listen")
        cluster = sn_cluster("default/interop:8080", [("127.0.0.1", port)])
        cluster["protocol"] = "H2C"
        empty = sn_cluster("default/gone:8080", [])
        empty["protocol"] = "H2C"
        cors = {"allowOrigins": [ORIGIN], "allowMethods": ["POST"],
                "allowHeaders": ["content-type", "x-grpc-web", "x-user-agent", "grpc-timeout"],
                "exposeHeaders": ["grpc-status", "grpc-message"], "maxAgeMs": 600000}
        routes = [
            sn_route("web", [sn_rule("default/gone:8080", prefix="/grpc.testing.UnimplementedService/",
                                     filters={"grpcWeb": {}}),
                             sn_rule("default/interop:8080", filters={"grpcWeb": {}, "cors": cors})],
                     hostnames=[HOST]),
            sn_route("plain", [sn_rule("default/interop:8080")], hostnames=["plain.example"]),
        ]
        p = dp.proxy(sn_snapshot(1, routes, [cluster, empty]), extra_args=["--http2", "on"])
        yield p


def h1_call(proxy, method, body, text=False, headers=None, host=HOST):
    """One gRPC-Web call over HTTP/1.1 (a browser's fetch): status, headers, raw body."""
    ctype = "application/grpc-web-text+proto" if text else "application/grpc-web+proto"
    h = {"Host": host, "Content-Type": ctype, "X-Grpc-Web": "1", "Accept": ctype}
    h.update(headers or {})
    data = base64.b64encode(body) if text else body
    conn = http.client.HTTPConnection("127.0.0.1", proxy.http_port, timeout=HTTP_TIMEOUT)
    try:
        conn.request("POST", SVC + method if not method.startswith("/") else method, body=data, headers=h)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def h2_call(proxy, tmp_path, method, body, text=False, chunks=None, host=HOST):
    """One gRPC-Web call over h2c (curl, prior knowledge). `chunks`: a -text body as
    several base64 segments, each padded (a streaming client's)."""
    ctype = "application/grpc-web-text" if text else "application/grpc-web"
    if chunks is not None:
        data = b"".join(base64.b64encode(c) for c in chunks)
    else:
        data = base64.b64encode(body) if text else body
    (tmp_path / "req").write_bytes(data)
    out = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "--max-time", str(HTTP_TIMEOUT),
                          "-D", str(tmp_path / "head"), "-o", str(tmp_path / "body"),
                          "-H", f"Host: {host}", "-H", f"Content-Type: {ctype}", "-H", "X-Grpc-Web: 1",
                          "--data-binary", f"@{tmp_path / 'req'}",
                          f"http://127.0.0.1:{proxy.http_port}{SVC}{method}"],
                         capture_output=True, timeout=HTTP_TIMEOUT + 5)
    assert out.returncode == 0, out.stderr
    lines = (tmp_path / "head").read_text().splitlines()
    status = int(lines[0].split()[1])
    heads = {l.split(":", 1)[0].lower(): l.split(":", 1)[1].strip() for l in lines[1:] if ":" in l}
    return status, heads, (tmp_path / "body").read_bytes()


@pytest.mark.parametrize("text", [False, True], ids=["binary", "text"])
def test_unary_over_http1(proxy, text):
    status, heads, body = h1_call(proxy, "UnaryCall", frame(simple_request(314)), text=text)
    assert status == 200, body
    assert heads["content-type"] == ("application/grpc-web-text+proto" if text else "application/grpc-web+proto")
    # Chunked, so the connection is kept; no length of the gRPC answer is relayed.
    assert heads.get("transfer-encoding") == "chunked" and "content-length" not in heads, heads
    msgs, trailers = parse(base64.b64decode(body, validate=True) if text else body)
    assert len(msgs) == 1 and payload_body_size(msgs[0]) == 314, msgs
    assert trailers["grpc-status"] == "0", trailers


@pytest.mark.parametrize("text", [False, True], ids=["binary", "text"])
def test_server_streaming_over_h2(proxy, tmp_path, text):
    status, heads, body = h2_call(proxy, tmp_path, "StreamingOutputCall", frame(streaming_request([1, 2, 3])),
                                  text=text)
    assert status == 200, body
    assert heads["content-type"] == ("application/grpc-web-text" if text else "application/grpc-web")
    msgs, trailers = parse(base64.b64decode(body, validate=True) if text else body)
    assert [payload_body_size(m) for m in msgs] == [1, 2, 3]
    assert trailers["grpc-status"] == "0"


def test_text_body_in_padded_segments(proxy, tmp_path):
    # grpc-web-text sent as base64 segments encoded one by one (each padded).
    req = frame(simple_request(7))
    status, _, body = h2_call(proxy, tmp_path, "UnaryCall", None, text=True, chunks=[req[:4], req[4:5], req[5:]])
    assert status == 200
    msgs, trailers = parse(base64.b64decode(body, validate=True))
    assert len(msgs) == 1 and payload_body_size(msgs[0]) == 7
    assert trailers["grpc-status"] == "0"


def test_error_status_and_metadata(proxy):
    # The server fails as asked: a trailers-only answer (the status in the head).
    status, heads, body = h1_call(proxy, "UnaryCall", frame(simple_request(1, (3, "boom \u00e9"))))
    assert status == 200
    assert heads["grpc-status"] == "3", heads
    assert heads["grpc-message"] == "boom %C3%A9", heads
    assert heads["content-type"] == "application/grpc-web+proto"
    assert body == b""
    # Echoed metadata: initial in the head, trailing (binary) in the trailer frame.
    status, heads, body = h1_call(proxy, "UnaryCall", frame(simple_request(2)),
                                  headers={"x-grpc-test-echo-initial": "hello",
                                           "x-grpc-test-echo-trailing-bin": "AAEC"})
    assert status == 200 and heads["x-grpc-test-echo-initial"] == "hello"
    _, trailers = parse(body)
    assert trailers["grpc-status"] == "0"
    assert trailers["x-grpc-test-echo-trailing-bin"] in ("AAEC", "AAEC=="), trailers


def test_unimplemented_method_is_a_grpc_status(proxy):
    status, heads, body = h1_call(proxy, "UnimplementedCall", frame(b""))
    assert status == 200
    grpc_status = heads.get("grpc-status") or parse(body)[1]["grpc-status"]
    assert grpc_status == "12"


def test_gateway_errors_are_grpc_web_statuses(proxy, tmp_path):
    # No endpoint: the gateway's 503 is UNAVAILABLE, trailers-only, in gRPC-Web's type.
    for text in (False, True):
        status, heads, body = h1_call(proxy, "/grpc.testing.UnimplementedService/UnimplementedCall", frame(b""),
                                      text=text)
        assert status == 200 and heads["grpc-status"] == "14", (status, heads, body)
        assert "no healthy endpoint" in heads["grpc-message"]
        assert heads["content-type"].startswith("application/grpc-web")
        assert heads["content-length"] == "0" and body == b""
    # A -text body that is not base64: 400 as gRPC INTERNAL.
    conn = http.client.HTTPConnection("127.0.0.1", proxy.http_port, timeout=HTTP_TIMEOUT)
    conn.request("POST", SVC + "UnaryCall", body=b"not base64!",
                 headers={"Host": HOST, "Content-Type": "application/grpc-web-text"})
    r = conn.getresponse()
    r.read()
    assert r.status == 200 and r.getheader("grpc-status") == "13", r.getheaders()


def test_cors_preflight_and_exposed_status(proxy):
    # A browser's preflight, answered by the cors filter of the same rule.
    conn = http.client.HTTPConnection("127.0.0.1", proxy.http_port, timeout=HTTP_TIMEOUT)
    conn.request("OPTIONS", SVC + "UnaryCall", headers={
        "Host": HOST, "Origin": ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-grpc-web,x-user-agent"})
    r = conn.getresponse()
    r.read()
    assert r.status == 204, r.status
    assert r.getheader("access-control-allow-origin") == ORIGIN
    assert "x-grpc-web" in r.getheader("access-control-allow-headers").lower()
    # The call itself: the browser may read grpc-status / grpc-message.
    status, heads, body = h1_call(proxy, "UnaryCall", frame(simple_request(3)), headers={"Origin": ORIGIN})
    assert status == 200
    assert heads["access-control-allow-origin"] == ORIGIN
    assert "grpc-status" in heads["access-control-expose-headers"].lower()
    assert parse(body)[1]["grpc-status"] == "0"


def test_no_translation_without_the_filter(proxy, tmp_path):
    # A rule without grpcWeb forwards gRPC-Web as it came: no trailer frame is made.
    status, heads, body = h2_call(proxy, tmp_path, "UnaryCall", frame(simple_request(1)), host="plain.example")
    msgs, trailers = parse(body) if status == 200 and body else ([], None)
    assert trailers is None, (status, heads, body)
    # The same over HTTP/1.1: the backend's bodiless refusal (an h2 head that
    # ends the stream) reaches the client complete, with content-length 0.
    status, heads, body = h1_call(proxy, "UnaryCall", frame(simple_request(1)), host="plain.example")
    assert status == 415 and heads["content-length"] == "0" and body == b"", (status, heads)
    assert heads["content-type"] == "application/grpc"


def grpc_counts(proxy):
    """{(route, grpc_status): count} from gantry_grpc_requests_total."""
    out = {}
    for line in proxy.metrics_text().splitlines():
        if line.startswith("gantry_grpc_requests_total{"):
            labels, value = line[len("gantry_grpc_requests_total{"):].rsplit("} ", 1)
            kv = dict(p.split("=", 1) for p in labels.split(","))
            out[(kv["route"].strip('"'), kv["grpc_status"].strip('"'))] = float(value)
    return out


def test_metrics_count_grpc_statuses(proxy, tmp_path):
    def count(status):
        return sum(v for (route, s), v in grpc_counts(proxy).items() if s == status and route.startswith("default/web"))

    before = {s: count(s) for s in ("0", "3", "14", "12")}
    h1_call(proxy, "UnaryCall", frame(simple_request(1)))                                  # backend: OK
    h2_call(proxy, tmp_path, "UnaryCall", frame(simple_request(1)))                         # backend: OK, over h2
    h1_call(proxy, "UnaryCall", frame(simple_request(1, (3, "x"))))                         # backend: trailers-only 3
    h1_call(proxy, "UnimplementedCall", frame(b""))                                          # backend: 12
    h1_call(proxy, "/grpc.testing.UnimplementedService/UnimplementedCall", frame(b""))       # gateway: 503 -> 14
    want = {"0": 2, "3": 1, "14": 1, "12": 1}
    wait_until(lambda: all(count(s) - before[s] >= n for s, n in want.items()), START_TIMEOUT,
               "the gRPC statuses in gantry_grpc_requests_total")
    assert {s: count(s) - before[s] for s in want} == want
