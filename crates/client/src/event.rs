//! What the session tells a front end ([`ClientEvent`]), and the session's
//! reading of server lines ([`ServerLines`]): every line after the login
//! is parsed there once, into the [`EntryKind`] a front end shows, and the
//! current room and our nickname (after a `RENAME` of us) are kept there,
//! the one place that decides them for the session.
//!
//! ```text
//! server line ──ServerLines::read──▶ ClientEvent::Line(EntryKind)
//!                                    ClientEvent::Room(room)  (our own JOIN)
//!                                    Err(Protocol)            (WELCOME again)
//!   "@<at> " stamp, HISTORY…, HISTORYEND ─▶ replay.rs (dropped when seen;
//!                                    the catch-up to send: take_requests)
//! ```

use std::time::Duration;

use crate::replay::{Held, Tracker};
use crate::state::{renames_self, EntryKind};
use crate::{exit, ChangedCertificate, ConnectError};
use tlschat_protocol::history::split_stamp;
use tlschat_protocol::{Fingerprint, RoomName, ServerLine, LOBBY};

/// Keepalive `/ping` tokens start with this; their `PONG`s are not passed
/// on.
pub(crate) const KEEPALIVE_TOKEN: &str = "tlschat-keepalive";

/// What the session tells the front end.
#[derive(Debug, Clone)]
pub enum ClientEvent {
    /// Logged in (first time, or again after a reconnect).
    Connected {
        server: String,
        nick: String,
        fingerprint: Fingerprint,
        /// What TLS negotiated, e.g. `TLS 1.3, X25519MLKEM768`.
        tls: String,
    },
    /// A server line after the login, parsed once, as the front end shows
    /// it (not yet sanitized). Lines with nothing to show (handshake or
    /// unknown words, the answers to the session's own keepalive) are not
    /// passed on.
    Line(EntryKind),
    /// The server put us in this room (a `JOIN` naming us, right after
    /// that line's [`ClientEvent::Line`]). The session owns the current
    /// room and rejoins it after a reconnect; front ends mirror it.
    Room(String),
    /// The connection was lost; trying again after `delay`.
    Reconnecting {
        reason: String,
        delay: Duration,
        attempt: u32,
    },
    /// The session is over; nothing follows.
    Closed(CloseReason),
}

/// Why the session ended; [`CloseReason::exit_code`] maps it to the
/// documented exit codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    Quit,
    Refused(String),
    Banned(String),
    Kicked {
        by: String,
        reason: String,
    },
    Untrusted(String),
    /// A reconnect met another certificate than the one known for the
    /// server: a front end shows both fingerprints, as at first connect.
    CertificateChanged(Box<ChangedCertificate>),
    Error(String),
}

impl CloseReason {
    pub fn exit_code(&self) -> u8 {
        match self {
            CloseReason::Quit => exit::OK,
            CloseReason::Refused(_) | CloseReason::Banned(_) | CloseReason::Kicked { .. } => {
                exit::REFUSED
            }
            CloseReason::Untrusted(_) | CloseReason::CertificateChanged(_) => exit::TRUST,
            CloseReason::Error(_) => exit::ERROR,
        }
    }

    /// What a front end says when the session ends this way (not yet
    /// sanitized: the reasons quote the server).
    pub fn describe(&self) -> String {
        match self {
            CloseReason::Quit => "disconnected".to_owned(),
            CloseReason::Refused(r) => format!("refused by the server: {r}"),
            CloseReason::Banned(r) if r.is_empty() => "banned".to_owned(),
            CloseReason::Banned(r) => format!("banned: {r}"),
            CloseReason::Kicked { by, reason } => format!("kicked by {by}: {reason}"),
            CloseReason::Untrusted(e) | CloseReason::Error(e) => format!("error: {e}"),
            CloseReason::CertificateChanged(c) => format!("error: {c}"),
        }
    }

    pub(crate) fn from_error(e: ConnectError) -> CloseReason {
        match e {
            ConnectError::Refused(r) => CloseReason::Refused(r),
            ConnectError::Banned(r) => CloseReason::Banned(r),
            ConnectError::CertificateChanged(c) => CloseReason::CertificateChanged(c),
            e if e.exit_code() == exit::TRUST => CloseReason::Untrusted(e.to_string()),
            e => CloseReason::Error(e.to_string()),
        }
    }
}

/// The session's reading of server lines: parses each once, keeps the
/// current room (our own `JOIN`s with a valid room name), notes a kick
/// of ourselves, and keeps each room's history cursor (`replay.rs`), so
/// kept lines already shown are not passed on. Pure, so tests and fuzzers
/// feed it lines as the session does.
#[derive(Debug, Clone)]
pub struct ServerLines {
    nick: String,
    room: String,
    /// The room the session goes back to after a reconnect, until its own
    /// `JOIN` (a connection lost again before it still goes back there,
    /// not to the lobby the login put it in).
    rejoin: Option<String>,
    kicked: Option<(String, String)>,
    pub(crate) history: Tracker,
    held: Held,
}

