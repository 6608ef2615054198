#!/usr/bin/env bash
# Data-plane benchmark: Gantry against nginx and HAProxy, same backend, same
# load, same run.
#
# - Backend: nginx (one worker, CPU 1) serving a small body (3 bytes) and a
#   16 KiB body from memory-cached files, keep-alive without a request cap.
# - Proxies, each with one worker pinned to CPU 0: Gantry (access log off),
#   Gantry (JSON access log on), Gantry with a policy set on the route (CORS +
#   rate limit + JWT), nginx (proxy_pass to an upstream keepalive pool) and
#   HAProxy (http-reuse always). All are started once; only the one under load
#   does work.
# - Load: wrk, one thread, 64 keep-alive connections, on CPU 1 with the backend.
# - Rounds: every target x body is run once per round, rounds interleaved, so
#   a noisy neighbour hits all targets alike; the table shows the median over
#   the rounds of req/s, p50 and p99, and the proxy's CPU time per request
#   (user + system, from /proc: the least noisy number on a shared machine).
# Prints the ratios Gantry/HAProxy and Gantry/nginx. Never fails on numbers.
# GANTRY_BENCH_BIN2=DIR (with GANTRY_BENCH_BIN2_NAME, default "gantry-2") adds
# the gantry-proxy of a second build (another build type, say) as one more
# target, measured in the same interleaved rounds. GANTRY_BENCH_TARGETS="gantry gantry-2"
# (names from the table) measures only those targets (all are still started).
#
#   tests/bench/proxy_bench.sh [BIN_DIR] [SECONDS] [CONNECTIONS] [ROUNDS]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bin=${1:-build/bin}
secs=${2:-10}
conns=${3:-64}
rounds=${4:-3}
bin=$(cd "$bin" && pwd)
tmp=$(mktemp -d /tmp/gantry-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${GANTRY_BENCH_KEEP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
for tool in nginx haproxy wrk taskset; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is needed (hack/install-deps.sh)" >&2; exit 1; }
done

backend=127.0.0.1:19001
cpu_proxy=0
cpu_load=1
if [ "$(nproc)" -lt 2 ]; then cpu_load=0; fi

# ---- backend (lib.sh), and a 16 KiB body beside its small one
start_nginx_backend "$tmp" "$backend" "$cpu_load"
head -c 16384 /dev/zero | tr '\0' 'x' >"$tmp/www/16k"
chmod 644 "$tmp/www/16k"
for b in small 16k; do  # a benchmark of error pages would measure nothing
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://$backend/$b")
  [ "$code" = 200 ] || { echo "bench: the backend answers $code for /$b" >&2; exit 1; }
done

# ---- Gantry snapshots: the bare route, and the same route with policies
cat >"$tmp/snapshot.json" <<JSON
{"version": 1,
 "routes": [{"namespace": "bench", "name": "echo", "creationTimestamp": 1, "hostnames": [],
   "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
              "backends": [{"cluster": "bench/echo:80", "weight": 1}]}]}],
 "clusters": [{"name": "bench/echo:80", "endpoints": [{"address": "127.0.0.1", "port": 19001}]}]}
JSON
secret_b64=$(printf 'bench-secret-bench-secret-bench!' | base64)
token=$(/usr/bin/python3 -c 'import jwt; print(jwt.encode({"iss": "bench", "aud": "gantry", "sub": "bench-user", "exp": 4102444800}, b"bench-secret-bench-secret-bench!", algorithm="HS256"))')
cat >"$tmp/snapshot-policies.json" <<JSON
{"version": 1,
 "routes": [{"namespace": "bench", "name": "echo", "creationTimestamp": 1, "hostnames": [],
   "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
              "filters": {
                "cors": {"allowOrigins": ["https://app.example.com"], "allowMethods": ["GET"]},
                "rateLimit": {"requests": 1000000000, "intervalMs": 1000, "algorithm": "TokenBucket", "key": "ClientIP"},
                "jwt": {"algorithms": ["HS256"], "hmacSecretBase64": "$secret_b64", "issuer": "bench",
                        "audiences": ["gantry"], "claimsToHeaders": [{"claim": "sub", "header": "x-user"}]}},
              "backends": [{"cluster": "bench/echo:80", "weight": 1}]}]}],
 "clusters": [{"name": "bench/echo:80", "endpoints": [{"address": "127.0.0.1", "port": 19001}]}]}
