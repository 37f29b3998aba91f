//! The membership state machine: what this member knows about every node,
//! and what it must do next. Pure: it is fed CPG configuration changes,
//! delivered messages, quorum views and the ends of its own fences, and
//! answers with [`Action`]s; it does no I/O and reads no clock (the caller
//! passes `now`), so unit tests drive several machines through one
//! simulated CPG and check that they agree.
//!
//! A node's life as every member sees it:
//!
//! ```text
//!            join + hellos (config equal)            Leaving, then leave
//!  offline ------------------------------> online ------------------------> offline (left cleanly)
//!     ^                                      |
//!     |                                      | left as node down / process down
//!     |                                      v
//!     |   quorum view confirms it   +-----------------+  quorum view: not quorate
//!     |   (quorate, node gone)      | lost (checking) |---------------------------> offline (state unknown)
//!     |                             +-----------------+                                 |
//!     |                                      |                          quorate again,  |
//!     |                                      v                          node still gone |
//!     |  FenceResult ok (covers it)   +-----------+ <-------------------------------------+
//!     +------------------------------ |  UNCLEAN  |  coordinator fences; a failure keeps
//!        (or a human's confirm)       +-----------+  it UNCLEAN and retries with back-off
//! ```
//!
//! Agreement comes from CPG alone: every member of a partition sees the same
//! configuration changes and messages in the same order, so the same
//! coordinator (the lowest active node id without an unresolved loss) and
//! the same UNCLEAN set, without an election. Quorum is local: a member
//! acts on a loss only once its own votequorum view is quorate and no longer
//! lists the lost node, so a member of a minority never fences anyone.
//!
//! After every change that adds members, each member sends a [`Hello`] (its
//! config hashes, whether it was active, the losses and fences it knows).
//! When the hellos of all members have arrived: the config of the lowest
//! active member is the reference (of the lowest member if none is active
//! yet); a member with other hashes is refused; the losses claimed by active
//! members are merged (a claimer that is itself claimed lost by another
//! active member loses its claims; of two that claim each other, the lower
//! id keeps them); a member that finds its own incarnation among the losses
//! was declared dead and must fence itself.

use super::message::{FenceNote, Hello, Incarnation, Loss, Message};
use super::status::{ClusterEvent, ClusterStatus, Fencing, NodeView};
use crate::config::cluster::differing_sections;
use crate::config::ClusterConfig;
use crate::fencer::FenceAction;
use crate::quorum::QuorumView;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;
use tokio::time::Instant;

/// How many events the watch log keeps.
const EVENT_LOG: usize = 256;

/// A process in the CPG group: (node id, PID).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Member {
    pub node: u32,
    pub pid: u32,
}

/// Why CPG says a process joined or left (cpg.h's reasons).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Join,
    /// It called cpg_leave: on purpose.
    Leave,
    /// Its node left the corosync membership (crash, power loss, cut link, hang).
    NodeDown,
    NodeUp,
    /// The process ended or lost its corosync connection without leaving.
    ProcDown,
    Other,
}

impl Reason {
    fn text(self) -> &'static str {
        match self {
            Reason::Join => "joined",
            Reason::Leave => "left",
            Reason::NodeDown => "node down",
            Reason::NodeUp => "node up",
            Reason::ProcDown => "process down",
            Reason::Other => "unknown reason",
        }
    }
}

/// What the machine asks its runner to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Multicast this to the group.
    Send(Message),
    /// Fence `target` through the fencer, then report with a FenceResult
    /// (covering `covers`) and [`Machine::on_fence_done`].
    Fence {
        target: String,
        target_id: u32,
        action: FenceAction,
        delay: Duration,
        covers: Vec<Incarnation>,
        /// Why, for the request's origin: "coordinator" or the member's fault.
        reason: String,
    },
    /// Append another member's fence outcome to the durable history.
    Record(FenceNote),
    /// This member must not be active: leave the group cleanly and stop.
    Refuse(String),
    /// The cluster declared this very process lost or fenced: fence itself.
    SelfFence(String),
}

/// A node as the resource manager needs to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// An active member, this process (nonce) of it.
    Online { nonce: u64 },
    /// In the group, not yet accepted (hellos pending).
    Joining,
    /// Lost and not yet fenced (or lost while this member had no quorum):
    /// what ran there may still run.
    Unclean,
    /// Fenced (recorded) and not back.
    Fenced,
    /// Left cleanly.
    Left,
    /// Never seen by this member.
    Absent,
}

/// What the resource manager sees of the cluster: every configured node,
/// the coordinator, and whether this member may act.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct View {
    pub active: bool,
    pub quorate: bool,
    pub coordinator: Option<String>,
    pub nodes: Vec<NodeCondition>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeCondition {
    pub name: String,
    pub state: Presence,
}

/// Where this member stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Not (yet) in the group, or waiting for the hellos of the first round.
    Joining,
    Active,
    Refused,
    /// Declared lost while alive: fencing itself.
    Zombie,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Pending,
    Active,
    Refused,
    /// Declared lost or fenced, yet still running: it must fence itself.
    Zombie,
}

