//! Vendor BMC profiles: how to recognise a BMC family and how to fence it.
//!
//! One TOML file per family lives in `firmware-configs/` (format documented
//! in `firmware-configs/README.md`); all of them are embedded in the binary
//! with `include_str!` and parsed once by [`Profiles::builtin`]. Operators can
//! add or replace profiles with a directory of files in the same format
//! ([`Profiles::load_dir`]): a file with the same name replaces the builtin.
//!
//! ```text
//!  firmware-configs/*.toml --toml--> raw::RawProfile --validate--> Profile
//!  BMC documents --RedfishFacts::from_documents--> facts --match_redfish--> &Profile
//!  IPMI Get Device ID manufacturer id ----------------------match_ipmi----> &Profile
//! ```
//!
//! Who calls it: the Redfish and IPMI power adapters (which reset types to
//! try, sessions, settle times, cipher suites) and `ironfence probe`.
//! This module is a leaf: it does no I/O besides reading an override
//! directory, prints nothing, and never decides whether a fence succeeded —
//! a profile only orders the attempts; success is still a power read-back.

mod matching;
mod raw;
mod validate;

pub use matching::{MatchField, MatchRules, Pattern, RedfishFacts};

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

/// Name of the profile [`Profiles::match_redfish`] falls back to.
pub const GENERIC_REDFISH: &str = "generic-redfish";
/// Name of the profile [`Profiles::match_ipmi`] falls back to.
pub const GENERIC_IPMI: &str = "generic-ipmi";

/// Every DMTF `ResetType` value (Resource schema, including `FullPowerCycle`
/// from Redfish 2024.4). Case-sensitive, as on the wire.
pub const RESET_TYPES: &[&str] = &[
    "On",
    "ForceOff",
    "GracefulShutdown",
    "GracefulRestart",
    "ForceRestart",
    "Nmi",
    "ForceOn",
    "PushPowerButton",
    "PowerCycle",
    "Suspend",
    "Pause",
    "Resume",
    "FullPowerCycle",
];

/// The embedded profiles: (name, file text). A test checks that this list and
/// the files in `firmware-configs/` are the same set.
const BUILTIN: &[(&str, &str)] = &[
    (
        "dell-idrac9",
        include_str!("../../firmware-configs/dell-idrac9.toml"),
    ),
    (
        "hpe-ilo5",
        include_str!("../../firmware-configs/hpe-ilo5.toml"),
    ),
    (
        "hpe-ilo6",
        include_str!("../../firmware-configs/hpe-ilo6.toml"),
    ),
    (
        "supermicro-x11-x13",
        include_str!("../../firmware-configs/supermicro-x11-x13.toml"),
    ),
    (
        "lenovo-xcc",
        include_str!("../../firmware-configs/lenovo-xcc.toml"),
    ),
    (
        "openbmc",
        include_str!("../../firmware-configs/openbmc.toml"),
    ),
    (
        GENERIC_REDFISH,
        include_str!("../../firmware-configs/generic-redfish.toml"),
    ),
    (
        GENERIC_IPMI,
        include_str!("../../firmware-configs/generic-ipmi.toml"),
    ),
];

/// A profile file could not be used. Each message names the file, the key
/// at fault where there is one, and what to change.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The override directory could not be listed.
    #[error("cannot list profile directory {dir}: {source}; check the path and its permissions")]
    ReadDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    /// A profile file could not be read.
    #[error("cannot read profile {file}: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    /// The file is not valid TOML, has an unknown key, or a value of the
    /// wrong type; the message shows the key and line.
    #[error("profile {file} does not parse: {message}")]
    Syntax { file: PathBuf, message: String },
    /// A value is well-formed but not acceptable.
    #[error("profile {file}: `{key}` {problem}")]
    Invalid {
        file: PathBuf,
        key: String,
        problem: String,
    },
}

/// One BMC family.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// File stem, e.g. `dell-idrac9`.
    pub name: String,
    /// Human name, e.g. `Dell iDRAC 9`.
    pub family: String,
    /// How to recognise the family.
    pub matcher: MatchRules,
    pub redfish: RedfishProfile,
    pub ipmi: IpmiProfile,
    /// Known behaviours, each with the address where it was found.
    pub quirks: Vec<Quirk>,
}

