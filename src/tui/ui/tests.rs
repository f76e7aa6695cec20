//! Drawing tests: the screen as a `TestBackend` shows it.

use std::sync::{Arc, Mutex};

use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

use super::*;
use crate::tui::text::{grapheme_width, wrap};
use crate::tui::theme::{fnv1a, nick_color, NICK_PALETTE};
use ratatui::buffer::Buffer;
use ratatui::layout::Position;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Span;
use tlschat_client_core::state::ChatState;
use tlschat_client_core::{ClientEvent, CloseReason};
use tlschat_protocol::Fingerprint;

fn app() -> App {
    let mut app = App::new(
        ChatState::new("chat.example:55555", "alice"),
        Box::new(|_| true),
    );
    app.on_client_event(ClientEvent::Connected {
        server: "chat.example:55555".into(),
        nick: "alice".into(),
        fingerprint: Fingerprint([0xab; 32]),
        tls: "TLS 1.3, X25519MLKEM768".into(),
    });
    line(&mut app, "JOIN #lobby alice");
    line(&mut app, "USERS #lobby bob alice");
    app
}

fn line(app: &mut App, l: &str) {
    app.on_server_line(l);
}

/// Draws like the event loop does; returns the terminal for inspection.
fn draw_app(app: &mut App, width: u16, height: u16) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal
        .draw(|frame| {
            let pane = layout(frame.area()).messages;
            app.set_viewport(ratatui::layout::Size::new(pane.width, pane.height));
            draw(frame, app);
        })
        .unwrap();
    terminal
}

fn rows(buf: &Buffer) -> Vec<String> {
    (0..buf.area.height)
        .map(|y| {
            (0..buf.area.width)
                .map(|x| buf[(x, y)].symbol())
                .collect::<String>()
        })
        .collect()
}

fn find(rows: &[String], needle: &str) -> Option<(u16, u16)> {
    rows.iter().enumerate().find_map(|(y, r)| {
        r.split_once(needle)
            .map(|(before, _)| (before.chars().count() as u16, y as u16))
    })
}

/// Row `y` of the sidebar, whose text starts in column `x`.
fn sidebar_row(rows: &[String], x: u16, y: usize) -> String {
    rows[y].chars().skip(usize::from(x)).collect()
}

fn last_time(app: &App) -> String {
    app.state
        .entries
        .back()
        .unwrap()
        .time
        .format("%H:%M")
        .to_string()
}

#[test]
fn fnv1a_matches_the_published_vectors() {
    assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
}

#[test]
fn nick_colours_are_stable_and_ignore_case() {
    assert_eq!(nick_color("Alice"), nick_color("alice"));
    assert_eq!(nick_color("BOB"), nick_color("bob"));
    // Pinned: the same in every run and on every machine.
    let pinned = |n: &str| NICK_PALETTE[(fnv1a(n.as_bytes()) % 12) as usize];
    for nick in ["alice", "bob", "carol", "dave", "x"] {
        assert_eq!(nick_color(nick), pinned(nick));
    }
    assert_eq!(nick_color("alice"), Color::Indexed(36));
    assert_eq!(nick_color("bob"), Color::Indexed(32));
    let distinct: std::collections::HashSet<_> = [
        "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi",
    ]
    .iter()
    .map(|n| nick_color(n))
    .collect();
    assert!(distinct.len() >= 4, "{distinct:?}");
}

#[test]
fn a_message_shows_with_time_and_nick_on_one_line() {
    let mut app = app();
    line(&mut app, "MSG #lobby bob hello there, how are you?");
    let time = last_time(&app);
    let term = draw_app(&mut app, 80, 12);
    let buf = term.backend().buffer();
    let rows = rows(buf);
    let text = format!("{time} bob: hello there, how are you?");
    let (x, y) = find(&rows, &text).unwrap_or_else(|| panic!("{rows:#?}"));
    let nick = buf[(x + 6, y)].clone();
    assert_eq!(nick.fg, nick_color("bob"));
    assert!(nick.modifier.contains(Modifier::BOLD));
    assert_eq!(buf[(x, y)].fg, Color::DarkGray);
}

