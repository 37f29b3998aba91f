//! Request and reply types of the socket protocol (serde, one JSON line each).

use crate::agent::metadata::AgentMetadata;
use crate::fencer::{
    DeviceInfo, DeviceStatus, FenceAction, FenceOutcome, FencerError, HistoryRecord, RequestSummary,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A request to the daemon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "verb", rename_all = "snake_case")]
pub enum Request {
    Ping,
    /// The node daemon's own state: servants, watchdog, quorum.
    NodeStatus,
    Fence {
        target: String,
        action: FenceAction,
        #[serde(default)]
        delay_ms: u64,
        #[serde(default)]
        tolerance_ms: u64,
        timeout_ms: Option<u64>,
        #[serde(default)]
        force: bool,
    },
    Confirm {
        target: String,
    },
    Status {
        target: String,
    },
    Query {
        target: String,
    },
    Devices,
    Agents,
    Metadata {
        agent: String,
    },
    Targets {
        device: String,
    },
    Monitor {
        device: String,
    },
    Validate {
        device: Option<String>,
    },
    History {
        target: Option<String>,
        #[serde(default)]
        verbose: bool,
    },
    Last {
        target: String,
    },
    LevelAdd {
        index: u8,
        target: String,
        devices: Vec<String>,
    },
    LevelRemove {
        index: u8,
        target: String,
    },
    DeviceAdd {
        name: String,
        kind: String,
        options: BTreeMap<String, String>,
    },
    DeviceRemove {
        name: String,
    },
    /// Membership, quorum, coordinator, every node's state; the events
    /// after `since` (for `cluster watch`).
    ClusterStatus {
        #[serde(default)]
        since: u64,
    },
    /// Announce a clean leave, leave the group, stop the daemon.
    ClusterLeave,
    /// Where resources run, their failcounts and blocked reasons.
    ResourceStatus,
    /// A human's change: move, ban, clear, standby, target role, cleanup.
    ResourceAdmin {
        change: crate::resources::message::AdminChange,
    },
}

impl Request {
    /// The verb, for logs (requests can carry secrets: never log them whole).
    pub fn verb(&self) -> &'static str {
        match self {
            Request::Ping => "ping",
            Request::NodeStatus => "node status",
            Request::Fence { .. } => "fence",
            Request::Confirm { .. } => "confirm",
            Request::Status { .. } => "status",
            Request::Query { .. } => "query",
            Request::Devices => "devices",
            Request::Agents => "agents",
            Request::Metadata { .. } => "metadata",
            Request::Targets { .. } => "targets",
            Request::Monitor { .. } => "monitor",
            Request::Validate { .. } => "validate",
            Request::History { .. } => "history",
            Request::Last { .. } => "last",
            Request::LevelAdd { .. } => "level add",
            Request::LevelRemove { .. } => "level remove",
            Request::DeviceAdd { .. } => "device add",
            Request::DeviceRemove { .. } => "device remove",
            Request::ClusterStatus { .. } => "cluster status",
            Request::ClusterLeave => "cluster leave",
            Request::ResourceStatus => "resource status",
            Request::ResourceAdmin { .. } => "resource change",
        }
    }
}

/// A successful reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Reply {
    Pong {
        version: String,
    },
    NodeStatus {
        status: Box<crate::node::status::NodeStatus>,
    },
    Fence {
        outcome: FenceOutcome,
    },
    Status {
        target: String,
        devices: Vec<DeviceStatus>,
    },
    Query {
        target: String,
        devices: Vec<String>,
    },
    Devices {
        devices: Vec<DeviceInfo>,
    },
    Agents {
        agents: Vec<String>,
    },
    Metadata {
        metadata: AgentMetadata,
        xml: String,
    },
    Targets {
        device: String,
        targets: Vec<String>,
    },
    Monitor {
        device: String,
    },
    Validate {
        results: Vec<ValidateResult>,
    },
    History {
        requests: Vec<RequestSummary>,
        records: Vec<HistoryRecord>,
    },
    Last {
        target: String,
        last: Option<RequestSummary>,
    },
    Done {
        message: String,
    },
    ClusterStatus {
        status: Box<crate::cluster::ClusterStatus>,
    },
    Resources {
        status: Box<crate::resources::manager::ResourcesStatus>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidateResult {
    pub device: String,
    pub ok: bool,
    pub error: Option<String>,
}

/// Error categories; the CLI maps them to exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    AccessDenied,
    BadRequest,
    NoSuch,
    Timeout,
    Failed,
    Stopped,
}

/// A failed request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
        }
    }
}

impl From<FencerError> for ApiError {
    fn from(e: FencerError) -> Self {
        let kind = match &e {
            FencerError::NoSuchNode(_)
            | FencerError::NoSuchDevice(_)
            | FencerError::NoSuchLevel { .. } => ErrorKind::NoSuch,
            FencerError::Invalid(_) | FencerError::InUse { .. } => ErrorKind::BadRequest,
            FencerError::Device(p) if p.is_timeout() => ErrorKind::Timeout,
            FencerError::Stopped => ErrorKind::Stopped,
            _ => ErrorKind::Failed,
        };
        ApiError::new(kind, e.to_string())
    }
}

/// The reply line: either `{"ok": ...}` or `{"error": ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    Ok(Reply),
    Error(ApiError),
}
