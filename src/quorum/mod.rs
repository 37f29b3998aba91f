//! Quorum: what the local corosync says about membership and quorum, as a
//! stream of [`QuorumView`]s, plus a liveness stamp that stops when corosync
//! stops answering.
//!
//! Owns the [`QuorumSource`] trait and its implementations:
//! - [`Corosync`](corosync::Corosync) (cargo feature `corosync`): the quorum,
//!   votequorum and cmap services of the local corosync 3 through
//!   rust-corosync, on a thread of its own (see [`corosync`]);
//! - [`Static`]: a fixed view that is always alive, for clusters without
//!   corosync;
//! - [`Manual`]: a fake for unit tests, driven through a [`ManualControl`].
//!
//! Called by the node daemon (its quorum servant) and by `ironfence quorum`.
//! It is a leaf: it knows nothing of the fencer, the daemon or the CLI, it
//! never prints, and it never decides what losing quorum means — it reports.
//!
//! ```text
//!   QuorumSource::watch(interval, shutdown)
//!        |
//!        +-> view:  watch::Receiver<QuorumView>   changed by corosync's notifications
//!        +-> alive: watch::Receiver<Instant>      stamped each `interval` a round trip answered
//!        +-> timing: Option<Timing>               totem token / consensus in force
//!        +-> handle: WatchHandle                  join after `shutdown` turned true
//! ```
//!
//! Reading it safely: a view with `connected == false` is not quorate; an
//! `alive` stamp older than a few intervals means corosync hangs (its IPC
//! calls block), and the view is then stale whatever it says.

#[cfg(feature = "corosync")]
pub mod corosync;
mod fixed;
mod manual;

pub use fixed::Static;
pub use manual::{Manual, ManualControl};

use serde::{Deserialize, Serialize, Serializer};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// Shortest accepted watch interval (each one costs an IPC round trip).
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);
/// Longest accepted watch interval.
pub const MAX_INTERVAL: Duration = Duration::from_secs(60);

/// What the local corosync says about quorum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumView {
    /// false: the local corosync is gone or was not reached (counts as not quorate).
    pub connected: bool,
    pub quorate: bool,
    /// Node ids of the current membership, sorted.
    pub members: Vec<u32>,
    /// This node's id (`runtime.votequorum.this_node_id`).
    pub this_node: Option<u32>,
    /// votequorum's two_node is in effect (a lone survivor stays quorate).
    pub two_node: bool,
    pub expected_votes: Option<u32>,
    /// Ring id: (node id, sequence).
    pub ring: Option<(u32, u64)>,
}

impl QuorumView {
    /// The view when corosync cannot be reached: not quorate, no members.
    /// `this_node` is the last id corosync gave us, if any.
    pub fn disconnected(this_node: Option<u32>) -> QuorumView {
        QuorumView {
            connected: false,
            quorate: false,
            members: Vec::new(),
            this_node,
            two_node: false,
            expected_votes: None,
            ring: None,
        }
    }

    /// A connected, quorate view of `members` (sorted here) seen from `this_node`.
    pub fn quorate(this_node: Option<u32>, members: Vec<u32>) -> QuorumView {
        let mut members = members;
        members.sort_unstable();
        members.dedup();
        QuorumView {
            connected: true,
            quorate: true,
            expected_votes: u32::try_from(members.len()).ok(),
            members,
            this_node,
            two_node: false,
            ring: None,
        }
    }

    /// Quorate and connected: the only state in which this node may act as
    /// part of the cluster.
    pub fn has_quorum(&self) -> bool {
        self.connected && self.quorate
    }
}

/// corosync's totem timing (`runtime.config.totem.token` / `.consensus` from cmap).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Timing {
    /// Token timeout: a silent member is suspected after this long.
    #[serde(rename = "token_ms", serialize_with = "millis")]
    pub token: Duration,
    /// Consensus timeout: the new membership forms within this after the token is lost.
    #[serde(rename = "consensus_ms", serialize_with = "millis")]
    pub consensus: Duration,
}

impl Timing {
    /// How long corosync takes at most to notice a lost member and report
    /// the new membership: token + consensus.
    pub fn membership_change(&self) -> Duration {
        self.token + self.consensus
    }
}

