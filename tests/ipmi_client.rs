//! Our RMCP+ client against OpenIPMI's real `ipmi_sim`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use ironfence::ipmi::client::{ClientConfig, Session};
use ironfence::ipmi::commands::{ChassisAction, ChassisControl, GetChassisStatus};
use ironfence::ipmi::{CipherChoice, IpmiError, Privilege};
use ironfence::secret::Secret;
use std::time::Duration;
use support::{require_peer, IpmiSim};
use tokio::time::Instant;

fn cfg(sim: &IpmiSim) -> ClientConfig {
    ClientConfig {
        host: "127.0.0.1".into(),
        port: sim.port(),
        username: "admin".into(),
        password: Secret::new("secret"),
        kg: None,
        privilege: Privilege::Administrator,
        cipher: CipherChoice::Auto,
        allow_insecure: false,
        retransmit: Duration::from_millis(200),
        login_timeout: Duration::from_secs(5),
    }
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(5)
}

#[tokio::test]
async fn status_off_on_with_auto_cipher() {
    require_peer("ipmi_sim");
    let sim = IpmiSim::start();
    let mut s = Session::open(&cfg(&sim), soon()).await.unwrap();
    assert_eq!(
        s.suite(),
        3,
        "ipmi_sim has no SHA-256: auto falls back to 3"
    );
    assert!(s.send(GetChassisStatus, soon()).await.unwrap().power_on);
    s.send(ChassisControl(ChassisAction::PowerOff), soon())
        .await
        .unwrap();
    assert!(!s.send(GetChassisStatus, soon()).await.unwrap().power_on);
    assert!(!sim.power_on());
    s.send(ChassisControl(ChassisAction::PowerOn), soon())
        .await
        .unwrap();
    assert!(sim.power_on());
    s.close().await;
}

#[tokio::test]
async fn wrong_password_is_an_auth_error() {
    require_peer("ipmi_sim");
    let sim = IpmiSim::start();
    let mut c = cfg(&sim);
    c.password = Secret::new("wrong");
    let e = Session::open(&c, soon()).await.err().unwrap();
    assert!(matches!(e, IpmiError::Auth { .. }), "{e}");
    assert!(e.to_string().contains("password"), "{e}");
}

