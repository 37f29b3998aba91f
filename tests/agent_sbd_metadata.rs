//! `fence_ironfence_sbd` is a drop-in for `fence_sbd`: golden metadata
//! valid against fence-agents' metadata.rng, every parameter and action the
//! installed `fence_sbd` documents is accepted (on stdin, as Pacemaker
//! passes them), every action works on a disk image, and on a loop device
//! our agent and the real `fence_sbd` read each other's messages.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use ironfence::agent::metadata::AgentMetadata;
use ironfence::sbd::disk::Disk;
use ironfence::sbd::format::Timeouts;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::require_peer;

const CLI: &str = env!("CARGO_BIN_EXE_ironfence");

fn ours() -> String {
    let out = Command::new(CLI)
        .args(["agent", "sbd", "-o", "metadata"])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

/// An sbd disk image in a regular file (512-byte sectors, watchdog 1 s,
/// msgwait 1 s) with `nodes` allocated, made through the library.
fn image(dir: &Path, nodes: &[&str]) -> PathBuf {
    let path = dir.join("sbd.img");
    std::fs::File::create(&path)
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dev = ironfence::sbd::io::open(&path, Some(512), Duration::from_secs(3))
            .await
            .unwrap();
        let d = Disk::new(dev.as_ref());
        d.create(
            Timeouts {
                watchdog: 1,
                allocate: 0,
                loop_: 1,
                msgwait: 1,
            },
            [3; 16],
        )
        .await
        .unwrap();
        for n in nodes {
            d.allocate(n).await.unwrap();
        }
    });
    path
}

