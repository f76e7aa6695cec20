//! tlschat-gui: the desktop client, a window on tlschat-client-core.
//!
//! Everything that is not drawing (connecting, trust and known_hosts,
//! login, keepalive, reconnect, chat state, sanitising) is the client
//! core's; this crate draws it with egui and forwards what the user does.
//!
//! ```text
//! main.rs (cli.rs: the command line) ─▶ App (app.rs): one screen at a time
//!   Connect (screens/connect.rs) ──Connect──▶ network.rs: a thread with a
//!   Trust / Changed (screens/trust.rs)  ◀─┐   tokio runtime runs establish,
//!   Password dialog (screens/connect.rs) ◀┤   login and the session
//!   Chat (screens/chat.rs) ◀──NetEvent────┘   (events over a channel, then
//!      └─ user lines ──ClientHandle::try_send─▶  ctx.request_repaint())
//! screens/bidi.rs: right-to-left text put in reading order, row by row
//! settings.rs: recent servers and the nickname (never the password)
//! fonts.rs, colors.rs, theme.rs: scripts and emoji, per-nick colours,
//!   light or dark as the system is
//! notify.rs: desktop notifications while the window is unfocused
//! open_url.rs: links the system hands to the running window (macOS's
//!   Apple Event, macos_url.rs), drained by App each frame
//! ```
//!
//! The UI thread never waits on the network: it drains the event channel
//! at the start of each frame, and a frame is only drawn when something
//! asked for one (input, or the network thread's `request_repaint`).

pub mod app;
pub mod cli;
pub mod colors;
pub mod fonts;
#[cfg(target_os = "macos")]
pub mod macos_url;
pub mod network;
pub mod notify;
pub mod open_url;
pub mod screens;
pub mod settings;
pub mod theme;

pub use app::{App, Screen};
pub use screens::chat::{ChatView, ConversationKey};
