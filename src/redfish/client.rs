//! A Redfish client for one BMC: [`Http`] holds the connection pool (built
//! once per device, reused), [`Session`] is one login (X-Auth-Token or basic)
//! that is always logged out.

use super::tls::{self, TlsMode};
use super::RedfishError;
use crate::power::PowerState;
use crate::secret::Secret;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::time::Instant;
use tracing::{debug, warn};

/// How to log in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// SessionService if the BMC has one, else basic auth.
    Auto,
    Session,
    Basic,
}

/// Which ComputerSystem to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SystemSelector {
    /// The only system (an error listing them if there are several).
    Only,
    /// An explicit URI (`/redfish/v1/Systems/1`).
    Uri(String),
    Id(String),
    Uuid(String),
    Serial(String),
    HostName(String),
}

impl SystemSelector {
    /// `uri:...`, `id:...`, `uuid:...`, `serial:...`, `hostname:...`, a path
    /// starting with `/`, or a bare id.
    pub fn parse(s: &str) -> SystemSelector {
        let s = s.trim();
        if s.is_empty() {
            return SystemSelector::Only;
        }
        if s.starts_with('/') {
            return SystemSelector::Uri(s.to_string());
        }
        match s.split_once(':') {
            Some(("uri", v)) => SystemSelector::Uri(v.to_string()),
            Some(("id", v)) => SystemSelector::Id(v.to_string()),
            Some(("uuid", v)) => SystemSelector::Uuid(v.to_string()),
            Some(("serial", v)) => SystemSelector::Serial(v.to_string()),
            Some(("hostname", v)) => SystemSelector::HostName(v.to_string()),
            _ => SystemSelector::Id(s.to_string()),
        }
    }
}

/// Where and how to reach a BMC.
#[derive(Debug, Clone)]
pub struct RedfishConfig {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub username: String,
    pub password: Secret,
    /// Service root path, normally `/redfish/v1`.
    pub root: String,
    pub auth: AuthMode,
    /// Timeout of every single HTTP request.
    pub request_timeout: Duration,
}

/// One ComputerSystem as read from the BMC.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SystemInfo {
    pub uri: String,
    pub id: String,
    pub uuid: Option<String>,
    pub serial: Option<String>,
    pub hostname: Option<String>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub power: PowerState,
    /// Target of `#ComputerSystem.Reset`.
    pub reset_target: Option<String>,
    /// `ResetType@Redfish.AllowableValues`, when the BMC says.
    pub allowed: Option<Vec<String>>,
    /// `@Redfish.ActionInfo` of the reset action, if any.
    pub action_info: Option<String>,
}

