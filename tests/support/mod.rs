//! Shared harness for the integration tests: real peers, started by the tests.
//!
//! Every integration test that needs a peer includes this with `mod support;`.
//! The peers are programs nobody on this project wrote (see DESIGN.md, "Test
//! lab"); `tests/lab/install.sh` installs them. A test that lacks one fails
//! with a message naming the installer: tests never skip silently.
//!
//! What is here:
//! - [`require_peer`]: find a peer program or fail the test.
//! - [`IpmiSim`]: an OpenIPMI `ipmi_sim` BMC on 127.0.0.1, with its own temp
//!   dir, a fake machine whose power state is a file, and a log of every
//!   chassis command it was given. Stopped (by PID) when dropped.
//! - [`free_udp_port`], [`free_tcp_port`]: loopback ports nobody uses.
//!
//! Facts about `ipmi_sim` this relies on (measured with OpenIPMI 2.0.33 and
//! ipmitool 1.8.19, Debian 12):
//! - Always use cipher suite 3. ipmitool 1.8.19 defaults to 17, which
//!   ipmi_sim lacks (no SHA-256); without `-C 3` ipmitool first asks for the
//!   cipher suites sessionless, ipmi_sim never answers, and every call loses
//!   10 s or more. Suites 0,1,2,3,6 work; 0 (no auth) is accepted.
//! - ipmi_sim binds its LAN port with SO_REUSEADDR: a second ipmi_sim on the
//!   same port starts fine and silently shares it. So a port clash cannot be
//!   seen from an exit status; [`IpmiSim`] checks `/proc/net/udp` that the
//!   socket on its port is its own and retries on another port if not.
//! - A fresh `-s` state dir per instance (users persisted there override
//!   lan.conf), a unique `name` per instance, `-n` (no console on stdin, stays
//!   in the foreground) and stdin from /dev/null.
//! - 63 sessions, 30 s idle timeout: clients that never send Close Session
//!   lock everyone out for up to 30 s.
//! - Power cycle (`chassis power cycle`) is `power 0`, then `power 1` from
//!   ipmi_sim one second later.

#![allow(dead_code)]

pub mod bench;
pub mod corosync;
pub mod fencing_lab;
pub mod qemu;
pub mod sushy;

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs;
use std::io::ErrorKind;
use std::net::{TcpListener, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// Every simulator listens here and nowhere else.
pub const LOOPBACK: &str = "127.0.0.1";
/// The one user of every [`IpmiSim`] (user id 2, admin privilege).
pub const IPMI_USER: &str = "admin";
/// Password of [`IPMI_USER`].
pub const IPMI_PASSWORD: &str = "secret";
/// The RMCP+ cipher suite to use with ipmi_sim (see the module docs).
pub const IPMI_CIPHER: u8 = 3;

/// How long one simulator may take to answer its first `chassis power status`.
const READY_TIMEOUT: Duration = Duration::from_secs(5);
/// Fresh ports tried when a simulator's port turns out to be shared.
const START_ATTEMPTS: usize = 5;
/// Directories searched after `PATH` (fence agents live in /usr/sbin, which a
/// non-root `PATH` often lacks).
const SBIN_DIRS: [&str; 3] = ["/usr/local/sbin", "/usr/sbin", "/sbin"];

// ---------------------------------------------------------------------------
// peers

/// Where `cmd` is: the first executable `cmd` in `PATH`, then in the sbin
/// directories. `None` if there is none.
pub fn find_peer(cmd: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(SBIN_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(cmd))
        .find(|candidate| is_executable(candidate))
}

/// The path of the peer program `cmd`; panics when it is not installed.
pub fn require_peer(cmd: &str) -> PathBuf {
    find_peer(cmd)
        .unwrap_or_else(|| panic!("missing test peer '{cmd}': run tests/lab/install.sh (as root)"))
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

// ---------------------------------------------------------------------------
// ports

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Proto {
    Udp,
    Tcp,
}

/// Ports this test process has handed out already: never hand one out twice,
/// even after whoever got it has let it go.
static HANDED_OUT: Mutex<Option<HashSet<(Proto, u16)>>> = Mutex::new(None);

fn free_port(proto: Proto) -> u16 {
    for _ in 0..1000 {
        let port = match proto {
            Proto::Udp => UdpSocket::bind((LOOPBACK, 0)).and_then(|s| s.local_addr()),
            Proto::Tcp => TcpListener::bind((LOOPBACK, 0)).and_then(|s| s.local_addr()),
        }
        .expect("bind an ephemeral port on 127.0.0.1")
        .port();
        // the socket is closed here; the port stays free unless someone races us
        let mut guard = HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner);
        if guard.get_or_insert_with(HashSet::new).insert((proto, port)) {
            return port;
        }
    }
    panic!("no unused loopback port after 1000 tries");
}

/// A UDP port on 127.0.0.1 that was free a moment ago and that this process
/// has not handed out before. Whoever binds it must cope with losing a race.
pub fn free_udp_port() -> u16 {
    free_port(Proto::Udp)
}

/// A TCP port on 127.0.0.1 that was free a moment ago and that this process
/// has not handed out before. Whoever binds it must cope with losing a race.
pub fn free_tcp_port() -> u16 {
    free_port(Proto::Tcp)
}

/// Inodes of the UDP sockets (IPv4 and IPv6, any local address) bound to `port`.
fn udp_socket_inodes(port: u16) -> HashSet<u64> {
    let mut inodes = HashSet::new();
    for table in ["/proc/net/udp", "/proc/net/udp6"] {
        let Ok(text) = fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(inode)) = (fields.get(1), fields.get(9)) else {
                continue;
            };
            let bound_port = local
                .rsplit_once(':')
                .and_then(|(_, hex)| u16::from_str_radix(hex, 16).ok());
            if bound_port == Some(port) {
                if let Ok(inode) = inode.parse() {
                    inodes.insert(inode);
                }
            }
        }
    }
    inodes
}

