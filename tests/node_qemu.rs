//! `ironfenced` as the node's watchdog daemon, in QEMU/TCG guests with a real
//! Debian kernel, a real i6300esb (`-action watchdog=poweroff`) and real
//! sysrq (tests/support/qemu.rs). Nothing here touches the host's watchdog:
//! only the guests reset.
//!
//! (a) SIGSTOP the daemon -> the hardware watchdog powers the guest off
//!     within watchdog timeout + 2 s;
//! (b) SIGTERM -> magic close, no reset;
//! (c) two guests share a disk: `ironfence sbd message nodeA reset` from B
//!     -> A resets (sysrq b);
//! (d) the real `sbd message nodeA reset` from B -> our daemon in A resets;
//! (e) three disks: one removed -> A keeps running; two removed -> A resets.
//!
//! The guests run one at a time (a lock): TCG on 2 cores keeps its timing
//! honest that way. Run: `cargo test --test node_qemu -- --nocapture`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};
use support::qemu::{raw_disk, ExitReason, Guest};

const BOOT: Duration = Duration::from_secs(90);
/// The i6300esb timeout the daemon programs (also the disks' header value).
const WD: u64 = 5;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The daemon's config in a guest: the real watchdog, sysrq self-fence.
fn config(node: &str, disks: &[&str]) -> String {
    let mut c = format!(
        r#"
[daemon]
socket = "/run/ironfence/ironfenced.sock"
state_dir = "/var/lib/ironfence"
node_name = "{node}"
fencing_timeout = "60s"

[watchdog]
kind = "linux"
device = "/dev/watchdog"
timeout = "{WD}s"
interval = "1s"

[self_fence]
method = "sysrq"
timeout_action = "reboot"
"#
    );
    if !disks.is_empty() {
        let list: Vec<String> = disks.iter().map(|d| format!("\"{d}\"")).collect();
        c.push_str(&format!(
            "\n[sbd]\ndevices = [{}]\nio_timeout = \"2s\"\n",
            list.join(", ")
        ));
    }
    c
}

/// Start ironfenced in the background, wait until it feeds the watchdog,
/// print WATCHING, then run `then`.
fn scenario(then: &str) -> String {
    format!(
        r#"
ironfenced --config /etc/ironfence/ironfence.toml --log info > /dev/console 2>&1 &
PID=$!
echo "DAEMON_PID $PID"
i=0
until ironfence --socket /run/ironfence/ironfenced.sock node status 2>/dev/null | grep -q "state:      watching"; do
  i=$((i+1)); [ $i -gt 300 ] && {{ echo "NEVER_WATCHING"; ironfence --socket /run/ironfence/ironfenced.sock node status; exit 1; }}
  sleep 0.1
done
echo "WATCHING uptime=$(cut -d' ' -f1 /proc/uptime)"
{then}
"#
    )
}

