//! `ironfenced`, the node daemon: the fencer and its API socket, and — when
//! the config has `[watchdog]`, `[sbd]` or `[quorum]` — the inquisitor that
//! feeds this node's watchdog only while every servant is healthy, and
//! self-fences on a poison pill, lost quorum or a stall.
//!
//! ```text
//!  start:   fencer + API socket; inquisitor (delay_start, servants, watchdog)
//!  SIGUSR1: one status line in the log (also `ironfence node status`)
//!  SIGTERM/SIGINT or an `exit` message: servants stop, watchdog disarmed
//!           (magic close), in-flight fences recorded interrupted, socket removed
//!  self-fence: the process ends without disarming (exit code 3)
//! ```

pub mod inquisitor;
pub mod self_fence;
pub mod status;

use crate::api::server::{self, Access};
use crate::config::Config;
use crate::fencer::{Fencer, FencerError};
use crate::power::PowerDevice;
use inquisitor::Ending;
use status::NodeStatus;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tracing::{error, info};

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

        let (fencer, engine) = Fencer::start(config, overrides)?;
        let access: Access = server::access_for(config.daemon.socket_group.as_deref());
        let listener = server::bind(&config.daemon.socket, &access).await?;
        let (shutdown, rx) = watch::channel(false);
        let server = tokio::spawn(server::serve(
            listener,
            fencer.clone(),
            access,
            status.clone(),
            rx.clone(),
        ));
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
            socket: config.daemon.socket.clone(),
        })
    }

    /// Wait until the inquisitor ends by itself (an `exit` message, a
    /// self-fence, a failure); never, when nothing is supervised.
    pub async fn supervision_ended(&mut self) -> Ending {
        match &mut self.inquisitor {
            Some(h) => {
                let r = h.await;
                self.inquisitor = None;
                r.unwrap_or_else(|e| Ending::Failed(format!("the inquisitor panicked: {e}")))
            }
            None => std::future::pending().await,
        }
    }

    /// Stop: servants stop and the watchdog is disarmed, then the socket
    /// closes, in-flight requests are recorded interrupted, the socket file
    /// goes. Returns how supervision ended (None: nothing was supervised).
    pub async fn stop(self) -> Option<Ending> {
        let _ = self.shutdown.send(true);
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
            e = daemon.supervision_ended() => break Some(e),
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
