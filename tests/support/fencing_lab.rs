//! A fencing cluster lab: N simulated nodes, each a network namespace with a
//! real corosync 3 and our `ironfenced` (with `[cluster]`), and for each
//! node a real OpenIPMI `ipmi_sim` BMC whose power-off kills that node.
//!
//! ```text
//!   PREFIX-sw: br0 (cluster link, 192.0.2.0/24)   br1 (management, 198.51.100.0/24)
//!              ipmi_sim of node I on 198.51.100.254:(6230+I), chassis -> lab/cluster/node-power.sh
//!   PREFIX-nI: eth0 192.0.2.I (corosync), mgmt 198.51.100.I (reaches the BMCs)
//!              corosync (support::corosync) + ironfenced (this module)
//! ```
//!
//! A BMC power-off takes the node's eth0 down and SIGKILLs every process in
//! its namespace (as pulling the plug would); power-on brings eth0 back, and
//! the test boots the node again ([`FenceLab::boot`]) when it wants it back.
//! A cut of eth0 leaves the management network up, so a partitioned node
//! can still reach every BMC (a fence race is real).
//!
//! Optionally a second fencing level: an SBD poison pill on a disk image
//! file shared by every node (msgwait 2 s).
//!
//! With [`Stack::Pacemaker`] the same lab runs Pacemaker 2.1 instead of
//! ironfenced (tests/lab/pcmk/pcmk-node.sh per node; one `fence_ipmilan`
//! device per node against the same BMCs), for side-by-side benchmarks.
//!
//! Everything is stopped by PID when the lab is dropped (daemons, BMCs,
//! then the corosync cluster, which removes the namespaces).

use super::corosync::Cluster;
use super::{check_shell_safe, lan_conf_at, require_peer, IPMI_PASSWORD, IPMI_USER, SIM_EMU};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where every BMC listens (the switch namespace's br1).
pub const BMC_ADDR: &str = "198.51.100.254";
/// Every lab BMC device's `timeouts.off`, seconds.
const LAB_OFF_TIMEOUT_S: f64 = 3.0;
/// BMC of node I listens on BMC_PORT_BASE + I.
pub const BMC_PORT_BASE: u16 = 6230;
/// msgwait of the shared SBD disk.
pub const SBD_MSGWAIT: Duration = Duration::from_secs(2);

/// What runs on each node besides corosync.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Stack {
    Ironfence,
    Pacemaker,
}

/// How the lab is built.
#[derive(Clone)]
pub struct Options {
    pub stack: Stack,
    pub nodes: usize,
    pub two_node: bool,
    /// Level 2: an SBD poison pill on a shared disk image.
    pub sbd_level: bool,
    /// `[cluster] fence_action`.
    pub fence_action: &'static str,
    /// More `[cluster]` lines (same on every node).
    pub cluster_extra: String,
    /// Resource sections (same on every node).
    pub resources: String,
    /// For [`Stack::Pacemaker`]: CIB `<primitive>`s and constraints added
    /// next to the fence devices (the same services as `resources`).
    pub pcmk_resources: String,
    pub pcmk_constraints: String,
    /// Every BMC device's `ipmi.login_timeout` (a loaded CI machine needs
    /// slack; the benchmarks say what they use).
    pub login_timeout: &'static str,
}

impl Options {
    pub fn nodes(n: usize) -> Options {
        Options {
            stack: Stack::Ironfence,
            nodes: n,
            two_node: n == 2,
            sbd_level: false,
            fence_action: "reboot",
            cluster_extra: String::new(),
            resources: String::new(),
            pcmk_resources: String::new(),
            pcmk_constraints: String::new(),
            login_timeout: "1s",
        }
    }
}

fn signal(pid: u32, sig: Signal) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = kill(Pid::from_raw(pid), sig);
    }
}

/// The lab (see the module docs).
pub struct FenceLab {
    pub cluster: Cluster,
    dir: tempfile::TempDir,
    opts: Options,
    bmcs: Vec<Child>,
    daemons: Vec<Option<Child>>,
    pacemakers: Vec<Option<Child>>,
    /// Services the test started in the nodes (HTTP behind the VIP).
    services: Vec<Child>,
}

