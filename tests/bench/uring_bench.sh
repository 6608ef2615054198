#!/usr/bin/env bash
# io_uring against epoll (issue 13, docs/BENCHMARKS.md): the per-request costs
# of two gantry-proxy builds, same backend, same client, same run, alternated.
# For each build (one worker, pinned to CPU 0; the backend, gantry-echo from
# the first build, and the client on CPU 1):
# - no instructions per request: valgrind 3.19 runs io_uring_enter as a
#   syscall that does not block, holding its one-thread-at-a-time lock, so a
#   multi-threaded io_uring proxy deadlocks under callgrind (and callgrind
#   would not see the kernel's share, where io_uring moves work); the user /
#   kernel split of the CPU time below stands in for it;
# - syscalls per request: strace -c -f attached to the warm proxy for N3
#   keep-alive requests (one connection), then for a wrk run (64 connections,
#   where one readiness or completion wait serves several requests);
# - CPU time per request, user + kernel, in ns from /proc/PID/task/*/schedstat
#   (the scheduler's run time, every thread), over N3 keep-alive requests
#   (one connection) and a wrk run (64 connections); ROUNDS rounds, alternating
#   the builds; medians. The c64 runs also split the time into user and kernel
#   (utime, stime from /proc/PID/stat, clock ticks).
#
#   tests/bench/uring_bench.sh EPOLL_BIN_DIR URING_BIN_DIR [ROUNDS] [N3]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bin_a=$(cd "$1" && pwd)
bin_b=$(cd "$2" && pwd)
rounds=${3:-5}
n3=${4:-20000}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d /tmp/gantry-uring.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
for tool in strace wrk taskset; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is needed (hack/install-deps.sh)" >&2; exit 1; }
done
cpu_proxy=0
cpu_load=1
if [ "$(nproc)" -lt 2 ]; then cpu_load=0; fi
names=(epoll io_uring)
declare -A dir=([epoll]=$bin_a [io_uring]=$bin_b)

