#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test:
#   0. (in the background while step 1 builds) hack/testbin.sh: pinned kube-apiserver, etcd, kube-controller-manager, helm
#      (built once from their Go modules into ~/.cache/gantry/testbin), and
#      hack/h2spec.sh: the HTTP/2 conformance suite, into the same cache;
#      hack/grpc-interop.sh: grpc-go's interop client and server, into the same cache;
#      hack/otelcol.sh: an OpenTelemetry Collector for the tracing tests, into the same cache;
#      hack/oauth2-proxy.sh: oauth2-proxy, the extAuth tests' authorization service, likewise;
#   1. unit, integration, install and e2e tests (ctest labels unit, integration,
#      install, e2e) on the RelWithDebInfo build (build/), then the official
#      Gateway API conformance suite (label conformance, tests/conformance/: fails
#      on any failure not in tests/conformance/known_failures.txt);
#   2. the Release build (build-release/, -O3 -DNDEBUG): the binaries the integration
#      tests start (target integration-binaries) pass them again, then the training run of
#      the profile-guided build (hack/pgo-train.sh; the image is built with hack/pgo.sh);
#   3. the unit tests again on the Debug build under AddressSanitizer + UndefinedBehaviorSanitizer;
#   4. every libFuzzer target over its seed corpus plus a bounded number of new inputs.
# Every build type a user may pick is built here, with warnings as errors
# (-DGANTRY_WERROR=ON): the project controls this compiler. A user's own cmake
# build warns without failing (GANTRY_WERROR defaults to OFF).
# Exits non-zero on any failure. Set GANTRY_SKIP_CONFORMANCE=1, GANTRY_SKIP_RELEASE=1, GANTRY_SKIP_SANITIZE=1 or
# GANTRY_SKIP_FUZZ=1 to skip a stage locally (CI runs them all).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
start=$(date +%s)
jobs=${GANTRY_JOBS:-$(nproc)}

stage() { echo; echo "==> $* ($(( $(date +%s) - start )) s)"; }

stage "dependencies"
bash hack/install-deps.sh
# The Go-built test binaries (module downloads and Go compiles, ~20 min on a new machine) are
# built in the background while the first C++ build runs: a brand-new machine spends much of
# that time waiting on the module proxy, which the compiler can use. Their output goes to
# build-go.log; the tests start only once both are done.
stage "test binaries (Go, in the background: build-go.log) and the build (RelWithDebInfo) in build/"
gobin_dir=$(mktemp -d)
(
  set -euo pipefail
  bash hack/testbin.sh | tail -1 > "$gobin_dir/testbin"        # kube-apiserver, etcd, kube-controller-manager, helm
  bash hack/h2spec.sh | tail -1 > "$gobin_dir/h2spec"          # h2spec v2.2.1
  bash hack/grpc-interop.sh | tail -1 > "$gobin_dir/grpc"      # grpc-go v1.85.0 interop client + server
  bash hack/otelcol.sh | tail -1 > "$gobin_dir/otelcol"        # OpenTelemetry Collector (OTLP receiver, file exporter)
  bash hack/oauth2-proxy.sh | tail -1 > "$gobin_dir/oauth2"    # oauth2-proxy v7.15.6 (extAuth tests)
  bash hack/ext-authz-server.sh | tail -1 > "$gobin_dir/extauthz"  # an Envoy ext_authz gRPC service (extAuth.grpc tests)
) > build-go.log 2>&1 &
go_pid=$!

launcher=()
if command -v ccache >/dev/null 2>&1; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache); fi

failed=()
failed_tests=()
# ctest_stage NAME BUILD_DIR CTEST_ARGS...: runs ctest; on failure records the stage and the
# names of its failed tests, which the last lines of the run repeat (a CI log is often cut).
ctest_stage() {
  local name="$1" dir="$2"; shift 2
  if ! ctest --test-dir "$dir" --output-on-failure "$@"; then
    failed+=("$name")
    local list="$dir/Testing/Temporary/LastTestsFailed.log"
    failed_tests+=("$name: $( [ -f "$list" ] && cut -d: -f2- "$list" | tr '\n' ' ')")
  fi
}

