#!/usr/bin/env bash
# Where Gantry's h2 CPU time goes compared with HAProxy's, by load shape
# (issue 13; docs/BENCHMARKS.md, "Fewer instructions, the same CPU time").
#
# Gantry and HAProxy (one worker / thread each, pinned to CPU 0) proxy h2c
# to the same HTTP/1.1 nginx backend (CPU 1, as in h2_bench.sh). For each
# h2load shape (CPU 1; default: 16 connections x 1, 4 x 10, 16 x 10 and
# 16 x 40 streams), rounds alternate the two proxies, one loaded at a time;
# each round reads the proxy's user and system time from /proc separately.
# Prints, per shape, the medians over rounds of user and system microseconds
# per request for each, and Gantry minus HAProxy. Never fails on numbers.
#
#   tests/bench/h2_shapes.sh [BIN_DIR] [SECONDS] [ROUNDS] [SHAPE...]
# SHAPE: h2load's connection and stream options in one word, e.g. "-c16 -m10".
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bin=$(cd "${1:-build/bin}" && pwd)
secs=${2:-5}
rounds=${3:-3}
shift $(($# < 3 ? $# : 3))
shapes=("$@")
[ ${#shapes[@]} -gt 0 ] || shapes=("-c16 -m1" "-c4 -m10" "-c16 -m10" "-c16 -m40")
tmp=$(mktemp -d /tmp/gantry-h2shapes.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
for tool in nginx haproxy h2load taskset curl; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is needed (hack/install-deps.sh)" >&2; exit 1; }
done
cpu_proxy=0
cpu_load=1
if [ "$(nproc)" -lt 2 ]; then cpu_load=0; fi
backend=127.0.0.1:19501
start_nginx_backend "$tmp" "$backend" "$cpu_load"

declare -A port pid
cat >"$tmp/snapshot.json" <<JSON
{"version": 1,
 "routes": [{"namespace": "bench", "name": "echo", "creationTimestamp": 1, "hostnames": [],
   "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
              "backends": [{"cluster": "bench/echo:80", "weight": 1}]}]}],
 "clusters": [{"name": "bench/echo:80", "endpoints": [{"address": "127.0.0.1", "port": ${backend#*:}}]}]}
JSON
taskset -c "$cpu_proxy" "$bin/gantry-proxy" --workers 1 --http-listen 127.0.0.1:19580 --admin-listen 127.0.0.1:19590 \
  --stats-listen off --control-socket "$tmp/gantry.sock" --snapshot-file "$tmp/snapshot.json" --drain-seconds 0 \
  --access-log off >"$tmp/gantry.log" 2>&1 &
pid[gantry]=$!
pids+=($!)
port[gantry]=19580
cat >"$tmp/haproxy.cfg" <<CONF
global
  nbthread 1
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  http-reuse always
frontend fe
  bind 127.0.0.1:19582 proto h2
  option forwardfor
  default_backend be
backend be
  server s1 $backend
CONF
taskset -c "$cpu_proxy" haproxy -f "$tmp/haproxy.cfg" >"$tmp/haproxy.out" 2>&1 &
pid[haproxy]=$!
pids+=($!)
port[haproxy]=19582
wait_port 127.0.0.1:19580
wait_port 127.0.0.1:19582
for t in gantry haproxy; do
  code=$(curl -s --http2-prior-knowledge -o /dev/null -w '%{http_code}' "http://127.0.0.1:${port[$t]}/small")
  [ "$code" = 200 ] || { echo "bench: $t answers $code over h2c" >&2; exit 1; }
done

hz=$(getconf CLK_TCK)
# One measurement: prints "user_us_per_request system_us_per_request".
run() {  # target shape
  local t=$1 shape=$2 out u0 s0 u1 s1
  # shellcheck disable=SC2086  # the shape is h2load's options, split on purpose
  taskset -c "$cpu_load" h2load $shape -t1 -D 1 "http://127.0.0.1:${port[$t]}/small" >/dev/null 2>&1 || true
  read -r u0 s0 < <(awk '{ print $14, $15 }' "/proc/${pid[$t]}/stat")
  # shellcheck disable=SC2086
  out=$(taskset -c "$cpu_load" h2load $shape -t1 -D "$secs" "http://127.0.0.1:${port[$t]}/small" 2>&1 || true)
  read -r u1 s1 < <(awk '{ print $14, $15 }' "/proc/${pid[$t]}/stat")
  echo "$out" | awk -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v hz="$hz" '
    /^requests:/ { n = $8 }
    END { if (n > 0) printf "%.3f %.3f\n", u * 1e6 / hz / n, s * 1e6 / hz / n; else print "0 0" }'
}
median() {  # "a;b;c;" field
  echo "$1" | tr ';' '\n' | awk -v f="$2" 'NF { print $f }' | sort -g | awk '{ v[NR] = $1 } END { print (NR ? v[int((NR + 1) / 2)] : 0) }'
}

printf '\n%-12s %-9s %8s %8s %8s\n' shape proxy "user us" "sys us" "total"
for shape in "${shapes[@]}"; do
  declare -A res=()
  for _ in $(seq 1 "$rounds"); do
    for t in gantry haproxy; do res[$t]+="$(run "$t" "$shape");"; done
  done
  for t in gantry haproxy; do
    u=$(median "${res[$t]}" 1)
    s=$(median "${res[$t]}" 2)
    printf '%-12s %-9s %8.2f %8.2f %8.2f\n' "$shape" "$t" "$u" "$s" "$(awk -v a="$u" -v b="$s" 'BEGIN { print a + b }')"
  done
  awk -v gu="$(median "${res[gantry]}" 1)" -v gs="$(median "${res[gantry]}" 2)" \
      -v hu="$(median "${res[haproxy]}" 1)" -v hs="$(median "${res[haproxy]}" 2)" -v sh="$shape" \
      'BEGIN { printf "%-12s %-9s %+8.2f %+8.2f %+8.2f\n", sh, "difference", gu - hu, gs - hs, gu + gs - hu - hs }'
  unset res
done
echo "(medians of $rounds rounds of ${secs} s; user and system time of the proxy process from /proc, per request)"
