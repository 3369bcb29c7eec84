#!/usr/bin/env bash
# Runs zeropool's cold-path benchmarks (perf/bench/cold_start_bench.cpp), every peer
# in one run, and prints the tables of docs/benchmarks.md ("Cold path"):
#
#   bash perf/cold_run.sh                 7 repetitions of every benchmark
#   ZEROPOOL_COLD_REPS=9 bash perf/cold_run.sh
#   ZEROPOOL_COLD_FILE_MIB=256 bash perf/cold_run.sh   (file read size)
#
# One run holds every peer: each sample is a fresh process, started with the
# peer's environment (plain glibc; GLIBC_TUNABLES=glibc.malloc.hugetlb=1;
# jemalloc through LD_PRELOAD with MALLOC_CONF=thp:always, when Debian's
# libjemalloc2 is installed). The repetitions of a row run back to back: in
# random interleaving, a sample's time depends mostly on how much memory the
# sample before it freed (see docs/cold_path.md). As root on Debian it installs what it needs (the
# `benchmarks` list of .ci/packages.sh). Builds the CMake preset `perf` into build/perf; the JSON
# goes to build/perf/results/cold_start_bench.json, the tables to
# build/perf/results/cold_tables.md. Takes about 5 minutes.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$repo/build/perf
results=$build/results
reps=${ZEROPOOL_COLD_REPS:-7}

# shellcheck source=../.ci/packages.sh
source "$repo/.ci/packages.sh"
zeropool_install_packages benchmarks
(cd "$repo" && cmake --preset perf >/dev/null && cmake --build --preset perf --parallel 2 --target cold_start_bench)
bench=$build/perf/cold_start_bench
mkdir -p "$results"

rm -f "$results"/cold_*.json
# Run by relative name, so that the JSON names no path of this machine.
(cd "$(dirname "$bench")" && ./cold_start_bench --benchmark_repetitions="$reps" \
    --benchmark_out="$results/cold_start_bench.json" --benchmark_out_format=json)

python3 "$repo/perf/report/cold_report.py" "$results"/cold_*.json | tee "$results/cold_tables.md"