JSON

declare -A port pid
start_gantry() {  # name port admin-port snapshot extra args...
  local name=$1 p=$2 admin=$3 snapshot=$4
  shift 4
  local dir=$bin
  if [ "$name" = "${bin2_name:-}" ]; then dir=$bin2; fi
  taskset -c "$cpu_proxy" "$dir/gantry-proxy" --workers 1 --http-listen "127.0.0.1:$p" \
    --admin-listen "127.0.0.1:$admin" --stats-listen off --control-socket "$tmp/$name.sock" \
    --snapshot-file "$snapshot" --drain-seconds 0 "$@" >"$tmp/$name.log" 2>&1 &
  pid[$name]=$!
  pids+=($!)
  port[$name]=$p
  wait_port "127.0.0.1:$p"
}
start_gantry gantry 19080 19901 "$tmp/snapshot.json" --access-log off
start_gantry gantry-access-log 19083 19902 "$tmp/snapshot.json" --access-log "$tmp/access.log"
start_gantry gantry-policies 19084 19903 "$tmp/snapshot-policies.json" --access-log off
bin2=${GANTRY_BENCH_BIN2:-}
bin2_name=
if [ -n "$bin2" ]; then
  bin2=$(cd "$bin2" && pwd)
  bin2_name=${GANTRY_BENCH_BIN2_NAME:-gantry-2}
  start_gantry "$bin2_name" 19085 19904 "$tmp/snapshot.json" --access-log off
fi

cat >"$tmp/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $tmp/nginx.pid;
error_log $tmp/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  upstream echo { server $backend; keepalive 128; keepalive_requests 100000000; }
  server {
    listen 127.0.0.1:19081 reuseport;
    location / {
      proxy_pass http://echo;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$remote_addr;
    }
  }
}
CONF
taskset -c "$cpu_proxy" nginx -c "$tmp/nginx.conf" -p "$tmp" >/dev/null 2>&1 &
nginx_master=$!
pids+=($nginx_master)
wait_port 127.0.0.1:19081
pid[nginx]=$(pgrep -P "$nginx_master" | head -1 || true)  # the worker does the proxying
port[nginx]=19081

cat >"$tmp/haproxy.cfg" <<CONF
global
  nbthread 1
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  option forwardfor
  http-reuse always
frontend fe
  bind 127.0.0.1:19082
  default_backend be
backend be
  server s1 $backend
CONF
taskset -c "$cpu_proxy" haproxy -f "$tmp/haproxy.cfg" >/dev/null 2>&1 &
pid[haproxy]=$!
pids+=($!)
port[haproxy]=19082
wait_port 127.0.0.1:19082

for t in gantry gantry-access-log nginx haproxy; do
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${port[$t]}/small")
  [ "$code" = 200 ] || { echo "bench: $t answers $code" >&2; exit 1; }
done

hz=$(getconf CLK_TCK)

# One measurement: prints "rps p50_ms p99_ms cpu_us_per_request errors".
run_wrk() {  # target body
  local name=$1 body=$2 url="http://127.0.0.1:${port[$1]}/$2" out args=()
  if [ "$name" = gantry-policies ]; then
    args=(-H "Authorization: Bearer $token" -H "Origin: https://app.example.com")
  fi
  taskset -c "$cpu_load" wrk -t1 -c"$conns" -d1s "${args[@]}" "$url" >/dev/null 2>&1 || true  # warm-up
  local c0 c1
  c0=$(cpu_ticks "${pid[$name]}")
  out=$(taskset -c "$cpu_load" wrk -t1 -c"$conns" -d"${secs}s" --latency "${args[@]}" "$url")
  c1=$(cpu_ticks "${pid[$name]}")
  awk -v c="$((c1 - c0))" -v hz="$hz" '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    /requests in/ { n = $1 }
    /Requests\/sec/ { rps = $2 }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    /Non-2xx|Socket errors/ { err = err $0 "; " }
    END { printf "%.0f %.3f %.3f %.2f %s\n", rps, p50, p99, (n > 0 ? c * 1e6 / hz / n : 0), (err == "" ? "none" : err) }' <<<"$out"
}

