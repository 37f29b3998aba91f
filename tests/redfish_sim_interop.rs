//! Our Redfish simulator (`ironfence sim redfish`, `ironfence::sim::redfish`)
//! against real Redfish clients nobody on this project wrote: Debian's
//! `fence_redfish` (fence-agents 4.12.1), OpenStack's `sushy` library (from
//! the lab venv, driven by `tests/lab/sushy/sushy_client.py`) and curl. Each
//! fault mode of the simulator is shown to give the error it promises.
//!
//! Everything listens on 127.0.0.1. Simulators run either as the real binary
//! (stopped by PID with SIGTERM, SIGKILL on drop) or in-process; every peer
//! process is awaited with a timeout and killed if a test gives up on it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use ironfence::sim::redfish::{
    AuthMode, RedfishFault, RedfishSimConfig, RedfishSimServer, RedfishUser, ResetType, Vendor,
};
use ironfence::sim::SimPower;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use support::sushy::{lab_file, redfish_venv};
use support::{find_peer, free_tcp_port, require_peer};

/// Longest any single peer run may take here.
const PEER_TIMEOUT: Duration = Duration::from_secs(60);
/// What fence_redfish waits for a power change before giving up (its
/// default is 20 s; short here, the faults never let it happen).
const POWER_TIMEOUT: &str = "--power-timeout=2";

// ---------------------------------------------------------------------------
// the simulator as a process

/// `ironfence sim redfish ...` running in the background; stopped by PID.
struct SimProcess {
    child: Option<Child>,
    port: u16,
    line: String,
    cert: PathBuf,
    _dir: tempfile::TempDir,
}

