//! A simulated IPMI BMC: an RMCP+ (IPMI v2.0 over LAN) server on tokio UDP,
//! one simulated machine per listener, so that real clients — `ipmitool -I
//! lanplus`, `fence_ipmilan`, our own [`crate::ipmi::client`] — can be tested
//! against cipher suites (17 above all) that OpenIPMI's `ipmi_sim` lacks,
//! and against BMCs that misbehave.
//!
//! ```text
//!  sessionless (v1.5 or RMCP+ wrapper): Get Channel Auth Caps, Get Channel
//!                                       Cipher Suites, Get System GUID
//!  Open Session ─> [await RAKP 1] ─RAKP 1/2─> [await RAKP 3] ─RAKP 3/4─> [active]
//!   │ suite not offered:   │ unknown user, role too     │ bad RAKP 3 code:
//!   │ status 0x04, 0x05,   │ high, fault refuse:        │ RAKP 4 status 0x0f,
//!   │ 0x10 or 0x11         │ RAKP 2 status, removed     │ removed
//!  [active]: integrity checked, AES-CBC-128 both ways, commands at the
//!            session's privilege; Close Session, or idle for
//!            `idle_timeout` (handshakes: `handshake_timeout`) frees the slot
//! ```
//!
//! Faults ([`IpmiFault`]): drop every Nth datagram, never answer, answer
//! late, lie (accept Chassis Control and do nothing), refuse every login.
//! Everything it does is counted ([`IpmiSimStats`]) for tests.
//!
//! The power state is a [`SimBmc`] plug, so it can live in the same JSON
//! state file as the `fence_ironfence_sim` agent's machines.
//!
//! One task owns the socket and the session table; the only other tasks are
//! late replies (fault `slow`) and the second half of a power cycle, and all
//! of them stop on the shutdown signal. It never panics on any input: every
//! datagram goes through the decoders of [`crate::ipmi::packet`].

use super::{SimBmc, SimPower};
use crate::config::SimFault;
use crate::ipmi::crypto::{self, AuthAlg, CipherSuite, ConfAlg, IntegrityAlg, RakpInputs};
use crate::ipmi::packet::{self, payload, Datagram, IpmiRequest, IpmiResponse};
use crate::ipmi::Privilege;
use crate::secret::Secret;
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Cipher suites offered unless told otherwise.
pub const DEFAULT_SUITES: [u8; 2] = [3, 17];
/// Cipher suites the simulator can offer (0 only when asked for by name).
pub const IMPLEMENTED_SUITES: [u8; 7] = [0, 1, 2, 3, 15, 16, 17];
/// Session table size of OpenIPMI's `ipmi_sim` (and of many BMCs).
pub const DEFAULT_MAX_SESSIONS: usize = 63;
/// Idle time after which an active session is dropped.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Time a half-done handshake (Open Session .. RAKP 3) may hold a slot.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Off time of a power cycle (the spec asks for at least one second).
pub const DEFAULT_CYCLE_OFF: Duration = Duration::from_secs(1);
/// IANA enterprise number reserved for documentation (RFC 5612): the
/// manufacturer of the simulated BMC, so no client applies a vendor quirk.
pub const MANUFACTURER_ID: u32 = 32473;
/// The LAN channel number the simulator reports.
const CHANNEL: u8 = 1;
/// How far behind the highest session sequence number a packet may be.
const SEQ_WINDOW: i32 = 32;
/// Largest datagram read; anything longer is truncated and then refused.
const MAX_DATAGRAM: usize = 4096;
/// How often idle sessions are swept.
const SWEEP_EVERY: Duration = Duration::from_millis(500);

/// The simulator could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum IpmiSimError {
    /// A setting is out of range.
    #[error("IPMI simulator: {0}")]
    Config(String),
    /// The UDP socket could not be bound.
    #[error("IPMI simulator cannot listen on {addr}: {detail} (pick a free port)")]
    Bind { addr: SocketAddr, detail: String },
}

fn config_err(msg: impl Into<String>) -> IpmiSimError {
    IpmiSimError::Config(msg.into())
}

/// A user of the simulated BMC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimUser {
    pub name: String,
    pub password: Secret,
    /// Highest privilege this user may reach.
    pub max_privilege: Privilege,
}

impl SimUser {
    pub fn new(name: &str, password: &str, max_privilege: Privilege) -> SimUser {
        SimUser {
            name: name.to_string(),
            password: Secret::new(password),
            max_privilege,
        }
    }

    /// `NAME:PASSWORD[:administrator|operator|user]`. The password may
    /// contain `:`; a last field that names a privilege is taken as one.
    pub fn parse(spec: &str) -> Result<SimUser, IpmiSimError> {
        let (name, rest) = spec.split_once(':').ok_or_else(|| {
            config_err(format!(
                "user `{}` is not NAME:PASSWORD[:PRIVILEGE]",
                redact_user(spec)
            ))
        })?;
        let (password, privilege) = match rest.rsplit_once(':') {
            Some((p, level)) => match Privilege::parse(level) {
                Some(privilege) => (p, privilege),
                None => (rest, Privilege::Administrator),
            },
            None => (rest, Privilege::Administrator),
        };
        let user = SimUser::new(name, password, privilege);
        user.check()?;
        Ok(user)
    }

    fn check(&self) -> Result<(), IpmiSimError> {
        if self.name.is_empty() || self.name.len() > 16 {
            return Err(config_err(format!(
                "user name `{}` must be 1 to 16 bytes",
                self.name
            )));
        }
        if self.password.expose().len() > 20 {
            return Err(config_err(format!(
                "the password of user `{}` is longer than the 20 bytes IPMI v2.0 allows",
                self.name
            )));
        }
        Ok(())
    }
}

/// The user name of a `NAME:PASSWORD` spec, never the password.
fn redact_user(spec: &str) -> String {
    match spec.split_once(':') {
        Some((name, _)) => format!("{name}:<redacted>"),
        None => spec.to_string(),
    }
}

/// How the simulated BMC misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpmiFault {
    /// Behaves.
    None,
    /// Ignores every Nth datagram it receives (N >= 1).
    Drop(u32),
    /// Never answers anything.
    Silent,
    /// Answers everything this much later.
    Slow(Duration),
    /// Accepts Chassis Control and does not carry it out.
    Lie,
    /// Refuses every login (RAKP 2 status "unauthorized name").
    Refuse,
}

impl IpmiFault {
    /// `none`, `drop:N`, `silent`, `slow:MS`, `lie`, `refuse` (also the
    /// [`SimFault`] spellings `lies`, `refuses`).
    pub fn parse(s: &str) -> Result<IpmiFault, IpmiSimError> {
        let bad = || {
            config_err(format!(
                "fault `{s}` is not one of none, drop:N, silent, slow:MS, lie, refuse"
            ))
        };
        let (kind, arg) = match s.split_once(':') {
            Some((k, a)) => (k, Some(a)),
            None => (s, None),
        };
        match (kind, arg) {
            ("none", None) => Ok(IpmiFault::None),
            ("silent", None) => Ok(IpmiFault::Silent),
            ("lie" | "lies", None) => Ok(IpmiFault::Lie),
            ("refuse" | "refuses", None) => Ok(IpmiFault::Refuse),
            ("drop", Some(n)) => match n.parse::<u32>() {
                Ok(n) if n >= 1 => Ok(IpmiFault::Drop(n)),
                _ => Err(bad()),
            },
            ("slow", Some(ms)) => match ms.parse::<u64>() {
                Ok(ms) if Duration::from_millis(ms) <= crate::config::MAX_DURATION => {
                    Ok(IpmiFault::Slow(Duration::from_millis(ms)))
                }
                _ => Err(bad()),
            },
            _ => Err(bad()),
        }
    }
}

impl From<SimFault> for IpmiFault {
    /// The fault modes of the other simulators (`slow` waits one second).
    fn from(f: SimFault) -> IpmiFault {
        match f {
            SimFault::None => IpmiFault::None,
            SimFault::Slow => IpmiFault::Slow(Duration::from_secs(1)),
            SimFault::Silent => IpmiFault::Silent,
            SimFault::Refuses => IpmiFault::Refuse,
            SimFault::Lies => IpmiFault::Lie,
        }
    }
}

impl fmt::Display for IpmiFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpmiFault::None => f.write_str("none"),
            IpmiFault::Drop(n) => write!(f, "drop:{n}"),
            IpmiFault::Silent => f.write_str("silent"),
            IpmiFault::Slow(d) => write!(f, "slow:{}", d.as_millis()),
            IpmiFault::Lie => f.write_str("lie"),
            IpmiFault::Refuse => f.write_str("refuse"),
        }
    }
}

/// The BMC key (Kg); printed as `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct BmcKey(Vec<u8>);

impl BmcKey {
    /// From hex digits (`--kg 6b6579`), at most 20 bytes.
    pub fn from_hex(hex: &str) -> Result<BmcKey, IpmiSimError> {
        let hex = hex.trim();
        let hex = hex
            .strip_prefix("0x")
            .or_else(|| hex.strip_prefix("0X"))
            .unwrap_or(hex);
        if hex.is_empty() || hex.len() % 2 != 0 || hex.len() > 40 {
            return Err(config_err(
                "Kg must be 1 to 20 bytes written as an even number of hex digits",
            ));
        }
        let mut bytes = Vec::with_capacity(hex.len() / 2);
        for pair in hex.as_bytes().chunks(2) {
            let text = std::str::from_utf8(pair).map_err(|_| config_err("Kg is not hex"))?;
            bytes.push(u8::from_str_radix(text, 16).map_err(|_| config_err("Kg is not hex"))?);
        }
        Ok(BmcKey(bytes))
    }

    /// Raw bytes (at most 20).
    pub fn from_bytes(bytes: &[u8]) -> Result<BmcKey, IpmiSimError> {
        if bytes.is_empty() || bytes.len() > 20 {
            return Err(config_err("Kg must be 1 to 20 bytes"));
        }
        Ok(BmcKey(bytes.to_vec()))
    }
}

impl fmt::Debug for BmcKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Everything about one simulated BMC.
#[derive(Debug, Clone)]
pub struct IpmiSimConfig {
    pub listen: SocketAddr,
    pub users: Vec<SimUser>,
    /// BMC key; `None` = session keys come from the user's password.
    pub kg: Option<BmcKey>,
    /// Cipher suites offered and accepted.
    pub suites: Vec<u8>,
    pub guid: [u8; 16],
    /// Name of the machine: its key in the state file.
    pub machine: String,
    /// Power state when the state file does not know the machine.
    pub initially_on: bool,
    /// JSON power state shared with the other simulators (`None` = memory).
    pub state_file: Option<PathBuf>,
    pub fault: IpmiFault,
    pub max_sessions: usize,
    pub idle_timeout: Duration,
    pub handshake_timeout: Duration,
    /// How long a power cycle keeps the machine off.
    pub cycle_off: Duration,
}