targets=(gantry gantry-access-log gantry-policies nginx haproxy)
if [ -n "$bin2_name" ]; then targets=(gantry "$bin2_name" gantry-access-log gantry-policies nginx haproxy); fi
if [ -n "${GANTRY_BENCH_TARGETS:-}" ]; then read -ra targets <<<"$GANTRY_BENCH_TARGETS"; fi
bodies=(small 16k)
declare -A samples
for r in $(seq 1 "$rounds"); do
  for b in "${bodies[@]}"; do
    for t in "${targets[@]}"; do
      [ "$t" = gantry-access-log ] || [ "$t" = gantry-policies ] && [ "$b" = 16k ] && continue
      line=$(run_wrk "$t" "$b")
      samples[$t/$b]+="$line"$'\n'
      echo "round $r/$rounds $b $t: $line" >&2
    done
  done
done

median() {  # column (1-based) of the sample lines on stdin
  awk -v c="$1" '{ print $c }' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
declare -A med
echo
echo "proxy benchmark: wrk -t1 -c$conns -d${secs}s, $rounds interleaved rounds (medians), proxies pinned to CPU $cpu_proxy with 1 worker, backend nginx + wrk on CPU $cpu_load"
printf "%-6s %-18s %10s %9s %9s %12s  %s\n" body target "req/s" "p50 ms" "p99 ms" "CPU us/req" errors
for b in "${bodies[@]}"; do
  for t in "${targets[@]}"; do
    s=${samples[$t/$b]:-}
    [ -n "$s" ] || continue
    for col in 1 2 3 4; do med[$t/$b/$col]=$(printf '%s' "$s" | median "$col"); done
    errs=$(printf '%s' "$s" | awk '{ $1 = $2 = $3 = $4 = ""; sub(/^ +/, ""); print }' | sort -u | paste -sd'|')
    printf "%-6s %-18s %10.0f %9.3f %9.3f %12.2f  %s\n" "$b" "$t" "${med[$t/$b/1]}" "${med[$t/$b/2]}" \
      "${med[$t/$b/3]}" "${med[$t/$b/4]}" "$errs"
  done
done
echo
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
have() { [ -n "${med[$1/small/1]:-}" ]; }
for b in "${bodies[@]}"; do
  have gantry && have haproxy && have nginx || break
  echo "$b body: gantry/haproxy $(ratio "${med[gantry/$b/1]}" "${med[haproxy/$b/1]}")," \
    "gantry/nginx $(ratio "${med[gantry/$b/1]}" "${med[nginx/$b/1]}") (req/s);" \
    "p99 gantry/haproxy $(ratio "${med[gantry/$b/3]}" "${med[haproxy/$b/3]}");" \
    "CPU per request gantry/haproxy $(ratio "${med[gantry/$b/4]}" "${med[haproxy/$b/4]}")," \
    "gantry/nginx $(ratio "${med[gantry/$b/4]}" "${med[nginx/$b/4]}")"
done
if have gantry && have haproxy && have gantry-access-log && have gantry-policies; then
  echo "small body: gantry(access log)/haproxy $(ratio "${med[gantry-access-log/small/1]}" "${med[haproxy/small/1]}")," \
    "gantry(CORS+ratelimit+JWT)/bare $(ratio "${med[gantry-policies/small/1]}" "${med[gantry/small/1]}") (req/s)"
fi
if [ -n "$bin2_name" ] && have gantry && have "$bin2_name"; then
  for b in "${bodies[@]}"; do
    echo "$b body: $bin2_name/gantry $(ratio "${med[$bin2_name/$b/1]}" "${med[gantry/$b/1]}") (req/s)," \
      "CPU per request $bin2_name/gantry $(ratio "${med[$bin2_name/$b/4]}" "${med[gantry/$b/4]}")"
  done
fi
echo "gantry RSS after the run: $(( $(awk '/VmRSS/ {print $2}' "/proc/${pid[gantry]}/status") / 1024 )) MiB"
