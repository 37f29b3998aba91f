//! What the kernel says about its watchdogs in `/sys/class/watchdog`, read
//! **without opening any device** (opening `/dev/watchdogN` starts it).
//!
//! Called by `ironfence watchdog list` and by [`super::LinuxWatchdog`] (to
//! find its device's directory: nowayout, state after a disarm). The root is
//! a parameter so tests build a tree in a temp dir. Missing attributes (old
//! kernels, drivers without GETTIMELEFT or pretimeout) are `None`, never an
//! error; a missing root means "no watchdog driver loaded".
//!
//! It must never open anything under `/dev`.

use super::WatchdogError;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Where the kernel lists its watchdogs.
pub const SYSFS_ROOT: &str = "/sys/class/watchdog";

/// The misc device `/dev/watchdog` (10:130): an alias of `watchdog0`.
pub(crate) const LEGACY_RDEV: (u64, u64) = (10, 130);

/// One watchdog as sysfs describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SysfsWatchdog {
    /// `watchdog0`.
    pub name: String,
    /// `/dev/watchdog0`.
    pub device: PathBuf,
    /// `watchdog0` also answers at `/dev/watchdog`.
    pub legacy_alias: bool,
    /// `major:minor` of the device node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
    /// The driver's identity (`i6300ESB timer`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// The kernel driver (`i6300esb`; `softdog` for the software one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// `active` (someone has it running) or `inactive`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_timeout_s: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_timeout_s: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pretimeout_s: Option<u32>,
    /// Seconds to the reset (only drivers with GETTIMELEFT, only while active).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeleft_s: Option<u32>,
    /// Cannot be stopped once started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nowayout: Option<bool>,
    /// `WDIOF_*` bits of GETSTATUS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u32>,
    /// `WDIOF_*` bits of GETBOOTSTATUS (why the last boot happened).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bootstatus: Option<u32>,
    /// `bootstatus` in words (`card reset`: this watchdog reset the machine).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub boot_reasons: Vec<String>,
    /// `WDIOF_*` capability bits (newer kernels only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub options: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fw_version: Option<u32>,
}

/// Every watchdog under `root` (normally [`SYSFS_ROOT`]), by number. No
/// `root` at all means no watchdog driver is loaded: an empty list.
pub fn list(root: &Path) -> Result<Vec<SysfsWatchdog>, WatchdogError> {
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(WatchdogError::Sysfs {
                path: root.to_path_buf(),
                source,
            })
        }
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| WatchdogError::Sysfs {
            path: root.to_path_buf(),
            source,
        })?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if watchdog_number(&name).is_some() {
            out.push(read_entry(&entry.path()));
        }
    }
    out.sort_by_key(|w| watchdog_number(&w.name));
    Ok(out)
}

/// `watchdog12` -> 12.
fn watchdog_number(name: &str) -> Option<u32> {
    name.strip_prefix("watchdog")?.parse().ok()
}

/// One `/sys/class/watchdog/watchdogN` directory.
pub fn read_entry(dir: &Path) -> SysfsWatchdog {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let identity = text(dir, "identity");
    let driver = std::fs::read_link(dir.join("device").join("driver"))
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .or_else(|| {
            (identity.as_deref() == Some("Software Watchdog")).then(|| "softdog".to_string())
        });
    let bootstatus = number(dir, "bootstatus");
    SysfsWatchdog {
        device: PathBuf::from("/dev").join(&name),
        legacy_alias: name == "watchdog0",
        dev: text(dir, "dev"),
        identity,
        driver,
        state: text(dir, "state"),
        timeout_s: number(dir, "timeout"),
        min_timeout_s: number(dir, "min_timeout"),
        max_timeout_s: number(dir, "max_timeout"),
        pretimeout_s: number(dir, "pretimeout"),
        timeleft_s: number(dir, "timeleft"),
        nowayout: number(dir, "nowayout").map(|n| n != 0),
        status: number(dir, "status"),
        bootstatus,
        boot_reasons: bootstatus
            .map(super::linux::boot_reasons)
            .unwrap_or_default(),
        options: number(dir, "options"),
        fw_version: number(dir, "fw_version"),
        name,
    }
}

/// The directory of the watchdog whose device node is `major:minor`
/// (`/dev/watchdog`, 10:130, is `watchdog0`).
pub(crate) fn dir_for_rdev(root: &Path, major: u64, minor: u64) -> Option<PathBuf> {
    if (major, minor) == LEGACY_RDEV {
        let dir = root.join("watchdog0");
        return dir.is_dir().then_some(dir);
    }
    let want = format!("{major}:{minor}");
    list(root)
        .ok()?
        .into_iter()
        .find(|w| w.dev.as_deref() == Some(want.as_str()))
        .map(|w| root.join(w.name))
}

/// `state` of a watchdog directory, re-read now.
pub(crate) fn state(dir: &Path) -> Option<String> {
    text(dir, "state")
}

/// Whether a watchdog directory says nowayout.
pub(crate) fn nowayout(dir: &Path) -> Option<bool> {
    number(dir, "nowayout").map(|n| n != 0)
}

