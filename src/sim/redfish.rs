//! A simulated Redfish BMC: an HTTP/1.1 server (TLS by default) on tokio +
//! hyper that serves the part of the Redfish 1.x data model a fencing client
//! needs, for several machines at once, so that real clients — Debian's
//! `fence_redfish`, OpenStack's `sushy` library, curl, our own
//! `crate::redfish` client — can be tested against BMCs that behave and
//! against BMCs that misbehave.
//!
//! ```text
//!  /redfish                                   versions              (open)
//!  /redfish/v1                                ServiceRoot           (open)
//!  /redfish/v1/Systems[/{id}]                 systems, PowerState
//!  /redfish/v1/Systems/{id}/ResetActionInfo   ActionInfo (AllowableValues)
//!  POST .../Actions/ComputerSystem.Reset      {"ResetType": ...}
//!  /redfish/v1/Managers[/{id}]                the BMC itself
//!  /redfish/v1/SessionService[/Sessions[/{id}]]  POST login (open), DELETE logout
//!  /redfish/v1/TaskService[/Tasks[/{n}[/Monitor]]]  fault `task`
//!
//!  request ─> [slow:MS] ─> open resource? ─no─> X-Auth-Token session? ─no─> Basic?
//!                             │ yes                 │ yes                     │ no: 401
//!                             v                     v                         v
//!                          answer              answer (fault `unauthorized`: 401 always)
//!  Reset: known type? ─> allowed by the vendor? ─> fault bad-reset/error? ─> lie?
//!         400             400                       400 / 500                204, no change
//!         ─> plan (Off / On / Off then On after `cycle_off`) ─> [task:MS: 202 + task]
//!            ─> [delay:MS] ─> power changes (a newer reset cancels what is pending)
//! ```
//!
//! Vendor personalities ([`Vendor`]) choose the ids, names, the reset types
//! allowed and how they are announced (inline `ResetType@Redfish.AllowableValues`,
//! an `@Redfish.ActionInfo` resource, or both), and the shape of success and
//! error answers, after the vendors' public documentation.
//!
//! Power lives in a [`SimBmc`] keyed by system id, so it can be shared (JSON
//! state file) with other simulator processes and the sim fence agent.
//! Everything it does is counted ([`RedfishSimStats`]).
//!
//! The accept loop, every connection and every pending power change select
//! on the shutdown signal. No request can make it panic: bodies are size
//! limited and parsed with serde_json; anything malformed is a 400 with a
//! Redfish error body. It never logs a password or a session token.

use super::{SimBmc, SimPower};
use crate::config::SimFault;
use crate::secret::Secret;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// How long a restart or power cycle keeps the machine off.
pub const DEFAULT_CYCLE_OFF: Duration = Duration::from_secs(1);
/// Sessions open at once before logins get 503 (iDRAC allows 8, bmcweb 64).
pub const DEFAULT_MAX_SESSIONS: usize = 64;
/// `SessionTimeout` announced by the SessionService (sessions never expire here).
const SESSION_TIMEOUT_S: u64 = 1800;
/// Largest request body read; anything longer is a 413.
const MAX_BODY: usize = 64 * 1024;
/// Finished tasks kept for clients to read.
const MAX_TASKS: usize = 256;
/// Most systems one simulator serves.
const MAX_SYSTEMS: usize = 1000;
/// A TLS handshake that takes longer is dropped.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown waits for open connections to finish their answer.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// DMTF Base message registry version used in error bodies.
const BASE: &str = "Base.1.8";

/// The simulator could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum RedfishSimError {
    /// A setting is out of range.
    #[error("Redfish simulator: {0}")]
    Config(String),
    /// The TCP socket could not be bound.
    #[error("Redfish simulator cannot listen on {addr}: {detail} (pick a free port)")]
    Bind { addr: SocketAddr, detail: String },
    /// The certificate or key is unusable.
    #[error("Redfish simulator TLS set-up: {0} (give a PEM certificate and its PEM private key, or none to generate one)")]
    Tls(String),
}

fn config_err(msg: impl Into<String>) -> RedfishSimError {
    RedfishSimError::Config(msg.into())
}

// ---------------------------------------------------------------------------
// reset types, vendors, faults

/// `ComputerSystem.Reset` `ResetType` values (Redfish `Resource.ResetType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResetType {
    On,
    ForceOff,
    GracefulShutdown,
    GracefulRestart,
    ForceRestart,
    Nmi,
    ForceOn,
    PushPowerButton,
    PowerCycle,
}

impl ResetType {
    /// Every type the simulator knows, in the order of the Redfish schema.
    pub const ALL: [ResetType; 9] = [
        ResetType::On,
        ResetType::ForceOff,
        ResetType::GracefulShutdown,
        ResetType::GracefulRestart,
        ResetType::ForceRestart,
        ResetType::Nmi,
        ResetType::ForceOn,
        ResetType::PushPowerButton,
        ResetType::PowerCycle,
    ];

    /// The Redfish spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ResetType::On => "On",
            ResetType::ForceOff => "ForceOff",
            ResetType::GracefulShutdown => "GracefulShutdown",
            ResetType::GracefulRestart => "GracefulRestart",
            ResetType::ForceRestart => "ForceRestart",
            ResetType::Nmi => "Nmi",
            ResetType::ForceOn => "ForceOn",
            ResetType::PushPowerButton => "PushPowerButton",
            ResetType::PowerCycle => "PowerCycle",
        }
    }

    /// Exact Redfish spelling (case matters, as it does to real BMCs).
    pub fn parse(s: &str) -> Option<ResetType> {
        ResetType::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

impl fmt::Display for ResetType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whose BMC the simulator pretends to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vendor {
    /// Every reset type, announced inline and through an ActionInfo;
    /// UUID-like system ids; 204 on success.
    Generic,
    /// iDRAC9 (Redfish API guide, firmware 4.x): `System.Embedded.N`,
    /// manager `iDRAC.Embedded.1`; On, ForceOff, ForceRestart,
    /// GracefulShutdown, PushPowerButton, Nmi inline (no GracefulRestart,
    /// PowerCycle or ForceOn; later firmware adds the first two); 204.
    Dell,
    /// iLO 5: systems `1`..`N`, manager `1`; On, ForceOff, GracefulShutdown,
    /// ForceRestart, Nmi, PushPowerButton, GracefulRestart inline; 200 with
    /// an `iLO.0.10.ExtendedInfo` body; 400 `InvalidOperationForSystemState`
    /// when asked to power on what is on (or off what is off).
    Hpe,
    /// OpenBMC bmcweb: `system` (or `host0`.. with several), manager `bmc`;
    /// allowable values only in `/ResetActionInfo` (On, ForceOff, ForceOn,
    /// ForceRestart, GracefulRestart, GracefulShutdown, PowerCycle, Nmi: no
    /// PushPowerButton); 200 with a `Base.Success` message.
    OpenBmc,
}

impl Vendor {
    /// `generic`, `dell`, `hpe`, `openbmc`.
    pub fn parse(s: &str) -> Option<Vendor> {
        match s.to_ascii_lowercase().as_str() {
            "generic" => Some(Vendor::Generic),
            "dell" | "idrac" => Some(Vendor::Dell),
            "hpe" | "ilo" => Some(Vendor::Hpe),
            "openbmc" | "bmcweb" => Some(Vendor::OpenBmc),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Vendor::Generic => "generic",
            Vendor::Dell => "dell",
            Vendor::Hpe => "hpe",
            Vendor::OpenBmc => "openbmc",
        }
    }

    /// Reset types this vendor's BMC accepts, in the order it lists them.
    pub fn allowable(self) -> Vec<ResetType> {
        use ResetType::*;
        match self {
            Vendor::Generic => ResetType::ALL.to_vec(),
            Vendor::Dell => vec![
                On,
                ForceOff,
                ForceRestart,
                GracefulShutdown,
                PushPowerButton,
                Nmi,
            ],
            Vendor::Hpe => vec![
                On,
                ForceOff,
                GracefulShutdown,
                ForceRestart,
                Nmi,
                PushPowerButton,
                GracefulRestart,
            ],
            Vendor::OpenBmc => vec![
                On,
                ForceOff,
                ForceOn,
                ForceRestart,
                GracefulRestart,
                GracefulShutdown,
                PowerCycle,
                Nmi,
            ],
        }
    }

    /// Id of system `index` of `count`.
    pub fn system_id(self, index: usize, count: usize) -> String {
        match self {
            Vendor::Generic => system_uuid(index),
            Vendor::Dell => format!("System.Embedded.{}", index + 1),
            Vendor::Hpe => (index + 1).to_string(),
            Vendor::OpenBmc if count == 1 => "system".to_string(),
            Vendor::OpenBmc => format!("host{index}"),
        }
    }

    fn manager_id(self) -> &'static str {
        match self {
            Vendor::Generic => "BMC",
            Vendor::Dell => "iDRAC.Embedded.1",
            Vendor::Hpe => "1",
            Vendor::OpenBmc => "bmc",
        }
    }

    /// ServiceRoot `Vendor`.
    fn vendor_name(self) -> &'static str {
        match self {
            Vendor::Generic => "ironfence",
            Vendor::Dell => "Dell",
            Vendor::Hpe => "HPE",
            Vendor::OpenBmc => "OpenBMC",
        }
    }

    /// ServiceRoot `Product`.
    fn product(self) -> &'static str {
        match self {
            Vendor::Generic => "ironfence Redfish simulator",
            Vendor::Dell => "Integrated Dell Remote Access Controller",
            Vendor::Hpe => "ProLiant DL360 Gen10",
            Vendor::OpenBmc => "OpenBMC",
        }
    }

    fn manufacturer(self) -> &'static str {
        match self {
            Vendor::Generic => "ironfence",
            Vendor::Dell => "Dell Inc.",
            Vendor::Hpe => "HPE",
            Vendor::OpenBmc => "OpenBMC",
        }
    }

    fn model(self) -> &'static str {
        match self {
            Vendor::Generic => "Simulated Server",
            Vendor::Dell => "PowerEdge R650",
            Vendor::Hpe => "ProLiant DL360 Gen10",
            Vendor::OpenBmc => "OpenBMC reference",
        }
    }

    /// Manager `Model`, as the real ones report it (iDRAC 9 names the
    /// server generation, iLO its own generation, bmcweb "OpenBmc").
    fn manager_model(self) -> &'static str {
        match self {
            Vendor::Generic => "ironfence simulated BMC",
            Vendor::Dell => "15G Monolithic",
            Vendor::Hpe => "iLO 5",
            Vendor::OpenBmc => "OpenBmc",
        }
    }

    fn manager_firmware(self) -> &'static str {
        match self {
            Vendor::Generic => "ironfence-sim 1.0",
            Vendor::Dell => "4.40.00.00",
            Vendor::Hpe => "iLO 5 v2.72",
            Vendor::OpenBmc => "2.14.0",
        }
    }

    /// Allowable values inline on the action.
    fn inline_allowable(self) -> bool {
        !matches!(self, Vendor::OpenBmc)
    }

    /// An `@Redfish.ActionInfo` link on the action.
    fn action_info(self) -> bool {
        matches!(self, Vendor::Generic | Vendor::OpenBmc)
    }

    fn serial(self, index: usize) -> String {
        match self {
            Vendor::Dell => format!("SIM{:04}", index + 1),
            Vendor::Hpe => format!("CZJSIM{:04}", index + 1),
            _ => format!("IFSIM-{:04}", index + 1),
        }
    }

    /// `Name` of a system (real BMCs use a fixed word; generic uses the host name).
    fn system_name(self, host_name: &str) -> String {
        match self {
            Vendor::Generic => host_name.to_string(),
            Vendor::Dell => "System".to_string(),
            Vendor::Hpe => "Computer System".to_string(),
            Vendor::OpenBmc => "system".to_string(),
        }
    }
}

impl fmt::Display for Vendor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The stable UUID of system `index` (also the id of generic systems).
pub fn system_uuid(index: usize) -> String {
    format!("5e1f0c2a-7b3d-4e6f-8a9b-{:012x}", index + 1)
}

