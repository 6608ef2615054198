#!/usr/bin/env bash
# Builds oauth2-proxy, the authorization service the extAuth integration tests
# put behind Gantry (pinned by hack/oauth2-proxy/go.mod + go.sum, fetched
# through the Go module proxy), into a cache outside the repo:
#   ${GANTRY_TESTBIN_DIR:-$HOME/.cache/gantry/testbin}/oauth2-proxy-<key>/oauth2-proxy
# The key covers go.mod, go.sum and the Go version; a second run is instant.
# The last line on stdout is the binary's path:  o2p=$(hack/oauth2-proxy.sh | tail -1)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mod_dir="$here/oauth2-proxy"
log() { echo "oauth2-proxy: $*" >&2; }
command -v go >/dev/null 2>&1 || { log "go not found on PATH"; exit 1; }

ver="$(awk '{ for (i = 1; i < NF; i++) if ($i == "github.com/oauth2-proxy/oauth2-proxy/v7") { print $(i + 1); exit } }' "$mod_dir/go.mod")"
[ -n "$ver" ] || { log "cannot read the oauth2-proxy pin from $mod_dir/go.mod"; exit 1; }
sum="$(cat "$mod_dir/go.mod" "$mod_dir/go.sum" | sha256sum | cut -c1-12)"
key="${ver}_$(go env GOVERSION)_${sum}"
out="${GANTRY_TESTBIN_DIR:-$HOME/.cache/gantry/testbin}/oauth2-proxy-$key"

if [ ! -x "$out/oauth2-proxy" ]; then
  go_dir="${GANTRY_GO_DIR:-$HOME/.cache/gantry/go}"
  export GOPATH="$go_dir" GOMODCACHE="$go_dir/mod" GOCACHE="$go_dir/build"
  export GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false" GOMAXPROCS=2 CGO_ENABLED=0
  mkdir -p "$out"
  log "building oauth2-proxy $ver into $out"
  (cd "$mod_dir" && nice -n 19 go build -p 2 -trimpath \
    -ldflags="-s -w -X github.com/oauth2-proxy/oauth2-proxy/v7/pkg/version.VERSION=$ver" \
    -o "$out/oauth2-proxy.tmp" github.com/oauth2-proxy/oauth2-proxy/v7)
  mv -f "$out/oauth2-proxy.tmp" "$out/oauth2-proxy"
fi
echo "$out/oauth2-proxy"
