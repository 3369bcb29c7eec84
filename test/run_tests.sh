#!/usr/bin/env bash
# zeropool: the test command. Builds and runs the test suite in every
# configuration below (each configuration is built once), proves the CMake
# package works, and exits non-zero on any failure.
#
#   bash test/run_tests.sh                 all configurations, in this order
#   bash test/run_tests.sh debug tsan      only these (also: ZEROPOOL_CONFIGS="debug tsan")
#   bash test/run_tests.sh --list          list the configurations
#   ZEROPOOL_FUZZ_SECONDS=600 bash test/run_tests.sh fuzz   a longer fuzz run
#
# Configurations (the CMake ones are presets of CMakePresets.json, each built in
# build/<preset>; b2's under .b2/):
#   b2       b2, g++, debug, warnings as errors: the tests and the benchmarks (built, not run)
#   debug    CMake, g++, Debug
#   package  `cmake --install` of the debug build into a scratch prefix, then the consumer
#            projects: test/cmake_install_test (find_package), test/cmake_subdir_test
#            (add_subdirectory), and test/package_consumers.sh (pkg-config with a plain
#            compiler command, and a b2 project); with liburing, the io_uring registry's
#            consumers too (find_package COMPONENTS uring, add_subdirectory, pkg-config
#            zeropool-uring); builds `debug` first if needed
#   docs     Doxygen reference (docs/build_docs.sh): fails on any Doxygen warning
#   valgrind valgrind memcheck (test/valgrind/run_valgrind.sh): the library never reads
#            the bytes it hands out; a self-check proves memcheck would report it
#   asan     CMake, clang++, Debug, -fsanitize=address,undefined -fno-sanitize-recover=all
#   gasan    CMake, g++, RelWithDebInfo (-O2), the same sanitizers; with the benchmarks,
#            each run once briefly by ctest (ZEROPOOL_PERF_SMOKE_TESTS)
#   fuzz     libFuzzer + ASan + UBSan over the pool (test/fuzz/run_fuzz.sh), for
#            ZEROPOOL_FUZZ_SECONDS (default 90) seconds from the seed corpus
#   tsan     CMake, g++, RelWithDebInfo, -fsanitize=thread
#   cxx20    CMake, clang++, Release, C++20 without extensions, warnings as errors,
#            with the benchmarks (built, not run)
#
# Run as root on Debian 12, it first installs the Debian packages it needs: the
# `tests` list of .ci/packages.sh (apt-get runs only when one is missing;
# ZEROPOOL_NO_APT=1 skips the check).
# Environment: ZEROPOOL_JOBS (default 2) parallel jobs for builds and ctest.
# Every test is killed after 300 s (ctest TIMEOUT; `timeout` launcher in b2); a benchmark
# smoke run after 900 s.
# The last command run is a ctest run, so ctest's summary closes the output.

set -euo pipefail
set -o errtrace

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

all_configs=(b2 debug package docs valgrind asan gasan fuzz tsan cxx20)
jobs=${ZEROPOOL_JOBS:-2}

describe() {
    case $1 in
        b2)      echo "b2, g++, debug, warnings-as-errors=on (tests + benchmarks)" ;;
        debug)   echo "CMake, g++, Debug" ;;
        package) echo "CMake package: install + find_package, add_subdirectory, pkg-config and b2 consumers" ;;
        docs)    echo "Doxygen reference, warnings as errors" ;;
        valgrind) echo "valgrind memcheck: no read of uninitialised bytes" ;;
        fuzz)    echo "libFuzzer + ASan + UBSan, ${ZEROPOOL_FUZZ_SECONDS:-90} s" ;;
        asan)    echo "CMake, clang++, Debug, AddressSanitizer + UndefinedBehaviorSanitizer" ;;
        gasan)   echo "CMake, g++, -O2, AddressSanitizer + UndefinedBehaviorSanitizer (tests + a short run of every benchmark)" ;;
        tsan)    echo "CMake, g++, RelWithDebInfo, ThreadSanitizer" ;;
        cxx20)   echo "CMake, clang++, Release, C++20, warnings as errors (tests + benchmarks)" ;;
    esac
}

