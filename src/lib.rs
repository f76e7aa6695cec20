//! tlschat: the two programs (`src/bin/`) and the terminal front end.
//!
//! ```text
//! crates/protocol  tlschat-protocol     framing, commands, server lines, names,
//!                                       fingerprints, the crypto provider
//! crates/fs        tlschat-fs           crash-safe files, private directories
//! crates/server    tlschat-server-core  the server: hub, peers, limits, bans,
//!                                       accounts, config, certificates
//! crates/client    tlschat-client-core  the client: trust, session, reconnect,
//!                                       chat state, sanitising
//! this package     tlschat              src/bin/tlschat-server.rs, src/bin/tlschat.rs,
//!                                       the front ends: terminal UI (tui/),
//!                                       plain line mode (plain.rs); --generate
//! ```
//!
//! A desktop front end sits beside `tui/` as its own crate on
//! `tlschat-client-core`; nothing in the server crate knows about a terminal.
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

pub mod generate;
pub mod plain;
pub mod tui;
