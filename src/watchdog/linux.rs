//! A Linux watchdog device (`/dev/watchdog`, `/dev/watchdogN`) driven the way
//! ClusterLabs sbd drives it, and the only home of the `WDIOC_*` ioctls (the
//! inner `ioctl` module, the only `unsafe` in [`crate::watchdog`]).
//!
//! Called by the node daemon through [`super::Watchdog`] and by
//! `ironfence watchdog test`. It must never open a device when
//! [`super::FORBID_HARDWARE_ENV`] is set: [`LinuxWatchdog::open`] and the
//! one function that opens the node both check it first.
//!
//! [`LinuxWatchdog::open`] only looks (stat, sysfs); the device is opened —
//! which starts the countdown — by `arm`:
//!
//! ```text
//! arm(t):    open O_WRONLY  ─> GETSUPPORT, GETBOOTSTATUS
//!            SETTIMEOUT(t) + GETTIMEOUT   (no WDIOF_SETTIMEOUT: GETTIMEOUT must be t)
//!            SETOPTIONS(ENABLECARD)       (best effort: opening started it already)
//!            KEEPALIVE
//!            any failure: DISABLECARD + 'V' + close, then the error
//! keepalive: KEEPALIVE ioctl (drivers without WDIOF_KEEPALIVEPING: write "\0")
//! disarm:    SETOPTIONS(DISABLECARD) ─ EBUSY or sysfs nowayout=1 ─> NoWayOut, still armed
//!            write 'V', close; sysfs state still "active" ─> error
//! drop:      close WITHOUT 'V': the timer keeps running and resets the machine
//! ```

use super::{check_hardware_allowed, millis, sysfs, Kind, Watchdog, WatchdogError, WatchdogInfo};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The legacy device node (an alias of `watchdog0`).
pub const DEFAULT_DEVICE: &str = "/dev/watchdog";

/// `WDIOF_*` bits of `struct watchdog_info.options`, GETSTATUS and
/// GETBOOTSTATUS (`<linux/watchdog.h>`).
pub mod wdiof {
    pub const OVERHEAT: u32 = 0x0001;
    pub const FANFAULT: u32 = 0x0002;
    pub const EXTERN1: u32 = 0x0004;
    pub const EXTERN2: u32 = 0x0008;
    pub const POWERUNDER: u32 = 0x0010;
    pub const CARDRESET: u32 = 0x0020;
    pub const POWEROVER: u32 = 0x0040;
    pub const SETTIMEOUT: u32 = 0x0080;
    pub const MAGICCLOSE: u32 = 0x0100;
    pub const PRETIMEOUT: u32 = 0x0200;
    pub const ALARMONLY: u32 = 0x0400;
    pub const KEEPALIVEPING: u32 = 0x8000;
}

/// `WDIOS_*` arguments of SETOPTIONS.
pub mod wdios {
    pub const DISABLECARD: u32 = 0x0001;
    pub const ENABLECARD: u32 = 0x0002;
}

const FLAG_NAMES: [(u32, &str); 12] = [
    (wdiof::OVERHEAT, "OVERHEAT"),
    (wdiof::FANFAULT, "FANFAULT"),
    (wdiof::EXTERN1, "EXTERN1"),
    (wdiof::EXTERN2, "EXTERN2"),
    (wdiof::POWERUNDER, "POWERUNDER"),
    (wdiof::CARDRESET, "CARDRESET"),
    (wdiof::POWEROVER, "POWEROVER"),
    (wdiof::SETTIMEOUT, "SETTIMEOUT"),
    (wdiof::MAGICCLOSE, "MAGICCLOSE"),
    (wdiof::PRETIMEOUT, "PRETIMEOUT"),
    (wdiof::ALARMONLY, "ALARMONLY"),
    (wdiof::KEEPALIVEPING, "KEEPALIVEPING"),
];

/// `WDIOF_*` names of the bits set in `bits` (unknown bits as hex).
pub fn flag_names(bits: u32) -> Vec<String> {
    let mut out: Vec<String> = FLAG_NAMES
        .iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, n)| n.to_string())
        .collect();
    let known = FLAG_NAMES.iter().fold(0, |acc, (b, _)| acc | b);
    if bits & !known != 0 {
        out.push(format!("0x{:x}", bits & !known));
    }
    out
}

/// Why the last boot happened, from GETBOOTSTATUS bits, in words.
pub fn boot_reasons(bits: u32) -> Vec<String> {
    [
        (wdiof::CARDRESET, "card reset"),
        (wdiof::OVERHEAT, "overheat"),
        (wdiof::FANFAULT, "fan fault"),
        (wdiof::EXTERN1, "external relay 1"),
        (wdiof::EXTERN2, "external relay 2"),
        (wdiof::POWERUNDER, "power under"),
        (wdiof::POWEROVER, "power over"),
    ]
    .iter()
    .filter(|(b, _)| bits & b != 0)
    .map(|(_, n)| n.to_string())
    .collect()
}

/// What WDIOC_GETSUPPORT says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Support {
    /// `WDIOF_*` capability bits.
    pub options: u32,
    pub firmware_version: u32,
    pub identity: String,
}

