//! tlschat-protocol: what the server and the clients agree on, protocol v1
//! and its private-server and history additions, with no server, hashing or terminal
//! code in it.
//!
//! ```text
//! socket bytes → connection::LineReader (capped framing, line::LineDecoder)
//!   → &str line → Command::parse          (the server reads clients)
//!               → ServerLine::parse       (the clients read the server)
//! ServerLine::encode → bytes, once per line however many recipients it has
//! certificate DER → Fingerprint (what clients pin)
//! tls::provider() → the one rustls crypto provider both ends build from
//! "HOST[:PORT]" → HostPort; "tlschat://…" → InviteLink (host, fingerprint, code)
//! "30m" / "7d" → duration::parse → Duration (bans, invites)
//! "@<at> MSG …" → history::split_stamp → (stamp, v1 line)  (history mode)
//! ```
//!
//! [`line`], [`command`], [`names`], [`server_line`], [`duration`],
//! [`hostport`], [`invite`] and [`history`] are pure (no I/O),
//! so they are unit-, property- and fuzz-tested without sockets;
//! [`connection`] is the only module that touches a stream. The normative
//! description is `docs/protocol.md`.
//!
//! Text from peers and users is any sequence of Unicode scalars: nothing here
//! slices a `str` by byte index (`clippy::string_slice` keeps it so); use
//! `get(..)`, `split_at_checked` or char and grapheme boundaries.

#![warn(clippy::string_slice)]

pub mod command;
pub mod connection;
pub mod duration;
pub mod fingerprint;
pub mod history;
pub mod hostport;
pub mod invite;
pub mod line;
pub mod names;
pub mod server_line;
pub mod tls;

pub use command::{Command, CommandError, Privilege, Registration, RegistrationChange, Secret};
pub use connection::Connection;
pub use fingerprint::{Fingerprint, FingerprintError};
pub use history::HistoryAsk;
pub use hostport::HostPort;
pub use invite::{InviteCode, InviteLink, InvitePrefix, LinkError};
pub use line::{Frame, LineDecoder};
pub use names::{Mark, NameError, Nick, RoomName};
pub use server_line::{ErrorCode, Kept, PassFor, ServerLine};

/// Default TCP port.
pub const DEFAULT_PORT: u16 = 55555;
/// Longest line a client may send, in bytes, including its `\n`.
pub const MAX_CLIENT_LINE: usize = 4096;
/// Longest line a client accepts from the server (`USERS` of a big room).
pub const MAX_SERVER_LINE: usize = 1 << 20;
/// Failed nickname attempts before the server closes the handshake.
pub const MAX_NICK_TRIES: usize = 5;
/// The room every user enters first.
pub const LOBBY: &str = "#lobby";
/// In a room with more members than this, others' JOIN and PART are not broadcast.
pub const QUIET_ROOM_THRESHOLD: usize = 500;

/// Why [`check_text`] refused a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("control character U+{:04X} at byte {at}; only printable text and TAB may be sent", *ch as u32)]
pub struct BadText {
    pub ch: char,
    pub at: usize,
}

/// True for the characters that never reach other clients: C0 controls
/// except TAB, DEL, and C1 controls.
pub fn is_forbidden_control(c: char) -> bool {
    (c.is_control() && c != '\t') || ('\u{80}'..='\u{9f}').contains(&c)
}

/// Checks a line against the text rule (no control characters but TAB).
pub fn check_text(s: &str) -> Result<(), BadText> {
    match s.char_indices().find(|&(_, c)| is_forbidden_control(c)) {
        Some((at, ch)) => Err(BadText { ch, at }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_rule() {
        assert!(check_text("hello\tworld ünïcödé 😀 \u{202e}").is_ok());
        for bad in ["a\u{0}b", "\u{1b}[31m", "x\u{7f}", "\u{85}", "\u{9b}", "\r"] {
            assert!(check_text(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            check_text("ab\u{7}").unwrap_err(),
            BadText { ch: '\u{7}', at: 2 }
        );
    }
}
