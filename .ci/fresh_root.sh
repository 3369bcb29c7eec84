#!/usr/bin/env bash
# Runs a shell command in a fresh Debian 12 root file system, made from
# Debian's packages, on a clean clone of this repository's HEAD: what a new
# user's machine has (the base system, git and CA certificates) and nothing
# more. CI uses it to prove that the README's commands install what they need.
#
#   bash .ci/fresh_root.sh 'bash perf/run_demo.sh'
#
# The command runs as root under bash -euo pipefail, in /src/zeropool, with a
# clean environment (PATH, HOME, LANG, CI, DEBIAN_FRONTEND), and its exit
# status is this script's. Needs root on the host (mount, chroot).
#
# How:
#   1. the root is made once by mmdebstrap (variant minbase, plus git and
#      ca-certificates; about 40 s) from the host's Debian sources, and kept as
#      a tarball in ZEROPOOL_ROOT_CACHE (default /var/cache/zeropool-ci),
#      outside the repository; a new tarball is made when it is older than
#      ZEROPOOL_ROOT_MAX_DAYS days (default 7), so security updates come in;
#   2. each run unpacks it into a new directory under /var/tmp, clones HEAD
#      into it, and runs the command by chroot in private mount and PID
#      namespaces, with /proc mounted and /sys and /dev bound: the mounts and
#      every process left behind end with the command;
#   3. the directory is removed afterwards (ZEROPOOL_KEEP_ROOT=1 keeps it and
#      prints where it is).
set -euo pipefail

if (($# != 1)) || [[ -z $1 ]]; then
    echo "usage: $0 'COMMAND'   (runs COMMAND in a fresh Debian 12 root)" >&2
    exit 2
fi
command_text=$1
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

if ((EUID != 0)); then
    echo "fresh_root.sh: needs root (mount, chroot)" >&2
    exit 2
fi

# --- 1. the cached root tarball ------------------------------------------------------
cache=${ZEROPOOL_ROOT_CACHE:-/var/cache/zeropool-ci}
max_days=${ZEROPOOL_ROOT_MAX_DAYS:-7}
# The name records how the root was made: another recipe makes another tarball.
recipe="bookworm minbase git,ca-certificates v1"
tarball="$cache/debian12-minbase-$(printf '%s' "$recipe" | sha256sum | cut -c1-12).tar"

make_tarball() {
    if ! command -v mmdebstrap >/dev/null 2>&1; then
        echo "fresh_root.sh: installing mmdebstrap on the host" >&2
        env DEBIAN_FRONTEND=noninteractive apt-get update </dev/null
        env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends mmdebstrap </dev/null
    fi
    # The host's own Debian sources (the mirror this machine can reach).
    local sources=()
    if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
        sources=(/etc/apt/sources.list.d/debian.sources)
    elif [[ -s /etc/apt/sources.list ]]; then
        sources=(/etc/apt/sources.list)
    fi
    mkdir -p "$cache"
    local partial="$cache/partial-$$-${tarball##*/}" # mmdebstrap picks the format from ".tar"
    echo "fresh_root.sh: making $tarball" >&2
    local start=$SECONDS
    # Check-Valid-Until off: a mirror that serves a snapshot has old Release files.
    mmdebstrap --quiet --variant=minbase --include=git,ca-certificates \
        --aptopt='Acquire::Check-Valid-Until "false"' --aptopt='Acquire::Check-Date "false"' \
        bookworm "$partial" "${sources[@]}" </dev/null
    mv "$partial" "$tarball"
    echo "fresh_root.sh: made the root tarball in $((SECONDS - start)) s" >&2
}

if [[ ! -f $tarball ]] || [[ -n $(find "$tarball" -mtime "+$max_days" -print) ]]; then
    make_tarball
fi

# --- 2. a fresh root with a clean clone -------------------------------------------
root=$(mktemp -d /var/tmp/zeropool-root.XXXXXX)
cleanup() {
    local status=$?
    if [[ ${ZEROPOOL_KEEP_ROOT:-0} == 1 ]]; then
        echo "fresh_root.sh: kept the root in $root" >&2
    elif [[ -d $root ]]; then
        # The mounts lived in the command's own mount namespace, which has
        # ended; --one-file-system still refuses to cross into any mount.
        rm -rf --one-file-system "$root"
    fi
    exit "$status"
}
trap cleanup EXIT

tar -xf "$tarball" -C "$root"
cp /etc/resolv.conf "$root/etc/resolv.conf" # apt-get in the root resolves the mirror
git clone --quiet --no-hardlinks "$repo" "$root/src/zeropool"
echo "fresh_root.sh: $(git -C "$root/src/zeropool" log -1 --format='%h %s') in a fresh Debian 12 root" >&2

# --- 3. run the command -------------------------------------------------------------
# shellcheck disable=SC2016 # expanded by the inner shell
unshare --mount --pid --fork --propagation private -- bash -euo pipefail -c '
    root=$1 command_text=$2
    mount -t proc proc "$root/proc"
    mount --rbind /sys "$root/sys"
    mount --rbind /dev "$root/dev"
    exec chroot "$root" /usr/bin/env -i \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 CI=true DEBIAN_FRONTEND=noninteractive TERM=dumb \
        /bin/bash -euo pipefail -c "cd /src/zeropool && $command_text" </dev/null
' fresh-root "$root" "$command_text"
