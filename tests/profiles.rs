//! Vendor profiles (`firmware-configs/`) against recorded BMC documents
//! (`tests/data/redfish/`, provenance in its README.md).
//!
//! Every profile file must parse and validate, every file must be embedded,
//! and each recorded document set must select the profile its README names.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use ironfence::profiles::{
    MatchField, Profile, ProfileError, Profiles, RedfishFacts, ResetAction, GENERIC_IPMI,
    GENERIC_REDFISH, RESET_TYPES,
};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn profile_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo("firmware-configs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

fn read_json(path: &Path) -> Option<Value> {
    let text = std::fs::read_to_string(path).ok()?;
    Some(serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

fn recorded_facts(set: &str) -> RedfishFacts {
    let dir = repo("tests/data/redfish").join(set);
    // Not every source recorded the service root; then only the system and
    // manager speak.
    let root = read_json(&dir.join("service_root.json")).unwrap_or(Value::Null);
    let system = read_json(&dir.join("system.json"));
    let manager = read_json(&dir.join("manager.json"));
    RedfishFacts::from_documents(&root, system.as_ref(), manager.as_ref())
}

/// Recorded set -> profile it must select.
const RECORDED: &[(&str, &str)] = &[
    ("dell-idrac9-r750", "dell-idrac9"),
    ("dell-idrac9-r6515-no-manager", "dell-idrac9"),
    ("hpe-ilo5-dl360-gen10plus", "hpe-ilo5"),
    ("hpe-ilo5-dl325-gen10plus", "hpe-ilo5"),
    ("hpe-ilo6-dl380a-gen11", "hpe-ilo6"),
    ("hpe-ilo7-dl360-gen12", GENERIC_REDFISH),
    ("hpe-cray-ex235a", GENERIC_REDFISH),
    ("supermicro-x12-sys510t", "supermicro-x11-x13"),
    ("supermicro-redfish-1.9-no-vendor", "supermicro-x11-x13"),
    ("supermicro-x13-sys821ge", "supermicro-x11-x13"),
    ("lenovo-xcc-sr670v2", "lenovo-xcc"),
    ("lenovo-xcc-sr650-no-manager-model", "lenovo-xcc"),
    ("openbmc-bluefield-dpu", "openbmc"),
    ("generic-contoso-sushy", GENERIC_REDFISH),
];

#[test]
fn every_profile_file_parses_and_validates() {
    let files = profile_files();
    assert!(
        files.len() >= 8,
        "expected the 8 shipped profiles, found {files:?}"
    );
    for f in &files {
        let p = Profile::load(f).unwrap_or_else(|e| panic!("{e}"));
        assert!(!p.family.is_empty());
        for q in &p.quirks {
            assert!(q.source.starts_with("https://"), "{}: {}", p.name, q.source);
        }
        for t in p
            .redfish
            .off
            .iter()
            .chain(&p.redfish.on)
            .chain(&p.redfish.cycle)
        {
            assert!(RESET_TYPES.contains(&t.as_str()));
        }
    }
}

#[test]
fn every_file_is_embedded_and_every_embedded_profile_has_a_file() {
    let on_disk: BTreeSet<String> = profile_files()
        .iter()
        .map(|f| f.file_stem().unwrap().to_str().unwrap().to_string())
        .collect();
    let embedded: BTreeSet<String> = Profiles::builtin_names().map(str::to_string).collect();
    assert_eq!(on_disk, embedded, "update BUILTIN in src/profiles/mod.rs");
    // And what is embedded is what is on disk.
    let builtin = Profiles::builtin_strict().unwrap();
    for f in profile_files() {
        let from_disk = Profile::load(&f).unwrap();
        assert_eq!(builtin.by_name(&from_disk.name), Some(&from_disk));
    }
}

#[test]
fn every_recorded_document_set_is_listed_and_selects_its_profile() {
    let profiles = Profiles::builtin();
    let mut on_disk: BTreeSet<String> = BTreeSet::new();
    for e in std::fs::read_dir(repo("tests/data/redfish")).unwrap() {
        let path = e.unwrap().path();
        if path.is_dir() {
            on_disk.insert(path.file_name().unwrap().to_str().unwrap().to_string());
        }
    }
    let listed: BTreeSet<String> = RECORDED.iter().map(|(s, _)| s.to_string()).collect();
    assert_eq!(
        on_disk, listed,
        "every recorded set needs an expectation here"
    );
    for (set, expected) in RECORDED {
        let facts = recorded_facts(set);
        let m = profiles.explain_redfish(&facts);
        assert_eq!(
            m.profile.name, *expected,
            "{set}: {facts:?} matched {:?}",
            m.matched
        );
        assert_eq!(m.fallback, *expected == GENERIC_REDFISH, "{set}");
    }
}

#[test]
fn ilo5_and_ilo6_are_told_apart_by_the_manager() {
    let profiles = Profiles::builtin();
    let m = profiles.explain_redfish(&recorded_facts("hpe-ilo6-dl380a-gen11"));
    assert_eq!(m.profile.name, "hpe-ilo6");
    assert!(m.matched.contains(&MatchField::ManagerModel));
    assert!(m.matched.contains(&MatchField::ManagerFirmware));
    // Without a Manager, HPE facts alone select no iLO profile.
    let mut facts = recorded_facts("hpe-ilo5-dl360-gen10plus");
    facts.manager_model = None;
    facts.manager_firmware = None;
    assert_eq!(profiles.match_redfish(&facts).name, GENERIC_REDFISH);
}

#[test]
fn unknown_vendor_falls_back_to_generic_redfish() {
    let profiles = Profiles::builtin();
    let facts = RedfishFacts {
        vendor: Some("Acme BMC Works".into()),
        manufacturer: Some("Acme".into()),
        model: Some("Roadrunner 9000".into()),
        manager_model: Some("AcmeBMC".into()),
        ..Default::default()
    };
    let m = profiles.explain_redfish(&facts);
    assert!(m.fallback);
    assert_eq!(m.profile.name, GENERIC_REDFISH);
    assert_eq!(
        profiles.match_redfish(&RedfishFacts::default()).name,
        GENERIC_REDFISH
    );
}

#[test]
fn idrac_generation_outside_9_is_not_idrac9() {
    // Synthetic facts: a 17G manager (iDRAC 10) behind a Dell service root.
    let profiles = Profiles::builtin();
    let mut facts = recorded_facts("dell-idrac9-r750");
    facts.manager_model = Some("17G Monolithic".into());
    assert_eq!(profiles.match_redfish(&facts).name, GENERIC_REDFISH);
    facts.manager_model = Some("16G Monolithic".into());
    assert_eq!(profiles.match_redfish(&facts).name, "dell-idrac9");
}

#[test]
fn ipmi_manufacturer_ids_select_the_right_profile() {
    let profiles = Profiles::builtin();
    for (id, expected) in [
        (674, "dell-idrac9"),
        (11, "hpe-ilo5"),
        (10876, "supermicro-x11-x13"),
        (47488, "supermicro-x11-x13"),
        (19046, "lenovo-xcc"),
        (20301, "lenovo-xcc"),
        (343, GENERIC_IPMI),
        (0, GENERIC_IPMI),
    ] {
        assert_eq!(
            profiles.match_ipmi(id).name,
            expected,
            "manufacturer id {id}"
        );
    }
    // iLO 5 and 6 share id 11: their IPMI settings must not differ.
    assert_eq!(
        profiles.by_name("hpe-ilo5").unwrap().ipmi,
        profiles.by_name("hpe-ilo6").unwrap().ipmi
    );
}

#[test]
fn reset_choices_follow_what_the_recorded_bmcs_advertise() {
    let profiles = Profiles::builtin();
    // (recorded set, action, the reset type the profile must pick)
    let cases = [
        (
            "hpe-ilo5-dl360-gen10plus",
            ResetAction::Cycle,
            Some("ForceRestart"),
        ),
        (
            "hpe-ilo5-dl360-gen10plus",
            ResetAction::Off,
            Some("ForceOff"),
        ),
        ("dell-idrac9-r750", ResetAction::Cycle, Some("PowerCycle")),
        ("lenovo-xcc-sr670v2", ResetAction::On, Some("On")),
        (
            "supermicro-x13-sys821ge",
            ResetAction::Cycle,
            Some("PowerCycle"),
        ),
        ("openbmc-bluefield-dpu", ResetAction::Off, Some("ForceOff")),
    ];
    for (set, action, expected) in cases {
        let dir = repo("tests/data/redfish").join(set);
        let allowable = allowable_values(&dir);
        let profile = profiles.match_redfish(&recorded_facts(set));
        assert_eq!(
            profile.redfish.choose(action, Some(&allowable)),
            expected,
            "{set} {action:?} among {allowable:?}"
        );
    }
}

/// The advertised reset types: inline on the system, else ResetActionInfo.
fn allowable_values(dir: &Path) -> Vec<String> {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    let system = read_json(&dir.join("system.json")).unwrap();
    if let Some(v) =
        system.pointer("/Actions/#ComputerSystem.Reset/ResetType@Redfish.AllowableValues")
    {
        return strings(v);
    }
    let info = read_json(&dir.join("reset_action_info.json")).expect("ResetActionInfo recorded");
    strings(info.pointer("/Parameters/0/AllowableValues").unwrap())
}

#[test]
fn an_override_directory_adds_and_replaces_profiles() {
    let dir = tempfile::tempdir().unwrap();
    let builtin_ilo5 = std::fs::read_to_string(repo("firmware-configs/hpe-ilo5.toml")).unwrap();
    std::fs::write(
        dir.path().join("hpe-ilo5.toml"),
        builtin_ilo5.replace("power_timeout = \"60s\"", "power_timeout = \"90s\""),
    )
    .unwrap();
    let acme = std::fs::read_to_string(repo("firmware-configs/generic-redfish.toml"))
        .unwrap()
        .replace(
            "family = \"Generic Redfish\"",
            "family = \"Acme\"\n[match]\nredfish_vendor = [\"^Acme$\"]",
        );
    std::fs::write(dir.path().join("acme.toml"), acme).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a profile").unwrap();

    let profiles = Profiles::load_dir(dir.path()).unwrap();
    assert_eq!(profiles.all().len(), Profiles::builtin().all().len() + 1);
    let ilo5 = profiles.by_name("hpe-ilo5").unwrap();
    assert_eq!(
        ilo5.redfish.power_timeout,
        std::time::Duration::from_secs(90)
    );
    let facts = RedfishFacts {
        vendor: Some("ACME".into()),
        ..Default::default()
    };
    assert_eq!(profiles.match_redfish(&facts).family, "Acme");
}

#[test]
fn a_broken_override_names_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::read_to_string(repo("firmware-configs/lenovo-xcc.toml")).unwrap();

    // A value that parses but is wrong.
    let file = dir.path().join("lenovo-xcc.toml");
    std::fs::write(
        &file,
        base.replace("cycle = [\"ForceRestart\"]", "cycle = [\"Reboot\"]"),
    )
    .unwrap();
    let err = Profiles::load_dir(dir.path()).unwrap_err();
    match &err {
        ProfileError::Invalid { file: f, key, .. } => {
            assert_eq!(f, &file);
            assert_eq!(key, "redfish.cycle");
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("lenovo-xcc.toml") && msg.contains("redfish.cycle") && msg.contains("Reboot"),
        "{msg}"
    );

    // An unknown key.
    std::fs::write(
        &file,
        base.replace("sessions = true", "sessions = true\nsesion_limit = 4"),
    )
    .unwrap();
    let msg = Profiles::load_dir(dir.path()).unwrap_err().to_string();
    assert!(
        msg.contains("lenovo-xcc.toml") && msg.contains("sesion_limit"),
        "{msg}"
    );

    // A missing directory.
    let missing = dir.path().join("nope");
    let msg = Profiles::load_dir(&missing).unwrap_err().to_string();
    assert!(msg.contains("nope"), "{msg}");
}