impl SimProcess {
    /// Start the binary on a free port with `args` (its certificate written
    /// to a temp file), and wait for its "listening" line. Retries on
    /// another port if the port was taken.
    fn start(args: &[&str]) -> SimProcess {
        let mut last = String::new();
        for _ in 0..3 {
            let dir = tempfile::tempdir().unwrap();
            let cert = dir.path().join("cert.pem");
            let port = free_tcp_port();
            let mut child = Command::new(env!("CARGO_BIN_EXE_ironfence"))
                .args(["sim", "redfish", "--listen", &format!("127.0.0.1:{port}")])
                .arg("--cert-out")
                .arg(&cert)
                .args(args)
                .env("IRONFENCE_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn ironfence sim redfish");
            let stdout = child.stdout.take().expect("piped stdout");
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stdout);
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                let _ = tx.send(line);
                let _ = std::io::copy(&mut reader, &mut std::io::sink());
            });
            let mut sim = SimProcess {
                child: Some(child),
                port,
                line: String::new(),
                cert,
                _dir: dir,
            };
            match rx.recv_timeout(Duration::from_secs(20)) {
                Ok(line) if line.starts_with("redfish sim listening on https://127.0.0.1:") => {
                    assert!(line.contains(&port.to_string()), "{line}");
                    sim.line = line.trim().to_string();
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
        panic!("ironfence sim redfish did not start: {last}");
    }

    fn pid(&self) -> Pid {
        let child = self.child.as_ref().expect("running");
        Pid::from_raw(i32::try_from(child.id()).expect("pid fits i32"))
    }

    /// SIGTERM by PID, wait (SIGKILL after 10 s); returns its stderr.
    fn stop(&mut self) -> String {
        let Some(mut child) = self.child.take() else {
            return String::new();
        };
        let pid = Pid::from_raw(i32::try_from(child.id()).expect("pid fits i32"));
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() < deadline => {
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

// ---------------------------------------------------------------------------
// the simulator in-process

fn config(vendor: Vendor, systems: usize) -> RedfishSimConfig {
    let mut cfg = RedfishSimConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        vec![RedfishUser::new("admin", "secret")],
    )
    .with_vendor(vendor, systems);
    cfg.cycle_off = Duration::from_millis(300);
    cfg
}

struct InProc {
    server: RedfishSimServer,
    _dir: tempfile::TempDir,
    cert: PathBuf,
}

impl InProc {
    async fn start(cfg: RedfishSimConfig) -> InProc {
        let server = RedfishSimServer::start(cfg).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        std::fs::write(&cert, server.cert_pem().unwrap()).unwrap();
        InProc {
            server,
            _dir: dir,
            cert,
        }
    }

    fn port(&self) -> u16 {
        self.server.local_addr().port()
    }

    fn path(&self, index: usize) -> String {
        format!("/redfish/v1/Systems/{}", self.server.system_ids()[index])
    }

    fn power(&self, index: usize) -> SimPower {
        self.server.power(&self.server.system_ids()[index]).unwrap()
    }
}

// ---------------------------------------------------------------------------
// peers

/// What a peer process did.
#[derive(Debug)]
struct Run {
    code: i32,
    out: String,
    took: Duration,
}

/// Run `cmd` (a peer) to its end, within [`PEER_TIMEOUT`]; killed if late.
async fn run(mut cmd: tokio::process::Command) -> Run {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .kill_on_drop(true);
    let t0 = Instant::now();
    let child = cmd.spawn().expect("spawn peer");
    let out = tokio::time::timeout(PEER_TIMEOUT, child.wait_with_output())
        .await
        .expect("peer finished in time")
        .expect("peer ran");
    Run {
        code: out.status.code().unwrap_or(-1),
        out: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        took: t0.elapsed(),
    }
}

/// `fence_redfish --ip=127.0.0.1 --ipport=PORT -l admin -p PASSWORD
/// --ssl-insecure [--systems-uri=PATH] -o ACTION EXTRA...`
async fn fence_redfish(
    port: u16,
    password: &str,
    systems_uri: Option<&str>,
    action: &str,
    extra: &[&str],
) -> Run {
    let mut cmd = tokio::process::Command::new(require_peer("fence_redfish"));
    cmd.args(["--ip=127.0.0.1", &format!("--ipport={port}")])
        .args(["-l", "admin", "-p", password, "--ssl-insecure"])
        .args(systems_uri.map(|s| format!("--systems-uri={s}")))
        .args(["-o", action])
        .args(extra);
    run(cmd).await
}

/// `sushy_client.py URL admin PASSWORD VERIFY AUTH SYSTEM OPS...`: one JSON
/// object per op.
async fn sushy(
    port: u16,
    password: &str,
    verify: &Path,
    auth: &str,
    system: &str,
    ops: &[&str],
) -> Vec<Value> {
    let python = redfish_venv().join("bin/python");
    let mut cmd = tokio::process::Command::new(python);
    cmd.arg(lab_file("sushy_client.py"))
        .arg(format!("https://127.0.0.1:{port}"))
        .args(["admin", password])
        .arg(verify)
        .args([auth, system])
        .args(ops);
    let r = run(cmd).await;
    assert_eq!(r.code, 0, "sushy_client.py: {}", r.out);
    r.out
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The result of op `op` in sushy output.
fn op<'a>(results: &'a [Value], op: &str) -> &'a Value {
    results
        .iter()
        .find(|r| r["op"] == op)
        .unwrap_or_else(|| panic!("no {op} in {results:?}"))
}

/// An HTTP exchange as curl (or reqwest, without curl) saw it.
#[derive(Debug)]
struct Http {
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
}

impl Http {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn error_id(&self) -> &str {
        self.body["error"]["@Message.ExtendedInfo"][0]["MessageId"]
            .as_str()
            .unwrap_or_else(|| panic!("no Redfish error in {self:?}"))
    }
}

#[derive(Clone, Copy)]
enum Cred<'a> {
    None,
    Basic(&'a str, &'a str),
    Token(&'a str),
}

/// One request with certificate verification against `ca`: curl if
/// installed, else reqwest (rustls).
async fn http(ca: &Path, method: &str, url: &str, cred: Cred<'_>, body: Option<&str>) -> Http {
    match find_peer("curl") {
        Some(curl) => {
            let mut cmd = tokio::process::Command::new(curl);
            cmd.args(["-sS", "--noproxy", "*", "-D", "-", "-X", method])
                .arg("--cacert")
                .arg(ca)
                .args(["-H", "Accept: application/json"]);
            match cred {
                Cred::None => {}
                Cred::Basic(u, p) => {
                    cmd.args(["-u", &format!("{u}:{p}")]);
                }
                Cred::Token(t) => {
                    cmd.args(["-H", &format!("X-Auth-Token: {t}")]);
                }
            }
            if let Some(b) = body {
                cmd.args(["-H", "Content-Type: application/json", "--data-binary", b]);
            }
            cmd.arg(url);
            let r = run(cmd).await;
            assert_eq!(r.code, 0, "curl {url}: {}", r.out);
            parse_curl(&r.out)
        }
        None => {
            let ca = std::fs::read(ca).unwrap();
            let client = reqwest::Client::builder()
                .use_rustls_tls()
                .tls_built_in_root_certs(false)
                .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
                .no_proxy()
                .build()
                .unwrap();
            let mut req =
                client.request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), url);
            req = match cred {
                Cred::None => req,
                Cred::Basic(u, p) => req.basic_auth(u, Some(p)),
                Cred::Token(t) => req.header("X-Auth-Token", t),
            };
            if let Some(b) = body {
                req = req
                    .header("Content-Type", "application/json")
                    .body(b.to_string());
            }
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let headers = resp
                .headers()
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_string()))
                .collect();
            let text = resp.text().await.unwrap();
            Http {
                status,
                headers,
                body: serde_json::from_str(&text).unwrap_or(Value::Null),
            }
        }
    }
}

