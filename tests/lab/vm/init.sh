#!/bin/busybox sh
# /init of every QEMU lab guest (tests/support/qemu.rs builds the initramfs).
#
# Generic: mounts, hostname, modules, then the test's own /scenario.sh (from
# the per-guest cpio appended to the base initramfs). Everything it prints
# goes to the serial console (ttyS0), which the harness reads line by line.
#
#   INIT_READY uptime=S        modules loaded, about to run /scenario.sh
#   SCENARIO_END rc=N          /scenario.sh returned N; the guest powers off
#
# Kernel command line (set by the harness):
#   lab.id=NAME                hostname
#   lab.modules=GROUP[,GROUP]  extra module groups to load from
#                              /lib/modules/GROUP.list (e.g. ipmi)
# Modules are flat in /lib/modules/NAME.ko; /lib/modules/base.list names the
# ones always loaded, dependencies first. A missing one is reported, not fatal.
# PID 1 never exits: if it did, the kernel would panic (and with panic=-1
# reset), which a test would misread as a guest reset.

/bin/busybox mkdir -p /proc /sys /dev /tmp /run /var/run /var/lib /var/log /bin /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
for d in /tmp /run /var/run /var/lib /var/log /dev/shm; do
    mount -t tmpfs tmpfs "$d"
done
mkdir -p /root /etc/ironfence /var/lib/ironfence /var/lib/pacemaker/cores /run/ironfence

cmdline_value() {
    # lab.KEY=VALUE from /proc/cmdline (first match)
    for word in $(cat /proc/cmdline); do
        case "$word" in "lab.$1="*) echo "${word#lab.$1=}"; return ;; esac
    done
}

ID=$(cmdline_value id)
[ -n "$ID" ] && hostname "$ID"
ifconfig lo 127.0.0.1 up 2>/dev/null

load_list() {
    [ -f "/lib/modules/$1.list" ] || { echo "INIT: no module list $1"; return; }
    for m in $(cat "/lib/modules/$1.list"); do
        [ -d "/sys/module/$m" ] && continue
        insmod "/lib/modules/$m.ko" 2>/dev/null || echo "INIT: insmod $m failed"
    done
}
load_list base
for group in $(cmdline_value modules | tr ',' ' '); do
    load_list "$group"
done

echo 1 > /proc/sys/kernel/sysrq
echo "INIT_READY uptime=$(cut -d' ' -f1 /proc/uptime) id=$ID"

if [ -f /scenario.sh ]; then
    sh /scenario.sh </dev/null
    rc=$?
else
    echo "INIT: no /scenario.sh"
    rc=127
fi
echo "SCENARIO_END rc=$rc uptime=$(cut -d' ' -f1 /proc/uptime)"
sync
poweroff -f
# poweroff -f does not return; if it ever did, power off the hard way
echo o > /proc/sysrq-trigger
while true; do sleep 1; done
