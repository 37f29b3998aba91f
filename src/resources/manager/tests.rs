//! Several managers on one simulated CPG (every message to every member in
//! one order), with agents that do what they are told and a ground truth
//! of what really runs where.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::cluster::NodeCondition;
use crate::config::resources::{
    CloneConfig, ColocationConfig, GroupConfig, OrderConfig, PrimitiveConfig, ResourcesConfig,
};
use crate::resources::ocf::AgentName;
use std::collections::VecDeque;
use std::time::Duration;

fn prim(id: &str) -> PrimitiveConfig {
    PrimitiveConfig {
        id: id.into(),
        agent: AgentName::parse("ocf:heartbeat:Dummy").unwrap(),
        params: BTreeMap::new(),
        monitor: None,
        start_timeout: Duration::from_secs(20),
        stop_timeout: Duration::from_secs(20),
        migration_threshold: None,
        failure_timeout: None,
        stickiness: Score::ZERO,
        priority: 0,
    }
}

struct Sim {
    names: Vec<String>,
    managers: BTreeMap<String, Manager>,
    presence: BTreeMap<String, Presence>,
    queue: VecDeque<(String, ResMsg)>,
    /// ground truth: (node, rsc) really running
    truth: BTreeSet<(String, String)>,
    /// every action run, in order: "start a on n1"
    log: Vec<String>,
    fences: Vec<String>,
    /// (node, rsc) whose stop fails / whose start fails
    stop_fails: BTreeSet<(String, String)>,
    start_fails: BTreeSet<(String, String)>,
    /// (node, rsc) whose actions take effect but never report back (the
    /// node dies while its agent runs)
    held: BTreeSet<(String, String)>,
    /// ground truth of promoted instances: (node, rsc)
    promoted: BTreeSet<(String, String)>,
    /// agents publish promotion scores as Stateful does (5, promoted 10)
    scores: bool,
    wall: u64,
}

impl Sim {
    fn new(n: usize, cfg: ResourcesConfig) -> Sim {
        Sim::build(n, cfg, &mut BTreeSet::new(), BTreeSet::new())
    }

    fn build(
        n: usize,
        cfg: ResourcesConfig,
        truth: &mut BTreeSet<(String, String)>,
        start_fails: BTreeSet<(String, String)>,
    ) -> Sim {
        Sim::build_with(n, cfg, truth, start_fails, BTreeSet::new())
    }

    fn build_held(n: usize, cfg: ResourcesConfig, held: BTreeSet<(String, String)>) -> Sim {
        Sim::build_with(n, cfg, &mut BTreeSet::new(), BTreeSet::new(), held)
    }

    /// Agents that never publish a promotion score.
    fn without_scores(n: usize, cfg: ResourcesConfig) -> Sim {
        Sim::build_tweaked(
            n,
            cfg,
            &mut BTreeSet::new(),
            BTreeSet::new(),
            BTreeSet::new(),
            |s| s.scores = false,
        )
    }

    fn build_with(
        n: usize,
        cfg: ResourcesConfig,
        truth: &mut BTreeSet<(String, String)>,
        start_fails: BTreeSet<(String, String)>,
        held: BTreeSet<(String, String)>,
    ) -> Sim {
        Sim::build_tweaked(n, cfg, truth, start_fails, held, |_| {})
    }

    fn build_tweaked(
        n: usize,
        cfg: ResourcesConfig,
        truth: &mut BTreeSet<(String, String)>,
        start_fails: BTreeSet<(String, String)>,
        held: BTreeSet<(String, String)>,
        tweak: impl FnOnce(&mut Sim),
    ) -> Sim {
        let names: Vec<String> = (1..=n).map(|i| format!("n{i}")).collect();
        let mut sim = Sim {
            names: names.clone(),
            managers: BTreeMap::new(),
            presence: BTreeMap::new(),
            queue: VecDeque::new(),
            truth: std::mem::take(truth),
            log: Vec::new(),
            fences: Vec::new(),
            stop_fails: BTreeSet::new(),
            start_fails,
            held,
            promoted: BTreeSet::new(),
            scores: true,
            wall: 1_000,
        };
        tweak(&mut sim);
        for (i, name) in names.iter().enumerate() {
            let m = Manager::new(Model::new(&cfg, n), name, i as u64 + 1, BTreeMap::new());
            sim.managers.insert(name.clone(), m);
            sim.presence.insert(
                name.clone(),
                Presence::Online {
                    nonce: i as u64 + 1,
                },
            );
        }
        for name in names {
            let effects = sim.managers[&name].start();
            sim.apply(&name, effects);
        }
        sim.views();
        sim.settle();
        sim
    }

