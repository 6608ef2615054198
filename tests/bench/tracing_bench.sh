#!/usr/bin/env bash
# Tracing cost (issue 17, docs/tracing.md), in one run: three gantry-proxy
# processes on the same binary, tracing off, --tracing-sampling 0.01 and 1.0,
# all exporting to a real OpenTelemetry Collector (hack/otelcol.sh; file
# exporter into the temporary directory).
#
# - Throughput: wrk -t1 -c16 against each proxy (one worker pinned to CPU 0;
#   backend nginx `return 200`, wrk and the collector on CPU 1), rounds
#   interleaved, medians of req/s and of the proxy's CPU time per request
#   (the exporter thread's included). Targets: >= 0.95x of off at 0.01,
#   >= 0.85x at 1.0 (printed, never failed on).
# - Instructions per request: callgrind over the whole proxy process (workers
#   and exporter thread), (I(N2) - I(N1)) / (N2 - N1) as in
#   instructions_bench.sh, for off, 0.01 and 1.0.
#
# - With GANTRY_BENCH_BASELINE_BIN=<bin dir of a build without tracing (or
#   any other)>, its instructions per request (tracing off) are measured too,
#   alternating with this build's off: what tracing costs when it is off.
#
#   tests/bench/tracing_bench.sh [BIN_DIR] [SECONDS] [ROUNDS]
set -euo pipefail
bin=$(cd "${1:-build/bin}" && pwd)
secs=${2:-5}
rounds=${3:-3}
n1=${GANTRY_BENCH_N1:-1000}
n2=${GANTRY_BENCH_N2:-4000}
conns=16
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tmp=$(mktemp -d /tmp/gantry-tracing-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${GANTRY_BENCH_KEEP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
for tool in nginx wrk taskset curl valgrind; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is needed (hack/install-deps.sh)" >&2; exit 1; }
done
otelcol=${GANTRY_OTELCOL:-$(bash "$root/hack/otelcol.sh" | tail -1)}

cpu_proxy=0
cpu_load=1
if [ "$(nproc)" -lt 2 ]; then cpu_load=0; fi
backend_port=19301
collector_port=19302

wait_port() {  # port
  for _ in $(seq 1 400); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "bench: nothing listens on 127.0.0.1:$1" >&2
  return 1
}

# ---- backend and collector
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
cat >"$tmp/otelcol.yaml" <<CONF
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:$collector_port
exporters:
  file:
    path: $tmp/spans.jsonl
    rotation: {max_megabytes: 64, max_backups: 1}
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [file]
CONF
taskset -c "$cpu_load" "$otelcol" --config "$tmp/otelcol.yaml" >"$tmp/otelcol.log" 2>&1 &
pids+=($!)
wait_port "$backend_port"
wait_port "$collector_port" || { cat "$tmp/otelcol.log" >&2; exit 1; }

cat >"$tmp/snapshot.json" <<JSON
{"version": 1,
 "routes": [{"namespace": "bench", "name": "echo", "creationTimestamp": 1, "hostnames": [],
   "rules": [{"backends": [{"cluster": "bench/echo:80", "weight": 1}]}]}],
 "clusters": [{"name": "bench/echo:80", "endpoints": [{"address": "127.0.0.1", "port": $backend_port}]}]}
JSON

variants=(off 0.01 1.0)
tracing_args() {  # variant
  [ "$1" = off ] && return 0
  echo "--tracing-endpoint http://127.0.0.1:$collector_port/v1/traces --tracing-sampling $1"
}

# ---- throughput
declare -A port pid
next_port=19310
for v in "${variants[@]}"; do
  p=$next_port
  next_port=$((next_port + 2))
  # shellcheck disable=SC2046
  taskset -c "$cpu_proxy" "$bin/gantry-proxy" --workers 1 --http-listen "127.0.0.1:$p" \
    --admin-listen off --stats-listen "127.0.0.1:$((p + 1))" --control-socket "$tmp/$v.sock" \
    --snapshot-file "$tmp/snapshot.json" --drain-seconds 0 --access-log off $(tracing_args "$v") \
    >"$tmp/$v.log" 2>&1 &
  pid[$v]=$!
  pids+=($!)
  port[$v]=$p
  wait_port "$p" || { cat "$tmp/$v.log" >&2; exit 1; }
done
for v in "${variants[@]}"; do
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${port[$v]}/" || true)
  [ "$code" = 200 ] || { echo "bench: tracing $v answers $code" >&2; exit 1; }
done

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
hz=$(getconf CLK_TCK)
run_wrk() {  # variant -> "rps cpu_us_per_request errors"
  local v=$1 url="http://127.0.0.1:${port[$1]}/" out c0 c1
  taskset -c "$cpu_load" wrk -t1 -c"$conns" -d1s "$url" >/dev/null 2>&1 || true  # warm-up
  c0=$(cpu_ticks "${pid[$v]}")
  out=$(taskset -c "$cpu_load" wrk -t1 -c"$conns" -d"${secs}s" "$url")
  c1=$(cpu_ticks "${pid[$v]}")
  awk -v c="$((c1 - c0))" -v hz="$hz" '
    /requests in/ { n = $1 }
    /Requests\/sec/ { rps = $2 }
    /Non-2xx|Socket errors/ { err = err $0 "; " }
    END { printf "%.0f %.2f %s\n", rps, (n > 0 ? c * 1e6 / hz / n : 0), (err == "" ? "none" : err) }' <<<"$out"
}
declare -A samples
for r in $(seq 1 "$rounds"); do
  for v in "${variants[@]}"; do
    line=$(run_wrk "$v")
    samples[$v]+="$line"$'\n'
    echo "round $r/$rounds tracing $v: $line" >&2
  done
done
metric() {  # variant name
  curl -s "http://127.0.0.1:$((${port[$1]} + 1))/metrics" | awk -v n="$2" '$1 == n { print $2 }'
}
median() {
  awk -v c="$1" '{ print $c }' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
echo
echo "tracing benchmark: wrk -t1 -c$conns -d${secs}s, $rounds interleaved rounds (medians), gantry-proxy" \
  "pinned to CPU $cpu_proxy with 1 worker, backend nginx (return 200), wrk and the collector on CPU $cpu_load"
printf "%-10s %10s %12s %8s %8s %12s %10s  %s\n" sampling "req/s" "CPU us/req" "x off" target exported dropped errors
ref=$(printf '%s' "${samples[off]}" | median 1)
for v in "${variants[@]}"; do
  s=${samples[$v]}
  rps=$(printf '%s' "$s" | median 1)
  cpu=$(printf '%s' "$s" | median 2)
  errs=$(printf '%s' "$s" | awk '{ $1 = $2 = ""; sub(/^ +/, ""); print }' | sort -u | paste -sd'|')
  target=-
  [ "$v" = 0.01 ] && target=">=0.95"
  [ "$v" = 1.0 ] && target=">=0.85"
  exported=-
  dropped=-
  if [ "$v" != off ]; then
    exported=$(metric "$v" gantry_tracing_spans_exported_total)
    dropped=$(metric "$v" gantry_tracing_spans_dropped_total)
  fi
  printf "%-10s %10.0f %12.2f %8s %8s %12s %10s  %s\n" "$v" "$rps" "$cpu" \
    "$(awk -v a="$rps" -v b="$ref" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')" "$target" \
    "$exported" "$dropped" "$errs"
done
for v in "${variants[@]}"; do kill "${pid[$v]}" 2>/dev/null || true; done

# ---- instructions per request (callgrind, whole process)
under() {  # variant n [bin dir]
  local v=$1 n=$2 dir=${3:-$bin} log="$tmp/callgrind-$1-$2.log"
  # shellcheck disable=SC2046
  valgrind --tool=callgrind --callgrind-out-file=/dev/null --log-file="$log" \
    "$dir/gantry-proxy" --workers 1 --http-listen 127.0.0.1:19380 --admin-listen off --stats-listen off \
    --control-socket "$tmp/cg.sock" --snapshot-file "$tmp/snapshot.json" --access-log off --drain-seconds 0 \
    $(tracing_args "$v") >/dev/null 2>&1 &
  local p=$!
  /usr/bin/python3 "$here/keepalive_client.py" 127.0.0.1 19380 "$n" --wait 120
  sleep 1  # lets the exporter send what it holds (its instructions count too)
  kill -TERM "$p"
  wait "$p" 2>/dev/null || true
  awk '/Collected :/ {print $NF}' "$log" | tail -1
}
echo
echo "instructions per proxied request (callgrind, whole process, keep-alive client, ($n2 - $n1) requests)"
off_ipr=
for v in "${variants[@]}"; do
  c1=$(under "$v" "$n1")
  c2=$(under "$v" "$n2")
  ipr=$(awk -v a="${c1:-0}" -v b="${c2:-0}" -v d="$((n2 - n1))" 'BEGIN { printf "%.0f", (b - a) / d }')
  [ -n "$off_ipr" ] || off_ipr=$ipr
  printf "  %-8s %10s  (x off %s)\n" "$v" "$ipr" "$(awk -v a="$ipr" -v b="$off_ipr" 'BEGIN { printf "%.3f", a / b }')"
done
if [ -n "${GANTRY_BENCH_BASELINE_BIN:-}" ]; then
  base=$(cd "$GANTRY_BENCH_BASELINE_BIN" && pwd)
  echo "tracing off: baseline $base against this build, alternating"
  for r in 1 2; do
    for d in "$base" "$bin"; do
      c1=$(under off "$n1" "$d")
      c2=$(under off "$n2" "$d")
      printf "  round %d %-40s %10s\n" "$r" "$d" "$(awk -v a="${c1:-0}" -v b="${c2:-0}" -v d="$((n2 - n1))" 'BEGIN { printf "%.0f", (b - a) / d }')"
    done
  done
fi
