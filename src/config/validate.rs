//! Raw -> validated, collecting every problem instead of stopping at the first.

use super::raw::{RawDaemon, RawDevice, RawLevel, RawNode, RawPerAction};
use super::*;
use crate::secret::Secret;
use serde::Deserialize;
use std::collections::{BTreeSet, HashSet};

const DEFAULT_FENCING_TIMEOUT: Duration = Duration::from_secs(120);
const DEFAULT_VERIFY_INTERVAL: Duration = Duration::from_millis(500);
const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(20);
/// Pacemaker's `pcmk_off_retries` default.
const DEFAULT_OFF_RETRIES: u32 = 2;
const MAX_RETRIES: i64 = 10;

/// Collects problems under a key prefix.
pub(super) struct Problems(pub(super) Vec<Problem>);

impl Problems {
    pub(super) fn add(
        &mut self,
        key: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.0.push(Problem {
            key: key.into(),
            message: message.into(),
            fix: fix.into(),
        });
    }
}

/// Parse a duration: humantime (`30s`, `1m 30s`, `500ms`) or bare seconds.
/// Values above [`MAX_DURATION`] are refused.
pub(crate) fn parse_duration(s: &str) -> Option<Duration> {
    let t = s.trim();
    let d = match t.parse::<f64>() {
        Ok(secs) => Duration::try_from_secs_f64(secs).ok()?,
        Err(_) => humantime::parse_duration(t).ok()?,
    };
    (d <= MAX_DURATION).then_some(d)
}

pub(super) fn duration(
    p: &mut Problems,
    key: &str,
    value: &Option<String>,
    default: Duration,
) -> Duration {
    match value {
        None => default,
        Some(s) => match parse_duration(s) {
            Some(d) => d,
            None => {
                p.add(
                    key,
                    format!("`{s}` is not a duration"),
                    "write it like \"30s\", \"500ms\", \"2m\" or a number of seconds (at most 7 days)",
                );
                default
            }
        },
    }
}

pub(super) fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Validate `text`; with `disks`, also read the sbd headers (msgwait).
pub(super) fn parse(text: &str, disks: bool) -> Result<Config, Vec<Problem>> {
    let mut p = Problems(Vec::new());
    let table: toml::Table = match text.parse() {
        Ok(t) => t,
        Err(e) => {
            p.add(
                "(syntax)",
                e.to_string().trim().replace('\n', " "),
                "fix the TOML syntax at the line shown",
            );
            return Err(p.0);
        }
    };
    let mut raw_daemon = RawDaemon::default();
    let mut raw_nodes: Vec<(String, RawNode)> = Vec::new();
    let mut raw_devices: Vec<(String, RawDevice)> = Vec::new();
    let mut raw_levels: Vec<(String, RawLevel)> = Vec::new();
    let mut raw_local = super::node::RawLocal::default();
    let mut raw_cluster: Option<super::raw::RawCluster> = None;
    let mut raw_resources = super::resources::RawResources::default();
    let sections = super::cluster::section_hashes(&table);
    for (key, value) in table {
        match key.as_str() {
            "daemon" => match RawDaemon::deserialize(value) {
                Ok(d) => raw_daemon = d,
                Err(e) => p.add("daemon", e.to_string(), "see the [daemon] keys in README"),
            },
            "node" => each_item(&mut p, "node", value, &mut raw_nodes),
            "device" => each_item(&mut p, "device", value, &mut raw_devices),
            "level" => each_item(&mut p, "level", value, &mut raw_levels),
            "watchdog" => raw_local.watchdog = section(&mut p, "watchdog", value),
            "sbd" => raw_local.sbd = section(&mut p, "sbd", value),
            "quorum" => raw_local.quorum = section(&mut p, "quorum", value),
            "self_fence" => raw_local.self_fence = section(&mut p, "self_fence", value),
            "cluster" => {
                raw_cluster = Some(section(&mut p, "cluster", value).unwrap_or_default())
            }
            "resource" | "group" | "clone" | "colocation" | "order" | "location" => {
                let _ = raw_resources.take(&mut p, &key, value);
            }
            other => p.add(
                other,
                format!("unknown top-level key `{other}`"),
                "use [daemon], [cluster], [watchdog], [sbd], [quorum], [self_fence], [[node]], [[device]], [[level]], [[resource]], [[group]], [[clone]], [[colocation]], [[order]] or [[location]]",
            ),
        }
    }

    let node_name = raw_daemon.node_name.clone();
    let daemon = daemon_from_raw(&mut p, raw_daemon);
    let local = super::node::local_from_raw(&mut p, raw_local, node_name);
    let nodes = nodes_from_raw(&mut p, raw_nodes);
    let node_names: BTreeSet<String> = nodes.iter().map(|n| n.name.clone()).collect();
    let resources = super::resources::resources_from_raw(&mut p, raw_resources, &nodes, disks);
    let cluster = raw_cluster
        .and_then(|raw| super::cluster::cluster_from_raw(&mut p, raw, &nodes, &local.name));

    let mut devices = Vec::new();
    let mut seen = HashSet::new();
    for (key, raw) in raw_devices {
        if !seen.insert(raw.name.clone()) {
            p.add(
                format!("{key}.name"),
                format!("device `{}` is defined twice", raw.name),
                "give every [[device]] a unique name",
            );
            continue;
        }
        if let Some(d) = device_checked(&mut p, &key, raw, &node_names) {
            devices.push(d);
        }
    }
    let device_names: BTreeSet<String> = devices.iter().map(|d| d.name.clone()).collect();

    let mut levels: Vec<Level> = Vec::new();
    for (key, raw) in raw_levels {
        if let Some(l) = level_checked(&mut p, &key, raw, &node_names, &device_names) {
            if levels
                .iter()
                .any(|o| o.index == l.index && o.target == l.target)
            {
                p.add(
                    format!("{key}.index"),
                    format!("level {} for `{}` is defined twice", l.index, l.target),
                    "give each level of a target its own index (1-9)",
                );
                continue;
            }
            levels.push(l);
        }
    }
    levels.sort_by_key(|l| l.index);

    // SBD devices: msgwait lives in the disks' headers (only when asked:
    // `config check` and daemon start, never a plain load).
    let mut disk_timeouts = None;
    if disks {
        for d in &devices {
            if let DeviceKind::Sbd(s) = &d.kind {
                sbd_disks_checked(&mut p, d, s, Some(daemon.fencing_timeout));
            }
        }
        if let Some(s) = &local.sbd {
            let headers = read_sbd_headers(&s.devices, s.sector_size, s.io_timeout);
            disk_timeouts = super::node::local_disks_checked(&mut p, &local, &headers);
            if let Some(t) = disk_timeouts {
                if daemon.fencing_timeout <= t.msgwait {
                    p.add(
                        "daemon.fencing_timeout",
                        format!(
                            "{} is not above msgwait {} of this node's sbd disks",
                            humantime::format_duration(daemon.fencing_timeout),
                            humantime::format_duration(t.msgwait)
                        ),
                        "raise daemon.fencing_timeout above msgwait (a fence by poison pill waits msgwait)",
                    );
                }
            }
        }
    }

    // Timeout chain: one level's worst case must fit in the fencing timeout.
    for d in &devices {
        let worst = d
            .delay
            .base
            .max(d.delay.max)
            .saturating_add(d.timeouts.off.saturating_mul(d.retries.off + 1));
        if worst >= daemon.fencing_timeout {
            p.add(
                format!("device[{}].timeouts.off", d.name),
                format!(
                    "max(delay_base, delay_max) + timeouts.off x (retries.off + 1) = {} is not below daemon.fencing_timeout = {}, so no later level could ever run",
                    humantime::format_duration(worst),
                    humantime::format_duration(daemon.fencing_timeout)
                ),
                "lower the device's delays, timeout or retries, or raise daemon.fencing_timeout",
            );
        }
    }

    if p.0.is_empty() {
        Ok(Config {
            daemon,
            nodes,
            devices,
            levels,
            local,
            disk_timeouts,
            cluster,
            sections,
            resources,
        })
    } else {
        Err(p.0)
    }
}

