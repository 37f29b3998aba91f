//! Our Redfish client, device kind and agent against OpenStack's real
//! sushy-tools emulator, and against our simulator's fault modes; TLS modes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;
mod support;

use harness::{stderr, stdout, Lab, CLI};
use ironfence::power::redfish::RedfishDevice;
use ironfence::power::{verify, PowerDevice, PowerError, PowerState};
use ironfence::redfish::client::{AuthMode, SystemSelector};
use ironfence::redfish::tls::{parse_fingerprint, TlsMode};
use ironfence::secret::{PasswordSource, Secret};
use ironfence::sim::redfish::{
    RedfishFault, RedfishSimConfig, RedfishSimServer, RedfishUser, ResetType, Vendor,
};
use std::process::Command;
use std::time::Duration;
use support::sushy::{PowerDelay, SushyEmulator, SushyOptions};

fn timeouts(s: u64) -> ironfence::config::Timeouts {
    let d = Duration::from_secs(s);
    ironfence::config::Timeouts {
        off: d,
        on: d,
        status: d,
        list: d,
        monitor: d,
    }
}

fn device(port: u16, tls: TlsMode, password: &str, system: SystemSelector) -> RedfishDevice {
    RedfishDevice::from_parts(
        "rf",
        ironfence::config::RedfishDeviceConfig {
            address: "127.0.0.1".into(),
            port,
            tls,
            system,
            auth: AuthMode::Auto,
            root: "/redfish/v1".into(),
            request_timeout: Duration::from_secs(5),
            profile: None,
        },
        "admin",
        PasswordSource::Inline(Secret::new(password)),
        timeouts(20),
        Default::default(),
    )
}

fn ca(emu: &SushyEmulator) -> TlsMode {
    TlsMode::Verify {
        ca_file: Some(emu.ca_pem_path()),
    }
}

#[tokio::test]
async fn sushy_status_off_on_reboot_and_errors() {
    let emu = SushyEmulator::start(3, 0);
    let ids = emu.system_ids();
    let d = device(
        emu.port(),
        ca(&emu),
        "secret",
        SystemSelector::Id(ids[1].clone()),
    );
    let poll = Duration::from_millis(100);
    assert_eq!(d.status("").await.unwrap(), PowerState::On);
    verify::set_and_verify(&d, "", PowerState::Off, Duration::from_secs(10), poll)
        .await
        .unwrap();
    assert_eq!(emu.power_state(&ids[1]), "Off");
    assert_eq!(emu.power_state(&ids[0]), "On", "only the selected system");
    verify::set_and_verify(&d, "", PowerState::On, Duration::from_secs(10), poll)
        .await
        .unwrap();
    assert_eq!(emu.power_state(&ids[1]), "On");

    // Several systems and no selector: an error listing them.
    let d = device(emu.port(), ca(&emu), "secret", SystemSelector::Only);
    let e = d.status("").await.unwrap_err().to_string();
    assert!(e.contains("3 systems"), "{e}");
    for id in &ids {
        assert!(e.contains(id.as_str()), "{e}");
    }
    // By UUID and by URI too.
    let d = device(
        emu.port(),
        ca(&emu),
        "secret",
        SystemSelector::Uri(emu.system_path(&ids[2])),
    );
    assert_eq!(d.status("").await.unwrap(), PowerState::On);

    // Wrong password: an auth error, nothing switched.
    let d = device(
        emu.port(),
        ca(&emu),
        "wrong",
        SystemSelector::Id(ids[0].clone()),
    );
    let e = d.off("").await.unwrap_err();
    assert!(matches!(e, PowerError::Auth { .. }), "{e}");
    assert!(e.to_string().contains("check username and password"), "{e}");
    assert_eq!(emu.power_state(&ids[0]), "On");
}

#[tokio::test]
async fn sushy_disabled_power_off_is_a_failure_never_success() {
    let mut opts = SushyOptions::new(1);
    opts.disable_power_off = true;
    let emu = SushyEmulator::start_with(opts);
    let d = device(emu.port(), ca(&emu), "secret", SystemSelector::Only);
    let e = verify::set_and_verify(
        &d,
        "",
        PowerState::Off,
        Duration::from_secs(5),
        Duration::from_millis(100),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, PowerError::Refused { .. }), "{e}");
    assert!(e.to_string().contains("400"), "{e}");
    assert_eq!(emu.power_state(&emu.system_ids()[0]), "On");
}