/// A UDP relay between our client and the BMC that drops a seeded random
/// share of datagrams in each direction. Stops when dropped.
struct LossyProxy {
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LossyProxy {
    fn start(bmc_port: u16, drop_percent: u32, seed: u64) -> LossyProxy {
        use std::net::UdpSocket;
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let port = sock.local_addr().unwrap().port();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            // xorshift: deterministic per seed.
            let mut x = seed.max(1);
            let mut coin = move || {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % 100) < drop_percent as u64
            };
            let bmc: std::net::SocketAddr = format!("127.0.0.1:{bmc_port}").parse().unwrap();
            let mut client: Option<std::net::SocketAddr> = None;
            let mut buf = [0u8; 2048];
            while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let to = if from == bmc {
                    match client {
                        Some(c) => c,
                        None => continue,
                    }
                } else {
                    client = Some(from);
                    bmc
                };
                if !coin() {
                    let _ = sock.send_to(&buf[..n], to);
                }
            }
        });
        LossyProxy {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for LossyProxy {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[tokio::test]
async fn every_call_succeeds_through_a_lossy_path() {
    require_peer("ipmi_sim");
    let sim = IpmiSim::start();
    let proxy = LossyProxy::start(sim.port(), 25, 0x1f2e3d4c);
    // (ipmitool through the same path fails most calls: see bench/ipmi.sh.)
    let mut c = cfg(&sim);
    c.port = proxy.port;
    c.retransmit = Duration::from_millis(100);
    let mut retransmits = 0;
    let started = std::time::Instant::now();
    for i in 0..10 {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut s = Session::open(&c, deadline)
            .await
            .unwrap_or_else(|e| panic!("call {i}: {e}"));
        let on = i % 2 == 0;
        let action = if on {
            ChassisAction::PowerOn
        } else {
            ChassisAction::PowerOff
        };
        s.send(ChassisControl(action), deadline).await.unwrap();
        assert_eq!(
            s.send(GetChassisStatus, deadline).await.unwrap().power_on,
            on
        );
        retransmits += s.stats().retransmits;
        s.close().await;
    }
    eprintln!(
        "our client through 25% loss: 10/10 calls succeeded in {:?}, {retransmits} retransmissions",
        started.elapsed()
    );
    assert!(retransmits > 0, "the proxy should have dropped something");
}

#[tokio::test]
async fn a_black_hole_fails_within_the_deadline() {
    // A socket that receives and never answers.
    let hole = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut c = ClientConfig {
        host: "127.0.0.1".into(),
        port: hole.local_addr().unwrap().port(),
        username: "admin".into(),
        password: Secret::new("secret"),
        kg: None,
        privilege: Privilege::Administrator,
        cipher: CipherChoice::Auto,
        allow_insecure: false,
        retransmit: Duration::from_millis(100),
        login_timeout: Duration::from_secs(5),
    };
    let start = std::time::Instant::now();
    let e = Session::open(&c, Instant::now() + Duration::from_millis(1500))
        .await
        .err()
        .unwrap();
    let took = start.elapsed();
    assert!(matches!(e, IpmiError::Unreachable { .. }), "{e}");
    assert!(
        took >= Duration::from_millis(1400) && took < Duration::from_millis(1900),
        "{took:?}"
    );
    assert!(e.to_string().contains("answered nothing"), "{e}");
    // login_timeout, when shorter, ends it sooner
    c.login_timeout = Duration::from_millis(300);
    let start = std::time::Instant::now();
    let e = Session::open(&c, Instant::now() + Duration::from_millis(1500))
        .await
        .err()
        .unwrap();
    assert!(
        matches!(e, IpmiError::Unreachable { sent, .. } if sent >= 2),
        "{e}"
    );
    assert!(
        start.elapsed() < Duration::from_millis(600),
        "{:?}",
        start.elapsed()
    );
    c.login_timeout = Duration::from_secs(5);
    // A closed port (ICMP unreachable) also ends at the deadline, with the cause.
    drop(hole);
    c.port = support::free_udp_port();
    let e = Session::open(&c, Instant::now() + Duration::from_millis(800))
        .await
        .err()
        .unwrap();
    assert!(matches!(e, IpmiError::Unreachable { .. }), "{e}");
}

#[tokio::test]
async fn two_hundred_operations_leave_the_session_table_free() {
    require_peer("ipmi_sim");
    require_peer("ipmitool");
    let sim = IpmiSim::start();
    let c = cfg(&sim);
    for i in 0..200 {
        let mut s = Session::open(&c, soon())
            .await
            .unwrap_or_else(|e| panic!("op {i}: {e}"));
        s.send(GetChassisStatus, soon()).await.unwrap();
        s.close().await;
    }
    // ipmi_sim has 63 session slots and a 30 s idle timeout: had we leaked,
    // this would fail with "insufficient resources for session".
    let out = sim.ipmitool(["chassis", "power", "status"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Sessions dropped without close() are closed too (fire-and-forget).
    for _ in 0..70 {
        let s = Session::open(&c, soon()).await.unwrap();
        drop(s);
    }
    let out = sim.ipmitool(["chassis", "power", "status"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn suite_0_refused_unless_allowed() {
    require_peer("ipmi_sim");
    let sim = IpmiSim::start();
    let mut c = cfg(&sim);
    c.cipher = CipherChoice::Suite(0);
    let e = Session::open(&c, soon()).await.err().unwrap();
    assert!(matches!(e, IpmiError::Cipher { .. }), "{e}");
    assert!(e.to_string().contains("refused"), "{e}");
    // ipmi_sim accepts suite 0: with explicit permission it works.
    c.allow_insecure = true;
    let mut s = Session::open(&c, soon()).await.unwrap();
    assert_eq!(s.suite(), 0);
    assert!(s.send(GetChassisStatus, soon()).await.unwrap().power_on);
    s.close().await;
    // Suites 1 and 2 (no confidentiality) work too when asked for.
    for id in [1, 2] {
        let mut c = cfg(&sim);
        c.cipher = CipherChoice::Suite(id);
        c.allow_insecure = id == 1;
        let mut s = Session::open(&c, soon())
            .await
            .unwrap_or_else(|e| panic!("suite {id}: {e}"));
        assert_eq!(s.suite(), id);
        s.send(GetChassisStatus, soon()).await.unwrap();
        s.close().await;
    }
}

#[tokio::test]
async fn operator_privilege_and_unknown_user() {
    require_peer("ipmi_sim");
    let sim = IpmiSim::start();
    let mut c = cfg(&sim);
    c.privilege = Privilege::Operator;
    let mut s = Session::open(&c, soon()).await.unwrap();
    s.send(ChassisControl(ChassisAction::PowerOff), soon())
        .await
        .unwrap();
    s.close().await;
    assert!(!sim.power_on());
    let mut c = cfg(&sim);
    c.username = "nobody".into();
    let e = Session::open(&c, soon()).await.err().unwrap();
    assert!(matches!(e, IpmiError::Auth { .. }), "{e}");
}
