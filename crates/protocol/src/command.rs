//! What a logged-in client asks for: [`Command::parse`] turns one line into a
//! [`Command`] or a [`CommandError`] that carries the `ERROR` code to answer
//! with.
//!
//! The line has already passed framing and the text rule (no control
//! characters). Names are validated here, so the hub only sees a valid
//! [`RoomName`]; nicknames of other users are looked up by the hub, which
//! answers `no-such-nick`. Command words are case-insensitive.
//!
//! [`Command::privilege`] says who may use a command; a usage error of a
//! moderator's or the admin's command carries the same [`Privilege`], so that
//! anyone below it is answered `not-permitted`, never its usage.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use super::duration;
use super::history::{
    parse_stamp, HistoryAsk, MAX_CATCH_UP, MAX_HISTORY_LINES, MAX_SEARCH_WORDS,
    MAX_SEARCH_WORD_CHARS, REPLAY_LINES,
};
use super::invite::{InviteCode, InvitePrefix};
use super::names::{Nick, RoomName};
use super::server_line::ErrorCode;

/// Shortest password `/register` and `/password` accept, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password `/register` and `/password` accept, in characters.
pub const MAX_PASSWORD_CHARS: usize = 512;

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
        /// `None`: no duration given (the server decides what that means
        /// for the caller's role).
        duration: Option<Duration>,
        reason: Option<&'a str>,
    },
    Unban(&'a str),
    Bans,
    /// `/nick NEW`: rename in place.
    Nick(Nick),
    /// `/register PASSWORD [CODE]`: make the current nickname an account.
    Register {
        password: Secret<'a>,
        code: Option<InviteCode>,
    },
    /// `/password OLD NEW`.
    Password {
        old: Secret<'a>,
        new: Secret<'a>,
    },
    /// `/unregister NICK`.
    Unregister(&'a str),
    /// `/op NICK`: make an account a moderator.
    Op(&'a str),
    /// `/deop NICK`.
    Deop(&'a str),
    /// `/ops`: list the moderators.
    Ops,
    /// `/registration [POLICY|default]`: show (`None`) or change the policy.
    Registration(Option<RegistrationChange>),
    /// `/invite [USES] [DURATION]`; `None` leaves the server's default.
    Invite {
        uses: Option<u32>,
        duration: Option<Duration>,
    },
    /// `/invites`: list live codes.
    Invites,
    /// `/uninvite PREFIX`.
    Uninvite(InvitePrefix),
    /// `/history [n]`, `/history before|since <at> [n]`: kept lines of the
    /// sender's room.
    History(HistoryAsk),
    /// `/search WORDS`: the words (1 to [`MAX_SEARCH_WORDS`], each at most
    /// [`MAX_SEARCH_WORD_CHARS`] characters) to find in the sender's room.
    Search(Vec<&'a str>),
}

/// Who may use a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Privilege {
    Anyone,
    /// Moderators and the admin.
    Moderator,
    Admin,
}

impl Command<'_> {
    /// Who may use this command.
    pub fn privilege(&self) -> Privilege {
        match self {
            Command::Kick { .. }
            | Command::Ban { .. }
            | Command::Bans
            | Command::Invite { .. }
            | Command::Invites
            | Command::Uninvite(_) => Privilege::Moderator,
            Command::Unban(_)
            | Command::Unregister(_)
            | Command::Op(_)
            | Command::Deop(_)
            | Command::Registration(_) => Privilege::Admin,
            Command::Empty
            | Command::Say(_)
            | Command::Join(_)
            | Command::Msg { .. }
            | Command::Me(_)
            | Command::Who
            | Command::Rooms
            | Command::Help
            | Command::Ping(_)
            | Command::Quit(_)
            | Command::Nick(_)
            | Command::Register { .. }
            | Command::Password { .. }
            | Command::Ops
            | Command::History(_)
            | Command::Search(_) => Privilege::Anyone,
        }
    }
}

/// A password typed into a command. `Debug` never shows it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Secret<'a>(&'a str);

impl<'a> Secret<'a> {
    /// The password itself, for hashing or checking.
    pub fn expose(&self) -> &'a str {
        self.0
    }
}

impl fmt::Debug for Secret<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Who may make their nickname an account with `/register`: the server's
/// configured policy, the one `/registration` saves, and its argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Registration {
    /// Anyone connected (the default).
    #[default]
    Open,
    /// Only a session that came in with an invite (or gives a code).
    InviteOnly,
    /// Nobody; the admin makes accounts with `tlschat-server passwd --nick`.
    Off,
}

