#!/usr/bin/env bash
# Builds the pinned Kubernetes test binaries that Gantry's integration and e2e
# tests run against: kube-apiserver, kube-controller-manager, etcd, kube-proxy
# (the Gateway API conformance run's Services) and helm.
#
# Sources are the Go modules pinned by hack/testbin/go.mod + go.sum (fetched via
# the Go module proxy, nothing else is downloaded). Binaries land in a cache
# outside the repo:
#   ${GANTRY_TESTBIN_DIR:-$HOME/.cache/gantry/testbin}/<version-key>/
# and Go's own caches in ${GANTRY_GO_DIR:-$HOME/.cache/gantry/go}.
#
# Invariants:
# - The version key is derived from go.mod, go.sum, the Go version and the
#   build recipe revision (bumped by hand when build flags change), so any
#   pin change lands in a new directory; a directory is only used once its
#   stamp file (holding the key) exists and all four binaries are present.
# - A second run is instant: no go command runs when the stamp matches.
# - The last line on stdout is always the bin directory:
#     dir=$(hack/testbin.sh | tail -1)
#
# Usage: hack/testbin.sh [--force] [--smoke]
#   --force  rebuild even when the stamp matches
#   --smoke  afterwards run hack/testbin/smoke.sh (etcd + apiserver + kcm + kubectl)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mod_dir="$here/testbin"

force=0
smoke=0
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    --smoke) smoke=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "testbin: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

log() { echo "testbin: $*"; }
die() { echo "testbin: error: $*" >&2; exit 1; }

command -v go >/dev/null 2>&1 || die "go not found on PATH (need Go >= 1.24)"
command -v sha256sum >/dev/null 2>&1 || die "sha256sum not found"

# Version pins, read from go.mod (no network, no go command).
modver() { awk -v m="$1" '$1 == m && $2 ~ /^v/ && $3 != "=>" { print $2; exit }' "$mod_dir/go.mod"; }
k8s_ver="$(modver k8s.io/kubernetes)"
etcd_ver="$(modver go.etcd.io/etcd/server/v3)"
helm_ver="$(modver helm.sh/helm/v3)"
[ -n "$k8s_ver" ] && [ -n "$etcd_ver" ] && [ -n "$helm_ver" ] || die "cannot read pins from $mod_dir/go.mod"

go_ver="$(go env GOVERSION)"
sum="$(cat "$mod_dir/go.mod" "$mod_dir/go.sum" | sha256sum | cut -c1-12)"
# Bump recipe when the build flags below change, so old caches are not reused.
recipe=r2
key="k8s-${k8s_ver}_etcd-${etcd_ver}_helm-${helm_ver}_${go_ver}_${recipe}-${sum}"

root="${GANTRY_TESTBIN_DIR:-$HOME/.cache/gantry/testbin}"
out="$root/$key"
bins=(etcd kube-apiserver kube-controller-manager kube-proxy helm)

report_kubectl() {
  if command -v kubectl >/dev/null 2>&1; then
    log "kubectl (Debian, not built here): $(kubectl version --client 2>/dev/null | head -1)"
  else
    log "kubectl not found: run hack/install-deps.sh"
  fi
}

have_all() {
  [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$key" ] || return 1
  local b
  for b in "${bins[@]}"; do [ -x "$out/$b" ] || return 1; done
}

if [ "$force" = 0 ] && have_all; then
  log "up to date: $key"
  report_kubectl
  if [ "$smoke" = 1 ]; then "$mod_dir/smoke.sh" "$out" >&2; fi
  echo "$out"
  exit 0
fi

# Go environment: caches outside the repo, local toolchain only, 2 cores at most,
# go.sum is the truth (-mod=readonly fails rather than silently re-resolving).
go_dir="${GANTRY_GO_DIR:-$HOME/.cache/gantry/go}"
export GOPATH="$go_dir"
export GOMODCACHE="$go_dir/mod"
export GOCACHE="$go_dir/build"
export GOTOOLCHAIN=local
export GOFLAGS="-mod=readonly -buildvcs=false"
export GOMAXPROCS=2
export CGO_ENABLED=0
mkdir -p "$GOMODCACHE" "$GOCACHE" "$root"

log "building $key"
log "  kubernetes $k8s_ver, etcd $etcd_ver, helm $helm_ver, $go_ver"
log "  go caches in $go_dir, output in $out"

tmp="$(mktemp -d "$root/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

t_all=$(date +%s)
t0=$(date +%s)
(cd "$mod_dir" && nice -n 19 go mod download)
log "  go mod download: $(( $(date +%s) - t0 ))s"

# Kubernetes binaries report their version from these variables (what the
# upstream build sets via hack/lib/version.sh); without them they say v0.0.0.
k8s_minor="${k8s_ver#v1.}"; k8s_minor="${k8s_minor%%.*}"
k8s_x=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  k8s_x+=" -X $pkg.gitVersion=$k8s_ver -X $pkg.gitMajor=1 -X $pkg.gitMinor=$k8s_minor"
  k8s_x+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
etcd_x=""   # etcd's version is a constant in go.etcd.io/etcd/api/v3/version
# helm: its own version, plus the default Kubernetes version that `helm template`
# and `helm lint` assume (helm's Makefile derives it from client-go; unset, it is 1.20).
helm_x="-X helm.sh/helm/v3/internal/version.version=$helm_ver"
helm_x+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
  helm_x+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$k8s_minor"
done

build() {  # name package extra-ldflags
  local name="$1" pkg="$2" extra="$3" t
  log "  building $name ($pkg) ..."
  t=$(date +%s)
  (cd "$mod_dir" && nice -n 19 go build -p 2 -trimpath -ldflags="-s -w $extra" -o "$tmp/$name" "$pkg")
  log "  built $name in $(( $(date +%s) - t ))s ($(du -h "$tmp/$name" | cut -f1))"
}

build etcd go.etcd.io/etcd/server/v3 "$etcd_x"
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver "$k8s_x"
build kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager "$k8s_x"
build kube-proxy k8s.io/kubernetes/cmd/kube-proxy "$k8s_x"
build helm helm.sh/helm/v3/cmd/helm "$helm_x"

mkdir -p "$out"
for b in "${bins[@]}"; do mv -f "$tmp/$b" "$out/$b"; done
echo "$key" > "$out/.stamp"
log "total build time $(( $(date +%s) - t_all ))s, cache $(du -sh "$out" | cut -f1)"
for b in etcd kube-apiserver kube-controller-manager kube-proxy; do
  log "  $b: $("$out/$b" --version 2>/dev/null | head -1)"
done
log "  helm: $("$out/helm" version --short 2>/dev/null)"
report_kubectl
if [ "$smoke" = 1 ]; then "$mod_dir/smoke.sh" "$out" >&2; fi
echo "$out"
