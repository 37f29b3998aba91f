//! The ClusterLabs fence agent API, both sides of it.
//!
//! * [`runner`] runs an external `fence_*` agent: options on stdin as
//!   `key=value` lines (secrets never in argv or the environment), the
//!   action, a deadline, and the exit code mapped.
//! * [`options`] parses what an agent receives (command line and stdin),
//!   the way fence-agents' `fencing.py` does: `-`/`_` spellings, `1/yes/on/true`.
//! * [`metadata`] writes and reads the `<resource-agent>` XML that Pacemaker
//!   asks for (`-o metadata`), valid against fence-agents' `metadata.rng`.
//! * [`spec`] the parameter tables of our own agents (`fence_ironfence_*`).
//!
//! This module is a leaf: it knows nothing of the fencer, the daemon or any
//! power device. `cli::agent` drives a `PowerDevice` with it.

pub mod metadata;
pub mod options;
pub mod runner;
pub mod spec;

use serde::{Deserialize, Serialize};
use std::fmt;

/// fence-agents exit codes (`fencing.py` `EC_*`).
pub mod exit {
    pub const OK: i32 = 0;
    pub const GENERIC_ERROR: i32 = 1;
    /// Defined by fencing.py but never used by it (bad arguments exit 1);
    /// we do the same, since 2 also means "off" to a status caller.
    pub const BAD_ARGS: i32 = 2;
    pub const LOGIN_DENIED: i32 = 3;
    pub const CONNECTION_LOST: i32 = 4;
    pub const TIMED_OUT: i32 = 5;
    pub const WAITING_ON: i32 = 6;
    pub const WAITING_OFF: i32 = 7;
    pub const STATUS: i32 = 8;
    pub const PASSWORD_MISSING: i32 = 10;
    /// `status` action: the plug is on.
    pub const STATUS_ON: i32 = 0;
    /// `status` action: the plug is off.
    pub const STATUS_OFF: i32 = 2;
}

/// An action of the fence agent API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AgentAction {
    On,
    Off,
    Reboot,
    Status,
    List,
    ListStatus,
    Monitor,
    Metadata,
    ValidateAll,
    Manpage,
    /// Pulse a diagnostic interrupt (NMI): fence_ipmilan's `diag`.
    Diag,
}

impl AgentAction {
    pub fn parse(s: &str) -> Option<AgentAction> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "on" | "enable" => AgentAction::On,
            "off" | "disable" => AgentAction::Off,
            "reboot" => AgentAction::Reboot,
            "status" => AgentAction::Status,
            "list" => AgentAction::List,
            "list-status" => AgentAction::ListStatus,
            "monitor" => AgentAction::Monitor,
            "metadata" | "meta-data" => AgentAction::Metadata,
            "validate-all" => AgentAction::ValidateAll,
            "manpage" => AgentAction::Manpage,
            "diag" => AgentAction::Diag,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            AgentAction::On => "on",
            AgentAction::Off => "off",
            AgentAction::Reboot => "reboot",
            AgentAction::Status => "status",
            AgentAction::List => "list",
            AgentAction::ListStatus => "list-status",
            AgentAction::Monitor => "monitor",
            AgentAction::Metadata => "metadata",
            AgentAction::ValidateAll => "validate-all",
            AgentAction::Manpage => "manpage",
            AgentAction::Diag => "diag",
        }
    }
    /// Actions every agent of ours supports, in metadata order (the ipmi
    /// agent adds `diag`).
    pub const ALL: [AgentAction; 10] = [
        AgentAction::On,
        AgentAction::Off,
        AgentAction::Reboot,
        AgentAction::Status,
        AgentAction::List,
        AgentAction::ListStatus,
        AgentAction::Monitor,
        AgentAction::Metadata,
        AgentAction::ValidateAll,
        AgentAction::Manpage,
    ];
}

impl fmt::Display for AgentAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
