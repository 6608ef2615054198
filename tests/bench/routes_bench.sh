#!/usr/bin/env bash
# Regular-expression routes, end to end: requests per second matching the
# first, middle and last of N RegularExpression rules (/p0/[a-z]+ ...
# /p<N-1>/[a-z]+, all on one host level) for N = 10, 100, 1,000, 2,000,
# against a PathPrefix route, in the same run (issue 22).
#
# - Backend: nginx, one worker, `return 200` (no file, no body to speak of).
# - Proxies, each with one worker pinned to CPU 0 (access log off): one with
#   only a PathPrefix route (the reference), and one per N with the N regex
#   rules plus a PathPrefix rule on the same level (that rule's requests
#   also pay the regex pass, since regexes rank before prefixes). With
#   GANTRY_BENCH_BASELINE_BIN=<dir of another gantry-proxy>, the same proxies
#   again from that binary (e.g. one built before a change), same run.
# - Load: wrk -t1 -c16 (as in the issue), on CPU 1 with the backend.
# - Rounds: every target run once per round, rounds interleaved; the table
#   shows medians of req/s and of the proxy's CPU time per request.
# Prints the ratio of each target to the reference. Never fails on numbers.
#
#   tests/bench/routes_bench.sh [BIN_DIR] [SECONDS] [ROUNDS] [N ...]
set -euo pipefail
bin=${1:-build/bin}
secs=${2:-5}
rounds=${3:-3}
shift $(($# < 3 ? $# : 3))
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(10 100 1000 2000)
conns=16
bin=$(cd "$bin" && pwd)
baseline=${GANTRY_BENCH_BASELINE_BIN:-}
[ -z "$baseline" ] || baseline=$(cd "$baseline" && pwd)
tmp=$(mktemp -d /tmp/gantry-routes-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${GANTRY_BENCH_KEEP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
for tool in nginx wrk taskset curl; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is needed (hack/install-deps.sh)" >&2; exit 1; }
done

backend_port=19201
cpu_proxy=0
cpu_load=1
if [ "$(nproc)" -lt 2 ]; then cpu_load=0; fi

wait_port() {  # port
  for _ in $(seq 1 400); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "bench: nothing listens on 127.0.0.1:$1" >&2
  return 1
}

# ---- backend
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
wait_port "$backend_port"

# ---- snapshots
cluster='"clusters": [{"name": "bench/echo:80", "endpoints": [{"address": "127.0.0.1", "port": '$backend_port'}]}]'
backends='"backends": [{"cluster": "bench/echo:80", "weight": 1}]'
prefix_rule='{"matches": [{"path": {"type": "PathPrefix", "value": "/static"}}], '"$backends"'}'
cat >"$tmp/prefix.json" <<JSON
{"version": 1,
 "routes": [{"namespace": "bench", "name": "prefix", "creationTimestamp": 1, "hostnames": [],
   "rules": [$prefix_rule]}],
 $cluster}
JSON
for n in "${sizes[@]}"; do
  {
    printf '{"version": 1, "routes": [\n'
    printf ' {"namespace": "bench", "name": "regex", "creationTimestamp": 1, "hostnames": [], "rules": [\n'
    for ((k = 0; k < n; k++)); do
      [ "$k" -eq 0 ] || printf ',\n'
      printf '  {"matches": [{"path": {"type": "RegularExpression", "value": "/p%d/[a-z]+"}}], %s}' "$k" "$backends"
    done
    printf ']},\n {"namespace": "bench", "name": "prefix", "creationTimestamp": 2, "hostnames": [], "rules": [%s]}],\n' "$prefix_rule"
    printf ' %s}\n' "$cluster"
  } >"$tmp/regex-$n.json"
done

# ---- proxies: name -> port
declare -A port pid
next_port=19210
start_proxy() {  # name bin-dir snapshot
  local name=$1 dir=$2 snapshot=$3 p=$next_port
  next_port=$((next_port + 2))
  taskset -c "$cpu_proxy" "$dir/gantry-proxy" --workers 1 --http-listen "127.0.0.1:$p" \
    --admin-listen "127.0.0.1:$((p + 1))" --stats-listen off --control-socket "$tmp/$name.sock" \
    --snapshot-file "$snapshot" --drain-seconds 0 --access-log off >"$tmp/$name.log" 2>&1 &
  pid[$name]=$!
  pids+=($!)
  port[$name]=$p
  wait_port "$p" || { cat "$tmp/$name.log" >&2; exit 1; }
}
variants=(sets)
[ -z "$baseline" ] || variants+=(baseline)
for v in "${variants[@]}"; do
  dir=$bin
  [ "$v" = sets ] || dir=$baseline
  start_proxy "$v-prefix" "$dir" "$tmp/prefix.json"
  for n in "${sizes[@]}"; do start_proxy "$v-$n" "$dir" "$tmp/regex-$n.json"; done
done

# ---- targets: "label proxy path", each checked to reach the backend
targets=()
for v in "${variants[@]}"; do
  targets+=("$v/prefix-only $v-prefix /static/a")
  for n in "${sizes[@]}"; do
    targets+=("$v/N=$n/first $v-$n /p0/abc" "$v/N=$n/middle $v-$n /p$((n / 2))/abc"
      "$v/N=$n/last $v-$n /p$((n - 1))/abc" "$v/N=$n/prefix $v-$n /static/a")
  done
done
for t in "${targets[@]}"; do
  read -r label name path <<<"$t"
  for _ in $(seq 1 100); do  # the proxy may still be loading a big snapshot
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${port[$name]}$path" || true)
    [ "$code" = 200 ] && break
    sleep 0.1
  done
  [ "$code" = 200 ] || { echo "bench: $label answers $code for $path" >&2; exit 1; }
done

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
hz=$(getconf CLK_TCK)
run_wrk() {  # proxy path -> "rps cpu_us_per_request errors"
  local name=$1 url="http://127.0.0.1:${port[$1]}$2" out c0 c1
  taskset -c "$cpu_load" wrk -t1 -c"$conns" -d1s "$url" >/dev/null 2>&1 || true  # warm-up
  c0=$(cpu_ticks "${pid[$name]}")
  out=$(taskset -c "$cpu_load" wrk -t1 -c"$conns" -d"${secs}s" "$url")
  c1=$(cpu_ticks "${pid[$name]}")
  awk -v c="$((c1 - c0))" -v hz="$hz" '
    /requests in/ { n = $1 }
    /Requests\/sec/ { rps = $2 }
    /Non-2xx|Socket errors/ { err = err $0 "; " }
    END { printf "%.0f %.2f %s\n", rps, (n > 0 ? c * 1e6 / hz / n : 0), (err == "" ? "none" : err) }' <<<"$out"
}

declare -A samples
for r in $(seq 1 "$rounds"); do
  for t in "${targets[@]}"; do
    read -r label name path <<<"$t"
    line=$(run_wrk "$name" "$path")
    samples[$label]+="$line"$'\n'
    echo "round $r/$rounds $label: $line" >&2
  done
done

median() {  # column (1-based) of the sample lines on stdin
  awk -v c="$1" '{ print $c }' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
echo
echo "routes benchmark: wrk -t1 -c$conns -d${secs}s, $rounds interleaved rounds (medians), gantry-proxy" \
  "pinned to CPU $cpu_proxy with 1 worker, backend nginx (return 200) + wrk on CPU $cpu_load;" \
  "regex rules /pK/[a-z]+, all on one level with a PathPrefix /static rule"
printf "%-24s %10s %12s %14s  %s\n" target "req/s" "CPU us/req" "x prefix-only" errors
for v in "${variants[@]}"; do
  ref=$(printf '%s' "${samples[$v/prefix-only]}" | median 1)
  for t in "${targets[@]}"; do
    read -r label name path <<<"$t"
    [ "${label%%/*}" = "$v" ] || continue
    s=${samples[$label]}
    rps=$(printf '%s' "$s" | median 1)
    cpu=$(printf '%s' "$s" | median 2)
    errs=$(printf '%s' "$s" | awk '{ $1 = $2 = ""; sub(/^ +/, ""); print }' | sort -u | paste -sd'|')
    printf "%-24s %10.0f %12.2f %14s  %s\n" "$label" "$rps" "$cpu" \
      "$(awk -v a="$rps" -v b="$ref" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')" "$errs"
  done
done
