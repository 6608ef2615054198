#!/usr/bin/env bash
# Builds ghz, the gRPC load generator (pinned by hack/ghz/go.mod + go.sum),
# and hack/grpc-bench-server (grpc-go's interop TestService with server
# reflection, pinned by its go.mod + go.sum), both fetched through the Go
# module proxy, into a cache outside the repo:
#   ${GANTRY_TESTBIN_DIR:-$HOME/.cache/gantry/testbin}/ghz-<key>/{ghz,grpc-bench-server}
# For hack/bench.sh h2 only (never hack/test.sh). The key covers both modules'
# go.mod, go.sum, the server's source and the Go version; a second run is
# instant. The last line on stdout is the binaries' directory.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
log() { echo "ghz: $*" >&2; }
command -v go >/dev/null 2>&1 || { log "go not found on PATH"; exit 1; }

ver="$(awk '{ for (i = 1; i < NF; i++) if ($i == "github.com/bojand/ghz") { print $(i + 1); exit } }' "$here/ghz/go.mod")"
[ -n "$ver" ] || { log "cannot read the ghz pin from $here/ghz/go.mod"; exit 1; }
sum="$(cat "$here/ghz/go.mod" "$here/ghz/go.sum" "$here/grpc-bench-server/go.mod" "$here/grpc-bench-server/go.sum" \
  "$here/grpc-bench-server/main.go" | sha256sum | cut -c1-12)"
key="${ver}_$(go env GOVERSION)_${sum}"
out="${GANTRY_TESTBIN_DIR:-$HOME/.cache/gantry/testbin}/ghz-$key"

if [ ! -x "$out/ghz" ] || [ ! -x "$out/grpc-bench-server" ]; then
  go_dir="${GANTRY_GO_DIR:-$HOME/.cache/gantry/go}"
  export GOPATH="$go_dir" GOMODCACHE="$go_dir/mod" GOCACHE="$go_dir/build"
  export GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false" GOMAXPROCS=2 CGO_ENABLED=0
  mkdir -p "$out"
  log "building ghz $ver and the gRPC bench server into $out"
  (cd "$here/ghz" && nice -n 19 go build -p 2 -trimpath -ldflags="-s -w" -o "$out/ghz.tmp" \
    github.com/bojand/ghz/cmd/ghz)
  (cd "$here/grpc-bench-server" && nice -n 19 go build -p 2 -trimpath -ldflags="-s -w" \
    -o "$out/grpc-bench-server.tmp" .)
  mv -f "$out/ghz.tmp" "$out/ghz"
  mv -f "$out/grpc-bench-server.tmp" "$out/grpc-bench-server"
fi
echo "$out"
