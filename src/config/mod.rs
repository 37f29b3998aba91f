//! Configuration: the TOML file (default `/etc/ironfence/ironfence.toml`)
//! parsed once into the validated [`Config`]. Nothing downstream re-checks.
//!
//! ```text
//!  file text --toml--> Value --serde (per item)--> raw::* --validate--> Config
//!                 \________________ every problem collected ___________/
//! ```
//!
//! Loading never stops at the first problem: each `[[node]]`, `[[device]]`
//! and `[[level]]` is deserialized on its own and then every relation is
//! checked, so `ironfence config check` can list all of them at once, each
//! with the key at fault and how to fix it.

pub mod cluster;
mod node;
mod options;
pub mod raw;
pub mod resources;
mod validate;

use crate::secret::PasswordSource;
use regex::Regex;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use cluster::ClusterConfig;
pub use node::{
    effective_timeout, DelayStart, DiskTimeouts, LocalConfig, LocalSbdConfig, NoQuorumPolicy,
    QuorumConfig, SelfFenceAction, SelfFenceConfig, SelfFenceMethod, WatchdogConfig, WatchdogKind,
};
pub use options::raw_device_from_options;
pub use validate::{device_from_raw, level_from_raw};

/// Where the daemon and CLI look for the config unless `--config` says otherwise.
pub const DEFAULT_PATH: &str = "/etc/ironfence/ironfence.toml";
/// Default socket of `ironfenced`.
pub const DEFAULT_SOCKET: &str = "/run/ironfence/ironfenced.sock";
/// The longest duration anything in ironfence accepts (config, CLI, API,
/// agent options): a week. Larger values are typos, and bounding them keeps
/// all deadline arithmetic far from overflow.
pub const MAX_DURATION: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// Default directory of the durable history.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/ironfence";

/// One problem in a configuration: which key, what is wrong, how to fix it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Problem {
    /// Dotted path of the offending key, e.g. `device[bmc-1].delay_max`.
    pub key: String,
    pub message: String,
    pub fix: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} (fix: {})", self.key, self.message, self.fix)
    }
}

/// The configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}; pass --config PATH or create the file")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file was read but has problems; all of them are listed.
    #[error("{} problem(s) in {}:\n{}", problems.len(), source_name, problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        source_name: String,
        problems: Vec<Problem>,
    },
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub daemon: DaemonConfig,
    pub nodes: Vec<Node>,
    pub devices: Vec<DeviceConfig>,
    pub levels: Vec<Level>,
    /// What the node daemon supervises on this node.
    pub local: LocalConfig,
    /// The timeouts in this node's sbd disk headers, when the config was
    /// loaded with [`Config::load_checked`] and `[sbd]` is set.
    pub disk_timeouts: Option<DiskTimeouts>,
    /// `[cluster]`: membership and automatic fencing of lost members.
    pub cluster: Option<ClusterConfig>,
    /// Hashes of the cluster-relevant sections (see [`cluster::section_hashes`]).
    pub sections: BTreeMap<String, String>,
    /// `[[resource]]`, `[[group]]`, `[[clone]]` and the constraints.
    pub resources: resources::ResourcesConfig,
}

#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub socket: PathBuf,
    /// Members of this group (besides root) may use the socket.
    pub socket_group: Option<String>,
    pub state_dir: PathBuf,
    /// Deadline of a whole fence request (all levels), like `stonith-timeout`.
    pub fencing_timeout: Duration,
    /// How often power state is read back while waiting for it to change.
    pub verify_interval: Duration,
    pub storm: StormGuard,
    /// HA_RSCTMP for resource agents (default /run/resource-agents, as
    /// resource-agents' own default).
    pub resource_tmp: PathBuf,
    /// Extra environment for every resource agent (`[daemon] agent_env`),
    /// as Pacemaker passes /etc/default/pacemaker's.
    pub agent_env: BTreeMap<String, String>,
}

/// Refuse automatic fencing of more than `max_share` of the nodes within `window`.
#[derive(Debug, Clone, Copy)]
pub struct StormGuard {
    pub max_share: f64,
    pub window: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub name: String,
    pub id: Option<u32>,
    pub attributes: BTreeMap<String, String>,
}

