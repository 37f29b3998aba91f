//! Option parsing of a fence agent, as `fencing.py` does it (pure code).
//!
//! Two sources: the command line (`-o off`, `--action=off`, `--plug node1`,
//! boolean flags such as `--lanplus`) and, when there are no arguments,
//! `name=value` lines on stdin (`#` comments, surrounding quotes stripped,
//! `-` and `_` interchangeable in names). Both end up in one [`Options`] map
//! keyed by the parameter's canonical name (`port` -> `plug`, `login` ->
//! `username`, ...). An unknown option is an error naming it.

use super::spec::{ParamKind, ParamSpec};
use std::collections::BTreeMap;

/// Parsed options: canonical name -> value (`"1"`/`"0"` for booleans).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Options(pub BTreeMap<String, String>);

/// An option could not be understood.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OptionError {
    /// Not a parameter of this agent.
    #[error("unknown option `{0}`; run with -o metadata for the list")]
    Unknown(String),
    /// A value-taking option came without its value.
    #[error("option `{0}` needs a value")]
    MissingValue(String),
    /// A value does not fit the option's type.
    #[error("option `{name}`: `{value}` is not {expected}")]
    BadValue {
        name: String,
        value: String,
        expected: &'static str,
    },
    /// A stdin line is not `name=value`.
    #[error("stdin line {line}: `{text}` is not name=value")]
    BadLine { line: usize, text: String },
}

/// `1/yes/on/true` (any case) -> true, `0/no/off/false` -> false.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "yes" | "y" | "on" | "true" => Some(true),
        "0" | "no" | "n" | "off" | "false" | "" => Some(false),
        _ => None,
    }
}

fn canonical<'a>(specs: &'a [ParamSpec], name: &str) -> Option<&'a ParamSpec> {
    let n = name.trim().replace('-', "_");
    let spec = specs.iter().find(|s| s.name == n)?;
    // A deprecated alias resolves to the parameter that obsoletes it.
    match specs.iter().find(|s| s.obsoletes == Some(spec.name)) {
        Some(newer) => Some(newer),
        None => Some(spec),
    }
}

fn check_value(spec: &ParamSpec, value: &str) -> Result<String, OptionError> {
    let bad = |expected| OptionError::BadValue {
        name: spec.name.to_string(),
        value: value.to_string(),
        expected,
    };
    match spec.kind {
        ParamKind::Boolean => parse_bool(value)
            .map(|b| if b { "1" } else { "0" }.to_string())
            .ok_or_else(|| bad("a boolean (1/yes/on/true or 0/no/off/false)")),
        ParamKind::Integer => value
            .trim()
            .parse::<i64>()
            .map(|_| value.trim().to_string())
            .map_err(|_| bad("an integer")),
        ParamKind::Second => value
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|f| {
                f.is_finite() && *f >= 0.0 && *f <= crate::config::MAX_DURATION.as_secs_f64()
            })
            .map(|_| value.trim().to_string())
            .ok_or_else(|| bad("a number of seconds (0 to 604800)")),
        ParamKind::Select(choices) => {
            if choices.contains(&value.trim()) {
                Ok(value.trim().to_string())
            } else {
                Err(bad("one of the values listed in the metadata"))
            }
        }
        ParamKind::String => Ok(value.to_string()),
    }
}

/// Parse stdin text (`name=value` lines).
pub fn parse_stdin(specs: &[ParamSpec], text: &str) -> Result<Options, OptionError> {
    let mut out = Options::default();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, value)) = line.split_once('=') else {
            return Err(OptionError::BadLine {
                line: i + 1,
                text: line.to_string(),
            });
        };
        let value = strip_quotes(value.trim());
        let spec =
            canonical(specs, name).ok_or_else(|| OptionError::Unknown(name.trim().to_string()))?;
        out.0
            .insert(spec.name.to_string(), check_value(spec, value)?);
    }
    Ok(out)
}

fn strip_quotes(v: &str) -> &str {
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return &v[1..v.len() - 1];
        }
    }
    v
}

