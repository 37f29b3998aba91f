//! `ironfence sbd` against ClusterLabs sbd 1.5.2 (Debian `sbd`), on loop
//! devices with 512- and 4096-byte sectors made by the tests:
//!
//! * disks created by sbd, read and written by us, and the other way round:
//!   `dump` and `list` print the same text, slots allocated by either are
//!   seen by both, every message type goes both ways with its sender;
//! * refusals: a corrupt header, a disk of the other sector size, an
//!   unallocated node, a 64-byte name, a disk that is too small, bad command
//!   lines, a minority of usable disks: a clear message, a non-zero exit, and
//!   the disk's bytes unchanged;
//! * the real sbd daemon, in `tests/lab/sbd/sbd-watch-sandbox.sh` (pid and
//!   mount namespaces, no watchdog, `-Z -Z`), logs our `test`, answers our
//!   `ping` and stops on our `exit`.
//!
//! Needs root (losetup, unshare). A missing peer fails the test.
//! Every loop device is detached and every process stopped by PID in a Drop
//! guard, also when an assertion fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use support::require_peer;

const CLI: &str = env!("CARGO_BIN_EXE_ironfence");
/// Sectors sbd uses: header + 255 x (slot + mailbox).
const SECTORS_USED: u64 = 511;
/// Timeouts of every test disk: watchdog 1 s, allocate 0 s, msgwait 2 s.
const TIMEOUTS: [&str; 6] = ["-1", "1", "-2", "0", "-4", "2"];
const MSGWAIT: Duration = Duration::from_secs(2);
const TYPES: [&str; 6] = ["test", "reset", "off", "crashdump", "clear", "exit"];

/// `losetup -f` picks a free device and then claims it: not atomic, so the
/// tests of this binary take turns.
static LOSETUP: Mutex<()> = Mutex::new(());

// ---------------------------------------------------------------------------
// loop devices

/// A loop device over a sparse file in its own temp dir; detached on drop.
struct Loop {
    dev: String,
    image: PathBuf,
    _dir: tempfile::TempDir,
}

impl Loop {
    fn new(bytes: u64, sector_size: u32) -> Loop {
        let dir = tempfile::Builder::new()
            .prefix("ironfence-sbd-")
            .tempdir()
            .unwrap();
        let image = dir.path().join("disk.img");
        fs::File::create(&image).unwrap().set_len(bytes).unwrap();
        Loop::attach(dir, image, sector_size)
    }

    /// Attach an existing image (kept in `dir`).
    fn attach(dir: tempfile::TempDir, image: PathBuf, sector_size: u32) -> Loop {
        let losetup = require_peer("losetup");
        let _turn = LOSETUP.lock().unwrap_or_else(|e| e.into_inner());
        let mut last = String::new();
        for _ in 0..5 {
            let out = Command::new(&losetup)
                .args(["-f", "--show", "--sector-size", &sector_size.to_string()])
                .arg(&image)
                .output()
                .unwrap();
            if out.status.success() {
                let dev = String::from_utf8(out.stdout).unwrap().trim().to_string();
                assert!(dev.starts_with("/dev/loop"), "losetup said {dev:?}");
                return Loop {
                    dev,
                    image,
                    _dir: dir,
                };
            }
            last = String::from_utf8_lossy(&out.stderr).into_owned();
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("losetup -f failed 5 times: {last}");
    }

    /// The device's bytes (read through the backing file).
    fn bytes(&self) -> Vec<u8> {
        fs::read(&self.image).unwrap()
    }

    /// Overwrite bytes of the disk behind the tools' backs.
    fn poke(&self, offset: u64, data: &[u8]) {
        use std::os::unix::fs::FileExt;
        let f = fs::OpenOptions::new()
            .write(true)
            .open(&self.image)
            .unwrap();
        f.write_all_at(data, offset).unwrap();
        f.sync_all().unwrap();
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let Some(losetup) = support::find_peer("losetup") else {
            return;
        };
        for _ in 0..20 {
            let ok = Command::new(&losetup)
                .arg("-d")
                .arg(&self.dev)
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("warning: could not detach {}", self.dev);
    }
}

// ---------------------------------------------------------------------------
// running the tools

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    took: Duration,
    what: String,
}

impl Run {
    fn ok(self) -> Run {
        assert_eq!(self.code, 0, "{}", self.describe());
        self
    }