#[derive(Debug, Clone)]
struct MemberInfo {
    pid: u32,
    nonce: Option<u64>,
    since_ms: u64,
    verdict: Verdict,
    /// It announced a clean leave.
    leaving: bool,
}

/// A loss waiting for the quorum view to catch up.
#[derive(Debug, Clone)]
struct Pending {
    lost: Incarnation,
    reason: Reason,
    since_ms: u64,
    at: Instant,
}

#[derive(Debug, Clone)]
struct Entry {
    name: String,
    id: u32,
    member: Option<MemberInfo>,
    /// Confirmed unclean losses not yet resolved by a fence: the node is UNCLEAN.
    losses: Vec<Loss>,
    pending: Vec<Pending>,
    /// Lost while this member was not quorate: state unknown.
    unknown: Option<(Incarnation, u64)>,
    left_ms: Option<u64>,
    fencing: Option<(u32, u64)>,
    failures: u32,
    last_error: Option<String>,
    retry_at: Option<Instant>,
    last_fence: Option<FenceNote>,
}

impl Entry {
    fn incarnation(&self, pid: u32) -> Incarnation {
        Incarnation {
            node: self.id,
            pid,
            nonce: self
                .member
                .as_ref()
                .filter(|m| m.pid == pid)
                .and_then(|m| m.nonce),
        }
    }
}

/// One round of hellos after a configuration change that added members.
#[derive(Debug)]
struct Round {
    members: Vec<Member>,
    waiting: BTreeSet<Member>,
    hellos: BTreeMap<Member, Hello>,
}

/// The machine (see the module docs).
pub struct Machine {
    me: Incarnation,
    name: String,
    settings: ClusterConfig,
    /// Hashes of this node's cluster-relevant config sections.
    config: BTreeMap<String, String>,
    /// A lost node still listed by a quorate view is taken as lost after this.
    pending_limit: Duration,
    entries: BTreeMap<u32, Entry>,
    members: Vec<Member>,
    phase: Phase,
    round: Option<Round>,
    quorum: QuorumView,
    coordinator: Option<u32>,
    /// Targets this member is fencing right now.
    inflight: BTreeSet<u32>,
    /// Fence notes already known (target, by, finished): never recorded twice.
    known: BTreeSet<(u32, u32, u64)>,
    events: VecDeque<ClusterEvent>,
    next_seq: u64,
    /// Node ids in the group that are no [[node]] of the config.
    strangers: BTreeSet<u32>,
}

impl Machine {
    /// A member that has not joined yet. `nodes` are the configured
    /// (name, corosync id) pairs; `me` must be one of them.
    pub fn new(
        me: Incarnation,
        nodes: &[(String, u32)],
        settings: ClusterConfig,
        config: BTreeMap<String, String>,
        pending_limit: Duration,
    ) -> Machine {
        let entries: BTreeMap<u32, Entry> = nodes
            .iter()
            .map(|(name, id)| {
                (
                    *id,
                    Entry {
                        name: name.clone(),
                        id: *id,
                        member: None,
                        losses: Vec::new(),
                        pending: Vec::new(),
                        unknown: None,
                        left_ms: None,
                        fencing: None,
                        failures: 0,
                        last_error: None,
                        retry_at: None,
                        last_fence: None,
                    },
                )
            })
            .collect();
        let name = entries
            .get(&me.node)
            .map(|e| e.name.clone())
            .unwrap_or_else(|| format!("node-{}", me.node));
        Machine {
            me,
            name,
            settings,
            config,
            pending_limit,
            entries,
            members: Vec::new(),
            phase: Phase::Joining,
            round: None,
            quorum: QuorumView::disconnected(Some(me.node)),
            coordinator: None,
            inflight: BTreeSet::new(),
            known: BTreeSet::new(),
            events: VecDeque::new(),
            next_seq: 1,
            strangers: BTreeSet::new(),
        }
    }

    /// This member's incarnation.
    pub fn me(&self) -> Incarnation {
        self.me
    }

    /// Fence notes that are already in the durable history (at start).
    pub fn already_recorded(&mut self, notes: impl IntoIterator<Item = (u32, u32, u64)>) {
        self.known.extend(notes);
    }

    /// Whether this member is active (its config matched the cluster's).
    pub fn is_active(&self) -> bool {
        self.phase == Phase::Active
    }

    /// The node id of `name`, if it is a configured node.
    pub fn id_of(&self, name: &str) -> Option<u32> {
        self.entries.values().find(|e| e.name == name).map(|e| e.id)
    }

    /// The running process of member `target`, if it is one.
    pub fn incarnation_of(&self, target: u32) -> Option<Incarnation> {
        let e = self.entries.get(&target)?;
        let m = e.member.as_ref()?;
        self.members
            .contains(&Member {
                node: target,
                pid: m.pid,
            })
            .then(|| e.incarnation(m.pid))
    }

    /// The name of node `id`.
    pub fn name_of_id(&self, id: u32) -> String {
        self.name_of(id)
    }

    /// The losses a fence of `target` started now would resolve.
    pub fn covers(&self, target: u32) -> Vec<Incarnation> {
        self.entries
            .get(&target)
            .map(|e| e.losses.iter().map(|l| l.lost).collect())
            .unwrap_or_default()
    }

