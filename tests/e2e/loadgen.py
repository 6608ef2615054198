"""A small fixed-rate HTTP/1.1 load generator for the e2e churn tests.

`rate` requests per second in total, spread over `connections` threads, each
with its own keep-alive connection (http.client). Request n is due at
start + n / rate and is sent by thread n % connections (a thread that falls
behind sends at once: the rate is a schedule, not a promise, and `late`
counts how many requests left more than 100 ms after their due time). Every
`post_every`-th request is a POST with a small JSON body (non-idempotent
traffic); the rest are GETs. The run is bounded: it stops when stop() is
called or after `max_seconds`, and every request has a timeout.

Each answer is classified: ok (2xx), `http_<code>` (non-2xx), `connect`
(the proxy refused or the connect failed), `reset` (connection reset /
closed before a full answer), `timeout`. A failed connection is closed and
the next request opens a new one. Failures are kept with their time, method
and detail for the timeline.

LoadProcess runs the same generator in a child process (the e2e harness uses
it so the load does not compete with its watches for the interpreter lock).
"""

import http.client
import json
import socket
import sys
import threading
import time
from collections import Counter
from pathlib import Path

IDEMPOTENT = ("GET", "HEAD")


class LoadGenerator:
    def __init__(self, port, host_header, rate=100, connections=8, post_every=10,
                 timeout=5.0, max_seconds=600, addr="127.0.0.1", path="/", watch_header=None):
        self.port, self.host_header, self.addr, self.path = port, host_header, addr, path
        self.rate, self.connections, self.post_every = rate, connections, post_every
        self.timeout, self.max_seconds = timeout, max_seconds
        self.watch_header = watch_header  # a request header the echo reflects: values counted
        self.lock = threading.Lock()
        self.sent = Counter()        # method -> count
        self.outcomes = Counter()    # (method, kind) -> count
        self.backends = Counter()    # echo name -> count
        self.header_values = Counter()
        self.failures = []           # (monotonic time, method, kind, detail)
        self.late = 0
        self._stop = threading.Event()
        self._threads = []
        self.t_start = self.t_end = None

    # ---------------------------------------------------------------- run

    def start(self):
        self.t_start = time.monotonic()
        for k in range(self.connections):
            t = threading.Thread(target=self._worker, args=(k,), name=f"load-{k}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(timeout=self.timeout + 5)
        self.t_end = time.monotonic()
        return self

    def _worker(self, k):
        conn = None
        n = k
        deadline = self.t_start + self.max_seconds
        while not self._stop.is_set():
            due = self.t_start + n / self.rate
            if due >= deadline:
                break
            wait = due - time.monotonic()
            if wait > 0:
                if self._stop.wait(wait):
                    break
            elif wait < -0.1:
                with self.lock:
                    self.late += 1
            method = "POST" if self.post_every and n % self.post_every == self.post_every - 1 else "GET"
            conn = self._one(conn, method, n)
            n += self.connections
        if conn is not None:
            conn.close()

    def _one(self, conn, method, n):
        body = None
        headers = {"Host": self.host_header}
        if method == "POST":
            body = json.dumps({"n": n}).encode()
            headers["Content-Type"] = "application/json"
        kind, detail, answer = "ok", "", None
        try:
            if conn is None:
                conn = http.client.HTTPConnection(self.addr, self.port, timeout=self.timeout)
                try:
                    conn.connect()
                except socket.timeout:
                    raise
                except OSError as e:
                    kind, detail = "connect", repr(e)
                    conn.close()
                    conn = None
            if conn is not None:
                conn.request(method, self.path, body=body, headers=headers)
                r = conn.getresponse()
                data = r.read()
                if 200 <= r.status < 300:
                    try:
                        answer = json.loads(data)
                    except ValueError:
                        answer = None
                else:
                    kind, detail = f"http_{r.status}", data[:200].decode(errors="replace")
                if r.will_close:
                    conn.close()
                    conn = None
        except socket.timeout as e:
            kind, detail = "timeout", repr(e)
        except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError,
                http.client.RemoteDisconnected, http.client.IncompleteRead,
                http.client.BadStatusLine) as e:
            kind, detail = "reset", repr(e)
        except (OSError, http.client.HTTPException) as e:
            kind, detail = "reset", repr(e)
        if kind != "ok" and conn is not None:
            conn.close()
            conn = None
        with self.lock:
            self.sent[method] += 1
            self.outcomes[(method, kind)] += 1
            if kind != "ok":
                self.failures.append((time.monotonic(), method, kind, detail))
            elif isinstance(answer, dict):
                self.backends[answer.get("name")] += 1
                if self.watch_header:
                    self.header_values[(answer.get("headers") or {}).get(self.watch_header)] += 1
        return conn

    # ---------------------------------------------------------------- results

    def total(self):
        return sum(self.sent.values())

    def failed(self, methods=None):
        """{kind: count} of failed requests, for `methods` (all when None)."""
        out = Counter()
        for (method, kind), c in self.outcomes.items():
            if kind != "ok" and (methods is None or method in methods):
                out[kind] += c
        return dict(out)

    def summary(self):
        return {"sent": self.total(), "sent_by_method": dict(self.sent),
                "failed": self.failed(), "failed_idempotent": self.failed(IDEMPOTENT),
                "failed_post": self.failed(("POST",)), "late": self.late,
                "seconds": round((self.t_end or time.monotonic()) - self.t_start, 1)}

    # ---------------------------------------------------------------- out of process

    def state(self):
        return {"sent": dict(self.sent), "late": self.late, "t_start": self.t_start, "t_end": self.t_end,
                "outcomes": [[m, k, c] for (m, k), c in self.outcomes.items()],
                "backends": [[b, c] for b, c in self.backends.items()],
                "header_values": [[v, c] for v, c in self.header_values.items()],
                "failures": self.failures}

    def load_state(self, st):
        self.sent = Counter(st["sent"])
        self.late, self.t_start, self.t_end = st["late"], st["t_start"], st["t_end"]
        self.outcomes = Counter({(m, k): c for m, k, c in st["outcomes"]})
        self.backends = Counter({b: c for b, c in st["backends"]})
        self.header_values = Counter({v: c for v, c in st["header_values"]})
        self.failures = [tuple(f) for f in st["failures"]]


