//! `ironfence cluster status|watch|leave`: the cluster as ironfenced sees
//! it (crm_mon-like), one line per change, and a clean leave.

use super::output::Printer;
use super::OutputFormat;
use crate::api::client;
use crate::api::protocol::{Reply, Request};
use crate::exit;
use clap::Subcommand;
use std::path::Path;
use std::time::Duration;

/// How often `watch` asks the daemon for new events.
const WATCH_POLL: Duration = Duration::from_millis(200);

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Nodes (online, offline, UNCLEAN, fenced at), quorum, coordinator, fencing in progress.
    Status,
    /// One line per change (joins, losses, fences, quorum, coordinator) until
    /// interrupted, or for --timeout seconds.
    Watch,
    /// Announce a clean leave, leave the cluster and stop ironfenced (it is not fenced).
    Leave,
}

pub async fn run(
    cmd: &ClusterCommand,
    socket: &Path,
    format: OutputFormat,
    limit: Option<Duration>,
) -> u8 {
    let out = Printer::new(format);
    match cmd {
        ClusterCommand::Status => {
            let code = match client::call(socket, &Request::ClusterStatus { since: 0 }).await {
                Ok(reply) => out.reply(&reply),
                Err(e) => return out.error(&e),
            };
            // crm_mon's resource view follows, where resources are managed
            if format == OutputFormat::Text {
                if let Ok(Reply::Resources { status }) =
                    client::call(socket, &Request::ResourceStatus).await
                {
                    print!("\n{}", status.text());
                }
            }
            code
        }
        ClusterCommand::Leave => match client::call(socket, &Request::ClusterLeave).await {
            Ok(reply) => out.reply(&reply),
            Err(e) => out.error(&e),
        },
        ClusterCommand::Watch => watch(socket, format, limit).await,
    }
}

async fn watch(socket: &Path, format: OutputFormat, limit: Option<Duration>) -> u8 {
    let out = Printer::new(format);
    let deadline = limit.map(|l| tokio::time::Instant::now() + l);
    let mut since: Option<u64> = None;
    loop {
        let req = Request::ClusterStatus {
            since: since.unwrap_or(u64::MAX),
        };
        let status = match client::call(socket, &req).await {
            Ok(Reply::ClusterStatus { status }) => status,
            Ok(other) => return out.reply(&other),
            Err(e) => return out.error(&e),
        };
        if since.is_none() && format == OutputFormat::Text {
            println!(
                "watching cluster {} from {} ({}, coordinator {}); one line per change",
                status.group,
                status.this_node,
                status.state,
                status.coordinator.as_deref().unwrap_or("none")
            );
        }
        for e in &status.events {
            match format {
                OutputFormat::Json => println!("{}", serde_json::to_string(e).unwrap_or_default()),
                OutputFormat::Text => println!("{}", e.line()),
            }
        }
        since = Some(status.last_seq);
        let now = tokio::time::Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            return exit::OK;
        }
        let wait = deadline.map_or(WATCH_POLL, |d| WATCH_POLL.min(d - now));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = tokio::signal::ctrl_c() => return exit::OK,
        }
    }
}