#[test]
fn control_characters_from_the_network_never_reach_the_buffer() {
    let mut app = app();
    line(
        &mut app,
        "MSG #lobby bob a\u{1b}[2Jb\u{9b}31mc\u{7}d\u{202E}e",
    );
    line(&mut app, "INFO x\u{1b}]0;owned\u{7}y");
    line(&mut app, "USERS #lobby bob alice ev\u{1b}il");
    let term = draw_app(&mut app, 80, 12);
    let rows = rows(term.backend().buffer());
    for row in &rows {
        assert!(
            !row.chars().any(|c| c.is_control() || c == '\u{202E}'),
            "{row:?}"
        );
    }
    assert!(
        find(&rows, "bob: a\u{FFFD}[2Jb\u{FFFD}31mc\u{FFFD}d\u{FFFD}e").is_some(),
        "{rows:#?}"
    );
    assert!(
        find(&rows, "* x\u{FFFD}]0;owned\u{FFFD}y").is_some(),
        "{rows:#?}"
    );
    assert!(find(&rows, "ev\u{FFFD}il").is_some(), "{rows:#?}");
}

#[test]
fn the_sidebar_lists_the_room_and_its_users() {
    let mut app = app();
    line(&mut app, "JOIN #lobby carol");
    let term = draw_app(&mut app, 80, 12);
    let buf = term.backend().buffer();
    let rows = rows(buf);
    let sidebar_x = 80 - SIDEBAR_WIDTH + 2;
    let col = |y: usize| sidebar_row(&rows, sidebar_x, y);
    assert_eq!(col(0).trim_end(), "#lobby");
    assert_eq!(col(1).trim_end(), "3 users");
    assert_eq!(col(2).trim_end(), "alice");
    assert_eq!(col(3).trim_end(), "bob");
    assert_eq!(col(4).trim_end(), "carol");
    // Our own nick stands out.
    assert!(buf[(sidebar_x, 2)].modifier.contains(Modifier::REVERSED));
    assert!(!buf[(sidebar_x, 3)].modifier.contains(Modifier::REVERSED));
    assert_eq!(buf[(sidebar_x, 3)].fg, nick_color("bob"));
    // After PART, gone.
    line(&mut app, "PART #lobby bob quit");
    let term = draw_app(&mut app, 80, 12);
    let rows = super::tests::rows(term.backend().buffer());
    assert!(
        rows.iter().all(|r| !r.ends_with("bob                 ")),
        "{rows:#?}"
    );
    assert!(find(&rows, "2 users").is_some());
}

#[test]
fn moderators_show_their_mark_and_renames_move_them() {
    let mut app = app();
    line(&mut app, "USERS #lobby @bob alice carol");
    line(&mut app, "RENAME bob Boris");
    line(&mut app, "RENAME alice alicia");
    let term = draw_app(&mut app, 80, 12);
    let buf = term.backend().buffer();
    let rows = rows(buf);
    let sidebar_x = 80 - SIDEBAR_WIDTH + 2;
    let col = |y: usize| sidebar_row(&rows, sidebar_x, y);
    assert_eq!(col(2).trim_end(), "alicia");
    assert_eq!(col(3).trim_end(), "@Boris");
    assert_eq!(col(4).trim_end(), "carol");
    // We are alicia now: highlighted, and named so in the status bar.
    assert!(buf[(sidebar_x, 2)].modifier.contains(Modifier::REVERSED));
    assert_eq!(buf[(sidebar_x + 1, 3)].fg, nick_color("Boris"));
    assert!(find(&rows, "alicia in #lobby").is_some(), "{rows:#?}");
    assert!(
        find(&rows, "bob is now known as Boris").is_some(),
        "{rows:#?}"
    );
}

#[test]
fn passwords_show_masked_in_the_input_line() {
    let mut app = app();
    let password = "пароль-密码-🔑";
    for c in format!("/password {password} x{password}").chars() {
        app.handle_event(Event::Key(KeyEvent::new(
            KeyCode::Char(c),
            KeyModifiers::NONE,
        )));
    }
    let term = draw_app(&mut app, 80, 12);
    let rows = rows(term.backend().buffer());
    let n = password.chars().count();
    let masked = format!("> /password {} {}", "•".repeat(n), "•".repeat(n + 1));
    assert_eq!(rows[11].trim_end(), masked, "{rows:#?}");
    assert!(rows.iter().all(|r| !r.contains("пароль")), "{rows:#?}");
    // The cursor sits after the masked text, one column a bullet.
    let cursor = cursor_position(&app, term.backend().buffer().area);
    assert_eq!(
        cursor.map(|p| usize::from(p.x)),
        Some(masked.chars().count())
    );
}