/// Run the agent with `lines` on stdin.
fn stdin_agent(lines: &str) -> Output {
    let mut child = Command::new(CLI)
        .args(["agent", "sbd"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n{}{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn golden_metadata_is_valid() {
    require_peer("xmllint");
    let golden =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fence-agents/metadata/fence_ironfence_sbd.xml");
    assert_eq!(
        ours(),
        std::fs::read_to_string(&golden).unwrap(),
        "regenerate: target/debug/ironfence agent sbd -o metadata > {}",
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
    // The launcher runs the same agent.
    let launcher = Path::new(env!("CARGO_MANIFEST_DIR")).join("fence-agents/fence_ironfence_sbd");
    let out = Command::new(&launcher)
        .args(["-o", "metadata"])
        .env("IRONFENCE", CLI)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), ours());
}

#[test]
fn accepts_every_fence_sbd_parameter_and_action() {
    let agent = require_peer("fence_sbd");
    let out = Command::new(agent)
        .args(["-o", "metadata"])
        .output()
        .unwrap();
    let theirs = AgentMetadata::parse(&String::from_utf8_lossy(&out.stdout)).unwrap();
    let mine = AgentMetadata::parse(&ours()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path(), &["node-a"]);
    // fence-agents after 4.12 add `crashdump`; ours has it either way.
    let mut names: Vec<String> = theirs.parameters.iter().map(|p| p.name.clone()).collect();
    names.push("crashdump".into());
    for name in &names {
        let canonical = name.replace('-', "_");
        assert!(
            mine.parameters.iter().any(|m| m.name == canonical),
            "fence_sbd parameter {name} missing"
        );
        let p = theirs.parameters.iter().find(|p| &p.name == name);
        let value = match p.map(|p| p.content_type.as_str()) {
            None | Some("boolean") => "1",
            Some("integer") | Some("second") => "5",
            _ => p
                .and_then(|p| p.options.first())
                .map(String::as_str)
                .unwrap_or("x"),
        };
        if ["action", "help", "version", "devices"].contains(&canonical.as_str()) {
            continue;
        }
        // validate-all reads the headers (as fence_sbd checks its devices).
        let out = stdin_agent(&format!(
            "action=validate-all\ndevices={}\nsector_size=512\nplug=node-a\n{name}={value}\n",
            img.display()
        ));
        assert!(out.status.success(), "{name}={value}: {}", text(&out));
    }
    for a in &theirs.actions {
        assert!(
            mine.supports(&a.name),
            "fence_sbd action {} missing",
            a.name
        );
    }
    // A device that is no sbd disk fails validate-all, as fence_sbd's check does.
    let blank = dir.path().join("blank.img");
    std::fs::File::create(&blank)
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    let out = stdin_agent(&format!(
        "action=validate-all\ndevices={}\nsector_size=512\n",
        blank.display()
    ));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("no sbd header"), "{}", text(&out));
    // No devices at all.
    let out = Command::new(CLI)
        .args(["agent", "sbd", "-o", "monitor"])
        .env_remove("SBD_DEVICE")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("No SBD devices specified"),
        "{}",
        text(&out)
    );
}

#[test]
fn every_action_on_a_disk_image() {
    let dir = tempfile::tempdir().unwrap();
    let img = image(dir.path(), &["node-a", "node-b"]);
    let run = |args: &[&str]| -> Output {
        Command::new(CLI)
            .args(["agent", "sbd", "--sector-size", "512"])
            .arg(format!("--devices={}", img.display()))
            .args(args)
            .output()
            .unwrap()
    };
    let code = |args: &[&str]| run(args).status.code();
    assert_eq!(
        code(&["-o", "status", "-n", "node-b"]),
        Some(0),
        "clear = on"
    );
    for (action, method) in [("off", None), ("reboot", None), ("reboot", Some("onoff"))] {
        let mut args = vec!["-o", action, "-n", "node-b"];
        if let Some(m) = method {
            args.extend(["-m", m]);
        }
        let t = Instant::now();
        let out = run(&args);
        assert!(out.status.success(), "{action}: {}", text(&out));
        assert!(
            t.elapsed() >= Duration::from_secs(1),
            "{action} returned before msgwait"
        );
        let want = if method == Some("onoff") { 0 } else { 2 };
        assert_eq!(
            code(&["-o", "status", "-n", "node-b"]),
            Some(want),
            "status after {action} {method:?}"
        );
    }
    let out = run(&["-o", "on", "-n", "node-b"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(code(&["-o", "status", "-n", "node-b"]), Some(0));
    let out = run(&["-o", "list"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "node-a,node-a\nnode-b,node-b\n"
    );
    let out = run(&["-o", "list-status"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("node-b,,ON"),
        "{}",
        text(&out)
    );
    for a in ["monitor", "validate-all", "metadata", "manpage"] {
        assert_eq!(code(&["-o", a]), Some(0), "{a}");
    }
    // Errors exit 1: a node with no slot, a missing plug.
    let out = run(&["-o", "off", "-n", "ghost"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("has no slot"), "{}", text(&out));
    assert_eq!(code(&["-o", "off"]), Some(1));
    let out = Command::new(CLI)
        .args(["agent", "sbd", "--sector-size", "512", "-o", "monitor"])
        .arg(format!("--devices={},{}", img.display(), img.display()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("listed twice"), "{}", text(&out));
    assert_eq!(code(&["-o", "status", "-n", "ghost"]), Some(1));
    // crashdump replaces off and reset.
    let out = run(&["-o", "off", "-n", "node-a", "--crashdump"]);
    assert!(out.status.success(), "{}", text(&out));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cmd = rt.block_on(async {
        let dev = ironfence::sbd::io::open(&img, Some(512), Duration::from_secs(3))
            .await
            .unwrap();
        Disk::new(dev.as_ref()).mailbox(0).await.unwrap().cmd
    });
    assert_eq!(cmd, ironfence::sbd::format::Command::Crashdump);
}

/// A loop device over an image (kept in the temp dir), detached on drop.
struct Loop(String, #[allow(dead_code)] tempfile::TempDir);

impl Drop for Loop {
    fn drop(&mut self) {
        for _ in 0..50 {
            if Command::new("losetup")
                .args(["-d", &self.0])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Our agent and the real fence_sbd on one block device: each reads the
/// other's messages the same way.
#[test]
fn interoperates_with_fence_sbd() {
    let fence_sbd = require_peer("fence_sbd");
    let losetup = require_peer("losetup");
    let sbd = require_peer("sbd");
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("disk.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    let mut dev = None;
    for _ in 0..10 {
        let out = Command::new(&losetup)
            .args(["-f", "--show"])
            .arg(&img)
            .output()
            .unwrap();
        if out.status.success() {
            dev = Some(String::from_utf8(out.stdout).unwrap().trim().to_string());
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let lo = Loop(dev.expect("losetup -f failed"), dir);
    for args in [
        vec!["-1", "1", "-2", "0", "-4", "1", "create"],
        vec!["allocate", "node-b"],
    ] {
        let out = Command::new(&sbd)
            .args(["-d", &lo.0])
            .args(&args)
            .output()
            .unwrap();
        assert!(out.status.success(), "sbd {args:?}: {}", text(&out));
    }
    let devices = format!("--devices={}", lo.0);
    let ours = |args: &[&str]| {
        Command::new(CLI)
            .args(["agent", "sbd", &devices])
            .args(args)
            .output()
            .unwrap()
    };
    let theirs = |args: &[&str]| {
        Command::new(&fence_sbd)
            .arg(&devices)
            .args(args)
            .output()
            .unwrap()
    };
    assert!(ours(&["-o", "reboot", "-n", "node-b"]).status.success());
    let out = theirs(&["-o", "status", "-n", "node-b"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "fence_sbd sees our reset: {}",
        text(&out)
    );
    let out = theirs(&["-o", "on", "-n", "node-b"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        ours(&["-o", "status", "-n", "node-b"]).status.code(),
        Some(0)
    );
    let out = theirs(&["-o", "off", "-n", "node-b"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        ours(&["-o", "status", "-n", "node-b"]).status.code(),
        Some(2)
    );
    let mine = String::from_utf8(ours(&["-o", "list"]).stdout).unwrap();
    let real = String::from_utf8(theirs(&["-o", "list"]).stdout).unwrap();
    assert_eq!(mine, real, "list output");
}