/// Which credentials the simulator takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// HTTP Basic only; no SessionService (like sushy-tools).
    Basic,
    /// X-Auth-Token sessions only; Basic is refused.
    Session,
    /// Either.
    Both,
}

impl AuthMode {
    /// `basic`, `session`, `both`.
    pub fn parse(s: &str) -> Option<AuthMode> {
        match s {
            "basic" => Some(AuthMode::Basic),
            "session" => Some(AuthMode::Session),
            "both" => Some(AuthMode::Both),
            _ => None,
        }
    }

    fn basic(self) -> bool {
        matches!(self, AuthMode::Basic | AuthMode::Both)
    }

    fn sessions(self) -> bool {
        matches!(self, AuthMode::Session | AuthMode::Both)
    }
}

impl fmt::Display for AuthMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AuthMode::Basic => "basic",
            AuthMode::Session => "session",
            AuthMode::Both => "both",
        })
    }
}

/// One way the simulated BMC misbehaves. Several can be active at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedfishFault {
    /// Clears every fault (as a set: behaves).
    None,
    /// 400 with a Redfish error for this reset type, although it is allowed.
    BadReset(ResetType),
    /// 401 on everything but the open resources (service root), logins too.
    Unauthorized,
    /// 500 with a Redfish error on every reset.
    Error,
    /// Every answer this much later.
    Slow(Duration),
    /// Resets answer 202 with a task; the task (and the power change)
    /// completes this much later.
    Task(Duration),
    /// Accepts ForceOff and GracefulShutdown with success and stays on.
    Lie,
    /// Power changes land this much after the (immediate) success answer,
    /// like sushy-tools' fake driver does.
    Delay(Duration),
}

impl RedfishFault {
    /// `none`, `bad-reset:TYPE`, `unauthorized`, `error`, `slow:MS`,
    /// `task:MS`, `lie`, `delay:MS` (also the [`SimFault`] spellings
    /// `lies` and `refuses`).
    pub fn parse(s: &str) -> Result<RedfishFault, RedfishSimError> {
        let bad = || {
            config_err(format!(
                "fault `{s}` is not one of none, bad-reset:TYPE, unauthorized, error, slow:MS, task:MS, lie, delay:MS"
            ))
        };
        let ms = |v: &str| -> Result<Duration, RedfishSimError> {
            match v.parse::<u64>() {
                Ok(ms) if Duration::from_millis(ms) <= crate::config::MAX_DURATION => {
                    Ok(Duration::from_millis(ms))
                }
                _ => Err(bad()),
            }
        };
        let (kind, arg) = match s.split_once(':') {
            Some((k, a)) => (k, Some(a)),
            None => (s, None),
        };
        match (kind, arg) {
            ("none", None) => Ok(RedfishFault::None),
            ("unauthorized" | "refuse" | "refuses", None) => Ok(RedfishFault::Unauthorized),
            ("error", None) => Ok(RedfishFault::Error),
            ("lie" | "lies", None) => Ok(RedfishFault::Lie),
            ("bad-reset", Some(t)) => {
                ResetType::parse(t)
                    .map(RedfishFault::BadReset)
                    .ok_or_else(|| {
                        config_err(format!(
                            "fault bad-reset:{t}: `{t}` is not a ResetType ({})",
                            join(&ResetType::ALL)
                        ))
                    })
            }
            ("slow", Some(v)) => ms(v).map(RedfishFault::Slow),
            ("task", Some(v)) => ms(v).map(RedfishFault::Task),
            ("delay", Some(v)) => ms(v).map(RedfishFault::Delay),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for RedfishFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedfishFault::None => f.write_str("none"),
            RedfishFault::BadReset(t) => write!(f, "bad-reset:{t}"),
            RedfishFault::Unauthorized => f.write_str("unauthorized"),
            RedfishFault::Error => f.write_str("error"),
            RedfishFault::Slow(d) => write!(f, "slow:{}", d.as_millis()),
            RedfishFault::Task(d) => write!(f, "task:{}", d.as_millis()),
            RedfishFault::Lie => f.write_str("lie"),
            RedfishFault::Delay(d) => write!(f, "delay:{}", d.as_millis()),
        }
    }
}

impl From<SimFault> for RedfishFault {
    /// The fault modes of the other simulators (`slow` waits one second;
    /// `silent` becomes a 60 s `slow`: a client times out first).
    fn from(f: SimFault) -> RedfishFault {
        match f {
            SimFault::None => RedfishFault::None,
            SimFault::Slow => RedfishFault::Slow(Duration::from_secs(1)),
            SimFault::Silent => RedfishFault::Slow(Duration::from_secs(60)),
            SimFault::Refuses => RedfishFault::Unauthorized,
            SimFault::Lies => RedfishFault::Lie,
        }
    }
}

/// The active faults, as a set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Faults {
    bad_reset: Vec<ResetType>,
    unauthorized: bool,
    error: bool,
    slow: Option<Duration>,
    task: Option<Duration>,
    lie: bool,
    delay: Option<Duration>,
}

impl Faults {
    fn from_list(list: &[RedfishFault]) -> Faults {
        let mut f = Faults::default();
        for fault in list {
            match *fault {
                RedfishFault::None => f = Faults::default(),
                RedfishFault::BadReset(t) => {
                    if !f.bad_reset.contains(&t) {
                        f.bad_reset.push(t)
                    }
                }
                RedfishFault::Unauthorized => f.unauthorized = true,
                RedfishFault::Error => f.error = true,
                RedfishFault::Slow(d) => f.slow = Some(d),
                RedfishFault::Task(d) => f.task = Some(d),
                RedfishFault::Lie => f.lie = true,
                RedfishFault::Delay(d) => f.delay = Some(d),
            }
        }
        f
    }

    fn to_list(&self) -> Vec<RedfishFault> {
        let mut out: Vec<RedfishFault> = self
            .bad_reset
            .iter()
            .map(|t| RedfishFault::BadReset(*t))
            .collect();
        if self.unauthorized {
            out.push(RedfishFault::Unauthorized);
        }
        if self.error {
            out.push(RedfishFault::Error);
        }
        out.extend(self.slow.map(RedfishFault::Slow));
        out.extend(self.task.map(RedfishFault::Task));
        if self.lie {
            out.push(RedfishFault::Lie);
        }
        out.extend(self.delay.map(RedfishFault::Delay));
        out
    }
}

/// `none`, or the faults joined with `,`.
pub fn describe_faults(list: &[RedfishFault]) -> String {
    let list = Faults::from_list(list).to_list();
    if list.is_empty() {
        "none".to_string()
    } else {
        join(&list)
    }
}

fn join<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

// ---------------------------------------------------------------------------
// configuration

/// An account of the simulated BMC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedfishUser {
    pub name: String,
    pub password: Secret,
}

impl RedfishUser {
    pub fn new(name: &str, password: &str) -> RedfishUser {
        RedfishUser {
            name: name.to_string(),
            password: Secret::new(password),
        }
    }

    /// `NAME:PASSWORD` (the password may contain `:`).
    pub fn parse(spec: &str) -> Result<RedfishUser, RedfishSimError> {
        match spec.split_once(':') {
            Some((name, password)) if !name.is_empty() => Ok(RedfishUser::new(name, password)),
            _ => Err(config_err(format!(
                "user `{}` is not NAME:PASSWORD",
                spec.split_once(':').map_or(spec, |(n, _)| n)
            ))),
        }
    }
}

/// One machine behind the simulated BMC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimSystem {
    /// Its id in URIs (`/redfish/v1/Systems/{id}`) and its key in the state file.
    pub id: String,
    /// `HostName`.
    pub host_name: String,
    /// `Name`.
    pub name: String,
    pub serial_number: String,
    pub uuid: String,
}

/// `count` systems as `vendor` would number them, host names `ctrl-0`...
pub fn default_systems(vendor: Vendor, count: usize) -> Vec<SimSystem> {
    let names: Vec<String> = (0..count).map(|i| format!("ctrl-{i}")).collect();
    named_systems(vendor, &names)
}

/// One system per host name, ids as `vendor` numbers them.
pub fn named_systems(vendor: Vendor, host_names: &[String]) -> Vec<SimSystem> {
    let count = host_names.len();
    host_names
        .iter()
        .enumerate()
        .map(|(i, host)| SimSystem {
            id: vendor.system_id(i, count),
            host_name: host.clone(),
            name: vendor.system_name(host),
            serial_number: vendor.serial(i),
            uuid: system_uuid(i),
        })
        .collect()
}

/// How the simulator speaks TLS.
#[derive(Debug, Clone)]
pub enum TlsMode {
    /// A fresh self-signed certificate for 127.0.0.1 and localhost.
    Generate,
    /// This certificate chain and private key (PEM text).
    Pem { cert_pem: String, key_pem: Secret },
    /// Plain HTTP (only when asked for).
    Plain,
}

/// Everything about one simulated Redfish BMC.
#[derive(Debug, Clone)]
pub struct RedfishSimConfig {
    pub listen: SocketAddr,
    pub users: Vec<RedfishUser>,
    pub vendor: Vendor,
    pub systems: Vec<SimSystem>,
    /// Reset types accepted; `None`: the vendor's list.
    pub allowable: Option<Vec<ResetType>>,
    pub tls: TlsMode,
    pub auth: AuthMode,
    /// JSON power state shared with other simulators (`None` = memory).
    pub state_file: Option<PathBuf>,
    /// Power of a system the state file does not know.
    pub initially_on: bool,
    pub faults: Vec<RedfishFault>,
    /// How long a restart or power cycle keeps a machine off.
    pub cycle_off: Duration,
    pub max_sessions: usize,
}

impl RedfishSimConfig {
    /// A well-behaved generic BMC on `listen` with `users` and one system,
    /// TLS with a generated certificate, Basic and session auth, powered on,
    /// state in memory.
    pub fn new(listen: SocketAddr, users: Vec<RedfishUser>) -> RedfishSimConfig {
        RedfishSimConfig {
            listen,
            users,
            vendor: Vendor::Generic,
            systems: default_systems(Vendor::Generic, 1),
            allowable: None,
            tls: TlsMode::Generate,
            auth: AuthMode::Both,
            state_file: None,
            initially_on: true,
            faults: Vec::new(),
            cycle_off: DEFAULT_CYCLE_OFF,
            max_sessions: DEFAULT_MAX_SESSIONS,
        }
    }

    /// Switch to `vendor` with `count` systems numbered its way.
    pub fn with_vendor(mut self, vendor: Vendor, count: usize) -> RedfishSimConfig {
        self.vendor = vendor;
        self.systems = default_systems(vendor, count);
        self
    }

    /// The reset types accepted.
    pub fn allowable(&self) -> Vec<ResetType> {
        self.allowable
            .clone()
            .unwrap_or_else(|| self.vendor.allowable())
    }

