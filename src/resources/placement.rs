//! Placement: a pure, deterministic function from the cluster's state and
//! the resources' constraints to where each resource should run and what
//! to do to get there, with Pacemaker's score rules. It prints nothing and
//! does no I/O; it is tested with golden scenarios and differentially
//! against Pacemaker's `crm_simulate` (tests/placement_crm_simulate.rs).
//!
//! ```text
//!  per resource, in allocation order (priority, then configuration order):
//!    score(node) = 0 on every node that can run resources, -INFINITY elsewhere
//!                + every location constraint of it on that node
//!                + its stickiness on the node it runs on now
//!                + for each colocation `it with W` (score s): s on W's nodes;
//!                  s = INFINITY: -INFINITY elsewhere (and nowhere when W is
//!                  stopped); s = -INFINITY: -INFINITY on W's nodes
//!                + for each colocation `D with it` (s > 0): D's own location
//!                  and stickiness scores, times s / INFINITY
//!    a resource's colocation targets are placed before it
//!    node = highest score >= 0; ties: the node with the fewest resources
//!           placed so far, then the node it runs on, then the node name;
//!           and the node it runs on whenever its score equals that best
//!           one and is above zero
//!  safety: a resource that runs on an UNCLEAN node that is not yet fenced
//!          is placed nowhere: "blocked: waiting for fencing of NODE"
//!
//!  promotable clones, once all their instances are placed:
//!    promotion(instance on node) = the agent's promotion score there
//!                                  (none set: -1, never promoted)
//!                                + Promoted-role locations on that node
//!    promoted = the best promoted_max instances with promotion >= 0
//!               (ties: the one promoted now, then the node name), minus
//!               one slot per instance still promoted on an UNCLEAN node
//!    a promotion score above zero also counts in the instance's placement
//!    a colocation `with_role = Promoted` is with the promoted nodes only
//! ```
//!
//! Groups and clones reach placement already expanded by the manager:
//! a group is a chain of INFINITY colocations, a clone one primitive per
//! instance, each instance kept off the others' nodes (`with` may name
//! several resources: the colocation is with any of them).

use super::score::Score;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a node can do, as the cluster sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    Online,
    /// Online, but runs no resources (`node standby`).
    Standby,
    /// Not a member, known clean (left, or fenced).
    Offline,
    /// Lost uncleanly and not yet fenced: what ran there may still run.
    Unclean,
}

impl NodeState {
    fn can_run(self) -> bool {
        self == NodeState::Online
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeInput {
    pub name: String,
    pub state: NodeState,
}

/// A primitive resource as placement sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Primitive {
    pub id: String,
    /// Allocated first when higher (meta `priority`).
    pub priority: i64,
    /// Added to its current node's score (meta `resource-stickiness`).
    pub stickiness: Score,
    /// Where it runs now (probes and monitors say so).
    pub running_on: Option<String>,
}

/// `rsc` prefers (or avoids) `node` by `score`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Location {
    pub rsc: String,
    pub node: String,
    pub score: Score,
}

/// `rsc` wants to run where any of `with` runs (score > 0) or not there
/// (score < 0); with `with_role`, only where they run in that role.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Colocation {
    pub rsc: String,
    pub with: Vec<String>,
    pub score: Score,
    #[serde(default)]
    pub with_role: WithRole,
}

/// The role of the `with` side a colocation asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WithRole {
    #[default]
    Any,
    Promoted,
    Unpromoted,
}

/// A promotable clone: which instances may be promoted, and where.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Promotable {
    pub id: String,
    /// Its instances (resources of the input).
    pub instances: Vec<String>,
    pub promoted_max: u32,
    /// node -> the promotion score its agent set there (absent: none).
    pub scores: BTreeMap<String, Score>,
    /// Nodes where it runs promoted now (UNCLEAN ones included).
    pub promoted_on: Vec<String>,
    /// node -> score of Promoted-role location constraints.
    #[serde(default)]
    pub locations: BTreeMap<String, Score>,
}

/// Everything placement looks at.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Input {
    pub nodes: Vec<NodeInput>,
    pub resources: Vec<Primitive>,
    pub locations: Vec<Location>,
    #[serde(default)]
    pub colocations: Vec<Colocation>,
    #[serde(default)]
    pub promotable: Vec<Promotable>,
}