backend=127.0.0.1:19601
taskset -c "$cpu_load" "$bin_a/gantry-echo" --listen "$backend" --plain >/dev/null 2>&1 &
pids+=($!)
wait_port "$backend"
cat >"$tmp/snapshot.json" <<JSON
{"version": 1,
 "routes": [{"namespace": "bench", "name": "echo", "creationTimestamp": 1, "hostnames": [],
   "rules": [{"backends": [{"cluster": "bench/echo:80", "weight": 1}]}]}],
 "clusters": [{"name": "bench/echo:80", "endpoints": [{"address": "127.0.0.1", "port": ${backend#*:}}]}]}
JSON
proxy_args() {  # port admin name
  echo --workers 1 --http-listen "127.0.0.1:$1" --admin-listen "127.0.0.1:$2" --stats-listen off \
    --control-socket "$tmp/$3.sock" --snapshot-file "$tmp/snapshot.json" --access-log off --drain-seconds 0
}
client() { taskset -c "$cpu_load" /usr/bin/python3 "$here/keepalive_client.py" 127.0.0.1 "$1" "$2" --wait 120; }

# ---- the proxies, started once, warm
declare -A port pid
p=19681
for v in "${names[@]}"; do
  # shellcheck disable=SC2046
  taskset -c "$cpu_proxy" "${dir[$v]}/gantry-proxy" $(proxy_args "$p" "$((p + 10))" "$v") >"$tmp/$v.log" 2>&1 &
  pid[$v]=$!
  pids+=($!)
  port[$v]=$p
  wait_port "127.0.0.1:$p"
  client "$p" 1000
  p=$((p + 1))
done

# cpu_ns PID: run time of every thread of the process so far, ns (schedstat's first field)
cpu_ns() { cat /proc/"$1"/task/*/schedstat | awk '{ s += $1 } END { printf "%.0f", s }'; }

# ---- syscalls per request (strace attached to the warm proxy)
strace_counts() {  # name what
  local out="$tmp/$1-$2.strace" st n
  strace -c -f -q -o "$out" -p "${pid[$1]}" &
  st=$!
  sleep 1  # attached to every thread
  if [ "$2" = keepalive ]; then
    n=$n3
    client "${port[$1]}" "$n"
  else
    n=$(taskset -c "$cpu_load" wrk -t1 -c64 -d3s "http://127.0.0.1:${port[$1]}/" | awk '/requests in/ { print $1 }')
  fi
  kill -INT "$st"
  wait "$st" 2>/dev/null || true
  # the summary: "% time seconds usecs/call calls [errors] syscall"; total is the last line
  awk -v n="$n" -v v="$1" -v w="$2" '
    $1 ~ /^[0-9.]+$/ && NF >= 5 { name = $NF; calls = $4; if (name != "total") per[name] = calls }
    END {
      t = 0; line = ""
      for (k in per) { t += per[k] }
      printf "syscalls/request %-8s %-9s %6.2f  (%d requests)", v, w, t / n, n
      for (k in per) if (per[k] / n >= 0.01) line = line sprintf(" %s %.2f", k, per[k] / n)
      print " :" line
    }' "$out"
}
for v in "${names[@]}"; do strace_counts "$v" keepalive; done
for v in "${names[@]}"; do strace_counts "$v" wrk; done

# ---- CPU time per request, rounds alternating the builds
declare -A ka c64 rps usr sys
hz=$(getconf CLK_TCK)
ticks() { awk '{ print $14, $15 }' "/proc/$1/stat"; }
for r in $(seq 1 "$rounds"); do
  order=("${names[@]}")
  if [ $((r % 2)) = 0 ]; then order=("${names[1]}" "${names[0]}"); fi
  for v in "${order[@]}"; do
    c0=$(cpu_ns "${pid[$v]}")
    client "${port[$v]}" "$n3"
    c1=$(cpu_ns "${pid[$v]}")
    ka[$v]+="$(awk -v c="$((c1 - c0))" -v n="$n3" 'BEGIN { printf "%.0f", c / n }') "
    taskset -c "$cpu_load" wrk -t1 -c64 -d1s "http://127.0.0.1:${port[$v]}/" >/dev/null
    c0=$(cpu_ns "${pid[$v]}")
    read -r u0 s0 < <(ticks "${pid[$v]}")
    out=$(taskset -c "$cpu_load" wrk -t1 -c64 -d5s "http://127.0.0.1:${port[$v]}/")
    c1=$(cpu_ns "${pid[$v]}")
    read -r u1 s1 < <(ticks "${pid[$v]}")
    n=$(awk '/requests in/ { print $1 }' <<<"$out")
    usr[$v]+="$(awk -v t="$((u1 - u0))" -v n="$n" -v hz="$hz" 'BEGIN { printf "%.0f", t * 1e9 / hz / n }') "
    sys[$v]+="$(awk -v t="$((s1 - s0))" -v n="$n" -v hz="$hz" 'BEGIN { printf "%.0f", t * 1e9 / hz / n }') "
    c64[$v]+="$(awk -v c="$((c1 - c0))" -v n="$n" 'BEGIN { printf "%.0f", c / n }') "
    rps[$v]+="$(awk '/Requests\/sec/ { printf "%.0f", $2 }' <<<"$out") "
  done
  echo "round $r/$rounds: epoll ka ${ka[epoll]% } / c64 ${c64[epoll]% } ns; io_uring ka ${ka[io_uring]% } / c64 ${c64[io_uring]% } ns (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
done
median() { tr ' ' '\n' | awk 'NF' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
echo
echo "gantry-proxy, 1 worker on CPU $cpu_proxy; backend gantry-echo and clients on CPU $cpu_load; load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf "%-9s %16s %16s %18s %12s\n" build "CPU ns/req 1conn" "CPU ns/req c64" "c64 user+kernel" "req/s c64"
for v in "${names[@]}"; do
  printf "%-9s %16s %16s %18s %12s\n" "$v" "$(median <<<"${ka[$v]}")" "$(median <<<"${c64[$v]}")" \
    "$(median <<<"${usr[$v]}")+$(median <<<"${sys[$v]}")" "$(median <<<"${rps[$v]}")"
done
echo "(CPU ns: user + kernel from schedstat, medians of $rounds alternated rounds; 1conn: $n3 keep-alive requests from one python client; c64: wrk -t1 -c64 -d5s;"
echo " user+kernel: ns per request from utime and stime, $((1000 / hz)) ms ticks)"
