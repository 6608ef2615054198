"""Resident memory of gantry-proxy holding a 1,000-route snapshot and idle
keep-alive client connections (64 by default; `hack/bench.sh rss` also runs
10,000), each of which made one request.

    /usr/bin/python3 tests/bench/rss_bench.py BIN_DIR [ROUTES] [CONNECTIONS] [h2 [BYTES]]

With `h2` the connections are HTTP/2 (h2c with prior knowledge; one GET each,
made with raw frames, then read as a client's reader would: SETTINGS and PING
are acknowledged while the connections idle, which an idle h2 session's
hibernation waits for, docs/http2.md); with BYTES (at most 60,000) that GET is answered with a
body of that size (/bytes/BYTES from the echo backend) instead of the echo's
few bytes, so the connection's output buffers have been used. Prints VmRSS after the snapshot and with the connections open and idle for
longer than the proxy's idle-buffer release delay (1 s), and the growth per
idle connection. Only loopback addresses are used.
"""
import http.client
import json
import os
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def wait_port(port, deadline=20):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", "/healthz")
            c.getresponse().read()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing answers on {port}")


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def h2_get(port, host, path):
    """An h2c connection (prior knowledge) that made one GET and is left open."""
    def literal(index, value):  # literal without indexing, indexed name, no Huffman (RFC 7541 6.2.2)
        v = value.encode()
        assert len(v) < 127
        return bytes([index, len(v)]) + v

    block = b"\x82\x86" + literal(4, path) + literal(1, host)  # GET, http, :path, :authority
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0) + frame(1, 0x5, 1, block))
    buf, done, status_ok = b"", False, False
    while not done:
        chunk = s.recv(65536)
        if not chunk:
            raise SystemExit("the proxy closed an h2 connection")
        buf += chunk
        while len(buf) >= 9:
            length = int.from_bytes(buf[:3], "big")
            if len(buf) < 9 + length:
                break
            kind, flags, stream = buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7fffffff
            if kind == 4 and not flags & 1:
                s.sendall(frame(4, 1, 0))  # SETTINGS ACK
            if kind == 1 and stream == 1:
                status_ok = buf[9:9 + length].startswith(b"\x88")  # :status 200, indexed
            if kind in (0, 1) and stream == 1 and flags & 1:
                done = True
            buf = buf[9 + length:]
    assert status_ok, "the h2 GET was not answered 200"
    return s


def h2_idle(socks, seconds):
    """Reads what the proxy sends on idle h2 connections for `seconds`, as an
    idle client does, and acknowledges SETTINGS and PING."""
    sel = selectors.DefaultSelector()
    bufs = {}
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        bufs[s] = b""
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        for key, _ in sel.select(timeout=left):
            s = key.fileobj
            try:
                chunk = s.recv(65536)
            except BlockingIOError:
                continue
            if not chunk:
                raise SystemExit("the proxy closed an idle h2 connection")
            buf = bufs[s] + chunk
            while len(buf) >= 9:
                length = int.from_bytes(buf[:3], "big")
                if len(buf) < 9 + length:
                    break
                kind, flags = buf[3], buf[4]
                if kind == 4 and not flags & 1:
                    s.sendall(frame(4, 1, 0))  # SETTINGS ACK
                if kind == 6 and not flags & 1:
                    s.sendall(frame(6, 1, 0, buf[9:9 + length]))  # PING ACK
                buf = buf[9 + length:]
            bufs[s] = buf
    sel.close()


def main():
    bin_dir = sys.argv[1] if len(sys.argv) > 1 else "build/bin"
    routes = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    conns = int(sys.argv[3]) if len(sys.argv) > 3 else 64
    h2 = len(sys.argv) > 4 and sys.argv[4] == "h2"
    body = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    assert 0 <= body <= 60000, "BYTES: at most 60,000 (one stream window)"
    tmp = tempfile.mkdtemp(prefix="gantry-rss.")
    snap = {"version": 1, "routes": [], "clusters": [
        {"name": "bench/echo:80", "endpoints": [{"address": "127.0.0.1", "port": 19201}]}]}
    for i in range(routes):
        snap["routes"].append({
            "namespace": "bench", "name": f"route-{i}", "creationTimestamp": i,
            "hostnames": [f"host-{i}.example.com"],
            "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": f"/api/{i}"}}],
                       "backends": [{"cluster": "bench/echo:80"}]},
                      {"matches": [{"path": {"type": "Exact", "value": f"/exact/{i}"}}],
                       "backends": [{"cluster": "bench/echo:80"}]}]})
    snap["routes"].append({
        "namespace": "bench", "name": "bytes", "creationTimestamp": routes,
        "hostnames": ["bytes.example.com"],
        "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/bytes"}}],
                   "backends": [{"cluster": "bench/echo:80"}]}]})
    path = os.path.join(tmp, "snapshot.json")
    with open(path, "w") as f:
        json.dump(snap, f)
    echo = subprocess.Popen([f"{bin_dir}/gantry-echo", "--listen", "127.0.0.1:19201", "--plain"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proxy = subprocess.Popen([f"{bin_dir}/gantry-proxy", "--workers", "2",
                              "--http-listen", "127.0.0.1:19280", "--admin-listen", "127.0.0.1:19290", "--stats-listen", "off",
                              "--control-socket", os.path.join(tmp, "c.sock"),
                              "--snapshot-file", path, "--access-log", "off", "--drain-seconds", "0"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(19290)
        before = rss_kib(proxy.pid)
        clients = []
        for i in range(conns):
            if h2:
                if body:
                    clients.append(h2_get(19280, "bytes.example.com", f"/bytes/{body}"))
                else:
                    clients.append(h2_get(19280, f"host-{i % routes}.example.com", f"/api/{i % routes}/x"))
                continue
            c = http.client.HTTPConnection("127.0.0.1", 19280, timeout=10)
            c.request("GET", f"/api/{i % routes}/x", headers={"Host": f"host-{i % routes}.example.com"})
            r = c.getresponse()
            r.read()
            assert r.status == 200, r.status
            clients.append(c)
        if h2:
            h2_idle(clients, 3.0)  # idle > 1 s, then hibernated: answered like a client (docs/http2.md)
        else:
            time.sleep(2.5)  # idle > 1 s: read buffers given back (proxy/net/server.cc)
        after = rss_kib(proxy.pid)
        print(f"gantry-proxy RSS: {before / 1024:.1f} MiB with {routes} routes ({2 * routes} rules), "
              f"{after / 1024:.1f} MiB with {conns} idle {'h2' if h2 else 'keep-alive'} connections "
              f"({(after - before) / conns:.2f} KiB per idle connection)")
        for c in clients:
            c.close()
    finally:
        for p in (proxy, echo):
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
