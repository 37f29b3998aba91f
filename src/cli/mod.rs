//! The `ironfence` command tree (clap), dispatch and exit codes.
//!
//! Daemon verbs go through [`crate::api::client`]; `config check`,
//! `agents`, `metadata`, `agent KIND` and `demo` work without a daemon.
//! Output is text for people or `--output json` for scripts; errors go to
//! stderr and the exit code says what kind of failure it was (see
//! [`crate::exit`]).

mod agent;
mod cluster;
mod demo;
mod output;
mod probe;
mod quorum;
mod resource;
mod sbd;
mod sim;
mod watchdog;

use crate::api::client::{self, ClientError};
use crate::api::protocol::{ErrorKind, Reply, Request};
use crate::config::{Config, ConfigError, DEFAULT_PATH, DEFAULT_SOCKET};
use crate::exit;
use crate::fencer::{FenceAction, FenceResult};
use clap::{Parser, Subcommand, ValueEnum};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

/// ironfence: fencing (STONITH) for bare-metal clusters.
#[derive(Parser, Debug)]
#[command(version, about, after_help = exit_help())]
pub struct Cli {
    /// Configuration file (for the socket path and `config check`).
    #[arg(long, short = 'c', global = true, env = "IRONFENCE_CONFIG")]
    config: Option<PathBuf>,
    /// Daemon socket (default: from the config, else /run/ironfence/ironfenced.sock).
    #[arg(long, global = true, env = "IRONFENCE_SOCKET")]
    socket: Option<PathBuf>,
    /// Output format.
    #[arg(long, short = 'O', global = true, value_enum, default_value = "text")]
    output: OutputFormat,
    /// Deadline of the whole operation, in seconds.
    #[arg(long, short = 't', global = true)]
    timeout: Option<f64>,
    /// Wait this many seconds before fencing.
    #[arg(long, global = true)]
    delay: Option<f64>,
    /// Succeed at once if the node was fenced within this many seconds.
    #[arg(long, global = true)]
    tolerance: Option<f64>,
    /// More log output on stderr.
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Fence NODE by power cycle (off, verified, then on) through the topology.
    Reboot {
        node: String,
        /// Bypass the fence-storm guard (humans only).
        #[arg(long)]
        force: bool,
    },
    /// Fence NODE by power off through the topology.
    Off {
        node: String,
        #[arg(long)]
        force: bool,
    },
    /// Power NODE on (unfence) through the topology.
    On { node: String },
    /// Declare NODE safely down (a human checked it); recorded as such.
    Confirm { node: String },
    /// Power state of NODE as every device able to fence it reads it.
    Status { node: String },
    /// Devices able to fence NODE, in topology order.
    Query { node: String },
    /// Registered devices.
    Devices,
    /// Installed fence agents (ours and fence-agents').
    Agents,
    /// Metadata XML of a fence agent.
    Metadata { agent: String },
    /// Nodes a device can fence.
    Targets { device: String },
    /// Check that a device is reachable and accepts the credentials.
    Monitor { device: String },
    /// Check every device (or one).
    Validate { device: Option<String> },
    /// Fencing history, of one node or all (`--verbose`: every step).
    History { node: Option<String> },
    /// The last time NODE was fenced.
    Last { node: String },
    /// Runtime changes to fencing levels.
    #[command(subcommand)]
    Level(LevelCommand),
    /// Runtime changes to devices.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Configuration tools.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Act as a ClusterLabs fence agent: `ironfence agent sim -o status -n node1`.
    #[command(disable_help_flag = true)]
    Agent {
        /// Agent kind (sim).
        kind: String,
        /// Fence agent options (or none: then read from stdin).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// A 3-controller cluster with simulated BMCs: a failure, a fence, the timeline.
    Demo,
    /// Ask a configured BMC what it is: vendor profile match, reset types, cipher suite (no daemon, no power change).
    Probe { device: String },
    /// Run a simulated BMC in the foreground (labs, interoperability tests).
    #[command(subcommand)]
    Sim(sim::SimCommand),
    /// sbd's disk verbs (no daemon): `ironfence sbd -d DEV [-1 N -4 N -n NAME] create|dump|list|allocate|message|ping`.
    Sbd(sbd::SbdArgs),
    /// This node's hardware watchdogs: `list` (reads sysfs, opens nothing), `test` (RESETS THE MACHINE).
    Watchdog(watchdog::WatchdogArgs),
    /// Quorum as the local corosync sees it: `status`, `watch` (needs the `corosync` build feature).
    Quorum(quorum::QuorumArgs),
    /// The node daemon's supervision: servants, watchdog, quorum.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Cluster membership and automatic fencing (crm_mon-like): `status`, `watch`, `leave`.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// Resources (crm_resource's verbs): `status`, `start`, `stop`, `restart`, `move`, `ban`, `clear`, `cleanup`.
    #[command(subcommand)]
    Resource(resource::ResourceCommand),
}

#[derive(Subcommand, Debug)]
enum NodeCommand {
    /// Servants, last feed, time to watchdog expiry, quorum (from ironfenced).
    Status,
    /// NODE (default: this one) runs no resources; what runs there moves away.
    Standby { node: Option<String> },
    /// NODE (default: this one) may run resources again.
    Unstandby { node: Option<String> },
    /// Leave NODE's resources alone (no actions there) until `--off`.
    Maintenance {
        node: Option<String>,
        #[arg(long)]
        off: bool,
    },
}

#[derive(Subcommand, Debug)]
enum LevelCommand {
    /// Add (or replace) level INDEX for TARGET (node, regex:PATTERN or attr:NAME=VALUE).
    Add {
        index: u8,
        target: String,
        #[arg(required = true)]
        devices: Vec<String>,
    },
    /// Remove level INDEX of TARGET.
    Remove { index: u8, target: String },
}

#[derive(Subcommand, Debug)]
enum DeviceCommand {
    /// Register a device: `device add bmc-1 --agent fence_ipmilan -o ip=10.0.0.5 -o host_list=node1`.
    Add {
        name: String,
        /// External fence agent (kind agent).
        #[arg(long, short = 'a', conflicts_with = "kind")]
        agent: Option<String>,
        /// Device kind when not an external agent (sim).
        #[arg(long)]
        kind: Option<String>,
        /// KEY=VALUE option (repeatable).
        #[arg(long = "option", short = 'o')]
        options: Vec<String>,
    },
    /// Unregister a device (not used by any level).
    Remove { name: String },
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Validate the configuration; list every problem with the key and a fix.
    Check,
}

fn exit_help() -> String {
    let mut s = String::from("Exit codes:\n");
    for (code, what) in exit::TABLE {
        s.push_str(&format!("  {code:>3}  {what}\n"));
    }
    s
}

/// Entry point of the `ironfence` binary.
pub fn main() -> ExitCode {
    // Agent mode is argv-compatible with fence-agents, not clap.
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("agent") {
        init_logging(0);
        return match args.get(2) {
            Some(kind) => ExitCode::from(agent::run(kind, &args[3..]) as u8),
            None => {
                eprintln!(
                    "usage: ironfence agent KIND [fence agent options]; kinds: {}",
                    crate::agent::spec::KINDS.join(", ")
                );
                ExitCode::from(crate::agent::exit::GENERIC_ERROR as u8)
            }
        };
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    // The demo prints its own timeline; its attempt warnings would only repeat it.
    if matches!(cli.command, Command::Demo) && cli.verbose == 0 {
        std::env::set_var(
            "IRONFENCE_LOG",
            std::env::var("IRONFENCE_LOG").unwrap_or_else(|_| "error".into()),
        );
    }
    init_logging(cli.verbose);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ironfence: cannot start the runtime: {e}");
            return ExitCode::from(exit::ERROR);
        }
    };
    ExitCode::from(rt.block_on(run(cli)))
}

fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = std::env::var("IRONFENCE_LOG").unwrap_or_else(|_| level.to_string());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}

fn secs(v: Option<f64>) -> Result<u64, String> {
    match v {
        None => Ok(0),
        Some(s) if s.is_finite() && s >= 0.0 && s <= crate::config::MAX_DURATION.as_secs_f64() => {
            Ok((s * 1000.0) as u64)
        }
        Some(s) => Err(format!("{s} is not a number of seconds from 0 to 604800")),
    }
}

/// The socket: --socket, else the config's, else the default.
fn socket(cli: &Cli) -> Result<PathBuf, ConfigError> {
    if let Some(s) = &cli.socket {
        return Ok(s.clone());
    }
    match &cli.config {
        Some(p) => Ok(Config::load(p)?.daemon.socket),
        None => {
            let p = PathBuf::from(DEFAULT_PATH);
            if p.exists() {
                Ok(Config::load(&p)?.daemon.socket)
            } else {
                Ok(PathBuf::from(DEFAULT_SOCKET))
            }
        }
    }
}

async fn run(cli: Cli) -> u8 {
    let out = output::Printer::new(cli.output);
    let request = match &cli.command {
        Command::Demo => return demo::run(cli.output).await,
        Command::Probe { device } => {
            let path = cli
                .config
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_PATH));
            return match Config::load(&path) {
                Ok(c) => probe::run(&c, device, cli.output).await,
                Err(e) => {
                    eprintln!("ironfence: {e}");
                    exit::ERROR
                }
            };
        }
        Command::Agent { .. } => return exit::USAGE, // handled in main()
        Command::Sim(cmd) => return sim::run(cmd).await,
        Command::Sbd(args) => return sbd::run(args).await,
        Command::Watchdog(args) => {
            let json = cli.output == OutputFormat::Json;
            return watchdog::execute(args, json);
        }
        Command::Quorum(args) => return quorum::run(args, cli.output).await,
        Command::Node(NodeCommand::Status) => Ok(Request::NodeStatus),
        Command::Node(c) => {
            let change = match c {
                NodeCommand::Standby { node } => resource::NodeChange::Standby(node.clone(), true),
                NodeCommand::Unstandby { node } => {
                    resource::NodeChange::Standby(node.clone(), false)
                }
                NodeCommand::Maintenance { node, off } => {
                    resource::NodeChange::Maintenance(node.clone(), !off)
                }
                NodeCommand::Status => return exit::USAGE,
            };
            return match socket(&cli) {
                Ok(s) => resource::node(change, &s, cli.output).await,
                Err(e) => {
                    eprintln!("ironfence: {e}");
                    exit::ERROR
                }
            };
        }
        Command::Resource(cmd) => {
            let limit = cli
                .timeout
                .and_then(|_| secs(cli.timeout).ok())
                .map(std::time::Duration::from_millis);
            return match socket(&cli) {
                Ok(s) => resource::run(cmd, &s, cli.output, limit).await,
                Err(e) => {
                    eprintln!("ironfence: {e}");
                    exit::ERROR
                }
            };
        }
        Command::Cluster(cmd) => {
            let limit = match cli.timeout {
                None => None,
                Some(_) => match secs(cli.timeout) {
                    Ok(ms) => Some(std::time::Duration::from_millis(ms)),
                    Err(msg) => {
                        eprintln!("ironfence: {msg}");
                        return exit::USAGE;
                    }
                },
            };
            return match socket(&cli) {
                Ok(s) => cluster::run(cmd, &s, cli.output, limit).await,
                Err(e) => {
                    eprintln!("ironfence: {e}");
                    exit::ERROR
                }
            };
        }
        Command::Config(ConfigCommand::Check) => {
            let path = cli
                .config
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_PATH));
            return out.config_check(&path, Config::load_checked(&path));
        }
        Command::Agents => {
            return out.reply(&Reply::Agents {
                agents: crate::api::server::agent_list(),
            })
        }
        Command::Metadata { agent } => {
            return match crate::api::server::agent_metadata(agent).await {
                Ok(metadata) => out.reply(&Reply::Metadata {
                    xml: metadata.to_xml(),
                    metadata,
                }),
                Err(e) => out.error(&ClientError::Api(e)),
            }
        }
        Command::Reboot { node, force } => fence(&cli, node, FenceAction::Reboot, *force),
        Command::Off { node, force } => fence(&cli, node, FenceAction::Off, *force),
        Command::On { node } => fence(&cli, node, FenceAction::On, false),
        Command::Confirm { node } => Ok(Request::Confirm {
            target: node.clone(),
        }),
        Command::Status { node } => Ok(Request::Status {
            target: node.clone(),
        }),
        Command::Query { node } => Ok(Request::Query {
            target: node.clone(),
        }),
        Command::Devices => Ok(Request::Devices),
        Command::Targets { device } => Ok(Request::Targets {
            device: device.clone(),
        }),
        Command::Monitor { device } => Ok(Request::Monitor {
            device: device.clone(),
        }),
        Command::Validate { device } => Ok(Request::Validate {
            device: device.clone(),
        }),
        Command::History { node } => Ok(Request::History {
            target: node.clone(),
            verbose: cli.verbose > 0,
        }),
        Command::Last { node } => Ok(Request::Last {
            target: node.clone(),
        }),
        Command::Level(LevelCommand::Add {
            index,
            target,
            devices,
        }) => Ok(Request::LevelAdd {
            index: *index,
            target: target.clone(),
            devices: devices.clone(),
        }),
        Command::Level(LevelCommand::Remove { index, target }) => Ok(Request::LevelRemove {
            index: *index,
            target: target.clone(),
        }),
        Command::Device(DeviceCommand::Add {
            name,
            agent,
            kind,
            options,
        }) => device_add(name, agent.as_deref(), kind.as_deref(), options),
        Command::Device(DeviceCommand::Remove { name }) => {
            Ok(Request::DeviceRemove { name: name.clone() })
        }
    };
    let request = match request {
        Ok(r) => r,
        Err(msg) => {
            eprintln!("ironfence: {msg}");
            return exit::USAGE;
        }
    };
    let socket = match socket(&cli) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ironfence: {e}");
            return exit::ERROR;
        }
    };
    match client::call(&socket, &request).await {
        Ok(reply) => out.reply(&reply),
        Err(e) => out.error(&e),
    }
}

