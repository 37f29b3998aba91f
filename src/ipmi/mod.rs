//! IPMI over LAN (RMCP+, IPMI v2.0): our own async session layer.
//!
//! * [`packet`] — wire formats (RMCP, v1.5/v2.0 session wrappers, IPMI
//!   messages, Open Session, RAKP 1-4), pure, fuzzed.
//! * [`crypto`] — cipher suites 0-3 and 15-17: RAKP auth codes, SIK/K1/K2,
//!   HMAC-SHA1-96 / HMAC-SHA256-128 integrity, AES-CBC-128.
//! * [`client`] — a session: Get Channel Authentication Capabilities, Open
//!   Session, RAKP 1-4, Set Session Privilege Level, commands with
//!   retransmission inside a deadline, and Close Session always (also when
//!   dropped mid-flight).
//! * [`commands`] — chassis status/control and session commands as
//!   `ipmi-rs` [`IpmiCommand`](ipmi_rs::connection::IpmiCommand)s.
//!
//! A leaf: it knows nothing of fencing. `power::ipmi` adapts it.

pub mod client;
pub mod commands;
pub mod crypto;
pub mod packet;

use std::time::Duration;

/// Session privilege level.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Privilege {
    User = 2,
    Operator = 3,
    Administrator = 4,
}

impl Privilege {
    pub fn parse(s: &str) -> Option<Privilege> {
        match s.to_ascii_lowercase().as_str() {
            "user" => Some(Privilege::User),
            "operator" => Some(Privilege::Operator),
            "administrator" | "admin" => Some(Privilege::Administrator),
            _ => None,
        }
    }
}

/// Which cipher suite to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CipherChoice {
    /// 17 if the BMC takes it, else 3.
    Auto,
    /// Exactly this suite.
    Suite(u8),
}

/// What went wrong talking IPMI to a BMC.
#[derive(Debug, thiserror::Error)]
pub enum IpmiError {
    /// The socket could not be set up.
    #[error("cannot reach BMC {bmc}: {detail}")]
    Connect { bmc: String, detail: String },
    /// No valid answer within the deadline.
    #[error("BMC {bmc} did not answer {stage} within {} ({sent} datagram(s) sent): check the address, port and that IPMI over LAN is enabled", humantime::format_duration(std::time::Duration::from_millis(after.as_millis() as u64)))]
    Timeout {
        bmc: String,
        stage: String,
        after: Duration,
        sent: u32,
    },
    /// Nothing answered the session's first message within login_timeout.
    #[error("BMC {bmc} answered nothing within {} ({sent} datagram(s) sent): it is down, unreachable or not serving IPMI over LAN there (raise [device.ipmi] login_timeout if it is only slow)", humantime::format_duration(std::time::Duration::from_millis(after.as_millis() as u64)))]
    Unreachable {
        bmc: String,
        after: Duration,
        sent: u32,
    },
    /// The BMC refused our credentials or privilege.
    #[error("BMC {bmc} refused the login: {detail}")]
    Auth { bmc: String, detail: String },
    /// No cipher suite both sides accept, or an insecure one refused.
    #[error("BMC {bmc}: {detail}")]
    Cipher { bmc: String, detail: String },
    /// The BMC answered a command with a non-zero completion code.
    #[error("BMC {bmc} rejected {command}: completion code {code:#04x} ({text})")]
    Completion {
        bmc: String,
        command: String,
        code: u8,
        text: String,
    },
    /// The BMC's answer made no sense.
    #[error("BMC {bmc}: protocol error: {detail}")]
    Protocol { bmc: String, detail: String },
}

impl IpmiError {
    pub fn is_timeout(&self) -> bool {
        matches!(self, IpmiError::Timeout { .. })
    }
}

/// Text of an IPMI completion code.
pub fn completion_text(cc: u8) -> &'static str {
    match cc {
        0x00 => "ok",
        0xc0 => "node busy",
        0xc1 => "invalid command",
        0xc2 => "command invalid for given LUN",
        0xc3 => "timeout while processing command",
        0xc4 => "out of space",
        0xc5 => "reservation canceled or invalid",
        0xc6 => "request data truncated",
        0xc7 => "request data length invalid",
        0xc8 => "request data field length limit exceeded",
        0xc9 => "parameter out of range",
        0xca => "cannot return number of requested data bytes",
        0xcb => "requested sensor, data, or record not present",
        0xcc => "invalid data field in request",
        0xcd => "command illegal for specified sensor or record type",
        0xce => "command response could not be provided",
        0xcf => "cannot execute duplicated request",
        0xd0 => "SDR repository in update mode",
        0xd1 => "device in firmware update mode",
        0xd2 => "BMC initialization in progress",
        0xd3 => "destination unavailable",
        0xd4 => "insufficient privilege level",
        0xd5 => "command not supported in present state",
        0xd6 => "command sub-function disabled or unavailable",
        0xff => "unspecified error",
        _ => "unknown completion code",
    }
}
