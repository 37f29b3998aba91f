//! `ironfence agent sim` (and its launcher `fence-agents/fence_ironfence_sim`)
//! as Pacemaker and operators run a fence agent: options on stdin or argv,
//! `-o metadata` byte-for-byte the golden file and valid against
//! fence-agents' `metadata.rng`, fence-agents' exit codes, every fault mode
//! of the simulated BMC, and bad input refused before anything is touched.
//!
//! Every test keeps its simulated power states in a state file in its own
//! temp dir. Peers (`xmllint`, `fence_ipmilan`) must be installed: a missing
//! one fails the test (`tests/lab/install.sh` installs them).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod support;

use common::{clean_command, ironfence, ironfence_bin, package_root, run, Run};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::require_peer;

/// fence-agents exit codes (`fencing.py` `EC_*`).
const EC_OK: i32 = 0;
const EC_GENERIC: i32 = 1;
/// Bad arguments exit 1, as fencing.py does (2 means "off" to a status caller).
const EC_BAD_ARGS: i32 = 1;
const EC_LOGIN_DENIED: i32 = 3;
const EC_TIMED_OUT: i32 = 5;
const EC_WAITING_ON: i32 = 6;
const EC_WAITING_OFF: i32 = 7;
/// `status` action.
const STATUS_ON: i32 = 0;
const STATUS_OFF: i32 = 2;

const RNG: &str = "/usr/share/cluster/relaxng/metadata.rng";
const REGENERATE: &str =
    "cargo run -q -- agent sim -o metadata > fence-agents/metadata/fence_ironfence_sim.xml";

/// Short timeouts for the fault modes, so failures come quickly.
const QUICK: &[&str] = &[
    "--login-timeout=0.2",
    "--shell-timeout=0.1",
    "--power-timeout=0.4",
    "--stonith-status-sleep=0.05",
];

fn golden_path() -> PathBuf {
    package_root().join("fence-agents/metadata/fence_ironfence_sim.xml")
}

fn launcher_path() -> PathBuf {
    let path = package_root().join("fence-agents/fence_ironfence_sim");
    let mode = std::fs::metadata(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode();
    assert!(
        mode & 0o111 == 0o111,
        "{} must be executable (chmod +x; git update-index --chmod=+x), mode is {mode:o}",
        path.display()
    );
    path
}

/// One simulated machine room: a temp dir holding the state file.
struct Room {
    /// Kept for its lifetime: the temp dir goes away with the room.
    _dir: tempfile::TempDir,
    state: PathBuf,
}

impl Room {
    fn new() -> Room {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("sim-state.json");
        Room { _dir: dir, state }
    }

    fn state_arg(&self) -> String {
        format!("--state-file={}", self.state.display())
    }

    /// `ironfence agent sim --state-file=STATE ARGS...`.
    fn sim(&self, args: &[&str]) -> Run {
        let mut cmd = ironfence(["agent", "sim"]);
        cmd.arg(self.state_arg()).args(args);
        run(&mut cmd, None)
    }

    /// `ironfence agent sim` with `text` on stdin (no arguments).
    fn sim_stdin(&self, text: &str) -> Run {
        run(&mut ironfence(["agent", "sim"]), Some(text))
    }

    /// Power state of every plug the state file records.
    fn powers(&self) -> BTreeMap<String, String> {
        let text = std::fs::read_to_string(&self.state)
            .unwrap_or_else(|e| panic!("{}: {e}", self.state.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| {
            panic!("{} is not a state file ({e}): {text}", self.state.display())
        })
    }

    fn power(&self, plug: &str) -> Option<String> {
        self.powers().get(plug).cloned()
    }

    /// The raw state file (None if absent).
    fn snapshot(&self) -> Option<Vec<u8>> {
        std::fs::read(&self.state).ok()
    }

    /// Switch `plug` with a well-behaved sim and check it took.
    fn set(&self, plug: &str, action: &str) {
        self.sim(&["-o", action, "-n", plug]).expect_code(EC_OK);
        assert_eq!(self.power(plug).as_deref(), Some(action));
    }
}

#[track_caller]
fn assert_golden(actual: &str, source: &str) {
    let golden = std::fs::read_to_string(golden_path()).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; create it with: {REGENERATE}",
            golden_path().display()
        )
    });
    if actual != golden {
        let (a, g): (Vec<&str>, Vec<&str>) = (actual.lines().collect(), golden.lines().collect());
        let first = (0..a.len().max(g.len()))
            .find(|&i| a.get(i) != g.get(i))
            .unwrap_or(a.len().min(g.len()));
        panic!(
            "{source} differs from {} at line {} (actual {} lines, golden {} lines):\n  \
             golden: {:?}\n  actual: {:?}\n\
             If the change is intended, regenerate the golden file and review the diff:\n    {REGENERATE}",
            golden_path().display(),
            first + 1,
            a.len(),
            g.len(),
            g.get(first).copied().unwrap_or("(end of file)"),
            a.get(first).copied().unwrap_or("(end of output)"),
        );
    }
}

