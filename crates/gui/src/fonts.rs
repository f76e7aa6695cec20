//! Fonts: egui's own fonts cover Latin, Greek and Cyrillic; every other
//! script and emoji come from the system's fonts, found on demand for each
//! character no font has yet (fontconfig, DirectWrite or CoreText, through
//! egui's system font provider; colour emoji included). The app and the
//! tests install the same providers.

use std::sync::Arc;

/// Installs the system font fallback on `ctx`.
pub fn install(ctx: &egui::Context) {
    ctx.add_font_provider(Arc::new(
        egui_system_font_provider::SystemFontProvider::new(),
    ));
}
