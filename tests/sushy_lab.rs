//! The sushy-tools lab harness (`tests/support/sushy.rs`) works: an
//! emulator starts with three fake systems on 127.0.0.1, speaks HTTPS with a
//! certificate our rustls client trusts as its CA, wants Basic auth, and its
//! power changes land when told (at once, after a fixed delay, or the stock
//! random 1..11 s), or are refused when power-off is disabled.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::json;
use std::time::{Duration, Instant};
use support::sushy::{PowerDelay, SushyEmulator, SushyOptions, SUSHY_PASSWORD, SUSHY_USER};

fn client(emu: &SushyEmulator) -> reqwest::Client {
    let ca = std::fs::read(emu.ca_pem_path()).unwrap();
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Poll `PowerState` of `id` until it is `want`; how long that took.
fn wait_power(emu: &SushyEmulator, id: &str, want: &str, limit: Duration) -> Duration {
    let t0 = Instant::now();
    loop {
        let now = emu.power_state(id);
        if now == want {
            return t0.elapsed();
        }
        assert!(
            t0.elapsed() < limit,
            "system {id} still {now} after {limit:?}, wanted {want}\n{}",
            emu.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test]
async fn three_systems_over_verified_tls_with_basic_auth() {
    let t0 = Instant::now();
    let emu = SushyEmulator::start(3, 0);
    let started = t0.elapsed();
    let http = client(&emu);
    let base = emu.url();
    assert!(base.starts_with("https://127.0.0.1:"));

    // the service root is open; everything else wants Basic auth
    let root = http
        .get(format!("{base}/redfish/v1/"))
        .send()
        .await
        .unwrap();
    assert_eq!(root.status(), 200);
    let root: serde_json::Value = root.json().await.unwrap();
    assert!(root.get("SessionService").is_none(), "{root}");
    let anon = http
        .get(format!("{base}/redfish/v1/Systems"))
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status(), 401);
    let wrong = http
        .get(format!("{base}/redfish/v1/Systems"))
        .basic_auth(SUSHY_USER, Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);

    let systems: serde_json::Value = http
        .get(format!("{base}/redfish/v1/Systems"))
        .basic_auth(SUSHY_USER, Some(SUSHY_PASSWORD))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut members: Vec<String> = systems["Members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["@odata.id"].as_str().unwrap().to_string())
        .collect();
    members.sort();
    let mut want: Vec<String> = emu
        .system_ids()
        .iter()
        .map(|id| emu.system_path(id))
        .collect();
    want.sort();
    assert_eq!(members, want);

    let ids = emu.system_ids();
    let system: serde_json::Value = http
        .get(format!("{base}{}", emu.system_path(&ids[1])))
        .basic_auth(SUSHY_USER, Some(SUSHY_PASSWORD))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(system["PowerState"], "On");
    assert_eq!(system["Name"], emu.system_names()[1]);
    let target = system["Actions"]["#ComputerSystem.Reset"]["target"]
        .as_str()
        .unwrap()
        .to_string();

    // power off system 1 through the action target: 204, Off at once
    let off = http
        .post(format!("{base}{target}"))
        .basic_auth(SUSHY_USER, Some(SUSHY_PASSWORD))
        .json(&json!({"ResetType": "ForceOff"}))
        .send()
        .await
        .unwrap();
    assert_eq!(off.status(), 204);
    assert_eq!(emu.power_state(&ids[1]), "Off");
    assert_eq!(emu.power_state(&ids[0]), "On");
    assert_eq!(emu.power_state(&ids[2]), "On");
    assert_eq!(emu.reset(&ids[1], "On"), 204);
    assert_eq!(emu.power_state(&ids[1]), "On");
    // a client without the CA does not get in
    let untrusting = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .no_proxy()
        .build()
        .unwrap();
    assert!(untrusting
        .get(format!("{base}/redfish/v1/"))
        .send()
        .await
        .is_err());
    eprintln!("sushy-emulator with 3 systems answered after {started:?}");
}

#[test]
fn fixed_power_delay_lands_late() {
    let emu = SushyEmulator::start(1, 2);
    let id = &emu.system_ids()[0];
    let t0 = Instant::now();
    assert_eq!(emu.reset(id, "ForceOff"), 204);
    assert_eq!(emu.power_state(id), "On", "not yet");
    let took = wait_power(&emu, id, "Off", Duration::from_secs(5));
    let total = t0.elapsed();
    // int(now) + 2: between 1 and 2 s after the POST
    assert!(
        total >= Duration::from_millis(900) && total <= Duration::from_millis(3500),
        "{total:?} ({took:?})"
    );
}

#[test]
fn power_off_can_be_disabled() {
    let mut opts = SushyOptions::new(2);
    opts.disable_power_off = true;
    let emu = SushyEmulator::start_with(opts);
    let id = &emu.system_ids()[0];
    let path = format!("{}/Actions/ComputerSystem.Reset", emu.system_path(id));
    let (code, body) = emu.post_json(&path, &json!({"ResetType": "ForceOff"}));
    assert_eq!(code, 400, "{body}");
    assert!(
        body.to_string()
            .contains("SUSHY_EMULATOR_DISABLE_POWER_OFF"),
        "{body}"
    );
    assert_eq!(emu.reset(id, "GracefulShutdown"), 400);
    assert_eq!(emu.power_state(id), "On");
    // restarts are still allowed
    assert_eq!(emu.reset(id, "ForceRestart"), 204);
    wait_power(&emu, id, "On", Duration::from_secs(3));
}

#[test]
fn stock_random_delay_is_one_to_eleven_seconds() {
    let mut opts = SushyOptions::new(1);
    opts.power_delay = PowerDelay::Random;
    opts.initially_on = false;
    let emu = SushyEmulator::start_with(opts);
    let id = &emu.system_ids()[0];
    assert_eq!(emu.power_state(id), "Off");
    let t0 = Instant::now();
    assert_eq!(emu.reset(id, "On"), 204);
    wait_power(&emu, id, "On", Duration::from_secs(13));
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(50), "{took:?}");
    eprintln!("random delay: On after {took:?}");
}