/// `curl -D -` output: status line and headers, a blank line, the body.
fn parse_curl(out: &str) -> Http {
    let (head, body) = out
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no header block in {out:?}"));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {out:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Http {
        status,
        headers,
        body: serde_json::from_str(body).unwrap_or(Value::Null),
    }
}

// ---------------------------------------------------------------------------
// fence_redfish

/// The binary, by PID: fence_redfish status / off / on / reboot on one of
/// three systems, the others untouched; discovery without --systems-uri;
/// a wrong password; then SIGTERM and the counters it prints.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fence_redfish_drives_the_binary() {
    let mut sim = SimProcess::start(&["--systems", "3"]);
    assert!(sim.line.contains(" fingerprint "), "{}", sim.line);
    let ids: Vec<String> = sim
        .line
        .split(" systems ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .split(',')
        .map(str::to_string)
        .collect();
    assert_eq!(ids.len(), 3);
    let target = format!("/redfish/v1/Systems/{}", ids[1]);
    let port = sim.port;
    let system_power = |i: usize| {
        let url = format!("https://127.0.0.1:{port}/redfish/v1/Systems/{}", ids[i]);
        let cert = sim.cert.clone();
        async move {
            let r = http(&cert, "GET", &url, Cred::Basic("admin", "secret"), None).await;
            assert_eq!(r.status, 200, "{r:?}");
            r.body["PowerState"].as_str().unwrap().to_string()
        }
    };

    let r = fence_redfish(port, "secret", Some(&target), "status", &[]).await;
    assert_eq!((r.code, r.out.trim()), (0, "Status: ON"), "{r:?}");
    let r = fence_redfish(port, "secret", Some(&target), "off", &[]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.out.contains("Success: Powered OFF"), "{r:?}");
    let off_took = r.took;
    assert_eq!(system_power(1).await, "Off");
    assert_eq!(system_power(0).await, "On");
    assert_eq!(system_power(2).await, "On");
    let r = fence_redfish(port, "secret", Some(&target), "status", &[]).await;
    assert_eq!((r.code, r.out.trim()), (2, "Status: OFF"), "{r:?}");
    let r = fence_redfish(port, "secret", Some(&target), "on", &[]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.out.contains("Success: Powered ON"), "{r:?}");
    let r = fence_redfish(port, "secret", Some(&target), "reboot", &[]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.out.contains("Success: Rebooted"), "{r:?}");
    assert_eq!(system_power(1).await, "On");
    // without --systems-uri it takes the last member of the collection
    let r = fence_redfish(port, "secret", None, "off", &[]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(system_power(2).await, "Off");
    let r = fence_redfish(port, "wrong", Some(&target), "status", &[]).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.out.contains("Unable to get PowerState"), "{r:?}");

    let pid = sim.pid();
    assert!(pid.as_raw() > 0);
    let err = sim.stop();
    assert!(err.contains("(exit: exit status: 0)"), "{err}");
    // off, reboot (off + on), on, discovery off: ForceOff 3, On 2
    assert!(err.contains("\"ForceOff\": 3"), "{err}");
    assert!(err.contains("\"On\": 2"), "{err}");
    assert_eq!(stat(&err, "resets"), 5, "{err}");
    assert_eq!(stat(&err, "auth_failures"), 1, "{err}");
    eprintln!("fence_redfish -o off against the binary took {off_took:?}");
}

