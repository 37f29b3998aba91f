//! The cluster task in `ironfenced`: joins the CPG group, feeds the
//! [`Machine`] with CPG's configuration changes and messages and with the
//! local quorum view, and carries out its actions: multicasts, fences
//! through the fencer (the coordinator only), records of other members'
//! fences in the durable history. One task owns the machine; the API talks
//! to it through a [`ClusterHandle`].
//!
//! ```text
//!  start: join the group (cpg thread), watch quorum, seed what is recorded
//!  loop:  cpg event | quorum view | API command | own fence ended | retry due | shutdown
//!  end:   Left (leave asked) | Stopped (shutdown: announced leave) | Refused | Zombie | Failed
//! ```
//!
//! Losing the local corosync is not an ending: the machine forgets the
//! membership (it fences nobody without it), and the task joins again every
//! interval until corosync is back, as a newcomer.
//!
//! Without the `corosync` feature only the types build; [`start`] then
//! says how to rebuild.
#![cfg_attr(not(feature = "corosync"), allow(dead_code, unused_imports))]

use super::machine::{Action, Machine};
use super::message::{self, FenceNote, Incarnation, Message};
use super::status::ClusterStatus;
use super::ClusterError;
use crate::config::ClusterConfig;
use crate::fencer::history::now_ms;
use crate::fencer::{FenceAction, FenceOutcome, FenceRequest, Fencer, HistoryEvent};
use crate::quorum::{QuorumView, QuorumWatch};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{error, info, warn};

/// How long joining may wait for corosync.
const JOIN_LIMIT: Duration = Duration::from_secs(5);
/// A lost node still listed by a quorate view counts as lost after this
/// many membership-change times (token + consensus).
const PENDING_ROUNDS: u32 = 3;

/// How the cluster task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// `ironfence cluster leave`: announced, left; the daemon stops.
    Left,
    /// The daemon is stopping: announced, left.
    Stopped,
    /// This member may not be active (config differs, a second daemon).
    Refused(String),
    /// The cluster declared this process dead while it runs: fence itself.
    Zombie(String),
    /// It could not go on.
    Failed(String),
}

/// What the cluster task needs, resolved by the daemon.
pub struct Parts {
    pub settings: ClusterConfig,
    /// Configured nodes: (name, corosync id).
    pub nodes: Vec<(String, u32)>,
    pub sections: BTreeMap<String, String>,
    pub fencer: Fencer,
    /// Pace of quorum liveness checks and reconnection attempts.
    pub interval: Duration,
    /// Where the resource manager hears the cluster (views and its
    /// messages, in CPG's order); None without resources.
    pub feed: Option<mpsc::UnboundedSender<Feed>>,
}

/// What the resource manager is told, in the order CPG gave it.
#[derive(Debug, Clone)]
pub enum Feed {
    /// The view changed.
    View(super::machine::View),
    /// A resources message from node `from`.
    Message {
        from: String,
        body: serde_json::Value,
    },
}

enum Cmd {
    Status(u64, oneshot::Sender<ClusterStatus>),
    Covers(String, oneshot::Sender<Vec<Incarnation>>),
    Announce(Box<FenceNote>),
    Leave(oneshot::Sender<()>),
    SendResources(serde_json::Value),
    FenceMember(String, String),
}

/// Handle to the cluster task. Cheap to clone.
#[derive(Clone)]
pub struct ClusterHandle {
    tx: mpsc::Sender<Cmd>,
    name: String,
    this_id: u32,
    nonce: u64,
}

impl ClusterHandle {
    /// This process's nonce (how the others tell it from an earlier one).
    pub fn nonce(&self) -> u64 {
        self.nonce
    }

