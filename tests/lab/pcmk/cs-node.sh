#!/bin/sh
# cs-node.sh NS DIR - run corosync in the foreground inside network namespace
# NS, with a private mount namespace whose /run is DIR/run (corosync
# hard-codes /run/corosync.pid). DIR holds corosync.conf (corosync-conf.sh).
# exec all the way: the PID of this script is corosync's PID.
set -eu
NS=$1
D=$2
mkdir -p "$D/run" "$D/lib"
exec ip netns exec "$NS" unshare --mount --propagation private \
    sh -c 'mount --bind "$0/run" /run && exec corosync -f -c "$0/corosync.conf"' "$D"