/// `xmllint --noout --relaxng metadata.rng FILE` must accept `xml`.
#[track_caller]
fn assert_valid_metadata(xml: &str, what: &str) {
    let xmllint = require_peer("xmllint");
    assert!(
        Path::new(RNG).is_file(),
        "missing {RNG}: run tests/lab/install.sh"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("metadata.xml");
    std::fs::write(&file, xml).unwrap();
    let mut cmd = Command::new(xmllint);
    cmd.args(["--noout", "--relaxng", RNG]).arg(&file);
    let r = run(&mut cmd, None);
    assert_eq!(
        r.code,
        Some(0),
        "{what} is not valid against {RNG}\n{}\n--- xml ---\n{xml}",
        r.describe()
    );
    assert!(r.stderr.contains("validates"), "{}", r.describe());
}

// ---------------------------------------------------------------------------
// metadata

#[test]
fn metadata_matches_golden_file() {
    let room = Room::new();
    let r = room.sim(&["-o", "metadata"]);
    r.expect_code(EC_OK);
    assert_golden(&r.stdout, "`ironfence agent sim -o metadata`");
    // Pacemaker's spelling, and the stdin form.
    let r = room.sim(&["--action=meta-data"]);
    r.expect_code(EC_OK);
    assert_golden(&r.stdout, "`ironfence agent sim --action=meta-data`");
    let r = room.sim_stdin("action=metadata\n");
    r.expect_code(EC_OK);
    assert_golden(&r.stdout, "`action=metadata` on stdin");
    assert!(
        room.snapshot().is_none(),
        "metadata must not touch the state file"
    );
}

#[test]
fn metadata_validates_against_metadata_rng() {
    let golden = std::fs::read_to_string(golden_path()).unwrap();
    assert_valid_metadata(&golden, "fence-agents/metadata/fence_ironfence_sim.xml");
    let r = Room::new().sim(&["-o", "metadata"]);
    r.expect_code(EC_OK);
    assert_valid_metadata(&r.stdout, "`ironfence agent sim -o metadata`");
    // What Pacemaker relies on: a plug parameter (so it passes port=) and the actions.
    for needle in [
        "<resource-agent name=\"fence_ironfence_sim\"",
        "<parameter name=\"plug\"",
        "<parameter name=\"port\" unique=\"0\" required=\"0\" deprecated=\"1\">",
        "<action name=\"off\" />",
        "<action name=\"on\" automatic=\"0\" />",
        "<action name=\"list-status\" />",
        "<action name=\"validate-all\" />",
    ] {
        assert!(
            r.stdout.contains(needle),
            "metadata lacks {needle:?}\n{}",
            r.stdout
        );
    }
    assert!(
        !r.stdout.contains("name=\"nodename\""),
        "nodename is hidden from metadata"
    );
}

/// `ironfence metadata fence_ipmilan` (no daemon needed) runs the real agent,
/// parses its XML and prints it again: the result must still be valid and
/// keep every parameter and action.
#[test]
fn fence_ipmilan_metadata_through_our_parser_stays_valid() {
    let agent = require_peer("fence_ipmilan");
    let mut cmd = clean_command(&agent);
    cmd.args(["-o", "metadata"]);
    let original = run(&mut cmd, None);
    original.expect_code(0);
    assert_valid_metadata(&original.stdout, "fence_ipmilan -o metadata");

    let ours = run(&mut ironfence(["metadata", "fence_ipmilan"]), None);
    ours.expect_code(0)
        .expect_stdout("<resource-agent name=\"fence_ipmilan\"");
    assert_valid_metadata(&ours.stdout, "`ironfence metadata fence_ipmilan`");

    let names = |xml: &str, tag: &str| -> Vec<String> {
        let open = format!("<{tag} name=\"");
        xml.match_indices(&open)
            .map(|(i, _)| {
                let rest = &xml[i + open.len()..];
                rest[..rest.find('"').unwrap()].to_string()
            })
            .collect()
    };
    for tag in ["parameter", "action"] {
        let want = names(&original.stdout, tag);
        assert!(!want.is_empty(), "fence_ipmilan declares no {tag}");
        assert_eq!(names(&ours.stdout, tag), want, "{tag} names differ");
    }
}

// ---------------------------------------------------------------------------
// stdin and argv

#[test]
fn stdin_exactly_as_pacemaker_sends_it() {
    let room = Room::new();
    let state = room.state.display();
    let r = room.sim_stdin(&format!(
        "nodename=n1\naction=off\nport=n1\nstate_file={state}\n"
    ));
    r.expect_code(EC_OK).expect_stdout("Success: Powered OFF");
    assert_eq!(room.power("n1").as_deref(), Some("off"), "{}", r.describe());

    let status = format!("nodename=n1\naction=status\nport=n1\nstate_file={state}\n");
    room.sim_stdin(&status)
        .expect_code(STATUS_OFF)
        .expect_stdout("Status: OFF");

    room.sim_stdin(&format!(
        "nodename=n1\naction=on\nport=n1\nstate_file={state}\n"
    ))
    .expect_code(EC_OK)
    .expect_stdout("Success: Powered ON");
    assert_eq!(room.power("n1").as_deref(), Some("on"));
    room.sim_stdin(&status)
        .expect_code(STATUS_ON)
        .expect_stdout("Status: ON");
}

#[test]
fn stdin_comments_quotes_spellings_and_booleans() {
    let room = Room::new();
    let state = room.state.display();
    // '#' comments, blank lines, quotes, '-' spellings, `plug` instead of `port`,
    // every accepted spelling of true.
    let r = room.sim_stdin(&format!(
        "# sent by a person\n\naction = off\nplug=\"n2\"\nstate-file='{state}'\nverbose=yes\nquiet=on\npower-timeout=5\nstonith_status_sleep=0.05\n"
    ));
    r.expect_code(EC_OK);
    assert_eq!(room.power("n2").as_deref(), Some("off"));
    for yes in ["1", "yes", "on", "true", "TRUE", "Yes"] {
        room.sim_stdin(&format!(
            "action=status\nport=n2\nstate_file={state}\nverbose={yes}\n"
        ))
        .expect_code(STATUS_OFF);
    }
    for no in ["0", "no", "off", "false"] {
        room.sim_stdin(&format!(
            "action=status\nport=n2\nstate_file={state}\nquiet={no}\n"
        ))
        .expect_code(STATUS_OFF);
    }
}

#[test]
fn argv_spellings() {
    let room = Room::new();
    let state = room.state.display().to_string();
    // -o / -n, separate values, --state-file PATH (separate).
    let mut cmd = ironfence(["agent", "sim", "-o", "off", "-n", "n1", "--state-file"]);
    cmd.arg(&room.state);
    run(&mut cmd, None).expect_code(EC_OK);
    assert_eq!(room.power("n1").as_deref(), Some("off"));
    // --action= / --plug= / --state_file= ('_' spelling).
    let mut cmd = ironfence(["agent", "sim", "--action=on", "--plug=n1"]);
    cmd.arg(format!("--state_file={state}"));
    run(&mut cmd, None).expect_code(EC_OK);
    assert_eq!(room.power("n1").as_deref(), Some("on"));
    // --action VALUE, --port (deprecated alias of plug), attached short values.
    room.sim(&["--action", "off", "--port", "n1"])
        .expect_code(EC_OK);
    assert_eq!(room.power("n1").as_deref(), Some("off"));
    room.sim(&["-ostatus", "-nn1"]).expect_code(STATUS_OFF);
    room.sim(&["--action=status", "--plug", "n1"])
        .expect_code(STATUS_OFF);
    // '-' and '_' in long names; boolean flags bare, with values, stacked.
    room.sim(&[
        "-o",
        "on",
        "-n",
        "n1",
        "--power_timeout=5",
        "--stonith-status-sleep",
        "0.05",
    ])
    .expect_code(EC_OK);
    for flag in [
        "--verbose",
        "--verbose=1",
        "--verbose=yes",
        "--verbose=on",
        "--verbose=true",
        "-v",
        "-qv",
        "--quiet=0",
    ] {
        room.sim(&["-o", "status", "-n", "n1", flag])
            .expect_code(STATUS_ON);
    }
    assert_eq!(room.powers().len(), 1, "{:?}", room.powers());
}

#[test]
fn status_of_a_fresh_plug_is_on_and_reboot_ends_on() {
    let room = Room::new();
    room.sim(&["-o", "status", "-n", "fresh"])
        .expect_code(STATUS_ON)
        .expect_stdout("Status: ON");
    room.set("n1", "off");
    room.sim(&["-o", "reboot", "-n", "n1", "--stonith-status-sleep=0.05"])
        .expect_code(EC_OK)
        .expect_stdout("Success: Rebooted");
    assert_eq!(room.power("n1").as_deref(), Some("on"));
    // No action given: fence-agents' default is reboot.
    room.sim(&["-n", "n1"])
        .expect_code(EC_OK)
        .expect_stdout("Success: Rebooted");
}

#[test]
fn list_and_list_status() {
    let room = Room::new();
    room.set("n2", "off");
    let r = room.sim(&["-o", "list", "--hosts=n1,n2,n3"]);
    r.expect_code(EC_OK);
    assert_eq!(r.stdout, "n1,\nn2,\nn3,\n", "{}", r.describe());
    let r = room.sim(&["-o", "list-status", "--hosts=n1,n2,n3"]);
    r.expect_code(EC_OK);
    assert_eq!(r.stdout, "n1,,ON\nn2,,OFF\nn3,,ON\n", "{}", r.describe());
    // Pacemaker's way: stdin, no plug for list.
    let r = room.sim_stdin(&format!(
        "action=list\nhosts=a,b\nstate_file={}\n",
        room.state.display()
    ));
    r.expect_code(EC_OK);
    assert_eq!(r.stdout, "a,\nb,\n", "{}", r.describe());
    // -C / --separator.
    let r = room.sim(&["-o", "list-status", "--hosts=n2", "-C", ";"]);
    r.expect_code(EC_OK);
    assert_eq!(r.stdout, "n2;;OFF\n", "{}", r.describe());
    // No hosts: an empty list, still success.
    let r = room.sim(&["-o", "list"]);
    r.expect_code(EC_OK);
    assert_eq!(r.stdout, "", "{}", r.describe());
}

#[test]
fn monitor_and_validate_all() {
    let room = Room::new();
    room.sim(&["-o", "monitor"]).expect_code(EC_OK);
    room.sim(&["-o", "validate-all"]).expect_code(EC_OK);
    room.sim(&["-o", "validate-all", "-n", "n1", "--fault=lies"])
        .expect_code(EC_OK);
    room.sim_stdin(&format!(
        "action=monitor\nstate_file={}\n",
        room.state.display()
    ))
    .expect_code(EC_OK);
    assert!(
        room.snapshot().is_none_or(|s| {
            s.is_empty()
                || serde_json::from_slice::<BTreeMap<String, String>>(&s)
                    .unwrap()
                    .is_empty()
        }),
        "monitor / validate-all changed power"
    );
}

// ---------------------------------------------------------------------------
// faults

#[test]
fn fault_lies_is_never_reported_fenced() {
    let room = Room::new();
    room.set("n1", "on");
    let before = room.snapshot();
    let mut args = vec!["-o", "off", "-n", "n1", "--fault=lies"];
    args.extend_from_slice(QUICK);
    let r = room.sim(&args);
    r.expect_code(EC_WAITING_OFF).expect_stderr("not fenced");
    assert!(!r.stdout.contains("Success"), "{}", r.describe());
    assert_eq!(room.snapshot(), before, "a lying BMC changed the state");
    assert_eq!(room.power("n1").as_deref(), Some("on"));

    // reboot: the off half is never observed either.
    let mut args = vec!["-o", "reboot", "-n", "n1", "--fault=lies"];
    args.extend_from_slice(QUICK);
    room.sim(&args)
        .expect_code(EC_WAITING_OFF)
        .expect_stderr("not fenced");
    assert_eq!(room.snapshot(), before);

    // on (unfence) through a liar: waiting for ON.
    room.set("n1", "off");
    let before = room.snapshot();
    let mut args = vec!["-o", "on", "-n", "n1", "--fault=lies"];
    args.extend_from_slice(QUICK);
    room.sim(&args).expect_code(EC_WAITING_ON);
    assert_eq!(room.snapshot(), before);
}

#[test]
fn fault_lies_via_stdin() {
    let room = Room::new();
    room.set("n1", "on");
    let before = room.snapshot();
    let r = room.sim_stdin(&format!(
        "nodename=n1\naction=off\nport=n1\nstate_file={}\nfault=lies\nlogin_timeout=0.2\nshell_timeout=0.1\npower_timeout=0.4\nstonith_status_sleep=0.05\n",
        room.state.display()
    ));
    r.expect_code(EC_WAITING_OFF).expect_stderr("not fenced");
    assert_eq!(room.snapshot(), before);
}

#[test]
fn fault_refuses_is_login_denied() {
    let room = Room::new();
    room.set("n1", "on");
    let before = room.snapshot();
    for action in ["off", "on", "reboot", "status"] {
        room.sim(&["-o", action, "-n", "n1", "--fault=refuses"])
            .expect_code(EC_LOGIN_DENIED)
            .expect_stderr("refused the login");
    }
    for action in ["list", "monitor"] {
        room.sim(&["-o", action, "--fault=refuses"])
            .expect_code(EC_LOGIN_DENIED);
    }
    assert_eq!(room.snapshot(), before);
}

#[test]
fn fault_silent_times_out_within_bound() {
    let room = Room::new();
    room.set("n1", "on");
    let before = room.snapshot();
    // login 0.2 + shell 0.1 (+ power 0.4 for off/on): well under the 5 s allowed.
    // The actions run at once, each bounded on its own.
    let cases = [
        ("off", Some("n1")),
        ("on", Some("n1")),
        ("reboot", Some("n1")),
        ("status", Some("n1")),
        ("list", None),
        ("list-status", None),
        ("monitor", None),
    ];
    std::thread::scope(|scope| {
        let room = &room;
        let runs: Vec<_> = cases
            .iter()
            .map(|&(action, plug)| {
                scope.spawn(move || {
                    let mut args = vec!["-o", action, "--fault=silent"];
                    if let Some(p) = plug {
                        args.extend(["-n", p]);
                    }
                    args.extend_from_slice(QUICK);
                    (action, room.sim(&args))
                })
            })
            .collect();
        for handle in runs {
            let (action, r) = handle.join().unwrap();
            r.expect_code(EC_TIMED_OUT);
            assert!(
                r.elapsed < Duration::from_secs(5),
                "{action} took {:?}, want < 5 s\n{}",
                r.elapsed,
                r.describe()
            );
        }
    });
    assert_eq!(room.snapshot(), before);
}

#[test]
fn fault_slow_still_succeeds() {
    let room = Room::new();
    let r = room.sim(&[
        "-o",
        "off",
        "-n",
        "n1",
        "--fault=slow",
        "--slow-by=0.3",
        "--stonith-status-sleep=0.05",
    ]);
    r.expect_code(EC_OK).expect_stdout("Success: Powered OFF");
    // The command and the read-back each wait slow_by.
    assert!(
        r.elapsed >= Duration::from_millis(600),
        "slow_by=0.3 ignored: {:?}",
        r.elapsed
    );
    assert_eq!(room.power("n1").as_deref(), Some("off"));
    room.sim(&["-o", "status", "-n", "n1", "--fault=slow", "--slow_by=0.3"])
        .expect_code(STATUS_OFF);
}

#[test]
fn delay_waits_before_fencing() {
    let room = Room::new();
    let r = room.sim(&["-o", "off", "-n", "n1", "--delay=0.4"]);
    r.expect_code(EC_OK);
    assert!(r.elapsed >= Duration::from_millis(400), "{:?}", r.elapsed);
    assert_eq!(room.power("n1").as_deref(), Some("off"));
}

// ---------------------------------------------------------------------------
// bad input: refused with exit 2, naming the culprit, nothing touched

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let room = Room::new();
    room.set("n1", "on");
    let before = room.snapshot();
    let state = room.state.display().to_string();
    let argv_cases: &[(&[&str], &str)] = &[
        (
            &["-o", "off", "-n", "n1", "--bogus-option"],
            "--bogus-option",
        ),
        (
            &["-o", "off", "-n", "n1", "--bogus-option=1"],
            "--bogus-option",
        ),
        (&["-o", "off", "-n", "n1", "-Z"], "-Z"),
        (&["-o", "off", "-n", "n1", "stray"], "stray"),
        (&["-o", "off"], "plug"),
        (&["-o", "off", "--plug="], "plug"),
        (&["-o", "reboot"], "plug"),
        (&["-o", "status"], "plug"),
        (&["-o", "explode", "-n", "n1"], "explode"),
        (&["-n", "n1", "--action=OFFF"], "OFFF"),
        (&["-o", "off", "-n", "n1", "--verbose=maybe"], "verbose"),
        (&["-o", "off", "-n", "n1", "--quiet=2"], "quiet"),
        (
            &["-o", "off", "-n", "n1", "--power-timeout=soon"],
            "power_timeout",
        ),
        (&["-o", "off", "-n", "n1", "--delay=-1"], "delay"),
        (&["-o", "off", "-n", "n1", "--retry-on=x"], "retry_on"),
        (&["-o", "off", "-n", "n1", "--fault=flaky"], "fault"),
        (&["-n", "n1", "-o"], "-o"),
    ];
    for (args, culprit) in argv_cases {
        let r = room.sim(args);
        r.expect_code(EC_BAD_ARGS).expect_stderr(culprit);
        assert_eq!(room.snapshot(), before, "{}", r.describe());
    }
    let stdin_cases: &[(&str, &str)] = &[
        ("bogus_opt=1\n", "bogus_opt"),
        ("colour=red\n", "colour"),
        ("port=n1\nnot a pair\n", "not a pair"),
        ("", "plug"),
        ("action=explode\nport=n1\n", "explode"),
        ("port=n1\nverbose=perhaps\n", "verbose"),
        ("port=n1\npower_timeout=-3\n", "power_timeout"),
        ("port=n1\nslow_by=later\n", "slow_by"),
        ("port=n1\nfault=sometimes\n", "fault"),
    ];
    for (lines, culprit) in stdin_cases {
        let text = if lines.contains("action=") {
            format!("nodename=n1\n{lines}state_file={state}\n")
        } else {
            format!("nodename=n1\naction=off\n{lines}state_file={state}\n")
        };
        let r = room.sim_stdin(&text);
        r.expect_code(EC_BAD_ARGS).expect_stderr(culprit);
        assert_eq!(room.snapshot(), before, "stdin:\n{text}\n{}", r.describe());
    }
    assert_eq!(room.power("n1").as_deref(), Some("on"));
}