/// Parse command-line arguments (without the program name).
pub fn parse_args(specs: &[ParamSpec], args: &[String]) -> Result<Options, OptionError> {
    let mut out = Options::default();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        let (spec, inline) = if let Some(long) = arg.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            let spec = specs
                .iter()
                .find(|s| s.long == Some(name) || s.name == name.replace('-', "_"))
                .ok_or_else(|| OptionError::Unknown(arg.clone()))?;
            (spec, inline)
        } else if let Some(short) = arg.strip_prefix('-').filter(|s| !s.is_empty()) {
            let mut chars = short.chars();
            let c = chars.next().unwrap_or('-');
            let rest: String = chars.collect();
            let spec = specs
                .iter()
                .find(|s| s.short == Some(c))
                .ok_or_else(|| OptionError::Unknown(arg.clone()))?;
            if spec.kind == ParamKind::Boolean {
                // Stacked flags such as -vvv or -Pv: re-queue the rest.
                if !rest.is_empty() {
                    let mut next = vec![format!("-{rest}")];
                    next.extend_from_slice(&args[i..]);
                    let more = parse_args(specs, &next)?;
                    out.0.insert(canonical_name(specs, spec), "1".into());
                    out.0.extend(more.0);
                    return Ok(out);
                }
                (spec, None)
            } else {
                (spec, if rest.is_empty() { None } else { Some(rest) })
            }
        } else {
            return Err(OptionError::Unknown(arg.clone()));
        };
        let value = if spec.kind == ParamKind::Boolean {
            inline.unwrap_or_else(|| "1".to_string())
        } else {
            match inline {
                Some(v) => v,
                None => {
                    let v = args
                        .get(i)
                        .ok_or_else(|| OptionError::MissingValue(arg.clone()))?
                        .clone();
                    i += 1;
                    v
                }
            }
        };
        let target = canonical(specs, spec.name).unwrap_or(spec);
        out.0
            .insert(target.name.to_string(), check_value(target, &value)?);
    }
    Ok(out)
}

fn canonical_name(specs: &[ParamSpec], spec: &ParamSpec) -> String {
    canonical(specs, spec.name).unwrap_or(spec).name.to_string()
}

impl Options {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
    pub fn flag(&self, name: &str) -> bool {
        self.get(name).and_then(parse_bool).unwrap_or(false)
    }
    /// A seconds value, or `default`; always within 0..=MAX_DURATION.
    pub fn seconds(&self, name: &str, default: f64) -> f64 {
        let max = crate::config::MAX_DURATION.as_secs_f64();
        self.get(name)
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|f| f.is_finite())
            .unwrap_or(default)
            .clamp(0.0, max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::spec::sim_params;

    #[test]
    fn stdin_spellings_and_aliases() {
        let specs = sim_params();
        let o = parse_stdin(
            &specs,
            "# from pacemaker\nnodename=a\naction=reboot\nport=\"node-1\"\npower-timeout=5\nverbose=yes\n",
        )
        .unwrap();
        assert_eq!(o.get("plug"), Some("node-1"));
        assert_eq!(o.get("action"), Some("reboot"));
        assert_eq!(o.get("power_timeout"), Some("5"));
        assert_eq!(o.get("verbose"), Some("1"));
    }

    #[test]
    fn argv_forms() {
        let specs = sim_params();
        let args: Vec<String> = ["-o", "off", "--plug=n1", "--power-timeout", "3", "-vv"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let o = parse_args(&specs, &args).unwrap();
        assert_eq!(o.get("action"), Some("off"));
        assert_eq!(o.get("plug"), Some("n1"));
        assert_eq!(o.get("power_timeout"), Some("3"));
        assert!(o.flag("verbose"));
    }

    #[test]
    fn unknown_and_bad_values() {
        let specs = sim_params();
        assert!(matches!(
            parse_stdin(&specs, "bogus=1"),
            Err(OptionError::Unknown(_))
        ));
        assert!(matches!(
            parse_args(&specs, &["--power-timeout=abc".to_string()]),
            Err(OptionError::BadValue { .. })
        ));
        assert!(matches!(
            parse_args(&specs, &["-o".to_string()]),
            Err(OptionError::MissingValue(_))
        ));
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use crate::agent::runner::stdin_text;
    use crate::agent::spec::sim_params;
    use crate::agent::AgentAction;
    use proptest::prelude::*;

    proptest! {
        /// What the runner writes on an agent's stdin, an agent of ours reads back.
        #[test]
        fn stdin_round_trip(plug in "[A-Za-z0-9._-]{1,40}", state in "/[a-z0-9/_.-]{1,60}", timeout in 0u32..1000) {
            let params = vec![
                ("port".to_string(), plug.clone()),
                ("state_file".to_string(), state.clone()),
                ("power_timeout".to_string(), timeout.to_string()),
            ];
            let text = stdin_text(AgentAction::Off, &params, None);
            let o = parse_stdin(&sim_params(), &text).unwrap();
            prop_assert_eq!(o.get("action"), Some("off"));
            prop_assert_eq!(o.get("plug"), Some(plug.as_str()));
            prop_assert_eq!(o.get("state_file"), Some(state.as_str()));
            let t = timeout.to_string();
            prop_assert_eq!(o.get("power_timeout"), Some(t.as_str()));
        }

        /// Arbitrary input is an error or options, never a panic.
        #[test]
        fn never_panics(text in ".{0,400}", args in proptest::collection::vec(".{0,20}", 0..8)) {
            let _ = parse_stdin(&sim_params(), &text);
            let _ = parse_args(&sim_params(), &args);
        }
    }
}
