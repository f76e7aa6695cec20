//! Property tests of every client-side path that text goes through, fed
//! arbitrary Unicode: the quit check, the terminal UI's input editor and
//! slash-command handling, the sanitiser, and server lines folded into
//! `ChatState` then rendered for plain mode and drawn by the terminal UI.
//! Nothing may panic, and each path keeps its own promise (the cursor on a
//! grapheme boundary, nothing unsafe reaching the screen, ...). No sockets.

use std::sync::{Arc, Mutex};

use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use proptest::prelude::*;
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use unicode_segmentation::UnicodeSegmentation;

use tlschat::tui::input::{Input, MAX_INPUT_BYTES};
use tlschat::tui::{ui, App, Mode};
use tlschat_client_core::render::{self, is_tag, needs_replacing, sanitize, REPLACEMENT};
use tlschat_client_core::{is_quit, ChatState, ServerLines};
use tlschat_protocol::is_forbidden_control;

/// Pieces that make graphemes interesting or text dangerous: combining
/// marks, joiners, selectors, skin tones, regional indicators, tags and the
/// black flag, Hangul jamo, wide and right-to-left letters, controls, bidi
/// and invisible characters, spaces, the slash and the quit word.
const PIECES: &[&str] = &[
    "\u{301}",
    "\u{308}",
    "\u{34F}",
    "\u{200D}",
    "\u{200C}",
    "\u{FE0F}",
    "\u{FE0E}",
    "🏽",
    "🏿",
    "🇺",
    "🇦",
    "🏴",
    "\u{E0067}",
    "\u{E0062}",
    "\u{E007F}",
    "\u{E0041}",
    "\u{1100}",
    "\u{1161}",
    "\u{11A8}",
    "👨",
    "👩",
    "💻",
    "❤",
    "漢",
    "ｶ",
    "\u{FF9E}",
    "я",
    "ש",
    "ع",
    "क",
    "्",
    "ष",
    "\u{1b}",
    "\u{9b}",
    "\r",
    "\n",
    "\t",
    "\u{202E}",
    "\u{2066}",
    "\u{61C}",
    "\u{2028}",
    "\u{200B}",
    "\u{FEFF}",
    "\u{AD}",
    " ",
    " ",
    "/",
    "/quit",
    "/QUIT ",
    "/ quit",
    "/help",
    "/me ",
    "//",
    "a",
    "b",
];

/// Arbitrary text: any Unicode scalars mixed with [`PIECES`].
fn text(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            any::<char>().prop_map(String::from),
            prop::sample::select(PIECES).prop_map(str::to_owned),
        ],
        0..max,
    )
    .prop_map(|parts| parts.concat())
}

#[derive(Debug, Clone)]
enum Edit {
    Insert(char),
    Paste(String),
    Backspace,
    Delete,
    Left,
    Right,
    Home,
    End,
    WordLeft,
    WordRight,
    DeleteWord,
    KillToEnd,
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => prop_oneof![
            any::<char>(),
            prop::sample::select(PIECES).prop_map(|p| p.chars().next().unwrap_or('x')),
        ]
        .prop_map(Edit::Insert),
        1 => text(12).prop_map(Edit::Paste),
        2 => Just(Edit::Backspace),
        2 => Just(Edit::Delete),
        2 => Just(Edit::Left),
        2 => Just(Edit::Right),
        1 => Just(Edit::Home),
        1 => Just(Edit::End),
        1 => Just(Edit::WordLeft),
        1 => Just(Edit::WordRight),
        1 => Just(Edit::DeleteWord),
        1 => Just(Edit::KillToEnd),
    ]
}

/// The grapheme boundaries of `s`, the end included.
fn boundaries(s: &str) -> Vec<usize> {
    s.grapheme_indices(true)
        .map(|(at, _)| at)
        .chain([s.len()])
        .collect()
}

/// `s` split at byte `at` (a char boundary).
fn halves(s: &str, at: usize) -> (&str, &str) {
    s.split_at_checked(at).expect("a char boundary")
}

/// What the input may hold: nothing the sanitiser replaces, except tag
/// characters right after the black flag or another tag.
fn input_is_clean(s: &str) -> bool {
    let mut prev = None;
    s.chars().all(|c| {
        let ok = if is_tag(c) {
            prev.is_some_and(|p: char| p == '\u{1F3F4}' || is_tag(p))
        } else {
            !needs_replacing(c)
        };
        prev = Some(c);
        ok
    })
}

