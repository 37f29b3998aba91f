//! `ironfence agent KIND ...` (and the `fence_ironfence_KIND` launchers):
//! a fence agent that follows the ClusterLabs API exactly. Options come
//! from argv or, with no arguments, stdin; the action is carried out on a
//! `PowerDevice` and verified by reading the power back; the exit code is
//! fence-agents'.

use crate::agent::metadata::AgentMetadata;
use crate::agent::options::{self, Options};
use crate::agent::{exit, spec, AgentAction};
use crate::config::SimFault;
use crate::config::{IpmiConfig, RedfishDeviceConfig, SbdDeviceConfig, Timeouts};
use crate::ipmi::commands::ChassisAction;
use crate::ipmi::{CipherChoice, Privilege};
use crate::power::ipmi::IpmiDevice;
use crate::power::redfish::RedfishDevice;
use crate::power::sbd::SbdDevice;
use crate::power::sim::SimDevice;
use crate::power::{verify, PowerDevice, PowerError, PowerState};
use crate::secret::{PasswordSource, Secret};
use crate::sim::SimBmc;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

/// Run agent `kind` with `args`; returns the fence-agents exit code.
pub fn run(kind: &str, args: &[String]) -> i32 {
    let Some(specs) = spec::params_for(kind) else {
        eprintln!(
            "Failed: unknown agent kind `{kind}`; kinds: {}",
            spec::KINDS.join(", ")
        );
        return exit::GENERIC_ERROR;
    };
    let parsed = if args.is_empty() {
        let mut text = String::new();
        if let Err(e) = std::io::stdin().read_to_string(&mut text) {
            eprintln!("Failed: cannot read options from stdin: {e}");
            return exit::GENERIC_ERROR;
        }
        options::parse_stdin(&specs, &text)
    } else {
        options::parse_args(&specs, args)
    };
    let opts = match parsed {
        Ok(o) => o,
        Err(e) => {
            eprintln!("Failed: {e}");
            return exit::GENERIC_ERROR;
        }
    };
    let name = format!("fence_ironfence_{kind}");
    if opts.flag("help") {
        print!("{}", usage(&name, &specs));
        return exit::OK;
    }
    if opts.flag("version") {
        println!("{name} {}", env!("CARGO_PKG_VERSION"));
        return exit::OK;
    }
    let action_text = opts.get("action").unwrap_or("reboot");
    let Some(action) = AgentAction::parse(action_text) else {
        eprintln!("Failed: unknown action `{action_text}`; use on, off, reboot, status, list, list-status, monitor, metadata, validate-all or manpage");
        return exit::GENERIC_ERROR;
    };
    let Some(md) = crate::api::server::our_metadata(kind) else {
        return exit::GENERIC_ERROR;
    };
    match action {
        AgentAction::Metadata => {
            print!("{}", md.to_xml());
            return exit::OK;
        }
        AgentAction::Manpage => {
            print!("{}", manpage(&md));
            return exit::OK;
        }
        _ => {}
    }
    let needs_plug = (kind == "sim" || kind == "sbd")
        && matches!(
            action,
            AgentAction::On | AgentAction::Off | AgentAction::Reboot | AgentAction::Status
        );
    if needs_plug && opts.get("plug").is_none_or(str::is_empty) {
        eprintln!(
            "Failed: You have to enter plug number or machine identification (-n/--plug or plug=)"
        );
        return exit::GENERIC_ERROR;
    }
    if kind == "sbd" {
        return run_sbd(action, &opts);
    }
    let mut ipmi = None;
    let mut redfish = None;
    let device: Arc<dyn PowerDevice> = match kind {
        "sim" => sim_device(&opts),
        "redfish" => match redfish_device(&opts) {
            Ok(d) => {
                let d = Arc::new(d);
                redfish = Some(d.clone());
                d
            }
            Err(why) => {
                eprintln!("Failed: {why}");
                return exit::GENERIC_ERROR;
            }
        },
        "ipmi" => match ipmi_device(&opts) {
            Ok(d) => {
                let d = Arc::new(d);
                ipmi = Some(d.clone());
                d
            }
            Err(why) => {
                eprintln!("Failed: {why}");
                return exit::GENERIC_ERROR;
            }
        },
        _ => return exit::GENERIC_ERROR,
    };
    if action == AgentAction::ValidateAll {
        return exit::OK;
    }
    if action == AgentAction::Diag {
        if let Some(rf) = &redfish {
            let Some(rt) = runtime() else {
                return exit::GENERIC_ERROR;
            };
            return match rt.block_on(rf.nmi(opts.get("plug").unwrap_or(""))) {
                Ok(()) => {
                    println!("Success: Diagnostic interrupt sent");
                    exit::OK
                }
                Err(e) => {
                    eprintln!("Failed: {e}");
                    code_for(&e)
                }
            };
        }
        let Some(ipmi) = &ipmi else {
            eprintln!("Failed: the diag action is only for IPMI and Redfish");
            return exit::GENERIC_ERROR;
        };
        let Some(rt) = runtime() else {
            return exit::GENERIC_ERROR;
        };
        let op = Duration::from_secs_f64(
            opts.seconds("login_timeout", 5.0) + opts.seconds("shell_timeout", 3.0),
        );
        return match rt.block_on(ipmi.chassis(ChassisAction::Diag, op)) {
            Ok(()) => {
                println!("Success: Diagnostic interrupt sent");
                exit::OK
            }
            Err(e) => {
                eprintln!("Failed: {e}");
                code_for(&e)
            }
        };
    }
    if let (Some(ipmi), AgentAction::Reboot, Some("cycle")) = (&ipmi, action, opts.get("method")) {
        let Some(rt) = runtime() else {
            return exit::GENERIC_ERROR;
        };
        return rt.block_on(cycle(ipmi, &opts));
    }
    let Some(rt) = runtime() else {
        return exit::GENERIC_ERROR;
    };
    rt.block_on(act(device.as_ref(), action, &opts))
}

