"""h2spec v2.2.1 (the HTTP/2 conformance suite, pinned by hack/h2spec/go.mod and
built by hack/h2spec.sh into the test-binary cache) run for real against the
proxy's HTTP/2 codec and connection driver (proxy/http2/) on loopback sockets,
on cleartext h2c with prior knowledge and on TLS with ALPN h2, plus nghttp
(Debian nghttp2-client) as an ordinary client.

The server under test is gantry-h2-echo, which serves the codec standalone
(no exchange, no upstream), so a codec failure shows here on its own. The
same suites run against gantry-proxy's own listeners, with a route to a real
backend, in test_http2_proxy.py.
"""

import os
import re
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest

from conftest import REPO, START_TIMEOUT, binary, free_port, wait_until

ALL_CASES = 145  # h2spec v2.2.1's generic + http2 + hpack cases


def h2spec_binary():
    path = os.environ.get("GANTRY_H2SPEC")
    if not path:
        out = subprocess.run(["bash", str(REPO / "hack" / "h2spec.sh")], capture_output=True,
                             text=True, timeout=600)
        assert out.returncode == 0, out.stderr
        path = out.stdout.strip().splitlines()[-1]
    assert Path(path).exists(), path
    return path


def listening(port):
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def server(procs, workdir):
    cert, key = workdir / "cert.pem", workdir / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-subj", "/CN=localhost", "-days", "1"], check=True, capture_output=True)
    h2c, tls = free_port(), free_port()
    proc = procs.spawn([binary("gantry-h2-echo"), f"--listen=127.0.0.1:{h2c}",
                 f"--tls-listen=127.0.0.1:{tls}", f"--cert={cert}", f"--key={key}"],
                workdir / "h2-echo.log")
    wait_until(lambda: listening(h2c) and listening(tls), START_TIMEOUT, "gantry-h2-echo to listen")
    return {"h2c": h2c, "tls": tls, "pid": proc.pid}


