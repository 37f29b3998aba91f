//! The fencer task and the execution of one request.

use super::history::{now_ms, Event, HistoryLog, HistoryRecord, RequestSummary, Summaries};
use super::request::{FenceAction, FenceOutcome, FenceRequest, FenceResult, Step};
use super::topology::{PlannedLevel, Topology};
use super::FencerError;
use crate::config::{Config, DeviceConfig, HostCheck, Level, StormGuard};
use crate::power::{self, verify, PowerDevice, PowerError, PowerState};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, oneshot, Mutex, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{error, info, warn, Instrument};

/// How long a dynamic `list` answer is trusted.
const LIST_CACHE: Duration = Duration::from_secs(60);

/// A registered device.
pub(crate) struct DeviceEntry {
    cfg: DeviceConfig,
    power: Arc<dyn PowerDevice>,
    permits: Arc<Semaphore>,
    list_cache: Mutex<Option<(Instant, Vec<String>)>>,
}

type Registry = BTreeMap<String, Arc<DeviceEntry>>;

/// A device as `ironfence devices` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceInfo {
    pub name: String,
    pub kind: String,
    pub agent: Option<String>,
    pub host_check: String,
    pub hosts: Vec<String>,
    pub action_limit: u32,
}

/// One device's answer to `status NODE`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceStatus {
    pub device: String,
    pub plug: String,
    pub state: Option<PowerState>,
    pub error: Option<String>,
}

type Reply = oneshot::Sender<Result<FenceOutcome, FencerError>>;

enum Msg {
    Fence(
        FenceRequest,
        oneshot::Sender<Result<FenceOutcome, FencerError>>,
    ),
    Confirm(
        String,
        String,
        oneshot::Sender<Result<FenceOutcome, FencerError>>,
    ),
    Record(HistoryRecord),
    Done(u64, FenceOutcome),
    History(Option<String>, oneshot::Sender<Vec<RequestSummary>>),
    Records(u64, oneshot::Sender<Vec<HistoryRecord>>),
    AllRecords(oneshot::Sender<Vec<HistoryRecord>>),
    Snapshot(oneshot::Sender<(Arc<Registry>, Arc<Topology>)>),
    LevelAdd(Level, oneshot::Sender<Result<(), FencerError>>),
    LevelRemove(u8, String, oneshot::Sender<Result<(), FencerError>>),
    DeviceAdd(Box<DeviceConfig>, oneshot::Sender<Result<(), FencerError>>),
    DeviceRemove(String, oneshot::Sender<Result<(), FencerError>>),
    Remote(HistoryRecord, oneshot::Sender<u64>),
    Shutdown(oneshot::Sender<()>),
}

/// Handle to the fencer task. Cheap to clone.
#[derive(Clone)]
pub struct Fencer {
    tx: mpsc::Sender<Msg>,
    events: broadcast::Sender<HistoryRecord>,
    verify_interval: Duration,
}

fn entry(cfg: DeviceConfig, power: Arc<dyn PowerDevice>) -> Arc<DeviceEntry> {
    Arc::new(DeviceEntry {
        permits: Arc::new(Semaphore::new(cfg.action_limit as usize)),
        cfg,
        power,
        list_cache: Mutex::new(None),
    })
}