#[tokio::test]
async fn sushy_random_power_delay_is_polled_within_power_timeout() {
    let mut opts = SushyOptions::new(1);
    opts.power_delay = PowerDelay::Random;
    let emu = SushyEmulator::start_with(opts);
    let d = device(emu.port(), ca(&emu), "secret", SystemSelector::Only);
    // sushy applies the change 1..11 s later: the read-back waits for it.
    let v = verify::set_and_verify(
        &d,
        "",
        PowerState::Off,
        Duration::from_secs(20),
        Duration::from_millis(250),
    )
    .await
    .unwrap();
    assert!(v.reads >= 1);
    assert_eq!(emu.power_state(&emu.system_ids()[0]), "Off");
    // A power_timeout shorter than the delay fails, never reports success.
    let e = verify::set_and_verify(
        &d,
        "",
        PowerState::On,
        Duration::from_millis(300),
        Duration::from_millis(100),
    )
    .await;
    if let Err(e) = e {
        assert!(
            e.to_string().contains("still reported") || e.is_timeout(),
            "{e}"
        );
    }
}

#[tokio::test]
async fn tls_wrong_ca_refused_pinned_accepted_insecure_accepted() {
    let emu = SushyEmulator::start(1, 0);
    // The system roots do not know sushy's self-signed certificate.
    let d = device(
        emu.port(),
        TlsMode::Verify { ca_file: None },
        "secret",
        SystemSelector::Only,
    );
    let e = d.status("").await.unwrap_err();
    assert!(e.to_string().contains("TLS"), "{e}");
    // Another CA: refused.
    let other = RedfishSimServer::start(RedfishSimConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        vec![RedfishUser::new("admin", "secret")],
    ))
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("wrong-ca.pem");
    std::fs::write(&wrong, other.cert_pem().unwrap()).unwrap();
    let d = device(
        emu.port(),
        TlsMode::Verify {
            ca_file: Some(wrong),
        },
        "secret",
        SystemSelector::Only,
    );
    assert!(d.status("").await.unwrap_err().to_string().contains("TLS"));
    // Pinned fingerprint of sushy's certificate: accepted; another pin: refused.
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(emu.ca_pem_path())
        .output()
        .unwrap();
    let fp_text = String::from_utf8_lossy(&out.stdout);
    let fp = parse_fingerprint(fp_text.trim().rsplit('=').next().unwrap()).unwrap();
    let d = device(
        emu.port(),
        TlsMode::Pinned(fp),
        "secret",
        SystemSelector::Only,
    );
    assert_eq!(d.status("").await.unwrap(), PowerState::On);
    let other_fp = parse_fingerprint(other.cert_sha256_fingerprint().unwrap()).unwrap();
    let d = device(
        emu.port(),
        TlsMode::Pinned(other_fp),
        "secret",
        SystemSelector::Only,
    );
    let e = d.status("").await.unwrap_err().to_string();
    assert!(e.contains("fingerprint"), "{e}");
    // Insecure: accepted (the warning goes to the log).
    let d = device(
        emu.port(),
        TlsMode::Insecure,
        "secret",
        SystemSelector::Only,
    );
    assert_eq!(d.status("").await.unwrap(), PowerState::On);
    other.shutdown().await;
}

async fn sim(vendor: Vendor, faults: Vec<RedfishFault>) -> RedfishSimServer {
    let mut cfg = RedfishSimConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        vec![RedfishUser::new("admin", "secret")],
    )
    .with_vendor(vendor, 1);
    cfg.faults = faults;
    RedfishSimServer::start(cfg).await.unwrap()
}

fn pinned(s: &RedfishSimServer) -> TlsMode {
    TlsMode::Pinned(parse_fingerprint(s.cert_sha256_fingerprint().unwrap()).unwrap())
}

