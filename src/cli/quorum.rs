//! `ironfence quorum`: what the local corosync says about quorum, through
//! [`crate::quorum`] (needs a build with the `corosync` feature). Needs no
//! daemon; must run in corosync's network namespace (its IPC is per
//! namespace).
//!
//! ```text
//! ironfence quorum status [--output json]     one view + totem timing
//! ironfence quorum watch [--for 30s] [--interval 500ms]
//!                                             one JSON line per change
//! ```
//!
//! `status` prints corosync-quorumtool's key lines (or one JSON object) and
//! exits 0 when quorate, 106 when connected but not quorate, 1 when corosync
//! cannot be reached. `watch` prints one JSON object per line — the view,
//! `responding` (corosync answered a round trip within the last
//! [`STALE_INTERVALS`] intervals) and `ts_ms` (host clock, Unix ms) — first
//! the initial view, then one line whenever either changes; it exits 0 at
//! the end of `--for` or on SIGINT/SIGTERM, 1 if corosync cannot be reached
//! at start.

use super::OutputFormat;
use crate::exit;
use crate::quorum::{self, QuorumSource, QuorumView, QuorumWatch, Timing};
use clap::{Args, Subcommand};
use serde::Serialize;
use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;
use tokio::time::Instant;

/// Default pace of the liveness round trip of `watch`.
const DEFAULT_INTERVAL: &str = "500ms";
/// Interval of the one view of `status`.
const STATUS_INTERVAL: Duration = Duration::from_secs(1);
/// corosync counts as not responding when its last answer is older than
/// this many intervals.
pub const STALE_INTERVALS: u32 = 3;

/// `ironfence quorum` options.
#[derive(Args, Debug)]
#[command(
    after_help = "Exit codes: 0 quorate (status) / done (watch), 1 corosync not \
                        reachable or not built in, 64 wrong command line, 106 not quorate (status)."
)]
pub struct QuorumArgs {
    #[command(subcommand)]
    command: QuorumCommand,
}

#[derive(Subcommand, Debug)]
enum QuorumCommand {
    /// Quorum, membership and totem timing as the local corosync sees them now.
    Status,
    /// One JSON line per change of quorum, membership or corosync's liveness.
    Watch {
        /// Stop after this long (`30s`, `2m`, `500ms`); default: until SIGINT/SIGTERM.
        #[arg(long = "for", value_name = "DURATION", value_parser = duration)]
        for_: Option<Duration>,
        /// How often to check that corosync still answers.
        #[arg(long, value_name = "DURATION", default_value = DEFAULT_INTERVAL, value_parser = interval)]
        interval: Duration,
    },
}

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("`{s}` is not a duration like 30s or 500ms: {e}"))
}

fn interval(s: &str) -> Result<Duration, String> {
    let d = duration(s)?;
    if (quorum::MIN_INTERVAL..=quorum::MAX_INTERVAL).contains(&d) {
        Ok(d)
    } else {
        Err(format!(
            "{s} is out of range: use {:?} to {:?}",
            quorum::MIN_INTERVAL,
            quorum::MAX_INTERVAL
        ))
    }
}

/// Run `ironfence quorum ...` against the local corosync.
pub async fn run(args: &QuorumArgs, output: OutputFormat) -> u8 {
    let source = match quorum::corosync_source() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ironfence quorum: {e}");
            return exit::ERROR;
        }
    };
    let mut stdout = std::io::stdout();
    match &args.command {
        QuorumCommand::Status => status(source, output, &mut stdout).await,
        QuorumCommand::Watch { for_, interval } => {
            let (stop, shutdown) = watch::channel(false);
            let end = async {
                match for_ {
                    Some(d) => tokio::time::sleep(*d).await,
                    None => termination().await,
                }
            };
            let code = watch_lines(source, *interval, shutdown.clone(), end, &mut stdout).await;
            stop.send_replace(true);
            code
        }
    }
}

