#!/usr/bin/env bash
# hack/demo.sh: Gantry's quick start on one machine, no cluster needed.
#
# Starts three echo backends (127.0.0.11-13:9001, the "pods" of
# manifests/examples/00-backends.yaml), gantry-controller in standalone mode
# over manifests/examples, and gantry-proxy; waits until they are ready, then
# shows the example routes working with curl: hosts, prefixes, a weighted
# split, a rate limit (429), JWT (401, then 200), the response cache (MISS,
# HIT), a mirrored request, a redirect, a body limit (413), and a Gateway with
# an HTTPRoute (Gateway API) on 127.0.0.14:8080.
#
#   hack/demo.sh           interactive: leaves everything running until Ctrl-C
#   hack/demo.sh --smoke   non-interactive: checks every answer, exits 0 or 1
#
# Environment (all optional):
#   DEMO_HTTP_PORT=8080 DEMO_STATS_PORT=9901 DEMO_ADMIN_PORT=9900 DEMO_HEALTH_PORT=9902
#   DEMO_CTL_ADMIN_PORT=9903                                       loopback ports
#                      ("auto": a free port picked at start)
#   GANTRY_BIN=DIR     use the binaries in DIR (default build/bin, built if stale)
#   DEMO_NO_BUILD=1    never build; fail if a binary is missing
#   DEMO_JOBS=N        ninja parallelism when building (default: number of CPUs)
#
# Everything listens on 127.0.0.0/8 only. Every process it starts runs in its
# own process group and is stopped on exit, Ctrl-C or failure.
set -euo pipefail
# As the image runs the proxy (Dockerfile ENV; docs/ARCHITECTURE.md, "Memory").
export GLIBC_TUNABLES=${GLIBC_TUNABLES:-glibc.malloc.tcache_count=128}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MODE=interactive
case "${1:-}" in
  "") ;;
  --smoke) MODE=smoke ;;
  -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) echo "demo.sh: unknown argument \"$1\" (use --smoke or --help)" >&2; exit 2 ;;
esac