/// An sbd disk image (watchdog 5 s, msgwait 10 s) with slots for nodeA and nodeB.
fn sbd_disk(path: &Path) -> PathBuf {
    let disk = raw_disk(path, 4 << 20);
    for args in [
        &["-1", "5", "-4", "10", "create"][..],
        &["allocate", "nodeA"],
        &["allocate", "nodeB"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_ironfence"))
            .arg("sbd")
            .arg("-d")
            .arg(&disk)
            .args(["--sector-size", "512"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "sbd {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    disk
}

fn guest_a(disks: &[&Path], guest_disks: &[&str], then: &str) -> Guest {
    let mut b = Guest::builder("nodeA")
        .memory(384)
        .file(
            "/etc/ironfence/ironfence.toml",
            config("nodeA", guest_disks),
        )
        .scenario(scenario(then));
    for d in disks {
        b = b.disk(d);
    }
    b.start()
}

const ALIVE: &str = r#"
while true; do echo "alive uptime=$(cut -d' ' -f1 /proc/uptime)"; sleep 0.5; done
"#;

#[test]
fn a_sigstopped_daemon_is_reset_by_the_hardware_watchdog() {
    let _one = serial();
    let g = guest_a(
        &[],
        &[],
        &format!(
            "sleep 1\nkill -STOP $PID\necho \"SIGSTOPPED uptime=$(cut -d' ' -f1 /proc/uptime)\"\n{ALIVE}"
        ),
    );
    g.wait_for_line("WATCHING", BOOT).unwrap();
    let (stopped, _) = g
        .wait_for_line("SIGSTOPPED", Duration::from_secs(30))
        .unwrap();
    let exit = g.wait_exit(Duration::from_secs(WD + 10)).unwrap();
    let after = exit.at.saturating_duration_since(stopped);
    eprintln!("(a) SIGSTOP -> watchdog fired after {after:?}");
    assert_eq!(
        exit.reason,
        ExitReason::WatchdogFired {
            action: "poweroff".into()
        },
        "{}",
        g.report()
    );
    assert!(
        after <= Duration::from_secs(WD + 2),
        "{after:?}\n{}",
        g.report()
    );
}

#[test]
fn sigterm_disarms_the_watchdog_and_the_guest_lives_on() {
    let _one = serial();
    let g = guest_a(
        &[],
        &[],
        &format!(
            "sleep 2\nkill -TERM $PID\nwait $PID\necho \"DAEMON_EXIT rc=$?\"\nsleep {}\necho SURVIVED\n",
            WD + 3
        ),
    );
    g.wait_for_line("WATCHING", BOOT).unwrap();
    g.wait_for_line("DAEMON_EXIT rc=0", Duration::from_secs(30))
        .unwrap();
    g.wait_for_line("SURVIVED", Duration::from_secs(WD + 20))
        .unwrap();
    let exit = g.wait_exit(Duration::from_secs(30)).unwrap();
    assert_eq!(exit.reason, ExitReason::GuestPoweroff, "{}", g.report());
    let text = g.serial_text();
    assert!(text.contains("watchdog disarmed"), "{text}");
    assert!(!text.contains("watchdog did not stop"), "{text}");
}

/// Guest B sends `command` (a shell line using $DISK) once A watches, and
/// powers off. Returns (A's exit, time from B's FENCE_SEND to A's exit).
fn pill_from_b(
    dir: &Path,
    command: &str,
    b_memory: u32,
) -> (support::qemu::Exit, Duration, String) {
    let disk = sbd_disk(&dir.join("shared.img"));
    let a = guest_a(&[&disk], &["/dev/vda"], ALIVE);
    a.wait_for_line("WATCHING", BOOT).unwrap();
    let b = Guest::builder("nodeB")
        .memory(b_memory)
        .disk(&disk)
        .scenario(format!(
            "mkdir -p /var/run /var/lib/pacemaker/cores\nDISK=/dev/vda\necho \"FENCE_SEND uptime=$(cut -d' ' -f1 /proc/uptime)\"\n{command}\necho \"FENCE_DONE rc=$?\"\n"
        ))
        .start();
    let (sent, _) = b.wait_for_line("FENCE_SEND", BOOT).unwrap();
    let exit = a.wait_exit(Duration::from_secs(30)).unwrap();
    let took = exit.at.saturating_duration_since(sent);
    b.wait_for_line("FENCE_DONE rc=0", Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}\n{}", b.report()));
    (exit, took, a.serial_text())
}

#[test]
fn a_pill_from_the_other_guest_resets_this_one() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let (exit, took, text) = pill_from_b(
        dir.path(),
        "ironfence sbd -d $DISK -n nodeB message nodeA reset",
        256,
    );
    eprintln!("(c) ironfence sbd message reset -> nodeA reset after {took:?}");
    assert_eq!(exit.reason, ExitReason::GuestReset, "{text}");
    assert!(text.contains("poison pill `reset` from `nodeB`"), "{text}");
    assert!(text.contains("sysrq: Resetting"), "{text}");
}

#[test]
fn the_real_sbd_message_resets_a_node_watched_by_ironfenced() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let (exit, took, text) =
        pill_from_b(dir.path(), "sbd -d $DISK -n nodeB message nodeA reset", 512);
    eprintln!("(d) sbd message reset -> nodeA (ironfenced) reset after {took:?}");
    assert_eq!(exit.reason, ExitReason::GuestReset, "{text}");
    assert!(text.contains("poison pill `reset` from `nodeB`"), "{text}");
}

#[test]
fn three_disks_survive_one_loss_and_reset_on_two() {
    let _one = serial();
    let dir = tempfile::tempdir().unwrap();
    let disks: Vec<PathBuf> = (0..3)
        .map(|i| sbd_disk(&dir.path().join(format!("d{i}.img"))))
        .collect();
    let refs: Vec<&Path> = disks.iter().map(PathBuf::as_path).collect();
    let a = guest_a(&refs, &["/dev/vda", "/dev/vdb", "/dev/vdc"], ALIVE);
    a.wait_for_line("WATCHING", BOOT).unwrap();
    std::thread::sleep(Duration::from_secs(1));

    a.remove_disk(2).unwrap();
    let removed_one = Instant::now();
    // Two disks are a majority of three: A goes on feeding.
    std::thread::sleep(Duration::from_secs(WD + 3));
    assert!(
        a.events()
            .iter()
            .all(|e| e.name != "SHUTDOWN" && e.name != "WATCHDOG"),
        "A died with one of three disks gone\n{}",
        a.report()
    );
    a.wait_for_line_after(
        "alive",
        removed_one + Duration::from_secs(WD + 2),
        Duration::from_secs(5),
    )
    .unwrap();
    let text = a.serial_text();
    assert!(
        text.contains("1 of 3") || text.contains("sbd servant unhealthy"),
        "{text}"
    );

    a.remove_disk(1).unwrap();
    let removed_two = Instant::now();
    let exit = a.wait_exit(Duration::from_secs(WD + 10)).unwrap();
    let took = exit.at.saturating_duration_since(removed_two);
    eprintln!(
        "(e) second of three disks removed -> {:?} after {took:?}",
        exit.reason
    );
    assert!(
        matches!(
            exit.reason,
            ExitReason::GuestReset | ExitReason::WatchdogFired { .. }
        ),
        "{:?}\n{}",
        exit.reason,
        a.report()
    );
    assert!(
        took <= Duration::from_secs(WD + 3),
        "{took:?}\n{}",
        a.report()
    );
}

/// The real sbd watching nodeA's slot in guest A, with the i6300esb.
fn sbd_guest_a(disk: &Path) -> Guest {
    Guest::builder("nodeA")
        .memory(512)
        .disk(disk)
        .scenario(format!(
            r#"
mkdir -p /var/run /var/lib/pacemaker/cores
SBD_PACEMAKER=no SBD_SYNC_RESOURCE_STARTUP=no SBD_MOVE_TO_ROOT_CGROUP=no sbd -d /dev/vda -n nodeA -w /dev/watchdog watch
sleep 3
echo "WATCHING uptime=$(cut -d' ' -f1 /proc/uptime)"
{ALIVE}"#
        ))
        .start()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Benchmark (a command, not CI): time from the pill written by guest B
/// (`sbd message nodeA reset`, the same sender for both) to guest A's
/// reset, with ironfenced vs the real sbd watching A's slot. Both loop
/// every second. Run: `cargo test --test node_qemu bench -- --ignored --nocapture`.
#[test]
#[ignore]
fn bench_pill_to_self_fence_ironfenced_vs_sbd() {
    let _one = serial();
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for run in 0..runs {
        for which in ["ironfenced", "sbd"] {
            let dir = tempfile::tempdir().unwrap();
            let disk = sbd_disk(&dir.path().join("shared.img"));
            let a = if which == "sbd" {
                sbd_guest_a(&disk)
            } else {
                guest_a(&[&disk], &["/dev/vda"], ALIVE)
            };
            a.wait_for_line("WATCHING", BOOT).unwrap();
            let b = Guest::builder("nodeB")
                .memory(512)
                .disk(&disk)
                .scenario(
                    "mkdir -p /var/run /var/lib/pacemaker/cores\necho \"FENCE_SEND\"\nsbd -d /dev/vda -n nodeB message nodeA reset\necho \"FENCE_DONE rc=$?\"\n",
                )
                .start();
            let (sent, _) = b.wait_for_line("FENCE_SEND", BOOT).unwrap();
            let exit = a.wait_exit(Duration::from_secs(30)).unwrap();
            assert_eq!(exit.reason, ExitReason::GuestReset, "{}", a.report());
            let took = exit.at.saturating_duration_since(sent);
            eprintln!("run {run} {which}: pill -> reset {took:?}");
            if which == "sbd" {
                theirs.push(took);
            } else {
                ours.push(took);
            }
        }
    }
    let (o, t) = (median(ours), median(theirs));
    eprintln!(
        "median of {runs}: ironfenced {o:?}, sbd {t:?}, ratio sbd/ours {:.2}",
        t.as_secs_f64() / o.as_secs_f64()
    );
}
