//! [`Corosync`]: the local corosync 3 as a [`QuorumSource`], through
//! rust-corosync (cargo feature `corosync`; links libquorum, libvotequorum
//! and libcmap).
//!
//! What it uses:
//! - quorum (model v1): `getquorate`, and quorum + nodelist notifications
//!   after `trackstart(Changes)` — which also sends the current state at once,
//!   so the first view is real before [`QuorumSource::watch`] returns;
//! - votequorum: `getinfo` of this node (`VOTEQUORUM_INFO_TWONODE`, expected
//!   votes), re-read after each of its notifications;
//! - cmap: `runtime.votequorum.this_node_id`, `runtime.config.totem.token`
//!   and `runtime.config.totem.consensus`, read at each connection.
//!
//! rust-corosync is synchronous and its callbacks are plain functions, so
//! one dedicated thread owns the connection: it `poll`s the library's file
//! descriptors (timeout: the interval), dispatches, and publishes into tokio
//! watch channels. The callbacks queue what they saw in a thread-local that
//! the thread drains after each dispatch.
//!
//! ```text
//!            open ok                      dispatch error / HUP / round trip failed
//!   [start] --------> [connected] ------------------------------------> [lost]
//!      | open fails    |  poll fds <= interval, dispatch -> view          |  view: connected=false,
//!      v               |  every interval: getquorate ok -> alive stamp    |        quorate=false
//!   watch() errors     +<------------------- open ok (every interval) ----+
//! ```
//!
//! A hung corosync (SIGSTOP, overload) makes the library's calls block: the
//! thread then stops stamping `alive` and cannot end until the call returns,
//! which is why [`WatchHandle::join`] may need a bound. corosync's IPC is per
//! network namespace: the process must run in corosync's namespace.

use super::WatchHandle;
use super::{check_interval, QuorumError, QuorumSource, QuorumView, QuorumWatch, Timing};
use nix::poll::{PollFd, PollFlags, PollTimeout};
use rust_corosync::{cmap, quorum, votequorum, CsError, DispatchFlags, NodeId, TrackFlags};
use std::cell::RefCell;
use std::os::fd::{BorrowedFd, RawFd};
use std::sync::mpsc;
use std::time::{Duration, Instant as StdInstant};
use tokio::sync::watch;
use tokio::time::Instant;

/// How long `watch` waits by default for corosync's first answers.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

const KEY_THIS_NODE: &str = "runtime.votequorum.this_node_id";
const KEY_TOKEN: &str = "runtime.config.totem.token";
const KEY_CONSENSUS: &str = "runtime.config.totem.consensus";

/// The local corosync (see the module docs).
#[derive(Debug, Clone)]
pub struct Corosync {
    connect_timeout: Duration,
}

impl Default for Corosync {
    fn default() -> Self {
        Corosync::new()
    }
}

impl Corosync {
    /// The local corosync, with [`DEFAULT_CONNECT_TIMEOUT`].
    pub fn new() -> Corosync {
        Corosync {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }

    /// How long `watch` waits for the first view before it fails.
    pub fn connect_timeout(mut self, limit: Duration) -> Corosync {
        self.connect_timeout = limit;
        self
    }
}

impl QuorumSource for Corosync {
    fn watch(
        self: Box<Self>,
        interval: Duration,
        shutdown: watch::Receiver<bool>,
    ) -> Result<QuorumWatch, QuorumError> {
        check_interval(interval)?;
        let runtime = tokio::runtime::Handle::try_current().ok();
        let (view_tx, mut view) = watch::channel(QuorumView::disconnected(None));
        let (alive_tx, alive) = watch::channel(Instant::now());
        let (handle, done) = WatchHandle::new();
        let (first_tx, first_rx) = mpsc::sync_channel(1);
        let connect_timeout = self.connect_timeout;
        std::thread::Builder::new()
            .name("quorum-corosync".into())
            .spawn(move || {
                // tokio's clock (paused in tests) for the alive stamps
                let _runtime = runtime.as_ref().map(|r| r.enter());
                let _done = done;
                let watcher = Watcher {
                    interval,
                    shutdown,
                    view: view_tx,
                    alive: alive_tx,
                };
                watcher.run(connect_timeout, first_tx);
            })
            .map_err(QuorumError::Thread)?;
        let timing = match first_rx.recv_timeout(connect_timeout) {
            Ok(Ok(timing)) => timing,
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                // The thread is blocked in corosync; it ends when it sees
                // nobody waits for it any more.
                return Err(QuorumError::NoAnswer {
                    step: "the first quorum view",
                    waited: connect_timeout,
                });
            }
        };
        view.borrow_and_update();
        Ok(QuorumWatch {
            timing,
            view,
            alive,
            handle,
        })
    }
}

