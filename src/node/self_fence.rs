//! What a node does to itself when it must die: a poison pill in its slot,
//! lost quorum, or a servant that stalled past the watchdog timeout.
//!
//! [`Sysrq`] is the real thing: optionally `sync(2)`, then `b` (reboot),
//! `o` (power off) or `c` (crash dump) written to `/proc/sysrq-trigger`.
//! Writes to that file work whatever `kernel.sysrq` says (the mask only
//! gates the keyboard). It refuses to run when `IRONFENCE_FORBID_HARDWARE`
//! is set, which the test harness sets for every process on a development
//! or CI host: only QEMU guests ever reach a real sysrq.
//!
//! [`Recorder`] appends one JSON line per self-fence to a file and returns:
//! the node daemon then stops as a dead node would (no more feeding, no
//! disarm). Tests and the demo use it.

use crate::config::SelfFenceAction;
use std::io::Write;
use std::path::PathBuf;

use crate::watchdog::{hardware_forbidden, FORBID_HARDWARE_ENV as FORBID_ENV};

/// The self-fence could not be carried out: the watchdog is the backstop.
#[derive(Debug, thiserror::Error)]
pub enum SelfFenceError {
    /// The host forbids it (tests on a developer or CI machine).
    #[error("self-fence by sysrq refused: {FORBID_ENV} is set on this host (tests run here; only QEMU guests may reset)")]
    Forbidden,
    /// The trigger could not be written.
    #[error("cannot write `{key}` to /proc/sysrq-trigger: {source}; the armed watchdog will reset this node")]
    Sysrq { key: char, source: std::io::Error },
    /// The kernel did not act on the trigger.
    #[error("/proc/sysrq-trigger accepted `{key}` but this node is still running; the armed watchdog will reset it")]
    StillAlive { key: char },
    /// The recorder's file could not be written.
    #[error("cannot record the self-fence in {path}: {source}")]
    Record {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What the node does to itself.
pub trait SelfFence: Send + Sync {
    /// Carry out `action`. The real implementation does not return when it
    /// works; the recorder returns Ok after recording.
    fn fence(&self, action: SelfFenceAction, reason: &str) -> Result<(), SelfFenceError>;
    /// For logs and status.
    fn describe(&self) -> String;
}

/// The kernel's magic SysRq keys.
pub struct Sysrq {
    pub flush: bool,
}

impl Sysrq {
    fn key(action: SelfFenceAction) -> char {
        match action {
            SelfFenceAction::Reboot => 'b',
            SelfFenceAction::Off => 'o',
            SelfFenceAction::Crashdump => 'c',
        }
    }
}

impl SelfFence for Sysrq {
    fn fence(&self, action: SelfFenceAction, reason: &str) -> Result<(), SelfFenceError> {
        let key = Sysrq::key(action);
        if hardware_forbidden() {
            return Err(SelfFenceError::Forbidden);
        }
        tracing::error!(
            action = action.as_str(),
            reason,
            flush = self.flush,
            "SELF-FENCE: sysrq `{key}`"
        );
        if self.flush {
            nix::unistd::sync();
        }
        std::fs::OpenOptions::new()
            .write(true)
            .open("/proc/sysrq-trigger")
            .and_then(|mut f| f.write_all(&[key as u8]))
            .map_err(|source| SelfFenceError::Sysrq { key, source })?;
        // A reset takes effect inside the write; give the kernel a moment
        // for the slower paths before calling it a failure.
        std::thread::sleep(std::time::Duration::from_secs(2));
        Err(SelfFenceError::StillAlive { key })
    }

    fn describe(&self) -> String {
        format!("sysrq (flush: {})", self.flush)
    }
}

/// Records self-fences in a JSON-lines file instead of acting.
pub struct Recorder {
    pub file: PathBuf,
    pub node: String,
}

impl SelfFence for Recorder {
    fn fence(&self, action: SelfFenceAction, reason: &str) -> Result<(), SelfFenceError> {
        let t_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let line = serde_json::json!({
            "t_ms": t_ms as u64,
            "node": self.node,
            "action": action.as_str(),
            "reason": reason,
        });
        tracing::error!(action = action.as_str(), reason, file = %self.file.display(), "SELF-FENCE (recorded)");
        let record = |path: &PathBuf| -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?;
            writeln!(f, "{line}")?;
            f.sync_all()
        };
        record(&self.file).map_err(|source| SelfFenceError::Record {
            path: self.file.clone(),
            source,
        })
    }

    fn describe(&self) -> String {
        format!("recorder ({})", self.file.display())
    }
}

/// The self-fence the config asks for.
pub fn from_config(cfg: &crate::config::SelfFenceConfig, node: &str) -> Box<dyn SelfFence> {
    match &cfg.method {
        crate::config::SelfFenceMethod::Sysrq => Box::new(Sysrq { flush: cfg.flush }),
        crate::config::SelfFenceMethod::Recorder(f) => Box::new(Recorder {
            file: f.clone(),
            node: node.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorder_appends_one_line_per_fence() {
        let dir = tempfile::tempdir().unwrap();
        let r = Recorder {
            file: dir.path().join("sf.jsonl"),
            node: "n1".into(),
        };
        r.fence(SelfFenceAction::Reboot, "pill").unwrap();
        r.fence(SelfFenceAction::Off, "quorum lost").unwrap();
        let text = std::fs::read_to_string(dir.path().join("sf.jsonl")).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["action"], "reboot");
        assert_eq!(lines[1]["reason"], "quorum lost");
        assert_eq!(lines[1]["node"], "n1");
    }

    #[test]
    fn sysrq_keys() {
        assert_eq!(Sysrq::key(SelfFenceAction::Reboot), 'b');
        assert_eq!(Sysrq::key(SelfFenceAction::Off), 'o');
        assert_eq!(Sysrq::key(SelfFenceAction::Crashdump), 'c');
    }

    #[test]
    fn sysrq_refuses_where_hardware_is_forbidden() {
        // Setting the guard only ever makes this process safer.
        std::env::set_var(FORBID_ENV, "1");
        let e = Sysrq { flush: false }
            .fence(SelfFenceAction::Reboot, "test")
            .unwrap_err();
        assert!(matches!(e, SelfFenceError::Forbidden), "{e}");
    }
}
