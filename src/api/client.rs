//! Client side of the socket protocol.

use super::protocol::{ApiError, ErrorKind, Reply, Request, Response};
use std::path::{Path, PathBuf};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// The daemon could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens on the socket.
    #[error("cannot reach ironfenced at {path}: {source}; is the daemon running (systemctl status ironfenced), and is --config/socket right?")]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The socket exists but we may not use it.
    #[error("permission denied on {path}: only root and members of the daemon's socket_group may use it")]
    Permission { path: PathBuf },
    /// The connection broke or the reply was not understood.
    #[error("lost the connection to ironfenced at {path}: {detail}")]
    Protocol { path: PathBuf, detail: String },
    /// The daemon answered with an error.
    #[error("{0}")]
    Api(#[from] ApiError),
}

impl ClientError {
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            ClientError::Api(e) => Some(e.kind),
            _ => None,
        }
    }
}

/// Send one request and wait for its reply.
pub async fn call(socket: &Path, req: &Request) -> Result<Reply, ClientError> {
    let stream = UnixStream::connect(socket).await.map_err(|source| {
        if source.kind() == std::io::ErrorKind::PermissionDenied {
            ClientError::Permission {
                path: socket.to_path_buf(),
            }
        } else {
            ClientError::Connect {
                path: socket.to_path_buf(),
                source,
            }
        }
    })?;
    let proto = |detail: String| ClientError::Protocol {
        path: socket.to_path_buf(),
        detail,
    };
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_string(req).map_err(|e| proto(e.to_string()))?;
    line.push('\n');
    // The daemon may refuse (access denied) before reading the request: a
    // failed write is then followed by its reply, which says why.
    let written = write.write_all(line.as_bytes()).await;
    let mut reply = String::new();
    let read = BufReader::new(read).read_line(&mut reply).await;
    if reply.is_empty() {
        let cause = match (written, read) {
            (Err(e), _) | (Ok(()), Err(e)) => e.to_string(),
            _ => "the daemon closed the connection without a reply".into(),
        };
        return Err(proto(cause));
    }
    match serde_json::from_str::<Response>(&reply)
        .map_err(|e| proto(format!("unreadable reply: {e}")))?
    {
        Response::Ok(r) => Ok(r),
        Response::Error(e) => Err(ClientError::Api(e)),
    }
}
