//! `PowerDevice` for an external ClusterLabs fence agent (`kind = "agent"`).
//!
//! Parameters come from the device's `params`, `username` and password
//! source; the target goes as `port=` when the agent's metadata declares a
//! plug/port (as Pacemaker does). Exit codes map to typed errors; `status`
//! is 0 = on, 2 = off, anything else an error.

use super::{PowerDevice, PowerError, PowerState};
use crate::agent::metadata::AgentMetadata;
use crate::agent::runner::{self, AgentCall, AgentOutput, RunError};
use crate::agent::{exit, AgentAction};
use crate::config::{AgentDeviceConfig, DeviceConfig, Timeouts};
use crate::secret::PasswordSource;
use async_trait::async_trait;
use std::path::PathBuf;
use tokio::sync::OnceCell;

pub struct AgentDevice {
    name: String,
    agent: String,
    params: Vec<(String, String)>,
    password: PasswordSource,
    timeouts: Timeouts,
    metadata: OnceCell<Option<AgentMetadata>>,
}

impl AgentDevice {
    pub fn new(cfg: &DeviceConfig, a: &AgentDeviceConfig) -> Self {
        let mut params: Vec<(String, String)> = Vec::new();
        if let Some(u) = &cfg.username {
            params.push(("username".into(), u.clone()));
        }
        params.extend(a.params.iter().map(|(k, v)| (k.clone(), v.clone())));
        AgentDevice {
            name: cfg.name.clone(),
            agent: a.agent.clone(),
            params,
            password: cfg.password.clone(),
            timeouts: cfg.timeouts,
            metadata: OnceCell::new(),
        }
    }

    fn path(&self) -> Result<PathBuf, PowerError> {
        runner::locate(&self.agent).ok_or_else(|| PowerError::Agent {
            device: self.name.clone(),
            detail: format!("fence agent `{}` is not installed", self.agent),
        })
    }

    /// The agent's metadata, fetched once.
    async fn metadata(&self) -> Option<&AgentMetadata> {
        self.metadata
            .get_or_init(|| async {
                let path = self.path().ok()?;
                let out = runner::run(AgentCall {
                    agent: &path,
                    action: AgentAction::Metadata,
                    params: &[],
                    password: None,
                    timeout: self.timeouts.monitor,
                })
                .await
                .ok()?;
                AgentMetadata::parse(&out.stdout).ok()
            })
            .await
            .as_ref()
    }

    async fn call(
        &self,
        action: AgentAction,
        plug: Option<&str>,
    ) -> Result<AgentOutput, PowerError> {
        let path = self.path()?;
        let mut params = self.params.clone();
        if let Some(plug) = plug {
            // Without metadata we cannot know; passing port= is what
            // Pacemaker does for agents that declare it, the common case.
            let takes_plug = self
                .metadata()
                .await
                .map(|m| m.takes_plug())
                .unwrap_or(true);
            if takes_plug {
                params.push(("port".into(), plug.to_string()));
            }
        }
        let password = self
            .password
            .resolve(self.timeouts.monitor)
            .await
            .map_err(|source| PowerError::Credentials {
                device: self.name.clone(),
                source,
            })?;
        let timeout = match action {
            AgentAction::Off => self.timeouts.off,
            AgentAction::On => self.timeouts.on,
            AgentAction::Status => self.timeouts.status,
            AgentAction::List | AgentAction::ListStatus => self.timeouts.list,
            _ => self.timeouts.monitor,
        };
        runner::run(AgentCall {
            agent: &path,
            action,
            params: &params,
            password: password.as_ref(),
            timeout,
        })
        .await
        .map_err(|e| match e {
            RunError::Timeout { timeout, .. } => PowerError::Timeout {
                device: self.name.clone(),
                what: format!("{} -o {action}", self.agent),
                after: timeout,
            },
            other => PowerError::Agent {
                device: self.name.clone(),
                detail: other.to_string(),
            },
        })
    }

    fn failure(&self, action: AgentAction, out: &AgentOutput) -> PowerError {
        let detail = format!("{} -o {action}: {}", self.agent, out.reason());
        match out.code {
            exit::LOGIN_DENIED => PowerError::Auth {
                device: self.name.clone(),
                detail,
            },
            exit::CONNECTION_LOST => PowerError::Connect {
                device: self.name.clone(),
                detail,
            },
            exit::TIMED_OUT => PowerError::Timeout {
                device: self.name.clone(),
                what: detail,
                after: self.timeouts.off,
            },
            _ => PowerError::Agent {
                device: self.name.clone(),
                detail,
            },
        }
    }

    async fn simple(
        &self,
        action: AgentAction,
        plug: Option<&str>,
    ) -> Result<AgentOutput, PowerError> {
        let out = self.call(action, plug).await?;
        if out.code == exit::OK {
            Ok(out)
        } else {
            Err(self.failure(action, &out))
        }
    }
}

#[async_trait]
impl PowerDevice for AgentDevice {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "agent"
    }
    async fn status(&self, plug: &str) -> Result<PowerState, PowerError> {
        let out = self.call(AgentAction::Status, Some(plug)).await?;
        match out.code {
            exit::STATUS_ON => Ok(PowerState::On),
            // 2 is "off" only with the agent saying so: some agents exit 2
            // for bad arguments, and an error must never read as off.
            exit::STATUS_OFF if out.stdout.to_ascii_uppercase().contains("OFF") => {
                Ok(PowerState::Off)
            }
            exit::STATUS_OFF => Err(PowerError::Agent {
                device: self.name.clone(),
                detail: format!(
                    "{} -o status exited 2 without printing \"Status: OFF\" ({}); not taken as off",
                    self.agent,
                    out.reason()
                ),
            }),
            _ => Err(self.failure(AgentAction::Status, &out)),
        }
    }
    async fn off(&self, plug: &str) -> Result<(), PowerError> {
        self.simple(AgentAction::Off, Some(plug)).await.map(|_| ())
    }
    async fn on(&self, plug: &str) -> Result<(), PowerError> {
        self.simple(AgentAction::On, Some(plug)).await.map(|_| ())
    }
    async fn list(&self) -> Result<Vec<String>, PowerError> {
        if let Some(md) = self.metadata().await {
            if !md.supports("list") {
                return Err(PowerError::Unsupported {
                    device: self.name.clone(),
                    what: format!("list ({} has no list action; use host_list)", self.agent),
                });
            }
        }
        let out = self.simple(AgentAction::List, None).await?;
        Ok(runner::parse_list(&out.stdout))
    }
    async fn monitor(&self) -> Result<(), PowerError> {
        self.simple(AgentAction::Monitor, None).await.map(|_| ())
    }
}