impl IpmiSimConfig {
    /// A well-behaved BMC on `listen` with `users`, suites 3 and 17, a
    /// random GUID, powered on, state in memory.
    pub fn new(listen: SocketAddr, users: Vec<SimUser>) -> IpmiSimConfig {
        IpmiSimConfig {
            listen,
            users,
            kg: None,
            suites: DEFAULT_SUITES.to_vec(),
            guid: rand::random(),
            machine: "node".to_string(),
            initially_on: true,
            state_file: None,
            fault: IpmiFault::None,
            max_sessions: DEFAULT_MAX_SESSIONS,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            cycle_off: DEFAULT_CYCLE_OFF,
        }
    }

    /// Checks every setting; the server runs only on a checked config.
    pub fn validate(&self) -> Result<(), IpmiSimError> {
        if self.users.is_empty() {
            return Err(config_err("at least one user is needed"));
        }
        for (i, u) in self.users.iter().enumerate() {
            u.check()?;
            if self.users[..i].iter().any(|o| o.name == u.name) {
                return Err(config_err(format!("user `{}` is given twice", u.name)));
            }
        }
        if self.suites.is_empty() {
            return Err(config_err("at least one cipher suite is needed"));
        }
        for id in &self.suites {
            if !IMPLEMENTED_SUITES.contains(id) {
                return Err(config_err(format!(
                    "cipher suite {id} is not implemented (use {})",
                    join(&IMPLEMENTED_SUITES)
                )));
            }
        }
        if self.machine.is_empty() {
            return Err(config_err("the machine name must not be empty"));
        }
        if self.max_sessions == 0 || self.max_sessions > 1024 {
            return Err(config_err("the session limit must be 1 to 1024"));
        }
        for (what, d) in [
            ("idle timeout", self.idle_timeout),
            ("handshake timeout", self.handshake_timeout),
            ("power cycle off time", self.cycle_off),
        ] {
            if d > crate::config::MAX_DURATION {
                return Err(config_err(format!("the {what} is longer than a week")));
            }
        }
        if let IpmiFault::Slow(d) = self.fault {
            if d > crate::config::MAX_DURATION {
                return Err(config_err("the slow fault delay is longer than a week"));
            }
        }
        if self.fault == IpmiFault::Drop(0) {
            return Err(config_err("drop:N needs N >= 1"));
        }
        Ok(())
    }

    /// The offered suites, sorted, without duplicates.
    fn suite_list(&self) -> Vec<CipherSuite> {
        let mut ids = self.suites.clone();
        ids.sort_unstable();
        ids.dedup();
        ids.into_iter().filter_map(CipherSuite::by_id).collect()
    }
}

fn join(ids: &[u8]) -> String {
    ids.iter().map(u8::to_string).collect::<Vec<_>>().join(",")
}

/// Counts of what the simulator did (shared with its tasks).
#[derive(Debug, Default)]
struct Counters {
    datagrams: AtomicU64,
    dropped: AtomicU64,
    replies: AtomicU64,
    ignored: AtomicU64,
    bad_integrity: AtomicU64,
    open_refused: AtomicU64,
    logins_refused: AtomicU64,
    sessions_opened: AtomicU64,
    sessions_closed: AtomicU64,
    sessions_expired: AtomicU64,
    active_sessions: AtomicU64,
    commands: AtomicU64,
    chassis_controls: AtomicU64,
    power_changes: AtomicU64,
    lies: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// A snapshot of what the simulator did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IpmiSimStats {
    /// Datagrams received.
    pub datagrams: u64,
    /// Datagrams ignored on purpose (faults `drop` and `silent`).
    pub dropped: u64,
    /// Datagrams sent.
    pub replies: u64,
    /// Datagrams ignored because they were malformed or out of place.
    pub ignored: u64,
    /// Session packets with a bad auth code, encryption or sequence number.
    pub bad_integrity: u64,
    /// Open Session requests answered with an error status.
    pub open_refused: u64,
    /// Logins refused at RAKP 2 / RAKP 4 (or abandoned by the client at RAKP 3).
    pub logins_refused: u64,
    /// Sessions that reached RAKP 4.
    pub sessions_opened: u64,
    /// Sessions ended by Close Session.
    pub sessions_closed: u64,
    /// Sessions (and handshakes) dropped for being idle.
    pub sessions_expired: u64,
    /// Entries in the session table now (handshakes included).
    pub active_sessions: u64,
    /// IPMI commands answered inside sessions.
    pub commands: u64,
    /// Chassis Control commands accepted.
    pub chassis_controls: u64,
    /// Power state transitions carried out (a cycle is two).
    pub power_changes: u64,
    /// Chassis Control commands accepted and not carried out (fault `lie`).
    pub lies: u64,
}

impl Counters {
    fn snapshot(&self) -> IpmiSimStats {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        IpmiSimStats {
            datagrams: g(&self.datagrams),
            dropped: g(&self.dropped),
            replies: g(&self.replies),
            ignored: g(&self.ignored),
            bad_integrity: g(&self.bad_integrity),
            open_refused: g(&self.open_refused),
            logins_refused: g(&self.logins_refused),
            sessions_opened: g(&self.sessions_opened),
            sessions_closed: g(&self.sessions_closed),
            sessions_expired: g(&self.sessions_expired),
            active_sessions: g(&self.active_sessions),
            commands: g(&self.commands),
            chassis_controls: g(&self.chassis_controls),
            power_changes: g(&self.power_changes),
            lies: g(&self.lies),
        }
    }
}

/// A running simulated BMC. Stops on [`IpmiSimServer::shutdown`] or when dropped.
pub struct IpmiSimServer {
    addr: SocketAddr,
    counters: Arc<Counters>,
    fault: Arc<Mutex<IpmiFault>>,
    power: Arc<SimBmc>,
    machine: String,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl IpmiSimServer {
    /// Validate `cfg`, bind its UDP socket and start answering.
    pub async fn start(cfg: IpmiSimConfig) -> Result<IpmiSimServer, IpmiSimError> {
        cfg.validate()?;
        let sock = UdpSocket::bind(cfg.listen)
            .await
            .map_err(|e| IpmiSimError::Bind {
                addr: cfg.listen,
                detail: e.to_string(),
            })?;
        let addr = sock.local_addr().map_err(|e| IpmiSimError::Bind {
            addr: cfg.listen,
            detail: e.to_string(),
        })?;
        let power = Arc::new(SimBmc::new(
            &format!("ipmi-sim {addr}"),
            SimFault::None,
            Duration::ZERO,
            cfg.initially_on,
            vec![cfg.machine.clone()],
            cfg.state_file.clone(),
        ));
        // A state file that cannot be used is a set-up error, not a runtime one.
        power
            .peek(&cfg.machine)
            .map_err(|e| config_err(e.to_string()))?;
        let counters = Arc::new(Counters::default());
        let fault = Arc::new(Mutex::new(cfg.fault));
        let (shutdown, shutdown_rx) = watch::channel(false);
        let machine = cfg.machine.clone();
        let engine = Engine::new(cfg, power.clone(), counters.clone(), shutdown_rx.clone());
        let task = tokio::spawn(serve(
            Arc::new(sock),
            engine,
            fault.clone(),
            counters.clone(),
            shutdown_rx,
        ));
        tracing::info!(%addr, "IPMI simulator listening");
        Ok(IpmiSimServer {
            addr,
            counters,
            fault,
            power,
            machine,
            shutdown,
            task: Some(task),
        })
    }

    /// The address it listens on (the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// What it did so far.
    pub fn stats(&self) -> IpmiSimStats {
        self.counters.snapshot()
    }

    /// Change the fault mode while running.
    pub fn set_fault(&self, fault: IpmiFault) {
        if let Ok(mut f) = self.fault.lock() {
            *f = fault;
        }
    }

    /// Whether the simulated machine is powered on (not counted as a command).
    pub fn power_on(&self) -> Result<bool, super::SimError> {
        Ok(self.power.peek(&self.machine)? == SimPower::On)
    }

    /// Stop answering and wait for the server task to end.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for IpmiSimServer {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// Resolves when shutdown is asked for (or nobody can ask any more).
async fn stopped(rx: &mut watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// The server loop: owns the socket and the engine (the session table).
async fn serve(
    sock: Arc<UdpSocket>,
    mut engine: Engine,
    fault: Arc<Mutex<IpmiFault>>,
    counters: Arc<Counters>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut sweep = tokio::time::interval(SWEEP_EVERY);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut received: u64 = 0;
    loop {
        tokio::select! {
            _ = stopped(&mut shutdown) => break,
            _ = sweep.tick() => engine.expire(Instant::now()),
            r = sock.recv_from(&mut buf) => {
                let (len, peer) = match r {
                    Ok(v) => v,
                    Err(e) => {
                        tracing::debug!(cause = %e, "IPMI simulator: receive error");
                        continue;
                    }
                };
                received += 1;
                bump(&counters.datagrams);
                let fault = fault.lock().map(|f| *f).unwrap_or(IpmiFault::None);
                match fault {
                    IpmiFault::Silent => {
                        bump(&counters.dropped);
                        continue;
                    }
                    IpmiFault::Drop(n) if n > 0 && received % u64::from(n) == 0 => {
                        bump(&counters.dropped);
                        continue;
                    }
                    _ => {}
                }
                let now = Instant::now();
                let Some(reply) = engine.handle(&buf[..len], peer, now, fault).await else {
                    continue;
                };
                if let IpmiFault::Slow(delay) = fault {
                    let sock = sock.clone();
                    let counters = counters.clone();
                    let mut stop = shutdown.clone();
                    tokio::spawn(async move {
                        tokio::select! {
                            _ = tokio::time::sleep(delay) => {
                                if sock.send_to(&reply, peer).await.is_ok() {
                                    bump(&counters.replies);
                                }
                            }
                            _ = stopped(&mut stop) => {}
                        }
                    });
                } else if let Err(e) = sock.send_to(&reply, peer).await {
                    tracing::debug!(%peer, cause = %e, "IPMI simulator: send failed");
                } else {
                    bump(&counters.replies);
                }
            }
        }
    }
    tracing::info!("IPMI simulator stopped");
}

/// Where a session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    AwaitRakp1,
    AwaitRakp3,
    Active,
}

/// The last command of a session and its answer, for retransmissions.
#[derive(Debug, Clone)]
struct Answered {
    request: IpmiRequest,
    response: IpmiResponse,
}

/// One entry of the session table.
#[derive(Debug)]
struct SimSession {
    bmc_sid: u32,
    console_sid: u32,
    peer: SocketAddr,
    open_tag: u8,
    suite: CipherSuite,
    /// Maximum privilege asked for in Open Session (0 = any).
    open_max_priv: u8,
    bmc_rand: [u8; 16],
    stage: Stage,
    last_seen: Instant,
    // From RAKP 1:
    console_rand: [u8; 16],
    role: u8,
    username: Vec<u8>,
    user: usize,
    /// Highest level Set Session Privilege may grant.
    max_priv: u8,
    /// Current level (sessions start at User).
    privilege: u8,
    keys: Option<crypto::SessionKeys>,
    highest_seq: Option<u32>,
    out_seq: u32,
    last: Option<Answered>,
}

impl SimSession {
    fn inputs<'a>(&'a self, guid: [u8; 16]) -> RakpInputs<'a> {
        RakpInputs {
            console_sid: self.console_sid,
            bmc_sid: self.bmc_sid,
            console_rand: self.console_rand,
            bmc_rand: self.bmc_rand,
            bmc_guid: guid,
            role: self.role,
            username: &self.username,
        }
    }

