#!/usr/bin/env bash
# The demo: installs what is missing, builds the example and runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake --preset gcc >/dev/null
cmake --build --preset gcc --target uniws-hello
./build/gcc/examples/uniws-hello