impl ServerLines {
    /// For `nick`, logged in and in `room`.
    pub fn new(nick: impl Into<String>, room: impl Into<String>) -> ServerLines {
        ServerLines {
            nick: nick.into(),
            room: room.into(),
            rejoin: None,
            kicked: None,
            history: Tracker::default(),
            held: Held::default(),
        }
    }

    /// The same in history mode (the server selected ALPN `tlschat/2`).
    pub fn with_history(nick: impl Into<String>, room: impl Into<String>) -> ServerLines {
        let mut lines = ServerLines::new(nick, room);
        lines.history.connected(true, None);
        lines
    }

    /// The room we are in, as the server last said.
    pub fn room(&self) -> &str {
        &self.room
    }

    /// Our nickname: the one we logged in with, or the last a `RENAME`
    /// gave us. A reconnect logs in with it.
    pub fn nick(&self) -> &str {
        &self.nick
    }

    /// A new connection logged in as `nick`, in history mode or not: the
    /// room stays (after a reconnect the session rejoins it, and its
    /// history catches up), an old kick is forgotten.
    pub(crate) fn connected(&mut self, nick: &str, history_mode: bool, reconnect: bool) {
        nick.clone_into(&mut self.nick);
        self.kicked = None;
        if !reconnect {
            self.rejoin = None;
        } else if self.rejoin.is_none() {
            self.rejoin = Some(self.room.clone());
        }
        let rejoin = reconnect.then(|| self.rejoin_room().to_owned());
        self.history.connected(history_mode, rejoin.as_deref());
    }

    /// The room to go back to after a reconnect: the one the user was in,
    /// or the one a lost connection was still on its way back to.
    pub(crate) fn rejoin_room(&self) -> &str {
        self.rejoin.as_deref().unwrap_or(&self.room)
    }

    /// A line the session sends (a `/history` or `/search` makes its
    /// answer expected).
    pub(crate) fn sent(&mut self, line: &str) {
        self.history.sent(line);
    }

    /// Lines the session is to send on its own now (a history catch-up).
    pub(crate) fn take_requests(&mut self) -> Vec<String> {
        self.history.take_requests()
    }

    /// The newest stamp seen in `room` with nothing missing before it
    /// (history mode).
    #[cfg(test)]
    pub(crate) fn cursor(&self, room: &str) -> Option<u64> {
        self.history.cursor(room)
    }

    /// Who kicked us and why, if the server said so on this connection.
    pub(crate) fn take_kick(&mut self) -> Option<(String, String)> {
        self.kicked.take()
    }

