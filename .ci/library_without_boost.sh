#!/usr/bin/env bash
# On a machine without Boost (CI runs it in a fresh Debian 12 root, after the
# demo installed a compiler and CMake): the library configures and builds
# with CMake's defaults, CMake says in one line that the tests are off and
# why, and asking for the tests fails with that same message.
#
#   bash .ci/library_without_boost.sh
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
fail() {
    echo "library_without_boost.sh: FAILED: $*" >&2
    exit 1
}

if compgen -G '/usr/lib/*/cmake/Boost-*' >/dev/null || compgen -G '/usr/lib/cmake/Boost-*' >/dev/null; then
    fail "Boost's CMake package is installed here: this check needs a machine without Boost"
fi
message='Boost.Test and Boost.Container 1.81 not found (Debian 12: apt-get install libboost-test1.81-dev libboost-container1.81-dev)'

rm -rf build/library build/library_tests
out=$(cmake -S . -B build/library 2>&1) || { echo "$out"; fail "cmake -S . -B build/library"; }
echo "$out"
lines=$(grep -c 'zeropool: tests off' <<<"$out" || true)
[[ $lines == 1 ]] || fail "expected one 'zeropool: tests off' line, got $lines"
grep -qF -- "-- zeropool: tests off: $message" <<<"$out" || fail "the tests-off line does not name the missing packages"
cmake --build build/library --parallel "$(nproc 2>/dev/null || echo 2)"
[[ -f build/library/libzeropool.a ]] || fail "no build/library/libzeropool.a"

if out=$(cmake -S . -B build/library_tests -DZEROPOOL_BUILD_TESTS=ON 2>&1); then
    echo "$out"
    fail "-DZEROPOOL_BUILD_TESTS=ON configured without Boost"
fi
echo "$out"
joined=$(tr -s ' \n' '  ' <<<"$out")
grep -qF -- "ZEROPOOL_BUILD_TESTS is ON, but $message" <<<"$joined" ||
    fail "-DZEROPOOL_BUILD_TESTS=ON without Boost does not fail with the message"

echo "== library without Boost: configured and built with CMake's defaults; tests off, and ON refused, with the message"