/// SIGINT or SIGTERM (or, if their handlers cannot be installed, never).
async fn termination() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).ok();
    let sigterm = async {
        match term.as_mut() {
            Some(t) => {
                t.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = sigterm => {}
    }
}

/// `status` with its output in `out`.
async fn status(source: Box<dyn QuorumSource>, output: OutputFormat, out: &mut impl Write) -> u8 {
    let (stop, shutdown) = watch::channel(false);
    let w = match source.watch(STATUS_INTERVAL, shutdown) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("ironfence quorum: {e}");
            return exit::ERROR;
        }
    };
    let view = w.view.borrow().clone();
    // not joined: the process ends anyway, and the watcher notices the stop
    // only at its next interval
    stop.send_replace(true);
    let text = match output {
        OutputFormat::Json => json(&StatusJson {
            view: &view,
            timing: w.timing,
        }),
        OutputFormat::Text => status_text(&view, w.timing.as_ref(), SystemTime::now()),
    };
    if writeln!(out, "{text}").and_then(|()| out.flush()).is_err() {
        return exit::ERROR;
    }
    if view.has_quorum() {
        exit::OK
    } else if view.connected {
        exit::NO_QUORUM
    } else {
        exit::ERROR
    }
}

#[derive(Serialize)]
struct StatusJson<'a> {
    #[serde(flatten)]
    view: &'a QuorumView,
    timing: Option<Timing>,
}

/// One line of `watch`.
#[derive(Serialize)]
struct WatchLine<'a> {
    ts_ms: u64,
    responding: bool,
    #[serde(flatten)]
    view: &'a QuorumView,
}

