//! `ironfence config check` against bad configurations: every problem is
//! reported with the exact key at fault (as `src/config/validate.rs` names
//! it) and a message that says what is wrong, the exit code is 1, and one
//! run lists every problem at once. Each config is a TOML file in a temp dir.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod support;

use common::{ironfence, run, Run};
use std::path::Path;

/// Two declared nodes, `a` (id 1) and `b` (id 2); cases add devices/levels.
const NODES: &str = r#"
[[node]]
name = "a"
id = 1

[[node]]
name = "b"
id = 2
"#;

/// A sim device `d` that fences `a`; cases append keys to it (it is the
/// last table opened, so following `key = value` lines belong to it).
const DEVICE_D: &str = r#"
[[device]]
name = "d"
kind = "sim"
host_list = ["a"]
"#;

/// `ironfence config check --config DIR/ironfence.toml` (plus `extra` args).
fn check_in(dir: &Path, toml: &str, extra: &[&str]) -> Run {
    let path = dir.join("ironfence.toml");
    std::fs::write(&path, toml).unwrap();
    let mut cmd = ironfence(["config", "check", "--config"]);
    cmd.arg(&path).args(extra);
    run(&mut cmd, None)
}

fn check(toml: &str) -> Run {
    let dir = tempfile::tempdir().unwrap();
    check_in(dir.path(), toml, &[])
}

/// The config fails with exactly `count` problems, one of them at `key`
/// with `message` in its text.
#[track_caller]
fn assert_problem(toml: &str, count: usize, key: &str, message: &str) {
    let r = check(toml);
    r.expect_code(1);
    let header = format!("{count} problem(s):");
    let line = format!("  {key}: ");
    assert!(
        r.stderr.contains(&header),
        "expected {header:?}\n--- config ---\n{toml}\n{}",
        r.describe()
    );
    let found = r
        .stderr
        .lines()
        .any(|l| l.starts_with(&line) && l.contains(message));
    assert!(
        found,
        "expected a problem line starting {line:?} containing {message:?}\n--- config ---\n{toml}\n{}",
        r.describe()
    );
    assert!(
        r.stdout.is_empty(),
        "text output of problems goes to stderr only\n{}",
        r.describe()
    );
}

#[test]
fn toml_syntax_error() {
    assert_problem(
        "[[node]\nname = \"a\"\n",
        1,
        "(syntax)",
        "TOML parse error at line 1",
    );
}

#[test]
fn unknown_top_level_key() {
    let toml = format!("colour = \"blue\"\n{NODES}");
    assert_problem(&toml, 1, "colour", "unknown top-level key `colour`");
}

#[test]
fn unknown_key_in_daemon_section() {
    let toml = format!("[daemon]\nfencing_timout = \"60s\"\n{NODES}");
    assert_problem(&toml, 1, "daemon", "unknown field `fencing_timout`");
}

#[test]
fn unknown_key_in_device() {
    let toml = format!("{NODES}{DEVICE_D}colour = \"red\"\n");
    assert_problem(&toml, 1, "device[d]", "unknown field `colour`");
}

#[test]
fn unknown_device_kind() {
    let toml = format!("{NODES}[[device]]\nname = \"d\"\nkind = \"pdu\"\n");
    assert_problem(&toml, 1, "device[d].kind", "unknown device kind `pdu`");
}

#[test]
fn agent_kind_without_agent() {
    let toml = format!("{NODES}[[device]]\nname = \"d\"\nkind = \"agent\"\nhost_list = [\"a\"]\n");
    assert_problem(
        &toml,
        1,
        "device[d].agent",
        "kind = \"agent\" needs the agent to run",
    );
}

#[test]
fn agent_not_installed() {
    let toml = format!(
        "{NODES}[[device]]\nname = \"d\"\nkind = \"agent\"\nagent = \"fence_ironfence_test_absent\"\nhost_list = [\"a\"]\n"
    );
    assert_problem(
        &toml,
        1,
        "device[d].agent",
        "fence agent `fence_ironfence_test_absent` is not installed",
    );
}

