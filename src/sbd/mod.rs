//! SBD: the shared-disk poison pill, on-disk compatible with ClusterLabs sbd.
//!
//! * [`format`] — the v2.1 layout (header, slots, mailboxes), pure.
//! * [`BlockDevice`] — one sector per access; real devices (O_DIRECT,
//!   aligned, sector size from BLKSSZGET, regular files with an explicit
//!   sector size, every access under an I/O timeout) live in `io`; an
//!   in-memory one here for unit tests.
//! * [`disk`] — what sbd does with a disk: create, read the header, find and
//!   allocate slots, write a message and read it back, read a mailbox.
//!
//! A leaf: it knows nothing of fencing. `power::sbd` makes a poison-pill
//! device of it, `node` (issue 6) runs the servants.

pub mod disk;
pub mod format;
pub mod io;
pub mod servant;

use async_trait::async_trait;
use std::sync::Mutex;
use std::time::Duration;

/// What went wrong with an sbd disk.
#[derive(Debug, thiserror::Error)]
pub enum SbdError {
    /// Opening, reading or writing failed.
    #[error("sbd device {device}: {detail}")]
    Io { device: String, detail: String },
    /// An access did not finish in time (hung path, dead storage).
    #[error("sbd device {device}: {what} did not finish within {}", humantime::format_duration(*after))]
    Timeout {
        device: String,
        what: String,
        after: Duration,
    },
    /// A sector did not decode.
    #[error("sbd device {device}, sector {sector}: {source}")]
    Format {
        device: String,
        sector: u64,
        #[source]
        source: format::FormatError,
    },
    /// The header's sector size is not the device's.
    #[error("sbd device {device}: header sector size {header} does not match the device's {device_sector} (was the disk created with another sector size?)")]
    SectorMismatch {
        device: String,
        header: u32,
        device_sector: u32,
    },
    /// The device cannot hold the sbd layout.
    #[error("sbd device {device} is too small: {have} bytes, sbd needs {need}")]
    TooSmall {
        device: String,
        need: u64,
        have: u64,
    },
    /// No slot for this node.
    #[error("sbd device {device}: node `{name}` has no slot (allocate it: ironfence sbd -d {device} allocate {name})")]
    NotAllocated { device: String, name: String },
    /// Every slot is taken.
    #[error("sbd device {device}: all 255 slots are in use")]
    Full { device: String },
    /// What was written did not read back.
    #[error("sbd device {device}: the message to `{name}` did not read back as written")]
    Verify { device: String, name: String },
    /// A name that cannot be stored.
    #[error("{0}")]
    Name(format::FormatError),
}

/// A disk, one sector at a time.
#[async_trait]
pub trait BlockDevice: Send + Sync {
    /// The path (for messages).
    fn name(&self) -> &str;
    /// Logical sector size in bytes (512 or 4096).
    fn sector_size(&self) -> u32;
    /// Capacity in bytes.
    fn size(&self) -> u64;
    async fn read_sector(&self, sector: u64) -> Result<Vec<u8>, SbdError>;
    async fn write_sector(&self, sector: u64, data: &[u8]) -> Result<(), SbdError>;
}

/// An in-memory disk (unit tests, the demo). Can be told to fail.
pub struct MemDevice {
    name: String,
    sector_size: u32,
    data: Mutex<Vec<u8>>,
    /// When set, every access fails (a detached disk).
    pub broken: std::sync::atomic::AtomicBool,
}

impl MemDevice {
    pub fn new(name: &str, sector_size: u32, bytes: u64) -> MemDevice {
        MemDevice {
            name: name.to_string(),
            sector_size,
            data: Mutex::new(vec![0; bytes as usize]),
            broken: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn check(&self, sector: u64, len: usize) -> Result<std::ops::Range<usize>, SbdError> {
        if self.broken.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(SbdError::Io {
                device: self.name.clone(),
                detail: "device detached".into(),
            });
        }
        let ss = self.sector_size as usize;
        let start = sector as usize * ss;
        if len != ss || start + ss > self.size() as usize {
            return Err(SbdError::Io {
                device: self.name.clone(),
                detail: format!("access to sector {sector} out of range"),
            });
        }
        Ok(start..start + ss)
    }
}

#[async_trait]
impl BlockDevice for MemDevice {
    fn name(&self) -> &str {
        &self.name
    }
    fn sector_size(&self) -> u32 {
        self.sector_size
    }
    fn size(&self) -> u64 {
        self.data.lock().map(|d| d.len() as u64).unwrap_or(0)
    }
    async fn read_sector(&self, sector: u64) -> Result<Vec<u8>, SbdError> {
        let r = self.check(sector, self.sector_size as usize)?;
        let d = self.data.lock().map_err(|_| SbdError::Io {
            device: self.name.clone(),
            detail: "poisoned".into(),
        })?;
        Ok(d[r].to_vec())
    }
    async fn write_sector(&self, sector: u64, data: &[u8]) -> Result<(), SbdError> {
        let r = self.check(sector, data.len())?;
        let mut d = self.data.lock().map_err(|_| SbdError::Io {
            device: self.name.clone(),
            detail: "poisoned".into(),
        })?;
        d[r].copy_from_slice(data);
        Ok(())
    }
}
