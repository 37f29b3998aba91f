//! Our RMCP+ client and `ironfence agent ipmi` against a second IPMI server
//! nobody on this project wrote: pyghmi's fake BMC (PyPI `pyghmi==1.6.19`,
//! in the lab venv that `tests/lab/install.sh` makes; launcher
//! `tests/lab/pyghmi-bmc.sh` -> `tests/lab/pyghmi_bmc.py`), on 127.0.0.1
//! only, user admin/secret. ipmitool and fence_ipmilan serve as baselines.
//!
//! What pyghmi 1.6.19's server offers (measured here, see
//! `pyghmi_offers_cipher_suite_3_only`): cipher suite 3 only. It answers
//! Get Channel Cipher Suites with one record (suite 3) and always in the
//! IPMI v2.0 session format, even to a v1.5 request; it answers every Open
//! Session Request with suite 3's algorithms, whatever was proposed; it never
//! answers RAKP 1 for an unknown user. Its machine's power state lives in
//! memory: the launcher logs every Chassis Control it obeys to a file, and
//! the tests read the state back through our client and through ipmitool.
//!
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod support;

use common::{ironfence, package_root, run, Run};
use ironfence::ipmi::client::{ClientConfig, Session};
use ironfence::ipmi::commands::{ChassisAction, ChassisControl, GetChassisStatus};
use ironfence::ipmi::{CipherChoice, IpmiError, Privilege};
use ironfence::secret::Secret;
use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use support::require_peer;
use tokio::time::Instant;

const USER: &str = "admin";
const PASSWORD: &str = "secret";
/// How long the fake BMC may take to print `READY <port>` (python start-up,
/// importing pyghmi and cryptography: ~0.3 s here).
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// One pyghmi fake BMC on 127.0.0.1:[`port`](PyghmiBmc::port), with its own
/// temp dir (power log, stderr). Killed by PID when dropped.
struct PyghmiBmc {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl PyghmiBmc {
    /// Start one, powered on, and wait for its `READY <port>` line.
    fn start() -> PyghmiBmc {
        let script = package_root().join("tests/lab/pyghmi-bmc.sh");
        assert!(script.is_file(), "missing {}", script.display());
        let dir = tempfile::Builder::new()
            .prefix("ironfence-pyghmi-")
            .tempdir()
            .unwrap();
        let stderr = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
        let mut child = Command::new(&script)
            .args(["--user", USER, "--password", PASSWORD, "--power", "on"])
            .arg("--log")
            .arg(dir.path().join("power.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", script.display()));
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(START_TIMEOUT).unwrap_or_default();
        let port = line
            .strip_prefix("READY ")
            .and_then(|p| p.trim().parse::<u16>().ok());
        let mut bmc = PyghmiBmc {
            child,
            port: port.unwrap_or(0),
            dir,
        };
        if port.is_none() {
            let _ = bmc.child.kill();
            let status = bmc.child.wait().unwrap();
            let err = bmc.stderr();
            // 127: the launcher found no venv / no pyghmi: a missing peer.
            panic!(
                "pyghmi fake BMC did not start ({status}; stdout {line:?}):\n{err}\n\
                 (missing peer? run tests/lab/install.sh as root)"
            );
        }
        bmc
    }