/// fence_redfish against the vendor personalities (ids, answer shapes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fence_redfish_with_each_vendor() {
    for (vendor, path) in [
        (Vendor::Dell, "/redfish/v1/Systems/System.Embedded.1"),
        (Vendor::Hpe, "/redfish/v1/Systems/1"),
        (Vendor::OpenBmc, "/redfish/v1/Systems/system"),
    ] {
        let sim = InProc::start(config(vendor, 1)).await;
        let port = sim.port();
        for (action, code, state) in [
            ("off", 0, SimPower::Off),
            ("status", 2, SimPower::Off),
            ("on", 0, SimPower::On),
            ("reboot", 0, SimPower::On),
            ("status", 0, SimPower::On),
        ] {
            let r = fence_redfish(port, "secret", Some(path), action, &[]).await;
            assert_eq!(r.code, code, "{vendor} {action}: {r:?}");
            assert_eq!(sim.power(0), state, "{vendor} {action}");
        }
        let st = sim.server.stats();
        assert_eq!(st.resets_refused, 0, "{vendor}: {st:?}");
        assert_eq!(st.resets_by_type["ForceOff"], 2, "{vendor}: {st:?}");
    }
}

/// Every fault mode, as fence_redfish meets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fence_redfish_meets_every_fault() {
    let sim = InProc::start(config(Vendor::Generic, 2)).await;
    let port = sim.port();
    let target = sim.path(0);
    let fence = |action: &'static str, extra: &'static [&'static str]| {
        let target = target.clone();
        async move { fence_redfish(port, "secret", Some(&target), action, extra).await }
    };

    // unauthorized: even the status read fails
    sim.server.set_fault(RedfishFault::Unauthorized);
    let r = fence("status", &[]).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.out.contains("Unable to get PowerState"), "{r:?}");
    assert!(sim.server.stats().auth_failures >= 1);

    // lie: ForceOff accepted, the machine stays on, fence_redfish times out
    sim.server.set_fault(RedfishFault::Lie);
    let r = fence("off", &[POWER_TIMEOUT]).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.out.contains("Timed out waiting to power OFF"), "{r:?}");
    assert_eq!(sim.power(0), SimPower::On);
    assert_eq!(sim.server.stats().lies, 1);

    // error: 500 on the reset (fence_redfish ignores the status, then times out)
    sim.server.set_fault(RedfishFault::Error);
    let r = fence("off", &[POWER_TIMEOUT]).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.out.contains("Timed out waiting to power OFF"), "{r:?}");
    assert_eq!(sim.server.stats().resets_failed, 1);

    // bad-reset:ForceOff: 400 for the one type fence_redfish uses to power off
    sim.server
        .set_fault(RedfishFault::BadReset(ResetType::ForceOff));
    let r = fence("off", &[POWER_TIMEOUT]).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(sim.server.stats().resets_refused, 1);
    assert_eq!(sim.power(0), SimPower::On);

    // slow: every answer late, status still right
    sim.server
        .set_fault(RedfishFault::Slow(Duration::from_millis(400)));
    let r = fence("status", &[]).await;
    assert_eq!((r.code, r.out.trim()), (0, "Status: ON"), "{r:?}");
    assert!(r.took >= Duration::from_millis(400), "{r:?}");

    // task: 202 + task; the power changes when the task completes
    sim.server
        .set_fault(RedfishFault::Task(Duration::from_millis(800)));
    let r = fence("off", &[]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.took >= Duration::from_millis(800), "{r:?}");
    assert_eq!(sim.power(0), SimPower::Off);
    let st = sim.server.stats();
    assert_eq!((st.tasks_created, st.tasks_completed), (1, 1), "{st:?}");

    // delay: 204 at once, the power changes later; fence_redfish polls
    sim.server
        .set_fault(RedfishFault::Delay(Duration::from_millis(1500)));
    let r = fence("on", &[]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.took >= Duration::from_millis(1500), "{r:?}");
    assert_eq!(sim.power(0), SimPower::On);

    // behaving again
    sim.server.set_fault(RedfishFault::None);
    let r = fence("off", &[]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(sim.power(1), SimPower::On);
}

