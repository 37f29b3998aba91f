//! `ironfence sim ...`: run a simulator in the foreground, for labs and
//! tests that drive real clients (`ipmitool`, `fence_ipmilan`) against it.
//!
//! `ironfence sim ipmi --listen 127.0.0.1:6230 --user admin:secret` prints
//! one line when it is ready (`ipmi sim listening on ...`), answers until
//! SIGTERM or SIGINT, then prints what it did on stderr and exits 0.

use crate::exit;
use crate::sim::ipmi::{
    describe, BmcKey, IpmiFault, IpmiSimConfig, IpmiSimServer, SimUser, DEFAULT_SUITES,
};
use clap::{Args, Subcommand, ValueEnum};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Subcommand, Debug, Clone)]
pub enum SimCommand {
    /// A simulated IPMI BMC (RMCP+, IPMI v2.0 over LAN) on UDP: one machine,
    /// cipher suites 3 and 17 by default, optional faults.
    Ipmi(IpmiArgs),
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