/// The calls made on an open watchdog node: the real one is [`DevNode`]
/// (ioctls), unit tests substitute a fake to check the sequences above.
pub(crate) trait Device: Send {
    fn support(&self) -> io::Result<Support>;
    fn status(&self) -> io::Result<u32>;
    fn boot_status(&self) -> io::Result<u32>;
    fn set_options(&self, flags: u32) -> io::Result<()>;
    fn keepalive(&self) -> io::Result<()>;
    fn write(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// SETTIMEOUT: returns the timeout the driver took.
    fn set_timeout(&self, secs: u32) -> io::Result<u32>;
    fn timeout(&self) -> io::Result<u32>;
    fn time_left(&self) -> io::Result<u32>;
}

/// Opens a device node (starting its countdown).
pub(crate) type Opener = fn(&Path) -> io::Result<Box<dyn Device>>;

/// A Linux watchdog device. Armed exactly while its node is open.
pub struct LinuxWatchdog {
    path: PathBuf,
    /// `/sys/class/watchdog/watchdogN` of this device, when found.
    sysfs_dir: Option<PathBuf>,
    opener: Opener,
    dev: Option<Box<dyn Device>>,
    support: Option<Support>,
    boot_status: Option<u32>,
    timeout: Option<Duration>,
}

impl std::fmt::Debug for LinuxWatchdog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinuxWatchdog")
            .field("path", &self.path)
            .field("sysfs_dir", &self.sysfs_dir)
            .field("armed", &self.dev.is_some())
            .field("support", &self.support)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl LinuxWatchdog {
    /// Check that `path` is a watchdog this process may use, without opening
    /// it: refuses under [`super::FORBID_HARDWARE_ENV`] (before anything
    /// else), then needs a character device. [`Watchdog::arm`] opens it.
    pub fn open(path: &Path) -> Result<LinuxWatchdog, WatchdogError> {
        check_hardware_allowed(path)?;
        let st = nix::sys::stat::stat(path).map_err(|e| match e {
            nix::errno::Errno::ENOENT => WatchdogError::NoDevice {
                device: path.display().to_string(),
            },
            e => WatchdogError::Open {
                device: path.display().to_string(),
                source: e.into(),
                hint: "",
            },
        })?;
        let sflag = nix::sys::stat::SFlag::from_bits_truncate(st.st_mode);
        if !sflag.contains(nix::sys::stat::SFlag::S_IFCHR) {
            return Err(WatchdogError::Open {
                device: path.display().to_string(),
                source: io::Error::other("not a character device"),
                hint: " (watchdog.device must be a /dev/watchdog* node)",
            });
        }
        let (major, minor) = (
            nix::sys::stat::major(st.st_rdev),
            nix::sys::stat::minor(st.st_rdev),
        );
        let sysfs_dir = sysfs::dir_for_rdev(Path::new(sysfs::SYSFS_ROOT), major, minor);
        Ok(LinuxWatchdog::with_opener(path, sysfs_dir, open_node))
    }

    pub(crate) fn with_opener(
        path: &Path,
        sysfs_dir: Option<PathBuf>,
        opener: Opener,
    ) -> LinuxWatchdog {
        LinuxWatchdog {
            path: path.to_path_buf(),
            sysfs_dir,
            opener,
            dev: None,
            support: None,
            boot_status: None,
            timeout: None,
        }
    }

    /// The device node.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What GETSUPPORT said (after `arm`).
    pub fn support(&self) -> Option<&Support> {
        self.support.as_ref()
    }

    /// GETSTATUS, while armed.
    pub fn status(&self) -> Option<u32> {
        self.dev.as_ref().and_then(|d| d.status().ok())
    }

    fn device(&self) -> String {
        self.path.display().to_string()
    }

    fn dev_err(&self, op: &'static str) -> impl Fn(io::Error) -> WatchdogError + '_ {
        move |source| WatchdogError::Device {
            device: self.device(),
            op,
            source,
        }
    }

    fn nowayout_hint(&self) -> String {
        let driver = self
            .sysfs_dir
            .as_deref()
            .map(sysfs::read_entry)
            .and_then(|e| e.driver)
            .unwrap_or_else(|| "DRIVER".into());
        format!("the module parameter {driver}.nowayout=0, or a kernel without CONFIG_WATCHDOG_NOWAYOUT")
    }

    /// Everything `arm` does once the node is open.
    fn setup(
        &mut self,
        dev: &mut dyn Device,
        timeout: Duration,
        secs: u32,
    ) -> Result<Duration, WatchdogError> {
        let support = dev.support().map_err(self.dev_err("WDIOC_GETSUPPORT"))?;
        self.boot_status = dev.boot_status().ok();
        let took = if support.options & wdiof::SETTIMEOUT != 0 {
            let set = dev
                .set_timeout(secs)
                .map_err(self.dev_err("WDIOC_SETTIMEOUT"))?;
            // GETTIMEOUT is the authority when the driver has it.
            dev.timeout().unwrap_or(set)
        } else {
            let fixed = dev.timeout().map_err(self.dev_err("WDIOC_GETTIMEOUT"))?;
            if fixed != secs {
                return Err(WatchdogError::FixedTimeout {
                    device: self.device(),
                    asked: u64::from(secs),
                    fixed: u64::from(fixed),
                });
            }
            fixed
        };
        let took_d = Duration::from_secs(u64::from(took));
        if took == 0 {
            return Err(WatchdogError::InvalidTimeout {
                device: self.device(),
                asked: timeout,
                why: "the driver reports a timeout of 0 s".into(),
            });
        }
        if took_d > timeout {
            return Err(WatchdogError::TimeoutTooLong {
                device: self.device(),
                asked: timeout,
                took: took_d,
            });
        }
        if let Err(e) = dev.set_options(wdios::ENABLECARD) {
            // Opening the node already started the timer.
            tracing::debug!(device = %self.device(), cause = %e, "WDIOS_ENABLECARD refused; the open started the timer");
        }
        self.support = Some(support);
        keepalive_on(dev, self.support.as_ref()).map_err(self.dev_err("keepalive"))?;
        Ok(took_d)
    }

    /// DISABLECARD + 'V' + close, for a failed `arm`: true when stopped.
    fn stop_after_failed_arm(&self, mut dev: Box<dyn Device>) -> bool {
        let disabled = dev.set_options(wdios::DISABLECARD).is_ok();
        let closed = dev.write(b"V").is_ok();
        drop(dev);
        let active = self
            .sysfs_dir
            .as_deref()
            .and_then(sysfs::state)
            .is_some_and(|s| s == "active");
        (disabled || closed) && !active
    }
}

fn keepalive_on(dev: &mut dyn Device, support: Option<&Support>) -> io::Result<()> {
    match support {
        Some(s) if s.options & wdiof::KEEPALIVEPING != 0 => dev.keepalive(),
        // sbd's way: any write that carries no 'V' pings and clears a pending magic close.
        _ => dev.write(b"\0"),
    }
}

/// Whole seconds the Linux API can express, or why not.
fn whole_seconds(timeout: Duration) -> Result<u32, String> {
    if timeout < Duration::from_secs(1) {
        return Err("Linux watchdogs need at least 1 s".into());
    }
    if timeout.subsec_nanos() != 0 {
        return Err("Linux watchdogs count whole seconds (use e.g. 5s, not 5.5s)".into());
    }
    u32::try_from(timeout.as_secs())
        .ok()
        .filter(|s| i32::try_from(*s).is_ok())
        .ok_or_else(|| "too long for WDIOC_SETTIMEOUT".into())
}

impl Watchdog for LinuxWatchdog {
    fn arm(&mut self, timeout: Duration) -> Result<Duration, WatchdogError> {
        if self.dev.is_some() {
            return Err(WatchdogError::AlreadyArmed {
                device: self.device(),
            });
        }
        let secs = whole_seconds(timeout).map_err(|why| WatchdogError::InvalidTimeout {
            device: self.device(),
            asked: timeout,
            why,
        })?;
        let mut dev = (self.opener)(&self.path).map_err(|e| open_error(&self.path, e))?;
        // The countdown runs from here on.
        match self.setup(dev.as_mut(), timeout, secs) {
            Ok(took) => {
                self.dev = Some(dev);
                self.timeout = Some(took);
                tracing::info!(device = %self.device(), timeout_s = took.as_secs(), "watchdog armed");
                Ok(took)
            }
            Err(e) => {
                if !self.stop_after_failed_arm(dev) {
                    tracing::error!(device = %self.device(), cause = %e,
                        "arming failed and the watchdog could not be stopped: it will reset this machine");
                }
                Err(e)
            }
        }
    }

    fn keepalive(&mut self) -> Result<(), WatchdogError> {
        let device = self.device();
        let Some(dev) = self.dev.as_mut() else {
            return Err(WatchdogError::NotArmed { device });
        };
        keepalive_on(dev.as_mut(), self.support.as_ref()).map_err(|source| WatchdogError::Device {
            device,
            op: "keepalive",
            source,
        })
    }

    fn disarm(&mut self) -> Result<(), WatchdogError> {
        let device = self.device();
        let Some(dev) = self.dev.as_ref() else {
            return Ok(());
        };
        let mut nowayout = self
            .sysfs_dir
            .as_deref()
            .and_then(sysfs::nowayout)
            .unwrap_or(false);
        match dev.set_options(wdios::DISABLECARD) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(nix::libc::EBUSY) => nowayout = true,
            Err(e) => {
                tracing::warn!(device = %device, cause = %e, "WDIOS_DISABLECARD failed; trying the magic close");
            }
        }
        if nowayout {
            // Keep it open: the caller can (and must) go on feeding it.
            return Err(WatchdogError::NoWayOut {
                device,
                hint: self.nowayout_hint(),
            });
        }
        if let Some(dev) = self.dev.as_mut() {
            dev.write(b"V").map_err(|source| WatchdogError::Device {
                device: device.clone(),
                op: "magic close (write 'V')",
                source,
            })?;
        }
        self.dev = None; // close: the kernel stops the timer after the 'V'
        if let Some(state) = self.sysfs_dir.as_deref().and_then(sysfs::state) {
            if state == "active" {
                return Err(WatchdogError::NoWayOut {
                    device,
                    hint: self.nowayout_hint(),
                });
            }
        }
        tracing::info!(device = %device, "watchdog disarmed (magic close)");
        Ok(())
    }

    fn describe(&self) -> WatchdogInfo {
        let mut info = WatchdogInfo::new(Kind::Linux, self.device());
        let entry = self.sysfs_dir.as_deref().map(sysfs::read_entry);
        info.armed = self.dev.is_some();
        info.identity = self
            .support
            .as_ref()
            .map(|s| s.identity.clone())
            .or_else(|| entry.as_ref().and_then(|e| e.identity.clone()));
        info.timeout_ms = self.timeout.map(millis).or_else(|| {
            entry
                .as_ref()
                .and_then(|e| e.timeout_s)
                .map(|s| u64::from(s) * 1000)
        });
        info.nowayout = entry.as_ref().and_then(|e| e.nowayout);
        info.action = Some("reset".into());
        let boot = self
            .boot_status
            .or_else(|| entry.as_ref().and_then(|e| e.bootstatus));
        info.boot_status = boot.map(boot_reasons).unwrap_or_default();
        info.options = self
            .support
            .as_ref()
            .map(|s| s.options)
            .or_else(|| entry.as_ref().and_then(|e| e.options))
            .map(flag_names)
            .unwrap_or_default();
        info
    }

    fn time_left(&self) -> Option<Duration> {
        let dev = self.dev.as_ref()?;
        dev.time_left()
            .ok()
            .map(|s| Duration::from_secs(u64::from(s)))
    }
}

impl Drop for LinuxWatchdog {
    /// Closing without the magic 'V' leaves the timer running: a daemon that
    /// drops (or crashes with) an armed watchdog still gets its node reset.
    fn drop(&mut self) {
        if self.dev.is_some() {
            tracing::warn!(device = %self.device(), timeout_s = self.timeout.map(|t| t.as_secs()),
                "closing the watchdog while armed: it keeps running and resets this machine");
        }
    }
}

fn open_error(path: &Path, e: io::Error) -> WatchdogError {
    if e.get_ref().is_some_and(|inner| inner.is::<Forbidden>()) {
        return WatchdogError::HardwareForbidden {
            device: path.display().to_string(),
        };
    }
    let device = path.display().to_string();
    let hint = match e.raw_os_error() {
        Some(nix::libc::ENOENT) | Some(nix::libc::ENODEV) | Some(nix::libc::ENXIO) => {
            return WatchdogError::NoDevice { device }
        }
        Some(nix::libc::EBUSY) => " (another process holds it open: sbd, the watchdog daemon, systemd's RuntimeWatchdogSec? stop it first)",
        Some(nix::libc::EACCES) | Some(nix::libc::EPERM) => " (run ironfenced as root)",
        _ => "",
    };
    WatchdogError::Open {
        device,
        source: e,
        hint,
    }
}

/// Marker inside the io::Error the real opener returns under the guard.
#[derive(Debug)]
struct Forbidden;

impl std::fmt::Display for Forbidden {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} is set", super::FORBID_HARDWARE_ENV)
    }
}

