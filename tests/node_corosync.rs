//! `ironfenced`'s quorum servant against a real corosync 3 cluster in
//! network namespaces (tests/support/corosync.rs): each node's daemon runs
//! in its node's namespace with a recorder watchdog and a recorder
//! self-fence (nothing on this host can reset it; the guard is set).
//!
//! - 3 nodes (token 1000 ms, token_coefficient 0): cut node 3 off -> its
//!   daemon self-fences within token + consensus + watchdog timeout; nodes 1
//!   and 2 stay quorate and keep feeding.
//! - two_node: partition the pair -> the node with a healthy sbd disk keeps
//!   feeding, the one without self-fences (sbd's rule for a lone survivor).
#![cfg(feature = "corosync")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::corosync::{Cluster, CONSENSUS, TOKEN};

const WD: Duration = Duration::from_secs(5);

struct Node {
    dir: PathBuf,
    child: Child,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    fn events(&self, file: &str) -> Vec<Value> {
        std::fs::read_to_string(self.dir.join(file))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
    fn keepalives(&self) -> usize {
        self.events("watchdog.jsonl")
            .iter()
            .filter(|e| e["event"] == "keepalive")
            .count()
    }
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }
    fn wait_feeding(&self) {
        let start = Instant::now();
        while self.keepalives() < 2 {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "never fed: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(st) = self.child.try_wait().unwrap() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Start ironfenced for node `i` inside its namespace.
fn daemon(cluster: &Cluster, i: usize, root: &Path, disk: Option<&Path>) -> Node {
    let dir = root.join(format!("n{i}"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut config = format!(
        r#"
[daemon]
socket = "{d}/ironfenced.sock"
state_dir = "{d}/state"
node_name = "node{i}"

[watchdog]
kind = "recorder"
device = "{d}/watchdog.jsonl"
timeout = "{wd}s"
interval = "200ms"

[quorum]
source = "corosync"
no_quorum_policy = "suicide"

[self_fence]
method = "recorder"
record_file = "{d}/self-fence.jsonl"
"#,
        d = dir.display(),
        wd = WD.as_secs()
    );
    if let Some(disk) = disk {
        config.push_str(&format!(
            "\n[sbd]\ndevices = [\"{}\"]\nsector_size = 512\nio_timeout = \"1s\"\n",
            disk.display()
        ));
    }
    std::fs::write(dir.join("ironfence.toml"), config).unwrap();
    let log = std::fs::File::create(dir.join("daemon.log")).unwrap();
    let child = cluster
        .exec_in(i, env!("CARGO_BIN_EXE_ironfenced"))
        .arg("--config")
        .arg(dir.join("ironfence.toml"))
        .arg("--log")
        .arg("info")
        .env("IRONFENCE_FORBID_HARDWARE", "1")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    Node { dir, child }
}

#[test]
fn a_node_cut_off_from_the_cluster_self_fences_and_the_majority_keeps_feeding() {
    let cluster = Cluster::start(3, false);
    let root = tempfile::tempdir().unwrap();
    let nodes: Vec<Node> = (1..=3)
        .map(|i| daemon(&cluster, i, root.path(), None))
        .collect();
    for n in &nodes {
        n.wait_feeding();
    }
    let [n1, n2, mut n3]: [Node; 3] = nodes.try_into().ok().unwrap();
    let fed_before = (n1.keepalives(), n2.keepalives());

    let cut = wall_ms();
    let t0 = Instant::now();
    cluster.node(3).cut();
    let st = n3
        .wait_exit(TOKEN + CONSENSUS + WD + Duration::from_secs(5))
        .unwrap_or_else(|| panic!("node3 still running: {}", n3.log()));
    assert_eq!(st.code(), Some(3), "{}", n3.log());
    let sf = n3.events("self-fence.jsonl");
    assert_eq!(sf.len(), 1, "{sf:?}");
    let reason = sf[0]["reason"].as_str().unwrap();
    assert!(reason.contains("quorum lost"), "{reason}");
    let took = Duration::from_millis(sf[0]["t_ms"].as_u64().unwrap() - cut);
    eprintln!("node3 cut off -> self-fence recorded after {took:?}");
    assert!(took <= TOKEN + CONSENSUS + WD, "{took:?}");
    // No magic close on the way out.
    assert!(n3
        .events("watchdog.jsonl")
        .iter()
        .all(|e| e["event"] != "disarm"));

    // Nodes 1 and 2: still quorate, still feeding, nobody self-fenced.
    let settle = TOKEN + CONSENSUS + Duration::from_secs(2);
    std::thread::sleep(settle.saturating_sub(t0.elapsed()));
    let mid = (n1.keepalives(), n2.keepalives());
    std::thread::sleep(Duration::from_secs(2));
    let after = (n1.keepalives(), n2.keepalives());
    assert!(
        after.0 > mid.0 + 5 && after.1 > mid.1 + 5,
        "{fed_before:?} {mid:?} {after:?}"
    );
    for n in [&n1, &n2] {
        assert!(n.events("self-fence.jsonl").is_empty(), "{}", n.log());
        let out = Command::new(env!("CARGO_BIN_EXE_ironfence"))
            .arg("--socket")
            .arg(n.dir.join("ironfenced.sock"))
            .args(["--output", "json", "node", "status"])
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let st = &v["status"];
        assert_eq!(st["healthy"], true, "{st}");
        assert_eq!(st["quorum"]["quorate"], true, "{st}");
        assert_eq!(st["quorum"]["members"], serde_json::json!([1, 2]), "{st}");
    }
}

#[test]
fn a_lone_two_node_survivor_lives_only_on_a_healthy_disk() {
    let cluster = Cluster::start(2, true);
    let root = tempfile::tempdir().unwrap();
    // node1 has an sbd disk (file image: watchdog 5 s, msgwait 10 s).
    let disk = root.path().join("disk.img");
    std::fs::File::create(&disk)
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    for args in [
        &["-1", "5", "-4", "10", "create"][..],
        &["allocate", "node1"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_ironfence"))
            .arg("sbd")
            .arg("-d")
            .arg(&disk)
            .args(["--sector-size", "512"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut n1 = daemon(&cluster, 1, root.path(), Some(&disk));
    let mut n2 = daemon(&cluster, 2, root.path(), None);
    n1.wait_feeding();
    n2.wait_feeding();

    // Partition: each side is a lone two_node survivor, still quorate.
    cluster.node(2).cut();
    let st = n2
        .wait_exit(TOKEN + CONSENSUS + WD + Duration::from_secs(5))
        .unwrap_or_else(|| panic!("node2 (no disk) still running: {}", n2.log()));
    assert_eq!(st.code(), Some(3), "{}", n2.log());
    let sf = n2.events("self-fence.jsonl");
    let reason = sf[0]["reason"].as_str().unwrap();
    assert!(reason.contains("two_node"), "{reason}");

    // node1 vouched for by its disk: still running and feeding.
    let before = n1.keepalives();
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        n1.wait_exit(Duration::from_millis(10)).is_none(),
        "{}",
        n1.log()
    );
    assert!(n1.keepalives() > before + 5, "{}", n1.log());
    assert!(n1.events("self-fence.jsonl").is_empty());
    let log = n1.log();
    assert!(!log.contains("SELF-FENCE"), "{log}");
}
