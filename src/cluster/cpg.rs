//! The local corosync's CPG service through rust-corosync (feature
//! `corosync`): join a group, multicast with agreed ordering, and hand every
//! configuration change and delivered message to tokio, in CPG's order.
//!
//! rust-corosync is synchronous and its callbacks are plain functions, so
//! one thread owns the handle: it `poll`s the CPG descriptor and a wake-up
//! socket, dispatches (the callbacks queue what they saw in a thread-local
//! that the thread drains after each dispatch) and sends what the runner
//! asked for. Nothing else touches the handle.
//!
//! ```text
//!  runner --Out::Send/Leave--> [channel + wake socket] --> cpg thread --mcast--> corosync
//!  runner <--GroupEvent (confchg, deliver, lost)---------- cpg thread <--dispatch-- corosync
//! ```
//!
//! Leaving: `cpg_leave`, then dispatch until the configuration change that
//! no longer lists this process (so the others see reason "left", not
//! "process down"), then finalize. A dropped [`Group`] without a leave
//! finalizes at once: the others see a process that went down.

use super::machine::{Member, Reason};
use super::ClusterError;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use rust_corosync::{cpg, CsError, DispatchFlags, NodeId};
use std::cell::RefCell;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc as tmpsc;

/// How long a send may wait while corosync applies flow control.
const SEND_LIMIT: Duration = Duration::from_secs(2);
/// How long a leave waits for corosync to confirm it.
const LEAVE_LIMIT: Duration = Duration::from_secs(2);

/// What the CPG thread reports, in CPG's order.
#[derive(Debug, Clone, PartialEq)]
pub enum GroupEvent {
    Confchg {
        members: Vec<Member>,
        left: Vec<(Member, Reason)>,
        joined: Vec<(Member, Reason)>,
    },
    Deliver {
        from: Member,
        data: Vec<u8>,
    },
    /// The connection to corosync is gone (it stopped, or we left).
    Lost(String),
}

enum Out {
    Send(Vec<u8>),
    Leave(mpsc::SyncSender<()>),
}

/// A joined CPG group (see the module docs).
pub struct Group {
    out: mpsc::Sender<Out>,
    wake: UnixStream,
    /// This process as CPG knows it.
    pub local: Member,
}

impl Group {
    /// Connect to the local corosync and, if it gives this node the id
    /// `expect`, join `name` (else [`ClusterError::WrongId`], without
    /// joining: nobody sees a thing). Blocks up to `limit` (call it from
    /// `spawn_blocking`). Events arrive on the returned receiver, starting
    /// with the configuration change of this join.
    pub fn join(
        name: &str,
        expect: u32,
        limit: Duration,
    ) -> Result<(Group, tmpsc::UnboundedReceiver<GroupEvent>), ClusterError> {
        let (events_tx, events) = tmpsc::unbounded_channel();
        let (out, out_rx) = mpsc::channel();
        let (wake, wake_rx) = UnixStream::pair().map_err(ClusterError::Thread)?;
        wake_rx
            .set_nonblocking(true)
            .map_err(ClusterError::Thread)?;
        let (first_tx, first_rx) = mpsc::sync_channel(1);
        let group = name.to_string();
        std::thread::Builder::new()
            .name("cluster-cpg".into())
            .spawn(move || {
                let conn = match Connection::open(&group, expect) {
                    Ok(c) => {
                        let _ = first_tx.send(Ok(c.nodeid));
                        c
                    }
                    Err(e) => {
                        let _ = first_tx.send(Err(e));
                        return;
                    }
                };
                drop(first_tx);
                conn.run(&group, events_tx, out_rx, wake_rx);
            })
            .map_err(ClusterError::Thread)?;
        let nodeid = match first_rx.recv_timeout(limit) {
            Ok(r) => r?,
            Err(_) => {
                return Err(ClusterError::Join {
                    group: name.to_string(),
                    step: "connect",
                    cause: format!("no answer from corosync within {limit:?}"),
                })
            }
        };
        Ok((
            Group {
                out,
                wake,
                local: Member {
                    node: nodeid,
                    pid: std::process::id(),
                },
            },
            events,
        ))
    }

    fn ask(&self, o: Out) -> bool {
        if self.out.send(o).is_err() {
            return false;
        }
        // A full socket buffer already holds a wake-up.
        let _ = (&self.wake).write(&[1]);
        true
    }

