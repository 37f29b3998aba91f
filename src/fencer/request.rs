//! What can be asked of the fencer and what it answers.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// A fencing action on a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FenceAction {
    Off,
    On,
    Reboot,
}

impl fmt::Display for FenceAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FenceAction::Off => "off",
            FenceAction::On => "on",
            FenceAction::Reboot => "reboot",
        })
    }
}

/// One power step of an action (a reboot is off, then on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Step {
    Off,
    On,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::Off => "off",
            Step::On => "on",
        })
    }
}

/// A request to fence (or unfence) a node through the topology.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FenceRequest {
    pub target: String,
    pub action: FenceAction,
    /// Who asked: `cli:uid=0`, `agent`, `demo`, ...
    pub origin: String,
    /// Extra delay before the first attempt (`--delay`).
    pub delay: Duration,
    /// Succeed at once if the target was fenced within this long (`--tolerance`).
    pub tolerance: Duration,
    /// Deadline of the whole request; `None` = the configured fencing timeout.
    pub timeout: Option<Duration>,
    /// Bypass the fence-storm guard (humans only).
    pub force: bool,
}

impl FenceRequest {
    pub fn new(target: &str, action: FenceAction, origin: &str) -> Self {
        FenceRequest {
            target: target.to_string(),
            action,
            origin: origin.to_string(),
            delay: Duration::ZERO,
            tolerance: Duration::ZERO,
            timeout: None,
            force: false,
        }
    }
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FenceResult {
    /// Power read back as off (for off and reboot).
    Fenced,
    /// Power read back as on (for on).
    PoweredOn,
    /// A human declared the node down.
    Confirmed,
    /// Already fenced within the tolerance window; nothing done.
    Tolerated,
    /// Every level failed.
    Failed,
    /// The deadline passed.
    TimedOut,
    /// Refused by the fence-storm guard.
    Refused,
    /// The daemon stopped before the request finished.
    Interrupted,
}

impl FenceResult {
    /// Whether the caller may act as if the request succeeded.
    pub fn ok(self) -> bool {
        matches!(
            self,
            FenceResult::Fenced
                | FenceResult::PoweredOn
                | FenceResult::Confirmed
                | FenceResult::Tolerated
        )
    }
}

/// The answer to a fence request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FenceOutcome {
    pub request: u64,
    pub target: String,
    pub action: FenceAction,
    pub result: FenceResult,
    pub level: Option<u8>,
    pub devices: Vec<String>,
    pub elapsed_ms: u64,
    /// One line an operator can act on.
    pub message: String,
    pub warning: Option<String>,
}
