//! The BMC's own watchdog timer (IPMI v2.0 §27), driven in-band through the
//! kernel's IPMI device (`/dev/ipmi0`, drivers `ipmi_si` + `ipmi_devintf`)
//! with ipmi-rs. The timer lives in the BMC, so it resets the machine even
//! when the host kernel is wedged hard enough to stop a chipset watchdog.
//!
//! Called by the node daemon through [`super::Watchdog`] (`kind = "ipmi"`)
//! and `ironfence watchdog test --kind ipmi`. The three commands are pure
//! encode/decode functions here ([`encode_set`], [`decode_get`]...) wrapped as
//! ipmi-rs [`IpmiCommand`]s, so the watchdog runs over any
//! [`IpmiConnection`]: the device file, or a fake BMC in the unit tests.
//! QEMU's `-device ipmi-bmc-sim -device isa-ipmi-kcs` implements the same
//! watchdog and is where the QEMU harness exercises this for real.
//!
//! ```text
//! arm(t):    Get Watchdog Timer (remember the expiration flags: why the last boot happened)
//!            Set Watchdog Timer: use SMS/OS, log, stop, action, no pre-timeout,
//!                                clear the SMS/OS flag, countdown t / 100 ms
//!            Get Watchdog Timer (the BMC kept what we set? a longer countdown is refused)
//!            Reset Watchdog Timer              -> countdown running
//!            any failure after the Set: Set "no action" (best effort), then the error
//! keepalive: Reset Watchdog Timer             (0x80: someone reconfigured the timer)
//! disarm:    Set Watchdog Timer: action "no action", timer stopped; Get to confirm
//! drop:      nothing: the BMC keeps counting and resets the machine
//! ```
//!
//! It must never open the device under [`super::FORBID_HARDWARE_ENV`], and
//! must not share the timer: do not load the kernel's `ipmi_watchdog` driver
//! (or run `bmc-watchdog`) next to it — use `kind = "linux"` on the
//! `/dev/watchdog` that driver provides instead.
//!
//! The device transport needs ipmi-rs's `unix-file` feature, which this
//! crate enables through its own feature `ipmi-devintf`; built without it,
//! [`IpmiWatchdog::open`] says so.

use super::{check_hardware_allowed, millis, Kind, Watchdog, WatchdogError, WatchdogInfo};
use ipmi_rs::connection::{
    CompletionErrorCode, IpmiCommand, IpmiConnection, Message, NetFn, NotEnoughData,
};
use ipmi_rs::{Ipmi, IpmiError};
use serde::Serialize;
use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

pub use devintf::DeviceConnection;

/// The kernel's first IPMI interface.
pub const DEFAULT_DEVICE: &str = "/dev/ipmi0";
/// How long to wait for each BMC reply (KCS answers in well under a second).
pub const DEFAULT_REPLY_TIMEOUT: Duration = Duration::from_secs(2);

/// Reset Watchdog Timer (NetFn App).
pub const CMD_RESET_WATCHDOG: u8 = 0x22;
/// Set Watchdog Timer (NetFn App).
pub const CMD_SET_WATCHDOG: u8 = 0x24;
/// Get Watchdog Timer (NetFn App).
pub const CMD_GET_WATCHDOG: u8 = 0x25;
/// Reset Watchdog Timer's completion code for "never set up".
pub const CC_NOT_INITIALIZED: u8 = 0x80;

/// One countdown unit.
pub const TICK: Duration = Duration::from_millis(100);

/// Timer use (byte 1, bits 2:0). The watchdog of a running OS is SMS/OS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimerUse {
    BiosFrb2 = 1,
    BiosPost = 2,
    OsLoad = 3,
    SmsOs = 4,
    Oem = 5,
}

impl TimerUse {
    pub fn from_bits(v: u8) -> Option<TimerUse> {
        Some(match v & 0x07 {
            1 => TimerUse::BiosFrb2,
            2 => TimerUse::BiosPost,
            3 => TimerUse::OsLoad,
            4 => TimerUse::SmsOs,
            5 => TimerUse::Oem,
            _ => return None,
        })
    }

    /// Its bit in the timer use expiration flags (byte 4 of Set, 5 of Get).
    pub fn expiration_bit(self) -> u8 {
        1 << (self as u8)
    }

    pub fn name(self) -> &'static str {
        match self {
            TimerUse::BiosFrb2 => "BIOS FRB2",
            TimerUse::BiosPost => "BIOS/POST",
            TimerUse::OsLoad => "OS load",
            TimerUse::SmsOs => "SMS/OS",
            TimerUse::Oem => "OEM",
        }
    }
}

/// Timeout action (byte 2, bits 2:0), as on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeoutAction {
    NoAction = 0,
    HardReset = 1,
    PowerDown = 2,
    PowerCycle = 3,
}

impl TimeoutAction {
    pub fn from_bits(v: u8) -> Option<TimeoutAction> {
        Some(match v & 0x07 {
            0 => TimeoutAction::NoAction,
            1 => TimeoutAction::HardReset,
            2 => TimeoutAction::PowerDown,
            3 => TimeoutAction::PowerCycle,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            TimeoutAction::NoAction => "no action",
            TimeoutAction::HardReset => "hard reset",
            TimeoutAction::PowerDown => "power down",
            TimeoutAction::PowerCycle => "power cycle",
        }
    }
}

/// What the BMC does to this machine when the watchdog expires (the
/// operator's choice; "no action" is not a watchdog).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BmcAction {
    #[default]
    HardReset,
    PowerDown,
    PowerCycle,
}

