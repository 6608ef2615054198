#!/usr/bin/env bash
# Syscalls per proxied request (issue 13: "syscalls are the remaining cost"):
# Gantry, nginx and HAProxy, each one worker on CPU 0, in front of the same
# nginx backend (one worker, CPU 1, keep-alive), loaded by h2load on CPU 1:
#   - HTTP/1.1: h2load --h1, 16 connections, one request at a time each;
#   - h2: h2load, 16 h2c connections x 10 concurrent streams.
# Counted by the kernel's syscall tracepoints (perf stat on the proxy's
# process, root needed) over a fixed number of requests after a warm-up, so
# the counts do not depend on the machine's speed; `EAGAIN reads` are the
# reads that found nothing (recvfrom, read and recvmsg returning -EAGAIN).
# Prints one table per protocol; never fails on numbers.
#
#   tests/bench/syscalls_bench.sh [BIN_DIR] [REQUESTS]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bin=$(cd "${1:-build/bin}" && pwd)
requests=${2:-100000}
for tool in nginx haproxy h2load perf taskset; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is needed (hack/install-deps.sh)" >&2; exit 1; }
done
if ! perf stat -e raw_syscalls:sys_enter true >/dev/null 2>&1; then
  echo "bench: perf cannot read the syscall tracepoints here (root and tracefs are needed)" >&2
  exit 1
fi
tmp=$(mktemp -d /tmp/gantry-sysbench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
cpu_proxy=0
cpu_load=1
if [ "$(nproc)" -lt 2 ]; then cpu_load=0; fi
backend=127.0.0.1:19601

start_nginx_backend "$tmp" "$backend" "$cpu_load"

declare -A pid h1_port h2_port
cat >"$tmp/snapshot.json" <<JSON
{"version": 1,
 "routes": [{"namespace": "bench", "name": "echo", "creationTimestamp": 1, "hostnames": [],
   "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
              "backends": [{"cluster": "bench/echo:80", "weight": 1}]}]}],
 "clusters": [{"name": "bench/echo:80", "endpoints": [{"address": "127.0.0.1", "port": ${backend#*:}}]}]}
JSON
# One listener serves both: HTTP/1.1, and h2c with prior knowledge.
taskset -c "$cpu_proxy" "$bin/gantry-proxy" --workers 1 --http-listen 127.0.0.1:19610 --admin-listen 127.0.0.1:19611 \
  --stats-listen off --control-socket "$tmp/gantry.sock" --snapshot-file "$tmp/snapshot.json" --drain-seconds 0 \
  --access-log off >"$tmp/gantry.log" 2>&1 &
pid[gantry]=$!
pids+=($!)
h1_port[gantry]=19610
h2_port[gantry]=19610

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
  server {
    listen 127.0.0.1:19620 reuseport;
    listen 127.0.0.1:19621 http2 reuseport;
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
taskset -c "$cpu_proxy" nginx -c "$tmp/nginx.conf" -p "$tmp" >"$tmp/nginx.out" 2>&1 &
nginx_master=$!
pids+=($nginx_master)
h1_port[nginx]=19620
h2_port[nginx]=19621

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
  bind 127.0.0.1:19630
  bind 127.0.0.1:19631 proto h2
  option forwardfor
  default_backend be
backend be
  server s1 $backend
CONF
taskset -c "$cpu_proxy" haproxy -f "$tmp/haproxy.cfg" >"$tmp/haproxy.out" 2>&1 &
pid[haproxy]=$!
pids+=($!)
h1_port[haproxy]=19630
h2_port[haproxy]=19631

for p in 19610 19620 19621 19630 19631; do wait_port "127.0.0.1:$p"; done
pid[nginx]=$(pgrep -P "$nginx_master" | head -1)

# The syscalls counted: every entry (total), the ones that matter by name, and
# the reads that returned EAGAIN.
names=(recvfrom recvmsg read readv sendto sendmsg write writev epoll_wait epoll_ctl clock_gettime timerfd_settime
  setsockopt accept4 close)
perf list 2>/dev/null >"$tmp/perf-list.txt" || true
events=()
for n in "${names[@]}"; do
  if grep -q "syscalls:sys_enter_$n " "$tmp/perf-list.txt"; then events+=(-e "syscalls:sys_enter_$n"); fi
done
count() {  # target proto -> "name per_request" lines
  local t=$1 proto=$2 port load
  if [ "$proto" = h1 ]; then port=${h1_port[$t]}; load=(h2load --h1 -c16 -m1 -t1); else port=${h2_port[$t]}; load=(h2load -c16 -m10 -t1); fi
  taskset -c "$cpu_load" "${load[@]}" -n 20000 "http://127.0.0.1:$port/small" >/dev/null 2>&1
  perf stat -x, -o "$tmp/perf.txt" "${events[@]}" -e raw_syscalls:sys_enter \
    -e syscalls:sys_exit_recvfrom --filter 'ret == -11' -e syscalls:sys_exit_recvmsg --filter 'ret == -11' \
    -e syscalls:sys_exit_read --filter 'ret == -11' -p "${pid[$t]}" &
  local perf_pid=$!
  sleep 0.5
  local out
  out=$(taskset -c "$cpu_load" "${load[@]}" -n "$requests" "http://127.0.0.1:$port/small" 2>&1 || true)
  kill -INT "$perf_pid"
  wait "$perf_pid" || true
  local done
  done=$(echo "$out" | awk '/^requests:/ { print $8 }')
  awk -F, -v n="${done:-0}" '
    $1 ~ /^[0-9]+$/ && n > 0 {
      name = $3; v = $1 / n
      if (name ~ /sys_exit_/) { eagain += v; next }
      sub(/.*sys_enter_/, "", name); sub(/raw_syscalls:sys_enter/, "total", name)
      if (v >= 0.001) print name, v
    }
    END { if (n > 0) print "EAGAIN_reads", eagain + 0; else print "failed", 1 }' "$tmp/perf.txt"
}

for proto in h1 h2; do
  declare -A row=()
  cols=()
  for t in gantry nginx haproxy; do
    while read -r name v; do
      row[$t,$name]=$v
      [[ " ${cols[*]} " == *" $name "* ]] || cols+=("$name")
    done < <(count "$t" "$proto")
  done
  echo
  if [ "$proto" = h1 ]; then
    echo "HTTP/1.1, 16 connections, $requests requests: syscalls per request (proxy process)"
  else
    echo "h2c, 16 connections x 10 streams, $requests requests: syscalls per request (proxy process)"
  fi
  printf '%-16s %10s %10s %10s\n' syscall gantry nginx haproxy
  for c in total EAGAIN_reads "${cols[@]}"; do
    printf '%-16s %10.3f %10.3f %10.3f\n' "$c" "${row[gantry,$c]:-0}" "${row[nginx,$c]:-0}" "${row[haproxy,$c]:-0}"
  done | awk '!seen[$1]++'
  unset row
done