impl Registration {
    /// The word in the config file, the `/registration` command and the
    /// server's store.
    pub fn as_str(self) -> &'static str {
        match self {
            Registration::Open => "open",
            Registration::InviteOnly => "invite-only",
            Registration::Off => "off",
        }
    }
}

impl fmt::Display for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Registration {
    type Err = ();
    /// `open`, `invite-only` or `off`, in any case.
    fn from_str(s: &str) -> Result<Self, ()> {
        [
            Registration::Open,
            Registration::InviteOnly,
            Registration::Off,
        ]
        .into_iter()
        .find(|r| r.as_str().eq_ignore_ascii_case(s))
        .ok_or(())
    }
}

/// What `/registration VALUE` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationChange {
    Set(Registration),
    /// Forget the saved value: the configuration decides again.
    Default,
}

/// A line that is not a valid command, with the code to answer it with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code} {text}")]
pub struct CommandError {
    pub code: ErrorCode,
    pub text: String,
    /// Who may see this answer: a misused moderator's or admin's command
    /// (`/kick` without a nickname, …) is `not-permitted` for anyone below,
    /// not its usage.
    pub privilege: Privilege,
}

impl CommandError {
    fn new(code: ErrorCode, text: impl Into<String>) -> CommandError {
        CommandError {
            code,
            text: text.into(),
            privilege: Privilege::Anyone,
        }
    }

    fn for_only(privilege: Privilege, code: ErrorCode, text: impl Into<String>) -> CommandError {
        CommandError {
            privilege,
            ..CommandError::new(code, text)
        }
    }

    fn bad_argument(text: impl Into<String>) -> CommandError {
        CommandError::new(ErrorCode::BadArgument, text)
    }
}

/// The commands and what they do, as `/help` shows them to everyone.
pub const HELP: &[&str] = &[
    "/join #room        leave your room and enter #room (created on demand)",
    "/msg NICK TEXT     private message",
    "/me TEXT           an action (* you TEXT)",
    "/who               who is in your room",
    "/rooms             rooms that have people",
    "/ping [TOKEN]      the server answers PONG",
    "/quit [REASON]     leave",
    "//text             a message that starts with /",
    "/nick NEWNICK      change your nickname (an account moves with it)",
    "/register PASSWORD [CODE]  make your nickname an account (asks PASSWORD at login)",
    "/password OLD NEW  change your account's password",
    "/ops               list the moderators",
];

/// The history commands, which `/help` lists to history-mode sessions of a
/// server that keeps history (a v1 session's `/help` stays v1's).
pub const HISTORY_HELP: &[&str] = &[
    "/history [N]       the room's last N kept lines (at most 200)",
    "/history before|since TIME [N]  kept lines before or after a stamp",
    "/search WORDS      kept lines of the room with all the words, newest first",
];

const KICK_HELP: &str = "/kick NICK [REASON]  disconnect NICK (they may come back)";
const BAN_HELP: &str = "/ban NICK|ADDRESS[/LEN] [DURATION] [REASON]  ban NICK and its address (or an address or prefix), then kick; DURATION like 30m, 12h, 7d";
const BANS_HELP: &str = "/bans                list the bans";
const INVITE_HELP: &str = "/invite [USES] [DURATION]  a link that admits USES nicknames";
const INVITES_HELP: &str = "/invites             list the live invites";
const UNINVITE_HELP: &str = "/uninvite PREFIX     revoke an invite";