impl std::error::Error for Forbidden {}

/// The one place a watchdog node is opened: guard first, then
/// `O_WRONLY | O_CLOEXEC` (fence agents the daemon starts must not inherit it).
fn open_node(path: &Path) -> io::Result<Box<dyn Device>> {
    if check_hardware_allowed(path).is_err() {
        return Err(io::Error::new(io::ErrorKind::PermissionDenied, Forbidden));
    }
    let file = std::fs::OpenOptions::new().write(true).open(path)?;
    Ok(Box::new(DevNode { file }))
}

/// An open watchdog node: safe wrappers around the ioctls.
struct DevNode {
    file: std::fs::File,
}

impl Device for DevNode {
    fn support(&self) -> io::Result<Support> {
        let raw = ioctl::get_support(&self.file)?;
        let end = raw
            .identity
            .iter()
            .position(|b| *b == 0)
            .unwrap_or(raw.identity.len());
        Ok(Support {
            options: raw.options,
            firmware_version: raw.firmware_version,
            identity: String::from_utf8_lossy(&raw.identity[..end])
                .trim()
                .to_string(),
        })
    }
    fn status(&self) -> io::Result<u32> {
        ioctl::get_status(&self.file).map(|v| v as u32)
    }
    fn boot_status(&self) -> io::Result<u32> {
        ioctl::get_boot_status(&self.file).map(|v| v as u32)
    }
    fn set_options(&self, flags: u32) -> io::Result<()> {
        ioctl::set_options(&self.file, flags as i32)
    }
    fn keepalive(&self) -> io::Result<()> {
        ioctl::keepalive(&self.file)
    }
    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        use std::io::Write;
        self.file.write_all(bytes)
    }
    fn set_timeout(&self, secs: u32) -> io::Result<u32> {
        let secs = i32::try_from(secs).map_err(io::Error::other)?;
        ioctl::set_timeout(&self.file, secs).map(|v| v.max(0) as u32)
    }
    fn timeout(&self) -> io::Result<u32> {
        ioctl::get_timeout(&self.file).map(|v| v.max(0) as u32)
    }
    fn time_left(&self) -> io::Result<u32> {
        ioctl::get_time_left(&self.file).map(|v| v.max(0) as u32)
    }
}