    fn code(self, code: i32) -> Run {
        assert_eq!(self.code, code, "{}", self.describe());
        self
    }

    fn describe(&self) -> String {
        format!(
            "`{}` exited {} after {:?}\n--- stdout\n{}--- stderr\n{}",
            self.what, self.code, self.took, self.stdout, self.stderr
        )
    }
}

fn finish(what: String, started: Instant, out: Output) -> Run {
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        took: started.elapsed(),
        what,
    }
}

fn ours_cmd(args: &[&str]) -> Command {
    let mut c = Command::new(CLI);
    c.arg("sbd").args(args).stdin(Stdio::null());
    for v in ["IRONFENCE_CONFIG", "IRONFENCE_SOCKET", "IRONFENCE_LOG"] {
        c.env_remove(v);
    }
    c
}

fn sbd_cmd(args: &[&str]) -> Command {
    let mut c = Command::new(require_peer("sbd"));
    c.args(args).stdin(Stdio::null());
    c
}

fn run(mut c: Command, what: String) -> Run {
    let t = Instant::now();
    let out = c.output().unwrap();
    finish(what, t, out)
}

/// `ironfence sbd ARGS`.
fn ours(args: &[&str]) -> Run {
    run(ours_cmd(args), format!("ironfence sbd {}", args.join(" ")))
}

/// `sbd ARGS`.
fn sbd(args: &[&str]) -> Run {
    run(sbd_cmd(args), format!("sbd {}", args.join(" ")))
}