#[test]
fn agent_param_reserved() {
    let agent = support::require_peer("fence_ipmilan");
    let toml = format!(
        "{NODES}[[device]]\nname = \"d\"\nkind = \"agent\"\nagent = \"{}\"\nhost_list = [\"a\"]\nparams = {{ ip = \"127.0.0.1\", password = \"x\" }}\n",
        agent.display()
    );
    assert_problem(
        &toml,
        1,
        "device[d].params.password",
        "`password` is set by ironfence, not in params",
    );
}

#[test]
fn sim_device_with_agent_key() {
    let toml = format!("{NODES}{DEVICE_D}agent = \"fence_ipmilan\"\n");
    assert_problem(
        &toml,
        1,
        "device[d].agent",
        "`agent` is only for kind = \"agent\"",
    );
}

#[test]
fn password_and_password_file() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "secret\n").unwrap();
    let toml = format!(
        "{NODES}{DEVICE_D}password = \"secret\"\npassword_file = \"{}\"\n",
        pw.display()
    );
    assert_problem(
        &toml,
        1,
        "device[d].password",
        "more than one of password, password_file, password_script is set",
    );
}

#[test]
fn password_file_missing() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("no-such-password-file");
    let toml = format!("{NODES}{DEVICE_D}password_file = \"{}\"\n", pw.display());
    assert_problem(
        &toml,
        1,
        "device[d].password_file",
        &format!("{} is not a readable file", pw.display()),
    );
}

#[test]
fn host_list_names_undeclared_node() {
    let toml = format!(
        "{NODES}[[device]]\nname = \"d\"\nkind = \"sim\"\nhost_list = [\"a\", \"ghost\"]\n"
    );
    assert_problem(
        &toml,
        1,
        "device[d].host_list",
        "`ghost` is not a declared node",
    );
}

#[test]
fn host_map_names_undeclared_node_and_empty_plug() {
    let toml = format!(
        "{NODES}[[device]]\nname = \"d\"\nkind = \"sim\"\nhost_map = {{ a = \"\", ghost = \"p2\" }}\n"
    );
    assert_problem(
        &toml,
        2,
        "device[d].host_list",
        "`ghost` is not a declared node",
    );
    assert_problem(&toml, 2, "device[d].host_map.a", "empty plug name");
}

#[test]
fn bad_host_check() {
    let toml = format!("{NODES}{DEVICE_D}host_check = \"sometimes\"\n");
    assert_problem(
        &toml,
        1,
        "device[d].host_check",
        "unknown host_check `sometimes`",
    );
}

#[test]
fn static_list_without_hosts() {
    let toml =
        format!("{NODES}[[device]]\nname = \"d\"\nkind = \"sim\"\nhost_check = \"static-list\"\n");
    assert_problem(
        &toml,
        1,
        "device[d].host_check",
        "neither host_list nor host_map names a node",
    );
}

#[test]
fn action_limit_out_of_range() {
    for n in [0, 65, -1] {
        let toml = format!("{NODES}{DEVICE_D}action_limit = {n}\n");
        assert_problem(
            &toml,
            1,
            "device[d].action_limit",
            &format!("{n} is out of range"),
        );
    }
}

#[test]
fn bad_duration() {
    let toml = format!("{NODES}{DEVICE_D}delay_max = \"soon\"\n");
    assert_problem(&toml, 1, "device[d].delay_max", "`soon` is not a duration");
    let toml = format!("[daemon]\nstorm_window = \"-5\"\n{NODES}");
    assert_problem(&toml, 1, "daemon.storm_window", "`-5` is not a duration");
}

#[test]
fn zero_timeout() {
    let toml = format!("{NODES}{DEVICE_D}timeouts = {{ status = \"0s\" }}\n");
    assert_problem(
        &toml,
        1,
        "device[d].timeouts.status",
        "a timeout of zero can never succeed",
    );
    let toml = format!("[daemon]\nfencing_timeout = \"0\"\n{NODES}");
    // fencing_timeout 0 also fails the timeout chain of no device here.
    assert_problem(
        &toml,
        1,
        "daemon.fencing_timeout",
        "must be greater than zero",
    );
}