/// The `WDIOC_*` ioctls of `<linux/watchdog.h>` (`'W'`, numbers 0-10).
/// Nothing else in `crate::watchdog` is unsafe.
#[allow(unsafe_code)]
mod ioctl {
    use std::ffi::c_int;
    use std::fs::File;
    use std::io;
    use std::os::fd::AsRawFd;

    /// `struct watchdog_info`.
    #[repr(C)]
    #[derive(Debug, Default)]
    pub(super) struct WatchdogInfoRaw {
        pub options: u32,
        pub firmware_version: u32,
        pub identity: [u8; 32],
    }

    const W: u8 = b'W';
    nix::ioctl_read!(wdioc_getsupport, W, 0, WatchdogInfoRaw);
    nix::ioctl_read!(wdioc_getstatus, W, 1, c_int);
    nix::ioctl_read!(wdioc_getbootstatus, W, 2, c_int);
    // The kernel declares SETOPTIONS and KEEPALIVE with _IOR although they
    // pass data in; the request numbers must match the header.
    nix::ioctl_read!(wdioc_setoptions, W, 4, c_int);
    nix::ioctl_read!(wdioc_keepalive, W, 5, c_int);
    nix::ioctl_readwrite!(wdioc_settimeout, W, 6, c_int);
    nix::ioctl_read!(wdioc_gettimeout, W, 7, c_int);
    nix::ioctl_read!(wdioc_gettimeleft, W, 10, c_int);

