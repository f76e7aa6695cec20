//! Fuzzes the line parsers of crates/protocol with one line of text: the text
//! rule (`check_text`), the client command parser (`Command::parse`), the
//! name validators (`Nick::parse`, `RoomName::parse`) and the server line
//! parser/encoder (`ServerLine::parse` / `encode`). Input that is not UTF-8
//! is skipped (the line decoder has already turned it into `InvalidUtf8`).
//!
//! Checked, besides "never panics":
//! - `check_text` refuses exactly the lines with a forbidden control
//!   character, and names the first one and its byte offset;
//! - `Command::parse`: an `Err` carries a non-empty text; a blank line is
//!   `Empty`; a line not starting with `/` is `Say` of itself; `//x` is
//!   `Say("/x")`; `Join(room)` holds a room that re-parses to itself; the
//!   words of `Msg`, `Kick`, `Ban`, `Unban`, `Op`, `Deop`, `Unregister`
//!   are non-empty and space-free; a ban's or invite's duration is 1 minute
//!   to 365 days and prints back to the word typed (up to its spelling);
//!   `Nick` is a valid nickname; new passwords are one word of 8 to 512
//!   characters; an `Err` of a moderator's or admin's command carries its
//!   privilege; a `/history` ask's count is within its bounds and its
//!   command line parses back to it; `/search` words are 1 to 8, space-free
//!   and at most 64 characters each;
//! - what a command's text becomes on the wire (`MSG`, `ACTION`, `PRIVMSG`,
//!   `PONG`, `KICK`, `PART`, `FOUND`) parses back on the client to the same text;
//! - `Nick::parse` / `RoomName::parse` accept exactly the documented
//!   alphabets and lengths, and keep the spelling;
//! - `ServerLine::parse` of the same text: `encode` of the parsed value is one
//!   line that re-parses to an equal value.

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::time::Duration;

use tlschat_protocol::command::{MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS};
use tlschat_protocol::duration::{self, MAX_DURATION};
use tlschat_protocol::names::{MAX_NICK_LEN, MAX_ROOM_LEN};
use tlschat_protocol::{
    check_text, history, is_forbidden_control, Command, ErrorCode, HistoryAsk, InviteCode,
    InvitePrefix, Kept, Nick, Privilege, RoomName, Secret, ServerLine,
};

/// A duration the parser gave: in bounds, and `format` reads back to it.
fn assert_duration(d: Duration) {
    assert!(d >= Duration::from_secs(60) && d <= MAX_DURATION, "{d:?}");
    assert_eq!(duration::parse(&duration::format(d)), Ok(d));
}

/// A password that `/register` or `/password` accepted as new.
fn assert_new_password(p: Secret<'_>) {
    let p = p.expose();
    assert_word(p);
    let n = p.chars().count();
    assert!((MIN_PASSWORD_CHARS..=MAX_PASSWORD_CHARS).contains(&n), "{n} chars");
}

/// `encode` then `parse` must give `line` back, as a single line.
fn round_trip(line: &ServerLine<'_>) {
    let encoded = line.encode();
    assert_eq!(
        encoded.last(),
        Some(&b'\n'),
        "{line:?} encoded without newline"
    );
    let body = std::str::from_utf8(&encoded[..encoded.len() - 1])
        .expect("an encoded line of str fields is UTF-8");
    assert_eq!(&ServerLine::parse(body), line, "encoded as {body:?}");
}

fn check_text_rule(s: &str) {
    match check_text(s) {
        Ok(()) => assert!(!s.chars().any(is_forbidden_control)),
        Err(bad) => {
            assert!(is_forbidden_control(bad.ch));
            assert!(
                s[bad.at..].starts_with(bad.ch),
                "{bad:?} is not at its offset"
            );
            assert!(
                !s[..bad.at].chars().any(is_forbidden_control),
                "{bad:?} is not the first forbidden character"
            );
        }
    }
}

fn check_names(s: &str) {
    let nick_ok = !s.is_empty()
        && s.len() <= MAX_NICK_LEN
        && !s.starts_with(['-', '.'])
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
    match Nick::parse(s) {
        Ok(nick) => {
            assert!(nick_ok, "nick {s:?} accepted");
            assert_eq!(nick.as_str(), s);
            assert_eq!(nick.key(), s.to_ascii_lowercase());
            assert_eq!(Nick::parse(nick.key()).as_ref(), Ok(&nick));
        }
        Err(_) => assert!(!nick_ok, "nick {s:?} refused"),
    }
    let room_ok = s.strip_prefix('#').is_some_and(|rest| {
        !rest.is_empty()
            && rest.len() <= MAX_ROOM_LEN
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b))
    });
    match RoomName::parse(s) {
        Ok(room) => {
            assert!(room_ok, "room {s:?} accepted");
            assert_eq!(room.as_str(), s);
            assert_eq!(room.key(), s.to_ascii_lowercase());
        }
        Err(_) => assert!(!room_ok, "room {s:?} refused"),
    }
}

/// A word of a command: non-empty, no space (split on spaces).
fn assert_word(w: &str) {
    assert!(!w.is_empty() && !w.contains(' '), "bad word {w:?}");
}

