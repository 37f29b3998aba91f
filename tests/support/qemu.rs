//! QEMU/TCG guests for the integration tests: a real Debian kernel with a
//! real i6300esb watchdog, virtio disks that two guests can share, and our own
//! binaries inside. Everything that can reset or power off a machine happens
//! in a guest (DESIGN.md, "Safety").
//!
//! ```text
//!   Guest::builder("a").disk(img).scenario(SCRIPT).start()
//!        |                              qemu-system-x86_64 -accel tcg
//!        |  initrd = base (cached) ++ per-guest cpio (/scenario.sh, files)
//!        +-- serial (ttyS0) --> thread: lines, timestamped on arrival
//!        +-- QMP socket -----> thread: events (WATCHDOG, SHUTDOWN, ...)
//!   wait_for_line / wait_exit / remove_disk ... ; Drop: SIGTERM, SIGKILL (by PID)
//! ```
//!
//! What is here:
//! - [`Guest::builder`] -> [`GuestBuilder`]: `.disk(path)`, `.scenario(sh)`,
//!   `.file(path, bytes)`, `.executable(path, bytes)`, `.memory(mb)`,
//!   `.watchdog_action(a)`, `.i6300esb(false)`, `.ipmi_bmc(true)`,
//!   `.append(kernel_arg)`, `.start()`.
//! - [`Guest`]: `wait_for_line(pattern, timeout)`, `wait_for_line_after`,
//!   `lines()`, `events()`, `wait_event(name, timeout)`, `wait_exit(timeout)`
//!   -> [`Exit`] `{ at, reason: ExitReason }`, `remove_disk(i)` (the guest
//!   loses the device), `fail_disk(i)` (the device stays, its I/O fails),
//!   `qmp(command, args)`, `report()`.
//! - [`raw_disk`]: a zero-filled raw image file for `.disk()`.
//! - [`guest_binaries`], [`base_initramfs`]: the static guest build of
//!   `ironfence`/`ironfenced` and the cached base initramfs (for timing).
//!
//! The guest (built here, nothing installed on the host):
//! - Kernel and busybox: Debian's `linux-image-<abi>-amd64` (the one
//!   `linux-image-amd64` depends on) and `busybox-static`, unpacked under
//!   `/opt/ironfence-lab/vm` (`IRONFENCE_LAB_VM`) by
//!   `tests/lab/vm/fetch-kernel.sh`, which `tests/lab/install.sh` runs.
//! - Base initramfs (gzip'd newc cpio, written by this module): busybox,
//!   `/init` = `tests/lab/vm/init.sh`, kernel modules flat in `/lib/modules`
//!   with their dependencies (`base.list`: watchdog, i6300esb, virtio-pci,
//!   virtio_blk, pvpanic-pci; `ipmi.list`: ipmi_msghandler, ipmi_devintf,
//!   ipmi_si, loaded when `.ipmi_bmc(true)`: /dev/ipmi0 talks to QEMU's BMC;
//!   `ipmi_watchdog.ko` is there for a scenario to `insmod`, in a guest with
//!   `.i6300esb(false)`), the host's `/usr/sbin/sbd` with every library
//!   `ldd` names, and static builds of `/usr/bin/ironfence` and
//!   `/usr/sbin/ironfenced`. Cached in `target/guest/lab/`, keyed by the
//!   content of init.sh and the size+mtime of every other input.
//! - Per guest: a small uncompressed cpio with `/scenario.sh` and the test's
//!   files, appended to the base (later archives win, so a test file may
//!   replace a base file). `/init` mounts proc/sys/devtmpfs and tmpfs on /tmp,
//!   /run, /var/run, /var/lib, /var/log; sets the hostname from `lab.id=`;
//!   loads the modules; enables sysrq; prints `INIT_READY uptime=S id=NAME`;
//!   runs `sh /scenario.sh` (stdin /dev/null, output on the console); prints
//!   `SCENARIO_END rc=N`; `poweroff -f`.
//! - Disks: `/dev/vda`, `/dev/vdb`, ... in `.disk()` order; raw,
//!   `cache=none,file.locking=off` (O_DIRECT on the host: the image must be on
//!   a filesystem that supports it, not tmpfs), so two guests can share one.
//!
//! Facts this relies on (measured with QEMU 7.2 and Debian's 6.1 kernel,
//! 2-core host without usable KVM, see also
//! ../shared/lab-notes/sbd-corosync-watchdog/):
//! - TCG only (`-accel tcg`): /dev/kvm on these machines cannot boot stock
//!   kernels. About 4-6 s from spawn to `INIT_READY`.
//! - The base initramfs is ~110 MB unpacked (sbd's libraries alone are
//!   ~55 MB, libicudata 30 MB of it). The kernel's default rootfs is a tmpfs
//!   capped at half of RAM (minus the initrd itself), which does not hold it
//!   in 256 MB; hence `rootfstype=ramfs` on the command line and gzip: 256 MB
//!   boots. The kernel does not find the end of an lz4 or zstd initrd, so
//!   gzip is the only compressor after which a second archive still unpacks.
//! - `-no-reboot`: a guest reset ends QEMU with SHUTDOWN reason
//!   `guest-reset`. An i6300esb expiry sends WATCHDOG `{action}` and then
//!   SHUTDOWN (`guest-shutdown` for poweroff). `poweroff -f` gives
//!   `guest-shutdown`. A kernel panic with the pvpanic-pci device gives
//!   GUEST_PANICKED then SHUTDOWN `guest-panic`. SIGTERM gives `host-signal`.
//! - busybox `watchdog -T 3` then `kill -9`: the i6300esb fires ~3 s after the
//!   kill ("watchdog did not stop!" on the console at the kill).
//! - Disk loss, two ways, both measured: `device_del` of the virtio-blk-pci
//!   device ([`Guest::remove_disk`]) is acknowledged by the guest's ACPI PCI
//!   hotplug (acpiphp is built into Debian's kernel) within ~0.2-0.5 s under
//!   TCG: DEVICE_DELETED arrives, /sys/block/vdX and /dev/vdX are gone, and an
//!   open() racing the removal fails with EINVAL. Careful in scenarios: once
//!   the node is gone, `dd of=/dev/vdX` creates a regular file there. HMP
//!   `drive_del` ([`Guest::fail_disk`]) keeps the device and fails its I/O
//!   with EIO at once.

use regex::Regex;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::fs;
use std::hash::{Hash, Hasher};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Where tests/lab/vm/fetch-kernel.sh unpacks the kernel and busybox unless
/// `IRONFENCE_LAB_VM` says otherwise.
pub const DEFAULT_LAB_VM: &str = "/opt/ironfence-lab/vm";
/// Guest RAM unless `.memory()` says otherwise (sbd wants 512).
pub const DEFAULT_MEMORY_MB: u32 = 256;
/// The i6300esb action unless `.watchdog_action()` says otherwise.
pub const DEFAULT_WATCHDOG_ACTION: &str = "poweroff";
/// The Rust target of the static guest build.
pub const GUEST_TARGET: &str = "x86_64-unknown-linux-gnu";

