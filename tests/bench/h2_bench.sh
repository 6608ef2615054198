#!/usr/bin/env bash
# HTTP/2 and gRPC benchmark (issue 13): Gantry against nginx and HAProxy, same
# backends, same load, same run.
#
# - h2: h2load (nghttp2-client), HTTP/2 with prior knowledge (h2c), 16
#   connections x 10 concurrent streams, GET of a 3-byte body; each proxy
#   speaks HTTP/1.1 to the same nginx backend (one worker, keep-alive pool).
#   nginx: `listen ... http2` + proxy_pass; HAProxy: `bind ... proto h2`.
# - gRPC unary: ghz (hack/ghz.sh), 16 concurrent calls on one connection,
#   grpc.testing.TestService/UnaryCall with a 100-byte answer, to
#   hack/grpc-bench-server (grpc-go's interop TestService, h2c) through each
#   proxy: Gantry (an "H2C" cluster), nginx (grpc_pass), HAProxy (h2 on both
#   sides). ghz counts a call only when its gRPC status is OK.
# - Each proxy runs one worker (thread) pinned to CPU 0; the load generators
#   and the backends share CPU 1. Rounds interleave the targets; the table has
#   the median over rounds of req/s, mean latency and the proxy's CPU time per
#   request (user + system from /proc: the least noisy number on a shared
#   machine). Prints the ratios; never fails on numbers.
# - haproxy-eq, an h2 target beside the three: the same HAProxy doing per
#   request what Gantry does by default and the plain HAProxy config does not
#   (a random X-Request-ID sent upstream and back to the client,
#   X-Forwarded-Proto and X-Forwarded-Host upstream; both add
#   X-Forwarded-For). Reported on a line of its own: the targets compare with
#   the plain HAProxy.
#
#   tests/bench/h2_bench.sh [BIN_DIR] [SECONDS] [ROUNDS]
# GANTRY_GHZ_DIR: the directory hack/ghz.sh printed (built when unset).
# GANTRY_BENCH_BIN2=DIR (with GANTRY_BENCH_BIN2_NAME, default "gantry-2") adds the
# gantry-proxy of a second build as two more targets (h2 and gRPC), same rounds.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bin=$(cd "${1:-build/bin}" && pwd)
secs=${2:-5}
rounds=${3:-3}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d /tmp/gantry-h2bench.XXXXXX)
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
ghz_dir=${GANTRY_GHZ_DIR:-$(bash "$here/../../hack/ghz.sh" | tail -1)}

cpu_proxy=0
cpu_load=1
if [ "$(nproc)" -lt 2 ]; then cpu_load=0; fi
backend=127.0.0.1:19401
grpc_backend=127.0.0.1:19402

# ---- backends (CPU 1)
start_nginx_backend "$tmp" "$backend" "$cpu_load"
GOMAXPROCS=1 taskset -c "$cpu_load" "$ghz_dir/grpc-bench-server" -listen "$grpc_backend" >"$tmp/grpc-server.log" 2>&1 &
pids+=($!)
wait_port "$grpc_backend"

