//! Printing replies for people (text) or scripts (json), and choosing the
//! exit code that goes with each.

use super::{error_code, outcome_code, OutputFormat};
use crate::api::client::ClientError;
use crate::api::protocol::Reply;
use crate::config::{Config, ConfigError};
use crate::exit;
use crate::fencer::{HistoryRecord, RequestSummary};
use std::path::Path;

pub struct Printer {
    format: OutputFormat,
}

/// `2026-11-24 10:00:00.123Z` from epoch milliseconds.
pub fn when(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_millis(t)
        .to_string()
        .replace('T', " ")
}

pub fn summary_line(s: &RequestSummary) -> String {
    let action = s
        .action
        .map(|a| a.to_string())
        .unwrap_or_else(|| "?".into());
    let took = match s.finished_ms {
        Some(f) => format!(
            " in {:.1} s",
            f.saturating_sub(s.requested_ms) as f64 / 1000.0
        ),
        None => String::new(),
    };
    let level = s.level.map(|l| format!(" level {l}")).unwrap_or_default();
    format!(
        "#{:<4} {}  {:<8} {:<14} {:<11}{}{}  origin={}  {}",
        s.request,
        when(s.requested_ms),
        action,
        s.target,
        s.state,
        level,
        took,
        s.origin,
        s.detail
    )
}

pub fn record_line(r: &HistoryRecord) -> String {
    let json = serde_json::to_value(&r.event).unwrap_or_default();
    let mut fields: Vec<String> = Vec::new();
    let mut event = String::new();
    if let serde_json::Value::Object(map) = json {
        for (k, v) in map {
            if k == "event" {
                event = v.as_str().unwrap_or("").to_string();
                continue;
            }
            if v.is_null() {
                continue;
            }
            let v = match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            fields.push(format!("{k}={v}"));
        }
    }
    format!(
        "  {} #{} {} {:<13} {}",
        when(r.ts_ms),
        r.request,
        r.target,
        event,
        fields.join(" ")
    )
}

impl Printer {
    pub fn new(format: OutputFormat) -> Self {
        Printer { format }
    }

    fn json(&self, v: &impl serde::Serialize) {
        match serde_json::to_string_pretty(v) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("ironfence: cannot print JSON: {e}"),
        }
    }

    pub fn error(&self, e: &ClientError) -> u8 {
        if self.format == OutputFormat::Json {
            let kind = e.kind().map(|k| format!("{k:?}").to_lowercase());
            self.json(&serde_json::json!({"error": {"kind": kind, "message": e.to_string()}}));
        }
        eprintln!("ironfence: {e}");
        error_code(e)
    }

    pub fn config_check(&self, path: &Path, r: Result<Config, ConfigError>) -> u8 {
        match r {
            Ok(c) => {
                if self.format == OutputFormat::Json {
                    self.json(&serde_json::json!({"ok": true, "path": path, "nodes": c.nodes.len(), "devices": c.devices.len(), "levels": c.levels.len()}));
                } else {
                    println!(
                        "{}: OK ({} nodes, {} devices, {} levels)",
                        path.display(),
                        c.nodes.len(),
                        c.devices.len(),
                        c.levels.len()
                    );
                }
                exit::OK
            }
            Err(ConfigError::Invalid {
                source_name,
                problems,
            }) => {
                if self.format == OutputFormat::Json {
                    self.json(&serde_json::json!({"ok": false, "path": source_name, "problems": problems}));
                } else {
                    eprintln!("{source_name}: {} problem(s):", problems.len());
                    for p in &problems {
                        eprintln!("  {}: {}\n      fix: {}", p.key, p.message, p.fix);
                    }
                }
                exit::ERROR
            }
            Err(e) => {
                if self.format == OutputFormat::Json {
                    self.json(&serde_json::json!({"ok": false, "path": path, "problems": [{"key": "(file)", "message": e.to_string(), "fix": "pass --config PATH"}]}));
                }
                eprintln!("ironfence: {e}");
                exit::ERROR
            }
        }
    }

    pub fn reply(&self, r: &Reply) -> u8 {
        let code = match r {
            Reply::Fence { outcome } => outcome_code(outcome.result),
            Reply::Validate { results } if results.iter().any(|v| !v.ok) => exit::ERROR,
            _ => exit::OK,
        };
        if self.format == OutputFormat::Json {
            self.json(r);
            return code;
        }
        match r {
            Reply::Pong { version } => println!("ironfenced {version}"),
            Reply::NodeStatus { status } => print!("{}", status.text()),
            Reply::Fence { outcome: o } => {
                let line = format!(
                    "{} {}: {:?} (request #{}, {:.1} s): {}",
                    o.action,
                    o.target,
                    o.result,
                    o.request,
                    o.elapsed_ms as f64 / 1000.0,
                    o.message
                );
                if o.result.ok() {
                    println!("{line}");
                } else {
                    eprintln!("{line}");
                }
                if let Some(w) = &o.warning {
                    eprintln!("warning: {w}");
                }
            }
            Reply::Status { target, devices } => {
                if devices.is_empty() {
                    println!("{target}: no device can fence it");
                }
                for d in devices {
                    match (&d.state, &d.error) {
                        (Some(s), _) => {
                            println!("{target}: {s} (device {} plug {})", d.device, d.plug)
                        }
                        (None, Some(e)) => println!("{target}: unknown (device {}: {e})", d.device),
                        _ => println!("{target}: unknown (device {})", d.device),
                    }
                }
            }
            Reply::Query { target, devices } => {
                println!("{} device(s) can fence {target}", devices.len());
                for d in devices {
                    println!("  {d}");
                }
            }
            Reply::Devices { devices } => {
                for d in devices {
                    println!(
                        "{:<20} kind={:<6} {}host_check={} hosts={} action_limit={}",
                        d.name,
                        d.kind,
                        d.agent
                            .as_ref()
                            .map(|a| format!("agent={a} "))
                            .unwrap_or_default(),
                        d.host_check,
                        d.hosts.join(","),
                        d.action_limit
                    );
                }
            }
            Reply::Agents { agents } => {
                for a in agents {
                    println!("{a}");
                }
            }
            Reply::Metadata { xml, .. } => print!("{xml}"),
            Reply::Targets { targets, .. } => {
                for t in targets {
                    println!("{t}");
                }
            }
            Reply::Monitor { device } => println!("{device}: OK"),
            Reply::Validate { results } => {
                for v in results {
                    match &v.error {
                        None => println!("{}: OK", v.device),
                        Some(e) => println!("{}: FAILED: {e}", v.device),
                    }
                }
            }
            Reply::History { requests, records } => {
                if requests.is_empty() {
                    println!("no fencing history");
                }
                for s in requests {
                    println!("{}", summary_line(s));
                    for rec in records.iter().filter(|x| x.request == s.request) {
                        println!("{}", record_line(rec));
                    }
                }
            }
            Reply::Last { target, last } => match last {
                Some(s) => println!("{}", summary_line(s)),
                None => println!("{target} was never fenced"),
            },
            Reply::Done { message } => println!("{message}"),
            Reply::ClusterStatus { status } => print!("{}", status.text()),
            Reply::Resources { status } => print!("{}", status.text()),
        }
        code
    }
}