/// Serial lines shown in a failure message.
const REPORT_LINES: usize = 40;
/// How long QEMU may take to open its QMP socket.
const QMP_CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long one QMP command may take to be answered.
const QMP_COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a guest may take to acknowledge a PCI unplug (ACPI, under TCG).
const UNPLUG_TIMEOUT: Duration = Duration::from_secs(15);
/// Grace between SIGTERM and SIGKILL when a guest is dropped.
const TERM_GRACE: Duration = Duration::from_secs(2);
/// Bumped whenever the layout of the base initramfs changes (cache key).
const BASE_LAYOUT_VERSION: u32 = 1;

/// Modules loaded at every boot (dependencies are added and ordered).
const BASE_MODULES: [&str; 5] = [
    "watchdog",
    "i6300esb",
    "virtio_pci",
    "virtio_blk",
    "pvpanic_pci",
];
/// Modules loaded when the guest has a BMC (`lab.modules=ipmi`).
const IPMI_MODULES: [&str; 3] = ["ipmi_msghandler", "ipmi_devintf", "ipmi_si"];
/// Modules put into the image but loaded by no list (a scenario insmods them).
const SPARE_MODULES: [&str; 1] = ["ipmi_watchdog"];

// ---------------------------------------------------------------------------
// errors

/// A harness failure: its text is the whole message (with the guest's report
/// when there is a guest), shown as-is by `Debug` so `expect` prints it
/// readably.
pub struct GuestError(String);

impl GuestError {
    /// The message.
    pub fn message(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for GuestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for GuestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for GuestError {}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------------------
// lab pieces on disk

/// The kernel, its modules and busybox unpacked by fetch-kernel.sh.
#[derive(Debug)]
struct LabFiles {
    qemu: PathBuf,
    vmlinuz: PathBuf,
    /// `.../lib/modules/<version>`
    modules: PathBuf,
    busybox: PathBuf,
}

fn lab_vm_dir() -> PathBuf {
    std::env::var_os("IRONFENCE_LAB_VM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_LAB_VM))
}

fn missing_lab(what: &str) -> ! {
    panic!(
        "QEMU lab: {what}: run `bash tests/lab/install.sh` as root (it runs \
         tests/lab/vm/fetch-kernel.sh, which unpacks the guest kernel and busybox \
         into {})",
        lab_vm_dir().display()
    )
}

fn lab_files() -> &'static LabFiles {
    static FILES: OnceLock<LabFiles> = OnceLock::new();
    FILES.get_or_init(|| {
        let qemu = super::find_peer("qemu-system-x86_64")
            .unwrap_or_else(|| missing_lab("missing test peer 'qemu-system-x86_64'"));
        let vm = lab_vm_dir();
        let kernel = vm.join("kernel");
        if !kernel.join(".complete").is_file() {
            missing_lab(&format!("no guest kernel in {}", kernel.display()));
        }
        let pick = |dir: PathBuf, what: &str, want_dir: bool| -> PathBuf {
            let mut found: Vec<PathBuf> = fs::read_dir(&dir)
                .unwrap_or_else(|e| missing_lab(&format!("read {}: {e}", dir.display())))
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                    (want_dir && p.is_dir()) || (!want_dir && name.starts_with(what))
                })
                .collect();
            found.sort();
            match found.len() {
                1 => found.remove(0),
                0 => missing_lab(&format!("no {what} in {}", dir.display())),
                _ => panic!(
                    "QEMU lab: more than one {what} in {}: {found:?}",
                    dir.display()
                ),
            }
        };
        let vmlinuz = pick(kernel.join("boot"), "vmlinuz-", false);
        let modules = pick(kernel.join("lib/modules"), "module tree", true);
        let busybox = vm.join("busybox/bin/busybox");
        if !busybox.is_file() {
            missing_lab(&format!("no {}", busybox.display()));
        }
        LabFiles {
            qemu,
            vmlinuz,
            modules,
            busybox,
        }
    })
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `target/guest` of this package: the static guest build and the cache.
pub fn guest_target_dir() -> PathBuf {
    manifest_dir().join("target/guest")
}

// ---------------------------------------------------------------------------
// static guest build of our binaries

/// The static (`+crt-static`, glibc) builds of `ironfence` and `ironfenced`
/// that go into every guest.
#[derive(Debug, Clone)]
pub struct GuestBinaries {
    pub ironfence: PathBuf,
    pub ironfenced: PathBuf,
    /// How long `cargo build` took in this process (a no-op build is ~1 s).
    pub build_time: Duration,
}

/// Build the guest binaries once per test process:
/// `RUSTFLAGS="-C target-feature=+crt-static" cargo build --bins --target
/// x86_64-unknown-linux-gnu --target-dir target/guest`, dev profile without
/// debug info and symbols (smaller initramfs; panics still name file:line),
/// no cargo features (so no corosync). Cargo's lock on target/guest
/// serialises concurrent test processes. Panics with cargo's output when the
/// build fails.
pub fn guest_binaries() -> &'static GuestBinaries {
    static BINS: OnceLock<Result<GuestBinaries, String>> = OnceLock::new();
    let built = BINS.get_or_init(build_guest_binaries);
    match built {
        Ok(bins) => bins,
        Err(e) => panic!("{e}"),
    }
}

