//! The input line: the part of the text around the cursor that fits, or
//! what the mode says instead, and where the terminal cursor goes. The
//! passwords of `/register` and `/password` ([`secret`]) show as one `•`
//! a grapheme.

use ratatui::buffer::Buffer;
use ratatui::layout::{Position, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use unicode_segmentation::UnicodeSegmentation;

use super::layout;
use crate::tui::text::str_width;
use crate::tui::theme::STATUS_STYLE;
use crate::tui::{App, Mode};
use tlschat_client_core::render::sanitize;
use tlschat_client_core::{secret, MASK};

const PROMPT: &str = "> ";

/// Each grapheme of `text` with where it starts and how it is shown:
/// sanitized (an unfinished emoji tag sequence shows U+FFFD), or as
/// [`MASK`] inside a password.
fn shown_graphemes(text: &str) -> impl Iterator<Item = (usize, &str, String)> {
    let secret = secret(text);
    text.grapheme_indices(true).map(move |(at, g)| {
        let shown = match &secret {
            Some(s) if s.covers(at) => MASK.to_string(),
            _ => sanitize(g).into_owned(),
        };
        (at, g, shown)
    })
}

/// The part of the input shown in a line `avail` columns wide: the byte
/// offset in `text` of the first grapheme shown, and the cursor's column
/// relative to it (`cursor` is a byte offset on a grapheme boundary). The
/// view slides so the cursor always stays visible. Columns are those of
/// the text as shown (see [`input_shown`]).
pub(crate) fn input_window(text: &str, cursor: usize, avail: usize) -> (usize, usize) {
    let avail = avail.max(1);
    // The graphemes before the cursor: where each ends, and its width.
    let before: Vec<(usize, usize)> = shown_graphemes(text)
        .take_while(|&(at, _, _)| at < cursor)
        .map(|(at, g, shown)| (at + g.len(), str_width(&shown)))
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

/// The input text from byte `start` on, as the input line shows it.
pub(crate) fn input_shown(text: &str, start: usize) -> String {
    shown_graphemes(text)
        .skip_while(|&(at, _, _)| at < start)
        .map(|(_, _, shown)| shown)
        .collect()
}

pub(super) fn render(app: &App, area: Rect, buf: &mut Buffer) {
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