impl Fencer {
    /// Open the history in the configured state directory, mark requests
    /// interrupted by a previous crash, and start the fencer task.
    /// `overrides` replaces the adapters of named devices (demo, tests).
    pub fn start(
        config: &Config,
        overrides: HashMap<String, Arc<dyn PowerDevice>>,
    ) -> Result<(Fencer, JoinHandle<()>), FencerError> {
        let mut history = HistoryLog::open(&config.daemon.state_dir)?;
        if history.skipped_lines > 0 {
            warn!(
                path = %history.path().display(),
                lines = history.skipped_lines,
                "skipped unreadable history lines (torn write from a crash?)"
            );
        }
        for (request, target) in history.unfinished() {
            warn!(request, node = %target, "request was in flight when the daemon stopped; marking it interrupted");
            history.append(HistoryRecord {
                ts_ms: now_ms(),
                request,
                target,
                event: Event::Interrupted {
                    reason:
                        "interrupted: ironfenced stopped before the request finished (not fenced)"
                            .into(),
                },
            })?;
        }
        let registry: Registry = config
            .devices
            .iter()
            .map(|d| {
                let power = overrides
                    .get(&d.name)
                    .cloned()
                    .unwrap_or_else(|| power::build(d));
                (d.name.clone(), entry(d.clone(), power))
            })
            .collect();
        let (tx, rx) = mpsc::channel(1024);
        let (events, _) = broadcast::channel(1024);
        let engine = Engine {
            next_id: history.max_request() + 1,
            summaries: Summaries::from_records(history.records()),
            queued: HashMap::new(),
            history,
            registry: Arc::new(registry),
            topology: Arc::new(Topology {
                nodes: config.nodes.clone(),
                levels: config.levels.clone(),
            }),
            storm: config.daemon.storm,
            fencing_timeout: config.daemon.fencing_timeout,
            verify_interval: config.daemon.verify_interval,
            inflight: HashMap::new(),
            tx: tx.clone(),
            events: events.clone(),
        };
        let handle = tokio::spawn(engine.run(rx));
        Ok((
            Fencer {
                tx,
                events,
                verify_interval: config.daemon.verify_interval,
            },
            handle,
        ))
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Msg) -> Result<T, FencerError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| FencerError::Stopped)?;
        rx.await.map_err(|_| FencerError::Stopped)
    }

    /// Fence (or unfence) a node; returns when the request has ended.
    pub async fn fence(&self, req: FenceRequest) -> Result<FenceOutcome, FencerError> {
        self.ask(|r| Msg::Fence(req, r)).await?
    }

    /// A human declares `target` safely down.
    pub async fn confirm(&self, target: &str, by: &str) -> Result<FenceOutcome, FencerError> {
        self.ask(|r| Msg::Confirm(target.to_string(), by.to_string(), r))
            .await?
    }

    /// Summaries of requests, optionally for one node.
    pub async fn history(&self, target: Option<&str>) -> Result<Vec<RequestSummary>, FencerError> {
        self.ask(|r| Msg::History(target.map(str::to_string), r))
            .await
    }

    /// The last request that fenced `target`.
    pub async fn last(&self, target: &str) -> Result<Option<RequestSummary>, FencerError> {
        Ok(self
            .history(Some(target))
            .await?
            .into_iter()
            .rev()
            .find(|s| s.fenced()))
    }

    /// Every record of one request.
    pub async fn records(&self, request: u64) -> Result<Vec<HistoryRecord>, FencerError> {
        self.ask(|r| Msg::Records(request, r)).await
    }

    /// Append another cluster member's fence (an [`Event::Remote`]) to the
    /// durable history, under a request id of its own; returns that id.
    pub async fn record_remote(&self, target: &str, event: Event) -> Result<u64, FencerError> {
        let record = HistoryRecord {
            ts_ms: now_ms(),
            request: 0,
            target: target.to_string(),
            event,
        };
        self.ask(|r| Msg::Remote(record, r)).await
    }

    /// Every record of the history (for what a member must not record twice).
    pub async fn all_records(&self) -> Result<Vec<HistoryRecord>, FencerError> {
        self.ask(Msg::AllRecords).await
    }

    /// Records as they are appended (demo timeline).
    pub fn subscribe(&self) -> broadcast::Receiver<HistoryRecord> {
        self.events.subscribe()
    }

    async fn snapshot(&self) -> Result<(Arc<Registry>, Arc<Topology>), FencerError> {
        self.ask(Msg::Snapshot).await
    }

    async fn device(&self, name: &str) -> Result<Arc<DeviceEntry>, FencerError> {
        let (reg, _) = self.snapshot().await?;
        reg.get(name)
            .cloned()
            .ok_or_else(|| FencerError::NoSuchDevice(name.to_string()))
    }

    /// Registered devices.
    pub async fn devices(&self) -> Result<Vec<DeviceInfo>, FencerError> {
        let (reg, _) = self.snapshot().await?;
        Ok(reg
            .values()
            .map(|e| DeviceInfo {
                name: e.cfg.name.clone(),
                kind: e.cfg.kind.name().to_string(),
                agent: match &e.cfg.kind {
                    crate::config::DeviceKind::Agent(a) => Some(a.agent.clone()),
                    _ => None,
                },
                host_check: e.cfg.hosts.check.as_str().to_string(),
                hosts: e
                    .cfg
                    .hosts
                    .list
                    .iter()
                    .chain(e.cfg.hosts.map.keys())
                    .cloned()
                    .collect(),
                action_limit: e.cfg.action_limit,
            })
            .collect())
    }

    /// Devices able to fence `target`, in topology order.
    pub async fn query(&self, target: &str) -> Result<Vec<String>, FencerError> {
        let (reg, topo) = self.snapshot().await?;
        if !topo.knows_node(target) {
            return Err(FencerError::NoSuchNode(target.to_string()));
        }
        let plan = plan(&reg, &topo, target).await;
        let mut out = Vec::new();
        for l in plan {
            for d in l.devices {
                if let Some(e) = reg.get(&d) {
                    if can_fence(e, target).await.is_ok() && !out.contains(&d) {
                        out.push(d);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Power state of `target` as each device able to fence it reads it.
    pub async fn status(&self, target: &str) -> Result<Vec<DeviceStatus>, FencerError> {
        let (reg, _) = self.snapshot().await?;
        let mut out = Vec::new();
        for d in self.query(target).await? {
            let Some(e) = reg.get(&d) else { continue };
            let plug = e.cfg.hosts.plug_for(target).to_string();
            let r = tokio::time::timeout(e.cfg.timeouts.status, e.power.status(&plug)).await;
            let (state, error) = match r {
                Ok(Ok(s)) => (Some(s), None),
                Ok(Err(err)) => (None, Some(err.to_string())),
                Err(_) => (
                    None,
                    Some(
                        PowerError::Timeout {
                            device: d.clone(),
                            what: "status".into(),
                            after: e.cfg.timeouts.status,
                        }
                        .to_string(),
                    ),
                ),
            };
            out.push(DeviceStatus {
                device: d,
                plug,
                state,
                error,
            });
        }
        Ok(out)
    }

    /// Targets a device can fence.
    pub async fn targets(&self, device: &str) -> Result<Vec<String>, FencerError> {
        let e = self.device(device).await?;
        match e.cfg.hosts.check {
            HostCheck::StaticList | HostCheck::None | HostCheck::Status
                if !e.cfg.hosts.list.is_empty() || !e.cfg.hosts.map.is_empty() =>
            {
                Ok(e.cfg
                    .hosts
                    .list
                    .iter()
                    .chain(e.cfg.hosts.map.keys())
                    .cloned()
                    .collect())
            }
            _ => Ok(cached_list(&e).await?),
        }
    }

    /// Check a device is reachable and accepts our credentials.
    pub async fn monitor(&self, device: &str) -> Result<(), FencerError> {
        let e = self.device(device).await?;
        match tokio::time::timeout(e.cfg.timeouts.monitor, e.power.monitor()).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(PowerError::Timeout {
                device: device.to_string(),
                what: "monitor".into(),
                after: e.cfg.timeouts.monitor,
            }
            .into()),
        }
    }

    /// Names of every device (for `validate`).
    pub async fn device_names(&self) -> Result<Vec<String>, FencerError> {
        let (reg, _) = self.snapshot().await?;
        Ok(reg.keys().cloned().collect())
    }

    pub async fn level_add(&self, level: Level) -> Result<(), FencerError> {
        self.ask(|r| Msg::LevelAdd(level, r)).await?
    }
    pub async fn level_remove(&self, index: u8, target: &str) -> Result<(), FencerError> {
        self.ask(|r| Msg::LevelRemove(index, target.to_string(), r))
            .await?
    }
    pub async fn device_add(&self, cfg: DeviceConfig) -> Result<(), FencerError> {
        self.ask(|r| Msg::DeviceAdd(Box::new(cfg), r)).await?
    }
    pub async fn device_remove(&self, name: &str) -> Result<(), FencerError> {
        self.ask(|r| Msg::DeviceRemove(name.to_string(), r)).await?
    }

    /// Node names and device names currently known (for validating runtime changes).
    pub async fn names(&self) -> Result<(Vec<String>, Vec<String>), FencerError> {
        let (reg, topo) = self.snapshot().await?;
        Ok((
            topo.nodes.iter().map(|n| n.name.clone()).collect(),
            reg.keys().cloned().collect(),
        ))
    }

    /// Stop: in-flight requests are recorded as interrupted.
    pub async fn shutdown(&self) {
        let _ = self.ask(Msg::Shutdown).await;
    }

    pub fn verify_interval(&self) -> Duration {
        self.verify_interval
    }
}

struct InFlight {
    target: String,
    action: FenceAction,
    waiters: Vec<oneshot::Sender<Result<FenceOutcome, FencerError>>>,
    task: JoinHandle<()>,
    started: Instant,
}

struct Engine {
    history: HistoryLog,
    summaries: Summaries,
    /// Requests waiting for an earlier request of the same target to end.
    queued: HashMap<String, VecDeque<(FenceRequest, Reply)>>,
    next_id: u64,
    registry: Arc<Registry>,
    topology: Arc<Topology>,
    storm: StormGuard,
    fencing_timeout: Duration,
    verify_interval: Duration,
    inflight: HashMap<u64, InFlight>,
    tx: mpsc::Sender<Msg>,
    events: broadcast::Sender<HistoryRecord>,
}

impl Engine {
    async fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        while let Some(msg) = rx.recv().await {
            match msg {
                Msg::Fence(req, reply) => self.fence(req, reply),
                Msg::Confirm(target, by, reply) => {
                    let r = self.confirm(&target, &by);
                    let _ = reply.send(r);
                }
                Msg::Record(r) => self.record(r),
                Msg::Done(id, outcome) => self.done(id, outcome),
                Msg::History(target, reply) => {
                    let all = self.summaries.all().iter();
                    let _ = reply.send(match target {
                        Some(t) => all.filter(|s| s.target == t).cloned().collect(),
                        None => all.cloned().collect(),
                    });
                }
                Msg::Records(id, reply) => {
                    let _ = reply.send(
                        self.history
                            .records()
                            .iter()
                            .filter(|r| r.request == id)
                            .cloned()
                            .collect(),
                    );
                }
                Msg::AllRecords(reply) => {
                    let _ = reply.send(self.history.records().to_vec());
                }
                Msg::Remote(mut record, reply) => {
                    record.request = self.next_id;
                    self.next_id += 1;
                    let id = record.request;
                    self.record(record);
                    let _ = reply.send(id);
                }
                Msg::Snapshot(reply) => {
                    let _ = reply.send((self.registry.clone(), self.topology.clone()));
                }
                Msg::LevelAdd(l, reply) => {
                    let _ = reply.send(self.level_add(l));
                }
                Msg::LevelRemove(i, t, reply) => {
                    let _ = reply.send(self.level_remove(i, &t));
                }
                Msg::DeviceAdd(d, reply) => {
                    let _ = reply.send(self.device_add(*d));
                }
                Msg::DeviceRemove(n, reply) => {
                    let _ = reply.send(self.device_remove(&n));
                }
                Msg::Shutdown(reply) => {
                    self.interrupt_all("interrupted: ironfenced was stopped before the request finished (not fenced)");
                    let _ = reply.send(());
                    return;
                }
            }
        }
    }

    fn record(&mut self, r: HistoryRecord) {
        self.summaries.apply(&r);
        if let Err(e) = self.history.append(r.clone()) {
            error!(cause = %e, "could not write fencing history");
        }
        let _ = self.events.send(r);
    }

    fn emit(&mut self, request: u64, target: &str, event: Event) {
        self.record(HistoryRecord {
            ts_ms: now_ms(),
            request,
            target: target.to_string(),
            event,
        });
    }

    fn fence(&mut self, req: FenceRequest, reply: Reply) {
        if !self.topology.knows_node(&req.target) {
            let _ = reply.send(Err(FencerError::NoSuchNode(req.target)));
            return;
        }
        // An identical request in flight: wait for its result instead.
        if let Some(f) = self
            .inflight
            .values_mut()
            .find(|f| f.target == req.target && f.action == req.action)
        {
            f.waiters.push(reply);
            return;
        }
        // One request per node at a time: an off must never race a reboot's
        // power-on. Others wait their turn, in order.
        if self.inflight.values().any(|f| f.target == req.target) {
            self.queued
                .entry(req.target.clone())
                .or_default()
                .push_back((req, reply));
            return;
        }
        self.start(req, reply);
    }

    fn start(&mut self, req: FenceRequest, reply: Reply) {
        let id = self.next_id;
        self.next_id += 1;
        self.emit(
            id,
            &req.target,
            Event::Requested {
                action: req.action,
                origin: req.origin.clone(),
                delay_ms: req.delay.as_millis() as u64,
                tolerance_ms: req.tolerance.as_millis() as u64,
                force: req.force,
            },
        );
        if req.action != FenceAction::On {
            if let Some(done) = self.tolerated(id, &req) {
                let _ = reply.send(Ok(done));
                self.start_queued(&req.target);
                return;
            }
            if let Some(reason) = self.storm_refusal(&req) {
                self.emit(
                    id,
                    &req.target,
                    Event::Refused {
                        action: req.action,
                        reason: reason.clone(),
                    },
                );
                let _ = reply.send(Ok(without_devices(
                    &req,
                    id,
                    FenceResult::Refused,
                    0,
                    reason,
                )));
                self.start_queued(&req.target);
                return;
            }
        }
        let ctx = Exec {
            id,
            req: req.clone(),
            registry: self.registry.clone(),
            topology: self.topology.clone(),
            fencing_timeout: self.fencing_timeout,
            verify_interval: self.verify_interval,
            tx: self.tx.clone(),
        };
        let span =
            tracing::info_span!("fence", request = id, node = %req.target, action = %req.action);
        let tx = self.tx.clone();
        let task = tokio::spawn(
            async move {
                let out = ctx.run().await;
                let _ = tx.send(Msg::Done(out.request, out)).await;
            }
            .instrument(span),
        );
        self.inflight.insert(
            id,
            InFlight {
                target: req.target,
                action: req.action,
                waiters: vec![reply],
                task,
                started: Instant::now(),
            },
        );
    }

    /// Start the next queued request of `target`, if any.
    fn start_queued(&mut self, target: &str) {
        if self.inflight.values().any(|f| f.target == target) {
            return;
        }
        let next = self.queued.get_mut(target).and_then(VecDeque::pop_front);
        if self.queued.get(target).is_some_and(VecDeque::is_empty) {
            self.queued.remove(target);
        }
        if let Some((req, reply)) = next {
            self.fence(req, reply);
        }
    }

    /// Whether an observed (or confirmed) fence of the target within
    /// `--tolerance` already covers this request. An off is covered only by
    /// an off or a confirm (a reboot leaves the node on); a reboot by any of
    /// them. Tolerated requests never cover later ones.
    fn tolerated(&mut self, id: u64, req: &FenceRequest) -> Option<FenceOutcome> {
        if req.tolerance.is_zero() {
            return None;
        }
        let now = now_ms();
        let window = req.tolerance.as_millis() as u64;
        let covers = |s: &RequestSummary| {
            matches!(
                (s.state.as_str(), s.action, req.action),
                ("confirmed", _, _)
                    | ("fenced", Some(FenceAction::Off), _)
                    | ("fenced", Some(FenceAction::Reboot), FenceAction::Reboot)
            )
        };
        let prior = self
            .summaries
            .all()
            .iter()
            .rev()
            .filter(|s| s.target == req.target)
            .find(|s| s.finished_ms.is_some() && s.state != "tolerated" && s.state != "pending")?
            .clone();
        let finished = prior.finished_ms?;
        // A clock that stepped back (finished "in the future") proves nothing.
        if !covers(&prior) || finished > now || now - finished > window {
            return None;
        }
        let reason = format!(
            "{} by request {} {:.1} s ago covers this {} (within --tolerance)",
            if prior.state == "confirmed" {
                "confirmed down"
            } else {
                "fenced"
            },
            prior.request,
            (now - finished) as f64 / 1000.0,
            req.action
        );
        self.emit(
            id,
            &req.target,
            Event::Tolerated {
                action: req.action,
                prior: prior.request,
                reason: reason.clone(),
            },
        );
        Some(without_devices(req, id, FenceResult::Tolerated, 0, reason))
    }

    /// The fence-storm guard: refuse (unless forced) when this request would
    /// make more than ceil(storm_max_share x nodes) distinct nodes fenced or
    /// being fenced within the storm window.
    fn storm_refusal(&self, req: &FenceRequest) -> Option<String> {
        let nodes = self.topology.nodes.len();
        if req.force || nodes == 0 {
            return None;
        }
        let limit = ((self.storm.max_share * nodes as f64).ceil() as usize).max(1);
        let now = now_ms();
        let window = self.storm.window.as_millis() as u64;
        let mut targets: Vec<&str> = self
            .inflight
            .values()
            .filter(|f| f.action != FenceAction::On)
            .map(|f| f.target.as_str())
            .collect();
        for s in self.summaries.all() {
            if s.state == "fenced"
                && s.action != Some(FenceAction::On)
                && s.finished_ms.is_some_and(|f| f <= now && now - f <= window)
            {
                targets.push(&s.target);
            }
        }
        targets.push(&req.target);
        targets.sort();
        targets.dedup();
        (targets.len() > limit).then(|| {
            format!(
                "fence-storm guard: fencing {} would make {} of {} nodes fenced within {} (limit {} = storm_max_share {} of the nodes); a human may override with --force",
                req.target,
                targets.len(),
                nodes,
                humantime::format_duration(self.storm.window),
                limit,
                self.storm.max_share
            )
        })
    }

    fn confirm(&mut self, target: &str, by: &str) -> Result<FenceOutcome, FencerError> {
        if !self.topology.knows_node(target) {
            return Err(FencerError::NoSuchNode(target.to_string()));
        }
        let id = self.next_id;
        self.next_id += 1;
        self.emit(id, target, Event::Confirmed { by: by.to_string() });
        let message = format!("{target} confirmed down by {by} (manual; power not observed)");
        // Pending fences of this node end now: a human vouched for it.
        let pending: Vec<u64> = self
            .inflight
            .iter()
            .filter(|(_, f)| f.target == target && f.action != FenceAction::On)
            .map(|(id, _)| *id)
            .collect();
        for pid in pending {
            if let Some(f) = self.inflight.remove(&pid) {
                f.task.abort();
                let how = format!(
                    "confirmed down by {by} while in flight (request {id}); power not observed"
                );
                // Recorded as a human's word, never as an observed fence.
                self.emit(pid, target, Event::Confirmed { by: by.to_string() });
                for w in f.waiters {
                    let _ = w.send(Ok(FenceOutcome {
                        request: pid,
                        target: target.to_string(),
                        action: f.action,
                        result: FenceResult::Confirmed,
                        level: None,
                        devices: vec![],
                        elapsed_ms: f.started.elapsed().as_millis() as u64,
                        message: how.clone(),
                        warning: None,
                    }));
                }
            }
        }
        self.start_queued(target);
        Ok(FenceOutcome {
            request: id,
            target: target.to_string(),
            action: FenceAction::Off,
            result: FenceResult::Confirmed,
            level: None,
            devices: vec![],
            elapsed_ms: 0,
            message,
            warning: None,
        })
    }

    fn done(&mut self, id: u64, out: FenceOutcome) {
        let Some(f) = self.inflight.remove(&id) else {
            return; // already completed by a confirm
        };
        let event = match out.result {
            FenceResult::Fenced | FenceResult::PoweredOn => Event::Succeeded {
                action: out.action,
                level: out.level,
                devices: out.devices.clone(),
                ms: out.elapsed_ms,
                how: out.message.clone(),
                warning: out.warning.clone(),
            },
            _ => Event::Failed {
                action: out.action,
                ms: out.elapsed_ms,
                reason: out.message.clone(),
                timeout: out.result == FenceResult::TimedOut,
            },
        };
        self.emit(id, &out.target, event);
        match out.result {
            FenceResult::Fenced | FenceResult::PoweredOn => {
                info!(request = id, node = %out.target, action = %out.action, "{}", out.message)
            }
            _ => warn!(request = id, node = %out.target, action = %out.action, "{}", out.message),
        }
        for w in f.waiters {
            let _ = w.send(Ok(out.clone()));
        }
        self.start_queued(&out.target);
    }

    fn interrupt_all(&mut self, reason: &str) {
        for (_, waiting) in self.queued.drain() {
            for (_, reply) in waiting {
                let _ = reply.send(Err(FencerError::Stopped));
            }
        }
        let ids: Vec<u64> = self.inflight.keys().copied().collect();
        for id in ids {
            if let Some(f) = self.inflight.remove(&id) {
                f.task.abort();
                self.emit(
                    id,
                    &f.target,
                    Event::Interrupted {
                        reason: reason.to_string(),
                    },
                );
                for w in f.waiters {
                    let _ = w.send(Ok(FenceOutcome {
                        request: id,
                        target: f.target.clone(),
                        action: f.action,
                        result: FenceResult::Interrupted,
                        level: None,
                        devices: vec![],
                        elapsed_ms: f.started.elapsed().as_millis() as u64,
                        message: reason.to_string(),
                        warning: None,
                    }));
                }
            }
        }
    }

    fn level_add(&mut self, level: Level) -> Result<(), FencerError> {
        let mut topo = (*self.topology).clone();
        topo.levels
            .retain(|l| !(l.index == level.index && l.target == level.target));
        info!(level = level.index, target = %level.target, devices = ?level.devices, "level registered");
        topo.levels.push(level);
        topo.levels.sort_by_key(|l| l.index);
        self.topology = Arc::new(topo);
        Ok(())
    }

    fn level_remove(&mut self, index: u8, target: &str) -> Result<(), FencerError> {
        let mut topo = (*self.topology).clone();
        let before = topo.levels.len();
        topo.levels
            .retain(|l| !(l.index == index && l.target.to_string() == target));
        if topo.levels.len() == before {
            return Err(FencerError::NoSuchLevel {
                index,
                target: target.to_string(),
            });
        }
        self.topology = Arc::new(topo);
        Ok(())
    }

    fn device_add(&mut self, cfg: DeviceConfig) -> Result<(), FencerError> {
        let mut reg = (*self.registry).clone();
        info!(device = %cfg.name, kind = cfg.kind.name(), "device registered");
        let power = power::build(&cfg);
        reg.insert(cfg.name.clone(), entry(cfg, power));
        self.registry = Arc::new(reg);
        Ok(())
    }

    fn device_remove(&mut self, name: &str) -> Result<(), FencerError> {
        if let Some(l) = self
            .topology
            .levels
            .iter()
            .find(|l| l.devices.iter().any(|d| d == name))
        {
            return Err(FencerError::InUse {
                device: name.to_string(),
                level: l.index,
                target: l.target.to_string(),
            });
        }
        let mut reg = (*self.registry).clone();
        if reg.remove(name).is_none() {
            return Err(FencerError::NoSuchDevice(name.to_string()));
        }
        self.registry = Arc::new(reg);
        Ok(())
    }
}

#[allow(clippy::too_many_arguments)]
fn outcome(
    req: &FenceRequest,
    id: u64,
    result: FenceResult,
    level: Option<u8>,
    devices: Vec<String>,
    elapsed_ms: u64,
    message: String,
    warning: Option<String>,
) -> FenceOutcome {
    FenceOutcome {
        request: id,
        target: req.target.clone(),
        action: req.action,
        result,
        level,
        devices,
        elapsed_ms,
        message,
        warning,
    }
}

/// An outcome with no level and no devices (refused, tolerated, timed out, failed).
fn without_devices(
    req: &FenceRequest,
    id: u64,
    result: FenceResult,
    elapsed_ms: u64,
    message: String,
) -> FenceOutcome {
    outcome(req, id, result, None, vec![], elapsed_ms, message, None)
}

/// Whether `e` can fence `target`, per its host_check.
async fn can_fence(e: &DeviceEntry, target: &str) -> Result<(), String> {
    let plug = e.cfg.hosts.plug_for(target);
    match e.cfg.hosts.check {
        HostCheck::None => Ok(()),
        HostCheck::StaticList => {
            if e.cfg.hosts.statically_lists(target) {
                Ok(())
            } else {
                Err(format!(
                    "{} cannot fence {target}: not in its host_list/host_map",
                    e.cfg.name
                ))
            }
        }
        HostCheck::DynamicList => match cached_list(e).await {
            Ok(l) if l.iter().any(|p| p == plug || p == target) => Ok(()),
            Ok(_) => Err(format!(
                "{} cannot fence {target}: `{plug}` is not in the device's list",
                e.cfg.name
            )),
            Err(err) => Err(format!("{} list failed: {err}", e.cfg.name)),
        },
        HostCheck::Status => {
            match tokio::time::timeout(e.cfg.timeouts.status, e.power.status(plug)).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(err)) => Err(format!("{} cannot report {target}: {err}", e.cfg.name)),
                Err(_) => Err(format!("{} status of {target} timed out", e.cfg.name)),
            }
        }
    }
}

