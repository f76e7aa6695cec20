//! The app: which screen is up, and what the network and the user do to
//! it. A small state machine:
//!
//! ```text
//! Connect ──Connect──▶ Connecting ──AskTrust──▶ Trust ──yes──▶ Connecting
//!    ▲                    │  │                    └──no───▶ Connect
//!    │                    │  └─AskPassword─▶ (password dialog) ─▶ Connecting
//!    ├──Failed────────────┤
//!    ├──Back── Changed ◀──┘ (a changed certificate: no way forward)
//!    └──Leave── Chat ◀── Started
//! ```
//!
//! An invite link (the command line, pasted into the Server field, or
//! handed over by the system while running: `open_url.rs`) fills in the
//! connect screen and is kept there, in memory only: its fingerprint is
//! trusted and its code answers `PASS join` when Connect is pressed for its
//! server. One arriving on another screen waits in a bar until the person
//! opens it (leaving that screen) or dismisses it.
//!
//! Screens draw themselves (`screens/`) and hand back what the user did
//! as an [`Action`]; network events arrive in `eframe::App::logic` before
//! each frame. Chat state is the client core's `ChatState`; the chat screen
//! only sorts its entries into conversations for display.

use std::sync::Arc;
use std::time::Instant;

use tlschat_client_core::trust::Trust;
use tlschat_client_core::{
    ChangedCertificate, ClientEvent, ClientOptions, CloseReason, ConnectError, HostPort,
};
use tlschat_protocol::{Fingerprint, InviteLink};

use crate::cli::Start;
use crate::network::{NetEvent, Network};
use crate::notify::{Coalescer, DesktopNotifier, Notice, Notifier};
use crate::open_url::Inbox;
use crate::screens::{self, chat::ChatView};
use crate::settings::{Paths, Settings};

/// What the connect screen holds.
#[derive(Debug, Default, Clone)]
pub struct ConnectForm {
    pub server: String,
    pub nickname: String,
    /// Why the last attempt failed, shown above the button.
    pub error: Option<String>,
    /// The invite link taken in; it counts only while `server` names its
    /// server. Never written anywhere (`server` holds `host:port`).
    pub invite: Option<InviteLink>,
    /// Give the Nickname field the keyboard at the next frame.
    pub focus_nickname: bool,
}

impl ConnectForm {
    /// Fills in the form from `link`: its server, and the link kept for
    /// Connect; the nickname is next.
    pub fn take_invite(&mut self, link: InviteLink) {
        self.server = link.server().to_string();
        self.invite = Some(link);
        self.error = None;
        self.focus_nickname = true;
    }

    /// The invite for the server the form names, if it was given one.
    pub fn invite(&self) -> Option<&InviteLink> {
        let server = self.server.trim().parse::<HostPort>().ok()?;
        self.invite.as_ref().filter(|l| *l.server() == server)
    }

    /// A link pasted into the Server field (alone, or after what was
    /// there) is taken in, or its error shown and the text left to fix.
    pub fn server_edited(&mut self) {
        match pasted_link(&self.server) {
            Some(Ok(link)) => self.take_invite(link),
            Some(Err(e)) => self.error = Some(e),
            None => {}
        }
    }
}

/// The link in `server` (alone, or after other text), or its error, which
/// never repeats the link (its code is a secret); `None` for no link.
fn pasted_link(server: &str) -> Option<Result<InviteLink, String>> {
    // ASCII lowercasing keeps every byte where it was.
    let at = server.to_ascii_lowercase().find("tlschat://")?;
    Some(
        InviteLink::parse(server.get(at..).unwrap_or_default())
            .map_err(|e| format!("invite link: {e}")),
    )
}

/// A link that arrived while another screen than Connect was up.
pub enum Arrived {
    Invite(InviteLink),
    /// Not a usable link: why.
    Broken(String),
}

/// The screen that is up.
pub enum Screen {
    Connect,
    /// Waiting for the network (the password dialog is drawn over it).
    Connecting {
        server: String,
        password: Option<PasswordPrompt>,
    },
    /// First contact: compare the fingerprint, then decide.
    Trust {
        server: String,
        fingerprint: Fingerprint,
    },
    /// A changed certificate: a dead end by design.
    Changed(Box<ChangedCertificate>),
    Chat(Box<ChatView>),
}

/// The password dialog's state: what is typed, masked, never stored.
pub struct PasswordPrompt {
    pub asked: Asked,
    pub typed: String,
}