#[test]
fn a_narrow_terminal_hides_the_sidebar() {
    let mut app = app();
    line(&mut app, "MSG #lobby bob hi");
    let term = draw_app(&mut app, 40, 8);
    let rows = rows(term.backend().buffer());
    assert!(find(&rows, "3 users").is_none() && find(&rows, "2 users").is_none());
    assert!(find(&rows, "bob: hi").is_some());
}

#[test]
fn private_messages_actions_and_errors_are_distinct() {
    let mut app = app();
    line(&mut app, "PRIVMSG bob alice psst");
    line(&mut app, "PRIVMSG alice bob hush");
    line(&mut app, "ACTION #lobby bob waves");
    line(&mut app, "ERROR no-such-nick nobody here");
    line(&mut app, "PART #lobby bob moved");
    let term = draw_app(&mut app, 80, 12);
    let buf = term.backend().buffer();
    let rows = rows(buf);
    let (x, y) = find(&rows, "← bob: psst").unwrap();
    assert_eq!(buf[(x, y)].fg, Color::Magenta);
    let (x, y) = find(&rows, "→ bob: hush").unwrap();
    assert_eq!(buf[(x + 7, y)].fg, Color::Magenta);
    let (x, y) = find(&rows, "* bob waves").unwrap();
    assert!(buf[(x + 8, y)].modifier.contains(Modifier::ITALIC));
    let (x, y) = find(&rows, "! no-such-nick: nobody here").unwrap();
    assert_eq!(buf[(x, y)].fg, Color::Red);
    let (x, y) = find(&rows, "* bob left #lobby (moved)").unwrap();
    assert_eq!(buf[(x, y)].fg, Color::DarkGray);
    let (x, y) = find(&rows, "-- connected to chat.example:55555").unwrap();
    assert_eq!(buf[(x, y)].fg, Color::Yellow);
}

#[test]
fn messages_from_another_room_are_tagged() {
    let mut app = app();
    line(&mut app, "MSG #lobby bob before");
    line(&mut app, "PART #lobby alice moved");
    line(&mut app, "JOIN #rust alice");
    line(&mut app, "MSG #rust dave after");
    let rows = rows(draw_app(&mut app, 80, 12).backend().buffer());
    assert!(find(&rows, "[#lobby] bob: before").is_some(), "{rows:#?}");
    assert!(find(&rows, " dave: after").is_some());
    assert!(find(&rows, "[#rust]").is_none());
}

#[test]
fn long_lines_wrap_under_the_timestamp() {
    let spans = [
        Span::raw("12:00 "),
        Span::raw("bob: "),
        Span::raw("one two three four five six"),
    ];
    let lines = wrap(&spans, 20, 6);
    let text: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    assert_eq!(
        text,
        ["12:00 bob: one two", "      three four", "      five six"]
    );
    assert!(lines.iter().all(|l| l.width() <= 20));
    // A word longer than a row is cut; wide characters count double.
    let lines = wrap(&[Span::raw("12:00 "), Span::raw("x".repeat(30))], 20, 6);
    let text: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    assert_eq!(
        text,
        [
            "12:00",
            "      xxxxxxxxxxxxxx",
            "      xxxxxxxxxxxxxx",
            "      xx"
        ]
    );
    let lines = wrap(&[Span::raw("漢字漢字漢字")], 5, 0);
    assert_eq!(
        lines.iter().map(|l| l.width()).collect::<Vec<_>>(),
        [4, 4, 4]
    );
    // Styles survive wrapping.
    let red = Style::new().fg(Color::Red);
    let lines = wrap(&[Span::raw("ab "), Span::styled("cd ef", red)], 5, 0);
    assert_eq!(lines[1].spans[0].style, red);
    assert_eq!(wrap(&[], 10, 6).len(), 1);
}

#[test]
fn a_long_message_wraps_in_the_pane() {
    let mut app = app();
    let long = "word ".repeat(40);
    line(&mut app, &format!("MSG #lobby bob {}", long.trim_end()));
    let term = draw_app(&mut app, 70, 16);
    let rows = rows(term.backend().buffer());
    let pane = 70 - usize::from(SIDEBAR_WIDTH);
    let wrapped: Vec<_> = rows
        .iter()
        .filter(|r| r.starts_with("      word"))
        .collect();
    assert!(wrapped.len() >= 4, "{rows:#?}");
    // Nothing spills into the sidebar: its border is intact.
    for r in &rows[..14] {
        assert_eq!(r.chars().nth(pane), Some('│'), "{rows:#?}");
    }
}

