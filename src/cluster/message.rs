//! What members say to each other over CPG: one JSON object per message,
//! versioned, size-limited, encoded and decoded by pure functions.
//!
//! CPG delivers every message to every member of the group, the sender
//! included, in the same total order, interleaved with the configuration
//! changes in the same way everywhere (virtual synchrony). So a message
//! needs no acknowledgement and no sequence number: every member folds the
//! same sequence into the same state.

use crate::fencer::FenceAction;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The protocol version this build speaks; messages of another are ignored.
pub const VERSION: u32 = 1;
/// Largest message accepted (CPG's own limit is about 1 MiB).
pub const MAX_MESSAGE: usize = 256 * 1024;

/// One running ironfenced as CPG knows it, plus the nonce it chose at start
/// (a PID can be reused after a reboot; the nonce cannot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Incarnation {
    pub node: u32,
    pub pid: u32,
    /// Unknown when the process was lost before its hello arrived.
    pub nonce: Option<u64>,
}

impl Incarnation {
    /// The same process: same node and PID, and the same nonce when both are known.
    pub fn same(&self, other: &Incarnation) -> bool {
        self.node == other.node
            && self.pid == other.pid
            && match (self.nonce, other.nonce) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

/// An unclean loss seen by a quorate partition: the node must be fenced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Loss {
    /// The process that was lost (its node is the one to fence).
    pub lost: Incarnation,
    /// When the claimer saw it (its wall clock, for people only).
    pub since_ms: u64,
    /// node down, process down, ...
    pub reason: String,
    /// Node id of the member that saw it.
    pub by: u32,
}

/// The outcome of one fence of a member, as the fencing member recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FenceNote {
    pub target: String,
    pub target_id: u32,
    /// Name of the member that fenced (or on which a human confirmed).
    pub by: String,
    pub by_id: u32,
    /// The node is proven down (power read back off, msgwait elapsed, or a
    /// human confirmed it).
    pub ok: bool,
    /// The fencer's result: fenced, confirmed, failed, timed_out, refused, ...
    pub result: String,
    pub action: FenceAction,
    pub level: Option<u8>,
    pub devices: Vec<String>,
    pub started_ms: u64,
    pub finished_ms: u64,
    /// The fencer's one-line message.
    pub message: String,
    /// The losses this fence resolves (those known when it started).
    pub covers: Vec<Incarnation>,
}

/// Sent by every member after each configuration change that added
/// members: who it is and what it knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub nonce: u64,
    /// The sender's node name (as its config has it).
    pub name: String,
    /// Its cluster-relevant section hashes.
    pub config: BTreeMap<String, String>,
    /// It was an active member already (its claims count).
    pub active: bool,
    /// Unresolved losses it knows of.
    pub losses: Vec<Loss>,
    /// The last fence of each node it knows of.
    pub fences: Vec<FenceNote>,
}

/// One message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Message {
    Hello(Hello),
    /// The sender is about to leave the group on purpose: do not fence it.
    Leaving {
        nonce: u64,
    },
    /// The coordinator started fencing `target`.
    Fencing {
        target: String,
        action: FenceAction,
        delay_ms: u64,
        covers: Vec<Incarnation>,
    },
    /// A fence of a member ended (also a human's confirm).
    FenceResult(FenceNote),
    /// The resource managers' own message (resources::message), carried
    /// as is.
    Resources {
        body: serde_json::Value,
    },
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    v: u32,
    #[serde(flatten)]
    msg: Message,
}

/// Why a message could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("message of {0} bytes is over the {MAX_MESSAGE}-byte limit")]
    TooLarge(usize),
    #[error("message of protocol version {0}, this ironfenced speaks {VERSION}: upgrade every member to the same release")]
    Version(u32),
    #[error("unreadable message: {0}")]
    Invalid(String),
}

/// The bytes of `msg`.
pub fn encode(msg: &Message) -> Vec<u8> {
    serde_json::to_vec(&Envelope {
        v: VERSION,
        msg: msg.clone(),
    })
    .unwrap_or_default()
}

/// The message in `bytes`.
pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
    if bytes.len() > MAX_MESSAGE {
        return Err(DecodeError::TooLarge(bytes.len()));
    }
    #[derive(Deserialize)]
    struct Version {
        v: u32,
    }
    let v: Version =
        serde_json::from_slice(bytes).map_err(|e| DecodeError::Invalid(e.to_string()))?;
    if v.v != VERSION {
        return Err(DecodeError::Version(v.v));
    }
    let e: Envelope =
        serde_json::from_slice(bytes).map_err(|e| DecodeError::Invalid(e.to_string()))?;
    Ok(e.msg)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn note() -> FenceNote {
        FenceNote {
            target: "node3".into(),
            target_id: 3,
            by: "node1".into(),
            by_id: 1,
            ok: true,
            result: "fenced".into(),
            action: FenceAction::Reboot,
            level: Some(1),
            devices: vec!["bmc-3".into()],
            started_ms: 10,
            finished_ms: 30,
            message: "node3 fenced".into(),
            covers: vec![Incarnation {
                node: 3,
                pid: 77,
                nonce: Some(5),
            }],
        }
    }

    #[test]
    fn round_trips() {
        let msgs = [
            Message::Hello(Hello {
                nonce: 9,
                name: "node1".into(),
                config: [("node[node1]".to_string(), "ab".to_string())].into(),
                active: true,
                losses: vec![Loss {
                    lost: Incarnation {
                        node: 3,
                        pid: 1,
                        nonce: None,
                    },
                    since_ms: 1,
                    reason: "node down".into(),
                    by: 1,
                }],
                fences: vec![note()],
            }),
            Message::Leaving { nonce: 9 },
            Message::Fencing {
                target: "node3".into(),
                action: FenceAction::Off,
                delay_ms: 0,
                covers: vec![],
            },
            Message::FenceResult(note()),
        ];
        for m in msgs {
            assert_eq!(decode(&encode(&m)).unwrap(), m);
        }
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        assert!(matches!(decode(b""), Err(DecodeError::Invalid(_))));
        assert!(matches!(decode(b"{\"v\":1}"), Err(DecodeError::Invalid(_))));
        assert_eq!(
            decode(b"{\"v\":2,\"type\":\"leaving\",\"nonce\":1}"),
            Err(DecodeError::Version(2))
        );
        assert_eq!(
            decode(&vec![b' '; MAX_MESSAGE + 1]),
            Err(DecodeError::TooLarge(MAX_MESSAGE + 1))
        );
    }

    #[test]
    fn incarnations_match_on_unknown_nonce() {
        let a = Incarnation {
            node: 1,
            pid: 2,
            nonce: Some(3),
        };
        assert!(a.same(&Incarnation { nonce: None, ..a }));
        assert!(!a.same(&Incarnation {
            nonce: Some(4),
            ..a
        }));
        assert!(!a.same(&Incarnation { pid: 9, ..a }));
    }
}
