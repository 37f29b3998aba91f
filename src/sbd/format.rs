//! The ClusterLabs sbd on-disk format, v2.1 — pure encode/decode, written
//! down once here with its byte order (facts: ClusterLabs sbd `src/sbd.h`,
//! `src/sbd-md.c`, checked on loop devices; lab-notes 00-sbd-disk-format.md).
//!
//! ```text
//!  sector 0        header
//!  sector 1 + 2*i  slot i     (i = 0..254)
//!  sector 2 + 2*i  mailbox i
//!
//!  header  0x00 magic "SBD_SBD_" (8)   0x08 version = 2   0x09 slots = 255
//!          0x0a padding (2)            0x0c sector_size   (u32 big-endian)
//!          0x10 timeout_watchdog BE    0x14 timeout_allocate BE
//!          0x18 timeout_loop BE        0x1c timeout_msgwait BE
//!          0x20 minor_version (1 = has uuid)   0x21 uuid (16)
//!  slot    0x00 in_use (0/1)   0x01 name (64, NUL padded, at most 63)
//!  mailbox 0x00 cmd (signed)   0x01 from (64, NUL padded)
//! ```
//! The rest of every sector is zero. Names are looked up case-insensitively
//! (sbd uses strncasecmp over 63 characters).

use std::fmt;

pub const MAGIC: &[u8; 8] = b"SBD_SBD_";
pub const VERSION: u8 = 2;
pub const MINOR_VERSION: u8 = 1;
pub const SLOTS: usize = 255;
/// Longest node name.
pub const NAME_MAX: usize = 63;
/// Sectors sbd uses: header + 255 x (slot + mailbox).
pub const SECTORS_USED: u64 = 1 + 2 * SLOTS as u64;

/// A field of the format that did not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// Shorter than the structure.
    #[error("{what} is {got} bytes, needs at least {need}")]
    Short {
        what: &'static str,
        got: usize,
        need: usize,
    },
    /// Not an sbd header at all.
    #[error("no sbd header (magic is {0:02x?}, not \"SBD_SBD_\"): not an sbd disk, or not initialised (sbd create)")]
    Magic(Vec<u8>),
    /// An sbd header of another version.
    #[error("header version {0} is not supported (only 2.x)")]
    Version(u8),
    /// The slot count is not 255.
    #[error("header says {0} slots, sbd always has 255")]
    Slots(u8),
    /// The sector size field is not 512 or 4096 (or does not match the device).
    #[error("header sector size {0} is not usable (512 or 4096)")]
    SectorSize(u32),
    /// A node name is empty, too long or not text.
    #[error("node name {0:?} is not valid: 1 to 63 bytes, no NUL")]
    Name(String),
    /// A slot's in_use byte is neither 0 nor 1.
    #[error("slot in_use byte is {0}, not 0 or 1")]
    InUse(u8),
}

/// The header's timeouts, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub watchdog: u32,
    pub allocate: u32,
    pub loop_: u32,
    pub msgwait: u32,
}

impl Default for Timeouts {
    /// sbd's defaults: watchdog 5, allocate 2, loop 1, msgwait 2 x watchdog.
    fn default() -> Self {
        Timeouts {
            watchdog: 5,
            allocate: 2,
            loop_: 1,
            msgwait: 10,
        }
    }
}

/// Sector 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub sector_size: u32,
    pub timeouts: Timeouts,
    pub minor_version: u8,
    /// Present when `minor_version >= 1`.
    pub uuid: [u8; 16],
}

impl Header {
    pub fn new(sector_size: u32, timeouts: Timeouts, uuid: [u8; 16]) -> Header {
        Header {
            sector_size,
            timeouts,
            minor_version: MINOR_VERSION,
            uuid,
        }
    }

    /// One sector holding the header.
    pub fn encode(&self) -> Vec<u8> {
        let mut s = vec![0u8; self.sector_size as usize];
        s[0..8].copy_from_slice(MAGIC);
        s[8] = VERSION;
        s[9] = SLOTS as u8;
        s[0x0c..0x10].copy_from_slice(&self.sector_size.to_be_bytes());
        s[0x10..0x14].copy_from_slice(&self.timeouts.watchdog.to_be_bytes());
        s[0x14..0x18].copy_from_slice(&self.timeouts.allocate.to_be_bytes());
        s[0x18..0x1c].copy_from_slice(&self.timeouts.loop_.to_be_bytes());
        s[0x1c..0x20].copy_from_slice(&self.timeouts.msgwait.to_be_bytes());
        s[0x20] = self.minor_version;
        if self.minor_version >= 1 {
            s[0x21..0x31].copy_from_slice(&self.uuid);
        }
        s
    }