    /// Loose sequence check: anything ahead, or at most [`SEQ_WINDOW`] behind.
    fn accept_seq(&mut self, seq: u32) -> bool {
        match self.highest_seq {
            None => {
                self.highest_seq = Some(seq);
                true
            }
            Some(high) => {
                let diff = seq.wrapping_sub(high) as i32;
                if diff > 0 {
                    self.highest_seq = Some(seq);
                    true
                } else {
                    diff > -SEQ_WINDOW
                }
            }
        }
    }

    /// An IPMI message of this session: encrypted and signed per suite.
    fn wrap(&mut self, msg: &[u8]) -> Vec<u8> {
        let seq = self.out_seq;
        self.out_seq = self.out_seq.checked_add(1).unwrap_or(1);
        wrap_session_message(self.suite, self.keys.as_ref(), self.console_sid, seq, msg)
    }
}

/// Wrap `msg` for a session with `suite` and `keys` (pure).
fn wrap_session_message(
    suite: CipherSuite,
    keys: Option<&crypto::SessionKeys>,
    console_sid: u32,
    seq: u32,
    msg: &[u8],
) -> Vec<u8> {
    let (k1, k2): (&[u8], &[u8]) = match keys {
        Some(k) => (&k.k1, &k.k2),
        None => (&[], &[]),
    };
    let encrypted = suite.conf == ConfAlg::AesCbc128;
    let body = if encrypted {
        crypto::aes_encrypt(k2, rand::random(), msg).unwrap_or_default()
    } else {
        msg.to_vec()
    };
    let integrity = suite.integrity;
    let sign = |b: &[u8]| crypto::integrity_code(integrity, k1, b);
    let signer: Option<packet::Signer<'_>> = if integrity == IntegrityAlg::None {
        None
    } else {
        Some(&sign)
    };
    packet::encode_v20(payload::IPMI, encrypted, console_sid, seq, &body, signer)
}

/// The session id of an RMCP+ datagram, read before the session (and so
/// the auth code length) is known. `None` for anything else.
fn peek_v20_session_id(d: &[u8]) -> Option<u32> {
    if d.len() < 10 || d[4] & 0x0f != packet::AUTH_TYPE_RMCP_PLUS {
        return None;
    }
    Some(u32::from_le_bytes([d[6], d[7], d[8], d[9]]))
}

/// Which wrapper a sessionless request came in (the answer uses the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wrapper {
    V15,
    V20,
}

/// Completion codes used here.
mod cc {
    pub const OK: u8 = 0x00;
    pub const INVALID_COMMAND: u8 = 0xc1;
    pub const LENGTH_INVALID: u8 = 0xc7;
    pub const INVALID_DATA: u8 = 0xcc;
    pub const INSUFFICIENT_PRIVILEGE: u8 = 0xd4;
    pub const NOT_IN_PRESENT_STATE: u8 = 0xd5;
    pub const UNSPECIFIED: u8 = 0xff;
    /// Set Session Privilege Level: level not available for this user.
    pub const LEVEL_NOT_AVAILABLE: u8 = 0x80;
    /// Set Session Privilege Level: level exceeds the user/channel limit.
    pub const LEVEL_EXCEEDS_LIMIT: u8 = 0x81;
    /// Close Session: invalid session id.
    pub const INVALID_SESSION_ID: u8 = 0x87;
}

/// RMCP+ status codes used here (IPMI v2.0 table 13-15).
mod status {
    pub const INSUFFICIENT_RESOURCES: u8 = 0x01;
    pub const INVALID_SESSION_ID: u8 = 0x02;
    pub const INVALID_AUTH_ALG: u8 = 0x04;
    pub const INVALID_INTEGRITY_ALG: u8 = 0x05;
    pub const INVALID_ROLE: u8 = 0x09;
    pub const UNAUTHORIZED_ROLE: u8 = 0x0a;
    pub const INVALID_NAME_LENGTH: u8 = 0x0c;
    pub const UNAUTHORIZED_NAME: u8 = 0x0d;
    pub const INVALID_INTEGRITY_CHECK: u8 = 0x0f;
    pub const INVALID_CONF_ALG: u8 = 0x10;
    pub const NO_CIPHER_SUITE_MATCH: u8 = 0x11;
    pub const ILLEGAL_PARAMETER: u8 = 0x12;
}

/// What a command does to its own session besides answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    Nothing,
    CloseSelf,
}

/// The protocol state machine: session table, users, power. Driven by
/// [`serve`] (and directly by the unit tests).
struct Engine {
    cfg: IpmiSimConfig,
    suites: Vec<CipherSuite>,
    sessions: HashMap<u32, SimSession>,
    power: Arc<SimBmc>,
    /// Bumped by every Chassis Control; a pending cycle only completes if
    /// nothing else was commanded in between.
    power_generation: Arc<AtomicU64>,
    counters: Arc<Counters>,
    shutdown: watch::Receiver<bool>,
}

impl Engine {
    fn new(
        cfg: IpmiSimConfig,
        power: Arc<SimBmc>,
        counters: Arc<Counters>,
        shutdown: watch::Receiver<bool>,
    ) -> Engine {
        Engine {
            suites: cfg.suite_list(),
            cfg,
            sessions: HashMap::new(),
            power,
            power_generation: Arc::new(AtomicU64::new(0)),
            counters,
            shutdown,
        }
    }

    fn ignore(&self, why: &str) -> Option<Vec<u8>> {
        tracing::trace!(why, "IPMI simulator: datagram ignored");
        bump(&self.counters.ignored);
        None
    }

    fn publish_table_size(&self) {
        self.counters
            .active_sessions
            .store(self.sessions.len() as u64, Ordering::Relaxed);
    }

    /// Drop idle sessions and stale handshakes.
    fn expire(&mut self, now: Instant) {
        let idle = self.cfg.idle_timeout;
        let handshake = self.cfg.handshake_timeout;
        let before = self.sessions.len();
        self.sessions.retain(|_, s| {
            let limit = if s.stage == Stage::Active {
                idle
            } else {
                handshake
            };
            now.saturating_duration_since(s.last_seen) < limit
        });
        let gone = before - self.sessions.len();
        if gone > 0 {
            self.counters
                .sessions_expired
                .fetch_add(gone as u64, Ordering::Relaxed);
            tracing::debug!(expired = gone, "IPMI simulator: idle sessions dropped");
        }
        self.publish_table_size();
    }

    /// Answer one datagram (or not).
    async fn handle(
        &mut self,
        d: &[u8],
        peer: SocketAddr,
        now: Instant,
        fault: IpmiFault,
    ) -> Option<Vec<u8>> {
        let reply = self.handle_inner(d, peer, now, fault).await;
        self.publish_table_size();
        reply
    }

    async fn handle_inner(
        &mut self,
        d: &[u8],
        peer: SocketAddr,
        now: Instant,
        fault: IpmiFault,
    ) -> Option<Vec<u8>> {
        if let Some(sid) = peek_v20_session_id(d) {
            if sid != 0 {
                return self.session_packet(d, sid, now, fault).await;
            }
        }
        match packet::decode(d, 0) {
            Ok(Datagram::V15 {
                session_id: 0,
                payload,
                ..
            }) => self.sessionless(payload, Wrapper::V15).await,
            Ok(Datagram::V15 { .. }) => self.ignore("IPMI v1.5 sessions are not supported"),
            Ok(Datagram::V20 {
                payload_type,
                encrypted: false,
                authenticated: false,
                payload,
                ..
            }) => match payload_type {
                payload::IPMI => self.sessionless(payload, Wrapper::V20).await,
                payload::OPEN_SESSION_REQUEST => self.open_session(payload, peer, now),
                payload::RAKP1 => self.rakp1(payload, now, fault),
                payload::RAKP3 => self.rakp3(payload, now),
                _ => self.ignore("unexpected payload type outside a session"),
            },
            Ok(Datagram::V20 { .. }) => self.ignore("protected packet outside a session"),
            Err(_) => self.ignore("not a decodable RMCP/IPMI datagram"),
        }
    }

    async fn sessionless(&mut self, msg: &[u8], wrapper: Wrapper) -> Option<Vec<u8>> {
        let Ok(req) = IpmiRequest::decode(msg) else {
            return self.ignore("malformed sessionless IPMI request");
        };
        if req.netfn & 1 != 0 {
            return self.ignore("a response where a request belongs");
        }
        let resp = self.sessionless_command(&req).await;
        let msg = resp.encode();
        Some(match wrapper {
            Wrapper::V15 => packet::encode_v15(0, 0, &msg),
            Wrapper::V20 => packet::encode_v20(payload::IPMI, false, 0, 0, &msg, None),
        })
    }

