#!/usr/bin/env bash
# Builds the libFuzzer harness test/fuzz/pool_fuzzer.cpp with clang++
# (-fsanitize=fuzzer,address,undefined) into build/fuzz/ and runs it for the
# given number of seconds (default 90) over a copy of the seed corpus
# test/fuzz/corpus (new inputs go to the copy, build/fuzz/corpus, never into
# the repository). Prints the number of executions; exits non-zero on any
# crash, leak (memory kept across inputs, counted by the harness), sanitizer
# report or failed check (the input is saved as
# build/fuzz/crash-* etc.; replay it with: build/fuzz/pool_fuzzer FILE).
#
#   bash test/fuzz/run_fuzz.sh          # CI: 90 s
#   bash test/fuzz/run_fuzz.sh 3600     # a longer run: the same with a bigger number
#
# Environment: CXX (default clang++), FUZZ_JOBS is not used: one process, since
# the harness starts its own worker threads.
set -euo pipefail

seconds="${1:-90}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
out="$root/build/fuzz"
cxx="${CXX:-clang++}"
mkdir -p "$out"

echo "== building $out/pool_fuzzer with $cxx"
"$cxx" -std=c++17 -g -O1 -pthread \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer \
    -I"$root/include" "$root"/src/*.cpp "$root/test/fuzz/pool_fuzzer.cpp" \
    -o "$out/pool_fuzzer"

rm -rf "$out/corpus"
mkdir -p "$out/corpus"
cp "$root"/test/fuzz/corpus/* "$out/corpus/"

echo "== fuzzing for $seconds s"
log="$out/fuzz.log"
set +e
(cd "$out" && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ./pool_fuzzer -max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 -max_len=4096 \
        -detect_leaks=0 -print_final_stats=1 -artifact_prefix="$out/" corpus) > "$log" 2>&1
rc=$?
set -e
grep -E "^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb|Done [0-9]+ runs)" "$log" || true
execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
echo "executions: ${execs:-unknown} in $seconds s (corpus: $(ls "$out/corpus" | wc -l) inputs)"
if [ "$rc" -ne 0 ]; then
    echo "pool_fuzzer FAILED (exit $rc); the end of $log:"
    tail -60 "$log"
    exit "$rc"
fi
echo "pool_fuzzer: no failure"