/// A moderator's extra commands (bans of at most 7 days, users only).
pub const MODERATOR_HELP: &[&str] = &[
    KICK_HELP,
    BAN_HELP,
    BANS_HELP,
    INVITE_HELP,
    INVITES_HELP,
    UNINVITE_HELP,
];

/// The admin's extra commands, shown to the admin only.
pub const ADMIN_HELP: &[&str] = &[
    KICK_HELP,
    BAN_HELP,
    "/unban NICK|ADDRESS  lift a ban",
    BANS_HELP,
    INVITE_HELP,
    INVITES_HELP,
    UNINVITE_HELP,
    "/op NICK /deop NICK  make an account a moderator, or no longer",
    "/unregister NICK     remove an account",
    "/registration [open|invite-only|off|default]  who may /register",
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
                    return Err(CommandError::new(
                        ErrorCode::NoSuchNick,
                        "usage: /msg NICK TEXT",
                    ));
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
            "kick" => {
                let (nick, reason) = split_word(args);
                if nick.is_empty() {
                    return Err(moderator_usage(
                        ErrorCode::NoSuchNick,
                        "/kick NICK [REASON]",
                    ));
                }
                Command::Kick {
                    nick,
                    reason: opt(reason),
                }
            }
            "ban" => {
                let (nick, rest) = split_word(args);
                if nick.is_empty() {
                    // v1's usage text: a server on its defaults answers as v1 does.
                    return Err(moderator_usage(ErrorCode::NoSuchNick, "/ban NICK [REASON]"));
                }
                let (first, after) = split_word(rest);
                let (duration, reason) = if duration::looks_like(first) {
                    let d = duration::parse(first).map_err(|e| {
                        CommandError::for_only(
                            Privilege::Moderator,
                            ErrorCode::BadArgument,
                            e.to_string(),
                        )
                    })?;
                    (Some(d), opt(after))
                } else {
                    (None, opt(rest))
                };
                Command::Ban {
                    nick,
                    duration,
                    reason,
                }
            }
            "unban" => {
                let (target, _) = split_word(args);
                if target.is_empty() {
                    return Err(admin_usage(ErrorCode::NoSuchNick, "/unban NICK|ADDRESS"));
                }
                Command::Unban(target)
            }
            "bans" => Command::Bans,
            "nick" => {
                let (new, extra) = split_word(args);
                if new.is_empty() || !extra.is_empty() {
                    return Err(CommandError::new(
                        ErrorCode::NickInvalid,
                        "usage: /nick NEWNICK (one word)",
                    ));
                }
                let nick = Nick::parse(new)
                    .map_err(|e| CommandError::new(ErrorCode::NickInvalid, e.to_string()))?;
                Command::Nick(nick)
            }
            "register" => {
                const USAGE: &str = "usage: /register PASSWORD [INVITE-CODE]";
                let (password, rest) = split_word(args);
                let (code, extra) = split_word(rest);
                if password.is_empty() || !extra.is_empty() {
                    return Err(CommandError::bad_argument(USAGE));
                }
                let code = match opt(code) {
                    None => None,
                    Some(c) => Some(
                        InviteCode::parse(c)
                            .map_err(|e| CommandError::bad_argument(e.to_string()))?,
                    ),
                };
                Command::Register {
                    password: new_password(password)?,
                    code,
                }
            }
            "password" => {
                let (old, rest) = split_word(args);
                let (new, extra) = split_word(rest);
                if new.is_empty() || !extra.is_empty() {
                    return Err(CommandError::bad_argument(
                        "usage: /password OLD NEW (each one word)",
                    ));
                }
                Command::Password {
                    old: Secret(old),
                    new: new_password(new)?,
                }
            }
            "unregister" | "op" | "deop" => {
                let (nick, extra) = split_word(args);
                if nick.is_empty() || !extra.is_empty() {
                    return Err(admin_usage(
                        ErrorCode::NoSuchNick,
                        &format!("/{lower} NICK (one account)"),
                    ));
                }
                match lower.as_str() {
                    "op" => Command::Op(nick),
                    "deop" => Command::Deop(nick),
                    _ => Command::Unregister(nick),
                }
            }
            "ops" => Command::Ops,
            "registration" => {
                let (value, extra) = split_word(args);
                let usage = || {
                    admin_usage(
                        ErrorCode::BadArgument,
                        "/registration [open|invite-only|off|default]",
                    )
                };
                if !extra.is_empty() {
                    return Err(usage());
                }
                Command::Registration(match value {
                    "" => None,
                    v if v.eq_ignore_ascii_case("default") => Some(RegistrationChange::Default),
                    v => Some(RegistrationChange::Set(v.parse().map_err(|()| usage())?)),
                })
            }
            "invite" => parse_invite(args)?,
            "invites" => Command::Invites,
            "uninvite" => {
                let (prefix, extra) = split_word(args);
                if prefix.is_empty() || !extra.is_empty() {
                    return Err(moderator_usage(ErrorCode::BadArgument, "/uninvite PREFIX"));
                }
                let prefix = InvitePrefix::parse(prefix).map_err(|e| {
                    CommandError::for_only(
                        Privilege::Moderator,
                        ErrorCode::BadArgument,
                        e.to_string(),
                    )
                })?;
                Command::Uninvite(prefix)
            }
            "history" => Command::History(parse_history(args)?),
            "search" => Command::Search(parse_search(args)?),
            _ => return Err(unknown_command(word)),
        })
    }
}