    pub(super) fn get_support(file: &File) -> io::Result<WatchdogInfoRaw> {
        let mut info = WatchdogInfoRaw::default();
        // SAFETY: GETSUPPORT writes one `struct watchdog_info` (40 bytes,
        // `WatchdogInfoRaw` is its #[repr(C)] twin) through the pointer, which
        // points at `info`, live and writable for the call; the fd stays open
        // because `file` is borrowed.
        unsafe { wdioc_getsupport(file.as_raw_fd(), &mut info) }?;
        Ok(info)
    }

    /// An ioctl whose argument is one `int` (read, written or both).
    fn int_call(
        file: &File,
        value: c_int,
        call: unsafe fn(c_int, *mut c_int) -> nix::Result<c_int>,
    ) -> io::Result<c_int> {
        let mut v = value;
        // SAFETY: every WDIOC_* int ioctl reads and/or writes exactly one
        // `int` through the pointer, which points at `v`, a live, writable
        // c_int on this stack frame; the fd stays open because `file` is
        // borrowed for the call.
        unsafe { call(file.as_raw_fd(), &mut v) }?;
        Ok(v)
    }

    pub(super) fn get_status(file: &File) -> io::Result<c_int> {
        int_call(file, 0, wdioc_getstatus)
    }
    pub(super) fn get_boot_status(file: &File) -> io::Result<c_int> {
        int_call(file, 0, wdioc_getbootstatus)
    }
    pub(super) fn set_options(file: &File, flags: c_int) -> io::Result<()> {
        int_call(file, flags, wdioc_setoptions).map(|_| ())
    }
    pub(super) fn keepalive(file: &File) -> io::Result<()> {
        int_call(file, 0, wdioc_keepalive).map(|_| ())
    }
    pub(super) fn set_timeout(file: &File, secs: c_int) -> io::Result<c_int> {
        int_call(file, secs, wdioc_settimeout)
    }
    pub(super) fn get_timeout(file: &File) -> io::Result<c_int> {
        int_call(file, 0, wdioc_gettimeout)
    }
    pub(super) fn get_time_left(file: &File) -> io::Result<c_int> {
        int_call(file, 0, wdioc_gettimeleft)
    }

