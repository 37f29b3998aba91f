//! The library side of a node's SBD servant: watches this node's slot on one
//! disk the way ClusterLabs sbd's `servant_md` does, and reports what it
//! sees. It never decides anything: the node daemon (issue 6) feeds the
//! watchdog on its reports and self-fences on a poison pill.
//!
//! ```text
//!  start:  read header, find (or allocate) own slot, read it
//!          clean start mode + anything but clear/exit waiting -> refuse
//!          zero own mailbox
//!  loop (every loop_interval):
//!          header == first read?  slot == first read?  (byte for byte)
//!              no / unreadable ---------------------------> unhealthy
//!          read mailbox:  clear        -> live
//!                         test         -> write clear, report, live
//!                         unknown      -> write clear, report, live
//!                         reset / off / crashdump / exit -> report, live
//! ```
//!
//! It writes only its own mailbox (and, with automatic allocation, one free
//! slot for itself, as sbd does); every other sector is left alone. Clearing
//! a `test` races with a fencer writing a pill in the same instant, exactly
//! as in sbd: the fencer's read-back after msgwait sees the pill gone and
//! does not report the node fenced.
//!
//! Called by the node daemon (later issue) through [`Servant::run`], or step
//! by step with [`Servant::start`] and [`Servant::poll_once`]. It must never
//! touch the watchdog or act on a message itself.

use super::disk::Disk;
use super::format::{self, Command, Header};
use super::{BlockDevice, SbdError};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// What to do when a fencing message waits in our mailbox at start-up
/// (sbd's `-S` / `SBD_STARTMODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartMode {
    /// Start anyway and clear the mailbox (sbd's `always`).
    #[default]
    Always,
    /// Refuse to start while anything but `clear` or `exit` waits: this
    /// node was fenced and a human should look first (sbd's `clean`).
    Clean,
}

/// A message found in our mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub cmd: Command,
    /// The sender's name as written by it (sbd's `-n` or host name).
    pub from: String,
}

/// The servant started: the header it will compare against and its slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    pub slot: usize,
    pub header: Header,
    /// The slot was allocated by this start.
    pub allocated: bool,
}

/// What [`Servant::run`] reports.
#[derive(Debug, Clone, PartialEq)]
pub enum ServantEvent {
    /// Start-up done; polling begins.
    Started(Started),
    /// A loop read header, slot and mailbox and all was as at start
    /// (sbd's liveness signal).
    Live { at: Instant },
    /// A new message (sent once per arrival; a `test` was already cleared).
    Message(Message),
    /// A loop (or a start attempt) failed; `last_good` is the last live loop.
    Unhealthy {
        reason: String,
        last_good: Option<Instant>,
    },
    /// The start was refused (clean start mode and a message waiting):
    /// the servant stopped and will not retry.
    Refused { reason: String },
    /// Shutdown was asked for; the servant stopped.
    Stopped,
}

/// How the servant is doing.
#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    /// The last loop succeeded.
    pub healthy: bool,
    /// When a loop last succeeded.
    pub last_good: Option<Instant>,
    /// Why the last loop failed, if it did.
    pub last_error: Option<String>,
}

