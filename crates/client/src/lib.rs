//! tlschat-client-core: everything a tlschat client does that is not
//! drawing, shared by plain mode, the terminal UI and (next) a GUI.
//!
//! ```text
//! establish(): TCP → TLS (trust.rs decides, known_hosts updated) → Trusted
//! Trusted::login(): NICK/PASS → WELCOME → Connected       (connect() = both)
//! start(Connected): session task ──ClientEvent──▶ front end (ChatState::apply)
//!                        ▲
//!                        └──────── ClientHandle::send(line) ◀── user input
//! ```
//!
//! [`connect`] makes the first connection while the front end can still
//! ask the user things (unknown certificate, password) through a
//! [`Prompter`]. [`start`] hands that connection to a task that relays lines
//! both ways, sends a keepalive `/ping` after a quiet minute, and on a lost
//! connection reconnects with backoff (never after `REFUSE`, `BAN`, `KICK`
//! or a protocol error), rejoining the room the user was in.
//!
//! The server is not trusted to behave: the login answers each prompt at
//! most once (the password is sent once per connection) and accepts only a
//! `WELCOME` for the nickname it sent, into the lobby; a second `WELCOME`
//! ends the session; every write to the socket runs under the session's
//! deadlines, so a server that stops reading cannot hang the client; what
//! reaches the front end is bounded (see [`EVENT_QUEUE`] and `state`), and
//! every server text in an error is passed through [`render::sanitize`].

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
mod session;
pub mod state;
pub mod trust;

pub use connect::{establish, Prompter, Trusted};
pub use error::ConnectError;
pub use event::{ClientEvent, CloseReason, ServerLines};
pub use input::{classify, is_quit, UserLine};
pub use login::Connected;
pub use options::{exit, ClientOptions, HostPort};
pub use session::{start, ClientHandle};
pub use state::ChatState;