#[test]
fn scrolled_up_shows_older_lines_and_the_indicator() {
    let mut app = app();
    for i in 0..40 {
        line(&mut app, &format!("MSG #lobby bob line {i:02}"));
    }
    let rows0 = rows(draw_app(&mut app, 80, 12).backend().buffer());
    assert!(find(&rows0, "bob: line 39").is_some());
    assert!(find(&rows0, MORE_BELOW).is_none());
    // 10-row pane: PgUp moves 8 rows.
    app.handle_event(Event::Key(KeyEvent::new(
        KeyCode::PageUp,
        KeyModifiers::NONE,
    )));
    let rows1 = rows(draw_app(&mut app, 80, 12).backend().buffer());
    assert!(find(&rows1, "bob: line 39").is_none());
    assert_eq!(
        find(&rows1, "bob: line 31").map(|p| p.1),
        Some(8),
        "{rows1:#?}"
    );
    assert_eq!(find(&rows1, MORE_BELOW).map(|p| p.1), Some(9));
    // All the way up: the very first entry is on the first row.
    app.handle_event(Event::Key(KeyEvent::new(
        KeyCode::Home,
        KeyModifiers::CONTROL,
    )));
    let rows2 = rows(draw_app(&mut app, 80, 12).backend().buffer());
    assert!(
        rows2[0].contains("-- connected to chat.example:55555"),
        "{rows2:#?}"
    );
    app.handle_event(Event::Key(KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE)));
    let rows3 = rows(draw_app(&mut app, 80, 12).backend().buffer());
    assert_eq!(find(&rows3, "bob: line 39").map(|p| p.1), Some(9));
}

#[test]
fn status_bar_shows_server_fingerprint_state_nick_and_room() {
    let mut app = app();
    let rows = rows(draw_app(&mut app, 100, 8).backend().buffer());
    let bar = &rows[6];
    assert!(bar.contains("chat.example:55555"), "{bar}");
    assert!(bar.contains("SHA256:abababababababab"), "{bar}");
    assert!(bar.contains("connected"), "{bar}");
    assert!(bar.contains("alice in #lobby"), "{bar}");
    app.on_client_event(ClientEvent::Reconnecting {
        reason: "reset".into(),
        delay: std::time::Duration::from_secs(2),
        attempt: 2,
    });
    let rows = super::tests::rows(draw_app(&mut app, 100, 8).backend().buffer());
    assert!(rows[6].contains("reconnecting (attempt 2)"), "{}", rows[6]);
    // Narrow: the state and nick stay, the fingerprint goes first.
    let rows = super::tests::rows(draw_app(&mut app, 70, 8).backend().buffer());
    assert_eq!(
        rows[6].trim_end(),
        " chat.example:55555 │ reconnecting (attempt 2) │ alice in #lobby"
    );
    let rows = super::tests::rows(draw_app(&mut app, 50, 8).backend().buffer());
    assert_eq!(
        rows[6].trim_end(),
        " reconnecting (attempt 2) │ alice in #lobby"
    );
    app.on_client_event(ClientEvent::Closed(CloseReason::Banned("spam".into())));
    let rows = super::tests::rows(draw_app(&mut app, 100, 8).backend().buffer());
    assert!(rows[6].contains("closed"), "{}", rows[6]);
    assert!(rows[7].contains("press any key to exit"), "{}", rows[7]);
    assert!(find(&rows, "-- banned: spam").is_some(), "{rows:#?}");
}

#[test]
fn the_input_line_shows_the_text_and_the_cursor() {
    let sent = Arc::new(Mutex::new(Vec::new()));
    let log = sent.clone();
    let mut app = App::new(
        ChatState::new("h:1", "alice"),
        Box::new(move |l| {
            log.lock().unwrap().push(l);
            true
        }),
    );
    for c in "héllo".chars() {
        app.handle_event(Event::Key(KeyEvent::new(
            KeyCode::Char(c),
            KeyModifiers::NONE,
        )));
    }
    app.handle_event(Event::Key(KeyEvent::new(KeyCode::Left, KeyModifiers::NONE)));
    let mut term = draw_app(&mut app, 40, 6);
    let rows = rows(term.backend().buffer());
    assert!(rows[5].starts_with("> héllo"), "{rows:#?}");
    term.backend_mut()
        .assert_cursor_position(Position::new(6, 5));
    // A line longer than the input scrolls to keep the cursor visible.
    app.input.set_value("y".repeat(100));
    let mut term = draw_app(&mut app, 40, 6);
    let rows = super::tests::rows(term.backend().buffer());
    // The cursor after the last char takes the last column.
    assert_eq!(rows[5], format!("> {} ", "y".repeat(37)));
    term.backend_mut()
        .assert_cursor_position(Position::new(39, 5));
    assert!(sent.lock().unwrap().is_empty());
}

