//! Fencing through an `sbd` device, end to end: the real `ironfenced` and
//! `ironfence` binaries on loop devices (512- and 4096-byte sectors) made by
//! the tests, checked with ClusterLabs sbd 1.5.2 (Debian `sbd`):
//!
//! * a fence writes the pill with our sender name (read by the real
//!   `sbd list`) and returns only after msgwait;
//! * three disks with one gone still fence (majority); two gone fail with a
//!   clear error and no success anywhere;
//! * a node without a slot is refused, naming the disk and the fix;
//! * `config check` reads msgwait from the headers and refuses timeouts
//!   that cannot wait it out, and unreadable disks;
//! * our servant (library) receives what the real `sbd message` writes;
//! * the real sbd daemon, in the other tests' sandbox
//!   (`tests/lab/sbd/sbd-watch-sandbox.sh`: no watchdog, `-Z -Z`), receives
//!   our daemon's pill and acts on it.
//!
//! Needs root (losetup, unshare). A missing peer fails the test. Every loop
//! device is detached and every process stopped by PID in a Drop guard.
//! Disks are named in configs through symlinks in the test's temp dir, so a
//! "detached" disk (symlink removed, loop device detached) can never turn
//! into another test's disk that reuses the loop device number.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;
mod support;

use harness::{stderr, stdout, Lab};
use ironfence::sbd::format::Command as Cmd;
use ironfence::sbd::servant::{Servant, StartMode};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use support::require_peer;

/// Every test disk: watchdog 1 s, allocate 0 s, loop 1 s, msgwait 2 s.
const CREATE: [&str; 6] = ["-1", "1", "-2", "0", "-4", "2"];
const MSGWAIT: Duration = Duration::from_secs(2);

/// `losetup -f` finds a free device and then claims it: take turns within
/// this binary (other binaries are covered by the retries).
static LOSETUP: Mutex<()> = Mutex::new(());

/// A loop device over a sparse image, created and allocated by the real
/// sbd; detached on drop (unless [`Disk::detach`] did it already).
struct Disk {
    dev: String,
    _dir: tempfile::TempDir,
    attached: bool,
}

