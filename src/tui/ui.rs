//! Rendering: `impl Widget for &App` draws the whole screen from the app's
//! state without changing it, one `render_*` function per area.
//!
//! ```text
//! ┌──────────────────────────────────────────┬─────────────┐
//! │ 12:34 alice: hello                       │ #lobby      │
//! │ 12:35 * bob waves                        │ 2 users     │
//! │ 12:35 → bob: psst                        │ alice       │
//! │              (messages)                  │ bob         │
//! ├──────────────────────────────────────────┴─────────────┤
//! │ host:55555 │ SHA256:… │ connected │ alice in #lobby     │ status bar
//! │ > input line_                                          │
//! └────────────────────────────────────────────────────────┘
//! ```
//!
//! Every string that came from the network goes through
//! [`render::sanitize`] (or [`render::plain`], which sanitizes) before it
//! becomes a [`Span`]. The message pane wraps lines itself (word-wise,
//! with a hanging indent under the timestamp) so that scrolling can count
//! rows exactly.
//!
//! Widths are counted in terminal columns per grapheme cluster, with the
//! same rule the ratatui buffer applies when it draws ([`CellWidth`], on top
//! of `unicode-width`): a CJK character or an emoji sequence takes two
//! columns, a combining mark none. So wrapping never splits a grapheme, a
//! wide character never straddles the pane's edge, and the cursor lands
//! where the text is drawn.

use ratatui::buffer::{Buffer, CellWidth};
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Widget};
use ratatui::Frame;
use unicode_segmentation::UnicodeSegmentation;

use super::app::{App, Mode};
use tlschat_client_core::render::{self, sanitize};
use tlschat_client_core::state::{ChatState, ConnState, Entry, EntryKind};

/// Width of the user list, border included.
pub const SIDEBAR_WIDTH: u16 = 22;
/// Below this terminal width the user list is hidden.
pub const SIDEBAR_MIN_TERMINAL_WIDTH: u16 = 64;
/// `HH:MM ` before every entry; wrapped rows are indented by as much.
const TIME_WIDTH: usize = 6;
const PROMPT: &str = "> ";
/// Shown on the last row of the message pane while scrolled up.
pub const MORE_BELOW: &str = "-- more below (PgDn, Esc: back to the bottom) --";

/// Readable on dark and light backgrounds alike (256-colour indexes of
/// medium lightness); red and magenta hues that mean "error" and
/// "private" are left out.
const NICK_PALETTE: [Color; 12] = [
    Color::Indexed(32),  // blue
    Color::Indexed(34),  // green
    Color::Indexed(37),  // teal
    Color::Indexed(61),  // slate blue
    Color::Indexed(71),  // leaf green
    Color::Indexed(74),  // sky blue
    Color::Indexed(98),  // purple
    Color::Indexed(130), // brown-orange
    Color::Indexed(136), // gold
    Color::Indexed(166), // orange
    Color::Indexed(172), // amber
    Color::Indexed(36),  // sea green
];

const TIME_STYLE: Style = Style::new().fg(Color::DarkGray);
const DIM_STYLE: Style = Style::new().fg(Color::DarkGray);
const STATUS_STYLE: Style = Style::new().fg(Color::Yellow);
const ERROR_STYLE: Style = Style::new().fg(Color::Red).add_modifier(Modifier::BOLD);
const PRIVATE_STYLE: Style = Style::new().fg(Color::Magenta);
const BAR_STYLE: Style = Style::new().fg(Color::White).bg(Color::DarkGray);

/// FNV-1a, 64 bit: a fixed hash, so a nick has the same colour in every
/// run and on every machine (std's `RandomState` is seeded per process).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The colour of a nick; case does not matter (nicks compare without it).
pub fn nick_color(nick: &str) -> Color {
    let h = fnv1a(nick.to_lowercase().as_bytes());
    NICK_PALETTE[(h % NICK_PALETTE.len() as u64) as usize]
}

fn nick_style(nick: &str) -> Style {
    Style::new()
        .fg(nick_color(nick))
        .add_modifier(Modifier::BOLD)
}

/// Columns one grapheme cluster takes, as the buffer draws it (0 for one
/// it does not draw: a lone combining mark).
pub fn grapheme_width(g: &str) -> usize {
    if g.contains(char::is_control) {
        // The buffer leaves these out (sanitized text has none).
        return 0;
    }
    usize::from(g.cell_width())
}

