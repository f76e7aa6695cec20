//! UI tests of tlschat-gui: egui_kittest drives the real app (finding
//! widgets through AccessKit, typing, clicking) against a real server on
//! loopback; rendered snapshots where a wgpu adapter is available; and
//! the real binary under Xvfb.

mod chat;
mod command_line;
// Xvfb, xdotool and ImageMagick: an X11 desktop's tools.
#[cfg(target_os = "linux")]
mod e2e;
mod flows;
mod harness;
mod invite;
// The reference pictures are drawn on Linux (lavapipe, Noto fonts); other
// systems draw text with other fonts.
#[cfg(target_os = "linux")]
mod snapshots;
