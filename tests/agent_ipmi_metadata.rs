//! `fence_ironfence_ipmi` (`ironfence agent ipmi`) as a drop-in for
//! `fence_ipmilan`, checked without any BMC:
//! - `-o metadata` is byte-for-byte `fence-agents/metadata/fence_ironfence_ipmi.xml`
//!   (also through the launcher, and in Pacemaker's spellings) and valid
//!   against fence-agents' `metadata.rng`;
//! - every parameter the installed `fence_ipmilan -o metadata` lists (parsed
//!   at test time) is in our metadata with the same option letters, type and
//!   deprecation, and our agent accepts it: as `name=value` on stdin, as its
//!   long option and as its short option (`-o validate-all`, which checks the
//!   options and touches no BMC);
//! - every action fence_ipmilan declares is ours too, except the ones listed in
//!   [`KNOWN_MISSING_ACTIONS`].
//!
//! Peers (`fence_ipmilan`, `xmllint`, metadata.rng) come from
//! `tests/lab/install.sh`; a missing one fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod support;

use common::{clean_command, ironfence, ironfence_bin, package_root, run, Run};
use quick_xml::events::Event;
use quick_xml::Reader;
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::require_peer;

const RNG: &str = "/usr/share/cluster/relaxng/metadata.rng";
const REGENERATE: &str =
    "cargo run -q -- agent ipmi -o metadata > fence-agents/metadata/fence_ironfence_ipmi.xml";

/// fence_ipmilan actions we do not offer (yet); when one is added, remove it
/// here. None now (`diag`, the NMI, came last).
const KNOWN_MISSING_ACTIONS: &[&str] = &[];

fn golden_path() -> PathBuf {
    package_root().join("fence-agents/metadata/fence_ironfence_ipmi.xml")
}

fn launcher_path() -> PathBuf {
    let path = package_root().join("fence-agents/fence_ironfence_ipmi");
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

/// One `<parameter>` of an agent's metadata.
#[derive(Debug, Clone, Default, PartialEq)]
struct Param {
    getopt: String,
    content_type: String,
    default: Option<String>,
    options: Vec<String>,
    deprecated: bool,
    obsoletes: Option<String>,
}

impl Param {
    /// The option spellings of `getopt mixed`, without value placeholders:
    /// `"-a, --ip=[ip]"` -> `["-a", "--ip"]`.
    fn spellings(&self) -> BTreeSet<String> {
        self.getopt
            .split(',')
            .map(|t| t.trim().split('=').next().unwrap_or("").to_string())
            .filter(|t| !t.is_empty())
            .collect()
    }

    fn short(&self) -> Option<String> {
        self.spellings()
            .into_iter()
            .find(|s| !s.starts_with("--") && s.starts_with('-'))
    }

    fn long(&self) -> Option<String> {
        self.spellings().into_iter().find(|s| s.starts_with("--"))
    }
}

/// Parameters (in order) and action names of a fence agent's metadata XML.
struct Metadata {
    name: String,
    params: Vec<(String, Param)>,
    actions: Vec<String>,
}

impl Metadata {
    fn parse(xml: &str, what: &str) -> Metadata {
        let mut reader = Reader::from_str(xml);
        let mut md = Metadata {
            name: String::new(),
            params: Vec::new(),
            actions: Vec::new(),
        };
        loop {
            let event = reader
                .read_event()
                .unwrap_or_else(|e| panic!("{what}: bad XML: {e}"));
            let e = match &event {
                Event::Start(e) | Event::Empty(e) => e,
                Event::Eof => break,
                _ => continue,
            };
            let attrs: BTreeMap<String, String> = e
                .attributes()
                .map(|a| {
                    let a = a.unwrap_or_else(|err| panic!("{what}: bad attribute: {err}"));
                    (
                        String::from_utf8_lossy(a.key.as_ref()).into_owned(),
                        a.unescape_value().unwrap().into_owned(),
                    )
                })
                .collect();
            let attr = |k: &str| attrs.get(k).cloned();
            match e.name().as_ref() {
                b"resource-agent" => md.name = attr("name").unwrap_or_default(),
                b"parameter" => md.params.push((
                    attr("name").unwrap_or_else(|| panic!("{what}: parameter without name")),
                    Param {
                        deprecated: attr("deprecated").as_deref() == Some("1"),
                        obsoletes: attr("obsoletes"),
                        ..Param::default()
                    },
                )),
                b"getopt" => {
                    if let Some((_, p)) = md.params.last_mut() {
                        p.getopt = attr("mixed").unwrap_or_default();
                    }
                }
                b"content" => {
                    if let Some((_, p)) = md.params.last_mut() {
                        p.content_type = attr("type").unwrap_or_default();
                        p.default = attr("default");
                    }
                }
                b"option" => {
                    if let Some((_, p)) = md.params.last_mut() {
                        p.options.push(attr("value").unwrap_or_default());
                    }
                }
                b"action" => md.actions.push(attr("name").unwrap_or_default()),
                _ => {}
            }
        }
        assert!(
            !md.params.is_empty(),
            "{what} declares no parameter:\n{xml}"
        );
        md
    }

    fn param(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|(n, _)| n == name).map(|(_, p)| p)
    }
}

