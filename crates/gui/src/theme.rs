//! Light or dark, as the system is, also when it changes while the window
//! is open. egui follows the system theme that winit reports, which it
//! does on Windows and macOS (and reports changes as they happen); on
//! Linux winit reports none, so the XDG desktop portal's colour scheme is
//! read and then watched (D-Bus, on a thread that sleeps until the portal
//! signals a change: no polling), and set as egui's fallback theme.

/// Starts following the system's theme.
pub fn follow_system(ctx: &egui::Context) {
    ctx.set_theme(egui::ThemePreference::System);
    #[cfg(target_os = "linux")]
    {
        let ctx = ctx.clone();
        let _ = std::thread::Builder::new()
            .name("tlschat-theme".into())
            .spawn(move || {
                // Subscribed before the first read, so no change falls
                // between the two.
                let watcher = dark_light::subscribe();
                follow(&ctx, dark_light::detect().ok().map(is_dark));
                if let Ok(watcher) = watcher {
                    for mode in watcher.iter() {
                        follow(&ctx, Some(is_dark(mode)));
                    }
                }
            });
    }
}

#[cfg(target_os = "linux")]
fn is_dark(mode: dark_light::Mode) -> bool {
    // Dark, or no preference known: egui's default.
    mode != dark_light::Mode::Light
}

/// Sets what "the system's theme" is where winit cannot tell (`None`: not
/// known, so egui's default, dark), and redraws if that changes it.
pub fn follow(ctx: &egui::Context, dark: Option<bool>) {
    let theme = match dark {
        Some(false) => egui::Theme::Light,
        Some(true) | None => egui::Theme::Dark,
    };
    if ctx.options(|o| o.fallback_theme) != theme {
        ctx.options_mut(|o| o.fallback_theme = theme);
        ctx.request_repaint();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_of_the_system_theme_is_followed() {
        let ctx = egui::Context::default();
        ctx.set_theme(egui::ThemePreference::System);
        follow(&ctx, Some(false));
        assert_eq!(ctx.theme(), egui::Theme::Light);
        follow(&ctx, Some(true));
        assert_eq!(ctx.theme(), egui::Theme::Dark);
    }
}
