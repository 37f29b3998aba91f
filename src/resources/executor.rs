//! The executor: runs one OCF agent action the way Pacemaker's executor
//! (pacemaker-execd) does, and says what its exit code means.
//!
//! ```text
//!  AGENT ACTION   with  OCF_ROOT, OCF_RA_VERSION_MAJOR/MINOR = 1/1,
//!                       OCF_RESOURCE_INSTANCE / _TYPE / _PROVIDER,
//!                       OCF_RESKEY_<param> for every parameter,
//!                       OCF_RESKEY_CRM_meta_timeout / _interval (ms), _on_node,
//!                       OCF_RESKEY_CRM_meta_clone* for clone instances,
//!                       OCF_EXIT_REASON_PREFIX = "ocf-exit-reason:"
//!  stdin /dev/null, own process group; past its timeout the whole group
//!  is SIGKILLed and the result is "timed out" (never a success)
//! ```
//!
//! Called by the resource task in `ironfenced` (node/), one action per
//! call. It never interprets a result beyond the OCF exit codes; what a
//! failure leads to (restart, move, fence) is the manager's business.

use super::ocf::AgentName;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

/// How much of an agent's output is kept (the exit reason is in it).
const OUTPUT_LIMIT: usize = 16 * 1024;
/// What agents print before the reason of a failure.
pub const EXIT_REASON_PREFIX: &str = "ocf-exit-reason:";

/// The actions the manager asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OcfAction {
    Start,
    Stop,
    Monitor,
    Promote,
    Demote,
}

impl OcfAction {
    pub fn as_str(self) -> &'static str {
        match self {
            OcfAction::Start => "start",
            OcfAction::Stop => "stop",
            OcfAction::Monitor => "monitor",
            OcfAction::Promote => "promote",
            OcfAction::Demote => "demote",
        }
    }
}

impl std::fmt::Display for OcfAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The OCF exit codes (OCF 1.1, Pacemaker's names), plus what the executor
/// itself can end with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OcfStatus {
    /// 0
    Success,
    /// 1
    GenericError,
    /// 2
    InvalidArguments,
    /// 3
    Unimplemented,
    /// 4
    InsufficientPrivileges,
    /// 5
    NotInstalled,
    /// 6
    NotConfigured,
    /// 7
    NotRunning,
    /// 8: running in the promoted role.
    RunningPromoted,
    /// 9: failed in the promoted role.
    FailedPromoted,
    /// 190
    Degraded,
    /// 191
    DegradedPromoted,
    /// Any other exit code.
    Other(i32),
    /// Killed after its timeout.
    TimedOut,
    /// Killed by a signal it did not get from us.
    Signalled(i32),
    /// It could not be started at all.
    CannotRun,
}

impl OcfStatus {
    pub fn from_code(code: i32) -> OcfStatus {
        match code {
            0 => OcfStatus::Success,
            1 => OcfStatus::GenericError,
            2 => OcfStatus::InvalidArguments,
            3 => OcfStatus::Unimplemented,
            4 => OcfStatus::InsufficientPrivileges,
            5 => OcfStatus::NotInstalled,
            6 => OcfStatus::NotConfigured,
            7 => OcfStatus::NotRunning,
            8 => OcfStatus::RunningPromoted,
            9 => OcfStatus::FailedPromoted,
            190 => OcfStatus::Degraded,
            191 => OcfStatus::DegradedPromoted,
            other => OcfStatus::Other(other),
        }
    }

    /// Pacemaker's name of the code, for status lines.
    pub fn text(self) -> String {
        match self {
            OcfStatus::Success => "ok".into(),
            OcfStatus::GenericError => "error".into(),
            OcfStatus::InvalidArguments => "invalid parameter".into(),
            OcfStatus::Unimplemented => "unimplemented feature".into(),
            OcfStatus::InsufficientPrivileges => "insufficient privileges".into(),
            OcfStatus::NotInstalled => "not installed".into(),
            OcfStatus::NotConfigured => "not configured".into(),
            OcfStatus::NotRunning => "not running".into(),
            OcfStatus::RunningPromoted => "promoted".into(),
            OcfStatus::FailedPromoted => "promoted (failed)".into(),
            OcfStatus::Degraded => "degraded".into(),
            OcfStatus::DegradedPromoted => "promoted (degraded)".into(),
            OcfStatus::Other(c) => format!("exit code {c}"),
            OcfStatus::TimedOut => "timed out".into(),
            OcfStatus::Signalled(s) => format!("killed by signal {s}"),
            OcfStatus::CannotRun => "could not be run".into(),
        }
    }

