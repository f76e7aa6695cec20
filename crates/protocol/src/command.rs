//! What a logged-in client asks for: [`Command::parse`] turns one line into a
//! [`Command`] or a [`CommandError`] that carries the `ERROR` code to answer
//! with.
//!
//! The line has already passed framing and the text rule (no control
//! characters). Names are validated here, so the hub only sees a valid
//! [`RoomName`]; nicknames of other users are looked up by the hub, which
//! answers `no-such-nick`. Command words are case-insensitive.

use super::names::RoomName;
use super::server_line::ErrorCode;

/// A parsed client line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command<'a> {
    /// A blank line: ignored.
    Empty,
    /// A message to the sender's room (a leading `//` already turned into `/`).
    Say(&'a str),
    Join(RoomName),
    Msg {
        to: &'a str,
        text: &'a str,
    },
    Me(&'a str),
    Who,
    Rooms,
    Help,
    Ping(Option<&'a str>),
    Quit(Option<&'a str>),
    Kick {
        nick: &'a str,
        reason: Option<&'a str>,
    },
    Ban {
        nick: &'a str,
        reason: Option<&'a str>,
    },
    Unban(&'a str),
    Bans,
}

impl Command<'_> {
    /// Commands only the admin may use.
    pub fn needs_admin(&self) -> bool {
        matches!(
            self,
            Command::Kick { .. } | Command::Ban { .. } | Command::Unban(_) | Command::Bans
        )
    }
}

/// A line that is not a valid command, with the code to answer it with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code} {text}")]
pub struct CommandError {
    pub code: ErrorCode,
    pub text: String,
    /// A misused admin command (`/kick` without a nickname, …): for anyone
    /// but the admin the answer is `not-permitted`, not its usage.
    pub admin_only: bool,
}

impl CommandError {
    fn new(code: ErrorCode, text: impl Into<String>) -> CommandError {
        CommandError {
            code,
            text: text.into(),
            admin_only: false,
        }
    }

    fn admin_usage(text: impl Into<String>) -> CommandError {
        CommandError {
            admin_only: true,
            ..CommandError::new(ErrorCode::NoSuchNick, text)
        }
    }
}

/// The commands and what they do, as `/help` shows them.
pub const HELP: &[&str] = &[
    "/join #room        leave your room and enter #room (created on demand)",
    "/msg NICK TEXT     private message",
    "/me TEXT           an action (* you TEXT)",
    "/who               who is in your room",
    "/rooms             rooms that have people",
    "/ping [TOKEN]      the server answers PONG",
    "/quit [REASON]     leave",
    "//text             a message that starts with /",
];

/// The admin's extra commands, shown to the admin only.
pub const ADMIN_HELP: &[&str] = &[
    "/kick NICK [REASON]  disconnect NICK (they may come back)",
    "/ban NICK|ADDRESS[/LEN] [REASON]  ban NICK and its address (or an address or prefix), then kick",
    "/unban NICK|ADDRESS  lift a ban",
    "/bans                list the bans",
];

impl<'a> Command<'a> {
    pub fn parse(line: &'a str) -> Result<Command<'a>, CommandError> {
        if line.trim().is_empty() {
            return Ok(Command::Empty);
        }
        if let Some(said) = line.strip_prefix('/').filter(|rest| rest.starts_with('/')) {
            // `//x` is the message `/x`: keep one slash.
            return Ok(Command::Say(said));
        }
        let Some(body) = line.strip_prefix('/') else {
            return Ok(Command::Say(line));
        };
        let (word, args) = split_word(body);
        let lower = word.to_ascii_lowercase();
        let opt = |s: &'a str| (!s.is_empty()).then_some(s);
        Ok(match lower.as_str() {
            "join" => {
                let (room, extra) = split_word(args);
                if room.is_empty() {
                    return Err(CommandError::new(ErrorCode::BadRoom, "usage: /join #room"));
                }
                if !extra.is_empty() {
                    return Err(CommandError::new(
                        ErrorCode::BadRoom,
                        "a room name has no spaces; usage: /join #room",
                    ));
                }
                let room = RoomName::parse(room)
                    .map_err(|e| CommandError::new(ErrorCode::BadRoom, format!("{room}: {e}")))?;
                Command::Join(room)
            }
            "msg" => {
                let (to, text) = split_word(args);
                if to.is_empty() {
                    return Err(CommandError::new(ErrorCode::NoSuchNick, "usage: /msg NICK TEXT"));
                }
                if text.trim().is_empty() {
                    return Err(CommandError::new(
                        ErrorCode::BadText,
                        "nothing to send; usage: /msg NICK TEXT",
                    ));
                }
                Command::Msg { to, text }
            }
            "me" => {
                if args.trim().is_empty() {
                    return Err(CommandError::new(ErrorCode::BadText, "usage: /me TEXT"));
                }
                Command::Me(args)
            }
            "who" => Command::Who,
            "rooms" => Command::Rooms,
            "help" => Command::Help,
            "ping" => Command::Ping(opt(args)),
            "quit" => Command::Quit(opt(args)),
            "kick" | "ban" => {
                let (nick, reason) = split_word(args);
                if nick.is_empty() {
                    return Err(CommandError::admin_usage(format!(
                        "usage: /{lower} NICK [REASON]"
                    )));
                }
                let reason = opt(reason);
                if lower == "kick" {
                    Command::Kick { nick, reason }
                } else {
                    Command::Ban { nick, reason }
                }
            }
            "unban" => {
                let (target, _) = split_word(args);
                if target.is_empty() {
                    return Err(CommandError::admin_usage("usage: /unban NICK|ADDRESS"));
                }
                Command::Unban(target)
            }
            "bans" => Command::Bans,
            _ => {
                return Err(CommandError::new(
                    ErrorCode::UnknownCommand,
                    format!("/{word} is not a command; /help lists them, //text sends a message starting with /"),
                ))
            }
        })
    }
}

/// The first space-separated word and the rest, with spaces between them
/// skipped (`"bob   hi there"` → `("bob", "hi there")`).
fn split_word(s: &str) -> (&str, &str) {
    let s = s.trim_start_matches(' ');
    match s.split_once(' ') {
        Some((w, rest)) => (w, rest.trim_start_matches(' ')),
        None => (s, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(line: &str) -> ErrorCode {
        Command::parse(line).unwrap_err().code
    }

    #[test]
    fn messages_and_escapes() {
        assert_eq!(Command::parse("hello"), Ok(Command::Say("hello")));
        assert_eq!(
            Command::parse(" /not a command"),
            Ok(Command::Say(" /not a command"))
        );
        assert_eq!(Command::parse("//shrug"), Ok(Command::Say("/shrug")));
        assert_eq!(Command::parse("///"), Ok(Command::Say("//")));
        assert_eq!(Command::parse(""), Ok(Command::Empty));
        assert_eq!(Command::parse("   "), Ok(Command::Empty));
    }

    #[test]
    fn commands() {
        assert_eq!(
            Command::parse("/join #Rust"),
            Ok(Command::Join(RoomName::parse("#rust").unwrap()))
        );
        assert_eq!(
            Command::parse("/MSG  bob   hi  there"),
            Ok(Command::Msg {
                to: "bob",
                text: "hi  there"
            })
        );
        assert_eq!(Command::parse("/me waves"), Ok(Command::Me("waves")));
        assert_eq!(Command::parse("/who"), Ok(Command::Who));
        assert_eq!(Command::parse("/rooms"), Ok(Command::Rooms));
        assert_eq!(Command::parse("/help"), Ok(Command::Help));
        assert_eq!(Command::parse("/ping"), Ok(Command::Ping(None)));
        assert_eq!(Command::parse("/ping abc"), Ok(Command::Ping(Some("abc"))));
        assert_eq!(Command::parse("/quit"), Ok(Command::Quit(None)));
        assert_eq!(
            Command::parse("/quit gone home"),
            Ok(Command::Quit(Some("gone home")))
        );
        assert_eq!(
            Command::parse("/kick bob be nice"),
            Ok(Command::Kick {
                nick: "bob",
                reason: Some("be nice")
            })
        );
        assert_eq!(
            Command::parse("/ban bob"),
            Ok(Command::Ban {
                nick: "bob",
                reason: None
            })
        );
        assert_eq!(
            Command::parse("/unban 10.0.0.1"),
            Ok(Command::Unban("10.0.0.1"))
        );
        assert_eq!(Command::parse("/bans"), Ok(Command::Bans));
        assert!(Command::parse("/bans").unwrap().needs_admin());
        assert!(!Command::parse("/who").unwrap().needs_admin());
    }

    #[test]
    fn only_admin_command_usage_errors_are_marked_admin_only() {
        for line in ["/kick", "/ban", "/unban", "/KICK  "] {
            let e = Command::parse(line).unwrap_err();
            assert!(e.admin_only, "{line}");
            assert_eq!(e.code, ErrorCode::NoSuchNick, "{line}");
        }
        for line in ["/join", "/msg", "/me", "/nope"] {
            assert!(!Command::parse(line).unwrap_err().admin_only, "{line}");
        }
    }

    #[test]
    fn errors_carry_their_code() {
        assert_eq!(err("/join"), ErrorCode::BadRoom);
        assert_eq!(err("/join lobby"), ErrorCode::BadRoom);
        assert_eq!(err("/join #a b"), ErrorCode::BadRoom);
        assert_eq!(err("/join #bad.name"), ErrorCode::BadRoom);
        assert_eq!(err("/msg"), ErrorCode::NoSuchNick);
        assert_eq!(err("/msg bob"), ErrorCode::BadText);
        assert_eq!(err("/me"), ErrorCode::BadText);
        assert_eq!(err("/kick"), ErrorCode::NoSuchNick);
        assert_eq!(err("/unban"), ErrorCode::NoSuchNick);
        assert_eq!(err("/frobnicate"), ErrorCode::UnknownCommand);
        assert_eq!(err("/"), ErrorCode::UnknownCommand);
    }
}
