//! `[cluster]`: ironfenced as a member of a corosync CPG group that fences
//! lost members by itself (see [`crate::cluster`]), and the section hashes
//! members compare when they join.
//!
//! ```text
//!  [cluster]
//!  membership     = "corosync"   # the only kind; without [cluster] the daemon is a fencer only
//!  group          = "ironfence"  # CPG group name (every member uses the same)
//!  fence_action   = "reboot"     # what the coordinator does to a lost member: reboot | off
//!  two_node_delay = "5s"         # two_node partitions: the higher node id waits this long before fencing
//!  retry_backoff  = "2s"         # first wait after a failed fence, doubled each time ...
//!  retry_backoff_max = "60s"     # ... up to this
//! ```
//!
//! Every `[[node]]` needs its corosync `id`, and `daemon.node_name` must be
//! one of them: membership speaks node ids, fencing speaks names.

use super::raw::RawCluster;
use super::validate::{duration, Problems};
use super::Node;
use crate::fencer::FenceAction;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::time::Duration;

/// Default CPG group name.
pub const DEFAULT_GROUP: &str = "ironfence";
const DEFAULT_TWO_NODE_DELAY: Duration = Duration::from_secs(5);
const DEFAULT_RETRY_BACKOFF: Duration = Duration::from_secs(2);
const DEFAULT_RETRY_BACKOFF_MAX: Duration = Duration::from_secs(60);
/// CPG group names are at most 127 bytes.
const GROUP_MAX: usize = 127;

/// The validated `[cluster]` section.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterConfig {
    pub group: String,
    /// What a lost member gets: `Reboot` (default) or `Off`.
    pub fence_action: FenceAction,
    /// In a two_node partition, fencing a peer with a lower node id waits
    /// this long, so the lower id wins a fence race.
    pub two_node_delay: Duration,
    pub retry_backoff: Duration,
    pub retry_backoff_max: Duration,
    /// This node's corosync id (from its `[[node]]`).
    pub this_id: u32,
}

impl ClusterConfig {
    /// Wait before retry number `failures` (1 = after the first failure):
    /// retry_backoff x 2^(failures-1), at most retry_backoff_max.
    pub fn backoff(&self, failures: u32) -> Duration {
        let shift = failures.saturating_sub(1).min(20);
        self.retry_backoff
            .saturating_mul(1u32 << shift)
            .min(self.retry_backoff_max)
    }
}

/// Validate `[cluster]` against the nodes and this node's name.
pub(super) fn cluster_from_raw(
    p: &mut Problems,
    raw: RawCluster,
    nodes: &[Node],
    local_name: &str,
) -> Option<ClusterConfig> {
    match raw.membership.as_deref() {
        None | Some("corosync") => {}
        Some(other) => p.add(
            "cluster.membership",
            format!("unknown membership `{other}`"),
            "use \"corosync\" (or remove [cluster] to run a fencer without membership)",
        ),
    }
    let group = raw.group.unwrap_or_else(|| DEFAULT_GROUP.to_string());
    if group.is_empty()
        || group.len() > GROUP_MAX
        || !group
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        p.add(
            "cluster.group",
            format!("`{group}` is not a usable CPG group name"),
            "use 1-127 letters, digits, '-', '_' or '.'",
        );
    }
    let fence_action = match raw.fence_action.as_deref() {
        None | Some("reboot") => FenceAction::Reboot,
        Some("off") => FenceAction::Off,
        Some(other) => {
            p.add(
                "cluster.fence_action",
                format!("`{other}` is not a fence action for lost members"),
                "use \"reboot\" or \"off\"",
            );
            FenceAction::Reboot
        }
    };
    let two_node_delay = duration(
        p,
        "cluster.two_node_delay",
        &raw.two_node_delay,
        DEFAULT_TWO_NODE_DELAY,
    );
    let retry_backoff = duration(
        p,
        "cluster.retry_backoff",
        &raw.retry_backoff,
        DEFAULT_RETRY_BACKOFF,
    );
    let retry_backoff_max = duration(
        p,
        "cluster.retry_backoff_max",
        &raw.retry_backoff_max,
        DEFAULT_RETRY_BACKOFF_MAX,
    );
    if retry_backoff.is_zero() {
        p.add(
            "cluster.retry_backoff",
            "a zero back-off would retry a failing fence in a tight loop",
            "use at least \"100ms\" (default \"2s\")",
        );
    }
    if retry_backoff_max < retry_backoff {
        p.add(
            "cluster.retry_backoff_max",
            "is below cluster.retry_backoff",
            "make retry_backoff_max at least retry_backoff",
        );
    }
    let mut ok = true;
    for n in nodes {
        if n.id.is_none() {
            ok = false;
            p.add(
                format!("node[{}].id", n.name),
                "has no id, and [cluster] membership speaks corosync node ids",
                "set `id` to the node's corosync nodeid (nodelist.node.X.nodeid in corosync.conf)",
            );
        }
    }
    if nodes.is_empty() {
        p.add(
            "cluster",
            "[cluster] is set but no [[node]] is configured",
            "list every cluster node as a [[node]] with its name and corosync id",
        );
        return None;
    }
    let this_id = match nodes.iter().find(|n| n.name == local_name) {
        Some(n) => n.id,
        None => {
            p.add(
                "daemon.node_name",
                format!("this node `{local_name}` is not one of the [[node]]s"),
                "set daemon.node_name to this node's [[node]] name (its corosync name)",
            );
            return None;
        }
    };
    match (ok, this_id) {
        (true, Some(this_id)) => Some(ClusterConfig {
            group,
            fence_action,
            two_node_delay,
            retry_backoff,
            retry_backoff_max,
            this_id,
        }),
        _ => None,
    }
}

