#!/bin/bash
# SBD poison-pill benchmark (issue 5). Not part of CI; run by hand, as root:
#     bash bench/sbd_bench.sh [RUNS] [MSGWAIT]
# On the same loop disk(s), created by the real sbd with msgwait MSGWAIT
# (default 2 s, watchdog MSGWAIT/2), medians of RUNS (default 5):
#   1. one disk:    sbd -d LOOP message node-b reset
#                   fence_sbd --devices=LOOP -n node-b -o reboot
#                   fence_ironfence_sbd --devices=LOOP -n node-b -o reboot
#   2. three disks: the same with -d L1 -d L2 -d L3 / --devices=L1,L2,L3
# Each is printed with its overhead above msgwait (every one of them must
# wait msgwait: that is what makes the pill a fence). Before every run the
# mailbox is cleared (by our agent, which does not wait msgwait).
# Binaries: $IRONFENCE_BIN (a directory holding `ironfence`), else this
# checkout's target/release (built here). Detaches its loop devices on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
MSGWAIT=${2:-2}
WATCHDOG=$(( MSGWAIT / 2 > 0 ? MSGWAIT / 2 : 1 ))
if [ -n "${IRONFENCE_BIN:-}" ]; then
    BIN=$IRONFENCE_BIN
else
    cargo build --release --quiet
    BIN=$PWD/target/release
fi
export IRONFENCE=$BIN/ironfence
AGENT=$PWD/fence-agents/fence_ironfence_sbd
for tool in sbd fence_sbd losetup; do
    command -v "$tool" >/dev/null || { echo "sbd_bench: $tool is missing (tests/lab/install.sh)" >&2; exit 1; }
done
[ "$(id -u)" -eq 0 ] || { echo "sbd_bench: needs root (losetup)" >&2; exit 1; }
WORK=$(mktemp -d /tmp/ironfence-sbd-bench-XXXXXX)
LOOPS=()
cleanup() {
    for l in "${LOOPS[@]}"; do losetup -d "$l" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

now() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
ms() { awk -v ns="$1" 'BEGIN {printf "%.1f", ns/1e6}'; }
over() { awk -v ns="$1" -v mw="$MSGWAIT" 'BEGIN {printf "%.1f", ns/1e6 - mw*1000}'; }

for i in 1 2 3; do
    truncate -s 4M "$WORK/disk$i.img"
    l=$(losetup -f --show "$WORK/disk$i.img")
    LOOPS+=("$l")
    sbd -d "$l" -1 "$WATCHDOG" -2 0 -4 "$MSGWAIT" create >/dev/null 2>&1
    sbd -d "$l" allocate node-a >/dev/null 2>&1
    sbd -d "$l" allocate node-b >/dev/null 2>&1
done
echo "sbd $(dpkg-query -W -f='${Version}' sbd 2>/dev/null || true), fence_sbd $(dpkg-query -W -f='${Version}' fence-agents-sbd 2>/dev/null || dpkg-query -W -f='${Version}' fence-agents 2>/dev/null || true), ironfence $("$IRONFENCE" agent sbd -V | awk '{print $2}')"
echo "loop disks: ${LOOPS[*]}; msgwait ${MSGWAIT} s, watchdog ${WATCHDOG} s; ${RUNS} runs each"

# bench NAME DEVICES_CSV -- COMMAND...: time COMMAND RUNS times.
bench() {
    local name=$1 csv=$2
    shift 3
    : > "$WORK/t.ns"
    for _ in $(seq "$RUNS"); do
        "$AGENT" --devices="$csv" -n node-b -o on >/dev/null
        local t
        t=$(now)
        "$@" >/dev/null 2>"$WORK/err" || { echo "$name failed: $(cat "$WORK/err")" >&2; exit 1; }
        echo $(( $(now) - t )) >> "$WORK/t.ns"
    done
    local m
    m=$(median < "$WORK/t.ns")
    printf '  %s\n      median %9s ms   above msgwait %7s ms   (runs: %s)\n' "$name" "$(ms "$m")" "$(over "$m")" \
        "$(while read -r x; do printf '%s ' "$(ms "$x")"; done < "$WORK/t.ns")"
}

for n in 1 3; do
    DISKS=("${LOOPS[@]:0:$n}")
    CSV=$(IFS=,; echo "${DISKS[*]}")
    SBD_ARGS=()
    for d in "${DISKS[@]}"; do SBD_ARGS+=(-d "$d"); done
    echo "== $n disk(s): $CSV"
    bench "sbd ${SBD_ARGS[*]} message node-b reset" "$CSV" -- sbd "${SBD_ARGS[@]}" message node-b reset
    bench "fence_sbd --devices=$CSV -n node-b -o reboot" "$CSV" -- fence_sbd --devices="$CSV" -n node-b -o reboot
    bench "fence_ironfence_sbd --devices=$CSV -n node-b -o reboot" "$CSV" -- "$AGENT" --devices="$CSV" -n node-b -o reboot
    for d in "${DISKS[@]}"; do
        line=$(sbd -d "$d" list | awk -F'\t' '$2 == "node-b"')
        echo "     $d: $line"
    done
done