impl BmcAction {
    pub fn wire(self) -> TimeoutAction {
        match self {
            BmcAction::HardReset => TimeoutAction::HardReset,
            BmcAction::PowerDown => TimeoutAction::PowerDown,
            BmcAction::PowerCycle => TimeoutAction::PowerCycle,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BmcAction::HardReset => "hard-reset",
            BmcAction::PowerDown => "power-down",
            BmcAction::PowerCycle => "power-cycle",
        }
    }
}

impl fmt::Display for BmcAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BmcAction {
    type Err = String;

    fn from_str(s: &str) -> Result<BmcAction, String> {
        [
            BmcAction::HardReset,
            BmcAction::PowerDown,
            BmcAction::PowerCycle,
        ]
        .into_iter()
        .find(|a| a.as_str() == s)
        .ok_or_else(|| {
            format!("unknown BMC watchdog action `{s}`: use hard-reset, power-down or power-cycle")
        })
    }
}

/// Pre-timeout interrupt (byte 2, bits 6:4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PreTimeoutInterrupt {
    None = 0,
    Smi = 1,
    Nmi = 2,
    MessagingInterrupt = 3,
}

impl PreTimeoutInterrupt {
    pub fn from_bits(v: u8) -> Option<PreTimeoutInterrupt> {
        Some(match (v >> 4) & 0x07 {
            0 => PreTimeoutInterrupt::None,
            1 => PreTimeoutInterrupt::Smi,
            2 => PreTimeoutInterrupt::Nmi,
            3 => PreTimeoutInterrupt::MessagingInterrupt,
            _ => return None,
        })
    }
}

/// A request or response that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("{what}: {got} bytes, expected {want}")]
    Length {
        what: &'static str,
        got: usize,
        want: usize,
    },
    #[error("{what}: reserved value {value:#04x}")]
    Reserved { what: &'static str, value: u8 },
}

impl From<NotEnoughData> for CodecError {
    fn from(_: NotEnoughData) -> Self {
        CodecError::Length {
            what: "response",
            got: 0,
            want: 1,
        }
    }
}

/// Set Watchdog Timer request data (IPMI v2.0 table 27-7, 6 bytes):
///
/// ```text
/// 1  timer use     [7] don't log  [6] don't stop  [2:0] use
/// 2  actions       [6:4] pre-timeout interrupt    [2:0] timeout action
/// 3  pre-timeout interval, seconds
/// 4  expiration flags to clear  [5] OEM [4] SMS/OS [3] OS load [2] BIOS/POST [1] BIOS FRB2
/// 5  initial countdown, LS byte   } 100 ms units, little endian
/// 6  initial countdown, MS byte   }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerSettings {
    pub timer_use: TimerUse,
    pub dont_log: bool,
    /// Keep a running timer running through this Set (else the Set stops it).
    pub dont_stop: bool,
    pub action: TimeoutAction,
    pub pretimeout_interrupt: PreTimeoutInterrupt,
    pub pretimeout_s: u8,
    pub clear_expiration: u8,
    /// In 100 ms units.
    pub countdown: u16,
}

impl TimerSettings {
    /// What `arm` sends: SMS/OS, logged, stop-then-start, no pre-timeout,
    /// clearing the SMS/OS expiration flag.
    pub fn arm(action: TimeoutAction, countdown: u16) -> TimerSettings {
        TimerSettings {
            timer_use: TimerUse::SmsOs,
            dont_log: false,
            dont_stop: false,
            action,
            pretimeout_interrupt: PreTimeoutInterrupt::None,
            pretimeout_s: 0,
            clear_expiration: TimerUse::SmsOs.expiration_bit(),
            countdown,
        }
    }

    /// What `disarm` sends: the same timer, "no action", stopped.
    pub fn disarm(countdown: u16) -> TimerSettings {
        TimerSettings {
            action: TimeoutAction::NoAction,
            clear_expiration: 0,
            ..TimerSettings::arm(TimeoutAction::NoAction, countdown)
        }
    }
}

pub fn encode_set(s: &TimerSettings) -> [u8; 6] {
    let [lo, hi] = s.countdown.to_le_bytes();
    [
        (u8::from(s.dont_log) << 7) | (u8::from(s.dont_stop) << 6) | (s.timer_use as u8),
        ((s.pretimeout_interrupt as u8) << 4) | (s.action as u8),
        s.pretimeout_s,
        s.clear_expiration & 0x3e,
        lo,
        hi,
    ]
}

pub fn decode_set(data: &[u8]) -> Result<TimerSettings, CodecError> {
    let d: &[u8; 6] = data.try_into().map_err(|_| CodecError::Length {
        what: "Set Watchdog Timer request",
        got: data.len(),
        want: 6,
    })?;
    Ok(TimerSettings {
        timer_use: TimerUse::from_bits(d[0]).ok_or(CodecError::Reserved {
            what: "timer use",
            value: d[0] & 0x07,
        })?,
        dont_log: d[0] & 0x80 != 0,
        dont_stop: d[0] & 0x40 != 0,
        action: TimeoutAction::from_bits(d[1]).ok_or(CodecError::Reserved {
            what: "timeout action",
            value: d[1] & 0x07,
        })?,
        pretimeout_interrupt: PreTimeoutInterrupt::from_bits(d[1]).ok_or(CodecError::Reserved {
            what: "pre-timeout interrupt",
            value: (d[1] >> 4) & 0x07,
        })?,
        pretimeout_s: d[2],
        clear_expiration: d[3] & 0x3e,
        countdown: u16::from_le_bytes([d[4], d[5]]),
    })
}