fn fence(cli: &Cli, node: &str, action: FenceAction, force: bool) -> Result<Request, String> {
    Ok(Request::Fence {
        target: node.to_string(),
        action,
        delay_ms: secs(cli.delay)?,
        tolerance_ms: secs(cli.tolerance)?,
        timeout_ms: match cli.timeout {
            None => None,
            Some(_) => Some(secs(cli.timeout)?),
        },
        force,
    })
}

fn device_add(
    name: &str,
    agent: Option<&str>,
    kind: Option<&str>,
    options: &[String],
) -> Result<Request, String> {
    let mut map = BTreeMap::new();
    for o in options {
        let (k, v) = o
            .split_once('=')
            .ok_or_else(|| format!("option `{o}` is not KEY=VALUE"))?;
        map.insert(k.trim().to_string(), v.to_string());
    }
    let kind = match (agent, kind) {
        (Some(a), _) => {
            map.insert("agent".into(), a.to_string());
            "agent".to_string()
        }
        (None, Some(k)) => k.to_string(),
        (None, None) => return Err("device add needs --agent AGENT or --kind KIND".into()),
    };
    Ok(Request::DeviceAdd {
        name: name.to_string(),
        kind,
        options: map,
    })
}

/// Exit code for a daemon/client error.
fn error_code(e: &ClientError) -> u8 {
    match e {
        ClientError::Connect { .. }
        | ClientError::Permission { .. }
        | ClientError::Protocol { .. } => exit::DAEMON_UNREACHABLE,
        ClientError::Api(api) => match api.kind {
            ErrorKind::AccessDenied | ErrorKind::Stopped => exit::DAEMON_UNREACHABLE,
            ErrorKind::NoSuch => exit::NO_SUCH,
            ErrorKind::Timeout => exit::TIMEOUT,
            ErrorKind::BadRequest => exit::USAGE,
            ErrorKind::Failed => exit::ERROR,
        },
    }
}

/// Exit code for a fence outcome.
fn outcome_code(r: FenceResult) -> u8 {
    match r {
        r if r.ok() => exit::OK,
        FenceResult::TimedOut => exit::TIMEOUT,
        _ => exit::ERROR,
    }
}