# ---- proxies (CPU 0)
declare -A port pid
cat >"$tmp/snapshot.json" <<JSON
{"version": 1,
 "routes": [{"namespace": "bench", "name": "echo", "creationTimestamp": 1, "hostnames": [],
   "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
              "backends": [{"cluster": "bench/echo:80", "weight": 1}]}]}],
 "clusters": [{"name": "bench/echo:80", "endpoints": [{"address": "127.0.0.1", "port": ${backend#*:}}]}]}
JSON
cat >"$tmp/snapshot-grpc.json" <<JSON
{"version": 1,
 "routes": [{"namespace": "bench", "name": "grpc", "creationTimestamp": 1, "hostnames": [],
   "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
              "backends": [{"cluster": "bench/grpc:50051", "weight": 1}]}]}],
 "clusters": [{"name": "bench/grpc:50051", "protocol": "H2C",
               "endpoints": [{"address": "127.0.0.1", "port": ${grpc_backend#*:}}]}]}
JSON
start_gantry() {  # name port admin snapshot [bin dir]
  taskset -c "$cpu_proxy" "${5:-$bin}/gantry-proxy" --workers 1 --http-listen "127.0.0.1:$2" --admin-listen "127.0.0.1:$3" \
    --stats-listen off --control-socket "$tmp/$1.sock" --snapshot-file "$4" --drain-seconds 0 --access-log off \
    >"$tmp/$1.log" 2>&1 &
  pid[$1]=$!
  pids+=($!)
  port[$1]=$2
  wait_port "127.0.0.1:$2"
}
start_gantry gantry 19480 19490 "$tmp/snapshot.json"
start_gantry gantry-grpc 19483 19491 "$tmp/snapshot-grpc.json"
g2=${GANTRY_BENCH_BIN2_NAME:-gantry-2}
h2_targets=(gantry nginx haproxy haproxy-eq)
grpc_targets=(gantry-grpc nginx-grpc haproxy-grpc)
if [ -n "${GANTRY_BENCH_BIN2:-}" ]; then
  bin2=$(cd "$GANTRY_BENCH_BIN2" && pwd)
  start_gantry "$g2" 19486 19492 "$tmp/snapshot.json" "$bin2"
  start_gantry "$g2-grpc" 19487 19493 "$tmp/snapshot-grpc.json" "$bin2"
  h2_targets=(gantry "$g2" nginx haproxy haproxy-eq)
  grpc_targets=(gantry-grpc "$g2-grpc" nginx-grpc haproxy-grpc)
fi

cat >"$tmp/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $tmp/nginx.pid;
error_log $tmp/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  http2_max_requests 100000000;
  keepalive_requests 100000000;
  upstream echo { server $backend; keepalive 1024; keepalive_requests 100000000; }
  upstream grpcb { server $grpc_backend; keepalive 1024; keepalive_requests 100000000; }
  server {
    listen 127.0.0.1:19481 http2 reuseport;
    location / {
      proxy_pass http://echo;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$remote_addr;
    }
  }
  server {
    listen 127.0.0.1:19484 http2 reuseport;
    location / { grpc_pass grpc://grpcb; }
  }
}
CONF
taskset -c "$cpu_proxy" nginx -c "$tmp/nginx.conf" -p "$tmp" >"$tmp/nginx.out" 2>&1 &
nginx_master=$!
pids+=($nginx_master)
wait_port 127.0.0.1:19481
wait_port 127.0.0.1:19484
nginx_worker=$(pgrep -P "$nginx_master" | head -1 || true)
pid[nginx]=$nginx_worker
pid[nginx-grpc]=$nginx_worker
port[nginx]=19481
port[nginx-grpc]=19484

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
  bind 127.0.0.1:19482 proto h2
  option forwardfor
  default_backend be
frontend fe_eq
  bind 127.0.0.1:19488 proto h2
  option forwardfor
  unique-id-format %[uuid()]
  http-request set-header X-Request-ID %[unique-id]
  http-request set-header X-Forwarded-Proto http
  http-request set-header X-Forwarded-Host %[req.hdr(host)]
  http-response set-header X-Request-ID %[unique-id]
  default_backend be
frontend fe_grpc
  bind 127.0.0.1:19485 proto h2
  default_backend be_grpc
backend be
  server s1 $backend
backend be_grpc
  server g1 $grpc_backend proto h2
CONF
taskset -c "$cpu_proxy" haproxy -f "$tmp/haproxy.cfg" >"$tmp/haproxy.out" 2>&1 &
pid[haproxy]=$!
pid[haproxy-grpc]=$!
pid[haproxy-eq]=$!
pids+=($!)
port[haproxy-eq]=19488
port[haproxy]=19482
port[haproxy-grpc]=19485
wait_port 127.0.0.1:19482

for t in "${h2_targets[@]}"; do
  code=$(curl -s --http2-prior-knowledge -o /dev/null -w '%{http_code}' "http://127.0.0.1:${port[$t]}/small")
  [ "$code" = 200 ] || { echo "bench: $t answers $code over h2c" >&2; exit 1; }
done

hz=$(getconf CLK_TCK)
ghz_call=(--insecure --call grpc.testing.TestService.UnaryCall -d '{"response_size": 100}')

# One measurement: prints "rps mean_ms cpu_us_per_request errors".
run_h2() {  # target
  local t=$1 out c0 c1
  taskset -c "$cpu_load" h2load -c16 -m10 -t1 -D 1 "http://127.0.0.1:${port[$t]}/small" >/dev/null 2>&1 || true
  c0=$(cpu_ticks "${pid[$t]}")
  out=$(taskset -c "$cpu_load" h2load -c16 -m10 -t1 -D "$secs" "http://127.0.0.1:${port[$t]}/small" 2>&1 || true)
  c1=$(cpu_ticks "${pid[$t]}")
  echo "$out" | awk -v c="$((c1 - c0))" -v hz="$hz" '
    /^finished in/ { for (i = 1; i <= NF; i++) if ($(i) == "req/s,") rps = $(i - 1) }
    /^requests:/ { done = $8; failed = $10; errored = $12 }
    /^time for request:/ { mean = $6; if (mean ~ /us$/) { sub(/us$/, "", mean); mean /= 1000 } else if (mean ~ /ms$/) { sub(/ms$/, "", mean) } else { sub(/s$/, "", mean); mean *= 1000 } }
    END { n = done + 0; printf "%s %.3f %.1f %d\n", rps, mean, (n > 0 ? c * 1e6 / hz / n : 0), failed + errored }'
}
run_grpc() {  # target
  local t=$1 out c0 c1
  taskset -c "$cpu_load" "$ghz_dir/ghz" "${ghz_call[@]}" -c 16 --connections 1 -z 1s "127.0.0.1:${port[$t]}" >/dev/null 2>&1 || true
  c0=$(cpu_ticks "${pid[$t]}")
  out=$(GOMAXPROCS=1 taskset -c "$cpu_load" "$ghz_dir/ghz" "${ghz_call[@]}" -c 16 --connections 1 -z "${secs}s" -O json \
    "127.0.0.1:${port[$t]}" 2>/dev/null || true)
  c1=$(cpu_ticks "${pid[$t]}")
  printf '%s' "$out" | /usr/bin/python3 -c '
import json, sys
c, hz = int(sys.argv[1]), int(sys.argv[2])
try:
    r = json.load(sys.stdin)
except ValueError:
    print("0 0 0 1"); sys.exit()
codes = r.get("statusCodeDistribution") or {}
ok = codes.get("OK", 0)
bad = sum(v for k, v in codes.items() if k != "OK")
print("%.0f %.3f %.1f %d" % (r.get("rps", 0), r.get("average", 0) / 1e6, c * 1e6 / hz / ok if ok else 0, bad))
' "$((c1 - c0))" "$hz"
}

declare -A results
for r in $(seq 1 "$rounds"); do
  for t in "${h2_targets[@]}"; do results[$t]+="$(run_h2 "$t");"; done
  for t in "${grpc_targets[@]}"; do results[$t]+="$(run_grpc "$t");"; done
done

median() {  # "a;b;c;" field -> median of that field
  echo "$1" | tr ';' '\n' | awk -v f="$2" 'NF { print $f }' | sort -g | awk '{ v[NR] = $1 } END { print (NR ? v[int((NR + 1) / 2)] : 0) }'
}
printf '\n%-14s %10s %10s %12s %8s\n' target "req/s" "mean ms" "cpu us/req" errors
echo "(errors: h2load's failed requests; ghz's calls not OK, including the <= 16 in flight its -z run cuts at the end)"
for t in "${h2_targets[@]}" "${grpc_targets[@]}"; do
  printf '%-14s %10s %10s %12s %8s\n' "$t" "$(median "${results[$t]}" 1)" "$(median "${results[$t]}" 2)" \
    "$(median "${results[$t]}" 3)" "$(echo "${results[$t]}" | tr ';' '\n' | awk 'NF { s += $4 } END { print s + 0 }')"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf (b > 0 ? "%.2f" : "-"), (b > 0 ? a / b : 0) }'; }
echo
echo "h2 -> HTTP/1.1 backend, req/s:   gantry/haproxy $(ratio "$(median "${results[gantry]}" 1)" "$(median "${results[haproxy]}" 1)")  gantry/nginx $(ratio "$(median "${results[gantry]}" 1)" "$(median "${results[nginx]}" 1)")   (targets >= 1.0 and >= 1.25)"
echo "h2, CPU per request:              haproxy/gantry $(ratio "$(median "${results[haproxy]}" 3)" "$(median "${results[gantry]}" 3)")  nginx/gantry $(ratio "$(median "${results[nginx]}" 3)" "$(median "${results[gantry]}" 3)")"
echo "h2, HAProxy with Gantry's default header work (haproxy-eq):  req/s gantry/haproxy-eq $(ratio "$(median "${results[gantry]}" 1)" "$(median "${results[haproxy-eq]}" 1)")  CPU per request haproxy-eq/gantry $(ratio "$(median "${results[haproxy-eq]}" 3)" "$(median "${results[gantry]}" 3)")"
echo "gRPC unary, req/s:                gantry/nginx $(ratio "$(median "${results[gantry-grpc]}" 1)" "$(median "${results[nginx-grpc]}" 1)")  gantry/haproxy $(ratio "$(median "${results[gantry-grpc]}" 1)" "$(median "${results[haproxy-grpc]}" 1)")   (target >= 1.0 nginx)"
echo "gRPC unary, CPU per request:      nginx/gantry $(ratio "$(median "${results[nginx-grpc]}" 3)" "$(median "${results[gantry-grpc]}" 3)")  haproxy/gantry $(ratio "$(median "${results[haproxy-grpc]}" 3)" "$(median "${results[gantry-grpc]}" 3)")"
if [ -n "${GANTRY_BENCH_BIN2:-}" ]; then
  echo "h2, $g2/gantry:                  req/s $(ratio "$(median "${results[$g2]}" 1)" "$(median "${results[gantry]}" 1)")  CPU per request $(ratio "$(median "${results[$g2]}" 3)" "$(median "${results[gantry]}" 3)")"
  echo "gRPC unary, $g2/gantry:          req/s $(ratio "$(median "${results[$g2-grpc]}" 1)" "$(median "${results[gantry-grpc]}" 1)")  CPU per request $(ratio "$(median "${results[$g2-grpc]}" 3)" "$(median "${results[gantry-grpc]}" 3)")"
fi
