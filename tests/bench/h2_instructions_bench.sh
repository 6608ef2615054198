#!/usr/bin/env bash
# User-space instructions per proxied HTTP/2 request, counted by valgrind's
# callgrind (a count, not a time). h2load (h2c with prior knowledge, 16
# connections x 10 streams, as tests/bench/h2_bench.sh loads the proxies)
# sends N1 and then N2 GETs of 3 bytes through each proxy (Gantry with one
# worker, HAProxy 2.6 with one thread, `proto h2` in front) to one nginx
# backend speaking HTTP/1.1; (I(N2) - I(N1)) / (N2 - N1) removes start-up
# and shutdown. Prints each count and the ratio Gantry/HAProxy. Under other
# load the same binary's count moves by about +-150 (streams batch
# differently per read); HAProxy's by +-400.
#
# GANTRY_BENCH_SIM=1 adds callgrind's cache and branch simulation and prints,
# per request, the simulated L1 instruction and data misses and the indirect
# branches (and those the simulated predictor missed) next to the
# instructions: what says why the same instruction count runs slower on a VM
# without performance counters (docs/BENCHMARKS.md, "One executor type").
# The simulated predictor is crude, and counts jumps through the PLT into
# shared libraries as indirect branches: compare builds and proxies, not the
# absolute figures. About 3x slower than the plain count.
#
#   [GANTRY_BENCH_SIM=1] tests/bench/h2_instructions_bench.sh [BIN_DIR] [N1] [N2]
set -euo pipefail
bin=$(cd "${1:-build/bin}" && pwd)
n1=${2:-1000}
n2=${3:-6000}
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"  # GLIBC_TUNABLES, as the image runs the proxy
for tool in valgrind nginx haproxy h2load; do
  command -v "$tool" >/dev/null || { echo "$tool is needed" >&2; exit 1; }
done
tmp=$(mktemp -d /tmp/gantry-h2ipr.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

backend=127.0.0.1:19601
proxy_port=19680
mkdir -p "$tmp/www" "$tmp/backend"
printf 'ok\n' >"$tmp/www/small"
chmod 755 "$tmp" "$tmp/www"
chmod 644 "$tmp/www/small"
cat >"$tmp/backend/nginx.conf" <<CONF
worker_processes 1; daemon off; pid $tmp/backend/nginx.pid; error_log $tmp/backend/error.log warn;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 100000000; keepalive_timeout 300s; open_file_cache max=16;
  default_type application/octet-stream; server { listen $backend reuseport; root $tmp/www; } }
CONF
nginx -c "$tmp/backend/nginx.conf" -p "$tmp/backend" >/dev/null 2>&1 &
pids+=($!)
wait_port "$backend"

cat >"$tmp/snapshot.json" <<JSON
{"version": 1,
 "routes": [{"namespace": "bench", "name": "echo", "creationTimestamp": 1, "hostnames": [],
   "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
              "backends": [{"cluster": "bench/echo:80", "weight": 1}]}]}],
 "clusters": [{"name": "bench/echo:80", "endpoints": [{"address": "127.0.0.1", "port": ${backend#*:}}]}]}
JSON
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
  bind 127.0.0.1:$proxy_port proto h2
  option forwardfor
  default_backend be
backend be
  server s1 $backend
CONF

# count WHICH N: the proxy's instructions (all threads) serving N requests.
sim=()
[ "${GANTRY_BENCH_SIM:-0}" = 1 ] && sim=(--cache-sim=yes --branch-sim=yes)

# Prints the sums of callgrind's events over the run, in the order of its
# "events:" line (Ir first).
count() {
  local which=$1 n=$2 out="$tmp/cg.$1.$2" p
  if [ "$which" = haproxy ]; then
    valgrind --tool=callgrind "${sim[@]}" --callgrind-out-file="$out" haproxy -f "$tmp/haproxy.cfg" >/dev/null 2>&1 &
  else
    valgrind --tool=callgrind "${sim[@]}" --callgrind-out-file="$out" "$bin/gantry-proxy" --workers 1 \
      --http-listen "127.0.0.1:$proxy_port" --admin-listen 127.0.0.1:19690 --stats-listen off \
      --control-socket "$tmp/g.sock" --snapshot-file "$tmp/snapshot.json" --drain-seconds 0 \
      --access-log off >/dev/null 2>&1 &
  fi
  p=$!
  for _ in $(seq 1 600); do (exec 3<>"/dev/tcp/127.0.0.1/$proxy_port") 2>/dev/null && break; sleep 0.1; done
  h2load -c16 -m10 -t1 -n "$n" "http://127.0.0.1:$proxy_port/small" >"$tmp/h2load.$which.$n" 2>&1 || true
  grep -q "succeeded, 0 failed" "$tmp/h2load.$which.$n" || { grep "requests:" "$tmp/h2load.$which.$n" >&2; exit 1; }
  kill -INT "$p" 2>/dev/null || true
  sleep 0.5
  kill "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
  cat "$out"* | awk '/^events:/ { ev = $0 } /^summary:/ { for (i = 2; i <= NF; i++) s[i] += $i; k = NF }
    END { printf "%s|", ev; for (i = 2; i <= k; i++) printf " %d", s[i]; print "" }'
}

declare -A per
events=""
for which in gantry haproxy; do
  c1=$(count "$which" "$n1")
  c2=$(count "$which" "$n2")
  events=${c1%%|*}
  # Per request, each event: (count at N2 - count at N1) / (N2 - N1).
  per[$which]=$(awk -v a="${c1#*|}" -v b="${c2#*|}" -v d=$((n2 - n1)) 'BEGIN {
    k = split(a, x, " "); split(b, y, " ")
    for (i = 1; i <= k; i++) printf "%s%.1f", (i > 1 ? " " : ""), (y[i] - x[i]) / d }')
done
echo "user-space instructions per h2 request (callgrind, h2load -c16 -m10, $n1 and $n2 requests)"
printf '  %-8s %7.0f\n' gantry "${per[gantry]%% *}" haproxy "${per[haproxy]%% *}"
awk -v g="${per[gantry]%% *}" -v h="${per[haproxy]%% *}" 'BEGIN { printf "  ratio gantry/haproxy %.2f\n", g / h }'
if [ ${#sim[@]} -gt 0 ]; then
  echo "simulated, per h2 request (${events#events: })"
  printf '  %-8s %s\n' gantry "${per[gantry]}" haproxy "${per[haproxy]}"
fi