/// Which secret the server asks for.
pub enum Asked {
    /// The account password of this nickname (`PASS`).
    Account(String),
    /// The join password or an invite code of this server (`PASS join`).
    Join(String),
}

/// What the user did on a screen.
pub enum Action {
    Connect,
    TrustAnswer(bool),
    Password(Option<String>),
    /// Back to the connect screen (a changed certificate, a cancel, or
    /// leaving a closed chat).
    Back,
    /// The bar's Open: to the connect screen with the link that arrived.
    OpenArrived,
    DismissArrived,
}

pub struct App {
    paths: Paths,
    pub(crate) settings: Settings,
    pub(crate) form: ConnectForm,
    screen: Screen,
    network: Option<Network>,
    notifier: Box<dyn Notifier>,
    /// Keeps a flood of mentions or private messages to a few notices.
    notices: Coalescer,
    ctx: egui::Context,
    /// `--fingerprint` or `--ca`, and the server (`host:port`) it is for.
    given_trust: Option<(String, Trust)>,
    /// Links the system hands over while the window runs.
    inbox: Arc<Inbox>,
    /// A link waiting in the bar.
    arrived: Option<Arrived>,
}

impl App {
    /// The real app: platform paths, desktop notifications, and what the
    /// command line asked for.
    pub fn new(cc: &eframe::CreationContext<'_>, start: Start) -> App {
        let notifier: Box<dyn Notifier> = match DesktopNotifier::start() {
            Ok(n) => Box::new(n),
            Err(e) => {
                eprintln!("tlschat-gui: no desktop notifications: {e}");
                Box::new(crate::notify::NoNotifier)
            }
        };
        let mut paths = Paths::platform();
        if let Some(file) = start.known_hosts.clone() {
            paths.known_hosts = Some(file);
        }
        let mut app = App::with(&cc.egui_ctx, paths, notifier);
        app.inbox = crate::open_url::global();
        app.inbox.attach(&cc.egui_ctx);
        app.begin(start);
        app
    }

    /// The app with its files under `paths` and notifications through
    /// `notifier` (tests pass temporary files and a recording fake).
    pub fn with(ctx: &egui::Context, paths: Paths, notifier: Box<dyn Notifier>) -> App {
        crate::fonts::install(ctx);
        let settings = Settings::load(paths.settings.as_deref());
        let form = ConnectForm {
            server: settings.recent_servers.first().cloned().unwrap_or_default(),
            nickname: settings.nickname.clone(),
            ..ConnectForm::default()
        };
        let inbox = Arc::new(Inbox::default());
        inbox.attach(ctx);
        App {
            paths,
            settings,
            form,
            screen: Screen::Connect,
            network: None,
            notifier,
            notices: Coalescer::default(),
            ctx: ctx.clone(),
            given_trust: None,
            inbox,
            arrived: None,
        }
    }

    /// Where links handed over while running arrive (the real app's is
    /// [`open_url::global`](crate::open_url::global)).
    pub fn inbox(&self) -> Arc<Inbox> {
        Arc::clone(&self.inbox)
    }

    /// A link that arrived: on the connect screen it fills in the form,
    /// elsewhere it waits in the bar.
    pub fn open_link(&mut self, text: &str) {
        let arrived = match InviteLink::parse(text) {
            Ok(link) => Arrived::Invite(link),
            Err(e) => Arrived::Broken(format!("invite link: {e}")),
        };
        self.arrived = Some(arrived);
        if matches!(self.screen, Screen::Connect) {
            self.take_arrived();
        }
    }

    /// The waiting link into the connect form.
    fn take_arrived(&mut self) {
        match self.arrived.take() {
            Some(Arrived::Invite(link)) => self.form.take_invite(link),
            Some(Arrived::Broken(why)) => self.form.error = Some(why),
            None => {}
        }
    }

    /// Takes in the command line: fills in the form, keeps the trust
    /// flags for their server, shows what was wrong, and connects at once
    /// when given a server and a nickname.
    pub fn begin(&mut self, start: Start) {
        let connects = start.connects();
        if let Some(server) = start.server {
            self.form.server = server;
        }
        if let Some(nickname) = start.nickname {
            self.form.nickname = nickname;
        }
        if let Some(link) = start.invite {
            self.form.take_invite(link);
        }
        let key = self.form.server.trim().parse::<HostPort>();
        if let (Some(trust), Ok(key)) = (start.trust, key) {
            self.given_trust = Some((key.to_string(), trust));
        }
        self.form.error = start.error;
        if connects {
            self.connect();
        }
    }

