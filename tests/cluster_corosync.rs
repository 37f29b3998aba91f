//! `ironfenced` as a cluster member: real corosync 3 clusters in network
//! namespaces, each node's BMC a real OpenIPMI `ipmi_sim` whose power-off
//! kills the node (tests/support/fencing_lab.rs). The daemons decide by
//! themselves that a lost member must be fenced; the tests check who
//! fenced, how often, and what every survivor recorded.
#![cfg(feature = "corosync")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::Value;
use std::time::Duration;
use support::bench::{corosync_detect, first_after, median, now_s};
use support::fencing_lab::{FenceLab, Options, SBD_MSGWAIT};

/// token 1000 + consensus 1200 + fence + slack.
const FENCED_WITHIN: Duration = Duration::from_secs(15);

/// How many power-offs node J's BMC was asked for (retransmits folded).
fn offs(lab: &FenceLab, j: usize) -> usize {
    lab.power_off_times(j).len()
}

/// Every survivor has exactly one record of a fence of node J, all equal
/// in what matters (who fenced, level); returns who fenced.
fn one_record_everywhere(lab: &FenceLab, survivors: &[usize], j: usize) -> String {
    let mut by = None;
    for &i in survivors {
        let f = lab.fences_of(i, j);
        assert_eq!(
            f.len(),
            1,
            "node{i}'s history of node{j}: {f:?}\n{}",
            lab.logs()
        );
        let origin = f[0]["origin"].as_str().unwrap().to_string();
        let who = origin
            .strip_prefix("cluster:")
            .map(|s| s.split(' ').next().unwrap_or_default().to_string())
            .unwrap_or(origin);
        match &by {
            None => by = Some(who),
            Some(b) => assert_eq!(b, &who, "node{i} says another member fenced node{j}"),
        }
    }
    by.unwrap()
}

fn wait_fenced(lab: &FenceLab, survivors: &[usize], j: usize) {
    lab.wait_for(
        &format!("node{j} fenced, recorded by {survivors:?}"),
        FENCED_WITHIN,
        |lab| survivors.iter().all(|&i| !lab.fences_of(i, j).is_empty()),
    );
}

#[test]
fn a_crashed_member_is_fenced_exactly_once_by_the_coordinator() {
    let mut lab = FenceLab::start(Options::nodes(3));
    assert_eq!(lab.status(2)["coordinator"], "node1");
    lab.crash(3);
    wait_fenced(&lab, &[1, 2], 3);
    // let any second fence show itself
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(offs(&lab, 3), 1, "{:?}", lab.power_log(3));
    assert_eq!(one_record_everywhere(&lab, &[1, 2], 3), "node1");
    for i in [1, 2] {
        assert_eq!(lab.state_of(i, 3), "offline (fenced)");
        assert_eq!(offs(&lab, i), 0, "node{i} was never fenced");
    }
    let n2 = &lab.fences_of(2, 3)[0];
    assert_eq!(n2["level"], 1, "{n2}");
    assert_eq!(n2["devices"], serde_json::json!(["bmc-node3"]));
}

#[test]
fn a_hung_member_is_fenced_once_and_not_taken_back_when_continued() {
    let mut lab = FenceLab::start(Options::nodes(3));
    lab.hang(3);
    wait_fenced(&lab, &[1, 2], 3);
    lab.resume(3);
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(offs(&lab, 3), 1);
    one_record_everywhere(&lab, &[1, 2], 3);
    for i in [1, 2] {
        let s = lab.state_of(i, 3);
        assert_ne!(s, "online", "node{i} took the fenced node back");
    }
}

#[test]
fn a_clean_stop_and_a_cluster_leave_are_not_fenced() {
    let mut lab = FenceLab::start(Options::nodes(3));
    let st = lab.stop_daemon(3).expect("node3's ironfenced stopped");
    assert!(st.success(), "{st:?}\n{}", lab.daemon_log(3));
    let (code, v, err) = lab.cli(2, &["cluster", "leave"]);
    assert_eq!(code, 0, "{v} {err}");
    lab.wait_daemon_exit(2, Duration::from_secs(10))
        .expect("cluster leave stops the daemon");
    lab.wait_for(
        "node1 sees both left cleanly",
        Duration::from_secs(10),
        |lab| {
            lab.state_of(1, 3) == "offline (left cleanly)"
                && lab.state_of(1, 2) == "offline (left cleanly)"
        },
    );
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(offs(&lab, 2) + offs(&lab, 3), 0);
    assert!(lab.fences_of(1, 3).is_empty() && lab.fences_of(1, 2).is_empty());
}

