//! Several machines driven through one simulated CPG: every member of a
//! partition gets the same configuration changes and messages in the same
//! order, as corosync guarantees.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::config::cluster::DEFAULT_GROUP;

const PENDING: Duration = Duration::from_secs(5);

fn settings(id: u32) -> ClusterConfig {
    ClusterConfig {
        group: DEFAULT_GROUP.into(),
        fence_action: FenceAction::Reboot,
        two_node_delay: Duration::from_secs(5),
        retry_backoff: Duration::from_secs(2),
        retry_backoff_max: Duration::from_secs(60),
        this_id: id,
    }
}

fn config(variant: &str) -> BTreeMap<String, String> {
    [
        ("node[n1]".to_string(), "a".to_string()),
        ("device[bmc]".to_string(), variant.to_string()),
    ]
    .into()
}

struct SimNode {
    m: Machine,
    member: Member,
    up: bool,
    /// Partition (CPG group instance) this node is in.
    part: u32,
    fences: Vec<(String, Duration, Vec<Incarnation>)>,
    records: Vec<FenceNote>,
    refused: Option<String>,
    self_fenced: Option<String>,
}

struct Sim {
    nodes: Vec<SimNode>,
    now: Instant,
    wall: u64,
    queue: VecDeque<(u32, Member, Message)>,
    next_pid: u32,
}

impl Sim {
    fn new(n: u32) -> Sim {
        let mut sim = Sim {
            nodes: Vec::new(),
            now: Instant::now(),
            wall: 1_000_000,
            queue: VecDeque::new(),
            next_pid: 100,
        };
        for id in 1..=n {
            sim.add(id, "x");
        }
        sim
    }

    fn names(n: usize) -> Vec<(String, u32)> {
        (1..=n as u32).map(|i| (format!("n{i}"), i)).collect()
    }

    /// A fresh process for node `id` (not joined yet).
    fn add(&mut self, id: u32, variant: &str) -> usize {
        self.next_pid += 1;
        let me = Incarnation {
            node: id,
            pid: self.next_pid,
            nonce: Some(u64::from(self.next_pid) * 7919),
        };
        let total = self
            .nodes
            .iter()
            .map(|n| n.member.node)
            .max()
            .unwrap_or(0)
            .max(id);
        let m = Machine::new(
            me,
            &Sim::names(total.max(5) as usize),
            settings(id),
            config(variant),
            PENDING,
        );
        self.nodes.push(SimNode {
            m,
            member: Member {
                node: id,
                pid: me.pid,
            },
            up: false,
            part: 0,
            fences: Vec::new(),
            records: Vec::new(),
            refused: None,
            self_fenced: None,
        });
        self.nodes.len() - 1
    }

    fn idx(&self, id: u32) -> usize {
        self.nodes
            .iter()
            .rposition(|n| n.member.node == id && n.up)
            .or_else(|| self.nodes.iter().rposition(|n| n.member.node == id))
            .unwrap()
    }

