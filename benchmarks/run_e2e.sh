#!/bin/sh
# End to end: uniws-golden-path against its peers (uWebSockets when built, chat-multi indexed and
# as it is, Node.js, FastAPI) and the floor under uniws-load, same run, interleaved; prints the
# figures and the ratios (benchmarks/RESULTS.md has runs).
#   benchmarks/run_e2e.sh [--seconds N] [--json FILE]    builds the gcc preset, then runs
#   benchmarks/run_e2e.sh --quick --bin-dir DIR          what ctest runs: seconds, not figures
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
case " $* " in
  *" --bin-dir "*) ;;
  *)
    cd "$here/.."
    cmake --preset gcc >/dev/null
    targets="uniws-golden-path uniws-load uniws-load-baseline uniws-load-floor"
    # The uWebSockets peer exists when UNIWS_UWEBSOCKETS_DIR named its sources at configure time.
    if cmake --build --preset gcc --target help | grep -q '^uniws-load-uws:'; then targets="$targets uniws-load-uws"; fi
    cmake --build --preset gcc --target $targets >/dev/null
    set -- --bin-dir "$here/../build/gcc" "$@"
    ;;
esac
exec /usr/bin/python3 "$here/load/run_e2e.py" "$@"
