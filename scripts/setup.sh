#!/usr/bin/env bash
# Installs what building and testing uniws needs on Debian 12, starting from a bare system
# (debootstrap minbase: no compiler, no make, no git, no python3). Idempotent: only missing
# packages are installed, and apt's lists are refreshed only when something is missing.
#   scripts/setup.sh         what the quick suite (scripts/test.sh) needs
#   scripts/setup.sh --all   and what the full matrix (scripts/test.sh --all) and the
#                            benchmarks need
set -euo pipefail

quick=(
  make cmake ninja-build g++ pkg-config git ccache  # the build; git for the mutants runner
  catch2                                    # tests (Catch2 2.13, single header)
  libboost1.81-dev libboost-json1.81-dev    # Asio, Beast, JSON: the examples and their tests
  libssl-dev openssl                        # JWT and TLS in the reference server; test keys and CA
  libhiredis-dev redis-server               # the Redis broker (uniws/redis/) and its tests
  python3 python3-websockets                # a WebSocket client nobody here wrote
  python3-jwt python3-cryptography          # tokens minted by PyJWT (RS256/ES256 need cryptography)
  python3-prometheus-client                 # /metrics read by a parser nobody here wrote
  # The Conan 2 client runs from its sources on these (tests/packaging/conan_test.sh)
  python3-requests python3-urllib3 python3-yaml python3-jinja2 python3-dateutil
  python3-distro python3-fasteners python3-colorama
  # and vcpkg on these (tests/packaging/vcpkg_test.sh)
  libcurl4 curl zip unzip tar ca-certificates
)
full=(
  clang-16 libclang-rt-16-dev clang-format-16   # second compiler, sanitizer runtimes
  libc++-16-dev libc++abi-16-dev            # clang with libc++ (core headers and tests)
  libbenchmark-dev                          # Google Benchmark
  libtbb-dev libcds-dev                     # benchmark peers for the registry
  libjwt-dev                                # benchmark peer for JWT verification
  prometheus                                # a real Prometheus scrapes /metrics
  chromium                                  # the demo page in a real browser (DevTools protocol)
  node-ws                                   # the Node.js peer of the end-to-end benchmark
  zlib1g-dev                                # uWebSockets, its C++ peer (sources: UNIWS_UWEBSOCKETS_DIR)
  python3-fastapi python3-uvicorn           # its FastAPI peer, the seeds' own stack
  doxygen                                   # the API reference (docs target)
  python3-matplotlib                        # benchmarks/render_results.py: RESULTS' plots
  heaptrack                                 # benchmarks/idle_bytes.py: an idle connection's bytes
  debootstrap                               # the bare-Debian check of this script and the quick suite
)

packages=("${quick[@]}")
case "${1:-}" in
  --all) packages+=("${full[@]}") ;;
  "") ;;
  *) echo "usage: scripts/setup.sh [--all]" >&2; exit 2 ;;
esac

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && { echo "setup: all ${#packages[@]} packages present"; exit 0; }

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "setup: installing ${#missing[@]} of ${#packages[@]} packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done"
