//! The terminal UI's colours: the nick palette and a style for each kind
//! of text, shared by the message pane's lines and the other areas.

use ratatui::style::{Color, Modifier, Style};

pub(crate) use tlschat_client_core::render::fnv1a;

/// Readable on dark and light backgrounds alike (256-colour indexes of
/// medium lightness); red and magenta hues that mean "error" and
/// "private" are left out.
pub(crate) const NICK_PALETTE: [Color; 12] = [
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

pub(crate) const TIME_STYLE: Style = Style::new().fg(Color::DarkGray);
pub(crate) const DIM_STYLE: Style = Style::new().fg(Color::DarkGray);
pub(crate) const STATUS_STYLE: Style = Style::new().fg(Color::Yellow);
pub(crate) const ERROR_STYLE: Style = Style::new().fg(Color::Red).add_modifier(Modifier::BOLD);
pub(crate) const PRIVATE_STYLE: Style = Style::new().fg(Color::Magenta);
pub(crate) const BAR_STYLE: Style = Style::new().fg(Color::White).bg(Color::DarkGray);

/// The colour of a nick; case does not matter (nicks compare without it).
pub(crate) fn nick_color(nick: &str) -> Color {
    let h = fnv1a(nick.to_lowercase().as_bytes());
    NICK_PALETTE[(h % NICK_PALETTE.len() as u64) as usize]
}

pub(crate) fn nick_style(nick: &str) -> Style {
    Style::new()
        .fg(nick_color(nick))
        .add_modifier(Modifier::BOLD)
}
