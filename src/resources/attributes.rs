//! Node attributes the resource agents set on their own node, above all
//! the promotion score a promotable agent publishes with
//! `crm_attribute --promotion -v N` (or the older `crm_master -v N`).
//!
//! ```text
//!  agent --(PATH, HA_SBIN_DIR)--> crm_attribute | crm_master
//!        = ironfenced started under that name (a symlink in the store)
//!        --> one file per attribute in the store (IRONFENCE_ATTRIBUTES)
//!  ironfenced, after every action of the resource --> reads master-RSC
//!        --> the node's report --> the coordinator's promotion choice
//! ```
//!
//! The store is this node's only: an agent may set and query its own
//! node's attributes (`-N` naming another node is refused, not faked).
//! Pacemaker keeps transient attributes until the node leaves; here the
//! daemon empties the store when it starts, and agents set their score
//! again in their probe (Stateful and galera do). This module owns the
//! store's layout and the command line of the two shims; it runs no agent.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The environment variable naming the store, set for every agent.
pub const STORE_ENV: &str = "IRONFENCE_ATTRIBUTES";
/// The names the daemon answers to as a shim.
pub const SHIMS: [&str; 2] = ["crm_attribute", "crm_master"];
/// The directory inside the store holding the shims (the agents'
/// HA_SBIN_DIR and the head of their PATH).
pub const BIN_DIR: &str = "bin";

/// crm_attribute's exit code for a missing attribute (CRM_EX_NOSUCH).
const EXIT_NOSUCH: u8 = 105;
/// crm_attribute's exit code for bad usage (CRM_EX_USAGE).
const EXIT_USAGE: u8 = 64;
/// A generic failure.
const EXIT_ERROR: u8 = 1;

/// The attribute name of a resource's promotion score.
pub fn promotion_name(rsc: &str) -> String {
    format!("master-{}", strip_instance(rsc))
}

