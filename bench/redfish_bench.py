#!/usr/bin/python3
"""Redfish benchmark (issue 4). Not part of CI; run by hand:

    python3 bench/redfish_bench.py [RUNS] [FLEET]

One OpenStack sushy-tools emulator (fake driver, TLS, bcrypt basic auth,
power delay pinned to 0), same run, medians of RUNS (default 10):
  1. fence_redfish -o reboot   vs  fence_ironfence_redfish -o reboot
  2. fence_redfish -o status   vs  fence_ironfence_redfish -o status
Then FLEET (default 50) systems on one emulator fenced off at once:
  3. through ironfenced (one `ironfence off` per node, all concurrent)
  4. FLEET parallel fence_redfish -o off
Both agents run with --ssl-insecure (the emulator's certificate is
self-signed; fence_redfish cannot take a CA file). Network: 127.0.0.1 only.
Needs: tests/lab/install.sh (the redfish venv), cargo build --release.
"""
import os, shutil, signal, socket, statistics, subprocess, sys, tempfile, time, uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release")
VENV = os.environ.get("IRONFENCE_REDFISH_VENV", "/opt/ironfence-lab/redfish-venv")
WRAPPER = os.path.join(ROOT, "tests", "lab", "sushy", "sushy_emulator_lab.py")
RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 10
FLEET = int(sys.argv[2]) if len(sys.argv) > 2 else 50
WORK = tempfile.mkdtemp(prefix="ironfence-redfish-bench-")
PROCS = []


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def start_emulator(n):
    port = free_port()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", f"{WORK}/key.pem", "-out", f"{WORK}/cert.pem"],
                   check=True, capture_output=True)
    uuids = [str(uuid.UUID(int=0x27946b599e444fa78e91f3527a1ef000 + i)) for i in range(n)]
    systems = ",\n".join(f'{{"uuid": "{u}", "name": "ctl-{i}", "power_state": "On", "nics": []}}' for i, u in enumerate(uuids))
    os.makedirs(f"{WORK}/state")
    with open(f"{WORK}/emu.conf", "w") as f:
        f.write(f'''SUSHY_EMULATOR_LISTEN_IP = "127.0.0.1"
SUSHY_EMULATOR_LISTEN_PORT = {port}
SUSHY_EMULATOR_SSL_CERT = "{WORK}/cert.pem"
SUSHY_EMULATOR_SSL_KEY = "{WORK}/key.pem"
SUSHY_EMULATOR_AUTH_FILE = "{WORK}/htpasswd"
SUSHY_EMULATOR_STATE_DIR = "{WORK}/state"
SUSHY_EMULATOR_FAKE_DRIVER = True
SUSHY_EMULATOR_FAKE_SYSTEMS = [
{systems}
]
''')
    env = dict(os.environ, SUSHY_FAKE_POWER_DELAY="0", PYTHONUNBUFFERED="1")
    env.pop("SUSHY_EMULATOR_CONFIG", None)
    p = subprocess.Popen([f"{VENV}/bin/python", WRAPPER, "--htpasswd", f"{WORK}/htpasswd", "admin", "secret",
                          "--config", f"{WORK}/emu.conf"], env=env, stdin=subprocess.DEVNULL,
                         stdout=open(f"{WORK}/emu.log", "w"), stderr=subprocess.STDOUT)
    PROCS.append(p)
    for _ in range(300):
        r = subprocess.run(["curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", f"https://127.0.0.1:{port}/redfish/v1/"],
                           capture_output=True, text=True)
        if r.stdout == "200":
            return port, uuids
        time.sleep(0.1)
    raise SystemExit("sushy-emulator did not start: " + open(f"{WORK}/emu.log").read())


def timed(cmd):
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    return time.perf_counter() - t, r


def ours(port, u):
    return [os.path.join(BIN, "ironfence"), "agent", "redfish", "--ip=127.0.0.1", f"--ipport={port}", "-l", "admin", "-p", "secret",
            "--ssl-insecure", f"--systems-uri=/redfish/v1/Systems/{u}"]


