//! The IPMI commands ironfence sends, as `ipmi-rs` commands: what ipmi-rs
//! has (Get Channel Authentication Capabilities, Get Channel Cipher Suites)
//! is used as is; chassis and session commands are defined here the same way.

use ipmi_rs::connection::{IpmiCommand, Message, NetFn, NotEnoughData};

pub use ipmi_rs::app::auth::{
    ChannelAuthenticationCapabilities, GetChannelAuthenticationCapabilities,
};

/// Chassis Control actions (IPMI v2.0 table 28-4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChassisAction {
    PowerOff = 0,
    PowerOn = 1,
    PowerCycle = 2,
    HardReset = 3,
    /// Pulse a diagnostic interrupt (NMI).
    Diag = 4,
    /// ACPI soft shutdown.
    SoftOff = 5,
}

impl ChassisAction {
    pub fn name(self) -> &'static str {
        match self {
            ChassisAction::PowerOff => "power off",
            ChassisAction::PowerOn => "power on",
            ChassisAction::PowerCycle => "power cycle",
            ChassisAction::HardReset => "hard reset",
            ChassisAction::Diag => "diagnostic interrupt",
            ChassisAction::SoftOff => "soft off",
        }
    }
}

/// Chassis Control (NetFn Chassis, 0x02).
#[derive(Debug, Clone, Copy)]
pub struct ChassisControl(pub ChassisAction);

impl From<ChassisControl> for Message {
    fn from(c: ChassisControl) -> Message {
        Message::new_request(NetFn::Chassis, 0x02, vec![c.0 as u8])
    }
}

impl IpmiCommand for ChassisControl {
    type Output = ();
    type Error = NotEnoughData;
    fn parse_success_response(_: &[u8]) -> Result<(), NotEnoughData> {
        Ok(())
    }
}

/// The parts of Get Chassis Status we use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChassisStatus {
    pub power_on: bool,
    pub power_overload: bool,
    pub power_fault: bool,
}

/// Get Chassis Status (NetFn Chassis, 0x01).
#[derive(Debug, Clone, Copy)]
pub struct GetChassisStatus;

impl From<GetChassisStatus> for Message {
    fn from(_: GetChassisStatus) -> Message {
        Message::new_request(NetFn::Chassis, 0x01, vec![])
    }
}

impl IpmiCommand for GetChassisStatus {
    type Output = ChassisStatus;
    type Error = NotEnoughData;
    fn parse_success_response(data: &[u8]) -> Result<ChassisStatus, NotEnoughData> {
        // Byte 1 current power state, 2 last power event, 3 misc; only 1 is mandatory here.
        let b = *data.first().ok_or(NotEnoughData)?;
        Ok(ChassisStatus {
            power_on: b & 0x01 != 0,
            power_overload: b & 0x02 != 0,
            power_fault: b & 0x08 != 0,
        })
    }
}

/// Set Session Privilege Level (NetFn App, 0x3b).
#[derive(Debug, Clone, Copy)]
pub struct SetSessionPrivilege(pub u8);

impl From<SetSessionPrivilege> for Message {
    fn from(c: SetSessionPrivilege) -> Message {
        Message::new_request(NetFn::App, 0x3b, vec![c.0])
    }
}

impl IpmiCommand for SetSessionPrivilege {
    type Output = u8;
    type Error = NotEnoughData;
    fn parse_success_response(data: &[u8]) -> Result<u8, NotEnoughData> {
        data.first().map(|b| b & 0x0f).ok_or(NotEnoughData)
    }
}

/// Close Session (NetFn App, 0x3c).
#[derive(Debug, Clone, Copy)]
pub struct CloseSession(pub u32);

impl From<CloseSession> for Message {
    fn from(c: CloseSession) -> Message {
        Message::new_request(NetFn::App, 0x3c, c.0.to_le_bytes().to_vec())
    }
}

impl IpmiCommand for CloseSession {
    type Output = ();
    type Error = NotEnoughData;
    fn parse_success_response(_: &[u8]) -> Result<(), NotEnoughData> {
        Ok(())
    }
}

/// Get Channel Cipher Suites (NetFn App, 0x54), one 16-byte chunk.
#[derive(Debug, Clone, Copy)]
pub struct GetCipherSuitesChunk(pub u8);

impl From<GetCipherSuitesChunk> for Message {
    fn from(c: GetCipherSuitesChunk) -> Message {
        // Channel 0x0e (this one), payload type IPMI, list by cipher suite.
        Message::new_request(NetFn::App, 0x54, vec![0x0e, 0x00, 0x80 | (c.0 & 0x3f)])
    }
}

impl IpmiCommand for GetCipherSuitesChunk {
    type Output = Vec<u8>;
    type Error = NotEnoughData;
    fn parse_success_response(data: &[u8]) -> Result<Vec<u8>, NotEnoughData> {
        // Byte 0: channel; the rest: cipher suite record data.
        data.get(1..).map(|d| d.to_vec()).ok_or(NotEnoughData)
    }
}

/// Cipher suite ids from concatenated record data (0xc0 | id, algorithms...).
pub fn suite_ids(records: &[u8]) -> Vec<u8> {
    let mut ids = Vec::new();
    let mut i = 0;
    while i < records.len() {
        match records[i] {
            0xc0 => {
                if let Some(id) = records.get(i + 1) {
                    ids.push(*id);
                }
                i += 2;
            }
            0xc1 => i += 5, // OEM record: id, IANA (3)
            _ => i += 1,    // algorithm bytes
        }
    }
    ids
}