/// Run several commands at once, each timed on its own thread.
fn all_at_once(cmds: Vec<(Command, String)>) -> Vec<Run> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = cmds
            .into_iter()
            .map(|(c, what)| scope.spawn(move || run(c, what)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

fn with_dev<'a>(dev: &'a str, args: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["-d", dev];
    v.extend_from_slice(args);
    v
}

// ---------------------------------------------------------------------------
// interoperability

#[derive(Clone, Copy, Debug)]
enum Creator {
    Sbd,
    Ours,
}

/// One disk: created by `creator`; dumped, allocated, listed and messaged by
/// both tools, every message type in both directions.
fn interop(sector_size: u32, creator: Creator) {
    let disk = Loop::new(4 << 20, sector_size);
    let d = disk.dev.as_str();
    let mut create = with_dev(d, &TIMEOUTS);
    create.push("create");
    let created = match creator {
        Creator::Sbd => sbd(&create).ok(),
        Creator::Ours => ours(&create).ok(),
    };
    assert!(
        created
            .stdout
            .contains(&format!("Device {d} is initialized.")),
        "{}",
        created.describe()
    );

    // dump: the same text from both, with the fields we wrote.
    let theirs = sbd(&with_dev(d, &["dump"])).ok();
    let mine = ours(&with_dev(d, &["dump"])).ok();
    assert_eq!(mine.stdout, theirs.stdout);
    for line in [
        format!("==Dumping header on disk {d}\n"),
        "Header version     : 2.1\n".into(),
        "Number of slots    : 255\n".into(),
        format!("Sector size        : {sector_size}\n"),
        "Timeout (watchdog) : 1\n".into(),
        "Timeout (allocate) : 0\n".into(),
        "Timeout (loop)     : 1\n".into(),
        "Timeout (msgwait)  : 2\n".into(),
        format!("==Header on disk {d} is dumped\n"),
    ] {
        assert!(mine.stdout.contains(&line), "{line:?} in\n{}", mine.stdout);
    }
    let uuid = mine
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("UUID               : "))
        .unwrap();
    assert_eq!(uuid.len(), 36, "{uuid}");

    // allocate: sbd-* slots by sbd, ours-* slots by us, alternating.
    for t in TYPES {
        sbd(&with_dev(d, &["allocate", &format!("sbd-{t}")])).ok();
        let r = ours(&with_dev(d, &["allocate", &format!("ours-{t}")])).ok();
        assert!(r
            .stdout
            .contains(&format!("Slot for ours-{t} has been allocated on {d}.")));
    }
    // Allocating again is a no-op for both (case-insensitive, like sbd).
    ours(&with_dev(d, &["allocate", "SBD-TEST"])).ok();
    sbd(&with_dev(d, &["allocate", "Ours-Test"])).ok();
    let theirs = sbd(&with_dev(d, &["list"])).ok();
    assert_eq!(ours(&with_dev(d, &["list"])).ok().stdout, theirs.stdout);
    assert_eq!(theirs.stdout.lines().count(), 12, "{}", theirs.stdout);
    assert!(theirs
        .stdout
        .starts_with("0\tsbd-test\tclear\t\n1\tours-test\tclear\t\n"));

    // Every type, both directions, all at once (each waits msgwait but exit).
    let mut cmds = Vec::new();
    for t in TYPES {
        let target = format!("ours-{t}");
        let a = with_dev(d, &["-n", "sender-sbd", "message", &target, t]);
        cmds.push((sbd_cmd(&a), format!("sbd {}", a.join(" "))));
        let target = format!("sbd-{t}");
        let a = with_dev(d, &["-n", "sender-ours", "message", &target, t]);
        cmds.push((ours_cmd(&a), format!("ironfence sbd {}", a.join(" "))));
    }
    for r in all_at_once(cmds) {
        let r = r.ok();
        if r.what.ends_with(" exit") {
            assert!(r.took < Duration::from_secs(1), "{}", r.describe());
        } else {
            assert!(
                r.took >= MSGWAIT && r.took < MSGWAIT + Duration::from_millis(1500),
                "waits msgwait: {}",
                r.describe()
            );
        }
    }
    let theirs = sbd(&with_dev(d, &["list"])).ok();
    let mine = ours(&with_dev(d, &["list"])).ok();
    assert_eq!(mine.stdout, theirs.stdout);
    for (i, t) in TYPES.iter().enumerate() {
        let by_sbd = format!("{}\tsbd-{t}\t{t}\tsender-ours\n", 2 * i);
        let by_us = format!("{}\tours-{t}\t{t}\tsender-sbd\n", 2 * i + 1);
        assert!(
            theirs.stdout.contains(&by_sbd),
            "{by_sbd:?} in\n{}",
            theirs.stdout
        );
        assert!(
            mine.stdout.contains(&by_us),
            "{by_us:?} in\n{}",
            mine.stdout
        );
    }
    // The raw mailbox bytes sbd defines: cmd at +0, sender at +1.
    let bytes = disk.bytes();
    let ss = sector_size as usize;
    for (i, cmd) in [1u8, 2, 3, 5, 0, 4].iter().enumerate() {
        let mbox = (2 + 2 * (2 * i)) * ss; // mailbox of slot 2i (sbd-*)
        assert_eq!(bytes[mbox], *cmd, "mailbox of sbd-{}", TYPES[i]);
        assert_eq!(&bytes[mbox + 1..mbox + 13], b"sender-ours\0");
        assert!(bytes[mbox + 13..mbox + ss].iter().all(|b| *b == 0));
    }
}

#[test]
fn sbd_created_disk_512() {
    interop(512, Creator::Sbd);
}

#[test]
fn sbd_created_disk_4096() {
    interop(4096, Creator::Sbd);
}

#[test]
fn ironfence_created_disk_512() {
    interop(512, Creator::Ours);
}