/// `db:2` -> `db` (an anonymous clone's instances share one score).
fn strip_instance(rsc: &str) -> &str {
    match rsc.rsplit_once(':') {
        Some((base, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => base,
        _ => rsc,
    }
}

/// Attribute names become file names: nothing that could leave the store.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name != BIN_DIR
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

/// One node's attribute store (a directory).
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn new(dir: impl Into<PathBuf>) -> Store {
        Store { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn bin(&self) -> PathBuf {
        self.dir.join(BIN_DIR)
    }

    /// Empty the store and put the shims in it, pointing at `exe`.
    pub fn reset(&self, exe: &Path) -> std::io::Result<()> {
        match std::fs::remove_dir_all(&self.dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        std::fs::create_dir_all(self.bin())?;
        for shim in SHIMS {
            std::os::unix::fs::symlink(exe, self.bin().join(shim))?;
        }
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<String> {
        if !valid_name(name) {
            return None;
        }
        std::fs::read_to_string(self.dir.join(name))
            .ok()
            .map(|s| s.trim_end_matches('\n').to_string())
    }

    pub fn set(&self, name: &str, value: &str) -> std::io::Result<()> {
        let path = self.dir.join(name);
        let tmp = self.dir.join(format!(".{name}.{}", std::process::id()));
        std::fs::write(&tmp, format!("{value}\n"))?;
        std::fs::rename(&tmp, path)
    }

    pub fn delete(&self, name: &str) -> std::io::Result<()> {
        match std::fs::remove_file(self.dir.join(name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// The promotion score the agent of `rsc` set here, if any.
    pub fn promotion(&self, rsc: &str) -> Option<String> {
        self.get(&promotion_name(rsc))
    }
}

/// What a shim run printed and how it exits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShimResult {
    pub stdout: String,
    pub stderr: String,
    pub code: u8,
}

impl ShimResult {
    fn ok(stdout: String) -> ShimResult {
        ShimResult {
            stdout,
            stderr: String::new(),
            code: 0,
        }
    }
    fn fail(me: &str, code: u8, what: String) -> ShimResult {
        ShimResult {
            stdout: String::new(),
            stderr: format!("{me}: {what}\n"),
            code,
        }
    }
}

#[derive(Debug, Default)]
struct Request {
    name: Option<String>,
    promotion: Option<Option<String>>,
    value: Option<String>,
    delete: bool,
    quiet: bool,
    node: Option<String>,
    default: Option<String>,
    kind: Option<String>,
}

/// Run `me` (crm_attribute or crm_master) with `args` (without argv[0])
/// against the store `env` names. Supported: -n/--name, -p/--promotion,
/// -v/--update, -D/--delete, -G/--query, -q/--quiet, -N/--node (this node
/// only), -l/--lifetime, -t/--type (status or nodes), -d/--default, and
/// crm_master's -r/--resource; -V, -i/--id and -s/--set-name are ignored.
pub fn shim(me: &str, args: &[String], env: &BTreeMap<String, String>) -> ShimResult {
    let master = me == "crm_master";
    let mut r = Request::default();
    let mut resource = env.get("OCF_RESOURCE_INSTANCE").cloned();
    let mut it = args.iter().peekable();
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        // -vVALUE
        let (flag, inline) = if inline.is_none()
            && flag.len() > 2
            && flag.starts_with('-')
            && !flag.starts_with("--")
            && flag.is_char_boundary(2)
        {
            (flag[..2].to_string(), Some(flag[2..].to_string()))
        } else {
            (flag, inline)
        };
        let mut value = |what: &str| -> Result<String, ShimResult> {
            if let Some(v) = inline.clone() {
                return Ok(v);
            }
            it.next().cloned().ok_or_else(|| {
                ShimResult::fail(me, EXIT_USAGE, format!("option {what} needs a value"))
            })
        };
        let res = (|| -> Result<(), ShimResult> {
            match flag.as_str() {
                "-n" | "--name" | "--attr-name" => r.name = Some(value(&flag)?),
                "-p" | "--promotion" => {
                    // its value is optional: only `--promotion=RSC`
                    r.promotion = Some(inline.clone());
                }
                "-v" | "--update" | "--attr-value" => r.value = Some(value(&flag)?),
                "-D" | "--delete" | "--delete-attr" => r.delete = true,
                // without -v or -D, crm_attribute queries anyway
                "-G" | "--query" | "--get-value" => {}
                "-Q" => r.quiet = true,
                "-q" | "--quiet" => r.quiet = true,
                "-N" | "--node" | "-U" | "--uname" => r.node = Some(value(&flag)?),
                "-l" | "--lifetime" => {
                    let l = value(&flag)?;
                    if !matches!(l.as_str(), "reboot" | "forever") {
                        return Err(ShimResult::fail(
                            me,
                            EXIT_USAGE,
                            format!("unknown lifetime `{l}`: use reboot or forever"),
                        ));
                    }
                }
                "-t" | "--type" => r.kind = Some(value(&flag)?),
                "-d" | "--default" => r.default = Some(value(&flag)?),
                "-r" | "--resource" if master => resource = Some(value(&flag)?),
                "-i" | "--id" | "-s" | "--set-name" | "--attr-id" => {
                    value(&flag)?;
                }
                "-V" | "--verbose" => {}
                other => {
                    return Err(ShimResult::fail(
                        me,
                        EXIT_USAGE,
                        format!("unknown option `{other}` (ironfence's {me} knows -n -p -v -D -G -q -N -l -t -d)"),
                    ))
                }
            }
            Ok(())
        })();
        if let Err(e) = res {
            return e;
        }
    }
    let name = if master || r.promotion.is_some() {
        let rsc = r.promotion.clone().flatten().or(resource);
        match rsc {
            Some(rsc) => promotion_name(&rsc),
            None => {
                return ShimResult::fail(
                    me,
                    EXIT_USAGE,
                    "no resource: OCF_RESOURCE_INSTANCE is not set (give -p RSC)".into(),
                )
            }
        }
    } else {
        match r.name.clone() {
            Some(n) => n,
            None => {
                return ShimResult::fail(me, EXIT_USAGE, "no attribute name: give -n NAME".into())
            }
        }
    };
    if let Some(k) = &r.kind {
        if !matches!(k.as_str(), "status" | "nodes") {
            return ShimResult::fail(
                me,
                EXIT_ERROR,
                format!("only node attributes (-t status or nodes) live here, not `{k}`"),
            );
        }
    }
    if !valid_name(&name) {
        return ShimResult::fail(me, EXIT_USAGE, format!("`{name}` is no attribute name"));
    }
    let Some(dir) = env.get(STORE_ENV) else {
        return ShimResult::fail(
            me,
            EXIT_ERROR,
            format!("{STORE_ENV} is not set: this {me} serves the agents ironfenced runs"),
        );
    };
    let here = env.get("OCF_RESKEY_CRM_meta_on_node").cloned();
    if let (Some(n), Some(h)) = (&r.node, &here) {
        if n != h {
            return ShimResult::fail(
                me,
                EXIT_ERROR,
                format!("only this node's ({h}) attributes can be set or read here, not {n}'s"),
            );
        }
    }
    let store = Store::new(dir);
    let written = if r.delete {
        Some(store.delete(&name))
    } else if let Some(v) = &r.value {
        if name.starts_with("master-") && crate::resources::score::Score::parse(v).is_none() {
            return ShimResult::fail(
                me,
                EXIT_USAGE,
                format!("`{v}` is not a score (an integer, INFINITY or -INFINITY)"),
            );
        }
        Some(store.set(&name, v))
    } else {
        None
    };
    match written {
        Some(Ok(())) => ShimResult::ok(String::new()),
        Some(Err(e)) => {
            ShimResult::fail(me, EXIT_ERROR, format!("cannot write {name} in {dir}: {e}"))
        }
        None => match store.get(&name).or(r.default.clone()) {
            Some(v) if r.quiet => ShimResult::ok(format!("{v}\n")),
            Some(v) => ShimResult::ok(format!("scope=status  name={name} value={v}\n")),
            None => ShimResult::fail(
                me,
                EXIT_NOSUCH,
                "Error performing operation: No such device or address".into(),
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn env(dir: &Path) -> BTreeMap<String, String> {
        [
            (STORE_ENV, dir.display().to_string()),
            ("OCF_RESOURCE_INSTANCE", "db:1".to_string()),
            ("OCF_RESKEY_CRM_meta_on_node", "node2".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    fn run(me: &str, args: &[&str], env: &BTreeMap<String, String>) -> ShimResult {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        shim(me, &args, env)
    }

    #[test]
    fn promotion_scores_as_stateful_and_crm_master_set_them() {
        let d = tempfile::tempdir().unwrap();
        let e = env(d.path());
        assert_eq!(
            run("crm_attribute", &["--promotion", "-v", "5"], &e).code,
            0
        );
        assert_eq!(Store::new(d.path()).promotion("db").as_deref(), Some("5"));
        let q = run("crm_attribute", &["--promotion", "-G", "-q"], &e);
        assert_eq!((q.code, q.stdout.as_str()), (0, "5\n"));
        assert_eq!(
            run("crm_master", &["-l", "reboot", "-v", "INFINITY"], &e).code,
            0
        );
        assert_eq!(
            Store::new(d.path()).promotion("db").as_deref(),
            Some("INFINITY")
        );
        let q = run("crm_attribute", &["--promotion", "-G"], &e);
        assert_eq!(q.stdout, "scope=status  name=master-db value=INFINITY\n");
        assert_eq!(run("crm_attribute", &["--promotion", "-D"], &e).code, 0);
        let q = run("crm_master", &["-G", "-q"], &e);
        assert_eq!(q.code, EXIT_NOSUCH, "{q:?}");
        assert_eq!(
            run("crm_attribute", &["--promotion=other", "-v", "3"], &e).code,
            0
        );
        assert_eq!(
            Store::new(d.path()).get("master-other").as_deref(),
            Some("3")
        );
    }

    #[test]
    fn named_node_attributes_of_this_node_only() {
        let d = tempfile::tempdir().unwrap();
        let e = env(d.path());
        let set = run(
            "crm_attribute",
            &[
                "-N",
                "node2",
                "-l",
                "reboot",
                "--name",
                "galera-last-committed",
                "-v",
                "42",
            ],
            &e,
        );
        assert_eq!(set.code, 0, "{set:?}");
        let q = run(
            "crm_attribute",
            &["-N", "node2", "-n", "galera-last-committed", "-G", "-q"],
            &e,
        );
        assert_eq!(q.stdout, "42\n");
        let other = run("crm_attribute", &["-N", "node1", "-n", "x", "-v", "1"], &e);
        assert_eq!(other.code, EXIT_ERROR);
        assert!(other.stderr.contains("not node1's"), "{other:?}");
        let dflt = run(
            "crm_attribute",
            &["-n", "missing", "-G", "-q", "-d", "0"],
            &e,
        );
        assert_eq!((dflt.code, dflt.stdout.as_str()), (0, "0\n"));
    }

    #[test]
    fn bad_input_is_refused_with_what_to_fix() {
        let d = tempfile::tempdir().unwrap();
        let e = env(d.path());
        let r = run("crm_attribute", &["--promotion", "-v", "lots"], &e);
        assert_eq!(r.code, EXIT_USAGE);
        assert!(r.stderr.contains("not a score"), "{r:?}");
        let r = run("crm_attribute", &["--frobnicate"], &e);
        assert_eq!(r.code, EXIT_USAGE);
        assert!(r.stderr.contains("unknown option `--frobnicate`"), "{r:?}");
        let r = run("crm_attribute", &["-n", "../escape", "-v", "1"], &e);
        assert_eq!(r.code, EXIT_USAGE);
        let r = run("crm_attribute", &["-v", "1"], &e);
        assert!(r.stderr.contains("give -n NAME"), "{r:?}");
        let mut no_store = e.clone();
        no_store.remove(STORE_ENV);
        let r = run("crm_attribute", &["--promotion", "-v", "1"], &no_store);
        assert_eq!(r.code, EXIT_ERROR);
        assert!(r.stderr.contains(STORE_ENV), "{r:?}");
    }

    #[test]
    fn reset_empties_the_store_and_links_the_shims() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::new(d.path().join("attrs"));
        s.reset(Path::new("/bin/true")).unwrap();
        s.set("master-db", "10").unwrap();
        s.reset(Path::new("/bin/true")).unwrap();
        assert_eq!(s.promotion("db"), None);
        for shim in SHIMS {
            assert_eq!(
                std::fs::read_link(s.bin().join(shim)).unwrap(),
                PathBuf::from("/bin/true")
            );
        }
        assert_eq!(promotion_name("db:12"), "master-db");
        assert_eq!(promotion_name("db:x"), "master-db:x");
    }
}
