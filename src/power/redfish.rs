//! `PowerDevice` for a BMC over Redfish, through [`crate::redfish`]. One
//! login per operation (always logged out), one connection pool per device.
//! The plug is the node's entry in `host_map` (a system selector), else the
//! device's `system`; the system URI found is remembered per plug.

use super::{PowerDevice, PowerError, PowerState};
use crate::config::{DeviceConfig, RedfishDeviceConfig, Timeouts};
use crate::profiles::{Profiles, RedfishFacts};
use crate::redfish::client::{Http, RedfishConfig, Session, SystemInfo, SystemSelector};
use crate::redfish::{RedfishError, ResetPlan};
use crate::secret::{PasswordSource, Secret};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::OnceCell;
use tokio::time::Instant;
use tracing::info;

pub struct RedfishDevice {
    name: String,
    cfg: RedfishDeviceConfig,
    username: String,
    password: PasswordSource,
    timeouts: Timeouts,
    /// plug -> system selector (from host_map).
    plugs: HashMap<String, SystemSelector>,
    http: OnceCell<Http>,
    /// plug -> the system found earlier (URI, reset target, allowed types:
    /// they do not change; the power state in it is never reused).
    systems: Mutex<HashMap<String, SystemInfo>>,
    /// Skip reading the service root (one-shot agent, basic auth, explicit system).
    skip_root: bool,
    /// Reset types, from the vendor profile (matched once).
    plan: OnceCell<(String, ResetPlan)>,
    /// The service root, read once.
    root: std::sync::OnceLock<serde_json::Value>,
}

impl RedfishDevice {
    pub fn new(dev: &DeviceConfig, cfg: &RedfishDeviceConfig) -> Self {
        let plugs = dev
            .hosts
            .map
            .values()
            .map(|v| (v.clone(), SystemSelector::parse(v)))
            .collect();
        Self::from_parts(
            &dev.name,
            cfg.clone(),
            dev.username.as_deref().unwrap_or(""),
            dev.password.clone(),
            dev.timeouts,
            plugs,
        )
    }

    /// Build from explicit parts (agent mode).
    pub fn from_parts(
        name: &str,
        cfg: RedfishDeviceConfig,
        username: &str,
        password: PasswordSource,
        timeouts: Timeouts,
        plugs: HashMap<String, SystemSelector>,
    ) -> Self {
        RedfishDevice {
            name: name.to_string(),
            cfg,
            username: username.to_string(),
            password,
            timeouts,
            plugs,
            http: OnceCell::new(),
            systems: Mutex::new(HashMap::new()),
            skip_root: false,
            plan: OnceCell::new(),
            root: std::sync::OnceLock::new(),
        }
    }

    /// The vendor profile's reset plan: the configured profile, else the one
    /// matching what the BMC says about itself (service root, system,
    /// manager). Decided once per device.
    pub async fn plan(&self, s: &Session, system_uri: &str) -> (String, ResetPlan) {
        self.plan
            .get_or_init(|| async {
                let profiles = Profiles::builtin();
                let profile = match self.cfg.profile.as_deref().and_then(|n| profiles.by_name(n)) {
                    Some(p) => p.clone(),
                    None => {
                        let system = s.get(system_uri).await.ok();
                        let manager = first_manager(s).await;
                        let facts = RedfishFacts::from_documents(&s.root, system.as_ref(), manager.as_ref());
                        profiles.match_redfish(&facts).clone()
                    }
                };
                info!(device = %self.name, profile = %profile.name, off = ?profile.redfish.off, on = ?profile.redfish.on, "Redfish vendor profile");
                let plan = ResetPlan {
                    off: profile.redfish.off.clone(),
                    on: profile.redfish.on.clone(),
                    cycle: profile.redfish.cycle.clone(),
                };
                (profile.name.clone(), plan)
            })
            .await
            .clone()
    }

    fn err(&self, e: RedfishError) -> PowerError {
        let device = self.name.clone();
        match e {
            RedfishError::Connect { .. } | RedfishError::Tls { .. } => PowerError::Connect {
                device,
                detail: e.to_string(),
            },
            RedfishError::Timeout {
                ref what, after, ..
            } => PowerError::Timeout {
                device,
                what: format!("Redfish {what}"),
                after,
            },
            RedfishError::Auth { .. } => PowerError::Auth {
                device,
                detail: e.to_string(),
            },
            RedfishError::Http { .. } | RedfishError::Reset { .. } => PowerError::Refused {
                device,
                detail: e.to_string(),
            },
            RedfishError::System { .. } | RedfishError::Protocol { .. } => PowerError::Protocol {
                device,
                detail: e.to_string(),
            },
        }
    }

    async fn config(&self) -> Result<RedfishConfig, PowerError> {
        let password = self
            .password
            .resolve(self.timeouts.monitor)
            .await
            .map_err(|source| PowerError::Credentials {
                device: self.name.clone(),
                source,
            })?
            .unwrap_or_else(|| Secret::new(""));
        Ok(RedfishConfig {
            host: self.cfg.address.clone(),
            port: self.cfg.port,
            tls: self.cfg.tls.clone(),
            username: self.username.clone(),
            password,
            root: self.cfg.root.clone(),
            auth: self.cfg.auth,
            request_timeout: self.cfg.request_timeout,
        })
    }