/// The HTTP side: a connection pool to one BMC.
#[derive(Clone)]
pub struct Http {
    client: reqwest::Client,
    base: String,
    bmc: String,
    timeout: Duration,
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

fn odata_id(v: &Value) -> Option<String> {
    text(v, "@odata.id")
}

/// The message of a Redfish error body (or the raw text).
fn error_message(body: &str) -> String {
    let Ok(v) = serde_json::from_str::<Value>(body) else {
        let t = body.trim();
        return if t.is_empty() {
            "(empty body)".into()
        } else {
            t.chars().take(200).collect()
        };
    };
    let e = &v["error"];
    let mut parts = Vec::new();
    if let Some(m) = e.get("message").and_then(Value::as_str) {
        parts.push(m.to_string());
    }
    if let Some(infos) = e.get("@Message.ExtendedInfo").and_then(Value::as_array) {
        for i in infos {
            if let Some(m) = i.get("Message").and_then(Value::as_str) {
                if !parts.iter().any(|p| p == m) {
                    parts.push(m.to_string());
                }
            }
        }
    }
    if parts.is_empty() {
        v.to_string().chars().take(200).collect()
    } else {
        parts.join("; ")
    }
}

impl Http {
    /// Build the client (TLS per `cfg.tls`).
    pub fn new(cfg: &RedfishConfig) -> Result<Http, RedfishError> {
        let bmc = format!("{}:{}", cfg.host, cfg.port);
        let scheme = if cfg.tls == TlsMode::PlainHttp {
            "http"
        } else {
            "https"
        };
        let host = if cfg.host.contains(':') && !cfg.host.starts_with('[') {
            format!("[{}]", cfg.host)
        } else {
            cfg.host.clone()
        };
        let mut b = reqwest::Client::builder()
            .timeout(cfg.request_timeout)
            .connect_timeout(cfg.request_timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("ironfence/", env!("CARGO_PKG_VERSION")));
        match &cfg.tls {
            TlsMode::Verify { ca_file } => {
                b = b.tls_built_in_root_certs(true);
                if let Some(path) = ca_file {
                    let pem = std::fs::read(path).map_err(|e| RedfishError::Tls {
                        bmc: bmc.clone(),
                        detail: format!("cannot read ca_file {}: {e}", path.display()),
                    })?;
                    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                        RedfishError::Tls {
                            bmc: bmc.clone(),
                            detail: format!(
                                "ca_file {} holds no PEM certificate: {e}",
                                path.display()
                            ),
                        }
                    })?;
                    if certs.is_empty() {
                        return Err(RedfishError::Tls {
                            bmc,
                            detail: format!("ca_file {} holds no PEM certificate", path.display()),
                        });
                    }
                    for c in certs {
                        b = b.add_root_certificate(c);
                    }
                }
            }
            TlsMode::Pinned(pin) => {
                b = b.tls_built_in_root_certs(false);
                let config = tls::pinned_config(*pin).map_err(|e| RedfishError::Tls {
                    bmc: bmc.clone(),
                    detail: e.to_string(),
                })?;
                b = b.use_preconfigured_tls(config);
            }
            TlsMode::Insecure => {
                warn!(bmc = %bmc, "TLS certificate verification is OFF (ssl_insecure)");
                b = b
                    .tls_built_in_root_certs(false)
                    .danger_accept_invalid_certs(true);
            }
            TlsMode::PlainHttp => b = b.tls_built_in_root_certs(false),
        }
        let client = b.build().map_err(|e| RedfishError::Connect {
            bmc: bmc.clone(),
            detail: e.to_string(),
        })?;
        Ok(Http {
            client,
            base: format!("{scheme}://{host}:{}", cfg.port),
            bmc,
            timeout: cfg.request_timeout,
        })
    }

    pub fn bmc(&self) -> &str {
        &self.bmc
    }

    fn send_error(&self, what: &str, e: reqwest::Error) -> RedfishError {
        if e.is_timeout() {
            return RedfishError::Timeout {
                bmc: self.bmc.clone(),
                what: what.to_string(),
                after: self.timeout,
            };
        }
        // Walk the source chain: TLS failures are worth their own message.
        let mut detail = e.to_string();
        let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&e);
        while let Some(s) = src {
            detail = format!("{detail}: {s}");
            src = s.source();
        }
        let lower = detail.to_ascii_lowercase();
        if lower.contains("certificate")
            || lower.contains("tls")
            || lower.contains("handshake")
            || lower.contains("fingerprint")
        {
            RedfishError::Tls {
                bmc: self.bmc.clone(),
                detail,
            }
        } else {
            RedfishError::Connect {
                bmc: self.bmc.clone(),
                detail,
            }
        }
    }

    /// GET the service root (no auth needed) and log in. A root read
    /// earlier (`cached_root`) is reused: it does not change.
    pub async fn login(
        &self,
        cfg: &RedfishConfig,
        cached_root: Option<&Value>,
    ) -> Result<Session, RedfishError> {
        let root_path = cfg.root.trim_end_matches('/').to_string();
        let root = match cached_root {
            Some(r) => r.clone(),
            None => self.read_root(&root_path).await?,
        };
        self.login_with(cfg, root_path, root).await
    }

    async fn read_root(&self, root_path: &str) -> Result<Value, RedfishError> {
        let root = self
            .raw(Method::GET, &format!("{root_path}/"), None, &Auth::None)
            .await?;
        let root = match root.status {
            s if s.is_success() => serde_json::from_str::<Value>(&root.body).map_err(|e| RedfishError::Protocol {
                bmc: self.bmc.clone(),
                detail: format!("service root {root_path} is not JSON: {e}; is this a Redfish service (check redfish_uri)?"),
            })?,
            s => {
                return Err(RedfishError::Http {
                    bmc: self.bmc.clone(),
                    method: "GET".into(),
                    path: root_path.to_string(),
                    status: s.as_u16(),
                    message: format!("{} (is this a Redfish service? check the port and redfish_uri)", error_message(&root.body)),
                })
            }
        };
        Ok(root)
    }

    async fn login_with(
        &self,
        cfg: &RedfishConfig,
        root_path: String,
        root: Value,
    ) -> Result<Session, RedfishError> {
        let basic = Auth::Basic {
            user: cfg.username.clone(),
            password: cfg.password.clone(),
        };
        let sessions_uri = root
            .pointer("/Links/Sessions/@odata.id")
            .and_then(Value::as_str)
            .map(str::to_string);
        let mut auth = basic.clone();
        // Only a service that advertises sessions gets a session login in
        // auto mode: some (sushy-tools) answer 401 to any unknown POST.
        let advertised =
            sessions_uri.is_some() || root.pointer("/SessionService/@odata.id").is_some();
        if cfg.auth == AuthMode::Session || (cfg.auth == AuthMode::Auto && advertised) {
            let uri = sessions_uri
                .clone()
                .unwrap_or_else(|| format!("{root_path}/SessionService/Sessions"));
            let body = json!({"UserName": cfg.username, "Password": cfg.password.expose()});
            let r = self
                .raw(Method::POST, &uri, Some(&body), &Auth::None)
                .await?;
            match r.status {
                s if s.is_success() => match r.token {
                    Some(token) => {
                        let session = r.location.or_else(|| {
                            serde_json::from_str::<Value>(&r.body)
                                .ok()
                                .and_then(|v| odata_id(&v))
                        });
                        debug!(bmc = %self.bmc, "Redfish session created");
                        auth = Auth::Token {
                            token: Secret::new(token),
                            session,
                        };
                    }
                    None if cfg.auth == AuthMode::Session => {
                        return Err(RedfishError::Protocol {
                            bmc: self.bmc.clone(),
                            detail: "the session login answered without an X-Auth-Token".into(),
                        })
                    }
                    None => {}
                },
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    return Err(RedfishError::Auth {
                        bmc: self.bmc.clone(),
                        detail: format!(
                            "session login: HTTP {}: {}",
                            r.status.as_u16(),
                            error_message(&r.body)
                        ),
                    })
                }
                s if cfg.auth == AuthMode::Session => {
                    return Err(RedfishError::Http {
                        bmc: self.bmc.clone(),
                        method: "POST".into(),
                        path: uri,
                        status: s.as_u16(),
                        message: format!(
                            "{} (the BMC has no usable SessionService: use auth = \"basic\")",
                            error_message(&r.body)
                        ),
                    })
                }
                // No SessionService (404/405/501/...): basic auth.
                _ => {
                    debug!(bmc = %self.bmc, status = r.status.as_u16(), "no Redfish sessions; using basic auth")
                }
            }
        }
        let session = Session {
            http: self.clone(),
            auth,
            root_path,
            root,
            logged_out: false,
        };
        Ok(session)
    }

    async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        auth: &Auth,
    ) -> Result<RawResponse, RedfishError> {
        let url = if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}{}", self.base, path)
        };
        let what = format!("{method} {path}");
        let mut req = self
            .client
            .request(method, &url)
            .header("Accept", "application/json")
            .header("OData-Version", "4.0");
        match auth {
            Auth::None => {}
            Auth::Basic { user, password } => req = req.basic_auth(user, Some(password.expose())),
            Auth::Token { token, .. } => req = req.header("X-Auth-Token", token.expose()),
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| self.send_error(&what, e))?;
        let status = resp.status();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let token = header("X-Auth-Token");
        let location = header("Location");
        let body = resp.text().await.map_err(|e| self.send_error(&what, e))?;
        Ok(RawResponse {
            status,
            token,
            location,
            body,
        })
    }
}

