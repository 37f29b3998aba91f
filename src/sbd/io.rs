//! Real sbd disks: block devices (and regular files) one sector at a time,
//! behind [`BlockDevice`].
//!
//! Who calls it: the `ironfence sbd` verbs, the poison-pill device and the
//! servants; they get an `Arc<dyn BlockDevice>` from [`open`] and never see a
//! file descriptor.
//!
//! * Block devices are opened `O_RDWR|O_DIRECT|O_SYNC`, like sbd. The sector
//!   size is the kernel's logical block size (`BLKSSZGET`), the capacity
//!   `BLKGETSIZE64`; a sector size given by the caller must match.
//! * Regular files (images, tests) have no sector size of their own: the
//!   caller must name one (512 or 4096). They get `O_DIRECT|O_SYNC` when the
//!   filesystem takes it, else plain `O_SYNC` (logged at debug level).
//! * One sector per access, `pread`/`pwrite` (`FileExt::read_at`/`write_at`:
//!   one system call each) into a buffer aligned for `O_DIRECT`, carved out of
//!   an over-allocated `Vec` (no unsafe). A short read or write is an error.
//! * Every access, and the open itself, runs on tokio's blocking pool under
//!   `tokio::time::timeout(io_timeout)`. A hung disk returns
//!   [`SbdError::Timeout`] to the caller; the blocked thread is abandoned.
//!   While an abandoned access of a device is still stuck in the kernel, new
//!   accesses to that device fail at once instead of piling up threads.
//!
//! What it must never do: block its caller past the I/O timeout, panic, or
//! touch any device but the one it was given. It is the only place in `sbd`
//! with `unsafe`: two ioctls in the inner `ioctl` module, the only item
//! that allows it, each with its `// SAFETY:` note.

use super::{BlockDevice, SbdError};
use async_trait::async_trait;
use nix::libc;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The sector sizes the sbd format knows.
pub const SECTOR_SIZES: [u32; 2] = [512, 4096];

/// Buffer alignment for `O_DIRECT`: a page, which satisfies every logical
/// block size sbd can use.
const ALIGN: usize = 4096;

/// Accesses (of any device) that timed out and whose thread is still
/// blocked in the kernel. A process that wants to exit while this is not zero
/// must not wait for its blocking pool (tokio's runtime drop would).
static ABANDONED: AtomicUsize = AtomicUsize::new(0);

/// How many timed-out accesses are still blocked in the kernel, process-wide.
pub fn abandoned_accesses() -> usize {
    ABANDONED.load(Ordering::SeqCst)
}

/// What kind of file backs a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Block,
    File,
}

/// An sbd disk on a block device or a regular file.
pub struct RealDevice {
    name: String,
    file: Arc<File>,
    kind: Kind,
    sector_size: u32,
    size: u64,
    direct: bool,
    io_timeout: Duration,
    /// Timed-out accesses of this device still blocked in the kernel.
    stuck: Arc<AtomicUsize>,
}

impl RealDevice {
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Whether accesses bypass the page cache (`O_DIRECT`).
    pub fn is_direct(&self) -> bool {
        self.direct
    }

    fn offset(&self, sector: u64, len: usize) -> Result<u64, SbdError> {
        let ss = self.sector_size as u64;
        if len as u64 != ss {
            return Err(io_error(
                &self.name,
                format!("write of sector {sector}: {len} bytes given, the sector size is {ss}"),
            ));
        }
        match sector.checked_mul(ss) {
            Some(off) if off.checked_add(ss).is_some_and(|end| end <= self.size) => Ok(off),
            _ => Err(io_error(
                &self.name,
                format!(
                    "sector {sector} lies beyond the end of the device ({} bytes)",
                    self.size
                ),
            )),
        }
    }

    async fn blocking<T, F>(&self, what: String, f: F) -> Result<T, SbdError>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T, SbdError> + Send + 'static,
    {
        run_blocking(&self.name, what, self.io_timeout, &self.stuck, f).await
    }
}

#[async_trait]
impl BlockDevice for RealDevice {
    fn name(&self) -> &str {
        &self.name
    }

    fn sector_size(&self) -> u32 {
        self.sector_size
    }

    fn size(&self) -> u64 {
        self.size
    }

    async fn read_sector(&self, sector: u64) -> Result<Vec<u8>, SbdError> {
        let off = self.offset(sector, self.sector_size as usize)?;
        let (file, name, ss) = (self.file.clone(), self.name.clone(), self.sector_size);
        self.blocking(format!("read of sector {sector}"), move || {
            read_at(&file, ss as usize, off)
                .map_err(|e| io_error(&name, format!("read of sector {sector} (byte {off}): {e}")))
        })
        .await
    }

