//! The daemon end to end: real `ironfenced` and `ironfence` binaries, sim
//! devices with every fault mode, the storm guard, tolerance, kill -9 in
//! the middle of a fence, and socket access control.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use harness::{open_up, stderr, stdout, Lab};
use serde_json::Value;
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

const FAULTS: &str = r#"
[daemon]
socket = "@DIR@/ironfenced.sock"
state_dir = "@DIR@/state"
fencing_timeout = "15s"
verify_interval = "50ms"
storm_max_share = 1.0

[[node]]
name = "silent"
[[node]]
name = "refuses"
[[node]]
name = "lies"
[[node]]
name = "slow-ok"
[[node]]
name = "slow-late"
[[node]]
name = "lies-only"

[[device]]
name = "bmc-silent"
kind = "sim"
host_list = ["silent"]
timeouts = { off = "500ms", on = "500ms" }
sim = { fault = "silent" }

[[device]]
name = "bmc-refuses"
kind = "sim"
host_list = ["refuses"]
timeouts = { off = "500ms", on = "500ms" }
sim = { fault = "refuses" }

[[device]]
name = "bmc-lies"
kind = "sim"
host_list = ["lies", "lies-only"]
timeouts = { off = "500ms", on = "500ms" }
sim = { fault = "lies" }

[[device]]
name = "bmc-slow-ok"
kind = "sim"
host_list = ["slow-ok"]
timeouts = { off = "2s", on = "2s" }
sim = { fault = "slow", slow_by = "100ms" }

[[device]]
name = "bmc-slow-late"
kind = "sim"
host_list = ["slow-late"]
timeouts = { off = "300ms", on = "300ms" }
retries = { off = 0 }
sim = { fault = "slow", slow_by = "2s" }

[[device]]
name = "pdu"
kind = "sim"
host_list = ["silent", "refuses", "lies", "slow-ok", "slow-late"]
timeouts = { off = "2s", on = "2s" }

[[level]]
index = 1
target = "silent"
devices = ["bmc-silent"]
[[level]]
index = 1
target = "refuses"
devices = ["bmc-refuses"]
[[level]]
index = 1
target_regex = "^lies"
devices = ["bmc-lies"]
[[level]]
index = 1
target = "slow-ok"
devices = ["bmc-slow-ok"]
[[level]]
index = 1
target = "slow-late"
devices = ["bmc-slow-late"]
[[level]]
index = 2
target_regex = "^(silent|refuses|lies|slow-ok|slow-late)$"
devices = ["pdu"]
"#;

fn outcome(v: &Value) -> &Value {
    &v["outcome"]
}

fn history_of(lab: &Lab, node: &str) -> Vec<Value> {
    let (code, v) = lab.json(&["history", node, "--verbose"]);
    assert_eq!(code, 0, "{v}");
    v["records"].as_array().unwrap().clone()
}