#[test]
fn bad_input_never_creates_a_state_file() {
    let room = Room::new();
    room.sim(&["-o", "off", "-n", "n1", "--bogus"])
        .expect_code(EC_BAD_ARGS);
    room.sim(&["-o", "off"]).expect_code(EC_BAD_ARGS);
    assert!(
        room.snapshot().is_none(),
        "state file created by a refused call"
    );
}

#[test]
fn unknown_agent_kind() {
    run(&mut ironfence(["agent", "ipmi-xyz", "-o", "status"]), None)
        .expect_code(EC_BAD_ARGS)
        .expect_stderr("unknown agent kind `ipmi-xyz`");
    run(&mut ironfence(["agent"]), None)
        .expect_code(EC_BAD_ARGS)
        .expect_stderr("usage: ironfence agent KIND");
}

#[test]
fn state_file_that_is_not_json_is_an_error_not_a_success() {
    let room = Room::new();
    std::fs::write(&room.state, "this is not json").unwrap();
    let r = room.sim(&[
        "-o",
        "off",
        "-n",
        "n1",
        "--login-timeout=0.2",
        "--shell-timeout=0.1",
        "--power-timeout=0.3",
    ]);
    assert_ne!(r.code, Some(EC_OK), "{}", r.describe());
    assert!(!r.stdout.contains("Success"), "{}", r.describe());
    r.expect_stderr("not a sim state file");
    assert_eq!(
        std::fs::read_to_string(&room.state).unwrap(),
        "this is not json"
    );
    let r = room.sim(&["-o", "status", "-n", "n1"]);
    assert!(
        r.code != Some(STATUS_ON) && r.code != Some(STATUS_OFF),
        "{}",
        r.describe()
    );
    assert_eq!(r.code, Some(EC_GENERIC), "{}", r.describe());
}

