//! Colours: a stable colour per nickname (the same in every run, on every
//! machine, in both themes: FNV-1a of the case-folded nick picks the hue,
//! the theme picks saturation and lightness so it stays readable), and
//! the colours of the kinds of text.

use egui::ecolor::Hsva;
use egui::{Color32, Visuals};

use tlschat_client_core::render::fnv1a;

/// The colour `nick` is drawn in; case does not matter.
pub fn nick(nick: &str, dark: bool) -> Color32 {
    let hash = fnv1a(nick.to_lowercase().as_bytes());
    // 360 steps of hue are plenty to tell people apart.
    let hue = (hash % 360) as f32 / 360.0;
    let (saturation, value) = if dark { (0.55, 0.95) } else { (0.85, 0.62) };
    Hsva::new(hue, saturation, value, 1.0).into()
}

/// Private messages.
pub fn private(visuals: &Visuals) -> Color32 {
    if visuals.dark_mode {
        Color32::from_rgb(0xE0, 0x8C, 0xE8)
    } else {
        Color32::from_rgb(0x9B, 0x2C, 0xA8)
    }
}

/// Errors from the server or the client.
pub fn error(visuals: &Visuals) -> Color32 {
    visuals.error_fg_color
}

/// The client's own notices (connected, reconnecting).
pub fn status(visuals: &Visuals) -> Color32 {
    visuals.warn_fg_color
}

/// Timestamps, joins and parts: present but quiet.
pub fn dim(visuals: &Visuals) -> Color32 {
    visuals.weak_text_color()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nick_keeps_its_colour_whatever_its_case() {
        assert_eq!(nick("Alice", true), nick("alice", true));
        assert_eq!(nick("BOB", false), nick("bob", false));
        assert_ne!(nick("alice", true), nick("alice", false));
        // Different people usually differ.
        assert_ne!(nick("alice", true), nick("bob", true));
    }
}