/// One `[section]` table deserialized on its own.
fn section<T: for<'de> Deserialize<'de>>(
    p: &mut Problems,
    name: &str,
    value: toml::Value,
) -> Option<T> {
    match T::deserialize(value) {
        Ok(t) => Some(t),
        Err(e) => {
            p.add(
                name,
                e.to_string().trim().to_string(),
                format!("see the [{name}] keys in README"),
            );
            None
        }
    }
}

pub(super) fn each_item<T: for<'de> Deserialize<'de> + HasName>(
    p: &mut Problems,
    section: &str,
    value: toml::Value,
    out: &mut Vec<(String, T)>,
) {
    let items = match value {
        toml::Value::Array(a) => a,
        _ => {
            p.add(
                section,
                format!("`{section}` must be an array of tables"),
                format!("write each entry as [[{section}]]"),
            );
            return;
        }
    };
    for (i, item) in items.into_iter().enumerate() {
        let label = item
            .get("name")
            .or_else(|| item.get("id"))
            .and_then(|v| v.as_str())
            .map(|n| format!("{section}[{n}]"))
            .unwrap_or_else(|| format!("{section}[#{}]", i + 1));
        match T::deserialize(item) {
            Ok(t) => {
                let label = t.label(section).unwrap_or(label);
                out.push((label, t))
            }
            Err(e) => p.add(
                label,
                e.to_string().trim().to_string(),
                format!("check the keys of this [[{section}]] against the README"),
            ),
        }
    }
}

/// The label of an item once it deserialized (`None`: keep the one from
/// its `name` or `id` key, else its position).
pub(super) trait HasName {
    fn label(&self, section: &str) -> Option<String> {
        let _ = section;
        None
    }
}
impl HasName for RawNode {
    fn label(&self, section: &str) -> Option<String> {
        Some(format!("{section}[{}]", self.name))
    }
}
impl HasName for RawDevice {
    fn label(&self, section: &str) -> Option<String> {
        Some(format!("{section}[{}]", self.name))
    }
}
impl HasName for RawLevel {
    fn label(&self, section: &str) -> Option<String> {
        let t = self
            .target
            .as_deref()
            .or(self.target_regex.as_deref())
            .or(self.target_attribute.as_deref())?;
        Some(format!("{section}[{t}#{}]", self.index))
    }
}

fn daemon_from_raw(p: &mut Problems, raw: RawDaemon) -> DaemonConfig {
    let fencing_timeout = duration(
        p,
        "daemon.fencing_timeout",
        &raw.fencing_timeout,
        DEFAULT_FENCING_TIMEOUT,
    );
    if fencing_timeout.is_zero() {
        p.add(
            "daemon.fencing_timeout",
            "must be greater than zero",
            "set e.g. fencing_timeout = \"120s\"",
        );
    }
    let verify_interval = duration(
        p,
        "daemon.verify_interval",
        &raw.verify_interval,
        DEFAULT_VERIFY_INTERVAL,
    );
    if verify_interval.is_zero() {
        p.add(
            "daemon.verify_interval",
            "must be greater than zero",
            "set e.g. verify_interval = \"500ms\"",
        );
    }
    let max_share = raw.storm_max_share.unwrap_or(0.5);
    if !(max_share > 0.0 && max_share <= 1.0) {
        p.add(
            "daemon.storm_max_share",
            format!("{max_share} is not a share of nodes in (0, 1]"),
            "set e.g. storm_max_share = 0.5 (at most half the nodes fenced automatically within storm_window)",
        );
    }
    let window = duration(
        p,
        "daemon.storm_window",
        &raw.storm_window,
        Duration::from_secs(300),
    );
    if let Some(g) = &raw.socket_group {
        if nix::unistd::Group::from_name(g).ok().flatten().is_none() {
            p.add(
                "daemon.socket_group",
                format!("group `{g}` does not exist on this host"),
                format!("create it (groupadd {g}) or name an existing group"),
            );
        }
    }
    for k in raw.agent_env.keys() {
        let name_ok = !k.is_empty()
            && !k.starts_with(|c: char| c.is_ascii_digit())
            && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !name_ok {
            p.add(
                format!("daemon.agent_env.{k}"),
                "is not an environment variable name",
                "use letters, digits and '_', e.g. HA_VARRUN",
            );
        } else if k.starts_with("OCF_") || k == "PATH" || k == "HA_SBIN_DIR" || k == "HA_RSCTMP" {
            p.add(
                format!("daemon.agent_env.{k}"),
                "is set by ironfenced for every agent",
                "set parameters with [[resource]] params, HA_RSCTMP with [daemon] resource_tmp",
            );
        }
    }
    DaemonConfig {
        socket: raw.socket.unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET)),
        socket_group: raw.socket_group,
        state_dir: raw
            .state_dir
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR)),
        fencing_timeout,
        verify_interval,
        storm: StormGuard { max_share, window },
        resource_tmp: raw
            .resource_tmp
            .unwrap_or_else(|| PathBuf::from("/run/resource-agents")),
        agent_env: raw.agent_env,
    }
}