// ---------------------------------------------------------------------------
// help, version, manpage

#[test]
fn help_version_manpage() {
    let room = Room::new();
    for flag in ["--help", "-h"] {
        let r = room.sim(&[flag]);
        r.expect_code(EC_OK)
            .expect_stdout("fence_ironfence_sim [options]")
            .expect_stdout("-o, --action=[action]")
            .expect_stdout("--state-file=[path]");
    }
    for flag in ["--version", "-V"] {
        let r = room.sim(&[flag]);
        r.expect_code(EC_OK);
        assert_eq!(
            r.stdout.trim(),
            format!("fence_ironfence_sim {}", env!("CARGO_PKG_VERSION")),
            "{}",
            r.describe()
        );
    }
    let r = room.sim(&["-o", "manpage"]);
    r.expect_code(EC_OK)
        .expect_stdout(".TH FENCE_IRONFENCE_SIM 8")
        .expect_stdout(".B -n, --plug=[id]");
    assert!(room.snapshot().is_none());
}

// ---------------------------------------------------------------------------
// the launcher and the install script

/// `fence-agents/fence_ironfence_sim` with IRONFENCE pointing at the binary.
fn launcher(args: &[&str]) -> Command {
    let mut cmd = clean_command(&launcher_path());
    cmd.env("IRONFENCE", ironfence_bin()).args(args);
    cmd
}

