//! Server side of the socket protocol: who may call (SO_PEERCRED), and
//! dispatch of each request to the fencer.

use super::protocol::{ApiError, ErrorKind, Reply, Request, Response, ValidateResult};
use crate::agent::metadata::AgentMetadata;
use crate::agent::{runner, spec, AgentAction};
use crate::cluster::runner::ClusterHandle;
use crate::cluster::ClusterStatus;
use crate::config::{self, LevelTarget};
use crate::fencer::{FenceRequest, Fencer};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;
use tracing::{debug, info, warn};

/// Longest request line accepted.
const MAX_REQUEST: u64 = 64 * 1024;
/// How long a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Who may use the socket besides root and the daemon's own user.
#[derive(Debug, Clone)]
pub struct Access {
    pub group: Option<(String, u32)>,
    pub own_uid: u32,
}

/// The socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Binding or preparing the socket failed.
    #[error("cannot listen on {path}: {detail}")]
    Listen { path: PathBuf, detail: String },
    /// Another daemon already serves this socket.
    #[error(
        "another ironfenced is already listening on {0}; stop it first or use another socket path"
    )]
    InUse(PathBuf),
}

/// Bind the socket: directory 0755, socket 0660 root:group. A stale socket
/// left by a crash is replaced; a live one is an error.
pub async fn bind(path: &Path, access: &Access) -> Result<UnixListener, ServerError> {
    let err = |detail: String| ServerError::Listen {
        path: path.to_path_buf(),
        detail,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
    }
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(ServerError::InUse(path.to_path_buf()));
        }
        std::fs::remove_file(path).map_err(|e| err(format!("cannot remove stale socket: {e}")))?;
    }
    let listener = UnixListener::bind(path).map_err(|e| err(e.to_string()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(|e| err(e.to_string()))?;
    if let Some((_, gid)) = &access.group {
        nix::unistd::chown(path, None, Some(nix::unistd::Gid::from_raw(*gid)))
            .map_err(|e| err(format!("cannot give the socket to group {gid}: {e}")))?;
    }
    Ok(listener)
}

/// Resolve `socket_group` to a gid.
pub fn access_for(group: Option<&str>) -> Access {
    Access {
        group: group.and_then(|g| {
            nix::unistd::Group::from_name(g)
                .ok()
                .flatten()
                .map(|gr| (g.to_string(), gr.gid.as_raw()))
        }),
        own_uid: nix::unistd::geteuid().as_raw(),
    }
}

fn supplementary_groups(pid: i32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("Groups:").map(|g| {
                    g.split_whitespace()
                        .filter_map(|x| x.parse().ok())
                        .collect()
                })
            })
        })
        .unwrap_or_default()
}

/// Whether the peer may use the API; `Err` says why not.
fn check_peer(stream: &UnixStream, access: &Access) -> Result<String, String> {
    let cred = stream
        .peer_cred()
        .map_err(|e| format!("cannot read peer credentials: {e}"))?;
    let uid = cred.uid();
    if uid == 0 || uid == access.own_uid {
        return Ok(format!("uid={uid}"));
    }
    if let Some((name, gid)) = &access.group {
        let in_group = cred.gid() == *gid
            || cred
                .pid()
                .map(|pid| supplementary_groups(pid).contains(gid))
                .unwrap_or(false);
        if in_group {
            return Ok(format!("uid={uid}"));
        }
        return Err(format!(
            "access denied: uid {uid} is neither root nor in group `{name}`; add the user to that group"
        ));
    }
    Err(format!(
        "access denied: uid {uid} is not root (no socket_group is configured; set daemon.socket_group to allow a group)"
    ))
}

/// Where the cluster verbs are answered.
#[derive(Clone)]
pub enum Cluster {
    /// No [cluster]: a fixed picture of the configured nodes.
    Static(Box<ClusterStatus>),
    Live(ClusterHandle),
}

/// What every connection may use.
#[derive(Clone)]
pub struct Context {
    /// The resource task, when resources are configured (with [cluster]).
    pub resources: Option<crate::node::resources::ResourcesHandle>,
    pub fencer: Fencer,
    pub access: Access,
    pub node: watch::Receiver<crate::node::status::NodeStatus>,
    pub cluster: Cluster,
}

