#!/usr/bin/env bash
# zeropool: the Debian package test. Builds libzeropool-dev and
# libzeropool-uring-dev (the io_uring registry) with CPack, installs
# libzeropool-dev alone with `apt-get install ./<file>.deb`, builds and runs
# the two consumers against the installed package (no prefix given to either):
#   1. CMake: test/cmake_install_test, find_package(zeropool CONFIG);
#   2. pkg-config: test/pkgconfig_test/main.cpp, compiled with
#      `c++ -std=c++17 main.cpp $(pkg-config --cflags --libs zeropool)`;
# then installs libzeropool-uring-dev and does the same with the uring
# component (find_package COMPONENTS uring; pkg-config zeropool-uring, with
# test/cmake_install_test/uring_main.cpp); then removes both packages and
# checks that they left no file behind.
#
#   bash test/deb_package_test.sh --install-into-this-system
#
# It installs into /usr of the machine it runs on, so it asks for that flag:
# CI runs it in a fresh Debian 12 root (.ci/run). Needs root. Installs the
# `deb` list of .ci/packages.sh first. Builds the CMake preset `deb` into
# build/deb; the packages are build/deb/libzeropool-dev_<version>_<arch>.deb
# and build/deb/libzeropool-uring-dev_<version>_<arch>.deb.
set -euo pipefail

if [[ ${1:-} != --install-into-this-system ]]; then
    sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
    exit 2
fi
if ((EUID != 0)); then
    echo "deb_package_test.sh: needs root (apt-get install)" >&2
    exit 2
fi

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
fail() {
    echo "deb_package_test.sh: FAILED: $*" >&2
    exit 1
}
trap 'echo "deb_package_test.sh: FAILED (exit status $?, line $LINENO)" >&2' ERR

# shellcheck source=../.ci/packages.sh
source .ci/packages.sh
zeropool_install_packages deb

for p in libzeropool-dev libzeropool-uring-dev; do
    if dpkg-query -W "$p" >/dev/null 2>&1; then
        fail "$p is installed already: remove it first (apt-get remove $p)"
    fi
done

