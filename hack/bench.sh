#!/usr/bin/env bash
# Runs the benchmarks in tests/bench/ (never part of hack/test.sh: timing
# decides nothing there). Builds first if needed.
#   hack/bench.sh            proxy data plane vs nginx and HAProxy, snapshot codec
#   hack/bench.sh proxy      only the data-plane comparison (GANTRY_BENCH_SECONDS per run, default 10;
#                            GANTRY_BENCH_ROUNDS interleaved rounds, default 3; GANTRY_BENCH_CONNECTIONS, 64)
#   hack/bench.sh codec      only the snapshot codec at 10k routes / 100k endpoints
#   hack/bench.sh buildtype  RelWithDebInfo (build/) against Release (build-release/): both proxies in
#                            the same interleaved data-plane rounds, then instructions per request of each
#                            (how the Dockerfile's build type was chosen, docs/BENCHMARKS.md)
#   hack/bench.sh instructions  instructions (callgrind) and heap allocations (memcheck) per proxied
#                            request vs nginx and HAProxy, then instructions per h2 request vs HAProxy
#   hack/bench.sh rss        proxy memory with a 1,000-route snapshot and 64, then 10,000 idle keep-alive
#                            connections, then 10,000 idle h2c connections
#   hack/bench.sh routes     req/s matching the first, middle and last of N regex rules (N = 10, 100,
#                            1,000, 2,000) against a PathPrefix route, then (inside the router) compile
#                            time, heap and match time at 100, 1,000, 10,000 regex rules, sets against
#                            one-by-one (GANTRY_BENCH_SECONDS per run, default 5; GANTRY_BENCH_ROUNDS, 3;
#                            GANTRY_BENCH_BASELINE_BIN: the bin dir of another build to compare, same run)
#   hack/bench.sh tracing    tracing off vs --tracing-sampling 0.01 vs 1.0 in one run, spans to a real
#                            OpenTelemetry Collector (hack/otelcol.sh): req/s and CPU per request, then
#                            instructions per request of each (GANTRY_BENCH_SECONDS, default 5;
#                            GANTRY_BENCH_ROUNDS, 3). Not part of `all`.
#   hack/bench.sh filters    each access-control filter (apiKey, ipAllow, basicAuth, extAuth with a
#                            decision-cache hit) as a ratio to the bare route, same proxy, same run
#                            (GANTRY_BENCH_SECONDS per run, default 5; GANTRY_BENCH_ROUNDS, 3). Not part of `all`.
#   hack/bench.sh ratelimit  a route with a global rate limit (Redis on loopback, never refusing) against
#                            the bare route, same run: with leases (the default) and per request (a second
#                            proxy, leasePercent 0): req/s ratio, p50 overhead, Redis round trips per
#                            decision (GANTRY_BENCH_SECONDS, default 5; GANTRY_BENCH_ROUNDS, 3)
#   hack/bench.sh h2         HTTP/2: h2load (h2c, 16 connections x 10 streams) through Gantry (the image's
#                            profile-guided build, hack/pgo.sh, and the plain Release build), nginx (http2)
#                            and HAProxy (proto h2) to one HTTP/1.1 backend, then gRPC unary calls with ghz
#                            (hack/ghz.sh) through each (Gantry h2c cluster, nginx grpc_pass, HAProxy h2) to
#                            grpc-go's interop TestService; req/s, latency, proxy CPU per request, ratios
#                            (GANTRY_BENCH_SECONDS, default 5; GANTRY_BENCH_ROUNDS, 3). Not part of `all`.
#   hack/bench.sh h2shapes   Gantry's (profile-guided, as the image) and HAProxy's user and system CPU time per h2 request, one proxy
#                            loaded at a time, at four h2load shapes (16x1, 4x10, 16x10, 16x40 streams), and
#                            the differences (tests/bench/h2_shapes.sh; GANTRY_BENCH_SECONDS, default 5;
#                            GANTRY_BENCH_ROUNDS, 3). Not part of `all`.
#   hack/bench.sh syscalls   syscalls per proxied request, by name, through Gantry, nginx and HAProxy (one
#                            worker each) to one nginx backend: HTTP/1.1 (h2load --h1, 16 connections) and
#                            h2c (16 x 10 streams), counted by the kernel's tracepoints (perf, root)
#                            (tests/bench/syscalls_bench.sh; GANTRY_BENCH_REQUESTS, default 100000). Not part of `all`.
#   hack/bench.sh uring      Asio's io_uring backend against the epoll reactor: gantry-proxy built twice
#                            in Release (build-release/, build-uring/ with -DGANTRY_IO_URING=ON and Boost 1.81
#                            headers from hack/boost181.sh), then syscalls and CPU time per request of each
#                            (tests/bench/uring_bench.sh), the HTTP/1.1 rounds (proxy_bench.sh, both builds
#                            only) and the h2/gRPC rounds (h2_bench.sh, with the io_uring build added)
#                            (GANTRY_BENCH_SECONDS, default 5; GANTRY_BENCH_ROUNDS, 5). Not part of `all`.
#   hack/bench.sh churn [--rate N]  pod churn under load, end to end (tests/e2e/churn.py: real
#                            control plane + kube-controller-manager, Gantry as the Helm chart runs
#                            it); needs root; writes the "Pod churn" section of docs/BENCHMARKS.md.
#                            Not part of `all`. GANTRY_BUILD_DIR picks the build directory.
set -euo pipefail
# As the image runs the proxy (Dockerfile ENV; tests/bench/lib.sh says why).
export GLIBC_TUNABLES=${GLIBC_TUNABLES:-glibc.malloc.tcache_count=128}
cd "$(dirname "$0")/.."
what=${1:-all}
if [ "$what" = churn ]; then
  shift
  build=${GANTRY_BUILD_DIR:-build}
  bash hack/install-deps.sh >/dev/null
  [ -f "$build/build.ninja" ] || cmake -S . -B "$build" -G Ninja >/dev/null
  ninja -C "$build" -j2 gantry-proxy gantry-controller gantry-echo >/dev/null
  GANTRY_TESTBIN="${GANTRY_TESTBIN:-$(hack/testbin.sh | tail -1)}"
  export GANTRY_TESTBIN
  GANTRY_BIN="$(cd "$build" && pwd)/bin" exec /usr/bin/python3 tests/e2e/churn.py --write-docs "$@"