/// What to do with one resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Plan {
    /// Stays where it is (or stays stopped).
    Keep,
    Start {
        node: String,
    },
    Stop {
        node: String,
    },
    Move {
        from: String,
        to: String,
    },
    /// Nothing may happen until the node it ran on is fenced.
    Blocked {
        reason: String,
    },
}

/// The result: where each resource goes, its scores, and the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Placement {
    /// Resource -> node (None: stopped).
    pub assigned: BTreeMap<String, Option<String>>,
    /// Resource -> node -> allocation score.
    pub scores: BTreeMap<String, BTreeMap<String, Score>>,
    pub plans: BTreeMap<String, Plan>,
    /// Promotable clone -> the nodes where it is to run promoted.
    #[serde(default)]
    pub promoted: BTreeMap<String, Vec<String>>,
}

/// Place every resource (see the module docs).
pub fn place(input: &Input) -> Placement {
    let mut order: Vec<&Primitive> = input.resources.iter().collect();
    // stable: equal priorities keep their configuration order
    order.sort_by_key(|r| std::cmp::Reverse(r.priority));
    let mut run = Run {
        input,
        load: input.nodes.iter().map(|n| (n.name.as_str(), 0)).collect(),
        out: Placement {
            assigned: BTreeMap::new(),
            scores: BTreeMap::new(),
            plans: BTreeMap::new(),
            promoted: BTreeMap::new(),
        },
        busy: Vec::new(),
    };
    for r in order {
        run.assign(r);
    }
    for p in &input.promotable {
        run.promote(p);
    }
    run.out
}

struct Run<'a> {
    input: &'a Input,
    load: BTreeMap<&'a str, usize>,
    out: Placement,
    /// Resources being placed (a colocation cycle stops here).
    busy: Vec<&'a str>,
}

