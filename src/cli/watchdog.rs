//! `ironfence watchdog list|test`: what watchdogs this machine has, and
//! whether one really resets it (ClusterLabs sbd's `query-watchdog` and
//! `test-watchdog`), on [`crate::watchdog`]. Needs no daemon.
//!
//! ```text
//! ironfence watchdog list
//! ironfence watchdog test [--kind linux|ipmi|recorder] [-w DEVICE]
//!                         [--watchdog-timeout SECONDS] [--action ACTION]
//!                         --yes-reset-this-machine
//! ```
//!
//! * `list` reads `/sys/class/watchdog` and opens no device (opening one
//!   starts it). Finding none is an answer, not a failure: it says so and
//!   exits 0, as `sbd query-watchdog` does (`--output json` prints
//!   `{"sysfs": DIR, "devices": [...]}`, an empty list for scripts to test).
//! * `test` syncs the file systems, arms the watchdog with a short timeout,
//!   never feeds it and counts down: the machine should reset. If it is
//!   still alive 7 s after the timeout, the watchdog is unfit and the exit
//!   code is 1 (the watchdog is left armed: if it fires late, so be it).
//!   It refuses without `--yes-reset-this-machine` (exit 64) and whenever
//!   `IRONFENCE_FORBID_HARDWARE` is set (exit 1). With `--kind recorder`
//!   nothing is reset: it waits the timeout and checks the recorder fired
//!   (exit 0 if it did), which is how the command is tested on a host.
//!
//! Exit codes: 0 ok, 1 failed (or refused by the hardware guard), 64 wrong
//! command line.

use crate::exit;
use crate::watchdog::{
    self, sysfs, BmcAction, Kind, OpenOptions, Recorder, SysfsWatchdog, Watchdog,
};
use clap::{Args, Subcommand};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The flag `test` needs.
pub const CONFIRM_FLAG: &str = "--yes-reset-this-machine";

/// How long `test` waits past the timeout before declaring the watchdog unfit
/// (sbd: 2 s "any moment", then 5 s "should have reset").
const GRACE_ANY_MOMENT: u64 = 2;
const GRACE_SHOULD_HAVE: u64 = 5;

/// `ironfence watchdog` options.
#[derive(Args, Debug)]
#[command(
    after_help = "Exit codes: 0 success, 1 failed (or refused: IRONFENCE_FORBID_HARDWARE is set), 64 wrong command line."
)]
pub struct WatchdogArgs {
    #[command(subcommand)]
    command: WatchdogCommand,
}

#[derive(Subcommand, Debug)]
enum WatchdogCommand {
    /// The machine's watchdogs as /sys/class/watchdog describes them (opens none).
    List {
        /// Where the kernel lists its watchdogs.
        #[arg(long, value_name = "DIR", default_value = sysfs::SYSFS_ROOT, hide = true)]
        sysfs: PathBuf,
    },
    /// Arm a watchdog and stop feeding it: THIS MACHINE RESETS (like `sbd test-watchdog`).
    Test(TestArgs),
}

#[derive(Args, Debug)]
struct TestArgs {
    /// Which watchdog: a Linux device, the BMC's timer, or a recorder file (resets nothing).
    #[arg(long, value_name = "KIND", default_value = "linux", value_parser = parse_kind)]
    kind: Kind,
    /// The device (default /dev/watchdog, or /dev/ipmi0 with --kind ipmi); the record file with --kind recorder.
    #[arg(long, short = 'w', value_name = "PATH")]
    device: Option<PathBuf>,
    /// Reset countdown, in whole seconds (1-600).
    #[arg(long = "watchdog-timeout", value_name = "SECONDS", default_value = "5", value_parser = countdown_seconds)]
    watchdog_timeout: Duration,
    /// What the BMC does when its watchdog fires (--kind ipmi): hard-reset, power-down, power-cycle.
    #[arg(long, value_name = "ACTION", default_value = "hard-reset", value_parser = parse_action)]
    action: BmcAction,
    /// Confirm that this machine may be reset at once, without any shutdown.
    #[arg(long = "yes-reset-this-machine")]
    yes_reset_this_machine: bool,
}

fn parse_kind(s: &str) -> Result<Kind, String> {
    s.parse()
        .map_err(|e: watchdog::WatchdogError| e.to_string())
}

