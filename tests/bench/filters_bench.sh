#!/usr/bin/env bash
# The cost of each access-control filter as a ratio to the bare route, in the
# same run (issue 14): one gantry-proxy whose routes differ only by their
# filter (one hostname each), the same backend, the same load.
#
# - Backend: nginx, one worker, `return 200`; the same nginx also plays the
#   extAuth service (`return 200` on another port), so extAuth's first request
#   fills its decision cache and every measured request is a cache hit, and an
#   XML backend (a 7-element order, `application/xml`, a third port) for
#   `transform`: its row converts each answer to JSON for a client that accepts
#   only JSON, and is compared with `bare(xml)`, the same backend untransformed.
# - Proxy: one worker pinned to CPU 0, access log off.
# - Load: wrk -t1 -c16 on CPU 1 with the backend, each target's headers.
# - Rounds: every target once per round, rounds interleaved; medians of req/s
#   and of the proxy's CPU time per request, and the ratios to `bare` (of req/s,
#   and of CPU per request: bare's CPU / the target's, steadier on a busy host).
# Targets (the issue's): apiKey and ipAllow >= 0.95x bare, extAuth with a
# decision-cache hit >= 0.9x. Prints numbers; never fails on them.
#
# A new filter's row: a route in the snapshot below (its own hostname) and a
# line in `targets` ("label host [header ...]").
#
#   tests/bench/filters_bench.sh [BIN_DIR] [SECONDS] [ROUNDS]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bin=${1:-build/bin}
secs=${2:-5}
rounds=${3:-3}
conns=16
bin=$(cd "$bin" && pwd)
tmp=$(mktemp -d /tmp/gantry-filters-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${GANTRY_BENCH_KEEP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
for tool in nginx wrk taskset curl htpasswd sha256sum; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is needed (hack/install-deps.sh)" >&2; exit 1; }
done

backend_port=19301
auth_port=19302
xml_port=19303
proxy_port=19310
cpu_proxy=0
cpu_load=1
if [ "$(nproc)" -lt 2 ]; then cpu_load=0; fi

# ---- backend and authorization service
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
  server {
    listen 127.0.0.1:$auth_port reuseport;
    location / { add_header X-Auth-Request-User bench; return 200; }
  }
  server {
    listen 127.0.0.1:$xml_port reuseport;
    location / {
      default_type application/xml;
      return 200 '<?xml version="1.0" encoding="UTF-8"?><order id="7"><customer>ada</customer><item sku="a">2</item><item sku="b">1</item><paid>true</paid><note>gift</note></order>';
    }
  }
}
CONF
taskset -c "$cpu_load" nginx -c "$tmp/backend/nginx.conf" -p "$tmp/backend" >/dev/null 2>&1 &
pids+=($!)
wait_port "$backend_port"
wait_port "$auth_port"
wait_port "$xml_port"

# ---- the snapshot: one route per filter
api_key="bench-key-0123456789"
api_digest=$(printf '%s' "$api_key" | sha256sum | cut -d' ' -f1)
user_hash=$(htpasswd -nbB bench bench-password | cut -d: -f2-)
backends='"backends": [{"cluster": "bench/echo:80", "weight": 1}]'
route() {  # name host filters-json [backends]
  printf '{"namespace": "bench", "name": "%s", "creationTimestamp": 1, "hostnames": ["%s"], "rules": [{%s "filters": %s}]}' \
    "$1" "$2" "${4:-$backends}," "$3"
}
xml_backends='"backends": [{"cluster": "bench/xml:80", "weight": 1}]'
{
  printf '{"version": 1, "routes": [\n'
  route bare bare.bench '{}'; printf ',\n'
  route api-key apikey.bench '{"apiKey": {"header": "x-api-key", "unknownKeyStatus": 401, "keys": [{"consumer": "bench", "sha256": "'"$api_digest"'"}]}}'; printf ',\n'
  route ip-allow ipallow.bench '{"sourceRange": {"allow": ["10.0.0.0/8", "127.0.0.0/8", "::1/128"]}}'; printf ',\n'
  route basic-auth basic.bench '{"basicAuth": {"realm": "bench", "users": [{"name": "bench", "hash": "'"$user_hash"'"}]}}'; printf ',\n'
  route ext-auth extauth.bench '{"extAuth": {"host": "127.0.0.1", "port": '$auth_port', "path": "/auth", "authority": "auth.bench", "requestHeaders": ["cookie"], "responseHeaders": ["x-auth-request-user"], "cacheTtlMs": 3600000}}'; printf ',\n'
  route xml-bare xmlbare.bench '{}' "$xml_backends"; printf ',\n'
  route transform transform.bench '{"transform": {"backend": "XML"}}' "$xml_backends"
  printf '],\n "clusters": [{"name": "bench/echo:80", "endpoints": [{"address": "127.0.0.1", "port": %d}]},\n' "$backend_port"
  printf '  {"name": "bench/xml:80", "endpoints": [{"address": "127.0.0.1", "port": %d}]}]}\n' "$xml_port"
} >"$tmp/snapshot.json"

taskset -c "$cpu_proxy" "$bin/gantry-proxy" --workers 1 --http-listen "127.0.0.1:$proxy_port" \
  --admin-listen "127.0.0.1:$((proxy_port + 1))" --stats-listen off --control-socket "$tmp/proxy.sock" \
  --snapshot-file "$tmp/snapshot.json" --drain-seconds 0 --access-log off >"$tmp/proxy.log" 2>&1 &
proxy_pid=$!
pids+=($proxy_pid)
wait_port "$proxy_port" || { cat "$tmp/proxy.log" >&2; exit 1; }

# ---- targets: "label host header..." (headers separated by '|'), each checked to reach the backend
targets=(
  "bare|bare.bench"
  "apiKey|apikey.bench|X-API-Key: $api_key"
  "ipAllow|ipallow.bench"
  "basicAuth|basic.bench|Authorization: Basic $(printf 'bench:bench-password' | base64)"
  "extAuth(cache hit)|extauth.bench|Cookie: session=bench"
  "bare(xml)|xmlbare.bench"
  "transform(xml->json)|transform.bench|Accept: application/json"
)
headers_of() {  # target -> wrk/curl -H arguments, one per line
  local IFS='|'
  read -r -a parts <<<"$1"
  printf 'Host: %s\n' "${parts[1]}"
  for ((i = 2; i < ${#parts[@]}; i++)); do printf '%s\n' "${parts[$i]}"; done
}
args_of() {
  local -n out=$2
  out=()
  while IFS= read -r h; do out+=(-H "$h"); done < <(headers_of "$1")
}
for t in "${targets[@]}"; do
  args_of "$t" hdr
  for _ in $(seq 1 100); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "${hdr[@]}" "http://127.0.0.1:$proxy_port/" || true)
    [ "$code" = 200 ] && break
    sleep 0.1
  done
  [ "$code" = 200 ] || { echo "bench: ${t%%|*} answers $code" >&2; cat "$tmp/proxy.log" >&2; exit 1; }
done
# the transform row measures a conversion: its answer must be JSON
ctype=$(curl -s -o /dev/null -w '%{content_type}' -H "Host: transform.bench" -H "Accept: application/json" "http://127.0.0.1:$proxy_port/")
case "$ctype" in application/json*) ;; *) echo "bench: transform answers $ctype, not JSON" >&2; exit 1;; esac

hz=$(getconf CLK_TCK)
run_wrk() {  # target -> "rps cpu_us_per_request errors"
  local out c0 c1
  args_of "$1" hdr
  taskset -c "$cpu_load" wrk -t1 -c"$conns" -d1s "${hdr[@]}" "http://127.0.0.1:$proxy_port/" >/dev/null 2>&1 || true
  c0=$(cpu_ticks "$proxy_pid")
  out=$(taskset -c "$cpu_load" wrk -t1 -c"$conns" -d"${secs}s" "${hdr[@]}" "http://127.0.0.1:$proxy_port/")
  c1=$(cpu_ticks "$proxy_pid")
  awk -v c="$((c1 - c0))" -v hz="$hz" '
    /requests in/ { n = $1 }
    /Requests\/sec/ { rps = $2 }
    /Non-2xx|Socket errors/ { err = err $0 "; " }
    END { printf "%.0f %.2f %s\n", rps, (n > 0 ? c * 1e6 / hz / n : 0), (err == "" ? "none" : err) }' <<<"$out"
}

declare -A samples
for r in $(seq 1 "$rounds"); do
  for t in "${targets[@]}"; do
    label=${t%%|*}
    line=$(run_wrk "$t")
    samples[$label]+="$line"$'\n'
    echo "round $r/$rounds $label: $line" >&2
  done
done

median() {  # column (1-based) of the sample lines on stdin
  awk -v c="$1" '{ print $c }' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
echo
echo "filters benchmark: wrk -t1 -c$conns -d${secs}s, $rounds interleaved rounds (medians), gantry-proxy" \
  "pinned to CPU $cpu_proxy with 1 worker, backend nginx (return 200) + wrk on CPU $cpu_load;" \
  "one route per filter, same proxy; extAuth's service is nginx, every measured request a decision-cache hit"
printf "%-22s %10s %12s %10s %14s  %s\n" target "req/s" "CPU us/req" "x bare" "x bare (CPU)" errors
ref=$(printf '%s' "${samples[bare]}" | median 1)
ref_cpu=$(printf '%s' "${samples[bare]}" | median 2)
for t in "${targets[@]}"; do
  label=${t%%|*}
  s=${samples[$label]}
  rps=$(printf '%s' "$s" | median 1)
  cpu=$(printf '%s' "$s" | median 2)
  errs=$(printf '%s' "$s" | awk '{ $1 = $2 = ""; sub(/^ +/, ""); print }' | sort -u | paste -sd'|')
  printf "%-22s %10.0f %12.2f %10s %14s  %s\n" "$label" "$rps" "$cpu" \
    "$(awk -v a="$rps" -v b="$ref" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')" \
    "$(awk -v a="$cpu" -v b="$ref_cpu" 'BEGIN { printf "%.2f", (a > 0 ? b / a : 0) }')" "$errs"
done