/// Get Watchdog Timer response data after the completion code (IPMI v2.0
/// table 27-8, 8 bytes): timer use (bit 6 = running), actions, pre-timeout
/// interval, expiration flags, initial countdown (LE), present countdown (LE).
///
/// QEMU's simulated BMC reports in bit 6 the "don't stop" bit of the last
/// Set, not whether the timer runs (its present countdown is 0 when
/// stopped), so `running` is advisory; `arm` keeps its own state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TimerState {
    /// Raw bits 2:0 of byte 1 (0, 6 and 7 are reserved).
    pub timer_use_bits: u8,
    pub dont_log: bool,
    pub running: bool,
    /// Raw bits 2:0 of byte 2.
    pub action_bits: u8,
    pub pretimeout_interrupt_bits: u8,
    pub pretimeout_s: u8,
    pub expiration_flags: u8,
    pub initial_countdown: u16,
    pub present_countdown: u16,
}

impl TimerState {
    pub fn timer_use(&self) -> Option<TimerUse> {
        TimerUse::from_bits(self.timer_use_bits)
    }

    pub fn action(&self) -> Option<TimeoutAction> {
        TimeoutAction::from_bits(self.action_bits)
    }

    /// The uses whose timer expired since their flag was last cleared.
    pub fn expired_uses(&self) -> Vec<TimerUse> {
        [
            TimerUse::BiosFrb2,
            TimerUse::BiosPost,
            TimerUse::OsLoad,
            TimerUse::SmsOs,
            TimerUse::Oem,
        ]
        .into_iter()
        .filter(|u| self.expiration_flags & u.expiration_bit() != 0)
        .collect()
    }
}

pub fn decode_get(data: &[u8]) -> Result<TimerState, CodecError> {
    let d: &[u8; 8] = data.try_into().map_err(|_| CodecError::Length {
        what: "Get Watchdog Timer response",
        got: data.len(),
        want: 8,
    })?;
    Ok(TimerState {
        timer_use_bits: d[0] & 0x07,
        dont_log: d[0] & 0x80 != 0,
        running: d[0] & 0x40 != 0,
        action_bits: d[1] & 0x07,
        pretimeout_interrupt_bits: (d[1] >> 4) & 0x07,
        pretimeout_s: d[2],
        expiration_flags: d[3] & 0x3e,
        initial_countdown: u16::from_le_bytes([d[4], d[5]]),
        present_countdown: u16::from_le_bytes([d[6], d[7]]),
    })
}

pub fn encode_get(s: &TimerState) -> [u8; 8] {
    let [il, ih] = s.initial_countdown.to_le_bytes();
    let [pl, ph] = s.present_countdown.to_le_bytes();
    [
        (u8::from(s.dont_log) << 7) | (u8::from(s.running) << 6) | (s.timer_use_bits & 0x07),
        ((s.pretimeout_interrupt_bits & 0x07) << 4) | (s.action_bits & 0x07),
        s.pretimeout_s,
        s.expiration_flags & 0x3e,
        il,
        ih,
        pl,
        ph,
    ]
}

/// The countdown for `timeout`: whole 100 ms units, 1 to 65535.
pub fn countdown_for(timeout: Duration) -> Result<u16, String> {
    if timeout.as_nanos() % TICK.as_nanos() != 0 {
        return Err("the BMC counts in 100 ms steps (use e.g. 5s or 5.5s)".into());
    }
    let ticks = timeout.as_nanos() / TICK.as_nanos();
    if ticks == 0 {
        return Err("a watchdog needs a timeout above zero".into());
    }
    u16::try_from(ticks).map_err(|_| "the BMC's countdown ends at 6553.5 s".into())
}

/// The duration of `countdown` 100 ms units.
pub fn duration_of(countdown: u16) -> Duration {
    TICK * u32::from(countdown)
}

/// Set Watchdog Timer (NetFn App, 0x24).
#[derive(Debug, Clone, Copy)]
pub struct SetWatchdogTimer(pub TimerSettings);

impl From<SetWatchdogTimer> for Message {
    fn from(c: SetWatchdogTimer) -> Message {
        Message::new_request(NetFn::App, CMD_SET_WATCHDOG, encode_set(&c.0).to_vec())
    }
}

impl IpmiCommand for SetWatchdogTimer {
    type Output = ();
    type Error = CodecError;

    fn parse_success_response(_data: &[u8]) -> Result<(), CodecError> {
        Ok(())
    }
}

/// Get Watchdog Timer (NetFn App, 0x25).
#[derive(Debug, Clone, Copy)]
pub struct GetWatchdogTimer;

impl From<GetWatchdogTimer> for Message {
    fn from(_: GetWatchdogTimer) -> Message {
        Message::new_request(NetFn::App, CMD_GET_WATCHDOG, Vec::new())
    }
}

impl IpmiCommand for GetWatchdogTimer {
    type Output = TimerState;
    type Error = CodecError;

    fn parse_success_response(data: &[u8]) -> Result<TimerState, CodecError> {
        decode_get(data)
    }
}

/// Reset Watchdog Timer (NetFn App, 0x22): (re)start the countdown.
#[derive(Debug, Clone, Copy)]
pub struct ResetWatchdogTimer;

impl From<ResetWatchdogTimer> for Message {
    fn from(_: ResetWatchdogTimer) -> Message {
        Message::new_request(NetFn::App, CMD_RESET_WATCHDOG, Vec::new())
    }
}

/// Why a command failed beyond its completion code's generic meaning.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResetError {
    #[error("the BMC says its watchdog was never set up (completion code 0x80): something else reconfigured it (BIOS, the ipmi_watchdog driver, bmc-watchdog?); stop it")]
    NotInitialized,
    #[error(transparent)]
    Codec(#[from] CodecError),
}

impl IpmiCommand for ResetWatchdogTimer {
    type Output = ();
    type Error = ResetError;