fn check_command(s: &str) {
    let cmd = match Command::parse(s) {
        Ok(cmd) => cmd,
        Err(e) => {
            assert!(!e.text.is_empty(), "{:?} without text for {s:?}", e.code);
            assert!(s.starts_with('/') && !s.starts_with("//"));
            if e.privilege != Privilege::Anyone {
                // Only moderator and admin commands hide their usage.
                // The command word, after any spaces that follow the `/`.
                let body = s.get(1..).unwrap_or("").trim_start_matches(' ');
                let word = body.split(' ').next().unwrap_or("");
                assert!(
                    [
                        "kick", "ban", "unban", "op", "deop", "unregister", "registration",
                        "invite", "uninvite"
                    ]
                    .contains(&word.to_ascii_lowercase().as_str()),
                    "{s:?} carries {:?}",
                    e.privilege
                );
            }
            return;
        }
    };
    if s.trim().is_empty() {
        assert_eq!(cmd, Command::Empty);
    } else if let Some(rest) = s.strip_prefix("//") {
        let Command::Say(text) = cmd else {
            panic!("{s:?} parsed as {cmd:?}, not Say");
        };
        assert_eq!(text.strip_prefix('/'), Some(rest));
    } else if !s.starts_with('/') {
        assert_eq!(cmd, Command::Say(s));
    }
    let (room, nick) = ("#lobby", "alice");
    match cmd {
        Command::Empty => assert!(s.trim().is_empty()),
        Command::Say(text) => round_trip(&ServerLine::Msg { room, nick, text }),
        Command::Me(text) => {
            assert!(!text.trim().is_empty());
            round_trip(&ServerLine::Action { room, nick, text });
        }
        Command::Join(r) => {
            assert_eq!(RoomName::parse(r.as_str()).as_ref(), Ok(&r));
            assert_eq!(RoomName::parse(r.key()).as_ref(), Ok(&r));
            round_trip(&ServerLine::Join {
                room: r.as_str(),
                nick,
            });
        }
        Command::Msg { to, text } => {
            assert_word(to);
            assert!(!text.trim().is_empty());
            round_trip(&ServerLine::PrivMsg {
                from: nick,
                to: nick,
                text,
            });
        }
        Command::Ping(token) => {
            assert!(token.is_none_or(|t| !t.is_empty()));
            round_trip(&ServerLine::Pong(token));
        }
        Command::Quit(reason) => {
            assert!(reason.is_none_or(|r| !r.is_empty()));
            let reason = reason.unwrap_or("");
            round_trip(&ServerLine::Part { room, nick, reason });
        }
        Command::Ban {
            nick: target,
            duration: Some(d),
            reason,
        } => {
            assert_word(target);
            assert_duration(d);
            assert!(reason.is_none_or(|r| !r.is_empty()));
        }
        Command::Kick {
            nick: target,
            reason,
        }
        | Command::Ban {
            nick: target,
            duration: None,
            reason,
        } => {
            assert_word(target);
            assert!(reason.is_none_or(|r| !r.is_empty()));
            let reason = reason.unwrap_or("");
            round_trip(&ServerLine::Kick {
                nick,
                by: nick,
                reason,
            });
        }
        Command::Unban(target)
        | Command::Op(target)
        | Command::Deop(target)
        | Command::Unregister(target) => assert_word(target),
        Command::Nick(new) => {
            assert_eq!(Nick::parse(new.as_str()).as_ref(), Ok(&new));
            round_trip(&ServerLine::Rename {
                old: nick,
                new: new.as_str(),
            });
        }
        Command::Register { password, code } => {
            assert_new_password(password);
            if let Some(code) = code {
                assert_eq!(InviteCode::parse(code.expose()).as_ref(), Ok(&code));
            }
        }
        Command::Password { old, new } => {
            assert_word(old.expose());
            assert_new_password(new);
        }
        Command::Invite { uses, duration } => {
            assert!(uses.is_none_or(|n| n >= 1));
            duration.map(assert_duration);
        }
        Command::Uninvite(prefix) => {
            assert_eq!(InvitePrefix::parse(prefix.as_str()).as_ref(), Ok(&prefix));
        }
        Command::History(ask) => {
            let n = match ask {
                HistoryAsk::Last(n) | HistoryAsk::Before { n, .. } => {
                    assert!(n <= history::MAX_HISTORY_LINES);
                    n
                }
                HistoryAsk::Since { n, .. } => {
                    assert!(n <= history::MAX_CATCH_UP);
                    n
                }
            };
            assert!(n >= 1);
            assert_eq!(Command::parse(&ask.to_command()), Ok(Command::History(ask)));
        }
        Command::Search(words) => {
            assert!((1..=history::MAX_SEARCH_WORDS).contains(&words.len()));
            for w in &words {
                assert!(!w.is_empty() && !w.contains([' ', '\t']), "{w:?}");
                assert!(w.chars().count() <= history::MAX_SEARCH_WORD_CHARS);
            }
            let text = words.join(" ");
            round_trip(&ServerLine::Found(Kept {
                room,
                at: 1,
                nick,
                action: true,
                text: &text,
            }));
        }
        Command::Who
        | Command::Rooms
        | Command::Help
        | Command::Bans
        | Command::Ops
        | Command::Invites
        | Command::Registration(_) => {}
    }
}

fn check_server_line(s: &str) {
    let parsed = ServerLine::parse(s);
    if let ServerLine::Error { code, .. } = parsed {
        assert_eq!(code.as_str().parse::<ErrorCode>(), Ok(code));
    }
    // Every variant's fields are sub-slices of the line (or numbers), so
    // encoding what was parsed gives a line that parses to the same value.
    let encoded = parsed.encode();
    if !s.contains('\n') {
        assert_eq!(
            encoded.iter().filter(|&&b| b == b'\n').count(),
            1,
            "{parsed:?} encoded to more than one line"
        );
    }
    round_trip(&parsed);
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    check_text_rule(s);
    check_command(s);
    check_names(s);
    check_server_line(s);
    // What the server sees after framing: each line, without a final `\r`.
    if s.contains('\n') {
        for line in s.split('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if check_text(line).is_ok() {
                check_command(line);
            }
        }
    }
});