async fn cached_list(e: &DeviceEntry) -> Result<Vec<String>, PowerError> {
    let mut cache = e.list_cache.lock().await;
    if let Some((at, list)) = cache.as_ref() {
        if at.elapsed() < LIST_CACHE {
            return Ok(list.clone());
        }
    }
    let list = match tokio::time::timeout(e.cfg.timeouts.list, e.power.list()).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(PowerError::Timeout {
                device: e.cfg.name.clone(),
                what: "list".into(),
                after: e.cfg.timeouts.list,
            })
        }
    };
    *cache = Some((Instant::now(), list.clone()));
    Ok(list)
}

/// The levels to try for `target`: configured ones, else one implicit
/// level per capable device.
async fn plan(reg: &Registry, topo: &Topology, target: &str) -> Vec<PlannedLevel> {
    let configured = topo.configured_for(target);
    if !configured.is_empty() {
        return configured;
    }
    let mut out = Vec::new();
    for (name, e) in reg {
        if can_fence(e, target).await.is_ok() {
            out.push(PlannedLevel {
                index: u8::try_from(out.len() + 1).unwrap_or(u8::MAX),
                devices: vec![name.clone()],
                implicit: true,
            });
        }
    }
    out
}

/// Everything one request's task needs.
struct Exec {
    id: u64,
    req: FenceRequest,
    registry: Arc<Registry>,
    topology: Arc<Topology>,
    fencing_timeout: Duration,
    verify_interval: Duration,
    tx: mpsc::Sender<Msg>,
}

