//! `fence_ironfence_redfish` is a drop-in for `fence_redfish`: golden
//! metadata valid against fence-agents' metadata.rng, and every parameter
//! the installed `fence_redfish` documents is accepted on stdin.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use ironfence::agent::metadata::AgentMetadata;
use std::io::Write;
use std::process::{Command, Stdio};
use support::require_peer;

const CLI: &str = env!("CARGO_BIN_EXE_ironfence");

fn ours() -> String {
    let out = Command::new(CLI)
        .args(["agent", "redfish", "-o", "metadata"])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn golden_metadata_is_valid() {
    require_peer("xmllint");
    let golden = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fence-agents/metadata/fence_ironfence_redfish.xml");
    assert_eq!(
        ours(),
        std::fs::read_to_string(&golden).unwrap(),
        "regenerate: target/debug/ironfence agent redfish -o metadata > {}",
        golden.display()
    );
    let out = Command::new("xmllint")
        .args([
            "--noout",
            "--relaxng",
            "/usr/share/cluster/relaxng/metadata.rng",
        ])
        .arg(&golden)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn accepts_every_fence_redfish_parameter() {
    let agent = require_peer("fence_redfish");
    let out = Command::new(agent)
        .args(["-o", "metadata"])
        .output()
        .unwrap();
    let theirs = AgentMetadata::parse(&String::from_utf8_lossy(&out.stdout)).unwrap();
    let mine = AgentMetadata::parse(&ours()).unwrap();
    for p in &theirs.parameters {
        // `redfish-uri` / `systems-uri` are the `-` spellings of ours.
        let name = p.name.replace('-', "_");
        assert!(
            mine.parameters.iter().any(|m| m.name == name),
            "fence_redfish parameter {} missing",
            p.name
        );
        // Accepted on stdin, as Pacemaker passes it (validate-all, no BMC needed).
        let value = match p.content_type.as_str() {
            "boolean" => "1",
            "integer" | "second" => "5",
            _ => p.options.first().map(String::as_str).unwrap_or("x"),
        };
        if [
            "action",
            "help",
            "version",
            "ssl_insecure",
            "ssl_secure",
            "ssl",
        ]
        .contains(&name.as_str())
        {
            continue;
        }
        let mut child = Command::new(CLI)
            .args(["agent", "redfish"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        write!(
            child.stdin.take().unwrap(),
            "action=validate-all\nip=127.0.0.1\nplug=127.0.0.1\nusername=admin\npassword=secret\n{}={value}\n",
            p.name
        )
        .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}={value}: {}",
            p.name,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for a in &theirs.actions {
        assert!(
            mine.supports(&a.name),
            "fence_redfish action {} missing",
            a.name
        );
    }
}