    fn in_part(&self, part: u32) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].up && self.nodes[i].part == part)
            .collect()
    }

    fn members(&self, part: u32) -> Vec<Member> {
        self.in_part(part)
            .iter()
            .map(|&i| self.nodes[i].member)
            .collect()
    }

    fn apply(&mut self, i: usize, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Send(msg) => {
                    let n = &self.nodes[i];
                    if n.up {
                        self.queue.push_back((n.part, n.member, msg));
                    }
                }
                Action::Fence {
                    target,
                    delay,
                    covers,
                    ..
                } => self.nodes[i].fences.push((target, delay, covers)),
                Action::Record(note) => self.nodes[i].records.push(note),
                Action::Refuse(why) => self.nodes[i].refused = Some(why),
                Action::SelfFence(why) => self.nodes[i].self_fenced = Some(why),
            }
        }
    }

    /// Deliver queued messages until none is left.
    fn flush(&mut self) {
        while let Some((part, from, msg)) = self.queue.pop_front() {
            for i in self.in_part(part) {
                let (now, wall) = (self.now, self.wall);
                let a = self.nodes[i].m.on_message(now, wall, from, msg.clone());
                self.apply(i, a);
            }
        }
    }

    fn confchg(&mut self, part: u32, left: &[(Member, Reason)], joined: &[(Member, Reason)]) {
        let members = self.members(part);
        for i in self.in_part(part) {
            let (now, wall) = (self.now, self.wall);
            let a = self.nodes[i]
                .m
                .on_confchg(now, wall, &members, left, joined);
            self.apply(i, a);
        }
        self.flush();
    }

    /// Process `i` joins partition `part`.
    fn join(&mut self, i: usize, part: u32) {
        self.nodes[i].up = true;
        self.nodes[i].part = part;
        let m = self.nodes[i].member;
        self.confchg(part, &[], &[(m, Reason::Join)]);
    }

    fn start_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.join(i, 0);
        }
        let all: Vec<u32> = self.nodes.iter().map(|n| n.member.node).collect();
        self.quorum_all(0, &all, true);
    }

    /// Every node of `part` gets the same quorum view.
    fn quorum_all(&mut self, part: u32, members: &[u32], quorate: bool) {
        for i in self.in_part(part) {
            self.quorum(i, members, quorate, false);
        }
    }

    fn quorum(&mut self, i: usize, members: &[u32], quorate: bool, two_node: bool) {
        let mut v = QuorumView::quorate(Some(self.nodes[i].member.node), members.to_vec());
        v.quorate = quorate;
        v.two_node = two_node;
        let (now, wall) = (self.now, self.wall);
        let a = self.nodes[i].m.on_quorum(now, wall, v);
        self.apply(i, a);
        self.flush();
    }

    /// Process `i` dies with `reason` (as its partition sees it).
    fn lose(&mut self, i: usize, reason: Reason) {
        self.nodes[i].up = false;
        let part = self.nodes[i].part;
        let m = self.nodes[i].member;
        self.confchg(part, &[(m, reason)], &[]);
    }

    /// Split `ids` off into partition `part`; both sides see the others leave.
    fn split(&mut self, ids: &[u32], part: u32) {
        let old = self.nodes[self.idx(ids[0])].part;
        let moving: Vec<usize> = ids.iter().map(|&id| self.idx(id)).collect();
        let staying: Vec<Member> = self
            .in_part(old)
            .into_iter()
            .filter(|i| !moving.contains(i))
            .map(|i| self.nodes[i].member)
            .collect();
        let moved: Vec<Member> = moving.iter().map(|&i| self.nodes[i].member).collect();
        for &i in &moving {
            self.nodes[i].part = part;
        }
        let left: Vec<(Member, Reason)> = moved.iter().map(|m| (*m, Reason::NodeDown)).collect();
        self.confchg(old, &left, &[]);
        let left: Vec<(Member, Reason)> = staying.iter().map(|m| (*m, Reason::NodeDown)).collect();
        self.confchg(part, &left, &[]);
    }

    /// Partitions `a` and `b` merge into `a`.
    fn merge(&mut self, a: u32, b: u32) {
        let joining = self.members(b);
        for i in self.in_part(b) {
            self.nodes[i].part = a;
        }
        let joined: Vec<(Member, Reason)> = joining.iter().map(|m| (*m, Reason::NodeUp)).collect();
        self.confchg(a, &[], &joined);
    }

    /// Node process `i` reports its fence of `target`.
    fn finish_fence(&mut self, i: usize, target: &str, ok: bool) {
        let pos = self.nodes[i]
            .fences
            .iter()
            .position(|(t, _, _)| t == target)
            .expect("a fence to finish");
        let (_, _, covers) = self.nodes[i].fences.remove(pos);
        let by = self.nodes[i].member.node;
        let target_id = self.nodes[i].m.id_of(target).unwrap();
        self.wall += 100;
        let note = FenceNote {
            target: target.to_string(),
            target_id,
            by: format!("n{by}"),
            by_id: by,
            ok,
            result: if ok { "fenced" } else { "failed" }.into(),
            action: FenceAction::Reboot,
            level: Some(1),
            devices: vec!["bmc".into()],
            started_ms: self.wall - 50,
            finished_ms: self.wall,
            message: if ok {
                "fenced".into()
            } else {
                "BMC silent".into()
            },
            covers,
        };
        // As the runner does: multicast the result, tell the machine the
        // fence ended; the result is delivered back later.
        let n = &self.nodes[i];
        let (part, member) = (n.part, n.member);
        let (now, wall) = (self.now, self.wall);
        let a = self.nodes[i].m.on_fence_done(now, wall, target_id, true);
        self.apply(i, a);
        assert!(
            self.nodes[i].fences.iter().all(|(t, _, _)| t != target),
            "fenced {target} again before its result came back"
        );
        self.queue
            .push_back((part, member, Message::FenceResult(note)));
        self.flush();
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.wall += d.as_millis() as u64;
        for i in 0..self.nodes.len() {
            if self.nodes[i].up {
                let (now, wall) = (self.now, self.wall);
                let a = self.nodes[i].m.on_tick(now, wall);
                self.apply(i, a);
            }
        }
        self.flush();
    }

    fn state(&self, i: usize, node: &str) -> String {
        self.nodes[i]
            .m
            .status(DEFAULT_GROUP, 0)
            .nodes
            .iter()
            .find(|n| n.name == node)
            .map(|n| n.state.clone())
            .unwrap()
    }

    fn coordinator(&self, i: usize) -> Option<String> {
        self.nodes[i].m.status(DEFAULT_GROUP, 0).coordinator
    }

    fn fences_total(&self) -> usize {
        self.nodes.iter().map(|n| n.fences.len()).sum()
    }
}