#[test]
fn every_sim_fault_mode_fails_over_or_fails_clearly() {
    let lab = Lab::new(FAULTS);
    let _d = lab.start();

    // Faulty level 1 -> level 2 fences, and says so.
    for (node, action) in [
        ("silent", "off"),
        ("refuses", "reboot"),
        ("lies", "off"),
        ("slow-late", "reboot"),
    ] {
        let (code, v) = lab.json(&[action, node]);
        assert_eq!(code, 0, "{node}: {v}");
        let o = outcome(&v);
        assert_eq!(o["result"], "fenced", "{node}: {v}");
        assert_eq!(
            o["level"], 2,
            "{node}: fenced by the PDU, not the faulty BMC: {v}"
        );
        assert_eq!(o["devices"], serde_json::json!(["pdu"]));
        let records = history_of(&lab, node);
        let level1_failed = records
            .iter()
            .any(|r| r["event"] == "level_failed" && r["level"] == 1);
        assert!(
            level1_failed,
            "{node}: history must show level 1 failing: {records:?}"
        );
        // Level 1 never reported success for this node.
        assert!(!records
            .iter()
            .any(|r| r["event"] == "attempt_done" && r["level"] == 1 && r["ok"] == true));
    }

    // The specific error of each fault is in the history.
    let err_of = |node: &str| -> String {
        history_of(&lab, node)
            .iter()
            .filter(|r| r["event"] == "attempt_done" && r["ok"] == false)
            .map(|r| r["error"].as_str().unwrap_or("").to_string())
            .collect::<Vec<_>>()
            .join(" | ")
    };
    assert!(
        err_of("silent").contains("did not finish power off"),
        "{}",
        err_of("silent")
    );
    assert!(
        err_of("refuses").contains("refused the login"),
        "{}",
        err_of("refuses")
    );
    assert!(
        err_of("lies").contains("still reported on"),
        "{}",
        err_of("lies")
    );
    assert!(err_of("lies").contains("not fenced"), "{}", err_of("lies"));

    // Slow but within the timeout: level 1 does it.
    let (code, v) = lab.json(&["reboot", "slow-ok"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(outcome(&v)["level"], 1);

    // A lying BMC and nothing else: never reported fenced.
    let out = lab.cli(&["off", "lies-only"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("failed on every level"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("not fenced"), "{}", stderr(&out));
    let (_, v) = lab.json(&["last", "lies-only"]);
    assert!(
        v["last"].is_null(),
        "a liar must never produce a fenced record: {v}"
    );
    let (_, v) = lab.json(&["history", "lies-only"]);
    assert_eq!(v["requests"][0]["state"], "failed");

    // Status of a node reads through its devices.
    let (code, v) = lab.json(&["status", "slow-ok"]);
    assert_eq!(code, 0);
    assert_eq!(v["devices"][0]["state"], "on", "{v}");

    // Absurd durations are usage errors, not crashes.
    let out = lab.cli(&["--timeout", "1e30", "off", "slow-ok"]);
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));

    // Unknown node / device: exit 105.
    assert_eq!(lab.cli(&["off", "nobody-here"]).status.code(), Some(105));
    assert_eq!(
        lab.cli(&["monitor", "no-such-dev"]).status.code(),
        Some(105)
    );
}

#[test]
fn storm_guard_tolerance_confirm_and_runtime_topology() {
    let lab = Lab::new(
        r#"
[daemon]
socket = "@DIR@/ironfenced.sock"
state_dir = "@DIR@/state"
verify_interval = "20ms"
storm_max_share = 0.5
storm_window = "10m"
[[node]]
name = "n1"
[[node]]
name = "n2"
[[node]]
name = "n3"
[[node]]
name = "n4"
[[device]]
name = "pdu"
kind = "sim"
host_list = ["n1", "n2", "n3", "n4"]
"#,
    );
    let _d = lab.start();
    assert!(lab.cli(&["off", "n1"]).status.success());
    assert!(lab.cli(&["reboot", "n2"]).status.success());
    // A third of four within the window: refused, clearly, exit 1.
    let out = lab.cli(&["off", "n3"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("fence-storm guard"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    // A human overrides.
    assert!(lab.cli(&["off", "n3", "--force"]).status.success());

    // Tolerance: n1 was fenced moments ago; nothing is done again.
    let (code, v) = lab.json(&["--tolerance", "60", "off", "n1"]);
    assert_eq!(code, 0);
    assert_eq!(v["outcome"]["result"], "tolerated", "{v}");

    // confirm: recorded as a human's word.
    let (code, v) = lab.json(&["confirm", "n4"]);
    assert_eq!(code, 0);
    assert_eq!(v["outcome"]["result"], "confirmed");
    let (_, v) = lab.json(&["last", "n4"]);
    assert_eq!(v["last"]["state"], "confirmed");
    assert!(v["last"]["detail"]
        .as_str()
        .unwrap()
        .contains("not observed"));

    // Runtime topology: a new device and a level for it.
    let out = lab.cli(&[
        "device",
        "add",
        "pdu2",
        "--kind",
        "sim",
        "-o",
        "host_list=n4",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = lab.cli(&["level", "add", "1", "n4", "pdu2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (_, v) = lab.json(&["query", "n4"]);
    assert_eq!(v["devices"][0], "pdu2", "{v}");
    // A device used by a level cannot be removed.
    let out = lab.cli(&["device", "remove", "pdu2"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("remove the level first"),
        "{}",
        stderr(&out)
    );
    assert!(lab.cli(&["level", "remove", "1", "n4"]).status.success());
    assert!(lab.cli(&["device", "remove", "pdu2"]).status.success());
    // A bad runtime device is rejected with the config checker's message.
    let out = lab.cli(&[
        "device",
        "add",
        "x",
        "--kind",
        "sim",
        "-o",
        "host_list=ghost",
    ]);
    assert_eq!(out.status.code(), Some(64));
    assert!(
        stderr(&out).contains("`ghost` is not a declared node"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn kill_9_during_a_fence_leaves_it_interrupted_never_successful() {
    let lab = Lab::new(
        r#"
[daemon]
socket = "@DIR@/ironfenced.sock"
state_dir = "@DIR@/state"
verify_interval = "50ms"
[[node]]
name = "victim"
[[device]]
name = "slow-bmc"
kind = "sim"
host_list = ["victim"]
timeouts = { off = "60s", on = "60s" }
retries = { off = 0, on = 0 }
sim = { fault = "slow", slow_by = "30s" }
"#,
    );
    let mut d = lab.start();
    let mut fence = lab.cli_command(&["reboot", "victim"]).spawn().unwrap();
    // Wait until the attempt is durably recorded.
    let start = Instant::now();
    loop {
        let text =
            std::fs::read_to_string(lab.state_dir().join("history.jsonl")).unwrap_or_default();
        if text.contains("\"event\":\"attempt\"") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no attempt recorded: {text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    d.kill9();
    let status = fence.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(102),
        "the client must not report success when the daemon dies"
    );

    // Restart on the same state dir: history intact, request interrupted.
    let _d2 = lab.start();
    let (code, v) = lab.json(&["history", "victim", "--verbose"]);
    assert_eq!(code, 0);
    let req = &v["requests"][0];
    assert_eq!(req["state"], "interrupted", "{v}");
    assert!(
        req["detail"].as_str().unwrap().contains("not fenced"),
        "{v}"
    );
    let events: Vec<&str> = v["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        &events[..3],
        &["requested", "level", "attempt"],
        "{events:?}"
    );
    assert_eq!(events.last(), Some(&"interrupted"));
    assert!(!events.contains(&"succeeded"));
    let (_, v) = lab.json(&["last", "victim"]);
    assert!(v["last"].is_null(), "{v}");
    // Tolerance must not treat the interrupted request as a fence.
    let out = lab.cli(&["--tolerance", "600", "--timeout", "1", "off", "victim"]);
    assert_ne!(out.status.code(), Some(0), "{}", stdout(&out));
}

#[test]
fn socket_refuses_users_outside_root_and_the_group() {
    let base = r#"
[daemon]
socket = "@DIR@/ironfenced.sock"
state_dir = "@DIR@/state"
@GROUP@
[[node]]
name = "n1"
[[device]]
name = "pdu"
kind = "sim"
host_list = ["n1"]
"#;
    let as_nobody = |lab: &Lab, args: &[&str]| {
        let mut c = lab.cli_command(args);
        c.uid(65534).gid(65534);
        c.output().unwrap()
    };

    // No group configured: nobody is refused.
    let lab = Lab::new(&base.replace("@GROUP@", ""));
    let _d = lab.start();
    open_up(lab.dir.path(), 0o755);
    // Filesystem layer: the socket is 0660 root:root.
    let out = as_nobody(&lab, &["devices"]);
    assert_eq!(out.status.code(), Some(102), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("permission denied"),
        "{}",
        stderr(&out)
    );
    // Even with the socket file opened up, SO_PEERCRED refuses.
    open_up(&lab.socket(), 0o666);
    let out = as_nobody(&lab, &["off", "n1"]);
    assert_eq!(out.status.code(), Some(102), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("access denied: uid 65534"),
        "{}",
        stderr(&out)
    );
    // Nothing was fenced.
    let (_, v) = lab.json(&["history"]);
    assert!(v["requests"].as_array().unwrap().is_empty(), "{v}");
    // root is let in.
    assert!(lab.cli(&["devices"]).status.success());

    // socket_group = nogroup: its members are let in.
    let lab = Lab::new(&base.replace("@GROUP@", "socket_group = \"nogroup\""));
    let _d = lab.start();
    open_up(lab.dir.path(), 0o755);
    let out = as_nobody(&lab, &["devices"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn sigterm_stops_cleanly_and_removes_the_socket() {
    let lab = Lab::new(
        r#"
[daemon]
socket = "@DIR@/ironfenced.sock"
state_dir = "@DIR@/state"
[[node]]
name = "n1"
[[device]]
name = "pdu"
kind = "sim"
host_list = ["n1"]
"#,
    );
    let mut d = lab.start();
    let st = d.terminate();
    assert!(st.success(), "{}", d.log_text());
    assert!(!lab.socket().exists());
    // The CLI says the daemon is unreachable, exit 102.
    let out = lab.cli(&["devices"]);
    assert_eq!(out.status.code(), Some(102));
    assert!(
        stderr(&out).contains("cannot reach ironfenced"),
        "{}",
        stderr(&out)
    );
}

const ONE_SLOW_NODE: &str = r#"
[daemon]
socket = "@DIR@/ironfenced.sock"
state_dir = "@DIR@/state"
verify_interval = "20ms"
storm_max_share = 1.0
[[node]]
name = "n1"
[[device]]
name = "pdu"
kind = "sim"
host_list = ["n1"]
timeouts = { off = "5s", on = "5s" }
sim = { fault = "slow", slow_by = "300ms", state_file = "@DIR@/power.json" }
"#;

fn power_of(lab: &Lab) -> String {
    let text = std::fs::read_to_string(lab.dir.path().join("power.json")).unwrap_or_default();
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    v["n1"].as_str().unwrap_or("on").to_string()
}

#[test]
fn an_off_never_races_a_reboot_of_the_same_node() {
    let lab = Lab::new(ONE_SLOW_NODE);
    let _d = lab.start();
    let reboot = lab.cli_command(&["reboot", "n1"]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(150));
    // The off is queued behind the reboot, so its "fenced" is the final word.
    let (code, v) = lab.json(&["off", "n1"]);
    let reboot = reboot.wait_with_output().unwrap();
    assert!(reboot.status.success());
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["outcome"]["result"], "fenced");
    assert_eq!(
        power_of(&lab),
        "off",
        "the node must stay off after an off reported fenced"
    );
}

#[test]
fn tolerance_is_only_covered_by_an_observed_compatible_fence() {
    let lab = Lab::new(ONE_SLOW_NODE);
    let _d = lab.start();
    // A reboot leaves the node on: it does not cover a later off.
    assert!(lab.cli(&["reboot", "n1"]).status.success());
    let (_, v) = lab.json(&["--tolerance", "60", "off", "n1"]);
    assert_eq!(v["outcome"]["result"], "fenced", "{v}");
    assert_eq!(power_of(&lab), "off");
    // The off covers a reboot within the window ...
    let (_, v) = lab.json(&["--tolerance", "60", "reboot", "n1"]);
    assert_eq!(v["outcome"]["result"], "tolerated", "{v}");
    // ... and a tolerated request covers nothing after it: the last
    // observed fence is still the off, not the tolerated reboot.
    let (_, v) = lab.json(&["last", "n1"]);
    assert_eq!(v["last"]["state"], "fenced");
    assert_eq!(v["last"]["action"], "off");
    let (_, v) = lab.json(&["history", "n1"]);
    let states: Vec<&str> = v["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["fenced", "fenced", "tolerated"]);
}

#[test]
fn confirm_during_a_fence_is_recorded_as_confirmed_not_observed() {
    let lab = Lab::new(&ONE_SLOW_NODE.replace("300ms", "20s"));
    let _d = lab.start();
    let off = lab.cli_command(&["off", "n1"]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(lab.cli(&["confirm", "n1"]).status.success());
    let out = off.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, v) = lab.json(&["history", "n1"]);
    for r in v["requests"].as_array().unwrap() {
        assert_eq!(r["state"], "confirmed", "{v}");
    }
}
