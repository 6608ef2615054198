#!/usr/bin/env bash
# Smoke test of the binaries built by hack/testbin.sh, through
# hack/testbin/start-control-plane.sh:
#   1. etcd + kube-apiserver: /readyz, `kubectl get ns`, `kubectl api-resources`.
#   2. the same plus kube-controller-manager: a Deployment + Service created with
#      kubectl must get a ReplicaSet, Pods and an EndpointSlice for the Service.
# Each phase stops its control plane and checks that none of its processes is
# left; temporary work dirs are removed on exit.
#
# Usage: hack/testbin/smoke.sh [BIN_DIR]   (default: output of hack/testbin.sh)
# Exit status 0 and a final "smoke: 2 passed, 0 failed" line when all is well.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bin_dir="${1:-$("$here/../testbin.sh" | tail -1)}"
cp="$here/start-control-plane.sh"
kubectl_bin="$(command -v kubectl)" || { echo "smoke: kubectl not found" >&2; exit 1; }

tmp="$(mktemp -d /tmp/gantry-testbin-smoke.XXXXXX)"
cleanup() {
  "$cp" stop "$tmp/plain" 2>/dev/null || true
  "$cp" stop "$tmp/kcm" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

passed=0
failed=0
say() { echo "smoke: $*"; }

# wait_until SECONDS cmd... : poll until cmd prints something non-empty.
wait_until() {
  local secs="$1" i out; shift
  for i in $(seq 1 $((secs * 2))); do
    out="$("$@" 2>/dev/null || true)"
    if [ -n "$out" ]; then echo "$out"; return 0; fi
    sleep 0.5
  done
  return 1
}

# The pids a work dir names must all be gone after `stop`.
check_stopped() {  # workdir pids...
  local w="$1" p; shift
  "$cp" stop "$w"
  for p in "$@"; do
    if kill -0 "$p" 2>/dev/null; then say "process $p still alive after stop"; return 1; fi
  done
  if ls "$w"/*.pid >/dev/null 2>&1; then say "pid files left in $w"; return 1; fi
}

phase_plain() {
  local w="$tmp/plain" kc t pids
  t=$(date +%s)
  kc="$("$cp" --bin-dir "$bin_dir" "$w" | tail -1)"
  say "control plane up in $(( $(date +%s) - t ))s, kubeconfig $kc"
  pids="$(cat "$w"/*.pid)"
  local k=("$kubectl_bin" --kubeconfig "$kc")
  "${k[@]}" version
  "${k[@]}" get ns
  "${k[@]}" get ns default -o name | grep -qx namespace/default
  "${k[@]}" api-resources | head
  "${k[@]}" api-resources -o name | grep -qx deployments.apps
  # the static admin token authenticates too
  curl -sf --cacert "$w/ca.crt" -H "Authorization: Bearer $(cat "$w/admin.token")" \
    "$(. "$w/env" && echo "$API_SERVER")/api/v1/namespaces/default" | grep -q '"name": "default"'
  # shellcheck disable=SC2086
  check_stopped "$w" $pids
}

phase_kcm() {
  local w="$tmp/kcm" kc t pids rs
  t=$(date +%s)
  kc="$("$cp" --with-kcm --bin-dir "$bin_dir" "$w" | tail -1)"
  say "control plane + kcm up in $(( $(date +%s) - t ))s"
  pids="$(cat "$w"/*.pid)"
  local k=("$kubectl_bin" --kubeconfig "$kc")
  # The ServiceAccount admission plugin rejects pods until the serviceaccount
  # controller has made the namespace's default ServiceAccount.
  wait_until 60 "${k[@]}" get serviceaccount default -o name >/dev/null
  "${k[@]}" create deployment smoke --image=registry.invalid/smoke:1 --replicas=2
  "${k[@]}" expose deployment smoke --port=80 --target-port=8080
  rs="$(wait_until 60 "${k[@]}" get rs -l app=smoke -o name)" || { say "no ReplicaSet"; return 1; }
  say "ReplicaSet: $rs"
  wait_until 60 sh -c "'$kubectl_bin' --kubeconfig '$kc' get pods -l app=smoke -o name \
    | wc -l | grep -qx 2 && echo ok" >/dev/null || { say "pods not created"; return 1; }
  "${k[@]}" get pods -l app=smoke
  wait_until 60 "${k[@]}" get endpointslices -l kubernetes.io/service-name=smoke -o name \
    >/dev/null || { say "no EndpointSlice"; return 1; }
  "${k[@]}" get endpointslices -l kubernetes.io/service-name=smoke
  # shellcheck disable=SC2086
  check_stopped "$w" $pids
}

for phase in phase_plain phase_kcm; do
  say "--- $phase"
  # not `if ( $phase )`: errexit is ignored inside an if condition.
  set +e
  ( set -e; $phase )
  rc=$?
  set -e
  if [ "$rc" = 0 ]; then
    passed=$((passed + 1)); say "$phase ok"
  else
    failed=$((failed + 1)); say "$phase FAILED"
  fi
done
say "$passed passed, $failed failed"
[ "$failed" = 0 ]