    fn view(&self) -> View {
        let coordinator = self
            .names
            .iter()
            .find(|n| matches!(self.presence[*n], Presence::Online { .. }))
            .cloned();
        View {
            active: true,
            quorate: true,
            coordinator,
            nodes: self
                .names
                .iter()
                .map(|n| NodeCondition {
                    name: n.clone(),
                    state: self.presence[n],
                })
                .collect(),
        }
    }

    fn alive(&self) -> Vec<String> {
        self.names
            .iter()
            .filter(|n| matches!(self.presence[*n], Presence::Online { .. }))
            .cloned()
            .collect()
    }

    fn views(&mut self) {
        let v = self.view();
        for n in self.alive() {
            let effects = self
                .managers
                .get_mut(&n)
                .unwrap()
                .on_view(v.clone(), self.wall);
            self.apply(&n, effects);
        }
    }

    fn apply(&mut self, node: &str, effects: Vec<Effect>) {
        for e in effects {
            match e {
                Effect::Send(m) => self.queue.push_back((node.to_string(), m)),
                Effect::Run(o) => {
                    let key = (o.node.clone(), o.rsc.clone());
                    self.log
                        .push(format!("{} {} on {}", o.action, o.rsc, o.node));
                    let status = match o.action {
                        OcfAction::Start if self.start_fails.contains(&key) => {
                            OcfStatus::GenericError
                        }
                        OcfAction::Start => {
                            self.truth.insert(key.clone());
                            OcfStatus::Success
                        }
                        OcfAction::Stop if self.stop_fails.contains(&key) => OcfStatus::TimedOut,
                        // Stateful: a promoted instance refuses to stop
                        OcfAction::Stop if self.promoted.contains(&key) => {
                            OcfStatus::RunningPromoted
                        }
                        OcfAction::Stop => {
                            self.truth.remove(&key);
                            OcfStatus::Success
                        }
                        OcfAction::Promote => {
                            self.promoted.insert(key.clone());
                            OcfStatus::Success
                        }
                        OcfAction::Demote => {
                            self.promoted.remove(&key);
                            OcfStatus::Success
                        }
                        _ => OcfStatus::Success,
                    };
                    if self.held.contains(&key) {
                        continue;
                    }
                    let wall = self.wall;
                    let score = self.score_of(&key);
                    let m = self.managers.get_mut(node).unwrap();
                    m.set_promotion(&o.rsc, score);
                    let effects = m.on_done(&o, status, None, wall);
                    self.apply(node, effects);
                }
                Effect::Probe(bases) => {
                    let results = bases
                        .into_iter()
                        .map(|b| {
                            let key = (node.to_string(), b.clone());
                            let status = if self.promoted.contains(&key) {
                                OcfStatus::RunningPromoted
                            } else if self.truth.contains(&key) {
                                OcfStatus::Success
                            } else {
                                OcfStatus::NotRunning
                            };
                            (b, status)
                        })
                        .collect::<Vec<_>>();
                    for (b, _) in &results {
                        let score = self.score_of(&(node.to_string(), b.clone()));
                        self.managers.get_mut(node).unwrap().set_promotion(b, score);
                    }
                    let effects = self.managers.get_mut(node).unwrap().on_probed(results);
                    self.apply(node, effects);
                }
                Effect::Monitor(..) => {}
                Effect::Fence(target, _) => self.fences.push(target),
            }
        }
    }

    /// What a Stateful-like agent has published on that node.
    fn score_of(&self, key: &(String, String)) -> Option<Score> {
        if !self.scores || !self.truth.contains(key) {
            None
        } else if self.promoted.contains(key) {
            Some(Score::new(10))
        } else {
            Some(Score::new(5))
        }
    }