    fn open_session(&mut self, p: &[u8], peer: SocketAddr, now: Instant) -> Option<Vec<u8>> {
        if p.len() < 8 {
            return self.ignore("Open Session request too short to answer");
        }
        let tag = p[0];
        let console_sid = u32::from_le_bytes([p[4], p[5], p[6], p[7]]);
        let refuse = |engine: &Engine, status: u8| {
            bump(&engine.counters.open_refused);
            tracing::debug!(
                status = packet::rmcp_status_text(status),
                "IPMI simulator: Open Session refused"
            );
            let b = packet::OpenSessionResponse {
                tag,
                status,
                max_privilege: 0,
                console_sid,
                bmc_sid: 0,
                auth: 0,
                integrity: 0,
                conf: 0,
            }
            .encode();
            Some(packet::encode_v20(
                payload::OPEN_SESSION_RESPONSE,
                false,
                0,
                0,
                &b,
                None,
            ))
        };
        let Ok(req) = packet::OpenSessionRequest::decode(p) else {
            return refuse(self, status::ILLEGAL_PARAMETER);
        };
        if p[8] != 0 || p[16] != 1 || p[24] != 2 {
            return refuse(self, status::ILLEGAL_PARAMETER);
        }
        if console_sid == 0 {
            return refuse(self, status::INVALID_SESSION_ID);
        }
        if req.max_privilege > Privilege::Administrator as u8 {
            return refuse(self, status::INVALID_ROLE);
        }
        if AuthAlg::from_u8(req.auth).is_none() {
            return refuse(self, status::INVALID_AUTH_ALG);
        }
        if IntegrityAlg::from_u8(req.integrity).is_none() {
            return refuse(self, status::INVALID_INTEGRITY_ALG);
        }
        if ConfAlg::from_u8(req.conf).is_none() {
            return refuse(self, status::INVALID_CONF_ALG);
        }
        let Some(suite) = self.suites.iter().copied().find(|s| {
            (s.auth as u8, s.integrity as u8, s.conf as u8) == (req.auth, req.integrity, req.conf)
        }) else {
            return refuse(self, status::NO_CIPHER_SUITE_MATCH);
        };
        let max_privilege = if req.max_privilege == 0 {
            Privilege::Administrator as u8
        } else {
            req.max_privilege
        };
        let answer = |bmc_sid: u32| {
            let b = packet::OpenSessionResponse {
                tag,
                status: 0,
                max_privilege,
                console_sid,
                bmc_sid,
                auth: suite.auth as u8,
                integrity: suite.integrity as u8,
                conf: suite.conf as u8,
            }
            .encode();
            Some(packet::encode_v20(
                payload::OPEN_SESSION_RESPONSE,
                false,
                0,
                0,
                &b,
                None,
            ))
        };
        // A retransmitted request gets the session it already has.
        if let Some(s) = self.sessions.values_mut().find(|s| {
            s.stage == Stage::AwaitRakp1
                && s.peer == peer
                && s.console_sid == console_sid
                && s.open_tag == tag
                && s.suite == suite
        }) {
            s.last_seen = now;
            let sid = s.bmc_sid;
            return answer(sid);
        }
        if self.sessions.len() >= self.cfg.max_sessions {
            self.expire(now);
        }
        if self.sessions.len() >= self.cfg.max_sessions {
            // Make room by dropping the oldest unfinished handshake.
            let oldest = self
                .sessions
                .values()
                .filter(|s| s.stage != Stage::Active)
                .min_by_key(|s| s.last_seen)
                .map(|s| s.bmc_sid);
            match oldest {
                Some(sid) => {
                    self.sessions.remove(&sid);
                    bump(&self.counters.sessions_expired);
                }
                None => return refuse(self, status::INSUFFICIENT_RESOURCES),
            }
        }
        let bmc_sid = loop {
            let v: u32 = rand::random();
            if v != 0 && !self.sessions.contains_key(&v) {
                break v;
            }
        };
        self.sessions.insert(
            bmc_sid,
            SimSession {
                bmc_sid,
                console_sid,
                peer,
                open_tag: tag,
                suite,
                open_max_priv: req.max_privilege,
                bmc_rand: rand::random(),
                stage: Stage::AwaitRakp1,
                last_seen: now,
                console_rand: [0; 16],
                role: 0,
                username: Vec::new(),
                user: 0,
                max_priv: 0,
                privilege: 0,
                keys: None,
                highest_seq: None,
                out_seq: 1,
                last: None,
            },
        );
        tracing::debug!(%peer, suite = suite.id, bmc_sid, "IPMI simulator: Open Session");
        answer(bmc_sid)
    }

    fn rakp1(&mut self, p: &[u8], now: Instant, fault: IpmiFault) -> Option<Vec<u8>> {
        if p.len() < 8 {
            return self.ignore("RAKP 1 too short");
        }
        let tag = p[0];
        let bmc_sid = u32::from_le_bytes([p[4], p[5], p[6], p[7]]);
        let Some(s) = self.sessions.get(&bmc_sid) else {
            return self.ignore("RAKP 1 for an unknown session");
        };
        if s.stage == Stage::Active {
            return self.ignore("RAKP 1 for an active session");
        }
        let console_sid = s.console_sid;
        let refuse = |engine: &mut Engine, status: u8| {
            engine.sessions.remove(&bmc_sid);
            bump(&engine.counters.logins_refused);
            tracing::debug!(
                status = packet::rmcp_status_text(status),
                "IPMI simulator: login refused at RAKP 2"
            );
            let b = packet::Rakp2 {
                tag,
                status,
                console_sid,
                bmc_rand: [0; 16],
                bmc_guid: [0; 16],
                auth_code: Vec::new(),
            }
            .encode();
            Some(packet::encode_v20(payload::RAKP2, false, 0, 0, &b, None))
        };
        let m = match packet::Rakp1::decode(p) {
            Ok(m) => m,
            Err(_) if p.len() >= 28 && p[27] > 16 => {
                return refuse(self, status::INVALID_NAME_LENGTH)
            }
            Err(_) => return refuse(self, status::ILLEGAL_PARAMETER),
        };
        if fault == IpmiFault::Refuse {
            return refuse(self, status::UNAUTHORIZED_NAME);
        }
        let level = m.role & 0x0f;
        let name_only = m.role & 0x10 != 0;
        if m.role & 0xe0 != 0 || level == 0 || level > Privilege::Administrator as u8 {
            return refuse(self, status::INVALID_ROLE);
        }
        let found = self.cfg.users.iter().position(|u| {
            u.name.as_bytes() == m.username.as_slice()
                && (name_only || u.max_privilege as u8 == level)
        });
        let Some(user) = found else {
            return refuse(self, status::UNAUTHORIZED_NAME);
        };
        let user_max = self.cfg.users[user].max_privilege as u8;
        let open_max = self.sessions.get(&bmc_sid).map_or(0, |s| s.open_max_priv);
        if level > user_max || (open_max != 0 && level > open_max) {
            return refuse(self, status::UNAUTHORIZED_ROLE);
        }
        let guid = self.cfg.guid;
        let password = self.cfg.users[user].password.expose().as_bytes().to_vec();
        let s = self.sessions.get_mut(&bmc_sid)?;
        s.console_rand = m.console_rand;
        s.role = m.role;
        s.username = m.username;
        s.user = user;
        s.max_priv = level;
        s.privilege = level.min(Privilege::User as u8);
        s.stage = Stage::AwaitRakp3;
        s.last_seen = now;
        let auth_code = crypto::rakp2_code(s.suite.auth, &password, &s.inputs(guid));
        let b = packet::Rakp2 {
            tag,
            status: 0,
            console_sid,
            bmc_rand: s.bmc_rand,
            bmc_guid: guid,
            auth_code,
        }
        .encode();
        Some(packet::encode_v20(payload::RAKP2, false, 0, 0, &b, None))
    }

    fn rakp3(&mut self, p: &[u8], now: Instant) -> Option<Vec<u8>> {
        let Ok(m) = packet::Rakp3::decode(p) else {
            return self.ignore("RAKP 3 too short");
        };
        let Some(s) = self.sessions.get(&m.bmc_sid) else {
            return self.ignore("RAKP 3 for an unknown session");
        };
        let stage = s.stage;
        if stage == Stage::AwaitRakp1 {
            return self.ignore("RAKP 3 before RAKP 1");
        }
        if m.status != 0 {
            // The console gave up (it did not like our RAKP 2): free the slot.
            if stage != Stage::Active {
                self.sessions.remove(&m.bmc_sid);
                bump(&self.counters.logins_refused);
            }
            return None;
        }
        let console_sid = s.console_sid;
        let auth = s.suite.auth;
        let inputs = s.inputs(self.cfg.guid);
        let password = self.cfg.users[s.user].password.expose().as_bytes();
        let expected = crypto::rakp3_code(auth, password, &inputs);
        let verified = crypto::codes_equal(&expected, &m.auth_code);
        let keys_and_icv = verified.then(|| {
            let key: &[u8] = match &self.cfg.kg {
                Some(BmcKey(k)) => k,
                None => password,
            };
            let keys = crypto::session_keys(auth, key, &inputs);
            let icv = crypto::rakp4_icv(auth, &keys.sik, &inputs);
            (keys, icv)
        });
        let reply = |status: u8, icv: Vec<u8>| {
            let b = packet::Rakp4 {
                tag: m.tag,
                status,
                console_sid,
                icv,
            }
            .encode();
            Some(packet::encode_v20(payload::RAKP4, false, 0, 0, &b, None))
        };
        let Some((keys, icv)) = keys_and_icv else {
            if stage == Stage::Active {
                return self.ignore("bad RAKP 3 repeated for an active session");
            }
            self.sessions.remove(&m.bmc_sid);
            bump(&self.counters.logins_refused);
            tracing::debug!("IPMI simulator: RAKP 3 auth code does not match (wrong password)");
            return reply(status::INVALID_INTEGRITY_CHECK, Vec::new());
        };
        let s = self.sessions.get_mut(&m.bmc_sid)?;
        s.last_seen = now;
        if stage != Stage::Active {
            s.stage = Stage::Active;
            s.keys = Some(keys);
            bump(&self.counters.sessions_opened);
            tracing::debug!(
                bmc_sid = s.bmc_sid,
                suite = s.suite.id,
                "IPMI simulator: session active"
            );
        }
        reply(0, icv)
    }

    async fn session_packet(
        &mut self,
        d: &[u8],
        sid: u32,
        now: Instant,
        fault: IpmiFault,
    ) -> Option<Vec<u8>> {
        let Some(mut s) = self.sessions.remove(&sid) else {
            return self.ignore("packet for an unknown session");
        };
        if s.stage != Stage::Active {
            self.sessions.insert(sid, s);
            return self.ignore("packet for a session still in its handshake");
        }
        let (reply, after) = self.in_session(&mut s, d, now, fault).await;
        if after == After::CloseSelf {
            bump(&self.counters.sessions_closed);
            tracing::debug!(bmc_sid = sid, "IPMI simulator: session closed");
        } else {
            self.sessions.insert(sid, s);
        }
        reply
    }

