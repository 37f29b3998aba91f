#!/bin/bash
# Run the REAL ClusterLabs sbd daemon (`sbd watch`) for node NODE on one
# scratch disk, with every way it could reset or stop this machine taken away:
#   * -w /dev/null      watchdog_use = 0 (sbd compares the path with "/dev/null")
#   * -W -W             an even count of -W: watchdog disabled (belt and braces)
#   * -Z -Z             debug mode 2: every self-fence logs and exit(0)s before
#                       sysrq or reboot(2). EXACTLY two: one -Z crashdumps via
#                       sysrq, three really reboot after 10 s
#   * SBD_PACEMAKER=no  no pacemaker/cluster servants: disk only
#   * pid namespace     a stray reboot(2) only ends the namespace's init
#   * mount namespace   private tmpfs /dev holding null, zero, (u)random, full
#                       and DISK only (no /dev/watchdog*, its own /dev/log);
#                       /proc/sysrq-trigger and /proc/sys/kernel/sysrq are
#                       /dev/null in here
#   * -R                no realtime priority; SBD_MOVE_TO_ROOT_CGROUP=no
# Usage: sbd-watch-sandbox.sh DISK NODE DIR
#   DISK  a block device directly under /dev (e.g. /dev/loop3)
#   DIR   an existing directory: DIR/sbd.log (syslog + "sandbox:" lines),
#         DIR/sbd.pid (the inquisitor's pid inside the namespace)
# The script execs `unshare --kill-child`: its PID is unshare's, and killing
# that PID (SIGKILL is fine) kills the namespace's init and with it every
# process of the sandbox. It exits by itself when the daemon stops (message
# `exit`). Environment: SBD (default /usr/sbin/sbd), PYTHON (default python3).
set -eu
if [ $# -ne 3 ]; then
    echo "usage: $0 DISK NODE DIR" >&2
    exit 64
fi
DISK=$1 NODE=$2 DIR=$3
case "$DISK" in
/dev/*/* | /dev/.* | /dev/) echo "$0: DISK must be a device directly under /dev: $DISK" >&2; exit 64 ;;
/dev/*) ;;
*) echo "$0: DISK must be a device directly under /dev: $DISK" >&2; exit 64 ;;
esac
[ -b "$DISK" ] || { echo "$0: $DISK is not a block device" >&2; exit 1; }
[ -d "$DIR" ] || { echo "$0: $DIR is not a directory" >&2; exit 1; }
DIR=$(cd "$DIR" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
SBD=${SBD:-/usr/sbin/sbd}
if [ -z "${PYTHON:-}" ] && [ -x /usr/bin/python3 ]; then PYTHON=/usr/bin/python3; fi
PYTHON=$(command -v "${PYTHON:-python3}")
mkdir -p "$DIR/hostdev"

exec unshare --pid --fork --kill-child --mount --propagation private --mount-proc \
    env DISK="$DISK" NODE="$NODE" DIR="$DIR" HERE="$HERE" SBD="$SBD" PYTHON="$PYTHON" \
    bash -c '
set -eu
LOG=$DIR/sbd.log
say() { echo "sandbox: $*" >>"$LOG"; }
# A private /dev: only what sbd needs, never a watchdog.
mount --bind /dev "$DIR/hostdev"
mount -t tmpfs -o mode=755 tmpfs /dev
for n in null zero random urandom full "$(basename "$DISK")"; do
    touch "/dev/$n"
    mount --bind "$DIR/hostdev/$n" "/dev/$n"
done
mkdir /dev/shm
mount -t tmpfs tmpfs /dev/shm
umount -l "$DIR/hostdev"
for f in /proc/sysrq-trigger /proc/sys/kernel/sysrq; do
    if [ -e "$f" ]; then mount --bind /dev/null "$f"; fi
done
if ls /dev/watchdog* >/dev/null 2>&1; then say "REFUSING: a watchdog device is visible"; exit 1; fi
"$PYTHON" "$HERE/syslog_sink.py" /dev/log "$LOG" &
for _ in $(seq 100); do [ -S /dev/log ] && break; sleep 0.02; done
[ -S /dev/log ] || { say "syslog sink did not start"; exit 1; }
say "pid-ns init=$$ ns=$(readlink /proc/self/ns/pid) disk=$DISK node=$NODE"
rc=0
SBD_PACEMAKER=no SBD_SYNC_RESOURCE_STARTUP=no SBD_MOVE_TO_ROOT_CGROUP=no \
SBD_WATCHDOG_DEV=/dev/null SBD_DELAY_START=no SBD_STARTMODE=always \
    "$SBD" -d "$DISK" -n "$NODE" -w /dev/null -W -W -Z -Z -R -v -v \
    -p "$DIR/sbd.pid" watch || rc=$?
say "sbd watch parent returned rc=$rc"
# sbd daemonizes: keep this init (and so the namespace) alive while it runs.
P=$(tr -dc 0-9 <"$DIR/sbd.pid" 2>/dev/null || true)
say "inquisitor ns-pid=${P:-none}"
while [ -n "$P" ] && [ -e "/proc/$P" ]; do sleep 0.1; done
say "sbd inquisitor gone, exiting"
'