enum StepFailure {
    Failed(String),
    Deadline(String),
}

impl Exec {
    async fn emit(&self, event: Event) {
        let _ = self
            .tx
            .send(Msg::Record(HistoryRecord {
                ts_ms: now_ms(),
                request: self.id,
                target: self.req.target.clone(),
                event,
            }))
            .await;
    }

    async fn run(self) -> FenceOutcome {
        let start = Instant::now();
        let budget = self
            .req
            .delay
            .saturating_add(self.req.timeout.unwrap_or(self.fencing_timeout));
        let deadline = start
            .checked_add(budget)
            .unwrap_or_else(|| start + crate::config::MAX_DURATION);
        let req = &self.req;
        let ms = || start.elapsed().as_millis() as u64;
        if !req.delay.is_zero() {
            self.emit(Event::Delay {
                device: None,
                ms: req.delay.as_millis() as u64,
                reason: "requested --delay".into(),
            })
            .await;
            tokio::time::sleep(req.delay).await;
        }
        let Ok(levels) =
            tokio::time::timeout_at(deadline, plan(&self.registry, &self.topology, &req.target))
                .await
        else {
            let msg = format!(
                "{} of {}: no device answered its capability check before the deadline",
                req.action, req.target
            );
            return without_devices(req, self.id, FenceResult::TimedOut, ms(), msg);
        };
        if levels.is_empty() {
            let msg = format!(
                "no device can fence {}: add a [[level]] for it or a device with it in host_list",
                req.target
            );
            return without_devices(req, self.id, FenceResult::Failed, ms(), msg);
        }
        let mut reasons: Vec<String> = Vec::new();
        let mut first = true;
        for level in levels {
            self.emit(Event::Level {
                level: level.index,
                devices: level.devices.clone(),
                implicit: level.implicit,
            })
            .await;
            let mut entries = Vec::new();
            let mut unusable = None;
            for d in &level.devices {
                match self.registry.get(d) {
                    None => unusable = Some(format!("device {d} is not registered")),
                    Some(e) => {
                        match tokio::time::timeout_at(deadline, can_fence(e, &req.target)).await {
                            Ok(Ok(())) => entries.push(e.clone()),
                            Ok(Err(why)) => unusable = Some(why),
                            Err(_) => {
                                unusable = Some(format!(
                                    "{d}: capability check ran into the request deadline"
                                ))
                            }
                        }
                    }
                }
            }
            if let Some(why) = unusable {
                self.level_failed(level.index, &why, &mut reasons).await;
                continue;
            }
            if first && req.action != FenceAction::On {
                self.race_delay(&entries, deadline).await;
            }
            first = false;
            let names: Vec<String> = entries.iter().map(|e| e.cfg.name.clone()).collect();
            let steps: &[Step] = match req.action {
                FenceAction::Off => &[Step::Off],
                FenceAction::On => &[Step::On],
                FenceAction::Reboot => &[Step::Off, Step::On],
            };
            let mut failed = None;
            let mut warning = None;
            for &step in steps {
                for e in &entries {
                    match self.step(level.index, e, step, deadline).await {
                        Ok(()) => {}
                        Err(StepFailure::Deadline(why))
                            if !(req.action == FenceAction::Reboot && step == Step::On) =>
                        {
                            reasons.push(format!("level {}: {why}", level.index));
                            let msg = format!(
                                "{} of {} timed out after {} s: {}",
                                req.action,
                                req.target,
                                ms() / 1000,
                                reasons.join("; ")
                            );
                            return without_devices(req, self.id, FenceResult::TimedOut, ms(), msg);
                        }
                        Err(StepFailure::Failed(why)) | Err(StepFailure::Deadline(why)) => {
                            if req.action == FenceAction::Reboot && step == Step::On {
                                // Off was verified: the node is fenced. A failed
                                // power-on does not undo that.
                                warning = Some(format!("power on after the reboot failed: {why}"));
                            } else {
                                failed = Some(why);
                            }
                        }
                    }
                    if failed.is_some() {
                        break;
                    }
                }
                if failed.is_some() {
                    break;
                }
            }
            if let Some(why) = failed {
                self.level_failed(level.index, &why, &mut reasons).await;
                continue;
            }
            // A poison pill is not a power read-back: say what was observed.
            let pill = entries
                .iter()
                .all(|e| matches!(e.cfg.kind, crate::config::DeviceKind::Sbd(_)));
            let (result, how) = match (req.action, pill) {
                (FenceAction::On, true) => (FenceResult::PoweredOn, "poison pill cleared"),
                (FenceAction::On, false) => (FenceResult::PoweredOn, "power read back as on"),
                (_, true) => (
                    FenceResult::Fenced,
                    "poison pill read back on a majority of disks and msgwait elapsed",
                ),
                (FenceAction::Off, false) => (FenceResult::Fenced, "power read back as off"),
                (FenceAction::Reboot, false) => {
                    (FenceResult::Fenced, "power read back as off, then on")
                }
            };
            let msg = format!(
                "{} {} by level {} ({}): {how}",
                req.target,
                if req.action == FenceAction::On {
                    "powered on"
                } else {
                    "fenced"
                },
                level.index,
                names.join(", ")
            );
            return outcome(
                req,
                self.id,
                result,
                Some(level.index),
                names,
                ms(),
                msg,
                warning,
            );
        }
        let msg = format!(
            "{} of {} failed on every level: {}",
            req.action,
            req.target,
            reasons.join("; ")
        );
        without_devices(req, self.id, FenceResult::Failed, ms(), msg)
    }