    pub fn decode(b: &[u8]) -> Result<Header, FormatError> {
        if b.len() < 0x31 {
            return Err(FormatError::Short {
                what: "header sector",
                got: b.len(),
                need: 0x31,
            });
        }
        if &b[0..8] != MAGIC {
            return Err(FormatError::Magic(b[0..8].to_vec()));
        }
        if b[8] != VERSION {
            return Err(FormatError::Version(b[8]));
        }
        if b[9] as usize != SLOTS {
            return Err(FormatError::Slots(b[9]));
        }
        let u32be = |o: usize| u32::from_be_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let sector_size = u32be(0x0c);
        if sector_size != 512 && sector_size != 4096 {
            return Err(FormatError::SectorSize(sector_size));
        }
        let minor_version = b[0x20];
        let mut uuid = [0u8; 16];
        if minor_version >= 1 {
            uuid.copy_from_slice(&b[0x21..0x31]);
        }
        Ok(Header {
            sector_size,
            timeouts: Timeouts {
                watchdog: u32be(0x10),
                allocate: u32be(0x14),
                loop_: u32be(0x18),
                msgwait: u32be(0x1c),
            },
            minor_version,
            uuid,
        })
    }

    /// The UUID as sbd prints it (`xxxxxxxx-xxxx-...`).
    pub fn uuid_string(&self) -> String {
        let h: Vec<String> = self.uuid.iter().map(|b| format!("{b:02x}")).collect();
        format!(
            "{}-{}-{}-{}-{}",
            h[0..4].concat(),
            h[4..6].concat(),
            h[6..8].concat(),
            h[8..10].concat(),
            h[10..16].concat()
        )
    }
}

/// Sector of slot `i`.
pub fn slot_sector(i: usize) -> u64 {
    1 + 2 * i as u64
}

/// Sector of mailbox `i`.
pub fn mailbox_sector(i: usize) -> u64 {
    2 + 2 * i as u64
}

fn check_name(name: &str) -> Result<(), FormatError> {
    if name.is_empty() || name.len() > NAME_MAX || name.bytes().any(|b| b == 0) {
        return Err(FormatError::Name(name.to_string()));
    }
    Ok(())
}

fn put_name(s: &mut [u8], name: &str) {
    s[1..1 + name.len()].copy_from_slice(name.as_bytes());
}

fn get_name(b: &[u8]) -> String {
    let field = &b[1..65];
    let end = field
        .iter()
        .position(|c| *c == 0)
        .unwrap_or(NAME_MAX)
        .min(NAME_MAX);
    String::from_utf8_lossy(&field[..end]).into_owned()
}

/// A slot: a node name, or free.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub in_use: bool,
    pub name: String,
}

impl Slot {
    pub fn encode(&self, sector_size: usize) -> Result<Vec<u8>, FormatError> {
        let mut s = vec![0u8; sector_size];
        if self.in_use {
            check_name(&self.name)?;
            s[0] = 1;
            put_name(&mut s, &self.name);
        }
        Ok(s)
    }

    pub fn decode(b: &[u8]) -> Result<Slot, FormatError> {
        if b.len() < 65 {
            return Err(FormatError::Short {
                what: "slot sector",
                got: b.len(),
                need: 65,
            });
        }
        match b[0] {
            0 => Ok(Slot {
                in_use: false,
                name: String::new(),
            }),
            1 => Ok(Slot {
                in_use: true,
                name: get_name(b),
            }),
            other => Err(FormatError::InUse(other)),
        }
    }

    /// Whether this slot belongs to `name` (case-insensitive, 63 chars).
    pub fn is(&self, name: &str) -> bool {
        self.in_use
            && self.name.len() == name.len().min(NAME_MAX)
            && self
                .name
                .eq_ignore_ascii_case(&name[..name.len().min(NAME_MAX)])
    }
}

/// A mailbox command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Command {
    Clear,
    Test,
    Reset,
    Off,
    Exit,
    Crashdump,
    /// A value sbd does not know (its daemon logs and clears it).
    Unknown(i8),
}

