//! `PowerDevice` for a poison pill on 1-3 shared sbd disks, through
//! [`crate::sbd`] (on-disk compatible with ClusterLabs sbd and fence_sbd).
//!
//! ```text
//!  off / reboot:  every disk in parallel: open, header, slot, write the pill,
//!                 read it back  --> taken by a majority? --no--> error
//!                                          | yes
//!                                  wait msgwait (largest header) --> Ok
//!  on:            the same with `clear`, no wait
//!  status:        every disk: the node's mailbox
//!                   pill (reset/off/crashdump) on a majority -> Off
//!                   clear/test/exit on a majority            -> On
//!                   else Unknown; under a majority readable  -> error
//! ```
//!
//! What "Off" means here: a poison pill was delivered (fence_sbd's
//! semantics), not that anyone saw the machine stop. The victim's sbd
//! kills it on reading the pill, and if it cannot read the disks its
//! watchdog fires within the watchdog timeout; msgwait (normally twice
//! that) covers both. So `off` returns only after msgwait, and the
//! fencer's read-back of `Off` right after it means "pill on a majority
//! and msgwait elapsed" — the DESIGN invariant. A status of Off read at
//! any other moment only says that a pill is waiting.
//!
//! A reboot through the fencer is `off` then `on` (fence_sbd's
//! method=onoff): `off`, msgwait, then `clear`. [`SbdDevice::reboot`]
//! sends `reset` (fence_sbd's default method=cycle), for the agent.
//!
//! Majority: more than half of the configured disks (1 of 1, 2 of 2, 2 of
//! 3). A node with no slot is refused with the disk named and the command
//! that allocates it. The disks are opened anew for every operation (as sbd
//! does), so a disk that came back is used again; slots found are
//! remembered per disk (and re-checked by reading the slot each time).

use super::{PowerDevice, PowerError, PowerState};
use crate::config::{DeviceConfig, SbdDeviceConfig};
use crate::sbd::disk::Disk;
use crate::sbd::format::{Command, Header};
use crate::sbd::{BlockDevice, SbdError};
use async_trait::async_trait;
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;
use tracing::{info, warn};

/// Where the disks come from.
enum Disks {
    /// Opened by path for every operation.
    Paths {
        paths: Vec<PathBuf>,
        sector_size: Option<u32>,
    },
    /// Already open (tests, the demo).
    Open(Vec<Arc<dyn BlockDevice>>),
}

/// (disk, lower-case plug) -> (header uuid, slot) found earlier.
type SlotCache = HashMap<(String, String), ([u8; 16], usize)>;

pub struct SbdDevice {
    name: String,
    disks: Disks,
    io_timeout: Duration,
    crashdump: bool,
    from: String,
    slots: Mutex<SlotCache>,
}

/// A message that reached a majority of the disks.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Largest msgwait of the headers read.
    pub msgwait: Duration,
    pub delivered: usize,
    pub disks: usize,
}

/// Fewest disks that make a majority of `n`.
pub fn majority(n: usize) -> usize {
    n / 2 + 1
}

/// Aborts the per-disk tasks if the operation is dropped (deadline).
struct Tasks<T>(Vec<(String, JoinHandle<Result<T, SbdError>>)>);

impl<T> Drop for Tasks<T> {
    fn drop(&mut self) {
        for (_, h) in &self.0 {
            h.abort();
        }
    }
}

impl SbdDevice {
    pub fn new(dev: &DeviceConfig, cfg: &SbdDeviceConfig) -> Self {
        Self::from_parts(&dev.name, cfg)
    }