/// Hashes of the cluster-relevant sections of a config file, by section
/// label: `cluster`, `node[NAME]`, `device[NAME]`, `level[TARGET#INDEX]`,
/// `resource[ID]`, `group[ID]`, `clone[ID]`, `colocation[#N]`, `order[#N]`,
/// `location[#N]`.
/// Members compare them when they join, so a node whose nodes, devices or
/// levels differ from the cluster's refuses to become active and says which.
///
/// Each hash is SHA-256 over the section's canonical JSON (keys sorted) with
/// secret values left out (`password`): the hashes travel over corosync and
/// must not let anyone guess a password offline. Local sections
/// (`[daemon]`, `[watchdog]`, `[sbd]`, `[quorum]`, `[self_fence]`) are not
/// hashed: they may differ from node to node.
pub fn section_hashes(table: &toml::Table) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (key, value) in table {
        match (key.as_str(), value) {
            ("cluster", v) => {
                out.insert("cluster".to_string(), hash(v));
            }
            (
                "node" | "device" | "level" | "resource" | "group" | "clone" | "colocation"
                | "order" | "location",
                toml::Value::Array(items),
            ) => {
                for (i, item) in items.iter().enumerate() {
                    let label = item_label(key, item, i);
                    let mut item = item.clone();
                    if let Some(t) = item.as_table_mut() {
                        t.remove("password");
                    }
                    out.insert(label, hash(&item));
                }
            }
            _ => {}
        }
    }
    out
}

pub(super) fn item_label(section: &str, item: &toml::Value, i: usize) -> String {
    let s = |k: &str| item.get(k).and_then(|v| v.as_str());
    match section {
        "level" => {
            let target = s("target")
                .or_else(|| s("target_regex"))
                .or_else(|| s("target_attribute"))
                .unwrap_or("?");
            let index = item
                .get("index")
                .and_then(|v| v.as_integer())
                .unwrap_or_default();
            format!("level[{target}#{index}]")
        }
        _ => match s("id").or_else(|| s("name")) {
            Some(n) => format!("{section}[{n}]"),
            None => format!("{section}[#{}]", i + 1),
        },
    }
}

fn hash(v: &toml::Value) -> String {
    // toml tables are sorted maps: their JSON is canonical.
    let json = serde_json::to_vec(v).unwrap_or_default();
    let digest = Sha256::digest(&json);
    digest[..12].iter().map(|b| format!("{b:02x}")).collect()
}

/// The sections in which two hash sets differ (present in one only, or
/// with different content), sorted.
pub fn differing_sections(
    a: &BTreeMap<String, String>,
    b: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut out: Vec<String> = a
        .iter()
        .filter(|(k, v)| b.get(*k) != Some(v))
        .map(|(k, _)| k.clone())
        .chain(b.keys().filter(|k| !a.contains_key(*k)).cloned())
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn table(s: &str) -> toml::Table {
        s.parse().unwrap()
    }

    #[test]
    fn hashes_ignore_order_passwords_and_local_sections() {
        let a = table(
            r#"
            [daemon]
            node_name = "n1"
            [cluster]
            [[node]]
            name = "n1"
            id = 1
            [[node]]
            name = "n2"
            id = 2
            [[device]]
            name = "bmc"
            kind = "ipmi"
            password = "one"
            [[level]]
            index = 1
            target = "n1"
            devices = ["bmc"]
            "#,
        );
        let b = table(
            r#"
            [daemon]
            node_name = "n2"
            [watchdog]
            kind = "none"
            [[node]]
            id = 2
            name = "n2"
            [[node]]
            name = "n1"
            id = 1
            [[device]]
            kind = "ipmi"
            password = "two"
            name = "bmc"
            [[level]]
            target = "n1"
            devices = ["bmc"]
            index = 1
            [cluster]
            "#,
        );
        let (ha, hb) = (section_hashes(&a), section_hashes(&b));
        assert_eq!(ha, hb);
        assert_eq!(
            ha.keys().cloned().collect::<Vec<_>>(),
            [
                "cluster",
                "device[bmc]",
                "level[n1#1]",
                "node[n1]",
                "node[n2]"
            ]
        );
    }

    #[test]
    fn differing_sections_are_named() {
        let a = section_hashes(&table(
            "[[node]]\nname = \"n1\"\nid = 1\n[[node]]\nname = \"n2\"\nid = 2\n",
        ));
        let b = section_hashes(&table(
            "[[node]]\nname = \"n1\"\nid = 1\n[[node]]\nname = \"n2\"\nid = 7\n[[node]]\nname = \"n3\"\nid = 3\n",
        ));
        assert_eq!(differing_sections(&a, &b), ["node[n2]", "node[n3]"]);
        assert!(differing_sections(&a, &a).is_empty());
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let c = ClusterConfig {
            group: DEFAULT_GROUP.into(),
            fence_action: FenceAction::Reboot,
            two_node_delay: DEFAULT_TWO_NODE_DELAY,
            retry_backoff: Duration::from_secs(2),
            retry_backoff_max: Duration::from_secs(10),
            this_id: 1,
        };
        let waits: Vec<u64> = (1..6).map(|f| c.backoff(f).as_secs()).collect();
        assert_eq!(waits, [2, 4, 8, 10, 10]);
        assert_eq!(c.backoff(u32::MAX), Duration::from_secs(10));
    }
}
