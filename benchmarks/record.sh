#!/bin/sh
# Records one benchmark run and renders it: the end-to-end suite (load/run_e2e.py: uniws against
# uWebSockets, the floor and the other peers) and the registry against concurrent maps
# (uniws_bench_registry), written together as one JSON, then the tables of RESULTS.md and the
# README and the plots in results/ rendered from it (render_results.py).
#   benchmarks/record.sh [OUT.json]    default: benchmarks/results/run.json (about 30 minutes)
# Builds the gcc preset first. uWebSockets is a peer when UNIWS_UWEBSOCKETS_DIR names its sources
# at configure time (cmake --preset gcc -DUNIWS_UWEBSOCKETS_DIR=...).
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/results/run.json}"
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
cd "$here/.."
cmake --preset gcc >/dev/null
targets="uniws-golden-path uniws-load uniws-load-baseline uniws-load-floor uniws_bench_registry"
if cmake --build --preset gcc --target help | grep -q '^uniws-load-uws:'; then targets="$targets uniws-load-uws"; fi
cmake --build --preset gcc --target $targets >/dev/null
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
/usr/bin/python3 "$here/load/run_e2e.py" --bin-dir build/gcc --json "$work/e2e.json"
build/gcc/benchmarks/uniws_bench_registry --benchmark_repetitions=3 --benchmark_enable_random_interleaving=true \
  --benchmark_report_aggregates_only=true --benchmark_out_format=json --benchmark_out="$work/registry.json"
mkdir -p "$(dirname "$out")"
/usr/bin/python3 - "$work/e2e.json" "$work/registry.json" "$out" <<'PY'
import json, sys
e2e, registry, out = sys.argv[1:]
run = {"command": "benchmarks/record.sh", "e2e": json.load(open(e2e)), "registry": json.load(open(registry))}
with open(out, "w") as f:
    json.dump(run, f, indent=1)
PY
/usr/bin/python3 "$here/render_results.py" "$out"