    /// When [`on_tick`](Machine::on_tick) has something to do (a retry).
    pub fn next_wakeup(&self) -> Option<Instant> {
        let pending = self
            .entries
            .values()
            .flat_map(|e| e.pending.iter().map(|p| p.at + self.pending_limit));
        self.entries
            .values()
            .filter(|e| !e.losses.is_empty())
            .filter_map(|e| e.retry_at)
            .chain(pending)
            .min()
    }

    fn event(&mut self, wall: u64, kind: &str, node: Option<&str>, text: String) {
        tracing::info!(event = kind, node = node.unwrap_or("-"), "{text}");
        self.events.push_back(ClusterEvent {
            seq: self.next_seq,
            ts_ms: wall,
            kind: kind.to_string(),
            node: node.map(str::to_string),
            text,
        });
        self.next_seq += 1;
        while self.events.len() > EVENT_LOG {
            self.events.pop_front();
        }
    }

    fn name_of(&self, id: u32) -> String {
        self.entries
            .get(&id)
            .map(|e| e.name.clone())
            .unwrap_or_else(|| format!("node-{id}"))
    }

    /// The connection to corosync is gone: nobody is a member any more, as
    /// far as this process knows; it joins again as a newcomer.
    pub fn disconnected(&mut self, now: Instant, wall: u64, why: &str) -> Vec<Action> {
        self.members.clear();
        self.round = None;
        if matches!(self.phase, Phase::Active) {
            self.phase = Phase::Joining;
        }
        for e in self.entries.values_mut() {
            e.member = None;
            e.fencing = None;
        }
        self.inflight.clear();
        self.quorum = QuorumView::disconnected(Some(self.me.node));
        self.event(
            wall,
            "disconnected",
            None,
            format!("lost the local corosync ({why}): not fencing anyone until it is back"),
        );
        self.decide(now, wall)
    }

    /// A configuration change of the group.
    pub fn on_confchg(
        &mut self,
        now: Instant,
        wall: u64,
        members: &[Member],
        left: &[(Member, Reason)],
        joined: &[(Member, Reason)],
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        let me = Member {
            node: self.me.node,
            pid: self.me.pid,
        };
        if let Some(other) = members
            .iter()
            .find(|m| m.node == me.node && m.pid != me.pid)
        {
            if joined.iter().any(|(m, _)| *m == me) && self.phase == Phase::Joining {
                let why = format!(
                    "another ironfenced (pid {}) on this node is already a member of the cluster: stop it first, one daemon per node",
                    other.pid
                );
                self.phase = Phase::Refused;
                self.event(wall, "refused", Some(&self.name.clone()), why.clone());
                return vec![Action::Refuse(why)];
            }
        }
        let mut sorted: Vec<Member> = members.to_vec();
        sorted.sort();
        self.members = sorted;

        for (m, reason) in left {
            if *m == me {
                continue;
            }
            let Some(e) = self.entries.get(&m.node) else {
                continue;
            };
            if e.member.as_ref().is_none_or(|i| i.pid != m.pid) {
                // a process we never counted (a refused second daemon)
                let text = format!(
                    "a process of {} we never counted left (pid {}, {})",
                    e.name,
                    m.pid,
                    reason.text()
                );
                self.event(wall, "left", None, text);
                continue;
            }
            let lost = e.incarnation(m.pid);
            // fenced while still a member (a failed resource stop): the
            // fence that covers this very process already resolved it
            let fenced_already = e.last_fence.as_ref().is_some_and(|f| {
                f.ok && f.action != FenceAction::On && f.covers.iter().any(|c| c.same(&lost))
            });
            let leaving = e
                .member
                .as_ref()
                .is_some_and(|i| i.pid == m.pid && i.leaving);
            let was_refused = e
                .member
                .as_ref()
                .is_some_and(|i| i.pid == m.pid && i.verdict == Verdict::Refused);
            let name = e.name.clone();
            if let Some(e) = self.entries.get_mut(&m.node) {
                if e.member.as_ref().is_some_and(|i| i.pid == m.pid) {
                    e.member = None;
                }
            }
            // A coordinator that is gone fences no more.
            for other in self.entries.values_mut() {
                if other.fencing.is_some_and(|(by, _)| by == m.node) {
                    other.fencing = None;
                }
            }
            if fenced_already {
                self.event(
                    wall,
                    "left",
                    Some(&name),
                    format!(
                        "{name} is gone (pid {}), as its recorded fence made it",
                        m.pid
                    ),
                );
            } else if leaving || *reason == Reason::Leave || was_refused {
                if let Some(e) = self.entries.get_mut(&m.node) {
                    e.left_ms = Some(wall);
                }
                self.event(
                    wall,
                    "left",
                    Some(&name),
                    format!("{name} left the cluster cleanly (pid {})", m.pid),
                );
            } else {
                if let Some(e) = self.entries.get_mut(&m.node) {
                    e.pending.push(Pending {
                        lost,
                        reason: *reason,
                        since_ms: wall,
                        at: now,
                    });
                }
                self.event(
                    wall,
                    "lost",
                    Some(&name),
                    format!(
                        "{name} lost ({}, pid {}): checking quorum before fencing",
                        reason.text(),
                        m.pid
                    ),
                );
            }
        }

        for (m, _) in joined {
            let members_now = &self.members;
            match self.entries.get_mut(&m.node) {
                // A second daemon on a node that has one: it refuses itself.
                Some(e)
                    if e.member.as_ref().is_some_and(|i| {
                        i.pid != m.pid
                            && members_now.contains(&Member {
                                node: m.node,
                                pid: i.pid,
                            })
                    }) =>
                {
                    let name = e.name.clone();
                    self.event(
                        wall,
                        "duplicate",
                        Some(&name),
                        format!(
                            "a second ironfenced (pid {}) joined for {name}: it must refuse and leave",
                            m.pid
                        ),
                    );
                }
                Some(e) => {
                    e.member = Some(MemberInfo {
                        pid: m.pid,
                        nonce: (*m == me).then_some(self.me.nonce).flatten(),
                        since_ms: wall,
                        verdict: Verdict::Pending,
                        leaving: false,
                    });
                    e.left_ms = None;
                    // Seen again: it was a partition, not a death.
                    e.unknown = None;
                    let name = e.name.clone();
                    self.event(
                        wall,
                        "joined",
                        Some(&name),
                        format!("{name} joined (pid {})", m.pid),
                    );
                }
                None => {
                    if self.strangers.insert(m.node) {
                        self.event(
                            wall,
                            "stranger",
                            None,
                            format!(
                                "node id {} joined the group but is no [[node]] of this config: it is ignored",
                                m.node
                            ),
                        );
                    }
                }
            }
        }
        // Members listed but unknown to us (e.g. present before we joined).
        for m in members {
            if let Some(e) = self.entries.get_mut(&m.node) {
                let known = e.member.as_ref().is_some_and(|i| {
                    members.contains(&Member {
                        node: m.node,
                        pid: i.pid,
                    })
                });
                if !known {
                    e.member = Some(MemberInfo {
                        pid: m.pid,
                        nonce: None,
                        since_ms: wall,
                        verdict: Verdict::Pending,
                        leaving: false,
                    });
                    e.unknown = None;
                }
            }
        }

        if !joined.is_empty() && self.members.contains(&me) {
            self.round = Some(Round {
                members: self.members.clone(),
                waiting: self.members.iter().copied().collect(),
                hellos: BTreeMap::new(),
            });
            actions.push(Action::Send(Message::Hello(self.hello())));
        } else if let Some(r) = &mut self.round {
            // Someone left during a round: do not wait for it.
            let gone: Vec<Member> = r
                .waiting
                .iter()
                .filter(|m| !self.members.contains(m))
                .copied()
                .collect();
            for m in gone {
                r.waiting.remove(&m);
            }
            if r.waiting.is_empty() {
                actions.extend(self.finish_round(now, wall));
            }
        }
        actions.extend(self.decide(now, wall));
        actions
    }

