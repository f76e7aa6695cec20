//! `ChatState`: what a client knows about the chat, built only from what
//! the server sent. Shared by the plain mode, the terminal UI and the GUI.
//!
//! The session task delivers [`ClientEvent`]s; [`ChatState::apply`] folds
//! each into the state (current room, its members, connection status) and
//! appends the [`Entry`] a front end shows. Front ends only render; they
//! never decide who is where.

use std::collections::VecDeque;

use chrono::{DateTime, Local};

use super::{ClientEvent, CloseReason};
use crate::protocol::ServerLine;

/// How many entries the scrollback keeps.
pub const SCROLLBACK: usize = 10_000;

/// One thing to show, as the server said it (not yet sanitized).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    Message {
        room: String,
        nick: String,
        text: String,
    },
    Action {
        room: String,
        nick: String,
        text: String,
    },
    Private {
        from: String,
        to: String,
        text: String,
    },
    Join {
        room: String,
        nick: String,
    },
    Part {
        room: String,
        nick: String,
        reason: String,
    },
    Kick {
        nick: String,
        by: String,
        reason: String,
    },
    Users {
        room: String,
        nicks: Vec<String>,
    },
    Rooms(Vec<(String, usize)>),
    Info(String),
    Error {
        code: String,
        text: String,
    },
    Pong(Option<String>),
    /// The client's own notices: connected, reconnecting, closed.
    Status(String),
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub time: DateTime<Local>,
    pub kind: EntryKind,
}

/// Where the connection stands, for the status bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnState {
    Connecting,
    Connected,
    Reconnecting { attempt: u32 },
    Closed,
}

#[derive(Debug)]
pub struct ChatState {
    /// `host:port` as the user gave it.
    pub server: String,
    /// Short fingerprint of the server certificate, once known.
    pub fingerprint: Option<String>,
    pub nick: String,
    pub room: String,
    /// Members of `room`, in the server's order.
    pub users: Vec<String>,
    pub conn: ConnState,
    pub entries: VecDeque<Entry>,
    /// `PONG` tokens the client sent itself (keepalive): not shown.
    hidden_pong_prefix: &'static str,
}

/// Keepalive `/ping` tokens start with this; their `PONG`s are not shown.
pub const KEEPALIVE_TOKEN: &str = "tlschat-keepalive";

impl ChatState {
    pub fn new(server: impl Into<String>, nick: impl Into<String>) -> ChatState {
        ChatState {
            server: server.into(),
            fingerprint: None,
            nick: nick.into(),
            room: String::new(),
            users: Vec::new(),
            conn: ConnState::Connecting,
            entries: VecDeque::new(),
            hidden_pong_prefix: KEEPALIVE_TOKEN,
        }
    }

    /// Folds one event in; returns the entry it added, if any.
    pub fn apply(&mut self, event: &ClientEvent) -> Option<&Entry> {
        let kind = match event {
            ClientEvent::Connected {
                nick, fingerprint, ..
            } => {
                self.nick = nick.clone();
                self.fingerprint = Some(fingerprint.short());
                self.conn = ConnState::Connected;
                EntryKind::Status(format!(
                    "connected to {} as {nick} (certificate {})",
                    self.server,
                    fingerprint.short()
                ))
            }
            ClientEvent::Line(line) => self.apply_line(line)?,
            ClientEvent::Reconnecting {
                reason,
                delay,
                attempt,
            } => {
                self.conn = ConnState::Reconnecting { attempt: *attempt };
                EntryKind::Status(format!(
                    "connection lost ({reason}); reconnecting in {:.0} s",
                    delay.as_secs_f32().round().max(1.0)
                ))
            }
            ClientEvent::Closed(reason) => {
                self.conn = ConnState::Closed;
                EntryKind::Status(match reason {
                    CloseReason::Quit => "disconnected".to_owned(),
                    CloseReason::Refused(r) => format!("refused by the server: {r}"),
                    CloseReason::Banned(r) => format!("banned: {r}"),
                    CloseReason::Kicked { by, reason } => format!("kicked by {by}: {reason}"),
                    CloseReason::Untrusted(e) | CloseReason::Error(e) => format!("error: {e}"),
                })
            }
        };
        Some(self.push(kind))
    }

    /// Appends a client-side notice (e.g. help text, a local error).
    pub fn status(&mut self, text: impl Into<String>) -> &Entry {
        self.push(EntryKind::Status(text.into()))
    }

    fn push(&mut self, kind: EntryKind) -> &Entry {
        if self.entries.len() == SCROLLBACK {
            self.entries.pop_front();
        }
        self.entries.push_back(Entry {
            time: Local::now(),
            kind,
        });
        // Just pushed, so never empty.
        self.entries.back().expect("an entry was just pushed")
    }

    fn is_me(&self, nick: &str) -> bool {
        nick.eq_ignore_ascii_case(&self.nick)
    }