#[test]
fn retries_out_of_range() {
    let toml = format!("{NODES}{DEVICE_D}retries = {{ off = 11, monitor = -1 }}\n");
    assert_problem(
        &toml,
        2,
        "device[d].retries.off",
        "11 retries is out of range",
    );
    assert_problem(
        &toml,
        2,
        "device[d].retries.monitor",
        "-1 retries is out of range",
    );
}

#[test]
fn level_index_out_of_range() {
    for index in [0, 10] {
        let toml = format!(
            "{NODES}{DEVICE_D}\n[[level]]\nindex = {index}\ntarget = \"a\"\ndevices = [\"d\"]\n"
        );
        assert_problem(
            &toml,
            1,
            &format!("level[a#{index}].index"),
            &format!("level index {index} is out of range"),
        );
    }
}

#[test]
fn level_with_two_target_kinds() {
    let toml = format!(
        "{NODES}{DEVICE_D}\n[[level]]\nindex = 1\ntarget = \"a\"\ntarget_regex = \"^a\"\ndevices = [\"d\"]\n"
    );
    assert_problem(
        &toml,
        1,
        "level[a#1].target",
        "a level needs exactly one of target, target_regex, target_attribute",
    );
}

#[test]
fn level_regex_invalid() {
    let toml = format!(
        "{NODES}{DEVICE_D}\n[[level]]\nindex = 1\ntarget_regex = \"ctl-(\"\ndevices = [\"d\"]\n"
    );
    assert_problem(
        &toml,
        1,
        "level[ctl-(#1].target_regex",
        "invalid regular expression",
    );
}

#[test]
fn level_target_attribute_not_name_value() {
    let toml = format!(
        "{NODES}{DEVICE_D}\n[[level]]\nindex = 1\ntarget_attribute = \"rack\"\ndevices = [\"d\"]\n"
    );
    assert_problem(
        &toml,
        1,
        "level[rack#1].target_attribute",
        "`rack` is not name=value",
    );
}

#[test]
fn level_names_unknown_device_or_node() {
    let toml = format!(
        "{NODES}{DEVICE_D}\n[[level]]\nindex = 1\ntarget = \"a\"\ndevices = [\"d\", \"nope\"]\n"
    );
    assert_problem(
        &toml,
        1,
        "level[a#1].devices",
        "`nope` is not a defined device",
    );
    let toml =
        format!("{NODES}{DEVICE_D}\n[[level]]\nindex = 1\ntarget = \"ghost\"\ndevices = [\"d\"]\n");
    assert_problem(
        &toml,
        1,
        "level[ghost#1].target",
        "`ghost` is not a declared node",
    );
}

#[test]
fn level_defined_twice() {
    let level = "\n[[level]]\nindex = 1\ntarget = \"a\"\ndevices = [\"d\"]\n";
    let toml = format!("{NODES}{DEVICE_D}{level}{level}");
    assert_problem(
        &toml,
        1,
        "level[a#1].index",
        "level 1 for `a` is defined twice",
    );
}

#[test]
fn duplicate_device_names() {
    let toml = format!("{NODES}{DEVICE_D}{DEVICE_D}");
    assert_problem(&toml, 1, "device[d].name", "device `d` is defined twice");
}

#[test]
fn duplicate_node_names_and_ids() {
    let toml = format!("{NODES}\n[[node]]\nname = \"c\"\nid = 1\n");
    assert_problem(&toml, 1, "node[c].id", "node id 1 is used by another node");
    let toml = format!("{NODES}\n[[node]]\nname = \"a\"\nid = 3\n");
    assert_problem(&toml, 1, "node[a].name", "node `a` is defined twice");
}

#[test]
fn invalid_node_name() {
    let toml = "[[node]]\nname = \"bad name!\"\n";
    assert_problem(
        toml,
        1,
        "node[bad name!].name",
        "`bad name!` is not a valid node name",
    );
}

#[test]
fn storm_max_share_out_of_range() {
    for share in ["0.0", "1.5", "-0.2"] {
        let toml = format!("[daemon]\nstorm_max_share = {share}\n{NODES}");
        let shown = share.parse::<f64>().unwrap().to_string();
        assert_problem(
            &toml,
            1,
            "daemon.storm_max_share",
            &format!("{shown} is not a share of nodes in (0, 1]"),
        );
    }
}