    /// Log in (building the connection pool on first use).
    pub async fn login(&self) -> Result<Session, PowerError> {
        let cfg = self.config().await?;
        let http = self
            .http
            .get_or_try_init(|| async { Http::new(&cfg) })
            .await
            .map_err(|e| self.err(e))?;
        let skip = serde_json::Value::Null;
        let cached = if self.skip_root {
            Some(&skip)
        } else {
            self.root.get()
        };
        let session = http.login(&cfg, cached).await.map_err(|e| self.err(e))?;
        let _ = self.root.set(session.root.clone());
        Ok(session)
    }

    /// The system a plug names, using the remembered URI when known.
    pub async fn system(&self, s: &Session, plug: &str) -> Result<SystemInfo, PowerError> {
        let known = self.known(plug);
        if let Some(k) = known {
            return s.system(&k.uri).await.map_err(|e| self.err(e));
        }
        let selector = self
            .plugs
            .get(plug)
            .cloned()
            .unwrap_or_else(|| self.cfg.system.clone());
        let mut sys = s.select(&selector).await.map_err(|e| self.err(e))?;
        // Resolve the allowed reset types once (an ActionInfo GET on BMCs
        // that publish them only there): the cached shape then carries them.
        if sys.allowed.is_none() {
            sys.allowed = s.allowed_resets(&sys).await;
        }
        if let Ok(mut m) = self.systems.lock() {
            m.insert(plug.to_string(), sys.clone());
        }
        Ok(sys)
    }

    /// The system of `plug` as found earlier, if it was.
    fn known(&self, plug: &str) -> Option<SystemInfo> {
        self.systems.lock().ok().and_then(|m| m.get(plug).cloned())
    }

    /// For a one-shot agent: with basic auth and an explicit system URI the
    /// service root is not needed; skip that request.
    pub fn one_shot(mut self) -> Self {
        self.skip_root = self.cfg.auth == crate::redfish::client::AuthMode::Basic
            && matches!(self.cfg.system, SystemSelector::Uri(_));
        self
    }

    async fn reset(
        &self,
        plug: &str,
        step: Step,
        limit: std::time::Duration,
    ) -> Result<(), PowerError> {
        let deadline = Instant::now() + limit;
        let s = self.login().await?;
        let r = async {
            // The reset target and allowed types do not change: a system
            // found earlier needs no new GET before the POST.
            let sys = match self.known(plug) {
                Some(k) => k,
                None => self.system(&s, plug).await?,
            };
            // What the BMC allows decides, in the generic order of
            // preference; the vendor profile is asked when the BMC does not
            // say (or the device names a profile).
            let plan = if self.cfg.profile.is_some() || sys.allowed.is_none() {
                self.plan(&s, &sys.uri).await.1
            } else {
                ResetPlan::default()
            };
            let candidates = match step {
                Step::Off => &plan.off,
                Step::On => &plan.on,
            };
            s.reset(&sys, candidates, deadline)
                .await
                .map_err(|e| self.err(e))
        }
        .await;
        s.logout().await;
        r.map(|_| ())
    }
}

impl RedfishDevice {
    /// Send a diagnostic interrupt (ResetType Nmi): fence_redfish's `diag`.
    pub async fn nmi(&self, plug: &str) -> Result<(), PowerError> {
        let deadline = Instant::now() + self.timeouts.off;
        let s = self.login().await?;
        let r = async {
            let sys = self.system(&s, plug).await?;
            s.reset(&sys, &["Nmi".to_string()], deadline)
                .await
                .map_err(|e| self.err(e))
        }
        .await;
        s.logout().await;
        r.map(|_| ())
    }
}

#[derive(Clone, Copy)]
enum Step {
    Off,
    On,
}

/// The first Manager's document, if the service lists one.
async fn first_manager(s: &Session) -> Option<serde_json::Value> {
    let coll = s.root.pointer("/Managers/@odata.id")?.as_str()?.to_string();
    let coll = s.get(&coll).await.ok()?;
    let first = coll.pointer("/Members/0/@odata.id")?.as_str()?.to_string();
    s.get(&first).await.ok()
}

#[async_trait]
impl PowerDevice for RedfishDevice {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "redfish"
    }
    async fn status(&self, plug: &str) -> Result<PowerState, PowerError> {
        let s = self.login().await?;
        let r = self.system(&s, plug).await.map(|sys| sys.power);
        s.logout().await;
        r
    }
    async fn off(&self, plug: &str) -> Result<(), PowerError> {
        self.reset(plug, Step::Off, self.timeouts.off).await
    }
    async fn on(&self, plug: &str) -> Result<(), PowerError> {
        self.reset(plug, Step::On, self.timeouts.on).await
    }
    async fn list(&self) -> Result<Vec<String>, PowerError> {
        let s = self.login().await?;
        let r = s.systems().await.map_err(|e| self.err(e));
        s.logout().await;
        Ok(r?.into_iter().map(|sys| format!("id:{}", sys.id)).collect())
    }
    async fn monitor(&self) -> Result<(), PowerError> {
        let s = self.login().await?;
        let r = s.systems().await.map(|_| ()).map_err(|e| self.err(e));
        s.logout().await;
        r
    }
}