#[test]
fn ironfence_created_disk_4096() {
    interop(4096, Creator::Ours);
}

/// An image file written by us (explicit sector size) is an sbd disk once
/// attached with that sector size.
#[test]
fn image_file_with_explicit_sector_size() {
    let dir = tempfile::Builder::new()
        .prefix("ironfence-sbd-img-")
        .tempdir()
        .unwrap();
    let image = dir.path().join("disk.img");
    fs::File::create(&image).unwrap().set_len(4 << 20).unwrap();
    let img = image.to_str().unwrap();

    let r = ours(&["-d", img, "create"]).code(1);
    assert!(
        r.stderr.contains(img) && r.stderr.contains("--sector-size"),
        "{}",
        r.describe()
    );
    assert!(fs::read(&image).unwrap().iter().all(|b| *b == 0));

    let mut create = vec!["-d", img, "--sector-size", "4096"];
    create.extend_from_slice(&TIMEOUTS);
    create.push("create");
    ours(&create).ok();
    ours(&["-d", img, "--sector-size", "4096", "allocate", "node-a"]).ok();
    let disk = Loop::attach(dir, image.clone(), 4096);
    let dump = sbd(&with_dev(&disk.dev, &["dump"])).ok();
    assert!(
        dump.stdout.contains("Sector size        : 4096"),
        "{}",
        dump.stdout
    );
    let list = sbd(&with_dev(&disk.dev, &["list"])).ok();
    assert_eq!(list.stdout, "0\tnode-a\tclear\t\n");
}

// ---------------------------------------------------------------------------
// refusals

/// Run `args` (with `-d DEV` in front), expect `code`, every `needle` in
/// stderr, and the disk unchanged.
fn refused(disk: &Loop, extra: &[&str], args: &[&str], code: i32, needles: &[&str]) {
    let before = disk.bytes();
    let mut a = vec!["-d", disk.dev.as_str()];
    a.extend_from_slice(extra);
    a.extend_from_slice(args);
    let r = ours(&a).code(code);
    for n in needles {
        assert!(r.stderr.contains(n), "{n:?} missing: {}", r.describe());
    }
    assert!(
        r.took < Duration::from_secs(1),
        "refusals are immediate: {}",
        r.describe()
    );
    assert!(disk.bytes() == before, "{} changed the disk", r.what);
}

#[test]
fn corrupt_header_is_refused_and_left_alone() {
    let disk = Loop::new(1 << 20, 512);
    let d = disk.dev.as_str();
    let mut create = with_dev(d, &TIMEOUTS);
    create.push("create");
    sbd(&create).ok();
    sbd(&with_dev(d, &["allocate", "node-a"])).ok();
    disk.poke(0, b"XBD_"); // the magic
    for args in [
        &["dump"][..],
        &["list"],
        &["allocate", "node-b"],
        &["message", "node-a", "reset"],
        &["ping", "node-a"],
    ] {
        refused(
            &disk,
            &[],
            args,
            1,
            &[d, "sector 0", "no sbd header", "SBD_SBD_"],
        );
    }
    // sbd refuses it too.
    assert_ne!(sbd(&with_dev(d, &["list"])).code, 0);

    // A header of an unknown version.
    disk.poke(0, b"SBD_SBD_\x03");
    refused(&disk, &[], &["dump"], 1, &[d, "version 3"]);
}