/// The watcher thread's state.
struct Watcher {
    interval: Duration,
    shutdown: watch::Receiver<bool>,
    view: watch::Sender<QuorumView>,
    alive: watch::Sender<Instant>,
}

impl Watcher {
    fn stopping(&self) -> bool {
        // a dropped shutdown sender counts as shutdown, so does nobody listening
        self.shutdown.has_changed().is_err()
            || *self.shutdown.borrow()
            || (self.view.is_closed() && self.alive.is_closed())
    }

    fn publish(&self, view: &QuorumView) {
        self.view.send_if_modified(|v| {
            if v == view {
                false
            } else {
                *v = view.clone();
                true
            }
        });
    }

    fn stamp(&self) {
        self.alive.send_replace(Instant::now());
    }

    fn run(
        self,
        connect_timeout: Duration,
        first: mpsc::SyncSender<Result<Option<Timing>, QuorumError>>,
    ) {
        let mut session = match Session::open(connect_timeout) {
            Ok(s) => {
                // stamp first: whoever sees the view sees corosync alive
                self.stamp();
                self.publish(&s.view);
                if first.send(Ok(s.timing)).is_err() {
                    return; // `watch` gave up waiting
                }
                s
            }
            Err(e) => {
                let _ = first.send(Err(e));
                return;
            }
        };
        drop(first);
        let mut this_node = session.view.this_node;
        let mut next_round_trip = StdInstant::now() + self.interval;
        loop {
            if self.stopping() {
                return;
            }
            let wait = next_round_trip.saturating_duration_since(StdInstant::now());
            let mut result = session.wait_and_dispatch(wait).map(|changed| {
                if changed {
                    self.publish(&session.view);
                }
            });
            if result.is_ok() && StdInstant::now() >= next_round_trip {
                result = session.round_trip().map(|()| self.stamp());
                next_round_trip = StdInstant::now() + self.interval;
            }
            if let Err(e) = result {
                tracing::warn!(
                    cause = %e,
                    interval = ?self.interval,
                    "lost the local corosync: reporting not quorate, reconnecting every interval"
                );
                this_node = session.view.this_node.or(this_node);
                drop(session);
                self.publish(&QuorumView::disconnected(this_node));
                match self.reconnect(connect_timeout) {
                    Some(s) => session = s,
                    None => return,
                }
                next_round_trip = StdInstant::now() + self.interval;
            }
        }
    }

    /// Try every interval until corosync answers again, or shutdown (None).
    fn reconnect(&self, connect_timeout: Duration) -> Option<Session> {
        let mut attempts = 0u64;
        loop {
            std::thread::sleep(self.interval);
            if self.stopping() {
                return None;
            }
            attempts += 1;
            match Session::open(connect_timeout) {
                Ok(s) => {
                    tracing::info!(
                        attempts,
                        quorate = s.view.quorate,
                        members = ?s.view.members,
                        "reconnected to the local corosync"
                    );
                    self.stamp();
                    self.publish(&s.view);
                    return Some(s);
                }
                Err(e) => tracing::debug!(attempts, cause = %e, "corosync still unreachable"),
            }
        }
    }
}

/// What a library callback saw; queued per thread, drained after dispatch.
enum Event {
    Quorum {
        quorate: bool,
        ring: (u32, u64),
        members: Vec<u32>,
    },
    Nodelist {
        ring: (u32, u64),
        members: Vec<u32>,
    },
    /// A votequorum notification: re-read this node's votequorum info.
    Votequorum,
    ExpectedVotes(u32),
}