    fn handle_completion_code(code: CompletionErrorCode, _data: &[u8]) -> Option<ResetError> {
        (code == CompletionErrorCode::CommandSpecific(CC_NOT_INITIALIZED))
            .then_some(ResetError::NotInitialized)
    }

    fn parse_success_response(_data: &[u8]) -> Result<(), ResetError> {
        Ok(())
    }
}

/// Words for a completion code an operator can act on.
fn completion_hint(code: &CompletionErrorCode) -> &'static str {
    match code {
        CompletionErrorCode::InvalidCommand | CompletionErrorCode::InvalidCommandForLun => {
            ": this BMC has no watchdog timer"
        }
        CompletionErrorCode::InvalidDataFieldInRequest
        | CompletionErrorCode::ParameterOutOfRange => {
            ": the BMC refused these settings (is this timeout action supported?)"
        }
        CompletionErrorCode::InsufficientPrivilege => ": the IPMI device needs more privilege",
        CompletionErrorCode::NodeBusy | CompletionErrorCode::ResponseUnavailable { .. } => {
            ": the BMC is busy or initialising; retry"
        }
        _ => "",
    }
}

fn describe_error<CON: fmt::Debug, P: fmt::Display>(e: IpmiError<CON, P>) -> String {
    match e {
        IpmiError::Failed {
            completion_code, ..
        } => format!(
            "the BMC answered {completion_code:?}{}",
            completion_hint(&completion_code)
        ),
        IpmiError::Command { error, .. } => error.to_string(),
        IpmiError::Connection(c) => format!("no answer through the IPMI device: {c:?}"),
        IpmiError::UnexpectedResponse { cmd_recvd, .. } => {
            format!("the BMC answered another command ({cmd_recvd:#04x})")
        }
        IpmiError::NetFnIsResponse(n) => format!("bad request netfn {n:?}"),
    }
}

/// The BMC's watchdog over an IPMI connection (the device file, or a fake).
pub struct IpmiWatchdog<C: IpmiConnection> {
    device: String,
    action: BmcAction,
    /// Behind a lock only so `time_left(&self)` can ask the BMC.
    ipmi: Mutex<Ipmi<C>>,
    armed: bool,
    countdown: u16,
    /// What Get Watchdog Timer said before we took the timer over.
    before: Option<TimerState>,
}

impl IpmiWatchdog<DeviceConnection> {
    /// Open the IPMI device at `path` (nothing is armed; opening the device
    /// does not touch the timer). Refuses under [`super::FORBID_HARDWARE_ENV`]
    /// before anything else.
    pub fn open(
        path: &Path,
        action: BmcAction,
        reply_timeout: Duration,
    ) -> Result<IpmiWatchdog<DeviceConnection>, WatchdogError> {
        check_hardware_allowed(path)?;
        let conn = devintf::connect(path, reply_timeout)?;
        Ok(IpmiWatchdog::with_connection(path, conn, action))
    }
}

/// [`IpmiWatchdog::open`], boxed for [`super::open`].
pub(crate) fn open_device(
    path: &Path,
    action: BmcAction,
    reply_timeout: Duration,
) -> Result<Box<dyn Watchdog>, WatchdogError> {
    Ok(Box::new(IpmiWatchdog::open(path, action, reply_timeout)?))
}

