//! The message pane's text, measured: each [`Entry`] as styled spans
//! (`entry_spans`), wrapped to a width (`wrap`, [`entry_lines`]), and
//! how many rows the scrollback takes (`rows_from_bottom`,
//! `clamp_scroll`). Both the app (scrolling) and `ui` (drawing) use it,
//! so neither depends on the other.
//!
//! Every string that came from the network goes through
//! [`render::sanitize`] (or [`render::plain`], which sanitizes) before it
//! becomes a [`Span`]. Lines are wrapped here (word-wise, with a hanging
//! indent under the timestamp) so that scrolling can count rows exactly.
//!
//! Widths are counted in terminal columns per grapheme cluster, with the
//! same rule the ratatui buffer applies when it draws ([`CellWidth`], on top
//! of `unicode-width`): a CJK character or an emoji sequence takes two
//! columns, a combining mark none. So wrapping never splits a grapheme, a
//! wide character never straddles the pane's edge, and the cursor lands
//! where the text is drawn.

use ratatui::buffer::CellWidth;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use unicode_segmentation::UnicodeSegmentation;

use super::theme::{nick_style, DIM_STYLE, ERROR_STYLE, PRIVATE_STYLE, STATUS_STYLE, TIME_STYLE};
use tlschat_client_core::render::{self, sanitize};
use tlschat_client_core::state::{ChatState, Conversation, Entry, EntryKind, Kept};

/// How a kept line's date and time are written (the client core's
/// [`render::stamp`]).
const HISTORY_TIME: &str = render::STAMP_FORMAT;

/// What a history separator's words are set in, across the pane.
const RULE: &str = "─";

/// Columns one grapheme cluster takes, as the buffer draws it (0 for one
/// it does not draw: a lone combining mark).
pub(crate) fn grapheme_width(g: &str) -> usize {
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

pub(crate) fn owned(s: &str) -> String {
    sanitize(s).into_owned()
}

/// A kept line (history or a search hit), all dimmed: the date and time it
/// was said, the room if not the current one, then as a live line reads.
fn kept_spans(entry: &Entry, kept: &Kept, state: &ChatState, mark: &str) -> Vec<Span<'static>> {
    let mut spans = vec![Span::styled(
        format!("{mark}{} ", entry.time.format(HISTORY_TIME)),
        DIM_STYLE,
    )];
    if !kept.room.eq_ignore_ascii_case(&state.room) {
        spans.push(Span::styled(
            format!("[{}] ", sanitize(&kept.room)),
            DIM_STYLE,
        ));
    }
    let text = render::said(&kept.nick, &kept.text, kept.action);
    spans.push(Span::styled(text, DIM_STYLE));
    spans
}

/// A history separator: its words centred in a dim rule across the pane.
fn separator_line(words: &str, width: usize) -> Line<'static> {
    let words = format!(" {} ", sanitize(words));
    let rest = width.saturating_sub(str_width(&words));
    let left = rest / 2;
    let text = format!("{}{words}{}", RULE.repeat(left), RULE.repeat(rest - left));
    Line::from(Span::styled(text, DIM_STYLE))
}

/// One entry as styled spans, timestamp first, before wrapping.
pub(crate) fn entry_spans(entry: &Entry, state: &ChatState) -> Vec<Span<'static>> {
    match &entry.kind {
        EntryKind::History(kept) => return kept_spans(entry, kept, state, ""),
        EntryKind::Found(kept) => return kept_spans(entry, kept, state, "⌕ "),
        _ => {}
    }
    let mut spans = vec![Span::styled(
        entry.time.format("%H:%M ").to_string(),
        TIME_STYLE,
    )];
    let room_tag = |room: &str| {
        (!room.eq_ignore_ascii_case(&state.room))
            .then(|| Span::styled(format!("[{}] ", sanitize(room)), DIM_STYLE))
    };
    match &entry.kind {
        EntryKind::Message {
            room, nick, text, ..
        } => {
            spans.extend(room_tag(room));
            spans.push(Span::styled(owned(nick), nick_style(nick)));
            spans.push(Span::raw(": "));
            spans.push(Span::raw(owned(text)));
        }
        EntryKind::Action {
            room, nick, text, ..
        } => {
            spans.extend(room_tag(room));
            let italic = Style::new().add_modifier(Modifier::ITALIC);
            spans.push(Span::styled("* ", italic));
            spans.push(Span::styled(
                owned(nick),
                nick_style(nick).add_modifier(Modifier::ITALIC),
            ));
            spans.push(Span::styled(format!(" {}", sanitize(text)), italic));
        }
        EntryKind::Private { from, text, .. } => {
            let (arrow, other) = match entry.kind.conversation(&state.nick) {
                Conversation::Private {
                    outgoing: true,
                    peer,
                } => ("→ ", peer),
                _ => ("← ", from.as_str()),
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
        kind @ (EntryKind::Join { .. }
        | EntryKind::Part { .. }
        | EntryKind::Kick { .. }
        | EntryKind::Rename { .. }
        | EntryKind::HistoryEnd(_)
        | EntryKind::FoundEnd { .. }
        | EntryKind::History(_)
        | EntryKind::Found(_)) => {
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
pub(crate) fn wrap(spans: &[Span<'_>], width: usize, indent: usize) -> Vec<Line<'static>> {
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

/// The rows one entry takes in a pane `width` columns wide: wrapped rows
/// are indented under the text, past the time (or a kept line's date).
pub fn entry_lines(entry: &Entry, state: &ChatState, width: usize) -> Vec<Line<'static>> {
    if let EntryKind::HistoryEnd(end) = &entry.kind {
        if let Some(words) = end.separator() {
            if str_width(&words) + 2 <= width {
                return vec![separator_line(&words, width)];
            }
        }
    }
    let spans = entry_spans(entry, state);
    let indent = spans.first().map_or(0, |s| str_width(&s.content));
    wrap(&spans, width, indent)
}

/// Rows of the newest entries, counted from the bottom, stopping once
/// `limit` is reached (so the cost follows what is on screen, not the
/// whole scrollback).
pub(crate) fn rows_from_bottom(state: &ChatState, width: usize, limit: usize) -> usize {
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
pub(crate) fn clamp_scroll(state: &ChatState, width: usize, height: usize, wanted: usize) -> usize {
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
