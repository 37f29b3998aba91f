//! Which devices may fence a node, in which order: the configured levels
//! that select it (by name, regex or attribute), sorted by index; without
//! any, every device able to fence it, one per implicit level (Pacemaker's
//! behaviour without a topology).

use crate::config::{Level, LevelTarget, Node};

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

    /// Configured levels for `target`, lowest index first. When several
    /// levels of one index select the node, the most specific target wins
    /// (a name over a regex over an attribute, as Pacemaker prefers an exact
    /// name), then the first defined.
    pub fn configured_for(&self, target: &str) -> Vec<PlannedLevel> {
        let attrs = self
            .nodes
            .iter()
            .find(|n| n.name == target)
            .map(|n| &n.attributes);
        let rank = |t: &LevelTarget| match t {
            LevelTarget::Name(_) => 0,
            LevelTarget::Regex(_) => 1,
            LevelTarget::Attribute { .. } => 2,
        };
        let mut best: Vec<(u8, u8, &Level)> = Vec::new();
        for l in &self.levels {
            if !l.target.matches(target, attrs) {
                continue;
            }
            let r = rank(&l.target);
            match best.iter_mut().find(|(i, _, _)| *i == l.index) {
                Some(slot) if r < slot.1 => *slot = (l.index, r, l),
                Some(_) => {}
                None => best.push((l.index, r, l)),
            }
        }
        let mut out: Vec<PlannedLevel> = best
            .into_iter()
            .map(|(index, _, l)| PlannedLevel {
                index,
                devices: l.devices.clone(),
                implicit: false,
            })
            .collect();
        out.sort_by_key(|l| l.index);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        // A level by name beats a regex level of the same index.
        let mut t2 = t.clone();
        t2.levels.push(Level {
            index: 1,
            target: LevelTarget::Name("ctl-2".into()),
            devices: vec!["bmc-2".into()],
        });
        assert_eq!(
            t2.configured_for("ctl-2")[0].devices,
            vec!["bmc-2".to_string()]
        );
        assert_eq!(
            t2.configured_for("ctl-1")[0].devices,
            vec!["bmc".to_string()]
        );
        assert_eq!(t.configured_for("ctl-2").len(), 1);
        assert!(!t.knows_node("ctl-9"));
    }
}
