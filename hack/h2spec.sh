#!/usr/bin/env bash
# Builds h2spec, the HTTP/2 conformance suite (pinned by hack/h2spec/go.mod +
# go.sum, fetched through the Go module proxy), into a cache outside the repo:
#   ${GANTRY_TESTBIN_DIR:-$HOME/.cache/gantry/testbin}/h2spec-<key>/h2spec
# The key covers go.mod, go.sum and the Go version; a second run is instant.
# The last line on stdout is the binary's path:  h2spec=$(hack/h2spec.sh | tail -1)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mod_dir="$here/h2spec"
log() { echo "h2spec: $*" >&2; }
command -v go >/dev/null 2>&1 || { log "go not found on PATH"; exit 1; }

ver="$(awk '{ for (i = 1; i < NF; i++) if ($i == "github.com/summerwind/h2spec") { print $(i + 1); exit } }' "$mod_dir/go.mod")"
[ -n "$ver" ] || { log "cannot read the h2spec pin from $mod_dir/go.mod"; exit 1; }
sum="$(cat "$mod_dir/go.mod" "$mod_dir/go.sum" | sha256sum | cut -c1-12)"
key="${ver}_$(go env GOVERSION)_${sum}"
out="${GANTRY_TESTBIN_DIR:-$HOME/.cache/gantry/testbin}/h2spec-$key"

if [ ! -x "$out/h2spec" ]; then
  go_dir="${GANTRY_GO_DIR:-$HOME/.cache/gantry/go}"
  export GOPATH="$go_dir" GOMODCACHE="$go_dir/mod" GOCACHE="$go_dir/build"
  export GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false" GOMAXPROCS=2 CGO_ENABLED=0
  mkdir -p "$out"
  log "building h2spec $ver into $out"
  (cd "$mod_dir" && nice -n 19 go build -p 2 -trimpath \
    -ldflags="-s -w -X main.VERSION=${ver%+incompatible}" -o "$out/h2spec.tmp" \
    github.com/summerwind/h2spec/cmd/h2spec)
  mv -f "$out/h2spec.tmp" "$out/h2spec"
fi
echo "$out/h2spec"
