//! `ironfence resource ...` (crm_resource's verbs) and `ironfence node
//! standby|unstandby|maintenance` (crm_standby / crm_attribute's): each
//! change is checked by the daemon and multicast to the whole cluster.

use super::output::Printer;
use super::OutputFormat;
use crate::api::client;
use crate::api::protocol::{Reply, Request};
use crate::exit;
use crate::resources::message::AdminChange;
use clap::Subcommand;
use std::path::Path;
use std::time::Duration;

/// How long `restart` waits for the stop by default.
const RESTART_LIMIT: Duration = Duration::from_secs(120);

#[derive(Subcommand, Debug)]
pub enum ResourceCommand {
    /// Where each resource runs, its failcounts, blocked reasons, actions in flight.
    Status,
    /// Let RESOURCE run again (target role Started).
    Start { resource: String },
    /// Stop RESOURCE everywhere and keep it stopped (target role Stopped).
    Stop { resource: String },
    /// Stop RESOURCE, wait until it is stopped everywhere, start it again.
    Restart { resource: String },
    /// Prefer NODE for RESOURCE (an INFINITY location until `clear`).
    Move { resource: String, node: String },
    /// Keep RESOURCE off NODE (a -INFINITY location until `clear`).
    Ban { resource: String, node: String },
    /// Remove what `move` and `ban` added for RESOURCE.
    Clear { resource: String },
    /// Forget RESOURCE's failures (all resources without one), on --node or everywhere, and probe again.
    Cleanup {
        resource: Option<String>,
        #[arg(long)]
        node: Option<String>,
    },
}

/// `node standby|unstandby|maintenance`.
#[derive(Debug, Clone)]
pub enum NodeChange {
    Standby(Option<String>, bool),
    Maintenance(Option<String>, bool),
}

async fn send(socket: &Path, out: &Printer, change: AdminChange) -> u8 {
    match client::call(socket, &Request::ResourceAdmin { change }).await {
        Ok(reply) => out.reply(&reply),
        Err(e) => out.error(&e),
    }
}

/// This daemon's node, when a verb names none.
async fn this_node(socket: &Path) -> Result<String, crate::api::client::ClientError> {
    match client::call(socket, &Request::ClusterStatus { since: u64::MAX }).await? {
        Reply::ClusterStatus { status } => Ok(status.this_node),
        _ => Ok(String::new()),
    }
}

pub async fn node(change: NodeChange, socket: &Path, format: OutputFormat) -> u8 {
    let out = Printer::new(format);
    let (node, on, standby) = match change {
        NodeChange::Standby(n, on) => (n, on, true),
        NodeChange::Maintenance(n, on) => (n, on, false),
    };
    let node = match node {
        Some(n) => n,
        None => match this_node(socket).await {
            Ok(n) => n,
            Err(e) => return out.error(&e),
        },
    };
    let change = if standby {
        AdminChange::Standby { node, on }
    } else {
        AdminChange::Maintenance { node, on }
    };
    send(socket, &out, change).await
}

pub async fn run(
    cmd: &ResourceCommand,
    socket: &Path,
    format: OutputFormat,
    limit: Option<Duration>,
) -> u8 {
    let out = Printer::new(format);
    let change = match cmd {
        ResourceCommand::Status => {
            return match client::call(socket, &Request::ResourceStatus).await {
                Ok(reply) => out.reply(&reply),
                Err(e) => out.error(&e),
            }
        }
        ResourceCommand::Start { resource } => AdminChange::TargetRole {
            rsc: resource.clone(),
            started: true,
        },
        ResourceCommand::Stop { resource } => AdminChange::TargetRole {
            rsc: resource.clone(),
            started: false,
        },
        ResourceCommand::Restart { resource } => {
            return restart(socket, &out, resource, limit).await
        }
        ResourceCommand::Move { resource, node } => AdminChange::Move {
            rsc: resource.clone(),
            node: node.clone(),
        },
        ResourceCommand::Ban { resource, node } => AdminChange::Ban {
            rsc: resource.clone(),
            node: node.clone(),
        },
        ResourceCommand::Clear { resource } => AdminChange::Clear {
            rsc: resource.clone(),
        },
        ResourceCommand::Cleanup { resource, node } => AdminChange::Cleanup {
            rsc: resource.clone(),
            node: node.clone(),
        },
    };
    send(socket, &out, change).await
}

async fn restart(socket: &Path, out: &Printer, rsc: &str, limit: Option<Duration>) -> u8 {
    let stop = AdminChange::TargetRole {
        rsc: rsc.to_string(),
        started: false,
    };
    if let Err(e) = client::call(socket, &Request::ResourceAdmin { change: stop }).await {
        return out.error(&e);
    }
    let deadline = tokio::time::Instant::now() + limit.unwrap_or(RESTART_LIMIT);
    loop {
        match client::call(socket, &Request::ResourceStatus).await {
            Ok(Reply::Resources { status }) => {
                let running = status
                    .resources
                    .iter()
                    .filter(|r| r.id == rsc || r.parent.as_deref() == Some(rsc))
                    .any(|r| !r.on.is_empty() || !r.pending.is_empty());
                if !running {
                    break;
                }
            }
            Ok(other) => return out.reply(&other),
            Err(e) => return out.error(&e),
        }
        if tokio::time::Instant::now() >= deadline {
            eprintln!("ironfence: {rsc} did not stop in time; it stays stopped: `ironfence resource start {rsc}` lets it run again");
            return exit::ERROR;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let start = AdminChange::TargetRole {
        rsc: rsc.to_string(),
        started: true,
    };
    match client::call(socket, &Request::ResourceAdmin { change: start }).await {
        Ok(_) => {
            println!("{rsc} stopped everywhere and allowed to start again");
            exit::OK
        }
        Err(e) => out.error(&e),
    }
}
