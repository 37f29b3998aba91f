//! Resources: what runs on the cluster's nodes and where (the resource
//! manager built around fencing; DESIGN.md "Cluster and resources").
//!
//! Owns Pacemaker's [`score`] arithmetic and the pure [`placement`]
//! function (state + constraints -> where each resource runs, and the plan
//! to get there), including the safety rule: a resource from an UNCLEAN
//! node is startable only once that node's fence is recorded. It does no
//! I/O and prints nothing. Direction: `resources -> cluster` (never back).
//!
//! ```text
//!  model      config sections -> placement units (groups, clones expanded)
//!  placement  pure: units + node states + constraints -> where each runs
//!  manager    pure: cluster view + messages -> orders, reports, fences
//!  message    what the members' managers multicast (inside the cluster's)
//!  executor   runs one OCF action as Pacemaker's executor does
//!  ocf        agent names and meta-data
//!  attributes the agents' own node attributes (promotion scores) and the
//!             crm_attribute / crm_master they call
//! ```

pub mod attributes;
pub mod executor;
pub mod manager;
pub mod message;
pub mod model;
pub mod ocf;
pub mod placement;
pub mod score;
