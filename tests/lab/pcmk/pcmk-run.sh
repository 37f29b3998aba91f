#!/bin/sh
# pcmk-run.sh PID CMD... - run a Pacemaker CLI (stonith_admin, crm_mon,
# cibadmin, ...) in the network and mount namespaces of process PID
# (pacemakerd started by pcmk-node.sh): its IPC is only reachable from that
# network namespace, and it sees the same overlaid /usr/sbin.
set -eu
PID=$1
shift
exec nsenter -t "$PID" -n -m -- "$@"
