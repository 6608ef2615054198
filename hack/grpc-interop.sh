#!/usr/bin/env bash
# Builds grpc-go's interop client and server (the gRPC interoperability suite,
# pinned by hack/grpc-interop/go.mod + go.sum, fetched through the Go module
# proxy) and health_server (hack/grpc-interop/healthserver: grpc-go's own
# grpc.health.v1 service, for the gRPC health-check tests) into a cache
# outside the repo:
#   ${GANTRY_TESTBIN_DIR:-$HOME/.cache/gantry/testbin}/grpc-interop-<key>/{interop_client,interop_server,health_server}
# The key covers go.mod, go.sum, healthserver/main.go and the Go version; a
# second run is instant.
# The last line on stdout is the binaries' directory:
#   dir=$(hack/grpc-interop.sh | tail -1)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mod_dir="$here/grpc-interop"
log() { echo "grpc-interop: $*" >&2; }
command -v go >/dev/null 2>&1 || { log "go not found on PATH"; exit 1; }

ver="$(awk '{ for (i = 1; i < NF; i++) if ($i == "google.golang.org/grpc") { print $(i + 1); exit } }' "$mod_dir/go.mod")"
[ -n "$ver" ] || { log "cannot read the grpc-go pin from $mod_dir/go.mod"; exit 1; }
sum="$(cat "$mod_dir/go.mod" "$mod_dir/go.sum" "$mod_dir/healthserver/main.go" | sha256sum | cut -c1-12)"
key="${ver}_$(go env GOVERSION)_${sum}"
out="${GANTRY_TESTBIN_DIR:-$HOME/.cache/gantry/testbin}/grpc-interop-$key"

if [ ! -x "$out/interop_client" ] || [ ! -x "$out/interop_server" ] || [ ! -x "$out/health_server" ]; then
  go_dir="${GANTRY_GO_DIR:-$HOME/.cache/gantry/go}"
  export GOPATH="$go_dir" GOMODCACHE="$go_dir/mod" GOCACHE="$go_dir/build"
  export GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false" GOMAXPROCS=2 CGO_ENABLED=0
  mkdir -p "$out"
  log "building grpc-go $ver interop client and server into $out"
  for bin in client server; do
    (cd "$mod_dir" && nice -n 19 go build -p 2 -trimpath -ldflags="-s -w" \
      -o "$out/interop_$bin.tmp" "google.golang.org/grpc/interop/$bin")
    mv -f "$out/interop_$bin.tmp" "$out/interop_$bin"
  done
  (cd "$mod_dir" && nice -n 19 go build -p 2 -trimpath -ldflags="-s -w" -o "$out/health_server.tmp" ./healthserver)
  mv -f "$out/health_server.tmp" "$out/health_server"
fi
echo "$out"