#[test]
fn other_sector_size_is_refused_and_left_alone() {
    // Created by sbd on 512-byte sectors, then attached with 4096.
    let disk = Loop::new(4 << 20, 512);
    let mut create = with_dev(&disk.dev, &TIMEOUTS);
    create.push("create");
    sbd(&create).ok();
    sbd(&with_dev(&disk.dev, &["allocate", "node-a"])).ok();
    let image = disk.image.clone();
    let dir = tempfile::Builder::new()
        .prefix("ironfence-sbd-")
        .tempdir()
        .unwrap();
    let copy = dir.path().join("disk.img");
    fs::copy(&image, &copy).unwrap();
    drop(disk);
    let big = Loop::attach(dir, copy, 4096);
    let d = big.dev.as_str();
    for args in [
        &["dump"][..],
        &["list"],
        &["allocate", "node-b"],
        &["message", "node-a", "off"],
        &["ping", "node-a"],
    ] {
        refused(
            &big,
            &[],
            args,
            1,
            &[d, "header sector size 512", "the device's 4096"],
        );
    }
    assert_ne!(sbd(&with_dev(d, &["dump"])).code, 0, "sbd agrees");
    // A sector size that contradicts the device.
    refused(
        &big,
        &["--sector-size", "512"],
        &["dump"],
        1,
        &[d, "BLKSSZGET", "4096"],
    );
    refused(
        &big,
        &["--sector-size", "512"],
        &["create"],
        1,
        &[d, "BLKSSZGET", "nothing was written"],
    );
}

#[test]
fn bad_names_nodes_and_command_lines_are_refused() {
    let disk = Loop::new(1 << 20, 512);
    let d = disk.dev.as_str();
    let mut create = with_dev(d, &TIMEOUTS);
    create.push("create");
    ours(&create).ok();
    ours(&with_dev(d, &["allocate", "node-a"])).ok();
    let long = "n".repeat(64);
    let long = long.as_str();

    // An unallocated node.
    refused(
        &disk,
        &[],
        &["message", "ghost", "reset"],
        1,
        &[d, "`ghost` has no slot", "allocate ghost"],
    );
    refused(
        &disk,
        &[],
        &["ping", "ghost"],
        1,
        &[d, "`ghost` has no slot"],
    );
    // Names over 63 bytes (sbd would cut them to 63 and carry on).
    for args in [
        &["allocate", long][..],
        &["message", long, "test"],
        &["ping", long],
        &["-n", long, "message", "node-a", "test"],
    ] {
        refused(&disk, &[], args, 64, &["64 bytes", "63"]);
    }
    // Command lines.
    refused(
        &disk,
        &[],
        &["message", "node-a", "explode"],
        64,
        &["explode", "possible values"],
    );
    refused(&disk, &[], &["frobnicate"], 64, &["frobnicate"]);
    refused(&disk, &[], &["-Q", "list"], 64, &["-Q"]);
    refused(&disk, &["-1", "0"], &["create"], 64, &["-1", "watchdog"]);
    refused(&disk, &["-d", d], &["list"], 64, &["given twice"]);
    refused(
        &disk,
        &["-d", "/dev/null", "-d", "/dev/zero", "-d", "/dev/full"],
        &["list"],
        64,
        &["at most 3"],
    );
    let r = ours(&["list"]).code(64);
    assert!(r.stderr.contains("-d DEV"), "{}", r.describe());
    // sbd itself, for the record: a 64-byte -n is refused there too.
    assert_ne!(sbd(&with_dev(d, &["-n", long, "list"])).code, 0);
}

#[test]
fn too_small_disks_are_refused_and_left_alone() {
    for (bytes, ss, need) in [
        (128u64 << 10, 512u32, 261_632u64),
        (1 << 20, 4096, 2_093_056),
    ] {
        let disk = Loop::new(bytes, ss);
        let d = disk.dev.as_str();
        let have = bytes.to_string();
        let need = need.to_string();
        refused(
            &disk,
            &[],
            &["create"],
            1,
            &[d, "too small", &have, &need, "nothing was written"],
        );
        assert!(disk.bytes().iter().all(|b| *b == 0));
        assert_eq!(SECTORS_USED * ss as u64, need.parse::<u64>().unwrap());
    }
}

