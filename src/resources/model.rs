//! The resource model the manager works on: the validated config sections
//! expanded into placement units and plain constraints.
//!
//! ```text
//!  primitive p            -> unit p
//!  group g [a, b, c]      -> units a, b, c; b with a, c with b (INFINITY);
//!                            orders a -> b -> c; constraints on g apply to
//!                            every member (as a primary: its first member;
//!                            in orders: last member first, first member then)
//!  clone c of p, max k    -> units p:0 .. p:k-1, instance i kept off the
//!                            nodes of instances 0..i; constraints on c apply
//!                            to every instance; stickiness defaults to 1
//!  promotable clone c         -> as a clone, plus c in `promotable` (its
//!                            instances, promoted_max); a colocation
//!                            with_role Promoted/Unpromoted keeps the role
//! ```
//!
//! A unit's `base` is the primitive that runs on a node (an anonymous
//! clone's instance is the primitive itself there, as in Pacemaker).

use super::placement::{Colocation, WithRole};
use super::score::Score;
use crate::config::resources::Role;
use crate::config::resources::{LocationTarget, PrimitiveConfig, ResourcesConfig};
use std::collections::BTreeMap;

/// One placement unit.
#[derive(Debug, Clone, PartialEq)]
pub struct Unit {
    /// `p`, or `p:N` for clone instance N.
    pub id: String,
    /// The primitive it runs.
    pub base: String,
    /// (clone id, instance number, instances).
    pub clone: Option<(String, u32, u32)>,
}

/// A mandatory order between two sets of bases.
#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    pub first: String,
    pub then: String,
    pub symmetrical: bool,
    /// `then` waits for `first` to be promoted (not just started).
    pub first_promoted: bool,
}

/// The expanded model.
#[derive(Debug, Clone, Default)]
pub struct Model {
    pub primitives: BTreeMap<String, PrimitiveConfig>,
    pub units: Vec<Unit>,
    pub colocations: Vec<Colocation>,
    /// Mandatory orders between bases (optional ones only order actions
    /// that happen together, which the step-wise manager never needs).
    pub orders: Vec<Order>,
    /// (unit, node or attribute rule, score)
    pub locations: Vec<(String, LocationTarget, Score)>,
    /// Base -> clone id, for bases that are cloned.
    pub cloned: BTreeMap<String, String>,
    /// Base -> group id.
    pub grouped: BTreeMap<String, String>,
    /// Base -> (clone id, promoted_max), for promotable clones.
    pub promotable: BTreeMap<String, (String, u32)>,
}

impl Model {
    /// Expand the config for a cluster of `nodes` nodes.
    pub fn new(cfg: &ResourcesConfig, nodes: usize) -> Model {
        let mut m = Model {
            primitives: cfg
                .primitives
                .iter()
                .map(|p| (p.id.clone(), p.clone()))
                .collect(),
            ..Model::default()
        };
        // which units a config id stands for
        let mut units_of: BTreeMap<String, Vec<String>> = BTreeMap::new();
        // as a primary / as `first` / as `then`
        let mut head: BTreeMap<String, String> = BTreeMap::new();
        let mut tail: BTreeMap<String, String> = BTreeMap::new();
        let mut bases_of: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for g in &cfg.groups {
            for w in g.members.windows(2) {
                m.colocations.push(Colocation {
                    rsc: w[1].clone(),
                    with: vec![w[0].clone()],
                    score: Score::INFINITY,
                    with_role: WithRole::Any,
                });
                m.orders.push(Order {
                    first: w[0].clone(),
                    then: w[1].clone(),
                    symmetrical: true,
                    first_promoted: false,
                });
            }
            for b in &g.members {
                m.grouped.insert(b.clone(), g.id.clone());
            }
            units_of.insert(g.id.clone(), g.members.clone());
            bases_of.insert(g.id.clone(), g.members.clone());
            if let (Some(f), Some(l)) = (g.members.first(), g.members.last()) {
                head.insert(g.id.clone(), f.clone());
                tail.insert(g.id.clone(), l.clone());
            }
        }
        for p in &cfg.primitives {
            let clone = cfg.clones.iter().find(|c| c.of == p.id);
            match clone {
                Some(c) => {
                    let k = c.clone_max.unwrap_or(nodes as u32).max(1);
                    let ids: Vec<String> = (0..k).map(|i| format!("{}:{i}", p.id)).collect();
                    for (i, id) in ids.iter().enumerate() {
                        m.units.push(Unit {
                            id: id.clone(),
                            base: p.id.clone(),
                            clone: Some((c.id.clone(), i as u32, k)),
                        });
                        if i > 0 {
                            m.colocations.push(Colocation {
                                rsc: id.clone(),
                                with: ids[..i].to_vec(),
                                score: Score::MINUS_INFINITY,
                                with_role: WithRole::Any,
                            });
                        }
                    }
                    m.cloned.insert(p.id.clone(), c.id.clone());
                    if c.promotable {
                        m.promotable
                            .insert(p.id.clone(), (c.id.clone(), c.promoted_max));
                    }
                    units_of.insert(c.id.clone(), ids.clone());
                    units_of.insert(p.id.clone(), ids);
                    bases_of.insert(c.id.clone(), vec![p.id.clone()]);
                }
                None => {
                    m.units.push(Unit {
                        id: p.id.clone(),
                        base: p.id.clone(),
                        clone: None,
                    });
                    units_of.insert(p.id.clone(), vec![p.id.clone()]);
                }
            }
            bases_of
                .entry(p.id.clone())
                .or_insert_with(|| vec![p.id.clone()]);
        }
        let units = |id: &str| units_of.get(id).cloned().unwrap_or_default();
        for c in &cfg.colocations {
            let primaries = match head.get(&c.with) {
                Some(h) => units(h),
                None => units(&c.with),
            };
            let dependents = match head.get(&c.resource) {
                Some(h) => units(h),
                None => units(&c.resource),
            };
            let with_role = match c.with_role {
                Some(Role::Promoted) => WithRole::Promoted,
                Some(Role::Unpromoted) => WithRole::Unpromoted,
                Some(Role::Started) | None => WithRole::Any,
            };
            for d in dependents {
                m.colocations.push(Colocation {
                    rsc: d,
                    with: primaries.clone(),
                    score: c.score,
                    with_role,
                });
            }
        }
        for o in cfg.orders.iter().filter(|o| o.mandatory) {
            let first = tail.get(&o.first).cloned().unwrap_or_else(|| {
                bases_of
                    .get(&o.first)
                    .and_then(|b| b.first().cloned())
                    .unwrap_or_default()
            });
            let then = head.get(&o.then).cloned().unwrap_or_else(|| {
                bases_of
                    .get(&o.then)
                    .and_then(|b| b.first().cloned())
                    .unwrap_or_default()
            });
            m.orders.push(Order {
                first,
                then,
                symmetrical: o.symmetrical,
                first_promoted: o.first_promoted,
            });
        }
        for l in &cfg.locations {
            for u in units(&l.resource) {
                m.locations.push((u, l.target.clone(), l.score));
            }
        }
        m
    }

    /// The units of base `b`.
    pub fn units_of<'a>(&'a self, b: &'a str) -> impl Iterator<Item = &'a Unit> + 'a {
        self.units.iter().filter(move |u| u.base == b)
    }

    /// Every base, in configuration order.
    pub fn bases(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for u in &self.units {
            if !out.contains(&u.base) {
                out.push(u.base.clone());
            }
        }
        out
    }
}
