//! The daemon's API: JSON over a unix socket, one request line and one
//! reply line per connection. [`server`] checks who is calling with
//! `SO_PEERCRED` (root, the daemon's own user, or members of
//! `socket_group`) before reading anything; [`client`] is what the CLI uses.

pub mod client;
pub mod protocol;
pub mod server;

pub use protocol::{ApiError, ErrorKind, Reply, Request};