/// Display width of a string, in terminal columns.
pub fn str_width(s: &str) -> usize {
    s.graphemes(true).map(grapheme_width).sum()
}

fn owned(s: &str) -> String {
    sanitize(s).into_owned()
}

// ---- layout ------------------------------------------------------------------

/// Where each part of the screen goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Areas {
    pub messages: Rect,
    pub sidebar: Option<Rect>,
    pub status: Rect,
    pub input: Rect,
}

pub fn layout(area: Rect) -> Areas {
    let [main, status, input] = Layout::vertical([
        Constraint::Min(0),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);
    let (messages, sidebar) = if area.width >= SIDEBAR_MIN_TERMINAL_WIDTH {
        let [m, s] =
            Layout::horizontal([Constraint::Min(0), Constraint::Length(SIDEBAR_WIDTH)]).areas(main);
        (m, Some(s))
    } else {
        (main, None)
    };
    Areas {
        messages,
        sidebar,
        status,
        input,
    }
}

/// Draws the screen and places the terminal cursor in the input line.
pub fn draw(frame: &mut Frame, app: &App) {
    let area = frame.area();
    frame.render_widget(app, area);
    if let Some(pos) = cursor_position(app, area) {
        frame.set_cursor_position(pos);
    }
}

impl Widget for &App {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let areas = layout(area);
        render_messages(self, areas.messages, buf);
        if let Some(sidebar) = areas.sidebar {
            render_sidebar(self, sidebar, buf);
        }
        render_status(self, areas.status, buf);
        render_input(self, areas.input, buf);
    }
}

// ---- message pane --------------------------------------------------------------

/// One entry as styled spans, timestamp first, before wrapping.
pub fn entry_spans(entry: &Entry, state: &ChatState) -> Vec<Span<'static>> {
    let mut spans = vec![Span::styled(
        entry.time.format("%H:%M ").to_string(),
        TIME_STYLE,
    )];
    let room_tag = |room: &str| {
        (!room.eq_ignore_ascii_case(&state.room))
            .then(|| Span::styled(format!("[{}] ", sanitize(room)), DIM_STYLE))
    };
    match &entry.kind {
        EntryKind::Message { room, nick, text } => {
            spans.extend(room_tag(room));
            spans.push(Span::styled(owned(nick), nick_style(nick)));
            spans.push(Span::raw(": "));
            spans.push(Span::raw(owned(text)));
        }
        EntryKind::Action { room, nick, text } => {
            spans.extend(room_tag(room));
            let italic = Style::new().add_modifier(Modifier::ITALIC);
            spans.push(Span::styled("* ", italic));
            spans.push(Span::styled(
                owned(nick),
                nick_style(nick).add_modifier(Modifier::ITALIC),
            ));
            spans.push(Span::styled(format!(" {}", sanitize(text)), italic));
        }
        EntryKind::Private { from, to, text } => {
            let (arrow, other) = if from.eq_ignore_ascii_case(&state.nick) {
                ("→ ", to)
            } else {
                ("← ", from)
            };
            spans.push(Span::styled(arrow, PRIVATE_STYLE));
            spans.push(Span::styled(
                owned(other),
                PRIVATE_STYLE.add_modifier(Modifier::BOLD),
            ));
            spans.push(Span::styled(format!(": {}", sanitize(text)), PRIVATE_STYLE));
        }
        EntryKind::Error { code, text } => {
            spans.push(Span::styled(
                format!("! {}: {}", sanitize(code), sanitize(text)),
                ERROR_STYLE,
            ));
        }
        EntryKind::Status(text) => {
            // Multi-line notices (the changed-certificate warning) wrap as one paragraph.
            let text = text.replace('\n', " ");
            spans.push(Span::styled(
                format!("-- {}", sanitize(&text)),
                STATUS_STYLE,
            ))
        }
        kind @ (EntryKind::Join { .. } | EntryKind::Part { .. } | EntryKind::Kick { .. }) => {
            spans.extend(render::plain(kind).map(|t| Span::styled(t, DIM_STYLE)));
        }
        kind @ (EntryKind::Users { .. }
        | EntryKind::Rooms(_)
        | EntryKind::Info(_)
        | EntryKind::Pong(_)) => {
            spans.extend(render::plain(kind).map(Span::raw));
        }
    }
    spans
}

