#!/usr/bin/env bash
# Global rate limits, end to end (issue 16): a route limited with
# rateLimit.scope global (Redis on loopback; a limit high enough never to
# refuse, so every request is decided) against the bare route of the same
# proxy, in the same run. Two limited targets:
#  - "leases": the default store settings (leasePercent 1): one busy key
#    (all the load comes from one client IP) is answered mostly from leases
#    (docs/policies.md, "Leases"), a round trip per lease;
#  - "per request": a second proxy, the same binary and settings but
#    leasePercent 0: every request waits for its decision's round trip
#    (batched and coalesced per worker). This is the cost of a limit on many
#    keys of low rate each, where leases do not apply.
#
# - Backend: nginx, one worker, `return 200`. Store: redis-server, no
#   persistence. Both with wrk on CPU 1.
# - Proxy: one worker pinned to CPU 0, access log off, budget 5 ms.
# - Throughput: wrk -t1 --latency at 1, 16 and 64 connections (closed
#   loops; 16 and 64 saturate the machine, 1 is one request at a time: its
#   p50 is the unloaded latency); every target once per round, rounds
#   interleaved; medians of req/s and p50.
# - Latency: h2load --h1 at a fixed rate well below saturation (16
#   connections x 250 requests/s), p50 and p99 of every response time. A
#   p50 taken at saturation is queueing (Little's law: connections / req/s)
#   and only restates the throughput ratio; at a fixed rate it is what the
#   store's round trip adds to a request.
# - CPU time per request (user + system, from /proc) of the proxy and of
#   redis-server during each run: the steadiest figures on a shared machine.
# - Redis round trips and socket writes per decision: the proxy's
#   gantry_ratelimit_store_round_trips_total and _writes_total over its
#   decisions, for the whole run (pipelining makes writes fewer than round
#   trips under concurrency).
# Prints the ratio limited / bare and the p50 overhead at each connection
# count, and the p50 overhead at the fixed rate (targets: >= 0.85, < 0.2 ms).
# Never fails on numbers. GANTRY_BENCH_CONNS="1 16 64" and
# GANTRY_BENCH_RPS=250 (per connection, 16 connections) change the loads.
#
#   tests/bench/ratelimit_bench.sh [BIN_DIR] [SECONDS] [ROUNDS]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bin=${1:-build/bin}
secs=${2:-5}
rounds=${3:-3}
conns_list=${GANTRY_BENCH_CONNS:-1 16 64}
rps_per_conn=${GANTRY_BENCH_RPS:-250}
bin=$(cd "$bin" && pwd)
tmp=$(mktemp -d /tmp/gantry-ratelimit-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${GANTRY_BENCH_KEEP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
for tool in nginx wrk h2load taskset curl redis-server; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is needed (hack/install-deps.sh)" >&2; exit 1; }
done

backend_port=19301
redis_port=19302
proxy_port=19303
stats_port=19304
proxy2_port=19305
stats2_port=19306
cpu_proxy=0
cpu_load=1
if [ "$(nproc)" -lt 2 ]; then cpu_load=0; fi

mkdir -p "$tmp/backend"
chmod 755 "$tmp"
cat >"$tmp/backend/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $tmp/backend/nginx.pid;
error_log $tmp/backend/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  server {
    listen 127.0.0.1:$backend_port reuseport;
    location / { return 200 "ok\n"; }
  }
}
CONF
taskset -c "$cpu_load" nginx -c "$tmp/backend/nginx.conf" -p "$tmp/backend" >/dev/null 2>&1 &
pids+=($!)
taskset -c "$cpu_load" redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
  --daemonize no --dir "$tmp" >"$tmp/redis.log" 2>&1 &
redis_pid=$!
pids+=($!)
wait_port "$backend_port"
wait_port "$redis_port"

backends='"backends": [{"cluster": "bench/echo:80", "weight": 1}]'
for lease in 1 0; do
cat >"$tmp/snapshot-$lease.json" <<JSON
{"version": 1,
 "routes": [{"namespace": "bench", "name": "rl", "creationTimestamp": 1, "rules": [
   {"matches": [{"path": {"type": "PathPrefix", "value": "/limited"}}], $backends,
    "filters": {"rateLimit": {"requests": 1000000000, "intervalMs": 1000, "key": "ClientIP", "scope": "global"}}},
   {"matches": [{"path": {"type": "PathPrefix", "value": "/bare"}}], $backends}]}],
 "clusters": [{"name": "bench/echo:80", "endpoints": [{"address": "127.0.0.1", "port": $backend_port}]}],
 "rateLimitStore": {"address": "127.0.0.1:$redis_port", "budgetMs": 5, "expectedReplicas": 1,
                    "leasePercent": $lease}}
JSON
done
start_proxy() {  # name port stats_port lease_percent
  taskset -c "$cpu_proxy" "$bin/gantry-proxy" --workers 1 --http-listen "127.0.0.1:$2" \
    --admin-listen off --stats-listen "127.0.0.1:$3" --control-socket "$tmp/$1.sock" \
    --snapshot-file "$tmp/snapshot-$4.json" --drain-seconds 0 --access-log off >"$tmp/$1.log" 2>&1 &
  pids+=($!)
  wait_port "$2" || { cat "$tmp/$1.log" >&2; exit 1; }
  for path in /bare/a /limited/a; do
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$2$path" || true)
    [ "$code" = 200 ] || { echo "bench: $path answers $code" >&2; cat "$tmp/$1.log" >&2; exit 1; }
  done
  curl -s -D - -o /dev/null "http://127.0.0.1:$2/limited/a" | grep -qi '^ratelimit-limit: 1000000000' ||
    { echo "bench: /limited carries no RateLimit-Limit of the global limit" >&2; exit 1; }
}
start_proxy proxy "$proxy_port" "$stats_port" 1
proxy_pid=$!
start_proxy proxy2 "$proxy2_port" "$stats2_port" 0
proxy2_pid=$!

metric() {  # stats_port name -> value
  curl -s "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1 == n { print $2 }'
}
hz=$(getconf CLK_TCK)
# The targets: name -> "port path pid".
declare -A target=([bare]="$proxy_port /bare/a $proxy_pid" [leases]="$proxy_port /limited/a $proxy_pid"
                   [perreq]="$proxy2_port /limited/a $proxy2_pid")
declare -A label=([bare]="bare" [leases]="global limit, leases" [perreq]="global limit, per request")
names="bare leases perreq"
# name conns -> "rps p50_ms requests proxy_cpu_us_per_request redis_cpu_us_per_request errors"
run_wrk() {
  local port path proxy_pid conns=$2 out p0 p1 r0 r1
  read -r port path proxy_pid <<<"${target[$1]}"
  local url="http://127.0.0.1:$port$path"
  taskset -c "$cpu_load" wrk -t1 -c"$conns" -d1s "$url" >/dev/null 2>&1 || true  # warm-up
  p0=$(cpu_ticks "$proxy_pid")
  r0=$(cpu_ticks "$redis_pid")
  out=$(taskset -c "$cpu_load" wrk -t1 -c"$conns" -d"${secs}s" --latency "$url")
  p1=$(cpu_ticks "$proxy_pid")
  r1=$(cpu_ticks "$redis_pid")
  awk -v pc="$((p1 - p0))" -v rc="$((r1 - r0))" -v hz="$hz" '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    /requests in/ { n = $1 }
    /Requests\/sec/ { rps = $2 }
    $1 == "50%" { p50 = ms($2) }
    /Non-2xx|Socket errors/ { err = err $0 "; " }
    END { printf "%.0f %.3f %d %.1f %.1f %s\n", rps, p50, n, (n > 0 ? pc * 1e6 / hz / n : 0),
          (n > 0 ? rc * 1e6 / hz / n : 0), (err == "" ? "none" : err) }' <<<"$out"
}

# name -> "p50_ms p99_ms requests errors": h2load at a fixed rate, every
# response time from its log.
run_fixed() {
  local port path pid
  read -r port path pid <<<"${target[$1]}"
  local url="http://127.0.0.1:$port$path" log="$tmp/h2load.log"
  rm -f "$log"
  taskset -c "$cpu_load" h2load --h1 -c16 --rps "$rps_per_conn" -D "$secs" --warm-up-time 1 \
    --log-file "$log" "$url" >"$tmp/h2load.out" 2>&1 || true
  awk '$2 == 200 { print $3 } $2 != 200 { bad++ } END { if (bad) print "errors " bad > "/dev/stderr" }' "$log" \
    2>"$tmp/h2load.err" | sort -n | awk -v errs="$(cat "$tmp/h2load.err")" '
    { v[NR] = $1 } END { printf "%.3f %.3f %d %s\n", v[int(NR * 0.5) + 1] / 1000, v[int(NR * 0.99) + 1] / 1000, NR,
                         (errs == "" ? "none" : errs) }'
}

declare -A samples
for r in $(seq 1 "$rounds"); do
  for conns in $conns_list; do
    for n in $names; do
      line=$(run_wrk "$n" "$conns")
      samples[$conns$n]+="$line"$'\n'
      echo "round $r/$rounds -c$conns ${label[$n]}: $line" >&2
    done
  done
  for n in $names; do
    line=$(run_fixed "$n")
    samples[fixed$n]+="$line"$'\n'
    echo "round $r/$rounds fixed rate ${label[$n]}: $line" >&2
  done
done

median() {  # column (1-based) of the sample lines on stdin
  awk -v c="$1" '{ print $c }' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
echo
echo "ratelimit benchmark: $rounds interleaved rounds (medians), gantry-proxy pinned to CPU $cpu_proxy with 1 worker;" \
  "nginx (return 200), redis-server and the load generator on CPU $cpu_load"
echo "throughput: wrk -t1 -c<N> -d${secs}s"
printf "%-36s %10s %10s %12s %12s  %s\n" target "req/s" "p50 ms" "proxy us/req" "redis us/req" errors
for conns in $conns_list; do
  for n in $names; do
    s=${samples[$conns$n]}
    errs=$(printf '%s' "$s" | awk '{ $1 = $2 = $3 = $4 = $5 = ""; sub(/^ +/, ""); print }' | sort -u | paste -sd'|')
    printf "%-36s %10.0f %10.3f %12.1f %12.1f  %s\n" "${label[$n]}, -c$conns" "$(printf '%s' "$s" | median 1)" \
      "$(printf '%s' "$s" | median 2)" "$(printf '%s' "$s" | median 4)" "$(printf '%s' "$s" | median 5)" "$errs"
  done
done
echo "latency: h2load --h1 -c16 --rps $rps_per_conn (a fixed $((16 * rps_per_conn)) req/s) -D ${secs}s"
printf "%-36s %10s %10s %10s  %s\n" target "p50 ms" "p99 ms" requests errors
for n in $names; do
  s=${samples[fixed$n]}
  printf "%-36s %10.3f %10.3f %10.0f  %s\n" "${label[$n]}" "$(printf '%s' "$s" | median 1)" "$(printf '%s' "$s" | median 2)" \
    "$(printf '%s' "$s" | median 3)" "$(printf '%s' "$s" | awk '{ $1 = $2 = $3 = ""; sub(/^ +/, ""); print }' | sort -u | paste -sd'|')"
done
for n in leases perreq; do
  echo "${label[$n]}:"
  for conns in $conns_list; do
    awk -v a="$(printf '%s' "${samples[$conns$n]}" | median 1)" -v b="$(printf '%s' "${samples[${conns}bare]}" | median 1)" \
      -v p="$(printf '%s' "${samples[$conns$n]}" | median 2)" -v q="$(printf '%s' "${samples[${conns}bare]}" | median 2)" \
      -v c="$conns" 'BEGIN { printf "  -c%d: ratio limited / bare %.3f (target >= 0.85), p50 overhead %.3f ms (target < 0.2 ms)\n", c, a / b, p - q }'
  done
  awk -v p="$(printf '%s' "${samples[fixed$n]}" | median 1)" -v q="$(printf '%s' "${samples[fixedbare]}" | median 1)" \
    'BEGIN { printf "  p50 overhead at the fixed rate: %.3f ms (target < 0.2 ms)\n", p - q }'
done
# Over the whole run (warm-ups and the checks above included): every request
# of a limited route is one decision, the store's or a lease's.
for sp in "$stats_port leases" "$stats2_port perreq"; do
  read -r port n <<<"$sp"
  m=$(curl -s "http://127.0.0.1:$port/metrics")
  awk -v name="${label[$n]}" '
    $1 == "gantry_ratelimit_store_round_trips_total" { t = $2 }
    $1 == "gantry_ratelimit_store_writes_total" { w = $2 }
    $1 == "gantry_ratelimit_store_requests_total{result=\"decided\"}" { d = $2 }
    $1 == "gantry_ratelimit_store_requests_total{result=\"lease\"}" { l = $2 }
    $1 == "gantry_ratelimit_store_requests_total{result=\"unavailable\"}" { u = $2 }
    $1 == "gantry_ratelimit_lease_unused_total" { x = $2 }
    END { n = d + l; printf "%s: %d decisions (%d from leases, %d leased places unused), %d unavailable; %.4f Redis round trips and %.4f socket writes per decision (handshakes included)\n",
          name, n, l, x, u, (n > 0 ? t / n : 0), (n > 0 ? w / n : 0) }' <<<"$m"
done
