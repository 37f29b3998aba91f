//! The resource sections: `[[resource]]` (OCF primitives), `[[group]]`,
//! `[[clone]]`, `[[colocation]]`, `[[order]]` and `[[location]]`, with
//! Pacemaker's meaning, validated into [`ResourcesConfig`]:
//!
//! ```text
//!  ids unique (resources, groups, clones); agent = ocf:PROVIDER:TYPE
//!  installed, parameters known to its meta-data, required ones set (checked
//!  loads only: config check, daemon start); a group member is a primitive
//!  in one group and not a clone; a clone wraps one primitive or group;
//!  constraints name existing ids and [[node]]s; mandatory orders have no cycle
//! ```

use super::validate::{duration, each_item, HasName, Problems};
use super::Node;
use crate::resources::ocf::{self, AgentName};
use crate::resources::score::Score;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const DEFAULT_OP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long an agent's meta-data may take when the config is checked.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOp {
    interval: Option<String>,
    timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTimeouts {
    start: Option<String>,
    stop: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMeta {
    migration_threshold: Option<i64>,
    failure_timeout: Option<String>,
    stickiness: Option<toml::Value>,
    priority: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawResource {
    id: String,
    agent: String,
    #[serde(default)]
    params: BTreeMap<String, toml::Value>,
    monitor: Option<RawOp>,
    #[serde(default)]
    timeouts: RawTimeouts,
    #[serde(default)]
    meta: RawMeta,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGroup {
    id: String,
    members: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClone {
    id: String,
    /// The primitive or group it clones.
    resource: String,
    clone_max: Option<i64>,
    clone_node_max: Option<i64>,
    interleave: Option<bool>,
    promotable: Option<bool>,
    /// How many instances may be promoted (promotable only; default 1).
    promoted_max: Option<i64>,
    /// Promoted instances per node: 1 (the only value supported).
    promoted_node_max: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawColocation {
    resource: String,
    with: String,
    score: toml::Value,
    with_role: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOrder {
    first: String,
    then: String,
    kind: Option<String>,
    symmetrical: Option<bool>,
    /// "start" (default) or "promote" (first must be a promotable clone).
    first_action: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLocation {
    resource: String,
    node: Option<String>,
    /// `ATTRIBUTE=VALUE` on the nodes' attributes.
    rule: Option<String>,
    score: toml::Value,
}

/// The raw resource sections, as found in the file (each item with its label).
#[derive(Debug, Default)]
pub(super) struct RawResources {
    pub resources: Vec<(String, RawResource)>,
    pub groups: Vec<(String, RawGroup)>,
    pub clones: Vec<(String, RawClone)>,
    pub colocations: Vec<(String, RawColocation)>,
    pub orders: Vec<(String, RawOrder)>,
    pub locations: Vec<(String, RawLocation)>,
}

impl RawResources {
    /// Take one top-level section if it is a resource section.
    pub(super) fn take(
        &mut self,
        p: &mut Problems,
        key: &str,
        value: toml::Value,
    ) -> Option<toml::Value> {
        match key {
            "resource" => each_item(p, key, value, &mut self.resources),
            "group" => each_item(p, key, value, &mut self.groups),
            "clone" => each_item(p, key, value, &mut self.clones),
            "colocation" => each_item(p, key, value, &mut self.colocations),
            "order" => each_item(p, key, value, &mut self.orders),
            "location" => each_item(p, key, value, &mut self.locations),
            _ => return Some(value),
        }
        None
    }
}

impl HasName for RawResource {}
impl HasName for RawGroup {}
impl HasName for RawClone {}
impl HasName for RawColocation {}
impl HasName for RawOrder {}
impl HasName for RawLocation {}

/// A monitor operation.
#[derive(Debug, Clone, PartialEq)]
pub struct Monitor {
    pub interval: Duration,
    pub timeout: Duration,
}

/// One OCF primitive.
#[derive(Debug, Clone, PartialEq)]
pub struct PrimitiveConfig {
    pub id: String,
    pub agent: AgentName,
    /// OCF_RESKEY_<name> values.
    pub params: BTreeMap<String, String>,
    pub monitor: Option<Monitor>,
    pub start_timeout: Duration,
    pub stop_timeout: Duration,
    /// Failures on a node before the resource moves away (None: never).
    pub migration_threshold: Option<u32>,
    /// Failcounts expire after this (None: never).
    pub failure_timeout: Option<Duration>,
    pub stickiness: Score,
    pub priority: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GroupConfig {
    pub id: String,
    /// Started in this order, stopped in reverse, all on one node.
    pub members: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CloneConfig {
    pub id: String,
    pub of: String,
    /// None: one instance per node.
    pub clone_max: Option<u32>,
    pub clone_node_max: u32,
    pub interleave: bool,
    pub promotable: bool,
    /// Promoted instances at most (1 unless set; promotable only).
    pub promoted_max: u32,
}

/// A role a colocation can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Started,
    Promoted,
    Unpromoted,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ColocationConfig {
    pub resource: String,
    pub with: String,
    pub score: Score,
    pub with_role: Option<Role>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OrderConfig {
    pub first: String,
    pub then: String,
    pub mandatory: bool,
    pub symmetrical: bool,
    /// `then` waits for `first`'s promotion (first_action = "promote").
    pub first_promoted: bool,
}

/// Where a location constraint applies.
#[derive(Debug, Clone, PartialEq)]
pub enum LocationTarget {
    Node(String),
    /// Nodes whose attribute `name` is `value`.
    Attribute {
        name: String,
        value: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct LocationConfig {
    pub resource: String,
    pub target: LocationTarget,
    pub score: Score,
}

/// Every resource section, validated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResourcesConfig {
    pub primitives: Vec<PrimitiveConfig>,
    pub groups: Vec<GroupConfig>,
    pub clones: Vec<CloneConfig>,
    pub colocations: Vec<ColocationConfig>,
    pub orders: Vec<OrderConfig>,
    pub locations: Vec<LocationConfig>,
}

impl ResourcesConfig {
    pub fn is_empty(&self) -> bool {
        self.primitives.is_empty() && self.groups.is_empty() && self.clones.is_empty()
    }
}

fn score(p: &mut Problems, key: &str, v: &toml::Value) -> Score {
    let parsed = match v {
        toml::Value::Integer(i) => Some(Score::new(*i)),
        toml::Value::String(s) => Score::parse(s),
        _ => None,
    };
    parsed.unwrap_or_else(|| {
        p.add(
            key,
            format!("`{v}` is not a score"),
            "write an integer, \"INFINITY\" or \"-INFINITY\"",
        );
        Score::ZERO
    })
}

fn positive(p: &mut Problems, key: &str, v: Option<i64>, what: &str) -> Option<u32> {
    let v = v?;
    match u32::try_from(v) {
        Ok(n) if n > 0 => Some(n),
        _ => {
            p.add(
                key,
                format!("{v} is not a positive number"),
                what.to_string(),
            );
            None
        }
    }
}

fn param_text(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Validate the resource sections; `checked`: also ask each agent for its
/// meta-data (config check, daemon start).
pub(super) fn resources_from_raw(
    p: &mut Problems,
    raw: RawResources,
    nodes: &[Node],
    checked: bool,
) -> ResourcesConfig {
    let mut out = ResourcesConfig::default();
    let mut ids: BTreeSet<String> = BTreeSet::new();
    let mut unique = |p: &mut Problems, key: &str, id: &str| -> bool {
        if !super::validate::valid_name(id) {
            p.add(
                format!("{key}.id"),
                format!("`{id}` is not a valid id"),
                "use 1-63 letters, digits, '-', '_' or '.'",
            );
            return false;
        }
        if !ids.insert(id.to_string()) {
            p.add(
                format!("{key}.id"),
                format!("id `{id}` is used twice"),
                "give every resource, group and clone its own id",
            );
            return false;
        }
        true
    };
    let root = ocf::ocf_root();
    for (key, r) in raw.resources {
        if !unique(p, &key, &r.id) {
            continue;
        }
        let agent = match AgentName::parse(&r.agent) {
            Ok(a) => a,
            Err(e) => {
                p.add(
                    format!("{key}.agent"),
                    e,
                    "see `ls /usr/lib/ocf/resource.d/*`",
                );
                continue;
            }
        };
        let mut params = BTreeMap::new();
        for (k, v) in &r.params {
            match param_text(v) {
                Some(t) => {
                    params.insert(k.clone(), t);
                }
                None => p.add(
                    format!("{key}.params.{k}"),
                    "is not a string, number or boolean",
                    "write the value as the agent expects it, e.g. \"24\"",
                ),
            }
        }
        if checked {
            match ocf::metadata(&root, &agent, METADATA_TIMEOUT) {
                Err(e) => p.add(
                    format!("{key}.agent"),
                    e,
                    "install the agent, or fix the name",
                ),
                Ok(md) => {
                    for k in params.keys() {
                        if !md.parameters.iter().any(|m| &m.name == k) {
                            let known: Vec<&str> =
                                md.parameters.iter().map(|m| m.name.as_str()).collect();
                            p.add(
                                format!("{key}.params.{k}"),
                                format!("agent {} has no parameter `{k}`", r.agent),
                                format!("use one of: {}", known.join(", ")),
                            );
                        }
                    }
                    for m in md.parameters.iter().filter(|m| m.required) {
                        if !params.contains_key(&m.name) {
                            p.add(
                                format!("{key}.params"),
                                format!("agent {} requires parameter `{}`", r.agent, m.name),
                                format!("set params.{} ({})", m.name, m.shortdesc),
                            );
                        }
                    }
                }
            }
        }
        let monitor = r.monitor.as_ref().map(|m| {
            let at = format!("{key}.monitor.interval");
            let interval = if m.interval.is_none() {
                p.add(
                    &at,
                    "a monitor needs an interval",
                    "set monitor = { interval = \"10s\" }",
                );
                Duration::ZERO
            } else {
                // an unreadable interval is reported once, by `duration`
                let d = duration(p, &at, &m.interval, DEFAULT_OP_TIMEOUT);
                if d.is_zero() {
                    p.add(
                        &at,
                        "a zero interval would monitor in a tight loop",
                        "use at least \"1s\"",
                    );
                }
                d
            };
            Monitor {
                interval,
                timeout: duration(
                    p,
                    &format!("{key}.monitor.timeout"),
                    &m.timeout,
                    DEFAULT_OP_TIMEOUT,
                ),
            }
        });
        let meta = &r.meta;
        out.primitives.push(PrimitiveConfig {
            id: r.id.clone(),
            agent,
            params,
            monitor,
            start_timeout: duration(
                p,
                &format!("{key}.timeouts.start"),
                &r.timeouts.start,
                DEFAULT_OP_TIMEOUT,
            ),
            stop_timeout: duration(
                p,
                &format!("{key}.timeouts.stop"),
                &r.timeouts.stop,
                DEFAULT_OP_TIMEOUT,
            ),
            migration_threshold: positive(
                p,
                &format!("{key}.meta.migration_threshold"),
                meta.migration_threshold,
                "use a positive number of failures (leave it out: never move for failures)",
            ),
            failure_timeout: meta.failure_timeout.as_ref().map(|_| {
                duration(
                    p,
                    &format!("{key}.meta.failure_timeout"),
                    &meta.failure_timeout,
                    Duration::ZERO,
                )
            }),
            stickiness: meta
                .stickiness
                .as_ref()
                .map(|v| score(p, &format!("{key}.meta.stickiness"), v))
                .unwrap_or(Score::ZERO),
            priority: meta.priority.unwrap_or(0),
        });
    }
    let primitives: BTreeSet<String> = out.primitives.iter().map(|r| r.id.clone()).collect();
    let cloned: BTreeSet<String> = raw.clones.iter().map(|(_, c)| c.resource.clone()).collect();
    let mut in_group: BTreeMap<String, String> = BTreeMap::new();
    for (key, g) in raw.groups {
        if !unique(p, &key, &g.id) {
            continue;
        }
        if g.members.is_empty() {
            p.add(
                format!("{key}.members"),
                "a group needs members",
                "list its primitives in start order",
            );
        }
        for m in &g.members {
            if !primitives.contains(m) {
                p.add(
                    format!("{key}.members"),
                    format!("`{m}` is not a [[resource]]"),
                    "list [[resource]] ids only (groups do not nest)",
                );
            } else if let Some(other) = in_group.insert(m.clone(), g.id.clone()) {
                p.add(
                    format!("{key}.members"),
                    format!("`{m}` is already a member of group `{other}`"),
                    "put a resource in one group at most",
                );
            }
            if cloned.contains(m) {
                p.add(
                    format!("{key}.members"),
                    format!("`{m}` is a group member and also a clone's resource"),
                    "clone the whole group instead ([[clone]] resource = the group's id)",
                );
            }
        }
        out.groups.push(GroupConfig {
            id: g.id,
            members: g.members,
        });
    }
    let groups: BTreeSet<String> = out.groups.iter().map(|g| g.id.clone()).collect();
    let mut cloned_once = BTreeSet::new();
    for (key, c) in raw.clones {
        if !unique(p, &key, &c.id) {
            continue;
        }
        if !primitives.contains(&c.resource) && !groups.contains(&c.resource) {
            p.add(
                format!("{key}.resource"),
                format!("`{}` is no [[resource]] or [[group]]", c.resource),
                "clone a primitive or a group by its id",
            );
        }
        if !cloned_once.insert(c.resource.clone()) {
            p.add(
                format!("{key}.resource"),
                format!("`{}` is cloned twice", c.resource),
                "clone a resource once",
            );
        }
        let promotable = c.promotable.unwrap_or(false);
        if !promotable && (c.promoted_max.is_some() || c.promoted_node_max.is_some()) {
            p.add(
                format!("{key}.promoted_max"),
                "set on a clone that is not promotable",
                "add promotable = true, or remove promoted_max / promoted_node_max",
            );
        }
        if promotable && groups.contains(&c.resource) {
            p.add(
                format!("{key}.promotable"),
                format!("`{}` is a group: promotable clones of groups are not supported", c.resource),
                "make a promotable clone of one primitive, colocate the rest with its Promoted role",
            );
        }
        if let Some(n) = c.promoted_node_max.filter(|n| *n != 1) {
            p.add(
                format!("{key}.promoted_node_max"),
                format!("{n}: only 1 promoted instance per node is supported"),
                "remove promoted_node_max (1 is the default)",
            );
        }
        let promoted_max = positive(
            p,
            &format!("{key}.promoted_max"),
            c.promoted_max,
            "use at least 1",
        )
        .unwrap_or(1);
        out.clones.push(CloneConfig {
            id: c.id,
            of: c.resource,
            clone_max: positive(
                p,
                &format!("{key}.clone_max"),
                c.clone_max,
                "use at least 1",
            ),
            clone_node_max: positive(
                p,
                &format!("{key}.clone_node_max"),
                c.clone_node_max,
                "use at least 1",
            )
            .unwrap_or(1),
            interleave: c.interleave.unwrap_or(false),
            promotable,
            promoted_max,
        });
    }
    let node_names: BTreeSet<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
    let known = |p: &mut Problems, key: &str, id: &str| {
        if !ids.contains(id) {
            p.add(
                key,
                format!("`{id}` is no resource, group or clone"),
                "name a [[resource]], [[group]] or [[clone]] id",
            );
        }
    };
    for (key, c) in raw.colocations {
        known(p, &format!("{key}.resource"), &c.resource);
        known(p, &format!("{key}.with"), &c.with);
        if c.resource == c.with {
            p.add(
                format!("{key}.with"),
                "a resource colocated with itself",
                "name another resource",
            );
        }
        let with_role = match c.with_role.as_deref() {
            None => None,
            Some("Started") => Some(Role::Started),
            Some("Promoted") => Some(Role::Promoted),
            Some("Unpromoted") => Some(Role::Unpromoted),
            Some(other) => {
                p.add(
                    format!("{key}.with_role"),
                    format!("unknown role `{other}`"),
                    "use Started, Promoted or Unpromoted",
                );
                None
            }
        };
        if matches!(with_role, Some(Role::Promoted | Role::Unpromoted))
            && !out.clones.iter().any(|k| k.promotable && k.id == c.with)
        {
            p.add(
                format!("{key}.with_role"),
                format!(
                    "`{}` is no promotable [[clone]]: it has no Promoted or Unpromoted role",
                    c.with
                ),
                "name a clone with promotable = true, or remove with_role",
            );
        }
        out.colocations.push(ColocationConfig {
            score: score(p, &format!("{key}.score"), &c.score),
            resource: c.resource,
            with: c.with,
            with_role,
        });
    }
    for (key, o) in raw.orders {
        known(p, &format!("{key}.first"), &o.first);
        known(p, &format!("{key}.then"), &o.then);
        let mandatory = match o.kind.as_deref() {
            None | Some("mandatory") => true,
            Some("optional") => false,
            Some(other) => {
                p.add(
                    format!("{key}.kind"),
                    format!("unknown kind `{other}`"),
                    "use mandatory or optional",
                );
                true
            }
        };
        let first_promoted = match o.first_action.as_deref() {
            None | Some("start") => false,
            Some("promote") => {
                if !out.clones.iter().any(|k| k.promotable && k.id == o.first) {
                    p.add(
                        format!("{key}.first_action"),
                        format!(
                            "`{}` is no promotable [[clone]]: it is never promoted",
                            o.first
                        ),
                        "name a clone with promotable = true, or use first_action = \"start\"",
                    );
                }
                true
            }
            Some(other) => {
                p.add(
                    format!("{key}.first_action"),
                    format!("unknown action `{other}`"),
                    "use start or promote",
                );
                false
            }
        };
        out.orders.push(OrderConfig {
            first: o.first,
            then: o.then,
            mandatory,
            symmetrical: o.symmetrical.unwrap_or(true),
            first_promoted,
        });
    }
    if let Some(cycle) = order_cycle(&out.orders) {
        p.add(
            "order",
            format!("mandatory orders form a cycle: {}", cycle.join(" -> ")),
            "remove one of these [[order]]s, or make it kind = \"optional\"",
        );
    }
    for (key, l) in raw.locations {
        known(p, &format!("{key}.resource"), &l.resource);
        let target = match (l.node, l.rule) {
            (Some(n), None) => {
                if !node_names.contains(n.as_str()) {
                    p.add(
                        format!("{key}.node"),
                        format!("`{n}` is not a [[node]]"),
                        "name a configured node",
                    );
                }
                LocationTarget::Node(n)
            }
            (None, Some(rule)) => match rule.split_once('=') {
                Some((a, v)) if !a.trim().is_empty() => LocationTarget::Attribute {
                    name: a.trim().to_string(),
                    value: v.trim().to_string(),
                },
                _ => {
                    p.add(
                        format!("{key}.rule"),
                        format!("`{rule}` is not ATTRIBUTE=VALUE"),
                        "write e.g. rule = \"rack=r1\" (a [[node]] attribute)",
                    );
                    continue;
                }
            },
            _ => {
                p.add(
                    key.clone(),
                    "a location needs exactly one of `node` and `rule`",
                    "set node = \"NAME\" or rule = \"ATTRIBUTE=VALUE\"",
                );
                continue;
            }
        };
        out.locations.push(LocationConfig {
            score: score(p, &format!("{key}.score"), &l.score),
            resource: l.resource,
            target,
        });
    }
    out
}

/// A cycle among mandatory orders, as the ids along it.
fn order_cycle(orders: &[OrderConfig]) -> Option<Vec<String>> {
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for o in orders.iter().filter(|o| o.mandatory) {
        next.entry(o.first.as_str())
            .or_default()
            .push(o.then.as_str());
    }
    fn visit<'a>(
        n: &'a str,
        next: &BTreeMap<&'a str, Vec<&'a str>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(pos) = path.iter().position(|x| *x == n) {
            let mut c: Vec<String> = path[pos..].iter().map(|s| s.to_string()).collect();
            c.push(n.to_string());
            return Some(c);
        }
        if !done.insert(n) {
            return None;
        }
        path.push(n);
        for m in next.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, next, path, done) {
                return Some(c);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    for start in next.keys() {
        let mut path = Vec::new();
        if let Some(c) = visit(start, &next, &mut path, &mut done) {
            return Some(c);
        }
    }
    None
}
