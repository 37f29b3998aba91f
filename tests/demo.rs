//! The README's first command keeps working: the demo fences controller-1
//! at level 2 (SBD) after level 1 (its silent BMC over IPMI) failed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[test]
fn demo_fences_through_the_fallback_level() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ironfence"))
        .args(["--output", "json", "demo"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["outcome"]["result"], "fenced", "{v}");
    assert_eq!(v["outcome"]["level"], 2, "{v}");
    assert_eq!(v["outcome"]["devices"][0], "sbd-disk", "{v}");
    let events: Vec<&str> = v["history"]["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["event"].as_str().unwrap())
        .collect();
    assert!(events.contains(&"level_failed"), "{events:?}");
    assert_eq!(events.last(), Some(&"succeeded"));
}
