//! `PowerDevice` for the simulated BMC of [`crate::sim`].

use super::{PowerDevice, PowerError, PowerState};
use crate::config::{Hosts, SimConfig};
use crate::sim::{SimBmc, SimError, SimPower};
use async_trait::async_trait;
use std::sync::Arc;

/// The simulator for a configured sim device: its plugs are the mapped
/// names of its hosts.
pub fn bmc_for(name: &str, cfg: &SimConfig, hosts: &Hosts) -> SimBmc {
    let mut plugs: Vec<String> = hosts
        .list
        .iter()
        .map(|n| hosts.plug_for(n).to_string())
        .chain(hosts.map.values().cloned())
        .collect();
    plugs.sort();
    plugs.dedup();
    SimBmc::new(
        name,
        cfg.fault,
        cfg.slow_by,
        cfg.initially_on,
        plugs,
        cfg.state_file.clone(),
    )
}

pub struct SimDevice {
    bmc: Arc<SimBmc>,
}

impl SimDevice {
    pub fn new(bmc: Arc<SimBmc>) -> Self {
        SimDevice { bmc }
    }
    fn err(&self, e: SimError) -> PowerError {
        match e {
            SimError::Refused(_) => PowerError::Auth {
                device: self.bmc.name().to_string(),
                detail: "simulated BMC refused the login".into(),
            },
            SimError::State { .. } => PowerError::Protocol {
                device: self.bmc.name().to_string(),
                detail: e.to_string(),
            },
        }
    }
}

#[async_trait]
impl PowerDevice for SimDevice {
    fn name(&self) -> &str {
        self.bmc.name()
    }
    fn kind(&self) -> &'static str {
        "sim"
    }
    async fn status(&self, plug: &str) -> Result<PowerState, PowerError> {
        match self.bmc.status(plug).await.map_err(|e| self.err(e))? {
            SimPower::On => Ok(PowerState::On),
            SimPower::Off => Ok(PowerState::Off),
        }
    }
    async fn off(&self, plug: &str) -> Result<(), PowerError> {
        self.bmc
            .set(plug, SimPower::Off)
            .await
            .map_err(|e| self.err(e))
    }
    async fn on(&self, plug: &str) -> Result<(), PowerError> {
        self.bmc
            .set(plug, SimPower::On)
            .await
            .map_err(|e| self.err(e))
    }
    async fn list(&self) -> Result<Vec<String>, PowerError> {
        self.bmc.list().await.map_err(|e| self.err(e))
    }
    async fn monitor(&self) -> Result<(), PowerError> {
        self.bmc.list().await.map(|_| ()).map_err(|e| self.err(e))
    }
}