    fn port(&self) -> u16 {
        self.port
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// Every Chassis Control the BMC obeyed, oldest first: `"power off"`,
    /// `"power on"`, `"power cycle"`, `"power reset"`, `"power shutdown"`.
    fn power_log(&self) -> Vec<String> {
        let text = std::fs::read_to_string(self.dir.path().join("power.log")).unwrap_or_default();
        text.lines()
            .map(|l| {
                l.split_once(' ')
                    .map(|(_, what)| what.to_string())
                    .unwrap_or_else(|| panic!("bad power log line {l:?}"))
            })
            .collect()
    }

    fn clear_power_log(&self) {
        let _ = std::fs::remove_file(self.dir.path().join("power.log"));
    }

    /// `ipmitool -I lanplus -C 3 -H 127.0.0.1 -p PORT -U admin -P secret ARGS`.
    fn ipmitool(&self, args: &[&str]) -> Output {
        Command::new(require_peer("ipmitool"))
            .args(["-I", "lanplus", "-C", "3", "-N", "1", "-R", "2"])
            .args(["-H", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", USER, "-P", PASSWORD])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// What ipmitool reads: `Some(true)` for "Chassis Power is on".
    fn ipmitool_power_on(&self) -> bool {
        let out = self.ipmitool(&["chassis", "power", "status"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "ipmitool chassis power status: {} {text} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        match text.trim() {
            "Chassis Power is on" => true,
            "Chassis Power is off" => false,
            other => panic!("ipmitool says {other:?}"),
        }
    }

    /// Options pointing `ironfence agent ipmi` / fence_ipmilan at this BMC.
    fn agent_args(&self) -> Vec<String> {
        vec![
            "--ip=127.0.0.1".into(),
            format!("--ipport={}", self.port),
            format!("--username={USER}"),
            format!("--password={PASSWORD}"),
            "--lanplus".into(),
        ]
    }

    /// `ironfence agent ipmi` with this BMC's options, `--cipher=3` and ARGS.
    fn agent(&self, args: &[&str]) -> Run {
        let mut cmd = ironfence(["agent", "ipmi"]);
        cmd.args(self.agent_args()).arg("--cipher=3").args(args);
        run(&mut cmd, None)
    }
}

impl Drop for PyghmiBmc {
    fn drop(&mut self) {
        // One process (python; pyghmi's I/O thread is a thread): kill it by PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cfg(bmc: &PyghmiBmc, cipher: CipherChoice) -> ClientConfig {
    ClientConfig {
        host: "127.0.0.1".into(),
        port: bmc.port(),
        username: USER.into(),
        password: Secret::new(PASSWORD),
        kg: None,
        privilege: Privilege::Administrator,
        cipher,
        allow_insecure: false,
        retransmit: Duration::from_millis(200),
        login_timeout: Duration::from_secs(5),
    }
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(5)
}

// ---------------------------------------------------------------------------
// our client

#[tokio::test]
async fn suite_3_status_off_on_and_ipmitool_agrees() {
    let bmc = PyghmiBmc::start();
    let mut s = Session::open(&cfg(&bmc, CipherChoice::Suite(3)), soon())
        .await
        .unwrap_or_else(|e| panic!("open suite 3: {e}\n{}", bmc.stderr()));
    assert_eq!(s.suite(), 3);
    assert!(s.send(GetChassisStatus, soon()).await.unwrap().power_on);

    s.send(ChassisControl(ChassisAction::PowerOff), soon())
        .await
        .unwrap();
    assert!(!s.send(GetChassisStatus, soon()).await.unwrap().power_on);
    assert_eq!(bmc.power_log(), ["power off"]);
    assert!(!bmc.ipmitool_power_on(), "ipmitool reads the same state");

    s.send(ChassisControl(ChassisAction::PowerOn), soon())
        .await
        .unwrap();
    assert!(s.send(GetChassisStatus, soon()).await.unwrap().power_on);
    assert_eq!(bmc.power_log(), ["power off", "power on"]);
    assert!(bmc.ipmitool_power_on());
    s.close().await;

    // A change made by ipmitool is what our next session reads.
    let out = bmc.ipmitool(&["chassis", "power", "off"]);
    assert!(out.status.success(), "{out:?}");
    let mut s = Session::open(&cfg(&bmc, CipherChoice::Suite(3)), soon())
        .await
        .unwrap();
    assert!(!s.send(GetChassisStatus, soon()).await.unwrap().power_on);
    s.close().await;
    // Twenty sessions in a row: nothing piles up on either side.
    for i in 0..20 {
        let mut s = Session::open(&cfg(&bmc, CipherChoice::Suite(3)), soon())
            .await
            .unwrap_or_else(|e| panic!("session {i}: {e}"));
        s.send(GetChassisStatus, soon()).await.unwrap();
        s.close().await;
    }
}

#[tokio::test]
async fn wrong_password_is_an_auth_error_and_unknown_user_a_timeout() {
    let bmc = PyghmiBmc::start();
    let mut c = cfg(&bmc, CipherChoice::Suite(3));
    c.password = Secret::new("wrong");
    let e = Session::open(&c, soon()).await.err().unwrap();
    assert!(matches!(e, IpmiError::Auth { .. }), "{e}");
    assert!(e.to_string().contains("password"), "{e}");
    // pyghmi drops RAKP 1 for a user it does not know: all we can see is silence.
    let mut c = cfg(&bmc, CipherChoice::Suite(3));
    c.username = "nobody".into();
    let started = std::time::Instant::now();
    let e = Session::open(&c, Instant::now() + Duration::from_millis(1500))
        .await
        .err()
        .unwrap();
    assert!(e.is_timeout(), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(bmc.power_log().is_empty());
}

/// pyghmi offers only suite 3 and answers Get Channel Cipher Suites in the
/// v2.0 wrapper (session 0); `CipherChoice::Auto` reads that list and picks
/// 3 at once, and the agent's default (no `cipher=`) works like
/// fence_ipmilan's. (Were the list unreadable, pyghmi's answer to a suite-17
/// proposal with suite 3's algorithms is also taken, since 3 is ours too.)
#[tokio::test]
async fn auto_cipher_picks_suite_3_with_pyghmi() {
    let bmc = PyghmiBmc::start();
    let started = std::time::Instant::now();
    let mut s = Session::open(&cfg(&bmc, CipherChoice::Auto), soon())
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(s.suite(), 3);
    assert!(took < Duration::from_millis(700), "{took:?}");
    assert!(s.send(GetChassisStatus, soon()).await.unwrap().power_on);
    s.close().await;

    // The agent's default (no cipher=) works, as fence_ipmilan does.
    let mut cmd = ironfence(["agent", "ipmi"]);
    cmd.args(bmc.agent_args()).args(["-o", "status"]);
    let r = run(&mut cmd, None);
    r.expect_code(0).expect_stdout("Status: ON");
    let mut cmd = common::clean_command(&require_peer("fence_ipmilan"));
    cmd.args(bmc.agent_args()).args(["-o", "status"]);
    let r = run(&mut cmd, None);
    r.expect_code(0).expect_stdout("Status: ON");
}

// ---------------------------------------------------------------------------
// pyghmi's side, byte for byte

/// Send `datagram` to the BMC from a fresh socket and return its answer.
fn exchange(bmc: &PyghmiBmc, datagram: &[u8]) -> Vec<u8> {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(("127.0.0.1", bmc.port())).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 512];
    for _ in 0..5 {
        sock.send(datagram).unwrap();
        if let Ok(n) = sock.recv(&mut buf) {
            return buf[..n].to_vec();
        }
    }
    panic!("pyghmi did not answer {datagram:02x?}");
}

#[test]
fn pyghmi_offers_cipher_suite_3_only() {
    let bmc = PyghmiBmc::start();

    // Get Channel Cipher Suites (channel 0x0e = this one, payload IPMI, list
    // by suite, index 0) in IPMI v1.5 format, the bytes our client sends.
    let request = [
        0x06, 0x00, 0xff, 0x07, // RMCP: version 6, seq 0xff, class IPMI
        0x00, // auth type none (v1.5 session header)
        0, 0, 0, 0, // session sequence
        0, 0, 0, 0,    // session id
        0x0a, // message length
        0x20, 0x18, 0xc8, // rsAddr BMC, netFn App (0x06 << 2), checksum
        0x81, 0x04, 0x54, // rqAddr, rqSeq 1, cmd Get Channel Cipher Suites
        0x0e, 0x00, 0x80, // channel, payload type, list index 0 by suite
        0x99, // checksum
    ];
    let reply = exchange(&bmc, &request);
    assert_eq!(&reply[..4], &[0x06, 0x00, 0xff, 0x07], "{reply:02x?}");
    assert_eq!(
        reply[4], 0x06,
        "pyghmi answers in the IPMI v2.0 format (auth type 0x06) even to a v1.5 request: {reply:02x?}"
    );
    assert_eq!(reply[5], 0x00, "payload type IPMI, unauthenticated");
    assert_eq!(&reply[6..14], &[0; 8], "session id and sequence 0");
    let len = u16::from_le_bytes([reply[14], reply[15]]) as usize;
    let msg = &reply[16..];
    assert_eq!(msg.len(), len, "{reply:02x?}");
    // rqAddr, netFn/LUN (App response 0x07 << 2 = 0x1c), checksum, rsAddr, rqSeq, cmd
    assert_eq!(msg[1], 0x1c);
    assert_eq!(msg[5], 0x54);
    let data = &msg[6..msg.len() - 1];
    assert_eq!(
        data,
        &[0x00, 0x01, 0xc0, 0x03, 0x01, 0x41, 0x81],
        "completion 0, channel 1, one record: suite 3 = RAKP-HMAC-SHA1, HMAC-SHA1-96, AES-CBC-128"
    );

    // Open Session Request proposing suite 17's algorithms.
    let mut open = vec![
        0x06, 0x00, 0xff, 0x07, // RMCP
        0x06, 0x10, // RMCP+, payload Open Session Request
        0, 0, 0, 0, 0, 0, 0, 0, // session id, sequence
        32, 0, // payload length
        0x2a, 0x04, 0, 0, // tag, max privilege administrator
        0x11, 0x22, 0x33, 0x44, // console session id
    ];
    open.extend_from_slice(&[0x00, 0, 0, 0x08, 0x03, 0, 0, 0]); // auth RAKP-HMAC-SHA256
    open.extend_from_slice(&[0x01, 0, 0, 0x08, 0x04, 0, 0, 0]); // integrity HMAC-SHA256-128
    open.extend_from_slice(&[0x02, 0, 0, 0x08, 0x01, 0, 0, 0]); // conf AES-CBC-128
    let reply = exchange(&bmc, &open);
    assert_eq!(reply[5], 0x11, "Open Session Response: {reply:02x?}");
    let p = &reply[16..];
    assert_eq!(p[0], 0x2a, "tag");
    assert_eq!(p[1], 0x00, "status: no error");
    assert_eq!(&p[4..8], &[0x11, 0x22, 0x33, 0x44]);
    assert_eq!(
        (p[16], p[24], p[32]),
        (0x01, 0x01, 0x01),
        "pyghmi grants suite 3's algorithms whatever was proposed: {reply:02x?}"
    );

    // ipmitool sees the same: -C 17 refuses the answer, no -C picks 3.
    let ipmitool = require_peer("ipmitool");
    let base = |suite: Option<&str>| {
        let mut cmd = Command::new(&ipmitool);
        cmd.args(["-I", "lanplus", "-N", "1", "-R", "1"]);
        if let Some(s) = suite {
            cmd.args(["-C", s]);
        }
        cmd.args(["-H", "127.0.0.1", "-p", &bmc.port().to_string()])
            .args([
                "-U", USER, "-P", PASSWORD, "-v", "chassis", "power", "status",
            ])
            .stdin(Stdio::null());
        cmd.output().unwrap()
    };
    let out = base(Some("17"));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not what we requested"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = base(None);
    assert!(out.status.success(), "{out:?}");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(all.contains("best available cipher suite 3"), "{all}");
    assert!(bmc.power_log().is_empty());
}

// ---------------------------------------------------------------------------
// the agent

#[test]
fn agent_status_reboot_off_on() {
    let bmc = PyghmiBmc::start();
    bmc.agent(&["-o", "status"])
        .expect_code(0)
        .expect_stdout("Status: ON");
    let r = bmc.agent(&["-o", "reboot"]);
    r.expect_code(0).expect_stdout("Success: Rebooted");
    assert!(r.elapsed < Duration::from_secs(2), "{}", r.describe());
    assert_eq!(
        bmc.power_log(),
        ["power off", "power on"],
        "off, read back off, then on"
    );
    assert!(bmc.ipmitool_power_on());

    bmc.clear_power_log();
    bmc.agent(&["-o", "off"]).expect_code(0);
    assert_eq!(bmc.power_log(), ["power off"]);
    assert!(!bmc.ipmitool_power_on());
    bmc.agent(&["-o", "status"])
        .expect_code(2)
        .expect_stdout("Status: OFF");
    // off when already off: nothing to switch, still a success
    bmc.agent(&["-o", "off"]).expect_code(0);
    bmc.agent(&["-o", "on"]).expect_code(0);
    assert!(bmc.ipmitool_power_on());
    bmc.agent(&["-o", "monitor"]).expect_code(0);

    // Options on stdin, as pacemaker-fenced sends them (fence_ipmilan's names).
    bmc.clear_power_log();
    let stdin = format!(
        "nodename=node1\naction=reboot\nport=ghost1\nipaddr=127.0.0.1\nipport={}\n\
         login={USER}\npasswd={PASSWORD}\nlanplus=1\ncipher=3\nprivlvl=operator\n",
        bmc.port()
    );
    let r = run(&mut ironfence(["agent", "ipmi"]), Some(&stdin));
    r.expect_code(0);
    assert_eq!(bmc.power_log(), ["power off", "power on"]);
    // The launcher, as Pacemaker runs it.
    let launcher = package_root().join("fence-agents/fence_ironfence_ipmi");
    let mut cmd = common::clean_command(&launcher);
    cmd.env("IRONFENCE", common::ironfence_bin());
    cmd.args(bmc.agent_args())
        .args(["--cipher=3", "-o", "status"]);
    run(&mut cmd, None)
        .expect_code(0)
        .expect_stdout("Status: ON");
}

#[test]
fn agent_refuses_bad_credentials_and_switches_nothing() {
    let bmc = PyghmiBmc::start();
    let r = bmc.agent(&["-o", "off", "--password=wrong"]);
    r.expect_code(3).expect_stderr("password");
    // Unknown user: pyghmi stays silent, the agent times out (fence-agents' 5)
    // within login_timeout + shell_timeout.
    let r = bmc.agent(&[
        "-o",
        "off",
        "--username=nobody",
        "--login-timeout=1",
        "--shell-timeout=0.5",
    ]);
    r.expect_code(5);
    assert!(r.elapsed < Duration::from_secs(4), "{}", r.describe());
    assert!(bmc.power_log().is_empty(), "nothing was switched");
    assert!(bmc.ipmitool_power_on());
}

/// pyghmi's machine power-cycles instantly (the launcher's `power_cycle` ends
/// on at once): the off is never observable, so `method=cycle` must not claim
/// a fence — the one invariant — and says to use method=onoff.
#[test]
fn agent_cycle_never_seen_off_is_not_a_fence() {
    let bmc = PyghmiBmc::start();
    // The wait for the off is bounded by power_timeout + login_timeout + shell_timeout.
    let r = bmc.agent(&[
        "-o",
        "reboot",
        "--method=cycle",
        "--power-timeout=1",
        "--login-timeout=1",
        "--shell-timeout=0.5",
    ]);
    r.expect_code(7).expect_stderr("never read back off");
    assert!(r.elapsed < Duration::from_secs(5), "{}", r.describe());
    assert!(!r.stdout.contains("Success"), "{}", r.describe());
    assert_eq!(bmc.power_log(), ["power cycle"]);
    // onoff (the default) on the same BMC: observed off, then on.
    bmc.clear_power_log();
    bmc.agent(&["-o", "reboot"]).expect_code(0);
    assert_eq!(bmc.power_log(), ["power off", "power on"]);
}