/// What a power action needs from the Redfish reset types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetAction {
    Off,
    On,
    Cycle,
}

/// How to drive a family's Redfish service.
#[derive(Debug, Clone, PartialEq)]
pub struct RedfishProfile {
    /// Reset types for a hard power off, in order of preference.
    pub off: Vec<String>,
    /// Reset types for power on, in order of preference.
    pub on: Vec<String>,
    /// Reset types for a hard restart, in order of preference (may be empty:
    /// then off + on).
    pub cycle: Vec<String>,
    /// Log in through SessionService (and log out afterwards) instead of
    /// sending Basic credentials with every request.
    pub sessions: bool,
    /// Wait after an accepted reset before the first power read-back.
    pub settle: Duration,
    /// Typical time to reach the new power state; bound of the read-back loop.
    pub power_timeout: Duration,
}

impl RedfishProfile {
    /// The reset types for `action`, in order of preference.
    pub fn candidates(&self, action: ResetAction) -> &[String] {
        match action {
            ResetAction::Off => &self.off,
            ResetAction::On => &self.on,
            ResetAction::Cycle => &self.cycle,
        }
    }

    /// The first reset type for `action` that the service advertises.
    /// `allowable` is `ResetType@Redfish.AllowableValues` (or the
    /// `ResetActionInfo` list); `None` when the service published none, and
    /// then the profile's first choice is used.
    pub fn choose<'a>(
        &'a self,
        action: ResetAction,
        allowable: Option<&[String]>,
    ) -> Option<&'a str> {
        let candidates = self.candidates(action);
        match allowable {
            None => candidates.first().map(String::as_str),
            Some(allowed) => candidates
                .iter()
                .find(|c| allowed.iter().any(|a| a == *c))
                .map(String::as_str),
        }
    }
}

/// How to open an IPMI session to the family's BMC.
#[derive(Debug, Clone, PartialEq)]
pub struct IpmiProfile {
    /// RMCP+ cipher suite ids, in order of preference.
    pub ciphers: Vec<u8>,
    /// `operator` or `administrator`.
    pub privilege: String,
}

/// A known behaviour of the family.
#[derive(Debug, Clone, PartialEq)]
pub struct Quirk {
    pub text: String,
    /// Where it was found (URL).
    pub source: String,
    /// `false` when the source is indirect or the behaviour was not confirmed.
    pub verified: bool,
}

impl Profile {
    /// Parse and validate one profile. `name` is the file stem, `file` is
    /// used only in error messages.
    pub fn parse(name: &str, text: &str, file: &Path) -> Result<Profile, ProfileError> {
        let raw: raw::RawProfile = toml::from_str(text).map_err(|e| ProfileError::Syntax {
            file: file.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        validate::profile(name, raw, file)
    }

    /// Read and validate one profile file; its name is the file stem.
    pub fn load(file: &Path) -> Result<Profile, ProfileError> {
        let text = std::fs::read_to_string(file).map_err(|source| ProfileError::Read {
            file: file.to_path_buf(),
            source,
        })?;
        let name = file
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        Profile::parse(&name, &text, file)
    }
}

/// The outcome of matching Redfish facts, for `ironfence probe`.
#[derive(Debug, Clone, PartialEq)]
pub struct RedfishMatch<'a> {
    pub profile: &'a Profile,
    /// The fields that matched; empty for the fallback.
    pub matched: Vec<MatchField>,
    /// No profile claimed the facts; `profile` is the generic one.
    pub fallback: bool,
}

/// A set of profiles, sorted by name, always containing
/// [`GENERIC_REDFISH`] and [`GENERIC_IPMI`].
#[derive(Debug, Clone)]
pub struct Profiles {
    profiles: Vec<Profile>,
}

impl Profiles {
    /// Every embedded profile, parsed once per process. Never fails: a profile that does
    /// not validate (which the test suite rules out) is skipped with a
    /// warning, and the generic profiles are guaranteed to be present.
    pub fn builtin() -> Profiles {
        static PARSED: OnceLock<Profiles> = OnceLock::new();
        PARSED
            .get_or_init(|| {
                let mut profiles = Vec::with_capacity(BUILTIN.len());
                for (name, text) in BUILTIN {
                    match Profile::parse(name, text, &builtin_path(name)) {
                        Ok(p) => profiles.push(p),
                        Err(err) => {
                            tracing::warn!(profile = %name, cause = %err, "skipping broken embedded profile")
                        }
                    }
                }
                Profiles::from_vec(profiles)
            })
            .clone()
    }

