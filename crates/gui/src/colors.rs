//! Colours: a stable colour per nickname (the same in every run, on every
//! machine, in both themes: FNV-1a of the case-folded nick picks the hue,
//! the theme picks saturation and lightness so it stays readable), and
//! the colours of the kinds of text.

use egui::ecolor::Hsva;
use egui::{Color32, Visuals};

use tlschat_client_core::render::fnv1a;

/// The least contrast every text keeps with the background it is drawn
/// on: WCAG AA for body text.
pub const MIN_CONTRAST: f32 = 4.5;

/// The panels' fill in each theme (egui's), which the chat's text is on.
fn background(dark: bool) -> Color32 {
    if dark {
        Color32::from_gray(27)
    } else {
        Color32::from_gray(248)
    }
}

/// `color`, moved towards black on a light background or white on a dark
/// one just far enough to keep [`MIN_CONTRAST`] with `background`.
pub fn readable(color: Color32, background: Color32) -> Color32 {
    let towards = if luminance(background) > 0.18 {
        Color32::BLACK
    } else {
        Color32::WHITE
    };
    let mix =
        |a: u8, b: u8, t: f32| (f32::from(a) + (f32::from(b) - f32::from(a)) * t).round() as u8;
    (0..=20)
        .map(|step| step as f32 / 20.0)
        .map(|t| {
            Color32::from_rgb(
                mix(color.r(), towards.r(), t),
                mix(color.g(), towards.g(), t),
                mix(color.b(), towards.b(), t),
            )
        })
        .find(|c| contrast(*c, background) >= MIN_CONTRAST)
        .unwrap_or(towards)
}

/// The colour `nick` is drawn in; case does not matter.
pub fn nick(nick: &str, dark: bool) -> Color32 {
    let hash = fnv1a(nick.to_lowercase().as_bytes());
    // 360 steps of hue are plenty to tell people apart.
    let hue = (hash % 360) as f32 / 360.0;
    let (saturation, value) = if dark { (0.55, 0.95) } else { (0.85, 0.62) };
    readable(
        Hsva::new(hue, saturation, value, 1.0).into(),
        background(dark),
    )
}

/// Private messages.
pub fn private(visuals: &Visuals) -> Color32 {
    let color = if visuals.dark_mode {
        Color32::from_rgb(0xE0, 0x8C, 0xE8)
    } else {
        Color32::from_rgb(0x9B, 0x2C, 0xA8)
    };
    readable(color, visuals.panel_fill)
}

/// Errors from the server or the client.
pub fn error(visuals: &Visuals) -> Color32 {
    readable(visuals.error_fg_color, visuals.panel_fill)
}

/// The client's own notices (connected, reconnecting).
pub fn status(visuals: &Visuals) -> Color32 {
    readable(visuals.warn_fg_color, visuals.panel_fill)
}

/// Timestamps, joins and parts: quieter than the messages, still readable.
pub fn dim(visuals: &Visuals) -> Color32 {
    readable(
        visuals.panel_fill.blend(visuals.weak_text_color()),
        visuals.panel_fill,
    )
}

/// A kept line's nickname, drawn from the room's history: its own colour
/// faded towards the background, still readable.
pub fn faded(color: Color32, visuals: &Visuals) -> Color32 {
    readable(
        visuals.panel_fill.lerp_to_gamma(color, 0.6),
        visuals.panel_fill,
    )
}

/// The WCAG contrast ratio of two colours (1 to 21; 4.5 or more reads
/// clearly as body text). Alpha is ignored: the colours are opaque.
pub fn contrast(a: Color32, b: Color32) -> f32 {
    let (la, lb) = (luminance(a), luminance(b));
    (la.max(lb) + 0.05) / (la.min(lb) + 0.05)
}

/// Relative luminance, as WCAG defines it (0 black to 1 white).
fn luminance(c: Color32) -> f32 {
    let channel = |v: u8| {
        let v = f32::from(v) / 255.0;
        if v <= 0.039_28 {
            v / 12.92
        } else {
            ((v + 0.055) / 1.055).powf(2.4)
        }
    };
    0.2126 * channel(c.r()) + 0.7152 * channel(c.g()) + 0.0722 * channel(c.b())
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

    #[test]
    fn every_kind_of_text_reads_clearly_in_both_themes() {
        for visuals in [Visuals::dark(), Visuals::light()] {
            let bg = visuals.panel_fill;
            assert_eq!(bg, background(visuals.dark_mode));
            let kinds = [
                ("private", private(&visuals)),
                ("error", error(&visuals)),
                ("status", status(&visuals)),
                ("dim", dim(&visuals)),
                ("faded", faded(nick("alice", visuals.dark_mode), &visuals)),
                (
                    "faded",
                    faded(Color32::from_rgb(0x10, 0x10, 0x40), &visuals),
                ),
            ];
            for (what, color) in kinds {
                let ratio = contrast(color, bg);
                assert!(
                    ratio >= MIN_CONTRAST,
                    "{what} (dark: {}): {ratio:.2}",
                    visuals.dark_mode
                );
            }
            // Every hue a nick can get.
            for i in 0..2000 {
                let name = format!("nick{i}");
                let ratio = contrast(nick(&name, visuals.dark_mode), bg);
                assert!(
                    ratio >= MIN_CONTRAST,
                    "{name} (dark: {}): {ratio:.2}",
                    visuals.dark_mode
                );
            }
        }
    }

    #[test]
    fn contrast_is_the_wcag_ratio() {
        assert!((contrast(Color32::BLACK, Color32::WHITE) - 21.0).abs() < 0.01);
        assert!((contrast(Color32::WHITE, Color32::WHITE) - 1.0).abs() < 0.01);
        let red_on_dark_red = contrast(Color32::RED, Color32::from_rgb(0x5c, 0x10, 0x10));
        assert!((red_on_dark_red - 3.42).abs() < 0.01, "{red_on_dark_red}");
    }
}
