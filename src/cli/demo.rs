//! `ironfence demo`: a 3-controller cluster run by a real `ironfenced`
//! (in-process, on a socket in a temp dir). Level 1 is each controller's
//! BMC, reached from our own clients to our simulated BMCs on 127.0.0.1:
//! IPMI v2.0 (RMCP+) for controllers 1-2, Redfish over HTTPS for 3; level 2
//! is a simulated rack PDU.
//! controller-1 stops answering and its BMC goes silent with it; the fence
//! request goes through the API socket, level 1 times out, level 2 powers
//! the outlet off, verifies, powers it on; the timeline and the history are
//! printed. No root, nothing installed, traffic only on loopback.

use super::output::{record_line, summary_line};
use super::OutputFormat;
use crate::api::client;
use crate::api::protocol::{Reply, Request};
use crate::config::Config;
use crate::exit;
use crate::fencer::history::Event;
use crate::fencer::{FenceAction, HistoryRecord};
use crate::ipmi::Privilege;
use crate::node::Daemon;
use crate::power::sim::{bmc_for, SimDevice};
use crate::power::PowerDevice;
use crate::sim::ipmi::{IpmiFault, IpmiSimConfig, IpmiSimServer, SimUser};
use crate::sim::redfish::{RedfishSimConfig, RedfishSimServer, RedfishUser, Vendor};
use crate::sim::SimBmc;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

const CONFIG: &str = r#"
[daemon]
socket = "@DIR@/ironfenced.sock"
state_dir = "@DIR@/state"
fencing_timeout = "20s"
verify_interval = "100ms"

[[node]]
name = "controller-1"
id = 1
attributes = { rack = "r1", role = "openstack-controller" }
[[node]]
name = "controller-2"
id = 2
attributes = { rack = "r1", role = "openstack-controller" }
[[node]]
name = "controller-3"
id = 3
attributes = { rack = "r1", role = "openstack-controller" }

# Level 1: each controller's own BMC, over IPMI (RMCP+) to simulated BMCs
# on 127.0.0.1. controller-1's is silent (its management network is down
# together with the node).
[[device]]
name = "bmc-controller-1"
kind = "ipmi"
address = "127.0.0.1"
username = "admin"
password = "demo-secret"
host_list = ["controller-1"]
delay_base = "100ms"
delay_max = "400ms"
timeouts = { off = "1s", on = "1s" }
retries = { off = 1 }
ipmi = { port = @PORT1@, retransmit = "100ms" }

[[device]]
name = "bmc-controller-2"
kind = "ipmi"
address = "127.0.0.1"
username = "admin"
password = "demo-secret"
host_list = ["controller-2"]
timeouts = { off = "1s", on = "1s" }
ipmi = { port = @PORT2@, retransmit = "100ms" }

# controller-3 is a newer server: its BMC speaks Redfish (HTTPS, certificate pinned).
[[device]]
name = "bmc-controller-3"
kind = "redfish"
address = "127.0.0.1"
username = "admin"
password = "demo-secret"
host_list = ["controller-3"]
timeouts = { off = "2s", on = "2s" }
redfish = { port = @RFPORT@, fingerprint = "@RFPIN@" }

# Level 2: SBD poison pill on a shared disk (here a file), for when a BMC is
# unreachable; msgwait 2 s (the victim's watchdog fires within 1 s).
[[device]]
name = "sbd-disk"
kind = "sbd"
host_list = ["controller-1", "controller-2", "controller-3"]
timeouts = { off = "8s", on = "4s" }
retries = { off = 0, on = 0 }
sbd = { devices = ["@DIR@/sbd-disk.img"], sector_size = 512, io_timeout = "1s", from = "controller-2" }

# Level 3: the switched PDU of rack r1, one outlet per controller.
[[device]]
name = "pdu-rack1"
kind = "sim"
host_map = { controller-1 = "outlet-1", controller-2 = "outlet-2", controller-3 = "outlet-3" }
timeouts = { off = "2s", on = "2s" }
sim = { fault = "slow", slow_by = "150ms" }

[[level]]
index = 1
target = "controller-1"
devices = ["bmc-controller-1"]

