//! Raw profile -> typed [`Profile`], in one step. Every check names the key it
//! is about; the first problem found is returned as
//! [`ProfileError::Invalid`]. Downstream code trusts the result.

use super::matching::{MatchField, MatchRules, Pattern};
use super::raw::{RawIpmi, RawMatch, RawProfile, RawQuirk, RawRedfish};
use super::{IpmiProfile, Profile, ProfileError, Quirk, RedfishProfile, RESET_TYPES};
use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

/// Reset types that power a node off without its operating system's help.
const HARD_OFF: &[&str] = &["ForceOff"];
/// Reset types that end with the node powered on.
const POWER_ON: &[&str] = &["On", "ForceOn"];
/// Reset types that restart a node without its operating system's help.
const HARD_CYCLE: &[&str] = &["PowerCycle", "ForceRestart", "FullPowerCycle"];
/// Cipher suites without integrity protection (IPMI 2.0 table 22-20): a
/// profile may not recommend them; `[device.ipmi] allow_insecure` exists for
/// the rare site that needs one.
const NO_INTEGRITY_SUITES: &[i64] = &[0, 1, 6, 15];
/// Longest accepted `settle`.
const MAX_SETTLE: Duration = Duration::from_secs(60);
/// Longest accepted `power_timeout`.
const MAX_POWER_TIMEOUT: Duration = Duration::from_secs(600);
/// IPMI manufacturer ids are 20-bit IANA enterprise numbers.
const MAX_MANUFACTURER_ID: i64 = 0x0F_FFFF;

type Check<T> = Result<T, (String, String)>;

fn bad<T>(key: impl Into<String>, problem: impl Into<String>) -> Check<T> {
    Err((key.into(), problem.into()))
}

/// Validate a parsed profile named `name` (the file stem) read from `file`.
pub(super) fn profile(name: &str, raw: RawProfile, file: &Path) -> Result<Profile, ProfileError> {
    build(name, raw).map_err(|(key, problem)| ProfileError::Invalid {
        file: file.to_path_buf(),
        key,
        problem,
    })
}

fn build(name: &str, raw: RawProfile) -> Check<Profile> {
    check_name(name)?;
    let family = raw.family.trim().to_string();
    if family.is_empty() {
        return bad(
            "family",
            "is empty; write the human name, e.g. \"Dell iDRAC 9\"",
        );
    }
    Ok(Profile {
        name: name.to_string(),
        family,
        matcher: match_rules(raw.matcher)?,
        redfish: redfish(raw.redfish)?,
        ipmi: ipmi(raw.ipmi)?,
        quirks: quirks(raw.quirks)?,
    })
}

/// Profile names are file stems that also appear in configs and logs.
pub(super) fn check_name(name: &str) -> Check<()> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        bad(
            "(file name)",
            format!(
                "\"{name}\" is not a profile name; rename the file to lowercase letters, digits and '-' (e.g. dell-idrac9.toml)"
            ),
        )
    }
}

fn match_rules(raw: RawMatch) -> Check<MatchRules> {
    let mut rules = MatchRules::default();
    let lists = [
        (MatchField::RedfishVendor, raw.redfish_vendor),
        (MatchField::RedfishProduct, raw.redfish_product),
        (MatchField::Manufacturer, raw.manufacturer),
        (MatchField::Model, raw.model),
        (MatchField::ManagerModel, raw.manager_model),
        (MatchField::ManagerFirmware, raw.manager_firmware),
    ];
    for (field, sources) in lists {
        let key = format!("match.{}", field.key());
        for source in sources {
            if source.trim().is_empty() {
                return bad(
                    key,
                    "contains an empty pattern, which would match anything; remove it",
                );
            }
            match Pattern::new(&source) {
                Ok(p) => rules.patterns_mut(field).push(p),
                Err(e) => {
                    return bad(
                        key,
                        format!("pattern \"{source}\" is not a valid regular expression: {e}"),
                    )
                }
            }
        }
    }
    let mut seen = HashSet::new();
    for id in raw.ipmi_manufacturer_id {
        if !(0..=MAX_MANUFACTURER_ID).contains(&id) {
            return bad(
                "match.ipmi_manufacturer_id",
                format!("{id} is not an IPMI manufacturer id (IANA enterprise number, 0-{MAX_MANUFACTURER_ID})"),
            );
        }
        if !seen.insert(id) {
            return bad("match.ipmi_manufacturer_id", format!("lists {id} twice"));
        }
        // Range checked above, so the conversion cannot fail.
        rules
            .ipmi_manufacturer_id
            .push(u32::try_from(id).unwrap_or(u32::MAX));
    }
    for key in raw.require {
        let Some(field) = MatchField::from_key(&key) else {
            let valid: Vec<_> = MatchField::ALL.iter().map(|f| f.key()).collect();
            return bad(
                "match.require",
                format!(
                    "\"{key}\" is not a match field (valid: {})",
                    valid.join(", ")
                ),
            );
        };
        if rules.patterns(field).is_empty() {
            return bad(
                "match.require",
                format!("requires \"{key}\" but match.{key} has no patterns; add some or drop the requirement"),
            );
        }
        if !rules.require.contains(&field) {
            rules.require.push(field);
        }
    }
    Ok(rules)
}