// ---------------------------------------------------------------------------
// sushy

/// sushy reads power and resets, verifying our certificate, with a session
/// (created and deleted) or Basic auth, on each vendor personality.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sushy_reads_power_and_resets() {
    let sim = InProc::start(config(Vendor::Generic, 3)).await;
    let system = sim.path(1);
    let out = sushy(
        sim.port(),
        "secret",
        &sim.cert,
        "auto",
        &system,
        &[
            "state",
            "allowed",
            "reset:ForceOff",
            "state",
            "reset:On",
            "state",
            "reset:ForceRestart",
            "wait:off:2",
            "wait:on:5",
            "reset:GracefulShutdown",
            "state",
        ],
    )
    .await;
    assert!(out.iter().all(|r| r["ok"] == true), "{out:#?}");
    assert_eq!(
        op(&out, "connect")["value"]["session"],
        "/redfish/v1/SessionService/Sessions/1"
    );
    assert_eq!(op(&out, "allowed")["value"].as_array().unwrap().len(), 9);
    let states: Vec<&Value> = out
        .iter()
        .filter(|r| r["op"] == "state")
        .map(|r| &r["value"])
        .collect();
    assert_eq!(states, ["on", "off", "on", "off"]);
    assert_eq!(sim.power(1), SimPower::Off);
    assert_eq!(sim.power(0), SimPower::On);
    let st = sim.server.stats();
    assert_eq!((st.sessions_created, st.sessions_deleted), (1, 1), "{st:?}");
    assert_eq!(st.auth_failures, 0, "{st:?}");

    // a BMC without sessions: sushy falls back to Basic by itself
    let mut cfg = config(Vendor::Generic, 1);
    cfg.auth = AuthMode::Basic;
    let basic = InProc::start(cfg).await;
    let out = sushy(
        basic.port(),
        "secret",
        Path::new("insecure"),
        "auto",
        &basic.path(0),
        &["reset:ForceOff", "state"],
    )
    .await;
    assert_eq!(op(&out, "state")["value"], "off", "{out:#?}");
    assert_eq!(basic.server.stats().sessions_created, 0);

    // session-only BMC with sushy's SessionAuth
    let mut cfg = config(Vendor::Generic, 1);
    cfg.auth = AuthMode::Session;
    let sessions = InProc::start(cfg).await;
    let out = sushy(
        sessions.port(),
        "secret",
        &sessions.cert,
        "session",
        &sessions.path(0),
        &["state", "reset:ForceOff", "state"],
    )
    .await;
    assert!(out.iter().all(|r| r["ok"] == true), "{out:#?}");
    let st = sessions.server.stats();
    assert_eq!((st.sessions_created, st.sessions_deleted), (1, 1), "{st:?}");

    // OpenBMC announces the allowed types only through ResetActionInfo;
    // Dell does not allow PowerCycle, which sushy then refuses to send
    let openbmc = InProc::start(config(Vendor::OpenBmc, 1)).await;
    let out = sushy(
        openbmc.port(),
        "secret",
        &openbmc.cert,
        "auto",
        "/redfish/v1/Systems/system",
        &["allowed", "reset:ForceOff", "state"],
    )
    .await;
    assert_eq!(
        op(&out, "allowed")["value"],
        serde_json::json!([
            "ForceOff",
            "ForceOn",
            "ForceRestart",
            "GracefulRestart",
            "GracefulShutdown",
            "Nmi",
            "On",
            "PowerCycle"
        ])
    );
    assert_eq!(op(&out, "state")["value"], "off");
    assert!(openbmc.server.stats().requests_by_kind["action_info"] >= 1);
    let dell = InProc::start(config(Vendor::Dell, 2)).await;
    let out = sushy(
        dell.port(),
        "secret",
        &dell.cert,
        "auto",
        "/redfish/v1/Systems/System.Embedded.2",
        &["reset:PowerCycle", "reset:ForceRestart"],
    )
    .await;
    assert_eq!(
        op(&out, "reset:PowerCycle")["error"],
        "InvalidParameterValueError"
    );
    assert_eq!(op(&out, "reset:ForceRestart")["ok"], true);
    assert_eq!(dell.server.stats().resets_by_type.get("PowerCycle"), None);
}