    /// Every embedded profile, failing on the first that does not validate.
    /// For tests and `ironfence config check`.
    pub fn builtin_strict() -> Result<Profiles, ProfileError> {
        let profiles = BUILTIN
            .iter()
            .map(|(name, text)| Profile::parse(name, text, &builtin_path(name)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Profiles::from_vec(profiles))
    }

    /// Names of the embedded profiles.
    pub fn builtin_names() -> impl Iterator<Item = &'static str> {
        BUILTIN.iter().map(|(name, _)| *name)
    }

    /// The builtin profiles plus every `*.toml` file of `dir` (not
    /// recursive); a file whose stem equals a builtin name replaces it. Any
    /// file that does not validate is an error naming the file and key.
    pub fn load_dir(dir: &Path) -> Result<Profiles, ProfileError> {
        let read_dir = |source| ProfileError::ReadDir {
            dir: dir.to_path_buf(),
            source,
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(read_dir)? {
            let path = entry.map_err(read_dir)?.path();
            if path.extension().is_some_and(|e| e == "toml") && path.is_file() {
                files.push(path);
            }
        }
        files.sort();
        let overrides = files
            .iter()
            .map(|f| Profile::load(f))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Profiles::builtin().with_overrides(overrides))
    }

    /// These profiles with `overrides` added; an override replaces the
    /// profile of the same name.
    pub fn with_overrides(self, overrides: Vec<Profile>) -> Profiles {
        let mut profiles = self.profiles;
        for o in overrides {
            match profiles.iter_mut().find(|p| p.name == o.name) {
                Some(slot) => *slot = o,
                None => profiles.push(o),
            }
        }
        Profiles::from_vec(profiles)
    }

    fn from_vec(mut profiles: Vec<Profile>) -> Profiles {
        for (name, fallback) in [
            (GENERIC_REDFISH, "Generic Redfish"),
            (GENERIC_IPMI, "Generic IPMI"),
        ] {
            if !profiles.iter().any(|p| p.name == name) {
                profiles.push(last_resort(name, fallback));
            }
        }
        profiles.sort_by(|a, b| a.name.cmp(&b.name));
        Profiles { profiles }
    }

    /// Every profile, sorted by name.
    pub fn all(&self) -> &[Profile] {
        &self.profiles
    }

    pub fn by_name(&self, name: &str) -> Option<&Profile> {
        self.profiles.iter().find(|p| p.name == name)
    }

    /// The profile that best matches `facts`, else [`GENERIC_REDFISH`].
    pub fn match_redfish(&self, facts: &RedfishFacts) -> &Profile {
        self.explain_redfish(facts).profile
    }

    /// Like [`Profiles::match_redfish`], also saying which fields matched.
    pub fn explain_redfish(&self, facts: &RedfishFacts) -> RedfishMatch<'_> {
        let mut best: Option<(&Profile, Vec<MatchField>)> = None;
        for p in &self.profiles {
            let Some(matched) = p.matcher.evaluate(facts) else {
                continue;
            };
            let better = match &best {
                None => true,
                Some((_, b)) => matching::rank(&matched) > matching::rank(b),
            };
            if better {
                best = Some((p, matched));
            }
        }
        match best {
            Some((profile, matched)) => RedfishMatch {
                profile,
                matched,
                fallback: false,
            },
            None => RedfishMatch {
                profile: self.generic(GENERIC_REDFISH),
                matched: Vec::new(),
                fallback: true,
            },
        }
    }

    /// The first profile (by name) that lists `manufacturer_id`, else
    /// [`GENERIC_IPMI`]. HPE iLO 5 and 6 share id 11 and carry the same IPMI
    /// settings, so the choice between them does not matter.
    pub fn match_ipmi(&self, manufacturer_id: u32) -> &Profile {
        self.profiles
            .iter()
            .find(|p| p.matcher.ipmi_manufacturer_id.contains(&manufacturer_id))
            .unwrap_or_else(|| self.generic(GENERIC_IPMI))
    }

