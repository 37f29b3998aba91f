//! A real corosync 3 cluster of N nodes, each in a network namespace of its
//! own, joined by a bridge in another namespace — all made by the test, with
//! a prefix unique to it (`ironfence-q-<test PID>-<n>`), so tests in one
//! process run in parallel without seeing each other's clusters.
//!
//! Pieces (tests/lab/corosync/, usable by hand, see each script's header):
//! - `netns.sh up|down|cut|heal`: the namespaces, the bridge, 192.0.2.I/24
//!   on node I's eth0; `cut` takes eth0 down (node I alone: a partition);
//! - `corosync-conf.sh DIR CLUSTER N TWO_NODE`: knet, token 1000 ms with
//!   token_coefficient 0 (consensus 1200 ms), votequorum, optional two_node;
//! - `node.sh NS DIR`: corosync in the foreground in NS with a private /run
//!   (corosync hard-codes /run/corosync.pid); it `exec`s all the way, so the
//!   child's PID is corosync's.
//!
//! Facts this relies on (corosync 3.1.7, libqb 2.0.6, Debian 12):
//! - libqb's IPC sockets are abstract unix sockets, which belong to the
//!   network namespace: a client (corosync-quorumtool, `ironfence quorum`)
//!   must run in the node's namespace — [`Cluster::exec_in`] — and needs no
//!   /run of its own.
//! - A corosync killed with SIGKILL leaves its blackbox (8 MiB) and its
//!   clients' ring buffers in /dev/shm (`qb-corosync-PID-*`, `qb-PID-*`);
//!   the drop removes those of every corosync PID it started, once that PID
//!   is gone.
//! - With token 1000 ms and consensus 1200 ms, a cut node learns it is alone
//!   about 2.1 s after the cut (lab notes: 2.05-2.2 s).
//!
//! [`Cluster`]'s `Drop` stops every corosync by PID (SIGCONT, SIGTERM, then
//! SIGKILL), SIGKILLs whatever else still runs in its namespaces (all of it
//! started by the test), deletes the namespaces, also when the test fails.
//! Set `IRONFENCE_KEEP_LAB=1` to keep the temp dir (corosync.conf, logs).
//!
//! Needs root (network namespaces, mounts) and corosync; a missing peer fails
//! the test and names `bash tests/lab/install.sh`, it is never skipped.

use super::find_peer;
use ironfence::quorum::Timing;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// totem.token in every lab corosync.conf.
pub const TOKEN: Duration = Duration::from_millis(1000);
/// corosync's consensus for that token (1.2 x token).
pub const CONSENSUS: Duration = Duration::from_millis(1200);

/// Every namespace is named `NS_PREFIX<test PID>-<n>-...`.
const NS_PREFIX: &str = "ironfence-q-";
/// How long a fresh cluster may take to see all its members.
const FORM_LIMIT: Duration = Duration::from_secs(30);
/// SIGTERM to SIGKILL when stopping a corosync.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// Programs the lab needs.
const PEERS: &[&str] = &["ip", "unshare", "corosync", "corosync-quorumtool"];

/// Clusters started by this test process so far (for unique prefixes).
static STARTED: AtomicUsize = AtomicUsize::new(0);

/// A peer program, or a failure that says how to install it.
fn peer(cmd: &str) -> PathBuf {
    find_peer(cmd).unwrap_or_else(|| {
        panic!("missing test peer '{cmd}': run `bash tests/lab/install.sh` (as root)")
    })
}

fn lab_script(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/lab/corosync")
        .join(name);
    assert!(path.is_file(), "missing {}", path.display());
    path
}

/// Run a lab script to completion; panic with its output if it fails.
fn script(name: &str, args: &[&str]) {
    let out = Command::new(lab_script(name))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {name}: {e}"));
    assert!(
        out.status.success(),
        "{name} {}: {}\n{}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The last `n` lines of a file (for failure messages).
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| format!("({e})"));
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn signal(pid: u32, sig: Signal) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = kill(Pid::from_raw(pid), sig);
    }
}

