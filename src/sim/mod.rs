//! Simulated BMCs with fault injection, for the demo, unit tests and the
//! `fence_ironfence_sim` agent. A simulator can be slow, silent, refuse
//! logins or lie (accept a power command and not carry it out), and it
//! counts what it was asked to do so tests can assert on it.
//!
//! Power state lives in memory, or in a JSON file (`{"plug": "on"}`) guarded
//! by an exclusive `flock`, so a daemon's sim device and the sim agent run by
//! Pacemaker can share one simulated machine room.
//!
//! This module is a leaf; `power::sim` adapts it to `PowerDevice`.

pub mod ipmi;
pub mod redfish;
use crate::config::SimFault;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Power of one simulated machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SimPower {
    On,
    Off,
}

/// The simulator said no.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// Fault `refuses`: the login was refused.
    #[error("simulated BMC {0} refused the login: check username/password")]
    Refused(String),
    /// The state file could not be used.
    #[error("simulated BMC {name}: state file {path}: {detail}")]
    State {
        name: String,
        path: PathBuf,
        detail: String,
    },
}

/// Counts of what a simulator was asked.
#[derive(Debug, Default)]
pub struct SimCounters {
    pub status: AtomicU64,
    pub off: AtomicU64,
    pub on: AtomicU64,
    pub list: AtomicU64,
}

/// One simulated BMC (or PDU): many plugs, one fault mode.
#[derive(Debug)]
pub struct SimBmc {
    name: String,
    fault: Mutex<SimFault>,
    slow_by: Duration,
    initially_on: bool,
    plugs: Vec<String>,
    memory: Mutex<BTreeMap<String, SimPower>>,
    state_file: Option<PathBuf>,
    pub counters: SimCounters,
}

impl SimBmc {
    pub fn new(
        name: &str,
        fault: SimFault,
        slow_by: Duration,
        initially_on: bool,
        plugs: Vec<String>,
        state_file: Option<PathBuf>,
    ) -> Self {
        SimBmc {
            name: name.to_string(),
            fault: Mutex::new(fault),
            slow_by,
            initially_on,
            plugs,
            memory: Mutex::new(BTreeMap::new()),
            state_file,
            counters: SimCounters::default(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Change the fault mode at run time (tests, demo).
    pub fn set_fault(&self, fault: SimFault) {
        if let Ok(mut f) = self.fault.lock() {
            *f = fault;
        }
    }

    fn fault(&self) -> SimFault {
        self.fault.lock().map(|f| *f).unwrap_or(SimFault::None)
    }

    /// Applies the fault before an answer: waits, never answers, or refuses.
    async fn gate(&self) -> Result<(), SimError> {
        match self.fault() {
            SimFault::Slow => tokio::time::sleep(self.slow_by).await,
            SimFault::Silent => std::future::pending::<()>().await,
            SimFault::Refuses => return Err(SimError::Refused(self.name.clone())),
            SimFault::None | SimFault::Lies => {}
        }
        Ok(())
    }

    pub async fn status(&self, plug: &str) -> Result<SimPower, SimError> {
        self.counters.status.fetch_add(1, Ordering::Relaxed);
        self.gate().await?;
        self.with_state(|m| *m.get(plug).unwrap_or(&self.initial()))
    }

    pub async fn set(&self, plug: &str, power: SimPower) -> Result<(), SimError> {
        match power {
            SimPower::On => self.counters.on.fetch_add(1, Ordering::Relaxed),
            SimPower::Off => self.counters.off.fetch_add(1, Ordering::Relaxed),
        };
        self.gate().await?;
        if self.fault() == SimFault::Lies {
            return Ok(());
        }
        self.with_state(|m| {
            m.insert(plug.to_string(), power);
        })
    }

    pub async fn list(&self) -> Result<Vec<String>, SimError> {
        self.counters.list.fetch_add(1, Ordering::Relaxed);
        self.gate().await?;
        Ok(self.plugs.clone())
    }

    /// Power state without faults or counting (for tests and the demo).
    pub fn peek(&self, plug: &str) -> Result<SimPower, SimError> {
        self.with_state(|m| *m.get(plug).unwrap_or(&self.initial()))
    }

    fn initial(&self) -> SimPower {
        if self.initially_on {
            SimPower::On
        } else {
            SimPower::Off
        }
    }

    fn with_state<T>(
        &self,
        f: impl FnOnce(&mut BTreeMap<String, SimPower>) -> T,
    ) -> Result<T, SimError> {
        match &self.state_file {
            None => {
                let mut m = self.memory.lock().map_err(|_| SimError::State {
                    name: self.name.clone(),
                    path: PathBuf::from("(memory)"),
                    detail: "poisoned lock".into(),
                })?;
                Ok(f(&mut m))
            }
            Some(path) => file_state(path, f).map_err(|detail| SimError::State {
                name: self.name.clone(),
                path: path.clone(),
                detail,
            }),
        }
    }
}

fn file_state<T>(
    path: &PathBuf,
    f: impl FnOnce(&mut BTreeMap<String, SimPower>) -> T,
) -> Result<T, String> {
    use nix::fcntl::{Flock, FlockArg};
    use std::io::{Read, Seek, SeekFrom, Write};
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| e.to_string())?;
    let mut file = Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| e.to_string())?;
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(|e| e.to_string())?;
    let mut map: BTreeMap<String, SimPower> = if text.trim().is_empty() {
        BTreeMap::new()
    } else {
        serde_json::from_str(&text).map_err(|e| format!("not a sim state file: {e}"))?
    };
    let before = map.clone();
    let out = f(&mut map);
    if map != before {
        let json = serde_json::to_string_pretty(&map).map_err(|e| e.to_string())?;
        file.set_len(0).map_err(|e| e.to_string())?;
        file.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
        file.write_all(json.as_bytes()).map_err(|e| e.to_string())?;
        file.sync_data().map_err(|e| e.to_string())?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sim(fault: SimFault) -> SimBmc {
        SimBmc::new(
            "t",
            fault,
            Duration::from_millis(10),
            true,
            vec!["a".into()],
            None,
        )
    }

    #[tokio::test]
    async fn behaves() {
        let s = sim(SimFault::None);
        assert_eq!(s.status("a").await.unwrap(), SimPower::On);
        s.set("a", SimPower::Off).await.unwrap();
        assert_eq!(s.status("a").await.unwrap(), SimPower::Off);
        assert_eq!(s.counters.off.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn lies_and_refuses() {
        let s = sim(SimFault::Lies);
        s.set("a", SimPower::Off).await.unwrap();
        assert_eq!(s.status("a").await.unwrap(), SimPower::On);
        let s = sim(SimFault::Refuses);
        assert!(matches!(s.status("a").await, Err(SimError::Refused(_))));
    }

    #[tokio::test(start_paused = true)]
    async fn silent_never_answers() {
        let s = sim(SimFault::Silent);
        let r = tokio::time::timeout(Duration::from_secs(60), s.status("a")).await;
        assert!(r.is_err());
    }

    #[tokio::test]
    async fn file_shared() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s.json");
        let a = SimBmc::new(
            "a",
            SimFault::None,
            Duration::ZERO,
            true,
            vec![],
            Some(f.clone()),
        );
        let b = SimBmc::new("b", SimFault::None, Duration::ZERO, true, vec![], Some(f));
        a.set("n1", SimPower::Off).await.unwrap();
        assert_eq!(b.status("n1").await.unwrap(), SimPower::Off);
    }
}
