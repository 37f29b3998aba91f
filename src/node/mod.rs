//! `ironfenced`, the node daemon: the fencer and its API socket; when the
//! config has `[cluster]`, the cluster member that fences lost members
//! ([`crate::cluster`]); and — when it has `[watchdog]`, `[sbd]` or
//! `[quorum]` — the inquisitor that feeds this node's watchdog only while
//! every servant is healthy, and self-fences on a poison pill, lost quorum
//! or a stall.
//!
//! ```text
//!  start:   fencer; cluster member (joins CPG: a failure stops the start);
//!           API socket; inquisitor (delay_start, servants, watchdog)
//!  SIGUSR1: one status line in the log (also `ironfence node status`)
//!  SIGTERM/SIGINT, `cluster leave` or an `exit` message: the cluster
//!           member announces its leave and leaves CPG (it is not fenced),
//!           servants stop, watchdog disarmed (magic close), in-flight
//!           fences recorded interrupted, socket removed
//!  self-fence: the process ends without disarming (exit code 3); also when
//!           the cluster declared this process lost or fenced while it runs
//!  refused: the cluster's config differs (sections named): leave, exit 1
//! ```

pub mod inquisitor;
pub mod resources;
pub mod self_fence;
pub mod status;

use crate::api::server::{self, Access};
use crate::cluster::runner::{self, ClusterHandle};
use crate::config::Config;
use crate::fencer::{Fencer, FencerError};
use crate::power::PowerDevice;
use inquisitor::Ending;
use status::NodeStatus;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tracing::{error, info, warn};

