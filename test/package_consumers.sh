#!/usr/bin/env bash
# zeropool: build and run the package consumers that need no CMake against an
# installed zeropool (run after `cmake --install BUILD --prefix PREFIX`):
#   1. pkg-config: test/pkgconfig_test/main.cpp compiled with a plain compiler
#      command, `c++ -std=c++17 main.cpp $(pkg-config --cflags --libs zeropool)`;
#      and, where the install has it, test/cmake_install_test/uring_main.cpp
#      with `$(pkg-config --cflags --libs zeropool-uring)`;
#   2. b2: the project test/b2_consumer_test (Jamroot), which links the
#      installed library and runs the program; where the install has the
#      io_uring registry (and io_uring works), uring_main.cpp too.
# Both check that the installed version (zeropool.pc, the installed headers'
# macros) equals the one in include/zeropool/config.hpp.
#
#   bash test/package_consumers.sh PREFIX
#
# Works from any directory; builds in a scratch directory that it removes;
# exits non-zero on any failure. Environment: CXX (default c++), B2 (default b2).
set -euo pipefail

if (($# != 1)) || [[ -z $1 ]]; then
    echo "usage: $0 PREFIX   (an install prefix of zeropool)" >&2
    exit 2
fi
prefix=$(cd "$1" && pwd)
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cxx=${CXX:-c++}
b2=${B2:-b2}

fail() {
    echo "package_consumers.sh: FAILED: $*" >&2
    exit 1
}
trap 'echo "package_consumers.sh: FAILED (exit status $?, line $LINENO)" >&2' ERR

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# The version, from its one place.
version_part() {
    sed -n "s/^#define[[:space:]]\{1,\}ZEROPOOL_VERSION_$1[[:space:]]\{1,\}\([0-9]\{1,\}\).*/\1/p" \
        "$repo/include/zeropool/config.hpp"
}
version="$(version_part MAJOR).$(version_part MINOR).$(version_part PATCH)"
[[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || fail "cannot read the version from include/zeropool/config.hpp"

# Where the install put zeropool.pc and the library (lib, lib64 or a multiarch dir).
pc_file=$(find "$prefix" -name zeropool.pc -path '*/pkgconfig/*' | head -n1)
[[ -n $pc_file ]] || fail "no pkgconfig/zeropool.pc under $prefix"
lib_file=$(find "$prefix" \( -name 'libzeropool.so' -o -name 'libzeropool.a' \) | head -n1)
[[ -n $lib_file ]] || fail "no libzeropool.so or libzeropool.a under $prefix"
libdir=$(dirname "$lib_file")
includedir=$prefix/include
[[ -f $includedir/zeropool/zeropool.hpp ]] || fail "no include/zeropool/zeropool.hpp under $prefix"

# --- 1. pkg-config -------------------------------------------------------------
echo "== pkg-config consumer ($pc_file)"
command -v pkg-config >/dev/null || fail "pkg-config is not installed (Debian package: pkg-config)"
export PKG_CONFIG_PATH=$(dirname "$pc_file")
pc_version=$(pkg-config --modversion zeropool)
[[ $pc_version == "$version" ]] || fail "zeropool.pc says version $pc_version, config.hpp says $version"
flags=$(pkg-config --cflags --libs zeropool)
echo "pkg-config --cflags --libs zeropool: $flags"
# shellcheck disable=SC2086 # the flags are meant to be split
"$cxx" -std=c++17 -Wall -Wextra -Werror "$repo/test/pkgconfig_test/main.cpp" $flags \
    -o "$scratch/zeropool_pkgconfig_test"
"$scratch/zeropool_pkgconfig_test" "$pc_version"

# --- 1b. pkg-config, the io_uring registry ----------------------------------------
# Installed where zeropool was built with liburing: required when liburing is here.
uring_pc=$(dirname "$pc_file")/zeropool-uring.pc
with_uring=no
if [[ -f $uring_pc ]]; then
    echo "== pkg-config consumer of zeropool-uring ($uring_pc)"
    uring_flags=$(pkg-config --cflags --libs zeropool-uring)
    echo "pkg-config --cflags --libs zeropool-uring: $uring_flags"
    # shellcheck disable=SC2086 # the flags are meant to be split
    "$cxx" -std=c++17 -Wall -Wextra -Werror "$repo/test/cmake_install_test/uring_main.cpp" $uring_flags \
        -o "$scratch/zeropool_uring_pkgconfig_test"
    status=0
    "$scratch/zeropool_uring_pkgconfig_test" || status=$?
    ((status == 0 || status == 77)) || fail "the zeropool-uring consumer failed (exit status $status)"
    ((status == 77)) || with_uring=yes # the b2 consumer builds and runs it too
elif pkg-config --exists liburing 2>/dev/null; then
    fail "liburing is here, but the install has no zeropool-uring.pc"
fi

# --- 2. b2 ----------------------------------------------------------------------
echo "== b2 consumer (test/b2_consumer_test)"
command -v "$b2" >/dev/null || fail "b2 is not installed (Debian package: libboost1.81-tools-dev)"
cp -R "$repo/test/b2_consumer_test" "$scratch/b2_consumer"
cp "$repo/test/cmake_install_test/uring_main.cpp" "$scratch/b2_consumer/"
(
    cd "$scratch/b2_consumer"
    ZEROPOOL_INCLUDEDIR=$includedir ZEROPOOL_LIBDIR=$libdir ZEROPOOL_EXPECTED_VERSION=$version \
        ZEROPOOL_WITH_URING=$with_uring "$b2" -j1 toolset=gcc -d+1 2>&1 | tee "$scratch/b2.log"
    # b2 exits 0 on some failures when it cannot find a target: check the output.
) || fail "b2 build of the consumer"
grep -q '\*\*passed\*\*' "$scratch/b2.log" || fail "b2 did not run the consumer successfully"
output=$(find "$scratch/b2_consumer" -name zeropool_b2_consumer.output | head -n1)
[[ -n $output ]] && grep -q '^b2 consumer: ok' "$output" || fail "the b2 consumer did not print ok"
if [[ $with_uring == yes ]]; then
    output=$(find "$scratch/b2_consumer" -name zeropool_b2_uring_consumer.output | head -n1)
    [[ -n $output ]] && grep -q '^uring consumer: ok' "$output" || fail "the b2 uring consumer did not print ok"
fi

echo "== package consumers: pkg-config and b2 both ok (zeropool $version)"
