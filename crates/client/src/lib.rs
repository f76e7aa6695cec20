//! tlschat-client-core: everything a tlschat client does that is not
//! drawing, shared by the front ends: plain mode (`src/plain.rs`), the
//! terminal UI (`src/tui/`) and the desktop GUI (`crates/gui`).
//!
//! ```text
//! establish(opts, prompter)     TCP → TLS → trust (trust.rs; known_hosts
//!   → Trusted                   updated, stored_in says so)
//! Trusted::login(opts, prompter) NICK/PASS → WELCOME
//!   → Connected
//! start(opts, Connected)        spawns the session task (session.rs):
//!   → (ClientHandle, Receiver<ClientEvent>)
//!
//!   user input ─classify─▶ ClientHandle::send ──▶ session ──▶ server
//!   server ──▶ session: ServerLines::read (the one parse, the current
//!              room, keepalive, reconnect with backoff, rejoin)
//!          ──ClientEvent──▶ front end: ChatState::apply ──▶ Entry
//!                                      render::sanitize / render::plain
//! ```
//!
//! A front end, GUI or terminal, does this and only drawing besides:
//! 1. Build [`ClientOptions`] (a [`HostPort`], the nickname, a
//!    [`trust::Trust`]) and call [`establish`] then [`Trusted::login`] with
//!    a [`Prompter`] for the questions only a person can answer (an
//!    unknown certificate, a password); a [`ConnectError`] says what went
//!    wrong and which [`exit`] code goes with it.
//! 2. Call [`start`] on a tokio runtime. Send what the user enters with
//!    [`ClientHandle::send`] (or [`ClientHandle::try_send`] from a UI
//!    thread), after [`classify`] says whether it is `/quit` or `/help`.
//! 3. Receive [`ClientEvent`]s and fold each into a [`ChatState`] with
//!    [`ChatState::apply`]: it keeps the scrollback, the room (as the
//!    session announces it with [`ClientEvent::Room`]), its members and
//!    the connection state, and returns the [`state::Entry`] to show.
//!    Show network text only through [`render::sanitize`] (or
//!    [`render::plain`]). Draw the input's [`secret`]s masked and send
//!    such a line as [`secret_command`] gives it. [`ClientEvent::Closed`] ends the session; its
//!    [`CloseReason`] gives the text and the exit code.
//!
//! History (a server that selects ALPN `tlschat/2`, which the client
//! offers): live room lines carry their stamp (`EntryKind::Message::at`);
//! after each join the server replays kept lines, shown as
//! [`state::EntryKind::History`] (dimmed, with [`state::Entry::time`] the
//! time it was said, see [`render::stamp`]) and ended by
//! [`state::EntryKind::HistoryEnd`], the separator between history and
//! live lines ([`state::HistoryEnd::separator`]). The session drops kept
//! lines already shown and, after a reconnect, asks for the ones missed
//! (`/history since <cursor>`); [`ChatState::apply`] places each kept line
//! by its stamp ([`state::position`], which a front end keeping its own
//! copies uses too). Scrolled to the top, a front end sends
//! [`ChatState::older_history`]'s command. `/search` hits come as
//! [`state::EntryKind::Found`] then [`state::EntryKind::FoundEnd`], a
//! block of their own, newest first.
//!
//! The session sends a keepalive `/ping` after a quiet minute, and on a
//! lost connection reconnects with backoff (never after `REFUSE`, `BAN`,
//! `KICK` or a protocol error), rejoining the room the user was in.
//!
//! The server is not trusted to behave: the login answers each prompt at
//! most once (the password is sent once per connection) and accepts only a
//! `WELCOME` for the nickname it sent, into the lobby; a second `WELCOME`
//! ends the session; every write to the socket runs under the session's
//! deadlines, so a server that stops reading cannot hang the client; what
//! reaches the front end is bounded (a small event queue, and `state`'s
//! limits), and every server text in an error is passed through
//! [`render::sanitize`].

#![warn(clippy::string_slice)]

mod connect;
mod error;
mod event;
mod input;
mod login;
mod options;
mod outgoing;
mod reconnect;
pub mod render;
mod replay;
mod session;
pub mod state;
pub mod trust;

pub use connect::{establish, Prompter, Trusted};
pub use error::{ChangedCertificate, ConnectError, Expected};
pub use event::{ClientEvent, CloseReason, ServerLines};
pub use input::{
    accept_pasted, accept_typed, classify, clean_typed, is_quit, may_follow, secret,
    secret_command, History, Secret, UserLine, HISTORY_LEN, MASK, MAX_INPUT_BYTES,
};
pub use login::Connected;
pub use options::{exit, ClientOptions};
pub use session::{start, ClientHandle};
pub use state::ChatState;
pub use tlschat_protocol::HostPort;