#[test]
fn launcher_with_ironfence_env() {
    let room = Room::new();
    let r = run(&mut launcher(&["-o", "metadata"]), None);
    r.expect_code(EC_OK);
    assert_golden(&r.stdout, "`fence_ironfence_sim -o metadata`");

    let state = room.state.display();
    run(
        &mut launcher(&[]),
        Some(&format!(
            "nodename=n1\naction=off\nport=n1\nstate_file={state}\n"
        )),
    )
    .expect_code(EC_OK);
    assert_eq!(room.power("n1").as_deref(), Some("off"));
    let mut cmd = launcher(&["-o", "status", "-n", "n1"]);
    cmd.arg(room.state_arg());
    run(&mut cmd, None).expect_code(STATUS_OFF);
    run(&mut launcher(&["-o", "off", "--bogus"]), None)
        .expect_code(EC_BAD_ARGS)
        .expect_stderr("--bogus");
}

/// A stand-in `ironfence` that prints its arguments one per line.
fn fake_ironfence(path: &Path, tag: &str) {
    std::fs::write(
        path,
        format!("#!/bin/sh\necho {tag}\nprintf '%s\\n' \"$@\"\n"),
    )
    .unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn launcher_finds_ironfence_next_to_it_and_passes_args_verbatim() {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("fence_ironfence_sim");
    std::fs::copy(launcher_path(), &copy).unwrap();
    fake_ironfence(&dir.path().join("ironfence"), "next-to");
    let mut cmd = clean_command(&copy);
    cmd.args(["-o", "off", "--plug=a b", ""]);
    let r = run(&mut cmd, None);
    r.expect_code(0);
    assert_eq!(
        r.stdout,
        "next-to\nagent\nsim\n-o\noff\n--plug=a b\n\n",
        "{}",
        r.describe()
    );

    // $IRONFENCE wins over the one next to it.
    let other = dir.path().join("other-ironfence");
    fake_ironfence(&other, "from-env");
    let mut cmd = clean_command(&copy);
    cmd.env("IRONFENCE", &other).arg("-o").arg("status");
    let r = run(&mut cmd, None);
    r.expect_code(0);
    assert_eq!(
        r.stdout,
        "from-env\nagent\nsim\n-o\nstatus\n",
        "{}",
        r.describe()
    );

    // stdin reaches the binary untouched.
    let cat = dir.path().join("cat-ironfence");
    std::fs::write(&cat, "#!/bin/sh\ncat\n").unwrap();
    std::fs::set_permissions(&cat, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cmd = clean_command(&copy);
    cmd.env("IRONFENCE", &cat);
    let r = run(&mut cmd, Some("action=off\nport=n1\n"));
    assert_eq!(r.stdout, "action=off\nport=n1\n", "{}", r.describe());
}

#[test]
fn install_script_into_destdir_is_idempotent() {
    let bin_dir = ironfence_bin().parent().unwrap().to_path_buf();
    assert!(
        bin_dir.join("ironfenced").is_file(),
        "cargo builds ironfenced for integration tests: {}",
        bin_dir.display()
    );
    let dest = tempfile::tempdir().unwrap();
    let script = package_root().join("fence-agents/install.sh");
    let install = || {
        let mut cmd = clean_command(Path::new("/bin/sh"));
        cmd.arg(&script)
            .args(["--prefix", "/usr"])
            .arg(&bin_dir)
            .env("DESTDIR", dest.path());
        run(&mut cmd, None)
    };
    let sbin = dest.path().join("usr/sbin");
    let first = install();
    first.expect_code(0);
    for name in ["ironfence", "ironfenced", "fence_ironfence_sim"] {
        let path = sbin.join(name);
        first.expect_stdout(&format!("installed  {}", path.display()));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755, "{}", path.display());
    }
    let second = install();
    second.expect_code(0);
    assert!(
        !second.stdout.contains("installed "),
        "{}",
        second.describe()
    );
    let launchers = std::fs::read_dir(package_root().join("fence-agents"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("fence_ironfence_")
        })
        .count();
    assert_eq!(
        second.stdout.matches("unchanged").count(),
        2 + launchers,
        "{}",
        second.describe()
    );
    let mut names: Vec<String> = std::fs::read_dir(&sbin)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    for expected in ["fence_ironfence_sim", "ironfence", "ironfenced"] {
        assert!(names.iter().any(|n| n == expected), "{names:?}");
    }
    assert_eq!(names.len(), 2 + launchers, "{names:?}");

    // The installed launcher finds the installed ironfence next to it.
    let r = run(
        clean_command(&sbin.join("fence_ironfence_sim")).args(["-o", "metadata"]),
        None,
    );
    r.expect_code(0);
    assert_golden(&r.stdout, "installed fence_ironfence_sim -o metadata");

    // A missing binary dir is an error naming it, and installs nothing.
    let empty = tempfile::tempdir().unwrap();
    let dest2 = tempfile::tempdir().unwrap();
    let mut cmd = clean_command(Path::new("/bin/sh"));
    cmd.arg(&script)
        .arg(empty.path())
        .env("DESTDIR", dest2.path());
    let r = run(&mut cmd, None);
    r.expect_code(1)
        .expect_stderr(&format!("{}/ironfence is missing", empty.path().display()));
    assert!(!dest2.path().join("usr").exists());
}

// ---------------------------------------------------------------------------
// huge values: bounded (7 days), refused, never a panic

/// A huge seconds value must be refused (exit 2), not crash the agent:
/// src/cli/agent.rs converts with `Duration::from_secs_f64`, which panics
/// above u64::MAX seconds, and `login + power_timeout` deadlines overflow
/// `Instant`.
#[test]
fn huge_seconds_are_refused_not_a_panic() {
    let room = Room::new();
    for arg in [
        "--power-timeout=1e30",
        "--delay=1e300",
        "--login-timeout=1e19",
        "--slow-by=1e30",
    ] {
        let r = room.sim(&["-o", "off", "-n", "n1", "--fault=slow", arg]);
        r.expect_code(EC_BAD_ARGS);
    }
}