/// Inodes of the sockets process `pid` has open.
fn socket_inodes_of(pid: u32) -> HashSet<u64> {
    let Ok(entries) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return HashSet::new();
    };
    entries
        .filter_map(|entry| fs::read_link(entry.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_str()?;
            target
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect()
}

// ---------------------------------------------------------------------------
// processes

/// PIDs of the children of `pid` (`ps --ppid`).
fn children_of(pid: u32) -> Vec<u32> {
    Command::new("ps")
        .args(["--ppid", &pid.to_string(), "-o", "pid="])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map(|out| {
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Send `signal` (a name such as `KILL`) to one PID; errors are ignored (it
/// may be gone already).
fn signal_pid(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Stop `child` and everything below it, by PID: freeze it (so it starts
/// nothing new), SIGKILL its descendants, then SIGKILL and reap it.
fn kill_tree(child: &mut Child) {
    let pid = child.id();
    if matches!(child.try_wait(), Ok(None)) {
        signal_pid(pid, "STOP");
        let mut stack = children_of(pid);
        while let Some(p) = stack.pop() {
            signal_pid(p, "STOP");
            stack.extend(children_of(p));
            signal_pid(p, "KILL");
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

// ---------------------------------------------------------------------------
// ipmi_sim

/// One OpenIPMI `ipmi_sim` BMC on 127.0.0.1:[`port`](IpmiSim::port) (UDP,
/// RMCP+/IPMI 2.0 and IPMI 1.5), user [`IPMI_USER`]/[`IPMI_PASSWORD`] with
/// admin privilege, cipher suite [`IPMI_CIPHER`].
///
/// Its machine is a file holding `1` (on, the initial state) or `0`; chassis
/// commands go through `tests/lab/chassis_ctl.sh`, which also appends each one
/// to a log ([`power_log`](IpmiSim::power_log)). Everything lives in a fresh
/// temp dir that goes away with the value. Dropping it kills the simulator and
/// its children by PID.
#[derive(Debug)]
pub struct IpmiSim {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    ipmitool: PathBuf,
}

/// Why a started simulator did not become usable.
enum NotReady {
    /// Its port turned out to be someone else's too: try another.
    PortClash(String),
    /// Anything else: give up.
    Failed(String),
}

impl IpmiSim {
    /// Start one simulator and wait until it answers `chassis power status`.
    /// Panics (with the simulator's log) if it does not within ~5 s.
    pub fn start() -> IpmiSim {
        Self::start_many(1)
            .pop()
            .expect("start_many(1) returns one simulator")
    }

    /// Start `n` simulators at once, each on its own port and in its own temp
    /// dir, and wait until all of them answer. Panics if any does not (the
    /// others are stopped first).
    pub fn start_many(n: usize) -> Vec<IpmiSim> {
        let ipmi_sim = require_peer("ipmi_sim");
        let ipmitool = require_peer("ipmitool");
        require_peer("ps");
        let ctl = chassis_ctl_script();
        // ipmi_sim runs the chassis_control line through /bin/sh unquoted
        if let Err(e) = check_shell_safe(&ctl) {
            panic!("{e}");
        }
        let ready_timeout = READY_TIMEOUT + Duration::from_millis(100) * n as u32;

        let results: Vec<Result<IpmiSim, String>> = thread::scope(|scope| {
            let workers: Vec<_> = (0..n)
                .map(|_| scope.spawn(|| Self::start_one(&ipmi_sim, &ipmitool, &ctl, ready_timeout)))
                .collect();
            workers
                .into_iter()
                .map(|w| {
                    w.join()
                        .unwrap_or_else(|_| Err("start thread panicked".to_string()))
                })
                .collect()
        });

        let mut sims = Vec::with_capacity(n);
        let mut errors = Vec::new();
        for result in results {
            match result {
                Ok(sim) => sims.push(sim),
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            drop(sims); // stop the ones that did start
            panic!(
                "{} of {n} ipmi_sim failed to start:\n{}",
                errors.len(),
                errors.join("\n")
            );
        }
        sims
    }

    fn start_one(
        ipmi_sim: &Path,
        ipmitool: &Path,
        ctl: &Path,
        ready_timeout: Duration,
    ) -> Result<IpmiSim, String> {
        let mut clashes = Vec::new();
        for _ in 0..START_ATTEMPTS {
            let mut sim = Self::spawn(ipmi_sim, ipmitool, ctl, free_udp_port())?;
            match sim.wait_ready(ready_timeout) {
                Ok(()) => return Ok(sim),
                Err(NotReady::PortClash(why)) => clashes.push(why), // drop stops it
                Err(NotReady::Failed(why)) => {
                    return Err(format!(
                        "ipmi_sim on {LOOPBACK}:{}: {why}\n--- ipmi_sim log ---\n{}",
                        sim.port,
                        sim.log()
                    ));
                }
            }
        }
        Err(format!(
            "ipmi_sim: port clash on {START_ATTEMPTS} fresh ports in a row: {}",
            clashes.join("; ")
        ))
    }

    fn spawn(ipmi_sim: &Path, ipmitool: &Path, ctl: &Path, port: u16) -> Result<IpmiSim, String> {
        let dir = tempfile::Builder::new()
            .prefix("ironfence-ipmisim-")
            .tempdir()
            .map_err(|e| format!("create temp dir: {e}"))?;
        let d = dir.path();
        check_shell_safe(d)?;
        let power = d.join("power");
        let state = d.join("state");
        let write = |path: &Path, text: &str| {
            fs::write(path, text).map_err(|e| format!("write {}: {e}", path.display()))
        };
        fs::create_dir(&state).map_err(|e| format!("create {}: {e}", state.display()))?;
        write(&power, "1\n")?; // the machine starts powered on
        write(&d.join("lan.conf"), &lan_conf(port, ctl, &power))?;
        write(&d.join("sim.emu"), SIM_EMU)?;
        let log =
            fs::File::create(d.join("sim.log")).map_err(|e| format!("create sim.log: {e}"))?;
        let log2 = log.try_clone().map_err(|e| format!("dup sim.log: {e}"))?;

        let child = Command::new(ipmi_sim)
            .arg("-c")
            .arg(d.join("lan.conf"))
            .arg("-f")
            .arg(d.join("sim.emu"))
            .arg("-s")
            .arg(&state)
            .arg("-n")
            .current_dir(d)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", ipmi_sim.display()))?;
        Ok(IpmiSim {
            child,
            port,
            dir,
            ipmitool: ipmitool.to_path_buf(),
        })
    }

    /// Wait until our process has its UDP socket on `port` (cheap /proc check:
    /// probing with ipmitool before that costs 2 s per try), that nobody else
    /// has one there, and that a real RMCP+ session works.
    fn wait_ready(&mut self, timeout: Duration) -> Result<(), NotReady> {
        let deadline = Instant::now() + timeout;
        let pid = self.child.id();
        let mut bound = false;
        let mut answered = false;
        let mut last_probe = String::from("(never probed)");
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = self.log();
                return Err(if log.contains("Address already in use") {
                    NotReady::PortClash(format!("port {} in use: {}", self.port, log.trim()))
                } else {
                    NotReady::Failed(format!("exited during start-up ({status})"))
                });
            }
            let on_port = udp_socket_inodes(self.port);
            let ours = socket_inodes_of(pid);
            let foreign = on_port.difference(&ours).count();
            if foreign > 0 {
                return Err(NotReady::PortClash(format!(
                    "{foreign} other UDP socket(s) on port {}",
                    self.port
                )));
            }
            if answered {
                // checked once more after the probe: the answer was ours
                return Ok(());
            }
            if !bound {
                bound = !on_port.is_empty();
            } else {
                let out = self
                    .ipmitool_command_with(1, 1)
                    .args(["chassis", "power", "status"])
                    .output();
                match out {
                    Ok(out) if out.status.success() => {
                        answered = true;
                        continue;
                    }
                    Ok(out) => {
                        last_probe = format!(
                            "{}: {} {}",
                            out.status,
                            String::from_utf8_lossy(&out.stdout).trim(),
                            String::from_utf8_lossy(&out.stderr).trim()
                        )
                    }
                    Err(e) => return Err(NotReady::Failed(format!("run ipmitool: {e}"))),
                }
            }
            if Instant::now() >= deadline {
                return Err(NotReady::Failed(if bound {
                    format!(
                        "no answer to `ipmitool chassis power status` within {timeout:?}; last: {last_probe}"
                    )
                } else {
                    format!("did not bind UDP port {} within {timeout:?}", self.port)
                }));
            }
            thread::sleep(Duration::from_millis(if bound { 50 } else { 5 }));
        }
    }

    /// The UDP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Always 127.0.0.1.
    pub fn host(&self) -> &'static str {
        LOOPBACK
    }

    /// PID of the ipmi_sim process.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The simulator's own temp dir (lan.conf, sim.emu, state/, power,
    /// power.log, sim.log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The file holding the machine's power state (`1` or `0`).
    pub fn power_file(&self) -> PathBuf {
        self.dir().join("power")
    }

    /// Whether the fake machine is powered on, as the BMC will report it.
    pub fn power_on(&self) -> bool {
        let path = self.power_file();
        let text = fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read power state {}: {e}", path.display()));
        match text.trim() {
            "1" => true,
            "0" => false,
            other => panic!("power state file {} holds {other:?}", path.display()),
        }
    }

    /// Change the machine's power state behind the BMC's back (as if someone
    /// pressed the button). Not written to the power log.
    pub fn set_power(&self, on: bool) {
        let path = self.power_file();
        let tmp = self.dir().join("power.tmp.harness");
        fs::write(&tmp, if on { "1\n" } else { "0\n" })
            .and_then(|()| fs::rename(&tmp, &path))
            .unwrap_or_else(|e| panic!("write power state {}: {e}", path.display()));
    }

    /// Every chassis command the BMC carried out, oldest first, as
    /// `"PARM VALUE"`: `"power 0"`, `"power 1"`, `"reset 1"`, `"shutdown 1"`,
    /// `"boot pxe"`, `"identify 15 0"`.
    pub fn power_log(&self) -> Vec<String> {
        self.power_log_timed().into_iter().map(|(_, e)| e).collect()
    }

    /// [`power_log`](IpmiSim::power_log) with the wall-clock time (Unix
    /// seconds) at which each command reached the machine.
    pub fn power_log_timed(&self) -> Vec<(f64, String)> {
        let path = self.dir().join("power.log");
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == ErrorKind::NotFound => return Vec::new(),
            Err(e) => panic!("read {}: {e}", path.display()),
        };
        text.lines()
            .map(|line| {
                // "<unix.nanos> set <parm> <value...>"
                let parsed = line.split_once(' ').and_then(|(ts, rest)| {
                    Some((
                        ts.parse::<f64>().ok()?,
                        rest.strip_prefix("set ")?.to_string(),
                    ))
                });
                parsed.unwrap_or_else(|| panic!("bad line in {}: {line:?}", path.display()))
            })
            .collect()
    }

    /// Forget the commands logged so far (to look at one step in isolation).
    pub fn clear_power_log(&self) {
        let path = self.dir().join("power.log");
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => panic!("remove {}: {e}", path.display()),
        }
    }

    /// What ipmi_sim wrote to stdout/stderr (start-up errors; later errors go
    /// to syslog).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir().join("sim.log")).unwrap_or_default()
    }

    /// `ipmitool -I lanplus -C 3 ... -H 127.0.0.1 -p PORT -U admin -P secret`,
    /// ready for the command's own arguments.
    pub fn ipmitool_command(&self) -> Command {
        self.ipmitool_command_with(1, 3)
    }

    fn ipmitool_command_with(&self, timeout_s: u32, retries: u32) -> Command {
        let mut cmd = Command::new(&self.ipmitool);
        cmd.args(["-I", "lanplus", "-C", &IPMI_CIPHER.to_string()])
            .args(["-N", &timeout_s.to_string(), "-R", &retries.to_string()])
            .args(["-H", LOOPBACK, "-p", &self.port.to_string()])
            .args(["-U", IPMI_USER, "-P", IPMI_PASSWORD])
            .stdin(Stdio::null());
        cmd
    }

    /// Run ipmitool against this BMC, e.g. `sim.ipmitool(["chassis", "power", "off"])`.
    pub fn ipmitool<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.ipmitool_command()
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", self.ipmitool.display()))
    }

    /// The options that point `fence_ipmilan` (and our drop-in agent) at this
    /// BMC; add `-o ACTION`.
    pub fn fence_ipmilan_args(&self) -> Vec<String> {
        vec![
            format!("--ip={LOOPBACK}"),
            format!("--ipport={}", self.port),
            format!("--username={IPMI_USER}"),
            format!("--password={IPMI_PASSWORD}"),
            "--lanplus".to_string(),
            format!("--cipher={IPMI_CIPHER}"),
        ]
    }
}

impl Drop for IpmiSim {
    fn drop(&mut self) {
        kill_tree(&mut self.child);
    }
}

/// `tests/lab/chassis_ctl.sh` of this package.
fn chassis_ctl_script() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lab/chassis_ctl.sh");
    assert!(path.is_file(), "missing {}", path.display());
    path
}

/// ipmi_sim hands the `chassis_control` line to /bin/sh as it is: refuse paths
/// that the shell would split or interpret.
pub fn check_shell_safe(path: &Path) -> Result<(), String> {
    let ok = path.to_str().is_some_and(|s| {
        s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+,:=@".contains(c))
    });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "path {} has characters ipmi_sim's chassis_control cannot pass through /bin/sh; \
             move the checkout or set TMPDIR to a plain path",
            path.display()
        ))
    }
}