/// Majority rules, as in sbd: a message needs more than half of the disks.
#[test]
fn three_disks_majority() {
    let disks: Vec<Loop> = (0..3).map(|_| Loop::new(1 << 20, 512)).collect();
    let devs: Vec<&str> = disks.iter().map(|l| l.dev.as_str()).collect();
    let all = |args: &[&str]| -> Vec<String> {
        let mut v = Vec::new();
        for d in &devs {
            v.push("-d".to_string());
            v.push(d.to_string());
        }
        v.extend(args.iter().map(|s| s.to_string()));
        v
    };
    let a = all(&[&TIMEOUTS[..], &["create"]].concat());
    ours(&a.iter().map(String::as_str).collect::<Vec<_>>()).ok();
    // node-a exists on one disk only: refused, nothing written anywhere.
    sbd(&with_dev(devs[0], &["allocate", "node-a"])).ok();
    let before: Vec<Vec<u8>> = disks.iter().map(Loop::bytes).collect();
    let a = all(&["-n", "fencer", "message", "node-a", "off"]);
    let r = ours(&a.iter().map(String::as_str).collect::<Vec<_>>()).code(1);
    assert!(
        r.stderr.contains("only 1 of 3 disk(s) are usable")
            && r.stderr.contains("nothing was written"),
        "{}",
        r.describe()
    );
    for (l, b) in disks.iter().zip(&before) {
        assert!(l.bytes() == *b, "{} changed", l.dev);
    }
    // node-b on all three, one header broken: delivered to two of three.
    let a = all(&["allocate", "node-b"]);
    ours(&a.iter().map(String::as_str).collect::<Vec<_>>()).ok();
    disks[2].poke(0, b"\0\0\0\0");
    let a = all(&["-n", "fencer", "message", "node-b", "off"]);
    let r = ours(&a.iter().map(String::as_str).collect::<Vec<_>>()).ok();
    assert!(
        r.stderr.contains(devs[2]) && r.stderr.contains("no sbd header"),
        "{}",
        r.describe()
    );
    assert!(r.took >= MSGWAIT, "{}", r.describe());
    for d in &devs[..2] {
        let l = sbd(&with_dev(d, &["list"])).ok();
        assert!(
            l.stdout.contains("\tnode-b\toff\tfencer\n"),
            "{d}: {}",
            l.stdout
        );
    }
}

// ---------------------------------------------------------------------------
// the real daemon, sandboxed