    /// Index of the first logged action starting with `prefix`.
    fn first(&self, prefix: &str) -> usize {
        self.log
            .iter()
            .position(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` in {:?}", self.log))
    }

    fn promoted_on(&self, rsc: &str) -> Vec<String> {
        self.promoted
            .iter()
            .filter(|(_, r)| r == rsc)
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Deliver everything queued (and what it leads to).
    fn settle(&mut self) {
        let mut rounds = 0;
        while let Some((from, msg)) = self.queue.pop_front() {
            rounds += 1;
            assert!(rounds < 100_000, "no quiescence");
            for n in self.alive() {
                let wall = self.wall;
                let effects =
                    self.managers
                        .get_mut(&n)
                        .unwrap()
                        .on_message(&from, msg.clone(), wall);
                self.apply(&n, effects);
            }
            self.check_never_twice();
        }
    }

    /// A primitive (not a clone) never runs on two nodes at once.
    fn check_never_twice(&self) {
        let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
        for (node, rsc) in &self.truth {
            let cloned = self
                .managers
                .values()
                .next()
                .unwrap()
                .model()
                .cloned
                .contains_key(rsc);
            if cloned {
                continue;
            }
            if let Some(other) = seen.insert(rsc, node) {
                panic!("{rsc} runs on {other} and {node}: {:?}", self.log);
            }
        }
        let model = self.managers.values().next().unwrap().model();
        for (rsc, (_, max)) in &model.promotable {
            let n = self.promoted_on(rsc).len() as u32;
            assert!(n <= *max, "{rsc} promoted on {n} nodes: {:?}", self.log);
        }
    }

    fn on(&self, rsc: &str) -> Vec<String> {
        self.truth
            .iter()
            .filter(|(_, r)| r == rsc)
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// The node dies uncleanly (its resources really keep running until fenced).
    fn lose(&mut self, node: &str) {
        self.presence.insert(node.to_string(), Presence::Unclean);
        self.views();
        self.settle();
    }

    fn fenced(&mut self, node: &str) {
        self.truth.retain(|(n, _)| n != node);
        self.promoted.retain(|(n, _)| n != node);
        self.presence.insert(node.to_string(), Presence::Fenced);
        self.views();
        self.settle();
    }

    fn on_node(&mut self, node: &str, f: impl FnOnce(&mut Manager, u64) -> Vec<Effect>) {
        let wall = self.wall;
        let effects = f(self.managers.get_mut(node).unwrap(), wall);
        self.apply(node, effects);
        self.settle();
    }

    fn status(&self) -> ResourcesStatus {
        self.managers[&self.alive()[0]].status()
    }
}

fn cfg(prims: &[&str]) -> ResourcesConfig {
    ResourcesConfig {
        primitives: prims.iter().map(|p| prim(p)).collect(),
        ..ResourcesConfig::default()
    }
}

#[test]
fn a_resource_starts_once_after_every_probe() {
    let sim = Sim::new(3, cfg(&["vip"]));
    assert_eq!(sim.on("vip").len(), 1);
    assert_eq!(sim.log, vec!["start vip on n1"]);
    let st = sim.status();
    assert_eq!(st.resources[0].on.len(), 1);
    assert!(st.waiting.is_none());
}

#[test]
fn a_lost_nodes_resource_waits_for_the_fence() {
    let mut sim = Sim::new(3, cfg(&["vip"]));
    let first = sim.on("vip")[0].clone();
    sim.lose(&first);
    assert_eq!(
        sim.on("vip"),
        vec![first.clone()],
        "not started elsewhere before the fence"
    );
    let st = sim.status();
    assert_eq!(
        st.resources[0].blocked.as_deref(),
        Some(format!("blocked: waiting for fencing of {first}").as_str())
    );
    sim.fenced(&first);
    let now = sim.on("vip");
    assert_eq!(now.len(), 1);
    assert_ne!(now[0], first);
    assert!(sim.status().resources[0].blocked.is_none());
}

#[test]
fn a_start_in_flight_on_a_lost_node_waits_for_the_fence() {
    // n1 gets the start; its agent brings vip up, and n1 dies before the
    // answer is reported: vip may well run there, nobody may start it
    let mut held = BTreeSet::new();
    held.insert(("n1".to_string(), "vip".to_string()));
    let mut sim = Sim::build_held(3, cfg(&["vip"]), held);
    assert_eq!(sim.on("vip"), vec!["n1"]);
    assert_eq!(sim.log, vec!["start vip on n1"]);
    sim.lose("n1");
    assert_eq!(
        sim.log,
        vec!["start vip on n1"],
        "started elsewhere before the fence"
    );
    let st = sim.status();
    assert_eq!(
        st.resources[0].blocked.as_deref(),
        Some("blocked: waiting for fencing of n1")
    );
    sim.fenced("n1");
    assert_eq!(sim.on("vip").len(), 1);
    assert_ne!(sim.on("vip")[0], "n1");
}

#[test]
fn anti_affinity_keeps_two_apart_after_a_failover() {
    let mut c = cfg(&["a", "b"]);
    c.colocations.push(ColocationConfig {
        resource: "b".into(),
        with: "a".into(),
        score: Score::MINUS_INFINITY,
        with_role: None,
    });
    let mut sim = Sim::new(3, c);
    let (a, b) = (sim.on("a")[0].clone(), sim.on("b")[0].clone());
    assert_ne!(a, b);
    sim.lose(&a);
    sim.fenced(&a);
    let (a2, b2) = (sim.on("a"), sim.on("b"));
    assert_eq!(a2.len(), 1);
    assert_eq!(b2.len(), 1);
    assert_ne!(a2, b2);
}

#[test]
fn a_group_starts_in_order_and_stops_in_reverse() {
    let mut c = cfg(&["ip", "fs", "web"]);
    c.groups.push(GroupConfig {
        id: "g".into(),
        members: vec!["ip".into(), "fs".into(), "web".into()],
    });
    let mut sim = Sim::new(2, c);
    assert_eq!(
        sim.log,
        vec!["start ip on n1", "start fs on n1", "start web on n1"]
    );
    sim.log.clear();
    sim.on_node("n1", |m, _| {
        m.admin(AdminChange::Standby {
            node: "n1".into(),
            on: true,
        })
    });
    assert_eq!(
        sim.log,
        vec![
            "stop web on n1",
            "stop fs on n1",
            "stop ip on n1",
            "start ip on n2",
            "start fs on n2",
            "start web on n2"
        ]
    );
    assert_eq!(sim.status().standby, vec!["n1"]);
}

#[test]
fn an_order_between_resources_holds_on_start_and_stop() {
    let mut c = cfg(&["db", "app"]);
    c.orders.push(OrderConfig {
        first: "db".into(),
        then: "app".into(),
        mandatory: true,
        symmetrical: true,
        first_promoted: false,
    });
    let mut sim = Sim::new(2, c);
    let db_start = sim.first("start db");
    let app_start = sim.first("start app");
    assert!(db_start < app_start, "{:?}", sim.log);
    // db moves: app stops first, starts after db
    let db = sim.on("db")[0].clone();
    let other = if db == "n1" { "n2" } else { "n1" };
    sim.log.clear();
    sim.on_node("n1", |m, _| {
        m.admin(AdminChange::Move {
            rsc: "db".into(),
            node: other.into(),
        })
    });
    assert!(
        sim.first("stop app") < sim.first("stop db"),
        "{:?}",
        sim.log
    );
    assert!(
        sim.first("start db") < sim.first("start app"),
        "{:?}",
        sim.log
    );
    assert_eq!(sim.on("db"), vec![other.to_string()]);
}

#[test]
fn a_monitor_failure_restarts_in_place_then_moves_after_the_threshold() {
    let mut c = cfg(&["web"]);
    c.primitives[0].migration_threshold = Some(2);
    c.primitives[0].failure_timeout = Some(Duration::from_secs(60));
    let mut sim = Sim::new(2, c);
    let home = sim.on("web")[0].clone();
    let home2 = home.clone();
    sim.on_node(&home, |m, w| {
        m.on_monitor("web", OcfStatus::NotRunning, None, w)
    });
    assert_eq!(
        sim.on("web"),
        vec![home.clone()],
        "restarted in place: {:?}",
        sim.log
    );
    assert_eq!(sim.status().resources[0].failcounts[&home], 1);
    sim.on_node(&home, |m, w| {
        m.on_monitor("web", OcfStatus::GenericError, None, w)
    });
    let now = sim.on("web");
    assert_eq!(now.len(), 1);
    assert_ne!(now[0], home2, "moved after 2 failures: {:?}", sim.log);
    // failcounts expire
    sim.wall += 61_000;
    sim.on_node(&home, |m, w| m.on_tick(w));
    assert!(sim.status().resources[0].failcounts.is_empty());
}

#[test]
fn a_failed_stop_fences_its_node_before_the_resource_moves() {
    let mut sim = Sim::new(3, cfg(&["vip"]));
    let home = sim.on("vip")[0].clone();
    sim.stop_fails.insert((home.clone(), "vip".into()));
    sim.on_node(&home, |m, w| {
        m.on_monitor("vip", OcfStatus::GenericError, None, w)
    });
    assert_eq!(sim.fences, vec![home.clone()]);
    assert_eq!(sim.on("vip"), vec![home.clone()]);
    let st = sim.status();
    assert!(
        st.resources[0]
            .blocked
            .as_deref()
            .unwrap_or("")
            .contains("stop failed"),
        "{st:?}"
    );
    sim.lose(&home);
    sim.fenced(&home);
    let now = sim.on("vip");
    assert_eq!(now.len(), 1);
    assert_ne!(now[0], home);
}

#[test]
fn a_start_failure_moves_the_resource_away() {
    let mut truth = BTreeSet::new();
    let fails: BTreeSet<(String, String)> = [("n1".to_string(), "x".to_string())].into();
    let sim = Sim::build(2, cfg(&["x"]), &mut truth, fails);
    assert_eq!(sim.on("x"), vec!["n2"], "{:?}", sim.log);
    assert_eq!(
        sim.log,
        vec!["start x on n1", "stop x on n1", "start x on n2"]
    );
    assert!(sim.status().resources[0]
        .last_error
        .as_deref()
        .unwrap_or("")
        .contains("start on n1"));
}

#[test]
fn sixteen_node_clone_loses_one_and_fifteen_keep_running() {
    let mut c = cfg(&["svc"]);
    c.clones.push(CloneConfig {
        id: "svc-clone".into(),
        of: "svc".into(),
        clone_max: None,
        clone_node_max: 1,
        interleave: false,
        promotable: false,
        promoted_max: 1,
    });
    let mut sim = Sim::new(16, c);
    assert_eq!(sim.on("svc").len(), 16);
    sim.log.clear();
    sim.lose("n7");
    sim.fenced("n7");
    let on = sim.on("svc");
    assert_eq!(on.len(), 15);
    assert!(!on.contains(&"n7".to_string()));
    assert!(
        sim.log.is_empty(),
        "the 15 others were not touched: {:?}",
        sim.log
    );
}

#[test]
fn stopped_target_role_and_ban_and_clear() {
    let mut sim = Sim::new(2, cfg(&["vip"]));
    let home = sim.on("vip")[0].clone();
    sim.on_node("n1", |m, _| {
        m.admin(AdminChange::Ban {
            rsc: "vip".into(),
            node: home.clone(),
        })
    });
    let now = sim.on("vip");
    assert_eq!(now.len(), 1);
    assert_ne!(now[0], home);
    sim.on_node("n1", |m, _| {
        m.admin(AdminChange::TargetRole {
            rsc: "vip".into(),
            started: false,
        })
    });
    assert!(sim.on("vip").is_empty());
    sim.on_node("n2", |m, _| {
        m.admin(AdminChange::TargetRole {
            rsc: "vip".into(),
            started: true,
        })
    });
    assert_eq!(sim.on("vip").len(), 1);
    sim.on_node("n2", |m, _| {
        m.admin(AdminChange::Clear { rsc: "vip".into() })
    });
    assert_eq!(sim.status().admin_version, 4);
}

#[test]
fn shutdown_drains_the_node() {
    let mut sim = Sim::new(2, cfg(&["a", "b"]));
    let before: Vec<String> = sim.on("a").into_iter().chain(sim.on("b")).collect();
    assert!(before.contains(&"n1".to_string()));
    sim.on_node("n1", |m, _| m.shut_down());
    assert!(sim.managers["n1"].drained());
    assert_eq!(sim.on("a"), vec!["n2"]);
    assert_eq!(sim.on("b"), vec!["n2"]);
}

#[test]
fn resources_already_running_are_found_by_probes_and_kept() {
    // vip runs on n2 before the cluster starts (the probe finds it)
    let mut truth: BTreeSet<(String, String)> = [("n2".to_string(), "vip".to_string())].into();
    let mut sim = Sim::build(2, cfg(&["vip"]), &mut truth, BTreeSet::new());
    assert_eq!(sim.on("vip"), vec!["n2"]);
    assert!(sim.log.is_empty(), "{:?}", sim.log);
    sim.views();
    sim.settle();
    assert!(sim.log.is_empty());
}

/// 3 nodes: promotable clone `db` (promoted_max 1), `vip` with db's
/// Promoted role, started after db's promotion.
fn promotable_cfg() -> ResourcesConfig {
    let mut c = cfg(&["db", "vip"]);
    c.clones.push(CloneConfig {
        id: "db-clone".into(),
        of: "db".into(),
        clone_max: None,
        clone_node_max: 1,
        interleave: false,
        promotable: true,
        promoted_max: 1,
    });
    c.colocations.push(ColocationConfig {
        resource: "vip".into(),
        with: "db-clone".into(),
        score: Score::INFINITY,
        with_role: Some(crate::config::resources::Role::Promoted),
    });
    c.orders.push(OrderConfig {
        first: "db-clone".into(),
        then: "vip".into(),
        mandatory: true,
        symmetrical: true,
        first_promoted: true,
    });
    c
}

#[test]
fn a_promotable_clone_promotes_one_instance_and_the_vip_follows_it() {
    let sim = Sim::new(3, promotable_cfg());
    assert_eq!(sim.on("db").len(), 3);
    let promoted = sim.promoted_on("db");
    assert_eq!(promoted.len(), 1, "{:?}", sim.log);
    assert_eq!(sim.on("vip"), promoted);
    let promote = sim.first("promote db");
    let vip = sim.first("start vip");
    assert!(promote < vip, "{:?}", sim.log);
    let st = sim.status();
    let db = st.resources.iter().find(|r| r.id == "db").unwrap();
    assert!(db.promotable);
    assert_eq!(db.promote_target, promoted);
    let text = st.text();
    assert!(
        text.contains(&format!("Promoted: [ {} ]", promoted[0])),
        "{text}"
    );
    assert!(text.contains("Unpromoted: [ "), "{text}");
}

#[test]
fn without_a_promotion_score_nothing_is_promoted() {
    // Pacemaker: no score and no Promoted-role location -> -1, never promoted
    let sim = Sim::without_scores(3, promotable_cfg());
    assert_eq!(sim.on("db").len(), 3);
    assert!(sim.promoted_on("db").is_empty(), "{:?}", sim.log);
    assert!(sim.on("vip").is_empty(), "the vip needs a promoted db");
}

#[test]
fn losing_the_promoted_node_promotes_a_survivor_only_after_its_fence() {
    let mut sim = Sim::new(3, promotable_cfg());
    let old = sim.promoted_on("db")[0].clone();
    sim.log.clear();
    sim.lose(&old);
    assert!(
        !sim.log
            .iter()
            .any(|l| l.starts_with("promote") || l.starts_with("start vip")),
        "nothing may be promoted while {old} is unclean: {:?}",
        sim.log
    );
    let st = sim.status();
    let db = st.resources.iter().find(|r| r.id == "db").unwrap();
    assert_eq!(
        db.blocked.as_deref(),
        Some(format!("blocked: waiting for fencing of {old}").as_str())
    );
    sim.fenced(&old);
    let new = sim.promoted_on("db");
    assert_eq!(new.len(), 1, "{:?}", sim.log);
    assert_ne!(new[0], old);
    assert_eq!(sim.on("vip"), new);
    // survivors never stopped their instance
    assert!(
        !sim.log.iter().any(|l| l.starts_with("stop db")),
        "{:?}",
        sim.log
    );
}

#[test]
fn a_failed_promoted_instance_is_demoted_before_it_stops() {
    let mut sim = Sim::new(3, promotable_cfg());
    let p = sim.promoted_on("db")[0].clone();
    sim.log.clear();
    // the agent loses its promoted state (Stateful: monitor rc 9)
    sim.on_node(&p, |m, w| {
        m.on_monitor("db", OcfStatus::FailedPromoted, None, w)
    });
    let stop_vip = sim.first(&format!("stop vip on {p}"));
    let demote = sim.first(&format!("demote db on {p}"));
    let stop = sim.first(&format!("stop db on {p}"));
    assert!(stop_vip < demote && demote < stop, "{:?}", sim.log);
    assert!(sim.fences.is_empty(), "a demote first: the stop succeeds");
    assert_eq!(sim.promoted_on("db").len(), 1, "{:?}", sim.log);
    assert_eq!(sim.on("vip"), sim.promoted_on("db"));
}