#[test]
fn three_nodes_become_active_with_the_lowest_id_as_coordinator() {
    let mut sim = Sim::new(3);
    sim.start_all();
    for i in 0..3 {
        assert!(sim.nodes[i].m.is_active());
        assert_eq!(sim.coordinator(i).as_deref(), Some("n1"));
        for n in ["n1", "n2", "n3"] {
            assert_eq!(sim.state(i, n), "online", "{n} as seen by {i}");
        }
    }
    assert_eq!(sim.fences_total(), 0);
}

#[test]
fn a_lost_member_is_fenced_once_by_the_coordinator_and_recorded_everywhere() {
    let mut sim = Sim::new(3);
    sim.start_all();
    // corosync first says node down; the quorum view catches up after.
    sim.lose(2, Reason::NodeDown);
    assert_eq!(sim.state(0, "n3"), "lost (checking quorum)");
    assert_eq!(sim.fences_total(), 0, "no fence on a stale quorum view");
    sim.quorum_all(0, &[1, 2], true);
    assert_eq!(sim.nodes[0].fences.len(), 1, "the coordinator fences");
    assert_eq!(sim.nodes[1].fences.len(), 0, "nobody else does");
    assert_eq!(sim.state(1, "n3"), "UNCLEAN (offline)");
    let covers = sim.nodes[0].fences[0].2.clone();
    assert_eq!(covers.len(), 1);
    assert_eq!(covers[0].node, 3);
    // another quorum notification or tick does not fence again
    sim.quorum_all(0, &[1, 2], true);
    sim.advance(Duration::from_secs(10));
    assert_eq!(sim.fences_total(), 1);

    sim.finish_fence(0, "n3", true);
    for i in 0..2 {
        assert_eq!(sim.state(i, "n3"), "offline (fenced)");
    }
    assert!(
        sim.nodes[0].records.is_empty(),
        "the fencer recorded its own"
    );
    assert_eq!(sim.nodes[1].records.len(), 1, "the other member records it");
    sim.advance(Duration::from_secs(100));
    assert_eq!(sim.fences_total(), 0);
}

#[test]
fn quorum_first_then_confchg_fences_too() {
    let mut sim = Sim::new(3);
    sim.start_all();
    sim.quorum_all(0, &[1, 2, 3], true);
    sim.nodes[2].up = false;
    sim.quorum(0, &[1, 2], true, false);
    sim.quorum(1, &[1, 2], true, false);
    sim.nodes[2].up = true;
    sim.lose(2, Reason::ProcDown);
    assert_eq!(sim.nodes[0].fences.len(), 1);
}

#[test]
fn a_process_down_is_fenced_while_its_node_stays_in_the_quorum() {
    let mut sim = Sim::new(3);
    sim.start_all();
    sim.lose(1, Reason::ProcDown);
    // corosync on n2 still runs: quorum still lists it
    assert_eq!(sim.nodes[0].fences.len(), 1);
    assert_eq!(sim.nodes[0].fences[0].0, "n2");
}

#[test]
fn a_clean_leave_is_not_fenced() {
    let mut sim = Sim::new(3);
    sim.start_all();
    let m = sim.nodes[2].member;
    sim.queue.push_back((0, m, Message::Leaving { nonce: 1 }));
    sim.flush();
    sim.lose(2, Reason::ProcDown);
    sim.quorum_all(0, &[1, 2], true);
    assert_eq!(sim.fences_total(), 0);
    assert_eq!(sim.state(0, "n3"), "offline (left cleanly)");
    // cpg_leave's own reason is clean too
    sim.lose(1, Reason::Leave);
    assert_eq!(sim.fences_total(), 0);
}

