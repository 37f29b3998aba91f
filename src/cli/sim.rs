//! `ironfence sim ...`: run a simulator in the foreground, for labs and
//! tests that drive real clients (`ipmitool`, `fence_ipmilan`) against it.
//!
//! `ironfence sim ipmi --listen 127.0.0.1:6230 --user admin:secret` prints
//! one line when it is ready (`ipmi sim listening on ...`), answers until
//! SIGTERM or SIGINT, then prints what it did on stderr and exits 0.
//!
//! `ironfence sim redfish --listen 127.0.0.1:8443 --systems 3` does the same
//! for a simulated Redfish BMC (HTTPS with a generated certificate unless
//! told otherwise; `redfish sim listening on https://... fingerprint ...`).

use crate::exit;
use crate::secret::Secret;
use crate::sim::ipmi::{
    describe, BmcKey, IpmiFault, IpmiSimConfig, IpmiSimServer, SimUser, DEFAULT_SUITES,
};
use crate::sim::redfish::{
    self, AuthMode, RedfishFault, RedfishSimConfig, RedfishSimServer, RedfishUser, ResetType,
    TlsMode, Vendor,
};
use clap::{Args, Subcommand, ValueEnum};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Subcommand, Debug, Clone)]
pub enum SimCommand {
    /// A simulated IPMI BMC (RMCP+, IPMI v2.0 over LAN) on UDP: one machine,
    /// cipher suites 3 and 17 by default, optional faults.
    Ipmi(IpmiArgs),
    /// A simulated Redfish BMC on HTTPS (HTTP with --http): several
    /// systems, sessions and Basic auth, vendor personalities, optional faults.
    Redfish(RedfishArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PowerArg {
    On,
    Off,
}

#[derive(Args, Debug, Clone)]
pub struct IpmiArgs {
    /// UDP address to answer on, e.g. 127.0.0.1:6230 (port 0: any free port).
    #[arg(long)]
    listen: SocketAddr,
    /// A user, NAME:PASSWORD[:administrator|operator|user] (repeatable;
    /// default admin:secret:administrator).
    #[arg(long = "user", value_name = "NAME:PASSWORD[:PRIVILEGE]", value_parser = parse_user)]
    users: Vec<SimUser>,
    /// Cipher suites offered, comma separated, from 0,1,2,3,15,16,17
    /// (0, no authentication at all, only when named here).
    #[arg(long, value_delimiter = ',', default_values_t = DEFAULT_SUITES)]
    cipher: Vec<u8>,
    /// BMC key Kg, in hex (default: none; session keys come from the password).
    #[arg(long, value_name = "HEX", value_parser = parse_kg)]
    kg: Option<BmcKey>,
    /// Power state at start, unless the state file knows the machine.
    #[arg(long, value_enum, default_value = "on")]
    power: PowerArg,
    /// Keep the power state in this JSON file (shared with the sim agent).
    #[arg(long)]
    state_file: Option<PathBuf>,
    /// Name of the machine (its key in the state file).
    #[arg(long, default_value = "node")]
    name: String,
    /// none, drop:N (ignore every Nth datagram), silent, slow:MS, lie
    /// (accept power commands, do nothing), refuse (every login).
    #[arg(long, default_value = "none", value_parser = parse_fault)]
    fault: IpmiFault,
}

#[derive(Args, Debug, Clone)]
pub struct RedfishArgs {
    /// TCP address to answer on, e.g. 127.0.0.1:8443 (port 0: any free port).
    #[arg(long)]
    listen: SocketAddr,
    /// An account, NAME:PASSWORD (repeatable; default admin:secret).
    #[arg(long = "user", value_name = "NAME:PASSWORD", value_parser = parse_redfish_user)]
    users: Vec<RedfishUser>,
    /// How many systems (machines) the BMC manages, host names ctrl-0...
    #[arg(long, default_value_t = 1, conflicts_with = "host_names")]
    systems: usize,
    /// One system per host name instead (repeatable).
    #[arg(long = "host-name", value_name = "NAME")]
    host_names: Vec<String>,
    /// Personality: generic, dell (iDRAC9), hpe (iLO 5), openbmc (bmcweb):
    /// system ids, allowed reset types, answer shapes.
    #[arg(long, default_value = "generic", value_parser = parse_vendor)]
    vendor: Vendor,
    /// Reset types allowed, comma separated (default: the vendor's list).
    #[arg(long, value_delimiter = ',', value_parser = parse_reset_type)]
    allow: Vec<ResetType>,
    /// Plain HTTP instead of HTTPS.
    #[arg(long, conflicts_with_all = ["cert", "key", "cert_out"])]
    http: bool,
    /// PEM certificate (chain) to present instead of a generated one.
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// PEM private key of --cert.
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// Write the certificate presented (PEM) here before answering.
    #[arg(long)]
    cert_out: Option<PathBuf>,
    /// Keep power states in this JSON file, keyed by system id (shared with
    /// other simulators and the sim agent).
    #[arg(long)]
    state_file: Option<PathBuf>,
    /// Power of a system at start, unless the state file knows it.
    #[arg(long, value_enum, default_value = "on")]
    power: PowerArg,
    /// Credentials taken: basic, session (X-Auth-Token) or both.
    #[arg(long, default_value = "both", value_parser = parse_auth)]
    auth: AuthMode,
    /// none, bad-reset:TYPE, unauthorized, error, slow:MS, task:MS, lie,
    /// delay:MS (repeatable; several at once).
    #[arg(long = "fault", value_parser = parse_redfish_fault)]
    faults: Vec<RedfishFault>,
    /// How long a restart or power cycle keeps a machine off, in ms.
    #[arg(long, default_value_t = 1000)]
    cycle_off_ms: u64,
}

fn parse_redfish_user(s: &str) -> Result<RedfishUser, String> {
    RedfishUser::parse(s).map_err(|e| e.to_string())
}

fn parse_vendor(s: &str) -> Result<Vendor, String> {
    Vendor::parse(s).ok_or_else(|| format!("`{s}` is not one of generic, dell, hpe, openbmc"))
}

fn parse_auth(s: &str) -> Result<AuthMode, String> {
    AuthMode::parse(s).ok_or_else(|| format!("`{s}` is not one of basic, session, both"))
}

fn parse_reset_type(s: &str) -> Result<ResetType, String> {
    ResetType::parse(s).ok_or_else(|| {
        let all: Vec<&str> = ResetType::ALL.iter().map(|t| t.as_str()).collect();
        format!("`{s}` is not a ResetType ({})", all.join(", "))
    })
}

fn parse_redfish_fault(s: &str) -> Result<RedfishFault, String> {
    RedfishFault::parse(s).map_err(|e| e.to_string())
}

fn parse_user(s: &str) -> Result<SimUser, String> {
    SimUser::parse(s).map_err(|e| e.to_string())
}

fn parse_kg(s: &str) -> Result<BmcKey, String> {
    BmcKey::from_hex(s).map_err(|e| e.to_string())
}

fn parse_fault(s: &str) -> Result<IpmiFault, String> {
    IpmiFault::parse(s).map_err(|e| e.to_string())
}

/// Run `ironfence sim ...` until SIGTERM / SIGINT; returns the exit code.
pub async fn run(cmd: &SimCommand) -> u8 {
    match cmd {
        SimCommand::Ipmi(args) => run_ipmi(args.clone()).await,
        SimCommand::Redfish(args) => run_redfish(args.clone()).await,
    }
}

async fn run_ipmi(args: IpmiArgs) -> u8 {
    use tokio::signal::unix::{signal, SignalKind};
    let users = if args.users.is_empty() {
        vec![SimUser::new(
            "admin",
            "secret",
            crate::ipmi::Privilege::Administrator,
        )]
    } else {
        args.users
    };
    let mut cfg = IpmiSimConfig::new(args.listen, users);
    cfg.suites = args.cipher;
    cfg.kg = args.kg;
    cfg.initially_on = args.power == PowerArg::On;
    cfg.state_file = args.state_file;
    cfg.machine = args.name;
    cfg.fault = args.fault;
    if let Err(e) = cfg.validate() {
        eprintln!("ironfence: {e}");
        return exit::USAGE;
    }
    // Signal handlers first, so a SIGTERM right after the start line counts.
    let (mut term, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(t), Ok(i)) => (t, i),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("ironfence: cannot handle signals: {e}");
            return exit::ERROR;
        }
    };
    let server = match IpmiSimServer::start(cfg.clone()).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ironfence: {e}");
            return exit::ERROR;
        }
    };
    let line = describe(&cfg, server.local_addr());
    let mut stdout = std::io::stdout();
    if writeln!(stdout, "{line}")
        .and_then(|()| stdout.flush())
        .is_err()
    {
        // Nobody is reading; keep serving anyway.
        tracing::debug!("stdout is closed");
    }
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    let stats = server.stats();
    server.shutdown().await;
    eprintln!("ipmi sim stopped: {stats:?}");
    exit::OK
}

