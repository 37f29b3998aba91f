//! What the resource managers of the members say to each other, inside the
//! cluster's `resources` message (CPG: every member sees every message in
//! the same order, so every member keeps the same picture).
//!
//! ```text
//!  Report   a node's own resources (after its probes, after every action
//!           and failure): the only source of what runs where
//!  Actions  the coordinator's next steps (each to one node)
//!  Admin    a human's change (ban, move, clear, standby, target role, cleanup)
//! ```

use super::executor::OcfAction;
use super::score::Score;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A resource's state on one node, as that node knows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RscState {
    #[default]
    Stopped,
    Started,
    Promoted,
    /// A start or monitor failed: it must be stopped (recovered).
    Failed,
    /// Its stop failed: only a fence of the node makes it safe.
    StopFailed,
}

impl RscState {
    /// It may be running (must be stopped before it runs elsewhere).
    pub fn active(self) -> bool {
        self != RscState::Stopped
    }
    pub fn healthy(self) -> bool {
        matches!(self, RscState::Started | RscState::Promoted)
    }
}

/// One resource on the reporting node (default: stopped, never failed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalRsc {
    pub state: RscState,
    pub failcount: u32,
    pub last_failure_ms: Option<u64>,
    pub last_error: Option<String>,
    /// The promotion score its agent set here (promotable clones).
    #[serde(default)]
    pub promotion: Option<Score>,
    /// It failed while promoted: demote before it stops (and until then
    /// it holds a promoted slot).
    #[serde(default)]
    pub demote_first: bool,
}

/// An action id: the coordinator that issued it and its counter.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OpId {
    pub by: String,
    pub n: u64,
}

/// One step for one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub id: OpId,
    pub node: String,
    /// The primitive (base).
    pub rsc: String,
    pub action: OcfAction,
    /// Clone instance number, for the agent's environment.
    pub instance: Option<u32>,
}

/// A node's report of its own resources.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// The reporting daemon's nonce (reports of an earlier process of the
    /// node do not count).
    pub nonce: u64,
    /// All its probes ran.
    pub probed: bool,
    /// It is stopping: move everything away.
    pub shutting_down: bool,
    pub resources: BTreeMap<String, LocalRsc>,
    /// Orders finished since its last report.
    pub done: Vec<OpId>,
    /// The admin state it knows (newcomers adopt the newest).
    pub admin: Admin,
}

/// What humans changed (crm_resource / crm_attribute's constraints and
/// node attributes), replicated in every member.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Admin {
    /// Bumped by every change; the higher wins when views merge.
    pub version: u64,
    /// (resource, node) -> score: `move` adds INFINITY, `ban` -INFINITY.
    pub constraints: BTreeMap<String, BTreeMap<String, i64>>,
    pub standby: BTreeSet<String>,
    pub maintenance: BTreeSet<String>,
    /// Resources (config ids) asked to stay stopped (target-role Stopped).
    pub stopped: BTreeSet<String>,
}

/// A human's change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum AdminChange {
    Move {
        rsc: String,
        node: String,
    },
    Ban {
        rsc: String,
        node: String,
    },
    Clear {
        rsc: String,
    },
    Standby {
        node: String,
        on: bool,
    },
    Maintenance {
        node: String,
        on: bool,
    },
    TargetRole {
        rsc: String,
        started: bool,
    },
    /// Forget failures (of `rsc`, on `node` or everywhere) and probe again.
    Cleanup {
        rsc: Option<String>,
        node: Option<String>,
    },
}

impl Admin {
    /// Apply a change (every member, in delivery order).
    pub fn apply(&mut self, c: &AdminChange) {
        self.version += 1;
        match c {
            AdminChange::Move { rsc, node } => {
                let e = self.constraints.entry(rsc.clone()).or_default();
                e.retain(|_, s| *s < 0);
                e.insert(node.clone(), super::score::INFINITY);
            }
            AdminChange::Ban { rsc, node } => {
                self.constraints
                    .entry(rsc.clone())
                    .or_default()
                    .insert(node.clone(), -super::score::INFINITY);
            }
            AdminChange::Clear { rsc } => {
                self.constraints.remove(rsc);
            }
            AdminChange::Standby { node, on } => {
                if *on {
                    self.standby.insert(node.clone());
                } else {
                    self.standby.remove(node);
                }
            }
            AdminChange::Maintenance { node, on } => {
                if *on {
                    self.maintenance.insert(node.clone());
                } else {
                    self.maintenance.remove(node);
                }
            }
            AdminChange::TargetRole { rsc, started } => {
                if *started {
                    self.stopped.remove(rsc);
                } else {
                    self.stopped.insert(rsc.clone());
                }
            }
            AdminChange::Cleanup { .. } => {}
        }
    }
}

/// One resource-manager message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ResMsg {
    Report(Report),
    Actions { orders: Vec<Order> },
    Admin(AdminChange),
}
