//! A watchdog that resets nothing: it records every arm, keepalive and
//! disarm with a timestamp, and "fires" on a clock — [`RecorderHandle::fired_at`]
//! says when a real watchdog would have reset the machine (armed, the last
//! keepalive older than the timeout, never disarmed).
//!
//! Used by unit tests, the daemon's tests and the demo; the node config
//! selects it with `kind = "recorder"` and a file. Time is
//! [`tokio::time::Instant`], so tests pause and advance it
//! (`tokio::time::pause`, `advance`) instead of sleeping.
//!
//! With a file, every event is also appended as one JSON line:
//!
//! ```text
//! {"t_ms":0,"wall_ms":1763950000123,"event":"arm","timeout_ms":5000}
//! {"t_ms":1000,"wall_ms":1763950001123,"event":"keepalive","timeout_ms":5000}
//! {"t_ms":6000,"wall_ms":1763950006123,"event":"fired","timeout_ms":5000}
//! ```
//!
//! `t_ms` counts from the recorder's creation (paused time in tests),
//! `wall_ms` is the Unix time in milliseconds (the real clock, for the demo's
//! timeline). A `fired` line is written when the recorder notices, i.e. on
//! its next call; a process that died armed writes none, so readers use
//! [`fired_from_log`], which works it out from the last feed.
//!
//! Dropping an armed recorder leaves it armed, like a real watchdog closed
//! without the magic 'V': handles keep seeing it fire.
//!
//! It must never touch a device, and never sleeps.

use super::{millis, Kind, Watchdog, WatchdogError, WatchdogInfo};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// What happened to the recorded watchdog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecorderEvent {
    Arm,
    Keepalive,
    Disarm,
    /// The timeout passed with no keepalive: a real machine would have reset.
    Fired,
}

/// One line of the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedEvent {
    /// Milliseconds since the recorder was created.
    pub t_ms: u64,
    /// Unix time in milliseconds (real clock).
    pub wall_ms: u64,
    pub event: RecorderEvent,
    /// The timeout in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// Faults a test can make the recorder show, to see what the daemon does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `arm` fails (nothing armed).
    ArmFails,
    /// `keepalive` fails and does not restart the countdown.
    KeepaliveFails,
    /// `disarm` answers like a nowayout driver and stays armed.
    NoWayOut,
}

struct State {
    label: String,
    file: Option<(PathBuf, File)>,
    start: Instant,
    start_wall: SystemTime,
    events: Vec<RecordedEvent>,
    armed: bool,
    timeout: Option<Duration>,
    last_feed: Option<Instant>,
    fired: Option<Instant>,
    fault: Option<Fault>,
}

impl State {
    fn t_ms(&self, at: Instant) -> u64 {
        millis(at.saturating_duration_since(self.start))
    }

    fn wall_ms(&self, at: Instant) -> u64 {
        let wall = self.start_wall + at.saturating_duration_since(self.start);
        wall.duration_since(UNIX_EPOCH).map(millis).unwrap_or(0)
    }

    fn record(&mut self, event: RecorderEvent, at: Instant) -> Result<(), WatchdogError> {
        let e = RecordedEvent {
            t_ms: self.t_ms(at),
            wall_ms: self.wall_ms(at),
            event,
            timeout_ms: self.timeout.map(millis),
        };
        let line = serde_json::to_string(&e).map_err(|err| WatchdogError::RecordFormat {
            path: PathBuf::from(&self.label),
            line: self.events.len() + 1,
            detail: err.to_string(),
        });
        self.events.push(e);
        if let Some((path, file)) = self.file.as_mut() {
            let line = line?;
            writeln!(file, "{line}")
                .and_then(|()| file.flush())
                .map_err(|source| WatchdogError::RecordFile {
                    path: path.clone(),
                    source,
                })?;
        }
        Ok(())
    }

    /// When the countdown ends, if armed.
    fn deadline(&self) -> Option<Instant> {
        match (self.armed, self.last_feed, self.timeout) {
            (true, Some(fed), Some(t)) => Some(fed + t),
            _ => None,
        }
    }

    /// Notice a countdown that ran out (records `fired` once).
    fn check(&mut self, now: Instant) -> Result<(), WatchdogError> {
        if self.fired.is_none() {
            if let Some(deadline) = self.deadline().filter(|d| *d <= now) {
                self.fired = Some(deadline);
                self.record(RecorderEvent::Fired, deadline)?;
            }
        }
        Ok(())
    }

    fn fired_error(&self) -> Option<WatchdogError> {
        self.fired.map(|at| WatchdogError::Fired {
            device: self.label.clone(),
            at_ms: self.t_ms(at),
            timeout_ms: self.timeout.map(millis).unwrap_or(0),
        })
    }
}