thread_local! {
    static EVENTS: RefCell<Vec<Event>> = const { RefCell::new(Vec::new()) };
}

fn push(event: Event) {
    EVENTS.with(|q| q.borrow_mut().push(event));
}

fn take_events() -> Vec<Event> {
    EVENTS.with(|q| std::mem::take(&mut *q.borrow_mut()))
}

fn ids(nodes: Vec<NodeId>) -> Vec<u32> {
    let mut ids: Vec<u32> = nodes.into_iter().map(u32::from).collect();
    ids.sort_unstable();
    ids
}

fn on_quorum(_: &quorum::Handle, quorate: bool, ring: quorum::RingId, members: Vec<NodeId>) {
    push(Event::Quorum {
        quorate,
        ring: (u32::from(ring.nodeid), ring.seq),
        members: ids(members),
    });
}

fn on_nodelist(
    _: &quorum::Handle,
    ring: quorum::RingId,
    members: Vec<NodeId>,
    _joined: Vec<NodeId>,
    _left: Vec<NodeId>,
) {
    push(Event::Nodelist {
        ring: (u32::from(ring.nodeid), ring.seq),
        members: ids(members),
    });
}

fn on_vq_quorum(_: &votequorum::Handle, _: u64, _: bool, _: Vec<votequorum::Node>) {
    push(Event::Votequorum);
}

fn on_vq_nodelist(_: &votequorum::Handle, _: u64, _: votequorum::RingId, _: Vec<NodeId>) {
    push(Event::Votequorum);
}

fn on_vq_expected(_: &votequorum::Handle, _: u64, expected: u32) {
    push(Event::ExpectedVotes(expected));
}

/// A library error as an operator-readable one.
fn cs_error(step: &'static str, e: CsError) -> QuorumError {
    let cause = format!("{e}");
    match e {
        CsError::CsErrAccess | CsError::CsErrSecurity => {
            QuorumError::PermissionDenied { step, cause }
        }
        _ => QuorumError::Unreachable { step, cause },
    }
}

/// A u32 cmap key, None when absent or of another type.
fn cmap_u32(handle: &cmap::Handle, key: &str) -> Option<u32> {
    match cmap::get(handle, key) {
        Ok(cmap::Data::UInt32(v)) => Some(v),
        Ok(other) => {
            tracing::warn!(key, value = %other, "unexpected cmap value type");
            None
        }
        Err(e) => {
            tracing::debug!(key, cause = %e, "cmap key not readable");
            None
        }
    }
}

/// One connection to the local corosync's quorum and votequorum services.
struct Session {
    quorum: quorum::Handle,
    quorum_fd: RawFd,
    votequorum: Option<(votequorum::Handle, RawFd)>,
    view: QuorumView,
    timing: Option<Timing>,
}