    fn generic(&self, name: &str) -> &Profile {
        // from_vec guarantees both generic profiles exist; the fallback to
        // the first profile is unreachable but keeps this panic-free.
        self.by_name(name).unwrap_or(&self.profiles[0])
    }
}

fn builtin_path(name: &str) -> PathBuf {
    PathBuf::from(format!("firmware-configs/{name}.toml"))
}

/// The generic profile used if its file is missing or broken: the most
/// conservative settings, no rules, no quirks.
fn last_resort(name: &str, family: &str) -> Profile {
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
    Profile {
        name: name.to_string(),
        family: family.to_string(),
        matcher: MatchRules::default(),
        redfish: RedfishProfile {
            off: strings(&["ForceOff"]),
            on: strings(&["On"]),
            cycle: strings(&["ForceRestart"]),
            sessions: false,
            settle: Duration::from_secs(2),
            power_timeout: Duration::from_secs(60),
        },
        ipmi: IpmiProfile {
            ciphers: vec![17, 3],
            privilege: "operator".to_string(),
        },
        quirks: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
family = "Test BMC"
[match]
manager_model = ["^Test$"]
ipmi_manufacturer_id = [4242]
[redfish]
off = ["ForceOff"]
on = ["On"]
cycle = []
sessions = false
settle = "1s"
power_timeout = "30s"
[ipmi]
ciphers = [17]
privilege = "administrator"
"#;

    fn parse(text: &str) -> Result<Profile, ProfileError> {
        Profile::parse("test-bmc", text, Path::new("dir/test-bmc.toml"))
    }

    fn invalid_key(text: &str) -> String {
        match parse(text) {
            Err(ProfileError::Invalid { key, .. }) => key,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn minimal_profile_parses() {
        let p = parse(MINIMAL).unwrap();
        assert_eq!(p.name, "test-bmc");
        assert_eq!(p.redfish.settle, Duration::from_secs(1));
        assert_eq!(p.ipmi.ciphers, vec![17]);
        assert!(p.quirks.is_empty());
        assert!(p.redfish.cycle.is_empty());
    }

    #[test]
    fn reset_types_are_checked_for_spelling_and_meaning() {
        let t = MINIMAL.replace(r#"off = ["ForceOff"]"#, r#"off = ["forceoff"]"#);
        assert_eq!(invalid_key(&t), "redfish.off");
        let t = MINIMAL.replace(r#"off = ["ForceOff"]"#, r#"off = ["GracefulShutdown"]"#);
        let err = parse(&t).unwrap_err().to_string();
        assert!(err.contains("without its operating system"), "{err}");
        let t = MINIMAL.replace(r#"on = ["On"]"#, r#"on = ["On", "On"]"#);
        assert_eq!(invalid_key(&t), "redfish.on");
        let t = MINIMAL.replace("cycle = []", r#"cycle = ["GracefulRestart"]"#);
        assert_eq!(invalid_key(&t), "redfish.cycle");
        let t = MINIMAL.replace(r#"off = ["ForceOff"]"#, "off = []");
        assert_eq!(invalid_key(&t), "redfish.off");
    }

    #[test]
    fn durations_and_their_relation_are_checked() {
        let t = MINIMAL.replace(r#"settle = "1s""#, r#"settle = "soon""#);
        assert_eq!(invalid_key(&t), "redfish.settle");
        let t = MINIMAL.replace(r#"settle = "1s""#, r#"settle = "45s""#);
        assert_eq!(invalid_key(&t), "redfish.settle");
        let t = MINIMAL.replace(r#"power_timeout = "30s""#, r#"power_timeout = "0s""#);
        assert_eq!(invalid_key(&t), "redfish.power_timeout");
    }

    #[test]
    fn ciphers_and_privilege_are_checked() {
        for bad in ["[18]", "[-1]", "[0]", "[15]", "[3, 3]", "[]"] {
            let t = MINIMAL.replace("ciphers = [17]", &format!("ciphers = {bad}"));
            assert_eq!(invalid_key(&t), "ipmi.ciphers", "{bad}");
        }
        let t = MINIMAL.replace(r#"privilege = "administrator""#, r#"privilege = "user""#);
        assert_eq!(invalid_key(&t), "ipmi.privilege");
    }

    #[test]
    fn match_rules_are_checked() {
        let t = MINIMAL.replace(r#"["^Test$"]"#, r#"["(unclosed"]"#);
        assert_eq!(invalid_key(&t), "match.manager_model");
        let t = MINIMAL.replace(r#"["^Test$"]"#, r#"[""]"#);
        assert_eq!(invalid_key(&t), "match.manager_model");
        let t = MINIMAL.replace("[4242]", "[16777216]");
        assert_eq!(invalid_key(&t), "match.ipmi_manufacturer_id");
        let t = MINIMAL.replace("[4242]", "[4242]\nrequire = [\"model\"]");
        assert_eq!(invalid_key(&t), "match.require");
        let t = MINIMAL.replace("[4242]", "[4242]\nrequire = [\"colour\"]");
        assert_eq!(invalid_key(&t), "match.require");
    }

    #[test]
    fn quirks_need_text_and_a_url() {
        let t = format!("{MINIMAL}\n[[quirk]]\ntext = \"x\"\nsource = \"a forum post\"\n");
        assert_eq!(invalid_key(&t), "quirk[0].source");
        let t = format!("{MINIMAL}\n[[quirk]]\ntext = \" \"\nsource = \"https://example.org/x\"\n");
        assert_eq!(invalid_key(&t), "quirk[0].text");
        let t = format!(
            "{MINIMAL}\n[[quirk]]\ntext = \"x\"\nsource = \"https://example.org/x\"\nverified = false\n"
        );
        assert!(!parse(&t).unwrap().quirks[0].verified);
    }

    #[test]
    fn unknown_keys_and_bad_names_are_rejected() {
        let t = MINIMAL.replace("sessions = false", "sessions = false\nsesions = true");
        let err = parse(&t).unwrap_err();
        assert!(matches!(err, ProfileError::Syntax { .. }), "{err:?}");
        assert!(err.to_string().contains("sesions"), "{err}");
        assert!(err.to_string().contains("dir/test-bmc.toml"), "{err}");
        let err = Profile::parse("Bad Name", MINIMAL, Path::new("Bad Name.toml")).unwrap_err();
        assert!(matches!(err, ProfileError::Invalid { ref key, .. } if key == "(file name)"));
    }

    #[test]
    fn choose_intersects_with_allowable_values() {
        let p = Profiles::builtin();
        let dell = p.by_name("dell-idrac9").unwrap();
        let old_idrac: Vec<String> = ["On", "ForceOff", "ForceRestart", "GracefulShutdown"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            dell.redfish.choose(ResetAction::Cycle, Some(&old_idrac)),
            Some("ForceRestart")
        );
        assert_eq!(
            dell.redfish.choose(ResetAction::Cycle, None),
            Some("PowerCycle")
        );
        assert_eq!(dell.redfish.choose(ResetAction::Off, Some(&[])), None);
    }

    #[test]
    fn generic_profiles_survive_even_if_missing() {
        let p = Profiles::from_vec(Vec::new());
        assert_eq!(p.all().len(), 2);
        let facts = RedfishFacts::default();
        assert_eq!(p.match_redfish(&facts).name, GENERIC_REDFISH);
        assert_eq!(p.match_ipmi(674).name, GENERIC_IPMI);
    }

    #[test]
    fn builtin_is_strictly_valid_and_sorted() {
        let strict = Profiles::builtin_strict().unwrap();
        let lenient = Profiles::builtin();
        assert_eq!(strict.all(), lenient.all());
        let names: Vec<_> = strict.all().iter().map(|p| p.name.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        assert_eq!(names.len(), BUILTIN.len());
    }

    #[test]
    fn tie_breaks_prefer_bmc_facts_then_name() {
        let p = Profiles::builtin();
        // A Supermicro board running OpenBMC: manufacturer says Supermicro,
        // the Manager says OpenBmc; the BMC firmware decides.
        let facts = RedfishFacts {
            manufacturer: Some("Supermicro".into()),
            manager_model: Some("OpenBmc".into()),
            ..Default::default()
        };
        assert_eq!(p.match_redfish(&facts).name, "openbmc");
    }
}
