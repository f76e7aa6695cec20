//! tlschat: a TLS-secured group chat.
//!
//! The data path of the server, one module per step:
//!
//! ```text
//! listener (server/mod.rs) → TLS accept (tls.rs) → Connection (connection.rs:
//! bytes ⇄ lines) → Command::parse (protocol/) → Hub (server/hub.rs: users,
//! rooms, bans; decides who receives what) → each recipient's bounded queue
//! (server/outbound.rs) → its writer task → socket
//! ```
//!
//! `protocol/` is pure (no I/O) so it can be unit- and property-tested;
//! `certs.rs` makes and loads certificates; `fsutil.rs` writes files
//! atomically.
//!
//! Text from peers and users is any sequence of Unicode scalars: nothing here
//! slices a `str` by byte index (`clippy::string_slice` keeps it so); use
//! `get(..)`, `split_at_checked` or char and grapheme boundaries.

#![warn(clippy::string_slice)]

/// What `--version` prints after the program's name: the package version
/// and, when built from a git checkout, the commit (`0.1.0 (rev 1a2b3c4d)`;
/// see build.rs).
pub const VERSION: &str = match option_env!("TLSCHAT_VERSION_WITH_REV") {
    Some(version) => version,
    None => env!("CARGO_PKG_VERSION"),
};

pub mod certs;
pub mod client;
pub mod config;
pub mod connection;
pub mod fsutil;
pub mod generate;
pub mod protocol;
pub mod server;
pub mod service;
pub mod tls;
pub mod trust;
pub mod tui;