/// Serve until `shutdown` turns true.
pub async fn serve(listener: UnixListener, ctx: Context, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = shutdown.changed() => {
                if *shutdown.borrow() { break; }
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let ctx = ctx.clone();
                    tokio::spawn(async move { connection(stream, ctx).await });
                }
                Err(e) => {
                    warn!(cause = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

async fn connection(stream: UnixStream, ctx: Context) {
    let who = check_peer(&stream, &ctx.access);
    let (read, mut write) = stream.into_split();
    let response = match who {
        Err(why) => {
            warn!(cause = %why, "refused a client");
            Response::Error(ApiError::new(ErrorKind::AccessDenied, why))
        }
        Ok(who) => {
            let mut line = String::new();
            let mut reader = BufReader::new(read.take(MAX_REQUEST));
            match tokio::time::timeout(READ_TIMEOUT, reader.read_line(&mut line)).await {
                Err(_) => Response::Error(ApiError::new(
                    ErrorKind::BadRequest,
                    "no request within 10 s",
                )),
                Ok(Err(e)) => Response::Error(ApiError::new(ErrorKind::BadRequest, e.to_string())),
                Ok(Ok(_)) => match serde_json::from_str::<Request>(&line) {
                    Err(e) => Response::Error(ApiError::new(
                        ErrorKind::BadRequest,
                        format!("unreadable request: {e}"),
                    )),
                    Ok(req) => {
                        debug!(client = %who, verb = req.verb(), "request");
                        let r = match req {
                            Request::NodeStatus => Ok(Reply::NodeStatus {
                                status: Box::new(ctx.node.borrow().clone()),
                            }),
                            Request::ClusterStatus { since } => {
                                cluster_status(&ctx.cluster, since).await
                            }
                            Request::ClusterLeave => {
                                if let Some(r) = &ctx.resources {
                                    info!(client = %who, "cluster leave: moving resources away first");
                                    r.drain(Duration::from_secs(120)).await;
                                }
                                cluster_leave(&ctx.cluster, &who).await
                            }
                            Request::ResourceStatus => resource_status(&ctx).await,
                            Request::ResourceAdmin { change } => {
                                resource_admin(&ctx, change, &who).await
                            }
                            Request::Fence { .. } | Request::Confirm { .. } => {
                                fence_in_cluster(&ctx, req, &who).await
                            }
                            req => handle(&ctx.fencer, req, &who).await,
                        };
                        match r {
                            Ok(r) => Response::Ok(r),
                            Err(e) => Response::Error(e),
                        }
                    }
                },
            }
        }
    };
    if let Ok(mut text) = serde_json::to_string(&response) {
        text.push('\n');
        let _ = write.write_all(text.as_bytes()).await;
    }
}

fn ours(agent: &str) -> Option<&str> {
    agent
        .strip_prefix("fence_ironfence_")
        .filter(|k| spec::KINDS.contains(k))
}

/// Metadata of one of our agents.
pub fn our_metadata(kind: &str) -> Option<AgentMetadata> {
    let params = spec::params_for(kind)?;
    let (short, long) = match kind {
        "sim" => (
            "Fence agent for ironfence's simulated BMC",
            "fence_ironfence_sim switches the power of machines simulated by ironfence (state in a JSON file). It can inject faults (slow, silent, refuses, lies) to test fencing topologies. Success is reported only after the power state was read back.",
        ),
        "ipmi" => (
            "Fence agent for IPMI (ironfence, drop-in for fence_ipmilan)",
            "fence_ironfence_ipmi powers machines off and on through their BMC over IPMI v2.0 (RMCP+, cipher suite 17 or 3), with its own protocol stack: no ipmitool, no fixed waits. It accepts fence_ipmilan's options with the same meaning. Success is reported only after the BMC reported the new power state on a read-back; every session is closed, also on error.",
        ),
        "redfish" => (
            "Fence agent for Redfish (ironfence, drop-in for fence_redfish)",
            "fence_ironfence_redfish powers machines off and on through their BMC's Redfish API, with TLS verification on by default (or a pinned certificate), SessionService login (deleted afterwards), reset types chosen from what the BMC allows and its vendor profile, HTTP status checked and 202 task monitors followed. It accepts fence_redfish's options with the same meaning. Success is reported only after PowerState was read back.",
        ),
        "sbd" => (
            "Fence agent for sbd (ironfence, drop-in for fence_sbd)",
            "fence_ironfence_sbd fences through a poison pill on 1 to 3 shared sbd disks (ClusterLabs sbd format), reading and writing them itself with O_DIRECT: no sbd binary, no fork per disk. The message is written to every disk at once and read back; a fence succeeds only when a majority of the disks took it and msgwait (from the disk headers) has elapsed, after which the node's own sbd has killed it or its watchdog has. It accepts fence_sbd's options with the same meaning; status off means a poison pill is waiting in the node's slot, as with fence_sbd.",
        ),
        _ => ("ironfence fence agent", "ironfence fence agent"),
    };
    Some(AgentMetadata::for_ours(
        &format!("fence_ironfence_{kind}"),
        short,
        long,
        &params,
    ))
}

async fn cluster_status(cluster: &Cluster, since: u64) -> Result<Reply, ApiError> {
    let status = match cluster {
        Cluster::Static(s) => s.clone(),
        Cluster::Live(h) => Box::new(h.status(since).await.ok_or_else(|| {
            ApiError::new(
                ErrorKind::Stopped,
                "the cluster membership has stopped (daemon shutting down)",
            )
        })?),
    };
    Ok(Reply::ClusterStatus { status })
}

async fn cluster_leave(cluster: &Cluster, who: &str) -> Result<Reply, ApiError> {
    match cluster {
        Cluster::Static(_) => Err(ApiError::new(
            ErrorKind::BadRequest,
            "this ironfenced is no cluster member ([cluster] is not configured): nothing to leave",
        )),
        Cluster::Live(h) => {
            info!(client = %who, "cluster leave requested");
            h.leave().await;
            Ok(Reply::Done {
                message: "left the cluster cleanly (announced, not fenced); ironfenced stops"
                    .into(),
            })
        }
    }
}

fn no_resources() -> ApiError {
    ApiError::new(
        ErrorKind::BadRequest,
        "this ironfenced manages no resources: add [[resource]] sections and [cluster] to its config",
    )
}

async fn resource_status(ctx: &Context) -> Result<Reply, ApiError> {
    let r = ctx.resources.as_ref().ok_or_else(no_resources)?;
    let status = r
        .status()
        .await
        .ok_or_else(|| ApiError::new(ErrorKind::Stopped, "the resource task has ended"))?;
    Ok(Reply::Resources {
        status: Box::new(status),
    })
}

/// Check that a change names known resources and nodes, then multicast it.
async fn resource_admin(
    ctx: &Context,
    change: crate::resources::message::AdminChange,
    who: &str,
) -> Result<Reply, ApiError> {
    use crate::resources::message::AdminChange as C;
    let r = ctx.resources.as_ref().ok_or_else(no_resources)?;
    let status = r
        .status()
        .await
        .ok_or_else(|| ApiError::new(ErrorKind::Stopped, "the resource task has ended"))?;
    let known_rsc = |id: &str| {
        status
            .resources
            .iter()
            .any(|x| x.id == id || x.parent.as_deref() == Some(id))
    };
    let nodes: Vec<String> = match &ctx.cluster {
        Cluster::Live(h) => h
            .status(u64::MAX)
            .await
            .map(|s| s.nodes.into_iter().map(|n| n.name).collect())
            .unwrap_or_default(),
        Cluster::Static(s) => s.nodes.iter().map(|n| n.name.clone()).collect(),
    };
    let (rsc, node) = match &change {
        C::Move { rsc, node } | C::Ban { rsc, node } => (Some(rsc.as_str()), Some(node.as_str())),
        C::Clear { rsc } | C::TargetRole { rsc, .. } => (Some(rsc.as_str()), None),
        C::Standby { node, .. } | C::Maintenance { node, .. } => (None, Some(node.as_str())),
        C::Cleanup { rsc, node } => (rsc.as_deref(), node.as_deref()),
    };
    if let Some(rsc) = rsc.filter(|r| !known_rsc(r)) {
        return Err(ApiError::new(
            ErrorKind::NoSuch,
            format!("no resource, group or clone `{rsc}` is configured (ironfence resource status lists them)"),
        ));
    }
    if let Some(node) = node.filter(|n| !nodes.iter().any(|x| x == n)) {
        return Err(ApiError::new(
            ErrorKind::NoSuch,
            format!("no node `{node}` is configured ([[node]] sections name them)"),
        ));
    }
    info!(client = %who, ?change, "resource change requested");
    let text = format!("{change:?}");
    r.admin(change).await;
    Ok(Reply::Done {
        message: format!("asked the cluster: {text}"),
    })
}

/// A human's fence or confirm: run it, then tell the cluster when it
/// proved a node down, covering the losses known when it started.
async fn fence_in_cluster(ctx: &Context, req: Request, who: &str) -> Result<Reply, ApiError> {
    let (target, action) = match &req {
        Request::Fence { target, action, .. } => (target.clone(), *action),
        Request::Confirm { target } => (target.clone(), crate::fencer::FenceAction::Off),
        _ => return handle(&ctx.fencer, req, who).await,
    };
    let Cluster::Live(cluster) = &ctx.cluster else {
        return handle(&ctx.fencer, req, who).await;
    };
    let covers = cluster.covers(&target).await;
    let started = crate::fencer::history::now_ms();
    let reply = handle(&ctx.fencer, req, who).await?;
    if let Reply::Fence { outcome } = &reply {
        if outcome.result.ok() && action != crate::fencer::FenceAction::On {
            cluster.announce(outcome, started, covers).await;
        }
    }
    Ok(reply)
}

async fn handle(fencer: &Fencer, req: Request, who: &str) -> Result<Reply, ApiError> {
    Ok(match req {
        Request::NodeStatus
        | Request::ClusterStatus { .. }
        | Request::ClusterLeave
        | Request::ResourceStatus
        | Request::ResourceAdmin { .. } => {
            return Err(ApiError::new(
                ErrorKind::BadRequest,
                "node and cluster status are answered by the connection",
            ))
        }
        Request::Ping => Reply::Pong {
            version: env!("CARGO_PKG_VERSION").to_string(),
        },
        Request::Fence {
            target,
            action,
            delay_ms,
            tolerance_ms,
            timeout_ms,
            force,
        } => {
            let bounded = |ms: u64| {
                let d = Duration::from_millis(ms);
                if d > config::MAX_DURATION {
                    Err(ApiError::new(
                        ErrorKind::BadRequest,
                        format!("{ms} ms is longer than the 7 days ironfence accepts"),
                    ))
                } else {
                    Ok(d)
                }
            };
            let mut r = FenceRequest::new(&target, action, &format!("cli:{who}"));
            r.delay = bounded(delay_ms)?;
            r.tolerance = bounded(tolerance_ms)?;
            r.timeout = timeout_ms.map(bounded).transpose()?;
            r.force = force;
            info!(node = %target, action = %action, client = %who, "fence requested");
            Reply::Fence {
                outcome: fencer.fence(r).await?,
            }
        }
        Request::Confirm { target } => {
            info!(node = %target, client = %who, "manual confirmation");
            Reply::Fence {
                outcome: fencer
                    .confirm(&target, &format!("operator ({who})"))
                    .await?,
            }
        }
        Request::Status { target } => Reply::Status {
            devices: fencer.status(&target).await?,
            target,
        },
        Request::Query { target } => Reply::Query {
            devices: fencer.query(&target).await?,
            target,
        },
        Request::Devices => Reply::Devices {
            devices: fencer.devices().await?,
        },
        Request::Agents => Reply::Agents {
            agents: agent_list(),
        },
        Request::Metadata { agent } => {
            let metadata = agent_metadata(&agent).await?;
            Reply::Metadata {
                xml: metadata.to_xml(),
                metadata,
            }
        }
        Request::Targets { device } => Reply::Targets {
            targets: fencer.targets(&device).await?,
            device,
        },
        Request::Monitor { device } => {
            fencer.monitor(&device).await?;
            Reply::Monitor { device }
        }
        Request::Validate { device } => {
            let names = match device {
                Some(d) => vec![d],
                None => fencer.device_names().await?,
            };
            let mut results = Vec::new();
            for d in names {
                let r = fencer.monitor(&d).await;
                if let Err(e @ crate::fencer::FencerError::NoSuchDevice(_)) = r {
                    return Err(e.into());
                }
                results.push(ValidateResult {
                    device: d,
                    ok: r.is_ok(),
                    error: r.err().map(|e| e.to_string()),
                });
            }
            Reply::Validate { results }
        }
        Request::History { target, verbose } => {
            let requests = fencer.history(target.as_deref()).await?;
            let mut records = Vec::new();
            if verbose {
                for r in &requests {
                    records.extend(fencer.records(r.request).await?);
                }
            }
            Reply::History { requests, records }
        }
        Request::Last { target } => Reply::Last {
            last: fencer.last(&target).await?,
            target,
        },
        Request::LevelAdd {
            index,
            target,
            devices,
        } => {
            let (nodes, devs) = fencer.names().await?;
            let raw = level_raw(index, &target, devices);
            let level = config::level_from_raw(
                raw,
                &nodes.into_iter().collect(),
                &devs.into_iter().collect(),
            )
            .map_err(|p| ApiError::from(crate::fencer::FencerError::Invalid(p)))?;
            let msg = format!(
                "level {} for {} registered (runtime only)",
                level.index, level.target
            );
            fencer.level_add(level).await?;
            Reply::Done { message: msg }
        }
        Request::LevelRemove { index, target } => {
            let t = if target.contains(':') || target.contains('=') {
                level_target_display(&target)
            } else {
                target
            };
            fencer.level_remove(index, &t).await?;
            Reply::Done {
                message: format!("level {index} for {t} removed"),
            }
        }
        Request::DeviceAdd {
            name,
            kind,
            options,
        } => {
            let (nodes, devs) = fencer.names().await?;
            if devs.contains(&name) {
                return Err(ApiError::new(
                    ErrorKind::BadRequest,
                    format!("device `{name}` already exists; remove it first"),
                ));
            }
            let nodes: BTreeSet<String> = nodes.into_iter().collect();
            let raw = config::raw_device_from_options(&name, &kind, &options)
                .map_err(|p| ApiError::from(crate::fencer::FencerError::Invalid(p)))?;
            let dev = config::device_from_raw(raw, &nodes)
                .map_err(|p| ApiError::from(crate::fencer::FencerError::Invalid(p)))?;
            fencer.device_add(dev).await?;
            Reply::Done {
                message: format!("device {name} registered (runtime only)"),
            }
        }
        Request::DeviceRemove { name } => {
            fencer.device_remove(&name).await?;
            Reply::Done {
                message: format!("device {name} removed"),
            }
        }
    })
}

/// `regex:PATTERN`, `attr:NAME=VALUE` or a node name, as levels are written on the CLI.
fn level_raw(index: u8, target: &str, devices: Vec<String>) -> config::raw::RawLevel {
    let mut raw = config::raw::RawLevel {
        index: index as i64,
        target: None,
        target_regex: None,
        target_attribute: None,
        devices,
    };
    if let Some(r) = target.strip_prefix("regex:") {
        raw.target_regex = Some(r.to_string());
    } else if let Some(a) = target.strip_prefix("attr:") {
        raw.target_attribute = Some(a.to_string());
    } else {
        raw.target = Some(target.to_string());
    }
    raw
}

fn level_target_display(target: &str) -> String {
    if let Some(r) = target.strip_prefix("regex:") {
        format!("regex:{r}")
    } else if let Some(a) = target.strip_prefix("attr:") {
        match a.split_once('=') {
            Some((n, v)) => LevelTarget::Attribute {
                name: n.trim().into(),
                value: v.trim().into(),
            }
            .to_string(),
            None => target.to_string(),
        }
    } else {
        target.to_string()
    }
}

/// Our agents, then the installed fence-agents.
pub fn agent_list() -> Vec<String> {
    let mut agents: Vec<String> = spec::KINDS
        .iter()
        .map(|k| format!("fence_ironfence_{k}"))
        .collect();
    agents.extend(
        runner::installed()
            .into_iter()
            .filter(|a| ours(a).is_none()),
    );
    agents
}

/// Metadata of an agent: ours from the spec tables, others by running them.
pub async fn agent_metadata(agent: &str) -> Result<AgentMetadata, ApiError> {
    if let Some(kind) = ours(agent) {
        return our_metadata(kind)
            .ok_or_else(|| ApiError::new(ErrorKind::NoSuch, format!("no agent {agent}")));
    }
    let path = runner::locate(agent).ok_or_else(|| {
        ApiError::new(
            ErrorKind::NoSuch,
            format!(
                "fence agent `{agent}` is not installed; `ironfence agents` lists those that are"
            ),
        )
    })?;
    let out = runner::run(runner::AgentCall {
        agent: &path,
        action: AgentAction::Metadata,
        params: &[],
        password: None,
        timeout: Duration::from_secs(20),
    })
    .await
    .map_err(|e| ApiError::new(ErrorKind::Failed, e.to_string()))?;
    AgentMetadata::parse(&out.stdout)
        .map_err(|e| ApiError::new(ErrorKind::Failed, format!("{agent}: {e}")))
}