/// The answer to `/WORD` when the server has no such command (also what a
/// server without history answers to `/history` and `/search`).
pub fn unknown_command(word: &str) -> CommandError {
    CommandError::new(
        ErrorCode::UnknownCommand,
        format!(
            "/{word} is not a command; /help lists them, //text sends a message starting with /"
        ),
    )
}

/// `/history [N]`, `/history before AT [N]`, `/history since AT [N]`.
fn parse_history(args: &str) -> Result<HistoryAsk, CommandError> {
    const USAGE: &str = "usage: /history [N] or /history before|since TIME [N]";
    let (first, rest) = split_word(args);
    let count = |word: &str, default: u32, max: u32| -> Result<u32, CommandError> {
        if word.is_empty() {
            return Ok(default);
        }
        if !word.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CommandError::bad_argument(format!(
                "{word} is not a number; {USAGE}"
            )));
        }
        // Too many digits for a u32 is "as many as there are".
        let n = word.parse::<u32>().unwrap_or(u32::MAX);
        if n == 0 {
            return Err(CommandError::bad_argument(format!(
                "ask for at least 1 line; {USAGE}"
            )));
        }
        Ok(n.min(max))
    };
    let lower = first.to_ascii_lowercase();
    let (default, max) = match lower.as_str() {
        "since" => (MAX_CATCH_UP, MAX_CATCH_UP),
        _ => (REPLAY_LINES, MAX_HISTORY_LINES),
    };
    match lower.as_str() {
        "before" | "since" => {
            let (at, rest) = split_word(rest);
            let (n, extra) = split_word(rest);
            if !extra.is_empty() {
                return Err(CommandError::bad_argument(USAGE));
            }
            let at = parse_stamp(at).ok_or_else(|| {
                CommandError::bad_argument(format!("TIME is a stamp in unix milliseconds; {USAGE}"))
            })?;
            let n = count(n, default, max)?;
            Ok(if lower == "before" {
                HistoryAsk::Before { at, n }
            } else {
                HistoryAsk::Since { at, n }
            })
        }
        _ if !rest.is_empty() => Err(CommandError::bad_argument(USAGE)),
        _ => Ok(HistoryAsk::Last(count(first, default, max)?)),
    }
}

/// `/search WORDS`: split on spaces and tabs, bounded in count and length.
fn parse_search(args: &str) -> Result<Vec<&str>, CommandError> {
    const USAGE: &str = "usage: /search WORDS (at most 8 words)";
    let words: Vec<&str> = args.split([' ', '\t']).filter(|w| !w.is_empty()).collect();
    if words.is_empty() || words.len() > MAX_SEARCH_WORDS {
        return Err(CommandError::bad_argument(USAGE));
    }
    if let Some(long) = words
        .iter()
        .find(|w| w.chars().count() > MAX_SEARCH_WORD_CHARS)
    {
        let shown: String = long.chars().take(16).collect();
        return Err(CommandError::bad_argument(format!(
            "{shown}… is longer than {MAX_SEARCH_WORD_CHARS} characters; {USAGE}"
        )));
    }
    Ok(words)
}