/// The recording watchdog. Cheap handles ([`Recorder::handle`]) keep seeing
/// its state after it moved into the daemon or was dropped.
pub struct Recorder {
    shared: Arc<Mutex<State>>,
}

/// A view of a [`Recorder`] for tests and the demo.
#[derive(Clone)]
pub struct RecorderHandle {
    shared: Arc<Mutex<State>>,
}

fn lock(shared: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic while holding the lock leaves plain data behind; keep going.
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

impl Recorder {
    /// Records in memory only.
    pub fn new() -> Recorder {
        Recorder::build("(memory)".into(), None)
    }

    /// Records in memory and appends JSON lines to `path` (created if absent).
    pub fn with_file(path: &Path) -> Result<Recorder, WatchdogError> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| WatchdogError::RecordFile {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Recorder::build(
            path.display().to_string(),
            Some((path.to_path_buf(), file)),
        ))
    }

    fn build(label: String, file: Option<(PathBuf, File)>) -> Recorder {
        Recorder {
            shared: Arc::new(Mutex::new(State {
                label,
                file,
                start: Instant::now(),
                start_wall: SystemTime::now(),
                events: Vec::new(),
                armed: false,
                timeout: None,
                last_feed: None,
                fired: None,
                fault: None,
            })),
        }
    }

    pub fn handle(&self) -> RecorderHandle {
        RecorderHandle {
            shared: self.shared.clone(),
        }
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

impl RecorderHandle {
    /// Every event so far (a `fired` one included once noticed).
    pub fn events(&self) -> Vec<RecordedEvent> {
        let mut s = lock(&self.shared);
        let _ = s.check(Instant::now());
        s.events.clone()
    }

    /// When the watchdog fired (would have reset the machine), if it has.
    pub fn fired_at(&self) -> Option<Instant> {
        let mut s = lock(&self.shared);
        let _ = s.check(Instant::now());
        s.fired
    }

    /// [`fired_at`](Self::fired_at) in milliseconds since the recorder's creation.
    pub fn fired_at_ms(&self) -> Option<u64> {
        let at = self.fired_at()?;
        Some(lock(&self.shared).t_ms(at))
    }

    /// Armed and not disarmed (it may have fired since).
    pub fn armed(&self) -> bool {
        lock(&self.shared).armed
    }

    /// Keepalives recorded.
    pub fn keepalives(&self) -> usize {
        lock(&self.shared)
            .events
            .iter()
            .filter(|e| e.event == RecorderEvent::Keepalive)
            .count()
    }

    /// From now on, show `fault` (until [`heal`](Self::heal)).
    pub fn inject(&self, fault: Fault) {
        lock(&self.shared).fault = Some(fault);
    }

    pub fn heal(&self) {
        lock(&self.shared).fault = None;
    }
}

impl Watchdog for Recorder {
    fn arm(&mut self, timeout: Duration) -> Result<Duration, WatchdogError> {
        let now = Instant::now();
        let mut s = lock(&self.shared);
        s.check(now)?;
        if let Some(e) = s.fired_error() {
            return Err(e);
        }
        if s.armed {
            return Err(WatchdogError::AlreadyArmed {
                device: s.label.clone(),
            });
        }
        if timeout.is_zero() {
            return Err(WatchdogError::InvalidTimeout {
                device: s.label.clone(),
                asked: timeout,
                why: "a watchdog needs a timeout above zero".into(),
            });
        }
        if s.fault == Some(Fault::ArmFails) {
            return Err(WatchdogError::Injected {
                device: s.label.clone(),
                what: "arm fails",
            });
        }
        s.armed = true;
        s.timeout = Some(timeout);
        s.last_feed = Some(now);
        s.record(RecorderEvent::Arm, now)?;
        Ok(timeout)
    }

    fn keepalive(&mut self) -> Result<(), WatchdogError> {
        let now = Instant::now();
        let mut s = lock(&self.shared);
        s.check(now)?;
        if let Some(e) = s.fired_error() {
            return Err(e);
        }
        if !s.armed {
            return Err(WatchdogError::NotArmed {
                device: s.label.clone(),
            });
        }
        if s.fault == Some(Fault::KeepaliveFails) {
            return Err(WatchdogError::Injected {
                device: s.label.clone(),
                what: "keepalive fails",
            });
        }
        s.last_feed = Some(now);
        s.record(RecorderEvent::Keepalive, now)
    }

    fn disarm(&mut self) -> Result<(), WatchdogError> {
        let now = Instant::now();
        let mut s = lock(&self.shared);
        s.check(now)?;
        if let Some(e) = s.fired_error() {
            return Err(e);
        }
        if !s.armed {
            return Ok(());
        }
        if s.fault == Some(Fault::NoWayOut) {
            return Err(WatchdogError::NoWayOut {
                device: s.label.clone(),
                hint: "heal() the recorder".into(),
            });
        }
        s.armed = false;
        s.record(RecorderEvent::Disarm, now)
    }

    fn describe(&self) -> WatchdogInfo {
        let s = lock(&self.shared);
        let mut info = WatchdogInfo::new(Kind::Recorder, s.label.clone());
        info.identity = Some("ironfence recorder (resets nothing)".into());
        info.armed = s.armed;
        info.timeout_ms = s.timeout.map(millis);
        info.nowayout = Some(false);
        info.action = Some("record".into());
        info
    }

    fn time_left(&self) -> Option<Duration> {
        let s = lock(&self.shared);
        let deadline = s.deadline()?;
        Some(deadline.saturating_duration_since(Instant::now()))
    }
}

/// When a recorder's file says the watchdog fired, or would have: its
/// `fired` line, else the last arm/keepalive + timeout if never disarmed
/// after (`t_ms`, `wall_ms`). Each `arm` starts afresh, so a file appended to
/// by several daemon runs is judged by the last one.
pub fn fired_from_log(events: &[RecordedEvent]) -> Option<(u64, u64)> {
    let mut deadline: Option<(u64, u64)> = None;
    for e in events {
        match e.event {
            RecorderEvent::Fired => return Some((e.t_ms, e.wall_ms)),
            RecorderEvent::Arm | RecorderEvent::Keepalive => {
                let t = e.timeout_ms.unwrap_or(0);
                deadline = Some((e.t_ms.saturating_add(t), e.wall_ms.saturating_add(t)));
            }
            RecorderEvent::Disarm => deadline = None,
        }
    }
    deadline
}

/// Every record in a recorder's file.
pub fn read_log(path: &Path) -> Result<Vec<RecordedEvent>, WatchdogError> {
    let text = std::fs::read_to_string(path).map_err(|source| WatchdogError::RecordFile {
        path: path.to_path_buf(),
        source,
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| WatchdogError::RecordFormat {
                path: path.to_path_buf(),
                line: i + 1,
                detail: e.to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tokio::time::advance;

    const FIVE: Duration = Duration::from_secs(5);

    #[tokio::test(start_paused = true)]
    async fn fires_when_keepalives_stop() {
        let mut wd = Recorder::new();
        let h = wd.handle();
        assert_eq!(wd.arm(FIVE).unwrap(), FIVE);
        for _ in 0..3 {
            advance(Duration::from_secs(4)).await;
            wd.keepalive().unwrap();
            assert_eq!(h.fired_at(), None);
        }
        assert_eq!(wd.time_left(), Some(FIVE));
        advance(Duration::from_millis(4999)).await;
        assert_eq!(h.fired_at(), None);
        advance(Duration::from_millis(1)).await;
        assert_eq!(h.fired_at_ms(), Some(17_000));
        assert_eq!(wd.time_left(), Some(Duration::ZERO));
        let e = wd.keepalive().unwrap_err();
        assert!(
            matches!(
                e,
                WatchdogError::Fired {
                    at_ms: 17_000,
                    timeout_ms: 5000,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("would have been reset"));
        let kinds: Vec<_> = h.events().iter().map(|e| e.event).collect();
        assert_eq!(kinds.last(), Some(&RecorderEvent::Fired));
        assert_eq!(h.keepalives(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn disarm_stops_the_clock() {
        let mut wd = Recorder::new();
        let h = wd.handle();
        wd.arm(FIVE).unwrap();
        advance(Duration::from_secs(2)).await;
        wd.disarm().unwrap();
        wd.disarm().unwrap(); // nothing armed: nothing to do
        advance(Duration::from_secs(60)).await;
        assert_eq!(h.fired_at(), None);
        assert!(!h.armed());
        assert_eq!(wd.time_left(), None);
        assert!(matches!(
            wd.keepalive(),
            Err(WatchdogError::NotArmed { .. })
        ));
        // and it can be armed again
        wd.arm(FIVE).unwrap();
        assert!(matches!(
            wd.arm(FIVE),
            Err(WatchdogError::AlreadyArmed { .. })
        ));
    }

    /// A daemon that crashes (drops its watchdog without disarm) must still
    /// get its machine reset.
    #[tokio::test(start_paused = true)]
    async fn dropping_an_armed_recorder_leaves_it_armed() {
        let mut wd = Recorder::new();
        let h = wd.handle();
        wd.arm(FIVE).unwrap();
        advance(Duration::from_secs(1)).await;
        wd.keepalive().unwrap();
        // the daemon owns it as a trait object; it goes away without disarm()
        let daemon_side: Box<dyn Watchdog> = Box::new(wd);
        drop(daemon_side);
        assert!(h.armed(), "dropped while armed: still armed");
        advance(Duration::from_millis(4999)).await;
        assert_eq!(h.fired_at(), None);
        advance(Duration::from_millis(1)).await;
        assert_eq!(h.fired_at_ms(), Some(6000));
        let kinds: Vec<_> = h.events().iter().map(|e| e.event).collect();
        assert!(!kinds.contains(&RecorderEvent::Disarm));
    }

    #[tokio::test(start_paused = true)]
    async fn the_file_has_one_json_line_per_event() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wd.jsonl");
        let mut wd = Recorder::with_file(&path).unwrap();
        let h = wd.handle();
        wd.arm(FIVE).unwrap();
        advance(Duration::from_secs(1)).await;
        wd.keepalive().unwrap();
        advance(Duration::from_secs(6)).await;
        assert!(h.fired_at().is_some());
        drop(wd);

        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0]["event"], "arm");
        assert_eq!(lines[0]["t_ms"], 0);
        assert_eq!(lines[0]["timeout_ms"], 5000);
        assert_eq!(lines[1]["event"], "keepalive");
        assert_eq!(lines[1]["t_ms"], 1000);
        assert_eq!(lines[2]["event"], "fired");
        assert_eq!(
            lines[2]["t_ms"], 6000,
            "fired at the deadline, not when noticed"
        );
        let wall0 = lines[0]["wall_ms"].as_u64().unwrap();
        assert_eq!(lines[2]["wall_ms"].as_u64().unwrap() - wall0, 6000);

        let events = read_log(&path).unwrap();
        assert_eq!(events, h.events());
        assert_eq!(fired_from_log(&events).map(|f| f.0), Some(6000));
    }

    #[test]
    fn fired_from_log_works_out_a_dead_writer() {
        let ev = |t_ms, event| RecordedEvent {
            t_ms,
            wall_ms: 1_000_000 + t_ms,
            event,
            timeout_ms: Some(5000),
        };
        use RecorderEvent::*;
        // the process died after its last keepalive: no `fired` line
        assert_eq!(
            fired_from_log(&[ev(0, Arm), ev(1000, Keepalive), ev(2000, Keepalive)]),
            Some((7000, 1_007_000))
        );
        assert_eq!(fired_from_log(&[ev(0, Arm), ev(1000, Disarm)]), None);
        // a second run re-arms
        assert_eq!(
            fired_from_log(&[ev(0, Arm), ev(1000, Disarm), ev(0, Arm)]),
            Some((5000, 1_005_000))
        );
        assert_eq!(fired_from_log(&[]), None);
    }

    #[test]
    fn a_bad_line_is_reported_with_its_number() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wd.jsonl");
        std::fs::write(
            &path,
            "{\"t_ms\":0,\"wall_ms\":0,\"event\":\"arm\"}\nnot json\n",
        )
        .unwrap();
        let e = read_log(&path).unwrap_err();
        assert!(
            matches!(e, WatchdogError::RecordFormat { line: 2, .. }),
            "{e}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn injected_faults() {
        let mut wd = Recorder::new();
        let h = wd.handle();
        h.inject(Fault::ArmFails);
        assert!(matches!(wd.arm(FIVE), Err(WatchdogError::Injected { .. })));
        assert!(!h.armed());
        h.heal();
        wd.arm(FIVE).unwrap();
        h.inject(Fault::KeepaliveFails);
        advance(Duration::from_secs(3)).await;
        assert!(wd.keepalive().is_err());
        advance(Duration::from_secs(2)).await;
        assert_eq!(
            h.fired_at_ms(),
            Some(5000),
            "a failed keepalive does not feed"
        );

        let mut wd = Recorder::new();
        let h = wd.handle();
        wd.arm(FIVE).unwrap();
        h.inject(Fault::NoWayOut);
        assert!(matches!(wd.disarm(), Err(WatchdogError::NoWayOut { .. })));
        assert!(h.armed());
        assert!(wd.describe().armed);
        h.heal();
        wd.disarm().unwrap();
        assert!(!wd.describe().armed);
    }

    #[test]
    fn zero_timeout_is_refused() {
        let mut wd = Recorder::new();
        assert!(matches!(
            wd.arm(Duration::ZERO),
            Err(WatchdogError::InvalidTimeout { .. })
        ));
    }
}
