//! Whatever another CPG member (or anything that joined the group) sends
//! must never panic the decoder, nor the membership machine that folds a
//! decoded message in.
#![no_main]

use ironfence::cluster::machine::{Machine, Member};
use ironfence::cluster::message::{decode, Incarnation};
use ironfence::config::cluster::DEFAULT_GROUP;
use ironfence::config::ClusterConfig;
use ironfence::fencer::FenceAction;
use libfuzzer_sys::fuzz_target;
use std::time::Duration;
use tokio::time::Instant;

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = decode(data) else { return };
    let settings = ClusterConfig {
        group: DEFAULT_GROUP.into(),
        fence_action: FenceAction::Reboot,
        two_node_delay: Duration::from_secs(5),
        retry_backoff: Duration::from_secs(2),
        retry_backoff_max: Duration::from_secs(60),
        this_id: 1,
    };
    let nodes: Vec<(String, u32)> = (1..=3).map(|i| (format!("n{i}"), i)).collect();
    let me = Incarnation {
        node: 1,
        pid: 10,
        nonce: Some(7),
    };
    let mut m = Machine::new(
        me,
        &nodes,
        settings,
        Default::default(),
        Duration::from_secs(5),
    );
    let members = [Member { node: 1, pid: 10 }, Member { node: 2, pid: 20 }];
    let now = Instant::now();
    let _ = m.on_confchg(
        now,
        1,
        &members,
        &[],
        &[(members[0], ironfence::cluster::Reason::Join)],
    );
    let _ = m.on_message(now, 2, members[1], msg.clone());
    let _ = m.on_message(now, 3, members[0], msg);
    let _ = m.status(DEFAULT_GROUP, 0).text();
});
