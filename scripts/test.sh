#!/usr/bin/env bash
# The tests. Installs what is missing (scripts/setup.sh), then runs steps, each timed; exits
# non-zero on the first failure.
#   scripts/test.sh          the quick suite: preset `quick` (g++ 12), unit, header,
#                            compile-fail, integration, example and packaging tests
#   scripts/test.sh --all    the full matrix, what .ci/run runs: every step below
#   scripts/test.sh STEP...  those steps:
#     format        clang-format-16 --dry-run -Werror over every C++ file (.clang-format)
#     plain         the usual CMake build, no preset (-DCMAKE_BUILD_TYPE=Release, warnings only)
#     gcc           g++ 12 with the heavy tests (Chromium, Prometheus, Redis Cluster, mutants),
#                   soaks and benchmark smoke runs
#     clang         clang 16 with libstdc++
#     clang-libcxx  clang 16 with libc++ (the core headers and their tests)
#     asan          clang 16 with AddressSanitizer + UndefinedBehaviorSanitizer, and fuzzing
#     tsan          g++ 12 with ThreadSanitizer (unit and integration tests)
#     docs          the API reference with Doxygen, warnings as errors
#     bare          the README's set-up and quick suite in a bare Debian 12 (scripts/bare_debian.sh)
#     quick         the quick suite
# Compiles go through ccache, kept across runs in ~/.cache/ccache; paths under the checkout are
# hashed relative to it, so a fresh clone elsewhere reuses what an earlier one compiled.
set -euo pipefail
cd "$(dirname "$0")/.."

all=(format plain gcc clang clang-libcxx asan tsan docs bare)
steps=("$@")
case "${1:-}" in
  "") steps=(quick) ;;
  --all) steps=("${all[@]}") ;;
esac
if [ "${steps[*]}" = quick ]; then scripts/setup.sh; else scripts/setup.sh --all; fi

export CMAKE_CXX_COMPILER_LAUNCHER=ccache CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
ccache --zero-stats >/dev/null

step() {
  case "$1" in
    plain)  # no preset, as a user builds it: g++ at -O3, warnings not errors
      cmake -S . -B build/plain -DCMAKE_BUILD_TYPE=Release --fresh >/dev/null
      cmake --build build/plain -j "$(nproc)" ;;
    format)  # single_include/ is generated: its own .clang-format exempts it
      git ls-files -z '*.hpp' '*.cpp' | xargs -0 clang-format-16 --dry-run -Werror ;;
    docs)
      cmake --preset quick >/dev/null
      cmake --build --preset quick --target docs ;;
    bare)  # prepared in the background since the start (see below), or now
      if [ -n "${bare_prepare:-}" ]; then
        wait "$bare_prepare" || { cat build/bare/prepare.log; return 1; }
        cat build/bare/prepare.log
      else
        scripts/bare_debian.sh --prepare
      fi
      scripts/bare_debian.sh --run ;;
    quick|gcc|clang|clang-libcxx|asan|tsan)
      cmake --workflow --preset "$1" --fresh ;;
    *)
      echo "unknown step $1 (format plain gcc clang clang-libcxx asan tsan docs bare quick, or --all)" >&2
      return 2 ;;
  esac
}

# The bare root is mostly downloading and unpacking: made while the other steps build.
if [[ " ${steps[*]} " == *" bare "* && ${#steps[@]} -gt 1 ]]; then
  mkdir -p build/bare
  scripts/bare_debian.sh --prepare >build/bare/prepare.log 2>&1 &
  bare_prepare=$!
  # If a step fails first, nothing may stay mounted in the tree (/dev is bound into the root).
  # The script's own status is kept: under errexit, a failing command in the trap (kill of a
  # preparation that already ended) would otherwise turn a green run into exit 1.
  clean_bare() {
    local status=$?
    kill "$bare_prepare" 2>/dev/null || true
    wait "$bare_prepare" 2>/dev/null || true
    scripts/bare_debian.sh --clean || status=1
    exit "$status"
  }
  trap clean_bare EXIT
fi

start=$SECONDS
times=()
for s in "${steps[@]}"; do
  echo "=== ${s} ==="
  t=$SECONDS
  step "$s"
  times+=("${s} $((SECONDS - t)) s")
done
echo "=== passed: $(IFS=,; echo "${times[*]}" | sed 's/,/, /g'); all in $((SECONDS - start)) s ==="
ccache --show-stats | grep -E '^(Cacheable|  Hits|  Misses)' || true