[[level]]
index = 1
target = "controller-2"
devices = ["bmc-controller-2"]

[[level]]
index = 1
target = "controller-3"
devices = ["bmc-controller-3"]

[[level]]
index = 2
target_attribute = "rack=r1"
devices = ["sbd-disk"]

[[level]]
index = 3
target_attribute = "rack=r1"
devices = ["pdu-rack1"]
"#;

fn describe(r: &HistoryRecord) -> String {
    match &r.event {
        Event::Requested { action, origin, .. } => format!(
            "request #{}: {action} {} (origin {origin})",
            r.request, r.target
        ),
        Event::Delay { device, ms, reason } => format!(
            "wait {ms} ms{}: {reason}",
            device
                .as_ref()
                .map(|d| format!(" for {d}"))
                .unwrap_or_default()
        ),
        Event::Level { level, devices, .. } => format!("level {level}: {}", devices.join(", ")),
        Event::Attempt {
            device,
            plug,
            step,
            attempt,
            of,
            ..
        } => format!("  {device}: power {step} {plug} (attempt {attempt}/{of})"),
        Event::AttemptDone {
            device,
            step,
            ok,
            ms,
            error,
            ..
        } => {
            if *ok {
                format!("  {device}: power {step} read back as {step} after {ms} ms  [verified]")
            } else {
                format!(
                    "  {device}: power {step} FAILED after {ms} ms: {}",
                    error.as_deref().unwrap_or("?")
                )
            }
        }
        Event::LevelFailed { level, reason } => {
            format!("level {level} failed ({reason}); next level")
        }
        Event::Succeeded { how, ms, level, .. } => format!(
            "FENCED {} by level {} in {ms} ms: {how}",
            r.target,
            level.map(|l| l.to_string()).unwrap_or_else(|| "-".into())
        ),
        Event::Failed { reason, .. } => format!("FAILED: {reason}"),
        Event::Refused { reason, .. } => format!("REFUSED: {reason}"),
        Event::Confirmed { by } => format!("confirmed by {by}"),
        Event::Tolerated { reason, .. } => format!("TOLERATED: {reason}"),
        Event::Interrupted { reason } => format!("INTERRUPTED: {reason}"),
        Event::Remote {
            result,
            by,
            message,
            ..
        } => format!("{result} by cluster member {by}: {message}"),
    }
}