/// Why the servant cannot watch its slot.
#[derive(Debug, thiserror::Error)]
pub enum ServantError {
    /// The disk could not be read or written.
    #[error("{0}")]
    Disk(#[from] SbdError),
    /// The header is not what it was at start.
    #[error("sbd device {device}: the header changed since the servant started (disk re-created or replaced?): check the disk, then restart the servant")]
    HeaderChanged { device: String },
    /// Our slot is not what it was at start.
    #[error("sbd device {device}: slot {slot} of `{node}` changed since the servant started: check `ironfence sbd -d {device} list`, then restart the servant")]
    SlotChanged {
        device: String,
        slot: usize,
        node: String,
    },
    /// No slot, and automatic allocation is off.
    #[error("sbd device {device}: node `{node}` has no slot (allocate it: ironfence sbd -d {device} allocate {node})")]
    NoSlot { device: String, node: String },
    /// Another node took the slot while we allocated it.
    #[error("sbd device {device}: slot {slot} was taken by `{other}` while `{node}` allocated it (two nodes allocated at once): start again")]
    AllocationRace {
        device: String,
        slot: usize,
        node: String,
        other: String,
    },
    /// Clean start mode and a message waiting.
    #[error("sbd device {device}: `{cmd}` from `{from}` waits in the mailbox of `{node}` and the start mode is clean: this node was fenced; after checking why, clear it (ironfence sbd -d {device} message {node} clear)")]
    Pending {
        device: String,
        node: String,
        cmd: Command,
        from: String,
    },
    /// `poll_once` before a successful `start`.
    #[error("the servant for `{node}` on {device} has not started")]
    NotStarted { device: String, node: String },
}

/// What the first read saw; every loop compares against it.
struct Baseline {
    header: Vec<u8>,
    slot: usize,
    slot_bytes: Vec<u8>,
}

/// Watches one node's slot on one disk.
pub struct Servant {
    dev: Arc<dyn BlockDevice>,
    node: String,
    loop_interval: Duration,
    start_mode: StartMode,
    allocate: bool,
    baseline: Option<Baseline>,
    health: Health,
}

/// This host's name as sbd takes it (`uname -n`): the default node name
/// and sender.
pub fn local_name() -> std::io::Result<String> {
    Ok(std::fs::read_to_string("/proc/sys/kernel/hostname")?
        .trim()
        .to_string())
}

impl Servant {
    /// A servant for `node_name` on `dev`, polling every `loop_interval`
    /// (sbd's timeout_loop). Start mode always, automatic allocation on,
    /// as sbd's defaults.
    pub fn new(dev: Arc<dyn BlockDevice>, node_name: &str, loop_interval: Duration) -> Servant {
        Servant {
            dev,
            node: node_name.to_string(),
            loop_interval,
            start_mode: StartMode::Always,
            allocate: true,
            baseline: None,
            health: Health {
                healthy: false,
                last_good: None,
                last_error: None,
            },
        }
    }

    pub fn start_mode(mut self, mode: StartMode) -> Self {
        self.start_mode = mode;
        self
    }

    /// Whether a missing slot is allocated at start (sbd always does).
    pub fn auto_allocate(mut self, yes: bool) -> Self {
        self.allocate = yes;
        self
    }

    pub fn health(&self) -> Health {
        self.health.clone()
    }

    /// The slot being watched, once started.
    pub fn slot(&self) -> Option<usize> {
        self.baseline.as_ref().map(|b| b.slot)
    }

    fn device(&self) -> String {
        self.dev.name().to_string()
    }