    #[cfg(test)]
    mod tests {
        /// The request numbers of `<linux/watchdog.h>` on x86_64 (wdtest in
        /// the lab notes computed the same by hand).
        #[test]
        #[cfg(target_arch = "x86_64")]
        fn request_numbers_match_linux_watchdog_h() {
            use super::WatchdogInfoRaw;
            use std::ffi::c_int;
            assert_eq!(std::mem::size_of::<WatchdogInfoRaw>(), 40);
            assert_eq!(
                nix::request_code_read!(b'W', 0, std::mem::size_of::<WatchdogInfoRaw>()) as u64,
                0x8028_5700
            );
            assert_eq!(
                nix::request_code_read!(b'W', 1, std::mem::size_of::<c_int>()) as u64,
                0x8004_5701
            );
            assert_eq!(
                nix::request_code_read!(b'W', 4, std::mem::size_of::<c_int>()) as u64,
                0x8004_5704
            );
            assert_eq!(
                nix::request_code_read!(b'W', 5, std::mem::size_of::<c_int>()) as u64,
                0x8004_5705
            );
            assert_eq!(
                nix::request_code_readwrite!(b'W', 6, std::mem::size_of::<c_int>()) as u64,
                0xc004_5706
            );
            assert_eq!(
                nix::request_code_read!(b'W', 7, std::mem::size_of::<c_int>()) as u64,
                0x8004_5707
            );
            assert_eq!(
                nix::request_code_read!(b'W', 10, std::mem::size_of::<c_int>()) as u64,
                0x8004_570a
            );
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::{Arc, Mutex};

    /// What the fake device saw, shared with the test.
    #[derive(Debug, Default)]
    struct Seen {
        calls: Vec<String>,
        open: bool,
        /// Closed after a 'V' (the kernel would stop the timer).
        stopped: bool,
    }

    #[derive(Clone)]
    struct FakeSpec {
        options: u32,
        /// What SETTIMEOUT takes for a request (None: echo).
        rounds_to: Option<u32>,
        fixed_timeout: u32,
        nowayout: bool,
        time_left: Option<u32>,
    }

    /// i6300esb as the lab saw it: options 0x8180, no GETTIMELEFT.
    const ESB: FakeSpec = FakeSpec {
        options: 0x8180,
        rounds_to: None,
        fixed_timeout: 30,
        nowayout: false,
        time_left: None,
    };

    struct Fake {
        spec: FakeSpec,
        timeout: std::cell::Cell<u32>,
        magic: bool,
        seen: Arc<Mutex<Seen>>,
    }

    impl Fake {
        fn log(&self, s: String) {
            self.seen.lock().unwrap().calls.push(s);
        }
    }

    impl Drop for Fake {
        fn drop(&mut self) {
            let mut seen = self.seen.lock().unwrap();
            seen.open = false;
            seen.stopped = self.magic && !self.spec.nowayout;
            seen.calls.push(format!("close magic={}", self.magic));
        }
    }

    impl Device for Fake {
        fn support(&self) -> io::Result<Support> {
            self.log("GETSUPPORT".into());
            Ok(Support {
                options: self.spec.options,
                firmware_version: 0,
                identity: "i6300ESB timer".into(),
            })
        }
        fn status(&self) -> io::Result<u32> {
            Ok(0x8200)
        }
        fn boot_status(&self) -> io::Result<u32> {
            self.log("GETBOOTSTATUS".into());
            Ok(wdiof::CARDRESET)
        }
        fn set_options(&self, flags: u32) -> io::Result<()> {
            self.log(format!("SETOPTIONS {flags}"));
            if flags == wdios::DISABLECARD && self.spec.nowayout {
                return Err(io::Error::from_raw_os_error(nix::libc::EBUSY));
            }
            Ok(())
        }
        fn keepalive(&self) -> io::Result<()> {
            self.log("KEEPALIVE".into());
            Ok(())
        }
        fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
            self.log(format!("write {bytes:?}"));
            self.magic = bytes.contains(&b'V');
            Ok(())
        }
        fn set_timeout(&self, secs: u32) -> io::Result<u32> {
            self.log(format!("SETTIMEOUT {secs}"));
            if self.spec.options & wdiof::SETTIMEOUT == 0 {
                return Err(io::Error::from_raw_os_error(nix::libc::EOPNOTSUPP));
            }
            let took = self.spec.rounds_to.unwrap_or(secs);
            self.timeout.set(took);
            Ok(took)
        }
        fn timeout(&self) -> io::Result<u32> {
            self.log("GETTIMEOUT".into());
            Ok(self.timeout.get())
        }
        fn time_left(&self) -> io::Result<u32> {
            self.spec
                .time_left
                .ok_or_else(|| io::Error::from_raw_os_error(nix::libc::EOPNOTSUPP))
        }
    }

    thread_local! {
        static NEXT: std::cell::RefCell<Option<(FakeSpec, Arc<Mutex<Seen>>)>> = const { std::cell::RefCell::new(None) };
    }

    fn fake_opener(_: &Path) -> io::Result<Box<dyn Device>> {
        let (spec, seen) = NEXT
            .with(|n| n.borrow().clone())
            .ok_or_else(|| io::Error::from_raw_os_error(nix::libc::ENOENT))?;
        seen.lock().unwrap().open = true;
        seen.lock().unwrap().calls.push("open".into());
        Ok(Box::new(Fake {
            timeout: std::cell::Cell::new(spec.fixed_timeout),
            spec,
            magic: false,
            seen,
        }))
    }

    /// A watchdog on the fake device (the rounding spec makes GETTIMEOUT
    /// report what SETTIMEOUT took).
    fn fake(spec: FakeSpec, sysfs_dir: Option<PathBuf>) -> (LinuxWatchdog, Arc<Mutex<Seen>>) {
        let seen = Arc::new(Mutex::new(Seen::default()));
        NEXT.with(|n| *n.borrow_mut() = Some((spec, seen.clone())));
        (
            LinuxWatchdog::with_opener(Path::new("/dev/watchdog0"), sysfs_dir, fake_opener),
            seen,
        )
    }

