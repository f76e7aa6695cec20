//! Turning what the server sent into text that is safe to show.
//!
//! [`sanitize`] neutralises every control character (C0, DEL, C1) and the
//! bidirectional overrides before any network text reaches a terminal: the
//! server already refuses control characters, but the client does not rely
//! on that (defence in depth against escape-sequence injection from a
//! hostile or buggy server). [`plain`] renders one [`Entry`] as the line
//! plain mode prints.

use std::borrow::Cow;

use super::state::EntryKind;

/// Replaces control characters and bidi controls with U+FFFD; TAB becomes a
/// space. Borrowed when nothing needs replacing (the common case).
pub fn sanitize(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_replacing) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.chars()
            .map(|c| match c {
                '\t' => ' ',
                c if needs_replacing(c) => '\u{FFFD}',
                c => c,
            })
            .collect(),
    )
}

/// [`sanitize`] line by line, keeping the line breaks: for the client's own
/// multi-line notices (the changed-certificate warning).
pub fn sanitize_lines(s: &str) -> String {
    s.lines().map(sanitize).collect::<Vec<_>>().join("\n")
}

fn needs_replacing(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}')
}

/// The line plain mode prints for an entry, or `None` for entries it does
/// not show. Every field is sanitized.
pub fn plain(kind: &EntryKind) -> Option<String> {
    let s = sanitize;
    Some(match kind {
        EntryKind::Message { room, nick, text } => {
            format!("[{}] {}: {}", s(room), s(nick), s(text))
        }
        EntryKind::Action { room, nick, text } => {
            format!("[{}] * {} {}", s(room), s(nick), s(text))
        }
        EntryKind::Private { from, to, text } => format!("[{} -> {}] {}", s(from), s(to), s(text)),
        EntryKind::Join { room, nick } => format!("* {} joined {}", s(nick), s(room)),
        EntryKind::Part { room, nick, reason } => {
            format!("* {} left {} ({})", s(nick), s(room), s(reason))
        }
        EntryKind::Kick { nick, by, reason } => {
            format!("* {} was kicked by {} ({})", s(nick), s(by), s(reason))
        }
        EntryKind::Users { room, nicks } => {
            let list: Vec<_> = nicks.iter().map(|n| s(n)).collect();
            format!("* in {}: {}", s(room), list.join(" "))
        }
        EntryKind::Rooms(rooms) => {
            let list: Vec<_> = rooms
                .iter()
                .map(|(r, n)| format!("{} ({n})", s(r)))
                .collect();
            if list.is_empty() {
                "* no rooms".to_owned()
            } else {
                format!("* rooms: {}", list.join(", "))
            }
        }
        EntryKind::Info(text) => format!("* {}", s(text)),
        EntryKind::Error { code, text } => format!("! {}: {}", s(code), s(text)),
        EntryKind::Status(text) => format!("-- {}", sanitize_lines(text)),
        EntryKind::Pong(token) => match token {
            Some(t) => format!("* pong {}", s(t)),
            None => "* pong".to_owned(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_neutralises_escapes_and_bidi() {
        assert!(matches!(sanitize("plain ünï 😀"), Cow::Borrowed(_)));
        assert_eq!(sanitize("a\u{1b}[31mb"), "a\u{FFFD}[31mb");
        assert_eq!(sanitize("x\u{9b}2Jy"), "x\u{FFFD}2Jy");
        assert_eq!(sanitize("evil\u{202E}txt"), "evil\u{FFFD}txt");
        assert_eq!(sanitize("a\tb\r\n"), "a b\u{FFFD}\u{FFFD}");
    }

    #[test]
    fn plain_lines() {
        let msg = EntryKind::Message {
            room: "#lobby".into(),
            nick: "alice".into(),
            text: "hi \u{1b}[2J".into(),
        };
        assert_eq!(plain(&msg).unwrap(), "[#lobby] alice: hi \u{FFFD}[2J");
        let join = EntryKind::Join {
            room: "#lobby".into(),
            nick: "bob".into(),
        };
        assert_eq!(plain(&join).unwrap(), "* bob joined #lobby");
        let pm = EntryKind::Private {
            from: "a".into(),
            to: "b".into(),
            text: "psst".into(),
        };
        assert_eq!(plain(&pm).unwrap(), "[a -> b] psst");
    }
}