usage() {
    sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

# --- which configurations ----------------------------------------------------

requested=()
for arg in "$@"; do
    case $arg in
        -h|--help) usage; exit 0 ;;
        --list)    for c in "${all_configs[@]}"; do printf '%-8s %s\n' "$c" "$(describe "$c")"; done; exit 0 ;;
        all)       requested+=("${all_configs[@]}") ;;
        *)         requested+=("$arg") ;;
    esac
done
if ((${#requested[@]} == 0)) && [[ -n ${ZEROPOOL_CONFIGS:-} ]]; then
    read -r -a requested <<<"${ZEROPOOL_CONFIGS//,/ }"
fi
if ((${#requested[@]} == 0)); then
    requested=("${all_configs[@]}")
fi

# Keep the canonical order whatever the order given; reject unknown names.
for r in "${requested[@]}"; do
    known=no
    for c in "${all_configs[@]}"; do [[ $r == "$c" ]] && known=yes; done
    if [[ $known == no ]]; then
        echo "run_tests.sh: unknown configuration '$r' (known: ${all_configs[*]})" >&2
        exit 2
    fi
done
configs=()
for c in "${all_configs[@]}"; do
    for r in "${requested[@]}"; do
        if [[ $r == "$c" ]]; then configs+=("$c"); break; fi
    done
done

# --- reporting -----------------------------------------------------------------

current="setup"
scratch_prefix=""
declare -A durations=()

section() {
    printf '\n'
    printf '=%.0s' {1..78}; printf '\n'
    printf '== %s\n' "$*"
    printf '=%.0s' {1..78}; printf '\n'
}

on_error() {
    local status=$?
    printf '\nrun_tests.sh: FAILED in configuration "%s" (exit status %s, line %s)\n' \
        "$current" "$status" "${BASH_LINENO[0]}" >&2
}
trap on_error ERR

cleanup() {
    if [[ -n $scratch_prefix && -d $scratch_prefix ]]; then
        rm -rf "$scratch_prefix"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

print_durations() {
    section "Durations"
    local c note
    for c in "${configs[@]}"; do
        note=""
        if [[ $c == "$last" ]]; then note="; build only, its tests run below"; fi
        if [[ -n ${durations[$c]:-} ]]; then
            printf '  %-8s %5s s   %s%s\n' "$c" "${durations[$c]}" "$(describe "$c")" "$note"
        fi
    done
}

# --- packages --------------------------------------------------------------------

install_packages() {
    current="packages"
    # shellcheck source=.ci/packages.sh
    source "$repo/.ci/packages.sh"
    zeropool_install_packages tests
}

# --- building blocks ---------------------------------------------------------------

# cmake_build PRESET: configure and build a preset of CMakePresets.json (in build/PRESET).
cmake_build() {
    cmake --preset "$1"
    cmake --build --preset "$1" --parallel "$jobs"
}

# ctest_run PRESET [PREFIX...]: run the tests of a preset (PREFIX runs ctest, e.g. setarch).
ctest_run() {
    local preset=$1
    shift
    "$@" ctest --preset "$preset" --parallel "$jobs"
}

export BOOST_TEST_COLOR_OUTPUT=no
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}

# Each configuration is a build step and a test step, so that the last test
# step (a ctest run) can be the last thing this script runs.

build_b2() {
    # b2 does not run again a test that passed and was not rebuilt: forget the
    # results of earlier runs so that every test runs.
    local d
    for d in .b2/test .b2/docs; do
        if [[ -d $d ]]; then
            find "$d" -type f \( -name '*.run' -o -name '*.test' -o -name '*.output' \) -delete
        fi
    done
    b2 -j"$jobs" toolset=gcc warnings-as-errors=on perf
}
test_b2() {
    b2 -j"$jobs" toolset=gcc warnings-as-errors=on test
}

build_debug() { cmake_build debug; }
test_debug()  { ctest_run debug; }

build_package() {
    # Reuses the debug build (built here only if `debug` did not run).
    cmake_build debug
    scratch_prefix=$(mktemp -d)
    cmake --install build/debug --prefix "$scratch_prefix"
    if grep -rIl -- "$repo" "$scratch_prefix"; then
        echo "run_tests.sh: the installed files above name the source or build tree" >&2
        return 1
    fi
    # Only the public API is installed: no header declares a thread_local.
    if grep -rlw thread_local "$scratch_prefix/include"; then
        echo "run_tests.sh: the installed headers above declare a thread_local (internals belong in src/)" >&2
        return 1
    fi
    # Where liburing is, the io_uring registry is built and installed too,
    # and the consumers take it.
    local uring=OFF
    if pkg-config --exists liburing 2>/dev/null; then
        uring=ON
        if [[ ! -f $scratch_prefix/include/zeropool/io_uring_registry.hpp ]]; then
            echo "run_tests.sh: liburing is here, but the install has no zeropool/io_uring_registry.hpp" >&2
            return 1
        fi
    fi
    rm -rf build/install_test build/subdir_test
    cmake -S test/cmake_install_test -B build/install_test -DZEROPOOL_TEST_URING=$uring \
        -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_COMPILER=g++ -DCMAKE_PREFIX_PATH="$scratch_prefix"
    cmake --build build/install_test --parallel "$jobs"
    cmake -S test/cmake_subdir_test -B build/subdir_test \
        -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_COMPILER=g++
    cmake --build build/subdir_test --parallel "$jobs"
}
test_package() {
    ctest --test-dir build/install_test --output-on-failure --no-tests=error
    ctest --test-dir build/subdir_test --output-on-failure --no-tests=error
    bash test/package_consumers.sh "$scratch_prefix"
    rm -rf "$scratch_prefix"
    scratch_prefix=""
}

build_docs() { bash docs/build_docs.sh; }
test_docs()  { echo "docs: the reference is in build/doxygen/html"; }

build_valgrind() { :; } # run_valgrind.sh builds what it runs
test_valgrind()  { bash test/valgrind/run_valgrind.sh; }

build_fuzz() { :; } # run_fuzz.sh builds the fuzzer
test_fuzz()  { bash test/fuzz/run_fuzz.sh "${ZEROPOOL_FUZZ_SECONDS:-90}"; }

build_asan() { cmake_build asan; }
test_asan() { ctest_run asan; }

# g++ at -O2 instruments differently from clang at -O0 (it found a false
# UBSan report on the library's TLS, and a benchmark helper that lost its
# pointer under ASan); the benchmarks' smoke tests run here too.
build_gasan() { cmake_build gasan; }
test_gasan() { ctest_run gasan; }

build_tsan() { cmake_build tsan; }
test_tsan() {
    # gcc 12's TSan cannot map its shadow memory when the kernel randomises
    # mmap with more than 28 bits ("unexpected memory mapping"); run without
    # address randomisation then.
    local launcher=()
    local bits
    bits=$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo 28)
    if ((bits > 28)) && setarch "$(uname -m)" -R true 2>/dev/null; then
        echo "vm.mmap_rnd_bits=$bits: running the TSan tests under setarch -R"
        launcher=(setarch "$(uname -m)" -R)
    fi
    ctest_run tsan "${launcher[@]}"
}

build_cxx20() { cmake_build cxx20; }
test_cxx20() { ctest_run cxx20; }

# --- main ------------------------------------------------------------------------

install_packages

section "zeropool tests: ${configs[*]} (jobs: $jobs)"
echo "g++:     $(g++ --version | head -n1)"
echo "clang++: $(clang++ --version | head -n1)"
echo "cmake:   $(cmake --version | head -n1)"
echo "b2:      $(b2 -v 2>&1 | head -n1)"

total_start=$SECONDS
last=${configs[-1]}
n=${#configs[@]}
i=0
for c in "${configs[@]}"; do
    i=$((i + 1))
    current=$c
    section "[$i/$n] $c: $(describe "$c")"
    start=$SECONDS
    "build_$c"
    if [[ $c == "$last" ]]; then
        # The last configuration's tests run after the summary, so that the
        # closing lines are ctest's (or b2's) own.
        durations[$c]=$((SECONDS - start))
        break
    fi
    "test_$c"
    durations[$c]=$((SECONDS - start))
    echo "== $c: done in ${durations[$c]} s"
done

print_durations
printf '  total so far: %s s; the tests of "%s" run last.\n' "$((SECONDS - total_start))" "$last"

current=$last
section "[$n/$n] $last: tests"
"test_$last"
