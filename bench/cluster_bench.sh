#!/bin/bash
# Cluster benchmark (issue 11). Not part of CI; run by hand, as root:
#     bash bench/cluster_bench.sh [RUNS]
# In one run, the same lab twice (tests/support/fencing_lab.rs): 3 nodes in
# network namespaces, corosync 3 (knet, token 1000 ms, consensus 1200 ms),
# one OpenIPMI ipmi_sim BMC per node whose power-off kills the node.
#   1. ironfenced ([cluster], level 1 = our IPMI client on the node's BMC)
#   2. Pacemaker 2.1 + one fence_ipmilan device per node, same BMCs
# Fault, RUNS times each (default 10): kill -9 node3's corosync. Measured
# from the fault: corosync's own detection (survivor's corosync.log "A new
# membership ... Members left: 3"), fence started (our coordinator's
# history "requested"; Pacemaker's "Requesting fencing"), the BMC's "set
# power 0", fence recorded (coordinator's "succeeded"; Pacemaker's "Peer
# node3 was terminated ... OK") and recorded on every survivor. Between
# runs node3 is powered on by its BMC (reboot fencing) and booted again.
# Prints per-run rows and medians.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/lab/install.sh >/dev/null
export IRONFENCE_FORBID_HARDWARE=1
IRONFENCE_BENCH_RUNS=${1:-10} cargo test --release --locked --features corosync \
    --test cluster_corosync bench_fault_to_fence -- --ignored --nocapture 2>&1 |
    grep -E '^(fault|ironfence|pacemaker|fence started|  (ironfence|pacemaker) #)'