/// A one-shot runtime for the agent; `None` (after saying why) if it
/// cannot be had.
fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) => {
            eprintln!("Failed: cannot start the runtime: {e}");
            None
        }
    }
}

/// The IPMI device fence_ipmilan's options describe.
fn ipmi_device(opts: &Options) -> Result<IpmiDevice, String> {
    if opts.get("target").is_some_and(|t| !t.is_empty()) {
        return Err("IPMI bridging (target) is not supported".into());
    }
    if opts.get("lanplus").is_some() && !opts.flag("lanplus") {
        eprintln!("warning: lanplus=0 (IPMI v1.5) is not supported; using IPMI v2.0 (RMCP+)");
    }
    if opts.get("auth").is_some() {
        eprintln!("warning: auth applies to IPMI v1.5 only and is ignored");
    }
    let address = if opts.flag("port_as_ip") {
        opts.get("plug").filter(|p| !p.is_empty())
    } else {
        opts.get("ip").filter(|p| !p.is_empty())
    }
    .ok_or("no BMC address: give -a/--ip (or --port-as-ip with -n/--plug)")?
    .to_string();
    let port = match opts.get("ipport") {
        None => 623,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("ipport `{p}` is not a UDP port"))?,
    };
    let allow_insecure = opts.flag("allow_insecure");
    let cipher = match opts.get("cipher").map(str::trim) {
        None | Some("") => CipherChoice::Auto,
        Some(c) => {
            let suite = c
                .parse::<u8>()
                .ok()
                .and_then(crate::ipmi::crypto::CipherSuite::by_id)
                .ok_or_else(|| {
                    format!("cipher `{c}` is not a supported suite (1, 2, 3, 15, 16, 17)")
                })?;
            CipherChoice::Suite(suite.id)
        }
    };
    let privilege = match opts.get("privlvl").unwrap_or("administrator") {
        "callback" => return Err("privlvl callback cannot control chassis power".into()),
        other => Privilege::parse(other).ok_or_else(|| format!("unknown privlvl `{other}`"))?,
    };
    let kg = match opts.get("hexadecimal_kg") {
        None | Some("") => None,
        Some(h) => match crate::secret::decode_hex(h) {
            Some(b) if b.len() <= 20 => Some(Secret::new(h)),
            _ => return Err("hexadecimal_kg is not a hex key of at most 20 bytes".into()),
        },
    };
    let password = if let Some(p) = opts.get("password") {
        PasswordSource::Inline(Secret::new(p))
    } else if let Some(s) = opts.get("password_script") {
        PasswordSource::Script(s.to_string())
    } else {
        return Err("no password: give -p/--password or -S/--password-script".into());
    };
    let op = Duration::from_secs_f64(
        (opts.seconds("login_timeout", 5.0) + opts.seconds("shell_timeout", 3.0)).max(0.5),
    );
    let timeouts = Timeouts {
        off: op,
        on: op,
        status: op,
        list: op,
        monitor: op,
    };
    Ok(IpmiDevice::from_parts(
        "fence_ironfence_ipmi",
        IpmiConfig {
            address,
            port,
            cipher,
            privilege,
            kg,
            allow_insecure,
            retransmit: Duration::from_millis(250),
            login_timeout: Duration::from_secs_f64(opts.seconds("login_timeout", 5.0).max(0.5)),
        },
        opts.get("username").unwrap_or(""),
        password,
        timeouts,
    ))
}