    pub fn screen(&self) -> &Screen {
        &self.screen
    }

    /// The connect form, for tests that fill it in directly.
    pub fn form_mut(&mut self) -> &mut ConnectForm {
        &mut self.form
    }

    /// Starts connecting with what the form holds.
    fn connect(&mut self) {
        self.form.error = None;
        // A broken link left in the Server field is reported as a link:
        // the host parser's error would repeat the text, code and all.
        match pasted_link(&self.form.server) {
            Some(Ok(link)) => self.form.take_invite(link),
            Some(Err(e)) => return self.fail(e),
            None => {}
        }
        let server = self.form.server.trim().to_owned();
        let nickname = self.form.nickname.trim().to_owned();
        let host_port = match server.parse::<HostPort>() {
            Ok(hp) => hp,
            Err(e) => return self.fail(format!("server: {e}")),
        };
        if nickname.is_empty() {
            return self.fail("choose a nickname".into());
        }
        let key = host_port.to_string();
        let invite = self.form.invite().cloned();
        let given = self
            .given_trust
            .as_ref()
            .filter(|(server, _)| *server == key)
            .map(|(_, trust)| trust.clone());
        let opts = match (invite, given, self.paths.known_hosts.clone()) {
            // The link's certificate is trusted without asking (and stored
            // in known_hosts as if the person had said yes); its code
            // answers PASS join.
            (Some(link), _, Some(known_hosts)) => {
                ClientOptions::from_link(&link, nickname, known_hosts)
            }
            (None, Some(trust), _) => ClientOptions::new(host_port, nickname, trust),
            (None, None, Some(known_hosts)) => {
                let trust = Trust::Tofu {
                    known_hosts,
                    key,
                    link: None,
                };
                ClientOptions::new(host_port, nickname, trust)
            }
            (_, _, None) => {
                return self.fail("this system has no config directory for known_hosts".into())
            }
        };
        match Network::connect(opts, self.ctx.clone()) {
            Ok(net) => {
                self.network = Some(net);
                self.screen = Screen::Connecting {
                    server,
                    password: None,
                };
            }
            Err(e) => self.fail(format!("cannot start the network thread: {e}")),
        }
    }

    /// Back to the connect screen with `why`.
    fn fail(&mut self, why: String) {
        self.network = None;
        self.form.error = Some(why);
        self.screen = Screen::Connect;
    }

    fn act(&mut self, action: Action) {
        match action {
            Action::Connect => self.connect(),
            Action::TrustAnswer(yes) => {
                if let Some(net) = &self.network {
                    net.answer_trust(yes);
                }
                if let Screen::Trust { server, .. } = &self.screen {
                    self.screen = Screen::Connecting {
                        server: server.clone(),
                        password: None,
                    };
                }
            }
            Action::Password(given) => {
                if let Some(net) = &self.network {
                    net.answer_password(given);
                }
                if let Screen::Connecting { password, .. } = &mut self.screen {
                    *password = None;
                }
            }
            Action::Back => self.back(),
            Action::OpenArrived => {
                self.back();
                self.take_arrived();
            }
            Action::DismissArrived => self.arrived = None,
        }
    }

    fn back(&mut self) {
        // Dropping the network answers any open question with no, and
        // dropping the chat's handle ends its session.
        self.network = None;
        self.screen = Screen::Connect;
        self.ctx
            .send_viewport_cmd(egui::ViewportCommand::Title("tlschat".into()));
    }

    /// Links handed over since the last frame.
    fn drain_inbox(&mut self) {
        for link in self.inbox.drain() {
            self.open_link(&link);
        }
    }

    /// Everything the network said since the last frame.
    fn drain_network(&mut self, ctx: &egui::Context) {
        let focused = ctx.input(|i| i.focused);
        while let Some(event) = self.network.as_ref().and_then(Network::poll) {
            self.on_net_event(event, focused);
        }
    }