    fn hello(&self) -> Hello {
        Hello {
            nonce: self.me.nonce.unwrap_or_default(),
            name: self.name.clone(),
            config: self.config.clone(),
            active: self.phase == Phase::Active,
            losses: self
                .entries
                .values()
                .flat_map(|e| e.losses.iter().cloned())
                .collect(),
            fences: self
                .entries
                .values()
                .filter_map(|e| e.last_fence.clone())
                .collect(),
        }
    }

    /// A message delivered by CPG (ours included).
    pub fn on_message(
        &mut self,
        now: Instant,
        wall: u64,
        from: Member,
        msg: Message,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        match msg {
            Message::Hello(h) => {
                if let Some(info) = self
                    .entries
                    .get_mut(&from.node)
                    .and_then(|e| e.member.as_mut())
                    .filter(|i| i.pid == from.pid)
                {
                    info.nonce = Some(h.nonce);
                }
                let counts = self
                    .round
                    .as_ref()
                    .is_some_and(|r| r.waiting.contains(&from));
                if counts {
                    if let Some(r) = &mut self.round {
                        r.waiting.remove(&from);
                        r.hellos.insert(from, h);
                        if r.waiting.is_empty() {
                            actions.extend(self.finish_round(now, wall));
                        }
                    }
                } else {
                    for f in h.fences {
                        actions.extend(self.learn_fence(now, wall, f, false));
                    }
                }
            }
            Message::Leaving { .. } => {
                if let Some(info) = self
                    .entries
                    .get_mut(&from.node)
                    .and_then(|e| e.member.as_mut())
                    .filter(|i| i.pid == from.pid)
                {
                    info.leaving = true;
                }
                let name = self.name_of(from.node);
                self.event(
                    wall,
                    "leaving",
                    Some(&name),
                    format!("{name} announced a clean leave"),
                );
            }
            Message::Fencing {
                target,
                action,
                delay_ms,
                ..
            } => {
                let by = self.name_of(from.node);
                if let Some(id) = self.id_of(&target) {
                    if let Some(e) = self.entries.get_mut(&id) {
                        e.fencing = Some((from.node, wall));
                    }
                }
                self.event(
                    wall,
                    "fencing",
                    Some(&target),
                    format!(
                        "{by} is fencing {target} ({action}{})",
                        if delay_ms > 0 {
                            format!(", after a {delay_ms} ms delay")
                        } else {
                            String::new()
                        }
                    ),
                );
            }
            Message::FenceResult(note) => {
                actions.extend(self.learn_fence(now, wall, note, true));
            }
            // the resource managers' business
            Message::Resources { .. } => {}
        }
        actions.extend(self.decide(now, wall));
        actions
    }

