//! The status bar: server, certificate fingerprint, connection state,
//! nickname and room.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};

use crate::tui::text::owned;
use crate::tui::theme::BAR_STYLE;
use crate::tui::{App, Mode};
use tlschat_client_core::render::sanitize;
use tlschat_client_core::state::ConnState;

/// The connection state as the status bar shows it.
pub(crate) fn conn_label(app: &App) -> (String, Color) {
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
pub(super) fn render(app: &App, area: Rect, buf: &mut Buffer) {
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
