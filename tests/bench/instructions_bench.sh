#!/usr/bin/env bash
# Instructions per proxied request, counted by valgrind's callgrind (a count,
# not a time: the same on a busy or an idle machine). Each proxy (Gantry with
# one worker, nginx with one process, HAProxy with one thread) runs under
# callgrind twice, serving N1 and N2 keep-alive requests from one client to
# the same backend; (I(N2) - I(N1)) / (N2 - N1) removes start-up and
# shutdown. Prints the counts and the ratio Gantry/nginx and Gantry/HAProxy.
#
#   tests/bench/instructions_bench.sh [BIN_DIR] [N1] [N2]
set -euo pipefail
bin=$(cd "${1:-build/bin}" && pwd)
n1=${2:-1000}
n2=${3:-6000}
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"  # GLIBC_TUNABLES, as the image runs the proxy
tmp=$(mktemp -d /tmp/gantry-ipr.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
command -v valgrind >/dev/null || { echo "valgrind is needed" >&2; exit 1; }

backend=127.0.0.1:19101
"$bin/gantry-echo" --listen "$backend" --plain >/dev/null 2>&1 &
pids+=($!)

cat >"$tmp/snapshot.json" <<JSON
{"version": 1,
 "routes": [{"namespace": "bench", "name": "echo", "creationTimestamp": 1, "hostnames": [],
   "rules": [{"backends": [{"cluster": "bench/echo:80", "weight": 1}]}]}],
 "clusters": [{"name": "bench/echo:80", "endpoints": [{"address": "127.0.0.1", "port": 19101}]}]}
JSON
cat >"$tmp/nginx.conf" <<CONF
worker_processes 1;
master_process off;
daemon off;
pid $tmp/nginx.pid;
error_log $tmp/nginx-error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  upstream echo { server $backend; keepalive 16; }
  server {
    listen 127.0.0.1:19181;
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
  maxconn 1024
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  option forwardfor
  http-reuse always
frontend fe
  bind 127.0.0.1:19182
  default_backend be
backend be
  server s1 $backend
CONF

# under TOOL NAME PORT N -- command...: runs the command under valgrind's TOOL
# (callgrind or memcheck), sends N requests, stops it with SIGTERM and prints
# what the tool counted: instructions (callgrind) or heap allocations (memcheck).
under() {
  local tool=$1 name=$2 port=$3 n=$4
  shift 5
  local log="$tmp/$name-$n.$tool.log" args=(--callgrind-out-file=/dev/null)
  [ "$tool" = memcheck ] && args=(--leak-check=no)
  valgrind --tool="$tool" "${args[@]}" --log-file="$log" "$@" >/dev/null 2>&1 &
  local pid=$!
  /usr/bin/python3 "$here/keepalive_client.py" 127.0.0.1 "$port" "$n" --wait 120
  kill -TERM "$pid"
  wait "$pid" 2>/dev/null || true
  if [ "$tool" = memcheck ]; then
    sed -n 's/.*total heap usage: \([0-9,]*\) allocs.*/\1/p' "$log" | tr -d , | tail -1
  else
    awk '/Collected :/ {print $NF}' "$log" | tail -1
  fi
}

# measure TOOL NAME PORT -- command...: (count(N2) - count(N1)) / (N2 - N1),
# the per-request share of what the valgrind TOOL counts.
measure() {
  local tool=$1 name=$2 port=$3
  shift 4
  local c1 c2
  c1=$(under "$tool" "$name" "$port" "$n1" -- "$@")
  c2=$(under "$tool" "$name" "$port" "$n2" -- "$@")
  awk -v n="$name" -v a="${c1:-0}" -v b="${c2:-0}" -v d="$((n2 - n1))" -v f="$tool" \
    'BEGIN { printf (f == "memcheck" ? "%s %.2f\n" : "%s %.0f\n"), n, (b - a) / d }'
}

gantry_cmd=("$bin/gantry-proxy" --workers 1 --http-listen 127.0.0.1:19180 --admin-listen 127.0.0.1:19190 --stats-listen off
  --control-socket "$tmp/c.sock" --snapshot-file "$tmp/snapshot.json" --access-log off --drain-seconds 0)
nginx_cmd=(nginx -c "$tmp/nginx.conf" -p "$tmp")
results=()
results+=("$(measure callgrind gantry 19180 -- "${gantry_cmd[@]}")")
results+=("$(measure callgrind nginx 19181 -- "${nginx_cmd[@]}")")
results+=("$(measure callgrind haproxy 19182 -- haproxy -f "$tmp/haproxy.cfg")")
heap=()
heap+=("$(measure memcheck gantry 19180 -- "${gantry_cmd[@]}")")
heap+=("$(measure memcheck nginx 19181 -- "${nginx_cmd[@]}")")

echo
echo "instructions per proxied request (callgrind, keep-alive client, ($n2 - $n1) requests)"
for r in "${results[@]}"; do printf "  %-10s %10s\n" ${r}; done
get() { for r in "${results[@]}"; do read -r n v <<<"$r"; [ "$n" = "$1" ] && echo "$v"; done; }
awk -v g="$(get gantry)" -v n="$(get nginx)" -v h="$(get haproxy)" 'BEGIN {
  printf "  ratio gantry/nginx   %.2f\n  ratio gantry/haproxy %.2f\n", g / n, g / h }'
echo "heap allocations per proxied request (memcheck's count, same method)"
for r in "${heap[@]}"; do printf "  %-10s %10s\n" ${r}; done
