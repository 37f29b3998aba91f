//! Our IPMI simulator (`ironfence sim ipmi`, `ironfence::sim::ipmi`) against
//! real RMCP+ clients: `ipmitool -I lanplus` (cipher suites 3 and 17),
//! `fence_ipmilan`, and our own client. This is the interoperability proof
//! for suite 17 (HMAC-SHA256 / AES-CBC-128), which `ipmi_sim` lacks.
//!
//! Everything listens on 127.0.0.1. Simulators run either as the real
//! binary (stopped by PID with SIGTERM) or in-process; every ipmitool and
//! fence_ipmilan is waited for, and killed if a test gives up on it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use ironfence::ipmi::client::{ClientConfig, Session};
use ironfence::ipmi::commands::{ChassisAction, ChassisControl, GetChassisStatus};
use ironfence::ipmi::{CipherChoice, IpmiError, Privilege};
use ironfence::secret::Secret;
use ironfence::sim::ipmi::{BmcKey, IpmiFault, IpmiSimConfig, IpmiSimServer, SimUser};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use support::{free_udp_port, require_peer};
use tokio::time::Instant;

/// Longest any single ipmitool / fence_ipmilan run may take here.
const PEER_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------
// the simulator as a process

/// `ironfence sim ipmi ...` running in the background; stopped by PID.
struct SimProcess {
    child: Option<Child>,
    port: u16,
}

impl SimProcess {
    /// Start the binary on a free port with `args`, and wait for its
    /// "listening" line. Retries on another port if the port was taken.
    fn start(args: &[&str]) -> SimProcess {
        let mut last = String::new();
        for _ in 0..3 {
            let port = free_udp_port();
            let mut child = Command::new(env!("CARGO_BIN_EXE_ironfence"))
                .args(["sim", "ipmi", "--listen", &format!("127.0.0.1:{port}")])
                .args(args)
                .env("IRONFENCE_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn ironfence sim ipmi");
            let stdout = child.stdout.take().expect("piped stdout");
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stdout);
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                let _ = tx.send(line);
                // keep draining so the simulator never blocks on stdout
                let _ = std::io::copy(&mut reader, &mut std::io::sink());
            });
            let mut sim = SimProcess {
                child: Some(child),
                port,
            };
            match rx.recv_timeout(Duration::from_secs(20)) {
                Ok(line) if line.starts_with("ipmi sim listening on 127.0.0.1:") => {
                    assert!(line.contains(&port.to_string()), "{line}");
                    return sim;
                }
                other => {
                    let err = sim.stop();
                    last = format!("first line {other:?}, stderr: {err}");
                    if !err.contains("cannot listen") {
                        break;
                    }
                }
            }
        }
        panic!("ironfence sim ipmi did not start: {last}");
    }

    /// SIGTERM by PID, wait (SIGKILL after 10 s); returns its stderr.
    fn stop(&mut self) -> String {
        let Some(mut child) = self.child.take() else {
            return String::new();
        };
        let pid = Pid::from_raw(i32::try_from(child.id()).expect("pid fits i32"));
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                _ => {
                    let _ = kill(pid, Signal::SIGKILL);
                    let _ = child.wait();
                    break None;
                }
            }
        };
        let mut err = String::new();
        if let Some(mut stderr) = child.stderr.take() {
            let _ = stderr.read_to_string(&mut err);
        }
        if let Some(status) = status {
            err.push_str(&format!("\n(exit: {status})"));
        }
        err
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = Pid::from_raw(i32::try_from(child.id()).expect("pid fits i32"));
            let _ = kill(pid, Signal::SIGKILL);
            let _ = child.wait();
        }
    }
}