    /// Fold in a fence outcome: `live` from a FenceResult, else from a
    /// hello (a fence of the past).
    fn learn_fence(&mut self, now: Instant, wall: u64, note: FenceNote, live: bool) -> Vec<Action> {
        let mut actions = Vec::new();
        let key = (note.target_id, note.by_id, note.finished_ms);
        let fresh = self.known.insert(key);
        if live && note.by_id == self.me.node {
            // our own result is back: the next decision sees it
            self.inflight.remove(&note.target_id);
        }
        let Some(e) = self.entries.get_mut(&note.target_id) else {
            return actions;
        };
        if e.fencing.is_some_and(|(by, _)| by == note.by_id) {
            e.fencing = None;
        }
        if !fresh {
            return actions;
        }
        let target = e.name.clone();
        if note.ok {
            if note.action != FenceAction::On {
                e.losses
                    .retain(|l| !note.covers.iter().any(|c| c.same(&l.lost)));
                e.pending
                    .retain(|p| !note.covers.iter().any(|c| c.same(&p.lost)));
                if e.unknown
                    .is_some_and(|(i, _)| note.covers.iter().any(|c| c.same(&i)))
                {
                    e.unknown = None;
                }
                e.failures = 0;
                e.last_error = None;
                e.retry_at = None;
            }
            if e.last_fence
                .as_ref()
                .is_none_or(|l| l.finished_ms <= note.finished_ms)
            {
                e.last_fence = Some(note.clone());
            }
            let unclean = !e.losses.is_empty();
            self.event(
                wall,
                if note.result == "confirmed" {
                    "confirmed"
                } else {
                    "fenced"
                },
                Some(&target),
                format!(
                    "{target} {} by {}{}{}",
                    if note.result == "confirmed" {
                        "confirmed down"
                    } else {
                        "fenced"
                    },
                    note.by,
                    note.level
                        .map(|l| format!(" (level {l}, {})", note.devices.join("+")))
                        .unwrap_or_default(),
                    if unclean {
                        "; a later loss is still unresolved"
                    } else {
                        ""
                    }
                ),
            );
            if note.target_id == self.me.node
                && note.action != FenceAction::On
                && (live || note.covers.iter().any(|c| c.same(&self.me)))
            {
                self.phase = Phase::Zombie;
                actions.push(Action::SelfFence(format!(
                    "the cluster recorded this node as fenced by {} ({}) while it still runs: a fenced node must not come back without a reboot",
                    note.by, note.message
                )));
            }
        } else {
            e.failures += 1;
            e.last_error = Some(note.message.clone());
            e.retry_at = Some(now + self.settings.backoff(e.failures));
            let (failures, wait) = (e.failures, self.settings.backoff(e.failures));
            self.event(
                wall,
                "fence-failed",
                Some(&target),
                format!(
                    "fencing {target} by {} failed ({failures} in a row): {}; {target} stays UNCLEAN, next try in {}",
                    note.by,
                    note.message,
                    humantime::format_duration(wait)
                ),
            );
        }
        // This node's own fencer wrote its own fences already.
        if note.by_id != self.me.node {
            actions.push(Action::Record(note));
        }
        actions
    }

