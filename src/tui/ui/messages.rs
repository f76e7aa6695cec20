//! The message pane: the newest rows that fit, above the scrolled-off
//! ones, with a "more below" bar while scrolled up.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::Line;

use super::MORE_BELOW;
use crate::tui::text::{entry_lines, str_width};
use crate::tui::App;

pub(super) fn render(app: &App, area: Rect, buf: &mut Buffer) {
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
