"""Large bodies stream through the proxy without being buffered.

A 1 GiB download (gantry-echo /bytes/N, Content-Length), a 1 GiB chunked
download (/chunked/N) and a 1 GiB chunked upload (counted by gantry-echo's
bodyBytes) pass through while the proxy's resident memory (VmRSS) stays under
RSS_LIMIT. The client side generates and consumes the streams in 1 MiB
blocks, never holding a body in memory.
"""

import json
import socket
import threading

import pytest

from conftest import parse_responses, sn_cluster, sn_route, sn_rule, sn_snapshot

HOST = "stream.example.com"
CLUSTER = "default/stream:80"
SIZE = 1 << 30                # 1 GiB
BLOCK = 1 << 20               # 1 MiB
RSS_LIMIT_KIB = 64 * 1024     # 64 MiB
TIMEOUT = 60                  # per transfer


@pytest.fixture
def proxy(dataplane):
    echo = dataplane.echo("stream")
    return dataplane.proxy(sn_snapshot(1, [sn_route("stream", [sn_rule(CLUSTER)], hostnames=[HOST])],
                                       [sn_cluster(CLUSTER, [(echo.addr, echo.port)])]))


class RssSampler:
    """Samples the proxy's VmRSS every 50 ms while a transfer runs."""

    def __init__(self, proxy):
        self.proxy = proxy
        self.samples = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop.is_set():
            self.samples.append(self.proxy.rss_kib())
            self.stop.wait(0.05)

    def __enter__(self):
        self.baseline = self.proxy.rss_kib()
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()

    def check(self):
        assert len(self.samples) >= 3, "transfer too short to sample"
        peak = max(self.samples)
        assert peak < RSS_LIMIT_KIB, f"proxy RSS peaked at {peak} KiB (baseline {self.baseline} KiB)"


def read_head(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before the response head: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split(" ")[1]), headers, rest


def count_until_eof(sock, already):
    """Counts body bytes until the server closes; returns (count, last bytes seen)."""
    buf = bytearray(BLOCK)
    view = memoryview(buf)
    total = len(already)
    tail = already[-16:]
    while True:
        n = sock.recv_into(view)
        if n == 0:
            return total, bytes(tail)
        total += n
        tail = bytes(view[max(0, n - 16):n])


@pytest.mark.parametrize("path,chunked", [(f"/bytes/{SIZE}", False), (f"/chunked/{SIZE}", True)],
                         ids=["content-length", "chunked"])
def test_large_download_streams(proxy, path, chunked):
    with RssSampler(proxy) as rss, socket.create_connection(("127.0.0.1", proxy.http_port),
                                                          timeout=TIMEOUT) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
        status, headers, rest = read_head(s)
        assert status == 200, headers
        total, tail = count_until_eof(s, rest)
    if chunked:
        assert headers.get("transfer-encoding", "").lower() == "chunked", headers
        assert "content-length" not in headers
        # 1 GiB in 64 KiB chunks: each "10000\r\n" + data + "\r\n", then "0\r\n\r\n".
        chunks = SIZE // (64 * 1024)
        assert total == SIZE + chunks * (len("10000\r\n") + 2) + len("0\r\n\r\n")
        assert tail.endswith(b"x\r\n0\r\n\r\n")
    else:
        assert int(headers["content-length"]) == SIZE
        assert total == SIZE
    rss.check()


@pytest.mark.parametrize("size", [0, 1, 65536 * 3 + 17, 64 << 20], ids=["empty", "1B", "3chunks", "64MiB"])
def test_chunked_response_to_http10_client_is_dechunked(proxy, size):
    # RFC 9112 6.1: chunked framing must not go to an HTTP/1.0 client; the
    # proxy sends the data alone and closes to delimit it.
    with socket.create_connection(("127.0.0.1", proxy.http_port), timeout=TIMEOUT) as s:
        s.sendall(f"GET /chunked/{size} HTTP/1.0\r\nHost: {HOST}\r\nConnection: keep-alive\r\n\r\n".encode())
        status, headers, rest = read_head(s)
        assert status == 200, headers
        assert "transfer-encoding" not in headers, headers
        assert headers.get("connection", "").lower() == "close", headers
        total, tail = count_until_eof(s, rest)
    assert total == size
    if size:
        assert tail == b"x" * min(16, size)


def test_large_chunked_upload_streams(proxy):
    block = b"%x\r\n" % BLOCK + b"u" * BLOCK + b"\r\n"
    with RssSampler(proxy) as rss, socket.create_connection(("127.0.0.1", proxy.http_port),
                                                          timeout=TIMEOUT) as s:
        s.sendall(f"POST /upload HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n"
                  "Connection: close\r\n\r\n".encode())
        for _ in range(SIZE // BLOCK):
            s.sendall(block)
        s.sendall(b"0\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    responses, _ = parse_responses(data)
    assert [r.status for r in responses] == [200], data[:300]
    assert json.loads(responses[0].body)["bodyBytes"] == SIZE
    rss.check()


def test_content_length_upload_streams(proxy):
    size = 256 << 20
    with RssSampler(proxy) as rss, socket.create_connection(("127.0.0.1", proxy.http_port),
                                                          timeout=TIMEOUT) as s:
        s.sendall(f"PUT /upload HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {size}\r\n"
                  "Connection: close\r\n\r\n".encode())
        block = b"c" * BLOCK
        for _ in range(size // BLOCK):
            s.sendall(block)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    responses, _ = parse_responses(data)
    assert [r.status for r in responses] == [200], data[:300]
    assert json.loads(responses[0].body)["bodyBytes"] == size
    rss.check()