# --- build the package ------------------------------------------------------------
cmake --preset deb
cmake --build --preset deb --parallel "$(nproc 2>/dev/null || echo 2)"
rm -f build/deb/libzeropool-dev_*.deb build/deb/libzeropool-uring-dev_*.deb
(cd build/deb && cpack -G DEB)
# one_package NAME: the path of the single NAME_*.deb that cpack made.
one_package() {
    local found=(build/deb/"$1"_*.deb)
    ((${#found[@]} == 1)) && [[ -f ${found[0]} ]] || fail "cpack made no single $1_*.deb in build/deb"
    echo "${found[0]}"
}
# package_contents DEB WANTED...: prints DEB's control fields and files, and
# fails unless a file matches each WANTED (a path pattern); sets `contents`.
package_contents() {
    local deb=$1 wanted
    shift
    echo "== $deb"
    dpkg-deb --info "$deb"
    contents=$(dpkg-deb --contents "$deb")
    echo "$contents"
    for wanted in "$@"; do
        grep -q " \.$wanted\$" <<<"$contents" || fail "$deb has no file matching $wanted"
    done
}
deb=$(one_package libzeropool-dev)
uring_deb=$(one_package libzeropool-uring-dev)

package_contents "$deb" '/usr/include/zeropool/zeropool.hpp' '/usr/lib/[^ ]*/libzeropool\.a' \
    '/usr/lib/[^ ]*/cmake/zeropool/zeropool-config\.cmake' '/usr/lib/[^ ]*/pkgconfig/zeropool\.pc'
if grep -q 'thread_registry\|thread_cache\|/shard\.hpp' <<<"$contents"; then
    fail "the package ships internal headers (they belong in src/)"
fi
if grep -q 'uring' <<<"$contents"; then
    fail "libzeropool-dev ships a file of the io_uring registry (it belongs in libzeropool-uring-dev)"
fi

package_contents "$uring_deb" '/usr/include/zeropool/io_uring_registry\.hpp' '/usr/lib/[^ ]*/libzeropool_uring\.a' \
    '/usr/lib/[^ ]*/cmake/zeropool/zeropool-uring-targets\.cmake' '/usr/lib/[^ ]*/pkgconfig/zeropool-uring\.pc'
if grep -q 'registered_blocks' <<<"$contents"; then
    fail "libzeropool-uring-dev ships an internal header (it belongs in src/)"
fi
dpkg-deb --field "$uring_deb" Depends | grep -q 'liburing-dev' || fail "libzeropool-uring-dev does not depend on liburing-dev"

# --- install it, as a user would ----------------------------------------------------
env DEBIAN_FRONTEND=noninteractive apt-get install -y "./$deb" </dev/null
version=$(dpkg-query -W -f='${Version}' libzeropool-dev)
echo "== installed libzeropool-dev $version"

# --- 1. find_package consumer ---------------------------------------------------------
rm -rf build/deb_cmake_consumer
cmake -S test/cmake_install_test -B build/deb_cmake_consumer -DCMAKE_BUILD_TYPE=Release
cmake --build build/deb_cmake_consumer
ctest --test-dir build/deb_cmake_consumer --output-on-failure --no-tests=error

# --- 2. pkg-config consumer ------------------------------------------------------------
pc_version=$(pkg-config --modversion zeropool)
[[ $pc_version == "$version" ]] || fail "zeropool.pc says $pc_version, the package says $version"
mkdir -p build/deb_pkgconfig_consumer
# shellcheck disable=SC2046 # the flags are meant to be split
c++ -std=c++17 -Wall -Wextra -Werror test/pkgconfig_test/main.cpp $(pkg-config --cflags --libs zeropool) \
    -o build/deb_pkgconfig_consumer/zeropool_pkgconfig_test
build/deb_pkgconfig_consumer/zeropool_pkgconfig_test "$pc_version"

# --- 3. the io_uring registry: libzeropool-uring-dev -----------------------------------
env DEBIAN_FRONTEND=noninteractive apt-get install -y "./$uring_deb" </dev/null
uring_version=$(dpkg-query -W -f='${Version}' libzeropool-uring-dev)
[[ $uring_version == "$version" ]] || fail "libzeropool-uring-dev is $uring_version, libzeropool-dev $version"
rm -rf build/deb_cmake_uring_consumer
cmake -S test/cmake_install_test -B build/deb_cmake_uring_consumer -DCMAKE_BUILD_TYPE=Release -DZEROPOOL_TEST_URING=ON
cmake --build build/deb_cmake_uring_consumer
ctest --test-dir build/deb_cmake_uring_consumer --output-on-failure --no-tests=error
[[ $(pkg-config --modversion zeropool-uring) == "$version" ]] || fail "zeropool-uring.pc does not say $version"
# shellcheck disable=SC2046 # the flags are meant to be split
c++ -std=c++17 -Wall -Wextra -Werror test/cmake_install_test/uring_main.cpp $(pkg-config --cflags --libs zeropool-uring) \
    -o build/deb_pkgconfig_consumer/zeropool_uring_pkgconfig_test
status=0
build/deb_pkgconfig_consumer/zeropool_uring_pkgconfig_test || status=$?
((status == 0 || status == 77)) || fail "the zeropool-uring pkg-config consumer failed (exit status $status)"

# --- removal leaves nothing behind ---------------------------------------------------
installed_files=$(dpkg-query -L libzeropool-dev libzeropool-uring-dev |
    while read -r f; do if [[ -f $f ]]; then echo "$f"; fi; done)
env DEBIAN_FRONTEND=noninteractive apt-get remove -y libzeropool-uring-dev libzeropool-dev </dev/null
left=$(while read -r f; do if [[ -n $f && -e $f ]]; then echo "$f"; fi; done <<<"$installed_files")
[[ -z $left ]] || fail "apt-get remove left these files: $left"

echo "== deb packages: built, installed, find_package and pkg-config consumers ok, removed (libzeropool-dev and libzeropool-uring-dev $version)"