/// Every fault mode, as sushy meets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sushy_meets_every_fault() {
    let sim = InProc::start(config(Vendor::Generic, 1)).await;
    let system = sim.path(0);
    let run = |password: &'static str, ops: &'static [&'static str]| {
        let system = system.clone();
        let cert = sim.cert.clone();
        let port = sim.port();
        async move { sushy(port, password, &cert, "auto", &system, ops).await }
    };

    // wrong password: the session login fails, Basic too: AccessError 401
    let out = run("wrong", &["state"]).await;
    assert_eq!(op(&out, "state")["error"], "AccessError", "{out:#?}");
    assert_eq!(op(&out, "state")["status"], 401);

    sim.server.set_fault(RedfishFault::Unauthorized);
    let out = run("secret", &["state"]).await;
    assert_eq!(op(&out, "state")["status"], 401, "{out:#?}");

    sim.server
        .set_fault(RedfishFault::BadReset(ResetType::ForceOff));
    let out = run(
        "secret",
        &["reset:ForceOff", "reset:GracefulShutdown", "state"],
    )
    .await;
    assert_eq!(
        op(&out, "reset:ForceOff")["error"],
        "BadRequestError",
        "{out:#?}"
    );
    assert_eq!(op(&out, "reset:ForceOff")["status"], 400);
    assert_eq!(op(&out, "reset:GracefulShutdown")["ok"], true);
    assert_eq!(op(&out, "state")["value"], "off");

    sim.server.set_fault(RedfishFault::Error);
    let out = run("secret", &["reset:On", "state"]).await;
    assert_eq!(op(&out, "reset:On")["status"], 500, "{out:#?}");
    assert_eq!(op(&out, "reset:On")["error"], "ServerSideError");
    assert_eq!(op(&out, "state")["value"], "off");

    sim.server.set_fault(RedfishFault::None);
    let out = run("secret", &["reset:On", "state"]).await;
    assert_eq!(op(&out, "state")["value"], "on", "{out:#?}");

    sim.server.set_fault(RedfishFault::Lie);
    let out = run("secret", &["reset:ForceOff", "wait:off:1"]).await;
    assert_eq!(op(&out, "reset:ForceOff")["ok"], true, "{out:#?}");
    assert_eq!(op(&out, "wait:off:1")["value"], "on");

    sim.server
        .set_fault(RedfishFault::Task(Duration::from_millis(500)));
    let out = run("secret", &["reset:ForceOff", "state", "wait:off:5"]).await;
    assert_eq!(op(&out, "reset:ForceOff")["ok"], true, "{out:#?}");
    assert_eq!(op(&out, "state")["value"], "on", "not yet");
    assert_eq!(op(&out, "wait:off:5")["ok"], true);

    sim.server.set_faults(&[
        RedfishFault::Delay(Duration::from_millis(700)),
        RedfishFault::Slow(Duration::from_millis(100)),
    ]);
    let out = run("secret", &["reset:On", "state", "wait:on:5"]).await;
    assert_eq!(op(&out, "state")["value"], "off", "{out:#?}");
    assert_eq!(op(&out, "wait:on:5")["ok"], true);
    let st = sim.server.stats();
    assert_eq!(st.sessions_created, st.sessions_deleted, "{st:?}");
}

// ---------------------------------------------------------------------------
// curl

