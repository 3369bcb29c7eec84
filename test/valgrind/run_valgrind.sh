#!/usr/bin/env bash
# valgrind memcheck over zeropool (Debug, g++, own build directory
# build/b-valgrind): shows that the library never reads the bytes it hands out
# uninitialised, and that chosen test executables run clean.
#
#   1. self-check: uninitialised_read_selfcheck reads an unwritten byte of a
#      get() buffer on purpose; memcheck must report it (else this run could
#      not fail, and the script fails);
#   2. uninitialised_bytes: a workload that never writes the blocks it gets
#      (and marks them undefined again before giving them back) over every
#      tier, several threads, pass-through sizes and alignments: must be clean;
#   3. Boost.Test executables: buffer_test, sharded_buffer_resource_test,
#      out_of_memory_test, use_after_put_test: must be clean.
# Every run: valgrind --tool=memcheck --error-exitcode=1 --track-origins=yes.
# Needs the Debian package valgrind. Takes about 3-5 minutes on 2 cores.
#
#   bash test/valgrind/run_valgrind.sh
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="$root/build/b-valgrind"
cxx="${CXX:-g++}"
tests=(buffer_test sharded_buffer_resource_test out_of_memory_test use_after_put_test)
vg=(valgrind --tool=memcheck --error-exitcode=1 --track-origins=yes --quiet)

echo "== building (Debug, $cxx) in $build"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_COMPILER="$cxx" > "$build.cmake.log" 2>&1 ||
    { cat "$build.cmake.log"; exit 1; }
for t in "${tests[@]}"; do cmake --build "$build" -j1 --target "$t" > /dev/null; done
for prog in uninitialised_bytes uninitialised_read_selfcheck; do
    "$cxx" -std=c++17 -g -O0 -pthread -Wall -Wextra -Wpedantic -Wconversion -Wsign-conversion -Wshadow -Werror \
        -I"$root/include" "$root/test/valgrind/$prog.cpp" "$root"/src/*.cpp -o "$build/$prog"
done

failed=0
echo "== self-check: memcheck must report the deliberate uninitialised read"
if "${vg[@]}" "$build/uninitialised_read_selfcheck" > "$build/selfcheck.log" 2>&1; then
    echo "FAILED: memcheck did not report the deliberate uninitialised read"; cat "$build/selfcheck.log"; failed=1
elif grep -q "uninitialised value" "$build/selfcheck.log"; then
    echo "ok: reported ($(grep -c 'uninitialised value' "$build/selfcheck.log") report(s))"
else
    echo "FAILED: the self-check failed without a memcheck report"; cat "$build/selfcheck.log"; failed=1
fi

run() { # name, command...
    local name="$1"; shift
    local start=$SECONDS
    if "${vg[@]}" "$@" > "$build/$name.log" 2>&1; then
        echo "ok: $name ($((SECONDS - start)) s)"
    else
        echo "FAILED: $name (memcheck errors or test failure), the end of $build/$name.log:"
        tail -40 "$build/$name.log"; failed=1
    fi
}
echo "== memcheck runs"
run uninitialised_bytes "$build/uninitialised_bytes"
for t in "${tests[@]}"; do run "$t" env BOOST_TEST_COLOR_OUTPUT=no "$build/test/$t"; done
exit "$failed"
