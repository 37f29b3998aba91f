//! Watchdogs: the timers that reset this node when `ironfenced` stops feeding
//! them. This module owns the [`Watchdog`] trait and its implementations:
//!
//! | kind | file | what resets the machine |
//! |------|------|-------------------------|
//! | [`Kind::Linux`] | `linux` | a `/dev/watchdogN` device through the `WDIOC_*` ioctls (the only place they live) |
//! | [`Kind::Ipmi`] | `ipmi` | the BMC's own watchdog timer, driven through `/dev/ipmi0` |
//! | [`Kind::Recorder`] | `recorder` | nothing: it records arm/keepalive/disarm and says when it *would* have fired |
//!
//! plus [`sysfs::list`], which describes the watchdogs of the machine from
//! `/sys/class/watchdog` without opening any of them.
//!
//! Who calls it: the node daemon's inquisitor (the only code that decides
//! whether to feed), `ironfence watchdog list|test`, and tests (always the
//! recorder). A leaf: it knows nothing of the fencer, the daemon or the CLI.
//!
//! What it must never do: open a real watchdog when the environment variable
//! [`FORBID_HARDWARE_ENV`] is set — the test harness sets it for every
//! process on development and CI hosts, and both the Linux and the BMC
//! watchdog check it before they touch a device. Opening `/dev/watchdog`
//! starts the countdown, so on a host that is a reset waiting to happen.
//!
//! Life of a watchdog (every implementation):
//!
//! ```text
//!   open() ──> idle ──arm(t)──> ARMED ──keepalive()──> ARMED (countdown restarts)
//!                ^                │ │
//!                └───disarm()─────┘ └──drop / crash / no keepalive within t──> machine resets
//! ```
//!
//! Dropping an armed watchdog without [`Watchdog::disarm`] leaves it armed on
//! purpose (the Linux device is closed without the magic 'V', the BMC timer
//! keeps counting): that is how a crashed or killed daemon still gets its
//! node reset.

pub mod ipmi;
pub mod linux;
pub mod recorder;
pub mod sysfs;

use serde::Serialize;
use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

pub use ipmi::{BmcAction, IpmiWatchdog};
pub use linux::LinuxWatchdog;
pub use recorder::{RecordedEvent, Recorder, RecorderEvent, RecorderHandle};
pub use sysfs::SysfsWatchdog;

/// Set (to anything non-empty) and no real watchdog can be opened by this
/// process: [`LinuxWatchdog::open`], [`IpmiWatchdog::open`] and the one
/// function that opens a `/dev/watchdog*` node (in `LinuxWatchdog`'s `arm`)
/// refuse. The test harness sets it for every process on the host.
pub const FORBID_HARDWARE_ENV: &str = "IRONFENCE_FORBID_HARDWARE";

/// A timer that resets this machine unless it is fed.
///
/// Implementations: [`LinuxWatchdog`], [`IpmiWatchdog`], [`Recorder`].
pub trait Watchdog: Send {
    /// Open/arm with `timeout` (the hardware may round; return what it
    /// took). From here on the machine resets unless [`keepalive`](Self::keepalive)
    /// comes within the timeout. A timeout the device took *longer* than
    /// asked is an error (it would break the msgwait arithmetic); shorter is
    /// returned for the caller to feed faster.
    fn arm(&mut self, timeout: Duration) -> Result<Duration, WatchdogError>;
    /// Restart the countdown.
    fn keepalive(&mut self) -> Result<(), WatchdogError>;
    /// Clean stop: DISABLECARD + magic close 'V' (or the BMC's "no action").
    /// If the driver is nowayout the error says so and the timer keeps
    /// running (the watchdog stays armed and can still be fed).
    fn disarm(&mut self) -> Result<(), WatchdogError>;
    /// For status: identity, device, timeout, whether armed.
    fn describe(&self) -> WatchdogInfo;
    /// Time left before the reset, when the driver can tell (GETTIMELEFT,
    /// the BMC's present countdown), else `None`.
    fn time_left(&self) -> Option<Duration> {
        None
    }
}