#[test]
fn delay_and_timeouts_exceed_fencing_timeout() {
    // max(10s, 20s) + 30s x (1 + 1) = 80s, not below 60s.
    let toml = format!(
        "[daemon]\nfencing_timeout = \"60s\"\n{NODES}{DEVICE_D}delay_base = \"10s\"\ndelay_max = \"20s\"\ntimeouts = {{ off = \"30s\" }}\nretries = {{ off = 1 }}\n"
    );
    assert_problem(
        &toml,
        1,
        "device[d].timeouts.off",
        "= 1m 20s is not below daemon.fencing_timeout = 1m",
    );
    // Exactly equal is not below either.
    let toml = format!(
        "[daemon]\nfencing_timeout = \"60s\"\n{NODES}{DEVICE_D}timeouts = {{ off = \"30s\" }}\nretries = {{ off = 1 }}\n"
    );
    assert_problem(
        &toml,
        1,
        "device[d].timeouts.off",
        "is not below daemon.fencing_timeout",
    );
}

#[test]
fn sim_fault_unknown() {
    let toml = format!("{NODES}{DEVICE_D}sim = {{ fault = \"flaky\" }}\n");
    assert_problem(&toml, 1, "device[d].sim.fault", "unknown fault `flaky`");
}

#[test]
fn sim_initial_not_a_power_state() {
    let toml = format!("{NODES}{DEVICE_D}sim = {{ initial = \"maybe\" }}\n");
    assert_problem(
        &toml,
        1,
        "device[d].sim.initial",
        "`maybe` is not a power state",
    );
}

/// Five independent problems in one file: one run reports all of them.
const FIVE_PROBLEMS: &str = r#"
colour = "blue"

[daemon]
storm_max_share = 2.0

[[node]]
name = "a"
id = 1

[[node]]
name = "b"
id = 1

[[device]]
name = "bmc-1"
kind = "sim"
host_list = ["a"]
delay_max = "whenever"

[[level]]
index = 1
target = "a"
devices = ["bmc-2"]
"#;

const FIVE_KEYS: [(&str, &str); 5] = [
    ("colour", "unknown top-level key `colour`"),
    ("daemon.storm_max_share", "is not a share of nodes"),
    ("node[b].id", "node id 1 is used by another node"),
    ("device[bmc-1].delay_max", "`whenever` is not a duration"),
    ("level[a#1].devices", "`bmc-2` is not a defined device"),
];

#[test]
fn five_problems_reported_in_one_run() {
    for (key, message) in FIVE_KEYS {
        assert_problem(FIVE_PROBLEMS, 5, key, message);
    }
}

#[test]
fn five_problems_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let r = check_in(dir.path(), FIVE_PROBLEMS, &["--output", "json"]);
    r.expect_code(1);
    let v: serde_json::Value = serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON: {e}\n{}", r.describe()));
    assert_eq!(v["ok"], serde_json::Value::Bool(false), "{}", r.describe());
    let path = dir.path().join("ironfence.toml");
    assert_eq!(v["path"].as_str(), path.to_str(), "{}", r.describe());
    let problems = v["problems"].as_array().expect("problems array");
    assert_eq!(problems.len(), 5, "{}", r.describe());
    for (key, message) in FIVE_KEYS {
        let p = problems
            .iter()
            .find(|p| p["key"] == key)
            .unwrap_or_else(|| panic!("no problem with key {key}\n{}", r.describe()));
        assert!(
            p["message"].as_str().unwrap_or("").contains(message),
            "{key}: {p}"
        );
        assert!(
            !p["fix"].as_str().unwrap_or("").is_empty(),
            "{key} has no fix: {p}"
        );
    }
}

