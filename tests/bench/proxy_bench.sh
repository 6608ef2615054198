#!/usr/bin/env bash
# Data-plane benchmark: Gantry against nginx and HAProxy, same backend, same
# load, same run. Each proxy is pinned to CPU 0 with one worker; the load
# generator (wrk) and the backend (gantry-echo --plain) share CPU 1. Prints
# requests/s, p50/p99 latency and the ratios Gantry/HAProxy and Gantry/nginx.
#
#   tests/bench/proxy_bench.sh [BIN_DIR] [SECONDS] [CONNECTIONS]
set -euo pipefail
bin=${1:-build/bin}
secs=${2:-10}
conns=${3:-64}
bin=$(cd "$bin" && pwd)
tmp=$(mktemp -d /tmp/gantry-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${GANTRY_BENCH_KEEP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

backend=127.0.0.1:19001
cpu_proxy=0
cpu_load=1
if [ "$(nproc)" -lt 2 ]; then cpu_load=0; fi

wait_port() {  # host:port
  for _ in $(seq 1 200); do
    if (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "bench: nothing listens on $1" >&2
  return 1
}

taskset -c "$cpu_load" "$bin/gantry-echo" --listen "$backend" --threads 1 --plain >/dev/null 2>&1 &
pids+=($!)
wait_port "$backend"

cat >"$tmp/snapshot.json" <<JSON
{"version": 1,
 "routes": [{"namespace": "bench", "name": "echo", "creationTimestamp": 1, "hostnames": [],
   "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
              "backends": [{"cluster": "bench/echo:80", "weight": 1}]}]}],
 "clusters": [{"name": "bench/echo:80", "endpoints": [{"address": "127.0.0.1", "port": 19001}]}]}
JSON

# The same route with a typical policy set: CORS + rate limit + JWT (HS256).
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

cat >"$tmp/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $tmp/nginx.pid;
error_log $tmp/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  upstream echo { server $backend; keepalive 128; }
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

run_wrk() {  # name url [wrk args...] -> prints "name rps p50 p99"
  local name=$1 url=$2 out
  shift 2
  taskset -c "$cpu_load" wrk -t1 -c"$conns" -d1s "$@" "$url" >/dev/null 2>&1 || true  # warm-up
  out=$(taskset -c "$cpu_load" wrk -t1 -c"$conns" -d"${secs}s" --latency "$@" "$url")
  local rps p50 p99 errors
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  errors=$(awk '/Non-2xx|Socket errors/ {printf "%s ", $0}' <<<"$out")
  echo "$name $rps $p50 $p99 ${errors:-none}"
}

start_gantry() {  # snapshot extra args...
  local snapshot=$1
  shift
  taskset -c "$cpu_proxy" "$bin/gantry-proxy" --workers 1 --http-listen 127.0.0.1:19080 \
    --admin-listen 127.0.0.1:19901 --control-socket "$tmp/control.sock" \
    --snapshot-file "$snapshot" --drain-seconds 0 "$@" >"$tmp/gantry.log" 2>&1 &
  gantry_pid=$!
  pids+=($gantry_pid)
  wait_port 127.0.0.1:19080
}

results=()
results+=("$(run_wrk backend-direct "http://$backend/")")

start_gantry "$tmp/snapshot.json" --access-log off
results+=("$(run_wrk gantry "http://127.0.0.1:19080/")")
rss_kib=$(awk '/VmRSS/ {print $2}' /proc/$gantry_pid/status)
kill $gantry_pid; wait $gantry_pid 2>/dev/null || true

start_gantry "$tmp/snapshot.json" --access-log "$tmp/access.log"
results+=("$(run_wrk gantry-access-log "http://127.0.0.1:19080/")")
kill $gantry_pid; wait $gantry_pid 2>/dev/null || true

start_gantry "$tmp/snapshot-policies.json" --access-log off
results+=("$(run_wrk gantry-policies "http://127.0.0.1:19080/" -H "Authorization: Bearer $token" -H "Origin: https://app.example.com")")
kill $gantry_pid; wait $gantry_pid 2>/dev/null || true

taskset -c "$cpu_proxy" nginx -c "$tmp/nginx.conf" -p "$tmp" >/dev/null 2>&1 &
pids+=($!)
wait_port 127.0.0.1:19081
results+=("$(run_wrk nginx "http://127.0.0.1:19081/")")

taskset -c "$cpu_proxy" haproxy -f "$tmp/haproxy.cfg" >/dev/null 2>&1 &
pids+=($!)
wait_port 127.0.0.1:19082
results+=("$(run_wrk haproxy "http://127.0.0.1:19082/")")

echo
echo "proxy benchmark: wrk -t1 -c$conns -d${secs}s, proxies pinned to CPU $cpu_proxy with 1 worker, backend + wrk on CPU $cpu_load"
printf "%-18s %12s %10s %10s  %s\n" target "req/s" p50 p99 errors
for r in "${results[@]}"; do
  read -r name rps p50 p99 errors <<<"$r"
  printf "%-18s %12s %10s %10s  %s\n" "$name" "$rps" "$p50" "$p99" "$errors"
done
get() { for r in "${results[@]}"; do read -r n v _ <<<"$r"; [ "$n" = "$1" ] && echo "$v"; done; }
g=$(get gantry); gl=$(get gantry-access-log); gp=$(get gantry-policies); n=$(get nginx); h=$(get haproxy)
echo
awk -v g="$g" -v gl="$gl" -v gp="$gp" -v n="$n" -v h="$h" 'BEGIN {
  printf "ratio gantry/haproxy                 %.2f\n", g / h
  printf "ratio gantry/nginx                   %.2f\n", g / n
  printf "ratio gantry(access log)/haproxy     %.2f\n", gl / h
  printf "ratio gantry(CORS+ratelimit+JWT)/bare %.2f\n", gp / g
}'
echo "gantry RSS after the run: $((rss_kib / 1024)) MiB"