/// `method=cycle`: one Chassis Control power cycle (or power on, if the
/// machine is already off — which fence_ipmilan gets wrong), and success
/// only when the off was observed: the machine read back as off before the
/// command (already off), or during the cycle, and then as on. A BMC that
/// cycles too fast to ever read back off fails with a clear error: use
/// method=onoff there.
async fn cycle(dev: &IpmiDevice, opts: &Options) -> i32 {
    let op = Duration::from_secs_f64(
        opts.seconds("login_timeout", 5.0) + opts.seconds("shell_timeout", 3.0),
    );
    let power_timeout = Duration::from_secs_f64(opts.seconds("power_timeout", 20.0));
    tokio::time::sleep(Duration::from_secs_f64(opts.seconds("delay", 0.0))).await;
    let fail = |e: PowerError| {
        eprintln!("Failed: {e}");
        code_for(&e)
    };
    let read = || async {
        match tokio::time::timeout(op, dev.status("")).await {
            Err(_) => Err(PowerError::Timeout {
                device: dev.name().into(),
                what: "status".into(),
                after: op,
            }),
            Ok(r) => r,
        }
    };
    let mut seen_off = match read().await {
        Err(e) => return fail(e),
        Ok(s) => s == PowerState::Off,
    };
    let action = if seen_off {
        ChassisAction::PowerOn
    } else {
        ChassisAction::PowerCycle
    };
    if let Err(e) = dev.chassis(action, op).await {
        return fail(e);
    }
    let deadline = tokio::time::Instant::now() + power_timeout + op;
    loop {
        match read().await {
            Ok(PowerState::Off) => seen_off = true,
            Ok(PowerState::On) if seen_off => break,
            _ => {}
        }
        if tokio::time::Instant::now() >= deadline {
            if seen_off {
                eprintln!("Failed: Timed out waiting to power ON after the power cycle (the machine was read back off)");
                // Observed off: fenced, as fence-agents' reboot reports too.
                println!("Success: Rebooted");
                return exit::OK;
            }
            eprintln!("Failed: the BMC accepted a {} but the machine was never read back off: not fenced (use method=onoff for this BMC)", action.name());
            return exit::WAITING_OFF;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("Success: Rebooted");
    exit::OK
}

/// The Redfish device fence_redfish's options describe.
fn redfish_device(opts: &Options) -> Result<RedfishDevice, String> {
    use crate::redfish::client::{AuthMode, SystemSelector};
    use crate::redfish::tls::{parse_fingerprint, TlsMode};
    let address = if opts.flag("port_as_ip") {
        opts.get("plug").filter(|p| !p.is_empty())
    } else {
        opts.get("ip").filter(|p| !p.is_empty())
    }
    .ok_or("no BMC address: give -a/--ip (or --port-as-ip with -n/--plug)")?
    .to_string();
    let https = opts.get("ssl").is_none_or(|_| opts.flag("ssl"))
        || opts.flag("ssl_insecure")
        || opts.flag("ssl_secure");
    let port = match opts.get("ipport") {
        None => {
            if https {
                443
            } else {
                80
            }
        }
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("ipport `{p}` is not a TCP port"))?,
    };
    let tls = if !https {
        TlsMode::PlainHttp
    } else if opts.flag("ssl_insecure") {
        TlsMode::Insecure
    } else if let Some(f) = opts.get("ssl_fingerprint").filter(|f| !f.is_empty()) {
        TlsMode::Pinned(
            parse_fingerprint(f)
                .ok_or("ssl_fingerprint is not a SHA-256 fingerprint (32 hex bytes)")?,
        )
    } else {
        TlsMode::Verify {
            ca_file: opts
                .get("ssl_ca_file")
                .filter(|f| !f.is_empty())
                .map(Into::into),
        }
    };
    // A one-shot agent with a known system: a session would cost a login and
    // a logout around two or three requests, so `auto` means basic auth here
    // (as fence_redfish always does); the daemon prefers sessions.
    let explicit_system = opts.get("systems_uri").is_some_and(|u| !u.is_empty());
    let auth = match opts.get("auth").unwrap_or("auto") {
        "session" => AuthMode::Session,
        "basic" => AuthMode::Basic,
        _ if explicit_system => AuthMode::Basic,
        _ => AuthMode::Auto,
    };
    let password = if let Some(p) = opts.get("password") {
        PasswordSource::Inline(Secret::new(p))
    } else if let Some(s) = opts.get("password_script") {
        PasswordSource::Script(s.to_string())
    } else {
        return Err("no password: give -p/--password or -S/--password-script".into());
    };
    let username = opts
        .get("username")
        .filter(|u| !u.is_empty())
        .ok_or("no user name: give -l/--username")?;
    let op = Duration::from_secs_f64(
        (opts.seconds("login_timeout", 5.0) + opts.seconds("shell_timeout", 3.0)).max(0.5),
    );
    let timeouts = Timeouts {
        off: op,
        on: op,
        status: op,
        list: op,
        monitor: op,
    };
    let cfg = RedfishDeviceConfig {
        address,
        port,
        tls,
        system: SystemSelector::parse(opts.get("systems_uri").unwrap_or("")),
        auth,
        root: opts.get("redfish_uri").unwrap_or("/redfish/v1").to_string(),
        request_timeout: op,
        profile: opts
            .get("profile")
            .filter(|p| !p.is_empty() && *p != "auto")
            .map(str::to_string),
    };
    Ok(RedfishDevice::from_parts(
        "fence_ironfence_redfish",
        cfg,
        username,
        password,
        timeouts,
        Default::default(),
    )
    .one_shot())
}

/// The sbd device fence_sbd's options describe: `devices` (comma list),
/// else `SBD_DEVICE` from the environment (`;` list, as sbd's config file
/// writes it). One disk access may take `shell_timeout` (default 3 s, sbd's
/// I/O timeout); the sender is this host's name, as with `sbd message`.
fn sbd_device(opts: &Options) -> Result<SbdDevice, String> {
    let devices: Vec<std::path::PathBuf> =
        match opts.get("devices").filter(|d| !d.trim().is_empty()) {
            Some(d) => d
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(Into::into)
                .collect(),
            None => std::env::var("SBD_DEVICE")
                .unwrap_or_default()
                .split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(Into::into)
                .collect(),
        };
    if devices.is_empty() {
        return Err("No SBD devices specified: give devices=/dev/a,/dev/b (--devices), or set SBD_DEVICE. At least one SBD device is required.".into());
    }
    let mut seen = std::collections::HashSet::new();
    for d in &devices {
        if !seen.insert(std::fs::canonicalize(d).unwrap_or_else(|_| d.clone())) {
            return Err(format!(
                "{} is listed twice (it would count twice toward the majority)",
                d.display()
            ));
        }
    }
    if devices.len() > 3 {
        return Err(format!(
            "{} SBD devices given; sbd uses 1 to 3",
            devices.len()
        ));
    }
    let sector_size = match opts.get("sector_size").map(str::trim) {
        None | Some("") => None,
        Some("512") => Some(512),
        Some("4096") => Some(4096),
        Some(o) => return Err(format!("sector_size `{o}` is not 512 or 4096")),
    };
    let from = crate::sbd::servant::local_name()
        .map_err(|e| format!("cannot read this host's name (the sender of the message): {e}"))?;
    Ok(SbdDevice::from_parts(
        "fence_ironfence_sbd",
        &SbdDeviceConfig {
            devices,
            sector_size,
            io_timeout: Duration::from_secs_f64(opts.seconds("shell_timeout", 3.0).max(0.1)),
            crashdump: opts.flag("crashdump"),
            from,
        },
    ))
}

fn run_sbd(action: AgentAction, opts: &Options) -> i32 {
    let dev = match sbd_device(opts) {
        Ok(d) => d,
        Err(why) => {
            eprintln!("Failed: {why}");
            return exit::GENERIC_ERROR;
        }
    };
    let Some(rt) = runtime() else {
        return exit::GENERIC_ERROR;
    };
    let code = rt.block_on(sbd_act(&dev, action, opts));
    // A disk access stuck in the kernel must not keep the agent alive.
    rt.shutdown_background();
    code
}

/// Read the state back until it is `want`, within `limit`.
async fn read_back(
    dev: &dyn PowerDevice,
    plug: &str,
    want: PowerState,
    limit: Duration,
    interval: Duration,
) -> Result<(), PowerError> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut last = None;
    let mut last_err = None;
    loop {
        match tokio::time::timeout_at(deadline, dev.status(plug)).await {
            Ok(Ok(s)) if s == want => return Ok(()),
            Ok(Ok(s)) => last = Some(s),
            Ok(Err(e)) => last_err = Some(e),
            Err(_) => break,
        }
        if tokio::time::Instant::now() + interval >= deadline {
            break;
        }
        tokio::time::sleep(interval).await;
    }
    Err(match (last, last_err) {
        (Some(last), _) => PowerError::NotObserved {
            device: dev.name().to_string(),
            plug: plug.to_string(),
            want,
            last,
            after: limit,
        },
        (None, Some(e)) => e,
        (None, None) => PowerError::Timeout {
            device: dev.name().to_string(),
            what: format!("reading back the mailbox of {plug}"),
            after: limit,
        },
    })
}