    async fn write_sector(&self, sector: u64, data: &[u8]) -> Result<(), SbdError> {
        let off = self.offset(sector, data.len())?;
        let (file, name) = (self.file.clone(), self.name.clone());
        let mut buf = AlignedBuf::new(data.len());
        buf.as_mut().copy_from_slice(data);
        self.blocking(format!("write of sector {sector}"), move || {
            write_at(&file, &buf, off)
                .map_err(|e| io_error(&name, format!("write of sector {sector} (byte {off}): {e}")))
        })
        .await
    }
}

/// Open `path` as an sbd disk. `sector_size` must be given for a regular
/// file, and must match the device for a block device (or be `None`).
pub async fn open(
    path: &Path,
    sector_size: Option<u32>,
    io_timeout: Duration,
) -> Result<Arc<dyn BlockDevice>, SbdError> {
    Ok(Arc::new(open_real(path, sector_size, io_timeout).await?))
}

/// [`open`], keeping the concrete type (kind, `O_DIRECT` or not).
pub async fn open_real(
    path: &Path,
    sector_size: Option<u32>,
    io_timeout: Duration,
) -> Result<RealDevice, SbdError> {
    let name = path.display().to_string();
    if let Some(ss) = sector_size {
        if !SECTOR_SIZES.contains(&ss) {
            return Err(io_error(
                &name,
                format!("sector size {ss} is not usable: sbd disks have 512- or 4096-byte sectors"),
            ));
        }
    }
    let stuck = Arc::new(AtomicUsize::new(0));
    let (p, n) = (path.to_path_buf(), name.clone());
    let opened = run_blocking(&name, "open".into(), io_timeout, &stuck, move || {
        open_blocking(&p, &n, sector_size)
    })
    .await?;
    Ok(RealDevice {
        name,
        file: Arc::new(opened.file),
        kind: opened.kind,
        sector_size: opened.sector_size,
        size: opened.size,
        direct: opened.direct,
        io_timeout,
        stuck,
    })
}

struct Opened {
    file: File,
    kind: Kind,
    sector_size: u32,
    size: u64,
    direct: bool,
}

fn io_error(device: &str, detail: String) -> SbdError {
    SbdError::Io {
        device: device.to_string(),
        detail,
    }
}

fn open_with(path: &Path, direct: bool) -> io::Result<File> {
    let flags = if direct {
        libc::O_DIRECT | libc::O_SYNC
    } else {
        libc::O_SYNC
    };
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(flags)
        .open(path)
}

fn open_blocking(path: &Path, name: &str, sector_size: Option<u32>) -> Result<Opened, SbdError> {
    let err = |detail: String| io_error(name, detail);
    let meta = std::fs::metadata(path).map_err(|e| err(format!("cannot open: {e}")))?;
    let ft = meta.file_type();
    if ft.is_block_device() {
        let file = open_with(path, true)
            .map_err(|e| err(format!("cannot open read-write with O_DIRECT|O_SYNC: {e}")))?;
        let ss = ioctl::logical_sector_size(&file)
            .map_err(|e| err(format!("BLKSSZGET (logical sector size) failed: {e}")))?;
        if !SECTOR_SIZES.contains(&ss) {
            return Err(err(format!(
                "logical sector size (BLKSSZGET) is {ss}: sbd disks need 512 or 4096"
            )));
        }
        if let Some(want) = sector_size {
            if want != ss {
                return Err(err(format!(
                    "sector size {want} was given, but the device's logical sector size (BLKSSZGET) \
                     is {ss}: leave the sector size out for a block device, or give {ss}"
                )));
            }
        }
        let size = ioctl::size_bytes(&file)
            .map_err(|e| err(format!("BLKGETSIZE64 (capacity) failed: {e}")))?;
        return Ok(Opened {
            file,
            kind: Kind::Block,
            sector_size: ss,
            size,
            direct: true,
        });
    }
    if !ft.is_file() {
        return Err(err(
            "is neither a block device nor a regular file: give a shared disk (or an image file)"
                .into(),
        ));
    }
    let ss = sector_size.ok_or_else(|| {
        err(
            "is a regular file, which has no sector size of its own: give the one the disk \
             image uses with --sector-size 512 or --sector-size 4096"
                .into(),
        )
    })?;
    open_file(path, name, ss, meta.len(), true)
}

