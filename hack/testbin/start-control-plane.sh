#!/usr/bin/env bash
# Starts a throw-away Kubernetes control plane on loopback for integration tests:
# etcd + kube-apiserver (RBAC, client-cert admin, service-account keys) and,
# with --with-kcm, a kube-controller-manager running only the controllers that
# Gantry's tests rely on. No kubelet, scheduler or kube-proxy: pods are created
# but never scheduled or run.
#
# Usage:
#   start-control-plane.sh [--with-kcm] [--bin-dir DIR] [--controllers LIST] WORKDIR
#       Starts everything under WORKDIR (created if missing; must not hold a running
#       control plane), waits until the API server's /readyz (and the kcm's
#       /healthz) answer ok, and prints the admin kubeconfig path as its last line.
#   start-control-plane.sh stop WORKDIR
#       Stops what WORKDIR/*.pid name (TERM, then KILL after 10 s) and removes
#       the pid files. Safe to call twice or on a half-started WORKDIR.
#   start-control-plane.sh restart-apiserver WORKDIR
#       Stops kube-apiserver only (TERM), starts it again with the same command
#       line (kept in WORKDIR/kube-apiserver.argv) and waits for /readyz; etcd and
#       its data stay. For tests of watch recovery.
#
# Options / environment:
#   --bin-dir DIR       binaries directory (default: $GANTRY_TESTBIN, else the
#                       output of hack/testbin.sh, which builds them if needed)
#   --controllers LIST  kcm --controllers value (default $GANTRY_KCM_CONTROLLERS or
#                       deployment,replicaset,endpointslice,serviceaccount,serviceaccount-token)
#   --apiserver-arg ARG one more kube-apiserver flag (repeatable), e.g.
#                       --apiserver-arg=--watch-cache=false
#
# Files in WORKDIR: kubeconfig, ca.crt, admin.crt/.key, admin.token (bearer token
# of the same admin), sa.key/sa.pub, env (ports as shell variables),
# etcd.log, kube-apiserver.log, kube-controller-manager.log, *.pid, etcd-data/.
#
# Invariants: every listener binds 127.0.0.1 on a port picked free at start; each
# process runs in its own session so it outlives the caller's process group; a
# pid is only signalled if /proc/<pid>/exe still is the binary we started.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
log() { echo "control-plane: $*" >&2; }
die() { echo "control-plane: error: $*" >&2; exit 1; }

procs=(kube-controller-manager kube-apiserver etcd)   # stop order

stop_one() {  # workdir name
  local w="$1" name="$2" pidf="$1/$2.pid" pid exe i
  [ -f "$pidf" ] || return 0
  pid="$(cat "$pidf")"
  exe="$(readlink "/proc/$pid/exe" 2>/dev/null || true)"
  if [ -n "$pid" ] && [ "$(basename "${exe% (deleted)}")" = "$name" ]; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name ($pid) ignored TERM, killing"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.2
    fi
  fi
  rm -f "$pidf"
}

stop_all() {
  local w="$1" p
  [ -d "$w" ] || return 0
  for p in "${procs[@]}"; do stop_one "$w" "$p"; done
}

if [ "${1:-}" = "stop" ]; then
  [ $# -eq 2 ] || die "usage: $0 stop WORKDIR"
  stop_all "$2"
  exit 0
fi

if [ "${1:-}" = "restart-apiserver" ]; then
  [ $# -eq 2 ] || die "usage: $0 restart-apiserver WORKDIR"
  w="$(cd "$2" && pwd)"
  [ -f "$w/kube-apiserver.argv" ] || die "$w/kube-apiserver.argv missing: not started by this script?"
  stop_one "$w" kube-apiserver
  mapfile -d '' -t argv < "$w/kube-apiserver.argv"
  setsid "${argv[@]}" >> "$w/kube-apiserver.log" 2>&1 < /dev/null &
  echo $! > "$w/kube-apiserver.pid"
  . "$w/env"
  for i in $(seq 1 360); do
    if curl -sf --cacert "$w/ca.crt" --cert "$w/admin.crt" --key "$w/admin.key" \
        "$API_SERVER/readyz" >/dev/null 2>&1; then
      log "kube-apiserver restarted at $API_SERVER"
      exit 0
    fi
    kill -0 "$(cat "$w/kube-apiserver.pid")" 2>/dev/null || die "kube-apiserver exited on restart"
    sleep 0.25
  done
  die "timed out after 90s waiting for the restarted kube-apiserver"
fi

with_kcm=0
bin_dir="${GANTRY_TESTBIN:-}"
controllers="${GANTRY_KCM_CONTROLLERS:-deployment,replicaset,endpointslice,serviceaccount,serviceaccount-token}"
work=""
apiserver_extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --with-kcm) with_kcm=1 ;;
    --apiserver-arg) apiserver_extra+=("$2"); shift ;;
    --apiserver-arg=*) apiserver_extra+=("${1#--apiserver-arg=}") ;;
    --bin-dir) bin_dir="$2"; shift ;;
    --controllers) controllers="$2"; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option $1" ;;
    *) [ -z "$work" ] || die "only one WORKDIR"; work="$1" ;;
  esac
  shift