fn text(dir: &Path, attr: &str) -> Option<String> {
    let s = std::fs::read_to_string(dir.join(attr)).ok()?;
    let s = s.trim_end_matches(['\n', '\0']).trim();
    (!s.is_empty()).then(|| s.to_string())
}

/// Decimal, or `0x` hex as `status` and `options` are printed.
fn number(dir: &Path, attr: &str) -> Option<u32> {
    let s = text(dir, attr)?;
    match s.strip_prefix("0x") {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A sysfs watchdog directory with these attributes.
    pub(crate) fn fake_entry(root: &Path, name: &str, attrs: &[(&str, &str)]) -> PathBuf {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for (k, v) in attrs {
            std::fs::write(dir.join(k), format!("{v}\n")).unwrap();
        }
        dir
    }

    /// What the i6300esb in QEMU shows (lab notes 30-32: identity, options
    /// 0x8180, GETSTATUS 0x8200, no GETTIMELEFT).
    pub(crate) fn i6300esb(root: &Path) -> PathBuf {
        let dir = fake_entry(
            root,
            "watchdog0",
            &[
                ("dev", "246:0"),
                ("identity", "i6300ESB timer"),
                ("state", "inactive"),
                ("timeout", "30"),
                ("min_timeout", "1"),
                ("max_timeout", "2046"),
                ("nowayout", "0"),
                ("status", "0x8200"),
                ("bootstatus", "0"),
                ("options", "0x8180"),
                ("fw_version", "0"),
            ],
        );
        // the PCI device and its driver, kept inside `root` (list() skips them)
        let pci = root.join("_devices/0000:00:04.0");
        std::fs::create_dir_all(&pci).unwrap();
        std::fs::create_dir_all(root.join("_drivers/i6300esb")).unwrap();
        std::os::unix::fs::symlink("../../_drivers/i6300esb", pci.join("driver")).unwrap();
        std::os::unix::fs::symlink(&pci, dir.join("device")).unwrap();
        dir
    }

    #[test]
    fn lists_entries_in_numeric_order_with_every_attribute() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("class/watchdog");
        std::fs::create_dir_all(&root).unwrap();
        i6300esb(&root);
        fake_entry(
            &root,
            "watchdog10",
            &[
                ("identity", "Software Watchdog"),
                ("state", "active"),
                ("timeout", "60"),
                ("timeleft", "42"),
                ("pretimeout", "0"),
                ("nowayout", "1"),
                ("bootstatus", "32"),
                ("dev", "246:10"),
            ],
        );
        fake_entry(&root, "watchdog2", &[("identity", "iTCO_wdt")]);
        std::fs::create_dir_all(root.join("not-a-watchdog")).unwrap();

        let list = list(&root).unwrap();
        let names: Vec<_> = list.iter().map(|w| w.name.as_str()).collect();
        assert_eq!(names, ["watchdog0", "watchdog2", "watchdog10"]);

        let esb = &list[0];
        assert_eq!(esb.device, Path::new("/dev/watchdog0"));
        assert!(esb.legacy_alias);
        assert_eq!(esb.identity.as_deref(), Some("i6300ESB timer"));
        assert_eq!(esb.driver.as_deref(), Some("i6300esb"));
        assert_eq!(esb.state.as_deref(), Some("inactive"));
        assert_eq!(esb.timeout_s, Some(30));
        assert_eq!(
            (esb.min_timeout_s, esb.max_timeout_s),
            (Some(1), Some(2046))
        );
        assert_eq!(esb.status, Some(0x8200));
        assert_eq!(esb.options, Some(0x8180));
        assert_eq!(esb.nowayout, Some(false));
        assert_eq!(esb.timeleft_s, None);
        assert!(esb.boot_reasons.is_empty());

        let soft = &list[2];
        assert!(!soft.legacy_alias);
        assert_eq!(soft.driver.as_deref(), Some("softdog"));
        assert_eq!(soft.timeleft_s, Some(42));
        assert_eq!(soft.nowayout, Some(true));
        assert_eq!(soft.boot_reasons, ["card reset"]);

        let bare = &list[1];
        assert_eq!(bare.timeout_s, None);
        assert_eq!(bare.driver, None);

        let json = serde_json::to_value(esb).unwrap();
        assert_eq!(json["device"], "/dev/watchdog0");
        assert!(json.get("timeleft_s").is_none());
    }

    #[test]
    fn no_root_is_no_watchdog() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(list(&tmp.path().join("absent")).unwrap().is_empty());
        assert!(list(tmp.path()).unwrap().is_empty());
    }

    #[test]
    fn finds_a_directory_by_device_number() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("class/watchdog");
        std::fs::create_dir_all(&root).unwrap();
        i6300esb(&root);
        fake_entry(&root, "watchdog1", &[("dev", "246:1")]);
        assert_eq!(dir_for_rdev(&root, 246, 1), Some(root.join("watchdog1")));
        assert_eq!(dir_for_rdev(&root, 10, 130), Some(root.join("watchdog0")));
        assert_eq!(dir_for_rdev(&root, 246, 7), None);
        assert_eq!(state(&root.join("watchdog0")).as_deref(), Some("inactive"));
        assert_eq!(nowayout(&root.join("watchdog0")), Some(false));
    }
}