    /// Checks every setting; the server runs only on a checked config.
    pub fn validate(&self) -> Result<(), RedfishSimError> {
        if self.users.is_empty() {
            return Err(config_err("at least one user is needed"));
        }
        for (i, u) in self.users.iter().enumerate() {
            if u.name.is_empty() {
                return Err(config_err("a user name is empty"));
            }
            if self.users[..i].iter().any(|o| o.name == u.name) {
                return Err(config_err(format!("user `{}` is given twice", u.name)));
            }
        }
        if self.systems.is_empty() || self.systems.len() > MAX_SYSTEMS {
            return Err(config_err(format!(
                "{} systems: 1 to {MAX_SYSTEMS} are possible",
                self.systems.len()
            )));
        }
        for (i, s) in self.systems.iter().enumerate() {
            let id_ok = !s.id.is_empty()
                && s.id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
            if !id_ok {
                return Err(config_err(format!(
                    "system id `{}` must be letters, digits, `.`, `_` or `-`",
                    s.id
                )));
            }
            if self.systems[..i].iter().any(|o| o.id == s.id) {
                return Err(config_err(format!("system id `{}` is given twice", s.id)));
            }
        }
        if self.allowable().is_empty() {
            return Err(config_err("at least one reset type must be allowed"));
        }
        if self.max_sessions == 0 {
            return Err(config_err("max_sessions must be at least 1"));
        }
        if self.cycle_off > crate::config::MAX_DURATION {
            return Err(config_err("cycle_off is longer than a week"));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// statistics

/// A snapshot of what the simulator did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedfishSimStats {
    /// HTTP requests answered (or being answered).
    pub requests: u64,
    /// Requests by what they asked for (`service_root`, `systems`, `system`,
    /// `reset`, `action_info`, `managers`, `manager`, `session_service`,
    /// `sessions`, `session`, `login`, `logout`, `task_service`, `tasks`,
    /// `task`, `task_monitor`, `versions`, `not_found`, `method_not_allowed`).
    pub requests_by_kind: BTreeMap<String, u64>,
    /// Reset actions received with a known ResetType.
    pub resets: u64,
    /// Those, by ResetType.
    pub resets_by_type: BTreeMap<String, u64>,
    /// Reset actions answered with a 4xx (bad body, type not allowed, fault
    /// `bad-reset`, wrong power state for `hpe`).
    pub resets_refused: u64,
    /// Reset actions answered with a 5xx (fault `error`).
    pub resets_failed: u64,
    /// Resets accepted and not carried out (fault `lie`).
    pub lies: u64,
    /// Tasks created (fault `task`) and completed.
    pub tasks_created: u64,
    pub tasks_completed: u64,
    /// Power state transitions carried out (a restart is two).
    pub power_changes: u64,
    pub sessions_created: u64,
    pub sessions_deleted: u64,
    /// Sessions open now.
    pub active_sessions: u64,
    /// Requests refused for missing or wrong credentials (logins included).
    pub auth_failures: u64,
    /// Requests answered 400 for a malformed body.
    pub bad_requests: u64,
}

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    resets: AtomicU64,
    resets_refused: AtomicU64,
    resets_failed: AtomicU64,
    lies: AtomicU64,
    tasks_created: AtomicU64,
    tasks_completed: AtomicU64,
    power_changes: AtomicU64,
    sessions_created: AtomicU64,
    sessions_deleted: AtomicU64,
    auth_failures: AtomicU64,
    bad_requests: AtomicU64,
    by_kind: Mutex<BTreeMap<&'static str, u64>>,
    by_type: Mutex<BTreeMap<&'static str, u64>>,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Locks `m`, also after a panic elsewhere (the data are counters and
/// tables that stay consistent at every step).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Counters {
    fn kind(&self, kind: &'static str) {
        *lock(&self.by_kind).entry(kind).or_insert(0) += 1;
    }

    fn reset_type(&self, t: ResetType) {
        bump(&self.resets);
        *lock(&self.by_type).entry(t.as_str()).or_insert(0) += 1;
    }

    fn snapshot(&self, active_sessions: usize) -> RedfishSimStats {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let owned = |m: &Mutex<BTreeMap<&'static str, u64>>| {
            lock(m)
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect::<BTreeMap<String, u64>>()
        };
        RedfishSimStats {
            requests: g(&self.requests),
            requests_by_kind: owned(&self.by_kind),
            resets: g(&self.resets),
            resets_by_type: owned(&self.by_type),
            resets_refused: g(&self.resets_refused),
            resets_failed: g(&self.resets_failed),
            lies: g(&self.lies),
            tasks_created: g(&self.tasks_created),
            tasks_completed: g(&self.tasks_completed),
            power_changes: g(&self.power_changes),
            sessions_created: g(&self.sessions_created),
            sessions_deleted: g(&self.sessions_deleted),
            active_sessions: active_sessions as u64,
            auth_failures: g(&self.auth_failures),
            bad_requests: g(&self.bad_requests),
        }
    }
}

// ---------------------------------------------------------------------------
// shared state

#[derive(Debug)]
struct SessionEntry {
    token: String,
    user: String,
}

#[derive(Debug, Default)]
struct Sessions {
    by_id: BTreeMap<String, SessionEntry>,
    next: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TaskState {
    Running,
    Completed,
    Cancelled,
    Exception,
}

impl TaskState {
    fn as_str(self) -> &'static str {
        match self {
            TaskState::Running => "Running",
            TaskState::Completed => "Completed",
            TaskState::Cancelled => "Cancelled",
            TaskState::Exception => "Exception",
        }
    }
}

#[derive(Debug, Clone)]
struct TaskEntry {
    system: String,
    reset: ResetType,
    state: TaskState,
    started: SystemTime,
    ended: Option<SystemTime>,
}

#[derive(Debug, Default)]
struct Tasks {
    by_id: BTreeMap<u64, TaskEntry>,
    next: u64,
}

/// Everything the connections share. Immutable settings, plus small tables
/// each behind its own lock (never two held at once).
struct Shared {
    users: Vec<RedfishUser>,
    vendor: Vendor,
    systems: Vec<SimSystem>,
    allowable: Vec<ResetType>,
    auth: AuthMode,
    cycle_off: Duration,
    max_sessions: usize,
    service_uuid: String,
    faults: Mutex<Faults>,
    power: SimBmc,
    counters: Counters,
    sessions: Mutex<Sessions>,
    tasks: Mutex<Tasks>,
    /// Per system: bumped by every accepted reset, so that power changes
    /// still pending from an older one are dropped.
    generations: Mutex<HashMap<String, u64>>,
    shutdown: watch::Receiver<bool>,
}

impl Shared {
    fn new(cfg: &RedfishSimConfig, shutdown: watch::Receiver<bool>) -> Shared {
        let ids: Vec<String> = cfg.systems.iter().map(|s| s.id.clone()).collect();
        Shared {
            users: cfg.users.clone(),
            vendor: cfg.vendor,
            systems: cfg.systems.clone(),
            allowable: cfg.allowable(),
            auth: cfg.auth,
            cycle_off: cfg.cycle_off,
            max_sessions: cfg.max_sessions,
            service_uuid: random_uuid(),
            faults: Mutex::new(Faults::from_list(&cfg.faults)),
            power: SimBmc::new(
                &format!("redfish-sim {}", cfg.listen),
                SimFault::None,
                Duration::ZERO,
                cfg.initially_on,
                ids,
                cfg.state_file.clone(),
            ),
            counters: Counters::default(),
            sessions: Mutex::new(Sessions::default()),
            tasks: Mutex::new(Tasks::default()),
            generations: Mutex::new(HashMap::new()),
            shutdown,
        }
    }

    fn faults(&self) -> Faults {
        lock(&self.faults).clone()
    }

    fn system(&self, id: &str) -> Option<&SimSystem> {
        self.systems.iter().find(|s| s.id == id)
    }

    fn stats(&self) -> RedfishSimStats {
        let active = lock(&self.sessions).by_id.len();
        self.counters.snapshot(active)
    }
}

fn random_uuid() -> String {
    let b: [u8; 16] = rand::random();
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-4{}-a{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        &hex[17..20],
        &hex[20..32]
    )
}

fn random_token() -> String {
    let b: [u8; 24] = rand::random();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Resolves when shutdown is asked for (or nobody can ask any more).
async fn stopped(rx: &mut watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

// ---------------------------------------------------------------------------
// the server

/// A running simulated Redfish BMC. Stops on [`RedfishSimServer::shutdown`]
/// or when dropped.
pub struct RedfishSimServer {
    addr: SocketAddr,
    tls: bool,
    cert_pem: Option<String>,
    fingerprint: Option<String>,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl RedfishSimServer {
    /// Validate `cfg`, set up TLS, bind the TCP socket and start answering.
    pub async fn start(cfg: RedfishSimConfig) -> Result<RedfishSimServer, RedfishSimError> {
        cfg.validate()?;
        let tls = tls_setup(&cfg.tls)?;
        let listener = TcpListener::bind(cfg.listen)
            .await
            .map_err(|e| RedfishSimError::Bind {
                addr: cfg.listen,
                detail: e.to_string(),
            })?;
        let addr = listener.local_addr().map_err(|e| RedfishSimError::Bind {
            addr: cfg.listen,
            detail: e.to_string(),
        })?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let shared = Arc::new(Shared::new(&cfg, shutdown_rx.clone()));
        // A state file that cannot be used is a set-up error, not a runtime one.
        for s in &cfg.systems {
            shared
                .power
                .peek(&s.id)
                .map_err(|e| config_err(e.to_string()))?;
        }
        let (acceptor, cert_pem, fingerprint) = match tls {
            Some(t) => (Some(t.acceptor), Some(t.cert_pem), Some(t.fingerprint)),
            None => (None, None, None),
        };
        let is_tls = acceptor.is_some();
        let task = tokio::spawn(accept_loop(listener, acceptor, shared.clone(), shutdown_rx));
        tracing::info!(%addr, tls = is_tls, vendor = %cfg.vendor, "Redfish simulator listening");
        Ok(RedfishSimServer {
            addr,
            tls: is_tls,
            cert_pem,
            fingerprint,
            shared,
            shutdown,
            task: Some(task),
        })
    }

    /// The address it listens on (the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://ADDR` (or `http://ADDR`), without a trailing slash.
    pub fn base_url(&self) -> String {
        format!(
            "{}://{}",
            if self.tls { "https" } else { "http" },
            self.addr
        )
    }

    /// The certificate it presents, PEM (`None` for plain HTTP).
    pub fn cert_pem(&self) -> Option<&str> {
        self.cert_pem.as_deref()
    }

    /// SHA-256 of that certificate (DER), upper-case hex pairs joined by `:`
    /// as `openssl x509 -fingerprint -sha256` prints it.
    pub fn cert_sha256_fingerprint(&self) -> Option<&str> {
        self.fingerprint.as_deref()
    }

    /// Ids of the simulated systems, in collection order.
    pub fn system_ids(&self) -> Vec<String> {
        self.shared.systems.iter().map(|s| s.id.clone()).collect()
    }

    /// What it did so far.
    pub fn stats(&self) -> RedfishSimStats {
        self.shared.stats()
    }

    /// Replace every active fault by `fault` (`RedfishFault::None`: behave).
    pub fn set_fault(&self, fault: RedfishFault) {
        self.set_faults(&[fault]);
    }

    /// Replace every active fault by `faults`.
    pub fn set_faults(&self, faults: &[RedfishFault]) {
        *lock(&self.shared.faults) = Faults::from_list(faults);
    }

    /// The faults active now.
    pub fn faults(&self) -> Vec<RedfishFault> {
        self.shared.faults().to_list()
    }

    /// Power of system `id` (not counted as a request).
    pub fn power(&self, id: &str) -> Result<SimPower, super::SimError> {
        self.shared.power.peek(id)
    }

    /// Stop answering, let open connections finish (briefly), and wait for
    /// the server task to end.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RedfishSimServer {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

/// One line saying what runs: for logs and the CLI's start line.
pub fn describe(cfg: &RedfishSimConfig, server: &RedfishSimServer) -> String {
    let users: Vec<&str> = cfg.users.iter().map(|u| u.name.as_str()).collect();
    format!(
        "redfish sim listening on {} systems {} vendor {} auth {} users {} fault {} fingerprint {}",
        server.base_url(),
        server.system_ids().join(","),
        cfg.vendor,
        cfg.auth,
        users.join(","),
        describe_faults(&cfg.faults),
        server.cert_sha256_fingerprint().unwrap_or("none"),
    )
}

struct TlsReady {
    acceptor: tokio_rustls::TlsAcceptor,
    cert_pem: String,
    fingerprint: String,
}

fn tls_setup(mode: &TlsMode) -> Result<Option<TlsReady>, RedfishSimError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    let tls_err = |e: &dyn fmt::Display| RedfishSimError::Tls(e.to_string());
    let (chain, key, cert_pem): (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>, String) =
        match mode {
            TlsMode::Plain => return Ok(None),
            TlsMode::Generate => {
                let mut params = rcgen::CertificateParams::new(vec![
                    "127.0.0.1".to_string(),
                    "localhost".to_string(),
                ])
                .map_err(|e| tls_err(&e))?;
                params
                    .distinguished_name
                    .push(rcgen::DnType::CommonName, "127.0.0.1");
                params.distinguished_name.push(
                    rcgen::DnType::OrganizationName,
                    "ironfence Redfish simulator",
                );
                let key_pair = rcgen::KeyPair::generate().map_err(|e| tls_err(&e))?;
                let cert = params.self_signed(&key_pair).map_err(|e| tls_err(&e))?;
                let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_pair.serialize_der()));
                (vec![cert.der().clone()], key, cert.pem())
            }
            TlsMode::Pem { cert_pem, key_pem } => {
                let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| RedfishSimError::Tls(format!("certificate: {e}")))?;
                if chain.is_empty() {
                    return Err(RedfishSimError::Tls(
                        "no CERTIFICATE block in the certificate PEM".into(),
                    ));
                }
                let key = PrivateKeyDer::from_pem_slice(key_pem.expose().as_bytes())
                    .map_err(|e| RedfishSimError::Tls(format!("private key: {e}")))?;
                (chain, key, cert_pem.clone())
            }
        };
    let fingerprint = sha256_fingerprint(&chain[0]);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(&e))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| tls_err(&e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(TlsReady {
        acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        cert_pem,
        fingerprint,
    }))
}

