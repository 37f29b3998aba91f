#!/bin/sh
# Install ironfence, ironfenced and every fence_ironfence_* launcher into
# PREFIX/sbin (default /usr/sbin), where pacemaker-fenced and
# `stonith_admin --list-installed` look for fence agents.
#
#   fence-agents/install.sh [--prefix PREFIX] [BINDIR]
#
# BINDIR holds the built ironfence and ironfenced (default: target/release of
# this checkout; build with `cargo build --release`). DESTDIR is prepended to
# every destination, for staging and packaging:
#
#   DESTDIR=/tmp/stage fence-agents/install.sh --prefix /usr
#
# Idempotent: a file that is already installed with the same content and mode
# is left alone. Every file is replaced atomically (copy, then rename), so a
# running ironfenced or agent is never disturbed. Prints what it did.
set -eu

usage() {
	echo "usage: $0 [--prefix PREFIX] [BINDIR]   (DESTDIR is honoured)" >&2
	exit 64
}

here=$(cd "$(dirname -- "$0")" && pwd)
prefix=/usr
bindir=
while [ $# -gt 0 ]; do
	case $1 in
	--prefix)
		[ $# -ge 2 ] || usage
		prefix=$2
		shift 2
		;;
	--prefix=*)
		prefix=${1#--prefix=}
		shift
		;;
	-h | --help)
		sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	-*)
		usage
		;;
	*)
		[ -z "$bindir" ] || usage
		bindir=$1
		shift
		;;
	esac
done
[ -n "$bindir" ] || bindir=$(cd "$here/.." && pwd)/target/release
case $prefix in
/*) ;;
*)
	echo "install.sh: --prefix must be an absolute path, not '$prefix'" >&2
	exit 64
	;;
esac

dest=${DESTDIR:-}${prefix%/}/sbin

for bin in ironfence ironfenced; do
	if [ ! -f "$bindir/$bin" ] || [ ! -x "$bindir/$bin" ]; then
		echo "install.sh: $bindir/$bin is missing; build it first (cargo build --release) or pass the directory holding it" >&2
		exit 1
	fi
done

# put SOURCE: install SOURCE as $dest/NAME, mode 0755, unless already there.
put() {
	src=$1
	dst=$dest/$(basename -- "$src")
	if [ -f "$dst" ] && [ -x "$dst" ] && cmp -s "$src" "$dst"; then
		echo "unchanged  $dst"
		return
	fi
	tmp=$dst.install-tmp.$$
	cp -- "$src" "$tmp"
	chmod 0755 "$tmp"
	mv -f -- "$tmp" "$dst"
	echo "installed  $dst  (from $src)"
}

mkdir -p -- "$dest"
trap 'rm -f -- "$dest"/*.install-tmp.$$' EXIT
put "$bindir/ironfence"
put "$bindir/ironfenced"
found=0
for launcher in "$here"/fence_ironfence_*; do
	[ -f "$launcher" ] || continue
	put "$launcher"
	found=$((found + 1))
done
if [ "$found" -eq 0 ]; then
	echo "install.sh: no fence_ironfence_* launcher in $here" >&2
	exit 1
fi
