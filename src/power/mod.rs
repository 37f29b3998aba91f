//! `PowerDevice`: the one interface the fencer uses to switch machines off
//! and on, with one adapter per device kind, and [`verify`], which turns
//! "the command was accepted" into "the new state was read back".
//!
//! Adapters report typed [`PowerError`]s (connect, auth, protocol, refused,
//! timeout, not observed); deciding what to do about them — retry, next
//! level, give up — is the fencer's job, not theirs.

pub mod agent;
pub mod ipmi;
pub mod redfish;
pub mod sbd;
pub mod sim;
pub mod verify;

use crate::config::{DeviceConfig, DeviceKind};
use crate::secret::SecretError;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// A power state as read from a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PowerState {
    On,
    Off,
    Unknown,
}

impl fmt::Display for PowerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PowerState::On => "on",
            PowerState::Off => "off",
            PowerState::Unknown => "unknown",
        })
    }
}

/// What went wrong talking to a power device.
#[derive(Debug, thiserror::Error)]
pub enum PowerError {
    /// The device could not be reached.
    #[error("cannot reach {device}: {detail}")]
    Connect { device: String, detail: String },
    /// The device refused our credentials.
    #[error("{device} refused the login ({detail}): check username, password and privilege level")]
    Auth { device: String, detail: String },
    /// The device answered something we cannot use.
    #[error("{device} answered unexpectedly: {detail}")]
    Protocol { device: String, detail: String },
    /// The device understood and refused the command.
    #[error("{device} refused the command: {detail}")]
    Refused { device: String, detail: String },
    /// No answer in time.
    #[error("{device} did not finish {what} within {}", humantime::format_duration(Duration::from_millis(after.as_millis() as u64)))]
    Timeout {
        device: String,
        what: String,
        after: Duration,
    },
    /// The command was accepted but the new state was never read back.
    #[error("{device} accepted power {want} for {plug} but still reported {last} after {}: not fenced", humantime::format_duration(Duration::from_millis(after.as_millis() as u64)))]
    NotObserved {
        device: String,
        plug: String,
        want: PowerState,
        last: PowerState,
        after: Duration,
    },
    /// The device cannot do this.
    #[error("{device} does not support {what}")]
    Unsupported { device: String, what: String },
    /// The password could not be obtained.
    #[error("{device}: {source}")]
    Credentials {
        device: String,
        #[source]
        source: SecretError,
    },
    /// An external fence agent failed.
    #[error("{device}: {detail}")]
    Agent { device: String, detail: String },
}

impl PowerError {
    /// Whether this error is a timeout (for exit code 124).
    pub fn is_timeout(&self) -> bool {
        matches!(self, PowerError::Timeout { .. })
    }
}

/// A device that can switch machines ("plugs") off and on.
///
/// `off`/`on` only issue the command; [`verify::set_and_verify`] reads the
/// state back. Implementations must not retry on their own beyond one
/// protocol exchange: the fencer owns retries and deadlines.
#[async_trait]
pub trait PowerDevice: Send + Sync {
    fn name(&self) -> &str;
    fn kind(&self) -> &'static str;
    async fn status(&self, plug: &str) -> Result<PowerState, PowerError>;
    async fn off(&self, plug: &str) -> Result<(), PowerError>;
    async fn on(&self, plug: &str) -> Result<(), PowerError>;
    /// Plugs the device knows (for `host_check = dynamic-list`).
    async fn list(&self) -> Result<Vec<String>, PowerError>;
    /// Whether the device is reachable and our credentials work.
    async fn monitor(&self) -> Result<(), PowerError>;
}

/// Build the adapter for a configured device.
pub fn build(cfg: &DeviceConfig) -> Arc<dyn PowerDevice> {
    match &cfg.kind {
        DeviceKind::Sim(s) => Arc::new(sim::SimDevice::new(Arc::new(sim::bmc_for(
            &cfg.name, s, &cfg.hosts,
        )))),
        DeviceKind::Agent(a) => Arc::new(agent::AgentDevice::new(cfg, a)),
        DeviceKind::Ipmi(i) => Arc::new(ipmi::IpmiDevice::new(cfg, i)),
        DeviceKind::Redfish(r) => Arc::new(redfish::RedfishDevice::new(cfg, r)),
        DeviceKind::Sbd(s) => Arc::new(sbd::SbdDevice::new(cfg, s)),
    }
}
