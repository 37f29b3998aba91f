//! `ironfenced` as a resource manager: real corosync 3 clusters in network
//! namespaces, one OpenIPMI `ipmi_sim` BMC per node whose power-off kills
//! the node (tests/support/fencing_lab.rs), and Debian's own OCF agents
//! (`ocf:heartbeat:IPaddr2`, `Dummy`, `Delay`) run by the daemons. A small
//! HTTP server listens on every node; a client on the switch asks the VIP
//! which node answers. The tests check where things run, in what order,
//! and above all that nothing starts elsewhere before its node is fenced.
#![cfg(feature = "corosync")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::Value;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::fencing_lab::{FenceLab, Options};

const VIP: &str = "192.0.2.100";
/// Until a fresh cluster placed and started everything.
const SETTLED_WITHIN: Duration = Duration::from_secs(30);
/// token 1000 + consensus 1200 + fence + start + slack.
const MOVED_WITHIN: Duration = Duration::from_secs(20);

/// The VIP on the nodes' eth0.
fn vip_resource() -> String {
    format!(
        r#"
[[resource]]
id = "vip"
agent = "ocf:heartbeat:IPaddr2"
params = {{ ip = "{VIP}", cidr_netmask = "24", nic = "eth0" }}
monitor = {{ interval = "2s", timeout = "10s" }}
"#
    )
}

/// A VIP and a Dummy "service" in one group (started in this order).
fn web_group() -> String {
    format!(
        r#"
{vip}
[[resource]]
id = "www"
agent = "ocf:heartbeat:Dummy"
monitor = {{ interval = "2s", timeout = "10s" }}

[[group]]
id = "web"
members = ["vip", "www"]
"#,
        vip = vip_resource()
    )
}

/// [`lab_with`], an HTTP server on every node.
fn serving_lab(nodes: usize, resources: String) -> FenceLab {
    let mut lab = lab_with(nodes, resources);
    for i in 1..=nodes {
        lab.start_http(i);
    }
    lab
}