/// Word-wraps styled spans to `width` columns; rows after the first are
/// indented by `indent` columns. A word longer than a row is cut between
/// graphemes; a grapheme wider than what is left of a row starts the next.
pub fn wrap(spans: &[Span<'_>], width: usize, indent: usize) -> Vec<Line<'static>> {
    let width = width.max(1);
    let indent = if indent < width / 2 { indent } else { 0 };
    // A row: graphemes with their style and width.
    let mut rows: Vec<Vec<(&str, Style)>> = Vec::new();
    let mut cur: Vec<(&str, Style, usize)> = Vec::new();
    let mut cur_w = 0;
    let mut avail = width;
    // Index in `cur` of the last space: where the row may be broken.
    let mut last_space: Option<usize> = None;
    fn finish<'a>(row: &[(&'a str, Style, usize)]) -> Vec<(&'a str, Style)> {
        row.iter().map(|&(g, s, _)| (g, s)).collect()
    }
    for span in spans {
        for g in span.content.graphemes(true) {
            let w = grapheme_width(g);
            let space = g == " ";
            while w > 0 && cur_w + w > avail && !cur.is_empty() {
                if space {
                    // The row ends here; the space is not carried over.
                    rows.push(finish(&cur));
                    cur.clear();
                } else if let Some((row, rest)) = last_space.and_then(|i| cur.split_at_checked(i)) {
                    rows.push(finish(row));
                    // `rest` starts with the space, which is dropped.
                    cur = rest.iter().skip(1).copied().collect();
                } else {
                    rows.push(finish(&cur));
                    cur.clear();
                }
                last_space = None;
                cur_w = cur.iter().map(|&(_, _, w)| w).sum();
                avail = width - indent;
                if space {
                    break;
                }
            }
            if space && cur.is_empty() && !rows.is_empty() {
                // No space at the start of a wrapped row.
                continue;
            }
            if space {
                last_space = Some(cur.len());
            }
            cur.push((g, span.style, w));
            cur_w += w;
        }
    }
    if !cur.is_empty() || rows.is_empty() {
        rows.push(finish(&cur));
    }
    rows.into_iter()
        .enumerate()
        .map(|(n, row)| {
            let mut line_spans = Vec::new();
            if n > 0 && indent > 0 {
                line_spans.push(Span::raw(" ".repeat(indent)));
            }
            let mut text = String::new();
            let mut style = None;
            for (g, s) in row {
                if style.is_some_and(|st| st != s) {
                    line_spans.push(Span::styled(
                        std::mem::take(&mut text),
                        style.unwrap_or_default(),
                    ));
                }
                style = Some(s);
                text.push_str(g);
            }
            if !text.is_empty() {
                line_spans.push(Span::styled(text, style.unwrap_or_default()));
            }
            Line::from(line_spans)
        })
        .collect()
}

/// The rows one entry takes in a pane `width` columns wide.
pub fn entry_lines(entry: &Entry, state: &ChatState, width: usize) -> Vec<Line<'static>> {
    wrap(&entry_spans(entry, state), width, TIME_WIDTH)
}

/// Rows of the newest entries, counted from the bottom, stopping once
/// `limit` is reached (so the cost follows what is on screen, not the
/// whole scrollback).
pub fn rows_from_bottom(state: &ChatState, width: usize, limit: usize) -> usize {
    let mut rows = 0;
    for entry in state.entries.iter().rev() {
        if rows >= limit {
            break;
        }
        rows += entry_lines(entry, state, width).len();
    }
    rows.min(limit)
}

/// `wanted` (rows scrolled up from the bottom) limited to what a pane of
/// `width` × `height` can show: at the top, the first row shows above the
/// "more below" line. Only walks as far back as `wanted` reaches.
pub fn clamp_scroll(state: &ChatState, width: usize, height: usize, wanted: usize) -> usize {
    if height == 0 || wanted == 0 {
        return 0;
    }
    let total = rows_from_bottom(state, width, wanted.saturating_add(height));
    if total <= height {
        0
    } else {
        // With the indicator, height - 1 rows of text are visible.
        wanted.min(total - height.saturating_sub(1).max(1))
    }
}

