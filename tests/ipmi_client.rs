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
