//! ironfence: fencing (STONITH) and watchdog appliance for bare-metal clusters.
//!
//! The one invariant: **never report a node as fenced unless it is** — the
//! power was read back as off after the off command, or a human confirmed it.
//!
//! Map of the crate (dependencies run downwards; protocol modules are leaves):
//!
//! | module      | owns                                                              |
//! |-------------|-------------------------------------------------------------------|
//! | [`config`]  | raw TOML types -> one validated [`config::Config`]; every problem at once |
//! | [`cli`]     | the `ironfence` command tree, text/json output, exit codes        |
//! | [`api`]     | the daemon's unix-socket JSON protocol: types, server, client     |
//! | [`node`]    | the `ironfenced` daemon: wires config, fencer, cluster and API together |
//! | [`resources`] | Pacemaker score arithmetic and placement (pure): where resources run; blocked until a lost node is fenced |
//! | [`cluster`] | corosync CPG membership: who is lost, the coordinator that fences it, results recorded by every member |
//! | [`fencer`]  | topology, device selection, delays, retries, history; one task owns the queue |
//! | [`power`]   | the `PowerDevice` trait, one adapter per device kind, verify-until-observed |
//! | [`profiles`] | vendor BMC profiles from `firmware-configs/`: recognise a BMC, its reset types, ciphers, quirks |
//! | [`ipmi`]    | IPMI v2.0 over LAN (RMCP+): our async session layer, cipher suites 1-3/15-17, chassis commands |
//! | [`redfish`] | Redfish client: TLS modes, sessions, system discovery, reset types, task monitors |
//! | [`quorum`]  | the `QuorumSource` trait: corosync's quorum/membership view (feature `corosync`), static, manual fake |
//! | [`sbd`]     | SBD shared-disk poison pill: the on-disk format (ClusterLabs sbd v2.1), sector I/O, disk operations |
//! | [`watchdog`] | trait `Watchdog`: Linux `/dev/watchdog` (the only WDIOC ioctls), the BMC's timer via `/dev/ipmi0`, a recorder; sysfs listing |
//! | [`agent`]   | the ClusterLabs fence agent API: stdin options, metadata XML, exit codes, running external agents |
//! | [`sim`]     | simulated BMCs with fault injection (slow, silent, refuses, lies), in-process and as an RMCP+ server |
//! | [`secret`]  | credentials that are never printed                               |
//! | [`exit`]    | the documented process exit codes                                |
//!
//! Library code never prints; the binaries in `src/bin/` parse arguments and
//! call into [`cli`] and [`node`].

pub mod agent;
pub mod api;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod exit;
pub mod fencer;
pub mod ipmi;
pub mod node;
pub mod power;
pub mod profiles;
pub mod quorum;
pub mod redfish;
pub mod resources;
pub mod sbd;
pub mod secret;
pub mod sim;
pub mod watchdog;