#[test]
fn when_the_coordinator_itself_dies_the_next_one_fences_it() {
    let mut lab = FenceLab::start(Options::nodes(3));
    lab.crash(1);
    wait_fenced(&lab, &[2, 3], 1);
    assert_eq!(one_record_everywhere(&lab, &[2, 3], 1), "node2");
    assert_eq!(lab.status(3)["coordinator"], "node2");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(offs(&lab, 1), 1);
}

#[test]
fn a_partition_the_majority_fences_the_minority_which_fences_nobody() {
    let lab = FenceLab::start(Options::nodes(3));
    lab.cluster.node(3).cut();
    wait_fenced(&lab, &[1, 2], 3);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(offs(&lab, 3), 1);
    assert_eq!(
        offs(&lab, 1) + offs(&lab, 2),
        0,
        "the minority fenced someone"
    );
    one_record_everywhere(&lab, &[1, 2], 3);
}

#[test]
fn a_silent_bmc_falls_through_to_the_sbd_poison_pill() {
    let mut opts = Options::nodes(3);
    opts.sbd_level = true;
    let mut lab = FenceLab::start(opts);
    lab.silence_bmc(3);
    lab.crash(3);
    lab.wait_for(
        "node3 fenced by the sbd level",
        FENCED_WITHIN + SBD_MSGWAIT + Duration::from_secs(10),
        |lab| [1, 2].iter().all(|&i| !lab.fences_of(i, 3).is_empty()),
    );
    for i in [1, 2] {
        let f = &lab.fences_of(i, 3)[0];
        assert_eq!(f["level"], 2, "node{i}: {f}");
        assert_eq!(f["devices"], serde_json::json!(["sbd-pill"]));
    }
    // the failed level 1 is in the coordinator's own history
    let (_, v, _) = lab.cli(1, &["-v", "history", "node3"]);
    let recs: Vec<&Value> = v["records"].as_array().unwrap().iter().collect();
    assert!(
        recs.iter()
            .any(|r| r["event"] == "level_failed" && r["level"] == 1),
        "{v}"
    );
}