    /// A line's stamp and the line after it: only in history mode, and
    /// only before a room line (`MSG`, `ACTION`); anything else starting
    /// with `@` stays an unknown line, as in protocol v1.
    fn stamp<'l>(&self, line: &'l str) -> (Option<u64>, &'l str) {
        match split_stamp(line) {
            (Some(at), rest)
                if self.history.history_mode()
                    && (rest.starts_with("MSG ") || rest.starts_with("ACTION ")) =>
            {
                (Some(at), rest)
            }
            _ => (None, line),
        }
    }

    /// One server line: the events for the front end, or the protocol
    /// error that ends the connection. While a room rejoined after a
    /// reconnect catches up, its kept and live lines are held, then passed
    /// on in the order they were said (`replay::Held`).
    pub fn read(&mut self, line: &str) -> Result<impl Iterator<Item = ClientEvent>, ConnectError> {
        let events: Vec<ClientEvent> = self.read_line(line)?.collect();
        Ok(self.held.pass(events, &self.history).into_iter())
    }

    /// What is held for a catch-up that will not end now (the connection
    /// is over), in the order it was said.
    pub(crate) fn take_held(&mut self) -> Vec<ClientEvent> {
        self.held.flush()
    }

    /// One server line: its events (at most two) before any holding.
    fn read_line(&mut self, line: &str) -> Result<impl Iterator<Item = ClientEvent>, ConnectError> {
        let (at, line) = self.stamp(line);
        let parsed = ServerLine::parse(line);
        let nothing = || Ok([None, None].into_iter().flatten());
        let mut entered = None;
        match parsed {
            ServerLine::Welcome { .. } => {
                return Err(ConnectError::Protocol(
                    "the server sent WELCOME again in the middle of the session".into(),
                ))
            }
            ServerLine::Join { room, nick }
                if nick.eq_ignore_ascii_case(&self.nick) && RoomName::parse(room).is_ok() =>
            {
                room.clone_into(&mut self.room);
                // The login's lobby is on the way back, not the way back.
                let on_the_way = self.rejoin.as_deref().is_some_and(|r| {
                    !r.eq_ignore_ascii_case(room) && room.eq_ignore_ascii_case(LOBBY)
                });
                if !on_the_way {
                    self.rejoin = None;
                }
                self.history.joined(room);
                entered = Some(ClientEvent::Room(room.to_owned()));
            }
            ServerLine::Kick { nick, by, reason } if nick.eq_ignore_ascii_case(&self.nick) => {
                self.kicked = Some((by.to_owned(), reason.to_owned()));
            }
            ServerLine::Rename { old, new } if renames_self(&self.nick, old, new) => {
                new.clone_into(&mut self.nick);
            }
            ServerLine::Pong(Some(token)) if token.starts_with(KEEPALIVE_TOKEN) => {
                return nothing()
            }
            ServerLine::Msg { room, .. } | ServerLine::Action { room, .. } => {
                if let Some(at) = at {
                    self.history.live(room, at);
                }
            }
            ServerLine::History(kept) if !self.history.history(&kept) => return nothing(),
            ServerLine::HistoryEnd { room, sent, left } => {
                return Ok(match self.history.history_end(room, sent, left) {
                    Some((end, notice)) => [
                        Some(ClientEvent::Line(EntryKind::HistoryEnd(end))),
                        notice.map(|n| ClientEvent::Line(EntryKind::Status(n))),
                    ],
                    None => [None, None],
                }
                .into_iter()
                .flatten());
            }
            ServerLine::Info(text) => self.history.info(text),
            ServerLine::Error { code, .. } => self.history.error(code),
            ServerLine::Found(_) if !self.history.found() => return nothing(),
            ServerLine::FoundEnd { .. } if !self.history.found_end() => return nothing(),
            _ => {}
        }
        let shown = EntryKind::from_server(parsed, at).map(ClientEvent::Line);
        Ok([shown, entered].into_iter().flatten())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(lines: &mut ServerLines, line: &str) -> Vec<String> {
        let events = lines.read(line).unwrap();
        events.map(|e| format!("{e:?}")).collect()
    }

    #[test]
    fn our_own_joins_move_the_room() {
        let mut lines = ServerLines::new("Alice", "#lobby");
        assert_eq!(read(&mut lines, "JOIN #rust bob").len(), 1);
        assert_eq!(lines.room(), "#lobby");
        let events = read(&mut lines, "JOIN #rust alice");
        assert_eq!(events.len(), 2, "{events:?}");
        assert!(events[1].contains("Room(\"#rust\")"), "{events:?}");
        assert_eq!(lines.room(), "#rust");
        // Not a room name: shown, but nobody moves.
        assert_eq!(read(&mut lines, "JOIN lobby\u{1b} alice").len(), 1);
        assert_eq!(lines.room(), "#rust");
    }

    #[test]
    fn keepalive_pongs_and_unknown_words_are_not_passed_on() {
        let mut lines = ServerLines::new("a", "#lobby");
        assert!(read(&mut lines, &format!("PONG {KEEPALIVE_TOKEN}-1")).is_empty());
        assert_eq!(read(&mut lines, "PONG x").len(), 1);
        assert!(read(&mut lines, "FUTURE thing").is_empty());
        assert!(read(&mut lines, "NICK").is_empty());
    }

    #[test]
    fn a_rename_of_us_changes_the_nick_the_session_logs_in_with() {
        let mut lines = ServerLines::new("Alice", "#lobby");
        assert_eq!(read(&mut lines, "RENAME bob robert").len(), 1);
        assert_eq!(lines.nick(), "Alice");
        // Not a nickname: shown, but ours stays.
        for bad in ["Алиса", "a\u{1b}[2J", "-x"] {
            read(&mut lines, &format!("RENAME alice {bad}"));
            assert_eq!(lines.nick(), "Alice", "{bad:?}");
        }
        assert_eq!(read(&mut lines, "RENAME ALICE Alicia").len(), 1);
        assert_eq!(lines.nick(), "Alicia");
        // A kick now names the new nick.
        read(&mut lines, "KICK alice admin x");
        assert_eq!(lines.take_kick(), None);
        read(&mut lines, "KICK alicia admin x");
        assert!(lines.take_kick().is_some());
    }

    #[test]
    fn a_second_welcome_is_a_protocol_error_and_a_kick_is_noted() {
        let mut lines = ServerLines::new("alice", "#lobby");
        assert!(matches!(
            lines.read("WELCOME mallory #elsewhere"),
            Err(ConnectError::Protocol(_))
        ));
        assert_eq!(lines.room(), "#lobby");
        read(&mut lines, "KICK bob admin spam");
        assert_eq!(lines.take_kick(), None);
        read(&mut lines, "KICK ALICE admin spam");
        assert_eq!(lines.take_kick(), Some(("admin".into(), "spam".into())));
    }
}