    async fn in_session(
        &mut self,
        s: &mut SimSession,
        d: &[u8],
        now: Instant,
        fault: IpmiFault,
    ) -> (Option<Vec<u8>>, After) {
        let Ok(Datagram::V20 {
            payload_type,
            encrypted,
            authenticated,
            session_seq,
            payload,
            signed,
            auth_code,
            ..
        }) = packet::decode(d, s.suite.integrity.code_len())
        else {
            bump(&self.counters.bad_integrity);
            return (None, After::Nothing);
        };
        let Some(keys) = s.keys.as_ref() else {
            return (self.ignore("session without keys"), After::Nothing);
        };
        if s.suite.integrity != IntegrityAlg::None {
            let want = crypto::integrity_code(s.suite.integrity, &keys.k1, signed);
            if !authenticated || !crypto::codes_equal(&want, auth_code) {
                bump(&self.counters.bad_integrity);
                return (None, After::Nothing);
            }
        }
        let plain;
        let msg = match (s.suite.conf, encrypted) {
            (ConfAlg::AesCbc128, true) => match crypto::aes_decrypt(&keys.k2, payload) {
                Some(p) => {
                    plain = p;
                    &plain[..]
                }
                None => {
                    bump(&self.counters.bad_integrity);
                    return (None, After::Nothing);
                }
            },
            (ConfAlg::None, false) => payload,
            _ => {
                bump(&self.counters.bad_integrity);
                return (None, After::Nothing);
            }
        };
        if payload_type != payload::IPMI {
            return (
                self.ignore("unsupported payload type in a session"),
                After::Nothing,
            );
        }
        if !s.accept_seq(session_seq) {
            bump(&self.counters.bad_integrity);
            return (None, After::Nothing);
        }
        s.last_seen = now;
        let Ok(req) = IpmiRequest::decode(msg) else {
            return (
                self.ignore("malformed IPMI request in a session"),
                After::Nothing,
            );
        };
        if req.netfn & 1 != 0 {
            return (
                self.ignore("a response where a request belongs"),
                After::Nothing,
            );
        }
        // A retransmission of the last request: same answer, not done twice.
        if let Some(last) = &s.last {
            if last.request == req {
                let resp = last.response.clone();
                return (Some(s.wrap(&resp.encode())), After::Nothing);
            }
        }
        bump(&self.counters.commands);
        let (resp, after) = self.dispatch_in_session(&req, s, fault).await;
        s.last = Some(Answered {
            request: req,
            response: resp.clone(),
        });
        (Some(s.wrap(&resp.encode())), after)
    }

    async fn dispatch_in_session(
        &mut self,
        req: &IpmiRequest,
        s: &mut SimSession,
        fault: IpmiFault,
    ) -> (IpmiResponse, After) {
        let answer = |completion: u8, data: Vec<u8>| IpmiResponse {
            netfn: req.netfn + 1,
            cmd: req.cmd,
            rq_seq: req.rq_seq,
            completion,
            data,
        };
        match (req.netfn, req.cmd) {
            // Set Session Privilege Level.
            (0x06, 0x3b) => {
                let Some(&b) = req.data.first() else {
                    return (answer(cc::LENGTH_INVALID, vec![]), After::Nothing);
                };
                let level = b & 0x0f;
                let (code, granted) = set_privilege(s.privilege, s.max_priv, level);
                if code == cc::OK {
                    s.privilege = granted;
                    (answer(cc::OK, vec![granted]), After::Nothing)
                } else {
                    (answer(code, vec![]), After::Nothing)
                }
            }
            // Close Session.
            (0x06, 0x3c) => {
                let Some(sid) = req.data.get(..4) else {
                    return (answer(cc::LENGTH_INVALID, vec![]), After::Nothing);
                };
                let sid = u32::from_le_bytes([sid[0], sid[1], sid[2], sid[3]]);
                if sid == s.bmc_sid {
                    return (answer(cc::OK, vec![]), After::CloseSelf);
                }
                if s.privilege < Privilege::Administrator as u8 {
                    return (answer(cc::INSUFFICIENT_PRIVILEGE, vec![]), After::Nothing);
                }
                if self.sessions.remove(&sid).is_some() {
                    bump(&self.counters.sessions_closed);
                    (answer(cc::OK, vec![]), After::Nothing)
                } else {
                    (answer(cc::INVALID_SESSION_ID, vec![]), After::Nothing)
                }
            }
            _ => {
                let needed = required_privilege(req.netfn, req.cmd);
                match needed {
                    Some(level) if s.privilege < level => {
                        (answer(cc::INSUFFICIENT_PRIVILEGE, vec![]), After::Nothing)
                    }
                    _ => (self.command(req, fault).await, After::Nothing),
                }
            }
        }
    }

    /// A command outside a session: only the pre-session commands.
    async fn sessionless_command(&mut self, req: &IpmiRequest) -> IpmiResponse {
        if matches!((req.netfn, req.cmd), (0x06, 0x37 | 0x38 | 0x54)) {
            return self.command(req, IpmiFault::None).await;
        }
        let completion = if required_privilege(req.netfn, req.cmd).is_some()
            || matches!((req.netfn, req.cmd), (0x06, 0x3b | 0x3c))
        {
            cc::NOT_IN_PRESENT_STATE
        } else {
            cc::INVALID_COMMAND
        };
        IpmiResponse {
            netfn: req.netfn + 1,
            cmd: req.cmd,
            rq_seq: req.rq_seq,
            completion,
            data: vec![],
        }
    }

    /// Commands that need no session state.
    async fn command(&mut self, req: &IpmiRequest, fault: IpmiFault) -> IpmiResponse {
        let (completion, data) = match (req.netfn, req.cmd) {
            (0x06, 0x01) => (cc::OK, device_id()),
            (0x06, 0x37) => (cc::OK, self.cfg.guid.to_vec()),
            (0x06, 0x38) => auth_capabilities(&req.data, self.cfg.kg.is_some()),
            (0x06, 0x54) => cipher_suites_reply(&req.data, &self.suites),
            (0x00, 0x01) => match self.power.status(&self.cfg.machine).await {
                Ok(p) => (cc::OK, vec![u8::from(p == SimPower::On), 0, 0]),
                Err(e) => {
                    tracing::warn!(cause = %e, "IPMI simulator: cannot read power state");
                    (cc::UNSPECIFIED, vec![])
                }
            },
            (0x00, 0x02) => (self.chassis_control(&req.data, fault).await, vec![]),
            _ => (cc::INVALID_COMMAND, vec![]),
        };
        IpmiResponse {
            netfn: req.netfn + 1,
            cmd: req.cmd,
            rq_seq: req.rq_seq,
            completion,
            data,
        }
    }

    async fn chassis_control(&mut self, data: &[u8], fault: IpmiFault) -> u8 {
        let Some(&b) = data.first() else {
            return cc::LENGTH_INVALID;
        };
        let action = b & 0x0f;
        if action > 5 {
            return cc::INVALID_DATA;
        }
        let machine = self.cfg.machine.clone();
        let now_on = match self.power.status(&machine).await {
            Ok(p) => p == SimPower::On,
            Err(e) => {
                tracing::warn!(cause = %e, "IPMI simulator: cannot read power state");
                return cc::UNSPECIFIED;
            }
        };
        // cycle, reset and diag need a running machine
        if !now_on && matches!(action, 2..=4) {
            return cc::NOT_IN_PRESENT_STATE;
        }
        bump(&self.counters.chassis_controls);
        let generation = self.power_generation.fetch_add(1, Ordering::SeqCst) + 1;
        if fault == IpmiFault::Lie {
            bump(&self.counters.lies);
            tracing::debug!(action, "IPMI simulator: lying about Chassis Control");
            return cc::OK;
        }
        let target = match action {
            0 | 5 => Some(SimPower::Off),
            1 => Some(SimPower::On),
            2 => Some(SimPower::Off),
            _ => None, // hard reset, diagnostic interrupt: power stays as it is
        };
        if let Some(target) = target {
            if (target == SimPower::On) != now_on {
                if let Err(e) = self.power.set(&machine, target).await {
                    tracing::warn!(cause = %e, "IPMI simulator: cannot write power state");
                    return cc::UNSPECIFIED;
                }
                bump(&self.counters.power_changes);
            }
        }
        if action == 2 {
            self.finish_cycle(generation).await;
        }
        tracing::debug!(action, "IPMI simulator: Chassis Control");
        cc::OK
    }

    /// Second half of a power cycle: back on after `cycle_off`, unless
    /// another Chassis Control came first or the simulator stops.
    async fn finish_cycle(&mut self, generation: u64) {
        let power = self.power.clone();
        let machine = self.cfg.machine.clone();
        let counters = self.counters.clone();
        let current = self.power_generation.clone();
        let on = async move {
            if current.load(Ordering::SeqCst) == generation
                && power.set(&machine, SimPower::On).await.is_ok()
            {
                bump(&counters.power_changes);
            }
        };
        if self.cfg.cycle_off.is_zero() {
            on.await;
            return;
        }
        let delay = self.cfg.cycle_off;
        let mut stop = self.shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(delay) => on.await,
                _ = stopped(&mut stop) => {}
            }
        });
    }
}

/// Privilege a command needs inside a session (`None` = any, or handled
/// elsewhere; unknown commands answer 0xc1 whatever the level).
fn required_privilege(netfn: u8, cmd: u8) -> Option<u8> {
    match (netfn, cmd) {
        (0x06, 0x01) | (0x00, 0x01) => Some(Privilege::User as u8),
        (0x00, 0x02) => Some(Privilege::Operator as u8),
        _ => None,
    }
}

/// Set Session Privilege Level: (completion code, granted level).
fn set_privilege(current: u8, max: u8, asked: u8) -> (u8, u8) {
    match asked {
        0 => (cc::OK, current),
        1 => (cc::LEVEL_NOT_AVAILABLE, current),
        2..=4 if asked <= max => (cc::OK, asked),
        2..=4 => (cc::LEVEL_EXCEEDS_LIMIT, current),
        5 => (cc::LEVEL_NOT_AVAILABLE, current),
        _ => (cc::INVALID_DATA, current),
    }
}

/// Get Device ID answer.
fn device_id() -> Vec<u8> {
    let m = MANUFACTURER_ID.to_le_bytes();
    vec![
        0x20, // device id
        0x01, // device revision, no SDRs
        0x01, // firmware 1.
        0x00, // .00 (BCD)
        0x02, // IPMI 2.0
        0x81, // chassis device, sensor device
        m[0], m[1], m[2], 0x01, 0x00, // product id
    ]
}

