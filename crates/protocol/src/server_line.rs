//! The lines a server sends: [`ServerLine`] and the [`ErrorCode`]s.
//!
//! The server builds a `ServerLine` from validated names and checked text and
//! calls [`ServerLine::encode`] once; the resulting `Bytes` is shared by every
//! recipient. Clients call [`ServerLine::parse`] on each received line;
//! unknown words parse as [`ServerLine::Unknown`] so that newer servers do not
//! break older clients.

use std::fmt;
use std::str::FromStr;

use bytes::{BufMut, Bytes, BytesMut};

/// The error codes: protocol v1's and `bad-argument`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    NickInvalid,
    NickTaken,
    LineTooLong,
    InvalidUtf8,
    BadText,
    UnknownCommand,
    NotPermitted,
    NoSuchNick,
    BadRoom,
    RateLimited,
    Timeout,
    ServerFull,
    TlsRequired,
    RecipientBusy,
    /// A malformed argument (a count, a duration, a password).
    BadArgument,
}

impl ErrorCode {
    pub(crate) const ALL: [ErrorCode; 15] = [
        ErrorCode::NickInvalid,
        ErrorCode::NickTaken,
        ErrorCode::LineTooLong,
        ErrorCode::InvalidUtf8,
        ErrorCode::BadText,
        ErrorCode::UnknownCommand,
        ErrorCode::NotPermitted,
        ErrorCode::NoSuchNick,
        ErrorCode::BadRoom,
        ErrorCode::RateLimited,
        ErrorCode::Timeout,
        ErrorCode::ServerFull,
        ErrorCode::TlsRequired,
        ErrorCode::RecipientBusy,
        ErrorCode::BadArgument,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::NickInvalid => "nick-invalid",
            ErrorCode::NickTaken => "nick-taken",
            ErrorCode::LineTooLong => "line-too-long",
            ErrorCode::InvalidUtf8 => "invalid-utf8",
            ErrorCode::BadText => "bad-text",
            ErrorCode::UnknownCommand => "unknown-command",
            ErrorCode::NotPermitted => "not-permitted",
            ErrorCode::NoSuchNick => "no-such-nick",
            ErrorCode::BadRoom => "bad-room",
            ErrorCode::RateLimited => "rate-limited",
            ErrorCode::Timeout => "timeout",
            ErrorCode::ServerFull => "server-full",
            ErrorCode::TlsRequired => "tls-required",
            ErrorCode::RecipientBusy => "recipient-busy",
            ErrorCode::BadArgument => "bad-argument",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ErrorCode {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        ErrorCode::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or(())
    }
}

/// What a `PASS` prompt asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PassFor {
    /// `PASS`: the account's password.
    Account,
    /// `PASS join`: the server's join password or an invite code.
    Join,
}