class LoadProcess(LoadGenerator):
    """The same load from a child process (`python3 loadgen.py ...`), so the
    test's own threads (watches, pollers, node agent) do not share its
    interpreter lock. Times are time.monotonic(), the same clock in both
    processes. The child dies with its parent (PR_SET_PDEATHSIG)."""

    def __init__(self, port, host_header, **kw):
        super().__init__(port, host_header, **kw)
        self._kw = dict(port=port, host_header=host_header, **kw)
        self.proc = None

    def start(self):
        import subprocess
        from conftest import _die_with_parent
        self.proc = subprocess.Popen([sys.executable, __file__, json.dumps(self._kw)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     preexec_fn=_die_with_parent)
        line = self.proc.stdout.readline()
        if not line.startswith("started "):
            self.proc.kill()
            raise RuntimeError(f"load generator did not start: {line!r}")
        self.t_start = float(line.split()[1])
        return self

    def stop(self):
        try:
            self.proc.stdin.write("stop\n")
            self.proc.stdin.flush()
            out, _ = self.proc.communicate(timeout=self.timeout + 30)
            self.load_state(json.loads(out))
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        return self


def _child_main():
    kw = json.loads(sys.argv[1])
    lg = LoadGenerator(**kw).start()
    print(f"started {lg.t_start}", flush=True)
    stopper = threading.Thread(target=lambda: (sys.stdin.readline(), lg._stop.set()), daemon=True)
    stopper.start()
    lg._stop.wait(lg.max_seconds)
    lg.stop()
    print(json.dumps(lg.state()), flush=True)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
    _child_main()
