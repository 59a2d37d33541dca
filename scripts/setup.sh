#!/usr/bin/env bash
# Installs what building, testing and benchmarking uniws needs on Debian 12. Idempotent:
# only missing packages are installed, and apt's lists are refreshed only when needed.
set -euo pipefail

packages=(
  cmake ninja-build g++ pkg-config
  catch2                 # tests (Catch2 2.13, single header)
  clang-16 libclang-rt-16-dev  # second compiler, sanitizer runtimes
  libc++-16-dev libc++abi-16-dev  # clang with libc++ (core headers and tests)
  libboost1.81-all-dev libboost-json1.81-dev  # Asio, Beast, JSON: examples, benchmark peers
  libbenchmark-dev       # Google Benchmark
  libtbb-dev libcds-dev  # benchmark peers for the registry
  libjwt-dev             # benchmark peer for JWT verification
  python3-websockets     # a WebSocket client nobody here wrote
  libssl-dev openssl     # JWT verification and TLS in the example (OpenSSL 3's EVP API); test keys and CA
  python3-jwt python3-cryptography  # tokens minted by PyJWT (RS256/ES256 need cryptography)
  libhiredis-dev redis-server  # the Redis broker (uniws/redis/) and its cluster tests
  prometheus python3-prometheus-client  # /metrics read by a real Prometheus and a parser nobody here wrote
  chromium               # the demo page tested in a real browser (headless, DevTools protocol)
  node-ws                # the Node.js peer of the end-to-end benchmark (benchmarks/load/node_server.js)
  python3-fastapi python3-uvicorn  # its FastAPI peer, the seeds' own stack (benchmarks/load/fastapi_server.py)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && { echo "setup: all ${#packages[@]} packages present"; exit 0; }

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done"