fn build_guest_binaries() -> Result<GuestBinaries, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let target_dir = guest_target_dir();
    let started = Instant::now();
    let out = Command::new(&cargo)
        .current_dir(manifest_dir())
        .args(["build", "--bins", "--target", GUEST_TARGET, "--target-dir"])
        .arg(&target_dir)
        .args(["--config", "profile.dev.debug=0"])
        .args(["--config", "profile.dev.strip=\"symbols\""])
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove(format!(
            "CARGO_TARGET_{}_RUSTFLAGS",
            GUEST_TARGET.to_uppercase().replace('-', "_")
        ))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("QEMU lab: run {cargo:?} build: {e}"))?;
    let build_time = started.elapsed();
    if !out.status.success() {
        return Err(format!(
            "QEMU lab: static guest build failed ({}): cargo build --bins --target {GUEST_TARGET} \
             --target-dir {}\n{}",
            out.status,
            target_dir.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let dir = target_dir.join(GUEST_TARGET).join("debug");
    let bins = GuestBinaries {
        ironfence: dir.join("ironfence"),
        ironfenced: dir.join("ironfenced"),
        build_time,
    };
    for bin in [&bins.ironfence, &bins.ironfenced] {
        check_static(bin)?;
    }
    Ok(bins)
}

/// An ELF without PT_INTERP runs without a dynamic loader (static or
/// static-pie): exactly what a guest without the host's glibc needs.
fn check_static(path: &Path) -> Result<(), String> {
    let data = fs::read(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    let u16_at = |o: usize| data.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u64_at = |o: usize| {
        data.get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    };
    if data.get(0..5) != Some(b"\x7fELF\x02".as_slice()) {
        return Err(format!("{} is not a 64-bit ELF file", path.display()));
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return Err(format!("{}: truncated ELF header", path.display()));
    };
    for i in 0..usize::from(phnum) {
        let at = phoff as usize + i * usize::from(phentsize);
        let p_type = data
            .get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        if p_type == Some(3) {
            return Err(format!(
                "{} has a dynamic loader (PT_INTERP): the static guest build did not \
                 link statically",
                path.display()
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// newc cpio writer

/// Writes a `newc` (SVR4 without CRC) cpio archive, the format the kernel
/// unpacks from an initrd. Parent directories are added on demand.
struct Newc<W: Write> {
    out: W,
    ino: u32,
    written: u64,
    dirs: HashSet<String>,
}

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

impl<W: Write> Newc<W> {
    fn new(out: W) -> Newc<W> {
        Newc {
            out,
            ino: 1000,
            written: 0,
            dirs: HashSet::new(),
        }
    }

    fn raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn pad(&mut self) -> io::Result<()> {
        let n = (4 - (self.written % 4) as usize) % 4;
        self.raw(&[0u8; 3][..n])
    }

    fn header(&mut self, name: &str, mode: u32, size: u64, rdev: (u32, u32)) -> io::Result<()> {
        self.ino += 1;
        let size = u32::try_from(size).map_err(|_| {
            io::Error::other(format!("{name}: larger than 4 GiB, too big for newc"))
        })?;
        // magic, ino, mode, uid, gid, nlink, mtime, filesize, devmajor,
        // devminor, rdevmajor, rdevminor, namesize, check
        let nlink = if mode & S_IFDIR != 0 { 2 } else { 1 };
        let header = format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            self.ino,
            mode,
            0,
            0,
            nlink,
            0,
            size,
            0,
            0,
            rdev.0,
            rdev.1,
            name.len() + 1,
            0
        );
        self.raw(header.as_bytes())?;
        self.raw(name.as_bytes())?;
        self.raw(&[0])?;
        self.pad()
    }

    /// `path` is absolute in the guest ("/usr/bin/x"); stored without the "/".
    fn name(path: &str) -> &str {
        path.trim_start_matches('/')
    }

    fn parents(&mut self, path: &str) -> io::Result<()> {
        let name = Self::name(path);
        let mut at = 0;
        while let Some(i) = name[at..].find('/') {
            let dir = &name[..at + i];
            at += i + 1;
            if !self.dirs.contains(dir) {
                self.dirs.insert(dir.to_string());
                self.header(dir, S_IFDIR | 0o755, 0, (0, 0))?;
            }
        }
        Ok(())
    }

    fn dir(&mut self, path: &str) -> io::Result<()> {
        self.parents(path)?;
        let name = Self::name(path).to_string();
        if self.dirs.insert(name.clone()) {
            self.header(&name, S_IFDIR | 0o755, 0, (0, 0))?;
        }
        Ok(())
    }

    fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> io::Result<()> {
        self.parents(path)?;
        self.header(Self::name(path), S_IFREG | mode, data.len() as u64, (0, 0))?;
        self.raw(data)?;
        self.pad()
    }

    /// A regular file whose bytes come from `src` on the host (symlinks
    /// followed), streamed.
    fn copy(&mut self, path: &str, mode: u32, src: &Path) -> io::Result<()> {
        let mut f = fs::File::open(src)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", src.display())))?;
        let len = f.metadata()?.len();
        self.parents(path)?;
        self.header(Self::name(path), S_IFREG | mode, len, (0, 0))?;
        let copied = io::copy(&mut (&mut f).take(len), &mut self.out)?;
        if copied != len {
            return Err(io::Error::other(format!(
                "{} shrank while copied",
                src.display()
            )));
        }
        self.written += copied;
        self.pad()
    }

    fn chardev(&mut self, path: &str, mode: u32, major: u32, minor: u32) -> io::Result<()> {
        self.parents(path)?;
        self.header(Self::name(path), S_IFCHR | mode, 0, (major, minor))
    }

    fn symlink(&mut self, path: &str, target: &str) -> io::Result<()> {
        self.parents(path)?;
        self.header(
            Self::name(path),
            S_IFLNK | 0o777,
            target.len() as u64,
            (0, 0),
        )?;
        self.raw(target.as_bytes())?;
        self.pad()
    }

    /// The trailer, zero padding to a 512-byte boundary, and the writer.
    fn finish(mut self) -> io::Result<W> {
        self.header("TRAILER!!!", 0, 0, (0, 0))?;
        let n = ((512 - self.written % 512) % 512) as usize;
        self.raw(&vec![0u8; n])?;
        self.out.flush()?;
        Ok(self.out)
    }
}

// ---------------------------------------------------------------------------
// base initramfs

/// The cached base initramfs every guest boots.
#[derive(Debug, Clone)]
pub struct BaseInitramfs {
    /// The gzip'd cpio.
    pub path: PathBuf,
    /// Its size in bytes (compressed).
    pub size: u64,
    /// Bytes of file content inside (uncompressed).
    pub content_bytes: u64,
    /// Whether this process built it (false: found in the cache).
    pub built: bool,
    /// Time spent here: build of the guest binaries excluded.
    pub took: Duration,
    /// Modules that were asked for but are neither in the tree nor built in.
    pub missing_modules: Vec<String>,
}

/// One input file of the base image: where it goes and where it comes from.
struct Entry {
    guest: String,
    mode: u32,
    host: PathBuf,
}

/// The base initramfs, built (or found in `target/guest/lab/`) once per test
/// process. Builds the guest binaries first. Panics naming
/// `tests/lab/install.sh` when a lab piece is missing.
pub fn base_initramfs() -> &'static BaseInitramfs {
    static BASE: OnceLock<Result<BaseInitramfs, String>> = OnceLock::new();
    match BASE.get_or_init(build_base_initramfs) {
        Ok(base) => base,
        Err(e) => panic!("{e}"),
    }
}

fn init_script() -> PathBuf {
    manifest_dir().join("tests/lab/vm/init.sh")
}

fn build_base_initramfs() -> Result<BaseInitramfs, String> {
    let lab = lab_files();
    let bins = guest_binaries();
    let started = Instant::now();
    let gzip = require_gzip();
    let sbd = super::find_peer("sbd")
        .unwrap_or_else(|| missing_lab("missing test peer 'sbd' (Debian package sbd)"));

    let mut entries = vec![
        Entry {
            guest: "/bin/busybox".into(),
            mode: 0o755,
            host: lab.busybox.clone(),
        },
        Entry {
            guest: "/usr/bin/ironfence".into(),
            mode: 0o755,
            host: bins.ironfence.clone(),
        },
        Entry {
            guest: "/usr/sbin/ironfenced".into(),
            mode: 0o755,
            host: bins.ironfenced.clone(),
        },
        Entry {
            guest: "/usr/sbin/sbd".into(),
            mode: 0o755,
            host: sbd.clone(),
        },
    ];
    for lib in ldd_paths(&sbd)? {
        entries.push(Entry {
            guest: lib.to_string_lossy().into_owned(),
            mode: 0o755,
            host: lib,
        });
    }
    let modules = ModuleTree::read(&lab.modules)?;
    let mut missing_modules = Vec::new();
    let mut lists: Vec<(&str, Vec<String>)> = Vec::new();
    let mut module_files: BTreeMap<String, PathBuf> = BTreeMap::new();
    for (list, wanted) in [
        ("base", &BASE_MODULES[..]),
        ("ipmi", &IPMI_MODULES[..]),
        ("spare", &SPARE_MODULES[..]),
    ] {
        let (order, missing) = modules.closure(wanted);
        missing_modules.extend(missing);
        for name in &order {
            module_files.insert(name.clone(), modules.path_of(name).to_path_buf());
        }
        if list != "spare" {
            lists.push((list, order));
        }
    }
    for (name, path) in &module_files {
        entries.push(Entry {
            guest: format!("/lib/modules/{name}.ko"),
            mode: 0o644,
            host: path.clone(),
        });
    }
    let init =
        fs::read(init_script()).map_err(|e| format!("read {}: {e}", init_script().display()))?;

    // cache key: init.sh's bytes, every other input's place, size and mtime
    let mut h = std::collections::hash_map::DefaultHasher::new();
    BASE_LAYOUT_VERSION.hash(&mut h);
    init.hash(&mut h);
    lists.hash(&mut h);
    for e in &entries {
        e.guest.hash(&mut h);
        e.mode.hash(&mut h);
        e.host.hash(&mut h);
        let meta = fs::metadata(&e.host).map_err(|err| format!("{}: {err}", e.host.display()))?;
        meta.len().hash(&mut h);
        meta.mtime().hash(&mut h);
        meta.mtime_nsec().hash(&mut h);
    }
    let key = h.finish();
    let cache_dir = guest_target_dir().join("lab");
    fs::create_dir_all(&cache_dir).map_err(|e| format!("create {}: {e}", cache_dir.display()))?;
    let path = cache_dir.join(format!("base-{key:016x}.cpio.gz"));
    let content_bytes: u64 = entries
        .iter()
        .filter_map(|e| fs::metadata(&e.host).ok())
        .map(|m| m.len())
        .sum::<u64>()
        + init.len() as u64;

    if let Ok(meta) = fs::metadata(&path) {
        // keep it fresh for the clean-up below in other processes
        let _ = fs::File::options()
            .append(true)
            .open(&path)
            .and_then(|f| f.set_modified(SystemTime::now()));
        return Ok(BaseInitramfs {
            path,
            size: meta.len(),
            content_bytes,
            built: false,
            took: started.elapsed(),
            missing_modules,
        });
    }

    // build into a temp file next to it, then rename (atomic for concurrent
    // test processes)
    let tmp = cache_dir.join(format!(
        ".base-{key:016x}.{}.{}.tmp",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
    ));
    let out = fs::File::create(&tmp).map_err(|e| format!("create {}: {e}", tmp.display()))?;
    let mut child = Command::new(&gzip)
        .arg("-1")
        .arg("-c")
        .stdin(Stdio::piped())
        .stdout(out)
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("run {}: {e}", gzip.display()))?;
    let stdin = child.stdin.take().expect("stdin was piped");
    let written = (|| -> io::Result<()> {
        let mut cpio = Newc::new(io::BufWriter::with_capacity(1 << 20, stdin));
        for dir in [
            "/dev",
            "/proc",
            "/sys",
            "/tmp",
            "/run",
            "/root",
            "/bin",
            "/sbin",
            "/usr/bin",
            "/usr/sbin",
            "/etc/ironfence",
            "/var/lib",
            "/var/run",
            "/var/log",
            "/mnt",
        ] {
            cpio.dir(dir)?;
        }
        cpio.chardev("/dev/console", 0o600, 5, 1)?;
        cpio.chardev("/dev/null", 0o666, 1, 3)?;
        cpio.file("/init", 0o755, &init)?;
        cpio.file("/etc/passwd", 0o644, b"root:x:0:0:root:/root:/bin/sh\n")?;
        cpio.file("/etc/group", 0o644, b"root:x:0:\n")?;
        cpio.file("/etc/hostname", 0o644, b"lab\n")?;
        for (list, order) in &lists {
            let mut text = order.join("\n");
            text.push('\n');
            cpio.file(&format!("/lib/modules/{list}.list"), 0o644, text.as_bytes())?;
        }
        for e in &entries {
            cpio.copy(&e.guest, e.mode, &e.host)?;
        }
        // the loader is named /lib64/ld-linux-x86-64.so.2 in every binary;
        // on a merged-/usr host ldd may print it under /lib64 or /usr/lib64
        if !entries
            .iter()
            .any(|e| e.guest == "/lib64/ld-linux-x86-64.so.2")
        {
            if let Some(ld) = entries
                .iter()
                .find(|e| e.guest.ends_with("/ld-linux-x86-64.so.2"))
            {
                cpio.symlink("/lib64/ld-linux-x86-64.so.2", &ld.guest.clone())?;
            }
        }
        cpio.finish()?.into_inner().map_err(|e| e.into_error())?;
        Ok(())
    })();
    let gz = child
        .wait_with_output()
        .map_err(|e| format!("wait for gzip: {e}"))?;
    if let Err(e) = written.and_then(|()| {
        if gz.status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "gzip: {} {}",
                gz.status,
                String::from_utf8_lossy(&gz.stderr)
            )))
        }
    }) {
        let _ = fs::remove_file(&tmp);
        return Err(format!("QEMU lab: write the base initramfs: {e}"));
    }
    fs::rename(&tmp, &path).map_err(|e| format!("rename to {}: {e}", path.display()))?;
    remove_stale_bases(&cache_dir, &path);
    let size = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    Ok(BaseInitramfs {
        path,
        size,
        content_bytes,
        built: true,
        took: started.elapsed(),
        missing_modules,
    })
}

/// Old cached bases nobody used for an hour (another test process may still
/// be starting guests from a recent one).
fn remove_stale_bases(dir: &Path, keep: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path == keep || !(name.starts_with("base-") || name.starts_with(".base-")) {
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(3600));
        if old {
            let _ = fs::remove_file(&path);
        }
    }
}