#[tokio::test]
async fn every_simulator_fault_gives_the_right_error() {
    async fn off(d: &RedfishDevice) -> Result<verify::Verified, PowerError> {
        verify::set_and_verify(
            d,
            "",
            PowerState::Off,
            Duration::from_secs(3),
            Duration::from_millis(50),
        )
        .await
    }
    // 401 on everything.
    let s = sim(Vendor::Generic, vec![RedfishFault::Unauthorized]).await;
    let e = off(&device(
        s.local_addr().port(),
        pinned(&s),
        "secret",
        SystemSelector::Only,
    ))
    .await
    .unwrap_err();
    assert!(matches!(e, PowerError::Auth { .. }), "{e}");
    // 500 on reset.
    let s = sim(Vendor::Generic, vec![RedfishFault::Error]).await;
    let e = off(&device(
        s.local_addr().port(),
        pinned(&s),
        "secret",
        SystemSelector::Only,
    ))
    .await
    .unwrap_err();
    assert!(e.to_string().contains("HTTP 500"), "{e}");
    // 400 for ForceOff: refused, never success.
    let s = sim(
        Vendor::Generic,
        vec![RedfishFault::BadReset(ResetType::ForceOff)],
    )
    .await;
    let e = off(&device(
        s.local_addr().port(),
        pinned(&s),
        "secret",
        SystemSelector::Only,
    ))
    .await
    .unwrap_err();
    assert!(e.to_string().contains("refused"), "{e}");
    assert!(s.power(&s.system_ids()[0]).is_ok());
    // A lying BMC: accepted, never read back off.
    let s = sim(Vendor::Generic, vec![RedfishFault::Lie]).await;
    let e = off(&device(
        s.local_addr().port(),
        pinned(&s),
        "secret",
        SystemSelector::Only,
    ))
    .await
    .unwrap_err();
    assert!(matches!(e, PowerError::NotObserved { .. }), "{e}");
    // 202 + task: followed, then read back off.
    let s = sim(
        Vendor::Generic,
        vec![RedfishFault::Task(Duration::from_millis(400))],
    )
    .await;
    off(&device(
        s.local_addr().port(),
        pinned(&s),
        "secret",
        SystemSelector::Only,
    ))
    .await
    .unwrap();
    // Slow answers within the request timeout: fine.
    let s = sim(
        Vendor::Generic,
        vec![RedfishFault::Slow(Duration::from_millis(200))],
    )
    .await;
    off(&device(
        s.local_addr().port(),
        pinned(&s),
        "secret",
        SystemSelector::Only,
    ))
    .await
    .unwrap();
    // Power lands later: polled.
    let s = sim(
        Vendor::Generic,
        vec![RedfishFault::Delay(Duration::from_millis(700))],
    )
    .await;
    off(&device(
        s.local_addr().port(),
        pinned(&s),
        "secret",
        SystemSelector::Only,
    ))
    .await
    .unwrap();
}

#[tokio::test]
async fn vendor_personalities_get_their_reset_types() {
    // HPE iLO: no ForceOn/PowerCycle; OpenBMC: types only in ResetActionInfo.
    for vendor in [Vendor::Hpe, Vendor::OpenBmc, Vendor::Dell] {
        let s = sim(vendor, vec![]).await;
        let d = device(
            s.local_addr().port(),
            pinned(&s),
            "secret",
            SystemSelector::Only,
        );
        verify::set_and_verify(
            &d,
            "",
            PowerState::Off,
            Duration::from_secs(3),
            Duration::from_millis(50),
        )
        .await
        .unwrap_or_else(|e| panic!("{vendor:?}: {e}"));
        verify::set_and_verify(
            &d,
            "",
            PowerState::On,
            Duration::from_secs(3),
            Duration::from_millis(50),
        )
        .await
        .unwrap_or_else(|e| panic!("{vendor:?}: {e}"));
        let st = s.stats();
        assert!(
            st.sessions_created >= 1 && st.sessions_created == st.sessions_deleted,
            "{vendor:?}: {st:?}"
        );
    }
}