/// A regular file: `O_DIRECT` when `try_direct` and the filesystem takes it
/// (checked by reading sector 0), else `O_SYNC` alone.
fn open_file(
    path: &Path,
    name: &str,
    ss: u32,
    size: u64,
    try_direct: bool,
) -> Result<Opened, SbdError> {
    let err = |detail: String| io_error(name, detail);
    let buffered = |why: String| {
        tracing::debug!(device = name, "no O_DIRECT ({why}): using O_SYNC alone");
        open_with(path, false).map_err(|e| err(format!("cannot open read-write with O_SYNC: {e}")))
    };
    let (file, direct) = if !try_direct {
        (buffered("not asked for".into())?, false)
    } else {
        match open_with(path, true) {
            Ok(f) if size < ss as u64 => (f, true),
            // Some filesystems accept the flag and refuse the I/O: try one.
            Ok(f) => match read_at(&f, ss as usize, 0) {
                Ok(_) => (f, true),
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => (
                    buffered(format!("the filesystem refused a direct read: {e}"))?,
                    false,
                ),
                Err(e) => return Err(err(format!("read of sector 0: {e}"))),
            },
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => (
                buffered(format!("the filesystem refused the flag: {e}"))?,
                false,
            ),
            Err(e) => {
                return Err(err(format!(
                    "cannot open read-write with O_DIRECT|O_SYNC: {e}"
                )))
            }
        }
    };
    Ok(Opened {
        file,
        kind: Kind::File,
        sector_size: ss,
        size,
        direct,
    })
}

/// A `len`-byte buffer whose start is aligned to [`ALIGN`], inside an
/// over-allocated `Vec`.
struct AlignedBuf {
    v: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    fn new(len: usize) -> AlignedBuf {
        let v = vec![0u8; len + ALIGN];
        let addr = v.as_ptr() as usize;
        let start = (ALIGN - addr % ALIGN) % ALIGN;
        AlignedBuf { v, start, len }
    }

    fn as_ref(&self) -> &[u8] {
        &self.v[self.start..self.start + self.len]
    }

    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.v[self.start..self.start + self.len]
    }
}

/// One `pread` of `len` bytes at `off`; anything shorter is an error.
fn read_at(file: &File, len: usize, off: u64) -> io::Result<Vec<u8>> {
    let mut buf = AlignedBuf::new(len);
    let n = loop {
        match file.read_at(buf.as_mut(), off) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => break r?,
        }
    };
    if n != len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("short read: {n} of {len} bytes"),
        ));
    }
    Ok(buf.as_ref().to_vec())
}

/// One `pwrite` of the whole buffer at `off`; anything shorter is an error.
fn write_at(file: &File, buf: &AlignedBuf, off: u64) -> io::Result<()> {
    let n = loop {
        match file.write_at(buf.as_ref(), off) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            r => break r?,
        }
    };
    if n != buf.len {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            format!("short write: {n} of {} bytes", buf.len),
        ));
    }
    Ok(())
}

const RUNNING: u8 = 0;
const DONE: u8 = 1;
const ABANDONED_STATE: u8 = 2;

/// Run `f` on the blocking pool; give up after `after` with
/// [`SbdError::Timeout`], leaving the thread behind (counted in `stuck` and
/// [`ABANDONED`] until it returns). Refuses to start while an earlier access
/// of the same device is still stuck.
async fn run_blocking<T, F>(
    device: &str,
    what: String,
    after: Duration,
    stuck: &Arc<AtomicUsize>,
    f: F,
) -> Result<T, SbdError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, SbdError> + Send + 'static,
{
    let blocked = stuck.load(Ordering::SeqCst);
    if blocked > 0 {
        return Err(io_error(
            device,
            format!(
                "{what} not started: {blocked} earlier access(es) have been blocked in the \
                 kernel for longer than the I/O timeout (hung path or dead storage?)"
            ),
        ));
    }
    let state = Arc::new(AtomicU8::new(RUNNING));
    let (st, stk) = (state.clone(), stuck.clone());
    let handle = tokio::task::spawn_blocking(move || {
        let r = f();
        if st.swap(DONE, Ordering::SeqCst) == ABANDONED_STATE {
            stk.fetch_sub(1, Ordering::SeqCst);
            ABANDONED.fetch_sub(1, Ordering::SeqCst);
        }
        r
    });
    match tokio::time::timeout(after, handle).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => Err(io_error(
            device,
            format!("{what}: the I/O thread failed: {e}"),
        )),
        Err(_) => {
            if state
                .compare_exchange(RUNNING, ABANDONED_STATE, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                stuck.fetch_add(1, Ordering::SeqCst);
                ABANDONED.fetch_add(1, Ordering::SeqCst);
                tracing::warn!(device, what = %what, "I/O did not finish in time; its thread is abandoned");
            }
            Err(SbdError::Timeout {
                device: device.to_string(),
                what,
                after,
            })
        }
    }
}