/// `AB:CD:...` of the SHA-256 of `der`.
fn sha256_fingerprint(der: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Owns the listener; one task per connection, all stopped on shutdown.
async fn accept_loop(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = stopped(&mut shutdown) => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            r = listener.accept() => {
                let (tcp, peer) = match r {
                    Ok(v) => v,
                    Err(e) => {
                        tracing::debug!(cause = %e, "Redfish simulator: accept failed");
                        // e.g. out of file descriptors: do not spin
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let shared = shared.clone();
                let stop = shutdown.clone();
                let tls = tls.clone();
                conns.spawn(async move {
                    match tls {
                        None => serve_connection(tcp, shared, stop).await,
                        Some(acceptor) => {
                            let mut stop2 = stop.clone();
                            let handshake = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp));
                            tokio::select! {
                                _ = stopped(&mut stop2) => {}
                                r = handshake => match r {
                                    Ok(Ok(stream)) => serve_connection(stream, shared, stop).await,
                                    Ok(Err(e)) => tracing::debug!(%peer, cause = %e, "Redfish simulator: TLS handshake failed"),
                                    Err(_) => tracing::debug!(%peer, "Redfish simulator: TLS handshake timed out"),
                                }
                            }
                        }
                    }
                });
            }
        }
    }
    drop(listener);
    // Let answers in flight finish, then cut the rest.
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        conns.abort_all();
        while conns.join_next().await.is_some() {}
    }
    tracing::info!("Redfish simulator stopped");
}

/// HTTP/1.1 on one connection until the peer closes it or shutdown.
async fn serve_connection<IO>(io: IO, shared: Arc<Shared>, mut stop: watch::Receiver<bool>)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(handle(shared, req).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(cause = %e, "Redfish simulator: connection ended with an error");
            }
        }
        _ = stopped(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(DRAIN_TIMEOUT, conn).await;
        }
    }
}

// ---------------------------------------------------------------------------
// requests and answers

/// A request, read whole (bodies are small).
#[derive(Debug, Clone)]
struct SimRequest {
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

/// An answer before it becomes an HTTP response.
#[derive(Debug, Clone)]
struct SimResponse {
    status: StatusCode,
    headers: Vec<(HeaderName, String)>,
    body: Option<Value>,
}

impl SimResponse {
    fn json(status: StatusCode, body: Value) -> SimResponse {
        SimResponse {
            status,
            headers: Vec::new(),
            body: Some(body),
        }
    }

    fn ok(body: Value) -> SimResponse {
        SimResponse::json(StatusCode::OK, body)
    }

    fn empty(status: StatusCode) -> SimResponse {
        SimResponse {
            status,
            headers: Vec::new(),
            body: None,
        }
    }

    fn header(mut self, name: HeaderName, value: impl Into<String>) -> SimResponse {
        self.headers.push((name, value.into()));
        self
    }

    fn into_hyper(self) -> Response<Full<Bytes>> {
        let body = match &self.body {
            Some(v) => Bytes::from(serde_json::to_vec_pretty(v).unwrap_or_default()),
            None => Bytes::new(),
        };
        let mut resp = Response::new(Full::new(body));
        *resp.status_mut() = self.status;
        let h = resp.headers_mut();
        if self.body.is_some() {
            h.insert(
                hyper::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json; charset=utf-8"),
            );
        }
        h.insert(
            HeaderName::from_static("odata-version"),
            HeaderValue::from_static("4.0"),
        );
        h.insert(
            hyper::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        );
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                h.append(name, v);
            }
        }
        resp
    }
}

/// A Redfish error body (`{"error": {"code", "message", "@Message.ExtendedInfo"}}`).
fn redfish_error(
    status: StatusCode,
    message_id: &str,
    message: &str,
    args: &[&str],
    resolution: &str,
) -> SimResponse {
    let severity = if status.is_server_error() {
        "Critical"
    } else {
        "Warning"
    };
    SimResponse::json(
        status,
        json!({
            "error": {
                "code": message_id,
                "message": message,
                "@Message.ExtendedInfo": [{
                    "@odata.type": "#Message.v1_1_1.Message",
                    "MessageId": message_id,
                    "Message": message,
                    "MessageArgs": args,
                    "Severity": severity,
                    "MessageSeverity": severity,
                    "Resolution": resolution,
                }]
            }
        }),
    )
}

fn not_found(path: &str) -> SimResponse {
    redfish_error(
        StatusCode::NOT_FOUND,
        &format!("{BASE}.ResourceMissingAtURI"),
        &format!("The resource at the URI {path} was not found."),
        &[path],
        "Place a valid resource at the URI or correct the URI and resubmit the request.",
    )
}

fn method_not_allowed(method: &Method, path: &str, allow: &str) -> SimResponse {
    redfish_error(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!("{BASE}.OperationNotAllowed"),
        &format!("The {method} method is not allowed on {path}."),
        &[method.as_str(), path],
        &format!("Use one of: {allow}."),
    )
    .header(hyper::header::ALLOW, allow)
}

fn malformed_json(detail: &str) -> SimResponse {
    redfish_error(
        StatusCode::BAD_REQUEST,
        &format!("{BASE}.MalformedJSON"),
        &format!("The request body submitted was malformed JSON and could not be parsed by the receiving service: {detail}"),
        &[],
        "Ensure that the request body is valid JSON and resubmit the request.",
    )
}

/// Read the request whole (at most [`MAX_BODY`] bytes), then answer it.
async fn handle(shared: Arc<Shared>, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => {
            bump(&shared.counters.requests);
            bump(&shared.counters.bad_requests);
            let too_big = e
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some();
            let resp = if too_big {
                redfish_error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!("{BASE}.GeneralError"),
                    &format!("The request body is larger than {MAX_BODY} bytes."),
                    &[],
                    "Send a smaller request body.",
                )
            } else {
                redfish_error(
                    StatusCode::BAD_REQUEST,
                    &format!("{BASE}.GeneralError"),
                    &format!("The request body could not be read: {e}"),
                    &[],
                    "Resubmit the request.",
                )
            };
            return resp.into_hyper();
        }
    };
    let req = SimRequest {
        method: parts.method,
        path,
        headers: parts.headers,
        body,
    };
    respond(&shared, req).await.into_hyper()
}

/// The whole of the simulator's behaviour for one request.
async fn respond(shared: &Arc<Shared>, req: SimRequest) -> SimResponse {
    bump(&shared.counters.requests);
    if let Some(delay) = shared.faults().slow {
        let mut stop = shared.shutdown.clone();
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stopped(&mut stop) => {
                return redfish_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!("{BASE}.ServiceShuttingDown"),
                    "The operation failed because the service is shutting down.",
                    &[],
                    "None.",
                );
            }
        }
    }
    let trimmed = req.path.trim_end_matches('/');
    let segs: Vec<&str> = trimmed.split('/').skip(1).collect();
    let route = Route::of(&segs);
    let (allow, open) = route.allow(shared.auth);
    if allow.is_empty() {
        shared.counters.kind(Route::NotFound.kind());
        return not_found(&req.path);
    }
    if !allow.split(", ").any(|m| m == req.method.as_str()) {
        shared.counters.kind("method_not_allowed");
        return method_not_allowed(&req.method, &req.path, allow);
    }
    shared.counters.kind(route.kind());
    let open = open || (route == Route::Sessions && req.method == Method::POST);
    let user = if open {
        None
    } else {
        match authenticate(shared, &req.headers) {
            Ok(user) => Some(user),
            Err(resp) => return resp,
        }
    };
    match route {
        Route::Versions => SimResponse::ok(json!({ "v1": "/redfish/v1/" })),
        Route::ServiceRoot => SimResponse::ok(service_root(shared)),
        Route::Systems => SimResponse::ok(collection(
            "#ComputerSystemCollection.ComputerSystemCollection",
            "/redfish/v1/Systems",
            "Computer System Collection",
            shared
                .systems
                .iter()
                .map(|s| format!("/redfish/v1/Systems/{}", s.id)),
        )),
        Route::System(id) => match shared.system(id) {
            None => not_found(&req.path),
            Some(sys) => match shared.power.status(&sys.id).await {
                Ok(power) => SimResponse::ok(system_json(shared, sys, power)),
                Err(e) => internal_error(&e.to_string()),
            },
        },
        Route::ResetActionInfo(id) => match shared.system(id) {
            None => not_found(&req.path),
            Some(sys) => SimResponse::ok(reset_action_info(shared, sys)),
        },
        Route::Reset(id) => match shared.system(id) {
            None => not_found(&req.path),
            Some(sys) => reset(shared, sys, &req.body).await,
        },
        Route::Managers => SimResponse::ok(collection(
            "#ManagerCollection.ManagerCollection",
            "/redfish/v1/Managers",
            "Manager Collection",
            std::iter::once(format!(
                "/redfish/v1/Managers/{}",
                shared.vendor.manager_id()
            )),
        )),
        Route::Manager(id) if id == shared.vendor.manager_id() => {
            SimResponse::ok(manager_json(shared))
        }
        Route::Manager(_) => not_found(&req.path),
        Route::SessionService => SimResponse::ok(json!({
            "@odata.type": "#SessionService.v1_1_8.SessionService",
            "@odata.id": "/redfish/v1/SessionService",
            "Id": "SessionService",
            "Name": "Session Service",
            "Description": "Session Service",
            "ServiceEnabled": true,
            "SessionTimeout": SESSION_TIMEOUT_S,
            "Status": { "State": "Enabled", "Health": "OK" },
            "Sessions": { "@odata.id": "/redfish/v1/SessionService/Sessions" },
        })),
        Route::Sessions if req.method == Method::POST => login(shared, &req.body),
        Route::Sessions => {
            let ids: Vec<String> = lock(&shared.sessions).by_id.keys().cloned().collect();
            SimResponse::ok(collection(
                "#SessionCollection.SessionCollection",
                "/redfish/v1/SessionService/Sessions",
                "Session Collection",
                ids.iter()
                    .map(|id| format!("/redfish/v1/SessionService/Sessions/{id}")),
            ))
        }
        Route::Session(id) if req.method == Method::DELETE => {
            let removed = lock(&shared.sessions).by_id.remove(id);
            match removed {
                Some(entry) => {
                    bump(&shared.counters.sessions_deleted);
                    tracing::debug!(session = id, user = %entry.user, by = ?user, "Redfish simulator: session deleted");
                    SimResponse::empty(StatusCode::NO_CONTENT)
                }
                None => not_found(&req.path),
            }
        }
        Route::Session(id) => {
            let name = lock(&shared.sessions).by_id.get(id).map(|e| e.user.clone());
            match name {
                Some(name) => SimResponse::ok(session_json(id, &name)),
                None => not_found(&req.path),
            }
        }
        Route::TaskService => SimResponse::ok(json!({
            "@odata.type": "#TaskService.v1_1_4.TaskService",
            "@odata.id": "/redfish/v1/TaskService",
            "Id": "TaskService",
            "Name": "Task Service",
            "ServiceEnabled": true,
            "CompletedTaskOverWritePolicy": "Oldest",
            "Status": { "State": "Enabled", "Health": "OK" },
            "Tasks": { "@odata.id": "/redfish/v1/TaskService/Tasks" },
        })),
        Route::Tasks => {
            let ids: Vec<u64> = lock(&shared.tasks).by_id.keys().copied().collect();
            SimResponse::ok(collection(
                "#TaskCollection.TaskCollection",
                "/redfish/v1/TaskService/Tasks",
                "Task Collection",
                ids.iter()
                    .map(|n| format!("/redfish/v1/TaskService/Tasks/{n}")),
            ))
        }
        Route::Task(n) => match task_entry(shared, n) {
            Some(t) => SimResponse::ok(task_json(n, &t)),
            None => not_found(&req.path),
        },
        Route::TaskMonitor(n) => match task_entry(shared, n) {
            // DSP0266: 202 while the task runs, then the operation's own answer.
            Some(t) if t.state == TaskState::Running => {
                SimResponse::json(StatusCode::ACCEPTED, task_json(n, &t))
                    .header(hyper::header::LOCATION, task_monitor_uri(n))
            }
            Some(t) if t.state == TaskState::Completed => {
                SimResponse::empty(StatusCode::NO_CONTENT)
            }
            Some(t) => SimResponse::ok(task_json(n, &t)),
            None => not_found(&req.path),
        },
        Route::NotFound => not_found(&req.path),
    }
}

