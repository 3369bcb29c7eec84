#!/usr/bin/env bash
# Reruns every zeropool benchmark and regenerates the published figures:
#
#   bash perf/run_benchmarks.sh
#
# 1. installs the `benchmarks` list of .ci/packages.sh when a package is
#    missing (needs root; ZEROPOOL_NO_APT=1 skips it), then builds the CMake
#    preset `perf` (Release, every benchmark) into build/perf; the optional
#    peers are used when their Debian packages are installed: libtbb-dev,
#    libgoogle-perftools-dev, libjemalloc-dev, libmimalloc-dev;
# 2. runs every benchmark program with repetitions, JSON into build/perf/results/:
#    the malloc variants (<program>_tcmalloc, ...) with a filter on their
#    malloc rows, and the mixed-sizes and variable-size I/O rows each in a
#    process of its own, one JSON per row (their peak RSS and malloc's state,
#    e.g. the memory glibc keeps after a row frees it, would otherwise carry
#    over from one row to the next; variable_io_bench also writes its 475 MiB
#    file once per process, a few seconds per row);
# 3. runs the file-read demo (workload 7), its table into build/perf/results/, and
#    the footprint model of workloads 6 and 8 (perf/tools/footprint_model.cpp);
#    then burst then steady (perf/tools/burst_then_steady.cpp: a 1 GiB burst,
#    then a small working set; each peer in a process of its own, one after
#    the other), one CSV per peer into build/perf/results/burst/;
# 4. perf/report/report.py writes the tables into docs/benchmarks.md (between its
#    marker comments) and the chart docs/benchmarks.svg; perf/report/burst_report.py
#    writes the burst-then-steady table into docs/benchmarks.md (between its own
#    markers) and the chart docs/burst_then_steady.svg.
#
# Environment (defaults in brackets):
#   ZEROPOOL_PERF_REPS      repetitions per benchmark [5]; medians are reported
#   ZEROPOOL_PERF_MIN_TIME  --benchmark_min_time per repetition, seconds [0.1]
#   ZEROPOOL_PERF_JOBS      build parallelism [number of CPUs]
#   ZEROPOOL_PERF_DEMO_MIB  file size of the demo, MiB [512]
#   ZEROPOOL_PERF_BURST_SECONDS  steady phase of burst then steady, seconds, per
#                           peer [60] (7 peers: about 8 minutes at 60); 0 skips
#                           it (its table and chart in docs/ are then kept)
#   ZEROPOOL_PERF_SKIP_RUN  1: only regenerate the tables and charts from the
#                           JSON and CSV files already in build/perf/results/
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "${script_dir}/.." && pwd)"
build_dir="${repo_root}/build/perf"
results="${build_dir}/results"
reps="${ZEROPOOL_PERF_REPS:-5}"
min_time="${ZEROPOOL_PERF_MIN_TIME:-0.1}"
jobs="${ZEROPOOL_PERF_JOBS:-$(nproc 2> /dev/null || echo 1)}"
demo_mib="${ZEROPOOL_PERF_DEMO_MIB:-512}"
burst_seconds="${ZEROPOOL_PERF_BURST_SECONDS:-60}"

