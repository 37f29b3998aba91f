//! OCF resource agents (Debian's `resource-agents`, Pacemaker's own): the
//! `class:provider:type` names, where an agent lives under OCF_ROOT, and
//! its `meta-data` (the parameters it takes, which are required), read
//! with the same parser as fence agents' metadata.
//!
//! Called by `config check` and daemon start (to refuse resources whose
//! agent is missing or whose parameters the agent does not know); the
//! executor that runs start/stop/monitor comes with the next step.

use crate::agent::metadata::AgentMetadata;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Where OCF agents live unless OCF_ROOT says otherwise.
pub const DEFAULT_OCF_ROOT: &str = "/usr/lib/ocf";

/// `ocf:PROVIDER:TYPE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentName {
    pub provider: String,
    pub kind: String,
}

impl AgentName {
    /// Parse `ocf:provider:type`; `Err` says what is wrong.
    pub fn parse(s: &str) -> Result<AgentName, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let ok = |p: &str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        match parts.as_slice() {
            ["ocf", provider, kind] if ok(provider) && ok(kind) => Ok(AgentName {
                provider: provider.to_string(),
                kind: kind.to_string(),
            }),
            [class, ..] if *class != "ocf" => Err(format!(
                "agent class `{class}` is not supported yet: use ocf:PROVIDER:TYPE (e.g. ocf:heartbeat:IPaddr2)"
            )),
            _ => Err(format!(
                "`{s}` is not an agent name: write ocf:PROVIDER:TYPE (e.g. ocf:heartbeat:IPaddr2)"
            )),
        }
    }

    /// The agent's executable under `root`.
    pub fn path(&self, root: &Path) -> PathBuf {
        root.join("resource.d")
            .join(&self.provider)
            .join(&self.kind)
    }
}

/// The OCF root in force (OCF_ROOT, else the default).
pub fn ocf_root() -> PathBuf {
    std::env::var_os("OCF_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_OCF_ROOT))
}

/// Run `AGENT meta-data` (at most `limit`) and parse it.
pub fn metadata(root: &Path, name: &AgentName, limit: Duration) -> Result<AgentMetadata, String> {
    let path = name.path(root);
    let meta = std::fs::metadata(&path).map_err(|_| {
        format!(
            "agent ocf:{}:{} is not installed ({} does not exist): install the package that provides it (resource-agents, pacemaker)",
            name.provider,
            name.kind,
            path.display()
        )
    })?;
    use std::os::unix::fs::PermissionsExt;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Err(format!("{} is not an executable agent", path.display()));
    }
    let mut child = Command::new(&path)
        .arg("meta-data")
        .env("OCF_ROOT", root)
        .env("OCF_FUNCTIONS_DIR", root.join("lib/heartbeat"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run {} meta-data: {e}", path.display()))?;
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{} meta-data did not answer within {limit:?}",
                    path.display()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("{} meta-data: {e}", path.display())),
        }
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{} meta-data: {e}", path.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    AgentMetadata::parse(&text)
        .map_err(|e| format!("{} meta-data is unreadable: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            AgentName::parse("ocf:heartbeat:IPaddr2"),
            Ok(AgentName {
                provider: "heartbeat".into(),
                kind: "IPaddr2".into()
            })
        );
        let e = AgentName::parse("systemd:httpd").err().unwrap_or_default();
        assert!(e.contains("not supported yet"), "{e}");
        let e = AgentName::parse("ocf:heartbeat").err().unwrap_or_default();
        assert!(e.contains("ocf:PROVIDER:TYPE"), "{e}");
        assert!(AgentName::parse("ocf:../x:y").is_err());
    }

    #[test]
    fn a_missing_agent_says_what_to_install() {
        let n = AgentName::parse("ocf:nobody:Nothing").unwrap_or_else(|e| panic!("{e}"));
        let e = metadata(Path::new("/nonexistent"), &n, Duration::from_secs(1))
            .err()
            .unwrap_or_default();
        assert!(e.contains("not installed"), "{e}");
    }
}