/// PIDs of the processes in namespace `ns`.
fn pids_in(ns: &str) -> Vec<u32> {
    Command::new("ip")
        .args(["netns", "pids", ns])
        .stderr(Stdio::null())
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// SIGKILL (by PID) every process in the namespaces of `prefix` (all
/// started by the test that made them), then delete them.
fn remove_namespaces(prefix: &str) {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    let mine: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| name.starts_with(&format!("{prefix}-")))
        .map(str::to_string)
        .collect();
    for ns in &mine {
        for _ in 0..50 {
            let pids = pids_in(ns);
            if pids.is_empty() {
                break;
            }
            for pid in pids {
                signal(pid, Signal::SIGCONT);
                signal(pid, Signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let out = Command::new("ip").args(["netns", "del", ns]).output();
        if !out.as_ref().is_ok_and(|o| o.status.success()) {
            eprintln!("warning: ip netns del {ns}: {out:?}");
        }
    }
}

/// Remove what an earlier run left when it was killed before its drops ran:
/// namespaces `NS_PREFIX<pid>-...` whose test process `<pid>` is gone.
fn remove_stale_namespaces() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    let mut stale: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter_map(|name| {
            let rest = name.strip_prefix(NS_PREFIX)?;
            let mut parts = rest.splitn(3, '-');
            let pid: u32 = parts.next()?.parse().ok()?;
            let n = parts.next()?;
            let alive = Path::new(&format!("/proc/{pid}")).exists();
            (!alive).then(|| format!("{NS_PREFIX}{pid}-{n}"))
        })
        .collect();
    stale.sort();
    stale.dedup();
    for prefix in stale {
        eprintln!("removing namespaces {prefix}-*, left by a killed test run");
        remove_namespaces(&prefix);
    }
}

/// Remove what a SIGKILLed corosync `pid` left in /dev/shm (its blackbox
/// and its clients' ring buffers), if that PID is gone.
fn remove_shm_of(pid: u32) {
    if Path::new(&format!("/proc/{pid}")).exists() {
        return; // alive, or reused by someone else: not ours to touch
    }
    let Ok(entries) = std::fs::read_dir("/dev/shm") else {
        return;
    };
    let blackbox = format!("qb-corosync-{pid}-");
    let rings = format!("qb-{pid}-");
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(&blackbox) || name.starts_with(&rings) {
            let path = entry.path();
            let _ = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
        }
    }
}

/// One node: its directory and its corosync, when running.
struct Node {
    dir: PathBuf,
    corosync: Option<Child>,
}

/// An N-node corosync cluster in network namespaces; dropping it stops it
/// and removes everything (see the module docs). Nodes are numbered from 1
/// (node I has nodeid I and address 192.0.2.I).
pub struct Cluster {
    prefix: String,
    n: usize,
    two_node: bool,
    dir: Option<tempfile::TempDir>,
    nodes: Vec<Node>,
    /// Every corosync PID started, for the /dev/shm clean-up.
    pids: Vec<u32>,
    ns_made: bool,
}

/// One node of a [`Cluster`], for its network.
pub struct NodeRef<'a> {
    cluster: &'a Cluster,
    i: usize,
}

impl NodeRef<'_> {
    /// Take node I's cluster link down: it is alone, the others lose it.
    pub fn cut(&self) {
        script(
            "netns.sh",
            &["cut", &self.cluster.prefix, &self.i.to_string()],
        );
    }

    /// Bring node I's link back up.
    pub fn heal(&self) {
        script(
            "netns.sh",
            &["heal", &self.cluster.prefix, &self.i.to_string()],
        );
    }

    /// The node's network namespace.
    pub fn ns(&self) -> String {
        self.cluster.ns(self.i)
    }
}

impl Cluster {
    /// Start `n` corosync nodes (`two_node`: votequorum's two_node, for
    /// n = 2) and wait until every node sees all `n` as members and is
    /// quorate. Panics, with the logs, if they do not within 30 s.
    pub fn start(n: usize, two_node: bool) -> Cluster {
        Cluster::start_with(n, two_node, false)
    }