/// Which implementation: what `[watchdog] kind` in the node config names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A Linux watchdog device (`/dev/watchdog`, `/dev/watchdogN`).
    Linux,
    /// The BMC's watchdog timer through the IPMI device (`/dev/ipmi0`).
    Ipmi,
    /// A recorder appending JSON lines to a file: resets nothing.
    Recorder,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Linux, Kind::Ipmi, Kind::Recorder];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Linux => "linux",
            Kind::Ipmi => "ipmi",
            Kind::Recorder => "recorder",
        }
    }

    /// The device used when none is configured (`None`: the kind needs one).
    pub fn default_device(self) -> Option<&'static Path> {
        match self {
            Kind::Linux => Some(Path::new(linux::DEFAULT_DEVICE)),
            Kind::Ipmi => Some(Path::new(ipmi::DEFAULT_DEVICE)),
            Kind::Recorder => None,
        }
    }

    /// Whether this kind touches hardware (and so obeys [`FORBID_HARDWARE_ENV`]).
    pub fn is_hardware(self) -> bool {
        !matches!(self, Kind::Recorder)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = WatchdogError;

    fn from_str(s: &str) -> Result<Kind, WatchdogError> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| WatchdogError::UnknownKind(s.to_string()))
    }
}

/// How to open a watchdog beyond its kind and device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenOptions {
    /// What the BMC does when its watchdog expires ([`Kind::Ipmi`] only).
    pub bmc_action: BmcAction,
    /// How long to wait for each BMC reply ([`Kind::Ipmi`] only).
    pub bmc_reply_timeout: Duration,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            bmc_action: BmcAction::HardReset,
            bmc_reply_timeout: ipmi::DEFAULT_REPLY_TIMEOUT,
        }
    }
}

/// Open a watchdog of `kind` at `path` (a device, or the recorder's file)
/// with default [`OpenOptions`]. Nothing is armed yet.
pub fn open(kind: Kind, path: &Path) -> Result<Box<dyn Watchdog>, WatchdogError> {
    open_with(kind, path, &OpenOptions::default())
}

/// [`open`] with explicit options.
pub fn open_with(
    kind: Kind,
    path: &Path,
    options: &OpenOptions,
) -> Result<Box<dyn Watchdog>, WatchdogError> {
    Ok(match kind {
        Kind::Linux => Box::new(LinuxWatchdog::open(path)?),
        Kind::Ipmi => ipmi::open_device(path, options.bmc_action, options.bmc_reply_timeout)?,
        Kind::Recorder => Box::new(Recorder::with_file(path)?),
    })
}

/// What a watchdog says about itself, for `status` and `watchdog test`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WatchdogInfo {
    pub kind: Kind,
    /// The device (or the recorder's file; `(memory)` for an in-memory recorder).
    pub device: String,
    /// The driver's identity (`i6300ESB timer`, `Software Watchdog`, the BMC's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    pub armed: bool,
    /// The timeout in force when armed, else the device's current one if known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// The driver cannot be stopped once started (Linux `nowayout`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nowayout: Option<bool>,
    /// What the hardware does when it fires (`reset`, `power down`...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Why the previous boot ended, as far as the watchdog knows
    /// (`card reset` = this watchdog reset the machine).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub boot_status: Vec<String>,
    /// Capability flags (Linux `WDIOF_*` names).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl WatchdogInfo {
    pub fn new(kind: Kind, device: impl Into<String>) -> WatchdogInfo {
        WatchdogInfo {
            kind,
            device: device.into(),
            identity: None,
            armed: false,
            timeout_ms: None,
            nowayout: None,
            action: None,
            boot_status: Vec::new(),
            options: Vec::new(),
        }
    }
}

