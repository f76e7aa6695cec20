//! Light or dark, as the system is. egui follows the system theme that
//! winit reports, which it does on Windows and macOS; on Linux winit
//! reports none, so the XDG desktop portal's colour scheme is read (in a
//! thread: it is a D-Bus call) and set as egui's fallback theme.

/// Starts following the system's theme.
pub fn follow_system(ctx: &egui::Context) {
    ctx.set_theme(egui::ThemePreference::System);
    #[cfg(target_os = "linux")]
    {
        let ctx = ctx.clone();
        let _ = std::thread::Builder::new()
            .name("tlschat-theme".into())
            .spawn(move || {
                let theme = match dark_light::detect() {
                    Ok(dark_light::Mode::Light) => egui::Theme::Light,
                    // Dark, or no preference known: egui's default.
                    _ => egui::Theme::Dark,
                };
                ctx.options_mut(|o| o.fallback_theme = theme);
                ctx.request_repaint();
            });
    }
}