def theirs(port, u):
    return ["fence_redfish", "--ip=127.0.0.1", f"--ipport={port}", "-l", "admin", "-p", "secret", "--ssl-insecure",
            f"--systems-uri=/redfish/v1/Systems/{u}"]


def main():
    port, uuids = start_emulator(max(FLEET, 1))
    rows = []
    for action in ["reboot", "status"]:
        a_t, b_t = [], []
        for _ in range(RUNS):
            dt, r = timed(theirs(port, uuids[0]) + ["-o", action])
            assert r.returncode in (0, 2), r.stderr
            a_t.append(dt)
            dt, r = timed(ours(port, uuids[0]) + ["-o", action])
            assert r.returncode in (0, 2), r.stderr
            b_t.append(dt)
        a, b = statistics.median(a_t) * 1000, statistics.median(b_t) * 1000
        rows.append((action, a, b))
        print(f"{action:7} fence_redfish median {a:8.1f} ms   fence_ironfence_redfish median {b:7.1f} ms   ratio {a / b:5.1f}x", flush=True)

    cfg = [f'[daemon]\nsocket = "{WORK}/d.sock"\nstate_dir = "{WORK}/dstate"\nstorm_max_share = 1.0\nverify_interval = "100ms"\n']
    for i, u in enumerate(uuids[:FLEET]):
        cfg.append(f'[[node]]\nname = "n{i}"\n[[device]]\nname = "rf{i}"\nkind = "redfish"\naddress = "127.0.0.1"\nusername = "admin"\n'
                   f'password = "secret"\nhost_list = ["n{i}"]\ntimeouts = {{ off = "60s" }}\nretries = {{ off = 0 }}\n'
                   f'redfish = {{ port = {port}, insecure = true, system = "uuid:{u}" }}\n')
    with open(f"{WORK}/fleet.toml", "w") as f:
        f.write("".join(cfg))
    d = subprocess.Popen([os.path.join(BIN, "ironfenced"), "--config", f"{WORK}/fleet.toml", "--log", "error"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(f"{WORK}/d.log", "w"))
    PROCS.append(d)
    cli = os.path.join(BIN, "ironfence")
    for _ in range(100):
        if subprocess.run([cli, "--socket", f"{WORK}/d.sock", "devices"], capture_output=True).returncode == 0:
            break
        time.sleep(0.05)
    t = time.perf_counter()
    cs = [subprocess.Popen([cli, "--socket", f"{WORK}/d.sock", "off", f"n{i}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
          for i in range(FLEET)]
    failed = sum(1 for c in cs if c.wait() != 0)
    ours_wall = time.perf_counter() - t
    hwm = 0
    with open(f"/proc/{d.pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    print(f"fleet   {FLEET} systems off through ironfenced: wall {ours_wall * 1000:.0f} ms, {failed} failed, daemon peak RSS {hwm / 1024:.1f} MiB", flush=True)
    for u in uuids[:FLEET]:
        subprocess.run(ours(port, u) + ["-o", "on"], capture_output=True)
    t = time.perf_counter()
    ps = [subprocess.Popen(["/usr/bin/time", "-f", "%M"] + theirs(port, u) + ["-o", "off"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True) for u in uuids[:FLEET]]
    rss, failed2 = 0, 0
    for p in ps:
        _, err = p.communicate()
        failed2 += p.returncode != 0
        last = err.strip().splitlines()[-1] if err.strip() else "0"
        rss += int(last) if last.isdigit() else 0
    theirs_wall = time.perf_counter() - t
    print(f"fleet   {FLEET} parallel fence_redfish -o off: wall {theirs_wall * 1000:.0f} ms, {failed2} failed, summed peak RSS {rss / 1024:.1f} MiB", flush=True)
    print(f"SUMMARY reboot_ms theirs={rows[0][1]:.1f} ours={rows[0][2]:.1f} ratio={rows[0][1] / rows[0][2]:.1f} "
          f"status_ms theirs={rows[1][1]:.1f} ours={rows[1][2]:.1f} fleet_ms ours={ours_wall * 1000:.0f} theirs={theirs_wall * 1000:.0f} "
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