#[test]
fn the_minority_fences_nobody_and_the_majority_fences_it() {
    let mut sim = Sim::new(3);
    sim.start_all();
    sim.split(&[3], 1);
    // n3's view may still say quorate with the old members: it waits
    assert_eq!(sim.nodes[2].fences.len(), 0);
    sim.quorum(2, &[3], false, false);
    sim.quorum_all(0, &[1, 2], true);
    assert_eq!(sim.nodes[2].fences.len(), 0, "the minority fences nobody");
    assert_eq!(
        sim.state(2, "n1"),
        "offline (lost without quorum: state unknown)"
    );
    assert_eq!(sim.nodes[0].fences.len(), 1);
    assert_eq!(sim.nodes[0].fences[0].0, "n3");
    assert_eq!(sim.nodes[1].fences.len(), 0);
}

#[test]
fn a_healed_minority_that_was_not_fenced_fences_itself() {
    let mut sim = Sim::new(3);
    sim.start_all();
    sim.split(&[3], 1);
    sim.quorum(2, &[3], false, false);
    sim.quorum_all(0, &[1, 2], true);
    sim.finish_fence(0, "n3", false); // the BMC did not answer
    assert_eq!(sim.state(0, "n3"), "UNCLEAN (offline)");
    // heal: n3's process was never restarted
    sim.merge(0, 1);
    assert!(
        sim.nodes[2].self_fenced.is_some(),
        "n3 must see it was declared lost"
    );
    assert!(sim.nodes[0].self_fenced.is_none() && sim.nodes[1].self_fenced.is_none());
    assert_eq!(sim.state(0, "n3"), "UNCLEAN (online)");
    assert_eq!(sim.coordinator(0).as_deref(), Some("n1"));
    assert_eq!(sim.coordinator(1).as_deref(), Some("n1"));
    // n3's own claims (made without quorum) were never shared
    assert_eq!(sim.state(0, "n1"), "online");
    assert_eq!(sim.state(1, "n2"), "online");
}

#[test]
fn when_the_coordinator_dies_the_next_one_fences_both() {
    let mut sim = Sim::new(3);
    sim.start_all();
    sim.lose(2, Reason::NodeDown);
    sim.quorum_all(0, &[1, 2], true);
    assert_eq!(sim.nodes[0].fences.len(), 1);
    assert!(sim.state(1, "n3").starts_with("UNCLEAN"));
    // the coordinator dies mid-fence
    sim.lose(0, Reason::NodeDown);
    sim.quorum(1, &[2], true, false); // (say n2 keeps quorum: last_man_standing)
    assert_eq!(sim.coordinator(1).as_deref(), Some("n2"));
    let mut targets: Vec<String> = sim.nodes[1].fences.iter().map(|f| f.0.clone()).collect();
    targets.sort();
    assert_eq!(targets, ["n1", "n3"]);
}

#[test]
fn a_failed_fence_keeps_the_node_unclean_and_is_retried_with_back_off() {
    let mut sim = Sim::new(3);
    sim.start_all();
    sim.lose(2, Reason::NodeDown);
    sim.quorum_all(0, &[1, 2], true);
    sim.finish_fence(0, "n3", false);
    assert_eq!(sim.state(0, "n3"), "UNCLEAN (offline)");
    assert_eq!(sim.state(1, "n3"), "UNCLEAN (offline)");
    let st = sim.nodes[1].m.status(DEFAULT_GROUP, 0);
    let n3 = st.nodes.iter().find(|n| n.name == "n3").unwrap();
    assert_eq!(n3.failures, 1);
    assert_eq!(n3.last_error.as_deref(), Some("BMC silent"));
    assert_eq!(sim.nodes[1].records.len(), 1, "failures are recorded too");
    assert_eq!(sim.fences_total(), 0);
    sim.advance(Duration::from_millis(1900));
    assert_eq!(sim.fences_total(), 0, "not before the back-off");
    sim.advance(Duration::from_millis(200));
    assert_eq!(sim.nodes[0].fences.len(), 1, "retried after 2 s");
    sim.finish_fence(0, "n3", false);
    sim.advance(Duration::from_millis(3900));
    assert_eq!(sim.fences_total(), 0, "the second wait is 4 s");
    sim.advance(Duration::from_millis(200));
    assert_eq!(sim.nodes[0].fences.len(), 1);
    sim.finish_fence(0, "n3", true);
    assert_eq!(sim.state(1, "n3"), "offline (fenced)");
}