    /// Multicast `data` to the group (agreed order). False when the
    /// connection is gone.
    pub fn send(&self, data: Vec<u8>) -> bool {
        self.ask(Out::Send(data))
    }

    /// Leave the group on purpose and close; blocks until corosync
    /// confirmed it or [`LEAVE_LIMIT`] passed.
    pub fn leave(self) {
        let (tx, rx) = mpsc::sync_channel(1);
        if self.ask(Out::Leave(tx)) {
            let _ = rx.recv_timeout(LEAVE_LIMIT + Duration::from_secs(1));
        }
    }
}

thread_local! {
    static QUEUE: RefCell<Vec<GroupEvent>> = const { RefCell::new(Vec::new()) };
}

fn push(e: GroupEvent) {
    QUEUE.with(|q| q.borrow_mut().push(e));
}

fn take() -> Vec<GroupEvent> {
    QUEUE.with(|q| std::mem::take(&mut *q.borrow_mut()))
}

fn reason(r: cpg::Reason) -> Reason {
    match r {
        cpg::Reason::Join => Reason::Join,
        cpg::Reason::Leave => Reason::Leave,
        cpg::Reason::NodeDown => Reason::NodeDown,
        cpg::Reason::NodeUp => Reason::NodeUp,
        cpg::Reason::ProcDown => Reason::ProcDown,
        cpg::Reason::Undefined => Reason::Other,
    }
}

fn member(a: &cpg::Address) -> Member {
    Member {
        node: u32::from(a.nodeid),
        pid: a.pid,
    }
}

fn on_deliver(_: &cpg::Handle, _group: String, nodeid: NodeId, pid: u32, msg: &[u8], _len: usize) {
    push(GroupEvent::Deliver {
        from: Member {
            node: u32::from(nodeid),
            pid,
        },
        data: msg.to_vec(),
    });
}

fn on_confchg(
    _: &cpg::Handle,
    _group: &str,
    members: Vec<cpg::Address>,
    left: Vec<cpg::Address>,
    joined: Vec<cpg::Address>,
) {
    push(GroupEvent::Confchg {
        members: members.iter().map(member).collect(),
        left: left.iter().map(|a| (member(a), reason(a.reason))).collect(),
        joined: joined
            .iter()
            .map(|a| (member(a), reason(a.reason)))
            .collect(),
    });
}

/// The thread's connection.
struct Connection {
    handle: cpg::Handle,
    fd: RawFd,
    nodeid: u32,
}