/// SIGTERM and SIGINT streams, made before anything starts so that a signal
/// right after the start line counts.
fn stop_signals() -> Result<(tokio::signal::unix::Signal, tokio::signal::unix::Signal), String> {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(t), Ok(i)) => Ok((t, i)),
        (Err(e), _) | (_, Err(e)) => Err(format!("cannot handle signals: {e}")),
    }
}

/// The --cert/--key files as PEM text.
fn read_tls_files(cert: &Path, key: &Path) -> Result<TlsMode, String> {
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
    };
    Ok(TlsMode::Pem {
        cert_pem: read(cert)?,
        key_pem: Secret::new(read(key)?),
    })
}

async fn run_redfish(args: RedfishArgs) -> u8 {
    let users = if args.users.is_empty() {
        vec![RedfishUser::new("admin", "secret")]
    } else {
        args.users
    };
    let mut cfg = RedfishSimConfig::new(args.listen, users).with_vendor(args.vendor, args.systems);
    if !args.host_names.is_empty() {
        cfg.systems = redfish::named_systems(args.vendor, &args.host_names);
    }
    if !args.allow.is_empty() {
        cfg.allowable = Some(args.allow);
    }
    cfg.tls = match (&args.cert, &args.key) {
        _ if args.http => TlsMode::Plain,
        (Some(cert), Some(key)) => match read_tls_files(cert, key) {
            Ok(tls) => tls,
            Err(e) => {
                eprintln!("ironfence: {e}");
                return exit::USAGE;
            }
        },
        _ => TlsMode::Generate,
    };
    cfg.auth = args.auth;
    cfg.state_file = args.state_file;
    cfg.initially_on = args.power == PowerArg::On;
    cfg.faults = args.faults;
    cfg.cycle_off = std::time::Duration::from_millis(args.cycle_off_ms);
    if let Err(e) = cfg.validate() {
        eprintln!("ironfence: {e}");
        return exit::USAGE;
    }
    let (mut term, mut int) = match stop_signals() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ironfence: {e}");
            return exit::ERROR;
        }
    };
    let server = match RedfishSimServer::start(cfg.clone()).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ironfence: {e}");
            return exit::ERROR;
        }
    };
    if let (Some(path), Some(pem)) = (&args.cert_out, server.cert_pem()) {
        if let Err(e) = std::fs::write(path, pem) {
            eprintln!(
                "ironfence: cannot write the certificate to {}: {e}",
                path.display()
            );
            server.shutdown().await;
            return exit::ERROR;
        }
    }
    let line = redfish::describe(&cfg, &server);
    let mut stdout = std::io::stdout();
    if writeln!(stdout, "{line}")
        .and_then(|()| stdout.flush())
        .is_err()
    {
        // Nobody is reading; keep serving anyway.
        tracing::debug!("stdout is closed");
    }
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    let stats = server.stats();
    server.shutdown().await;
    eprintln!("redfish sim stopped: {stats:?}");
    exit::OK
}