impl FenceLab {
    /// Start corosync on every node, the BMCs, and every node's ironfenced;
    /// wait until every daemon is an active member.
    pub fn start(opts: Options) -> FenceLab {
        let mut lab = FenceLab::start_without_daemons(opts);
        if lab.opts.stack == Stack::Pacemaker {
            for i in 1..=lab.opts.nodes {
                lab.start_pacemaker(i);
            }
            lab.configure_pacemaker();
            lab.wait_pacemaker_ready(Duration::from_secs(90));
            return lab;
        }
        for i in 1..=lab.opts.nodes {
            lab.start_daemon(i);
        }
        for i in 1..=lab.opts.nodes {
            lab.wait_active(i, lab.opts.nodes, Duration::from_secs(30));
        }
        lab
    }

    /// corosync and BMCs only (the test starts the daemons).
    pub fn start_without_daemons(opts: Options) -> FenceLab {
        require_peer("ipmi_sim");
        require_peer("ipmitool");
        if opts.stack == Stack::Pacemaker {
            require_peer("pacemakerd");
            require_peer("fence_ipmilan");
        }
        let cluster =
            Cluster::start_with(opts.nodes, opts.two_node, opts.stack == Stack::Pacemaker);
        cluster.add_mgmt_network();
        let dir = tempfile::Builder::new()
            .prefix("ironfence-fencelab-")
            .tempdir()
            .expect("lab temp dir");
        check_shell_safe(dir.path()).expect("a plain temp dir path");
        let mut lab = FenceLab {
            cluster,
            daemons: (0..opts.nodes).map(|_| None).collect(),
            pacemakers: (0..opts.nodes).map(|_| None).collect(),
            bmcs: Vec::new(),
            services: Vec::new(),
            dir,
            opts,
        };
        for i in 1..=lab.opts.nodes {
            let bmc = lab.spawn_bmc(i);
            lab.bmcs.push(bmc);
        }
        for i in 1..=lab.opts.nodes {
            lab.wait_bmc(i);
        }
        if lab.opts.sbd_level {
            lab.make_sbd_disk();
        }
        for i in 1..=lab.opts.nodes {
            std::fs::create_dir_all(lab.node_dir(i)).expect("node dir");
            std::fs::write(lab.config_path(i), lab.config(i, "")).expect("write config");
        }
        lab
    }

    pub fn len(&self) -> usize {
        self.opts.nodes
    }