fn fence_ipmilan_metadata() -> String {
    let agent = require_peer("fence_ipmilan");
    let mut cmd = clean_command(&agent);
    cmd.args(["-o", "metadata"]);
    let r = run(&mut cmd, None);
    r.expect_code(0)
        .expect_stdout("<resource-agent name=\"fence_ipmilan\"");
    r.stdout
}

fn our_metadata() -> String {
    let r = run(&mut ironfence(["agent", "ipmi", "-o", "metadata"]), None);
    r.expect_code(0);
    r.stdout
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
// golden file

#[test]
fn metadata_matches_golden_file() {
    assert_golden(&our_metadata(), "`ironfence agent ipmi -o metadata`");
    // Pacemaker's spelling, and the stdin form.
    let r = run(
        &mut ironfence(["agent", "ipmi", "--action=meta-data"]),
        None,
    );
    r.expect_code(0);
    assert_golden(&r.stdout, "`ironfence agent ipmi --action=meta-data`");
    let r = run(&mut ironfence(["agent", "ipmi"]), Some("action=metadata\n"));
    r.expect_code(0);
    assert_golden(&r.stdout, "`action=metadata` on stdin");
}

#[test]
fn launcher_prints_the_golden_metadata() {
    // IRONFENCE names the binary, as install.sh's /usr/sbin/ironfence would.
    let mut cmd = clean_command(&launcher_path());
    cmd.env("IRONFENCE", ironfence_bin())
        .args(["-o", "metadata"]);
    let r = run(&mut cmd, None);
    r.expect_code(0);
    assert_golden(&r.stdout, "`fence-agents/fence_ironfence_ipmi -o metadata`");
    // Options on stdin pass through the launcher too (no argv: Pacemaker's way).
    let mut cmd = clean_command(&launcher_path());
    cmd.env("IRONFENCE", ironfence_bin());
    let r = run(&mut cmd, Some("action=metadata\n"));
    r.expect_code(0);
    assert_golden(&r.stdout, "launcher with `action=metadata` on stdin");
}

#[test]
fn metadata_validates_against_metadata_rng() {
    let golden = std::fs::read_to_string(golden_path()).unwrap();
    assert_valid_metadata(&golden, "fence-agents/metadata/fence_ironfence_ipmi.xml");
    let ours = our_metadata();
    assert_valid_metadata(&ours, "`ironfence agent ipmi -o metadata`");
    let md = Metadata::parse(&ours, "our metadata");
    assert_eq!(md.name, "fence_ironfence_ipmi");
    // What Pacemaker relies on: a plug parameter (so it passes port=) and the actions.
    assert!(md.param("plug").is_some() && md.param("port").is_some());
    for action in [
        "on",
        "off",
        "reboot",
        "status",
        "monitor",
        "metadata",
        "validate-all",
    ] {
        assert!(
            md.actions.iter().any(|a| a == action),
            "no action {action}: {:?}",
            md.actions
        );
    }
    assert!(
        md.param("nodename").is_none(),
        "nodename is accepted but hidden from metadata, like fencing.py"
    );
}

// ---------------------------------------------------------------------------
// a drop-in for fence_ipmilan

#[test]
fn every_fence_ipmilan_parameter_is_in_our_metadata() {
    let theirs = Metadata::parse(&fence_ipmilan_metadata(), "fence_ipmilan -o metadata");
    let ours = Metadata::parse(&our_metadata(), "our metadata");
    let mut problems = Vec::new();
    for (name, their) in &theirs.params {
        let Some(our) = ours.param(name) else {
            problems.push(format!("{name}: missing"));
            continue;
        };
        if our.spellings() != their.spellings() {
            problems.push(format!(
                "{name}: options {:?}, fence_ipmilan has {:?}",
                our.getopt, their.getopt
            ));
        }
        if our.content_type != their.content_type {
            problems.push(format!(
                "{name}: type {}, fence_ipmilan has {}",
                our.content_type, their.content_type
            ));
        }
        if our.deprecated != their.deprecated || our.obsoletes != their.obsoletes {
            problems.push(format!(
                "{name}: deprecated={} obsoletes={:?}, fence_ipmilan has deprecated={} obsoletes={:?}",
                our.deprecated, our.obsoletes, their.deprecated, their.obsoletes
            ));
        }
        for option in &their.options {
            if !our.options.contains(option) {
                problems.push(format!("{name}: no choice {option:?}"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "fence_ironfence_ipmi is not a drop-in for fence_ipmilan ({} of {} parameters):\n  {}",
        problems.len(),
        theirs.params.len(),
        problems.join("\n  ")
    );
}

#[test]
fn every_fence_ipmilan_action_is_ours_but_the_known_missing() {
    let theirs = Metadata::parse(&fence_ipmilan_metadata(), "fence_ipmilan -o metadata");
    let ours = Metadata::parse(&our_metadata(), "our metadata");
    let missing: Vec<&str> = theirs
        .actions
        .iter()
        .filter(|a| !ours.actions.contains(a))
        .map(String::as_str)
        .collect();
    assert_eq!(
        missing, KNOWN_MISSING_ACTIONS,
        "fence_ipmilan's actions {:?}, ours {:?} (update KNOWN_MISSING_ACTIONS when one is added)",
        theirs.actions, ours.actions
    );
}

/// A value fence_ipmilan would take for `name`, chosen so that
/// `-o validate-all` has nothing to object to.
fn sample_value(name: &str, p: &Param, scratch: &Path) -> String {
    match name {
        "ip" | "ipaddr" | "plug" | "port" => "127.0.0.1".into(),
        "username" | "login" => "admin".into(),
        "password" | "passwd" => "secret".into(),
        "password_script" | "passwd_script" => "/bin/true".into(),
        "cipher" => "3".into(),
        "hexadecimal_kg" => "0123456789abcdef".into(),
        // bridging is refused at run time ("not supported"); empty = no bridging
        "target" => String::new(),
        "debug" | "debug_file" => scratch.join("debug.log").display().to_string(),
        "disable_timeout" => "false".into(),
        _ => match p.content_type.as_str() {
            "boolean" => "1".into(),
            "select" => p
                .default
                .clone()
                .unwrap_or_else(|| p.options.first().cloned().unwrap_or_default()),
            "integer" | "second" => p.default.clone().unwrap_or_else(|| "1".into()),
            _ => p.default.clone().unwrap_or_else(|| "x".into()),
        },
    }
}

/// What every validate-all run starts from: a BMC address (and a plug, for
/// port_as_ip) and a password.
const BASE_STDIN: &str = "ip=127.0.0.1\nplug=127.0.0.1\npassword=secret\n";
const BASE_ARGS: &[&str] = &["--ip=127.0.0.1", "--plug=127.0.0.1", "--password=secret"];

#[track_caller]
fn expect_accepted(r: &Run, how: &str) {
    assert!(
        r.code == Some(0) && !r.stderr.contains("unknown option") && !r.stderr.contains("Failed"),
        "fence_ironfence_ipmi does not accept {how}\n{}",
        r.describe()
    );
}

#[test]
fn our_agent_accepts_every_fence_ipmilan_parameter() {
    let theirs = Metadata::parse(&fence_ipmilan_metadata(), "fence_ipmilan -o metadata");
    let scratch = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for (name, p) in &theirs.params {
        if name == "action" {
            continue; // every run below passes action=validate-all
        }
        let value = sample_value(name, p, scratch.path());
        let boolean = p.content_type == "boolean";

        // name=value on stdin, as pacemaker-fenced passes device attributes
        let stdin = format!("{name}={value}\n{BASE_STDIN}action=validate-all\n");
        let r = run(&mut ironfence(["agent", "ipmi"]), Some(&stdin));
        expect_accepted(&r, &format!("`{name}={value}` on stdin"));

        // the long option, as fence_ipmilan spells it
        if let Some(long) = p.long() {
            let arg = if boolean {
                long.clone()
            } else {
                format!("{long}={value}")
            };
            let r = run(
                ironfence(["agent", "ipmi", &arg])
                    .args(BASE_ARGS)
                    .args(["-o", "validate-all"]),
                None,
            );
            expect_accepted(&r, &format!("`{arg}` (parameter {name})"));
        }

        // the short option, value as the next argument
        if let Some(short) = p.short() {
            let mut cmd = ironfence(["agent", "ipmi", &short]);
            if !boolean {
                cmd.arg(&value);
            }
            cmd.args(BASE_ARGS).args(["-o", "validate-all"]);
            let r = run(&mut cmd, None);
            expect_accepted(&r, &format!("`{short} {value}` (parameter {name})"));
        }
        checked += 1;
    }
    assert!(
        checked >= 30,
        "only {checked} fence_ipmilan parameters found"
    );
    // The same names through the launcher, all at once on stdin.
    let mut all = String::new();
    for (name, p) in &theirs.params {
        if !matches!(name.as_str(), "action" | "help" | "version") {
            all.push_str(&format!(
                "{name}={}\n",
                sample_value(name, p, scratch.path())
            ));
        }
    }
    all.push_str(BASE_STDIN);
    all.push_str("action=validate-all\n");
    let mut cmd = clean_command(&launcher_path());
    cmd.env("IRONFENCE", ironfence_bin());
    let r = run(&mut cmd, Some(&all));
    expect_accepted(
        &r,
        "every fence_ipmilan parameter at once through the launcher",
    );
}