/// How a device decides which nodes it can fence (Pacemaker's `pcmk_host_check`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostCheck {
    /// Nodes named in `host_list` / `host_map`.
    StaticList,
    /// Nodes the device's `list` action returns.
    DynamicList,
    /// Nodes for which the device's `status` action answers.
    Status,
    /// Every node.
    None,
}

impl HostCheck {
    pub fn parse(s: &str) -> Option<HostCheck> {
        match s {
            "static-list" => Some(HostCheck::StaticList),
            "dynamic-list" => Some(HostCheck::DynamicList),
            "status" => Some(HostCheck::Status),
            "none" => Some(HostCheck::None),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            HostCheck::StaticList => "static-list",
            HostCheck::DynamicList => "dynamic-list",
            HostCheck::Status => "status",
            HostCheck::None => "none",
        }
    }
}

/// Which nodes a device can fence, and under what plug name.
#[derive(Debug, Clone, PartialEq)]
pub struct Hosts {
    pub list: Vec<String>,
    /// node name -> plug/port name on the device.
    pub map: BTreeMap<String, String>,
    pub check: HostCheck,
}

impl Hosts {
    /// The plug (port) name the device knows `node` by.
    pub fn plug_for<'a>(&'a self, node: &'a str) -> &'a str {
        self.map.get(node).map(String::as_str).unwrap_or(node)
    }
    /// Whether the static list names `node`.
    pub fn statically_lists(&self, node: &str) -> bool {
        self.list.iter().any(|n| n == node) || self.map.contains_key(node)
    }
}

/// Per-action timeouts of one attempt (command plus read-back).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timeouts {
    pub off: Duration,
    pub on: Duration,
    pub status: Duration,
    pub list: Duration,
    pub monitor: Duration,
}

/// Per-action retries after a failed attempt (0 = one attempt only).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retries {
    pub off: u32,
    pub on: u32,
    pub status: u32,
    pub list: u32,
    pub monitor: u32,
}