/// Rows as a terminal shows them: the cell after a wide grapheme is
/// its right half, not a character of its own.
fn screen(buf: &Buffer) -> Vec<String> {
    (0..buf.area.height)
        .map(|y| {
            let mut row = String::new();
            let mut x = 0;
            while x < buf.area.width {
                let symbol = buf[(x, y)].symbol();
                row.push_str(symbol);
                x += grapheme_width(symbol).max(1) as u16;
            }
            row
        })
        .collect()
}

const FAMILY: &str = "👨\u{200D}👩\u{200D}👧\u{200D}👦";
const CODER: &str = "🧑🏽\u{200D}💻";
const WIDE: &[&str] = &[
    "漢字",
    "かな",
    "한국어",
    FAMILY,
    CODER,
    "🇺🇦",
    "👋🏿",
    "❤\u{FE0F}",
    "e\u{301}",
    "привет",
    "שלום",
];

#[test]
fn wrapping_never_splits_a_grapheme() {
    let rows = |spans: &[Span<'_>], width| -> Vec<String> {
        wrap(spans, width, 0)
            .iter()
            .map(|l| l.to_string())
            .collect()
    };
    assert_eq!(rows(&[Span::raw(format!("ab{FAMILY}"))], 3), ["ab", FAMILY]);
    assert_eq!(
        rows(&[Span::raw(format!("a{CODER}🇺🇦"))], 2),
        ["a", CODER, "🇺🇦"]
    );
    assert_eq!(
        rows(&[Span::raw("ae\u{301}\u{302}b")], 2),
        ["ae\u{301}\u{302}", "b"]
    );
    // Two columns although one of its characters is zero width.
    assert_eq!(rows(&[Span::raw("ab❤\u{FE0F}")], 3), ["ab", "❤\u{FE0F}"]);
    // A grapheme wider than the row gets a row of its own.
    assert_eq!(rows(&[Span::raw("a漢b")], 1), ["a", "漢", "b"]);
    for width in 1..12 {
        for line in wrap(&[Span::raw(WIDE.join(" "))], width, 0) {
            assert!(line.width() <= width.max(2), "{line} in {width}");
        }
    }
}

#[test]
fn wide_characters_keep_the_message_pane_in_its_place() {
    let mut app = app();
    let text = WIDE.join(" ");
    line(&mut app, &format!("MSG #lobby bob {}", text.repeat(3)));
    // Each two columns wide although made of a one-column character
    // and a zero-width one: counted by character, a row would hold
    // twice too many and lose half of them at the edge.
    line(
        &mut app,
        &format!("MSG #lobby bob {}", "❤\u{FE0F}".repeat(40)),
    );
    let term = draw_app(&mut app, 71, 20);
    let buf = term.backend().buffer();
    let pane = 71 - SIDEBAR_WIDTH;
    let mut drawn = Vec::new();
    for y in 0..18 {
        // The sidebar's border is in place on every row.
        assert_eq!(buf[(pane, y)].symbol(), "│", "{:#?}", screen(buf));
        let mut x = 0;
        while x < pane {
            let symbol = buf[(x, y)].symbol();
            let w = grapheme_width(symbol).max(1) as u16;
            // No wide grapheme has its right half under the border.
            assert!(x + w <= pane, "{symbol:?} at {x},{y}: {:#?}", screen(buf));
            drawn.push(symbol.to_owned());
            x += w;
        }
    }
    // Every multi-character grapheme is drawn whole, each time.
    for g in [FAMILY, CODER, "🇺🇦", "👋🏿", "e\u{301}"] {
        assert_eq!(drawn.iter().filter(|s| *s == g).count(), 3, "{g:?}");
    }
    let hearts = drawn.iter().filter(|s| *s == "❤\u{FE0F}").count();
    assert_eq!(hearts, 3 + 40, "{:#?}", screen(buf));
    assert!(!drawn
        .iter()
        .any(|s| s == "\u{200D}" || s == "🏽" || s == "\u{301}"));
    let rows = screen(buf);
    assert!(find(&rows, "bob: 漢字 かな 한국어").is_some(), "{rows:#?}");
}