/// A config using most features: sim and agent devices, a password file,
/// host maps, every level target kind.
fn good_config(dir: &Path) -> String {
    let agent = support::require_peer("fence_ipmilan");
    let pw = dir.join("bmc.pw");
    std::fs::write(&pw, "secret\n").unwrap();
    format!(
        r#"
[daemon]
socket = "{dir}/ironfenced.sock"
state_dir = "{dir}/state"
fencing_timeout = "120s"
verify_interval = "250ms"
storm_max_share = 0.5
storm_window = "5m"

[[node]]
name = "ctl-1"
id = 1
attributes = {{ rack = "r1" }}

[[node]]
name = "ctl-2"
id = 2
attributes = {{ rack = "r2" }}

[[device]]
name = "bmc-1"
kind = "agent"
agent = "{agent}"
username = "admin"
password_file = "{pw}"
host_map = {{ ctl-1 = "ctl-1-bmc" }}
delay_base = "1s"
delay_max = "2s"
timeouts = {{ off = "20s", status = "10s" }}
retries = {{ off = 2 }}
params = {{ ip = "127.0.0.1", lanplus = true, ipport = 623 }}

[[device]]
name = "sim-1"
kind = "sim"
host_list = ["ctl-1", "ctl-2"]
action_limit = 2
sim = {{ fault = "slow", slow_by = "100ms", state_file = "{dir}/sim.json", initial = "on" }}

[[level]]
index = 1
target = "ctl-1"
devices = ["bmc-1"]

[[level]]
index = 2
target_regex = "^ctl-"
devices = ["sim-1"]

[[level]]
index = 3
target_attribute = "rack=r2"
devices = ["sim-1"]
"#,
        dir = dir.display(),
        agent = agent.display(),
        pw = pw.display()
    )
}

#[test]
fn good_config_is_ok() {
    let dir = tempfile::tempdir().unwrap();
    let toml = good_config(dir.path());
    let r = check_in(dir.path(), &toml, &[]);
    r.expect_code(0)
        .expect_stdout("OK (2 nodes, 2 devices, 3 levels)");
    let r = check_in(dir.path(), &toml, &["--output", "json"]);
    r.expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["ok"], serde_json::Value::Bool(true), "{}", r.describe());
    assert_eq!(v["levels"], 3, "{}", r.describe());
}

#[test]
fn missing_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("does-not-exist.toml");
    let mut cmd = ironfence(["config", "check", "--config"]);
    cmd.arg(&path);
    let r = run(&mut cmd, None);
    r.expect_code(1)
        .expect_stderr(&format!("cannot read config {}", path.display()));

    let mut cmd = ironfence(["--output", "json", "config", "check", "--config"]);
    cmd.arg(&path);
    let r = run(&mut cmd, None);
    r.expect_code(1);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["ok"], serde_json::Value::Bool(false), "{}", r.describe());
    assert_eq!(v["problems"][0]["key"], "(file)", "{}", r.describe());
}

/// A huge numeric duration must be a problem, not a crash.
/// src/config/validate.rs `parse_duration` calls `Duration::from_secs_f64`
/// on any finite number, which panics above u64::MAX seconds.
#[test]
fn huge_duration_is_a_problem_not_a_panic() {
    let toml = format!("{NODES}{DEVICE_D}delay_max = \"1e30\"\n");
    assert_problem(&toml, 1, "device[d].delay_max", "is not a duration");
}

/// The timeout-chain sum must not overflow into a panic either
/// (validate.rs: `d.delay.base + d.delay.max + d.timeouts.off * (...)`).
#[test]
fn timeout_chain_overflow_is_a_problem_not_a_panic() {
    let toml = format!(
        "{NODES}{DEVICE_D}delay_base = \"10000000000000000000\"\ndelay_max = \"10000000000000000000\"\n"
    );
    let r = check(&toml);
    r.expect_code(1).expect_stderr("device[d].");
}

// ---------------------------------------------------------------------------
// [cluster]

const CLUSTER_A: &str = "[daemon]\nnode_name = \"a\"\n[cluster]\n";

#[test]
fn cluster_nodes_need_their_corosync_ids() {
    assert_problem(
        "[daemon]\nnode_name = \"a\"\n[cluster]\n[[node]]\nname = \"a\"\nid = 1\n[[node]]\nname = \"b\"\n",
        1,
        "node[b].id",
        "corosync node ids",
    );
}

#[test]
fn cluster_this_node_must_be_a_node() {
    assert_problem(
        &format!("[daemon]\nnode_name = \"zz\"\n[cluster]\n{NODES}"),
        1,
        "daemon.node_name",
        "not one of the [[node]]s",
    );
}

