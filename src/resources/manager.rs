//! The resource manager: a pure state machine every member runs on the
//! same ordered stream (cluster views, CPG messages), so every member has
//! the same picture; the coordinator alone decides the next steps.
//!
//! ```text
//!  inputs:  view (membership, fences, coordinator) | message (report,
//!           actions, admin) | this node's action ended | probes ended | tick
//!  outputs: Send(message) | Run(order on this node) | Monitor(rsc, on/off)
//!           | Fence(node, why)
//!
//!  coordinator, once every online member has reported its probes:
//!    place (placement::place, with bans from failcounts, humans, roles)
//!    for each resource with no order in flight:
//!      failed or placed elsewhere -> stop (then-resources of mandatory
//!                                    orders stopped first)
//!      stop failed on NODE        -> fence NODE (blocked until recorded)
//!      on an UNCLEAN node         -> blocked: waiting for fencing of NODE
//!      placed, not running there  -> start, once stopped everywhere else
//!                                    and its mandatory `first`s run
//! ```
//!
//! The safety rule is placement's: what a lost node ran counts as running
//! there until the cluster recorded its fence; only a fenced node's (or a
//! cleanly departed one's) resources count as stopped.

use super::executor::{OcfAction, OcfStatus};
use super::message::{Admin, AdminChange, LocalRsc, OpId, Order, Report, ResMsg, RscState};
use super::model::Model;
use super::placement::{self, Location, NodeInput, NodeState, Plan, Primitive};
use super::score::Score;
use crate::cluster::{Presence, View};
use crate::config::resources::LocationTarget;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Pacemaker's failcount after a failed start (start-failure-is-fatal):
/// INFINITY, at or above every migration threshold.
const FAILCOUNT_INFINITY: u32 = 1_000_000;

/// What the manager asks of its host.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Send(ResMsg),
    /// Run this order here.
    Run(Order),
    /// Probe every resource here (monitor once), then [`Manager::on_probed`].
    Probe(Vec<String>),
    /// Start (true) or stop the recurring monitor of a local resource.
    Monitor(String, bool),
    /// The node must be fenced before its resources are safe.
    Fence(String, String),
}

/// One resource as `resource status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RscView {
    pub id: String,
    pub agent: String,
    /// Clone or group it belongs to.
    pub parent: Option<String>,
    /// node -> state, where it is not stopped.
    pub on: BTreeMap<String, RscState>,
    /// Where placement wants it.
    pub target: Vec<String>,
    /// A promotable clone's instances are promoted / unpromoted.
    #[serde(default)]
    pub promotable: bool,
    /// Where placement wants it promoted (promotable clones).
    #[serde(default)]
    pub promote_target: Vec<String>,
    /// node -> the promotion score its agent set there.
    #[serde(default)]
    pub promotion_scores: BTreeMap<String, Score>,
    pub blocked: Option<String>,
    /// node -> failcount (non-zero only).
    pub failcounts: BTreeMap<String, u32>,
    pub last_error: Option<String>,
    /// Actions in flight: "start on node2".
    pub pending: Vec<String>,
}

/// The whole resource view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourcesStatus {
    pub coordinator: Option<String>,
    /// Why nothing moves right now, if so.
    pub waiting: Option<String>,
    pub resources: Vec<RscView>,
    pub standby: Vec<String>,
    pub maintenance: Vec<String>,
    pub admin_version: u64,
}

/// The manager (see the module docs).
pub struct Manager {
    model: Model,
    me: String,
    nonce: u64,
    view: View,
    /// The latest report of each node.
    reports: BTreeMap<String, Report>,
    /// This node's own resources.
    local: BTreeMap<String, LocalRsc>,
    probed: bool,
    shutting_down: bool,
    done: Vec<OpId>,
    /// Orders issued and not yet reported done, by id.
    pending: BTreeMap<OpId, Order>,
    /// Orders this coordinator sent that CPG has not delivered back yet.
    sent: BTreeMap<OpId, Order>,
    /// The online members (name, nonce) of the last view.
    online: Vec<(String, u64)>,
    admin: Admin,
    next_op: u64,
    fence_asked: BTreeSet<String>,
    blocked: BTreeMap<String, String>,
    targets: BTreeMap<String, Vec<String>>,
    /// Promotable base -> where placement wants it promoted.
    promote_targets: BTreeMap<String, Vec<String>>,
    waiting: Option<String>,
    /// Node attributes for rule-based locations.
    attrs: BTreeMap<String, BTreeMap<String, String>>,
}