fn millis<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A running quorum watch (see the module docs).
#[derive(Debug)]
pub struct QuorumWatch {
    /// Totem timing, when the source has one (corosync).
    pub timing: Option<Timing>,
    /// The latest view; the first one was read before `watch` returned. Its
    /// sender is dropped when the watcher ends.
    pub view: watch::Receiver<QuorumView>,
    /// Stamped every interval in which a cheap round trip to the source
    /// answered. A hung corosync stops the stamps (the view is then stale).
    pub alive: watch::Receiver<Instant>,
    /// The watcher itself: wait for it after turning `shutdown` true.
    pub handle: WatchHandle,
}

/// The running watcher of a [`QuorumWatch`].
#[derive(Debug)]
pub struct WatchHandle {
    /// Its sender is dropped when the watcher ends.
    done: watch::Receiver<()>,
}

/// The watcher's side of a [`WatchHandle`]: dropped when it ends.
#[derive(Debug)]
pub(crate) struct DoneGuard(#[allow(dead_code)] watch::Sender<()>);

impl WatchHandle {
    pub(crate) fn new() -> (WatchHandle, DoneGuard) {
        let (tx, rx) = watch::channel(());
        (WatchHandle { done: rx }, DoneGuard(tx))
    }

    /// Whether the watcher has ended.
    pub fn is_finished(&self) -> bool {
        self.done.has_changed().is_err()
    }

    /// Wait until the watcher has ended (turn `shutdown` true first). A
    /// watcher blocked in a call to a hung corosync ends only when that call
    /// returns: bound this wait with [`join_timeout`](WatchHandle::join_timeout).
    pub async fn join(mut self) {
        while self.done.changed().await.is_ok() {}
    }

    /// [`join`](WatchHandle::join), giving up after `limit`; true if it ended.
    pub async fn join_timeout(self, limit: Duration) -> bool {
        tokio::time::timeout(limit, self.join()).await.is_ok()
    }
}

/// Where quorum comes from.
pub trait QuorumSource: Send + 'static {
    /// Connect, read the first view, and watch until `shutdown` turns true.
    /// `interval` paces the liveness round trip (and, for corosync, the
    /// reconnection attempts after it went away, and how soon its thread
    /// notices `shutdown`).
    ///
    /// Fails when the first view cannot be read (corosync not running, no
    /// permission, no answer). May block the caller until then — corosync:
    /// up to its connect timeout, 5 s by default — so call it at start-up or
    /// from `spawn_blocking`. [`Static`] and [`Manual`] must be called from
    /// inside a tokio runtime.
    fn watch(
        self: Box<Self>,
        interval: Duration,
        shutdown: watch::Receiver<bool>,
    ) -> Result<QuorumWatch, QuorumError>;
}

/// Why quorum could not be watched.
#[derive(Debug, thiserror::Error)]
pub enum QuorumError {
    /// This binary was built without the `corosync` feature.
    #[error(
        "this ironfence was built without corosync support: rebuild it with \
         `cargo build --release --features corosync` (needs libcorosync-common-dev, \
         libquorum-dev, libvotequorum-dev, libcmap-dev, libcfg-dev and libcpg-dev), \
         or use no quorum source"
    )]
    NotBuiltIn,
    /// The local corosync could not be reached.
    #[error(
        "cannot reach the local corosync ({step}: {cause}): is corosync running on this node? \
         Its IPC is per network namespace, so ironfence must run in the namespace corosync runs in"
    )]
    Unreachable { step: &'static str, cause: String },
    /// corosync refused the connection.
    #[error(
        "corosync refused ironfence's connection ({step}: {cause}): run ironfence as root, \
         or as the user/group allowed by corosync.conf's uidgid section"
    )]
    PermissionDenied { step: &'static str, cause: String },
    /// corosync accepted the connection but did not answer in time.
    #[error(
        "the local corosync did not answer {step} within {waited:?}: it may be hung or \
         overloaded (check `corosync-quorumtool -s` and corosync's log)"
    )]
    NoAnswer {
        step: &'static str,
        waited: Duration,
    },
    /// corosync answered something unusable.
    #[error(
        "corosync gave an unusable answer to {step}: {cause} (check its configuration and log)"
    )]
    Protocol { step: &'static str, cause: String },
    /// The interval is out of range.
    #[error(
        "quorum watch interval {0:?} is out of range: use {MIN_INTERVAL:?} to {MAX_INTERVAL:?}"
    )]
    BadInterval(Duration),
    /// The source needs a tokio runtime and was started outside one.
    #[error(
        "the quorum watcher must be started from inside a tokio runtime (a bug in the caller)"
    )]
    NoRuntime,
    /// The watcher thread could not be started.
    #[error("cannot start the quorum watcher thread: {0} (out of memory or threads?)")]
    Thread(std::io::Error),
}

