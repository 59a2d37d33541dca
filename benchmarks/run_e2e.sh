#!/bin/sh
# End to end: uniws-golden-path against its peers (chat-multi indexed and as it is, Node.js,
# FastAPI) and the floor under uniws-load, same run, interleaved; prints the figures and the
# ratios (benchmarks/RESULTS.md has runs).
#   benchmarks/run_e2e.sh [--seconds N] [--json FILE]    builds the gcc preset, then runs
#   benchmarks/run_e2e.sh --quick --bin-dir DIR          what ctest runs: seconds, not figures
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
case " $* " in
  *" --bin-dir "*) ;;
  *)
    cd "$here/.."
    cmake --preset gcc >/dev/null
    cmake --build --preset gcc --target uniws-golden-path uniws-load uniws-load-baseline uniws-load-floor >/dev/null
    set -- --bin-dir "$here/../build/gcc" "$@"
    ;;
esac
exec /usr/bin/python3 "$here/load/run_e2e.py" "$@"