    /// Build from explicit parts (agent mode).
    pub fn from_parts(name: &str, cfg: &SbdDeviceConfig) -> Self {
        SbdDevice {
            name: name.to_string(),
            disks: Disks::Paths {
                paths: cfg.devices.clone(),
                sector_size: cfg.sector_size,
            },
            io_timeout: cfg.io_timeout,
            crashdump: cfg.crashdump,
            from: cfg.from.clone(),
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// A device on disks that are already open (tests, the demo).
    pub fn with_disks(
        name: &str,
        disks: Vec<Arc<dyn BlockDevice>>,
        io_timeout: Duration,
        crashdump: bool,
        from: &str,
    ) -> Self {
        SbdDevice {
            name: name.to_string(),
            disks: Disks::Open(disks),
            io_timeout,
            crashdump,
            from: from.to_string(),
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// Run `f` on every disk at once (each opened first, under the I/O
    /// timeout); results in disk order.
    async fn each<T, F, Fut>(&self, f: F) -> Vec<(String, Result<T, SbdError>)>
    where
        T: Send + 'static,
        F: Fn(Arc<dyn BlockDevice>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, SbdError>> + Send + 'static,
    {
        let t = self.io_timeout;
        let f = Arc::new(f);
        let mut tasks = Tasks(Vec::new());
        match &self.disks {
            Disks::Open(devs) => {
                for d in devs {
                    tasks
                        .0
                        .push((d.name().to_string(), tokio::spawn(f(d.clone()))));
                }
            }
            Disks::Paths { paths, sector_size } => {
                for p in paths {
                    let name = p.display().to_string();
                    let (path, ss, f) = (p.clone(), *sector_size, f.clone());
                    let task = tokio::spawn(async move {
                        let dev = crate::sbd::io::open(&path, ss, t).await?;
                        f(dev).await
                    });
                    tasks.0.push((name, task));
                }
            }
        }
        let mut out = Vec::new();
        for (name, h) in tasks.0.iter_mut() {
            let r = match h.await {
                Ok(r) => r,
                Err(e) => Err(SbdError::Io {
                    device: name.clone(),
                    detail: format!("the disk task failed: {e}"),
                }),
            };
            out.push((name.clone(), r));
        }
        out
    }

    fn cached(&self, disk: &str, plug: &str) -> Option<([u8; 16], usize)> {
        self.slots.lock().ok().and_then(|m| {
            m.get(&(disk.to_string(), plug.to_ascii_lowercase()))
                .copied()
        })
    }

    fn remember(&self, disk: &str, plug: &str, uuid: [u8; 16], slot: usize) {
        if let Ok(mut m) = self.slots.lock() {
            m.insert((disk.to_string(), plug.to_ascii_lowercase()), (uuid, slot));
        }
    }

    /// Write `cmd` into `plug`'s mailbox on every disk at once, each read
    /// back; succeed only if a majority took it. Does not wait msgwait.
    pub async fn deliver(&self, plug: &str, cmd: Command) -> Result<Delivery, PowerError> {
        let from = self.from.clone();
        let caches = self.caches(plug);
        let owned = plug.to_string();
        let results = self
            .each(move |dev| {
                let plug = owned.clone();
                let from = from.clone();
                let cached = caches.get(dev.name()).copied();
                async move {
                    let disk = Disk::new(dev.as_ref());
                    let h = disk.header().await?;
                    let slot = locate(&disk, &h, &plug, cached).await?;
                    disk.write_mailbox(slot, cmd, &from).await?;
                    Ok((h, slot))
                }
            })
            .await;
        let n = results.len();
        let mut msgwait = 0u32;
        let mut ok = 0;
        let mut failures = Vec::new();
        for (disk, r) in results {
            match r {
                Ok((h, slot)) => {
                    ok += 1;
                    msgwait = msgwait.max(h.timeouts.msgwait);
                    self.remember(&disk, plug, h.uuid, slot);
                }
                Err(e) => {
                    warn!(device = %self.name, disk = %disk, node = %plug, action = %cmd, cause = %e, "sbd disk did not take the message");
                    failures.push(e);
                }
            }
        }
        let need = majority(n);
        if ok < need {
            return Err(self.failed(
                &format!(
                    "`{cmd}` for `{plug}` reached {ok} of {n} disk(s), a majority needs {need}"
                ),
                failures,
            ));
        }
        Ok(Delivery {
            msgwait: Duration::from_secs(u64::from(msgwait)),
            delivered: ok,
            disks: n,
        })
    }

    /// The remembered slots of `plug`, by disk.
    fn caches(&self, plug: &str) -> HashMap<String, ([u8; 16], usize)> {
        self.disk_names()
            .into_iter()
            .filter_map(|d| self.cached(&d, plug).map(|c| (d, c)))
            .collect()
    }

    fn disk_names(&self) -> Vec<String> {
        match &self.disks {
            Disks::Paths { paths, .. } => paths.iter().map(|p| p.display().to_string()).collect(),
            Disks::Open(d) => d.iter().map(|d| d.name().to_string()).collect(),
        }
    }

    /// One error for an operation that did not reach a majority.
    fn failed(&self, what: &str, failures: Vec<SbdError>) -> PowerError {
        let device = self.name.clone();
        let detail = format!(
            "{what}: {}",
            failures
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        );
        if !failures.is_empty()
            && failures
                .iter()
                .all(|e| matches!(e, SbdError::NotAllocated { .. } | SbdError::Name(_)))
        {
            PowerError::Refused { device, detail }
        } else if !failures.is_empty()
            && failures
                .iter()
                .all(|e| matches!(e, SbdError::Timeout { .. }))
        {
            PowerError::Timeout {
                device,
                what: detail,
                after: self.io_timeout,
            }
        } else if failures.iter().any(|e| {
            matches!(
                e,
                SbdError::Format { .. }
                    | SbdError::SectorMismatch { .. }
                    | SbdError::TooSmall { .. }
                    | SbdError::Verify { .. }
            )
        }) {
            PowerError::Protocol { device, detail }
        } else {
            PowerError::Connect { device, detail }
        }
    }

    /// Deliver a pill, then wait msgwait: afterwards the node is dead.
    async fn pill(&self, plug: &str, cmd: Command) -> Result<(), PowerError> {
        let d = self.deliver(plug, cmd).await?;
        info!(device = %self.name, node = %plug, action = %cmd, delivered = d.delivered, disks = d.disks,
              msgwait_s = d.msgwait.as_secs(), "poison pill delivered to a majority; waiting msgwait");
        tokio::time::sleep(d.msgwait).await;
        Ok(())
    }

    /// `reset` (or `crashdump`) to a majority, then msgwait: fence_sbd's
    /// reboot with method=cycle.
    pub async fn reboot(&self, plug: &str) -> Result<(), PowerError> {
        let cmd = if self.crashdump {
            Command::Crashdump
        } else {
            Command::Reset
        };
        self.pill(plug, cmd).await
    }

    /// The largest msgwait among the disks whose header reads (for
    /// warnings before a fence; the fence itself re-reads the headers).
    pub async fn msgwait(&self) -> Result<Duration, PowerError> {
        let headers = self.headers().await?;
        Ok(Duration::from_secs(u64::from(
            headers
                .iter()
                .map(|h| h.timeouts.msgwait)
                .max()
                .unwrap_or(0),
        )))
    }

    /// Headers of the disks, when a majority reads.
    async fn headers(&self) -> Result<Vec<Header>, PowerError> {
        let results = self
            .each(|dev| async move { Disk::new(dev.as_ref()).header().await })
            .await;
        let n = results.len();
        let mut ok = Vec::new();
        let mut failures = Vec::new();
        for (_, r) in results {
            match r {
                Ok(h) => ok.push(h),
                Err(e) => failures.push(e),
            }
        }
        if ok.len() < majority(n) {
            return Err(self.failed(
                &format!(
                    "the sbd header reads on {} of {n} disk(s), a majority needs {}",
                    ok.len(),
                    majority(n)
                ),
                failures,
            ));
        }
        Ok(ok)
    }
}

/// The slot of `plug` on `disk`: the remembered one if it still holds
/// `plug` on the same disk (uuid), else a search.
async fn locate(
    disk: &Disk<'_>,
    h: &Header,
    plug: &str,
    cached: Option<([u8; 16], usize)>,
) -> Result<usize, SbdError> {
    if let Some((uuid, i)) = cached {
        if uuid == h.uuid && disk.slot(i).await?.is(plug) {
            return Ok(i);
        }
    }
    disk.find(plug)
        .await?
        .ok_or_else(|| SbdError::NotAllocated {
            device: disk.dev.name().to_string(),
            name: plug.to_string(),
        })
}

#[async_trait]
impl PowerDevice for SbdDevice {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "sbd"
    }
    /// Off: a pill waits on a majority; On: no pill on a majority.
    async fn status(&self, plug: &str) -> Result<PowerState, PowerError> {
        let owned = plug.to_string();
        let caches = self.caches(plug);
        let results = self
            .each(move |dev| {
                let plug = owned.clone();
                let cached = caches.get(dev.name()).copied();
                async move {
                    let disk = Disk::new(dev.as_ref());
                    let h = disk.header().await?;
                    let slot = locate(&disk, &h, &plug, cached).await?;
                    Ok((h.uuid, slot, disk.mailbox(slot).await?.cmd))
                }
            })
            .await;
        let n = results.len();
        let need = majority(n);
        let (mut pills, mut alive, mut readable) = (0, 0, 0);
        let mut failures = Vec::new();
        for (disk, r) in results {
            match r {
                Ok((uuid, slot, cmd)) => {
                    self.remember(&disk, plug, uuid, slot);
                    readable += 1;
                    if cmd.is_poison() {
                        pills += 1;
                    } else if matches!(cmd, Command::Clear | Command::Test | Command::Exit) {
                        alive += 1;
                    }
                }
                Err(e) => failures.push(e),
            }
        }
        if readable < need {
            return Err(self.failed(
                &format!("the mailbox of `{plug}` reads on {readable} of {n} disk(s), a majority needs {need}"),
                failures,
            ));
        }
        Ok(if pills >= need {
            PowerState::Off
        } else if alive >= need {
            PowerState::On
        } else {
            PowerState::Unknown
        })
    }
    async fn off(&self, plug: &str) -> Result<(), PowerError> {
        let cmd = if self.crashdump {
            Command::Crashdump
        } else {
            Command::Off
        };
        self.pill(plug, cmd).await
    }
    async fn on(&self, plug: &str) -> Result<(), PowerError> {
        self.deliver(plug, Command::Clear).await.map(|_| ())
    }
    /// The names in the slots of the disks (union, first spelling kept).
    async fn list(&self) -> Result<Vec<String>, PowerError> {
        let results = self
            .each(|dev| async move {
                Ok(Disk::new(dev.as_ref())
                    .list()
                    .await?
                    .into_iter()
                    .map(|e| e.name)
                    .collect::<Vec<_>>())
            })
            .await;
        let n = results.len();
        let mut names: Vec<String> = Vec::new();
        let mut failures = Vec::new();
        let mut readable = 0;
        for (_, r) in results {
            match r {
                Ok(list) => {
                    readable += 1;
                    for name in list {
                        if !names.iter().any(|m| m.eq_ignore_ascii_case(&name)) {
                            names.push(name);
                        }
                    }
                }
                Err(e) => failures.push(e),
            }
        }
        if readable < majority(n) {
            return Err(self.failed(
                &format!(
                    "the slots read on {readable} of {n} disk(s), a majority needs {}",
                    majority(n)
                ),
                failures,
            ));
        }
        Ok(names)
    }
    /// The headers read on a majority of the disks.
    async fn monitor(&self) -> Result<(), PowerError> {
        self.headers().await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::power::verify;
    use crate::sbd::format::{Timeouts, SECTORS_USED};
    use crate::sbd::MemDevice;
    use std::sync::atomic::Ordering;

    async fn disks(n: usize, msgwait: u32) -> Vec<Arc<MemDevice>> {
        let mut v = Vec::new();
        for i in 0..n {
            let dev = Arc::new(MemDevice::new(
                &format!("/dev/d{i}"),
                512,
                SECTORS_USED * 512,
            ));
            let d = Disk::new(dev.as_ref());
            d.create(
                Timeouts {
                    watchdog: 1,
                    msgwait: msgwait + i as u32,
                    ..Timeouts::default()
                },
                [i as u8; 16],
            )
            .await
            .unwrap();
            d.allocate("node-a").await.unwrap();
            d.allocate("node-b").await.unwrap();
            v.push(dev);
        }
        v
    }

    fn device(d: &[Arc<MemDevice>], crashdump: bool) -> SbdDevice {
        SbdDevice::with_disks(
            "sbd",
            d.iter()
                .map(|d| d.clone() as Arc<dyn BlockDevice>)
                .collect(),
            Duration::from_secs(3),
            crashdump,
            "fencer-1",
        )
    }

    async fn mbox(d: &MemDevice, slot: usize) -> (Command, String) {
        let m = Disk::new(d).mailbox(slot).await.unwrap();
        (m.cmd, m.from)
    }

    #[test]
    fn majorities() {
        assert_eq!([1, 2, 3].map(majority), [1, 2, 2], "1 of 1, 2 of 2, 2 of 3");
    }

    #[tokio::test(start_paused = true)]
    async fn off_waits_msgwait_then_reads_off() {
        let d = disks(3, 4).await;
        let dev = device(&d, false);
        assert_eq!(dev.status("node-b").await.unwrap(), PowerState::On);
        let t = tokio::time::Instant::now();
        let v = verify::set_and_verify(
            &dev,
            "node-b",
            PowerState::Off,
            Duration::from_secs(30),
            Duration::from_millis(100),
        )
        .await
        .unwrap();
        assert_eq!(v.reads, 1);
        assert_eq!(
            t.elapsed(),
            Duration::from_secs(6),
            "largest msgwait (4, 5, 6)"
        );
        for disk in &d {
            assert_eq!(mbox(disk, 1).await, (Command::Off, "fencer-1".into()));
            assert_eq!(
                mbox(disk, 0).await.0,
                Command::Clear,
                "other slot untouched"
            );
        }
        assert_eq!(dev.status("NODE-B").await.unwrap(), PowerState::Off);
        dev.on("node-b").await.unwrap();
        assert_eq!(dev.status("node-b").await.unwrap(), PowerState::On);
        assert_eq!(t.elapsed(), Duration::from_secs(6), "on does not wait");
    }

    #[tokio::test(start_paused = true)]
    async fn reboot_and_crashdump_messages() {
        let d = disks(1, 2).await;
        device(&d, false).reboot("node-a").await.unwrap();
        assert_eq!(mbox(&d[0], 0).await.0, Command::Reset);
        let dev = device(&d, true);
        dev.off("node-a").await.unwrap();
        assert_eq!(mbox(&d[0], 0).await.0, Command::Crashdump);
        dev.reboot("node-a").await.unwrap();
        assert_eq!(mbox(&d[0], 0).await.0, Command::Crashdump);
        assert_eq!(dev.status("node-a").await.unwrap(), PowerState::Off);
    }

    #[tokio::test(start_paused = true)]
    async fn majority_of_disks() {
        let d = disks(3, 2).await;
        let dev = device(&d, false);
        d[2].broken.store(true, Ordering::Relaxed);
        dev.off("node-a").await.unwrap();
        assert_eq!(dev.status("node-a").await.unwrap(), PowerState::Off);
        assert_eq!(dev.list().await.unwrap(), vec!["node-a", "node-b"]);
        dev.monitor().await.unwrap();
        d[1].broken.store(true, Ordering::Relaxed);
        let e = dev.off("node-b").await.unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("reached 1 of 3 disk(s), a majority needs 2"),
            "{text}"
        );
        assert!(
            text.contains("/dev/d1") && text.contains("/dev/d2"),
            "{text}"
        );
        assert!(dev.status("node-a").await.is_err());
        assert!(dev.monitor().await.is_err());
        // Two disks: both are needed.
        let d = disks(2, 2).await;
        let dev = device(&d, false);
        d[0].broken.store(true, Ordering::Relaxed);
        assert!(dev.off("node-a").await.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn split_mailboxes_are_unknown() {
        let d = disks(3, 2).await;
        let dev = device(&d, false);
        Disk::new(d[0].as_ref())
            .message("node-a", Command::Reset, "x")
            .await
            .unwrap();
        assert_eq!(dev.status("node-a").await.unwrap(), PowerState::On);
        Disk::new(d[1].as_ref())
            .message("node-a", Command::Off, "x")
            .await
            .unwrap();
        assert_eq!(dev.status("node-a").await.unwrap(), PowerState::Off);
        Disk::new(d[1].as_ref())
            .message("node-a", Command::Unknown(9), "x")
            .await
            .unwrap();
        assert_eq!(dev.status("node-a").await.unwrap(), PowerState::Unknown);
        for cmd in [Command::Test, Command::Exit] {
            for disk in &d {
                Disk::new(disk.as_ref())
                    .message("node-a", cmd, "x")
                    .await
                    .unwrap();
            }
            assert_eq!(dev.status("node-a").await.unwrap(), PowerState::On);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn unallocated_node_is_refused() {
        let d = disks(3, 2).await;
        let dev = device(&d, false);
        let e = dev.off("ghost").await.unwrap_err();
        assert!(matches!(e, PowerError::Refused { .. }), "{e}");
        let text = e.to_string();
        assert!(
            text.contains("node `ghost` has no slot")
                && text.contains("ironfence sbd -d /dev/d0 allocate ghost"),
            "{text}"
        );
        assert!(matches!(
            dev.status("ghost").await,
            Err(PowerError::Refused { .. })
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn remembered_slot_is_rechecked() {
        let d = disks(1, 1).await;
        let dev = device(&d, false);
        dev.on("node-b").await.unwrap();
        // The disk is re-created: node-b now lives in slot 0.
        let disk = Disk::new(d[0].as_ref());
        disk.create(Timeouts::default(), [7; 16]).await.unwrap();
        disk.allocate("node-b").await.unwrap();
        dev.deliver("node-b", Command::Test).await.unwrap();
        assert_eq!(mbox(&d[0], 0).await.0, Command::Test);
    }
}
