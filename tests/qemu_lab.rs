//! Smoke tests of the QEMU/TCG guest harness (tests/support/qemu.rs): a
//! Debian kernel boots our static binaries and the real sbd; the i6300esb
//! watchdog fires when its feeder dies; sysrq resets and panics are told
//! apart; lost disks (unplugged, or their backend cut) fail in the guest;
//! two guests share a disk.
//! Everything destructive happens inside the guests.
//!
//! Run: `cargo test --test qemu_lab -- --nocapture` (timings are printed;
//! `IRONFENCE_QEMU_ECHO=1` echoes every serial line).

mod support;

use regex::Regex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::qemu::{base_initramfs, guest_binaries, raw_disk, ExitReason, Guest};

/// Boot to INIT_READY under TCG takes 4-6 s alone, longer when the tests'
/// guests share two cores.
const BOOT: Duration = Duration::from_secs(60);
const SCENARIO: Duration = Duration::from_secs(60);

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// A guest boots, sees its watchdog, runs `ironfence` (static build) and the
/// real sbd, and powers off when the scenario ends.
#[test]
fn guest_runs_our_static_binaries_and_sbd_then_powers_off() {
    let t0 = Instant::now();
    let bins = guest_binaries();
    let base = base_initramfs();
    eprintln!(
        "qemu_lab: static guest build {:.1} s; base initramfs {} ({:.1} MB gzip, {:.1} MB content, {} in {:.1} s)",
        secs(bins.build_time),
        base.path.display(),
        base.size as f64 / 1e6,
        base.content_bytes as f64 / 1e6,
        if base.built { "built" } else { "cached" },
        secs(base.took),
    );
    assert!(
        base.missing_modules.is_empty(),
        "modules missing from the guest kernel: {:?}",
        base.missing_modules
    );

    let guest = Guest::builder("smoke")
        .file("/etc/ironfence/marker.txt", "from-the-test\n")
        .scenario(
            r#"
ls /dev/watchdog* | tr '\n' ' ' | sed 's/^/WATCHDOGS /'; echo
echo "IRONFENCE_VERSION $(ironfence --version)"
echo "IRONFENCED_VERSION $(ironfenced --version)"
sbd -h > /tmp/sbd-help.txt 2>&1
echo "SBD_HELP rc=$? $(head -n 1 /tmp/sbd-help.txt)"
echo "TEST_FILE $(cat /etc/ironfence/marker.txt)"
echo "HOSTNAME $(hostname)"
"#,
        )
        .start();
    let spawned = guest.started_at();
    let (ready, line) = guest.wait_for_line("INIT_READY", BOOT).expect("boot");
    eprintln!(
        "qemu_lab: smoke guest: spawn -> INIT_READY {:.2} s ({line})",
        secs(ready - spawned)
    );
    let version = env!("CARGO_PKG_VERSION");
    let (_, watchdogs) = guest
        .wait_for_line("WATCHDOGS", SCENARIO)
        .expect("watchdogs");
    assert!(watchdogs.contains("/dev/watchdog0"), "{watchdogs}");
    guest
        .wait_for_line(format!("IRONFENCE_VERSION ironfence {version}"), SCENARIO)
        .expect("ironfence --version in the guest");
    guest
        .wait_for_line(format!("IRONFENCED_VERSION ironfence {version}"), SCENARIO)
        .expect("ironfenced --version in the guest");
    guest
        .wait_for_line("SBD_HELP rc=0 Shared storage fencing tool.", SCENARIO)
        .expect("sbd -h in the guest");
    guest
        .wait_for_line("TEST_FILE from-the-test", SCENARIO)
        .expect("test file");
    guest
        .wait_for_line("HOSTNAME smoke", SCENARIO)
        .expect("hostname");
    guest
        .wait_for_line("SCENARIO_END rc=0", SCENARIO)
        .expect("scenario end");
    let exit = guest.wait_exit(SCENARIO).expect("exit");
    assert_eq!(exit.reason, ExitReason::GuestPoweroff, "{}", guest.report());
    eprintln!(
        "qemu_lab: smoke guest: spawn -> poweroff {:.2} s; test {:.1} s",
        secs(exit.at - spawned),
        secs(t0.elapsed())
    );
}

