//! The node-side sections: what `ironfenced` watches on this node and what
//! it does to itself. `[watchdog]`, `[sbd]` (this node's own slot on the
//! shared disks), `[quorum]` and `[self_fence]`, validated into
//! [`LocalConfig`] together with every timeout relation that keeps a
//! poison pill or a lost quorum safe:
//!
//! ```text
//!  sbd.io_timeout + watchdog.interval  <  watchdog.timeout   a slow disk must not starve the watchdog
//!  2 x watchdog.interval               <= watchdog.timeout   at least two feeds per period
//!  watchdog.timeout                    <  msgwait            the victim is dead before a fencer says so
//!  corosync token + consensus          <  watchdog.timeout   (checked at start, from corosync)
//! ```
//!
//! None of these sections present: the daemon is a fencer only, as before.

use super::raw::{RawLocalSbd, RawQuorum, RawSelfFence, RawWatchdog};
use super::validate::{duration, parse_duration, Problems};
use crate::sbd::servant::StartMode;
use std::path::PathBuf;
use std::time::Duration;

/// Which timer resets this node: the watchdog module's own kinds.
pub use crate::watchdog::Kind as WatchdogKind;

/// Watchdog timeout when neither the config nor an sbd header gives one (sbd's default).
pub const DEFAULT_WATCHDOG_TIMEOUT: Duration = Duration::from_secs(5);
/// Inquisitor loop (sbd's `timeout_loop`).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
const DEFAULT_IO_TIMEOUT: Duration = Duration::from_secs(3);
/// The longest watchdog timeout the Linux API and IPMI can both express sensibly.
const MAX_WATCHDOG_TIMEOUT: Duration = Duration::from_secs(3600);

/// Everything the node daemon supervises on this node.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalConfig {
    /// This node's name: its slot on the sbd disks.
    pub name: String,
    pub watchdog: Option<WatchdogConfig>,
    pub sbd: Option<LocalSbdConfig>,
    pub quorum: Option<QuorumConfig>,
    pub self_fence: SelfFenceConfig,
    /// How often the inquisitor checks its servants and feeds.
    pub interval: Duration,
}

impl LocalConfig {
    /// Whether the inquisitor runs at all (a watchdog, disks or quorum to watch).
    pub fn supervised(&self) -> bool {
        self.watchdog.is_some() || self.sbd.is_some() || self.quorum.is_some()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct WatchdogConfig {
    pub kind: WatchdogKind,
    pub device: PathBuf,
    /// `None`: the sbd disks' header value, else [`DEFAULT_WATCHDOG_TIMEOUT`].
    pub timeout: Option<Duration>,
}

/// When the daemon starts watching after boot (sbd's `SBD_DELAY_START`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DelayStart {
    No,
    /// msgwait from the disks' header.
    Msgwait,
    For(Duration),
}

#[derive(Debug, Clone, PartialEq)]
pub struct LocalSbdConfig {
    pub devices: Vec<PathBuf>,
    pub sector_size: Option<u32>,
    pub io_timeout: Duration,
    pub start_mode: StartMode,
    pub delay_start: DelayStart,
}

/// What losing quorum means for this node (Pacemaker's `no-quorum-policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NoQuorumPolicy {
    /// Self-fence at once (the default).
    Suicide,
    /// Log it and keep feeding (the quorum servant counts as healthy).
    Ignore,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuorumConfig {
    pub no_quorum_policy: NoQuorumPolicy,
}

/// How the node kills itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelfFenceMethod {
    /// `/proc/sysrq-trigger` (b, o or c).
    Sysrq,
    /// Append a JSON line to this file and stop as if dead (tests, demo).
    Recorder(PathBuf),
}

/// What the node does to itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SelfFenceAction {
    Reboot,
    Off,
    Crashdump,
}

