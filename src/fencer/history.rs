//! Durable fencing history: one JSON record per line in
//! `<state_dir>/history.jsonl`, each appended and `fsync`ed before the
//! fencer moves on, so a `kill -9` loses at most the record being written.
//!
//! At start the log is read back. A torn last line (the daemon died while
//! writing it) is dropped and reported; a request without a terminal record
//! was interrupted, and an `interrupted` record is appended for it — it is
//! never shown as a success.

use super::request::{FenceAction, Step};
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// One line of the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryRecord {
    pub ts_ms: u64,
    pub request: u64,
    pub target: String,
    #[serde(flatten)]
    pub event: Event,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Requested {
        action: FenceAction,
        origin: String,
        #[serde(default)]
        delay_ms: u64,
        #[serde(default)]
        tolerance_ms: u64,
        #[serde(default)]
        force: bool,
    },
    Delay {
        device: Option<String>,
        ms: u64,
        reason: String,
    },
    Level {
        level: u8,
        devices: Vec<String>,
        #[serde(default)]
        implicit: bool,
    },
    Attempt {
        level: u8,
        device: String,
        plug: String,
        step: Step,
        attempt: u32,
        of: u32,
    },
    AttemptDone {
        level: u8,
        device: String,
        step: Step,
        attempt: u32,
        ok: bool,
        ms: u64,
        error: Option<String>,
    },
    LevelFailed {
        level: u8,
        reason: String,
    },
    Succeeded {
        action: FenceAction,
        level: Option<u8>,
        devices: Vec<String>,
        ms: u64,
        how: String,
        warning: Option<String>,
    },
    Failed {
        action: FenceAction,
        ms: u64,
        reason: String,
        #[serde(default)]
        timeout: bool,
    },
    Refused {
        action: FenceAction,
        reason: String,
    },
    Confirmed {
        by: String,
    },
    /// Nothing done: an observed fence within `--tolerance` covers it.
    Tolerated {
        action: FenceAction,
        prior: u64,
        reason: String,
    },
    Interrupted {
        reason: String,
    },
    /// Another cluster member's fence of a node, as it broadcast it (the
    /// whole request in one record: it ran elsewhere).
    Remote {
        action: FenceAction,
        /// Proven down there (observed off, msgwait, or confirmed by a human).
        ok: bool,
        /// That fencer's result: fenced, confirmed, failed, timed_out, ...
        result: String,
        by: String,
        by_id: u32,
        target_id: u32,
        level: Option<u8>,
        devices: Vec<String>,
        started_ms: u64,
        finished_ms: u64,
        message: String,
    },
}

impl Event {
    /// Whether this record ends its request.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Event::Succeeded { .. }
                | Event::Failed { .. }
                | Event::Refused { .. }
                | Event::Confirmed { .. }
                | Event::Tolerated { .. }
                | Event::Interrupted { .. }
                | Event::Remote { .. }
        )
    }
}

/// The history could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// I/O on the history file failed.
    #[error(
        "fencing history {path}: {source}; check that the state directory exists and is writable"
    )]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The append-only log, with every record also kept in memory.
pub struct HistoryLog {
    path: PathBuf,
    file: File,
    records: Vec<HistoryRecord>,
    /// Lines that could not be parsed when loading (torn or foreign).
    pub skipped_lines: usize,
}

impl HistoryLog {
    /// Open (creating the directory 0700 and the file 0600) and load the history.
    pub fn open(state_dir: &Path) -> Result<HistoryLog, HistoryError> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let path = state_dir.join("history.jsonl");
        let io = |source| HistoryError::Io {
            path: path.clone(),
            source,
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(state_dir)
            .map_err(io)?;
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&path)
            .map_err(io)?;
        let mut bytes = Vec::new();
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.read_to_end(&mut bytes).map_err(io)?;
        let mut records = Vec::new();
        let mut skipped = 0;
        // Split bytes, not text: a torn line may end inside a UTF-8 sequence.
        for line in bytes.split(|b| *b == b'\n') {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<HistoryRecord>(line) {
                Ok(r) => records.push(r),
                Err(_) => skipped += 1,
            }
        }
        // A torn last line has no newline: end it so the next record starts clean.
        if bytes.last().is_some_and(|b| *b != b'\n') {
            file.write_all(b"\n").map_err(io)?;
            file.sync_data().map_err(io)?;
        }
        Ok(HistoryLog {
            path,
            file,
            records,
            skipped_lines: skipped,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn records(&self) -> &[HistoryRecord] {
        &self.records
    }

    /// Append one record and make it durable.
    pub fn append(&mut self, record: HistoryRecord) -> Result<(), HistoryError> {
        let io = |source| HistoryError::Io {
            path: self.path.clone(),
            source,
        };
        let mut line = serde_json::to_vec(&record).map_err(|e| io(std::io::Error::other(e)))?;
        line.push(b'\n');
        self.records.push(record);
        self.file.write_all(&line).map_err(io)?;
        self.file.sync_data().map_err(io)
    }

    /// Requests that have no terminal record (were in flight when the
    /// daemon died): (request id, target).
    pub fn unfinished(&self) -> Vec<(u64, String)> {
        let mut open: Vec<(u64, String)> = Vec::new();
        for r in &self.records {
            if matches!(r.event, Event::Requested { .. }) {
                open.push((r.request, r.target.clone()));
            } else if r.event.is_terminal() {
                open.retain(|(id, _)| *id != r.request);
            }
        }
        open
    }

    /// The highest request id seen.
    pub fn max_request(&self) -> u64 {
        self.records.iter().map(|r| r.request).max().unwrap_or(0)
    }
}

/// One request, summarised from its records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestSummary {
    pub request: u64,
    pub target: String,
    pub action: Option<FenceAction>,
    pub origin: String,
    /// pending, fenced, on, failed, refused, confirmed, interrupted.
    pub state: String,
    pub requested_ms: u64,
    pub finished_ms: Option<u64>,
    pub level: Option<u8>,
    pub devices: Vec<String>,
    pub detail: String,
}

impl RequestSummary {
    /// Whether the target was (observed or confirmed) fenced by this request.
    pub fn fenced(&self) -> bool {
        self.state == "fenced" || self.state == "confirmed"
    }
}

/// Request summaries, kept up to date record by record.
#[derive(Debug, Default, Clone)]
pub struct Summaries {
    list: Vec<RequestSummary>,
    index: std::collections::HashMap<u64, usize>,
}

impl Summaries {
    pub fn from_records(records: &[HistoryRecord]) -> Summaries {
        let mut s = Summaries::default();
        for r in records {
            s.apply(r);
        }
        s
    }