impl<C> IpmiWatchdog<C>
where
    C: IpmiConnection + Send,
{
    /// A watchdog on an established connection (`device` names it in messages).
    pub fn with_connection(device: &Path, conn: C, action: BmcAction) -> IpmiWatchdog<C> {
        IpmiWatchdog {
            device: device.display().to_string(),
            action,
            ipmi: Mutex::new(Ipmi::new(conn)),
            armed: false,
            countdown: 0,
            before: None,
        }
    }

    fn call<CMD>(&self, op: &'static str, cmd: CMD) -> Result<CMD::Output, WatchdogError>
    where
        CMD: IpmiCommand,
        CMD::Error: fmt::Display,
    {
        let mut ipmi = self.ipmi.lock().unwrap_or_else(|p| p.into_inner());
        ipmi.send_recv(cmd).map_err(|e| WatchdogError::Bmc {
            device: self.device.clone(),
            op,
            detail: describe_error(e),
        })
    }

    fn get(&self) -> Result<TimerState, WatchdogError> {
        self.call("Get Watchdog Timer", GetWatchdogTimer)
    }

    fn bmc_err(&self, op: &'static str, detail: String) -> WatchdogError {
        WatchdogError::Bmc {
            device: self.device.clone(),
            op,
            detail,
        }
    }

    /// Set, check, start: `arm` minus the bookkeeping.
    fn take_over(&self, timeout: Duration, countdown: u16) -> Result<Duration, WatchdogError> {
        let wanted = self.action.wire();
        self.call(
            "Set Watchdog Timer",
            SetWatchdogTimer(TimerSettings::arm(wanted, countdown)),
        )?;
        let now = self.get()?;
        if now.timer_use() != Some(TimerUse::SmsOs) || now.action() != Some(wanted) {
            return Err(self.bmc_err(
                "Set Watchdog Timer",
                format!(
                    "the BMC did not keep the settings (use bits {}, action bits {}; wanted SMS/OS, {})",
                    now.timer_use_bits,
                    now.action_bits,
                    wanted.name()
                ),
            ));
        }
        let took = duration_of(now.initial_countdown);
        if now.initial_countdown == 0 {
            return Err(self.bmc_err(
                "Set Watchdog Timer",
                "the BMC kept a countdown of 0 (it would act at once)".into(),
            ));
        }
        if took > timeout {
            return Err(WatchdogError::TimeoutTooLong {
                device: self.device.clone(),
                asked: timeout,
                took,
            });
        }
        self.call("Reset Watchdog Timer", ResetWatchdogTimer)?;
        Ok(took)
    }
}

impl<C> Watchdog for IpmiWatchdog<C>
where
    C: IpmiConnection + Send,
{
    fn arm(&mut self, timeout: Duration) -> Result<Duration, WatchdogError> {
        if self.armed {
            return Err(WatchdogError::AlreadyArmed {
                device: self.device.clone(),
            });
        }
        let countdown = countdown_for(timeout).map_err(|why| WatchdogError::InvalidTimeout {
            device: self.device.clone(),
            asked: timeout,
            why,
        })?;
        let before = self.get()?;
        if before.running && before.timer_use() != Some(TimerUse::SmsOs) {
            tracing::warn!(device = %self.device, was = ?before.timer_use(),
                "taking over a running BMC watchdog set up by someone else (BIOS?)");
        }
        self.before = Some(before);
        match self.take_over(timeout, countdown) {
            Ok(took) => {
                self.armed = true;
                self.countdown = countdown_for(took).unwrap_or(countdown);
                tracing::info!(device = %self.device, timeout_ms = millis(took), action = %self.action, "BMC watchdog armed");
                Ok(took)
            }
            Err(e) => {
                let stop = self.call(
                    "Set Watchdog Timer",
                    SetWatchdogTimer(TimerSettings::disarm(countdown)),
                );
                if let Err(stop) = stop {
                    tracing::error!(device = %self.device, cause = %stop,
                        "arming failed and the BMC watchdog could not be stopped");
                }
                Err(e)
            }
        }
    }

    fn keepalive(&mut self) -> Result<(), WatchdogError> {
        if !self.armed {
            return Err(WatchdogError::NotArmed {
                device: self.device.clone(),
            });
        }
        self.call("Reset Watchdog Timer", ResetWatchdogTimer)
    }

    fn disarm(&mut self) -> Result<(), WatchdogError> {
        if !self.armed {
            return Ok(());
        }
        self.call(
            "Set Watchdog Timer",
            SetWatchdogTimer(TimerSettings::disarm(self.countdown)),
        )?;
        match self.get() {
            Ok(s) if s.action() != Some(TimeoutAction::NoAction) => {
                return Err(self.bmc_err(
                    "Set Watchdog Timer",
                    format!(
                        "the BMC still has action bits {} after the stop: the timer may still reset this machine",
                        s.action_bits
                    ),
                ));
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(device = %self.device, cause = %e, "cannot confirm the BMC watchdog stopped")
            }
        }
        self.armed = false;
        tracing::info!(device = %self.device, "BMC watchdog disarmed");
        Ok(())
    }

    fn describe(&self) -> WatchdogInfo {
        let mut info = WatchdogInfo::new(Kind::Ipmi, self.device.clone());
        info.identity = Some("BMC watchdog timer (IPMI, SMS/OS)".into());
        info.armed = self.armed;
        info.timeout_ms = self.armed.then(|| millis(duration_of(self.countdown)));
        info.nowayout = Some(false);
        info.action = Some(self.action.wire().name().into());
        info.boot_status = self
            .before
            .map(|b| {
                b.expired_uses()
                    .into_iter()
                    .map(|u| format!("{} watchdog expired", u.name()))
                    .collect()
            })
            .unwrap_or_default();
        info
    }

    fn time_left(&self) -> Option<Duration> {
        if !self.armed {
            return None;
        }
        // The present countdown; not the running bit (QEMU's is not one).
        self.get().ok().map(|s| duration_of(s.present_countdown))
    }
}

/// The device transport: ipmi-rs's `File` when the `ipmi-devintf` feature
/// is on, else a stand-in whose `connect` explains how to get it.
mod devintf {
    // `ipmi-devintf` is this crate's feature (Cargo.toml: ipmi-devintf =
    // ["ipmi-rs/unix-file"]); until it is declared, its cfg is "unexpected".
    #![allow(unexpected_cfgs)]

    use super::super::WatchdogError;
    use std::path::Path;
    use std::time::Duration;

    #[cfg(feature = "ipmi-devintf")]
    pub type DeviceConnection = ipmi_rs::File;

    #[cfg(feature = "ipmi-devintf")]
    pub(super) fn connect(
        path: &Path,
        reply_timeout: Duration,
    ) -> Result<DeviceConnection, WatchdogError> {
        let device = path.display().to_string();
        ipmi_rs::File::new(path, reply_timeout).map_err(|source| {
            let hint = match source.raw_os_error() {
                Some(nix::libc::ENOENT) | Some(nix::libc::ENXIO) | Some(nix::libc::ENODEV) => {
                    " (load the kernel's IPMI drivers: modprobe ipmi_si ipmi_devintf; no BMC, no /dev/ipmi0)"
                }
                Some(nix::libc::EACCES) | Some(nix::libc::EPERM) => " (run ironfenced as root)",
                _ => "",
            };
            WatchdogError::Open { device, source, hint }
        })
    }

    /// Built without `ipmi-devintf`: no connection can exist.
    #[cfg(not(feature = "ipmi-devintf"))]
    pub enum DeviceConnection {}

    #[cfg(not(feature = "ipmi-devintf"))]
    impl ipmi_rs::connection::IpmiConnection for DeviceConnection {
        type SendError = std::io::Error;
        type RecvError = std::io::Error;
        type Error = std::io::Error;

        fn send(&mut self, _: &mut ipmi_rs::connection::Request) -> std::io::Result<()> {
            match *self {}
        }
        fn recv(&mut self) -> std::io::Result<ipmi_rs::connection::Response> {
            match *self {}
        }
        fn send_recv(
            &mut self,
            _: &mut ipmi_rs::connection::Request,
        ) -> std::io::Result<ipmi_rs::connection::Response> {
            match *self {}
        }
    }

    #[cfg(not(feature = "ipmi-devintf"))]
    pub(super) fn connect(
        path: &Path,
        _reply_timeout: Duration,
    ) -> Result<DeviceConnection, WatchdogError> {
        Err(WatchdogError::BmcUnsupported {
            device: path.display().to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use ipmi_rs::connection::{Request, Response};
    use std::sync::{Arc, Mutex as StdMutex};

    /// A BMC watchdog as QEMU's ipmi-bmc-sim implements it, on a manual
    /// clock in 100 ms ticks, recording every request.
    #[derive(Debug, Default)]
    struct Bmc {
        initialized: bool,
        use_byte: u8,
        action_byte: u8,
        pretimeout: u8,
        expired: u8,
        countdown: u16,
        running: bool,
        /// Ticks left while running.
        left: u16,
        /// Fired: (use, action).
        fired: Option<u8>,
        requests: Vec<(u8, u8, Vec<u8>)>,
        /// Answer this completion code to this command.
        fail: Option<(u8, u8)>,
        /// Keep at most / at least this countdown (a BMC that "rounds").
        max_countdown: Option<u16>,
        min_countdown: Option<u16>,
    }

    impl Bmc {
        fn tick(&mut self, n: u16) {
            if self.running {
                if self.left <= n {
                    self.left = 0;
                    self.running = false;
                    self.fired = Some(self.action_byte & 0x07);
                    self.expired |= 1 << (self.use_byte & 0x07);
                } else {
                    self.left -= n;
                }
            }
        }

        fn handle(&mut self, cmd: u8, data: &[u8]) -> (u8, Vec<u8>) {
            if let Some((c, cc)) = self.fail {
                if c == cmd {
                    return (cc, vec![]);
                }
            }
            match cmd {
                CMD_RESET_WATCHDOG => {
                    if !self.initialized {
                        return (CC_NOT_INITIALIZED, vec![]);
                    }
                    if self.action_byte & 0x07 == 0 {
                        self.running = false;
                    } else {
                        self.running = true;
                        self.left = self.countdown;
                    }
                    (0, vec![])
                }
                CMD_SET_WATCHDOG => {
                    let Ok(s) = decode_set(data) else {
                        return (0xcc, vec![]);
                    };
                    self.initialized = true;
                    self.use_byte = data[0] & 0xc7;
                    self.action_byte = data[1] & 0x77;
                    self.pretimeout = s.pretimeout_s;
                    self.expired &= !s.clear_expiration;
                    self.countdown = self
                        .max_countdown
                        .map_or(s.countdown, |m| s.countdown.min(m));
                    self.countdown = self
                        .min_countdown
                        .map_or(self.countdown, |m| self.countdown.max(m));
                    if !(self.running && s.dont_stop) {
                        self.running = false;
                    }
                    (0, vec![])
                }
                CMD_GET_WATCHDOG => {
                    // like QEMU: byte 1 is the stored use byte (bit 6 = don't stop)
                    let mut d = vec![
                        self.use_byte,
                        self.action_byte,
                        self.pretimeout,
                        self.expired,
                    ];
                    d.extend_from_slice(&self.countdown.to_le_bytes());
                    let present = if self.running { self.left } else { 0 };
                    d.extend_from_slice(&present.to_le_bytes());
                    (0, d)
                }
                _ => (0xc1, vec![]),
            }
        }
    }

    #[derive(Clone, Default)]
    struct FakeConn(Arc<StdMutex<Bmc>>);

    impl IpmiConnection for FakeConn {
        type SendError = std::io::Error;
        type RecvError = std::io::Error;
        type Error = std::io::Error;

        fn send(&mut self, _: &mut Request) -> std::io::Result<()> {
            Err(std::io::Error::other("send_recv only"))
        }
        fn recv(&mut self) -> std::io::Result<Response> {
            Err(std::io::Error::other("send_recv only"))
        }
        fn send_recv(&mut self, request: &mut Request) -> std::io::Result<Response> {
            let mut bmc = self.0.lock().unwrap();
            assert_eq!(request.netfn_raw(), 0x06, "watchdog commands are NetFn App");
            bmc.requests
                .push((request.netfn_raw(), request.cmd(), request.data().to_vec()));
            let (cc, data) = bmc.handle(request.cmd(), request.data());
            let mut body = vec![cc];
            body.extend(data);
            Response::new(Message::new_raw(0x07, request.cmd(), body), 0)
                .ok_or_else(|| std::io::Error::other("empty response"))
        }
    }

    fn watchdog(action: BmcAction) -> (IpmiWatchdog<FakeConn>, Arc<StdMutex<Bmc>>) {
        let conn = FakeConn::default();
        let bmc = conn.0.clone();
        (
            IpmiWatchdog::with_connection(Path::new("/dev/ipmi0"), conn, action),
            bmc,
        )
    }

    #[test]
    fn set_bytes_follow_table_27_7() {
        // SMS/OS, log, stop; hard reset, no pre-timeout; clear SMS/OS; 5 s = 50 x 100 ms
        let arm = TimerSettings::arm(TimeoutAction::HardReset, 50);
        assert_eq!(encode_set(&arm), [0x04, 0x01, 0x00, 0x10, 0x32, 0x00]);
        assert_eq!(decode_set(&encode_set(&arm)).unwrap(), arm);
        let off = TimerSettings::arm(TimeoutAction::PowerDown, 600);
        assert_eq!(encode_set(&off), [0x04, 0x02, 0x00, 0x10, 0x58, 0x02]);
        assert_eq!(
            encode_set(&TimerSettings::disarm(50)),
            [0x04, 0x00, 0x00, 0x00, 0x32, 0x00]
        );
        let every_bit = TimerSettings {
            timer_use: TimerUse::Oem,
            dont_log: true,
            dont_stop: true,
            action: TimeoutAction::PowerCycle,
            pretimeout_interrupt: PreTimeoutInterrupt::MessagingInterrupt,
            pretimeout_s: 7,
            clear_expiration: 0x3e,
            countdown: 0xffff,
        };
        assert_eq!(encode_set(&every_bit), [0xc5, 0x33, 0x07, 0x3e, 0xff, 0xff]);
        assert_eq!(decode_set(&encode_set(&every_bit)).unwrap(), every_bit);
    }

    #[test]
    fn set_decoding_rejects_reserved_values_and_lengths() {
        assert!(matches!(
            decode_set(&[0x00, 0x01, 0, 0, 1, 0]),
            Err(CodecError::Reserved {
                what: "timer use",
                ..
            })
        ));
        assert!(matches!(
            decode_set(&[0x04, 0x05, 0, 0, 1, 0]),
            Err(CodecError::Reserved {
                what: "timeout action",
                ..
            })
        ));
        assert!(matches!(
            decode_set(&[0x04, 0x41, 0, 0, 1, 0]),
            Err(CodecError::Reserved { .. })
        ));
        assert!(matches!(
            decode_set(&[0x04]),
            Err(CodecError::Length {
                got: 1,
                want: 6,
                ..
            })
        ));
    }

    #[test]
    fn get_bytes_follow_table_27_8() {
        // An OS-load timer running, hard reset, 1 s pre-timeout, 8 s initial, 4 s left.
        let s = decode_get(&[0x43, 0x01, 0x01, 0x00, 0x50, 0x00, 0x28, 0x00]).unwrap();
        assert!(s.running && !s.dont_log);
        assert_eq!(s.timer_use(), Some(TimerUse::OsLoad));
        assert_eq!(s.action(), Some(TimeoutAction::HardReset));
        assert_eq!(
            (s.pretimeout_s, s.initial_countdown, s.present_countdown),
            (1, 80, 40)
        );
        assert_eq!(duration_of(s.present_countdown), Duration::from_secs(4));
        assert_eq!(
            encode_get(&s),
            [0x43, 0x01, 0x01, 0x00, 0x50, 0x00, 0x28, 0x00]
        );
        // A stopped FRB2 timer, power cycle, 10 s; SMS/OS and OEM expired.
        let s = decode_get(&[0x01, 0x03, 0x01, 0x30, 0x64, 0x00, 0x64, 0x00]).unwrap();
        assert!(!s.running);
        assert_eq!(s.timer_use(), Some(TimerUse::BiosFrb2));
        assert_eq!(s.action(), Some(TimeoutAction::PowerCycle));
        assert_eq!(s.expired_uses(), [TimerUse::SmsOs, TimerUse::Oem]);
        assert!(matches!(
            decode_get(&[0; 7]),
            Err(CodecError::Length { want: 8, .. })
        ));
    }

    #[test]
    fn countdowns_are_100ms_steps() {
        assert_eq!(countdown_for(Duration::from_secs(5)), Ok(50));
        assert_eq!(countdown_for(Duration::from_millis(5500)), Ok(55));
        assert_eq!(countdown_for(Duration::from_millis(6_553_500)), Ok(65535));
        assert!(countdown_for(Duration::from_millis(6_553_600)).is_err());
        assert!(countdown_for(Duration::ZERO).is_err());
        assert!(countdown_for(Duration::from_millis(150)).is_err());
        assert_eq!(duration_of(50), Duration::from_secs(5));
    }

    #[test]
    fn request_messages_are_netfn_app_with_the_spec_command_numbers() {
        let m: Message = SetWatchdogTimer(TimerSettings::arm(TimeoutAction::HardReset, 50)).into();
        assert_eq!(
            (m.netfn_raw(), m.cmd(), m.data()),
            (0x06, 0x24, &[4u8, 1, 0, 0x10, 50, 0][..])
        );
        let m: Message = GetWatchdogTimer.into();
        assert_eq!((m.netfn_raw(), m.cmd(), m.data().len()), (0x06, 0x25, 0));
        let m: Message = ResetWatchdogTimer.into();
        assert_eq!((m.netfn_raw(), m.cmd(), m.data().len()), (0x06, 0x22, 0));
    }

    #[test]
    fn arm_feed_disarm_against_a_simulated_bmc() {
        let (mut wd, bmc) = watchdog(BmcAction::HardReset);
        bmc.lock().unwrap().expired = TimerUse::SmsOs.expiration_bit(); // the last boot was ours
        assert_eq!(
            wd.arm(Duration::from_secs(5)).unwrap(),
            Duration::from_secs(5)
        );
        {
            let b = bmc.lock().unwrap();
            let cmds: Vec<u8> = b.requests.iter().map(|r| r.1).collect();
            assert_eq!(cmds, [0x25, 0x24, 0x25, 0x22]);
            assert_eq!(b.requests[1].2, [0x04, 0x01, 0x00, 0x10, 0x32, 0x00]);
            assert!(b.running);
            assert_eq!(b.expired, 0, "arm clears the SMS/OS flag");
        }
        let info = wd.describe();
        assert!(info.armed);
        assert_eq!(info.timeout_ms, Some(5000));
        assert_eq!(info.action.as_deref(), Some("hard reset"));
        assert_eq!(info.boot_status, ["SMS/OS watchdog expired"]);

        bmc.lock().unwrap().tick(30);
        assert_eq!(wd.time_left(), Some(Duration::from_secs(2)));
        wd.keepalive().unwrap();
        assert_eq!(wd.time_left(), Some(Duration::from_secs(5)));
        bmc.lock().unwrap().tick(49);
        wd.keepalive().unwrap();
        bmc.lock().unwrap().tick(49);
        assert_eq!(bmc.lock().unwrap().fired, None);

        wd.disarm().unwrap();
        {
            let b = bmc.lock().unwrap();
            assert!(!b.running);
            let set = b.requests.iter().rev().find(|r| r.1 == 0x24).unwrap();
            assert_eq!(set.2, [0x04, 0x00, 0x00, 0x00, 0x32, 0x00]);
        }
        bmc.lock().unwrap().tick(1000);
        assert_eq!(bmc.lock().unwrap().fired, None);
        assert!(!wd.describe().armed);
        assert!(matches!(
            wd.keepalive(),
            Err(WatchdogError::NotArmed { .. })
        ));
        wd.disarm().unwrap();
    }

    #[test]
    fn a_dropped_watchdog_keeps_the_bmc_counting() {
        let (mut wd, bmc) = watchdog(BmcAction::PowerDown);
        wd.arm(Duration::from_secs(3)).unwrap();
        drop(wd);
        bmc.lock().unwrap().tick(29);
        assert_eq!(bmc.lock().unwrap().fired, None);
        bmc.lock().unwrap().tick(1);
        assert_eq!(
            bmc.lock().unwrap().fired,
            Some(TimeoutAction::PowerDown as u8)
        );
    }

    #[test]
    fn a_shorter_countdown_is_returned_a_longer_one_refused_and_stopped() {
        let (mut wd, bmc) = watchdog(BmcAction::HardReset);
        bmc.lock().unwrap().max_countdown = Some(30);
        assert_eq!(
            wd.arm(Duration::from_secs(5)).unwrap(),
            Duration::from_secs(3)
        );
        assert_eq!(wd.describe().timeout_ms, Some(3000));
        wd.disarm().unwrap();

        let (mut wd, bmc) = watchdog(BmcAction::HardReset);
        bmc.lock().unwrap().min_countdown = Some(100);
        let e = wd.arm(Duration::from_secs(5)).unwrap_err();
        assert!(matches!(e, WatchdogError::TimeoutTooLong { .. }), "{e}");
        let b = bmc.lock().unwrap();
        assert!(!b.running, "never started");
        assert_eq!(b.action_byte & 0x07, 0, "left with no action");
        assert!(!wd.describe().armed);
    }

    #[test]
    fn reset_before_set_is_reported_as_someone_else_reconfiguring() {
        let (mut wd, bmc) = watchdog(BmcAction::HardReset);
        wd.arm(Duration::from_secs(5)).unwrap();
        // the BMC was reset / reconfigured behind our back
        bmc.lock().unwrap().initialized = false;
        let e = wd.keepalive().unwrap_err();
        assert!(e.to_string().contains("never set up"), "{e}");
    }

    #[test]
    fn a_bmc_without_a_watchdog_fails_arm_with_a_hint() {
        let (mut wd, bmc) = watchdog(BmcAction::HardReset);
        bmc.lock().unwrap().fail = Some((CMD_GET_WATCHDOG, 0xc1));
        let e = wd.arm(Duration::from_secs(5)).unwrap_err();
        assert!(e.to_string().contains("has no watchdog timer"), "{e}");
        assert!(!wd.describe().armed);
    }

    #[test]
    fn a_failed_start_stops_the_timer_again() {
        let (mut wd, bmc) = watchdog(BmcAction::PowerCycle);
        bmc.lock().unwrap().fail = Some((CMD_RESET_WATCHDOG, 0xd5));
        let e = wd.arm(Duration::from_secs(5)).unwrap_err();
        assert!(
            matches!(
                e,
                WatchdogError::Bmc {
                    op: "Reset Watchdog Timer",
                    ..
                }
            ),
            "{e}"
        );
        let b = bmc.lock().unwrap();
        assert!(!b.running);
        assert_eq!(b.action_byte & 0x07, 0, "left with no action");
        assert!(!wd.describe().armed);
    }

    #[test]
    fn bad_timeouts_are_refused_before_any_command() {
        let (mut wd, bmc) = watchdog(BmcAction::HardReset);
        for t in [
            Duration::ZERO,
            Duration::from_millis(1250),
            Duration::from_secs(7000),
        ] {
            assert!(
                matches!(wd.arm(t), Err(WatchdogError::InvalidTimeout { .. })),
                "{t:?}"
            );
        }
        assert!(bmc.lock().unwrap().requests.is_empty());
    }

    #[test]
    fn actions_parse() {
        assert_eq!("power-down".parse::<BmcAction>(), Ok(BmcAction::PowerDown));
        assert_eq!(BmcAction::default(), BmcAction::HardReset);
        assert!("reboot"
            .parse::<BmcAction>()
            .unwrap_err()
            .contains("hard-reset"));
        assert_eq!(TimerUse::SmsOs.expiration_bit(), 0x10);
    }

    #[test]
    fn open_refuses_under_the_guard() {
        if !super::super::hardware_forbidden() {
            eprintln!("guard not set in this environment; covered by the pure guard test");
            return;
        }
        let e = IpmiWatchdog::open(
            Path::new("/nonexistent/ipmi9"),
            BmcAction::HardReset,
            DEFAULT_REPLY_TIMEOUT,
        )
        .err()
        .unwrap();
        assert!(matches!(e, WatchdogError::HardwareForbidden { .. }), "{e}");
    }
}
