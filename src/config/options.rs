//! A device described as `key=value` options (`ironfence device add NAME
//! -o key=value ...`, like `stonith_admin -R ID -a AGENT -o ...`) turned into
//! the same raw type the config file gives, so one validator checks both.
//! Pacemaker's `pcmk_` spellings are accepted for the host and delay keys.

use super::raw::{RawDevice, RawSbd, RawSim};
use super::Problem;
use std::collections::BTreeMap;

fn problem(key: &str, message: String, fix: &str) -> Problem {
    Problem {
        key: key.to_string(),
        message,
        fix: fix.to_string(),
    }
}

/// Build a raw device from options; unknown keys become agent `params`.
pub fn raw_device_from_options(
    name: &str,
    kind: &str,
    options: &BTreeMap<String, String>,
) -> Result<RawDevice, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut raw = RawDevice {
        name: name.to_string(),
        kind: kind.to_string(),
        ..RawDevice::default()
    };
    let mut sim = RawSim::default();
    let mut any_sim = false;
    let mut sbd = RawSbd::default();
    let mut any_sbd = false;
    for (k, v) in options {
        let key = k.strip_prefix("pcmk_").unwrap_or(k).replace('-', "_");
        let v = v.clone();
        match key.as_str() {
            "agent" => raw.agent = Some(v),
            "address" => raw.address = Some(v),
            "username" | "login" => raw.username = Some(v),
            "password" | "passwd" => raw.password = Some(v),
            "password_file" => raw.password_file = Some(v.into()),
            "password_script" | "passwd_script" => raw.password_script = Some(v),
            "host_list" => {
                raw.host_list = Some(
                    v.split([',', ' ', ';'])
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect(),
                )
            }
            "host_map" => {
                let mut map = BTreeMap::new();
                for pair in v.split([';', ',', ' ']).filter(|s| !s.is_empty()) {
                    match pair.split_once([':', '=']) {
                        Some((n, p)) => {
                            map.insert(n.to_string(), p.to_string());
                        }
                        None => problems.push(problem(
                            &format!("device[{name}].host_map"),
                            format!("`{pair}` is not node:plug"),
                            "write host_map=\"node1:1;node2:2\"",
                        )),
                    }
                }
                raw.host_map = Some(map);
            }
            "host_check" => raw.host_check = Some(v),
            "action_limit" => match v.parse() {
                Ok(n) => raw.action_limit = Some(n),
                Err(_) => problems.push(problem(
                    &format!("device[{name}].action_limit"),
                    format!("`{v}` is not a number"),
                    "use 1 to 64",
                )),
            },
            "delay_base" => raw.delay_base = Some(v),
            "delay_max" => raw.delay_max = Some(v),
            "off_timeout" | "reboot_timeout" => raw.timeouts.off = Some(v),
            "on_timeout" => raw.timeouts.on = Some(v),
            "status_timeout" => raw.timeouts.status = Some(v),
            "list_timeout" => raw.timeouts.list = Some(v),
            "monitor_timeout" => raw.timeouts.monitor = Some(v),
            "off_retries" | "reboot_retries" | "on_retries" | "status_retries" | "list_retries"
            | "monitor_retries" => match v.parse::<i64>() {
                Ok(n) => match key.as_str() {
                    "off_retries" | "reboot_retries" => raw.retries.off = Some(n),
                    "on_retries" => raw.retries.on = Some(n),
                    "status_retries" => raw.retries.status = Some(n),
                    "list_retries" => raw.retries.list = Some(n),
                    _ => raw.retries.monitor = Some(n),
                },
                Err(_) => problems.push(problem(
                    &format!("device[{name}].{key}"),
                    format!("`{v}` is not a number"),
                    "use 0 to 10",
                )),
            },
            "fault" | "slow_by" | "state_file" | "initial" if kind == "sim" => {
                any_sim = true;
                match key.as_str() {
                    "fault" => sim.fault = Some(v),
                    "slow_by" => sim.slow_by = Some(v),
                    "state_file" => sim.state_file = Some(v.into()),
                    _ => sim.initial = Some(v),
                }
            }
            "devices" | "sector_size" | "io_timeout" | "crashdump" | "from" if kind == "sbd" => {
                any_sbd = true;
                match key.as_str() {
                    "devices" => {
                        sbd.devices = Some(
                            v.split([',', ';', ' '])
                                .filter(|s| !s.is_empty())
                                .map(str::to_string)
                                .collect(),
                        )
                    }
                    "sector_size" => match v.parse() {
                        Ok(n) => sbd.sector_size = Some(n),
                        Err(_) => problems.push(problem(
                            &format!("device[{name}].sbd.sector_size"),
                            format!("`{v}` is not a number"),
                            "use 512 or 4096",
                        )),
                    },
                    "io_timeout" => sbd.io_timeout = Some(v),
                    "crashdump" => match crate::agent::options::parse_bool(&v) {
                        Some(b) => sbd.crashdump = Some(b),
                        None => problems.push(problem(
                            &format!("device[{name}].sbd.crashdump"),
                            format!("`{v}` is not a boolean"),
                            "use true or false",
                        )),
                    },
                    _ => sbd.from = Some(v),
                }
            }
            _ if kind == "agent" => {
                raw.params.insert(key, toml::Value::String(v));
            }
            _ => problems.push(problem(
                &format!("device[{name}].{k}"),
                format!("unknown option `{k}` for a {kind} device"),
                "see README for the device keys",
            )),
        }
    }
    if any_sim {
        raw.sim = Some(sim);
    }
    if any_sbd {
        raw.sbd = Some(sbd);
    }
    if problems.is_empty() {
        Ok(raw)
    } else {
        Err(problems)
    }
}
