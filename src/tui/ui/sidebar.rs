//! The sidebar: the current room, how many are in it, and its members
//! sorted by name (ours highlighted, a moderator's with its `@`), cut with
//! "… +N more" when they do not fit.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Widget};

use crate::tui::text::owned;
use crate::tui::theme::{nick_color, DIM_STYLE};
use crate::tui::App;
use tlschat_client_core::state::Member;

pub(super) fn render(app: &App, area: Rect, buf: &mut Buffer) {
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
    let mut users: Vec<&Member> = state.users.members().collect();
    users.sort_by_key(|u| u.nick.to_lowercase());
    let room_for = usize::from(inner.height).saturating_sub(lines.len());
    let shown = if users.len() > room_for {
        room_for.saturating_sub(1)
    } else {
        users.len()
    };
    for user in users.iter().take(shown) {
        let mut style = Style::new().fg(nick_color(&user.nick));
        if user.nick.eq_ignore_ascii_case(&state.nick) {
            style = style.add_modifier(Modifier::BOLD | Modifier::REVERSED);
        }
        let mark = user
            .mark
            .map(|m| Span::styled(m.as_char().to_string(), Style::new().bold()));
        lines.push(Line::from_iter(
            mark.into_iter()
                .chain([Span::styled(owned(&user.nick), style)]),
        ));
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