fn reset_list(
    key: &str,
    values: Vec<String>,
    allowed: &[&str],
    meaning: &str,
) -> Check<Vec<String>> {
    let mut seen = HashSet::new();
    for v in &values {
        if !RESET_TYPES.contains(&v.as_str()) {
            return bad(
                key,
                format!(
                    "\"{v}\" is not a Redfish ResetType (valid, case-sensitive: {})",
                    RESET_TYPES.join(", ")
                ),
            );
        }
        if !allowed.contains(&v.as_str()) {
            return bad(
                key,
                format!(
                    "\"{v}\" is a Redfish ResetType but does not {meaning}; use {}",
                    allowed.join(" or ")
                ),
            );
        }
        if !seen.insert(v.as_str()) {
            return bad(key, format!("lists \"{v}\" twice"));
        }
    }
    Ok(values)
}

fn duration(key: &str, text: &str) -> Check<Duration> {
    humantime::parse_duration(text.trim()).or_else(|_| {
        bad(
            key,
            format!("\"{text}\" is not a duration; write e.g. \"2s\", \"500ms\" or \"1m 30s\""),
        )
    })
}

fn redfish(raw: RawRedfish) -> Check<RedfishProfile> {
    let off = reset_list(
        "redfish.off",
        raw.off,
        HARD_OFF,
        "power a node off without its operating system's help",
    )?;
    if off.is_empty() {
        return bad("redfish.off", "is empty; list at least ForceOff");
    }
    let on = reset_list("redfish.on", raw.on, POWER_ON, "power a node on")?;
    if on.is_empty() {
        return bad("redfish.on", "is empty; list at least On");
    }
    let cycle = reset_list(
        "redfish.cycle",
        raw.cycle,
        HARD_CYCLE,
        "restart a node without its operating system's help",
    )?;
    let settle = duration("redfish.settle", &raw.settle)?;
    let power_timeout = duration("redfish.power_timeout", &raw.power_timeout)?;
    if power_timeout.is_zero() || power_timeout > MAX_POWER_TIMEOUT {
        return bad(
            "redfish.power_timeout",
            format!(
                "{} is out of range; use more than 0s and at most {}",
                humantime::format_duration(power_timeout),
                humantime::format_duration(MAX_POWER_TIMEOUT)
            ),
        );
    }
    if settle > MAX_SETTLE {
        return bad(
            "redfish.settle",
            format!("is longer than {}", humantime::format_duration(MAX_SETTLE)),
        );
    }
    if settle >= power_timeout {
        return bad(
            "redfish.settle",
            "must be shorter than redfish.power_timeout (the read-back happens inside it)",
        );
    }
    Ok(RedfishProfile {
        off,
        on,
        cycle,
        sessions: raw.sessions,
        settle,
        power_timeout,
    })
}

fn ipmi(raw: RawIpmi) -> Check<IpmiProfile> {
    if raw.ciphers.is_empty() {
        return bad(
            "ipmi.ciphers",
            "is empty; list cipher suites in order of preference, e.g. [17, 3]",
        );
    }
    let mut ciphers = Vec::with_capacity(raw.ciphers.len());
    for c in raw.ciphers {
        if !(0..=17).contains(&c) {
            return bad(
                "ipmi.ciphers",
                format!("{c} is not an IPMI cipher suite id (0-17)"),
            );
        }
        if NO_INTEGRITY_SUITES.contains(&c) {
            return bad(
                "ipmi.ciphers",
                format!(
                    "cipher suite {c} has no integrity protection; a profile may not recommend it"
                ),
            );
        }
        // Range checked above, so the conversion cannot fail.
        let c = u8::try_from(c).unwrap_or(u8::MAX);
        if ciphers.contains(&c) {
            return bad("ipmi.ciphers", format!("lists {c} twice"));
        }
        ciphers.push(c);
    }
    let privilege = raw.privilege.trim().to_ascii_lowercase();
    if privilege != "operator" && privilege != "administrator" {
        return bad(
            "ipmi.privilege",
            format!(
                "\"{}\" is not usable for power control; use operator or administrator",
                raw.privilege
            ),
        );
    }
    Ok(IpmiProfile { ciphers, privilege })
}

fn quirks(raw: Vec<RawQuirk>) -> Check<Vec<Quirk>> {
    raw.into_iter()
        .enumerate()
        .map(|(i, q)| {
            let text = q.text.trim().to_string();
            if text.is_empty() {
                return bad(format!("quirk[{i}].text"), "is empty; say what the BMC does");
            }
            let source = q.source.trim().to_string();
            let is_url = ["https://", "http://"]
                .iter()
                .any(|scheme| source.starts_with(scheme) && source.len() > scheme.len());
            if !is_url {
                return bad(
                    format!("quirk[{i}].source"),
                    format!("\"{source}\" is not a URL; every quirk needs the address where it was found"),
                );
            }
            Ok(Quirk {
                text,
                source,
                verified: q.verified,
            })
        })
        .collect()
}
