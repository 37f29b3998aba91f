//! Recognising a BMC: the facts read from it ([`RedfishFacts`]), a profile's
//! `[match]` rules ([`MatchRules`]) and how the two are scored.
//!
//! ```text
//!  for each profile field with patterns, if the BMC reported that fact:
//!      some pattern matches  -> +1 (the field is "matched")
//!      no pattern matches    -> the profile is ruled out
//!  fact not reported         -> neither (no evidence either way)
//!  candidate  = at least one matched field and every `require`d field matched
//!  best       = most matched fields; tie -> more fields that describe the BMC
//!               itself (ServiceRoot, Manager) than the server; tie -> name order
//!  no candidate -> the generic profile
//! ```
//!
//! Pure functions over strings: no I/O, nothing printed.

use regex::{Regex, RegexBuilder};
use serde_json::Value;
use std::fmt;

/// What a Redfish service says about itself and its server, read once during
/// discovery. Empty or whitespace-only strings count as "not reported".
#[derive(Debug, Clone, Default)]
pub struct RedfishFacts {
    /// `ServiceRoot.Vendor` (ServiceRoot v1.5+).
    pub vendor: Option<String>,
    /// `ServiceRoot.Product`.
    pub product: Option<String>,
    /// `ComputerSystem.Manufacturer`.
    pub manufacturer: Option<String>,
    /// `ComputerSystem.Model`.
    pub model: Option<String>,
    /// `Manager.Model`.
    pub manager_model: Option<String>,
    /// `Manager.FirmwareVersion`.
    pub manager_firmware: Option<String>,
}

impl RedfishFacts {
    /// Read the facts from the JSON bodies of `/redfish/v1`, one
    /// `ComputerSystem` and one `Manager` (either may be missing). Properties
    /// that are absent, null, not strings or blank are left as `None`.
    pub fn from_documents(
        service_root: &Value,
        system: Option<&Value>,
        manager: Option<&Value>,
    ) -> RedfishFacts {
        fn text(doc: Option<&Value>, key: &str) -> Option<String> {
            let s = doc?.get(key)?.as_str()?.trim();
            (!s.is_empty()).then(|| s.to_string())
        }
        RedfishFacts {
            vendor: text(Some(service_root), "Vendor"),
            product: text(Some(service_root), "Product"),
            manufacturer: text(system, "Manufacturer"),
            model: text(system, "Model"),
            manager_model: text(manager, "Model"),
            manager_firmware: text(manager, "FirmwareVersion"),
        }
    }

    fn get(&self, field: MatchField) -> Option<&str> {
        let value = match field {
            MatchField::RedfishVendor => &self.vendor,
            MatchField::RedfishProduct => &self.product,
            MatchField::Manufacturer => &self.manufacturer,
            MatchField::Model => &self.model,
            MatchField::ManagerModel => &self.manager_model,
            MatchField::ManagerFirmware => &self.manager_firmware,
        };
        value.as_deref().map(str::trim).filter(|s| !s.is_empty())
    }
}

/// A Redfish fact a profile can match on; its [`MatchField::key`] is the key
/// in the `[match]` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchField {
    RedfishVendor,
    RedfishProduct,
    Manufacturer,
    Model,
    ManagerModel,
    ManagerFirmware,
}

impl MatchField {
    /// Every field, in the order the README documents them.
    pub const ALL: [MatchField; 6] = [
        MatchField::RedfishVendor,
        MatchField::RedfishProduct,
        MatchField::Manufacturer,
        MatchField::Model,
        MatchField::ManagerModel,
        MatchField::ManagerFirmware,
    ];

    /// The `[match]` key, e.g. `manager_model`.
    pub fn key(self) -> &'static str {
        match self {
            MatchField::RedfishVendor => "redfish_vendor",
            MatchField::RedfishProduct => "redfish_product",
            MatchField::Manufacturer => "manufacturer",
            MatchField::Model => "model",
            MatchField::ManagerModel => "manager_model",
            MatchField::ManagerFirmware => "manager_firmware",
        }
    }

    /// The field a `[match]` key names.
    pub fn from_key(key: &str) -> Option<MatchField> {
        MatchField::ALL.into_iter().find(|f| f.key() == key)
    }

    /// Whether the fact describes the BMC firmware (ServiceRoot, Manager)
    /// rather than the server it manages. Breaks ties: the BMC decides which
    /// reset types work, not the chassis vendor.
    fn describes_bmc(self) -> bool {
        !matches!(self, MatchField::Manufacturer | MatchField::Model)
    }
}

impl fmt::Display for MatchField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// A case-insensitive, unanchored regular expression from a `[match]` list:
/// a plain word matches as a substring, `^...$` pins the whole value.
#[derive(Debug, Clone)]
pub struct Pattern {
    source: String,
    regex: Regex,
}

impl Pattern {
    /// Compile `source` case-insensitively.
    pub fn new(source: &str) -> Result<Pattern, regex::Error> {
        let regex = RegexBuilder::new(source).case_insensitive(true).build()?;
        Ok(Pattern {
            source: source.to_string(),
            regex,
        })
    }

    /// The pattern as written in the profile.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    pub fn is_match(&self, value: &str) -> bool {
        self.regex.is_match(value)
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Pattern) -> bool {
        self.source == other.source
    }
}

/// A profile's validated `[match]` table.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MatchRules {
    pub redfish_vendor: Vec<Pattern>,
    pub redfish_product: Vec<Pattern>,
    pub manufacturer: Vec<Pattern>,
    pub model: Vec<Pattern>,
    pub manager_model: Vec<Pattern>,
    pub manager_firmware: Vec<Pattern>,
    /// IPMI Get Device ID manufacturer ids (IANA enterprise numbers).
    pub ipmi_manufacturer_id: Vec<u32>,
    /// Fields that must be reported and match for the profile to be chosen.
    pub require: Vec<MatchField>,
}