/// What a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route<'a> {
    Versions,
    ServiceRoot,
    Systems,
    System(&'a str),
    ResetActionInfo(&'a str),
    Reset(&'a str),
    Managers,
    Manager(&'a str),
    SessionService,
    Sessions,
    Session(&'a str),
    TaskService,
    Tasks,
    Task(u64),
    TaskMonitor(u64),
    NotFound,
}

impl<'a> Route<'a> {
    fn of(segs: &[&'a str]) -> Route<'a> {
        let task_id = |s: &str| s.parse::<u64>().ok();
        match segs {
            ["redfish"] => Route::Versions,
            ["redfish", "v1"] => Route::ServiceRoot,
            ["redfish", "v1", "Systems"] => Route::Systems,
            ["redfish", "v1", "Systems", id] => Route::System(id),
            ["redfish", "v1", "Systems", id, "ResetActionInfo"] => Route::ResetActionInfo(id),
            ["redfish", "v1", "Systems", id, "Actions", "ComputerSystem.Reset"] => Route::Reset(id),
            ["redfish", "v1", "Managers"] => Route::Managers,
            ["redfish", "v1", "Managers", id] => Route::Manager(id),
            ["redfish", "v1", "SessionService"] => Route::SessionService,
            ["redfish", "v1", "SessionService", "Sessions"] => Route::Sessions,
            ["redfish", "v1", "SessionService", "Sessions", id] => Route::Session(id),
            ["redfish", "v1", "TaskService"] => Route::TaskService,
            ["redfish", "v1", "TaskService", "Tasks"] => Route::Tasks,
            ["redfish", "v1", "TaskService", "Tasks", n] => {
                task_id(n).map_or(Route::NotFound, Route::Task)
            }
            ["redfish", "v1", "TaskService", "Tasks", n, "Monitor"] => {
                task_id(n).map_or(Route::NotFound, Route::TaskMonitor)
            }
            _ => Route::NotFound,
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Route::Versions => "versions",
            Route::ServiceRoot => "service_root",
            Route::Systems => "systems",
            Route::System(_) => "system",
            Route::ResetActionInfo(_) => "action_info",
            Route::Reset(_) => "reset",
            Route::Managers => "managers",
            Route::Manager(_) => "manager",
            Route::SessionService => "session_service",
            Route::Sessions => "sessions",
            Route::Session(_) => "session",
            Route::TaskService => "task_service",
            Route::Tasks => "tasks",
            Route::Task(_) => "task",
            Route::TaskMonitor(_) => "task_monitor",
            Route::NotFound => "not_found",
        }
    }

    /// Methods answered (as for an `Allow` header), and whether the
    /// resource is open (no credentials needed).
    fn allow(self, auth: AuthMode) -> (&'static str, bool) {
        match self {
            Route::Versions | Route::ServiceRoot => ("GET", true),
            Route::SessionService | Route::Sessions | Route::Session(_) if !auth.sessions() => {
                ("", false)
            }
            Route::Sessions => ("GET, POST", false),
            Route::Session(_) => ("GET, DELETE", false),
            Route::Reset(_) => ("POST", false),
            Route::NotFound => ("", false),
            _ => ("GET", false),
        }
    }
}

fn internal_error(detail: &str) -> SimResponse {
    redfish_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        &format!("{BASE}.InternalError"),
        &format!("The request failed due to an internal service error: {detail}"),
        &[],
        "Resubmit the request. If the problem persists, consider resetting the service.",
    )
}

/// Who sent the request, or the 401 to answer.
fn authenticate(shared: &Shared, headers: &HeaderMap) -> Result<String, SimResponse> {
    let refuse = |why: &str| {
        bump(&shared.counters.auth_failures);
        tracing::debug!(why, "Redfish simulator: request refused");
        let mut resp = redfish_error(
            StatusCode::UNAUTHORIZED,
            &format!("{BASE}.NoValidSession"),
            "There is no valid session established with the implementation.",
            &[],
            "Establish a session before attempting any operations.",
        );
        if shared.auth.basic() {
            resp = resp.header(
                hyper::header::WWW_AUTHENTICATE,
                "Basic realm=\"ironfence Redfish simulator\"",
            );
        }
        resp
    };
    if shared.faults().unauthorized {
        return Err(refuse("fault unauthorized"));
    }
    if let Some(token) = headers.get("x-auth-token") {
        if !shared.auth.sessions() {
            return Err(refuse("X-Auth-Token, but sessions are off"));
        }
        let token = token.to_str().unwrap_or("");
        let sessions = lock(&shared.sessions);
        return match sessions.by_id.values().find(|s| s.token == token) {
            Some(s) => Ok(s.user.clone()),
            None => Err(refuse("unknown session token")),
        };
    }
    if let Some(value) = headers.get(hyper::header::AUTHORIZATION) {
        if !shared.auth.basic() {
            return Err(refuse("Basic auth, but only sessions are on"));
        }
        let value = value.to_str().unwrap_or("");
        let Some((scheme, b64)) = value.trim().split_once(' ') else {
            return Err(refuse("Authorization header without a scheme"));
        };
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err(refuse("Authorization scheme is not Basic"));
        }
        let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) else {
            return Err(refuse("Basic credentials are not base64"));
        };
        let text = String::from_utf8_lossy(&raw);
        let Some((name, password)) = text.split_once(':') else {
            return Err(refuse("Basic credentials without `:`"));
        };
        return match check_user(shared, name, password) {
            Some(user) => Ok(user),
            None => Err(refuse("wrong user name or password")),
        };
    }
    Err(refuse("no credentials"))
}

fn check_user(shared: &Shared, name: &str, password: &str) -> Option<String> {
    shared
        .users
        .iter()
        .find(|u| u.name == name && u.password.expose() == password)
        .map(|u| u.name.clone())
}

fn login(shared: &Arc<Shared>, body: &[u8]) -> SimResponse {
    let v: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            bump(&shared.counters.bad_requests);
            return malformed_json(&e.to_string());
        }
    };
    let field = |name: &str| v.get(name).and_then(Value::as_str).map(str::to_string);
    let (Some(name), Some(password)) = (field("UserName"), field("Password")) else {
        bump(&shared.counters.bad_requests);
        let missing = if field("UserName").is_none() {
            "UserName"
        } else {
            "Password"
        };
        return redfish_error(
            StatusCode::BAD_REQUEST,
            &format!("{BASE}.PropertyMissing"),
            &format!("The property {missing} is a required property and must be included in the request."),
            &[missing],
            "Ensure that the property is in the request body and has a valid value and resubmit the request if the operation failed.",
        );
    };
    let refused = |shared: &Shared| {
        bump(&shared.counters.auth_failures);
        redfish_error(
            StatusCode::UNAUTHORIZED,
            &format!("{BASE}.ResourceAtUriUnauthorized"),
            "While accessing the resource at /redfish/v1/SessionService/Sessions, the service received an authorization error: wrong user name or password.",
            &["/redfish/v1/SessionService/Sessions", "wrong user name or password"],
            "Ensure that the appropriate access is provided for the service in order for it to access the URI.",
        )
    };
    if shared.faults().unauthorized {
        return refused(shared);
    }
    let Some(user) = check_user(shared, &name, &password) else {
        return refused(shared);
    };
    let mut sessions = lock(&shared.sessions);
    if sessions.by_id.len() >= shared.max_sessions {
        return redfish_error(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("{BASE}.SessionLimitExceeded"),
            "The session establishment failed due to the number of simultaneous sessions exceeding the limit of the implementation.",
            &[],
            "Reduce the number of other sessions before trying to establish the session or increase the limit of simultaneous sessions (if supported).",
        );
    }
    sessions.next += 1;
    let id = sessions.next.to_string();
    let token = random_token();
    sessions.by_id.insert(
        id.clone(),
        SessionEntry {
            token: token.clone(),
            user: user.clone(),
        },
    );
    drop(sessions);
    bump(&shared.counters.sessions_created);
    tracing::debug!(session = %id, user = %user, "Redfish simulator: session created");
    let uri = format!("/redfish/v1/SessionService/Sessions/{id}");
    SimResponse::json(StatusCode::CREATED, session_json(&id, &user))
        .header(HeaderName::from_static("x-auth-token"), token)
        .header(hyper::header::LOCATION, uri)
}

// ---------------------------------------------------------------------------
// resources

fn odata_ref(uri: &str) -> Value {
    json!({ "@odata.id": uri })
}

fn collection(
    odata_type: &str,
    uri: &str,
    name: &str,
    members: impl Iterator<Item = String>,
) -> Value {
    let members: Vec<Value> = members.map(|m| odata_ref(&m)).collect();
    json!({
        "@odata.type": odata_type,
        "@odata.id": uri,
        "Name": name,
        "Members@odata.count": members.len(),
        "Members": members,
    })
}

fn service_root(shared: &Shared) -> Value {
    let mut root = json!({
        "@odata.type": "#ServiceRoot.v1_5_0.ServiceRoot",
        "@odata.id": "/redfish/v1",
        "Id": "RootService",
        "Name": "Root Service",
        "RedfishVersion": "1.6.0",
        "UUID": shared.service_uuid,
        "Vendor": shared.vendor.vendor_name(),
        "Product": shared.vendor.product(),
        "Systems": odata_ref("/redfish/v1/Systems"),
        "Managers": odata_ref("/redfish/v1/Managers"),
        "TaskService": odata_ref("/redfish/v1/TaskService"),
        "Links": {},
    });
    if shared.auth.sessions() {
        root["SessionService"] = odata_ref("/redfish/v1/SessionService");
        root["Links"]["Sessions"] = odata_ref("/redfish/v1/SessionService/Sessions");
    }
    root
}

fn power_str(p: SimPower) -> &'static str {
    match p {
        SimPower::On => "On",
        SimPower::Off => "Off",
    }
}

