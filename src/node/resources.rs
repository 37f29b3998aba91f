//! The resource task in `ironfenced`: hosts the [`Manager`], feeds it the
//! cluster's views and resource messages (in CPG's order), runs its orders,
//! probes and recurring monitors through the OCF [`executor`], multicasts
//! what it says, and asks the cluster task to fence a node whose stop
//! failed. One task owns the manager; the API reaches it through a
//! [`ResourcesHandle`].
//!
//! ```text
//!  loop: feed (view | message) | order/probe/monitor ended | monitor due
//!        | tick (failure expiry) | API (status, admin, drain) | shutdown
//! ```
//!
//! Only one action per resource runs at a time here: a monitor is not
//! started while an order of its resource runs, and a monitor that was
//! running when an order began is ignored.

use crate::cluster::runner::{ClusterHandle, Feed};
use crate::fencer::history::now_ms;
use crate::resources::attributes::{self, Store};
use crate::resources::executor::{self, CloneMeta, Invocation, OcfAction, OcfStatus, Outcome};
use crate::resources::manager::{Effect, Manager, ResourcesStatus};
use crate::resources::message::{AdminChange, Order, ResMsg};
use crate::resources::model::Model;
use crate::resources::score::Score;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// Failure timeouts are checked this often.
const TICK: Duration = Duration::from_secs(1);
/// Probe timeout when a resource has no monitor.
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// What the task needs.
pub struct Parts {
    pub model: Model,
    pub me: String,
    pub nonce: u64,
    pub cluster: ClusterHandle,
    pub feed: mpsc::UnboundedReceiver<Feed>,
    pub root: PathBuf,
    pub resource_tmp: PathBuf,
    /// `[daemon] agent_env`.
    pub agent_env: BTreeMap<String, String>,
    /// The agents' own node attributes (promotion scores), set up already.
    pub attributes: Store,
    /// Node attributes (rule-based locations).
    pub attrs: BTreeMap<String, BTreeMap<String, String>>,
}

enum Cmd {
    Status(oneshot::Sender<ResourcesStatus>),
    Admin(AdminChange),
    /// Move everything away; answer once nothing runs here (or at the deadline).
    Drain(Instant, oneshot::Sender<bool>),
}

/// Handle to the resource task. Cheap to clone.
#[derive(Clone)]
pub struct ResourcesHandle {
    tx: mpsc::Sender<Cmd>,
}

impl ResourcesHandle {
    pub async fn status(&self) -> Option<ResourcesStatus> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Cmd::Status(tx)).await.ok()?;
        rx.await.ok()
    }

    pub async fn admin(&self, change: AdminChange) {
        let _ = self.tx.send(Cmd::Admin(change)).await;
    }

    /// Stop everything here (moving it to other nodes); true once nothing
    /// runs here, false at `limit`.
    pub async fn drain(&self, limit: Duration) -> bool {
        let (tx, rx) = oneshot::channel();
        if self
            .tx
            .send(Cmd::Drain(Instant::now() + limit, tx))
            .await
            .is_err()
        {
            return true;
        }
        rx.await.unwrap_or(false)
    }
}

/// What ended in the executor.
enum Done {
    Order(Order, Outcome),
    Probe(Vec<(String, OcfStatus)>),
    Monitor(String, u64, Outcome),
}

struct Task {
    manager: Manager,
    cluster: ClusterHandle,
    me: String,
    root: PathBuf,
    resource_tmp: PathBuf,
    agent_env: BTreeMap<String, String>,
    attributes: Store,
    jobs: JoinSet<Done>,
    /// rsc -> next monitor due
    monitors: BTreeMap<String, Instant>,
    /// rsc -> generation (bumped when an order starts)
    generation: BTreeMap<String, u64>,
    /// resources with an order or monitor running
    busy: BTreeMap<String, bool>,
    drains: Vec<(Instant, oneshot::Sender<bool>)>,
}

/// Start the task.
pub fn start(
    parts: Parts,
    shutdown: watch::Receiver<bool>,
) -> (ResourcesHandle, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(64);
    let manager = Manager::new(parts.model, &parts.me, parts.nonce, parts.attrs);
    let task = Task {
        manager,
        cluster: parts.cluster,
        me: parts.me,
        root: parts.root,
        resource_tmp: parts.resource_tmp,
        agent_env: parts.agent_env,
        attributes: parts.attributes,
        jobs: JoinSet::new(),
        monitors: BTreeMap::new(),
        generation: BTreeMap::new(),
        busy: BTreeMap::new(),
        drains: Vec::new(),
    };
    let h = tokio::spawn(task.run(parts.feed, rx, shutdown));
    (ResourcesHandle { tx }, h)
}

