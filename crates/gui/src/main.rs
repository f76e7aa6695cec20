//! `tlschat-gui`: reads the command line (`cli.rs`) and opens the window.
//! Everything else is in the library (`app.rs` and what it uses).

// A release build on Windows opens no console window next to the app (so
// `--help` and `--version` print nowhere there).
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

use tlschat_gui::App;

/// The window and taskbar icon (X11, Windows, the macOS dock); Wayland
/// takes it from the .desktop file named by the app id.
const ICON: &[u8] = include_bytes!("../assets/tlschat-256.png");

fn main() -> eframe::Result {
    let start = match tlschat_gui::cli::parse(std::env::args_os()) {
        Ok(start) => start,
        Err(help_or_version) => help_or_version.exit(),
    };
    if let Some(error) = &start.error {
        eprintln!("tlschat-gui: {error}");
    }
    let mut viewport = egui::ViewportBuilder::default()
        .with_title("tlschat")
        // The .desktop file's name (packaging/gui/): Wayland's app id, X11's WM_CLASS.
        .with_app_id("tlschat-gui")
        .with_inner_size([1024.0, 680.0])
        .with_min_inner_size([480.0, 320.0]);
    if let Ok(icon) = eframe::icon_data::from_png_bytes(ICON) {
        viewport = viewport.with_icon(std::sync::Arc::new(icon));
    }
    // Before the event loop: a clicked link that launched the app is
    // delivered as soon as it runs.
    #[cfg(target_os = "macos")]
    tlschat_gui::macos_url::register();
    let options = eframe::NativeOptions {
        viewport,
        // fonts.rs installs the system font fallback itself.
        system_font_fallback: false,
        ..Default::default()
    };
    eframe::run_native(
        "tlschat",
        options,
        Box::new(|cc| {
            tlschat_gui::theme::follow_system(&cc.egui_ctx);
            Ok(Box::new(App::new(cc, start)))
        }),
    )
}
