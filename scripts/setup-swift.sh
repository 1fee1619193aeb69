#!/usr/bin/env bash
# Swift on Linux for the Alliance binding tests: a cached Debian trixie chroot with `swiftlang`.
#
#   scripts/setup-swift.sh
#       Builds the chroot when it is missing or half-built, then prints its path.
#   scripts/setup-swift.sh run [--bind HOST_DIR:CHROOT_DIR]... [--env NAME=VALUE]... -- COMMAND...
#       Same, then runs COMMAND inside the chroot with /proc, /dev and the given folders mounted;
#       everything it mounted is unmounted again when it exits, whatever the outcome.
#
# Environment:
#   ALLIANCE_SWIFT_CHROOT   where the chroot lives (default /var/cache/alliance/swift-trixie);
#                           keep it outside the repository.
#   ALLIANCE_DEBIAN_MIRROR  Debian mirror (default: the host's apt mirror, else deb.debian.org).
#
# Needs root (debootstrap, chroot, mount). A cold build takes one to two minutes; afterwards the
# script only checks the marker file written at the very end of a successful build.
set -euo pipefail

CHROOT=${ALLIANCE_SWIFT_CHROOT:-/var/cache/alliance/swift-trixie}
CHROOT=${CHROOT%/}
MARKER_NAME=.alliance-swift-ready
SUITE=trixie
PACKAGES=(swiftlang libc6-dev libstdc++-14-dev)

log() { echo "setup-swift: $*" >&2; }
die() { log "error: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, chroot and mount need it)"

host_mirror() {
    local uri=""
    if [ -r /etc/apt/sources.list.d/debian.sources ]; then
        uri=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources)
    fi
    if [ -z "$uri" ] && [ -r /etc/apt/sources.list ]; then
        uri=$(awk '$1 == "deb" && $0 !~ /security/ { print ($2 ~ /^\[/ ? $3 : $2); exit }' /etc/apt/sources.list)
    fi
    case "$uri" in
        *security*|"") echo "http://deb.debian.org/debian" ;;
        *) echo "$uri" ;;
    esac
}
MIRROR=${ALLIANCE_DEBIAN_MIRROR:-$(host_mirror)}

# Mount points below a folder, deepest first.
mounts_under() {
    awk -v root="$1" '$2 == root || index($2, root "/") == 1 { print $2 }' /proc/self/mounts | sort -r
}

# Refuses to go on while anything is mounted inside a folder we are about to delete
# (a bind-mounted repository would otherwise be deleted with it).
unmount_all_under() {
    local dir=$1 m
    for m in $(mounts_under "$dir"); do
        log "unmounting leftover $m"
        umount "$m" || umount -l "$m" || true
    done
    [ -z "$(mounts_under "$dir")" ] || die "something is still mounted under $dir; not touching it"
}

ready() {
    # /usr/bin/swift is an absolute symlink (alternatives): resolve it from inside.
    [ -f "$CHROOT/$MARKER_NAME" ] && chroot "$CHROOT" /usr/bin/test -x /usr/bin/swift
}

