#!/bin/sh
# The soaks at full size against the gcc build (CI runs them briefly: ctest -L soak).
#   scripts/soak.sh            all five, figures to stdout (the JSON lines go to RESULTS.md)
#   scripts/soak.sh churn      one of churn, isolation, abuse, faults, attacks
set -eu
cd "$(dirname "$0")/.."
cmake --preset gcc >/dev/null
cmake --build --preset gcc --target uniws_soak uniws-golden-path
soak=build/gcc/tests/uniws_soak
status=0
for scenario in ${*:-churn isolation abuse faults attacks}; do
  case "$scenario" in
    churn)     "$soak" churn --cycles 100000 --concurrency 16 || status=1 ;;
    isolation) "$soak" isolation --users 1000 --seconds 120 || status=1 ;;
    abuse)     "$soak" abuse --attempts 10000 --flood 100000 || status=1 ;;
    faults)    "$soak" faults --connections 200 || status=1 ;;
    attacks)   /usr/bin/python3 tests/soak/attacks.py build/gcc/examples/uniws-golden-path --seconds 600 || status=1 ;;
    *) echo "scripts/soak.sh: unknown soak $scenario" >&2; exit 2 ;;
  esac
done
exit $status