/// curl (or reqwest) sees the answers the fault modes promise, sessions
/// being created and deleted, and tasks completing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_sees_errors_sessions_and_tasks() {
    let sim = InProc::start(config(Vendor::Generic, 2)).await;
    let base = sim.server.base_url();
    let ca = sim.cert.clone();
    let admin = Cred::Basic("admin", "secret");
    let system = format!("{base}{}", sim.path(0));
    let reset = format!("{system}/Actions/ComputerSystem.Reset");
    let body = |t: &str| format!(r#"{{"ResetType":"{t}"}}"#);

    // the service root is open, the rest is not
    let r = http(&ca, "GET", &format!("{base}/redfish/v1/"), Cred::None, None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("OData-Version"), Some("4.0"));
    let r = http(&ca, "GET", &system, Cred::None, None).await;
    assert_eq!(r.status, 401);
    assert!(r.header("WWW-Authenticate").is_some(), "{r:?}");
    let r = http(&ca, "GET", &system, Cred::Basic("admin", "wrong"), None).await;
    assert_eq!((r.status, r.error_id()), (401, "Base.1.8.NoValidSession"));
    assert_eq!(r.body["error"]["code"], "Base.1.8.NoValidSession");

    // sessions: 201 + X-Auth-Token + Location; DELETE 204; token dead after
    let login = r#"{"UserName":"admin","Password":"secret"}"#;
    let sessions = format!("{base}/redfish/v1/SessionService/Sessions");
    let r = http(&ca, "POST", &sessions, Cred::None, Some(login)).await;
    assert_eq!(r.status, 201, "{r:?}");
    let token = r.header("X-Auth-Token").unwrap().to_string();
    let location = r.header("Location").unwrap().to_string();
    assert_eq!(r.body["UserName"], "admin");
    let r = http(&ca, "GET", &system, Cred::Token(&token), None).await;
    assert_eq!((r.status, r.body["PowerState"].as_str()), (200, Some("On")));
    let r = http(&ca, "GET", &sessions, Cred::Token(&token), None).await;
    assert_eq!(r.body["Members@odata.count"], 1);
    let r = http(
        &ca,
        "DELETE",
        &format!("{base}{location}"),
        Cred::Token(&token),
        None,
    )
    .await;
    assert_eq!(r.status, 204, "{r:?}");
    let r = http(&ca, "GET", &system, Cred::Token(&token), None).await;
    assert_eq!(r.status, 401);
    let r = http(
        &ca,
        "POST",
        &sessions,
        Cred::None,
        Some(r#"{"UserName":"admin","Password":"x"}"#),
    )
    .await;
    assert_eq!(r.status, 401);
    let st = sim.server.stats();
    assert_eq!(
        (st.sessions_created, st.sessions_deleted, st.active_sessions),
        (1, 1, 0)
    );

    // malformed requests: 400 with a Redfish error body
    let r = http(&ca, "POST", &reset, admin, Some("{\"ResetType\":")).await;
    assert_eq!((r.status, r.error_id()), (400, "Base.1.8.MalformedJSON"));
    let r = http(&ca, "POST", &reset, admin, Some("{}")).await;
    assert_eq!(
        (r.status, r.error_id()),
        (400, "Base.1.8.ActionParameterMissing")
    );

    // bad-reset: 400 for that one type
    sim.server
        .set_fault(RedfishFault::BadReset(ResetType::ForceRestart));
    let r = http(&ca, "POST", &reset, admin, Some(&body("ForceRestart"))).await;
    assert_eq!(
        (r.status, r.error_id()),
        (400, "Base.1.8.ActionParameterValueNotInList")
    );

    // error: 500
    sim.server.set_fault(RedfishFault::Error);
    let r = http(&ca, "POST", &reset, admin, Some(&body("ForceOff"))).await;
    assert_eq!((r.status, r.error_id()), (500, "Base.1.8.InternalError"));
    assert_eq!(sim.power(0), SimPower::On);

    // lie: 204 and still on
    sim.server.set_fault(RedfishFault::Lie);
    let r = http(&ca, "POST", &reset, admin, Some(&body("ForceOff"))).await;
    assert_eq!(r.status, 204);
    let r = http(&ca, "GET", &system, admin, None).await;
    assert_eq!(r.body["PowerState"], "On");

    // unauthorized: 401 even with the right password
    sim.server.set_fault(RedfishFault::Unauthorized);
    let r = http(&ca, "GET", &system, admin, None).await;
    assert_eq!(r.status, 401);

    // slow: late answers
    sim.server
        .set_fault(RedfishFault::Slow(Duration::from_millis(300)));
    let t0 = Instant::now();
    let r = http(&ca, "GET", &format!("{base}/redfish/v1"), Cred::None, None).await;
    assert_eq!(r.status, 200);
    assert!(t0.elapsed() >= Duration::from_millis(300));

    // task: 202 + Location of a task that completes, then Off
    sim.server
        .set_fault(RedfishFault::Task(Duration::from_millis(600)));
    let t0 = Instant::now();
    let r = http(&ca, "POST", &reset, admin, Some(&body("ForceOff"))).await;
    assert_eq!(r.status, 202, "{r:?}");
    let task = r.header("Location").unwrap().to_string();
    assert_eq!(task, "/redfish/v1/TaskService/Tasks/1");
    assert_eq!(r.body["TaskState"], "Running");
    let monitor = r.body["TaskMonitor"].as_str().unwrap().to_string();
    let r = http(&ca, "GET", &format!("{base}{monitor}"), admin, None).await;
    assert_eq!(r.status, 202);
    assert_eq!(sim.power(0), SimPower::On);
    let done = loop {
        let r = http(&ca, "GET", &format!("{base}{task}"), admin, None).await;
        assert_eq!(r.status, 200);
        if r.body["TaskState"] == "Completed" {
            break t0.elapsed();
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "{r:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(done >= Duration::from_millis(600), "{done:?}");
    assert_eq!(sim.power(0), SimPower::Off);
    let r = http(&ca, "GET", &format!("{base}{monitor}"), admin, None).await;
    assert_eq!(r.status, 204);

    // delay: 204 now, On a second later
    sim.server
        .set_fault(RedfishFault::Delay(Duration::from_millis(1000)));
    let r = http(&ca, "POST", &reset, admin, Some(&body("On"))).await;
    assert_eq!(r.status, 204);
    assert_eq!(sim.power(0), SimPower::Off);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(sim.power(0), SimPower::On);

    // a disallowed type (Dell has no PowerCycle)
    let dell = InProc::start(config(Vendor::Dell, 1)).await;
    let r = http(
        &dell.cert,
        "POST",
        &format!(
            "{}/redfish/v1/Systems/System.Embedded.1/Actions/ComputerSystem.Reset",
            dell.server.base_url()
        ),
        admin,
        Some(&body("PowerCycle")),
    )
    .await;
    assert_eq!(
        (r.status, r.error_id()),
        (400, "Base.1.8.ActionParameterValueNotInList")
    );
    assert_eq!(dell.server.stats().resets_refused, 1);
}

/// The binary with a certificate and key given (made by openssl if
/// installed, else rcgen): it presents that certificate, its fingerprint
/// as openssl prints it, and plain HTTP only when asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_with_given_certificate_and_plain_http() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("given.pem");
    let key = dir.path().join("given.key");
    let (cert_pem, key_pem) = support::sushy::self_signed_loopback_cert().unwrap();
    std::fs::write(&cert, &cert_pem).unwrap();
    std::fs::write(&key, &key_pem).unwrap();
    let mut sim = SimProcess::start(&[
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--vendor",
        "hpe",
        "--systems",
        "2",
    ]);
    assert_eq!(std::fs::read_to_string(&sim.cert).unwrap(), cert_pem);
    if let Some(openssl) = find_peer("openssl") {
        let out = Command::new(openssl)
            .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
            .arg(&cert)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let fp = text.trim().rsplit('=').next().unwrap();
        assert!(
            sim.line.ends_with(&format!("fingerprint {fp}")),
            "{} vs {fp}",
            sim.line
        );
    }
    let r = http(
        &cert,
        "GET",
        &format!("https://127.0.0.1:{}/redfish/v1/Systems", sim.port),
        Cred::Basic("admin", "secret"),
        None,
    )
    .await;
    assert_eq!(r.body["Members"][1]["@odata.id"], "/redfish/v1/Systems/2");
    let err = sim.stop();
    assert!(err.contains("redfish sim stopped"), "{err}");

    // plain HTTP, asked for
    let port = free_tcp_port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ironfence"))
        .args([
            "sim",
            "redfish",
            "--http",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut out = tokio::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    tokio::time::timeout(
        Duration::from_secs(20),
        tokio::io::AsyncBufReadExt::read_line(&mut out, &mut line),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(
        line.starts_with(&format!(
            "redfish sim listening on http://127.0.0.1:{port} "
        )),
        "{line}"
    );
    assert!(line.trim_end().ends_with("fingerprint none"), "{line}");
    let r = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("http://127.0.0.1:{port}/redfish/v1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let pid = Pid::from_raw(i32::try_from(child.id().unwrap()).unwrap());
    kill(pid, Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
}
