//! The fencer: executes fence requests through the topology and keeps the
//! durable history. One task ([`engine`]) owns the queue, the in-flight
//! requests, the devices and the history; everything else holds a
//! [`Fencer`] handle and talks to it over a channel.
//!
//! ```text
//!  request -> tolerance? -> storm guard -> [delay] -> level 1 -> level 2 ... -> result
//!                                                     |
//!                          every device: capability, attempt (timeout) x retries,
//!                          power read back (verify); reboot = all off, then all on
//! ```
//!
//! It prints nothing and does not know how it is reached (API, demo, tests).

mod engine;
pub mod history;
pub mod request;
pub mod topology;

pub use engine::{DeviceInfo, DeviceStatus, Fencer};
pub use history::{Event as HistoryEvent, HistoryRecord, RequestSummary};
pub use request::{FenceAction, FenceOutcome, FenceRequest, FenceResult, Step};

use crate::config::Problem;

/// A request the fencer could not take.
#[derive(Debug, thiserror::Error)]
pub enum FencerError {
    /// The node is not in the configuration.
    #[error("no such node `{0}`: it is not a [[node]] of the configuration")]
    NoSuchNode(String),
    /// The device is not registered.
    #[error("no such device `{0}`; `ironfence devices` lists them")]
    NoSuchDevice(String),
    /// The level does not exist.
    #[error("no level {index} for `{target}`")]
    NoSuchLevel { index: u8, target: String },
    /// A runtime change was invalid.
    #[error("invalid: {}", .0.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<Problem>),
    /// The device is still used by a level.
    #[error("device `{device}` is used by level {level} of `{target}`; remove the level first")]
    InUse {
        device: String,
        level: u8,
        target: String,
    },
    /// A device operation failed.
    #[error("{0}")]
    Device(#[from] crate::power::PowerError),
    /// The history could not be opened.
    #[error("{0}")]
    History(#[from] history::HistoryError),
    /// The fencer task has stopped.
    #[error("the fencer has stopped (daemon shutting down)")]
    Stopped,
}
