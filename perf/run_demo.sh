#!/usr/bin/env bash
# Builds and runs zeropool's headline demo (perf/tools/file_read_demo.cpp).
#
#   bash perf/run_demo.sh [demo arguments...]
#
# e.g. `bash perf/run_demo.sh --size-mib 256 --reads 9`; `--help` lists them.
# On Debian it first installs what the build needs when any of it is missing
# (the `demo` list of .ci/packages.sh: a compiler and CMake, no Boost, no
# Google Benchmark); that step needs root. It builds the CMake preset `demo`
# (Release, the demo alone) into build/demo under the repository root and runs
# the demo with the arguments given.
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "${script_dir}/.." && pwd)"
build_dir="${repo_root}/build/demo"

# ---- 1. build dependencies: the `demo` list of .ci/packages.sh ---------------
# shellcheck source=../.ci/packages.sh
source "${repo_root}/.ci/packages.sh"
zeropool_install_packages demo

# ---- 2. build (the `demo` preset: Release, the demo alone) ---------------------
cd "${repo_root}"
cmake --preset demo
cmake --build --preset demo --target file_read_demo --parallel "$(nproc 2> /dev/null || echo 2)"

# ---- 3. run ------------------------------------------------------------------
demo="${build_dir}/perf/file_read_demo" # perf/CMakeLists.txt names it after the file
if [[ ! -x "${demo}" ]]; then
    echo "run_demo.sh: built, but ${demo} is missing" >&2
    exit 1
fi
exec "${demo}" "$@"