    fn calls(seen: &Arc<Mutex<Seen>>) -> Vec<String> {
        seen.lock().unwrap().calls.clone()
    }

    #[test]
    fn open_refuses_under_the_guard_before_looking_at_the_device() {
        if !super::super::hardware_forbidden() {
            eprintln!("guard not set in this environment; covered by the pure guard test");
            return;
        }
        // A path that does not exist: the guard must answer first, not NoDevice.
        let e = LinuxWatchdog::open(Path::new("/nonexistent/watchdog9")).unwrap_err();
        assert!(matches!(e, WatchdogError::HardwareForbidden { .. }), "{e}");
        let e = open_node(Path::new("/nonexistent/watchdog9"))
            .err()
            .unwrap();
        assert!(matches!(
            open_error(Path::new("/nonexistent/watchdog9"), e),
            WatchdogError::HardwareForbidden { .. }
        ));
    }

    #[test]
    fn arm_sets_the_timeout_and_feeds_like_sbd() {
        let spec = FakeSpec {
            rounds_to: Some(5),
            ..ESB
        };
        let (mut wd, seen) = fake(spec, None);
        assert_eq!(
            wd.arm(Duration::from_secs(5)).unwrap(),
            Duration::from_secs(5)
        );
        assert_eq!(
            calls(&seen),
            [
                "open",
                "GETSUPPORT",
                "GETBOOTSTATUS",
                "SETTIMEOUT 5",
                "GETTIMEOUT",
                "SETOPTIONS 2",
                "KEEPALIVE"
            ]
        );
        wd.keepalive().unwrap();
        let info = wd.describe();
        assert!(info.armed);
        assert_eq!(info.identity.as_deref(), Some("i6300ESB timer"));
        assert_eq!(info.timeout_ms, Some(5000));
        assert_eq!(info.boot_status, ["card reset"]);
        assert_eq!(info.options, ["SETTIMEOUT", "MAGICCLOSE", "KEEPALIVEPING"]);
        assert_eq!(wd.time_left(), None, "the i6300esb has no GETTIMELEFT");
        assert!(matches!(
            wd.arm(Duration::from_secs(5)),
            Err(WatchdogError::AlreadyArmed { .. })
        ));

        wd.disarm().unwrap();
        let c = calls(&seen);
        assert_eq!(
            &c[c.len() - 3..],
            ["SETOPTIONS 1", "write [86]", "close magic=true"]
        );
        assert!(seen.lock().unwrap().stopped);
        assert!(!wd.describe().armed);
        wd.disarm().unwrap(); // idempotent
        assert!(matches!(
            wd.keepalive(),
            Err(WatchdogError::NotArmed { .. })
        ));
    }

    #[test]
    fn dropping_an_armed_watchdog_closes_without_the_magic_v() {
        let (mut wd, seen) = fake(
            FakeSpec {
                rounds_to: Some(5),
                ..ESB
            },
            None,
        );
        wd.arm(Duration::from_secs(5)).unwrap();
        drop(wd);
        let s = seen.lock().unwrap();
        assert_eq!(
            s.calls.last().map(String::as_str),
            Some("close magic=false")
        );
        assert!(!s.stopped, "a dropped watchdog must keep running");
        assert!(!s.calls.iter().any(|c| c == "write [86]"));
    }

    #[test]
    fn keepalive_writes_when_the_driver_has_no_keepalive_ioctl() {
        let spec = FakeSpec {
            options: wdiof::SETTIMEOUT | wdiof::MAGICCLOSE,
            rounds_to: Some(10),
            ..ESB
        };
        let (mut wd, seen) = fake(spec, None);
        wd.arm(Duration::from_secs(10)).unwrap();
        wd.keepalive().unwrap();
        let c = calls(&seen);
        assert_eq!(&c[c.len() - 2..], ["write [0]", "write [0]"]);
        assert!(!c.iter().any(|c| c == "KEEPALIVE"));
    }

    #[test]
    fn a_longer_timeout_than_asked_is_refused_and_the_timer_stopped() {
        let (mut wd, seen) = fake(
            FakeSpec {
                rounds_to: Some(8),
                ..ESB
            },
            None,
        );
        let e = wd.arm(Duration::from_secs(5)).unwrap_err();
        assert!(matches!(e, WatchdogError::TimeoutTooLong { .. }), "{e}");
        assert!(e.to_string().contains("ironfence watchdog list"));
        let s = seen.lock().unwrap();
        assert!(
            !s.open && s.stopped,
            "a failed arm must stop the timer: {:?}",
            s.calls
        );
        drop(s);
        assert!(!wd.describe().armed);
    }

    #[test]
    fn a_shorter_rounded_timeout_is_returned() {
        let (mut wd, _) = fake(
            FakeSpec {
                rounds_to: Some(4),
                ..ESB
            },
            None,
        );
        assert_eq!(
            wd.arm(Duration::from_secs(5)).unwrap(),
            Duration::from_secs(4)
        );
    }

