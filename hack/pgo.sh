#!/usr/bin/env bash
# hack/pgo.sh BUILD_DIR [TARGET...]: a profile-guided Release build (GCC).
#
#   1. BUILD_DIR-pgogen/: gantry-proxy and the test backends built to count
#      what runs (-DGANTRY_PGO=generate);
#   2. hack/pgo-train.sh on them: HTTP/1.1 and h2c traffic through the proxy;
#   3. BUILD_DIR/ (removed first): TARGETs (default gantry-proxy) built with
#      those counts (-DGANTRY_PGO=use): hot paths laid out together and
#      inlined, cold ones moved aside.
#
# The image is built this way (Dockerfile), and `hack/bench.sh h2` measures
# it beside the plain Release build (docs/BENCHMARKS.md, "Profile-guided
# build"). Extra cmake arguments for step 3: GANTRY_PGO_CMAKE_ARGS (one string,
# split on spaces). The counts are kept in BUILD_DIR-pgo-profile/.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[ $# -ge 1 ] || { echo "usage: hack/pgo.sh BUILD_DIR [TARGET...]" >&2; exit 2; }
out=$(realpath -m "$1")
shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(gantry-proxy)
gen=$out-pgogen
prof=$out-pgo-profile
jobs=${GANTRY_JOBS:-$(nproc)}
read -r -a extra <<<"${GANTRY_PGO_CMAKE_ARGS:-}"

echo "pgo: instrumented build in $gen"
cmake -S "$repo" -B "$gen" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGANTRY_BUILD_TESTS=OFF \
  -DGANTRY_PGO=generate -DGANTRY_PGO_DIR="$prof" >/dev/null
ninja -C "$gen" -j "$jobs" gantry-proxy gantry-echo gantry-h2-echo >/dev/null
rm -rf "$prof"
mkdir -p "$prof"
echo "pgo: training run"
bash "$repo/hack/pgo-train.sh" "$gen/bin"
[ -n "$(find "$prof" -name '*.gcda' -print -quit)" ] || { echo "pgo: the training wrote no counts to $prof" >&2; exit 1; }
echo "pgo: optimised build in $out"
# Afresh: ninja does not know that every object depends on the counts.
rm -rf "$out"
cmake -S "$repo" -B "$out" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGANTRY_BUILD_TESTS=OFF \
  -DGANTRY_PGO=use -DGANTRY_PGO_DIR="$prof" "${extra[@]}" >/dev/null
# ccache would key these objects by a counts file it cannot find under the
# prefix-mapped names: compile them afresh.
CCACHE_DISABLE=1 ninja -C "$out" -j "$jobs" "${targets[@]}" >/dev/null
echo "pgo: built ${targets[*]} in $out"
