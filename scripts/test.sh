#!/usr/bin/env bash
# The test command: installs what is missing, builds the project the plain way (no preset,
# -DCMAKE_BUILD_TYPE=Release: it must build with a compiler's default warnings), then configures, builds and runs ctest
# for every preset (g++, clang, clang with libc++, ASan+UBSan, TSan). Exits non-zero on the
# first failure.
#   scripts/test.sh              all presets
#   scripts/test.sh gcc asan     only those
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

presets=("$@")
[ ${#presets[@]} -gt 0 ] || presets=(plain gcc clang clang-libcxx asan tsan)

start=$SECONDS
for preset in "${presets[@]}"; do
  echo "=== preset ${preset} ==="
  if [ "$preset" = plain ]; then
    # The usual way to build a CMake project, no preset: g++ at -O3, warnings not errors.
    cmake -S . -B build/plain -DCMAKE_BUILD_TYPE=Release --fresh >/dev/null
    cmake --build build/plain -j "$(nproc)"
    continue
  fi
  cmake --workflow --preset "${preset}" --fresh
done
echo "=== all presets passed (${presets[*]}) in $((SECONDS - start)) s ==="