/// The two block-device ioctls. Nothing else in `sbd` is unsafe.
#[allow(unsafe_code)]
mod ioctl {
    use super::libc;
    use std::fs::File;
    use std::io;
    use std::os::fd::AsRawFd;

    /// `_IOR(0x12, 114, size_t)` from `<linux/fs.h>` (libc has no constant
    /// for it). The direction bits and the size field's width differ on a
    /// few architectures.
    #[cfg(any(
        target_arch = "powerpc",
        target_arch = "powerpc64",
        target_arch = "mips",
        target_arch = "mips64",
        target_arch = "sparc",
        target_arch = "sparc64"
    ))]
    const BLKGETSIZE64: libc::Ioctl =
        ((2 << 29) | ((std::mem::size_of::<usize>() as u32) << 16) | (0x12 << 8) | 114)
            as libc::Ioctl;
    #[cfg(not(any(
        target_arch = "powerpc",
        target_arch = "powerpc64",
        target_arch = "mips",
        target_arch = "mips64",
        target_arch = "sparc",
        target_arch = "sparc64"
    )))]
    const BLKGETSIZE64: libc::Ioctl =
        ((2u32 << 30) | ((std::mem::size_of::<usize>() as u32) << 16) | (0x12 << 8) | 114)
            as libc::Ioctl;

    /// `BLKSSZGET`: the logical sector size.
    pub(super) fn logical_sector_size(file: &File) -> io::Result<u32> {
        let mut ss: libc::c_int = 0;
        // SAFETY: BLKSSZGET writes one `int` through the pointer, which points
        // at `ss`, a live, writable c_int on this stack frame; the fd is open
        // for the whole call because `file` is borrowed.
        let r = unsafe {
            libc::ioctl(
                file.as_raw_fd(),
                libc::BLKSSZGET,
                &mut ss as *mut libc::c_int,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        u32::try_from(ss).map_err(|_| io::Error::other(format!("negative sector size {ss}")))
    }

    /// `BLKGETSIZE64`: the capacity in bytes.
    pub(super) fn size_bytes(file: &File) -> io::Result<u64> {
        let mut size: u64 = 0;
        // SAFETY: BLKGETSIZE64 writes one `u64` through the pointer, which
        // points at `size`, a live, writable u64 on this stack frame; the fd
        // stays open for the call because `file` is borrowed.
        let r = unsafe { libc::ioctl(file.as_raw_fd(), BLKGETSIZE64, &mut size as *mut u64) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(size)
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn blkgetsize64_matches_linux_fs_h() {
            #[cfg(all(target_arch = "x86_64", target_env = "gnu"))]
            assert_eq!(super::BLKGETSIZE64, 0x8008_1272);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::sbd::disk::Disk;
    use crate::sbd::format::{self, Command, Timeouts};
    use std::time::Instant;

    const T: Duration = Duration::from_secs(3);

    fn image(dir: &tempfile::TempDir, ss: u32) -> std::path::PathBuf {
        let p = dir.path().join(format!("sbd-{ss}.img"));
        let f = File::create(&p).unwrap();
        f.set_len(format::SECTORS_USED * ss as u64).unwrap();
        p
    }

    #[tokio::test]
    async fn file_round_trip_both_sector_sizes() {
        let dir = tempfile::tempdir().unwrap();
        for ss in SECTOR_SIZES {
            let p = image(&dir, ss);
            let dev = open_real(&p, Some(ss), T).await.unwrap();
            assert_eq!(dev.kind(), Kind::File);
            assert_eq!(dev.sector_size(), ss);
            assert_eq!(dev.size(), format::SECTORS_USED * ss as u64);
            let mut s = vec![0u8; ss as usize];
            s[0] = 0xab;
            s[ss as usize - 1] = 0xcd;
            dev.write_sector(7, &s).await.unwrap();
            assert_eq!(dev.read_sector(7).await.unwrap(), s);
            let raw = std::fs::read(&p).unwrap();
            assert_eq!(&raw[7 * ss as usize..8 * ss as usize], &s[..]);
            // The sbd layer on top of it.
            let d = Disk::new(&dev);
            d.create(Timeouts::default(), [3; 16]).await.unwrap();
            d.allocate("node-a").await.unwrap();
            d.message("node-a", Command::Off, "node-b").await.unwrap();
            let l = d.list().await.unwrap();
            assert_eq!(l[0].mailbox.cmd, Command::Off);
            assert_eq!(l[0].mailbox.from, "node-b");
        }
    }

    #[tokio::test]
    async fn buffered_fallback_reads_and_writes() {
        let dir = tempfile::tempdir().unwrap();
        let p = image(&dir, 512);
        let o = open_file(&p, "img", 512, format::SECTORS_USED * 512, false).unwrap();
        assert!(!o.direct);
        let dev = RealDevice {
            name: "img".into(),
            file: Arc::new(o.file),
            kind: o.kind,
            sector_size: 512,
            size: o.size,
            direct: o.direct,
            io_timeout: T,
            stuck: Arc::new(AtomicUsize::new(0)),
        };
        let s = vec![0x5a; 512];
        dev.write_sector(3, &s).await.unwrap();
        assert_eq!(dev.read_sector(3).await.unwrap(), s);
    }

    #[tokio::test]
    async fn refusals_are_clear() {
        let dir = tempfile::tempdir().unwrap();
        let p = image(&dir, 512);
        let e = open_real(&p, None, T).await.err().unwrap().to_string();
        assert!(e.contains("--sector-size 512"), "{e}");
        assert!(e.contains(&p.display().to_string()), "{e}");
        let e = open_real(&p, Some(1024), T)
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("1024") && e.contains("512- or 4096"), "{e}");
        let e = open_real(Path::new("/dev/null"), Some(512), T)
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("neither a block device nor a regular file"),
            "{e}"
        );
        let e = open_real(&dir.path().join("nope"), Some(512), T)
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("cannot open") && e.contains("nope"), "{e}");

        let dev = open_real(&p, Some(512), T).await.unwrap();
        let e = dev.read_sector(format::SECTORS_USED).await.unwrap_err();
        assert!(e.to_string().contains("beyond the end"), "{e}");
        let e = dev.write_sector(1, &[0u8; 100]).await.unwrap_err();
        assert!(e.to_string().contains("100 bytes given"), "{e}");

        // The file shrinks under us: a short read is an error, not zeros.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(512 * 10 + 100)
            .unwrap();
        let e = dev.read_sector(10).await.unwrap_err().to_string();
        assert!(e.contains("short read") || e.contains("sector 10"), "{e}");
        assert!(dev.read_sector(20).await.is_err());
    }

    #[tokio::test]
    async fn too_small_file_is_refused_by_create() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("small.img");
        File::create(&p).unwrap().set_len(128 * 1024).unwrap();
        let dev = open_real(&p, Some(512), T).await.unwrap();
        let e = Disk::new(&dev)
            .create(Timeouts::default(), [0; 16])
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                SbdError::TooSmall {
                    have: 131072,
                    need: 261632,
                    ..
                }
            ),
            "{e}"
        );
        assert!(std::fs::read(&p).unwrap().iter().all(|b| *b == 0));
    }

    #[tokio::test]
    async fn a_hung_access_times_out_and_blocks_no_further_threads() {
        let stuck = Arc::new(AtomicUsize::new(0));
        let t0 = Instant::now();
        let e = run_blocking(
            "/dev/hung",
            "read of sector 0".into(),
            Duration::from_millis(50),
            &stuck,
            || {
                std::thread::sleep(Duration::from_millis(400));
                Ok(())
            },
        )
        .await
        .unwrap_err();
        assert!(
            t0.elapsed() < Duration::from_millis(300),
            "{:?}",
            t0.elapsed()
        );
        assert!(matches!(e, SbdError::Timeout { .. }), "{e}");
        assert!(e.to_string().contains("/dev/hung") && e.to_string().contains("read of sector 0"));
        assert_eq!(stuck.load(Ordering::SeqCst), 1);
        assert!(abandoned_accesses() >= 1);
        // While it is stuck, nothing new is queued behind it.
        let e = run_blocking("/dev/hung", "read of sector 1".into(), T, &stuck, || Ok(()))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("blocked in the kernel"), "{e}");
        // Once the kernel lets go, the device is usable again.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(stuck.load(Ordering::SeqCst), 0);
        run_blocking("/dev/hung", "read".into(), T, &stuck, || Ok(()))
            .await
            .unwrap();
    }

    #[test]
    fn aligned_buffers() {
        for len in [512, 4096] {
            for _ in 0..8 {
                let mut b = AlignedBuf::new(len);
                assert_eq!(b.as_mut().as_ptr() as usize % ALIGN, 0);
                assert_eq!(b.as_ref().len(), len);
            }
        }
    }
}