/// Get Channel Authentication Capabilities answer (completion, data).
fn auth_capabilities(data: &[u8], kg_set: bool) -> (u8, Vec<u8>) {
    if data.len() < 2 {
        return (cc::LENGTH_INVALID, vec![]);
    }
    let channel = data[0] & 0x0f;
    let v2 = data[0] & 0x80 != 0;
    let level = data[1] & 0x0f;
    if channel != 0x0e && channel != CHANNEL {
        return (cc::INVALID_DATA, vec![]);
    }
    if level == 0 || level > Privilege::Administrator as u8 {
        return (cc::INVALID_DATA, vec![]);
    }
    let m = MANUFACTURER_ID.to_le_bytes();
    // No IPMI v1.5 authentication types: RMCP+ only.
    let auth_types = if v2 { 0x80 } else { 0x00 };
    // Non-null user names enabled; Kg status when asked for v2 data.
    let status = 0x04 | if v2 && kg_set { 0x20 } else { 0x00 };
    let extended = if v2 { 0x02 } else { 0x00 };
    (
        cc::OK,
        vec![CHANNEL, auth_types, status, extended, m[0], m[1], m[2], 0],
    )
}

/// Get Channel Cipher Suites record bytes for `suites` (by suite, or the
/// plain list of algorithms).
fn cipher_suite_records(suites: &[CipherSuite], by_suite: bool) -> Vec<u8> {
    if by_suite {
        suites
            .iter()
            .flat_map(|s| {
                [
                    0xc0,
                    s.id,
                    s.auth as u8,
                    0x40 | s.integrity as u8,
                    0x80 | s.conf as u8,
                ]
            })
            .collect()
    } else {
        let mut algs: Vec<u8> = suites
            .iter()
            .flat_map(|s| [s.auth as u8, 0x40 | s.integrity as u8, 0x80 | s.conf as u8])
            .collect();
        algs.sort_unstable();
        algs.dedup();
        algs
    }
}

/// Get Channel Cipher Suites answer (completion, data): 16 bytes of
/// records per list index; a shorter chunk is the last.
fn cipher_suites_reply(data: &[u8], suites: &[CipherSuite]) -> (u8, Vec<u8>) {
    if data.len() < 3 {
        return (cc::LENGTH_INVALID, vec![]);
    }
    let channel = data[0] & 0x0f;
    if channel != 0x0e && channel != CHANNEL {
        return (cc::INVALID_DATA, vec![]);
    }
    let payload_type = data[1] & 0x3f;
    let by_suite = data[2] & 0x80 != 0;
    let index = usize::from(data[2] & 0x3f);
    let records = if payload_type == payload::IPMI {
        cipher_suite_records(suites, by_suite)
    } else {
        Vec::new()
    };
    let start = (index * 16).min(records.len());
    let end = (start + 16).min(records.len());
    let mut out = vec![CHANNEL];
    out.extend_from_slice(&records[start..end]);
    (cc::OK, out)
}

/// One line saying what a config runs: for logs and the CLI's start line.
pub fn describe(cfg: &IpmiSimConfig, addr: SocketAddr) -> String {
    let users: Vec<String> = cfg
        .users
        .iter()
        .map(|u| format!("{}({})", u.name, privilege_name(u.max_privilege)))
        .collect();
    format!(
        "ipmi sim listening on {addr} suites {} users {} machine {} fault {}",
        join(&cfg.suite_list().iter().map(|s| s.id).collect::<Vec<_>>()),
        users.join(","),
        cfg.machine,
        cfg.fault
    )
}