/// A 512-byte-sector sbd disk in a file: watchdog 1 s, msgwait 2 s, a slot
/// for each controller.
async fn make_sbd_disk(path: &std::path::Path) -> Result<(), String> {
    use crate::sbd::{disk::Disk, format};
    let f = std::fs::File::create(path).map_err(|e| e.to_string())?;
    f.set_len(format::SECTORS_USED * 512)
        .map_err(|e| e.to_string())?;
    drop(f);
    let dev = crate::sbd::io::open(path, Some(512), std::time::Duration::from_secs(2))
        .await
        .map_err(|e| e.to_string())?;
    let disk = Disk::new(dev.as_ref());
    let timeouts = format::Timeouts {
        watchdog: 1,
        allocate: 0,
        loop_: 1,
        msgwait: 2,
    };
    disk.create(timeouts, rand::random())
        .await
        .map_err(|e| e.to_string())?;
    for n in 1..=3 {
        disk.allocate(&format!("controller-{n}"))
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// controller-1's mailbox on the SBD disk, as `sbd list` would show it.
async fn mailbox_of(path: &std::path::Path, node: &str) -> String {
    let Ok(dev) = crate::sbd::io::open(path, Some(512), std::time::Duration::from_secs(2)).await
    else {
        return "?".into();
    };
    let disk = crate::sbd::disk::Disk::new(dev.as_ref());
    match disk.list().await {
        Ok(entries) => entries
            .into_iter()
            .find(|e| e.name == node)
            .map(|e| format!("{} from {}", e.mailbox.cmd, e.mailbox.from))
            .unwrap_or_else(|| "?".into()),
        Err(e) => e.to_string(),
    }
}

pub async fn run(format: OutputFormat) -> u8 {
    let started = Instant::now();
    let dir = match tempfile::Builder::new().prefix("ironfence-demo-").tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("demo: cannot create a temp dir: {e}");
            return exit::ERROR;
        }
    };
    // Simulated BMCs on 127.0.0.1: RMCP+ for controllers 1-2, Redfish for 3.
    let mut bmcs = Vec::new();
    for i in 1..=2 {
        let listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        let mut cfg = IpmiSimConfig::new(
            listen,
            vec![SimUser::new(
                "admin",
                "demo-secret",
                Privilege::Administrator,
            )],
        );
        cfg.machine = format!("controller-{i}");
        if i == 1 {
            cfg.fault = IpmiFault::Silent;
        }
        match IpmiSimServer::start(cfg).await {
            Ok(s) => bmcs.push(s),
            Err(e) => {
                eprintln!("demo: cannot start a simulated BMC on 127.0.0.1: {e}");
                return exit::ERROR;
            }
        }
    }
    let rf_cfg = RedfishSimConfig::new(
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        vec![RedfishUser::new("admin", "demo-secret")],
    )
    .with_vendor(Vendor::Dell, 1);
    let redfish = match RedfishSimServer::start(rf_cfg).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("demo: cannot start the simulated Redfish BMC on 127.0.0.1: {e}");
            return exit::ERROR;
        }
    };
    // The shared SBD disk: a file, formatted as sbd would, one slot per controller.
    let disk_path = dir.path().join("sbd-disk.img");
    if let Err(e) = make_sbd_disk(&disk_path).await {
        eprintln!(
            "demo: cannot prepare the SBD disk {}: {e}",
            disk_path.display()
        );
        return exit::ERROR;
    }
    let mut text = CONFIG.replace("@DIR@", &dir.path().display().to_string());
    text = text
        .replace("@RFPORT@", &redfish.local_addr().port().to_string())
        .replace("@RFPIN@", redfish.cert_sha256_fingerprint().unwrap_or(""));
    for (i, b) in bmcs.iter().enumerate() {
        text = text.replace(
            &format!("@PORT{}@", i + 1),
            &b.local_addr().port().to_string(),
        );
    }
    let config = match Config::parse(&text, "demo config") {
        Ok(c) => c,
        Err(e) => {
            eprintln!("demo: {e}");
            return exit::ERROR;
        }
    };
    let mut sims: HashMap<String, Arc<SimBmc>> = HashMap::new();
    let mut overrides: HashMap<String, Arc<dyn PowerDevice>> = HashMap::new();
    for d in &config.devices {
        if let crate::config::DeviceKind::Sim(s) = &d.kind {
            let bmc = Arc::new(bmc_for(&d.name, s, &d.hosts));
            sims.insert(d.name.clone(), bmc.clone());
            overrides.insert(d.name.clone(), Arc::new(SimDevice::new(bmc)));
        }
    }
    let text_mode = format == OutputFormat::Text;
    if text_mode {
        println!("ironfence demo — 3 OpenStack controllers, simulated BMCs, one rack PDU");
        println!("  work dir: {}", dir.path().display());
        for (i, b) in bmcs.iter().enumerate() {
            println!(
                "  bmc-controller-{}: IPMI v2.0 (RMCP+) simulator on {}",
                i + 1,
                b.local_addr()
            );
        }
        println!(
            "  bmc-controller-3: Redfish (HTTPS, iDRAC-like) simulator on {}, certificate pinned",
            redfish.base_url()
        );
        println!(
            "  shared SBD disk: {} (file, 512-byte sectors, msgwait 2 s)",
            disk_path.display()
        );
        println!("  level 1: each controller's BMC   level 2: SBD poison pill   level 3: rack PDU");
        println!();
    }
    let daemon = match Daemon::start(&config, overrides).await {
        Ok(d) => d,
        Err(e) => {
            eprintln!("demo: cannot start ironfenced: {e}");
            return exit::ERROR;
        }
    };
    let mut events = daemon.fencer.subscribe();
    let t0 = Instant::now();
    let printer = tokio::spawn(async move {
        let mut lines = Vec::new();
        while let Ok(r) = events.recv().await {
            let line = format!("+{:>7.3}s  {}", t0.elapsed().as_secs_f64(), describe(&r));
            if text_mode {
                println!("{line}");
            }
            lines.push(line);
            if r.event.is_terminal() {
                break;
            }
        }
        lines
    });
    if text_mode {
        println!(
            "+  0.000s  controller-1 stops answering (corosync token lost); its BMC is silent too"
        );
    }
    let socket = config.daemon.socket.clone();
    let reply = client::call(
        &socket,
        &Request::Fence {
            target: "controller-1".into(),
            action: FenceAction::Reboot,
            delay_ms: 0,
            tolerance_ms: 0,
            timeout_ms: None,
            force: false,
        },
    )
    .await;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), printer).await;
    let outcome = match reply {
        Ok(Reply::Fence { outcome }) => outcome,
        Ok(other) => {
            eprintln!("demo: unexpected reply {other:?}");
            daemon.stop().await;
            return exit::ERROR;
        }
        Err(e) => {
            eprintln!("demo: {e}");
            daemon.stop().await;
            return exit::ERROR;
        }
    };
    // The healthy controllers' BMCs, read through the daemon: IPMI and Redfish.
    let mut survivors = Vec::new();
    for node in ["controller-2", "controller-3"] {
        if let Ok(Reply::Status { devices, .. }) = client::call(
            &socket,
            &Request::Status {
                target: node.into(),
            },
        )
        .await
        {
            for d in devices {
                survivors.push(format!(
                    "{node}: {} via {}",
                    d.state
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| d.error.unwrap_or_default()),
                    d.device
                ));
            }
        }
    }
    let history = client::call(
        &socket,
        &Request::History {
            target: None,
            verbose: true,
        },
    )
    .await;
    let pdu = sims.get("pdu-rack1");
    let power = |plug: &str| {
        pdu.and_then(|p| p.peek(plug).ok())
            .map(|s| format!("{s:?}").to_lowercase())
            .unwrap_or_else(|| "?".into())
    };
    let bmc1 = bmcs.first().map(|b| b.stats());
    for b in bmcs {
        b.shutdown().await;
    }
    redfish.shutdown().await;
    let counts = |name: &str| {
        sims.get(name)
            .map(|s| {
                (
                    s.counters.off.load(std::sync::atomic::Ordering::Relaxed),
                    s.counters.on.load(std::sync::atomic::Ordering::Relaxed),
                )
            })
            .unwrap_or((0, 0))
    };
    daemon.stop().await;
    let total = started.elapsed();
    match format {
        OutputFormat::Json => {
            let history = match &history {
                Ok(Reply::History { requests, records }) => {
                    serde_json::json!({"requests": requests, "records": records})
                }
                _ => serde_json::Value::Null,
            };
            let v = serde_json::json!({
                "outcome": outcome,
                "history": history,
                "pdu_outlet_1": power("outlet-1"),
                "wall_ms": total.as_millis() as u64,
            });
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        }
        OutputFormat::Text => {
            println!();
            println!("result: {:?}: {}", outcome.result, outcome.message);
            let (poff, _) = counts("pdu-rack1");
            println!(
                "devices: bmc-controller-1 received {} datagram(s) and answered none; controller-1's SBD mailbox holds: {}; pdu-rack1 got {poff} off command(s)",
                bmc1.map(|s| s.datagrams).unwrap_or(0),
                mailbox_of(&disk_path, "controller-1").await
            );
            println!(
                "survivors, read back through their BMCs: {}",
                survivors.join("; ")
            );
            println!();
            println!(
                "history (durable, {}):",
                dir.path().join("state/history.jsonl").display()
            );
            if let Ok(Reply::History { requests, records }) = &history {
                for s in requests {
                    println!("{}", summary_line(s));
                    for r in records.iter().filter(|r| r.request == s.request) {
                        println!("{}", record_line(r));
                    }
                }
            }
            println!();
            println!("demo finished in {:.2} s", total.as_secs_f64());
        }
    }
    if outcome.result.ok() {
        exit::OK
    } else {
        exit::ERROR
    }
}