fn nodes_from_raw(p: &mut Problems, raw: Vec<(String, RawNode)>) -> Vec<Node> {
    let mut names = HashSet::new();
    let mut ids = HashSet::new();
    let mut out = Vec::new();
    for (key, n) in raw {
        if !valid_name(&n.name) {
            p.add(
                format!("{key}.name"),
                format!("`{}` is not a valid node name", n.name),
                "use 1-63 letters, digits, '-', '_' or '.'",
            );
            continue;
        }
        if !names.insert(n.name.clone()) {
            p.add(
                format!("{key}.name"),
                format!("node `{}` is defined twice", n.name),
                "list each node once",
            );
            continue;
        }
        if let Some(id) = n.id {
            if !ids.insert(id) {
                p.add(
                    format!("{key}.id"),
                    format!("node id {id} is used by another node"),
                    "give every node a unique id (corosync nodeid)",
                );
            }
        }
        out.push(Node {
            name: n.name,
            id: n.id,
            attributes: n.attributes,
        });
    }
    out
}

/// Validate one device on its own (used at runtime by `device add`).
pub fn device_from_raw(
    raw: RawDevice,
    nodes: &BTreeSet<String>,
) -> Result<DeviceConfig, Vec<Problem>> {
    let mut p = Problems(Vec::new());
    let key = format!("device[{}]", raw.name);
    match device_checked(&mut p, &key, raw, nodes) {
        Some(d) if p.0.is_empty() => {
            if let DeviceKind::Sbd(s) = &d.kind {
                sbd_disks_checked(&mut p, &d, s, None);
            }
            if p.0.is_empty() {
                Ok(d)
            } else {
                Err(p.0)
            }
        }
        _ => Err(p.0),
    }
}

/// Validate one level on its own (used at runtime by `level add`).
pub fn level_from_raw(
    raw: RawLevel,
    nodes: &BTreeSet<String>,
    devices: &BTreeSet<String>,
) -> Result<Level, Vec<Problem>> {
    let mut p = Problems(Vec::new());
    match level_checked(&mut p, "level", raw, nodes, devices) {
        Some(l) if p.0.is_empty() => Ok(l),
        _ => Err(p.0),
    }
}

fn toml_value_text(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(if *b { "1" } else { "0" }.to_string()),
        _ => None,
    }
}