#[test]
fn a_human_confirm_resolves_an_unclean_node() {
    let mut sim = Sim::new(3);
    sim.start_all();
    sim.lose(2, Reason::NodeDown);
    sim.quorum_all(0, &[1, 2], true);
    sim.finish_fence(0, "n3", false);
    // a human confirms on n2
    let covers = sim.nodes[1].m.covers(3);
    let note = FenceNote {
        target: "n3".into(),
        target_id: 3,
        by: "n2".into(),
        by_id: 2,
        ok: true,
        result: "confirmed".into(),
        action: FenceAction::Off,
        level: None,
        devices: vec![],
        started_ms: sim.wall,
        finished_ms: sim.wall,
        message: "confirmed by cli".into(),
        covers,
    };
    let m = sim.nodes[1].member;
    sim.queue.push_back((0, m, Message::FenceResult(note)));
    sim.flush();
    assert_eq!(sim.state(0, "n3"), "offline (fenced)");
    sim.advance(Duration::from_secs(10));
    assert_eq!(sim.fences_total(), 0);
}

#[test]
fn a_joiner_with_another_config_refuses_and_names_the_sections() {
    let mut sim = Sim::new(2);
    sim.start_all();
    let odd = sim.add(3, "y");
    sim.join(odd, 0);
    let why = sim.nodes[odd].refused.clone().expect("refused");
    assert!(why.contains("device[bmc]"), "{why}");
    assert!(sim.nodes[0].refused.is_none());
    assert_eq!(sim.state(0, "n3"), "refused (config differs)");
    // it leaves (cleanly, or not): nobody fences it for that
    sim.lose(odd, Reason::ProcDown);
    sim.quorum_all(0, &[1, 2, 3], true);
    assert_eq!(sim.fences_total(), 0);
}

#[test]
fn a_second_daemon_on_the_same_node_refuses() {
    let mut sim = Sim::new(2);
    sim.start_all();
    let twin = sim.add(2, "x");
    sim.join(twin, 0);
    let why = sim.nodes[twin].refused.clone().expect("refused");
    assert!(why.contains("already a member"), "{why}");
    // it leaves (cpg_leave): the real n2 stays an online member
    sim.lose(twin, Reason::Leave);
    assert_eq!(sim.state(0, "n2"), "online");
    assert_eq!(sim.state(1, "n2"), "online");
    assert_eq!(sim.fences_total(), 0);
}

#[test]
fn a_fenced_node_that_reboots_is_accepted_again() {
    let mut sim = Sim::new(3);
    sim.start_all();
    sim.lose(2, Reason::NodeDown);
    sim.quorum_all(0, &[1, 2], true);
    sim.finish_fence(0, "n3", true);
    let back = sim.add(3, "x");
    sim.join(back, 0);
    sim.quorum_all(0, &[1, 2, 3], true);
    for i in [0, 1, back] {
        assert_eq!(sim.state(i, "n3"), "online", "as seen by {i}");
    }
    assert!(sim.nodes[back].self_fenced.is_none());
    assert!(sim.nodes[back].m.is_active());
    // the newcomer learned the fence of its node's earlier life
    let st = sim.nodes[back].m.status(DEFAULT_GROUP, 0);
    let n3 = st.nodes.iter().find(|n| n.name == "n3").unwrap();
    assert!(n3.last_fence.as_ref().is_some_and(|f| f.ok));
    assert_eq!(sim.fences_total(), 0);
}

#[test]
fn a_hung_member_continued_after_its_fence_is_not_a_member() {
    let mut sim = Sim::new(3);
    sim.start_all();
    sim.split(&[3], 1); // SIGSTOP: it sees nothing; the others see it go
    sim.quorum_all(0, &[1, 2], true);
    sim.finish_fence(0, "n3", true);
    // SIGCONT: the same process comes back (the fence did not kill it)
    sim.merge(0, 1);
    assert!(sim.nodes[2].self_fenced.is_some());
    assert_ne!(sim.state(0, "n3"), "online");
}

