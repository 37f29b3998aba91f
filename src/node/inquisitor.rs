//! The inquisitor: the one supervisor that decides, each loop, whether this
//! node may feed its watchdog (after ClusterLabs sbd's inquisitor).
//!
//! ```text
//!   disk servants (1-3) --events--\
//!   quorum watch (corosync) -------> inquisitor --keepalive--> watchdog
//!   fencer ping -------------------/      |
//!                                         +--self-fence--> sysrq / recorder
//!
//!  each loop (watchdog.interval):
//!    disks:   majority of disks live within io_timeout + interval (1-2 disks: one)
//!    quorum:  corosync answered recently, connected and quorate; a lone
//!             two_node survivor only while its disks are healthy
//!    fencer:  its task answered within its deadline
//!    all healthy  -> (first time: open and arm the watchdog) keepalive
//!    not healthy  -> no keepalive; armed and quorum lost (policy suicide)
//!                    -> self-fence now; armed and no feed for a whole
//!                    watchdog timeout -> self-fence (timeout_action)
//!  poison pill (reset/off/crashdump) in our slot -> self-fence at once
//!  `exit` message or SIGTERM -> stop servants, disarm (magic close), end
//! ```
//!
//! Only this module feeds or disarms the watchdog. A crash or hang of the
//! daemon leaves the watchdog armed: the hardware then resets the node.

use crate::config::{DelayStart, DiskTimeouts, LocalConfig, NoQuorumPolicy, SelfFenceAction};
use crate::fencer::Fencer;
use crate::quorum::{QuorumSource, QuorumView, Timing};
use crate::sbd::format::Command;
use crate::sbd::servant::{Servant, ServantEvent};
use crate::watchdog::Watchdog;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{error, info, warn};

use super::self_fence::SelfFence;
use super::status::{NodeStatus, ServantStatus, WatchdogStatus};

/// How a supervised run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Ending {
    /// Asked to stop (SIGTERM or an `exit` message); the watchdog was disarmed.
    Stopped,
    /// The node fenced itself (a recorder returned, or sysrq failed and the
    /// watchdog is left armed).
    SelfFenced {
        action: SelfFenceAction,
        reason: String,
    },
    /// It could not start or go on (clean start mode, a watchdog that cannot be armed).
    Failed(String),
}

/// The state of one disk servant as the inquisitor sees it.
#[derive(Debug, Clone)]
pub struct DiskState {
    pub path: PathBuf,
    pub started: bool,
    pub last_live: Option<Instant>,
    pub last_error: Option<String>,
}

/// What the quorum servant contributes to a decision.
#[derive(Debug, Clone)]
pub struct QuorumInput {
    pub view: QuorumView,
    /// Last time corosync answered a round trip.
    pub alive_at: Instant,
    /// How old `alive_at` may be.
    pub deadline: Duration,
    pub policy: NoQuorumPolicy,
}

/// One loop's decision.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Verdict {
    /// Every servant is healthy: feed.
    pub healthy: bool,
    /// Quorum is lost (not merely stale) and the policy says to die.
    pub quorum_lost: bool,
    /// What is wrong, for the log and status.
    pub problems: Vec<String>,
}

/// sbd's rule: with 3 disks a majority, with 1 or 2 at least one.
pub fn disk_majority(good: usize, count: usize) -> bool {
    if count > 2 {
        good > count / 2
    } else {
        good > 0
    }
}