impl Manager {
    pub fn new(
        model: Model,
        me: &str,
        nonce: u64,
        attrs: BTreeMap<String, BTreeMap<String, String>>,
    ) -> Manager {
        let local = model
            .bases()
            .into_iter()
            .map(|b| (b, LocalRsc::default()))
            .collect();
        Manager {
            model,
            me: me.to_string(),
            nonce,
            view: View::default(),
            reports: BTreeMap::new(),
            local,
            probed: false,
            shutting_down: false,
            done: Vec::new(),
            pending: BTreeMap::new(),
            sent: BTreeMap::new(),
            online: Vec::new(),
            admin: Admin::default(),
            next_op: 0,
            fence_asked: BTreeSet::new(),
            blocked: BTreeMap::new(),
            targets: BTreeMap::new(),
            promote_targets: BTreeMap::new(),
            waiting: None,
            attrs,
        }
    }

    /// First step: probe everything here.
    pub fn start(&self) -> Vec<Effect> {
        vec![Effect::Probe(self.model.bases())]
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    fn report(&mut self) -> Effect {
        Effect::Send(ResMsg::Report(Report {
            nonce: self.nonce,
            probed: self.probed,
            shutting_down: self.shutting_down,
            resources: self.local.clone(),
            done: std::mem::take(&mut self.done),
            admin: self.admin.clone(),
        }))
    }

    /// The probes ended: `results` holds each base's monitor status.
    pub fn on_probed(&mut self, results: Vec<(String, OcfStatus)>) -> Vec<Effect> {
        let mut out = Vec::new();
        for (rsc, st) in results {
            let Some(l) = self.local.get_mut(&rsc) else {
                continue;
            };
            l.state = match st.observed() {
                super::executor::Observed::Running => RscState::Started,
                super::executor::Observed::Promoted => RscState::Promoted,
                super::executor::Observed::Stopped => RscState::Stopped,
                super::executor::Observed::Failed => {
                    l.last_error = Some(format!("probe: {}", st.text()));
                    RscState::Failed
                }
            };
            if l.state.healthy() {
                out.push(Effect::Monitor(rsc.clone(), true));
            }
        }
        self.probed = true;
        out.push(self.report());
        out
    }

    /// The daemon stops: move everything away, then leave.
    pub fn shut_down(&mut self) -> Vec<Effect> {
        self.shutting_down = true;
        vec![self.report()]
    }

    /// Nothing runs here any more (the daemon may leave).
    pub fn drained(&self) -> bool {
        self.local.values().all(|l| l.state == RscState::Stopped)
            && !self.pending.values().any(|o| o.node == self.me)
    }

    /// A human's change, to multicast.
    pub fn admin(&self, change: AdminChange) -> Vec<Effect> {
        vec![Effect::Send(ResMsg::Admin(change))]
    }

    /// A new cluster view.
    pub fn on_view(&mut self, view: View, wall_ms: u64) -> Vec<Effect> {
        let mut out = Vec::new();
        let was_active = self.view.active;
        for n in &view.nodes {
            match n.state {
                Presence::Online { nonce } => {
                    if self.reports.get(&n.name).is_some_and(|r| r.nonce != nonce) {
                        self.reports.remove(&n.name);
                    }
                }
                Presence::Fenced | Presence::Left | Presence::Absent => {
                    self.reports.remove(&n.name);
                    self.fence_asked.remove(&n.name);
                }
                Presence::Joining | Presence::Unclean => {}
            }
        }
        // An action in flight on a node that became UNCLEAN did something
        // nobody knows (a start may have finished just before the node
        // died): the resource counts as active there until the fence.
        for o in self.pending.values() {
            let unclean = view
                .nodes
                .iter()
                .any(|n| n.name == o.node && n.state == Presence::Unclean);
            if !unclean {
                continue;
            }
            if let Some(r) = self.reports.get_mut(&o.node) {
                let l = r.resources.entry(o.rsc.clone()).or_default();
                if !l.state.active() {
                    l.state = RscState::Failed;
                    l.last_error = Some(format!("{} in flight when {} was lost", o.action, o.node));
                }
            }
        }
        // orders for nodes that are gone will never be done
        self.pending.retain(|_, o| {
            view.nodes
                .iter()
                .any(|n| n.name == o.node && matches!(n.state, Presence::Online { .. }))
        });
        let online: Vec<(String, u64)> = view
            .nodes
            .iter()
            .filter_map(|n| match n.state {
                Presence::Online { nonce } => Some((n.name.clone(), nonce)),
                _ => None,
            })
            .collect();
        let changed = online != self.online || (view.active && !was_active);
        if view.coordinator.as_deref() != Some(self.me.as_str()) || !view.active {
            self.sent.clear();
        }
        self.online = online;
        self.view = view;
        // members changed: everyone reports again, so newcomers know all
        if changed && self.probed && self.view.active {
            out.push(self.report());
        }
        out.extend(self.decide(wall_ms));
        out
    }

    /// A message from `from` (a node name), in delivery order.
    pub fn on_message(&mut self, from: &str, msg: ResMsg, wall_ms: u64) -> Vec<Effect> {
        let mut out = Vec::new();
        match msg {
            ResMsg::Report(r) => {
                for id in &r.done {
                    self.pending.remove(id);
                }
                if r.admin.version > self.admin.version {
                    self.admin = r.admin.clone();
                }
                let current = self.view.nodes.iter().any(|n| {
                    n.name == from
                        && matches!(n.state, Presence::Online { nonce } if nonce == r.nonce)
                });
                if current || from == self.me {
                    self.reports.insert(from.to_string(), r);
                }
            }
            ResMsg::Actions { orders } => {
                if self.view.coordinator.as_deref() != Some(from) {
                    return out;
                }
                for o in orders {
                    self.sent.remove(&o.id);
                    if o.node == self.me {
                        out.push(Effect::Run(o.clone()));
                    }
                    self.pending.insert(o.id.clone(), o);
                }
            }
            ResMsg::Admin(change) => {
                self.admin.apply(&change);
                if let AdminChange::Cleanup { rsc, node } = &change {
                    if node.as_ref().is_none_or(|n| *n == self.me) {
                        let mut again = Vec::new();
                        for (b, l) in self.local.iter_mut() {
                            if rsc
                                .as_ref()
                                .is_none_or(|r| self.model.cloned.get(b) == Some(r) || r == b)
                            {
                                l.failcount = 0;
                                l.last_failure_ms = None;
                                l.last_error = None;
                                if l.state == RscState::Failed {
                                    again.push(b.clone());
                                }
                            }
                        }
                        if again.is_empty() {
                            out.push(self.report());
                        } else {
                            out.push(Effect::Probe(again));
                        }
                    }
                }
            }
        }
        out.extend(self.decide(wall_ms));
        out
    }

    /// An order of this node ended.
    pub fn on_done(
        &mut self,
        order: &Order,
        status: OcfStatus,
        reason: Option<String>,
        wall_ms: u64,
    ) -> Vec<Effect> {
        let mut out = Vec::new();
        let Some(l) = self.local.get_mut(&order.rsc) else {
            return out;
        };
        let why = |what: &str| {
            format!(
                "{what} on {}: {}{}",
                order.node,
                status.text(),
                reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            )
        };
        match (order.action, status) {
            (OcfAction::Start, OcfStatus::Success) => {
                l.state = RscState::Started;
                out.push(Effect::Monitor(order.rsc.clone(), true));
            }
            (OcfAction::Start, _) => {
                // start-failure-is-fatal: it may not come back here
                l.state = RscState::Failed;
                l.failcount = FAILCOUNT_INFINITY;
                l.last_failure_ms = Some(wall_ms);
                l.last_error = Some(why("start"));
            }
            (OcfAction::Stop, OcfStatus::Success | OcfStatus::NotRunning) => {
                l.state = RscState::Stopped;
                l.demote_first = false;
                out.push(Effect::Monitor(order.rsc.clone(), false));
            }
            (OcfAction::Stop, _) => {
                l.state = RscState::StopFailed;
                l.last_error = Some(why("stop"));
                out.push(Effect::Monitor(order.rsc.clone(), false));
            }
            (OcfAction::Promote, OcfStatus::Success) => {
                l.state = RscState::Promoted;
                l.demote_first = false;
                out.push(Effect::Monitor(order.rsc.clone(), true));
            }
            (OcfAction::Demote, OcfStatus::Success) => {
                // a failed instance stays failed: it is stopped next
                l.demote_first = false;
                if l.state != RscState::Failed {
                    l.state = RscState::Started;
                    out.push(Effect::Monitor(order.rsc.clone(), true));
                }
            }
            (OcfAction::Promote | OcfAction::Demote, _) => {
                // recovered by a stop; a promote that failed half-way is
                // demoted first, a failed demote is not tried again
                l.demote_first = order.action == OcfAction::Promote;
                l.state = RscState::Failed;
                l.failcount += 1;
                l.last_failure_ms = Some(wall_ms);
                l.last_error = Some(why(order.action.as_str()));
            }
            (OcfAction::Monitor, _) => {}
        }
        self.done.push(order.id.clone());
        out.push(self.report());
        out
    }

    /// The promotion score the agent of `rsc` left here (read after each of
    /// its actions); true when it changed (then a report is due).
    pub fn set_promotion(&mut self, rsc: &str, score: Option<Score>) -> bool {
        match self.local.get_mut(rsc) {
            Some(l) if l.promotion != score => {
                l.promotion = score;
                true
            }
            _ => false,
        }
    }

    /// Report this node's resources now (a promotion score changed).
    pub fn report_now(&mut self, wall_ms: u64) -> Vec<Effect> {
        let mut out = vec![self.report()];
        out.extend(self.decide(wall_ms));
        out
    }

    /// A recurring monitor here saw `status`.
    pub fn on_monitor(
        &mut self,
        rsc: &str,
        status: OcfStatus,
        reason: Option<String>,
        wall_ms: u64,
    ) -> Vec<Effect> {
        let Some(l) = self.local.get_mut(rsc) else {
            return Vec::new();
        };
        if !l.state.healthy()
            || status.observed() == super::executor::Observed::Running
                && l.state == RscState::Started
        {
            return Vec::new();
        }
        if status.observed() == super::executor::Observed::Promoted && l.state == RscState::Promoted
        {
            return Vec::new();
        }
        l.demote_first = l.state == RscState::Promoted;
        l.state = RscState::Failed;
        l.failcount += 1;
        l.last_failure_ms = Some(wall_ms);
        l.last_error = Some(format!(
            "monitor on {}: {}{}",
            self.me,
            status.text(),
            reason.map(|r| format!(" ({r})")).unwrap_or_default()
        ));
        vec![Effect::Monitor(rsc.to_string(), false), self.report()]
    }

    /// Expire failcounts past their failure_timeout.
    pub fn on_tick(&mut self, wall_ms: u64) -> Vec<Effect> {
        let mut changed = false;
        for (b, l) in self.local.iter_mut() {
            let timeout = self.model.primitives.get(b).and_then(|p| p.failure_timeout);
            if let (Some(t), Some(at)) = (timeout, l.last_failure_ms) {
                if l.failcount > 0
                    && wall_ms >= at + t.as_millis() as u64
                    && l.state != RscState::Failed
                {
                    l.failcount = 0;
                    l.last_failure_ms = None;
                    changed = true;
                }
            }
        }
        let mut out = Vec::new();
        if changed {
            out.push(self.report());
        }
        out.extend(self.decide(wall_ms));
        out
    }

    fn presence(&self, node: &str) -> Presence {
        self.view
            .nodes
            .iter()
            .find(|n| n.name == node)
            .map(|n| n.state)
            .unwrap_or(Presence::Absent)
    }

    /// Where each base may run now: node -> state, from the reports of
    /// online and UNCLEAN nodes.
    fn active(&self) -> BTreeMap<String, BTreeMap<String, RscState>> {
        let mut out: BTreeMap<String, BTreeMap<String, RscState>> = BTreeMap::new();
        for (node, r) in &self.reports {
            let counts = match self.presence(node) {
                Presence::Online { nonce } => nonce == r.nonce,
                Presence::Unclean => true,
                _ => false,
            };
            if !counts {
                continue;
            }
            for (b, l) in &r.resources {
                if l.state.active() {
                    out.entry(b.clone())
                        .or_default()
                        .insert(node.clone(), l.state);
                }
            }
        }
        out
    }

    fn failcount(&self, node: &str, base: &str) -> u32 {
        self.reports
            .get(node)
            .and_then(|r| r.resources.get(base))
            .map(|l| l.failcount)
            .unwrap_or(0)
    }

    /// The coordinator's step (see the module docs).
    fn decide(&mut self, _wall_ms: u64) -> Vec<Effect> {
        let mut out = Vec::new();
        let active = self.active();
        // blocked reasons and targets are computed by every member (status)
        let Some(input) = self.placement_input(&active) else {
            return out;
        };
        let placed = placement::place(&input);
        let mut targets: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut blocked: BTreeMap<String, String> = BTreeMap::new();
        for u in &self.model.units {
            if let Some(Some(n)) = placed.assigned.get(&u.id) {
                targets.entry(u.base.clone()).or_default().push(n.clone());
            }
            if let Some(Plan::Blocked { reason }) = placed.plans.get(&u.id) {
                blocked.insert(u.base.clone(), reason.clone());
            }
        }
        let mut promote_to: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (b, (cid, _)) in &self.model.promotable {
            if let Some(nodes) = placed.promoted.get(cid) {
                promote_to.insert(b.clone(), nodes.clone());
            }
        }
        // a stop that failed: fence that node (the coordinator asks)
        let mut fences = Vec::new();
        for (b, on) in &active {
            for (node, st) in on {
                if *st == RscState::StopFailed {
                    blocked.insert(
                        b.clone(),
                        format!("blocked: stop failed on {node}, waiting for fencing of {node}"),
                    );
                    fences.push((node.clone(), format!("stop of {b} failed")));
                }
            }
        }
        self.targets = targets.clone();
        self.promote_targets = promote_to.clone();
        self.blocked = blocked.clone();
        let coordinating = self.view.active
            && self.view.quorate
            && self.view.coordinator.as_deref() == Some(self.me.as_str());
        if !coordinating {
            return out;
        }
        for (node, why) in fences {
            if self.fence_asked.insert(node.clone()) {
                out.push(Effect::Fence(node, why));
            }
        }
        let busy: BTreeSet<String> = self
            .pending
            .values()
            .chain(self.sent.values())
            .map(|o| o.rsc.clone())
            .collect();
        let online = |n: &str| matches!(self.presence(n), Presence::Online { .. });
        // what must stop: failed, or running where it is not wanted; a
        // promoted instance is demoted first (also where it stays but is
        // no longer to be promoted)
        let mut stopping: BTreeSet<String> = BTreeSet::new();
        let mut demoting: BTreeSet<String> = BTreeSet::new();
        let mut stops: Vec<(String, String, OcfAction)> = Vec::new();
        for (b, on) in &active {
            if blocked.contains_key(b) {
                continue;
            }
            let want = targets.get(b).cloned().unwrap_or_default();
            let promo = promote_to.get(b).cloned().unwrap_or_default();
            for (node, st) in on {
                if !online(node) {
                    continue;
                }
                let must_stop = *st == RscState::Failed || !want.contains(node);
                if self.promoted_there(node, b) && (must_stop || !promo.contains(node)) {
                    demoting.insert(b.clone());
                    stops.push((b.clone(), node.clone(), OcfAction::Demote));
                } else if must_stop {
                    stopping.insert(b.clone());
                    stops.push((b.clone(), node.clone(), OcfAction::Stop));
                }
            }
        }
        // mandatory orders: a `then` restarts when its `first` stops (or,
        // for a first_action = promote, is demoted)
        loop {
            let mut grew = false;
            for o in &self.model.orders {
                let first_goes = stopping.contains(&o.first)
                    || (o.first_promoted && demoting.contains(&o.first));
                if first_goes && o.symmetrical && !stopping.contains(&o.then) {
                    if let Some(on) = active.get(&o.then) {
                        for node in on.keys().filter(|n| online(n)) {
                            let action = if self.promoted_there(node, &o.then) {
                                demoting.insert(o.then.clone());
                                OcfAction::Demote
                            } else {
                                OcfAction::Stop
                            };
                            stops.push((o.then.clone(), node.clone(), action));
                        }
                        stopping.insert(o.then.clone());
                        grew = true;
                    }
                }
            }
            if !grew {
                break;
            }
        }
        let mut orders = Vec::new();
        let held = self.admin.maintenance.clone();
        let maintenance = |n: &str| held.contains(n);
        for (b, node, action) in stops {
            if busy.contains(&b) || maintenance(&node) {
                continue;
            }
            // its mandatory `then`s stop first (before a demote: only
            // those that wait for its promotion)
            let thens_running = self.model.orders.iter().any(|o| {
                o.first == b
                    && o.symmetrical
                    && (action == OcfAction::Stop || o.first_promoted)
                    && (active.get(&o.then).is_some_and(|m| !m.is_empty())
                        || busy.contains(&o.then))
            });
            if thens_running {
                continue;
            }
            if orders.iter().any(|o: &Order| o.rsc == b && o.node == node) {
                continue;
            }
            let instance = self.instance_on(&active, &b, &node);
            orders.push(self.order(&node, &b, action, instance));
        }
        for (b, want) in &targets {
            if busy.contains(b)
                || blocked.contains_key(b)
                || stopping.contains(b)
                || demoting.contains(b)
            {
                continue;
            }
            let on = active.get(b).cloned().unwrap_or_default();
            let cloned = self.model.cloned.contains_key(b);
            // a primitive starts only once it is stopped everywhere
            if !cloned && on.keys().any(|n| !want.contains(n)) {
                continue;
            }
            if !self.firsts_ready(b, &active, &busy, &stopping) {
                continue;
            }
            for (i, node) in want.iter().enumerate() {
                if on.contains_key(node) || maintenance(node) {
                    continue;
                }
                let instance = cloned.then_some(i as u32);
                orders.push(self.order(node, b, OcfAction::Start, instance));
            }
        }
        // promotions: on a started instance, while fewer than promoted_max
        // are promoted anywhere (an UNCLEAN node's count until its fence)
        for (b, (_, max)) in self.model.promotable.clone() {
            if busy.contains(&b)
                || blocked.contains_key(&b)
                || stopping.contains(&b)
                || demoting.contains(&b)
                || orders.iter().any(|o| o.rsc == b)
            {
                continue;
            }
            let on = active.get(&b).cloned().unwrap_or_default();
            let mut promoted = on.keys().filter(|n| self.promoted_there(n, &b)).count() as u32;
            for node in promote_to.get(&b).cloned().unwrap_or_default() {
                if promoted >= max || maintenance(&node) {
                    break;
                }
                let up = matches!(self.presence(&node), Presence::Online { .. });
                if on.get(&node) == Some(&RscState::Started) && up {
                    let instance = self.instance_on(&active, &b, &node);
                    orders.push(self.order(&node, &b, OcfAction::Promote, instance));
                    promoted += 1;
                }
            }
        }
        for o in &orders {
            self.sent.insert(o.id.clone(), o.clone());
        }
        if !orders.is_empty() {
            out.push(Effect::Send(ResMsg::Actions { orders }));
        }
        out
    }

    /// Whether every mandatory `first` of `b` runs where it should (and is
    /// promoted there, for a first_action = promote).
    /// (Reads this decision's targets, stored before it is called.)
    fn firsts_ready(
        &self,
        b: &str,
        active: &BTreeMap<String, BTreeMap<String, RscState>>,
        busy: &BTreeSet<String>,
        stopping: &BTreeSet<String>,
    ) -> bool {
        self.model.orders.iter().filter(|o| o.then == b).all(|o| {
            if busy.contains(&o.first) || stopping.contains(&o.first) {
                return false;
            }
            let running = active.get(&o.first).cloned().unwrap_or_default();
            let wanted = if o.first_promoted {
                &self.promote_targets
            } else {
                &self.targets
            }
            .get(&o.first)
            .cloned()
            .unwrap_or_default();
            !wanted.is_empty()
                && wanted.iter().all(|n| match running.get(n) {
                    Some(s) if o.first_promoted => *s == RscState::Promoted,
                    Some(s) => s.healthy(),
                    None => false,
                })
        })
    }

    /// `b` runs promoted on `node`, or failed there while promoted.
    fn promoted_there(&self, node: &str, b: &str) -> bool {
        self.reports
            .get(node)
            .and_then(|r| r.resources.get(b))
            .is_some_and(|l| l.state == RscState::Promoted || (l.state.active() && l.demote_first))
    }

    /// The clone instance number `b` has on `node` (None: not cloned),
    /// from the decision's picture of where it runs.
    fn instance_on(
        &self,
        active: &BTreeMap<String, BTreeMap<String, RscState>>,
        b: &str,
        node: &str,
    ) -> Option<u32> {
        self.model.cloned.get(b)?;
        let i = active
            .get(b)
            .and_then(|on| on.keys().position(|n| n == node))
            .unwrap_or(0);
        Some(i as u32)
    }

    fn order(&mut self, node: &str, rsc: &str, action: OcfAction, instance: Option<u32>) -> Order {
        self.next_op += 1;
        Order {
            id: OpId {
                by: self.me.clone(),
                n: self.next_op,
            },
            node: node.to_string(),
            rsc: rsc.to_string(),
            action,
            instance,
        }
    }

    /// Placement's input, or None while the picture is incomplete.
    fn placement_input(
        &mut self,
        active: &BTreeMap<String, BTreeMap<String, RscState>>,
    ) -> Option<placement::Input> {
        if !self.view.active {
            self.waiting = Some("this member is not active in the cluster yet".into());
            return None;
        }
        let unreported: Vec<&str> = self
            .view
            .nodes
            .iter()
            .filter(|n| match n.state {
                Presence::Online { nonce } => !self
                    .reports
                    .get(&n.name)
                    .is_some_and(|r| r.nonce == nonce && r.probed),
                _ => false,
            })
            .map(|n| n.name.as_str())
            .collect();
        if !unreported.is_empty() {
            self.waiting = Some(format!(
                "waiting for the probes of {}",
                unreported.join(", ")
            ));
            return None;
        }
        self.waiting = None;
        let nodes: Vec<NodeInput> = self
            .view
            .nodes
            .iter()
            .map(|n| NodeInput {
                name: n.name.clone(),
                state: match n.state {
                    Presence::Online { .. } => {
                        let r = self.reports.get(&n.name);
                        if r.is_some_and(|r| r.shutting_down)
                            || self.admin.standby.contains(&n.name)
                            || self.admin.maintenance.contains(&n.name)
                        {
                            NodeState::Standby
                        } else {
                            NodeState::Online
                        }
                    }
                    Presence::Unclean => NodeState::Unclean,
                    _ => NodeState::Offline,
                },
            })
            .collect();
        let mut nodes = nodes;
        // a node whose stop failed is as good as UNCLEAN until fenced
        for on in active.values() {
            for (node, st) in on {
                if *st == RscState::StopFailed {
                    if let Some(n) = nodes.iter_mut().find(|n| n.name == *node) {
                        n.state = NodeState::Unclean;
                    }
                }
            }
        }
        let mut resources = Vec::new();
        let mut locations = Vec::new();
        for u in &self.model.units {
            let Some(p) = self.model.primitives.get(&u.base) else {
                continue;
            };
            let on: Vec<&String> = active
                .get(&u.base)
                .map(|m| m.keys().collect())
                .unwrap_or_default();
            let running_on = match &u.clone {
                // instance i takes the i-th node it runs on
                Some((_, i, _)) => on.get(*i as usize).map(|s| s.to_string()),
                None => on.first().map(|s| s.to_string()),
            };
            let stickiness = if u.clone.is_some() && p.stickiness == Score::ZERO {
                Score::new(1)
            } else {
                p.stickiness
            };
            resources.push(Primitive {
                id: u.id.clone(),
                priority: p.priority,
                stickiness,
                running_on,
            });
            let parents: Vec<&String> = [
                self.model.cloned.get(&u.base),
                self.model.grouped.get(&u.base),
            ]
            .into_iter()
            .flatten()
            .collect();
            let stopped = self.admin.stopped.contains(&u.base)
                || parents.iter().any(|p| self.admin.stopped.contains(*p));
            for n in &self.view.nodes {
                let mut s = Score::ZERO;
                let mut any = false;
                if stopped {
                    s = Score::MINUS_INFINITY;
                    any = true;
                }
                // migration-threshold defaults to INFINITY (a failed start's failcount)
                let t = p.migration_threshold.unwrap_or(FAILCOUNT_INFINITY);
                if self.failcount(&n.name, &u.base) >= t {
                    s = s + Score::MINUS_INFINITY;
                    any = true;
                }
                for id in std::iter::once(&u.base).chain(parents.iter().copied()) {
                    if let Some(v) = self.admin.constraints.get(id).and_then(|c| c.get(&n.name)) {
                        s = s + Score::new(*v);
                        any = true;
                    }
                }
                for (unit, target, score) in &self.model.locations {
                    if *unit != u.id {
                        continue;
                    }
                    let applies = match target {
                        LocationTarget::Node(node) => *node == n.name,
                        LocationTarget::Attribute { name, value } => self
                            .attrs
                            .get(&n.name)
                            .and_then(|a| a.get(name))
                            .is_some_and(|v| v == value),
                    };
                    if applies {
                        s = s + *score;
                        any = true;
                    }
                }
                if any {
                    locations.push(Location {
                        rsc: u.id.clone(),
                        node: n.name.clone(),
                        score: s,
                    });
                }
            }
        }
        let mut promotable = Vec::new();
        for (b, (cid, max)) in &self.model.promotable {
            let mut scores = BTreeMap::new();
            for (node, r) in &self.reports {
                if let Some(v) = r.resources.get(b).and_then(|l| l.promotion) {
                    scores.insert(node.clone(), v);
                }
            }
            let promoted_on = active
                .get(b)
                .map(|on| {
                    on.keys()
                        .filter(|n| self.promoted_there(n, b))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            promotable.push(placement::Promotable {
                id: cid.clone(),
                instances: self.model.units_of(b).map(|u| u.id.clone()).collect(),
                promoted_max: *max,
                scores,
                promoted_on,
                locations: BTreeMap::new(),
            });
        }
        Some(placement::Input {
            nodes,
            resources,
            locations,
            colocations: self.model.colocations.clone(),
            promotable,
        })
    }

    /// What `resource status` shows.
    pub fn status(&self) -> ResourcesStatus {
        let active = self.active();
        let mut resources = Vec::new();
        for b in self.model.bases() {
            let Some(p) = self.model.primitives.get(&b) else {
                continue;
            };
            let mut failcounts = BTreeMap::new();
            let mut last_error = None;
            let mut promotion_scores = BTreeMap::new();
            for (node, r) in &self.reports {
                if let Some(l) = r.resources.get(&b) {
                    if let Some(v) = l.promotion {
                        promotion_scores.insert(node.clone(), v);
                    }
                    if l.failcount > 0 {
                        failcounts.insert(node.clone(), l.failcount);
                    }
                    if l.last_error.is_some() {
                        last_error = l.last_error.clone();
                    }
                }
            }
            resources.push(RscView {
                id: b.clone(),
                agent: format!("ocf:{}:{}", p.agent.provider, p.agent.kind),
                parent: self
                    .model
                    .cloned
                    .get(&b)
                    .or_else(|| self.model.grouped.get(&b))
                    .cloned(),
                on: active.get(&b).cloned().unwrap_or_default(),
                target: self.targets.get(&b).cloned().unwrap_or_default(),
                promotable: self.model.promotable.contains_key(&b),
                promote_target: self.promote_targets.get(&b).cloned().unwrap_or_default(),
                promotion_scores,
                blocked: self.blocked.get(&b).cloned(),
                failcounts,
                last_error,
                pending: self
                    .pending
                    .values()
                    .filter(|o| o.rsc == b)
                    .map(|o| format!("{} on {}", o.action, o.node))
                    .collect(),
            });
        }
        ResourcesStatus {
            coordinator: self.view.coordinator.clone(),
            waiting: self.waiting.clone(),
            resources,
            standby: self.admin.standby.iter().cloned().collect(),
            maintenance: self.admin.maintenance.iter().cloned().collect(),
            admin_version: self.admin.version,
        }
    }
}

impl ResourcesStatus {
    /// crm_mon-like text.
    pub fn text(&self) -> String {
        let mut s = String::new();
        s.push_str(&format!(
            "Resources ({}; coordinator {}):\n",
            self.resources.len(),
            self.coordinator.as_deref().unwrap_or("none")
        ));
        if let Some(w) = &self.waiting {
            s.push_str(&format!("  ({w})\n"));
        }
        for r in &self.resources {
            let on: Vec<String> =
                r.on.iter()
                    .map(|(n, st)| match st {
                        RscState::Started => n.clone(),
                        RscState::Promoted => format!("{n} (promoted)"),
                        RscState::Failed => format!("{n} (FAILED)"),
                        RscState::StopFailed => format!("{n} (STOP FAILED)"),
                        RscState::Stopped => format!("{n} (stopped)"),
                    })
                    .collect();
            let state = if on.is_empty() {
                "Stopped".to_string()
            } else if r.promotable {
                // crm_mon: "Promoted: [ node1 ] Unpromoted: [ node2 node3 ]"
                let role = |want: RscState| -> Vec<&str> {
                    r.on.iter()
                        .filter(|(_, st)| **st == want)
                        .map(|(n, _)| n.as_str())
                        .collect()
                };
                let mut parts = Vec::new();
                for (label, st) in [
                    ("Promoted", RscState::Promoted),
                    ("Unpromoted", RscState::Started),
                    ("FAILED", RscState::Failed),
                    ("STOP FAILED", RscState::StopFailed),
                ] {
                    let nodes = role(st);
                    if !nodes.is_empty() {
                        parts.push(format!("{label}: [ {} ]", nodes.join(" ")));
                    }
                }
                parts.join(" ")
            } else {
                format!("Started {}", on.join(" "))
            };
            let parent = r
                .parent
                .as_deref()
                .map(|p| format!(" [{p}]"))
                .unwrap_or_default();
            s.push_str(&format!("  * {}{parent}\t({}):\t{state}", r.id, r.agent));
            if let Some(b) = &r.blocked {
                s.push_str(&format!("  ({b})"));
            }
            if !r.pending.is_empty() {
                s.push_str(&format!("  [{}]", r.pending.join(", ")));
            }
            s.push('\n');
            for (n, c) in &r.failcounts {
                s.push_str(&format!("      failcount on {n}: {c}\n"));
            }
            if let Some(e) = &r.last_error {
                s.push_str(&format!("      last failure: {e}\n"));
            }
        }
        if !self.standby.is_empty() {
            s.push_str(&format!("Standby: {}\n", self.standby.join(" ")));
        }
        if !self.maintenance.is_empty() {
            s.push_str(&format!("Maintenance: {}\n", self.maintenance.join(" ")));
        }
        s
    }
}

#[cfg(test)]
mod tests;