fn device_checked(
    p: &mut Problems,
    key: &str,
    raw: RawDevice,
    nodes: &BTreeSet<String>,
) -> Option<DeviceConfig> {
    let before = p.0.len();
    if !valid_name(&raw.name) {
        p.add(
            format!("{key}.name"),
            format!("`{}` is not a valid device name", raw.name),
            "use 1-63 letters, digits, '-', '_' or '.'",
        );
    }
    let kind = match raw.kind.as_str() {
        "sim" => {
            if raw.agent.is_some() {
                p.add(
                    format!("{key}.agent"),
                    "`agent` is only for kind = \"agent\"",
                    "remove it, or set kind = \"agent\"",
                );
            }
            if !raw.params.is_empty() {
                p.add(
                    format!("{key}.params"),
                    "`params` are only for kind = \"agent\"",
                    "remove them; a sim device is configured in [device.sim]",
                );
            }
            let s = raw.sim.clone().unwrap_or_default();
            let fault = match s.fault.as_deref() {
                None => SimFault::None,
                Some(f) => SimFault::parse(f).unwrap_or_else(|| {
                    p.add(
                        format!("{key}.sim.fault"),
                        format!("unknown fault `{f}`"),
                        "use one of none, slow, silent, refuses, lies",
                    );
                    SimFault::None
                }),
            };
            let slow_by = duration(
                p,
                &format!("{key}.sim.slow_by"),
                &s.slow_by,
                Duration::from_secs(2),
            );
            let initially_on = match s.initial.as_deref() {
                None | Some("on") => true,
                Some("off") => false,
                Some(o) => {
                    p.add(
                        format!("{key}.sim.initial"),
                        format!("`{o}` is not a power state"),
                        "use \"on\" or \"off\"",
                    );
                    true
                }
            };
            DeviceKind::Sim(SimConfig {
                fault,
                slow_by,
                state_file: s.state_file,
                initially_on,
            })
        }
        "agent" => {
            if raw.sim.is_some() {
                p.add(
                    format!("{key}.sim"),
                    "[device.sim] is only for kind = \"sim\"",
                    "remove it",
                );
            }
            let agent = match &raw.agent {
                None => {
                    p.add(
                        format!("{key}.agent"),
                        "kind = \"agent\" needs the agent to run",
                        "set agent = \"fence_ipmilan\" (or another installed fence_* agent)",
                    );
                    String::new()
                }
                Some(a) => {
                    if crate::agent::runner::locate(a).is_none() {
                        p.add(
                            format!("{key}.agent"),
                            format!("fence agent `{a}` is not installed (looked in /usr/sbin, /sbin, /usr/local/sbin and PATH)"),
                            "install it (e.g. apt install fence-agents) or give its absolute path",
                        );
                    }
                    a.clone()
                }
            };
            let mut params = BTreeMap::new();
            if let Some(addr) = &raw.address {
                if raw.params.contains_key("ip") || raw.params.contains_key("ipaddr") {
                    p.add(
                        format!("{key}.address"),
                        "both `address` and params.ip are set",
                        "keep one: address = \"10.0.0.5\" is passed to the agent as ip",
                    );
                }
                params.insert("ip".to_string(), addr.clone());
            }
            for (k, v) in &raw.params {
                let reserved = ["action", "password", "passwd", "plug", "port", "nodename"];
                if reserved.contains(&k.as_str()) {
                    p.add(
                        format!("{key}.params.{k}"),
                        format!("`{k}` is set by ironfence, not in params"),
                        "use the device's password / password_file / password_script and host_map keys instead",
                    );
                    continue;
                }
                match toml_value_text(v) {
                    Some(t) => {
                        params.insert(k.clone(), t);
                    }
                    None => p.add(
                        format!("{key}.params.{k}"),
                        "agent parameters must be strings, numbers or booleans",
                        "write it as key = \"value\"",
                    ),
                }
            }
            DeviceKind::Agent(AgentDeviceConfig { agent, params })
        }
        "ipmi" => {
            if raw.agent.is_some() || !raw.params.is_empty() || raw.sim.is_some() {
                p.add(
                    format!("{key}.kind"),
                    "`agent`, `params` and [device.sim] do not apply to kind = \"ipmi\"",
                    "remove them; IPMI settings go in [device.ipmi]",
                );
            }
            if raw.password.is_none()
                && raw.password_file.is_none()
                && raw.password_script.is_none()
            {
                p.add(
                    format!("{key}.password"),
                    "an IPMI device needs a password",
                    "set password_file (recommended), password_script or password",
                );
            }
            DeviceKind::Ipmi(ipmi_checked(p, key, &raw)?)
        }
        "redfish" => {
            if raw.agent.is_some()
                || !raw.params.is_empty()
                || raw.sim.is_some()
                || raw.ipmi.is_some()
            {
                p.add(
                    format!("{key}.kind"),
                    "`agent`, `params`, [device.sim] and [device.ipmi] do not apply to kind = \"redfish\"",
                    "remove them; Redfish settings go in [device.redfish]",
                );
            }
            if raw.password.is_none()
                && raw.password_file.is_none()
                && raw.password_script.is_none()
            {
                p.add(
                    format!("{key}.password"),
                    "a Redfish device needs a password",
                    "set password_file (recommended), password_script or password",
                );
            }
            if raw.username.as_deref().is_none_or(str::is_empty) {
                p.add(
                    format!("{key}.username"),
                    "a Redfish device needs a user name",
                    "set username = \"...\"",
                );
            }
            DeviceKind::Redfish(redfish_checked(p, key, &raw)?)
        }
        "sbd" => {
            if raw.agent.is_some()
                || !raw.params.is_empty()
                || raw.sim.is_some()
                || raw.ipmi.is_some()
                || raw.redfish.is_some()
                || raw.address.is_some()
                || raw.username.is_some()
                || raw.password.is_some()
                || raw.password_file.is_some()
                || raw.password_script.is_some()
            {
                p.add(
                    format!("{key}.kind"),
                    "`agent`, `params`, `address`, credentials, [device.sim], [device.ipmi] and [device.redfish] do not apply to kind = \"sbd\"",
                    "remove them; the shared disks and their settings go in sbd = { devices = [...] }",
                );
            }
            DeviceKind::Sbd(sbd_checked(p, key, &raw)?)
        }
        other => {
            p.add(
                format!("{key}.kind"),
                format!("unknown device kind `{other}`"),
                "use \"ipmi\", \"redfish\", \"sbd\" (poison pill on shared disks), \"agent\" (any fence_* agent) or \"sim\" (simulated BMC)",
            );
            return None;
        }
    };
    if raw.sbd.is_some() && !matches!(kind, DeviceKind::Sbd(_)) {
        p.add(
            format!("{key}.sbd"),
            "`sbd = { ... }` is only for kind = \"sbd\"",
            "remove it, or set kind = \"sbd\"",
        );
    }

    let sources = [
        raw.password.is_some(),
        raw.password_file.is_some(),
        raw.password_script.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if sources > 1 {
        p.add(
            format!("{key}.password"),
            "more than one of password, password_file, password_script is set",
            "keep exactly one",
        );
    }
    let password = if let Some(pw) = raw.password {
        PasswordSource::Inline(Secret::new(pw))
    } else if let Some(f) = raw.password_file {
        if !f.is_file() {
            p.add(
                format!("{key}.password_file"),
                format!("{} is not a readable file", f.display()),
                "create the file (mode 0600, owned by root) or fix the path",
            );
        }
        PasswordSource::File(f)
    } else if let Some(s) = raw.password_script {
        PasswordSource::Script(s)
    } else {
        PasswordSource::None
    };

    let list = raw.host_list.unwrap_or_default();
    let map = raw.host_map.unwrap_or_default();
    for n in list.iter().chain(map.keys()) {
        if !nodes.contains(n) {
            p.add(
                format!("{key}.host_list"),
                format!("`{n}` is not a declared node"),
                "declare it as a [[node]] or fix the spelling",
            );
        }
    }
    for (n, plug) in &map {
        if plug.is_empty() {
            p.add(
                format!("{key}.host_map.{n}"),
                "empty plug name",
                "map the node to the device's port/plug name",
            );
        }
    }
    let mut plugs: Vec<&String> = map.values().collect();
    plugs.sort();
    if plugs.windows(2).any(|w| w[0] == w[1]) {
        p.add(
            format!("{key}.host_map"),
            "two nodes map to the same plug: fencing one would power off the other",
            "give every node its own plug",
        );
    }
    if let DeviceKind::Ipmi(_) = &kind {
        let named: std::collections::BTreeSet<&String> = list.iter().chain(map.keys()).collect();
        if named.len() != 1 {
            p.add(
                format!("{key}.host_list"),
                format!(
                    "an IPMI device (one BMC) must fence exactly one node; it names {}",
                    named.len()
                ),
                "set host_list = [\"the-node-this-BMC-belongs-to\"] and define one device per BMC",
            );
        }
        if matches!(raw.host_check.as_deref(), Some(c) if c != "static-list") {
            p.add(
                format!("{key}.host_check"),
                "an IPMI device only fences the node in its host_list",
                "remove host_check (static-list is the only choice for a BMC)",
            );
        }
    }
    if let DeviceKind::Agent(_) = &kind {
        if list.is_empty() && map.is_empty() && raw.host_check.is_none() {
            p.add(
                format!("{key}.host_list"),
                "no host_list or host_map, and no host_check: which nodes may this device fence?",
                "list them in host_list (or set host_check = \"dynamic-list\" if the agent's list action names them)",
            );
        }
    }
    let default_check = if !list.is_empty() || !map.is_empty() {
        HostCheck::StaticList
    } else {
        HostCheck::DynamicList
    };
    let check = match raw.host_check.as_deref() {
        None => default_check,
        Some(c) => HostCheck::parse(c).unwrap_or_else(|| {
            p.add(
                format!("{key}.host_check"),
                format!("unknown host_check `{c}`"),
                "use static-list, dynamic-list, status or none",
            );
            default_check
        }),
    };
    if check == HostCheck::StaticList && list.is_empty() && map.is_empty() {
        p.add(
            format!("{key}.host_check"),
            "host_check = \"static-list\" but neither host_list nor host_map names a node",
            "list the nodes this device fences in host_list, or use dynamic-list",
        );
    }

    let action_limit = match raw.action_limit {
        None => 1,
        Some(n) if (1..=64).contains(&n) => n as u32,
        Some(n) => {
            p.add(
                format!("{key}.action_limit"),
                format!("{n} is out of range"),
                "use 1 to 64 concurrent actions on this device",
            );
            1
        }
    };
    let delay = Delay {
        base: duration(
            p,
            &format!("{key}.delay_base"),
            &raw.delay_base,
            Duration::ZERO,
        ),
        max: duration(
            p,
            &format!("{key}.delay_max"),
            &raw.delay_max,
            Duration::ZERO,
        ),
    };
    let t = &raw.timeouts;
    let tk = |a: &str| format!("{key}.timeouts.{a}");
    let timeouts = Timeouts {
        off: duration(p, &tk("off"), &t.off, DEFAULT_ATTEMPT_TIMEOUT),
        on: duration(p, &tk("on"), &t.on, DEFAULT_ATTEMPT_TIMEOUT),
        status: duration(p, &tk("status"), &t.status, DEFAULT_QUERY_TIMEOUT),
        list: duration(p, &tk("list"), &t.list, DEFAULT_QUERY_TIMEOUT),
        monitor: duration(p, &tk("monitor"), &t.monitor, DEFAULT_QUERY_TIMEOUT),
    };
    for (a, d) in [
        ("off", timeouts.off),
        ("on", timeouts.on),
        ("status", timeouts.status),
        ("list", timeouts.list),
        ("monitor", timeouts.monitor),
    ] {
        if d.is_zero() {
            p.add(
                tk(a),
                "a timeout of zero can never succeed",
                "set e.g. \"20s\"",
            );
        }
    }
    let retries = retries_checked(p, key, &raw.retries);
    if p.0.len() > before {
        return None;
    }
    Some(DeviceConfig {
        name: raw.name,
        kind,
        username: raw.username,
        password,
        hosts: Hosts { list, map, check },
        action_limit,
        delay,
        timeouts,
        retries,
    })
}

fn redfish_checked(p: &mut Problems, key: &str, raw: &RawDevice) -> Option<RedfishDeviceConfig> {
    use crate::redfish::client::{AuthMode, SystemSelector};
    use crate::redfish::tls::{parse_fingerprint, TlsMode};
    let r = raw.redfish.clone().unwrap_or_default();
    let address = match &raw.address {
        Some(a) if !a.trim().is_empty() => a.trim().to_string(),
        _ => {
            p.add(
                format!("{key}.address"),
                "a Redfish device needs the BMC's address",
                "set address = \"10.0.0.5\" (host name or IP of the BMC)",
            );
            String::new()
        }
    };
    let http = match r.scheme.as_deref() {
        None | Some("https") => false,
        Some("http") => true,
        Some(o) => {
            p.add(
                format!("{key}.redfish.scheme"),
                format!("`{o}` is not https or http"),
                "use \"https\" (default) or \"http\"",
            );
            false
        }
    };
    let port = match r.port {
        None => {
            if http {
                80
            } else {
                443
            }
        }
        Some(n) if (1..=65535).contains(&n) => n as u16,
        Some(n) => {
            p.add(
                format!("{key}.redfish.port"),
                format!("{n} is not a TCP port"),
                "use 1-65535",
            );
            443
        }
    };
    let chosen = [
        r.ca_file.is_some(),
        r.fingerprint.is_some(),
        r.insecure == Some(true),
        http,
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if chosen > 1 {
        p.add(
            format!("{key}.redfish"),
            "more than one of ca_file, fingerprint, insecure = true, scheme = \"http\"",
            "choose one way to trust the BMC",
        );
    }
    let tls = if http {
        TlsMode::PlainHttp
    } else if r.insecure == Some(true) {
        TlsMode::Insecure
    } else if let Some(f) = &r.fingerprint {
        match parse_fingerprint(f) {
            Some(fp) => TlsMode::Pinned(fp),
            None => {
                p.add(
                    format!("{key}.redfish.fingerprint"),
                    "not a SHA-256 fingerprint",
                    "write 32 hex bytes, e.g. from `openssl x509 -noout -fingerprint -sha256`",
                );
                TlsMode::Insecure
            }
        }
    } else {
        if let Some(ca) = &r.ca_file {
            if !ca.is_file() {
                p.add(
                    format!("{key}.redfish.ca_file"),
                    format!("{} is not a readable file", ca.display()),
                    "give the PEM file of the CA that signed the BMC's certificate",
                );
            }
        }
        TlsMode::Verify {
            ca_file: r.ca_file.clone(),
        }
    };
    let auth = match r.auth.as_deref() {
        None | Some("auto") => AuthMode::Auto,
        Some("session") => AuthMode::Session,
        Some("basic") => AuthMode::Basic,
        Some(o) => {
            p.add(
                format!("{key}.redfish.auth"),
                format!("unknown auth `{o}`"),
                "use auto, session or basic",
            );
            AuthMode::Auto
        }
    };
    let root = r.root.clone().unwrap_or_else(|| "/redfish/v1".into());
    if !root.starts_with('/') {
        p.add(
            format!("{key}.redfish.root"),
            "must be a path starting with /",
            "use \"/redfish/v1\"",
        );
    }
    let request_timeout = duration(
        p,
        &format!("{key}.redfish.request_timeout"),
        &r.request_timeout,
        Duration::from_secs(10),
    );
    if request_timeout.is_zero() {
        p.add(
            format!("{key}.redfish.request_timeout"),
            "must be greater than zero",
            "use e.g. \"10s\"",
        );
    }
    let system = SystemSelector::parse(r.system.as_deref().unwrap_or(""));
    let nodes = raw.host_list.as_ref().map(Vec::len).unwrap_or(0);
    let mapped = raw.host_map.as_ref().map(|m| m.len()).unwrap_or(0);
    if nodes + mapped == 0 {
        p.add(
            format!("{key}.host_list"),
            "a Redfish device must name the node(s) it fences",
            "set host_list = [\"node\"] (one system), or host_map = { node = \"id:1\" } for several systems",
        );
    } else if nodes > 1 || (nodes >= 1 && mapped >= 1) {
        p.add(
            format!("{key}.host_list"),
            "several nodes on one Redfish device need host_map (node -> system id/uuid/serial/hostname)",
            "use host_map = { node-a = \"id:1\", node-b = \"id:2\" }",
        );
    }
    if matches!(raw.host_check.as_deref(), Some(c) if c != "static-list") {
        p.add(
            format!("{key}.host_check"),
            "a Redfish device fences the nodes named in host_list/host_map",
            "remove host_check",
        );
    }
    let profile = r.profile.clone().filter(|p| p != "auto");
    if let Some(name) = &profile {
        if crate::profiles::Profiles::builtin().by_name(name).is_none() {
            let names: Vec<String> = crate::profiles::Profiles::builtin()
                .all()
                .iter()
                .map(|p| p.name.clone())
                .collect();
            p.add(
                format!("{key}.redfish.profile"),
                format!("no vendor profile `{name}`"),
                format!("use \"auto\" or one of: {}", names.join(", ")),
            );
        }
    }
    Some(RedfishDeviceConfig {
        address,
        port,
        tls,
        system,
        auth,
        root,
        request_timeout,
        profile,
    })
}

fn ipmi_checked(p: &mut Problems, key: &str, raw: &RawDevice) -> Option<IpmiConfig> {
    use crate::ipmi::{CipherChoice, Privilege};
    let i = raw.ipmi.clone().unwrap_or_default();
    let address = match &raw.address {
        Some(a) if !a.trim().is_empty() => a.trim().to_string(),
        _ => {
            p.add(
                format!("{key}.address"),
                "an IPMI device needs the BMC's address",
                "set address = \"10.0.0.5\" (host name or IP of the BMC)",
            );
            String::new()
        }
    };
    let port = match i.port {
        None => 623,
        Some(n) if (1..=65535).contains(&n) => n as u16,
        Some(n) => {
            p.add(
                format!("{key}.ipmi.port"),
                format!("{n} is not a UDP port"),
                "use 1-65535 (IPMI's is 623)",
            );
            623
        }
    };
    let allow_insecure = i.allow_insecure.unwrap_or(false);
    let cipher = match &i.cipher {
        None => CipherChoice::Auto,
        Some(toml::Value::String(s)) if s == "auto" => CipherChoice::Auto,
        Some(v) => {
            let n = match v {
                toml::Value::Integer(n) => Some(*n),
                toml::Value::String(s) => s.parse::<i64>().ok(),
                _ => None,
            };
            match n
                .and_then(|n| u8::try_from(n).ok())
                .and_then(crate::ipmi::crypto::CipherSuite::by_id)
            {
                Some(s) => {
                    let weak = s.auth == crate::ipmi::crypto::AuthAlg::None
                        || s.integrity == crate::ipmi::crypto::IntegrityAlg::None;
                    if weak && !allow_insecure {
                        p.add(
                            format!("{key}.ipmi.cipher"),
                            format!("cipher suite {} has no authentication or integrity protection", s.id),
                            "use 17 or 3 (or \"auto\"); only with allow_insecure = true may a weaker suite be used",
                        );
                    }
                    CipherChoice::Suite(s.id)
                }
                None => {
                    p.add(
                        format!("{key}.ipmi.cipher"),
                        format!("`{v}` is not a supported cipher suite"),
                        "use \"auto\" (17, else 3), 17, 16, 3 or 2",
                    );
                    CipherChoice::Auto
                }
            }
        }
    };
    let privilege = match i.privilege.as_deref() {
        None => Privilege::Administrator,
        Some(s) => match Privilege::parse(s) {
            Some(Privilege::User) => {
                p.add(
                    format!("{key}.ipmi.privilege"),
                    "privilege `user` cannot control chassis power",
                    "use operator or administrator",
                );
                Privilege::User
            }
            Some(pr) => pr,
            None => {
                p.add(
                    format!("{key}.ipmi.privilege"),
                    format!("unknown privilege `{s}`"),
                    "use operator or administrator",
                );
                Privilege::Administrator
            }
        },
    };
    let kg = match &i.hexadecimal_kg {
        None => None,
        Some(h) => match crate::secret::decode_hex(h) {
            Some(bytes) if bytes.len() <= 20 => Some(Secret::new(h.trim())),
            _ => {
                p.add(
                    format!("{key}.ipmi.hexadecimal_kg"),
                    "not a hex string of at most 20 bytes",
                    "write the BMC key as hex, e.g. \"6b6579\"",
                );
                None
            }
        },
    };
    let retransmit = duration(
        p,
        &format!("{key}.ipmi.retransmit"),
        &i.retransmit,
        Duration::from_millis(250),
    );
    if retransmit < Duration::from_millis(10) {
        p.add(
            format!("{key}.ipmi.retransmit"),
            "below 10 ms",
            "use e.g. \"250ms\"",
        );
    }
    // fence_ipmilan's login_timeout default
    let login_timeout = duration(
        p,
        &format!("{key}.ipmi.login_timeout"),
        &i.login_timeout,
        Duration::from_secs(5),
    );
    if login_timeout < retransmit {
        p.add(
            format!("{key}.ipmi.login_timeout"),
            "shorter than ipmi.retransmit: the BMC would get one datagram",
            "give it at least two retransmit intervals, e.g. \"1s\"",
        );
    }
    if let Some(u) = &raw.username {
        if u.len() > 16 {
            p.add(
                format!("{key}.username"),
                "longer than the 16 bytes IPMI allows",
                "use a shorter BMC user",
            );
        }
    }
    Some(IpmiConfig {
        address,
        port,
        cipher,
        privilege,
        kg,
        allow_insecure,
        retransmit,
        login_timeout,
    })
}

/// Default limit of one sector read or write (sbd's `-I` default).
const DEFAULT_SBD_IO_TIMEOUT: Duration = Duration::from_secs(3);

fn sbd_checked(p: &mut Problems, key: &str, raw: &RawDevice) -> Option<SbdDeviceConfig> {
    let Some(s) = raw.sbd.clone() else {
        p.add(
            format!("{key}.sbd"),
            "an sbd device needs its shared disks",
            "set sbd = { devices = [\"/dev/disk/by-id/...\"] } (1 to 3 disks)",
        );
        return None;
    };
    let dk = format!("{key}.sbd.devices");
    let devices: Vec<PathBuf> = s
        .devices
        .unwrap_or_default()
        .iter()
        .map(|d| PathBuf::from(d.trim()))
        .collect();
    if devices.is_empty() || devices.len() > 3 {
        p.add(
            &dk,
            format!("{} disk(s): sbd uses 1 to 3", devices.len()),
            "list 1 to 3 shared disks (3 is best: a fence needs a majority of them, so one may fail)",
        );
    }
    for d in &devices {
        if !d.is_absolute() {
            p.add(
                &dk,
                format!("`{}` is not an absolute path", d.display()),
                "name each disk by a stable absolute path, e.g. /dev/disk/by-id/...",
            );
        }
    }
    let unique: BTreeSet<&PathBuf> = devices.iter().collect();
    if unique.len() != devices.len() {
        p.add(
            &dk,
            "a disk is listed twice",
            "list each shared disk once (a disk counted twice would fake a majority)",
        );
    }
    let sector_size = match s.sector_size {
        None => None,
        Some(n @ (512 | 4096)) => Some(n as u32),
        Some(n) => {
            p.add(
                format!("{key}.sbd.sector_size"),
                format!("{n} is not a sector size sbd uses"),
                "use 512 or 4096 (only needed for disk images in regular files)",
            );
            None
        }
    };
    let io_timeout = duration(
        p,
        &format!("{key}.sbd.io_timeout"),
        &s.io_timeout,
        DEFAULT_SBD_IO_TIMEOUT,
    );
    if io_timeout.is_zero() {
        p.add(
            format!("{key}.sbd.io_timeout"),
            "must be greater than zero",
            "use e.g. \"3s\" (sbd's default)",
        );
    }
    let from = match s.from {
        Some(f) => f,
        None => match crate::sbd::servant::local_name() {
            Ok(h) => h,
            Err(e) => {
                p.add(
                    format!("{key}.sbd.from"),
                    format!("cannot read this host's name: {e}"),
                    "set sbd.from = \"name-of-this-node\"",
                );
                String::new()
            }
        },
    };
    if from.is_empty() || from.len() > crate::sbd::format::NAME_MAX || from.contains('\0') {
        p.add(
            format!("{key}.sbd.from"),
            format!("`{from}` cannot be written as an sbd sender name"),
            "use 1 to 63 bytes, e.g. this node's name",
        );
    }
    if let Some(map) = &raw.host_map {
        for (n, slot) in map {
            if slot.len() > crate::sbd::format::NAME_MAX || slot.contains('\0') {
                p.add(
                    format!("{key}.host_map.{n}"),
                    format!("`{slot}` cannot be an sbd slot name"),
                    "map the node to its slot name as `sbd list` shows it (at most 63 bytes)",
                );
            }
        }
    }
    Some(SbdDeviceConfig {
        devices,
        sector_size,
        io_timeout,
        crashdump: s.crashdump.unwrap_or(false),
        from,
    })
}

/// Read the headers of an sbd device's disks (this is the only config
/// check that does I/O: msgwait lives on the disks) and check the timeout
/// chain against them: every disk readable, the disks' timeouts equal,
/// msgwait above the watchdog timeout, and the device's off timeout and
/// (when known) the fencing timeout above msgwait + 2 x io_timeout (a dead
/// disk costs one io_timeout while the pill is written, and another while
/// it is read back).
fn sbd_disks_checked(
    p: &mut Problems,
    d: &DeviceConfig,
    s: &SbdDeviceConfig,
    fencing_timeout: Option<Duration>,
) {
    let key = format!("device[{}].sbd.devices", d.name);
    let mut readable = Vec::new();
    let mut to_read = Vec::new();
    for path in &s.devices {
        match std::fs::metadata(path) {
            Ok(m) if m.is_file() && s.sector_size.is_none() => p.add(
                &key,
                format!(
                    "{} is a regular file: its sector size is not known",
                    path.display()
                ),
                "set sbd.sector_size = 512 (or 4096), as the image was created with",
            ),
            _ => to_read.push(path.clone()),
        }
    }
    for (path, r) in read_sbd_headers(&to_read, s.sector_size, s.io_timeout) {
        match r {
            Ok(h) => readable.push((path, h)),
            Err(e) => p.add(
                &key,
                format!("cannot read the sbd header of {}: {e}", path.display()),
                format!(
                    "check that the disk is attached and readable from this node (ls -l {}), and initialised (ironfence sbd -d {} create)",
                    path.display(),
                    path.display()
                ),
            ),
        }
    }
    // The same disk under two names would count twice toward a majority.
    for (i, (a, ha)) in readable.iter().enumerate() {
        for (b, hb) in &readable[i + 1..] {
            let same_file = matches!(
                (std::fs::canonicalize(a), std::fs::canonicalize(b)),
                (Ok(x), Ok(y)) if x == y
            );
            if same_file || (ha.minor_version >= 1 && ha.uuid == hb.uuid) {
                p.add(
                    &key,
                    format!(
                        "{} and {} are the same disk (uuid {}): it would count twice toward the majority",
                        a.display(),
                        b.display(),
                        ha.uuid_string()
                    ),
                    "list each shared disk once (by-id paths of different disks)",
                );
            }
        }
    }
    let Some((first_path, first)) = readable.first() else {
        return;
    };
    for (path, h) in &readable[1..] {
        if h.timeouts != first.timeouts {
            p.add(
                &key,
                format!(
                    "the timeouts in the header of {} (watchdog {} s, msgwait {} s) differ from those of {} (watchdog {} s, msgwait {} s): sbd refuses to watch such disks",
                    path.display(),
                    h.timeouts.watchdog,
                    h.timeouts.msgwait,
                    first_path.display(),
                    first.timeouts.watchdog,
                    first.timeouts.msgwait
                ),
                "re-create the disks with the same timeouts (sbd -1 WATCHDOG -4 MSGWAIT create)",
            );
        }
    }
    let Some((path, worst)) = readable.iter().max_by_key(|(_, h)| h.timeouts.msgwait) else {
        return;
    };
    let msgwait = Duration::from_secs(u64::from(worst.timeouts.msgwait));
    if worst.timeouts.msgwait <= worst.timeouts.watchdog {
        p.add(
            &key,
            format!(
                "msgwait {} s is not above the watchdog timeout {} s in the header of {}: a victim whose sbd hangs may still run when msgwait ends",
                worst.timeouts.msgwait,
                worst.timeouts.watchdog,
                path.display()
            ),
            "re-create the disks with msgwait at least twice the watchdog timeout (sbd -1 5 -4 10 create)",
        );
    }
    let need = msgwait.saturating_add(s.io_timeout.saturating_mul(2));
    let why = format!(
        "msgwait {} s (header of {}) + 2 x sbd.io_timeout {} = {}",
        worst.timeouts.msgwait,
        path.display(),
        humantime::format_duration(s.io_timeout),
        humantime::format_duration(need)
    );
    if d.timeouts.off <= need {
        p.add(
            &key,
            format!(
                "timeouts.off = {} is not above {why}: a fence returns only after msgwait, so it could never finish",
                humantime::format_duration(d.timeouts.off)
            ),
            format!(
                "raise the device's timeouts.off above {}",
                humantime::format_duration(need)
            ),
        );
    }
    if let Some(ft) = fencing_timeout {
        if ft <= need {
            p.add(
                &key,
                format!(
                    "daemon.fencing_timeout = {} is not above {why}: no fence through this device could finish",
                    humantime::format_duration(ft)
                ),
                format!(
                    "raise daemon.fencing_timeout above {}",
                    humantime::format_duration(need)
                ),
            );
        }
    }
}

/// The headers of `paths`, read in parallel on a thread of their own (the
/// config may be loaded inside a runtime, and a hung disk must cost at
/// most one io_timeout).
fn read_sbd_headers(
    paths: &[PathBuf],
    sector_size: Option<u32>,
    io_timeout: Duration,
) -> Vec<(PathBuf, Result<crate::sbd::format::Header, String>)> {
    use crate::sbd::{disk::Disk, SbdError};
    if paths.is_empty() {
        return Vec::new();
    }
    async fn one(
        path: PathBuf,
        sector_size: Option<u32>,
        t: Duration,
    ) -> Result<crate::sbd::format::Header, SbdError> {
        let dev = crate::sbd::io::open(&path, sector_size, t).await?;
        Disk::new(dev.as_ref()).header().await
    }
    let owned = paths.to_vec();
    let work = move || -> Result<Vec<(PathBuf, Result<_, String>)>, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start an I/O runtime: {e}"))?;
        let out = rt.block_on(async {
            let handles: Vec<_> = owned
                .iter()
                .cloned()
                .map(|path| tokio::spawn(one(path, sector_size, io_timeout)))
                .collect();
            let mut got = Vec::new();
            for (path, h) in owned.iter().zip(handles) {
                let r = match h.await {
                    Ok(r) => r.map_err(|e| e.to_string()),
                    Err(e) => Err(format!("the read failed: {e}")),
                };
                got.push((path.clone(), r));
            }
            got
        });
        // A read stuck in the kernel must not hold up the check.
        rt.shutdown_background();
        Ok(out)
    };
    let result = std::thread::Builder::new()
        .name("sbd-config-check".into())
        .spawn(work)
        .map_err(|e| format!("cannot start a thread: {e}"))
        .and_then(|h| {
            h.join()
                .unwrap_or_else(|_| Err("the header read panicked".into()))
        });
    match result {
        Ok(v) => v,
        Err(e) => paths.iter().map(|p| (p.clone(), Err(e.clone()))).collect(),
    }
}

fn retries_checked(p: &mut Problems, key: &str, r: &RawPerAction<i64>) -> Retries {
    let mut one = |a: &str, v: Option<i64>, default: u32| match v {
        None => default,
        Some(n) if (0..=MAX_RETRIES).contains(&n) => n as u32,
        Some(n) => {
            p.add(
                format!("{key}.retries.{a}"),
                format!("{n} retries is out of range"),
                format!("use 0 to {MAX_RETRIES}: retries are bounded so a dead device hands over to the next level"),
            );
            default
        }
    };
    Retries {
        off: one("off", r.off, DEFAULT_OFF_RETRIES),
        on: one("on", r.on, DEFAULT_OFF_RETRIES),
        status: one("status", r.status, 0),
        list: one("list", r.list, 0),
        monitor: one("monitor", r.monitor, 0),
    }
}

fn level_checked(
    p: &mut Problems,
    key: &str,
    raw: RawLevel,
    nodes: &BTreeSet<String>,
    devices: &BTreeSet<String>,
) -> Option<Level> {
    let before = p.0.len();
    if !(1..=9).contains(&raw.index) {
        p.add(
            format!("{key}.index"),
            format!("level index {} is out of range", raw.index),
            "use 1 to 9 (1 is tried first)",
        );
    }
    let given = [
        raw.target.is_some(),
        raw.target_regex.is_some(),
        raw.target_attribute.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    let target = if given != 1 {
        p.add(
            format!("{key}.target"),
            "a level needs exactly one of target, target_regex, target_attribute",
            "set target = \"node-name\", target_regex = \"^ctl-\" or target_attribute = \"rack=r1\"",
        );
        None
    } else if let Some(t) = raw.target {
        if !nodes.contains(&t) {
            p.add(
                format!("{key}.target"),
                format!("`{t}` is not a declared node"),
                "declare it as a [[node]] or fix the spelling",
            );
        }
        Some(LevelTarget::Name(t))
    } else if let Some(r) = raw.target_regex {
        match Regex::new(&r) {
            Ok(re) => Some(LevelTarget::Regex(re)),
            Err(e) => {
                p.add(
                    format!("{key}.target_regex"),
                    format!("invalid regular expression: {e}"),
                    "fix the pattern (Rust regex syntax)",
                );
                None
            }
        }
    } else if let Some(a) = raw.target_attribute {
        match a.split_once('=') {
            Some((n, v)) if !n.trim().is_empty() => Some(LevelTarget::Attribute {
                name: n.trim().to_string(),
                value: v.trim().to_string(),
            }),
            _ => {
                p.add(
                    format!("{key}.target_attribute"),
                    format!("`{a}` is not name=value"),
                    "write it as target_attribute = \"rack=r1\"",
                );
                None
            }
        }
    } else {
        None
    };
    if raw.devices.is_empty() {
        p.add(
            format!("{key}.devices"),
            "a level with no devices can never fence",
            "list at least one device name",
        );
    }
    for d in &raw.devices {
        if !devices.contains(d) {
            p.add(
                format!("{key}.devices"),
                format!("`{d}` is not a defined device"),
                "define it as a [[device]] or fix the spelling",
            );
        }
    }
    if p.0.len() > before {
        return None;
    }
    Some(Level {
        index: raw.index as u8,
        target: target?,
        devices: raw.devices,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("1.5"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(parse_duration("-1"), None);
        assert_eq!(parse_duration("1e30"), None);
        assert_eq!(parse_duration("8 days"), None);
        assert_eq!(parse_duration("NaN"), None);
    }

    #[test]
    fn minimal() {
        let c = Config::parse(
            r#"
            [[node]]
            name = "a"
            [[device]]
            name = "d"
            kind = "sim"
            host_list = ["a"]
            [[level]]
            index = 1
            target = "a"
            devices = ["d"]
            "#,
            "t",
        )
        .unwrap();
        assert_eq!(c.devices[0].hosts.check, HostCheck::StaticList);
        assert_eq!(c.levels[0].index, 1);
    }

    #[test]
    fn sbd_device_from_options() {
        let opts: BTreeMap<String, String> = [
            ("devices", "/nonexistent/a,/nonexistent/b"),
            ("io_timeout", "2s"),
            ("crashdump", "yes"),
            ("from", "fencer-1"),
            ("pcmk_host_list", "a"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let raw = super::super::raw_device_from_options("pill", "sbd", &opts).unwrap();
        let sbd = raw.sbd.clone().unwrap();
        assert_eq!(sbd.crashdump, Some(true));
        assert_eq!(sbd.devices.as_deref().map(<[String]>::len), Some(2));
        let nodes: BTreeSet<String> = ["a".to_string()].into();
        let problems = device_from_raw(raw, &nodes).unwrap_err();
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(problems.len(), 2, "{text:?}");
        assert!(
            text.iter().all(|t| t.starts_with(
                "device[pill].sbd.devices: cannot read the sbd header of /nonexistent/"
            )),
            "{text:?}"
        );
        // Checked without I/O: counts, paths, sector size, sender.
        let raw = RawDevice {
            name: "pill".into(),
            kind: "sbd".into(),
            host_list: Some(vec!["a".into()]),
            sbd: Some(super::super::raw::RawSbd {
                devices: Some(vec!["rel/disk".into()]),
                sector_size: Some(1024),
                from: Some("x".repeat(64)),
                ..Default::default()
            }),
            address: Some("10.0.0.1".into()),
            ..Default::default()
        };
        let keys: Vec<String> = device_from_raw(raw, &nodes)
            .unwrap_err()
            .into_iter()
            .map(|p| p.key)
            .collect();
        for k in [
            "device[pill].kind",
            "device[pill].sbd.devices",
            "device[pill].sbd.sector_size",
            "device[pill].sbd.from",
        ] {
            assert!(keys.iter().any(|x| x == k), "{k} in {keys:?}");
        }
    }

    #[test]
    fn collects_every_problem() {
        let err = Config::parse(
            r#"
            [[node]]
            name = "a"
            [[device]]
            name = "d"
            kind = "sim"
            delay_max = "soon"
            host_list = ["b"]
            [[level]]
            index = 12
            target = "a"
            devices = ["x"]
            "#,
            "t",
        )
        .unwrap_err();
        let ConfigError::Invalid { problems, .. } = err else {
            panic!()
        };
        let keys: Vec<_> = problems.iter().map(|p| p.key.as_str()).collect();
        assert!(keys.contains(&"device[d].delay_max"), "{keys:?}");
        assert!(keys.contains(&"device[d].host_list"), "{keys:?}");
        assert!(keys.contains(&"level[a#12].index"), "{keys:?}");
        assert!(keys.contains(&"level[a#12].devices"), "{keys:?}");
    }
}
