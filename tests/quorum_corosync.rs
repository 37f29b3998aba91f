#![cfg(feature = "corosync")]
//! `ironfence quorum` against real corosync 3 clusters in network namespaces
//! (tests/support/corosync.rs): the debug `ironfence` binary runs inside each
//! node's namespace (corosync's IPC is per namespace) and its
//! `quorum watch` lines are what the tests judge.
//!
//! - 3 nodes: all quorate with members [1,2,3] and the right node id; the
//!   totem timing read from cmap is the configured one; cutting node 3's link
//!   makes node 3 non-quorate within token + consensus + 2 s while nodes 1
//!   and 2 stay quorate with [1,2] (latencies printed); healing rejoins it.
//! - A SIGKILLed corosync: its node's watch reports `connected: false` at
//!   once, `status`/`watch` started then fail clearly, and after a restart
//!   the watch is connected and quorate again.
//! - A SIGSTOPped corosync: the watch reports `responding: false`, and true
//!   again after SIGCONT.
//! - two_node: both quorate with two_node; when one is killed the survivor
//!   stays quorate (that is what two_node does; the daemon's disk rule is
//!   what keeps that safe).
//!
//! Needs root and corosync (`bash tests/lab/install.sh`); runs with
//! `cargo test --features corosync`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::corosync::{Cluster, CONSENSUS, TOKEN};

/// Pace of the watches' liveness round trips.
const INTERVAL: Duration = Duration::from_millis(200);
/// `--for` of every watch: longer than any test.
const WATCH_FOR: &str = "120s";
/// Slack on top of token + consensus for a membership change to reach us.
const SLACK: Duration = Duration::from_secs(2);
/// How long a restarted or healed node may take to be a member again
/// (typically 1-3 s; generous for loaded CI machines).
const REJOIN: Duration = Duration::from_secs(30);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn ironfence() -> &'static str {
    env!("CARGO_BIN_EXE_ironfence")
}

/// One line of `ironfence quorum watch`.
#[derive(Debug, Clone)]
struct Line {
    ts_ms: u64,
    v: Value,
}

/// `ironfence quorum watch` in node `node`'s namespace; its lines are
/// collected as they come. Dropping it kills it by PID.
struct Watch {
    node: usize,
    child: Child,
    lines: Arc<Mutex<Vec<Line>>>,
    stderr: Arc<Mutex<String>>,
    /// Lines before this index were matched by an earlier `wait_for`.
    cursor: usize,
}

