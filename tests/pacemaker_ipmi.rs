//! The real Pacemaker fencer runs our IPMI agent: a one-node corosync 3 +
//! Pacemaker 2.1 cluster, started by the test entirely inside a network
//! namespace it makes, fences a non-member node (`ghost1`) through
//! `fence_ironfence_ipmi` and an OpenIPMI `ipmi_sim` BMC in the same
//! namespace, and records it in its history.
//!
//! Pieces (tests/lab/pcmk/, usable by hand, see each script's header):
//! - `ipmi-sim.sh NS DIR PORT`: the BMC on 127.0.0.1:PORT inside NS; chassis
//!   commands go through `tests/lab/chassis_ctl.sh`, which logs them to
//!   `DIR/power.log` (`set power 0`, `set power 1`).
//! - `corosync-conf.sh DIR NAME` + `cs-node.sh NS DIR`: corosync in NS with a
//!   private /run.
//! - `pcmk-node.sh NS DIR FILE...`: pacemakerd in NS with a private mount
//!   namespace: its own /var/lib/pacemaker (CIB from `cib-seed.xml`,
//!   dc-deadtime 1 s), /var/log/pacemaker and /run, and an overlay on
//!   /usr/sbin whose upper layer holds `fence-agents/fence_ironfence_ipmi`
//!   and the `ironfence` binary cargo built: nothing is installed on the host.
//! - `pcmk-run.sh PID CMD...`: a Pacemaker CLI in pacemakerd's network and
//!   mount namespaces (Pacemaker's IPC is per network namespace, and
//!   `--list-installed` / `--metadata` read the overlaid /usr/sbin).
//!
//! Every script `exec`s its daemon, so each child PID here is the daemon's.
//! [`Cluster`]'s `Drop` stops pacemakerd (SIGTERM, then SIGKILL), corosync
//! and ipmi_sim by PID, SIGKILLs any process still in the namespace (all of
//! them ours), and deletes the namespace, also when the test fails. Every
//! mount lives in a private mount namespace and goes with its processes.
//! Set `IRONFENCE_KEEP_LAB=1` to keep the temp dir (logs, CIB) for a look.
//!
//! Needs root (network namespaces, mounts) and the peers `tests/lab/install.sh`
//! installs; a missing peer fails the test, it is never skipped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod support;

use common::{ironfence_bin, package_root, run_within, Run};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::require_peer;

/// The cluster's one node (corosync.conf).
const NODE: &str = "node1";
/// The node fenced: not a member, as in the lab notes; only the BMC knows it.
const VICTIM: &str = "ghost1";
/// The BMC's UDP port inside the namespace (nothing else lives there), not
/// 623 so that the agent must be given `ipport`.
const BMC_PORT: u16 = 16623;
/// The stonith device registered for [`VICTIM`].
const DEVICE: &str = "ipmi-ghost1";

/// Bounds of the waits (the whole test takes about 5 s).
const BMC_READY: Duration = Duration::from_secs(10);
const COROSYNC_READY: Duration = Duration::from_secs(15);
const PACEMAKER_READY: Duration = Duration::from_secs(30);
const STOP_PACEMAKER: Duration = Duration::from_secs(20);
const STOP_COROSYNC: Duration = Duration::from_secs(10);
/// No single CLI call may take longer.
const CLI_LIMIT: Duration = Duration::from_secs(60);

/// Programs this test runs (peers installed by tests/lab/install.sh).
const PEERS: &[&str] = &[
    "ip",
    "unshare",
    "nsenter",
    "ipmi_sim",
    "ipmitool",
    "corosync",
    "corosync-quorumtool",
    "pacemakerd",
    "stonith_admin",
    "crm_mon",
    "xmllint",
];

fn lab_script(name: &str) -> PathBuf {
    let path = package_root().join("tests/lab/pcmk").join(name);
    assert!(path.is_file(), "missing {}", path.display());
    path
}