    /// Updates room and members from one server line; the entry to show.
    fn apply_line(&mut self, line: &str) -> Option<EntryKind> {
        let own = |s: &str| s.to_owned();
        Some(match ServerLine::parse(line) {
            ServerLine::Welcome { nick, room } => {
                self.nick = own(nick);
                self.room = own(room);
                self.users.clear();
                return None;
            }
            ServerLine::Msg { room, nick, text } => EntryKind::Message {
                room: own(room),
                nick: own(nick),
                text: own(text),
            },
            ServerLine::Action { room, nick, text } => EntryKind::Action {
                room: own(room),
                nick: own(nick),
                text: own(text),
            },
            ServerLine::PrivMsg { from, to, text } => EntryKind::Private {
                from: own(from),
                to: own(to),
                text: own(text),
            },
            ServerLine::Join { room, nick } => {
                if self.is_me(nick) {
                    self.room = own(room);
                    self.users.clear();
                } else if room == self.room && !self.users.iter().any(|u| u == nick) {
                    self.users.push(own(nick));
                }
                EntryKind::Join {
                    room: own(room),
                    nick: own(nick),
                }
            }
            ServerLine::Part { room, nick, reason } => {
                if room == self.room {
                    self.users.retain(|u| u != nick);
                }
                EntryKind::Part {
                    room: own(room),
                    nick: own(nick),
                    reason: own(reason),
                }
            }
            ServerLine::Kick { nick, by, reason } => {
                self.users.retain(|u| u != nick);
                EntryKind::Kick {
                    nick: own(nick),
                    by: own(by),
                    reason: own(reason),
                }
            }
            ServerLine::Users { room, nicks } => {
                if room == self.room {
                    self.users = nicks.iter().map(|n| own(n)).collect();
                }
                EntryKind::Users {
                    room: own(room),
                    nicks: nicks.into_iter().map(own).collect(),
                }
            }
            ServerLine::Rooms(rooms) => {
                EntryKind::Rooms(rooms.into_iter().map(|(r, n)| (own(r), n)).collect())
            }
            ServerLine::Info(text) => EntryKind::Info(own(text)),
            ServerLine::Error { code, text } => EntryKind::Error {
                code: code.to_string(),
                text: own(text),
            },
            ServerLine::Pong(token) => {
                if token.is_some_and(|t| t.starts_with(self.hidden_pong_prefix)) {
                    return None;
                }
                EntryKind::Pong(token.map(own))
            }
            // Handshake lines never reach a logged-in session; unknown words
            // are ignored, as the protocol asks.
            ServerLine::Nick
            | ServerLine::Pass
            | ServerLine::Refuse(_)
            | ServerLine::Ban(_)
            | ServerLine::Unknown(_) => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::Fingerprint;

    fn line(s: &mut ChatState, l: &str) -> Option<EntryKind> {
        s.apply(&ClientEvent::Line(l.into()))
            .map(|e| e.kind.clone())
    }

    #[test]
    fn tracks_room_and_members() {
        let mut s = ChatState::new("host:55555", "alice");
        s.apply(&ClientEvent::Connected {
            server: "host:55555".into(),
            nick: "alice".into(),
            fingerprint: Fingerprint([7; 32]),
        });
        assert_eq!(s.conn, ConnState::Connected);
        assert_eq!(line(&mut s, "WELCOME alice #lobby"), None);
        line(&mut s, "JOIN #lobby alice");
        line(&mut s, "USERS #lobby bob alice");
        assert_eq!(s.users, ["bob", "alice"]);
        line(&mut s, "JOIN #lobby carol");
        assert_eq!(s.users, ["bob", "alice", "carol"]);
        line(&mut s, "PART #lobby bob quit");
        line(&mut s, "KICK carol admin spam");
        assert_eq!(s.users, ["alice"]);
        line(&mut s, "PART #lobby alice moved");
        line(&mut s, "JOIN #rust alice");
        assert_eq!(s.room, "#rust");
        assert!(s.users.is_empty());
        line(&mut s, "USERS #rust dave alice");
        assert_eq!(s.users, ["dave", "alice"]);
        // A USERS for another room (not ours) does not replace the sidebar.
        line(&mut s, "USERS #other x");
        assert_eq!(s.users, ["dave", "alice"]);
    }

    #[test]
    fn keepalive_pongs_are_hidden_and_unknown_words_ignored() {
        let mut s = ChatState::new("h", "a");
        assert_eq!(line(&mut s, &format!("PONG {KEEPALIVE_TOKEN}-1")), None);
        assert_eq!(
            line(&mut s, "PONG x"),
            Some(EntryKind::Pong(Some("x".into())))
        );
        assert_eq!(line(&mut s, "FUTURE thing"), None);
    }

    #[test]
    fn scrollback_is_bounded() {
        let mut s = ChatState::new("h", "a");
        for i in 0..SCROLLBACK + 5 {
            s.status(format!("{i}"));
        }
        assert_eq!(s.entries.len(), SCROLLBACK);
        assert_eq!(
            s.entries.front().unwrap().kind,
            EntryKind::Status("5".into())
        );
    }
}