fn render_messages(app: &App, area: Rect, buf: &mut Buffer) {
    if area.is_empty() {
        return;
    }
    let width = usize::from(area.width);
    let height = usize::from(area.height);
    let scroll = app.scroll();
    let text_height = if scroll > 0 {
        height.saturating_sub(1).max(1)
    } else {
        height
    };
    // Newest first, until the rows above the scrolled-off part fill the pane.
    let mut rows: Vec<Line> = Vec::new();
    for entry in app.state.entries.iter().rev() {
        if rows.len() >= scroll + text_height {
            break;
        }
        rows.extend(entry_lines(entry, &app.state, width).into_iter().rev());
    }
    let skip = scroll.min(rows.len().saturating_sub(text_height));
    let visible: Vec<Line> = rows.into_iter().skip(skip).take(text_height).collect();
    for (y, line) in (area.y..).zip(visible.iter().rev()) {
        buf.set_line(area.x, y, line, area.width);
    }
    if scroll > 0 && height > 1 {
        let y = area.bottom() - 1;
        let style = Style::new().fg(Color::Black).bg(Color::Yellow);
        buf.set_style(Rect::new(area.x, y, area.width, 1), style);
        let w = str_width(MORE_BELOW) as u16;
        let x = area.x + area.width.saturating_sub(w) / 2;
        buf.set_stringn(x, y, MORE_BELOW, usize::from(area.width), style);
    }
}

// ---- sidebar -------------------------------------------------------------------

fn render_sidebar(app: &App, area: Rect, buf: &mut Buffer) {
    let block = Block::new().borders(Borders::LEFT).border_style(DIM_STYLE);
    let inner = block.inner(area);
    block.render(area, buf);
    let inner = Rect {
        x: inner.x + 1,
        width: inner.width.saturating_sub(1),
        ..inner
    };
    if inner.is_empty() {
        return;
    }
    let state = &app.state;
    let room = if state.room.is_empty() {
        "(no room)".to_owned()
    } else {
        owned(&state.room)
    };
    let count = match state.users.len() {
        1 => "1 user".to_owned(),
        n => format!("{n} users"),
    };
    let mut lines = vec![
        Line::from(Span::styled(room, Style::new().bold())),
        Line::styled(count, DIM_STYLE),
    ];
    let mut users: Vec<&String> = state.users.iter().collect();
    users.sort_by_key(|u| u.to_lowercase());
    let room_for = usize::from(inner.height).saturating_sub(lines.len());
    let shown = if users.len() > room_for {
        room_for.saturating_sub(1)
    } else {
        users.len()
    };
    for user in &users[..shown] {
        let mut style = Style::new().fg(nick_color(user));
        if user.eq_ignore_ascii_case(&state.nick) {
            style = style.add_modifier(Modifier::BOLD | Modifier::REVERSED);
        }
        lines.push(Line::from(Span::styled(owned(user), style)));
    }
    if shown < users.len() && room_for > 0 {
        lines.push(Line::styled(
            format!("… +{} more", users.len() - shown),
            DIM_STYLE,
        ));
    }
    for (y, line) in (inner.y..inner.bottom()).zip(&lines) {
        buf.set_line(inner.x, y, line, inner.width);
    }
}

// ---- status bar and input ------------------------------------------------------

/// The connection state as the status bar shows it.
pub fn conn_label(app: &App) -> (String, Color) {
    if matches!(app.mode(), Mode::Quitting) && app.state.conn != ConnState::Closed {
        return ("leaving".into(), Color::LightYellow);
    }
    match app.state.conn {
        ConnState::Connecting => ("connecting".into(), Color::LightYellow),
        ConnState::Connected => ("connected".into(), Color::LightGreen),
        ConnState::Reconnecting { attempt } => (
            format!("reconnecting (attempt {attempt})"),
            Color::LightYellow,
        ),
        ConnState::Closed => ("closed".into(), Color::LightRed),
    }
}