    #[test]
    fn fixed_timeout_must_equal_the_one_asked() {
        let fixed = FakeSpec {
            options: wdiof::MAGICCLOSE | wdiof::KEEPALIVEPING,
            fixed_timeout: 60,
            ..ESB
        };
        let (mut wd, seen) = fake(fixed.clone(), None);
        let e = wd.arm(Duration::from_secs(5)).unwrap_err();
        match &e {
            WatchdogError::FixedTimeout { asked, fixed, .. } => {
                assert_eq!((*asked, *fixed), (5, 60))
            }
            other => panic!("{other}"),
        }
        assert!(e.to_string().contains("watchdog.timeout = \"60s\""));
        assert!(!calls(&seen).iter().any(|c| c.starts_with("SETTIMEOUT")));
        assert!(seen.lock().unwrap().stopped);

        let (mut wd, _) = fake(fixed, None);
        assert_eq!(
            wd.arm(Duration::from_secs(60)).unwrap(),
            Duration::from_secs(60)
        );
    }

    #[test]
    fn timeouts_the_api_cannot_express_are_refused_before_opening() {
        for bad in [
            Duration::ZERO,
            Duration::from_millis(500),
            Duration::from_millis(5500),
        ] {
            let (mut wd, seen) = fake(ESB, None);
            let e = wd.arm(bad).unwrap_err();
            assert!(
                matches!(e, WatchdogError::InvalidTimeout { .. }),
                "{bad:?}: {e}"
            );
            assert!(calls(&seen).is_empty(), "nothing may be opened for {bad:?}");
        }
    }

    #[test]
    fn nowayout_says_so_and_stays_armed() {
        let spec = FakeSpec {
            nowayout: true,
            rounds_to: Some(5),
            time_left: Some(3),
            ..ESB
        };
        let tmp = tempfile::tempdir().unwrap();
        let dir = sysfs::tests::fake_entry(
            tmp.path(),
            "watchdog0",
            &[("nowayout", "1"), ("state", "active")],
        );
        let (mut wd, seen) = fake(spec, Some(dir));
        wd.arm(Duration::from_secs(5)).unwrap();
        assert_eq!(wd.time_left(), Some(Duration::from_secs(3)));
        let e = wd.disarm().unwrap_err();
        assert!(matches!(e, WatchdogError::NoWayOut { .. }), "{e}");
        assert!(e.to_string().contains("timer keeps running"));
        assert!(
            wd.describe().armed,
            "still armed: it can (and must) still be fed"
        );
        assert_eq!(wd.describe().nowayout, Some(true));
        wd.keepalive().unwrap();
        assert!(seen.lock().unwrap().open);
    }

    #[test]
    fn disarm_checks_sysfs_state_after_the_close() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = sysfs::tests::fake_entry(tmp.path(), "watchdog0", &[("state", "active")]);
        let (mut wd, _) = fake(
            FakeSpec {
                rounds_to: Some(5),
                ..ESB
            },
            Some(dir.clone()),
        );
        wd.arm(Duration::from_secs(5)).unwrap();
        let e = wd.disarm().unwrap_err();
        assert!(matches!(e, WatchdogError::NoWayOut { .. }), "{e}");

        std::fs::write(dir.join("state"), "inactive\n").unwrap();
        let (mut wd, _) = fake(
            FakeSpec {
                rounds_to: Some(5),
                ..ESB
            },
            Some(dir),
        );
        wd.arm(Duration::from_secs(5)).unwrap();
        wd.disarm().unwrap();
    }

    #[test]
    fn describe_before_arm_comes_from_sysfs() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = sysfs::tests::i6300esb(tmp.path());
        let (wd, seen) = fake(ESB, Some(dir));
        let info = wd.describe();
        assert!(!info.armed);
        assert_eq!(info.identity.as_deref(), Some("i6300ESB timer"));
        assert_eq!(info.timeout_ms, Some(30_000));
        assert_eq!(info.nowayout, Some(false));
        assert!(calls(&seen).is_empty(), "describe must not open the device");
    }

    #[test]
    fn open_errors_tell_the_operator_what_to_do() {
        let p = Path::new("/dev/watchdog");
        let busy = open_error(p, io::Error::from_raw_os_error(nix::libc::EBUSY));
        assert!(
            busy.to_string().contains("another process holds it open"),
            "{busy}"
        );
        let perm = open_error(p, io::Error::from_raw_os_error(nix::libc::EACCES));
        assert!(perm.to_string().contains("root"), "{perm}");
        let none = open_error(p, io::Error::from_raw_os_error(nix::libc::ENOENT));
        assert!(matches!(none, WatchdogError::NoDevice { .. }));
        assert!(none.to_string().contains("load its driver"));
    }

    #[test]
    fn flags_have_names() {
        assert_eq!(
            flag_names(0x8180),
            ["SETTIMEOUT", "MAGICCLOSE", "KEEPALIVEPING"]
        );
        assert_eq!(flag_names(0x1_0001), ["OVERHEAT", "0x10000"]);
        assert_eq!(boot_reasons(0x8200), Vec::<String>::new());
        assert_eq!(
            boot_reasons(wdiof::CARDRESET | wdiof::OVERHEAT),
            ["card reset", "overheat"]
        );
    }
}