build_chroot() {
    command -v debootstrap >/dev/null || {
        log "installing debootstrap"
        apt-get update -q >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null
    }
    local work="$CHROOT.partial"
    mkdir -p "$(dirname "$CHROOT")"
    if [ -e "$work" ]; then
        unmount_all_under "$work"
        rm -rf --one-file-system "$work"
    fi
    if [ -e "$CHROOT" ]; then
        log "$CHROOT exists without a finished setup; rebuilding it"
        unmount_all_under "$CHROOT"
        rm -rf --one-file-system "$CHROOT"
    fi

    log "debootstrap $SUITE from $MIRROR into $work"
    local keyring=()
    [ -r /usr/share/keyrings/debian-archive-keyring.gpg ] \
        && keyring=(--keyring=/usr/share/keyrings/debian-archive-keyring.gpg)
    debootstrap --variant=minbase "${keyring[@]}" "$SUITE" "$work" "$MIRROR" >"$work.log" 2>&1 \
        || { tail -n 30 "$work.log" >&2; die "debootstrap failed (full log: $work.log)"; }

    # Name resolution and package sources inside the chroot.
    cp -L /etc/resolv.conf "$work/etc/resolv.conf"
    printf 'deb %s %s main\n' "$MIRROR" "$SUITE" >"$work/etc/apt/sources.list"
    # No services are ever started inside.
    printf '#!/bin/sh\nexit 101\n' >"$work/usr/sbin/policy-rc.d"
    chmod 755 "$work/usr/sbin/policy-rc.d"

    log "installing ${PACKAGES[*]} inside the chroot"
    (
        trap unmount_ours EXIT
        mount -t proc proc "$work/proc"; MOUNTED+=("$work/proc")
        mount --bind /dev "$work/dev"; MOUNTED+=("$work/dev")
        chroot "$work" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
            DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 \
            sh -c "apt-get update -q && apt-get install -y -q --no-install-recommends ${PACKAGES[*]} && apt-get clean" \
            >>"$work.log" 2>&1 \
            || { tail -n 30 "$work.log" >&2; exit 1; }
        chroot "$work" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/root LANG=C.UTF-8 swift --version >&2
    ) || die "installing Swift failed (full log: $work.log)"

    date -u +%Y-%m-%dT%H:%M:%SZ >"$work/$MARKER_NAME"
    mv "$work" "$CHROOT"
    mv "$work.log" "$CHROOT.log"
    log "ready: $CHROOT"
}

ensure_chroot() {
    ready && return 0
    mkdir -p "$(dirname "$CHROOT")"
    exec 9>"$CHROOT.lock"
    flock 9
    ready || build_chroot
    flock -u 9
}

MOUNTED=()
unmount_ours() {
    local i
    for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do
        umount "${MOUNTED[i]}" 2>/dev/null || umount -l "${MOUNTED[i]}" || log "could not unmount ${MOUNTED[i]}"
    done
    MOUNTED=()
}

run_in_chroot() {
    local binds=() envs=()
    while [ $# -gt 0 ]; do
        case "$1" in
            --bind) [ $# -ge 2 ] || die "--bind needs HOST_DIR:CHROOT_DIR"; binds+=("$2"); shift 2 ;;
            --env) [ $# -ge 2 ] || die "--env needs NAME=VALUE"; envs+=("$2"); shift 2 ;;
            --) shift; break ;;
            *) die "unknown option $1 (usage: run [--bind SRC:DST]... [--env K=V]... -- COMMAND...)" ;;
        esac
    done
    [ $# -gt 0 ] || die "run: no command given"

    # Global, not local: the EXIT trap runs after this function has returned.
    MOUNTED=()
    trap unmount_ours EXIT
    trap 'exit 130' INT TERM

    mount -t proc proc "$CHROOT/proc"; MOUNTED+=("$CHROOT/proc")
    mount --bind /dev "$CHROOT/dev"; MOUNTED+=("$CHROOT/dev")
    local b src dst
    for b in "${binds[@]}"; do
        src=${b%%:*}; dst=${b#*:}
        [ -d "$src" ] || die "bind source $src is not a folder"
        case "$dst" in /*) ;; *) die "bind target $dst must be absolute" ;; esac
        mkdir -p "$CHROOT$dst"
        mount --bind "$src" "$CHROOT$dst"; MOUNTED+=("$CHROOT$dst")
    done

    local status=0
    chroot "$CHROOT" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8 \
        TERM="${TERM:-dumb}" "${envs[@]}" "$@" || status=$?
    return "$status"
}

case "${1:-}" in
    "")
        ensure_chroot
        echo "$CHROOT"
        ;;
    run)
        shift
        ensure_chroot
        run_in_chroot "$@"
        ;;
    -h|--help)
        sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
        ;;
    *)
        die "unknown command $1 (try --help)"
        ;;
esac