#[test]
fn the_cursor_goes_by_display_columns() {
    let mut app = App::new(ChatState::new("h:1", "alice"), Box::new(|_| true));
    let press = |app: &mut App, code| {
        app.handle_event(Event::Key(KeyEvent::new(code, KeyModifiers::NONE)));
    };
    for c in format!("你好{FAMILY}e\u{301}").chars() {
        press(&mut app, KeyCode::Char(c));
    }
    let mut term = draw_app(&mut app, 40, 6);
    let rows = screen(term.backend().buffer());
    assert_eq!(rows[5].trim_end(), format!("> 你好{FAMILY}e\u{301}"));
    // "> " + 2 + 2 + 2 + 1 columns.
    term.backend_mut()
        .assert_cursor_position(Position::new(9, 5));
    press(&mut app, KeyCode::Left);
    let mut term = draw_app(&mut app, 40, 6);
    term.backend_mut()
        .assert_cursor_position(Position::new(8, 5));
    press(&mut app, KeyCode::Left);
    press(&mut app, KeyCode::Backspace);
    let mut term = draw_app(&mut app, 40, 6);
    assert_eq!(app.input.value(), format!("你{FAMILY}e\u{301}"));
    term.backend_mut()
        .assert_cursor_position(Position::new(4, 5));

    // A line of wide characters longer than the input scrolls by whole
    // characters; the cursor stays in view, nothing is cut in half.
    for prefix in ["", "a"] {
        app.input.set_value(format!("{prefix}{}", "漢".repeat(50)));
        let mut term = draw_app(&mut app, 40, 6);
        let rows = screen(term.backend().buffer());
        assert_eq!(rows[5], format!("> {}  ", "漢".repeat(18)), "{prefix:?}");
        term.backend_mut()
            .assert_cursor_position(Position::new(38, 5));
        app.input.home();
        let rows = screen(draw_app(&mut app, 40, 6).backend().buffer());
        assert_eq!(
            rows[5].trim_end(),
            format!("> {prefix}{}", "漢".repeat(19 - prefix.len()))
        );
    }
}

#[test]
fn tiny_terminals_do_not_panic() {
    let mut app = app();
    line(&mut app, "MSG #lobby bob hello");
    for (w, h) in [(1, 1), (2, 2), (5, 3), (10, 1), (80, 2), (3, 40)] {
        draw_app(&mut app, w, h);
        app.handle_event(Event::Key(KeyEvent::new(
            KeyCode::PageUp,
            KeyModifiers::NONE,
        )));
        draw_app(&mut app, w, h);
    }
}

#[test]
fn kept_lines_wrap_under_their_date_and_the_separator_spans_the_pane() {
    use tlschat_client_core::render::stamp;
    use tlschat_client_core::state::{Batch, EntryKind, HistoryEnd, Kept};
    let mut app = app();
    let at = 1_764_907_200_000;
    let text = format!("Привет שלום {FAMILY} e\u{301} 你好 {}", "слово ".repeat(12));
    app.on_client_event(ClientEvent::Line(EntryKind::History(Kept {
        room: "#lobby".into(),
        at,
        nick: "bob".into(),
        action: false,
        text: text.clone(),
    })));
    app.on_client_event(ClientEvent::Line(EntryKind::HistoryEnd(HistoryEnd {
        room: "#lobby".into(),
        batch: Batch::Replay,
        sent: 1,
        left: 0,
        shown: 1,
        oldest: Some(at),
        newest_shown: Some(at),
    })));
    let terminal = draw_app(&mut app, 60, 16);
    let rows = rows(terminal.backend().buffer());
    let first = rows
        .iter()
        .position(|r| r.starts_with(&format!("{} bob: Привет", stamp(at))))
        .unwrap_or_else(|| panic!("{rows:#?}"));
    let indent = " ".repeat(stamp(at).chars().count() + 1);
    assert!(rows[first + 1].starts_with(&indent), "{rows:#?}");
    assert!(
        !rows[first + 1].starts_with(&format!("{indent} ")),
        "{rows:#?}"
    );
    let separator = rows
        .iter()
        .find(|r| r.contains("— history —"))
        .unwrap_or_else(|| panic!("{rows:#?}"));
    assert!(
        separator.starts_with("───") && separator.ends_with("───"),
        "{rows:#?}"
    );
}