    /// The status, with the events after `since`.
    pub async fn status(&self, since: u64) -> Option<ClusterStatus> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Cmd::Status(since, tx)).await.ok()?;
        rx.await.ok()
    }

    /// The losses a fence of `target` started now resolves.
    pub async fn covers(&self, target: &str) -> Vec<Incarnation> {
        let (tx, rx) = oneshot::channel();
        if self
            .tx
            .send(Cmd::Covers(target.to_string(), tx))
            .await
            .is_err()
        {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// Tell the cluster about a fence done here outside the coordinator
    /// (a human's `reboot`/`off` or `confirm`), covering `covers`.
    pub async fn announce(
        &self,
        outcome: &FenceOutcome,
        started_ms: u64,
        covers: Vec<Incarnation>,
    ) {
        let note = note_from(
            outcome.target.clone(),
            0,
            &self.name,
            self.this_id,
            outcome.action,
            Ok(outcome),
            started_ms,
            covers,
        );
        let _ = self.tx.send(Cmd::Announce(Box::new(note))).await;
    }

    /// Multicast a resources message to the group.
    pub async fn send_resources(&self, body: serde_json::Value) {
        let _ = self.tx.send(Cmd::SendResources(body)).await;
    }

    /// Fence a member that is still in the group (its resource's stop
    /// failed): through the fencer, announced like the coordinator's fences.
    pub async fn fence_member(&self, node: &str, why: &str) {
        let _ = self
            .tx
            .send(Cmd::FenceMember(node.to_string(), why.to_string()))
            .await;
    }

    /// Announce a clean leave and leave the group; the task then ends with
    /// [`Ending::Left`].
    pub async fn leave(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Cmd::Leave(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

/// The FenceNote for an outcome (or the error that stopped the request).
#[allow(clippy::too_many_arguments)]
fn note_from(
    target: String,
    target_id: u32,
    by: &str,
    by_id: u32,
    action: FenceAction,
    outcome: Result<&FenceOutcome, String>,
    started_ms: u64,
    covers: Vec<Incarnation>,
) -> FenceNote {
    match outcome {
        Ok(o) => FenceNote {
            target,
            target_id,
            by: by.to_string(),
            by_id,
            ok: o.result.ok(),
            result: serde_json::to_value(o.result)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_else(|| "unknown".into()),
            action,
            level: o.level,
            devices: o.devices.clone(),
            started_ms,
            finished_ms: now_ms(),
            message: o.message.clone(),
            covers,
        },
        Err(why) => FenceNote {
            target,
            target_id,
            by: by.to_string(),
            by_id,
            ok: false,
            result: "failed".into(),
            action,
            level: None,
            devices: Vec::new(),
            started_ms,
            finished_ms: now_ms(),
            message: why,
            covers,
        },
    }
}

/// The history record of another member's fence.
fn remote_event(n: &FenceNote) -> HistoryEvent {
    HistoryEvent::Remote {
        action: n.action,
        ok: n.ok,
        result: n.result.clone(),
        by: n.by.clone(),
        by_id: n.by_id,
        target_id: n.target_id,
        level: n.level,
        devices: n.devices.clone(),
        started_ms: n.started_ms,
        finished_ms: n.finished_ms,
        message: n.message.clone(),
    }
}

#[cfg(feature = "corosync")]
type Group = super::cpg::Group;
#[cfg(feature = "corosync")]
type Events = mpsc::UnboundedReceiver<super::cpg::GroupEvent>;

#[cfg(feature = "corosync")]
async fn join(group: &str, this_id: u32) -> Result<(Group, Events), ClusterError> {
    let g = group.to_string();
    tokio::task::spawn_blocking(move || Group::join(&g, this_id, JOIN_LIMIT))
        .await
        .map_err(|e| ClusterError::Join {
            group: group.to_string(),
            step: "start",
            cause: e.to_string(),
        })?
}

/// Join the group and watch quorum, then run the task. Errors here (no
/// corosync, wrong node id) stop the daemon's start.
pub async fn start(
    parts: Parts,
    shutdown: watch::Receiver<bool>,
) -> Result<(ClusterHandle, tokio::task::JoinHandle<Ending>), ClusterError> {
    #[cfg(not(feature = "corosync"))]
    {
        let _ = (parts, shutdown);
        Err(ClusterError::NotBuiltIn)
    }
    #[cfg(feature = "corosync")]
    {
        let this_id = parts.settings.this_id;
        let name = parts
            .nodes
            .iter()
            .find(|(_, id)| *id == this_id)
            .map(|(n, _)| n.clone())
            .unwrap_or_default();
        // Quorum first: once joined, a failure would look like a crash to
        // the others (and get this node fenced).
        let source = crate::quorum::corosync_source().map_err(|e| ClusterError::Join {
            group: parts.settings.group.clone(),
            step: "quorum",
            cause: e.to_string(),
        })?;
        let (qstop_tx, qstop) = watch::channel(false);
        let interval = parts.interval;
        let quorum = tokio::task::spawn_blocking(move || source.watch(interval, qstop))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()))
            .map_err(|cause| ClusterError::Join {
                group: parts.settings.group.clone(),
                step: "quorum",
                cause,
            })?;
        let (group, events) = match join(&parts.settings.group, this_id).await {
            Ok(j) => j,
            Err(ClusterError::WrongId {
                config, corosync, ..
            }) => {
                let _ = qstop_tx.send(true);
                return Err(ClusterError::WrongId {
                    name,
                    config,
                    corosync,
                });
            }
            Err(e) => {
                let _ = qstop_tx.send(true);
                return Err(e);
            }
        };
        let pending = quorum
            .timing
            .map(|t| t.membership_change() * PENDING_ROUNDS)
            .unwrap_or(JOIN_LIMIT);
        let me = Incarnation {
            node: this_id,
            pid: group.local.pid,
            nonce: Some(rand::random::<u64>() | 1),
        };
        let mut machine = Machine::new(
            me,
            &parts.nodes,
            parts.settings.clone(),
            parts.sections.clone(),
            pending,
        );
        if let Ok(records) = parts.fencer.all_records().await {
            machine.already_recorded(records.iter().filter_map(|r| match &r.event {
                HistoryEvent::Remote {
                    by_id,
                    target_id,
                    finished_ms,
                    ..
                } => Some((*target_id, *by_id, *finished_ms)),
                _ => None,
            }));
        }
        info!(group = %parts.settings.group, node = %name, id = this_id, pid = me.pid, "joined the CPG group");
        let (tx, rx) = mpsc::channel(64);
        let task = Task {
            machine,
            group: Some(group),
            events,
            quorum,
            qstop: qstop_tx,
            fencer: parts.fencer,
            settings: parts.settings,
            name: name.clone(),
            interval,
            fences: JoinSet::new(),
            feed: parts.feed,
            last_view: None,
        };
        let handle = tokio::spawn(task.run(rx, shutdown));
        let nonce = me.nonce.unwrap_or_default();
        Ok((
            ClusterHandle {
                tx,
                name,
                this_id,
                nonce,
            },
            handle,
        ))
    }
}

#[cfg(feature = "corosync")]
struct Task {
    machine: Machine,
    group: Option<Group>,
    events: Events,
    quorum: QuorumWatch,
    qstop: watch::Sender<bool>,
    fencer: Fencer,
    settings: ClusterConfig,
    name: String,
    interval: Duration,
    fences: JoinSet<(u32, FenceNote)>,
    feed: Option<mpsc::UnboundedSender<Feed>>,
    last_view: Option<super::machine::View>,
}

/// What an action asks of the loop.
enum Next {
    Go,
    End(Ending),
}

#[cfg(feature = "corosync")]
impl Task {
    async fn run(
        mut self,
        mut cmds: mpsc::Receiver<Cmd>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Ending {
        let first = self.quorum.view.borrow_and_update().clone();
        let acts = self.machine.on_quorum(Instant::now(), now_ms(), first);
        if let Next::End(e) = self.apply(acts).await {
            return self.end(e).await;
        }
        let mut reconnect_at: Option<Instant> = None;
        loop {
            let wake = self
                .machine
                .next_wakeup()
                .into_iter()
                .chain(reconnect_at)
                .min();
            let next = tokio::select! {
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        self.leave().await;
                        return self.end(Ending::Stopped).await;
                    }
                    Next::Go
                }
                ev = self.events.recv(), if self.group.is_some() => self.on_group(ev).await,
                changed = self.quorum.view.changed() => {
                    let view = if changed.is_ok() {
                        self.quorum.view.borrow_and_update().clone()
                    } else {
                        QuorumView::disconnected(Some(self.settings.this_id))
                    };
                    let acts = self.machine.on_quorum(Instant::now(), now_ms(), view);
                    if changed.is_err() {
                        error!("the quorum watcher ended: this member fences nobody from now on");
                        return self.end(Ending::Failed("the quorum watcher ended".into())).await;
                    }
                    self.apply(acts).await
                }
                cmd = cmds.recv() => match cmd {
                    Some(c) => self.on_cmd(c).await,
                    None => Next::Go,
                },
                Some(done) = self.fences.join_next(), if !self.fences.is_empty() => {
                    match done {
                        Ok((target, note)) => {
                            let sent = self.send(&Message::FenceResult(note));
                            let acts = self.machine.on_fence_done(Instant::now(), now_ms(), target, sent);
                            self.apply(acts).await
                        }
                        Err(e) => {
                            error!(cause = %e, "a fence task failed");
                            Next::Go
                        }
                    }
                }
                _ = sleep_until(wake) => {
                    if reconnect_at.is_some_and(|t| t <= Instant::now()) {
                        reconnect_at = None;
                        match join(&self.settings.group, self.settings.this_id).await {
                            Ok((g, ev)) => {
                                info!("joined the CPG group again");
                                self.group = Some(g);
                                self.events = ev;
                            }
                            Err(e) => {
                                tracing::debug!(cause = %e, "corosync still unreachable");
                                reconnect_at = Some(Instant::now() + self.interval);
                            }
                        }
                        Next::Go
                    } else {
                        let acts = self.machine.on_tick(Instant::now(), now_ms());
                        self.apply(acts).await
                    }
                }
            };
            self.publish();
            if let Next::End(e) = next {
                return self.end(e).await;
            }
            if self.group.is_none() && reconnect_at.is_none() {
                reconnect_at = Some(Instant::now() + self.interval);
            }
        }
    }

    /// Tell the resource manager about a changed view.
    fn publish(&mut self) {
        let Some(feed) = &self.feed else {
            return;
        };
        let view = self.machine.view();
        if self.last_view.as_ref() != Some(&view) {
            let _ = feed.send(Feed::View(view.clone()));
            self.last_view = Some(view);
        }
    }

    async fn on_group(&mut self, ev: Option<super::cpg::GroupEvent>) -> Next {
        use super::cpg::GroupEvent;
        let (now, wall) = (Instant::now(), now_ms());
        let acts = match ev {
            Some(GroupEvent::Confchg {
                members,
                left,
                joined,
            }) => self.machine.on_confchg(now, wall, &members, &left, &joined),
            Some(GroupEvent::Deliver { from, data }) => match message::decode(&data) {
                Ok(Message::Resources { body }) => {
                    // the view first: the message belongs after what came before it
                    self.publish();
                    if let Some(feed) = &self.feed {
                        let _ = feed.send(Feed::Message {
                            from: self.machine.name_of_id(from.node),
                            body,
                        });
                    }
                    Vec::new()
                }
                Ok(msg) => self.machine.on_message(now, wall, from, msg),
                Err(e) => {
                    warn!(from_node = from.node, from_pid = from.pid, cause = %e, "ignored a message");
                    Vec::new()
                }
            },
            Some(GroupEvent::Lost(why)) => {
                warn!(cause = %why, "lost the CPG group: fencing nobody until corosync is back");
                self.group = None;
                self.machine.disconnected(now, wall, &why)
            }
            None => {
                self.group = None;
                self.machine.disconnected(now, wall, "the CPG thread ended")
            }
        };
        self.apply(acts).await
    }

    async fn on_cmd(&mut self, cmd: Cmd) -> Next {
        match cmd {
            Cmd::Status(since, reply) => {
                let _ = reply.send(self.machine.status(&self.settings.group, since));
                Next::Go
            }
            Cmd::Covers(target, reply) => {
                let covers = self
                    .machine
                    .id_of(&target)
                    .map(|id| self.machine.covers(id))
                    .unwrap_or_default();
                let _ = reply.send(covers);
                Next::Go
            }
            Cmd::Announce(mut note) => {
                match self.machine.id_of(&note.target) {
                    Some(id) => {
                        note.target_id = id;
                        self.send(&Message::FenceResult(*note));
                    }
                    None => {
                        warn!(node = %note.target, "not announcing a fence of a node that is no cluster member")
                    }
                }
                Next::Go
            }
            Cmd::Leave(reply) => {
                self.leave().await;
                let _ = reply.send(());
                Next::End(Ending::Left)
            }
            Cmd::SendResources(body) => {
                self.send(&Message::Resources { body });
                Next::Go
            }
            Cmd::FenceMember(target, why) => {
                let Some(target_id) = self.machine.id_of(&target) else {
                    warn!(node = %target, "not fencing a node that is no cluster member");
                    return Next::Go;
                };
                let actions = self.machine.fence_member(target_id, &why);
                if actions.is_empty() {
                    info!(node = %target, "not fencing {target} again: no member, or a fence of it is running");
                    return Next::Go;
                }
                warn!(node = %target, reason = %why, "fencing a member: {why}");
                self.apply(actions).await
            }
        }
    }

    fn send(&self, msg: &Message) -> bool {
        let sent = self
            .group
            .as_ref()
            .is_some_and(|g| g.send(message::encode(msg)));
        if !sent {
            warn!("not connected to the CPG group: a message was not sent");
        }
        sent
    }

    async fn apply(&mut self, actions: Vec<Action>) -> Next {
        for a in actions {
            match a {
                Action::Send(msg) => {
                    self.send(&msg);
                }
                Action::Fence {
                    target,
                    target_id,
                    action,
                    delay,
                    covers,
                    reason,
                } => {
                    let origin = format!("cluster:{} ({reason})", self.name);
                    let mut req = FenceRequest::new(&target, action, &origin);
                    req.delay = delay;
                    info!(node = %target, %action, ?delay, %reason, "fencing a member");
                    self.spawn_fence(req, target, target_id, covers);
                }
                Action::Record(note) => {
                    if let Err(e) = self
                        .fencer
                        .record_remote(&note.target, remote_event(&note))
                        .await
                    {
                        error!(cause = %e, node = %note.target, "could not record another member's fence");
                    }
                }
                Action::Refuse(why) => return Next::End(Ending::Refused(why)),
                Action::SelfFence(why) => return Next::End(Ending::Zombie(why)),
            }
        }
        Next::Go
    }

    /// Fence through the fencer; the note of its end comes back through `fences`.
    fn spawn_fence(
        &mut self,
        req: FenceRequest,
        target: String,
        target_id: u32,
        covers: Vec<Incarnation>,
    ) {
        let fencer = self.fencer.clone();
        let (by, by_id, action) = (self.name.clone(), self.settings.this_id, req.action);
        self.fences.spawn(async move {
            let started = now_ms();
            let out = fencer.fence(req).await;
            let note = note_from(
                target,
                target_id,
                &by,
                by_id,
                action,
                out.as_ref().map_err(|e| e.to_string()),
                started,
                covers,
            );
            (target_id, note)
        });
    }

    /// Announce a clean leave, then leave the group.
    async fn leave(&mut self) {
        if let Some(g) = self.group.take() {
            let nonce = self.machine.me().nonce.unwrap_or_default();
            g.send(message::encode(&Message::Leaving { nonce }));
            let _ = tokio::task::spawn_blocking(move || g.leave()).await;
            info!("left the CPG group");
        }
    }

    async fn end(mut self, ending: Ending) -> Ending {
        match &ending {
            Ending::Refused(_) => self.leave().await,
            // A dead node does not tidy up: no announced leave.
            Ending::Zombie(_) => {
                if let Some(g) = self.group.take() {
                    std::mem::forget(g);
                }
            }
            _ => {}
        }
        self.fences.abort_all();
        let _ = self.qstop.send(true);
        ending
    }
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// The status of a daemon without [cluster]: the configured nodes, this one
/// online, no membership.
pub fn static_status(this: &str, nodes: &[(String, Option<u32>)]) -> ClusterStatus {
    ClusterStatus {
        membership: "none".into(),
        group: String::new(),
        this_node: this.to_string(),
        this_id: nodes
            .iter()
            .find(|(n, _)| n == this)
            .and_then(|(_, id)| *id),
        state: "static".into(),
        quorum: None,
        coordinator: None,
        nodes: nodes
            .iter()
            .map(|(name, id)| super::status::NodeView {
                name: name.clone(),
                id: id.unwrap_or_default(),
                state: if name == this {
                    "online (this node)".into()
                } else {
                    "unknown (no membership: [cluster] not configured)".into()
                },
                pid: None,
                since_ms: None,
                unclean_since_ms: None,
                reason: None,
                fencing: None,
                failures: 0,
                last_error: None,
                last_fence: None,
            })
            .collect(),
        events: Vec::new(),
        last_seq: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_status_names_this_node() {
        let s = static_status("a", &[("a".into(), Some(1)), ("b".into(), None)]);
        assert_eq!(s.this_id, Some(1));
        assert_eq!(s.nodes[0].state, "online (this node)");
        assert!(s.nodes[1].state.contains("[cluster] not configured"));
        assert!(s.text().contains("membership none"));
    }
}