    pub fn all(&self) -> &[RequestSummary] {
        &self.list
    }

    pub fn get(&self, request: u64) -> Option<&RequestSummary> {
        self.index.get(&request).map(|i| &self.list[*i])
    }

    /// Fold one record in.
    pub fn apply(&mut self, r: &HistoryRecord) {
        let idx = match self.index.get(&r.request) {
            Some(i) => *i,
            None => {
                self.list.push(RequestSummary {
                    request: r.request,
                    target: r.target.clone(),
                    action: None,
                    origin: String::new(),
                    state: "pending".into(),
                    requested_ms: r.ts_ms,
                    finished_ms: None,
                    level: None,
                    devices: Vec::new(),
                    detail: String::new(),
                });
                self.index.insert(r.request, self.list.len() - 1);
                self.list.len() - 1
            }
        };
        let s = &mut self.list[idx];
        match &r.event {
            Event::Requested { action, origin, .. } => {
                s.action = Some(*action);
                s.origin = origin.clone();
            }
            Event::Succeeded {
                action,
                level,
                devices,
                how,
                warning,
                ..
            } => {
                s.state = if *action == FenceAction::On {
                    "on"
                } else {
                    "fenced"
                }
                .into();
                s.level = *level;
                s.devices = devices.clone();
                s.detail = match warning {
                    Some(w) => format!("{how}; warning: {w}"),
                    None => how.clone(),
                };
                s.finished_ms = Some(r.ts_ms);
            }
            Event::Failed { reason, .. } => {
                s.state = "failed".into();
                s.detail = reason.clone();
                s.finished_ms = Some(r.ts_ms);
            }
            Event::Refused { reason, .. } => {
                s.state = "refused".into();
                s.detail = reason.clone();
                s.finished_ms = Some(r.ts_ms);
            }
            Event::Tolerated { reason, .. } => {
                s.state = "tolerated".into();
                s.detail = reason.clone();
                s.finished_ms = Some(r.ts_ms);
            }
            Event::Confirmed { by } => {
                s.state = "confirmed".into();
                if s.action.is_none() {
                    s.action = Some(FenceAction::Off);
                    s.origin = by.clone();
                }
                s.detail = format!("confirmed down by {by} (manual, not observed)");
                s.finished_ms = Some(r.ts_ms);
            }
            Event::Interrupted { reason } => {
                s.state = "interrupted".into();
                s.detail = reason.clone();
                s.finished_ms = Some(r.ts_ms);
            }
            Event::Remote {
                action,
                ok,
                result,
                by,
                level,
                devices,
                started_ms,
                finished_ms,
                message,
                ..
            } => {
                s.action = Some(*action);
                s.origin = format!("cluster:{by}");
                s.state = match (*ok, result.as_str()) {
                    (true, "confirmed") => "confirmed",
                    (true, _) if *action == FenceAction::On => "on",
                    (true, _) => "fenced",
                    (false, _) => "failed",
                }
                .into();
                s.requested_ms = *started_ms;
                s.finished_ms = Some(*finished_ms);
                s.level = *level;
                s.devices = devices.clone();
                s.detail = format!("by {by} (recorded from the cluster): {message}");
            }
            _ => {}
        }
    }
}

/// Summaries of every request, oldest first.
pub fn summarise(records: &[HistoryRecord]) -> Vec<RequestSummary> {
    Summaries::from_records(records).list
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(request: u64, event: Event) -> HistoryRecord {
        HistoryRecord {
            ts_ms: 1,
            request,
            target: "n1".into(),
            event,
        }
    }

    fn requested() -> Event {
        Event::Requested {
            action: FenceAction::Reboot,
            origin: "cli".into(),
            delay_ms: 0,
            tolerance_ms: 0,
            force: false,
        }
    }

    #[test]
    fn torn_tail_is_dropped_and_unfinished_found() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut h = HistoryLog::open(dir.path()).unwrap();
            h.append(rec(1, requested())).unwrap();
        }
        let path = dir.path().join("history.jsonl");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"ts_ms\":2,\"requ").unwrap();
        drop(f);
        let mut h = HistoryLog::open(dir.path()).unwrap();
        assert_eq!(h.skipped_lines, 1);
        assert_eq!(h.unfinished(), vec![(1, "n1".to_string())]);
        h.append(rec(1, Event::Interrupted { reason: "x".into() }))
            .unwrap();
        let h = HistoryLog::open(dir.path()).unwrap();
        assert!(h.unfinished().is_empty());
        let s = summarise(h.records());
        assert_eq!(s[0].state, "interrupted");
        assert!(!s[0].fenced());
    }
}