fn require_gzip() -> PathBuf {
    super::find_peer("gzip").unwrap_or_else(|| missing_lab("missing test peer 'gzip'"))
}

/// Every absolute path `ldd BINARY` names (libraries and the loader).
fn ldd_paths(binary: &Path) -> Result<Vec<PathBuf>, String> {
    let ldd = super::find_peer("ldd").unwrap_or_else(|| missing_lab("missing 'ldd' (libc-bin)"));
    let out = Command::new(ldd)
        .arg(binary)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("run ldd {}: {e}", binary.display()))?;
    if !out.status.success() {
        return Err(format!(
            "ldd {}: {} {}",
            binary.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let mut paths = BTreeSet::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // "libx.so.1 => /lib/x86_64-linux-gnu/libx.so.1 (0x...)" or
        // "/lib64/ld-linux-x86-64.so.2 (0x...)" or "linux-vdso.so.1 (0x...)"
        if line.contains("not found") {
            return Err(format!("ldd {}: {line}", binary.display()));
        }
        for word in line.split_whitespace() {
            if word.starts_with('/') {
                paths.insert(PathBuf::from(word));
            }
        }
    }
    Ok(paths.into_iter().collect())
}

/// A kernel's module tree without modules.dep (the .deb ships none; depmod
/// runs on install): names from file names, dependencies from each module's
/// `.modinfo` `depends=`.
struct ModuleTree {
    /// normalised name (`-` -> `_`) -> file
    files: HashMap<String, PathBuf>,
    builtin: HashSet<String>,
}

fn module_name(file_name: &str) -> Option<String> {
    file_name
        .strip_suffix(".ko")
        .map(|stem| stem.replace('-', "_"))
}

impl ModuleTree {
    fn read(root: &Path) -> Result<ModuleTree, String> {
        let mut files = HashMap::new();
        let mut stack = vec![root.join("kernel")];
        while let Some(dir) = stack.pop() {
            let entries = fs::read_dir(&dir).map_err(|e| format!("read {}: {e}", dir.display()))?;
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if let Some(name) = entry.file_name().to_str().and_then(module_name) {
                    files.insert(name, path);
                }
            }
        }
        let builtin = fs::read_to_string(root.join("modules.builtin"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.rsplit('/').next().and_then(module_name))
            .collect();
        Ok(ModuleTree { files, builtin })
    }

    fn path_of(&self, name: &str) -> &Path {
        &self.files[name]
    }

    fn depends(&self, name: &str) -> Vec<String> {
        let Ok(data) = fs::read(self.path_of(name)) else {
            return Vec::new();
        };
        let key = b"\0depends=";
        let Some(at) = data.windows(key.len()).position(|w| w == key) else {
            return Vec::new();
        };
        let rest = &data[at + key.len()..];
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        String::from_utf8_lossy(&rest[..end])
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| s.replace('-', "_"))
            .collect()
    }

    /// `wanted` and everything they need, dependencies first; the names that
    /// are neither modules nor built in.
    fn closure(&self, wanted: &[&str]) -> (Vec<String>, Vec<String>) {
        fn visit(
            tree: &ModuleTree,
            name: &str,
            seen: &mut HashSet<String>,
            order: &mut Vec<String>,
            missing: &mut Vec<String>,
        ) {
            if !seen.insert(name.to_string()) || tree.builtin.contains(name) {
                return;
            }
            if !tree.files.contains_key(name) {
                missing.push(name.to_string());
                return;
            }
            for dep in tree.depends(name) {
                visit(tree, &dep, seen, order, missing);
            }
            order.push(name.to_string());
        }
        let (mut seen, mut order, mut missing) = (HashSet::new(), Vec::new(), Vec::new());
        for name in wanted {
            visit(self, name, &mut seen, &mut order, &mut missing);
        }
        (order, missing)
    }
}