fn parse_action(s: &str) -> Result<BmcAction, String> {
    s.parse()
}

fn countdown_seconds(s: &str) -> Result<Duration, String> {
    match s.parse::<u64>() {
        Ok(n) if (1..=600).contains(&n) => Ok(Duration::from_secs(n)),
        _ => Err(format!(
            "`{s}` is not a whole number of seconds from 1 to 600"
        )),
    }
}

/// Entry point of `ironfence watchdog ...`: the exit code. Blocking (`test`
/// sleeps through its countdown) and needs no runtime.
pub fn execute(args: &WatchdogArgs, json: bool) -> u8 {
    match &args.command {
        WatchdogCommand::List { sysfs } => list(sysfs, json),
        WatchdogCommand::Test(t) => test(t, json),
    }
}

fn list(root: &Path, json: bool) -> u8 {
    let devices = match sysfs::list(root) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("ironfence: {e}");
            return exit::ERROR;
        }
    };
    if json {
        print_json(&serde_json::json!({ "sysfs": root, "devices": devices }));
    } else if devices.is_empty() {
        println!("{}", none_found(root));
    } else {
        print!("{}", table(&devices));
    }
    exit::OK
}

fn none_found(root: &Path) -> String {
    format!(
        "No watchdog found in {}: load the board's driver (i6300esb, iTCO_wdt, sp5100_tco, ipmi_watchdog...; softdog only for testing).",
        root.display()
    )
}

fn or_dash<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

/// The `list` table: one row per watchdog, columns sized to fit.
fn table(devices: &[SysfsWatchdog]) -> String {
    let header = [
        "DEVICE",
        "IDENTITY",
        "DRIVER",
        "STATE",
        "TIMEOUT",
        "RANGE",
        "NOWAYOUT",
        "LAST BOOT",
    ];
    let rows: Vec<[String; 8]> = devices
        .iter()
        .map(|w| {
            let state = match (&w.state, w.timeleft_s) {
                (Some(s), Some(left)) => format!("{s} ({left}s left)"),
                (s, _) => or_dash(s.clone()),
            };
            let range = match (w.min_timeout_s, w.max_timeout_s) {
                (None, None) => "-".to_string(),
                (min, max) => format!("{}-{}s", or_dash(min), or_dash(max)),
            };
            let boot = if w.boot_reasons.is_empty() {
                w.bootstatus.map_or("-".into(), |_| "normal".into())
            } else {
                w.boot_reasons.join(", ")
            };
            [
                format!(
                    "{}{}",
                    w.device.display(),
                    if w.legacy_alias { "*" } else { "" }
                ),
                or_dash(w.identity.clone()),
                or_dash(w.driver.clone()),
                state,
                w.timeout_s.map_or("-".into(), |t| format!("{t}s")),
                range,
                w.nowayout
                    .map_or("-".into(), |n| if n { "yes" } else { "no" }.to_string()),
                boot,
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}  "));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in &rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    if devices.iter().any(|w| w.legacy_alias) {
        out.push_str("* also /dev/watchdog\n");
    }
    if devices
        .iter()
        .any(|w| w.driver.as_deref() == Some("softdog"))
    {
        out.push_str(
            "softdog is a kernel timer: it cannot reset a hung kernel; not for production.\n",
        );
    }
    out
}

fn print_json(v: &serde_json::Value) {
    match serde_json::to_string(v) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("ironfence: cannot print JSON: {e}"),
    }
}

/// What `test` prints as it goes: text lines, or one JSON object per step.
struct Progress {
    json: bool,
}

impl Progress {
    fn say(&self, step: &str, text: &str, fields: serde_json::Value) {
        if self.json {
            let mut v = serde_json::json!({ "step": step, "message": text });
            if let (Some(map), serde_json::Value::Object(extra)) = (v.as_object_mut(), fields) {
                map.extend(extra);
            }
            print_json(&v);
        } else {
            println!("{text}");
        }
        let _ = std::io::stdout().flush();
    }
}

