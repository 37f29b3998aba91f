//! Which devices may fence a node, in which order: the configured levels
//! that select it (by name, regex or attribute), sorted by index; without
//! any, every device able to fence it, one per implicit level (Pacemaker's
//! behaviour without a topology).

use crate::config::{Level, Node};

/// A level as planned for one target.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedLevel {
    pub index: u8,
    pub devices: Vec<String>,
    /// Made up from device capabilities, not configured.
    pub implicit: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Topology {
    pub nodes: Vec<Node>,
    pub levels: Vec<Level>,
}

impl Topology {
    pub fn knows_node(&self, name: &str) -> bool {
        self.nodes.is_empty() || self.nodes.iter().any(|n| n.name == name)
    }

    /// Configured levels for `target`, lowest index first. With several
    /// levels of one index (name and regex both match), the first defined wins.
    pub fn configured_for(&self, target: &str) -> Vec<PlannedLevel> {
        let attrs = self
            .nodes
            .iter()
            .find(|n| n.name == target)
            .map(|n| &n.attributes);
        let mut out: Vec<PlannedLevel> = Vec::new();
        for l in &self.levels {
            if l.target.matches(target, attrs) && !out.iter().any(|o| o.index == l.index) {
                out.push(PlannedLevel {
                    index: l.index,
                    devices: l.devices.clone(),
                    implicit: false,
                });
            }
        }
        out.sort_by_key(|l| l.index);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LevelTarget;
    use std::collections::BTreeMap;

    #[test]
    fn by_name_regex_attribute() {
        let node = |n: &str, rack: &str| Node {
            name: n.into(),
            id: None,
            attributes: BTreeMap::from([("rack".to_string(), rack.to_string())]),
        };
        let t = Topology {
            nodes: vec![node("ctl-1", "r1"), node("ctl-2", "r2")],
            levels: vec![
                Level {
                    index: 2,
                    target: LevelTarget::Attribute {
                        name: "rack".into(),
                        value: "r1".into(),
                    },
                    devices: vec!["pdu-r1".into()],
                },
                Level {
                    index: 1,
                    target: LevelTarget::Regex(regex::Regex::new("^ctl-").unwrap()),
                    devices: vec!["bmc".into()],
                },
            ],
        };
        let p = t.configured_for("ctl-1");
        assert_eq!(p.iter().map(|l| l.index).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(t.configured_for("ctl-2").len(), 1);
        assert!(!t.knows_node("ctl-9"));
    }
}