done
[ -n "$work" ] || die "usage: $0 [--with-kcm] [--bin-dir DIR] [--controllers LIST] WORKDIR"
command -v openssl >/dev/null || die "openssl not found"
command -v curl >/dev/null || die "curl not found"
command -v python3 >/dev/null || die "python3 not found"

if [ -z "$bin_dir" ]; then
  bin_dir="$("$here/../testbin.sh" | tail -1)"
fi
for b in etcd kube-apiserver; do [ -x "$bin_dir/$b" ] || die "$bin_dir/$b missing"; done
[ "$with_kcm" = 0 ] || [ -x "$bin_dir/kube-controller-manager" ] || die "kcm missing in $bin_dir"

mkdir -p "$work"
work="$(cd "$work" && pwd)"
for p in "${procs[@]}"; do
  if [ -f "$work/$p.pid" ] && kill -0 "$(cat "$work/$p.pid")" 2>/dev/null; then
    die "$work already runs $p; run: $0 stop $work"
  fi
done

# On any failure below, stop whatever was started and show the logs' tails.
started=0
on_exit() {
  local rc=$?
  if [ "$rc" != 0 ] && [ "$started" = 1 ]; then
    for f in "$work"/*.log; do [ -f "$f" ] && { log "--- tail $f"; tail -20 "$f" >&2; }; done
    stop_all "$work"
  fi
}
trap on_exit EXIT

# Four free loopback ports, outside the ephemeral range and never handed to two
# test processes at once (ports.py).
mapfile -t ports < <(python3 "$here/ports.py" 4)
[ "${#ports[@]}" = 4 ] || die "could not pick free ports"
etcd_port="${ports[0]}" etcd_peer_port="${ports[1]}" api_port="${ports[2]}" kcm_port="${ports[3]}"

# --- credentials: a CA, the API server's serving cert, an admin client cert,
# a static token for the same admin, and the service-account key pair.
ossl() { openssl "$@" >/dev/null 2>&1 || die "openssl $1 failed"; }
ossl req -x509 -newkey rsa:2048 -nodes -days 7 -subj "/CN=gantry-test-ca" \
  -keyout "$work/ca.key" -out "$work/ca.crt"
cat > "$work/serving.ext" <<EOF
subjectAltName=IP:127.0.0.1,DNS:localhost
extendedKeyUsage=serverAuth
EOF
ossl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
  -keyout "$work/serving.key" -out "$work/serving.csr"
ossl x509 -req -in "$work/serving.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" \
  -CAcreateserial -days 7 -extfile "$work/serving.ext" -out "$work/serving.crt"
echo "extendedKeyUsage=clientAuth" > "$work/client.ext"
ossl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=gantry-admin" \
  -keyout "$work/admin.key" -out "$work/admin.csr"
ossl x509 -req -in "$work/admin.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" \
  -CAcreateserial -days 7 -extfile "$work/client.ext" -out "$work/admin.crt"
ossl genrsa -out "$work/sa.key" 2048
ossl rsa -in "$work/sa.key" -pubout -out "$work/sa.pub"
token="$(openssl rand -hex 16)"
echo "$token" > "$work/admin.token"
echo "$token,gantry-admin-token,gantry-admin-token,system:masters" > "$work/tokens.csv"
rm -f "$work"/*.csr "$work"/*.ext "$work/ca.srl"
chmod 600 "$work"/*.key "$work/admin.token" "$work/tokens.csv"

server="https://127.0.0.1:$api_port"
cat > "$work/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: gantry-test
  cluster:
    server: $server
    certificate-authority: $work/ca.crt
users:
- name: gantry-admin
  user:
    client-certificate: $work/admin.crt
    client-key: $work/admin.key
contexts:
- name: gantry-test
  context: {cluster: gantry-test, user: gantry-admin}
current-context: gantry-test
EOF
cat > "$work/env" <<EOF
ETCD_PORT=$etcd_port
API_PORT=$api_port
KCM_PORT=$kcm_port
API_SERVER=$server
KUBECONFIG=$work/kubeconfig
EOF

start() {  # name args... : runs bin_dir/name in its own session, logs to work/name.log
  local name="$1"; shift
  printf '%s\0' "$bin_dir/$name" "$@" > "$work/$name.argv"   # for restart-apiserver
  setsid "$bin_dir/$name" "$@" > "$work/$name.log" 2>&1 < /dev/null &
  echo $! > "$work/$name.pid"
  started=1
}

wait_for() {  # what seconds pidname cmd... : poll cmd until it succeeds
  local what="$1" secs="$2" pidname="$3" i; shift 3
  for i in $(seq 1 $((secs * 4))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    kill -0 "$(cat "$work/$pidname.pid")" 2>/dev/null || die "$pidname exited while waiting for $what"
    sleep 0.25
  done
  die "timed out after ${secs}s waiting for $what"
}

# --- etcd
start etcd --name default --data-dir "$work/etcd-data" \
  --listen-client-urls "http://127.0.0.1:$etcd_port" \
  --advertise-client-urls "http://127.0.0.1:$etcd_port" \
  --listen-peer-urls "http://127.0.0.1:$etcd_peer_port" \
  --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer_port" \
  --initial-cluster "default=http://127.0.0.1:$etcd_peer_port" \
  --unsafe-no-fsync --log-level warn
wait_for "etcd /health" 30 etcd \
  sh -c "curl -sf http://127.0.0.1:$etcd_port/health | grep -q '\"health\":\"true\"'"
log "etcd up on 127.0.0.1:$etcd_port"

# --- kube-apiserver
start kube-apiserver \
  --etcd-servers "http://127.0.0.1:$etcd_port" \
  --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" \
  --cert-dir "$work/apiserver-certs" \
  --tls-cert-file "$work/serving.crt" --tls-private-key-file "$work/serving.key" \
  --client-ca-file "$work/ca.crt" --token-auth-file "$work/tokens.csv" \
  --authorization-mode RBAC \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --service-account-key-file "$work/sa.pub" \
  --service-account-signing-key-file "$work/sa.key" \
  --service-cluster-ip-range 10.0.0.0/24 \
  --allow-privileged=true \
  --endpoint-reconciler-type none \
  --enable-priority-and-fairness=false \
  --profiling=false ${apiserver_extra[@]+"${apiserver_extra[@]}"}
wait_for "kube-apiserver /readyz" 90 kube-apiserver \
  curl -sf --cacert "$work/ca.crt" --cert "$work/admin.crt" --key "$work/admin.key" \
  "$server/readyz"
log "kube-apiserver ready at $server"

# --- kube-controller-manager (optional)
if [ "$with_kcm" = 1 ]; then
  start kube-controller-manager \
    --kubeconfig "$work/kubeconfig" \
    --authentication-kubeconfig "$work/kubeconfig" \
    --authorization-kubeconfig "$work/kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$kcm_port" \
    --cert-dir "$work/kcm-certs" \
    --leader-elect=false \
    --controllers "$controllers" \
    --service-account-private-key-file "$work/sa.key" \
    --root-ca-file "$work/ca.crt" \
    --use-service-account-credentials=false \
    --profiling=false
  wait_for "kube-controller-manager /healthz" 60 kube-controller-manager \
    curl -skf "https://127.0.0.1:$kcm_port/healthz"
  log "kube-controller-manager healthy (controllers: $controllers)"
fi

trap - EXIT
echo "$work/kubeconfig"