#[test]
fn cluster_without_nodes() {
    assert_problem(
        "[daemon]\nnode_name = \"a\"\n[cluster]\n",
        1,
        "cluster",
        "no [[node]]",
    );
}

#[test]
fn cluster_fence_action_is_reboot_or_off() {
    assert_problem(
        &format!("{CLUSTER_A}fence_action = \"on\"\n{NODES}"),
        1,
        "cluster.fence_action",
        "not a fence action",
    );
}

#[test]
fn cluster_unknown_key_and_bad_values_all_at_once() {
    let r = check(&format!(
        "{CLUSTER_A}membership = \"etcd\"\ngroup = \"has space\"\nretry_backoff = \"0s\"\ntwo_node_delay = \"soon\"\n{NODES}"
    ));
    r.expect_code(1)
        .expect_stderr("4 problem(s)")
        .expect_stderr("cluster.membership")
        .expect_stderr("cluster.group")
        .expect_stderr("cluster.retry_backoff")
        .expect_stderr("cluster.two_node_delay");
    assert_problem(
        &format!("{CLUSTER_A}quorate = true\n{NODES}"),
        1,
        "cluster",
        "unknown field `quorate`",
    );
}

#[test]
fn cluster_config_that_is_fine() {
    let r = check(&format!(
        "{CLUSTER_A}group = \"controllers\"\nfence_action = \"off\"\ntwo_node_delay = \"3s\"\n{NODES}"
    ));
    r.expect_code(0);
}

// ---------------------------------------------------------------------------
// resources (checked against the agents' meta-data from Debian's
// resource-agents and pacemaker packages)

const RES_OK: &str = r#"
[[resource]]
id = "vip"
agent = "ocf:heartbeat:IPaddr2"
params = { ip = "192.0.2.200", cidr_netmask = 24 }
monitor = { interval = "5s", timeout = "20s" }
timeouts = { start = "20s", stop = "20s" }
meta = { migration_threshold = 3, failure_timeout = "60s", stickiness = 100 }

[[resource]]
id = "web"
agent = "ocf:heartbeat:Dummy"

[[resource]]
id = "db"
agent = "ocf:pacemaker:Stateful"

[[group]]
id = "frontend"
members = ["vip", "web"]

[[clone]]
id = "db-clone"
resource = "db"
promotable = true
clone_max = 2

[[colocation]]
resource = "frontend"
with = "db-clone"
with_role = "Promoted"
score = "INFINITY"

[[order]]
first = "db-clone"
then = "frontend"

[[location]]
resource = "frontend"
node = "a"
score = 50

[[location]]
resource = "db-clone"
rule = "rack=r1"
score = "-INFINITY"
"#;

#[test]
fn resources_that_are_fine() {
    let r = check(&format!("{NODES}{RES_OK}"));
    r.expect_code(0);
}

#[test]
fn resource_agent_not_installed() {
    assert_problem(
        &format!("{NODES}[[resource]]\nid = \"x\"\nagent = \"ocf:heartbeat:NoSuchAgent\"\n"),
        1,
        "resource[x].agent",
        "not installed",
    );
}

#[test]
fn resource_agent_class_and_name() {
    assert_problem(
        &format!("{NODES}[[resource]]\nid = \"x\"\nagent = \"lsb:httpd\"\n"),
        1,
        "resource[x].agent",
        "not supported yet",
    );
}

#[test]
fn resource_params_are_checked_against_meta_data() {
    let r = check(&format!(
        "{NODES}[[resource]]\nid = \"vip\"\nagent = \"ocf:heartbeat:IPaddr2\"\nparams = {{ cidr_netmask = 24, colour = \"blue\" }}\n"
    ));
    r.expect_code(1)
        .expect_stderr("2 problem(s)")
        .expect_stderr(
            "resource[vip].params.colour: agent ocf:heartbeat:IPaddr2 has no parameter `colour`",
        )
        .expect_stderr("resource[vip].params: agent ocf:heartbeat:IPaddr2 requires parameter `ip`");
}