// ---------------------------------------------------------------------------
// disks

/// Create (or truncate) `path` as a zero-filled raw image of `size` bytes.
/// Put it on a filesystem with O_DIRECT (ext4, xfs; not tmpfs): guests open
/// disks with `cache=none`.
pub fn raw_disk(path: &Path, size: u64) -> PathBuf {
    let f = fs::File::create(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    f.set_len(size)
        .unwrap_or_else(|e| panic!("size {} to {size}: {e}", path.display()));
    path.to_path_buf()
}

// ---------------------------------------------------------------------------
// patterns

/// What [`Guest::wait_for_line`] looks for: a `&str`/`String` is a substring,
/// a [`Regex`] a regular expression.
pub trait LinePattern {
    fn matches(&self, line: &str) -> bool;
    fn describe(&self) -> String;
}

impl LinePattern for &str {
    fn matches(&self, line: &str) -> bool {
        line.contains(*self)
    }
    fn describe(&self) -> String {
        format!("{self:?}")
    }
}

impl LinePattern for String {
    fn matches(&self, line: &str) -> bool {
        line.contains(self.as_str())
    }
    fn describe(&self) -> String {
        format!("{self:?}")
    }
}

impl LinePattern for &String {
    fn matches(&self, line: &str) -> bool {
        line.contains(self.as_str())
    }
    fn describe(&self) -> String {
        format!("{self:?}")
    }
}

impl LinePattern for Regex {
    fn matches(&self, line: &str) -> bool {
        self.is_match(line)
    }
    fn describe(&self) -> String {
        format!("/{}/", self.as_str())
    }
}

impl LinePattern for &Regex {
    fn matches(&self, line: &str) -> bool {
        self.is_match(line)
    }
    fn describe(&self) -> String {
        format!("/{}/", self.as_str())
    }
}

// ---------------------------------------------------------------------------
// guest

/// One QMP event with the host time it arrived.
#[derive(Debug, Clone)]
pub struct QmpEvent {
    pub at: Instant,
    /// "WATCHDOG", "SHUTDOWN", "RESET", "POWERDOWN", "GUEST_PANICKED",
    /// "DEVICE_DELETED", ...
    pub name: String,
    /// The event's `data` (Null when it has none).
    pub data: Value,
}

/// Why a guest ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitReason {
    /// The i6300esb expired; `action` is QEMU's (poweroff, reset, ...).
    WatchdogFired { action: String },
    /// The guest reset itself (sysrq b, reboot -f, triple fault, panic=-1).
    GuestReset,
    /// The guest powered itself off (`poweroff -f`, sysrq o, ACPI).
    GuestPoweroff,
    /// The kernel panicked (pvpanic).
    GuestPanic,
    /// Anything else: the SHUTDOWN reason (`host-signal`, ...) or why there
    /// was none.
    Other(String),
}

/// How and when a guest ended.
#[derive(Debug, Clone)]
pub struct Exit {
    /// Host time of the deciding QMP event (WATCHDOG, GUEST_PANICKED,
    /// SHUTDOWN), else when the exit was seen.
    pub at: Instant,
    pub reason: ExitReason,
    /// QEMU's exit status.
    pub status: Option<ExitStatus>,
}

/// Options of one guest; see [`Guest::builder`].
#[derive(Debug, Clone)]
pub struct GuestBuilder {
    name: String,
    disks: Vec<PathBuf>,
    scenario: Option<String>,
    files: Vec<(String, u32, Vec<u8>)>,
    memory_mb: u32,
    watchdog_action: String,
    i6300esb: bool,
    ipmi_bmc: bool,
    append: Vec<String>,
}

impl GuestBuilder {
    /// Attach a raw image as the next virtio disk (/dev/vda, /dev/vdb, ...),
    /// `cache=none,file.locking=off`: another guest may share it.
    pub fn disk(mut self, path: impl AsRef<Path>) -> Self {
        self.disks.push(path.as_ref().to_path_buf());
        self
    }

    /// The shell script run as `sh /scenario.sh` after boot. When it returns
    /// the guest powers off.
    pub fn scenario(mut self, script: impl Into<String>) -> Self {
        self.scenario = Some(script.into());
        self
    }

    /// A file (mode 0644) in the guest, e.g. `/etc/ironfence/ironfence.toml`.
    pub fn file(mut self, guest_path: &str, bytes: impl Into<Vec<u8>>) -> Self {
        self.files
            .push((guest_path.to_string(), 0o644, bytes.into()));
        self
    }

    /// An executable file (mode 0755) in the guest.
    pub fn executable(mut self, guest_path: &str, bytes: impl Into<Vec<u8>>) -> Self {
        self.files
            .push((guest_path.to_string(), 0o755, bytes.into()));
        self
    }

    /// Guest RAM in MiB (default 256; sbd wants 512).
    pub fn memory(mut self, mb: u32) -> Self {
        self.memory_mb = mb;
        self
    }

    /// What QEMU does when the i6300esb expires: `poweroff` (default),
    /// `reset`, `shutdown`, `pause`, `debug`, `none`, `inject-nmi`.
    pub fn watchdog_action(mut self, action: &str) -> Self {
        self.watchdog_action = action.to_string();
        self
    }

    /// Whether the guest has the i6300esb watchdog (default true). Without
    /// it the misc device /dev/watchdog is free for `ipmi_watchdog`, which
    /// registers only that (not /dev/watchdogN) and so cannot coexist with it.
    pub fn i6300esb(mut self, on: bool) -> Self {
        self.i6300esb = on;
        self
    }

    /// Give the guest QEMU's internal BMC (`ipmi-bmc-sim` behind an ISA KCS
    /// interface) and load ipmi_msghandler, ipmi_devintf, ipmi_si at boot.
    pub fn ipmi_bmc(mut self, on: bool) -> Self {
        self.ipmi_bmc = on;
        self
    }