/// `path` as ipmi_sim's chassis_control line passes it through /bin/sh.
fn assert_shell_safe(path: &Path) {
    let ok = path.to_str().is_some_and(|s| {
        s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+,:=@".contains(c))
    });
    assert!(
        ok,
        "path {} has characters ipmi_sim's chassis_control cannot pass through /bin/sh; \
         move the checkout or set TMPDIR to a plain path",
        path.display()
    );
}

/// The last `n` lines of a file (for failure messages).
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| format!("({e})"));
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Poll `check` every 100 ms until it returns Ok, or panic after `limit`
/// with its last complaint and `context()`.
fn wait_until(
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> Result<(), String>,
    context: impl Fn() -> String,
) -> Duration {
    let start = Instant::now();
    loop {
        let last = match check() {
            Ok(()) => return start.elapsed(),
            Err(e) => e,
        };
        if start.elapsed() > limit {
            panic!("{what}: not within {limit:?}; last: {last}\n{}", context());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Send `signal` to `child` (by PID), wait up to `grace` for it to exit,
/// then SIGKILL and reap it.
fn stop_child(child: &mut Child, signal: Signal, grace: Duration) {
    if matches!(child.try_wait(), Ok(None)) {
        let _ = kill(Pid::from_raw(child.id() as i32), signal);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Every namespace this test makes is named `NS_PREFIX<test PID>-<n>`.
const NS_PREFIX: &str = "ironfence-pcmk-";

/// SIGKILL (by PID) every process in namespace `ns`, then delete it.
fn delete_namespace(ns: &str) -> Result<(), String> {
    for _ in 0..50 {
        let pids = Command::new("ip")
            .args(["netns", "pids", ns])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let pids: Vec<i32> = pids
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        if pids.is_empty() {
            break;
        }
        for pid in pids {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = Command::new("ip")
        .args(["netns", "del", ns])
        .output()
        .map_err(|e| format!("ip netns del {ns}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip netns del {ns}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Remove what an earlier run left behind when it was killed before its
/// `Drop` could run: namespaces `NS_PREFIX<pid>-...` whose test process
/// `<pid>` is gone (a PID that is alive, even reused, is left alone).
fn remove_stale_namespaces() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(pid) = name
            .strip_prefix(NS_PREFIX)
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        eprintln!("removing namespace {name}, left by a killed test run (PID {pid})");
        if let Err(e) = delete_namespace(name) {
            eprintln!("warning: {e}");
        }
    }
}

/// The one-node cluster, its BMC and its namespace. Dropping it stops all.
struct Cluster {
    ns: String,
    ns_made: bool,
    dir: Option<tempfile::TempDir>,
    bmc: Option<Child>,
    corosync: Option<Child>,
    pacemakerd: Option<Child>,
}

impl Cluster {
    fn dir(&self) -> &Path {
        self.dir.as_ref().expect("lab dir").path()
    }

    fn bmc_dir(&self) -> PathBuf {
        self.dir().join("bmc")
    }

    fn pacemaker_log(&self) -> PathBuf {
        self.dir().join("pcmk/log/pacemaker.log")
    }

    /// Logs of every daemon, for failure messages.
    fn logs(&self) -> String {
        let d = self.dir();
        format!(
            "--- ipmi_sim ({}) ---\n{}\n--- corosync.log ---\n{}\n--- corosync stdout ---\n{}\n\
             --- pacemaker.log (last 40 lines) ---\n{}\n--- pacemakerd stdout ---\n{}",
            self.bmc_dir().join("sim.out").display(),
            tail(&self.bmc_dir().join("sim.out"), 10),
            tail(&d.join("cs/corosync.log"), 15),
            tail(&d.join("cs.out"), 10),
            tail(&self.pacemaker_log(), 40),
            tail(&d.join("pcmk.out"), 10),
        )
    }

    /// Start everything and wait until the cluster is up and the fencer answers.
    fn start() -> Cluster {
        for peer in PEERS {
            require_peer(peer);
        }
        assert_shell_safe(&package_root().join("tests/lab/chassis_ctl.sh"));
        remove_stale_namespaces();
        let dir = tempfile::Builder::new()
            .prefix("ironfence-pcmk-")
            .tempdir()
            .unwrap();
        assert_shell_safe(dir.path());
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let mut cluster = Cluster {
            ns: format!("{NS_PREFIX}{}-{}", std::process::id(), nanos % 1_000_000),
            ns_made: false,
            dir: Some(dir),
            bmc: None,
            corosync: None,
            pacemakerd: None,
        };
        let started = Instant::now();

        // The namespace, with only loopback, up.
        let out = Command::new(require_peer("ip"))
            .args(["netns", "add", &cluster.ns])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ip netns add {} failed (this test needs root: network namespaces and mounts): {}",
            cluster.ns,
            String::from_utf8_lossy(&out.stderr)
        );
        cluster.ns_made = true;
        let out = Command::new(require_peer("ip"))
            .args(["-n", &cluster.ns, "link", "set", "lo", "up"])
            .output()
            .unwrap();
        assert!(out.status.success(), "lo up: {out:?}");

        // The BMC, inside.
        let bmc_dir = cluster.bmc_dir();
        std::fs::create_dir_all(&bmc_dir).unwrap();
        cluster.bmc = Some(cluster.spawn(
            "ipmi-sim.sh",
            &[&bmc_dir.display().to_string(), &BMC_PORT.to_string()],
            &bmc_dir.join("sim.out"),
        ));
        // First its socket (cheap: the namespace's UDP table, seen through its
        // /proc; an ipmitool probe before that costs a 1 s timeout), then a
        // real RMCP+ session.
        let bmc_pid = cluster.bmc.as_ref().expect("bmc started").id();
        let port_hex = format!(":{BMC_PORT:04X} ");
        let mut bound = false;
        let took = wait_until(
            "ipmi_sim answers `ipmitool chassis power status` in the namespace",
            BMC_READY,
            || {
                if !bound {
                    let table = std::fs::read_to_string(format!("/proc/{bmc_pid}/net/udp"))
                        .map_err(|e| format!("ipmi_sim's UDP table: {e}"))?;
                    bound = table.contains(&port_hex);
                    if !bound {
                        return Err(format!("UDP port {BMC_PORT} not bound yet"));
                    }
                }
                let out = cluster
                    .in_ns(&require_peer("ipmitool"))
                    .args(["-I", "lanplus", "-C", "3", "-N", "1", "-R", "1"])
                    .args(["-H", "127.0.0.1", "-p", &BMC_PORT.to_string()])
                    .args(["-U", "admin", "-P", "secret", "chassis", "power", "status"])
                    .output()
                    .map_err(|e| e.to_string())?;
                if String::from_utf8_lossy(&out.stdout).contains("Chassis Power is on") {
                    Ok(())
                } else {
                    Err(format!("{out:?}"))
                }
            },
            || cluster.logs(),
        );
        eprintln!("ipmi_sim ready in {took:?}");

        // corosync.
        let cs_dir = cluster.dir().join("cs");
        let status = Command::new(lab_script("corosync-conf.sh"))
            .arg(&cs_dir)
            .arg(NODE)
            .status()
            .unwrap();
        assert!(status.success(), "corosync-conf.sh: {status}");
        cluster.corosync = Some(cluster.spawn(
            "cs-node.sh",
            &[&cs_dir.display().to_string()],
            &cluster.dir().join("cs.out"),
        ));
        let took = wait_until(
            "corosync is quorate",
            COROSYNC_READY,
            || {
                let out = cluster
                    .in_ns(&require_peer("corosync-quorumtool"))
                    .arg("-s")
                    .output()
                    .map_err(|e| e.to_string())?;
                let text = String::from_utf8_lossy(&out.stdout);
                if text
                    .lines()
                    .any(|l| l.starts_with("Quorate:") && l.contains("Yes"))
                {
                    Ok(())
                } else {
                    Err(format!("{text} {}", String::from_utf8_lossy(&out.stderr)))
                }
            },
            || cluster.logs(),
        );
        eprintln!("corosync quorate in {took:?}");

        // Pacemaker, with our agent and binary in its /usr/sbin.
        let launcher = package_root().join("fence-agents/fence_ironfence_ipmi");
        let binary = ironfence_bin();
        cluster.pacemakerd = Some(cluster.spawn(
            "pcmk-node.sh",
            &[
                &cluster.dir().join("pcmk").display().to_string(),
                &launcher.display().to_string(),
                &binary.display().to_string(),
            ],
            &cluster.dir().join("pcmk.out"),
        ));
        let took = wait_until(
            "Pacemaker: node online (crm_mon) and the fencer answering (stonith_admin)",
            PACEMAKER_READY,
            || {
                let mon = cluster.pcmk(&["crm_mon", "-1"]);
                if !mon.stdout.contains(&format!("Online: [ {NODE} ]")) {
                    return Err(format!("crm_mon: {}", mon.describe()));
                }
                let fenced = cluster.pcmk(&["stonith_admin", "--list-registered"]);
                if fenced.code != Some(0) {
                    return Err(format!("stonith_admin: {}", fenced.describe()));
                }
                Ok(())
            },
            || cluster.logs(),
        );
        eprintln!(
            "Pacemaker up in {took:?}; whole cluster in {:?}",
            started.elapsed()
        );
        cluster
    }

    /// `Command` for `program` inside the namespace (host mounts).
    fn in_ns(&self, program: &Path) -> Command {
        let mut cmd = Command::new(require_peer("ip"));
        cmd.args(["netns", "exec", &self.ns])
            .arg(program)
            .stdin(Stdio::null());
        cmd
    }

    /// Start tests/lab/pcmk/SCRIPT NS ARGS..., output to `log`.
    fn spawn(&self, script: &str, args: &[&str], log: &Path) -> Child {
        let out = std::fs::File::create(log).unwrap();
        let err = out.try_clone().unwrap();
        Command::new(lab_script(script))
            .arg(&self.ns)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("start {script}: {e}"))
    }

    /// Run a Pacemaker CLI in pacemakerd's namespaces (pcmk-run.sh).
    fn pcmk(&self, args: &[&str]) -> Run {
        let pid = self
            .pacemakerd
            .as_ref()
            .expect("pacemakerd started")
            .id()
            .to_string();
        let mut cmd = Command::new(lab_script("pcmk-run.sh"));
        cmd.arg(pid).args(args);
        run_within(&mut cmd, None, CLI_LIMIT)
    }

    /// [`pcmk`](Cluster::pcmk), which must exit 0.
    #[track_caller]
    fn pcmk_ok(&self, args: &[&str]) -> Run {
        let r = self.pcmk(args);
        assert_eq!(r.code, Some(0), "{}\n{}", r.describe(), self.logs());
        r
    }

    /// Chassis commands the BMC carried out: `"power 0"`, `"power 1"`, ...
    fn power_log(&self) -> Vec<String> {
        let text = std::fs::read_to_string(self.bmc_dir().join("power.log")).unwrap_or_default();
        text.lines()
            .map(|l| {
                // "<unix.nanos> set <parm> <value>"
                l.split_once(" set ")
                    .map(|(_, rest)| rest.to_string())
                    .unwrap_or_else(|| panic!("bad power.log line {l:?}"))
            })
            .collect()
    }

    /// The machine's power state file: "1" on, "0" off.
    fn power(&self) -> String {
        std::fs::read_to_string(self.bmc_dir().join("power"))
            .unwrap()
            .trim()
            .to_string()
    }

    /// Stop everything by PID and delete the namespace (idempotent).
    fn stop(&mut self) {
        if let Some(mut p) = self.pacemakerd.take() {
            stop_child(&mut p, Signal::SIGTERM, STOP_PACEMAKER);
        }
        if let Some(mut c) = self.corosync.take() {
            stop_child(&mut c, Signal::SIGTERM, STOP_COROSYNC);
        }
        if let Some(mut b) = self.bmc.take() {
            stop_child(&mut b, Signal::SIGTERM, Duration::from_secs(2));
        }
        if self.ns_made {
            // Whatever still runs in our namespace (a pacemaker child after a
            // SIGKILL, a fence agent, a chassis_ctl.sh) was started by us.
            match delete_namespace(&self.ns) {
                Ok(()) => self.ns_made = false,
                Err(e) => eprintln!("warning: {e}"),
            }
        }
        if std::env::var_os("IRONFENCE_KEEP_LAB").is_some() {
            if let Some(dir) = self.dir.take() {
                eprintln!("IRONFENCE_KEEP_LAB: kept {}", dir.keep().display());
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Parameter names in metadata XML (`<parameter name="...">`).
fn parameter_names(xml: &str) -> Vec<String> {
    let open = "<parameter name=\"";
    xml.match_indices(open)
        .map(|(i, _)| {
            let rest = &xml[i + open.len()..];
            rest[..rest.find('"').unwrap()].to_string()
        })
        .collect()
}

#[test]
fn pacemaker_fences_through_fence_ironfence_ipmi() {
    let t0 = Instant::now();
    let mut cluster = Cluster::start();
    let ns_name = cluster.ns.clone();

    // Pacemaker sees our agent in its /usr/sbin, next to fence-agents' own.
    let r = cluster.pcmk_ok(&["stonith_admin", "--list-installed"]);
    let installed: Vec<&str> = r.stdout.lines().map(str::trim).collect();
    for agent in ["fence_ironfence_ipmi", "fence_ipmilan"] {
        assert!(
            installed.contains(&agent),
            "{agent} not listed\n{}",
            r.stdout
        );
    }
    // ...and reads its metadata: every parameter of the golden file survives.
    let r = cluster.pcmk_ok(&[
        "stonith_admin",
        "--metadata",
        "--agent",
        "fence_ironfence_ipmi",
    ]);
    assert!(
        r.stdout
            .contains("<resource-agent name=\"fence_ironfence_ipmi\""),
        "{}",
        r.stdout
    );
    let golden = std::fs::read_to_string(
        package_root().join("fence-agents/metadata/fence_ironfence_ipmi.xml"),
    )
    .unwrap();
    assert_eq!(
        parameter_names(&r.stdout),
        parameter_names(&golden),
        "parameters as Pacemaker reads them"
    );

    // Register the device at run time, with fence_ipmilan's option names.
    let port = format!("ipport={BMC_PORT}");
    let host_list = format!("pcmk_host_list={VICTIM}");
    let mut register = vec![
        "stonith_admin",
        "--register",
        DEVICE,
        "--agent",
        "fence_ironfence_ipmi",
    ];
    for option in [
        "ip=127.0.0.1",
        &port,
        "username=admin",
        "password=secret",
        "lanplus=1",
        "cipher=3",
        &host_list,
    ] {
        register.extend(["--option", option]);
    }
    cluster.pcmk_ok(&register);
    let r = cluster.pcmk_ok(&["stonith_admin", "--list-registered"]);
    assert!(r.stdout.lines().any(|l| l.trim() == DEVICE), "{}", r.stdout);
    let r = cluster.pcmk_ok(&["stonith_admin", "--list", VICTIM]);
    assert!(
        r.stdout.lines().any(|l| l.trim() == DEVICE),
        "{DEVICE} should be able to fence {VICTIM}\n{}",
        r.stdout
    );
    assert!(
        cluster.power_log().is_empty(),
        "registering switched nothing"
    );

    // Fence.
    let r = cluster.pcmk_ok(&["stonith_admin", "--reboot", VICTIM, "--timeout", "30"]);
    eprintln!("stonith_admin --reboot {VICTIM}: {:?}", r.elapsed);
    assert_eq!(
        cluster.power_log(),
        ["power 0", "power 1"],
        "the BMC was told off, then on\n{}",
        cluster.logs()
    );
    assert_eq!(cluster.power(), "1", "rebooted: on again");
    let log = std::fs::read_to_string(cluster.pacemaker_log()).unwrap();
    assert!(
        log.lines().any(|l| l.contains("Operation 'reboot'")
            && l.contains(&format!("targeting {VICTIM} using {DEVICE} returned 0"))),
        "pacemaker-fenced did not log our agent's success\n{}",
        cluster.logs()
    );

    // The fencer's history has it, as a success by our node.
    let r = cluster.pcmk_ok(&["stonith_admin", "--history", VICTIM]);
    assert!(
        r.stdout
            .contains(&format!("reboot of {VICTIM} successful: delegate={NODE}")),
        "{}",
        r.stdout
    );
    let r = cluster.pcmk_ok(&["stonith_admin", "--history", VICTIM, "--output-as", "xml"]);
    let event = r
        .stdout
        .lines()
        .find(|l| l.contains("<fence_event "))
        .unwrap_or_else(|| panic!("no fence_event\n{}", r.stdout));
    for attr in [
        "action=\"reboot\"".to_string(),
        format!("target=\"{VICTIM}\""),
        "status=\"success\"".to_string(),
        format!("delegate=\"{NODE}\""),
    ] {
        assert!(event.contains(&attr), "{attr} not in {event}");
    }

    // Off (stonith_admin --fence): the machine stays off.
    cluster.pcmk_ok(&["stonith_admin", "--fence", VICTIM, "--timeout", "30"]);
    assert_eq!(cluster.power_log(), ["power 0", "power 1", "power 0"]);
    assert_eq!(cluster.power(), "0");

    // A device that cannot log in must not fence: the request fails, the
    // BMC is untouched, and the history says so.
    let ghost2 = "ghost2";
    let host_list2 = format!("pcmk_host_list={ghost2}");
    let mut register = vec![
        "stonith_admin",
        "--register",
        "ipmi-badpw",
        "--agent",
        "fence_ironfence_ipmi",
    ];
    for option in [
        "ip=127.0.0.1",
        &port,
        "username=admin",
        "password=wrong",
        "lanplus=1",
        "cipher=3",
        &host_list2,
    ] {
        register.extend(["--option", option]);
    }
    cluster.pcmk_ok(&register);
    let r = cluster.pcmk(&["stonith_admin", "--reboot", ghost2, "--timeout", "20"]);
    assert_ne!(
        r.code,
        Some(0),
        "fencing with a wrong password succeeded\n{}",
        r.describe()
    );
    assert_eq!(
        cluster.power_log(),
        ["power 0", "power 1", "power 0"],
        "a failed login switched something"
    );
    assert!(
        r.stderr.contains(&format!("Couldn't fence {ghost2}")),
        "{}",
        r.describe()
    );
    let log = std::fs::read_to_string(cluster.pacemaker_log()).unwrap();
    assert!(
        log.lines().any(|l| l.contains("Operation 'reboot'")
            && l.contains(&format!("targeting {ghost2} using ipmi-badpw returned 3"))),
        "our agent should have exited 3 (login denied)\n{}",
        cluster.logs()
    );
    // (failed operations are listed with --verbose only)
    let r = cluster.pcmk_ok(&[
        "stonith_admin",
        "--history",
        ghost2,
        "--verbose",
        "--output-as",
        "xml",
    ]);
    let event = r
        .stdout
        .lines()
        .find(|l| l.contains("<fence_event "))
        .unwrap_or_else(|| panic!("no fence_event for {ghost2}\n{}", r.stdout));
    assert!(
        event.contains("status=\"failed\"") && event.contains("action=\"reboot\""),
        "{event}"
    );
    // Both fences of ghost1 are in the full history (--verbose; without it,
    // only the last success per target is shown).
    let r = cluster.pcmk_ok(&[
        "stonith_admin",
        "--history",
        VICTIM,
        "--verbose",
        "--output-as",
        "xml",
    ]);
    let events: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.contains("<fence_event "))
        .collect();
    assert_eq!(events.len(), 2, "{}", r.stdout);
    for action in ["reboot", "off"] {
        assert!(
            events
                .iter()
                .any(|e| e.contains(&format!("action=\"{action}\""))
                    && e.contains("status=\"success\"")),
            "no successful {action} of {VICTIM}\n{}",
            r.stdout
        );
    }

    // Stop everything; nothing of it may be left.
    let stopping = Instant::now();
    cluster.stop();
    eprintln!(
        "stopped in {:?}; whole test {:?}",
        stopping.elapsed(),
        t0.elapsed()
    );
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains(&ns_name),
        "namespace {ns_name} left behind"
    );
}