/// fence_sbd's actions. A pill (off, reboot) returns after msgwait, then
/// the mailbox is read back within power_timeout; every error exits 1.
async fn sbd_act(dev: &SbdDevice, action: AgentAction, opts: &Options) -> i32 {
    let plug = opts.get("plug").unwrap_or("");
    let power_timeout = Duration::from_secs_f64(opts.seconds("power_timeout", 30.0).max(0.1));
    let interval = Duration::from_secs_f64(opts.seconds("stonith_status_sleep", 1.0).max(0.05));
    let power_wait = Duration::from_secs_f64(opts.seconds("power_wait", 0.0));
    let delay = Duration::from_secs_f64(opts.seconds("delay", 0.0));
    let fail = |e: PowerError| {
        eprintln!("Failed: {e}");
        exit::GENERIC_ERROR
    };
    if matches!(action, AgentAction::Off | AgentAction::Reboot) && !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let off = || async {
        dev.off(plug).await?;
        read_back(dev, plug, PowerState::Off, power_timeout, interval).await
    };
    let on = || async {
        let tries = opts
            .get("retry_on")
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(1)
            .max(1);
        let mut last = None;
        for _ in 0..tries {
            let r = async {
                dev.on(plug).await?;
                read_back(dev, plug, PowerState::On, power_timeout, interval).await
            }
            .await;
            match r {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| PowerError::Unsupported {
            device: dev.name().to_string(),
            what: "on".into(),
        }))
    };
    let waited = |r: Result<(), PowerError>| async {
        if r.is_ok() && !power_wait.is_zero() {
            tokio::time::sleep(power_wait).await;
        }
        r
    };
    match action {
        AgentAction::Off => match waited(off().await).await {
            Ok(()) => {
                println!("Success: Powered OFF");
                exit::OK
            }
            Err(e) => fail(e),
        },
        AgentAction::On => match waited(on().await).await {
            Ok(()) => {
                println!("Success: Powered ON");
                exit::OK
            }
            Err(e) => fail(e),
        },
        AgentAction::Reboot if opts.get("method") == Some("onoff") => {
            if let Err(e) = waited(off().await).await {
                return fail(e);
            }
            if let Err(e) = waited(on().await).await {
                // The pill was delivered and msgwait elapsed: fenced.
                eprintln!("Timed out waiting to power ON ({e}); the node was fenced");
            }
            println!("Success: Rebooted");
            exit::OK
        }
        AgentAction::Reboot => {
            let r = async {
                dev.reboot(plug).await?;
                read_back(dev, plug, PowerState::Off, power_timeout, interval).await
            }
            .await;
            match waited(r).await {
                Ok(()) => {
                    println!("Success: Rebooted");
                    exit::OK
                }
                Err(e) => fail(e),
            }
        }
        AgentAction::Status => match dev.status(plug).await {
            Ok(PowerState::On) => {
                println!("Status: ON");
                exit::STATUS_ON
            }
            Ok(PowerState::Off) => {
                println!("Status: OFF");
                exit::STATUS_OFF
            }
            Ok(PowerState::Unknown) => {
                eprintln!("Failed: the mailboxes of {plug} disagree (no majority for a message or for none)");
                exit::GENERIC_ERROR
            }
            Err(e) => fail(e),
        },
        AgentAction::List | AgentAction::ListStatus => match dev.list().await {
            Err(e) => fail(e),
            Ok(names) => {
                let sep = opts.get("separator").unwrap_or(",");
                for n in names {
                    if action == AgentAction::ListStatus {
                        let s = match dev.status(&n).await {
                            Ok(PowerState::On) => "ON",
                            Ok(PowerState::Off) => "OFF",
                            _ => "UNKNOWN",
                        };
                        println!("{n}{sep}{sep}{s}");
                    } else {
                        println!("{n}{sep}{n}");
                    }
                }
                exit::OK
            }
        },
        AgentAction::Monitor | AgentAction::ValidateAll => match dev.monitor().await {
            Ok(()) => exit::OK,
            Err(e) => fail(e),
        },
        AgentAction::Metadata | AgentAction::Manpage => exit::OK,
        AgentAction::Diag => {
            eprintln!("Failed: the diag action is only for IPMI and Redfish");
            exit::GENERIC_ERROR
        }
    }
}