impl MatchRules {
    /// The patterns of one field (empty: the field is not used).
    pub fn patterns(&self, field: MatchField) -> &[Pattern] {
        match field {
            MatchField::RedfishVendor => &self.redfish_vendor,
            MatchField::RedfishProduct => &self.redfish_product,
            MatchField::Manufacturer => &self.manufacturer,
            MatchField::Model => &self.model,
            MatchField::ManagerModel => &self.manager_model,
            MatchField::ManagerFirmware => &self.manager_firmware,
        }
    }

    pub(super) fn patterns_mut(&mut self, field: MatchField) -> &mut Vec<Pattern> {
        match field {
            MatchField::RedfishVendor => &mut self.redfish_vendor,
            MatchField::RedfishProduct => &mut self.redfish_product,
            MatchField::Manufacturer => &mut self.manufacturer,
            MatchField::Model => &mut self.model,
            MatchField::ManagerModel => &mut self.manager_model,
            MatchField::ManagerFirmware => &mut self.manager_firmware,
        }
    }

    /// Whether the profile has any Redfish rule at all.
    pub fn has_redfish_rules(&self) -> bool {
        MatchField::ALL
            .into_iter()
            .any(|f| !self.patterns(f).is_empty())
    }

    /// The fields that matched, or `None` when the profile is not a
    /// candidate for these facts (a contradiction, a missing required field,
    /// or no evidence at all).
    pub fn evaluate(&self, facts: &RedfishFacts) -> Option<Vec<MatchField>> {
        let mut matched = Vec::new();
        for field in MatchField::ALL {
            let patterns = self.patterns(field);
            if patterns.is_empty() {
                continue;
            }
            let Some(value) = facts.get(field) else {
                continue;
            };
            if patterns.iter().any(|p| p.is_match(value)) {
                matched.push(field);
            } else {
                return None;
            }
        }
        let required_ok = self.require.iter().all(|f| matched.contains(f));
        (!matched.is_empty() && required_ok).then_some(matched)
    }
}

/// Ranking key of a candidate: more matched fields first, then more fields
/// that describe the BMC itself.
pub(super) fn rank(matched: &[MatchField]) -> (usize, usize) {
    let bmc = matched.iter().filter(|f| f.describes_bmc()).count();
    (matched.len(), bmc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules(field: MatchField, pats: &[&str]) -> MatchRules {
        let mut r = MatchRules::default();
        *r.patterns_mut(field) = pats.iter().map(|p| Pattern::new(p).unwrap()).collect();
        r
    }

    #[test]
    fn patterns_are_case_insensitive_substrings_unless_anchored() {
        let p = Pattern::new("xclarity").unwrap();
        assert!(p.is_match("Lenovo XClarity Controller"));
        let anchored = Pattern::new("^iLO 5$").unwrap();
        assert!(anchored.is_match("ilo 5"));
        assert!(!anchored.is_match("iLO 50"));
    }

    #[test]
    fn absent_fact_is_no_evidence_and_contradiction_rules_out() {
        let mut r = rules(MatchField::RedfishVendor, &["^Dell$"]);
        *r.patterns_mut(MatchField::ManagerModel) = vec![Pattern::new("^1[456]G ").unwrap()];
        let mut facts = RedfishFacts {
            vendor: Some("Dell".into()),
            ..Default::default()
        };
        assert_eq!(r.evaluate(&facts), Some(vec![MatchField::RedfishVendor]));
        facts.manager_model = Some("17G Monolithic".into());
        assert_eq!(r.evaluate(&facts), None);
        facts.manager_model = Some("   ".into());
        assert_eq!(r.evaluate(&facts), Some(vec![MatchField::RedfishVendor]));
    }

    #[test]
    fn required_field_must_be_reported_and_match() {
        let mut r = rules(MatchField::Manufacturer, &["^HPE$"]);
        *r.patterns_mut(MatchField::ManagerModel) = vec![Pattern::new("^iLO 5$").unwrap()];
        r.require = vec![MatchField::ManagerModel];
        let facts = RedfishFacts {
            manufacturer: Some("HPE".into()),
            ..Default::default()
        };
        assert_eq!(r.evaluate(&facts), None);
    }

    #[test]
    fn no_rules_match_nothing() {
        let facts = RedfishFacts {
            vendor: Some("Anyone".into()),
            ..Default::default()
        };
        assert_eq!(MatchRules::default().evaluate(&facts), None);
    }

    #[test]
    fn facts_from_documents_skip_blank_and_non_string() {
        let root = json!({"Vendor": "HPE", "Product": ""});
        let system = json!({"Manufacturer": null, "Model": 7});
        let manager = json!({"Model": " iLO 6 ", "FirmwareVersion": "iLO 6 v1.66"});
        let f = RedfishFacts::from_documents(&root, Some(&system), Some(&manager));
        assert_eq!(f.vendor.as_deref(), Some("HPE"));
        assert_eq!(f.product, None);
        assert_eq!(f.manufacturer, None);
        assert_eq!(f.model, None);
        assert_eq!(f.manager_model.as_deref(), Some("iLO 6"));
        assert_eq!(f.manager_firmware.as_deref(), Some("iLO 6 v1.66"));
    }

    #[test]
    fn rank_prefers_bmc_side_fields_on_equal_counts() {
        assert!(rank(&[MatchField::ManagerModel]) > rank(&[MatchField::Manufacturer]));
        assert!(
            rank(&[MatchField::Manufacturer, MatchField::Model])
                > rank(&[MatchField::ManagerModel])
        );
    }
}
