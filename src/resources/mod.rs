//! Resources: what runs on the cluster's nodes and where (the resource
//! manager built around fencing; DESIGN.md "Cluster and resources").
//!
//! Owns Pacemaker's [`score`] arithmetic and the pure [`placement`]
//! function (state + constraints -> where each resource runs, and the plan
//! to get there), including the safety rule: a resource from an UNCLEAN
//! node is startable only once that node's fence is recorded. It does no
//! I/O and prints nothing. Direction: `resources -> cluster` (never back).
//!
//! Built in steps (issue 12): placement for primitives (location,
//! stickiness, node states) is here and checked against `crm_simulate`;
//! colocation, groups, clones, ordering, the OCF executor and the config
//! sections come next.

pub mod ocf;
pub mod placement;
pub mod score;