cmake -S . -B build -G Ninja "${launcher[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGANTRY_WERROR=ON >/dev/null
build_rc=0
ninja -C build -j "$jobs" || build_rc=$?
stage "waiting for the Go test binaries"
go_rc=0
wait "$go_pid" || go_rc=$?
if [ "$go_rc" != 0 ]; then tail -50 build-go.log; echo "the Go test binaries failed to build (build-go.log)"; exit 1; fi
[ "$build_rc" = 0 ] || exit "$build_rc"
GANTRY_TESTBIN=$(cat "$gobin_dir/testbin"); GANTRY_H2SPEC=$(cat "$gobin_dir/h2spec")
GANTRY_GRPC_INTEROP=$(cat "$gobin_dir/grpc"); GANTRY_OTELCOL=$(cat "$gobin_dir/otelcol")
GANTRY_OAUTH2_PROXY=$(cat "$gobin_dir/oauth2"); GANTRY_EXT_AUTHZ_SERVER=$(cat "$gobin_dir/extauthz")
export GANTRY_TESTBIN GANTRY_H2SPEC GANTRY_GRPC_INTEROP GANTRY_OTELCOL GANTRY_OAUTH2_PROXY GANTRY_EXT_AUTHZ_SERVER
rm -rf "$gobin_dir"
echo "test binaries in $GANTRY_TESTBIN"
echo "h2spec: $GANTRY_H2SPEC"
echo "grpc interop: $GANTRY_GRPC_INTEROP"
echo "otelcol: $GANTRY_OTELCOL"
echo "oauth2-proxy: $GANTRY_OAUTH2_PROXY"
echo "ext-authz-server: $GANTRY_EXT_AUTHZ_SERVER"

stage "unit, integration and install tests"
ctest_stage unit build -j "$jobs" -L unit
ctest_stage integration build -j 2 -L integration
ctest_stage install build -L install
stage "pod churn end to end (short version; the long one is hack/bench.sh churn)"
ctest_stage e2e build -L e2e
if [ "${GANTRY_SKIP_CONFORMANCE:-0}" != 1 ]; then
  stage "Gateway API conformance (the official suite, tests/conformance; ~5 min, suite built once into ~/.cache)"
  ctest_stage conformance build -L conformance
fi

if [ "${GANTRY_SKIP_RELEASE:-0}" != 1 ]; then
  stage "Release build (build-release/) and the integration tests on its binaries"
  cmake -S . -B build-release -G Ninja "${launcher[@]}" -DCMAKE_BUILD_TYPE=Release -DGANTRY_WERROR=ON >/dev/null
  ninja -C build-release -j "$jobs" integration-binaries
  ctest_stage release-integration build-release -j 2 -L integration -E demo_smoke
  stage "the profile-guided build's training run (hack/pgo-train.sh) on the Release binaries"
  bash hack/pgo-train.sh build-release/bin || failed+=("pgo-train")
fi

if [ "${GANTRY_SKIP_SANITIZE:-0}" != 1 ]; then
  stage "unit tests under ASan + UBSan (build-asan/)"
  cmake -S . -B build-asan -G Ninja "${launcher[@]}" -DCMAKE_BUILD_TYPE=Debug \
    -DGANTRY_WERROR=ON -DGANTRY_SANITIZE=ON -DGANTRY_UNIT_ONLY=ON >/dev/null
  ninja -C build-asan -j "$jobs"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest_stage sanitize build-asan -j "$jobs" -L unit
fi

if [ "${GANTRY_SKIP_FUZZ:-0}" != 1 ]; then
  stage "fuzz targets (build-fuzz/, clang + libFuzzer)"
  CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja "${launcher[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DGANTRY_WERROR=ON -DGANTRY_FUZZ=ON >/dev/null
  ninja -C build-fuzz -j "$jobs"
  ctest_stage fuzz build-fuzz -j "$jobs" -L fuzz
fi

stage "done"
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED stages: ${failed[*]}"
  for t in "${failed_tests[@]}"; do echo "  failed tests in $t"; done
  exit 1
fi
echo "all stages passed"
