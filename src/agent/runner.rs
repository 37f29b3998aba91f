//! Runs an external ClusterLabs fence agent through the fence agent API.
//!
//! Every parameter, the password included, goes on the agent's stdin as
//! `key=value` lines; argv is just the program, so nothing secret shows in
//! `/proc/PID/cmdline`, and the environment is reduced to `PATH`/`LANG`.
//! The agent runs in its own process group, which is killed when the
//! deadline passes, so a hung agent (or its ipmitool child) never lingers.

use super::AgentAction;
use crate::secret::Secret;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

const SEARCH: &[&str] = &["/usr/sbin", "/sbin", "/usr/local/sbin"];

/// Find an agent by name (or accept an existing path).
pub fn locate(agent: &str) -> Option<PathBuf> {
    if agent.contains('/') {
        let p = PathBuf::from(agent);
        return p.is_file().then_some(p);
    }
    let path_dirs = std::env::var("PATH").unwrap_or_default();
    SEARCH
        .iter()
        .map(PathBuf::from)
        .chain(std::env::split_paths(&path_dirs))
        .map(|d| d.join(agent))
        .find(|p| p.is_file())
}

/// Installed `fence_*` agents (sorted, unique names).
pub fn installed() -> Vec<String> {
    let path_dirs = std::env::var("PATH").unwrap_or_default();
    let mut names: Vec<String> = SEARCH
        .iter()
        .map(PathBuf::from)
        .chain(std::env::split_paths(&path_dirs))
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with("fence_") && !n.contains('.'))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// One call of an agent.
pub struct AgentCall<'a> {
    pub agent: &'a Path,
    pub action: AgentAction,
    /// Non-secret parameters, in order.
    pub params: &'a [(String, String)],
    pub password: Option<&'a Secret>,
    pub timeout: Duration,
}

/// What the agent did.
#[derive(Debug, Clone)]
pub struct AgentOutput {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl AgentOutput {
    /// The last meaningful stderr line, for error messages.
    pub fn reason(&self) -> String {
        let line = self
            .stderr
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.contains("DeprecationWarning") && !l.starts_with("from "))
            .unwrap_or("");
        if line.is_empty() {
            format!("exit code {}", self.code)
        } else {
            format!("exit code {}: {line}", self.code)
        }
    }
}

/// Running the agent failed before it could answer.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The agent could not be started.
    #[error("cannot start fence agent {agent}: {source}")]
    Spawn {
        agent: PathBuf,
        source: std::io::Error,
    },
    /// The agent did not finish in time and was killed.
    #[error("fence agent {agent} -o {action} did not finish within {timeout:?} and was killed")]
    Timeout {
        agent: PathBuf,
        action: AgentAction,
        timeout: Duration,
    },
    /// The agent was killed by a signal.
    #[error("fence agent {agent} -o {action} was killed by a signal")]
    Signal { agent: PathBuf, action: AgentAction },
}

/// The stdin text for a call (pure; the password line included).
pub fn stdin_text(
    action: AgentAction,
    params: &[(String, String)],
    password: Option<&Secret>,
) -> String {
    let mut s = format!("action={}\n", action.as_str());
    for (k, v) in params {
        s.push_str(&format!("{k}={}\n", v.replace('\n', " ")));
    }
    if let Some(pw) = password {
        s.push_str(&format!("password={}\n", pw.expose()));
    }
    s
}

/// Run the agent once.
pub async fn run(call: AgentCall<'_>) -> Result<AgentOutput, RunError> {
    let started = Instant::now();
    let mut cmd = tokio::process::Command::new(call.agent);
    cmd.env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("LANG", "C.UTF-8")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|source| RunError::Spawn {
        agent: call.agent.to_path_buf(),
        source,
    })?;
    // Whatever happens to this future (finished, timed out, dropped by a
    // caller's deadline or an aborted task), the agent's whole process
    // group goes with it: no orphaned ipmitool switching power later.
    let _group = GroupKill(child.id());
    let input = stdin_text(call.action, call.params, call.password);
    if let Some(mut stdin) = child.stdin.take() {
        // An agent that exits without reading stdin is not an error here.
        let _ = stdin.write_all(input.as_bytes()).await;
        drop(stdin);
    }
    let out = tokio::time::timeout(call.timeout, child.wait_with_output()).await;
    match out {
        Err(_) => Err(RunError::Timeout {
            agent: call.agent.to_path_buf(),
            action: call.action,
            timeout: call.timeout,
        }),
        Ok(Err(source)) => Err(RunError::Spawn {
            agent: call.agent.to_path_buf(),
            source,
        }),
        Ok(Ok(o)) => {
            let code = o.status.code().ok_or_else(|| RunError::Signal {
                agent: call.agent.to_path_buf(),
                action: call.action,
            })?;
            Ok(AgentOutput {
                code,
                stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
                elapsed: started.elapsed(),
            })
        }
    }
}