def run_h2spec(port, tls):
    argv = [h2spec_binary(), "-h", "127.0.0.1", "-p", str(port), "-o", "3"]
    if tls:
        argv += ["-t", "-k"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    text = out.stdout + out.stderr
    m = re.search(r"(\d+) tests, (\d+) passed, (\d+) skipped, (\d+) failed", text)
    assert m, text[-3000:]
    total, passed, skipped, failed = map(int, m.groups())
    return total, passed, skipped, failed, text


@pytest.mark.parametrize("mode", ["h2c", "tls"])
def test_h2spec_all_cases_pass(server, mode):
    total, passed, skipped, failed, text = run_h2spec(server[mode], mode == "tls")
    failures = text[text.find("Failures:"):][:4000] if "Failures:" in text else ""
    assert (total, passed, failed) == (ALL_CASES, ALL_CASES, 0), failures


def test_nghttp_client_with_body_and_large_download(server, workdir):
    # A POST of 1 MiB (four times the stream window), then 8 MiB in one stream:
    # both directions go through the codec's flow control.
    upload = workdir / "upload.bin"
    upload.write_bytes(b"x" * (1 << 20))
    out = subprocess.run(["nghttp", "-d", str(upload), f"http://127.0.0.1:{server['h2c']}/upload"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"POST /upload {1 << 20}", out.stdout
    out = subprocess.run(["nghttp", "-n", "-s", f"http://127.0.0.1:{server['h2c']}/bytes/8388608"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    m = re.search(r"\s200\s+(\S+)\s+/bytes/8388608", out.stdout)
    assert m and m.group(1) == "8M", out.stdout


def memory_kib(pid, field):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def test_one_gib_each_way_at_bounded_memory(server, workdir):
    # 1 GiB up (a sparse file) and 1 GiB down, through the codec's flow control:
    # the server's peak RSS stays far below what it carried.
    big = workdir / "big.bin"
    with open(big, "wb") as f:
        f.truncate(1 << 30)
    url = f"http://127.0.0.1:{server['h2c']}"
    out = subprocess.run(["nghttp", "-d", str(big), f"{url}/upload"], capture_output=True,
                         text=True, timeout=120)
    assert out.stdout.strip() == f"POST /upload {1 << 30}", out.stdout + out.stderr
    out = subprocess.run(["nghttp", "-n", "-s", f"{url}/bytes/{1 << 30}"], capture_output=True,
                         text=True, timeout=120)
    assert re.search(r"\s200\s+1G\s+/bytes/", out.stdout), out.stdout
    peak = memory_kib(server["pid"], "VmHWM")
    print(f"gantry-h2-echo peak RSS after 1 GiB each way: {peak} KiB")
    assert peak < 64 * 1024, f"peak RSS {peak} KiB"


def h2_frame(ftype, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", stream) + payload


def test_a_reader_that_stops_holds_the_server_to_its_buffers(server):
    # A client asks for 1 GiB and reads nothing: the server's streaming answer
    # must stop at the client's window plus the codec's bounded buffers.
    lit = lambda n, v: b"\x00" + bytes([len(n)]) + n + bytes([len(v)]) + v
    block = b"".join(lit(n, v) for n, v in [(b":method", b"GET"), (b":scheme", b"http"),
                                            (b":authority", b"x"), (b":path", b"/bytes/1073741824")])
    before = memory_kib(server["pid"], "VmRSS")
    with socket.create_connection(("127.0.0.1", server["h2c"])) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + h2_frame(4, 0, 0) + h2_frame(1, 5, 1, block))
        # The connection window is 64 KiB: after it, only socket buffers fill.
        time.sleep(1.0)
        grown = memory_kib(server["pid"], "VmRSS") - before
        print(f"RSS growth with a stalled reader: {grown} KiB")
        assert grown < 8 * 1024, f"RSS grew by {grown} KiB while the client read nothing"
        # The stream is alive: reading resumes it (one WINDOW_UPDATE worth of data arrives).
        s.settimeout(5)
        got = 0
        while got < 60000:
            d = s.recv(65536)
            assert d, "the server closed the connection"
            got += len(d)


class RawH2:
    """A minimal HTTP/2 client over a socket: frames in and out, PING acks."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.s.settimeout(5)
        self.buf = b""
        self.s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + h2_frame(4, 0, 0))

    def send(self, data):
        try:
            self.s.sendall(data)
        except OSError:  # the server may close as soon as its last stream ended
            pass

    def get(self, stream, path):
        lit = lambda n, v: b"\x00" + bytes([len(n)]) + n + bytes([len(v)]) + v
        block = b"".join(lit(n, v) for n, v in [(b":method", b"GET"), (b":scheme", b"http"),
                                                (b":authority", b"x"), (b":path", path.encode())])
        self.send(h2_frame(1, 5, stream, block))

    def frame(self):
        """The next frame (type, flags, stream, payload), or None when the server closed."""
        while len(self.buf) < 9 or len(self.buf) < 9 + int.from_bytes(self.buf[:3], "big"):
            try:
                d = self.s.recv(65536)
            except ConnectionResetError:
                return None
            if not d:
                return None
            self.buf += d
        n = int.from_bytes(self.buf[:3], "big")
        f = (self.buf[3], self.buf[4], int.from_bytes(self.buf[5:9], "big") & 0x7fffffff, self.buf[9:9 + n])
        self.buf = self.buf[9 + n:]
        if f[0] == 6 and not f[1] & 1:  # PING: acknowledge
            self.send(h2_frame(6, 1, 0, f[3]))
        if f[0] == 4 and not f[1] & 1:  # SETTINGS: acknowledge
            self.send(h2_frame(4, 1, 0))
        return f


def test_sigterm_drains_with_two_goaways_and_finishes_the_stream(server, procs):
    # A 4 MiB answer read slowly (the client opens its window 64 KiB at a
    # time) is in flight when the server is told to stop: GOAWAY(2^31-1) +
    # PING, then after the ack GOAWAY(last stream = 1); the stream completes,
    # a new stream is not served, then the connection closes and the server exits 0.
    c = RawH2(server["h2c"])
    c.get(1, "/bytes/4194304")
    got, goaways, ended = 0, [], False
    while got < 65535:
        f = c.frame()
        if f[0] == 0:
            got += len(f[3])
    os.kill(server["pid"], 15)
    inc = struct.pack(">I", got)  # what arrived before: its window reopens now
    c.s.sendall(h2_frame(8, 0, 0, inc) + h2_frame(8, 0, 1, inc))
    while True:
        f = c.frame()
        if f is None:
            break
        if f[0] == 7:
            goaways.append((int.from_bytes(f[3][:4], "big") & 0x7fffffff, int.from_bytes(f[3][4:8], "big")))
            if len(goaways) == 2:
                c.get(3, "/late")  # after the final GOAWAY: must not be served
        if f[0] == 0 and f[2] == 1:
            got += len(f[3])
            ended = ended or bool(f[1] & 1)
            if f[3] and not ended:  # keep reading: open both windows by what arrived
                inc = struct.pack(">I", len(f[3]))
                c.send(h2_frame(8, 0, 0, inc) + h2_frame(8, 0, 1, inc))
        if f[0] == 1 and f[2] == 3:
            pytest.fail("a stream opened after the final GOAWAY was served")
    assert goaways[:2] == [((1 << 31) - 1, 0), (1, 0)], goaways
    assert ended and got == 4194304, (ended, got)
    proc = [p for p in procs._procs if p.pid == server["pid"]][0]
    assert proc.wait(timeout=10) == 0


def curl_h2(port, path, *extra):
    out = subprocess.run(["curl", "-s", "-i", "--http2-prior-knowledge", *extra,
                          f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0, out.stderr
    return out.stdout.replace("\r\n", "\n")


def test_requests_reach_the_exchange_interface_normalised(server):
    # Through H2Downstream: the path is normalised like HTTP/1.1's, framing
    # fields of an HTTP/1.1-shaped answer are dropped, names are lower case.
    text = curl_h2(server["h2c"], "/a/%2e%2e/b?x=1")
    assert text.startswith("HTTP/2 200"), text
    assert text.rstrip().endswith("GET /b 0"), text
    assert "connection:" not in text.lower() and "transfer-encoding" not in text.lower(), text
    assert "content-type: text/plain" in text, text


@pytest.mark.parametrize("status,grpc_status", [(503, 14), (401, 16), (404, 12), (429, 14)])
def test_local_replies_to_grpc_requests_are_trailers_only(server, status, grpc_status):
    text = curl_h2(server["h2c"], f"/local/{status}", "-H", "content-type: application/grpc")
    assert text.startswith("HTTP/2 200"), text
    assert f"grpc-status: {grpc_status}\n" in text, text
    assert f"grpc-message: local reply {status}\n" in text, text
    plain = curl_h2(server["h2c"], f"/local/{status}")
    assert plain.startswith(f"HTTP/2 {status}"), plain
    assert plain.rstrip().endswith(f"local reply {status}"), plain
