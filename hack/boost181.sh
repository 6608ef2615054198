#!/usr/bin/env bash
# Boost 1.81 headers for the io_uring experiment (docs/BENCHMARKS.md, "io_uring
# against epoll"), without installing them: Debian's libboost1.81-dev conflicts
# with the installed 1.74 headers that cpprestsdk (the controller) is built
# against. Downloads the package with `apt-get download` (the apt sources the
# machine already uses) into a cache outside the repo, unpacks it with dpkg -x:
#   ${GANTRY_BOOST181_DIR:-$HOME/.cache/gantry/boost-1.81}/<version>/usr/include
# The package carries every Boost header (no header-only part is split out);
# Boost.System is header-only since 1.69, so nothing from 1.81 is linked.
# A second run is instant. The last line on stdout is the include directory:
#   cmake ... -DGANTRY_IO_URING=ON -DGANTRY_BOOST_INCLUDE=$(hack/boost181.sh | tail -1)
set -euo pipefail
log() { echo "boost181: $*" >&2; }
pkg=libboost1.81-dev
ver=$(apt-cache policy "$pkg" 2>/dev/null | awk '/Candidate:/ { print $2 }')
if [ -z "$ver" ] || [ "$ver" = "(none)" ]; then
  log "apt knows no $pkg (Debian 12's sources carry it)"
  exit 1
fi
out="${GANTRY_BOOST181_DIR:-$HOME/.cache/gantry/boost-1.81}/$ver"
inc="$out/usr/include"
if [ ! -f "$inc/boost/version.hpp" ]; then
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/gantry-boost181.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  log "downloading $pkg $ver"
  # apt-get download writes into the current directory; _apt cannot write to a
  # root-owned mktemp dir, so the download may run unsandboxed (a warning only).
  (cd "$tmp" && apt-get download -q "$pkg=$ver" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2 || true)
  deb=$(ls "$tmp"/*.deb 2>/dev/null | head -1)
  [ -n "$deb" ] || { log "apt-get download $pkg=$ver produced no .deb"; exit 1; }
  mkdir -p "$tmp/root"
  dpkg -x "$deb" "$tmp/root"
  grep -q 'define BOOST_VERSION 1081' "$tmp/root/usr/include/boost/version.hpp" \
    || { log "$deb does not hold Boost 1.81 headers"; exit 1; }
  mkdir -p "$(dirname "$out")"
  rm -rf "$out"
  mv "$tmp/root" "$out"
fi
echo "$inc"
