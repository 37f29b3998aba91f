//! What `ironfence cluster status` and `cluster watch` show: the types the
//! daemon answers with, and their crm_mon-like text.

use super::message::FenceNote;
use crate::quorum::QuorumView;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// A fence in progress, as the coordinator announced it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fencing {
    pub by: String,
    pub started_ms: u64,
}

/// One configured node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeView {
    pub name: String,
    pub id: u32,
    /// online, joining, refused (config differs), UNCLEAN (online|offline),
    /// lost (checking quorum), offline (left cleanly|fenced|...), offline.
    pub state: String,
    /// Its ironfenced's PID, when it is a member.
    pub pid: Option<u32>,
    /// Member since, or left at.
    pub since_ms: Option<u64>,
    pub unclean_since_ms: Option<u64>,
    /// Why it is UNCLEAN.
    pub reason: Option<String>,
    pub fencing: Option<Fencing>,
    /// Failed fences since the last success.
    pub failures: u32,
    pub last_error: Option<String>,
    pub last_fence: Option<FenceNote>,
}

/// One line of `cluster watch`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterEvent {
    pub seq: u64,
    pub ts_ms: u64,
    /// joined, left, leaving, lost, unclean, unknown, fencing, fenced,
    /// confirmed, fence-failed, quorum, coordinator, active, refused, ...
    pub kind: String,
    pub node: Option<String>,
    pub text: String,
}

/// The whole picture from one member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// corosync, or none (no [cluster] section: a fencer only).
    pub membership: String,
    pub group: String,
    pub this_node: String,
    pub this_id: Option<u32>,
    /// joining, active, refused, self-fencing, static.
    pub state: String,
    pub quorum: Option<QuorumView>,
    pub coordinator: Option<String>,
    pub nodes: Vec<NodeView>,
    /// Events after the `since` of the request.
    pub events: Vec<ClusterEvent>,
    /// The newest event's number (ask for events after it next time).
    pub last_seq: u64,
}

/// Local time of a wall-clock timestamp, `HH:MM:SS.mmm` (UTC).
pub fn clock(ms: u64) -> String {
    let s = ms / 1000;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        (s / 3600) % 24,
        (s / 60) % 60,
        s % 60,
        ms % 1000
    )
}

impl ClusterStatus {
    /// crm_mon-like text.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Cluster: group {}, membership {}, this node {}{} ({})",
            self.group,
            self.membership,
            self.this_node,
            self.this_id
                .map(|i| format!(" (id {i})"))
                .unwrap_or_default(),
            self.state
        );
        match &self.quorum {
            Some(q) if q.connected => {
                let _ = writeln!(
                    out,
                    "Quorum: {}, members {:?}, expected votes {}{}",
                    if q.quorate { "quorate" } else { "NOT quorate" },
                    q.members,
                    q.expected_votes
                        .map(|v| v.to_string())
                        .unwrap_or_else(|| "?".into()),
                    if q.two_node { ", two_node" } else { "" }
                );
            }
            Some(_) => {
                let _ = writeln!(out, "Quorum: local corosync unreachable (NOT quorate)");
            }
            None => {
                let _ = writeln!(out, "Quorum: none (no membership configured)");
            }
        }
        let _ = writeln!(
            out,
            "Coordinator: {}",
            self.coordinator.as_deref().unwrap_or("none")
        );
        let _ = writeln!(out, "\nNodes:");
        for n in &self.nodes {
            let mut line = format!("  {:<16} id {:<4} {}", n.name, n.id, n.state);
            if let Some(since) = n.unclean_since_ms {
                let _ = write!(line, " since {}", clock(since));
            }
            if let Some(r) = &n.reason {
                let _ = write!(line, " ({r})");
            }
            if let Some(f) = &n.fencing {
                let _ = write!(
                    line,
                    ", fencing in progress by {} since {}",
                    f.by,
                    clock(f.started_ms)
                );
            }
            if n.failures > 0 {
                let _ = write!(
                    line,
                    ", {} failed fence(s): {}",
                    n.failures,
                    n.last_error.as_deref().unwrap_or("?")
                );
            }
            if let Some(f) = &n.last_fence {
                let _ = write!(
                    line,
                    "; last {} at {} by {}{}",
                    if f.result == "confirmed" {
                        "confirmed down"
                    } else if f.ok {
                        "fenced"
                    } else {
                        "fence FAILED"
                    },
                    clock(f.finished_ms),
                    f.by,
                    f.level
                        .map(|l| format!(" (level {l}: {})", f.devices.join("+")))
                        .unwrap_or_default()
                );
            }
            let _ = writeln!(out, "{line}");
        }
        let fencing: Vec<&NodeView> = self.nodes.iter().filter(|n| n.fencing.is_some()).collect();
        if !fencing.is_empty() {
            let _ = writeln!(out, "\nFencing in progress:");
            for n in fencing {
                if let Some(f) = &n.fencing {
                    let _ = writeln!(
                        out,
                        "  {} by {} since {}",
                        n.name,
                        f.by,
                        clock(f.started_ms)
                    );
                }
            }
        }
        out
    }
}

impl ClusterEvent {
    /// One `cluster watch` line.
    pub fn line(&self) -> String {
        format!("{} {:<12} {}", clock(self.ts_ms), self.kind, self.text)
    }
}