/// `tests/lab/sbd/sbd-watch-sandbox.sh`: sbd watch in pid + mount
/// namespaces. Killing the script's PID (unshare, `--kill-child`) ends the
/// namespace and every process in it.
struct Sandbox {
    child: Child,
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn start(dev: &str, node: &str) -> Sandbox {
        let sbd = require_peer("sbd");
        require_peer("unshare");
        require_peer("python3");
        let dir = tempfile::Builder::new()
            .prefix("ironfence-sbd-watch-")
            .tempdir()
            .unwrap();
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lab/sbd/sbd-watch-sandbox.sh");
        let out = fs::File::create(dir.path().join("sandbox.out")).unwrap();
        let child = Command::new("bash")
            .arg(&script)
            .args([dev, node])
            .arg(dir.path())
            .env("SBD", &sbd)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let mut s = Sandbox { child, dir };
        // Ready once the daemon's parent returned: first healthy round done,
        // its own mailbox zeroed.
        s.wait_for("sandbox: inquisitor ns-pid=", Duration::from_secs(15));
        s
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("sbd.log")).unwrap_or_default()
            + &fs::read_to_string(self.dir.path().join("sandbox.out")).unwrap_or_default()
    }

    fn wait_for(&mut self, needle: &str, limit: Duration) {
        let t = Instant::now();
        while !self.log().contains(needle) {
            assert!(
                t.elapsed() < limit,
                "no {needle:?} in the sandbox log within {limit:?}:\n{}",
                self.log()
            );
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(
                    self.log().contains(needle),
                    "sandbox exited ({status}) without {needle:?}:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Wait until the sandbox ended by itself.
    fn wait_exit(&mut self, limit: Duration) {
        let t = Instant::now();
        while self.child.try_wait().unwrap().is_none() {
            assert!(
                t.elapsed() < limit,
                "sandbox still running after {limit:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[test]
fn real_sbd_daemon_in_sandbox() {
    let disk = Loop::new(1 << 20, 512);
    let d = disk.dev.as_str();
    let mut create = with_dev(d, &TIMEOUTS);
    create.push("create");
    ours(&create).ok();
    ours(&with_dev(d, &["allocate", "node-a"])).ok();
    let mut sandbox = Sandbox::start(d, "node-a");
    assert!(
        sandbox.log().contains("Monitoring slot 0 on disk"),
        "{}",
        sandbox.log()
    );

    // Our `test` reaches the daemon, with our sender name.
    let r = ours(&with_dev(
        d,
        &["-n", "fencer-x", "message", "node-a", "test"],
    ))
    .ok();
    assert!(r.took >= MSGWAIT, "{}", r.describe());
    sandbox.wait_for(
        "Received command test from fencer-x on disk",
        Duration::from_secs(3),
    );

    // ping: the daemon clears our `test` within a loop (1 s); we see it within 100 ms.
    let mut ours_t = Vec::new();
    let mut sbd_t = Vec::new();
    // Each start at another phase of the daemon's 1 s loop (a ping ends just
    // after the daemon's read, so back-to-back pings would all start there).
    for k in 0..5u64 {
        std::thread::sleep(Duration::from_millis(200 * k));
        let r = ours(&with_dev(d, &["-n", "fencer-x", "ping", "node-a"])).ok();
        assert!(
            r.stdout
                .contains("node-a answered the ping on 1 of 1 disk(s)"),
            "{}",
            r.describe()
        );
        assert!(r.took < Duration::from_millis(1600), "{}", r.describe());
        ours_t.push(r.took);
        std::thread::sleep(Duration::from_millis(200 * k));
        let r = sbd(&with_dev(d, &["-n", "fencer-x", "ping", "node-a"])).ok();
        sbd_t.push(r.took);
    }
    eprintln!(
        "ping against the sandboxed daemon, median of 5: ironfence {:?} (all: {:?}), sbd {:?} (all: {:?})",
        median(ours_t.clone()),
        ours_t,
        median(sbd_t.clone()),
        sbd_t
    );

    // exit: returns at once (no msgwait) and the daemon stops.
    let r = ours(&with_dev(
        d,
        &["-n", "fencer-x", "message", "node-a", "exit"],
    ))
    .ok();
    assert!(r.took < Duration::from_secs(1), "{}", r.describe());
    sandbox.wait_for(
        "Received command exit from fencer-x on disk",
        Duration::from_secs(3),
    );
    sandbox.wait_exit(Duration::from_secs(5));
    assert!(
        sandbox.log().contains("sandbox: sbd inquisitor gone"),
        "{}",
        sandbox.log()
    );
    let l = sbd(&with_dev(d, &["list"])).ok();
    assert_eq!(l.stdout, "0\tnode-a\texit\tfencer-x\n");

    // Nobody answers now: our ping says so; sbd's ping exits 0 regardless.
    let r = ours(&with_dev(d, &["-n", "fencer-x", "ping", "node-a"])).code(1);
    assert!(
        r.stderr
            .contains("node-a did not answer the ping within msgwait (2 s)"),
        "{}",
        r.describe()
    );
    assert!(
        r.took >= MSGWAIT && r.took < MSGWAIT + Duration::from_secs(1),
        "{}",
        r.describe()
    );
    let r = sbd(&with_dev(d, &["-n", "fencer-x", "ping", "node-a"]));
    eprintln!(
        "sbd ping without a daemon: exit {} after {:?} (sbd 1.5.2 ignores the result)",
        r.code, r.took
    );
}