fn privilege_name(p: Privilege) -> &'static str {
    match p {
        Privilege::User => "user",
        Privilege::Operator => "operator",
        Privilege::Administrator => "administrator",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use proptest::prelude::*;

    fn peer() -> SocketAddr {
        "127.0.0.1:40000".parse().unwrap()
    }

    fn config() -> IpmiSimConfig {
        let mut c = IpmiSimConfig::new(
            "127.0.0.1:0".parse().unwrap(),
            vec![
                SimUser::new("admin", "secret", Privilege::Administrator),
                SimUser::new("oper", "opsecret", Privilege::Operator),
                SimUser::new("viewer", "look", Privilege::User),
            ],
        );
        c.suites = vec![0, 1, 2, 3, 15, 16, 17];
        c.cycle_off = Duration::ZERO;
        c
    }

    fn engine(cfg: IpmiSimConfig) -> (Engine, Arc<Counters>, watch::Sender<bool>) {
        let power = Arc::new(SimBmc::new(
            "t",
            SimFault::None,
            Duration::ZERO,
            cfg.initially_on,
            vec![cfg.machine.clone()],
            None,
        ));
        let counters = Arc::new(Counters::default());
        let (tx, rx) = watch::channel(false);
        (Engine::new(cfg, power, counters.clone(), rx), counters, tx)
    }

    /// A minimal console, enough to drive the engine through a session.
    struct Console {
        suite: CipherSuite,
        console_sid: u32,
        bmc_sid: u32,
        keys: Option<crypto::SessionKeys>,
        seq: u32,
        rq_seq: u8,
    }

    async fn send(e: &mut Engine, d: &[u8]) -> Option<Vec<u8>> {
        e.handle(d, peer(), Instant::now(), IpmiFault::None).await
    }

    fn payload_of(d: &[u8]) -> (u8, Vec<u8>) {
        match packet::decode(d, 0).unwrap() {
            Datagram::V20 {
                payload_type,
                payload,
                ..
            } => (payload_type, payload.to_vec()),
            Datagram::V15 { payload, .. } => (0xff, payload.to_vec()),
        }
    }

    async fn open_session(
        e: &mut Engine,
        suite: u8,
        max_privilege: u8,
    ) -> packet::OpenSessionResponse {
        let s = CipherSuite::by_id(suite).unwrap();
        let req = packet::OpenSessionRequest {
            tag: 7,
            max_privilege,
            console_sid: 0x1122_3344,
            auth: s.auth as u8,
            integrity: s.integrity as u8,
            conf: s.conf as u8,
        }
        .encode();
        let r = send(
            e,
            &packet::encode_v20(payload::OPEN_SESSION_REQUEST, false, 0, 0, &req, None),
        )
        .await
        .unwrap();
        let (pt, p) = payload_of(&r);
        assert_eq!(pt, payload::OPEN_SESSION_RESPONSE);
        packet::OpenSessionResponse::decode(&p).unwrap()
    }

    /// Log in; `Err(status)` when the BMC refused at RAKP 2 or 4.
    async fn login(
        e: &mut Engine,
        suite: u8,
        user: &str,
        password: &str,
        role: Privilege,
    ) -> Result<Console, u8> {
        let s = CipherSuite::by_id(suite).unwrap();
        let open = open_session(e, suite, 0).await;
        if open.status != 0 {
            return Err(open.status);
        }
        let console_rand: [u8; 16] = rand::random();
        let role_byte = role as u8 | 0x10;
        let rakp1 = packet::Rakp1 {
            tag: 8,
            bmc_sid: open.bmc_sid,
            console_rand,
            role: role_byte,
            username: user.as_bytes().to_vec(),
        }
        .encode();
        let r = send(
            e,
            &packet::encode_v20(payload::RAKP1, false, 0, 0, &rakp1, None),
        )
        .await
        .unwrap();
        let (pt, p) = payload_of(&r);
        assert_eq!(pt, payload::RAKP2);
        let rakp2 = packet::Rakp2::decode(&p).unwrap();
        if rakp2.status != 0 {
            return Err(rakp2.status);
        }
        let inputs = RakpInputs {
            console_sid: 0x1122_3344,
            bmc_sid: open.bmc_sid,
            console_rand,
            bmc_rand: rakp2.bmc_rand,
            bmc_guid: rakp2.bmc_guid,
            role: role_byte,
            username: user.as_bytes(),
        };
        let rakp3 = packet::Rakp3 {
            tag: 9,
            status: 0,
            bmc_sid: open.bmc_sid,
            auth_code: crypto::rakp3_code(s.auth, password.as_bytes(), &inputs),
        }
        .encode();
        let r = send(
            e,
            &packet::encode_v20(payload::RAKP3, false, 0, 0, &rakp3, None),
        )
        .await
        .unwrap();
        let (pt, p) = payload_of(&r);
        assert_eq!(pt, payload::RAKP4);
        let rakp4 = packet::Rakp4::decode(&p).unwrap();
        if rakp4.status != 0 {
            return Err(rakp4.status);
        }
        let keys = crypto::session_keys(s.auth, password.as_bytes(), &inputs);
        assert_eq!(rakp4.icv, crypto::rakp4_icv(s.auth, &keys.sik, &inputs));
        Ok(Console {
            suite: s,
            console_sid: 0x1122_3344,
            bmc_sid: open.bmc_sid,
            keys: Some(keys),
            seq: 1,
            rq_seq: 0,
        })
    }

    impl Console {
        fn request(&mut self, netfn: u8, cmd: u8, data: &[u8]) -> Vec<u8> {
            self.rq_seq = self.rq_seq % 63 + 1;
            let msg = IpmiRequest {
                netfn,
                cmd,
                rq_seq: self.rq_seq,
                data: data.to_vec(),
            }
            .encode();
            let seq = self.seq;
            self.seq += 1;
            let k = self.keys.as_ref().unwrap();
            let encrypted = self.suite.conf == ConfAlg::AesCbc128;
            let body = if encrypted {
                crypto::aes_encrypt(&k.k2, [5; 16], &msg).unwrap()
            } else {
                msg
            };
            let integrity = self.suite.integrity;
            let k1 = k.k1.clone();
            let sign = move |b: &[u8]| crypto::integrity_code(integrity, &k1, b);
            let signer: Option<packet::Signer<'_>> =
                (integrity != IntegrityAlg::None).then_some(&sign);
            packet::encode_v20(payload::IPMI, encrypted, self.bmc_sid, seq, &body, signer)
        }

        fn response(&self, d: &[u8]) -> IpmiResponse {
            let k = self.keys.as_ref().unwrap();
            let Datagram::V20 {
                session_id,
                payload,
                signed,
                auth_code,
                encrypted,
                ..
            } = packet::decode(d, self.suite.integrity.code_len()).unwrap()
            else {
                panic!("not v2.0")
            };
            assert_eq!(session_id, self.console_sid);
            assert_eq!(
                crypto::integrity_code(self.suite.integrity, &k.k1, signed),
                auth_code
            );
            let msg = if encrypted {
                crypto::aes_decrypt(&k.k2, payload).unwrap()
            } else {
                payload.to_vec()
            };
            IpmiResponse::decode(&msg).unwrap()
        }

        async fn call(&mut self, e: &mut Engine, netfn: u8, cmd: u8, data: &[u8]) -> IpmiResponse {
            let d = self.request(netfn, cmd, data);
            let r = send(e, &d).await.expect("an answer");
            self.response(&r)
        }
    }

    #[tokio::test]
    async fn every_suite_logs_in_and_runs_commands() {
        for suite in [0u8, 1, 2, 3, 15, 16, 17] {
            let (mut e, counters, _stop) = engine(config());
            let mut c = login(&mut e, suite, "admin", "secret", Privilege::Administrator)
                .await
                .unwrap_or_else(|s| panic!("suite {suite}: status {s:#x}"));
            let r = c.call(&mut e, 0x06, 0x3b, &[4]).await;
            assert_eq!(
                (r.completion, r.data.clone()),
                (0, vec![4]),
                "suite {suite}"
            );
            let r = c.call(&mut e, 0x00, 0x01, &[]).await;
            assert_eq!(r.data[0] & 1, 1);
            let r = c.call(&mut e, 0x00, 0x02, &[0]).await;
            assert_eq!(r.completion, 0);
            let r = c.call(&mut e, 0x00, 0x01, &[]).await;
            assert_eq!(r.data[0] & 1, 0);
            let r = c.call(&mut e, 0x06, 0x01, &[]).await;
            assert_eq!(r.data.len(), 11);
            let r = c.call(&mut e, 0x0a, 0x10, &[]).await;
            assert_eq!(r.completion, 0xc1, "unknown commands are invalid");
            let sid = c.bmc_sid.to_le_bytes();
            let r = c.call(&mut e, 0x06, 0x3c, &sid).await;
            assert_eq!(r.completion, 0);
            assert!(e.sessions.is_empty(), "Close Session frees the slot");
            let s = counters.snapshot();
            assert_eq!((s.sessions_opened, s.sessions_closed), (1, 1));
            assert_eq!(s.power_changes, 1);
        }
    }

    #[tokio::test]
    async fn wrong_password_is_refused_at_rakp4() {
        let (mut e, counters, _stop) = engine(config());
        assert_eq!(
            login(&mut e, 17, "admin", "wrong", Privilege::Administrator)
                .await
                .err(),
            Some(status::INVALID_INTEGRITY_CHECK)
        );
        assert!(e.sessions.is_empty());
        assert_eq!(counters.snapshot().logins_refused, 1);
        // Suite 0 has no authentication at all: any password gets in.
        assert!(login(&mut e, 0, "admin", "wrong", Privilege::Administrator)
            .await
            .is_ok());
    }

    #[tokio::test]
    async fn unknown_user_and_refuse_fault_give_unauthorized_name() {
        let (mut e, _c, _stop) = engine(config());
        assert_eq!(
            login(&mut e, 3, "nobody", "x", Privilege::User).await.err(),
            Some(status::UNAUTHORIZED_NAME)
        );
        let open = open_session(&mut e, 3, 0).await;
        let rakp1 = packet::Rakp1 {
            tag: 1,
            bmc_sid: open.bmc_sid,
            console_rand: [1; 16],
            role: 0x14,
            username: b"admin".to_vec(),
        }
        .encode();
        let r = e
            .handle(
                &packet::encode_v20(payload::RAKP1, false, 0, 0, &rakp1, None),
                peer(),
                Instant::now(),
                IpmiFault::Refuse,
            )
            .await
            .unwrap();
        let (_, p) = payload_of(&r);
        assert_eq!(
            packet::Rakp2::decode(&p).unwrap().status,
            status::UNAUTHORIZED_NAME
        );
        assert!(e.sessions.is_empty());
    }

    #[tokio::test]
    async fn privilege_limits() {
        let (mut e, _c, _stop) = engine(config());
        // RAKP 1 asking for more than the user may have.
        assert_eq!(
            login(&mut e, 3, "oper", "opsecret", Privilege::Administrator)
                .await
                .err(),
            Some(status::UNAUTHORIZED_ROLE)
        );
        // Set Session Privilege above the session's maximum: 0x81.
        let mut c = login(&mut e, 3, "oper", "opsecret", Privilege::Operator)
            .await
            .unwrap();
        assert_eq!(c.call(&mut e, 0x06, 0x3b, &[4]).await.completion, 0x81);
        // Sessions start at User: Chassis Control needs Operator.
        assert_eq!(c.call(&mut e, 0x00, 0x02, &[0]).await.completion, 0xd4);
        assert_eq!(c.call(&mut e, 0x06, 0x3b, &[3]).await.data, vec![3]);
        assert_eq!(c.call(&mut e, 0x00, 0x02, &[0]).await.completion, 0);
        // A User-only account can read but not control.
        let mut v = login(&mut e, 17, "viewer", "look", Privilege::User)
            .await
            .unwrap();
        assert_eq!(v.call(&mut e, 0x00, 0x01, &[]).await.completion, 0);
        assert_eq!(v.call(&mut e, 0x00, 0x02, &[1]).await.completion, 0xd4);
        assert_eq!(v.call(&mut e, 0x06, 0x3b, &[3]).await.completion, 0x81);
        // Name + privilege lookup needs the exact level.
        let open = open_session(&mut e, 3, 0).await;
        let rakp1 = packet::Rakp1 {
            tag: 1,
            bmc_sid: open.bmc_sid,
            console_rand: [1; 16],
            role: 0x03,
            username: b"admin".to_vec(),
        }
        .encode();
        let r = send(
            &mut e,
            &packet::encode_v20(payload::RAKP1, false, 0, 0, &rakp1, None),
        )
        .await
        .unwrap();
        let (_, p) = payload_of(&r);
        assert_eq!(
            packet::Rakp2::decode(&p).unwrap().status,
            status::UNAUTHORIZED_NAME
        );
    }

    #[test]
    fn set_privilege_table() {
        assert_eq!(set_privilege(2, 4, 0), (0, 2));
        assert_eq!(set_privilege(2, 4, 4), (0, 4));
        assert_eq!(set_privilege(2, 3, 4), (0x81, 2));
        assert_eq!(set_privilege(2, 4, 1), (0x80, 2));
        assert_eq!(set_privilege(2, 4, 9), (0xcc, 2));
    }

    #[tokio::test]
    async fn open_session_statuses() {
        let mut cfg = config();
        cfg.suites = vec![3, 17];
        let (mut e, counters, _stop) = engine(cfg);
        // Suite 0 not offered: no match, said so.
        assert_eq!(
            open_session(&mut e, 0, 0).await.status,
            status::NO_CIPHER_SUITE_MATCH
        );
        assert_eq!(
            open_session(&mut e, 2, 0).await.status,
            status::NO_CIPHER_SUITE_MATCH
        );
        let mut req = packet::OpenSessionRequest {
            tag: 1,
            max_privilege: 4,
            console_sid: 5,
            auth: 2, // HMAC-MD5: not implemented
            integrity: 1,
            conf: 1,
        };
        let ask = |r: &packet::OpenSessionRequest| {
            packet::encode_v20(
                payload::OPEN_SESSION_REQUEST,
                false,
                0,
                0,
                &r.encode(),
                None,
            )
        };
        let status_of = |d: Vec<u8>| {
            let (_, p) = payload_of(&d);
            packet::OpenSessionResponse::decode(&p).unwrap().status
        };
        assert_eq!(status_of(send(&mut e, &ask(&req)).await.unwrap()), 0x04);
        req.auth = 1;
        req.integrity = 2;
        assert_eq!(status_of(send(&mut e, &ask(&req)).await.unwrap()), 0x05);
        req.integrity = 1;
        req.conf = 2;
        assert_eq!(status_of(send(&mut e, &ask(&req)).await.unwrap()), 0x10);
        req.conf = 1;
        req.console_sid = 0;
        assert_eq!(status_of(send(&mut e, &ask(&req)).await.unwrap()), 0x02);
        assert!(e.sessions.is_empty());
        assert_eq!(counters.snapshot().open_refused, 6);
        // A retransmitted Open Session gets the same session.
        req.console_sid = 9;
        let a = send(&mut e, &ask(&req)).await.unwrap();
        let b = send(&mut e, &ask(&req)).await.unwrap();
        assert_eq!(a, b);
        assert_eq!(e.sessions.len(), 1);
    }

    #[tokio::test]
    async fn session_table_limit_and_expiry() {
        let mut cfg = config();
        cfg.max_sessions = 2;
        let (mut e, counters, _stop) = engine(cfg);
        let _a = login(&mut e, 3, "admin", "secret", Privilege::Administrator)
            .await
            .unwrap();
        let _b = login(&mut e, 17, "admin", "secret", Privilege::Administrator)
            .await
            .unwrap();
        assert_eq!(
            open_session(&mut e, 3, 0).await.status,
            status::INSUFFICIENT_RESOURCES
        );
        e.expire(Instant::now() + DEFAULT_IDLE_TIMEOUT + Duration::from_secs(1));
        assert!(e.sessions.is_empty());
        assert_eq!(counters.snapshot().sessions_expired, 2);
        // Half-done handshakes give way to new ones when the table is full.
        open_session(&mut e, 3, 0).await;
        let mut req = packet::OpenSessionRequest {
            tag: 2,
            max_privilege: 0,
            console_sid: 77,
            auth: 1,
            integrity: 1,
            conf: 1,
        };
        for sid in 78..82 {
            req.console_sid = sid;
            let d = packet::encode_v20(
                payload::OPEN_SESSION_REQUEST,
                false,
                0,
                0,
                &req.encode(),
                None,
            );
            let (_, p) = payload_of(&send(&mut e, &d).await.unwrap());
            assert_eq!(packet::OpenSessionResponse::decode(&p).unwrap().status, 0);
        }
        assert_eq!(e.sessions.len(), 2);
    }

    #[tokio::test]
    async fn integrity_and_sequence_are_checked() {
        let (mut e, counters, _stop) = engine(config());
        let mut c = login(&mut e, 17, "admin", "secret", Privilege::Administrator)
            .await
            .unwrap();
        let mut d = c.request(0x00, 0x01, &[]);
        let last = d.len() - 1;
        d[last] ^= 1;
        assert!(send(&mut e, &d).await.is_none(), "bad auth code");
        assert_eq!(counters.snapshot().bad_integrity, 1);
        // Unsigned packet in a session with integrity.
        let msg = IpmiRequest {
            netfn: 0,
            cmd: 1,
            rq_seq: 1,
            data: vec![],
        }
        .encode();
        let plain = packet::encode_v20(payload::IPMI, false, c.bmc_sid, 50, &msg, None);
        assert!(send(&mut e, &plain).await.is_none());
        // Far behind the highest sequence number seen.
        c.seq = 1000;
        assert_eq!(c.call(&mut e, 0x00, 0x01, &[]).await.completion, 0);
        c.seq = 900;
        let d = c.request(0x00, 0x01, &[]);
        assert!(send(&mut e, &d).await.is_none(), "stale sequence number");
        c.seq = 990; // a little behind: loose
        assert_eq!(c.call(&mut e, 0x00, 0x01, &[]).await.completion, 0);
    }

    #[tokio::test]
    async fn retransmitted_command_is_answered_not_repeated() {
        let (mut e, counters, _stop) = engine(config());
        let mut c = login(&mut e, 3, "admin", "secret", Privilege::Administrator)
            .await
            .unwrap();
        c.call(&mut e, 0x06, 0x3b, &[4]).await;
        let d = c.request(0x00, 0x02, &[2]); // power cycle
        let r1 = c.response(&send(&mut e, &d).await.unwrap());
        // Same request again (new session sequence number, same rq_seq).
        c.rq_seq -= 1;
        let d = c.request(0x00, 0x02, &[2]);
        let r2 = c.response(&send(&mut e, &d).await.unwrap());
        assert_eq!(r1, r2);
        let s = counters.snapshot();
        assert_eq!(s.chassis_controls, 1);
        assert_eq!(s.power_changes, 2, "cycle = off + on");
    }

    #[tokio::test]
    async fn lie_accepts_and_does_nothing() {
        let (mut e, counters, _stop) = engine(config());
        let mut c = login(&mut e, 3, "admin", "secret", Privilege::Administrator)
            .await
            .unwrap();
        c.call(&mut e, 0x06, 0x3b, &[4]).await;
        let d = c.request(0x00, 0x02, &[0]);
        let r = e
            .handle(&d, peer(), Instant::now(), IpmiFault::Lie)
            .await
            .unwrap();
        assert_eq!(c.response(&r).completion, 0);
        assert_eq!(c.call(&mut e, 0x00, 0x01, &[]).await.data[0] & 1, 1);
        assert_eq!(counters.snapshot().lies, 1);
    }

    #[tokio::test]
    async fn chassis_actions() {
        let (mut e, counters, _stop) = engine(config());
        let mut c = login(&mut e, 3, "admin", "secret", Privilege::Administrator)
            .await
            .unwrap();
        c.call(&mut e, 0x06, 0x3b, &[4]).await;
        for (action, cc_, on_after) in [
            (3u8, 0u8, true), // hard reset
            (4, 0, true),     // diag
            (5, 0, false),    // soft off
            (2, 0xd5, false), // cycle when off
            (3, 0xd5, false), // reset when off
            (1, 0, true),     // on
            (1, 0, true),     // on again: no change
            (9, 0xcc, true),  // nonsense
        ] {
            let r = c.call(&mut e, 0x00, 0x02, &[action]).await;
            assert_eq!(r.completion, cc_, "action {action}");
            let on = c.call(&mut e, 0x00, 0x01, &[]).await.data[0] & 1 == 1;
            assert_eq!(on, on_after, "action {action}");
        }
        assert_eq!(c.call(&mut e, 0x00, 0x02, &[]).await.completion, 0xc7);
        assert_eq!(counters.snapshot().power_changes, 2);
    }

    #[tokio::test]
    async fn sessionless_commands_both_wrappers() {
        let (mut e, _c, _stop) = engine(config());
        let caps = IpmiRequest {
            netfn: 6,
            cmd: 0x38,
            rq_seq: 0,
            data: vec![0x8e, 4],
        }
        .encode();
        for d in [
            packet::encode_v15(0, 0, &caps),
            packet::encode_v20(payload::IPMI, false, 0, 0, &caps, None),
        ] {
            let r = send(&mut e, &d).await.unwrap();
            let (_, p) = payload_of(&r);
            let r = IpmiResponse::decode(&p).unwrap();
            assert_eq!((r.netfn, r.cmd, r.completion), (7, 0x38, 0));
            use crate::ipmi::commands::GetChannelAuthenticationCapabilities as Caps;
            use ipmi_rs::connection::IpmiCommand;
            let caps = Caps::parse_success_response(&r.data).unwrap();
            assert!(caps.ipmi2_connections_supported);
        }
        // Chassis commands need a session.
        let status = IpmiRequest {
            netfn: 0,
            cmd: 1,
            rq_seq: 3,
            data: vec![],
        }
        .encode();
        let r = send(&mut e, &packet::encode_v15(0, 0, &status))
            .await
            .unwrap();
        let (_, p) = payload_of(&r);
        assert_eq!(IpmiResponse::decode(&p).unwrap().completion, 0xd5);
    }

    #[test]
    fn cipher_suite_listing_is_chunked() {
        let all: Vec<CipherSuite> = IMPLEMENTED_SUITES
            .iter()
            .filter_map(|id| CipherSuite::by_id(*id))
            .collect();
        let mut records = Vec::new();
        for index in 0..8u8 {
            let (code, data) = cipher_suites_reply(&[0x0e, 0, 0x80 | index], &all);
            assert_eq!(code, 0);
            assert_eq!(data[0], CHANNEL);
            records.extend_from_slice(&data[1..]);
            if data.len() < 17 {
                break;
            }
        }
        assert_eq!(records.len(), 35);
        assert_eq!(
            crate::ipmi::commands::suite_ids(&records),
            IMPLEMENTED_SUITES
        );
        let (_, algs) = cipher_suites_reply(&[0x0e, 0, 0], &all);
        assert_eq!(
            &algs[1..],
            &[0x00, 0x01, 0x03, 0x40, 0x41, 0x44, 0x80, 0x81]
        );
        assert_eq!(cipher_suites_reply(&[0x0e, 0], &all).0, 0xc7);
        assert_eq!(cipher_suites_reply(&[0x05, 0, 0x80], &all).0, 0xcc);
    }

    #[test]
    fn parses_users_faults_and_keys() {
        let u = SimUser::parse("admin:secret").unwrap();
        assert_eq!(
            (u.name.as_str(), u.password.expose(), u.max_privilege),
            ("admin", "secret", Privilege::Administrator)
        );
        let u = SimUser::parse("op:pa:ss:operator").unwrap();
        assert_eq!(
            (u.password.expose(), u.max_privilege),
            ("pa:ss", Privilege::Operator)
        );
        let u = SimUser::parse("v:x:y").unwrap();
        assert_eq!(
            (u.password.expose(), u.max_privilege),
            ("x:y", Privilege::Administrator)
        );
        assert!(SimUser::parse("nopassword").is_err());
        assert!(SimUser::parse(":pw").is_err());
        assert!(SimUser::parse("a:123456789012345678901").is_err());
        let e = SimUser::parse("x").unwrap_err().to_string();
        assert!(!e.contains("pw"));
        assert!(!format!("{:?}", SimUser::parse("a:hunter2").unwrap()).contains("hunter2"));

        assert_eq!(IpmiFault::parse("drop:3").unwrap(), IpmiFault::Drop(3));
        assert_eq!(
            IpmiFault::parse("slow:250").unwrap(),
            IpmiFault::Slow(Duration::from_millis(250))
        );
        assert_eq!(IpmiFault::parse("lies").unwrap(), IpmiFault::Lie);
        for bad in [
            "drop:0",
            "drop",
            "slow:x",
            "loud",
            "none:1",
            "slow:99999999999999",
        ] {
            assert!(IpmiFault::parse(bad).is_err(), "{bad}");
        }
        for f in ["none", "drop:2", "silent", "slow:5", "lie", "refuse"] {
            assert_eq!(IpmiFault::parse(f).unwrap().to_string(), f);
        }
        assert_eq!(
            BmcKey::from_hex("0x6b67").unwrap(),
            BmcKey(vec![0x6b, 0x67])
        );
        assert!(BmcKey::from_hex("abc").is_err());
        assert!(BmcKey::from_hex("zz").is_err());
        assert_eq!(
            format!("{:?}", BmcKey::from_hex("6b").unwrap()),
            "<redacted>"
        );
    }

    #[test]
    fn validation() {
        let ok = config();
        assert!(ok.validate().is_ok());
        let mut c = ok.clone();
        c.suites = vec![4];
        assert!(c.validate().is_err());
        let mut c = ok.clone();
        c.users.clear();
        assert!(c.validate().is_err());
        let mut c = ok.clone();
        c.users.push(SimUser::new("admin", "x", Privilege::User));
        assert!(c.validate().is_err());
        let mut c = ok;
        c.max_sessions = 0;
        assert!(c.validate().is_err());
    }

    #[test]
    fn peeks_session_ids() {
        let d = packet::encode_v20(0, false, 0xdead_beef, 1, &[1, 2], None);
        assert_eq!(peek_v20_session_id(&d), Some(0xdead_beef));
        assert_eq!(peek_v20_session_id(&packet::encode_v15(0, 5, &[1])), None);
        assert_eq!(peek_v20_session_id(&[6, 0, 0xff, 7, 6]), None);
    }

    #[tokio::test]
    async fn server_counts_drops_and_stops() {
        let mut cfg = config();
        cfg.fault = IpmiFault::Drop(2);
        let server = IpmiSimServer::start(cfg).await.unwrap();
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let caps = IpmiRequest {
            netfn: 6,
            cmd: 0x38,
            rq_seq: 0,
            data: vec![0x8e, 4],
        }
        .encode();
        let d = packet::encode_v15(0, 0, &caps);
        let mut answered = 0;
        let mut buf = [0u8; 512];
        for _ in 0..4 {
            sock.send_to(&d, server.local_addr()).await.unwrap();
            if let Ok(Ok(_)) =
                tokio::time::timeout(Duration::from_millis(200), sock.recv_from(&mut buf)).await
            {
                answered += 1;
            }
        }
        assert_eq!(answered, 2);
        let s = server.stats();
        assert_eq!((s.datagrams, s.dropped, s.replies), (4, 2, 2));
        server.shutdown().await;
    }

    proptest! {
        #[test]
        fn no_input_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300), sid: u32, pt in 0u8..0x40) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let (mut e, _c, _stop) = engine(config());
                let _ = send(&mut e, &bytes).await;
                // Valid-looking wrappers around random payloads, in and out of sessions.
                let _ = send(&mut e, &packet::encode_v20(pt, false, 0, 0, &bytes, None)).await;
                let _ = send(&mut e, &packet::encode_v15(0, 0, &bytes)).await;
                let c = login(&mut e, 17, "admin", "secret", Privilege::Administrator).await.unwrap();
                let _ = send(&mut e, &packet::encode_v20(pt, true, c.bmc_sid, 2, &bytes, None)).await;
                let _ = send(&mut e, &packet::encode_v20(pt, false, sid, 2, &bytes, None)).await;
                let k1 = c.keys.as_ref().unwrap().k1.clone();
                let sign = move |b: &[u8]| crypto::integrity_code(IntegrityAlg::HmacSha256_128, &k1, b);
                let _ = send(&mut e, &packet::encode_v20(0, true, c.bmc_sid, 3, &bytes, Some(&sign))).await;
            });
        }
    }
}
