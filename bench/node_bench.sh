#!/bin/bash
# Node daemon benchmark (issue 6). Not part of CI; run by hand, as root:
#     bash bench/node_bench.sh [SECONDS]
# 1. Idle cost: on one loop disk (sbd -1 5 -4 10), the real sbd watches slot
#    node-a (in its sandbox: tests/lab/sbd/sbd-watch-sandbox.sh, no watchdog)
#    while ironfenced watches slot node-b (recorder watchdog, 1 s loop like
#    sbd's), both for SECONDS (default 60). Reported: RSS summed over each
#    one's processes at the end, and CPU time (utime+stime) used over the
#    window, from /proc.
# 2. Time from poison pill written to self-fence, ours vs sbd's, in QEMU
#    guests: `cargo test --test node_qemu bench -- --ignored --nocapture`.
# Binaries: this checkout's target/release (built here).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-60}
cargo build --release --quiet
BIN=$PWD/target/release
export IRONFENCE_FORBID_HARDWARE=1
for tool in sbd losetup unshare; do
    command -v "$tool" >/dev/null || { echo "node_bench: $tool is missing (tests/lab/install.sh)" >&2; exit 1; }
done
W=$(mktemp -d /var/tmp/ironfence-node-bench.XXXXXX)
LOOP=""; SANDBOX=""; DAEMON=""
cleanup() {
    [ -n "$DAEMON" ] && kill -TERM "$DAEMON" 2>/dev/null && wait "$DAEMON" 2>/dev/null || true
    [ -n "$SANDBOX" ] && kill -KILL "$SANDBOX" 2>/dev/null || true
    sleep 0.5
    [ -n "$LOOP" ] && losetup -d "$LOOP" 2>/dev/null || true
    rm -rf "$W"
}
trap cleanup EXIT
truncate -s 4M "$W/disk.img"
LOOP=$(losetup -f --show "$W/disk.img")
sbd -d "$LOOP" -1 5 -4 10 create >/dev/null
sbd -d "$LOOP" allocate node-a >/dev/null
sbd -d "$LOOP" allocate node-b >/dev/null

# The real sbd, sandboxed.
bash tests/lab/sbd/sbd-watch-sandbox.sh "$LOOP" node-a "$W" > "$W/sandbox.out" 2>&1 &
SANDBOX=$!
for _ in $(seq 100); do grep -q "Monitoring slot" "$W/sbd.log" 2>/dev/null && break; sleep 0.1; done
grep -q "Monitoring slot" "$W/sbd.log" || { echo "node_bench: sbd did not start: $(cat "$W/sandbox.out")" >&2; exit 1; }

# ironfenced on the same disk.
cat > "$W/ironfence.toml" <<EOC
[daemon]
socket = "$W/ironfenced.sock"
state_dir = "$W/state"
node_name = "node-b"
[watchdog]
kind = "recorder"
device = "$W/watchdog.jsonl"
timeout = "5s"
interval = "1s"
[sbd]
devices = ["$LOOP"]
io_timeout = "3s"
[self_fence]
method = "recorder"
record_file = "$W/self-fence.jsonl"
EOC
"$BIN/ironfenced" --config "$W/ironfence.toml" --log warn 2> "$W/ironfenced.log" &
DAEMON=$!
for _ in $(seq 100); do [ -s "$W/watchdog.jsonl" ] && break; sleep 0.1; done

# The sandbox's processes: every descendant of the unshare PID.
descendants() { local p=$1; echo "$p"; for c in $(cat /proc/"$p"/task/*/children 2>/dev/null); do descendants "$c"; done; }
sbd_pids() { for p in $(descendants "$SANDBOX"); do if [ "$(cat /proc/"$p"/comm 2>/dev/null)" = sbd ]; then echo "$p"; fi; done; }
cpu_ticks() { local t=0 p u s; for p in "$@"; do read -r u s < <(awk '{print $14, $15}' /proc/"$p"/stat 2>/dev/null || echo "0 0"); t=$((t + u + s)); done; echo "$t"; }
rss_kb() { local t=0; for p in "$@"; do t=$((t + $(awk '/^VmRSS/ {print $2}' /proc/"$p"/status 2>/dev/null || echo 0))); done; echo $t; }

SBD=$(sbd_pids | tr '\n' ' ')
HZ=$(getconf CLK_TCK)
s0=$(cpu_ticks $SBD); o0=$(cpu_ticks $DAEMON)
sleep "$SECS"
s1=$(cpu_ticks $SBD); o1=$(cpu_ticks $DAEMON)
echo "idle for ${SECS} s, watching one disk with a 1 s loop:"
printf "  sbd 1.5.2   (%d processes): RSS %6d KiB, CPU %5.2f s (%.3f %%)\n" \
    "$(echo $SBD | wc -w)" "$(rss_kb $SBD)" "$(echo "($s1-$s0)/$HZ" | bc -l)" "$(echo "($s1-$s0)/$HZ/$SECS*100" | bc -l)"
printf "  ironfenced  (1 process):   RSS %6d KiB, CPU %5.2f s (%.3f %%)\n" \
    "$(rss_kb $DAEMON)" "$(echo "($o1-$o0)/$HZ" | bc -l)" "$(echo "($o1-$o0)/$HZ/$SECS*100" | bc -l)"
echo "  (ironfenced also serves the fencer API; keepalives fed: $(grep -c keepalive "$W/watchdog.jsonl"))"