    fn on_net_event(&mut self, event: NetEvent, focused: bool) {
        match event {
            NetEvent::AskTrust {
                server,
                fingerprint,
            } => {
                self.screen = Screen::Trust {
                    server,
                    fingerprint,
                }
            }
            NetEvent::AskPassword { nick } => self.ask(Asked::Account(nick)),
            NetEvent::AskJoinSecret { server } => self.ask(Asked::Join(server)),
            NetEvent::Started(handle) => {
                let server = self.form.server.trim().to_owned();
                let nickname = self.form.nickname.trim().to_owned();
                self.settings.remember(&server, &nickname);
                if let Some(path) = &self.paths.settings {
                    // Settings are a convenience: a failure is only noted.
                    if let Err(e) = self.settings.save(path) {
                        eprintln!("tlschat-gui: cannot save {}: {e}", path.display());
                    }
                }
                self.screen =
                    Screen::Chat(Box::new(ChatView::new(&server, &nickname, Some(handle))));
            }
            NetEvent::Failed(e) => self.on_failed(e),
            NetEvent::Client(ClientEvent::Closed(CloseReason::CertificateChanged(changed))) => {
                // A reconnect met another certificate: the same dead end as
                // at first connect, not a line in the chat.
                self.network = None;
                self.screen = Screen::Changed(changed);
            }
            NetEvent::Client(event) => {
                let notices = match &mut self.screen {
                    Screen::Chat(chat) => chat.on_client_event(event, focused),
                    _ => Vec::new(),
                };
                for notice in notices {
                    self.notify(notice);
                }
            }
        }
    }

    fn ask(&mut self, asked: Asked) {
        if let Screen::Connecting { password, .. } = &mut self.screen {
            *password = Some(PasswordPrompt {
                asked,
                typed: String::new(),
            });
        }
    }

    fn on_failed(&mut self, e: ConnectError) {
        self.network = None;
        if let ConnectError::CertificateChanged(changed) = e {
            self.screen = Screen::Changed(changed);
            return;
        }
        self.fail(failure(&e));
    }

    fn notify(&mut self, notice: Notice) {
        let Some(notice) = self.notices.admit(notice, Instant::now()) else {
            return;
        };
        self.notifier.notify(notice);
        self.ctx
            .send_viewport_cmd(egui::ViewportCommand::RequestUserAttention(
                egui::UserAttentionType::Informational,
            ));
    }

    /// Draws the current screen (under the bar of a link that arrived).
    pub fn draw(&mut self, ui: &mut egui::Ui) {
        if matches!(self.screen, Screen::Connect) {
            self.take_arrived();
        }
        let bar = self
            .arrived
            .as_ref()
            .and_then(|arrived| screens::connect::arrived_bar(ui, arrived));
        let action = match &mut self.screen {
            Screen::Connect => screens::connect::show(ui, &mut self.form, &self.settings),
            Screen::Connecting { server, password } => {
                screens::connect::connecting(ui, server, password.as_mut())
            }
            Screen::Trust {
                server,
                fingerprint,
            } => screens::trust::first_contact(ui, server, fingerprint),
            Screen::Changed(changed) => screens::trust::changed(ui, changed),
            Screen::Chat(chat) => chat.show(ui, Instant::now()),
        };
        if let Some(action) = bar.or(action) {
            self.act(action);
        }
    }
}

impl eframe::App for App {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        self.drain_inbox();
        self.drain_network(ctx);
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.draw(ui);
    }
}

/// Characters of a failure shown on the connect screen: the client's own
/// messages are a line or two; what a server said (quoted in some) could
/// be a megabyte.
const FAILURE_CHARS: usize = 600;

/// Why connecting failed, as the connect screen shows it: sanitised, and
/// cut at [`FAILURE_CHARS`].
fn failure(e: &ConnectError) -> String {
    let why = match e {
        ConnectError::NoPassword(nick) => format!("no password given for {nick}"),

        e => e.to_string(),
    };
    let mut shown: String = why.chars().take(FAILURE_CHARS).collect();
    if shown.len() < why.len() {
        shown.push('…');
    }
    tlschat_client_core::render::sanitize_lines(&shown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_server_said_is_cut_and_sanitised_on_the_connect_screen() {
        let said = format!("go away\u{1b}[2J{}", "x".repeat(1 << 20));
        let shown = failure(&ConnectError::Server(said));
        assert!(
            shown.starts_with("the server said: go away\u{FFFD}[2J"),
            "{shown}"
        );
        assert!(
            shown.chars().count() < 1000,
            "{} characters",
            shown.chars().count()
        );
        let nick = failure(&ConnectError::NoPassword("bob\u{202e}".into()));
        assert_eq!(nick, "no password given for bob\u{FFFD}");
    }
}
