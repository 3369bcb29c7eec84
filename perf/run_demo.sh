#!/usr/bin/env bash
# Builds and runs zeropool's headline demo (perf/file_read_demo.cpp).
#
#   bash perf/run_demo.sh [demo arguments...]
#
# e.g. `bash perf/run_demo.sh --size-mib 256 --reads 9`; `--help` lists them.
# On Debian/Ubuntu it first installs what the build needs (cmake, g++, and
# libbenchmark-dev for the other perf programs) when any of it is missing;
# that step needs root. It builds in Release into build/demo under the
# repository root and runs the demo with the arguments given.
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "${script_dir}/.." && pwd)"
build_dir="${repo_root}/build/demo"

# ---- 1. build dependencies ---------------------------------------------------
packages=(cmake g++ libbenchmark-dev)
missing=()
if command -v dpkg-query > /dev/null 2>&1; then
    for pkg in "${packages[@]}"; do
        status="$(dpkg-query -W -f='${Status}' "${pkg}" 2> /dev/null || true)"
        if [[ "${status}" != "install ok installed" ]]; then
            missing+=("${pkg}")
        fi
    done
else
    echo "run_demo.sh: no dpkg-query; assuming ${packages[*]} (or equivalents) are installed" >&2
fi
if ((${#missing[@]} > 0)); then
    echo "run_demo.sh: installing ${missing[*]}" >&2
    if [[ "$(id -u)" -ne 0 ]]; then
        echo "run_demo.sh: installing packages needs root: run as root, or install: ${missing[*]}" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y "${missing[@]}"
fi

# ---- 2. build (Release) ------------------------------------------------------
cmake -S "${repo_root}" -B "${build_dir}" \
    -DCMAKE_BUILD_TYPE=Release \
    -DZEROPOOL_BUILD_PERF=ON \
    -DZEROPOOL_BUILD_TESTS=OFF
cmake --build "${build_dir}" --target file_read_demo --parallel "$(nproc 2> /dev/null || echo 2)"

# ---- 3. run ------------------------------------------------------------------
demo="${build_dir}/perf/file_read_demo" # perf/CMakeLists.txt names it after the file
if [[ ! -x "${demo}" ]]; then
    echo "run_demo.sh: built, but ${demo} is missing" >&2
    exit 1
fi
exec "${demo}" "$@"
