//! The node daemon's view of itself, as `ironfence node status` and the
//! SIGUSR1 log line show it: the inquisitor publishes a fresh
//! [`NodeStatus`] every loop; readers never block it.

use serde::{Deserialize, Serialize};

/// One servant's health.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServantStatus {
    pub name: String,
    /// sbd-disk, quorum or fencer.
    pub kind: String,
    pub healthy: bool,
    pub last_ok_ms_ago: Option<u64>,
    pub detail: Option<String>,
}

/// The watchdog as the inquisitor drives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatchdogStatus {
    /// What the driver says about itself.
    pub info: serde_json::Value,
    pub timeout_ms: u64,
    pub armed: bool,
    pub last_feed_ms_ago: Option<u64>,
    /// Time until the hardware resets the node unless fed again.
    pub expires_in_ms: Option<u64>,
}

/// Everything `ironfence node status` shows.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct NodeStatus {
    pub node: String,
    /// off (no supervision), delayed, starting, waiting for a healthy round,
    /// watching, self-fencing, self-fenced, stopped, failed.
    pub state: String,
    pub uptime_ms: u64,
    /// The last loop found every servant healthy (and fed).
    pub healthy: bool,
    pub problems: Vec<String>,
    pub servants: Vec<ServantStatus>,
    pub watchdog: Option<WatchdogStatus>,
    /// The quorum view (crate::quorum::QuorumView as JSON).
    pub quorum: Option<serde_json::Value>,
    /// How a self-fence would be carried out.
    pub self_fence: String,
}

impl NodeStatus {
    /// One line for the log (SIGUSR1).
    pub fn line(&self) -> String {
        let servants: Vec<String> = self
            .servants
            .iter()
            .map(|s| {
                format!(
                    "{}={}{}",
                    s.name,
                    if s.healthy { "ok" } else { "BAD" },
                    s.last_ok_ms_ago
                        .map(|a| format!("({a}ms)"))
                        .unwrap_or_default()
                )
            })
            .collect();
        let wd = match &self.watchdog {
            None => "watchdog=none".to_string(),
            Some(w) => format!(
                "watchdog={} last_feed={} expires_in={}",
                if w.armed { "armed" } else { "not-armed" },
                w.last_feed_ms_ago
                    .map(|a| format!("{a}ms"))
                    .unwrap_or_else(|| "-".into()),
                w.expires_in_ms
                    .map(|a| format!("{a}ms"))
                    .unwrap_or_else(|| "-".into())
            ),
        };
        format!(
            "node={} state={} healthy={} {} servants=[{}]{}",
            self.node,
            self.state,
            self.healthy,
            wd,
            servants.join(" "),
            if self.problems.is_empty() {
                String::new()
            } else {
                format!(" problems=[{}]", self.problems.join("; "))
            }
        )
    }

    /// Several lines for `ironfence node status`.
    pub fn text(&self) -> String {
        let mut out = format!(
            "node:       {}\nstate:      {}\nhealthy:    {}\nself-fence: {}\n",
            self.node, self.state, self.healthy, self.self_fence
        );
        match &self.watchdog {
            None => out.push_str("watchdog:   none\n"),
            Some(w) => {
                out.push_str(&format!(
                    "watchdog:   {} timeout {} ms, {}",
                    w.info
                        .get("identity")
                        .and_then(|v| v.as_str())
                        .or_else(|| w.info.get("device").and_then(|v| v.as_str()))
                        .unwrap_or("?"),
                    w.timeout_ms,
                    if w.armed { "armed" } else { "not armed" }
                ));
                if let Some(a) = w.last_feed_ms_ago {
                    out.push_str(&format!(", last feed {a} ms ago"));
                }
                if let Some(e) = w.expires_in_ms {
                    out.push_str(&format!(", expires in {e} ms"));
                }
                out.push('\n');
            }
        }
        for s in &self.servants {
            out.push_str(&format!(
                "servant:    {:<8} {:<40} {}{}{}\n",
                s.kind,
                s.name,
                if s.healthy { "healthy" } else { "UNHEALTHY" },
                s.last_ok_ms_ago
                    .map(|a| format!(" (last ok {a} ms ago)"))
                    .unwrap_or_default(),
                s.detail
                    .as_ref()
                    .map(|d| format!(" {d}"))
                    .unwrap_or_default()
            ));
        }
        for p in &self.problems {
            out.push_str(&format!("problem:    {p}\n"));
        }
        out
    }
}