    fn finish_round(&mut self, now: Instant, wall: u64) -> Vec<Action> {
        let mut actions = Vec::new();
        let Some(round) = self.round.take() else {
            return actions;
        };
        // Fences everyone knows of.
        for h in round.hellos.values() {
            for f in h.fences.clone() {
                actions.extend(self.learn_fence(now, wall, f, false));
            }
        }
        // Claims of active members, minus those of discredited claimers.
        let incarnation = |m: &Member, h: &Hello| Incarnation {
            node: m.node,
            pid: m.pid,
            nonce: Some(h.nonce),
        };
        let active: Vec<(&Member, &Hello)> =
            round.hellos.iter().filter(|(_, h)| h.active).collect();
        if !active.is_empty() {
            let claims_about =
                |h: &Hello, inc: &Incarnation| h.losses.iter().any(|l| l.lost.same(inc));
            let discredited: BTreeSet<Member> = active
                .iter()
                .filter(|(c, ch)| {
                    let ic = incarnation(c, ch);
                    active.iter().any(|(d, dh)| {
                        d != c && claims_about(dh, &ic) && {
                            let id = incarnation(d, dh);
                            !claims_about(ch, &id) || d.node < c.node
                        }
                    })
                })
                .map(|(c, _)| **c)
                .collect();
            let mut merged: Vec<Loss> = Vec::new();
            for (c, h) in &active {
                if discredited.contains(c) {
                    continue;
                }
                for l in &h.losses {
                    if !merged.iter().any(|x| x.lost.same(&l.lost)) {
                        merged.push(l.clone());
                    }
                }
            }
            for e in self.entries.values_mut() {
                e.losses = merged
                    .iter()
                    .filter(|l| l.lost.node == e.id)
                    .filter(|l| {
                        // a fence we know of resolved it already
                        !e.last_fence
                            .as_ref()
                            .is_some_and(|f| f.ok && f.covers.iter().any(|c| c.same(&l.lost)))
                    })
                    .cloned()
                    .collect();
            }
        }
        // Was this very process declared lost?
        if let Some(l) = self
            .entries
            .get(&self.me.node)
            .and_then(|e| e.losses.iter().find(|l| l.lost.same(&self.me)))
            .cloned()
        {
            self.phase = Phase::Zombie;
            let by = self.name_of(l.by);
            let why = format!(
                "the cluster declared this node lost ({}, seen by {by}) while it still runs (hung, or cut off): it must fence itself before it may rejoin",
                l.reason
            );
            self.event(wall, "zombie", Some(&self.name.clone()), why.clone());
            actions.push(Action::SelfFence(why));
            return actions;
        }
        // The config everyone must have.
        let reference = active
            .iter()
            .map(|(m, h)| (**m, *h))
            .min_by_key(|(m, _)| m.node)
            .or_else(|| {
                round
                    .hellos
                    .iter()
                    .map(|(m, h)| (*m, h))
                    .min_by_key(|(m, _)| m.node)
            })
            .map(|(m, h)| (m.node, h.config.clone()));
        let Some((ref_node, reference)) = reference else {
            return actions;
        };
        let ref_name = self.name_of(ref_node);
        for (m, h) in &round.hellos {
            let ok = h.config == reference;
            let inc = incarnation(m, h);
            let dead = self.entries.get(&m.node).is_some_and(|e| {
                e.losses.iter().any(|l| l.lost.same(&inc))
                    || e.last_fence.as_ref().is_some_and(|f| {
                        f.ok && f.action != FenceAction::On && f.covers.iter().any(|c| c.same(&inc))
                    })
            });
            if dead {
                if let Some(info) = self
                    .entries
                    .get_mut(&m.node)
                    .and_then(|e| e.member.as_mut())
                    .filter(|i| i.pid == m.pid)
                {
                    info.verdict = Verdict::Zombie;
                }
                let name = h.name.clone();
                self.event(
                    wall,
                    "zombie",
                    Some(&name),
                    format!("{name} (pid {}) was declared lost or fenced but still runs: not a member; it must fence itself", m.pid),
                );
                continue;
            }
            if let Some(info) = self
                .entries
                .get_mut(&m.node)
                .and_then(|e| e.member.as_mut())
                .filter(|i| i.pid == m.pid)
            {
                let before = info.verdict;
                info.verdict = if ok {
                    Verdict::Active
                } else {
                    Verdict::Refused
                };
                if !ok && before != Verdict::Refused && m.node != self.me.node {
                    let name = h.name.clone();
                    let diff = differing_sections(&h.config, &reference).join(", ");
                    self.event(
                        wall,
                        "refused",
                        Some(&name),
                        format!("{name}'s config differs from {ref_name}'s in: {diff}; it is not an active member"),
                    );
                }
            }
        }
        if self.phase == Phase::Joining {
            if self.config == reference {
                self.phase = Phase::Active;
                let n = round.members.len();
                self.event(
                    wall,
                    "active",
                    Some(&self.name.clone()),
                    format!(
                        "{} is an active member ({n} member(s), config equal to {ref_name}'s)",
                        self.name
                    ),
                );
            } else {
                self.phase = Phase::Refused;
                let diff = differing_sections(&self.config, &reference).join(", ");
                let why = format!(
                    "this node's config differs from the cluster's (as {ref_name} has it) in: {diff}; copy the same [cluster], [[node]], [[device]] and [[level]] sections to every node, then start ironfenced again"
                );
                self.event(wall, "refused", Some(&self.name.clone()), why.clone());
                actions.push(Action::Refuse(why));
            }
        }
        actions
    }

    /// A new quorum view from the local votequorum.
    pub fn on_quorum(&mut self, now: Instant, wall: u64, view: QuorumView) -> Vec<Action> {
        if view.has_quorum() != self.quorum.has_quorum() {
            let text = if view.has_quorum() {
                format!("quorate (members {:?})", view.members)
            } else if view.connected {
                format!("quorum lost (members {:?}): fencing nobody", view.members)
            } else {
                "the local corosync is unreachable: not quorate, fencing nobody".to_string()
            };
            self.event(wall, "quorum", None, text);
        }
        self.quorum = view;
        self.decide(now, wall)
    }

    /// This member's own fence of `target` ended and its FenceResult was
    /// multicast; until that comes back, the target stays in flight (so it
    /// is not fenced again). `sent` false: it could not be sent.
    pub fn on_fence_done(
        &mut self,
        now: Instant,
        wall: u64,
        target: u32,
        sent: bool,
    ) -> Vec<Action> {
        if !sent {
            self.inflight.remove(&target);
        }
        self.decide(now, wall)
    }