impl Watch {
    fn start(cluster: &Cluster, node: usize) -> Watch {
        let mut child = cluster
            .exec_in(node, ironfence())
            .args(["quorum", "watch", "--for", WATCH_FOR])
            .args(["--interval", &format!("{}ms", INTERVAL.as_millis())])
            .env("IRONFENCE_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ironfence quorum watch");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let out = child.stdout.take().unwrap();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let v: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("watch printed a non-JSON line {line:?}: {e}"));
                let ts_ms = v["ts_ms"].as_u64().expect("ts_ms");
                sink.lock().unwrap().push(Line { ts_ms, v });
            }
        });
        let mut err = child.stderr.take().unwrap();
        let err_sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                err_sink
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Watch {
            node,
            child,
            lines,
            stderr,
            cursor: 0,
        }
    }

    fn lines(&self) -> Vec<Line> {
        self.lines.lock().unwrap().clone()
    }

    fn describe(&self) -> String {
        let lines: Vec<String> = self.lines().iter().map(|l| l.v.to_string()).collect();
        format!(
            "--- watch on node {} ---\n{}\n--- its stderr ---\n{}",
            self.node,
            lines.join("\n"),
            self.stderr.lock().unwrap()
        )
    }

    /// The first line after the last match that satisfies `pred`, waiting
    /// up to `limit`; panics with every line and the cluster's logs if none.
    fn wait_for(
        &mut self,
        cluster: &Cluster,
        what: &str,
        limit: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Line {
        let start = Instant::now();
        loop {
            let lines = self.lines();
            if let Some((k, line)) = lines
                .iter()
                .enumerate()
                .skip(self.cursor)
                .find(|(_, l)| pred(&l.v))
            {
                self.cursor = k + 1;
                return line.clone();
            }
            if start.elapsed() > limit {
                panic!(
                    "node {}: no watch line with {what} within {limit:?}\n{}\n{}",
                    self.node,
                    self.describe(),
                    cluster.logs()
                );
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "node {}: the watch ended ({status}) before {what}\n{}",
                    self.node,
                    self.describe()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn members(v: &Value) -> Vec<u64> {
    v["members"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
}

fn quorate_with(v: &Value, want: &[u64]) -> bool {
    v["connected"] == json!(true) && v["quorate"] == json!(true) && members(v) == want
}

/// Run `ironfence quorum ARGS` in node `i` to completion.
fn quorum_cli(cluster: &Cluster, i: usize, args: &[&str]) -> std::process::Output {
    let mut child = cluster
        .exec_in(i, ironfence())
        .arg("quorum")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ironfence quorum");
    let deadline = Instant::now() + Duration::from_secs(30);
    while matches!(child.try_wait(), Ok(None)) {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ironfence quorum {args:?} in node {i} ran longer than 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn three_nodes_quorate_and_a_cut_node_loses_quorum() {
    let t = Instant::now();
    let cluster = Cluster::start(3, false);
    let mut watches: Vec<Watch> = (1..=3).map(|i| Watch::start(&cluster, i)).collect();

    for (k, w) in watches.iter_mut().enumerate() {
        let i = k as u64 + 1;
        let first = w.wait_for(&cluster, "a first view", Duration::from_secs(10), |_| true);
        assert!(quorate_with(&first.v, &[1, 2, 3]), "node {i}: {}", first.v);
        assert_eq!(first.v["this_node"], json!(i), "{}", first.v);
        assert_eq!(first.v["two_node"], json!(false), "{}", first.v);
        assert_eq!(first.v["expected_votes"], json!(3), "{}", first.v);
        assert_eq!(first.v["responding"], json!(true), "{}", first.v);
        assert!(first.v["ring"].is_array(), "{}", first.v);
    }

    // status: one view and the timing corosync runs with, from cmap
    let out = quorum_cli(&cluster, 2, &["status", "--output", "json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(quorate_with(&status, &[1, 2, 3]), "{status}");
    assert_eq!(status["this_node"], json!(2), "{status}");
    assert_eq!(
        status["timing"],
        json!({"token_ms": TOKEN.as_millis() as u64, "consensus_ms": CONSENSUS.as_millis() as u64}),
        "{status}"
    );
    assert_eq!(cluster.timing().token, TOKEN);
    let text = quorum_cli(&cluster, 1, &["status"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("Quorate:          Yes"), "{text}");
    assert!(text.contains("Token:            1000 ms"), "{text}");
    assert!(text.contains("Consensus:        1200 ms"), "{text}");

    // cut node 3 off
    let limit = TOKEN + CONSENSUS + SLACK;
    let t0 = now_ms();
    cluster.node(3).cut();
    let alone = watches[2].wait_for(&cluster, "quorate=false", limit, |v| {
        v["quorate"] == json!(false)
    });
    assert_eq!(members(&alone.v), vec![3], "{}", alone.v);
    assert_eq!(alone.v["connected"], json!(true), "{}", alone.v);
    let lost = alone.ts_ms.saturating_sub(t0);
    let mut kept = Vec::new();
    for w in &mut watches[..2] {
        let line = w.wait_for(&cluster, "quorate with [1,2]", limit, |v| {
            quorate_with(v, &[1, 2])
        });
        kept.push(line.ts_ms.saturating_sub(t0));
    }
    eprintln!(
        "cut node 3 (token {TOKEN:?}, consensus {CONSENSUS:?}): node 3 not quorate after {lost} ms; \
         nodes 1, 2 quorate with [1,2] after {kept:?} ms"
    );
    assert!(
        Duration::from_millis(lost) <= limit,
        "node 3 noticed after {lost} ms"
    );
    for w in &watches[..2] {
        for line in w.lines() {
            assert_eq!(
                line.v["quorate"],
                json!(true),
                "node {} lost quorum\n{}",
                w.node,
                w.describe()
            );
        }
    }

    // heal: node 3 rejoins
    cluster.node(3).heal();
    watches[2].wait_for(&cluster, "quorate with [1,2,3] again", REJOIN, |v| {
        quorate_with(v, &[1, 2, 3])
    });
    eprintln!("three_nodes test took {:?}", t.elapsed());
}

#[test]
fn killed_corosync_is_reported_disconnected_then_reconnected() {
    let t = Instant::now();
    let mut cluster = Cluster::start(3, false);
    let mut w = Watch::start(&cluster, 1);
    w.wait_for(
        &cluster,
        "quorate with [1,2,3]",
        Duration::from_secs(10),
        |v| quorate_with(v, &[1, 2, 3]),
    );

    let t0 = now_ms();
    cluster.kill(1);
    let gone = w.wait_for(&cluster, "connected=false", Duration::from_secs(2), |v| {
        v["connected"] == json!(false)
    });
    assert_eq!(gone.v["quorate"], json!(false), "{}", gone.v);
    assert_eq!(members(&gone.v), Vec::<u64>::new(), "{}", gone.v);
    eprintln!(
        "SIGKILL of node 1's corosync: connected=false after {} ms",
        gone.ts_ms.saturating_sub(t0)
    );

    // started now, status and watch fail, saying why
    for args in [&["status"][..], &["watch", "--for", "1s"][..]] {
        let out = quorum_cli(&cluster, 1, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        assert!(
            err.contains("cannot reach the local corosync") && err.contains("network namespace"),
            "{args:?}: {err}"
        );
    }

    let t1 = now_ms();
    cluster.restart(1);
    let back = w.wait_for(&cluster, "connected=true", REJOIN, |v| {
        v["connected"] == json!(true)
    });
    let again = w.wait_for(&cluster, "quorate with [1,2,3] again", REJOIN, |v| {
        quorate_with(v, &[1, 2, 3])
    });
    assert_eq!(again.v["this_node"], json!(1), "{}", again.v);
    assert_eq!(again.v["responding"], json!(true), "{}", again.v);
    eprintln!(
        "restart of node 1's corosync: connected after {} ms, quorate with [1,2,3] after {} ms \
         (test took {:?})",
        back.ts_ms.saturating_sub(t1),
        again.ts_ms.saturating_sub(t1),
        t.elapsed()
    );
}

#[test]
fn stopped_corosync_stops_responding() {
    let mut cluster = Cluster::start(3, false);
    let mut w1 = Watch::start(&cluster, 1);
    let mut w2 = Watch::start(&cluster, 2);
    let first = w1.wait_for(
        &cluster,
        "quorate with [1,2,3]",
        Duration::from_secs(10),
        |v| quorate_with(v, &[1, 2, 3]) && v["responding"] == json!(true),
    );
    w2.wait_for(
        &cluster,
        "quorate with [1,2,3]",
        Duration::from_secs(10),
        |v| quorate_with(v, &[1, 2, 3]),
    );

    let t0 = now_ms();
    cluster.stop(1);
    // the round trip blocks: no stamp for 3 intervals, then a tick notices
    let limit = INTERVAL * 5 + Duration::from_secs(1);
    let hung = w1.wait_for(&cluster, "responding=false", limit, |v| {
        v["responding"] == json!(false)
    });
    // the others evict the hung node
    let evicted = w2.wait_for(
        &cluster,
        "quorate with [2,3]",
        TOKEN + CONSENSUS + SLACK,
        |v| quorate_with(v, &[2, 3]),
    );
    eprintln!(
        "SIGSTOP of node 1's corosync: its watch responding=false after {} ms (interval \
         {INTERVAL:?}); node 2 quorate with [2,3] after {} ms",
        hung.ts_ms.saturating_sub(t0),
        evicted.ts_ms.saturating_sub(t0)
    );

    // SIGCONT: it answers again and rejoins in a new ring
    cluster.resume(1);
    let back = w1.wait_for(
        &cluster,
        "responding, quorate with [1,2,3] in a new ring",
        REJOIN,
        |v| {
            v["responding"] == json!(true)
                && quorate_with(v, &[1, 2, 3])
                && v["ring"] != first.v["ring"]
        },
    );
    // While stopped, node 1's last view still said quorate with [1,2,3]
    // (nothing could update it): only the missing stamps told the truth.
    assert!(
        w1.lines()
            .iter()
            .all(|l| l.v["quorate"] == json!(true) || l.v["responding"] == json!(true)),
        "{}",
        w1.describe()
    );
    eprintln!(
        "SIGCONT: node 1 responding and quorate in ring {} {} ms after the SIGSTOP",
        back.v["ring"],
        back.ts_ms.saturating_sub(t0)
    );
}

#[test]
fn two_node_survivor_stays_quorate() {
    let mut cluster = Cluster::start(2, true);
    let mut watches: Vec<Watch> = (1..=2).map(|i| Watch::start(&cluster, i)).collect();
    for (k, w) in watches.iter_mut().enumerate() {
        let first = w.wait_for(&cluster, "a first view", Duration::from_secs(10), |_| true);
        assert!(quorate_with(&first.v, &[1, 2]), "{}", first.v);
        assert_eq!(first.v["two_node"], json!(true), "{}", first.v);
        assert_eq!(first.v["expected_votes"], json!(2), "{}", first.v);
        assert_eq!(first.v["this_node"], json!(k as u64 + 1), "{}", first.v);
    }

    let t0 = now_ms();
    cluster.kill(2);
    let limit = TOKEN + CONSENSUS + SLACK;
    let alone = watches[0].wait_for(&cluster, "members [1]", limit, |v| members(v) == [1]);
    assert!(quorate_with(&alone.v, &[1]), "{}", alone.v);
    assert_eq!(alone.v["two_node"], json!(true), "{}", alone.v);
    eprintln!(
        "two_node: node 2 killed, node 1 alone and still quorate after {} ms",
        alone.ts_ms.saturating_sub(t0)
    );
    for line in watches[0].lines() {
        assert_eq!(
            line.v["quorate"],
            json!(true),
            "the survivor lost quorum\n{}",
            watches[0].describe()
        );
    }
}