impl Connection {
    fn open(group: &str, expect: u32) -> Result<Connection, ClusterError> {
        let err = |step: &'static str, e: CsError| ClusterError::Join {
            group: group.to_string(),
            step,
            cause: e.to_string(),
        };
        take();
        let model = cpg::ModelData::ModelV1(cpg::Model1Data {
            flags: cpg::Model1Flags::None,
            deliver_fn: Some(on_deliver),
            confchg_fn: Some(on_confchg),
            totem_confchg_fn: None,
        });
        let handle = cpg::initialize(&model, 0).map_err(|e| err("cpg_initialize", e))?;
        let nodeid = cpg::local_get(&handle).map_err(|e| err("cpg_local_get", e))?;
        if u32::from(nodeid) != expect {
            return Err(ClusterError::WrongId {
                name: String::new(),
                config: expect,
                corosync: u32::from(nodeid),
            });
        }
        let fd = cpg::fd_get(&handle).map_err(|e| err("cpg_fd_get", e))?;
        cpg::join(&handle, group).map_err(|e| err("cpg_join", e))?;
        Ok(Connection {
            handle,
            fd,
            nodeid: u32::from(nodeid),
        })
    }

    fn run(
        self,
        group: &str,
        events: tmpsc::UnboundedSender<GroupEvent>,
        out: mpsc::Receiver<Out>,
        wake: UnixStream,
    ) {
        let lost = |why: String| {
            let _ = events.send(GroupEvent::Lost(why));
        };
        loop {
            let (cpg_ready, wake_ready) = match self.poll(Some(&wake), Duration::from_secs(1)) {
                Ok(r) => r,
                Err(e) => return lost(format!("poll: {e}")),
            };
            if let Some(flags) = cpg_ready {
                if let Err(e) = cpg::dispatch(&self.handle, DispatchFlags::All) {
                    return lost(format!("cpg_dispatch: {e}"));
                }
                for e in take() {
                    if events.send(e).is_err() {
                        return; // nobody listens: finalize on drop
                    }
                }
                if flags.intersects(PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL) {
                    return lost("corosync closed the connection".into());
                }
            }
            if wake_ready {
                let mut buf = [0u8; 64];
                while matches!((&wake).read(&mut buf), Ok(n) if n > 0) {}
            }
            loop {
                match out.try_recv() {
                    Ok(Out::Send(data)) => {
                        if let Err(e) = self.mcast(&data, &events) {
                            return lost(format!("cpg_mcast_joined: {e}"));
                        }
                    }
                    Ok(Out::Leave(ack)) => {
                        self.leave(group, &events);
                        let _ = ack.send(());
                        return;
                    }
                    Err(mpsc::TryRecvError::Empty) => break,
                    // The Group was dropped without a leave: finalize.
                    Err(mpsc::TryRecvError::Disconnected) => return,
                }
            }
            if events.is_closed() {
                return;
            }
        }
    }

    /// Multicast with agreed ordering; under flow control, dispatch and retry.
    fn mcast(
        &self,
        data: &[u8],
        events: &tmpsc::UnboundedSender<GroupEvent>,
    ) -> Result<(), CsError> {
        let deadline = Instant::now() + SEND_LIMIT;
        loop {
            match cpg::mcast_joined(&self.handle, cpg::Guarantee::TypeAgreed, data) {
                Err(CsError::CsErrTryAgain) if Instant::now() < deadline => {
                    cpg::dispatch(&self.handle, DispatchFlags::All)?;
                    for e in take() {
                        let _ = events.send(e);
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                r => return r,
            }
        }
    }

    /// cpg_leave, then dispatch until corosync shows this process gone.
    fn leave(&self, group: &str, events: &tmpsc::UnboundedSender<GroupEvent>) {
        if let Err(e) = cpg::leave(&self.handle, group) {
            tracing::warn!(cause = %e, "cpg_leave failed; closing the connection instead");
            return;
        }
        let me = Member {
            node: self.nodeid,
            pid: std::process::id(),
        };
        let deadline = Instant::now() + LEAVE_LIMIT;
        while Instant::now() < deadline {
            let wait = deadline.saturating_duration_since(Instant::now());
            match self.poll(None, wait) {
                Ok((Some(_), _)) => {}
                Ok((None, _)) => continue,
                Err(_) => return,
            }
            if cpg::dispatch(&self.handle, DispatchFlags::All).is_err() {
                return;
            }
            let mut gone = false;
            for e in take() {
                if let GroupEvent::Confchg { left, .. } = &e {
                    gone |= left.iter().any(|(m, _)| *m == me);
                }
                let _ = events.send(e);
            }
            if gone {
                return;
            }
        }
    }

    /// poll(2) on the CPG descriptor (and `wake`) for up to `wait`: the CPG
    /// descriptor's events if any, and whether `wake` is readable.
    #[allow(unsafe_code)]
    fn poll(
        &self,
        wake: Option<&UnixStream>,
        wait: Duration,
    ) -> nix::Result<(Option<PollFlags>, bool)> {
        // SAFETY: the descriptor belongs to the library handle owned by
        // `self`, which stays open (not finalized) while `&self` is
        // borrowed, i.e. for the whole poll call; the borrow does not escape.
        let cpg_fd = unsafe { BorrowedFd::borrow_raw(self.fd) };
        let mut fds: Vec<PollFd<'_>> = std::iter::once(cpg_fd)
            .chain(wake.map(|w| w.as_fd()))
            .map(|fd| PollFd::new(fd, PollFlags::POLLIN))
            .collect();
        let millis = wait.as_micros().div_ceil(1000);
        let timeout = PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX);
        match nix::poll::poll(&mut fds, timeout) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => return Ok((None, false)),
            Err(e) => return Err(e),
        }
        let ev = |p: &PollFd<'_>| p.revents().unwrap_or(PollFlags::empty());
        let c = ev(&fds[0]);
        let woken = fds.get(1).is_some_and(|w| !ev(w).is_empty());
        Ok(((!c.is_empty()).then_some(c), woken))
    }
}
