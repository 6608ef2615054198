#!/usr/bin/env bash
# Builds gantry-otelcol, an OpenTelemetry Collector with only the OTLP
# receiver and the contrib file exporter (hack/otelcol/main.go, pinned by
# hack/otelcol/go.mod + go.sum, fetched through the Go module proxy), into a
# cache outside the repo:
#   ${GANTRY_TESTBIN_DIR:-$HOME/.cache/gantry/testbin}/otelcol-<key>/otelcol
# The key covers main.go, go.mod, go.sum and the Go version; a second run is
# instant. The last line on stdout is the binary's path:
#   otelcol=$(hack/otelcol.sh | tail -1)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mod_dir="$here/otelcol"
log() { echo "otelcol: $*" >&2; }
command -v go >/dev/null 2>&1 || { log "go not found on PATH"; exit 1; }

ver="$(awk '$1 == "go.opentelemetry.io/collector/otelcol" { print $2; exit }' "$mod_dir/go.mod")"
[ -n "$ver" ] || { log "cannot read the collector pin from $mod_dir/go.mod"; exit 1; }
sum="$(cat "$mod_dir/main.go" "$mod_dir/go.mod" "$mod_dir/go.sum" | sha256sum | cut -c1-12)"
key="${ver}_$(go env GOVERSION)_${sum}"
out="${GANTRY_TESTBIN_DIR:-$HOME/.cache/gantry/testbin}/otelcol-$key"

if [ ! -x "$out/otelcol" ]; then
  go_dir="${GANTRY_GO_DIR:-$HOME/.cache/gantry/go}"
  export GOPATH="$go_dir" GOMODCACHE="$go_dir/mod" GOCACHE="$go_dir/build"
  export GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false" GOMAXPROCS=2 CGO_ENABLED=0
  mkdir -p "$out"
  log "building the collector $ver into $out"
  (cd "$mod_dir" && nice -n 19 go build -p 2 -trimpath -ldflags="-s -w" -o "$out/otelcol.tmp" .)
  mv -f "$out/otelcol.tmp" "$out/otelcol"
fi
echo "$out/otelcol"