/// `/invite [USES] [DURATION]`: either, both (in that order) or neither.
fn parse_invite(args: &str) -> Result<Command<'_>, CommandError> {
    let fail =
        |text: String| CommandError::for_only(Privilege::Moderator, ErrorCode::BadArgument, text);
    let usage = || fail("usage: /invite [USES] [DURATION], for example /invite 5 7d".into());
    let (first, rest) = split_word(args);
    let (uses, rest) = if !first.is_empty() && first.bytes().all(|b| b.is_ascii_digit()) {
        let n: u32 = first
            .parse()
            .map_err(|_| fail(format!("{first} uses is too many")))?;
        if n == 0 {
            return Err(fail("an invite has at least 1 use".into()));
        }
        (Some(n), rest)
    } else {
        (None, args)
    };
    let (word, extra) = split_word(rest);
    if !extra.is_empty() || (!word.is_empty() && !duration::looks_like(word)) {
        return Err(usage());
    }
    let duration = match word {
        "" => None,
        w => Some(duration::parse(w).map_err(|e| fail(e.to_string()))?),
    };
    Ok(Command::Invite { uses, duration })
}

/// A new password: one word of [`MIN_PASSWORD_CHARS`] to
/// [`MAX_PASSWORD_CHARS`] characters.
fn new_password(word: &str) -> Result<Secret<'_>, CommandError> {
    let n = word.chars().count();
    if n < MIN_PASSWORD_CHARS {
        return Err(CommandError::bad_argument(format!(
            "a password has at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    if n > MAX_PASSWORD_CHARS {
        return Err(CommandError::bad_argument(format!(
            "a password has at most {MAX_PASSWORD_CHARS} characters"
        )));
    }
    Ok(Secret(word))
}

fn moderator_usage(code: ErrorCode, usage: &str) -> CommandError {
    CommandError::for_only(Privilege::Moderator, code, format!("usage: {usage}"))
}

fn admin_usage(code: ErrorCode, usage: &str) -> CommandError {
    CommandError::for_only(Privilege::Admin, code, format!("usage: {usage}"))
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
                duration: None,
                reason: None
            })
        );
        assert_eq!(
            Command::parse("/unban 10.0.0.1"),
            Ok(Command::Unban("10.0.0.1"))
        );
        assert_eq!(Command::parse("/bans"), Ok(Command::Bans));
        assert_eq!(
            Command::parse("/bans").unwrap().privilege(),
            Privilege::Moderator
        );
        assert_eq!(
            Command::parse("/unban x").unwrap().privilege(),
            Privilege::Admin
        );
        assert_eq!(
            Command::parse("/who").unwrap().privilege(),
            Privilege::Anyone
        );
    }

    #[test]
    fn usage_errors_carry_the_commands_privilege() {
        for line in [
            "/kick",
            "/ban",
            "/KICK  ",
            "/invite x",
            "/uninvite",
            "/ban bob 0m",
        ] {
            let e = Command::parse(line).unwrap_err();
            assert_eq!(e.privilege, Privilege::Moderator, "{line}");
        }
        for line in [
            "/unban",
            "/op",
            "/deop a b",
            "/unregister",
            "/registration maybe",
        ] {
            let e = Command::parse(line).unwrap_err();
            assert_eq!(e.privilege, Privilege::Admin, "{line}");
        }
        for line in ["/kick", "/ban", "/unban", "/op", "/deop", "/unregister"] {
            assert_eq!(err(line), ErrorCode::NoSuchNick, "{line}");
        }
        for line in [
            "/join",
            "/msg",
            "/me",
            "/nope",
            "/nick",
            "/register",
            "/password x",
        ] {
            let e = Command::parse(line).unwrap_err();
            assert_eq!(e.privilege, Privilege::Anyone, "{line}");
        }
    }

    #[test]
    fn privileges_of_the_new_commands() {
        let p = |line: &str| Command::parse(line).unwrap().privilege();
        for line in [
            "/nick bob",
            "/register 12345678",
            "/password a 12345678",
            "/ops",
        ] {
            assert_eq!(p(line), Privilege::Anyone, "{line}");
        }
        for line in [
            "/invite",
            "/invites",
            "/uninvite abcdef",
            "/kick x",
            "/ban x 1d",
        ] {
            assert_eq!(p(line), Privilege::Moderator, "{line}");
        }
        for line in [
            "/op a",
            "/deop a",
            "/unregister a",
            "/registration",
            "/unban a",
        ] {
            assert_eq!(p(line), Privilege::Admin, "{line}");
        }
    }

    #[test]
    fn timed_bans() {
        let ban = |line| Command::parse(line);
        assert_eq!(
            ban("/ban bob 30m spamming  links"),
            Ok(Command::Ban {
                nick: "bob",
                duration: Some(Duration::from_secs(1800)),
                reason: Some("spamming  links"),
            })
        );
        assert_eq!(
            ban("/BAN  2001:db8::/48   7d"),
            Ok(Command::Ban {
                nick: "2001:db8::/48",
                duration: Some(Duration::from_secs(7 * 86400)),
                reason: None,
            })
        );
        assert_eq!(
            ban("/ban bob 1w"),
            Ok(Command::Ban {
                nick: "bob",
                duration: Some(Duration::from_secs(7 * 86400)),
                reason: None,
            })
        );
        // A reason that does not start with a duration is the reason (v1).
        assert_eq!(
            ban("/ban bob спам 30m"),
            Ok(Command::Ban {
                nick: "bob",
                duration: None,
                reason: Some("спам 30m"),
            })
        );
        assert_eq!(
            ban("/ban bob 1st warning"),
            Ok(Command::Ban {
                nick: "bob",
                duration: None,
                reason: Some("1st warning"),
            })
        );
        // A reason starting with a duration needs one before it.
        assert_eq!(
            ban("/ban bob 1d 2h late"),
            Ok(Command::Ban {
                nick: "bob",
                duration: Some(Duration::from_secs(86400)),
                reason: Some("2h late"),
            })
        );
        for bad in [
            "/ban bob 0m",
            "/ban bob 366d",
            "/ban bob 3x spam",
            "/ban bob 2M",
            "/ban bob 99999999999999999999999d",
        ] {
            assert_eq!(err(bad), ErrorCode::BadArgument, "{bad}");
        }
    }

    #[test]
    fn nick_register_password() {
        assert_eq!(
            Command::parse("/NICK  Bob_2 "),
            Ok(Command::Nick(Nick::parse("Bob_2").unwrap()))
        );
        for bad in [
            "/nick",
            "/nick   ",
            "/nick a b",
            "/nick Алиса",
            "/nick -x",
            "/nick 🔑",
        ] {
            assert_eq!(err(bad), ErrorCode::NickInvalid, "{bad}");
        }
        let pw = "пароль-密码-🔑";
        let line = format!("/register {pw}");
        let Ok(Command::Register { password, code }) = Command::parse(&line) else {
            panic!("{line}");
        };
        assert_eq!((password.expose(), code), (pw, None));
        let line = format!("/register {pw} ABCDEFGHIJKLMNOPQRSTUVWXYZ234567");
        let Ok(Command::Register {
            code: Some(code), ..
        }) = Command::parse(&line)
        else {
            panic!("{line}");
        };
        assert_eq!(code.expose(), "abcdefghijklmnopqrstuvwxyz234567");
        let long = "ж".repeat(MAX_PASSWORD_CHARS);
        assert!(Command::parse(&format!("/register {long}")).is_ok());
        assert!(Command::parse("/register 1234567	").is_ok());
        for bad in [
            "/register".to_owned(),
            "/register 1234567".to_owned(),
            "/register 密码🔑".to_owned(),
            format!("/register {long}ж"),
            format!("/register {pw} notacode"),
            format!("/register {pw} abcdefghijklmnopqrstuvwxyz234567 x"),
            "/password".to_owned(),
            format!("/password {pw}"),
            "/password old short".to_owned(),
            format!("/password old {pw} extra"),
        ] {
            assert_eq!(err(&bad), ErrorCode::BadArgument, "{bad}");
        }
        let line = format!("/password x {pw}");
        let Ok(Command::Password { old, new }) = Command::parse(&line) else {
            panic!("password");
        };
        assert_eq!((old.expose(), new.expose()), ("x", pw));
        // Passwords never show in Debug output (logs, panics).
        let shown = format!("{:?}", Command::parse(&format!("/password hunter2 {pw}")));
        assert!(!shown.contains("hunter2") && !shown.contains(pw), "{shown}");
    }

    #[test]
    fn roles_and_registration() {
        assert_eq!(Command::parse("/op alice"), Ok(Command::Op("alice")));
        assert_eq!(Command::parse("/DEOP alice"), Ok(Command::Deop("alice")));
        assert_eq!(
            Command::parse("/unregister Алиса"),
            Ok(Command::Unregister("Алиса"))
        );
        assert_eq!(Command::parse("/ops"), Ok(Command::Ops));
        assert_eq!(
            Command::parse("/registration"),
            Ok(Command::Registration(None))
        );
        for (word, want) in [
            ("open", RegistrationChange::Set(Registration::Open)),
            (
                "Invite-Only",
                RegistrationChange::Set(Registration::InviteOnly),
            ),
            ("OFF", RegistrationChange::Set(Registration::Off)),
            ("default", RegistrationChange::Default),
        ] {
            assert_eq!(
                Command::parse(&format!("/registration {word}")),
                Ok(Command::Registration(Some(want))),
                "{word}"
            );
        }
        for bad in [
            "/registration closed",
            "/registration open off",
            "/registration откр",
        ] {
            assert_eq!(err(bad), ErrorCode::BadArgument, "{bad}");
        }
        for r in [
            Registration::Open,
            Registration::InviteOnly,
            Registration::Off,
        ] {
            assert_eq!(r.as_str().parse(), Ok(r));
        }
    }

    #[test]
    fn invites() {
        let invite = |uses, secs: Option<u64>| {
            Ok(Command::Invite {
                uses,
                duration: secs.map(Duration::from_secs),
            })
        };
        assert_eq!(Command::parse("/invite"), invite(None, None));
        assert_eq!(Command::parse("/invite  5"), invite(Some(5), None));
        assert_eq!(
            Command::parse("/invite 5 7d"),
            invite(Some(5), Some(7 * 86400))
        );
        assert_eq!(Command::parse("/invite 12h"), invite(None, Some(12 * 3600)));
        assert_eq!(
            Command::parse(&format!("/invite {}", u32::MAX)),
            invite(Some(u32::MAX), None)
        );
        for bad in [
            "/invite 0",
            "/invite 4294967296",
            "/invite 5 7d x",
            "/invite 7d 5",
            "/invite 5 five",
            "/invite 0m",
            "/invite 366d",
            "/invite пять",
            "/invite -1",
        ] {
            assert_eq!(err(bad), ErrorCode::BadArgument, "{bad}");
        }
        assert_eq!(Command::parse("/invites"), Ok(Command::Invites));
        assert_eq!(
            Command::parse("/uninvite ABCDEFGH"),
            Ok(Command::Uninvite(InvitePrefix::parse("abcdef").unwrap()))
        );
        for bad in [
            "/uninvite",
            "/uninvite abcde",
            "/uninvite abcdef x",
            "/uninvite абвгде",
        ] {
            assert_eq!(err(bad), ErrorCode::BadArgument, "{bad}");
        }
    }

    #[test]
    fn hostile_arguments_never_panic() {
        let long = "x".repeat(5000);
        let words = [
            "",
            " ",
            "/",
            "//",
            "@",
            "-",
            "0",
            "1m",
            "7d",
            "366d",
            "18446744073709551616",
            "Алиса",
            "密码",
            "🔑",
            "\u{202e}",
            "a\tb",
            "é",
            "ab\u{301}",
            &long,
        ];
        let commands = [
            "nick",
            "register",
            "password",
            "unregister",
            "op",
            "deop",
            "ops",
            "registration",
            "invite",
            "invites",
            "uninvite",
            "ban",
            "kick",
        ];
        for c in commands {
            for a in words {
                for b in words {
                    let line = format!("/{c} {a} {b} {a}");
                    match Command::parse(&line) {
                        Ok(_) => {}
                        Err(e) => assert!(!e.text.is_empty(), "{line}"),
                    }
                }
            }
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
        assert_eq!(err("/register"), ErrorCode::BadArgument);
        assert_eq!(err("/frobnicate"), ErrorCode::UnknownCommand);
        assert_eq!(err("/"), ErrorCode::UnknownCommand);
    }

    #[test]
    fn history_requests_are_bounded() {
        fn ask(line: &str) -> HistoryAsk {
            match Command::parse(line) {
                Ok(Command::History(a)) => a,
                other => panic!("{line:?}: {other:?}"),
            }
        }
        assert_eq!(ask("/history"), HistoryAsk::Last(50));
        assert_eq!(ask("/HISTORY 7"), HistoryAsk::Last(7));
        assert_eq!(ask("/history 1000"), HistoryAsk::Last(200));
        assert_eq!(ask("/history 99999999999999999999"), HistoryAsk::Last(200));
        assert_eq!(
            ask("/history before 1764907200123"),
            HistoryAsk::Before {
                at: 1_764_907_200_123,
                n: 50
            }
        );
        assert_eq!(
            ask("/history  since  17 9000"),
            HistoryAsk::Since { at: 17, n: 500 }
        );
        assert_eq!(
            ask("/history since 17"),
            HistoryAsk::Since { at: 17, n: 500 }
        );
        assert_eq!(
            ask("/history Before 5 3"),
            HistoryAsk::Before { at: 5, n: 3 }
        );
        for a in [
            HistoryAsk::Last(3),
            HistoryAsk::Before { at: 9, n: 200 },
            HistoryAsk::Since { at: 1, n: 500 },
        ] {
            assert_eq!(ask(&a.to_command()), a);
        }
        for bad in [
            "/history 0",
            "/history -1",
            "/history +5",
            "/history x",
            "/history пять",
            "/history 5 6",
            "/history before",
            "/history since x",
            "/history since 1234567890123456",
            "/history before 12 0",
            "/history before 12 3 4",
            "/history after 12",
        ] {
            assert_eq!(err(bad), ErrorCode::BadArgument, "{bad:?}");
        }
    }

    #[test]
    fn search_words_are_bounded() {
        assert_eq!(
            Command::parse("/search  привет\tмир 日本語 👩‍👩‍👧 e\u{301}te "),
            Ok(Command::Search(vec![
                "привет",
                "мир",
                "日本語",
                "👩‍👩‍👧",
                "e\u{301}te"
            ]))
        );
        assert_eq!(
            Command::parse("/search a b c d e f g h").map(|c| c.privilege()),
            Ok(Privilege::Anyone)
        );
        assert_eq!(err("/search"), ErrorCode::BadArgument);
        assert_eq!(err("/search    "), ErrorCode::BadArgument);
        assert_eq!(err("/search a b c d e f g h i"), ErrorCode::BadArgument);
        let long = "ж".repeat(65);
        assert_eq!(err(&format!("/search {long}")), ErrorCode::BadArgument);
        assert!(Command::parse(&format!("/search {}", "ж".repeat(64))).is_ok());
    }

    #[test]
    fn unknown_command_text_is_the_same_for_every_word() {
        assert_eq!(
            unknown_command("history"),
            CommandError::new(
                ErrorCode::UnknownCommand,
                "/history is not a command; /help lists them, //text sends a message starting with /"
            )
        );
        assert_eq!(
            Command::parse("/frobnicate"),
            Err(unknown_command("frobnicate"))
        );
    }
}