/// Kills the process group of the agent when dropped.
struct GroupKill(Option<u32>);

impl Drop for GroupKill {
    fn drop(&mut self) {
        if let Some(pid) = self.0 {
            kill_group(pid);
        }
    }
}

fn kill_group(pid: u32) {
    use nix::sys::signal::{killpg, Signal};
    use nix::unistd::Pid;
    if let Ok(raw) = i32::try_from(pid) {
        // The group may already be gone; nothing to do then.
        let _ = killpg(Pid::from_raw(raw), Signal::SIGKILL);
    }
}

/// Targets from a `list` action's output: one per line, `plug[,alias]`;
/// both tokens count as targets (as Pacemaker tokenises them).
pub fn parse_list(stdout: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in stdout.lines() {
        for tok in line.split([',', ' ', '\t']) {
            let tok = tok.trim();
            if !tok.is_empty() && !out.iter().any(|o| o == tok) {
                out.push(tok.to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdin_carries_password_last() {
        let t = stdin_text(
            AgentAction::Off,
            &[
                ("ip".into(), "127.0.0.1".into()),
                ("port".into(), "n1".into()),
            ],
            Some(&Secret::new("s3cret")),
        );
        assert_eq!(t, "action=off\nip=127.0.0.1\nport=n1\npassword=s3cret\n");
    }

    #[test]
    fn list_tokens() {
        assert_eq!(parse_list("a,alias-a\nb\n\n"), vec!["a", "alias-a", "b"]);
    }

    /// The password reaches the agent on stdin only: not argv, not environment.
    #[tokio::test]
    async fn secret_only_on_stdin() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("fence_spy");
        let spy = dir.path().join("spy");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\ncat > {0}.stdin\ntr '\\0' ' ' < /proc/$$/cmdline > {0}.argv\nenv > {0}.env\n",
                spy.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let secret = Secret::new("pa55-w0rd-XYZ");
        let out = run(AgentCall {
            agent: &script,
            action: AgentAction::Off,
            params: &[("ip".into(), "127.0.0.1".into())],
            password: Some(&secret),
            timeout: Duration::from_secs(5),
        })
        .await
        .unwrap();
        assert_eq!(out.code, 0);
        let read = |ext: &str| std::fs::read_to_string(format!("{}.{ext}", spy.display())).unwrap();
        assert!(read("stdin").contains("password=pa55-w0rd-XYZ"));
        assert!(!read("argv").contains("pa55"));
        assert!(!read("env").contains("pa55"));
    }

    /// An agent's children die with it when the caller gives up.
    #[tokio::test]
    async fn dropped_call_kills_the_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("fence_forks");
        let marker = dir.path().join("late");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\n(sleep 1; touch {}) &\nsleep 30\n",
                marker.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let call = run(AgentCall {
            agent: &script,
            action: AgentAction::On,
            params: &[],
            password: None,
            timeout: Duration::from_secs(60),
        });
        // The caller's own deadline drops the future mid-run.
        assert!(tokio::time::timeout(Duration::from_millis(300), call)
            .await
            .is_err());
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(!marker.exists(), "an orphaned child of the agent ran on");
    }

    #[tokio::test]
    async fn timeout_kills() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("fence_hang");
        std::fs::write(&script, "#!/bin/sh\nsleep 30\n").unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let t = Instant::now();
        let r = run(AgentCall {
            agent: &script,
            action: AgentAction::Status,
            params: &[],
            password: None,
            timeout: Duration::from_millis(300),
        })
        .await;
        assert!(matches!(r, Err(RunError::Timeout { .. })));
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}
