//! Fence agent metadata XML (`-o metadata`): written for our agents from
//! their [`ParamSpec`] tables, read from external agents for `ironfence
//! agents` / `metadata` and to learn whether they take a `plug`. Pure code.

use super::spec::{ParamKind, ParamSpec};
use super::AgentAction;
use quick_xml::events::Event;
use quick_xml::Reader;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParamMeta {
    pub name: String,
    pub required: bool,
    pub deprecated: bool,
    pub obsoletes: Option<String>,
    pub getopt: String,
    pub content_type: String,
    pub default: Option<String>,
    pub options: Vec<String>,
    pub shortdesc: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionMeta {
    pub name: String,
    pub automatic: Option<bool>,
    pub on_target: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct AgentMetadata {
    pub name: String,
    pub shortdesc: String,
    pub longdesc: String,
    pub vendor_url: String,
    pub parameters: Vec<ParamMeta>,
    pub actions: Vec<ActionMeta>,
}

/// The metadata could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// Not well-formed XML.
    #[error("agent metadata is not valid XML: {0}")]
    Xml(String),
    /// No `<resource-agent>` element.
    #[error("agent metadata has no <resource-agent> element")]
    NoRoot,
}

impl AgentMetadata {
    /// Metadata of one of our agents.
    pub fn for_ours(name: &str, shortdesc: &str, longdesc: &str, specs: &[ParamSpec]) -> Self {
        let parameters = specs
            .iter()
            .filter(|s| !s.hidden)
            .map(|s| ParamMeta {
                name: s.name.to_string(),
                required: s.required,
                deprecated: s.deprecated,
                obsoletes: s.obsoletes.map(str::to_string),
                getopt: s.getopt(),
                content_type: s.kind.rng_type().to_string(),
                default: s.default.map(str::to_string),
                options: match s.kind {
                    ParamKind::Select(o) => o.iter().map(|x| x.to_string()).collect(),
                    _ => Vec::new(),
                },
                shortdesc: s.shortdesc.to_string(),
            })
            .collect();
        let extra: &[AgentAction] = if name.ends_with("_ipmi") || name.ends_with("_redfish") {
            &[AgentAction::Diag]
        } else {
            &[]
        };
        let actions = AgentAction::ALL
            .iter()
            .chain(extra)
            .map(|a| ActionMeta {
                name: a.as_str().to_string(),
                automatic: (*a == AgentAction::On).then_some(false),
                on_target: None,
            })
            .collect();
        AgentMetadata {
            name: name.to_string(),
            shortdesc: shortdesc.to_string(),
            longdesc: longdesc.to_string(),
            vendor_url: "https://github.com/ironfence/ironfence".to_string(),
            parameters,
            actions,
        }
    }

    /// Whether the agent declares a `plug` or `port` parameter (then
    /// Pacemaker, and we, pass the target as `port=`).
    pub fn takes_plug(&self) -> bool {
        self.parameters
            .iter()
            .any(|p| p.name == "plug" || p.name == "port")
    }

    /// Whether the agent supports `action`.
    pub fn supports(&self, action: &str) -> bool {
        self.actions.iter().any(|a| a.name == action)
    }

    /// The XML document.
    pub fn to_xml(&self) -> String {
        let e = |s: &str| quick_xml::escape::escape(s).into_owned();
        let b = |v: bool| if v { "1" } else { "0" };
        let mut x = String::new();
        x.push_str("<?xml version=\"1.0\" ?>\n");
        x.push_str(&format!(
            "<resource-agent name=\"{}\" shortdesc=\"{}\" >\n",
            e(&self.name),
            e(&self.shortdesc)
        ));
        x.push_str(&format!("<longdesc>{}</longdesc>\n", e(&self.longdesc)));
        x.push_str(&format!(
            "<vendor-url>{}</vendor-url>\n",
            e(&self.vendor_url)
        ));
        x.push_str("<parameters>\n");
        for p in &self.parameters {
            x.push_str(&format!(
                "\t<parameter name=\"{}\" unique=\"0\" required=\"{}\"",
                e(&p.name),
                b(p.required)
            ));
            if p.deprecated {
                x.push_str(" deprecated=\"1\"");
            }
            if let Some(o) = &p.obsoletes {
                x.push_str(&format!(" obsoletes=\"{}\"", e(o)));
            }
            x.push_str(">\n");
            x.push_str(&format!("\t\t<getopt mixed=\"{}\" />\n", e(&p.getopt)));
            let default = p
                .default
                .as_ref()
                .map(|d| format!(" default=\"{}\"", e(d)))
                .unwrap_or_default();
            if p.options.is_empty() {
                x.push_str(&format!(
                    "\t\t<content type=\"{}\"{default} />\n",
                    e(&p.content_type)
                ));
            } else {
                x.push_str(&format!(
                    "\t\t<content type=\"{}\"{default} >\n",
                    e(&p.content_type)
                ));
                for o in &p.options {
                    x.push_str(&format!("\t\t\t<option value=\"{}\" />\n", e(o)));
                }
                x.push_str("\t\t</content>\n");
            }
            x.push_str(&format!(
                "\t\t<shortdesc lang=\"en\">{}</shortdesc>\n",
                e(&p.shortdesc)
            ));
            x.push_str("\t</parameter>\n");
        }
        x.push_str("</parameters>\n<actions>\n");
        for a in &self.actions {
            x.push_str(&format!("\t<action name=\"{}\"", e(&a.name)));
            if let Some(v) = a.on_target {
                x.push_str(&format!(" on_target=\"{}\"", b(v)));
            }
            if let Some(v) = a.automatic {
                x.push_str(&format!(" automatic=\"{}\"", b(v)));
            }
            x.push_str(" />\n");
        }
        x.push_str("</actions>\n</resource-agent>\n");
        x
    }

    /// Read an agent's metadata XML.
    pub fn parse(xml: &str) -> Result<AgentMetadata, MetadataError> {
        let mut r = Reader::from_str(xml);
        r.config_mut().trim_text(true);
        let mut md = AgentMetadata::default();
        let mut seen_root = false;
        let mut text_target: Option<&'static str> = None;
        let mut in_param_shortdesc = false;
        loop {
            let ev = r
                .read_event()
                .map_err(|e| MetadataError::Xml(e.to_string()))?;
            match ev {
                Event::Eof => break,
                Event::Start(ref t) | Event::Empty(ref t) => {
                    let attr = |name: &str| -> Option<String> {
                        t.attributes().flatten().find_map(|a| {
                            (a.key.as_ref() == name.as_bytes())
                                .then(|| a.unescape_value().ok().map(|v| v.into_owned()))
                                .flatten()
                        })
                    };
                    let is_start = matches!(ev, Event::Start(_));
                    match t.name().as_ref() {
                        b"resource-agent" => {
                            seen_root = true;
                            md.name = attr("name").unwrap_or_default();
                            md.shortdesc = attr("shortdesc").unwrap_or_default();
                        }
                        b"longdesc" if is_start => text_target = Some("longdesc"),
                        b"vendor-url" if is_start => text_target = Some("vendor-url"),
                        b"parameter" => md.parameters.push(ParamMeta {
                            name: attr("name").unwrap_or_default(),
                            required: attr("required").as_deref() == Some("1"),
                            deprecated: attr("deprecated").as_deref() == Some("1"),
                            obsoletes: attr("obsoletes"),
                            getopt: String::new(),
                            content_type: String::new(),
                            default: None,
                            options: Vec::new(),
                            shortdesc: String::new(),
                        }),
                        b"getopt" => {
                            if let Some(p) = md.parameters.last_mut() {
                                p.getopt = attr("mixed").unwrap_or_default();
                            }
                        }
                        b"content" => {
                            if let Some(p) = md.parameters.last_mut() {
                                p.content_type = attr("type").unwrap_or_default();
                                p.default = attr("default");
                            }
                        }
                        b"option" => {
                            if let Some(p) = md.parameters.last_mut() {
                                if let Some(v) = attr("value") {
                                    p.options.push(v);
                                }
                            }
                        }
                        b"shortdesc" if is_start => in_param_shortdesc = true,
                        b"action" => md.actions.push(ActionMeta {
                            name: attr("name").unwrap_or_default(),
                            automatic: attr("automatic").map(|v| v == "1"),
                            on_target: attr("on_target").map(|v| v == "1"),
                        }),
                        _ => {}
                    }
                }
                Event::Text(t) => {
                    let s = t
                        .unescape()
                        .map_err(|e| MetadataError::Xml(e.to_string()))?
                        .into_owned();
                    if in_param_shortdesc {
                        if let Some(p) = md.parameters.last_mut() {
                            if p.shortdesc.is_empty() {
                                p.shortdesc = s;
                            }
                        }
                    } else if text_target == Some("longdesc") {
                        md.longdesc = s;
                    } else if text_target == Some("vendor-url") {
                        md.vendor_url = s;
                    }
                }
                Event::End(_) => {
                    text_target = None;
                    in_param_shortdesc = false;
                }
                _ => {}
            }
        }
        if !seen_root {
            return Err(MetadataError::NoRoot);
        }
        Ok(md)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::spec::sim_params;

    #[test]
    fn round_trip() {
        let md = AgentMetadata::for_ours("fence_x", "X <&> agent", "long \"desc\"", &sim_params());
        let back = AgentMetadata::parse(&md.to_xml()).unwrap();
        assert_eq!(back, md);
        assert!(back.takes_plug());
        assert!(!back.parameters.iter().any(|p| p.name == "nodename"));
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(AgentMetadata::parse("<nope/>").is_err());
        assert!(AgentMetadata::parse("<resource-agent name='x'><a></b>").is_err());
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any text is metadata or an error, never a panic.
        #[test]
        fn parse_never_panics(text in ".{0,600}") {
            let _ = AgentMetadata::parse(&text);
        }

        /// Descriptions with XML-special characters survive the round trip.
        #[test]
        fn escaping_round_trip(short in "[ -~]{0,60}", long in "[ -~]{0,200}") {
            let md = AgentMetadata::for_ours("fence_x", &short, &long, &crate::agent::spec::sim_params());
            let back = AgentMetadata::parse(&md.to_xml()).unwrap();
            prop_assert_eq!(back.shortdesc, short);
            prop_assert_eq!(back.longdesc, long.trim().to_string());
        }
    }
}
