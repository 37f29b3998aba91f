//! The node daemon's supervision on this host, with a recorder watchdog and
//! a recorder self-fence (nothing here can reset the machine: the harness
//! sets IRONFENCE_FORBID_HARDWARE for every process). The disk is an sbd
//! disk image in a regular file, created by our own `ironfence sbd`; the
//! real-hardware versions of these tests run in QEMU guests (node_qemu.rs).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use harness::{stderr, Lab};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const CONFIG: &str = r#"
[daemon]
socket = "@DIR@/ironfenced.sock"
state_dir = "@DIR@/state"
node_name = "node-a"
fencing_timeout = "30s"

[watchdog]
kind = "recorder"
device = "@DIR@/watchdog.jsonl"
timeout = "3s"
interval = "200ms"

[sbd]
devices = ["@DIR@/disk1"]
sector_size = 512
io_timeout = "1s"
@SBD_EXTRA@

[self_fence]
method = "recorder"
record_file = "@DIR@/self-fence.jsonl"
"#;

fn sbd(disk: &Path, args: &[&str]) -> std::process::Output {
    Command::new(harness::CLI)
        .arg("sbd")
        .arg("-d")
        .arg(disk)
        .args(["--sector-size", "512"])
        .args(args)
        .env("IRONFENCE_FORBID_HARDWARE", "1")
        .output()
        .unwrap()
}

/// A lab with an sbd disk image (watchdog 3 s, msgwait 6 s) where node-a
/// and node-b have slots.
fn new_lab(extra: &str) -> (Lab, std::path::PathBuf) {
    let lab = Lab::new(&CONFIG.replace("@SBD_EXTRA@", extra));
    let disk = lab.dir.path().join("disk1");
    std::fs::File::create(&disk)
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    for args in [
        &["-1", "3", "-4", "6", "create"][..],
        &["allocate", "node-a"],
        &["allocate", "node-b"],
    ] {
        let out = sbd(&disk, args);
        assert!(out.status.success(), "sbd {args:?}: {}", stderr(&out));
    }
    (lab, disk)
}

fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn events(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn count(events: &[Value], what: &str) -> usize {
    events.iter().filter(|e| e["event"] == what).count()
}

/// Wait until the recorder watchdog shows `n` keepalives.
fn wait_keepalives(lab: &Lab, n: usize) {
    let path = lab.dir.path().join("watchdog.jsonl");
    let start = Instant::now();
    while count(&events(&path), "keepalive") < n {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "fewer than {n} keepalives: {:?}",
            events(&path)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn arms_after_the_first_healthy_round_feeds_reports_and_disarms_on_sigterm() {
    let (lab, disk) = new_lab("");
    let mut d = lab.start();
    wait_keepalives(&lab, 3);
    let wd = lab.dir.path().join("watchdog.jsonl");
    let ev = events(&wd);
    assert_eq!(ev[0]["event"], "arm", "{ev:?}");
    assert_eq!(ev[0]["timeout_ms"], 3000, "{ev:?}");

    // node status, JSON and text.
    let (code, v) = lab.json(&["node", "status"]);
    assert_eq!(code, 0, "{v}");
    let st = &v["status"];
    assert_eq!(st["node"], "node-a");
    assert_eq!(st["state"], "watching", "{st}");
    assert_eq!(st["healthy"], true, "{st}");
    assert_eq!(st["watchdog"]["armed"], true, "{st}");
    assert_eq!(st["watchdog"]["timeout_ms"], 3000, "{st}");
    assert!(
        st["watchdog"]["expires_in_ms"].as_u64().unwrap() <= 3000,
        "{st}"
    );
    let kinds: Vec<&str> = st["servants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["sbd-disk", "fencer"], "{st}");
    assert!(st["servants"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["healthy"] == true));
    let text = harness::stdout(&lab.cli(&["node", "status"]));
    assert!(text.contains("state:      watching"), "{text}");
    assert!(text.contains("expires in"), "{text}");

    // SIGUSR1: one status line in the log.
    d.signal("USR1");
    assert!(
        d.wait_log("state=watching", Duration::from_secs(5)),
        "{}",
        d.log_text()
    );
    // A `test` message is logged and cleared, nothing else happens.
    let out = sbd(&disk, &["-n", "node-b", "message", "node-a", "test"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        d.wait_log("`test` message received", Duration::from_secs(5)),
        "{}",
        d.log_text()
    );

    // SIGTERM: clean stop, magic close.
    let st = d.terminate();
    assert_eq!(st.code(), Some(0), "{}", d.log_text());
    let ev = events(&wd);
    assert_eq!(ev.last().unwrap()["event"], "disarm", "{ev:?}");
    assert!(!lab.dir.path().join("self-fence.jsonl").exists());
}

#[test]
fn a_poison_pill_self_fences_at_once_and_leaves_the_watchdog_armed() {
    let (lab, disk) = new_lab("");
    let mut d = lab.start();
    wait_keepalives(&lab, 2);
    let t0 = wall_ms();
    // Our `sbd message` returns after msgwait, like a fence; the daemon
    // acts as soon as it reads the pill.
    let out = sbd(&disk, &["-n", "node-b", "message", "node-a", "reset"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let st = d
        .wait_exit(Duration::from_secs(10))
        .expect("daemon still running");
    assert_eq!(st.code(), Some(3), "{}", d.log_text());
    let sf = events(&lab.dir.path().join("self-fence.jsonl"));
    assert_eq!(sf.len(), 1, "{sf:?}");
    assert_eq!(sf[0]["action"], "reboot");
    assert_eq!(sf[0]["node"], "node-a");
    let took = Duration::from_millis(sf[0]["t_ms"].as_u64().unwrap() - t0);
    let reason = sf[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("reset") && reason.contains("node-b"),
        "{reason}"
    );
    // No magic close: a dead node leaves its watchdog armed.
    let ev = events(&lab.dir.path().join("watchdog.jsonl"));
    assert_eq!(count(&ev, "disarm"), 0, "{ev:?}");
    eprintln!("pill written -> self-fence recorded: {took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
}

#[test]
fn off_and_exit_messages() {
    // `off` -> self-fence with action off.
    let (lab, disk) = new_lab("");
    let mut d = lab.start();
    wait_keepalives(&lab, 1);
    sbd(&disk, &["-n", "node-b", "message", "node-a", "off"]);
    assert_eq!(
        d.wait_exit(Duration::from_secs(10)).unwrap().code(),
        Some(3)
    );
    let sf = events(&lab.dir.path().join("self-fence.jsonl"));
    assert_eq!(sf[0]["action"], "off", "{sf:?}");

    // `exit` -> clean stop, disarmed.
    let (lab, disk) = new_lab("");
    let mut d = lab.start();
    wait_keepalives(&lab, 1);
    sbd(&disk, &["-n", "node-b", "message", "node-a", "exit"]);
    let st = d.wait_exit(Duration::from_secs(10)).expect("still running");
    assert_eq!(st.code(), Some(0), "{}", d.log_text());
    let ev = events(&lab.dir.path().join("watchdog.jsonl"));
    assert_eq!(ev.last().unwrap()["event"], "disarm", "{ev:?}");
}

#[test]
fn a_disk_that_goes_bad_stops_the_feeding_and_self_fences_after_the_timeout() {
    let (lab, disk) = new_lab("");
    let mut d = lab.start();
    wait_keepalives(&lab, 2);
    // Overwrite the header: the servant sees the disk changed under it.
    let t0 = Instant::now();
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(&disk).unwrap();
        f.write_all_at(&[0u8; 512], 0).unwrap();
        f.sync_all().unwrap();
    }
    let st = d.wait_exit(Duration::from_secs(15)).expect("still running");
    let took = t0.elapsed();
    assert_eq!(st.code(), Some(3), "{}", d.log_text());
    let sf = events(&lab.dir.path().join("self-fence.jsonl"));
    let reason = sf[0]["reason"].as_str().unwrap();
    assert!(reason.contains("no healthy round"), "{reason}");
    assert!(reason.contains("header changed"), "{reason}");
    // Fed until the disk went bad, not after; the stall lasted a whole
    // watchdog timeout (3 s) before the self-fence.
    let ev = events(&lab.dir.path().join("watchdog.jsonl"));
    let fenced = sf[0]["t_ms"].as_u64().unwrap();
    let last_feed = ev
        .iter()
        .rfind(|e| e["event"] == "keepalive")
        .and_then(|e| e["wall_ms"].as_u64())
        .expect("keepalives carry wall_ms");
    assert!(
        fenced >= last_feed + 3000,
        "fenced at {fenced}, last feed at {last_feed}"
    );
    assert!(
        took >= Duration::from_millis(2800) && took < Duration::from_secs(6),
        "{took:?}"
    );
}

#[test]
fn clean_start_mode_refuses_to_start_after_a_fence() {
    let (lab, disk) = new_lab("start_mode = \"clean\"");
    let out = sbd(&disk, &["-n", "node-b", "message", "node-a", "reset"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut d = lab.spawn();
    let st = d.wait_exit(Duration::from_secs(10)).expect("still running");
    assert_eq!(st.code(), Some(1), "{}", d.log_text());
    let log = d.log_text();
    assert!(log.contains("start mode is clean"), "{log}");
    assert!(log.contains("message node-a clear"), "{log}");
    // Never armed: the watchdog opens only after a healthy round.
    assert_eq!(
        count(&events(&lab.dir.path().join("watchdog.jsonl")), "arm"),
        0
    );
    // After the operator clears it, the node starts.
    sbd(&disk, &["message", "node-a", "clear"]);
    let mut d = lab.start();
    wait_keepalives(&lab, 1);
    assert_eq!(d.terminate().code(), Some(0));
}

#[test]
fn delay_start_waits_before_watching() {
    let (lab, _disk) = new_lab("delay_start = \"1500ms\"");
    let t0 = Instant::now();
    let mut d = lab.start();
    let (_, v) = lab.json(&["node", "status"]);
    assert_eq!(v["status"]["state"], "delayed", "{v}");
    wait_keepalives(&lab, 1);
    assert!(t0.elapsed() >= Duration::from_millis(1500));
    assert_eq!(d.terminate().code(), Some(0));
}

#[test]
fn timeout_relations_and_the_hardware_guard_refuse_a_start() {
    // watchdog timeout not below msgwait (6 s in the header).
    let (lab, _disk) = new_lab("");
    let text = std::fs::read_to_string(&lab.config)
        .unwrap()
        .replace("timeout = \"3s\"", "timeout = \"6s\"");
    std::fs::write(&lab.config, text).unwrap();
    let out = Command::new(harness::CLI)
        .args(["--config"])
        .arg(&lab.config)
        .args(["config", "check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let all = format!("{}{}", harness::stdout(&out), stderr(&out));
    assert!(
        all.contains("watchdog.timeout") && all.contains("msgwait"),
        "{all}"
    );
    let mut d = lab.spawn();
    assert_eq!(
        d.wait_exit(Duration::from_secs(10)).unwrap().code(),
        Some(1)
    );
    assert!(d.log_text().contains("msgwait"), "{}", d.log_text());

    // A real watchdog on this host: refused by the guard, nothing opened.
    let lab = Lab::new(
        r#"
[daemon]
socket = "@DIR@/ironfenced.sock"
state_dir = "@DIR@/state"
node_name = "node-a"
[watchdog]
kind = "linux"
device = "/dev/watchdog"
timeout = "5s"
"#,
    );
    let mut d = lab.spawn();
    assert_eq!(
        d.wait_exit(Duration::from_secs(10)).unwrap().code(),
        Some(1)
    );
    assert!(
        d.log_text().contains("IRONFENCE_FORBID_HARDWARE"),
        "{}",
        d.log_text()
    );
}
