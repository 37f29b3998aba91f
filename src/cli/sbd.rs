//! `ironfence sbd`: ClusterLabs sbd's disk verbs — `create`, `dump`, `list`,
//! `allocate`, `message`, `ping` — with sbd's option letters and output, on
//! [`crate::sbd`]. Needs no daemon.
//!
//! ```text
//! ironfence sbd -d DEV [-d DEV ...] [-1 WATCHDOG] [-2 ALLOCATE] [-3 LOOP]
//!               [-4 MSGWAIT] [-n LOCALNAME] [-I IO_TIMEOUT] [--sector-size N] COMMAND
//! ```
//!
//! Where it differs from sbd 1.5.2, on purpose:
//! * `-4` defaults to twice `-1` (sbd's default is a fixed 10 s, which is
//!   shorter than the watchdog from `-1 6` on).
//! * Every disk is checked before anything is written: `create` refuses a
//!   disk that is too small (sbd writes until it fails), `message` writes
//!   only if a majority of the disks has the node's slot, and reads every
//!   mailbox back (sbd ignores a failed read-back).
//! * Names longer than 63 bytes are refused (sbd silently truncates them).
//! * `ping` polls every 100 ms and fails when the node does not answer (sbd
//!   polls once a second and always exits 0).
//!
//! Exit codes: 0 success, 1 the operation failed, 64 wrong command line.

use crate::exit;
use crate::sbd::disk::Disk;
use crate::sbd::format::{self, Command as Cmd, Header, Mailbox, Timeouts, SLOTS};
use crate::sbd::{io, BlockDevice, SbdError};
use clap::{Args, Subcommand, ValueEnum};
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most disks sbd accepts.
const MAX_DEVICES: usize = 3;
/// How often `ping` looks at the mailboxes.
const PING_POLL: Duration = Duration::from_millis(100);

/// `ironfence sbd` options (sbd's letters).
#[derive(Args, Debug)]
#[command(
    next_help_heading = "sbd options",
    after_help = "Exit codes: 0 success, 1 the operation failed, 64 wrong command line."
)]
pub struct SbdArgs {
    /// Shared disk: a block device, or an image file with --sector-size (up to 3 times).
    #[arg(short = 'd', long = "device", value_name = "DEV", global = true)]
    devices: Vec<PathBuf>,
    /// Watchdog timeout in seconds, written by `create` (default 5).
    #[arg(
        short = '1',
        long = "watchdog-timeout",
        value_name = "N",
        global = true
    )]
    watchdog: Option<u32>,
    /// Slot allocation timeout in seconds, written by `create` (default 2).
    #[arg(
        short = '2',
        long = "allocate-timeout",
        value_name = "N",
        global = true
    )]
    allocate: Option<u32>,
    /// Daemon loop timeout in seconds, written by `create` (default 1).
    #[arg(short = '3', long = "loop-timeout", value_name = "N", global = true)]
    loop_: Option<u32>,
    /// Message wait timeout in seconds, written by `create` (default: 2 x watchdog).
    #[arg(short = '4', long = "msgwait-timeout", value_name = "N", global = true)]
    msgwait: Option<u32>,
    /// Local node name: the sender of messages, `LOCAL` as a target (default: the host name).
    #[arg(short = 'n', long = "local-name", value_name = "NAME", value_parser = node_name, global = true)]
    local_name: Option<String>,
    /// Timeout of every disk access, in seconds.
    #[arg(short = 'I', long = "io-timeout", value_name = "SECONDS", default_value = "3", value_parser = io_seconds, global = true)]
    io_timeout: Duration,
    /// Sector size of image files (512 or 4096); for block devices it must match BLKSSZGET.
    #[arg(long = "sector-size", value_name = "N", value_parser = sector_size, global = true)]
    sector_size: Option<u32>,
    #[command(subcommand)]
    command: SbdCommand,
}

#[derive(Subcommand, Debug)]
enum SbdCommand {
    /// Write a fresh header and 255 empty slots: OVERWRITES the disks.
    Create,
    /// Print each disk's header.
    Dump,
    /// Print the allocated slots and their messages: `SLOT<TAB>NAME<TAB>CMD<TAB>FROM`.
    List,
    /// Give NAME a slot on every disk (waits the allocate timeout to detect races).
    Allocate {
        #[arg(value_parser = node_name)]
        name: String,
    },
    /// Write a message to NAME's mailbox on every disk; succeed when a majority took it,
    /// after msgwait (except `exit`). NAME `LOCAL` is this node.
    Message {
        #[arg(value_parser = node_name)]
        name: String,
        #[arg(value_enum)]
        cmd: MessageCmd,
    },
    /// Write `test` to NAME and wait (up to msgwait) until its sbd daemon clears it.
    Ping {
        #[arg(value_parser = node_name)]
        name: String,
    },
}