/// Emulator commands: one BMC at IPMB 0x20, no SDRs, a SEL.
/// mc_add fields: address, device id, SDRs, device revision, firmware major,
/// minor, device support bits, manufacturer id, product id (all hex).
pub const SIM_EMU: &str = "\
mc_setbmc 0x20
mc_add 0x20 0 no-device-sdrs 0x01 1 0 0x9f 0x1291 0x0f01
sel_enable 0x20 1000 0x0a
mc_enable 0x20
";

fn lan_conf(port: u16, ctl: &Path, power: &Path) -> String {
    lan_conf_at(
        LOOPBACK,
        port,
        &format!("/bin/sh {} {}", ctl.display(), power.display()),
    )
}

/// An ipmi_sim lan.conf: one LAN channel on `addr:port`, user
/// [`IPMI_USER`]/[`IPMI_PASSWORD`] (admin), chassis commands run as `chassis`
/// (a shell command line: see [`check_shell_safe`]).
pub fn lan_conf_at(addr: &str, port: u16, chassis: &str) -> String {
    let pid = std::process::id();
    format!(
        r#"# generated by tests/support/mod.rs
name "ironfence-{pid}-{port}"
set_working_mc 0x20
  startlan 1
    addr {addr} {port}
    priv_limit admin
    allowed_auths_callback none md2 md5 straight
    allowed_auths_user none md2 md5 straight
    allowed_auths_operator none md2 md5 straight
    allowed_auths_admin none md2 md5 straight
    guid 1f0e{pid:012x}{port:04x}000000000000
  endlan
  chassis_control "{chassis}"
  user 2 true "{IPMI_USER}" "{IPMI_PASSWORD}" admin 10 md5 md2 straight
"#
    )
}
