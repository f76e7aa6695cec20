//! Rendering: `impl Widget for &App` draws the whole screen from the app's
//! state without changing it, one `render` function per area, each in
//! its own module.
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
//! ```text
//! mod.rs         layout(), draw(), the Widget that calls one render per area
//! messages.rs    the message pane (lines from `tui::text`)
//! sidebar.rs     the room and its members
//! status.rs      the status bar
//! input_line.rs  the input line and where the cursor goes
//! ```
//!
//! Network text is sanitized before it becomes a span (see `tui::text`).

mod input_line;
mod messages;
mod sidebar;
mod status;
#[cfg(test)]
mod tests;

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::widgets::Widget;
use ratatui::Frame;

use super::app::App;

pub use input_line::cursor_position;

/// Width of the user list, border included.
pub const SIDEBAR_WIDTH: u16 = 22;
/// Below this terminal width the user list is hidden.
pub(crate) const SIDEBAR_MIN_TERMINAL_WIDTH: u16 = 64;
/// Shown on the last row of the message pane while scrolled up.
pub(crate) const MORE_BELOW: &str = "-- more below (PgDn, Esc: back to the bottom) --";

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
        messages::render(self, areas.messages, buf);
        if let Some(sidebar) = areas.sidebar {
            sidebar::render(self, sidebar, buf);
        }
        status::render(self, areas.status, buf);
        input_line::render(self, areas.input, buf);
    }
}