/// The quit check as the server's parser behaves, written out by hand: a
/// slash, spaces, the word `quit` in any case, then the end or a space;
/// no control character anywhere.
fn quit_reference(line: &str) -> bool {
    let Some(body) = line.strip_prefix('/') else {
        return false;
    };
    let word = body.trim_start_matches(' ').split(' ').next().unwrap_or("");
    word.eq_ignore_ascii_case("quit") && !line.chars().any(is_forbidden_control)
}

/// Draws `app` on a `width` × `height` test terminal; the buffer's rows
/// and the cursor position.
fn draw(app: &mut App, width: u16, height: u16) -> (Vec<String>, Option<(u16, u16)>) {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test terminal");
    let frame = terminal
        .draw(|frame| {
            let pane = ui::layout(frame.area()).messages;
            app.set_viewport(ratatui::layout::Size::new(pane.width, pane.height));
            ui::draw(frame, app);
        })
        .expect("draw");
    let cursor = ui::cursor_position(app, frame.area).map(|p| (p.x, p.y));
    let buf = terminal.backend().buffer();
    let rows = (0..buf.area.height)
        .map(|y| (0..buf.area.width).map(|x| buf[(x, y)].symbol()).collect())
        .collect();
    (rows, cursor)
}

/// Nothing on screen that could move the cursor, reorder or hide text.
fn screen_is_safe(rows: &[String]) -> bool {
    rows.iter()
        .all(|r| r.chars().all(|c| !needs_replacing(c) || is_tag(c)))
}

fn app() -> (App, Arc<Mutex<Vec<String>>>) {
    let sent = Arc::new(Mutex::new(Vec::new()));
    let log = sent.clone();
    let app = App::new(
        ChatState::new("host:55555", "alice"),
        Box::new(move |line| {
            log.lock().expect("lock").push(line);
            true
        }),
    );
    (app, sent)
}