impl<'a> Run<'a> {
    fn resource(&self, id: &str) -> Option<&'a Primitive> {
        self.input.resources.iter().find(|r| r.id == id)
    }

    /// A resource's own preference for a node: locations and stickiness.
    fn own(&self, r: &Primitive, node: &str) -> Score {
        let mut s = Score::ZERO;
        for l in self
            .input
            .locations
            .iter()
            .filter(|l| l.rsc == r.id && l.node == node)
        {
            s = s + l.score;
        }
        if r.running_on.as_deref() == Some(node) {
            s = s + r.stickiness;
        }
        if let Some(p) = self.promotable_of(&r.id) {
            if let Some(v) = p.scores.get(node).filter(|v| **v > Score::ZERO) {
                s = s + *v;
            }
        }
        s
    }

    fn promotable_of(&self, instance: &str) -> Option<&'a Promotable> {
        self.input
            .promotable
            .iter()
            .find(|p| p.instances.iter().any(|i| i == instance))
    }

    /// Choose the promoted instances of `p` (once; its instances are
    /// placed first).
    fn promote(&mut self, p: &'a Promotable) {
        if self.out.promoted.contains_key(&p.id) {
            return;
        }
        for i in &p.instances {
            if let Some(r) = self.resource(i) {
                self.assign(r);
            }
        }
        let unclean = |n: &str| {
            self.input
                .nodes
                .iter()
                .any(|x| x.name == n && x.state == NodeState::Unclean)
        };
        // a promoted instance nobody has fenced yet still holds its slot
        let held = p.promoted_on.iter().filter(|n| unclean(n)).count() as u32;
        let slots = p.promoted_max.saturating_sub(held) as usize;
        let mut candidates: Vec<(String, Score)> = p
            .instances
            .iter()
            .filter_map(|i| self.out.assigned.get(i).cloned().flatten())
            .map(|node| {
                let base = p.scores.get(&node).copied().unwrap_or(Score::new(-1));
                let loc = p.locations.get(&node).copied().unwrap_or(Score::ZERO);
                let s = base + loc;
                (node, s)
            })
            .filter(|(_, s)| *s >= Score::ZERO)
            .collect();
        candidates.sort_by(|(a, sa), (b, sb)| {
            sb.cmp(sa)
                .then_with(|| p.promoted_on.contains(b).cmp(&p.promoted_on.contains(a)))
                .then_with(|| a.cmp(b))
        });
        let chosen: Vec<String> = candidates.into_iter().take(slots).map(|(n, _)| n).collect();
        self.out.promoted.insert(p.id.clone(), chosen);
    }

    /// The nodes a colocation's `with` side counts on.
    fn with_nodes(&mut self, c: &'a Colocation) -> Vec<String> {
        let placed: Vec<String> = c
            .with
            .iter()
            .filter_map(|w| self.out.assigned.get(w).cloned().flatten())
            .collect();
        if c.with_role == WithRole::Any {
            return placed;
        }
        let Some(p) = c.with.first().and_then(|w| self.promotable_of(w)) else {
            return placed;
        };
        self.promote(p);
        let promoted = self.out.promoted.get(&p.id).cloned().unwrap_or_default();
        match c.with_role {
            WithRole::Promoted => promoted,
            _ => placed
                .into_iter()
                .filter(|n| !promoted.contains(n))
                .collect(),
        }
    }

    fn assign(&mut self, r: &'a Primitive) {
        if self.out.assigned.contains_key(&r.id) || self.busy.contains(&r.id.as_str()) {
            return;
        }
        self.busy.push(&r.id);
        // what it is colocated with goes first
        for c in self.input.colocations.iter().filter(|c| c.rsc == r.id) {
            for w in &c.with {
                if let Some(p) = self.resource(w) {
                    self.assign(p);
                }
            }
        }
        self.busy.retain(|b| *b != r.id);
        let input = self.input;
        let current = r.running_on.as_deref();
        let unclean = current.and_then(|c| {
            input
                .nodes
                .iter()
                .find(|n| n.name == c && n.state == NodeState::Unclean)
        });
        // where each colocation of it is with (computed once, not per node)
        let withs: Vec<(&Colocation, Vec<String>)> = input
            .colocations
            .iter()
            .filter(|c| c.rsc == r.id)
            .map(|c| (c, self.with_nodes(c)))
            .collect();
        let mut scores: BTreeMap<String, Score> = BTreeMap::new();
        for n in &input.nodes {
            let mut s = if n.state.can_run() {
                Score::ZERO
            } else {
                Score::MINUS_INFINITY
            };
            s = s + self.own(r, &n.name);
            // dependents pull their primary towards what they prefer
            for c in input
                .colocations
                .iter()
                .filter(|c| c.with.contains(&r.id) && c.score > Score::ZERO)
            {
                if let Some(d) = self.resource(&c.rsc) {
                    if self.out.assigned.contains_key(&d.id) {
                        continue;
                    }
                    s = s + self.own(d, &n.name).scaled(c.score);
                }
            }
            for (c, placed) in &withs {
                if placed.contains(&n.name) {
                    s = s + c.score;
                } else if c.score == Score::INFINITY {
                    s = s + Score::MINUS_INFINITY;
                }
            }
            scores.insert(n.name.clone(), s);
        }
        if let Some(n) = unclean {
            self.out.plans.insert(
                r.id.clone(),
                Plan::Blocked {
                    reason: format!("blocked: waiting for fencing of {}", n.name),
                },
            );
            self.out.assigned.insert(r.id.clone(), None);
            self.out.scores.insert(r.id.clone(), scores);
            return;
        }
        let load = &self.load;
        let candidates: Vec<(&NodeInput, Score)> = input
            .nodes
            .iter()
            .filter(|n| n.state.can_run())
            .filter_map(|n| scores.get(&n.name).map(|s| (n, *s)))
            .filter(|(_, s)| s.allowed())
            .collect();
        let top = candidates
            .iter()
            .max_by(|(a, sa), (b, sb)| {
                sa.cmp(sb)
                    .then_with(|| load[b.name.as_str()].cmp(&load[a.name.as_str()]))
                    .then_with(|| {
                        (current == Some(a.name.as_str())).cmp(&(current == Some(b.name.as_str())))
                    })
                    .then_with(|| b.name.cmp(&a.name))
            })
            .copied();
        // Pacemaker keeps a resource where it runs when that node is just
        // as good as the best one, but only for a positive score: at zero,
        // spreading wins.
        let best = top.map(|(n, s)| {
            let stay = candidates
                .iter()
                .find(|(c, cs)| current == Some(c.name.as_str()) && *cs == s);
            match stay {
                Some((c, _)) if s > Score::ZERO => c.name.clone(),
                _ => n.name.clone(),
            }
        });
        if let Some(b) = &best {
            if let Some(l) = self.load.get_mut(b.as_str()) {
                *l += 1;
            }
        }
        let plan = match (current, best.as_deref()) {
            (None, None) => Plan::Keep,
            (Some(c), Some(b)) if c == b => Plan::Keep,
            (None, Some(b)) => Plan::Start {
                node: b.to_string(),
            },
            (Some(c), None) => Plan::Stop {
                node: c.to_string(),
            },
            (Some(c), Some(b)) => Plan::Move {
                from: c.to_string(),
                to: b.to_string(),
            },
        };
        self.out.plans.insert(r.id.clone(), plan);
        self.out.assigned.insert(r.id.clone(), best);
        self.out.scores.insert(r.id.clone(), scores);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn nodes(states: &[NodeState]) -> Vec<NodeInput> {
        states
            .iter()
            .enumerate()
            .map(|(i, s)| NodeInput {
                name: format!("n{}", i + 1),
                state: *s,
            })
            .collect()
    }

    fn prim(id: &str, on: Option<&str>, stickiness: i64) -> Primitive {
        Primitive {
            id: id.into(),
            priority: 0,
            stickiness: Score::new(stickiness),
            running_on: on.map(str::to_string),
        }
    }

    fn loc(rsc: &str, node: &str, score: Score) -> Location {
        Location {
            rsc: rsc.into(),
            node: node.into(),
            score,
        }
    }

    use NodeState::*;

    #[test]
    fn spreads_ties_and_follows_location_scores() {
        let input = Input {
            nodes: nodes(&[Online, Online, Online]),
            resources: vec![prim("a", None, 0), prim("b", None, 0), prim("c", None, 0)],
            locations: vec![loc("a", "n2", Score::new(50))],
            colocations: vec![],
            promotable: vec![],
        };
        let p = place(&input);
        assert_eq!(p.assigned["a"].as_deref(), Some("n2"));
        assert_eq!(p.assigned["b"].as_deref(), Some("n1"));
        assert_eq!(p.assigned["c"].as_deref(), Some("n3"));
        assert_eq!(p.plans["a"], Plan::Start { node: "n2".into() });
    }

    #[test]
    fn stickiness_keeps_a_resource_where_it_runs() {
        let mut input = Input {
            nodes: nodes(&[Online, Online]),
            resources: vec![prim("vip", Some("n1"), 100)],
            locations: vec![loc("vip", "n2", Score::new(50))],
            colocations: vec![],
            promotable: vec![],
        };
        assert_eq!(place(&input).plans["vip"], Plan::Keep);
        input.resources[0].stickiness = Score::new(10);
        assert_eq!(
            place(&input).plans["vip"],
            Plan::Move {
                from: "n1".into(),
                to: "n2".into()
            }
        );
    }

    #[test]
    fn bans_standby_and_offline_nodes_stop_what_cannot_run() {
        let input = Input {
            nodes: nodes(&[Standby, Offline]),
            resources: vec![prim("a", Some("n1"), 0)],
            locations: vec![],
            colocations: vec![],
            promotable: vec![],
        };
        let p = place(&input);
        assert_eq!(p.assigned["a"], None);
        assert_eq!(p.plans["a"], Plan::Stop { node: "n1".into() });
        assert_eq!(p.scores["a"]["n1"], Score::MINUS_INFINITY);
        let input = Input {
            nodes: nodes(&[Online, Online]),
            resources: vec![prim("a", None, 0)],
            locations: vec![
                loc("a", "n1", Score::MINUS_INFINITY),
                loc("a", "n2", Score::new(-10)),
            ],
            colocations: vec![],
            promotable: vec![],
        };
        assert_eq!(place(&input).assigned["a"], None, "negative scores forbid");
    }

    #[test]
    fn a_resource_of_an_unclean_node_waits_for_its_fence() {
        let input = Input {
            nodes: nodes(&[Unclean, Online]),
            resources: vec![prim("vip", Some("n1"), 0), prim("other", None, 0)],
            locations: vec![],
            colocations: vec![],
            promotable: vec![],
        };
        let p = place(&input);
        assert_eq!(p.assigned["vip"], None);
        assert_eq!(
            p.plans["vip"],
            Plan::Blocked {
                reason: "blocked: waiting for fencing of n1".into()
            }
        );
        assert_eq!(p.assigned["other"].as_deref(), Some("n2"));
        // fenced: now it may move
        let mut input = input;
        input.nodes[0].state = Offline;
        assert_eq!(place(&input).assigned["vip"].as_deref(), Some("n2"));
    }

    #[test]
    fn higher_priority_is_placed_first() {
        let mut hi = prim("hi", None, 0);
        hi.priority = 10;
        let input = Input {
            nodes: nodes(&[Online, Online]),
            resources: vec![prim("lo", None, 0), hi],
            locations: vec![],
            colocations: vec![],
            promotable: vec![],
        };
        let p = place(&input);
        assert_eq!(p.assigned["hi"].as_deref(), Some("n1"));
        assert_eq!(p.assigned["lo"].as_deref(), Some("n2"));
    }

    fn promotable_input(states: &[NodeState], scores: &[(&str, i64)], now: &[&str]) -> Input {
        let n = states.len();
        let mut resources: Vec<Primitive> = (0..n)
            .map(|i| prim(&format!("db:{i}"), Some(&format!("n{}", i + 1)), 1))
            .collect();
        resources.push(prim("vip", None, 0));
        let instances: Vec<String> = (0..n).map(|i| format!("db:{i}")).collect();
        let mut colocations: Vec<Colocation> = (1..n)
            .map(|i| Colocation {
                rsc: instances[i].clone(),
                with: instances[..i].to_vec(),
                score: Score::MINUS_INFINITY,
                with_role: WithRole::Any,
            })
            .collect();
        colocations.push(Colocation {
            rsc: "vip".into(),
            with: instances.clone(),
            score: Score::INFINITY,
            with_role: WithRole::Promoted,
        });
        Input {
            nodes: nodes(states),
            resources,
            locations: vec![],
            colocations,
            promotable: vec![Promotable {
                id: "db-clone".into(),
                instances,
                promoted_max: 1,
                scores: scores
                    .iter()
                    .map(|(n, s)| (n.to_string(), Score::new(*s)))
                    .collect(),
                promoted_on: now.iter().map(|s| s.to_string()).collect(),
                locations: BTreeMap::new(),
            }],
        }
    }

    #[test]
    fn the_best_promotion_score_is_promoted_and_a_promoted_colocation_follows() {
        let input = promotable_input(
            &[Online, Online, Online],
            &[("n1", 5), ("n2", 10), ("n3", 5)],
            &[],
        );
        let p = place(&input);
        assert_eq!(p.promoted["db-clone"], vec!["n2".to_string()]);
        assert_eq!(p.assigned["vip"].as_deref(), Some("n2"));
        // ties: the one promoted now stays
        let input = promotable_input(
            &[Online, Online, Online],
            &[("n1", 5), ("n2", 5), ("n3", 5)],
            &["n3"],
        );
        assert_eq!(place(&input).promoted["db-clone"], vec!["n3".to_string()]);
    }

    #[test]
    fn no_score_is_never_promoted_and_the_dependent_stays_stopped() {
        let input = promotable_input(&[Online, Online], &[], &[]);
        let p = place(&input);
        assert!(p.promoted["db-clone"].is_empty());
        assert_eq!(p.assigned["vip"], None);
        let mut input = promotable_input(&[Online, Online], &[("n2", -5)], &[]);
        input.promotable[0]
            .locations
            .insert("n1".into(), Score::new(1));
        assert_eq!(place(&input).promoted["db-clone"], vec!["n1".to_string()]);
    }

    #[test]
    fn a_promoted_instance_on_an_unclean_node_holds_its_slot() {
        let input = promotable_input(&[Unclean, Online, Online], &[("n2", 5), ("n3", 5)], &["n1"]);
        let p = place(&input);
        assert!(p.promoted["db-clone"].is_empty(), "{:?}", p.promoted);
        assert_eq!(p.assigned["vip"], None);
        // fenced (offline): a survivor is promoted
        let input = promotable_input(&[Offline, Online, Online], &[("n2", 5), ("n3", 5)], &["n1"]);
        assert_eq!(place(&input).promoted["db-clone"], vec!["n2".to_string()]);
    }

    #[test]
    fn deterministic() {
        let input = Input {
            nodes: nodes(&[Online, Online, Online, Online]),
            resources: (0..20).map(|i| prim(&format!("r{i}"), None, 0)).collect(),
            locations: vec![],
            colocations: vec![],
            promotable: vec![],
        };
        assert_eq!(place(&input), place(&input));
        let per_node = place(&input)
            .assigned
            .values()
            .filter(|n| n.as_deref() == Some("n4"))
            .count();
        assert_eq!(per_node, 5);
    }
}
