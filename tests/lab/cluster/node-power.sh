#!/bin/sh
# node-power.sh STATEFILE NS get|set|check PARM [VALUE]... - the
# `chassis_control` program of the BMC (an OpenIPMI ipmi_sim) of one
# simulated cluster node, the network namespace NS (tests/support/fencing_lab.rs).
#
# The power state and its log are kept by ../chassis_ctl.sh (STATEFILE holds
# 1 or 0; STATEFILE.log lists every `set`). On top of that, powering the
# node off really kills it, as pulling the plug would: its cluster link
# (eth0) goes down and every process in NS (corosync, ironfenced) gets
# SIGKILL, by PID (`ip netns pids`). Powering it on only brings the link back
# and records the state: the test "boots" the node by starting its processes
# again when it sees the power come back. `reset` is off then on. Like a
# real power loss, it drops the addresses an agent added (a VIP: the
# secondary addresses of eth0); the lab's boot empties the node's HA_RSCTMP.
set -eu
statefile=$1
ns=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
op=$1

kill_node() {
    ip -n "$ns" link set eth0 down 2>/dev/null || true
    # addresses an agent added (a VIP) do not survive a power loss
    ip -n "$ns" addr flush dev eth0 secondary 2>/dev/null || true
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    if [ -n "$pids" ]; then
        # shellcheck disable=SC2086
        kill -KILL $pids 2>/dev/null || true
    fi
    echo "$(date +%s.%N) killed: $pids" >>"$statefile.kills"
}

before=$(cat "$statefile" 2>/dev/null || echo 1)
"$here/../chassis_ctl.sh" "$statefile" "$@"
[ "$op" = set ] || exit 0
after=$(cat "$statefile" 2>/dev/null || echo 1)
shift
while [ $# -ge 2 ]; do
    case "$1" in
        reset) [ "$2" = 0 ] || { kill_node; ip -n "$ns" link set eth0 up; } ;;
    esac
    shift 2
done
if [ "$before" != 0 ] && [ "$after" = 0 ]; then
    kill_node
elif [ "$before" = 0 ] && [ "$after" = 1 ]; then
    ip -n "$ns" link set eth0 up 2>/dev/null || true
fi
exit 0
