//! Fuzzes the client's handling of what a server sends: the input is a
//! mode byte (v1 or history mode) then the byte stream of a session after
//! login. It goes through the line decoder
//! with the client's limit (`MAX_SERVER_LINE`), as `Connection` does; each
//! line is read as the session reads it (`ServerLines`, the one parse),
//! its events are folded into a `ChatState`, each entry rendered as plain
//! mode prints it and wrapped as the terminal UI draws it, at several pane
//! widths. Frames that are too long or not
//! UTF-8 are skipped, as the session skips them.
//!
//! Checked, besides "never panics":
//! - a decoded line holds no `\n`;
//! - the scrollback stays within `SCROLLBACK` entries;
//! - the plain-mode line of an entry is already sanitized: `sanitize`
//!   leaves it as it is (no control, bidi or invisible character);
//! - every row the terminal UI would draw is sanitized too, and fits its
//!   pane width unless it is one grapheme wider than the pane;
//! - the quit check takes any line;
//! - our nickname, as the front end's state and the session's reading
//!   each keep it (a `RENAME` of us changes both), is the same and valid;
//! - the secrets `input::secret` finds in any line are words on character
//!   boundaries, and masking keeps the line's character count.

#![no_main]

use std::borrow::Cow;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tlschat_protocol::Fingerprint;
use tlschat_client_core::render::{plain, sanitize};
use tlschat_client_core::state::{Entry, SCROLLBACK};
use tlschat_client_core::{is_quit, secret, ChatState, ClientEvent, ServerLines};
use tlschat_protocol::{Frame, LineDecoder, Nick, MAX_SERVER_LINE};
use tlschat::tui::text::{entry_lines, str_width};
use unicode_segmentation::UnicodeSegmentation;

/// Message pane widths tried: narrower than a wide character, narrow, usual.
const WIDTHS: [usize; 4] = [1, 2, 9, 80];

fn is_clean(s: &str) -> bool {
    matches!(sanitize(s), Cow::Borrowed(_))
}

fn check_line(state: &mut ChatState, session: &mut ServerLines, line: String) {
    assert!(!line.contains('\n'), "a decoded line holds a newline");
    let _ = is_quit(&line);
    check_secret(&line);
    for event in session.read(&line).into_iter().flatten() {
        if let Some(entry) = state.apply(&event).cloned() {
            check_entry(state, &entry);
        }
    }
    assert!(state.entries.len() <= SCROLLBACK);
    assert_eq!(state.nick, session.nick());
    assert!(Nick::parse(&state.nick).is_ok(), "our nick {:?}", state.nick);
}

fn check_secret(line: &str) {
    let Some(found) = secret(line) else {
        return;
    };
    for range in found.ranges() {
        let word = line.get(range.clone()).expect("a secret on char boundaries");
        assert!(!word.is_empty() && !word.contains(' '), "{word:?}");
    }
    assert_eq!(found.mask(line).chars().count(), line.chars().count());
}

fn check_entry(state: &ChatState, entry: &Entry) {
    if let Some(text) = plain(&entry.kind) {
        assert!(is_clean(&text), "plain mode would print {text:?}");
    }
    for width in WIDTHS {
        for row in entry_lines(entry, state, width) {
            let text: String = row.spans.iter().map(|s| s.content.as_ref()).collect();
            assert!(is_clean(&text), "the UI would draw {text:?}");
            let drawn: usize = row.spans.iter().map(|s| str_width(&s.content)).sum();
            // A grapheme wider than the pane gets a row of its own; one of
            // no width (a conjoining jamo after an ideograph) may join it.
            let graphemes = text
                .trim_start_matches(' ')
                .graphemes(true)
                .filter(|g| str_width(g) > 0)
                .count();
            assert!(
                drawn <= width || graphemes <= 1,
                "a row of {drawn} columns in a pane of {width}: {text:?}"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut state = ChatState::new("chat.example:55555", "alice");
    state.apply(&ClientEvent::Connected {
        server: "chat.example:55555".into(),
        nick: "alice".into(),
        fingerprint: Fingerprint([7; 32]),
        tls: "TLS 1.3, X25519MLKEM768".into(),
    });
    // The first byte picks the mode: protocol v1, or history mode (stamped
    // lines, replays, catch-ups).
    let Some((&mode, data)) = data.split_first() else {
        return;
    };
    let mut session = if mode & 1 == 0 {
        ServerLines::new("alice", "")
    } else {
        ServerLines::with_history("alice", "")
    };
    let mut dec = LineDecoder::new(MAX_SERVER_LINE);
    let mut buf = BytesMut::from(data);
    while let Some(frame) = dec.decode(&mut buf) {
        if let Frame::Line(line) = frame {
            check_line(&mut state, &mut session, line);
        }
    }
    while let Some(frame) = dec.decode_eof(&mut buf) {
        if let Frame::Line(line) = frame {
            check_line(&mut state, &mut session, line);
        }
    }
});
