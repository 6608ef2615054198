"""Sends N GET requests over one keep-alive connection and checks each is a 200.

Used by the instruction-count benchmark, where the client's own speed does
not matter. Waits up to --wait seconds for the port to accept connections.
"""
import argparse
import http.client
import socket
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("n", type=int)
    ap.add_argument("--wait", type=float, default=30)
    a = ap.parse_args()
    deadline = time.monotonic() + a.wait
    while True:
        try:
            socket.create_connection((a.host, a.port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                print(f"nothing listens on {a.host}:{a.port}", file=sys.stderr)
                return 1
            time.sleep(0.1)
    conn = http.client.HTTPConnection(a.host, a.port, timeout=30)
    for i in range(a.n):
        conn.request("GET", "/", headers={"Host": "bench.local"})
        r = conn.getresponse()
        r.read()
        if r.status != 200:
            print(f"request {i}: status {r.status}", file=sys.stderr)
            return 1
    conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
