//! Raw serde types: exactly what a profile file says, nothing checked beyond
//! TOML syntax and known keys (`deny_unknown_fields`). [`super::validate`]
//! turns them into a typed [`super::Profile`] in one step.
//!
//! Integers are read as `i64` so that an out-of-range value (cipher 42,
//! a negative manufacturer id) reaches validation and gets a message that
//! names the key, instead of a bare serde overflow error.

use serde::Deserialize;

/// One `firmware-configs/*.toml` file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProfile {
    pub family: String,
    #[serde(default, rename = "match")]
    pub matcher: RawMatch,
    pub redfish: RawRedfish,
    pub ipmi: RawIpmi,
    #[serde(default, rename = "quirk")]
    pub quirks: Vec<RawQuirk>,
}

/// `[match]`: every list is optional; an absent table matches nothing
/// (the generic profiles).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMatch {
    #[serde(default)]
    pub redfish_vendor: Vec<String>,
    #[serde(default)]
    pub redfish_product: Vec<String>,
    #[serde(default)]
    pub manufacturer: Vec<String>,
    #[serde(default)]
    pub model: Vec<String>,
    #[serde(default)]
    pub manager_model: Vec<String>,
    #[serde(default)]
    pub manager_firmware: Vec<String>,
    #[serde(default)]
    pub ipmi_manufacturer_id: Vec<i64>,
    #[serde(default)]
    pub require: Vec<String>,
}

/// `[redfish]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRedfish {
    pub off: Vec<String>,
    pub on: Vec<String>,
    pub cycle: Vec<String>,
    pub sessions: bool,
    pub settle: String,
    pub power_timeout: String,
}

/// `[ipmi]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIpmi {
    pub ciphers: Vec<i64>,
    pub privilege: String,
}

/// One `[[quirk]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawQuirk {
    pub text: String,
    pub source: String,
    #[serde(default = "verified_by_default")]
    pub verified: bool,
}

fn verified_by_default() -> bool {
    true
}
