#!/usr/bin/env bash
# The test command: installs what is missing, then configures, builds and runs ctest for
# every preset (g++, clang, clang with libc++, ASan+UBSan, TSan). Exits non-zero on the first failure.
#   scripts/test.sh              all presets
#   scripts/test.sh gcc asan     only those
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

presets=("$@")
[ ${#presets[@]} -gt 0 ] || presets=(gcc clang clang-libcxx asan tsan)

start=$SECONDS
for preset in "${presets[@]}"; do
  echo "=== preset ${preset} ==="
  cmake --workflow --preset "${preset}" --fresh
done
echo "=== all presets passed (${presets[*]}) in $((SECONDS - start)) s ==="