impl Session {
    /// Connect, read ids and timing, start tracking and wait (up to `limit`)
    /// for the first membership notifications.
    fn open(limit: Duration) -> Result<Session, QuorumError> {
        let deadline = StdInstant::now() + limit;
        take_events(); // nothing from an earlier connection

        let cm = cmap::initialize(cmap::Map::Icmap).map_err(|e| cs_error("cmap_initialize", e))?;
        let this_node = cmap_u32(&cm, KEY_THIS_NODE);
        let timing = match (cmap_u32(&cm, KEY_TOKEN), cmap_u32(&cm, KEY_CONSENSUS)) {
            (Some(token), Some(consensus)) => Some(Timing {
                token: Duration::from_millis(token.into()),
                consensus: Duration::from_millis(consensus.into()),
            }),
            _ => None,
        };
        drop(cm);

        let model = quorum::ModelData::ModelV1(quorum::Model1Data {
            flags: quorum::Model1Flags::None,
            quorum_notification_fn: Some(on_quorum),
            nodelist_notification_fn: Some(on_nodelist),
        });
        let (q, _) = quorum::initialize(&model, 0).map_err(|e| cs_error("quorum_initialize", e))?;
        let quorate = quorum::getquorate(&q).map_err(|e| cs_error("quorum_getquorate", e))?;
        quorum::trackstart(&q, TrackFlags::Changes)
            .map_err(|e| cs_error("quorum_trackstart", e))?;
        let quorum_fd = quorum::fd_get(&q).map_err(|e| cs_error("quorum_fd_get", e))?;

        let callbacks = votequorum::Callbacks {
            quorum_notification_fn: Some(on_vq_quorum),
            nodelist_notification_fn: Some(on_vq_nodelist),
            expectedvotes_notification_fn: Some(on_vq_expected),
        };
        // Without votequorum (another quorum provider) there is no two_node
        // or expected votes, but quorum itself still works.
        let votequorum = match votequorum::initialize(&callbacks) {
            Ok(vq) => {
                votequorum::trackstart(&vq, 0, TrackFlags::Changes)
                    .map_err(|e| cs_error("votequorum_trackstart", e))?;
                let fd = votequorum::fd_get(&vq).map_err(|e| cs_error("votequorum_fd_get", e))?;
                Some((vq, fd))
            }
            Err(e @ (CsError::CsErrAccess | CsError::CsErrSecurity)) => {
                return Err(cs_error("votequorum_initialize", e))
            }
            Err(e) => {
                tracing::warn!(cause = %e, "no votequorum service: two_node and expected votes unknown");
                None
            }
        };

        let mut session = Session {
            quorum: q,
            quorum_fd,
            votequorum,
            view: QuorumView {
                connected: true,
                quorate,
                members: Vec::new(),
                this_node,
                two_node: false,
                expected_votes: None,
                ring: None,
            },
            timing,
        };
        session.read_votequorum_info()?;

        // trackstart sent the current membership: wait for it.
        let (mut got_quorum, mut got_nodelist) = (false, false);
        while !(got_quorum && got_nodelist) {
            let left = deadline.saturating_duration_since(StdInstant::now());
            if left.is_zero() {
                return Err(QuorumError::NoAnswer {
                    step: "the first membership notification",
                    waited: limit,
                });
            }
            let events = session.wait_for_events(left)?;
            got_quorum |= events.iter().any(|e| matches!(e, Event::Quorum { .. }));
            got_nodelist |= events.iter().any(|e| matches!(e, Event::Nodelist { .. }));
            session.apply(events)?;
        }
        Ok(session)
    }

    /// Re-read two_node, expected votes (and our id if cmap lacked it).
    fn read_votequorum_info(&mut self) -> Result<(), QuorumError> {
        let Some((vq, _)) = &self.votequorum else {
            return Ok(());
        };
        // node id 0 asks about the local node
        let id = NodeId::from(self.view.this_node.unwrap_or(0));
        let info = votequorum::get_info(vq, id).map_err(|e| cs_error("votequorum_getinfo", e))?;
        self.view.two_node = info
            .flags
            .contains(votequorum::NodeInfoFlags::VOTEQUORUM_INFO_TWONODE);
        self.view.expected_votes = Some(info.node_expected_votes);
        if self.view.this_node.is_none() {
            self.view.this_node = Some(u32::from(info.node_id));
        }
        Ok(())
    }

    /// Fold callback events into the view.
    fn apply(&mut self, events: Vec<Event>) -> Result<(), QuorumError> {
        let mut votequorum_changed = false;
        for event in events {
            match event {
                Event::Quorum {
                    quorate,
                    ring,
                    members,
                } => {
                    self.view.quorate = quorate;
                    self.view.ring = Some(ring);
                    self.view.members = members;
                }
                Event::Nodelist { ring, members } => {
                    self.view.ring = Some(ring);
                    self.view.members = members;
                }
                Event::Votequorum => votequorum_changed = true,
                Event::ExpectedVotes(n) => {
                    self.view.expected_votes = Some(n);
                    votequorum_changed = true;
                }
            }
        }
        if votequorum_changed {
            self.read_votequorum_info()?;
        }
        Ok(())
    }

    /// Wait up to `wait` for notifications and fold them into the view;
    /// true if the view changed.
    fn wait_and_dispatch(&mut self, wait: Duration) -> Result<bool, QuorumError> {
        let before = self.view.clone();
        let events = self.wait_for_events(wait)?;
        self.apply(events)?;
        Ok(self.view != before)
    }