HTTP_PORT=${DEMO_HTTP_PORT:-8080}
STATS_PORT=${DEMO_STATS_PORT:-9901}
ADMIN_PORT=${DEMO_ADMIN_PORT:-9900}
HEALTH_PORT=${DEMO_HEALTH_PORT:-9902}
CTL_ADMIN_PORT=${DEMO_CTL_ADMIN_PORT:-9903}
# A port of "auto": a free loopback port picked now (the tests' choice, since
# any fixed port may be taken by something else on a shared machine).
port_vars=(HTTP_PORT STATS_PORT ADMIN_PORT HEALTH_PORT CTL_ADMIN_PORT)
# Outside the ephemeral range, never the same as a test running beside (ports.py).
mapfile -t free_ports < <(python3 "$(dirname "${BASH_SOURCE[0]}")/testbin/ports.py" 5)
[[ ${#free_ports[@]} == 5 ]] || { echo "demo.sh: could not pick free ports" >&2; exit 1; }
for i in "${!port_vars[@]}"; do
  if [[ ${!port_vars[$i]} == auto ]]; then printf -v "${port_vars[$i]}" '%s' "${free_ports[$i]}"; fi
done
BUILD_DIR="$REPO/build"
BIN=${GANTRY_BIN:-$BUILD_DIR/bin}
MANIFESTS="$REPO/manifests/examples"
PROXY_URL="http://127.0.0.1:$HTTP_PORT"
READY_TIMEOUT=30   # seconds
BACKENDS=("echo-a 127.0.0.11:9001" "echo-b 127.0.0.12:9001" "echo-c 127.0.0.13:9001")

if [[ -t 1 ]]; then BOLD=$'\e[1m'; GREEN=$'\e[32m'; RED=$'\e[31m'; RESET=$'\e[0m'
else BOLD=""; GREEN=""; RED=""; RESET=""; fi

say() { printf '%s\n' "${BOLD}==> $*${RESET}"; }
die() { printf '%s\n' "${RED}demo.sh: $*${RESET}" >&2; exit 1; }

# ------------------------------------------------------------------ build

binaries_fresh() {
  local b
  for b in gantry-proxy gantry-controller gantry-echo; do
    [[ -x "$BIN/$b" ]] || return 1
  done
  # Stale when any source or build file is newer than the oldest binary.
  local oldest
  oldest=$(ls -tr "$BIN/gantry-proxy" "$BIN/gantry-controller" "$BIN/gantry-echo" | head -n 1)
  [[ -z $(find "$REPO/CMakeLists.txt" "$REPO/proxy" "$REPO/controller" "$REPO/tests/backends" \
            -newer "$oldest" \( -name '*.cc' -o -name '*.h' -o -name CMakeLists.txt \) -print -quit) ]]
}

if [[ -n "${GANTRY_BIN:-}" || "${DEMO_NO_BUILD:-0}" == 1 ]]; then
  for b in gantry-proxy gantry-controller gantry-echo; do
    [[ -x "$BIN/$b" ]] || die "$BIN/$b not found (build first, or unset GANTRY_BIN / DEMO_NO_BUILD)"
  done
elif binaries_fresh; then
  say "binaries in $BIN are up to date"
else
  say "building gantry-proxy, gantry-controller, gantry-echo into $BUILD_DIR"
  command -v cmake >/dev/null && command -v ninja >/dev/null || die "cmake and ninja are needed to build"
  if [[ ! -f "$BUILD_DIR/build.ninja" ]]; then
    cmake -S "$REPO" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  fi
  ninja -C "$BUILD_DIR" -j "${DEMO_JOBS:-$(nproc)}" gantry-proxy gantry-controller gantry-echo
fi
command -v curl >/dev/null || die "curl is needed"

# ------------------------------------------------------------------ processes

# The backends' addresses are fixed (the example manifests name them), so two
# copies of the demo on one machine (two test runs side by side) would take
# each other's. A lock on them is held by this script and inherited by every
# process it starts, so it is free again once they have all exited: --smoke
# waits for it (bounded), the interactive demo says who has it.
LOCK_FILE=/tmp/gantry-demo-backends.lock
exec 9>>"$LOCK_FILE"
if [[ $MODE == smoke ]]; then
  flock -w 240 9 || die "another demo kept 127.0.0.11-13:9001 for 240 s (lock $LOCK_FILE)"
else
  flock -n 9 || die "another demo is running (it holds 127.0.0.11-13:9001; lock $LOCK_FILE)"
fi

RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/gantry-demo.XXXXXX")
SOCKET="$RUN_DIR/control.sock"
PIDS=()
NAMES=()
KEEP_RUN_DIR=0

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if ((${#PIDS[@]})); then
    [[ $MODE == interactive ]] && say "stopping ${NAMES[*]}"
    local pid i
    for pid in "${PIDS[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
    # Bounded wait (5 s), then SIGKILL whatever is left of each process group.
    for ((i = 0; i < 50; i++)); do
      local alive=0
      for pid in "${PIDS[@]}"; do kill -0 -- "-$pid" 2>/dev/null && alive=1; done
      ((alive)) || break
      sleep 0.1
    done
    for pid in "${PIDS[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
  fi
  # Ctrl-C (130) and SIGTERM (143) are the normal end of the interactive demo.
  if ((KEEP_RUN_DIR)) || [[ $status != 0 && $status != 130 && $status != 143 ]]; then
    echo "logs kept in $RUN_DIR" >&2
  else
    rm -rf "$RUN_DIR"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start NAME CMD...: runs CMD in its own session (so its own process group),
# output to $RUN_DIR/NAME.log.
start() {
  local name=$1
  shift
  setsid "$@" >"$RUN_DIR/$name.log" 2>&1 </dev/null &
  PIDS+=("$!")
  NAMES+=("$name")
}

fail_with_logs() {
  local name
  for name in "${NAMES[@]}"; do
    echo "--- $name (last lines of $RUN_DIR/$name.log) ---" >&2
    tail -n 15 "$RUN_DIR/$name.log" >&2 || true
  done
  die "$*"
}

# wait_for WHAT URL [PATTERN]: polls until URL answers 200 (with PATTERN in the
# body, when given) within READY_TIMEOUT, failing early when one of the
# started processes has died.
wait_for() {
  local what=$1 url=$2 pattern=${3:-} deadline=$((SECONDS + READY_TIMEOUT)) i body
  while :; do
    if body=$(curl -sf --max-time 2 "$url"); then
      [[ -z $pattern || $body == *"$pattern"* ]] && return 0
    fi
    for i in "${!PIDS[@]}"; do
      kill -0 "${PIDS[$i]}" 2>/dev/null || fail_with_logs "${NAMES[$i]} exited while waiting for $what"
    done
    ((SECONDS < deadline)) || fail_with_logs "$what not ready after ${READY_TIMEOUT}s ($url)"
    sleep 0.1
  done
}

for backend in "${BACKENDS[@]}"; do
  read -r name addr <<<"$backend"
  start "$name" "$BIN/gantry-echo" --name "$name" --listen "$addr"
done
for backend in "${BACKENDS[@]}"; do
  read -r name addr <<<"$backend"
  # The body names the backend: a stranger already on this address does not count.
  wait_for "$name" "http://$addr/" "\"name\":\"$name\""
done

start gantry-proxy "$BIN/gantry-proxy" \
  --http-listen "127.0.0.1:$HTTP_PORT" --stats-listen "127.0.0.1:$STATS_PORT" \
  --admin-listen "127.0.0.1:$ADMIN_PORT" \
  --control-socket "$SOCKET" --drain-seconds 1
wait_for gantry-proxy "http://127.0.0.1:$STATS_PORT/healthz"

start gantry-controller "$BIN/gantry-controller" \
  --source "dir:$MANIFESTS" --proxy-socket "$SOCKET" --health-listen "127.0.0.1:$HEALTH_PORT" \
  --admin-listen "127.0.0.1:$CTL_ADMIN_PORT"
wait_for "gantry-controller" "http://127.0.0.1:$HEALTH_PORT/readyz"
wait_for "gantry-proxy (first snapshot)" "http://127.0.0.1:$STATS_PORT/readyz"

version=$(curl -sf --max-time 2 "http://127.0.0.1:$ADMIN_PORT/config_dump" \
  | grep -o '"version" *: *[0-9]*' | head -n 1 | grep -o '[0-9]*$' || true)
cat <<EOF

${BOLD}Gantry is running${RESET} (snapshot version ${version:-?})
  proxy       $PROXY_URL                 traffic
              http://127.0.0.1:$STATS_PORT                   stats: /healthz /readyz /metrics
              http://127.0.0.1:$ADMIN_PORT                   admin: /config_dump /upstreams
  controller  --source dir:$MANIFESTS
              http://127.0.0.1:$HEALTH_PORT                   health: /healthz /readyz /metrics
              http://127.0.0.1:$CTL_ADMIN_PORT                   admin: /status
  control     $SOCKET
  gateway     http://127.0.0.14:8080             the Gateway of 12-gateway-api.yaml
  backends    echo-a 127.0.0.11:9001   echo-b 127.0.0.12:9001   echo-c 127.0.0.13:9001
  logs        $RUN_DIR/*.log

EOF

# ------------------------------------------------------------------ the tour

FAILURES=0
check() {  # check DESCRIPTION CONDITION...: records a failed expectation
  local what=$1
  shift
  if "$@"; then
    printf '   %s\n' "${GREEN}ok${RESET}: $what"
  else
    printf '   %s\n' "${RED}FAIL${RESET}: $what"
    FAILURES=$((FAILURES + 1))
  fi
}

# quoted ARGS...: the arguments as a shell command line a user can paste.
quoted() {
  local arg out=()
  for arg in "$@"; do
    if [[ $arg =~ ^[A-Za-z0-9_./:=@%+-]+$ ]]; then out+=("$arg"); else out+=("'${arg//\'/\'\\\'\'}'"); fi
  done
  printf '%s' "${out[*]}"
}

# show CMD...: prints the command, runs it, prints and keeps its output in $OUT.
show() {
  printf '%s\n' "${BOLD}\$ $(quoted "$@")${RESET}"
  OUT=$("$@" 2>&1) || true
  printf '%s\n\n' "$OUT"
}

json_field() {  # json_field NAME: the string value of "NAME" in $OUT
  grep -o "\"$1\":\"[^\"]*\"" <<<"$OUT" | head -n 1 | cut -d'"' -f4
}

say "host routing (01-hosts.yaml): two hostnames, two Services"
show curl -s -H 'Host: a.example.com' "$PROXY_URL/hello"
check "Host a.example.com reaches echo-a" test "$(json_field name)" == echo-a
show curl -s -H 'Host: b.example.com' "$PROXY_URL/hello"
check "Host b.example.com reaches echo-b" test "$(json_field name)" == echo-b

say "prefix routing with the prefix stripped (02-prefix.yaml)"
show curl -s "$PROXY_URL/api/users?limit=5"
check "/api/users reaches echo-c" test "$(json_field name)" == echo-c
check "echo-c sees /users?limit=5" test "$(json_field path)" == "/users?limit=5"
show curl -s -o /dev/null -w '%{http_code}\n' "$PROXY_URL/apis"
check "/apis is not under the /api prefix: 404" test "$OUT" == 404

say "weighted split 90/10 (03-weighted-split.yaml), counted over 100 requests"
printf '%s\n' "${BOLD}\$ for i in \$(seq 100); do curl -s -H 'Host: split.example.com' $PROXY_URL/; done | grep -o '\"name\":\"[^\"]*\"' | sort | uniq -c${RESET}"
OUT=$(for _ in $(seq 100); do curl -s --max-time 5 -H 'Host: split.example.com' "$PROXY_URL/"; echo; done)
counts=$(grep -o '"name":"[^"]*"' <<<"$OUT" | sort | uniq -c || true)
printf '%s\n\n' "$counts"
a=$(grep -c '"name":"echo-a"' <<<"$OUT" || true)
b=$(grep -c '"name":"echo-b"' <<<"$OUT" || true)
check "echo-a + echo-b answered all 100 (got $((a + b)))" test $((a + b)) -eq 100
check "echo-b got 10 +/- 8 of 100 (got $b)" test "$b" -ge 2 -a "$b" -le 18

# header NAME: the value of response header NAME in $OUT (curl -i output).
header() {
  grep -i "^$1:" <<<"$OUT" | head -n 1 | cut -d: -f2- | tr -d '\r' | sed 's/^ *//'
}
status() { head -n 1 <<<"$OUT" | awk '{print $2}'; }

say "rate limit (04-cors-and-rate-limit.yaml): 10 requests a minute per client, the 11th gets 429"
for _ in $(seq 10); do curl -s -o /dev/null --max-time 5 -H 'Host: api.example.com' "$PROXY_URL/v1/orders"; done
printf '%s\n' "${BOLD}(10 requests sent)${RESET}"
show curl -si -H 'Host: api.example.com' "$PROXY_URL/v1/orders"
check "the 11th request gets 429" test "$(status)" == 429
check "RateLimit-Limit: 10" test "$(header RateLimit-Limit)" == 10
check "RateLimit-Remaining: 0" test "$(header RateLimit-Remaining)" == 0
check "Retry-After is given" test -n "$(header Retry-After)"

say "JWT (05-jwt.yaml): 401 without a token, 200 with one (HS256, minted here)"
TOKEN=$(python3 - <<'PY'
import base64, hashlib, hmac, json, time
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
claims = b64(json.dumps({"iss": "https://issuer.example", "aud": "gantry", "sub": "alice",
                         "exp": int(time.time()) + 300}).encode())
sig = hmac.new(b"demo-only-secret-change-me-32byte", f"{head}.{claims}".encode(), hashlib.sha256)
print(f"{head}.{claims}.{b64(sig.digest())}")
PY
)
show curl -si -H 'Host: secure.example.com' "$PROXY_URL/me"
check "no token: 401" test "$(status)" == 401
check "WWW-Authenticate: Bearer" test "$(header WWW-Authenticate | cut -c1-6)" == Bearer
printf '%s\n' "${BOLD}\$ curl -s -H 'Host: secure.example.com' -H \"Authorization: Bearer \$TOKEN\" $PROXY_URL/me${RESET}"
OUT=$(curl -s --max-time 5 -H 'Host: secure.example.com' -H "Authorization: Bearer $TOKEN" "$PROXY_URL/me" 2>&1) || true
printf '%s\n\n' "$OUT"
check "with the token: echo-a answers" test "$(json_field name)" == echo-a
check "echo-a sees x-user: alice" test "$(json_field x-user)" == alice

say "response cache (07-response-cache.yaml): MISS, then HIT"
show curl -si -H 'Host: cache.example.com' "$PROXY_URL/catalog"
check "first: X-Cache: MISS" test "$(header X-Cache)" == MISS
first_seq=$(grep -o '"seq":[0-9]*' <<<"$OUT" | head -n 1)
show curl -si -H 'Host: cache.example.com' "$PROXY_URL/catalog"
check "second: X-Cache: HIT" test "$(header X-Cache)" == HIT
check "the same answer (backend not asked again)" test "$(grep -o '"seq":[0-9]*' <<<"$OUT" | head -n 1)" == "$first_seq"

say "request mirror (08-request-mirror.yaml): echo-a answers, echo-b gets a copy"
before=$(curl -s --max-time 2 http://127.0.0.12:9001/stats | grep -o '[0-9]*' | head -n 1)
show curl -s -H 'Host: mirror.example.com' "$PROXY_URL/orders"
check "echo-a answers" test "$(json_field name)" == echo-a
after=$before
for _ in $(seq 50); do  # the copy is fire-and-forget: give it a moment
  after=$(curl -s --max-time 2 http://127.0.0.12:9001/stats | grep -o '[0-9]*' | head -n 1)
  ((after > before)) && break
  sleep 0.1
done
show curl -s http://127.0.0.12:9001/stats
check "echo-b counted the copy ($before -> $after)" test "$after" -gt "$before"

say "redirect and body limit (06-headers-redirect-limits.yaml)"
show curl -si -H 'Host: www.example.com' "$PROXY_URL/docs"
check "301" test "$(status)" == 301
check "Location: https://docs.example.com/docs" test "$(header Location)" == https://docs.example.com/docs
printf '%s\n' "${BOLD}\$ head -c 2000000 /dev/zero | curl -s -o /dev/null -w '%{http_code}\\n' -H 'Host: edit.example.com' --data-binary @- $PROXY_URL/upload${RESET}"
OUT=$(head -c 2000000 /dev/zero | curl -s -o /dev/null -w '%{http_code}' --max-time 10 -H 'Host: edit.example.com' --data-binary @- "$PROXY_URL/upload" 2>&1) || true
printf '%s\n\n' "$OUT"
check "2 MB over the 1Mi limit: 413" test "$OUT" == 413

say "Gateway API (12-gateway-api.yaml): a Gateway on 127.0.0.14:8080 and an HTTPRoute"
show curl -s -H 'Host: shop.example.com' http://127.0.0.14:8080/v2/cart
check "/v2/cart reaches echo-a" test "$(json_field name)" == echo-a
check "echo-a sees /cart" test "$(json_field path)" == /cart
check "echo-a sees x-api-version: 2" test "$(json_field x-api-version)" == 2
show curl -s -o /dev/null -w '%{http_code}\n' -H 'Host: other.example.com' http://127.0.0.14:8080/
check "a host the Gateway does not serve: 404" test "$OUT" == 404

if [[ $MODE == smoke ]]; then
  if ((FAILURES)); then
    KEEP_RUN_DIR=1
    fail_with_logs "$FAILURES check(s) failed"
  fi
  say "smoke test passed"
  exit 0
fi

((FAILURES == 0)) || echo "${RED}$FAILURES check(s) failed; logs in $RUN_DIR${RESET}"
cat <<EOF
Try it yourself, e.g.:
  curl -s -H 'Host: a.example.com' $PROXY_URL/status/503 -i
  curl -s http://127.0.0.1:$ADMIN_PORT/config_dump
  curl -s http://127.0.0.1:$CTL_ADMIN_PORT/status
Edit a file in manifests/examples/ and the change applies within a moment.
${BOLD}Press Ctrl-C to stop everything.${RESET}
EOF
while :; do
  for i in "${!PIDS[@]}"; do
    kill -0 "${PIDS[$i]}" 2>/dev/null || fail_with_logs "${NAMES[$i]} exited unexpectedly"
  done
  sleep 1
done
