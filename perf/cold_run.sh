#!/usr/bin/env bash
# Runs zeropool's cold-path benchmarks (perf/cold_start_bench.cpp), every peer
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
# sample before it freed (see docs/cold_path.md). As root on Debian it installs what it needs (cmake, g++,
# libbenchmark-dev, libjemalloc2). Builds in Release into build/cold; the JSON
# goes to perf/results/cold_start_bench.json, the tables to
# perf/results/cold_tables.md. Takes about 5 minutes.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$repo/build/cold
results=$repo/perf/results
reps=${ZEROPOOL_COLD_REPS:-7}

packages=(cmake g++ make libbenchmark-dev libjemalloc2)
if command -v dpkg-query >/dev/null 2>&1 && ((EUID == 0)); then
    missing=()
    for p in "${packages[@]}"; do
        if [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true) != "install ok installed" ]]; then
            missing+=("$p")
        fi
    done
    if ((${#missing[@]} > 0)); then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update </dev/null
        apt-get install -y --no-install-recommends "${missing[@]}" </dev/null
    fi
fi

cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=Release -DZEROPOOL_BUILD_PERF=ON \
    -DZEROPOOL_BUILD_TESTS=OFF -DZEROPOOL_INSTALL=OFF >/dev/null
cmake --build "$build" --parallel 2 --target cold_start_bench
bench=$build/perf/cold_start_bench
mkdir -p "$results"

rm -f "$results"/cold_*.json
# Run by relative name, so that the JSON names no path of this machine.
(cd "$(dirname "$bench")" && ./cold_start_bench --benchmark_repetitions="$reps" \
    --benchmark_out="$results/cold_start_bench.json" --benchmark_out_format=json)

python3 "$repo/perf/cold_report.py" "$results"/cold_*.json | tee "$results/cold_tables.md"