#[test]
fn a_restarted_daemon_of_an_unclean_node_is_still_fenced() {
    let mut sim = Sim::new(3);
    sim.start_all();
    sim.lose(2, Reason::ProcDown);
    sim.finish_fence(0, "n3", false);
    let again = sim.add(3, "x");
    sim.join(again, 0);
    assert_eq!(sim.state(0, "n3"), "UNCLEAN (online)");
    assert!(
        sim.nodes[again].self_fenced.is_none(),
        "a new process is no zombie"
    );
    sim.advance(Duration::from_secs(3));
    assert_eq!(
        sim.nodes[0].fences.len(),
        1,
        "the machine was never proven dead"
    );
}

#[test]
fn two_node_partition_the_lower_id_fences_at_once_the_other_waits() {
    let mut sim = Sim::new(2);
    sim.start_all();
    sim.split(&[2], 1);
    sim.quorum(0, &[1], true, true);
    sim.quorum(1, &[2], true, true);
    assert_eq!(sim.nodes[0].fences.len(), 1);
    assert_eq!(sim.nodes[0].fences[0].1, Duration::ZERO);
    assert_eq!(sim.nodes[1].fences.len(), 1);
    assert_eq!(sim.nodes[1].fences[0].1, Duration::from_secs(5));
}

#[test]
fn two_node_both_sides_claim_each_other_the_lower_id_keeps_its_claim() {
    let mut sim = Sim::new(2);
    sim.start_all();
    sim.split(&[2], 1);
    sim.quorum(0, &[1], true, true);
    sim.quorum(1, &[2], true, true);
    sim.finish_fence(0, "n2", false);
    sim.finish_fence(1, "n1", false);
    sim.merge(0, 1);
    assert!(sim.nodes[0].self_fenced.is_none(), "n1 survives");
    assert!(sim.nodes[1].self_fenced.is_some(), "n2 fences itself");
}

#[test]
fn a_lost_node_comes_back_before_quorum_confirmed_the_loss() {
    let mut sim = Sim::new(3);
    sim.start_all();
    sim.lose(2, Reason::NodeDown);
    // quorum still lists n3 for longer than the pending limit
    sim.advance(PENDING + Duration::from_millis(1));
    assert_eq!(
        sim.nodes[0].fences.len(),
        1,
        "a stale view does not hide a loss forever"
    );
}

#[test]
fn the_event_log_tells_the_story() {
    let mut sim = Sim::new(3);
    sim.start_all();
    sim.lose(2, Reason::NodeDown);
    sim.quorum_all(0, &[1, 2], true);
    sim.finish_fence(0, "n3", true);
    let st = sim.nodes[1].m.status(DEFAULT_GROUP, 0);
    let kinds: Vec<&str> = st.events.iter().map(|e| e.kind.as_str()).collect();
    for k in [
        "joined",
        "active",
        "coordinator",
        "lost",
        "unclean",
        "fencing",
        "fenced",
    ] {
        assert!(kinds.contains(&k), "{k} missing in {kinds:?}");
    }
    let later = sim.nodes[1].m.status(DEFAULT_GROUP, st.last_seq);
    assert!(later.events.is_empty());
    assert!(st.text().contains("n3"));
}

#[test]
fn a_member_fenced_for_a_failed_stop_that_vanishes_meanwhile_is_fenced_once() {
    let mut sim = Sim::new(3);
    sim.start_all();
    // the coordinator fences n2 while it is still a member
    let a = sim.nodes[0].m.fence_member(2, "a stop failed");
    sim.apply(0, a);
    sim.flush();
    assert_eq!(sim.nodes[0].fences.len(), 1);
    assert_eq!(sim.nodes[0].fences[0].0, "n2");
    assert!(
        sim.nodes[0].m.fence_member(2, "a stop failed").is_empty(),
        "asked twice: one fence"
    );
    // the fence kills it before its result is in: no second fence
    sim.lose(1, Reason::NodeDown);
    sim.quorum_all(0, &[1, 3], true);
    sim.advance(Duration::from_secs(10));
    assert_eq!(sim.fences_total(), 1, "{:?}", sim.nodes[0].fences);
    assert_eq!(sim.state(2, "n2"), "UNCLEAN (offline)");
    sim.finish_fence(0, "n2", true);
    assert_eq!(sim.state(2, "n2"), "offline (fenced)");
    sim.advance(Duration::from_secs(100));
    assert_eq!(sim.fences_total(), 0);
}
