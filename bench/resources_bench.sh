#!/bin/bash
# Resource failover benchmark (issue 12). Not part of CI; run by hand, as root:
#     bash bench/resources_bench.sh [RUNS]
# In one run (tests/resources_cluster.rs, bench_fault_to_vip): 3 nodes in
# network namespaces, corosync 3 (knet, token 1000 ms, consensus 1200 ms),
# one OpenIPMI ipmi_sim BMC per node whose power-off kills the node, an
# HTTP server on every node, a VIP (ocf:heartbeat:IPaddr2) preferring node3.
#   1. ironfenced, fence level 1 = our IPMI client on the node's BMC
#   2. ironfenced with the BMC dead (SIGSTOP) and an SBD level (msgwait 2 s)
#   3. Pacemaker 2.1 + fence_ipmilan + the same IPaddr2; then once with
#      the BMC dead and no SBD (60 s watched)
# Fault, RUNS times each (default 10): node3's BMC powers it off (in 2: the
# plug is pulled). Measured from the fault: corosync's detection, the fence
# recorded, the VIP answering HTTP from a survivor (curl from the switch
# every 20 ms). Also the idle RSS and CPU of node1's stack over 20 s.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/lab/install.sh >/dev/null
export IRONFENCE_FORBID_HARDWARE=1
IRONFENCE_BENCH_RUNS=${1:-10} cargo test --release --locked --features corosync \
    --test resources_cluster bench_fault_to_vip -- --ignored --nocapture 2>&1 |
    grep -E '^(fault|idle|ironfence|pacemaker|  (ironfence|pacemaker)|thread|test result)'