/// Random delay before fencing to break two-node races (`pcmk_delay_base/max`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Delay {
    pub base: Duration,
    /// Upper bound of the random part added to `base`.
    pub max: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeviceConfig {
    pub name: String,
    pub kind: DeviceKind,
    pub username: Option<String>,
    pub password: PasswordSource,
    pub hosts: Hosts,
    /// At most this many actions at once on this device.
    pub action_limit: u32,
    pub delay: Delay,
    pub timeouts: Timeouts,
    pub retries: Retries,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DeviceKind {
    /// An in-process simulated BMC.
    Sim(SimConfig),
    /// An external ClusterLabs fence agent.
    Agent(AgentDeviceConfig),
    /// A BMC over IPMI v2.0 (RMCP+), our own client.
    Ipmi(IpmiConfig),
    /// A BMC over Redfish, our own client.
    Redfish(RedfishDeviceConfig),
    /// A poison pill on 1-3 shared sbd disks (ClusterLabs sbd format).
    Sbd(SbdDeviceConfig),
}

/// A poison-pill device: the shared disks and how to write to them. The
/// slot of a node is its `host_map` entry, else its name.
#[derive(Debug, Clone, PartialEq)]
pub struct SbdDeviceConfig {
    /// 1 to 3 disks; a fence needs a majority of them.
    pub devices: Vec<PathBuf>,
    /// Sector size of disk images in regular files; block devices report theirs.
    pub sector_size: Option<u32>,
    /// Limit of one sector read or write (sbd's `-I`).
    pub io_timeout: Duration,
    /// Send `crashdump` instead of `off` / `reset`.
    pub crashdump: bool,
    /// Sender name written into mailboxes (sbd's `-n`).
    pub from: String,
}

/// How to reach one BMC over Redfish.
#[derive(Debug, Clone, PartialEq)]
pub struct RedfishDeviceConfig {
    pub address: String,
    pub port: u16,
    pub tls: crate::redfish::tls::TlsMode,
    pub system: crate::redfish::client::SystemSelector,
    pub auth: crate::redfish::client::AuthMode,
    pub root: String,
    pub request_timeout: Duration,
    /// A vendor profile by name; `None` = matched automatically.
    pub profile: Option<String>,
}

/// How to reach one BMC over IPMI.
#[derive(Debug, Clone, PartialEq)]
pub struct IpmiConfig {
    pub address: String,
    pub port: u16,
    pub cipher: crate::ipmi::CipherChoice,
    pub privilege: crate::ipmi::Privilege,
    pub kg: Option<crate::secret::Secret>,
    pub allow_insecure: bool,
    pub retransmit: Duration,
    /// A BMC that answers nothing of the session's first message within
    /// this is unreachable: the attempt fails, and is not retried.
    pub login_timeout: Duration,
}

impl DeviceKind {
    pub fn name(&self) -> &'static str {
        match self {
            DeviceKind::Sim(_) => "sim",
            DeviceKind::Agent(_) => "agent",
            DeviceKind::Ipmi(_) => "ipmi",
            DeviceKind::Redfish(_) => "redfish",
            DeviceKind::Sbd(_) => "sbd",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct AgentDeviceConfig {
    /// The agent as configured (`fence_ipmilan` or an absolute path).
    pub agent: String,
    /// Extra parameters for the agent's stdin, values already as text.
    pub params: BTreeMap<String, String>,
}

/// Fault a simulated BMC injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SimFault {
    /// Behaves.
    None,
    /// Answers, but only after `slow_by`.
    Slow,
    /// Never answers.
    Silent,
    /// Refuses every login.
    Refuses,
    /// Accepts power commands and does not carry them out.
    Lies,
}

impl SimFault {
    pub fn parse(s: &str) -> Option<SimFault> {
        match s {
            "none" => Some(SimFault::None),
            "slow" => Some(SimFault::Slow),
            "silent" => Some(SimFault::Silent),
            "refuses" => Some(SimFault::Refuses),
            "lies" => Some(SimFault::Lies),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    pub fault: SimFault,
    pub slow_by: Duration,
    /// Keep power states in this JSON file (shared with `fence_ironfence_sim`).
    pub state_file: Option<PathBuf>,
    pub initially_on: bool,
}

/// Which nodes a fencing level applies to.
#[derive(Debug, Clone)]
pub enum LevelTarget {
    Name(String),
    Regex(Regex),
    Attribute { name: String, value: String },
}

impl PartialEq for LevelTarget {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl fmt::Display for LevelTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LevelTarget::Name(n) => write!(f, "{n}"),
            LevelTarget::Regex(r) => write!(f, "regex:{}", r.as_str()),
            LevelTarget::Attribute { name, value } => write!(f, "attr:{name}={value}"),
        }
    }
}

impl LevelTarget {
    /// Whether this target selects `node`.
    pub fn matches(&self, node: &str, attributes: Option<&BTreeMap<String, String>>) -> bool {
        match self {
            LevelTarget::Name(n) => n == node,
            LevelTarget::Regex(r) => r.is_match(node),
            LevelTarget::Attribute { name, value } => {
                attributes.and_then(|a| a.get(name)) == Some(value)
            }
        }
    }
}

/// One fencing level: every device must succeed for the level to succeed.
#[derive(Debug, Clone, PartialEq)]
pub struct Level {
    pub index: u8,
    pub target: LevelTarget,
    pub devices: Vec<String>,
}

impl Config {
    /// Read and validate the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, &path.display().to_string())
    }

    /// Validate TOML text; `source_name` names it in messages.
    pub fn parse(text: &str, source_name: &str) -> Result<Config, ConfigError> {
        validate::parse(text, false).map_err(|problems| ConfigError::Invalid {
            source_name: source_name.to_string(),
            problems,
        })
    }

    /// Load and validate, also reading what only the devices can tell
    /// (sbd headers: msgwait against the timeouts), all problems in one
    /// report. `config check` and `ironfenced` use it; a plain [`Config::load`]
    /// does no device I/O, so an unreadable disk never stops the CLI.
    pub fn load_checked(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        validate::parse(&text, true).map_err(|problems| ConfigError::Invalid {
            source_name: path.display().to_string(),
            problems,
        })
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    pub fn device(&self, name: &str) -> Option<&DeviceConfig> {
        self.devices.iter().find(|d| d.name == name)
    }
}