/// What `message` can send (sbd's words).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum MessageCmd {
    Test,
    Reset,
    Off,
    Crashdump,
    Clear,
    Exit,
}

impl MessageCmd {
    fn to_cmd(self) -> Cmd {
        match self {
            MessageCmd::Test => Cmd::Test,
            MessageCmd::Reset => Cmd::Reset,
            MessageCmd::Off => Cmd::Off,
            MessageCmd::Crashdump => Cmd::Crashdump,
            MessageCmd::Clear => Cmd::Clear,
            MessageCmd::Exit => Cmd::Exit,
        }
    }
}

/// A node name as sbd stores it: 1 to 63 bytes, no NUL.
fn node_name(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("a node name cannot be empty".into());
    }
    if s.len() > format::NAME_MAX {
        return Err(format!(
            "node name is {} bytes long; sbd stores at most {} (it would silently cut it)",
            s.len(),
            format::NAME_MAX
        ));
    }
    if s.contains('\0') {
        return Err("a node name cannot contain NUL".into());
    }
    Ok(s.to_string())
}

fn io_seconds(s: &str) -> Result<Duration, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 3600.0 => Ok(Duration::from_secs_f64(v)),
        _ => Err(format!(
            "`{s}` is not a number of seconds above 0 and up to 3600"
        )),
    }
}

fn sector_size(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(v) if io::SECTOR_SIZES.contains(&v) => Ok(v),
        _ => Err(format!("`{s}` is not a sector size sbd knows: 512 or 4096")),
    }
}

/// The host name (`uname -n`), sbd's default for `-n`.
fn host_name() -> Result<String, String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map_err(|e| format!("cannot read the host name ({e}): give -n NAME"))?;
    node_name(name.trim()).map_err(|e| format!("the host name does not fit ({e}): give -n NAME"))
}

/// The command line, checked.
struct Plan<'a> {
    devices: &'a [PathBuf],
    sector_size: Option<u32>,
    io_timeout: Duration,
    local_name: String,
    timeouts: Timeouts,
    command: &'a SbdCommand,
}