#[test]
fn a_fence_that_fails_keeps_the_node_unclean_until_a_human_confirms() {
    let mut lab = FenceLab::start(Options::nodes(3));
    lab.silence_bmc(3);
    lab.crash(3);
    lab.wait_for(
        "a failed fence of node3 shown on node2",
        Duration::from_secs(30),
        |lab| {
            let st = lab.status(2);
            st["nodes"][2]["failures"].as_u64().unwrap_or(0) >= 1
        },
    );
    let st = lab.status(2);
    let n3 = &st["nodes"][2];
    assert_eq!(n3["state"], "UNCLEAN (offline)", "{st}");
    assert!(
        n3["last_error"].as_str().unwrap().contains("bmc-node3"),
        "{n3}"
    );
    // every member recorded the failure, nobody recorded a fence
    let failed = lab
        .history(2)
        .into_iter()
        .filter(|r| r["target"] == "node3" && r["state"] == "failed")
        .count();
    assert!(failed >= 1);
    assert!(lab.fences_of(2, 3).is_empty());
    let (code, text) = {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ironfence"))
            .arg("--socket")
            .arg(lab.socket(2))
            .args(["cluster", "status"])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    assert_eq!(code, Some(0));
    assert!(
        text.contains("UNCLEAN (offline)") && text.contains("failed fence"),
        "{text}"
    );
    eprintln!("{text}");

    // a human confirms on node2: every member takes it, retries stop
    let (code, v, err) = lab.cli(2, &["confirm", "node3"]);
    assert_eq!(code, 0, "{v} {err}");
    lab.wait_for(
        "node3 confirmed down everywhere",
        Duration::from_secs(10),
        |lab| {
            [1, 2]
                .iter()
                .all(|&i| lab.state_of(i, 3) == "offline (fenced)")
        },
    );
    for i in [1, 2] {
        assert_eq!(lab.fences_of(i, 3).len(), 1, "node{i}");
        assert_eq!(lab.fences_of(i, 3)[0]["state"], "confirmed");
    }
    let before = lab.history(1).len();
    std::thread::sleep(Duration::from_secs(12));
    let after: Vec<Value> = lab.history(1);
    assert!(
        after.len() <= before + 1,
        "fencing went on after the confirm: {:?}",
        &after[before..]
    );
}

#[test]
fn two_nodes_cut_apart_exactly_one_fences_the_other() {
    let lab = FenceLab::start(Options::nodes(2));
    lab.cluster.node(2).cut();
    lab.wait_for("node2 fenced by node1", FENCED_WITHIN, |lab| {
        !lab.fences_of(1, 2).is_empty()
    });
    // node2 waited (two_node_delay) and was killed before it could fence node1
    std::thread::sleep(Duration::from_secs(7));
    assert_eq!(offs(&lab, 2), 1);
    assert_eq!(offs(&lab, 1), 0, "both nodes fenced each other");
}

#[test]
fn a_joiner_with_another_config_refuses_and_names_the_sections() {
    let mut lab = FenceLab::start_without_daemons(Options::nodes(3));
    for i in [1, 2] {
        lab.start_daemon(i);
    }
    lab.wait_active(1, 2, Duration::from_secs(30));
    let odd = lab
        .config(3, "")
        .replace("retries = { off = 1 }", "retries = { off = 2 }");
    std::fs::write(lab.config_path(3), odd).unwrap();
    lab.start_daemon(3);
    let st = lab
        .wait_daemon_exit(3, Duration::from_secs(20))
        .expect("the joiner stops");
    assert_eq!(st.code(), Some(1), "{}", lab.daemon_log(3));
    let log = lab.daemon_log(3);
    assert!(log.contains("differs"), "{log}");
    for d in [
        "device[bmc-node1]",
        "device[bmc-node2]",
        "device[bmc-node3]",
    ] {
        assert!(log.contains(d), "{d} not named: {log}");
    }
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(offs(&lab, 3), 0, "a refused joiner is not fenced");
    assert!(lab.status(1)["nodes"][2]["state"]
        .as_str()
        .unwrap()
        .starts_with("offline"));
}

#[test]
fn a_fenced_member_that_reboots_is_a_member_again_and_its_fence_stays() {
    let mut lab = FenceLab::start(Options::nodes(3));
    lab.crash(3);
    wait_fenced(&lab, &[1, 2], 3);
    lab.wait_for(
        "node3 powered on again (reboot)",
        Duration::from_secs(10),
        |lab| lab.powered(3),
    );
    lab.boot(3);
    lab.wait_active(3, 3, Duration::from_secs(30));
    for i in [1, 2, 3] {
        assert_eq!(lab.state_of(i, 3), "online", "as node{i} sees it");
    }
    assert_eq!(lab.fences_of(1, 3).len(), 1);
    assert_eq!(lab.fences_of(2, 3).len(), 1);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(offs(&lab, 3), 1, "not fenced again after the rejoin");
}

#[test]
fn five_nodes_a_crash_is_fenced_once_and_watch_tells_it() {
    let mut lab = FenceLab::start(Options::nodes(5));
    let sock = lab.socket(4);
    let watch = std::process::Command::new(env!("CARGO_BIN_EXE_ironfence"))
        .arg("--socket")
        .arg(&sock)
        .args(["--timeout", "12", "cluster", "watch"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    lab.crash(5);
    wait_fenced(&lab, &[1, 2, 3, 4], 5);
    assert_eq!(one_record_everywhere(&lab, &[1, 2, 3, 4], 5), "node1");
    let out = watch.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for k in ["lost", "unclean", "fencing", "fenced"] {
        assert!(text.contains(k), "{k} not in the watch output:\n{text}");
    }
    assert_eq!(offs(&lab, 5), 1);
}

#[test]
fn bad_starts_give_clear_errors_and_nothing_is_fenced() {
    let mut lab = FenceLab::start_without_daemons(Options::nodes(3));
    lab.start_daemon(1);
    lab.start_daemon(2);
    lab.wait_active(1, 2, Duration::from_secs(30));

    // node3 with node2's name: corosync says otherwise
    let wrong = lab
        .config(3, "")
        .replace("node_name = \"node3\"", "node_name = \"node2\"");
    std::fs::write(lab.config_path(3), wrong).unwrap();
    lab.start_daemon(3);
    let st = lab
        .wait_daemon_exit(3, Duration::from_secs(20))
        .expect("exits");
    assert_eq!(st.code(), Some(1));
    let log = lab.daemon_log(3);
    assert!(log.contains("corosync says this node's id is 3"), "{log}");

    // a second daemon on node1 (own socket and state): refused, node1 untouched
    let dir = lab.node_dir(1).join("twin");
    std::fs::create_dir_all(&dir).unwrap();
    let twin = lab
        .config(1, "")
        .replace(
            &lab.socket(1).display().to_string(),
            &dir.join("s.sock").display().to_string(),
        )
        .replace(
            &lab.node_dir(1).join("state").display().to_string(),
            &dir.join("state").display().to_string(),
        );
    std::fs::write(dir.join("ironfence.toml"), twin).unwrap();
    let out = lab
        .cluster
        .exec_in(1, env!("CARGO_BIN_EXE_ironfenced"))
        .arg("--config")
        .arg(dir.join("ironfence.toml"))
        .env("IRONFENCE_FORBID_HARDWARE", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("another ironfenced"), "{err}");

    // no corosync at all on node3
    std::fs::write(lab.config_path(3), lab.config(3, "")).unwrap();
    lab.cluster.kill(3);
    lab.start_daemon(3);
    let st = lab
        .wait_daemon_exit(3, Duration::from_secs(20))
        .expect("exits");
    assert_eq!(st.code(), Some(1));
    let log = lab.daemon_log(3);
    assert!(
        log.contains("cannot join CPG group") && log.contains("is corosync running"),
        "{log}"
    );

    std::thread::sleep(Duration::from_secs(2));
    for j in 1..=3 {
        assert_eq!(offs(&lab, j), 0, "node{j} was fenced");
    }
    assert_eq!(lab.state_of(2, 1), "online");
}

#[test]
fn status_without_a_daemon_exits_102() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ironfence"))
        .arg("--socket")
        .arg(dir.path().join("none.sock"))
        .args(["cluster", "status"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(102));
    assert!(!String::from_utf8_lossy(&out.stderr).is_empty());
}

// ---------------------------------------------------------------------------
// Benchmark (not in CI): `cargo test --release --features corosync --test
// cluster_corosync bench -- --ignored --nocapture` (IRONFENCE_BENCH_RUNS,
// default 10). The same fault in the same lab, first with ironfenced, then
// with Pacemaker 2.1 + fence_ipmilan: kill -9 node3's corosync.

#[derive(Default, Debug)]
struct Trial {
    detect: f64,
    requested: f64,
    bmc_off: f64,
    recorded: f64,
    recorded_all: f64,
}

/// Node 3's BMC's first `set power 0` after t0, relative to it.
fn bmc_off_after(lab: &FenceLab, t0: f64) -> f64 {
    lab.power_off_times(3)
        .into_iter()
        .find(|t| *t >= t0)
        .unwrap_or(f64::NAN)
        - t0
}

fn ours_trial(lab: &mut FenceLab, run: usize) -> Trial {
    let t0 = now_s();
    lab.cluster.kill(3);
    lab.wait_for(
        "fence of node3 recorded on node1 and node2",
        Duration::from_secs(30),
        |lab| lab.fences_of(1, 3).len() > run && lab.fences_of(2, 3).len() > run,
    );
    let coordinator = lab.fences_of(1, 3).pop().unwrap();
    let ms = |v: &Value| v.as_u64().unwrap() as f64 / 1000.0 - t0;
    let (_, v, _) = lab.cli(2, &["-v", "history", "node3"]);
    let remote_at = v["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["event"] == "remote")
        .filter_map(|r| r["ts_ms"].as_u64())
        .max()
        .unwrap() as f64
        / 1000.0
        - t0;
    let off = bmc_off_after(lab, t0);
    let recorded = ms(&coordinator["finished_ms"]);
    let t = Trial {
        detect: corosync_detect(lab, t0),
        requested: ms(&coordinator["requested_ms"]),
        bmc_off: off,
        recorded,
        recorded_all: recorded.max(remote_at),
    };
    lab.wait_for("node3 powered on", Duration::from_secs(20), |lab| {
        lab.powered(3)
    });
    lab.boot(3);
    lab.wait_active(1, 3, Duration::from_secs(30));
    t
}

fn pacemaker_trial(lab: &mut FenceLab) -> Trial {
    let t0 = now_s();
    lab.cluster.kill(3);
    let terminated = ["Peer node3 was terminated", "OK"];
    lab.wait_for("Pacemaker fenced node3", Duration::from_secs(120), |lab| {
        [1, 2]
            .iter()
            .all(|&i| first_after(&lab.pacemaker_log(i), t0, &terminated).is_some())
    });
    let both = |needles: &[&str]| {
        [1, 2]
            .iter()
            .filter_map(|&i| first_after(&lab.pacemaker_log(i), t0, needles))
            .fold(f64::NAN, f64::min)
    };
    let all = |needles: &[&str]| {
        [1, 2]
            .iter()
            .filter_map(|&i| first_after(&lab.pacemaker_log(i), t0, needles))
            .fold(f64::NAN, f64::max)
    };
    let off = bmc_off_after(lab, t0);
    let t = Trial {
        detect: corosync_detect(lab, t0),
        requested: both(&["Requesting fencing", "node3"]),
        bmc_off: off,
        recorded: both(&terminated),
        recorded_all: all(&terminated),
    };
    lab.wait_for("node3 powered on", Duration::from_secs(30), |lab| {
        lab.powered(3)
    });
    lab.boot(3);
    lab.wait_pacemaker_ready(Duration::from_secs(120));
    t
}

fn report(name: &str, trials: &[Trial]) -> [f64; 5] {
    let col = |f: fn(&Trial) -> f64| median(&mut trials.iter().map(f).collect::<Vec<_>>());
    let m = [
        col(|t| t.detect),
        col(|t| t.requested),
        col(|t| t.bmc_off),
        col(|t| t.recorded),
        col(|t| t.recorded_all),
    ];
    eprintln!(
        "{name:<10} n={:<3} corosync detection {:.3} s | fence started {:.3} s | BMC off {:.3} s | fence recorded {:.3} s (on every survivor {:.3} s)",
        trials.len(),
        m[0],
        m[1],
        m[2],
        m[3],
        m[4]
    );
    for (k, t) in trials.iter().enumerate() {
        eprintln!("  {name} #{k}: {t:?}");
    }
    m
}

#[test]
#[ignore = "benchmark: run by hand (see above)"]
fn bench_fault_to_fence() {
    let runs: usize = std::env::var("IRONFENCE_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let mut ours = Vec::new();
    {
        let mut lab = FenceLab::start(Options::nodes(3));
        for r in 0..runs {
            ours.push(ours_trial(&mut lab, r));
        }
    }
    let mut pcmk = Vec::new();
    {
        let mut opts = Options::nodes(3);
        opts.stack = support::fencing_lab::Stack::Pacemaker;
        let mut lab = FenceLab::start(opts);
        for _ in 0..runs {
            pcmk.push(pacemaker_trial(&mut lab));
        }
    }
    eprintln!("fault: kill -9 corosync of node3 (3 nodes, token 1000 ms, consensus 1200 ms); times after the fault, medians");
    let a = report("ironfence", &ours);
    let b = report("pacemaker", &pcmk);
    eprintln!(
        "fence started after detection: ironfence +{:.0} ms, pacemaker +{:.0} ms; fence recorded: pacemaker/ironfence = {:.2}x",
        (a[1] - a[0]) * 1000.0,
        (b[1] - b[0]) * 1000.0,
        b[3] / a[3]
    );
}