    /// What a monitor (or probe) result says about the resource.
    pub fn observed(self) -> Observed {
        match self {
            OcfStatus::Success | OcfStatus::Degraded => Observed::Running,
            OcfStatus::RunningPromoted | OcfStatus::DegradedPromoted => Observed::Promoted,
            OcfStatus::NotRunning => Observed::Stopped,
            _ => Observed::Failed,
        }
    }
}

/// The agents' PATH (the daemon puts its crm_attribute shim first).
pub const AGENT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A resource's state as one monitor saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    Running,
    Promoted,
    Stopped,
    Failed,
}

/// Which clone instance an action is for (Pacemaker's CRM_meta_clone*).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloneMeta {
    pub instance: u32,
    pub clone_max: u32,
    pub clone_node_max: u32,
    pub promoted_max: Option<u32>,
}

/// One action to run.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub root: PathBuf,
    pub agent: AgentName,
    pub action: OcfAction,
    /// OCF_RESOURCE_INSTANCE.
    pub instance: String,
    pub params: BTreeMap<String, String>,
    pub timeout: Duration,
    /// The recurring monitor's interval (zero for everything else).
    pub interval: Duration,
    pub node: String,
    pub clone: Option<CloneMeta>,
    /// Extra environment (HA_RSCTMP for a per-node lab, ...).
    pub env: Vec<(String, String)>,
}

/// What an action ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub status: OcfStatus,
    pub elapsed: Duration,
    /// The agent's `ocf-exit-reason:` line, else its last output line.
    pub reason: Option<String>,
}

impl Invocation {
    /// The environment Pacemaker's executor gives the agent.
    pub fn environment(&self) -> Vec<(String, String)> {
        let ms = |d: Duration| d.as_millis().to_string();
        let mut env = vec![
            ("OCF_ROOT".to_string(), self.root.display().to_string()),
            ("OCF_RA_VERSION_MAJOR".into(), "1".into()),
            ("OCF_RA_VERSION_MINOR".into(), "1".into()),
            ("OCF_RESOURCE_INSTANCE".into(), self.instance.clone()),
            ("OCF_RESOURCE_TYPE".into(), self.agent.kind.clone()),
            ("OCF_RESOURCE_PROVIDER".into(), self.agent.provider.clone()),
            ("OCF_EXIT_REASON_PREFIX".into(), EXIT_REASON_PREFIX.into()),
            ("OCF_RESKEY_CRM_meta_timeout".into(), ms(self.timeout)),
            ("OCF_RESKEY_CRM_meta_interval".into(), ms(self.interval)),
            ("OCF_RESKEY_CRM_meta_on_node".into(), self.node.clone()),
            ("OCF_RESKEY_CRM_meta_on_node_uuid".into(), self.node.clone()),
        ];
        if let Some(c) = &self.clone {
            env.push(("OCF_RESKEY_CRM_meta_clone".into(), c.instance.to_string()));
            env.push((
                "OCF_RESKEY_CRM_meta_clone_max".into(),
                c.clone_max.to_string(),
            ));
            env.push((
                "OCF_RESKEY_CRM_meta_clone_node_max".into(),
                c.clone_node_max.to_string(),
            ));
            if let Some(p) = c.promoted_max {
                env.push(("OCF_RESKEY_CRM_meta_promotable".into(), "true".into()));
                env.push(("OCF_RESKEY_CRM_meta_promoted_max".into(), p.to_string()));
                env.push(("OCF_RESKEY_CRM_meta_master_max".into(), p.to_string()));
                env.push(("OCF_RESKEY_CRM_meta_promoted_node_max".into(), "1".into()));
                env.push(("OCF_RESKEY_CRM_meta_master_node_max".into(), "1".into()));
            }
        }
        for (k, v) in &self.params {
            env.push((format!("OCF_RESKEY_{k}"), v.clone()));
        }
        env.extend(self.env.iter().cloned());
        env
    }

    fn path(&self) -> PathBuf {
        self.agent.path(&self.root)
    }
}

