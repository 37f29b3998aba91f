//! What sbd does with one disk, on any [`BlockDevice`]: create, read and
//! check the header, list/find/allocate slots, write a message (and read it
//! back: sbd ignores a failed read-back, we do not), read a mailbox.

use super::format::{self, Command, Header, Mailbox, Slot, Timeouts, SLOTS};
use super::{BlockDevice, SbdError};

/// One sbd disk.
pub struct Disk<'a> {
    pub dev: &'a dyn BlockDevice,
}

/// An in-use slot with its mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub slot: usize,
    pub name: String,
    pub mailbox: Mailbox,
}

impl<'a> Disk<'a> {
    pub fn new(dev: &'a dyn BlockDevice) -> Disk<'a> {
        Disk { dev }
    }

    fn name(&self) -> String {
        self.dev.name().to_string()
    }

    fn fmt_err(&self, sector: u64) -> impl Fn(format::FormatError) -> SbdError + '_ {
        move |source| SbdError::Format {
            device: self.name(),
            sector,
            source,
        }
    }

    /// Write a fresh header and empty every slot and mailbox (`sbd create`).
    pub async fn create(&self, timeouts: Timeouts, uuid: [u8; 16]) -> Result<Header, SbdError> {
        let ss = self.dev.sector_size();
        let need = format::SECTORS_USED * ss as u64;
        if self.dev.size() < need {
            return Err(SbdError::TooSmall {
                device: self.name(),
                need,
                have: self.dev.size(),
            });
        }
        let header = Header::new(ss, timeouts, uuid);
        let zero = vec![0u8; ss as usize];
        for sector in 1..format::SECTORS_USED {
            self.dev.write_sector(sector, &zero).await?;
        }
        // The header last: a disk whose creation was interrupted has none.
        self.dev.write_sector(0, &header.encode()).await?;
        Ok(header)
    }

    /// Read and check the header (magic, version, sector size = device's).
    pub async fn header(&self) -> Result<Header, SbdError> {
        let s = self.dev.read_sector(0).await?;
        let h = Header::decode(&s).map_err(self.fmt_err(0))?;
        if h.sector_size != self.dev.sector_size() {
            return Err(SbdError::SectorMismatch {
                device: self.name(),
                header: h.sector_size,
                device_sector: self.dev.sector_size(),
            });
        }
        Ok(h)
    }

    pub async fn slot(&self, i: usize) -> Result<Slot, SbdError> {
        let sector = format::slot_sector(i);
        let s = self.dev.read_sector(sector).await?;
        Slot::decode(&s).map_err(self.fmt_err(sector))
    }

    pub async fn mailbox(&self, i: usize) -> Result<Mailbox, SbdError> {
        let sector = format::mailbox_sector(i);
        let s = self.dev.read_sector(sector).await?;
        Mailbox::decode(&s).map_err(self.fmt_err(sector))
    }

    /// Every in-use slot with its mailbox (`sbd list`).
    pub async fn list(&self) -> Result<Vec<Entry>, SbdError> {
        let mut out = Vec::new();
        for i in 0..SLOTS {
            let slot = self.slot(i).await?;
            if slot.in_use {
                out.push(Entry {
                    slot: i,
                    name: slot.name,
                    mailbox: self.mailbox(i).await?,
                });
            }
        }
        Ok(out)
    }

    /// The slot of `name` (case-insensitive), if allocated.
    pub async fn find(&self, name: &str) -> Result<Option<usize>, SbdError> {
        for i in 0..SLOTS {
            if self.slot(i).await?.is(name) {
                return Ok(Some(i));
            }
        }
        Ok(None)
    }

    /// Give `name` a slot unless it has one (`sbd allocate`); returns it.
    pub async fn allocate(&self, name: &str) -> Result<usize, SbdError> {
        if let Some(i) = self.find(name).await? {
            return Ok(i);
        }
        let ss = self.dev.sector_size() as usize;
        for i in 0..SLOTS {
            if !self.slot(i).await?.in_use {
                let s = Slot {
                    in_use: true,
                    name: name.to_string(),
                }
                .encode(ss)
                .map_err(SbdError::Name)?;
                self.dev.write_sector(format::slot_sector(i), &s).await?;
                let zero = vec![0u8; ss];
                self.dev
                    .write_sector(format::mailbox_sector(i), &zero)
                    .await?;
                return Ok(i);
            }
        }
        Err(SbdError::Full {
            device: self.name(),
        })
    }

    /// Write `cmd` from `from` into `name`'s mailbox and read it back.
    pub async fn message(&self, name: &str, cmd: Command, from: &str) -> Result<usize, SbdError> {
        self.header().await?;
        let i = self
            .find(name)
            .await?
            .ok_or_else(|| SbdError::NotAllocated {
                device: self.name(),
                name: name.to_string(),
            })?;
        self.write_mailbox(i, cmd, from).await?;
        Ok(i)
    }

    /// Write mailbox `i` and read it back (sbd does not check; we do).
    pub async fn write_mailbox(&self, i: usize, cmd: Command, from: &str) -> Result<(), SbdError> {
        let ss = self.dev.sector_size() as usize;
        let m = Mailbox {
            cmd,
            from: from.chars().take(format::NAME_MAX).collect(),
        };
        let bytes = m.encode(ss).map_err(SbdError::Name)?;
        let sector = format::mailbox_sector(i);
        self.dev.write_sector(sector, &bytes).await?;
        let back = self.dev.read_sector(sector).await?;
        if back != bytes {
            return Err(SbdError::Verify {
                device: self.name(),
                name: format!("slot {i}"),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sbd::MemDevice;

    #[tokio::test]
    async fn create_allocate_message_list() {
        for ss in [512u32, 4096] {
            let dev = MemDevice::new("/dev/mem", ss, format::SECTORS_USED * ss as u64);
            let d = Disk::new(&dev);
            d.create(Timeouts::default(), [1; 16]).await.unwrap();
            assert_eq!(d.header().await.unwrap().sector_size, ss);
            assert_eq!(d.allocate("node-a").await.unwrap(), 0);
            assert_eq!(d.allocate("node-b").await.unwrap(), 1);
            assert_eq!(d.allocate("NODE-A").await.unwrap(), 0, "case-insensitive");
            d.message("node-b", Command::Reset, "node-a").await.unwrap();
            let l = d.list().await.unwrap();
            assert_eq!(l.len(), 2);
            assert_eq!(
                l[1].mailbox,
                Mailbox {
                    cmd: Command::Reset,
                    from: "node-a".into()
                }
            );
            assert!(matches!(
                d.message("ghost", Command::Off, "a").await,
                Err(SbdError::NotAllocated { .. })
            ));
        }
        // Too small, and a header of the other sector size.
        let small = MemDevice::new("/dev/small", 512, 1024);
        assert!(matches!(
            Disk::new(&small).create(Timeouts::default(), [0; 16]).await,
            Err(SbdError::TooSmall { .. })
        ));
        let dev = MemDevice::new("/dev/mem", 512, 4096 * 600);
        dev.write_sector(
            0,
            &Header::new(4096, Timeouts::default(), [0; 16]).encode()[..512],
        )
        .await
        .unwrap();
        assert!(matches!(
            Disk::new(&dev).header().await,
            Err(SbdError::SectorMismatch { .. })
        ));
    }
}
