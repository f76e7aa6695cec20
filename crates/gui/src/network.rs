//! The network side of the window: one background thread per connection
//! attempt, owning a tokio runtime that runs the client core (establish,
//! login, then the session) and passes everything it hears to the UI.
//!
//! ```text
//! UI thread                          network thread (tokio, current-thread)
//! Network::connect ─────spawn──────▶ establish(opts, AskUi)
//!   NetEvent::AskTrust/AskPassword/ ◀── AskUi asks, then waits for
//!     AskJoinSecret
//!   answer_trust / answer_password ──▶ the Answer (channel)
//!   NetEvent::Started(ClientHandle) ◀── login, session::start
//!   NetEvent::Client(ClientEvent) ◀──── every session event
//! each send is followed by ctx.request_repaint(): the UI sleeps otherwise
//! ```
//!
//! The UI thread only ever does non-blocking things here (`try_recv`,
//! channel sends, [`ClientHandle::try_send`]). Dropping the [`Network`]
//! answers any open question with "no"; dropping the [`ClientHandle`] ends
//! the session as `/quit` does.

use std::sync::mpsc::{channel, Receiver, Sender};

use tlschat_client_core::{
    establish, start, ClientEvent, ClientHandle, ClientOptions, ConnectError, Prompter,
};
use tlschat_protocol::Fingerprint;

/// What the network thread tells the UI.
#[derive(Debug)]
pub enum NetEvent {
    /// First contact with this server: trust its certificate? Nothing has
    /// been sent yet. Answer with [`Network::answer_trust`].
    AskTrust {
        server: String,
        fingerprint: Fingerprint,
    },
    /// The server asks a password for `nick`. Answer with
    /// [`Network::answer_password`].
    AskPassword { nick: String },
    /// The server asks its join password or an invite code (and the
    /// connect form had no invite for it). Answer with
    /// [`Network::answer_password`].
    AskJoinSecret { server: String },
    /// Logged in: the session runs; lines go to it through the handle.
    Started(ClientHandle),
    /// No connection: the client core's reason.
    Failed(ConnectError),
    /// The running session's events, in order.
    Client(ClientEvent),
}

/// A person's answer to the question in flight.
enum Answer {
    Trust(bool),
    Password(Option<String>),
}

/// One connection attempt and the session it becomes.
#[derive(Debug)]
pub struct Network {
    events: Receiver<NetEvent>,
    answers: Sender<Answer>,
}

impl Network {
    /// Starts connecting in a background thread. `ctx` is asked to repaint
    /// after every event, so the UI wakes up to drain them.
    pub fn connect(opts: ClientOptions, ctx: egui::Context) -> std::io::Result<Network> {
        let (event_tx, events) = channel();
        let (answers, answer_rx) = channel();
        let link = UiLink {
            events: event_tx,
            ctx,
        };
        std::thread::Builder::new()
            .name("tlschat-network".into())
            .spawn(move || run(opts, link, answer_rx))?;
        Ok(Network { events, answers })
    }

    /// The next event, if one is waiting (never blocks).
    pub fn poll(&self) -> Option<NetEvent> {
        // Empty, or the network thread is done: nothing more either way.
        self.events.try_recv().ok()
    }

    pub fn answer_trust(&self, trusted: bool) {
        // The network thread may be gone already; then nobody is asking.
        let _ = self.answers.send(Answer::Trust(trusted));
    }

    /// Answers the password or the join secret asked for.
    pub fn answer_password(&self, password: Option<String>) {
        let _ = self.answers.send(Answer::Password(password));
    }
}

/// The network thread's way to the UI: send, then wake the UI.
struct UiLink {
    events: Sender<NetEvent>,
    ctx: egui::Context,
}

impl UiLink {
    /// False once the UI has gone away.
    fn send(&self, event: NetEvent) -> bool {
        let sent = self.events.send(event).is_ok();
        self.ctx.request_repaint();
        sent
    }
}

/// The network thread: a runtime for this connection and its session.
fn run(mut opts: ClientOptions, link: UiLink, answers: Receiver<Answer>) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            link.send(NetEvent::Failed(ConnectError::Io(e)));
            return;
        }
    };
    runtime.block_on(async move {
        let mut ask = AskUi {
            link: &link,
            answers,
            password: None,
            join_secret: None,
        };
        let connected = match establish(&opts, Some(&mut ask)).await {
            Ok(trusted) => trusted.login(&opts, Some(&mut ask)).await,
            Err(e) => Err(e),
        };
        let connected = match connected {
            Ok(c) => c,
            Err(e) => {
                link.send(NetEvent::Failed(e));
                return;
            }
        };
        // Kept in memory for the session's reconnects, never written.
        if let Some(password) = ask.password.take() {
            opts.password = Some(password);
        }
        if let Some(secret) = ask.join_secret.take() {
            opts.join_secret = Some(secret);
        }
        let (handle, mut events) = start(opts, connected);
        if !link.send(NetEvent::Started(handle)) {
            return;
        }
        while let Some(event) = events.recv().await {
            let closed = matches!(event, ClientEvent::Closed(_));
            if !link.send(NetEvent::Client(event)) || closed {
                return;
            }
        }
    });
}

/// The [`Prompter`] of the GUI: puts the question to the UI and waits (on
/// the network thread) for the answer. A UI that went away answers no.
struct AskUi<'a> {
    link: &'a UiLink,
    answers: Receiver<Answer>,
    /// The password the user gave, for the session's reconnects.
    password: Option<String>,
    /// The join password or code the user gave, likewise.
    join_secret: Option<String>,
}

impl AskUi<'_> {
    /// Puts `question` to the UI; the (non-empty) answer, or `None` when
    /// cancelled or the UI went away.
    fn secret(&mut self, question: NetEvent) -> Option<String> {
        if !self.link.send(question) {
            return None;
        }
        match self.answers.recv() {
            Ok(Answer::Password(p)) => p.filter(|p| !p.is_empty()),
            _ => None,
        }
    }
}

impl Prompter for AskUi<'_> {
    fn confirm_new_host(&mut self, server: &str, fingerprint: &Fingerprint) -> bool {
        let asked = self.link.send(NetEvent::AskTrust {
            server: server.to_owned(),
            fingerprint: *fingerprint,
        });
        asked && matches!(self.answers.recv(), Ok(Answer::Trust(true)))
    }

    fn password(&mut self, nick: &str) -> Option<String> {
        let given = self.secret(NetEvent::AskPassword {
            nick: nick.to_owned(),
        });
        self.password.clone_from(&given);
        given
    }

    fn join_secret(&mut self, server: &str) -> Option<String> {
        let given = self.secret(NetEvent::AskJoinSecret {
            server: server.to_owned(),
        });
        self.join_secret.clone_from(&given);
        given
    }
}