    /// [`start`](Cluster::start); `pacemaker`: corosync.conf lets
    /// Pacemaker's daemons (hacluster:haclient) in (`uidgid`).
    pub fn start_with(n: usize, two_node: bool, pacemaker: bool) -> Cluster {
        assert!((1..=200).contains(&n), "1 to 200 nodes, not {n}");
        for p in PEERS {
            peer(p);
        }
        remove_stale_namespaces();
        let k = STARTED.fetch_add(1, Ordering::SeqCst);
        let prefix = format!("{NS_PREFIX}{}-{k}", std::process::id());
        let dir = tempfile::Builder::new()
            .prefix("ironfence-corosync-")
            .tempdir()
            .expect("create the lab's temp dir");
        let mut cluster = Cluster {
            prefix,
            n,
            two_node,
            nodes: (1..=n)
                .map(|i| Node {
                    dir: dir.path().join(format!("n{i}")),
                    corosync: None,
                })
                .collect(),
            dir: Some(dir),
            pids: Vec::new(),
            ns_made: false,
        };
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test needs root (network namespaces and mounts): run it as root"
        );
        cluster.ns_made = true; // from here on, the drop removes what exists
        script("netns.sh", &["up", &cluster.prefix, &n.to_string()]);
        let cluster_name = format!("lab{k}");
        for i in 1..=n {
            let d = cluster.nodes[i - 1].dir.display().to_string();
            let two = if two_node { "1" } else { "0" };
            let pcmk = if pacemaker { "1" } else { "0" };
            script(
                "corosync-conf.sh",
                &[&d, &cluster_name, &n.to_string(), two, pcmk],
            );
        }
        let started = Instant::now();
        for i in 1..=n {
            cluster.spawn(i);
        }
        for i in 1..=n {
            cluster.wait_members(i, n, FORM_LIMIT);
        }
        eprintln!(
            "corosync cluster {} ({n} nodes{}) formed in {:?}",
            cluster.prefix,
            if two_node { ", two_node" } else { "" },
            started.elapsed()
        );
        cluster
    }

    /// Add the management network (`netns.sh mgmt`): bridge br1 in the
    /// switch namespace with 198.51.100.254, node I's `mgmt` =
    /// 198.51.100.I. A [`cut`](NodeRef::cut) leaves it up.
    pub fn add_mgmt_network(&self) {
        script("netns.sh", &["mgmt", &self.prefix, &self.n.to_string()]);
    }

    /// The switch namespace (bridges; the lab's BMCs run there).
    pub fn switch_ns(&self) -> String {
        format!("{}-sw", self.prefix)
    }

    /// The namespace prefix of this cluster.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether two_node is configured.
    pub fn two_node(&self) -> bool {
        self.two_node
    }

    /// Node `i` (1-based).
    pub fn node(&self, i: usize) -> NodeRef<'_> {
        self.check(i);
        NodeRef { cluster: self, i }
    }

    /// The network namespace of node `i`.
    pub fn ns(&self, i: usize) -> String {
        self.check(i);
        format!("{}-n{i}", self.prefix)
    }

    /// The directory of node `i` (corosync.conf, corosync.log, run/, lib/).
    pub fn node_dir(&self, i: usize) -> &Path {
        self.check(i);
        &self.nodes[i - 1].dir
    }

    /// The totem timing every node runs with.
    pub fn timing(&self) -> Timing {
        Timing {
            token: TOKEN,
            consensus: CONSENSUS,
        }
    }

    /// PID of node `i`'s corosync, if it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.check(i);
        self.nodes[i - 1].corosync.as_ref().map(Child::id)
    }

    /// `program` inside node `i`'s network namespace (`ip netns exec`).
    /// corosync's clients need nothing else: its IPC sockets are abstract,
    /// per network namespace, and only the corosync daemon needs a private
    /// /run (node.sh gives it one).
    pub fn exec_in(&self, i: usize, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(peer("ip"));
        cmd.args(["netns", "exec", &self.ns(i)])
            .arg(program)
            .stdin(Stdio::null());
        cmd
    }

    /// SIGKILL node `i`'s corosync by PID and reap it.
    pub fn kill(&mut self, i: usize) {
        self.check(i);
        let node = &mut self.nodes[i - 1];
        if let Some(mut c) = node.corosync.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGSTOP node `i`'s corosync (a hung node: its IPC calls block).
    pub fn stop(&mut self, i: usize) {
        let pid = self.pid(i).expect("stop: corosync is not running");
        signal(pid, Signal::SIGSTOP);
    }

    /// SIGCONT node `i`'s corosync after [`stop`](Cluster::stop).
    pub fn resume(&mut self, i: usize) {
        let pid = self.pid(i).expect("resume: corosync is not running");
        signal(pid, Signal::SIGCONT);
    }

    /// Start node `i`'s corosync again (stopping it first if it runs); does
    /// not wait for it to rejoin (see [`wait_members`](Cluster::wait_members)).
    pub fn restart(&mut self, i: usize) {
        self.shutdown(i);
        self.spawn(i);
    }

    /// Wait until node `i`'s corosync-quorumtool shows `members` nodes and
    /// quorum; panic with the logs after `limit`. Returns how long it took.
    pub fn wait_members(&self, i: usize, members: usize, limit: Duration) -> Duration {
        let start = Instant::now();
        let quorumtool = peer("corosync-quorumtool");
        let want = format!("{members}");
        let mut last = String::new();
        while start.elapsed() < limit {
            if let Ok(out) = self.exec_in(i, &quorumtool).arg("-s").output() {
                last = String::from_utf8_lossy(&out.stdout).into_owned();
                let field = |k: &str| {
                    last.lines()
                        .find_map(|l| l.strip_prefix(k))
                        .map(|v| v.trim().to_string())
                };
                if field("Nodes:").as_deref() == Some(want.as_str())
                    && field("Quorate:").as_deref() == Some("Yes")
                {
                    return start.elapsed();
                }
                if !out.status.success() && last.is_empty() {
                    last = String::from_utf8_lossy(&out.stderr).into_owned();
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "node {i} of {}: not {members} quorate members within {limit:?}; \
             corosync-quorumtool -s said:\n{last}\n{}",
            self.prefix,
            self.logs()
        );
    }

    /// The end of every node's corosync log, for failure messages.
    pub fn logs(&self) -> String {
        let mut s = String::new();
        for (k, node) in self.nodes.iter().enumerate() {
            s.push_str(&format!(
                "--- node {} corosync.log ---\n{}\n--- node {} stdout ---\n{}\n",
                k + 1,
                tail(&node.dir.join("corosync.log"), 15),
                k + 1,
                tail(&node.dir.join("corosync.out"), 5),
            ));
        }
        s
    }

    fn check(&self, i: usize) {
        assert!(
            (1..=self.n).contains(&i),
            "node {i}: the cluster has nodes 1 to {}",
            self.n
        );
    }

    /// Start node `i`'s corosync (node.sh), output to its corosync.out.
    fn spawn(&mut self, i: usize) {
        let ns = self.ns(i);
        let node = &mut self.nodes[i - 1];
        let out =
            std::fs::File::create(node.dir.join("corosync.out")).expect("create corosync.out");
        let err = out.try_clone().expect("dup corosync.out");
        let child = Command::new(lab_script("node.sh"))
            .arg(&ns)
            .arg(&node.dir)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("start node.sh {ns}: {e}"));
        self.pids.push(child.id());
        node.corosync = Some(child);
    }

    /// Stop node `i`'s corosync by PID (see [`stop_all`](Cluster::stop_all)).
    fn shutdown(&mut self, i: usize) {
        let node = self.nodes[i - 1].corosync.take();
        stop_all(node.into_iter().collect());
    }
}

/// Stop corosyncs by PID: SIGCONT (in case they are stopped) and SIGTERM to
/// all, then SIGKILL whatever still runs after [`STOP_GRACE`]; reap all.
fn stop_all(mut children: Vec<Child>) {
    for c in children.iter_mut() {
        if matches!(c.try_wait(), Ok(None)) {
            signal(c.id(), Signal::SIGCONT);
            signal(c.id(), Signal::SIGTERM);
        }
    }
    let deadline = Instant::now() + STOP_GRACE;
    while Instant::now() < deadline
        && children
            .iter_mut()
            .any(|c| matches!(c.try_wait(), Ok(None)))
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    for mut c in children {
        let _ = c.kill();
        let _ = c.wait();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        stop_all(
            self.nodes
                .iter_mut()
                .filter_map(|n| n.corosync.take())
                .collect(),
        );
        if self.ns_made {
            remove_namespaces(&self.prefix);
        }
        for pid in &self.pids {
            remove_shm_of(*pid);
        }
        if std::env::var_os("IRONFENCE_KEEP_LAB").is_some() {
            if let Some(dir) = self.dir.take() {
                eprintln!("IRONFENCE_KEEP_LAB: kept {}", dir.keep().display());
            }
        }
    }
}