/// A counter from the stats line the binary prints when it stops.
fn stat(stderr: &str, name: &str) -> u64 {
    let key = format!(" {name}: ");
    let at = stderr
        .find(&key)
        .unwrap_or_else(|| panic!("no {name} in {stderr}"));
    stderr[at + key.len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap()
}

/// Power of `machine` in a sim state file (`None`: never changed).
fn file_power(path: &Path, machine: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v.get(machine)?.as_str().map(str::to_string)
}

// ---------------------------------------------------------------------------
// peers

fn describe(out: &Output) -> String {
    format!(
        "{}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout).trim(),
        String::from_utf8_lossy(&out.stderr).trim()
    )
}

/// Run a peer program to completion (killed if it outlives [`PEER_TIMEOUT`]).
async fn run_peer(program: &Path, args: &[String]) -> Output {
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", program.display()));
    tokio::time::timeout(PEER_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{} {args:?} hung", program.display()))
        .unwrap()
}

/// `ipmitool -I lanplus -H 127.0.0.1 -p PORT <args>`.
async fn ipmitool(port: u16, args: &[&str]) -> Output {
    let mut all: Vec<String> = ["-I", "lanplus", "-H", "127.0.0.1", "-p"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    all.push(port.to_string());
    all.extend(args.iter().map(|s| s.to_string()));
    run_peer(&require_peer("ipmitool"), &all).await
}

/// ipmitool as admin/secret with suite `cipher`.
async fn ipmitool_admin(port: u16, cipher: &str, command: &[&str]) -> Output {
    let mut args = vec!["-C", cipher, "-U", "admin", "-P", "secret"];
    args.extend_from_slice(command);
    ipmitool(port, &args).await
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

async fn fence_ipmilan(port: u16, extra: &[&str], action: &str) -> Output {
    let mut args: Vec<String> = vec![
        "--ip=127.0.0.1".into(),
        format!("--ipport={port}"),
        "--username=admin".into(),
        "--password=secret".into(),
        "--lanplus".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push(format!("--action={action}"));
    run_peer(&require_peer("fence_ipmilan"), &args).await
}

// ---------------------------------------------------------------------------
// the simulator in-process, and our client

fn users() -> Vec<SimUser> {
    vec![
        SimUser::new("admin", "secret", Privilege::Administrator),
        SimUser::new("oper", "opsecret", Privilege::Operator),
        SimUser::new("viewer", "look", Privilege::User),
    ]
}

async fn start_sim(tweak: impl FnOnce(&mut IpmiSimConfig)) -> IpmiSimServer {
    // Port 0: the kernel picks a free one; local_addr() says which.
    let mut cfg = IpmiSimConfig::new("127.0.0.1:0".parse().unwrap(), users());
    tweak(&mut cfg);
    IpmiSimServer::start(cfg).await.unwrap()
}

fn client(port: u16, user: &str, password: &str, cipher: CipherChoice) -> ClientConfig {
    ClientConfig {
        host: "127.0.0.1".into(),
        port,
        username: user.into(),
        password: Secret::new(password),
        kg: None,
        privilege: Privilege::Administrator,
        cipher,
        allow_insecure: false,
        retransmit: Duration::from_millis(100),
        login_timeout: Duration::from_secs(5),
    }
}

fn within(secs: u64) -> Instant {
    Instant::now() + Duration::from_secs(secs)
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = within(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------
// ipmitool and fence_ipmilan against the binary

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipmitool_suites_3_and_17_drive_the_binary() {
    require_peer("ipmitool");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("power.json");
    let mut sim = SimProcess::start(&[
        "--state-file",
        state.to_str().unwrap(),
        "--name",
        "node1",
        "--user",
        "admin:secret",
    ]);
    let port = sim.port;
    for cipher in ["3", "17"] {
        let out = ipmitool_admin(port, cipher, &["chassis", "power", "status"]).await;
        assert!(out.status.success(), "-C {cipher}: {}", describe(&out));
        assert_eq!(stdout(&out), "Chassis Power is on");

        let out = ipmitool_admin(port, cipher, &["chassis", "power", "off"]).await;
        assert!(out.status.success(), "-C {cipher}: {}", describe(&out));
        assert_eq!(stdout(&out), "Chassis Power Control: Down/Off");
        assert_eq!(file_power(&state, "node1").as_deref(), Some("off"));
        let out = ipmitool_admin(port, cipher, &["chassis", "power", "status"]).await;
        assert_eq!(stdout(&out), "Chassis Power is off", "{}", describe(&out));

        let out = ipmitool_admin(port, cipher, &["chassis", "power", "on"]).await;
        assert!(out.status.success(), "-C {cipher}: {}", describe(&out));
        assert_eq!(stdout(&out), "Chassis Power Control: Up/On");
        assert_eq!(file_power(&state, "node1").as_deref(), Some("on"));

        // A cycle: off for a second, then on again by itself.
        let out = ipmitool_admin(port, cipher, &["chassis", "power", "cycle"]).await;
        assert!(out.status.success(), "-C {cipher}: {}", describe(&out));
        assert_eq!(stdout(&out), "Chassis Power Control: Cycle");
        // (off now; the count of power changes below proves it)
        wait_for("the cycle to power on again", || {
            file_power(&state, "node1").as_deref() == Some("on")
        })
        .await;
    }
    // No -C: ipmitool asks for the suites (sessionless RMCP+) and picks 17.
    let out = ipmitool(
        port,
        &[
            "-U", "admin", "-P", "secret", "-v", "chassis", "power", "status",
        ],
    )
    .await;
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cipher suite 17"),
        "{}",
        describe(&out)
    );
    let err = sim.stop();
    assert!(err.contains("(exit: exit status: 0)"), "{err}");
    // off, on, cycle (off + on), twice
    assert_eq!(stat(&err, "power_changes"), 8, "{err}");
    // five ipmitool calls per suite, and the one without -C
    assert_eq!(stat(&err, "sessions_opened"), 11, "{err}");
    assert_eq!(stat(&err, "sessions_closed"), 11, "{err}");
}

/// fence_ipmilan status / off / on / reboot with `--cipher=N` (default
/// power_wait, as Pacemaker would run it); the power is read from the state file.
async fn fence_ipmilan_cycle(cipher: &str) {
    require_peer("fence_ipmilan");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("power.json");
    let mut sim = SimProcess::start(&["--state-file", state.to_str().unwrap()]);
    let port = sim.port;
    let cipher = format!("--cipher={cipher}");
    let opts = [cipher.as_str()];

    let out = fence_ipmilan(port, &opts, "status").await;
    assert_eq!(out.status.code(), Some(0), "{cipher}: {}", describe(&out));
    assert!(stdout(&out).contains("Status: ON"), "{}", describe(&out));

    let out = fence_ipmilan(port, &opts, "off").await;
    assert_eq!(out.status.code(), Some(0), "{cipher}: {}", describe(&out));
    assert_eq!(file_power(&state, "node").as_deref(), Some("off"));
    let out = fence_ipmilan(port, &opts, "status").await;
    assert_eq!(out.status.code(), Some(2), "status of an off machine is 2");
    assert!(stdout(&out).contains("Status: OFF"), "{}", describe(&out));

    let out = fence_ipmilan(port, &opts, "on").await;
    assert_eq!(out.status.code(), Some(0), "{cipher}: {}", describe(&out));
    assert_eq!(file_power(&state, "node").as_deref(), Some("on"));

    let out = fence_ipmilan(port, &opts, "reboot").await;
    assert_eq!(out.status.code(), Some(0), "{cipher}: {}", describe(&out));
    assert_eq!(file_power(&state, "node").as_deref(), Some("on"));

    // Without --cipher ipmitool picks the best suite the simulator lists.
    let out = fence_ipmilan(port, &[], "status").await;
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let err = sim.stop();
    // off, on, and the reboot's off + on
    assert_eq!(stat(&err, "power_changes"), 4, "{err}");
    assert_eq!(
        stat(&err, "sessions_opened"),
        stat(&err, "sessions_closed"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fence_ipmilan_cipher_17_drives_the_binary() {
    fence_ipmilan_cycle("17").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fence_ipmilan_cipher_3_drives_the_binary() {
    fence_ipmilan_cycle("3").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_lies_when_told_to() {
    require_peer("ipmitool");
    let mut sim = SimProcess::start(&["--fault", "lie", "--cipher", "17"]);
    let out = ipmitool_admin(sim.port, "17", &["chassis", "power", "off"]).await;
    assert!(out.status.success(), "{}", describe(&out));
    let out = ipmitool_admin(sim.port, "17", &["chassis", "power", "status"]).await;
    assert_eq!(stdout(&out), "Chassis Power is on", "{}", describe(&out));
    // Only suite 17 was offered.
    let out = ipmitool_admin(sim.port, "3", &["chassis", "power", "status"]).await;
    assert!(!out.status.success(), "{}", describe(&out));
    let err = sim.stop();
    assert_eq!(stat(&err, "lies"), 1, "{err}");
    assert_eq!(stat(&err, "power_changes"), 0, "{err}");
    assert_eq!(stat(&err, "open_refused"), 1, "{err}");
}

#[test]
fn the_binary_refuses_bad_settings() {
    for args in [
        &["--cipher", "4"][..],
        &["--fault", "drop:0"][..],
        &["--user", "nopassword"][..],
        &["--kg", "xyz"][..],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_ironfence"))
            .args(["sim", "ipmi", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(64), "{args:?}: {}", describe(&out));
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

// ---------------------------------------------------------------------------
// our own client

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_negotiates_17_and_takes_3() {
    let sim = start_sim(|_| {}).await;
    let port = sim.local_addr().port();

    let mut s = Session::open(
        &client(port, "admin", "secret", CipherChoice::Auto),
        within(5),
    )
    .await
    .unwrap();
    assert_eq!(s.suite(), 17, "Auto prefers 17 when the BMC lists it");
    assert!(s.send(GetChassisStatus, within(5)).await.unwrap().power_on);
    s.send(ChassisControl(ChassisAction::PowerOff), within(5))
        .await
        .unwrap();
    assert!(!s.send(GetChassisStatus, within(5)).await.unwrap().power_on);
    assert!(!sim.power_on().unwrap());
    s.close().await;

    let mut s = Session::open(
        &client(port, "admin", "secret", CipherChoice::Suite(3)),
        within(5),
    )
    .await
    .unwrap();
    assert_eq!(s.suite(), 3);
    s.send(ChassisControl(ChassisAction::PowerOn), within(5))
        .await
        .unwrap();
    assert!(sim.power_on().unwrap());
    s.close().await;

    let st = sim.stats();
    assert_eq!((st.sessions_opened, st.sessions_closed), (2, 2), "{st:?}");
    assert_eq!(st.power_changes, 2, "{st:?}");
    assert_eq!(st.bad_integrity, 0, "{st:?}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kg_is_used_for_session_keys() {
    let sim = start_sim(|c| c.kg = Some(BmcKey::from_hex("6b67736563726574").unwrap())).await;
    let port = sim.local_addr().port();
    // ipmitool with the right Kg (hex) works, without it RAKP 4 fails.
    for cipher in ["3", "17"] {
        let out = ipmitool(
            port,
            &[
                "-C",
                cipher,
                "-U",
                "admin",
                "-P",
                "secret",
                "-y",
                "6b67736563726574",
                "chassis",
                "power",
                "status",
            ],
        )
        .await;
        assert!(out.status.success(), "-C {cipher}: {}", describe(&out));
        let out = ipmitool_admin(port, cipher, &["chassis", "power", "status"]).await;
        assert!(
            !out.status.success(),
            "-C {cipher} without Kg: {}",
            describe(&out)
        );
    }
    let mut c = client(port, "admin", "secret", CipherChoice::Auto);
    c.kg = Some(Secret::new("6b67736563726574"));
    let s = Session::open(&c, within(5)).await.unwrap();
    assert_eq!(s.suite(), 17);
    s.close().await;
    sim.shutdown().await;
}

// ---------------------------------------------------------------------------
// refusals

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_fails_for_ipmitool_and_our_client() {
    let sim = start_sim(|_| {}).await;
    let port = sim.local_addr().port();
    for cipher in ["3", "17"] {
        let out = ipmitool(
            port,
            &[
                "-C", cipher, "-U", "admin", "-P", "wrong", "chassis", "power", "status",
            ],
        )
        .await;
        assert!(!out.status.success(), "{}", describe(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr)
                .contains("Unable to establish IPMI v2 / RMCP+ session"),
            "{}",
            describe(&out)
        );
    }
    for cipher in [CipherChoice::Auto, CipherChoice::Suite(3)] {
        let e = Session::open(&client(port, "admin", "wrong", cipher), within(5))
            .await
            .err()
            .expect("refused");
        assert!(matches!(e, IpmiError::Auth { .. }), "{e}");
        assert!(e.to_string().contains("password"), "{e}");
    }
    let st = sim.stats();
    assert_eq!(st.sessions_opened, 0, "{st:?}");
    assert!(sim.power_on().unwrap());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn privilege_is_capped_at_the_users_maximum() {
    let sim = start_sim(|_| {}).await;
    let port = sim.local_addr().port();
    // ipmitool asks for ADMINISTRATOR unless told: an operator is refused.
    let out = ipmitool(
        port,
        &[
            "-C", "17", "-U", "oper", "-P", "opsecret", "chassis", "power", "status",
        ],
    )
    .await;
    assert!(!out.status.success(), "{}", describe(&out));
    // As an operator it may read and switch power.
    let out = ipmitool(
        port,
        &[
            "-C", "17", "-U", "oper", "-P", "opsecret", "-L", "OPERATOR", "chassis", "power", "off",
        ],
    )
    .await;
    assert!(out.status.success(), "{}", describe(&out));
    assert!(!sim.power_on().unwrap());
    // A User-level account may read, not switch.
    let out = ipmitool(
        port,
        &[
            "-C", "3", "-U", "viewer", "-P", "look", "-L", "USER", "chassis", "power", "on",
        ],
    )
    .await;
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Insufficient privilege"),
        "{}",
        describe(&out)
    );
    assert!(!sim.power_on().unwrap());

    let e = Session::open(
        &client(port, "oper", "opsecret", CipherChoice::Auto),
        within(5),
    )
    .await
    .err()
    .expect("administrator refused to an operator");
    assert!(matches!(e, IpmiError::Auth { .. }), "{e}");
    let mut c = client(port, "oper", "opsecret", CipherChoice::Auto);
    c.privilege = Privilege::Operator;
    let mut s = Session::open(&c, within(5)).await.unwrap();
    s.send(ChassisControl(ChassisAction::PowerOn), within(5))
        .await
        .unwrap();
    s.close().await;
    assert!(sim.power_on().unwrap());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suite_0_only_when_enabled() {
    let sim = start_sim(|_| {}).await;
    let port = sim.local_addr().port();
    let out = ipmitool_admin(port, "0", &["chassis", "power", "status"]).await;
    assert!(!out.status.success(), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no matching cipher suite"),
        "{}",
        describe(&out)
    );
    let mut c = client(port, "admin", "secret", CipherChoice::Suite(0));
    c.allow_insecure = true;
    let e = Session::open(&c, within(5))
        .await
        .err()
        .expect("suite 0 refused");
    assert!(matches!(e, IpmiError::Cipher { .. }), "{e}");
    assert!(sim.stats().open_refused >= 2);
    sim.shutdown().await;

    // Enabled, suite 0 shows why it must not be: any password gets in.
    let sim = start_sim(|c| c.suites = vec![0, 3, 17]).await;
    let port = sim.local_addr().port();
    let out = ipmitool(
        port,
        &[
            "-C",
            "0",
            "-U",
            "admin",
            "-P",
            "not-the-password",
            "chassis",
            "power",
            "off",
        ],
    )
    .await;
    assert!(out.status.success(), "{}", describe(&out));
    assert!(!sim.power_on().unwrap());
    sim.shutdown().await;
}

// ---------------------------------------------------------------------------
// faults

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_lie_accepts_off_and_stays_on() {
    let sim = start_sim(|c| c.fault = IpmiFault::Lie).await;
    let port = sim.local_addr().port();
    let out = ipmitool_admin(port, "17", &["chassis", "power", "off"]).await;
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(stdout(&out), "Chassis Power Control: Down/Off");
    let out = ipmitool_admin(port, "17", &["chassis", "power", "status"]).await;
    assert_eq!(stdout(&out), "Chassis Power is on", "{}", describe(&out));
    // Our client is told "ok" too; only the read-back shows the lie.
    let mut s = Session::open(
        &client(port, "admin", "secret", CipherChoice::Auto),
        within(5),
    )
    .await
    .unwrap();
    s.send(ChassisControl(ChassisAction::PowerOff), within(5))
        .await
        .unwrap();
    assert!(s.send(GetChassisStatus, within(5)).await.unwrap().power_on);
    s.close().await;
    let st = sim.stats();
    assert_eq!((st.lies, st.power_changes), (2, 0), "{st:?}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_silent_never_answers() {
    let sim = start_sim(|c| c.fault = IpmiFault::Silent).await;
    let port = sim.local_addr().port();
    let cfg = client(port, "admin", "secret", CipherChoice::Auto);
    let (out, ours) = tokio::join!(
        ipmitool(
            port,
            &[
                "-C", "17", "-N", "1", "-R", "1", "-U", "admin", "-P", "secret", "chassis",
                "power", "status",
            ],
        ),
        Session::open(&cfg, Instant::now() + Duration::from_millis(1500)),
    );
    assert!(!out.status.success(), "{}", describe(&out));
    let e = ours.err().expect("no answer");
    assert!(matches!(e, IpmiError::Unreachable { .. }), "{e}");
    let st = sim.stats();
    assert!(st.datagrams > 0 && st.dropped == st.datagrams, "{st:?}");
    assert_eq!(st.replies, 0);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_drop_every_second_datagram_is_survived_by_retransmission() {
    let sim = start_sim(|c| c.fault = IpmiFault::Drop(2)).await;
    let port = sim.local_addr().port();
    let mut s = Session::open(
        &client(port, "admin", "secret", CipherChoice::Auto),
        within(10),
    )
    .await
    .unwrap();
    assert_eq!(s.suite(), 17);
    for _ in 0..3 {
        assert!(s.send(GetChassisStatus, within(5)).await.unwrap().power_on);
    }
    s.send(ChassisControl(ChassisAction::PowerOff), within(5))
        .await
        .unwrap();
    assert!(!s.send(GetChassisStatus, within(5)).await.unwrap().power_on);
    assert!(s.stats().retransmits > 0);
    s.close().await;
    let st = sim.stats();
    assert!(st.dropped > 0, "{st:?}");
    assert_eq!(
        st.power_changes, 1,
        "a retransmitted command is not repeated: {st:?}"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_refuse_rejects_every_login() {
    let sim = start_sim(|c| c.fault = IpmiFault::Refuse).await;
    let port = sim.local_addr().port();
    let out = ipmitool_admin(port, "17", &["chassis", "power", "status"]).await;
    assert!(!out.status.success(), "{}", describe(&out));
    let e = Session::open(
        &client(port, "admin", "secret", CipherChoice::Auto),
        within(5),
    )
    .await
    .err()
    .expect("refused");
    assert!(matches!(e, IpmiError::Auth { .. }), "{e}");
    assert!(e.to_string().contains("unauthorized name"), "{e}");
    let st = sim.stats();
    assert_eq!(st.logins_refused, 2, "{st:?}");
    assert_eq!(st.active_sessions, 0, "refused logins hold no slot: {st:?}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_slow_answers_late() {
    let sim = start_sim(|c| c.fault = IpmiFault::Slow(Duration::from_millis(150))).await;
    let port = sim.local_addr().port();
    let mut c = client(port, "admin", "secret", CipherChoice::Suite(17));
    c.retransmit = Duration::from_millis(500);
    let started = Instant::now();
    let mut s = Session::open(&c, within(10)).await.unwrap();
    assert!(s.send(GetChassisStatus, within(5)).await.unwrap().power_on);
    // caps, open, RAKP 1, RAKP 3, privilege, status: six late answers
    assert!(started.elapsed() >= Duration::from_millis(6 * 150));
    s.close().await;
    sim.shutdown().await;
}

// ---------------------------------------------------------------------------
// the session table

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_ipmitool_sessions_do_not_exhaust_the_table() {
    let sim = start_sim(|_| {}).await;
    let port = sim.local_addr().port();
    for i in 0..100 {
        let cipher = if i % 2 == 0 { "17" } else { "3" };
        let out = ipmitool_admin(port, cipher, &["chassis", "power", "status"]).await;
        assert!(out.status.success(), "call {i}: {}", describe(&out));
    }
    let st = sim.stats();
    assert_eq!(
        (st.sessions_opened, st.sessions_closed),
        (100, 100),
        "{st:?}"
    );
    assert_eq!(st.active_sessions, 0, "{st:?}");
    assert_eq!(st.sessions_expired, 0, "{st:?}");
    sim.shutdown().await;
}
