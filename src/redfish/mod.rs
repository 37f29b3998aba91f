//! Redfish: our client for BMCs that speak DMTF Redfish (HTTPS + JSON).
//!
//! * [`tls`] — verification on by default (system roots / CA file), a
//!   pinned certificate fingerprint, or insecure only when asked.
//! * [`client`] — connection reuse, a timeout on every request, login
//!   through SessionService (X-Auth-Token, deleted at the end) with fallback
//!   to basic auth, system discovery (URI, id, UUID, serial, host name, or
//!   the only one), reset types chosen from what the BMC allows and the
//!   vendor profile's preference, HTTP status checked, 202 + task monitor
//!   followed.
//!
//! A leaf: it knows nothing of fencing; `power::redfish` adapts it and does
//! the read-back verification.

pub mod client;
pub mod tls;

use std::time::Duration;

/// What went wrong talking Redfish to a BMC.
#[derive(Debug, thiserror::Error)]
pub enum RedfishError {
    /// No TCP/HTTP connection.
    #[error("cannot reach Redfish service {bmc}: {detail}")]
    Connect { bmc: String, detail: String },
    /// The TLS handshake failed (certificate not trusted, fingerprint mismatch).
    #[error("TLS with {bmc} failed: {detail}; give the BMC's CA (ca_file), pin its certificate (fingerprint), or set ssl_insecure if you accept the risk")]
    Tls { bmc: String, detail: String },
    /// No answer in time.
    #[error("{bmc} did not answer {what} within {}", humantime::format_duration(Duration::from_millis(after.as_millis() as u64)))]
    Timeout {
        bmc: String,
        what: String,
        after: Duration,
    },
    /// Credentials refused.
    #[error("{bmc} refused the login ({detail}): check username and password")]
    Auth { bmc: String, detail: String },
    /// An HTTP error status.
    #[error("{bmc}: {method} {path} answered HTTP {status}: {message}")]
    Http {
        bmc: String,
        method: String,
        path: String,
        status: u16,
        message: String,
    },
    /// The system to act on could not be chosen.
    #[error("{bmc}: {detail}")]
    System { bmc: String, detail: String },
    /// No acceptable reset type.
    #[error("{bmc}: {detail}")]
    Reset { bmc: String, detail: String },
    /// An answer that is not Redfish as we know it.
    #[error("{bmc}: unexpected answer: {detail}")]
    Protocol { bmc: String, detail: String },
}

impl RedfishError {
    pub fn is_timeout(&self) -> bool {
        matches!(self, RedfishError::Timeout { .. })
    }
}

/// Which reset types to use, in order of preference.
#[derive(Debug, Clone, PartialEq)]
pub struct ResetPlan {
    pub off: Vec<String>,
    pub on: Vec<String>,
    pub cycle: Vec<String>,
}

impl Default for ResetPlan {
    /// The generic Redfish choice: ForceOff; On, then ForceOn; PowerCycle, then ForceRestart.
    fn default() -> Self {
        let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect();
        ResetPlan {
            off: v(&["ForceOff"]),
            on: v(&["On", "ForceOn"]),
            cycle: v(&["PowerCycle", "ForceRestart"]),
        }
    }
}
