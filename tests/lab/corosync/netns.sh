#!/bin/sh
# netns.sh - the network of a corosync lab cluster, entirely inside network
# namespaces (nothing is added to the root namespace):
#   PREFIX-sw        a Linux bridge br0 (the switch) with 192.0.2.254/24:
#                    a client of the cluster's services (a VIP)
#   PREFIX-n1..nN    node I: eth0 = 192.0.2.I/24 (TEST-NET-1), a veth whose
#                    peer pI sits on the bridge; lo up
# Each cluster has a bridge of its own, so clusters with different prefixes
# (one per test) reuse the same addresses without seeing each other.
#
#   netns.sh up PREFIX N      create the namespaces and links
#   netns.sh mgmt PREFIX N    a management network besides the cluster
#                             link: bridge br1 in PREFIX-sw with
#                             198.51.100.254/24 (where the test BMCs listen),
#                             node I's interface `mgmt` = 198.51.100.I/24;
#                             `cut` leaves it up (BMCs stay reachable)
#   netns.sh cut PREFIX I     node I's eth0 down (a partition: I alone)
#   netns.sh heal PREFIX I    node I's eth0 up again
#   netns.sh down PREFIX N    delete the namespaces (stop their processes first:
#                             `ip netns pids NS` lists them)
set -eu
cmd=$1
prefix=$2
case "$cmd" in
up)
    n=$3
    ip netns add "$prefix-sw"
    ip -n "$prefix-sw" link set lo up
    ip -n "$prefix-sw" link add br0 type bridge
    ip -n "$prefix-sw" addr add 192.0.2.254/24 dev br0
    ip -n "$prefix-sw" link set br0 up
    i=1
    while [ "$i" -le "$n" ]; do
        ns="$prefix-n$i"
        ip netns add "$ns"
        ip -n "$ns" link set lo up
        # both ends are created directly in their namespaces
        ip link add eth0 netns "$ns" type veth peer name "p$i" netns "$prefix-sw"
        ip -n "$prefix-sw" link set "p$i" master br0
        ip -n "$prefix-sw" link set "p$i" up
        ip -n "$ns" addr add "192.0.2.$i/24" dev eth0
        ip -n "$ns" link set eth0 up
        i=$((i + 1))
    done
    ;;
mgmt)
    n=$3
    ip -n "$prefix-sw" link add br1 type bridge
    ip -n "$prefix-sw" addr add 198.51.100.254/24 dev br1
    ip -n "$prefix-sw" link set br1 up
    i=1
    while [ "$i" -le "$n" ]; do
        ns="$prefix-n$i"
        ip link add mgmt netns "$ns" type veth peer name "m$i" netns "$prefix-sw"
        ip -n "$prefix-sw" link set "m$i" master br1
        ip -n "$prefix-sw" link set "m$i" up
        ip -n "$ns" addr add "198.51.100.$i/24" dev mgmt
        ip -n "$ns" link set mgmt up
        i=$((i + 1))
    done
    ;;
cut)
    ip -n "$prefix-n$3" link set eth0 down
    ;;
heal)
    ip -n "$prefix-n$3" link set eth0 up
    ;;
down)
    n=$3
    i=1
    while [ "$i" -le "$n" ]; do
        ip netns del "$prefix-n$i" 2>/dev/null || true
        i=$((i + 1))
    done
    ip netns del "$prefix-sw" 2>/dev/null || true
    ;;
*)
    echo "usage: netns.sh up|down|mgmt PREFIX N | cut|heal PREFIX I" >&2
    exit 64
    ;;
esac