    /// One more word for the kernel command line.
    pub fn append(mut self, kernel_arg: &str) -> Self {
        self.append.push(kernel_arg.to_string());
        self
    }

    /// Boot it. Builds (once per process) the guest binaries and the base
    /// initramfs. Panics when the lab is incomplete (naming
    /// `tests/lab/install.sh`) or QEMU does not start.
    pub fn start(self) -> Guest {
        Guest::start(self)
    }
}

/// What the reader threads collect.
#[derive(Default)]
struct Shared {
    lines: Vec<(Instant, String)>,
    events: Vec<QmpEvent>,
    serial_closed: bool,
    qmp_closed: bool,
}

struct Inner {
    state: Mutex<Shared>,
    changed: Condvar,
}

impl Inner {
    fn update(&self, f: impl FnOnce(&mut Shared)) {
        f(&mut lock(&self.state));
        self.changed.notify_all();
    }
}

/// The QMP connection: commands are written here, answers come back from
/// the reader thread through `answers`.
struct Qmp {
    writer: UnixStream,
    answers: mpsc::Receiver<Value>,
    next_id: u64,
}

/// One running QEMU guest. Dropping it stops QEMU (SIGTERM, then SIGKILL, by
/// PID) and removes its temp dir.
pub struct Guest {
    name: String,
    started: Instant,
    child: Mutex<Child>,
    pid: u32,
    dir: tempfile::TempDir,
    inner: Arc<Inner>,
    qmp: Mutex<Qmp>,
    disks: Vec<PathBuf>,
    command_line: String,
    exit: Mutex<Option<Exit>>,
}