fn json(value: &impl Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| format!(r#"{{"error":"{e}"}}"#))
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Ring id as corosync-quorumtool prints it: `NODEID.SEQ` (seq in hex).
fn ring_text(ring: Option<(u32, u64)>) -> String {
    ring.map(|(n, seq)| format!("{n}.{seq:x}"))
        .unwrap_or_else(|| "-".into())
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "Yes"
    } else {
        "No"
    }
}

/// corosync-quorumtool -s's key lines for `view`.
fn status_text(view: &QuorumView, timing: Option<&Timing>, now: SystemTime) -> String {
    let mut s = String::new();
    let mut line = |k: &str, v: String| s.push_str(&format!("{:<18}{v}\n", format!("{k}:")));
    line("Date", super::output::when(unix_ms(now)));
    line("Connected", yes_no(view.connected).into());
    line("Nodes", view.members.len().to_string());
    line(
        "Node ID",
        view.this_node.map(|n| n.to_string()).unwrap_or("-".into()),
    );
    line("Ring ID", ring_text(view.ring));
    line("Quorate", yes_no(view.quorate).into());
    line(
        "Expected votes",
        view.expected_votes
            .map(|n| n.to_string())
            .unwrap_or("-".into()),
    );
    let mut flags = Vec::new();
    if view.two_node {
        flags.push("2Node");
    }
    if view.quorate {
        flags.push("Quorate");
    }
    line("Flags", flags.join(" "));
    let members: Vec<String> = view
        .members
        .iter()
        .map(|m| {
            if Some(*m) == view.this_node {
                format!("{m} (local)")
            } else {
                m.to_string()
            }
        })
        .collect();
    line("Members", members.join(", "));
    if let Some(t) = timing {
        line("Token", format!("{} ms", t.token.as_millis()));
        line("Consensus", format!("{} ms", t.consensus.as_millis()));
    }
    s.truncate(s.trim_end().len());
    s
}

/// `watch`: print lines into `out` until `end` completes (exit 0), the
/// watcher ends on its own (1) or corosync cannot be reached at start (1).
async fn watch_lines(
    source: Box<dyn QuorumSource>,
    interval: Duration,
    shutdown: watch::Receiver<bool>,
    end: impl std::future::Future<Output = ()>,
    out: &mut impl Write,
) -> u8 {
    let QuorumWatch {
        mut view,
        alive,
        handle,
        ..
    } = match source.watch(interval, shutdown) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("ironfence quorum: {e}");
            return exit::ERROR;
        }
    };
    let stale_after = interval * STALE_INTERVALS;
    let responding = || alive.borrow().elapsed() <= stale_after;
    let mut last: Option<(QuorumView, bool)> = None;
    let mut emit = |v: QuorumView, r: bool| -> std::io::Result<()> {
        if last.as_ref() == Some(&(v.clone(), r)) {
            return Ok(());
        }
        let line = json(&WatchLine {
            ts_ms: unix_ms(SystemTime::now()),
            responding: r,
            view: &v,
        });
        writeln!(out, "{line}")?;
        out.flush()?;
        last = Some((v, r));
        Ok(())
    };
    let mut tick = tokio::time::interval_at(Instant::now() + interval, interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(end);
    let first = view.borrow_and_update().clone();
    let mut code = match emit(first, responding()) {
        Ok(()) => None,
        Err(_) => Some(exit::ERROR),
    };
    while code.is_none() {
        let printed = tokio::select! {
            changed = view.changed() => match changed {
                Ok(()) => {
                    let v = view.borrow_and_update().clone();
                    emit(v, responding())
                }
                Err(_) => {
                    eprintln!("ironfence quorum: the quorum watcher stopped unexpectedly");
                    code = Some(exit::ERROR);
                    Ok(())
                }
            },
            _ = tick.tick() => {
                let v = view.borrow().clone();
                emit(v, responding())
            }
            () = &mut end => {
                code = Some(exit::OK);
                Ok(())
            }
        };
        if printed.is_err() {
            code = Some(exit::ERROR); // stdout closed
        }
    }
    drop(handle); // a watcher blocked in a hung corosync is not waited for
    code.unwrap_or(exit::ERROR)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::quorum::{Manual, Static};
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct T {
        #[command(flatten)]
        a: QuorumArgs,
    }

    fn three() -> QuorumView {
        QuorumView {
            ring: Some((1, 13)),
            ..QuorumView::quorate(Some(1), vec![1, 2, 3])
        }
    }

    #[test]
    fn parses_status_and_watch() {
        let t = T::try_parse_from(["q", "status"]).unwrap();
        assert!(matches!(t.a.command, QuorumCommand::Status));
        let t = T::try_parse_from(["q", "watch", "--for", "30s", "--interval", "200ms"]).unwrap();
        match t.a.command {
            QuorumCommand::Watch { for_, interval } => {
                assert_eq!(for_, Some(Duration::from_secs(30)));
                assert_eq!(interval, Duration::from_millis(200));
            }
            other => panic!("{other:?}"),
        }
        let t = T::try_parse_from(["q", "watch"]).unwrap();
        assert!(matches!(
            t.a.command,
            QuorumCommand::Watch { for_: None, interval } if interval == Duration::from_millis(500)
        ));
        assert!(T::try_parse_from(["q", "watch", "--interval", "0s"]).is_err());
        assert!(T::try_parse_from(["q", "watch", "--for", "soon"]).is_err());
    }

    #[test]
    fn status_text_has_quorumtool_key_lines() {
        let view = QuorumView {
            two_node: true,
            ..three()
        };
        let timing = Timing {
            token: Duration::from_millis(1000),
            consensus: Duration::from_millis(1200),
        };
        let text = status_text(&view, Some(&timing), UNIX_EPOCH);
        for want in [
            "Nodes:            3",
            "Node ID:          1",
            "Ring ID:          1.d",
            "Quorate:          Yes",
            "Expected votes:   3",
            "Flags:            2Node Quorate",
            "Members:          1 (local), 2, 3",
            "Token:            1000 ms",
            "Consensus:        1200 ms",
        ] {
            assert!(text.lines().any(|l| l == want), "{want:?} not in\n{text}");
        }
        let text = status_text(&QuorumView::disconnected(None), None, UNIX_EPOCH);
        assert!(text.contains("Connected:        No"), "{text}");
        assert!(text.contains("Quorate:          No"), "{text}");
    }

    #[tokio::test]
    async fn status_exit_codes_follow_quorum() {
        let mut out = Vec::new();
        let code = status(Box::new(Static::new(three())), OutputFormat::Json, &mut out).await;
        assert_eq!(code, exit::OK);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["members"], serde_json::json!([1, 2, 3]));
        assert_eq!(v["ring"], serde_json::json!([1, 13]));
        assert_eq!(v["timing"], serde_json::Value::Null);

        let lost = QuorumView {
            quorate: false,
            members: vec![3],
            ..three()
        };
        let code = status(
            Box::new(Static::new(lost)),
            OutputFormat::Text,
            &mut Vec::new(),
        )
        .await;
        assert_eq!(code, exit::NO_QUORUM);
        let (m, _c) = Manual::new(three());
        let code = status(
            Box::new(m.unreachable()),
            OutputFormat::Text,
            &mut Vec::new(),
        )
        .await;
        assert_eq!(code, exit::ERROR);
    }

    fn lines(out: &[u8]) -> Vec<serde_json::Value> {
        String::from_utf8_lossy(out)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn watch_prints_changes_and_liveness() {
        let (source, control) = Manual::new(three());
        let (_stop, shutdown) = watch::channel(false);
        let interval = Duration::from_millis(100);
        let script = async {
            tokio::time::sleep(Duration::from_millis(250)).await;
            control.update(|v| v.members = vec![1, 2]);
            tokio::time::sleep(Duration::from_millis(250)).await;
            control.update(|v| v.members = vec![1, 2]); // no change: no line
            control.set_responding(false);
            tokio::time::sleep(interval * (STALE_INTERVALS + 3)).await;
            control.set_responding(true);
            tokio::time::sleep(Duration::from_millis(300)).await;
            control.disconnect();
            tokio::time::sleep(Duration::from_millis(300)).await;
        };
        let mut out = Vec::new();
        let code = watch_lines(Box::new(source), interval, shutdown, script, &mut out).await;
        assert_eq!(code, exit::OK);
        let got: Vec<(serde_json::Value, serde_json::Value, bool)> = lines(&out)
            .into_iter()
            .map(|l| {
                assert!(l["ts_ms"].as_u64().unwrap() > 0);
                (
                    l["members"].clone(),
                    l["connected"].clone(),
                    l["responding"].as_bool().unwrap(),
                )
            })
            .collect();
        let (yes, no) = (serde_json::json!(true), serde_json::json!(false));
        assert_eq!(
            got,
            vec![
                (serde_json::json!([1, 2, 3]), yes.clone(), true),
                (serde_json::json!([1, 2]), yes.clone(), true),
                (serde_json::json!([1, 2]), yes.clone(), false),
                (serde_json::json!([1, 2]), yes, true),
                (serde_json::json!([]), no, true),
            ]
        );
    }

    #[tokio::test]
    async fn watch_fails_when_corosync_is_unreachable() {
        let (m, _c) = Manual::new(three());
        let (_stop, shutdown) = watch::channel(false);
        let mut out = Vec::new();
        let code = watch_lines(
            Box::new(m.unreachable()),
            Duration::from_millis(100),
            shutdown,
            std::future::pending(),
            &mut out,
        )
        .await;
        assert_eq!(code, exit::ERROR);
        assert!(out.is_empty());
    }

    #[tokio::test]
    async fn without_the_feature_quorum_says_how_to_rebuild() {
        if quorum::corosync_available() {
            return; // covered by tests/quorum_corosync.rs
        }
        let t = T::try_parse_from(["q", "status"]).unwrap();
        assert_eq!(run(&t.a, OutputFormat::Text).await, exit::ERROR);
    }
}
