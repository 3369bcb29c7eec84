#!/usr/bin/env bash
# zeropool: build the API reference with Doxygen into build/doxygen/html, from
# any working directory. Fails (exit status 1) if doxygen prints any warning,
# so every public member stays documented. Needs Debian's `doxygen` package.
#   bash docs/build_docs.sh
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

if ! command -v doxygen >/dev/null 2>&1; then
    echo "build_docs.sh: doxygen not found (Debian: apt-get install doxygen)" >&2
    exit 1
fi

version_part() {
    sed -n "s/^#define[[:space:]]\{1,\}ZEROPOOL_VERSION_$1[[:space:]]\{1,\}\([0-9]\{1,\}\).*/\1/p" \
        include/zeropool/config.hpp
}
version="$(version_part MAJOR).$(version_part MINOR).$(version_part PATCH)"

rm -rf build/doxygen
mkdir -p build/doxygen
log=build/doxygen/warnings.log
# The configuration file, with the version appended (a later setting wins).
{ cat docs/Doxyfile; echo "PROJECT_NUMBER = $version"; echo "WARN_LOGFILE = $log"; } | doxygen - 
if [[ -s $log ]]; then
    cat "$log" >&2
    echo "build_docs.sh: FAILED: doxygen printed $(wc -l <"$log") warning line(s) (see above)" >&2
    exit 1
fi
echo "build_docs.sh: API reference for zeropool $version in build/doxygen/html/index.html (no warnings)"
