//! A device of kind `agent` running Debian's real `fence_ipmilan` against
//! OpenIPMI's real `ipmi_sim`, driven through the real daemon.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;
mod support;

use harness::{stderr, Lab};
use support::{require_peer, IpmiSim};

fn config(sims: &[&IpmiSim], password_line: &str) -> String {
    let mut s = String::from(
        r#"
[daemon]
socket = "@DIR@/ironfenced.sock"
state_dir = "@DIR@/state"
verify_interval = "200ms"
storm_max_share = 1.0
"#,
    );
    for (i, sim) in sims.iter().enumerate() {
        let n = i + 1;
        s.push_str(&format!(
            r#"
[[node]]
name = "ctl-{n}"

[[device]]
name = "ipmi-ctl-{n}"
kind = "agent"
agent = "fence_ipmilan"
username = "admin"
{password_line}
host_list = ["ctl-{n}"]
timeouts = {{ off = "20s", on = "20s", status = "10s" }}
retries = {{ off = 0, on = 0 }}
params = {{ ip = "127.0.0.1", ipport = {port}, lanplus = true, cipher = 3, power_wait = 0 }}

[[level]]
index = 1
target = "ctl-{n}"
devices = ["ipmi-ctl-{n}"]
"#,
            port = sim.port()
        ));
    }
    s
}

#[test]
fn reboot_through_the_daemon_with_fence_ipmilan_on_ipmi_sim() {
    require_peer("fence_ipmilan");
    require_peer("ipmi_sim");
    require_peer("ipmitool");
    let sim = IpmiSim::start();
    let lab = Lab::new(&config(&[&sim], "password = \"secret\""));
    let _d = lab.start();

    // The device reads the simulated power.
    let (code, v) = lab.json(&["status", "ctl-1"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["devices"][0]["state"], "on", "{v}");
    let out = lab.cli(&["monitor", "ipmi-ctl-1"]);
    assert!(out.status.success(), "{}", stderr(&out));

    sim.clear_power_log();
    let (code, v) = lab.json(&["reboot", "ctl-1"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["outcome"]["result"], "fenced", "{v}");
    assert_eq!(v["outcome"]["level"], 1);
    // The BMC really went off, then on: in that order.
    let log = sim.power_log();
    let off = log
        .iter()
        .position(|l| l == "power 0")
        .expect("power off sent");
    let on = log
        .iter()
        .rposition(|l| l == "power 1")
        .expect("power on sent");
    assert!(off < on, "{log:?}");
    assert!(sim.power_on());

    // History shows both verified steps.
    let (_, v) = lab.json(&["--verbose", "history", "ctl-1"]);
    let done: Vec<(String, bool)> = v["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["event"] == "attempt_done")
        .map(|r| {
            (
                r["step"].as_str().unwrap().to_string(),
                r["ok"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        done,
        vec![("off".to_string(), true), ("on".to_string(), true)],
        "{v}"
    );
    assert_eq!(v["requests"][0]["state"], "fenced");

    // off leaves it off, status agrees.
    let (code, _) = lab.json(&["off", "ctl-1"]);
    assert_eq!(code, 0);
    assert!(!sim.power_on());
    let (_, v) = lab.json(&["status", "ctl-1"]);
    assert_eq!(v["devices"][0]["state"], "off", "{v}");
    let (code, _) = lab.json(&["on", "ctl-1"]);
    assert_eq!(code, 0);
    assert!(sim.power_on());
}

#[test]
fn wrong_password_fails_clearly_and_never_fences() {
    require_peer("fence_ipmilan");
    require_peer("ipmi_sim");
    let sim = IpmiSim::start();
    let dir = tempfile::tempdir().unwrap();
    let pwfile = dir.path().join("pw");
    std::fs::write(&pwfile, "not-the-password\n").unwrap();
    let lab = Lab::new(&config(
        &[&sim],
        &format!("password_file = \"{}\"", pwfile.display()),
    ));
    let _d = lab.start();
    let out = lab.cli(&["off", "ctl-1"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("failed on every level"), "{err}");
    assert!(err.contains("ipmi-ctl-1"), "{err}");
    assert!(sim.power_on(), "power must be untouched");
    // The secret never appears in the history or the daemon's log.
    let history = std::fs::read_to_string(lab.state_dir().join("history.jsonl")).unwrap();
    assert!(!history.contains("not-the-password"));
    assert!(!_d.log_text().contains("not-the-password"));
}
