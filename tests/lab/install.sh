#!/bin/bash
# Install the real peers the integration tests run against (tests/support/mod.rs,
# tests/lab_*.rs). Run as root on Debian 12:
#     sudo tests/lab/install.sh
# When every needed command and file is already present it does nothing (no
# apt-get at all), so running it before every local test run is cheap.
# Services are never started: while apt runs, a policy-rc.d that denies every
# start is in place (the corosync package would otherwise start it on the host).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

# Debian packages, one per line, each with the reason the tests need it.
PACKAGES=(
    openipmi      # ipmi_sim: OpenIPMI's LAN BMC simulator, the IPMI peer our client talks to
    ipmitool      # ipmitool: readiness probe of every ipmi_sim; fence_ipmilan drives the BMC through it
    fence-agents  # fence_ipmilan (baseline agent) and /usr/share/cluster/relaxng/metadata.rng (agent metadata schema)
    libxml2-utils # xmllint: validates our agents' metadata XML against metadata.rng
    procps        # ps: the harness finds an ipmi_sim's children with `ps --ppid` to stop them by PID
    corosync      # corosync 3: membership and quorum of the one-node cluster in tests/pacemaker_ipmi.rs
    pacemaker     # pacemakerd, pacemaker-fenced: the real fencer that runs fence_ironfence_ipmi
    pacemaker-cli-utils # stonith_admin, crm_mon: register our agent, fence through it, read the history; crm_simulate: the placement differential test
    resource-agents # ocf:heartbeat:Dummy and IPaddr2: the real OCF agents the resource manager runs (tests/resources_*.rs)
    iproute2      # ip netns: tests/pacemaker_ipmi.rs runs its cluster in a network namespace it makes
    util-linux    # unshare, nsenter: private mount namespaces (overlay on /usr/sbin) and entering them
    python3-venv  # /usr/bin/python3 -m venv: the lab venvs of PyPI peers (pyghmi's fake BMC; sushy-tools and sushy)
    curl          # tests/redfish_sim_interop.rs: raw HTTP checks of our Redfish simulator
    openssl       # certificate fingerprints in the Redfish TLS tests
    sbd           # ClusterLabs sbd 1.5.2: on-disk interop and its sandboxed daemon (tests/sbd_interop.rs, tests/lab/sbd/)
    qemu-system-x86 # qemu-system-x86_64 (TCG): guests with an i6300esb watchdog and shared virtio disks (tests/support/qemu.rs, tests/qemu_lab.rs)
    gzip          # compresses the QEMU guests' base initramfs (the kernel finds the end of a gzip archive, so a per-guest cpio can follow)
    libc-bin      # ldd: the libraries /usr/sbin/sbd needs inside the QEMU guests
    # corosync's client libraries, which `--features corosync` links (rust-corosync links
    # cpg, cfg, cmap, quorum and votequorum): src/quorum/corosync.rs, tests/quorum_corosync.rs
    libcorosync-common-dev libquorum-dev libvotequorum-dev libcmap-dev libcfg-dev libcpg-dev
    pkg-config    # finds those libraries for builds that ask pkg-config
)

# What must exist afterwards; if all of it already does, apt is skipped.
NEEDED_COMMANDS=(ipmi_sim ipmitool fence_ipmilan fence_redfish xmllint ps
    corosync corosync-cfgtool corosync-quorumtool pkg-config pacemakerd stonith_admin crm_mon crm_simulate ip unshare nsenter curl openssl sbd
    qemu-system-x86_64 gzip ldd)
NEEDED_FILES=(/usr/share/cluster/relaxng/metadata.rng
    /usr/lib/ocf/resource.d/heartbeat/Dummy /usr/lib/ocf/resource.d/heartbeat/IPaddr2
    /usr/lib/ocf/resource.d/pacemaker/Stateful
    /usr/lib/pacemaker/pacemaker-fenced
    /usr/include/corosync/corotypes.h /usr/include/corosync/quorum.h
    /usr/include/corosync/votequorum.h /usr/include/corosync/cmap.h
    /usr/include/corosync/cfg.h /usr/include/corosync/cpg.h)

# Like `command -v`, but also looks in the sbin directories, which a non-root
# PATH often lacks (fence_ipmilan lives in /usr/sbin).
have_command() {
    local cmd=$1 dir
    command -v "$cmd" >/dev/null 2>&1 && return 0
    for dir in /usr/local/sbin /usr/sbin /sbin; do
        [ -x "$dir/$cmd" ] && return 0
    done
    return 1
}

missing=()
for cmd in "${NEEDED_COMMANDS[@]}"; do
    have_command "$cmd" || missing+=("command $cmd")
done
for file in "${NEEDED_FILES[@]}"; do
    [ -e "$file" ] || missing+=("file $file")
done

# PyPI peers live in venvs of their own (idempotent, no network when
# complete); they need python3-venv, so they come after apt.
venvs() {
    bash "$here/pyghmi-venv.sh"
    bash "$here/redfish-venv.sh"
    # the QEMU lab's guest kernel and busybox (apt-get download + dpkg-deb -x
    # into /opt/ironfence-lab/vm, nothing installed; idempotent)
    bash "$here/vm/fetch-kernel.sh"
}

if [ ${#missing[@]} -eq 0 ]; then
    venvs
    echo "install.sh: all test peers present (${NEEDED_COMMANDS[*]}, ${NEEDED_FILES[*]}); nothing to do"
    exit 0
fi

echo "install.sh: missing: ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
    echo "install.sh: must run as root to install: ${PACKAGES[*]}" >&2
    exit 1
fi

# Deny every service start while packages are configured; put back what was there.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# from ironfence tests/lab/install.sh, for one apt run\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
    trap 'rm -f "$policy"' EXIT
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${PACKAGES[@]}"

# Prove the install delivered what the tests look for.
still_missing=()
for cmd in "${NEEDED_COMMANDS[@]}"; do
    have_command "$cmd" || still_missing+=("command $cmd")
done
for file in "${NEEDED_FILES[@]}"; do
    [ -e "$file" ] || still_missing+=("file $file")
done
if [ ${#still_missing[@]} -ne 0 ]; then
    echo "install.sh: still missing after apt-get install: ${still_missing[*]}" >&2
    exit 1
fi
venvs
echo "install.sh: test peers installed"