/// Whether this build can talk to corosync (the `corosync` cargo feature).
pub const fn corosync_available() -> bool {
    cfg!(feature = "corosync")
}

/// The local corosync as a quorum source; without the `corosync` feature,
/// [`QuorumError::NotBuiltIn`] saying how to rebuild.
pub fn corosync_source() -> Result<Box<dyn QuorumSource>, QuorumError> {
    #[cfg(feature = "corosync")]
    {
        Ok(Box::new(corosync::Corosync::new()))
    }
    #[cfg(not(feature = "corosync"))]
    {
        Err(QuorumError::NotBuiltIn)
    }
}

/// Refuse intervals outside [`MIN_INTERVAL`]..=[`MAX_INTERVAL`].
pub(crate) fn check_interval(interval: Duration) -> Result<(), QuorumError> {
    if (MIN_INTERVAL..=MAX_INTERVAL).contains(&interval) {
        Ok(())
    } else {
        Err(QuorumError::BadInterval(interval))
    }
}

/// Stamp `alive` every `interval` while `responding` is true, until
/// `shutdown` turns true (or its sender goes away). Runs on tokio, so a
/// paused test clock drives it.
pub(crate) async fn stamp_alive(
    interval: Duration,
    alive: watch::Sender<Instant>,
    mut responding: watch::Receiver<bool>,
    mut shutdown: watch::Receiver<bool>,
    _done: DoneGuard,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut controlled = true;
    loop {
        if *shutdown.borrow() {
            return;
        }
        tokio::select! {
            _ = tick.tick() => {
                if *responding.borrow() {
                    alive.send_replace(Instant::now());
                }
            }
            changed = shutdown.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            // The controller gone: keep its last word.
            changed = responding.changed(), if controlled => controlled = changed.is_ok(),
        }
    }
}

/// The tokio runtime of the caller, or [`QuorumError::NoRuntime`].
pub(crate) fn runtime() -> Result<tokio::runtime::Handle, QuorumError> {
    tokio::runtime::Handle::try_current().map_err(|_| QuorumError::NoRuntime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timing_serializes_as_milliseconds() {
        let t = Timing {
            token: Duration::from_millis(1000),
            consensus: Duration::from_millis(1200),
        };
        assert_eq!(
            serde_json::to_string(&t).ok().as_deref(),
            Some(r#"{"token_ms":1000,"consensus_ms":1200}"#)
        );
        assert_eq!(t.membership_change(), Duration::from_millis(2200));
    }

    #[test]
    fn disconnected_view_is_never_quorate() {
        let v = QuorumView::disconnected(Some(2));
        assert!(!v.quorate && !v.connected && !v.has_quorum());
        assert_eq!(v.this_node, Some(2));
        assert!(v.members.is_empty());
    }

    #[test]
    fn quorate_view_sorts_members() {
        let v = QuorumView::quorate(Some(1), vec![3, 1, 2, 2]);
        assert_eq!(v.members, vec![1, 2, 3]);
        assert_eq!(v.expected_votes, Some(3));
        assert!(v.has_quorum());
    }

    #[test]
    fn interval_bounds() {
        assert!(check_interval(Duration::ZERO).is_err());
        assert!(check_interval(Duration::from_millis(500)).is_ok());
        assert!(check_interval(Duration::from_secs(61)).is_err());
    }

    #[test]
    fn corosync_constructor_matches_the_feature() {
        assert_eq!(corosync_available(), corosync_source().is_ok());
        if !corosync_available() {
            let msg = corosync_source().err().map(|e| e.to_string());
            assert!(msg.is_some_and(|m| m.contains("--features corosync")));
        }
    }
}
