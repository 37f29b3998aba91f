//! `PowerDevice` for a BMC over IPMI v2.0 (RMCP+), through our own client
//! in [`crate::ipmi`]. One session per operation, always closed; the BMC is
//! one machine, so the plug name is ignored.

use super::{PowerDevice, PowerError, PowerState};
use crate::config::{DeviceConfig, IpmiConfig, Timeouts};
use crate::ipmi::client::{ClientConfig, Session};
use crate::ipmi::commands::{ChassisAction, ChassisControl, GetChassisStatus};
use crate::ipmi::IpmiError;
use crate::secret::PasswordSource;
use async_trait::async_trait;
use std::time::Duration;
use tokio::time::Instant;

pub struct IpmiDevice {
    name: String,
    cfg: IpmiConfig,
    username: String,
    password: PasswordSource,
    timeouts: Timeouts,
}

impl IpmiDevice {
    pub fn new(dev: &DeviceConfig, cfg: &IpmiConfig) -> Self {
        IpmiDevice {
            name: dev.name.clone(),
            cfg: cfg.clone(),
            username: dev.username.clone().unwrap_or_default(),
            password: dev.password.clone(),
            timeouts: dev.timeouts,
        }
    }

    /// Build from explicit parts (agent mode).
    pub fn from_parts(
        name: &str,
        cfg: IpmiConfig,
        username: &str,
        password: PasswordSource,
        timeouts: Timeouts,
    ) -> Self {
        IpmiDevice {
            name: name.to_string(),
            cfg,
            username: username.to_string(),
            password,
            timeouts,
        }
    }

    fn err(&self, e: IpmiError) -> PowerError {
        let device = self.name.clone();
        match e {
            IpmiError::Connect { .. } | IpmiError::Unreachable { .. } => PowerError::Connect {
                device,
                detail: e.to_string(),
            },
            IpmiError::Timeout {
                ref bmc,
                ref stage,
                after,
                sent,
            } => PowerError::Timeout {
                device,
                what: format!(
                    "IPMI {stage} with BMC {bmc} ({sent} datagram(s) sent, no valid answer)"
                ),
                after,
            },
            IpmiError::Auth { .. } => PowerError::Auth {
                device,
                detail: e.to_string(),
            },
            IpmiError::Completion { .. } => PowerError::Refused {
                device,
                detail: e.to_string(),
            },
            IpmiError::Cipher { .. } | IpmiError::Protocol { .. } => PowerError::Protocol {
                device,
                detail: e.to_string(),
            },
        }
    }

    pub async fn open(&self, deadline: Instant) -> Result<Session, PowerError> {
        let password = self
            .password
            .resolve(self.timeouts.monitor)
            .await
            .map_err(|source| PowerError::Credentials {
                device: self.name.clone(),
                source,
            })?
            .unwrap_or_else(|| crate::secret::Secret::new(""));
        let client = ClientConfig {
            host: self.cfg.address.clone(),
            port: self.cfg.port,
            username: self.username.clone(),
            password,
            kg: self.cfg.kg.clone(),
            privilege: self.cfg.privilege,
            cipher: self.cfg.cipher,
            allow_insecure: self.cfg.allow_insecure,
            retransmit: self.cfg.retransmit,
            login_timeout: self.cfg.login_timeout,
        };
        Session::open(&client, deadline)
            .await
            .map_err(|e| self.err(e))
    }

    /// Send one chassis action in its own session.
    pub async fn chassis(&self, action: ChassisAction, limit: Duration) -> Result<(), PowerError> {
        let deadline = Instant::now() + limit;
        let mut s = self.open(deadline).await?;
        let r = s.send(ChassisControl(action), deadline).await;
        s.close().await;
        r.map_err(|e| self.err(e))
    }

    async fn read_status(&self, limit: Duration) -> Result<PowerState, PowerError> {
        let deadline = Instant::now() + limit;
        let mut s = self.open(deadline).await?;
        let r = s.send(GetChassisStatus, deadline).await;
        s.close().await;
        let st = r.map_err(|e| self.err(e))?;
        Ok(if st.power_on {
            PowerState::On
        } else {
            PowerState::Off
        })
    }
}

#[async_trait]
impl PowerDevice for IpmiDevice {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "ipmi"
    }
    async fn status(&self, _plug: &str) -> Result<PowerState, PowerError> {
        self.read_status(self.timeouts.status).await
    }
    async fn off(&self, _plug: &str) -> Result<(), PowerError> {
        self.chassis(ChassisAction::PowerOff, self.timeouts.off)
            .await
    }
    async fn on(&self, _plug: &str) -> Result<(), PowerError> {
        self.chassis(ChassisAction::PowerOn, self.timeouts.on).await
    }
    async fn list(&self) -> Result<Vec<String>, PowerError> {
        Err(PowerError::Unsupported {
            device: self.name.clone(),
            what: "list (a BMC controls one machine: name it in host_list)".into(),
        })
    }
    async fn monitor(&self) -> Result<(), PowerError> {
        self.read_status(self.timeouts.monitor).await.map(|_| ())
    }
}