impl<'a> Plan<'a> {
    fn new(a: &'a SbdArgs) -> Result<Plan<'a>, String> {
        if a.devices.is_empty() {
            return Err("no disk given: -d DEV (up to 3 times)".into());
        }
        if a.devices.len() > MAX_DEVICES {
            return Err(format!(
                "{} disks given with -d: sbd uses at most {MAX_DEVICES}",
                a.devices.len()
            ));
        }
        let mut seen = HashSet::new();
        for d in &a.devices {
            let key = std::fs::canonicalize(d).unwrap_or_else(|_| d.clone());
            if !seen.insert(key) {
                return Err(format!(
                    "disk {} is given twice: each disk counts once towards the majority",
                    d.display()
                ));
            }
        }
        let watchdog = a.watchdog.unwrap_or(Timeouts::default().watchdog);
        let timeouts = Timeouts {
            watchdog,
            allocate: a.allocate.unwrap_or(Timeouts::default().allocate),
            loop_: a.loop_.unwrap_or(Timeouts::default().loop_),
            msgwait: a.msgwait.unwrap_or(watchdog.saturating_mul(2)),
        };
        for (letter, what, v) in [
            ('1', "watchdog", timeouts.watchdog),
            ('3', "loop", timeouts.loop_),
            ('4', "msgwait", timeouts.msgwait),
        ] {
            if v == 0 {
                return Err(format!(
                    "-{letter}: the {what} timeout must be at least 1 second"
                ));
            }
        }
        let local_name = match &a.local_name {
            Some(n) => n.clone(),
            None => host_name()?,
        };
        Ok(Plan {
            devices: &a.devices,
            sector_size: a.sector_size,
            io_timeout: a.io_timeout,
            local_name,
            timeouts,
            command: &a.command,
        })
    }

    fn name(&self, i: usize) -> String {
        self.devices[i].display().to_string()
    }

    /// Open every disk at once; results in `-d` order.
    async fn open_all(&self) -> Vec<Result<Arc<dyn BlockDevice>, SbdError>> {
        let handles: Vec<_> = self
            .devices
            .iter()
            .map(|p| {
                let (p, ss, t) = (p.clone(), self.sector_size, self.io_timeout);
                tokio::spawn(async move { io::open(&p, ss, t).await })
            })
            .collect();
        let mut out = Vec::new();
        for (i, h) in handles.into_iter().enumerate() {
            out.push(h.await.unwrap_or_else(|e| {
                Err(SbdError::Io {
                    device: self.name(i),
                    detail: format!("open task failed: {e}"),
                })
            }));
        }
        out
    }

    async fn execute(&self) -> u8 {
        match self.command {
            SbdCommand::Create => self.create().await,
            SbdCommand::Dump => self.dump().await,
            SbdCommand::List => self.list().await,
            SbdCommand::Allocate { name } => self.allocate(name).await,
            SbdCommand::Message { name, cmd } => self.message(name, cmd.to_cmd()).await,
            SbdCommand::Ping { name } => self.ping(name).await,
        }
    }

    /// Every disk opened and big enough before the first byte is written.
    async fn create(&self) -> u8 {
        let mut devs = Vec::new();
        let mut failed = false;
        for r in self.open_all().await {
            match r {
                Ok(d) => {
                    let need = format::SECTORS_USED * d.sector_size() as u64;
                    if d.size() < need {
                        fail(&SbdError::TooSmall {
                            device: d.name().to_string(),
                            need,
                            have: d.size(),
                        });
                        failed = true;
                    }
                    devs.push(d);
                }
                Err(e) => {
                    fail(&e);
                    failed = true;
                }
            }
        }
        if failed {
            eprintln!("ironfence sbd: nothing was written");
            return exit::ERROR;
        }
        let t = self.timeouts;
        if t.msgwait <= t.watchdog {
            eprintln!(
                "ironfence sbd: warning: msgwait ({} s) is not longer than the watchdog timeout ({} s): \
                 a fence would be reported done before the victim's watchdog fired (use -4 {})",
                t.msgwait,
                t.watchdog,
                2 * t.watchdog
            );
        }
        for d in &devs {
            let name = d.name();
            println!("Initializing device {name}");
            let header = Header::new(d.sector_size(), t, new_uuid());
            println!(
                "Creating version {}.{} header on device {name} (uuid: {})",
                format::VERSION,
                header.minor_version,
                header.uuid_string()
            );
            println!("Initializing {SLOTS} slots on device {name}");
            if let Err(e) = Disk::new(d.as_ref()).create(t, header.uuid).await {
                fail(&e);
                eprintln!("Failed to init device {name}");
                return exit::ERROR;
            }
            println!("Device {name} is initialized.");
        }
        println!("Did you check sbd service down on all nodes before? If not do so now and restart afterwards.");
        exit::OK
    }

    async fn dump(&self) -> u8 {
        let mut code = exit::OK;
        for (i, r) in self.open_all().await.into_iter().enumerate() {
            let name = self.name(i);
            println!("==Dumping header on disk {name}");
            let h = match r {
                Ok(d) => Disk::new(d.as_ref()).header().await,
                Err(e) => Err(e),
            };
            match h {
                Ok(h) => {
                    println!(
                        "Header version     : {}.{}",
                        format::VERSION,
                        h.minor_version
                    );
                    if h.minor_version > 0 {
                        println!("UUID               : {}", h.uuid_string());
                    }
                    println!("Number of slots    : {SLOTS}");
                    println!("Sector size        : {}", h.sector_size);
                    println!("Timeout (watchdog) : {}", h.timeouts.watchdog);
                    println!("Timeout (allocate) : {}", h.timeouts.allocate);
                    println!("Timeout (loop)     : {}", h.timeouts.loop_);
                    println!("Timeout (msgwait)  : {}", h.timeouts.msgwait);
                    println!("==Header on disk {name} is dumped");
                }
                Err(e) => {
                    fail(&e);
                    eprintln!("==Header on disk {name} NOT dumped");
                    code = exit::ERROR;
                }
            }
        }
        code
    }

    async fn list(&self) -> u8 {
        let mut code = exit::OK;
        for (i, r) in self.open_all().await.into_iter().enumerate() {
            let listed = match r {
                Ok(d) => {
                    let disk = Disk::new(d.as_ref());
                    match disk.header().await {
                        Ok(_) => disk.list().await,
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            };
            match listed {
                Ok(entries) => {
                    for e in entries {
                        println!(
                            "{}\t{}\t{}\t{}",
                            e.slot,
                            e.name,
                            list_word(e.mailbox.cmd),
                            e.mailbox.from
                        );
                    }
                }
                Err(e) => {
                    fail(&e);
                    eprintln!("== Slots on disk {} NOT dumped", self.name(i));
                    code = exit::ERROR;
                }
            }
        }
        code
    }

    /// sbd's allocate: per disk, find the name or claim the first free slot,
    /// wait the allocate timeout, look again (someone may have claimed the
    /// same slot meanwhile).
    async fn allocate(&self, node: &str) -> u8 {
        for r in self.open_all().await {
            let d = match r {
                Ok(d) => d,
                Err(e) => {
                    fail(&e);
                    return exit::ERROR;
                }
            };
            println!("Trying to allocate slot for {node} on device {}.", d.name());
            if let Err(e) = allocate_one(d.as_ref(), node).await {
                fail(&e);
                return exit::ERROR;
            }
            println!("Slot for {node} has been allocated on {}.", d.name());
        }
        exit::OK
    }

    fn target<'n>(&'n self, name: &'n str) -> &'n str {
        if name == "LOCAL" {
            &self.local_name
        } else {
            name
        }
    }

    /// Phase 1 on every disk at once: header and the node's slot. Returns the
    /// disks that can take a message and how many were asked.
    async fn ready_disks(&self, node: &str) -> Vec<(Arc<dyn BlockDevice>, Header, usize)> {
        let mut tasks = Vec::new();
        for r in self.open_all().await {
            let node = node.to_string();
            tasks.push(tokio::spawn(async move {
                let d = r?;
                let disk = Disk::new(d.as_ref());
                let h = disk.header().await?;
                let slot = disk
                    .find(&node)
                    .await?
                    .ok_or_else(|| SbdError::NotAllocated {
                        device: d.name().to_string(),
                        name: node.clone(),
                    })?;
                Ok::<_, SbdError>((d.clone(), h, slot))
            }));
        }
        let mut ready = Vec::new();
        for t in tasks {
            match t.await {
                Ok(Ok(x)) => ready.push(x),
                Ok(Err(e)) => fail(&e),
                Err(e) => eprintln!("ironfence sbd: a disk task failed: {e}"),
            }
        }
        if let Some((first, h0, _)) = ready.first() {
            for (d, h, _) in &ready[1..] {
                if h.timeouts != h0.timeouts {
                    eprintln!(
                        "ironfence sbd: warning: the timeouts of {} differ from those of {} \
                         (an sbd daemon refuses such a set): using the longest msgwait",
                        d.name(),
                        first.name()
                    );
                }
            }
        }
        ready
    }

    fn majority(&self, n: usize) -> bool {
        n > self.devices.len() / 2
    }

    async fn message(&self, node: &str, cmd: Cmd) -> u8 {
        let node = self.target(node).to_string();
        let ready = self.ready_disks(&node).await;
        if !self.majority(ready.len()) {
            eprintln!(
                "ironfence sbd: message `{cmd}` to {node} not sent: only {} of {} disk(s) are usable, \
                 more than half are needed; nothing was written",
                ready.len(),
                self.devices.len()
            );
            return exit::ERROR;
        }
        let mut tasks = Vec::new();
        for (d, h, slot) in ready {
            let from = self.local_name.clone();
            tasks.push(tokio::spawn(async move {
                deliver(d.as_ref(), slot, cmd, &from).await?;
                Ok::<_, SbdError>(h.timeouts.msgwait)
            }));
        }
        let mut delivered = 0;
        let mut msgwait = 0;
        for t in tasks {
            match t.await {
                Ok(Ok(w)) => {
                    delivered += 1;
                    msgwait = msgwait.max(w);
                }
                Ok(Err(e)) => fail(&e),
                Err(e) => eprintln!("ironfence sbd: a disk task failed: {e}"),
            }
        }
        if !self.majority(delivered) {
            eprintln!(
                "ironfence sbd: message `{cmd}` to {node} was delivered to {delivered} of {} disk(s): \
                 more than half are needed",
                self.devices.len()
            );
            return exit::ERROR;
        }
        tracing::info!(node = %node, action = %cmd, delivered, msgwait, "message delivered");
        if cmd != Cmd::Exit {
            tracing::info!(node = %node, "waiting msgwait ({msgwait} s)");
            tokio::time::sleep(Duration::from_secs(msgwait.into())).await;
        }
        exit::OK
    }

    async fn ping(&self, node: &str) -> u8 {
        let node = self.target(node).to_string();
        let started = Instant::now();
        let ready = self.ready_disks(&node).await;
        if !self.majority(ready.len()) {
            eprintln!(
                "ironfence sbd: ping of {node} not sent: only {} of {} disk(s) are usable; nothing was written",
                ready.len(),
                self.devices.len()
            );
            return exit::ERROR;
        }
        let msgwait = ready
            .iter()
            .map(|(_, h, _)| h.timeouts.msgwait)
            .max()
            .unwrap_or(0);
        // Write `test` everywhere (no read-back: the daemon may clear it at once).
        let mut pending = Vec::new();
        for (d, _, slot) in ready {
            let m = Mailbox {
                cmd: Cmd::Test,
                from: self.local_name.clone(),
            };
            let bytes = match m.encode(d.sector_size() as usize) {
                Ok(b) => b,
                Err(e) => {
                    fail(&SbdError::Name(e));
                    return exit::ERROR;
                }
            };
            match d.write_sector(format::mailbox_sector(slot), &bytes).await {
                Ok(()) => pending.push((d, slot)),
                Err(e) => fail(&e),
            }
        }
        let deadline = started + Duration::from_secs(msgwait.into());
        let mut answered = Vec::new();
        let mut last_seen = Vec::new();
        loop {
            let mut still = Vec::new();
            last_seen.clear();
            for (d, slot) in pending {
                match Disk::new(d.as_ref()).mailbox(slot).await {
                    Ok(m) if m.cmd == Cmd::Clear => answered.push(d.name().to_string()),
                    Ok(m) if m.cmd == Cmd::Test => {
                        last_seen.push(format!("{} still holds `test` from {}", d.name(), m.from));
                        still.push((d, slot));
                    }
                    Ok(m) => eprintln!(
                        "ironfence sbd: ping of {node} on {}: the mailbox now holds `{}` from {} \
                         (another sender overwrote the ping)",
                        d.name(),
                        list_word(m.cmd),
                        m.from
                    ),
                    Err(e) => fail(&e),
                }
            }
            pending = still;
            if self.majority(answered.len()) {
                println!(
                    "{node} answered the ping on {} of {} disk(s) after {:.2} s",
                    answered.len(),
                    self.devices.len(),
                    started.elapsed().as_secs_f64()
                );
                return exit::OK;
            }
            if !self.majority(answered.len() + pending.len()) || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(PING_POLL).await;
        }
        eprintln!(
            "ironfence sbd: {node} did not answer the ping within msgwait ({msgwait} s) on more than \
             half of the disks ({} of {} answered){}: is its sbd daemon (watch) running and \
             monitoring these disks?",
            answered.len(),
            self.devices.len(),
            if last_seen.is_empty() {
                String::new()
            } else {
                format!("; {}", last_seen.join("; "))
            }
        );
        exit::ERROR
    }
}

/// Write `cmd` and read it back. A `test` that reads back as cleared was
/// answered by the node's daemon in between: delivered too.
async fn deliver(d: &dyn BlockDevice, slot: usize, cmd: Cmd, from: &str) -> Result<(), SbdError> {
    let disk = Disk::new(d);
    match disk.write_mailbox(slot, cmd, from).await {
        Err(SbdError::Verify { .. }) if cmd == Cmd::Test => {
            let m = disk.mailbox(slot).await?;
            if m.cmd == Cmd::Clear {
                Ok(())
            } else {
                Err(SbdError::Verify {
                    device: d.name().to_string(),
                    name: format!("slot {slot}"),
                })
            }
        }
        r => r,
    }
}

async fn allocate_one(d: &dyn BlockDevice, node: &str) -> Result<usize, SbdError> {
    let disk = Disk::new(d);
    let header = disk.header().await?;
    // Each round claims a free slot; losing a race costs one slot, and there
    // are SLOTS of them.
    for _ in 0..=SLOTS {
        if let Some(i) = disk.find(node).await? {
            return Ok(i);
        }
        let i = disk.allocate(node).await?;
        println!("slot {i} is unused - trying to own");
        tokio::time::sleep(Duration::from_secs(header.timeouts.allocate.into())).await;
    }
    Err(SbdError::Full {
        device: d.name().to_string(),
    })
}

/// sbd's word for a command in `list` (`undefined` for values it does not know).
fn list_word(cmd: Cmd) -> String {
    match cmd {
        Cmd::Unknown(_) => "undefined".into(),
        c => c.name(),
    }
}

fn fail(e: &SbdError) {
    eprintln!("ironfence sbd: {e}");
}

/// A random (version 4) UUID for a new header.
fn new_uuid() -> [u8; 16] {
    let mut u: [u8; 16] = rand::random();
    u[6] = (u[6] & 0x0f) | 0x40;
    u[8] = (u[8] & 0x3f) | 0x80;
    u
}

/// Run `ironfence sbd ...`; returns the exit code.
pub async fn run(args: &SbdArgs) -> u8 {
    let code = match Plan::new(args) {
        Ok(plan) => plan.execute().await,
        Err(usage) => {
            eprintln!("ironfence sbd: {usage}");
            exit::USAGE
        }
    };
    if io::abandoned_accesses() > 0 {
        // A disk access is still blocked in the kernel. tokio's runtime waits
        // for its blocking threads when dropped, so returning would hang the
        // command after it has already reported the timeout: exit now.
        use std::io::Write;
        let _ = std::io::stdout().flush();
        std::process::exit(code.into());
    }
    code
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct T {
        #[command(flatten)]
        a: SbdArgs,
    }

    fn parse(args: &[&str]) -> Result<SbdArgs, clap::Error> {
        T::try_parse_from(std::iter::once("sbd").chain(args.iter().copied())).map(|t| t.a)
    }

    #[test]
    fn sbd_letters_and_defaults() {
        let a = parse(&[
            "-d", "/dev/a", "-d", "/dev/b", "-1", "7", "-n", "me", "create",
        ])
        .unwrap();
        let p = Plan::new(&a).unwrap();
        assert_eq!(p.devices.len(), 2);
        assert_eq!(
            p.timeouts,
            Timeouts {
                watchdog: 7,
                allocate: 2,
                loop_: 1,
                msgwait: 14
            }
        );
        assert_eq!(p.io_timeout, Duration::from_secs(3));
        let a = parse(&["create", "-d", "/dev/a", "-4", "3", "-I", "0.5"]).unwrap();
        let p = Plan::new(&a).unwrap();
        assert_eq!(p.timeouts.msgwait, 3);
        assert_eq!(p.io_timeout, Duration::from_millis(500));
        let a = parse(&["-d", "/dev/a", "-n", "me", "message", "LOCAL", "reset"]).unwrap();
        let p = Plan::new(&a).unwrap();
        assert_eq!(p.target("LOCAL"), "me");
    }

    #[test]
    fn usage_errors() {
        let long = "x".repeat(64);
        for bad in [
            vec!["-d", "/dev/a", "allocate", long.as_str()],
            vec!["-d", "/dev/a", "-n", long.as_str(), "list"],
            vec!["-d", "/dev/a", "message", "n", "explode"],
            vec!["-d", "/dev/a", "frobnicate"],
            vec!["-d", "/dev/a", "-Q", "list"],
            vec!["-d", "/dev/a", "--sector-size", "1024", "list"],
            vec!["-d", "/dev/a", "-I", "0", "list"],
        ] {
            assert!(parse(&bad).is_err(), "{bad:?}");
        }
        let e = parse(&["-d", "/dev/a", "allocate", &long])
            .unwrap_err()
            .to_string();
        assert!(e.contains("64 bytes") && e.contains("63"), "{e}");
        for bad in [
            vec!["list"],
            vec!["-d", "/a", "-d", "/b", "-d", "/c", "-d", "/d", "list"],
            vec!["-d", "/a", "-d", "/a", "list"],
            vec!["-d", "/a", "-1", "0", "create"],
        ] {
            let a = parse(&bad).unwrap();
            assert!(Plan::new(&a).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn uuids_are_version_4() {
        let u = new_uuid();
        assert_eq!(u[6] >> 4, 4);
        assert_eq!(u[8] >> 6, 2);
        assert_ne!(new_uuid(), u);
    }
}