    async fn level_failed(&self, level: u8, why: &str, reasons: &mut Vec<String>) {
        warn!(level, cause = %why, "fencing level failed; trying the next one");
        self.emit(Event::LevelFailed {
            level,
            reason: why.to_string(),
        })
        .await;
        reasons.push(format!("level {level}: {why}"));
    }

    /// `delay_base + random(0..=delay_max - delay_base)`, the largest of the level's
    /// devices, once per request, before the first level that can act.
    async fn race_delay(&self, entries: &[Arc<DeviceEntry>], deadline: Instant) {
        let mut best: Option<(Duration, &str)> = None;
        for e in entries {
            let d = e.cfg.delay;
            if d.base.is_zero() && d.max.is_zero() {
                continue;
            }
            // Pacemaker's meaning: base, plus a random part that keeps the
            // total at or below delay_max.
            let room = d.max.saturating_sub(d.base);
            let random = if room.is_zero() {
                Duration::ZERO
            } else {
                rand::thread_rng().gen_range(Duration::ZERO..=room)
            };
            let total = d.base + random;
            if best.is_none_or(|(b, _)| total > b) {
                best = Some((total, &e.cfg.name));
            }
        }
        if let Some((d, dev)) = best {
            let d = d.min(deadline.saturating_duration_since(Instant::now()));
            self.emit(Event::Delay {
                device: Some(dev.to_string()),
                ms: d.as_millis() as u64,
                reason: "delay_base + random delay_max (breaks fence races)".into(),
            })
            .await;
            tokio::time::sleep(d).await;
        }
    }