    /// Read the header and our slot (allocating it if allowed), apply the
    /// start mode, zero our mailbox. Can be called again to re-baseline.
    pub async fn start(&mut self) -> Result<Started, ServantError> {
        self.baseline = None;
        let disk = Disk::new(self.dev.as_ref());
        // The header as Disk::header checks it, and its bytes as read.
        let header_bytes = self.dev.read_sector(0).await?;
        let header = Header::decode(&header_bytes).map_err(|source| SbdError::Format {
            device: self.device(),
            sector: 0,
            source,
        })?;
        if header.sector_size != self.dev.sector_size() {
            return Err(SbdError::SectorMismatch {
                device: self.device(),
                header: header.sector_size,
                device_sector: self.dev.sector_size(),
            }
            .into());
        }
        let (slot, allocated) = match disk.find(&self.node).await? {
            Some(i) => (i, false),
            None if self.allocate => {
                let i = disk.allocate(&self.node).await?;
                // sbd's race check: wait timeout_allocate, then the slot
                // must still be ours.
                tokio::time::sleep(Duration::from_secs(u64::from(header.timeouts.allocate))).await;
                let s = disk.slot(i).await?;
                if !s.is(&self.node) {
                    return Err(ServantError::AllocationRace {
                        device: self.device(),
                        slot: i,
                        node: self.node.clone(),
                        other: s.name,
                    });
                }
                (i, true)
            }
            None => {
                return Err(ServantError::NoSlot {
                    device: self.device(),
                    node: self.node.clone(),
                })
            }
        };
        let slot_bytes = self.dev.read_sector(format::slot_sector(slot)).await?;
        if !format::Slot::decode(&slot_bytes).is_ok_and(|s| s.is(&self.node)) {
            return Err(ServantError::SlotChanged {
                device: self.device(),
                slot,
                node: self.node.clone(),
            });
        }
        let mbox = disk.mailbox(slot).await?;
        if self.start_mode == StartMode::Clean
            && !matches!(mbox.cmd, Command::Clear | Command::Exit)
        {
            return Err(ServantError::Pending {
                device: self.device(),
                node: self.node.clone(),
                cmd: mbox.cmd,
                from: mbox.from,
            });
        }
        disk.write_mailbox(slot, Command::Clear, "").await?;
        self.baseline = Some(Baseline {
            header: header_bytes,
            slot,
            slot_bytes,
        });
        Ok(Started {
            slot,
            header,
            allocated,
        })
    }

    /// One loop: re-read header and slot (both must be byte-identical to
    /// the start), read the mailbox, clear a `test` (or an unknown value).
    /// Returns the message waiting, if any (a pill stays and is returned by
    /// every call until someone clears it). Updates [`Servant::health`].
    pub async fn poll_once(&mut self) -> Result<Option<Message>, ServantError> {
        let r = self.poll_inner().await;
        match &r {
            Ok(_) => {
                self.health = Health {
                    healthy: true,
                    last_good: Some(Instant::now()),
                    last_error: None,
                }
            }
            Err(e) => {
                self.health.healthy = false;
                self.health.last_error = Some(e.to_string());
            }
        }
        r
    }

    async fn poll_inner(&mut self) -> Result<Option<Message>, ServantError> {
        let Some(b) = &self.baseline else {
            return Err(ServantError::NotStarted {
                device: self.device(),
                node: self.node.clone(),
            });
        };
        let slot = b.slot;
        if self.dev.read_sector(0).await? != b.header {
            return Err(ServantError::HeaderChanged {
                device: self.device(),
            });
        }
        if self.dev.read_sector(format::slot_sector(slot)).await? != b.slot_bytes {
            return Err(ServantError::SlotChanged {
                device: self.device(),
                slot,
                node: self.node.clone(),
            });
        }
        let disk = Disk::new(self.dev.as_ref());
        let mbox = disk.mailbox(slot).await?;
        match mbox.cmd {
            Command::Clear => Ok(None),
            Command::Test | Command::Unknown(_) => {
                disk.write_mailbox(slot, Command::Clear, "").await?;
                Ok(Some(Message {
                    cmd: mbox.cmd,
                    from: mbox.from,
                }))
            }
            Command::Reset | Command::Off | Command::Crashdump | Command::Exit => {
                Ok(Some(Message {
                    cmd: mbox.cmd,
                    from: mbox.from,
                }))
            }
        }
    }