impl SelfFenceAction {
    pub fn as_str(self) -> &'static str {
        match self {
            SelfFenceAction::Reboot => "reboot",
            SelfFenceAction::Off => "off",
            SelfFenceAction::Crashdump => "crashdump",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SelfFenceConfig {
    pub method: SelfFenceMethod,
    /// For a stalled servant or a lost quorum (pills name their own action).
    pub timeout_action: SelfFenceAction,
    pub flush: bool,
}

/// The raw node sections, as found in the file.
#[derive(Debug, Default)]
pub(super) struct RawLocal {
    pub watchdog: Option<RawWatchdog>,
    pub sbd: Option<RawLocalSbd>,
    pub quorum: Option<RawQuorum>,
    pub self_fence: Option<RawSelfFence>,
}

pub(super) fn local_from_raw(
    p: &mut Problems,
    raw: RawLocal,
    node_name: Option<String>,
) -> LocalConfig {
    let name = match node_name {
        Some(n) => n,
        None => crate::sbd::servant::local_name().unwrap_or_default(),
    };
    if name.is_empty() || name.len() > crate::sbd::format::NAME_MAX || name.contains('\0') {
        p.add(
            "daemon.node_name",
            format!("`{name}` cannot be this node's name (its sbd slot name)"),
            "set daemon.node_name = \"controller-1\" (1 to 63 bytes)",
        );
    }
    let mut interval = DEFAULT_INTERVAL;
    let watchdog = raw
        .watchdog
        .and_then(|w| watchdog_from_raw(p, w, &mut interval));
    let sbd = raw.sbd.map(|s| sbd_from_raw(p, s));
    let quorum = raw.quorum.and_then(|q| quorum_from_raw(p, q));
    let self_fence = self_fence_from_raw(p, raw.self_fence.unwrap_or_default());

    if let (Some(w), Some(t)) = (&watchdog, watchdog.as_ref().and_then(|w| w.timeout)) {
        if interval.saturating_mul(2) > t {
            p.add(
                "watchdog.interval",
                format!(
                    "{} is more than half of watchdog.timeout = {}: the watchdog would be fed less than twice per period",
                    humantime::format_duration(interval),
                    humantime::format_duration(t)
                ),
                "lower watchdog.interval (1s is sbd's loop) or raise watchdog.timeout",
            );
        }
        if let Some(s) = &sbd {
            if s.io_timeout.saturating_add(interval) >= t {
                p.add(
                    "sbd.io_timeout",
                    format!(
                        "sbd.io_timeout {} + watchdog.interval {} is not below watchdog.timeout {} ({} watchdog): one slow disk read would starve the watchdog",
                        humantime::format_duration(s.io_timeout),
                        humantime::format_duration(interval),
                        humantime::format_duration(t),
                        w.kind
                    ),
                    "lower sbd.io_timeout or raise watchdog.timeout",
                );
            }
        }
    }
    if watchdog.is_none() && (sbd.is_some() || quorum.is_some()) {
        tracing::warn!(
            "no [watchdog]: a hung ironfenced would not reset this node; configure one for production"
        );
    }
    LocalConfig {
        name,
        watchdog,
        sbd,
        quorum,
        self_fence,
        interval,
    }
}

fn watchdog_from_raw(
    p: &mut Problems,
    raw: RawWatchdog,
    interval: &mut Duration,
) -> Option<WatchdogConfig> {
    *interval = duration(p, "watchdog.interval", &raw.interval, DEFAULT_INTERVAL);
    if interval.is_zero() {
        p.add(
            "watchdog.interval",
            "must be greater than zero",
            "use e.g. \"1s\"",
        );
        *interval = DEFAULT_INTERVAL;
    }
    let kind = match raw.kind.as_deref().unwrap_or("linux") {
        "linux" => WatchdogKind::Linux,
        "ipmi" => WatchdogKind::Ipmi,
        "recorder" => WatchdogKind::Recorder,
        "none" => return None,
        other => {
            p.add(
                "watchdog.kind",
                format!("unknown watchdog kind `{other}`"),
                "use linux (/dev/watchdog), ipmi (the BMC's watchdog via /dev/ipmi0), recorder (tests) or none",
            );
            return None;
        }
    };
    let device = match raw
        .device
        .or_else(|| kind.default_device().map(PathBuf::from))
    {
        Some(d) => d,
        None => {
            p.add(
                "watchdog.device",
                "a recorder watchdog needs the file it writes to",
                "set watchdog.device = \"/var/lib/ironfence/watchdog.jsonl\"",
            );
            PathBuf::new()
        }
    };
    if !device.as_os_str().is_empty() && !device.is_absolute() {
        p.add(
            "watchdog.device",
            format!("`{}` is not an absolute path", device.display()),
            "name the device by its absolute path, e.g. /dev/watchdog0",
        );
    }
    let timeout = match &raw.timeout {
        None => None,
        Some(s) => match parse_duration(s) {
            Some(t) => {
                timeout_checked(p, kind, t);
                Some(t)
            }
            None => {
                p.add(
                    "watchdog.timeout",
                    format!("`{s}` is not a duration"),
                    "write it like \"5s\"",
                );
                None
            }
        },
    };
    Some(WatchdogConfig {
        kind,
        device,
        timeout,
    })
}

/// Whether the hardware can be programmed with `t`.
fn timeout_checked(p: &mut Problems, kind: WatchdogKind, t: Duration) {
    if t < Duration::from_secs(1) || t > MAX_WATCHDOG_TIMEOUT {
        p.add(
            "watchdog.timeout",
            format!("{} is outside 1s..1h", humantime::format_duration(t)),
            "use a few seconds, e.g. \"5s\" (sbd's default) or \"15s\"",
        );
        return;
    }
    match kind {
        WatchdogKind::Linux if t.subsec_nanos() != 0 => p.add(
            "watchdog.timeout",
            format!(
                "{} is not a whole number of seconds: Linux watchdog drivers take seconds",
                humantime::format_duration(t)
            ),
            "round it to whole seconds",
        ),
        WatchdogKind::Ipmi if t.subsec_millis() % 100 != 0 || t.subsec_nanos() % 1_000_000 != 0 => {
            p.add(
                "watchdog.timeout",
                format!(
                    "{} is not a multiple of 100 ms: the BMC counts in tenths of a second",
                    humantime::format_duration(t)
                ),
                "round it to tenths of a second",
            )
        }
        _ => {}
    }
}

fn sbd_from_raw(p: &mut Problems, raw: RawLocalSbd) -> LocalSbdConfig {
    let devices: Vec<PathBuf> = raw
        .devices
        .unwrap_or_default()
        .iter()
        .map(|d| PathBuf::from(d.trim()))
        .collect();
    if devices.is_empty() || devices.len() > 3 {
        p.add(
            "sbd.devices",
            format!("{} disk(s): sbd uses 1 to 3", devices.len()),
            "list 1 to 3 shared disks (with 3, one may fail and this node keeps running)",
        );
    }
    for d in &devices {
        if !d.is_absolute() {
            p.add(
                "sbd.devices",
                format!("`{}` is not an absolute path", d.display()),
                "name each disk by a stable absolute path, e.g. /dev/disk/by-id/...",
            );
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    if devices.iter().any(|d| !seen.insert(d)) {
        p.add(
            "sbd.devices",
            "a disk is listed twice",
            "list each shared disk once",
        );
    }
    let sector_size = match raw.sector_size {
        None => None,
        Some(n @ (512 | 4096)) => Some(n as u32),
        Some(n) => {
            p.add(
                "sbd.sector_size",
                format!("{n} is not a sector size sbd uses"),
                "use 512 or 4096 (only needed for disk images in regular files)",
            );
            None
        }
    };
    let io_timeout = duration(p, "sbd.io_timeout", &raw.io_timeout, DEFAULT_IO_TIMEOUT);
    if io_timeout.is_zero() {
        p.add(
            "sbd.io_timeout",
            "must be greater than zero",
            "use e.g. \"3s\" (sbd's default)",
        );
    }
    let start_mode = match raw.start_mode.as_deref().unwrap_or("always") {
        "always" => StartMode::Always,
        "clean" => StartMode::Clean,
        other => {
            p.add(
                "sbd.start_mode",
                format!("unknown start mode `{other}`"),
                "use always (clear a waiting message and start) or clean (refuse to start after being fenced)",
            );
            StartMode::Always
        }
    };
    let delay_start = match &raw.delay_start {
        None | Some(toml::Value::Boolean(false)) => DelayStart::No,
        Some(toml::Value::Boolean(true)) => DelayStart::Msgwait,
        Some(toml::Value::String(s)) if s == "msgwait" => DelayStart::Msgwait,
        Some(toml::Value::String(s)) => match parse_duration(s) {
            Some(d) => DelayStart::For(d),
            None => {
                p.add(
                    "sbd.delay_start",
                    format!("`{s}` is not a duration"),
                    "use false, true (= msgwait), \"msgwait\" or a duration like \"30s\"",
                );
                DelayStart::No
            }
        },
        Some(other) => {
            p.add(
                "sbd.delay_start",
                format!("`{other}` is not a delay"),
                "use false, true (= msgwait), \"msgwait\" or a duration like \"30s\"",
            );
            DelayStart::No
        }
    };
    LocalSbdConfig {
        devices,
        sector_size,
        io_timeout,
        start_mode,
        delay_start,
    }
}

fn quorum_from_raw(p: &mut Problems, raw: RawQuorum) -> Option<QuorumConfig> {
    let policy = match raw.no_quorum_policy.as_deref().unwrap_or("suicide") {
        "suicide" | "self-fence" => NoQuorumPolicy::Suicide,
        "ignore" => NoQuorumPolicy::Ignore,
        other => {
            p.add(
                "quorum.no_quorum_policy",
                format!("unknown policy `{other}`"),
                "use suicide (self-fence when quorum is lost) or ignore",
            );
            NoQuorumPolicy::Suicide
        }
    };
    match raw.source.as_deref().unwrap_or("none") {
        "none" => None,
        "corosync" => {
            if !cfg!(feature = "corosync") {
                p.add(
                    "quorum.source",
                    "this build of ironfence has no corosync support",
                    "install a build made with `cargo build --release --features corosync` (needs corosync's -dev libraries), or set quorum.source = \"none\"",
                );
            }
            Some(QuorumConfig {
                no_quorum_policy: policy,
            })
        }
        other => {
            p.add(
                "quorum.source",
                format!("unknown quorum source `{other}`"),
                "use corosync or none",
            );
            None
        }
    }
}

fn self_fence_from_raw(p: &mut Problems, raw: RawSelfFence) -> SelfFenceConfig {
    let method = match raw.method.as_deref().unwrap_or("sysrq") {
        "sysrq" => SelfFenceMethod::Sysrq,
        "recorder" => match raw.record_file {
            Some(f) if f.is_absolute() => SelfFenceMethod::Recorder(f),
            _ => {
                p.add(
                    "self_fence.record_file",
                    "the recorder needs an absolute file path to append to",
                    "set self_fence.record_file = \"/var/lib/ironfence/self-fence.jsonl\"",
                );
                SelfFenceMethod::Sysrq
            }
        },
        other => {
            p.add(
                "self_fence.method",
                format!("unknown method `{other}`"),
                "use sysrq (the kernel resets or powers off this node) or recorder (tests only)",
            );
            SelfFenceMethod::Sysrq
        }
    };
    let timeout_action = match raw.timeout_action.as_deref().unwrap_or("reboot") {
        "reboot" | "reset" => SelfFenceAction::Reboot,
        "off" => SelfFenceAction::Off,
        "crashdump" => SelfFenceAction::Crashdump,
        other => {
            p.add(
                "self_fence.timeout_action",
                format!("unknown action `{other}`"),
                "use reboot, off or crashdump",
            );
            SelfFenceAction::Reboot
        }
    };
    SelfFenceConfig {
        method,
        timeout_action,
        flush: raw.flush.unwrap_or(true),
    }
}

/// The header facts the node's timeouts are checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskTimeouts {
    pub watchdog: Duration,
    pub msgwait: Duration,
}

/// Check the relations that need the disks' headers (`config check` and
/// daemon start): at least one disk readable, their timeouts equal, and the
/// watchdog timeout below msgwait. Returns what the headers say.
pub(super) fn local_disks_checked(
    p: &mut Problems,
    local: &LocalConfig,
    headers: &[(PathBuf, Result<crate::sbd::format::Header, String>)],
) -> Option<DiskTimeouts> {
    let s = local.sbd.as_ref()?;
    let readable: Vec<_> = headers
        .iter()
        .filter_map(|(path, r)| r.as_ref().ok().map(|h| (path, h)))
        .collect();
    if readable.is_empty() {
        let why: Vec<String> = headers
            .iter()
            .filter_map(|(path, r)| r.as_ref().err().map(|e| format!("{}: {e}", path.display())))
            .collect();
        p.add(
            "sbd.devices",
            format!("no disk is readable ({})", why.join("; ")),
            "attach the shared disks to this node and initialise them (ironfence sbd -d DISK create)",
        );
        return None;
    }
    let (first_path, first) = readable[0];
    for (path, h) in &readable[1..] {
        if h.timeouts.watchdog != first.timeouts.watchdog
            || h.timeouts.msgwait != first.timeouts.msgwait
        {
            p.add(
                "sbd.devices",
                format!(
                    "{} (watchdog {} s, msgwait {} s) and {} (watchdog {} s, msgwait {} s) disagree",
                    path.display(),
                    h.timeouts.watchdog,
                    h.timeouts.msgwait,
                    first_path.display(),
                    first.timeouts.watchdog,
                    first.timeouts.msgwait
                ),
                "re-create the disks with the same timeouts (ironfence sbd -1 W -4 M create)",
            );
        }
    }
    let disk = DiskTimeouts {
        watchdog: Duration::from_secs(u64::from(first.timeouts.watchdog)),
        msgwait: Duration::from_secs(u64::from(
            readable
                .iter()
                .map(|(_, h)| h.timeouts.msgwait)
                .max()
                .unwrap_or(first.timeouts.msgwait),
        )),
    };
    let timeout = effective_timeout(local, Some(disk));
    if timeout >= disk.msgwait {
        p.add(
            "watchdog.timeout",
            format!(
                "the watchdog timeout {} is not below msgwait {} of {}: a fencer would report this node dead while its watchdog may not have fired yet",
                humantime::format_duration(timeout),
                humantime::format_duration(disk.msgwait),
                first_path.display()
            ),
            "lower watchdog.timeout, or re-create the disks with msgwait at least twice the watchdog timeout",
        );
    }
    if local.watchdog.as_ref().is_some_and(|w| w.timeout.is_none())
        && s.io_timeout.saturating_add(local.interval) >= timeout
    {
        p.add(
            "sbd.io_timeout",
            format!(
                "sbd.io_timeout {} + watchdog.interval {} is not below the disks' watchdog timeout {}: one slow disk read would starve the watchdog",
                humantime::format_duration(s.io_timeout),
                humantime::format_duration(local.interval),
                humantime::format_duration(timeout)
            ),
            "lower sbd.io_timeout or set a longer watchdog.timeout",
        );
    }
    Some(disk)
}

/// The watchdog timeout in force: configured, else the disks' header, else 5 s.
pub fn effective_timeout(local: &LocalConfig, disk: Option<DiskTimeouts>) -> Duration {
    local
        .watchdog
        .as_ref()
        .and_then(|w| w.timeout)
        .or(disk.map(|d| d.watchdog))
        .unwrap_or(DEFAULT_WATCHDOG_TIMEOUT)
}

#[cfg(test)]
mod tests {
    use crate::config::*;

    fn parse(text: &str) -> Result<Config, Vec<Problem>> {
        super::super::validate::parse(text, false)
    }

    fn problems(text: &str) -> Vec<Problem> {
        parse(text).expect_err("config must be refused")
    }

    #[test]
    fn nothing_configured_means_not_supervised() {
        let c = parse("[daemon]\nnode_name = \"n1\"\n").unwrap();
        assert!(!c.local.supervised());
        assert_eq!(c.local.name, "n1");
    }

    #[test]
    fn full_node_sections() {
        let c = parse(
            r#"
[daemon]
node_name = "controller-1"
[watchdog]
kind = "linux"
device = "/dev/watchdog0"
timeout = "10s"
interval = "1s"
[sbd]
devices = ["/dev/disk/by-id/a", "/dev/disk/by-id/b", "/dev/disk/by-id/c"]
io_timeout = "3s"
start_mode = "clean"
delay_start = "msgwait"
[self_fence]
method = "recorder"
record_file = "/tmp/sf.jsonl"
timeout_action = "off"
flush = false
"#,
        )
        .unwrap();
        let l = &c.local;
        assert!(l.supervised());
        let w = l.watchdog.as_ref().unwrap();
        assert_eq!(w.kind, WatchdogKind::Linux);
        assert_eq!(w.timeout, Some(Duration::from_secs(10)));
        let s = l.sbd.as_ref().unwrap();
        assert_eq!(s.devices.len(), 3);
        assert_eq!(s.start_mode, crate::sbd::servant::StartMode::Clean);
        assert_eq!(s.delay_start, DelayStart::Msgwait);
        assert_eq!(
            l.self_fence,
            SelfFenceConfig {
                method: SelfFenceMethod::Recorder("/tmp/sf.jsonl".into()),
                timeout_action: SelfFenceAction::Off,
                flush: false
            }
        );
        assert_eq!(effective_timeout(l, None), Duration::from_secs(10));
    }

    #[test]
    fn bad_node_sections_name_the_key_and_the_fix() {
        let cases: &[(&str, &str)] = &[
            ("[watchdog]\nkind = \"softdog\"\n", "watchdog.kind"),
            ("[watchdog]\nkind = \"recorder\"\n", "watchdog.device"),
            ("[watchdog]\ntimeout = \"2.5s\"\n", "watchdog.timeout"),
            ("[watchdog]\ntimeout = \"0s\"\n", "watchdog.timeout"),
            (
                "[watchdog]\ntimeout = \"4s\"\ninterval = \"3s\"\n",
                "watchdog.interval",
            ),
            ("[watchdog]\ndevice = \"watchdog0\"\n", "watchdog.device"),
            (
                "[watchdog]\ntimeout = \"5s\"\n[sbd]\ndevices = [\"/d\"]\nio_timeout = \"4s\"\n",
                "sbd.io_timeout",
            ),
            ("[sbd]\ndevices = []\n", "sbd.devices"),
            (
                "[sbd]\ndevices = [\"/a\", \"/b\", \"/c\", \"/d\"]\n",
                "sbd.devices",
            ),
            ("[sbd]\ndevices = [\"/a\", \"/a\"]\n", "sbd.devices"),
            (
                "[sbd]\ndevices = [\"/a\"]\nstart_mode = \"sometimes\"\n",
                "sbd.start_mode",
            ),
            (
                "[sbd]\ndevices = [\"/a\"]\ndelay_start = \"soon\"\n",
                "sbd.delay_start",
            ),
            (
                "[sbd]\ndevices = [\"/a\"]\nsector_size = 1000\n",
                "sbd.sector_size",
            ),
            ("[quorum]\nsource = \"zookeeper\"\n", "quorum.source"),
            (
                "[quorum]\nsource = \"corosync\"\nno_quorum_policy = \"freeze\"\n",
                "quorum.no_quorum_policy",
            ),
            ("[self_fence]\nmethod = \"halt\"\n", "self_fence.method"),
            (
                "[self_fence]\nmethod = \"recorder\"\n",
                "self_fence.record_file",
            ),
            (
                "[self_fence]\ntimeout_action = \"panic\"\n",
                "self_fence.timeout_action",
            ),
            ("[watchdog]\ntimout = \"5s\"\n", "watchdog"),
            ("[daemon]\nnode_name = \"\"\n", "daemon.node_name"),
        ];
        for (text, key) in cases {
            let p = problems(text);
            assert!(
                p.iter().any(|p| p.key == *key && !p.fix.is_empty()),
                "{text:?}: expected a problem at {key}, got {p:?}"
            );
        }
    }

    #[test]
    fn corosync_needs_the_feature() {
        let r = parse("[quorum]\nsource = \"corosync\"\n");
        if cfg!(feature = "corosync") {
            assert!(r.unwrap().local.quorum.is_some());
        } else {
            let p = r.unwrap_err();
            assert!(p[0].fix.contains("--features corosync"), "{p:?}");
        }
    }

    #[test]
    fn disk_relations() {
        use crate::sbd::format::{Header, Timeouts};
        let c = parse("[watchdog]\nkind = \"recorder\"\ndevice = \"/tmp/wd\"\n[sbd]\ndevices = [\"/a\", \"/b\"]\nio_timeout = \"1s\"\n").unwrap();
        let header = |watchdog, msgwait| {
            Header::new(
                512,
                Timeouts {
                    watchdog,
                    allocate: 2,
                    loop_: 1,
                    msgwait,
                },
                [7; 16],
            )
        };
        let mut p = super::Problems(Vec::new());
        let ok = vec![
            ("/a".into(), Ok(header(5, 10))),
            ("/b".into(), Err("gone".to_string())),
        ];
        let t = super::local_disks_checked(&mut p, &c.local, &ok).unwrap();
        assert!(p.0.is_empty(), "{:?}", p.0);
        assert_eq!(t.msgwait, Duration::from_secs(10));
        // The watchdog timeout comes from the header when not configured.
        assert_eq!(effective_timeout(&c.local, Some(t)), Duration::from_secs(5));
        // msgwait not above the watchdog timeout.
        let bad = vec![("/a".into(), Ok(header(5, 5)))];
        super::local_disks_checked(&mut p, &c.local, &bad);
        assert!(p.0.iter().any(|p| p.key == "watchdog.timeout"), "{:?}", p.0);
        // Disagreeing disks, and none readable.
        let mut p = super::Problems(Vec::new());
        let two = vec![
            ("/a".into(), Ok(header(5, 10))),
            ("/b".into(), Ok(header(5, 12))),
        ];
        super::local_disks_checked(&mut p, &c.local, &two);
        assert!(
            p.0.iter().any(|p| p.message.contains("disagree")),
            "{:?}",
            p.0
        );
        let mut p = super::Problems(Vec::new());
        let none = vec![("/a".into(), Err("gone".to_string()))];
        assert!(super::local_disks_checked(&mut p, &c.local, &none).is_none());
        assert!(p.0[0].message.contains("no disk is readable"), "{:?}", p.0);
    }
}
