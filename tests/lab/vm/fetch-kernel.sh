#!/bin/bash
# fetch-kernel.sh - the guest kernel and busybox of the QEMU lab
# (tests/support/qemu.rs, tests/qemu_lab.rs). Idempotent; called by
# tests/lab/install.sh, safe to run by hand:
#     sudo tests/lab/vm/fetch-kernel.sh
#
# Fetches two Debian packages with `apt-get download` and unpacks them with
# `dpkg-deb -x`. Nothing is installed: no dpkg database entry, no /boot
# change, no initramfs-tools hook runs.
#   linux-image-<abi>-amd64  the package Debian's `linux-image-amd64` depends
#                            on today: vmlinuz and its modules
#   busybox-static           /bin/busybox for the guest's /init and scenarios
#
# Place: IRONFENCE_LAB_VM (default /opt/ironfence-lab/vm):
#   kernel  -> kernel-<package>_<version>/  (boot/vmlinuz-*, lib/modules/*/)
#   busybox -> busybox-<version>/           (bin/busybox)
#   debs/                                   the downloaded .debs
# Each unpacked tree gets a `.complete` marker last; the symlinks move only
# after that, so a half-unpacked tree is never used. When the trees for the
# current package versions are present, nothing is downloaded.
set -euo pipefail

VM=${IRONFENCE_LAB_VM:-/opt/ironfence-lab/vm}
mkdir -p "$VM/debs"

# "<package> <version>" of the candidate of $1 (empty when apt has no lists).
# (awk reads to the end: an early exit would SIGPIPE apt-cache under pipefail)
candidate() {
    apt-cache policy "$1" 2>/dev/null | awk -v p="$1" '!found && /Candidate:/ && $2 != "(none)" { print p, $2; found = 1 }'
}

# The kernel package linux-image-amd64 pulls in, e.g. linux-image-6.1.0-56-amd64.
kernel_package() {
    apt-cache depends linux-image-amd64 2>/dev/null |
        awk '!found && /Depends: linux-image-[0-9]/ { print $2; found = 1 }'
}

resolve() {
    KPKG=$(kernel_package)
    KCAND=""
    [ -n "$KPKG" ] && KCAND=$(candidate "$KPKG")
    BCAND=$(candidate busybox-static)
}

resolve
if [ -z "$KCAND" ] || [ -z "$BCAND" ]; then
    if [ -e "$VM/kernel/.complete" ] && [ -e "$VM/busybox/.complete" ]; then
        echo "fetch-kernel.sh: apt has no package lists; keeping $(readlink "$VM/kernel") and $(readlink "$VM/busybox")"
        exit 0
    fi
    if [ "$(id -u)" -ne 0 ]; then
        echo "fetch-kernel.sh: apt knows no linux-image-amd64/busybox-static; run as root (apt-get update)" >&2
        exit 1
    fi
    apt-get update
    resolve
    if [ -z "$KCAND" ] || [ -z "$BCAND" ]; then
        echo "fetch-kernel.sh: still no candidate for linux-image-amd64 or busybox-static after apt-get update" >&2
        exit 1
    fi
fi

# fetch_unpack PACKAGE VERSION DIRNAME LINK
fetch_unpack() {
    local pkg=$1 version=$2 dir=$VM/$3 link=$VM/$4 tmp deb
    if [ ! -e "$dir/.complete" ]; then
        tmp=$(mktemp -d "$VM/.fetch.XXXXXX")
        # apt's _apt sandbox user must be able to write the download dir
        chmod 0755 "$tmp"
        chown _apt "$tmp" 2>/dev/null || true
        (cd "$tmp" && apt-get download "$pkg=$version")
        deb=$(ls "$tmp"/*.deb)
        mkdir "$tmp/tree"
        dpkg-deb -x "$deb" "$tmp/tree"
        touch "$tmp/tree/.complete"
        mv "$deb" "$VM/debs/"
        rm -rf "$dir"
        mv "$tmp/tree" "$dir"
        rmdir "$tmp"
        echo "fetch-kernel.sh: unpacked $pkg $version into $dir"
    fi
    # point the link at it (atomically: new link, then rename over the old one)
    if [ "$(readlink "$link" 2>/dev/null)" != "$3" ]; then
        ln -sfn "$3" "$link.new"
        mv -T "$link.new" "$link"
    fi
}

read -r kpkg kver <<<"$KCAND"
read -r bpkg bver <<<"$BCAND"
# an epoch's ":" becomes "_" in the directory name
fetch_unpack "$kpkg" "$kver" "kernel-${kpkg}_${kver//:/_}" kernel
fetch_unpack "$bpkg" "$bver" "busybox-${bver//:/_}" busybox

vmlinuz=$(ls "$VM"/kernel/boot/vmlinuz-* 2>/dev/null | head -n 1)
modules=$(ls -d "$VM"/kernel/lib/modules/*/ 2>/dev/null | head -n 1)
if [ -z "$vmlinuz" ] || [ -z "$modules" ] || [ ! -x "$VM/busybox/bin/busybox" ]; then
    echo "fetch-kernel.sh: $VM is incomplete (vmlinuz '$vmlinuz', modules '$modules', busybox)" >&2
    exit 1
fi
echo "fetch-kernel.sh: guest kernel $vmlinuz, busybox $bver in $VM"