    fn bmc_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("bmc{i}"))
    }

    /// The files of node I's ironfenced (config, socket, state, log).
    pub fn node_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("n{i}"))
    }

    pub fn config_path(&self, i: usize) -> PathBuf {
        self.node_dir(i).join("ironfence.toml")
    }

    pub fn socket(&self, i: usize) -> PathBuf {
        self.node_dir(i).join("ironfenced.sock")
    }

    pub fn sbd_disk(&self) -> PathBuf {
        self.dir.path().join("sbd.img")
    }

    fn spawn_bmc(&self, i: usize) -> Child {
        let d = self.bmc_dir(i);
        std::fs::create_dir_all(d.join("state")).expect("bmc dir");
        let power = d.join("power");
        std::fs::write(&power, "1\n").expect("power file");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lab/cluster/node-power.sh");
        check_shell_safe(&script).expect("a plain checkout path");
        let chassis = format!(
            "/bin/sh {} {} {}",
            script.display(),
            power.display(),
            self.cluster.ns(i)
        );
        std::fs::write(
            d.join("lan.conf"),
            lan_conf_at(BMC_ADDR, BMC_PORT_BASE + i as u16, &chassis),
        )
        .expect("lan.conf");
        std::fs::write(d.join("sim.emu"), SIM_EMU).expect("sim.emu");
        let log = std::fs::File::create(d.join("sim.log")).expect("sim.log");
        let log2 = log.try_clone().expect("dup");
        Command::new("ip")
            .args(["netns", "exec", &self.cluster.switch_ns()])
            .arg(require_peer("ipmi_sim"))
            .arg("-c")
            .arg(d.join("lan.conf"))
            .arg("-f")
            .arg(d.join("sim.emu"))
            .arg("-s")
            .arg(d.join("state"))
            .arg("-n")
            .current_dir(&d)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .expect("spawn ipmi_sim")
    }

    /// ipmitool against node I's BMC, from the switch namespace.
    pub fn ipmitool(&self, i: usize, args: &[&str]) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", &self.cluster.switch_ns()])
            .arg(require_peer("ipmitool"))
            .args([
                "-I", "lanplus", "-C", "3", "-N", "1", "-R", "1", "-H", BMC_ADDR,
            ])
            .args(["-p", &(BMC_PORT_BASE + i as u16).to_string()])
            .args(["-U", IPMI_USER, "-P", IPMI_PASSWORD])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run ipmitool")
    }

    fn wait_bmc(&self, i: usize) {
        let start = Instant::now();
        loop {
            let out = self.ipmitool(i, &["chassis", "power", "status"]);
            if out.status.success() {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "BMC {i} never answered: {}\n{}",
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(self.bmc_dir(i).join("sim.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn make_sbd_disk(&self) {
        let disk = self.sbd_disk();
        std::fs::File::create(&disk)
            .and_then(|f| f.set_len(1 << 20))
            .expect("sbd image");
        let msgwait = SBD_MSGWAIT.as_secs().to_string();
        let mut steps: Vec<Vec<String>> = vec![vec![
            "-1".into(),
            "1".into(),
            "-4".into(),
            msgwait,
            "create".into(),
        ]];
        for i in 1..=self.opts.nodes {
            steps.push(vec!["allocate".into(), format!("node{i}")]);
        }
        for args in steps {
            let out = Command::new(env!("CARGO_BIN_EXE_ironfence"))
                .arg("sbd")
                .arg("-d")
                .arg(&disk)
                .args(["--sector-size", "512"])
                .args(&args)
                .output()
                .expect("ironfence sbd");
            assert!(
                out.status.success(),
                "sbd {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// Node I's config; `extra` is appended (for a mismatch test).
    pub fn config(&self, i: usize, extra: &str) -> String {
        let d = self.node_dir(i);
        let n = self.opts.nodes;
        let mut c = format!(
            r#"[daemon]
socket = "{sock}"
state_dir = "{state}"
node_name = "node{i}"
fencing_timeout = "30s"
verify_interval = "100ms"
resource_tmp = "{rsctmp}"
# per-node /run for agents that keep state under HA_VARRUN (Stateful)
agent_env = {{ HA_VARRUN = "{rsctmp}" }}

[cluster]
group = "ironfence-lab"
fence_action = "{action}"
{extra_cluster}
"#,
            sock = d.join("ironfenced.sock").display(),
            state = d.join("state").display(),
            rsctmp = d.join("rsctmp").display(),
            action = self.opts.fence_action,
            extra_cluster = self.opts.cluster_extra,
        );
        for j in 1..=n {
            c.push_str(&format!("\n[[node]]\nname = \"node{j}\"\nid = {j}\n"));
        }
        for j in 1..=n {
            c.push_str(&format!(
                r#"
[[device]]
name = "bmc-node{j}"
kind = "ipmi"
address = "{BMC_ADDR}"
username = "{IPMI_USER}"
password = "{IPMI_PASSWORD}"
host_list = ["node{j}"]
timeouts = {{ off = "{off}s", on = "3s", status = "3s" }}
retries = {{ off = 1 }}
ipmi = {{ port = {port}, cipher = 3, retransmit = "200ms", login_timeout = "{login}" }}

[[level]]
index = 1
target = "node{j}"
devices = ["bmc-node{j}"]
"#,
                port = BMC_PORT_BASE + j as u16,
                off = LAB_OFF_TIMEOUT_S,
                login = self.opts.login_timeout
            ));
        }
        if self.opts.sbd_level {
            let hosts: Vec<String> = (1..=n).map(|j| format!("\"node{j}\"")).collect();
            c.push_str(&format!(
                "\n[[device]]\nname = \"sbd-pill\"\nkind = \"sbd\"\nhost_list = [{}]\nsbd = {{ devices = [\"{}\"], sector_size = 512, io_timeout = \"1s\" }}\ntimeouts = {{ off = \"10s\", on = \"10s\" }}\nretries = {{ off = 0 }}\n",
                hosts.join(", "),
                self.sbd_disk().display()
            ));
            for j in 1..=n {
                c.push_str(&format!(
                    "\n[[level]]\nindex = 2\ntarget = \"node{j}\"\ndevices = [\"sbd-pill\"]\n"
                ));
            }
        }
        c.push_str(&self.opts.resources);
        c.push_str(extra);
        c
    }

    /// Node I's HA_RSCTMP (agents' state files).
    pub fn rsctmp(&self, i: usize) -> PathBuf {
        self.node_dir(i).join("rsctmp")
    }

    /// Start an HTTP server on port 8080 of node I (all addresses, so it
    /// answers on the VIP while the node holds it); GET /node says `nodeI`.
    pub fn start_http(&mut self, i: usize) {
        let root = self.node_dir(i).join("www");
        std::fs::create_dir_all(&root).expect("www");
        std::fs::write(root.join("node"), format!("node{i}")).expect("www/node");
        let child = self
            .cluster
            .exec_in(i, "python3")
            .args([
                "-m",
                "http.server",
                "--bind",
                "0.0.0.0",
                "8080",
                "--directory",
            ])
            .arg(&root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 http.server");
        self.services.push(child);
    }

    /// GET http://ADDR:8080/node from the switch (a client of the cluster):
    /// which node answered, if any, within 300 ms.
    pub fn http_node(&self, addr: &str) -> Option<String> {
        self.http_node_within(addr, "0.3")
    }

    /// [`http_node`](FenceLab::http_node) giving up after MAX seconds (a
    /// poll that measures: its granularity is about MAX).
    pub fn http_node_within(&self, addr: &str, max: &str) -> Option<String> {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.cluster.switch_ns(),
                "curl",
                "-s",
                "-m",
                max,
            ])
            .arg(format!("http://{addr}:8080/node"))
            .stdin(Stdio::null())
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (out.status.success() && text.starts_with("node")).then_some(text)
    }

    /// `ironfence resource status --output json` on node I.
    pub fn resources(&self, i: usize) -> Value {
        let (code, v, err) = self.cli(i, &["resource", "status"]);
        assert_eq!(code, 0, "resource status on node{i}: {err}");
        v
    }

    /// Where node I sees resource RSC running (healthy), sorted.
    pub fn running(&self, i: usize, rsc: &str) -> Vec<String> {
        let v = self.resources(i);
        let mut on: Vec<String> = v["status"]["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["id"] == rsc)
            .flat_map(|r| {
                r["on"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter(|(_, st)| *st == "started" || *st == "promoted")
                    .map(|(n, _)| n.clone())
                    .collect::<Vec<_>>()
            })
            .collect();
        on.sort();
        on
    }

    /// Pull node I's plug by hand (what a human checks before `confirm`):
    /// its links go down, the addresses agents added (a VIP) are gone as
    /// after any power loss, and every process in it is killed.
    pub fn pull_plug(&mut self, i: usize) {
        let ns = self.cluster.ns(i);
        let _ = Command::new("ip")
            .args(["-n", &ns, "link", "set", "eth0", "down"])
            .status();
        let _ = Command::new("ip")
            .args(["-n", &ns, "addr", "flush", "dev", "eth0", "secondary"])
            .status();
        let pids = Command::new("ip")
            .args(["netns", "pids", &ns])
            .output()
            .expect("ip netns pids");
        for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
            if let Ok(p) = pid.parse::<u32>() {
                signal(p, Signal::SIGKILL);
            }
        }
    }

    /// Start node I's ironfenced in its namespace (log in its dir).
    pub fn start_daemon(&mut self, i: usize) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.node_dir(i).join("daemon.log"))
            .expect("daemon.log");
        let child = self
            .cluster
            .exec_in(i, env!("CARGO_BIN_EXE_ironfenced"))
            .arg("--config")
            .arg(self.config_path(i))
            .arg("--log")
            .arg("info")
            .env("IRONFENCE_FORBID_HARDWARE", "1")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn ironfenced");
        if let Some(mut old) = self.daemons[i - 1].replace(child) {
            let _ = old.kill();
            let _ = old.wait();
        }
    }

    /// PID of node I's ironfenced.
    pub fn daemon_pid(&self, i: usize) -> Option<u32> {
        self.daemons[i - 1].as_ref().map(Child::id)
    }

    /// Wait for node I's ironfenced to exit; its status.
    pub fn wait_daemon_exit(
        &mut self,
        i: usize,
        limit: Duration,
    ) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(c) = self.daemons[i - 1].as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    return Some(st);
                }
            } else {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn daemon_log(&self, i: usize) -> String {
        std::fs::read_to_string(self.node_dir(i).join("daemon.log")).unwrap_or_default()
    }

    /// Every daemon's log tail and the corosync logs, for failure messages.
    pub fn logs(&self) -> String {
        let mut s = String::new();
        for i in 1..=self.opts.nodes {
            let log = self.daemon_log(i);
            let lines: Vec<&str> = log.lines().collect();
            s.push_str(&format!(
                "--- node{i} ironfenced ---\n{}\n",
                lines[lines.len().saturating_sub(25)..].join("\n")
            ));
        }
        s.push_str(&self.cluster.logs());
        s
    }

    /// `ironfence --output json ARGS` against node I's socket.
    pub fn cli(&self, i: usize, args: &[&str]) -> (i32, Value, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_ironfence"))
            .arg("--socket")
            .arg(self.socket(i))
            .args(["--output", "json"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run ironfence");
        let v = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        (
            out.status.code().unwrap_or(-1),
            v,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Node I's `cluster status` (Null when it does not answer).
    pub fn status(&self, i: usize) -> Value {
        let (code, v, _) = self.cli(i, &["cluster", "status"]);
        if code == 0 {
            v["status"].clone()
        } else {
            Value::Null
        }
    }

    /// The state node I shows for node J.
    pub fn state_of(&self, i: usize, j: usize) -> String {
        let st = self.status(i);
        st["nodes"]
            .as_array()
            .and_then(|ns| ns.iter().find(|n| n["id"] == j as u64))
            .and_then(|n| n["state"].as_str())
            .unwrap_or("(no answer)")
            .to_string()
    }

    /// Wait until `check` holds; panic with `what` and the logs after `limit`.
    pub fn wait_for(
        &self,
        what: &str,
        limit: Duration,
        mut check: impl FnMut(&FenceLab) -> bool,
    ) -> Duration {
        let start = Instant::now();
        loop {
            if check(self) {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < limit,
                "{what}: not within {limit:?}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Wait until node I is an active member seeing `members` online nodes.
    pub fn wait_active(&self, i: usize, members: usize, limit: Duration) {
        self.wait_for(
            &format!("node{i} active with {members} online"),
            limit,
            |lab| {
                let st = lab.status(i);
                st["state"] == "active"
                    && st["nodes"].as_array().is_some_and(|ns| {
                        ns.iter().filter(|n| n["state"] == "online").count() == members
                    })
            },
        );
    }

    /// Node I's fencing history (request summaries).
    pub fn history(&self, i: usize) -> Vec<Value> {
        let (_, v, _) = self.cli(i, &["history"]);
        v["requests"].as_array().cloned().unwrap_or_default()
    }

    /// Requests in node I's history that fenced node J (or recorded such a fence).
    pub fn fences_of(&self, i: usize, j: usize) -> Vec<Value> {
        self.history(i)
            .into_iter()
            .filter(|r| {
                r["target"] == format!("node{j}")
                    && (r["state"] == "fenced" || r["state"] == "confirmed")
            })
            .collect()
    }

    /// Every `set` node J's BMC was given ("set power 0", ...).
    pub fn power_log(&self, j: usize) -> Vec<String> {
        std::fs::read_to_string(self.bmc_dir(j).join("power.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once(' ').map(|(_, rest)| rest.to_string()))
            .collect()
    }

    /// Timestamps (unix seconds) of the power-offs node J's BMC was told
    /// to do, one per Chassis Control request. ipmi_sim does not recognise
    /// a retransmitted request (same rqSeq, new session sequence number):
    /// when its chassis script answers slower than our retransmit interval
    /// (a loaded CI machine) it runs the script again, so one power-off
    /// shows up as several `set power 0` lines. Repeats with nothing else
    /// in between, within the lab's off timeout of the first, are folded.
    pub fn power_off_times(&self, j: usize) -> Vec<f64> {
        let log = std::fs::read_to_string(self.bmc_dir(j).join("power.log")).unwrap_or_default();
        let mut offs: Vec<f64> = Vec::new();
        let mut run_started: Option<f64> = None;
        for l in log.lines() {
            let Some((t, what)) = l.split_once(' ') else {
                continue;
            };
            let Ok(t) = t.parse::<f64>() else { continue };
            if what != "set power 0" {
                run_started = None;
                continue;
            }
            match run_started {
                Some(first) if t - first <= LAB_OFF_TIMEOUT_S => {}
                _ => {
                    offs.push(t);
                    run_started = Some(t);
                }
            }
        }
        offs
    }

    /// Whether node J's machine is powered on (its BMC's state).
    pub fn powered(&self, j: usize) -> bool {
        std::fs::read_to_string(self.bmc_dir(j).join("power"))
            .map(|s| s.trim() != "0")
            .unwrap_or(true)
    }

    /// kill -9 node I's corosync and ironfenced (by PID): a crash.
    pub fn crash(&mut self, i: usize) {
        if let Some(mut c) = self.daemons[i - 1].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.cluster.kill(i);
    }

    /// SIGSTOP node I's corosync and ironfenced: a hang.
    pub fn hang(&mut self, i: usize) {
        if let Some(pid) = self.daemon_pid(i) {
            signal(pid, Signal::SIGSTOP);
        }
        self.cluster.stop(i);
    }

    /// SIGCONT both after [`hang`](FenceLab::hang) (if they still exist).
    pub fn resume(&mut self, i: usize) {
        if let Some(pid) = self.daemon_pid(i) {
            signal(pid, Signal::SIGCONT);
        }
        if self.cluster.pid(i).is_some() {
            self.cluster.resume(i);
        }
    }

    /// SIGTERM node I's ironfenced and wait for it to exit.
    pub fn stop_daemon(&mut self, i: usize) -> Option<std::process::ExitStatus> {
        if let Some(pid) = self.daemon_pid(i) {
            signal(pid, Signal::SIGTERM);
        }
        self.wait_daemon_exit(i, Duration::from_secs(15))
    }

    /// Make node J's BMC silent (SIGSTOP its ipmi_sim).
    pub fn silence_bmc(&self, j: usize) {
        signal(self.bmcs[j - 1].id(), Signal::SIGSTOP);
    }

    /// Let node J's BMC answer again after [`silence_bmc`](FenceLab::silence_bmc).
    pub fn wake_bmc(&self, j: usize) {
        signal(self.bmcs[j - 1].id(), Signal::SIGCONT);
    }

    /// Boot node I again after its BMC powered it on: corosync, then
    /// ironfenced (or pacemakerd, with a fresh /run).
    pub fn boot(&mut self, i: usize) {
        for c in [self.daemons[i - 1].take(), self.pacemakers[i - 1].take()]
            .into_iter()
            .flatten()
        {
            let mut c = c;
            let _ = c.kill();
            let _ = c.wait();
        }
        // HA_RSCTMP is a tmpfs on a real node: a boot starts it empty
        let _ = std::fs::remove_dir_all(self.rsctmp(i));
        let _ = std::fs::create_dir_all(self.rsctmp(i));
        self.cluster.restart(i);
        self.cluster
            .wait_members(i, self.opts.nodes, Duration::from_secs(30));
        match self.opts.stack {
            Stack::Ironfence => self.start_daemon(i),
            Stack::Pacemaker => {
                let _ = std::fs::remove_dir_all(self.pcmk_dir(i).join("run"));
                self.start_pacemaker(i);
            }
        }
    }

    fn pcmk_dir(&self, i: usize) -> PathBuf {
        self.node_dir(i).join("pcmk")
    }

    /// Node I's pacemaker.log.
    pub fn pacemaker_log(&self, i: usize) -> String {
        std::fs::read_to_string(self.pcmk_dir(i).join("log/pacemaker.log")).unwrap_or_default()
    }

    fn start_pacemaker(&mut self, i: usize) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lab/pcmk/pcmk-node.sh");
        let out = std::fs::File::create(self.node_dir(i).join("pacemakerd.out")).expect("out");
        let err = out.try_clone().expect("dup");
        let child = Command::new(script)
            .arg(self.cluster.ns(i))
            .arg(self.pcmk_dir(i))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start pacemakerd");
        self.pacemakers[i - 1] = Some(child);
    }

    /// A Pacemaker CLI on node I (in pacemakerd's namespaces).
    pub fn pcs(&self, i: usize, args: &[&str]) -> std::process::Output {
        let pid = self.pacemakers[i - 1]
            .as_ref()
            .map(Child::id)
            .expect("pacemakerd runs on that node");
        Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lab/pcmk/pcmk-run.sh"))
            .arg(pid.to_string())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("pcmk-run.sh")
    }

    /// Fencing on, no quorum = stop, one fence_ipmilan device per node
    /// (never run on the node it fences), loaded with cibadmin on node 1.
    fn configure_pacemaker(&self) {
        let start = Instant::now();
        while !String::from_utf8_lossy(&self.pcs(1, &["crm_mon", "-1"]).stdout).contains("Online:")
        {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "Pacemaker never came up:\n{}",
                self.pacemaker_log(1)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let crm_config = r#"<crm_config><cluster_property_set id="cib-bootstrap-options">
<nvpair id="o-stonith-enabled" name="stonith-enabled" value="true"/>
<nvpair id="o-no-quorum-policy" name="no-quorum-policy" value="stop"/>
<nvpair id="o-dc-deadtime" name="dc-deadtime" value="1s"/>
</cluster_property_set></crm_config>"#;
        let mut resources = String::from("<resources>");
        let mut constraints = String::from("<constraints>");
        for j in 1..=self.opts.nodes {
            let port = BMC_PORT_BASE + j as u16;
            resources.push_str(&format!(
                r#"<primitive id="fence-node{j}" class="stonith" type="fence_ipmilan"><instance_attributes id="fence-node{j}-ia">
<nvpair id="fence-node{j}-ip" name="ip" value="{BMC_ADDR}"/>
<nvpair id="fence-node{j}-ipport" name="ipport" value="{port}"/>
<nvpair id="fence-node{j}-username" name="username" value="{IPMI_USER}"/>
<nvpair id="fence-node{j}-password" name="password" value="{IPMI_PASSWORD}"/>
<nvpair id="fence-node{j}-lanplus" name="lanplus" value="1"/>
<nvpair id="fence-node{j}-cipher" name="cipher" value="3"/>
<nvpair id="fence-node{j}-hostlist" name="pcmk_host_list" value="node{j}"/>
</instance_attributes><operations><op id="fence-node{j}-monitor" name="monitor" interval="60s"/></operations></primitive>"#
            ));
            constraints.push_str(&format!(
                r#"<rsc_location id="fence-node{j}-not-on-node{j}" rsc="fence-node{j}" node="node{j}" score="-INFINITY"/>"#
            ));
        }
        resources.push_str(&self.opts.pcmk_resources);
        resources.push_str("</resources>");
        constraints.push_str(&self.opts.pcmk_constraints);
        constraints.push_str("</constraints>");
        for (scope, xml) in [
            ("crm_config", crm_config.to_string()),
            ("resources", resources),
            ("constraints", constraints),
        ] {
            let out = self.pcs(
                1,
                &[
                    "cibadmin",
                    "--replace",
                    "--scope",
                    scope,
                    "--xml-text",
                    &xml,
                ],
            );
            assert!(
                out.status.success(),
                "cibadmin {scope}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// Wait until node 1's crm_mon shows every node online and every fence device started.
    pub fn wait_pacemaker_ready(&self, limit: Duration) {
        let n = self.opts.nodes;
        let online: Vec<String> = (1..=n).map(|j| format!("node{j}")).collect();
        let want = format!("Online: [ {} ]", online.join(" "));
        let start = Instant::now();
        loop {
            let text =
                String::from_utf8_lossy(&self.pcs(1, &["crm_mon", "-1"]).stdout).into_owned();
            if text.contains(&want) && text.matches("Started").count() >= n {
                return;
            }
            assert!(
                start.elapsed() < limit,
                "Pacemaker not ready within {limit:?}:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for FenceLab {
    fn drop(&mut self) {
        for c in &mut self.services {
            let _ = c.kill();
            let _ = c.wait();
        }
        for c in self.pacemakers.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for c in self.daemons.iter_mut().flatten() {
            signal(c.id(), Signal::SIGCONT);
            let _ = c.kill();
            let _ = c.wait();
        }
        for b in &mut self.bmcs {
            signal(b.id(), Signal::SIGCONT);
            let _ = b.kill();
            let _ = b.wait();
        }
        if std::env::var_os("IRONFENCE_KEEP_LAB").is_some() {
            let d = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"));
            eprintln!("IRONFENCE_KEEP_LAB: kept {}", d.keep().display());
        }
    }
}