#[test]
fn agent_against_sushy_like_fence_redfish() {
    support::require_peer("fence_redfish");
    let emu = SushyEmulator::start(2, 0);
    let ids = emu.system_ids();
    let run = |action: &str| {
        Command::new(CLI)
            .args([
                "agent",
                "redfish",
                "--ip=127.0.0.1",
                "-l",
                "admin",
                "-p",
                "secret",
                "-o",
                action,
            ])
            .arg(format!("--ipport={}", emu.port()))
            .arg(format!("--ssl-ca-file={}", emu.ca_pem_path().display()))
            .arg(format!("--systems-uri={}", emu.system_path(&ids[0])))
            .output()
            .unwrap()
    };
    let out = run("status");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("Status: ON"));
    let out = run("off");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(emu.power_state(&ids[0]), "Off");
    assert_eq!(run("status").status.code(), Some(2));
    let out = run("reboot");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(emu.power_state(&ids[0]), "On");
    // Without systems_uri and two systems: a clear error (fence_redfish
    // silently takes the last one).
    let out = Command::new(CLI)
        .args([
            "agent",
            "redfish",
            "--ip=127.0.0.1",
            "-l",
            "admin",
            "-p",
            "secret",
            "-o",
            "off",
            "--ssl-insecure",
        ])
        .arg(format!("--ipport={}", emu.port()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("2 systems"), "{}", stderr(&out));
    assert_eq!(emu.power_state(&ids[1]), "On");
}

#[test]
fn redfish_device_through_the_daemon_falls_back_to_level_2_on_a_liar() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s = rt.block_on(sim(Vendor::Generic, vec![RedfishFault::Lie]));
    let good = rt.block_on(sim(Vendor::Dell, vec![]));
    let cfg = format!(
        r#"
[daemon]
socket = "@DIR@/ironfenced.sock"
state_dir = "@DIR@/state"
verify_interval = "50ms"
storm_max_share = 1.0
[[node]]
name = "ctl-1"
[[node]]
name = "ctl-2"
[[device]]
name = "rf-liar"
kind = "redfish"
address = "127.0.0.1"
username = "admin"
password = "secret"
host_list = ["ctl-1"]
timeouts = {{ off = "1s" }}
retries = {{ off = 0 }}
redfish = {{ port = {p1}, fingerprint = "{f1}" }}
[[device]]
name = "rf-dell"
kind = "redfish"
address = "127.0.0.1"
username = "admin"
password = "secret"
host_list = ["ctl-2"]
redfish = {{ port = {p2}, fingerprint = "{f2}", profile = "dell-idrac9" }}
[[device]]
name = "pdu"
kind = "sim"
host_list = ["ctl-1"]
[[level]]
index = 1
target = "ctl-1"
devices = ["rf-liar"]
[[level]]
index = 2
target = "ctl-1"
devices = ["pdu"]
"#,
        p1 = s.local_addr().port(),
        f1 = s.cert_sha256_fingerprint().unwrap(),
        p2 = good.local_addr().port(),
        f2 = good.cert_sha256_fingerprint().unwrap(),
    );
    let lab = Lab::new(&cfg);
    let _d = lab.start();
    let (code, v) = lab.json(&["off", "ctl-1"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["outcome"]["level"], 2, "the liar never counts: {v}");
    let (code, v) = lab.json(&["reboot", "ctl-2"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["outcome"]["result"], "fenced");
    let id = good.system_ids()[0].clone();
    assert!(matches!(good.power(&id), Ok(ironfence::sim::SimPower::On)));
    rt.block_on(async {
        s.shutdown().await;
        good.shutdown().await;
    });
}

/// `ironfence probe` recognises each simulator personality's vendor profile.
#[test]
fn probe_matches_vendor_profiles() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    for (vendor, expected) in [
        (Vendor::Dell, "dell-idrac9"),
        (Vendor::Hpe, "hpe-ilo5"),
        (Vendor::OpenBmc, "openbmc"),
        (Vendor::Generic, "generic-redfish"),
    ] {
        let s = rt.block_on(sim(vendor, vec![]));
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("c.toml");
        std::fs::write(
            &cfg,
            format!(
                "[[node]]\nname = \"n1\"\n[[device]]\nname = \"rf\"\nkind = \"redfish\"\naddress = \"127.0.0.1\"\nusername = \"admin\"\npassword = \"secret\"\nhost_list = [\"n1\"]\nredfish = {{ port = {}, fingerprint = \"{}\" }}\n",
                s.local_addr().port(),
                s.cert_sha256_fingerprint().unwrap()
            ),
        )
        .unwrap();
        let out = Command::new(CLI)
            .arg("--config")
            .arg(&cfg)
            .args(["--output", "json", "probe", "rf"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{vendor:?}: {}", stderr(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["profile"]["matched"], expected, "{vendor:?}: {v}");
        rt.block_on(s.shutdown());
    }
}
