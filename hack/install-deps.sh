#!/usr/bin/env bash
# Installs every system package Gantry needs to build, test, benchmark and demo.
# Idempotent: when everything is present it only runs one dpkg query and exits.
#   hack/install-deps.sh          everything (developers, CI)
#   hack/install-deps.sh --build  only the compiler and libraries (the Dockerfile's build stage)
set -euo pipefail
# Go (>= 1.24) comes with the machine image: hack/testbin.sh uses it to build
# kube-apiserver, etcd, kube-controller-manager and helm from their modules.

build_packages=(
  # toolchain
  build-essential cmake ninja-build pkg-config ccache
  # libraries fixed by the product card and the architecture
  libcpprest-dev libyaml-cpp-dev libssl-dev libspdlog-dev libfmt-dev prometheus-cpp-dev
  libgtest-dev libgmock-dev libboost-dev libboost-system-dev libre2-dev nlohmann-json3-dev zlib1g-dev
  # HTTP/2 codec; the version floor is checked below
  libnghttp2-dev
  # crypt_r(3) (libxcrypt): basicAuth verifies bcrypt and SHA-256/512 crypt hashes with it
  libcrypt-dev
  # filters.transform parses XML with libxml2 (no entity expansion, no DTD, no network)
  libxml2-dev
  # RESP encoding and reply parsing for the global rate limiter (docs/policies.md, scope: global)
  libhiredis-dev
  # h2load: the training load of the profile-guided build (hack/pgo.sh, the Dockerfile)
  nghttp2-client
)
test_packages=(
  # clang for libFuzzer targets and the sanitizer runtime
  clang lld libclang-rt-14-dev clang-format
  # real peers used by tests, the demo and benchmarks
  curl wrk nginx-light haproxy openssl python3 python3-pytest python3-websocket python3-jwt
  python3-cryptography python3-yaml procps psmisc iproute2 kubectl
  # HTTP/2 clients (nghttp, h2load) for tests and benchmarks: nghttp2-client, in build_packages
  # memcheck runs the proxy's exit in an integration test (test_shutdown.py)
  valgrind
  # hack/stress-tests.sh keeps a core busy with it
  stress-ng
  # htpasswd(1) writes the basicAuth tests' htpasswd files (bcrypt, SHA-256/512 crypt, MD5)
  apache2-utils
  # the shared store of global rate limits (tests, hack/bench.sh ratelimit)
  redis-server
  # kube-proxy (iptables mode) routes the Gateway Services of the conformance run
  iptables
  # the io_uring experiment (hack/bench.sh uring, -DGANTRY_IO_URING=ON; docs/BENCHMARKS.md)
  liburing-dev
)

packages=("${build_packages[@]}")
if [ "${1:-}" != "--build" ]; then packages+=("${test_packages[@]}"); fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

# libnghttp2 builds before 1.52.0-1+deb12u3 miss the Rapid Reset (CVE-2023-44487),
# CONTINUATION flood (CVE-2024-28182) and CVE-2026-27135 fixes: refuse them.
nghttp2_floor=1.52.0-1+deb12u3
check_nghttp2() {
  local v
  v=$(dpkg-query -W -f='${Version}' libnghttp2-dev 2>/dev/null || true)
  if [ -n "$v" ] && ! dpkg --compare-versions "$v" ge "$nghttp2_floor"; then
    echo "install-deps: libnghttp2-dev $v is older than $nghttp2_floor (security fixes missing)" >&2
    return 1
  fi
}

if [ ${#missing[@]} -eq 0 ]; then
  check_nghttp2
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# nginx and haproxy are only used as benchmark references, redis-server is started by the
# tests on free ports: never leave the
# distribution's service instances running on their default ports.
for svc in nginx haproxy redis-server; do
  if command -v systemctl >/dev/null 2>&1; then $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || true; fi
  $SUDO service "$svc" stop >/dev/null 2>&1 || true
done
check_nghttp2
echo "install-deps: done"