/// Server lines: a protocol word and fields, then arbitrary text.
fn server_line() -> impl Strategy<Value = String> {
    let heads = prop::sample::select(
        &[
            "",
            "MSG #lobby bob ",
            "MSG ",
            "ACTION #lobby bob ",
            "PRIVMSG bob alice ",
            "PRIVMSG alice ",
            "JOIN #lobby ",
            "JOIN ",
            "PART #lobby bob ",
            "KICK alice admin ",
            "KICK ",
            "USERS #lobby ",
            "ROOMS ",
            "INFO ",
            "ERROR no-such-nick ",
            "ERROR ",
            "PONG ",
            "WELCOME ",
            "REFUSE ",
            "BAN ",
        ][..],
    );
    (heads, text(40)).prop_map(|(h, t)| format!("{h}{t}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_quit_check_agrees_with_the_server_for_any_text(
        line in text(16),
        reason in text(8),
    ) {
        prop_assert_eq!(is_quit(&line), quit_reference(&line), "{:?}", line);
        let with_reason = format!("/quit {reason}");
        prop_assert_eq!(is_quit(&with_reason), quit_reference(&with_reason));
    }

    #[test]
    fn the_input_editor_keeps_its_promises(edits in prop::collection::vec(edit(), 0..60)) {
        let mut input = Input::new();
        for e in edits {
            let (before, cursor) = (input.value().to_owned(), input.cursor());
            match &e {
                Edit::Insert(c) => {
                    input.insert(*c);
                }
                Edit::Paste(s) => input.insert_str(s),
                Edit::Backspace => input.backspace(),
                Edit::Delete => input.delete(),
                Edit::Left => input.left(),
                Edit::Right => input.right(),
                Edit::Home => input.home(),
                Edit::End => input.end(),
                Edit::WordLeft => input.word_left(),
                Edit::WordRight => input.word_right(),
                Edit::DeleteWord => input.delete_word(),
                Edit::KillToEnd => input.kill_to_end(),
            }
            let (value, at) = (input.value(), input.cursor());
            prop_assert!(
                boundaries(value).contains(&at),
                "cursor {} not on a grapheme boundary of {:?} after {:?}", at, value, e
            );
            prop_assert!(value.len() <= MAX_INPUT_BYTES);
            prop_assert!(input_is_clean(value), "{:?}", value);
            let (head, tail) = halves(&before, cursor);
            // The grapheme before and after the cursor, as they were.
            let prev = head.graphemes(true).next_back().unwrap_or("");
            let next = tail.graphemes(true).next().unwrap_or("");
            match e {
                Edit::Backspace => {
                    let kept = halves(head, head.len() - prev.len()).0;
                    prop_assert_eq!(value, format!("{kept}{tail}"));
                }
                Edit::Delete => {
                    let kept = halves(tail, next.len()).1;
                    prop_assert_eq!(value, format!("{head}{kept}"));
                }
                Edit::Left => {
                    prop_assert_eq!(value, &before);
                    prop_assert_eq!(at, cursor - prev.len());
                }
                Edit::Right => {
                    prop_assert_eq!(value, &before);
                    prop_assert_eq!(at, cursor + next.len());
                }
                Edit::Insert(c) if !needs_replacing(c) && !matches!(c, '\r' | '\n' | '\t')
                    && before.len() + c.len_utf8() <= MAX_INPUT_BYTES =>
                {
                    prop_assert_eq!(value, format!("{head}{c}{tail}"));
                }
                _ => {}
            }
        }
    }

    #[test]
    fn typed_lines_and_slash_commands_are_handled_for_any_text(
        command in prop::sample::select(&[
            "", " ", "/", "//", "/quit", "/QuIt", "/ quit", "  /quit", "/quit ", "/quitté",
            "/help", "/me ", "/msg ",
        ][..]),
        typed in text(24),
        width in 1u16..90,
        height in 1u16..12,
    ) {
        let typed = format!("{command}{typed}");
        let (mut app, sent) = app();
        for c in typed.chars() {
            app.handle_event(Event::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)));
        }
        let line = app.input.value().to_owned();
        let (rows, cursor) = draw(&mut app, width, height);
        prop_assert!(screen_is_safe(&rows), "{:#?}", rows);
        if let Some((x, y)) = cursor {
            prop_assert!(x < width && y < height, "cursor at {},{}", x, y);
        }
        app.handle_event(Event::Key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE)));
        let sent = sent.lock().expect("lock").clone();
        let trimmed = line.trim_start();
        if line.trim().is_empty() {
            prop_assert!(sent.is_empty());
            prop_assert_eq!(app.mode(), &Mode::Chat);
        } else if is_quit(trimmed) {
            prop_assert_eq!(sent, vec![trimmed.to_owned()]);
            prop_assert_eq!(app.mode(), &Mode::Quitting);
        } else {
            prop_assert_eq!(sent, vec![line.clone()]);
            prop_assert_eq!(app.mode(), &Mode::Chat);
        }
        draw(&mut app, width, height);
    }

    #[test]
    fn the_sanitiser_replaces_exactly_what_it_must(s in text(40)) {
        let clean = sanitize(&s);
        prop_assert_eq!(clean.chars().count(), s.chars().count());
        prop_assert_eq!(matches!(clean, std::borrow::Cow::Borrowed(_)), *clean == *s);
        for (a, b) in s.chars().zip(clean.chars()) {
            if a == '\t' {
                prop_assert_eq!(b, ' ');
            } else if is_tag(a) {
                prop_assert!(b == a || b == REPLACEMENT, "{:?} became {:?}", a, b);
            } else if needs_replacing(a) {
                prop_assert_eq!(b, REPLACEMENT, "{:?}", a);
            } else {
                prop_assert_eq!(b, a);
            }
        }
        // Once clean, always clean; and nothing unsafe is left.
        prop_assert_eq!(sanitize(&clean), clean.clone());
        prop_assert!(clean.chars().all(|c| !needs_replacing(c) || is_tag(c)));
    }

    #[test]
    fn server_lines_update_the_state_and_render_safely(
        lines in prop::collection::vec(server_line(), 1..8),
        width in 1u16..100,
        height in 1u16..16,
    ) {
        let (mut app, _) = app();
        let mut session = ServerLines::new("alice", "#lobby");
        for line in &lines {
            let mut state = ChatState::new("host:55555", "alice");
            for event in session.read(line).into_iter().flatten() {
                if let Some(entry) = state.apply(&event) {
                    if let Some(text) = render::plain(&entry.kind) {
                        prop_assert!(
                            text.chars().all(|c| !needs_replacing(c) || is_tag(c)),
                            "{:?} printed as {:?}", line, text
                        );
                    }
                }
                app.on_client_event(event);
            }
        }
        let (rows, _) = draw(&mut app, width, height);
        prop_assert!(screen_is_safe(&rows), "{:#?}", rows);
        app.handle_event(Event::Key(KeyEvent::new(KeyCode::PageUp, KeyModifiers::NONE)));
        let (rows, _) = draw(&mut app, width, height);
        prop_assert!(screen_is_safe(&rows), "{:#?}", rows);
    }
}