fi
bash hack/install-deps.sh >/dev/null
if [ "$what" = buildtype ]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  ninja -C build gantry-proxy gantry-echo >/dev/null
  ninja -C build-release gantry-proxy gantry-echo >/dev/null
  GANTRY_BENCH_BIN2=build-release/bin GANTRY_BENCH_BIN2_NAME=gantry-release \
    bash tests/bench/proxy_bench.sh build/bin "${GANTRY_BENCH_SECONDS:-10}" "${GANTRY_BENCH_CONNECTIONS:-64}" \
    "${GANTRY_BENCH_ROUNDS:-3}"
  for b in build build-release; do
    echo
    echo "$b:"
    bash tests/bench/instructions_bench.sh "$b/bin"
  done
  exit 0
fi
if [ "$what" = uring ]; then
  inc=$(bash hack/boost181.sh | tail -1)
  cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake -S . -B build-uring -G Ninja -DCMAKE_BUILD_TYPE=Release -DGANTRY_IO_URING=ON \
    -DGANTRY_BOOST_INCLUDE="$inc" >/dev/null
  ninja -C build-release gantry-proxy gantry-echo >/dev/null
  ninja -C build-uring gantry-proxy >/dev/null
  secs=${GANTRY_BENCH_SECONDS:-5}
  rounds=${GANTRY_BENCH_ROUNDS:-5}
  bash tests/bench/uring_bench.sh build-release/bin build-uring/bin "$rounds"
  echo
  GANTRY_BENCH_BIN2=build-uring/bin GANTRY_BENCH_BIN2_NAME=gantry-uring GANTRY_BENCH_TARGETS="gantry gantry-uring" \
    bash tests/bench/proxy_bench.sh build-release/bin "$secs" 64 "$rounds"
  echo
  GANTRY_BENCH_BIN2=build-uring/bin GANTRY_BENCH_BIN2_NAME=gantry-uring \
    bash tests/bench/h2_bench.sh build-release/bin "$secs" "$rounds"
  exit 0
