//! `ironfence probe DEVICE`: talk to one configured device and print what
//! it says about itself, which vendor profile matches and why, and what
//! ironfence will do with it (reset types, cipher suite). Needs no daemon;
//! changes no power state.

use super::OutputFormat;
use crate::config::{Config, DeviceKind};
use crate::exit;
use crate::ipmi::commands::GetChassisStatus;
use crate::power::ipmi::IpmiDevice;
use crate::power::redfish::RedfishDevice;
use crate::profiles::{Profiles, RedfishFacts};
use serde_json::{json, Value};
use std::time::Duration;

pub async fn run(config: &Config, device: &str, format: OutputFormat) -> u8 {
    let Some(dev) = config.device(device) else {
        eprintln!("ironfence: no device `{device}` in the configuration");
        return exit::NO_SUCH;
    };
    let report = match &dev.kind {
        DeviceKind::Redfish(r) => {
            let d = RedfishDevice::new(dev, r);
            redfish(&d).await
        }
        DeviceKind::Ipmi(i) => {
            let d = IpmiDevice::new(dev, i);
            ipmi(&d, dev.timeouts.monitor).await
        }
        other => Err(format!(
            "probe knows ipmi and redfish devices; `{device}` is kind {}",
            other.name()
        )),
    };
    match report {
        Ok(v) => {
            match format {
                OutputFormat::Json => {
                    println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default())
                }
                OutputFormat::Text => print_text(&v, 0),
            }
            exit::OK
        }
        Err(e) => {
            eprintln!("ironfence: probe {device}: {e}");
            exit::ERROR
        }
    }
}

fn print_text(v: &Value, indent: usize) {
    let pad = "  ".repeat(indent);
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match v {
                    Value::Object(_) => {
                        println!("{pad}{k}:");
                        print_text(v, indent + 1);
                    }
                    Value::Array(items) if items.iter().any(|i| i.is_object()) => {
                        println!("{pad}{k}:");
                        for i in items {
                            print_text(i, indent + 1);
                            println!();
                        }
                    }
                    Value::Array(items) => println!(
                        "{pad}{k}: {}",
                        items
                            .iter()
                            .map(|i| i
                                .as_str()
                                .map(str::to_string)
                                .unwrap_or_else(|| i.to_string()))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    Value::String(s) => println!("{pad}{k}: {s}"),
                    Value::Null => println!("{pad}{k}: -"),
                    other => println!("{pad}{k}: {other}"),
                }
            }
        }
        other => println!("{pad}{other}"),
    }
}

async fn redfish(d: &RedfishDevice) -> Result<Value, String> {
    let s = d.login().await.map_err(|e| e.to_string())?;
    let result = async {
        let systems = s.systems().await.map_err(|e| e.to_string())?;
        let mut sys_docs = Vec::new();
        for sys in &systems {
            let allowed = s.allowed_resets(sys).await;
            sys_docs.push(json!({
                "uri": sys.uri, "id": sys.id, "power": sys.power, "uuid": sys.uuid, "serial": sys.serial,
                "hostname": sys.hostname, "manufacturer": sys.manufacturer, "model": sys.model,
                "allowed_reset_types": allowed,
            }));
        }
        let first_doc = match systems.first() {
            Some(sys) => s.get(&sys.uri).await.ok(),
            None => None,
        };
        let manager = match s.root.pointer("/Managers/@odata.id").and_then(Value::as_str) {
            Some(coll) => match s.get(coll).await.ok().and_then(|c| c.pointer("/Members/0/@odata.id").and_then(Value::as_str).map(str::to_string)) {
                Some(m) => s.get(&m).await.ok(),
                None => None,
            },
            None => None,
        };
        let facts = RedfishFacts::from_documents(&s.root, first_doc.as_ref(), manager.as_ref());
        let profiles = Profiles::builtin();
        let m = profiles.explain_redfish(&facts);
        let (profile_name, plan) = match systems.first() {
            Some(sys) => d.plan(&s, &sys.uri).await,
            None => (m.profile.name.clone(), Default::default()),
        };
        Ok::<Value, String>(json!({
            "service": {
                "vendor": facts.vendor, "product": facts.product,
                "redfish_version": s.root.get("RedfishVersion"),
                "sessions": if s.uses_token() { "SessionService (X-Auth-Token)" } else { "basic auth" },
                "manager_model": facts.manager_model, "manager_firmware": facts.manager_firmware,
            },
            "systems": sys_docs,
            "profile": {
                "matched": m.profile.name, "family": m.profile.family,
                "fields": m.matched.iter().map(|f| f.key()).collect::<Vec<_>>(),
                "fallback": m.fallback,
                "used": profile_name,
                "off": plan.off, "on": plan.on, "cycle": plan.cycle,
                "quirks": m.profile.quirks.iter().map(|q| json!({"text": q.text, "source": q.source})).collect::<Vec<_>>(),
            },
        }))
    }
    .await;
    s.logout().await;
    result
}

async fn ipmi(d: &IpmiDevice, limit: Duration) -> Result<Value, String> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut s = d.open(deadline).await.map_err(|e| e.to_string())?;
    let suite = s.suite();
    let id = s.send(ipmi_rs::app::GetDeviceId, deadline).await;
    let status = s.send(GetChassisStatus, deadline).await;
    s.close().await;
    let id = id.map_err(|e| e.to_string())?;
    let profiles = Profiles::builtin();
    let p = profiles.match_ipmi(id.manufacturer_id);
    Ok(json!({
        "bmc": {
            "cipher_suite": suite,
            "manufacturer_id": id.manufacturer_id,
            "product_id": id.product_id,
            "firmware": format!("{}.{:02x}", id.major_fw_revision, id.minor_fw_revision),
            "ipmi_version": format!("{}.{}", id.major_version, id.minor_version),
            "power": status.map(|st| if st.power_on { "on" } else { "off" }).unwrap_or("unknown"),
        },
        "profile": {
            "matched": p.name, "family": p.family,
            "ciphers": p.ipmi.ciphers, "privilege": p.ipmi.privilege,
            "quirks": p.quirks.iter().map(|q| json!({"text": q.text, "source": q.source})).collect::<Vec<_>>(),
        },
    }))
}