impl Task {
    async fn run(
        mut self,
        mut feed: mpsc::UnboundedReceiver<Feed>,
        mut cmds: mpsc::Receiver<Cmd>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let first = self.manager.start();
        self.apply(first).await;
        let mut tick = tokio::time::interval(TICK);
        let mut feed_open = true;
        loop {
            let due = self.monitors.values().min().copied();
            tokio::select! {
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        break;
                    }
                }
                ev = feed.recv(), if feed_open => {
                    let wall = now_ms();
                    let effects = match ev {
                        Some(Feed::View(v)) => self.manager.on_view(v, wall),
                        Some(Feed::Message { from, body }) => match serde_json::from_value::<ResMsg>(body) {
                            Ok(m) => self.manager.on_message(&from, m, wall),
                            Err(e) => {
                                warn!(from_node = %from, cause = %e, "ignored a resources message");
                                Vec::new()
                            }
                        },
                        None => {
                            // the cluster task ended: the daemon stops
                            feed_open = false;
                            Vec::new()
                        }
                    };
                    self.apply(effects).await;
                }
                Some(done) = self.jobs.join_next(), if !self.jobs.is_empty() => {
                    match done {
                        Ok(d) => self.on_done(d).await,
                        Err(e) => warn!(cause = %e, "an agent task failed"),
                    }
                }
                _ = sleep_until(due) => self.monitor_due().await,
                _ = tick.tick() => {
                    let effects = self.manager.on_tick(now_ms());
                    self.apply(effects).await;
                }
                cmd = cmds.recv() => match cmd {
                    Some(Cmd::Status(reply)) => {
                        let _ = reply.send(self.manager.status());
                    }
                    Some(Cmd::Admin(change)) => {
                        let effects = self.manager.admin(change);
                        self.apply(effects).await;
                    }
                    Some(Cmd::Drain(deadline, reply)) => {
                        let effects = self.manager.shut_down();
                        self.apply(effects).await;
                        self.drains.push((deadline, reply));
                    }
                    None => {}
                },
            }
            self.answer_drains();
        }
        self.jobs.abort_all();
    }

    fn answer_drains(&mut self) {
        let drained = self.manager.drained();
        let now = Instant::now();
        let mut keep = Vec::new();
        for (deadline, reply) in self.drains.drain(..) {
            if drained {
                let _ = reply.send(true);
            } else if now >= deadline {
                let _ = reply.send(false);
            } else {
                keep.push((deadline, reply));
            }
        }
        self.drains = keep;
        if let Some(d) = self.drains.iter().map(|(d, _)| *d).min() {
            // wake at the deadline: a monitor entry that is never run
            self.monitors.entry(String::new()).or_insert(d);
        }
    }

    fn invocation(
        &self,
        rsc: &str,
        action: OcfAction,
        instance: Option<u32>,
    ) -> Option<Invocation> {
        let p = self.manager.model().primitives.get(rsc)?;
        let monitor_timeout = p
            .monitor
            .as_ref()
            .map(|m| m.timeout)
            .unwrap_or(PROBE_TIMEOUT);
        let (timeout, interval) = match action {
            OcfAction::Start | OcfAction::Promote => (p.start_timeout, Duration::ZERO),
            OcfAction::Stop | OcfAction::Demote => (p.stop_timeout, Duration::ZERO),
            OcfAction::Monitor => (monitor_timeout, Duration::ZERO),
        };
        let clone = self
            .manager
            .model()
            .units_of(rsc)
            .find_map(|u| u.clone.as_ref())
            .map(|(_, _, k)| CloneMeta {
                instance: instance.unwrap_or(0),
                clone_max: *k,
                clone_node_max: 1,
                promoted_max: self.manager.model().promotable.get(rsc).map(|(_, m)| *m),
            });
        let bin = self.attributes.bin();
        let mut env: Vec<(String, String)> = self
            .agent_env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        env.extend([
            (
                "HA_RSCTMP".to_string(),
                self.resource_tmp.display().to_string(),
            ),
            // crm_attribute / crm_master are ours (attributes::shim)
            ("HA_SBIN_DIR".into(), bin.display().to_string()),
            (
                "PATH".into(),
                format!("{}:{}", bin.display(), executor::AGENT_PATH),
            ),
            (
                attributes::STORE_ENV.into(),
                self.attributes.dir().display().to_string(),
            ),
        ]);
        Some(Invocation {
            root: self.root.clone(),
            agent: p.agent.clone(),
            action,
            instance: rsc.to_string(),
            params: p.params.clone(),
            timeout,
            interval,
            node: self.me.clone(),
            clone,
            env,
        })
    }

    /// The recurring monitor's interval of `rsc`, if it has one.
    fn monitor_interval(&self, rsc: &str) -> Option<Duration> {
        let p = self.manager.model().primitives.get(rsc)?;
        p.monitor.as_ref().map(|m| m.interval)
    }

    async fn apply(&mut self, effects: Vec<Effect>) {
        for e in effects {
            match e {
                Effect::Send(m) => match serde_json::to_value(&m) {
                    Ok(body) => self.cluster.send_resources(body).await,
                    Err(e) => warn!(cause = %e, "could not encode a resources message"),
                },
                Effect::Run(order) => {
                    let Some(inv) = self.invocation(&order.rsc, order.action, order.instance)
                    else {
                        continue;
                    };
                    *self.generation.entry(order.rsc.clone()).or_default() += 1;
                    self.busy.insert(order.rsc.clone(), true);
                    info!(rsc = %order.rsc, action = %order.action, by = %order.id.by, "running");
                    self.jobs.spawn(async move {
                        let out = executor::run(&inv).await;
                        Done::Order(order, out)
                    });
                }
                Effect::Probe(bases) => {
                    let invs: Vec<(String, Invocation)> = bases
                        .iter()
                        .filter_map(|b| {
                            self.invocation(b, OcfAction::Monitor, None)
                                .map(|i| (b.clone(), i))
                        })
                        .collect();
                    self.jobs.spawn(async move {
                        let mut set = JoinSet::new();
                        for (b, inv) in invs {
                            set.spawn(async move { (b, executor::run(&inv).await.status) });
                        }
                        let mut results = Vec::new();
                        while let Some(Ok(r)) = set.join_next().await {
                            results.push(r);
                        }
                        Done::Probe(results)
                    });
                }
                Effect::Monitor(rsc, on) => {
                    let interval = self.monitor_interval(&rsc);
                    match (on, interval) {
                        (true, Some(i)) => {
                            self.monitors.insert(rsc, Instant::now() + i);
                        }
                        _ => {
                            self.monitors.remove(&rsc);
                        }
                    }
                }
                Effect::Fence(node, why) => {
                    warn!(node = %node, reason = %why, "a stop failed: fencing the node");
                    self.cluster.fence_member(&node, &why).await;
                }
            }
        }
    }

    async fn monitor_due(&mut self) {
        let now = Instant::now();
        let due: Vec<String> = self
            .monitors
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(r, _)| r.clone())
            .collect();
        for rsc in due {
            self.monitors.remove(&rsc);
            if rsc.is_empty() {
                continue; // a drain deadline
            }
            if self.busy.get(&rsc).copied().unwrap_or(false) {
                continue; // its order reschedules it
            }
            let Some(mut inv) = self.invocation(&rsc, OcfAction::Monitor, None) else {
                continue;
            };
            if let Some(i) = self.monitor_interval(&rsc) {
                inv.interval = i;
            }
            let generation = self.generation.get(&rsc).copied().unwrap_or(0);
            self.busy.insert(rsc.clone(), true);
            self.jobs.spawn(async move {
                let out = executor::run(&inv).await;
                Done::Monitor(rsc, generation, out)
            });
        }
    }

    /// Pick up the promotion score the agent of `rsc` may have set; true
    /// when it changed.
    fn read_promotion(&mut self, rsc: &str) -> bool {
        if !self.manager.model().promotable.contains_key(rsc) {
            return false;
        }
        let score = self
            .attributes
            .promotion(rsc)
            .and_then(|v| Score::parse(&v));
        self.manager.set_promotion(rsc, score)
    }

    async fn on_done(&mut self, d: Done) {
        let wall = now_ms();
        let effects = match d {
            Done::Order(order, out) => {
                self.busy.insert(order.rsc.clone(), false);
                let level = if matches!(out.status, OcfStatus::Success)
                    || (order.action == OcfAction::Stop && out.status == OcfStatus::NotRunning)
                {
                    tracing::Level::INFO
                } else {
                    tracing::Level::WARN
                };
                if level == tracing::Level::INFO {
                    info!(rsc = %order.rsc, action = %order.action, elapsed_ms = out.elapsed.as_millis() as u64, "done");
                } else {
                    warn!(rsc = %order.rsc, action = %order.action, result = %out.status.text(), reason = ?out.reason, "failed");
                }
                self.read_promotion(&order.rsc);
                self.manager.on_done(&order, out.status, out.reason, wall)
            }
            Done::Probe(results) => {
                debug!(?results, "probes ended");
                for (rsc, _) in &results {
                    self.read_promotion(rsc);
                }
                self.manager.on_probed(results)
            }
            Done::Monitor(rsc, generation, out) => {
                self.busy.insert(rsc.clone(), false);
                if self.generation.get(&rsc).copied().unwrap_or(0) != generation {
                    return; // an order ran meanwhile: this result is stale
                }
                let interval = self.monitor_interval(&rsc);
                if let Some(i) = interval {
                    self.monitors.insert(rsc.clone(), Instant::now() + i);
                }
                if out.status.observed() == executor::Observed::Failed
                    || out.status.observed() == executor::Observed::Stopped
                {
                    warn!(rsc = %rsc, result = %out.status.text(), reason = ?out.reason, "monitor failed");
                }
                let changed = self.read_promotion(&rsc);
                let mut effects = self.manager.on_monitor(&rsc, out.status, out.reason, wall);
                if changed && effects.is_empty() {
                    effects = self.manager.report_now(wall);
                }
                effects
            }
        };
        self.apply(effects).await;
    }
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