impl Guest {
    /// A guest called `name` (its hostname and `lab.id=`; letters, digits,
    /// `-`, `_`).
    pub fn builder(name: &str) -> GuestBuilder {
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "guest name {name:?}: use letters, digits, '-' and '_'"
        );
        GuestBuilder {
            name: name.to_string(),
            disks: Vec::new(),
            scenario: None,
            files: Vec::new(),
            memory_mb: DEFAULT_MEMORY_MB,
            watchdog_action: DEFAULT_WATCHDOG_ACTION.to_string(),
            i6300esb: true,
            ipmi_bmc: false,
            append: Vec::new(),
        }
    }

    fn start(opts: GuestBuilder) -> Guest {
        let lab = lab_files();
        let base = base_initramfs();
        let dir = tempfile::Builder::new()
            .prefix(&format!("ironfence-qemu-{}-", opts.name))
            .tempdir()
            .expect("create the guest's temp dir");
        let qmp_path = dir.path().join("qmp.sock");
        assert!(
            qmp_path.as_os_str().len() < 100,
            "QMP socket path {} is too long for a unix socket; set TMPDIR to a shorter path",
            qmp_path.display()
        );

        // initrd = base ++ this guest's cpio
        let initrd = dir.path().join("initrd");
        {
            let mut out = fs::File::create(&initrd).expect("create the guest's initrd");
            let mut base_file = fs::File::open(&base.path)
                .unwrap_or_else(|e| panic!("open {}: {e}", base.path.display()));
            let n = io::copy(&mut base_file, &mut out).expect("copy the base initramfs");
            // the next archive must start 4-byte aligned; zeros are skipped
            let pad = (512 - n % 512) % 512;
            out.write_all(&vec![0u8; pad as usize])
                .expect("pad the initrd");
            let mut cpio = Newc::new(io::BufWriter::new(out));
            let scenario = opts
                .scenario
                .clone()
                .unwrap_or_else(|| "echo 'no scenario given'\n".to_string());
            cpio.file("/scenario.sh", 0o755, scenario.as_bytes())
                .expect("write /scenario.sh");
            for (path, mode, bytes) in &opts.files {
                assert!(
                    path.starts_with('/'),
                    "guest file path {path:?} must be absolute"
                );
                cpio.file(path, *mode, bytes)
                    .unwrap_or_else(|e| panic!("write {path}: {e}"));
            }
            cpio.finish().expect("finish the guest's cpio");
        }

        let mut append = vec![
            "console=ttyS0".to_string(),
            "quiet".to_string(),
            "panic=-1".to_string(),
            "rootfstype=ramfs".to_string(),
            format!("lab.id={}", opts.name),
        ];
        if opts.ipmi_bmc {
            append.push("lab.modules=ipmi".to_string());
        }
        append.extend(opts.append.iter().cloned());

        let mut cmd = Command::new(&lab.qemu);
        cmd.args(["-accel", "tcg", "-smp", "1", "-m"])
            .arg(opts.memory_mb.to_string())
            .args(["-nodefaults", "-display", "none", "-no-reboot"])
            .arg("-kernel")
            .arg(&lab.vmlinuz)
            .arg("-initrd")
            .arg(&initrd)
            .arg("-append")
            .arg(append.join(" "))
            .args([
                "-chardev",
                "stdio,id=serial0,signal=off",
                "-serial",
                "chardev:serial0",
            ])
            .arg("-chardev")
            .arg(format!(
                "socket,id=qmp0,path={},server=on,wait=on",
                qmp_path.display()
            ))
            .args(["-mon", "chardev=qmp0,mode=control"])
            .args(["-action"])
            .arg(format!("watchdog={}", opts.watchdog_action))
            .args(["-device", "pvpanic-pci", "-action", "panic=shutdown"]);
        if opts.i6300esb {
            cmd.args(["-device", "i6300esb"]);
        }
        for (i, disk) in opts.disks.iter().enumerate() {
            assert!(
                disk.is_file(),
                "guest disk {} is not a file",
                disk.display()
            );
            let p = disk.to_str().expect("disk paths are UTF-8");
            assert!(
                !p.contains(','),
                "disk path {p:?} has a ',' (QEMU option separator)"
            );
            cmd.arg("-drive")
                .arg(format!(
                    "file={p},format=raw,if=none,id=drive{i},cache=none,file.locking=off"
                ))
                .arg("-device")
                .arg(format!("virtio-blk-pci,drive=drive{i},id=disk{i}"));
        }
        if opts.ipmi_bmc {
            cmd.args([
                "-device",
                "ipmi-bmc-sim,id=bmc0",
                "-device",
                "isa-ipmi-kcs,bmc=bmc0",
            ]);
        }
        let command_line = format!(
            "{} {}",
            lab.qemu.display(),
            cmd.get_args()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        );
        let stderr = fs::File::create(dir.path().join("qemu.stderr")).expect("create qemu.stderr");
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);

        let started = Instant::now();
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", lab.qemu.display()));
        let pid = child.id();
        let stdout = child.stdout.take().expect("stdout was piped");
        let inner = Arc::new(Inner {
            state: Mutex::new(Shared::default()),
            changed: Condvar::new(),
        });

        // serial reader
        {
            let inner = Arc::clone(&inner);
            let echo = std::env::var_os("IRONFENCE_QEMU_ECHO").is_some();
            let name = opts.name.clone();
            thread::spawn(move || {
                let mut reader = BufReader::new(stdout);
                let mut buf = Vec::new();
                loop {
                    buf.clear();
                    match reader.read_until(b'\n', &mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            let at = Instant::now();
                            let line = String::from_utf8_lossy(&buf)
                                .trim_end_matches(['\r', '\n'])
                                .replace('\r', "");
                            if echo {
                                eprintln!(
                                    "[{name} +{:7.3}] {line}",
                                    at.duration_since(started).as_secs_f64()
                                );
                            }
                            inner.update(|s| s.lines.push((at, line)));
                        }
                    }
                }
                inner.update(|s| s.serial_closed = true);
            });
        }

        // QMP: connect (QEMU waits for us before it starts the machine)
        let stream = match Self::connect_qmp(&qmp_path, &mut child) {
            Ok(s) => s,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                let stderr = fs::read_to_string(dir.path().join("qemu.stderr")).unwrap_or_default();
                panic!(
                    "QEMU guest {}: {e}\ncommand: {command_line}\nstderr:\n{stderr}",
                    opts.name
                );
            }
        };
        let (answer_tx, answers) = mpsc::channel();
        let reader_stream = stream.try_clone().expect("clone the QMP socket");
        {
            let inner = Arc::clone(&inner);
            thread::spawn(move || {
                let mut reader = BufReader::new(reader_stream);
                let mut line = String::new();
                loop {
                    line.clear();
                    match reader.read_line(&mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                    let at = Instant::now();
                    let Ok(msg) = serde_json::from_str::<Value>(line.trim()) else {
                        continue;
                    };
                    if let Some(name) = msg.get("event").and_then(Value::as_str) {
                        let event = QmpEvent {
                            at,
                            name: name.to_string(),
                            data: msg.get("data").cloned().unwrap_or(Value::Null),
                        };
                        inner.update(|s| s.events.push(event));
                    } else if msg.get("return").is_some() || msg.get("error").is_some() {
                        let _ = answer_tx.send(msg);
                    }
                }
                inner.update(|s| s.qmp_closed = true);
            });
        }
        let guest = Guest {
            name: opts.name.clone(),
            started,
            child: Mutex::new(child),
            pid,
            dir,
            inner,
            qmp: Mutex::new(Qmp {
                writer: stream,
                answers,
                next_id: 1,
            }),
            disks: opts.disks.clone(),
            command_line,
            exit: Mutex::new(None),
        };
        if let Err(e) = guest.qmp("qmp_capabilities", Value::Null) {
            panic!("{e}");
        }
        guest
    }

    fn connect_qmp(path: &Path, child: &mut Child) -> Result<UnixStream, String> {
        let deadline = Instant::now() + QMP_CONNECT_TIMEOUT;
        loop {
            if let Ok(stream) = UnixStream::connect(path) {
                // the greeting: {"QMP": {...}}
                let mut reader = BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
                stream
                    .set_read_timeout(Some(QMP_CONNECT_TIMEOUT))
                    .map_err(|e| e.to_string())?;
                let mut greeting = String::new();
                reader
                    .read_line(&mut greeting)
                    .map_err(|e| format!("read the QMP greeting: {e}"))?;
                if !greeting.contains("\"QMP\"") {
                    return Err(format!("unexpected QMP greeting {greeting:?}"));
                }
                stream.set_read_timeout(None).map_err(|e| e.to_string())?;
                return Ok(stream);
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "QEMU exited ({status}) before opening its QMP socket"
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "no QMP socket at {} after {QMP_CONNECT_TIMEOUT:?}",
                    path.display()
                ));
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// The guest's name (hostname, `lab.id=`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// PID of its QEMU process.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// When QEMU was spawned.
    pub fn started_at(&self) -> Instant {
        self.started
    }

    /// The guest's temp dir (initrd, qmp.sock, qemu.stderr).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The QEMU command line (for messages).
    pub fn command_line(&self) -> &str {
        &self.command_line
    }

    /// Run one QMP command (`args` Null for none); its `return` value, or
    /// its error as a message with the guest's report.
    pub fn qmp(&self, command: &str, args: Value) -> Result<Value, GuestError> {
        let mut qmp = lock(&self.qmp);
        let id = qmp.next_id;
        qmp.next_id += 1;
        let mut msg = json!({ "execute": command, "id": id });
        if !args.is_null() {
            msg["arguments"] = args;
        }
        let mut text = msg.to_string();
        text.push('\n');
        if let Err(e) = qmp.writer.write_all(text.as_bytes()) {
            return Err(self.fail(&format!("QMP {command}: write: {e}")));
        }
        let deadline = Instant::now() + QMP_COMMAND_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match qmp.answers.recv_timeout(left) {
                Ok(answer) if answer.get("id").and_then(Value::as_u64) == Some(id) => {
                    if let Some(err) = answer.get("error") {
                        return Err(self.fail(&format!("QMP {command} failed: {err}")));
                    }
                    return Ok(answer.get("return").cloned().unwrap_or(Value::Null));
                }
                Ok(_) => continue, // an answer to an earlier, timed-out command
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(self.fail(&format!(
                        "QMP {command}: no answer within {QMP_COMMAND_TIMEOUT:?}"
                    )))
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(self.fail(&format!("QMP {command}: QEMU closed the socket")))
                }
            }
        }
    }

    /// Every serial line so far, with the host time it arrived.
    pub fn lines(&self) -> Vec<(Instant, String)> {
        lock(&self.inner.state).lines.clone()
    }

    /// The serial output so far as text.
    pub fn serial_text(&self) -> String {
        let state = lock(&self.inner.state);
        let mut text = String::new();
        for (_, line) in &state.lines {
            text.push_str(line);
            text.push('\n');
        }
        text
    }

    /// Every QMP event so far.
    pub fn events(&self) -> Vec<QmpEvent> {
        lock(&self.inner.state).events.clone()
    }

    /// The first serial line (since boot) that matches `pattern`, waiting up
    /// to `timeout` for it. Fails early when the guest's console closes.
    pub fn wait_for_line<P: LinePattern>(
        &self,
        pattern: P,
        timeout: Duration,
    ) -> Result<(Instant, String), GuestError> {
        self.wait_for_line_after(pattern, self.started, timeout)
    }

    /// Like [`wait_for_line`](Guest::wait_for_line), but only lines that
    /// arrived at or after `since`.
    pub fn wait_for_line_after<P: LinePattern>(
        &self,
        pattern: P,
        since: Instant,
        timeout: Duration,
    ) -> Result<(Instant, String), GuestError> {
        let deadline = Instant::now() + timeout;
        let mut state = lock(&self.inner.state);
        let mut checked = 0;
        loop {
            for (at, line) in &state.lines[checked..] {
                if *at >= since && pattern.matches(line) {
                    return Ok((*at, line.clone()));
                }
            }
            checked = state.lines.len();
            let why = if state.serial_closed {
                Some("the guest's console closed (QEMU exited)")
            } else if Instant::now() >= deadline {
                Some("timed out")
            } else {
                None
            };
            if let Some(why) = why {
                drop(state);
                return Err(self.fail(&format!(
                    "no serial line matching {} within {timeout:?}: {why}",
                    pattern.describe()
                )));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            state = self
                .inner
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// The first QMP event called `name` (e.g. "WATCHDOG", "DEVICE_DELETED"),
    /// waiting up to `timeout`.
    pub fn wait_event(&self, name: &str, timeout: Duration) -> Result<QmpEvent, GuestError> {
        self.wait_event_where(name, |_| true, timeout)
    }

    fn wait_event_where(
        &self,
        name: &str,
        filter: impl Fn(&QmpEvent) -> bool,
        timeout: Duration,
    ) -> Result<QmpEvent, GuestError> {
        let deadline = Instant::now() + timeout;
        let mut state = lock(&self.inner.state);
        loop {
            if let Some(e) = state.events.iter().find(|e| e.name == name && filter(e)) {
                return Ok(e.clone());
            }
            let why = if state.qmp_closed {
                Some("QEMU closed its QMP socket (it exited)")
            } else if Instant::now() >= deadline {
                Some("timed out")
            } else {
                None
            };
            if let Some(why) = why {
                drop(state);
                return Err(self.fail(&format!("no QMP event {name} within {timeout:?}: {why}")));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            state = self
                .inner
                .changed
                .wait_timeout(state, left.min(Duration::from_millis(200)))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Wait up to `timeout` for QEMU to exit; how and when the guest ended,
    /// from the QMP events: the first WATCHDOG (unless its action leaves the
    /// guest running: `none`, `debug`) or GUEST_PANICKED wins over the
    /// SHUTDOWN that follows it; else the SHUTDOWN reason (`guest-reset`,
    /// `guest-shutdown`, `guest-panic`, other).
    pub fn wait_exit(&self, timeout: Duration) -> Result<Exit, GuestError> {
        if let Some(exit) = lock(&self.exit).clone() {
            return Ok(exit);
        }
        let deadline = Instant::now() + timeout;
        let status = loop {
            match lock(&self.child).try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) => {}
                Err(e) => return Err(self.fail(&format!("wait for QEMU: {e}"))),
            }
            if Instant::now() >= deadline {
                return Err(self.fail(&format!("the guest did not end within {timeout:?}")));
            }
            thread::sleep(Duration::from_millis(20));
        };
        let seen = Instant::now();
        // the reader threads may still hold the last event / lines
        {
            let grace = Instant::now() + Duration::from_secs(2);
            let mut state = lock(&self.inner.state);
            while !(state.qmp_closed && state.serial_closed) && Instant::now() < grace {
                state = self
                    .inner
                    .changed
                    .wait_timeout(state, Duration::from_millis(50))
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        }
        let events = self.events();
        let mut exit = Exit {
            at: seen,
            reason: ExitReason::Other(format!("QEMU exited ({status}) without a SHUTDOWN event")),
            status: Some(status),
        };
        for e in &events {
            let decided = match e.name.as_str() {
                "WATCHDOG" => {
                    let action = e.data["action"].as_str().unwrap_or("").to_string();
                    if matches!(action.as_str(), "none" | "debug") {
                        None
                    } else {
                        Some(ExitReason::WatchdogFired { action })
                    }
                }
                "GUEST_PANICKED" => Some(ExitReason::GuestPanic),
                "RESET" => Some(ExitReason::GuestReset),
                "SHUTDOWN" => Some(match e.data["reason"].as_str().unwrap_or("") {
                    "guest-reset" => ExitReason::GuestReset,
                    "guest-shutdown" => ExitReason::GuestPoweroff,
                    "guest-panic" => ExitReason::GuestPanic,
                    other => ExitReason::Other(other.to_string()),
                }),
                _ => None,
            };
            if let Some(reason) = decided {
                exit.at = e.at;
                exit.reason = reason;
                break;
            }
        }
        *lock(&self.exit) = Some(exit.clone());
        Ok(exit)
    }

    /// Hot-unplug disk `index` (0 = /dev/vda) from the running guest:
    /// QMP `device_del` of its virtio-blk-pci device, then wait for QEMU's
    /// DEVICE_DELETED, which comes only after the guest's ACPI PCI hotplug
    /// (acpiphp, built into Debian's kernel) has ejected the slot. In the
    /// guest the disk's node disappears (`/dev/vdb: No such file or
    /// directory`) and I/O still in flight fails.
    pub fn remove_disk(&self, index: usize) -> Result<(), GuestError> {
        if index >= self.disks.len() {
            return Err(self.fail(&format!(
                "remove_disk({index}): the guest has {} disk(s)",
                self.disks.len()
            )));
        }
        let id = format!("disk{index}");
        self.qmp("device_del", json!({ "id": id }))?;
        self.wait_event_where(
            "DEVICE_DELETED",
            |e| e.data["device"].as_str() == Some(id.as_str()),
            UNPLUG_TIMEOUT,
        )?;
        Ok(())
    }

    /// Make disk `index` fail from now on while the guest still sees it (a
    /// lost SAN path): HMP `drive_del` detaches QEMU's backend from the
    /// virtio-blk device, and every later guest read or write of it gets EIO
    /// (`dd: /dev/vdc: Input/output error`, and the kernel logs `I/O error,
    /// dev vdc` on the console); `/dev/vdc` stays.
    pub fn fail_disk(&self, index: usize) -> Result<(), GuestError> {
        if index >= self.disks.len() {
            return Err(self.fail(&format!(
                "fail_disk({index}): the guest has {} disk(s)",
                self.disks.len()
            )));
        }
        let out = self.qmp(
            "human-monitor-command",
            json!({ "command-line": format!("drive_del drive{index}") }),
        )?;
        match out.as_str() {
            Some("") => Ok(()),
            _ => Err(self.fail(&format!("drive_del drive{index}: {out}"))),
        }
    }

    /// The harness's view of the guest for a failure message: the QEMU
    /// command, the last serial lines and every QMP event, with times since
    /// spawn, and QEMU's stderr.
    pub fn report(&self) -> String {
        let state = lock(&self.inner.state);
        let t = |at: Instant| at.saturating_duration_since(self.started).as_secs_f64();
        let mut out = format!("--- guest {} (QEMU pid {}) ---\n", self.name, self.pid);
        out.push_str(&format!("command: {}\n", self.command_line));
        let skip = state.lines.len().saturating_sub(REPORT_LINES);
        out.push_str(&format!(
            "serial (last {} of {} lines):\n",
            state.lines.len() - skip,
            state.lines.len()
        ));
        for (at, line) in &state.lines[skip..] {
            out.push_str(&format!("  [+{:7.3}] {line}\n", t(*at)));
        }
        out.push_str(&format!("QMP events ({}):\n", state.events.len()));
        for e in &state.events {
            out.push_str(&format!("  [+{:7.3}] {} {}\n", t(e.at), e.name, e.data));
        }
        let stderr = fs::read_to_string(self.dir.path().join("qemu.stderr")).unwrap_or_default();
        // QEMU's note that it waits for our QMP connection is no news
        let stderr: Vec<&str> = stderr
            .lines()
            .filter(|l| !l.contains("QEMU waiting for connection"))
            .collect();
        if !stderr.is_empty() {
            out.push_str(&format!("QEMU stderr:\n{}\n", stderr.join("\n")));
        }
        out
    }

    fn fail(&self, what: &str) -> GuestError {
        GuestError(format!("guest {}: {what}\n{}", self.name, self.report()))
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        let mut child = lock(&self.child);
        if matches!(child.try_wait(), Ok(None)) {
            let pid = nix::unistd::Pid::from_raw(self.pid as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + TERM_GRACE;
            while Instant::now() < deadline {
                if !matches!(child.try_wait(), Ok(None)) {
                    break;
                }
                thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = child.kill(); // SIGKILL by PID; harmless when it already exited
        let _ = child.wait();
        // the temp dir goes with self.dir
    }
}