/// Run the action to its end or its timeout.
pub async fn run(inv: &Invocation) -> Outcome {
    let started = Instant::now();
    let path = inv.path();
    let mut cmd = tokio::process::Command::new(&path);
    cmd.arg(inv.action.as_str())
        .env_clear()
        .env("PATH", AGENT_PATH)
        .envs(inv.environment())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Outcome {
                status: OcfStatus::CannotRun,
                elapsed: started.elapsed(),
                reason: Some(format!("cannot run {}: {e}", path.display())),
            }
        }
    };
    let pgid = child.id();
    let (mut out, mut err) = (child.stdout.take(), child.stderr.take());
    let read = async {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let ra = async {
            if let Some(o) = out.as_mut() {
                let _ = o.read_to_end(&mut a).await;
            }
        };
        let rb = async {
            if let Some(e) = err.as_mut() {
                let _ = e.read_to_end(&mut b).await;
            }
        };
        tokio::join!(ra, rb);
        (a, b)
    };
    let both = async {
        let ((o, e), status) = tokio::join!(read, child.wait());
        (o, e, status)
    };
    match tokio::time::timeout(inv.timeout, both).await {
        Ok((o, e, status)) => {
            let status = match status {
                Ok(s) => match (s.code(), std::os::unix::process::ExitStatusExt::signal(&s)) {
                    (Some(c), _) => OcfStatus::from_code(c),
                    (None, Some(sig)) => OcfStatus::Signalled(sig),
                    (None, None) => OcfStatus::CannotRun,
                },
                Err(_) => OcfStatus::CannotRun,
            };
            Outcome {
                status,
                elapsed: started.elapsed(),
                reason: reason(&o, &e),
            }
        }
        Err(_) => {
            kill_group(pgid);
            Outcome {
                status: OcfStatus::TimedOut,
                elapsed: started.elapsed(),
                reason: Some(format!(
                    "{} {} did not finish within {:?}: killed",
                    inv.agent_label(),
                    inv.action,
                    inv.timeout
                )),
            }
        }
    }
}

impl Invocation {
    fn agent_label(&self) -> String {
        format!("ocf:{}:{}", self.agent.provider, self.agent.kind)
    }
}

fn kill_group(pgid: Option<u32>) {
    if let Some(pid) = pgid.and_then(|p| i32::try_from(p).ok()) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// The exit reason: the last `ocf-exit-reason:` line, else the last line
/// of stderr, else of stdout.
fn reason(out: &[u8], err: &[u8]) -> Option<String> {
    let clip =
        |b: &[u8]| String::from_utf8_lossy(&b[b.len().saturating_sub(OUTPUT_LIMIT)..]).into_owned();
    let (out, err) = (clip(out), clip(err));
    let lines = || err.lines().chain(out.lines());
    lines()
        .filter_map(|l| l.split_once(EXIT_REASON_PREFIX).map(|(_, r)| r.trim()))
        .next_back()
        .map(str::to_string)
        .or_else(|| {
            err.lines()
                .chain(out.lines())
                .map(str::trim)
                .rfind(|l| !l.is_empty())
                .map(str::to_string)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_what_a_monitor_means() {
        assert_eq!(OcfStatus::from_code(7), OcfStatus::NotRunning);
        assert_eq!(OcfStatus::from_code(8).observed(), Observed::Promoted);
        assert_eq!(OcfStatus::from_code(9).observed(), Observed::Failed);
        assert_eq!(OcfStatus::from_code(0).observed(), Observed::Running);
        assert_eq!(OcfStatus::from_code(190).observed(), Observed::Running);
        assert_eq!(OcfStatus::TimedOut.observed(), Observed::Failed);
        assert_eq!(OcfStatus::from_code(42), OcfStatus::Other(42));
    }

    #[test]
    fn the_exit_reason_wins_over_other_output() {
        let r = reason(
            b"starting\n",
            b"noise\nocf-exit-reason:IP address (the ip parameter) is mandatory\nmore\n",
        );
        assert_eq!(
            r.as_deref(),
            Some("IP address (the ip parameter) is mandatory")
        );
        assert_eq!(reason(b"a\nlast\n\n", b"").as_deref(), Some("last"));
        assert_eq!(reason(b"", b""), None);
    }

    #[test]
    fn environment_is_pacemakers() {
        let inv = Invocation {
            root: "/usr/lib/ocf".into(),
            agent: AgentName::parse("ocf:heartbeat:Dummy").unwrap_or_else(|e| panic!("{e}")),
            action: OcfAction::Monitor,
            instance: "web".into(),
            params: [("state".to_string(), "/tmp/x".to_string())].into(),
            timeout: Duration::from_secs(20),
            interval: Duration::from_secs(10),
            node: "node1".into(),
            clone: Some(CloneMeta {
                instance: 2,
                clone_max: 3,
                clone_node_max: 1,
                promoted_max: None,
            }),
            env: vec![],
        };
        let env: BTreeMap<String, String> = inv.environment().into_iter().collect();
        assert_eq!(env["OCF_RESKEY_state"], "/tmp/x");
        assert_eq!(env["OCF_RESOURCE_INSTANCE"], "web");
        assert_eq!(env["OCF_RESKEY_CRM_meta_timeout"], "20000");
        assert_eq!(env["OCF_RESKEY_CRM_meta_interval"], "10000");
        assert_eq!(env["OCF_RESKEY_CRM_meta_clone"], "2");
        assert_eq!(env["OCF_RA_VERSION_MAJOR"], "1");
    }
}
