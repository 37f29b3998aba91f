//! Proves the test harness (tests/support) against the real peers: OpenIPMI's
//! ipmi_sim driven by fence-agents' fence_ipmilan and by ipmitool. If this
//! fails, every IPMI integration test built on `IpmiSim` is suspect.

mod support;

use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use support::{require_peer, IpmiSim};

fn require_ipmi_peers() {
    for peer in ["ipmi_sim", "ipmitool", "fence_ipmilan"] {
        require_peer(peer);
    }
}

/// `fence_ipmilan <options for sim> -o ACTION`.
fn fence_ipmilan(sim: &IpmiSim, action: &str) -> Output {
    let agent = require_peer("fence_ipmilan");
    Command::new(&agent)
        .args(sim.fence_ipmilan_args())
        .args(["-o", action])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", agent.display()))
}

fn describe(out: &Output) -> String {
    format!(
        "{}\n--- stdout ---\n{}--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn fence_ipmilan_fences_an_ipmi_sim() {
    require_ipmi_peers();
    let sim = IpmiSim::start();
    assert!(sim.power_on(), "a fresh simulator's machine is on");
    assert!(sim.power_log().is_empty(), "{:?}", sim.power_log());

    // status while on: exit 0
    let out = fence_ipmilan(&sim, "status");
    assert_eq!(
        out.status.code(),
        Some(0),
        "status (on): {}",
        describe(&out)
    );

    // off
    let out = fence_ipmilan(&sim, "off");
    assert_eq!(out.status.code(), Some(0), "off: {}", describe(&out));
    assert!(!sim.power_on(), "power file after off");
    assert_eq!(sim.power_log(), ["power 0"]);

    // status while off: the fence agent API says exit 2
    let out = fence_ipmilan(&sim, "status");
    assert_eq!(
        out.status.code(),
        Some(2),
        "status (off): {}",
        describe(&out)
    );

    // on
    let out = fence_ipmilan(&sim, "on");
    assert_eq!(out.status.code(), Some(0), "on: {}", describe(&out));
    assert!(sim.power_on(), "power file after on");
    assert_eq!(sim.power_log(), ["power 0", "power 1"]);

    // reboot: off, then on, in that order, and on at the end
    sim.clear_power_log();
    let out = fence_ipmilan(&sim, "reboot");
    assert_eq!(out.status.code(), Some(0), "reboot: {}", describe(&out));
    assert!(sim.power_on(), "power file after reboot");
    let log = sim.power_log();
    let off = log.iter().position(|e| e == "power 0");
    let on = log.iter().rposition(|e| e == "power 1");
    match (off, on) {
        (Some(off), Some(on)) => assert!(off < on, "reboot log out of order: {log:?}"),
        _ => panic!("reboot log lacks power 0 / power 1: {log:?}"),
    }
    let timed = sim.power_log_timed();
    assert!(
        timed.windows(2).all(|w| w[0].0 <= w[1].0),
        "log timestamps go backwards: {timed:?}"
    );
}

#[test]
fn set_power_is_what_the_bmc_reports() {
    require_ipmi_peers();
    let sim = IpmiSim::start();

    sim.set_power(false);
    let out = sim.ipmitool(["chassis", "power", "status"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(
        stdout(&out).contains("Chassis Power is off"),
        "{}",
        describe(&out)
    );
    let out = fence_ipmilan(&sim, "status");
    assert_eq!(
        out.status.code(),
        Some(2),
        "status (off): {}",
        describe(&out)
    );

    sim.set_power(true);
    let out = sim.ipmitool(["chassis", "power", "status"]);
    assert!(
        stdout(&out).contains("Chassis Power is on"),
        "{}",
        describe(&out)
    );
    assert!(
        sim.power_log().is_empty(),
        "set_power is not logged: {:?}",
        sim.power_log()
    );

    // a hard reset is a pulse: logged, power stays on
    let out = sim.ipmitool(["chassis", "power", "reset"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(sim.power_on());
    assert_eq!(sim.power_log(), ["reset 1"]);
}

#[test]
fn start_many_gives_independent_bmcs() {
    require_ipmi_peers();
    let sims = IpmiSim::start_many(3);
    assert_eq!(sims.len(), 3);
    let ports: HashSet<u16> = sims.iter().map(IpmiSim::port).collect();
    assert_eq!(ports.len(), 3, "ports not distinct: {ports:?}");
    let dirs: HashSet<&Path> = sims.iter().map(IpmiSim::dir).collect();
    assert_eq!(dirs.len(), 3, "temp dirs not distinct: {dirs:?}");

    for sim in &sims {
        let out = sim.ipmitool(["chassis", "power", "status"]);
        assert!(
            out.status.success(),
            "port {}: {}",
            sim.port(),
            describe(&out)
        );
        assert!(
            stdout(&out).contains("Chassis Power is on"),
            "{}",
            describe(&out)
        );
    }

    // switching one off leaves the others alone
    let out = sims[1].ipmitool(["chassis", "power", "off"]);
    assert!(out.status.success(), "{}", describe(&out));
    let states: Vec<bool> = sims.iter().map(IpmiSim::power_on).collect();
    assert_eq!(states, [true, false, true]);
    for (i, sim) in sims.iter().enumerate() {
        let out = sim.ipmitool(["chassis", "power", "status"]);
        let want = if i == 1 { "off" } else { "on" };
        assert!(
            stdout(&out).contains(&format!("Chassis Power is {want}")),
            "sim {i}: {}",
            describe(&out)
        );
        let log = sim.power_log();
        if i == 1 {
            assert_eq!(log, ["power 0"]);
        } else {
            assert!(log.is_empty(), "sim {i}: {log:?}");
        }
    }
}

#[test]
fn drop_stops_the_simulator() {
    require_ipmi_peers();
    let sim = IpmiSim::start();
    let pid = sim.pid();
    let port = sim.port();
    let dir = sim.dir().to_path_buf();
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    drop(sim);
    // reaped by Drop, so not even a zombie is left under this PID
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "ipmi_sim (pid {pid}) still there after drop"
    );
    assert!(!dir.exists(), "temp dir {} left behind", dir.display());
    // and the port is free again
    std::net::UdpSocket::bind(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("port {port} still bound after drop: {e}"));
}