fn system_json(shared: &Shared, sys: &SimSystem, power: SimPower) -> Value {
    let uri = format!("/redfish/v1/Systems/{}", sys.id);
    let mut action = json!({ "target": format!("{uri}/Actions/ComputerSystem.Reset") });
    if shared.vendor.inline_allowable() {
        action["ResetType@Redfish.AllowableValues"] = json!(shared
            .allowable
            .iter()
            .map(|t| t.as_str())
            .collect::<Vec<_>>());
    }
    if shared.vendor.action_info() {
        action["@Redfish.ActionInfo"] = json!(format!("{uri}/ResetActionInfo"));
    }
    json!({
        "@odata.type": "#ComputerSystem.v1_13_0.ComputerSystem",
        "@odata.id": uri,
        "Id": sys.id,
        "Name": sys.name,
        "HostName": sys.host_name,
        "SystemType": "Physical",
        "Manufacturer": shared.vendor.manufacturer(),
        "Model": shared.vendor.model(),
        "SerialNumber": sys.serial_number,
        "UUID": sys.uuid,
        "PowerState": power_str(power),
        "Status": { "State": "Enabled", "Health": "OK" },
        "Links": {
            "ManagedBy": [odata_ref(&format!("/redfish/v1/Managers/{}", shared.vendor.manager_id()))],
        },
        "Actions": { "#ComputerSystem.Reset": action },
    })
}

fn reset_action_info(shared: &Shared, sys: &SimSystem) -> Value {
    json!({
        "@odata.type": "#ActionInfo.v1_1_2.ActionInfo",
        "@odata.id": format!("/redfish/v1/Systems/{}/ResetActionInfo", sys.id),
        "Id": "ResetActionInfo",
        "Name": "Reset Action Info",
        "Parameters": [{
            "Name": "ResetType",
            "Required": true,
            "DataType": "String",
            "AllowableValues": shared.allowable.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
        }],
    })
}

fn manager_json(shared: &Shared) -> Value {
    let id = shared.vendor.manager_id();
    let servers: Vec<Value> = shared
        .systems
        .iter()
        .map(|s| odata_ref(&format!("/redfish/v1/Systems/{}", s.id)))
        .collect();
    json!({
        "@odata.type": "#Manager.v1_10_0.Manager",
        "@odata.id": format!("/redfish/v1/Managers/{id}"),
        "Id": id,
        "Name": "Manager",
        "ManagerType": "BMC",
        "Manufacturer": shared.vendor.manufacturer(),
        "Model": shared.vendor.manager_model(),
        "FirmwareVersion": shared.vendor.manager_firmware(),
        "UUID": shared.service_uuid,
        "PowerState": "On",
        "Status": { "State": "Enabled", "Health": "OK" },
        "Links": { "ManagerForServers": servers },
    })
}

fn session_json(id: &str, user: &str) -> Value {
    json!({
        "@odata.type": "#Session.v1_3_0.Session",
        "@odata.id": format!("/redfish/v1/SessionService/Sessions/{id}"),
        "Id": id,
        "Name": "User Session",
        "UserName": user,
    })
}

fn task_uri(n: u64) -> String {
    format!("/redfish/v1/TaskService/Tasks/{n}")
}

fn task_monitor_uri(n: u64) -> String {
    format!("/redfish/v1/TaskService/Tasks/{n}/Monitor")
}

fn task_entry(shared: &Shared, n: u64) -> Option<TaskEntry> {
    lock(&shared.tasks).by_id.get(&n).cloned()
}

fn task_json(n: u64, t: &TaskEntry) -> Value {
    let (status, percent, message_id, message) = match t.state {
        TaskState::Running => (
            "OK",
            0,
            "TaskEvents.1.0.TaskStarted",
            format!("The task with Id '{n}' has started."),
        ),
        TaskState::Completed => (
            "OK",
            100,
            "TaskEvents.1.0.TaskCompletedOK",
            format!("The task with Id '{n}' has completed."),
        ),
        TaskState::Cancelled => (
            "Warning",
            100,
            "TaskEvents.1.0.TaskCancelled",
            format!("Work on the task with Id '{n}' has been halted prior to completion due to an explicit request: a newer reset of the same system."),
        ),
        TaskState::Exception => (
            "Critical",
            100,
            "TaskEvents.1.0.TaskAborted",
            format!("The task with Id '{n}' has completed with errors."),
        ),
    };
    let n_str = n.to_string();
    let mut task = json!({
        "@odata.type": "#Task.v1_4_3.Task",
        "@odata.id": task_uri(n),
        "Id": n_str,
        "Name": format!("Task {n}"),
        "TaskState": t.state.as_str(),
        "TaskStatus": status,
        "PercentComplete": percent,
        "StartTime": humantime::format_rfc3339_seconds(t.started).to_string(),
        "TaskMonitor": task_monitor_uri(n),
        "Messages": [{
            "@odata.type": "#Message.v1_1_1.Message",
            "MessageId": message_id,
            "Message": message,
            "MessageArgs": [n_str],
        }],
        "Payload": {
            "HttpOperation": "POST",
            "TargetUri": format!("/redfish/v1/Systems/{}/Actions/ComputerSystem.Reset", t.system),
            "JsonBody": json!({ "ResetType": t.reset.as_str() }).to_string(),
        },
    });
    if let Some(end) = t.ended {
        task["EndTime"] = json!(humantime::format_rfc3339_seconds(end).to_string());
    }
    task
}

// ---------------------------------------------------------------------------
// reset

/// One power change of a plan, `after` the start of the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Step {
    after: Duration,
    power: SimPower,
}

/// The power changes `reset` makes to a machine that is `now` on or off.
fn plan(reset: ResetType, now: SimPower, cycle_off: Duration) -> Vec<Step> {
    let at = |after, power| Step { after, power };
    match reset {
        ResetType::On | ResetType::ForceOn => vec![at(Duration::ZERO, SimPower::On)],
        ResetType::ForceOff | ResetType::GracefulShutdown => {
            vec![at(Duration::ZERO, SimPower::Off)]
        }
        ResetType::ForceRestart | ResetType::GracefulRestart | ResetType::PowerCycle => vec![
            at(Duration::ZERO, SimPower::Off),
            at(cycle_off, SimPower::On),
        ],
        ResetType::PushPowerButton => match now {
            SimPower::On => vec![at(Duration::ZERO, SimPower::Off)],
            SimPower::Off => vec![at(Duration::ZERO, SimPower::On)],
        },
        ResetType::Nmi => Vec::new(),
    }
}

fn refused_reset(shared: &Shared, resp: SimResponse) -> SimResponse {
    bump(&shared.counters.resets_refused);
    resp
}

fn not_in_list(value: &str, why: &str) -> SimResponse {
    redfish_error(
        StatusCode::BAD_REQUEST,
        &format!("{BASE}.ActionParameterValueNotInList"),
        &format!("The value '{value}' for the parameter ResetType in the action ComputerSystem.Reset is not in the list of acceptable values: {why}."),
        &[value, "ResetType", "ComputerSystem.Reset"],
        "Choose a value from the enumeration list that the implementation can support and resubmit the request if the operation failed.",
    )
}

/// `POST .../Actions/ComputerSystem.Reset`.
async fn reset(shared: &Arc<Shared>, sys: &SimSystem, body: &[u8]) -> SimResponse {
    let v: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            bump(&shared.counters.bad_requests);
            return refused_reset(shared, malformed_json(&e.to_string()));
        }
    };
    let reset = match v.get("ResetType") {
        None => {
            bump(&shared.counters.bad_requests);
            return refused_reset(
                shared,
                redfish_error(
                    StatusCode::BAD_REQUEST,
                    &format!("{BASE}.ActionParameterMissing"),
                    "The action ComputerSystem.Reset requires the parameter ResetType to be present in the request body.",
                    &["ComputerSystem.Reset", "ResetType"],
                    "Supply the action with the required parameter in the request body when the request is resubmitted.",
                ),
            );
        }
        Some(Value::String(s)) => match ResetType::parse(s) {
            Some(t) => t,
            None => return refused_reset(shared, not_in_list(s, "it is not a Redfish ResetType")),
        },
        Some(other) => {
            bump(&shared.counters.bad_requests);
            let shown = other.to_string();
            return refused_reset(
                shared,
                redfish_error(
                    StatusCode::BAD_REQUEST,
                    &format!("{BASE}.ActionParameterValueTypeError"),
                    &format!("The value '{shown}' for the parameter ResetType in the action ComputerSystem.Reset is of a different type than the parameter can accept."),
                    &[&shown, "ResetType", "ComputerSystem.Reset"],
                    "Correct the value for the parameter in the request body and resubmit the request if the operation failed.",
                ),
            );
        }
    };
    shared.counters.reset_type(reset);
    tracing::debug!(system = %sys.id, reset = %reset, "Redfish simulator: reset requested");
    if !shared.allowable.contains(&reset) {
        let why = format!("this BMC allows {}", join(&shared.allowable));
        return refused_reset(shared, not_in_list(reset.as_str(), &why));
    }
    let faults = shared.faults();
    if faults.bad_reset.contains(&reset) {
        return refused_reset(
            shared,
            not_in_list(
                reset.as_str(),
                "the BMC refuses it (simulated fault bad-reset)",
            ),
        );
    }
    if faults.error {
        bump(&shared.counters.resets_failed);
        return internal_error("simulated fault `error`");
    }
    let now = match shared.power.status(&sys.id).await {
        Ok(p) => p,
        Err(e) => {
            bump(&shared.counters.resets_failed);
            return internal_error(&e.to_string());
        }
    };
    if shared.vendor == Vendor::Hpe {
        let already = match (reset, now) {
            (ResetType::On | ResetType::ForceOn, SimPower::On) => Some("Power is on"),
            (ResetType::ForceOff | ResetType::GracefulShutdown, SimPower::Off) => {
                Some("Power is off")
            }
            _ => None,
        };
        if let Some(state) = already {
            return refused_reset(
                shared,
                SimResponse::json(
                    StatusCode::BAD_REQUEST,
                    json!({"error": {
                        "code": "iLO.0.10.ExtendedInfo",
                        "message": "See @Message.ExtendedInfo for more information.",
                        "@Message.ExtendedInfo": [{
                            "MessageArgs": [state],
                            "MessageId": "iLO.2.16.InvalidOperationForSystemState",
                        }],
                    }}),
                ),
            );
        }
    }
    if faults.lie && matches!(reset, ResetType::ForceOff | ResetType::GracefulShutdown) {
        bump(&shared.counters.lies);
        tracing::debug!(system = %sys.id, reset = %reset, "Redfish simulator: lying");
        return reset_accepted(shared.vendor);
    }
    let steps = plan(reset, now, shared.cycle_off);
    let generation = {
        let mut g = lock(&shared.generations);
        let e = g.entry(sys.id.clone()).or_insert(0);
        *e += 1;
        *e
    };
    let lead = faults.task.unwrap_or(Duration::ZERO) + faults.delay.unwrap_or(Duration::ZERO);
    let task = faults.task.map(|_| {
        let mut tasks = lock(&shared.tasks);
        tasks.next += 1;
        let n = tasks.next;
        tasks.by_id.insert(
            n,
            TaskEntry {
                system: sys.id.clone(),
                reset,
                state: TaskState::Running,
                started: SystemTime::now(),
                ended: None,
            },
        );
        while tasks.by_id.len() > MAX_TASKS {
            tasks.by_id.pop_first();
        }
        bump(&shared.counters.tasks_created);
        n
    });
    // Steps due now are carried out before answering; the rest later.
    let mut later = Vec::new();
    for step in steps {
        if lead.is_zero() && step.after.is_zero() {
            if let Err(e) = apply(shared, &sys.id, step.power).await {
                bump(&shared.counters.resets_failed);
                return internal_error(&e.to_string());
            }
        } else {
            later.push(Step {
                after: lead + step.after,
                power: step.power,
            });
        }
    }
    if !later.is_empty() || task.is_some() {
        tokio::spawn(carry_out(
            shared.clone(),
            sys.id.clone(),
            generation,
            later,
            lead,
            task,
        ));
    }
    match task {
        Some(n) => {
            let t = task_entry(shared, n);
            let body = t.map(|t| task_json(n, &t)).unwrap_or(Value::Null);
            SimResponse::json(StatusCode::ACCEPTED, body)
                .header(hyper::header::LOCATION, task_uri(n))
        }
        None => reset_accepted(shared.vendor),
    }
}

