#!/usr/bin/env bash
# Builds the Gateway API conformance suite (a test binary of conformance_test.go,
# which calls the suite's own entry point) and its echo backend echo-basic, both
# from the module version pinned by go.mod/go.sum (the Go module proxy is the
# only source). Binaries are cached like hack/testbin.sh's:
#   ${GANTRY_CONFORMANCE_DIR:-$HOME/.cache/gantry/conformance}/<key>/{conformance.test,echo-basic}
# The key covers go.mod, go.sum, conformance_test.go and the Go version; a run
# whose stamp matches runs no go command. The last stdout line is the directory.
# Also prints, on stderr, the module's directory (CRDs are read from it).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
command -v go >/dev/null 2>&1 || { echo "conformance: go not found" >&2; exit 1; }
go_ver="$(go env GOVERSION)"
sum="$(cat "$here/go.mod" "$here/go.sum" "$here/conformance_test.go" | sha256sum | cut -c1-12)"
ver="$(grep -Eo "sigs.k8s.io/gateway-api/conformance v[^ ]+" "$here/go.mod" | head -1 | cut -d" " -f2)"
key="gateway-api-${ver}_${go_ver}_r1-${sum}"
root="${GANTRY_CONFORMANCE_DIR:-$HOME/.cache/gantry/conformance}"
out="$root/$key"
go_dir="${GANTRY_GO_DIR:-$HOME/.cache/gantry/go}"
export GOPATH="$go_dir" GOMODCACHE="$go_dir/mod" GOCACHE="$go_dir/build" GOTOOLCHAIN=local
export GOFLAGS="-mod=readonly -buildvcs=false" GOMAXPROCS=2 CGO_ENABLED=0
if ! { [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$key" ] && [ -x "$out/conformance.test" ] && [ -x "$out/echo-basic" ]; }; then
  echo "conformance: building $key" >&2
  mkdir -p "$root"
  tmp="$(mktemp -d "$root/.build.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  t0=$(date +%s)
  (cd "$here" && nice -n 19 go mod download)
  (cd "$here" && nice -n 19 go build -p 2 -trimpath -ldflags "-s -w" -o "$tmp/echo-basic" \
     sigs.k8s.io/gateway-api/conformance/echo-basic)
  (cd "$here" && nice -n 19 go test -p 2 -trimpath -ldflags "-s -w" -c -o "$tmp/conformance.test" .)
  echo "$key" > "$tmp/.stamp"
  rm -rf "$out"
  mv "$tmp" "$out"
  trap - EXIT
  echo "conformance: built in $(( $(date +%s) - t0 ))s" >&2
fi
(cd "$here" && go list -m -f '{{.Dir}}' sigs.k8s.io/gateway-api) >&2
echo "$out"
