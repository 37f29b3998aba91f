#!/bin/bash
# Benchmark of the fencing core (issue 2). Not part of CI; run by hand:
#     bash bench/core.sh [RUNS]
# Measures, medians of RUNS (default 10):
#   1. `ironfence demo` wall time (release build);
#   2. one reboot through ironfenced with a `sim` device (CLI -> socket ->
#      fencer -> verify off -> on -> verify -> fsync'd history -> reply);
#   3. fence_ipmilan -o reboot run directly vs ironfence reboot through the
#      daemon with an `agent` device running the same fence_ipmilan, on the
#      same OpenIPMI ipmi_sim (cipher 3): the daemon's overhead and what the
#      extra read-back costs. (Our own IPMI client arrives with issue 3.)
# Needs: tests/lab/install.sh done. Network: 127.0.0.1 only. Stops what it
# starts, by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-10}
cargo build --release --quiet
BIN=$PWD/target/release
WORK=$(mktemp -d /tmp/ironfence-bench-XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

now() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
ms() { awk -v ns="$1" 'BEGIN {printf "%.1f", ns/1e6}'; }

echo "== 1. ironfence demo ($RUNS runs)"
: > "$WORK/demo.ns"
for _ in $(seq "$RUNS"); do
    t=$(now); "$BIN/ironfence" demo >/dev/null; echo $(( $(now) - t )) >> "$WORK/demo.ns"
done
DEMO=$(median < "$WORK/demo.ns")
echo "demo median: $(ms "$DEMO") ms"

echo "== 2. reboot through ironfenced, sim device ($RUNS runs)"
cat > "$WORK/sim.toml" <<CONF
[daemon]
socket = "$WORK/sim.sock"
state_dir = "$WORK/sim-state"
storm_max_share = 1.0
[[node]]
name = "n1"
[[device]]
name = "bmc-n1"
kind = "sim"
host_list = ["n1"]
CONF
"$BIN/ironfenced" --config "$WORK/sim.toml" --log warn 2>"$WORK/simd.log" &
PIDS+=($!)
for _ in $(seq 100); do "$BIN/ironfence" --socket "$WORK/sim.sock" devices >/dev/null 2>&1 && break; sleep 0.05; done
: > "$WORK/sim.ns"
for _ in $(seq "$RUNS"); do
    t=$(now); "$BIN/ironfence" --socket "$WORK/sim.sock" reboot n1 >/dev/null; echo $(( $(now) - t )) >> "$WORK/sim.ns"
done
SIM=$(median < "$WORK/sim.ns")
echo "sim reboot through the daemon, median: $(ms "$SIM") ms"

echo "== 3. fence_ipmilan direct vs through ironfenced (agent device), same ipmi_sim ($RUNS runs each)"
PORT=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$WORK/bmc/state"; echo 1 > "$WORK/bmc/power"
cat > "$WORK/bmc/sim.emu" <<'EMU'
mc_setbmc 0x20
mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02
mc_enable 0x20
EMU
cat > "$WORK/bmc/lan.conf" <<CONF
name "bench$PORT"
set_working_mc 0x20
  startlan 1
    addr 127.0.0.1 $PORT
    priv_limit admin
    allowed_auths_callback none md2 md5 straight
    allowed_auths_user none md2 md5 straight
    allowed_auths_operator none md2 md5 straight
    allowed_auths_admin none md2 md5 straight
    guid a123456789abcdefa123456789abcdef
  endlan
  chassis_control "$PWD/tests/lab/chassis_ctl.sh $WORK/bmc/power"
  user 2 true "admin" "secret" admin 10 md5 md2 straight
CONF
ipmi_sim -c "$WORK/bmc/lan.conf" -f "$WORK/bmc/sim.emu" -s "$WORK/bmc/state" -n >"$WORK/bmc/sim.log" 2>&1 </dev/null &
PIDS+=($!)
for _ in $(seq 50); do ipmitool -I lanplus -C 3 -N 1 -R 1 -H 127.0.0.1 -p "$PORT" -U admin -P secret chassis power status >/dev/null 2>&1 && break; sleep 0.1; done
IPM=(fence_ipmilan --ip=127.0.0.1 --ipport="$PORT" --username=admin --password=secret --lanplus --cipher=3)
: > "$WORK/ipmilan.ns"
for _ in $(seq "$RUNS"); do
    t=$(now); "${IPM[@]}" -o reboot >/dev/null 2>&1; echo $(( $(now) - t )) >> "$WORK/ipmilan.ns"
done
DIRECT=$(median < "$WORK/ipmilan.ns")
cat > "$WORK/ipmi.toml" <<CONF
[daemon]
socket = "$WORK/ipmi.sock"
state_dir = "$WORK/ipmi-state"
storm_max_share = 1.0
verify_interval = "200ms"
[[node]]
name = "ctl-1"
[[device]]
name = "ipmi-ctl-1"
kind = "agent"
agent = "fence_ipmilan"
username = "admin"
password = "secret"
host_list = ["ctl-1"]
retries = { off = 0, on = 0 }
params = { ip = "127.0.0.1", ipport = $PORT, lanplus = true, cipher = 3 }
CONF
"$BIN/ironfenced" --config "$WORK/ipmi.toml" --log warn 2>"$WORK/ipmid.log" &
PIDS+=($!)
for _ in $(seq 100); do "$BIN/ironfence" --socket "$WORK/ipmi.sock" devices >/dev/null 2>&1 && break; sleep 0.05; done
: > "$WORK/daemon.ns"
for _ in $(seq "$RUNS"); do
    t=$(now); "$BIN/ironfence" --socket "$WORK/ipmi.sock" reboot ctl-1 >/dev/null; echo $(( $(now) - t )) >> "$WORK/daemon.ns"
done
VIA=$(median < "$WORK/daemon.ns")
echo "fence_ipmilan -o reboot direct, median:               $(ms "$DIRECT") ms"
echo "ironfence reboot via daemon (agent fence_ipmilan), median: $(ms "$VIA") ms"
echo "ratio daemon/direct: $(awk -v a="$VIA" -v b="$DIRECT" 'BEGIN {printf "%.2f", a/b}')"
echo
echo "SUMMARY demo_ms=$(ms "$DEMO") sim_reboot_ms=$(ms "$SIM") fence_ipmilan_ms=$(ms "$DIRECT") via_daemon_ms=$(ms "$VIA") runs=$RUNS"
