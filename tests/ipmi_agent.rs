//! `fence_ironfence_ipmi` (agent mode) and the `ipmi` device kind through
//! the daemon, against OpenIPMI's real `ipmi_sim`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;
mod support;

use harness::{stderr, stdout, Lab, CLI};
use std::process::{Command, Output, Stdio};
use std::time::Instant;
use support::{require_peer, IpmiSim};

fn agent(sim: &IpmiSim, args: &[&str]) -> Output {
    Command::new(CLI)
        .args([
            "agent",
            "ipmi",
            "--ip=127.0.0.1",
            "-l",
            "admin",
            "-p",
            "secret",
            "--lanplus",
        ])
        .arg(format!("--ipport={}", sim.port()))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn agent_status_off_on_reboot_like_fence_ipmilan() {
    require_peer("ipmi_sim");
    let sim = IpmiSim::start();
    let out = agent(&sim, &["-o", "status"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("Status: ON"));
    let out = agent(&sim, &["-o", "off"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!sim.power_on());
    let out = agent(&sim, &["-o", "status"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stdout(&out).contains("Status: OFF"));
    let out = agent(&sim, &["-o", "on"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(sim.power_on());
    sim.clear_power_log();
    let t = Instant::now();
    let out = agent(&sim, &["-o", "reboot"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(t.elapsed().as_millis() < 2000, "{:?}", t.elapsed());
    assert_eq!(
        sim.power_log(),
        ["power 0", "power 1"],
        "off, verified, then on"
    );
    // Options on stdin, as Pacemaker sends them (fence_ipmilan's names).
    let mut child = Command::new(CLI)
        .args(["agent", "ipmi"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    write!(
        child.stdin.take().unwrap(),
        "nodename=ctl-1\naction=off\nport=ctl-1\nipaddr=127.0.0.1\nipport={}\nlogin=admin\npasswd=secret\nlanplus=1\ncipher=3\nprivlvl=operator\npower_wait=0\n",
        sim.port()
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!sim.power_on());
}

#[test]
fn agent_method_cycle_also_from_off_and_observes_the_off() {
    require_peer("ipmi_sim");
    let sim = IpmiSim::start();
    // From on: ipmi_sim powers off, then on a second later; we see both.
    let out = agent(&sim, &["-o", "reboot", "-m", "cycle"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(sim.power_on());
    // From off (fence_ipmilan fails here): power on, success.
    sim.set_power(false);
    let out = agent(&sim, &["-o", "reboot", "--method=cycle"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(sim.power_on());
}

#[test]
fn agent_errors_are_clear_and_never_exit_2() {
    require_peer("ipmi_sim");
    let sim = IpmiSim::start();
    let out = agent(&sim, &["-o", "status", "-p", "wrong"]);
    assert_eq!(out.status.code(), Some(3), "login denied: {}", stderr(&out));
    assert!(stderr(&out).contains("password"), "{}", stderr(&out));
    let out = Command::new(CLI)
        .args(["agent", "ipmi", "-o", "status", "--ip=127.0.0.1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no password"), "{}", stderr(&out));
    let out = agent(&sim, &["-o", "off", "--cipher=0"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("refused"), "{}", stderr(&out));
    assert!(sim.power_on(), "nothing switched");
}

#[test]
fn ipmi_device_kind_through_the_daemon() {
    require_peer("ipmi_sim");
    let sims = IpmiSim::start_many(2);
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "secret\n").unwrap();
    let mut cfg = String::from(
        "[daemon]\nsocket = \"@DIR@/ironfenced.sock\"\nstate_dir = \"@DIR@/state\"\nverify_interval = \"50ms\"\nstorm_max_share = 1.0\n",
    );
    for (i, sim) in sims.iter().enumerate() {
        let n = i + 1;
        cfg.push_str(&format!(
            "[[node]]\nname = \"ctl-{n}\"\n[[device]]\nname = \"bmc-{n}\"\nkind = \"ipmi\"\naddress = \"127.0.0.1\"\nusername = \"admin\"\npassword_file = \"{}\"\nhost_list = [\"ctl-{n}\"]\nipmi = {{ port = {}, privilege = \"operator\" }}\n[[level]]\nindex = 1\ntarget = \"ctl-{n}\"\ndevices = [\"bmc-{n}\"]\n",
            pw.display(),
            sim.port()
        ));
    }
    let lab = Lab::new(&cfg);
    let _d = lab.start();
    let (code, v) = lab.json(&["reboot", "ctl-1"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["outcome"]["result"], "fenced");
    assert_eq!(sims[0].power_log(), ["power 0", "power 1"]);
    assert!(sims[1].power_log().is_empty(), "the other BMC is untouched");
    let (code, _) = lab.json(&["off", "ctl-2"]);
    assert_eq!(code, 0);
    assert!(!sims[1].power_on());
    let (_, v) = lab.json(&["status", "ctl-2"]);
    assert_eq!(v["devices"][0]["state"], "off", "{v}");
    assert!(lab.cli(&["monitor", "bmc-1"]).status.success());
}

/// Our own simulator (suite 17) run as a process, stopped by PID.
struct OurSim(std::process::Child, u16);

impl OurSim {
    fn start() -> OurSim {
        let port = support::free_udp_port();
        let mut child = Command::new(CLI)
            .args(["sim", "ipmi", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["--user", "admin:secret"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.contains("listening"), "{line}");
        OurSim(child, port)
    }
}

impl Drop for OurSim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn agent_diag_and_suite_17_against_our_simulator() {
    let sim = OurSim::start();
    let base = |action: &str| {
        Command::new(CLI)
            .args([
                "agent",
                "ipmi",
                "--ip=127.0.0.1",
                "-l",
                "admin",
                "-p",
                "secret",
                "-o",
                action,
            ])
            .arg(format!("--ipport={}", sim.1))
            .output()
            .unwrap()
    };
    let out = base("diag");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = base("reboot");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = base("status");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}
