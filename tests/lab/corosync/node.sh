#!/bin/sh
# node.sh NS DIR - run corosync in the foreground in network namespace NS,
# with DIR/corosync.conf (corosync-conf.sh) and a private mount namespace
# whose /run is DIR/run: corosync hard-codes its lock file /run/corosync.pid,
# so several nodes on one host need one /run each. Clients need no /run:
# libqb's IPC sockets are abstract unix sockets, which belong to the network
# namespace, so any client runs as `ip netns exec NS CLIENT`.
# Everything is exec'd: the PID of this script is corosync's PID.
set -eu
ns=$1
d=$2
mkdir -p "$d/run" "$d/lib"
exec ip netns exec "$ns" unshare --mount --propagation private \
    sh -c 'mount --bind "$0/run" /run && exec corosync -f -c "$0/corosync.conf"' "$d"