/// The vendor's answer to a reset it took.
fn reset_accepted(vendor: Vendor) -> SimResponse {
    match vendor {
        Vendor::Generic | Vendor::Dell => SimResponse::empty(StatusCode::NO_CONTENT),
        Vendor::Hpe => SimResponse::ok(json!({"error": {
            "code": "iLO.0.10.ExtendedInfo",
            "message": "See @Message.ExtendedInfo for more information.",
            "@Message.ExtendedInfo": [{ "MessageId": "Base.1.4.Success" }],
        }})),
        Vendor::OpenBmc => SimResponse::ok(json!({
            "@Message.ExtendedInfo": [{
                "@odata.type": "#Message.v1_1_1.Message",
                "Message": "The request completed successfully.",
                "MessageArgs": [],
                "MessageId": "Base.1.16.Success",
                "MessageSeverity": "OK",
                "Resolution": "None",
            }]
        })),
    }
}

async fn apply(shared: &Shared, id: &str, power: SimPower) -> Result<(), super::SimError> {
    shared.power.set(id, power).await?;
    bump(&shared.counters.power_changes);
    tracing::debug!(
        system = id,
        power = power_str(power),
        "Redfish simulator: power changed"
    );
    Ok(())
}

fn finish_task(shared: &Shared, task: Option<u64>, state: TaskState) {
    let Some(n) = task else { return };
    if let Some(t) = lock(&shared.tasks).by_id.get_mut(&n) {
        if t.state == TaskState::Running {
            t.state = state;
            t.ended = Some(SystemTime::now());
            if state == TaskState::Completed {
                bump(&shared.counters.tasks_completed);
            }
        }
    }
}