/// busybox's watchdog daemon arms the i6300esb (3 s) and is killed with
/// SIGKILL: the kernel says "watchdog did not stop!", the guest keeps
/// running, and ~3 s later the hardware watchdog powers it off.
#[test]
fn i6300esb_fires_after_its_feeder_is_killed() {
    let guest = Guest::builder("wdfire")
        .scenario(
            r#"
watchdog -T 3 -t 1 -F /dev/watchdog &
P=$!
sleep 2
echo "KILL9 uptime=$(cut -d' ' -f1 /proc/uptime)"
kill -9 $P
while true; do echo "alive uptime=$(cut -d' ' -f1 /proc/uptime)"; sleep 0.5; done
"#,
        )
        .start();
    let (kill_at, _) = guest
        .wait_for_line("KILL9", BOOT + SCENARIO)
        .expect("kill line");
    guest
        .wait_for_line("watchdog did not stop!", SCENARIO)
        .expect("the kernel notices the unexpected close");
    let exit = guest
        .wait_exit(SCENARIO)
        .expect("the watchdog ends the guest");
    assert_eq!(
        exit.reason,
        ExitReason::WatchdogFired {
            action: "poweroff".into()
        },
        "{}",
        guest.report()
    );
    let delta = exit.at.saturating_duration_since(kill_at);
    let alive_after_kill = guest
        .lines()
        .iter()
        .filter(|(at, l)| *at > kill_at && l.starts_with("alive"))
        .count();
    eprintln!(
        "qemu_lab: i6300esb (timeout 3 s, fed every 1 s): kill -9 -> WATCHDOG {:.2} s, {alive_after_kill} alive lines in between",
        secs(delta)
    );
    assert!(alive_after_kill >= 2, "{}", guest.report());
    assert!(
        delta >= Duration::from_millis(1500) && delta <= Duration::from_secs(5),
        "WATCHDOG {delta:?} after the kill, expected ~2-3 s (timeout 3 s)\n{}",
        guest.report()
    );
}

/// sysrq `b` is a guest reset (QEMU with -no-reboot exits), sysrq `c` a
/// kernel panic (pvpanic): the harness tells them apart.
#[test]
fn sysrq_reset_and_panic_are_told_apart() {
    let reset = Guest::builder("sysrqb")
        .scenario("echo RESETTING; echo b > /proc/sysrq-trigger; sleep 30; echo STILL_HERE\n")
        .start();
    let panic = Guest::builder("sysrqc")
        .scenario("echo CRASHING; echo c > /proc/sysrq-trigger; sleep 30; echo STILL_HERE\n")
        .start();
    let exit = reset.wait_exit(BOOT + SCENARIO).expect("reset guest ends");
    assert_eq!(exit.reason, ExitReason::GuestReset, "{}", reset.report());
    reset
        .wait_for_line("RESETTING", Duration::ZERO)
        .expect("scenario ran");
    let exit = panic.wait_exit(BOOT + SCENARIO).expect("panic guest ends");
    assert_eq!(exit.reason, ExitReason::GuestPanic, "{}", panic.report());
    panic
        .wait_for_line("CRASHING", Duration::ZERO)
        .expect("scenario ran");
    assert!(
        !reset.serial_text().contains("STILL_HERE") && !panic.serial_text().contains("STILL_HERE")
    );
}