/// One line from server to client. Fields borrow; `encode` makes the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerLine<'a> {
    Nick,
    Pass(PassFor),
    Refuse(&'a str),
    Ban(&'a str),
    Welcome {
        nick: &'a str,
        room: &'a str,
    },
    Msg {
        room: &'a str,
        nick: &'a str,
        text: &'a str,
    },
    Action {
        room: &'a str,
        nick: &'a str,
        text: &'a str,
    },
    PrivMsg {
        from: &'a str,
        to: &'a str,
        text: &'a str,
    },
    Join {
        room: &'a str,
        nick: &'a str,
    },
    Part {
        room: &'a str,
        nick: &'a str,
        reason: &'a str,
    },
    Kick {
        nick: &'a str,
        by: &'a str,
        reason: &'a str,
    },
    /// `USERS <room> <entry>…`: an entry is a nickname, `@`-marked for a
    /// moderator ([`crate::names::split_mark`] takes the mark off).
    Users {
        room: &'a str,
        nicks: Vec<&'a str>,
    },
    /// `<old>` is now called `<new>`.
    Rename {
        old: &'a str,
        new: &'a str,
    },
    Rooms(Vec<(&'a str, usize)>),
    /// `HISTORY <room> <at> <nick> <text>` (a kept `MSG`) or
    /// `HISTORY <room> <at> *<nick> <text>` (a kept `ACTION`).
    History(Kept<'a>),
    /// `HISTORYEND <room> <sent> <left>`: the end of a replay or of a
    /// `/history` answer; `left` older kept lines of the asked range were
    /// not sent.
    HistoryEnd {
        room: &'a str,
        sent: u32,
        left: u32,
    },
    /// `FOUND <room> <at> <nick>|*<nick> <text>`: one `/search` hit.
    Found(Kept<'a>),
    /// `FOUNDEND <room> <count> <more>`: the end of a `/search` answer;
    /// `more`: there were further hits.
    FoundEnd {
        room: &'a str,
        count: u32,
        more: bool,
    },
    Info(&'a str),
    Pong(Option<&'a str>),
    Error {
        code: ErrorCode,
        text: &'a str,
    },
    /// A word this version does not know (clients ignore it).
    Unknown(&'a str),
}

/// A kept room line, as `HISTORY` and `FOUND` carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kept<'a> {
    pub room: &'a str,
    /// The server's stamp (unix milliseconds, unique within the room).
    pub at: u64,
    /// The nickname it was said under.
    pub nick: &'a str,
    /// Said with `/me`.
    pub action: bool,
    pub text: &'a str,
}

impl<'a> Kept<'a> {
    fn write(&self, word: &str, b: &mut BytesMut) {
        b.put_slice(word.as_bytes());
        b.put_u8(b' ');
        b.put_slice(self.room.as_bytes());
        b.put_u8(b' ');
        b.put_slice(self.at.to_string().as_bytes());
        b.put_slice(if self.action { b" *" } else { b" " });
        b.put_slice(self.nick.as_bytes());
        b.put_u8(b' ');
        b.put_slice(self.text.as_bytes());
    }

    fn parse(rest: &'a str) -> Option<Kept<'a>> {
        let ([room, at, who], text) = text_after::<3>(rest)?;
        let at = crate::history::parse_stamp(at)?;
        let (action, nick) = match who.strip_prefix('*') {
            Some(nick) => (true, nick),
            None => (false, who),
        };
        (!nick.is_empty()).then_some(Kept {
            room,
            at,
            nick,
            action,
            text,
        })
    }
}

impl ServerLine<'_> {
    /// The line with its `\n`, ready to be queued to any number of clients.
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(self.size_hint());
        self.write(&mut b);
        b.put_u8(b'\n');
        b.freeze()
    }

    fn size_hint(&self) -> usize {
        let fields = match self {
            ServerLine::Users { room, nicks } => {
                room.len() + nicks.iter().map(|n| n.len() + 1).sum::<usize>()
            }
            ServerLine::Rooms(rooms) => rooms.iter().map(|(r, _)| r.len() + 8).sum(),
            ServerLine::Msg { room, nick, text }
            | ServerLine::Action { room, nick, text }
            | ServerLine::PrivMsg {
                from: room,
                to: nick,
                text,
            } => room.len() + nick.len() + text.len() + 2,
            ServerLine::History(k) | ServerLine::Found(k) => {
                k.room.len() + k.nick.len() + k.text.len() + 24
            }
            _ => 64,
        };
        fields + 16
    }

    fn write(&self, b: &mut BytesMut) {
        fn put(b: &mut BytesMut, parts: &[&str]) {
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    b.put_u8(b' ');
                }
                b.put_slice(p.as_bytes());
            }
        }
        match self {
            ServerLine::Nick => put(b, &["NICK"]),
            ServerLine::Pass(PassFor::Account) => put(b, &["PASS"]),
            ServerLine::Pass(PassFor::Join) => put(b, &["PASS", "join"]),
            ServerLine::Refuse(r) => put(b, &["REFUSE", r]),
            ServerLine::Ban(r) => put(b, &["BAN", r]),
            ServerLine::Welcome { nick, room } => put(b, &["WELCOME", nick, room]),
            ServerLine::Msg { room, nick, text } => put(b, &["MSG", room, nick, text]),
            ServerLine::Action { room, nick, text } => put(b, &["ACTION", room, nick, text]),
            ServerLine::PrivMsg { from, to, text } => put(b, &["PRIVMSG", from, to, text]),
            ServerLine::Join { room, nick } => put(b, &["JOIN", room, nick]),
            ServerLine::Part { room, nick, reason } => put(b, &["PART", room, nick, reason]),
            ServerLine::Kick { nick, by, reason } => put(b, &["KICK", nick, by, reason]),
            ServerLine::Rename { old, new } => put(b, &["RENAME", old, new]),
            ServerLine::Users { room, nicks } => {
                put(b, &["USERS", room]);
                for n in nicks {
                    b.put_u8(b' ');
                    b.put_slice(n.as_bytes());
                }
            }
            ServerLine::Rooms(rooms) => {
                b.put_slice(b"ROOMS");
                for (room, count) in rooms {
                    b.put_u8(b' ');
                    b.put_slice(room.as_bytes());
                    b.put_u8(b'=');
                    b.put_slice(count.to_string().as_bytes());
                }
            }
            ServerLine::History(k) => k.write("HISTORY", b),
            ServerLine::Found(k) => k.write("FOUND", b),
            ServerLine::HistoryEnd { room, sent, left } => put(
                b,
                &["HISTORYEND", room, &sent.to_string(), &left.to_string()],
            ),
            ServerLine::FoundEnd { room, count, more } => put(
                b,
                &[
                    "FOUNDEND",
                    room,
                    &count.to_string(),
                    if *more { "1" } else { "0" },
                ],
            ),
            ServerLine::Info(t) => put(b, &["INFO", t]),
            ServerLine::Pong(None) => put(b, &["PONG"]),
            ServerLine::Pong(Some(t)) => put(b, &["PONG", t]),
            ServerLine::Error { code, text } => put(b, &["ERROR", code.as_str(), text]),
            ServerLine::Unknown(raw) => put(b, &[raw]),
        }
    }

    /// Parses one received line (without its `\n`). Never fails: a line that
    /// does not fit its word's shape, or an unknown word, is `Unknown`.
    pub fn parse(line: &str) -> ServerLine<'_> {
        let (word, rest) = split1(line);
        let parsed = match word {
            "NICK" => Some(ServerLine::Nick),
            // A v1 client reads only the word and prompts for `PASS join` too.
            "PASS" => match rest {
                "" => Some(ServerLine::Pass(PassFor::Account)),
                "join" => Some(ServerLine::Pass(PassFor::Join)),
                _ => None,
            },
            "REFUSE" => Some(ServerLine::Refuse(rest)),
            "BAN" => Some(ServerLine::Ban(rest)),
            "WELCOME" => fields::<2>(rest).map(|[nick, room]| ServerLine::Welcome { nick, room }),
            "MSG" => text_after::<2>(rest).map(|([room, nick], text)| ServerLine::Msg {
                room,
                nick,
                text,
            }),
            "ACTION" => text_after::<2>(rest).map(|([room, nick], text)| ServerLine::Action {
                room,
                nick,
                text,
            }),
            "PRIVMSG" => text_after::<2>(rest).map(|([from, to], text)| ServerLine::PrivMsg {
                from,
                to,
                text,
            }),
            "JOIN" => fields::<2>(rest).map(|[room, nick]| ServerLine::Join { room, nick }),
            "RENAME" => fields::<2>(rest).map(|[old, new]| ServerLine::Rename { old, new }),
            "PART" => text_after::<2>(rest).map(|([room, nick], reason)| ServerLine::Part {
                room,
                nick,
                reason,
            }),
            "KICK" => text_after::<2>(rest).map(|([nick, by], reason)| ServerLine::Kick {
                nick,
                by,
                reason,
            }),
            "USERS" => {
                let mut it = rest.split(' ').filter(|s| !s.is_empty());
                it.next().map(|room| ServerLine::Users {
                    room,
                    nicks: it.collect(),
                })
            }
            "ROOMS" => rest
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(|pair| {
                    let (room, n) = pair.rsplit_once('=')?;
                    Some((room, n.parse().ok()?))
                })
                .collect::<Option<Vec<_>>>()
                .map(ServerLine::Rooms),
            "HISTORY" => Kept::parse(rest).map(ServerLine::History),
            "FOUND" => Kept::parse(rest).map(ServerLine::Found),
            "HISTORYEND" => fields::<3>(rest).and_then(|[room, sent, left]| {
                Some(ServerLine::HistoryEnd {
                    room,
                    sent: count(sent)?,
                    left: count(left)?,
                })
            }),
            "FOUNDEND" => fields::<3>(rest).and_then(|[room, n, more]| {
                Some(ServerLine::FoundEnd {
                    room,
                    count: count(n)?,
                    more: match more {
                        "0" => false,
                        "1" => true,
                        _ => None?,
                    },
                })
            }),
            "INFO" => Some(ServerLine::Info(rest)),
            "PONG" => Some(ServerLine::Pong((!rest.is_empty()).then_some(rest))),
            "ERROR" => {
                let (code, text) = split1(rest);
                code.parse()
                    .ok()
                    .map(|code| ServerLine::Error { code, text })
            }
            _ => None,
        };
        parsed.unwrap_or(ServerLine::Unknown(line))
    }
}

/// Splits off the first space-separated word.
fn split1(s: &str) -> (&str, &str) {
    s.split_once(' ').unwrap_or((s, ""))
}

/// A count: ASCII digits only (`str::parse` would take a `+`).
fn count(s: &str) -> Option<u32> {
    s.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| s.parse().ok())
        .flatten()
}

/// Exactly N space-separated fields.
fn fields<const N: usize>(s: &str) -> Option<[&str; N]> {
    let mut out = [""; N];
    let mut it = s.split(' ');
    for slot in &mut out {
        *slot = it.next().filter(|f| !f.is_empty())?;
    }
    it.next().is_none().then_some(out)
}

/// N fields, then the rest of the line as free text (possibly empty).
fn text_after<const N: usize>(s: &str) -> Option<([&str; N], &str)> {
    let mut out = [""; N];
    let mut rest = s;
    for slot in &mut out {
        let (f, r) = split1(rest);
        if f.is_empty() {
            return None;
        }
        *slot = f;
        rest = r;
    }
    Some((out, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_the_table() {
        let cases: Vec<(ServerLine, &str)> = vec![
            (ServerLine::Nick, "NICK"),
            (
                ServerLine::Welcome {
                    nick: "alice",
                    room: "#lobby",
                },
                "WELCOME alice #lobby",
            ),
            (
                ServerLine::Msg {
                    room: "#lobby",
                    nick: "bob",
                    text: "hi there",
                },
                "MSG #lobby bob hi there",
            ),
            (
                ServerLine::Users {
                    room: "#lobby",
                    nicks: vec!["bob", "alice"],
                },
                "USERS #lobby bob alice",
            ),
            (
                ServerLine::Rooms(vec![("#a", 2), ("#b", 10)]),
                "ROOMS #a=2 #b=10",
            ),
            (ServerLine::Pong(None), "PONG"),
            (ServerLine::Pass(PassFor::Account), "PASS"),
            (ServerLine::Pass(PassFor::Join), "PASS join"),
            (
                ServerLine::Rename {
                    old: "alice",
                    new: "Alice_2",
                },
                "RENAME alice Alice_2",
            ),
            (
                ServerLine::Users {
                    room: "#lobby",
                    nicks: vec!["@bob", "admin", "alice"],
                },
                "USERS #lobby @bob admin alice",
            ),
            (
                ServerLine::Error {
                    code: ErrorCode::BadArgument,
                    text: "a password has at least 8 characters",
                },
                "ERROR bad-argument a password has at least 8 characters",
            ),
            (ServerLine::Pong(Some("t1")), "PONG t1"),
            (
                ServerLine::Error {
                    code: ErrorCode::NickTaken,
                    text: "alice is in use",
                },
                "ERROR nick-taken alice is in use",
            ),
        ];
        for (line, text) in cases {
            assert_eq!(line.encode(), format!("{text}\n").as_bytes());
            assert_eq!(ServerLine::parse(text), line);
        }
    }

    #[test]
    fn tolerates_unknown_and_malformed_lines() {
        assert_eq!(ServerLine::parse("HELLO x"), ServerLine::Unknown("HELLO x"));
        assert_eq!(
            ServerLine::parse("WELCOME alice"),
            ServerLine::Unknown("WELCOME alice")
        );
        assert_eq!(
            ServerLine::parse("ERROR nope x"),
            ServerLine::Unknown("ERROR nope x")
        );
        assert_eq!(
            ServerLine::parse("ROOMS #a=x"),
            ServerLine::Unknown("ROOMS #a=x")
        );
        assert_eq!(ServerLine::parse("ROOMS"), ServerLine::Rooms(vec![]));
        assert_eq!(
            ServerLine::parse("MSG #r bob"),
            ServerLine::Msg {
                room: "#r",
                nick: "bob",
                text: ""
            }
        );
    }

    #[test]
    fn private_server_lines_keep_v1_readers_working() {
        // A v1 client reads the first word: `PASS join` is a `PASS` to it.
        let encoded = ServerLine::Pass(PassFor::Join).encode();
        assert!(encoded.starts_with(b"PASS "));
        for odd in [
            "PASS x",
            "PASS join x",
            "PASS JOIN",
            "RENAME a",
            "RENAME a b c",
            "RENAME  a b",
        ] {
            assert_eq!(ServerLine::parse(odd), ServerLine::Unknown(odd), "{odd:?}");
        }
        assert_eq!(
            ServerLine::parse("RENAME Алиса 密码"),
            ServerLine::Rename {
                old: "Алиса",
                new: "密码"
            }
        );
    }

    #[test]
    fn history_lines_round_trip() {
        let kept = |action, text| Kept {
            room: "#комната",
            at: 1_764_907_200_123,
            nick: "Алиса",
            action,
            text,
        };
        let cases: Vec<(ServerLine, &str)> = vec![
            (
                ServerLine::History(kept(false, "שלום 👩‍👩‍👧 e\u{301}")),
                "HISTORY #комната 1764907200123 Алиса שלום 👩‍👩‍👧 e\u{301}",
            ),
            (
                ServerLine::History(kept(true, "waves 👋🏽")),
                "HISTORY #комната 1764907200123 *Алиса waves 👋🏽",
            ),
            (
                ServerLine::Found(kept(false, "")),
                "FOUND #комната 1764907200123 Алиса ",
            ),
            (
                ServerLine::HistoryEnd {
                    room: "#r",
                    sent: 50,
                    left: 12,
                },
                "HISTORYEND #r 50 12",
            ),
            (
                ServerLine::FoundEnd {
                    room: "#r",
                    count: 20,
                    more: true,
                },
                "FOUNDEND #r 20 1",
            ),
            (
                ServerLine::FoundEnd {
                    room: "#r",
                    count: 0,
                    more: false,
                },
                "FOUNDEND #r 0 0",
            ),
        ];
        for (line, text) in cases {
            assert_eq!(line.encode(), format!("{text}\n").as_bytes());
            assert_eq!(ServerLine::parse(text), line);
        }
        for odd in [
            "HISTORY #r x bob hi",
            "HISTORY #r 1234567890123456 bob hi",
            "HISTORY #r -1 bob hi",
            "HISTORY #r 12 * hi",
            "HISTORYEND #r 1",
            "HISTORYEND #r 1 +2",
            "HISTORYEND #r 1 2 3",
            "FOUNDEND #r 1 2",
            "FOUNDEND #r 99999999999 0",
        ] {
            assert_eq!(ServerLine::parse(odd), ServerLine::Unknown(odd), "{odd:?}");
        }
    }

    #[test]
    fn error_codes_round_trip() {
        for c in ErrorCode::ALL {
            assert_eq!(c.as_str().parse::<ErrorCode>(), Ok(c));
        }
    }
}
