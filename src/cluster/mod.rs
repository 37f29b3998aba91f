//! Cluster membership on corosync CPG, and automatic fencing of lost members.
//!
//! Owns: the [`machine`] (what every member knows about every node, and
//! what to do next: a pure state machine), the wire [`message`]s, the
//! [`status`] that `ironfence cluster status` shows, the CPG connection
//! ([`cpg`], feature `corosync`) and the [`runner`] task that ties them to
//! the fencer and the local quorum view in `ironfenced`.
//!
//! ```text
//!   corosync CPG (ordered confchg + messages)     votequorum (quorum view)
//!          |                                               |
//!          v                                               v
//!   cpg thread --GroupEvent--> runner --inputs--> Machine --actions--> runner
//!          ^                     |                                       |
//!          +------ mcast --------+<-- Send / FenceResult ----------------+
//!                                +--> fencer.fence(lost node) (coordinator only)
//!                                +--> fencer.record_remote(another member's fence)
//! ```
//!
//! No home-made election, heartbeat or consensus: agreement is CPG's
//! virtual synchrony (every member sees the same configuration changes and
//! messages in the same order) plus votequorum. The coordinator is a pure
//! function of that view: the lowest active node id without an unresolved
//! loss. It never fences from a partition without quorum, never reports a
//! node fenced that the fencer did not observe (or a human confirm), and
//! keeps a node UNCLEAN until then.
//!
//! Direction: `cluster -> fencer, quorum, config`; the daemon (`node`) hosts it.

#[cfg(feature = "corosync")]
pub mod cpg;
pub mod machine;
pub mod message;
pub mod runner;
pub mod status;

pub use machine::{Action, Machine, Member, NodeCondition, Presence, Reason, View};
pub use status::{ClusterEvent, ClusterStatus, NodeView};

/// The cluster membership could not start or go on.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// This binary was built without the `corosync` feature.
    #[error(
        "this ironfenced was built without corosync support, which [cluster] needs: rebuild it with \
         `cargo build --release --features corosync`, or remove [cluster] to run a fencer only"
    )]
    NotBuiltIn,
    /// The local corosync's CPG service could not be used.
    #[error(
        "cannot join CPG group `{group}` ({step}: {cause}): is corosync running on this node, \
         and does ironfenced run as root (or a user corosync.conf's uidgid allows) in corosync's network namespace?"
    )]
    Join {
        group: String,
        step: &'static str,
        cause: String,
    },
    /// corosync says this node has another id than the config gives it.
    #[error(
        "corosync says this node's id is {corosync}, but [[node]] `{name}` has id {config}: \
         set the node's id to its corosync nodeid (or fix daemon.node_name)"
    )]
    WrongId {
        name: String,
        config: u32,
        corosync: u32,
    },
    /// The cluster refused this member (config differs, a second daemon).
    #[error("{0}")]
    Refused(String),
    /// The CPG thread could not be started.
    #[error("cannot start the CPG thread: {0}")]
    Thread(std::io::Error),
}