/// Server, fingerprint, state, nick and room; on a narrow terminal the
/// fingerprint, then the server, make way for the rest.
fn render_status(app: &App, area: Rect, buf: &mut Buffer) {
    let state = &app.state;
    let (label, color) = conn_label(app);
    let mut who = vec![Span::styled(owned(&state.nick), Style::new().bold())];
    if !state.room.is_empty() {
        who.push(Span::raw(format!(" in {}", sanitize(&state.room))));
    }
    let server = vec![Span::raw(owned(&state.server))];
    let fingerprint = state
        .fingerprint
        .as_deref()
        .map(|fp| vec![Span::raw(owned(fp))]);
    let state_part = vec![Span::styled(label, Style::new().fg(color).bold())];
    let build = |parts: &[&Vec<Span<'static>>]| {
        let mut spans = vec![Span::raw(" ")];
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                spans.push(Span::raw(" │ "));
            }
            spans.extend(part.iter().cloned());
        }
        Line::from(spans)
    };
    let mut line = match &fingerprint {
        Some(fp) => build(&[&server, fp, &state_part, &who]),
        None => build(&[&server, &state_part, &who]),
    };
    if line.width() > usize::from(area.width) {
        line = build(&[&server, &state_part, &who]);
    }
    if line.width() > usize::from(area.width) {
        line = build(&[&state_part, &who]);
    }
    buf.set_style(area, BAR_STYLE);
    buf.set_line(area.x, area.y, &line, area.width);
}

/// The part of the input shown in a line `avail` columns wide: the byte
/// offset in `text` of the first grapheme shown, and the cursor's column
/// relative to it (`cursor` is a byte offset on a grapheme boundary). The
/// view slides so the cursor always stays visible. Columns are those of
/// the text as shown, i.e. sanitized (see [`input_shown`]).
pub fn input_window(text: &str, cursor: usize, avail: usize) -> (usize, usize) {
    let avail = avail.max(1);
    // The graphemes before the cursor: where each ends, and its width.
    let before: Vec<(usize, usize)> = text
        .grapheme_indices(true)
        .take_while(|&(at, _)| at < cursor)
        .map(|(at, g)| (at + g.len(), str_width(&sanitize(g))))
        .collect();
    let mut col: usize = before.iter().map(|&(_, w)| w).sum();
    let mut start = 0;
    // Keep one column for the cursor itself.
    for &(end, w) in &before {
        if col < avail {
            break;
        }
        col -= w;
        start = end;
    }
    (start, col)
}

/// The input text from byte `start` on, as the input line shows it: each
/// grapheme sanitized (an unfinished emoji tag sequence shows U+FFFD).
pub fn input_shown(text: &str, start: usize) -> String {
    text.get(start..)
        .unwrap_or("")
        .graphemes(true)
        .map(sanitize)
        .collect()
}

fn render_input(app: &App, area: Rect, buf: &mut Buffer) {
    if area.is_empty() {
        return;
    }
    let line = match app.mode() {
        Mode::Closed(_) => Line::styled(
            " the session is over; press any key to exit",
            Style::new().fg(Color::Yellow).bold(),
        ),
        Mode::Quitting => Line::styled(" leaving… (Ctrl-C again to exit at once)", STATUS_STYLE),
        Mode::Chat => {
            let avail = usize::from(area.width).saturating_sub(PROMPT.len());
            let text = app.input.value();
            let (start, _) = input_window(text, app.input.cursor(), avail);
            Line::from(vec![
                Span::styled(PROMPT, Style::new().bold()),
                Span::raw(input_shown(text, start)),
            ])
        }
    };
    buf.set_line(area.x, area.y, &line, area.width);
}

/// Where the terminal cursor goes: in the input line while chatting.
pub fn cursor_position(app: &App, area: Rect) -> Option<Position> {
    if !matches!(app.mode(), Mode::Chat) {
        return None;
    }
    let input = layout(area).input;
    if input.is_empty() {
        return None;
    }
    let avail = usize::from(input.width).saturating_sub(PROMPT.len());
    let (_, col) = input_window(app.input.value(), app.input.cursor(), avail);
    let x = (usize::from(input.x) + PROMPT.len() + col)
        .min(usize::from(input.right().saturating_sub(1)));
    Some(Position::new(x as u16, input.y))
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    use super::*;
    use tlschat_client_core::{ClientEvent, CloseReason, ServerLines};
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

    /// One server line as the session passes it on.
    fn line(app: &mut App, l: &str) {
        let mut lines = ServerLines::new(app.state.nick.clone(), app.state.room.clone());
        for event in lines.read(l).into_iter().flatten() {
            app.on_client_event(event);
        }
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
        let col = |y: usize| {
            rows[y]
                .chars()
                .skip(usize::from(sidebar_x))
                .collect::<String>()
        };
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
}