/// The delayed part of a reset: each step at its time, unless a newer
/// reset of the same system came first or shutdown; then the task (if any)
/// completes.
async fn carry_out(
    shared: Arc<Shared>,
    id: String,
    generation: u64,
    steps: Vec<Step>,
    task_done_after: Duration,
    task: Option<u64>,
) {
    let start = Instant::now();
    let mut stop = shared.shutdown.clone();
    let current = |shared: &Shared| lock(&shared.generations).get(&id).copied() == Some(generation);
    let mut last = task_done_after;
    for step in steps {
        last = last.max(step.after);
        tokio::select! {
            _ = tokio::time::sleep_until(start + step.after) => {}
            _ = stopped(&mut stop) => return,
        }
        if !current(&shared) {
            finish_task(&shared, task, TaskState::Cancelled);
            return;
        }
        if let Err(e) = apply(&shared, &id, step.power).await {
            tracing::warn!(system = %id, cause = %e, "Redfish simulator: delayed power change failed");
            finish_task(&shared, task, TaskState::Exception);
            return;
        }
    }
    tokio::select! {
        _ = tokio::time::sleep_until(start + last) => {}
        _ = stopped(&mut stop) => return,
    }
    if current(&shared) {
        finish_task(&shared, task, TaskState::Completed);
    } else {
        finish_task(&shared, task, TaskState::Cancelled);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use proptest::prelude::*;

    fn cfg() -> RedfishSimConfig {
        let mut c = RedfishSimConfig::new(
            "127.0.0.1:0".parse().unwrap(),
            vec![RedfishUser::new("admin", "secret")],
        )
        .with_vendor(Vendor::Generic, 3);
        c.cycle_off = Duration::from_millis(500);
        c
    }

    fn shared(c: &RedfishSimConfig) -> (Arc<Shared>, watch::Sender<bool>) {
        c.validate().unwrap();
        let (tx, rx) = watch::channel(false);
        (Arc::new(Shared::new(c, rx)), tx)
    }

    fn basic(user: &str, pw: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let v = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"));
        h.insert(
            hyper::header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {v}")).unwrap(),
        );
        h
    }

    async fn call(
        s: &Arc<Shared>,
        method: Method,
        path: &str,
        h: HeaderMap,
        body: &str,
    ) -> SimResponse {
        respond(
            s,
            SimRequest {
                method,
                path: path.to_string(),
                headers: h,
                body: Bytes::from(body.to_string()),
            },
        )
        .await
    }

    async fn get(s: &Arc<Shared>, path: &str) -> SimResponse {
        call(s, Method::GET, path, basic("admin", "secret"), "").await
    }

    async fn post_reset(s: &Arc<Shared>, id: &str, body: &str) -> SimResponse {
        call(
            s,
            Method::POST,
            &format!("/redfish/v1/Systems/{id}/Actions/ComputerSystem.Reset"),
            basic("admin", "secret"),
            body,
        )
        .await
    }

    fn header<'a>(r: &'a SimResponse, name: &str) -> Option<&'a str> {
        r.headers
            .iter()
            .find(|(n, _)| n.as_str().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn error_id(r: &SimResponse) -> String {
        r.body.as_ref().unwrap()["error"]["@Message.ExtendedInfo"][0]["MessageId"]
            .as_str()
            .unwrap()
            .to_string()
    }

    async fn power(s: &Arc<Shared>, id: &str) -> String {
        let r = get(s, &format!("/redfish/v1/Systems/{id}")).await;
        assert_eq!(r.status, StatusCode::OK);
        r.body.unwrap()["PowerState"].as_str().unwrap().to_string()
    }

    #[test]
    fn faults_parse_and_print() {
        for s in [
            "none",
            "bad-reset:ForceOff",
            "unauthorized",
            "error",
            "slow:250",
            "task:1000",
            "lie",
            "delay:3000",
        ] {
            assert_eq!(RedfishFault::parse(s).unwrap().to_string(), s);
        }
        assert_eq!(RedfishFault::parse("lies").unwrap(), RedfishFault::Lie);
        for bad in [
            "",
            "bad-reset:forceoff",
            "slow",
            "slow:x",
            "task:-1",
            "lie:1",
            "nope",
        ] {
            assert!(RedfishFault::parse(bad).is_err(), "{bad}");
        }
        let list = [
            RedfishFault::Lie,
            RedfishFault::Slow(Duration::from_millis(5)),
            RedfishFault::BadReset(ResetType::On),
        ];
        assert_eq!(describe_faults(&list), "bad-reset:On,slow:5,lie");
        assert_eq!(
            describe_faults(&[RedfishFault::Lie, RedfishFault::None]),
            "none"
        );
        assert_eq!(describe_faults(&[]), "none");
    }

    #[test]
    fn vendors() {
        assert_eq!(Vendor::Dell.system_id(0, 2), "System.Embedded.1");
        assert_eq!(Vendor::Hpe.system_id(1, 2), "2");
        assert_eq!(Vendor::OpenBmc.system_id(0, 1), "system");
        assert_eq!(Vendor::OpenBmc.system_id(1, 3), "host1");
        assert_eq!(Vendor::Generic.system_id(0, 1), system_uuid(0));
        assert!(!Vendor::Dell.allowable().contains(&ResetType::PowerCycle));
        assert!(!Vendor::OpenBmc
            .allowable()
            .contains(&ResetType::PushPowerButton));
        assert_eq!(Vendor::Generic.allowable().len(), 9);
        for v in ["generic", "dell", "hpe", "openbmc"] {
            assert_eq!(Vendor::parse(v).unwrap().as_str(), v);
        }
        let mut c = cfg();
        c.systems[1].id = c.systems[0].id.clone();
        assert!(c.validate().is_err());
        let mut c = cfg();
        c.systems[0].id = "a/b".into();
        assert!(c.validate().is_err());
        let mut c = cfg();
        c.allowable = Some(vec![]);
        assert!(c.validate().is_err());
        assert!(RedfishUser::parse("admin").is_err());
        assert_eq!(
            RedfishUser::parse("admin:se:cret")
                .unwrap()
                .password
                .expose(),
            "se:cret"
        );
    }

    #[tokio::test]
    async fn root_is_open_and_the_rest_needs_credentials() {
        let c = cfg();
        let (s, _stop) = shared(&c);
        let r = call(&s, Method::GET, "/redfish/v1/", HeaderMap::new(), "").await;
        assert_eq!(r.status, StatusCode::OK);
        let root = r.body.unwrap();
        assert_eq!(
            root["Links"]["Sessions"]["@odata.id"],
            "/redfish/v1/SessionService/Sessions"
        );
        assert_eq!(root["Vendor"], "ironfence");
        let r = call(&s, Method::GET, "/redfish", HeaderMap::new(), "").await;
        assert_eq!(r.body.unwrap()["v1"], "/redfish/v1/");
        let r = call(&s, Method::GET, "/redfish/v1/Systems", HeaderMap::new(), "").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert!(header(&r, "www-authenticate").is_some());
        let r = call(
            &s,
            Method::GET,
            "/redfish/v1/Systems",
            basic("admin", "wrong"),
            "",
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(error_id(&r), "Base.1.8.NoValidSession");
        let r = get(&s, "/redfish/v1/Systems").await;
        assert_eq!(r.status, StatusCode::OK);
        let body = r.body.unwrap();
        assert_eq!(body["Members@odata.count"], 3);
        assert_eq!(
            body["Members"][2]["@odata.id"],
            format!("/redfish/v1/Systems/{}", system_uuid(2))
        );
        let st = s.stats();
        assert_eq!(st.auth_failures, 2);
        assert_eq!(st.requests_by_kind["systems"], 3);
        let r = get(&s, "/redfish/v1/Nope").await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let r = call(
            &s,
            Method::DELETE,
            "/redfish/v1/Systems",
            basic("admin", "secret"),
            "",
        )
        .await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(header(&r, "allow"), Some("GET"));
    }

    #[tokio::test]
    async fn sessions_log_in_and_out() {
        let c = cfg();
        let (s, _stop) = shared(&c);
        let login = |body: &'static str| {
            let s = s.clone();
            async move {
                call(
                    &s,
                    Method::POST,
                    "/redfish/v1/SessionService/Sessions",
                    HeaderMap::new(),
                    body,
                )
                .await
            }
        };
        let r = login(r#"{"UserName":"admin","Password":"nope"}"#).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        let r = login(r#"{"UserName":"admin"}"#).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!(error_id(&r), "Base.1.8.PropertyMissing");
        let r = login("{not json").await;
        assert_eq!(error_id(&r), "Base.1.8.MalformedJSON");
        let r = login(r#"{"UserName":"admin","Password":"secret"}"#).await;
        assert_eq!(r.status, StatusCode::CREATED);
        let token = header(&r, "x-auth-token").unwrap().to_string();
        let location = header(&r, "location").unwrap().to_string();
        assert_eq!(location, "/redfish/v1/SessionService/Sessions/1");
        let mut h = HeaderMap::new();
        h.insert("x-auth-token", HeaderValue::from_str(&token).unwrap());
        let r = call(&s, Method::GET, "/redfish/v1/Systems", h.clone(), "").await;
        assert_eq!(r.status, StatusCode::OK);
        let r = call(
            &s,
            Method::GET,
            "/redfish/v1/SessionService/Sessions",
            h.clone(),
            "",
        )
        .await;
        assert_eq!(r.body.unwrap()["Members@odata.count"], 1);
        let r = call(&s, Method::DELETE, &location, h.clone(), "").await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        let r = call(&s, Method::GET, "/redfish/v1/Systems", h, "").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        let st = s.stats();
        assert_eq!(
            (st.sessions_created, st.sessions_deleted, st.active_sessions),
            (1, 1, 0)
        );
    }

    #[tokio::test]
    async fn auth_modes() {
        let mut c = cfg();
        c.auth = AuthMode::Basic;
        let (s, _stop) = shared(&c);
        let root = call(&s, Method::GET, "/redfish/v1", HeaderMap::new(), "")
            .await
            .body
            .unwrap();
        assert!(root.get("SessionService").is_none());
        let r = call(
            &s,
            Method::POST,
            "/redfish/v1/SessionService/Sessions",
            HeaderMap::new(),
            "{}",
        )
        .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        let mut c = cfg();
        c.auth = AuthMode::Session;
        let (s, _stop) = shared(&c);
        let r = get(&s, "/redfish/v1/Systems").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert!(header(&r, "www-authenticate").is_none());
    }

    #[tokio::test]
    async fn resets_change_power() {
        let c = cfg();
        let (s, _stop) = shared(&c);
        let id = system_uuid(1);
        assert_eq!(power(&s, &id).await, "On");
        let r = post_reset(&s, &id, r#"{"ResetType":"ForceOff"}"#).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert_eq!(power(&s, &id).await, "Off");
        assert_eq!(power(&s, &system_uuid(0)).await, "On");
        let r = post_reset(&s, &id, r#"{"ResetType":"PushPowerButton"}"#).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert_eq!(power(&s, &id).await, "On");
        let r = post_reset(&s, &id, r#"{"ResetType":"Nmi"}"#).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert_eq!(power(&s, &id).await, "On");
        let st = s.stats();
        assert_eq!(st.resets, 3);
        assert_eq!(st.resets_by_type["ForceOff"], 1);
        assert_eq!(st.power_changes, 2);
        let r = post_reset(&s, "nope", r#"{"ResetType":"On"}"#).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
    }

    #[tokio::test(start_paused = true)]
    async fn restart_goes_off_then_on() {
        let c = cfg();
        let (s, _stop) = shared(&c);
        let id = system_uuid(0);
        let r = post_reset(&s, &id, r#"{"ResetType":"ForceRestart"}"#).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert_eq!(power(&s, &id).await, "Off");
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(power(&s, &id).await, "On");
        assert_eq!(s.stats().power_changes, 2);
    }

    #[tokio::test]
    async fn bad_bodies_are_400() {
        let c = cfg();
        let (s, _stop) = shared(&c);
        let id = system_uuid(0);
        for (body, want) in [
            ("", "Base.1.8.MalformedJSON"),
            ("{", "Base.1.8.MalformedJSON"),
            ("{}", "Base.1.8.ActionParameterMissing"),
            (
                r#"{"ResetType":5}"#,
                "Base.1.8.ActionParameterValueTypeError",
            ),
            (
                r#"{"ResetType":"forceoff"}"#,
                "Base.1.8.ActionParameterValueNotInList",
            ),
            ("[1,2]", "Base.1.8.ActionParameterMissing"),
        ] {
            let r = post_reset(&s, &id, body).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
            assert_eq!(error_id(&r), want, "{body}");
        }
        assert_eq!(s.stats().resets_refused, 6);
        assert_eq!(power(&s, &id).await, "On");
    }

    #[tokio::test]
    async fn vendor_allowable_values() {
        let c = cfg().with_vendor(Vendor::Dell, 2);
        let (s, _stop) = shared(&c);
        let sys = get(&s, "/redfish/v1/Systems/System.Embedded.2")
            .await
            .body
            .unwrap();
        let action = &sys["Actions"]["#ComputerSystem.Reset"];
        assert_eq!(
            action["ResetType@Redfish.AllowableValues"]
                .as_array()
                .unwrap()
                .len(),
            6
        );
        assert!(action.get("@Redfish.ActionInfo").is_none());
        let r = post_reset(&s, "System.Embedded.2", r#"{"ResetType":"PowerCycle"}"#).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!(error_id(&r), "Base.1.8.ActionParameterValueNotInList");

        let c = cfg().with_vendor(Vendor::OpenBmc, 1);
        let (s, _stop) = shared(&c);
        let sys = get(&s, "/redfish/v1/Systems/system").await.body.unwrap();
        let action = &sys["Actions"]["#ComputerSystem.Reset"];
        assert!(action.get("ResetType@Redfish.AllowableValues").is_none());
        assert_eq!(
            action["@Redfish.ActionInfo"],
            "/redfish/v1/Systems/system/ResetActionInfo"
        );
        let info = get(&s, "/redfish/v1/Systems/system/ResetActionInfo")
            .await
            .body
            .unwrap();
        let values = info["Parameters"][0]["AllowableValues"].as_array().unwrap();
        assert!(values.iter().any(|v| v == "ForceRestart"));
        let r = post_reset(&s, "system", r#"{"ResetType":"ForceOff"}"#).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(
            r.body.unwrap()["@Message.ExtendedInfo"][0]["MessageId"],
            "Base.1.16.Success"
        );

        let c = cfg().with_vendor(Vendor::Hpe, 1);
        let (s, _stop) = shared(&c);
        let r = post_reset(&s, "1", r#"{"ResetType":"On"}"#).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!(error_id(&r), "iLO.2.16.InvalidOperationForSystemState");
        let r = post_reset(&s, "1", r#"{"ResetType":"ForceOff"}"#).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(power(&s, "1").await, "Off");
    }

    #[tokio::test]
    async fn faults_bad_reset_error_lie_unauthorized() {
        let mut c = cfg();
        c.faults = vec![RedfishFault::BadReset(ResetType::ForceOff)];
        let (s, _stop) = shared(&c);
        let id = system_uuid(0);
        let r = post_reset(&s, &id, r#"{"ResetType":"ForceOff"}"#).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        let r = post_reset(&s, &id, r#"{"ResetType":"GracefulShutdown"}"#).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert_eq!(power(&s, &id).await, "Off");

        *lock(&s.faults) = Faults::from_list(&[RedfishFault::Error]);
        let r = post_reset(&s, &id, r#"{"ResetType":"On"}"#).await;
        assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(error_id(&r), "Base.1.8.InternalError");
        assert_eq!(power(&s, &id).await, "Off");

        *lock(&s.faults) = Faults::from_list(&[RedfishFault::Lie]);
        post_reset(&s, &id, r#"{"ResetType":"On"}"#).await;
        let r = post_reset(&s, &id, r#"{"ResetType":"ForceOff"}"#).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        assert_eq!(power(&s, &id).await, "On");
        assert_eq!(s.stats().lies, 1);

        *lock(&s.faults) = Faults::from_list(&[RedfishFault::Unauthorized]);
        assert_eq!(
            get(&s, "/redfish/v1/Systems").await.status,
            StatusCode::UNAUTHORIZED
        );
        let r = call(&s, Method::GET, "/redfish/v1", HeaderMap::new(), "").await;
        assert_eq!(r.status, StatusCode::OK);
        let r = call(
            &s,
            Method::POST,
            "/redfish/v1/SessionService/Sessions",
            HeaderMap::new(),
            r#"{"UserName":"admin","Password":"secret"}"#,
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        let st = s.stats();
        assert_eq!((st.resets_refused, st.resets_failed), (1, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn task_and_delay_faults() {
        let mut c = cfg();
        c.faults = vec![RedfishFault::Task(Duration::from_secs(2))];
        let (s, _stop) = shared(&c);
        let id = system_uuid(0);
        let r = post_reset(&s, &id, r#"{"ResetType":"ForceOff"}"#).await;
        assert_eq!(r.status, StatusCode::ACCEPTED);
        let location = header(&r, "location").unwrap().to_string();
        assert_eq!(location, "/redfish/v1/TaskService/Tasks/1");
        assert_eq!(r.body.unwrap()["TaskState"], "Running");
        assert_eq!(power(&s, &id).await, "On");
        let m = get(&s, "/redfish/v1/TaskService/Tasks/1/Monitor").await;
        assert_eq!(m.status, StatusCode::ACCEPTED);
        tokio::time::sleep(Duration::from_millis(2100)).await;
        assert_eq!(power(&s, &id).await, "Off");
        let t = get(&s, &location).await.body.unwrap();
        assert_eq!(t["TaskState"], "Completed");
        assert_eq!(t["PercentComplete"], 100);
        let m = get(&s, "/redfish/v1/TaskService/Tasks/1/Monitor").await;
        assert_eq!(m.status, StatusCode::NO_CONTENT);
        let st = s.stats();
        assert_eq!((st.tasks_created, st.tasks_completed), (1, 1));

        // a newer reset cancels the older pending one
        *lock(&s.faults) = Faults::from_list(&[RedfishFault::Delay(Duration::from_secs(3))]);
        let r = post_reset(&s, &id, r#"{"ResetType":"On"}"#).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let r = post_reset(&s, &id, r#"{"ResetType":"ForceOff"}"#).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(power(&s, &id).await, "Off", "the first On was dropped");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(power(&s, &id).await, "Off");
    }

    #[tokio::test(start_paused = true)]
    async fn slow_fault_delays_answers() {
        let mut c = cfg();
        c.faults = vec![RedfishFault::Slow(Duration::from_secs(5))];
        let (s, _stop) = shared(&c);
        let t0 = Instant::now();
        let r = call(&s, Method::GET, "/redfish/v1", HeaderMap::new(), "").await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(t0.elapsed() >= Duration::from_secs(5));
    }

    #[tokio::test]
    async fn shared_state_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = cfg();
        c.state_file = Some(dir.path().join("power.json"));
        let (a, _stop_a) = shared(&c);
        let (b, _stop_b) = shared(&c);
        let id = system_uuid(2);
        post_reset(&a, &id, r#"{"ResetType":"ForceOff"}"#).await;
        assert_eq!(power(&b, &id).await, "Off");
        let text = std::fs::read_to_string(dir.path().join("power.json")).unwrap();
        assert!(text.contains(&id) && text.contains("off"), "{text}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn never_panics(
            method in prop::sample::select(vec!["GET", "POST", "DELETE", "PATCH", "PUT", "HEAD"]),
            path in prop::sample::select(vec![
                "/", "/redfish", "/redfish/v1", "/redfish/v1/Systems",
                "/redfish/v1/Systems/5e1f0c2a-7b3d-4e6f-8a9b-000000000001",
                "/redfish/v1/Systems/5e1f0c2a-7b3d-4e6f-8a9b-000000000001/Actions/ComputerSystem.Reset",
                "/redfish/v1/SessionService/Sessions", "/redfish/v1/SessionService/Sessions/1",
                "/redfish/v1/TaskService/Tasks/99999999999999999999", "/redfish/v1/TaskService/Tasks/1/Monitor",
                "//redfish//v1", "/redfish/v1/Systems/%00",
            ]),
            body in prop::collection::vec(any::<u8>(), 0..64),
            json_body in prop::option::of(r#"\{"(ResetType|UserName|Password)": ?("[A-Za-z]{0,12}"|[0-9]+|null|\[\]|\{\})\}"#),
            auth in any::<bool>(),
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let c = cfg();
                let (s, _stop) = shared(&c);
                let body = json_body.map(String::into_bytes).unwrap_or(body);
                let h = if auth { basic("admin", "secret") } else { HeaderMap::new() };
                let r = respond(&s, SimRequest {
                    method: Method::from_bytes(method.as_bytes()).unwrap(),
                    path: path.to_string(),
                    headers: h,
                    body: Bytes::from(body),
                }).await;
                if r.status.is_client_error() || r.status.is_server_error() {
                    let b = r.body.expect("errors have a body");
                    prop_assert!(b["error"]["code"].is_string());
                }
                Ok(())
            })?;
        }
    }

    #[tokio::test]
    async fn serves_tls_and_plain_http() {
        let c = cfg();
        let server = RedfishSimServer::start(c).await.unwrap();
        let pem = server.cert_pem().unwrap().to_string();
        let fp = server.cert_sha256_fingerprint().unwrap();
        assert_eq!(fp.len(), 32 * 3 - 1);
        assert!(fp.chars().all(|ch| ch == ':' || ch.is_ascii_hexdigit()));
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
            .build()
            .unwrap();
        let url = format!("{}/redfish/v1/", server.base_url());
        assert!(url.starts_with("https://127.0.0.1:"));
        let r = client.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["odata-version"], "4.0");
        let r = client
            .post(format!(
                "{}/redfish/v1/Systems/{}/Actions/ComputerSystem.Reset",
                server.base_url(),
                system_uuid(0)
            ))
            .basic_auth("admin", Some("secret"))
            .header("content-type", "application/json")
            .body(vec![b'x'; MAX_BODY + 10])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 413);
        assert_eq!(server.stats().requests, 2);
        server.shutdown().await;

        let mut c = cfg();
        c.tls = TlsMode::Plain;
        let server = RedfishSimServer::start(c).await.unwrap();
        assert!(server.cert_pem().is_none());
        let r = reqwest::get(format!("{}/redfish/v1", server.base_url()))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        server.shutdown().await;
    }
}