    /// Fence a member that is still in the group (its resource stop
    /// failed, `why`): announced and tracked like the fence of a lost
    /// member, so that its disappearance while the fence runs starts no
    /// second one. Nothing when it is no member or is being fenced already.
    pub fn fence_member(&mut self, target_id: u32, why: &str) -> Vec<Action> {
        if self.inflight.contains(&target_id) {
            return Vec::new();
        }
        let covers: Vec<Incarnation> = self.incarnation_of(target_id).into_iter().collect();
        if covers.is_empty() {
            return Vec::new();
        }
        self.start_fence(target_id, Duration::ZERO, covers, why)
            .into_iter()
            .flatten()
            .collect()
    }

    /// Mark a fence of `id` in flight: the announcement to multicast and
    /// the fence to run (None for an unknown node).
    fn start_fence(
        &mut self,
        id: u32,
        delay: Duration,
        covers: Vec<Incarnation>,
        reason: &str,
    ) -> Option<[Action; 2]> {
        let target = self.entries.get(&id)?.name.clone();
        let action = self.settings.fence_action;
        self.inflight.insert(id);
        Some([
            Action::Send(Message::Fencing {
                target: target.clone(),
                action,
                delay_ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                covers: covers.clone(),
            }),
            Action::Fence {
                target,
                target_id: id,
                action,
                delay,
                covers,
                reason: reason.to_string(),
            },
        ])
    }

    /// Time passed (a retry may be due).
    pub fn on_tick(&mut self, now: Instant, wall: u64) -> Vec<Action> {
        self.decide(now, wall)
    }

    /// Confirm pending losses against quorum, then fence if this member coordinates.
    fn decide(&mut self, now: Instant, wall: u64) -> Vec<Action> {
        let mut actions = Vec::new();
        self.resolve_pending(now, wall);
        self.promote_unknown(wall);

        let coordinator = self.compute_coordinator();
        if coordinator != self.coordinator {
            self.coordinator = coordinator;
            let text = match coordinator {
                Some(c) => format!("coordinator is now {}", self.name_of(c)),
                None => "no coordinator".to_string(),
            };
            self.event(
                wall,
                "coordinator",
                coordinator.map(|c| self.name_of(c)).as_deref(),
                text,
            );
        }
        if self.phase != Phase::Active
            || coordinator != Some(self.me.node)
            || !self.quorum.has_quorum()
            || !self.quorum.members.contains(&self.me.node)
        {
            return actions;
        }
        let members = self.members.clone();
        let ids: Vec<u32> = self.entries.keys().copied().collect();
        for id in ids {
            let Some(e) = self.entries.get(&id) else {
                continue;
            };
            if e.losses.is_empty() || self.inflight.contains(&id) {
                continue;
            }
            if e.fencing
                .is_some_and(|(by, _)| by != self.me.node && members.iter().any(|m| m.node == by))
            {
                continue; // an earlier coordinator, still here, is at it
            }
            if e.retry_at.is_some_and(|t| t > now) {
                continue;
            }
            let delay = if self.quorum.two_node && id < self.me.node {
                self.settings.two_node_delay
            } else {
                Duration::ZERO
            };
            let covers: Vec<Incarnation> = e.losses.iter().map(|l| l.lost).collect();
            actions.extend(
                self.start_fence(id, delay, covers, "coordinator")
                    .into_iter()
                    .flatten(),
            );
        }
        actions
    }

    fn resolve_pending(&mut self, now: Instant, wall: u64) {
        let q = self.quorum.clone();
        let me = self.me.node;
        let mut notes = Vec::new();
        for e in self.entries.values_mut() {
            let mut keep = Vec::new();
            for p in e.pending.drain(..) {
                let listed = q.members.contains(&e.id);
                let stale = p.reason == Reason::NodeDown && listed;
                let overdue = now.saturating_duration_since(p.at) >= self.pending_limit;
                if q.has_quorum() && q.members.contains(&me) && (!stale || overdue) {
                    if !e.losses.iter().any(|l| l.lost.same(&p.lost)) {
                        e.losses.push(Loss {
                            lost: p.lost,
                            since_ms: p.since_ms,
                            reason: p.reason.text().to_string(),
                            by: me,
                        });
                    }
                    notes.push((
                        "unclean",
                        e.name.clone(),
                        format!(
                            "{} is UNCLEAN ({}; this partition is quorate): it will be fenced",
                            e.name,
                            p.reason.text()
                        ),
                    ));
                } else if !q.has_quorum() && (!stale || overdue) {
                    e.unknown = Some((p.lost, p.since_ms));
                    notes.push((
                        "unknown",
                        e.name.clone(),
                        format!(
                            "{} lost while this partition is not quorate: not fencing it (the quorate side will)",
                            e.name
                        ),
                    ));
                } else {
                    keep.push(p);
                }
            }
            e.pending = keep;
        }
        for (kind, node, text) in notes {
            self.event(wall, kind, Some(&node), text);
        }
    }

