//! OpenStack's sushy-tools Redfish emulator (`sushy-emulator`, fake systems
//! driver) as a test peer: the BMC our Redfish client is tested against.
//!
//! [`SushyEmulator::start`] runs one on 127.0.0.1 with HTTPS (a certificate
//! generated for 127.0.0.1 / localhost, usable as the CA), HTTP Basic auth
//! [`SUSHY_USER`]/[`SUSHY_PASSWORD`], N fake systems powered on, and a fresh
//! state dir, started by PID from the lab venv's python through
//! `tests/lab/sushy/sushy_emulator_lab.py`, and stopped by PID when dropped.
//!
//! Facts about sushy-tools 2.2.0 this relies on (read in its source and
//! measured, Debian 12, Python 3.11):
//! - Configuration is a Python file (`--config`, Flask `from_pyfile`):
//!   `SUSHY_EMULATOR_LISTEN_IP/_PORT`, `_SSL_CERT/_SSL_KEY` (both needed for
//!   HTTPS), `_AUTH_FILE`, `_STATE_DIR`, `_FAKE_DRIVER = True`,
//!   `_FAKE_SYSTEMS = [{uuid, name, power_state, external_notifier, nics}]`,
//!   `_DISABLE_POWER_OFF = True` (then ForceOff and GracefulShutdown get a
//!   400 "Can not request power off transition"; only the literal `True`
//!   counts). The environment variable `SUSHY_EMULATOR_CONFIG` names a config
//!   too (read when the module is imported), so the harness removes it.
//! - HTTPS is TLS 1.2 only (`ssl.PROTOCOL_TLSv1_2`): clients need TLS 1.2.
//! - The auth file is an Apache htpasswd whose hashes must be bcrypt
//!   (`$2b$`, `$2a$` or `$2y$`); anything else fails at start. Wrong or
//!   missing credentials: 401 with `WWW-Authenticate: Basic` and a JSON error.
//!   `/redfish`, `/redfish/v1` are open. There is no SessionService: clients
//!   must use Basic auth (no X-Auth-Token).
//! - Systems are addressed by UUID (`/redfish/v1/Systems/{uuid}`); a name
//!   gets a 307 redirect to the UUID. `Name` is the configured name.
//! - The fake driver applies a power change `random.randint(1, 11)` seconds
//!   after the POST (`apply_time = int(now) + delay`), lazily on the next
//!   GET; the wrapper pins that delay ([`PowerDelay::Fixed`]). ForceRestart /
//!   GracefulRestart set Off at once and On at the apply time. `Nmi` and
//!   `PushPowerButton` get a 501 (though `Nmi` is in AllowableValues).
//!   Success is 204 with no body.
//! - State (power, pending transitions) persists in sqlite under
//!   `SUSHY_EMULATOR_STATE_DIR`; the configured `power_state` applies only
//!   to systems the state dir does not know yet, so every instance gets a
//!   fresh dir.

use super::{free_tcp_port, LOOPBACK};
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// The one user of every emulator.
pub const SUSHY_USER: &str = "admin";
/// Its password.
pub const SUSHY_PASSWORD: &str = "secret";
/// Where the lab venv lives unless `IRONFENCE_REDFISH_VENV` says otherwise
/// (made by tests/lab/redfish-venv.sh, which tests/lab/install.sh runs).
pub const DEFAULT_REDFISH_VENV: &str = "/opt/ironfence-lab/redfish-venv";

/// How long the emulator may take to answer its first request.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Fresh ports tried when a port turns out to be taken.
const START_ATTEMPTS: usize = 3;
/// Timeout of one HTTP request of the harness.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// When the fake driver applies a power change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerDelay {
    /// After exactly this many seconds (0: visible on the next GET; N:
    /// lands N-1..N s after the request, as sushy rounds the start down).
    Fixed(u32),
    /// sushy-tools' stock behaviour: a random 1..11 s per transition.
    Random,
}

/// What to start.
#[derive(Debug, Clone)]
pub struct SushyOptions {
    /// Number of fake systems (`ctrl-0`..).
    pub systems: usize,
    pub power_delay: PowerDelay,
    /// `SUSHY_EMULATOR_DISABLE_POWER_OFF = True`: ForceOff and
    /// GracefulShutdown are refused with 400.
    pub disable_power_off: bool,
    /// Power of every system at start.
    pub initially_on: bool,
}