fn lab_with(nodes: usize, resources: String) -> FenceLab {
    let mut opts = Options::nodes(nodes);
    opts.resources = resources;
    FenceLab::start(opts)
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The one node node I sees running RSC (waits for exactly one).
fn wait_one(lab: &FenceLab, i: usize, rsc: &str, limit: Duration) -> String {
    let mut on = Vec::new();
    lab.wait_for(&format!("{rsc} running on one node"), limit, |lab| {
        on = lab.running(i, rsc);
        on.len() == 1
    });
    on.remove(0)
}

fn node_no(name: &str) -> usize {
    name.trim_start_matches("node").parse().unwrap()
}

/// `ironfence resource status` on node I, as people read it.
fn status_text(lab: &FenceLab, i: usize) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ironfence"))
        .arg("--socket")
        .arg(lab.socket(i))
        .args(["resource", "status"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// node I's view of resource RSC.
fn view_of(lab: &FenceLab, i: usize, rsc: &str) -> Value {
    lab.resources(i)["status"]["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["id"] == rsc)
        .cloned()
        .unwrap_or(Value::Null)
}

/// Poll the VIP from the switch until `done` says stop; every answer with
/// its time (unix seconds).
fn watch_vip(
    lab: &FenceLab,
    limit: Duration,
    mut done: impl FnMut(&str) -> bool,
) -> Vec<(f64, String)> {
    let start = Instant::now();
    let mut seen = Vec::new();
    while start.elapsed() < limit {
        let t = now();
        let holders = vip_holders(lab);
        assert!(
            holders.len() <= 1,
            "the VIP is on nodes {holders:?} at once; answers: {seen:?}\n{}",
            lab.logs()
        );
        // 100 ms: an answer is seen within about 0.1 s of the VIP coming up
        if let Some(who) = lab.http_node_within(VIP, "0.1") {
            let stop = done(&who);
            seen.push((t, who));
            if stop {
                return seen;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!(
        "the VIP did not move within {limit:?}; answers: {seen:?}\n{}",
        lab.logs()
    );
}

/// The (resource, action) pairs node I's daemon ran to the end, in order,
/// from its log ("done" lines; probes and monitors are not logged there).
fn actions_in_log(lab: &FenceLab, i: usize) -> Vec<(String, String)> {
    lab.daemon_log(i)
        .lines()
        .filter(|l| l.contains(" done ") && l.contains("rsc="))
        .filter_map(|l| {
            let field = |k: &str| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix(k))
                    .map(|v| v.trim_matches('"').to_string())
            };
            Some((field("rsc=")?, field("action=")?))
        })
        .collect()
}

#[test]
fn power_loss_moves_the_vip_to_a_survivor_only_after_the_fence_record() {
    let mut lab = serving_lab(3, web_group());
    let holder = wait_one(&lab, 1, "www", SETTLED_WITHIN);
    let h = node_no(&holder);
    lab.wait_for("the VIP answers from its holder", SETTLED_WITHIN, |lab| {
        lab.http_node(VIP).as_deref() == Some(holder.as_str())
    });
    let survivors: Vec<usize> = (1..=3).filter(|&i| i != h).collect();
    assert_eq!(lab.running(survivors[0], "vip"), vec![holder.clone()]);

    // The holder's cluster stack dies; the node itself (and its VIP) stays
    // up until its BMC powers it off: nobody may take the VIP before that.
    let t_crash = now();
    lab.crash(h);
    let seen = watch_vip(&lab, MOVED_WITHIN, |who| who != holder);
    let (t_new, new_holder) = seen.last().cloned().unwrap();
    eprintln!(
        "power-off of {holder} {:.2} s after the crash, VIP answering on {new_holder} {:.2} s after",
        lab.power_off_times(h)[0] - t_crash,
        t_new - t_crash
    );
    let offs = lab.power_off_times(h);
    assert_eq!(offs.len(), 1, "{:?}", lab.power_log(h));
    assert!(
        t_new > offs[0],
        "{new_holder} answered at {t_new} before {holder} was powered off at {}",
        offs[0]
    );
    for &i in &survivors {
        let f = lab.fences_of(i, h);
        assert_eq!(f.len(), 1, "node{i}'s record of {holder}: {f:?}");
    }
    assert!(
        seen.iter()
            .all(|(t, who)| *who == holder && *t < offs[0] || *who == new_holder),
        "answers: {seen:?}"
    );
    // the group moved whole
    for &i in &survivors {
        lab.wait_for("both members on the new holder", MOVED_WITHIN, |lab| {
            lab.running(i, "vip") == vec![new_holder.clone()]
                && lab.running(i, "www") == vec![new_holder.clone()]
        });
    }
}

#[test]
fn fencing_that_fails_leaves_the_vip_stopped_until_a_human_confirms() {
    let mut lab = serving_lab(3, web_group());
    let holder = wait_one(&lab, 1, "vip", SETTLED_WITHIN);
    let h = node_no(&holder);
    let s: Vec<usize> = (1..=3).filter(|&i| i != h).collect();
    lab.silence_bmc(h);
    lab.crash(h);
    let why = format!("blocked: waiting for fencing of {holder}");
    for &i in &s {
        lab.wait_for(&format!("node{i} says why"), MOVED_WITHIN, |lab| {
            ["vip", "www"]
                .iter()
                .all(|r| view_of(lab, i, r)["blocked"].as_str() == Some(why.as_str()))
        });
    }
    // the fence keeps failing: nothing starts on a survivor, for a while
    let until = Instant::now() + Duration::from_secs(8);
    while Instant::now() < until {
        for &i in &s {
            for r in ["vip", "www"] {
                let on = lab.running(i, r);
                assert!(
                    on.iter().all(|n| *n == holder),
                    "{r} started on {on:?} with {holder} unfenced\n{}",
                    lab.logs()
                );
            }
        }
        assert!(actions_in_log(&lab, s[0]).is_empty());
        assert!(actions_in_log(&lab, s[1]).is_empty());
        std::thread::sleep(Duration::from_millis(200));
    }
    let (code, text_status, _) = lab.cli(s[0], &["cluster", "status"]);
    assert_eq!(code, 0);
    assert!(lab.fences_of(s[0], h).is_empty(), "{text_status}");
    let text = status_text(&lab, s[0]);
    assert!(text.contains(&why), "{text}");

    // a human pulls the plug and says so
    lab.pull_plug(h);
    let (code, _, err) = lab.cli(s[1], &["confirm", &holder]);
    assert_eq!(code, 0, "confirm: {err}");
    let seen = watch_vip(&lab, MOVED_WITHIN, |who| who != holder);
    let new_holder = &seen.last().unwrap().1;
    assert!(s.contains(&node_no(new_holder)), "{seen:?}");
    for &i in &s {
        assert!(view_of(&lab, i, "vip")["blocked"].is_null());
        assert_eq!(lab.fences_of(i, h)[0]["state"], "confirmed");
    }
}

#[test]
fn anti_affinity_keeps_two_resources_apart_after_a_failover() {
    // a prefers node1, then node2; b prefers node2; they never share a node
    let rsc = r#"
[[resource]]
id = "a"
agent = "ocf:heartbeat:Dummy"
monitor = { interval = "2s" }

[[resource]]
id = "b"
agent = "ocf:heartbeat:Dummy"
monitor = { interval = "2s" }

[[colocation]]
resource = "a"
with = "b"
score = "-INFINITY"

[[location]]
resource = "a"
node = "node1"
score = 100

[[location]]
resource = "a"
node = "node2"
score = 50

[[location]]
resource = "b"
node = "node2"
score = 100
"#;
    let mut lab = lab_with(3, rsc.to_string());
    assert_eq!(wait_one(&lab, 2, "a", SETTLED_WITHIN), "node1");
    assert_eq!(wait_one(&lab, 2, "b", SETTLED_WITHIN), "node2");
    lab.crash(1);
    lab.wait_for("a moved", MOVED_WITHIN, |lab| {
        lab.running(2, "a") == vec!["node3"]
    });
    assert!(
        !lab.fences_of(2, 1).is_empty(),
        "a moved before node1's fence"
    );
    assert_eq!(lab.running(3, "b"), vec!["node2"], "b stayed");
    // b never stopped
    assert_eq!(
        actions_in_log(&lab, 2),
        vec![("b".to_string(), "start".to_string())]
    );
}

#[test]
fn groups_and_orders_start_in_order_and_standby_drains_in_reverse() {
    // d1 takes a second to start: d2 must wait for it, and c (ordered
    // after the whole group, elsewhere) too
    let rsc = r#"
[[resource]]
id = "d1"
agent = "ocf:heartbeat:Delay"
params = { startdelay = 1, stopdelay = 0, mondelay = 0 }
timeouts = { start = "10s", stop = "10s" }

[[resource]]
id = "d2"
agent = "ocf:heartbeat:Dummy"

[[resource]]
id = "d3"
agent = "ocf:heartbeat:Dummy"

[[group]]
id = "g"
members = ["d1", "d2", "d3"]

[[resource]]
id = "c"
agent = "ocf:heartbeat:Dummy"

[[order]]
first = "g"
then = "c"

[[colocation]]
resource = "c"
with = "g"
score = "-INFINITY"

[[location]]
resource = "g"
node = "node2"
score = 100
"#;
    let lab = lab_with(3, rsc.to_string());
    for r in ["d1", "d2", "d3"] {
        assert_eq!(wait_one(&lab, 1, r, SETTLED_WITHIN), "node2");
    }
    let c_on = wait_one(&lab, 1, "c", SETTLED_WITHIN);
    assert_ne!(c_on, "node2");
    let start = |r: &str| (r.to_string(), "start".to_string());
    let stop = |r: &str| (r.to_string(), "stop".to_string());
    assert_eq!(
        actions_in_log(&lab, 2),
        vec![start("d1"), start("d2"), start("d3")]
    );
    // c waited for the whole group: its start began after d3's ended
    let at = |i: usize, rsc: &str, what: &str| -> String {
        lab.daemon_log(i)
            .lines()
            .find(|l| {
                l.contains(what) && l.contains(&format!("rsc={rsc} ")) && l.contains("action=start")
            })
            .map(|l| l.split_whitespace().next().unwrap().to_string())
            .unwrap_or_else(|| panic!("no {what} of {rsc} on node{i}"))
    };
    let c = node_no(&c_on);
    assert!(
        at(c, "c", "running") >= at(2, "d3", " done "),
        "c before the group\n{}",
        lab.logs()
    );

    let (code, _, err) = lab.cli(1, &["node", "standby", "node2"]);
    assert_eq!(code, 0, "{err}");
    lab.wait_for("the group left node2", MOVED_WITHIN, |lab| {
        ["d1", "d2", "d3"].iter().all(|r| {
            let on = lab.running(1, r);
            on.len() == 1 && on[0] != "node2"
        })
    });
    assert_eq!(
        actions_in_log(&lab, 2),
        vec![
            start("d1"),
            start("d2"),
            start("d3"),
            stop("d3"),
            stop("d2"),
            stop("d1")
        ]
    );
    // c had to make room (anti-affinity) or stays: either way never with g
    let g_on = lab.running(1, "d1")[0].clone();
    lab.wait_for("c apart from g", MOVED_WITHIN, |lab| {
        let c = lab.running(1, "c");
        c.len() == 1 && c[0] != g_on && c[0] != "node2"
    });
    assert!(lab.fences_of(1, 2).is_empty(), "standby fenced nobody");
    let v = lab.resources(3);
    assert_eq!(v["status"]["standby"], serde_json::json!(["node2"]));
    let (code, _, err) = lab.cli(3, &["node", "unstandby", "node2"]);
    assert_eq!(code, 0, "{err}");
    lab.wait_for("standby cleared everywhere", MOVED_WITHIN, |lab| {
        (1..=3).all(|i| lab.resources(i)["status"]["standby"] == serde_json::json!([]))
    });
}

/// A promotable clone of Pacemaker's own `ocf:pacemaker:Stateful` (it
/// publishes its promotion score with crm_attribute --promotion) and a VIP
/// that runs with the Promoted instance, started after the promotion.
fn promotable_db() -> String {
    format!(
        r#"
[[resource]]
id = "db"
agent = "ocf:pacemaker:Stateful"
monitor = {{ interval = "1s", timeout = "10s" }}

[[clone]]
id = "db-clone"
resource = "db"
promotable = true

{vip}
[[colocation]]
resource = "vip"
with = "db-clone"
with_role = "Promoted"
score = "INFINITY"

[[order]]
first = "db-clone"
first_action = "promote"
then = "vip"
"#,
        vip = vip_resource()
    )
}

/// What Stateful's own state file on node I says ("Promoted",
/// "Unpromoted", or "" when it is stopped there).
fn stateful_role(lab: &FenceLab, i: usize) -> String {
    std::fs::read_to_string(lab.rsctmp(i).join("Stateful-db.state"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Nodes never powered off in this lab (so their agents still run) whose
/// Stateful instance is promoted. A reboot fence powers the victim on
/// again, with the stale state file of its killed agent: it does not count.
fn live_promoted(lab: &FenceLab, n: usize) -> Vec<usize> {
    (1..=n)
        .filter(|&i| lab.power_off_times(i).is_empty() && stateful_role(lab, i) == "Promoted")
        .collect()
}

/// The one node that runs db promoted, as node I's status says.
fn promoted_in_status(lab: &FenceLab, i: usize) -> Vec<String> {
    view_of(lab, i, "db")["on"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, st)| *st == "promoted")
        .map(|(n, _)| n.clone())
        .collect()
}

#[test]
fn a_promotable_clone_is_promoted_on_one_node_and_elsewhere_only_after_the_fence() {
    let mut lab = serving_lab(3, promotable_db());
    let mut p = Vec::new();
    lab.wait_for(
        "db promoted on one node, the VIP with it",
        SETTLED_WITHIN,
        |lab| {
            p = promoted_in_status(lab, 1);
            p.len() == 1 && lab.running(1, "vip") == p && lab.running(1, "db").len() == 3
        },
    );
    let holder = p[0].clone();
    let h = node_no(&holder);
    // the agent's own truth, and the scores it published through our
    // crm_attribute (10 promoted, 5 unpromoted)
    for i in 1..=3 {
        let want = if i == h { "Promoted" } else { "Unpromoted" };
        assert_eq!(stateful_role(&lab, i), want, "node{i}");
    }
    let db = view_of(&lab, 2, "db");
    assert_eq!(db["promotable"], true);
    for i in 1..=3 {
        let want = if i == h { 10 } else { 5 };
        assert_eq!(db["promotion_scores"][format!("node{i}")], want, "{db}");
    }
    lab.wait_for(
        "the VIP answers from the promoted node",
        SETTLED_WITHIN,
        |lab| lab.http_node(VIP).as_deref() == Some(holder.as_str()),
    );
    let text = status_text(&lab, 2);
    assert!(text.contains(&format!("Promoted: [ {holder} ]")), "{text}");

    // the promoted node's stack dies; its database stays promoted until
    // its BMC powers it off: no survivor may be promoted before that
    let t_crash = now();
    lab.crash(h);
    let survivors: Vec<usize> = (1..=3).filter(|&i| i != h).collect();
    let start = Instant::now();
    let new = loop {
        let live = live_promoted(&lab, 3);
        assert!(
            live.len() <= 1,
            "promoted on {live:?} at once\n{}",
            lab.logs()
        );
        let s: Vec<usize> = live.into_iter().filter(|i| survivors.contains(i)).collect();
        if let Some(&n) = s.first() {
            break n;
        }
        assert!(
            start.elapsed() < MOVED_WITHIN,
            "no survivor promoted\n{}",
            lab.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let t_promoted = now();
    let offs = lab.power_off_times(h);
    assert_eq!(offs.len(), 1, "{:?}", lab.power_log(h));
    assert!(
        offs[0] < t_promoted,
        "node{new} promoted before {holder} was powered off"
    );
    eprintln!(
        "power-off of {holder} {:.2} s after the crash, node{new} promoted by {:.2} s",
        offs[0] - t_crash,
        t_promoted - t_crash
    );
    for &i in &survivors {
        assert_eq!(lab.fences_of(i, h).len(), 1, "node{i}'s record of {holder}");
    }
    let new_name = format!("node{new}");
    let seen = watch_vip(&lab, MOVED_WITHIN, |who| who == new_name);
    assert!(
        seen.iter()
            .all(|(_, who)| *who == holder || *who == new_name),
        "{seen:?}"
    );
    // the other survivor kept its instance running all along
    let other = survivors.iter().find(|&&i| i != new).copied().unwrap();
    assert!(
        !actions_in_log(&lab, other)
            .iter()
            .any(|(r, a)| r == "db" && a == "stop"),
        "node{other} stopped db"
    );
}

#[test]
fn a_failed_promoted_instance_is_demoted_stopped_and_started_and_one_stays_promoted() {
    let lab = lab_with(3, promotable_db());
    let mut p = Vec::new();
    lab.wait_for("db promoted on one node", SETTLED_WITHIN, |lab| {
        p = promoted_in_status(lab, 1);
        p.len() == 1 && lab.running(1, "vip") == p
    });
    let h = node_no(&p[0]);
    // Stateful's test hook: its monitor exits with the code in STATE.rc
    let rc = lab.rsctmp(h).join("Stateful-db.state.rc");
    std::fs::write(&rc, "9\n").unwrap();
    lab.wait_for("the failure counted", MOVED_WITHIN, |lab| {
        view_of(lab, 1, "db")["failcounts"][format!("node{h}")] == 1
    });
    std::fs::remove_file(&rc).unwrap();
    let start = Instant::now();
    lab.wait_for(
        "db promoted on one node again, all three running",
        MOVED_WITHIN,
        |lab| {
            let live = live_promoted(lab, 3);
            assert!(live.len() <= 1, "promoted on {live:?} at once");
            let p = promoted_in_status(lab, 1);
            p.len() == 1 && lab.running(1, "db").len() == 3 && lab.running(1, "vip") == p
        },
    );
    let db_actions: Vec<String> = actions_in_log(&lab, h)
        .into_iter()
        .filter(|(r, _)| r == "db")
        .map(|(_, a)| a)
        .collect();
    let after_promote = db_actions
        .iter()
        .position(|a| a == "promote")
        .map(|i| &db_actions[i + 1..])
        .unwrap_or_default();
    assert!(
        after_promote.starts_with(&[
            "demote".to_string(),
            "stop".to_string(),
            "start".to_string()
        ]),
        "node{h}: {db_actions:?}"
    );
    assert!(
        lab.fences_of(1, h).is_empty(),
        "a demote first: the stop succeeded"
    );
    eprintln!("recovered in {:.2} s", start.elapsed().as_secs_f64());
}

#[test]
fn a_monitor_failure_restarts_in_place_and_moves_at_the_threshold() {
    let rsc = r#"
[[resource]]
id = "svc"
agent = "ocf:heartbeat:Dummy"
monitor = { interval = "1s", timeout = "5s" }
meta = { migration_threshold = 2 }

[[location]]
resource = "svc"
node = "node1"
score = 100
"#;
    let lab = lab_with(3, rsc.to_string());
    assert_eq!(wait_one(&lab, 2, "svc", SETTLED_WITHIN), "node1");
    let state = lab.rsctmp(1).join("Dummy-svc.state");
    let starts = |lab: &FenceLab| {
        actions_in_log(lab, 1)
            .iter()
            .filter(|(r, a)| r == "svc" && a == "start")
            .count()
    };
    assert_eq!(starts(&lab), 1);
    // the service dies behind the agent's back
    std::fs::remove_file(&state).expect("Dummy's state file");
    lab.wait_for("svc restarted on node1", MOVED_WITHIN, |lab| {
        starts(lab) == 2 && lab.running(2, "svc") == vec!["node1"]
    });
    let v = view_of(&lab, 2, "svc");
    assert_eq!(v["failcounts"]["node1"], 1, "{v}");
    // again: the threshold (2) is reached, it moves
    lab.wait_for("state file back", MOVED_WITHIN, |_| state.exists());
    std::fs::remove_file(&state).expect("Dummy's state file");
    lab.wait_for("svc moved away from node1", MOVED_WITHIN, |lab| {
        let on = lab.running(2, "svc");
        on.len() == 1 && on[0] != "node1"
    });
    assert_eq!(starts(&lab), 2, "not started a third time on node1");
    let v = view_of(&lab, 3, "svc");
    assert_eq!(v["failcounts"]["node1"], 2, "{v}");
    assert!(
        lab.fences_of(2, 1).is_empty(),
        "a monitor failure fences nobody"
    );
    // cleanup forgets the failures: it goes home
    let (code, _, err) = lab.cli(3, &["resource", "cleanup", "svc"]);
    assert_eq!(code, 0, "{err}");
    lab.wait_for("svc back on node1", MOVED_WITHIN, |lab| {
        lab.running(2, "svc") == vec!["node1"]
    });
}

#[test]
fn a_stop_that_times_out_fences_the_node_before_the_resource_moves() {
    let rsc = r#"
[[resource]]
id = "slow"
agent = "ocf:heartbeat:Delay"
params = { startdelay = 0, stopdelay = 30, mondelay = 0 }
timeouts = { start = "5s", stop = "2s" }

[[location]]
resource = "slow"
node = "node2"
score = 100
"#;
    let lab = lab_with(3, rsc.to_string());
    assert_eq!(wait_one(&lab, 1, "slow", SETTLED_WITHIN), "node2");
    let (code, _, err) = lab.cli(1, &["resource", "move", "slow", "node3"]);
    assert_eq!(code, 0, "{err}");
    lab.wait_for("slow on node3", Duration::from_secs(30), |lab| {
        lab.running(1, "slow") == vec!["node3"]
    });
    let offs = lab.power_off_times(2);
    assert_eq!(offs.len(), 1, "node2 fenced once: {:?}", lab.power_log(2));
    let f = lab.fences_of(1, 2);
    assert_eq!(f.len(), 1, "{f:?}");
    // node3 started it after node2 was powered off
    let started = lab
        .daemon_log(3)
        .lines()
        .find(|l| l.contains("running rsc=slow action=start"))
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .expect("node3 started slow");
    let t = rfc3339_unix(&started);
    assert!(t > offs[0], "started at {t}, node2 off at {}", offs[0]);
}

/// Unix seconds of an RFC 3339 UTC timestamp as the daemon logs it.
fn rfc3339_unix(ts: &str) -> f64 {
    let out = std::process::Command::new("date")
        .args(["-u", "-d", ts, "+%s.%N"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[test]
fn sixteen_nodes_lose_one_and_fifteen_clone_instances_keep_running() {
    let rsc = r#"
[[resource]]
id = "agentd"
agent = "ocf:heartbeat:Dummy"
monitor = { interval = "5s" }

[[clone]]
id = "agentd-clone"
resource = "agentd"
"#;
    let n = 16;
    let mut lab = lab_with(n, rsc.to_string());
    lab.wait_for("16 instances", Duration::from_secs(60), |lab| {
        lab.running(1, "agentd").len() == n
    });
    let victim = 7;
    lab.crash(victim);
    lab.wait_for("node7 fenced", MOVED_WITHIN, |lab| {
        !lab.fences_of(1, victim).is_empty()
    });
    std::thread::sleep(Duration::from_secs(3));
    let expect: Vec<String> = {
        let mut v: Vec<String> = (1..=n)
            .filter(|&i| i != victim)
            .map(|i| format!("node{i}"))
            .collect();
        v.sort();
        v
    };
    for i in (1..=n).filter(|&i| i != victim) {
        assert_eq!(lab.running(i, "agentd"), expect, "node{i}'s view");
        // one start, never a stop, one instance's state file
        assert_eq!(
            actions_in_log(&lab, i),
            vec![("agentd".to_string(), "start".to_string())],
            "node{i}"
        );
        let files = std::fs::read_dir(lab.rsctmp(i))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().starts_with("Dummy-"))
            })
            .count();
        assert_eq!(files, 1, "instances on node{i}");
    }
}

// ---------------------------------------------------------------------------
// Benchmark (issue 12), not in CI: `bash bench/resources_bench.sh [RUNS]`
// runs `cargo test --release --features corosync --test resources_cluster
// bench -- --ignored --nocapture` (IRONFENCE_BENCH_RUNS, default 10). The
// same 3-node lab and the same agent (IPaddr2, VIP preferring node3) first
// with ironfenced, then with Pacemaker 2.1 + fence_ipmilan.

const PCMK_VIP: &str = r#"<primitive id="vip" class="ocf" provider="heartbeat" type="IPaddr2"><instance_attributes id="vip-ia">
<nvpair id="vip-ip" name="ip" value="192.0.2.100"/>
<nvpair id="vip-cidr" name="cidr_netmask" value="24"/>
<nvpair id="vip-nic" name="nic" value="eth0"/>
</instance_attributes><operations><op id="vip-monitor" name="monitor" interval="2s" timeout="10s"/></operations></primitive>"#;
const PCMK_VIP_ON_NODE3: &str =
    r#"<rsc_location id="vip-prefers-node3" rsc="vip" node="node3" score="100"/>"#;

fn bench_vip() -> String {
    format!(
        r#"
{vip}
[[location]]
resource = "vip"
node = "node3"
score = 100
"#,
        vip = vip_resource()
    )
}

#[derive(Debug, Default, Clone, Copy)]
struct VipTrial {
    /// corosync's new membership without node3 (node1's log).
    detect: f64,
    /// The fence of node3 recorded as done.
    fenced: f64,
    /// The VIP answering HTTP from a survivor.
    vip: f64,
}

/// Wait until node3 holds the VIP again (it prefers node3).
fn vip_home(lab: &FenceLab, limit: Duration) {
    lab.wait_for("the VIP answers from node3", limit, |lab| {
        lab.http_node(VIP).as_deref() == Some("node3")
    });
}

/// The nodes whose eth0 is up and carries the VIP (the kernel's truth, not
/// a view; a dead node's downed link answers nobody).
fn vip_holders(lab: &FenceLab) -> Vec<usize> {
    let ip = |i: usize, what: &str| {
        let out = std::process::Command::new("ip")
            .args(["-n", &lab.cluster.ns(i), "-o", what, "show", "dev", "eth0"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    (1..=lab.len())
        .filter(|&i| {
            ip(i, "addr").contains(&format!("inet {VIP}/")) && ip(i, "link").contains(",UP")
        })
        .collect()
}

/// Power loss of node3 (its BMC turns it off), times after it.
fn vip_trial(lab: &mut FenceLab, pacemaker: bool, run: usize, silent_bmc: bool) -> VipTrial {
    vip_home(lab, Duration::from_secs(120));
    lab.wait_for("the VIP on node3 alone", Duration::from_secs(30), |lab| {
        vip_holders(lab) == vec![3]
    });
    if !pacemaker {
        // steady state: the start's answer is in (IPaddr2 answers HTTP
        // before its start returns)
        lab.wait_for("vip started on node3", Duration::from_secs(30), |lab| {
            let v = view_of(lab, 1, "vip");
            lab.running(1, "vip") == vec!["node3"] && v["pending"] == serde_json::json!([])
        });
    }
    let t0 = now();
    if silent_bmc {
        lab.silence_bmc(3);
        lab.pull_plug(3);
    } else {
        let out = lab.ipmitool(3, &["chassis", "power", "off"]);
        assert!(out.status.success(), "power off: {out:?}");
    }
    let seen = watch_vip(lab, Duration::from_secs(120), |who| who != "node3");
    let vip = seen.last().unwrap().0 - t0;
    let fenced = if pacemaker {
        let terminated = ["Peer node3 was terminated", "OK"];
        lab.wait_for(
            "Pacemaker recorded the fence",
            Duration::from_secs(60),
            |lab| support::bench::first_after(&lab.pacemaker_log(1), t0, &terminated).is_some(),
        );
        support::bench::first_after(&lab.pacemaker_log(1), t0, &terminated).unwrap()
    } else {
        lab.wait_for("the fence recorded", Duration::from_secs(60), |lab| {
            lab.fences_of(1, 3).len() > run
        });
        let f = lab.fences_of(1, 3).pop().unwrap();
        f["finished_ms"].as_u64().unwrap() as f64 / 1000.0 - t0
    };
    let t = VipTrial {
        detect: support::bench::corosync_detect(lab, t0),
        fenced,
        vip,
    };
    if silent_bmc {
        lab.wake_bmc(3);
        lab.cluster.node(3).heal();
    } else {
        lab.wait_for("node3 powered on", Duration::from_secs(30), |lab| {
            lab.powered(3)
        });
    }
    lab.boot(3);
    lab.start_http(3);
    if pacemaker {
        lab.wait_pacemaker_ready(Duration::from_secs(120));
    } else {
        lab.wait_active(1, 3, Duration::from_secs(30));
    }
    t
}

fn vip_report(name: &str, trials: &[VipTrial]) -> [f64; 3] {
    let col = |f: fn(&VipTrial) -> f64| {
        support::bench::median(&mut trials.iter().map(f).collect::<Vec<_>>())
    };
    let m = [col(|t| t.detect), col(|t| t.fenced), col(|t| t.vip)];
    eprintln!(
        "{name:<16} n={:<3} corosync detection {:.3} s | fence recorded {:.3} s | VIP answering on a survivor {:.3} s",
        trials.len(),
        m[0],
        m[1],
        m[2]
    );
    for (k, t) in trials.iter().enumerate() {
        eprintln!("  {name} #{k}: {t:?}");
        assert!(t.vip > t.fenced, "{name} #{k}: VIP before the fence record");
    }
    m
}

/// VmRSS (kB) and utime+stime (clock ticks) of a process.
fn rss_and_ticks(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (rss, ticks)
}

/// Node 1's processes by name prefix: (MB RSS, % CPU over `window`).
fn idle_cost(lab: &FenceLab, prefixes: &[&str], window: Duration) -> (f64, f64) {
    let out = std::process::Command::new("ip")
        .args(["netns", "pids", &lab.cluster.ns(1)])
        .output()
        .unwrap();
    let pids: Vec<u32> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .filter(|p| {
            let comm = std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
            prefixes.iter().any(|x| comm.trim().starts_with(x))
        })
        .collect();
    let before: u64 = pids.iter().map(|&p| rss_and_ticks(p).1).sum();
    std::thread::sleep(window);
    let (rss, after) = pids
        .iter()
        .map(|&p| rss_and_ticks(p))
        .fold((0, 0), |(r, t), (r2, t2)| (r + r2, t + t2));
    let hz = 100.0; // USER_HZ on Linux
    (
        rss as f64 / 1024.0,
        (after - before) as f64 / hz / window.as_secs_f64() * 100.0,
    )
}

#[test]
#[ignore = "benchmark: run by hand (bench/resources_bench.sh)"]
fn bench_fault_to_vip() {
    let runs: usize = std::env::var("IRONFENCE_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let idle = Duration::from_secs(20);
    let (ours, ours_cost) = {
        let mut opts = Options::nodes(3);
        opts.resources = bench_vip();
        let mut lab = FenceLab::start(opts);
        for i in 1..=3 {
            lab.start_http(i);
        }
        vip_home(&lab, SETTLED_WITHIN);
        std::thread::sleep(Duration::from_secs(5));
        let cost = (
            idle_cost(&lab, &["ironfenced"], idle),
            idle_cost(&lab, &["corosync"], idle),
        );
        let t: Vec<VipTrial> = (0..runs)
            .map(|r| vip_trial(&mut lab, false, r, false))
            .collect();
        (t, cost)
    };
    let sbd = {
        let mut opts = Options::nodes(3);
        opts.resources = bench_vip();
        opts.sbd_level = true;
        // the lab's BMCs answer in about a millisecond: 300 ms of silence
        // (two datagrams, 200 ms apart) is a dead one
        opts.login_timeout = "300ms";
        let mut lab = FenceLab::start(opts);
        for i in 1..=3 {
            lab.start_http(i);
        }
        (0..runs)
            .map(|r| vip_trial(&mut lab, false, r, true))
            .collect::<Vec<_>>()
    };
    let (pcmk, pcmk_cost, pcmk_dead_bmc) = {
        let mut opts = Options::nodes(3);
        opts.stack = support::fencing_lab::Stack::Pacemaker;
        opts.pcmk_resources = PCMK_VIP.to_string();
        opts.pcmk_constraints = PCMK_VIP_ON_NODE3.to_string();
        let mut lab = FenceLab::start(opts);
        for i in 1..=3 {
            lab.start_http(i);
        }
        vip_home(&lab, Duration::from_secs(120));
        std::thread::sleep(Duration::from_secs(5));
        let cost = (
            idle_cost(&lab, &["pacemaker"], idle),
            idle_cost(&lab, &["corosync"], idle),
        );
        let t: Vec<VipTrial> = (0..runs)
            .map(|_| vip_trial(&mut lab, true, 0, false))
            .collect();
        // its BMC dead and no SBD: does the VIP ever come back?
        vip_home(&lab, Duration::from_secs(120));
        let t0 = now();
        lab.silence_bmc(3);
        lab.pull_plug(3);
        let wait = Duration::from_secs(60);
        let start = Instant::now();
        let mut back = None;
        while start.elapsed() < wait {
            if let Some(who) = lab.http_node(VIP) {
                back = Some((now() - t0, who));
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        (t, cost, back)
    };
    eprintln!("fault: node3 powered off by its BMC (3 nodes, token 1000 ms, consensus 1200 ms, reboot fencing); times after the fault, medians");
    let a = vip_report("ironfence", &ours);
    let s = vip_report("ironfence-sbd", &sbd);
    let b = vip_report("pacemaker", &pcmk);
    eprintln!(
        "fault -> VIP: pacemaker/ironfence = {:.2}x; SBD path (BMC dead): {:.3} s vs bound detection + msgwait + 0.5 = {:.3} s; pacemaker with the BMC dead and no SBD: {}",
        b[2] / a[2],
        s[2],
        s[0] + support::fencing_lab::SBD_MSGWAIT.as_secs_f64() + 0.5,
        match pcmk_dead_bmc {
            Some((t, who)) => format!("VIP back on {who} after {t:.1} s"),
            None => format!("VIP still down after {} s", 60),
        }
    );
    eprintln!(
        "idle, node1, {} s: ironfenced {:.1} MB {:.2} % CPU + corosync {:.1} MB {:.2} % | pacemaker daemons {:.1} MB {:.2} % CPU + corosync {:.1} MB {:.2} %",
        idle.as_secs(),
        ours_cost.0 .0,
        ours_cost.0 .1,
        ours_cost.1 .0,
        ours_cost.1 .1,
        pcmk_cost.0 .0,
        pcmk_cost.0 .1,
        pcmk_cost.1 .0,
        pcmk_cost.1 .1
    );
}

#[test]
fn a_dead_bmc_and_an_sbd_level_move_the_vip_after_the_poison_pill() {
    let mut opts = Options::nodes(3);
    opts.resources = bench_vip();
    opts.sbd_level = true;
    let mut lab = FenceLab::start(opts);
    for i in 1..=3 {
        lab.start_http(i);
    }
    let holder = wait_one(&lab, 1, "vip", SETTLED_WITHIN);
    let h = node_no(&holder);
    lab.wait_for("the VIP answers from its holder", SETTLED_WITHIN, |lab| {
        lab.http_node(VIP).as_deref() == Some(holder.as_str())
    });
    let s: Vec<usize> = (1..=3).filter(|&i| i != h).collect();
    lab.silence_bmc(h);
    lab.pull_plug(h);
    let seen = watch_vip(&lab, Duration::from_secs(40), |who| who != holder);
    let t_vip = seen.last().unwrap().0;
    let f = lab.fences_of(s[0], h);
    assert_eq!(f.len(), 1, "{f:?}\n{}", lab.logs());
    assert_eq!(f[0]["level"], 2, "{}", f[0]);
    let done = f[0]["finished_ms"].as_u64().unwrap() as f64 / 1000.0;
    eprintln!("VIP at {t_vip}, fence recorded at {done}\n{}", lab.logs());
    assert!(t_vip > done, "VIP at {t_vip}, fence recorded at {done}");
}