#[test]
fn constraints_name_existing_resources_and_nodes() {
    let r = check(&format!(
        "{NODES}[[resource]]\nid = \"web\"\nagent = \"ocf:heartbeat:Dummy\"\n\
         [[colocation]]\nresource = \"web\"\nwith = \"ghost\"\nscore = 10\n\
         [[location]]\nresource = \"web\"\nnode = \"zz\"\nscore = \"lots\"\n\
         [[order]]\nfirst = \"nothing\"\nthen = \"web\"\n"
    ));
    r.expect_code(1)
        .expect_stderr("4 problem(s)")
        .expect_stderr("colocation[#1].with: `ghost` is no resource")
        .expect_stderr("location[#1].node: `zz` is not a [[node]]")
        .expect_stderr("location[#1].score: `\"lots\"` is not a score")
        .expect_stderr("order[#1].first: `nothing` is no resource");
}

#[test]
fn mandatory_orders_must_not_cycle() {
    assert_problem(
        &format!(
            "{NODES}[[resource]]\nid = \"a1\"\nagent = \"ocf:heartbeat:Dummy\"\n\
             [[resource]]\nid = \"b1\"\nagent = \"ocf:heartbeat:Dummy\"\n\
             [[order]]\nfirst = \"a1\"\nthen = \"b1\"\n[[order]]\nfirst = \"b1\"\nthen = \"a1\"\n"
        ),
        1,
        "order",
        "a1 -> b1 -> a1",
    );
}

#[test]
fn a_group_member_cannot_also_be_cloned() {
    assert_problem(
        &format!(
            "{NODES}[[resource]]\nid = \"w\"\nagent = \"ocf:heartbeat:Dummy\"\n\
             [[group]]\nid = \"g\"\nmembers = [\"w\"]\n[[clone]]\nid = \"wc\"\nresource = \"w\"\n"
        ),
        1,
        "group[g].members",
        "also a clone",
    );
}

#[test]
fn resource_ids_are_unique_across_kinds() {
    assert_problem(
        &format!(
            "{NODES}[[resource]]\nid = \"w\"\nagent = \"ocf:heartbeat:Dummy\"\n[[group]]\nid = \"w\"\nmembers = [\"w\"]\n"
        ),
        1,
        "group[w].id",
        "used twice",
    );
}

#[test]
fn roles_need_a_promotable_clone() {
    let r = check(&format!(
        "{NODES}[[resource]]\nid = \"db\"\nagent = \"ocf:pacemaker:Stateful\"\n\
         [[resource]]\nid = \"vip\"\nagent = \"ocf:heartbeat:Dummy\"\n\
         [[clone]]\nid = \"dbc\"\nresource = \"db\"\npromoted_max = 2\npromoted_node_max = 2\n\
         [[colocation]]\nresource = \"vip\"\nwith = \"dbc\"\nwith_role = \"Promoted\"\nscore = \"INFINITY\"\n\
         [[order]]\nfirst = \"dbc\"\nfirst_action = \"promote\"\nthen = \"vip\"\n\
         [[order]]\nfirst = \"dbc\"\nfirst_action = \"migrate\"\nthen = \"vip\"\nkind = \"optional\"\n"
    ));
    r.expect_code(1)
        .expect_stderr("5 problem(s)")
        .expect_stderr("clone[dbc].promoted_max: set on a clone that is not promotable")
        .expect_stderr("clone[dbc].promoted_node_max: 2: only 1 promoted instance per node")
        .expect_stderr("colocation[#1].with_role: `dbc` is no promotable [[clone]]")
        .expect_stderr("order[#1].first_action: `dbc` is no promotable [[clone]]")
        .expect_stderr("order[#2].first_action: unknown action `migrate`");
}

#[test]
fn agent_env_names_variables_ironfenced_does_not_set_itself() {
    let r = check(&format!(
        "[daemon]\nagent_env = {{ HA_VARRUN = \"/run\", OCF_ROOT = \"/x\", \"1BAD\" = \"y\" }}\n{NODES}"
    ));
    r.expect_code(1)
        .expect_stderr("2 problem(s)")
        .expect_stderr("daemon.agent_env.OCF_ROOT: is set by ironfenced for every agent")
        .expect_stderr("daemon.agent_env.1BAD: is not an environment variable name");
}