if [[ "${ZEROPOOL_PERF_SKIP_RUN:-0}" != 1 ]]; then
    # ---- 1. build ------------------------------------------------------------
    # shellcheck source=../.ci/packages.sh
    source "${repo_root}/.ci/packages.sh"
    zeropool_install_packages benchmarks
    (cd "${repo_root}" && cmake --preset perf && cmake --build --preset perf --parallel "${jobs}")
    bin="${build_dir}/perf"

    mkdir -p "${results}"
    rm -f "${results}"/bench_*.json "${results}"/machine.txt "${results}"/file_read_demo.txt \
        "${results}"/footprint_model.md "${results}"/burst_then_steady.txt
    rm -rf "${results}/burst"

    # ---- the machine, and how loaded it is -------------------------------------
    {
        echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
        echo "kernel: $(uname -sr)"
        lscpu | grep -E '^(Architecture|CPU\(s\)|Model name|Thread\(s\) per core|Core\(s\) per socket|L2 cache|L3 cache|Hypervisor vendor)' || true
        echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
        echo "transparent_hugepage: $(cat /sys/kernel/mm/transparent_hugepage/enabled 2> /dev/null || echo unknown)"
        echo "compiler: $(${CXX:-c++} --version | head -n 1)"
        echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    } > "${results}/machine.txt"

    # run NAME PROGRAM [benchmark args...]: one JSON file per run. Run from
    # the build directory by a relative name, so that the JSON (which records
    # argv[0]) holds no path of this machine.
    run() {
        local out="${results}/bench_$1.json"
        local program
        program="$(basename "$2")"
        shift 2
        echo "== ${program} $*" >&2
        (cd "${bin}" && "./${program}" "$@" --benchmark_repetitions="${reps}" \
            --benchmark_min_time="${min_time}" \
            --benchmark_out="${out}" --benchmark_out_format=json > /dev/null)
    }

    # run_each_row PREFIX PROGRAM [PATTERN]: runs each row of PROGRAM (those
    # whose name contains PATTERN, if given) in a process of its own, with an
    # exact filter: bench_<PREFIX><row, '/' and ':' as '_'>.json.
    run_each_row() {
        local prefix="$1" program="$2" pattern="${3:-}"
        local rows row
        rows="$(cd "${bin}" && "./$(basename "${program}")" --benchmark_list_tests)"
        while read -r row; do
            [[ -n "${row}" ]] || continue
            [[ -z "${pattern}" || "${row}" == *"${pattern}"* ]] || continue
            run "${prefix}$(echo "${row}" | tr '/:' '__')" "${program}" --benchmark_filter="^${row}\$"
        done <<< "${rows}"
    }

    # ---- 2. Google Benchmark programs ------------------------------------------
    run round_trip "${bin}/round_trip_bench"
    run buffer_api "${bin}/buffer_api_bench"
    run threads "${bin}/threads_bench"
    run stranded_budget "${bin}/stranded_budget_bench"
    # Mixed sizes and variable-size I/O: one process per row
    # (bench_mixed_mixed_sizes_<resource>_64.json, ...,
    # bench_variable_io_<resource>_window_<K>_real_time.json, ...).
    run_each_row mixed_ "${bin}/mixed_sizes_bench"
    run_each_row "" "${bin}/variable_io_bench"
    # io_uring (built when liburing is found): O_DIRECT reads from a file on
    # disk, then the slot lookup alone.
    if [[ -x "${bin}/uring_read_bench" ]]; then
        run uring_read "${bin}/uring_read_bench" --benchmark_filter='^uring_read/'
        run uring_find "${bin}/uring_read_bench" --benchmark_filter='^uring_find/'
    else
        echo "skipping uring_read_bench: not built (liburing not found)" >&2
    fi
    # The mallocs that replace glibc's: their malloc rows only.
    for m in tcmalloc jemalloc mimalloc; do
        [[ -x "${bin}/round_trip_bench_${m}" ]] || { echo "skipping ${m}: not built" >&2; continue; }
        run "round_trip_${m}" "${bin}/round_trip_bench_${m}" --benchmark_filter="/${m}/"
        run "threads_${m}" "${bin}/threads_bench_${m}" --benchmark_filter="/${m}/"
        run_each_row mixed_ "${bin}/mixed_sizes_bench_${m}" "/${m}/"
        run_each_row "" "${bin}/variable_io_bench_${m}" "/${m}/"
    done

    # ---- 3. the file-read demo (workload 7) ------------------------------------
    echo "== file_read_demo --size-mib ${demo_mib}" >&2
    (cd "${bin}" && ./file_read_demo --size-mib "${demo_mib}" --reads 7) > "${results}/file_read_demo.txt"

    # ---- 3b. the footprint model of workloads 6 and 8 (computed, not timed) --
    echo "== footprint_model" >&2
    (cd "${bin}" && ./footprint_model) > "${results}/footprint_model.md"

    # ---- 3c. burst then steady: RSS over time, one process per peer ------------
    if [[ "${burst_seconds}" != 0 ]]; then
        echo "== burst_then_steady --seconds ${burst_seconds}" >&2
        (cd "${bin}" && ./burst_then_steady --seconds "${burst_seconds}" --out "${results}/burst") \
            > "${results}/burst_then_steady.txt"
    fi

    echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >> "${results}/machine.txt"
fi

# ---- 4. tables and chart -----------------------------------------------------
python3 "${script_dir}/report/report.py" --results "${results}" \
    --markdown "${repo_root}/docs/benchmarks.md" --svg "${repo_root}/docs/benchmarks.svg"
if compgen -G "${results}/burst/*.csv" > /dev/null; then
    python3 "${script_dir}/report/burst_report.py" --results "${results}/burst" \
        --markdown "${repo_root}/docs/benchmarks.md" --svg "${repo_root}/docs/burst_then_steady.svg"
else
    echo "run_benchmarks.sh: no ${results}/burst/*.csv, burst-then-steady table not regenerated" >&2
fi