/// What went wrong with a watchdog. Every message names the device and says
/// what to check or change.
#[derive(Debug, thiserror::Error)]
pub enum WatchdogError {
    /// The hardware guard is on (tests, CI).
    #[error("refusing to open {device}: {FORBID_HARDWARE_ENV} is set (tests and CI hosts must never touch a real watchdog); only a machine you are prepared to reset may run without it")]
    HardwareForbidden { device: String },
    /// `kind` names no implementation.
    #[error("unknown watchdog kind `{0}`: use linux, ipmi or recorder")]
    UnknownKind(String),
    /// The device node is not there.
    #[error("no watchdog device at {device}: load its driver (i6300esb, iTCO_wdt, sp5100_tco, ipmi_watchdog...; softdog only for testing) or fix watchdog.device (`ironfence watchdog list` shows what the kernel has)")]
    NoDevice { device: String },
    /// Opening the device failed.
    #[error("cannot open watchdog {device}: {source}{hint}")]
    Open {
        device: String,
        #[source]
        source: std::io::Error,
        hint: &'static str,
    },
    /// An ioctl or write on an open device failed.
    #[error("watchdog {device}: {op} failed: {source}")]
    Device {
        device: String,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The timeout cannot be expressed by this kind of watchdog.
    #[error("watchdog {device}: a timeout of {asked:?} is not possible: {why}")]
    InvalidTimeout {
        device: String,
        asked: Duration,
        why: String,
    },
    /// No WDIOF_SETTIMEOUT and the fixed timeout is not the one asked.
    #[error("watchdog {device} cannot change its timeout (the driver has no SETTIMEOUT) and its fixed timeout is {fixed} s, not the {asked} s asked: set watchdog.timeout = \"{fixed}s\" or use another watchdog")]
    FixedTimeout {
        device: String,
        asked: u64,
        fixed: u64,
    },
    /// The device took a longer timeout than asked.
    #[error("watchdog {device} took a timeout of {took:?} when {asked:?} was asked; a longer timeout than planned breaks the msgwait arithmetic: choose a timeout the driver supports (`ironfence watchdog list` shows min/max)")]
    TimeoutTooLong {
        device: String,
        asked: Duration,
        took: Duration,
    },
    /// keepalive/disarm/time_left before arm.
    #[error("watchdog {device} is not armed (arm it first)")]
    NotArmed { device: String },
    /// arm twice.
    #[error("watchdog {device} is already armed (disarm it before arming it again)")]
    AlreadyArmed { device: String },
    /// The driver refuses to stop.
    #[error("watchdog {device} is nowayout: it cannot be stopped and resets this machine unless it keeps being fed (the timer keeps running); boot without nowayout (e.g. {hint}) to be able to stop it")]
    NoWayOut { device: String, hint: String },
    /// The BMC refused or garbled a watchdog command.
    #[error("BMC watchdog through {device}: {op}: {detail}")]
    Bmc {
        device: String,
        op: &'static str,
        detail: String,
    },
    /// This binary was built without the IPMI device transport.
    #[error("this ironfence was built without /dev/ipmi support, so it cannot drive the BMC watchdog through {device}: rebuild with `--features ipmi-devintf`, or use kind = \"linux\" with the ipmi_watchdog driver's /dev/watchdog")]
    BmcUnsupported { device: String },
    /// The recorder's timer ran out: a real machine would have been reset.
    #[error("recorded watchdog {device} fired at t={at_ms} ms (no keepalive within {timeout_ms} ms): a real machine would have been reset")]
    Fired {
        device: String,
        at_ms: u64,
        timeout_ms: u64,
    },
    /// A fault injected into the recorder by a test.
    #[error("recorded watchdog {device}: injected fault: {what}")]
    Injected { device: String, what: &'static str },
    /// The recorder's file cannot be written or read.
    #[error("watchdog record {path}: {source} (check the directory exists and is writable)")]
    RecordFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A line of a recorder file is not a record.
    #[error("watchdog record {path}, line {line}: {detail}")]
    RecordFormat {
        path: PathBuf,
        line: usize,
        detail: String,
    },
    /// Reading `/sys/class/watchdog` failed.
    #[error("cannot read {path}: {source}")]
    Sysfs {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Refuse when `forbid` (the value of [`FORBID_HARDWARE_ENV`]) is set and
/// non-empty. Pure, so it is tested without touching the environment.
pub(crate) fn hardware_guard(forbid: Option<&OsStr>, device: &Path) -> Result<(), WatchdogError> {
    match forbid {
        Some(v) if !v.is_empty() => Err(WatchdogError::HardwareForbidden {
            device: device.display().to_string(),
        }),
        _ => Ok(()),
    }
}

/// The guard on this process's environment: call before every open of a
/// real device.
pub fn check_hardware_allowed(device: &Path) -> Result<(), WatchdogError> {
    hardware_guard(std::env::var_os(FORBID_HARDWARE_ENV).as_deref(), device)
}

/// Whether [`FORBID_HARDWARE_ENV`] is set for this process.
pub fn hardware_forbidden() -> bool {
    check_hardware_allowed(Path::new("")).is_err()
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::ffi::OsString;

    #[test]
    fn guard_refuses_any_non_empty_value() {
        let dev = Path::new("/dev/watchdog");
        let one = OsString::from("1");
        let e = hardware_guard(Some(&one), dev).unwrap_err();
        assert!(matches!(e, WatchdogError::HardwareForbidden { .. }));
        let msg = e.to_string();
        assert!(msg.contains("/dev/watchdog") && msg.contains(FORBID_HARDWARE_ENV));
        let no = OsString::from("no");
        assert!(hardware_guard(Some(&no), dev).is_err());
        let empty = OsString::new();
        assert!(hardware_guard(Some(&empty), dev).is_ok());
        assert!(hardware_guard(None, dev).is_ok());
    }

    #[test]
    fn kinds_parse_and_print() {
        for k in Kind::ALL {
            assert_eq!(k.as_str().parse::<Kind>().unwrap(), k);
            assert_eq!(
                serde_json::to_string(&k).unwrap(),
                format!("\"{}\"", k.as_str())
            );
        }
        let e = "softdog".parse::<Kind>().unwrap_err();
        assert!(e.to_string().contains("linux, ipmi or recorder"));
        assert!(Kind::Linux.is_hardware() && Kind::Ipmi.is_hardware());
        assert!(!Kind::Recorder.is_hardware());
        assert_eq!(Kind::Ipmi.default_device(), Some(Path::new("/dev/ipmi0")));
        assert_eq!(Kind::Recorder.default_device(), None);
    }

    #[test]
    fn factory_opens_a_recorder_and_it_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wd.jsonl");
        let mut wd = open(Kind::Recorder, &path).unwrap();
        assert_eq!(
            wd.arm(Duration::from_secs(5)).unwrap(),
            Duration::from_secs(5)
        );
        wd.keepalive().unwrap();
        wd.disarm().unwrap();
        let info = wd.describe();
        assert_eq!(info.kind, Kind::Recorder);
        assert!(!info.armed);
        let events = recorder::read_log(&path).unwrap();
        let kinds: Vec<_> = events.iter().map(|e| e.event).collect();
        assert_eq!(
            kinds,
            [
                RecorderEvent::Arm,
                RecorderEvent::Keepalive,
                RecorderEvent::Disarm
            ]
        );
    }

    /// The harness exports IRONFENCE_FORBID_HARDWARE for every test process;
    /// when it is set, the factory must refuse both hardware kinds before
    /// looking at the device at all.
    #[test]
    fn factory_refuses_hardware_under_the_guard() {
        if !hardware_forbidden() {
            eprintln!("{FORBID_HARDWARE_ENV} not set: the pure guard test covers the check");
            return;
        }
        for kind in [Kind::Linux, Kind::Ipmi] {
            let dev = kind.default_device().unwrap();
            let e = open(kind, dev).err().unwrap();
            assert!(
                matches!(e, WatchdogError::HardwareForbidden { .. }),
                "{kind}: {e}"
            );
        }
    }
}