fn sim_device(opts: &Options) -> Arc<dyn PowerDevice> {
    let fault = opts
        .get("fault")
        .and_then(SimFault::parse)
        .unwrap_or(SimFault::None);
    let plugs = opts
        .get("hosts")
        .map(|h| {
            h.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let state = opts.get("state_file").unwrap_or("/tmp/ironfence-sim.json");
    Arc::new(SimDevice::new(Arc::new(SimBmc::new(
        "fence_ironfence_sim",
        fault,
        Duration::from_secs_f64(opts.seconds("slow_by", 2.0)),
        true,
        plugs,
        Some(state.into()),
    ))))
}

fn code_for(e: &PowerError) -> i32 {
    match e {
        PowerError::Auth { .. } | PowerError::Credentials { .. } => exit::LOGIN_DENIED,
        PowerError::Connect { .. } => exit::CONNECTION_LOST,
        PowerError::Timeout { .. } => exit::TIMED_OUT,
        PowerError::NotObserved {
            want: PowerState::On,
            ..
        } => exit::WAITING_ON,
        PowerError::NotObserved { .. } => exit::WAITING_OFF,
        _ => exit::GENERIC_ERROR,
    }
}

async fn act(dev: &dyn PowerDevice, action: AgentAction, opts: &Options) -> i32 {
    let plug = opts.get("plug").unwrap_or("");
    let login = Duration::from_secs_f64(
        opts.seconds("login_timeout", 5.0) + opts.seconds("shell_timeout", 3.0),
    );
    let power_timeout = Duration::from_secs_f64(opts.seconds("power_timeout", 20.0));
    let interval = Duration::from_secs_f64(opts.seconds("stonith_status_sleep", 1.0).max(0.05));
    let power_wait = Duration::from_secs_f64(opts.seconds("power_wait", 0.0));
    let delay = Duration::from_secs_f64(opts.seconds("delay", 0.0));
    let timed = |what: &str| PowerError::Timeout {
        device: dev.name().to_string(),
        what: what.to_string(),
        after: login,
    };
    let fail = |e: PowerError| {
        eprintln!("Failed: {e}");
        code_for(&e)
    };
    if matches!(action, AgentAction::Off | AgentAction::Reboot) && !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let set = |want: PowerState| async move {
        let r = verify::set_and_verify(dev, plug, want, login + power_timeout, interval).await;
        if r.is_ok() && !power_wait.is_zero() {
            tokio::time::sleep(power_wait).await;
        }
        r
    };
    match action {
        AgentAction::Status => match tokio::time::timeout(login, dev.status(plug)).await {
            Err(_) => fail(timed("status")),
            Ok(Err(e)) => fail(e),
            Ok(Ok(PowerState::On)) => {
                println!("Status: ON");
                exit::STATUS_ON
            }
            Ok(Ok(PowerState::Off)) => {
                println!("Status: OFF");
                exit::STATUS_OFF
            }
            Ok(Ok(PowerState::Unknown)) => {
                eprintln!(
                    "Failed: {} reported an unknown power state for {plug}",
                    dev.name()
                );
                exit::STATUS
            }
        },
        AgentAction::Off => match set(PowerState::Off).await {
            Ok(_) => {
                println!("Success: Powered OFF");
                exit::OK
            }
            Err(e) => fail(e),
        },
        AgentAction::On => {
            let tries = opts
                .get("retry_on")
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(1)
                .max(1);
            let mut last = None;
            for _ in 0..tries {
                match set(PowerState::On).await {
                    Ok(_) => {
                        println!("Success: Powered ON");
                        return exit::OK;
                    }
                    Err(e) => last = Some(e),
                }
            }
            last.map(fail).unwrap_or(exit::GENERIC_ERROR)
        }
        AgentAction::Reboot => {
            if let Err(e) = set(PowerState::Off).await {
                return fail(e);
            }
            let tries = opts
                .get("retry_on")
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(1)
                .max(1);
            for _ in 0..tries {
                if set(PowerState::On).await.is_ok() {
                    println!("Success: Rebooted");
                    return exit::OK;
                }
            }
            // Off was read back: the node is fenced; fence-agents report success too.
            eprintln!("Timed out waiting to power ON (the node was verified off: fenced)");
            println!("Success: Rebooted");
            exit::OK
        }
        AgentAction::List | AgentAction::ListStatus => {
            match tokio::time::timeout(login, dev.list()).await {
                Err(_) => fail(timed("list")),
                Ok(Err(e)) => fail(e),
                Ok(Ok(plugs)) => {
                    let sep = opts.get("separator").unwrap_or(",");
                    for p in plugs {
                        if action == AgentAction::ListStatus {
                            let s = match tokio::time::timeout(login, dev.status(&p)).await {
                                Ok(Ok(PowerState::On)) => "ON",
                                Ok(Ok(PowerState::Off)) => "OFF",
                                _ => "UNKNOWN",
                            };
                            println!("{p}{sep}{sep}{s}");
                        } else {
                            println!("{p}{sep}");
                        }
                    }
                    exit::OK
                }
            }
        }
        AgentAction::Monitor => match tokio::time::timeout(login, dev.monitor()).await {
            Err(_) => fail(timed("monitor")),
            Ok(Err(e)) => fail(e),
            Ok(Ok(())) => exit::OK,
        },
        AgentAction::Metadata | AgentAction::Manpage | AgentAction::ValidateAll => exit::OK,
        AgentAction::Diag => {
            eprintln!("Failed: the diag action is only for IPMI");
            exit::GENERIC_ERROR
        }
    }
}

fn usage(name: &str, specs: &[spec::ParamSpec]) -> String {
    let mut s = format!("Usage:\n\t{name} [options]\nOptions:\n");
    for p in specs.iter().filter(|p| !p.hidden && !p.deprecated) {
        s.push_str(&format!("   {:<40} {}\n", p.getopt(), p.shortdesc));
    }
    s
}

fn manpage(md: &AgentMetadata) -> String {
    let mut s = format!(
        ".TH {} 8\n.SH NAME\n{} - {}\n.SH DESCRIPTION\n{}\n.SH OPTIONS\n",
        md.name.to_uppercase(),
        md.name,
        md.shortdesc,
        md.longdesc
    );
    for p in md.parameters.iter().filter(|p| !p.deprecated) {
        s.push_str(&format!(".TP\n.B {}\n{}\n", p.getopt, p.shortdesc));
    }
    s.push_str(".SH ACTIONS\n");
    for a in &md.actions {
        s.push_str(&format!(".TP\n.B {}\n", a.name));
    }
    s
}
