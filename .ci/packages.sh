# zeropool: the Debian 12 packages each purpose needs, in one place. Sourced
# (never run) by every script that installs packages: perf/run_demo.sh,
# test/run_tests.sh, perf/run_benchmarks.sh, perf/cold_run.sh,
# test/deb_package_test.sh and .ci/run.
#
#   source .ci/packages.sh
#   zeropool_packages tests                  # prints the list, one per line
#   zeropool_install_packages demo tests     # installs what is missing
#
# Purposes:
#   library     build the library alone with CMake (no Boost, no Google Benchmark)
#   demo        build and run the headline demo (perf/tools/file_read_demo.cpp)
#   tests       every configuration of test/run_tests.sh: Boost.Test and
#               Boost.Container 1.81, b2, Google Benchmark (the benchmarks are
#               built in three configurations), clang with its sanitizer and
#               libFuzzer runtimes, pkg-config, Doxygen, valgrind, liburing
#               (the io_uring registry, zeropool::uring)
#   benchmarks  perf/run_benchmarks.sh and perf/cold_run.sh: Google Benchmark,
#               Boost.Container 1.81 and the peers (tcmalloc, jemalloc,
#               mimalloc, TBB), liburing (the io_uring benchmark), python3
#               for the report
#   deb         build the libzeropool-dev and libzeropool-uring-dev packages
#               with CPack and build their consumers (pkg-config, liburing)
#
# Debian's unversioned libboost-*-dev packages are 1.74 and conflict with the
# versioned 1.81 ones used here.

zeropool_packages() {
    local library=(cmake make g++)
    case ${1:-} in
        library | demo)
            printf '%s\n' "${library[@]}"
            ;;
        tests)
            printf '%s\n' "${library[@]}" \
                libboost1.81-dev libboost-test1.81-dev libboost-container1.81-dev \
                libboost1.81-tools-dev libbenchmark-dev \
                clang libclang-rt-14-dev \
                pkg-config doxygen valgrind liburing-dev
            ;;
        benchmarks)
            printf '%s\n' "${library[@]}" \
                libbenchmark-dev libboost-container1.81-dev \
                libgoogle-perftools-dev libjemalloc-dev libmimalloc-dev libtbb-dev \
                liburing-dev pkg-config python3
            ;;
        deb)
            printf '%s\n' "${library[@]}" pkg-config liburing-dev
            ;;
        *)
            echo "zeropool_packages: unknown purpose '${1:-}' (library, demo, tests, benchmarks, deb)" >&2
            return 2
            ;;
    esac
}

# zeropool_install_packages PURPOSE...: installs, with apt-get, the packages of
# these purposes that are not installed yet; does nothing when all are.
# Needs root (or sudo). ZEROPOOL_NO_APT=1 skips it; on a system without dpkg
# it only names the packages to look for.
zeropool_install_packages() {
    local wanted=() purpose list p
    for purpose in "$@"; do
        list=$(zeropool_packages "$purpose") || return 2
        # shellcheck disable=SC2206 # one package name per word
        wanted+=($list)
    done
    if [[ ${ZEROPOOL_NO_APT:-0} == 1 ]]; then
        return 0
    fi
    if ! command -v dpkg-query >/dev/null 2>&1; then
        echo "zeropool: not a Debian system; make sure these (or equivalents) are installed: ${wanted[*]}" >&2
        return 0
    fi
    local missing=()
    for p in "${wanted[@]}"; do
        if [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true) != "install ok installed" ]]; then
            case " ${missing[*]} " in *" $p "*) ;; *) missing+=("$p") ;; esac
        fi
    done
    if ((${#missing[@]} == 0)); then
        return 0
    fi
    local sudo=()
    if ((EUID != 0)); then
        if command -v sudo >/dev/null 2>&1; then
            sudo=(sudo)
        else
            echo "zeropool: installing ${missing[*]} needs root: run as root, or install them" >&2
            return 1
        fi
    fi
    echo "zeropool: installing Debian packages for $*: ${missing[*]}" >&2
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update </dev/null
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends "${missing[@]}" </dev/null
}