    /// A node lost while we were not quorate, still gone now that we are:
    /// its state is unknown and it may have run services, so fence it.
    fn promote_unknown(&mut self, wall: u64) {
        if !self.quorum.has_quorum() || !self.quorum.members.contains(&self.me.node) {
            return;
        }
        let me = self.me.node;
        let mut notes = Vec::new();
        for e in self.entries.values_mut() {
            let Some((lost, since)) = e.unknown else {
                continue;
            };
            if self.quorum.members.contains(&e.id) || e.member.is_some() {
                continue;
            }
            e.unknown = None;
            if !e.losses.iter().any(|l| l.lost.same(&lost)) {
                e.losses.push(Loss {
                    lost,
                    since_ms: since,
                    reason: "lost while not quorate, still gone".to_string(),
                    by: me,
                });
            }
            notes.push((e.name.clone(), format!("{} is UNCLEAN: lost while this partition had no quorum and still gone now that it has", e.name)));
        }
        for (node, text) in notes {
            self.event(wall, "unclean", Some(&node), text);
        }
    }

    fn compute_coordinator(&self) -> Option<u32> {
        self.entries
            .values()
            .filter(|e| {
                e.losses.is_empty()
                    && e.member.as_ref().is_some_and(|m| {
                        m.verdict == Verdict::Active
                            && !m.leaving
                            && self.members.contains(&Member {
                                node: e.id,
                                pid: m.pid,
                            })
                    })
            })
            .map(|e| e.id)
            .min()
    }

    /// The entry's process, if it is in the group now.
    fn live_member<'a>(&self, e: &'a Entry) -> Option<&'a MemberInfo> {
        e.member.as_ref().filter(|m| {
            self.members.contains(&Member {
                node: e.id,
                pid: m.pid,
            })
        })
    }

    /// The resource manager's view (see [`View`]).
    pub fn view(&self) -> View {
        let nodes = self
            .entries
            .values()
            .map(|e| {
                let member = self.live_member(e);
                let state = if !e.losses.is_empty() || !e.pending.is_empty() || e.unknown.is_some()
                {
                    Presence::Unclean
                } else if let Some(m) = member {
                    match (m.verdict, m.nonce) {
                        (Verdict::Active, Some(nonce)) if !m.leaving => Presence::Online { nonce },
                        (Verdict::Active, _) => Presence::Left,
                        _ => Presence::Joining,
                    }
                } else if e.left_ms.is_some() {
                    Presence::Left
                } else if e.last_fence.as_ref().is_some_and(|f| f.ok) {
                    Presence::Fenced
                } else {
                    Presence::Absent
                };
                NodeCondition {
                    name: e.name.clone(),
                    state,
                }
            })
            .collect();
        View {
            active: self.phase == Phase::Active,
            quorate: self.quorum.has_quorum() && self.quorum.members.contains(&self.me.node),
            coordinator: self.coordinator.map(|c| self.name_of(c)),
            nodes,
        }
    }

    /// The status for `ironfence cluster status` (events after `since`).
    pub fn status(&self, group: &str, since: u64) -> ClusterStatus {
        let nodes = self
            .entries
            .values()
            .map(|e| {
                let member = self.live_member(e);
                let state = if !e.losses.is_empty() {
                    if member.is_some() {
                        "UNCLEAN (online)"
                    } else {
                        "UNCLEAN (offline)"
                    }
                } else if let Some(m) = member {
                    match m.verdict {
                        Verdict::Active => "online",
                        Verdict::Pending => "joining",
                        Verdict::Refused => "refused (config differs)",
                        Verdict::Zombie => "zombie (declared dead, still running)",
                    }
                } else if !e.pending.is_empty() {
                    "lost (checking quorum)"
                } else if e.unknown.is_some() {
                    "offline (lost without quorum: state unknown)"
                } else if e.left_ms.is_some() {
                    "offline (left cleanly)"
                } else if e.last_fence.as_ref().is_some_and(|f| f.ok) {
                    "offline (fenced)"
                } else {
                    "offline"
                };
                NodeView {
                    name: e.name.clone(),
                    id: e.id,
                    state: state.to_string(),
                    pid: member.map(|m| m.pid),
                    since_ms: member.map(|m| m.since_ms).or(e.left_ms),
                    unclean_since_ms: e.losses.iter().map(|l| l.since_ms).min(),
                    reason: e.losses.first().map(|l| l.reason.clone()),
                    fencing: e.fencing.map(|(by, started)| Fencing {
                        by: self.name_of(by),
                        started_ms: started,
                    }),
                    failures: e.failures,
                    last_error: e.last_error.clone(),
                    last_fence: e.last_fence.clone(),
                }
            })
            .collect();
        ClusterStatus {
            membership: "corosync".into(),
            group: group.to_string(),
            this_node: self.name.clone(),
            this_id: Some(self.me.node),
            state: match self.phase {
                Phase::Joining => "joining",
                Phase::Active => "active",
                Phase::Refused => "refused",
                Phase::Zombie => "self-fencing",
            }
            .to_string(),
            quorum: Some(self.quorum.clone()),
            coordinator: self.coordinator.map(|c| self.name_of(c)),
            nodes,
            events: self
                .events
                .iter()
                .filter(|e| e.seq > since)
                .cloned()
                .collect(),
            last_seq: self.next_seq - 1,
        }
    }
}

#[cfg(test)]
mod tests;