/// The daemon could not start, or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The fencer (history) could not start.
    #[error("{0}")]
    Fencer(#[from] FencerError),
    /// The socket could not be served.
    #[error("{0}")]
    Server(#[from] server::ServerError),
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    /// The watchdog cannot be used.
    #[error("{0}")]
    Watchdog(#[from] crate::watchdog::WatchdogError),
    /// Quorum cannot be watched.
    #[error("{0}")]
    Quorum(#[from] crate::quorum::QuorumError),
    /// Supervision could not start or go on.
    #[error("{0}")]
    Supervision(String),
    /// The resource manager could not start.
    #[error("{0}")]
    Resources(String),
    /// The cluster membership could not start, or refused this member.
    #[error("{0}")]
    Cluster(#[from] crate::cluster::ClusterError),
    /// This node fenced itself.
    #[error("this node fenced itself ({action}): {reason}")]
    SelfFenced { action: String, reason: String },
}

/// A running daemon (fencer + API + inquisitor), as the binary and the demo use it.
pub struct Daemon {
    pub fencer: Fencer,
    /// The latest node status.
    pub status: watch::Receiver<NodeStatus>,
    shutdown: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
    engine: tokio::task::JoinHandle<()>,
    inquisitor: Option<tokio::task::JoinHandle<Ending>>,
    cluster: ClusterTask,
    resources: Option<(resources::ResourcesHandle, tokio::task::JoinHandle<()>)>,
    socket: std::path::PathBuf,
}

impl Daemon {
    /// Start the fencer, serve the socket, and start supervising this node
    /// when the config asks for it.
    pub async fn start(
        config: &Config,
        overrides: HashMap<String, Arc<dyn PowerDevice>>,
    ) -> Result<Daemon, NodeError> {
        let local = &config.local;
        let self_fence = self_fence::from_config(&local.self_fence, &local.name);
        let (status_tx, status) = watch::channel(NodeStatus {
            node: local.name.clone(),
            state: if local.supervised() {
                "starting".into()
            } else {
                "off (no [watchdog], [sbd] or [quorum] configured)".into()
            },
            self_fence: self_fence.describe(),
            ..NodeStatus::default()
        });
        // Everything that can be refused is checked before anything runs.
        let timeout = crate::config::effective_timeout(local, config.disk_timeouts);
        let watchdog = match &local.watchdog {
            Some(w) => {
                let kind = w.kind;
                if kind.is_hardware() {
                    crate::watchdog::check_hardware_allowed(&w.device)?;
                    if !w.device.exists() {
                        return Err(crate::watchdog::WatchdogError::NoDevice {
                            device: w.device.display().to_string(),
                        }
                        .into());
                    }
                }
                Some((kind, w.device.clone()))
            }
            None => None,
        };
        let quorum = match &local.quorum {
            Some(_) => Some(crate::quorum::corosync_source()?),
            None => None,
        };

        // resources run under the cluster's coordination only
        let runs_resources = !config.resources.is_empty() && config.cluster.is_some();
        if runs_resources {
            // what systemd-tmpfiles does for resource-agents: the agents'
            // state files live there (HA_RSCTMP)
            let dir = &config.daemon.resource_tmp;
            std::fs::create_dir_all(dir).map_err(|e| {
                NodeError::Resources(format!(
                    "cannot create the agents' state directory {} ([daemon] resource_tmp): {e}",
                    dir.display()
                ))
            })?;
            // the agents' node attributes start empty, as after a reboot
            let store = attribute_store(config);
            std::env::current_exe()
                .and_then(|exe| store.reset(&exe))
                .map_err(|e| {
                    NodeError::Resources(format!(
                        "cannot set up the agents' attribute store {} (under [daemon] state_dir): {e}",
                        store.dir().display()
                    ))
                })?;
        }
        let (fencer, engine) = Fencer::start(config, overrides)?;
        let access: Access = server::access_for(config.daemon.socket_group.as_deref());
        let listener = server::bind(&config.daemon.socket, &access).await?;
        let (shutdown, rx) = watch::channel(false);
        let (feed_tx, feed_rx) = if runs_resources {
            let (t, r) = tokio::sync::mpsc::unbounded_channel();
            (Some(t), Some(r))
        } else {
            (None, None)
        };
        let cluster = match &config.cluster {
            Some(c) => {
                let parts = runner::Parts {
                    settings: c.clone(),
                    nodes: config
                        .nodes
                        .iter()
                        .filter_map(|n| n.id.map(|id| (n.name.clone(), id)))
                        .collect(),
                    sections: config.sections.clone(),
                    fencer: fencer.clone(),
                    interval: local.interval,
                    feed: feed_tx,
                };
                match runner::start(parts, rx.clone()).await {
                    Ok(c) => Some(c),
                    Err(e) => {
                        fencer.shutdown().await;
                        let _ = std::fs::remove_file(&config.daemon.socket);
                        return Err(e.into());
                    }
                }
            }
            None => None,
        };
        // resources run under the cluster's coordination only
        let resources = match (&cluster, feed_rx) {
            (Some((h, _)), Some(feed)) => {
                let parts = resources::Parts {
                    model: crate::resources::model::Model::new(
                        &config.resources,
                        config.nodes.len(),
                    ),
                    me: local.name.clone(),
                    nonce: h.nonce(),
                    cluster: h.clone(),
                    feed,
                    root: crate::resources::ocf::ocf_root(),
                    resource_tmp: config.daemon.resource_tmp.clone(),
                    agent_env: config.daemon.agent_env.clone(),
                    attributes: attribute_store(config),
                    attrs: config
                        .nodes
                        .iter()
                        .map(|n| (n.name.clone(), n.attributes.clone()))
                        .collect(),
                };
                Some(resources::start(parts, rx.clone()))
            }
            _ => None,
        };
        let ctx = server::Context {
            resources: resources.as_ref().map(|(h, _)| h.clone()),
            fencer: fencer.clone(),
            access,
            node: status.clone(),
            cluster: match &cluster {
                Some((h, _)) => server::Cluster::Live(h.clone()),
                None => server::Cluster::Static(Box::new(runner::static_status(
                    &local.name,
                    &config
                        .nodes
                        .iter()
                        .map(|n| (n.name.clone(), n.id))
                        .collect::<Vec<_>>(),
                ))),
            },
        };
        let server = tokio::spawn(server::serve(listener, ctx, rx.clone()));
        let inquisitor = if local.supervised() {
            let parts = inquisitor::Parts {
                local: local.clone(),
                disk: config.disk_timeouts,
                timeout,
                watchdog,
                self_fence,
                quorum,
                fencer: fencer.clone(),
                status: status_tx,
            };
            Some(tokio::spawn(inquisitor::run(parts, rx)))
        } else {
            None
        };
        info!(
            socket = %config.daemon.socket.display(),
            state_dir = %config.daemon.state_dir.display(),
            node = %local.name,
            devices = config.devices.len(),
            levels = config.levels.len(),
            supervised = local.supervised(),
            cluster = config.cluster.as_ref().map(|c| c.group.as_str()).unwrap_or("none"),
            watchdog_timeout = ?timeout,
            "ironfenced ready"
        );
        Ok(Daemon {
            fencer,
            status,
            shutdown,
            server,
            engine,
            inquisitor,
            cluster,
            resources,
            socket: config.daemon.socket.clone(),
        })
    }

    /// Wait until the inquisitor ends by itself (an `exit` message, a
    /// self-fence, a failure); never, when nothing is supervised.
    pub async fn supervision_ended(&mut self) -> Ending {
        inquisitor_ended(&mut self.inquisitor).await
    }

    /// Wait until the cluster task ends by itself (a leave, a refusal, a
    /// zombie verdict, a failure); never, without [cluster].
    pub async fn cluster_ended(&mut self) -> runner::Ending {
        cluster_ended(&mut self.cluster).await
    }

    /// Whichever ends first: supervision or the cluster member.
    pub async fn ended(&mut self) -> Ended {
        tokio::select! {
            e = inquisitor_ended(&mut self.inquisitor) => Ended::Supervision(e),
            c = cluster_ended(&mut self.cluster) => Ended::Cluster(c),
        }
    }

    /// The cluster member's handle, when [cluster] is configured.
    pub fn cluster(&self) -> Option<&ClusterHandle> {
        self.cluster.as_ref().map(|(h, _)| h)
    }

    /// Stop: servants stop and the watchdog is disarmed, then the socket
    /// closes, in-flight requests are recorded interrupted, the socket file
    /// goes. Returns how supervision ended (None: nothing was supervised).
    pub async fn stop(self) -> Option<Ending> {
        // Resources move away first (Pacemaker's shutdown): nothing may run
        // here once this member has left.
        if let Some((h, _)) = &self.resources {
            if !h.drain(DRAIN_LIMIT).await {
                warn!("resources still run here after {DRAIN_LIMIT:?}: leaving anyway; the cluster fences this node if a stop failed");
            }
        }
        let _ = self.shutdown.send(true);
        if let Some((_, h)) = self.resources {
            let _ = h.await;
        }
        // The cluster member announces its leave first (it is not fenced).
        if let Some((_, h)) = self.cluster {
            let _ = h.await;
        }
        let ending = match self.inquisitor {
            Some(h) => Some(
                h.await
                    .unwrap_or_else(|e| Ending::Failed(format!("the inquisitor panicked: {e}"))),
            ),
            None => None,
        };
        let _ = self.server.await;
        self.fencer.shutdown().await;
        let _ = self.engine.await;
        let _ = std::fs::remove_file(&self.socket);
        info!("ironfenced stopped");
        ending
    }
}

/// How long a stopping daemon waits for its resources to move away.
const DRAIN_LIMIT: std::time::Duration = std::time::Duration::from_secs(120);

/// What ended first in a running daemon.
pub enum Ended {
    Supervision(Ending),
    Cluster(runner::Ending),
}

async fn inquisitor_ended(h: &mut Option<tokio::task::JoinHandle<Ending>>) -> Ending {
    match h {
        Some(task) => {
            let r = task.await;
            *h = None;
            r.unwrap_or_else(|e| Ending::Failed(format!("the inquisitor panicked: {e}")))
        }
        None => std::future::pending().await,
    }
}

type ClusterTask = Option<(ClusterHandle, tokio::task::JoinHandle<runner::Ending>)>;

async fn cluster_ended(c: &mut ClusterTask) -> runner::Ending {
    match c {
        Some((_, task)) => {
            let r = task.await;
            *c = None;
            r.unwrap_or_else(|e| runner::Ending::Failed(format!("the cluster task panicked: {e}")))
        }
        None => std::future::pending().await,
    }
}

/// Run the daemon until SIGTERM/SIGINT, an `exit` message or a self-fence.
pub async fn run(config: Config) -> Result<(), NodeError> {
    let mut term = signal(SignalKind::terminate()).map_err(NodeError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(NodeError::Signals)?;
    let mut usr1 = signal(SignalKind::user_defined1()).map_err(NodeError::Signals)?;
    let mut daemon = Daemon::start(&config, HashMap::new()).await?;
    let ended = loop {
        tokio::select! {
            _ = term.recv() => { info!("SIGTERM: stopping"); break None; }
            _ = int.recv() => { info!("SIGINT: stopping"); break None; }
            _ = usr1.recv() => {
                info!(status = %daemon.status.borrow().line(), "status");
            }
            ended = daemon.ended() => match ended {
                Ended::Supervision(e) => break Some(e),
                Ended::Cluster(c) => match c {
                runner::Ending::Left | runner::Ending::Stopped => {
                    info!("left the cluster: stopping");
                    break None;
                }
                runner::Ending::Refused(why) => {
                    error!(reason = %why, "the cluster refused this member: stopping");
                    daemon.stop().await;
                    return Err(crate::cluster::ClusterError::Refused(why).into());
                }
                runner::Ending::Failed(why) => {
                    error!(reason = %why, "the cluster member failed: stopping");
                    daemon.stop().await;
                    return Err(NodeError::Supervision(format!("cluster: {why}")));
                }
                runner::Ending::Zombie(reason) => {
                    let local = &config.local;
                    let action = local.self_fence.timeout_action;
                    error!(%reason, action = action.as_str(), "SELF-FENCE: the cluster declared this node dead");
                    let sf = self_fence::from_config(&local.self_fence, &local.name);
                    if let Err(e) = sf.fence(action, &reason) {
                        error!(cause = %e, "self-fence failed; exiting without disarming the watchdog");
                    }
                    break Some(Ending::SelfFenced { action, reason });
                }
                },
            },
        }
    };
    match ended {
        Some(Ending::SelfFenced { action, reason }) => {
            // A dead node does not tidy up: no disarm, no socket removal.
            error!(action = action.as_str(), %reason, "self-fenced: exiting without disarming the watchdog");
            Err(NodeError::SelfFenced {
                action: action.as_str().into(),
                reason,
            })
        }
        Some(Ending::Failed(why)) => {
            daemon.stop().await;
            Err(NodeError::Supervision(why))
        }
        Some(Ending::Stopped) | None => match daemon.stop().await {
            Some(Ending::Failed(why)) => Err(NodeError::Supervision(why)),
            Some(Ending::SelfFenced { action, reason }) => Err(NodeError::SelfFenced {
                action: action.as_str().into(),
                reason,
            }),
            _ => Ok(()),
        },
    }
}

/// Where this node's agents keep their node attributes (promotion scores).
fn attribute_store(config: &Config) -> crate::resources::attributes::Store {
    crate::resources::attributes::Store::new(config.daemon.state_dir.join("attributes"))
}
