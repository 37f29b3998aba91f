//! Process exit codes of `ironfence` and `ironfenced`, aligned with
//! `stonith_admin` (Pacemaker's `crm_exit_t`) so scripts written for it keep
//! working. Fence-agent mode uses the fence-agents codes in [`crate::agent`].

/// Success.
pub const OK: u8 = 0;
/// The operation failed (fence failed, bad config, device error).
pub const ERROR: u8 = 1;
/// `ironfenced` only: this node fenced itself (a poison pill, lost quorum,
/// a stalled servant) and the self-fence returned (a recorder, or a sysrq
/// that did not take; the watchdog stays armed). Do not restart it blindly.
pub const SELF_FENCED: u8 = 3;
/// The command line was wrong (unknown option, missing argument).
pub const USAGE: u8 = 64;
/// The daemon could not be reached on its socket (not running, no access).
pub const DAEMON_UNREACHABLE: u8 = 102;
/// No such node, device or fencing level.
pub const NO_SUCH: u8 = 105;
/// The cluster has no quorum (refused to fence automatically).
pub const NO_QUORUM: u8 = 106;
/// The operation did not finish within its timeout.
pub const TIMEOUT: u8 = 124;

/// Every code with its meaning, for `--help` and the README.
pub const TABLE: &[(u8, &str)] = &[
    (OK, "success"),
    (
        ERROR,
        "the operation failed (fence failed, bad config, device error)",
    ),
    (SELF_FENCED, "ironfenced: this node fenced itself"),
    (USAGE, "wrong command line"),
    (DAEMON_UNREACHABLE, "ironfenced not reachable on its socket"),
    (NO_SUCH, "no such node, device or level"),
    (NO_QUORUM, "no quorum"),
    (TIMEOUT, "timed out"),
];