impl SushyOptions {
    /// `systems` systems, all on, power changes visible at once.
    pub fn new(systems: usize) -> SushyOptions {
        SushyOptions {
            systems,
            power_delay: PowerDelay::Fixed(0),
            disable_power_off: false,
            initially_on: true,
        }
    }
}

/// One running sushy-emulator on `https://127.0.0.1:PORT`. Dropping it kills
/// it by PID; its temp dir (cert, key, htpasswd, config, state, log) goes too.
#[derive(Debug)]
pub struct SushyEmulator {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    ids: Vec<String>,
    names: Vec<String>,
    ca_pem: String,
}

/// The venv holding sushy-tools, or a panic naming the installer.
pub fn redfish_venv() -> PathBuf {
    let venv = std::env::var_os("IRONFENCE_REDFISH_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_REDFISH_VENV));
    let python = venv.join("bin/python");
    let has_emulator = venv.join("bin/sushy-emulator").is_file();
    if !python.is_file() || !has_emulator {
        panic!(
            "missing test peer 'sushy-tools' (venv {}: no bin/python or bin/sushy-emulator): \
             run tests/lab/install.sh (as root)",
            venv.display()
        );
    }
    venv
}

/// `tests/lab/sushy/NAME` of this package.
pub fn lab_file(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/lab/sushy")
        .join(name);
    assert!(path.is_file(), "missing {}", path.display());
    path
}

/// The id (UUID) of fake system `index`.
pub fn sushy_system_id(index: usize) -> String {
    format!("27946b59-9e44-4fa7-8e91-f3527a1e{index:04x}")
}

impl SushyEmulator {
    /// `systems` fake systems, all on; power changes land `power_delay_s`
    /// seconds after the request (0: at once). Panics (with the emulator's
    /// log) if it does not answer within 30 s.
    pub fn start(systems: usize, power_delay_s: u32) -> SushyEmulator {
        let mut opts = SushyOptions::new(systems);
        opts.power_delay = PowerDelay::Fixed(power_delay_s);
        Self::start_with(opts)
    }

    /// Start with every option spelled out.
    pub fn start_with(opts: SushyOptions) -> SushyEmulator {
        assert!(
            (1..=1000).contains(&opts.systems),
            "1 to 1000 systems, not {}",
            opts.systems
        );
        let venv = redfish_venv();
        let wrapper = lab_file("sushy_emulator_lab.py");
        let mut errors = Vec::new();
        for _ in 0..START_ATTEMPTS {
            let mut emu = match Self::spawn(&venv, &wrapper, &opts, free_tcp_port()) {
                Ok(emu) => emu,
                Err(e) => panic!("sushy-emulator: {e}"),
            };
            match emu.wait_ready() {
                Ok(()) => return emu,
                Err(why) => {
                    let log = emu.log();
                    let clash = log.contains("Address already in use");
                    errors.push(format!(
                        "port {}: {why}\n--- sushy-emulator log ---\n{log}",
                        emu.port
                    ));
                    drop(emu);
                    if !clash {
                        break;
                    }
                }
            }
        }
        panic!("sushy-emulator did not start:\n{}", errors.join("\n"));
    }

    fn spawn(
        venv: &Path,
        wrapper: &Path,
        opts: &SushyOptions,
        port: u16,
    ) -> Result<SushyEmulator, String> {
        let dir = tempfile::Builder::new()
            .prefix("ironfence-sushy-")
            .tempdir()
            .map_err(|e| format!("create temp dir: {e}"))?;
        let d = dir.path();
        let write = |name: &str, text: &str| {
            let path = d.join(name);
            fs::write(&path, text).map_err(|e| format!("write {}: {e}", path.display()))?;
            Ok::<PathBuf, String>(path)
        };
        let (cert_pem, key_pem) = self_signed_loopback_cert()?;
        let cert = write("cert.pem", &cert_pem)?;
        let key = write("key.pem", &key_pem)?;
        let htpasswd = d.join("htpasswd");
        let state = d.join("state");
        fs::create_dir(&state).map_err(|e| format!("create {}: {e}", state.display()))?;
        let ids: Vec<String> = (0..opts.systems).map(sushy_system_id).collect();
        let names: Vec<String> = (0..opts.systems).map(|i| format!("ctrl-{i}")).collect();
        let systems: Vec<String> = ids
            .iter()
            .zip(&names)
            .enumerate()
            .map(|(i, (id, name))| {
                format!(
                    "    {{'uuid': {}, 'name': {}, 'power_state': {}, 'external_notifier': False,\n     \
                     'nics': [{{'mac': '00:5c:52:31:{:02x}:{:02x}', 'ip': '127.0.0.1'}}]}},",
                    py_str(id),
                    py_str(name),
                    py_str(if opts.initially_on { "On" } else { "Off" }),
                    (i >> 8) & 0xff,
                    i & 0xff,
                )
            })
            .collect();
        let config = format!(
            "# generated by tests/support/sushy.rs\n\
             SUSHY_EMULATOR_LISTEN_IP = {ip}\n\
             SUSHY_EMULATOR_LISTEN_PORT = {port}\n\
             SUSHY_EMULATOR_SSL_CERT = {cert}\n\
             SUSHY_EMULATOR_SSL_KEY = {key}\n\
             SUSHY_EMULATOR_AUTH_FILE = {auth}\n\
             SUSHY_EMULATOR_STATE_DIR = {state}\n\
             SUSHY_EMULATOR_FAKE_DRIVER = True\n\
             SUSHY_EMULATOR_DISABLE_POWER_OFF = {disable}\n\
             SUSHY_EMULATOR_FAKE_SYSTEMS = [\n{systems}\n]\n",
            ip = py_str(LOOPBACK),
            cert = py_str(&path_str(&cert)?),
            key = py_str(&path_str(&key)?),
            auth = py_str(&path_str(&htpasswd)?),
            state = py_str(&path_str(&state)?),
            disable = if opts.disable_power_off {
                "True"
            } else {
                "False"
            },
            systems = systems.join("\n"),
        );
        let conf = write("emulator.conf", &config)?;
        let log = fs::File::create(d.join("emulator.log"))
            .map_err(|e| format!("create emulator.log: {e}"))?;
        let log2 = log
            .try_clone()
            .map_err(|e| format!("dup emulator.log: {e}"))?;
        let delay = match opts.power_delay {
            PowerDelay::Fixed(s) => s.to_string(),
            PowerDelay::Random => "random".to_string(),
        };
        let python = venv.join("bin/python");
        let child = Command::new(&python)
            .arg(wrapper)
            .arg("--htpasswd")
            .arg(&htpasswd)
            .args([SUSHY_USER, SUSHY_PASSWORD])
            .arg("--config")
            .arg(&conf)
            .env("SUSHY_FAKE_POWER_DELAY", delay)
            .env_remove("SUSHY_EMULATOR_CONFIG")
            .env("PYTHONUNBUFFERED", "1")
            .current_dir(d)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", python.display()))?;
        Ok(SushyEmulator {
            child,
            port,
            dir,
            ids,
            names,
            ca_pem: cert_pem,
        })
    }

    /// Wait until `GET /redfish/v1/` answers 200 over verified TLS.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut last = String::from("(never answered)");
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exited during start-up ({status})"));
            }
            if std::net::TcpStream::connect((LOOPBACK, self.port)).is_ok() {
                match self.request("GET", "/redfish/v1/", None, false) {
                    Ok((200, _)) => return Ok(()),
                    Ok((code, body)) => last = format!("HTTP {code}: {body}"),
                    Err(e) => last = e,
                }
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "no answer to GET /redfish/v1/ within {READY_TIMEOUT:?}; last: {last}"
                ));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `https://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        format!("https://{LOOPBACK}:{}", self.port)
    }

    /// The emulator's certificate (PEM file). It is self-signed for
    /// 127.0.0.1 and localhost, so it is also the CA to trust.
    pub fn ca_pem_path(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    /// The same certificate as PEM text.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Ids (UUIDs) of the systems, in the order configured.
    pub fn system_ids(&self) -> Vec<String> {
        self.ids.clone()
    }

    /// Their `Name`s (`ctrl-0`..).
    pub fn system_names(&self) -> Vec<String> {
        self.names.clone()
    }

    /// `/redfish/v1/Systems/{id}`.
    pub fn system_path(&self, id: &str) -> String {
        format!("/redfish/v1/Systems/{id}")
    }

    /// PID of the emulator process.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its temp dir (cert.pem, key.pem, htpasswd, emulator.conf, state/, emulator.log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What the emulator logged (Flask's request log included).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir().join("emulator.log")).unwrap_or_default()
    }

    /// `PowerState` of system `id` ("On" / "Off"), read with an
    /// authenticated GET. Panics if it cannot be read.
    pub fn power_state(&self, id: &str) -> String {
        let (code, body) = self.get_json(&self.system_path(id));
        assert_eq!(code, 200, "GET system {id}: {body}");
        body["PowerState"]
            .as_str()
            .unwrap_or_else(|| panic!("system {id} without PowerState: {body}"))
            .to_string()
    }

    /// Authenticated GET of `path`: status and JSON body (`Null` if none).
    pub fn get_json(&self, path: &str) -> (u16, Value) {
        let (code, text) = self
            .request("GET", path, None, true)
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        (code, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Authenticated POST of `body` to `path`: status and JSON body.
    pub fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let (code, text) = self
            .request("POST", path, Some(body.to_string()), true)
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        (code, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// `ComputerSystem.Reset` of system `id`; returns the HTTP status.
    pub fn reset(&self, id: &str, reset_type: &str) -> u16 {
        let path = format!("{}/Actions/ComputerSystem.Reset", self.system_path(id));
        self.post_json(&path, &serde_json::json!({ "ResetType": reset_type }))
            .0
    }

    /// One HTTPS request, verified against [`ca_pem`](Self::ca_pem), on its
    /// own thread and runtime (callable from sync and async tests alike).
    fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<String>,
        auth: bool,
    ) -> Result<(u16, String), String> {
        let url = format!("{}{path}", self.url());
        let ca = self.ca_pem.clone();
        let method = method.to_string();
        thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("tokio runtime: {e}"))?;
            rt.block_on(async move {
                let cert = reqwest::Certificate::from_pem(ca.as_bytes())
                    .map_err(|e| format!("CA: {e}"))?;
                let client = reqwest::Client::builder()
                    .use_rustls_tls()
                    .tls_built_in_root_certs(false)
                    .add_root_certificate(cert)
                    .no_proxy()
                    .timeout(HTTP_TIMEOUT)
                    .build()
                    .map_err(|e| format!("HTTP client: {e}"))?;
                let method = reqwest::Method::from_bytes(method.as_bytes())
                    .map_err(|e| format!("method: {e}"))?;
                let mut req = client.request(method, &url);
                if auth {
                    req = req.basic_auth(SUSHY_USER, Some(SUSHY_PASSWORD));
                }
                if let Some(body) = body {
                    req = req.header("content-type", "application/json").body(body);
                }
                let resp = req.send().await.map_err(|e| format!("{url}: {e:?}"))?;
                let code = resp.status().as_u16();
                let text = resp.text().await.map_err(|e| format!("{url}: {e}"))?;
                Ok((code, text))
            })
        })
        .join()
        .unwrap_or_else(|_| Err("request thread panicked".to_string()))
    }
}

impl Drop for SushyEmulator {
    fn drop(&mut self) {
        // by PID: SIGKILL, then reap (the Flask dev server has no children)
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A self-signed certificate and its PKCS#8 key (PEM) for 127.0.0.1 and
/// localhost: what a client uses as the CA of the emulator.
pub fn self_signed_loopback_cert() -> Result<(String, String), String> {
    let mut params =
        rcgen::CertificateParams::new(vec![LOOPBACK.to_string(), "localhost".to_string()])
            .map_err(|e| format!("certificate parameters: {e}"))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, LOOPBACK);
    let key = rcgen::KeyPair::generate().map_err(|e| format!("key pair: {e}"))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| format!("self-sign: {e}"))?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// `s` as a Python string literal.
fn py_str(s: &str) -> String {
    let mut out = String::from("'");
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

fn path_str(p: &Path) -> Result<String, String> {
    p.to_str()
        .map(str::to_string)
        .ok_or_else(|| format!("path {} is not UTF-8", p.display()))
}
