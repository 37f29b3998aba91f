#!/usr/bin/python3
"""IPMI benchmark (issue 3). Not part of CI; run by hand:

    python3 bench/ipmi_bench.py [RUNS] [FLEET]

Same OpenIPMI ipmi_sim (cipher 3), same run, medians of RUNS (default 10):
  1. fence_ipmilan -o reboot   vs  fence_ironfence_ipmi -o reboot   (both verify off before on)
  2. fence_ipmilan -o status   vs  fence_ironfence_ipmi -o status
Then FLEET (default 50) ipmi_sim instances fenced off at once:
  3. through ironfenced (one `ironfence off` per node, all concurrent): wall, daemon peak RSS
  4. FLEET parallel fence_ipmilan -o off: wall, summed peak RSS of the processes
Network: 127.0.0.1 only. Every process started is stopped by PID.
Needs: tests/lab/install.sh, and a release build (cargo build --release).
"""
import os, resource, shutil, signal, socket, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release")
CTL = os.path.join(ROOT, "tests", "lab", "chassis_ctl.sh")
RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 10
FLEET = int(sys.argv[2]) if len(sys.argv) > 2 else 50
WORK = tempfile.mkdtemp(prefix="ironfence-ipmi-bench-")
PROCS = []


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def start_sim(i):
    port = free_port()
    d = os.path.join(WORK, f"bmc{i}")
    os.makedirs(os.path.join(d, "state"))
    with open(os.path.join(d, "power"), "w") as f:
        f.write("1")
    with open(os.path.join(d, "sim.emu"), "w") as f:
        f.write("mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02\nmc_enable 0x20\n")
    with open(os.path.join(d, "lan.conf"), "w") as f:
        f.write(f'''name "bench{i}"
set_working_mc 0x20
  startlan 1
    addr 127.0.0.1 {port}
    priv_limit admin
    allowed_auths_callback none md2 md5 straight
    allowed_auths_user none md2 md5 straight
    allowed_auths_operator none md2 md5 straight
    allowed_auths_admin none md2 md5 straight
    guid a123456789abcdefa123456789abcdef
  endlan
  chassis_control "{CTL} {d}/power"
  user 2 true "admin" "secret" admin 10 md5 md2 straight
''')
    p = subprocess.Popen(["ipmi_sim", "-c", f"{d}/lan.conf", "-f", f"{d}/sim.emu", "-s", f"{d}/state", "-n"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    PROCS.append(p)
    return port, d


def wait_ready(port):
    for _ in range(100):
        r = subprocess.run(["ipmitool", "-I", "lanplus", "-C", "3", "-N", "1", "-R", "1", "-H", "127.0.0.1", "-p", str(port),
                            "-U", "admin", "-P", "secret", "chassis", "power", "status"], capture_output=True)
        if r.returncode == 0:
            return
        time.sleep(0.1)
    raise SystemExit(f"ipmi_sim on {port} not ready")


def timed(cmd, **kw):
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    return time.perf_counter() - t, r


def ours(port):
    return [os.path.join(BIN, "ironfence"), "agent", "ipmi", "--ip=127.0.0.1", f"--ipport={port}", "-l", "admin", "-p", "secret",
            "--lanplus", "--cipher=3"]


def theirs(port):
    return ["fence_ipmilan", "--ip=127.0.0.1", f"--ipport={port}", "-l", "admin", "-p", "secret", "--lanplus", "--cipher=3"]


def median_ms(xs):
    return statistics.median(xs) * 1000


def main():
    if not os.path.exists(os.path.join(BIN, "ironfence")):
        raise SystemExit("build first: cargo build --release")
    port, d = start_sim(0)
    wait_ready(port)
    rows = []
    for action in ["reboot", "status"]:
        t_theirs, t_ours = [], []
        for _ in range(RUNS):
            dt, r = timed(theirs(port) + ["-o", action])
            assert r.returncode in (0, 2), r.stderr
            t_theirs.append(dt)
            dt, r = timed(ours(port) + ["-o", action])
            assert r.returncode in (0, 2), r.stderr
            t_ours.append(dt)
        a, b = median_ms(t_theirs), median_ms(t_ours)
        rows.append((action, a, b))
        print(f"{action:7} fence_ipmilan median {a:8.1f} ms   fence_ironfence_ipmi median {b:7.1f} ms   ratio {a / b:6.1f}x", flush=True)

    # Fleet.
    sims = [start_sim(i + 1) for i in range(FLEET)]
    for p, _ in sims:
        wait_ready(p)
    pw = os.path.join(WORK, "pw")
    with open(pw, "w") as f:
        f.write("secret\n")
    cfg = [f'[daemon]\nsocket = "{WORK}/d.sock"\nstate_dir = "{WORK}/state"\nstorm_max_share = 1.0\nverify_interval = "100ms"\n']
    for i, (p, _) in enumerate(sims):
        cfg.append(f'[[node]]\nname = "n{i}"\n[[device]]\nname = "bmc{i}"\nkind = "ipmi"\naddress = "127.0.0.1"\nusername = "admin"\n'
                   f'password_file = "{pw}"\nhost_list = ["n{i}"]\nipmi = {{ port = {p}, cipher = 3 }}\n')
    with open(os.path.join(WORK, "fleet.toml"), "w") as f:
        f.write("".join(cfg))
    daemon = subprocess.Popen([os.path.join(BIN, "ironfenced"), "--config", os.path.join(WORK, "fleet.toml"), "--log", "warn"],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(os.path.join(WORK, "d.log"), "w"))
    PROCS.append(daemon)
    for _ in range(100):
        if subprocess.run([os.path.join(BIN, "ironfence"), "--socket", f"{WORK}/d.sock", "devices"], capture_output=True).returncode == 0:
            break
        time.sleep(0.05)
    t = time.perf_counter()
    clients = [subprocess.Popen([os.path.join(BIN, "ironfence"), "--socket", f"{WORK}/d.sock", "off", f"n{i}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for i in range(FLEET)]
    failures = sum(1 for c in clients if c.wait() != 0)
    wall_ours = time.perf_counter() - t
    hwm = 0
    with open(f"/proc/{daemon.pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    off = sum(1 for _, d in sims if open(os.path.join(d, "power")).read().strip() == "0")
    print(f"fleet   {FLEET} nodes off through ironfenced: wall {wall_ours * 1000:.0f} ms, {off}/{FLEET} off, {failures} failed, daemon peak RSS {hwm / 1024:.1f} MiB", flush=True)
    for _, d in sims:
        with open(os.path.join(d, "power"), "w") as f:
            f.write("1")
    # fence_ipmilan x FLEET in parallel, each under GNU time for its peak RSS.
    t = time.perf_counter()
    procs = [subprocess.Popen(["/usr/bin/time", "-f", "%M"] + theirs(p) + ["-o", "off"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for p, _ in sims]
    rss, failed = 0, 0
    for p in procs:
        _, err = p.communicate()
        if p.returncode != 0:
            failed += 1
        last = err.strip().splitlines()[-1] if err.strip() else "0"
        rss += int(last) if last.isdigit() else 0
    wall_theirs = time.perf_counter() - t
    off = sum(1 for _, d in sims if open(os.path.join(d, "power")).read().strip() == "0")
    print(f"fleet   {FLEET} parallel fence_ipmilan -o off: wall {wall_theirs * 1000:.0f} ms, {off}/{FLEET} off, {failed} failed, summed peak RSS {rss / 1024:.1f} MiB (python + ipmitool children not included)", flush=True)
    print(f"SUMMARY reboot_ms theirs={rows[0][1]:.1f} ours={rows[0][2]:.1f} ratio={rows[0][1] / rows[0][2]:.1f} "
          f"status_ms theirs={rows[1][1]:.1f} ours={rows[1][2]:.1f} fleet_wall_ms ours={wall_ours * 1000:.0f} theirs={wall_theirs * 1000:.0f} "
          f"daemon_rss_mib={hwm / 1024:.1f} theirs_rss_mib={rss / 1024:.1f} runs={RUNS} fleet={FLEET}")


try:
    main()
finally:
    for p in PROCS:
        try:
            p.send_signal(signal.SIGKILL)
            p.wait(timeout=5)
        except Exception:
            pass
    shutil.rmtree(WORK, ignore_errors=True)