    /// Poll the library's descriptors for up to `wait`, dispatch what is
    /// ready, and return what the callbacks saw.
    fn wait_for_events(&mut self, wait: Duration) -> Result<Vec<Event>, QuorumError> {
        let ready = match self.poll(wait) {
            Ok(r) => r,
            Err(nix::errno::Errno::EINTR) => return Ok(Vec::new()),
            Err(e) => {
                return Err(QuorumError::Unreachable {
                    step: "poll",
                    cause: e.to_string(),
                })
            }
        };
        let gone = PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL;
        if let Some(flags) = ready.first().copied().filter(|f| !f.is_empty()) {
            quorum::dispatch(&self.quorum, DispatchFlags::All)
                .map_err(|e| cs_error("quorum_dispatch", e))?;
            if flags.intersects(gone) {
                return Err(QuorumError::Unreachable {
                    step: "quorum connection",
                    cause: "closed by corosync".into(),
                });
            }
        }
        if let (Some(flags), Some((vq, _))) = (ready.get(1).copied(), &self.votequorum) {
            if !flags.is_empty() {
                votequorum::dispatch(vq, DispatchFlags::All)
                    .map_err(|e| cs_error("votequorum_dispatch", e))?;
                if flags.intersects(gone) {
                    return Err(QuorumError::Unreachable {
                        step: "votequorum connection",
                        cause: "closed by corosync".into(),
                    });
                }
            }
        }
        Ok(take_events())
    }

    /// The cheap round trip that proves corosync answers.
    fn round_trip(&self) -> Result<(), QuorumError> {
        quorum::getquorate(&self.quorum)
            .map(|_| ())
            .map_err(|e| cs_error("quorum_getquorate", e))
    }

    /// poll(2) on the quorum and votequorum descriptors for up to `wait`;
    /// the events of each, in that order.
    #[allow(unsafe_code)]
    fn poll(&self, wait: Duration) -> nix::Result<Vec<PollFlags>> {
        let raw: Vec<RawFd> = std::iter::once(self.quorum_fd)
            .chain(self.votequorum.as_ref().map(|(_, fd)| *fd))
            .collect();
        // SAFETY: both descriptors belong to library handles owned by `self`,
        // which stay open (not finalized) for as long as `&self` is borrowed,
        // i.e. for the whole poll call; the borrows do not escape it.
        let fds: Vec<BorrowedFd<'_>> = raw
            .iter()
            .map(|&fd| unsafe { BorrowedFd::borrow_raw(fd) })
            .collect();
        let mut pollfds: Vec<PollFd<'_>> = fds
            .iter()
            .map(|fd| PollFd::new(*fd, PollFlags::POLLIN))
            .collect();
        // round up: a sub-millisecond wait must not become a busy loop
        let millis = wait.as_micros().div_ceil(1000);
        let timeout = PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX);
        nix::poll::poll(&mut pollfds, timeout)?;
        Ok(pollfds
            .iter()
            .map(|p| p.revents().unwrap_or(PollFlags::empty()))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn callbacks_queue_sorted_ids_per_thread() {
        take_events();
        push(Event::Nodelist {
            ring: (1, 2),
            members: ids(vec![NodeId::from(3), NodeId::from(1)]),
        });
        // another thread has a queue of its own
        std::thread::spawn(|| push(Event::Votequorum))
            .join()
            .unwrap();
        let events = take_events();
        assert_eq!(events.len(), 1);
        assert!(matches!(&events[0], Event::Nodelist { members, .. } if members == &[1, 3]));
        assert!(take_events().is_empty());
    }

    #[test]
    fn library_errors_tell_what_to_do() {
        let e = cs_error("quorum_initialize", CsError::CsErrLibrary).to_string();
        assert!(e.contains("is corosync running"), "{e}");
        let e = cs_error("cmap_initialize", CsError::CsErrAccess).to_string();
        assert!(e.contains("run ironfence as root"), "{e}");
    }
}