/// Three disks; while the guest does O_DIRECT I/O on all of them the test
/// hot-unplugs the second (the guest loses the device) and cuts the third's
/// backend (the device stays, its I/O fails): the first goes on working.
#[test]
fn lost_disks_fail_io_in_the_guest() {
    let dir = tempfile::tempdir().expect("temp dir");
    let disks: Vec<_> = (0..3)
        .map(|i| raw_disk(&dir.path().join(format!("d{i}.img")), 1 << 20))
        .collect();
    let guest = Guest::builder("diskloss")
        .disk(&disks[0])
        .disk(&disks[1])
        .disk(&disks[2])
        .append("loglevel=1") // no "I/O error, dev vdc" flood on the console
        .scenario(
            r#"
i=0; errs_b=0; errs_c=0
# until vdb and vdc failed three rounds each and vdb's node is gone. (Check -b
# first: once the node is gone, `dd of=/dev/vdb` would create a regular file.)
while [ $i -lt 300 ] && { [ $errs_b -lt 3 ] || [ $errs_c -lt 3 ] || [ -e /dev/vdb ]; }; do
    i=$((i+1)); line="ROUND $i"
    for d in vda vdb vdc; do
        if [ ! -b /dev/$d ]; then
            echo "/dev/$d: no block device" >/tmp/err; false
        else
            printf '%-511s\n' "$d-round-$i" | dd of=/dev/$d bs=512 count=1 oflag=direct conv=notrunc 2>/tmp/err &&
            dd if=/dev/$d bs=512 count=1 iflag=direct 2>>/tmp/err | grep -q "$d-round-$i"
        fi
        if [ $? -eq 0 ]; then
            line="$line $d=ok"
        else
            line="$line $d=ERR[$(tr '\n' ' ' </tmp/err)]"
            [ $d = vdb ] && errs_b=$((errs_b+1))
            [ $d = vdc ] && errs_c=$((errs_c+1))
        fi
    done
    echo "$line"
    sleep 0.2
done
ls /dev/vd* | tr '\n' ' ' | sed 's/^/DISKS_LEFT /'; echo
"#,
        )
        .start();
    let all_ok = Regex::new(r"^ROUND \d+ vda=ok vdb=ok vdc=ok$").expect("regex");
    guest
        .wait_for_line(&all_ok, BOOT + SCENARIO)
        .expect("I/O on three disks");

    let asked = Instant::now();
    guest.remove_disk(1).expect("unplug disk 1");
    let removed = Instant::now();
    let vdb_gone = Regex::new(r"^ROUND \d+ vda=ok vdb=ERR\[/dev/vdb: no block device \] vdc=ok$")
        .expect("regex");
    let (gone_at, line) = guest
        .wait_for_line_after(&vdb_gone, removed, SCENARIO)
        .expect("the guest lost vdb, vda and vdc work");
    eprintln!(
        "qemu_lab: remove_disk: device_del -> DEVICE_DELETED {:.2} s, -> first round without vdb {:.2} s: {line}",
        secs(removed - asked),
        secs(gone_at - removed)
    );

    guest.fail_disk(2).expect("cut disk 2's backend");
    let failed = Instant::now();
    let vdc_eio = Regex::new(r"^ROUND \d+ vda=ok vdb=ERR\[.*\] vdc=ERR\[.*Input/output error.*\]$")
        .expect("regex");
    let (eio_at, line) = guest
        .wait_for_line_after(&vdc_eio, failed, SCENARIO)
        .expect("vdc's I/O fails with EIO, vda works");
    eprintln!(
        "qemu_lab: fail_disk: drive_del -> first EIO round {:.2} s: {line}",
        secs(eio_at - failed)
    );

    let (_, left) = guest
        .wait_for_line("DISKS_LEFT", SCENARIO)
        .expect("disk list");
    assert_eq!(
        left.trim(),
        "DISKS_LEFT /dev/vda /dev/vdc",
        "{}",
        guest.report()
    );
    let exit = guest.wait_exit(SCENARIO).expect("exit");
    assert_eq!(exit.reason, ExitReason::GuestPoweroff, "{}", guest.report());
}

/// Two guests open one raw image (cache=none, no locking): what one writes
/// with O_DIRECT the other reads, and back.
#[test]
fn two_guests_share_one_disk() {
    let dir = tempfile::tempdir().expect("temp dir");
    let disk = raw_disk(&dir.path().join("shared.img"), 1 << 20);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos();
    let marker = format!("MARKER-{}-{nanos}", std::process::id());
    // read SECTOR of /dev/vda until it holds WANT (prints it) or 60 tries fail
    let wait_for = r#"
wait_for() {
    n=0
    while [ $n -lt 120 ]; do
        got=$(dd if=/dev/vda bs=512 skip=$1 count=1 iflag=direct 2>/dev/null | tr -d ' \0\n')
        case "$got" in "$2"*) echo "$got"; return 0 ;; esac
        n=$((n+1)); sleep 0.25
    done
    return 1
}
"#;
    let writer = Guest::builder("sharea")
        .disk(&disk)
        .scenario(format!(
            r#"{wait_for}
printf '%-511s\n' "{marker}" | dd of=/dev/vda bs=512 seek=8 count=1 oflag=direct conv=notrunc 2>/dev/null
echo "WROTE {marker}"
got=$(wait_for 9 "ACK-{marker}") && echo "A_SAW $got" || echo "A_NO_ACK"
"#
        ))
        .start();
    let reader = Guest::builder("shareb")
        .disk(&disk)
        .scenario(format!(
            r#"{wait_for}
got=$(wait_for 8 "{marker}") && echo "B_SAW $got" || echo "B_NOT_SEEN"
printf '%-511s\n' "ACK-{marker}" | dd of=/dev/vda bs=512 seek=9 count=1 oflag=direct conv=notrunc 2>/dev/null
echo "B_ACKED"
"#
        ))
        .start();
    let (wrote, _) = writer
        .wait_for_line(format!("WROTE {marker}"), BOOT + SCENARIO)
        .expect("A writes");
    let (saw, _) = reader
        .wait_for_line(format!("B_SAW {marker}"), BOOT + SCENARIO)
        .expect("B reads what A wrote");
    writer
        .wait_for_line(format!("A_SAW ACK-{marker}"), SCENARIO)
        .expect("A reads what B wrote");
    eprintln!(
        "qemu_lab: shared disk: A wrote -> B saw {:.2} s (B polls every 0.25 s)",
        saw.saturating_duration_since(wrote).as_secs_f64()
    );
    for g in [&writer, &reader] {
        let exit = g.wait_exit(SCENARIO).expect("exit");
        assert_eq!(exit.reason, ExitReason::GuestPoweroff, "{}", g.report());
    }
}
