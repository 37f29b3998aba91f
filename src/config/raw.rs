//! Raw serde types: exactly what the TOML file says, nothing checked beyond
//! syntax and known keys (`deny_unknown_fields`). [`super::validate`] turns
//! them into the typed [`super::Config`].

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDaemon {
    pub socket: Option<PathBuf>,
    pub socket_group: Option<String>,
    pub state_dir: Option<PathBuf>,
    pub fencing_timeout: Option<String>,
    pub verify_interval: Option<String>,
    pub storm_max_share: Option<f64>,
    pub storm_window: Option<String>,
    /// This node's name (its slot on the sbd disks); default: host name.
    pub node_name: Option<String>,
    /// HA_RSCTMP given to resource agents (their state files).
    pub resource_tmp: Option<PathBuf>,
    /// Extra environment for every resource agent (HA_VARRUN, ...).
    #[serde(default)]
    pub agent_env: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNode {
    pub name: String,
    pub id: Option<u32>,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

/// Per-action values (`[device.timeouts]`, `[device.retries]`).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPerAction<T> {
    pub off: Option<T>,
    pub on: Option<T>,
    pub status: Option<T>,
    pub list: Option<T>,
    pub monitor: Option<T>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSim {
    pub fault: Option<String>,
    pub slow_by: Option<String>,
    pub state_file: Option<PathBuf>,
    pub initial: Option<String>,
}

/// `[device.ipmi]` of a kind = "ipmi" device.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIpmi {
    pub port: Option<i64>,
    /// "auto" or a suite number (1, 2, 3, 15, 16, 17).
    pub cipher: Option<toml::Value>,
    /// user, operator or administrator.
    pub privilege: Option<String>,
    /// BMC key Kg as hex (fence_ipmilan's hexadecimal_kg).
    pub hexadecimal_kg: Option<String>,
    /// Allow suites without authentication or integrity (0, 1, 15).
    pub allow_insecure: Option<bool>,
    /// First retransmission interval.
    pub retransmit: Option<String>,
    /// How long the BMC may stay silent at the session's first message.
    pub login_timeout: Option<String>,
}

/// `[device.redfish]` of a kind = "redfish" device.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRedfish {
    pub port: Option<i64>,
    /// "https" (default) or "http" (only when asked).
    pub scheme: Option<String>,
    pub ca_file: Option<PathBuf>,
    /// SHA-256 fingerprint of the BMC's certificate (AB:CD:...).
    pub fingerprint: Option<String>,
    /// No certificate verification (logged as a warning).
    pub insecure: Option<bool>,
    /// Which system: "uri:/redfish/v1/Systems/1", "id:1", "uuid:...", "serial:...", "hostname:...".
    pub system: Option<String>,
    /// "auto" (session, else basic), "session" or "basic".
    pub auth: Option<String>,
    /// Service root, default "/redfish/v1".
    pub root: Option<String>,
    pub request_timeout: Option<String>,
    /// Vendor profile name (firmware-configs/), or "auto" (default).
    pub profile: Option<String>,
}

/// `sbd = { ... }` of a kind = "sbd" device (poison pill on shared disks).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSbd {
    /// 1 to 3 shared disks, e.g. "/dev/disk/by-id/...".
    pub devices: Option<Vec<String>>,
    /// Only for a disk image in a regular file (block devices report theirs).
    pub sector_size: Option<i64>,
    /// Limit of one sector read or write.
    pub io_timeout: Option<String>,
    /// Send `crashdump` instead of `off`/`reset`.
    pub crashdump: Option<bool>,
    /// Sender name written into the mailbox (default: this host's name).
    pub from: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDevice {
    pub name: String,
    pub kind: String,
    /// For kind `agent`: the fence agent to run (`fence_ipmilan` or a path).
    pub agent: Option<String>,
    /// The device's management address (BMC, PDU); for kind `agent` it is
    /// passed as the agent's `ip` parameter.
    pub address: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<PathBuf>,
    pub password_script: Option<String>,
    pub host_list: Option<Vec<String>>,
    pub host_map: Option<BTreeMap<String, String>>,
    pub host_check: Option<String>,
    pub action_limit: Option<i64>,
    pub delay_base: Option<String>,
    pub delay_max: Option<String>,
    #[serde(default)]
    pub timeouts: RawPerAction<String>,
    #[serde(default)]
    pub retries: RawPerAction<i64>,
    /// For kind `agent`: further parameters passed on the agent's stdin.
    #[serde(default)]
    pub params: BTreeMap<String, toml::Value>,
    pub sim: Option<RawSim>,
    pub ipmi: Option<RawIpmi>,
    pub redfish: Option<RawRedfish>,
    pub sbd: Option<RawSbd>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLevel {
    pub index: i64,
    pub target: Option<String>,
    pub target_regex: Option<String>,
    pub target_attribute: Option<String>,
    pub devices: Vec<String>,
}

/// `[watchdog]`: the timer that resets this node unless ironfenced feeds it.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWatchdog {
    /// linux (a /dev/watchdog device), ipmi (the BMC's watchdog through
    /// /dev/ipmi0), recorder (a file, for tests and the demo) or none.
    pub kind: Option<String>,
    pub device: Option<PathBuf>,
    pub timeout: Option<String>,
    /// How often the inquisitor checks the servants and feeds.
    pub interval: Option<String>,
}

/// `[sbd]`: this node's own slot on the shared disks (the SBD servants).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLocalSbd {
    pub devices: Option<Vec<String>>,
    pub sector_size: Option<i64>,
    pub io_timeout: Option<String>,
    /// "always" (default) or "clean".
    pub start_mode: Option<String>,
    /// false (default), true (= msgwait) or a duration.
    pub delay_start: Option<toml::Value>,
}

/// `[quorum]`: the quorum servant.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQuorum {
    /// "corosync" or "none" (default).
    pub source: Option<String>,
    /// "suicide" (default) or "ignore".
    pub no_quorum_policy: Option<String>,
}

/// `[self_fence]`: what this node does to itself.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSelfFence {
    /// "sysrq" (default) or "recorder".
    pub method: Option<String>,
    /// For the recorder: the file it appends to.
    pub record_file: Option<PathBuf>,
    /// On a stalled servant or lost quorum: "reboot" (default), "off" or "crashdump".
    pub timeout_action: Option<String>,
    /// sync(2) before acting (default true).
    pub flush: Option<bool>,
}

/// `[cluster]`: membership in a corosync CPG group, automatic fencing of lost members.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    /// "corosync" (the only kind).
    pub membership: Option<String>,
    /// CPG group name.
    pub group: Option<String>,
    /// "reboot" (default) or "off".
    pub fence_action: Option<String>,
    pub two_node_delay: Option<String>,
    pub retry_backoff: Option<String>,
    pub retry_backoff_max: Option<String>,
}