impl Command {
    pub fn to_byte(self) -> u8 {
        (match self {
            Command::Clear => 0i8,
            Command::Test => 1,
            Command::Reset => 2,
            Command::Off => 3,
            Command::Exit => 4,
            Command::Crashdump => 5,
            Command::Unknown(v) => v,
        }) as u8
    }
    pub fn from_byte(b: u8) -> Command {
        match b as i8 {
            0 => Command::Clear,
            1 => Command::Test,
            2 => Command::Reset,
            3 => Command::Off,
            4 => Command::Exit,
            5 => Command::Crashdump,
            v => Command::Unknown(v),
        }
    }
    /// sbd's spelling (`list`, `message`).
    pub fn name(self) -> String {
        match self {
            Command::Clear => "clear".into(),
            Command::Test => "test".into(),
            Command::Reset => "reset".into(),
            Command::Off => "off".into(),
            Command::Exit => "exit".into(),
            Command::Crashdump => "crashdump".into(),
            Command::Unknown(v) => format!("unknown({v})"),
        }
    }
    pub fn parse(s: &str) -> Option<Command> {
        Some(match s.to_ascii_lowercase().as_str() {
            "clear" => Command::Clear,
            "test" => Command::Test,
            "reset" => Command::Reset,
            "off" => Command::Off,
            "exit" => Command::Exit,
            "crashdump" => Command::Crashdump,
            _ => return None,
        })
    }
    /// Whether the message tells the node to kill itself.
    pub fn is_poison(self) -> bool {
        matches!(self, Command::Reset | Command::Off | Command::Crashdump)
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// A mailbox: the last command and who sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    pub cmd: Command,
    pub from: String,
}

impl Mailbox {
    pub fn encode(&self, sector_size: usize) -> Result<Vec<u8>, FormatError> {
        let mut s = vec![0u8; sector_size];
        s[0] = self.cmd.to_byte();
        if !self.from.is_empty() {
            check_name(&self.from)?;
            put_name(&mut s, &self.from);
        }
        Ok(s)
    }

    pub fn decode(b: &[u8]) -> Result<Mailbox, FormatError> {
        if b.len() < 65 {
            return Err(FormatError::Short {
                what: "mailbox sector",
                got: b.len(),
                need: 65,
            });
        }
        Ok(Mailbox {
            cmd: Command::from_byte(b[0]),
            from: get_name(b),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The header sbd 1.5.2 wrote for `sbd -1 10 -4 20 create` (lab notes 02).
    #[test]
    fn matches_sbd_hexdump() {
        let h = Header::new(
            512,
            Timeouts {
                watchdog: 10,
                allocate: 2,
                loop_: 1,
                msgwait: 20,
            },
            [
                0x86, 0xca, 0x5c, 0x86, 0xbc, 0xc2, 0x47, 0xbf, 0xb5, 0x17, 0xcb, 0xae, 0x17, 0xb0,
                0xd5, 0xd4,
            ],
        );
        let s = h.encode();
        assert_eq!(
            &s[..0x31],
            &[
                0x53, 0x42, 0x44, 0x5f, 0x53, 0x42, 0x44, 0x5f, 0x02, 0xff, 0x00, 0x00, 0x00, 0x00,
                0x02, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x01,
                0x00, 0x00, 0x00, 0x14, 0x01, 0x86, 0xca, 0x5c, 0x86, 0xbc, 0xc2, 0x47, 0xbf, 0xb5,
                0x17, 0xcb, 0xae, 0x17, 0xb0, 0xd5, 0xd4
            ][..]
        );
        assert!(s[0x31..].iter().all(|b| *b == 0));
        assert_eq!(Header::decode(&s).unwrap(), h);
        assert_eq!(h.uuid_string(), "86ca5c86-bcc2-47bf-b517-cbae17b0d5d4");
    }

    #[test]
    fn layout_and_names() {
        assert_eq!(slot_sector(0), 1);
        assert_eq!(mailbox_sector(254), 510);
        assert_eq!(SECTORS_USED, 511);
        let slot = Slot {
            in_use: true,
            name: "Controller-1".into(),
        };
        assert!(slot.is("controller-1"));
        assert!(!slot.is("controller-10"));
        assert!(Slot {
            in_use: true,
            name: "x".repeat(64)
        }
        .encode(512)
        .is_err());
        assert!(matches!(
            Header::decode(&[0u8; 512]),
            Err(FormatError::Magic(_))
        ));
    }

    proptest! {
        #[test]
        fn round_trips(name in "[a-zA-Z0-9._-]{1,63}", cmd in 0u8..8, wd in 1u32..600, big in any::<bool>()) {
            let ss = if big { 4096 } else { 512 };
            let h = Header::new(ss as u32, Timeouts { watchdog: wd, allocate: 2, loop_: 1, msgwait: 2 * wd }, [7; 16]);
            prop_assert_eq!(Header::decode(&h.encode()).unwrap(), h);
            let s = Slot { in_use: true, name: name.clone() };
            prop_assert_eq!(Slot::decode(&s.encode(ss).unwrap()).unwrap(), s);
            let m = Mailbox { cmd: Command::from_byte(cmd), from: name };
            prop_assert_eq!(Mailbox::decode(&m.encode(ss).unwrap()).unwrap(), m);
        }

        #[test]
        fn decoders_never_panic(b in proptest::collection::vec(any::<u8>(), 0..700)) {
            let _ = Header::decode(&b);
            let _ = Slot::decode(&b);
            let _ = Mailbox::decode(&b);
        }
    }
}