    /// Run until `shutdown` turns true, reporting on the returned channel:
    /// start (retried every loop_interval while the disk fails; a refusal
    /// by the clean start mode is final), then one poll per loop_interval.
    /// A message is reported once per arrival. When the receiver is
    /// dropped the servant stops.
    pub fn run(
        mut self,
        mut shutdown: watch::Receiver<bool>,
    ) -> (mpsc::Receiver<ServantEvent>, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(16);
        let task = tokio::spawn(async move {
            // Start.
            loop {
                if *shutdown.borrow() {
                    let _ = tx.send(ServantEvent::Stopped).await;
                    return;
                }
                let ev = match self.start().await {
                    Ok(s) => {
                        if tx.send(ServantEvent::Started(s)).await.is_err() {
                            return;
                        }
                        break;
                    }
                    Err(e @ ServantError::Pending { .. }) => {
                        let _ = tx
                            .send(ServantEvent::Refused {
                                reason: e.to_string(),
                            })
                            .await;
                        return;
                    }
                    Err(e) => ServantEvent::Unhealthy {
                        reason: e.to_string(),
                        last_good: self.health.last_good,
                    },
                };
                if tx.send(ev).await.is_err() {
                    return;
                }
                tokio::select! {
                    _ = shutdown.changed() => {}
                    _ = tokio::time::sleep(self.loop_interval) => {}
                }
            }
            // Poll.
            let mut last: Option<Message> = None;
            loop {
                tokio::select! {
                    _ = shutdown.changed() => {}
                    _ = tokio::time::sleep(self.loop_interval) => {}
                }
                if *shutdown.borrow() {
                    let _ = tx.send(ServantEvent::Stopped).await;
                    return;
                }
                let mut events = Vec::new();
                match self.poll_once().await {
                    Ok(m) => {
                        if let Some(m) = &m {
                            let transient = matches!(m.cmd, Command::Test | Command::Unknown(_));
                            if transient || last.as_ref() != Some(m) {
                                events.push(ServantEvent::Message(m.clone()));
                            }
                        }
                        last = m.filter(|m| !matches!(m.cmd, Command::Test | Command::Unknown(_)));
                        events.push(ServantEvent::Live {
                            at: self.health.last_good.unwrap_or_else(Instant::now),
                        });
                    }
                    Err(e) => events.push(ServantEvent::Unhealthy {
                        reason: e.to_string(),
                        last_good: self.health.last_good,
                    }),
                }
                for ev in events {
                    if tx.send(ev).await.is_err() {
                        return;
                    }
                }
            }
        });
        (rx, task)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::sbd::format::{Mailbox, Timeouts, SECTORS_USED};
    use crate::sbd::MemDevice;
    use std::sync::atomic::Ordering;

    const LOOP: Duration = Duration::from_secs(1);

    async fn disk(ss: u32) -> Arc<MemDevice> {
        let dev = Arc::new(MemDevice::new("/dev/mem", ss, SECTORS_USED * ss as u64));
        let d = Disk::new(dev.as_ref());
        d.create(Timeouts::default(), [9; 16]).await.unwrap();
        d.allocate("node-a").await.unwrap();
        d.allocate("node-b").await.unwrap();
        d.allocate("node-c").await.unwrap();
        dev
    }

    async fn snapshot(dev: &MemDevice) -> Vec<Vec<u8>> {
        let mut v = Vec::new();
        for s in 0..SECTORS_USED {
            v.push(dev.read_sector(s).await.unwrap());
        }
        v
    }

    async fn send(dev: &MemDevice, to: &str, cmd: Command, from: &str) {
        Disk::new(dev).message(to, cmd, from).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn reports_messages_and_clears_only_test() {
        for ss in [512u32, 4096] {
            let dev = disk(ss).await;
            // A message for someone else must not concern us.
            send(&dev, "node-c", Command::Reset, "fencer").await;
            let mut s = Servant::new(dev.clone(), "node-b", LOOP);
            let st = s.start().await.unwrap();
            assert_eq!(st.slot, 1);
            assert!(!st.allocated);
            assert_eq!(s.poll_once().await.unwrap(), None);
            assert!(s.health().healthy);

            send(&dev, "node-b", Command::Test, "node-a").await;
            let m = s.poll_once().await.unwrap().unwrap();
            assert_eq!((m.cmd, m.from.as_str()), (Command::Test, "node-a"));
            let mbox = Disk::new(dev.as_ref()).mailbox(1).await.unwrap();
            assert_eq!(mbox.cmd, Command::Clear, "test is cleared by the servant");
            assert_eq!(s.poll_once().await.unwrap(), None);

            for cmd in [
                Command::Exit,
                Command::Off,
                Command::Crashdump,
                Command::Reset,
            ] {
                send(&dev, "node-b", cmd, "fencer-x").await;
                for _ in 0..2 {
                    let m = s.poll_once().await.unwrap().unwrap();
                    assert_eq!(
                        m,
                        Message {
                            cmd,
                            from: "fencer-x".into()
                        },
                        "a pill stays and is reported on every loop"
                    );
                }
            }
            let other = Disk::new(dev.as_ref()).mailbox(2).await.unwrap();
            assert_eq!(other.cmd, Command::Reset, "node-c's pill untouched");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn unknown_value_is_cleared_and_reported() {
        let dev = disk(512).await;
        let mut s = Servant::new(dev.clone(), "node-a", LOOP);
        s.start().await.unwrap();
        let raw = Mailbox {
            cmd: Command::Unknown(42),
            from: "garbage".into(),
        }
        .encode(512)
        .unwrap();
        dev.write_sector(format::mailbox_sector(0), &raw)
            .await
            .unwrap();
        let m = s.poll_once().await.unwrap().unwrap();
        assert_eq!(m.cmd, Command::Unknown(42));
        assert_eq!(
            Disk::new(dev.as_ref()).mailbox(0).await.unwrap().cmd,
            Command::Clear
        );
    }

    #[tokio::test(start_paused = true)]
    async fn other_slots_untouched_byte_for_byte() {
        let dev = disk(512).await;
        // Give every other mailbox something to lose.
        send(&dev, "node-a", Command::Test, "x").await;
        send(&dev, "node-c", Command::Off, "y").await;
        let before = snapshot(&dev).await;
        let mut s = Servant::new(dev.clone(), "node-b", LOOP);
        s.start().await.unwrap();
        for i in 0..5 {
            if i == 2 {
                send(&dev, "node-b", Command::Test, "z").await;
            }
            s.poll_once().await.unwrap();
        }
        let after = snapshot(&dev).await;
        let own = format::mailbox_sector(1) as usize;
        for (i, (a, b)) in before.iter().zip(&after).enumerate() {
            if i != own {
                assert_eq!(a, b, "sector {i} changed");
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn detached_disk_is_unhealthy_until_it_returns() {
        let dev = disk(512).await;
        let mut s = Servant::new(dev.clone(), "node-a", LOOP);
        s.start().await.unwrap();
        s.poll_once().await.unwrap();
        let good = s.health().last_good.unwrap();
        tokio::time::advance(LOOP).await;
        dev.broken.store(true, Ordering::Relaxed);
        let e = s.poll_once().await.unwrap_err();
        assert!(e.to_string().contains("detached"), "{e}");
        let h = s.health();
        assert!(!h.healthy);
        assert_eq!(h.last_good, Some(good), "last good read time kept");
        assert!(h.last_error.unwrap().contains("/dev/mem"));
        dev.broken.store(false, Ordering::Relaxed);
        s.poll_once().await.unwrap();
        assert!(s.health().healthy);
        assert!(s.health().last_good.unwrap() > good);
    }

    #[tokio::test(start_paused = true)]
    async fn changed_header_or_slot_is_unhealthy() {
        let dev = disk(512).await;
        let mut s = Servant::new(dev.clone(), "node-a", LOOP);
        s.start().await.unwrap();
        // Same layout, another msgwait: not the disk we started on.
        let other = Header::new(
            512,
            Timeouts {
                msgwait: 20,
                ..Timeouts::default()
            },
            [9; 16],
        );
        let orig = dev.read_sector(0).await.unwrap();
        dev.write_sector(0, &other.encode()).await.unwrap();
        assert!(matches!(
            s.poll_once().await,
            Err(ServantError::HeaderChanged { .. })
        ));
        assert!(!s.health().healthy);
        dev.write_sector(0, &orig).await.unwrap();
        s.poll_once().await.unwrap();
        // One byte of padding in our slot sector changed.
        let mut slot = dev.read_sector(format::slot_sector(0)).await.unwrap();
        slot[300] = 1;
        dev.write_sector(format::slot_sector(0), &slot)
            .await
            .unwrap();
        let e = s.poll_once().await.unwrap_err();
        assert!(
            matches!(e, ServantError::SlotChanged { slot: 0, .. }),
            "{e}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn start_modes() {
        let dev = disk(512).await;
        send(&dev, "node-a", Command::Reset, "fencer").await;
        let mut clean = Servant::new(dev.clone(), "node-a", LOOP).start_mode(StartMode::Clean);
        let e = clean.start().await.unwrap_err();
        assert!(
            matches!(&e, ServantError::Pending { cmd: Command::Reset, from, .. } if from == "fencer"),
            "{e}"
        );
        assert!(e.to_string().contains("message node-a clear"), "{e}");
        assert!(matches!(
            clean.poll_once().await,
            Err(ServantError::NotStarted { .. })
        ));
        // Still there: the refusal wrote nothing.
        assert_eq!(
            Disk::new(dev.as_ref()).mailbox(0).await.unwrap().cmd,
            Command::Reset
        );
        // exit (a clean stop) does not block a clean start.
        send(&dev, "node-b", Command::Exit, "node-b").await;
        let mut b = Servant::new(dev.clone(), "node-b", LOOP).start_mode(StartMode::Clean);
        b.start().await.unwrap();
        // Always: starts and zeroes the mailbox, as sbd does.
        let mut always = Servant::new(dev.clone(), "node-a", LOOP);
        always.start().await.unwrap();
        assert_eq!(always.poll_once().await.unwrap(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn allocation() {
        let dev = disk(512).await;
        let mut s = Servant::new(dev.clone(), "node-d", LOOP).auto_allocate(false);
        assert!(matches!(s.start().await, Err(ServantError::NoSlot { .. })));
        let mut s = Servant::new(dev.clone(), "node-d", LOOP);
        let st = s.start().await.unwrap();
        assert_eq!((st.slot, st.allocated), (3, true));
        assert_eq!(s.slot(), Some(3));
    }

    #[tokio::test(start_paused = true)]
    async fn run_reports_and_stops() {
        let dev = disk(512).await;
        let (stop, rx) = watch::channel(false);
        let (mut events, task) = Servant::new(dev.clone(), "node-a", LOOP).run(rx);
        assert!(matches!(
            events.recv().await,
            Some(ServantEvent::Started(Started { slot: 0, .. }))
        ));
        assert!(matches!(
            events.recv().await,
            Some(ServantEvent::Live { .. })
        ));
        send(&dev, "node-a", Command::Reset, "fencer").await;
        let mut pills = 0;
        let mut lives = 0;
        while lives < 4 {
            match events.recv().await.unwrap() {
                ServantEvent::Message(m) => {
                    assert_eq!(m.cmd, Command::Reset);
                    pills += 1;
                }
                ServantEvent::Live { .. } => lives += 1,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(pills, 1, "a waiting pill is reported once");
        dev.broken.store(true, Ordering::Relaxed);
        loop {
            if let ServantEvent::Unhealthy { last_good, .. } = events.recv().await.unwrap() {
                assert!(last_good.is_some());
                break;
            }
        }
        stop.send(true).unwrap();
        loop {
            match events.recv().await {
                Some(ServantEvent::Stopped) | None => break,
                _ => {}
            }
        }
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn run_refuses_in_clean_mode() {
        let dev = disk(512).await;
        send(&dev, "node-a", Command::Off, "fencer").await;
        let (_stop, rx) = watch::channel(false);
        let (mut events, task) = Servant::new(dev.clone(), "node-a", LOOP)
            .start_mode(StartMode::Clean)
            .run(rx);
        assert!(matches!(
            events.recv().await,
            Some(ServantEvent::Refused { .. })
        ));
        task.await.unwrap();
    }
}
