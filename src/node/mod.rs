//! `ironfenced`, the node daemon: starts the fencer on the configured state
//! directory, serves the API socket, and on SIGTERM/SIGINT stops accepting,
//! records in-flight requests as interrupted and removes its socket.
//!
//! Later issues add the watchdog inquisitor, SBD servants and quorum here.

use crate::api::server::{self, Access};
use crate::config::Config;
use crate::fencer::{Fencer, FencerError};
use crate::power::PowerDevice;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tracing::info;

/// The daemon could not start.
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
}

/// A running daemon (fencer + API), as the binary and the demo use it.
pub struct Daemon {
    pub fencer: Fencer,
    shutdown: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
    engine: tokio::task::JoinHandle<()>,
    socket: std::path::PathBuf,
}

impl Daemon {
    /// Start the fencer and serve the socket.
    pub async fn start(
        config: &Config,
        overrides: HashMap<String, Arc<dyn PowerDevice>>,
    ) -> Result<Daemon, NodeError> {
        let (fencer, engine) = Fencer::start(config, overrides)?;
        let access: Access = server::access_for(config.daemon.socket_group.as_deref());
        let listener = server::bind(&config.daemon.socket, &access).await?;
        let (shutdown, rx) = watch::channel(false);
        let server = tokio::spawn(server::serve(listener, fencer.clone(), access, rx));
        info!(
            socket = %config.daemon.socket.display(),
            state_dir = %config.daemon.state_dir.display(),
            devices = config.devices.len(),
            levels = config.levels.len(),
            "ironfenced ready"
        );
        Ok(Daemon {
            fencer,
            shutdown,
            server,
            engine,
            socket: config.daemon.socket.clone(),
        })
    }

    /// Stop serving, interrupt in-flight requests, remove the socket.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.server.await;
        self.fencer.shutdown().await;
        let _ = self.engine.await;
        let _ = std::fs::remove_file(&self.socket);
        info!("ironfenced stopped");
    }
}

/// Run the daemon until SIGTERM or SIGINT.
pub async fn run(config: Config) -> Result<(), NodeError> {
    let mut term = signal(SignalKind::terminate()).map_err(NodeError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(NodeError::Signals)?;
    let daemon = Daemon::start(&config, HashMap::new()).await?;
    tokio::select! {
        _ = term.recv() => info!("SIGTERM: stopping"),
        _ = int.recv() => info!("SIGINT: stopping"),
    }
    daemon.stop().await;
    Ok(())
}