/// Why `test` will not start, with its exit code; checked before any device
/// is looked at.
fn refusal(t: &TestArgs) -> Option<(u8, String)> {
    if !t.yes_reset_this_machine {
        return Some((
            exit::USAGE,
            format!("watchdog test resets this machine at once, without shutting anything down; add {CONFIRM_FLAG} to go ahead"),
        ));
    }
    if t.kind.is_hardware() {
        let device = t
            .device
            .as_deref()
            .or(t.kind.default_device())
            .unwrap_or(Path::new(""));
        if let Err(e) = watchdog::check_hardware_allowed(device) {
            return Some((exit::ERROR, e.to_string()));
        }
    }
    if t.kind == Kind::Recorder && t.device.is_none() {
        return Some((
            exit::USAGE,
            "--kind recorder needs -w FILE (where to record)".into(),
        ));
    }
    None
}

/// The device to test: the one given, else the kind's default. For Linux
/// with no --device, several watchdogs make the choice the operator's (as
/// sbd does).
fn choose_device(t: &TestArgs, root: &Path) -> Result<PathBuf, (u8, String)> {
    if let Some(d) = &t.device {
        return Ok(d.clone());
    }
    if t.kind == Kind::Linux {
        let found = sysfs::list(root).map_err(|e| (exit::ERROR, e.to_string()))?;
        if found.len() > 1 {
            let names: Vec<String> = found
                .iter()
                .map(|w| w.device.display().to_string())
                .collect();
            return Err((
                exit::USAGE,
                format!(
                    "several watchdogs ({}): say which one resets this machine with -w DEVICE",
                    names.join(", ")
                ),
            ));
        }
    }
    t.kind
        .default_device()
        .map(Path::to_path_buf)
        .ok_or((exit::USAGE, format!("--kind {} needs -w PATH", t.kind)))
}

fn test(t: &TestArgs, json: bool) -> u8 {
    if let Some((code, msg)) = refusal(t) {
        eprintln!("ironfence: {msg}");
        return code;
    }
    let device = match choose_device(t, Path::new(sysfs::SYSFS_ROOT)) {
        Ok(d) => d,
        Err((code, msg)) => {
            eprintln!("ironfence: {msg}");
            return code;
        }
    };
    let p = Progress { json };
    let secs = t.watchdog_timeout.as_secs();
    // The recorder is kept concrete so its handle can say whether it fired.
    let mut recorder_handle = None;
    let opened: Result<Box<dyn Watchdog>, _> = match t.kind {
        Kind::Recorder => Recorder::with_file(&device).map(|r| {
            recorder_handle = Some(r.handle());
            Box::new(r) as Box<dyn Watchdog>
        }),
        kind => watchdog::open_with(
            kind,
            &device,
            &OpenOptions {
                bmc_action: t.action,
                ..OpenOptions::default()
            },
        ),
    };
    let mut wd = match opened {
        Ok(wd) => wd,
        Err(e) => {
            eprintln!("ironfence: {e}");
            return exit::ERROR;
        }
    };
    let info = wd.describe();
    let what = match &info.identity {
        Some(id) => format!("{} ({id})", device.display()),
        None => device.display().to_string(),
    };
    let consequence = if t.kind.is_hardware() {
        "This machine is expected to reset WITHOUT any shutdown procedure."
    } else {
        "A recorder resets nothing: it notes when a real watchdog would have fired."
    };
    p.say(
        "plan",
        &format!("Arming {what} with a reset countdown of {secs} s, then feeding it no more.\n{consequence}"),
        serde_json::json!({ "device": device, "kind": t.kind, "timeout_ms": secs * 1000 }),
    );
    if t.kind.is_hardware() {
        p.say("sync", "Syncing file systems ...", serde_json::json!({}));
        nix::unistd::sync();
    }
    let took = match wd.arm(t.watchdog_timeout) {
        Ok(took) => took,
        Err(e) => {
            eprintln!("ironfence: {e}");
            return exit::ERROR;
        }
    };
    p.say(
        "armed",
        &format!(
            "Armed: {} took a timeout of {} s; no more keepalives.",
            device.display(),
            took.as_secs_f64()
        ),
        serde_json::json!({ "timeout_ms": took.as_millis() as u64 }),
    );
    if let Some(h) = recorder_handle {
        std::thread::sleep(took + Duration::from_millis(100));
        return match h.fired_at_ms() {
            Some(at) => {
                p.say(
                    "fired",
                    &format!("The recorder fired at t={at} ms: a real watchdog would have reset the machine."),
                    serde_json::json!({ "fired_at_ms": at }),
                );
                exit::OK
            }
            None => {
                eprintln!("ironfence: the recorder did not fire within {took:?}");
                exit::ERROR
            }
        };
    }
    countdown(&p, wd.as_ref(), took);
    let waited = took.as_secs() + GRACE_ANY_MOMENT + GRACE_SHOULD_HAVE;
    p.say(
        "not_reset",
        &format!(
            "Error: {} did not reset this machine within {waited} s; it is not fit to be ironfence's watchdog (it stays armed).",
            device.display()
        ),
        serde_json::json!({ "waited_s": waited }),
    );
    exit::ERROR
}