/// Decide whether to feed, from what the servants last reported.
pub fn evaluate(
    now: Instant,
    disks: &[DiskState],
    disk_deadline: Duration,
    quorum: Option<&QuorumInput>,
    fencer_ok_at: Option<Instant>,
    fencer_deadline: Duration,
) -> Verdict {
    let fresh = |t: Option<Instant>, deadline: Duration| {
        t.is_some_and(|t| now.saturating_duration_since(t) < deadline)
    };
    let mut v = Verdict {
        healthy: true,
        ..Verdict::default()
    };
    let good = disks
        .iter()
        .filter(|d| fresh(d.last_live, disk_deadline))
        .count();
    let disks_ok = disks.is_empty() || disk_majority(good, disks.len());
    if !disks_ok {
        v.healthy = false;
        v.problems.push(format!(
            "{good} of {} sbd disk(s) healthy: {}",
            disks.len(),
            disks
                .iter()
                .filter(|d| !fresh(d.last_live, disk_deadline))
                .map(|d| format!(
                    "{} ({})",
                    d.path.display(),
                    d.last_error.as_deref().unwrap_or(if d.started {
                        "no live report"
                    } else {
                        "not started"
                    })
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if let Some(q) = quorum {
        let answered = now.saturating_duration_since(q.alive_at) < q.deadline;
        let lone_two_node = q.view.two_node && q.view.members.len() < 2;
        let lost = if !q.view.has_quorum() {
            Some(if q.view.connected {
                "this partition is not quorate".to_string()
            } else {
                "the local corosync is gone".to_string()
            })
        } else if lone_two_node && (disks.is_empty() || !disks_ok) {
            Some(if disks.is_empty() {
                "lone survivor of a two_node cluster with no sbd disk to vouch for it".to_string()
            } else {
                "lone survivor of a two_node cluster and its sbd disks are not healthy".to_string()
            })
        } else {
            None
        };
        match (lost, q.policy) {
            (Some(why), NoQuorumPolicy::Suicide) => {
                v.healthy = false;
                v.quorum_lost = true;
                v.problems.push(format!("quorum lost: {why}"));
            }
            (Some(why), NoQuorumPolicy::Ignore) => {
                v.problems
                    .push(format!("quorum lost ({why}); no_quorum_policy = ignore"));
            }
            (None, _) => {}
        }
        if !answered && !v.quorum_lost {
            v.healthy = false;
            v.problems.push(format!(
                "corosync has not answered for {:?} (hung?)",
                now.saturating_duration_since(q.alive_at)
            ));
        }
    }
    if !fresh(fencer_ok_at, fencer_deadline) {
        v.healthy = false;
        v.problems.push("the fencer did not answer".to_string());
    }
    v
}

/// Everything the inquisitor needs, resolved by the daemon at start.
pub struct Parts {
    pub local: LocalConfig,
    pub disk: Option<DiskTimeouts>,
    /// The watchdog timeout in force.
    pub timeout: Duration,
    /// Opened and armed only after the first healthy round.
    pub watchdog: Option<(crate::watchdog::Kind, PathBuf)>,
    pub self_fence: Box<dyn SelfFence>,
    pub quorum: Option<Box<dyn QuorumSource>>,
    pub fencer: Fencer,
    pub status: watch::Sender<NodeStatus>,
}

/// Check corosync's timing against the watchdog: a membership change holds
/// corosync's answers for up to token + consensus, so a watchdog timeout at
/// or below that would reset healthy nodes whenever a member comes or goes.
pub fn timing_checked(timing: &Timing, watchdog_timeout: Duration) -> Result<(), String> {
    let change = timing.token + timing.consensus;
    if change >= watchdog_timeout {
        return Err(format!(
            "corosync token {:?} + consensus {:?} = {:?} is not below the watchdog timeout {:?}: every membership change could starve the watchdog; raise watchdog.timeout (and msgwait) or lower corosync's token",
            timing.token, timing.consensus, change, watchdog_timeout
        ));
    }
    Ok(())
}

/// Run the supervision until shutdown, an `exit` message or a self-fence.
pub async fn run(parts: Parts, mut shutdown: watch::Receiver<bool>) -> Ending {
    let Parts {
        local,
        disk,
        timeout,
        watchdog: wd_cfg,
        self_fence,
        quorum,
        fencer,
        status,
    } = parts;
    let interval = local.interval;
    let started_at = Instant::now();
    let publish = |f: &dyn Fn(&mut NodeStatus)| status.send_modify(|s| f(s));

    // Delayed start (sbd's SBD_DELAY_START): nothing is watched yet.
    if let Some(s) = &local.sbd {
        let delay = match s.delay_start {
            DelayStart::No => Duration::ZERO,
            DelayStart::Msgwait => disk.map(|d| d.msgwait).unwrap_or_default(),
            DelayStart::For(d) => d,
        };
        if !delay.is_zero() {
            info!(?delay, "delay_start: waiting before watching");
            publish(&|s| s.state = "delayed".into());
            tokio::select! {
                _ = shutdown.changed() => return Ending::Stopped,
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }
    publish(&|s| s.state = "starting".into());

    // Servants.
    let (servant_stop_tx, servant_stop) = watch::channel(false);
    let (disk_tx, mut disk_rx) = mpsc::channel::<(usize, ServantEvent)>(64);
    let mut disks: Vec<DiskState> = Vec::new();
    let mut disk_tasks = Vec::new();
    if let Some(s) = &local.sbd {
        for (i, path) in s.devices.iter().enumerate() {
            disks.push(DiskState {
                path: path.clone(),
                started: false,
                last_live: None,
                last_error: None,
            });
            disk_tasks.push(spawn_disk(
                i,
                path.clone(),
                s.sector_size,
                s.io_timeout,
                local.name.clone(),
                interval,
                s.start_mode,
                servant_stop.clone(),
                disk_tx.clone(),
            ));
        }
    }
    drop(disk_tx);
    let disk_deadline = local
        .sbd
        .as_ref()
        .map(|s| s.io_timeout + interval)
        .unwrap_or(interval);

    let mut qwatch = None;
    let mut quorum_deadline = timeout;
    if let (Some(src), Some(qcfg)) = (quorum, local.quorum) {
        // Connecting may block for a few seconds: not on a runtime worker.
        let stop = servant_stop.clone();
        let watched = tokio::task::spawn_blocking(move || src.watch(interval, stop))
            .await
            .unwrap_or_else(|e| {
                Err(crate::quorum::QuorumError::Protocol {
                    step: "start",
                    cause: e.to_string(),
                })
            });
        match watched {
            Ok(w) => {
                if let Some(t) = w.timing {
                    if let Err(e) = timing_checked(&t, timeout) {
                        return stop_servants(servant_stop_tx, disk_tasks, None, Ending::Failed(e))
                            .await;
                    }
                    quorum_deadline = t.token + t.consensus + interval;
                    info!(token = ?t.token, consensus = ?t.consensus, "corosync timing");
                }
                qwatch = Some((w, qcfg.no_quorum_policy));
            }
            Err(e) => {
                return stop_servants(
                    servant_stop_tx,
                    disk_tasks,
                    None,
                    Ending::Failed(format!("quorum: {e}")),
                )
                .await
            }
        }
    }

    // The fencer servant: its task must answer a round trip.
    let (fencer_ok_tx, fencer_ok) = watch::channel::<Option<Instant>>(None);
    let fencer_deadline = (interval * 2).max(timeout / 2);
    let fencer_task = {
        let mut stop = servant_stop.clone();
        let fencer = fencer.clone();
        tokio::spawn(async move {
            loop {
                if tokio::time::timeout(fencer_deadline, fencer.device_names())
                    .await
                    .is_ok_and(|r| r.is_ok())
                {
                    let _ = fencer_ok_tx.send(Some(Instant::now()));
                }
                tokio::select! {
                    _ = stop.changed() => return,
                    _ = tokio::time::sleep(interval) => {}
                }
            }
        })
    };
    disk_tasks.push(fencer_task);

    let mut armed = false;
    let mut last_feed: Option<Instant> = None;
    let mut last_problems: Vec<String> = Vec::new();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut watchdog: Option<Box<dyn Watchdog>> = None;

    let ending = loop {
        let mut quorum_changed = false;
        tokio::select! {
            _ = shutdown.changed() => {
                info!("stopping the servants");
                break Ending::Stopped;
            }
            ev = disk_rx.recv(), if !disk_tasks.is_empty() => {
                let Some((i, ev)) = ev else { continue };
                match ev {
                    ServantEvent::Started(s) => {
                        disks[i].started = true;
                        info!(disk = %disks[i].path.display(), slot = s.slot, "sbd servant watching");
                    }
                    ServantEvent::Live { at } => {
                        disks[i].last_live = Some(at);
                        disks[i].last_error = None;
                    }
                    ServantEvent::Unhealthy { reason, .. } => {
                        if disks[i].last_error.as_deref() != Some(&reason) {
                            warn!(disk = %disks[i].path.display(), %reason, "sbd servant unhealthy");
                        }
                        disks[i].last_error = Some(reason);
                    }
                    ServantEvent::Refused { reason } => {
                        error!(%reason, "refusing to start");
                        break Ending::Failed(reason);
                    }
                    ServantEvent::Stopped => {}
                    ServantEvent::Message(m) => {
                        let disk = disks[i].path.display().to_string();
                        let action = match m.cmd {
                            Command::Reset => Some(SelfFenceAction::Reboot),
                            Command::Off => Some(SelfFenceAction::Off),
                            Command::Crashdump => Some(SelfFenceAction::Crashdump),
                            Command::Exit => {
                                info!(from = %m.from, %disk, "`exit` message: stopping cleanly");
                                break Ending::Stopped;
                            }
                            Command::Test => {
                                info!(from = %m.from, %disk, "`test` message received");
                                None
                            }
                            Command::Clear => None,
                            Command::Unknown(b) => {
                                warn!(from = %m.from, %disk, byte = b, "unknown message ignored");
                                None
                            }
                        };
                        if let Some(action) = action {
                            let reason = format!("poison pill `{}` from `{}` on {disk}", m.cmd, m.from);
                            break self_fenced(&*self_fence, action, reason, &status);
                        }
                    }
                }
                continue;
            }
            r = async {
                match &mut qwatch {
                    Some((w, _)) => w.view.changed().await,
                    None => std::future::pending().await,
                }
            } => {
                if r.is_err() {
                    // The watcher ended: nothing will vouch for quorum again.
                    if let Some((w, _)) = &mut qwatch {
                        let this = w.view.borrow().this_node;
                        let (tx, rx) = watch::channel(QuorumView::disconnected(this));
                        drop(tx);
                        w.view = rx;
                    }
                }
                quorum_changed = true;
            }
            _ = tick.tick() => {}
        }

        let now = Instant::now();
        let qinput = qwatch.as_ref().map(|(w, policy)| QuorumInput {
            view: w.view.borrow().clone(),
            alive_at: *w.alive.borrow(),
            deadline: quorum_deadline,
            policy: *policy,
        });
        if quorum_changed {
            if let Some(q) = &qinput {
                info!(quorate = q.view.quorate, connected = q.view.connected, members = ?q.view.members, two_node = q.view.two_node, "quorum changed");
            }
        }
        let verdict = evaluate(
            now,
            &disks,
            disk_deadline,
            qinput.as_ref(),
            *fencer_ok.borrow(),
            fencer_deadline,
        );
        if verdict.problems != last_problems {
            if verdict.problems.is_empty() {
                info!("all servants healthy");
            } else {
                warn!(problems = %verdict.problems.join("; "), healthy = verdict.healthy, "servants");
            }
            last_problems = verdict.problems.clone();
        }

        if verdict.healthy && !quorum_changed {
            if let Some((kind, path)) = &wd_cfg {
                if !armed {
                    let opened = crate::watchdog::open(*kind, path).and_then(|mut w| {
                        let took = w.arm(timeout)?;
                        Ok((w, took))
                    });
                    match opened {
                        Ok((w, took)) => {
                            info!(timeout = ?took, watchdog = ?w.describe(), "watchdog armed after the first healthy round");
                            watchdog = Some(w);
                            armed = true;
                        }
                        Err(e) => {
                            break Ending::Failed(format!("cannot arm the watchdog: {e}"));
                        }
                    }
                } else if let Some(wd) = watchdog.as_mut() {
                    if let Err(e) = wd.keepalive() {
                        error!(cause = %e, "watchdog keepalive failed");
                    }
                }
            } else if !armed {
                info!("first healthy round (no watchdog configured)");
                armed = true;
            }
            last_feed = Some(now);
        } else if verdict.healthy && quorum_changed {
            // Fed on the tick; a change that keeps us healthy needs nothing.
        } else if armed {
            if verdict.quorum_lost {
                let reason = verdict.problems.join("; ");
                break self_fenced(
                    &*self_fence,
                    local.self_fence.timeout_action,
                    reason,
                    &status,
                );
            }
            let since = last_feed
                .map(|t| now.saturating_duration_since(t))
                .unwrap_or_default();
            if since > timeout {
                let reason = format!(
                    "no healthy round for {since:?} (watchdog timeout {timeout:?}): {}",
                    verdict.problems.join("; ")
                );
                break self_fenced(
                    &*self_fence,
                    local.self_fence.timeout_action,
                    reason,
                    &status,
                );
            }
        }

        // Status.
        let servants = servant_statuses(
            now,
            &disks,
            disk_deadline,
            qinput.as_ref(),
            *fencer_ok.borrow(),
            fencer_deadline,
        );
        let wd_status = wd_cfg.as_ref().map(|(kind, path)| WatchdogStatus {
            info: watchdog
                .as_ref()
                .map(|w| serde_json::to_value(w.describe()).unwrap_or_default())
                .unwrap_or_else(|| serde_json::json!({"kind": kind.as_str(), "device": path.display().to_string()})),
            timeout_ms: timeout.as_millis() as u64,
            armed: armed && watchdog.is_some(),
            last_feed_ms_ago: last_feed.map(|t| now.saturating_duration_since(t).as_millis() as u64),
            expires_in_ms: if armed {
                last_feed.map(|t| (t + timeout).saturating_duration_since(now).as_millis() as u64)
            } else {
                None
            },
        });
        status.send_modify(|s| {
            s.state = if armed {
                "watching"
            } else {
                "waiting for a healthy round"
            }
            .into();
            s.uptime_ms = now.saturating_duration_since(started_at).as_millis() as u64;
            s.healthy = verdict.healthy;
            s.problems = verdict.problems.clone();
            s.servants = servants;
            s.quorum = qinput
                .as_ref()
                .and_then(|q| serde_json::to_value(&q.view).ok());
            s.watchdog = wd_status;
        });
    };

    let ending = match ending {
        Ending::Stopped | Ending::Failed(_) => {
            let e =
                stop_servants(servant_stop_tx, disk_tasks, qwatch.map(|(w, _)| w), ending).await;
            if let Some(mut wd) = watchdog.take() {
                if armed {
                    match wd.disarm() {
                        Ok(()) => info!("watchdog disarmed (magic close)"),
                        Err(err) => {
                            error!(cause = %err, "the watchdog could not be disarmed: it will reset this node")
                        }
                    }
                }
            }
            e
        }
        fenced @ Ending::SelfFenced { .. } => {
            // A dead node stops feeding; the watchdog is dropped armed (no
            // magic close), and the servants go down with the process.
            let _ = servant_stop_tx.send(true);
            drop(watchdog.take());
            fenced
        }
    };
    status.send_modify(|s| {
        s.state = match &ending {
            Ending::Stopped => "stopped".into(),
            Ending::SelfFenced { .. } => "self-fenced".into(),
            Ending::Failed(_) => "failed".into(),
        }
    });
    ending
}

fn self_fenced(
    sf: &dyn SelfFence,
    action: SelfFenceAction,
    reason: String,
    status: &watch::Sender<NodeStatus>,
) -> Ending {
    status.send_modify(|s| s.state = "self-fencing".into());
    error!(action = action.as_str(), %reason, via = %sf.describe(), "self-fencing");
    if let Err(e) = sf.fence(action, &reason) {
        error!(cause = %e, "self-fence failed; the armed watchdog is the backstop");
    }
    Ending::SelfFenced { action, reason }
}

async fn stop_servants(
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    quorum: Option<crate::quorum::QuorumWatch>,
    ending: Ending,
) -> Ending {
    let _ = stop.send(true);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    if let Some(q) = quorum {
        q.handle.join_timeout(Duration::from_secs(5)).await;
    }
    ending
}

#[allow(clippy::too_many_arguments)]
fn spawn_disk(
    i: usize,
    path: PathBuf,
    sector_size: Option<u32>,
    io_timeout: Duration,
    node: String,
    interval: Duration,
    start_mode: crate::sbd::servant::StartMode,
    mut stop: watch::Receiver<bool>,
    tx: mpsc::Sender<(usize, ServantEvent)>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let dev = loop {
            if *stop.borrow() {
                return;
            }
            match crate::sbd::io::open(&path, sector_size, io_timeout).await {
                Ok(d) => break d,
                Err(e) => {
                    let ev = ServantEvent::Unhealthy {
                        reason: e.to_string(),
                        last_good: None,
                    };
                    if tx.send((i, ev)).await.is_err() {
                        return;
                    }
                }
            }
            tokio::select! {
                _ = stop.changed() => {}
                _ = tokio::time::sleep(interval) => {}
            }
        };
        let servant = Servant::new(dev, &node, interval).start_mode(start_mode);
        let (mut rx, task) = servant.run(stop.clone());
        while let Some(ev) = rx.recv().await {
            if tx.send((i, ev)).await.is_err() {
                break;
            }
        }
        let _ = task.await;
    })
}

fn servant_statuses(
    now: Instant,
    disks: &[DiskState],
    disk_deadline: Duration,
    quorum: Option<&QuorumInput>,
    fencer_ok: Option<Instant>,
    fencer_deadline: Duration,
) -> Vec<ServantStatus> {
    let age = |t: Option<Instant>| t.map(|t| now.saturating_duration_since(t).as_millis() as u64);
    let mut out: Vec<ServantStatus> = disks
        .iter()
        .map(|d| ServantStatus {
            name: d.path.display().to_string(),
            kind: "sbd-disk".into(),
            healthy: d
                .last_live
                .is_some_and(|t| now.saturating_duration_since(t) < disk_deadline),
            last_ok_ms_ago: age(d.last_live),
            detail: d.last_error.clone(),
        })
        .collect();
    if let Some(q) = quorum {
        out.push(ServantStatus {
            name: "corosync".into(),
            kind: "quorum".into(),
            healthy: q.view.has_quorum() && now.saturating_duration_since(q.alive_at) < q.deadline,
            last_ok_ms_ago: age(Some(q.alive_at)),
            detail: Some(format!(
                "quorate={} members={:?} this_node={:?} two_node={}",
                q.view.quorate, q.view.members, q.view.this_node, q.view.two_node
            )),
        });
    }
    out.push(ServantStatus {
        name: "fencer".into(),
        kind: "fencer".into(),
        healthy: fencer_ok.is_some_and(|t| now.saturating_duration_since(t) < fencer_deadline),
        last_ok_ms_ago: age(fencer_ok),
        detail: None,
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk(live: Option<Instant>) -> DiskState {
        DiskState {
            path: PathBuf::from("/dev/sbd"),
            started: true,
            last_live: live,
            last_error: None,
        }
    }

    fn q(view: QuorumView, alive_at: Instant) -> QuorumInput {
        QuorumInput {
            view,
            alive_at,
            deadline: Duration::from_secs(3),
            policy: NoQuorumPolicy::Suicide,
        }
    }

    const D: Duration = Duration::from_secs(4);

    #[test]
    fn majority_rules_are_sbds() {
        assert!(disk_majority(1, 1));
        assert!(!disk_majority(0, 1));
        assert!(disk_majority(1, 2));
        assert!(!disk_majority(0, 2));
        assert!(disk_majority(2, 3));
        assert!(!disk_majority(1, 3));
    }

    #[tokio::test(start_paused = true)]
    async fn feeds_only_when_every_servant_is_healthy() {
        let now = Instant::now();
        let ok = Some(now);
        assert!(evaluate(now, &[disk(ok)], D, None, ok, D).healthy);
        // No disk live yet.
        let v = evaluate(now, &[disk(None)], D, None, ok, D);
        assert!(!v.healthy && !v.quorum_lost, "{v:?}");
        // Three disks, one stale: still a majority.
        tokio::time::advance(Duration::from_secs(10)).await;
        let now = Instant::now();
        let stale = Some(now - Duration::from_secs(10));
        let three = [disk(Some(now)), disk(Some(now)), disk(stale)];
        assert!(evaluate(now, &three, D, None, Some(now), D).healthy);
        let three = [disk(Some(now)), disk(stale), disk(stale)];
        assert!(!evaluate(now, &three, D, None, Some(now), D).healthy);
        // A fencer that stopped answering.
        let v = evaluate(now, &[disk(Some(now))], D, None, stale, D);
        assert!(!v.healthy);
        assert!(v.problems[0].contains("fencer"), "{v:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn quorum_rules() {
        let now = Instant::now();
        let quorate = QuorumView::quorate(Some(1), vec![1, 2, 3]);
        let v = evaluate(now, &[], D, Some(&q(quorate.clone(), now)), Some(now), D);
        assert!(v.healthy, "{v:?}");
        // Partitioned away.
        let mut lost = quorate.clone();
        lost.quorate = false;
        lost.members = vec![3];
        let v = evaluate(now, &[], D, Some(&q(lost.clone(), now)), Some(now), D);
        assert!(!v.healthy && v.quorum_lost, "{v:?}");
        // Policy ignore keeps feeding.
        let mut ignore = q(lost, now);
        ignore.policy = NoQuorumPolicy::Ignore;
        let v = evaluate(now, &[], D, Some(&ignore), Some(now), D);
        assert!(v.healthy && !v.quorum_lost, "{v:?}");
        // Local corosync gone.
        let gone = QuorumView::disconnected(Some(1));
        let v = evaluate(now, &[], D, Some(&q(gone, now)), Some(now), D);
        assert!(v.quorum_lost && v.problems[0].contains("gone"), "{v:?}");
        // Hung corosync: stale but not lost -> no feed, no immediate fence.
        tokio::time::advance(Duration::from_secs(5)).await;
        let later = Instant::now();
        let v = evaluate(later, &[], D, Some(&q(quorate, now)), Some(later), D);
        assert!(!v.healthy && !v.quorum_lost, "{v:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn lone_two_node_survivor_lives_only_on_a_healthy_disk() {
        let now = Instant::now();
        let mut lone = QuorumView::quorate(Some(1), vec![1]);
        lone.two_node = true;
        let with_disk = evaluate(
            now,
            &[disk(Some(now))],
            D,
            Some(&q(lone.clone(), now)),
            Some(now),
            D,
        );
        assert!(with_disk.healthy, "{with_disk:?}");
        let no_disk = evaluate(now, &[], D, Some(&q(lone.clone(), now)), Some(now), D);
        assert!(no_disk.quorum_lost, "{no_disk:?}");
        let bad_disk = evaluate(
            now,
            &[disk(None)],
            D,
            Some(&q(lone.clone(), now)),
            Some(now),
            D,
        );
        assert!(bad_disk.quorum_lost, "{bad_disk:?}");
        // Both members present: the disk does not matter for quorum.
        let mut both = QuorumView::quorate(Some(1), vec![1, 2]);
        both.two_node = true;
        assert!(evaluate(now, &[], D, Some(&q(both, now)), Some(now), D).healthy);
    }

    #[test]
    fn corosync_timing_must_fit_in_the_watchdog() {
        let t = Timing {
            token: Duration::from_millis(1000),
            consensus: Duration::from_millis(1200),
        };
        assert!(timing_checked(&t, Duration::from_secs(5)).is_ok());
        let e = timing_checked(&t, Duration::from_secs(2)).unwrap_err();
        assert!(e.contains("token"), "{e}");
    }
}
