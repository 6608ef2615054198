# syntax=docker/dockerfile:1
# Gantry image: gantry-proxy and gantry-controller, one image, two containers per pod
# (see charts/gantry). Multi-stage: the build stage has the toolchain and -dev
# packages; the runtime stage has only the shared libraries the binaries load.
#
# Invariants (tests/install/dockerfile_test.py checks them without a container engine):
# - the runtime stage installs every Debian package that owns a library
#   `ldd build/bin/gantry-proxy build/bin/gantry-controller` resolves, by package
#   name, with --no-install-recommends, and no compiler, -dev package or build tool;
# - the binaries live in /usr/local/bin and run as the non-root user 65532.
#
#   docker build -t gantry:0.1.0 .

FROM debian:bookworm AS build
WORKDIR /src
# Dependencies first, so that a source change reuses this layer.
COPY hack/install-deps.sh hack/install-deps.sh
RUN bash hack/install-deps.sh --build && rm -rf /var/lib/apt/lists/*
COPY . .
# Release (-O3 -DNDEBUG): 3% fewer instructions per proxied request than RelWithDebInfo,
# measured by `hack/bench.sh buildtype` (docs/BENCHMARKS.md, "Build type of the image");
# hack/test.sh builds it with warnings as errors and runs the integration tests on it.
# Profile-guided (hack/pgo.sh): an instrumented proxy is built and trained first with
# HTTP/1.1 and h2c traffic on loopback (hack/pgo-train.sh, which hack/test.sh also runs),
# then the binaries below are built with its counts (docs/BENCHMARKS.md, "Profile-guided build").
# The same as: cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release -DGANTRY_PGO=use ...
RUN bash hack/pgo.sh /build gantry-proxy gantry-controller \
 && install -D -m 0755 -s /build/bin/gantry-proxy /out/usr/local/bin/gantry-proxy \
 && install -D -m 0755 -s /build/bin/gantry-controller /out/usr/local/bin/gantry-controller

FROM debian:bookworm-slim AS runtime
# Shared libraries of the two binaries, one package a line (kept in sync with ldd by a test).
# libcpprest2.10 is the controller's Kubernetes client (ARCHITECTURE.md); libnghttp2-14
# is the proxy's HTTP/2 codec, at 1.52.0-1+deb12u3 or newer (older builds miss the Rapid
# Reset, CONTINUATION-flood and CVE-2026-27135 fixes): the build fails on an older one.
# libcrypt1 (libxcrypt) verifies basicAuth's bcrypt and SHA-crypt hashes; libhiredis0.14
# encodes and parses RESP for global rate limits (Redis).
# libxml2 (with its libicu72 and liblzma5) parses the XML bodies filters.transform converts.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libc6 \
      libgcc-s1 \
      libstdc++6 \
      libssl3 \
      libre2-9 \
      libfmt9 \
      libspdlog1.10 \
      libyaml-cpp0.7 \
      libprometheus-cpp-core1.0 \
      libcpprest2.10 \
      libbrotli1 \
      zlib1g \
      libnghttp2-14 \
      libcrypt1 \
      libxml2 \
      libicu72 \
      liblzma5 \
      libhiredis0.14 \
 && dpkg --compare-versions "$(dpkg-query -W -f='${Version}' libnghttp2-14)" ge 1.52.0-1+deb12u3 \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/apt /var/log/dpkg.log \
 && groupadd --system --gid 65532 gantry \
 && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin gantry \
 && install -d -o 65532 -g 65532 -m 0750 /var/run/gantry
COPY --from=build /out/usr/local/bin/ /usr/local/bin/
# glibc keeps 7 freed chunks of each size per thread by default; the proxy
# allocates and frees in bursts of one per request in flight, and past the
# seventh each goes through malloc's slow path (docs/ARCHITECTURE.md, "Memory").
ENV GLIBC_TUNABLES=glibc.malloc.tcache_count=128
USER 65532:65532
WORKDIR /
EXPOSE 8080 8443 9901 9902
ENTRYPOINT ["/usr/local/bin/gantry-proxy"]