    /// One power step on one device: bounded attempts, each verified.
    async fn step(
        &self,
        level: u8,
        e: &DeviceEntry,
        step: Step,
        deadline: Instant,
    ) -> Result<(), StepFailure> {
        let plug = e.cfg.hosts.plug_for(&self.req.target).to_string();
        let (limit, retries) = match step {
            Step::Off => (e.cfg.timeouts.off, e.cfg.retries.off),
            Step::On => (e.cfg.timeouts.on, e.cfg.retries.on),
        };
        let want = match step {
            Step::Off => PowerState::Off,
            Step::On => PowerState::On,
        };
        let _permit = match tokio::time::timeout_at(deadline, e.permits.clone().acquire_owned())
            .await
        {
            Ok(Ok(p)) => p,
            Ok(Err(_)) => return Err(StepFailure::Failed(format!("{} is shut down", e.cfg.name))),
            Err(_) => {
                return Err(StepFailure::Deadline(format!(
                    "{} was busy (action_limit {}) until the deadline",
                    e.cfg.name, e.cfg.action_limit
                )))
            }
        };
        let attempts = retries + 1;
        let mut last = String::new();
        for attempt in 1..=attempts {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(StepFailure::Deadline(format!("{}: {last}", e.cfg.name)));
            }
            let this_limit = limit.min(remaining);
            self.emit(Event::Attempt {
                level,
                device: e.cfg.name.clone(),
                plug: plug.clone(),
                step,
                attempt,
                of: attempts,
            })
            .await;
            let t = Instant::now();
            let r = verify::set_and_verify(
                e.power.as_ref(),
                &plug,
                want,
                this_limit,
                self.verify_interval,
            )
            .await;
            let ms = t.elapsed().as_millis() as u64;
            match r {
                Ok(_) => {
                    self.emit(Event::AttemptDone {
                        level,
                        device: e.cfg.name.clone(),
                        step,
                        attempt,
                        ok: true,
                        ms,
                        error: None,
                    })
                    .await;
                    return Ok(());
                }
                Err(err) => {
                    warn!(device = %e.cfg.name, step = %step, attempt, cause = %err, "attempt failed");
                    // a device that was not reached at all is not asked
                    // again: the next level gets the time
                    let unreached = matches!(err, PowerError::Connect { .. });
                    last = err.to_string();
                    self.emit(Event::AttemptDone {
                        level,
                        device: e.cfg.name.clone(),
                        step,
                        attempt,
                        ok: false,
                        ms,
                        error: Some(last.clone()),
                    })
                    .await;
                    if unreached && attempt < attempts {
                        last = format!("{last} (not retried: the device was not reached)");
                        break;
                    }
                }
            }
        }
        if Instant::now() >= deadline {
            Err(StepFailure::Deadline(last))
        } else {
            Err(StepFailure::Failed(last))
        }
    }
}