impl Disk {
    fn new(sector_size: u32, nodes: &[&str]) -> Disk {
        let dir = tempfile::Builder::new()
            .prefix("ironfence-sbdf-")
            .tempdir()
            .unwrap();
        let image = dir.path().join("disk.img");
        std::fs::File::create(&image)
            .unwrap()
            .set_len(4 << 20)
            .unwrap();
        let losetup = require_peer("losetup");
        let mut dev = None;
        let mut last = String::new();
        {
            let _turn = LOSETUP.lock().unwrap_or_else(|e| e.into_inner());
            for _ in 0..10 {
                let out = Command::new(&losetup)
                    .args(["-f", "--show", "--sector-size", &sector_size.to_string()])
                    .arg(&image)
                    .output()
                    .unwrap();
                if out.status.success() {
                    dev = Some(stdout(&out).trim().to_string());
                    break;
                }
                last = stderr(&out);
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let dev = dev.unwrap_or_else(|| panic!("losetup -f failed: {last}"));
        assert!(dev.starts_with("/dev/loop"), "{dev}");
        let d = Disk {
            dev,
            _dir: dir,
            attached: true,
        };
        let mut args: Vec<&str> = vec!["-d", &d.dev];
        args.extend(CREATE);
        args.push("create");
        sbd(&args).ok();
        for n in nodes {
            sbd(&["-d", &d.dev, "allocate", n]).ok();
        }
        d
    }

    /// Take the disk away: the config's symlink `link` goes, the loop device
    /// is detached.
    fn detach(&mut self, link: &Path) {
        std::fs::remove_file(link).unwrap();
        self.release();
    }

    fn release(&mut self) {
        if !self.attached {
            return;
        }
        let Some(losetup) = support::find_peer("losetup") else {
            return;
        };
        for _ in 0..50 {
            let ok = Command::new(&losetup)
                .arg("-d")
                .arg(&self.dev)
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                self.attached = false;
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("warning: could not detach {}", self.dev);
    }

    /// `sbd list` lines of `node`: (command, sender).
    fn mailbox(&self, node: &str) -> (String, String) {
        let out = sbd(&["-d", &self.dev, "list"]).ok();
        for line in out.stdout.lines() {
            let f: Vec<&str> = line.split('\t').collect();
            if f.get(1) == Some(&node) {
                return (
                    f.get(2).unwrap_or(&"").to_string(),
                    f.get(3).unwrap_or(&"").to_string(),
                );
            }
        }
        panic!("{node} not in sbd list of {}: {}", self.dev, out.stdout);
    }
}

impl Drop for Disk {
    fn drop(&mut self) {
        self.release();
    }
}

struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
    what: String,
}

impl Ran {
    fn ok(self) -> Ran {
        assert_eq!(
            self.code, 0,
            "{}: {}{}",
            self.what, self.stdout, self.stderr
        );
        self
    }
}

fn sbd(args: &[&str]) -> Ran {
    let out = Command::new(require_peer("sbd"))
        .args(args)
        .output()
        .unwrap();
    Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: stdout(&out),
        stderr: stderr(&out),
        what: format!("sbd {}", args.join(" ")),
    }
}

/// A lab whose sbd device `pill` uses `disks` through symlinks
/// `@DIR@/disk0..`; `extra` lines end the device table.
fn lab(disks: &[&Disk], nodes: &[&str], extra: &str) -> (Lab, Vec<PathBuf>) {
    let links: Vec<String> = (0..disks.len())
        .map(|i| format!("\"@DIR@/disk{i}\""))
        .collect();
    let mut text = String::from(
        "[daemon]\nsocket = \"@DIR@/ironfenced.sock\"\nstate_dir = \"@DIR@/state\"\nfencing_timeout = \"40s\"\nverify_interval = \"50ms\"\nstorm_max_share = 1.0\n\n",
    );
    for n in nodes {
        text.push_str(&format!("[[node]]\nname = \"{n}\"\n"));
    }
    let hosts: Vec<String> = nodes.iter().map(|n| format!("\"{n}\"")).collect();
    text.push_str(&format!(
        "\n[[device]]\nname = \"pill\"\nkind = \"sbd\"\nhost_list = [{}]\nsbd = {{ devices = [{}], io_timeout = \"1s\", from = \"fencer-1\" }}\ntimeouts = {{ off = \"10s\", on = \"10s\" }}\n{extra}\n",
        hosts.join(", "),
        links.join(", ")
    ));
    let lab = Lab::new(&text);
    let paths: Vec<PathBuf> = (0..disks.len())
        .map(|i| lab.dir.path().join(format!("disk{i}")))
        .collect();
    for (d, p) in disks.iter().zip(&paths) {
        std::os::unix::fs::symlink(&d.dev, p).unwrap();
    }
    (lab, paths)
}

fn outcome(v: &Value) -> &Value {
    &v["outcome"]
}

fn fence_off_one_disk(sector_size: u32) {
    let disk = Disk::new(sector_size, &["node-a", "node-b"]);
    let (lab, _links) = lab(&[&disk], &["node-a", "node-b"], "");
    let d = lab.start();
    let t = Instant::now();
    let (code, v) = lab.json(&["off", "node-b"]);
    let took = t.elapsed();
    assert_eq!(code, 0, "{v}\n{}", d.log_text());
    assert_eq!(outcome(&v)["result"], "fenced", "{v}");
    assert!(took >= MSGWAIT, "returned after {took:?}, before msgwait");
    assert_eq!(
        disk.mailbox("node-b"),
        ("off".to_string(), "fencer-1".to_string())
    );
    assert_eq!(disk.mailbox("node-a").0, "clear", "other slot untouched");
    let (code, v) = lab.json(&["status", "node-b"]);
    assert_eq!(code, 0, "{v}");
    assert!(v.to_string().contains("\"off\""), "status: {v}");
    // on = clear, with our name, and no msgwait.
    let t = Instant::now();
    let (code, v) = lab.json(&["on", "node-b"]);
    assert_eq!(code, 0, "{v}");
    assert!(t.elapsed() < MSGWAIT, "on waited {:?}", t.elapsed());
    assert_eq!(
        disk.mailbox("node-b"),
        ("clear".to_string(), "fencer-1".to_string())
    );
}

#[test]
fn fence_writes_the_pill_and_waits_msgwait_512() {
    fence_off_one_disk(512);
}

#[test]
fn fence_writes_the_pill_and_waits_msgwait_4096() {
    fence_off_one_disk(4096);
}

#[test]
fn majority_of_three_disks() {
    let mut disks: Vec<Disk> = (0..3)
        .map(|_| Disk::new(512, &["node-a", "node-b", "node-c"]))
        .collect();
    let (lab, links) = {
        let refs: Vec<&Disk> = disks.iter().collect();
        lab(&refs, &["node-a", "node-b", "node-c"], "")
    };
    let d = lab.start();
    disks[2].detach(&links[2]);
    let t = Instant::now();
    let (code, v) = lab.json(&["off", "node-b"]);
    assert_eq!(code, 0, "{v}\n{}", d.log_text());
    assert_eq!(outcome(&v)["result"], "fenced", "{v}");
    assert!(t.elapsed() >= MSGWAIT);
    for disk in &disks[..2] {
        assert_eq!(
            disk.mailbox("node-b"),
            ("off".to_string(), "fencer-1".to_string())
        );
    }
    assert!(
        d.log_text().contains("did not take the message"),
        "the missing disk is logged"
    );

    disks[1].detach(&links[1]);
    let (code, v) = lab.json(&["off", "node-c"]);
    assert_ne!(code, 0, "{v}");
    let o = outcome(&v);
    assert_ne!(o["result"], "fenced", "{v}");
    let text = v.to_string();
    assert!(
        text.contains("reached 1 of 3 disk(s), a majority needs 2"),
        "{text}"
    );
    assert!(
        text.contains(&links[1].display().to_string())
            && text.contains(&links[2].display().to_string()),
        "both missing disks are named: {text}"
    );
    // The one disk left holds the pill, but that is no fence.
    assert_eq!(disks[0].mailbox("node-c").0, "off");
    let (_, v) = lab.json(&["history", "node-c", "--verbose"]);
    assert!(
        !v.to_string().contains("\"result\":\"fenced\""),
        "no success recorded: {v}"
    );
}

#[test]
fn unallocated_node_is_refused() {
    let disk = Disk::new(512, &["node-a"]);
    let (lab, links) = lab(&[&disk], &["node-a", "node-x"], "retries = { off = 0 }");
    let d = lab.start();
    let t = Instant::now();
    let (code, v) = lab.json(&["off", "node-x"]);
    assert_ne!(code, 0, "{v}");
    assert!(t.elapsed() < MSGWAIT, "a refusal does not wait msgwait");
    let text = v.to_string();
    let link = links[0].display().to_string();
    assert!(
        text.contains("node `node-x` has no slot")
            && text.contains(&format!("ironfence sbd -d {link} allocate node-x")),
        "{text}\n{}",
        d.log_text()
    );
}

#[test]
fn config_check_reads_msgwait_from_the_headers() {
    let disk = Disk::new(512, &["node-a"]);
    // `sbd = { devices = [DISKS], io_timeout = "1s" SBD_EXTRA }`
    let check = |extra_daemon: &str, device_extra: &str, disks: &str, sbd_extra: &str| -> Value {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[daemon]\n{extra_daemon}\n[[node]]\nname = \"node-a\"\n[[device]]\nname = \"pill\"\nkind = \"sbd\"\nhost_list = [\"node-a\"]\nsbd = {{ devices = [{disks}], io_timeout = \"1s\"{sbd_extra} }}\n{device_extra}\n"
        );
        let path = dir.path().join("ironfence.toml");
        std::fs::write(&path, text).unwrap();
        let out = Command::new(harness::CLI)
            .args(["--output", "json", "--config"])
            .arg(&path)
            .args(["config", "check"])
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(&out), stderr(&out)));
        assert_eq!(out.status.success(), v["ok"] == true, "{v}");
        v
    };
    let problems = |v: &Value| -> Vec<(String, String)> {
        v["problems"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|p| {
                        (
                            p["key"].as_str().unwrap().to_string(),
                            p["message"].as_str().unwrap().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let dev = format!("\"{}\"", disk.dev);
    // msgwait 2 s + 2 x 1 s: 5 s is enough.
    let v = check(
        "fencing_timeout = \"30s\"",
        "timeouts = { off = \"5s\" }",
        &dev,
        "",
    );
    assert_eq!(v["ok"], true, "{v}");
    // fencing_timeout <= msgwait.
    let v = check(
        "fencing_timeout = \"2s\"",
        "timeouts = { off = \"5s\" }",
        &dev,
        "",
    );
    let p = problems(&v);
    assert!(
        p.iter().any(|(k, m)| k == "device[pill].sbd.devices"
            && m.contains("daemon.fencing_timeout = 2s")
            && m.contains("msgwait 2 s")),
        "{p:?}"
    );
    // The device's off timeout <= msgwait + margin.
    let v = check(
        "fencing_timeout = \"30s\"",
        "timeouts = { off = \"3s\" }",
        &dev,
        "",
    );
    let p = problems(&v);
    assert!(
        p.iter()
            .any(|(k, m)| k == "device[pill].sbd.devices" && m.contains("timeouts.off = 3s")),
        "{p:?}"
    );
    // An unreadable disk, and an image file with no sector size.
    let zero = tempfile::NamedTempFile::new().unwrap();
    zero.as_file().set_len(1 << 20).unwrap();
    let zero_path = zero.path().display().to_string();
    let v = check(
        "",
        "",
        &format!("{dev}, \"/nonexistent/sbd-disk\", \"{zero_path}\""),
        "",
    );
    let p = problems(&v);
    assert!(
        p.iter().any(|(k, m)| k == "device[pill].sbd.devices"
            && m.contains("cannot read the sbd header of /nonexistent/sbd-disk")),
        "{p:?}"
    );
    assert!(
        p.iter().any(|(k, m)| k == "device[pill].sbd.devices"
            && m.contains(&zero_path)
            && m.contains("regular file")),
        "{p:?}"
    );
    // With its sector size the image reads, but holds no sbd header.
    let v = check(
        "",
        "",
        &format!("{dev}, \"{zero_path}\""),
        ", sector_size = 512",
    );
    let p = problems(&v);
    assert!(
        p.iter().any(|(k, m)| k == "device[pill].sbd.devices"
            && m.contains(&format!("cannot read the sbd header of {zero_path}"))
            && m.contains("no sbd header")),
        "{p:?}"
    );
    // One disk under two names counts once.
    let links = tempfile::tempdir().unwrap();
    let alias = links.path().join("by-id-alias");
    std::os::unix::fs::symlink(&disk.dev, &alias).unwrap();
    let v = check(
        "",
        "timeouts = { off = \"5s\" }",
        &format!("{dev}, \"{}\"", alias.display()),
        "",
    );
    let p = problems(&v);
    assert!(
        p.iter().any(|(k, m)| k == "device[pill].sbd.devices"
            && m.contains("are the same disk")
            && m.contains("count twice")),
        "{p:?}"
    );
    // 4 disks.
    let v = check("", "", &format!("{dev}, {dev}, {dev}, {dev}"), "");
    let p = problems(&v);
    assert!(
        p.iter()
            .any(|(k, m)| k == "device[pill].sbd.devices" && m.contains("1 to 3")),
        "{p:?}"
    );
}

/// Our servant on a real disk, messages written by the real `sbd message`.
#[test]
fn servant_receives_real_sbd_messages() {
    for ss in [512u32, 4096] {
        let disk = Disk::new(ss, &["node-a", "node-b"]);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let dev = ironfence::sbd::io::open(Path::new(&disk.dev), None, Duration::from_secs(3))
                .await
                .unwrap();
            let mut s = Servant::new(dev, "node-a", Duration::from_millis(100))
                .start_mode(StartMode::Clean);
            let st = s.start().await.unwrap();
            assert_eq!(
                (st.slot, st.header.timeouts.msgwait, st.header.sector_size),
                (0, 2, ss)
            );
            assert_eq!(s.poll_once().await.unwrap(), None);
            for (cmd, want) in [
                ("test", Cmd::Test),
                ("exit", Cmd::Exit),
                ("reset", Cmd::Reset),
                ("off", Cmd::Off),
                ("crashdump", Cmd::Crashdump),
            ] {
                // `sbd message` waits msgwait after writing (not for exit).
                let mut child = Command::new(require_peer("sbd"))
                    .args(["-d", &disk.dev, "-n", "fencer-x", "message", "node-a", cmd])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap();
                let t = Instant::now();
                // (The previous message may still be there until sbd writes.)
                let got = loop {
                    if let Some(m) = s.poll_once().await.unwrap() {
                        if m.cmd == want {
                            break m;
                        }
                    }
                    assert!(t.elapsed() < Duration::from_secs(5), "{cmd} never arrived");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                };
                assert_eq!((got.cmd, got.from.as_str()), (want, "fencer-x"), "{cmd}");
                assert!(child.wait().unwrap().success());
                let (now, _) = disk.mailbox("node-a");
                if want == Cmd::Test {
                    assert_eq!(now, "clear", "the servant cleared the test");
                } else {
                    assert_eq!(now, cmd, "a {cmd} stays");
                }
                assert_eq!(disk.mailbox("node-b").0, "clear", "other slot untouched");
            }
            // Restarting in clean mode refuses while the pill waits.
            let e = s.start().await.unwrap_err();
            assert!(e.to_string().contains("start mode is clean"), "{e}");
        });
    }
}

/// Kills the sandbox (unshare --kill-child) by PID.
struct Sandbox(Child);

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The victim runs the REAL sbd daemon (sandboxed: no watchdog, `-Z -Z`:
/// it logs and exits where it would reset the machine); our daemon's off
/// reaches it.
#[test]
fn real_sbd_daemon_receives_our_pill() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lab/sbd/sbd-watch-sandbox.sh");
    assert!(
        script.exists(),
        "{} is missing (written with the sbd interop tests)",
        script.display()
    );
    require_peer("unshare");
    let disk = Disk::new(512, &["node-a", "node-b"]);
    let (lab, _links) = lab(&[&disk], &["node-a", "node-b"], "");
    let sandbox_dir = lab.dir.path().join("victim");
    std::fs::create_dir(&sandbox_dir).unwrap();
    let log = sandbox_dir.join("sbd.log");
    let child = Command::new(&script)
        .arg(&disk.dev)
        .arg("node-b")
        .arg(&sandbox_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut sandbox = Sandbox(child);
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    let t = Instant::now();
    while !read().contains("Monitoring slot") {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "sbd watch did not start:\n{}",
            read()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let d = lab.start();
    let (code, v) = lab.json(&["off", "node-b"]);
    assert_eq!(code, 0, "{v}\n{}", d.log_text());
    let t = Instant::now();
    while !read().contains("Received command off from fencer-1") {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the victim never saw the pill:\n{}",
            read()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Debug mode 2: where it would power off, it exits.
    let t = Instant::now();
    while sandbox.0.try_wait().unwrap().is_none() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the victim's sbd did not act on the pill:\n{}",
            read()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
