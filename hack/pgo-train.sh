#!/usr/bin/env bash
# hack/pgo-train.sh BIN_DIR: the training run of the profile-guided build
# (hack/pgo.sh). Runs BIN_DIR's gantry-proxy in front of gantry-echo (HTTP/1.1)
# and gantry-h2-echo (h2c), and sends it the traffic a gateway mostly carries:
# HTTP/1.1 keep-alive GETs and POSTs, h2c streams (16 connections x 10
# streams) with and without a body, and h2c to an h2c cluster, all with h2load
# (Debian nghttp2-client). Then stops everything with SIGTERM, so that
# instrumented binaries write their counts at exit. Exits non-zero when a
# process fails to start, a request fails, or a process does not exit 0.
#
# hack/test.sh runs it on the Release build's binaries (not instrumented), so
# the training itself is checked on every run; the Dockerfile's build and
# `hack/bench.sh h2` run it on instrumented ones.
#
# Environment: PGO_TRAIN_REQUESTS (per load, default 60000), PGO_TRAIN_PORT
# (first of four loopback ports, default 19610).
set -euo pipefail
bin=$(cd "$1" && pwd)
n=${PGO_TRAIN_REQUESTS:-60000}
base=${PGO_TRAIN_PORT:-19610}
http=$base echo_port=$((base + 1)) h2echo_port=$((base + 2)) admin=$((base + 3))
for tool in h2load; do
  command -v "$tool" >/dev/null || { echo "pgo-train: $tool is needed (Debian nghttp2-client)" >&2; exit 1; }
done
tmp=$(mktemp -d /tmp/gantry-pgo-train.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

wait_port() {  # port: until something accepts on 127.0.0.1:port (10 s)
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "pgo-train: nothing listens on 127.0.0.1:$1" >&2
  return 1
}

"$bin/gantry-echo" --listen "127.0.0.1:$echo_port" --plain >"$tmp/echo.log" 2>&1 &
pids+=($!)
"$bin/gantry-h2-echo" --listen "127.0.0.1:$h2echo_port" >"$tmp/h2echo.log" 2>&1 &
pids+=($!)
cat >"$tmp/snapshot.json" <<JSON
{"version": 1,
 "routes": [{"namespace": "train", "name": "web", "creationTimestamp": 1, "hostnames": [],
   "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/h2"}}],
              "backends": [{"cluster": "train/h2:9101", "weight": 1}]},
             {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
              "backends": [{"cluster": "train/web:80", "weight": 1}]}]}],
 "clusters": [{"name": "train/web:80", "endpoints": [{"address": "127.0.0.1", "port": $echo_port}]},
              {"name": "train/h2:9101", "protocol": "H2C",
               "endpoints": [{"address": "127.0.0.1", "port": $h2echo_port}]}]}
JSON
"$bin/gantry-proxy" --workers 1 --http-listen "127.0.0.1:$http" --admin-listen "127.0.0.1:$admin" \
  --stats-listen off --control-socket "$tmp/control.sock" --snapshot-file "$tmp/snapshot.json" \
  --drain-seconds 0 --access-log off >"$tmp/proxy.log" 2>&1 &
proxy=$!
pids+=($proxy)
wait_port "$echo_port"
wait_port "$h2echo_port"
wait_port "$http"

head -c 1024 /dev/zero | tr '\0' x >"$tmp/body"
load() {  # what h2load-args...: runs one load, fails on any failed request
  local what=$1 out
  shift
  out=$(h2load "$@" 2>&1) || { echo "pgo-train: $what: h2load failed" >&2; echo "$out" >&2; return 1; }
  # Every request must be answered 2xx ("status codes: N 2xx, ...").
  echo "$out" | awk -v w="$what" '/^requests:/ { done = $8 } /^status codes:/ { ok = $3 + 0 }
    END { printf "pgo-train: %-22s %s requests, %s answered 2xx\n", w, done, ok; exit !(done > 0 && ok == done) }' ||
    { echo "pgo-train: $what: not every request was answered 2xx" >&2; echo "$out" >&2; return 1; }
}
url="http://127.0.0.1:$http"
load "HTTP/1.1 GET" --h1 -c16 -n "$n" "$url/small"
load "HTTP/1.1 POST 1 KiB" --h1 -c16 -n $((n / 4)) -d "$tmp/body" "$url/upload"
load "h2c GET" -c16 -m10 -n "$n" "$url/small"
load "h2c POST 1 KiB" -c16 -m10 -n $((n / 4)) -d "$tmp/body" "$url/upload"
load "h2c GET, h2c cluster" -c4 -m10 -n $((n / 4)) "$url/h2/small"

# SIGTERM, then each must exit 0 (an instrumented binary writes its counts then).
status=0
for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
for p in "${pids[@]}"; do
  if ! wait "$p"; then
    echo "pgo-train: process $p did not exit 0" >&2
    status=1
  fi
done
pids=()
if [ "$status" != 0 ]; then
  tail -n 5 "$tmp/proxy.log" "$tmp/echo.log" "$tmp/h2echo.log" >&2
fi
exit "$status"