fi
if [ "$what" = h2 ]; then
  # "gantry" is the image's build, profile-guided (hack/pgo.sh, in build-pgo/);
  # "gantry-release" the plain Release build, in the same rounds.
  cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  ninja -C build-release gantry-proxy >/dev/null
  bash hack/pgo.sh build-pgo gantry-proxy
  GANTRY_BENCH_BIN2=build-release/bin GANTRY_BENCH_BIN2_NAME=gantry-release \
    exec bash tests/bench/h2_bench.sh build-pgo/bin "${GANTRY_BENCH_SECONDS:-5}" "${GANTRY_BENCH_ROUNDS:-3}"
fi
if [ "$what" = h2shapes ]; then
  bash hack/pgo.sh build-pgo gantry-proxy
  exec bash tests/bench/h2_shapes.sh build-pgo/bin "${GANTRY_BENCH_SECONDS:-5}" "${GANTRY_BENCH_ROUNDS:-3}"
fi
if [ "$what" = syscalls ]; then
  cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  ninja -C build-release gantry-proxy >/dev/null
  exec bash tests/bench/syscalls_bench.sh build-release/bin "${GANTRY_BENCH_REQUESTS:-100000}"
fi
if [ "$what" = filters ]; then
  cmake -S . -B build -G Ninja >/dev/null
  ninja -C build gantry-proxy >/dev/null
  exec bash tests/bench/filters_bench.sh build/bin "${GANTRY_BENCH_SECONDS:-5}" "${GANTRY_BENCH_ROUNDS:-3}"
fi
cmake -S . -B build -G Ninja >/dev/null
ninja -C build gantry-proxy gantry-echo snapshot_codec_bench delta_apply_bench regex_routes_bench >/dev/null
if [ "$what" = tracing ]; then
  bash tests/bench/tracing_bench.sh build/bin "${GANTRY_BENCH_SECONDS:-5}" "${GANTRY_BENCH_ROUNDS:-3}"
  exit 0
fi
if [ "$what" = all ] || [ "$what" = proxy ]; then
  bash tests/bench/proxy_bench.sh build/bin "${GANTRY_BENCH_SECONDS:-10}" "${GANTRY_BENCH_CONNECTIONS:-64}" \
    "${GANTRY_BENCH_ROUNDS:-3}"
fi
if [ "$what" = all ] || [ "$what" = instructions ]; then
  echo
  bash tests/bench/instructions_bench.sh build/bin
  echo
  bash tests/bench/h2_instructions_bench.sh build/bin
fi
if [ "$what" = all ] || [ "$what" = rss ]; then
  echo
  /usr/bin/python3 tests/bench/rss_bench.py build/bin 1000 64
  /usr/bin/python3 tests/bench/rss_bench.py build/bin 1000 10000
  /usr/bin/python3 tests/bench/rss_bench.py build/bin 1000 10000 h2
fi
if [ "$what" = all ] || [ "$what" = routes ]; then
  echo
  bash tests/bench/routes_bench.sh build/bin "${GANTRY_BENCH_SECONDS:-5}" "${GANTRY_BENCH_ROUNDS:-3}"
  echo
  echo "regex routes inside the router: RouteTable::create and match() per request"
  build/bin/regex_routes_bench 100 1000 2000 10000
fi
if [ "$what" = all ] || [ "$what" = ratelimit ]; then
  echo
  bash tests/bench/ratelimit_bench.sh build/bin "${GANTRY_BENCH_SECONDS:-5}" "${GANTRY_BENCH_ROUNDS:-3}"
fi
if [ "$what" = all ] || [ "$what" = codec ]; then
  echo
  echo "snapshot codec: 10k routes, 100k endpoints"
  build/bin/snapshot_codec_bench 10000 100000 3
  echo
  build/bin/delta_apply_bench 5000 20 200
fi