/// sbd's countdown: the seconds to the reset, then "any moment", then
/// "should have reset". Returns only if the machine is still alive.
fn countdown(p: &Progress, wd: &dyn Watchdog, took: Duration) {
    let mut left = took.as_secs();
    while left > 0 {
        let driver = wd
            .time_left()
            .map(|d| format!(" (the driver says {} s)", d.as_secs()))
            .unwrap_or_default();
        p.say(
            "countdown",
            &format!("Reset countdown ... {left} s{driver}"),
            serde_json::json!({ "left_s": left }),
        );
        std::thread::sleep(Duration::from_secs(1));
        left -= 1;
    }
    for _ in 0..GRACE_ANY_MOMENT {
        p.say(
            "any_moment",
            "System expected to reset any moment ...",
            serde_json::json!({}),
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    for _ in 0..GRACE_SHOULD_HAVE {
        p.say(
            "should_have",
            "System should have reset ...",
            serde_json::json!({}),
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Top {
        #[command(flatten)]
        args: WatchdogArgs,
    }

    fn parse(args: &[&str]) -> Result<WatchdogArgs, clap::Error> {
        Top::try_parse_from(std::iter::once("watchdog").chain(args.iter().copied())).map(|t| t.args)
    }

    fn test_args(args: &[&str]) -> TestArgs {
        match parse(args).unwrap().command {
            WatchdogCommand::Test(t) => t,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn test_defaults_and_options() {
        let t = test_args(&["test"]);
        assert_eq!(t.kind, Kind::Linux);
        assert_eq!(t.device, None);
        assert_eq!(t.watchdog_timeout, Duration::from_secs(5));
        assert_eq!(t.action, BmcAction::HardReset);
        assert!(!t.yes_reset_this_machine);

        let t = test_args(&[
            "test",
            "--kind",
            "ipmi",
            "-w",
            "/dev/ipmi1",
            "--watchdog-timeout",
            "10",
            "--action",
            "power-down",
            CONFIRM_FLAG,
        ]);
        assert_eq!(t.kind, Kind::Ipmi);
        assert_eq!(t.device.as_deref(), Some(Path::new("/dev/ipmi1")));
        assert_eq!(t.watchdog_timeout, Duration::from_secs(10));
        assert_eq!(t.action, BmcAction::PowerDown);
        assert!(t.yes_reset_this_machine);
    }

    #[test]
    fn usage_errors() {
        for bad in [
            &["test", "--watchdog-timeout", "0"][..],
            &["test", "--watchdog-timeout", "1.5"],
            &["test", "--watchdog-timeout", "601"],
            &["test", "--kind", "softdog"],
            &["test", "--action", "reboot"],
            &["list", "extra"],
            &[],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should not parse");
        }
        let e = parse(&["test", "--kind", "softdog"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("linux, ipmi or recorder"), "{e}");
        let l = parse(&["list"]).unwrap();
        assert!(
            matches!(l.command, WatchdogCommand::List { ref sysfs } if sysfs == Path::new("/sys/class/watchdog"))
        );
    }

    #[test]
    fn test_without_the_flag_is_refused_with_64_naming_it() {
        for kind in ["linux", "ipmi", "recorder"] {
            let t = test_args(&["test", "--kind", kind, "-w", "/nonexistent/wd"]);
            let (code, msg) = refusal(&t).unwrap();
            assert_eq!(code, exit::USAGE);
            assert!(msg.contains(CONFIRM_FLAG), "{msg}");
            // and the full command stops there, touching nothing
            assert_eq!(
                execute(
                    &parse(&["test", "--kind", kind, "-w", "/nonexistent/wd"]).unwrap(),
                    false
                ),
                exit::USAGE
            );
        }
    }

    /// Only meaningful (and only run) with the guard set, as the harness
    /// does for every process: then hardware kinds are refused with 1.
    #[test]
    fn test_under_the_hardware_guard_is_refused() {
        if !watchdog::hardware_forbidden() {
            eprintln!("IRONFENCE_FORBID_HARDWARE not set: not running a hardware test command");
            return;
        }
        for kind in ["linux", "ipmi"] {
            let t = test_args(&["test", "--kind", kind, CONFIRM_FLAG]);
            let (code, msg) = refusal(&t).unwrap();
            assert_eq!(code, exit::ERROR);
            assert!(msg.contains("IRONFENCE_FORBID_HARDWARE"), "{msg}");
            let args = parse(&["test", "--kind", kind, CONFIRM_FLAG]).unwrap();
            assert_eq!(execute(&args, false), exit::ERROR);
        }
    }

    #[test]
    fn recorder_needs_a_file() {
        let t = test_args(&["test", "--kind", "recorder", CONFIRM_FLAG]);
        assert_eq!(refusal(&t).map(|r| r.0), Some(exit::USAGE));
    }

    #[test]
    fn test_with_a_recorder_fires() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("wd.jsonl");
        let f = file.to_str().unwrap();
        let args = parse(&[
            "test",
            "--kind",
            "recorder",
            "-w",
            f,
            "--watchdog-timeout",
            "1",
            CONFIRM_FLAG,
        ])
        .unwrap();
        assert_eq!(execute(&args, true), exit::OK);
        let events = crate::watchdog::recorder::read_log(&file).unwrap();
        let kinds: Vec<_> = events.iter().map(|e| e.event).collect();
        use crate::watchdog::RecorderEvent::*;
        assert_eq!(kinds, [Arm, Fired]);
        assert_eq!(events[1].t_ms - events[0].t_ms, 1000);
    }

    #[test]
    fn several_watchdogs_need_a_choice() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        crate::watchdog::sysfs::tests::fake_entry(root, "watchdog0", &[("identity", "iTCO_wdt")]);
        let t = test_args(&["test", CONFIRM_FLAG]);
        assert_eq!(choose_device(&t, root).unwrap(), Path::new("/dev/watchdog"));
        crate::watchdog::sysfs::tests::fake_entry(
            root,
            "watchdog1",
            &[("identity", "Software Watchdog")],
        );
        let (code, msg) = choose_device(&t, root).unwrap_err();
        assert_eq!(code, exit::USAGE);
        assert!(
            msg.contains("/dev/watchdog0, /dev/watchdog1") && msg.contains("-w"),
            "{msg}"
        );
        let t = test_args(&["test", "-w", "/dev/watchdog1", CONFIRM_FLAG]);
        assert_eq!(
            choose_device(&t, root).unwrap(),
            Path::new("/dev/watchdog1")
        );
    }

    #[test]
    fn list_prints_a_table_or_says_there_is_none() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("class/watchdog");
        assert!(none_found(&root).contains("No watchdog found"));
        std::fs::create_dir_all(&root).unwrap();
        crate::watchdog::sysfs::tests::i6300esb(&root);
        crate::watchdog::sysfs::tests::fake_entry(
            &root,
            "watchdog1",
            &[
                ("identity", "Software Watchdog"),
                ("state", "active"),
                ("timeleft", "17"),
                ("timeout", "60"),
                ("nowayout", "1"),
                ("bootstatus", "32"),
            ],
        );
        let devices = sysfs::list(&root).unwrap();
        let text = table(&devices);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("DEVICE"), "{text}");
        assert!(lines[1].starts_with("/dev/watchdog0*"), "{text}");
        assert!(lines[1].contains("i6300ESB timer") && lines[1].contains("i6300esb"));
        assert!(
            lines[1].contains("30s") && lines[1].contains("1-2046s") && lines[1].contains("normal")
        );
        assert!(lines[2].contains("active (17s left)") && lines[2].contains("yes"));
        assert!(lines[2].contains("card reset"));
        assert!(text.contains("* also /dev/watchdog"));
        assert!(text.contains("softdog is a kernel timer"));
        // columns line up
        let col = lines[0].find("IDENTITY").unwrap();
        assert_eq!(&lines[1][col..col + 8], "i6300ESB");

        assert_eq!(list(&root, true), exit::OK);
        assert_eq!(list(&tmp.path().join("absent"), false), exit::OK);
    }
}