struct RawResponse {
    status: StatusCode,
    token: Option<String>,
    location: Option<String>,
    body: String,
}

#[derive(Clone)]
enum Auth {
    None,
    Basic {
        user: String,
        password: Secret,
    },
    Token {
        token: Secret,
        session: Option<String>,
    },
}

/// One logged-in conversation with a BMC. Call [`Session::logout`]; a
/// session dropped without it is deleted in the background.
pub struct Session {
    http: Http,
    auth: Auth,
    root_path: String,
    /// The service root document.
    pub root: Value,
    logged_out: bool,
}

impl Session {
    /// Whether this session uses an X-Auth-Token (else basic auth).
    pub fn uses_token(&self) -> bool {
        matches!(self.auth, Auth::Token { .. })
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<RawResponse, RedfishError> {
        let r = self
            .http
            .raw(method.clone(), path, body, &self.auth)
            .await?;
        if r.status == StatusCode::UNAUTHORIZED || r.status == StatusCode::FORBIDDEN {
            return Err(RedfishError::Auth {
                bmc: self.http.bmc.clone(),
                detail: format!(
                    "{method} {path}: HTTP {}: {}",
                    r.status.as_u16(),
                    error_message(&r.body)
                ),
            });
        }
        Ok(r)
    }

    /// GET a resource; non-2xx is an error.
    pub async fn get(&self, path: &str) -> Result<Value, RedfishError> {
        let r = self.request(Method::GET, path, None).await?;
        if !r.status.is_success() {
            return Err(RedfishError::Http {
                bmc: self.http.bmc.clone(),
                method: "GET".into(),
                path: path.to_string(),
                status: r.status.as_u16(),
                message: error_message(&r.body),
            });
        }
        serde_json::from_str(&r.body).map_err(|e| RedfishError::Protocol {
            bmc: self.http.bmc.clone(),
            detail: format!("GET {path}: not JSON: {e}"),
        })
    }

    /// The Systems collection's URI.
    fn systems_uri(&self) -> String {
        self.root
            .pointer("/Systems/@odata.id")
            .and_then(Value::as_str)
            .map(|s| s.trim_end_matches('/').to_string())
            .unwrap_or_else(|| format!("{}/Systems", self.root_path))
    }

    /// Every ComputerSystem.
    pub async fn systems(&self) -> Result<Vec<SystemInfo>, RedfishError> {
        let coll_uri = self.systems_uri();
        let coll = self.get(&coll_uri).await?;
        let members = coll
            .get("Members")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut out = Vec::new();
        for m in members {
            if let Some(uri) = odata_id(&m) {
                out.push(self.system(&uri).await?);
            }
        }
        Ok(out)
    }

    /// One ComputerSystem by URI.
    pub async fn system(&self, uri: &str) -> Result<SystemInfo, RedfishError> {
        let v = self.get(uri).await?;
        let power = match v.get("PowerState").and_then(Value::as_str) {
            Some("On") => PowerState::On,
            Some("Off") => PowerState::Off,
            _ => PowerState::Unknown,
        };
        let reset = v
            .pointer("/Actions/#ComputerSystem.Reset")
            .cloned()
            .unwrap_or(Value::Null);
        let allowed = reset
            .get("ResetType@Redfish.AllowableValues")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            });
        Ok(SystemInfo {
            uri: odata_id(&v).unwrap_or_else(|| uri.to_string()),
            id: text(&v, "Id").unwrap_or_default(),
            uuid: text(&v, "UUID"),
            serial: text(&v, "SerialNumber"),
            hostname: text(&v, "HostName"),
            manufacturer: text(&v, "Manufacturer"),
            model: text(&v, "Model"),
            power,
            reset_target: text(&reset, "target"),
            allowed,
            action_info: text(&reset, "@Redfish.ActionInfo"),
        })
    }

    /// The system the selector names; several candidates and no selector
    /// is an error listing them.
    pub async fn select(&self, selector: &SystemSelector) -> Result<SystemInfo, RedfishError> {
        if let SystemSelector::Uri(uri) = selector {
            return self.system(uri).await;
        }
        // An id (and on many BMCs a UUID) is the last path segment: try the
        // one GET before reading the whole collection.
        if let SystemSelector::Id(v) | SystemSelector::Uuid(v) = selector {
            let direct = format!("{}/{}", self.systems_uri(), v);
            if let Ok(sys) = self.system(&direct).await {
                let hit = match selector {
                    SystemSelector::Id(id) => sys.id == *id,
                    _ => sys
                        .uuid
                        .as_deref()
                        .is_some_and(|u| u.eq_ignore_ascii_case(v)),
                };
                if hit {
                    return Ok(sys);
                }
            }
        }
        let all = self.systems().await?;
        let describe = |s: &SystemInfo| {
            format!(
                "{} (id {}, uuid {}, serial {}, hostname {})",
                s.uri,
                s.id,
                s.uuid.as_deref().unwrap_or("-"),
                s.serial.as_deref().unwrap_or("-"),
                s.hostname.as_deref().unwrap_or("-")
            )
        };
        let eq =
            |a: &Option<String>, b: &str| a.as_deref().is_some_and(|x| x.eq_ignore_ascii_case(b));
        let found: Vec<&SystemInfo> = match selector {
            SystemSelector::Only => all.iter().collect(),
            SystemSelector::Id(id) => all.iter().filter(|s| s.id == *id).collect(),
            SystemSelector::Uuid(u) => all.iter().filter(|s| eq(&s.uuid, u)).collect(),
            SystemSelector::Serial(n) => all.iter().filter(|s| eq(&s.serial, n)).collect(),
            SystemSelector::HostName(h) => all.iter().filter(|s| eq(&s.hostname, h)).collect(),
            SystemSelector::Uri(_) => Vec::new(),
        };
        match found.as_slice() {
            [one] => Ok((*one).clone()),
            [] if all.is_empty() => Err(RedfishError::System {
                bmc: self.http.bmc.clone(),
                detail: "the BMC lists no ComputerSystem".into(),
            }),
            [] => Err(RedfishError::System {
                bmc: self.http.bmc.clone(),
                detail: format!(
                    "no system matches {selector:?}; the BMC has: {}",
                    all.iter().map(describe).collect::<Vec<_>>().join("; ")
                ),
            }),
            several => Err(RedfishError::System {
                bmc: self.http.bmc.clone(),
                detail: format!(
                    "{} systems and nothing says which one to fence: set systems_uri (or the device's system = \"id:...\" / \"uuid:...\"); the BMC has: {}",
                    several.len(),
                    several.iter().map(|s| describe(s)).collect::<Vec<_>>().join("; ")
                ),
            }),
        }
    }

    /// Allowed reset types: AllowableValues, else the ActionInfo's.
    pub async fn allowed_resets(&self, sys: &SystemInfo) -> Option<Vec<String>> {
        if let Some(a) = &sys.allowed {
            return Some(a.clone());
        }
        let info = self.get(sys.action_info.as_deref()?).await.ok()?;
        info.get("Parameters")?
            .as_array()?
            .iter()
            .find(|p| p.get("Name").and_then(Value::as_str) == Some("ResetType"))?
            .get("AllowableValues")?
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
    }

    /// POST a reset, trying `candidates` in order among those the BMC
    /// allows; a 400 for one type moves to the next. A 202 is followed to
    /// the end of its task. Returns the reset type that was accepted.
    pub async fn reset(
        &self,
        sys: &SystemInfo,
        candidates: &[String],
        deadline: Instant,
    ) -> Result<String, RedfishError> {
        let bmc = self.http.bmc.clone();
        let target = sys
            .reset_target
            .clone()
            .unwrap_or_else(|| format!("{}/Actions/ComputerSystem.Reset", sys.uri));
        let allowed = self.allowed_resets(sys).await;
        let usable: Vec<&String> = candidates
            .iter()
            .filter(|c| allowed.as_ref().is_none_or(|a| a.iter().any(|x| x == *c)))
            .collect();
        if usable.is_empty() {
            return Err(RedfishError::Reset {
                bmc,
                detail: format!(
                    "the system allows reset types {:?}, none of {:?}; set the device's profile or reset types",
                    allowed.unwrap_or_default(),
                    candidates
                ),
            });
        }
        let mut refused = Vec::new();
        for rt in usable {
            let r = tokio::time::timeout_at(
                deadline,
                self.request(Method::POST, &target, Some(&json!({"ResetType": rt}))),
            )
            .await
            .map_err(|_| RedfishError::Timeout {
                bmc: bmc.clone(),
                what: format!("POST {target} ResetType {rt}"),
                after: self.http.timeout,
            })??;
            match r.status {
                StatusCode::ACCEPTED => {
                    self.follow_task(r.location.as_deref(), deadline).await?;
                    return Ok(rt.clone());
                }
                s if s.is_success() => return Ok(rt.clone()),
                StatusCode::BAD_REQUEST => {
                    warn!(bmc = %bmc, reset_type = %rt, "reset type refused (HTTP 400); trying the next one");
                    refused.push(format!("{rt}: HTTP 400: {}", error_message(&r.body)));
                }
                s => {
                    return Err(RedfishError::Http {
                        bmc,
                        method: "POST".into(),
                        path: format!("{target} (ResetType {rt})"),
                        status: s.as_u16(),
                        message: error_message(&r.body),
                    })
                }
            }
        }
        Err(RedfishError::Reset {
            bmc,
            detail: format!("every reset type was refused: {}", refused.join("; ")),
        })
    }

    /// Poll a task monitor until the task ends; an exception is an error.
    async fn follow_task(
        &self,
        monitor: Option<&str>,
        deadline: Instant,
    ) -> Result<(), RedfishError> {
        let Some(monitor) = monitor else {
            return Ok(()); // 202 without a monitor: nothing to follow; the read-back decides.
        };
        loop {
            let r = tokio::time::timeout_at(deadline, self.request(Method::GET, monitor, None))
                .await
                .map_err(|_| RedfishError::Timeout {
                    bmc: self.http.bmc.clone(),
                    what: format!("task {monitor}"),
                    after: self.http.timeout,
                })??;
            let v: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
            let state = v.get("TaskState").and_then(Value::as_str).unwrap_or("");
            match (r.status, state) {
                (_, "Exception" | "Killed" | "Cancelled") => {
                    return Err(RedfishError::Reset {
                        bmc: self.http.bmc.clone(),
                        detail: format!(
                            "task {monitor} ended in {state}: {}",
                            error_message(&r.body)
                        ),
                    })
                }
                (_, "Completed") => return Ok(()),
                (StatusCode::ACCEPTED, _) => {}
                (s, _) if s.is_success() && state.is_empty() => return Ok(()),
                (s, _) if s.is_success() => {}
                (s, _) => {
                    return Err(RedfishError::Http {
                        bmc: self.http.bmc.clone(),
                        method: "GET".into(),
                        path: monitor.to_string(),
                        status: s.as_u16(),
                        message: error_message(&r.body),
                    })
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Delete the session (token auth); errors are logged, not returned.
    pub async fn logout(mut self) {
        self.logged_out = true;
        if let Auth::Token {
            session: Some(uri), ..
        } = &self.auth
        {
            match self.http.raw(Method::DELETE, uri, None, &self.auth).await {
                Ok(r) if r.status.is_success() => {
                    debug!(bmc = %self.http.bmc, "Redfish session deleted")
                }
                Ok(r) => {
                    warn!(bmc = %self.http.bmc, status = r.status.as_u16(), "could not delete the Redfish session")
                }
                Err(e) => {
                    warn!(bmc = %self.http.bmc, cause = %e, "could not delete the Redfish session")
                }
            }
        }
    }
}

impl Drop for Session {
    /// A session dropped without logout (cancelled) is deleted in the background.
    fn drop(&mut self) {
        if self.logged_out {
            return;
        }
        if let (
            Auth::Token {
                session: Some(uri), ..
            },
            Ok(handle),
        ) = (&self.auth, tokio::runtime::Handle::try_current())
        {
            let http = self.http.clone();
            let auth = self.auth.clone();
            let uri = uri.clone();
            handle.spawn(async move {
                let _ = http.raw(Method::DELETE, &uri, None, &auth).await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors() {
        assert_eq!(SystemSelector::parse(""), SystemSelector::Only);
        assert_eq!(
            SystemSelector::parse("/redfish/v1/Systems/1"),
            SystemSelector::Uri("/redfish/v1/Systems/1".into())
        );
        assert_eq!(
            SystemSelector::parse("uuid:abc"),
            SystemSelector::Uuid("abc".into())
        );
        assert_eq!(SystemSelector::parse("1"), SystemSelector::Id("1".into()));
    }

    #[test]
    fn redfish_error_bodies() {
        let b = r#"{"error":{"code":"Base.1.0.GeneralError","message":"A general error has occurred.","@Message.ExtendedInfo":[{"Message":"The value ForceRestart for ResetType is not supported."}]}}"#;
        assert_eq!(
            error_message(b),
            "A general error has occurred.; The value ForceRestart for ResetType is not supported."
        );
        assert_eq!(error_message(""), "(empty body)");
    }
}
