#!/usr/bin/env bash
# Builds ext-authz-server (hack/ext-authz-server/main.go: an Envoy ext_authz
# gRPC service on grpc-go and go-control-plane's generated types, pinned by
# hack/ext-authz-server/go.mod + go.sum, fetched through the Go module proxy)
# into a cache outside the repo:
#   ${GANTRY_TESTBIN_DIR:-$HOME/.cache/gantry/testbin}/ext-authz-server-<key>/ext-authz-server
# The key covers main.go, go.mod, go.sum and the Go version; a second run is instant.
# The last line on stdout is the binary's path:  s=$(hack/ext-authz-server.sh | tail -1)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mod_dir="$here/ext-authz-server"
log() { echo "ext-authz-server: $*" >&2; }
command -v go >/dev/null 2>&1 || { log "go not found on PATH"; exit 1; }

sum="$(cat "$mod_dir/main.go" "$mod_dir/go.mod" "$mod_dir/go.sum" | sha256sum | cut -c1-12)"
key="$(go env GOVERSION)_${sum}"
out="${GANTRY_TESTBIN_DIR:-$HOME/.cache/gantry/testbin}/ext-authz-server-$key"

if [ ! -x "$out/ext-authz-server" ]; then
  go_dir="${GANTRY_GO_DIR:-$HOME/.cache/gantry/go}"
  export GOPATH="$go_dir" GOMODCACHE="$go_dir/mod" GOCACHE="$go_dir/build"
  export GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false" GOMAXPROCS=2 CGO_ENABLED=0
  mkdir -p "$out"
  log "building ext-authz-server into $out"
  (cd "$mod_dir" && nice -n 19 go build -p 2 -trimpath -ldflags="-s -w" -o "$out/ext-authz-server.tmp" .)
  mv -f "$out/ext-authz-server.tmp" "$out/ext-authz-server"
fi
echo "$out/ext-authz-server"
